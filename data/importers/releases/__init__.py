"""Readers of the public feature releases, one module per layout, sharing one writer.

=============  ==========================================================================
layout         release
=============  ==========================================================================
wtalc          W-TALC "Thumos14reduced" / ActivityNet 1.2 I3D (one pickled .npy + annotation folder)
basnet         BaS-Net / UM / CoLA / ASL THUMOS14 (features/{train,test}/{rgb,flow}/<video>.npy, gt.json)
acmnet         ACM-Net THUMOS14 ({train,test}/<video>.npy concatenated, gt.json with durations)
actionformer   ActionFormer THUMOS14 I3D (i3d_features/, thumos14.json) and ActivityNet TSP (tsp_features/)
bsn            BSN / BMN ActivityNet 1.3 TSN csv_mean_100 (video_info_new.csv, anet_anno_action.json)
npy            per-video .npy, one folder per stream or concatenated, at a given --fps/--frames-per-row
=============  ==========================================================================

Each module has ``detect(features, annotations) -> reason | None``, ``read(features, annotations,
fps, frames_per_row) -> Release`` and ``read_annotations(path) -> Annotations``;
:func:`~.common.write_release` writes any :class:`~.common.Release`.
"""
from __future__ import annotations

from pathlib import Path

from tsrnet.data.core.errors import DataError
from tsrnet.data.importers.releases import acmnet, actionformer, basnet, bsn, wtalc

READERS = {m.NAME: m for m in (wtalc, basnet, acmnet, actionformer, bsn)}
LAYOUTS = (*READERS, "npy")
# The order auto-detection tries: most specific first (a plain folder of .npy is the last resort).
DETECT_ORDER = ("wtalc", "basnet", "bsn", "actionformer", "acmnet")


def npy_folders(features: Path) -> dict | None:
    """The generic layout under ``features``: rgb/ and flow/ folders, or one folder of <video>.npy."""
    if (features / "rgb").is_dir() and (features / "flow").is_dir():
        return {"rgb_dir": features / "rgb", "flow_dir": features / "flow"}
    if features.is_dir() and any(features.glob("*.npy")):
        return {"concat_dir": features}
    return None


def detect_layout(features, annotations=None) -> tuple[str, str]:
    """``(layout, why)`` for the release at ``features``; DataError when none fits."""
    features = Path(features)
    if not features.exists():
        raise DataError("not found", features)
    ann = None if annotations is None else Path(annotations)
    for name in DETECT_ORDER:
        why = READERS[name].detect(features, ann)
        if why:
            return name, why
    folders = npy_folders(features)
    if folders:
        what = "rgb/ and flow/ folders" if "rgb_dir" in folders else "one folder of <video>.npy (RGB then flow)"
        return "npy", f"{what}, no release's annotation files recognised"
    raise DataError("no known feature release layout here (wtalc, basnet, acmnet, actionformer, bsn, npy); "
                    "pass --layout", features)


def read_release(layout: str, features, annotations=None, fps=None, frames_per_row=None):
    if layout not in READERS:
        raise DataError(f"unknown layout {layout!r} (known: {', '.join(LAYOUTS)}, auto)")
    return READERS[layout].read(Path(features), None if annotations is None else Path(annotations), fps,
                                frames_per_row)


def detect_annotation_layout(path) -> str | None:
    """The release whose annotation files ``path`` is, when it needs that release's reader (None: the
    generic readers of :func:`~tsrnet.data.format.ground_truth.load_annotations` apply as they are)."""
    path = Path(path)
    if path.is_dir():
        if (path / bsn.ANNO).exists():
            return "bsn"
        if (path / "videoname.npy").exists():
            return "wtalc"
        return None
    if path.suffix.lower() == ".json":
        if bsn.is_annotation_file(path):
            return "bsn"
        if actionformer.is_annotation_file(path):
            return "actionformer"
    if path.name == bsn.INFO:
        return "bsn"
    return None
