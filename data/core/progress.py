"""How libraries report progress and notes: one helper, so every command shows them the same way.

A tqdm bar on a terminal, a plain line every ``$TSRNET_PROGRESS_INTERVAL`` seconds in a log file
(:func:`progress_bar`), and :func:`report` for the one-line notes a user should see while a library works
(a video skipped, a summary). Libraries never print otherwise; the commands print their results.
"""
from __future__ import annotations

import os
import sys
import time

from tsrnet.data.core.errors import DataError
from tsrnet.data.core.settings import opt


def quiet_opt():
    """The ``--quiet`` setting of every command with a progress display: one declaration, one help text."""
    return opt(False, "No progress display.", flag=True)


def report(message: str, stream=None) -> None:
    """A note for the user on stderr (a warning, a skipped input, a summary of work done)."""
    print(message, file=sys.stderr if stream is None else stream, flush=True)


PROGRESS_INTERVAL_ENV = "TSRNET_PROGRESS_INTERVAL"
DEFAULT_PROGRESS_INTERVAL = 60.0  # seconds between lines when stderr is a file (a cluster job's log)


def progress_interval() -> float:
    """Seconds between progress lines in a log: ``$TSRNET_PROGRESS_INTERVAL`` or 60."""
    raw = os.environ.get(PROGRESS_INTERVAL_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_PROGRESS_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        raise DataError(f"{PROGRESS_INTERVAL_ENV}={raw!r} is not a number of seconds") from None
    if not value >= 0:
        raise DataError(f"{PROGRESS_INTERVAL_ENV}={raw!r} must be >= 0 seconds")
    return value


def progress_bar(iterable=None, *, total=None, initial: int = 0, desc: str = "", unit: str = "it",
                 disable: bool = False, leave: bool = True, stream=None, interval: float | None = None):
    """The progress display of every command: a tqdm bar on a terminal, :class:`LogProgress` otherwise.

    Batch jobs send stderr to a file, where a bar's carriage-return redraws
    pile up by the thousand; there a plain line every ``interval`` seconds
    (default :func:`progress_interval`) and one at the end are all that is
    written. Both objects take ``update``, ``set_postfix``, ``write``,
    ``close`` and iteration.
    """
    stream = sys.stderr if stream is None else stream
    if not disable and _is_terminal(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, leave=leave, file=stream,
                    dynamic_ncols=True)
    return LogProgress(iterable, total=total, initial=initial, desc=desc, unit=unit, disable=disable, stream=stream,
                       interval=progress_interval() if interval is None else interval)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def format_seconds(s: float) -> str:
    s = int(round(max(s, 0.0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class LogProgress:
    """Progress for a log file: ``desc: n/total unit (p%), rate unit/s, ETA h:mm:ss [postfix]`` lines, one at
    most every ``interval`` seconds and one at :meth:`close`; nothing when ``disable``."""

    def __init__(self, iterable=None, *, total=None, initial: int = 0, desc: str = "", unit: str = "it",
                 disable: bool = False, stream=None, interval: float = DEFAULT_PROGRESS_INTERVAL, clock=None):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.n, self.initial = iterable, total, initial, initial
        self.desc, self.unit, self.disable, self.interval = desc, unit, disable, interval
        self.stream = sys.stderr if stream is None else stream
        self._clock = clock or time.monotonic
        self._start = self._last = self._clock()
        self._postfix = ""
        self._closed = False

    def __iter__(self):
        for x in self.iterable:
            yield x
            self.update(1)
        self.close()

    def __len__(self):
        return self.total or 0

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self._clock()
        if not self.disable and now - self._last >= self.interval:
            self._last = now
            self._emit(now)

    def set_postfix(self, **kw) -> None:
        self._postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def write(self, msg: str) -> None:
        """Messages that must be seen (a failed video) are printed in every mode, as tqdm.write does."""
        print(msg, file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = (self.n - self.initial) / elapsed
        done = f"{_num(self.n)}/{_num(self.total)}" if self.total else _num(self.n)
        parts = [f"{self.desc}: {done} {self.unit}" if self.desc else f"{done} {self.unit}"]
        if self.total:
            parts[0] += f" ({100.0 * self.n / self.total:.1f}%)"
        parts.append(f"{rate:.3g} {self.unit}/s")
        if self.total and rate > 0 and self.n < self.total:
            parts.append(f"ETA {format_seconds((self.total - self.n) / rate)}")
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if self._postfix:
            parts.append(self._postfix)
        return ", ".join(parts)

    def _emit(self, now: float) -> None:
        print(self.line(now), file=self.stream, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.disable and self.n > self.initial:
            self._emit(self._clock())


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"
