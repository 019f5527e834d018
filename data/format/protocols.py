"""Evaluation sets that decide whether numbers match papers: which test videos are scored.

THUMOS14 has 213 annotated test videos. W-TALC's annotation set (and the feature releases that reuse
it) has 212 (``video_test_0001292`` has only ambiguous spans). Most weakly supervised papers, following
STPN, score 210: they also drop ``video_test_0000270`` and ``video_test_0001496``, whose annotations
are known to be wrong. ``--exclude thumos14-210`` gives that set; ``--exclude ID,ID`` or
``--exclude FILE`` (one id a line) any other. The excluded ids and the preset's name are recorded with
the annotations (``protocol`` in ActivityNet JSON, ``docs/formats.md``) so that an evaluation can say
which set it scored.
"""
from __future__ import annotations

from pathlib import Path

from tsrnet.data.format.annotations import Annotations
from tsrnet.data.core.errors import DataError

PRESETS = {
    "thumos14-210": {
        "videos": ["video_test_0000270", "video_test_0001292", "video_test_0001496"],
        "description": "THUMOS14 test without videos 270, 1292 and 1496 (STPN's 210-video protocol)",
    },
}


def resolve_exclude(spec: str | None) -> tuple[str | None, list[str]]:
    """``(preset name or None, sorted video ids)`` for a preset name, a comma-separated list or a file."""
    if not spec:
        return None, []
    if spec in PRESETS:
        return spec, sorted(PRESETS[spec]["videos"])
    p = Path(spec)
    if p.is_file():
        ids = [line.strip() for line in p.read_text().splitlines() if line.strip() and not line.startswith("#")]
        if not ids:
            raise DataError("the exclusion list names no video", p)
        return None, sorted(set(ids))
    ids = [x.strip() for x in spec.split(",") if x.strip()]
    if not ids:
        raise DataError(f"--exclude {spec!r} names no video (presets: {', '.join(PRESETS)})")
    return None, sorted(set(ids))


def protocol_record(spec: str | None, ann: Annotations) -> dict:
    name, ids = resolve_exclude(spec)
    present = [v for v in ids if v in ann]
    rec = {"excluded": ids, "excluded_present": present}
    if name:
        rec["name"] = name
        rec["description"] = PRESETS[name]["description"]
    return rec


def apply_exclude(ann: Annotations, spec: str | None) -> Annotations:
    """The annotations without the excluded videos, with ``protocol`` saying what was excluded.

    Ids absent from the annotations are not an error (W-TALC's set already lacks 1292); a list that
    matches none of them is, since it is then probably a typo.
    """
    if not spec:
        return ann
    rec = protocol_record(spec, ann)
    if not rec["excluded_present"] and not rec.get("name"):
        raise DataError(f"none of the {len(rec['excluded'])} video(s) to exclude is in the annotations, first: "
                        f"{rec['excluded'][0]}", ann.path, rec["excluded"][0])
    drop = set(rec["excluded"])
    out = ann.only([v for v in ann.video_ids() if v not in drop])
    out.ambiguous = {v: s for v, s in ann.ambiguous.items() if v not in drop}
    out.protocol = rec
    return out


def overlaps_ambiguous(videos, starts, ends, ambiguous: dict[str, list[tuple[float, float]]]):
    """For each detection (``videos[i]``, ``[starts[i], ends[i]]``), whether it overlaps (shares a
    positive length with) one of its video's ambiguous spans.

    The official THUMOS14 evaluation (``TH14eventdetpr.m``) drops such detections from the false
    positives; a true positive stays one. ``evaluate`` does not apply this rule yet: an evaluator
    that offers it removes the unmatched detections this marks before accumulating precision.
    """
    import numpy as np

    starts, ends = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
    out = np.zeros(len(starts), dtype=bool)
    for i, v in enumerate(videos):
        for s, e in ambiguous.get(v, ()):
            if min(ends[i], e) - max(starts[i], s) > 0:
                out[i] = True
                break
    return out
