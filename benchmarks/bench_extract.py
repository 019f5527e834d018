"""Extraction speed: end to end and per phase (decode, flow, CNN), and the two TV-L1 backends.

    python benchmarks/bench_extract.py [--seconds 60 --size 320x240 --fps 30 --rows-per-second 4]
                                       [--device auto --pairs 8] [--cnn | --cnn-only]

Part 1 makes a clip of ``--seconds`` at ``--size`` (a textured scene panning
with a moving object, written with PyAV) and measures, on it:
decoding alone (decord and PyAV, the frames a run needs), TV-L1 alone (the
fields a run needs, default backend), the two ResNet101s alone (random
weights, ``--precision``), and the whole ``Extractor`` end to end. It reports
source frames per second of video (clip frames / wall time) and rows per second.

Part 2 times the TV-L1 backends per frame pair at 340x256: OpenCV in one
thread, the fused kernel on the CPU's threads, and the compiled tensor code on
the GPU when there is one (batched). benchmarks/bench_flow.py sweeps sizes
and batches.

Part 3 (``--cnn``, or ``--cnn-only`` for it alone; CPU) measures the ResNet101
forward pass against the CPU's matrix product, in one run: images/s and
GFLOP/s of each stream at each crop, precision, implementation (``modules``:
the network as defined, under autocast for bf16; ``modules-cl``: the same
channels-last; ``fused``: extract/fused.py, what extraction runs), batch size
and thread count, as a ratio to a float32 matmul (sgemm) and a bfloat16 matmul
timed between them. The FLOPs are counted by torch's FlopCounterMode (a
multiply-add is 2). Each configuration is timed in ``--rounds`` rounds,
interleaved with the others and with the matmuls, and the best is reported.
"""
import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tsrnet.data.generators.synthetic_motion import affine_pair, texture
from tsrnet.data.generators.videos import write_video
from tsrnet.extract.decode import VideoReader, plan_rows
from tsrnet.extract.features import TransformConfig, TwoStreamCNN, flow_frame, flow_input, rgb_input
from tsrnet.extract.flow import default_backend, tvl1
from tsrnet.extract.pipeline import Extractor
from tsrnet.extract.fused import FusedFeatures
from tsrnet.extract.resnet import build


def make_clip(path: Path, seconds: float, w: int, h: int, fps: float) -> int:
    n = int(seconds * fps)
    rng = np.random.default_rng(0)
    H, W = h + 200, w + 400
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    canvas = texture(xs, ys, rng, min_period=6, max_period=120)
    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        ox = int(200 + 150 * np.sin(i / fps * 0.5))
        oy = int(100 + 60 * np.sin(i / fps * 0.3))
        g = canvas[oy:oy + h, ox:ox + w].copy()
        cx, cy = int(w / 2 + w / 3 * np.sin(i / fps * 2)), int(h / 2)
        g[max(0, cy - 20):cy + 20, max(0, cx - 20):cx + 20] = 1.0  # a moving square
        frames[i] = np.clip(np.stack([g, g * 0.9, 1 - g], -1) * 255, 0, 255).astype(np.uint8)
    write_video(path, frames, fps=fps)
    return n


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def matmul_gflops(dtype: torch.dtype, n: int = 2048) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # the first call allocates and picks a kernel
    t, _ = timed(lambda: torch.mm(a, b))
    return 2 * n ** 3 / t / 1e9


