"""W-TALC's "Thumos14reduced" I3D release (reused by 3C-Net, CO2-Net, DELU and others) and its
ActivityNet 1.2 twin.

- Features: one ``<Dataset>-I3D-JOINTFeatures.npy``, a pickled object array (written by Python 2)
  whose entry i is a (T_i, 2048) array for ``videoname.npy[i]``: RGB in columns 0-1023, flow in
  1024-2047, one row per 16 frames of the video resampled to 25 fps.
- Annotations: the folder ``<Dataset>-Annotations/`` (read by ``annotations.read_wtalc``), found
  beside the feature file when ``--annotations`` is not given.

Rows are timed at the centre of their 16 frames, ``(16 k + 8) / 25``. ``extracted_fps.npy`` says 10,
which is wrong (the rows are 16 frames at 25 fps), so it is ignored; ``original_fps.npy`` (the
video's own rate) is kept as each video's ``native_fps``. The ActivityNet 1.2 file has entries with
0 rows or all zeros: they are recorded as failures, never imported as rows that would train.
``--fps`` / ``--frames-per-row`` override 25 / 16 for a variant extracted otherwise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tsrnet.data.format.annotations.readers import read_wtalc
from tsrnet.data.core.errors import DataError
from .common import Clock, Item, Release, frame_attrs, npy_dtype

NAME = "wtalc"
FPS, FRAMES_PER_ROW = 25.0, 16


def feature_file(features: Path) -> Path:
    if features.is_file():
        return features
    cands = sorted(p for p in features.glob("*.npy") if npy_dtype(p) == np.dtype(object))
    if len(cands) != 1:
        raise DataError(f"expected one pickled feature file (*-I3D-JOINTFeatures.npy) here, found "
                        f"{len(cands)}", features)
    return cands[0]


def annotation_folder(feat: Path, annotations: Path | None) -> Path:
    if annotations is not None:
        return Path(annotations)
    cands = sorted(d for d in feat.parent.iterdir() if d.is_dir() and (d / "videoname.npy").exists())
    if len(cands) != 1:
        raise DataError(f"found {len(cands)} W-TALC annotation folders (with videoname.npy) beside the feature "
                        "file; pass --annotations", feat)
    return cands[0]


def detect(features: Path, annotations: Path | None) -> str | None:
    """Why this is a W-TALC release, or None."""
    try:
        feat = feature_file(features)
    except DataError:
        return None
    if npy_dtype(feat) != np.dtype(object):
        return None
    ann = annotations if annotations is not None else next(
        (d for d in feat.parent.iterdir() if d.is_dir() and (d / "videoname.npy").exists()), None)
    if ann is None or not (Path(ann) / "videoname.npy").exists():
        return None
    return f"{feat.name} is a pickled object array and {Path(ann).name}/ holds videoname.npy"


def read_annotations(path: Path):
    return read_wtalc(path)


def _load_entries(feat: Path) -> np.ndarray:
    # Python 2 pickles: 'latin1' is the encoding numpy documents for arrays pickled by Python 2
    # (strings come back as str; the float data byte for byte).
    try:
        x = np.load(feat, allow_pickle=True, encoding="latin1")
    except (ValueError, OSError, EOFError, UnicodeError) as e:
        raise DataError(f"cannot read as a pickled .npy object array ({e})", feat) from None
    if x.ndim != 1:
        raise DataError(f"expected a 1-D array of per-video arrays, got shape {x.shape}", feat)
    return x


def read(features: Path, annotations: Path | None, fps: float | None = None,
         frames_per_row: int | None = None) -> Release:
    feat = feature_file(Path(features))
    ann_dir = annotation_folder(feat, annotations)
    ann = read_wtalc(ann_dir)
    order = _video_order(ann_dir)
    entries = _load_entries(feat)
    if len(entries) != len(order):
        raise DataError(f"has {len(entries)} entries but {ann_dir / 'videoname.npy'} names {len(order)} videos",
                        feat)
    fps = float(fps or FPS)
    frames_per_row = int(frames_per_row or FRAMES_PER_ROW)
    clock = Clock(fps, frames_per_row, frames_per_row)
    widths = [np.asarray(e).shape[1] if np.asarray(e).ndim == 2 and np.asarray(e).shape[0] else None
              for e in entries]
    counts = {w: widths.count(w) for w in set(widths) if w is not None}
    if not counts:
        raise DataError("every entry is empty", feat)
    width = max(counts, key=counts.get)
    if width % 2:
        raise DataError(f"entries have {width} columns; expected an even count (RGB then flow)", feat)
    odd = next((i for i, w in enumerate(widths) if w is not None and w != width), None)
    if odd is not None:
        raise DataError(f"entry {odd} has {widths[odd]} columns, the others {width}", feat, order[odd])
    dim = width // 2
    native = _native_fps(ann_dir, len(order))
    items = []
    for i, vid in enumerate(order):
        a = ann[vid]

        def load(i=i, vid=vid):
            x = np.asarray(entries[i], dtype=np.float64) if entries[i] is not None else np.zeros((0, 2 * dim))
            if x.size == 0:
                x = x.reshape(0, 2 * dim)
            if x.ndim != 2 or x.shape[1] != 2 * dim:
                raise DataError(f"entry {i} has shape {x.shape}, expected (n, {2 * dim})", feat, vid)
            return {"rgb": x[:, :dim], "flow": x[:, dim:]}

        items.append(Item(vid, f"{feat}[{i}]", load, clock, fps, a.duration, a.subset, a.labels,
                          native_fps=None if native is None else native[i]))
    differ = [v for v in order if ann[v].labels_differ()]
    notes = []
    if differ:
        notes.append(f"{len(differ)} video(s) have video-level labels (labels_all) that differ from their segment "
                     f"labels, e.g. {', '.join(differ[:3])}: the store's labels are labels_all (used for training "
                     "and classification); detection is evaluated on the segments")
    attrs = frame_attrs(NAME, f"W-TALC release: {feat} with {ann_dir}", clock.formula(), fps_source=fps,
                        frames_per_row=frames_per_row,
                        labels_source="labels_all (video-level labels of the release)")
    return Release(NAME, ("rgb", "flow"), dim, items, attrs, ann, notes)


def _video_order(ann_dir: Path) -> list[str]:
    names = np.load(ann_dir / "videoname.npy", allow_pickle=True, encoding="bytes")
    return [x.decode() if isinstance(x, bytes) else str(x) for x in names]


def _native_fps(ann_dir: Path, n: int):
    fp = ann_dir / "original_fps.npy"
    if not fp.exists():
        return None
    x = np.ravel(np.load(fp, allow_pickle=True, encoding="bytes")).astype(float)
    return x if len(x) == n else None


ANNOTATION_ARRAYS = ("videoname", "subset", "duration", "labels", "segments", "labels_all", "original_fps",
                     "classlist")


def write_annotation_folder(ann, out_dir) -> Path:
    """Write annotations as a W-TALC annotation folder, the arrays as the THUMOS14 release has them
    (``videoname``/``subset``/``classlist`` byte strings, ``duration`` (N, 1), per-video lists of segment
    ``labels`` and ``segments``, ``labels_all``), for annotations that do not come from such a folder.

    The lists' labels are ``str``: the release's Python 2 pickles load as ``str`` in Python 3 with numpy's
    default encoding, and public code compares them with the decoded class list."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = ann.video_ids()

    def objects(values):
        a = np.empty(len(values), dtype=object)
        a[:] = values
        return a

    arrays = {
        "videoname": np.array([v.encode() for v in ids]),
        "subset": np.array([ann[v].subset.encode() for v in ids]),
        "duration": np.array([[float(ann[v].duration or 0.0)] for v in ids]),
        "labels": objects([[s.label for s in ann[v].segments] for v in ids]),
        "segments": objects([[[s.start, s.end] for s in ann[v].segments] for v in ids]),
        "labels_all": objects([list(ann[v].labels) for v in ids]),
        "classlist": np.array([c.encode() for c in ann.classes()]),
    }
    for name, a in arrays.items():
        np.save(out / f"{name}.npy", a, allow_pickle=True)
    return out


