"""What one extract-features run will do, decided and checked before OUT is touched.

A refused run must leave nothing behind, so every check that can fail on the
inputs (shard, videos, annotations, weights, sizes, an OUT written otherwise)
lives here, apart from the loop that writes. The command and a cluster shard
share it through :class:`ExtractSettings`.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tsrnet.data.core.progress import progress_interval
from tsrnet.data.core.devices import auto_precision, resolve_device
from tsrnet.data.core.errors import DataError, OptionError

from .flow import TVL1Params
from .sources import find_videos


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
        raise OptionError("--shard", f"{shard!r} is not K/N (e.g. 3/16)") from None
    if not (n >= 1 and 0 <= k < n):
        raise OptionError("--shard", f"{shard!r}: need 0 <= K < N")
    return k, n


def in_shard(video_id: str, k: int, n: int) -> bool:
    # A hash of the id rather than its position: adding videos later does not move the others.
    return zlib.crc32(video_id.encode()) % n == k


def shard_path(out: Path, k: int, n: int) -> Path:
    return out if n == 1 else out.with_name(f"{out.stem}-shard-{k:04d}-of-{n:04d}{out.suffix}")


@dataclass(frozen=True, kw_only=True)
class ExtractSettings:
    """The options of one run as the command took them; a cluster pickles it to each shard's worker.

    Only the fields that are not options as typed have defaults: the defaults of the others live in the
    command's options, which document them.
    """

    source: Path
    out: Path
    rows_per_second: float | str  # a rate, or decode.ALL_FRAMES
    trimmed: bool
    annotations: str | Path | None
    decoder: str
    flow_backend: str
    device: str
    weights: str | Path
    rgb_weights: str | Path | None
    flow_weights: str | Path | None
    precision: str
    batch_size: int
    resize: int
    crop: int
    threads: int
    workers: int
    strict: bool
    exclude_from: Path | None
    overwrite: bool
    no_consolidate: bool
    quiet: bool
    shard: tuple[int, int] = (0, 1)  # (K, N) of parse_shard
    tvl1: dict = field(default_factory=dict)  # the TVL1Params fields set on the command line


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
    extraction: dict  # the store's `extraction` attribute: a store only takes rows of equal settings
    info: dict
    trimmed: bool


def prepare(settings: ExtractSettings) -> Job:
    from tsrnet.data.format.ground_truth import load_annotations

    from .features import TransformConfig
    from .flow import default_backend
    from .resnet import FEATURE_DIM, WeightsError, describe_weights

    s = settings
    k, n_shards = s.shard
    progress_interval()  # a bad TSRNET_PROGRESS_INTERVAL stops the run here, before OUT is touched
    out = shard_path(s.out, k, n_shards)
    paths, root = find_videos(s.source)
    by_id: dict[str, Path] = {}
    for p in paths:
        if p.stem in by_id:
            raise DataError(f"two videos share the id {p.stem!r}: {by_id[p.stem]} and {p}", s.source, p.stem)
        if "/" in p.stem:
            raise DataError("a video id must not contain '/'", p)
        by_id[p.stem] = p
    excluded = videos_in(s.exclude_from)
    ids = [v for v in sorted(by_id) if in_shard(v, k, n_shards) and v not in excluded]
    ann = load_annotations(s.annotations) if s.annotations else None

    dev = resolve_device(s.device)
    backend = default_backend(dev) if s.flow_backend == "auto" else s.flow_backend
    prec = auto_precision(dev) if s.precision == "auto" else s.precision
    if s.crop > s.resize:
        raise OptionError("--crop", f"{s.crop} is larger than --resize {s.resize}")
    tf = TransformConfig(resize=s.resize, crop=s.crop, tvl1=TVL1Params(**s.tvl1))
    # Text, whatever the caller passed (a cluster hands resolved Paths): the store records them as JSON.
    specs = {"rgb": str(s.rgb_weights or s.weights), "flow": str(s.flow_weights or s.weights)}
    try:  # checkpoints by content, so a store of fine-tuned features never takes rows of other weights
        described = {m: describe_weights(v) for m, v in specs.items()}
    except WeightsError as e:
        raise DataError(str(e)) from None
    extraction = {"backbone": "resnet101", "rows_per_second": s.rows_per_second,
                  "weights": {m: d[0] for m, d in described.items()},
                  "transform": tf.to_dict(), "flow_stack": 5, "feature_dim": FEATURE_DIM}
    info = {"source": "extract-features", "flow_backend": backend, "decoder": s.decoder, "device": str(dev),
            "precision": prec, "rows_per_second": s.rows_per_second, "weights_files": specs,
            "weights_records": {m: d[1] for m, d in described.items()}}
    if "random" in specs.values():
        info["weights_warning"] = "RANDOM WEIGHTS: these features are for tests and demos, not for real results"
    return Job(out, by_id, ids, root, ann, dev, backend, prec, tf, specs, extraction, info, s.trimmed)


def videos_in(store: Path | None) -> set[str]:
    """The videos of a store (a cluster run's OUT, whose videos its shards must not redo)."""
    if store is None or not Path(store).exists():
        return set()
    import h5py

    with h5py.File(store, "r") as f:
        return set(f["videos"]) if "videos" in f else set()


def check_settings(out: Path, extraction: dict) -> list[dict]:
    """Refuse an OUT written otherwise (or not by extract-features); its failures list when it fits."""
    from . import writer

    old, failures = writer.read_settings(out)
    if not old and out.exists():
        raise DataError("exists and was not written by extract-features; choose another OUT", out)
    if old and old != extraction:
        raise DataError(f"was extracted with other settings ({', '.join(writer.settings_diff(old, extraction))}); "
                        "use another OUT, the same settings, or --overwrite", out)
    return failures


def refuse_other_domain(out: Path, ids: list[str], domain: str) -> None:
    """One store holds both domains, so an id must name one video: a clip named like a stored untrimmed
    video would otherwise be skipped as done."""
    from .writer import domains

    clash = sorted(v for v, d in domains(out, ids).items() if d != domain)
    if clash:
        raise DataError(f"{len(clash)} video id(s) to extract as {domain} are already in the store as "
                        f"{'untrimmed' if domain == 'trimmed' else 'trimmed'} videos, first: {clash[0]}; ids are "
                        "file stems and must be unique across both domains (rename the files or use another OUT)",
                        out, clash[0])
