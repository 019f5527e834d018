"""What every release reader yields, and the one path that writes it into a store.

A reader turns a release into a :class:`Release`: per video an :class:`Item` (where its rows come
from, a loader for its stream arrays, its :class:`Clock`, duration, frame rate, subset and labels),
plus root attributes naming the release and its time convention. :func:`write_release` checks every
item and writes the store atomically through :class:`~tsrnet.data.format.store.StoreWriter`.

Time convention: a row's time is the centre of the frames it summarises. For a release of windows of
``window`` frames taken every ``stride`` frames at ``fps``, row k covers frames
``[k stride, k stride + window)`` and ``times[k] = (k stride + window / 2) / fps``. Some repositories
(W-TALC, STPN, BaS-Net and their descendants) instead map row k to its first frame, ``k stride / fps``,
and a detection spanning rows a..b to ``[a, b + 1] stride / fps``; for non-overlapping rows
(stride = window) the two differ by half a row (0.32 s for 16 frames at 25 fps) at the rows' centres
but give the same bounds for a run of rows. The store records centres; a detector that turns rows
into segments adds half a row on each side of the first and last row's centre.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from tsrnet.data.format.annotations.model import Annotations
from tsrnet.data.core.progress import progress_bar, report
from tsrnet.data.core.errors import DataError
from tsrnet.data.format.store import StoreWriter

# An entry whose row count differs from what its duration and the release's rate give by more than
# this many rows (or this fraction of them, whichever is more) is refused: the wrong rate, a truncated
# or padded entry, or features of another video. Releases drop or pad the last partial window.
ROW_TOLERANCE = 3
ROW_TOLERANCE_FRACTION = 0.02


@dataclass(frozen=True)
class Clock:
    """Windows of ``window`` frames every ``stride`` frames at ``fps``: row k is centred on frame
    ``k stride + window / 2``."""

    fps: float
    stride: float
    window: float

    def times(self, n: int) -> np.ndarray:
        return (np.arange(n) * self.stride + self.window / 2) / self.fps

    def expected_rows(self, duration: float) -> float:
        """Rows the release's rate gives a video of ``duration`` seconds (whole windows only)."""
        return max(0.0, (duration * self.fps - self.window) / self.stride + 1)

    def duration_of(self, n: int) -> float:
        """Seconds that ``n`` rows cover, for releases that ship no durations."""
        return ((n - 1) * self.stride + self.window) / self.fps if n else 0.0

    def formula(self, fps: str | None = None) -> str:
        return f"times[k] = ({_num(self.stride)} k + {_num(self.window / 2)}) / {fps or _num(self.fps)}"


@dataclass(frozen=True)
class RescaledClock:
    """``n`` rows resampled over the first ``span`` seconds of a video (BSN's csv_mean_100): row k
    stands for ``[k, k + 1) span / n`` and is timed at its centre ``(k + 0.5) span / n``."""

    n: int
    span: float

    def times(self, n: int) -> np.ndarray:
        return (np.arange(n) + 0.5) * self.span / n

    def expected_rows(self, duration: float) -> float:
        return float(self.n)

    def duration_of(self, n: int) -> float:
        return self.span


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass
class Item:
    """One video of a release, its rows not yet read."""

    video: str
    path: str  # the file (and entry) its rows come from, for messages
    load: Callable[[], dict[str, np.ndarray]]  # stream name -> (n, D); raises DataError when unreadable
    clock: Clock | RescaledClock
    fps: float  # frames per second of the frames the rows count
    duration: float | None = None  # None: the release gives none, taken from the rows
    subset: str | None = None
    labels: list[str] | None = None
    native_fps: float | None = None  # the video's own rate, when the release records it
    n_frames: int | None = None
    failure: str | None = None  # known unusable before reading (e.g. no feature file)


@dataclass
class Release:
    layout: str
    streams: tuple[str, ...]
    feature_dim: int
    items: list[Item]
    attrs: dict  # root attributes: release, time_convention, source, ...
    annotations: Annotations | None = None
    notes: list[str] = field(default_factory=list)  # lines for the user (label differences, skipped files)


def frame_attrs(release: str, source: str, formula: str, **extra) -> dict:
    """Root attributes of a release whose rows summarise windows of frames: its name, where it came from and
    the time convention (each row timed at the centre of its frames, ``formula`` from :meth:`Clock.formula`)."""
    return {"release": release, "source": source, "time_convention": "centre of the frames a row summarises: "
            + formula, **extra}


def load_npy(path: Path, video: str) -> np.ndarray:
    """A plain (non-pickled) .npy file as a 2-D array (0 rows allowed: the caller decides)."""
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"cannot read as .npy ({e})", path, video) from None
    if x.ndim == 1 and x.size == 0:
        x = x.reshape(0, 0)
    if x.ndim != 2:
        raise DataError(f"expected an (n, D) array, got shape {x.shape}", path, video)
    return x


