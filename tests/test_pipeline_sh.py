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
    for word in ("extract-features", "compare-methods", "detect --threshold 0.2", "--dataset", "--force"):
        assert word in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--bogus"], "unknown argument --bogus"),
    (["--dataset", "thumos14"], "needs --videos and --annotations"),
    (["--dataset", "kinetics", "--videos", "x", "--annotations", "y"], "--dataset must be"),
    (["--repeats", "0"], "--repeats must be a positive integer"),
    (["--repeats", "two"], "--repeats must be a positive integer"),
])
def test_bad_arguments_exit_2(args, message, tmp_path):
    if not (ROOT / ".venv" / "bin" / "extract-features").exists():
        pytest.skip("pipeline.sh would first set up .venv")
    r = sh(*args, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and message in r.stderr
