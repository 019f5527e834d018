"""A failed command leaves nothing behind: run directories, compare-methods' OUT, detect's plot folder.

Each test makes a command fail on a real bad input (a NaN row in a video) or,
where the failure point matters, a simulated crash, and then compares the
filesystem with what was there before.
"""
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import tsrnet.detect.plot as plot_module
from tsrnet.data.core.io import staged_dir, undone_on_failure
from tsrnet.detect.cli import detect
from tsrnet.train.cli import compare_methods, train_tsr
from tsrnet.train.trainer import Trainer
from conftest import FAST_TRAIN, invoke


def tree(root):
    """Every path under ``root`` (relative), with the bytes of each file: the state to compare."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def with_nan_row(src, dst, video):
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        f[f"videos/{video}/rgb"][1, 0] = np.nan
    return dst


@pytest.fixture
def nan_train(tiny, tmp_path):
    return with_nan_row(tiny["untrimmed"], tmp_path / "nan.h5", "synth_train_0002")


def train_args(tiny, store, out, *extra):
    return [store, "--annotations", tiny["annotations"], "--subset", "train", "--model", "srnet", "--out", out,
            *FAST_TRAIN, *extra]


# -- train-tsr ---------------------------------------------------------------
def test_train_failing_on_a_nan_row_leaves_no_run_dir_nor_its_parents(tiny, tmp_path, nan_train):
    before = tree(tmp_path)
    r = invoke(train_tsr, train_args(tiny, nan_train, tmp_path / "runs" / "deep" / "run"))
    assert r.exit_code == 2, r.output
    assert "synth_train_0002" in r.output and "NaN" in r.output
    assert tree(tmp_path) == before


def test_train_failure_removes_only_what_it_created(tiny, tmp_path, nan_train):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    r = invoke(train_tsr, train_args(tiny, nan_train, run))
    assert r.exit_code == 2, r.output
    assert tree(run) == {"notes.txt": b"mine"}


def test_run_with_a_checkpoint_survives_a_failing_resume(tiny, tmp_path, nan_train, monkeypatch):
    run = tmp_path / "run"
    # First attempt crashes in its second epoch, after the first epoch's checkpoint.
    real_epoch = Trainer.run_epoch

    def crash_in_epoch_two(self, epoch, stage):
        if epoch == 1:
            raise RuntimeError("simulated crash")
        return real_epoch(self, epoch, stage)

    monkeypatch.setattr(Trainer, "run_epoch", crash_in_epoch_two)
    r = invoke(train_tsr, train_args(tiny, tiny["untrimmed"], run, "--checkpoint-seconds", 0))
    assert isinstance(r.exception, RuntimeError)
    monkeypatch.setattr(Trainer, "run_epoch", real_epoch)
    checkpoint = (run / "checkpoint.pt").read_bytes()
    files = set(tree(run))
    assert "checkpoint.pt" in files
    # Second attempt resumes on a store whose rows went bad: it fails, the run stays resumable.
    r = invoke(train_tsr, train_args(tiny, nan_train, run, "--checkpoint-seconds", 0))
    assert r.exit_code == 2 and "NaN" in r.output, r.output
    assert set(tree(run)) == files and (run / "checkpoint.pt").read_bytes() == checkpoint


# -- compare-methods -----------------------------------------------------------
def compare_args(tiny, store, out):
    return [store, "--annotations", tiny["annotations"], "--subset", "train", "--test-subset", "test",
            "--models", "two-stream,srnet", "--steps", "8", "--quiet", "--out", out]


def test_compare_methods_failing_before_any_checkpoint_leaves_no_out(tiny, tmp_path, nan_train):
    before = tree(tmp_path)
    r = invoke(compare_methods, compare_args(tiny, nan_train, tmp_path / "cmp" / "a"))
    assert r.exit_code == 2 and "synth_train_0002" in r.output, r.output
    assert tree(tmp_path) == before


def test_compare_methods_failure_leaves_an_existing_out_as_it_was(tiny, tmp_path, nan_train):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "old.csv").write_text("kept")
    r = invoke(compare_methods, compare_args(tiny, nan_train, out))
    assert r.exit_code == 2, r.output
    assert tree(out) == {"old.csv": b"kept"}


# -- detect --plot -------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    run = tmp_path_factory.mktemp("detect") / "run"
    r = invoke(train_tsr, train_args(tiny, tiny["untrimmed"], run))
    assert r.exit_code == 0, r.output
    return run


def detect_args(trained, store, tmp_path):
    return ["--run", trained, store, "--out", tmp_path / "det.json", "--plot", tmp_path / "plots" / "p",
            "--plot-videos", 3, "--quiet"]


def test_detect_failing_on_a_nan_row_makes_no_plot_folder(tiny, tmp_path, trained):
    store = with_nan_row(tiny["untrimmed"], tmp_path / "nan.h5", "synth_test_0001")
    before = tree(tmp_path)
    r = invoke(detect, detect_args(trained, store, tmp_path))
    assert r.exit_code == 2 and "synth_test_0001" in r.output, r.output
    assert tree(tmp_path) == before


def test_detect_failing_while_plotting_leaves_no_half_made_plot_folder(tiny, tmp_path, trained, monkeypatch):
    real_plot, drawn = plot_module.plot_timeline, []

    def fail_on_third(*args, **kw):
        if len(drawn) == 2:
            raise OSError("simulated full disk")
        drawn.append(real_plot(*args, **kw))
        return drawn[-1]

    monkeypatch.setattr(plot_module, "plot_timeline", fail_on_third)
    r = invoke(detect, detect_args(trained, tiny["untrimmed"], tmp_path))
    assert isinstance(r.exception, OSError) and len(drawn) == 2
    assert not (tmp_path / "plots").exists()
    # The same command, not failing, publishes all three at once.
    monkeypatch.setattr(plot_module, "plot_timeline", real_plot)
    r = invoke(detect, detect_args(trained, tiny["untrimmed"], tmp_path))
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "plots").rglob("*")) == [
        "p", "synth_test_0000.png", "synth_test_0001.png", "synth_test_0002.png"]


# -- the two helpers on their own --------------------------------------------
def test_undone_on_failure_keeps_the_folder_once_keep_says_so(tmp_path):
    with pytest.raises(KeyError):
        with undone_on_failure(tmp_path / "a" / "run", keep=lambda: (tmp_path / "a" / "run" / "ck").exists()):
            (tmp_path / "a" / "run").mkdir(parents=True)
            (tmp_path / "a" / "run" / "ck").write_text("1")
            raise KeyError("late failure")
    assert tree(tmp_path) == {"a": None, "a/run": None, "a/run/ck": b"1"}


def test_staged_dir_adds_to_an_existing_folder_and_leaves_it_alone_on_failure(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "old.png").write_bytes(b"old")
    with pytest.raises(ValueError):
        with staged_dir(tmp_path / "p") as stage:
            (stage / "new.png").write_bytes(b"new")
            raise ValueError
    assert tree(tmp_path) == {"p": None, "p/old.png": b"old"}
    with staged_dir(tmp_path / "p") as stage:
        (stage / "new.png").write_bytes(b"new")
        assert not (tmp_path / "p" / "new.png").exists()  # nothing shows before the block ends
    assert tree(tmp_path) == {"p": None, "p/new.png": b"new", "p/old.png": b"old"}


def test_extract_features_refused_before_its_first_video_leaves_nothing(tmp_path):
    from tsrnet.extract.cli import extract_features

    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"not a video")
    before = tree(tmp_path)
    r = CliRunner().invoke(extract_features, [str(tmp_path / "videos"), str(tmp_path / "out" / "feats.h5"),
                                              "--weights", str(tmp_path / "missing.pt"), "--quiet"])
    assert r.exit_code == 2 and "missing.pt" in r.output
    assert tree(tmp_path) == before  # no OUT folder, store, or parts folder
