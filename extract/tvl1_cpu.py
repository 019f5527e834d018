"""TV-L1 on a CPU: OpenCV's algorithm with its inner iterations fused into one C kernel.

OpenCV's DualTVL1 spends nearly all its time in the primal-dual iterations,
which it runs as five passes over whole arrays. ``tvl1_kernel.c`` runs one
iteration as a single vectorised sweep (see its header), and everything
around the iterations is OpenCV's own primitives, called as OpenCV's solver
calls them: the pyramid by ``cv2.resize`` (INTER_LINEAR), the warps by
``cv2.remap`` (INTER_CUBIC, zero outside the image), the median filter by
``cv2.medianBlur``, and the flow carried to the next level by ``cv2.resize``
divided by the scale step. Frame pairs are solved in parallel threads, one
pair per thread (the kernel, ctypes and OpenCV all release the GIL), so
there are no barriers inside a pair.

The kernel is compiled on first use with the system's C compiler (``$CC``,
else ``cc``) and cached under ``$TSRNET_CACHE`` (default
``~/.cache/tsrnet``), keyed by the source, the flags and the CPU; the
compile takes about a second. :func:`available` says whether it could be
built; where it cannot, ``extract-features --flow-backend auto`` falls back
to OpenCV's TV-L1.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tsrnet.data.core.devices import available_cpus

SOURCE = Path(__file__).with_name("tvl1_kernel.c")
# -march=native: the cache key includes the CPU's flags, so a shared home directory on a cluster of
# mixed nodes builds one library per kind of CPU. -fopenmp-simd only honours the kernel's
# `omp simd` reduction; no OpenMP runtime is linked.
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd", "-fPIC", "-shared")
_PAD = 8  # floats of slack before each array: the vectorised x loop may read one element before a row

_lock = threading.Lock()
_lib = None
_error: str | None = None


def _cpu_key() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags}"


def _build() -> ctypes.CDLL:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise RuntimeError("no C compiler found (set CC, or install gcc)")
    src = SOURCE.read_bytes()
    key = hashlib.sha256(src + " ".join(FLAGS).encode() + _cpu_key().encode() + cc.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("TSRNET_CACHE", Path.home() / ".cache" / "tsrnet"))
    lib = cache / f"tvl1-{key}.so"
    if not lib.exists():
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
        os.close(fd)
        try:
            r = subprocess.run([cc, *FLAGS, "-o", tmp, str(SOURCE), "-lm"], capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"{cc} could not compile {SOURCE.name}: {r.stderr.strip()[-500:]}")
            os.replace(tmp, lib)  # atomic: concurrent jobs either see the whole library or none
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    dll = ctypes.CDLL(str(lib))
    f = dll.tvl1_iterate
    ptr = ctypes.c_void_p
    f.argtypes = [ctypes.c_int, ctypes.c_int] + [ptr] * 11 + [ctypes.c_float] * 3 + [
        ctypes.c_double, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    f.restype = ctypes.c_int
    return dll


def kernel() -> ctypes.CDLL:
    """The compiled kernel (built on first use); RuntimeError saying why when it cannot be built."""
    global _lib, _error
    with _lock:
        if _lib is None and _error is None:
            try:
                _lib = _build()
            except (RuntimeError, OSError) as e:
                _error = str(e)
        if _lib is None:
            raise RuntimeError(f"the fused TV-L1 kernel is not available: {_error}")
        return _lib


def available() -> bool:
    try:
        kernel()
        return True
    except RuntimeError:
        return False


def _arrays(n: int, h: int, w: int) -> list[np.ndarray]:
    # n (H, W) float32 arrays of zeros, each with _PAD floats of slack before it.
    buf = np.zeros((n, h * w + 2 * _PAD), np.float32)
    return [buf[k, _PAD:_PAD + h * w].reshape(h, w) for k in range(n)]


def _centred_gradient(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # OpenCV's centeredGradient: half the central difference, half the one-sided one at the border.
    p = np.pad(img, 1, mode="edge")
    return 0.5 * (p[1:-1, 2:] - p[1:-1, :-2]), 0.5 * (p[2:, 1:-1] - p[:-2, 1:-1])


def _median(u: np.ndarray, k: int) -> np.ndarray:
    import cv2

    if k in (3, 5):  # cv2.medianBlur takes float32 only for these sizes
        return cv2.medianBlur(u, k)
    from scipy.ndimage import median_filter

    return median_filter(u, size=k, mode="nearest")


def _one_scale(lib, i0: np.ndarray, i1: np.ndarray, u1: np.ndarray, u2: np.ndarray, p) -> None:
    """TV-L1 at one pyramid level, refining u1, u2 (H, W) in place (OpenCV's procOneScale)."""
    import cv2

    h, w = i0.shape
    eps = p.epsilon * p.epsilon * h * w
    l_t, taut = p.lambda_ * p.theta, p.tau / p.theta
    i1x, i1y = _centred_gradient(i1)
    stack = np.ascontiguousarray(np.dstack([i1, i1x, i1y]), dtype=np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    p11, p12, p21, p22, ix, iy, grad, rho_c, zeros = _arrays(9, h, w)
    addr = [a.ctypes.data for a in (u1, u2, p11, p12, p21, p22, ix, iy, grad, rho_c, zeros)]
    done = ctypes.c_int(0)
    for _ in range(p.warps):
        warped = cv2.remap(stack, xs + u1, ys + u2, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ix[:], iy[:] = warped[..., 1], warped[..., 2]
        np.add(ix * ix, iy * iy, out=grad)
        rho_c[:] = warped[..., 0] - ix * u1 - iy * u2 - i0
        for _outer in range(p.outer_iterations):
            if p.median > 1:
                u1[:], u2[:] = _median(u1, p.median), _median(u2, p.median)
            lib.tvl1_iterate(h, w, *addr, l_t, p.theta, taut, eps, p.inner_iterations, ctypes.byref(done))
            if done.value:  # OpenCV's `error > epsilon` guards both loops
                break


def solve_pair(prev: np.ndarray, next: np.ndarray, params) -> np.ndarray:
    """Flow of one uint8 (H, W) pair -> float32 (H, W, 2), OpenCV's DualTVL1.calc step for step."""
    import cv2

    lib, p = kernel(), params
    pyr0, pyr1 = [prev.astype(np.float32)], [next.astype(np.float32)]
    for _ in range(1, p.scales):
        a = cv2.resize(pyr0[-1], None, fx=p.scale_step, fy=p.scale_step, interpolation=cv2.INTER_LINEAR)
        if min(a.shape) < 16:
            break
        pyr0.append(a)
        pyr1.append(cv2.resize(pyr1[-1], None, fx=p.scale_step, fy=p.scale_step, interpolation=cv2.INTER_LINEAR))
    u1, u2 = _arrays(2, *pyr0[-1].shape)
    for s in range(len(pyr0) - 1, -1, -1):
        _one_scale(lib, pyr0[s], pyr1[s], u1, u2, p)
        if s:
            h, w = pyr0[s - 1].shape
            n1, n2 = _arrays(2, h, w)
            n1[:] = cv2.resize(u1, (w, h), interpolation=cv2.INTER_LINEAR) / p.scale_step
            n2[:] = cv2.resize(u2, (w, h), interpolation=cv2.INTER_LINEAR) / p.scale_step
            u1, u2 = n1, n2
    return np.stack([u1, u2], axis=-1)


def tvl1_cpu(prev: np.ndarray, next: np.ndarray, params, threads: int = 0) -> np.ndarray:
    """uint8 (B, H, W) pairs -> float32 (B, H, W, 2); ``threads`` pairs at a time (0: the CPUs this
    process may use)."""
    n = len(prev)
    if not threads:
        threads = available_cpus()
    kernel()  # fail before starting threads
    out = np.empty(prev.shape + (2,), np.float32)
    if n == 1 or threads <= 1:
        for i in range(n):
            out[i] = solve_pair(prev[i], next[i], params)
        return out

    def one(i):
        out[i] = solve_pair(prev[i], next[i], params)

    with ThreadPoolExecutor(min(threads, n)) as pool:
        list(pool.map(one, range(n)))
    return out
