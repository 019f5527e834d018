"""train-tsr -> detect -> evaluate on a tiny synthetic store, and the bad-input promises."""
import functools
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tsrnet.data.format.store import StoreWriter
from tsrnet.detect.cli import detect, evaluate
from tsrnet.train.cli import train_tsr
from tsrnet.train.config import Config
from tsrnet.train.data import prepare_data
from tsrnet.train.rundir import load_run
from tsrnet.train.trainer import Trainer
from conftest import FAST_TRAIN, invoke

ROOT = Path(__file__).resolve().parents[1]

# Longer than conftest.FAST_TRAIN: these tests check what a short training learns.
TRAIN_E2E = ["--steps", "12", "--pretrain-steps", "4", "--quiet", "--hidden-dim", "32", "--attention-dim", "16"]


run = functools.partial(invoke, catch_exceptions=False)  # a failure shows its traceback


def small_srnet(tiny, epochs: int):
    """A small SRNet configuration for the tiny set, and its training data."""
    cfg = Config.for_method("srnet", {"hidden_dim": 16, "attention_dim": 8}, {"epochs": epochs})
    return cfg, prepare_data(cfg, tiny["untrimmed"], tiny["annotations"], "train")


def test_train_detect_evaluate(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run(train_tsr, [tiny["untrimmed"], "--annotations", tiny["annotations"], "--subset", "train",
                        "--trimmed", tiny["trimmed"], *TRAIN_E2E])
    assert r.exit_code == 0, r.output
    run_dir = tmp_path / r.output.strip().splitlines()[-1]
    for f in ("checkpoint.pt", "config.json", "classes.json", "run.json", "loss_log.csv"):
        assert (run_dir / f).exists()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["eval_subset"] == "test" and info["status"] == "finished" and len(info["fingerprint"]) == 16
    # The quick start's command: no arguments but the threshold.
    r = run(detect, ["--threshold", "0.2", "--plot", "plots", "--plot-videos", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "mAP%" in r.output
    res = json.loads((run_dir / "detections.json").read_text())["results"]
    assert len(res) == 8  # the test subset
    for dets in res.values():
        for d in dets:
            assert 0 <= d["segment"][0] < d["segment"][1]
    assert len(list((tmp_path / "plots").glob("*.png"))) == 1
    r = run(evaluate, [tiny["annotations"], run_dir / "detections.json", "--subset", "test", "--json", "ev.json"])
    assert r.exit_code == 0
    ev = json.loads((tmp_path / "ev.json").read_text())
    saved = json.loads((run_dir / "detections.eval.json").read_text())
    assert ev["mAP"] == saved["mAP"] and set(ev["mAP"]) == {f"0.{i}0" for i in range(1, 10)}


def test_resume_continues_where_it_stopped(tiny, tmp_path):
    cfg, data = small_srnet(tiny, epochs=4)
    full = Trainer(cfg, data, tmp_path / "full", progress=False)
    full.fit()
    cfg2 = Config.from_dict(cfg.to_dict())
    part = Trainer(cfg2, data, tmp_path / "part", progress=False)
    part.stages = part.stages[:2]  # stop after 2 epochs, as a kill would
    part.fit()
    resumed = Trainer(cfg2, data, tmp_path / "part", progress=False)
    resumed.fit()
    assert resumed.epochs_done == 4 and len(resumed.history) == 4
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_sparsity_term_changes_attention(tiny, tmp_path):
    def mean_gate(beta):
        cfg, data = small_srnet(tiny, epochs=40)
        cfg = cfg.replace("train", lr=1e-2).replace("options", beta=beta, alpha=0.0)
        t = Trainer(cfg, data, tmp_path / f"b{beta}", progress=False)
        t.fit()
        from tsrnet.detect.pipeline import score_store
        scores = score_store(t.model, data.untrimmed.store, data.untrimmed.ids[:6], t.device)
        return float(np.mean([vs.rows["rgb"]["attention"].mean() for vs in scores]))

    assert mean_gate(3.0) < mean_gate(0.0) - 0.05


def test_attention_that_closed_on_every_row_is_reported(tiny, tmp_path):
    """A sparsity weight the class loss cannot resist shuts every gate; the trainer says so, with what to do."""
    def warnings(beta):
        cfg, data = small_srnet(tiny, epochs=150)
        cfg = cfg.replace("train", lr=0.1, lr_flow=0.1).replace("options", beta=beta, sparsity_keep=0.0)
        logs = []
        t = Trainer(cfg, data, tmp_path / f"b{beta}", progress=False, log=logs.append)
        t.fit()
        gates = [t.history[-1][f"gate_{s}"] for s in ("rgb", "flow")]
        return [m for m in logs if m.startswith("warning:")], gates

    shut, gates = warnings(500.0)
    assert max(gates) < 0.01 and len(shut) == 2
    assert "rgb attention closed on every row" in shut[0] and "lower --beta" in shut[0]
    assert "flow attention closed" in shut[1]
    open_, gates = warnings(0.0)
    assert open_ == [] and min(gates) > 0.05


def bad(tmp_path, args, match):
    r = CliRunner().invoke(train_tsr, [str(a) for a in args] + TRAIN_E2E + ["--out", str(tmp_path / "run")])
    assert r.exit_code == 2, r.output
    assert match in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_bad_inputs(tiny, tmp_path):
    u, ann = tiny["untrimmed"], tiny["annotations"]
    bad(tmp_path, [u, "--annotations", ann, "--subset", "nope"], "subset 'nope' has no videos")
    bad(tmp_path, [u, "--annotations", ann, "--subset", "train"], "needs --trimmed")
    # different D between the stores
    other = tmp_path / "d8.h5"
    with StoreWriter(other, 8) as w:
        w.add("c", times=[0.5], fps=1, duration=1, n_frames=1, domain="trimmed", labels=["HighJump"],
              rgb=np.ones((1, 8)), flow=np.ones((1, 8)))
    bad(tmp_path, [u, "--annotations", ann, "--subset", "train", "--trimmed", other], "feature_dim 8")
    # annotations naming a video absent from the store
    doc = json.loads(open(ann).read())
    doc["database"]["ghost"] = {"subset": "train", "annotations": [{"label": "Billiards", "segment": [1, 2]}]}
    (tmp_path / "ghost.json").write_text(json.dumps(doc))
    bad(tmp_path, [u, "--annotations", tmp_path / "ghost.json", "--subset", "train", "--model", "srnet"],
        "video ghost")
    # labels attribute naming a class that is not in the class list (store labels, no annotations)
    copy = tmp_path / "u.h5"
    copy.write_bytes(open(u, "rb").read())
    with h5py.File(copy, "a") as f:
        f["videos/synth_train_0000"].attrs["labels"] = json.dumps([1])
    bad(tmp_path, [copy, "--subset", "train", "--model", "srnet"], "video synth_train_0000")


def test_detect_refuses_other_class_list_and_bad_threshold(tiny, tmp_path):
    r = run(train_tsr, [tiny["untrimmed"], "--annotations", tiny["annotations"], "--subset", "train",
                        "--model", "srnet", "--out", tmp_path / "run", *TRAIN_E2E])
    assert r.exit_code == 0
    doc = json.loads(open(tiny["annotations"]).read())
    for v in doc["database"].values():
        for a in v["annotations"]:
            a["label"] = "Other" + a["label"]
    (tmp_path / "other.json").write_text(json.dumps(doc))
    r = CliRunner().invoke(detect, ["--run", str(tmp_path / "run"), "--annotations", str(tmp_path / "other.json")])
    assert r.exit_code == 2 and "another class list" in r.output
    r = CliRunner().invoke(detect, ["--run", str(tmp_path / "run"), "--threshold", "-0.1"])
    assert r.exit_code != 0 and "not in the range" in r.output
    assert not (tmp_path / "run" / "detections.json").exists()
    r = CliRunner().invoke(detect, ["--run", str(tmp_path / "run"), "--plot", str(tmp_path / "p"),
                                    "--plot-videos", "synth_test_9999"])
    assert r.exit_code == 2 and "synth_test_9999" in r.output
    assert not (tmp_path / "run" / "detections.json").exists() and not (tmp_path / "p").exists()
    r = CliRunner().invoke(detect, ["--run", str(tmp_path / "run"), "--plot", str(tmp_path / "p"), "--quiet",
                                    "--plot-videos", "synth_test_0003,synth_test_0001"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["synth_test_0001.png", "synth_test_0003.png"]
    model, cfg, info = load_run(tmp_path / "run", "cpu")
    assert cfg.method == "srnet" and info["classes"] == model.classes


def test_stpn_attention_that_closed_is_reported(tiny, tmp_path):
    """STPN's sparsity term can shut its attention on every row; the trainer says so, naming what to lower."""
    data_cfg = Config.for_method("stpn", {"attention_dim": 8}, {"epochs": 40})
    data = prepare_data(data_cfg, tiny["untrimmed"], tiny["annotations"], "train")

    def warnings(beta):
        cfg = data_cfg.replace("train", lr=0.1, lr_flow=0.1).replace("options", beta=beta)
        logs = []
        t = Trainer(cfg, data, tmp_path / f"b{beta}", progress=False, log=logs.append)
        t.fit()
        return [m for m in logs if m.startswith("warning:")], [t.history[-1][f"sparsity_{s}"] for s in ("rgb", "flow")]

    shut, attention = warnings(50.0)
    assert max(attention) < 0.01 and len(shut) == 2
    assert "rgb attention closed on every row" in shut[0] and "lower --beta or --lr" in shut[0]
    open_, attention = warnings(0.0)
    assert open_ == [] and min(attention) > 0.05


def test_compare_methods_repeats_match_detect(tiny, tmp_path):
    """compare-methods --repeats: one run per method and seed, its numbers equal detect's on the same run."""
    import pandas as pd

    from tsrnet.train.cli import compare_methods

    out = tmp_path / "cmp"
    r = run(compare_methods, [tiny["untrimmed"], "--annotations", tiny["annotations"], "--subset", "train",
                              "--test-subset", "test", "--models", "two-stream,srnet", "--repeats", "2",
                              "--seed", "5", "--steps", "12", "--quiet", "--out", out])
    assert r.exit_code == 0, r.output
    assert "mean over seeds 5, 6" in r.output and "standard deviation" in r.output
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(zip(runs["model"], runs["seed"])) == [("random scores", 5), ("random scores", 6), ("srnet", 5),
                                                         ("srnet", 6), ("two-stream", 5), ("two-stream", 6)]
    for model in ("two-stream", "srnet"):
        seeds = [json.loads((out / f"{model}-seed{s}" / "config.json").read_text())["train"]["seed"] for s in (5, 6)]
        assert seeds == [5, 6]
        a, b = (torch.load(out / f"{model}-seed{s}" / "checkpoint.pt", weights_only=False) for s in (5, 6))
        assert not torch.equal(a["model"]["nets.rgb.classifier.fc1.weight"],
                               b["model"]["nets.rgb.classifier.fc1.weight"])
    # The srnet seed-6 row, recomputed by detect on that run.
    r = run(detect, ["--run", out / "srnet-seed6", "--quiet"])
    assert r.exit_code == 0, r.output
    ev = json.loads((out / "srnet-seed6" / "detections.eval.json").read_text())
    row = runs[(runs["model"] == "srnet") & (runs["seed"] == 6)].iloc[0]
    assert np.isclose(row["mAP@0.5"], ev["mAP"]["0.50"]) and np.isclose(row["top1"], ev["classification"]["top1"])
    import matplotlib.image

    assert matplotlib.image.imread(out / "table.png").ndim == 3  # the chart of mAP against tIoU
    md = (out / "table.md").read_text().splitlines()
    assert md[0].startswith("| model | top1 | cls_mAP | mAP@0.1") and md[0].endswith("| train_s |")
    by_model = {line.split(" | ")[0].strip("| "): line for line in md[2:]}
    assert set(by_model) == {"random scores", "two-stream", "srnet"} and " ± " in by_model["srnet"]
    srnet6 = runs[(runs["model"] == "srnet") & (runs["seed"] == 6)].iloc[0]
    log = pd.read_csv(out / "srnet-seed6" / "loss_log.csv")
    assert srnet6["train_s"] == pytest.approx(log["seconds"].sum()) and srnet6["train_s"] > 0
    table = pd.read_csv(out / "table.csv", index_col="model")
    for model in ("two-stream", "srnet"):
        vals = runs[runs["model"] == model]["mAP@0.5"].to_numpy()
        assert np.isclose(table.loc[model, "mAP@0.5"], (vals[0] + vals[1]) / 2)


def test_compare_methods_jobs_train_the_same_runs(tiny, tmp_path, monkeypatch):
    """--jobs 2 trains each run in a one-thread worker process: its weights and its table row equal those of the
    same run trained alone on one thread."""
    import pandas as pd

    from tsrnet.train.cli import compare_methods

    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # two threads to share, whatever the machine has

    args = [tiny["untrimmed"], "--annotations", tiny["annotations"], "--subset", "train", "--test-subset", "test",
            "--trimmed", tiny["trimmed"], "--models", "srnet,tsrnet", "--steps", "12", "--pretrain-steps", "4",
            "--hidden-dim", "32", "--attention-dim", "16", "--quiet"]
    r = run(compare_methods, args + ["--jobs", "2", "--out", tmp_path / "par"])
    assert r.exit_code == 0, r.output
    assert "2 runs, 2 at a time with 1 thread(s) each" in r.output
    threads = torch.get_num_threads()
    try:
        assert run(compare_methods, args + ["--threads", "1", "--out", tmp_path / "seq"]).exit_code == 0
    finally:
        torch.set_num_threads(threads)
    for model in ("srnet", "tsrnet"):
        a, b = (torch.load(tmp_path / d / model / "checkpoint.pt", weights_only=False)["model"] for d in ("par", "seq"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    par, seq = (pd.read_csv(tmp_path / d / "runs.csv").drop(columns="train_s") for d in ("par", "seq"))
    pd.testing.assert_frame_equal(par, seq)


def test_compare_methods_jobs_a_failed_run_leaves_the_others(tiny, tmp_path, monkeypatch):
    """With --jobs 2 a run that fails (here: an existing srnet run of another length, which is not resumed) does
    not stop the run beside it; the command then fails, naming the refused run."""
    from tsrnet.train.cli import compare_methods

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    base = [tiny["untrimmed"], "--annotations", tiny["annotations"], "--subset", "train", "--test-subset", "test",
            "--trimmed", tiny["trimmed"], "--pretrain-steps", "4", "--hidden-dim", "32", "--attention-dim", "16",
            "--quiet", "--out", tmp_path / "cmp"]
    assert run(compare_methods, base + ["--models", "srnet", "--steps", "12"]).exit_code == 0
    before = (tmp_path / "cmp" / "srnet" / "checkpoint.pt").read_bytes()
    r = CliRunner().invoke(compare_methods, [str(a) for a in base + ["--models", "srnet,tsrnet", "--steps", "15",
                                                                       "--jobs", "2"]])
    assert r.exit_code != 0 and "srnet" in r.output and "steps" in r.output, r.output
    assert (tmp_path / "cmp" / "srnet" / "checkpoint.pt").read_bytes() == before  # the refused run is untouched
    info = json.loads((tmp_path / "cmp" / "tsrnet" / "run.json").read_text())
    assert info["status"] == "finished"  # the run beside it trained to the end


def test_compare_methods_detect_and_the_benchmarks_score_a_run_identically(tiny, tmp_path, monkeypatch):
    """One scoring path: the mAP compare-methods tabulates for a run is what detect evaluates, what
    tsrnet.train.scoring.score_run gives the benchmarks, and what study_localisation measures with the
    method's defaults, at every tIoU."""
    import importlib.util

    import pandas as pd

    from tsrnet.train.cli import compare_methods
    from tsrnet.train.scoring import score_run

    out = tmp_path / "cmp"
    args = [tiny["untrimmed"], "--annotations", tiny["annotations"], "--subset", "train", "--test-subset", "test",
            "--models", "srnet", "--steps", "60", "--quiet", "--out", out]
    assert run(compare_methods, args).exit_code == 0
    table = pd.read_csv(out / "runs.csv").set_index("model").loc["srnet"]
    r = run(detect, ["--run", out / "srnet", "--quiet", "--annotations", tiny["annotations"], "--subset", "test"])
    assert r.exit_code == 0, r.output
    by_detect = json.loads((out / "srnet" / "detections.eval.json").read_text())["mAP"]
    row, _ = score_run(out / "srnet", tiny["untrimmed"], tiny["annotations"], "test", device="cpu").row()
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as when the script runs: it imports study_summary
    spec = importlib.util.spec_from_file_location("study_localisation", ROOT / "benchmarks" / "study_localisation.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    study.main([str(out / "srnet"), "--features", str(tiny["untrimmed"]), "--annotations", str(tiny["annotations"]),
                "--subset", "test", "--out", str(tmp_path / "study")])
    rows = pd.read_csv(tmp_path / "study" / "study.csv")
    by_study = rows[rows["setting"] == "the method's defaults"].iloc[0]
    for t in (0.1, 0.3, 0.5, 0.7):
        expected = by_detect[f"{t:.2f}"]
        assert expected > 0  # the run detects something: equality of zeros would prove little
        assert np.isclose(table[f"mAP@{t:.1f}"], expected), t
        assert np.isclose(row[f"mAP@{t:.1f}"], expected), t
        assert np.isclose(by_study[f"mAP@{t:.1f}"] / 100, expected), t


def test_checkpoints_by_time_not_every_epoch(tiny, tmp_path, monkeypatch):
    """A checkpoint at most every checkpoint_seconds, and always one at the end."""
    cfg, data = small_srnet(tiny, epochs=5)
    saved = []
    for seconds in (1e9, 0.0):
        cfg.train.checkpoint_seconds = seconds
        t = Trainer(cfg, data, tmp_path / f"run{seconds}", progress=False)
        real_save = t.save_checkpoint
        monkeypatch.setattr(t, "save_checkpoint", lambda: (saved.append((seconds, t.epochs_done)), real_save()))
        t.fit()
    assert saved == [(1e9, 5)] + [(0.0, e) for e in range(1, 6)]


def test_resume_accepts_runtime_changes_only(tiny, tmp_path):
    """Device, workers, caching and checkpoint interval may change on resume; what the run computes may not."""
    from tsrnet.data.core.errors import DataError

    cfg, data = small_srnet(tiny, epochs=3)
    part = Trainer(cfg, data, tmp_path / "run", progress=False)
    part.stages = part.stages[:1]
    part.fit()
    runtime = cfg.replace("train", cache_gb=0.0, checkpoint_seconds=5.0, device="cpu")
    resumed = Trainer(runtime, data, tmp_path / "run", progress=False)
    assert resumed.try_resume() and resumed.epochs_done == 1
    for section, change, named in (("train", {"lr": 0.5}, r"train\.lr: 0\.001 in the run, 0\.5 now"),
                                   ("options", {"beta": 0.3}, r"options\.beta: 3\.0 in the run, 0\.3 now"),
                                   ("train", {"seed": 9}, r"train\.seed: 0 in the run, 9 now")):
        with pytest.raises(DataError, match=f"another configuration \\({named}\\)"):
            Trainer(cfg.replace(section, **change), data, tmp_path / "run", progress=False).try_resume()


@pytest.mark.parametrize("models", ["foo,srnet", " , "])
def test_compare_methods_refuses_unknown_models_before_training(tiny, tmp_path, models):
    from tsrnet.train.cli import compare_methods

    r = CliRunner().invoke(compare_methods, [str(tiny["untrimmed"]), "--annotations", str(tiny["annotations"]),
                                             "--models", models, "--out", str(tmp_path / "cmp")])
    assert r.exit_code == 2 and "choose from two-stream, srnet" in r.output
    assert not (tmp_path / "cmp").exists()


def test_compare_methods_needs_trimmed_for_tsrnet_before_training(tiny, tmp_path):
    from tsrnet.train.cli import compare_methods

    r = CliRunner().invoke(compare_methods, [str(tiny["untrimmed"]), "--annotations", str(tiny["annotations"]),
                                             "--models", "two-stream,tsrnet", "--out", str(tmp_path / "cmp")])
    assert r.exit_code == 2 and "tsrnet transfer(s) knowledge and need --trimmed" in r.output
    assert not (tmp_path / "cmp").exists()


def test_background_term_trains_and_is_logged(tiny, tmp_path):
    cfg, data = small_srnet(tiny, epochs=3)
    cfg = cfg.replace("options", background=1.0)
    Trainer(cfg, data, tmp_path / "bg", progress=False).fit()
    log = (tmp_path / "bg" / "loss_log.csv").read_text().splitlines()
    head = log[0].split(",")
    assert "background_rgb" in head and "background_flow" in head
    values = [float(r.split(",")[head.index("background_rgb")]) for r in log[1:]]
    assert len(values) == 3 and all(np.isfinite(values)) and min(values) > 0


def test_detect_refuses_store_of_other_dimension(tiny, tmp_path):
    r = invoke(train_tsr, [tiny["untrimmed"], "--annotations", tiny["annotations"], "--subset", "train",
                           "--model", "srnet", "--out", tmp_path / "run", *FAST_TRAIN])
    assert r.exit_code == 0, r.output
    from tsrnet.data.format.store import StoreWriter
    with StoreWriter(tmp_path / "d8.h5", 8) as w:
        w.add("synth_test_0000", times=[0.5], fps=1, duration=1, n_frames=1, subset="test",
              rgb=np.ones((1, 8)), flow=np.ones((1, 8)))
    r = invoke(detect, ["--run", tmp_path / "run", tmp_path / "d8.h5", "--out", tmp_path / "det.json"])
    assert r.exit_code == 2 and "feature_dim 8" in r.output and "d8.h5" in r.output
    assert not (tmp_path / "det.json").exists()


def test_two_hop_attention_trains_and_detects(tiny, tmp_path):
    r = invoke(train_tsr, [tiny["untrimmed"], "--annotations", tiny["annotations"], "--subset", "train",
                           "--trimmed", tiny["trimmed"], "--attention-hops", 2, "--out", tmp_path / "run", *FAST_TRAIN])
    assert r.exit_code == 0, r.output
    out = tmp_path / "det.json"
    r = invoke(detect, ["--run", tmp_path / "run", "--out", out, "--quiet"])
    assert r.exit_code == 0, r.output
    assert set(json.loads(out.read_text())["results"]) == {f"synth_test_{i:04d}" for i in range(8)}
