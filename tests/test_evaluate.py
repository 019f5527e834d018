"""The ActivityNet detection protocol: hand-worked cases, a literal reference, real THUMOS14 input."""
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.annotations import load_annotations
from detect.evaluate import (
    average_precision_detection,
    average_precision_ranking,
    classification_metrics,
    evaluate_detections,
    interpolated_ap,
)

THUMOS = Path(__file__).resolve().parent / "fixtures" / "thumos14"  # the real files, carried by the repository


def gt_frame(rows):
    return pd.DataFrame(rows, columns=["video-id", "label", "t-start", "t-end"])


def pred_frame(rows):
    return pd.DataFrame(rows, columns=["video-id", "label", "score", "t-start", "t-end"])


def reference_ap(gt, pred, thresholds):
    """The protocol as its text reads, one prediction and one threshold at a time (slow, obvious)."""
    order = sorted(range(len(pred)), key=lambda i: -pred[i][1])
    aps = []
    for thr in thresholds:
        used = set()
        tp = []
        for i in order:
            vid, _, s, e = pred[i]
            best, best_j = -1.0, None
            for j, (gv, gs, ge) in enumerate(gt):
                if gv != vid or j in used:
                    continue
                inter = max(0.0, min(e, ge) - max(s, gs))
                iou = inter / ((e - s) + (ge - gs) - inter)
                if iou > best:
                    best, best_j = iou, j
            hit = best_j is not None and best >= thr
            if hit:
                used.add(best_j)
            tp.append(hit)
        tp = np.array(tp, dtype=float)
        ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
        rec, prec = ctp / len(gt), ctp / (ctp + cfp)
        # All-point interpolation: area under the monotone envelope of precision.
        ap, prev_r = 0.0, 0.0
        for k in range(len(rec)):
            if rec[k] > prev_r:
                ap += (rec[k] - prev_r) * prec[k:].max()
                prev_r = rec[k]
        aps.append(ap)
    return np.array(aps)


def test_hand_worked_single_class():
    # Video A: GT [0,10], [20,30]; video B: GT [5,15].
    gt = gt_frame([("A", "x", 0, 10), ("A", "x", 20, 30), ("B", "x", 5, 15)])
    pred = pred_frame([
        ("A", "x", 0.9, 0, 10),    # TP (IoU 1)
        ("A", "x", 0.8, 1, 10),    # duplicate of a matched GT: FP at 0.5 (other GT has IoU 0)
        ("B", "x", 0.7, 5, 10),    # IoU 0.5: TP at 0.5, FP at 0.7
        ("C", "x", 0.6, 0, 5),     # video without GT: FP
        ("A", "x", 0.5, 20, 28),   # IoU 0.8: TP at 0.5 and 0.7
    ])
    ap = average_precision_detection(gt[gt.label == "x"], pred, [0.5, 0.7])
    # thr 0.5: TP,FP,TP,FP,TP -> precision 1, 1/2, 2/3, 2/4, 3/5 at recall 1/3,1/3,2/3,2/3,1
    # envelope: r=1/3 -> 1, r=2/3 -> 2/3, r=1 -> 3/5
    assert ap[0] == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3 + 1 / 3 * 3 / 5, abs=1e-12)
    # thr 0.7: TP,FP,FP,FP,TP -> recall 1/3 at p=1, 2/3 at p=2/5
    assert ap[1] == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 5, abs=1e-12)


def test_first_candidate_below_threshold_makes_fp_even_if_locked_one_is_higher():
    # GT g1 [0,10] and g2 [8,20]. First prediction takes g1. Second overlaps g1 best (locked) and g2 at 0.1.
    gt = gt_frame([("A", "x", 0, 10), ("A", "x", 8, 20)])
    pred = pred_frame([("A", "x", 0.9, 0, 10), ("A", "x", 0.8, 0, 9)])
    ap = average_precision_detection(gt, pred, [0.5])
    # second is FP: recall 1/2 at precision 1 -> AP 0.5
    assert ap[0] == pytest.approx(0.5)


