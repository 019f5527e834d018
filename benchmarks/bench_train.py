"""Trainer speed and memory on a THUMOS-sized synthetic store.

Default size: 200 untrimmed videos x ~1,500 rows and 2,000 trimmed clips x ~60 rows,
D = 2048, both streams, float16 on disk. Reports seconds per epoch, rows per second,
peak RSS, and the ratio of a training step's time to the time of its raw matmuls
(the attention and classifier projections, forward and backward) measured in the same run.

    python benchmarks/bench_train.py [--videos 200 --rows 1500 --clips 2000 --dim 2048 --epochs 2]
"""
import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tsrnet.data.format.store import STREAMS, StoreWriter
from tsrnet.train.config import Config
from tsrnet.train.data import prepare_data
from tsrnet.train.trainer import Trainer


def make_store(path, n, rows, dim, domain, rng, classes):
    with StoreWriter(path, dim, STREAMS) as w:
        for i in range(n):
            k = max(8, int(rows * rng.uniform(0.7, 1.3)))
            x = rng.standard_normal((k, dim), dtype=np.float32)
            w.add(f"{domain}_{i:05d}", times=np.arange(k) / 4 + 0.125, fps=30, duration=k / 4, n_frames=k * 30 // 4,
                  domain=domain, subset="train" if domain == "untrimmed" else None,
                  labels=[classes[i % len(classes)]], rgb=x, flow=x)


def raw_matmul_seconds(cfg, dim, rows, n_classes, trimmed_rows=0, steps=3, device="cpu"):
    """Time of the step's dense matmuls alone: W1 over all rows, w2, FC1, FC2, fwd + bwd, both streams.

    ``trimmed_rows`` adds the rows of the class-matched trimmed clips that a
    TSRNet step also runs through its (trimmed) attention.
    """
    b, t, h, a = cfg.train.batch_size, rows, cfg.options.hidden_dim, cfg.options.attention_dim
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    x = torch.randn(b * (t + trimmed_rows), dim, device=dev)
    W1 = torch.randn(dim, a, requires_grad=True, device=dev)
    w2 = torch.randn(a, 1, requires_grad=True, device=dev)
    F1 = torch.randn(dim, h, requires_grad=True, device=dev)
    F2 = torch.randn(h, n_classes, requires_grad=True, device=dev)
    best = float("inf")
    for _ in range(steps + 1):  # the first warms up (kernel selection on a GPU)
        sync()
        t0 = time.perf_counter()
        for _ in STREAMS:
            e = (x @ W1) @ w2
            m = torch.randn(b, dim, device=dev) + e.view(b, -1).sum(1, keepdim=True) * 0
            out = (m @ F1) @ F2
            (e.sum() + out.sum()).backward()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--videos", type=int, default=200)
    p.add_argument("--rows", type=int, default=1500)
    p.add_argument("--clips", type=int, default=2000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--model", default="tsrnet")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (train-tsr --workers).")
    p.add_argument("--cache-gb", type=float, default=Config().train.cache_gb,
                   help="In-memory feature cache per store (train-tsr --cache-gb; 0 = read the file every epoch).")
    p.add_argument("--dir", default=None, help="Keep the stores here (default: a temporary folder).")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    classes = [f"c{i}" for i in range(20)]
    tmp = Path(args.dir or tempfile.mkdtemp())
    tmp.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if not (tmp / "u.h5").exists():
        make_store(tmp / "u.h5", args.videos, args.rows, args.dim, "untrimmed", rng, classes)
        make_store(tmp / "t.h5", args.clips, 60, args.dim, "trimmed", rng, classes)
    print(f"stores ready in {time.perf_counter() - t0:.1f} s "
          f"({(tmp / 'u.h5').stat().st_size / 2**30:.2f} + {(tmp / 't.h5').stat().st_size / 2**30:.2f} GiB)")
    cfg = Config.for_method(args.model, train=dict(epochs=args.epochs, pretrain_steps=0, workers=args.workers,
                                                   cache_gb=args.cache_gb))
    data = prepare_data(cfg, tmp / "u.h5", None, "train", tmp / "t.h5" if cfg.make_method().uses_trimmed else None)
    tr = Trainer(cfg, data, tmp / "run", progress=False)
    tr.fit()
    secs = [h["seconds"] for h in tr.history]
    rows = min(args.rows, cfg.options.max_rows)
    steps = -(-args.videos // cfg.train.batch_size)
    step_s = np.median(secs) / steps
    trimmed_rows = min(60, cfg.options.max_rows_trimmed) if args.model.startswith("tsr") else 0
    raw = raw_matmul_seconds(cfg, args.dim, rows, len(classes), trimmed_rows, device=tr.device)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"model {args.model}, device {tr.device}, torch threads {torch.get_num_threads()}, loader workers {args.workers}, "
          f"cache {args.cache_gb} GiB per store")
    print("seconds of each epoch: " + ", ".join(f"{s:.1f}" for s in secs))
    print(f"seconds per epoch: {np.median(secs):.1f} ({steps} steps, {rows} rows/video sampled)")
    print(f"rows per second: {args.videos * rows / np.median(secs):,.0f}")
    print(f"step time / raw matmul time: {step_s:.3f} s / {raw:.3f} s = {step_s / raw:.2f}")
    print(f"peak RSS: {rss:.2f} GiB")


if __name__ == "__main__":
    main()
