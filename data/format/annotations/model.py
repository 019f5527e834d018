"""The ground truth model: :class:`Annotations` of :class:`VideoAnnotation`, each with its :class:`Segment` list.

Every reader (:mod:`.readers`, the releases' in ``data/importers/releases``) yields an :class:`Annotations`;
:meth:`Annotations.write` writes it as ActivityNet-style JSON (``docs/formats.md``, section 2).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tsrnet.data.core.errors import DataError
from tsrnet.data.core.io import write_json


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