def export_release(store_path, annotation_folder, out_dir, annotations=None) -> tuple[Path, Path]:
    """Write the untrimmed videos of a store as a W-TALC release: ``Thumos14reduced-I3D-JOINTFeatures.npy``
    (entry i = RGB‖flow rows of video i) and ``Thumos14reduced-Annotations/``.

    The annotation folder is the given W-TALC folder's arrays restricted to the store's videos, in the folder's
    order (``Ambiguous_test.txt`` copied); with ``annotation_folder`` None, it is written from ``annotations``
    (:func:`write_annotation_folder`), the store's videos in their order.

    For trying the release path, or public code that reads this format, without a download:
    ``make-synthetic-features OUT --preset NAME --release wtalc`` plants actions at real times and writes
    them out this way.
    """
    import shutil

    from tsrnet.data.format.store import FeatureStore

    store = FeatureStore(store_path)
    store.require_streams(("rgb", "flow"))
    out = Path(out_dir)
    ann = out / "Thumos14reduced-Annotations"
    have = set(store.video_ids(domain="untrimmed"))
    if annotation_folder is None:
        names = [v for v in annotations.video_ids() if v in have]
        if not names:
            raise DataError("no video of the store is in the annotations", annotations.path)
        write_annotation_folder(annotations.only(names), ann)
        idx = list(range(len(names)))
    else:
        folder = Path(annotation_folder)
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in np.load(folder / "videoname.npy", allow_pickle=True, encoding="bytes")]
        idx = [i for i, v in enumerate(names) if v in have]
        if not idx:
            raise DataError("no video of the store is in this W-TALC annotation folder", folder)
        ann.mkdir(parents=True, exist_ok=True)
        for name in ANNOTATION_ARRAYS:
            src = folder / f"{name}.npy"
            if not src.exists():
                continue
            # latin1: the Python 2 pickles' strings come back as str, as public code loading the release gets them.
            a = np.load(src, allow_pickle=True, encoding="latin1")
            np.save(ann / f"{name}.npy", a if name == "classlist" else a[idx], allow_pickle=True)
        for extra in folder.glob("Ambiguous*.txt"):
            shutil.copyfile(extra, ann / extra.name)
    entries = np.empty(len(idx), dtype=object)
    for k, i in enumerate(idx):
        f = store.read(names[i], ["rgb", "flow"])
        entries[k] = np.concatenate([f["rgb"], f["flow"]], axis=1)
    feat = out / "Thumos14reduced-I3D-JOINTFeatures.npy"
    np.save(feat, entries, allow_pickle=True)
    return feat, ann
