"""Batching of variable-length videos: one path for every method.

Videos are padded to the longest in the batch with a boolean ``mask``, so a
training step runs as a few batched matmuls with no per-video Python loop.
Which rows of a video a training sample holds is the method's choice, made
with one of the samplers below (picklable objects, so loader workers can
use them):

- :class:`Strata`: ``rows`` equal strata, one row drawn uniformly in each
  (STPN's "uniform sampling with random perturbation"); without a random
  generator the stratum centres are taken.
- :class:`Window`: ``rows`` consecutive rows from a random start, for
  modules whose temporal convolutions need true neighbours.
- :class:`Clips`: ``n_clips`` clips of a video's clip proposals, each
  represented by ``per_clip`` rows drawn across it (UntrimmedNet's clip
  sampling with the TSN consensus of 3 segments).

Scoring a video for detection always reads every row.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from tsrnet.data.format.store import FeatureStore


def sample_rows(n: int, max_rows: int, rng: np.random.Generator | None = None) -> np.ndarray | None:
    """Sorted row indices to keep, or None for all rows (``n <= max_rows`` or ``max_rows <= 0``)."""
    if max_rows <= 0 or n <= max_rows:
        return None
    edges = np.linspace(0.0, n, max_rows + 1)
    offset = 0.5 if rng is None else rng.random(max_rows)
    idx = np.floor(edges[:-1] + offset * np.diff(edges)).astype(np.int64)
    return np.clip(idx, 0, n - 1)


class Strata:
    """``rows`` strata per video (0 = all rows); videos with fewer rows are read whole."""

    def __init__(self, rows: int):
        self.rows = int(rows)

    def __call__(self, store: FeatureStore, video_id: str, rng: np.random.Generator | None):
        return sample_rows(store.info(video_id).n_rows, self.rows, rng)


class Window:
    """``rows`` consecutive rows from a random start (the middle without a generator); 0 = all rows."""

    def __init__(self, rows: int):
        self.rows = int(rows)

    def __call__(self, store: FeatureStore, video_id: str, rng: np.random.Generator | None):
        n = store.info(video_id).n_rows
        if self.rows <= 0 or n <= self.rows:
            return None
        start = (n - self.rows) // 2 if rng is None else int(rng.integers(n - self.rows + 1))
        return np.arange(start, start + self.rows)


def tsn_rows(first: int, last: int, k: int, rng: np.random.Generator | None) -> np.ndarray:
    """``k`` rows across ``first..last`` (inclusive): one per equal segment, random within it with a
    generator, the segment centre without (TSN's segmental consensus, Wang et al. 2016)."""
    edges = np.linspace(first, last + 1, k + 1)
    offset = 0.5 if rng is None else rng.random(k)
    return np.clip(np.floor(edges[:-1] + offset * np.diff(edges)).astype(np.int64), first, last)


class Clips:
    """``n_clips`` clip proposals per video, ``per_clip`` rows each: ``n_clips * per_clip`` indices, clip by clip.

    ``proposals(store, video_id) -> [(first, last), ...]`` gives a video's clips
    (inclusive row ranges). With fewer clips than ``n_clips`` some are drawn
    twice, so every sample has the same shape. Without a generator the clips
    are spread evenly over the proposals.
    """

    def __init__(self, proposals, n_clips: int, per_clip: int):
        self.proposals, self.n_clips, self.per_clip = proposals, int(n_clips), int(per_clip)

    def __call__(self, store: FeatureStore, video_id: str, rng: np.random.Generator | None):
        clips = self.proposals(store, video_id)
        m = len(clips)
        if rng is None:
            pick = np.round(np.linspace(0, m - 1, self.n_clips)).astype(int)
        elif m >= self.n_clips:
            pick = np.sort(rng.choice(m, self.n_clips, replace=False))
        else:
            pick = np.sort(rng.integers(m, size=self.n_clips))
        return np.concatenate([tsn_rows(*clips[i], self.per_clip, rng) for i in pick])


@dataclass
class Batch:
    x: dict  # stream -> (B, T, D) float32, or the store's float16 (collate(keep_dtype=True)) until .to()
    mask: torch.Tensor  # (B, T) bool
    targets: torch.Tensor  # (B, C) float32 multi-hot
    ids: list
    times: list  # per video (n_i,) float64 arrays
    trimmed: "Batch | None" = None
    pair: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))  # (B_t,)

    def to(self, device) -> "Batch":
        """On ``device``, features as float32: a float16 batch crosses to a GPU at half the bytes and is
        converted there, where the conversion costs nothing next to the step."""
        return Batch(
            x={s: v.to(device, non_blocking=True).float() for s, v in self.x.items()},
            mask=self.mask.to(device, non_blocking=True),
            targets=self.targets.to(device, non_blocking=True),
            ids=self.ids,
            times=self.times,
            trimmed=None if self.trimmed is None else self.trimmed.to(device),
            pair=self.pair.to(device),
        )

    def pin_memory(self) -> "Batch":
        """Page-locked copies (DataLoader(pin_memory=True) calls this), so that .to(cuda) runs asynchronously."""
        return Batch(
            x={s: v.pin_memory() for s, v in self.x.items()}, mask=self.mask.pin_memory(),
            targets=self.targets.pin_memory(), ids=self.ids, times=self.times,
            trimmed=None if self.trimmed is None else self.trimmed.pin_memory(), pair=self.pair.pin_memory())


