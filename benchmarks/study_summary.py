"""Combine several ``study_localisation.py`` outputs into the tables behind the defaults.

::

    python benchmarks/study_summary.py study/*/study.csv --out study/summary

For each data set (the ``--label`` given to the study) and method: mAP@0.5
of every candidate setting (mean ± std over the runs, i.e. seeds), the best
single threshold of the sweep on each scale (chosen on the mean over seeds),
and each candidate's shortfall from that best. The candidate with the
smallest worst shortfall over all data sets and methods is the one to make
the default. Writes ``OUT/summary.md`` and ``OUT/sweeps.png`` (one panel per data set).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (data, model), g in df.groupby(["data", "model"], sort=False):
        sweep = g[g.kind == "sweep"].groupby(["scale", "threshold"])["mAP@0.5"].mean()
        best = float(sweep.max())
        row = {"data": data, "model": model, "seeds": g.seed.nunique(),
               "best single": f"{best:.1f} ({sweep.idxmax()[0]} {sweep.idxmax()[1]:.2f})"}
        for name, c in g[g.kind == "candidate"].groupby("setting", sort=False)["mAP@0.5"]:
            row[name] = f"{c.mean():.1f} ± {c.std(ddof=1) if len(c) > 1 else 0:.1f}"
            row[f"shortfall {name}"] = best - c.mean()
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(t: pd.DataFrame) -> str:
    cells = [list(map(str, t.columns))] + [[str(v) for v in r] for r in t.itertuples(index=False)]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines[:1] + ["|" + "---|" * len(t.columns)] + lines[1:])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csvs", nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--choose-on", default="", help="Rank candidates on the rows whose data label contains this.")
    p.add_argument("--columns", nargs="*", default=None, help="Candidate settings to show (default: all).")
    p.add_argument("--scales", nargs="*", default=list(STYLES),
                   help="Threshold scales drawn in the sweep chart (default: all four).")
    a = p.parse_args(argv)
    df = pd.concat([pd.read_csv(c) for c in a.csvs], ignore_index=True)
    t = summary_table(df)
    chosen = t[t["data"].str.contains(a.choose_on, regex=False)]
    short = chosen[[c for c in t.columns if c.startswith("shortfall ")]]
    worst = short.max().sort_values()
    a.out.mkdir(parents=True, exist_ok=True)
    names = [c for c in t.columns if not c.startswith("shortfall ")]
    if a.columns is not None:
        names = ["data", "model", "seeds", "best single"] + [c for c in a.columns if c in t.columns]
    lines = ["mAP@0.5 (%), mean ± std over seeds; best single = best threshold of the sweep (scale, value)", "",
             markdown(t[names]), "", f"worst shortfall from the best single threshold, over the rows of '{a.choose_on or 'all'}':",
             ""]
    lines += [f"- {k.removeprefix('shortfall ')}: {v:.1f}" for k, v in worst.items()]
    (a.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(df, a.out / "sweeps.png", a.scales)


STYLES = {"otsu": "-", "video": "-.", "absolute": ":", "max": "--"}  # line style per threshold scale
SHOWN = {"video": "min-max"}


def plot(df: pd.DataFrame, path: Path, scales=tuple(STYLES)) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(df["data"]))
    colour = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(df["model"]))}  # one colour per method in every panel
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.6), squeeze=False)
    for ax, data in zip(axes[0], datasets):
        d = df[(df["data"] == data) & (df.kind == "sweep")]
        for model in dict.fromkeys(d.model):
            for scale in scales:
                s = d[(d.model == model) & (d.scale == scale)].groupby("threshold")["mAP@0.5"].agg(["mean", "std"])
                label = model if len(scales) == 1 else f"{model}, {SHOWN.get(scale, scale)}"
                ax.plot(s.index, s["mean"], STYLES[scale], color=colour[model], label=label)
                ax.fill_between(s.index, s["mean"] - s["std"].fillna(0), s["mean"] + s["std"].fillna(0),
                                color=colour[model], alpha=0.12)
        ax.axvline(0.2, color="k", lw=0.6, ls="--")
        ax.set_title(data, fontsize=10)
        ax.set_xlabel("threshold")
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("mAP@0.5 (%)")
    # One legend for every panel (the methods' colours are the same in each), below them.
    handles = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    ncol = min(len(handles), 6)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    rows = -(-len(handles) // ncol)
    fig.tight_layout(rect=(0, 0.05 + 0.06 * rows, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
