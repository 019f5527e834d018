"""Ground truth from any supported form, the reader chosen by what the path is (:func:`load_annotations`).

This dispatch sits above both the generic readers (:mod:`.annotations.readers`) and the feature
releases' own annotation readers (:mod:`.releases`), which use the generic ones.
"""
from __future__ import annotations

import os
from pathlib import Path

from tsrnet.data.format.annotations.model import Annotations
from tsrnet.data.format.annotations.readers import THUMOS_NAME, read_activitynet, read_csv, read_thumos, read_wtalc
from tsrnet.data.core.errors import DataError
from tsrnet.data.importers.releases import READERS, detect_annotation_layout


def load_annotations(path: str | os.PathLike) -> Annotations:
    """Read ground truth from any supported form, chosen by what ``path`` is.

    Besides the forms of :mod:`.annotations.readers`, the annotation files of the feature releases (``data/importers/releases``): BSN's
    ``anet_anno_action.json`` (with ``video_info_new.csv``) and ActionFormer's ``thumos14.json``
    (ActivityNet layout with per-video fps; its subsets are lower-cased).
    """
    path = Path(path)
    if not path.exists():
        raise DataError("annotation file not found", path)
    layout = detect_annotation_layout(path)
    if layout in ("bsn", "actionformer"):
        return READERS[layout].read_annotations(path)
    if path.is_dir() and (path / "videoname.npy").exists():
        return read_wtalc(path)
    if path.is_dir() or THUMOS_NAME.match(path.name):
        return read_thumos(path)
    if path.suffix.lower() == ".csv":
        return read_csv(path)
    return read_activitynet(path)
