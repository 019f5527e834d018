"""The benchmark family: each preset plants its actions at its real annotation source's times, and each
family property (statistics, pattern, distractors, gains) does what its rationale says."""
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tsrnet.data.cli import import_features, make_synthetic_features
from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.format.store import FeatureStore
from tsrnet.data.generators.synthetic_family import LAYOUTS, PRESETS, preset_spec
from tsrnet.data.generators.synthetic_layout import (LayoutSpec, correlated, coverage_and_progress,
                                                    generate_from_layout)
from tsrnet.data.format.annotations import Segment

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_the_family_covers_both_real_structures_and_every_property():
    specs = [preset_spec(n) for n in PRESETS]
    assert len(specs) >= 5
    assert {Path(s.layout).name for s in specs} == {LAYOUTS["thumos14"].name, LAYOUTS["activitynet13"].name}
    assert {s.statistics for s in specs} == {"gaussian", "relu"}
    assert {s.pattern for s in specs} == {"additive", "replaced", "drifting"}
    assert {s.distractor_kind for s in specs if s.distractors > 0} == {"other-class", "own-motion"}
    assert any(s.rgb_gain > s.flow_gain for s in specs) and any(s.flow_gain > s.rgb_gain for s in specs)
    assert {s.context == 0 for s in specs} == {True, False}
    assert {s.context_varies for s in specs if s.context > 0} == {True, False}
    assert min(s.dim for s in specs) == 256 and max(s.dim for s in specs) == 1024
    assert {s.noise_memory > 0 for s in specs} == {True, False}
    assert any(s.salient_fraction < 1 for s in specs)
    assert {Path(s.layout).name for s in specs if s.noise_memory > 0} == {LAYOUTS["thumos14"].name,
                                                                         LAYOUTS["activitynet13"].name}


def test_the_shipped_thumos_layout_is_the_fixtures_release_folder():
    for f in (FIXTURES / "thumos14" / "wtalc-annotations").glob("*.npy"):
        assert (LAYOUTS["thumos14"] / f.name).read_bytes() == f.read_bytes()


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_plants_its_actions_at_the_sources_times(name, tmp_path):
    spec = preset_spec(name, max_videos=2, dim=64, trimmed_per_class=1, seed=1)
    paths = generate_from_layout(tmp_path, spec)
    source = load_annotations(LAYOUTS[PRESETS[name][1]["layout"]])
    out = load_annotations(paths["annotations"])
    store = FeatureStore(paths["untrimmed"])
    assert len(out) == 2 * len(source.subsets())
    for vid in out.video_ids():
        a, r = out[vid], source[vid]
        assert a.subset == r.subset and a.duration == pytest.approx(r.duration)
        assert [(s.label, s.start, s.end) for s in a.segments] == [(s.label, s.start, s.end) for s in r.segments]
        info = store.info(vid)
        assert info.n_rows == int(np.ceil(r.duration * spec.rate)) and store.labels(vid) == a.labels
    # Without distractors (tested below), the same videos without their actions' patterns (gains and actionness
    # 0) differ in the rows the segments cover and nowhere else (for 'replaced' the scene leaves those rows too).
    small = dict(max_videos=2, dim=64, trimmed_per_class=1, seed=1, distractors=0.0)
    store = FeatureStore(generate_from_layout(tmp_path / "plain", preset_spec(name, **small))["untrimmed"])
    quiet = generate_from_layout(tmp_path / "quiet", preset_spec(name, **small, rgb_gain=0.0, flow_gain=0.0,
                                                                 actionness=0.0))
    for vid in out.video_ids():
        cov, _ = coverage_and_progress(store.info(vid).n_rows, spec.rate, out[vid].segments, out.classes())
        moved = np.abs(store.read(vid)["rgb"].astype(float)
                       - FeatureStore(quiet["untrimmed"]).read(vid)["rgb"].astype(float)).max(axis=1) > 0
        # (A row an action grazes may stay put under ReLU statistics: every dimension it moves can stay below 0.)
        covered = cov.max(axis=1)
        assert not moved[covered == 0].any() and moved[covered > 0.3].all()


