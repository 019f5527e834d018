"""Training: the schedule of epochs and the loop that runs it, resumable from the run directory's checkpoint.

The schedule is a list of epochs, each of one stage: ``trimmed`` (the trimmed
network alone, L_class on trimmed clips), ``overlap`` (ActivityNet recipe:
untrimmed videos of classes shared with the trimmed set) and ``main``. A
checkpoint records how many epochs are done; a restarted run skips them.
"""
from __future__ import annotations

import contextlib
import functools
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from tsrnet.data.format.batching import TrimmedDataset, VideoDataset, ahead, collate
from tsrnet.data.core.progress import progress_bar
from tsrnet.data.core.devices import native_bf16, resolve_device, use_cpu_threads
from tsrnet.data.core.errors import DataError
from tsrnet.data.core.io import undone_on_failure
from tsrnet.data.format.store import STREAMS

from . import rundir
from .config import PRECISIONS, Config
from .data import Inputs, TrainData
from .methods import MethodModule, method_class


def build_model(cfg: Config, classes, dim: int, streams=STREAMS) -> MethodModule:
    """The method's module, with the method unit that built it as ``model.method`` (``detect`` localises with it)."""
    return cfg.make_method().module(streams, dim, classes)


FLOW_PREFIX = "nets.flow."


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


def train_precision(requested: str, device: torch.device, method: str) -> str:
    """``--precision`` resolved for a new run: ``auto`` is bf16 for a method that prefers it
    (``Method.prefers_bf16``) on a device that computes in bf16, fp32 otherwise; fp32 and bf16 stay as given.
    (A resumed ``auto`` run keeps its own: :meth:`Trainer.try_resume`.)"""
    if requested not in PRECISIONS:
        raise DataError(f"precision {requested!r} is not one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    return "bf16" if method_class(method).prefers_bf16 and native_bf16(device) else "fp32"


class Trainer:
    def __init__(self, cfg: Config, data: TrainData, run_dir: Path, progress: bool = True, log=print):
        self.device = resolve_device(cfg.train.device)
        use_cpu_threads(cfg.train.threads, self.device)
        self.auto_precision = cfg.train.precision == "auto"
        precision = train_precision(cfg.train.precision, self.device, cfg.method)
        if precision != cfg.train.precision:
            cfg = cfg.replace("train", precision=precision)  # recorded as chosen
        if precision == "bf16" and not native_bf16(self.device):
            log(f"warning: --precision bf16 on {self.device}, which does not compute in bf16: every operand is "
                "converted to float32 and back, slower than fp32")
        self.cfg, self.data, self.run_dir, self.progress, self.log = cfg, data, Path(run_dir), progress, log
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
        return rundir.checkpoint_path(self.run_dir)

    def write_metadata(self, status: str) -> None:
        rundir.write_metadata(self.run_dir, self.cfg, self.data.classes, self.data.run_info, status,
                              self.epochs_done, len(self.stages))

    def save_checkpoint(self) -> None:
        rundir.write_checkpoint(self.run_dir, model=self.model, optim=self.optim, cfg=self.cfg,
                                classes=self.data.classes, fingerprint=self.data.run_info["fingerprint"],
                                stages=self.stages, epochs_done=self.epochs_done, history=self.history)

    def try_resume(self) -> bool:
        """Continue from ``checkpoint.pt`` if it belongs to this configuration and data."""
        # An auto precision resumes in the run's own, so that a run continued on other hardware (or begun before
        # the setting existed: fp32) computes as it began.
        adopt = ("precision",) if self.auto_precision else ()
        state = rundir.resume_state(self.run_dir, self.cfg, self.data.classes, self.data.run_info["fingerprint"],
                                    self.device, adopt)
        if state is None:
            return False
        if adopt:
            self.cfg = self.cfg.replace("train", precision=Config.from_dict(state["config"]).train.precision)
            if self.cfg.train.precision == "bf16" and not native_bf16(self.device):
                self.log(f"warning: {self.run_dir} trains in bf16, which {self.device} does not compute in: slower "
                         "than fp32 here (--precision fp32 --overwrite starts it again in fp32)")
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

    def _autocast(self):
        """The forward pass and loss in the run's precision; the backward pass follows it, the weights and the
        optimiser stay float32 (bf16 keeps float32's range, so no loss scaling is needed)."""
        if self.cfg.train.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

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
            with self._autocast():
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
        if self.auto_precision and self.cfg.train.precision == "bf16" and self.epochs_done < len(self.stages):
            self.log(f"{self.cfg.method}: training in bf16 autocast on {self.device} (--precision fp32 to compute "
                     "in float32)")
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


def train_run(cfg: Config, inputs: Inputs, run_dir=None, overwrite: bool = False, progress: bool = True,
              log=print) -> Path:
    """Train ``cfg``'s method on ``inputs`` into ``run_dir`` (default: runs/<method>-<time>), resuming the run
    there unless ``overwrite``; returns the run directory."""
    data = inputs.prepare(cfg)
    run_dir = Path(run_dir) if run_dir else rundir.default_run_dir(cfg.method)
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
