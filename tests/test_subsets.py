"""Training and scoring kept apart: the training-subset convention, the training ids in run.json, their
exclusion by detect and compare-methods, one store holding both domains (import-features), and the
videos the overlap pretraining trains on."""
import json

import numpy as np
import pytest

from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.cli import import_features
from tsrnet.data.core.errors import DataError
from tsrnet.data.format.store import FeatureStore
from tsrnet.data.format.subsets import train_subset_by_convention
from tsrnet.detect.cli import detect, evaluate
from tsrnet.train.cli import compare_methods, train_tsr
from tsrnet.train.config import Config
from tsrnet.train.data import prepare_data
from tsrnet.train.trainer import Trainer
from conftest import FAST_TRAIN, invoke


@pytest.mark.parametrize("subsets,expected", [
    (["test", "train"], "train"),
    (["training", "validation", "testing"], "training"),  # ActivityNet
    (["validation", "test"], "validation"),  # THUMOS14
    (["train", "validation", "test"], "train"),
    ([], None),
])
def test_convention_picks_the_training_subset(subsets, expected):
    assert train_subset_by_convention(subsets, "gt.json")[0] == expected


@pytest.mark.parametrize("subsets", [["a", "b"], ["train", "training"], ["validation"], ["test"]])
def test_convention_refuses_when_it_does_not_decide(subsets):
    with pytest.raises(DataError, match=r"pass --subset") as e:
        train_subset_by_convention(subsets, "gt.json")
    assert str(sorted(subsets)) in str(e.value)


@pytest.fixture(scope="module")
def store_run(tiny, tmp_path_factory):
    """srnet trained by 'train-tsr STORE' alone: labels and subsets from the store's attributes."""
    run_dir = tmp_path_factory.mktemp("r") / "run"
    r = invoke(train_tsr, [tiny["untrimmed"], "--model", "srnet", "--out", run_dir, *FAST_TRAIN])
    assert r.exit_code == 0, r.output
    return run_dir, r.output


def test_train_without_subset_takes_train_and_says_so(tiny, store_run):
    run_dir, output = store_run
    info = json.loads((run_dir / "run.json").read_text())
    train = FeatureStore(tiny["untrimmed"]).video_ids(subset="train")
    assert sorted(info["train_ids"]) == train and info["n_train_videos"] == len(train) == 16
    assert info["train_subset"] == "train" and info["eval_subset"] == "test"
    assert "subset 'train': by convention" in output


def test_detect_scores_the_rest_and_refuses_training_videos(tiny, store_run, tmp_path):
    run_dir, _ = store_run
    r = invoke(detect, ["--run", run_dir, "--out", tmp_path / "d.json", "--quiet"])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "d.json").read_text())["results"]
    assert sorted(res) == FeatureStore(tiny["untrimmed"]).video_ids(subset="test")
    assert "excluded" not in r.output
    r = invoke(detect, ["--run", run_dir, "--subset", "train", "--out", tmp_path / "t.json", "--quiet"])
    assert r.exit_code == 2 and "all 16 video(s) to score were used to train the run" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "t.json").exists()


def test_detect_excludes_training_videos_named_in_the_test_subset(tiny, store_run, tmp_path):
    """Ground truth that calls two training videos 'test': they are dropped, from scoring and from the
    evaluation, which then equals the evaluation on the true test subset."""
    run_dir, _ = store_run
    doc = json.loads(open(tiny["annotations"]).read())
    moved = ["synth_train_0003", "synth_train_0007"]
    for v in moved:
        doc["database"][v]["subset"] = "test"
    (tmp_path / "leaky.json").write_text(json.dumps(doc))
    out = tmp_path / "d.json"
    r = invoke(detect, ["--run", run_dir, "--annotations", tmp_path / "leaky.json", "--out", out, "--quiet"])
    assert r.exit_code == 0, r.output
    assert "excluded 2 of 10 video(s) that the run trained on; scoring 8" in r.output
    test = load_annotations(tiny["annotations"]).video_ids("test")
    assert sorted(json.loads(out.read_text())["results"]) == test
    r = invoke(evaluate, [tiny["annotations"], out, "--subset", "test", "--json", tmp_path / "ev.json"])
    assert r.exit_code == 0
    saved = json.loads(out.with_suffix(".eval.json").read_text())
    assert saved["mAP"] == json.loads((tmp_path / "ev.json").read_text())["mAP"]


