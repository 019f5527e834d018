"""Where the videos of a run come from: shared by extract-features and train-backbone, below both commands."""
from __future__ import annotations

from pathlib import Path

from tsrnet.data.core.errors import DataError

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
