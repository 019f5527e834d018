"""``detect`` and ``evaluate``."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

from tsrnet.data.format.annotations import read_detections, write_detections
from tsrnet.data.common_cli import SectionedCommand, collect, dataclass_options, fail_cleanly
from tsrnet.data.core.devices import device_opt, threads_opt, use_cpu_threads
from tsrnet.data.core.settings import opt
from tsrnet.data.core.errors import DataError
from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.core.io import staged_dir, write_json
from tsrnet.data.core.progress import quiet_opt
from .config import DetectConfig
from .evaluate import THUMOS_TIOUS, evaluate_detections

CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def format_detection_table(result, cls: dict | None = None) -> str:
    lines = []
    if cls is not None:
        lines.append(f"classification: top-1 {cls['top1'] * 100:.1f}%  mAP {cls['mAP'] * 100:.1f}%")
    head = " ".join(f"{t:>5.2f}" for t in result.tiou_thresholds)
    vals = " ".join(f"{v * 100:5.1f}" for v in result.map)
    lines.append(f"tIoU  {head}   avg")
    lines.append(f"mAP%  {vals}  {result.average_map * 100:5.1f}")
    return "\n".join(lines)


@dataclass(frozen=True)
class DetectRun:
    """What detect scores, with which run, and what it writes beside the detections."""

    run_dir: str | None = opt(None, "Training run.", path="existing dir", option="--run",
                              shown="the latest under runs/")
    annotations: str | None = opt(None, "Ground truth: selects the videos and, if it has segments, prints the "
                                        "evaluation.", path="existing", shown="the run's")
    subset: str | None = opt(None, "Videos of this subset.", shown="the run's non-training subset")
    out: str | None = opt(None, "Results JSON.", path="file",
                          shown="RUN/detections.json; with VIDEO...: RUN/videos-detections.json")
    plot_dir: str | None = opt(None, "Write timeline PNGs here.", path="dir", option="--plot")
    plot_videos: str = opt("4", "Which videos --plot draws: a count (the first by id) or comma-separated video ids.")
    device: str = device_opt()
    threads: int = threads_opt("scoring the videos")
    quiet: bool = quiet_opt()
    thumos_ambiguous: bool = opt(False, "Evaluate with THUMOS14's rule: false positives overlapping an Ambiguous "
                                        "span are not counted.", flag=True)
    features_cache: str | None = opt(None, "With VIDEO...: the store their features are extracted into and kept in "
                                           "(a video already there, its file unchanged, is not extracted again).",
                                     path="file", option="--features", shown="RUN/videos.h5")
    view_dir: str | None = opt(None, "Write a viewer here: one page (index.html, opens from disk) where each scored "
                                     "video plays above its timeline (ground truth, detections, fused score, "
                                     "attention); click an interval to seek to it.", path="dir", option="--view")
    view_copy: bool = opt(False, "Copy the videos beside the viewer's page, as H.264 where browsers do not play "
                                 "the original's codec (MPEG-4 Part 2, FFV1, MJPEG...). Default: the page refers "
                                 "to the files where they are.", flag=True)
    view_videos: str | None = opt(None, "Where the viewer finds the videos of a store: a folder (searched "
                                        "recursively), a .txt list or a video, matched by id (the file's name "
                                        "without extension).", path="existing",
                                  shown="VIDEO... when given, else the files extract-features read")
    diagnose_dir: str | None = opt(None, "Also diagnose the errors (DETAD's rules at tIoU 0.5, as the diagnose "
                                         "command) and write the report (index.html, charts, diagnosis.json) here; "
                                         "needs ground truth with segments.", path="dir", option="--diagnose")


@click.command(cls=SectionedCommand, context_settings=CTX)
@click.argument("inputs", nargs=-1, metavar="[FEATURES | VIDEO...]", type=click.Path(exists=True, path_type=Path))
@dataclass_options(DetectRun, "run")
@dataclass_options(DetectConfig, "detect", section="Localisation (defaults: those of the run's method, recorded in the run; shown: the common ones)")
@fail_cleanly
def detect(inputs, **kw):
    """Detect actions with a trained run and write ActivityNet results JSON.

    With no arguments it uses the latest run, its store and its non-training
    subset, and the run's method's own localisation defaults (recorded in
    the run); options given here override them:  detect --threshold 0.2

    FEATURES is another store to score. VIDEO... (video files, folders,
    .txt lists of paths) are extracted as the run's store was (its recorded
    weights, rate, crop and TV-L1 settings) into --features, then scored:
    detect clip.mp4 --run runs/tsrnet. A video that cannot be extracted is
    named and skipped, and the exit status is then 1.
    """
    from tsrnet.train.rundir import latest_run
    from tsrnet.train.scoring import open_run_for_scoring

    o = DetectRun(**collect(kw, "run"))
    annotations, subset, plot_dir, diagnose_dir = o.annotations, o.subset, o.plot_dir, o.diagnose_dir

    from .pipeline import diagnose, format_diagnosis

    run_dir = Path(o.run_dir) if o.run_dir else latest_run()
    features, videos, failed = _store_given(inputs), None, {}
    if o.features_cache and (features is not None or not inputs):
        raise DataError("--features names where the features of VIDEO... go; give videos, or the store as FEATURES",
                        o.features_cache)
    if inputs and features is None:
        features, videos, failed = _extract(run_dir, inputs, o)
    scored = open_run_for_scoring(run_dir, features, annotations, subset, device=o.device, videos=videos)
    if scored.note:
        click.echo(scored.note, err=True)
    ann, ids, dcfg = scored.truth, scored.ids, scored.detect_config(collect(kw, "detect"))
    if diagnose_dir and (ann is None or not ann.has_segments()):
        raise DataError("--diagnose needs ground truth with segments (--annotations, or the run's)", run_dir)
    plot_ids = _plot_ids(o.plot_videos, ids, scored.store.path) if plot_dir else []
    use_cpu_threads(o.threads, next(scored.model.parameters()).device)
    scored.compute(progress=not o.quiet)
    results = scored.detections(dcfg)
    out = Path(o.out) if o.out else run_dir / ("videos-detections.json" if videos is not None else "detections.json")
    write_detections(out, results, extra={"run": str(run_dir), "threshold": dcfg.threshold})
    n = sum(len(v) for v in results.values())
    click.echo(f"{n} detections in {len(ids)} videos -> {out}", err=True)
    if ann is not None and ann.has_segments():
        ev, cm = scored.evaluate(results, dcfg, ambiguous=_ambiguous(ann, o.thumos_ambiguous, annotations))
        click.echo(describe_set(ann, scored.subset, o.thumos_ambiguous), err=True)
        diag = diagnose(scored.scores, results, ann, scored.classes, dcfg, scored.model.method.evidence)
        click.echo(format_diagnosis(diag, dcfg.scale, dcfg.smooth), err=True)
        click.echo(format_detection_table(ev, cm))
        write_json(out.with_suffix(".eval.json"), {**ev.to_dict(), "classification": cm, "diagnosis": diag})
    viewer = None
    if o.view_dir:
        from .viewer import known_files, write_viewer

        files = known_files(scored.store, ids, _named_videos(o.view_videos, inputs if videos is not None else ()))
        page = write_viewer(o.view_dir, scored.scores, scored.classes, results, ann, files, dcfg,
                            scored.model.method.evidence, copy=o.view_copy, title=f"Detections of {run_dir.name}",
                            progress=not o.quiet)
        viewer = (page, set(files))
        click.echo(f"viewer: {page} ({len(files)} of {len(ids)} videos with their file)", err=True)
        if not o.view_copy and (odd := unplayable_note(files)):
            click.echo(odd, err=True)
    if diagnose_dir:
        from .diagnose_cli import print_diagnosis
        from .diagnosis.diagnose import diagnose_results, store_durations, with_durations, write_diagnosis

        ann = with_durations(ann, store_durations(scored.store, ids))
        runs = {run_dir.name: diagnose_results(ann, results)}
        print_diagnosis(runs, write_diagnosis(runs, ann, report_dir=diagnose_dir, title=f"Diagnosis of {run_dir.name}",
                                              viewer=viewer))
    if plot_dir:
        from .plot import plot_timeline

        # Drawn into a staging folder: a failure leaves no half-filled DIR behind.
        by_id = {vs.video_id: vs for vs in scored.scores}
        with staged_dir(plot_dir) as stage:
            drawn = [plot_timeline(by_id[v], scored.classes, results[v], ann[v].segments if ann is not None else None,
                                   stage / f"{v}.png", dcfg, scored.model.method.evidence) for v in plot_ids]
        for p in drawn:
            click.echo(f"timeline: {Path(plot_dir) / p.name}", err=True)
    if failed:
        click.echo(f"{len(failed)} video(s) could not be extracted and were skipped: "
                   + "; ".join(f"{v}: {r}" for v, r in sorted(failed.items())), err=True)
        sys.exit(1)


def _named_videos(search, inputs) -> dict:
    """Video id -> file, of ``--view-videos`` or else the VIDEO... arguments."""
    from tsrnet.extract.sources import find_videos

    where = [Path(search)] if search else list(inputs)
    return {p.stem: p for p in find_videos(where)[0]} if where else {}


def unplayable_note(files: dict) -> str:
    """What to say of the videos (id -> VideoFile) browsers would not play as they are; "" for none."""
    odd = [f for f in files.values() if not f.playable]
    if not odd:
        return ""
    codecs = sorted({f.codec or "unreadable" for f in odd})
    return (f"{len(odd)} of these videos are in codecs browsers do not play ({', '.join(codecs)}); "
            "detect --view-copy writes playable copies beside the page")


def _store_given(inputs: tuple) -> Path | None:
    """The store to score when the arguments are one (an HDF5 file); None for none (the run's) or videos."""
    import h5py

    stores = [p for p in inputs if p.is_file() and h5py.is_hdf5(p)]
    if stores and len(inputs) > 1:
        raise DataError("give one feature store, or videos (files, folders, .txt lists), not several stores or "
                        "both", stores[0])
    return stores[0] if stores else None


def _extract(run_dir: Path, inputs: tuple, o: DetectRun) -> tuple:
    """Extract the videos of ``inputs`` as the run's store was; (the cache store, ids extracted, failures)."""
    from tsrnet.extract.recipe import extract_videos, settings_from_store
    from tsrnet.train.rundir import run_info

    info = run_info(run_dir)
    if not info.get("features"):
        raise DataError("run.json records no feature store, so how to extract videos for it is unknown", run_dir)
    cache = Path(o.features_cache) if o.features_cache else run_dir / "videos.h5"
    settings = settings_from_store(info["features"], list(inputs), cache, o.device, threads=o.threads,
                                   quiet=o.quiet)
    ids, failed = extract_videos(settings)
    for v, reason in sorted(failed.items()):
        click.echo(f"skipped video {v}: {reason}", err=True)
    done = [v for v in ids if v not in failed]
    if not done:
        raise DataError(f"none of the {len(ids)} video(s) could be extracted", cache)
    return cache, done, failed


def _ambiguous(ann, wanted: bool, source):
    if not wanted:
        return None
    if not ann.ambiguous:
        raise DataError("--thumos-ambiguous needs Ambiguous spans, and this ground truth has none (give the "
                        "THUMOS14 per-class folder, the W-TALC folder, or JSON written from them by "
                        "convert-annotations)", source)
    return ann.ambiguous


def describe_set(ann, subset, thumos_ambiguous: bool) -> str:
    """One line saying which videos were scored and under which rule."""
    n = len(ann.video_ids())
    line = f"evaluated on {n} videos" + (f" of subset {subset!r}" if subset else "")
    proto = ann.protocol or {}
    if proto.get("name"):
        line += f", protocol {proto['name']} ({proto.get('description', '')})"
    elif proto.get("excluded"):
        line += f", {len(proto['excluded'])} video(s) excluded"
    line += "; Ambiguous spans: " + ("false positives on them not counted (THUMOS14)" if thumos_ambiguous
                                     else "not used (ActivityNet protocol)")
    return line


def _plot_ids(spec: str, ids: list[str], source) -> list[str]:
    """``--plot-videos``: a count (the first ids) or comma-separated ids, checked before any work is done."""
    if spec.strip().isdigit():
        return ids[:int(spec)]
    wanted = [v.strip() for v in spec.split(",") if v.strip()]
    absent = [v for v in wanted if v not in set(ids)]
    if absent or not wanted:
        raise DataError(f"--plot-videos {spec!r}: not among the {len(ids)} video(s) to score: {absent[:3]}", source)
    return wanted


@dataclass(frozen=True)
class EvaluateOptions:
    """Which detections evaluate scores, at which thresholds, under which rule, and what it writes."""

    subset: str | None = opt(None, "Evaluate the videos of this subset of the ground truth.", shown="all")
    tiou: list = opt([], "tIoU thresholds.", range=(0.01, 1.0), shown="0.1 0.2 ... 0.9")
    activitynet: bool = opt(False, "Use ActivityNet's thresholds 0.5:0.05:0.95.", flag=True)
    json_out: str | None = opt(None, "Write the results as JSON here.", path="file", option="--json")
    per_class: bool = opt(True, "Print per-class AP.")
    thumos_ambiguous: bool = opt(False, "THUMOS14's official rule: false positives overlapping an Ambiguous span "
                                        "are not counted (needs the ground truth's Ambiguous spans). Default: the "
                                        "ActivityNet protocol, no such rule.", flag=True)


@click.command(context_settings=CTX)
@click.argument("ground_truth", type=click.Path(exists=True))
@click.argument("detections_json", type=click.Path(exists=True, dir_okay=False))
@dataclass_options(EvaluateOptions, "ev")
@fail_cleanly
def evaluate(ground_truth, detections_json, **kw):
    """Score detections with the ActivityNet detection protocol (mAP at each tIoU threshold).

    Says which set it scored; when the ground truth was made with an
    exclusion list (convert-annotations --exclude thumos14-210), detections
    of the excluded videos are dropped rather than counted as false positives.
    """
    from .evaluate import ACTIVITYNET_TIOUS

    o = EvaluateOptions(**collect(kw, "ev"))
    subset, thumos_ambiguous = o.subset, o.thumos_ambiguous
    ann = load_annotations(ground_truth).select(subset)
    if not ann.has_segments():
        raise DataError("ground truth has no segments to evaluate against", ground_truth)
    thresholds = tuple(o.tiou) or (ACTIVITYNET_TIOUS if o.activitynet else THUMOS_TIOUS)
    pred = read_detections(detections_json)
    ambiguous = _ambiguous(ann, thumos_ambiguous, ground_truth)
    excluded = set((ann.protocol or {}).get("excluded", []))
    if excluded:
        dropped = pred["video-id"].isin(excluded)
        pred = pred[~dropped]
        if dropped.any():
            click.echo(f"dropped {int(dropped.sum())} detections of excluded videos", err=True)
    click.echo(describe_set(ann, subset, thumos_ambiguous), err=True)
    res = evaluate_detections(ann.ground_truth_frame(), pred, thresholds, ambiguous)
    if res.ignored_labels:
        click.echo(f"warning: ignored predictions of classes absent from the ground truth: "
                   f"{res.ignored_labels[:5]}{' ...' if len(res.ignored_labels) > 5 else ''}", err=True)
    if o.per_class:
        width = max(len(c) for c in res.per_class)
        for c, ap in res.per_class.items():
            click.echo(f"{c:<{width}}  " + " ".join(f"{v * 100:5.1f}" for v in ap))
    click.echo(format_detection_table(res))
    if o.json_out:
        write_json(o.json_out, res.to_dict())
    sys.exit(0)
