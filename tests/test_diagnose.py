"""DETAD-style diagnosis: error types, mAP gains, sensitivity bins and the command line, on hand-worked cases."""
import json
from pathlib import Path
from fractions import Fraction as F

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tsrnet.data.format.annotations import Annotations, Segment, VideoAnnotation
from tsrnet.detect.diagnosis.rules import BINS, bin_index, diagnose_detections, instance_table
from tsrnet.detect.diagnose_cli import diagnose
from tsrnet.detect.evaluate import evaluate_detections


def pred_frame(rows):
    return pd.DataFrame(rows, columns=["video-id", "label", "score", "t-start", "t-end"])


def annotations(videos):
    """``{video: (duration, [(label, start, end), ...])}`` -> Annotations (subset "test")."""
    return Annotations({v: VideoAnnotation(v, "test", dur, [Segment(*s) for s in segs])
                        for v, (dur, segs) in videos.items()})


# Class A has three instances, B one; v3 has none. Each A prediction is placed to be one outcome (comment), in
# score order; B's last prediction overlaps A [10, 20] and B [40, 50] equally (tIoU 5/35 each).
CASE_GT = {"v1": (100.0, [("A", 10, 20), ("B", 40, 50), ("A", 70, 72)]),
           "v2": (50.0, [("A", 0, 10)]),
           "v3": (30.0, [])}
CASE_PRED = [
    ("v1", "A", 0.95, 40, 50),  # wrong label: tIoU 1 with B
    ("v1", "A", 0.90, 10, 20),  # true positive
    ("v1", "A", 0.85, 11, 20),  # double detection: tIoU 0.9 with the instance just taken
    ("v3", "A", 0.80, 0, 10),  # background: a video without instances
    ("v1", "A", 0.75, 70, 72),  # true positive
    ("v2", "A", 0.70, 0, 4),  # localisation: tIoU 0.4 with its own class
    ("v1", "A", 0.65, 85, 95),  # background: tIoU 0 with every instance
    ("v2", "A", 0.60, 0, 9),  # true positive
    ("v1", "A", 0.55, 40, 43),  # confusion: tIoU 0.3 with B
    ("v1", "B", 0.90, 40, 50),  # true positive
    ("v1", "B", 0.50, 10, 20),  # wrong label: tIoU 1 with A
    ("v1", "B", 0.40, 15, 45),  # localisation: the tie goes to its own class
]
CASE_TYPES = ["wrong_label", "true_positive", "double", "background", "true_positive", "localization", "background",
              "true_positive", "confusion", "true_positive", "wrong_label", "localization"]


def test_each_error_type_of_a_hand_built_case():
    d = diagnose_detections(annotations(CASE_GT), pred_frame(CASE_PRED), tiou=0.5, top_k=10)
    s = d.summary
    assert s["false_positives"] == {"double": 1, "wrong_label": 2, "localization": 2, "confusion": 1,
                                    "background": 2}
    assert s["true_positives"] == 4 and s["predictions"] == 12 and s["instances"] == 4
    got = {(r["video-id"], r["label"], r["score"]): r["type"] for _, r in d.predictions.iterrows()}
    assert [got[(v, c, sc)] for v, c, sc, _, _ in CASE_PRED] == CASE_TYPES


