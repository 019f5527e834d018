"""Every training and detection setting, in one place, with its default and why.

The command lines build their options from these dataclasses (``help`` comes
from each field's metadata), and every run writes the resolved values to
``RUN_DIR/config.json``, so a run can be reproduced and ``detect`` knows how
the model was made.

The paper's hyper-parameters (batch 16, SGD momentum 0.9, dropout 0.8, lr
1e-4 RGB / 5e-4 flow divided by 10 every 5,000 iterations) were for
end-to-end fine-tuning of ResNet101. On cached features the network is a few
small layers, so we keep batch 16, the dropout, and the two learning rates'
ratio, and use Adam, which needs no schedule tuning on features. See the
README, "Deviations from the paper".
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

MODELS = ("tsrnet", "tsrnet-fc1", "srnet", "two-stream")


def opt(default, help: str, **kw):
    """A dataclass field with its command-line help text."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class ModelConfig:
    model: str = opt("tsrnet", "Method: tsrnet (self-attention + transfer at FC1 input and FC1 output), "
                     "tsrnet-fc1 (transfer at FC1 input only), srnet (self-attention, no transfer), "
                     "two-stream (mean pooling, no attention, no transfer).", choices=MODELS)
    attention_dim: int = opt(256, "b in Eq. (1): rows of W1.")
    attention_hops: int = opt(1, "r: attention hops (rows of w2); hop representations are concatenated.")
    attention: str = opt("gate", "How attention logits become weights. 'gate': sigmoid gates g_i, pooled with "
                         "a = g / n (STPN's weighted average; the L1 sparsity of Eq. (5) acts on g); "
                         "'softmax': the literal Eq. (1), regularisers on a / max(a).",
                         choices=("gate", "softmax"))
    hidden_dim: int = opt(512, "Width of FC1 in the classifier.")
    dropout: float = opt(0.8, "Dropout before FC1 and FC2 (the paper's 0.8).")
    share_trimmed_attention: bool = opt(False, "Use the untrimmed network's attention for trimmed clips too "
                                        "(default: a separate trimmed attention, as the paper's trimmed network).")


@dataclass
class LossConfig:
    alpha: float = opt(0.5, "Weight of R_smooth (Eq. 3-4) on the gates.")
    smoothness: str = opt("sum", "R_smooth over a video: 'sum' over adjacent row pairs (Eq. 4 literally) or 'mean' "
                          "(divided by the pairs, so alpha means the same for any length). With 'sum' at alpha 0.5 the "
                          "attention learned a constant on the THUMOS-layout benchmark; with 'mean' at alpha 0.5 and "
                          "beta 3 it fragmented on the synthetic set (README, Localisation).", choices=("mean", "sum"))
    beta: float = opt(1.0, "Weight of R_sparsity (Eq. 3, 5): mean L1 of the gates over rows (the paper gives no "
                      "value). On data whose every row shows the class's scene, --smoothness mean --beta 3 lets the "
                      "attention tell action from context (README, Localisation).")
    background: float = opt(0.0, "Weight of L_bg, the background-pool term (not in the paper; see "
                            "train/losses.py): the rows the attention leaves out, pooled, must not look like any "
                            "class. 0 = the paper's R_SA alone.")
    kt_weight: float = opt(0.3, "Weight of L_KT (Eq. 6) in the total loss (Eq. 9 uses 1).")
    trimmed_class_weight: float = opt(0.5, "Weight of L_class on the trimmed clips while transferring.")
    mmd_bandwidths: list = opt([0.25, 0.5, 1.0, 2.0, 4.0],
                               "Gaussian kernel bandwidths, as multiples of the median pairwise distance.")


