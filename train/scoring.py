"""Scoring a trained run on a store's videos: the one path ``detect``, ``compare-methods`` and the benchmarks take.

:func:`score_run` loads the run, checks the store and the ground truth against it, picks the videos to score
(a subset, the run's own training videos always left out) and computes every video's row scores once.
The :class:`ScoredRun` it returns then localises with any settings over the run's recorded ones and
evaluates, so that several localisations of one run cost one pass of the network.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tsrnet.data.format.annotations import Annotations
from tsrnet.data.core.errors import DataError
from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.format.store import FeatureStore
from tsrnet.data.format.subsets import exclude_trained

from .config import Config
from .methods import MethodModule
from .rundir import load_run

MAX_TIOU_IN_ROW = 0.7  # a table row's detection mAP columns stop here (THUMOS14's usual range)


@dataclass
class ScoredRun:
    """A run's row scores on the videos it is scored on, and what is needed to localise and evaluate them."""

    run_dir: Path
    model: MethodModule
    config: Config
    info: dict  # run.json
    store: FeatureStore
    subset: str | None  # the scored subset (None: every video of the store or ground truth)
    ids: list[str]  # the scored videos, the run's training videos left out
    truth: Annotations | None  # their ground truth, when given
    note: str | None = None  # which training videos were left out, for the user
    scores: list | None = None  # one VideoScores per id, once computed

    def compute(self, progress: bool = False) -> "ScoredRun":
        """Every video's row scores (one pass of the network); returns self."""
        from tsrnet.detect.pipeline import score_store

        self.scores = score_store(self.model, self.store, self.ids, next(self.model.parameters()).device,
                                  progress=progress)
        return self

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    def detect_config(self, overrides: dict | None = None):
        """The run's recorded localisation, with ``overrides`` (field -> value) over it."""
        return self.config.detect if not overrides else self.config.replace("detect", **overrides).detect

    def detections(self, dcfg) -> dict:
        """Video id -> detections, localised with ``dcfg`` from the method's own evidence."""
        from tsrnet.detect.pipeline import detections

        return detections(self.scores, self.classes, dcfg, self.model.method.evidence)

    def evaluate(self, results: dict, dcfg, ambiguous=None):
        """Detection mAP (a DetectionResult) and video classification metrics against the ground truth."""
        from tsrnet.detect.pipeline import evaluate_scores

        if self.truth is None or not self.truth.has_segments():
            raise DataError("no ground truth with segments to evaluate against", self.run_dir)
        return evaluate_scores(self.scores, results, self.truth, self.classes, dcfg, self.model.method.evidence,
                               ambiguous=ambiguous)

    def row(self, overrides: dict | None = None) -> tuple[dict, dict]:
        """One table row (video top-1 and mAP, detection mAP at tIoU 0.1-0.7 and their average) with the
        localisation ``overrides``, and the detections it scored."""
        dcfg = self.detect_config(overrides)
        results = self.detections(dcfg)
        return table_row(*self.evaluate(results, dcfg)), results


def table_row(ev, cm) -> dict:
    """The columns of a comparison table from an evaluation (``ev``) and classification metrics (``cm``)."""
    row = {"top1": cm["top1"], "cls_mAP": cm["mAP"]}
    upto = {f"mAP@{t:.1f}": v for t, v in zip(ev.tiou_thresholds, ev.map) if t <= MAX_TIOU_IN_ROW + 1e-9}
    row.update(upto)
    row["avg(0.1:0.7)"] = float(np.mean(list(upto.values())))
    return row


def score_run(run_dir: str | Path, features: str | Path | FeatureStore | None = None,
              annotations: str | Path | Annotations | None = None, subset: str | None = None, *,
              device: str = "auto", progress: bool = False) -> ScoredRun:
    """Score the run in ``run_dir`` on the videos of ``subset`` (default: the run's evaluation subset):
    :func:`open_run_for_scoring`, then every video's row scores."""
    return open_run_for_scoring(run_dir, features, annotations, subset, device=device).compute(progress)


