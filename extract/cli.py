"""``extract-features`` and ``merge-features``."""
from __future__ import annotations

import json
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from tsrnet.data.cliutil import collect, dataclass_options, fail_cleanly, progress_interval
from tsrnet.data.errors import DataError

from .features import auto_precision
from .sources import VIDEO_EXTENSIONS, available_cpus, cpu_threads, find_videos  # noqa: F401 (cluster.py)
from .flow import TVL1Params

CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
DEFAULT_ROWS_PER_SECOND = 4.0
EXIT_SOME_FAILED = 1


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


class RowRate(click.ParamType):
    """``--fps``: a positive number of rows per second, or ``all`` (one row per decoded frame)."""

    name = "RATE|all"

    def convert(self, value, param, ctx):
        from .decode import ALL_FRAMES

        if isinstance(value, str) and value.strip().lower() == ALL_FRAMES:
            return ALL_FRAMES
        try:
            rate = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a number of rows per second nor 'all'", param, ctx)
        if not rate > 0:
            self.fail(f"{value!r}: rows per second must be positive", param, ctx)
        return rate


@dataclass
class Job:
    """What one extract-features invocation will do, checked before anything is written."""

    out: Path
    by_id: dict  # video id -> path, all of SOURCE
    ids: list  # the ids of this shard
    root: Path | None
    ann: object
    dev: object
    backend: str
    prec: str
    tf: object
    specs: dict
    settings: dict
    info: dict
    trimmed: bool


def _prepare(source, out, rows_per_second, trimmed, annotations, decoder, flow_backend, device, weights,
             rgb_weights, flow_weights, precision, resize, crop, k, n_shards, exclude_from, kw) -> Job:
    import torch

    from tsrnet.data.ground_truth import load_annotations

    from .features import TransformConfig
    from .flow import default_backend
    from .resnet import FEATURE_DIM, WeightsError, describe_weights

    progress_interval()  # a bad TSRNET_PROGRESS_INTERVAL stops the run here, before OUT is touched
    out = shard_path(out, k, n_shards)
    paths, root = find_videos(source)
    by_id: dict[str, Path] = {}
    for p in paths:
        if p.stem in by_id:
            raise DataError(f"two videos share the id {p.stem!r}: {by_id[p.stem]} and {p}", source, p.stem)
        if "/" in p.stem:
            raise DataError("a video id must not contain '/'", p)
        by_id[p.stem] = p
    excluded = _videos_in(exclude_from)
    ids = [v for v in sorted(by_id) if in_shard(v, k, n_shards) and v not in excluded]
    ann = load_annotations(annotations) if annotations else None

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)
    backend = default_backend(dev) if flow_backend == "auto" else flow_backend
    prec = auto_precision(dev) if precision == "auto" else precision
    if crop > resize:
        raise click.BadParameter(f"--crop {crop} is larger than --resize {resize}", param_hint="--crop")
    tf = TransformConfig(resize=resize, crop=crop, tvl1=TVL1Params(**collect(kw, "tvl1")))
    specs = {"rgb": rgb_weights or weights, "flow": flow_weights or weights}
    try:  # checkpoints by content, so a store of fine-tuned features never takes rows of other weights
        described = {s: describe_weights(v) for s, v in specs.items()}
    except WeightsError as e:
        raise DataError(str(e)) from None
    settings = {"backbone": "resnet101", "rows_per_second": rows_per_second,
                "weights": {s: d[0] for s, d in described.items()},
                "transform": tf.to_dict(), "flow_stack": 5, "feature_dim": FEATURE_DIM}
    info = {"source": "extract-features", "flow_backend": backend, "decoder": decoder, "device": str(dev),
            "precision": prec, "rows_per_second": rows_per_second, "weights_files": specs,
            "weights_records": {s: d[1] for s, d in described.items()}}
    if "random" in specs.values():
        info["weights_warning"] = "RANDOM WEIGHTS: these features are for tests and demos, not for real results"
    return Job(out, by_id, ids, root, ann, dev, backend, prec, tf, specs, settings, info, trimmed)