def npy_dtype(path: Path):
    """The dtype in an .npy file's header, without reading its data (None when not an .npy file)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            _, _, dtype = reader(f)
        return dtype
    except (ValueError, OSError, EOFError):
        return None


def find_near(start: Path, names: Iterable[str], dirs_like: tuple[str, ...] = ("annotation",)) -> dict[str, Path]:
    """Files called ``names`` in ``start``, its parent and grandparent, or their sub-folders whose name
    contains one of ``dirs_like``: where releases put their annotation files beside the features."""
    names = list(names)
    found: dict[str, Path] = {}
    for base in [start, *list(start.parents)[:2]]:
        if not base.is_dir():
            continue
        places = [base] + sorted(d for d in base.iterdir() if d.is_dir() and any(w in d.name.lower() for w in dirs_like))
        for place in places:
            for n in names:
                if n not in found and (place / n).is_file():
                    found[n] = place / n
        if found:
            return found
    return found


def check_and_split(item: Item, arrays: dict[str, np.ndarray], dim: int) -> tuple[dict | None, str | None, str]:
    """``(arrays, failure reason, note)``: arrays trimmed to a common length, or a reason to record the
    video as a failure (no rows, all zeros). Raises DataError for what is bad input (NaN, shapes,
    a length that disagrees with the duration)."""
    note = ""
    for s, x in arrays.items():
        if x.shape[0] == 0 or x.size == 0:
            return None, f"empty entry: stream {s} has 0 rows", note
        if x.ndim != 2 or x.shape[1] != dim:
            raise DataError(f"stream {s} has shape {x.shape}, expected (n, {dim})", item.path, item.video)
        if not np.isfinite(x).all():
            bad = int((~np.isfinite(x).all(axis=1)).sum())
            raise DataError(f"stream {s} has {bad} row(s) with NaN or Inf", item.path, item.video)
    zero = [s for s, x in arrays.items() if not np.any(x)]
    if zero:
        n = next(iter(arrays.values())).shape[0]
        which = "entry" if len(zero) == len(arrays) else f"stream {zero[0]}"
        return None, f"all-zero {which} ({n} rows of zeros): a placeholder, not features", note
    lengths = {s: x.shape[0] for s, x in arrays.items()}
    n = min(lengths.values())
    if len(set(lengths.values())) > 1:
        if max(lengths.values()) - n > ROW_TOLERANCE:
            raise DataError(f"streams have {lengths} rows: they do not describe the same frames", item.path,
                            item.video)
        arrays = {s: x[:n] for s, x in arrays.items()}  # releases differ by a row or two at the end
        note = f"streams had {lengths} rows; the first {n} of each kept"
    if item.duration is not None:
        expected = item.clock.expected_rows(item.duration)
        tol = max(ROW_TOLERANCE, ROW_TOLERANCE_FRACTION * expected)
        if abs(n - expected) > tol:
            raise DataError(f"{n} rows, but its duration {item.duration:.2f} s at the release's rate gives "
                            f"{expected:.1f} (tolerance {tol:.0f} rows): wrong rate, truncated entry, or another "
                            "video's features", item.path, item.video)
    return arrays, None, note


def write_release(out, rel: Release, overwrite: bool = False, strict: bool = False, skip_bad: bool = False,
                  exclude: Iterable[str] = (), domain: str = "untrimmed", progress: bool = True) -> dict:
    """Write ``rel`` into a new store ``out``; returns a summary dict.

    Videos whose entry is unusable as the release ships it (no feature file, 0 rows, all zeros) are
    left out and recorded with the reason in the ``failures`` attribute and on stderr; ``strict``
    makes them an error. Bad input (NaN, wrong shapes, rows that disagree with the duration, a
    duration of 0) stops the import with the video named, unless ``skip_bad`` records it as a
    failure too. On any error nothing is written.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError("exists; a release is imported into a new store (--overwrite replaces it; add trimmed "
                        "clips afterwards with --layout npy --trimmed)", out)
    drop = set(exclude)
    items = [it for it in rel.items if it.video not in drop]
    excluded = sorted(drop & {it.video for it in rel.items})
    if not items:
        raise DataError("no video to import", rel.attrs.get("features"))
    failures: list[dict] = []
    notes: list[dict] = []

    def failed(it: Item, reason: str):
        if strict:
            raise DataError(f"{reason} (--strict)", it.path, it.video)
        failures.append({"video": it.video, "path": it.path, "reason": reason})

    attrs = dict(rel.attrs)
    n_written = 0
    with StoreWriter(out, rel.feature_dim, rel.streams, {}) as w:
        for it in progress_bar(items, desc="import", unit="video", disable=not progress):
            if it.failure:
                failed(it, it.failure)
                continue
            try:
                if it.duration is not None and not (math.isfinite(it.duration) and it.duration > 0):
                    raise DataError(f"duration {it.duration} is not a positive number of seconds", it.path, it.video)
                arrays, reason, note = check_and_split(it, it.load(), rel.feature_dim)
            except DataError as e:
                if not skip_bad:
                    raise DataError(f"{e.reason} (--skip-bad leaves such entries out)", e.path, e.video) from None
                failed(it, e.reason)
                continue
            if reason:
                failed(it, reason)
                continue
            if note:
                notes.append({"video": it.video, "note": note})
            n = next(iter(arrays.values())).shape[0]
            duration = it.duration if it.duration is not None else it.clock.duration_of(n)
            n_frames = it.n_frames if it.n_frames is not None else int(round(duration * it.fps))
            extra = {} if it.native_fps is None else {"native_fps": float(it.native_fps)}
            w.add(it.video, times=it.clock.times(n), fps=it.fps, duration=duration, n_frames=n_frames,
                  domain=domain, subset=it.subset, labels=it.labels, extra_attrs=extra, **arrays)
            n_written += 1
        if n_written == 0:
            raise DataError(f"none of the {len(items)} video(s) could be imported; first failure: "
                            f"{failures[0]['reason'] if failures else '?'}", failures[0]["path"] if failures else out,
                            failures[0]["video"] if failures else None)
        attrs["failures"] = json.dumps(failures)
        attrs["row_notes"] = json.dumps(notes)
        if excluded:
            attrs["excluded"] = json.dumps(excluded)
        w.set_root_attrs(attrs)
    for f_ in failures:
        report(f"warning: {f_['path']}: video {f_['video']}: {f_['reason']} (left out)")
    return {"imported": n_written, "failures": failures, "excluded": excluded, "notes": rel.notes}
