"""KT-MGFN (Su et al., IEEE TMM 2020) and MGFN, its variant without knowledge transfer, on cached features.

One model reads both streams concatenated row by row, (B, T, 2D) (the paper
concatenates the two networks' outputs into one feature vector per unit).
Its parts, as implemented (Sections III.C-F; docs/methods/kt-mgfn.md lists
every choice where the paper is silent or this code differs):

- **MDCM** (multi-dilated convolution module): two temporal convolutions
  (kernel ``--kernel``, ``--hidden-dim`` filters, ReLU) as the base, then one
  branch per dilation in ``--dilations`` (1, 2, 3, 5: a conv of the same
  kernel and width with that dilation, ReLU), each followed by its own FC
  layer to the classes. A branch's class sequence is its FC applied row by
  row; its video logits are that sequence averaged over the real rows,
  which equals the FC applied to the GAP of the branch's features. Each
  branch's video logits are trained with multi-label sigmoid cross-entropy
  (the branches' losses averaged). The paper's ``H = H0 + mean(H1..Hn)``
  is taken on per-branch sigmoids and halved: ``H = (σ(H0) + mean σ(Hi)) /
  2``, so H lies in [0, 1] and the paper's absolute thresholds (activation
  0.1, erasing 0.8) mean something. With one dilation (MDCM off) ``H =
  σ(H0)``.
- **Padding**: the convolutions run over the batch's real rows laid end
  to end, each video followed by as many zero rows as a conv reads beyond
  a row (``Packed``), zeroed again after every convolution: a video sees
  exactly the zero padding it would see alone (zero padding of a conv is
  the same as zero rows), so its outputs do not depend on the batch, and
  the padding of a batch costs no convolution.
- **CCM** (cascaded classification with online adversarial erasing):
  ``--stages`` classifiers of the same architecture. Stage k sees the
  features with rows zeroed where the running maximum of the earlier
  stages' CAS, for the selected classes, exceeds ``--xi-era`` (0.8) times
  its per-video maximum (the paper does not say relative to what; relative
  to the video's peak keeps the rule meaningful whatever the CAS's scale).
  ``--erase-scale range`` measures it on the CAS min-max normalised per
  video instead: on a nearly flat CAS (an untrained model's sigmoids all
  sit near 0.5) the ``max`` rule erases every row.
  Selected classes: the video's ground-truth classes in training, the
  ``--erase-top-k`` classes with the highest stage-1 video score at test.
  Erased rows stay in the GAP (their features are zero; the video's length
  is unchanged). The erasure mask is computed without gradient. Final CAS
  = the element-wise maximum over stages.
- **BRM** (boundary regression): three temporal convs (128 filters, kernel
  3, ReLU) on the input features, then a conv (kernel 3) with 2M outputs
  (p_x, p_w per anchor scale). Anchors sit at row centres ``t_x = i + 0.5``
  (row i covers [i, i + 1)), with the lengths ``--anchors`` in rows.
  Decoding ``r_x = t_x + t_w p_x``, ``r_w = t_w exp(p_w)``, inner ``[s, e]
  = r_x ∓ r_w / 2``, outer ``[S, E] = [s − γ r_w, e + γ r_w]``, γ =
  ``--gamma`` 0.25 (AutoLoc's; the paper gives none). p_w is clamped to
  [−4, 4] before ``exp`` (stability; not in the paper). The last conv
  starts at zero, so training starts from the anchors themselves.
- **OIC loss** (AutoLoc's form; the paper's Eq. 2 is misprinted): mean CAS
  over the outer margins ``[S, s)`` and ``(e, E]`` minus the mean CAS inside
  ``[s, e]``, with the CAS read as piecewise constant and its integral (a
  cumulative sum, linearly interpolated) evaluated at the continuous
  boundaries, so the loss is differentiable in them. Boundaries are clipped
  to the video; a margin outside it does not count, and an anchor left with
  no outer (or no inner) length inside the video has no contrast and is
  never selected (with an outer mean of 0 an anchor covering the whole
  video would beat every real one on a flat CAS). In training, per video and ground-truth class: positions
  whose CAS is below ``--act-floor`` (0.1) are dropped, the scale with the
  lowest OIC loss is kept per position, kept anchors whose loss is above
  ``--oic-ceiling`` (−0.3) are dropped. The loss is the mean over kept
  anchors (``--oic-reduction mean``) or, as the paper, their sum
  (``sum``; averaged over videos of the batch): the sum grows with the
  anchors a video keeps, and on THUMOS14-length windows it swamped the
  class losses (docs/methods/mgfn.md). ``--oic-to-cas`` chooses whether its
  gradient also reaches the CAS (the paper trains end to end). The paper
  also runs soft-NMS on the kept anchors in training; as the loss is a sum
  of the kept anchors' losses and soft-NMS only re-scores, we leave it out.
- **Schedule**: the paper trains 30 epochs without the regressor, then 70
  with everything at a tenth of the learning rate. Here the first
  ``--brm-after`` (0.3) of the main-stage epochs train without L_OIC, the
  rest with it and the learning rates times ``--lr-drop`` (0.1), through
  the trainer's per-epoch hook ``Method.epoch_start`` (set from the epoch
  index, so a resumed run follows the same schedule). The trimmed
  pre-training stage keeps the configured rate, and so does a model
  without the BRM (``--no-brm``): the paper's second phase is the one that
  adds the regressor. λ = 1e-4 of Eq. 4 is the shared ``--weight-decay`` (Adam's weight decay
  w adds w·θ to the gradient, the gradient of (w/2)||θ||², so the paper's
  λ is ``--weight-decay 2e-4``).
- **KTM** (``kt-mgfn`` only): the trimmed branch is, by default
  (``--trimmed-branch shared``), the untrimmed network's stage-1 MDCM
  itself: the paper gives the two branches "identical settings" and does
  not say whether they share weights; sharing lets what the trimmed clips
  teach reach the network that localises (TSRNet shares its classifier for
  the same reason). ``own-convs`` gives the trimmed branch its own base and
  dilated convolutions and shares only the stage-1 FC layers, so the GAP
  representations of both branches still live in the space one classifier
  reads. The trimmed branch is trained alone first on trimmed clips with the classification loss (the
  shared ``trimmed`` stage), then jointly: L = L_class(U) + α L_OIC + β
  MMD²(GAP_T, GAP_U) + ``--trimmed-class-weight`` L_class(T), the GAP
  representation being the concatenation of the stage-1 branches' pooled
  features, untrimmed videos paired with class-matched trimmed clips by the
  shared batching (``batch.trimmed``, ``batch.pair``), MMD² the project's
  ``GaussianMMD``. α = 10, β = 10 (Eq. 4).
- **Sampling**: ``--sampling window`` (default) trains on ``--max-rows``
  consecutive rows, which temporal convolutions need as neighbours;
  ``segments`` is the paper's sparse sampling (one random row in each of
  ``--max-rows`` equal segments). Detection reads every row.
- **Fixed length** (ActivityNet): ``--fixed-length L`` rescales each
  sequence to L rows by linear interpolation (``F.interpolate``, half-row
  aligned) before the model; at test the CAS and the regression values
  are interpolated back to the video's rows, and the anchors, L-row
  lengths of the rescaled video, become ``T / L`` times as long. With
  ``--max-rows 0`` training sees whole videos, as the paper.
- **Inference** (``evidence``): with the BRM, anchors of every kept class are
  filtered as in training (on the final CAS), decoded, and scored ``p_conf
  = p_act · p_oic · p_class`` (mean CAS inside, 1 − L_OIC, the stage-1
  video score: the mean over branches of the branches' sigmoid video
  scores); they reach the shared suppression as ready-made intervals
  (``Evidence.intervals``), Gaussian soft-NMS with ε = 0.75 above tIoU 0.5
  by default. Without the BRM the final CAS is thresholded by the shared
  post-processing (normalised 0.2, mean × video score).

Table V's ablations: MDCM off = ``--dilations 1``; CCM off = ``--stages 1``;
BRM off = ``--no-brm``; KTM off = ``--model mgfn``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tsrnet.data.format.batching import Strata, Window
from tsrnet.data.core.settings import opt
from tsrnet.detect.localize import Evidence, Source

from ..losses import classification_loss
from ..modules import GaussianMMD
from ..packed import Packed, dropout, relu_conv
from .base import THUMOS14_TIOU, Method, MethodModule, float32_loss, published_row, register, to_float32
from .oic import anchor_oic, select_anchors

KEY = "fused"  # the one sequence (both streams concatenated): the key of its rows and video scores


@dataclass
class MGFNOptions:
    hidden_dim: int = opt(256, "Filters of the MDCM's base and dilated temporal convolutions (not given in the "
                          "paper; 512 scored within seed noise of 256 at 2.7 times the time: "
                          "docs/studies/mgfn-width.md).")
    kernel: int = opt(3, "Kernel size of the MDCM's convolutions (odd; not given in the paper).")
    dilations: list = opt([1, 2, 3, 5], "Dilation of each MDCM branch; the first gives H0, the others H1..Hn "
                          "(the paper's 1, 2, 3, 5; '1' alone = MDCM off).")
    dropout: float = opt(0.5, "Dropout on the branches' features before their FC layers (not given in the paper).")
    stages: int = opt(2, "Classifiers of the cascade (CCM); 1 = CCM off (the paper: two > three > one).")
    xi_era: float = opt(0.8, "Erasing threshold: a row is erased for the next stage where the CAS of a selected "
                        "class exceeds this fraction of its per-video maximum (--erase-scale max) or of its "
                        "per-video range above the minimum (range).")
    erase_scale: str = opt("max", "What --xi-era is relative to: 'max' = the CAS's per-video maximum; 'range' = "
                           "the CAS min-max normalised per video (on a nearly flat CAS, 'max' erases every row).",
                           choices=("max", "range"))
    erase_top_k: int = opt(1, "At test, the classes whose rows are erased: this many with the highest stage-1 "
                           "video score (training erases the ground-truth classes).")
    brm: bool = opt(True, "Use the boundary regression module (BRM) with the OIC loss; without it intervals come "
                    "from thresholding the CAS.")
    anchors: list = opt([1, 2, 4, 8, 16, 32], "Anchor lengths in rows (THUMOS: 1 ... 32; ActivityNet: 4 ... 128).")
    gamma: float = opt(0.25, "Outer boundary inflation, a fraction of the inner length on each side (AutoLoc's).")
    alpha: float = opt(10.0, "Weight of L_OIC (Eq. 4).")
    act_floor: float = opt(0.1, "Anchors at positions whose CAS (of the class) is below this are dropped.")
    oic_ceiling: float = opt(-0.3, "Kept anchors whose OIC loss is above this are dropped.")
    # Not the paper's sum: summed over the ~1,000-2,000 anchors a THUMOS14 window keeps, 10 L_OIC outweighed the
    # class losses by two orders of magnitude once switched on, and MGFN stopped classifying (docs/methods/mgfn.md).
    oic_reduction: str = opt("mean", "L_OIC over the kept anchors: 'mean' over them, or 'sum' (the paper's), "
                             "averaged over the videos of the batch.", choices=("sum", "mean"))
    oic_to_cas: bool = opt(True, "Let L_OIC's gradient reach the CAS (end-to-end, as the paper); off = the "
                           "regressor learns on a fixed CAS.")
    brm_after: float = opt(0.3, "With the BRM: fraction of the main-stage epochs trained without L_OIC, after "
                           "which it is switched on and the learning rates are multiplied by --lr-drop (the paper: "
                           "30 of 100 epochs); 0 = everything from the start at the configured rates.",
                           range=(0.0, 1.0))
    lr_drop: float = opt(0.1, "Factor on --lr and --lr-flow once L_OIC is on (the paper: 1e-3 then 1e-4).")
    sampling: str = opt("window", "Training rows: 'window' = --max-rows consecutive rows from a random start "
                        "(true neighbours for the convolutions); 'segments' = one random row in each of "
                        "--max-rows equal segments (the paper's sparse sampling).", choices=("window", "segments"))
    max_rows: int = opt(512, "Rows per training video (0 = all rows).")
    fixed_length: int = opt(0, "Rescale every sequence (the training sample, and the whole video at test) to this "
                            "many rows by linear interpolation before the model, and its outputs back (the paper's "
                            "ActivityNet recipe: 256, with --max-rows 0); 0 = off.")


@dataclass
class KTMGFNOptions(MGFNOptions):
    beta: float = opt(10.0, "Weight of L_KT, MMD² between the GAP representations of trimmed and untrimmed videos "
                      "(Eq. 4).")
    trimmed_class_weight: float = opt(1.0, "Weight of L_class on the trimmed clips while transferring.")
    mmd_bandwidths: list = opt([0.25, 0.5, 1.0, 2.0, 4.0],
                               "Gaussian kernel bandwidths, as multiples of the median pairwise distance.")
    max_rows_trimmed: int = opt(64, "Consecutive rows per trimmed clip while training.")
    trimmed_branch: str = opt("shared", "The trimmed branch: 'shared' = the untrimmed network's stage-1 MDCM itself "
                              "(trimmed clips train it first); 'own-convs' = its own base and dilated convs with the "
                              "stage-1 FC layers shared.", choices=("shared", "own-convs"))


# -- building blocks ---------------------------------------------------------------------------------


class MDCM(nn.Module):
    """Base convs + dilated branches (their convolutions), and optionally their FC layers.

    The trimmed branch of KT-MGFN is an MDCM without FC layers: it borrows the
    untrimmed network's stage-1 FCs (``fcs`` of :meth:`forward`).
    """

    def __init__(self, in_dim: int, width: int, n_classes: int, dilations, kernel: int, dropout: float,
                 with_fc: bool = True):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel {kernel} must be odd")
        pad = kernel // 2
        self.base = nn.ModuleList([nn.Conv1d(in_dim, width, kernel, padding=pad),
                                   nn.Conv1d(width, width, kernel, padding=pad)])
        self.branches = nn.ModuleList([nn.Conv1d(width, width, kernel, dilation=int(d), padding=int(d) * pad)
                                       for d in dilations])
        self.fcs = nn.ModuleList([nn.Linear(width, n_classes) for _ in dilations]) if with_fc else None
        self.dropout = float(dropout)
        self.reach = max(int(d) for d in dilations) * pad  # rows a conv reads beyond each side of a row

    def packed_features(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[Packed, list]:
        """x: (B, T, D), mask: (B, T) -> the packing and each branch's features (W, L), zero on gap rows."""
        rows = Packed(mask, self.reach, x.dtype)
        h = rows.pack(x)  # (1, D, L)
        for conv in self.base:
            h = relu_conv(conv, h, rows.gaps)
        return rows, [relu_conv(b, h, rows.gaps)[0] for b in self.branches]  # n_branches x (W, L)

    def features(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D), mask: (B, T) -> (B, n_branches, T, W) branch features, zero outside the video."""
        rows, f = self.packed_features(x, mask)
        return rows.unpack(torch.stack(f)).transpose(2, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, fcs=None) -> dict:
        """Row logits (B, n, T, C), video logits (B, n, C), GAP representation (B, n * W)."""
        fcs = self.fcs if fcs is None else fcs
        rows, f = self.packed_features(x, mask)  # n x (W, L)
        # Each branch's FC row by row on the packed rows, as W (C, W) @ f (W, L); a padded slot reads a gap
        # row, where FC(0) = the bias.
        logits = torch.stack([torch.addmm(fc.bias.unsqueeze(1), fc.weight, dropout(fi, self.dropout, self.training))
                              for fi, fc in zip(f, fcs)])  # (n, C, L)
        row_logits = rows.unpack(logits).transpose(2, 3)  # (B, n, T, C)
        m = mask.to(x.dtype)[:, None, :, None]  # (B, 1, T, 1)
        n = m.sum(dim=2).clamp_min(1)  # (B, 1, 1)
        video = (row_logits * m).sum(dim=2) / n  # = FC(GAP(features)): the FC is linear
        gap = torch.stack([fi @ rows.owner for fi in f]).permute(2, 0, 1) / n  # (B, n, W): rows summed, no dropout
        return {"rows": row_logits, "video": video, "gap": gap.flatten(1)}


def fused_cas(row_logits: torch.Tensor) -> torch.Tensor:
    """The paper's H = H0 + mean(H1..Hn) on per-branch sigmoids, halved into [0, 1]: (B, n, T, C) -> (B, T, C)."""
    p = torch.sigmoid(row_logits)
    if p.shape[1] == 1:
        return p[:, 0]
    return (p[:, 0] + p[:, 1:].mean(dim=1)) / 2