def test_map_gain_is_the_map_without_that_type():
    """A's true positives sit at ranks 2, 5 and 8 (AP 17/40), B's first (AP 1): mAP 57/80. Removing one type
    moves A's true positives up; each gain below is worked by hand from the new ranks."""
    s = diagnose_detections(annotations(CASE_GT), pred_frame(CASE_PRED), tiou=0.5).summary
    assert s["mAP"] == pytest.approx(float(F(57, 80)), abs=1e-12)
    expected = {
        "wrong_label": F(23, 28) - F(57, 80),  # A: ranks 1, 4, 7 -> (1 + 1/2 + 3/7) / 3 = 9/14
        "double": F(31, 42) - F(57, 80),  # ranks 2, 4, 7 -> (1/2 + 1/2 + 3/7) / 3 = 10/21
        "background": F(3, 4) - F(57, 80),  # ranks 2, 4, 6 -> 1/2
        "localization": F(61, 84) - F(57, 80),  # ranks 2, 5, 7 -> (1/2 + 3/7 + 3/7) / 3 = 19/42
        "confusion": F(0),  # after A's last true positive: no change
    }
    for t, g in expected.items():
        assert s["map_gain"][t] == pytest.approx(float(g), abs=1e-12), t
    # The same as the evaluator's mAP of the file with that type's lines deleted.
    gt = annotations(CASE_GT).ground_truth_frame()
    for t in expected:
        rest = pred_frame([p for p, k in zip(CASE_PRED, CASE_TYPES) if k != t])
        assert s["map_gain"][t] == pytest.approx(evaluate_detections(gt, rest, [0.5]).map[0] - 57 / 80, abs=1e-12)


def test_top_k_counts_only_each_class_first_k_times_g_predictions():
    ann = annotations({"v": (60.0, [("A", 10, 20)])})
    pred = pred_frame([("v", "A", 0.9, 30, 40), ("v", "A", 0.8, 45, 50), ("v", "A", 0.7, 10, 20)])
    s2 = diagnose_detections(ann, pred, top_k=2).summary
    assert s2["predictions"] == 2 and s2["true_positives"] == 0 and s2["false_positives"]["background"] == 2
    assert s2["mAP"] == 0.0
    s3 = diagnose_detections(ann, pred, top_k=3).summary
    assert s3["true_positives"] == 1 and s3["mAP"] == pytest.approx(1 / 3)
    assert [p["top"] for p in s3["profile"]] == ["1G", "2G", "3G"]
    assert [p["background"] for p in s3["profile"]] == [1, 1, 0] and s3["profile"][2]["true_positive"] == 1


def test_tiou_threshold_moves_errors_between_double_and_localisation():
    """The same near-copy of a taken instance (tIoU 0.9 / 0.7 / 0.3 below) changes type with alpha."""
    ann = annotations({"v": (60.0, [("A", 10, 20)])})
    pred = pred_frame([("v", "A", 0.9, 10, 20), ("v", "A", 0.8, 11, 20), ("v", "A", 0.7, 13, 20),
                       ("v", "A", 0.6, 17, 20)])
    fp5 = diagnose_detections(ann, pred, tiou=0.5).summary["false_positives"]
    fp8 = diagnose_detections(ann, pred, tiou=0.8).summary["false_positives"]
    assert (fp5["double"], fp5["localization"]) == (2, 1)
    assert (fp8["double"], fp8["localization"]) == (1, 2)


def test_bin_edges_are_right_closed_with_the_first_lower_edge_included():
    edges = BINS["thumos14"]["length"][0]  # 0, 3, 6, 12, 18, inf
    assert list(bin_index([0, 0.5, 3, 3.0001, 6, 12, 12.5, 18, 18.5, 1e6, -1, np.nan], edges)) == \
        [0, 0, 0, 1, 1, 2, 3, 3, 4, 4, -1, -1]
    cov = BINS["thumos14"]["coverage"][0]  # 0, .02, .04, .06, .08, 1
    assert list(bin_index([0.02, 0.021, 0.08, 0.5, 1.0, 1.01], cov)) == [0, 1, 3, 4, 4, -1]
    inst = BINS["thumos14"]["instances"][0]  # -1, 1, 40, 80, inf
    assert list(bin_index([1, 2, 40, 41, 80, 81], inst)) == [0, 1, 1, 2, 2, 3]
    anet = BINS["activitynet"]["length"][0]
    assert list(bin_index([30, 31, 180, 181], anet)) == [0, 1, 3, 4]


