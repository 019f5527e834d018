"""Crash-safe output for long extraction runs.

HDF5 files are not safe against a kill in the middle of a write, so a run
never writes into a store in place:

- each finished video is written to its own small store of one video,
  ``OUT.parts/<video>.h5``, by :class:`data.store.StoreWriter` (to a
  temporary name, then renamed);
- after each video the store ``OUT.h5`` is rewritten (temporary + rename) as a
  small index whose ``/videos/<video>`` entries are HDF5 external links into
  the parts, with the root attributes and the failures list;
- at the end the parts are copied into one self-contained ``OUT.h5``
  (temporary + rename again) and the parts folder is removed.

So at every moment ``OUT.h5`` opens and holds every finished video, and a new
run resumes from the parts. Resuming into a consolidated store moves it into
the parts folder first (as ``base-<n>.h5``).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py

from tsrnet.data.core.errors import DataError
from tsrnet.data.core.io import atomic_path
from tsrnet.data.format.store import FORMAT, SOURCE_ATTR, STREAMS, VERSION, StoreWriter


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def write_part(out: Path, video_id: str, **video) -> Path:
    """Write one video to ``OUT.parts/<video>.h5``, a store of that video alone.

    ``video`` holds :meth:`StoreWriter.add`'s arguments (times, fps, ...,
    and the streams).
    """
    d = parts_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{video_id}.h5"
    with StoreWriter(path, video["rgb"].shape[1], STREAMS) as w:
        w.add(video_id, **video)
    return path


def _entries(out: Path) -> dict[str, str]:
    """video id -> its file, relative to OUT's folder, for every finished video in the parts."""
    d = parts_dir(out)
    found: dict[str, str] = {}
    if not d.is_dir():
        return found
    files = sorted(d.glob("*.h5"))
    for p in files:
        if p.name.startswith("base-"):  # an earlier consolidated store: many videos
            with h5py.File(p, "r") as f:
                found.update((vid, f"{d.name}/{p.name}") for vid in f["videos"])
    for p in files:  # named by its one video, so there is no need to open it; newer than any base (a redo)
        if not p.name.startswith("base-"):
            found[p.stem] = f"{d.name}/{p.name}"
    return found


