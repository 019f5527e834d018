"""The building blocks, one per idea of the paper.

Shapes: B videos, T rows (padded; ``mask`` marks real rows), D feature dim,
r attention hops, C classes.
"""
from __future__ import annotations

import torch
from torch import nn


class SelfAttention(nn.Module):
    """Eq. (1): attention logits ``e_i = w2 · tanh(W1 x_i)`` and their weights over time.

    Returns two views of the same logits:

    - ``a`` (B, T, r): pooling weights, summing to 1 over the real rows of
      each video, as the paper requires;
    - ``g`` (B, T, r): localisation weights in [0, 1], the ones R_SA
      regularises and detection thresholds.

    With ``kind="gate"`` (default), ``g = sigmoid(e)`` and ``a = g / n``
    (attention-weighted temporal average pooling, as STPN). Two choices
    depart from Eq. (1), for reasons we measured:

    - On softmax weights ``||a||_1`` is always 1, so Eq. (5) taken literally
      does nothing; on sigmoid gates it is a real sparsity term.
    - Normalising the gates to sum to 1 (``a = g / sum g``) makes pooling
      blind to their scale; sparsity then drives every logit down until
      ``g ≈ exp(e)``, i.e. back to a peaky softmax, and detections shrink to
      a few rows (mAP@0.5 fell from ~25 to ~0 on the synthetic benchmark as
      training went on). Dividing by n instead keeps the evidence of every
      attended row in the class score, so the classifier pushes whole actions
      towards 1 while sparsity pushes background towards 0: the "close to
      either 0 or 1" the paper asks of its regulariser.

    With ``kind="softmax"``, ``a`` is the literal softmax of Eq. (1) and
    ``g = a / max(a)``; trial runs showed this peaky ``g`` localises poorly
    (docs/studies/attention.md), so it is there for comparison only.
    """

    def __init__(self, dim: int, hidden: int, hops: int = 1, kind: str = "gate"):
        super().__init__()
        if kind not in ("gate", "softmax"):
            raise ValueError(f"attention kind {kind!r}")
        self.kind = kind
        self.W1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, hops)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, T, D), mask: (B, T) bool
        e = self.w2(torch.tanh(self.W1(x)))  # (B, T, r)
        m = mask.unsqueeze(-1)  # (B, T, 1)
        if self.kind == "gate":
            g = torch.sigmoid(e) * m
            a = g / m.sum(dim=1, keepdim=True).clamp_min(1)
        else:
            a = torch.softmax(e.masked_fill(~m, float("-inf")), dim=1)
            g = a / a.amax(dim=1, keepdim=True)
        return a, g


