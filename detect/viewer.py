"""The viewer: one static page where each video plays above its timeline (``detect --view DIR``).

The page opens from disk with no server and no network. What it draws is
embedded in it as JSON (a browser refuses to read files beside a page opened
from disk); the videos are referenced by relative path, or copied beside it.
Per video, on one time axis: the ground truth when known, each class's
detections with their scores, the method's fused row score of the classes
shown (what its localisation thresholds) and each stream's attention. The
interaction lives in ``viewer.js``: a click on an interval seeks the video
to its start, a cursor follows playback, ``n`` / ``p`` step through the
detections, and a class filter narrows the list of videos.

Browsers play H.264, VP8, VP9 and AV1 in MP4 or WebM, not the MPEG-4 Part 2,
FFV1 or MJPEG files cameras and generators often write: with ``copy`` such
videos are transcoded to H.264 beside the page, the others copied as they are.
"""
from __future__ import annotations

import html
import json
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from tsrnet.data.core.errors import DataError
from tsrnet.data.core.io import atomic_path, staged_dir
from tsrnet.data.core.progress import progress_bar
from .config import DetectConfig
from .localize import VideoScores, localised

# What Chromium and Firefox decode without extra codecs, by container (file suffix).
PLAYABLE = {".mp4": {"h264", "vp9", "av1"}, ".m4v": {"h264", "vp9", "av1"}, ".mov": {"h264", "vp9", "av1"},
            ".webm": {"vp8", "vp9", "av1"}, ".mkv": {"vp8", "vp9", "av1"}}
CURVE_DECIMALS = 3  # row scores and attention drawn 100 px high: a thousandth is below a pixel


@dataclass
class VideoFile:
    """A video's file as the page refers to it."""

    path: Path
    codec: str | None  # None: unreadable
    playable: bool


def probe(path: Path) -> VideoFile:
    """The codec of the first video stream, and whether browsers play that codec in that container."""
    import av

    try:
        with av.open(str(path)) as c:
            codec = c.streams.video[0].codec_context.name if c.streams.video else None
    except (av.error.FFmpegError, OSError):
        codec = None
    return VideoFile(path, codec, codec is not None and codec in PLAYABLE.get(path.suffix.lower(), ()))


def write_viewer(view_dir, scores: list[VideoScores], classes: list[str], results: dict, ann=None,
                 videos: dict | None = None, cfg: DetectConfig | None = None, localise=None, copy: bool = False,
                 title: str = "", progress: bool = False) -> Path:
    """Write ``index.html`` (and with ``copy`` a ``videos/`` folder) into ``view_dir``; returns the page.

    ``scores``: what the method computed per video; ``results``: video id -> detections (as ``detect``
    writes them); ``ann``: ground truth or None; ``videos``: video id -> :class:`VideoFile` (:func:`probe`),
    for the videos known.
    """
    from .localize import weighted_evidence

    view_dir = Path(view_dir)
    cfg, localise, videos = cfg or DetectConfig(), localise or weighted_evidence, videos or {}
    entries = []
    with staged_dir(view_dir) as stage:
        if copy and videos:
            (stage / "videos").mkdir()
        bar = progress_bar(total=len(scores), desc="viewer", unit="video", disable=not progress)
        for vs in scores:
            f = videos.get(vs.video_id)
            src, note = None, "no video file is known for this id (detect VIDEO... or --view-videos names them)"
            if f is not None:
                if copy:
                    src, note = _copy(f, stage / "videos"), ""
                else:
                    # Relative to DIR, which the stage stands beside: the page can move with its videos.
                    src = os.path.relpath(f.path.resolve(), view_dir.resolve()).replace(os.sep, "/")
                    note = "" if f.playable else (f"browsers do not play {f.codec or 'this file'!s} in "
                                                  f"{f.path.suffix or 'this container'}; detect --view-copy writes a "
                                                  "playable copy")
            entries.append(_entry(vs, classes, results.get(vs.video_id, []), ann, cfg, localise, src, note))
            bar.update(1)
        bar.close()
        (stage / "index.html").write_text(_page(entries, classes, title), encoding="utf-8")
    return view_dir / "index.html"


def known_files(store, ids: list[str], named: dict) -> dict[str, VideoFile]:
    """Video id -> its file, probed, for the ``ids`` whose file is known: ``named`` (id -> path) first, else
    the file extract-features recorded reading, if it is still there."""
    found = {}
    for v in ids:
        if v in named:
            found[v] = probe(Path(named[v]))
            continue
        rec = store.source_file(v)
        if rec and rec.get("path") and Path(rec["path"]).is_file():
            found[v] = probe(Path(rec["path"]))
    return found


