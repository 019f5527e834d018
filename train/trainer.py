"""Training: resolve labels and classes, build the batches, run the schedule, checkpoint.

A run directory holds everything ``detect`` needs and everything needed to
resume::

    RUN_DIR/config.json      the resolved configuration (train.config.Config)
    RUN_DIR/classes.json     the class list, in classifier order
    RUN_DIR/run.json         stores, fingerprints, subsets, progress
    RUN_DIR/checkpoint.pt    model + optimiser + progress (written atomically)
    RUN_DIR/loss_log.csv     per-epoch mean of every loss term

The schedule is a list of epochs, each of one stage: ``trimmed`` (the trimmed
network alone, L_class on trimmed clips), ``overlap`` (ActivityNet recipe:
untrimmed videos of classes shared with the trimmed set) and ``main``. A
checkpoint records how many epochs are done; a restarted run skips them.
"""
from __future__ import annotations

import csv
import functools
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from tsrnet.data.annotations import Annotations
from tsrnet.data.batching import TrimmedDataset, TrimmedPool, VideoDataset, ahead, collate
from tsrnet.data.cliutil import progress_bar
from tsrnet.data.errors import DataError
from tsrnet.data.ground_truth import load_annotations
from tsrnet.data.io import atomic_path, undone_on_failure, write_json
from tsrnet.data.store import STREAMS, FeatureStore
from tsrnet.data.subsets import train_subset_by_convention

from .config import Config
from .methods import method_class
from .methods import MethodModule

EVAL_SUBSET_PREFERENCE = ("test", "validation", "val", "testing")


def normalise_class_name(name: str) -> str:
    """Class names are matched across datasets ignoring case, spaces, '_' and '-' ("High jump" == "HighJump")."""
    return re.sub(r"[\s_\-]+", "", name).lower()


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device {spec!r} requested but no CUDA device is available (use --device cpu)")
    return dev


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

    features: str
    annotations: str | None = None
    subset: str | None = None
    trimmed: str | None = None  # read only by methods that transfer from trimmed clips
    trimmed_annotations: str | None = None

    def prepare(self, cfg: Config) -> TrainData:
        return prepare_data(cfg, self.features, self.annotations, self.subset, self.trimmed, self.trimmed_annotations)


def build_model(cfg: Config, classes, dim: int, streams=STREAMS) -> MethodModule:
    """The method's module, with the method unit that built it as ``model.method`` (``detect`` localises with it)."""
    return cfg.make_method().module(streams, dim, classes)


FLOW_PREFIX = "nets.flow."


def _first_difference(recorded: dict, now: dict) -> str:
    """The first setting that changes what training computes in which two ``Config.result_dict()`` differ, as
    ``section.name: run's → now``.

    The ``detect`` section is left out: it only records the localisation ``detect`` uses by default, so a run
    trained when other localisation defaults held is still the same training (and is resumed or reused).
    """
    if recorded.get("method") != now.get("method"):
        return f"method: {recorded.get('method')} in the run, {now.get('method')} now"
    for section in ("options", "train"):
        a, b = recorded.get(section, {}), now.get(section, {})
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return f"{section}.{k}: {a.get(k)!r} in the run, {b.get(k)!r} now"
    return ""


def build_optimizer(model: MethodModule, cfg: Config) -> torch.optim.Optimizer:
    """Adam over every parameter of the module: those under ``nets.flow.`` at ``--lr-flow``, the rest at ``--lr``.

    Grouping by name rather than by known sub-modules means a layer a method
    adds anywhere is trained, never silently left at its initial values.

    The fused implementation updates each parameter in one vectorised pass; the default single-tensor
    one runs about ten elementwise passes per parameter, which on a CPU took longer than the forward and
    backward of a step (bench_train.py).
    """
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not n.startswith(FLOW_PREFIX)], "lr": cfg.train.lr},
              {"params": [p for n, p in named if n.startswith(FLOW_PREFIX)], "lr": cfg.train.lr_flow}]
    return torch.optim.Adam([g for g in groups if g["params"]], weight_decay=cfg.train.weight_decay, fused=True)


