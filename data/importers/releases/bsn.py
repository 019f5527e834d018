"""The ActivityNet 1.3 TSN features of BSN / BMN ("csv_mean_100").

::

    activitynet_feature_cuhk/csv_mean_100/v_<id>.csv      header f0..f399, 100 rows
    activitynet_annotations/video_info_new.csv            video,numFrame,seconds,fps,rfps,subset,featureFrame
    activitynet_annotations/anet_anno_action.json         {"v_<id>": {"duration_second", "duration_frame",
                                                            "feature_frame", "annotations": [...]}}

Columns 0-199 are the RGB stream, 200-399 the flow stream. The rows are the video's snippet features
linearly resampled to 100, so row k stands for ``[k, k + 1) / 100`` of the span the snippets cover
and is timed at its centre: ``times[k] = (k + 0.5) / 100 * span``.

The span: BSN's own loader takes the snippets to cover ``feature_frame / duration_frame *
duration_second`` seconds (the frames of whole 16-frame snippets), not the whole video, and so does
this reader when the annotation file gives those fields (else the whole ``duration_second``). The
store's ``duration`` is the whole video, ``duration_second``. Subsets come from
``video_info_new.csv`` (``training``, ``validation``, ``testing``); testing videos have no labels
(withheld), not an empty label set.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np

from tsrnet.data.format.annotations.model import Annotations, VideoAnnotation
from tsrnet.data.format.annotations.readers import load_json, parse_float, parse_segments
from tsrnet.data.core.errors import DataError
from .common import Item, Release, RescaledClock, find_near

NAME = "bsn"
INFO, ANNO = "video_info_new.csv", "anet_anno_action.json"


def _feature_dir(features: Path) -> Path | None:
    if features.is_dir() and any(features.glob("*.csv")):
        return features
    cands = sorted(d for d in features.glob("csv_mean_*") if d.is_dir()) if features.is_dir() else []
    if not cands:
        cands = sorted(d for d in features.glob("*/csv_mean_*") if d.is_dir()) if features.is_dir() else []
    return cands[0] if len(cands) == 1 else None


def detect(features: Path, annotations: Path | None) -> str | None:
    d = _feature_dir(features)
    if d is None:
        return None
    first = next(iter(sorted(d.glob("*.csv"))), None)
    header = first.open().readline().strip().split(",") if first else []
    if header[:2] == ["f0", "f1"]:
        return f"{d.name}/ of <video>.csv with columns f0..f{len(header) - 1}"
    return None


def annotation_files(feat_dir: Path | None, annotations: Path | None) -> dict[str, Path]:
    if annotations is not None:
        p = Path(annotations)
        if p.is_dir():
            found = {n: p / n for n in (INFO, ANNO) if (p / n).exists()}
        else:  # one of the two files: the other is looked for beside it
            found = {n: p.parent / n for n in (INFO, ANNO) if (p.parent / n).exists()}
            found[ANNO if p.suffix.lower() == ".json" else INFO] = p
    else:
        found = find_near(feat_dir, (INFO, ANNO))
    if ANNO not in found:
        raise DataError(f"no {ANNO} (pass --annotations: the folder with {ANNO} and {INFO}, or the file)",
                        annotations or feat_dir)
    return found


def is_annotation_file(path: Path) -> bool:
    """BSN's anet_anno_action.json: no "database", entries with "duration_second"."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict) or "database" in doc or not doc:
        return False
    return all(isinstance(e, dict) and "duration_second" in e for e in list(doc.values())[:20])


def read_info(path: Path) -> dict[str, dict]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"video", "subset"}
        if not need <= set(reader.fieldnames or []):
            raise DataError(f"expected columns {sorted(need)} (+ numFrame, seconds, fps, featureFrame)", path)
        return {row["video"].strip(): row for row in reader}


def read_annotations(path: Path) -> Annotations:
    """anet_anno_action.json (with video_info_new.csv beside it or in the folder given, for subsets)."""
    files = annotation_files(None, Path(path))
    return _annotations(files)[0]


