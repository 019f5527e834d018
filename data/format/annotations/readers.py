"""Readers of ground truth files into :class:`~.model.Annotations`.

Ground truth comes in three forms, all read into :class:`Annotations`:

- ActivityNet-style JSON (``docs/formats.md``, section 2). Tolerant of
  what circulates: segment bounds as strings, missing ``duration`` or
  ``subset``, extra keys.
- The official THUMOS14 per-class text files, ``<Class>_val.txt`` /
  ``<Class>_test.txt`` with lines ``<video> <start> <end>``; give the folder.
  ``Ambiguous_*`` files are skipped, as the official evaluation ignores those
  spans. Subsets are named ``validation`` and ``test`` after the file suffix.
- A plain CSV with columns ``video,label,start,end`` and optional ``subset``
  and ``duration``; a row with an empty label declares a video without actions.
- The annotation folder of W-TALC's "Thumos14reduced" feature release (and
  the releases that reuse it): NumPy files ``videoname.npy``, ``subset.npy``,
  ``duration.npy``, ``labels.npy``, ``segments.npy``, ``labels_all.npy``,
  row i of each describing the same video; give the folder.

The checked conversions the readers share (:func:`parse_float`, :func:`parse_segment`,
:func:`parse_segments`, :func:`load_json`) are public for the release readers in ``data/importers/releases``.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path

from tsrnet.data.core.errors import DataError
from .model import Annotations, Segment, VideoAnnotation

THUMOS_SUFFIX_SUBSET = {"val": "validation", "test": "test"}


def parse_float(value, path, vid, what) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{what} {value!r} is not a number", path, vid) from None
    if not math.isfinite(x):
        raise DataError(f"{what} {value!r} is not finite", path, vid)
    return x


def parse_segment(label, start, end, path, vid) -> Segment:
    s, e = parse_float(start, path, vid, "segment start"), parse_float(end, path, vid, "segment end")
    if e < s:
        raise DataError(f"segment [{s}, {e}] of {label!r} ends before it starts", path, vid)
    return Segment(str(label), s, e)


def parse_segments(annotations, path, vid) -> list[Segment]:
    """The segments of an entry's ``annotations`` list (``[{"label", "segment": [start, end]}, ...]``)."""
    segs = []
    for ann in annotations or []:
        if "label" not in ann or "segment" not in ann or len(ann["segment"]) != 2:
            raise DataError("annotation needs 'label' and a two-element 'segment'", path, vid)
        segs.append(parse_segment(ann["label"], *ann["segment"], path, vid))
    return segs


def load_json(path: Path):
    """The JSON document at ``path``; DataError naming the line when it is not valid JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON (line {e.lineno}: {e.msg})", path) from None


def read_activitynet(path: str | os.PathLike) -> Annotations:
    path = Path(path)
    doc = load_json(path)
    db = doc.get("database") if isinstance(doc, dict) else None
    if not isinstance(db, dict):
        raise DataError("expected an object with a 'database' mapping (ActivityNet layout)", path)
    videos = {}
    for vid, entry in db.items():
        if not isinstance(entry, dict):
            raise DataError("entry is not an object", path, vid)
        segs = parse_segments(entry.get("annotations", []), path, vid)
        duration = entry.get("duration")
        video_labels = entry.get("video_labels")
        videos[vid] = VideoAnnotation(
            video_id=vid,
            subset=entry.get("subset"),
            duration=None if duration is None else parse_float(duration, path, vid, "duration"),
            segments=segs,
            extra_labels=set(entry.get("labels", [])),
            video_labels=None if video_labels is None else [str(x) for x in video_labels],
        )
    ambiguous = {}
    for vid, spans in (doc.get("ambiguous") or {}).items():
        ambiguous[vid] = [_span(s, path, vid) for s in spans]
    return Annotations(videos, path, ambiguous, doc.get("protocol"))


def _span(span, path, vid) -> tuple[float, float]:
    if not isinstance(span, (list, tuple)) or len(span) != 2:
        raise DataError(f"ambiguous span {span!r} is not a two-element [start, end]", path, vid)
    seg = parse_segment("Ambiguous", span[0], span[1], path, vid)
    return seg.start, seg.end


THUMOS_NAME = re.compile(r"^(?P<cls>.+)_(?P<suffix>val|test)\.txt$")


def read_thumos(path: str | os.PathLike) -> Annotations:
    """Read a folder of THUMOS14 ``<Class>_<val|test>.txt`` files (or one such file)."""
    path = Path(path)
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    videos: dict[str, VideoAnnotation] = {}
    ambiguous_files = []
    n_read = 0
    for fp in files:
        m = THUMOS_NAME.match(fp.name)
        if not m:
            continue
        cls = m.group("cls")
        if cls == "Ambiguous":
            # Not ground truth: kept aside for an evaluation that follows the official THUMOS rule.
            ambiguous_files.append(fp)
            continue
        subset = THUMOS_SUFFIX_SUBSET[m.group("suffix")]
        n_read += 1
        for vid, seg in _thumos_segments(fp, cls):
            videos.setdefault(vid, VideoAnnotation(vid, subset=subset)).segments.append(seg)
    if n_read == 0:
        raise DataError("no THUMOS14 annotation files named <Class>_val.txt or <Class>_test.txt", path)
    return Annotations(videos, path, read_ambiguous(*ambiguous_files))


def _thumos_segments(path: Path, cls: str):
    """The ``(video, Segment)`` of each ``<video> <start> <end>`` line of a THUMOS14 annotation file."""
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise DataError(f"line {lineno}: expected '<video> <start> <end>', got {line!r}", path)
        vid, s, e = parts
        yield vid, parse_segment(cls, s, e, path, vid)


def read_ambiguous(*paths: str | os.PathLike) -> dict[str, list[tuple[float, float]]]:
    """THUMOS14 ``Ambiguous_*.txt`` files, merged: ``{video: [(start, end), ...]}``."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for path in paths:
        for vid, seg in _thumos_segments(Path(path), "Ambiguous"):
            spans.setdefault(vid, []).append((seg.start, seg.end))
    return spans


