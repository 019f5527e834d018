"""One tuning protocol for every method, judged on benchmark families held out from the tuning.

The study behind the methods' defaults (docs/studies/defaults.md). Every method gets the same budget: the
same number of training candidates (``CANDIDATES``, the first being its current defaults) and the same
localisation variants (``LOCALISE``), on the same families (``make-synthetic-features --preset``):

1. ``tune``: each candidate trains on 80% of a family's training videos (data seed 0, training seed 0)
   and is scored, with every localisation variant, on the other 20% (``tune-val``): the test videos are
   never seen while tuning.
2. ``select``: for each family h, the setting (candidate x variant) with the best mean rank on the
   validation videos of the *other* families, leaving out settings that collapsed on any of them
   (average mAP below half the best setting's there) - leave-one-family-out. The recommended default is
   the same choice made over every family.
3. ``final``: for each family h, the setting chosen without h trains on all training videos of h
   (seeds 0, 1, 2: data and training both) and is scored on its test videos.

Resumable across sessions: every scored run is a row of ``tune.csv`` / ``final.csv`` in ``--results`` (by default
OUT; the project keeps its own in ``benchmarks/results/protocol/``), keyed by family, seed, method, candidate and a
digest of the run's settings and localisation variants, so a run already scored is neither trained nor scored
again, even where its run folder is gone; a changed default changes the digest and retrains it. Delete a row to
redo it after a code change that keeps the settings. ``--jobs N`` trains N runs at a time.

Localisation: each method's own detection defaults (``LOCALISE``), with ``--smooth 8`` added on the families of
ActivityNet 1.3's structure, the window chosen per annotation structure in docs/studies/defaults.md and used
there as a user would on ActivityNet (THUMOS14's families: off).

::

    python benchmarks/study_defaults.py study/defaults --jobs 2              # everything
    python benchmarks/study_defaults.py study/defaults --stage screen        # current defaults only, seed 0
    python benchmarks/study_defaults.py study/defaults --stage report        # the tables from what is there
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.format.store import FeatureStore
from tsrnet.data.generators.synthetic_family import LAYOUTS, PRESETS, preset_spec
from tsrnet.data.generators.synthetic_layout import generate_from_layout
from tsrnet.detect.config import DetectConfig
from tsrnet.train.compare import random_row, train_one
from tsrnet.train.config import Config
from tsrnet.train.scoring import score_run
from tsrnet.train.data import Inputs
from tsrnet.train.methods import REGISTRY, method_class

TUNE_TRAIN, TUNE_VAL = "tune-train", "tune-val"
METRIC = "avg(0.1:0.7)"
# Scores closer than this (average mAP, 1 point) rank as equal in the choice (``choose``).
MARGIN = 0.01

# Per method, the training candidates: {"options": {...}, "train": {...}} over its defaults; the first is the
# defaults themselves. The same count for every method (the budget).
CANDIDATES: dict[str, list[dict]] = {
    "two-stream": [{}, {"options": {"dropout": 0.5}}, {"train": {"lr": 3e-4, "lr_flow": 3e-4}},
                   {"options": {"max_rows": 0}}],
    "srnet": [{}, {"options": {"beta": 1.0}}, {"options": {"sparsity_keep": 0.7}},
              {"options": {"alpha": 1.0, "beta": 0.3}}],
    "tsrnet": [{}, {"options": {"beta": 1.0}}, {"options": {"sparsity_keep": 0.4}},
               {"options": {"alpha": 1.0, "beta": 0.3}}],
    "tsrnet-fc1": [{}, {"options": {"beta": 1.0}}, {"options": {"sparsity_keep": 0.4}},
                   {"options": {"alpha": 1.0, "beta": 0.3}}],
    "stpn": [{}, {"options": {"beta": 0.1}}, {"options": {"beta": 0.01}}, {"train": {"lr": 1e-4, "lr_flow": 1e-4}}],
    # Soft selection's defaults are the protocol's choice of its first round (n_clips 15, the attention
    # weighting); its c1 is now the paper's N = 7.
    "untrimmednet-soft": [{}, {"options": {"n_clips": 7}}, {"options": {"dropout": 0.5, "dropout_flow": 0.5}},
                          {"train": {"lr": 3e-4, "lr_flow": 3e-4}}],
    "untrimmednet-hard": [{}, {"options": {"n_clips": 15}}, {"options": {"dropout": 0.5, "dropout_flow": 0.5}},
                          {"train": {"lr": 3e-4, "lr_flow": 3e-4}}],
    "mgfn": [{}, {"options": {"oic_reduction": "sum"}}, {"options": {"oic_to_cas": False}},
             {"options": {"brm": False}}],
    "kt-mgfn": [{}, {"options": {"oic_reduction": "sum"}}, {"options": {"oic_to_cas": False}},
                {"options": {"brm": False}}],
    "basnet": [{}, {"options": {"norm_weight": 0.01}}, {"options": {"dropout": 0.5}},
               {"train": {"lr": 3e-4, "lr_flow": 3e-4}}],
}
# Localisation variants, over each method's own detection defaults: the same for every method.
LOCALISE: dict[str, dict | None] = {
    "default": None,
    "thresholds 0.1:0.5": {"threshold": [0.1, 0.2, 0.3, 0.4, 0.5]},
    "min-max 0.5": {"scale": "video", "threshold": [0.5]},
    # The row score weighted by its place in the video's log attention range (detect --attention-weight 1): a
    # no-op for methods without attention. After UntrimmedNet's diagnosis on th14-overlap (docs/studies/defaults.md).
    "attention-weighted": {"attention_weight": 1.0},
}


# The median filter's window (seconds) on families of ActivityNet 1.3's structure (docs/studies/defaults.md, "Long
# actions fragment"); THUMOS14's families keep the detector's default (off).
SMOOTH_BY_LAYOUT = {"activitynet13": 8.0}


def variants(family: str) -> dict[str, dict]:
    """``LOCALISE`` over the family's annotation structure: the window of ``SMOOTH_BY_LAYOUT`` added to each."""
    layout = next(name for name, path in LAYOUTS.items() if Path(preset_spec(family, seed=0).layout) == path)
    extra = {"smooth": SMOOTH_BY_LAYOUT[layout]} if layout in SMOOTH_BY_LAYOUT else {}
    return {name: {**(v or {}), **extra} or None for name, v in LOCALISE.items()}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- data ------------------------------------------------------------------------------------------------------
