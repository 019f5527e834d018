"""The HDF5 feature store (``docs/formats.md``, section 1).

::

    /                     attrs: format="tsrnet-features", version=1, streams, feature_dim, ...
    /videos/<video_id>/   rgb (n, D), flow (n, D), times (n,)
                          attrs: fps, duration, n_frames, domain, [subset], [labels]

:class:`FeatureStore` is the one reader every method uses. It opens the file
lazily and once per process, so it can be handed to forked data-loader
workers, and it reads a video only when asked: a store larger than RAM trains
with bounded memory (the OS page cache does the rest).

:class:`StoreWriter` writes a whole store to a temporary file and renames it
into place, so a crash never leaves a half-written store behind.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import h5py
import numpy as np

from tsrnet.data.core.errors import DataError
from tsrnet.data.core.io import atomic_path

FORMAT = "tsrnet-features"
VERSION = 1
STREAMS = ("rgb", "flow")
DOMAINS = ("untrimmed", "trimmed")


SOURCE_ATTR = "source_file"  # a video's attribute: the fingerprint of the file it was extracted from (JSON)


@dataclass
class VideoInfo:
    """Per-video metadata, read from the group's attributes (no feature rows)."""

    video_id: str
    n_rows: int
    fps: float
    duration: float
    n_frames: int
    domain: str
    subset: str | None = None
    labels: list[str] | None = None


def as_float32(x: np.ndarray) -> np.ndarray:
    """``x`` as a float32 array (a copy, or ``x`` itself when it is float32 already).

    float16 goes through torch: numpy converts half floats one at a time, about ten times slower than torch's
    vectorised conversion (in a profile of one TSRNet training run, a tenth of its time went to numpy's).
    Both are exact, so the values are the same.
    """
    if x.dtype == np.float16:
        import warnings

        import torch  # a core dependency; imported here so that reading a store does not load it up front

        with warnings.catch_warnings():  # cached rows are read-only; torch only reads them here
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            return torch.from_numpy(np.ascontiguousarray(x)).float().numpy()
    return np.asarray(x, dtype=np.float32)


def _attr_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode_labels(raw, path, vid) -> list[str] | None:
    if raw is None:
        return None
    raw = _attr_str(raw)
    try:
        labels = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DataError(f"attribute 'labels' is not a JSON list ({e.msg})", path, vid) from None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise DataError("attribute 'labels' must be a JSON list of class names", path, vid)
    return labels