def _plain(tmp_path, **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "gt.csv").write_text("video,label,start,end,subset,duration\n"
                                     "v1,Jump,10.0,30.0,train,60\n"
                                     "v2,Run,5.0,15.0,train,60\n"
                                     "v3,Jump,40.0,50.0,test,60\n")
    spec = LayoutSpec(layout=str(tmp_path / "gt.csv"), rows_per_second=1.0, dim=64, trimmed_per_class=1, **kw)
    paths = generate_from_layout(tmp_path / "out", spec)
    return FeatureStore(paths["untrimmed"]), spec


def test_relu_statistics_are_non_negative_sparse_and_heavy_tailed(tmp_path):
    store, _ = _plain(tmp_path, statistics="relu")
    x = np.concatenate([store.read(v)["rgb"].astype(float) for v in store.video_ids()]).ravel()
    assert x.min() >= 0 and 0.5 < (x == 0).mean() < 0.85
    nz = x[x > 0]
    kurtosis = ((nz - nz.mean()) ** 4).mean() / nz.var() ** 2
    assert kurtosis > 6  # a Gaussian's is 3
    gauss, _ = _plain(tmp_path / "g")
    g = gauss.read("v1")["rgb"].astype(float)
    assert (g < 0).mean() > 0.3


def test_a_drifting_action_moves_from_one_mode_to_the_next(tmp_path):
    store, spec = _plain(tmp_path, pattern="drifting", noise=0.0, context=0.0, background=0.0, actionness=0.0,
                         modes=4, train_modes=4)
    x = store.read("v1")["rgb"].astype(float)  # Jump from 10 s to 30 s, one row per second
    first, last = x[10], x[29]
    # At the start the row is (almost) one mode's prototype, at the end (almost) another's: they differ...
    assert np.corrcoef(first, last)[0, 1] < 0.95
    # ...and each row in between lies on the line between them, moving monotonically.
    w = [np.dot(x[k] - first, last - first) / np.dot(last - first, last - first) for k in range(10, 30)]
    assert np.all(np.diff(w) > 0) and w[0] == pytest.approx(0) and w[-1] == pytest.approx(1)


def test_distractors_lie_in_background_and_own_motion_only_in_flow(tmp_path):
    kw = dict(noise=0.0, context=0.0, background=0.0, distractors=30.0)
    store, _ = _plain(tmp_path / "own", distractor_kind="own-motion", **kw)
    x = store.read("v1")
    flow_on = np.abs(x["flow"].astype(float)).max(axis=1) > 1e-3
    rgb_on = np.abs(x["rgb"].astype(float)).max(axis=1) > 1e-3
    action = np.zeros(60, bool)
    action[10:30] = True
    assert (flow_on & ~action).any()  # distractors were placed
    np.testing.assert_array_equal(rgb_on, action)  # RGB shows the action only
    other, _ = _plain(tmp_path / "other", distractor_kind="other-class", **kw)
    y = other.read("v1")["rgb"].astype(float)
    on = np.abs(y).max(axis=1) > 1e-3
    assert (on & ~action).any()
    # An other-class distractor looks like another class, not like the video's own action.
    d = y[np.nonzero(on & ~action)[0][0]]
    assert abs(np.corrcoef(d, y[20])[0, 1]) < 0.5


def test_stream_gains_scale_the_class_pattern(tmp_path):
    kw = dict(noise=0.0, context=0.0, background=0.0, actionness=0.0)
    weak, _ = _plain(tmp_path / "a", rgb_gain=0.5, flow_gain=2.0, **kw)
    even, _ = _plain(tmp_path / "b", **kw)
    for s, gain in (("rgb", 0.5), ("flow", 2.0)):
        np.testing.assert_allclose(weak.read("v1")[s].astype(float), gain * even.read("v1")[s].astype(float),
                                   rtol=2e-3, atol=2e-3)


