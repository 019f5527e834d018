"""``diagnose``: DETAD's error diagnosis of a detections file, as tables, JSON and a browsable report."""
from __future__ import annotations

from pathlib import Path

import click

from tsrnet.data.format.annotations import read_detections
from tsrnet.data.common_cli import fail_cleanly
from tsrnet.data.format.ground_truth import load_annotations
from .diagnosis.diagnose import check_detections, scoreable, write_diagnosis
from .diagnosis.rules import BINS, Diagnosis, diagnose_detections, format_diagnosis_table


def print_diagnosis(runs: dict[str, Diagnosis], page: Path | None) -> None:
    """Each run's table on stdout, and where the report went."""
    for name, d in runs.items():
        if len(runs) > 1:
            click.echo(f"== {name}")
        click.echo(format_diagnosis_table(d.summary))
    if page is not None:
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
    runs = {Path(detections_json).stem: d}
    print_diagnosis(runs, write_diagnosis(runs, ann, json_out, report_dir, f"Diagnosis of {Path(detections_json).name}"))
