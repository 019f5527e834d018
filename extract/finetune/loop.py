"""Train one stream on the cached snippets, resumably, and write its checkpoint.

Everything an iteration draws (its clips, their snippets, the augmentation,
dropout) is a function of (seed, stream, iteration), so a run stopped at any
checkpoint and started again computes exactly what an uninterrupted run
would: bit-identical weights on a CPU. ``OUT_DIR/state-<stream>.pt`` holds the
model, the SGD momentum and the log so far (written atomically every
``checkpoint_seconds``); ``OUT_DIR/<stream>.pt`` appears only when the stream
has finished, and the state file then goes.
"""
from __future__ import annotations

import hashlib
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tsrnet.data.format.batching import ahead
from tsrnet.data.core.progress import progress_bar
from tsrnet.data.core.errors import DataError
from tsrnet.data.core.io import atomic_path

from . import augment
from .config import STREAMS, BackboneConfig
from .model import TSN, initial_network, soft_cross_entropy

TOOL = "train-backbone"


def _seed(*parts: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(p) for p in parts])


def clips_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


class Sampler:
    """The clips and snippets of iteration ``it``: epochs are seeded permutations of the clips, and
    segment k of a clip with S candidate snippets draws one uniformly among those in ``[kS/K, (k+1)S/K)``."""

    def __init__(self, cfg: BackboneConfig, stream: str, counts: list[int]):
        self.cfg, self.sid, self.counts = cfg, STREAMS.index(stream), counts

    @lru_cache(maxsize=4)
    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng(_seed(self.cfg.seed, self.sid, 0, epoch)).permutation(len(self.counts))

    def __call__(self, it: int) -> list[tuple[int, list[int], np.random.Generator]]:
        cfg, n, out = self.cfg, len(self.counts), []
        for b in range(cfg.batch):
            epoch, j = divmod(it * cfg.batch + b, n)
            c = int(self._order(epoch)[j])
            rng = np.random.default_rng(_seed(cfg.seed, self.sid, 1, it, b))
            s, k = self.counts[c], cfg.segments
            out.append((c, [min(s - 1, int((seg + rng.random()) * s / k)) for seg in range(k)], rng))
        return out


@dataclass
class Runtime:
    """How to run (not what is trained: none of it changes the result on one device)."""

    device: torch.device
    precision: str = "fp32"
    workers: int = 2
    checkpoint_seconds: float = 600.0
    quiet: bool = False