@dataclass
class TrainConfig:
    steps: int = opt(1500, "Optimisation steps on untrimmed videos; rounded up to whole epochs, so small "
                     "datasets get more epochs (the paper counts iterations too).")
    epochs: int = opt(0, "Epochs on untrimmed videos; overrides --steps when positive.")
    pretrain_steps: int = opt(300, "Steps of trimmed-only training (the paper's trimmed network) before transfer.")
    batch_size: int = opt(16, "Untrimmed videos per step (the paper's 16); each gets a class-matched trimmed clip.")
    lr: float = opt(1e-3, "Adam learning rate of the RGB stream.")
    lr_flow: float = opt(1e-3, "Adam learning rate of the flow stream.")
    weight_decay: float = opt(5e-4, "Adam weight decay.")
    max_rows: int = opt(512, "Rows sampled per untrimmed video while training: uniform strata with random "
                        "perturbation, as STPN (0 = all rows).")
    max_rows_trimmed: int = opt(64, "Rows sampled per trimmed clip while training.")
    overlap_pretrain_steps: int = opt(0, "ActivityNet recipe: first train this many steps on untrimmed videos "
                                      "of the classes shared with the trimmed set, then refine on all.")
    seed: int = opt(0, "Random seed for initialisation and sampling.")
    cache_gb: float = opt(4.0, "Keep up to this many GiB of feature rows per store in memory (as stored: float16) "
                          "after their first read, so later epochs skip the file (0 = always read the file; off "
                          "with --workers, whose processes live one epoch).", runtime=True)
    workers: int = opt(0, "Data-loader worker processes (0 = read in the training process).", runtime=True)
    device: str = opt("auto", "auto, cpu or cuda[:N].", runtime=True)
    checkpoint_seconds: float = opt(30.0, "Write a resumable checkpoint after the first epoch that ends this many "
                                    "seconds after the last one, and at the end: a killed run redoes at most about "
                                    "this much. (Epochs on small sets take milliseconds; a checkpoint per epoch "
                                    "would cost more than the training.)", runtime=True)


@dataclass
class DetectConfig:
    """Localisation settings; ``detect/localize.py`` explains each step and why."""

    threshold: list = opt([0.2], "Rows whose level passes this form intervals (the paper's 0.2); several values "
                          "pool their intervals, which --suppress then de-duplicates.", range=(0.0, 1.0))
    scale: str = opt("video", "What the threshold is compared with: 'video' = the fused weighted score min-max "
                     "normalised per video and class (the same threshold fits every video and method); "
                     "'absolute' = the score itself (the paper's literal rule).", choices=("video", "absolute"))
    theta: float = opt(0.5, "Eq. (11): weight of RGB in the fusion (the paper's 0.5).", range=(0.0, 1.0))
    class_threshold: float = opt(0.1, "Keep classes whose fused video-level score passes this (top-1 always kept).",
                                range=(0.0, 1.0))
    score: str = opt("mean", "Interval score: 'mean' (mean fused weighted score inside times the video-level "
                     "class score) or 'contrast' (mean inside minus mean of the surrounding quarter length on each "
                     "side, plus the video-level class score).", choices=("contrast", "mean"))
    suppress: str = opt("nms", "Overlapping intervals of one class: 'nms' drops those over --nms tIoU with a "
                        "better one; 'soft-nms' decays their scores by exp(-tIoU^2 / sigma); 'none' keeps all.",
                        choices=("nms", "soft-nms", "none"))
    nms: float = opt(0.5, "tIoU above which --suppress acts (for soft-nms: decays only overlaps above it).",
                     range=(0.0, 1.0))
    soft_nms_sigma: float = opt(0.75, "Soft-NMS Gaussian width sigma.")
    min_rows: int = opt(1, "Drop intervals shorter than this many rows.")

    def __post_init__(self):
        # Runs written before thresholds were a list recorded one number.
        if not isinstance(self.threshold, (list, tuple)):
            self.threshold = [self.threshold]
        self.threshold = [float(t) for t in self.threshold]
        bad = [t for t in self.threshold if not 0.0 <= t <= 1.0]
        if bad or not self.threshold:
            from tsrnet.data.errors import DataError

            raise DataError(f"--threshold {bad[0] if bad else '(none)'} is not in [0, 1]")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def result_dict(self) -> dict:
        """``to_dict`` without the settings marked ``runtime`` (device, workers, caching,
        checkpoint interval): they change how fast a run goes, not what it computes, so a
        resumed run may change them."""
        runtime = {(sec.name, f.name) for sec in dataclasses.fields(self)
                   for f in dataclasses.fields(getattr(self, sec.name)) if f.metadata.get("runtime")}
        return {sec: {k: v for k, v in values.items() if (sec, k) not in runtime}
                for sec, values in self.to_dict().items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        def build(kind, values):
            names = {f.name for f in dataclasses.fields(kind)}
            return kind(**{k: v for k, v in (values or {}).items() if k in names})

        return cls(
            model=build(ModelConfig, d.get("model")),
            loss=build(LossConfig, d.get("loss")),
            train=build(TrainConfig, d.get("train")),
            detect=build(DetectConfig, d.get("detect")),
        )

    def replace(self, section: str, **values) -> "Config":
        new = Config.from_dict(self.to_dict())
        setattr(new, section, dataclasses.replace(getattr(new, section), **values))
        return new
