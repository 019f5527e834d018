"""Where the videos of a run come from and how many CPUs it may use: shared by extract-features and
train-backbone, below both commands."""
from __future__ import annotations

import os
from pathlib import Path

from tsrnet.data.errors import DataError

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv"}

def find_videos(source: Path) -> tuple[list[Path], Path | None]:
    """Video paths from a folder (recursive), a text file listing paths, or one file; and the folder root."""
    if source.is_dir():
        vids = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if not vids:
            raise DataError(f"no video files ({', '.join(sorted(VIDEO_EXTENSIONS))}) in this folder", source)
        return vids, source
    if source.suffix.lower() in (".txt", ".lst", ".list"):
        vids = []
        for line in source.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                p = Path(line)
                vids.append(p if p.is_absolute() else source.parent / p)
        if not vids:
            raise DataError("the list of videos is empty", source)
        return vids, None
    return [source], None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a batch slot's share, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_threads(explicit: int = 0) -> int:
    """Threads for the CPU work: ``--threads``, else ``OMP_NUM_THREADS``, else :func:`available_cpus`.

    More threads than free cores made ResNet forward 30x slower beside another busy process, so an
    explicit setting is obeyed and the default is what the process may use, not ``os.cpu_count()``."""
    if explicit and explicit > 0:
        return explicit
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return available_cpus()