def _videos_in(store: Path | None) -> set[str]:
    """The videos of a store (a cluster run's OUT, whose videos its shards must not redo)."""
    if store is None or not Path(store).exists():
        return set()
    import h5py

    with h5py.File(store, "r") as f:
        return set(f["videos"]) if "videos" in f else set()


def check_settings(out: Path, settings: dict) -> list[dict]:
    """Refuse an OUT written otherwise (or not by extract-features); its failures list when it fits."""
    from . import writer

    old, failures = writer.read_settings(out)
    if not old and out.exists():
        raise DataError("exists and was not written by extract-features; choose another OUT", out)
    if old and old != settings:
        raise DataError(f"was extracted with other settings ({', '.join(writer.settings_diff(old, settings))}); "
                        "use another OUT, the same settings, or --overwrite", out)
    return failures


FPS_HELP = ("Feature rows per second of video, or 'all': one row per decoded frame, timed at the frame's "
            "presentation time (the paper's per-frame features; videos of 24, 25 and 30 fps each keep their "
            "own rate). Cost of 'all' at 30 fps against the default 4: 7.5x the CNN time and the store size "
            "(8 KiB per row, about 0.9 GB per hour of video) and about 1.5x the TV-L1 flow.")


@click.command(context_settings=CTX)
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--fps", "rows_per_second", type=RowRate(), metavar="RATE|all", default=DEFAULT_ROWS_PER_SECOND,
              show_default=True, help=FPS_HELP)
@click.option("--trimmed", is_flag=True, help="Mark the videos as trimmed clips; in <root>/<Class>/<clip> "
              "layout (UCF101) the folder name becomes the clip's label.")
@click.option("--annotations", type=click.Path(exists=True), help="Ground truth: stores labels and subsets.")
@click.option("--decoder", type=click.Choice(["decord", "pyav"]), default="decord", show_default=True,
              help="Video decoder; PyAV is also the fallback when decord cannot read a file.")
@click.option("--flow-backend", type=click.Choice(["auto", "torch", "opencv"]), default="auto", show_default=True,
              help="TV-L1 implementation: torch = this project's (fused C kernel on a CPU, compiled "
              "kernels on a GPU), opencv = OpenCV's DualTVL1; auto = torch, or opencv where no C compiler "
              "can build the CPU kernel.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--weights", default="imagenet", show_default=True,
              help="imagenet (torchvision's, via the torch hub cache), random (tests only), or a checkpoint path.")
@click.option("--rgb-weights", help="Checkpoint of a fine-tuned RGB network (overrides --weights for RGB).")
@click.option("--flow-weights", help="Checkpoint of a fine-tuned 10-channel flow network (overrides --weights).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="CNN arithmetic: auto = bf16 (autocast) on a GPU and on CPUs with native bf16 "
              "(AVX512-BF16 or AMX), else fp32 (emulated bf16 ran 5x slower than fp32 on an AVX2 CPU).")
@click.option("--batch-size", default=32, show_default=True, help="Rows per CNN batch.")
@click.option("--resize", default=256, show_default=True, help="Short side before the centre crop (RGB and flow).")
@click.option("--crop", default=224, show_default=True, help="Centre crop fed to the networks.")
@click.option("--threads", default=0, show_default=True,
              help="CPU threads for the networks (0: OMP_NUM_THREADS if set, else the CPUs this process may use).")
@click.option("--workers", default=0, show_default=True, help="Threads for flow on a CPU, one frame pair each (0: as --threads).")
@click.option("--strict", is_flag=True, help="A video that decodes shorter than its header declares (a truncated "
              "download) is a failure, not a warning.")
@click.option("--shard", help="K/N: process the K-th (0-based) of N deterministic shards, into OUT-shard-K-of-N.h5 "
              "[default: from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT].")
