"""``compare-methods``: train several methods on the same inputs and score them in one table.

Apart from the command (``train/cli.py``), which parses and checks the options: the training, the
scoring and the reports here read one :class:`Comparison`, which says what an invocation asked for.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tsrnet.data.format.annotations import Annotations
from tsrnet.data.core.errors import DataError
from tsrnet.data.core.settings import opt
from tsrnet.data.core.io import atomic_path, undone_on_failure, write_json
from tsrnet.data.core.progress import quiet_opt, report
from tsrnet.data.format.store import FeatureStore

from .config import Config
from .data import Inputs
from .methods import method_class, published_numbers
from .rundir import LOSS_LOG
from .scoring import score_run, scored_test_set, table_row
from .trainer import train_run

RANDOM_ROW = "random scores"
TIME_COLUMN = "train_s"  # seconds of training (sum of the run's epochs); every other column is a fraction


@dataclass(frozen=True)
class CompareOptions:
    """What compare-methods trains, where, and how it reports (its options beside the inputs and settings)."""

    test_subset: str | None = opt(None, "Evaluate on this subset.", shown="the other subset of the annotations")
    models: str = opt("two-stream,srnet,tsrnet", "Comma-separated methods to train and compare.")
    out: str = opt("runs/compare", "Folder for one run per method, the table (table.csv, table.json, table.md), "
                                   "every run's row (runs.csv) and a chart of mAP against tIoU (table.png).",
                   path="dir")
    repeats: int = opt(1, "Train each method this many times, with seeds --seed, --seed+1, ...; the table gives the "
                          "mean and a second table the standard deviation over seeds (runs in "
                          "OUT/<model>-seed<k>).", range=(1, None))
    overwrite: bool = opt(False, "Retrain runs that exist (default: resume or reuse them).", flag=True)
    published: str | None = opt(None, "Also print each method's mAP next to the numbers its paper published for "
                                      "this dataset, with the difference (published.csv, published.md).",
                                choices=("thumos14", "activitynet13"))
    per_method: list = opt([], "A setting for some of the listed methods only, e.g. --set srnet,tsrnet:beta=0.1 "
                               "(where --beta would also set STPN's sparsity and KT-MGFN's L_KT weight). It "
                               "overrides the plain option for those methods.", parse=str,
                           metavar="METHODS:NAME=VALUE", option="--set", shown="none")
    diagnose_dir: str | None = opt(None, "Also diagnose every run's test detections (DETAD's error types and "
                                         "sensitivity, as the diagnose command) and write one report with the "
                                         "methods side by side here.", path="dir", option="--diagnose")
    jobs: int = opt(1, "Runs trained at once, each in its own process with an equal share of the CPU threads. On a "
                       "CPU two runs per two cores can be faster than one (a small model does not keep two cores "
                       "busy); a run's weights then differ from a --jobs 1 run's in rounding, and its train_s is its "
                       "time beside the others. Keep 1 on a GPU.", range=(1, None))
    quiet: bool = quiet_opt()


@dataclass
class Comparison:
    """What one ``compare-methods`` trains, how it scores the runs and where it writes them."""

    inputs: Inputs  # every method trains on these (a method without transfer ignores the trimmed ones)
    ann: Annotations  # inputs.annotations, loaded: the segments the runs are scored on
    store: FeatureStore  # inputs.features, opened: the test videos are scored from it
    models: list[str]
    settings: dict[str, dict]  # method -> its typed settings
    train: dict  # the training settings given, the same for every run (over each method's own defaults)
    out: Path  # one run folder per method (and seed), and the tables
    test_subset: str | None = None  # None: the subset each run records as its evaluation subset
    repeats: int = 1  # seeds per method, from train's seed up
    overwrite: bool = False
    published: str | None = None  # dataset whose published numbers to compare with
    diagnose_dir: str | None = None
    quiet: bool = False
    jobs: int = 1  # runs trained at once, each in its own process with an equal share of the CPU threads

    def config(self, method: str, seed: int | None = None) -> Config:
        cfg = Config.for_method(method, self.settings[method], self.train)
        return cfg if seed is None else cfg.replace("train", seed=seed)


@dataclass
class Outcome:
    """What a comparison leaves for the command to show: the tables as text, and the diagnosis (runs' and
    where the report went) when one was asked for."""

    text: str
    diagnosis: dict | None = None
    page: Path | None = None


def compare(c: Comparison) -> Outcome:
    """Train every (method, seed) run under ``c.out`` (resuming or reusing what is there), score each with the
    random-scores floor, and write the tables (and the diagnosis report)."""
    transfer = [m for m in c.models if method_class(m).uses_trimmed]
    if transfer and not c.inputs.trimmed and not c.store.video_ids(domain="trimmed"):
        raise DataError(f"{', '.join(transfer)} transfer(s) knowledge and need --trimmed TRIMMED.h5 or trimmed "
                        f"clips in the store (extract-features CLIPS/ {c.inputs.features} --trimmed), or leave them "
                        "out of --models", c.inputs.features)
    base = c.config(c.models[0])
    # Every input is checked before the first run trains: an hour of training must not end in a refusal.
    probe = c.inputs.prepare(base)
    _, note = scored_test_set(c.ann, c.test_subset or probe.run_info["eval_subset"], probe.run_info)
    if note:
        report(note)
    seeds = [base.train.seed + k for k in range(c.repeats)]
    # Trained runs are reused by the next attempt, so they stay; a failure before any run has a
    # checkpoint leaves OUT as it was (a failing run's own folder is removed by the trainer).
    with undone_on_failure(c.out, keep=lambda: any(Path(c.out).glob("*/checkpoint.pt"))):
        tested = {} if c.diagnose_dir else None
        rows, ts = _train_and_score(c, seeds, probe, tested)
        text = _report(rows, ts, Path(c.out), seeds)
        if c.published:
            text += "\n" + _report_published(rows, c.published, Path(c.out))
        if not c.diagnose_dir:
            return Outcome(text)
        from tsrnet.detect.diagnosis.diagnose import diagnose_runs, store_durations, write_diagnosis

        runs, truth = diagnose_runs(tested, store_durations(c.store, c.store.video_ids()))
        page = write_diagnosis(runs, truth, report_dir=c.diagnose_dir, title=f"compare-methods: test subset '{ts}'")
        return Outcome(text, runs, page)


def _train_and_score(c: Comparison, seeds: list[int], data, tested=None) -> tuple[list[dict], str]:
    """One table row per run, the random-scores floor first, and the subset the last run was tested on;
    ``data``: the inputs prepared (the floor needs only their classes and test set); ``tested`` (a dict), when
    given, receives each run's test set and detections by run name."""
    rows, ts = [], None
    for seed in seeds:
        row, ts = _random_row(c, seed, data)
        rows.append({"model": RANDOM_ROW, "seed": seed, **row})
    runs = [(model, seed, c.config(model, seed), Path(c.out) / (model if c.repeats == 1 else f"{model}-seed{seed}"))
            for model in c.models for seed in seeds]
    _train_all(c, [(cfg, run_dir) for _, _, cfg, run_dir in runs])
    for model, seed, cfg, run_dir in runs:
        row, ts = _evaluate_run(c, run_dir, cfg, tested)
        rows.append({"model": model, "seed": seed, **row})
    return rows, ts