def erase_rows(cas: torch.Tensor, selected: torch.Tensor, mask: torch.Tensor, xi: float,
               scale: str = "max") -> torch.Tensor:
    """Rows to erase: where the CAS of a selected class exceeds ``xi`` times its per-video maximum
    (``scale="max"``), or ``min + xi (max - min)`` over the video (``"range"``).

    cas: (B, T, C), selected: (B, C) bool, mask: (B, T) bool -> (B, T) bool.
    """
    m = mask.unsqueeze(-1)
    peak = cas.masked_fill(~m, float("-inf")).amax(dim=1, keepdim=True)  # (B, 1, C)
    if scale == "range":
        low = cas.masked_fill(~m, float("inf")).amin(dim=1, keepdim=True)
        bar = low + xi * (peak - low)
    else:
        bar = xi * peak
    above = (cas > bar) & selected.unsqueeze(1) & m
    return above.any(dim=-1)


class BRM(nn.Module):
    """Three temporal convs (128, kernel 3, ReLU) and a conv to (p_x, p_w) for each of M anchor scales."""

    def __init__(self, in_dim: int, n_anchors: int, width: int = 128, kernel: int = 3):
        super().__init__()
        pad = kernel // 2
        self.convs = nn.ModuleList([nn.Conv1d(in_dim if i == 0 else width, width, kernel, padding=pad)
                                    for i in range(3)])
        self.out = nn.Conv1d(width, 2 * n_anchors, kernel, padding=pad)
        nn.init.zeros_(self.out.weight)  # start from the anchors themselves
        nn.init.zeros_(self.out.bias)
        self.m = n_anchors
        self.reach = pad

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) -> (B, T, M, 2): p_x, p_w of each anchor."""
        rows = Packed(mask, self.reach, x.dtype)
        h = rows.pack(x)  # (1, D, L)
        for conv in self.convs:
            h = relu_conv(conv, h, rows.gaps)
        p = rows.unpack(self.out(h).index_fill_(-1, rows.gaps, 0.0)[0])  # (B, 2M, T), zero outside the video
        b, _, t = p.shape
        return p.view(b, self.m, 2, t).permute(0, 3, 1, 2)


# -- the model ---------------------------------------------------------------------------------------
class MGFNModel(MethodModule):
    def __init__(self, streams, dim: int, classes, opts: MGFNOptions, transfer: bool):
        super().__init__(streams, classes)
        if opts.stages < 1 or not opts.dilations:
            raise ValueError("need at least one stage and one dilation")
        self.opts = opts
        in_dim = dim * len(self.streams)
        c = len(classes)
        self.stages = nn.ModuleList([MDCM(in_dim, opts.hidden_dim, c, opts.dilations, opts.kernel, opts.dropout)
                                     for _ in range(opts.stages)])
        self.brm = BRM(in_dim, len(opts.anchors)) if opts.brm else None
        own = transfer and opts.trimmed_branch == "own-convs"
        self.trimmed = (MDCM(in_dim, opts.hidden_dim, c, opts.dilations, opts.kernel, opts.dropout, with_fc=False)
                        if own else None)

    @property
    def outputs(self) -> tuple:
        return (KEY,)

    def sequence(self, x: dict, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both streams concatenated, (B, T, 2D), rescaled to ``--fixed-length`` rows when set (mask then all true)."""
        seq = torch.cat([x[s] for s in self.streams], dim=-1)
        if self.opts.fixed_length > 0:
            seq = rescale(seq, mask.sum(dim=1), self.opts.fixed_length)
            mask = torch.ones(seq.shape[:2], dtype=torch.bool, device=seq.device)
        return seq, mask

    def forward(self, x: dict, mask: torch.Tensor, targets: torch.Tensor | None = None) -> dict:
        """Every stage; erasing by ``targets`` (B, C) in training, by stage 1's top classes without them.

        With ``--fixed-length`` the outputs are at that many rows; ``mask`` of the output says which are real.
        """
        seq, mask = self.sequence(x, mask)
        outs, cas = [], None
        for k, stage in enumerate(self.stages):
            inp = seq
            if k > 0:
                with torch.no_grad():
                    if targets is not None:
                        sel = targets > 0.5
                    else:
                        vp = outs[0]["video_prob"]
                        top = vp.topk(max(1, min(self.opts.erase_top_k, vp.shape[1])), dim=1)
                        sel = torch.zeros_like(vp, dtype=torch.bool).scatter(1, top.indices, True)
                    erased = erase_rows(cas, sel, mask, self.opts.xi_era, self.opts.erase_scale)
                inp = seq * (~erased).unsqueeze(-1).to(seq.dtype)
            o = stage(inp, mask)
            o["cas"] = fused_cas(o["rows"])
            o["video_prob"] = torch.sigmoid(o["video"]).mean(dim=1)  # (B, C)
            outs.append(o)
            cas = o["cas"] if cas is None else torch.maximum(cas, o["cas"])
        out = {"stages": outs, "cas": cas, "video_prob": outs[0]["video_prob"], "mask": mask}
        if self.brm is not None:
            out["p"] = self.brm(seq, mask)
        return out

    def trimmed_forward(self, x: dict, mask: torch.Tensor) -> dict:
        """The trimmed branch on trimmed clips: stage 1 itself, or its own convs with stage 1's FCs."""
        seq, mask = self.sequence(x, mask)
        if self.trimmed is None:
            return self.stages[0](seq, mask)
        return self.trimmed(seq, mask, fcs=self.stages[0].fcs)

    @torch.no_grad()
    def score(self, x: dict, mask: torch.Tensor) -> dict:
        """Rows under one key (``fused``): the final CAS ``cas`` (B, T, C), stage 1's ``cas_stage1``, and with the
        BRM the regression values ``brm_px{m}``, ``brm_pw{m}`` (B, T) of each anchor scale m."""
        o = self(x, mask)
        rows = {"cas": o["cas"], "cas_stage1": o["stages"][0]["cas"]}
        if "p" in o:
            for m in range(o["p"].shape[2]):
                rows[f"brm_px{m}"], rows[f"brm_pw{m}"] = o["p"][:, :, m, 0], o["p"][:, :, m, 1]
        if self.opts.fixed_length > 0:  # back to each video's rows (the BRM's anchors are rescaled in evidence)
            n = mask.sum(dim=1)
            rows = {k: restore(v, n, mask.shape[1]) for k, v in rows.items()}
        return {"rows": {KEY: rows}, "video_prob": {KEY: o["video_prob"]}}


