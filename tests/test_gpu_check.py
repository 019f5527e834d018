"""benchmarks/gpu-check.sh on a machine without a GPU: the GPU tests run and skip, every GPU benchmark is
reported as skipped, and the summary has one line per figure."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs its benchmarks (minutes)")
def test_without_a_gpu_every_gpu_figure_is_skipped(tmp_path):
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu-check.sh"), str(tmp_path)], capture_output=True,
                       text=True, timeout=600, env={**os.environ, "PY": sys.executable})
    assert r.returncode == 0, r.stderr
    summary = r.stdout.split("== gpu-check summary (no CUDA device)\n")[1].strip().splitlines()
    assert summary[0] == "GPU tests: 3 skipped" or summary[0].startswith("GPU tests: 3 skipped in"), summary
    assert [line.split(":")[0] for line in summary[1:]] == [
        "TV-L1 pairs/s at 340x256, batch 32", "extraction on a 60 s clip", "trainer step / raw matmuls",
        "detect on videos, end to end"]
    assert all(line.endswith("skipped (no CUDA device)") for line in summary[1:])
    assert (tmp_path / "tests.log").exists()
