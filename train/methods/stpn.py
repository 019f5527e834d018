"""STPN, Sparse Temporal Pooling Network (Nguyen et al., CVPR 2018), on cached features.

Per stream, trained separately with identical settings (here: one module
per stream, independent losses summed, so the streams share nothing):

- attention ``λ_t = sigmoid(FC(ReLU(FC(x_t))))``, FC D -> 256 -> 1 (the
  paper does not give the hidden size; 256 is what reproductions use);
- video feature ``x̄ = Σ_t λ_t x_t / T`` (Eq. 1). The paper writes the plain
  sum over its T = 400 sampled rows; with a fixed T that is a scaled
  average. Detection scores every row of a video, so T varies: dividing by
  T keeps the class score's scale independent of the video's length;
- classifier FC D -> C + sigmoid, multi-label binary cross-entropy, plus
  ``β ||λ||_1`` (Eq. 2), the L1 norm taken as the mean over rows so one β
  fits any T (β is not given in the paper);
- T-CAM ``a_t^c = w_c^T x_t`` (Eq. 4, the classifier without its bias), with
  ``x_t`` scaled by the video's mean attention (``--row-input mass``, the
  default): x̄ is that mass times a λ-weighted average of the rows, so the
  classifier was trained on that scale, not on a row as it is.

Localisation (Section 3.4), through the shared post-processing: classes
whose video probability (mean of the streams) is below 0.1 are dropped;
each stream's weighted T-CAM ``ψ_t^c = λ_t · sigmoid(a_t^c)`` (Eqs. 5-6) is
thresholded into connected runs, the two streams' proposals pooled; each is
scored by Eq. 7, the mean inside of ``λ_t,* (α a_t,RGB + (1 − α) a_t,FLOW)``
with λ from the stream that made the proposal and α = ``--theta`` (0.5);
then per-class NMS. The paper's threshold is not given: the default is the
project's 0.2 on ψ normalised per video by its two class means (Otsu),
with runs of at least two rows (docs/studies/localisation.md: the smallest worst shortfall of the
candidates studied).
The optional linear
interpolation of ψ between sampled rows is not needed: detection scores
every row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from tsrnet.data.core.settings import opt
from tsrnet.detect.localize import Evidence, Source, fuse

from ..losses import classification_loss, sparsity
from ..modules import CentredRows
from .base import (ACTIVITYNET13_TIOU, THUMOS14_TIOU, Method, MethodModule, closed_streams, published_row,
                   register)


@dataclass
class STPNOptions:
    attention_dim: int = opt(256, "Hidden width of the attention module FC-ReLU-FC-sigmoid.")
    beta: float = opt(1.0, "Weight of the L1 sparsity of the attention (Eq. 2), as the mean over rows.")
    max_rows: int = opt(400, "Rows sampled per video while training: T = 400 uniform strata with random "
                        "perturbation (the paper's; 0 = all rows).")
    # The paper applies the sigmoid of Eqs. 5-6 to the T-CAM of the row as it is. Its x̄ is a plain sum over T = 400
    # rows, so there a row is 1 / (T mean(λ)) of x̄'s scale (sigmoid(a_t) near 0.5); with Eq. 1 as a mean, as here,
    # it is 1 / mean(λ) times x̄'s scale (sigmoid(a_t) saturates). Neither is the scale the classifier was trained
    # on: 'mass' puts the row there, a_t being the class score (less its bias) of a video whose attended content
    # is row t, as Eq. 3 gives it. It is not what fails STPN on anet-drift (docs/studies/defaults.md).
    row_input: str = opt("mass", "What the T-CAM (Eq. 4) gives the classifier for row t: 'mass' = x_t times the "
                         "video's pooling mass mean(λ), the scale of the pooled features x̄ = Σ λ_t x_t / T it was "
                         "trained on (as SRNet's --row-input); 'row' = x_t as it is, 1 / mean(λ) times that scale "
                         "(docs/methods/stpn.md).", choices=("mass", "row"))
    centre_rows: bool = opt(False, "Subtract each stream's mean training row (a running mean over the rows seen in "
                            "training, then fixed) from every row before the attention, the pooling (Eq. 1) and "
                            "the T-CAM (Eq. 4), as SRNet's --centre-rows: x̄ = Σ λ_t x_t / T is the mass times an "
                            "average of rows, so a component all rows share reaches the classifier as the mass "
                            "alone and moves every λ alike (docs/studies/defaults.md). Not in the paper.")


class STPNStream(CentredRows):
    def __init__(self, dim: int, n_classes: int, hidden: int, centre_rows: bool = False):
        super().__init__()
        self.attention = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.classifier = nn.Linear(dim, n_classes)
        self.init_centre(dim, centre_rows)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict:
        # x: (B, T, D), mask: (B, T)
        x = self.centred(x, mask)
        lam = torch.sigmoid(self.attention(x).squeeze(-1)) * mask  # (B, T)
        pooled = (lam.unsqueeze(-1) * x).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1)  # (B, D), Eq. 1
        return {"logits": self.classifier(pooled), "attention": lam}  # (B, C), (B, T)

    def tcam(self, x: torch.Tensor, mass: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. (4): x (B, T, D) -> (B, T, C), the classifier's weights without its bias.

        ``mass`` (B,), when given, scales each video's rows by its pooling
        mass ``Σ_t λ_t / T``: x̄ is that mass times a λ-weighted average of the
        rows, so the classifier was trained on that scale (``row_input="mass"``).
        """
        a = self.centred(x) @ self.classifier.weight.t()
        return a if mass is None else a * mass[:, None, None]


