"""Import per-video ``.npy`` features (as public WTAL feature releases ship them) into a store.

Two layouts are understood:

- one folder per stream, ``RGB_DIR/<video>.npy`` and ``FLOW_DIR/<video>.npy``,
  each (n, D);
- one folder of concatenated features, ``DIR/<video>.npy`` of shape (n, 2D),
  RGB first (the W-TALC / STPN release layout).

Row times are ``(i * frames_per_row + frames_per_row / 2) / fps``: a row stands
for the middle of its chunk of source frames (e.g. I3D at 16 frames per row
and 25 fps). Durations and subsets come from the annotations when given.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tsrnet.data.format.annotations import Annotations
from tsrnet.data.core.progress import progress_bar, report
from tsrnet.data.core.errors import DataError
from tsrnet.data.format.store import STREAMS, FeatureStore, StoreWriter

# Entries this much shorter than their annotated duration are reported as truncated: releases drop the
# last partial chunk of frames and RGB and flow may differ by a row, hence the two rows of slack.
SHORT_TOLERANCE_S = 0.5
SHORT_TOLERANCE_FRACTION = 0.02
SHORT_TOLERANCE_ROWS = 2


def _load(path: Path, video: str) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"cannot read as .npy ({e})", path, video) from None
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(f"expected a non-empty (n, D) array, got shape {x.shape}", path, video)
    if not np.isfinite(x).all():
        raise DataError("contains NaN or Inf", path, video)
    return x


def _check_append(out: Path, dim: int, attrs: dict, videos: list[str]) -> dict:
    """Root attributes for appending ``videos`` to the store ``out``, after checking that they fit in it.

    One store may hold untrimmed videos and trimmed clips together, but only
    features of one kind: the same D and the same rows per source frames.
    """
    store = FeatureStore(out)
    if "extraction" in store.attrs:
        raise DataError("was written by extract-features; import .npy features into a new store or one written "
                        "by import-features", out)
    if store.feature_dim != dim:
        raise DataError(f"holds features of D={store.feature_dim}, these have D={dim}; import into a new store", out)
    old = {k: None if store.attrs.get(k) is None else float(store.attrs[k]) for k in ("fps_source", "frames_per_row")}
    new = {k: float(attrs[k]) for k in old}
    if old != new:
        raise DataError(f"was imported with {old}, these features with {new}; use the same --fps and "
                        "--frames-per-row, or a new store", out)
    clash = [v for v in videos if v in store]
    if clash:
        raise DataError(f"{len(clash)} video id(s) are already in the store, first: {clash[0]}; ids must be "
                        "unique across both domains (--overwrite replaces the store)", out, clash[0])
    store.close()
    return {**store.attrs, "source": f"{store.attrs.get('source')}; {attrs['source']}"}


def _rows(path: Path, video: str) -> int:
    """Rows of an .npy file from its header alone (memory-mapped, nothing read)."""
    try:
        return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[0])
    except (ValueError, OSError, IndexError) as e:
        raise DataError(f"cannot read as .npy ({e})", path, video) from None


def short_entries(files: dict[str, list[Path]], annotations: Annotations | None, fps: float,
                  frames_per_row: int) -> list[dict]:
    """Videos whose feature rows cover less than their annotated duration (a truncated source or
    download), each with both figures; ``files`` maps a video to its .npy file(s)."""
    if annotations is None:
        return []
    row_s = frames_per_row / fps
    found = []
    for v, paths in files.items():
        a = annotations[v] if v in annotations else None
        if a is None or not a.duration:
            continue
        n = min(_rows(p, v) for p in paths if p.exists()) if any(p.exists() for p in paths) else 0
        covered = n * row_s
        slack = max(SHORT_TOLERANCE_S, SHORT_TOLERANCE_FRACTION * a.duration, SHORT_TOLERANCE_ROWS * row_s)
        if a.duration - covered > slack:
            found.append({"video": v, "path": str(paths[0]), "rows": n, "covered_duration": round(covered, 6),
                          "annotated_duration": float(a.duration),
                          "warning": f"{n} rows cover {covered:.2f} s but the annotations give {a.duration:.2f} s "
                                     "(truncated features?)"})
    return found


def import_npy(out, rgb_dir=None, flow_dir=None, concat_dir=None, fps: float = 25.0, frames_per_row: int = 16,
               annotations: Annotations | None = None, domain: str = "untrimmed", progress: bool = True,
               append: bool = True, strict: bool = False) -> int:
    """Write a store at ``out`` from .npy files, or with ``append`` add them to the store there; returns the
    number of videos imported. Entries shorter than their annotated duration are named on stderr and in
    the store's ``warnings`` attribute; with ``strict`` they are an error and nothing is written."""
    if concat_dir is None and (rgb_dir is None or flow_dir is None):
        raise DataError("give both --rgb-dir and --flow-dir, or --concat-dir")
    src = Path(concat_dir or rgb_dir)
    videos = sorted(p.stem for p in src.glob("*.npy"))
    if not videos:
        raise DataError("no .npy files here", src)
    if annotations is not None:
        missing = [v for v in annotations.video_ids() if v not in set(videos)]
        if missing:
            raise DataError(f"{len(missing)} annotated video(s) have no features, first: {missing[0]}", src,
                            missing[0])
    attrs = {"source": f"imported from .npy ({src})", "fps_source": fps, "frames_per_row": frames_per_row}
    first = _load(src / f"{videos[0]}.npy", videos[0])
    dim = first.shape[1] // 2 if concat_dir else first.shape[1]
    append = append and Path(out).exists()
    if append:
        attrs = _check_append(Path(out), dim, attrs, videos)
    dirs = [concat_dir] if concat_dir else [rgb_dir, flow_dir]
    files = {v: [Path(d) / f"{v}.npy" for d in dirs] for v in videos}
    short = short_entries(files, annotations, fps, frames_per_row)
    for w_ in short:
        if strict:
            raise DataError(f"{w_['warning']} (--strict)", w_["path"], w_["video"])
        report(f"warning: {w_['path']}: video {w_['video']}: {w_['warning']}")
    attrs["warnings"] = json.dumps(json.loads(attrs.get("warnings", "[]")) + short)
    with StoreWriter(out, dim, STREAMS, attrs) as w:
        if append:
            w.copy_videos(out)
        for v in progress_bar(videos, desc="import", unit="video", disable=not progress):
            if concat_dir:
                x = _load(Path(concat_dir) / f"{v}.npy", v)
                if x.shape[1] != 2 * dim:
                    raise DataError(f"has {x.shape[1]} columns, expected {2 * dim}", Path(concat_dir) / f"{v}.npy", v)
                feats = {"rgb": x[:, :dim], "flow": x[:, dim:]}
            else:
                feats = {}
                for s, d in (("rgb", rgb_dir), ("flow", flow_dir)):
                    p = Path(d) / f"{v}.npy"
                    if not p.exists():
                        raise DataError(f"no {s} features for this video", p, v)
                    feats[s] = _load(p, v)
                    if feats[s].shape[1] != dim:
                        raise DataError(f"has D={feats[s].shape[1]}, expected {dim}", p, v)
                if len(feats["rgb"]) != len(feats["flow"]):
                    # Releases often differ by a row or two at the end; keep the common prefix.
                    n = min(len(feats["rgb"]), len(feats["flow"]))
                    feats = {s: a[:n] for s, a in feats.items()}
            n = len(feats["rgb"])
            times = (np.arange(n) * frames_per_row + frames_per_row / 2) / fps
            a = annotations[v] if annotations is not None and v in annotations else None
            duration = a.duration if a is not None and a.duration else n * frames_per_row / fps
            w.add(v, times=times, fps=fps, duration=duration, n_frames=int(round(duration * fps)), domain=domain,
                  subset=a.subset if a is not None else None, labels=a.labels if a is not None else None, **feats)
    return len(videos)