def test_empty_and_missing_classes():
    gt = gt_frame([("A", "x", 0, 10), ("A", "y", 0, 10)])
    res = evaluate_detections(gt, pred_frame([]), [0.5])
    assert res.map[0] == 0 and set(res.per_class) == {"x", "y"}
    res = evaluate_detections(gt, pred_frame([("A", "x", 1.0, 0, 10), ("A", "z", 1.0, 0, 10)]), [0.5])
    assert res.per_class["x"][0] == 1.0 and res.per_class["y"][0] == 0.0
    assert res.map[0] == pytest.approx(0.5)
    assert res.ignored_labels == ["z"]


@pytest.mark.parametrize("seed", range(6))
def test_matches_literal_reference_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    gt, pred = [], []
    for v in range(6):
        for _ in range(rng.integers(0, 5)):
            s = rng.uniform(0, 90)
            gt.append((f"v{v}", s, s + rng.uniform(1, 15)))
    for v in range(8):  # v6, v7 have no ground truth
        for _ in range(rng.integers(0, 12)):
            s = rng.uniform(0, 90)
            pred.append((f"v{v}", rng.random(), s, s + rng.uniform(0.5, 20)))
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9]
    ours = average_precision_detection(
        pd.DataFrame(gt, columns=["video-id", "t-start", "t-end"]),
        pd.DataFrame(pred, columns=["video-id", "score", "t-start", "t-end"]), thresholds)
    ref = reference_ap(gt, pred, thresholds) if gt else np.zeros(len(thresholds))
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_interpolated_ap_is_envelope_area():
    assert interpolated_ap(np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0]))[0] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_speed_is_reasonable():
    """Not a benchmark (see benchmarks/): a guard that the vectorised path is used at all."""
    rng = np.random.default_rng(0)
    n_gt, n_pred = 3000, 20000
    gvid = rng.integers(0, 200, n_gt)
    gs = rng.uniform(0, 200, n_gt)
    gt = gt_frame(list(zip([f"v{v}" for v in gvid], [f"c{c}" for c in rng.integers(0, 20, n_gt)], gs,
                           gs + rng.uniform(1, 10, n_gt))))
    ps = rng.uniform(0, 200, n_pred)
    pred = pred_frame(list(zip([f"v{v}" for v in rng.integers(0, 200, n_pred)],
                               [f"c{c}" for c in rng.integers(0, 20, n_pred)], rng.random(n_pred), ps,
                               ps + rng.uniform(1, 10, n_pred))))
    t = time.perf_counter()
    evaluate_detections(gt, pred)
    assert time.perf_counter() - t < 20


def test_classification_metrics_by_hand():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    targets = np.array([[1, 0], [1, 0], [0, 1]])
    m = classification_metrics(scores, targets, ["a", "b"])
    assert m["top1"] == pytest.approx(1 / 3)
    # class a ranking: v0 (pos), v2 (neg), v1 (pos): AP = (1/1 + 2/3) / 2; class b: v1 (neg), v2 (pos): AP = 1/2
    assert m["per_class_ap"]["a"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["per_class_ap"]["b"] == pytest.approx(0.5)
    assert average_precision_ranking(np.array([0.3, 0.2]), np.array([0, 0])) != average_precision_ranking(
        np.array([0.3, 0.2]), np.array([0, 0]))  # NaN: no positives


@pytest.mark.skipif(not THUMOS.exists(), reason="shared THUMOS14 annotations not present")
def test_real_thumos14_readers_agree():
    txt = load_annotations(THUMOS / "annotations")
    js = load_annotations(THUMOS / "gt.json")
    assert len(txt.classes()) == 20 and js.classes() == txt.classes()
    test_txt, test_js = txt.select("test"), js.select("test")
    assert len(test_js) == 210 and set(test_js.video_ids()) <= set(test_txt.video_ids())
    common = test_js.video_ids()
    a = test_txt.ground_truth_frame().query("`video-id` in @common").sort_values(["video-id", "label", "t-start"])
    b = test_js.ground_truth_frame().sort_values(["video-id", "label", "t-start"])
    assert len(a) == len(b)
    np.testing.assert_allclose(a[["t-start", "t-end"]].to_numpy(), b[["t-start", "t-end"]].to_numpy())
    # Ground truth scored against itself is perfect at every threshold.
    perfect = b.assign(score=1.0)[["video-id", "label", "score", "t-start", "t-end"]]
    res = evaluate_detections(b, perfect)
    np.testing.assert_allclose(res.map, 1.0)
