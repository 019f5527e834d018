"""``extract-features`` and ``merge-features``."""
from __future__ import annotations

import json
import os
import sys
import time
import zlib
from pathlib import Path

import click
import numpy as np

from data.cliutil import collect, dataclass_options, fail_cleanly
from data.errors import DataError

from .flow import TVL1Params

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv"}
CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
DEFAULT_ROWS_PER_SECOND = 4.0
EXIT_SOME_FAILED = 1


def find_videos(source: Path) -> tuple[list[Path], Path | None]:
    """Video paths from a folder (recursive), a text file listing paths, or one file; and the folder root."""
    if source.is_dir():
        vids = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if not vids:
            raise DataError(f"no video files ({', '.join(sorted(VIDEO_EXTENSIONS))}) in this folder", source)
        return vids, source
    if source.suffix.lower() in (".txt", ".lst", ".list"):
        vids = []
        for line in source.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                p = Path(line)
                vids.append(p if p.is_absolute() else source.parent / p)
        if not vids:
            raise DataError("the list of videos is empty", source)
        return vids, None
    return [source], None


def parse_shard(shard: str | None) -> tuple[int, int]:
    """``K/N`` (0-based K), or SLURM's array variables, or (0, 1)."""
    if shard is None:
        tid, cnt = os.environ.get("SLURM_ARRAY_TASK_ID"), os.environ.get("SLURM_ARRAY_TASK_COUNT")
        if tid is None or cnt is None:
            return 0, 1
        k = int(tid) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        return k, int(cnt)
    try:
        k, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise click.BadParameter(f"{shard!r} is not K/N (e.g. 3/16)", param_hint="--shard") from None
    if not (n >= 1 and 0 <= k < n):
        raise click.BadParameter(f"{shard!r}: need 0 <= K < N", param_hint="--shard")
    return k, n


def in_shard(video_id: str, k: int, n: int) -> bool:
    # A hash of the id rather than its position: adding videos later does not move the others.
    return zlib.crc32(video_id.encode()) % n == k


def shard_path(out: Path, k: int, n: int) -> Path:
    return out if n == 1 else out.with_name(f"{out.stem}-shard-{k:04d}-of-{n:04d}{out.suffix}")


@click.command(context_settings=CTX)
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--fps", "rows_per_second", default=DEFAULT_ROWS_PER_SECOND, show_default=True,
              help="Feature rows per second of video (the paper sampled every frame at 30 fps; see README).")
@click.option("--trimmed", is_flag=True, help="Mark the videos as trimmed clips; in <root>/<Class>/<clip> "
              "layout (UCF101) the folder name becomes the clip's label.")
@click.option("--annotations", type=click.Path(exists=True), help="Ground truth: stores labels and subsets.")
@click.option("--decoder", type=click.Choice(["decord", "pyav"]), default="decord", show_default=True,
              help="Video decoder; PyAV is also the fallback when decord cannot read a file.")
@click.option("--flow-backend", type=click.Choice(["auto", "torch", "opencv"]), default="auto", show_default=True,
              help="TV-L1 implementation: auto = torch on GPU, opencv on CPU.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--weights", default="imagenet", show_default=True,
              help="imagenet (torchvision's, via the torch hub cache), random (tests only), or a checkpoint path.")
