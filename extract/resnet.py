"""ResNet101 with exactly torchvision's ``resnet101`` state-dict keys and shapes.

torchvision has no CPU build where this project is developed, so the network
is defined here; checkpoints in torchvision's layout (ImageNet weights from the
torch hub, or fine-tuned two-stream models saved from torchvision) load as
they are. ``features(x)`` returns the 2048-d globally pooled activation, the
input of ``fc``, which is what the feature store holds.

The flow network takes a stack of 5 flow fields (10 channels, x and y
interleaved as TSN does) and is initialised from the RGB weights by
cross-modality initialisation (Wang et al., TSN 2016): conv1's weights are
averaged over the 3 colour channels and replicated over the 10 flow channels.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn as nn

# torchvision's ImageNet checkpoint for resnet101 (IMAGENET1K_V1, the weights two-stream
# feature extractors were built on).
IMAGENET_URL = "https://download.pytorch.org/models/resnet101-63fe2227.pth"
LAYERS = (3, 4, 23, 3)  # Bottleneck blocks per stage in ResNet101
FEATURE_DIM = 2048


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, as torchvision's "ResNet v1.5") -> 1x1, with a projection shortcut when needed."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class ResNet101(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 1000, zero_init_residual: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), LAYERS)):
            stride = 1 if i == 0 else 2
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck(inplanes, planes, stride if b == 0 else 1))
                inplanes = planes * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(FEATURE_DIM, num_classes)
        for m in self.modules():  # torchvision's initialisation, for the random-weight mode
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            # torchvision's option of the same name. Random weights need it: with BatchNorm in
            # eval mode (identity statistics) each random residual branch doubles the variance,
            # and after 33 blocks the activations overflow float16.
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, 224, 224) -> (B, 2048)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class WeightsError(ValueError):
    """A checkpoint that does not fit the network; the message lists what is wrong."""


def cross_modality(state: dict, in_channels: int) -> dict:
    """The RGB state dict with conv1 averaged over colour channels and replicated to ``in_channels``."""
    out = dict(state)
    w = state["conv1.weight"]  # (64, 3, 7, 7)
    out["conv1.weight"] = w.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1).contiguous()
    return out


def check_state_dict(state: dict, model: nn.Module, source: str) -> None:
    """Refuse a checkpoint whose keys or shapes differ from the model's, saying which."""
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in want.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {', '.join(unexpected[:6])}"
                         f"{' ...' if len(unexpected) > 6 else ''}")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es): {'; '.join(wrong[:3])}")
        raise WeightsError(f"{source}: not a torchvision resnet101 checkpoint: " + "; ".join(parts))


def _unwrap(obj) -> dict:
    # Accept a bare state dict, or the usual wrappers ({"state_dict": ...}, {"model": ...}),
    # with DataParallel's "module." prefix removed.
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise WeightsError("checkpoint does not hold a state dict")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_state(spec: str) -> dict | None:
    """The RGB/ImageNet state dict named by ``spec``: "imagenet", "random" (None) or a path."""
    if spec == "random":
        return None
    if spec == "imagenet":
        try:
            return torch.hub.load_state_dict_from_url(IMAGENET_URL, progress=True, map_location="cpu")
        except Exception as e:  # noqa: BLE001 - offline, proxy, disk: say what to do instead
            raise WeightsError(f"cannot fetch ImageNet weights from {IMAGENET_URL} ({e}); when offline, copy the "
                               f"file into {torch.hub.get_dir()}/checkpoints or pass --weights PATH") from None
    path = Path(spec)
    if not path.exists():
        raise WeightsError(f"{spec}: no such weights file (use imagenet, random or a path)")
    return _unwrap(torch.load(path, map_location="cpu", weights_only=True))


RANDOM_SEED = 0


RANDOM_FEATURE_RMS = 0.5  # about the size of ImageNet ResNet101 pooled features


@torch.no_grad()
def random_state(in_channels: int = 3) -> dict:
    """Seeded random weights: the same in every process (a resumed or sharded run must not mix networks).

    With zero-initialised residual branches the features are the pooled output
    of the projection shortcuts, some 100 times smaller than ImageNet
    features. Small inputs starve a classifier trained with weight decay and
    dropout, so the last projection is rescaled until features of a typical
    input have an RMS of 0.5. Because every layer after it is identity +
    ReLU, this scales the features exactly. A typical RGB input is taken to
    be standard normal (ImageNet-normalised pixels). A typical flow input is
    normal with std 0.15: TSN-normalised flow of about 1.4 px.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED + in_channels)
        model = ResNet101(in_channels, zero_init_residual=True).eval()
        probe = torch.randn(4, in_channels, 112, 112) * (1.0 if in_channels == 3 else 0.15)
    rms = model.features(probe).pow(2).mean().sqrt().item()
    bn = model.layer4[0].downsample[1]
    bn.weight.mul_(RANDOM_FEATURE_RMS / rms)
    bn.bias.mul_(RANDOM_FEATURE_RMS / rms)
    return model.state_dict()


def build(in_channels: int, state: dict | None, source: str, init_from_rgb: bool = True) -> ResNet101:
    """A ResNet101 for ``in_channels`` inputs with ``state`` loaded (None: seeded random weights).

    With ``in_channels != 3`` and an RGB checkpoint (conv1 with 3 input channels)
    and ``init_from_rgb``, conv1 is cross-modality initialised; a checkpoint
    that already has ``in_channels`` (a fine-tuned flow network) loads as is.

    Random weights are *not* cross-modality initialised. Averaging conv1 over
    colours gives all 10 flow channels the same filter, so the network sees
    only the sum of the x and y components and loses the direction of motion.
    That is harmless before fine-tuning, which is what cross-modality init is
    for, but random weights are never fine-tuned, and independent random
    filters per channel keep the direction.
    """
    if state is None:
        state = random_state(in_channels)
    fc = state.get("fc.weight")
    # Features are the input of fc, so its size does not matter: ImageNet's 1000 classes, or the
    # classes a network was fine-tuned on (train-backbone), load alike.
    model = ResNet101(in_channels, num_classes=1000 if fc is None or fc.ndim != 2 else fc.shape[0])
    conv1 = state.get("conv1.weight")
    if in_channels != 3 and conv1 is not None and conv1.shape[1] == 3 and init_from_rgb:
        state = cross_modality(state, in_channels)
    check_state_dict(state, model, source)
    model.load_state_dict(state)
    return model.eval()


def state_digest(state: dict) -> str:
    """SHA-256 of a state dict's names, shapes, dtypes and values (not of the file: two saves of the same
    weights hash alike), which extraction records so stores made with different networks never mix."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k]
        if not torch.is_tensor(t):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def describe_weights(spec: str) -> tuple[str, dict | None]:
    """What a store records of the weights it was extracted with: ``imagenet``, ``random``, or
    ``sha256:<digest>`` of a checkpoint's state dict (its path may differ between machines); and the
    training record a ``train-backbone`` checkpoint carries (None for any other)."""
    if spec in ("imagenet", "random"):
        return spec, None
    if not Path(spec).exists():
        raise WeightsError(f"{spec}: no such weights file (use imagenet, random or a path)")
    obj = torch.load(spec, map_location="cpu", weights_only=True)
    rec = obj.get("record") if isinstance(obj, dict) else None
    return "sha256:" + state_digest(_unwrap(obj)), rec if isinstance(rec, dict) else None
