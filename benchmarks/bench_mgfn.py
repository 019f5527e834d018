"""KT-MGFN and MGFN training steps, and soft-NMS, on the synthetic set of ``make-synthetic-features``.

Writes the store with make-synthetic-features' defaults (40 training videos of 80-240 rows, D = 128 per
stream, 400 trimmed clips), builds the trainer of each model with its default options at each MDCM width of
``--hidden-dims`` (the width is 85% of a step's arithmetic, so 512 against the default shows what the default
saves), and times
``--steps`` default main-stage training steps (forward, backward, Adam step; L_OIC on, as in the main
stage's second phase) after ``--warmup`` steps, in each precision of ``--precisions`` (``auto``: what
``train-tsr`` chooses for the model here), cycling over the first epoch's batches. Prints wall and
process-CPU seconds per step: on shared cores the wall time moves with the other processes' load, the CPU
time of one thread (``--threads 1``) much less. Then soft-NMS (``detect --suppress soft-nms`` defaults:
sigma 0.75 above tIoU 0.5) on random intervals of a 10-minute video, ``--anchors`` of them per class.

    python benchmarks/bench_mgfn.py [--steps 5 --warmup 2 --threads 2 --hidden-dims 512,default --precisions fp32,bf16
                                     --anchors 300,1000,3000]
"""
import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tsrnet.data.generators.synthetic import SyntheticSpec, generate
from tsrnet.detect.postprocess import soft_nms
from tsrnet.train.config import Config
from tsrnet.train.data import prepare_data
from tsrnet.train.methods.ktmgfn import MGFNOptions
from tsrnet.train.trainer import Trainer


def time_steps(model: str, store: Path, steps: int, warmup: int, hidden_dim: int, precision: str) -> dict:
    cfg = Config.for_method(model, options={"hidden_dim": hidden_dim}, train=dict(seed=0, precision=precision))
    transfer = cfg.make_method().uses_trimmed
    data = prepare_data(cfg, store / "untrimmed.h5", None, None, store / "trimmed.h5" if transfer else None)
    with tempfile.TemporaryDirectory() as run:
        tr = Trainer(cfg, data, Path(run), progress=False)
    tr.model.train()
    tr.method.oic_on = True
    batches = list(tr._loader(tr.main_set, 0))
    wall, cpu = [], []
    for i in range(warmup + steps):
        b = batches[i % len(batches)]
        c0, t0 = time.process_time(), time.perf_counter()
        with tr._autocast():
            loss, _ = tr.method.loss(tr.model, b, "main")
        tr.optim.zero_grad(set_to_none=True)
        loss.backward()
        tr.optim.step()
        if i >= warmup:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    rows = [int(b.mask.sum()) for b in batches]
    return {"wall": wall, "cpu": cpu, "batches": [tuple(b.mask.shape) for b in batches], "rows": rows,
            "precision": tr.cfg.train.precision}


def time_soft_nms(n: int, repeats: int = 3) -> float:
    rng = np.random.default_rng(n)
    start = rng.uniform(0, 600, n)
    seg = np.stack([start, start + rng.uniform(1, 30, n)], axis=1)
    scores = rng.random(n)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        soft_nms(seg, scores, sigma=0.75, iou=0.5)
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="kt-mgfn,mgfn")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--hidden-dims", default="512,default",
                   help="MDCM widths to time, 'default' = the option's default (both in one run: before and after)")
    p.add_argument("--precisions", default="fp32,bf16",
                   help="training precisions to time (fp32, bf16, or auto: train-tsr's choice for the model)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--anchors", default="300,1000,3000", help="intervals per class for soft-NMS")
    p.add_argument("--dir", default=None, help="keep the synthetic store here (default: a temporary folder)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(args.dir or tempfile.mkdtemp())
    if not (tmp / "untrimmed.h5").exists():
        generate(tmp, SyntheticSpec())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; store {tmp}")
    default = MGFNOptions().hidden_dim
    for width in args.hidden_dims.split(","):
        w = default if width == "default" else int(width)
        for model, precision in itertools.product(args.models.split(","), args.precisions.split(",")):
            r = time_steps(model, tmp, args.steps, args.warmup, w, precision)
            name = f"{model} width {w}" + (" (default)" if w == default else "") + f", {precision}"
            if precision == "auto":
                name += f" = {r['precision']}"
            print(f"{name}: batches (B, T) {r['batches']}, real rows {r['rows']}")
            print(f"{name}: seconds per step, wall median {np.median(r['wall']):.3f} (min {min(r['wall']):.3f}), "
                  f"process CPU median {np.median(r['cpu']):.3f} over {args.steps} steps")
    for n in (int(v) for v in args.anchors.split(",")):
        print(f"soft-NMS of {n} intervals: {time_soft_nms(n):.4f} s")


if __name__ == "__main__":
    main()