def _train_all(c: Comparison, runs: list[tuple[Config, Path]]) -> None:
    """Train (or resume, or reuse) every run, ``c.jobs`` at a time.

    Several runs at once pay off on a CPU because one small model does not keep two cores busy: on the
    demo's features (2 cores) a TSRNet run took 32 s on 2 threads and 43 s on one, and two one-thread runs
    side by side 44 s together. A process computes in its own thread count, so a run trained with --jobs
    is close to, not bit-identical with, the same run trained alone.

    A run that fails does not stop the others: each finishes (or fails and cleans up after itself, as
    ``Trainer.fit`` does), and the first failure is raised once all have ended, as with --jobs 1 the runs
    before a failure are kept."""
    jobs = min(c.jobs, len(runs))
    if jobs <= 1:
        for cfg, run_dir in runs:
            train_run(cfg, c.inputs, run_dir, c.overwrite, progress=not c.quiet, log=report)
        return
    from joblib import Parallel, delayed

    from tsrnet.data.core.devices import cpu_threads

    threads = max(1, cpu_threads() // jobs)
    report(f"compare-methods: {len(runs)} runs, {jobs} at a time with {threads} thread(s) each")
    # A task that raised would make joblib kill every worker, and the runs beside it with their unsaved work:
    # failures come back as values instead.
    failures = [e for e in Parallel(n_jobs=jobs, backend="loky")(
        delayed(train_one)(cfg, c.inputs, run_dir, c.overwrite, threads) for cfg, run_dir in runs) if e is not None]
    if failures:
        raise failures[0]


def train_one(cfg: Config, inputs, run_dir: Path, overwrite: bool, threads: int) -> Exception | None:
    """One run in a worker process of :func:`_train_all` (no progress bar: several would interleave); its
    exception, if it failed."""
    import time

    t0 = time.perf_counter()
    try:
        train_run(cfg.replace("train", threads=threads), inputs, run_dir, overwrite, progress=False, log=report)
    except Exception as e:  # noqa: BLE001 - handed to the parent, which raises it once the others are done
        report(f"{run_dir.name}: failed")
        return e
    report(f"{run_dir.name}: done ({time.perf_counter() - t0:.0f} s)")
    return None


def _random_row(c: Comparison, seed: int, data) -> tuple[dict, str]:
    """The floor of the table: random row and video scores through the default post-processing, on the test set
    the runs are scored on (their training videos excluded); ``data`` is the prepared training data."""
    ts = c.test_subset or data.run_info["eval_subset"]
    test, _ = scored_test_set(c.ann, ts, data.run_info)
    return {**random_row(c.store, test, data.classes, seed), TIME_COLUMN: 0.0}, ts


def random_row(store: FeatureStore, test: Annotations, classes: list[str], seed: int, dcfg=None) -> dict:
    """The table row of random row and video scores on ``test``'s videos, through ``dcfg`` (default: the default
    post-processing)."""
    from tsrnet.detect.config import DetectConfig
    from tsrnet.detect.pipeline import detections, evaluate_scores, random_scores

    scores = random_scores(store, test.video_ids(), len(classes), seed)
    dcfg = dcfg or DetectConfig()
    res = detections(scores, classes, dcfg)
    return table_row(*evaluate_scores(scores, res, test, classes, dcfg))


def _evaluate_run(c: Comparison, run_dir: Path, cfg: Config, tested=None) -> tuple[dict, str]:
    """One row of the table for a trained run, and the subset it was tested on."""
    import pandas as pd

    scored = score_run(run_dir, c.store, c.ann, c.test_subset, device=cfg.train.device)
    row, res = scored.row()
    if tested is not None:
        tested[run_dir.name] = (scored.truth, res)
    log = run_dir / LOSS_LOG
    row[TIME_COLUMN] = float(pd.read_csv(log)["seconds"].sum()) if log.exists() else float("nan")
    return row, scored.subset


def _write_csv(frame, path: Path, **kw) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kw)


