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

from typing import Callable, Sequence

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


def exclude_trained(ids: list[str], info: dict, subset_of: Callable[[str], str | None],
                    source) -> tuple[list[str], str | None]:
    """``ids`` without the videos the run trained on, and a message when any were dropped.

    ``info`` is the run's ``run.json``; ``subset_of`` gives a video's subset,
    needed only for runs that predate the list of training ids. Raises
    :class:`DataError` when no video is left.
    """
    if "train_ids" in info:
        trained = set(info["train_ids"])
        how = ""
    elif info.get("train_subset") is not None:
        trained = {v for v in ids if subset_of(v) == info["train_subset"]}
        how = (f" (this run.json predates the list of training videos; its training subset "
               f"{info['train_subset']!r} was excluded instead)")
    else:
        raise DataError("run.json lists neither the training videos nor a training subset, so the run may have "
                        "trained on any of these videos; retrain it with the current train-tsr", source)
    kept = [v for v in ids if v not in trained]
    if not kept:
        raise DataError(f"all {len(ids)} video(s) to score were used to train the run{how}; choose another subset "
                        "or store to score", source)
    dropped = len(ids) - len(kept)
    msg = (f"excluded {dropped} of {len(ids)} video(s) that the run trained on{how}; scoring {len(kept)}"
           if dropped else None)
    return kept, msg
