"""The benchmark family: named presets of :mod:`tsrnet.data.generators.synthetic_layout` that differ as real data
sets and feature extractors differ.

One generator tuned on is a generator learned. The presets below each imitate
one real property (why is said beside each) and all take their videos'
durations and action times from real annotations shipped with the package
(``data/generators/layouts/``): THUMOS14's (W-TALC's annotation folder: 200 validation
and 212 test videos, dozens of short instances per video) or ActivityNet
1.3's (20 of its 200 classes, chosen once with a seeded draw: one or two
long instances per video). The methods' defaults are chosen on some
families and judged on the others (``benchmarks/study_defaults.py``,
``docs/studies/defaults.md``).

Every family is a :class:`LayoutSpec`; ``make-synthetic-features OUT
--preset NAME`` writes one, and any of its settings can still be changed
(``--seed``, ``--dim``...).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from tsrnet.data.core.errors import DataError
from tsrnet.data.generators.synthetic_layout import LayoutSpec

LAYOUTS_DIR = Path(__file__).resolve().parent / "layouts"
# Real annotation structure the presets draw on, by name.
LAYOUTS = {
    "thumos14": LAYOUTS_DIR / "thumos14-wtalc",  # W-TALC's Thumos14reduced annotation folder, byte for byte
    "activitynet13": LAYOUTS_DIR / "activitynet13-20classes.json",  # 20 classes of ActivityNet 1.3 (layouts/README.md)
}

# name -> (what real property it imitates, LayoutSpec settings). Sizes: at most 60 videos per subset for
# THUMOS14 (its test videos hold ~16 instances each) and 150 for ActivityNet (1.5 each), so a training
# run takes a minute or two on a 2-core CPU.
PRESETS: dict[str, tuple[str, dict]] = {
    "th14-i3d": (
        "THUMOS14 with W-TALC-style I3D features: non-negative, sparse, heavy-tailed 1024-d rows (ReLU + "
        "pooling), 16 frames at 25 fps, the sport's scene in every row with camera changes, motion clearer in "
        "flow than in RGB.",
        dict(layout="thumos14", max_videos=60, dim=1024, statistics="relu", context=0.45, context_varies=True,
             pattern="additive", rgb_gain=0.8, flow_gain=1.2)),
    "th14-tsn-scene": (
        "THUMOS14 with standardised (signed, whitened) 512-d ResNet/TSN features: a strong, constant scene "
        "(the venue fills the frame), actions that replace it (close-ups), appearance clearer than motion, and "
        "background that looks like another class (CricketBowling / CricketShot, Diving / CliffDiving).",
        dict(layout="thumos14", max_videos=60, dim=512, statistics="gaussian", context=0.6, context_varies=False,
             pattern="replaced", rgb_gain=1.2, flow_gain=0.8, distractors=1.0, distractor_kind="other-class")),
    "th14-runup": (
        "THUMOS14 at one row per second (UntrimmedNet-style snippets): long actions change appearance as "
        "they go (run-up, take-off, flight), athletes warm up with the class's motion but no action, noisier "
        "256-d ReLU features.",
        dict(layout="thumos14", max_videos=60, dim=256, statistics="relu", rows_per_second=1.0, context=0.3,
             context_varies=True, pattern="drifting", noise=1.3, distractors=2.0, distractor_kind="own-motion")),
    "th14-weak": (
        "THUMOS14 with features from a backbone not trained for the target (another domain, no fine-tuning): "
        "weak action patterns in heavy noise, no class scene, 256-d signed rows.",
        dict(layout="thumos14", max_videos=60, dim=256, statistics="gaussian", context=0.0, pattern="additive",
             noise=1.6)),
    "th14-finetuned": (
        "THUMOS14 with features of a backbone fine-tuned on the target's classes (TSRNet's recipe, the demo's "
        "fine-tuned features): strong action patterns in little noise, background that shows almost nothing "
        "of the class, 512-d ReLU rows.",
        dict(layout="thumos14", max_videos=60, dim=512, statistics="relu", context=0.1, context_varies=False,
             pattern="additive", strength=0.6, noise=0.8)),
    "anet-i3d": (
        "ActivityNet 1.3 with I3D-style ReLU features at one row per second: few long instances covering "
        "much of the video, a constant scene, appearance clearer than motion (ActivityNet's classes are "
        "told apart by objects and places more than by motion).",
        dict(layout="activitynet13", max_videos=150, dim=1024, statistics="relu", rows_per_second=1.0,
             context=0.45, context_varies=False, pattern="additive", rgb_gain=1.2, flow_gain=0.8)),
    "anet-drift": (
        "ActivityNet 1.3 with standardised 256-d features at two rows per second: long activities whose "
        "appearance drifts (assembling a bicycle: parts, then the frame), a wandering scene, and look-alike "
        "background.",
        dict(layout="activitynet13", max_videos=150, dim=256, statistics="gaussian", rows_per_second=2.0,
             context=0.6, context_varies=True, pattern="drifting", noise=1.2, distractors=0.5,
             distractor_kind="other-class")),
    "th14-overlap": (
        "THUMOS14 with features of overlapping clips (a 64-frame window every 16 frames, as I3D features are "
        "usually extracted): each row shares three quarters of its frames with its neighbours, so its noise moves "
        "slowly (lag-1 autocorrelation 0.8); standardised 512-d rows, a wandering scene, motion clearer in flow.",
        dict(layout="thumos14", max_videos=60, dim=512, statistics="gaussian", context=0.45, context_varies=True,
             pattern="additive", noise=1.3, noise_memory=0.8, rgb_gain=0.9, flow_gain=1.1)),
    "th14-salient": (
        "THUMOS14 where only a phase of each action tells its class (the take-off of a high jump, the release of a "
        "throw: 30% of the instance, at a phase fixed per class), the rest of it showing generic motion and a "
        "faint class pattern, as the CAS of a real classifier covers the discriminative part, not the whole "
        "action (the premise of MGFN's dilations and erasing, STPN's and BaS-Net's attention); 512-d ReLU rows "
        "moving moderately slowly (0.5), a wandering scene.",
        dict(layout="thumos14", max_videos=60, dim=512, statistics="relu", context=0.3, context_varies=True,
             pattern="additive", salient_fraction=0.3, salient_floor=0.2, noise_memory=0.5)),
    "anet-slow": (
        "ActivityNet 1.3 with features of overlapping clips at two rows per second (or resampled to a fixed "
        "number of rows per video, as ActivityNet features usually are): rows move slowly (lag-1 "
        "autocorrelation of the noise 0.9), 512-d ReLU rows, a wandering scene and look-alike background.",
        dict(layout="activitynet13", max_videos=150, dim=512, statistics="relu", rows_per_second=2.0,
             context=0.45, context_varies=True, pattern="additive", noise=1.3, noise_memory=0.9, distractors=0.5,
             distractor_kind="other-class")),
}


def preset_spec(name: str, **overrides) -> LayoutSpec:
    """The :class:`LayoutSpec` of preset ``name``, with ``overrides`` over its settings."""
    if name not in PRESETS:
        raise DataError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    values = {**PRESETS[name][1], **overrides}
    values["layout"] = str(LAYOUTS.get(values["layout"], values["layout"]))
    names = {f.name for f in dataclasses.fields(LayoutSpec)}
    wrong = sorted(set(values) - names)
    if wrong:
        raise DataError(f"preset {name!r}: no setting {wrong[0]!r}")
    return LayoutSpec(**values)


def rationale(name: str) -> str:
    return PRESETS[name][0]
