"""The real-layout generator: actions exactly at the annotated times, the real files' structure kept."""
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.cli import make_synthetic_features
from tsrnet.data.format.store import FeatureStore
from tsrnet.data.generators.synthetic_layout import LayoutSpec, generate_from_layout

WTALC = Path(__file__).resolve().parent / "fixtures" / "thumos14" / "wtalc-annotations"


def test_actions_start_and_end_exactly_at_the_given_times(tmp_path):
    (tmp_path / "gt.csv").write_text("video,label,start,end,subset,duration\n"
                                     "v1,Jump,1.25,3.0,train,10\n"
                                     "v1,Jump,6.0,6.1,train,10\n"
                                     "v2,Run,0.0,0.5,test,4\n")
    # Nothing but the planted pattern: rows are coverage x one fixed pattern per video and class.
    spec = LayoutSpec(layout=str(tmp_path / "gt.csv"), rows_per_second=2.0, dim=16, noise=0.0, context=0.0,
                      background=0.0, trimmed_per_class=1)
    generate_from_layout(tmp_path / "out", spec)
    store = FeatureStore(tmp_path / "out" / "untrimmed.h5")
    rows = store.read("v1")
    np.testing.assert_allclose(rows["times"], (np.arange(20) + 0.5) / 2)
    # Row k covers [k/2, (k+1)/2): row 2 is half inside [1.25, 3.0], rows 3-5 wholly, row 12 for a fifth.
    expected = np.zeros(20)
    expected[2], expected[3:6], expected[12] = 0.5, 1.0, 0.2
    for s in ("rgb", "flow"):
        x = rows[s].astype(float)
        np.testing.assert_allclose(x / np.linalg.norm(x[3]), np.outer(expected, x[3] / np.linalg.norm(x[3])),
                                   atol=2e-3)
    info = store.info("v1")
    assert info.duration == 10 and info.subset == "train" and store.labels("v1") == ["Jump"]
    assert store.info("v2").n_rows == 8


def test_real_thumos_layout(tmp_path):
    spec = LayoutSpec(layout=str(WTALC), max_videos=3, dim=8, trimmed_per_class=1, seed=3)
    paths = generate_from_layout(tmp_path, spec)
    real = load_annotations(WTALC)
    out = load_annotations(paths["annotations"])
    assert out.subsets() == ["test", "validation"] and len(out) == 6
    store = FeatureStore(paths["untrimmed"])
    for vid in out.video_ids():
        a, r = out[vid], real[vid]
        assert a.duration == pytest.approx(r.duration) and a.subset == r.subset
        assert [(s.label, s.start, s.end) for s in a.segments] == [(s.label, s.start, s.end) for s in r.segments]
        t = store.read(vid)["times"]
        # One row per 16 frames at 25 fps, each timed at its centre: (16k + 8) / 25.
        np.testing.assert_allclose(t, (16 * np.arange(len(t)) + 8) / 25, rtol=1e-6)
        assert len(t) == int(np.ceil(r.duration * 25 / 16))
    clips = FeatureStore(paths["trimmed"])
    assert {clips.labels(v)[0] for v in clips.video_ids()} == set(out.classes())


def test_activitynet_like_layout(tmp_path):
    paths = generate_from_layout(tmp_path, LayoutSpec(n_train=30, n_test=10, n_classes=5, dim=8,
                                                      trimmed_per_class=1))
    ann = load_annotations(paths["annotations"])
    assert ann.subsets() == ["training", "validation"] and len(ann.video_ids("training")) == 30
    for vid in ann.video_ids():
        a = ann[vid]
        assert 1 <= len(a.segments) <= 3 and len(a.labels) == 1
        cover = sum(s.end - s.start for s in a.segments) / a.duration
        assert 0.25 < cover < 0.95
        assert all(0 <= s.start < s.end <= a.duration for s in a.segments)


def test_cli_refuses_options_of_the_other_mode(tmp_path):
    r = CliRunner().invoke(make_synthetic_features, [str(tmp_path / "x"), "--layout", "activitynet-like",
                                                     "--min-duration", "3"])
    assert r.exit_code == 2 and "--min-duration do not apply with --layout" in r.output
    assert not (tmp_path / "x").exists()
    r = CliRunner().invoke(make_synthetic_features, [str(tmp_path / "y"), "--max-videos", "3"])
    assert r.exit_code == 2 and "do not apply without --layout" in r.output
    r = CliRunner().invoke(make_synthetic_features, [str(tmp_path / "z"), "--layout", "activitynet-like",
                                                     "--n-train", "4", "--n-test", "2", "--dim", "8",
                                                     "--trimmed-per-class", "1"])
    assert r.exit_code == 0, r.output
    assert len(json.loads((tmp_path / "z" / "annotations.json").read_text())["database"]) == 6
