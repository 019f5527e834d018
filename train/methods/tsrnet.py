"""TSRNet (Zhang et al., AAAI 2019) and its ablations: Two-Stream, SRNet, TSRNet without L_FC2.

One unit, four registered methods that differ only in two switches:
self-attention pooling (Eq. 1) with its regulariser R_SA (Eqs. 3-5), and
the knowledge-transfer terms L_KT (Eqs. 6-8). Each stream has its own
attention and classifier; video scores are fused by Eq. (11) and row scores
localised by Eq. (10) (``tsrnet.detect.localize.weighted_evidence``).

Knowledge transfer, as implemented:

- The trimmed network is the same architecture. It has its own attention
  module (trimmed clips need no smoothness or sparsity) and *shares the
  classifier* (FC1, FC2) with the untrimmed network: the paper "feeds the
  parameters of intermediate FC layers to the transfer module"; sharing them
  is the reading under which MMD at FC1's input and output aligns the two
  domains for one classifier.
- It is first trained alone on the trimmed clips with L_class (stage
  ``trimmed``), then jointly: L = L_class(U) + R_SA(U) + w_T L_class(T) +
  w_KT (MMD^2(T, U) + MMD^2(FC1(T), FC1(U))).
- Each untrimmed video in a batch is paired with a trimmed clip of one of its
  labels (classes matched by name), so T and U have the same class mix; a
  video none of whose labels exists in the trimmed set has no partner and
  takes part in L_SA only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tsrnet.data.core.settings import opt

from ..losses import background_loss, classification_loss, self_attention_regulariser
from ..modules import CentredRows, Classifier, GaussianMMD, SelfAttention, attend, complement, uniform_attention
from .base import (ACTIVITYNET13_TIOU, THUMOS14_TIOU, Method, MethodModule, closed_streams, published_row,
                   register)


@dataclass
class TwoStreamOptions:
    hidden_dim: int = opt(512, "Width of FC1 in the classifier.")
    dropout: float = opt(0.8, "Dropout before FC1 and FC2 (the paper's 0.8).")
    max_rows: int = opt(512, "Rows sampled per untrimmed video while training: uniform strata with random "
                        "perturbation, as STPN (0 = all rows).")


@dataclass
class SRNetOptions(TwoStreamOptions):
    attention_dim: int = opt(256, "b in Eq. (1): rows of W1.")
    attention_hops: int = opt(1, "r: attention hops (rows of w2); hop representations are concatenated.")
    attention: str = opt("gate", "How attention logits become weights. 'gate': sigmoid gates g_i, pooled with "
                         "a = g / n (STPN's weighted average; the L1 sparsity of Eq. (5) acts on g); "
                         "'softmax': the literal Eq. (1), regularisers on a / max(a).",
                         choices=("gate", "softmax"))
    alpha: float = opt(3.0, "Weight of R_smooth (Eq. 3-4) on the gates.")
    smoothness: str = opt("mean", "R_smooth over a video: 'mean' over adjacent row pairs (so alpha means the same "
                          "for any length) or 'sum' (Eq. 4 literally), whose weight grows with the video's length "
                          "(docs/studies/attention.md).", choices=("mean", "sum"))
    beta: float = opt(3.0, "Weight of R_sparsity (Eq. 3, 5): mean L1 of the gates over rows (the paper gives no "
                      "value). Without --sparsity-confidence a weight this high can shut every gate on weak "
                      "features (docs/studies/attention.md).")
    # 0.4: at 0.7 SRNet's attention in one stream opened on the background (70% of a THUMOS14 video's rows) and
    # locked onto the scene (th14-i3d 10.4 against 63.2 at 0.4). On ActivityNet-structured families 0.4 cut the
    # actions into fragments, which detect --smooth 8 joins (docs/studies/defaults.md). TSRNet keeps 0.7.
    sparsity_keep: float = opt(0.4, "Exempt from R_sparsity each video's this fraction of rows with the highest "
                               "gates (0 = Eq. 5 on every row). Without it the L1 closes the gates on most action "
                               "rows and leaves spikes; too small a fraction closes them on videos that are mostly "
                               "action (docs/studies/defaults.md; train/losses.py sparsity).", range=(0.0, 1.0))
    sparsity_confidence: bool = opt(True, "Scale each video's R_sparsity by the classifier's current "
                                    "probability of the video's own classes (detached): the attention is pushed "
                                    "down only as far as the class is recognised from the attended rows, so "
                                    "weak features do not lose every gate (docs/studies/attention.md).")
    row_input: str = opt("mass", "What Eq. (10) gives the classifier for row i: 'mass' = x_i times the video's "
                         "pooling mass sum(a) (the mean gate), the scale of the pooled features it was trained on "
                         "(with a = g / n a video's pooled feature is sum(a) times an average of its rows); 'row' "
                         "= x_i as it is, several times the training scale, where the row probabilities "
                         "saturate (docs/studies/defaults.md). Mean pooling and softmax weights have mass 1, so "
                         "the two agree there.", choices=("mass", "row"))
    # On: on the benchmark family SRNet's attention locked onto the scene in one stream with either setting
    # (centred: flow on th14-i3d, 10.4 against 57.6; uncentred: RGB on anet-i3d, 5.1 against 61.0); centred has
    # the better mean rank over the seven families and the small sets (docs/studies/defaults.md).
    centre_rows: bool = opt(True, "Subtract each stream's mean training row (a running mean over the rows seen "
                            "in training, then fixed) from every row before attention pooling and Eq. (10). With "
                            "a = g / n the pooled feature is the mass times an average of rows, so a component all "
                            "rows share (large in ReLU features) reaches the classifier as the mass alone, and the "
                            "class loss moves every gate alike: the attention learns a level, not which rows "
                            "(docs/studies/defaults.md). Mean pooling's mass is constant, so Two-Stream has no "
                            "such setting. Not in the paper.")
    background: float = opt(0.0, "Weight of L_bg, the background-pool term (not in the paper; see "
                            "train/losses.py): the rows the attention leaves out, pooled, must not look like any "
                            "class. 0 = the paper's R_SA alone.")


@dataclass
class TSRNetOptions(SRNetOptions):
    share_trimmed_attention: bool = opt(False, "Use the untrimmed network's attention for trimmed clips too "
                                        "(default: a separate trimmed attention, as the paper's trimmed network).")
    kt_weight: float = opt(0.3, "Weight of L_KT (Eq. 6) in the total loss (Eq. 9 uses 1).")
    trimmed_class_weight: float = opt(0.5, "Weight of L_class on the trimmed clips while transferring.")
    mmd_bandwidths: list = opt([0.25, 0.5, 1.0, 2.0, 4.0],
                               "Gaussian kernel bandwidths, as multiples of the median pairwise distance.")
    max_rows_trimmed: int = opt(64, "Rows sampled per trimmed clip while training.")
    # 0.7 for the transfer methods: above mean pooling on all ten families with it; 0.4 was not re-judged for them.
    sparsity_keep: float = opt(0.7, "As SRNet's --sparsity-keep: exempt from R_sparsity each video's this fraction "
                               "of rows with the highest gates (0 = Eq. 5 on every row); the transfer methods "
                               "keep a larger share (docs/studies/defaults.md; train/losses.py sparsity).",
                               range=(0.0, 1.0))
    # Off for the transfer methods, on for SRNet: centred, TSRNet fell below mean pooling on the demo's
    # fine-tuned features (three seeds), where without it it is above on every set measured; why is open
    # (docs/studies/defaults.md).
    centre_rows: bool = opt(False, "As SRNet's --centre-rows (each stream's mean training row subtracted before "
                            "attention pooling and Eq. (10)); off for the transfer methods "
                            "(docs/studies/defaults.md). Not in the paper.")


class StreamNet(CentredRows):
    """One stream: attention pooling (or mean pooling) and the classifier."""

    def __init__(self, dim: int, n_classes: int, opts, attention: bool, trimmed_attention: bool):
        super().__init__()
        self.hops = opts.attention_hops if attention else 1
        self.attention = SelfAttention(dim, opts.attention_dim, self.hops, opts.attention) if attention else None
        self.trimmed_attention = (
            SelfAttention(dim, opts.attention_dim, self.hops, opts.attention) if trimmed_attention else None
        )
        self.classifier = Classifier(self.hops * dim, opts.hidden_dim, n_classes, opts.dropout)
        self.row_input = getattr(opts, "row_input", "row")  # Two-Stream has no such setting: its mass is 1
        # centre_rows: rows less the stream's mean training row (CentredRows); mean pooling has no such setting.
        self.init_centre(dim, bool(getattr(opts, "centre_rows", False)) and attention)

    def weights(self, x, mask, trimmed: bool = False):
        # -> a, g: (B, T, r)
        module = self.trimmed_attention if (trimmed and self.trimmed_attention is not None) else self.attention
        return uniform_attention(mask) if module is None else module(x, mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, trimmed: bool = False) -> dict:
        # x: (B, T, D), mask: (B, T)
        x = self.centred(x, mask)
        a, g = self.weights(x, mask, trimmed)
        m = attend(x, a)  # (B, r*D): the input of FC1
        logits, h1 = self.classifier(m)  # (B, C), (B, hidden)
        return {"logits": logits, "m": m, "h1": h1, "a": a, "g": g}

    def row_logits(self, x: torch.Tensor, mass: torch.Tensor | None = None) -> torch.Tensor:
        """Class activation of each row, ``v_c^T x_i`` of Eq. (10): x (B, T, D) -> (B, T, C).

        A row stands for a video whose attended content is that row alone.
        The pooled feature of a video is ``m = sum_i a_i x_i = (sum_i a_i) x̃``,
        x̃ a weighted average of its rows: with gates (``a = g / n``) the
        classifier is trained on averages scaled by the video's mass
        ``sum_i a_i`` (its mean gate, about a third on THUMOS-like videos), and a row
        given as it is lies several times outside that scale. ``mass`` (B, r),
        when given, scales the row per hop as that video's pooling would (the
        ``row_input="mass"`` setting); None gives the row as it is. With r hops
        the classifier takes r*D inputs, the row repeated once per hop.
        """
        x = self.centred(x)
        xr = x.unsqueeze(-2).expand(*x.shape[:-1], self.hops, x.shape[-1])  # (B, T, r, D)
        if mass is not None:
            xr = xr * mass[:, None, :, None]
        return self.classifier(xr.flatten(-2))[0]


class TwoStreamModel(MethodModule):
    """One :class:`StreamNet` per stream; video scores fused as in Eq. (11)."""

    def __init__(self, streams, dim: int, classes: list[str], opts, attention: bool, trimmed_attention: bool):
        super().__init__(streams, classes)
        self.has_attention = attention
        self.nets = nn.ModuleDict(
            {s: StreamNet(dim, len(classes), opts, attention, trimmed_attention) for s in self.streams}
        )

    def forward(self, x: dict, mask: torch.Tensor, trimmed: bool = False) -> dict:
        return {s: self.nets[s](x[s], mask, trimmed) for s in self.streams}

    @torch.no_grad()
    def score(self, x: dict, mask: torch.Tensor) -> dict:
        """Per stream: gates g (B, T) averaged over hops, row probabilities (B, T, C), video probabilities (B, C)."""
        rows, video = {}, {}
        for s in self.streams:
            net = self.nets[s]
            r = net(x[s], mask)
            mass = r["a"].sum(dim=1) if net.row_input == "mass" else None  # (B, r); 1 for mean pooling
            rows[s] = {"class_prob": torch.sigmoid(net.row_logits(x[s], mass))}
            if self.has_attention:
                rows[s]["attention"] = r["g"].mean(dim=-1)
            video[s] = torch.sigmoid(r["logits"])
        return {"rows": rows, "video_prob": video}


class _TSRNetFamily(Method):
    """The switches: ``attention`` (Eq. 1 pooling + R_SA) and ``transfer`` (the MMD places of L_KT)."""

    attention: bool = True
    transfer: tuple = ()  # "fc1_in" (Eq. 7), "fc1_out" (Eq. 8)

    def __init__(self, options=None):
        super().__init__(options)
        if self.transfer:
            self.mmd = GaussianMMD(self.options.mmd_bandwidths)

    def build(self, streams, dim, classes):
        trimmed_attn = bool(self.transfer) and self.attention and not self.options.share_trimmed_attention
        return TwoStreamModel(streams, dim, classes, self.options, self.attention, trimmed_attn)

    # Mean gate below which a stream's attention has closed: the pooled a = g / n then passes almost
    # nothing and the classifier sees little but its bias. R_sparsity does this when the class loss
    # cannot hold gates open (weak features, e.g. the demo's random-weight backbone, at beta 3).
    CLOSED_GATE = 0.01

    def diagnose(self, history):
        return [f"the {s} attention closed on every row (mean gate {v:.4f} in the last epoch): localisation "
                f"and classification suffer; train with a lower --beta (docs/studies/attention.md)"
                for s, v in closed_streams(history, "gate_", self.CLOSED_GATE).items()]

    def loss(self, model, batch, stage):
        if stage == "trimmed":
            return self.trimmed_loss(model, batch)
        return self.untrimmed_loss(model, batch)

    def untrimmed_loss(self, model: TwoStreamModel, batch):
        """Eq. (9) for one batch. ``batch.trimmed`` is None, or the class-matched trimmed clips with
        ``batch.pair`` (indices of their untrimmed partners in the batch)."""
        o_ = self.options
        out_u = model(batch.x, batch.mask)
        parts = {}
        total = 0.0
        for s in model.streams:
            o = out_u[s]
            lc = classification_loss(o["logits"], batch.targets)
            total = total + lc
            parts[f"class_{s}"] = lc.detach()
            if self.attention:
                conf = None
                if o_.sparsity_confidence:  # (B,): mean probability of the video's own classes
                    conf = ((torch.sigmoid(o["logits"].detach()) * batch.targets).sum(dim=1)
                            / batch.targets.sum(dim=1).clamp_min(1))
                reg, rp = self_attention_regulariser(o["g"], batch.mask, o_.alpha, o_.beta, o_.smoothness,
                                                      o_.sparsity_keep, conf)
                total = total + reg
                parts[f"smooth_{s}"], parts[f"sparsity_{s}"] = rp["smooth"], rp["sparsity"]
                m = batch.mask.unsqueeze(-1)  # (B, T, 1)
                parts[f"gate_{s}"] = (o["g"].detach() * m).sum() / (m.sum() * o["g"].shape[-1])
                if o_.background > 0:
                    net = model.nets[s]
                    logits_bg, _ = net.classifier(attend(net.centred(batch.x[s]), complement(o["g"], batch.mask)))
                    lb = background_loss(logits_bg)
                    total = total + o_.background * lb
                    parts[f"background_{s}"] = lb.detach()
        t = batch.trimmed
        if self.transfer and t is not None:
            out_t = model(t.x, t.mask, trimmed=True)
            for s in model.streams:
                lt = classification_loss(out_t[s]["logits"], t.targets)
                total = total + o_.trimmed_class_weight * lt
                parts[f"trimmed_class_{s}"] = lt.detach()
                kt = 0.0
                if len(batch.pair) > 1:  # MMD of one sample against one is just a distance; skip
                    if "fc1_in" in self.transfer:
                        kt = kt + self.mmd(out_t[s]["m"], out_u[s]["m"][batch.pair])
                    if "fc1_out" in self.transfer:
                        kt = kt + self.mmd(out_t[s]["h1"], out_u[s]["h1"][batch.pair])
                    total = total + o_.kt_weight * kt
                    parts[f"kt_{s}"] = kt.detach()
        return total, parts

    def trimmed_loss(self, model: TwoStreamModel, batch):
        """The trimmed network's objective: L_class on trimmed clips only."""
        out = model(batch.x, batch.mask, trimmed=True)
        total, parts = 0.0, {}
        for s in model.streams:
            lc = classification_loss(out[s]["logits"], batch.targets)
            total = total + lc
            parts[f"trimmed_class_{s}"] = lc.detach()
        return total, parts


