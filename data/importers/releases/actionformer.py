"""ActionFormer's feature releases: THUMOS14 I3D and ActivityNet 1.3 TSP.

THUMOS14 (``thumos/``)::

    i3d_features/<video>.npy        (T, 2048), RGB in columns 0-1023, flow in 1024-2047
    annotations/thumos14.json       ActivityNet layout with "fps" and "duration" per video,
                                    subsets "Validation" / "Test"

Two-stream I3D on windows of 16 frames taken every 4 frames at the video's own frame rate: row k
covers frames ``[4 k, 4 k + 16)`` and is timed at their centre, ``(4 k + 8) / fps`` (ActionFormer's
own code uses the same centre: its "feature offset" is half a window).

ActivityNet 1.3 (``anet_1.3/``)::

    tsp_features/v_<id>.npy         (T, 512), one stream (TSP, an RGB model)
    annotations/anet1.3_tsp_filtered.json    keys without the "v_" prefix

Windows of 16 frames every 16 frames of the video resampled to 15 fps: ``(16 k + 8) / 15``. The
store holds one stream, ``rgb``.

The variant is chosen by the feature width: 2048 columns are I3D RGB+flow, 512 are TSP. Video ids
are the annotation file's keys; a feature file may carry a ``v_`` prefix. Subsets are lower-cased
(``validation``, ``test``), the names the rest of the tools expect. Annotated videos without a
feature file are recorded as failures (ActivityNet's missing YouTube videos); feature files without
an annotation are skipped, since their duration and rate are unknown.
"""
from __future__ import annotations

import json
from pathlib import Path

from tsrnet.data.format.annotations.model import Annotations
from tsrnet.data.format.annotations.readers import read_activitynet
from tsrnet.data.core.errors import DataError
from .common import Clock, Item, Release, frame_attrs, load_npy

NAME = "actionformer"
I3D = {"stride": 4, "window": 16, "fps": None, "dim": 2048, "streams": ("rgb", "flow")}
TSP = {"stride": 16, "window": 16, "fps": 15.0, "dim": 512, "streams": ("rgb",)}
FEATURE_DIRS = ("i3d_features", "tsp_features")


def _feature_dir(features: Path) -> Path | None:
    if features.is_dir() and any(features.glob("*.npy")):
        return features
    for d in FEATURE_DIRS:
        if (features / d).is_dir():
            return features / d
    return None


def _annotation_file(feat_dir: Path, annotations: Path | None) -> Path | None:
    if annotations is not None:
        return Path(annotations)
    for d in (feat_dir.parent / "annotations", feat_dir.parent):
        cands = sorted(p for p in d.glob("*.json") if _is_annotation_json(p, ("duration",))) if d.is_dir() else []
        if len(cands) == 1:
            return cands[0]
    return None


def _is_annotation_json(path: Path, keys: tuple[str, ...]) -> bool:
    """ActivityNet layout whose (first 20) entries all carry ``keys``."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return False
    db = doc.get("database") if isinstance(doc, dict) else None
    if not isinstance(db, dict) or not db:
        return False
    return all(isinstance(e, dict) and all(k in e for k in keys) for e in list(db.values())[:20])


def is_annotation_file(path: Path) -> bool:
    """An ActionFormer annotation file: ActivityNet layout whose entries carry their frame rate."""
    return _is_annotation_json(path, ("fps", "duration"))


def detect(features: Path, annotations: Path | None) -> str | None:
    d = _feature_dir(features)
    if d is None:
        return None
    ann = _annotation_file(d, annotations)
    if d.name in FEATURE_DIRS:  # without its annotation file, read() asks for it rather than guess a rate
        return f"{d.name}/ of <video>.npy" + (f" with {ann.name}" if ann is not None else "")
    if ann is not None and is_annotation_file(ann):
        return f"a folder of <video>.npy with {ann.name}, whose videos carry their fps"
    return None


def read_annotations(path: Path) -> Annotations:
    """The annotation file with subsets lower-cased ("Validation" -> "validation")."""
    ann = read_activitynet(path)
    for a in ann.videos.values():
        if a.subset is not None:
            a.subset = a.subset.lower()
    return ann


def _fps_of(path: Path) -> dict[str, float]:
    with open(path) as f:
        db = json.load(f)["database"]
    return {v: e["fps"] for v, e in db.items() if isinstance(e, dict) and e.get("fps") is not None}


def read(features: Path, annotations: Path | None, fps: float | None = None,
         frames_per_row: int | None = None) -> Release:
    if fps is not None or frames_per_row is not None:
        raise DataError("the actionformer layout takes its rates from the release; --fps and --frames-per-row do "
                        "not apply")
    feat_dir = _feature_dir(Path(features))
    if feat_dir is None:
        raise DataError("no folder of <video>.npy (i3d_features/ or tsp_features/) here", features)
    ann_path = _annotation_file(feat_dir, annotations)
    if ann_path is None:
        raise DataError("no annotation file (annotations/thumos14.json or the like) beside the features; pass "
                        "--annotations", feat_dir)
    ann = read_annotations(ann_path)
    files = {p.stem: p for p in feat_dir.glob("*.npy")}
    if not files:
        raise DataError("no .npy files here", feat_dir)
    first = load_npy(next(iter(sorted(files.values()))), sorted(files)[0])
    width = first.shape[1]
    variant = {I3D["dim"]: I3D, TSP["dim"]: TSP}.get(width)
    if variant is None:
        raise DataError(f"features have {width} columns; the actionformer layout knows 2048 (I3D RGB+flow) and "
                        "512 (TSP)", next(iter(sorted(files.values()))))
    fps_of = _fps_of(ann_path)
    two = len(variant["streams"]) == 2
    dim = width // 2 if two else width
    items, used = [], set()
    for vid in ann.video_ids():
        a = ann[vid]
        path = files.get(vid) or files.get(f"v_{vid}")
        vfps = variant["fps"] or fps_of.get(vid)
        if vfps is None:
            raise DataError("the annotation file gives no fps for this video, which the I3D rows are counted in",
                            ann_path, vid)
        clock = Clock(float(vfps), variant["stride"], variant["window"])
        if path is not None:
            used.add(path.stem)

        def load(path=path, vid=vid):
            x = load_npy(path, vid)
            if x.shape[0] and x.shape[1] != width:
                raise DataError(f"has {x.shape[1]} columns, expected {width}", path, vid)
            return {"rgb": x[:, :dim], "flow": x[:, dim:]} if two else {"rgb": x}

        labels = a.labels if a.segments or a.subset not in ("testing",) else None
        items.append(Item(vid, str(path or feat_dir / f"{vid}.npy"), load, clock, float(vfps), a.duration, a.subset,
                          labels, native_fps=fps_of.get(vid),
                          failure=None if path is not None else f"no feature file {vid}.npy or v_{vid}.npy"))
    notes = []
    unused = sorted(set(files) - used)
    if unused:
        notes.append(f"{len(unused)} feature file(s) have no entry in {ann_path.name} and were skipped, e.g. "
                     f"{unused[0]}")
    if two:
        formula = Clock(1.0, variant["stride"], variant["window"]).formula("fps (each video's own, from the "
                                                                            "annotation file)")
    else:
        formula = Clock(variant["fps"], variant["stride"], variant["window"]).formula()
    attrs = frame_attrs(NAME + ("-i3d" if two else "-tsp"), f"ActionFormer release: {feat_dir} with {ann_path}",
                        formula, **({} if two else {"fps_source": variant["fps"], "frames_per_row": variant["stride"]}))
    return Release(NAME, variant["streams"], dim, items, attrs, ann, notes)