@click.option("--cluster", help="Run the shards on a dask.distributed cluster and merge them into OUT: local:N "
              "(N worker processes here) or HOST:PORT of a running scheduler (OUT and SOURCE on a shared "
              "filesystem). Needs pip install -e .[cluster].")
@click.option("--shards", "n_cluster_shards", default=0, show_default=True,
              help="With --cluster: number of shards, at least 2 (0: one per worker thread; a resumed run keeps "
              "its count).")
@click.option("--exclude-from", type=click.Path(dir_okay=False, path_type=Path), hidden=True,
              help="Skip the videos of this store (a cluster run's OUT, for its shards).")
@click.option("--overwrite", is_flag=True, help="Redo videos already in OUT.")
@click.option("--no-consolidate", is_flag=True, help="Leave OUT as an index of per-video files (OUT.parts/).")
@click.option("--quiet", is_flag=True, help="No progress display.")
@dataclass_options(TVL1Params, "tvl1", flag_prefix="tvl1-")
@fail_cleanly
def extract_features(source, out, rows_per_second, trimmed, annotations, decoder, flow_backend, device, weights,
                     rgb_weights, flow_weights, precision, batch_size, resize, crop, threads, workers, strict, shard,
                     cluster, n_cluster_shards, exclude_from, overwrite, no_consolidate, quiet, **kw):
    """Extract two-stream ResNet101 features of the videos in SOURCE into the store OUT.

    SOURCE is a folder (searched recursively), a .txt file listing video paths,
    or one video. Finished videos are skipped when the command is run again,
    and a killed run leaves OUT readable with every finished video.

    Progress counts feature rows over all videos (from the containers'
    declared lengths) with rate and ETA. When stderr is not a terminal it is a
    plain line every TSRNET_PROGRESS_INTERVAL seconds (default 60) and the
    summary at the end.

    A video that decodes more than max(0.5 s, 2%) shorter than its header
    declares is named on stderr and in the store's `warnings` attribute
    (--strict: a failure).

    Exit status: 0 all videos extracted; 1 some videos failed (each is named on
    stderr and in the store's `failures` attribute; the others are extracted);
    2 the run could not start (bad arguments, unreadable inputs); 3 (--cluster)
    a shard failed on the cluster: finished videos are kept, run again to resume.
    """
    if cluster:
        from .cluster import extract_on_cluster

        params = dict(click.get_current_context().params)
        return extract_on_cluster(params, cluster, n_cluster_shards)
    k, n_shards = parse_shard(shard)
    job = _prepare(source, out, rows_per_second, trimmed, annotations, decoder, flow_backend, device, weights,
                   rgb_weights, flow_weights, precision, resize, crop, k, n_shards, exclude_from, kw)
    if "random" in job.specs.values():
        click.echo("warning: --weights random: the features carry no learned information (tests and demos only)",
                   err=True)
    rc = _run(job, decoder, batch_size, threads, workers, strict, overwrite, no_consolidate, quiet)
    if rc:
        sys.exit(rc)


def _run(job: Job, decoder, batch_size, threads, workers, strict, overwrite, no_consolidate, quiet) -> int:
    """Extract the job's videos not yet in OUT; returns the exit status."""
    from . import writer
    from .resnet import FEATURE_DIM

    out = job.out
    if overwrite:
        import shutil

        shutil.rmtree(writer.parts_dir(out), ignore_errors=True)
        if out.exists():
            out.unlink()
    failures = check_settings(out, job.settings)
    _refuse_other_domain(out, job.ids, "trimmed" if job.trimmed else "untrimmed")
    writer.open_for_append(out)
    done = writer.finished(out)
    todo = [v for v in job.ids if v not in done]
    failures = [f for f in failures if f["video"] not in set(todo) | done]  # retried now or since fixed
    warnings = [w for w in writer.read_warnings(out) if w["video"] in done]

    def save_index():  # OUT.h5 as it stands: every finished video, failure and warning so far
        writer.write_index(out, writer.root_attrs(FEATURE_DIM, job.settings, job.info, failures, warnings))

    if not todo:
        click.echo(f"{out}: all {len(job.ids)} videos already extracted", err=True)
        _finish(out, save_index, no_consolidate)
        return 0

    extractor = _extractor(job, decoder, batch_size, threads, workers)
    save_index()
    stats = _extract_videos(job, extractor, todo, decoder, strict, quiet, failures, warnings, save_index)
    _finish(out, save_index, no_consolidate)
    click.echo(f"{out}: {stats['ok']} extracted, {len(job.ids) - len(todo)} skipped (done before), "
               f"{len(failures)} failed, {len(warnings)} warned; {stats['rows']} rows in {stats['wall']:.1f} s "
               f"(decode {stats['decode']:.1f} s, flow {stats['flow']:.1f} s, cnn {stats['cnn']:.1f} s)", err=True)
    return EXIT_SOME_FAILED if failures else 0


