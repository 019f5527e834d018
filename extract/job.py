"""What one extract-features run will do, decided and checked before OUT is touched.

A refused run must leave nothing behind, so every check that can fail on the
inputs (shard, videos, annotations, weights, sizes, an OUT written otherwise)
lives here, apart from the loop that writes. The command and a cluster shard
share it through :class:`ExtractSettings`.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from tsrnet.data.core.progress import progress_interval, quiet_opt
from tsrnet.data.core.devices import auto_precision, device_opt, resolve_device, threads_opt
from tsrnet.data.core.errors import DataError, OptionError
from tsrnet.data.core.settings import opt

from .flow import TVL1Params
from .sources import find_videos


def shard_of_text(text: str) -> tuple[int, int]:
    """``--shard K/N`` -> (K, N), 0-based K; ValueError says what is wrong."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"{text!r} is not K/N (e.g. 3/16)") from None
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"{text!r}: need 0 <= K < N")
    return k, n


def shard_from_environment() -> tuple[int, int]:
    """The shard of a SLURM array task (``SLURM_ARRAY_TASK_ID`` from ``SLURM_ARRAY_TASK_MIN``, of
    ``SLURM_ARRAY_TASK_COUNT``), or (0, 1) outside an array."""
    tid, cnt = os.environ.get("SLURM_ARRAY_TASK_ID"), os.environ.get("SLURM_ARRAY_TASK_COUNT")
    if tid is None or cnt is None:
        return 0, 1
    k = int(tid) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    return k, int(cnt)


def rate_of_text(text: str) -> float | str:
    """``--fps``: a positive number of rows per second, or ``all`` (one row per decoded frame)."""
    from .decode import ALL_FRAMES

    if text.strip().lower() == ALL_FRAMES:
        return ALL_FRAMES
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither a number of rows per second nor 'all'") from None
    if not rate > 0:
        raise ValueError(f"{text!r}: rows per second must be positive")
    return rate


def in_shard(video_id: str, k: int, n: int) -> bool:
    # A hash of the id rather than its position: adding videos later does not move the others.
    return zlib.crc32(video_id.encode()) % n == k


def shard_path(out: Path, k: int, n: int) -> Path:
    return out if n == 1 else out.with_name(f"{out.stem}-shard-{k:04d}-of-{n:04d}{out.suffix}")


FPS_HELP = ("Feature rows per second of video, or 'all': one row per decoded frame, timed at the frame's "
            "presentation time (the paper's per-frame features; videos of 24, 25 and 30 fps each keep their "
            "own rate). 'all' at 30 fps costs 7.5 times the CNN time and the store size of the default rate "
            "(8 KiB per row) and more TV-L1 flow.")


@dataclass(frozen=True, kw_only=True)
class ExtractSettings:
    """The settings of one extract-features run: its options (``opt()``), and what a cluster pickles to each
    shard's worker."""

    source: Path = opt(None, "Videos: a folder (searched recursively), a .txt list of paths, or one video.")
    out: Path = opt(None, "The feature store written.")
    rows_per_second: float | str = opt(4.0, FPS_HELP, parse=rate_of_text, metavar="RATE|all", option="--fps")
    trimmed: bool = opt(False, "Mark the videos as trimmed clips; in <root>/<Class>/<clip> layout (UCF101) the "
                               "folder name becomes the clip's label.", flag=True)
    annotations: str | None = opt(None, "Ground truth: stores labels and subsets.", path="existing")
    decoder: str = opt("decord", "Video decoder; PyAV is also the fallback when decord cannot read a file.",
                       choices=("decord", "pyav"))
    flow_backend: str = opt("auto", "TV-L1 implementation: torch = this project's (fused C kernel on a CPU, "
                                    "compiled kernels on a GPU), opencv = OpenCV's DualTVL1; auto = torch, or "
                                    "opencv where no C compiler can build the CPU kernel.",
                            choices=("auto", "torch", "opencv"))
    device: str = device_opt()
    weights: str = opt("imagenet", "imagenet (torchvision's, via the torch hub cache), random (tests only), or a "
                                   "checkpoint path.")
    rgb_weights: str | None = opt(None, "Checkpoint of a fine-tuned RGB network (overrides --weights for RGB).")
    flow_weights: str | None = opt(None, "Checkpoint of a fine-tuned 10-channel flow network (overrides "
                                         "--weights).")
    precision: str = opt("auto", "CNN arithmetic: auto = bf16 on a GPU and on CPUs with native bf16 "
                                 "(AVX512-BF16 or AMX), else fp32 (emulated bf16 is slower than fp32). On a CPU, "
                                 "fp32 and bf16 run in oneDNN's fused convolutions (BatchNorm folded into them); "
                                 "on a GPU, and fp16 anywhere, the network runs as defined (bf16 and fp16 under "
                                 "autocast).",
                         choices=("auto", "fp32", "bf16", "fp16"))
    batch_size: int = opt(32, "Rows per CNN batch.", range=(1, None))
    resize: int = opt(256, "Short side before the centre crop (RGB and flow).", range=(8, None))
    crop: int = opt(224, "Centre crop fed to the networks.", range=(8, None))
    threads: int = threads_opt("the networks")
    workers: int = opt(0, "Threads for flow on a CPU, one frame pair each (0: as --threads).", range=(0, None))
    strict: bool = opt(False, "A video that decodes shorter than its header declares (a truncated download) is a "
                              "failure, not a warning.", flag=True)
    shard: tuple[int, int] | None = opt(None, "K/N: process the K-th (0-based) of N deterministic shards, into "
                                              "OUT-shard-K-of-N.h5.", parse=shard_of_text, metavar="K/N",
                                        shown="from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT, else all")
    exclude_from: str | None = opt(None, "Skip the videos of this store (a cluster run's OUT, for its shards).",
                                    path="file", hidden=True)
    overwrite: bool = opt(False, "Redo videos already in OUT.", flag=True)
    no_consolidate: bool = opt(False, "Leave OUT as an index of per-video files (OUT.parts/).", flag=True)
    quiet: bool = quiet_opt()
    tvl1: dict = opt({}, "The TVL1Params fields set (--tvl1-*).")

    def __post_init__(self):
        # A shard given as None is the environment's (a SLURM array task's), decided once, here.
        shard = shard_from_environment() if self.shard is None else self.shard
        object.__setattr__(self, "shard", tuple(shard))


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
    if excluded:  # a cluster's OUT: a video edited since it was stored there is the shards' to extract again
        from .writer import changed_files

        excluded -= set(changed_files(Path(s.exclude_from), {v: by_id[v] for v in excluded if v in by_id}))
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
