"""TV-L1 throughput: OpenCV's DualTVL1 on one thread against the project's fused TV-L1, in one run.

    python benchmarks/bench_flow.py [--pairs 8] [--sizes 160x120,320x240,340x256] [--batches 1,2,4,8]
                                    [--device auto] [--gpu-batches 8,32,128,256] [--json OUT]

Frame pairs are textured scenes under affine motions of up to 10 px with
known flow (``tsrnet.data.generators.synthetic_motion``), so each figure comes with its
error against the true motion. On the CPU it prints, per frame size, OpenCV's
pairs/s in one thread, the fused kernel's pairs/s with all cores (one pair
per thread), their ratio, the mean end-point distance between the two flows,
and the fused pairs/s against the batch size (pairs per call); and the time
the kernel's first compile costs. With a GPU, the same for the compiled
tensor code against the batch size, and its compile time.
"""
import argparse
import json
import os
import tempfile

import cv2
import numpy as np
import torch

from bench_extract import timed  # benchmarks/ is on the path when this script runs
from tsrnet.data.generators.synthetic_motion import affine_pair
from tsrnet.data.core.devices import available_cpus
from tsrnet.extract import tvl1_cpu
from tsrnet.extract.flow import TVL1Params, tvl1, tvl1_torch


def epe(a, b):
    return float(np.linalg.norm(a - b, axis=-1).mean())