def cnn_throughput(a) -> None:
    """Part 3: the CNN's GFLOP/s against the matmuls', every configuration interleaved with the others."""
    from torch.utils.flop_counter import FlopCounterMode

    def listed(text, kind=str):
        return [kind(v) for v in text.split(",") if v]

    sizes, batches = listed(a.cnn_sizes, int), listed(a.cnn_batches, int)
    threads = listed(a.cnn_threads, int) or [torch.get_num_threads()]
    nets = {"rgb": build(3, None, "random"), "flow": build(10, None, "random")}
    channels = {"rgb": 3, "flow": 10}
    flops = {}  # per image, counted on the network as defined
    for stream, net in nets.items():
        for size in sizes:
            with FlopCounterMode(display=False) as fc, torch.inference_mode():
                net.features(torch.zeros(1, channels[stream], size, size))
            flops[stream, size] = fc.get_total_flops()
    cl = {k: build(channels[k], None, "random").to(memory_format=torch.channels_last) for k in nets}
    fused = {(k, p): FusedFeatures(nets[k], p) for k in nets for p in listed(a.cnn_precisions) if p in ("fp32", "bf16")}

    def runner(size, stream, prec, impl, batch):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, channels[stream], size, size, generator=g)
        if impl == "fused":
            return lambda: fused[stream, prec](x)
        net = nets[stream] if impl == "modules" else cl[stream]
        if impl == "modules-cl":
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(prec)

        def run():
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                return net.features(x)
        return run

    configs = [(s, k, p, i, b, t) for s in sizes for k in listed(a.cnn_streams) for p in listed(a.cnn_precisions)
               for i in listed(a.cnn_impls) for b in batches for t in threads
               if not (i == "fused" and p not in ("fp32", "bf16"))]
    runs = {c: runner(*c[:5]) for c in configs}
    best = dict.fromkeys(configs, float("inf"))
    mm = {(d, t): 0.0 for d in ("fp32", "bf16") for t in threads}
    before = torch.get_num_threads()
    for r in range(a.rounds + 1):  # round 0 warms up: oneDNN creates its kernels on a shape's first call
        for c in configs:
            torch.set_num_threads(c[5])
            for d, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):  # a fraction of a second
                mm[d, c[5]] = max(mm[d, c[5]], matmul_gflops(dt) if r > 0 else 0.0)
            t, _ = timed(runs[c])
            if r > 0:
                best[c] = min(best[c], t)
    torch.set_num_threads(before)
    print(f"CNN forward (ResNet101 features, random weights), best of {a.rounds} interleaved rounds:")
    for t in threads:
        print(f"  {t} thread(s): matmul 2048x2048 fp32 (sgemm) {mm['fp32', t]:.0f} GFLOP/s, "
              f"bf16 {mm['bf16', t]:.0f} GFLOP/s")
    print(f"  {'crop':>4s} {'stream':6s} {'prec':4s} {'impl':10s} {'batch':>5s} {'thr':>3s} {'img/s':>7s} "
          f"{'GFLOP/s':>7s} {'/sgemm':>6s} {'/bf16mm':>7s}")
    for c in configs:
        size, stream, prec, impl, batch, thr = c
        rate = flops[stream, size] * batch / best[c] / 1e9
        print(f"  {size:4d} {stream:6s} {prec:4s} {impl:10s} {batch:5d} {thr:3d} {batch / best[c]:7.1f} {rate:7.1f} "
              f"{rate / mm['fp32', thr]:6.2f} {rate / mm['bf16', thr]:7.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--size", default="320x240")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--rows-per-second", type=float, default=4.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--pairs", type=int, default=8, help="frame pairs per backend in part 2")
    p.add_argument("--skip-clip", action="store_true", help="only part 2")
    p.add_argument("--opencv-seconds", type=float, default=0.79,
                   help="OpenCV TV-L1 s/pair to compare with when this OpenCV lacks contrib (docs/benchmarks.md)")
    p.add_argument("--cnn", action="store_true", help="also part 3: the CNN's throughput against the matmuls'")
    p.add_argument("--cnn-only", action="store_true", help="only part 3")
    p.add_argument("--cnn-sizes", default="112,224", help="part 3: crops, comma-separated")
    p.add_argument("--cnn-streams", default="rgb,flow", help="part 3: streams")
    p.add_argument("--cnn-precisions", default="fp32,bf16", help="part 3: precisions (fp32, bf16, fp16)")
    p.add_argument("--cnn-impls", default="modules,fused",
                   help="part 3: implementations (modules, modules-cl, fused)")
    p.add_argument("--cnn-batches", default="32", help="part 3: batch sizes")
    p.add_argument("--cnn-threads", default="", help="part 3: torch thread counts (default: the current one)")
    p.add_argument("--rounds", type=int, default=3, help="part 3: timed rounds per configuration")
    a = p.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else torch.device(a.device)
    w, h = (int(x) for x in a.size.split("x"))
    print(f"device {dev}, torch threads {torch.get_num_threads()}, cpu cores {os.cpu_count()}")
    tf = TransformConfig()

    if a.cnn_only:
        cnn_throughput(a)
        return
    if not a.skip_clip:
        tmp = Path(tempfile.mkdtemp())
        clip = tmp / "clip.mp4"
        n_frames = make_clip(clip, a.seconds, w, h, a.fps)
        print(f"clip: {a.seconds:.0f} s, {w}x{h}, {a.fps:g} fps, {n_frames} frames")
        backend = default_backend(dev)
        decoders = [d for d in ("decord", "pyav") if importlib.util.find_spec("decord" if d == "decord" else "av")]
        r = VideoReader(clip, decoders[0])
        plan = plan_rows(r.frame_times, a.rows_per_second, r.duration)
        needed = plan.frames_needed()
        res = {}
        for dec in decoders:
            res[f"decode ({dec})"], frames = timed(lambda: dict(VideoReader(clip, dec).frames(needed)))
        gray = {i: flow_frame(f, tf) for i, f in frames.items()}
        fields = plan.fields()
        ext_flow = Extractor(None, a.rows_per_second, tf, decoders[0], backend, dev, os.cpu_count() or 1)
        res[f"flow ({backend}, {len(fields)} fields)"], flows = timed(
            lambda: dict(zip(fields, ext_flow._flow([gray[j] for j in fields], [gray[j + 1] for j in fields]))))
        cnn = TwoStreamCNN(build(3, None, "random"), build(10, None, "random"), dev, a.precision, 32)
        x_rgb = rgb_input([frames[int(c)] for c in plan.centre], tf)
        x_flow = flow_input([[flows[j] for j in stack] for stack in plan.stacks()], tf)
        res[f"cnn ({a.precision}, {2 * len(plan.centre)} images)"], _ = timed(
            lambda: (cnn("rgb", x_rgb), cnn("flow", x_flow)))
        ext = Extractor(cnn, a.rows_per_second, tf, decoders[0], backend, dev, os.cpu_count() or 1)
        res["end to end"], feats = timed(lambda: ext(clip))
        slowest = max(v for k, v in res.items() if k != "end to end" and not (k.startswith("decode") and decoders[0] not in k))
        print(f"{len(plan.centre)} rows ({a.rows_per_second:g}/s)")
        for k, v in res.items():
            print(f"  {k:38s} {v:8.2f} s  {n_frames / v:8.1f} video frames/s  {len(plan.centre) / v:7.2f} rows/s")
        print(f"  end to end / slowest phase alone: {res['end to end'] / slowest:.2f} "
              f"(phases inside the run: " + ", ".join(f"{k} {v:.1f} s" for k, v in feats.seconds.items()) + ")")

    print("TV-L1 per frame pair at 340x256 (textured affine motion up to 10 px):")
    rng = np.random.default_rng(1)
    ps = [affine_pair(256, 340, rng, 10.0) for _ in range(a.pairs)]
    prev, nxt = np.stack([x[0] for x in ps]), np.stack([x[1] for x in ps])
    cv_threads = os.cpu_count()
    import cv2

    if hasattr(cv2, "optflow"):
        cv2.setNumThreads(1)
        t_cv, _ = timed(lambda: tvl1(prev, nxt, "opencv"))
        cv2.setNumThreads(cv_threads)
        print(f"  opencv, 1 thread      {t_cv / a.pairs:.3f} s/pair  ({a.pairs / t_cv:.2f} pairs/s)")
    else:  # an OpenCV without contrib (some GPU images): compare with --opencv-seconds measured elsewhere
        t_cv = a.opencv_seconds * a.pairs
        print(f"  opencv: this OpenCV has no contrib module; using {a.opencv_seconds} s/pair (--opencv-seconds)")
    t_th, _ = timed(lambda: tvl1(prev, nxt, "torch", "cpu"))
    print(f"  fused kernel, cpu, {torch.get_num_threads()} threads  {t_th / a.pairs:.3f} s/pair  ({a.pairs / t_th:.2f} pairs/s, "
          f"{t_cv / t_th:.1f}x opencv 1-thread)")
    if torch.cuda.is_available():
        tvl1(prev[:2], nxt[:2], "torch", "cuda")  # warm-up
        for b in (a.pairs, 4 * a.pairs):
            P, N = np.concatenate([prev] * (b // a.pairs)), np.concatenate([nxt] * (b // a.pairs))
            torch.cuda.synchronize()
            t_gpu, _ = timed(lambda: tvl1(P, N, "torch", "cuda"))
            print(f"  torch, cuda (batch {b:3d}) {t_gpu / b:.4f} s/pair  ({b / t_gpu:.1f} pairs/s, "
                  f"{(b / t_gpu) / (a.pairs / t_cv):.1f}x opencv 1-thread)")
    if a.cnn:
        cnn_throughput(a)


if __name__ == "__main__":
    main()