class FeatureStore:
    """Read-only access to a feature store.

    >>> store = FeatureStore("features.h5")            # doctest: +SKIP
    >>> store.streams, store.feature_dim               # doctest: +SKIP
    (('rgb', 'flow'), 2048)
    >>> rows = store.read("video_test_0000004")        # doctest: +SKIP
    >>> rows["rgb"].shape, rows["times"].shape         # doctest: +SKIP
    ((371, 2048), (371,))
    """

    def __init__(self, path: str | os.PathLike, cache_bytes: int = 0):
        """``cache_bytes`` > 0 keeps whole videos (as stored, validated) in memory after their first
        read, until that many bytes are held: training reads every video once per epoch, and a
        store that fits is read from the file only in the first epoch."""
        self.path = Path(path)
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self._cache_used = 0
        if not self.path.exists():
            raise DataError("feature store not found", self.path)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        f = self._h5()
        attrs = f.attrs
        fmt = _attr_str(attrs.get("format", ""))
        if fmt != FORMAT:
            raise DataError(f"not a feature store (attribute format={fmt!r}, expected {FORMAT!r})", self.path)
        version = int(attrs.get("version", -1))
        if version != VERSION:
            raise DataError(f"store version {version} is not supported (expected {VERSION})", self.path)
        streams = attrs.get("streams")
        if streams is None:
            raise DataError("root attribute 'streams' is missing", self.path)
        self.streams: tuple[str, ...] = tuple(_attr_str(s) for s in np.atleast_1d(streams))
        unknown = set(self.streams) - set(STREAMS)
        if unknown:
            raise DataError(f"unknown stream(s) {sorted(unknown)} (known: {list(STREAMS)})", self.path)
        self.feature_dim = int(attrs.get("feature_dim", -1))
        if self.feature_dim <= 0:
            raise DataError("root attribute 'feature_dim' is missing or not positive", self.path)
        if "videos" not in f:
            raise DataError("group /videos is missing", self.path)
        self.video_ids_all: list[str] = sorted(f["videos"].keys())
        self.attrs = {k: (_attr_str(v) if isinstance(v, (bytes, str)) else v) for k, v in attrs.items()}
        self._info: dict[str, VideoInfo] = {}

    # -- file handle -------------------------------------------------------
    def _h5(self) -> h5py.File:
        # h5py handles must not cross a fork; reopen in each process.
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as e:
                raise DataError(f"cannot open as HDF5 ({e})", self.path) from None
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def __len__(self) -> int:
        return len(self.video_ids_all)

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._h5()["videos"]

    # -- metadata ----------------------------------------------------------
    def require_streams(self, streams: Sequence[str]) -> None:
        missing = [s for s in streams if s not in self.streams]
        if missing:
            raise DataError(
                f"store holds stream(s) {list(self.streams)} but the model needs {list(streams)}; "
                f"missing: {missing} (use a single-stream model or extract the missing stream)",
                self.path,
            )

    def info(self, video_id: str) -> VideoInfo:
        if video_id in self._info:
            return self._info[video_id]
        try:
            g = self._h5()["videos"][video_id]
        except KeyError:
            raise DataError("video not in the store", self.path, video_id) from None
        if "times" not in g:
            raise DataError("dataset 'times' is missing", self.path, video_id)
        n = int(g["times"].shape[0])
        a = g.attrs
        domain = _attr_str(a.get("domain", "untrimmed"))
        if domain not in DOMAINS:
            raise DataError(f"attribute domain={domain!r} (expected one of {list(DOMAINS)})", self.path, video_id)
        subset = a.get("subset")
        info = VideoInfo(
            video_id=video_id,
            n_rows=n,
            fps=float(a.get("fps", np.nan)),
            duration=float(a.get("duration", np.nan)),
            n_frames=int(a.get("n_frames", -1)),
            domain=domain,
            subset=None if subset is None else _attr_str(subset),
            labels=_decode_labels(a.get("labels"), self.path, video_id),
        )
        self._info[video_id] = info
        return info

    def video_ids(self, subset: str | None = None, domain: str | None = None) -> list[str]:
        """Video ids, optionally filtered by the ``subset`` and ``domain`` attributes."""
        out = []
        for vid in self.video_ids_all:
            info = self.info(vid)
            if subset is not None and info.subset != subset:
                continue
            if domain is not None and info.domain != domain:
                continue
            out.append(vid)
        return out

    def subsets(self, domain: str | None = None) -> list[str]:
        """Subset names of the videos (of one domain, if given)."""
        return sorted({s for s in (self.info(v).subset for v in self.video_ids(domain=domain)) if s is not None})

    def labels(self, video_id: str) -> list[str] | None:
        return self.info(video_id).labels

    def source_file(self, video_id: str) -> dict | None:
        """What extract-features recorded of the file the video came from (its size, time, hash and path), or
        None (a store imported or generated, or a video extracted before it was recorded)."""
        raw = self._group(video_id)[0].attrs.get(SOURCE_ATTR)
        return None if raw is None else json.loads(_attr_str(raw))

    # -- rows --------------------------------------------------------------
    def read(self, video_id: str, streams: Sequence[str] | None = None, rows: np.ndarray | None = None) -> dict:
        """Feature rows of one video as float32, with ``times``.

        ``rows`` (sorted indices) reads a subset; it is applied after a
        contiguous read, which for videos of a few thousand rows is faster in
        h5py than fancy indexing. Raises :class:`DataError` on a video with
        no rows, mismatched shapes or non-finite values.
        """
        streams = self.streams if streams is None else tuple(streams)
        self.require_streams(streams)
        if self.cache_bytes > 0:
            return self._read_cached(video_id, streams, rows)
        return self._read_file(video_id, streams, rows)

    def _group(self, video_id: str):
        """The video's group and its number of rows."""
        try:
            g = self._h5()["videos"][video_id]
        except KeyError:
            raise DataError("video not in the store", self.path, video_id) from None
        n = g["times"].shape[0]
        if n == 0:
            raise DataError("video has 0 feature rows", self.path, video_id)
        return g, n

    def _stream(self, g, video_id: str, s: str, n: int, rows: np.ndarray | None) -> np.ndarray:
        """One stream's rows in the stored dtype, checked for shape and finite values."""
        if s not in g:
            raise DataError(f"stream '{s}' is missing", self.path, video_id)
        x = g[s][()]
        if x.ndim != 2 or x.shape != (n, self.feature_dim):
            raise DataError(f"stream '{s}' has shape {x.shape}, expected ({n}, {self.feature_dim})",
                            self.path, video_id)
        if rows is not None:
            x = x[rows]
        if not np.isfinite(x).all():
            bad = int((~np.isfinite(x).all(axis=1)).sum())
            raise DataError(f"stream '{s}' has {bad} row(s) with NaN or Inf", self.path, video_id)
        return x

    def _read_file(self, video_id: str, streams: tuple[str, ...], rows: np.ndarray | None) -> dict:
        g, n = self._group(video_id)
        out = {s: as_float32(self._stream(g, video_id, s, n, rows)) for s in streams}
        times = np.asarray(g["times"][()], dtype=np.float64)
        out["times"] = times if rows is None else times[rows]
        return out

    def _read_cached(self, video_id: str, streams: tuple[str, ...], rows: np.ndarray | None) -> dict:
        # Rows are held as stored (float16 in stores written here: half the memory of float32)
        # and converted per read; only the sampled rows are converted.
        held = {s: self._cache.get((video_id, s)) for s in ("times", *streams)}
        if any(x is None for x in held.values()):
            g, n = self._group(video_id)
            for s, x in held.items():
                if x is not None:
                    continue
                x = (np.asarray(g["times"][()], dtype=np.float64) if s == "times"
                     else self._stream(g, video_id, s, n, None))  # every row validated, once
                held[s] = x
                if self._cache_used + x.nbytes <= self.cache_bytes:
                    x.setflags(write=False)  # shared by every later read: nobody may change it
                    self._cache[(video_id, s)] = x
                    self._cache_used += x.nbytes
        out = {s: as_float32(x if rows is None else x[rows]) for s, x in held.items() if s != "times"}
        out["times"] = held["times"] if rows is None else held["times"][rows]
        return out

    def fingerprint(self) -> str:
        """A cheap structural fingerprint: root attributes and every video's id, shape and times.

        It does not hash the feature values (that would mean reading the whole
        store); it catches the usual mistakes: another store, a re-extraction
        with other settings, added or removed videos.
        """
        h = hashlib.sha256()
        f = self._h5()
        for k in sorted(f.attrs.keys()):
            h.update(f"{k}={f.attrs[k]!r};".encode())
        for vid in self.video_ids_all:
            g = f["videos"][vid]
            t = g["times"]
            h.update(f"{vid}:{t.shape[0]}:".encode())
            if t.shape[0]:
                h.update(np.asarray(t[[0, -1]] if t.shape[0] > 1 else t[()], dtype=np.float64).tobytes())
        return h.hexdigest()[:16]


