"""Intervals from crafted score sequences."""
import numpy as np
import pytest

from tsrnet.detect.localize import VideoScores, detect_video, row_bounds, weighted_evidence
from tsrnet.detect.postprocess import runs
from tsrnet.detect.config import DetectConfig


def test_runs():
    assert runs(np.array([0, 1, 1, 0, 1, 0, 0, 1], bool)) == [(1, 2), (4, 4), (7, 7)]
    assert runs(np.zeros(4, bool)) == []
    assert runs(np.ones(3, bool)) == [(0, 2)]


def test_row_bounds_constant_rate_is_paper_eq12():
    # rows at 2 per second, centred: row i covers [i/2, (i+1)/2] = ind / F
    t = (np.arange(6) + 0.5) / 2
    s, e = row_bounds(t, 3.0)
    np.testing.assert_allclose(s, np.arange(6) / 2)
    np.testing.assert_allclose(e, (np.arange(6) + 1) / 2)


def test_row_bounds_irregular_and_clipped():
    s, e = row_bounds(np.array([0.2, 1.0, 3.0]), 3.1)
    np.testing.assert_allclose(s, [0.0, 0.6, 2.0])
    np.testing.assert_allclose(e, [0.6, 2.0, 3.1])


def make_scores(gate, prob_c0, video_prob=(0.9, 0.05)):
    t = (np.arange(len(gate)) + 0.5)  # one row per second
    row_prob = np.stack([prob_c0, np.full(len(gate), 0.9)], axis=1)
    return VideoScores("v", t, float(len(gate)),
                       {s: {"attention": np.array(gate), "class_prob": row_prob.copy()} for s in ("rgb", "flow")},
                       {"rgb": np.array(video_prob), "flow": np.array(video_prob)})


def test_detect_video_crafted():
    gate = np.array([0.1, 0.1, 0.8, 1.0, 0.9, 0.1, 0.1, 0.5, 0.5, 0.1])
    prob = np.array([0.9] * 10)
    vs = make_scores(gate, prob)
    dets = detect_video(vs, ["a", "b"], DetectConfig(threshold=0.3, score="mean", class_threshold=0.1))
    # class b has video score 0.05 < 0.1 and is not the best: dropped. Class a: w = gate * 0.9.
    assert [d["label"] for d in dets] == ["a", "a"]
    assert [d["segment"] for d in dets] == [[2.0, 5.0], [7.0, 9.0]]
    assert dets[0]["score"] == pytest.approx(np.mean([0.8, 1.0, 0.9]) * 0.9 * 0.9, rel=1e-5)
    assert dets[0]["score"] > dets[1]["score"]


def test_attention_is_normalised_per_video():
    # Same shape, 10x smaller attention: same detections (softmax-like scale does not matter).
    gate = np.array([0.0, 0.0, 0.08, 0.1, 0.09, 0.0])
    vs = make_scores(gate, np.full(6, 1.0))
    dets = detect_video(vs, ["a", "b"], DetectConfig(threshold=0.5, score="mean"))
    assert [d["segment"] for d in dets] == [[2.0, 5.0]]


def test_fusion_weight_theta():
    vs = make_scores(np.ones(4), np.full(4, 1.0))
    vs.rows["flow"]["class_prob"] = np.zeros((4, 2))
    assert weighted_evidence(vs, DetectConfig(theta=0.5)).shown[0, 0] == pytest.approx(0.5)
    assert weighted_evidence(vs, DetectConfig(theta=0.2)).shown[0, 0] == pytest.approx(0.2)


def test_smoothing_joins_a_long_action_cut_by_a_dip_and_drops_a_spike():
    # One row per second. An action over rows 2-13 with a one-row dip at 7 (row noise), and a one-row spike at 17.
    gate = np.full(20, 0.05)
    gate[2:14] = 1.0
    gate[7] = 0.05
    gate[17] = 1.0
    vs = make_scores(gate, np.full(20, 1.0))
    cfg = dict(threshold=0.5, scale="absolute", score="mean", min_rows=1)
    plain = detect_video(vs, ["a", "b"], DetectConfig(**cfg))
    assert sorted(d["segment"] for d in plain) == [[2.0, 7.0], [8.0, 14.0], [17.0, 18.0]]
    # A 3-s window is 3 rows: row 7's neighbours outvote it, row 17's outvote it; the edges stay at 2 and 14.
    smooth = detect_video(vs, ["a", "b"], DetectConfig(**cfg, smooth=3.0))
    assert [d["segment"] for d in smooth] == [[2.0, 14.0]]
    # The interval is scored on the method's evidence as it is: the dip still counts.
    assert smooth[0]["score"] == pytest.approx((11 * 1.0 + 0.05) / 12 * 0.9, rel=1e-5)
    # 2.4 s is the nearest odd count of rows, 3; 0.4 s rounds to 1 row: no filter.
    assert detect_video(vs, ["a", "b"], DetectConfig(**cfg, smooth=2.4)) == smooth
    assert detect_video(vs, ["a", "b"], DetectConfig(**cfg, smooth=0.4)) == plain


def test_a_negative_smoothing_window_is_refused():
    from tsrnet.data.core.errors import DataError
    with pytest.raises(DataError, match="--smooth"):
        DetectConfig(smooth=-1.0)