def read_csv(path: str | os.PathLike) -> Annotations:
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        need = {"video", "label"}
        if not need <= cols:
            raise DataError(f"CSV needs columns {sorted(need)} (+ start, end, subset, duration); has {sorted(cols)}",
                            path)
        videos: dict[str, VideoAnnotation] = {}
        for row in reader:
            vid = (row.get("video") or "").strip()
            if not vid:
                raise DataError(f"row {reader.line_num}: empty video id", path)
            a = videos.setdefault(vid, VideoAnnotation(vid))
            if row.get("subset"):
                a.subset = row["subset"].strip()
            if row.get("duration"):
                a.duration = parse_float(row["duration"], path, vid, "duration")
            label = (row.get("label") or "").strip()
            if not label:
                continue
            start, end = (row.get("start") or "").strip(), (row.get("end") or "").strip()
            if start == "" and end == "":
                a.extra_labels.add(label)
            else:
                a.segments.append(parse_segment(label, start, end, path, vid))
    return Annotations(videos, path)


WTALC_FILES = ("videoname", "subset", "duration", "labels", "segments")


def _text(x) -> str:
    # The release's pickles were written by Python 2: strings load as bytes or str.
    return x.decode() if isinstance(x, bytes) else str(x)


def read_wtalc(path: str | os.PathLike) -> Annotations:
    """Read a W-TALC annotation folder (``Thumos14reduced-Annotations/`` and its ActivityNet 1.2 twin).

    Segment labels give the segments. ``labels_all`` (the release's video-level labels, which for some
    videos name other classes than the segments do) become the video's ``video_labels``, which training
    and video-level classification use; the segments stay for detection evaluation. ``duration`` is
    (N, 1) for THUMOS14 and (N,) for ActivityNet 1.2. ``Ambiguous_test.txt``, when present, gives the
    ambiguous spans.
    """
    import numpy as np

    path = Path(path)
    if not path.is_dir():
        raise DataError("a W-TALC annotation folder is a folder of .npy files", path)
    arrays = {}
    for name in WTALC_FILES + ("labels_all",):
        fp = path / f"{name}.npy"
        if not fp.exists():
            if name == "labels_all":
                continue
            raise DataError(f"W-TALC annotation folder lacks {name}.npy", path)
        try:
            arrays[name] = np.load(fp, allow_pickle=True, encoding="bytes")
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"cannot read {name}.npy ({e})", path) from None
    n = len(arrays["videoname"])
    for name, a in arrays.items():
        if len(a) != n:
            raise DataError(f"{name}.npy has {len(a)} entries but videoname.npy has {n}", path)
    videos: dict[str, VideoAnnotation] = {}
    for i in range(n):
        vid = _text(arrays["videoname"][i])
        labels, segments = arrays["labels"][i], arrays["segments"][i]
        if len(labels) != len(segments):
            raise DataError(f"entry {i}: {len(labels)} labels but {len(segments)} segments", path, vid)
        dur = np.ravel(arrays["duration"][i])
        if dur.size != 1:
            raise DataError(f"duration.npy entry {i} has {dur.size} values, expected one", path, vid)
        duration = parse_float(dur[0], path, vid, "duration")
        segs = [parse_segment(_text(lab), seg[0], seg[1], path, vid) for lab, seg in zip(labels, segments)]
        video_labels = sorted({_text(x) for x in arrays["labels_all"][i]}) if "labels_all" in arrays else None
        extra = set(video_labels or ()) - {s.label for s in segs}
        if vid in videos:
            raise DataError(f"entry {i}: the video is listed twice in videoname.npy", path, vid)
        videos[vid] = VideoAnnotation(vid, _text(arrays["subset"][i]), duration, segs, extra, video_labels)
    return Annotations(videos, path, read_ambiguous(*sorted(path.glob("Ambiguous*.txt"))))