def epochs_for(steps: int, n_items: int, batch_size: int) -> int:
    """Whole epochs covering at least ``steps`` steps of ``batch_size`` over ``n_items``."""
    if steps <= 0 or n_items == 0:
        return 0
    per_epoch = -(-n_items // batch_size)
    return -(-steps // per_epoch)


def schedule(cfg: Config, data: TrainData, n_overlap: int = 0) -> list[str]:
    """The stage of each epoch, in order."""
    method = method_class(cfg.method)
    t, bs = cfg.train, cfg.train.batch_size
    stages = []
    if method.uses_trimmed and data.trimmed_pool is not None:
        stages += ["trimmed"] * epochs_for(t.pretrain_steps, len(data.trimmed_pool.ids), bs)
        stages += ["overlap"] * epochs_for(t.overlap_pretrain_steps, n_overlap, bs)
    stages += ["main"] * (t.epochs if t.epochs > 0 else epochs_for(t.steps, len(data.untrimmed.ids), bs))
    return stages


class Trainer:
    def __init__(self, cfg: Config, data: TrainData, run_dir: Path, progress: bool = True, log=print):
        self.cfg, self.data, self.run_dir, self.progress, self.log = cfg, data, Path(run_dir), progress, log
        self.device = resolve_device(cfg.train.device)
        torch.manual_seed(cfg.train.seed)
        streams = tuple(data.run_info["streams"])
        self.model = build_model(cfg, data.classes, data.untrimmed.store.feature_dim, streams).to(self.device)
        self.method = self.model.method
        self.optim = build_optimizer(self.model, cfg)
        self.base_lrs = [g["lr"] for g in self.optim.param_groups]
        self.epochs_done = 0
        self.history: list[dict] = []
        u = data.untrimmed
        sampler = self.method.sampler()
        self.main_set = VideoDataset(u.store, u.ids, data.targets, streams, sampler, True,
                                     cfg.train.seed, data.trimmed_pool)
        self.overlap_set = None
        self.trimmed_set = None
        if data.trimmed_pool is not None:
            shared = sorted(data.trimmed_pool.classes())
            rows = np.nonzero(data.targets[:, shared].any(axis=1))[0]
            self.overlap_set = VideoDataset(u.store, [u.ids[i] for i in rows], data.targets[rows], streams,
                                            sampler, True, cfg.train.seed, data.trimmed_pool)
            self.trimmed_set = TrimmedDataset(data.trimmed_pool, cfg.train.seed)
        self.stages = schedule(cfg, data, len(self.overlap_set) if self.overlap_set is not None else 0)

    # -- run directory ------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def write_metadata(self, status: str) -> None:
        write_json(self.run_dir / "config.json", self.cfg.to_dict())
        write_json(self.run_dir / "classes.json", self.data.classes)
        info = dict(self.data.run_info, model=self.cfg.method, status=status,
                    epochs_done=self.epochs_done, epochs_total=len(self.stages))
        write_json(self.run_dir / "run.json", info)

    def save_checkpoint(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "optim": self.optim.state_dict(),
            "epochs_done": self.epochs_done,
            "stages": self.stages,
            "config": self.cfg.to_dict(),
            "classes": self.data.classes,
            "fingerprint": self.data.run_info["fingerprint"],
            "history": self.history,
        }
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(state, tmp)
        with atomic_path(self.run_dir / "loss_log.csv") as tmp:
            keys = sorted({k for h in self.history for k in h})
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=keys)
                w.writeheader()
                w.writerows(self.history)

    def try_resume(self) -> bool:
        """Continue from ``checkpoint.pt`` if it belongs to this configuration and data."""
        if not self.checkpoint_path.exists():
            return False
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        recorded = Config.from_dict(state["config"], self.checkpoint_path).result_dict()
        differ = _first_difference(recorded, self.cfg.result_dict())
        if differ:
            # Name the setting: after a change of defaults this is how a user learns what to pass.
            raise DataError(f"run directory holds a checkpoint of another configuration ({differ}); give the "
                            "run's setting, another --out or --overwrite", self.run_dir)
        if state["classes"] != self.data.classes:
            raise DataError("run directory holds a checkpoint of another class list; use another --out or "
                            "--overwrite", self.run_dir)
        if state["fingerprint"] != self.data.run_info["fingerprint"]:
            raise DataError("run directory was trained on another feature store; use another --out or "
                            "--overwrite", self.run_dir)
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.epochs_done = int(state["epochs_done"])
        self.history = list(state.get("history", []))
        return True

    # -- loop ----------------------------------------------------------------
    def _loader(self, dataset, epoch: int) -> DataLoader:
        dataset.set_epoch(epoch)
        g = torch.Generator().manual_seed(self.cfg.train.seed * 100003 + epoch)
        bs = self.cfg.train.batch_size
        gpu = self.device.type == "cuda"
        return DataLoader(dataset, batch_size=bs, shuffle=True, generator=g,
                          collate_fn=functools.partial(collate, keep_dtype=gpu),
                          num_workers=self.cfg.train.workers, pin_memory=gpu)

    def run_epoch(self, epoch: int, stage: str) -> dict:
        self.model.train()
        # Dropout draws from torch's global generator; seeding it per epoch makes a resumed run
        # identical to an uninterrupted one.
        torch.manual_seed(self.cfg.train.seed * 1_000_003 + epoch)
        # The method's schedule within the stage: it may switch terms on and scale the learning rates.
        # Set from the epoch index every epoch, so a resumed run follows the same schedule.
        scale = self.method.epoch_start(stage, self.stages[:epoch].count(stage), self.stages.count(stage))
        for g, lr in zip(self.optim.param_groups, self.base_lrs):
            g["lr"] = lr * scale
        dataset = {"trimmed": self.trimmed_set, "overlap": self.overlap_set, "main": self.main_set}[stage]
        sums: dict[str, float] = {}
        n = 0
        t0 = time.perf_counter()
        loader = self._loader(dataset, epoch)
        # On a GPU the next batch is sampled, collated and pinned in a thread while the current step runs
        # (the step would otherwise wait for it); on a CPU that thread would take a core from the step.
        for batch in (ahead(loader) if self.device.type == "cuda" else loader):
            batch = batch.to(self.device)
            loss, parts = self.method.loss(self.model, batch, stage)
            self.optim.zero_grad(set_to_none=True)
            loss.backward()
            self.optim.step()
            n += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        row = {k: v / max(n, 1) for k, v in sums.items()}
        row.update(epoch=epoch + 1, stage=stage, seconds=round(time.perf_counter() - t0, 3))
        return row

    def fit(self) -> Path:
        """Train (or resume) to the end of the schedule; returns the run directory.

        A run that fails before its first checkpoint has nothing to resume, so
        what this call created in the run directory is removed again (the
        folder itself too when this call made it); once a checkpoint exists,
        the folder is a run and stays, whatever happens.
        """
        with undone_on_failure(self.run_dir, keep=self.checkpoint_path.exists):
            return self._fit()

    def _fit(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resumed = self.try_resume()
        if resumed:
            self.log(f"resuming {self.run_dir} at epoch {self.epochs_done}/{len(self.stages)}")
        self.write_metadata("running")
        bar = progress_bar(total=len(self.stages), initial=self.epochs_done, desc=f"train {self.cfg.method}",
                       unit="epoch", disable=not self.progress, leave=False)
        last_save = time.monotonic()
        for epoch in range(self.epochs_done, len(self.stages)):
            row = self.run_epoch(epoch, self.stages[epoch])
            self.history.append(row)
            self.epochs_done = epoch + 1
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", stage=row["stage"])
            due = time.monotonic() - last_save >= self.cfg.train.checkpoint_seconds
            if due or self.epochs_done == len(self.stages):
                self.save_checkpoint()
                last_save = time.monotonic()
        bar.close()
        if not self.checkpoint_path.exists():  # a schedule of zero epochs
            self.save_checkpoint()
        self.write_metadata("finished")
        for warning in self.method.diagnose(self.history):
            self.log(f"warning: {self.run_dir}: {warning}")
        return self.run_dir


def load_run(run_dir: str | Path, device: str = "auto") -> tuple[MethodModule, Config, dict]:
    """Model (eval mode), config and run info of a finished or interrupted run."""
    run_dir = Path(run_dir)
    ck = run_dir / "checkpoint.pt"
    if not ck.exists():
        raise DataError("no checkpoint.pt here: not a training run, or training has not finished an epoch", run_dir)
    state = torch.load(ck, map_location="cpu", weights_only=False)
    cfg = Config.from_dict(state["config"], ck)
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    if "feature_dim" not in info:
        raise DataError("run.json does not record feature_dim; retrain this run with the current train-tsr", run_dir)
    model = build_model(cfg, state["classes"], int(info["feature_dim"]), info.get("streams", STREAMS))
    model.load_state_dict(state["model"])
    model.to(resolve_device(device)).eval()
    info.setdefault("classes", state["classes"])
    return model, cfg, info


def latest_run(root: str | Path = "runs") -> Path:
    root = Path(root)
    runs = sorted(root.glob("*/run.json"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not runs:
        raise DataError("no training run found; train one with train-tsr or pass --run RUN_DIR", root)
    return runs[-1].parent


def default_run_dir(method: str) -> Path:
    return Path("runs") / f"{method}-{time.strftime('%Y%m%d-%H%M%S')}"


def train_run(cfg: Config, inputs: Inputs, run_dir=None, overwrite: bool = False, progress: bool = True,
              log=print) -> Path:
    """Train ``cfg``'s method on ``inputs`` into ``run_dir`` (default: runs/<method>-<time>), resuming the run
    there unless ``overwrite``; returns the run directory."""
    data = inputs.prepare(cfg)
    run_dir = Path(run_dir) if run_dir else default_run_dir(cfg.method)
    info = data.run_info
    which = "all videos" if info["train_subset"] is None else f"subset {info['train_subset']!r}"
    log(f"{cfg.method}: {info['n_train_videos']} untrimmed training videos ({which}: "
        f"{info['train_subset_reason']}), {len(data.classes)} classes"
        + (f", {info['n_trimmed_clips']} trimmed clips of {len(info['overlapping_classes'])} shared classes"
           f" ({info['n_trimmed_ignored']} of other classes ignored)" if "n_trimmed_clips" in info else ""))
    trainer = Trainer(cfg, data, run_dir, progress=progress, log=log)
    # Only now, with inputs, device and model checked, is the old run worth giving up.
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    trainer.fit()
    return run_dir
