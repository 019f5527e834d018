"""Per-video folders of the BaS-Net THUMOS14 release (reused by UM, CoLA, ASL and others).

::

    THUMOS14/gt.json                              segments as strings, no durations
    THUMOS14/split_train.txt, split_test.txt      the videos of each subset, one a line
    THUMOS14/features/{train,test}/{rgb,flow}/<video>.npy    (T, 1024) each

One row per 16 frames at 25 fps, timed at the centre of its frames, ``(16 k + 8) / 25``. The subset
is the folder (``train`` holds THUMOS14's validation videos, ``test`` its test videos), which must
agree with ``gt.json``'s (``train`` also agrees with ``validation``, ``test`` with ``testing``). Without durations in ``gt.json`` a video's duration is what its rows
cover, ``16 T / 25`` s. Videos listed in the split files are imported; feature files not listed
there are skipped (and counted); without split files, feature files without an annotation are.
``--features`` is the ``THUMOS14`` folder or its ``features``
folder; ``--annotations`` defaults to the ``gt.json`` beside them.
"""
from __future__ import annotations

from pathlib import Path

from tsrnet.data.format.annotations.model import Annotations
from tsrnet.data.format.annotations.readers import read_activitynet
from tsrnet.data.core.errors import DataError
from .common import Clock, Item, Release, frame_attrs, load_npy

NAME = "basnet"
FPS, FRAMES_PER_ROW = 25.0, 16
SUBSETS = ("train", "test")
# gt.json subset names that agree with each folder (the train folder holds THUMOS14's validation videos).
SAME_SUBSET = {"train": ("train", "training", "validation", "val"), "test": ("test", "testing")}


def _roots(features: Path, sub: tuple[str, ...]) -> tuple[Path, Path] | None:
    """(release root holding gt.json and the split files, folder holding train/ and test/)."""
    for feat_dir, root in ((features / "features", features), (features, features.parent)):
        if any(all((feat_dir / s / x).is_dir() for x in sub) for s in SUBSETS):
            return root, feat_dir
    return None


def detect(features: Path, annotations: Path | None) -> str | None:
    r = _roots(features, ("rgb", "flow"))
    return None if r is None else f"{r[1]} holds {{train,test}}/{{rgb,flow}}/<video>.npy"


def read_annotations(path: Path) -> Annotations:
    return read_activitynet(path)


def split_lists(root: Path) -> dict[str, list[str]] | None:
    lists = {}
    for s in SUBSETS:
        p = root / f"split_{s}.txt"
        if p.exists():
            lists[s] = [x.strip() for x in p.read_text().splitlines() if x.strip()]
    return lists or None


def read_folders(features: Path, annotations: Path | None, fps, frames_per_row, concatenated: bool,
                 name: str) -> Release:
    sub = () if concatenated else ("rgb", "flow")
    r = _roots(Path(features), sub) if sub else _acm_roots(Path(features))
    if r is None:
        raise DataError(f"not a {name} release: no {{train,test}}/{'{rgb,flow}/' if sub else ''}<video>.npy "
                        "folders here", features)
    root, feat_dir = r
    gt = Path(annotations) if annotations is not None else root / "gt.json"
    if not gt.exists():
        raise DataError("no gt.json beside the features; pass --annotations", gt)
    ann = read_activitynet(gt)
    fps = float(fps or FPS)
    frames_per_row = int(frames_per_row or FRAMES_PER_ROW)
    clock = Clock(fps, frames_per_row, frames_per_row)
    lists = split_lists(root)
    items, skipped, dim = [], 0, None
    for s in SUBSETS:
        d = feat_dir / s
        if not d.is_dir():
            continue
        first = d if concatenated else d / "rgb"
        present = sorted(p.stem for p in first.glob("*.npy"))
        wanted = lists.get(s, present) if lists else [v for v in present if v in ann]
        skipped += len(set(present) - set(wanted))
        for vid in wanted:
            files = {"concat": d / f"{vid}.npy"} if concatenated else {x: d / x / f"{vid}.npy" for x in ("rgb", "flow")}
            missing = [p for p in files.values() if not p.exists()]
            a = ann[vid] if vid in ann else None
            if a is None:
                raise DataError(f"video is listed in split_{s}.txt but has no entry in the annotations", gt, vid)
            if a.subset is not None and a.subset.lower() not in SAME_SUBSET[s]:
                raise DataError(f"the annotations say subset {a.subset!r} but its features are in the {s}/ folder",
                                gt, vid)
            if dim is None and not missing:
                x = load_npy(next(iter(files.values())), vid)
                dim = x.shape[1] // 2 if concatenated else x.shape[1]

            def load(files=files, vid=vid):
                if "concat" in files:
                    x = load_npy(files["concat"], vid)
                    if x.shape[0] and x.shape[1] != 2 * dim:
                        raise DataError(f"has {x.shape[1]} columns, expected {2 * dim} (RGB then flow)",
                                        files["concat"], vid)
                    return {"rgb": x[:, :dim], "flow": x[:, dim:]}
                return {k: load_npy(p, vid) for k, p in files.items()}

            items.append(Item(vid, str(next(iter(files.values()))), load, clock, fps, a.duration, s, a.labels,
                              failure=f"no feature file {missing[0]}" if missing else None))
    if not items or dim is None:
        raise DataError("no video with features found", feat_dir)
    notes = [f"{skipped} feature file(s) not listed in split_*.txt (or, without split files, not in the "
             "annotations) were skipped"] if skipped else []
    attrs = frame_attrs(name, f"{name} release: {feat_dir} with {gt}", clock.formula(), fps_source=fps,
                        frames_per_row=frames_per_row)
    return Release(name, ("rgb", "flow"), dim, items, attrs, ann, notes)


def _acm_roots(features: Path) -> tuple[Path, Path] | None:
    for feat_dir in (features, features / "features"):
        if any((feat_dir / s).is_dir() and any((feat_dir / s).glob("*.npy")) for s in SUBSETS):
            return features, feat_dir
    return None


def read(features: Path, annotations: Path | None, fps: float | None = None,
         frames_per_row: int | None = None) -> Release:
    return read_folders(features, annotations, fps, frames_per_row, concatenated=False, name=NAME)
