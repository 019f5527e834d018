"""What a method is: one small unit (module, loss, training sampling, localisation) behind a registry.

Everything else is shared and lives elsewhere: the store reader and batching
(``tsrnet.data``), the trainer loop with checkpoint and resume
(``train/trainer.py``, ``train/rundir.py``), the post-processing and
evaluator (``tsrnet.detect``). A method subclasses :class:`Method`, declares
its settings as an ``Options`` dataclass (each field's metadata carries its
``--help``), and registers itself with :func:`register`; ``train-tsr
--model NAME`` then trains it, ``detect`` scores with it and
``compare-methods`` lists it. See ``docs/adding-a-method.md``.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from tsrnet.data.format.batching import Strata
from tsrnet.data.core.errors import DataError
from tsrnet.detect.config import DetectConfig
from tsrnet.detect.localize import Evidence, VideoScores, weighted_evidence

REGISTRY: dict[str, type["Method"]] = {}

# The tIoU thresholds of the papers' detection tables (a dash in a paper is left out of its row).
THUMOS14_TIOU = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
ACTIVITYNET13_TIOU = (0.5, 0.75, 0.95)


class MethodModule(nn.Module):
    """The trainable part of a method. Subclasses set up their layers and implement :meth:`score`.

    ``streams`` are the feature streams it reads (``batch.x[stream]``, each
    (B, T, D)); ``classes`` the class names in output order. Parameters under
    ``nets.flow.`` are optimised with ``--lr-flow``, all others with ``--lr``.
    ``method`` is the :class:`Method` unit that built the module, set by
    :meth:`Method.module`: the trainer calls its ``loss``, and ``detect`` and
    ``compare-methods`` localise a loaded run with ``model.method.evidence``.
    """

    method: "Method | None"

    def __init__(self, streams, classes):
        super().__init__()
        self.streams = tuple(streams)
        self.classes = list(classes)
        self.method = None  # the unit that built this module (Method.module); a plain attribute, not state

    @property
    def outputs(self) -> tuple:
        """The keys of :meth:`score`'s ``rows`` and ``video_prob``: the streams, unless a method fuses them into
        one sequence and reports its scores under its own key(s)."""
        return self.streams

    def score(self, x: dict, mask: torch.Tensor) -> dict:
        """Row and video scores of whole videos, for detection.

        x: stream -> (B, T, D), mask: (B, T). Returns ``{"rows": {key:
        {name: (B, T) or (B, T, C)}}, "video_prob": {key: (B, C)}}``, the keys
        being :attr:`outputs` (the streams, by default); the
        method's :meth:`Method.evidence` reads these names back per video.
        """
        raise NotImplementedError


class Method:
    """A weakly supervised localisation method. Subclass, set the class attributes, register.

    The trainer calls, in this order: :meth:`build` once (through :meth:`module`), then per batch of
    the stage ``"main"`` (and ``"trimmed"``/``"overlap"`` when
    ``uses_trimmed``) :meth:`loss`; batches hold the rows chosen by
    :meth:`sampler` (and :meth:`trimmed_sampler` for the partner clips).
    ``detect`` calls ``module.score`` on whole videos and :meth:`evidence`
    per video.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Options: ClassVar[type]  # dataclass of this method's settings (module, loss, sampling)
    uses_trimmed: ClassVar[bool] = False  # learns from trimmed clips (knowledge transfer)
    # A step bound by wide convolutions or matmuls, which bf16 runs faster where the hardware computes in it:
    # ``--precision auto`` then trains in bf16. Methods whose steps take milliseconds keep fp32, where bf16
    # would save nothing and make their results depend on the CPU.
    prefers_bf16: ClassVar[bool] = False
    detect_defaults: ClassVar[dict] = {}  # this method's localisation defaults, over DetectConfig's
    # Training settings its paper states, over TrainConfig's where the user gives none, e.g. {"epochs": 100}
    # for a paper that counts epochs. A length the user gives (--steps or --epochs) replaces the method's.
    train_defaults: ClassVar[dict] = {}
    # The detection mAP its paper printed, which ``compare-methods --published`` sets next to the measured one:
    # {dataset: {name: published_row(...)}}. A name "method (features)" is the method on other features.
    published: ClassVar[dict] = {}

    def __init__(self, options=None):
        self.options = self.Options() if options is None else options

    # -- training --------------------------------------------------------------------------------
    def build(self, streams, dim: int, classes: list[str]) -> MethodModule:
        """The method's module for these streams, feature width and classes (its layers, freshly initialised)."""
        raise NotImplementedError

    def module(self, streams, dim: int, classes: list[str]) -> MethodModule:
        """:meth:`build`'s module with this unit as its ``method``: what the trainer trains and a loaded run
        detects with."""
        model = self.build(tuple(streams), dim, classes)
        if not isinstance(model, MethodModule):
            raise TypeError(f"{type(self).__name__}.build must return a MethodModule, not {type(model).__name__}")
        model.method = self
        return model

    def sampler(self):
        """Which rows of an untrimmed video a training sample holds (a ``tsrnet.data.format.batching`` sampler)."""
        return Strata(getattr(self.options, "max_rows", 0))

    def trimmed_sampler(self):
        return Strata(getattr(self.options, "max_rows_trimmed", 0))

    def epoch_start(self, stage: str, index: int, total: int) -> float:
        """Called by the trainer before each epoch: the ``index``-th (from 0) of the ``total`` epochs of
        ``stage``. Returns the factor on the configured learning rates for this epoch (1: unchanged). A
        method with a schedule inside a stage (KT-MGFN: a term switched on, a lower rate) keeps what it
        needs here; the trainer calls it on every epoch, resumed runs included.
        """
        return 1.0

    def diagnose(self, history: list[dict]) -> list[str]:
        """Warnings about a finished training, from its loss log (one dict per epoch, as ``loss`` parts
        averaged): what a user should know before trusting the run, e.g. attention that closed on every
        row. The trainer prints them; none by default."""
        return []

    def loss(self, model: MethodModule, batch, stage: str) -> tuple[torch.Tensor, dict]:
        """The objective of one batch: the total and its parts (detached, for the loss log).

        ``stage``: ``"main"`` (untrimmed videos, with class-matched trimmed
        partners in ``batch.trimmed`` for transfer methods), ``"overlap"``
        (the same on videos of the classes the trimmed set shares) or
        ``"trimmed"`` (trimmed clips alone, before transfer).
        """
        raise NotImplementedError

    # -- detection -------------------------------------------------------------------------------
    def evidence(self, vs: VideoScores, cfg: DetectConfig) -> Evidence:
        """From one video's scores to what the shared post-processing thresholds and scores."""
        return weighted_evidence(vs, cfg)

    @classmethod
    def detect_config(cls, **overrides) -> DetectConfig:
        return dataclasses.replace(DetectConfig(), **{**cls.detect_defaults, **overrides})


