"""``make-synthetic-features``, ``import-features`` and ``convert-annotations``."""
from __future__ import annotations

import dataclasses

import click

from .annotations import load_annotations
from .cliutil import collect, fail_cleanly
from .npy_import import import_npy
from .errors import DataError
from .synthetic import SyntheticSpec, generate
from .synthetic_layout import LayoutSpec, generate_from_layout
from .synthetic_videos import VideoSpec, generate_videos

CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _spec_options(kind, other=None, other_flag: str = ""):
    # The spec dataclasses have no help metadata; name each field plainly. With ``other``, the
    # options of both specs are offered once, each default shown for the mode it belongs to.
    def decorate(fn):
        mine = {f.name: f for f in dataclasses.fields(kind)}
        theirs = {f.name: f for f in dataclasses.fields(other)} if other else {}
        names = list(mine) + [n for n in theirs if n not in mine and n != "layout"]
        for name in reversed(names):
            f = mine.get(name) or theirs[name]
            shown = []
            if name in mine:
                shown.append(f"{mine[name].default}" if not theirs else f"{mine[name].default} without {other_flag}")
            if name in theirs:
                shown.append(f"{theirs[name].default} with {other_flag}")
            fn = click.option("--" + name.replace("_", "-"), f"spec__{name}", type=type(f.default),
                              default=None, help=f"[default: {'; '.join(shown)}]")(fn)
        return fn

    return decorate


def _only(kind, values: dict, mode: str) -> dict:
    names = {f.name for f in dataclasses.fields(kind)}
    wrong = sorted(k for k in values if k not in names)
    if wrong:
        raise DataError(f"option(s) {', '.join('--' + k.replace('_', '-') for k in wrong)} do not apply {mode}")
    return values


@click.command(context_settings=CTX)
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--layout", help="Take video durations and action times from real ground truth (a W-TALC "
              "annotation folder, a THUMOS14 per-class folder, ActivityNet JSON or CSV), or 'activitynet-like' "
              "for few long actions per video. Every row of a video then carries its class's scene (--context).")
@_spec_options(SyntheticSpec, LayoutSpec, "--layout")
@fail_cleanly
def make_synthetic_features(out_dir, layout, **kw):
    """Write a planted-action feature store with known ground truth into OUT_DIR.

    Files: untrimmed.h5 (subsets train/test, or the layout's), trimmed.h5
    (domain-shifted single-action clips), annotations.json (ActivityNet layout).

    \b
    make-synthetic-features syn/                                  # own layout
    make-synthetic-features th14/ --layout TH14_annotations/      # THUMOS14's real times
    make-synthetic-features anet/ --layout activitynet-like
    """
    values = collect(kw, "spec")
    if layout:
        spec = LayoutSpec(layout=layout, **_only(LayoutSpec, values, "with --layout"))
        paths = generate_from_layout(out_dir, spec)
    else:
        paths = generate(out_dir, SyntheticSpec(**_only(SyntheticSpec, values, "without --layout")))
    for k, p in paths.items():
        click.echo(f"{k}: {p}")


@click.command(context_settings=CTX)
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_spec_options(VideoSpec)
@fail_cleanly
def make_synthetic_videos(out_dir, quiet, **kw):
    """Write synthetic untrimmed videos, trimmed clips and their annotations into OUT_DIR.

    Layout: untrimmed/<video>.mp4 (subsets train/test in annotations.json),
    trimmed/<Class>/<clip>.mp4 (the folder names the label, as in UCF101).
    Classes differ by shape and colour (RGB) and by motion (flow).
    """
    paths = generate_videos(out_dir, VideoSpec(**collect(kw, "spec")), progress=not quiet)
    for k, p in paths.items():
        click.echo(f"{k}: {p}")


@click.command(context_settings=CTX)
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--rgb-dir", type=click.Path(exists=True, file_okay=False), help="Folder of <video>.npy RGB features.")
@click.option("--flow-dir", type=click.Path(exists=True, file_okay=False), help="Folder of <video>.npy flow features.")
@click.option("--concat-dir", type=click.Path(exists=True, file_okay=False),
              help="Folder of <video>.npy with RGB and flow concatenated (n, 2D), RGB first.")
@click.option("--fps", default=25.0, show_default=True, help="Frame rate the features were computed at.")
@click.option("--frames-per-row", default=16, show_default=True, help="Source frames per feature row.")
@click.option("--annotations", type=click.Path(exists=True), help="Ground truth: labels, subsets, durations.")
@click.option("--trimmed", is_flag=True, help="Mark the videos as trimmed clips.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists (default: append to it).")
@click.option("--strict", is_flag=True, help="Refuse entries whose rows cover less than their annotated duration "
              "(default: name them on stderr and in the store's warnings attribute).")
@fail_cleanly
def import_features(out, rgb_dir, flow_dir, concat_dir, fps, frames_per_row, annotations, trimmed, overwrite,
                    strict):
    """Import per-video .npy features into a feature store OUT (written atomically).

    An existing OUT from import-features gets the videos appended, e.g. trimmed
    clips (--trimmed) beside untrimmed videos, when D, --fps and
    --frames-per-row match.
    """
    ann = load_annotations(annotations) if annotations else None
    n = import_npy(out, rgb_dir, flow_dir, concat_dir, fps, frames_per_row, ann,
                   "trimmed" if trimmed else "untrimmed", append=not overwrite, strict=strict)
    click.echo(f"{n} videos -> {out}")


@click.command(context_settings=CTX)
@click.argument("source", type=click.Path(exists=True))
@click.argument("out", type=click.Path(dir_okay=False))
@fail_cleanly
def convert_annotations(source, out):
    """Convert ground truth (THUMOS14 folder, CSV or ActivityNet JSON) to ActivityNet JSON."""
    ann = load_annotations(source)
    ann.write(out)
    click.echo(f"{len(ann)} videos, {len(ann.classes())} classes, subsets {ann.subsets()} -> {out}")
