"""Temporal convolutions over a batch of videos of unequal length, without computing on the padding.

The real rows of a padded batch are laid end to end (:class:`Packed`), each video followed by enough zero
rows that a convolution never reads the next video; any method with temporal convolutions can use it
(KT-MGFN's multi-dilated branches do).
"""
from __future__ import annotations

import torch
from torch import nn


class Packed:
    """The real rows of a padded batch laid end to end for the temporal convolutions, each video followed by
    ``gap`` zero rows.

    A conv of kernel k and dilation d reads d (k // 2) rows beyond each side of a row, so with ``gap`` at least
    that a video's first and last rows read zeros, exactly as zero padding gives them, and never the next
    video's rows. The convolutions then run over Σ n_b + B gap rows instead of B T: the padding of a batch
    of videos of unequal length costs nothing (a third of the rows of the default synthetic batches).
    After each convolution the gap rows are zeroed again (``gaps``), since a conv's bias fills them.
    """

    def __init__(self, mask: torch.Tensor, gap: int, dtype: torch.dtype = torch.float32):
        b, t = mask.shape  # mask: (B, T) bool
        within = torch.arange(t, device=mask.device).expand(b, t)
        # A video spans its rows up to its last real one; rows outside the mask inside that span (none from
        # the shared batching, whose videos are prefixes) stay zero rows, as they are in the padded batch.
        span = torch.where(mask, within + 1, 0).amax(dim=1)  # (B,)
        slot = span + gap
        start = torch.cumsum(slot, 0) - slot  # (B,) packed row of each video's row 0
        self.length = int(slot.sum())
        # Every (b, t) beyond the span points at the first gap row after the video, which is always zero.
        at = torch.where(within < span.unsqueeze(1), start.unsqueeze(1) + within, (start + span).unsqueeze(1))
        self.mask, self.at, self.rows = mask, at.flatten(), at[mask]  # at: (B T,); rows: packed rows of x[mask]
        # owner: (L, B) 1 where a packed row is a real row of video b (its sums over rows are owner products)
        self.owner = torch.zeros(self.length, b, dtype=dtype, device=mask.device)
        self.owner[self.rows, torch.nonzero(mask)[:, 0]] = 1.0
        self.gaps = torch.nonzero(self.owner.sum(dim=1) == 0).flatten()  # packed rows that are no video's

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) -> (1, D, L); rows outside ``mask`` never enter."""
        out = x.new_zeros(self.length, x.shape[-1]).index_copy(0, self.rows, x[self.mask])
        return out.t().unsqueeze(0)

    def unpack(self, h: torch.Tensor) -> torch.Tensor:
        """h: (..., L) -> (B, ..., T); a slot beyond a video's rows reads the gap row after it."""
        b, t = self.mask.shape
        out = h.index_select(-1, self.at).unflatten(-1, (b, t))  # (..., B, T)
        return out.movedim(-2, 0)


def relu_conv(conv: nn.Conv1d, h: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
    """ReLU of a temporal conv of packed rows h (1, C, L), zero on the gap rows ``gaps``.

    In place on the conv's output (its backward needs only its input and weights): no copy of the
    (1, C, L) output is made to mask it, only the gap rows are written.
    """
    return torch.relu_(conv(h).index_fill_(-1, gaps, 0.0))


def dropout(h: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, as ``nn.Dropout``: each value kept with probability 1 - p and scaled by 1 / (1 - p).

    The keep mask comes from ``torch.rand``, which draws a mask of the size of a stage's branch features
    (millions of values) four to five times faster on a CPU than ``nn.Dropout``'s ``bernoulli_``.
    """
    if not training or p == 0.0:
        return h
    if p >= 1.0:
        return torch.zeros_like(h)
    return h * torch.rand_like(h).ge_(p).mul_(1.0 / (1.0 - p))  # the mask drawn, compared and scaled in place
