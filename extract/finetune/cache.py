"""Decode each clip and compute its flow once; every epoch then reads snippets from the cache.

A clip is represented by ``snippets`` candidate snippets spread evenly over it
(TSN's 25 at test time): snippet i is centred on frame ``floor((i + 0.5) n / S)``
and its flow stack is the 5 fields of the 6 frames around that centre, shifted
inwards at the ends, exactly as ``extract-features`` pairs a row's RGB frame
with its flow stack. Flow comes from the extractor's own path (grayscale
frames shrunk to ``flow_short_side``, the chosen TV-L1 backend); RGB frames and
fields are then resized to the training short side ``resize``, the fields'
vectors scaled with them (``tsrnet.extract.features.resize_flow``).

Storage, per stream, ``CACHE/<stream>/<clip>.h5``::

    rgb   (S,)    variable-length uint8: JPEG (quality 95) of the RGB frame
    flow  (S, 5)  variable-length uint8: PNG of one field quantised as TSN stores
                  flow (clipped to +-20 px, 256 levels), x above y in one image
    attrs centre (S,), n_frames

PNG keeps the quantised field exactly (the quantisation step is 0.16 px, below
what the clipping already discards); JPEG for RGB as TSN's frames are. A clip
file appears complete or not at all, so an interrupted run resumes at the
first clip without one. ``CACHE/<stream>/settings.json`` holds what the files
depend on; a cache made otherwise is refused, not mixed.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np

from tsrnet.data.core.errors import DataError
from tsrnet.data.core.io import atomic_path, write_json
from tsrnet.extract.decode import FLOW_STACK, DecodeError, VideoReader, with_fallback
from tsrnet.extract.features import FLOW_BOUND, flow_frame, resize_flow, resize_rgb

JPEG_QUALITY = 95
LEVELS = 255  # quantisation of [-FLOW_BOUND, FLOW_BOUND]


def snippet_frames(n_frames: int, snippets: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre frame and first flow-window frame of each candidate snippet (duplicates removed)."""
    if n_frames < FLOW_STACK + 1:
        raise DecodeError(f"clip has {n_frames} frame(s), fewer than the {FLOW_STACK + 1} a flow stack needs")
    centre = np.unique(np.minimum(((np.arange(snippets) + 0.5) * n_frames / snippets).astype(np.int64),
                                  n_frames - 1))
    window = np.clip(centre - FLOW_STACK // 2, 0, n_frames - (FLOW_STACK + 1))
    return centre, window


def quantise(field: np.ndarray) -> np.ndarray:
    """Flow (h, w, 2) in px -> uint8 (2h, w): x above y, ``round((f + 20) / 40 * 255)``."""
    q = np.rint((np.clip(field, -FLOW_BOUND, FLOW_BOUND) + FLOW_BOUND) / (2 * FLOW_BOUND) * LEVELS)
    return np.concatenate([q[..., 0], q[..., 1]], axis=0).astype(np.uint8)


def dequantise(q: np.ndarray) -> np.ndarray:
    """uint8 (2h, w) -> flow (h, w, 2) in px."""
    h = q.shape[0] // 2
    f = q.astype(np.float32) / LEVELS * (2 * FLOW_BOUND) - FLOW_BOUND
    return np.stack([f[:h], f[h:]], axis=-1)


def _encode(ext: str, img: np.ndarray, params=()) -> np.ndarray:
    ok, buf = cv2.imencode(ext, img, list(params))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {ext} image")
    return buf.reshape(-1)


class SnippetCache:
    """The cache of one stream: build it for a list of clips, read snippets back."""

    def __init__(self, root: Path, stream: str, settings: dict):
        self.dir, self.stream, self.settings = Path(root) / stream, stream, settings

    def check(self) -> None:
        """Refuse a cache built with other settings (its snippets would not be these)."""
        f = self.dir / "settings.json"
        if f.exists():
            old = json.loads(f.read_text())
            if old != self.settings:
                keys = sorted(k for k in set(old) | set(self.settings) if old.get(k) != self.settings.get(k))
                raise DataError(f"was built with other settings ({', '.join(keys)}); use another OUT_DIR "
                                "or the same settings", self.dir)
        else:
            write_json(f, self.settings)

    def path(self, clip_id: str) -> Path:
        return self.dir / f"{clip_id}.h5"

    def has(self, clip_id: str) -> bool:
        return self.path(clip_id).exists()

    def build(self, clip, decoder: str, flow, tf) -> None:
        """Decode ``clip`` (decord, else PyAV) and write its snippets; DecodeError says why it cannot."""
        with_fallback(lambda d: self._build(clip, d, flow, tf), decoder)

    def _build(self, clip, decoder: str, flow, tf) -> None:
        reader = VideoReader(clip.path, decoder)
        n = len(reader.frame_times)
        centre, window = snippet_frames(n, self.settings["snippets"])
        resize = self.settings["resize"]
        if self.stream == "rgb":
            frames = dict(reader.frames(centre))
            missing = [int(c) for c in centre if int(c) not in frames]
            if missing:
                raise DecodeError(f"video ended before frame {missing[0]} (truncated?)")
            rgb = [_encode(".jpg", cv2.cvtColor(resize_rgb(frames[int(c)], resize), cv2.COLOR_RGB2BGR),
                           (cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY)) for c in centre]
            self._write(clip.id, centre, n, rgb=rgb)
            return
        need = np.unique(np.concatenate([window + k for k in range(FLOW_STACK + 1)]))
        gray = {i: flow_frame(f, tf) for i, f in reader.frames(need)}
        missing = [int(i) for i in need if int(i) not in gray]
        if missing:
            raise DecodeError(f"video ended before frame {missing[0]} (truncated?)")
        starts = sorted({int(w) + k for w in window for k in range(FLOW_STACK)})
        fields = dict(zip(starts, flow([gray[j] for j in starts], [gray[j + 1] for j in starts])))
        encoded = {j: _encode(".png", quantise(resize_flow(fields[j], resize))) for j in starts}
        self._write(clip.id, centre, n, flow=[[encoded[int(w) + k] for k in range(FLOW_STACK)] for w in window])

    def _write(self, clip_id: str, centre, n_frames: int, rgb=None, flow=None) -> None:
        vlen = h5py.vlen_dtype(np.uint8)
        with atomic_path(self.path(clip_id)) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["centre"], f.attrs["n_frames"] = np.asarray(centre), int(n_frames)
                if rgb is not None:
                    d = f.create_dataset("rgb", (len(rgb),), dtype=vlen)
                    for i, b in enumerate(rgb):
                        d[i] = b
                if flow is not None:
                    d = f.create_dataset("flow", (len(flow), FLOW_STACK), dtype=vlen)
                    for i, stack in enumerate(flow):
                        for k, b in enumerate(stack):
                            d[i, k] = b

    def count(self, clip_id: str) -> int:
        """Candidate snippets of a cached clip."""
        with h5py.File(self.path(clip_id), "r") as f:
            return len(f.attrs["centre"])

    def read(self, clip_id: str, index: int) -> np.ndarray:
        """Snippet ``index`` of a clip: uint8 RGB (h, w, 3), or flow in px (h, w, 2 * 5), x and y interleaved."""
        with h5py.File(self.path(clip_id), "r") as f:
            if self.stream == "rgb":
                img = cv2.imdecode(np.asarray(f["rgb"][index]), cv2.IMREAD_COLOR)
                return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            stack = [dequantise(cv2.imdecode(np.asarray(b), cv2.IMREAD_GRAYSCALE)) for b in f["flow"][index]]
        return np.concatenate(stack, axis=-1)  # (h, w, 10): x0, y0, x1, y1, ...