class StreamTrainer:
    def __init__(self, stream: str, clips, classes: list[str], cache, cfg: BackboneConfig, init: tuple,
                 out_dir: Path, rt: Runtime):
        """``init``: (state dict or None for random, its identity string, its source for messages)."""
        self.stream, self.clips, self.classes, self.cache, self.cfg = stream, clips, classes, cache, cfg
        self.init_state, self.init_id, self.init_source = init
        self.out_dir, self.rt = Path(out_dir), rt
        self.final_path = self.out_dir / f"{stream}.pt"
        self.state_path = self.out_dir / f"state-{stream}.pt"
        self.log_path = self.out_dir / f"log-{stream}.csv"
        n = len(clips)
        self.total = cfg.iterations if cfg.epochs <= 0 else math.ceil(cfg.epochs * n / cfg.batch)
        index = {c: i for i, c in enumerate(classes)}
        self.targets = np.zeros((n, len(classes)), np.float32)  # label distributions
        for i, clip in enumerate(clips):
            for lab in clip.labels:
                self.targets[i, index[lab]] = 1.0 / len(clip.labels)
        self.key = {"tool": TOOL, "stream": stream, "config": cfg.to_dict(), "classes": list(classes),
                    "clips": clips_digest([c.id for c in clips]), "n_clips": n, "initial_weights": self.init_id,
                    "cache": cache.settings, "iterations": self.total}

    # -- data -----------------------------------------------------------------------------------------
    def _one(self, item) -> np.ndarray:
        c, idx, rng = item
        cfg, sample = self.cfg, augment.rgb_sample if self.stream == "rgb" else augment.flow_sample
        out = []
        for i in idx:
            x = self.cache.read(self.clips[c].id, i)
            d = augment.draw(rng, x.shape[0], x.shape[1], cfg.rotation, cfg.scales, cfg.flip)
            out.append(sample(x, d, cfg.size))
        return np.stack(out)  # (K, C, size, size)

    def _batches(self, start: int, sampler: Sampler, pool):
        for it in range(start, self.total):
            items = sampler(it)
            x = torch.from_numpy(np.stack(list(pool.map(self._one, items))))  # (B, K, C, size, size)
            c = [i for i, _, _ in items]
            yield x, torch.from_numpy(self.targets[c])

    # -- checkpoints ----------------------------------------------------------------------------------
    def _save_state(self, model, opt, it: int, log: list, seconds: float) -> None:
        state = {"key": self.key, "iteration": it, "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "log": log, "seconds": seconds}
        with atomic_path(self.state_path) as tmp:
            torch.save(state, tmp)
        self._write_log(log)

    def _write_log(self, log: list) -> None:
        with atomic_path(self.log_path) as tmp:
            pd.DataFrame(log, columns=["iteration", "epoch", "lr", "loss", "accuracy", "seconds"]).to_csv(
                tmp, index=False)

    def finished(self) -> dict | None:
        """The record of a finished stream trained exactly so; a finished one trained otherwise is refused."""
        if not self.final_path.exists():
            return None
        rec = torch.load(self.final_path, map_location="cpu", weights_only=True).get("record", {})
        if {k: rec.get(k) for k in self.key} != self.key:
            raise DataError(f"holds a {self.stream} network trained otherwise; use another OUT_DIR", self.final_path)
        return rec

    def initial_model(self) -> TSN:
        """The network before its first step: the initial weights and a seeded new classifier."""
        torch.manual_seed(int(_seed(self.cfg.seed, STREAMS.index(self.stream), 2).generate_state(1)[0]))
        return TSN(initial_network(self.stream, self.init_state, self.init_source), len(self.classes),
                   self.cfg.dropout, self.cfg.partial_bn)

    # -- the loop -------------------------------------------------------------------------------------
    def run(self, stop_after: int | None = None) -> dict | None:
        """Train to the end (or, for tests, stop after ``stop_after`` iterations with a checkpoint: None)."""
        done = self.finished()
        if done is not None:
            return done
        cfg, dev = self.cfg, self.rt.device
        model = self.initial_model().to(dev)
        if dev.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
        # TSN: no weight decay on biases and BatchNorm parameters.
        opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr(self.stream),
                              momentum=cfg.momentum)
        start, log, seconds = 0, [], 0.0
        if self.state_path.exists():
            state = torch.load(self.state_path, map_location=dev, weights_only=False)
            if state["key"] != self.key:
                differ = sorted(k for k in self.key if state["key"].get(k) != self.key[k])
                raise DataError(f"holds a checkpoint of another training ({', '.join(differ)}); use another "
                                "OUT_DIR or the same settings", self.state_path)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start, log, seconds = state["iteration"], state["log"], state["seconds"]
        sampler = Sampler(cfg, self.stream, [self.cache.count(c.id) for c in self.clips])
        autocast = (torch.autocast(dev.type, dtype=torch.bfloat16) if self.rt.precision == "bf16"
                    else torch.autocast(dev.type, dtype=torch.float16) if self.rt.precision == "fp16"
                    else nullcontext())
        bar = progress_bar(total=self.total, initial=start, desc=f"train-backbone {self.stream}", unit="it",
                           disable=self.rt.quiet)
        model.train()
        t0, last_save, sid = time.perf_counter(), time.monotonic(), STREAMS.index(self.stream)
        try:
            with ThreadPoolExecutor(max(1, self.rt.workers)) as pool:
                for it, (x, y) in zip(range(start, self.total), ahead(self._batches(start, sampler, pool))):
                    lr = cfg.lr(self.stream) * 0.1 ** (it // cfg.lr_step)
                    for g in opt.param_groups:
                        g["lr"] = lr
                    torch.manual_seed(int(_seed(cfg.seed, sid, 3, it).generate_state(1)[0]))  # dropout
                    x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                    with autocast:
                        logits = model(x)
                    loss = soft_cross_entropy(logits.float(), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.clip_gradient > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_gradient)
                    opt.step()
                    hit = y.gather(1, logits.argmax(1, keepdim=True)).gt(0).float().mean().item()
                    log.append({"iteration": it + 1, "epoch": round((it + 1) * cfg.batch / len(self.clips), 3),
                                "lr": lr, "loss": round(loss.item(), 5), "accuracy": round(hit, 4),
                                "seconds": round(seconds + time.perf_counter() - t0, 2)})
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{hit:.2f}")
                    if stop_after is not None and it + 1 - start >= stop_after and it + 1 < self.total:
                        self._save_state(model, opt, it + 1, log, seconds + time.perf_counter() - t0)
                        return None
                    if time.monotonic() - last_save >= self.rt.checkpoint_seconds and it + 1 < self.total:
                        self._save_state(model, opt, it + 1, log, seconds + time.perf_counter() - t0)
                        last_save = time.monotonic()
        finally:
            bar.close()
        return self._finish(model, log, seconds + time.perf_counter() - t0)

    def _finish(self, model, log: list, seconds: float) -> dict:
        tail = log[-max(1, min(len(log), math.ceil(len(self.clips) / self.cfg.batch))):]  # about the last epoch
        rec = dict(self.key, train_loss=round(float(np.mean([r["loss"] for r in tail])), 4) if tail else None,
                   train_accuracy=round(float(np.mean([r["accuracy"] for r in tail])), 4) if tail else None,
                   seconds=round(seconds, 1), device=str(self.rt.device), precision=self.rt.precision,
                   size=self.cfg.size, resize=self.cfg.resize)
        state = {k: v.detach().cpu() for k, v in model.backbone.state_dict().items()}
        with atomic_path(self.final_path) as tmp:
            torch.save({"state_dict": state, "record": rec}, tmp)
        self._write_log(log)
        self.state_path.unlink(missing_ok=True)
        return rec