@click.option("--rgb-weights", help="Checkpoint of a fine-tuned RGB network (overrides --weights for RGB).")
@click.option("--flow-weights", help="Checkpoint of a fine-tuned 10-channel flow network (overrides --weights).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="CNN arithmetic: auto = bf16 (autocast) on GPU and CPU.")
@click.option("--batch-size", default=32, show_default=True, help="Rows per CNN batch.")
@click.option("--resize", default=256, show_default=True, help="Short side before the centre crop (RGB and flow).")
@click.option("--crop", default=224, show_default=True, help="Centre crop fed to the networks.")
@click.option("--workers", default=0, show_default=True, help="Threads for OpenCV flow (0: all cores).")
@click.option("--shard", help="K/N: process the K-th (0-based) of N deterministic shards, into OUT-shard-K-of-N.h5 "
              "[default: from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT].")
@click.option("--overwrite", is_flag=True, help="Redo videos already in OUT.")
@click.option("--no-consolidate", is_flag=True, help="Leave OUT as an index of per-video files (OUT.parts/).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@dataclass_options(TVL1Params, "tvl1", flag_prefix="tvl1-")
@fail_cleanly
def extract_features(source, out, rows_per_second, trimmed, annotations, decoder, flow_backend, device, weights,
                     rgb_weights, flow_weights, precision, batch_size, resize, crop, workers, shard, overwrite,
                     no_consolidate, quiet, **kw):
    """Extract two-stream ResNet101 features of the videos in SOURCE into the store OUT.

    SOURCE is a folder (searched recursively), a .txt file listing video paths,
    or one video. Finished videos are skipped when the command is run again,
    and a killed run leaves OUT readable with every finished video.

    Exit status: 0 all videos extracted; 1 some videos failed (each is named on
    stderr and in the store's `failures` attribute; the others are extracted);
    2 the run could not start (bad arguments, unreadable inputs).
    """
    import torch
    from tqdm.auto import tqdm

    from data.annotations import load_annotations

    from . import writer
    from .features import TransformConfig, TwoStreamCNN
    from .flow import default_backend
    from .pipeline import Extractor
    from .resnet import FEATURE_DIM, WeightsError, build, load_state

    k, n_shards = parse_shard(shard)
    out = shard_path(out, k, n_shards)
    paths, root = find_videos(source)
    by_id: dict[str, Path] = {}
    for p in paths:
        if p.stem in by_id:
            raise DataError(f"two videos share the id {p.stem!r}: {by_id[p.stem]} and {p}", source, p.stem)
        if "/" in p.stem:
            raise DataError("a video id must not contain '/'", p)
        by_id[p.stem] = p
    ids = [v for v in sorted(by_id) if in_shard(v, k, n_shards)]
    ann = load_annotations(annotations) if annotations else None

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)
    backend = default_backend(dev) if flow_backend == "auto" else flow_backend
    prec = "bf16" if precision == "auto" else precision
    if crop > resize:
        raise click.BadParameter(f"--crop {crop} is larger than --resize {resize}", param_hint="--crop")
    tf = TransformConfig(resize=resize, crop=crop, tvl1=TVL1Params(**collect(kw, "tvl1")))
    specs = {"rgb": rgb_weights or weights, "flow": flow_weights or weights}
    settings = {"backbone": "resnet101", "rows_per_second": rows_per_second, "weights": specs,
                "transform": tf.to_dict(), "flow_stack": 5, "feature_dim": FEATURE_DIM}
    info = {"source": "extract-features", "flow_backend": backend, "decoder": decoder, "device": str(dev),
            "precision": prec, "rows_per_second": rows_per_second}
    if "random" in specs.values():
        info["weights_warning"] = "RANDOM WEIGHTS: these features are for tests and demos, not for real results"
        click.echo("warning: --weights random: the features carry no learned information (tests and demos only)",
                   err=True)

    if overwrite:
        import shutil

        shutil.rmtree(writer.parts_dir(out), ignore_errors=True)
        if out.exists():
            out.unlink()
    old, failures = writer.read_settings(out)
    if not old and out.exists():
        raise DataError("exists and was not written by extract-features; choose another OUT", out)
    if old and old != settings:
        raise DataError(f"was extracted with other settings ({', '.join(writer.settings_diff(old, settings))}); "
                        "use another OUT, the same settings, or --overwrite", out)
    _refuse_other_domain(out, ids, "trimmed" if trimmed else "untrimmed")
    writer.open_for_append(out)
    done = writer.finished(out)
    todo = [v for v in ids if v not in done]
    failures = [f for f in failures if f["video"] not in set(todo) | done]  # retried now or since fixed

    def save_index():  # OUT.h5 as it stands: every finished video and every failure so far
        writer.write_index(out, writer.root_attrs(FEATURE_DIM, settings, info, failures))

    def finish():
        save_index()
        if not no_consolidate:
            writer.consolidate(out)

    if not todo:
        click.echo(f"{out}: all {len(ids)} videos already extracted", err=True)
        finish()
        return

    try:
        rgb_net = build(3, load_state(specs["rgb"]), specs["rgb"])
        flow_net = build(10, load_state(specs["flow"]), specs["flow"])
    except WeightsError as e:
        raise DataError(str(e)) from None
    if dev.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    cnn = TwoStreamCNN(rgb_net, flow_net, dev, prec, batch_size)
    extractor = Extractor(cnn, rows_per_second, tf, decoder, backend, dev, workers or (os.cpu_count() or 1))
    save_index()

    t_start = time.perf_counter()
    phase = {"decode": 0.0, "flow": 0.0, "cnn": 0.0}
    rows_total, ok = 0, 0
    bar = tqdm(todo, desc=f"extract {out.name}", unit="video", disable=quiet, dynamic_ncols=True)
    for vid in bar:
        path = by_id[vid]
        try:
            feats = _extract_one(extractor, path, decoder)
            for s_, x_ in (("rgb", feats.rgb), ("flow", feats.flow)):
                if not np.isfinite(x_.astype(np.float16)).all():
                    raise _VideoFailed(f"{s_} features are not finite in float16 (weights producing "
                                       "activations beyond 65504?)")
        except _VideoFailed as e:
            failures.append({"video": vid, "path": str(path), "reason": str(e)})
            tqdm.write(f"{path}: video {vid}: {e}", file=sys.stderr)
            save_index()
            continue
        a = ann[vid] if ann is not None and vid in ann else None
        subset, labels = (a.subset, a.labels) if a is not None else (None, None)
        if a is None and trimmed and root is not None and path.parent != root:
            labels = [path.parent.name]
        writer.write_part(out, vid, times=feats.times, fps=feats.fps, duration=feats.duration,
                          n_frames=feats.n_frames, domain="trimmed" if trimmed else "untrimmed", subset=subset,
                          labels=labels, rgb=feats.rgb, flow=feats.flow)
        save_index()
        ok += 1
        rows_total += len(feats.times)
        for p_, s_ in feats.seconds.items():
            phase[p_] += s_
        bar.set_postfix(rows_per_s=f"{rows_total / max(time.perf_counter() - t_start, 1e-9):.1f}")
    bar.close()
    wall = time.perf_counter() - t_start
    finish()
    click.echo(f"{out}: {ok} extracted, {len(ids) - len(todo)} skipped (done before), {len(failures)} failed; "
               f"{rows_total} rows in {wall:.1f} s (decode {phase['decode']:.1f} s, flow {phase['flow']:.1f} s, "
               f"cnn {phase['cnn']:.1f} s)", err=True)
    if failures:
        sys.exit(EXIT_SOME_FAILED)


def _refuse_other_domain(out: Path, ids: list[str], domain: str) -> None:
    """One store holds both domains, so an id must name one video: a clip named like a stored untrimmed
    video would otherwise be skipped as done."""
    from .writer import domains

    clash = sorted(v for v, d in domains(out, ids).items() if d != domain)
    if clash:
        raise DataError(f"{len(clash)} video id(s) to extract as {domain} are already in the store as "
                        f"{'untrimmed' if domain == 'trimmed' else 'trimmed'} videos, first: {clash[0]}; ids are "
                        "file stems and must be unique across both domains (rename the files or use another OUT)",
                        out, clash[0])


class _VideoFailed(Exception):
    pass


def _extract_one(extractor, path: Path, decoder: str):
    """Features of one video; when decord cannot read it, PyAV is the fallback."""
    from .decode import DecodeError, first_line

    errors = []
    for d in [decoder] + (["pyav"] if decoder == "decord" else []):
        try:
            return extractor(path, d)
        except DecodeError as e:
            errors.append(str(e))
        except Exception as e:  # noqa: BLE001 - one odd video must not stop a run over thousands
            raise _VideoFailed(f"{type(e).__name__}: {first_line(e)}") from None
    last, first = errors[-1], errors[0]
    raise _VideoFailed(f"{last} (decord: {first})" if last != first else last)


@click.command(context_settings=CTX)
@click.argument("shards", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@fail_cleanly
def merge_features(shards, out):
    """Merge the stores SHARDS (e.g. from --shard runs) into OUT, after checking their settings match."""
    import h5py

    from .writer import copy_videos, read_settings, settings_diff

    if out.exists():
        raise DataError("exists; merge into a new file", out)
    first, failures, seen = None, [], {}
    for s in shards:
        settings, fails = read_settings(s)
        if first is None:
            first = (s, settings)
        elif settings != first[1]:
            raise DataError(f"was extracted with other settings than {first[0]} "
                            f"({', '.join(settings_diff(settings, first[1]))})", s)
        failures += fails
        with h5py.File(s, "r") as f:
            for vid in f["videos"]:
                if vid in seen:
                    raise DataError(f"video also in {seen[vid]}", s, vid)
                seen[vid] = s
    with h5py.File(shards[0], "r") as f0:
        attrs = dict(f0.attrs)
    failures = [f for f in failures if f["video"] not in seen]  # failed in one shard, done in another
    attrs["failures"] = json.dumps(failures)
    copy_videos(list(shards), out, attrs)
    click.echo(f"{out}: {len(seen)} videos from {len(shards)} stores, {len(failures)} failures recorded", err=True)
