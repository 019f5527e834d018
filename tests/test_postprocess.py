"""The shared post-processing against hand-worked cases."""
import math
import numpy as np
import pytest

from tsrnet.detect.localize import Evidence, Source, VideoScores, detect_video
from tsrnet.detect.postprocess import (clamped_normalise, nms, normalise, otsu_split, outer_inner_contrast, proposals,
                                       soft_nms, tiou, two_class_normalise)
from tsrnet.detect.config import DetectConfig

# One class's score at one row per second: two actions, the second sharper.
W = np.array([0.0, 0.5, 0.9, 0.5, 0.0, 0.3, 1.0, 0.3, 0.0])


def video(w, video_prob=1.0, gates=None):
    t = np.arange(len(w)) + 0.5
    g = np.ones(len(w)) if gates is None else np.asarray(gates, float)
    prob = np.stack([w, np.zeros(len(w))], axis=1)
    vp = np.array([video_prob, 0.0])
    rows = {"attention": g, "class_prob": prob}
    return VideoScores("v", t, float(len(w)), {"rgb": rows, "flow": rows}, {"rgb": vp, "flow": vp})


def segments(dets):
    return [d["segment"] for d in dets]


def test_multi_threshold_proposals_are_pooled():
    # 0.2 finds rows 1-3 and 5-7; 0.6 finds rows 2 and 6.
    assert proposals(W, [0.2, 0.6]) == [(1, 3), (2, 2), (5, 7), (6, 6)]
    assert proposals(W, [0.2, 0.6], min_rows=2) == [(1, 3), (5, 7)]
    assert proposals(W, [0.2, 0.2]) == [(1, 3), (5, 7)]  # the same run twice is one proposal


def test_pooling_then_nms_mean_score():
    # Mean inside x video score: (1,3) 0.633, (2,2) 0.9, (5,7) 0.533, (6,6) 1.0.
    # [1,4] and [2,3] overlap with tIoU 1/3, as do [5,8] and [6,7].
    cfg = DetectConfig(threshold=[0.2, 0.6], scale="video", score="mean", suppress="nms", nms=0.3, min_rows=1)
    dets = detect_video(video(W), ["a", "b"], cfg)
    assert segments(dets) == [[6.0, 7.0], [2.0, 3.0]]
    assert [d["score"] for d in dets] == [1.0, 0.9]
    cfg.nms = 0.5  # 1/3 < 0.5: nothing suppressed
    assert len(detect_video(video(W), ["a", "b"], cfg)) == 4


def test_pooling_then_nms_contrast_score():
    # Outer-inner contrast (quarter-length margin, at least one row) + video score:
    # (1,3): 0.633 - 0 + 1; (2,2): 0.9 - 0.5 + 1; (5,7): 0.533 - 0 + 1; (6,6): 1.0 - 0.3 + 1.
    # The contrast prefers the whole first action but only the peak of the second.
    cfg = DetectConfig(threshold=[0.2, 0.6], scale="video", score="contrast", suppress="nms", nms=0.3,
                       min_rows=1)
    dets = detect_video(video(W), ["a", "b"], cfg)
    assert segments(dets) == [[6.0, 7.0], [1.0, 4.0]]
    assert [d["score"] for d in dets] == pytest.approx([1.7, 1 + 1.9 / 3], abs=1e-6)
    assert outer_inner_contrast(W, 2, 2) == pytest.approx(0.4)


def test_calibration_per_video_hand_worked():
    # Intervals (1,3) and (5,7), means 0.6333 and 0.5333, video score 0.5. Uncalibrated: mean x 0.5.
    # Calibrated: each mean divided by the best in the video (0.6333), then x 0.5.
    cfg = DetectConfig(threshold=[0.2], scale="video")
    plain = detect_video(video(W, video_prob=0.5), ["a", "b"], cfg)
    assert [d["score"] for d in plain] == pytest.approx([1.9 / 6, 1.6 / 6], abs=1e-6)
    cfg.calibrate = "video"
    calibrated = detect_video(video(W, video_prob=0.5), ["a", "b"], cfg)
    assert segments(calibrated) == segments(plain)
    assert [d["score"] for d in calibrated] == pytest.approx([0.5, 0.5 * 1.6 / 1.9], abs=1e-6)
    # Contrast: (1,3) 0.633 - 0, (5,7) 0.533 - 0 (no rows beyond the margins score), then + 0.5.
    cfg.score = "contrast"
    assert [d["score"] for d in detect_video(video(W, video_prob=0.5), ["a", "b"], cfg)] == \
        pytest.approx([1.5, 1.6 / 1.9 + 0.5], abs=1e-6)
    with pytest.raises(Exception, match="calibration"):
        DetectConfig(calibrate="class")


