"""Two-stream weakly supervised models and their losses.

All methods share :class:`StreamNet` (pooling + classifier per stream) and
:class:`TwoStreamModel` (one StreamNet per stream, fusion, per-row scores for
detection). A method is a :class:`Method`: which pooling it uses and which
transfer terms it adds; :func:`compute_loss` assembles Eq. (9) from the parts
a method switches on.

TSRNet's knowledge transfer (Eqs. 6-8), as implemented:

- The trimmed network is the same architecture. It has its own attention
  module (trimmed clips need no smoothness or sparsity) and *shares the
  classifier* (FC1, FC2) with the untrimmed network: the paper "feeds the
  parameters of intermediate FC layers to the transfer module"; sharing them
  is the reading under which MMD at FC1's input and output aligns the two
  domains for one classifier.
- It is first trained alone on the trimmed clips with L_class
  (``pretrain_epochs``), then jointly: L = L_class(U) + R_SA(U) +
  w_T L_class(T) + w_KT (MMD^2(T, U) + MMD^2(FC1(T), FC1(U))).
- Each untrimmed video in a batch is paired with a trimmed clip of one of its
  labels (classes matched by name), so T and U have the same class mix; a
  video none of whose labels exists in the trimmed set has no partner and
  takes part in L_SA only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import LossConfig, ModelConfig
from .losses import background_loss, classification_loss, self_attention_regulariser
from .modules import Classifier, GaussianMMD, SelfAttention, attend, complement, uniform_attention


@dataclass(frozen=True)
class Method:
    name: str
    attention: bool
    transfer: tuple[str, ...]  # MMD places: "fc1_in" (Eq. 7), "fc1_out" (Eq. 8)
    description: str

    @property
    def uses_trimmed(self) -> bool:
        return bool(self.transfer)


METHODS = {
    m.name: m
    for m in (
        Method("two-stream", False, (), "Two-Stream: mean pooling, no attention, no transfer"),
        Method("srnet", True, (), "SRNet: self-attention, no transfer"),
        Method("tsrnet-fc1", True, ("fc1_in",), "TSRNet w/o L_FC2: transfer at FC1's input only"),
        Method("tsrnet", True, ("fc1_in", "fc1_out"), "TSRNet: self-attention + transfer (L_FC1 + L_FC2)"),
    )
}


class StreamNet(nn.Module):
    """One stream: attention pooling (or mean pooling) and the classifier."""

    def __init__(self, dim: int, n_classes: int, cfg: ModelConfig, attention: bool, trimmed_attention: bool):
        super().__init__()
        self.hops = cfg.attention_hops if attention else 1
        self.attention = SelfAttention(dim, cfg.attention_dim, self.hops, cfg.attention) if attention else None
        self.trimmed_attention = (
            SelfAttention(dim, cfg.attention_dim, self.hops, cfg.attention) if trimmed_attention else None
        )
        self.classifier = Classifier(self.hops * dim, cfg.hidden_dim, n_classes, cfg.dropout)

    def weights(self, x, mask, trimmed: bool = False):
        # -> a, g: (B, T, r)
        module = self.trimmed_attention if (trimmed and self.trimmed_attention is not None) else self.attention
        return uniform_attention(mask) if module is None else module(x, mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, trimmed: bool = False) -> dict:
        # x: (B, T, D), mask: (B, T)
        a, g = self.weights(x, mask, trimmed)
        m = attend(x, a)  # (B, r*D): the input of FC1
        logits, h1 = self.classifier(m)  # (B, C), (B, hidden)
        return {"logits": logits, "m": m, "h1": h1, "a": a, "g": g}

    def row_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation of each row, ``v_c^T x_i`` of Eq. (10): x (..., D) -> (..., C).

        With r hops the classifier takes r*D inputs; a row stands for a video
        made of that row alone, whose pooled representation is the row
        repeated r times.
        """
        return self.classifier(x.repeat(*([1] * (x.dim() - 1)), self.hops))[0]


