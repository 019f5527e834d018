"""The network being fine-tuned: ResNet101 -> dropout -> new classifier, with TSN's segmental consensus."""
from __future__ import annotations

import torch
import torch.nn as nn

from tsrnet.extract.resnet import FEATURE_DIM, ResNet101, build


def consensus(scores: torch.Tensor) -> torch.Tensor:
    """TSN's average consensus: (B, K, C) snippet class scores -> (B, C) clip scores, before the softmax."""
    return scores.mean(dim=1)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a label distribution (B, C): one-hot for a clip, uniform over the labels of
    an untrimmed video with several (as STPN and W-TALC normalise multi-label targets)."""
    return -(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


class TSN(nn.Module):
    """One stream of the two-stream network, trained on K snippets per clip.

    ``backbone.fc`` is replaced by a classifier over the clips' classes
    (initialised as TSN does, N(0, 0.001)), so the saved state dict is a
    torchvision resnet101 one with a smaller fc, which ``extract-features``
    loads (it uses the 2048-d input of fc). Dropout (the paper's 0.8) sits
    before the classifier, outside the state dict.
    """

    def __init__(self, backbone: ResNet101, n_classes: int, dropout: float, partial_bn: bool = True):
        super().__init__()
        self.backbone = backbone
        self.backbone.fc = nn.Linear(FEATURE_DIM, n_classes)
        nn.init.normal_(self.backbone.fc.weight, 0.0, 0.001)
        nn.init.zeros_(self.backbone.fc.bias)
        self.dropout = nn.Dropout(dropout)
        # TSN's partial BN: with 16 clips a batch, every BatchNorm but the first keeps its ImageNet
        # statistics and affine parameters; the first adapts to the new input (flow, or another domain).
        self._frozen = [m for m in backbone.modules()
                        if partial_bn and isinstance(m, nn.BatchNorm2d) and m is not backbone.bn1]
        for m in self._frozen:
            m.weight.requires_grad_(False)
            m.bias.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self._frozen:
            m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, K, C, S, S) -> clip class scores (B, n_classes)
        b, k = x.shape[:2]
        f = self.backbone.features(x.flatten(0, 1))  # (B*K, 2048)
        s = self.backbone.fc(self.dropout(f))  # (B*K, n_classes)
        return consensus(s.view(b, k, -1))


def initial_network(stream: str, state: dict | None, source: str) -> ResNet101:
    """The starting ResNet101 of a stream, as extraction builds it (cross-modality init for flow)."""
    return build(3 if stream == "rgb" else 10, state, source).train()
