"""Atomic output: a result file either appears complete or not at all."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    The temporary file lives in the destination folder so that the final
    ``os.replace`` is a rename on one filesystem (atomic on POSIX). On any
    exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj, indent: int | None = 1) -> None:
    """Write ``obj`` as JSON atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent)
            f.write("\n")


def _first_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its ancestors that does not exist yet (None when ``path`` exists)."""
    missing = None
    for p in [path, *path.parents]:
        if p.exists():
            break
        missing = p
    return missing


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def undone_on_failure(path: str | os.PathLike, keep=lambda: False):
    """Remove what the block creates in folder ``path`` when it raises, unless ``keep()`` is true.

    For output folders such as a run directory: a command that fails before it
    has anything worth keeping (``keep``: e.g. "a checkpoint exists") must not
    leave a half-made folder for the next attempt to puzzle over. Folders made
    on the way to ``path`` go too; entries that were there before the block are
    never touched, so a folder that already held a run survives any failure.
    """
    path = Path(path)
    created = _first_missing(path)
    before = None if created is not None else set(os.listdir(path))
    try:
        yield path
    except BaseException:
        if not keep():
            if created is not None:
                _remove(created)
            elif path.is_dir():
                for name in set(os.listdir(path)) - before:
                    _remove(path / name)
        raise


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike):
    """Yield an empty folder beside ``path``; when the block succeeds its files move into ``path``.

    For folders of several outputs (plots): readers never see a half-filled
    folder, and a failure leaves ``path`` and its parents as they were.
    """
    path = Path(path)
    created = _first_missing(path.parent)  # only these are ours to remove: others may write beside us
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    stage.mkdir()
    try:
        yield stage
        _publish(stage, path)
    except BaseException:
        if created is not None:
            _remove(created)
        raise
    finally:
        _remove(stage)


def _publish(stage: Path, path: Path) -> None:
    """Move a staged folder to ``path``: one rename when ``path`` is new, file by file into an existing one
    (a subfolder that exists there too is merged the same way)."""
    if not path.exists():
        stage.rename(path)
        return
    for f in sorted(stage.iterdir()):
        target = path / f.name
        if f.is_dir() and target.is_dir():
            _publish(f, target)
        else:
            os.replace(f, target)
