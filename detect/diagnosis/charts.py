"""The diagnosis charts (PNG): DETAD's false-positive profile and error impact, and its sensitivity bars."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .rules import CHARACTERISTICS, ERROR_NAMES, ERROR_TYPES, TRUE_POSITIVE  # noqa: E402
from ..plot import save_figure  # noqa: E402

# One colour per outcome, shared by the charts and the report's timelines.
TYPE_COLOURS = {TRUE_POSITIVE: "#2ca02c", "double": "#98df8a", "wrong_label": "#1f77b4",
                "localization": "#ff7f0e", "confusion": "#d62728", "background": "#8c8c8c"}
CHARACTERISTIC_COLOURS = {"length": "#386cb0", "coverage": "#f0027f", "instances": "#bf5b17"}


def plot_false_positives(s: dict, path, title: str = ""):
    """Left: the outcome of each slice of G top predictions (1G = each class's first G, ...), stacked, in
    percent. Right: the mAP gained by removing each error type's predictions, in points."""
    outcomes = (TRUE_POSITIVE, *ERROR_TYPES)
    profile = [p for p in s["profile"] if sum(p[t] for t in outcomes)]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [1.6, 1]})
    if profile:
        shares = np.array([[p[t] for t in outcomes] for p in profile], dtype=float)
        shares = 100 * shares / shares.sum(axis=1, keepdims=True)
        x = np.arange(len(profile))
        bottom = np.zeros(len(profile))
        for j, t in enumerate(outcomes):
            ax.bar(x, shares[:, j], bottom=bottom, color=TYPE_COLOURS[t], label=ERROR_NAMES[t], width=0.8)
            bottom += shares[:, j]
        ax.set_xticks(x, [p["top"] for p in profile])
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_ylim(0, 100)
    ax.set_xlabel("top predictions of each class (G: its instances)")
    ax.set_ylabel("share of the slice (%)")
    ax.set_title("false-positive profile", fontsize=10)
    gains = [100 * s["map_gain"][t] for t in ERROR_TYPES]
    bars = bx.bar(np.arange(len(ERROR_TYPES)), gains, color=[TYPE_COLOURS[t] for t in ERROR_TYPES])
    for b, g in zip(bars, gains):
        bx.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{g:.1f}", ha="center", va="bottom", fontsize=7)
    bx.set_xticks(np.arange(len(ERROR_TYPES)), [ERROR_NAMES[t] for t in ERROR_TYPES], rotation=35, ha="right",
                  fontsize=8)
    bx.set_ylabel(f"mAP@{s['tiou']:.2f} gain (points)")
    bx.set_ylim(0, max(1.0, max(gains) * 1.2))
    bx.set_title("removing each error type", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def plot_sensitivity(s: dict, path, title: str = ""):
    """Normalised AP (top) and false-negative rate (bottom) of each bin of length, coverage and instances per
    video; the dashed line is the mAP of the diagnosis for reference. Empty bins are left out."""
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(9, 4.6), sharex=True)
    ticks, labels, x = [], [], 0
    for name in CHARACTERISTICS:
        bins = [(b, e) for b, e in s["sensitivity"][name]["bins"].items() if e["instances"]]
        xs = np.arange(x, x + len(bins))
        ap = [100 * e["ap_n"] for _, e in bins]
        fn = [100 * e["false_negative_rate"] for _, e in bins]
        colour = CHARACTERISTIC_COLOURS[name]
        ax.bar(xs, ap, color=colour, label=name)
        bx.bar(xs, fn, color=colour)
        for xi, a, f in zip(xs, ap, fn):
            ax.text(xi, a, f"{a:.0f}", ha="center", va="bottom", fontsize=7)
            bx.text(xi, f, f"{f:.0f}", ha="center", va="bottom", fontsize=7)
        ticks += list(xs)
        labels += [f"{b}\n{e['instances']}" for b, e in bins]
        x += len(bins) + 1
    ax.axhline(100 * s["mAP"], color="k", ls="--", lw=0.8, label=f"mAP@{s['tiou']:.2f}")
    ax.set_ylim(0, 105)
    ax.set_ylabel("AP$_N$ (%)")
    ax.legend(fontsize=7, ncol=4, loc="upper right")
    ax.set_title("sensitivity: normalised AP and false negatives per bin (bin, instances)", fontsize=10)
    bx.set_ylim(0, 105)
    bx.set_ylabel("false negatives (%)")
    bx.set_xticks(ticks, labels, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)