def test_instance_characteristics():
    ann = annotations({"a": (100.0, [("A", 0, 2), ("A", 10, 30), ("B", 50, 53)]),
                       "b": (None, [("A", 0, 5)])})
    t = instance_table(ann, BINS["thumos14"])
    assert list(t["length"]) == [2, 20, 3, 5]
    assert list(t["length-bin"]) == ["XS", "XL", "XS", "S"]
    assert list(t["coverage"][:3]) == pytest.approx([0.02, 0.2, 0.03]) and np.isnan(t["coverage"][3])
    assert list(t["coverage-bin"]) == ["XS", "XL", "S", None]  # no duration: no coverage bin
    assert list(t["instances"]) == [3, 3, 3, 1]  # DETAD's: every instance in the video, of any class
    assert list(t["instances-bin"]) == ["S", "S", "S", "XS"]
    own = instance_table(ann, BINS["thumos14"], instances="class")
    assert list(own["instances"]) == [2, 2, 1, 1]  # instances of the same class in the same video
    assert list(own["instances-bin"]) == ["S", "S", "XS", "XS"]


def test_sensitivity_of_a_hand_worked_case():
    """A has a 2 s instance (XS), a 20 s one (XL) and a 5 s one (S) that nothing finds; 3 instances in 1 class,
    so AP_N's reference count is 3. Predictions: the long one (0.9), a background one (0.8), the short one (0.7).
    XS bin: the long instance's match is dropped, leaving [FP, TP]: AP 1/2, AP_N = 3 / (3 + 1) = 3/4.
    XL bin: [TP, FP]: AP 1, AP_N 1. S bin: all false positives: AP 0, missed."""
    ann = annotations({"a": (100.0, [("A", 10, 12), ("A", 40, 60)]), "b": (100.0, [("A", 0, 5)])})
    pred = pred_frame([("a", "A", 0.9, 40, 60), ("a", "A", 0.8, 80, 90), ("a", "A", 0.7, 10, 12)])
    bins = diagnose_detections(ann, pred).summary["sensitivity"]["length"]["bins"]
    assert (bins["XS"]["instances"], bins["S"]["instances"], bins["XL"]["instances"]) == (1, 1, 1)
    assert bins["XS"]["ap"] == pytest.approx(0.5) and bins["XS"]["ap_n"] == pytest.approx(0.75)
    assert bins["XL"]["ap"] == pytest.approx(1.0) and bins["XL"]["ap_n"] == pytest.approx(1.0)
    assert bins["S"]["ap"] == 0.0 and bins["S"]["false_negative_rate"] == 1.0
    assert bins["XS"]["false_negative_rate"] == 0.0 and bins["XL"]["false_negative_rate"] == 0.0
    assert bins["M"]["instances"] == 0 and bins["M"]["ap"] is None


def test_a_match_far_down_a_hopeless_ranking_is_a_false_negative():
    """One instance per class, 2 classes: AP_N's reference count is 1. B's instance is taken after k false
    positives, at normalised precision 1 / (1 + k): k = 18 gives 1/19, above DETAD's 5% floor (found);
    k = 19 gives exactly 5%, not above it (missed)."""
    def fn_rate(k):
        ann = annotations({"v": (1000.0, [("A", 0, 10), ("B", 500, 510)])})
        rows = [("v", "A", 1.0, 0, 10)] + [("v", "B", 0.9 - i * 1e-3, 100 + 10 * i, 105 + 10 * i) for i in range(k)]
        rows.append(("v", "B", 0.1, 500, 510))
        s = diagnose_detections(ann, pred_frame(rows)).summary
        return s["sensitivity"]["instances"]["bins"]["S"]["false_negative_rate"]  # 2 instances in v
    assert fn_rate(18) == 0.0
    assert fn_rate(19) == 0.5  # B's instance is missed, A's found


def _write_case(tmp_path, pred_rows=CASE_PRED, gt=CASE_GT):
    db = {v: {"subset": "test", "duration": d, "annotations": [{"label": c, "segment": [a, b]} for c, a, b in segs]}
          for v, (d, segs) in gt.items()}
    db["t1"] = {"subset": "train", "duration": 30.0, "annotations": [{"label": "A", "segment": [0, 10]}]}
    (tmp_path / "gt.json").write_text(json.dumps({"database": db}))
    res = {}
    for v, c, s, a, b in pred_rows:
        res.setdefault(v, []).append({"label": c, "score": s, "segment": [a, b]})
    (tmp_path / "det.json").write_text(json.dumps({"results": res}))
    return tmp_path / "gt.json", tmp_path / "det.json"


