"""``extract-features`` and ``merge-features``: the options only, gathered into one :class:`ExtractSettings`
that ``run`` extracts in this process and ``cluster`` hands to dask workers."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from tsrnet.data.common_cli import collect, dataclass_options, fail_cleanly
from tsrnet.data.core.errors import DataError

from .flow import TVL1Params
from .cluster import ClusterSettings
from .job import ExtractSettings
from .run import merge_stores, run_extraction

CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.command(context_settings=CTX)
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@dataclass_options(ExtractSettings, "x", skip=("source", "out", "tvl1"))
@dataclass_options(ClusterSettings, "cluster")
@dataclass_options(TVL1Params, "tvl1", flag_prefix="tvl1-")
@fail_cleanly
def extract_features(source, out, **kw):
    """Extract two-stream ResNet101 features of the videos in SOURCE into the store OUT.

    SOURCE is a folder (searched recursively), a .txt file listing video paths,
    or one video. Finished videos are skipped when the command is run again
    (a file changed since, same name and new content, is extracted again),
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
    given = collect(kw, "x")
    cluster = ClusterSettings(**collect(kw, "cluster"))
    if cluster.cluster and "shard" in given:
        raise click.BadParameter("--cluster makes its own shards; leave out --shard", param_hint="--shard")
    settings = ExtractSettings(source=source, out=out, tvl1=collect(kw, "tvl1"), **given)
    if cluster.cluster:
        from .cluster import extract_on_cluster

        rc = extract_on_cluster(settings, cluster.cluster, cluster.shards)
    else:
        rc = run_extraction(settings)
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