class CentredRows(nn.Module):
    """Rows less the stream's mean training row, for attention that pools with ``a = g / n``.

    SRNet's gates (``a = g / n``) and STPN's ``x̄ = Σ_t λ_t x_t / T`` pool the mass times an average of rows, so
    a component every row shares reaches the classifier as the mass times that component, and the class loss's
    gradient for each weight is mostly the same for every row: the attention learns a level, not which rows
    (docs/studies/defaults.md). A subclass calls ``init_centre(dim, on)`` and passes its rows through
    ``centred``. The mean is a running mean of the real rows seen in training (then fixed) kept in two buffers,
    ``centre`` and ``centre_count``, saved with the run; a run saved before the buffers existed loads with zeros,
    i.e. as it was trained.
    """

    def init_centre(self, dim: int, on: bool) -> None:
        self.centre_rows = bool(on)
        self.register_buffer("centre", torch.zeros(dim))
        self.register_buffer("centre_count", torch.zeros((), dtype=torch.float64))

    def centred(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The rows less the mean training row (when ``centre_rows``); in training mode the running mean is
        first updated with the batch's real rows (``mask``), an exact cumulative mean of every row seen."""
        if not self.centre_rows:
            return x
        if self.training and mask is not None:
            with torch.no_grad():
                m = mask.unsqueeze(-1).to(x.dtype)
                n = float(m.sum())
                if n > 0:
                    total = self.centre_count + n
                    batch_mean = ((x.detach() * m).sum(dim=(0, 1)) / n).to(self.centre.dtype)
                    self.centre += (batch_mean - self.centre) * float(n / total)
                    self.centre_count.fill_(float(total))
        return x - self.centre.to(x.dtype)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # A run saved before the centre existed has none: it loads with zeros, i.e. as it was trained.
        for k, v in (("centre", self.centre), ("centre_count", self.centre_count)):
            state_dict.setdefault(prefix + k, torch.zeros_like(v))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


def uniform_attention(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean pooling as attention (the Two-Stream baseline): a_i = 1/n, g_i = 1."""
    m = mask.unsqueeze(-1).float()  # (B, T, 1)
    return m / m.sum(dim=1, keepdim=True).clamp_min(1.0), m


def complement(g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pooling weights of the rows the gates leave out: ``(1 - g)`` over real rows, summing to 1.

    g: (B, T, r), mask: (B, T) -> (B, T, r). Normalised, so opening every gate
    a little does not empty the pool: its content is an average, whatever its mass.
    """
    w = (1.0 - g) * mask.unsqueeze(-1)
    return w / w.sum(dim=1, keepdim=True).clamp_min(1e-6)


def top_k_mean(scores: torch.Tensor, mask: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Per video and class, the mean of its ``k`` highest scores over the real rows.

    scores: (B, T, C), mask: (B, T), k: (B,) integers in [1, n] -> (B, C). UntrimmedNet's hard selection
    (k = n // 2 clips) and BaS-Net's video score (k = T // r rows) are both this.
    """
    s = scores.masked_fill(~mask.unsqueeze(-1), float("-inf")).sort(dim=1, descending=True).values
    csum = s.nan_to_num(neginf=0.0).cumsum(dim=1)  # (B, T, C)
    idx = (k - 1).view(-1, 1, 1).expand(-1, 1, scores.shape[-1])
    return csum.gather(1, idx).squeeze(1) / k.view(-1, 1).to(scores.dtype)


def attend(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``m = X a`` per hop, hops concatenated: x (B, T, D), a (B, T, r) -> (B, r*D)."""
    return torch.einsum("btr,btd->brd", a, x).flatten(1)


class Classifier(nn.Module):
    """FC1 -> ReLU -> FC2, with the paper's heavy dropout before each FC layer.

    ``forward`` returns the class logits and the FC1 output, the second place
    where L_KT measures MMD (Eq. 8).
    """

    def __init__(self, in_dim: int, hidden: int, n_classes: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, n_classes)

    def forward(self, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # m: (..., in_dim)
        h1 = torch.relu(self.fc1(self.drop(m)))  # (..., hidden)
        return self.fc2(self.drop(h1)), h1  # (..., C), (..., hidden)


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths=(0.25, 0.5, 1.0, 2.0, 4.0)) -> torch.Tensor:
    """Squared MMD between samples x (n, k) and y (m, k), Eq. (7).

    Biased (V-statistic) estimator, exactly Eq. (7): the three kernel means
    include the diagonal terms. It is never negative, and for two samples of
    one distribution it is O(1/n) rather than exactly 0. The Gaussian kernel is
    the mean of several kernels whose bandwidths are multiples of the median
    pairwise distance of the pooled sample (computed without gradient), so the
    loss needs no per-dataset bandwidth and stays informative as features move.
    """
    z = torch.cat([x, y], dim=0)  # (n+m, k)
    d2 = torch.cdist(z, z).pow(2)  # (n+m, n+m)
    with torch.no_grad():
        off = d2[~torch.eye(len(z), dtype=torch.bool, device=z.device)]
        med = off.median().clamp_min(1e-12) if off.numel() else d2.new_tensor(1.0)
    k = sum(torch.exp(-d2 / (2.0 * (s * s) * med)) for s in bandwidths) / len(bandwidths)
    n = len(x)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2.0 * k[:n, n:].mean()


class GaussianMMD(nn.Module):
    """``mmd2`` as a module, holding its bandwidth multipliers."""

    def __init__(self, bandwidths=(0.25, 0.5, 1.0, 2.0, 4.0)):
        super().__init__()
        self.bandwidths = tuple(float(b) for b in bandwidths)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return mmd2(x, y, self.bandwidths)
