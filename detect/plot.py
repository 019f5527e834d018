"""Timeline PNG of one video: what a user looks at first."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tsrnet.data.core.io import atomic_path  # noqa: E402
from .config import DetectConfig  # noqa: E402
from .localize import VideoScores, localised, weighted_evidence  # noqa: E402
from .postprocess import otsu_split  # noqa: E402


def plot_timeline(vs: VideoScores, classes: list[str], dets: list[dict], gt: list | None, path,
                  cfg: DetectConfig | None = None, localise=weighted_evidence) -> Path:
    """Attention per stream, the method's fused row score of the detected classes, detections and ground truth.

    The thresholds are drawn where they act on each class's score (when the
    method thresholds that score itself): with ``scale="otsu"`` at
    ``lo + t (hi - lo)``, lo and hi the means of that class's low and high
    rows in this video; with ``scale="video"`` at ``min + t (max - min)``.
    """
    cfg = cfg or DetectConfig()
    ev = localised(vs, cfg, localise)
    w, vp = ev.shown, ev.video
    direct = len(ev.sources) == 1 and ev.sources[0].level is ev.shown
    shown = sorted({d["label"] for d in dets} | {s.label for s in (gt or [])} | {classes[int(vp.argmax())]})
    t = vs.times
    fig, axes = plt.subplots(3, 1, figsize=(12, 5.5), sharex=True, gridspec_kw={"height_ratios": [1, 1.4, 1]})
    for s, g in vs.attention().items():
        axes[0].plot(t, g / max(float(g.max()), 1e-12), label=f"attention {s}", lw=1)
    axes[0].set_ylabel("attention\n(÷ max)")
    axes[0].set_ylim(0, 1.05)
    axes[0].legend(loc="upper right", fontsize=8)
    colours = {c: plt.cm.tab10(i % 10) for i, c in enumerate(shown)}
    for c in shown:
        if c in classes:
            j = classes.index(c)
            axes[1].plot(t, w[:, j], color=colours[c], lw=1.2, label=f"{c} (video {vp[j]:.2f})")
            if direct and cfg.scale in ("otsu", "video", "max") and len(cfg.threshold) == 1:
                x = w[:, j]
                if cfg.scale == "otsu":
                    lo, hi = otsu_split(x)
                else:
                    lo, hi = (x.min() if cfg.scale == "video" else 0.0), x.max()
                axes[1].axhline(lo + cfg.threshold[0] * (hi - lo), color=colours[c], ls="--", lw=0.8)
    if direct and cfg.scale == "absolute":
        for th in cfg.threshold:
            axes[1].axhline(th, color="k", ls="--", lw=0.8)
    how = {"otsu": "from each class's low-row to high-row mean in this video",
           "video": "of each class's range in this video", "max": "of each class's maximum in this video",
           "clamped": "of each class's range in this video, its ends clamped at 0", "absolute": "absolute"}[cfg.scale]
    shown_t = ", ".join(f"{th:g}" for th in cfg.threshold)
    if direct and (cfg.scale == "absolute" or len(cfg.threshold) == 1):
        axes[1].plot([], [], color="k", ls="--", lw=0.8, label=f"threshold {shown_t} ({how})")
    axes[1].set_ylabel(ev.shown_label.replace(" ", "\n", 1))
    if float(np.min(w)) >= 0 and float(np.max(w)) <= 1:
        axes[1].set_ylim(0, 1.05)
    axes[1].legend(loc="upper right", fontsize=8)
    ax = axes[2]
    for s in gt or []:
        ax.barh(1, s.end - s.start, left=s.start, height=0.6, color=colours.get(s.label, "grey"), alpha=0.8)
    top = max([d["score"] for d in dets], default=1.0) or 1.0
    for d in dets:
        a, b = d["segment"]
        ax.barh(0, b - a, left=a, height=0.6, color=colours.get(d["label"], "grey"),
                alpha=float(np.clip(0.3 + 0.7 * d["score"] / top, 0.3, 1.0)))
    ax.set_yticks([0, 1], ["detections", "ground truth"])
    ax.set_xlabel("time (s)")
    hi = vs.duration if np.isfinite(vs.duration) else float(t[-1])
    ax.set_xlim(0, hi)
    fig.suptitle(vs.video_id)
    return save_figure(fig, path)


def plot_comparison(runs, path, title: str = "") -> Path:
    """mAP against tIoU, one line per method; with several seeds, the mean and a ±1 std band.

    ``runs``: a DataFrame with a ``model`` column and ``mAP@<tIoU>`` columns, one row per run
    (``compare-methods``' runs.csv).
    """
    cols = [c for c in runs.columns if c.startswith("mAP@")]
    tious = [float(c[4:]) for c in cols]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (model, g) in enumerate(runs.groupby("model", sort=False)):
        vals = 100 * g[cols].to_numpy(dtype=float)  # (seeds, tIoUs)
        mean = vals.mean(axis=0)
        label = model if len(vals) == 1 else f"{model} (mean of {len(vals)} seeds, ±1 std)"
        ax.plot(tious, mean, marker="o", color=plt.cm.tab10(i % 10), label=label)
        if len(vals) > 1:
            sd = vals.std(axis=0, ddof=1)
            ax.fill_between(tious, mean - sd, mean + sd, color=plt.cm.tab10(i % 10), alpha=0.2)
    ax.set_xlabel("tIoU threshold")
    ax.set_ylabel("detection mAP (%)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def save_figure(fig, path) -> Path:
    """Write the figure as PNG through a temporary file (never a half-written picture) and free it."""
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path