def test_every_preset_writes_a_wtalc_release_that_imports_back(tmp_path):
    # ActivityNet's layout is not a W-TALC folder: its annotation arrays are written from the annotations.
    r = CliRunner().invoke(make_synthetic_features, [str(tmp_path / "a"), "--preset", "anet-drift", "--max-videos",
                                                     "3", "--dim", "8", "--trimmed-per-class", "1", "--release",
                                                     "wtalc"])
    assert r.exit_code == 0, r.output
    release = tmp_path / "a" / "release"
    # Two rows per second are 16 frames at 32 fps: the import command the generator prints.
    assert "--fps 32 --frames-per-row 16" in r.output
    r = CliRunner().invoke(import_features, [str(tmp_path / "imported.h5"), "--features", str(release),
                                             "--fps", "32", "--frames-per-row", "16"])
    assert r.exit_code == 0, r.output
    planted = load_annotations(tmp_path / "a" / "annotations.json")
    back = load_annotations(release / "Thumos14reduced-Annotations")
    assert back.video_ids() == planted.video_ids()
    for v in planted.video_ids():
        assert back[v].subset == planted[v].subset and back[v].duration == pytest.approx(planted[v].duration)
        assert [(s.label, s.start, s.end) for s in back[v].segments] == \
               [(s.label, s.start, s.end) for s in planted[v].segments]
    # As public code reads the release (numpy's default encoding): segment labels are str and name listed classes.
    folder = release / "Thumos14reduced-Annotations"
    classes = [c.decode() for c in np.load(folder / "classlist.npy")]
    for name in ("labels", "labels_all"):
        for labels in np.load(folder / f"{name}.npy", allow_pickle=True):
            assert labels and all(isinstance(x, str) and x in classes for x in labels)
    src, imp = FeatureStore(tmp_path / "a" / "untrimmed.h5"), FeatureStore(tmp_path / "imported.h5")
    v = planted.video_ids()[0]
    np.testing.assert_allclose(imp.read(v)["flow"].astype(float), src.read(v)["flow"].astype(float), atol=1e-2)


def test_a_thumos_release_keeps_the_real_folders_arrays_with_str_labels(tmp_path):
    r = CliRunner().invoke(make_synthetic_features, [str(tmp_path / "t"), "--preset", "th14-weak", "--max-videos",
                                                     "2", "--dim", "8", "--trimmed-per-class", "1", "--release",
                                                     "wtalc"])
    assert r.exit_code == 0, r.output
    folder = tmp_path / "t" / "release" / "Thumos14reduced-Annotations"
    real = LAYOUTS["thumos14"]
    names = [v.decode() for v in np.load(folder / "videoname.npy")]
    all_names = [v.decode() for v in np.load(real / "videoname.npy")]
    idx = [all_names.index(v) for v in names]
    segs = np.load(real / "segments.npy", allow_pickle=True, encoding="latin1")
    labels = np.load(real / "labels.npy", allow_pickle=True, encoding="latin1")
    out_labels = np.load(folder / "labels.npy", allow_pickle=True)
    for k, i in enumerate(idx):
        assert list(out_labels[k]) == list(labels[i]) and all(isinstance(x, str) for x in out_labels[k])
        assert [list(s) for s in np.load(folder / "segments.npy", allow_pickle=True)[k]] == [list(s) for s in segs[i]]
    assert (folder / "Ambiguous_test.txt").read_bytes() == (real / "Ambiguous_test.txt").read_bytes()


def test_an_unknown_preset_or_setting_is_refused(tmp_path):
    r = CliRunner().invoke(make_synthetic_features, [str(tmp_path / "x"), "--preset", "nope"])
    assert r.exit_code == 2 and "nope" in r.output and not (tmp_path / "x").exists()
    r = CliRunner().invoke(make_synthetic_features, [str(tmp_path / "y"), "--preset", "th14-weak",
                                                     "--min-duration", "3"])
    assert r.exit_code == 2 and "--min-duration" in r.output and not (tmp_path / "y").exists()
    r = CliRunner().invoke(make_synthetic_features, [str(tmp_path / "z"), "--preset", "th14-weak",
                                                     "--pattern", "sideways"])
    assert r.exit_code == 2 and "sideways" in r.output