def _finish(out: Path, save_index, no_consolidate: bool) -> None:
    from . import writer

    save_index()
    if not no_consolidate:
        writer.consolidate(out)


def _extractor(job: Job, decoder, batch_size, threads, workers):
    import torch

    from .features import TwoStreamCNN
    from .pipeline import Extractor
    from .resnet import WeightsError, build, load_state

    try:
        rgb_net = build(3, load_state(job.specs["rgb"]), job.specs["rgb"])
        flow_net = build(10, load_state(job.specs["flow"]), job.specs["flow"])
    except WeightsError as e:
        raise DataError(str(e)) from None
    n_threads = cpu_threads(threads)
    if job.dev.type == "cpu":
        torch.set_num_threads(n_threads)
    cnn = TwoStreamCNN(rgb_net, flow_net, job.dev, job.prec, batch_size)
    return Extractor(cnn, job.settings["rows_per_second"], job.tf, decoder, job.backend, job.dev,
                     workers or n_threads)


def _extract_videos(job: Job, extractor, todo, decoder, strict, quiet, failures, warnings, save_index) -> dict:
    """The loop over videos: each is written, failed or warned about as it finishes; OUT's index follows."""
    from tsrnet.data.cliutil import LogProgress, progress_bar

    from .decode import probe, truncation

    rate = job.settings["rows_per_second"]
    declared = {v: probe(job.by_id[v]) for v in todo}  # headers only: the total is known before decoding
    expected = {v: declared[v].rows(rate) for v in todo}
    bar = progress_bar(total=sum(expected.values()), desc=f"extract {job.out.name}", unit="row", disable=quiet)
    per_video_lines = not quiet and not isinstance(bar, LogProgress)  # a log gets the periodic line alone
    stats = {"ok": 0, "rows": 0, "decode": 0.0, "flow": 0.0, "cnn": 0.0}
    t_start = time.perf_counter()
    for i, vid in enumerate(todo):
        path = job.by_id[vid]
        counted = [0]

        def on_rows(n, counted=counted):
            counted[0] += n
            bar.update(n)

        t_video = time.perf_counter()
        try:
            feats = _extract_one(extractor, path, decoder, on_rows)
            _check_finite(feats)
            short = truncation(declared[vid], feats.n_frames, feats.duration)
            if short and strict:
                raise _VideoFailed(f"{short} (--strict)")
        except _VideoFailed as e:
            bar.total -= expected[vid] - counted[0]  # its rows will not come
            failures.append({"video": vid, "path": str(path), "reason": str(e)})
            bar.write(f"{path}: video {vid}: {e}")
            save_index()
            continue
        bar.total += len(feats.times) - expected[vid]  # the header's estimate, now exact
        bar.update(len(feats.times) - counted[0])  # nonzero only when decord failed midway and PyAV redid it
        if short:
            warnings.append(_warning(vid, path, declared[vid], feats, short))
            bar.write(f"warning: {path}: video {vid}: {short}")
        _write_video(job, vid, path, feats)
        save_index()
        stats["ok"] += 1
        stats["rows"] += len(feats.times)
        for p_, s_ in feats.seconds.items():
            stats[p_] += s_
        bar.set_postfix(videos=f"{i + 1}/{len(todo)}", last=vid)
        if per_video_lines:
            bar.write(f"{vid}: {len(feats.times)} rows in {time.perf_counter() - t_video:.1f} s")
    bar.close()
    stats["wall"] = time.perf_counter() - t_start
    return stats


