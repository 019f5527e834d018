"""From decoded frames to feature rows: input transforms, flow stacks, the two networks.

RGB: resize the short side to ``resize`` (256), centre crop ``crop`` (224),
ImageNet mean/std. Flow: TV-L1 between consecutive grayscale frames at
``flow_short_side`` (frames are only ever shrunk for flow, never enlarged:
a small video gets its flow at native size and the field is rescaled), each
field resized like the RGB frame with its vectors scaled by the same factor,
5 fields stacked as 10 channels (x0, y0, x1, y1, ...), centre crop, then TSN's
normalisation: clipped to ±20 px and mapped to ``(f / 40) / 0.226``, which is
TSN's ``((f + 20) / 40 - 0.5) / std`` without its uint8 quantisation.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
import torch

from .flow import TVL1Params

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
FLOW_BOUND = 20.0
FLOW_STD = 0.226  # TSN: the mean of ImageNet's std


@dataclass
class TransformConfig:
    resize: int = 256  # short side before the centre crop
    crop: int = 224
    flow_short_side: int = 256  # frames larger than this are shrunk before TV-L1
    tvl1: TVL1Params = field(default_factory=TVL1Params)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tvl1"] = self.tvl1.to_dict()
        return d


def _short_side_size(h: int, w: int, short: int) -> tuple[int, int]:
    s = short / min(h, w)
    return max(1, int(round(h * s))), max(1, int(round(w * s)))


def _centre_crop(x: np.ndarray, crop: int) -> np.ndarray:
    h, w = x.shape[:2]
    top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    return x[top:top + crop, left:left + crop]


def _resize(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    h, w = img.shape[:2]
    if (h, w) == size_hw:
        return img
    interp = cv2.INTER_AREA if size_hw[0] < h else cv2.INTER_LINEAR
    return cv2.resize(img, (size_hw[1], size_hw[0]), interpolation=interp)


def resize_rgb(frame: np.ndarray, short: int) -> np.ndarray:
    """uint8 RGB (H, W, 3) with its short side resized to ``short``."""
    return _resize(frame, _short_side_size(*frame.shape[:2], short))


def normalise_rgb(x: np.ndarray) -> np.ndarray:
    """uint8 RGB (h, w, 3) -> ImageNet-normalised float32 (3, h, w)."""
    return ((x.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def rgb_input(frames: list[np.ndarray], cfg: TransformConfig) -> torch.Tensor:
    """uint8 RGB frames (H, W, 3) -> normalised (N, 3, crop, crop) float32."""
    out = np.empty((len(frames), 3, cfg.crop, cfg.crop), dtype=np.float32)
    for i, f in enumerate(frames):
        out[i] = normalise_rgb(_centre_crop(resize_rgb(f, cfg.resize), cfg.crop))
    return torch.from_numpy(out)


def flow_frame(frame: np.ndarray, cfg: TransformConfig) -> np.ndarray:
    """The uint8 grayscale image TV-L1 runs on: ``frame`` shrunk so its short side <= flow_short_side."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    if min(h, w) > cfg.flow_short_side:
        gray = _resize(gray, _short_side_size(h, w, cfg.flow_short_side))
    return gray


def flow_input(stacks: list[list[np.ndarray]], cfg: TransformConfig) -> torch.Tensor:
    """Rows of 5 flow fields (h, w, 2) each -> normalised (N, 10, crop, crop) float32."""
    n_fields = len(stacks[0])
    out = np.empty((len(stacks), 2 * n_fields, cfg.crop, cfg.crop), dtype=np.float32)
    for i, fields in enumerate(stacks):
        for j, f in enumerate(fields):
            g = normalise_flow(_centre_crop(resize_flow(f, cfg.resize), cfg.crop))
            out[i, 2 * j] = g[..., 0]
            out[i, 2 * j + 1] = g[..., 1]
    return torch.from_numpy(out)


def resize_flow(field: np.ndarray, short: int) -> np.ndarray:
    """A flow field (H, W, 2) resized so its short side is ``short``, its vectors scaled with the image."""
    h, w = field.shape[:2]
    size = _short_side_size(h, w, short)
    return cv2.resize(field, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) * (size[0] / h)


def normalise_flow(g: np.ndarray) -> np.ndarray:
    """Flow in pixels -> TSN's input scale: clipped to +-FLOW_BOUND, then ``(f / 40) / 0.226``."""
    return np.clip(g, -FLOW_BOUND, FLOW_BOUND) / (2 * FLOW_BOUND) / FLOW_STD


class TwoStreamCNN:
    """The RGB and flow ResNet101s, run in batches with the chosen precision.

    On a CPU, fp32 and bf16 run through :class:`~.fused.FusedFeatures` (BatchNorm folded, weights
    converted and reordered once, ReLU and residual adds fused into oneDNN's convolutions): on 2 cores with
    AMX, bf16 ran 3.4 (112 px) and 6 (224 px) times as fast as autocast on the modules, fp32 1.3 and 1.8
    times (docs/benchmarks.md). ``fused=False`` runs the modules as defined, which is what a GPU and fp16
    always do.
    """

    def __init__(self, rgb_net, flow_net, device: torch.device, precision: str = "bf16", batch_size: int = 32,
                 fused: bool = True):
        from . import fused as fused_mod

        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.nets = {"rgb": rgb_net.to(device).eval(), "flow": flow_net.to(device).eval()}
        self.fused = (fused and device.type == "cpu" and precision in fused_mod.DTYPES and fused_mod.available())
        if self.fused:
            self._features = {k: fused_mod.FusedFeatures(v, precision) for k, v in self.nets.items()}
        else:
            if device.type == "cuda":
                self.nets = {k: v.to(memory_format=torch.channels_last) for k, v in self.nets.items()}
            self._features = {k: v.features for k, v in self.nets.items()}

    def _autocast(self):
        if self.precision == "fp32" or self.fused:  # the fused networks hold their weights in their dtype
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    @torch.inference_mode()
    def __call__(self, stream: str, x: torch.Tensor) -> np.ndarray:
        """(N, C, crop, crop) -> (N, 2048) float32 features."""
        features, out = self._features[stream], []
        for i in range(0, len(x), self.batch_size):
            b = x[i:i + self.batch_size].to(self.device, non_blocking=True)
            if self.device.type == "cuda":
                b = b.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                out.append(features(b).float().cpu())
        return torch.cat(out).numpy()