def test_soft_nms_hand_worked():
    seg = [[0, 10], [1, 10], [20, 30]]
    keep, scores = soft_nms(seg, [1.0, 0.9, 0.8], sigma=0.5)
    # [1,10] overlaps [0,10] with tIoU 0.9: 0.9 * exp(-0.81 / 0.5); [20,30] overlaps nothing.
    assert keep == [0, 2, 1]
    np.testing.assert_allclose(scores, [1.0, 0.8, 0.9 * np.exp(-0.81 / 0.5)])
    # Above the overlap threshold only: 0.9 > 0.95 is false, nothing decays.
    keep, scores = soft_nms(seg, [1.0, 0.9, 0.8], sigma=0.5, iou=0.95)
    assert keep == [0, 1, 2] and list(scores) == [1.0, 0.9, 0.8]
    assert nms(seg, [1.0, 0.9, 0.8], 0.5) == [0, 2]


def soft_nms_reference(segments, scores, sigma, iou, min_score=1e-3):
    """Gaussian soft-NMS written out on Python lists: take the best (lowest index among equals), decay the rest."""
    sc = [float(v) for v in scores]
    floor = min_score * max(sc)
    rest, keep, kept = list(range(len(sc))), [], []
    while rest:
        j = rest[0]
        for k in rest:
            if sc[k] > sc[j]:
                j = k
        rest.remove(j)
        if sc[j] < floor:
            break
        keep.append(j)
        kept.append(sc[j])
        s, e = segments[j]
        for k in rest:
            inter = max(0.0, min(e, segments[k][1]) - max(s, segments[k][0]))
            union = (e - s) + (segments[k][1] - segments[k][0]) - inter
            o = inter / union if union > 0 else 0.0
            if o > iou:
                sc[k] *= math.exp(-o * o / sigma)
    return keep, kept


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("iou", [0.0, 0.5])
def test_soft_nms_equals_a_straightforward_reference(seed, iou):
    rng = np.random.default_rng(seed)
    n = 300
    start = rng.uniform(0, 200, n)
    seg = np.stack([start, start + rng.uniform(0, 30, n)], axis=1)  # some of zero length
    seg[:10, 1] = seg[:10, 0]
    seg[10:20] = seg[20:30]  # exact duplicates
    scores = rng.random(n)
    keep, kept = soft_nms(seg, scores, sigma=0.75, iou=iou)
    ref_keep, ref_kept = soft_nms_reference(seg.tolist(), scores, 0.75, iou)
    assert keep == ref_keep
    np.testing.assert_allclose(kept, ref_kept, rtol=1e-12)
    assert 0 < len(keep) < n  # the floor dropped some: both branches of the loop ran


def test_soft_nms_breaks_ties_by_input_order():
    # Disjoint segments never decay each other: the order is by score, equal scores in input order.
    seg = [[3 * i, 3 * i + 1] for i in range(6)]
    scores = [0.5, 1.0, 0.5, 0.25, 1.0, 0.5]
    keep, kept = soft_nms(seg, scores, sigma=0.5)
    assert keep == [1, 4, 0, 2, 5, 3] and list(kept) == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    assert soft_nms_reference(seg, scores, 0.5, 0.0)[0] == keep


def test_tiou():
    np.testing.assert_allclose(tiou([0, 2], [[1, 3], [2, 4], [0, 2], [5, 6]]), [1 / 3, 0, 1, 0])


@pytest.mark.parametrize("scale", ["otsu", "video"])
@pytest.mark.parametrize("a,b", [(2.0, 0.0), (0.1, 0.5), (7.0, -3.0), (1e-3, 0.9)])
def test_normalised_threshold_ignores_affine_rescaling(a, b, scale):
    rng = np.random.default_rng(0)
    w = np.clip(np.convolve(rng.random(60), np.ones(5) / 5, mode="same"), 0, 1)
    cfg = DetectConfig(threshold=[0.3, 0.55], scale=scale, suppress="none", min_rows=1)
    ref = segments(detect_video(video(w), ["a", "b"], cfg))
    assert len(ref) >= 3
    # The weighted score of a video rescaled as a whole (its floor and ceiling move): same intervals.
    assert segments(detect_video(video(a * w + b), ["a", "b"], cfg)) == ref
    # The absolute rule does not have this property.
    absolute = DetectConfig(threshold=[0.3], scale="absolute", suppress="none")
    assert segments(detect_video(video(0.5 * w + 0.4), ["a", "b"], absolute)) != \
        segments(detect_video(video(w), ["a", "b"], absolute))