@dataclass
class StoreWriter:
    """Write a new store atomically.

    >>> with StoreWriter("out.h5", feature_dim=2048) as w:          # doctest: +SKIP
    ...     w.add("v1", rgb=x_rgb, flow=x_flow, times=t, fps=30.0, duration=12.0, n_frames=360)
    """

    path: str | os.PathLike
    feature_dim: int
    streams: Sequence[str] = STREAMS
    attrs: dict = field(default_factory=dict)
    dtype: str = "float16"

    def __enter__(self):
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._f = h5py.File(tmp, "w")
        self._f.attrs["format"] = FORMAT
        self._f.attrs["version"] = VERSION
        self._f.attrs["streams"] = list(self.streams)
        self._f.attrs["feature_dim"] = int(self.feature_dim)
        for k, v in self.attrs.items():
            self._f.attrs[k] = v
        self._videos = self._f.create_group("videos")
        return self

    def add(
        self,
        video_id: str,
        times: np.ndarray,
        fps: float,
        duration: float,
        n_frames: int,
        domain: str = "untrimmed",
        subset: str | None = None,
        labels: Iterable[str] | None = None,
        extra_attrs: dict | None = None,
        **features: np.ndarray,
    ) -> None:
        if "/" in video_id:
            raise DataError("video id must not contain '/'", self.path, video_id)
        if domain not in DOMAINS:
            raise DataError(f"domain must be one of {list(DOMAINS)}", self.path, video_id)
        times = np.asarray(times, dtype=np.float64)
        n = times.shape[0]
        g = self._videos.create_group(video_id)
        for s in self.streams:
            if s not in features:
                raise DataError(f"stream '{s}' not given", self.path, video_id)
            x = np.asarray(features[s])
            if x.shape != (n, self.feature_dim):
                raise DataError(f"stream '{s}' has shape {x.shape}, expected ({n}, {self.feature_dim})",
                                self.path, video_id)
            # One chunk of up to 256 rows: reading a whole video touches few chunks.
            chunks = (max(1, min(n, 256)), self.feature_dim) if n else None
            g.create_dataset(s, data=x.astype(self.dtype), chunks=chunks)
        g.create_dataset("times", data=times)
        g.attrs["fps"] = float(fps)
        g.attrs["duration"] = float(duration)
        g.attrs["n_frames"] = int(n_frames)
        g.attrs["domain"] = domain
        if subset is not None:
            g.attrs["subset"] = subset
        if labels is not None:
            g.attrs["labels"] = json.dumps(list(labels))
        for k, v in (extra_attrs or {}).items():
            g.attrs[k] = v

    def set_root_attrs(self, attrs: dict) -> None:
        """Add or replace root attributes (e.g. a summary known only once every video is written)."""
        for k, v in attrs.items():
            self._f.attrs[k] = v

    def copy_videos(self, path: str | os.PathLike) -> None:
        """Copy every video of the store at ``path`` (links followed): appending rewrites the whole store."""
        with h5py.File(path, "r") as src:
            for vid in src["videos"]:
                src.copy(src["videos"][vid], self._videos, name=vid)

    def __exit__(self, exc_type, exc, tb):
        self._f.close()
        return self._ctx.__exit__(exc_type, exc, tb)
