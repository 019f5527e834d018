"""Video decoding (decord by default, PyAV as fallback and by choice) and the row plan.

A video becomes rows at ``rows_per_second``: row k stands for the target time
``(k + 0.5) / rows_per_second`` and takes the first frame presented at or after
it (its *centre* frame). Working from presentation timestamps rather than
``index / fps`` keeps variable-frame-rate videos right. The flow stack of a
row is the 5 flow fields between the 6 consecutive frames around its centre
(``centre - 2 ... centre + 3``), shifted inwards at the ends of the video.
With ``rows_per_second == "all"`` every decoded frame is a row's centre.

Frames are read in increasing order, in chunks, so a long video never sits
in memory whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

DECODERS = ("decord", "pyav")
FLOW_STACK = 5  # flow fields per row (10 channels)
ALL_FRAMES = "all"  # --fps all: one row per decoded frame


class DecodeError(Exception):
    """A video that cannot be used; the message says why."""


@dataclass
class RowPlan:
    centre: np.ndarray  # (n,) frame index of each row's RGB frame
    window: np.ndarray  # (n,) first frame of each row's 6-frame flow window
    times: np.ndarray  # (n,) seconds: presentation time of each centre frame
    fps: float  # the container's average frame rate
    duration: float
    n_frames: int

    def frames_needed(self) -> np.ndarray:
        """Sorted indices of every frame some row uses: its centre and its flow window."""
        return np.unique(np.concatenate([self.centre] + [self.window + k for k in range(FLOW_STACK + 1)]))

    def fields(self, rows=slice(None)) -> list[int]:
        """Sorted first frames of the flow fields (j -> j + 1) that ``rows`` stack."""
        return sorted({int(w) + k for w in self.window[rows] for k in range(FLOW_STACK)})

    def stacks(self, rows=slice(None)) -> list[list[int]]:
        """Per row of ``rows``, the first frames of its FLOW_STACK fields, in order."""
        return [[int(w) + k for k in range(FLOW_STACK)] for w in self.window[rows]]


def plan_rows(frame_times: np.ndarray, rows_per_second: float | str, duration: float | None = None,
              stack: int = FLOW_STACK) -> RowPlan:
    """Rows for a video whose frames are presented at ``frame_times`` (seconds, increasing);
    ``rows_per_second`` :data:`ALL_FRAMES` makes one row of every frame, timed at its presentation."""
    t = np.asarray(frame_times, dtype=np.float64)
    n = len(t)
    if n == 0:
        raise DecodeError("video has no frames")
    if n < stack + 1:
        raise DecodeError(f"video has {n} frame(s), fewer than the {stack + 1} a flow stack of {stack} fields needs")
    step = np.median(np.diff(t)) if n > 1 else 1 / 30
    end = max(float(duration or 0.0), t[-1] + step)
    if rows_per_second == ALL_FRAMES:
        centre = np.arange(n)
    else:
        centre = _centre_frames(t, float(rows_per_second), end, step)
    window = np.clip(centre - stack // 2, 0, n - (stack + 1))
    return RowPlan(centre, window, t[centre], fps=float(1.0 / step) if step > 0 else 30.0, duration=float(end),
                   n_frames=n)


def _centre_frames(t: np.ndarray, rows_per_second: float, end: float, step: float) -> np.ndarray:
    """Row k's frame: the first presented at or after ``(k + 0.5) / rows_per_second``."""
    n = len(t)
    targets = (np.arange(int(np.floor(end * rows_per_second + 1e-9))) + 0.5) / rows_per_second
    targets = targets[targets <= t[-1] + step / 2] if len(targets) else targets
    if len(targets) == 0:  # shorter than one row period: one row in the middle
        targets = np.array([(t[0] + t[-1]) / 2])
    return np.minimum(np.searchsorted(t, targets - 1e-9, side="left"), n - 1)


def expected_rows(rows_per_second: float | str, duration: float | None, n_frames: int | None) -> int:
    """Rows :func:`plan_rows` will make of a video of about this length (for progress totals)."""
    if rows_per_second == ALL_FRAMES:
        return max(int(n_frames or 0), 1)
    return max(int(np.floor((duration or 0.0) * float(rows_per_second) + 1e-9)), 1)


