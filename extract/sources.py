"""Where the videos of a run come from: shared by extract-features and train-backbone, below both commands."""
from __future__ import annotations

from pathlib import Path

from tsrnet.data.core.errors import DataError

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv"}

def find_videos(source) -> tuple[list[Path], Path | None]:
    """Video paths from a folder (recursive), a text file listing paths, or one file; and the folder root.
    ``source`` may also be a list of such (``detect VIDEO...``): their videos, each file once, and no root."""
    if isinstance(source, (list, tuple)):
        if len(source) == 1:
            return find_videos(Path(source[0]))
        seen, vids = set(), []
        for one in source:
            for p in find_videos(Path(one))[0]:
                if p.resolve() not in seen:
                    seen.add(p.resolve())
                    vids.append(p)
        return vids, None
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


FINGERPRINT_BYTES = 1 << 20  # the head and the tail hashed: an edited file changes them, a moved one does not


def source_fingerprint(path: Path) -> dict:
    """What a store records of the file a video was extracted from: its size, its modification time and a
    hash of its first and last MiB with the size, so that an edited file (same name, new content) is seen;
    and its absolute path, where the viewer (detect --view) looks for it (not part of the comparison: a
    moved file is the same file)."""
    st = Path(path).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256_ends": _ends_digest(Path(path), st.st_size),
            "path": str(Path(path).resolve())}


def _ends_digest(path: Path, size: int) -> str:
    import hashlib

    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            f.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            h.update(f.read(FINGERPRINT_BYTES))
    return h.hexdigest()


def same_source(recorded: dict | None, path: Path) -> bool:
    """Whether ``path`` still holds the file ``recorded`` (a :func:`source_fingerprint`) describes. Size and
    modification time alike: the same, unread; a new time alone (a copy, a touch): the ends' hash decides. A
    video recorded without a fingerprint (an older store) counts as the same."""
    if not recorded:
        return True
    try:
        st = Path(path).stat()
    except OSError:
        return False
    if st.st_size != recorded.get("size"):
        return False
    if st.st_mtime_ns == recorded.get("mtime_ns"):
        return True
    return _ends_digest(Path(path), st.st_size) == recorded.get("sha256_ends")