@register
class TwoStream(_TSRNetFamily):
    name = "two-stream"
    description = "Two-Stream: mean pooling, no attention, no transfer"
    Options = TwoStreamOptions
    attention = False


@register
class SRNet(_TSRNetFamily):
    name = "srnet"
    description = "SRNet: self-attention, no transfer"
    Options = SRNetOptions


@register
class TSRNetFC1(_TSRNetFamily):
    name = "tsrnet-fc1"
    description = "TSRNet w/o L_FC2: transfer at FC1's input only"
    Options = TSRNetOptions
    uses_trimmed = True
    transfer = ("fc1_in",)
    published = {"thumos14": {
        "tsrnet-fc1": published_row(THUMOS14_TIOU, (53.5, 45.3, 35.9, 26.5, 17.2, 10.4, 5.31, 1.93, 0.21),
                                    "two-stream ResNet101 (fine-tuned)", "TSRNet Table 3 (w/o L_FC2)"),
    }}


@register
class TSRNet(_TSRNetFamily):
    name = "tsrnet"
    description = "TSRNet: self-attention + transfer (L_FC1 + L_FC2)"
    Options = TSRNetOptions
    uses_trimmed = True
    transfer = ("fc1_in", "fc1_out")
    published = {
        "thumos14": {
            "tsrnet": published_row(THUMOS14_TIOU, (55.9, 46.9, 38.3, 28.1, 18.6, 11.0, 5.59, 2.19, 0.29),
                                    "two-stream ResNet101 (fine-tuned)", "TSRNet Table 3"),
        },
        "activitynet13": {
            "tsrnet": published_row(ACTIVITYNET13_TIOU, (29.9, 17.2, 2.71), "two-stream ResNet101", "TSRNet Table 4"),
        },
    }
