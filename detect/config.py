"""Localisation settings: one dataclass, its defaults, and what each means.

Every method turns its row scores into intervals with these settings
(``detect/localize.py`` explains each step). A method's own defaults (for
example UntrimmedNet's "0.5 of the per-video maximum") are recorded in its
run when it is trained; ``detect``'s options override them.
"""
from __future__ import annotations

from dataclasses import dataclass

from tsrnet.data.core.errors import DataError
from tsrnet.data.core.settings import opt

SCALES = ("otsu", "video", "max", "clamped", "absolute")
SCORES = ("mean", "contrast", "mean+video", "contrast+video", "inside")
CALIBRATIONS = ("none", "video")


@dataclass
class DetectConfig:
    threshold: list = opt([0.2], "Rows whose level passes this form intervals (the paper's 0.2); several values "
                          "pool their intervals, which --suppress then de-duplicates.", range=(0.0, 1.0))
    scale: str = opt("otsu", "What the threshold is compared with, per video and class: 'otsu' = the row score "
                     "with 0 at the mean of the video's low rows and 1 at the mean of its high rows (Otsu's "
                     "two-class split; a threshold then means the same on every video, whatever its score floor "
                     "and its share of action); 'video' = "
                     "min-max normalised; 'max' = divided by its maximum (UntrimmedNet's released rule); 'clamped' = "
                     "min-max with the minimum and maximum clamped at 0, so negative scores stay below 0 (BaS-Net's "
                     "released rule, for logits); 'absolute' = the score itself (the paper's literal rule).",
                     choices=SCALES)
    theta: float = opt(0.5, "Eq. (11): weight of RGB in the fusion of the two streams (the paper's 0.5; STPN's "
                       "alpha in Eq. 7).", range=(0.0, 1.0))
    class_threshold: float = opt(0.1, "Keep classes whose fused video-level score passes this (top-1 always kept).",
                                 range=(0.0, 1.0))
    score: str = opt("mean", "Interval score, from the method's evidence inside it and the video-level class "
                     "score v: 'mean' = mean inside x v; 'contrast' = mean inside minus mean of the surrounding "
                     "quarter length on each side, plus v; 'mean+video' = mean inside + --video-weight x v; "
                     "'contrast+video' = that contrast, not clipped, + --video-weight x v (BaS-Net's released "
                     "code); 'inside' = mean inside alone (STPN's Eq. 7).", choices=SCORES)
    video_weight: float = opt(0.2, "Weight of the video-level score in --score mean+video (UntrimmedNet's "
                              "released code: 0.2) and contrast+video (BaS-Net's: 0.2).")
    calibrate: str = opt("none", "Make a class's interval scores rank across videos: 'video' divides each "
                         "interval's evidence (mean or contrast inside) by the best of that class in the same video "
                         "before the video-level score joins it; 'none' keeps it as it is. Intervals a method hands "
                         "over ready-made keep their own scores.", choices=CALIBRATIONS)
    attention_floor: float = opt(0.0, "Rows whose attention is below this never belong to an interval "
                                 "(UntrimmedNet's paper: 0.0001 on its softmax attention); 0 = off.",
                                 range=(0.0, 1.0))
    attention_weight: float = opt(0.0, "Multiply each row's score by min(1, r / this) before the threshold, r the "
                                  "row's place between the video's least (0) and most (1) attended rows on a log "
                                  "scale: rows in the top (1 - this) of the range keep their score, the others "
                                  "lose it in proportion (methods with attention); 0 = off, 1 = r itself.",
                                  range=(0.0, 1.0))
    suppress: str = opt("nms", "Overlapping intervals of one class: 'nms' drops those over --nms tIoU with a "
                        "better one; 'soft-nms' decays their scores by exp(-tIoU^2 / sigma); 'none' keeps all.",
                        choices=("nms", "soft-nms", "none"))
    nms: float = opt(0.5, "tIoU above which --suppress acts (for soft-nms: decays only overlaps above it).",
                     range=(0.0, 1.0))
    soft_nms_sigma: float = opt(0.75, "Soft-NMS Gaussian width sigma.")
    smooth: float = opt(0.0, "Median-filter each class's row level over a window of this many seconds before the "
                        "threshold (0 = off; an odd number of rows, at least 3 to act). Removes dips and spikes "
                        "shorter than half the window: for data whose actions last tens of seconds (ActivityNet), "
                        "where row noise cuts each one into pieces; short, dense actions (THUMOS14) merge under it "
                        "(docs/localisation.md).")
    min_rows: int = opt(2, "Drop intervals shorter than this many rows (W-TALC's released evaluation: 2; a "
                        "one-row run is more often a spike of the row score than an action).")

    def __post_init__(self):
        # Runs written before thresholds were a list recorded one number.
        if not isinstance(self.threshold, (list, tuple)):
            self.threshold = [self.threshold]
        self.threshold = [float(t) for t in self.threshold]
        bad = [t for t in self.threshold if not 0.0 <= t <= 1.0]
        if bad or not self.threshold:
            raise DataError(f"--threshold {bad[0] if bad else '(none)'} is not in [0, 1]")
        if self.scale not in SCALES:
            raise DataError(f"detection scale {self.scale!r} is not one of {', '.join(SCALES)}")
        if self.calibrate not in CALIBRATIONS:
            raise DataError(f"detection calibration {self.calibrate!r} is not one of {', '.join(CALIBRATIONS)}")
        if self.smooth < 0:
            raise DataError(f"--smooth {self.smooth} is negative; give a window in seconds (0 = off)")
        if not 0 <= self.attention_weight <= 1:
            raise DataError(f"--attention-weight {self.attention_weight} is outside [0, 1]; give a share of the "
                            "video's attention range (0 = off, 1 = the row's place in it)")
        if self.score not in SCORES:
            raise DataError(f"detection score {self.score!r} is not one of {', '.join(SCORES)}")
