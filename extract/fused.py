"""ResNet101's ``features`` for inference on a CPU, in oneDNN's fused convolutions.

Run as it is defined (eager convolutions, BatchNorm, ReLU and the residual
add as separate operators, under autocast), ResNet101 reached a third of the
bf16 matmul rate on 2 cores of an Intel Xeon with AMX (docs/benchmarks.md):
every call converted the float32 weights to bfloat16 and reordered them into
oneDNN's blocked layout, and BatchNorm, ReLU and the add each made one more
pass over every activation. Here, once per network:

- BatchNorm (eval mode: fixed statistics) is folded into the convolution
  before it, as a scale of its weights and a bias;
- the weights are converted to the compute dtype and reordered into oneDNN's
  layout;

and per call, every convolution runs with its ReLU as a oneDNN post-op, and
each block's last convolution adds the shortcut and applies the ReLU in the
same kernel, writing into the shortcut's buffer. Activations stay channels-last
(NHWC) throughout, the layout oneDNN's convolutions compute in. Global
pooling is done in float32.

The results equal ``ResNet101.features`` up to rounding: in float32 to about
1e-6 relative, in bfloat16 as autocast's (tests/test_fused.py).
``torch.ops.mkldnn._convolution_pointwise`` is the operator torch's own
compiler (inductor) emits for these fusions on CPUs; it is private, so
:func:`available` checks that this torch has it and that it computes a small
convolution right, and extraction runs the modules otherwise.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn

from .resnet import Bottleneck, ResNet101

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """Whether this torch has oneDNN and the fused convolution operators, and they compute what this
    module expects of them (checked once on a small convolution: private operators may change)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        g = torch.Generator().manual_seed(0)
        conv, bn = nn.Conv2d(4, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8).eval()
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
            x, shortcut = torch.randn(2, 4, 5, 5, generator=g), torch.randn(2, 8, 5, 5, generator=g)
            c = _Conv(conv, bn, torch.float32)
            cl = x.contiguous(memory_format=torch.channels_last)
            relu = c(cl)
            added = c.add_relu_(cl, shortcut.contiguous(memory_format=torch.channels_last))
            want = bn(conv(x))
        return (torch.allclose(relu, want.relu(), rtol=1e-4, atol=1e-4)
                and torch.allclose(added, (want + shortcut).relu(), rtol=1e-4, atol=1e-4))
    except (AttributeError, RuntimeError):
        return False


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of one convolution computing ``bn(conv(x))`` with ``bn``'s running statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return conv.weight * scale.reshape(-1, 1, 1, 1), bias


class _Conv:
    """A convolution with folded BatchNorm, its weight in oneDNN's layout."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, dtype: torch.dtype):
        w, b = fold_batchnorm(conv, bn)
        # Folding is done in float32, then rounded once to the compute dtype.
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.weight = torch._C._nn.mkldnn_reorder_conv2d_weight(
            w.to(dtype).to_mkldnn(), self.padding, self.stride, self.dilation, self.groups)
        self.bias = b.to(dtype)  # the fused operator wants the bias in the input's dtype

    def __call__(self, x: torch.Tensor, relu: bool = True) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, self.padding, self.stride,
                                                       self.dilation, self.groups, "relu" if relu else "none",
                                                       [], "")

    def add_relu_(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """``relu(conv(x) + shortcut)``, written into ``shortcut``."""
        return torch.ops.mkldnn._convolution_pointwise_.binary(
            shortcut, x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups,
            "add", 1.0, "relu", [], "")


class FusedFeatures:
    """``model.features`` (a :class:`ResNet101` in eval mode) computed in ``precision`` (fp32 or bf16) with
    fused oneDNN convolutions; takes float32 (N, C, H, W), returns float32 (N, 2048).

    The weights are copied at construction: later changes to ``model`` are not seen.
    """

    def __init__(self, model: ResNet101, precision: str = "bf16"):
        if model.training:
            raise ValueError("FusedFeatures folds BatchNorm's running statistics: put the model in eval mode")
        self.dtype = DTYPES[precision]
        with torch.no_grad():
            self.stem = _Conv(model.conv1, model.bn1, self.dtype)
            self.blocks = []
            for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
                for b in layer:
                    assert isinstance(b, Bottleneck)
                    down = None if b.downsample is None else _Conv(b.downsample[0], b.downsample[1], self.dtype)
                    self.blocks.append((_Conv(b.conv1, b.bn1, self.dtype), _Conv(b.conv2, b.bn2, self.dtype),
                                        _Conv(b.conv3, b.bn3, self.dtype), down))
        mp = model.maxpool
        self.pool = (mp.kernel_size, mp.stride, mp.padding)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        x = torch.max_pool2d(self.stem(x), *self.pool)
        for conv1, conv2, conv3, down in self.blocks:
            # The add writes into the shortcut: without a projection that is the previous block's output,
            # made here and read by nothing after this block, never the caller's tensor.
            shortcut = x if down is None else down(x, relu=False)
            x = conv3.add_relu_(conv2(conv1(x)), shortcut)
        return x.float().mean((2, 3))
