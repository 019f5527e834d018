"""ACM-Net's THUMOS14 release: BaS-Net's layout with RGB and flow already concatenated.

::

    THUMOS14/gt.json                       with a "duration" per video
    THUMOS14/split_train.txt, split_test.txt
    THUMOS14/{train,test}/<video>.npy      (T, 2048), RGB in columns 0-1023, flow in 1024-2047

One row per 16 frames at 25 fps, ``times[k] = (16 k + 8) / 25``; the rest as for ``basnet``.
"""
from __future__ import annotations

from pathlib import Path

from tsrnet.data.format.annotations.model import Annotations
from tsrnet.data.format.annotations.readers import read_activitynet
from .basnet import SUBSETS, read_folders
from .common import Release, npy_dtype

NAME = "acmnet"


def detect(features: Path, annotations: Path | None) -> str | None:
    for s in SUBSETS:
        d = features / s
        if d.is_dir():
            first = next(iter(sorted(d.glob("*.npy"))), None)
            if first is not None and npy_dtype(first) is not None and npy_dtype(first) != object:
                return f"{features} holds {{train,test}}/<video>.npy (RGB and flow concatenated)"
    return None


def read_annotations(path: Path) -> Annotations:
    return read_activitynet(path)


def read(features: Path, annotations: Path | None, fps: float | None = None,
         frames_per_row: int | None = None) -> Release:
    return read_folders(features, annotations, fps, frames_per_row, concatenated=True, name=NAME)
