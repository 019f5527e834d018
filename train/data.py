"""What a run trains on: the stores opened and checked, the labels and classes resolved, trimmed partners matched.

Kept apart from the loop so that ``compare-methods`` can check every input before the first run trains,
and a test can build a run's data without training it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tsrnet.data.format.annotations import Annotations
from tsrnet.data.format.batching import TrimmedPool
from tsrnet.data.core.errors import DataError
from tsrnet.data.core.settings import opt
from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.format.store import STREAMS, FeatureStore
from tsrnet.data.format.subsets import train_subset_by_convention

from .config import Config

EVAL_SUBSET_PREFERENCE = ("test", "validation", "val", "testing")


def normalise_class_name(name: str) -> str:
    """Class names are matched across datasets ignoring case, spaces, '_' and '-' ("High jump" == "HighJump")."""
    return re.sub(r"[\s_\-]+", "", name).lower()


@dataclass
class LabelledSet:
    """Videos of one store with their labels."""

    store: FeatureStore
    ids: list[str]
    labels: dict[str, list[str]]
    source: str  # where the labels came from (for messages)


def labelled_videos(store: FeatureStore, annotations: Annotations | None, subset: str | None,
                    domain: str) -> LabelledSet:
    """Videos and labels from annotations (if given) or the store's ``labels`` attributes."""
    if annotations is not None:
        ann = annotations.select(subset)
        ids = ann.video_ids()
        missing = [v for v in ids if v not in store]
        if missing:
            raise DataError(
                f"annotations name {len(missing)} video(s) absent from the store {store.path}, "
                f"first: {missing[0]} (check --subset or the store)", annotations.path, missing[0])
        return LabelledSet(store, ids, {v: ann[v].labels for v in ids}, str(annotations.path))
    ids = store.video_ids(subset=subset, domain=domain)
    if not ids:
        what = f"subset {subset!r} of domain {domain!r}" if subset else f"domain {domain!r}"
        raise DataError(f"no videos in {what} (subsets here: {store.subsets(domain) or 'none'})", store.path)
    labels = {}
    for v in ids:
        lab = store.labels(v)
        if lab is None:
            raise DataError("no 'labels' attribute and no --annotations given", store.path, v)
        labels[v] = lab
    return LabelledSet(store, ids, labels, str(store.path))


def multi_hot(labels: dict[str, list[str]], ids: list[str], classes: list[str], source: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(ids), len(classes)), dtype=np.float32)
    for r, v in enumerate(ids):
        for lab in labels[v]:
            if lab not in index:
                raise DataError(f"label {lab!r} is not in the class list ({len(classes)} classes)", source, v)
            y[r, index[lab]] = 1.0
    return y


def trimmed_store(model: str, store: FeatureStore, trimmed, cache: int) -> FeatureStore:
    """The store whose trimmed clips a transfer model learns from: ``--trimmed``, else the untrimmed store itself."""
    if trimmed:
        return FeatureStore(trimmed, cache_bytes=cache)
    if store.video_ids(domain="trimmed"):
        return store  # one store for both domains; sharing the object shares its row cache
    raise DataError(f"model {model!r} transfers knowledge from trimmed clips and needs --trimmed TRIMMED.h5 or "
                    f"trimmed clips in this store, which has none (add them with 'extract-features CLIPS/ "
                    f"{store.path} --trimmed' or 'import-features {store.path} --trimmed ...'), or choose "
                    "--model srnet or two-stream, which need none", store.path)


def pick_eval_subset(subsets: list[str], train_subset: str | None) -> str | None:
    others = [s for s in subsets if s != train_subset]
    for name in EVAL_SUBSET_PREFERENCE:
        if name in others:
            return name
    return others[0] if others else None


@dataclass
class TrainData:
    untrimmed: LabelledSet
    classes: list[str]
    targets: np.ndarray  # (V, C)
    trimmed_pool: TrimmedPool | None
    run_info: dict  # recorded in run.json


