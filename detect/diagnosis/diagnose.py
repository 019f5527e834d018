"""The entry points of the diagnosis: a detections file or in-memory results against the ground truth, one
run or several side by side, and the one writer of its JSON and report (``diagnose``, ``detect --diagnose``
and ``compare-methods --diagnose`` all write through :func:`write_diagnosis`)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from tsrnet.data.format.annotations import Annotations, detections_frame
from tsrnet.data.core.errors import DataError
from tsrnet.data.core.io import write_json
from .rules import DETAD, DetadParams, Diagnosis, diagnose_detections


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


def store_durations(store, ids) -> dict[str, float]:
    """The durations a feature store records for ``ids``."""
    durations = {v: store.info(v).duration for v in ids}  # one read of each video's attributes
    return {v: float(d) for v, d in durations.items() if _known(d)}


def durations_from(path) -> dict[str, float]:
    """Video durations (seconds) from a feature store (``.h5``) or from any ground truth ``load_annotations``
    reads that records them: what the coverage bins need when the diagnosed ground truth has none (the
    ``gt.json`` public code uses)."""
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        from tsrnet.data.format.store import FeatureStore

        store = FeatureStore(path)
        found = store_durations(store, store.video_ids())
    else:
        from tsrnet.data.format.ground_truth import load_annotations

        found = {v: float(a.duration) for v, a in load_annotations(path).videos.items() if _known(a.duration)}
    if not found:
        raise DataError("records no video durations (give a feature store or ground truth that has them)", path)
    return found


def with_durations(ann: Annotations, durations: dict[str, float]) -> Annotations:
    """``ann`` with each video's missing duration taken from ``durations`` (the ground truth's own win)."""
    videos = {v: a if _known(a.duration) or v not in durations else dataclasses.replace(a, duration=durations[v])
              for v, a in ann.videos.items()}
    return Annotations(videos, ann.path, ann.ambiguous, ann.protocol)


def coverage_note(ann: Annotations) -> str | None:
    """One line when videos lack a duration: their instances fall in no coverage bin, and why."""
    missing = [v for v, a in ann.videos.items() if a.segments and not _known(a.duration)]
    if not missing:
        return None
    n = sum(1 for a in ann.videos.values() if a.segments)
    return (f"coverage: {len(missing)} of {n} videos have no duration in the ground truth (first: {missing[0]}), so "
            "their instances are in no coverage bin; give --durations STORE.h5 (or ground truth with durations)")


def _known(d) -> bool:
    return d is not None and bool(np.isfinite(d)) and d > 0


def write_diagnosis(runs: dict[str, Diagnosis], ann: Annotations, json_out=None, report_dir=None,
                    title: str = "", viewer: tuple | None = None) -> Path | None:
    """Write the JSON (one run: its summary; several: name -> summary) and the report, each atomically;
    the report's page, if one was written. ``viewer``: (its page, the ids it shows), whose timelines the
    report's link to."""
    if json_out:
        write_json(json_out, next(iter(runs.values())).summary if len(runs) == 1 else
                   {n: d.summary for n, d in runs.items()})
    if not report_dir:
        return None
    from .report import write_report

    return write_report(report_dir, runs, ann, title, viewer)


def diagnose_results(ann: Annotations, results: dict, params: DetadParams = DETAD) -> Diagnosis:
    """The diagnosis of an in-memory ``results`` mapping (``detect``, ``compare-methods``) against ``ann``."""
    pred, _ = scoreable(ann, detections_frame(results))
    return diagnose_detections(ann, pred, params.tiou, params.top_k, params.bins, params.instances)


def diagnose_runs(tested: dict, durations: dict[str, float] | None = None) -> tuple[dict[str, Diagnosis], Annotations]:
    """``compare-methods --diagnose``: every run's diagnosis (``tested``: run name -> (test set, results)), and
    the ground truth whose timelines the report draws (the first run's test set). ``durations`` fill the
    videos' missing durations (from the feature store)."""
    fill = (lambda a: with_durations(a, durations)) if durations else (lambda a: a)
    runs = {name: diagnose_results(fill(test), results) for name, (test, results) in tested.items()}
    return runs, fill(next(iter(tested.values()))[0])
