"""Small real video files written with PyAV, for tests and demos of the extraction stage.

``write_video`` encodes frames with a chosen codec, pixel format and
(optionally irregular) presentation times; ``moving_texture`` makes frames
of a textured pattern drifting at a given velocity, so that flow has
something to see.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from tsrnet.data.generators.synthetic_motion import texture

# MPEG-4 part 2 by default: the libx264 bundled with PyAV was seen to encode identical frames into
# different files within one process, even single-threaded; FFmpeg's own mpeg4 encoder is repeatable.
CODECS = {".mp4": "mpeg4", ".avi": "mpeg4", ".mkv": "ffv1", ".mov": "mpeg4", ".webm": "libvpx"}


def moving_texture(n: int, h: int, w: int, velocity=(2.0, 0.0), seed: int = 0, colour=(1.0, 0.8, 0.3)) -> np.ndarray:
    """(n, h, w, 3) uint8 frames of one random texture translating by ``velocity`` px per frame."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        g = texture(xs - velocity[0] * i, ys - velocity[1] * i, np.random.default_rng(seed))
        img = np.stack([g * colour[0], g * colour[1] + (1 - colour[1]) * 0.5, 1 - g * colour[2]], axis=-1)
        out[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return out


def write_video(path: str | Path, frames: np.ndarray, fps: float = 10.0, codec: str | None = None,
                pix_fmt: str | None = None, times: np.ndarray | None = None, rotation: int = 0) -> Path:
    """Encode ``frames`` ((n, h, w, 3) RGB or (n, h, w) gray uint8) into ``path``.

    ``times`` (seconds) gives each frame's presentation time for
    variable-frame-rate files; by default frames are 1 / fps apart.
    ``rotation`` (degrees counter-clockwise) is stored as display-matrix
    metadata, as phones do for portrait videos; the pixels stay as given.
    """
    import av

    path = Path(path)
    codec = codec or CODECS.get(path.suffix.lower(), "libx264")
    gray = frames.ndim == 3
    if pix_fmt is None:
        pix_fmt = "gray" if gray else ("yuv420p" if codec in ("libx264", "mpeg4", "libvpx") else "bgr0")
    tb = Fraction(1, 1000)
    with av.open(str(path), "w") as c:
        # One encoder thread: multi-threaded x264 does not give byte-identical files run to run.
        opts = {"threads": "1"}
        if codec == "libx264":
            opts["x264-params"] = "threads=1:lookahead-threads=1"
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1000), options=opts)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        s.codec_context.thread_count = 1
        s.codec_context.thread_type = "NONE"
        if codec == "mpeg4":
            s.bit_rate = 40 * frames.shape[1] * frames.shape[2]  # ~0.8 Mbit/s at 160x120, 10 fps: clean edges
        if times is not None:  # a millisecond clock, so irregular times survive the encoder
            s.time_base = tb
            s.codec_context.time_base = tb
        if rotation:
            s.set_display_rotation(rotation)
        c.start_encoding()  # so that a video of zero frames still gets its header
        for i, f in enumerate(frames):
            if pix_fmt == "yuv420p" and not gray and f.shape[0] % 2 == 0 and f.shape[1] % 2 == 0:
                # Convert here rather than in libswscale, whose output was seen to vary from run
                # to run in one process, which made the files differ.
                vf = av.VideoFrame.from_ndarray(cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
            else:
                vf = av.VideoFrame.from_ndarray(f, format="gray" if gray else "rgb24")
            if times is not None:
                vf.pts, vf.time_base = int(round(times[i] * 1000)), tb
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