@dataclass
class Declared:
    """What a container's header says of its video stream (None where it says nothing)."""

    duration: float | None = None  # seconds
    n_frames: int | None = None
    fps: float | None = None

    def rows(self, rows_per_second: float | str) -> int:
        n = self.n_frames or (round(self.duration * self.fps) if self.duration and self.fps else None)
        return expected_rows(rows_per_second, self.duration, n)


def probe(path: str | Path) -> Declared:
    """The declared length of a video from its header alone (no decoding; unreadable files give an empty
    :class:`Declared`, their error comes when they are decoded)."""
    try:
        import av

        with av.open(str(path)) as c:
            s = c.streams.video[0]
            return Declared(_declared_duration(c, s), int(s.frames) or None,
                            float(s.average_rate) if s.average_rate else None)
    except Exception:  # noqa: BLE001 - the decoder names what is wrong with the file
        return Declared()


def _declared_duration(container, stream) -> float | None:
    # The video stream's own duration first: the container's covers every stream, and an audio track
    # longer than the picture is common. Matroska keeps the stream's in a DURATION tag.
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION")
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            pass
    return container.duration / 1e6 if container.duration else None


# A decoded video this much shorter than its header says is reported as truncated: the larger of an
# absolute slack (rounding, an edit list, a last frame's length) and a share of the length.
TRUNCATION_TOLERANCE_S = 0.5
TRUNCATION_TOLERANCE_FRACTION = 0.02


def _slack(seconds: float) -> float:
    return max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * seconds)


def truncation(declared: Declared, n_frames: int, duration: float) -> str | None:
    """Why a video that decoded to ``n_frames`` frames over ``duration`` s looks truncated, or None."""
    if declared.duration and declared.duration - duration > _slack(declared.duration):
        return (f"decodes to {duration:.2f} s ({n_frames} frames) but its header declares "
                f"{declared.duration:.2f} s (truncated download?)")
    fps = declared.fps or (n_frames / duration if duration > 0 else 0)
    if declared.n_frames and fps and declared.n_frames - n_frames > _slack(declared.n_frames / fps) * fps:
        return (f"decodes to {n_frames} frames ({duration:.2f} s) but its header declares "
                f"{declared.n_frames} frames (truncated download?)")
    return None


