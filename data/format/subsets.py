"""Which videos a run trains on and which it may be scored on.

A run must never be scored on a video it trained on: every number it
reported would be inflated. Two rules keep training and scoring apart:

- :func:`train_subset_by_convention` picks the training subset when the user
  names none but the data names subsets (ActivityNet's ``training``, the
  common ``train``, THUMOS14's ``validation`` beside ``test``);
- :func:`exclude_trained` drops the run's training videos from any set of
  videos about to be scored, using the ids the run recorded in ``run.json``.
"""
from __future__ import annotations

from typing import Sequence

from tsrnet.data.core.errors import DataError

TRAIN_SUBSET_NAMES = ("train", "training")


def train_subset_by_convention(subsets: Sequence[str], source) -> tuple[str | None, str]:
    """The subset to train on when none was given, and why (one phrase for the user).

    ``None`` means every video: the data names no subsets. Raises
    :class:`DataError` listing the subsets when the convention does not decide.
    """
    subsets = sorted(set(subsets))
    if not subsets:
        return None, "the data names no subsets, so every labelled video is used"
    named = [s for s in TRAIN_SUBSET_NAMES if s in subsets]
    if len(named) == 1:
        return named[0], f"by convention the training subset of {subsets}"
    if not named and "validation" in subsets and "test" in subsets:
        return "validation", f"THUMOS14's convention: train on 'validation', test on 'test' (subsets {subsets})"
    raise DataError(f"no --subset given and the subsets {subsets} do not say which one to train on; "
                    "pass --subset NAME", source)


def exclude_trained(ids: list[str], info: dict, source) -> tuple[list[str], str | None]:
    """``ids`` without the videos the run trained on (``info``: its ``run.json``), and a message when any were
    dropped. Raises :class:`DataError` when no video is left, or when the run does not list them."""
    if "train_ids" not in info:
        raise DataError("run.json lists no training videos, so the run may have trained on any of these videos; "
                        "retrain it with the current train-tsr", source)
    trained = set(info["train_ids"])
    kept = [v for v in ids if v not in trained]
    if not kept:
        raise DataError(f"all {len(ids)} video(s) to score were used to train the run; choose another subset "
                        "or store to score", source)
    dropped = len(ids) - len(kept)
    msg = (f"excluded {dropped} of {len(ids)} video(s) that the run trained on; scoring {len(kept)}"
           if dropped else None)
    return kept, msg
