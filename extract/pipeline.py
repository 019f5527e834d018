"""One video in, its feature rows out: decode in chunks, flow each field once, run the CNNs.

Rows are processed ``chunk_rows`` at a time, in order. Frames arrive from
one pass of the decoder; flow fields are cached by their first frame index
so that overlapping stacks of neighbouring rows compute each field once, and
dropped once no later row needs them.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from joblib import Parallel, delayed

from .decode import FLOW_STACK, DecodeError, VideoReader, plan_rows
from .features import TransformConfig, TwoStreamCNN, flow_frame, flow_input, rgb_input
from .flow import tvl1
from .tvl1_cpu import tvl1_cpu


@dataclass
class VideoFeatures:
    rgb: np.ndarray  # (n, 2048)
    flow: np.ndarray  # (n, 2048)
    times: np.ndarray  # (n,)
    fps: float
    duration: float
    n_frames: int
    seconds: dict = field(default_factory=dict)  # wall time by phase


class FlowRunner:
    """TV-L1 for lists of frame pairs on the chosen backend and device: the extractor's flow, and the
    flow ``train-backbone`` caches, so fine-tuned networks see the fields they will be applied to."""

    def __init__(self, params, backend: str, device: torch.device, workers: int = 1):
        self.params, self.backend, self.device, self.workers = params, backend, device, max(1, workers)
        # OpenCV's TV-L1 releases the GIL, so joblib's thread backend gives real parallelism for the
        # opencv backend without copying frames to worker processes.
        self._parallel = (Parallel(n_jobs=self.workers, prefer="threads")
                          if backend == "opencv" and self.workers > 1 else None)

    def __call__(self, prev: list[np.ndarray], nxt: list[np.ndarray]) -> list[np.ndarray]:
        """uint8 grayscale frames (H, W) -> flow fields (H, W, 2), one per pair."""
        if not prev:
            return []
        p = self.params
        if self.backend == "torch" and self.device.type == "cpu":
            # One pair per thread in the fused kernel; the pool is the flow workers.
            return list(tvl1_cpu(np.stack(prev), np.stack(nxt), p, threads=self.workers))
        if self.backend == "torch":
            return list(tvl1(np.stack(prev), np.stack(nxt), "torch", self.device, p))
        if self._parallel is None:
            return list(tvl1(np.stack(prev), np.stack(nxt), "opencv", params=p))
        return self._parallel(delayed(tvl1)(a, b, "opencv", params=p) for a, b in zip(prev, nxt))


class Extractor:
    def __init__(self, cnn: TwoStreamCNN, rows_per_second: float | str, transform: TransformConfig, decoder: str,
                 flow_backend: str, flow_device: torch.device, workers: int = 1, chunk_rows: int = 32):
        self.cnn, self.rows_per_second, self.tf = cnn, rows_per_second, transform
        self.decoder, self.flow_backend, self.flow_device = decoder, flow_backend, flow_device
        self.workers, self.chunk_rows = max(1, workers), chunk_rows
        self._flow = FlowRunner(transform.tvl1, flow_backend, flow_device, self.workers)

    def _inputs(self, path, decoder: str, secs: dict):
        """Generator: first the row plan, then (rgb input, flow input) per chunk of rows."""
        t0 = time.perf_counter()
        reader = VideoReader(path, decoder)
        plan = plan_rows(reader.frame_times, self.rows_per_second, reader.duration)
        n = len(plan.centre)
        frames_it = reader.frames(plan.frames_needed())
        secs["decode"] += time.perf_counter() - t0
        yield plan
        centre_set = set(plan.centre.tolist())
        rgb_frames: dict[int, np.ndarray] = {}  # centre frames not yet used
        gray: dict[int, np.ndarray] = {}  # grayscale frames for flow
        fields: dict[int, np.ndarray] = {}  # flow field j: frame j -> j + 1
        seen = -1
        for start in range(0, n, self.chunk_rows):
            rows = np.arange(start, min(n, start + self.chunk_rows))
            last = int(max(plan.centre[rows].max(), plan.window[rows].max() + FLOW_STACK))
            t = time.perf_counter()
            while seen < last:
                got = next(frames_it, None)
                if got is None:
                    raise DecodeError(f"video ended before frame {last} of {plan.n_frames} (truncated?)")
                seen, f = got
                gray[seen] = flow_frame(f, self.tf)
                if seen in centre_set:
                    rgb_frames[seen] = f
            secs["decode"] += time.perf_counter() - t
            t = time.perf_counter()
            want = [j for j in plan.fields(rows) if j not in fields]
            for j, f in zip(want, self._flow([gray[j] for j in want], [gray[j + 1] for j in want])):
                fields[j] = f
            secs["flow"] += time.perf_counter() - t
            x_rgb = rgb_input([rgb_frames[int(c)] for c in plan.centre[rows]], self.tf)
            x_flow = flow_input([[fields[j] for j in stack] for stack in plan.stacks(rows)], self.tf)
            if rows[-1] + 1 < n:  # forget what no later row needs
                nxt = rows[-1] + 1
                for d, lo in ((gray, plan.window[nxt]), (fields, plan.window[nxt]), (rgb_frames, plan.centre[nxt])):
                    for k in [k for k in d if k < lo]:
                        del d[k]
            yield x_rgb, x_flow

    def __call__(self, path, decoder: str | None = None, on_rows=None) -> VideoFeatures:
        """Features of one video (with ``decoder``, default the extractor's). Decoding and flow of
        the next chunk of rows run in a background thread while the CNNs process the current one.
        ``on_rows(k)`` is told of every ``k`` rows done, so progress moves within a long video."""
        secs = {"decode": 0.0, "flow": 0.0, "cnn": 0.0}
        gen = self._inputs(path, decoder or self.decoder, secs)
        out_rgb, out_flow = [], []
        with ThreadPoolExecutor(1) as bg:
            plan = bg.submit(next, gen).result()
            pending = bg.submit(next, gen, None)
            while True:
                item = pending.result()  # re-raises a decoding or flow error
                if item is None:
                    break
                pending = bg.submit(next, gen, None)
                t = time.perf_counter()
                out_rgb.append(self.cnn("rgb", item[0]))
                out_flow.append(self.cnn("flow", item[1]))
                secs["cnn"] += time.perf_counter() - t
                if on_rows is not None:
                    on_rows(len(out_rgb[-1]))
        return VideoFeatures(np.concatenate(out_rgb), np.concatenate(out_flow), plan.times, plan.fps,
                             plan.duration, plan.n_frames, secs)