class VideoReader:
    """Frame timestamps and frames (uint8 RGB, H x W x 3, rotation applied) of one video."""

    def __init__(self, path: str | Path, decoder: str = "decord"):
        self.path = Path(path)
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, not {decoder!r}")
        self.decoder = decoder
        self.rotation = 0
        self._open()

    # -- opening --------------------------------------------------------------
    def _open(self):
        if self.path.stat().st_size == 0:
            raise DecodeError("file is empty")
        self.rotation = _rotation(self.path)
        if self.rotation and self.decoder == "decord":
            # decord 0.6 sees the display rotation but fails copying the rotated frame
            # ("DECORDArrayCopyFromTo: The size must exactly match"); PyAV reads it.
            self.decoder = "pyav"
        if self.decoder == "decord":
            try:
                import decord
            except ImportError:
                raise DecodeError("decord is not installed; pip install decord or use --decoder pyav") from None
            try:
                self._vr = decord.VideoReader(str(self.path), num_threads=1)
                n = len(self._vr)
                if n == 0:
                    raise DecodeError("video has no frames")
                self.frame_times = np.asarray(self._vr.get_frame_timestamp(np.arange(n))[:, 0], dtype=np.float64)
                self.frame_times -= self.frame_times[0]
                self.duration = float(self.frame_times[-1] + (1.0 / max(self._vr.get_avg_fps(), 1e-6)))
            except DecodeError:
                raise
            except Exception as e:  # decord raises DECORDError/RuntimeError with long native messages
                raise DecodeError(f"decord cannot read it ({first_line(e)})") from None
        else:
            self.frame_times, self.duration = _pyav_timestamps(self.path)
        if len(self.frame_times) == 0:
            raise DecodeError("video has no frames")
        if np.any(np.diff(self.frame_times) <= 0):
            # Some containers report duplicate or unordered stamps: fall back to order of presentation.
            self.frame_times = np.maximum.accumulate(self.frame_times) + np.arange(len(self.frame_times)) * 1e-6

    # -- frames ---------------------------------------------------------------
    def frames(self, indices: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` for the sorted unique ``indices``."""
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        if self.decoder == "decord":
            for start in range(0, len(indices), 64):
                chunk = indices[start:start + 64]
                try:
                    batch = self._vr.get_batch(chunk).asnumpy()
                except Exception as e:  # noqa: BLE001
                    raise DecodeError(f"decoding failed near frame {int(chunk[0])} ({first_line(e)})") from None
                for i, f in zip(chunk, batch):
                    yield int(i), self._rotate(f)
        else:
            yield from self._pyav_frames(indices)

    def _pyav_frames(self, indices):
        import av

        want = iter(indices.tolist())
        nxt = next(want, None)
        try:
            with av.open(str(self.path)) as c:
                stream = c.streams.video[0]
                stream.thread_type = "AUTO"
                for i, frame in enumerate(c.decode(stream)):
                    if nxt is None:
                        return
                    if i == nxt:
                        yield i, self._rotate(frame.to_ndarray(format="rgb24"))
                        nxt = next(want, None)
        except av.FFmpegError as e:
            raise DecodeError(f"decoding failed ({first_line(e)})") from None
        if nxt is not None:
            raise DecodeError(f"video ended before frame {nxt} (truncated?)")

    def _rotate(self, frame: np.ndarray) -> np.ndarray:
        if frame.ndim == 2:  # grayscale source
            frame = np.repeat(frame[..., None], 3, axis=2)
        if self.rotation % 360:
            frame = np.ascontiguousarray(np.rot90(frame, k=(self.rotation // 90) % 4))
        return frame


def first_line(e: Exception) -> str:
    s = str(e).strip().splitlines()
    return s[0][:200] if s else type(e).__name__


def _rotation(path: Path) -> int:
    """Counter-clockwise rotation in degrees to display the video upright (0 when unknown)."""
    try:
        import av

        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DecodeError("no video stream")
            for frame in c.decode(video=0):
                return int(round(getattr(frame, "rotation", 0) or 0)) % 360
    except DecodeError:
        raise
    except EOFError:  # a container with a video stream but no frames in it
        raise DecodeError("video has no frames") from None
    except Exception as e:  # noqa: BLE001 - PyAV's errors for a non-video file
        raise DecodeError(f"not a readable video ({first_line(e)})") from None
    raise DecodeError("video has no frames")


def _pyav_timestamps(path: Path) -> tuple[np.ndarray, float]:
    """Presentation times of all frames, from the demuxed packets (no decoding)."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DecodeError("no video stream")
            s = c.streams.video[0]
            tb = float(s.time_base) if s.time_base else 1 / 90000
            pts = [p.pts for p in c.demux(s) if p.pts is not None and p.size > 0]
            rate = float(s.average_rate) if s.average_rate else 30.0
    except DecodeError:
        raise
    except Exception as e:  # noqa: BLE001
        raise DecodeError(f"not a readable video ({first_line(e)})") from None
    if not pts:
        raise DecodeError("video has no frames")
    t = np.sort(np.asarray(pts, dtype=np.float64) * tb)
    t -= t[0]
    return t, float(t[-1] + 1.0 / rate)


def with_fallback(work, decoder: str):
    """``work(decoder)``, and when decord cannot read the video, ``work("pyav")``: the one fallback of every
    reader of videos. Any other exception of an odd video becomes a :class:`DecodeError` (one video must not
    stop a run over thousands); the error says what each decoder met."""
    errors = []
    for d in [decoder] + (["pyav"] if decoder == "decord" else []):
        try:
            return work(d)
        except DecodeError as e:
            errors.append(str(e))
        except Exception as e:  # noqa: BLE001 - see above
            raise DecodeError(f"{type(e).__name__}: {first_line(e)}") from None
    last, first = errors[-1], errors[0]
    raise DecodeError(f"{last} (decord: {first})" if last != first else last)

