"""One exception type for bad input, so every command reports it the same way."""
from __future__ import annotations

import os


class DataError(Exception):
    """Bad user input: a file, optionally a video in it, and what is wrong.

    ``str(err)`` is a single line ``FILE: video ID: reason`` that the command
    lines print as is before exiting non-zero.
    """

    def __init__(self, reason: str, path: str | os.PathLike | None = None, video: str | None = None):
        self.reason = reason
        self.path = None if path is None else os.fspath(path)
        self.video = video
        parts = []
        if self.path:
            parts.append(self.path)
        if video is not None:
            parts.append(f"video {video}")
        parts.append(reason)
        super().__init__(": ".join(parts))


class OptionError(DataError):
    """An option's value that cannot work (``--shard 5/2``), raised by a library: the command prints
    ``--option VALUE: reason`` as one line, like any :class:`DataError`."""

    def __init__(self, option: str, reason: str):
        self.option = option
        super().__init__(f"{option}: {reason}")
