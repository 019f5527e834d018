"""import-features on per-video .npy files: both folder layouts, the row times, bad and short entries."""
import json

import h5py
import numpy as np

from tsrnet.data.cli import import_features
from tsrnet.data.format.store import FeatureStore
from conftest import invoke


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
