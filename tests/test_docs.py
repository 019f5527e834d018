"""docs/formats.md describes what the code writes: every key of a real run's files is in it."""
import json
import re
from pathlib import Path

import h5py
import torch
from click.testing import CliRunner

from tsrnet.detect.cli import detect
from tsrnet.train.cli import train_tsr
from conftest import FAST_TRAIN

DOC = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text()
# What the document shows as code: fenced blocks and `inline` spans.
CODE = " ".join(re.findall(r"```.*?```", DOC, flags=re.S) + re.findall(r"`([^`\n]+)`", DOC))


def undocumented(names) -> list[str]:
    """The names that docs/formats.md never shows as code."""
    return sorted(n for n in names if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", CODE))


def test_the_check_notices_a_missing_name():
    assert undocumented(["train_ids", "epochs_done", "no_such_key", "train"]) == ["no_such_key"]


def test_every_key_a_real_run_writes_is_documented(tiny, tmp_path):
    run = tmp_path / "run"
    r = CliRunner().invoke(train_tsr, [str(tiny["untrimmed"]), "--annotations", str(tiny["annotations"]),
                                       "--subset", "train", "--trimmed", str(tiny["trimmed"]), "--out", str(run),
                                       *FAST_TRAIN])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(detect, ["--run", str(run), "--quiet"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "classes.json", "config.json",
                                                      "detections.eval.json", "detections.json", "loss_log.csv",
                                                      "run.json"]
    keys = {
        "run.json": json.loads((run / "run.json").read_text()),
        "config.json": json.loads((run / "config.json").read_text()),
        "checkpoint.pt": torch.load(run / "checkpoint.pt", weights_only=False),
        "detections.json": json.loads((run / "detections.json").read_text()),
        "detections.eval.json": json.loads((run / "detections.eval.json").read_text()),
    }
    for name, obj in keys.items():
        assert f"`{name}`" in DOC or name.replace("detections", "OUT") in DOC, name
        assert undocumented(obj) == [], name
    assert undocumented(keys["detections.eval.json"]["classification"]) == []
    with h5py.File(tiny["untrimmed"]) as f:
        vid = next(iter(f["videos"]))
        assert undocumented(["format", "version", "streams", "feature_dim"]) == []
        assert undocumented([*f["videos"][vid], *f["videos"][vid].attrs]) == []
