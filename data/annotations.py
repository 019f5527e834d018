"""Annotation readers and writers.

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

Detections (``docs/formats.md``, section 3) are read into a :class:`pandas.DataFrame` with the
columns the evaluator uses.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import DataError
from .io import write_json

THUMOS_SUFFIX_SUBSET = {"val": "validation", "test": "test"}


@dataclass
class Segment:
    label: str
    start: float
    end: float


@dataclass
class VideoAnnotation:
    video_id: str
    subset: str | None = None
    duration: float | None = None
    segments: list[Segment] = field(default_factory=list)
    # Video-level labels without segments (e.g. from a CSV row with no times).
    extra_labels: set[str] = field(default_factory=set)
    # The release's own complete video-level label set, when it ships one that may differ from the
    # segment labels (W-TALC's labels_all): it then replaces them for training and classification.
    video_labels: list[str] | None = None

    @property
    def labels(self) -> list[str]:
        """Sorted set of class names present in the video: all that weak supervision uses.

        ``video_labels`` when the source gave them, else the segment labels and ``extra_labels``.
        """
        if self.video_labels is not None:
            return sorted(set(self.video_labels))
        return sorted({s.label for s in self.segments} | self.extra_labels)

    def labels_differ(self) -> bool:
        """Whether the video-level labels differ from the set of segment labels (W-TALC's labels_all)."""
        return self.video_labels is not None and set(self.video_labels) != {s.label for s in self.segments}


class Annotations:
    """Ground truth of a set of videos, keyed by video id."""

    def __init__(self, videos: dict[str, VideoAnnotation], path: str | os.PathLike | None = None,
                 ambiguous: dict[str, list[tuple[float, float]]] | None = None, protocol: dict | None = None):
        self.videos = videos
        self.path = None if path is None else Path(path)
        # THUMOS14's "Ambiguous" spans per video (possibly of videos without segments): the official
        # THUMOS evaluation does not count a false positive that overlaps one; ActivityNet-style ones do.
        self.ambiguous: dict[str, list[tuple[float, float]]] = dict(ambiguous or {})
        # Which evaluation set this is, when a protocol preset or an exclusion list made it (protocols.py).
        self.protocol: dict | None = protocol

    def __len__(self) -> int:
        return len(self.videos)

    def __contains__(self, vid: str) -> bool:
        return vid in self.videos

    def __getitem__(self, vid: str) -> VideoAnnotation:
        return self.videos[vid]

    def subsets(self) -> list[str]:
        return sorted({v.subset for v in self.videos.values() if v.subset is not None})

    def video_ids(self, subset: str | None = None) -> list[str]:
        return sorted(v for v, a in self.videos.items() if subset is None or a.subset == subset)

    def select(self, subset: str | None) -> "Annotations":
        """The videos of one subset (all videos when ``subset`` is None).

        Raises :class:`DataError` when the subset is empty, listing the ones there are.
        """
        if subset is None:
            return self
        ids = self.video_ids(subset)
        if not ids:
            raise DataError(f"subset {subset!r} has no videos (subsets here: {self.subsets() or 'none'})", self.path)
        return self._subset(ids)

    def only(self, ids) -> "Annotations":
        """The given videos' annotations (ids absent here are ignored)."""
        return self._subset([v for v in ids if v in self.videos])

    def _subset(self, ids) -> "Annotations":
        keep = set(ids)
        # Spans of videos that have no entry here (THUMOS14's video_test_0001292 has only ambiguous spans)
        # stay with every selection.
        return Annotations({v: self.videos[v] for v in ids}, self.path,
                           {v: s for v, s in self.ambiguous.items() if v in keep or v not in self.videos},
                           self.protocol)

    def classes(self) -> list[str]:
        return sorted({lab for v in self.videos.values() for lab in v.labels})

    def has_segments(self) -> bool:
        return any(v.segments for v in self.videos.values())

    def ground_truth_frame(self) -> pd.DataFrame:
        """One row per ground-truth segment: ``video-id, label, t-start, t-end``."""
        rows = [(vid, s.label, s.start, s.end) for vid, a in self.videos.items() for s in a.segments]
        return pd.DataFrame(rows, columns=["video-id", "label", "t-start", "t-end"])

    def to_activitynet(self) -> dict:
        db = {}
        for vid, a in sorted(self.videos.items()):
            entry = {}
            if a.subset is not None:
                entry["subset"] = a.subset
            if a.duration is not None:
                entry["duration"] = a.duration
            entry["annotations"] = [{"label": s.label, "segment": [s.start, s.end]} for s in a.segments]
            if a.extra_labels:
                entry["labels"] = sorted(a.extra_labels)
            if a.video_labels is not None:
                entry["video_labels"] = sorted(set(a.video_labels))
            db[vid] = entry
        doc = {"database": db}
        if self.ambiguous:
            doc["ambiguous"] = {v: [[s, e] for s, e in spans] for v, spans in sorted(self.ambiguous.items())}
        if self.protocol:
            doc["protocol"] = self.protocol
        return doc

    def write(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_activitynet())


def _float(value, path, vid, what) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{what} {value!r} is not a number", path, vid) from None
    if not math.isfinite(x):
        raise DataError(f"{what} {value!r} is not finite", path, vid)
    return x


def _segment(label, start, end, path, vid) -> Segment:
    s, e = _float(start, path, vid, "segment start"), _float(end, path, vid, "segment end")
    if e < s:
        raise DataError(f"segment [{s}, {e}] of {label!r} ends before it starts", path, vid)
    return Segment(str(label), s, e)


def read_activitynet(path: str | os.PathLike) -> Annotations:
    path = Path(path)
    try:
        with open(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON (line {e.lineno}: {e.msg})", path) from None
    db = doc.get("database") if isinstance(doc, dict) else None
    if not isinstance(db, dict):
        raise DataError("expected an object with a 'database' mapping (ActivityNet layout)", path)
    videos = {}
    for vid, entry in db.items():
        if not isinstance(entry, dict):
            raise DataError("entry is not an object", path, vid)
        anns = entry.get("annotations", []) or []
        segs = []
        for ann in anns:
            if "label" not in ann or "segment" not in ann or len(ann["segment"]) != 2:
                raise DataError("annotation needs 'label' and a two-element 'segment'", path, vid)
            segs.append(_segment(ann["label"], *ann["segment"], path, vid))
        duration = entry.get("duration")
        video_labels = entry.get("video_labels")
        videos[vid] = VideoAnnotation(
            video_id=vid,
            subset=entry.get("subset"),
            duration=None if duration is None else _float(duration, path, vid, "duration"),
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
    seg = _segment("Ambiguous", span[0], span[1], path, vid)
    return seg.start, seg.end


_THUMOS_NAME = re.compile(r"^(?P<cls>.+)_(?P<suffix>val|test)\.txt$")


def read_thumos(path: str | os.PathLike) -> Annotations:
    """Read a folder of THUMOS14 ``<Class>_<val|test>.txt`` files (or one such file)."""
    path = Path(path)
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    videos: dict[str, VideoAnnotation] = {}
    ambiguous_files = []
    n_read = 0
    for fp in files:
        m = _THUMOS_NAME.match(fp.name)
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
        yield vid, _segment(cls, s, e, path, vid)


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
                a.duration = _float(row["duration"], path, vid, "duration")
            label = (row.get("label") or "").strip()
            if not label:
                continue
            start, end = (row.get("start") or "").strip(), (row.get("end") or "").strip()
            if start == "" and end == "":
                a.extra_labels.add(label)
            else:
                a.segments.append(_segment(label, start, end, path, vid))
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
        duration = _float(dur[0], path, vid, "duration")
        segs = [_segment(_text(lab), seg[0], seg[1], path, vid) for lab, seg in zip(labels, segments)]
        video_labels = sorted({_text(x) for x in arrays["labels_all"][i]}) if "labels_all" in arrays else None
        extra = set(video_labels or ()) - {s.label for s in segs}
        if vid in videos:
            raise DataError(f"entry {i}: the video is listed twice in videoname.npy", path, vid)
        videos[vid] = VideoAnnotation(vid, _text(arrays["subset"][i]), duration, segs, extra, video_labels)
    return Annotations(videos, path, read_ambiguous(*sorted(path.glob("Ambiguous*.txt"))))


def load_annotations(path: str | os.PathLike) -> Annotations:
    """Read ground truth from any supported form, chosen by what ``path`` is.

    Besides the forms above, the annotation files of the feature releases (``data/releases``): BSN's
    ``anet_anno_action.json`` (with ``video_info_new.csv``) and ActionFormer's ``thumos14.json``
    (ActivityNet layout with per-video fps; its subsets are lower-cased).
    """
    path = Path(path)
    if not path.exists():
        raise DataError("annotation file not found", path)
    from .releases import READERS, detect_annotation_layout

    layout = detect_annotation_layout(path)
    if layout in ("bsn", "actionformer"):
        return READERS[layout].read_annotations(path)
    if path.is_dir() and (path / "videoname.npy").exists():
        return read_wtalc(path)
    if path.is_dir() or _THUMOS_NAME.match(path.name):
        return read_thumos(path)
    if path.suffix.lower() == ".csv":
        return read_csv(path)
    return read_activitynet(path)


# -- detections --------------------------------------------------------------
DETECTION_COLUMNS = ["video-id", "label", "score", "t-start", "t-end"]


def detections_frame(results: dict) -> pd.DataFrame:
    """Flatten ``{"video": [{"label","score","segment"}]}`` into the evaluator's table."""
    rows = [
        (vid, d["label"], float(d["score"]), float(d["segment"][0]), float(d["segment"][1]))
        for vid, dets in results.items()
        for d in dets
    ]
    return pd.DataFrame(rows, columns=DETECTION_COLUMNS)


def read_detections(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError("detections file not found", path)
    try:
        with open(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON (line {e.lineno}: {e.msg})", path) from None
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, dict):
        raise DataError("expected an object with a 'results' mapping (ActivityNet results layout)", path)
    for vid, dets in results.items():
        if not isinstance(dets, list):
            raise DataError("results entry is not a list", path, vid)
        for d in dets:
            if not isinstance(d, dict) or not {"label", "score", "segment"} <= d.keys() or len(d["segment"]) != 2:
                raise DataError("detection needs 'label', 'score' and a two-element 'segment'", path, vid)
            for x in (d["score"], *d["segment"]):
                _float(x, path, vid, "detection value")
    return detections_frame(results)


def write_detections(path: str | os.PathLike, results: dict, version: str = "tsrnet-0.1", extra: dict | None = None):
    doc = {"version": version, "external_data": {}, "results": results}
    if extra:
        doc.update(extra)
    write_json(path, doc, indent=None)
