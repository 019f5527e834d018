"""``extract-features`` and ``merge-features``: the options only, gathered into one :class:`ExtractSettings`
that ``run`` extracts in this process and ``cluster`` hands to dask workers."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from tsrnet.data.common_cli import collect, dataclass_options, fail_cleanly
from tsrnet.data.core.errors import DataError

from .flow import TVL1Params
from .job import ExtractSettings, parse_shard
from .run import merge_stores, run_extraction

CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
DEFAULT_ROWS_PER_SECOND = 4.0


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
    settings = ExtractSettings(
        source=source, out=out, rows_per_second=rows_per_second, trimmed=trimmed, annotations=annotations,
        decoder=decoder, flow_backend=flow_backend, device=device, weights=weights, rgb_weights=rgb_weights,
        flow_weights=flow_weights, precision=precision, batch_size=batch_size, resize=resize, crop=crop,
        threads=threads, workers=workers, strict=strict, exclude_from=exclude_from, overwrite=overwrite,
        no_consolidate=no_consolidate, quiet=quiet, tvl1=collect(kw, "tvl1"))
    if cluster:
        from .cluster import extract_on_cluster

        if shard:
            raise click.BadParameter("--cluster makes its own shards; leave out --shard", param_hint="--shard")
        rc = extract_on_cluster(settings, cluster, n_cluster_shards)
    else:
        rc = run_extraction(replace(settings, shard=parse_shard(shard)))
    if rc:
        sys.exit(rc)


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
