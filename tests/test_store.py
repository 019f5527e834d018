"""Feature store and annotation readers on bad input, and a store with a NaN row refused before training."""
import json
import shutil

import h5py
import numpy as np
import pytest

from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.format.batching import sample_rows
from tsrnet.data.core.errors import DataError
from tsrnet.data.format.store import FeatureStore, StoreWriter, as_float32
from tsrnet.train.cli import train_tsr
from conftest import FAST_TRAIN, invoke


def write(path, n=5, d=4, streams=("rgb", "flow")):
    with StoreWriter(path, d, streams) as w:
        w.add("v1", times=np.arange(n) + 0.5, fps=30, duration=n, n_frames=30 * n, labels=["a"],
              **{s: np.ones((n, d)) for s in streams})
    return path


def test_roundtrip(tmp_path):
    st = FeatureStore(write(tmp_path / "s.h5"))
    r = st.read("v1")
    assert r["rgb"].shape == (5, 4) and r["rgb"].dtype == np.float32
    assert st.labels("v1") == ["a"] and st.info("v1").n_rows == 5


def test_cache_serves_the_same_rows_from_memory(tmp_path, rng):
    p = tmp_path / "s.h5"
    x = {v: {s: rng.normal(size=(n, 4)) for s in ("rgb", "flow")} for v, n in (("v1", 6), ("v2", 9))}
    with StoreWriter(p, 4, ("rgb", "flow")) as w:
        for v, f in x.items():
            w.add(v, times=np.arange(len(f["rgb"])) / 2, fps=10, duration=5, n_frames=50, **f)
    plain = FeatureStore(p)
    # Room for v1 (times 6 x 8 bytes, two streams of 6 x 4 float16) and v2's times, not v2's rows.
    cached = FeatureStore(p, cache_bytes=6 * 8 + 2 * 6 * 4 * 2 + 9 * 8 + 9 * 4 * 2 - 1)
    rows = np.array([1, 4])
    for v in ("v1", "v2"):
        for r in (None, rows):
            a, b = plain.read(v, rows=r), cached.read(v, rows=r)
            for k in ("rgb", "flow", "times"):
                np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(cached.read("v1", ("flow",), rows)["flow"], x["v1"]["flow"][rows].astype("f2").astype("f4"))
    # v1 now comes from memory: reading it no longer touches the file; v2 (over budget) still does.
    cached._h5 = lambda: (_ for _ in ()).throw(AssertionError("file read"))
    np.testing.assert_array_equal(cached.read("v1")["rgb"], x["v1"]["rgb"].astype("f2").astype("f4"))
    with pytest.raises(AssertionError, match="file read"):
        cached.read("v2", ("rgb",))
    assert cached._cache[("v1", "rgb")].dtype == np.float16 and cached.read("v1")["rgb"].dtype == np.float32


def test_half_floats_convert_exactly():
    # Every float16 bit pattern (subnormals, infinities, NaNs included), strided as a row sample is: the fast
    # conversion must give numpy's exact values, and hand back float32 input as it is.
    every = np.arange(2**16, dtype=np.uint16).view(np.float16).reshape(256, 256)
    for x in (every, every[::3], every[:, 5:9]):
        got = as_float32(x)
        assert got.dtype == np.float32 and got.shape == x.shape
        np.testing.assert_array_equal(got.view(np.uint32)[np.isfinite(got)], x.astype(np.float32).view(np.uint32)[np.isfinite(got)])
        np.testing.assert_array_equal(np.isnan(got), np.isnan(x))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(x))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(x))
    f = np.ones((3, 2), np.float32)
    assert as_float32(f) is f


def test_missing_stream_is_refused(tmp_path):
    st = FeatureStore(write(tmp_path / "s.h5", streams=("rgb",)))
    with pytest.raises(DataError, match="missing: \\['flow'\\]"):
        st.require_streams(("rgb", "flow"))


def test_zero_rows_and_nan(tmp_path):
    p = write(tmp_path / "s.h5")
    with h5py.File(p, "a") as f:
        g = f["videos"].create_group("empty")
        for s in ("rgb", "flow"):
            g.create_dataset(s, shape=(0, 4), dtype="f4")
        g.create_dataset("times", shape=(0,), dtype="f8")
        f["videos/v1/rgb"][2, 1] = np.nan
    st = FeatureStore(p)
    with pytest.raises(DataError, match=r"video empty: video has 0 feature rows"):
        st.read("empty")
    with pytest.raises(DataError, match=r"s.h5: video v1: stream 'rgb' has 1 row\(s\) with NaN"):
        st.read("v1")


def test_writer_failure_leaves_nothing(tmp_path):
    p = tmp_path / "s.h5"
    with pytest.raises(DataError):
        with StoreWriter(p, 4) as w:
            w.add("v1", times=[0.5], fps=1, duration=1, n_frames=1, rgb=np.ones((1, 4)), flow=np.ones((1, 3)))
    assert list(tmp_path.iterdir()) == []


def test_not_a_store(tmp_path):
    (tmp_path / "x.h5").write_text("hello")
    with pytest.raises(DataError, match="cannot open as HDF5"):
        FeatureStore(tmp_path / "x.h5")


def test_sample_rows_strata():
    assert sample_rows(10, 20) is None
    idx = sample_rows(100, 10)
    np.testing.assert_array_equal(idx, np.arange(10) * 10 + 5)
    r = sample_rows(100, 10, np.random.default_rng(0))
    assert all(10 * i <= r[i] < 10 * (i + 1) for i in range(10))


def test_annotation_formats_agree(tmp_path):
    (tmp_path / "HighJump_val.txt").write_text("vid1  1.5 3.0\nvid2 0 2\n")
    (tmp_path / "Ambiguous_val.txt").write_text("vid1 5 6\n")
    (tmp_path / "a.csv").write_text("video,label,start,end,subset\nvid1,HighJump,1.5,3.0,validation\n"
                                    "vid2,HighJump,0,2,validation\n")
    a, b = load_annotations(tmp_path), load_annotations(tmp_path / "a.csv")
    a.write(tmp_path / "a.json")
    c = load_annotations(tmp_path / "a.json")
    for x in (a, b, c):
        assert x.subsets() == ["validation"] and x.classes() == ["HighJump"]
        assert [(s.start, s.end) for s in x["vid1"].segments] == [(1.5, 3.0)]


def test_bad_annotation_json(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"database": {"v": {"annotations": [{"label": "x",
                                                                                       "segment": ["a", 2]}]}}}))
    with pytest.raises(DataError, match="a.json: video v: segment start 'a' is not a number"):
        load_annotations(tmp_path / "a.json")


def test_nan_row_is_refused_through_the_cli(tiny, tmp_path):
    copy = tmp_path / "u.h5"
    shutil.copy(tiny["untrimmed"], copy)
    with h5py.File(copy, "a") as f:
        f["videos/synth_train_0003/flow"][2, 0] = np.nan
    r = invoke(train_tsr, [copy, "--annotations", tiny["annotations"], "--subset", "train", "--model", "srnet",
                           "--out", tmp_path / "run", *FAST_TRAIN])
    assert r.exit_code == 2, r.output
    assert "synth_train_0003" in r.output and "NaN" in r.output and "u.h5" in r.output
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
