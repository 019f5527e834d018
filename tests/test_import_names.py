"""The installed package claims only the name `tsrnet`: a user's own `data` package or `train.py`
stays theirs, and this project's code never falls back on the bare folder names."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys
import tsrnet.data.format.store, tsrnet.data.cli, tsrnet.train.cli, tsrnet.train.trainer
import tsrnet.detect.cli, tsrnet.detect.evaluate, tsrnet.extract.cli, tsrnet.extract.cluster
import data, train
print(json.dumps({
    "ours": {m: sys.modules[m].__file__ for m in ("tsrnet.data.format.store", "tsrnet.train.cli",
                                                    "tsrnet.detect.cli", "tsrnet.extract.cli")},
    "feature_store": hasattr(tsrnet.data.format.store, "FeatureStore"),
    "user_data": [data.WHO, data.__file__],
    "user_train": [train.WHO, train.__file__],
    "bare": sorted(m for m in sys.modules if m.split(".")[0] in ("data", "train", "detect", "extract")),
}))
"""


@pytest.fixture()
def user_project(tmp_path):
    """A working directory with its own `data` package and `train` module, defining something else."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "__init__.py").write_text("WHO = 'user data'\n")
    (tmp_path / "train.py").write_text("WHO = 'user train'\n")
    return tmp_path


def test_tsrnet_modules_are_ours_next_to_user_data_and_train(user_project):
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=user_project, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    for name, file in got["ours"].items():
        path = Path(file).resolve()
        *pkg, mod = name.split(".")[1:]
        # This project's file: the repository's folder (editable install) or site-packages/tsrnet/<pkg>/.
        assert path.parent.name == pkg[-1] and path.stem == mod, (name, file)
        assert user_project not in path.parents, (name, file)
        assert path.read_bytes() == ROOT.joinpath(*pkg, f"{mod}.py").read_bytes(), (name, file)
    assert got["feature_store"]
    assert got["user_data"][0] == "user data"
    assert Path(got["user_data"][1]).resolve() == (user_project / "data" / "__init__.py").resolve()
    assert got["user_train"][0] == "user train"
    assert Path(got["user_train"][1]).resolve() == (user_project / "train.py").resolve()
    # Only the user's imports put bare names in sys.modules: the project's code imports none of them.
    assert got["bare"] == ["data", "train"]


def test_console_script_runs_next_to_user_data_and_train(user_project):
    script = Path(sys.executable).parent / "train-tsr"
    if not script.exists():
        pytest.skip("train-tsr is not installed next to this Python")
    r = subprocess.run([str(script), "--help"], cwd=user_project, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Usage: train-tsr" in r.stdout
