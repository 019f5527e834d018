"""The run directory: what ``train-tsr`` writes, what resuming checks, what ``detect`` and ``compare-methods`` read.

One folder holds everything ``detect`` needs and everything needed to resume::

    RUN_DIR/config.json      the resolved configuration (train.config.Config)
    RUN_DIR/classes.json     the class list, in classifier order
    RUN_DIR/run.json         stores, fingerprints, subsets, progress
    RUN_DIR/checkpoint.pt    model + optimiser + progress (written atomically)
    RUN_DIR/loss_log.csv     per-epoch mean of every loss term

Its format lives here, apart from the training loop, so that the readers
(``load_run``) and the writer agree in one place.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import torch

from tsrnet.data.core.devices import resolve_device
from tsrnet.data.core.errors import DataError
from tsrnet.data.core.io import atomic_path, write_json
from tsrnet.data.format.store import STREAMS

from .config import Config
from .methods import MethodModule

RUNS = "runs"  # where runs go, and where detect looks for the latest, unless told otherwise
LOSS_LOG = "loss_log.csv"


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoint.pt"


def default_run_dir(method: str) -> Path:
    return Path(RUNS) / f"{method}-{time.strftime('%Y%m%d-%H%M%S')}"


def write_metadata(run_dir: Path, cfg: Config, classes: list[str], run_info: dict, status: str, epochs_done: int,
                   epochs_total: int) -> None:
    """``config.json``, ``classes.json`` and ``run.json`` (``run_info`` with the progress)."""
    write_json(run_dir / "config.json", cfg.to_dict())
    write_json(run_dir / "classes.json", classes)
    info = dict(run_info, model=cfg.method, status=status, epochs_done=epochs_done, epochs_total=epochs_total)
    write_json(run_dir / "run.json", info)


def write_checkpoint(run_dir: Path, *, model: MethodModule, optim: torch.optim.Optimizer, cfg: Config,
                     classes: list[str], fingerprint: str, stages: list[str], epochs_done: int,
                     history: list[dict]) -> None:
    """``checkpoint.pt`` and ``loss_log.csv`` (one row per epoch in ``history``), each written atomically."""
    state = {
        "model": model.state_dict(),
        "optim": optim.state_dict(),
        "epochs_done": epochs_done,
        "stages": stages,
        "config": cfg.to_dict(),
        "classes": classes,
        "fingerprint": fingerprint,
        "history": history,
    }
    with atomic_path(checkpoint_path(run_dir)) as tmp:
        torch.save(state, tmp)
    with atomic_path(run_dir / LOSS_LOG) as tmp:
        keys = sorted({k for h in history for k in h})
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(history)


def resume_state(run_dir: Path, cfg: Config, classes: list[str], fingerprint: str, device,
                 adopt: tuple[str, ...] = ()) -> dict | None:
    """The checkpoint in ``run_dir`` (``None`` when there is none), refused unless it belongs to this
    configuration, class list and feature store. ``adopt``: training settings taken from the run whatever
    ``cfg`` says (a ``--precision auto`` resumes in the precision the run began with)."""
    path = checkpoint_path(run_dir)
    if not path.exists():
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    run_cfg = Config.from_dict(state["config"], path)
    if adopt:
        cfg = cfg.replace("train", **{k: getattr(run_cfg.train, k) for k in adopt})
    differ = _first_difference(run_cfg.result_dict(), cfg.result_dict())
    if differ:
        # Name the setting: after a change of defaults this is how a user learns what to pass.
        raise DataError(f"run directory holds a checkpoint of another configuration ({differ}); give the "
                        "run's setting, another --out or --overwrite", run_dir)
    if state["classes"] != classes:
        raise DataError("run directory holds a checkpoint of another class list; use another --out or "
                        "--overwrite", run_dir)
    if state["fingerprint"] != fingerprint:
        raise DataError("run directory was trained on another feature store; use another --out or "
                        "--overwrite", run_dir)
    return state


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


def load_run(run_dir: str | Path, device: str = "auto") -> tuple[MethodModule, Config, dict]:
    """Model (eval mode), config and run info of a finished or interrupted run."""
    run_dir = Path(run_dir)
    ck = checkpoint_path(run_dir)
    if not ck.exists():
        raise DataError("no checkpoint.pt here: not a training run, or training has not finished an epoch", run_dir)
    state = torch.load(ck, map_location="cpu", weights_only=False)
    cfg = Config.from_dict(state["config"], ck)
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    if "feature_dim" not in info:
        raise DataError("run.json does not record feature_dim; retrain this run with the current train-tsr", run_dir)
    model = cfg.make_method().module(info.get("streams", STREAMS), int(info["feature_dim"]), state["classes"])
    model.load_state_dict(state["model"])
    model.to(resolve_device(device)).eval()
    info.setdefault("classes", state["classes"])
    return model, cfg, info


def run_info(run_dir: str | Path) -> dict:
    """A run's ``run.json`` (its stores, subsets, training videos), read without loading the model."""
    path = Path(run_dir) / "run.json"
    if not path.exists():
        raise DataError("no run.json here: not a training run", run_dir)
    return json.loads(path.read_text())


def latest_run(root: str | Path = RUNS) -> Path:
    root = Path(root)
    runs = sorted(root.glob("*/run.json"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not runs:
        raise DataError("no training run found; train one with train-tsr or pass --run RUN_DIR", root)
    return runs[-1].parent