def test_progress_is_zero_at_a_segments_start_and_one_at_its_end():
    cov, prog = coverage_and_progress(10, 1.0, [Segment("A", 2.0, 7.0)], ["A"])
    np.testing.assert_allclose(cov[:, 0], [0, 0, 1, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_allclose(prog[2:7, 0], [0.1, 0.3, 0.5, 0.7, 0.9])


def test_noise_memory_is_an_ar1_process_that_keeps_the_noise_level(tmp_path):
    # The recursion by hand: z_0 = e_0, z_k = rho z_(k-1) + sqrt(1 - rho^2) e_k.
    e = np.random.default_rng(3).standard_normal((50, 4))
    z = np.empty_like(e)
    z[0] = e[0]
    for k in range(1, 50):
        z[k] = 0.7 * z[k - 1] + np.sqrt(1 - 0.49) * e[k]
    np.testing.assert_allclose(correlated(e, 0.7), z, rtol=1e-12, atol=1e-12)
    assert correlated(e, 0.0) is e
    # In a store: nothing but noise, 60 rows of 64 dimensions per video.
    kw = dict(noise=1.5, context=0.0, background=0.0, strength=0.0, actionness=0.0)
    for rho in (0.0, 0.9):
        store, _ = _plain(tmp_path / str(rho), noise_memory=rho, **kw)
        x = store.read("v1")["flow"].astype(float)
        lag1 = np.mean([np.corrcoef(x[:-1, d], x[1:, d])[0, 1] for d in range(x.shape[1])])
        assert lag1 == pytest.approx(rho, abs=0.1)
        assert x.std() == pytest.approx(1.5, rel=0.15)
    r = CliRunner().invoke(make_synthetic_features, [str(tmp_path / "bad"), "--preset", "th14-weak",
                                                     "--noise-memory", "1.0"])
    assert r.exit_code == 2 and "--noise-memory" in r.output and not (tmp_path / "bad").exists()


def test_a_salient_phase_carries_the_class_and_the_rest_only_a_faint_pattern(tmp_path):
    kw = dict(noise=0.0, context=0.0, background=0.0, actionness=0.0, modes=1, train_modes=1)
    store, _ = _plain(tmp_path / "s", salient_fraction=0.3, salient_floor=0.2, **kw)
    even, _ = _plain(tmp_path / "e", **kw)
    x, y = store.read("v1")["rgb"].astype(float), even.read("v1")["rgb"].astype(float)  # Jump: rows 10-29
    # Each action row is the whole-instance pattern times 1 (the salient phase) or 0.2 (the rest).
    factor = np.array([np.dot(x[k], y[k]) / np.dot(y[k], y[k]) for k in range(10, 30)])
    full = np.isclose(factor, 1.0, atol=1e-2)
    assert np.all(full | np.isclose(factor, 0.2, atol=1e-2))
    # The salient phase is one run of 30% of the instance's 20 rows.
    on = np.nonzero(full)[0]
    assert len(on) == 6 and np.all(np.diff(on) == 1)
    np.testing.assert_allclose(x[:10], 0, atol=1e-3)
    # The same class has its phase at the same place in every instance (v3: Jump from 40 s to 50 s, 10 rows).
    z, w = store.read("v3")["rgb"].astype(float), even.read("v3")["rgb"].astype(float)
    f3 = np.array([np.dot(z[k], w[k]) / np.dot(w[k], w[k]) for k in range(40, 50)])
    on3 = np.nonzero(np.isclose(f3, 1.0, atol=1e-2))[0]
    assert len(on3) == 3 and abs(on3.mean() / 10 - on.mean() / 20) < 0.1