def closed_streams(history: list[dict], part: str, below: float) -> dict[str, float]:
    """For :meth:`Method.diagnose`: the streams whose logged ``<part><stream>`` (an attention's mean) ended the
    last main-stage epoch below ``below``, with that value."""
    last = next((r for r in reversed(history) if r.get("stage") == "main"), {})
    return {k[len(part):]: v for k, v in last.items() if k.startswith(part) and v < below}


def float32_loss(device: torch.device):
    """A block whose operations run in float32 even inside the trainer's bf16 autocast (``--precision``): for
    loss terms, which a method computes from its network's outputs (given as float32, :func:`to_float32`)."""
    return torch.autocast(torch.device(device).type, enabled=False)


def to_float32(tree):
    """The floating-point tensors of a nested dict / list / tuple as float32; everything else as it is."""
    if isinstance(tree, torch.Tensor):
        return tree.float() if tree.is_floating_point() else tree
    if isinstance(tree, dict):
        return {k: to_float32(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_float32(v) for v in tree)
    return tree


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` available as ``--model cls.name``."""
    if cls.name in REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    if not dataclasses.is_dataclass(cls.Options):
        raise TypeError(f"{cls.__name__}.Options must be a dataclass")
    REGISTRY[cls.name] = cls
    return cls


def method_class(name: str) -> type[Method]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DataError(f"unknown method {name!r}; choose from {', '.join(REGISTRY)}") from None


def published_row(tious, values, features: str, source: str) -> dict:
    """One published result: mAP in percent by tIoU as printed, the features the paper used (a comparison
    means most on the same features) and where it is printed."""
    return {"mAP": dict(zip(tious, values)), "features": features, "source": source}


def published_numbers() -> dict[str, dict[str, dict]]:
    """Every registered method's ``published`` numbers: {dataset: {name: row}}, in registry order."""
    out: dict[str, dict[str, dict]] = {}
    for cls in REGISTRY.values():
        for dataset, rows in cls.published.items():
            out.setdefault(dataset, {}).update(rows)
    return out


def make_options(name: str, values: dict | None, source=None):
    """The ``Options`` of method ``name`` from a dict, refusing keys the method does not have."""
    cls = method_class(name).Options
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise DataError(f"method {name!r} has no setting {unknown[0]!r} (its settings: {', '.join(sorted(names))})",
                        source)
    return cls(**values)