def make_pairs(n, w, h, seed=0):
    rng = np.random.default_rng(seed)
    ps = [affine_pair(h, w, rng, max_motion=float(m)) for m in np.linspace(2, 10, n)]
    return tuple(np.stack(x) for x in zip(*ps))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=8, help="frame pairs per measurement")
    p.add_argument("--sizes", default="160x120,320x240,340x256")
    p.add_argument("--batches", default="1,2,4,8", help="pairs per call for the CPU batch sweep (at 320x240)")
    p.add_argument("--device", default="auto")
    p.add_argument("--gpu-batches", default="8,32,128,256")
    p.add_argument("--gpu-sizes", default="340x256,320x240")
    p.add_argument("--skip-cpu", action="store_true", help="only the GPU part")
    p.add_argument("--json", help="write the figures here too")
    a = p.parse_args()
    params = TVL1Params()
    cores = available_cpus()
    res = {"cpu_cores": cores, "torch_threads": torch.get_num_threads(), "cpu": {}, "gpu": {}}
    print(f"{cores} CPU cores, torch {torch.__version__}, OpenCV {cv2.__version__}; TV-L1 defaults {params}")

    if not a.skip_cpu:
        # The kernel's first compile, in a fresh cache.
        with tempfile.TemporaryDirectory() as d:
            old = os.environ.get("TSRNET_CACHE")
            os.environ["TSRNET_CACHE"] = d
            tvl1_cpu._lib = tvl1_cpu._error = None
            t_build, _ = timed(tvl1_cpu.kernel)
            if old is None:
                del os.environ["TSRNET_CACHE"]
            else:
                os.environ["TSRNET_CACHE"] = old
        res["cpu"]["compile_s"] = t_build
        print(f"fused kernel: first compile {t_build:.2f} s (then cached)")
        has_contrib = hasattr(cv2, "optflow")
        print(f"{'size':>8} | {'OpenCV 1 thr':>12} | {'fused ' + str(cores) + ' thr':>12} | {'ratio':>5} | "
              f"{'EPE fused-OpenCV':>16} | {'EPE to truth: OpenCV / fused':>28}")
        for size in a.sizes.split(","):
            w, h = (int(x) for x in size.split("x"))
            prev, nxt, gt = make_pairs(a.pairs, w, h)
            row = {}
            if has_contrib:
                cv2.setNumThreads(1)
                t_cv, f_cv = timed(lambda: tvl1(prev, nxt, "opencv", params=params))
                cv2.setNumThreads(-1)
                row["opencv_1thread_pairs_s"] = a.pairs / t_cv
            t_fu, f_fu = timed(lambda: tvl1_cpu.tvl1_cpu(prev, nxt, params, threads=cores))
            row["fused_pairs_s"] = a.pairs / t_fu
            row["epe_fused_truth"] = float(np.mean([epe(x, g) for x, g in zip(f_fu, gt)]))
            line = f"{size:>8} | "
            if has_contrib:
                row["ratio"] = row["fused_pairs_s"] / row["opencv_1thread_pairs_s"]
                row["epe_fused_opencv"] = float(np.mean([epe(x, y) for x, y in zip(f_fu, f_cv)]))
                row["epe_opencv_truth"] = float(np.mean([epe(x, g) for x, g in zip(f_cv, gt)]))
                line += (f"{row['opencv_1thread_pairs_s']:>8.2f} p/s | {row['fused_pairs_s']:>8.2f} p/s | "
                         f"{row['ratio']:>5.1f} | {row['epe_fused_opencv']:>13.4f} px | "
                         f"{row['epe_opencv_truth']:>12.4f} / {row['epe_fused_truth']:.4f} px")
            else:
                line += f"{'(no contrib)':>12} | {row['fused_pairs_s']:>8.2f} p/s |"
            print(line, flush=True)
            res["cpu"][size] = row
        w, h = 320, 240
        prev, nxt, _ = make_pairs(max(a.pairs, max(int(b) for b in a.batches.split(","))), w, h, seed=1)
        sweep = {}
        for b in (int(x) for x in a.batches.split(",")):
            n = (len(prev) // b) * b
            t, _ = timed(lambda: [tvl1_cpu.tvl1_cpu(prev[i:i + b], nxt[i:i + b], params, threads=cores)
                                  for i in range(0, n, b)])
            sweep[b] = n / t
        res["cpu"]["batch_sweep_320x240"] = sweep
        print("fused at 320x240, pairs/s by pairs per call: " + ", ".join(f"{b}: {v:.2f}" for b, v in sweep.items()))

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else torch.device(a.device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        print(f"GPU: {name}")
        res["gpu"]["name"] = name
        for k, size in enumerate(a.gpu_sizes.split(",")):
            w, h = (int(x) for x in size.split("x"))
            nmax = max(int(b) for b in a.gpu_batches.split(","))
            base = make_pairs(min(nmax, 32), w, h, seed=2)
            reps = -(-nmax // len(base[0]))
            prev, nxt, gt = (np.concatenate([x] * reps)[:nmax] for x in base)
            i0 = torch.from_numpy(prev).to(dev, torch.float32)
            i1 = torch.from_numpy(nxt).to(dev, torch.float32)

            def run(b):
                with torch.no_grad():
                    out = tvl1_torch(i0[:b], i1[:b], params)
                torch.cuda.synchronize()
                return out
            t_first, _ = timed(lambda: run(int(a.gpu_batches.split(",")[0])))
            if k == 0:
                res["gpu"]["first_call_s"] = t_first
                print(f"compiled tensor TV-L1: first call (compile) {t_first:.1f} s")
            sweep = {}
            for b in (int(x) for x in a.gpu_batches.split(",")):
                run(b)  # shapes seen once
                t, out = timed(lambda: run(b))
                sweep[b] = b / t
            flow = out.cpu().numpy()
            e_truth = float(np.mean([epe(x, g) for x, g in zip(flow, gt)]))
            res["gpu"][size] = {"pairs_s_by_batch": sweep, "epe_truth": e_truth}
            line = f"GPU {size}, pairs/s by batch: " + ", ".join(f"{b}: {v:.1f}" for b, v in sweep.items())
            if tvl1_cpu.available():
                ref = tvl1_cpu.tvl1_cpu(prev[:8], nxt[:8], params)
                res["gpu"][size]["epe_gpu_fused_cpu"] = float(np.mean([epe(x, y) for x, y in zip(flow[:8], ref)]))
                line += f"; EPE to the CPU kernel {res['gpu'][size]['epe_gpu_fused_cpu']:.4f} px"
            print(line + f"; EPE to truth {e_truth:.4f} px", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
