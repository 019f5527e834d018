"""The one reading of a ``--device`` option, for every command that takes one, of what the device computes
fast (``--precision auto``), and of how many CPU threads a process may use."""
from __future__ import annotations

import os

import torch

from tsrnet.data.core.errors import DataError
from tsrnet.data.core.settings import opt


def device_opt(**kw):
    """The ``--device`` setting of every command that computes: one declaration, one help text."""
    return opt("auto", "auto (a GPU when there is one, else the CPU), cpu or cuda[:N].", **kw)


def threads_opt(what: str = "the computation", **kw):
    """The ``--threads`` setting of every command that computes on CPUs (:func:`cpu_threads` reads it)."""
    return opt(0, f"CPU threads for {what} (0: OMP_NUM_THREADS if set, else the CPUs this process may use).",
               range=(0, None), **kw)


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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 rather than converting to float32 and back: a CUDA GPU of compute
    capability 8 or later (Ampere on; ``torch.cuda.is_bf16_supported`` also counts the emulation of older
    GPUs), a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def auto_precision(device: torch.device) -> str:
    """bf16 where the hardware computes in it, else fp32.

    Without native bf16, oneDNN converts every operand to float32 and back, and autocast made
    ResNet101 about 5 times slower than plain fp32 on an AVX2 CPU (2 cores, 112-px crops).
    """
    return "bf16" if native_bf16(device) else "fp32"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a batch slot's share, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_threads(explicit: int = 0) -> int:
    """Threads for the CPU work: ``--threads``, else ``OMP_NUM_THREADS``, else :func:`available_cpus`.

    More threads than free cores made ResNet forward many times slower beside another busy process, so an
    explicit setting is obeyed and the default is what the process may use, not ``os.cpu_count()``."""
    if explicit and explicit > 0:
        return explicit
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return available_cpus()


def use_cpu_threads(explicit: int, device: torch.device) -> int:
    """The one thread policy of every command: :func:`cpu_threads` (``--threads``), set as torch's CPU threads
    when ``device`` is the CPU (on a GPU the count is still what CPU-side work, such as flow workers, uses)."""
    n = cpu_threads(explicit)
    if device.type == "cpu":
        torch.set_num_threads(n)
    return n
