"""Input paths not covered elsewhere: the .npy importer, NaN rows, multi-hop attention,
the ActivityNet overlap-pretraining recipe, and detect on a store of another dimension."""
import json
import shutil

import h5py
import numpy as np
from click.testing import CliRunner

from tsrnet.data.cli import import_features
from tsrnet.data.format.store import FeatureStore
from tsrnet.detect.cli import detect
from tsrnet.train.cli import train_tsr
from tsrnet.train.config import Config
from tsrnet.train.data import prepare_data
from tsrnet.train.trainer import Trainer

FAST = ["--steps", "8", "--pretrain-steps", "2", "--quiet", "--hidden-dim", "16", "--attention-dim", "8"]


def invoke(cmd, args):
    return CliRunner().invoke(cmd, [str(a) for a in args])


def test_import_npy_both_layouts_agree(tmp_path, rng):
    rgb = {"v1": rng.standard_normal((5, 6)), "v2": rng.standard_normal((3, 6))}
    flow = {"v1": rng.standard_normal((5, 6)), "v2": rng.standard_normal((4, 6))}  # one row longer
    for d in ("rgb", "flow", "cat"):
        (tmp_path / d).mkdir()
    for v in rgb:
        np.save(tmp_path / "rgb" / f"{v}.npy", rgb[v])
        np.save(tmp_path / "flow" / f"{v}.npy", flow[v])
        n = min(len(rgb[v]), len(flow[v]))
        np.save(tmp_path / "cat" / f"{v}.npy", np.concatenate([rgb[v][:n], flow[v][:n]], axis=1))
    ann = {"database": {"v1": {"subset": "validation", "duration": 3.5,
                               "annotations": [{"label": "Diving", "segment": [0.5, 1.5]}]},
                        "v2": {"subset": "test", "duration": 2.0, "annotations": []}}}
    (tmp_path / "gt.json").write_text(json.dumps(ann))
    r1 = invoke(import_features, [tmp_path / "a.h5", "--rgb-dir", tmp_path / "rgb", "--flow-dir", tmp_path / "flow",
                                  "--fps", 25, "--frames-per-row", 16, "--annotations", tmp_path / "gt.json"])
    r2 = invoke(import_features, [tmp_path / "b.h5", "--concat-dir", tmp_path / "cat", "--fps", 25,
                                  "--frames-per-row", 16])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    a, b = FeatureStore(tmp_path / "a.h5"), FeatureStore(tmp_path / "b.h5")
    assert a.feature_dim == b.feature_dim == 6
    for v in rgb:
        xa, xb = a.read(v), b.read(v)
        n = min(len(rgb[v]), len(flow[v]))  # the common prefix of rows is kept
        np.testing.assert_allclose(xa["rgb"], rgb[v][:n].astype(np.float16).astype(np.float32))
        np.testing.assert_allclose(xa["flow"], xb["flow"])
        # row i stands for the middle of frames [16 i, 16 (i + 1)) at 25 fps
        np.testing.assert_allclose(xa["times"], (np.arange(n) * 16 + 8) / 25)
    assert a.info("v1").subset == "validation" and a.labels("v1") == ["Diving"] and a.info("v1").duration == 3.5
    assert b.info("v1").duration == 5 * 16 / 25  # no annotations: rows x frames per row / fps


def test_import_npy_bad_file_names_it(tmp_path, rng):
    (tmp_path / "cat").mkdir()
    np.save(tmp_path / "cat" / "good.npy", rng.standard_normal((3, 4)))
    (tmp_path / "cat" / "broken.npy").write_text("not an array")
    r = invoke(import_features, [tmp_path / "o.h5", "--concat-dir", tmp_path / "cat"])
    assert r.exit_code == 2 and "broken.npy" in r.output and "video broken" in r.output
    assert not (tmp_path / "o.h5").exists()


def test_nan_row_is_refused_through_the_cli(tiny, tmp_path):
    copy = tmp_path / "u.h5"
    shutil.copy(tiny["untrimmed"], copy)
    with h5py.File(copy, "a") as f:
        f["videos/synth_train_0003/flow"][2, 0] = np.nan
    r = invoke(train_tsr, [copy, "--annotations", tiny["annotations"], "--subset", "train", "--model", "srnet",
                           "--out", tmp_path / "run", *FAST])
    assert r.exit_code == 2, r.output
    assert "synth_train_0003" in r.output and "NaN" in r.output and "u.h5" in r.output
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_two_hop_attention_trains_and_detects(tiny, tmp_path):
    r = invoke(train_tsr, [tiny["untrimmed"], "--annotations", tiny["annotations"], "--subset", "train",
                           "--trimmed", tiny["trimmed"], "--attention-hops", 2, "--out", tmp_path / "run", *FAST])
    assert r.exit_code == 0, r.output
    out = tmp_path / "det.json"
    r = invoke(detect, ["--run", tmp_path / "run", "--out", out, "--quiet"])
    assert r.exit_code == 0, r.output
    assert set(json.loads(out.read_text())["results"]) == {f"synth_test_{i:04d}" for i in range(8)}