def open_run_for_scoring(run_dir: str | Path, features: str | Path | FeatureStore | None = None,
                         annotations: str | Path | Annotations | None = None, subset: str | None = None, *,
                         device: str = "auto", videos: list[str] | None = None) -> ScoredRun:
    """The run in ``run_dir`` with the videos it will be scored on, checked, before any is scored.

    ``features`` and ``annotations`` (paths or opened) default to those the run recorded; without any ground
    truth the store's untrimmed videos of ``subset`` are scored. The run's training videos are always left
    out. Refused in one line: a store without the run's streams or of another feature size, ground truth of
    classes the run was not trained on, annotated videos absent from the store.

    ``videos`` (ids in ``features``, e.g. videos just extracted for ``detect VIDEO``) scores those alone: the
    run's ground truth and evaluation subset are not used, and ``annotations``, when given, evaluates the
    ones it annotates (in ``subset``, when given).
    """
    run_dir = Path(run_dir)
    model, cfg, info = load_run(run_dir, device)
    if videos is not None:
        return _open_for_videos(run_dir, model, cfg, info, features, annotations, subset, list(videos))
    features = features if features is not None else info.get("features")
    if features is None:
        raise DataError("no feature store given and none recorded in the run", run_dir)
    store = _check_store(features, model, info, run_dir)
    annotations = annotations if annotations is not None else info.get("annotations")
    subset = subset or info.get("eval_subset")
    truth = None
    if annotations is not None:
        truth = _check_truth(annotations, model).select(subset)
        ids = truth.video_ids()
        missing = [v for v in ids if v not in store]
        if missing:
            raise DataError(f"{len(missing)} annotated video(s) are absent from the store {store.path}, "
                            f"first: {missing[0]}", truth.path, missing[0])
    else:
        ids = store.video_ids(subset=subset, domain="untrimmed")
        if not ids:
            raise DataError(f"no untrimmed videos in subset {subset!r}", store.path)
    ids, note = exclude_trained(ids, info, run_dir / "run.json")
    if truth is not None:
        truth = truth.only(ids)
    return ScoredRun(run_dir, model, cfg, info, store, subset, ids, truth, note)


def _check_store(features, model, info: dict, run_dir: Path) -> FeatureStore:
    """The store opened, refused when it lacks the run's streams or has another feature size."""
    store = features if isinstance(features, FeatureStore) else FeatureStore(features)
    store.require_streams(model.streams)
    if store.feature_dim != int(info["feature_dim"]):
        raise DataError(f"store has feature_dim {store.feature_dim}, but the run {run_dir} was trained on "
                        f"{info['feature_dim']}; use the store it was trained on or one from the same backbone",
                        store.path)
    return store


def _check_truth(annotations, model) -> Annotations:
    """The ground truth loaded, refused when it has classes the run was not trained on."""
    truth = annotations if isinstance(annotations, Annotations) else load_annotations(annotations)
    unknown = sorted(set(truth.classes()) - set(model.classes))
    if unknown:
        raise DataError(f"annotations have class(es) the run was not trained on: {unknown[:5]} "
                        f"(the run's class list has {len(model.classes)}); this run belongs to another "
                        "class list", truth.path)
    return truth


def _open_for_videos(run_dir: Path, model, cfg, info: dict, features, annotations, subset, videos: list[str]):
    """:func:`open_run_for_scoring` of the given ``videos`` of ``features``."""
    if features is None:
        raise DataError("no feature store given for the videos", run_dir)
    store = _check_store(features, model, info, run_dir)
    absent = [v for v in videos if v not in store]
    if absent or not videos:
        raise DataError(f"{len(absent)} video(s) to score are absent from the store, first: {absent[:1]}"
                        if absent else "no videos to score", store.path)
    truth = None
    if annotations is not None:
        truth = _check_truth(annotations, model).select(subset)
        kept = [v for v in videos if v in truth]
        if not kept:
            raise DataError(f"none of the {len(videos)} video(s) is annotated"
                            + (f" in subset {subset!r}" if subset else ""), truth.path)
        videos = kept
    ids, note = exclude_trained(videos, info, run_dir / "run.json")
    if truth is not None:
        truth = truth.only(ids)
    return ScoredRun(run_dir, model, cfg, info, store, subset, ids, truth, note)


def scored_test_set(ann: Annotations, test_subset: str | None, info: dict) -> tuple[Annotations, str | None]:
    """The annotations of ``test_subset`` less the run's training videos (``info``: its run.json), and a message
    when any were dropped: the videos :func:`score_run` scores, known before a run has trained."""
    test = ann.select(test_subset)
    ids, note = exclude_trained(test.video_ids(), info, ann.path)
    return test.only(ids), note