def _pad(items: list[dict], streams, keep_dtype: bool = False) -> Batch:
    lengths = [len(it["times"]) for it in items]
    b, t = len(items), max(lengths)
    mask = torch.zeros(b, t, dtype=torch.bool)
    x = {}
    for s in streams:
        d = items[0]["x"][s].shape[1]
        # empty + zeroing only the padded tails: a batch of 16 x 512 x 2048 is 64 MB per
        # stream, and zero-filling it first doubled the cost of collation.
        dtype = torch.from_numpy(items[0]["x"][s][:0]).dtype if keep_dtype else torch.float32
        buf = torch.empty(b, t, d, dtype=dtype)
        view = buf.numpy()  # same memory; numpy copies from read-only (cached) rows without a warning
        for i, it in enumerate(items):
            view[i, : lengths[i]] = it["x"][s]
            view[i, lengths[i]:] = 0.0
        x[s] = buf
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    targets = torch.from_numpy(np.stack([it["target"] for it in items]).astype(np.float32))
    return Batch(x, mask, targets, [it["id"] for it in items], [it["times"] for it in items])


def collate(items: list[dict], keep_dtype: bool = False) -> Batch:
    """Pad a list of dataset items into one Batch. ``keep_dtype``: features stay in the store's dtype
    (float16) until :meth:`Batch.to` (for a GPU: half the bytes to copy, and no conversion on the CPU)."""
    streams = tuple(items[0]["x"].keys())
    batch = _pad(items, streams, keep_dtype)
    partners = [(i, it["partner"]) for i, it in enumerate(items) if it.get("partner") is not None]
    if partners:
        batch.trimmed = _pad([p for _, p in partners], streams, keep_dtype)
        batch.pair = torch.tensor([i for i, _ in partners], dtype=torch.long)
    return batch


def ahead(iterable, depth: int = 2):
    """Iterate ``iterable`` in a background thread, up to ``depth`` items ahead, in the same order.

    Sampling, reading cached rows and collating are mostly numpy copies, which release the GIL, so
    they overlap with a GPU step that the main thread is launching. An exception in the thread is
    raised here, at the item where it happened.
    """
    it = iter(iterable)
    with ThreadPoolExecutor(1) as pool:
        pending = [pool.submit(next, it, _END) for _ in range(depth)]
        while True:
            item = pending.pop(0).result()
            if item is _END:
                return
            pending.append(pool.submit(next, it, _END))
            yield item


_END = object()


class TrimmedPool:
    """Trimmed clips grouped by class, to draw a class-matched partner for an untrimmed video."""

    def __init__(self, store: FeatureStore, ids: list[str], class_index: np.ndarray, n_classes: int,
                 streams, sampler=None):
        self.store, self.ids, self.streams = store, list(ids), tuple(streams)
        self.sampler = sampler if sampler is not None else Strata(0)
        self.class_index = np.asarray(class_index, dtype=np.int64)  # (N,) class of each clip
        self.n_classes = n_classes
        self.by_class = {c: np.nonzero(self.class_index == c)[0] for c in np.unique(self.class_index)}

    def classes(self) -> set[int]:
        return set(int(c) for c in self.by_class)

    def item(self, k: int, rng: np.random.Generator | None) -> dict:
        vid = self.ids[k]
        feats = self.store.read(vid, self.streams, self.sampler(self.store, vid, rng))
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

    def __init__(self, store: FeatureStore, ids: list[str], targets: np.ndarray, streams, sampler=None,
                 train: bool = False, seed: int = 0, partners: TrimmedPool | None = None):
        self.store, self.ids, self.streams = store, list(ids), tuple(streams)
        self.targets = np.asarray(targets, dtype=np.float32)
        self.sampler = sampler if sampler is not None else Strata(0)
        self.train, self.seed, self.partners = train, seed, partners
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        vid = self.ids[i]
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        rows = self.sampler(self.store, vid, rng) if self.train else None
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
