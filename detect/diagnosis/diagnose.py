"""The entry points of the diagnosis: a detections file or in-memory results against the ground truth, one
run or several side by side, and the one writer of its JSON and report (``diagnose``, ``detect --diagnose``
and ``compare-methods --diagnose`` all write through :func:`write_diagnosis`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tsrnet.data.format.annotations import Annotations, detections_frame
from tsrnet.data.core.errors import DataError
from tsrnet.data.core.io import write_json
from .rules import Diagnosis, diagnose_detections


def check_detections(pred: pd.DataFrame, source) -> pd.DataFrame:
    """Refuse a detection that ends before it starts (its tIoU would be meaningless), naming its video."""
    bad = (pred["t-end"] < pred["t-start"]).to_numpy()
    if bad.any():
        r = pred[bad].iloc[0]
        raise DataError(f"detection [{r['t-start']}, {r['t-end']}] of {r['label']!r} ends before it starts", source,
                        r["video-id"])
    return pred


def scoreable(ann: Annotations, pred: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``evaluate``'s view of the detections: those of videos a protocol excluded are dropped; a line for
    each thing the user should know about what is counted."""
    if not ann.has_segments():
        raise DataError("ground truth has no segments to diagnose against", ann.path)
    notes = []
    excluded = set((ann.protocol or {}).get("excluded", []))
    dropped = pred["video-id"].isin(excluded)
    if dropped.any():
        notes.append(f"dropped {int(dropped.sum())} detections of excluded videos")
        pred = pred[~dropped]
    outside = ~pred["video-id"].isin(set(ann.video_ids()))
    if outside.any():
        notes.append(f"{int(outside.sum())} detections of {pred.loc[outside, 'video-id'].nunique()} video(s) outside "
                     "the ground truth count as background errors (as evaluate counts them as false positives)")
    unknown = sorted(set(pred["label"]) - set(ann.classes()))
    if unknown:
        notes.append(f"ignored detections of classes absent from the ground truth: {unknown[:5]}"
                     f"{' ...' if len(unknown) > 5 else ''}")
    return pred, notes


def write_diagnosis(runs: dict[str, Diagnosis], ann: Annotations, json_out=None, report_dir=None,
                    title: str = "") -> Path | None:
    """Write the JSON (one run: its summary; several: name -> summary) and the report, each atomically;
    the report's page, if one was written."""
    if json_out:
        write_json(json_out, next(iter(runs.values())).summary if len(runs) == 1 else
                   {n: d.summary for n, d in runs.items()})
    if not report_dir:
        return None
    from .report import write_report

    return write_report(report_dir, runs, ann, title)


def diagnose_results(ann: Annotations, results: dict, tiou: float = 0.5, top_k: int = 10,
                     bins: str = "thumos14") -> Diagnosis:
    """The diagnosis of an in-memory ``results`` mapping (``detect``, ``compare-methods``) against ``ann``."""
    pred, _ = scoreable(ann, detections_frame(results))
    return diagnose_detections(ann, pred, tiou, top_k, bins)


def diagnose_runs(tested: dict) -> tuple[dict[str, Diagnosis], Annotations]:
    """``compare-methods --diagnose``: every run's diagnosis (``tested``: run name -> (test set, results)), and
    the ground truth whose timelines the report draws (the first run's test set)."""
    runs = {name: diagnose_results(test, results) for name, (test, results) in tested.items()}
    return runs, next(iter(tested.values()))[0]