def _copy(f: VideoFile, into: Path) -> str:
    """Copy a playable video beside the page, or transcode it to H.264; its path relative to the page."""
    dst = into / (f.path.name if f.playable else f.path.stem + ".mp4")
    if dst.exists():  # two ids of one name from different folders
        dst = into / f"{f.path.stem}-{len(list(into.iterdir()))}{dst.suffix}"
    if f.playable:
        shutil.copy2(f.path, dst)
    else:
        transcode_h264(f.path, dst)
    return f"videos/{dst.name}"


def transcode_h264(src: Path, dst: Path) -> Path:
    """Re-encode the first video stream of ``src`` as H.264 (yuv420p, even size) in MP4, frame times kept."""
    import av

    try:
        with av.open(str(src)) as inp, atomic_path(dst) as tmp, av.open(str(tmp), "w", format="mp4") as out:
            vin = inp.streams.video[0]
            w, h = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2  # 4:2:0 needs even sizes
            rate = vin.average_rate or Fraction(25)
            vout = out.add_stream("libx264", rate=rate, options={"preset": "veryfast", "crf": "20"})
            vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
            vout.time_base = vin.time_base  # the source's clock: the same presentation times
            for frame in inp.decode(vin):
                if frame.pts is None:
                    continue
                f = frame.reformat(width=w, height=h, format="yuv420p")
                f.pts, f.time_base = frame.pts - (vin.start_time or 0), vin.time_base
                for p in vout.encode(f):
                    out.mux(p)
            for p in vout.encode():
                out.mux(p)
    except (av.error.FFmpegError, IndexError) as e:
        raise DataError(f"could not transcode for the viewer: {e}", src) from None
    return dst


def _round(a, decimals: int = CURVE_DECIMALS) -> list:
    return np.round(np.asarray(a, dtype=float), decimals).tolist()


def _entry(vs: VideoScores, classes, dets, ann, cfg, localise, src, note) -> dict:
    """What the page draws for one video: curves per row, intervals in seconds."""
    ev = localised(vs, cfg, localise)
    gt = ann[vs.video_id].segments if ann is not None and vs.video_id in ann.video_ids() else []
    # The classes detected or present, best video score first: their curves are drawn.
    shown = sorted({d["label"] for d in dets} | {s.label for s in gt}, key=lambda c: -float(ev.video[classes.index(c)])
                   if c in classes else 0.0)
    if not shown:
        shown = [classes[int(np.argmax(ev.video))]]
    ends = [float(d["segment"][1]) for d in dets] + [s.end for s in gt]
    duration = vs.duration if np.isfinite(vs.duration) and vs.duration > 0 else float(vs.times[-1])
    return {
        "id": vs.video_id, "src": src, "note": note, "duration": round(max([duration, *ends]), 3),
        "times": _round(vs.times), "score_label": ev.shown_label,
        "classes": shown, "video_score": [round(float(ev.video[classes.index(c)]), 4) if c in classes else None
                                          for c in shown],
        "curves": [_round(ev.shown[:, classes.index(c)]) if c in classes else [] for c in shown],
        "attention": {s: _round(g / max(float(g.max()), 1e-12)) for s, g in vs.attention().items()},
        # As the detections JSON holds them, so that the page and the file agree to the digit.
        "det": sorted(([d["label"], float(d["segment"][0]), float(d["segment"][1]), float(d["score"])] for d in dets),
                      key=lambda d: (d[1], d[2], d[0])),
        "gt": [[s.label, float(s.start), float(s.end)] for s in gt],
    }


def _page(entries: list[dict], classes: list[str], title: str) -> str:
    title = html.escape(title or "Detections", quote=True)
    data = json.dumps({"videos": entries, "classes": classes}, separators=(",", ":")).replace("</", "<\\/")
    return f"""<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>
<style>
{_asset("viewer.css")}</style></head><body>
<nav><h1>{title}</h1>
<label>class <select id='f-class'><option value=''>all</option></select></label>
<p id='f-count'></p><ul id='list'></ul></nav>
<main><h2 id='name'></h2><p id='note' class='note'></p>
<video id='video' controls preload='metadata'></video>
<div id='timeline'></div>
<p class='keys'>Click an interval to seek the video to its start, or anywhere on the timeline; <kbd>n</kbd> / <kbd>p</kbd>:
next / previous detection (of the chosen class); <kbd>space</kbd>: play / pause.</p>
<table id='dets'><thead><tr><th>class</th><th>start (s)</th><th>end (s)</th><th>score</th></tr></thead>
<tbody></tbody></table>
<p id='status'>loading</p></main>
<script type='application/json' id='view-data'>{data}</script>
<script>
{_asset("viewer.js")}</script></body></html>
"""


def _asset(name: str) -> str:
    """The page's stylesheet or script, package data beside this module, inlined: the page is one file."""
    return Path(__file__).with_name(name).read_text(encoding="utf-8")