class STPNModel(MethodModule):
    def __init__(self, streams, dim: int, classes, opts: STPNOptions):
        super().__init__(streams, classes)
        self.nets = nn.ModuleDict(
            {s: STPNStream(dim, len(classes), opts.attention_dim, opts.centre_rows) for s in self.streams})
        self.row_input = opts.row_input

    def forward(self, x: dict, mask: torch.Tensor) -> dict:
        return {s: self.nets[s](x[s], mask) for s in self.streams}

    @torch.no_grad()
    def score(self, x: dict, mask: torch.Tensor) -> dict:
        rows, video = {}, {}
        for s in self.streams:
            o = self.nets[s](x[s], mask)
            mass = o["attention"].sum(dim=1) / mask.sum(dim=1).clamp_min(1) if self.row_input == "mass" else None
            rows[s] = {"attention": o["attention"], "tcam": self.nets[s].tcam(x[s], mass)}
            video[s] = torch.sigmoid(o["logits"])
        return {"rows": rows, "video_prob": video}


@register
class STPN(Method):
    name = "stpn"
    description = "STPN: sparse attention pooling per stream, T-CAM proposals (Nguyen et al., CVPR 2018)"
    Options = STPNOptions
    detect_defaults = dict(score="inside")  # the rest: DetectConfig's
    published = {
        "thumos14": {
            "stpn": published_row(THUMOS14_TIOU, (52.0, 44.7, 35.5, 25.8, 16.9, 9.9, 4.3, 1.2, 0.1), "I3D (Kinetics)",
                                  "STPN; TSRNet Table 3"),
            "stpn (UntrimmedNet features)": published_row(
                THUMOS14_TIOU, (45.3, 38.8, 31.1, 23.5, 16.2, 9.8, 5.1, 2.0, 0.3), "UntrimmedNet",
                "STPN; TSRNet Table 3"),
        },
        "activitynet13": {"stpn": published_row(ACTIVITYNET13_TIOU, (29.3, 16.9, 2.6), "I3D", "STPN; TSRNet Table 4")},
    }

    CLOSED = 0.01  # mean attention below which a stream's attention has closed on every row

    def build(self, streams, dim, classes):
        return STPNModel(streams, dim, classes, self.options)

    def diagnose(self, history):
        # Adam moves each weight of the attention's first FC by about the learning rate a step, so on features
        # of large magnitude (2,048-d ResNet rows of mean 3) the sparsity term can shut every row within the first
        # epoch; the sigmoid then passes no gradient and the classifier sees only zeros.
        return [f"the {s} attention closed on every row (mean {v:.2g} in the last epoch): the video is classified "
                f"from nothing and localisation fails; train with a lower --beta or --lr (the paper's 1e-4)"
                for s, v in closed_streams(history, "sparsity_", self.CLOSED).items()]

    def loss(self, model, batch, stage):
        out = model(batch.x, batch.mask)
        total, parts = 0.0, {}
        for s in model.streams:
            lc = classification_loss(out[s]["logits"], batch.targets)
            ls = sparsity(out[s]["attention"].unsqueeze(-1), batch.mask)
            total = total + lc + self.options.beta * ls
            parts[f"class_{s}"], parts[f"sparsity_{s}"] = lc.detach(), ls.detach()
        return total, parts

    def evidence(self, vs, cfg):
        """One source per stream: ψ (Eqs. 5-6) is thresholded, Eq. 7's λ-weighted fused T-CAM scores.

        A stream whose attention is closed on every row of the video (max λ below ``CLOSED``) proposes
        nothing: its ψ is flat at ~0, which the localisation's normalisation would otherwise read as a
        class filling the whole video, one whole-video interval of score 0 for every kept class.
        """
        a = {s: r["tcam"] for s, r in vs.rows.items()}  # (T, C) each
        a_fused = fuse(a, cfg.theta)  # α a_RGB + (1 − α) a_FLOW
        sources, psi = [], {}
        for s, r in vs.rows.items():
            lam = r["attention"][:, None]  # (T, 1)
            psi[s] = lam * expit(a[s])  # λ · sigmoid(a)
            if float(lam.max()) >= self.CLOSED:
                sources.append(Source(level=psi[s], evidence=lam * a_fused))
        video = np.mean([p for p in vs.video_prob.values()], axis=0)  # the paper: mean of the two streams
        return Evidence(video, sources, np.mean(list(psi.values()), axis=0), "weighted T-CAM ψ (mean of streams)")