def _check_finite(feats) -> None:
    for s_, x_ in (("rgb", feats.rgb), ("flow", feats.flow)):
        if not np.isfinite(x_.astype(np.float16)).all():
            raise _VideoFailed(f"{s_} features are not finite in float16 (weights producing "
                               "activations beyond 65504?)")


def _warning(vid, path, declared, feats, message) -> dict:
    """A store's record of a suspect video: both figures, so that a script can judge without the files."""
    return {"video": vid, "path": str(path), "warning": message, "declared_duration": declared.duration,
            "declared_frames": declared.n_frames, "decoded_duration": round(float(feats.duration), 6),
            "decoded_frames": int(feats.n_frames)}


def _write_video(job: Job, vid, path, feats) -> None:
    from . import writer

    a = job.ann[vid] if job.ann is not None and vid in job.ann else None
    subset, labels = (a.subset, a.labels) if a is not None else (None, None)
    if a is None and job.trimmed and job.root is not None and path.parent != job.root:
        labels = [path.parent.name]
    writer.write_part(job.out, vid, times=feats.times, fps=feats.fps, duration=feats.duration,
                      n_frames=feats.n_frames, domain="trimmed" if job.trimmed else "untrimmed", subset=subset,
                      labels=labels, rgb=feats.rgb, flow=feats.flow)


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


def _extract_one(extractor, path: Path, decoder: str, on_rows=None):
    """Features of one video; when decord cannot read it, PyAV is the fallback."""
    from .decode import DecodeError, first_line

    errors = []
    for d in [decoder] + (["pyav"] if decoder == "decord" else []):
        try:
            return extractor(path, d, on_rows)
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
    if out.exists():
        raise DataError("exists; merge into a new file", out)
    n, failures = merge_stores(list(shards), out)
    click.echo(f"{out}: {n} videos from {len(shards)} stores, {len(failures)} failures recorded", err=True)


def merge_stores(stores: list[Path], out: Path, retried: set[str] = frozenset()) -> tuple[int, list[dict]]:
    """Write ``out`` (atomically; it may be one of ``stores``) with every video of ``stores``, whose
    settings must match; failures and warnings are merged, less those of videos now stored and, for
    failures, of videos in ``retried`` (tried again in this run: its stores have the newer verdict, and
    failures are only taken from stores other than ``out``). Returns the videos and the failures."""
    import h5py

    from .writer import copy_videos, read_settings, read_warnings, settings_diff

    first, failures, warnings, seen = None, [], [], {}
    for s in stores:
        settings, fails = read_settings(s)
        if first is None:
            first = (s, settings)
        elif settings != first[1]:
            raise DataError(f"was extracted with other settings than {first[0]} "
                            f"({', '.join(settings_diff(settings, first[1]))})", s)
        failures += [f for f in fails if s != out or f["video"] not in retried]
        warnings += read_warnings(s)
        with h5py.File(s, "r") as f:
            for vid in f["videos"]:
                if vid in seen:
                    raise DataError(f"video also in {seen[vid]}", s, vid)
                seen[vid] = s
    with h5py.File(stores[0], "r") as f0:
        attrs = dict(f0.attrs)
    failures = [f for f in failures if f["video"] not in seen]  # failed in one shard, done in another
    attrs["failures"] = json.dumps(failures)
    attrs["warnings"] = json.dumps([w for w in warnings if w["video"] in seen])
    copy_videos(list(stores), out, attrs)
    return len(seen), failures