def test_normalise_columns_and_flat():
    w = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]])
    np.testing.assert_allclose(normalise(w), [[0.0, 1.0], [1.0, 1.0], [0.5, 1.0]])


def test_otsu_split_hand_worked():
    # Sorted 0 0 0 .1 .9 1. Between-class n_lo n_hi (mean_lo - mean_hi)^2 at each distinct split:
    # {0,0,0}|{.1,.9,1}: 3*3*(2/3)^2 = 4; {.., .1}|{.9, 1}: 4*2*0.925^2 = 6.845; {.., .9}|{1}: 5*1*0.8^2 = 3.2.
    w = np.array([0.0, 0.0, 1.0, 0.1, 0.9, 0.0])
    lo, hi = otsu_split(w)
    assert (lo, hi) == pytest.approx((0.025, 0.95))
    np.testing.assert_allclose(two_class_normalise(w), (w - 0.025) / 0.925)
    # Per column; a constant column maps to 1, as min-max does.
    both = two_class_normalise(np.stack([w, np.full(6, 0.3)], axis=1))
    np.testing.assert_allclose(both, np.stack([(w - 0.025) / 0.925, np.ones(6)], axis=1))


@pytest.mark.parametrize("seed", range(4))
def test_otsu_split_agrees_with_opencv(seed):
    # OpenCV's Otsu threshold t on 8-bit values puts v <= t in the low class; ours must split the same rows.
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(seed)
    n_act = int(rng.integers(5, 60))
    v = np.concatenate([rng.normal(70, 20, 100 - n_act), rng.normal(180, 25, n_act)])
    v = np.clip(np.round(v), 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(v.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    low = v[v <= t].astype(float)
    high = v[v > t].astype(float)
    assert otsu_split(v) == pytest.approx((low.mean(), high.mean()))


def test_two_class_scale_splits_close_actions():
    # Scene at 0.1 with one dark row at 0, two actions at 1.0 two rows apart, the gap between them at 0.25.
    # Min-max anchors on the dark row: the gap sits at 0.25 of the range, and 0.2 finds one run over both
    # actions. Otsu's classes are the 14 rows at or below 0.25 (mean 1.6 / 14) and the 6 action rows
    # (mean 1.0): the gap sits at (0.25 - 0.1143) / 0.8857 = 0.153, so 0.2 finds the two actions.
    w = np.full(20, 0.1)
    w[0] = 0.0
    w[5:8] = 1.0
    w[8:10] = 0.25
    w[10:13] = 1.0
    assert otsu_split(w) == pytest.approx((1.6 / 14, 1.0))
    minmax = detect_video(video(w), ["a", "b"], DetectConfig(threshold=[0.2], scale="video"))
    assert segments(minmax) == [[5.0, 13.0]]
    two = detect_video(video(w), ["a", "b"], DetectConfig(threshold=[0.2], scale="otsu"))
    assert sorted(segments(two)) == [[5.0, 8.0], [10.0, 13.0]]


def test_min_rows_drops_one_row_spikes():
    w = np.zeros(12)
    w[2:5] = 1.0
    w[9] = 1.0  # a one-row spike
    found = segments(detect_video(video(w), ["a", "b"], DetectConfig(threshold=[0.5])))
    assert found == [[2.0, 5.0]]
    assert DetectConfig().min_rows == 2
    assert sorted(segments(detect_video(video(w), ["a", "b"], DetectConfig(threshold=[0.5], min_rows=1)))) == \
        [[2.0, 5.0], [9.0, 10.0]]


def test_scene_floor_whole_video_vs_normalised():
    # Background at 0.5 (the class's scene), actions at 0.95: the paper's absolute 0.2 returns the whole
    # video, the normalised 0.2 the two actions.
    w = np.full(20, 0.5)
    w[3:6] = 0.95
    w[12:15] = 0.95
    absolute = detect_video(video(w), ["a", "b"], DetectConfig(threshold=[0.2], scale="absolute"))
    assert segments(absolute) == [[0.0, 20.0]]
    for scale in ("video", "otsu"):
        normalised = detect_video(video(w), ["a", "b"], DetectConfig(threshold=[0.2], scale=scale))
        assert segments(normalised) == [[3.0, 6.0], [12.0, 15.0]]


def test_threshold_out_of_range_and_old_runs():
    with pytest.raises(Exception, match="not in"):
        DetectConfig(threshold=[1.5])
    assert DetectConfig(threshold=0.3).threshold == [0.3]  # config.json of runs made before the list


def test_diagnosis_hand_worked():
    from tsrnet.data.format.annotations import Annotations, Segment, VideoAnnotation
    from tsrnet.detect.pipeline import _union, diagnose, format_diagnosis

    # Rows at 0.5, 1.5, ... 9.5 s; the action covers rows 2-4 (times 2.5-4.5).
    gates = np.array([0.2, 0.2, 1.0, 0.8, 0.6, 0.2, 0.2, 0.2, 0.2, 0.2])
    vs = video(np.full(10, 0.5), gates=gates)
    ann = Annotations({"v": VideoAnnotation("v", "test", 10.0, [Segment("a", 2.0, 5.0)])})
    results = {"v": [{"label": "a", "score": 1.0, "segment": [0.0, 9.0]},
                     {"label": "a", "score": 0.5, "segment": [8.0, 10.0]}]}
    d = diagnose([vs], results, ann, ["a", "b"], DetectConfig())
    assert d["attention_rgb_action"] == pytest.approx(0.8) and d["attention_rgb_other"] == pytest.approx(0.2)
    assert d["score_action"] == pytest.approx(0.4) and d["score_other"] == pytest.approx(0.1)
    assert (d["detections"], d["instances"]) == (2, 1)
    assert d["detection_length"] == pytest.approx(5.5) and d["instance_length"] == pytest.approx(3.0)
    assert d["detection_cover"] == pytest.approx(1.0) and d["instance_cover"] == pytest.approx(0.3)
    assert "warning" in format_diagnosis(d, "absolute") and "--scale otsu" in format_diagnosis(d, "absolute")
    assert _union([[0, 2], [1, 3], [5, 6]]) == 4
    assert "fragments" not in format_diagnosis(d)
    # Ten detections of 0.5 s for one instance of 3 s: fragments, and the way out named.
    frag = {**d, "detections": 10, "detection_length": 0.5, "detection_cover": 0.3}
    assert "--smooth" in format_diagnosis(frag) and "wider than 4 s" in format_diagnosis(frag, smooth=4.0)


def test_clamped_normalisation_hand_worked():
    # Negative and positive: divided by the maximum, negatives stay below 0.
    np.testing.assert_allclose(clamped_normalise(np.array([-2.0, 0.0, 1.0, 4.0])), [-0.5, 0.0, 0.25, 1.0])
    # All positive: min-max.
    np.testing.assert_allclose(clamped_normalise(np.array([1.0, 2.0, 5.0])), [0.0, 0.25, 1.0])
    # None positive: as it is, so no threshold >= 0 is passed (but by exact zeros).
    np.testing.assert_allclose(clamped_normalise(np.array([-3.0, -1.0])), [-3.0, -1.0])
    # Per column.
    np.testing.assert_allclose(clamped_normalise(np.array([[-2.0, 1.0], [4.0, 3.0]])), [[-0.5, 0.0], [1.0, 1.0]])


def test_a_negative_contrast_is_kept_as_it_is():
    # --score contrast+video (BaS-Net's released code) does not clip the contrast at 0, unlike --score contrast:
    # a run whose surroundings score higher keeps its negative contrast, + 0.2 x the video score.
    w = np.array([0.9, 0.9, 0.5, 0.9, 0.9])
    cfg = DetectConfig(threshold=[0.4], scale="absolute", score="contrast+video", video_weight=0.2, min_rows=1,
                       suppress="none", class_threshold=0.0)
    vs = VideoScores("v", np.arange(5) + 0.5, 5.0, {"x": {"p": w[:, None]}}, {"x": np.array([0.5])})

    def evidence(vs, cfg):
        lvl = np.where(np.arange(5) == 2, 1.0, 0.0)[:, None]  # only row 2 passes
        return Evidence(vs.video_prob["x"], [Source(lvl, w[:, None])], w[:, None])

    (d,) = detect_video(vs, ["c"], cfg, evidence)
    assert d["score"] == pytest.approx(0.5 - 0.9 + 0.2 * 0.5)