def prepare_data(cfg: Config, features, annotations=None, subset=None, trimmed=None, trimmed_annotations=None,
                 classes: list[str] | None = None) -> TrainData:
    """Open and check the stores, resolve labels, classes and trimmed partners.

    Every inconsistency is a :class:`DataError` naming the file and video.
    """
    method = cfg.make_method()
    # Loader workers are new processes each epoch: a cache in them would be rebuilt every epoch.
    cache = int(cfg.train.cache_gb * 2**30) if cfg.train.workers == 0 else 0
    store = FeatureStore(features, cache_bytes=cache)
    # Every stream the store holds, in the canonical order: one-stream releases (e.g. TSP) train one-stream models.
    streams = tuple(s for s in STREAMS if s in store.streams)
    ann = load_annotations(annotations) if annotations else None
    subsets = ann.subsets() if ann is not None else store.subsets("untrimmed")
    subset_reason = "given with --subset"
    if subset is None:
        subset, subset_reason = train_subset_by_convention(subsets, annotations or features)
    u = labelled_videos(store, ann, subset, "untrimmed")
    if not u.ids:
        raise DataError(f"no training videos (subset {subset!r})", annotations or features)
    if classes is None:
        # All classes named anywhere in the annotations, so detection covers test-only classes too.
        classes = ann.classes() if ann is not None else sorted({c for v in u.ids for c in u.labels[v]})
    if not classes:
        raise DataError("no class labels found for the training videos", u.source)
    targets = multi_hot(u.labels, u.ids, classes, u.source)

    pool = None
    info = {
        "features": str(Path(features).resolve()),
        "fingerprint": store.fingerprint(),
        "annotations": str(Path(annotations).resolve()) if annotations else None,
        "train_subset": subset,
        "train_subset_reason": subset_reason,
        "eval_subset": pick_eval_subset(subsets, subset),
        "n_train_videos": len(u.ids),
        # detect and compare-methods exclude exactly these from scoring.
        "train_ids": list(u.ids),
        "streams": list(streams),
        "feature_dim": store.feature_dim,
    }
    if method.uses_trimmed:
        tstore = trimmed_store(method.name, store, trimmed, cache)
        trimmed = tstore.path
        tstore.require_streams(streams)
        if tstore.feature_dim != store.feature_dim:
            raise DataError(f"trimmed store has feature_dim {tstore.feature_dim} but the untrimmed store "
                            f"{store.path} has {store.feature_dim}; extract both with the same backbone", tstore.path)
        tann = load_annotations(trimmed_annotations) if trimmed_annotations else None
        t = labelled_videos(tstore, tann, None, "trimmed")
        by_norm = {normalise_class_name(c): i for i, c in enumerate(classes)}
        keep, cls_idx = [], []
        for v in t.ids:
            if len(t.labels[v]) != 1:
                raise DataError(f"a trimmed clip needs exactly one label, has {t.labels[v]}", t.source, v)
            c = by_norm.get(normalise_class_name(t.labels[v][0]))
            if c is not None:
                keep.append(v)
                cls_idx.append(c)
        if not keep:
            raise DataError("no trimmed clip belongs to a class of the untrimmed set (classes are matched by "
                            "name, ignoring case, spaces, '_' and '-')", t.source)
        pool = TrimmedPool(tstore, keep, np.array(cls_idx), len(classes), streams, method.trimmed_sampler())
        overlap = sorted(classes[c] for c in pool.classes())
        info.update({
            "trimmed": str(Path(trimmed).resolve()),
            "trimmed_fingerprint": tstore.fingerprint(),
            "trimmed_annotations": str(Path(trimmed_annotations).resolve()) if trimmed_annotations else None,
            "n_trimmed_clips": len(keep),
            "n_trimmed_ignored": len(t.ids) - len(keep),
            "overlapping_classes": overlap,
        })
    return TrainData(u, classes, targets, pool, info)


@dataclass(frozen=True)
class Inputs:
    """The stores and labels a run trains on, as the commands take them: paths, and the training subset."""

    features: str = opt(None, "Feature store of the untrimmed videos.", path="existing file")
    annotations: str | None = opt(None, "Ground truth (ActivityNet JSON, THUMOS14 folder, or CSV); only video-level "
                                        "labels are used.", path="existing",
                                  shown="the store's 'labels' attributes")
    subset: str | None = opt(None, "Train on this subset of the annotations or store (e.g. validation).",
                             shown="'train' or 'training'; 'validation' when there is 'test'")
    # read only by methods that transfer from trimmed clips
    trimmed: str | None = opt(None, "Feature store of trimmed clips (e.g. UCF101) for knowledge transfer.",
                              path="existing file", shown="the trimmed clips in FEATURES")
    trimmed_annotations: str | None = opt(None, "Labels of the trimmed clips.", path="existing",
                                          shown="their 'labels' attribute")

    def prepare(self, cfg: Config) -> TrainData:
        return prepare_data(cfg, self.features, self.annotations, self.subset, self.trimmed, self.trimmed_annotations)