def rescale(seq: torch.Tensor, lengths: torch.Tensor, size: int) -> torch.Tensor:
    """Each video's real rows (B, T, D) with ``lengths`` (B,) linearly interpolated to ``size`` rows: (B, size, D)."""
    return torch.stack([F.interpolate(seq[b, :int(n)].t().unsqueeze(0), size=size, mode="linear",
                                      align_corners=False)[0].t() for b, n in enumerate(lengths)])


def restore(v: torch.Tensor, lengths: torch.Tensor, t: int) -> torch.Tensor:
    """Outputs at a fixed length (B, L[, C]) back to each video's ``lengths`` rows, zero-padded to ``t``."""
    flat = v if v.dim() == 3 else v.unsqueeze(-1)
    out = flat.new_zeros(flat.shape[0], t, flat.shape[2])
    for b, n in enumerate(lengths):
        out[b, :int(n)] = F.interpolate(flat[b].t().unsqueeze(0), size=int(n), mode="linear",
                                        align_corners=False)[0].t()
    return out if v.dim() == 3 else out.squeeze(-1)


# -- the method --------------------------------------------------------------------------------------
class _MGFN(Method):
    transfer: bool = False
    detect_defaults = dict(scale="video", suppress="soft-nms")  # the rest: DetectConfig's
    # The paper's schedule is 100 epochs (30 without the regressor, then 70 with it; --brm-after 0.3): on
    # THUMOS14's 200 validation videos about 1,300 steps, on 40 training videos 300.
    train_defaults = dict(epochs=100)

    def __init__(self, options=None):
        super().__init__(options)
        self.oic_on = True  # L_OIC in the loss; the schedule (epoch_start) switches it per epoch
        if self.transfer:
            self.mmd = GaussianMMD(self.options.mmd_bandwidths)

    def epoch_start(self, stage, index, total):
        """The paper's two phases in the main stage: without L_OIC, then with it at a lower learning rate."""
        if stage != "main" or not self.options.brm:  # without the regressor there is no second phase
            return 1.0
        self.oic_on = index >= self.options.brm_after * total
        return self.options.lr_drop if (self.oic_on and self.options.brm_after > 0) else 1.0

    def build(self, streams, dim, classes):
        return MGFNModel(streams, dim, classes, self.options, self.transfer)

    def sampler(self):
        o = self.options
        return Window(o.max_rows) if o.sampling == "window" else Strata(o.max_rows)

    def trimmed_sampler(self):
        return Window(getattr(self.options, "max_rows_trimmed", 0))

    def loss(self, model: MGFNModel, batch, stage):
        if stage == "trimmed":
            o = model.trimmed_forward(batch.x, batch.mask)
            with float32_loss(batch.mask.device):
                lt = branch_loss(o["video"].float(), batch.targets)
            return lt, {"trimmed_class": lt.detach()}
        return self.untrimmed_loss(model, batch)

    def untrimmed_loss(self, model: MGFNModel, batch):
        out = model(batch.x, batch.mask, batch.targets)
        t = batch.trimmed
        ot = model.trimmed_forward(t.x, t.mask) if self.transfer and t is not None else None
        # The networks may run under bf16 autocast (--precision); the loss terms may not: L_OIC's anchor
        # positions lose the half row above row 128 in bf16, and its inner and outer means are differences of
        # running sums of the CAS, which bf16 cancels to errors the size of --oic-ceiling.
        with float32_loss(batch.mask.device):
            return self._untrimmed_terms(to_float32(out), to_float32(ot), batch)

    def _untrimmed_terms(self, out: dict, ot: dict | None, batch):
        """The loss of the networks' outputs ``out`` (untrimmed) and ``ot`` (trimmed partners, or None)."""
        o_ = self.options
        parts, total = {}, 0.0
        for k, st in enumerate(out["stages"]):
            lc = branch_loss(st["video"], batch.targets)
            total = total + lc
            parts[f"class_stage{k + 1}"] = lc.detach()
        if "p" in out:  # the model has a BRM
            lo, n_kept = self.oic_loss(out, batch)
            total = total + float(self.oic_on) * o_.alpha * lo
            parts["oic"], parts["oic_anchors"], parts["oic_on"] = lo.detach(), float(n_kept), float(self.oic_on)
        t = batch.trimmed
        if ot is not None:
            lt = branch_loss(ot["video"], t.targets)
            total = total + o_.trimmed_class_weight * lt
            parts["trimmed_class"] = lt.detach()
            if len(batch.pair) > 1:  # MMD of one sample against one is just a distance; skip
                kt = self.mmd(ot["gap"], out["stages"][0]["gap"][batch.pair])
                total = total + o_.beta * kt
                parts["kt"] = kt.detach()
        return total, parts

    def oic_loss(self, out: dict, batch) -> tuple[torch.Tensor, int]:
        """L_OIC of the kept anchors of the videos' ground-truth classes (sum per video, averaged; or mean)."""
        o_ = self.options
        cas = out["cas"] if o_.oic_to_cas else out["cas"].detach()
        a = anchor_oic(cas, out["p"], o_.anchors, o_.gamma)
        allowed = out["mask"].unsqueeze(-1) & (batch.targets > 0.5).unsqueeze(1)  # (B, T, C)
        best, keep = select_anchors(a["loss"], cas, allowed, o_.act_floor, o_.oic_ceiling, a["valid"])
        chosen = a["loss"].gather(2, best.unsqueeze(2)).squeeze(2)  # (B, T, C)
        kept = (chosen * keep.to(chosen.dtype)).sum()
        n = int(keep.sum())
        if o_.oic_reduction == "mean":
            return kept / max(n, 1), n
        return kept / keep.shape[0], n

    # -- detection ---------------------------------------------------------------------------------
    def evidence(self, vs, cfg):
        r = vs.rows[KEY]
        cas = r["cas"]  # (T, C)
        video = vs.video_prob[KEY]
        if not self.options.brm:
            return Evidence(video, [Source(cas, cas)], cas, "final CAS max(H, H̄)")
        return Evidence(video, [], cas, "final CAS max(H, H̄)", intervals=self.regressed(r, cas, video))

    def regressed(self, r: dict, cas: np.ndarray, video: np.ndarray) -> list:
        """Intervals from the regressed anchors: [(class, start_row, end_row, p_conf), ...], rows continuous."""
        o_ = self.options
        m = len(o_.anchors)
        p = torch.from_numpy(np.stack([np.stack([r[f"brm_px{i}"], r[f"brm_pw{i}"]], axis=-1) for i in range(m)],
                                      axis=1)).double().unsqueeze(0)  # (1, T, M, 2)
        c = torch.from_numpy(cas).double().unsqueeze(0)  # (1, T, C)
        # With --fixed-length the anchors were L-row lengths of the rescaled video: in this video's rows they
        # are T / L times as long (the regression values were interpolated back to its rows in score()).
        scales = [a * cas.shape[0] / o_.fixed_length for a in o_.anchors] if o_.fixed_length > 0 else o_.anchors
        a = anchor_oic(c, p, scales, o_.gamma)
        allowed = torch.ones_like(c, dtype=torch.bool)
        best, keep = select_anchors(a["loss"], c, allowed, o_.act_floor, o_.oic_ceiling, a["valid"])
        loss = a["loss"].gather(2, best.unsqueeze(2)).squeeze(2)[0]  # (T, C)
        inner = a["inner"].gather(2, best.unsqueeze(2)).squeeze(2)[0]
        s = a["s"][0].gather(1, best[0]).clamp(0, cas.shape[0])  # (T, C)
        e = a["e"][0].gather(1, best[0]).clamp(0, cas.shape[0])
        keep = keep[0] & (e > s)
        out = []
        for t_, k in zip(*np.nonzero(keep.numpy())):
            conf = float(inner[t_, k]) * (1.0 - float(loss[t_, k])) * float(video[k])
            out.append((int(k), float(s[t_, k]), float(e[t_, k]), conf))
        return out


