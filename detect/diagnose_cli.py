"""``diagnose``, and the one path by which it, ``detect --diagnose`` and ``compare-methods --diagnose`` write."""
from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from tsrnet.data.annotations import Annotations, read_detections
from tsrnet.data.cliutil import fail_cleanly
from tsrnet.data.errors import DataError
from tsrnet.data.ground_truth import load_annotations
from tsrnet.data.io import write_json
from .diagnose import BINS, Diagnosis, diagnose_detections, format_diagnosis_table


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
                    title: str = "") -> None:
    """Print each run's table, then write the JSON (one run: its summary; several: name -> summary) and the
    report, each atomically."""
    for name, d in runs.items():
        if len(runs) > 1:
            click.echo(f"== {name}")
        click.echo(format_diagnosis_table(d.summary))
    if json_out:
        write_json(json_out, next(iter(runs.values())).summary if len(runs) == 1 else
                   {n: d.summary for n, d in runs.items()})
    if report_dir:
        from .report import write_report

        page = write_report(report_dir, runs, ann, title)
        click.echo(f"report: {page}", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("ground_truth", type=click.Path(exists=True))
@click.argument("detections_json", type=click.Path(exists=True, dir_okay=False))
@click.option("--subset", help="Diagnose on the videos of this subset of the ground truth [default: all].")
@click.option("--tiou", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5, show_default=True,
              help="tIoU threshold alpha of the matching (evaluate's): a detection with tIoU >= alpha can take an "
                   "instance.")
@click.option("--top-k", type=click.IntRange(1), default=10, show_default=True,
              help="False positives are counted among each class's top k x G predictions (G: its instances).")
@click.option("--bins", type=click.Choice(list(BINS)), default="thumos14", show_default=True,
              help="DETAD's bins of length, coverage and instances per video: THUMOS14's (short actions) or "
                   "ActivityNet's (long ones).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the diagnosis as JSON here.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write a browsable report here: index.html (tables, charts, every video's timeline), its PNG "
                   "charts and diagnosis.json.")
@fail_cleanly
def diagnose(ground_truth, detections_json, subset, tiou, top_k, bins, json_out, report_dir):
    """Why a detector misses: DETAD's error diagnosis of a detections file.

    \b
    diagnose gt.json runs/tsrnet/detections.json --subset test --report report/

    False positives are split into double detections, wrong labels,
    localisation errors, confusions and background, with the mAP gained by
    removing each type; instances are binned by length, coverage and
    instances per video, with AP and the false-negative rate of each bin.
    docs/diagnosis.md gives the rules.
    """
    ann = load_annotations(ground_truth).select(subset)
    pred, notes = scoreable(ann, check_detections(read_detections(detections_json), detections_json))
    for line in notes:
        click.echo(line, err=True)
    d = diagnose_detections(ann, pred, tiou, top_k, bins)
    write_diagnosis({Path(detections_json).stem: d}, ann, json_out, report_dir,
                    f"Diagnosis of {Path(detections_json).name}")


def diagnose_results(ann: Annotations, results: dict, tiou: float = 0.5, top_k: int = 10,
                     bins: str = "thumos14") -> Diagnosis:
    """The diagnosis of an in-memory ``results`` mapping (``detect``, ``compare-methods``) against ``ann``."""
    from tsrnet.data.annotations import detections_frame

    pred, _ = scoreable(ann, detections_frame(results))
    return diagnose_detections(ann, pred, tiou, top_k, bins)



def diagnose_runs(tested: dict, report_dir, title: str = "") -> None:
    """``compare-methods --diagnose``: every run's diagnosis (``tested``: run name -> (test set, results)) in one
    report, the runs side by side; the timelines are those of the first run's test set."""
    runs = {name: diagnose_results(test, results) for name, (test, results) in tested.items()}
    first = next(iter(tested.values()))[0]
    write_diagnosis(runs, first, json_out=None, report_dir=report_dir, title=title)
