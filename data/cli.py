"""``make-synthetic-features``, ``import-features`` and ``convert-annotations``."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import click

from tsrnet.data.common_cli import collect, dataclass_options, fail_cleanly
from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.importers.npy_import import import_npy
from tsrnet.data.core.errors import DataError
from tsrnet.data.core.settings import opt
from tsrnet.data.core.progress import quiet_opt
from tsrnet.data.format.protocols import apply_exclude, resolve_exclude
from tsrnet.data.importers.releases import LAYOUTS, detect_annotation_layout, detect_layout, npy_folders, read_release
from tsrnet.data.importers.releases.common import write_release
from tsrnet.data.generators.synthetic import SyntheticSpec, generate
from tsrnet.data.generators.synthetic_family import PRESETS, preset_spec
from tsrnet.data.generators.synthetic_layout import LayoutSpec, generate_from_layout
from tsrnet.data.generators.synthetic_videos import VideoSpec, generate_videos

CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _only(kind, values: dict, mode: str) -> dict:
    names = {f.name for f in dataclasses.fields(kind)}
    wrong = sorted(k for k in values if k not in names)
    if wrong:
        raise DataError(f"option(s) {', '.join('--' + k.replace('_', '-') for k in wrong)} do not apply {mode}")
    return values


@dataclass(frozen=True)
class SyntheticMode:
    """Which generator make-synthetic-features runs, and what it writes besides the store."""

    preset: str | None = opt(None, "A family of the benchmark (docs/synthetic-data.md): real THUMOS14 or "
                                   "ActivityNet 1.3 action times with the feature statistics, scene, action "
                                   "appearance and distractors of one kind of real data. Its settings can be "
                                   "changed with the options below, its annotations with --layout.",
                             choices=tuple(PRESETS))
    layout: str | None = opt(None, "Take video durations and action times from real ground truth (a W-TALC "
                                   "annotation folder, a THUMOS14 per-class folder, ActivityNet JSON or CSV), or "
                                   "'activitynet-like' for few long actions per video. Every row of a video then "
                                   "carries its class's scene (--context).")
    release: str | None = opt(None, "With --layout or --preset: also write the untrimmed videos as a W-TALC release "
                                    "in OUT_DIR/release/ (feature .npy + annotation folder), the format public WTAL "
                                    "code reads, to try 'import-features' and public implementations without a "
                                    "download.", choices=("wtalc",))


@click.command(context_settings=CTX)
@click.argument("out_dir", type=click.Path(file_okay=False))
@dataclass_options(SyntheticMode, "mode")
@dataclass_options(SyntheticSpec, "spec", other=LayoutSpec, other_label="--layout", skip=("layout",))
@fail_cleanly
def make_synthetic_features(out_dir, **kw):
    """Write a planted-action feature store with known ground truth into OUT_DIR.

    Files: untrimmed.h5 (subsets train/test, or the layout's), trimmed.h5
    (domain-shifted single-action clips), annotations.json (ActivityNet layout).

    \b
    make-synthetic-features syn/                                  # own layout
    make-synthetic-features th14/ --layout TH14_annotations/      # THUMOS14's real times
    make-synthetic-features anet/ --layout activitynet-like
    make-synthetic-features fam/ --preset th14-i3d --seed 1 --release wtalc
    """
    mode = SyntheticMode(**collect(kw, "mode"))
    preset, layout, release = mode.preset, mode.layout, mode.release
    values = collect(kw, "spec")
    if preset or layout:
        values = _only(LayoutSpec, values, "with --layout or --preset")
        if layout:
            values["layout"] = layout
        spec = preset_spec(preset, **values) if preset else LayoutSpec(**values)
        paths = generate_from_layout(out_dir, spec)
        if release:
            from tsrnet.data.importers.releases.wtalc import export_release

            folder = spec.layout if (Path(spec.layout) / "videoname.npy").exists() else None
            paths["release"], paths["release annotations"] = export_release(
                paths["untrimmed"], folder, Path(out_dir) / "release",
                annotations=None if folder else load_annotations(paths["annotations"]))
            # A W-TALC release does not record its rate: say how to import it at the rate it was made with.
            click.echo(f"import with: import-features OUT.h5 --features {paths['release'].parent} "
                       f"--fps {spec.rate * 16:g} --frames-per-row 16")
    elif release:
        raise DataError("--release needs --layout or --preset (the release's annotations come from them)")
    else:
        paths = generate(out_dir, SyntheticSpec(**_only(SyntheticSpec, values, "without --layout")))
    for k, p in paths.items():
        click.echo(f"{k}: {p}")


@dataclass(frozen=True)
class Display:
    """How a command shows its progress."""

    quiet: bool = quiet_opt()


@click.command(context_settings=CTX)
@click.argument("out_dir", type=click.Path(file_okay=False))
@dataclass_options(Display, "display")
@dataclass_options(VideoSpec, "spec")
@fail_cleanly
def make_synthetic_videos(out_dir, **kw):
    """Write synthetic untrimmed videos, trimmed clips and their annotations into OUT_DIR.

    Layout: untrimmed/<video>.mp4 (subsets train/test in annotations.json),
    trimmed/<Class>/<clip>.mp4 (the folder names the label, as in UCF101).
    Classes differ by shape and colour (RGB) and by motion (flow).
    """
    quiet = Display(**collect(kw, "display")).quiet
    paths = generate_videos(out_dir, VideoSpec(**collect(kw, "spec")), progress=not quiet)
    for k, p in paths.items():
        click.echo(f"{k}: {p}")


NPY_FPS, NPY_FRAMES_PER_ROW = 25.0, 16  # the rate of per-video .npy features when none is given


@dataclass(frozen=True)
class ImportOptions:
    """What import-features reads and how it writes the store."""

    layout: str | None = opt(None, "The release's layout (docs/releases.md).", choices=(*LAYOUTS, "auto"),
                             shown="with --features: auto, which says what it chose")
    features: str | None = opt(None, "The release: its feature file or folder.", path="existing")
    rgb_dir: str | None = opt(None, "Folder of <video>.npy RGB features.", path="existing dir")
    flow_dir: str | None = opt(None, "Folder of <video>.npy flow features.", path="existing dir")
    concat_dir: str | None = opt(None, "Folder of <video>.npy with RGB and flow concatenated (n, 2D), RGB first.",
                                 path="existing dir")
    fps: float | None = opt(None, "Frame rate the rows count frames at (npy, wtalc, basnet, acmnet).", parse=float,
                            shown=f"the release's own; {NPY_FPS:g} for npy")
    frames_per_row: int | None = opt(None, "Source frames per feature row (npy, wtalc, basnet, acmnet).", parse=int,
                                     shown=f"the release's own; {NPY_FRAMES_PER_ROW} for npy")
    annotations: str | None = opt(None, "Ground truth: labels, subsets, durations.", path="existing",
                                  shown="releases: the files beside the features")
    exclude: str | None = opt(None, "Leave these videos out: a preset (thumos14-210), ID,ID or a file of ids.")
    trimmed: bool = opt(False, "Mark the videos as trimmed clips.", flag=True)
    overwrite: bool = opt(False, "Replace OUT if it exists (npy default: append to it).", flag=True)
    strict: bool = opt(False, "Refuse entries a release ships unusable (empty, all zeros, no file) and npy entries "
                              "shorter than their annotated duration, instead of naming and leaving them out.",
                       flag=True)
    skip_bad: bool = opt(False, "Releases: leave out (and record) entries with NaN or a length that disagrees with "
                                "the duration, instead of stopping.", flag=True)
    quiet: bool = quiet_opt()


@click.command(context_settings=CTX)
@click.argument("out", type=click.Path(dir_okay=False))
@dataclass_options(ImportOptions, "imp")
@fail_cleanly
def import_features(out, **kw):
    """Import a feature release, or per-video .npy features, into a feature store OUT (written atomically).

    \b
    import-features th14.h5 --features Thumos14reduced-I3D-JOINTFeatures.npy        # layout auto
    import-features th14.h5 --layout basnet --features THUMOS14/
    import-features th14.h5 --layout actionformer --features thumos/i3d_features
    import-features anet.h5 --layout bsn --features csv_mean_100/ --annotations activitynet_annotations/
    import-features out.h5 --rgb-dir R --flow-dir F --fps 25 --frames-per-row 16

    Each row is timed at the centre of the frames it summarises, by the release's own rate. An existing
    OUT from import-features gets npy videos appended, e.g. trimmed clips (--trimmed) beside untrimmed
    videos, when D, --fps and --frames-per-row match; a release is imported into a new store.
    """
    o = ImportOptions(**collect(kw, "imp"))
    layout, features, rgb_dir, flow_dir, concat_dir, fps, frames_per_row, annotations, exclude = (
        o.layout, o.features, o.rgb_dir, o.flow_dir, o.concat_dir, o.fps, o.frames_per_row, o.annotations, o.exclude)
    overwrite, strict, skip_bad, quiet = o.overwrite, o.strict, o.skip_bad, o.quiet
    domain = "trimmed" if o.trimmed else "untrimmed"
    if rgb_dir or flow_dir or concat_dir:
        if features or (layout not in (None, "npy")):
            raise DataError("--rgb-dir/--flow-dir/--concat-dir are the npy layout; give them or --features, not both")
        dirs = {"rgb_dir": rgb_dir, "flow_dir": flow_dir, "concat_dir": concat_dir}
        layout = "npy"
    elif not features:
        raise DataError("give --features PATH (with --layout, default auto), or --rgb-dir/--flow-dir/--concat-dir")
    else:
        if layout in (None, "auto"):
            layout, why = detect_layout(features, annotations)
            if layout == "npy" and (fps is None or frames_per_row is None):
                # No release recognised: the rate is the user's to give, never a guess (a wrong one
                # shifts every detection while classification looks fine).
                raise DataError(f"no release layout recognised, only {why.split(',')[0]}; give the rate the rows "
                                "were computed at with --fps and --frames-per-row (or name --layout)", features)
            click.echo(f"layout: {layout} ({why})")
        if layout == "npy":
            dirs = npy_folders(Path(features))
            if dirs is None:
                raise DataError("no rgb/ and flow/ folders and no <video>.npy files here", features)
    if layout == "npy":
        if exclude or skip_bad:
            raise DataError("--exclude and --skip-bad apply to the release layouts, not npy")
        ann = load_annotations(annotations) if annotations else None
        fps, frames_per_row = fps or NPY_FPS, frames_per_row or NPY_FRAMES_PER_ROW
        n = import_npy(out, dirs.get("rgb_dir"), dirs.get("flow_dir"), dirs.get("concat_dir"), fps,
                       frames_per_row, ann, domain, progress=not quiet, append=not overwrite, strict=strict)
        click.echo(f"{n} videos -> {out}; times[k] = ({frames_per_row} k + {frames_per_row / 2:g}) / {fps:g} "
                   "(--frames-per-row, --fps)")
        return
    rel = read_release(layout, features, annotations, fps, frames_per_row)
    preset, excluded = resolve_exclude(exclude)
    if excluded and preset is None and not set(excluded) & {it.video for it in rel.items}:
        raise DataError(f"none of the {len(excluded)} video(s) to exclude is in the release, first: {excluded[0]}",
                        features, excluded[0])
    summary = write_release(out, rel, overwrite=overwrite, strict=strict, skip_bad=skip_bad, exclude=excluded,
                            domain=domain, progress=not quiet)
    for line in summary["notes"]:
        click.echo(f"note: {line}")
    click.echo(f"{rel.attrs['release']}: {summary['imported']} videos -> {out}; {len(summary['failures'])} left out "
               f"(reasons in the store's 'failures' attribute)"
               + (f"; excluded {len(summary['excluded'])}: {', '.join(summary['excluded'])}" if summary["excluded"]
                  else "")
               + f"; {rel.attrs['time_convention']}")


@dataclass(frozen=True)
class ConvertOptions:
    """What convert-annotations leaves out."""

    exclude: str | None = opt(None, "Leave these videos out: a preset (thumos14-210), ID,ID or a file of ids; the "
                                    "set is recorded under 'protocol' in OUT.")
    no_ambiguous: bool = opt(False, "Do not write THUMOS14's ambiguous spans ('ambiguous' key).", flag=True)


@click.command(context_settings=CTX)
@click.argument("source", type=click.Path(exists=True))
@click.argument("out", type=click.Path(dir_okay=False))
@dataclass_options(ConvertOptions, "conv")
@fail_cleanly
def convert_annotations(source, out, **kw):
    """Convert ground truth to ActivityNet JSON.

    Reads a THUMOS14 per-class folder, CSV, ActivityNet JSON (BaS-Net / ACM-Net gt.json included), a
    W-TALC annotation folder, ActionFormer's thumos14.json or BSN's anet_anno_action.json (with
    video_info_new.csv beside it, or give their folder).
    """
    o = ConvertOptions(**collect(kw, "conv"))
    ann = load_annotations(source)
    kind = annotation_kind(source)
    ann = apply_exclude(ann, o.exclude)
    if o.no_ambiguous:
        ann.ambiguous = {}
    ann.write(out)
    differ = sum(a.labels_differ() for a in ann.videos.values())
    parts = [f"read as {kind}", f"{len(ann)} videos", f"{len(ann.classes())} classes", f"subsets {ann.subsets()}"]
    if differ:
        parts.append(f"{differ} videos' video-level labels differ from their segment labels (kept as video_labels)")
    if ann.ambiguous:
        parts.append(f"ambiguous spans of {len(ann.ambiguous)} videos (key 'ambiguous')")
    if ann.protocol:
        parts.append(f"excluded {len(ann.protocol['excluded_present'])} of {len(ann.protocol['excluded'])} listed"
                     + (f" ({ann.protocol['name']})" if ann.protocol.get("name") else ""))
    click.echo("; ".join(parts) + f" -> {out}")


def annotation_kind(source) -> str:
    p = Path(source)
    layout = detect_annotation_layout(p)
    if layout == "wtalc":
        return "W-TALC annotation folder"
    if layout == "bsn":
        return "BSN anet_anno_action.json"
    if layout == "actionformer":
        return "ActionFormer annotation JSON (subsets lower-cased)"
    if p.is_dir() or p.name.endswith(("_val.txt", "_test.txt")):
        return "THUMOS14 per-class files"
    if p.suffix.lower() == ".csv":
        return "CSV"
    return "ActivityNet JSON"
