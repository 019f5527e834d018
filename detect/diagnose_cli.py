"""``diagnose``: DETAD's error diagnosis of a detections file, as tables, JSON and a browsable report."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from tsrnet.data.format.annotations import read_detections
from tsrnet.data.common_cli import collect, dataclass_options, fail_cleanly
from tsrnet.data.core.settings import opt
from tsrnet.data.format.ground_truth import load_annotations
from .diagnosis.diagnose import (check_detections, coverage_note, durations_from, scoreable, with_durations,
                                 write_diagnosis)
from .diagnosis.rules import DetadParams, Diagnosis, diagnose_detections, format_diagnosis_table


def print_diagnosis(runs: dict[str, Diagnosis], page: Path | None) -> None:
    """Each run's table on stdout, and where the report went."""
    for name, d in runs.items():
        if len(runs) > 1:
            click.echo(f"== {name}")
        click.echo(format_diagnosis_table(d.summary))
    if page is not None:
        click.echo(f"report: {page}", err=True)


@dataclass(frozen=True)
class DiagnoseOptions:
    """Which videos are diagnosed and where the diagnosis is written (DETAD's parameters: DetadParams)."""

    subset: str | None = opt(None, "Diagnose on the videos of this subset of the ground truth.", shown="all")
    durations: str | None = opt(None, "Video durations for the coverage bins where the ground truth has none (the "
                                      "gt.json public code uses): a feature store, or ground truth that records "
                                      "them.", path="existing", shown="the ground truth's")
    json_out: str | None = opt(None, "Write the diagnosis as JSON here.", path="file", option="--json")
    report_dir: str | None = opt(None, "Write a browsable report here: index.html (tables, charts, every video's "
                                       "timeline), its PNG charts and diagnosis.json.", path="dir",
                                 option="--report")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("ground_truth", type=click.Path(exists=True))
@click.argument("detections_json", type=click.Path(exists=True, dir_okay=False))
@dataclass_options(DiagnoseOptions, "dg")
@dataclass_options(DetadParams, "detad")
@fail_cleanly
def diagnose(ground_truth, detections_json, **kw):
    """Why a detector misses: DETAD's error diagnosis of a detections file.

    \b
    diagnose gt.json runs/tsrnet/detections.json --subset test --report report/

    False positives are split into double detections, wrong labels,
    localisation errors, confusions and background, with the mAP gained by
    removing each type; instances are binned by length, coverage and
    instances per video, with AP and the false-negative rate of each bin.
    docs/diagnosis.md gives the rules.
    """
    o = DiagnoseOptions(**collect(kw, "dg"))
    ann = load_annotations(ground_truth).select(o.subset)
    if o.durations:
        ann = with_durations(ann, durations_from(o.durations))
    pred, notes = scoreable(ann, check_detections(read_detections(detections_json), detections_json))
    for line in notes + [coverage_note(ann)]:
        if line:
            click.echo(line, err=True)
    p = DetadParams(**collect(kw, "detad"))
    d = diagnose_detections(ann, pred, p.tiou, p.top_k, p.bins, p.instances)
    runs = {Path(detections_json).stem: d}
    print_diagnosis(runs, write_diagnosis(runs, ann, o.json_out, o.report_dir,
                                          f"Diagnosis of {Path(detections_json).name}"))
