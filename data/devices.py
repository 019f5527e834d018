"""The one reading of a ``--device`` option, for every command that takes one."""
from __future__ import annotations

import torch

from .errors import DataError


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """``auto`` (or None): a GPU when there is one, else the CPU; otherwise the named device.

    A CUDA device on a machine without one is refused here, with what to use instead, rather than deep
    inside the first tensor copy.
    """
    if spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise DataError(f"--device {spec!r} is not a device (use auto, cpu or cuda[:N])") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"--device {spec!r} requested but no CUDA device is available (use --device cpu)")
    return dev
