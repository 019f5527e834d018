"""The settings of a training run, in one place, with their defaults and why.

A run's configuration is the method's name, the method's own ``Options``
(declared with the method, ``train/methods/``), the shared training
settings (:class:`TrainConfig`) and the localisation settings
(``tsrnet.detect.config.DetectConfig``, starting from the method's
defaults). The command lines build their options from these dataclasses
(``help`` comes from each field's metadata), and every run writes the
resolved values to ``RUN_DIR/config.json``, so a run can be reproduced and
``detect`` rebuilds the same method.

The paper's hyper-parameters (batch 16, SGD momentum 0.9, dropout 0.8, lr
1e-4 RGB / 5e-4 flow divided by 10 every 5,000 iterations) were for
end-to-end fine-tuning of ResNet101. On cached features the network is a few
small layers, so we keep batch 16, the dropout, and the two learning rates'
ratio, and use Adam, which needs no schedule tuning on features. docs/methods/tsrnet.md
says what else departs from the paper, and why.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tsrnet.data.core.errors import DataError
from tsrnet.data.core.settings import is_runtime, opt
from tsrnet.data.core.devices import device_opt, threads_opt
from tsrnet.detect.config import DetectConfig

from .methods import REGISTRY, make_options, method_class

DEFAULT_METHOD = "tsrnet"


PRECISIONS = ("auto", "fp32", "bf16")
_BF16_METHODS = ", ".join(name for name, cls in REGISTRY.items() if cls.prefers_bf16)
_LENGTH = ("steps", "epochs")  # one setting, the length of the main stage, said two ways
_OWN_LENGTH = "; ".join(f"{name}: {', '.join(f'{k} {v}' for k, v in cls.train_defaults.items() if k in _LENGTH)}"
                        for name, cls in REGISTRY.items() if set(cls.train_defaults) & set(_LENGTH))


@dataclass
class TrainConfig:
    steps: int = opt(1500, "Optimisation steps on untrimmed videos; rounded up to whole epochs, so small "
                     "datasets get more epochs (TSRNet's paper counts iterations too).")
    epochs: int = opt(0, "Epochs on untrimmed videos; overrides --steps when positive. A method whose paper counts "
                      f"epochs has its own length ({_OWN_LENGTH}), which --steps or --epochs replaces.")
    pretrain_steps: int = opt(300, "Transfer methods: steps of trimmed-only training (the paper's trimmed network) "
                              "before transfer.")
    batch_size: int = opt(16, "Untrimmed videos per step (the paper's 16); for transfer methods each gets a "
                          "class-matched trimmed clip.")
    lr: float = opt(1e-3, "Adam learning rate of the RGB stream (and of parameters shared by the streams).")
    lr_flow: float = opt(1e-3, "Adam learning rate of the flow stream.")
    weight_decay: float = opt(5e-4, "Adam weight decay.")
    overlap_pretrain_steps: int = opt(0, "Transfer methods, ActivityNet recipe: first train this many steps on "
                                      "untrimmed videos of the classes shared with the trimmed set, then refine "
                                      "on all.")
    precision: str = opt("auto", "auto, fp32 or bf16: the arithmetic of the networks in training (bf16 = autocast; "
                         "weights, optimiser and the loss terms of the bf16 methods stay float32). auto: bf16 for "
                         f"the methods whose steps are bound by wide convolutions ({_BF16_METHODS}) where the "
                         "device computes in bf16 (a GPU, a CPU with AVX512-BF16 or AMX), fp32 otherwise; the run "
                         "records what auto chose, and a resumed auto run keeps it.", choices=PRECISIONS)
    seed: int = opt(0, "Random seed for initialisation and sampling.")
    cache_gb: float = opt(4.0, "Keep up to this many GiB of feature rows per store in memory (as stored: float16) "
                          "after their first read, so later epochs skip the file (0 = always read the file; off "
                          "with --workers, whose processes live one epoch).", runtime=True)
    workers: int = opt(0, "Data-loader worker processes (0 = read in the training process).", runtime=True)
    device: str = device_opt(runtime=True)
    threads: int = threads_opt("training", runtime=True)
    checkpoint_seconds: float = opt(30.0, "Write a resumable checkpoint after the first epoch that ends this many "
                                    "seconds after the last one, and at the end: a killed run redoes at most about "
                                    "this much. (Epochs on small sets take milliseconds; a checkpoint per epoch "
                                    "would cost more than the training.)", runtime=True)


@dataclass
class Config:
    method: str = DEFAULT_METHOD
    options: Any = None  # the method's Options dataclass; None = its defaults
    train: TrainConfig = field(default_factory=TrainConfig)
    detect: DetectConfig = None  # None = the method's detection defaults

    def __post_init__(self):
        cls = method_class(self.method)
        if self.options is None:
            self.options = cls.Options()
        elif not isinstance(self.options, cls.Options):
            raise DataError(f"options of type {type(self.options).__name__} given for method {self.method!r}")
        if self.detect is None:
            self.detect = cls.detect_config()

    @classmethod
    def for_method(cls, method: str = DEFAULT_METHOD, options: dict | None = None, train: dict | None = None,
                   detect: dict | None = None) -> "Config":
        """A configuration from plain dicts of the values that differ from the defaults."""
        return cls(method=method, options=make_options(method, options),
                   train=_build(TrainConfig, train_values(method, train), "train"),
                   detect=method_class(method).detect_config(**_checked(DetectConfig, detect, "detect")))

    def make_method(self):
        """The method unit this configuration trains."""
        return method_class(self.method)(self.options)

    def to_dict(self) -> dict:
        return {"method": self.method, "options": dataclasses.asdict(self.options),
                "train": dataclasses.asdict(self.train), "detect": dataclasses.asdict(self.detect)}

    def result_dict(self) -> dict:
        """``to_dict`` without the settings marked ``runtime`` (device, workers, caching,
        checkpoint interval): they change how fast a run goes, not what it computes, so a
        resumed run may change them."""
        d = self.to_dict()
        for f in dataclasses.fields(TrainConfig):
            if is_runtime(f):
                d["train"].pop(f.name)
        return d

    @classmethod
    def from_dict(cls, d: dict, source=None) -> "Config":
        """Rebuild a configuration written by :meth:`to_dict`, refusing keys it does not know."""
        d = dict(d)
        unknown = sorted(set(d) - {"method", "options", "train", "detect"})
        if unknown:
            raise DataError(f"configuration has an unknown section {unknown[0]!r}", source)
        method = d.get("method", DEFAULT_METHOD)
        if method not in REGISTRY:
            raise DataError(f"configuration names method {method!r}, which this version does not have "
                            f"(it has {', '.join(REGISTRY)})", source)
        return cls(method=method, options=make_options(method, d.get("options") or {}, source),
                   train=_build(TrainConfig, d.get("train") or {}, "train", source),
                   detect=DetectConfig(**_checked(DetectConfig, d.get("detect"), "detect", source)))

    def replace(self, section: str, **values) -> "Config":
        """A copy with some values of one section (``options``, ``train`` or ``detect``) changed."""
        new = Config.from_dict(self.to_dict())
        if section not in ("options", "train", "detect"):
            raise DataError(f"configuration has no section {section!r} (options, train, detect)")
        if section == "options":
            new.options = make_options(self.method, {**dataclasses.asdict(new.options), **values})
        else:
            _checked(type(getattr(new, section)), values, section)
            setattr(new, section, dataclasses.replace(getattr(new, section), **values))
        return new


def _checked(kind, values: dict | None, section: str, source=None) -> dict:
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise DataError(f"configuration section {section!r} has no setting {unknown[0]!r}", source)
    return values


def train_values(method: str, given: dict | None) -> dict:
    """The training settings given, over ``method``'s own defaults (``Method.train_defaults``); a length given
    (steps or epochs) replaces the method's length, whichever way each states it."""
    given = dict(given or {})
    own = dict(method_class(method).train_defaults)
    if any(k in given for k in _LENGTH):
        own = {k: v for k, v in own.items() if k not in _LENGTH}
    return {**own, **given}


def _build(kind, values, section: str, source=None):
    return kind(**_checked(kind, values, section, source))