def _annotations(files: dict[str, Path]) -> tuple[Annotations, dict, dict]:
    anno_path = files[ANNO]
    doc = load_json(anno_path)
    if not isinstance(doc, dict) or "database" in doc:
        raise DataError("expected BSN's {video: {duration_second, annotations, ...}} mapping", anno_path)
    info_path = files.get(INFO) or (anno_path.parent / INFO if (anno_path.parent / INFO).exists() else None)
    info = read_info(info_path) if info_path else {}
    videos = {}
    for vid, e in doc.items():
        if not isinstance(e, dict):
            raise DataError("entry is not an object", anno_path, vid)
        dur = e.get("duration_second")
        duration = None if dur is None else parse_float(dur, anno_path, vid, "duration_second")
        segs = parse_segments(e.get("annotations", []), anno_path, vid)
        subset = info.get(vid, {}).get("subset") or e.get("subset")
        videos[vid] = VideoAnnotation(vid, subset.strip() if subset else None, duration, segs)
    return Annotations(videos, anno_path), doc, info


def read(features: Path, annotations: Path | None, fps: float | None = None,
         frames_per_row: int | None = None) -> Release:
    if fps is not None or frames_per_row is not None:
        raise DataError("the bsn layout's rows are rescaled over each video; --fps and --frames-per-row do not apply")
    feat_dir = _feature_dir(Path(features))
    if feat_dir is None:
        raise DataError("no folder of v_<id>.csv (csv_mean_100/) here", features)
    files = annotation_files(feat_dir, annotations)
    ann, doc, info = _annotations(files)
    csvs = {p.stem: p for p in feat_dir.glob("*.csv")}
    m = re.search(r"_(\d+)$", feat_dir.name)  # csv_mean_100: 100 rows per video
    n_rows = int(m.group(1)) if m else 100
    items, used = [], set()
    for vid in ann.video_ids():
        a, e = ann[vid], doc[vid]
        path = csvs.get(vid)
        if path is not None:
            used.add(vid)
        if a.duration is None:
            raise DataError("no duration_second", files[ANNO], vid)
        span = a.duration
        df, ff = e.get("duration_frame"), e.get("feature_frame")
        if df and ff:
            span = float(ff) / float(df) * a.duration
        row = info.get(vid, {})
        n_frames = int(df) if df else (int(float(row["numFrame"])) if row.get("numFrame") else None)
        vfps = n_frames / a.duration if n_frames and a.duration else (float(row["fps"]) if row.get("fps") else 30.0)
        labels = None if (a.subset == "testing" and not a.segments) else a.labels

        def load(path=path, vid=vid):
            return _load_csv(path, vid)

        items.append(Item(vid, str(path or feat_dir / f"{vid}.csv"), load, RescaledClock(n_rows, span), vfps, a.duration,
                          a.subset, labels, native_fps=float(row["fps"]) if row.get("fps") else None,
                          n_frames=n_frames, failure=None if path is not None else f"no feature file {vid}.csv"))
    notes = []
    unused = sorted(set(csvs) - used)
    if unused:
        notes.append(f"{len(unused)} feature file(s) have no entry in {ANNO} and were skipped, e.g. {unused[0]}")
    attrs = {
        "release": NAME,
        "source": f"BSN csv_mean_100 release: {feat_dir} with {', '.join(str(p) for p in files.values())}",
        "time_convention": "centre of the span a rescaled row stands for: times[k] = (k + 0.5) / n * span, "
                           "span = feature_frame / duration_frame * duration_second",
    }
    return Release(NAME, ("rgb", "flow"), 200, items, attrs, ann, notes)


def _load_csv(path: Path, vid: str) -> dict[str, np.ndarray]:
    with open(path) as f:
        header = f.readline().strip().split(",")
    if len(header) != 400 or header[0] != "f0":
        raise DataError(f"expected a header f0..f399 (400 columns), got {len(header)} columns starting "
                        f"{header[:1]}", path, vid)
    try:
        x = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except ValueError as e:
        raise DataError(f"cannot read as numbers ({e})", path, vid) from None
    if x.size == 0:
        x = x.reshape(0, 400)
    if x.shape[1] != 400:
        raise DataError(f"rows have {x.shape[1]} values, expected 400", path, vid)
    return {"rgb": x[:, :200], "flow": x[:, 200:]}