def _percent(frame):
    """Metric columns in percent, training seconds as they are, for printing."""
    out = frame.copy()
    metric = [c for c in out.columns if c != TIME_COLUMN]
    out[metric] = out[metric] * 100
    return out.round(1)


def markdown_table(mean, std=None) -> str:
    """The table as Markdown: percent (and ± std over seeds), seconds for training time.

    Hand-formatted: pandas' ``to_markdown`` needs the ``tabulate`` package,
    a dependency for one table.
    """
    m = _percent(mean)
    sd = None if std is None else _percent(std)
    head = ["model", *m.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in m.index:
        cells = []
        for c in m.columns:
            v = f"{m.loc[model, c]:.1f}"
            if sd is not None and not np.isnan(sd.loc[model, c]):
                v += f" ± {sd.loc[model, c]:.1f}"
            cells.append(v)
        lines.append("| " + " | ".join([str(model), *cells]) + " |")
    return "\n".join(lines) + "\n"


def _report(rows: list[dict], ts: str, out: Path, seeds: list[int]) -> str:
    """Write the tables (CSV, JSON, Markdown) and chart into ``out`` (each file atomically); the table as text."""
    import pandas as pd

    from tsrnet.detect.plot import plot_comparison

    runs = pd.DataFrame(rows)
    table = runs.drop(columns="seed").groupby("model", sort=False).mean()
    _write_csv(table, out / "table.csv")
    write_json(out / "table.json", rows)
    _write_csv(runs, out / "runs.csv", index=False)
    chart = plot_comparison(runs[runs["model"] != RANDOM_ROW], out / "table.png", f"test subset '{ts}'")
    std = runs.drop(columns="seed").groupby("model", sort=False).std(ddof=1) if len(seeds) > 1 else None
    with atomic_path(out / "table.md") as tmp:
        Path(tmp).write_text(markdown_table(table, std))
    lines = [f"mean over seeds {', '.join(map(str, seeds))}:"] if len(seeds) > 1 else []
    lines.append(_percent(table).to_string())
    if std is not None:
        _write_csv(std, out / "table_std.csv")
        lines += ["standard deviation over seeds:", _percent(std).to_string()]
    lines.append(f"(percent, training time {TIME_COLUMN} in seconds; test subset {ts!r}; runs and tables in {out}; "
                 f"chart: {chart})")
    return "\n".join(lines)


def comparison(dataset: str, measured: dict[str, dict[float, float]]) -> list[dict]:
    """One row per published entry whose method was measured: tIoU, published, measured, difference (points).

    ``measured``: method -> {tIoU: mAP in percent}. The entries are the registered methods' ``published``
    numbers; one named ``"method (features)"`` compares with ``method``.
    """
    published = published_numbers()
    if dataset not in published:
        raise KeyError(dataset)
    rows = []
    for name, entry in published[dataset].items():
        method = name.split(" (")[0]
        if method not in measured:
            continue
        for t, p in entry["mAP"].items():
            m = measured[method].get(round(t, 2))
            if m is None:
                continue
            rows.append({"method": method, "published as": name, "features": entry["features"],
                         "source": entry["source"], "tIoU": t, "published": p, "measured": round(m, 1),
                         "difference": round(m - p, 1)})
    return rows


def _report_published(rows: list[dict], dataset: str, out: Path) -> str:
    """The measured mAP (mean over seeds) next to each paper's, written as CSV and Markdown; the table as text."""
    import pandas as pd

    runs = pd.DataFrame(rows)
    cols = [c for c in runs.columns if c.startswith("mAP@")]
    mean = runs.drop(columns="seed").groupby("model", sort=False)[cols].mean() * 100
    measured = {m: {round(float(c[4:]), 2): float(mean.loc[m, c]) for c in cols} for m in mean.index}
    table = pd.DataFrame(comparison(dataset, measured))
    if table.empty:
        return f"(no method of this comparison has published {dataset} numbers)"
    _write_csv(table, out / "published.csv", index=False)
    wide = table.pivot_table(index=["published as", "features"], columns="tIoU",
                             values=["measured", "published", "difference"], sort=False)
    lines = ["| published as | features | tIoU | " + " | ".join(f"{t:g}" for t in wide["published"].columns) + " |",
             "|---|---|---|" + "---|" * len(wide["published"].columns)]
    for (name, feats), r in wide.iterrows():
        for what in ("measured", "published", "difference"):
            vals = " | ".join("" if pd.isna(v) else f"{v:.1f}" for v in r[what])
            lines.append(f"| {name if what == 'measured' else ''} | {feats if what == 'measured' else ''} | {what} | "
                         f"{vals} |")
    with atomic_path(out / "published.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return (f"against the published {dataset} numbers (percent; difference = measured - published):\n"
            + wide["difference"].round(1).to_string())
