"""The ActivityNet detection protocol: hand-worked cases, a literal reference, real THUMOS14 input."""
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.detect.evaluate import (
    THUMOS_TIOUS,
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


def literal_tiou(s, e, gs, ge):
    """tIoU as the protocol defines it, one pair at a time (candidate length first, as the official code adds)."""
    inter = max(0.0, min(e, ge) - max(s, gs))
    return inter / ((ge - gs) + (e - s) - inter)


def reference_ap(gt, pred, thresholds, score_kind=None, tiou_kind=None):
    """The protocol as its text reads, one prediction and one threshold at a time (slow, obvious).

    ``gt``: ``(video, start, end)``; ``pred``: ``(video, score, start, end)``.
    Predictions are ranked by score, and each prediction's candidate segments
    (its video's, in ``gt`` order) are tried by tIoU, each in the order
    ``argsort(kind)[::-1]`` gives: ``None``, numpy's default sort, is what the
    official code uses, ties included; ``"stable"`` is there to show that a
    test input depends on the tie order.
    """
    scores = np.array([p[1] for p in pred], dtype=float)
    ranked = np.argsort(scores, kind=score_kind)[::-1]
    tries = []  # per ranked prediction: [(gt index, tIoU)] in the order they are tried
    for i in ranked:
        vid, _, s, e = pred[i]
        cand = [j for j, g in enumerate(gt) if g[0] == vid]
        ious = np.array([literal_tiou(s, e, gt[j][1], gt[j][2]) for j in cand], dtype=float)
        tries.append([(cand[c], ious[c]) for c in np.argsort(ious, kind=tiou_kind)[::-1]])
    aps = []
    for thr in thresholds:
        used = set()
        tp = []
        for candidates in tries:
            hit = False
            for j, iou in candidates:
                if iou < thr:
                    break  # the best remaining candidate is too far: false positive
                if j in used:
                    continue
                used.add(j)
                hit = True
                break
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


def test_thumos_ambiguous_rule_hand_worked():
    """The example above with an Ambiguous span [0, 6] in video C and [1, 2] in video A."""
    gt = gt_frame([("A", "x", 0, 10), ("A", "x", 20, 30), ("B", "x", 5, 15)])
    pred = pred_frame([
        ("A", "x", 0.9, 0, 10),    # TP; overlaps A's span but stays a TP
        ("A", "x", 0.8, 1, 10),    # FP overlapping A's span: not counted
        ("B", "x", 0.7, 5, 10),    # TP at 0.5, FP at 0.7 (no span in B)
        ("C", "x", 0.6, 0, 5),     # FP overlapping C's span: not counted
        ("A", "x", 0.5, 20, 28),   # TP
    ])
    res = evaluate_detections(gt, pred, [0.5, 0.7], ambiguous={"A": [(1.0, 2.0)], "C": [(0.0, 6.0)]})
    # thr 0.5: TP, TP, TP -> AP 1. thr 0.7: TP, FP, TP -> p 1 at r 1/3, 2/3 at r 2/3 (B's FP counts).
    assert res.per_class["x"][0] == pytest.approx(1.0, abs=1e-12)
    assert res.per_class["x"][1] == pytest.approx(1 / 3 + 1 / 3 * 2 / 3, abs=1e-12)
    # Without the rule, the ActivityNet numbers of the test above.
    plain = evaluate_detections(gt, pred, [0.5, 0.7])
    assert plain.per_class["x"][0] == pytest.approx(1 / 3 + 1 / 3 * 2 / 3 + 1 / 3 * 3 / 5, abs=1e-12)


def test_first_candidate_below_threshold_makes_fp_even_if_locked_one_is_higher():
    # GT g1 [0,10] and g2 [8,20]. First prediction takes g1. Second overlaps g1 best (locked) and g2 at 0.1.
    gt = gt_frame([("A", "x", 0, 10), ("A", "x", 8, 20)])
    pred = pred_frame([("A", "x", 0.9, 0, 10), ("A", "x", 0.8, 0, 9)])
    ap = average_precision_detection(gt, pred, [0.5])
    # second is FP: recall 1/2 at precision 1 -> AP 0.5
    assert ap[0] == pytest.approx(0.5)


def test_zero_length_prediction_on_zero_length_segment_matches_as_official():
    # tIoU is 0/0 = NaN; the official loop only refuses a candidate when "tIoU < threshold",
    # which NaN is not, so it takes the segment: a true positive at every threshold.
    gt = gt_frame([("A", "x", 5.0, 5.0), ("A", "x", 20.0, 30.0)])
    pred = pred_frame([("A", "x", 0.9, 5.0, 5.0), ("A", "x", 0.8, 20.0, 30.0)])
    np.testing.assert_array_equal(average_precision_detection(gt, pred, [0.1, 0.9]), [1.0, 1.0])


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


def thumos_test_predictions(gt: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Many predictions per video on the real test ground truth, with deliberate ties.

    - three jittered copies of every segment (some lose their segment to a tie below);
    - for each pair of segments of one class in one video with bit-identical
      lengths, two predictions spanning both: they contain both, so their tIoU
      with each is the same number and the official candidate order decides
      which one is taken first, and so whether a jittered copy still finds its own;
    - false positives on videos without the class;
    - every score rounded to 0.05, so thousands of predictions of a class share a score.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for (vid, label), g in gt.groupby(["video-id", "label"], sort=False):
        s, e = g["t-start"].to_numpy(), g["t-end"].to_numpy()
        length = e - s
        for a, b, n in zip(s, e, length):
            for _ in range(3):
                js, je = rng.normal(0, 0.25 * n, 2)
                rows.append((vid, label, rng.random(), max(0.0, a + js), max(a + js + 0.1, b + je)))
        for i in range(len(g)):
            for j in range(i + 1, len(g)):
                lo, hi = min(s[i], s[j]), max(e[i], e[j])
                if length[i] == length[j] and hi - lo <= 5 * length[i]:
                    rows += [(vid, label, rng.uniform(0.5, 1.0), lo, hi) for _ in range(2)]
    videos = gt["video-id"].unique()
    for label in gt["label"].unique():
        for vid in rng.choice(videos, 20):
            a = rng.uniform(0, 200)
            rows.append((vid, label, rng.random(), a, a + rng.uniform(1, 10)))
    order = rng.permutation(len(rows))  # files list detections by video, not by class or score
    pred = pred_frame([rows[i] for i in order])
    pred["score"] = np.floor(pred["score"] * 20) / 20
    return pred


def _by_class(gt: pd.DataFrame, pred: pd.DataFrame, label: str):
    """One class's rows as the literal reference takes them, in frame order (the order ties are broken in)."""
    g, p = gt[gt["label"] == label], pred[pred["label"] == label]
    return (list(zip(g["video-id"], g["t-start"], g["t-end"])),
            list(zip(p["video-id"], p["score"], p["t-start"], p["t-end"])))


@pytest.mark.skipif(not THUMOS.exists(), reason="shared THUMOS14 annotations not present")
def test_equals_literal_reference_on_real_thumos14_with_tied_tious_and_scores():
    gt = load_annotations(THUMOS / "gt.json").select("test").ground_truth_frame()
    pred = thumos_test_predictions(gt)
    res = evaluate_detections(gt, pred, THUMOS_TIOUS)
    refs = {}
    tie_order_matters = {"score": False, "tiou": False}
    for label in sorted(gt["label"].unique()):
        g, p = _by_class(gt, pred, label)
        refs[label] = reference_ap(g, p, THUMOS_TIOUS)
        np.testing.assert_allclose(res.per_class[label], refs[label], rtol=0, atol=1e-12, err_msg=label)
        for which in [w for w, seen in tie_order_matters.items() if not seen]:
            stable = reference_ap(g, p, THUMOS_TIOUS, **{f"{which}_kind": "stable"})
            tie_order_matters[which] = not np.allclose(stable, refs[label], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.map, np.mean(list(refs.values()), axis=0), rtol=0, atol=1e-12)
    # The input tests tie order only if a stable sort would have scored it differently.
    assert tie_order_matters == {"score": True, "tiou": True}


def test_evaluate_command_thumos_rule_and_protocol(tmp_path):
    import json

    from click.testing import CliRunner

    from tsrnet.detect.cli import evaluate

    db = {"A": {"subset": "test", "duration": 40, "annotations": [{"label": "x", "segment": [0, 10]},
                                                                  {"label": "x", "segment": [20, 30]}]},
          "B": {"subset": "test", "duration": 40, "annotations": [{"label": "x", "segment": [5, 15]}]}}
    gt = {"database": db, "ambiguous": {"A": [[1, 2]]},
          "protocol": {"name": "thumos14-210", "description": "preset", "excluded": ["C"], "excluded_present": []}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    res = {"A": [{"label": "x", "score": 0.9, "segment": [0, 10]}, {"label": "x", "score": 0.8, "segment": [1, 10]},
                 {"label": "x", "score": 0.5, "segment": [20, 28]}],
           "B": [{"label": "x", "score": 0.7, "segment": [5, 10]}],
           "C": [{"label": "x", "score": 0.6, "segment": [0, 5]}]}
    (tmp_path / "det.json").write_text(json.dumps({"results": res}))
    r = CliRunner().invoke(evaluate, [str(tmp_path / "gt.json"), str(tmp_path / "det.json"), "--tiou", "0.5",
                                      "--thumos-ambiguous", "--json", str(tmp_path / "ev.json")])
    assert r.exit_code == 0, r.output
    assert "dropped 1 detections of excluded videos" in r.output and "protocol thumos14-210" in r.output
    # C's detection dropped, A's second detection (an FP on A's span) not counted: TP, TP, TP.
    assert json.loads((tmp_path / "ev.json").read_text())["mAP"]["0.50"] == pytest.approx(1.0)
    gt.pop("ambiguous")
    (tmp_path / "gt2.json").write_text(json.dumps(gt))
    r = CliRunner().invoke(evaluate, [str(tmp_path / "gt2.json"), str(tmp_path / "det.json"), "--thumos-ambiguous"])
    assert r.exit_code == 2 and "needs Ambiguous spans" in r.output


def test_published_comparison_rows():
    from tsrnet.train.compare import comparison
    from tsrnet.train.methods import published_numbers

    rows = comparison("thumos14", {"tsrnet": {0.5: 20.0, 0.7: 6.0}, "stpn": {0.5: 10.0}})
    by = {(r["published as"], r["tIoU"]): r for r in rows}
    assert by[("tsrnet", 0.5)]["published"] == 18.6 and by[("tsrnet", 0.5)]["difference"] == pytest.approx(1.4)
    assert by[("tsrnet", 0.7)]["difference"] == pytest.approx(0.41, abs=0.05)
    # STPN's two feature settings both compare with the one stpn measurement; methods not measured are absent.
    assert by[("stpn", 0.5)]["published"] == 16.9 and by[("stpn (UntrimmedNet features)", 0.5)]["published"] == 16.2
    assert {r["method"] for r in rows} == {"tsrnet", "stpn"}
    assert published_numbers()["thumos14"]["untrimmednet-soft"]["mAP"][0.5] == 13.7
