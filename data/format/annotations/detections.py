"""Detections (``docs/formats.md``, section 3): read into a :class:`pandas.DataFrame` with the columns the
evaluator uses, written as ActivityNet-style results JSON."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from tsrnet.data.core.errors import DataError
from tsrnet.data.core.io import write_json
from .readers import load_json, parse_float

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
    doc = load_json(path)
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
                parse_float(x, path, vid, "detection value")
    return detections_frame(results)


def write_detections(path: str | os.PathLike, results: dict, version: str = "tsrnet-0.1", extra: dict | None = None):
    doc = {"version": version, "external_data": {}, "results": results}
    if extra:
        doc.update(extra)
    write_json(path, doc, indent=None)