def test_command_writes_the_json_and_prints_the_table(tmp_path):
    gt, det = _write_case(tmp_path)
    r = CliRunner().invoke(diagnose, [str(gt), str(det), "--subset", "test", "--json", str(tmp_path / "d.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "d.json").read_text())
    assert {"tiou", "top_k", "false_positives", "true_positives", "map_gain", "sensitivity"} <= set(doc)
    assert doc["tiou"] == 0.5 and doc["top_k"] == 10
    assert set(doc["sensitivity"]) == {"length", "coverage", "instances"}
    assert doc["false_positives"]["background"] == 2
    assert "wrong label" in r.output and "+10.9" in r.output  # 61/560 of mAP, in points


@pytest.mark.parametrize("what, expect", [
    ("not-json", "not valid JSON"),
    ("no-results", "'results' mapping"),
    ("reversed", "video v1: detection [20.0, 10.0] of 'A' ends before it starts"),
    ("subset", "subset 'nope' has no videos"),
    ("no-segments", "ground truth has no segments"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, what, expect):
    gt, det = _write_case(tmp_path)
    args = ["--subset", "test"]
    if what == "not-json":
        det.write_text("{results")
    elif what == "no-results":
        det.write_text(json.dumps({"version": 1}))
    elif what == "reversed":
        _write_case(tmp_path, CASE_PRED + [("v1", "A", 0.3, 20, 10)])
    elif what == "subset":
        args = ["--subset", "nope"]
    elif what == "no-segments":
        _write_case(tmp_path, gt={"v3": (30.0, [])})
    out = tmp_path / "out"
    r = CliRunner().invoke(diagnose, [str(gt), str(det), *args, "--json", str(out / "d.json"),
                                      "--report", str(out / "rep")])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0]
    named = str(gt) if what in ("subset", "no-segments") else str(det)
    assert named in lines[0]
    assert not out.exists()


def test_help_names_every_option():
    r = CliRunner().invoke(diagnose, ["--help"])
    assert r.exit_code == 0
    for opt in ("--subset", "--tiou", "--top-k", "--bins", "--json", "--report"):
        assert opt in r.output


def test_every_key_of_the_json_is_documented():
    from pathlib import Path
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "diagnosis.md").read_text()
    code = " ".join(re.findall(r"```.*?```", doc, flags=re.S) + re.findall(r"`([^`\n]+)`", doc))
    s = diagnose_detections(annotations(CASE_GT), pred_frame(CASE_PRED)).summary
    bins = s["sensitivity"]["length"]
    keys = {*s, *s["false_positives"], *s["profile"][0], *s["per_class"]["A"], *s["sensitivity"], *bins,
            *bins["bins"]["XS"]}
    missing = sorted(k for k in keys if not re.search(rf'(?<![\w-])"?{re.escape(k)}"?(?![\w-])', code))
    assert missing == []


def test_real_thumos14_test_set_perfect_and_duplicated_detections():
    """On the real THUMOS14 test ground truth (W-TALC's folder, which has durations): each instance detected
    exactly once is a true positive, a lower-scored second copy a double detection, even where CliffDiving and
    Diving annotate the same span (the tie goes to the copy's own class); nothing is missed in any bin."""
    from pathlib import Path

    from tsrnet.data.format.ground_truth import load_annotations

    ann = load_annotations(Path(__file__).resolve().parent / "fixtures" / "thumos14" / "wtalc-annotations")
    ann = ann.select("test")
    gt = ann.ground_truth_frame()
    pred = pd.concat([gt.assign(score=1.0), gt.assign(score=0.5)], ignore_index=True)
    s = diagnose_detections(ann, pred).summary
    n = len(gt)
    assert s["true_positives"] == n and s["predictions"] == 2 * n
    assert s["false_positives"] == {"double": n, "wrong_label": 0, "localization": 0, "confusion": 0,
                                    "background": 0}
    assert s["mAP"] == 1.0 and set(s["map_gain"].values()) == {0.0}
    for name, c in s["sensitivity"].items():
        assert sum(b["instances"] for b in c["bins"].values()) + c["unbinned"] == n, name
        for b in c["bins"].values():
            if b["instances"]:
                assert (b["ap"], b["false_negative_rate"]) == (1.0, 0.0), name
    assert s["sensitivity"]["coverage"]["unbinned"] == 0


def test_no_detections_misses_everything(tmp_path):
    gt, det = _write_case(tmp_path, pred_rows=[])
    r = CliRunner().invoke(diagnose, [str(gt), str(det), "--subset", "test", "--json", str(tmp_path / "d.json"),
                                      "--report", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "d.json").read_text())
    assert s["predictions"] == 0 and s["mAP"] == 0.0 and set(s["false_positives"].values()) == {0}
    rates = [b["false_negative_rate"] for c in s["sensitivity"].values() for b in c["bins"].values() if b["instances"]]
    assert rates and set(rates) == {1.0}
    assert (tmp_path / "rep" / "index.html").exists()


GT_JSON = Path(__file__).resolve().parent / "fixtures" / "thumos14" / "gt.json"  # public code's: no durations
WTALC = Path(__file__).resolve().parent / "fixtures" / "thumos14" / "wtalc-annotations"  # has durations


def test_public_gt_json_gets_its_coverage_bins_from_given_durations(tmp_path):
    """gt.json records no durations: without --durations the coverage bins are empty and one line says why; with
    the W-TALC folder's durations every test instance of a video that has one is binned, exactly as diagnosing
    the W-TALC folder itself bins it."""
    from tsrnet.data.format.ground_truth import load_annotations

    ann = load_annotations(GT_JSON).select("test")
    gt = ann.ground_truth_frame()
    det = tmp_path / "det.json"
    det.write_text(json.dumps({"results": {v: [{"label": r["label"], "score": 1.0,
                                                "segment": [r["t-start"], r["t-end"]]} for _, r in g.iterrows()]
                                           for v, g in gt.groupby("video-id")}}))
    r = CliRunner().invoke(diagnose, [str(GT_JSON), str(det), "--subset", "test", "--json", str(tmp_path / "a.json")])
    assert r.exit_code == 0, r.output
    assert "have no duration in the ground truth" in r.output and "--durations" in r.output
    plain = json.loads((tmp_path / "a.json").read_text())["sensitivity"]["coverage"]
    assert plain["unbinned"] == len(gt) and all(b["instances"] == 0 for b in plain["bins"].values())
    r = CliRunner().invoke(diagnose, [str(GT_JSON), str(det), "--subset", "test", "--durations", str(WTALC),
                                      "--json", str(tmp_path / "b.json")])
    assert r.exit_code == 0, r.output
    assert "no duration" not in r.output
    given = json.loads((tmp_path / "b.json").read_text())["sensitivity"]["coverage"]
    reference = diagnose_detections(load_annotations(WTALC).select("test").only(ann.video_ids()), gt.assign(score=1.0))
    expected = reference.summary["sensitivity"]["coverage"]
    assert given["unbinned"] == expected["unbinned"] == 0
    assert {k: b["instances"] for k, b in given["bins"].items()} == \
        {k: b["instances"] for k, b in expected["bins"].items()}
    assert sum(b["instances"] for b in given["bins"].values()) == len(gt)


def test_durations_from_a_store_fill_only_what_is_missing(tiny):
    from tsrnet.data.format.store import FeatureStore
    from tsrnet.detect.diagnosis.diagnose import durations_from, with_durations

    store = FeatureStore(tiny["untrimmed"])
    d = durations_from(tiny["untrimmed"])
    assert d == {v: store.info(v).duration for v in store.video_ids()}
    v, w = store.video_ids()[:2]
    ann = annotations({v: (None, [("A", 0, 1)]), w: (7.0, [("A", 0, 1)])})
    filled = with_durations(ann, d)
    assert filled[v].duration == d[v] and filled[w].duration == 7.0  # the ground truth's own wins

