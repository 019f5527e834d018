"""The settings of ``train-backbone``, with their defaults and why.

From the paper (TSRNet, "Implementation Details"): ImageNet initialisation,
mini-batch SGD with batch 16 and momentum 0.9, learning rate 0.0001 for the
spatial (RGB) stream and 0.0005 for the temporal (flow) stream, each divided
by 10 every 5,000 iterations, dropout 0.8, rotation and cropping
augmentation, 224x224 inputs, stacks of 5 TV-L1 fields.

Where the paper is silent (each choice is TSN's unless said otherwise):
K = 3 segments with average consensus; weight decay 5e-4; 15,000 iterations
per stream (three stages of the stated schedule, so both decays happen);
partial BN (only the first BatchNorm adapts); gradients clipped to a total
norm of 20 (without it a flow network from random weights diverged at the
demo's learning rate); scale-jittered crops with
scales 1/.875/.75/.66 and horizontal flips; rotations up to 10 degrees (our
choice: the paper gives no angle); 25 candidate snippets per clip cached,
one drawn per segment each time.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tsrnet.data.core.devices import device_opt, threads_opt
from tsrnet.data.core.settings import opt
from tsrnet.data.core.errors import DataError
from tsrnet.data.core.progress import quiet_opt

STREAMS = ("rgb", "flow")


@dataclass
class BackboneConfig:
    segments: int = opt(3, "Segments per clip (TSN's K): one snippet from each, class scores averaged.")
    size: int = opt(224, "Crop side fed to the network (the paper's 224). Frames are cached with their short "
                         "side at 8/7 of it (256 for 224), as extract-features --resize/--crop use; extract "
                         "with the same --crop.")
    iterations: int = opt(15000, "SGD iterations per stream (three stages of the paper's schedule).")
    epochs: int = opt(0, "Passes over the clips per stream; overrides --iterations when positive.")
    batch: int = opt(16, "Clips per iteration (the paper's 16), each K snippets.")
    lr_rgb: float = opt(1e-4, "Initial learning rate of the RGB stream (the paper's).")
    lr_flow: float = opt(5e-4, "Initial learning rate of the flow stream (the paper's).")
    lr_step: int = opt(5000, "Divide the learning rate by 10 every this many iterations (the paper's 5,000).")
    momentum: float = opt(0.9, "SGD momentum (the paper's).")
    weight_decay: float = opt(5e-4, "SGD weight decay (TSN's; the paper is silent).")
    dropout: float = opt(0.8, "Dropout before the classifier (the paper's 0.8).")
    clip_gradient: float = opt(20.0, "Scale the gradients down when their total L2 norm exceeds this (TSN's 20 for "
                                     "both streams; the paper is silent); 0: off.")
    rotation: float = opt(10.0, "Largest rotation, degrees (the paper rotates without saying how far).")
    scales: list = opt([1.0, 0.875, 0.75, 0.66], "Crop side as a fraction of the short side (TSN's jitter).",
                       range=(0.05, 1.0))
    flip: bool = opt(True, "Random horizontal flips (TSN's; flow x components are negated).")
    partial_bn: bool = opt(True, "TSN's partial BN: every BatchNorm but the first keeps its statistics and affine "
                                 "parameters. Turn off for random initial weights, whose frozen zero-initialised "
                                 "residual branches could never open.")
    snippets: int = opt(25, "Candidate snippets cached per clip, evenly spread; each draw takes one per segment.")
    seed: int = opt(0, "Random seed for the classifier's initialisation, sampling, augmentation and dropout.")

    @property
    def resize(self) -> int:
        return int(round(self.size * 8 / 7))

    def lr(self, stream: str) -> float:
        return self.lr_rgb if stream == "rgb" else self.lr_flow

    def check(self) -> None:
        rules = [(self.segments >= 1, "--segments must be >= 1"), (self.size >= 16, "--size must be >= 16"),
                 (self.iterations >= 1 or self.epochs >= 1, "--iterations or --epochs must be >= 1"),
                 (self.batch >= 1, "--batch must be >= 1"), (self.lr_step >= 1, "--lr-step must be >= 1"),
                 (0 <= self.dropout < 1, "--dropout must be in [0, 1)"), (self.rotation >= 0, "--rotation >= 0"),
                 (self.clip_gradient >= 0, "--clip-gradient must be >= 0"),
                 (len(self.scales) >= 1, "--scales needs at least one value"),
                 (self.snippets >= self.segments, "--snippets must be >= --segments")]
        broken = [msg for ok, msg in rules if not ok]
        if broken:
            raise DataError("; ".join(broken))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FinetuneRuntime:
    """What train-backbone trains and how it runs; none of it changes what a stream learns from its clips but
    ``stream``, ``weights``, ``annotations`` and ``subset``, which are recorded in record.json."""

    stream: str = opt("both", "Which network to fine-tune; the two are trained separately with identical settings.",
                      choices=("rgb", "flow", "both"))
    weights: str = opt("imagenet", "Initial weights: imagenet (torchvision's, downloaded once), random (tests) or "
                                   "a checkpoint PATH in torchvision's resnet101 layout (flow: cross-modality "
                                   "initialised from it).")
    annotations: str | None = opt(None, "Video-level labels (any format convert-annotations reads) instead of "
                                         "class folders, e.g. to fine-tune on untrimmed videos.",
                                   path="existing file")
    subset: str | None = opt(None, "With --annotations: the subset to train on.",
                             shown="the training-subset convention, e.g. THUMOS14's validation")
    device: str = device_opt()
    precision: str = opt("auto", "auto: bf16 autocast where the hardware computes in it (GPUs, CPUs with "
                                 "AVX512-BF16/AMX), else fp32.", choices=("auto", "fp32", "bf16"))
    decoder: str = opt("decord", "Video decoder (PyAV is the fallback for clips decord cannot read).",
                       choices=("decord", "pyav"))
    flow_backend: str = opt("auto", "TV-L1 implementation for the flow cache, as extract-features.",
                            choices=("auto", "torch", "opencv"))
    threads: int = threads_opt("the network and TV-L1")
    workers: int = opt(0, "Threads preparing a batch (decoding and augmenting snippets; 0: as --threads).",
                       range=(0, None))
    checkpoint_seconds: float = opt(600.0, "Save a resumable checkpoint at least this often.", range=(0, None))
    quiet: bool = quiet_opt()