def class_score_only(vs, cfg):
    """UntrimmedNet's localisation: the row class score alone, the attention left out."""
    from tsrnet.detect.localize import Evidence, Source, fuse
    p = fuse({s: r["class_prob"] for s, r in vs.rows.items()}, cfg.theta)
    return Evidence(fuse(vs.video_prob, cfg.theta), [Source(p, p)], p)


def test_attention_weight_scales_rows_by_their_place_in_the_log_attention_range():
    # Attention 1e-3 .. 1 over 10 rows; on a log scale the rows sit at r = 0, 1/3, 2/3 or 1 of the range.
    # The class score is 0.9 on every row.
    att = np.array([1e-3, 1e-2, 0.1, 1.0, 0.1, 1e-2, 1e-3, 1e-3, 1e-2, 1e-3])
    r = np.array([0, 1, 2, 3, 2, 1, 0, 0, 1, 0]) / 3
    vs = make_scores(att, np.full(10, 0.9))
    cfg = dict(threshold=0.5, scale="absolute", score="mean", min_rows=1)
    # Off: a flat score, one interval over the whole video.
    assert [d["segment"] for d in detect_video(vs, ["a", "b"], DetectConfig(**cfg), class_score_only)] == [[0.0, 10.0]]
    # k = 0.5: weights min(1, 2r) = 0 2/3 1 1 1 2/3 0 0 2/3 0; levels 0.9 x those: rows 1-5 and row 8 pass 0.5.
    dets = detect_video(vs, ["a", "b"], DetectConfig(**cfg, attention_weight=0.5), class_score_only)
    assert [d["segment"] for d in dets] == [[1.0, 6.0], [8.0, 9.0]]
    # "mean": the interval's mean level times the video score (0.9).
    assert [d["score"] for d in dets] == pytest.approx([(0.6 + 0.9 * 3 + 0.6) / 5 * 0.9, 0.6 * 0.9], rel=1e-5)
    # k = 1: weights r; levels 0 0.3 0.6 0.9 0.6 0.3 ...: rows 2-4 alone pass.
    dets = detect_video(vs, ["a", "b"], DetectConfig(**cfg, attention_weight=1.0), class_score_only)
    assert [d["segment"] for d in dets] == [[2.0, 5.0]]
    # What timelines and diagnose draw is what was thresholded.
    from tsrnet.detect.localize import localised
    shown = localised(vs, DetectConfig(attention_weight=1.0), class_score_only).shown[:, 0]
    assert shown == pytest.approx(0.9 * r)
    # The video's own range: the same video at twice the rows, a softmax's attention halved, is weighted alike.
    twice = make_scores(np.repeat(att, 2) / 2, np.full(20, 0.9))
    shown2 = localised(twice, DetectConfig(attention_weight=1.0), class_score_only).shown[:, 0]
    assert shown2 == pytest.approx(np.repeat(shown, 2))
    # A closed gate (attention 0) sits at the floor of the range, 1e-6 of the top: the other rows' places follow.
    closed = att.copy()
    closed[0] = 0.0
    shown3 = localised(make_scores(closed, np.full(10, 0.9)), DetectConfig(attention_weight=1.0),
                       class_score_only).shown[:, 0]
    assert shown3 == pytest.approx(0.9 * np.r_[0, (np.log10(att[1:]) + 6) / 6])
    # Rows all attended alike: nothing to tell apart, the scores stay.
    flat = localised(make_scores(np.full(10, 0.1), np.full(10, 0.9)), DetectConfig(attention_weight=1.0),
                     class_score_only).shown[:, 0]
    assert flat == pytest.approx(np.full(10, 0.9))
    # As models give it: float32, flat (a value float32 rounds) or one row; in float64 these were exact.
    from tsrnet.detect.localize import attention_weights
    for a in (np.full(10, 0.1, np.float32), np.full(10, 1 / 3, np.float32), np.array([0.3], np.float32)):
        assert attention_weights(a, 1.0) == pytest.approx(np.ones(len(a)))
    assert attention_weights(att.astype(np.float32), 1.0) == pytest.approx(r, abs=1e-6)
    # A source that thresholds the shown score itself still does, so timelines draw its thresholds on it.
    ev = localised(vs, DetectConfig(attention_weight=0.5))  # TSRNet's Eq. (10): Source(w, w), shown w
    assert ev.sources[0].level is ev.shown and ev.sources[0].evidence is ev.shown


def test_attention_weight_leaves_methods_without_attention_alone():
    vs = make_scores(np.ones(6), np.linspace(0.1, 0.9, 6))
    for s in vs.rows:
        del vs.rows[s]["attention"]
    cfg = dict(threshold=0.5, scale="video", score="mean")
    assert detect_video(vs, ["a", "b"], DetectConfig(**cfg, attention_weight=1.0), class_score_only) == \
        detect_video(vs, ["a", "b"], DetectConfig(**cfg), class_score_only)


def test_an_attention_weight_outside_0_1_is_refused():
    from tsrnet.data.core.errors import DataError
    for k in (-0.5, 2.0):
        with pytest.raises(DataError, match="attention.weight"):
            DetectConfig(attention_weight=k)
