"""Batching of variable-length videos: one path for every method.

Videos are padded to the longest in the batch with a boolean ``mask``, so a
training step runs as a few batched matmuls with no per-video Python loop.
Long videos are subsampled to ``max_rows`` rows while training: the video is
cut into ``max_rows`` equal strata and one row is drawn uniformly in each
(STPN's "uniform sampling with random perturbation"); without a random
generator the stratum centres are taken.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from .store import FeatureStore


def sample_rows(n: int, max_rows: int, rng: np.random.Generator | None = None) -> np.ndarray | None:
    """Sorted row indices to keep, or None for all rows (``n <= max_rows`` or ``max_rows <= 0``)."""
    if max_rows <= 0 or n <= max_rows:
        return None
    edges = np.linspace(0.0, n, max_rows + 1)
    offset = 0.5 if rng is None else rng.random(max_rows)
    idx = np.floor(edges[:-1] + offset * np.diff(edges)).astype(np.int64)
    return np.clip(idx, 0, n - 1)


@dataclass
class Batch:
    x: dict  # stream -> (B, T, D) float32
    mask: torch.Tensor  # (B, T) bool
    targets: torch.Tensor  # (B, C) float32 multi-hot
    ids: list
    times: list  # per video (n_i,) float64 arrays
    trimmed: "Batch | None" = None
    pair: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))  # (B_t,)

    def to(self, device) -> "Batch":
        return Batch(
            x={s: v.to(device, non_blocking=True) for s, v in self.x.items()},
            mask=self.mask.to(device, non_blocking=True),
            targets=self.targets.to(device, non_blocking=True),
            ids=self.ids,
            times=self.times,
            trimmed=None if self.trimmed is None else self.trimmed.to(device),
            pair=self.pair.to(device),
        )


def _pad(items: list[dict], streams) -> Batch:
    lengths = [len(it["times"]) for it in items]
    b, t = len(items), max(lengths)
    mask = torch.zeros(b, t, dtype=torch.bool)
    x = {}
    for s in streams:
        d = items[0]["x"][s].shape[1]
        # empty + zeroing only the padded tails: a batch of 16 x 512 x 2048 is 64 MB per
        # stream, and zero-filling it first doubled the cost of collation.
        buf = torch.empty(b, t, d)
        view = buf.numpy()  # same memory; numpy copies from read-only (cached) rows without a warning
        for i, it in enumerate(items):
            view[i, : lengths[i]] = it["x"][s]
            view[i, lengths[i]:] = 0.0
        x[s] = buf
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    targets = torch.from_numpy(np.stack([it["target"] for it in items]).astype(np.float32))
    return Batch(x, mask, targets, [it["id"] for it in items], [it["times"] for it in items])


def collate(items: list[dict]) -> Batch:
    streams = tuple(items[0]["x"].keys())
    batch = _pad(items, streams)
    partners = [(i, it["partner"]) for i, it in enumerate(items) if it.get("partner") is not None]
    if partners:
        batch.trimmed = _pad([p for _, p in partners], streams)
        batch.pair = torch.tensor([i for i, _ in partners], dtype=torch.long)
    return batch


class TrimmedPool:
    """Trimmed clips grouped by class, to draw a class-matched partner for an untrimmed video."""

    def __init__(self, store: FeatureStore, ids: list[str], class_index: np.ndarray, n_classes: int,
                 streams, max_rows: int):
        self.store, self.ids, self.streams, self.max_rows = store, list(ids), tuple(streams), max_rows
        self.class_index = np.asarray(class_index, dtype=np.int64)  # (N,) class of each clip
        self.n_classes = n_classes
        self.by_class = {c: np.nonzero(self.class_index == c)[0] for c in np.unique(self.class_index)}

    def classes(self) -> set[int]:
        return set(int(c) for c in self.by_class)

    def item(self, k: int, rng: np.random.Generator | None) -> dict:
        vid = self.ids[k]
        rows = sample_rows(self.store.info(vid).n_rows, self.max_rows, rng)
        feats = self.store.read(vid, self.streams, rows)
        target = np.zeros(self.n_classes, dtype=np.float32)
        target[self.class_index[k]] = 1.0
        return {"id": vid, "x": {s: feats[s] for s in self.streams}, "times": feats["times"], "target": target}

    def draw(self, labels: np.ndarray, rng: np.random.Generator) -> dict | None:
        """A random clip of a random one of ``labels`` that has clips, or None."""
        usable = [int(c) for c in labels if int(c) in self.by_class]
        if not usable:
            return None
        c = usable[rng.integers(len(usable))]
        pool = self.by_class[c]
        return self.item(int(pool[rng.integers(len(pool))]), rng)


class VideoDataset(Dataset):
    """Untrimmed videos of a store with their multi-hot targets (and optional trimmed partners).

    Randomness is derived from ``(seed, epoch, index)``, so an epoch samples
    the same rows whatever the number of loader workers, and a resumed run
    continues exactly.
    """

    def __init__(self, store: FeatureStore, ids: list[str], targets: np.ndarray, streams, max_rows: int = 0,
                 train: bool = False, seed: int = 0, partners: TrimmedPool | None = None):
        self.store, self.ids, self.streams = store, list(ids), tuple(streams)
        self.targets = np.asarray(targets, dtype=np.float32)
        self.max_rows, self.train, self.seed, self.partners = max_rows, train, seed, partners
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        vid = self.ids[i]
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        rows = sample_rows(self.store.info(vid).n_rows, self.max_rows, rng)
        feats = self.store.read(vid, self.streams, rows)
        item = {"id": vid, "x": {s: feats[s] for s in self.streams}, "times": feats["times"],
                "target": self.targets[i]}
        if self.partners is not None and rng is not None:
            item["partner"] = self.partners.draw(np.nonzero(self.targets[i])[0], rng)
        return item


class TrimmedDataset(Dataset):
    """The trimmed clips on their own, for training the trimmed network first."""

    def __init__(self, pool: TrimmedPool, seed: int = 0):
        self.pool, self.seed, self.epoch = pool, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pool.ids)

    def __getitem__(self, k: int) -> dict:
        return self.pool.item(k, np.random.default_rng([self.seed, self.epoch, k, 1]))
