"""The ``train-backbone`` command: clips -> snippet cache -> fine-tuned rgb.pt / flow.pt."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from tsrnet.data.common_cli import collect, dataclass_options, fail_cleanly

from tsrnet.data.core.progress import progress_bar
from tsrnet.data.core.devices import auto_precision, resolve_device
from tsrnet.data.core.errors import DataError
from tsrnet.data.core.io import undone_on_failure, write_json
from tsrnet.extract.flow import TVL1Params

from .config import STREAMS, BackboneConfig, FinetuneRuntime

CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.command(context_settings=CTX)
@click.argument("clips", type=click.Path(exists=True, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@dataclass_options(FinetuneRuntime, "run")
@dataclass_options(BackboneConfig, "cfg")
@dataclass_options(TVL1Params, "tvl1", flag_prefix="tvl1-")
@fail_cleanly
def train_backbone(clips, out_dir, **kw):
    """Fine-tune the two-stream ResNet101 on the clips in CLIPS (TSN-style, the paper's recipe) into OUT_DIR.

    CLIPS is the UCF101 layout extract-features --trimmed reads (<root>/<Class>/<clip>, the folder names the
    class), or any videos with --annotations. Each clip is decoded and its TV-L1 flow computed once, into
    OUT_DIR/cache; then each stream trains: K segments per clip, one snippet each, average consensus,
    cross-entropy, SGD. OUT_DIR receives rgb.pt and flow.pt (for extract-features --rgb-weights /
    --flow-weights), log-<stream>.csv (loss and accuracy per iteration) and record.json.

    Run again to resume: cached clips are kept and a stream continues from its last checkpoint
    (bit-identical on a CPU). A clip that cannot be decoded is named on stderr, listed in record.json and
    left out; exit status 0 when the networks were written, 2 when training could not start.
    """
    from tsrnet.data.format.ground_truth import load_annotations
    from tsrnet.data.core.devices import use_cpu_threads
    from tsrnet.extract.features import TransformConfig
    from tsrnet.extract.flow import default_backend
    from tsrnet.extract.pipeline import FlowRunner
    from tsrnet.extract.resnet import WeightsError, describe_weights, load_state

    from .cache import SnippetCache
    from .clips import class_list, find_clips
    from .loop import Runtime, StreamTrainer

    run = FinetuneRuntime(**collect(kw, "run"))
    stream, weights, annotations, subset, decoder, quiet = (run.stream, run.weights, run.annotations, run.subset,
                                                            run.decoder, run.quiet)
    cfg = BackboneConfig(**collect(kw, "cfg"))
    cfg.check()
    tvl1 = TVL1Params(**collect(kw, "tvl1"))
    ann = load_annotations(annotations) if annotations else None
    found, why = find_clips(clips, ann, subset, annotations)
    class_list(found, clips)  # before anything is written
    streams = STREAMS if stream == "both" else (stream,)
    dev = resolve_device(run.device)
    prec = auto_precision(dev) if run.precision == "auto" else run.precision
    n_threads = use_cpu_threads(run.threads, dev)
    try:
        init_id, _ = describe_weights(weights)
        init_state = load_state(weights)
    except WeightsError as e:
        raise DataError(str(e)) from None
    if weights == "random":
        click.echo("warning: --weights random: no ImageNet knowledge to fine-tune (tests and demos only)", err=True)
    click.echo(f"train-backbone: {why}; streams {', '.join(streams)}; {dev}, {prec}", err=True)
    backend = default_backend(dev) if run.flow_backend == "auto" else run.flow_backend
    tf = TransformConfig(resize=cfg.resize, crop=cfg.size, tvl1=tvl1)
    with undone_on_failure(out_dir, keep=lambda: (out_dir / "cache").exists()):
        t0 = time.perf_counter()
        skipped: dict[str, str] = {}
        caches = {}
        for s in streams:
            settings = {"snippets": cfg.snippets, "resize": cfg.resize, "flow_short_side": tf.flow_short_side,
                        "tvl1": tvl1.to_dict() if s == "flow" else None}
            caches[s] = SnippetCache(out_dir / "cache", s, settings)
            caches[s].check()
            flow = FlowRunner(tvl1, backend, dev, n_threads) if s == "flow" else None
            _fill(caches[s], found, decoder, flow, tf, skipped, quiet)
        cache_seconds = time.perf_counter() - t0
        usable = [c for c in found if c.id not in skipped]
        if not usable:
            raise DataError(f"none of the {len(found)} clips could be decoded", clips)
        classes = class_list(usable, clips)
        rt = Runtime(dev, prec, run.workers or n_threads, run.checkpoint_seconds, quiet)
        records = {}
        for s in streams:
            records[s] = StreamTrainer(s, usable, classes, caches[s], cfg, (init_state, init_id, weights), out_dir,
                                       rt).run()
        earlier = _earlier_record(out_dir, streams, classes)
        skipped = {**{e["clip"]: e["reason"] for e in earlier.get("skipped", [])}, **skipped}
        write_json(out_dir / "record.json", {
            "tool": "train-backbone", "clips": str(clips), "labels": why, "classes": classes,
            "skipped": [{"clip": k, "reason": v} for k, v in sorted(skipped.items())],
            "cache_seconds": round(cache_seconds, 1), "flow_backend": backend,
            "streams": {**earlier.get("streams", {}), **records}})
    for s in streams:
        r = records[s]
        click.echo(f"{s}: {r['iterations']} iterations, train loss {r['train_loss']}, accuracy "
                   f"{r['train_accuracy']}, {r['seconds']:.0f} s -> {out_dir / (s + '.pt')}", err=True)
    click.echo(f"extract with: extract-features ... --rgb-weights {out_dir / 'rgb.pt'} --flow-weights "
               f"{out_dir / 'flow.pt'} --resize {cfg.resize} --crop {cfg.size}", err=True)


def _earlier_record(out_dir: Path, streams, classes: list[str]) -> dict:
    """What an earlier call wrote to OUT_DIR's record.json of the networks this call does not train, when they
    were trained on the same classes: the RGB network, then the flow network started from it (``--stream flow
    --weights OUT_DIR/rgb.pt``), are two calls and one record. Its ``streams`` keep only networks still there."""
    try:
        earlier = json.loads((out_dir / "record.json").read_text())
    except (OSError, ValueError):
        return {}
    if earlier.get("classes") != classes:
        return {}
    kept = {s: r for s, r in earlier.get("streams", {}).items() if s not in streams and (out_dir / f"{s}.pt").exists()}
    return {"streams": kept, "skipped": earlier.get("skipped", [])} if kept else {}


def _fill(cache, clips, decoder, flow, tf, skipped: dict, quiet: bool) -> None:
    """Cache every clip not cached yet; a clip that cannot be decoded is named and left out."""
    from tsrnet.extract.decode import DecodeError

    todo = [c for c in clips if not cache.has(c.id)]
    if not todo:
        return
    bar = progress_bar(total=len(todo), desc=f"cache {cache.stream}", unit="clip", disable=quiet)
    try:
        for c in todo:
            try:
                cache.build(c, decoder, flow, tf)
            except DecodeError as e:
                skipped[c.id] = str(e)
                bar.write(f"train-backbone: skipped {c.path}: {e}")
            bar.update(1)
    finally:
        bar.close()