def test_a_run_without_the_list_of_its_training_videos_is_refused(store_run, tmp_path):
    run_dir, _ = store_run
    old = tmp_path / "old"
    old.mkdir()
    for f in ("checkpoint.pt", "config.json", "classes.json"):
        (old / f).write_bytes((run_dir / f).read_bytes())
    info = json.loads((run_dir / "run.json").read_text())
    del info["train_ids"]
    (old / "run.json").write_text(json.dumps(info))
    r = invoke(detect, ["--run", old, "--quiet"])
    assert r.exit_code == 2 and "lists no training videos" in r.output and "retrain it" in r.output, r.output

def test_train_refuses_subsets_the_convention_cannot_decide(tiny, tmp_path):
    doc = json.loads(open(tiny["annotations"]).read())
    for v, entry in doc["database"].items():
        entry["subset"] = "fold1" if v.endswith(("0", "2", "4", "6")) else "fold2"
    (tmp_path / "folds.json").write_text(json.dumps(doc))
    r = invoke(train_tsr, [tiny["untrimmed"], "--annotations", tmp_path / "folds.json", "--model", "srnet",
                           "--out", tmp_path / "run", *FAST_TRAIN])
    assert r.exit_code == 2 and "['fold1', 'fold2'] do not say which one to train on" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_compare_methods_refuses_a_test_subset_it_trains_on_before_training(tiny, tmp_path):
    r = invoke(compare_methods, [tiny["untrimmed"], "--annotations", tiny["annotations"], "--test-subset", "train",
                                 "--models", "srnet", "--out", tmp_path / "cmp", "--steps", "8", "--quiet"])
    assert r.exit_code == 2 and "were used to train the run" in r.output
    assert not (tmp_path / "cmp").exists()


def test_transfer_without_trimmed_clips_says_how_to_add_them(tiny, tmp_path):
    r = invoke(train_tsr, [tiny["untrimmed"], "--out", tmp_path / "run", *FAST_TRAIN])
    assert r.exit_code == 2 and f"extract-features CLIPS/ {tiny['untrimmed']} --trimmed" in r.output
    assert "--model srnet or two-stream, which need none" in r.output and not (tmp_path / "run").exists()


def _npy_dir(path, videos, dim, rng):
    path.mkdir()
    for v, n in videos.items():
        np.save(path / f"{v}.npy", rng.standard_normal((n, 2 * dim)))
    return path


def test_import_features_appends_trimmed_clips(tmp_path, rng):
    untrimmed = _npy_dir(tmp_path / "u", {"v1": 6, "v2": 4}, 5, rng)
    clips = _npy_dir(tmp_path / "c", {"c1": 2, "c2": 3}, 5, rng)
    out = tmp_path / "one.h5"
    assert invoke(import_features, [out, "--concat-dir", untrimmed]).exit_code == 0
    before = FeatureStore(out).read("v1")["rgb"]
    r = invoke(import_features, [out, "--concat-dir", clips, "--trimmed"])
    assert r.exit_code == 0, r.output
    s = FeatureStore(out)
    assert s.video_ids(domain="untrimmed") == ["v1", "v2"] and s.video_ids(domain="trimmed") == ["c1", "c2"]
    np.testing.assert_array_equal(s.read("v1")["rgb"], before)
    s.close()
    kept = out.read_bytes()
    for args, message in ((["--concat-dir", clips, "--trimmed"], "2 video id(s) are already in the store"),
                          (["--concat-dir", clips, "--frames-per-row", 8], "use the same --fps and --frames-per-row"),
                          (["--concat-dir", _npy_dir(tmp_path / "d", {"x": 2}, 3, rng)], "D=5, these have D=3")):
        r = invoke(import_features, [out, *args])
        assert r.exit_code == 2 and message in r.output, r.output
        assert out.read_bytes() == kept
    assert invoke(import_features, [out, "--concat-dir", clips, "--overwrite"]).exit_code == 0
    assert FeatureStore(out).video_ids() == ["c1", "c2"]


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