def settings_diff(a: dict, b: dict) -> list[str]:
    """The extraction settings that differ between two stores."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def read_settings(out: Path) -> tuple[dict, list[dict]]:
    """The extraction settings and failures recorded in an existing store (empty when none)."""
    if not out.exists():
        return {}, []
    try:
        with h5py.File(out, "r") as f:
            settings = json.loads(f.attrs.get("extraction", "{}"))
            failures = json.loads(f.attrs.get("failures", "[]"))
    except OSError as e:
        raise DataError(f"exists but is not a readable HDF5 store ({e}); move it away or pass --overwrite", out) from None
    return settings, failures


def read_warnings(out: Path) -> list[dict]:
    """The ``warnings`` list of a store (videos kept but suspect, e.g. truncated); empty when none."""
    if not out.exists():
        return []
    with h5py.File(out, "r") as f:
        return json.loads(f.attrs.get("warnings", "[]"))


def root_attrs(feature_dim: int, settings: dict, info: dict, failures: list[dict],
               warnings: list[dict] = ()) -> dict:
    """The root attributes of a store written by extract-features."""
    attrs = {"format": FORMAT, "version": VERSION, "streams": list(STREAMS), "feature_dim": int(feature_dim),
             "extraction": json.dumps(settings, sort_keys=True), "failures": json.dumps(failures),
             "warnings": json.dumps(list(warnings))}
    for k, v in info.items():
        attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(v)
    return attrs


def write_index(out: Path, attrs: dict) -> int:
    """Rewrite ``OUT.h5`` as links into the parts, with root ``attrs``; returns the number of videos."""
    entries = _entries(out)
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            for k, v in attrs.items():
                f.attrs[k] = v
            g = f.create_group("videos")
            for vid, file in entries.items():
                g[vid] = h5py.ExternalLink(file, f"/videos/{vid}")
    return len(entries)


def copy_videos(sources: list[Path], out: Path, attrs: dict, only: dict | None = None) -> None:
    """Write ``out`` (temporary + rename) with root ``attrs`` and every video of ``sources``, links followed;
    with ``only`` (video id -> source), each video from that source alone."""
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as dst:
            for k, v in attrs.items():
                dst.attrs[k] = v
            g = dst.create_group("videos")
            for s in sources:
                with h5py.File(s, "r") as src:
                    for vid in src["videos"]:
                        if only is None or only.get(vid) == s:
                            src.copy(src["videos"][vid], g, name=vid)


def consolidate(out: Path) -> None:
    """Copy every linked video into one self-contained ``OUT.h5`` and remove the parts."""
    out = Path(out)
    with h5py.File(out, "r") as f:
        attrs = dict(f.attrs)
    copy_videos([out], out, attrs)
    shutil.rmtree(parts_dir(out), ignore_errors=True)


def open_for_append(out: Path) -> None:
    """Before adding videos to a consolidated store: make it a base part and index it, so that
    ``OUT.h5`` keeps opening with all its videos while the run adds more."""
    if not out.exists():
        return
    with h5py.File(out, "r") as f:
        vids = f.get("videos")
        consolidated = vids is not None and len(vids) > 0 and not any(
            isinstance(vids.get(v, getlink=True), h5py.ExternalLink) for v in vids)
        attrs = dict(f.attrs)
    if consolidated:
        d = parts_dir(out)
        d.mkdir(parents=True, exist_ok=True)
        base = d / f"base-{len(list(d.glob('base-*.h5'))):04d}.h5"
        shutil.copy2(out, base)  # a copy, not a move: OUT.h5 stays valid until the index replaces it
        write_index(out, attrs)


def domains(out: Path, ids) -> dict[str, str]:
    """The stored domain of each of ``ids`` already in ``out`` (those absent or unreadable are left out)."""
    if not out.exists():
        return {}
    found = {}
    with h5py.File(out, "r") as f:
        videos = f["videos"] if "videos" in f else {}
        for vid in ids:
            try:
                a = videos[vid].attrs
            except (KeyError, OSError):  # absent, or a link to a part not written yet
                continue
            d = a.get("domain", "untrimmed")
            found[vid] = d.decode() if isinstance(d, bytes) else str(d)
    return found


def finished(out: Path) -> set[str]:
    return set(_entries(out))


def stored(out: Path) -> set[str]:
    """The videos of OUT as it stands: its parts while a run is under way (or was killed), else the videos
    of the consolidated store (read without rewriting it)."""
    if parts_dir(out).is_dir() or not out.exists():
        return finished(out)
    with h5py.File(out, "r") as f:
        return set(f["videos"]) if "videos" in f else set()


def recorded_sources(out: Path, ids) -> dict[str, dict]:
    """The recorded source fingerprint of each of ``ids`` stored in OUT (its part first); videos extracted
    before fingerprints were recorded are left out."""
    found = {}
    d = parts_dir(out)
    with (h5py.File(out, "r") if out.exists() else _no_file()) as f:
        for vid in ids:
            part = d / f"{vid}.h5"
            try:
                if part.exists():
                    with h5py.File(part, "r") as p:
                        raw = p["videos"][vid].attrs.get(SOURCE_ATTR)
                elif f is not None and "videos" in f and vid in f["videos"]:
                    raw = f["videos"][vid].attrs.get(SOURCE_ATTR)
                else:
                    continue
            except (KeyError, OSError):  # a link to a part not written yet
                continue
            if raw is not None:
                found[vid] = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    return found


def changed_files(out: Path, files: dict) -> list[str]:
    """The videos of ``files`` (id -> path) stored in OUT whose file has changed since it was extracted
    (same name, other content). A stored video whose file is gone keeps its features: there is nothing to
    extract it from."""
    from .sources import same_source

    recorded = recorded_sources(out, list(files))
    return [v for v, p in files.items() if v in recorded and Path(p).exists() and not same_source(recorded[v], p)]


class _no_file:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