def branch_loss(video_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multi-label sigmoid cross-entropy of each branch's video logits (B, n, C), averaged over branches."""
    return torch.stack([classification_loss(video_logits[:, i], targets)
                        for i in range(video_logits.shape[1])]).mean()


@register
class MGFN(_MGFN):
    name = "mgfn"
    description = "MGFN: multi-dilated CAS, cascaded erasing, OIC boundary regression (KT-MGFN without transfer)"
    Options = MGFNOptions
    # The MDCM's convolutions are about 3/4 of a step; bf16 takes the default step from 0.26 to 0.19 s on
    # 2 AVX512-BF16 cores (bench_mgfn.py) and left the results level (docs/benchmarks.md, Training).
    prefers_bf16 = True


@register
class KTMGFN(_MGFN):
    name = "kt-mgfn"
    description = "KT-MGFN: MGFN + MMD transfer from trimmed clips (Su et al., TMM 2020)"
    Options = KTMGFNOptions
    uses_trimmed = True
    transfer = True
    # Not prefers_bf16, unlike MGFN: in bf16 its default training lost 12 points of mAP@0.5 on the
    # planted-action set (13.9 ± 3.5 against 25.6 ± 2.5, three seeds each, Welch p = 0.01).
    published = {"thumos14": {
        "kt-mgfn": published_row(THUMOS14_TIOU[:7], (56.5, 51.3, 42.2, 33.8, 25.6, 17.0, 7.5), "I3D",
                                 "KT-MGFN Table III"),
        "kt-mgfn (UntrimmedNet features)": published_row(THUMOS14_TIOU[:7], (52.3, 46.6, 39.0, 30.7, 22.7, 13.6, 5.9),
                                                         "UntrimmedNet", "KT-MGFN Table III"),
    }}
