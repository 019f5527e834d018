"""Extraction speed: end to end and per phase (decode, flow, CNN), and the two TV-L1 backends.

    python benchmarks/bench_extract.py [--seconds 60 --size 320x240 --fps 30 --rows-per-second 4]
                                       [--device auto --pairs 8]

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
    a = p.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else torch.device(a.device)
    w, h = (int(x) for x in a.size.split("x"))
    print(f"device {dev}, torch threads {torch.get_num_threads()}, cpu cores {os.cpu_count()}")
    tf = TransformConfig()

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


if __name__ == "__main__":
    main()