def test_overlap_pretraining_uses_only_videos_of_shared_classes(tiny, tmp_path):
    # Trimmed annotations naming clips of two of the four classes: the ActivityNet situation.
    t = FeatureStore(tiny["trimmed"])
    shared = sorted({t.labels(v)[0] for v in t.video_ids()})[:2]
    db = {v: {"subset": "train", "annotations": [{"label": t.labels(v)[0], "segment": [0, 1]}]}
          for v in t.video_ids() if t.labels(v)[0] in shared}
    (tmp_path / "t.json").write_text(json.dumps({"database": db}))
    cfg = Config.for_method("tsrnet", {"hidden_dim": 16, "attention_dim": 8},
                            {"steps": 2, "pretrain_steps": 2, "overlap_pretrain_steps": 2})
    data = prepare_data(cfg, tiny["untrimmed"], tiny["annotations"], "train", tiny["trimmed"], tmp_path / "t.json")
    assert data.run_info["overlapping_classes"] == shared
    tr = Trainer(cfg, data, tmp_path / "run", progress=False)
    assert tr.stages[0] == "trimmed" and "overlap" in tr.stages and tr.stages[-1] == "main"
    labels = data.untrimmed.labels
    assert tr.overlap_set.ids and all(set(labels[v]) & set(shared) for v in tr.overlap_set.ids)
    assert len(tr.overlap_set.ids) == sum(bool(set(labels[v]) & set(shared)) for v in data.untrimmed.ids)
    assert len(tr.overlap_set.ids) < len(data.untrimmed.ids)
    tr.fit()
    assert [h["stage"] for h in tr.history] == tr.stages


def test_detect_refuses_store_of_other_dimension(tiny, tmp_path):
    r = invoke(train_tsr, [tiny["untrimmed"], "--annotations", tiny["annotations"], "--subset", "train",
                           "--model", "srnet", "--out", tmp_path / "run", *FAST])
    assert r.exit_code == 0, r.output
    from tsrnet.data.format.store import StoreWriter
    with StoreWriter(tmp_path / "d8.h5", 8) as w:
        w.add("synth_test_0000", times=[0.5], fps=1, duration=1, n_frames=1, subset="test",
              rgb=np.ones((1, 8)), flow=np.ones((1, 8)))
    r = invoke(detect, ["--run", tmp_path / "run", tmp_path / "d8.h5", "--out", tmp_path / "det.json"])
    assert r.exit_code == 2 and "feature_dim 8" in r.output and "d8.h5" in r.output
    assert not (tmp_path / "det.json").exists()


def test_import_names_entries_shorter_than_annotated(tmp_path, rng):
    """25 fps, 16 frames per row: a row covers 0.64 s. 10 s annotated: 15 rows (9.6 s) is a release's usual
    dropped tail; 5 rows (3.2 s) is a truncated entry, named with both figures, and --strict refuses it."""
    (tmp_path / "cat").mkdir()
    np.save(tmp_path / "cat" / "whole.npy", rng.standard_normal((15, 8)))
    np.save(tmp_path / "cat" / "cut.npy", rng.standard_normal((5, 8)))
    ann = {"database": {v: {"subset": "test", "duration": 10.0, "annotations": []} for v in ("whole", "cut")}}
    (tmp_path / "gt.json").write_text(json.dumps(ann))
    args = ["--concat-dir", tmp_path / "cat", "--fps", 25, "--frames-per-row", 16, "--annotations", tmp_path / "gt.json"]
    r = invoke(import_features, [tmp_path / "o.h5"] + args)
    assert r.exit_code == 0, r.output
    assert "video cut:" in r.output and "3.20 s" in r.output and "10.00 s" in r.output and "video whole" not in r.output
    with h5py.File(tmp_path / "o.h5", "r") as f:
        warned = json.loads(f.attrs["warnings"])
    assert [(w["video"], w["rows"], w["covered_duration"], w["annotated_duration"]) for w in warned] == \
        [("cut", 5, 3.2, 10.0)]
    assert sorted(FeatureStore(tmp_path / "o.h5").video_ids()) == ["cut", "whole"]
    r = invoke(import_features, [tmp_path / "s.h5", "--strict"] + args)
    assert r.exit_code == 2 and "cut.npy" in r.output and "video cut" in r.output and "--strict" in r.output
    assert not (tmp_path / "s.h5").exists()
