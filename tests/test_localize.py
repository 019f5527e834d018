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