class TwoStreamModel(nn.Module):
    """One :class:`StreamNet` per stream; video scores fused as in Eq. (11)."""

    def __init__(self, streams, dim: int, classes: list[str], cfg: ModelConfig):
        super().__init__()
        self.method = METHODS[cfg.model]
        self.streams = tuple(streams)
        self.classes = list(classes)
        trimmed_attn = self.method.uses_trimmed and self.method.attention and not cfg.share_trimmed_attention
        self.nets = nn.ModuleDict(
            {s: StreamNet(dim, len(classes), cfg, self.method.attention, trimmed_attn) for s in self.streams}
        )

    def forward(self, x: dict, mask: torch.Tensor, trimmed: bool = False) -> dict:
        return {s: self.nets[s](x[s], mask, trimmed) for s in self.streams}

    @torch.no_grad()
    def localise(self, x: dict, mask: torch.Tensor) -> dict:
        """Per stream: gates g (B, T) averaged over hops, row probabilities (B, T, C), video probabilities (B, C)."""
        out = {}
        for s in self.streams:
            net = self.nets[s]
            r = net(x[s], mask)
            out[s] = {
                "g": r["g"].mean(dim=-1),
                "row_prob": torch.sigmoid(net.row_logits(x[s])),
                "video_prob": torch.sigmoid(r["logits"]),
            }
        return out


def compute_loss(model: TwoStreamModel, batch, cfg: LossConfig, mmd: GaussianMMD, with_transfer: bool = True):
    """Eq. (9) for one batch: returns the total and its parts (detached) for the log.

    ``batch.trimmed`` is None, or the class-matched trimmed clips with
    ``batch.pair`` (indices of their untrimmed partners in the batch).
    """
    method = model.method
    out_u = model(batch.x, batch.mask)
    parts = {}
    total = 0.0
    for s in model.streams:
        o = out_u[s]
        lc = classification_loss(o["logits"], batch.targets)
        total = total + lc
        parts[f"class_{s}"] = lc.detach()
        if method.attention:
            reg, rp = self_attention_regulariser(o["g"], batch.mask, cfg.alpha, cfg.beta, cfg.smoothness)
            total = total + reg
            parts[f"smooth_{s}"], parts[f"sparsity_{s}"] = rp["smooth"], rp["sparsity"]
            if cfg.background > 0:
                net = model.nets[s]
                logits_bg, _ = net.classifier(attend(batch.x[s], complement(o["g"], batch.mask)))
                lb = background_loss(logits_bg)
                total = total + cfg.background * lb
                parts[f"background_{s}"] = lb.detach()
    t = batch.trimmed
    if with_transfer and method.uses_trimmed and t is not None:
        out_t = model(t.x, t.mask, trimmed=True)
        for s in model.streams:
            lt = classification_loss(out_t[s]["logits"], t.targets)
            total = total + cfg.trimmed_class_weight * lt
            parts[f"trimmed_class_{s}"] = lt.detach()
            kt = 0.0
            if len(batch.pair) > 1:  # MMD of one sample against one is just a distance; skip
                if "fc1_in" in method.transfer:
                    kt = kt + mmd(out_t[s]["m"], out_u[s]["m"][batch.pair])
                if "fc1_out" in method.transfer:
                    kt = kt + mmd(out_t[s]["h1"], out_u[s]["h1"][batch.pair])
                total = total + cfg.kt_weight * kt
                parts[f"kt_{s}"] = kt.detach()
    return total, parts


def trimmed_loss(model: TwoStreamModel, batch) -> tuple[torch.Tensor, dict]:
    """The trimmed network's objective: L_class on trimmed clips only."""
    out = model(batch.x, batch.mask, trimmed=True)
    total, parts = 0.0, {}
    for s in model.streams:
        lc = classification_loss(out[s]["logits"], batch.targets)
        total = total + lc
        parts[f"trimmed_class_{s}"] = lc.detach()
    return total, parts
