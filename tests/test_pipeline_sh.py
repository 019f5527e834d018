"""pipeline.sh's command line (the full demo runs in minutes and is not part of the suite)."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def sh(*args):
    return subprocess.run(["bash", str(ROOT / "pipeline.sh"), *args], capture_output=True, text=True, timeout=120)


def test_help_documents_the_stages():
    r = sh("--help")
    assert r.returncode == 0
    for word in ("extract-features", "compare-methods", "detect --threshold 0.2", "--dataset", "--force",
                 "train-backbone", "--fine-tune"):
        assert word in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--bogus"], "unknown argument --bogus"),
    (["--dataset", "thumos14"], "needs --videos (or --features) and --annotations"),
    (["--features", "x"], "--features needs --dataset thumos14 or activitynet"),
    (["--steps", "0"], "--steps must be a positive integer"),
    (["--dataset", "kinetics", "--videos", "x", "--annotations", "y"], "--dataset must be"),
    (["--repeats", "0"], "--repeats must be a positive integer"),
    (["--repeats", "two"], "--repeats must be a positive integer"),
    (["--fine-tune", "--dataset", "thumos14", "--videos", "x", "--annotations", "y"],
     "--fine-tune trains on trimmed clips"),
    (["--fine-tune", "--dataset", "thumos14", "--features", "x", "--annotations", "y", "--trimmed-videos", "z"],
     "--fine-tune trains on trimmed clips"),
])
def test_bad_arguments_exit_2(args, message, tmp_path):
    if not (ROOT / ".venv" / "bin" / "extract-features").exists():
        pytest.skip("pipeline.sh would first set up .venv")
    r = sh(*args, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and message in r.stderr


def test_a_folder_made_with_another_recipe_is_refused_before_any_work(tmp_path):
    """A rerun into an --out whose features came from other weights or settings would reuse them: refused, with
    what to do, and nothing is trained or extracted."""
    if not (ROOT / ".venv" / "bin" / "extract-features").exists():
        pytest.skip("pipeline.sh would first set up .venv")
    out = tmp_path / "demo"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "annotations.json").write_text("{}")  # the videos stage counts as done
    (out / "features").mkdir()
    (out / "features" / "untrimmed.h5").write_bytes(b"")  # features of an unknown recipe
    r = sh("--out", str(out))
    assert r.returncode == 2 and "without a recorded recipe" in r.stderr and "--force" in r.stderr
    (out / "features" / "recipe.txt").write_text("weights=random fine-tune=0 fps=1\n")
    r = sh("--out", str(out))
    assert r.returncode == 2 and "made with another recipe (weights=random fine-tune=0" in r.stderr
    assert not (out / "backbone").exists() and not (out / "runs").exists()
    r = sh("--out", str(out), "--no-fine-tune", "--steps", "x")
    assert r.returncode == 2  # argument errors come first, whatever the folder holds


def test_feature_release_to_table(tmp_path):
    """pipeline.sh --features: a W-TALC-layout release of planted actions at real THUMOS14 times is imported,
    every method trained and compared, and the table printed next to the papers' numbers."""
    if not (ROOT / ".venv" / "bin" / "extract-features").exists():
        pytest.skip("pipeline.sh would first set up .venv")
    from test_releases import synthetic_wtalc_release

    rel, ann, _ = synthetic_wtalc_release(tmp_path, max_videos=6)
    out = tmp_path / "o"
    args = ["--dataset", "thumos14", "--features", str(rel), "--annotations", str(ann), "--exclude", "none",
            "--steps", "4", "--out", str(out)]
    r = subprocess.run(["bash", str(ROOT / "pipeline.sh"), *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "layout: wtalc" in r.stdout + r.stderr
    md = (out / "runs" / "table.md").read_text()
    for name in ("random scores", "two-stream", "srnet", "stpn", "untrimmednet-soft", "untrimmednet-hard"):
        assert f"| {name} |" in md
    published = (out / "runs" / "published.md").read_text()
    assert "| stpn | I3D (Kinetics) | measured |" in published
    # A rerun skips the import and reuses every run.
    r2 = subprocess.run(["bash", str(ROOT / "pipeline.sh"), *args], capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0 and "exists, skipped" in r2.stdout