def family_data(out: Path, family: str, seed: int) -> Path:
    """The family's set for ``seed`` (generated once), with ``tune.json``: its annotations with 20% of the
    training subset's videos (seeded) moved to ``tune-val`` and the rest to ``tune-train``."""
    d = out / "data" / f"{family}-s{seed}"
    if not (d / "annotations.json").exists():  # written last
        log(f"generating {d.name}")
        generate_from_layout(d, preset_spec(family, seed=seed, **SMOKE.get("data", {})))
    if not (d / "tune.json").exists():
        ann = load_annotations(d / "annotations.json")
        train_subset = training_subset(ann)
        ids = ann.video_ids(train_subset)
        rng = np.random.default_rng([seed, 71])
        val = set(rng.choice(ids, size=max(1, len(ids) // 5), replace=False).tolist())
        raw = json.loads((d / "annotations.json").read_text())
        for vid, entry in raw["database"].items():
            if entry["subset"] == train_subset:
                entry["subset"] = TUNE_VAL if vid in val else TUNE_TRAIN
        tmp = d / "tune.json.tmp"
        tmp.write_text(json.dumps(raw))
        tmp.replace(d / "tune.json")
    return d


@functools.lru_cache(maxsize=None)
def opened(d: Path, annotations: str) -> tuple[FeatureStore, object]:
    """A family set's store and annotations (``annotations.json`` or ``tune.json``), read once for all its runs."""
    return FeatureStore(d / "untrimmed.h5"), load_annotations(d / annotations)


def training_subset(ann) -> str:
    subsets = ann.subsets()
    return next(s for s in ("train", "training", "validation") if s in subsets)


def test_subset(ann) -> str:
    train = training_subset(ann)
    return next(s for s in ann.subsets() if s not in (train, TUNE_TRAIN, TUNE_VAL))


# -- runs ------------------------------------------------------------------------------------------------------
def config(method: str, k: int, seed: int) -> Config:
    cand = CANDIDATES[method][k]
    return Config.for_method(method, cand.get("options"), {**cand.get("train", {}), "seed": seed,
                                                           **SMOKE.get("train", {})})


def digest(cfg: Config, variants_: dict) -> str:
    """What a scored row depends on besides its key: the run's method and training settings (threads and device
    aside), the data's size (``--smoke``), the method's detection defaults and the localisation variants."""
    train = {k: v for k, v in dataclasses.asdict(cfg.train).items() if k not in ("threads", "device")}
    blob = json.dumps([cfg.method, dataclasses.asdict(cfg.options), train, SMOKE.get("data", {}),
                       dataclasses.asdict(cfg.detect), variants_], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def commit() -> str:
    """The checkout's commit, recorded with each scored row ("+" when the tree has changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).parent).stdout.strip()
        return head + ("+" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cached(csv: Path, key: dict, n_variants: int) -> list[dict] | None:
    """The rows of ``key`` (with its ``settings`` digest) in ``csv``, if every variant is there."""
    if not csv.exists():
        return None
    have = pd.read_csv(csv)
    mine = have
    for k, v in key.items():
        if k not in mine:
            return None
        mine = mine[mine[k] == v]
    return mine.to_dict("records") if len(mine) == n_variants else None


SCORE_ONLY = False  # --score-only: train nothing, score the runs that are done
SMOKE: dict = {}  # --smoke: small families and short training, to try the script end to end


def stale(cfg: Config, run_dir: Path) -> bool:
    """A finished run trained with other method settings than ``cfg``'s (a default changed since): retrain it."""
    recorded = json.loads((run_dir / "config.json").read_text())
    return recorded["options"] != dataclasses.asdict(cfg.options)


def train_all(jobs: list[tuple[Config, Inputs, Path]], n_jobs: int) -> None:
    for cfg, _, rd in jobs:
        if (rd / "done").exists() and stale(cfg, rd):
            log(f"{rd}: trained with other settings than today's candidate; retraining")
            (rd / "done").unlink()
            (rd / "stale").write_text("")
    todo = [(cfg, inp, rd) for cfg, inp, rd in jobs if not (rd / "done").exists()]
    if not todo or SCORE_ONLY:
        return
    log(f"training {len(todo)} runs, {n_jobs} at a time")
    from joblib import Parallel, delayed

    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    results = Parallel(n_jobs=n_jobs, backend="loky")(
        delayed(_train)(cfg, inp, rd, threads) for cfg, inp, rd in todo)
    failed = [(rd, e) for (_, _, rd), e in zip(todo, results) if e is not None]
    for rd, e in failed:
        log(f"FAILED {rd}: {e}")


def _train(cfg, inputs, run_dir: Path, threads: int):
    t0 = time.perf_counter()
    e = train_one(cfg, inputs, run_dir, (run_dir / "stale").exists(), threads)
    if e is None:
        (run_dir / "done").write_text(f"{time.perf_counter() - t0:.1f}\n")
        (run_dir / "stale").unlink(missing_ok=True)
    return e


def scored(csv: Path, key: dict, cfg: Config, run_dir: Path, store, ann, subset: str, variants_: dict) -> list[dict]:
    """Rows of ``run_dir`` scored on ``subset`` with every localisation variant, cached in ``csv`` under ``key``
    and the digest of ``cfg`` and the variants (a cached row needs no run folder)."""
    key = {**key, "settings": digest(cfg, variants_)}
    got = cached(csv, key, len(variants_))
    if got is not None:
        return got
    if not (run_dir / "done").exists():
        return []
    scored = score_run(run_dir, store, ann, subset, device="cpu")
    seconds = float((run_dir / "done").read_text())
    # Each variant over today's detection defaults of the method (cfg.detect), not those the run recorded when it
    # was trained: a changed localisation default needs no retraining, only this scoring (its digest changes).
    today = dataclasses.asdict(cfg.detect)
    out = [{**key, "localise": name, **scored.row({**today, **(v or {})})[0], "train_s": seconds, "commit": commit()}
           for name, v in variants_.items()]
    have = pd.read_csv(csv) if csv.exists() else pd.DataFrame()
    frame = pd.concat([have, pd.DataFrame(out)], ignore_index=True) if len(have) else pd.DataFrame(out)
    tmp = csv.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(csv)
    return out


def still_to_train(jobs: list, csv: Path) -> list:
    """The jobs ``(cfg, inputs, run_dir, key, variants)`` whose rows are not in ``csv`` yet."""
    return [j for j in jobs if cached(csv, {**j[3], "settings": digest(j[0], j[4])}, len(j[4])) is None]


# -- stages ----------------------------------------------------------------------------------------------------
def stage_tune(out: Path, results: Path, families, methods, n_jobs: int, candidates=None) -> pd.DataFrame:
    """Every candidate of every method on each family's validation videos (data and training seed 0). Family by
    family, as the final stage, so that an interrupted study leaves whole families scored."""
    rows = []
    for fam in families:
        d = family_data(out, fam, 0)
        inputs = Inputs(str(d / "untrimmed.h5"), str(d / "tune.json"), TUNE_TRAIN, str(d / "trimmed.h5"))
        jobs = []
        for m in methods:
            for k in (candidates if candidates is not None else range(len(CANDIDATES[m]))):
                key = {"family": fam, "method": m, "candidate": k}
                jobs.append((config(m, k, 0), inputs, out / "tune" / fam / f"{m}-c{k}", key, variants(fam)))
        train_all([j[:3] for j in still_to_train(jobs, results / "tune.csv")], n_jobs)
        for cfg, _, rd, key, var in jobs:
            rows += scored(results / "tune.csv", key, cfg, rd, *opened(d, "tune.json"), TUNE_VAL, var)
        log(f"tuned {fam}")
    return pd.DataFrame(rows)


def choose(tune: pd.DataFrame, method: str, families: list[str]) -> tuple[int, str] | None:
    """The (candidate, variant) with the best mean rank over ``families``' validation scores, among those that
    collapsed on none of them (below half the best setting's score on a family). Scores within ``MARGIN`` of
    each other rank as equal, and a tie goes to the defaults."""
    t = tune[(tune.method == method) & tune.family.isin(families)]
    if t.empty:
        return None
    wide = t.pivot_table(index=["candidate", "localise"], columns="family", values=METRIC)
    wide = wide.dropna()
    if wide.empty:
        return None
    ok = (wide >= 0.5 * wide.max(axis=0)).all(axis=1)
    # Rank with a margin: a setting's rank on a family is 1 + the number of settings more than MARGIN above
    # it there, so that differences within a validation set's noise do not decide (otherwise a variant a
    # tenth of a point ahead on every family wins every rank and is adopted for nothing).
    vals = wide.to_numpy()
    per_family = 1 + (vals[None, :, :] > vals[:, None, :] + MARGIN).sum(axis=1)  # (settings, families)
    ranks = pd.Series(per_family.mean(axis=1), index=wide.index)
    pool = ranks[ok] if ok.any() else ranks
    # Ties (e.g. the attention variant of a method without attention, which is its default) go to the lower
    # candidate and the earlier variant of LOCALISE: the defaults where nothing is gained.
    order = {name: i for i, name in enumerate(LOCALISE)}
    k, loc = min(pool.index, key=lambda kl: (round(float(pool[kl]), 9), kl[0], order.get(kl[1], len(order))))
    return int(k), str(loc)


def stage_select(tune: pd.DataFrame, families, methods) -> dict:
    choices = {}
    for m in methods:
        choices[m] = {"all": choose(tune, m, families)}
        for h in families:
            choices[m][h] = choose(tune, m, [f for f in families if f != h])
    return choices


def in_preset_order(families) -> list[str]:
    """``families``, the presets first in their order (THUMOS14's, then ActivityNet's), then any other sorted."""
    have = set(families)
    return [f for f in PRESETS if f in have] + sorted(have - set(PRESETS))


def tuned_families(tune: pd.DataFrame) -> list[str]:
    """The families of ``tune``, in preset order. Leave-one-family-out runs over all of them, whichever
    families a call of the final stage runs: the choice for a family is made on every other one."""
    return in_preset_order(tune.family)


def held_out_choice(choices: dict, method: str, family: str) -> tuple[int, str]:
    """The setting ``family`` is judged with: the one chosen without it; for a family never tuned (held out
    already), the one chosen on every tuned family; the defaults where nothing was tuned."""
    c = choices[method]
    return c.get(family, c["all"]) or (0, "default")


def stage_final(out: Path, results: Path, families, methods, choices: dict, seeds, n_jobs: int,
                fixed: bool = False) -> pd.DataFrame:
    """Each family with the setting chosen without it (or, ``fixed``, every method's current defaults). Family
    by family, so that an interrupted study leaves whole families done."""
    rows = []
    for fam in families:
        jobs, locs = [], []
        for seed in seeds:
            d = family_data(out, fam, seed)
            inputs = Inputs(str(d / "untrimmed.h5"), str(d / "annotations.json"), None, str(d / "trimmed.h5"))
            for m in methods:
                k, loc = (0, "default") if fixed else held_out_choice(choices, m, fam)
                key = {"family": fam, "seed": seed, "method": m, "candidate": k}
                jobs.append((config(m, k, seed), inputs, out / "final" / f"{fam}-s{seed}" / f"{m}-c{k}", key,
                             variants(fam)))
                locs.append(loc)
        train_all([j[:3] for j in still_to_train(jobs, results / "final.csv")], n_jobs)
        for (cfg, _, rd, key, var), loc in zip(jobs, locs):
            store, ann = opened(out / "data" / f"{fam}-s{key['seed']}", "annotations.json")
            got = scored(results / "final.csv", key, cfg, rd, store, ann, test_subset(ann), var)
            rows += [r for r in got if r["localise"] == loc]
    return pd.DataFrame(rows)


def current(rows: pd.DataFrame, seeded: bool = True) -> pd.DataFrame:
    """The rows scored with today's settings: where a row names its settings digest (``scored`` writes it), those
    whose digest is the one ``config`` and ``variants`` give today (training seed 0 for the tuning stage, not
    ``seeded``); an older digest was scored with settings since changed, and order in the file says nothing (a
    setting changed and changed back is cached under its first rows). Rows without a digest: the last of a key."""
    keys = ["family", "seed", "method", "candidate", "localise"] if seeded else \
        ["family", "method", "candidate", "localise"]
    if "settings" not in rows.columns or rows.empty:
        return rows.drop_duplicates(keys, keep="last")

    @functools.lru_cache(maxsize=None)
    def today(method, k, seed, family):
        return digest(config(method, k, seed), variants(family))

    seeds = rows.seed if seeded else pd.Series(0, index=rows.index)
    want = [today(m, int(k), int(sd), f) for m, k, sd, f in zip(rows.method, rows.candidate, seeds, rows.family)]
    return rows[rows.settings == pd.Series(want, index=rows.index)].drop_duplicates(keys, keep="last")


def per_family(final: pd.DataFrame, method: str, setting, choices: dict | None, seeds) -> pd.Series:
    """Test score (METRIC, %) of ``method`` per family, mean over ``seeds``: with ``setting`` (candidate,
    variant), or, where ``setting`` is None, the setting ``choices`` made without each family. A family
    without a score on every one of ``seeds`` is left out. ``final``: rows of today's settings (``current``)."""
    f = final[(final.method == method) & final.seed.isin(seeds)]
    out = {}
    for fam, rows in f.groupby("family"):
        k, loc = setting if setting is not None else held_out_choice(choices, method, fam)
        got = rows[(rows.candidate == k) & (rows.localise == loc)].dropna(subset=[METRIC])
        if set(got.seed) >= set(seeds):
            out[fam] = float(got[METRIC].mean()) * 100
    return pd.Series(out, dtype=float)


# Score differences below this (percent) are float noise in the adoption rule's comparisons.
TOL = 1e-6


# A family where a method's defaults score within this many points (%) of random scores is at the floor for it:
# nothing there to collapse from, so the adoption rule's worst-family and mean-pooling tests leave it out.
FLOOR_MARGIN = 2.0


def adoption(final: pd.DataFrame, choices: dict, methods, seeds=(0, 1, 2),
             floor: pd.Series | None = None) -> pd.DataFrame:
    """Each method's defaults against the settings the protocol chose, on the test videos of the families where
    both, and Two-Stream (mean pooling) as well, have every seed, each family judged with the choice made
    without it; and the verdict of the rule fixed before the final stage was run: adopt the choice made over
    every family (``choices[m]["all"]``) where, on those test videos, its family mean is at or above the
    defaults', its worst family at most a point below theirs, and it is below mean pooling (Two-Stream as
    adopted) on no family where the defaults are at or above it. A method whose choice is its defaults keeps
    them. ``choices`` must hold Two-Stream's: it is every method's reference, whatever ``methods`` says.
    ``floor``: random scores' test score per family (%); where a method's defaults are within ``FLOOR_MARGIN``
    of it, the family counts in the means only."""
    if "two-stream" not in choices:
        raise ValueError("adoption needs Two-Stream's choices: mean pooling is every method's reference")
    def sides(m):
        return per_family(final, m, (0, "default"), None, seeds), per_family(final, m, None, choices, seeds)

    ts_d, ts_c = sides("two-stream")
    rows, pooling = [], None
    for m in ["two-stream", *[m for m in methods if m != "two-stream"]]:  # Two-Stream first: the reference
        d, c = sides(m)
        fams = in_preset_order(set(d.index) & set(c.index) & set(ts_d.index) & set(ts_c.index))
        if not fams:
            continue
        d, c = d[fams], c[fams]
        live = [f for f in fams if floor is None or f not in floor.index or d[f] > floor[f] + FLOOR_MARGIN]
        below = [f for f in live if pooling is not None and c[f] < pooling[f] - TOL and pooling[f] <= d[f] + TOL]
        k, loc = choices[m]["all"] or (0, "default")
        same = (k, loc) == (0, "default")
        worst_ok = not live or c[live].min() >= d[live].min() - 1 - TOL
        ok = not same and c.mean() >= d.mean() - TOL and worst_ok and not below
        rows.append({"method": m, "setting": f"c{k}" + ("" if loc == "default" else f", {loc}"),
                     "families": len(fams), "defaults": d.mean(), "choice": c.mean(),
                     "defaults worst": d[live].min() if live else float("nan"),
                     "choice worst": c[live].min() if live else float("nan"), "at the floor": len(fams) - len(live),
                     "below mean pooling": ", ".join(below),
                     "verdict": "defaults" if same else ("adopt" if ok else "keep the defaults")})
        if m == "two-stream":
            pooling = c if ok else d
    frame = pd.DataFrame(rows).set_index("method") if rows else pd.DataFrame()
    return frame.loc[[m for m in frame.index if m in methods]] if len(frame) else frame


def random_floor(out: Path, families, seeds) -> pd.DataFrame:
    """The random-scores row of each family's test set, as compare-methods computes it."""
    rows = []
    for fam in families:
        for seed in seeds:
            d = out / "data" / f"{fam}-s{seed}"
            if not d.exists():
                continue
            store, ann = opened(d, "annotations.json")
            dcfg = DetectConfig(**(variants(fam)["default"] or {}))  # --smooth on ActivityNet's structure
            rows.append({"family": fam, "seed": seed, "method": "random scores",
                         **random_row(store, ann.select(test_subset(ann)), ann.classes(), seed, dcfg)})
    return pd.DataFrame(rows)


def table(final: pd.DataFrame, metric: str = METRIC) -> pd.DataFrame:
    """method x family: mean ± std over seeds (percent), with the family average and the worst family; in bold,
    a method's mean below Two-Stream's (mean pooling) on that family."""
    g = final.groupby(["method", "family"])[metric]
    mean, std = g.mean().unstack() * 100, g.std(ddof=0).unstack() * 100
    families = [f for f in PRESETS if f in mean.columns]  # the presets' order: THUMOS14's, then ActivityNet's
    mean, std = mean[families], std[families]
    cells = mean.round(1).astype(str)
    if g.count().max() > 1:  # one seed has no spread to show
        cells = cells + " ± " + std.round(1).astype(str)
    cells = cells.where(mean.notna(), "")
    if "two-stream" in mean.index:  # bold: below mean pooling's mean on that family (issue 31's bound)
        below = mean.lt(mean.loc["two-stream"], axis=1) & ~mean.index.isin(["random scores"])[:, None]
        cells = cells.where(~below, "**" + cells + "**")
    fam_mean = mean.mean(axis=1)
    cells["family mean"] = fam_mean.round(1).astype(str)
    cells["worst family"] = mean.min(axis=1).round(1).astype(str)
    order = [m for m in ["random scores", *REGISTRY] if m in cells.index]
    return cells.loc[order]


def markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join([frame.index.name or "", *map(str, frame.columns)]) + " |"
    rule = "|" + "---|" * (len(frame.columns) + 1)
    body = ["| " + " | ".join([str(i), *map(str, r)]) + " |" for i, r in zip(frame.index, frame.values)]
    return "\n".join([head, rule, *body])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--families", default=",".join(PRESETS))
    ap.add_argument("--methods", default=",".join(CANDIDATES))
    ap.add_argument("--stage", choices=["screen", "tune", "select", "final", "report", "all"], default="all")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--results", type=Path, help="Folder of the scored rows (tune.csv, final.csv), kept across "
                    "sessions; default OUT. The project's: benchmarks/results/protocol.")
    ap.add_argument("--score-only", action="store_true", help="Train nothing; score and tabulate the runs done.")
    ap.add_argument("--smoke", action="store_true", help="10 videos per subset, 32-d, 40 steps: a quick end-to-end try.")
    a = ap.parse_args(argv)
    global SCORE_ONLY, SMOKE
    SCORE_ONLY = a.score_only
    if a.smoke:
        SMOKE = {"data": {"max_videos": 10, "dim": 32, "trimmed_per_class": 2},
                 "train": {"steps": 40, "epochs": 0, "pretrain_steps": 10}}
    families = [f for f in a.families.split(",") if f]
    methods = [m for m in a.methods.split(",") if m]
    for m in methods:
        method_class(m)
        if m not in CANDIDATES:
            ap.error(f"{m} has no candidates in CANDIDATES")
    seeds = [int(s) for s in a.seeds.split(",")]
    a.out.mkdir(parents=True, exist_ok=True)
    results = a.results or a.out
    results.mkdir(parents=True, exist_ok=True)
    if a.stage == "screen":
        # Every method with its current defaults on every family's test videos: where the defaults fail.
        final = stage_final(a.out, results, families, methods, {}, seeds, a.jobs, fixed=True)
        final = pd.concat([random_floor(a.out, families, seeds), final], ignore_index=True)
        final.to_csv(a.out / "screen.csv", index=False)
        print(markdown(table(final)))
        print(markdown(table(final, "mAP@0.5")))
        return
    if a.stage in ("tune", "all"):
        stage_tune(a.out, results, families, methods, a.jobs)
    if a.stage in ("select", "final", "report", "all"):
        if not (results / "tune.csv").exists():
            ap.error(f"{results / 'tune.csv'}: no tuning stage scored yet; run --stage tune first")
        tune = current(pd.read_csv(results / "tune.csv"), seeded=False)
        tuned = tuned_families(tune)  # not --families: a final stage run a few families at a time chooses alike
        choices = stage_select(tune, tuned, methods)
        (a.out / "choices.json").write_text(json.dumps(choices, indent=1))
        for m, c in choices.items():
            print(f"{m}: chosen over all families {c['all']}; leave-one-out " +
                  ", ".join(f"{h}: {c[h]}" for h in tuned))
    if a.stage in ("final", "all"):
        final = stage_final(a.out, results, families, methods, choices, seeds, a.jobs)
        final = pd.concat([random_floor(a.out, families, seeds), final], ignore_index=True)
        final.to_csv(a.out / "final-table.csv", index=False)
    if a.stage in ("final", "report", "all") and (results / "final.csv").exists():
        # Defaults against the protocol's choices on the test videos, and the adoption rule's verdict; Two-Stream's
        # choices are every method's reference.
        if "two-stream" not in choices:
            choices = {**choices, **stage_select(tune, tuned, ["two-stream"])}
        final = current(pd.read_csv(results / "final.csv"))
        floor = random_floor(a.out, sorted(set(final.family)), seeds)
        floor = floor.groupby("family")[METRIC].mean() * 100 if len(floor) else None
        verdict = adoption(final, choices, methods, seeds, floor)
        print(markdown(verdict.round(1)))
        for m in [m for m in methods if m not in verdict.index]:
            print(f"{m}: no family has its defaults', its choice's and Two-Stream's rows on every seed under "
                  "today's settings (not run yet, or a default changed since they were scored)")
    if a.stage in ("final", "report", "all") and (a.out / "final-table.csv").exists():
        final = pd.read_csv(a.out / "final-table.csv")
        print(markdown(table(final)))
        print(markdown(table(final, "mAP@0.5")))


if __name__ == "__main__":
    main()
