"""import-features on each public feature release layout, built here in exactly the layout it ships in.

Every fixture plants one distinctive row per video at a known frame range; the test computes the time
that range is centred on from the release's published rate (written out here, independently of the
importer) and checks that the planted row lands there, with the labels, subsets, durations and
failures the release implies. The W-TALC tests use the real annotation folder.
"""
import io
import json
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tsrnet.data.cli import convert_annotations, import_features
from tsrnet.data.core.errors import DataError
from tsrnet.data.format.store import FeatureStore
from conftest import invoke

THUMOS = Path(__file__).resolve().parent / "fixtures" / "thumos14"
WTALC = THUMOS / "wtalc-annotations"
PLANT = 3.0  # value of the planted row (rgb +PLANT, flow -PLANT); every other value is in (-1, 1)


def rows_with_plant(rng, n, width, k, one_stream=False):
    x = rng.uniform(-0.9, 0.9, size=(n, width)).astype(np.float32)
    if k is not None:
        x[k] = PLANT
        if not one_stream:
            x[k, width // 2:] = -PLANT  # the second half of the columns is the flow stream
    return x


def planted_row(store, vid):
    r = store.read(vid)
    hits = np.flatnonzero((r["rgb"] == PLANT).all(axis=1))
    assert len(hits) == 1, (vid, hits)
    if "flow" in r:
        assert (r["flow"][hits[0]] == -PLANT).all()
    return int(hits[0]), r["times"]


def assert_documented(path):
    """Every root and per-video attribute of an imported store is named in docs/formats.md."""
    from test_docs import undocumented

    with h5py.File(path) as f:
        names = set(f.attrs)
        for g in f["videos"].values():
            names |= set(g.attrs) | set(g)
    assert undocumented(names) == []


def read_npy(name):
    return np.load(WTALC / f"{name}.npy", allow_pickle=True, encoding="bytes")


def text(x):
    return x.decode() if isinstance(x, bytes) else str(x)


# -- W-TALC ------------------------------------------------------------------------------------------
def wtalc_release(tmp_path, rng, dim=4, broken=None):
    """Thumos14reduced-I3D-JOINTFeatures.npy for the real annotation folder (copied beside it).

    Video i gets floor(duration * 25 / 16) rows (one per 16 frames at 25 fps), the row holding frame
    round(10 s * 25) planted. ``broken`` maps entry index -> replacement entry."""
    root = tmp_path / "wtalc"
    shutil.copytree(WTALC, root / "Thumos14reduced-Annotations")
    names = [text(v) for v in read_npy("videoname")]
    durations = np.ravel(read_npy("duration")).astype(float)
    entries, planted = [], {}
    for i, (v, d) in enumerate(zip(names, durations)):
        n = int(d * 25 // 16)
        k = int(round(min(10.0, d / 2) * 25)) // 16  # the row whose frames [16k, 16k + 16) hold that frame
        planted[v] = k
        entries.append(rows_with_plant(rng, n, 2 * dim, k))
    for i, e in (broken or {}).items():
        entries[i] = e
    arr = np.empty(len(entries), dtype=object)
    arr[:] = entries
    np.save(root / "Thumos14reduced-I3D-JOINTFeatures.npy", arr, allow_pickle=True)
    return root, names, durations, planted


def test_wtalc_real_annotations_time_axis_labels_subsets_failures(tmp_path, rng):
    names = [text(v) for v in read_npy("videoname")]
    empty, zeros = names.index("video_validation_0000051"), names.index("video_test_0000004")
    root, names, durations, planted = wtalc_release(
        tmp_path, rng, broken={empty: np.zeros((0,), dtype=np.float32), zeros: np.zeros((50, 8), np.float32)})
    out = tmp_path / "th14.h5"
    r = invoke(import_features, [out, "--features", root / "Thumos14reduced-I3D-JOINTFeatures.npy", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "layout: wtalc" in r.output
    assert "28 video(s) have video-level labels (labels_all) that differ" in r.output
    st = FeatureStore(out)
    assert len(st) == 410 and st.streams == ("rgb", "flow") and st.feature_dim == 4
    assert st.attrs["release"] == "wtalc" and "(16 k + 8) / 25" in st.attrs["time_convention"]
    assert_documented(out)
    failures = {f["video"]: f["reason"] for f in json.loads(st.attrs["failures"])}
    assert set(failures) == {"video_validation_0000051", "video_test_0000004"}
    assert "empty" in failures["video_validation_0000051"] and "all-zero" in failures["video_test_0000004"]
    assert "video_validation_0000051" in r.output and "left out" in r.output
    assert len(st.video_ids(subset="validation")) == 199 and len(st.video_ids(subset="test")) == 211
    labels_all = {text(v): sorted(text(x) for x in la) for v, la in zip(read_npy("videoname"), read_npy("labels_all"))}
    original = dict(zip(names, np.ravel(read_npy("original_fps")).astype(float)))
    for i, v in enumerate(names):
        if v in failures:
            continue
        k, t = planted_row(st, v)
        assert k == planted[v]
        np.testing.assert_allclose(t, (16 * np.arange(len(t)) + 8) / 25)  # centre of frames [16k, 16k+16) at 25 fps
        info = st.info(v)
        assert info.duration == pytest.approx(durations[i]) and info.fps == 25.0
        assert st.labels(v) == labels_all[v]
        with h5py.File(out) as f:
            assert f["videos"][v].attrs["native_fps"] == original[v]
    # Literal values: 10 s is frame 250, in row 15 (frames 240-255), centred on frame 248 = 9.92 s.
    k, t = planted_row(st, "video_test_0000006")
    assert k == 15 and t[k] == pytest.approx(9.92)
    assert st.labels("video_test_0001496") == ["FrisbeeCatch"]  # labels_all, not the CricketShot segments
    assert st.labels("video_validation_0000171") == ["CricketBowling"]
    # The 210-video protocol leaves out 270 and 1496 (1292 is not in W-TALC's set): 211 - 2 test videos.
    r = invoke(import_features, [tmp_path / "th14_210.h5", "--features", root, "--exclude", "thumos14-210", "--quiet"])
    assert r.exit_code == 0, r.output
    st210 = FeatureStore(tmp_path / "th14_210.h5")
    assert len(st210.video_ids(subset="test")) == 209
    assert json.loads(st210.attrs["excluded"]) == ["video_test_0000270", "video_test_0001496"]
    r = invoke(import_features, [tmp_path / "typo.h5", "--features", root, "--exclude", "video_test_00001496"])
    assert r.exit_code == 2 and "video_test_00001496" in r.output and not (tmp_path / "typo.h5").exists()


def small_wtalc_folder(path, durations, names=None, one_d=True):
    """An ActivityNet 1.2-style W-TALC annotation folder (1-D duration, no Ambiguous file)."""
    path.mkdir(parents=True)
    names = names or [f"v{i}" for i in range(len(durations))]
    np.save(path / "videoname.npy", np.array([n.encode() for n in names]))
    np.save(path / "subset.npy", np.array([b"training"] * (len(names) - 1) + [b"validation"]))
    d = np.array(durations, dtype=float)
    np.save(path / "duration.npy", d if one_d else d[:, None])
    obj = lambda xs: np.array(xs + [None], dtype=object)[:-1]  # noqa: E731  (an object array of lists)
    np.save(path / "labels.npy", obj([["Surfing"] for _ in names]), allow_pickle=True)
    np.save(path / "segments.npy", obj([[[1.0, 2.0]] for _ in names]), allow_pickle=True)
    np.save(path / "labels_all.npy", obj([["Surfing"] for _ in names]), allow_pickle=True)
    return names


def save_entries(path, entries):
    arr = np.empty(len(entries), dtype=object)
    arr[:] = entries
    np.save(path, arr, allow_pickle=True)


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's pickle wrote for numpy arrays: every string (dtype codes and the arrays'
    raw bytes alike) as a Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), which Python 3 must decode."""

    def save_py2_str(self, obj):
        raw = obj.encode("ascii") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + len(raw).to_bytes(4, "little") + raw)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def save_py2_entries(path, entries):
    """An .npy object array as Python 2 wrote it (W-TALC's feature files)."""
    arr = np.empty(len(entries), dtype=object)
    arr[:] = entries
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(arr)
    data = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")  # Python 2's module name
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (len(entries),)})
        f.write(data)


def test_wtalc_activitynet_variant_and_bad_input(tmp_path, rng):
    ann = tmp_path / "rel" / "ActivityNet1.2-Annotations"
    small_wtalc_folder(ann, [32.0, 16.0, 8.0])  # 50, 25 and 12.5 rows at 16 frames / 25 fps
    feat = tmp_path / "rel" / "ActivityNet1.2-I3D-JOINTFeatures.npy"
    good = [rows_with_plant(rng, 50, 6, 3), rows_with_plant(rng, 25, 6, 0), rows_with_plant(rng, 12, 6, 11)]
    save_py2_entries(feat, good)
    with pytest.raises(UnicodeError, match="encoding"):  # a Python 2 pickle: numpy's default ASCII decoding fails on it
        np.load(feat, allow_pickle=True)
    r = invoke(import_features, [tmp_path / "ok.h5", "--layout", "wtalc", "--features", feat])
    assert r.exit_code == 0, r.output
    st = FeatureStore(tmp_path / "ok.h5")
    assert st.subsets() == ["training", "validation"] and st.info("v0").duration == 32.0
    assert planted_row(st, "v2")[1][11] == pytest.approx((16 * 11 + 8) / 25)
    np.testing.assert_allclose(st.read("v1")["flow"], good[1][:, 3:].astype(np.float16))

    def refused(entries, needle, *extra, video=None):
        save_entries(feat, entries)
        out = tmp_path / "bad.h5"
        before = sorted(p.name for p in tmp_path.iterdir())
        r = invoke(import_features, [out, "--layout", "wtalc", "--features", feat, *extra])
        assert r.exit_code == 2, r.output
        assert needle in r.output and (video is None or f"video {video}" in r.output), r.output
        # one line, and nothing written: no store, no temporary file beside it
        assert len(r.output.strip().splitlines()) == 1 and sorted(p.name for p in tmp_path.iterdir()) == before

    refused(good[:2], "has 2 entries but")  # entry count differs from videoname.npy
    nan = good[1].copy()
    nan[4, 2] = np.nan
    refused([good[0], nan, good[2]], "NaN", video="v1")
    refused([good[0], good[1][:5], good[2]], "5 rows, but its duration 16.00 s", video="v1")  # truncated entry
    refused([good[0], good[1][:5], good[2]], "--skip-bad leaves such entries out", video="v1")  # says the way out
    refused([good[0], good[1], good[2][:, :4]], "columns", video=None)  # an entry of another width
    # --skip-bad records the bad entry as a failure and imports the rest.
    save_entries(feat, [good[0], nan, good[2]])
    r = invoke(import_features, [tmp_path / "skip.h5", "--layout", "wtalc", "--features", feat, "--skip-bad"])
    assert r.exit_code == 0, r.output
    st = FeatureStore(tmp_path / "skip.h5")
    assert st.video_ids() == ["v0", "v2"] and "NaN" in json.loads(st.attrs["failures"])[0]["reason"]
    # --strict refuses a release's empty entries instead of leaving them out.
    save_entries(feat, [good[0], np.zeros((0,)), good[2]])
    r = invoke(import_features, [tmp_path / "strict.h5", "--layout", "wtalc", "--features", feat, "--strict"])
    assert r.exit_code == 2 and "empty entry" in r.output and not (tmp_path / "strict.h5").exists()


def test_wtalc_zero_duration_is_refused(tmp_path, rng):
    ann = tmp_path / "rel" / "X-Annotations"
    small_wtalc_folder(ann, [8.0, 0.0], one_d=False)
    feat = tmp_path / "rel" / "X-I3D-JOINTFeatures.npy"
    save_entries(feat, [rows_with_plant(rng, 12, 4, 1), rows_with_plant(rng, 3, 4, 1)])
    r = invoke(import_features, [tmp_path / "o.h5", "--layout", "wtalc", "--features", feat])
    assert r.exit_code == 2 and "video v1" in r.output and "duration 0.0" in r.output
    assert not (tmp_path / "o.h5").exists()


# -- BaS-Net and ACM-Net -----------------------------------------------------------------------------
def thumos_gt(videos, durations=False):
    db = {}
    for v, (subset, n, label) in videos.items():
        e = {"subset": subset, "annotations": [{"label": label, "segment": ["1.5", "3.0"]}]}
        if durations:
            e["duration"] = n * 16 / 25 + 0.3
        db[v] = e
    return {"database": db}


VIDEOS = {"video_validation_0000051": ("train", 40, "Billiards"), "video_validation_0000052": ("train", 30, "Diving"),
          "video_test_0000004": ("test", 35, "HighJump")}


def test_basnet_layout(tmp_path, rng):
    root = tmp_path / "THUMOS14"
    planted = {}
    for v, (s, n, _) in VIDEOS.items():
        k = int(round(10.0 * 25)) // 16  # frame 250: row 15
        planted[v] = k
        x = rows_with_plant(rng, n, 2 * 5, k)
        for stream, cols, extra in (("rgb", x[:, :5], 0), ("flow", x[:, 5:], 1)):  # flow one row longer
            d = root / "features" / s / stream
            d.mkdir(parents=True, exist_ok=True)
            np.save(d / f"{v}.npy", np.concatenate([cols, rng.uniform(-1, 1, (extra, 5)).astype(np.float32)]))
    np.save(root / "features" / "test" / "rgb" / "video_test_0000999.npy", np.ones((3, 5)))  # not in the split
    (root / "gt.json").write_text(json.dumps(thumos_gt(VIDEOS)))
    for s in ("train", "test"):
        (root / f"split_{s}.txt").write_text("".join(f"{v}\n" for v, x in VIDEOS.items() if x[0] == s))
    r = invoke(import_features, [tmp_path / "b.h5", "--features", root])
    assert r.exit_code == 0, r.output
    assert "layout: basnet" in r.output and "1 feature file(s) not listed in split_" in r.output
    st = FeatureStore(tmp_path / "b.h5")
    assert st.video_ids() == sorted(VIDEOS) and st.feature_dim == 5
    for v, (s, n, label) in VIDEOS.items():
        k, t = planted_row(st, v)
        assert k == planted[v] == 15 and t[k] == pytest.approx(9.92)
        assert len(t) == n  # the common prefix of the two streams
        info = st.info(v)
        assert info.subset == s and st.labels(v) == [label]
        assert info.duration == pytest.approx(n * 16 / 25)  # no durations in gt.json: what the rows cover
    # A video whose gt.json subset contradicts its folder is refused.
    gt = thumos_gt(VIDEOS)
    gt["database"]["video_test_0000004"]["subset"] = "train"
    (root / "gt.json").write_text(json.dumps(gt))
    r = invoke(import_features, [tmp_path / "c.h5", "--layout", "basnet", "--features", root / "features"])
    assert r.exit_code == 2 and "video video_test_0000004" in r.output and "subset" in r.output


def test_acmnet_layout(tmp_path, rng):
    root = tmp_path / "THUMOS14"
    for v, (s, n, _) in VIDEOS.items():
        (root / s).mkdir(parents=True, exist_ok=True)
        x = rows_with_plant(rng, n, 2 * 6, 7)
        np.save(root / s / f"{v}.npy", x)
    (root / "gt.json").write_text(json.dumps(thumos_gt(VIDEOS, durations=True)))
    np.save(root / "test" / "video_test_0001292.npy", rows_with_plant(rng, 9, 12, 1))  # not in gt.json
    r = invoke(import_features, [tmp_path / "a.h5", "--features", root])
    assert r.exit_code == 0, r.output
    assert "layout: acmnet" in r.output and "1 feature file(s) not listed" in r.output
    st = FeatureStore(tmp_path / "a.h5")
    assert st.video_ids() == sorted(VIDEOS)
    for v, (s, n, label) in VIDEOS.items():
        raw = np.load(root / s / f"{v}.npy")
        got = st.read(v)
        np.testing.assert_allclose(got["rgb"], raw[:, :6].astype(np.float16), rtol=1e-3)
        np.testing.assert_allclose(got["flow"], raw[:, 6:].astype(np.float16), rtol=1e-3)
        k, t = planted_row(st, v)
        assert k == 7 and t[k] == pytest.approx((16 * 7 + 8) / 25)
        assert st.info(v).duration == pytest.approx(n * 16 / 25 + 0.3) and st.info(v).subset == s


# -- ActionFormer ------------------------------------------------------------------------------------
def test_actionformer_thumos_i3d(tmp_path, rng):
    root = tmp_path / "thumos"
    (root / "i3d_features").mkdir(parents=True)
    (root / "annotations").mkdir()
    # 16-frame windows every 4 frames at the video's own rate: (frames - 16) / 4 + 1 rows.
    spec = {"video_validation_0000051": ("Validation", 30.0, 20.0, "Billiards"),
            "video_test_0000004": ("Test", 25.0, 12.0, "HighJump"),
            "video_test_0000006": ("Test", 30.0, 9.0, "Diving")}  # no feature file
    db, planted = {}, {}
    for v, (subset, fps, dur, label) in spec.items():
        db[v] = {"subset": subset, "duration": dur, "fps": fps,
                 "annotations": [{"label": label, "segment": [2.0, 4.0], "segment(frames)": [2 * fps, 4 * fps],
                                  "label_id": 3}]}
        if v == "video_test_0000006":
            continue
        n = int((dur * fps - 16) // 4 + 1)
        k = int(round(5.0 * fps) - 8) // 4  # window centred on the frame at 5 s
        planted[v] = (k, fps)
        np.save(root / "i3d_features" / f"{v}.npy", rows_with_plant(rng, n, 2048, k))
    (root / "annotations" / "thumos14.json").write_text(json.dumps({"database": db}))
    r = invoke(import_features, [tmp_path / "af.h5", "--features", root / "i3d_features"])
    assert r.exit_code == 0, r.output
    assert "layout: actionformer" in r.output
    st = FeatureStore(tmp_path / "af.h5")
    assert st.streams == ("rgb", "flow") and st.feature_dim == 1024
    assert st.attrs["release"] == "actionformer-i3d"
    for v, (k0, fps) in planted.items():
        k, t = planted_row(st, v)
        # frames [4k, 4k + 16) are centred on frame 4k + 8, within half a stride of the frame at 5 s
        assert k == k0 and t[k] == pytest.approx((4 * k0 + 8) / fps) and abs(t[k] - 5.0) <= 2 / fps
        np.testing.assert_allclose(t, (4 * np.arange(len(t)) + 8) / fps)
        assert st.info(v).fps == fps
    assert st.info("video_validation_0000051").subset == "validation" and st.info("video_test_0000004").subset == "test"
    assert st.labels("video_test_0000004") == ["HighJump"]
    assert [f["video"] for f in json.loads(st.attrs["failures"])] == ["video_test_0000006"]


def test_actionformer_tsp_is_a_one_stream_store(tmp_path, rng):
    root = tmp_path / "anet_1.3"
    (root / "tsp_features").mkdir(parents=True)
    (root / "annotations").mkdir()
    db = {"abc": {"subset": "training", "duration": 30.0, "fps": 29.97,
                  "annotations": [{"label": "Surfing", "segment": [3.0, 9.0], "label_id": 0}]},
          "xyz": {"subset": "validation", "duration": 20.0, "fps": 25.0,
                  "annotations": [{"label": "Skiing", "segment": [1.0, 2.0], "label_id": 1}]}}
    (root / "annotations" / "anet1.3_tsp_filtered.json").write_text(json.dumps({"database": db}))
    for v, e in db.items():
        n = int(e["duration"] * 15 // 16)  # 16-frame windows every 16 frames at 15 fps
        np.save(root / "tsp_features" / f"v_{v}.npy", rows_with_plant(rng, n, 512, 9, one_stream=True))
    r = invoke(import_features, [tmp_path / "tsp.h5", "--layout", "actionformer", "--features", root])
    assert r.exit_code == 0, r.output
    st = FeatureStore(tmp_path / "tsp.h5")
    assert st.streams == ("rgb",) and st.feature_dim == 512 and st.video_ids() == ["abc", "xyz"]
    assert_documented(tmp_path / "tsp.h5")
    x = st.read("abc")
    assert set(x) == {"rgb", "times"}
    k, t = planted_row(st, "abc")
    assert k == 9 and t[k] == pytest.approx((16 * 9 + 8) / 15)
    assert st.labels("xyz") == ["Skiing"] and st.info("xyz").subset == "validation"
    with pytest.raises(DataError, match="missing: \\['flow'\\]"):
        st.require_streams(("rgb", "flow"))


# -- BSN / BMN csv_mean_100 --------------------------------------------------------------------------
def test_bsn_csv_mean_100(tmp_path, rng):
    feat = tmp_path / "activitynet_feature_cuhk" / "csv_mean_100"
    ann = tmp_path / "activitynet_annotations"
    feat.mkdir(parents=True)
    ann.mkdir()
    videos = {"v_aaa": ("training", 50.0, 1500, 1488, 30.0, [("Surfing", 5.0, 20.0)]),
              "v_bbb": ("validation", 40.0, 1000, 992, 25.0, [("Skiing", 1.0, 2.0)]),
              "v_ccc": ("testing", 30.0, 900, 896, 30.0, [])}
    anno, info = {}, ["video,numFrame,seconds,fps,rfps,subset,featureFrame"]
    for v, (subset, dur, df, ff, fps, segs) in videos.items():
        anno[v] = {"duration_second": dur, "duration_frame": df, "feature_frame": ff,
                   "annotations": [{"segment": [s, e], "label": lab} for lab, s, e in segs]}
        info.append(f"{v},{df},{dur},{fps},{fps - 0.02},{subset},{ff}")
        x = rows_with_plant(rng, 100, 400, 20).astype(np.float64)
        x[20, :200], x[20, 200:] = PLANT, -PLANT
        header = ",".join(f"f{i}" for i in range(400))
        np.savetxt(feat / f"{v}.csv", x, delimiter=",", header=header, comments="", fmt="%.6f")
    (ann / "anet_anno_action.json").write_text(json.dumps(anno))
    (ann / "video_info_new.csv").write_text("\n".join(info) + "\n")
    r = invoke(import_features, [tmp_path / "bsn.h5", "--features", feat])
    assert r.exit_code == 0, r.output
    assert "layout: bsn" in r.output
    st = FeatureStore(tmp_path / "bsn.h5")
    assert st.feature_dim == 200 and st.attrs["release"] == "bsn"
    assert_documented(tmp_path / "bsn.h5")
    for v, (subset, dur, df, ff, fps, segs) in videos.items():
        span = ff / df * dur  # the seconds the 16-frame snippets cover
        k, t = planted_row(st, v)
        assert k == 20 and t[k] == pytest.approx(20.5 / 100 * span)
        np.testing.assert_allclose(t, (np.arange(100) + 0.5) / 100 * span)
        assert st.info(v).duration == dur and st.info(v).subset == subset and st.info(v).n_frames == df
    assert st.labels("v_aaa") == ["Surfing"] and st.labels("v_ccc") is None  # testing labels are withheld
    out = tmp_path / "anet.json"
    r = invoke(convert_annotations, [ann, out])
    assert r.exit_code == 0 and "BSN" in r.output, r.output
    db = json.loads(out.read_text())["database"]
    assert db["v_bbb"] == {"subset": "validation", "duration": 40.0,
                           "annotations": [{"label": "Skiing", "segment": [1.0, 2.0]}]}
    from tsrnet.data.format.ground_truth import load_annotations
    for path in (ann / "anet_anno_action.json", ann / "video_info_new.csv"):  # either file finds the other
        a = load_annotations(path)
        assert a["v_ccc"].subset == "testing" and a["v_aaa"].labels == ["Surfing"] and a["v_aaa"].duration == 50.0


# -- auto-detection and the generic layout -----------------------------------------------------------
def test_auto_detects_the_generic_npy_folders(tmp_path, rng):
    for s in ("rgb", "flow"):
        (tmp_path / "rel" / s).mkdir(parents=True)
        np.save(tmp_path / "rel" / s / "v1.npy", rows_with_plant(rng, 6, 6, 2)[:, :3])
    r = invoke(import_features, [tmp_path / "o.h5", "--features", tmp_path / "rel", "--fps", 10,
                                 "--frames-per-row", 5])
    assert r.exit_code == 0 and "layout: npy (rgb/ and flow/ folders" in r.output, r.output
    t = FeatureStore(tmp_path / "o.h5").read("v1")["times"]
    np.testing.assert_allclose(t, (5 * np.arange(6) + 2.5) / 10)
    # Without the rate, a folder that is no known release is refused rather than timed by a guess.
    r = invoke(import_features, [tmp_path / "g.h5", "--features", tmp_path / "rel"])
    assert r.exit_code == 2 and "--fps and --frames-per-row" in r.output and not (tmp_path / "g.h5").exists()
    # ActionFormer's i3d_features/ without its annotation file is recognised, and asks for the file.
    (tmp_path / "i3d_features").mkdir()
    np.save(tmp_path / "i3d_features" / "v1.npy", rows_with_plant(rng, 6, 2048, 2))
    r = invoke(import_features, [tmp_path / "i.h5", "--features", tmp_path / "i3d_features"])
    assert r.exit_code == 2 and "layout: actionformer" in r.output and "pass --annotations" in r.output
    (tmp_path / "empty").mkdir()
    r = invoke(import_features, [tmp_path / "e.h5", "--features", tmp_path / "empty"])
    assert r.exit_code == 2 and "no known feature release layout" in r.output


# -- convert-annotations and the 210-video protocol ----------------------------------------------------
def official(cls, suffix="test"):
    """The official per-class file, parsed here: {video: [(start, end), ...]}."""
    out = {}
    for line in (THUMOS / "annotations" / f"{cls}_{suffix}.txt").read_text().splitlines():
        if line.strip():
            v, s, e = line.split()
            out.setdefault(v, []).append((float(s), float(e)))
    return out


def test_convert_wtalc_folder_against_the_official_files(tmp_path):
    out = tmp_path / "wtalc.json"
    r = invoke(convert_annotations, [WTALC, out])
    assert r.exit_code == 0, r.output
    assert "W-TALC" in r.output and "28 videos' video-level labels differ" in r.output
    doc = json.loads(out.read_text())
    db = doc["database"]
    assert len(db) == 412
    for cls, vid in (("HighJump", "video_test_0000188"), ("Billiards", "video_validation_0000051"),
                     ("CricketShot", "video_test_0001496")):
        suffix = "val" if "validation" in vid else "test"
        want = official(cls, suffix)[vid]
        got = [tuple(a["segment"]) for a in db[vid]["annotations"] if a["label"] == cls]
        np.testing.assert_allclose(sorted(got), sorted(want))
    assert db["video_test_0001496"]["video_labels"] == ["FrisbeeCatch"]
    # The folder's Ambiguous_test.txt, parsed independently, incl. video_test_0001292 (only ambiguous spans).
    amb = official("Ambiguous")
    assert {v: [tuple(s) for s in spans] for v, spans in doc["ambiguous"].items()} == amb
    assert "video_test_0001292" in doc["ambiguous"] and "video_test_0001292" not in db
    from tsrnet.data.format.ground_truth import load_annotations
    back = load_annotations(out)
    assert back["video_test_0001496"].labels == ["FrisbeeCatch"] and back.ambiguous == load_annotations(WTALC).ambiguous


def test_210_video_preset_matches_the_public_gt_json(tmp_path):
    out = tmp_path / "th14_210.json"
    r = invoke(convert_annotations, [THUMOS / "annotations", out, "--exclude", "thumos14-210"])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    test = {v for v, e in doc["database"].items() if e["subset"] == "test"}
    public = {v for v, e in json.loads((THUMOS / "gt.json").read_text())["database"].items() if e["subset"] == "test"}
    assert test == public and len(test) == 210
    assert doc["protocol"]["name"] == "thumos14-210"
    # W-TALC's own set has 212 test videos (1292 absent); the preset takes it to the same 210.
    r = invoke(convert_annotations, [WTALC, tmp_path / "w.json", "--exclude", "thumos14-210", "--no-ambiguous"])
    assert r.exit_code == 0, r.output
    w = json.loads((tmp_path / "w.json").read_text())
    assert {v for v, e in w["database"].items() if e["subset"] == "test"} == public and "ambiguous" not in w
    r = invoke(convert_annotations, [WTALC, tmp_path / "x.json", "--exclude", "video_test_9999999"])
    assert r.exit_code == 2 and "video_test_9999999" in r.output


def test_convert_actionformer_and_gt_json_variants(tmp_path):
    db = {"video_validation_0000051": {"subset": "Validation", "duration": 169.8, "fps": 30.0,
                                       "annotations": [{"label": "Billiards", "segment": [67.5, 75.9],
                                                        "segment(frames)": [2025, 2277], "label_id": 2}]}}
    (tmp_path / "thumos14.json").write_text(json.dumps({"database": db}))
    r = invoke(convert_annotations, [tmp_path / "thumos14.json", tmp_path / "a.json"])
    assert r.exit_code == 0 and "ActionFormer" in r.output, r.output
    e = json.loads((tmp_path / "a.json").read_text())["database"]["video_validation_0000051"]
    assert e == {"subset": "validation", "duration": 169.8,
                 "annotations": [{"label": "Billiards", "segment": [67.5, 75.9]}]}
    r = invoke(convert_annotations, [THUMOS / "gt.json", tmp_path / "g.json"])  # BaS-Net's, string bounds
    assert r.exit_code == 0, r.output
    g = json.loads((tmp_path / "g.json").read_text())["database"]["video_test_0000896"]["annotations"][0]
    assert g == {"label": "HighJump", "segment": [18.6, 24.8]}


# -- end to end: a W-TALC release of planted actions at THUMOS14's real times ---------------------------
def synthetic_wtalc_release(tmp_path, max_videos=5, seed=5):
    """Planted actions at the real THUMOS14 segment times (make-synthetic-features --layout on the real
    W-TALC folder), written out as a W-TALC release (``--release wtalc``): (release folder, its annotation
    folder, the direct generation's paths)."""
    from tsrnet.data.importers.releases.wtalc import export_release
    from tsrnet.data.generators.synthetic_layout import LayoutSpec, generate_from_layout

    syn = generate_from_layout(tmp_path / "syn", LayoutSpec(layout=str(WTALC), max_videos=max_videos, dim=16,
                                                            trimmed_per_class=1, seed=seed))
    feat, ann = export_release(syn["untrimmed"], WTALC, tmp_path / "release")
    # The entries are the store's rows, in the annotation folder's order.
    names = [text(v) for v in np.load(ann / "videoname.npy", allow_pickle=True, encoding="bytes")]
    entries = np.load(feat, allow_pickle=True)
    direct = FeatureStore(syn["untrimmed"])
    assert sorted(names) == sorted(direct.video_ids()) and len(entries) == len(names)
    np.testing.assert_array_equal(entries[0][:, :16], direct.read(names[0])["rgb"])
    return feat.parent, ann, syn


def test_wtalc_release_trains_and_detects_like_the_same_features_stored_directly(tmp_path):
    """The synthetic W-TALC release imported must reproduce the direct store row for row and time for time,
    and the same training gives the same detection mAP."""
    from tsrnet.detect.cli import detect
    from tsrnet.train.cli import train_tsr

    rel, ann, syn = synthetic_wtalc_release(tmp_path)
    direct = FeatureStore(syn["untrimmed"])
    out = tmp_path / "imported.h5"
    r = invoke(import_features, [out, "--features", rel, "--quiet"])
    assert r.exit_code == 0 and "layout: wtalc" in r.output, r.output
    imported = FeatureStore(out)
    assert imported.video_ids() == direct.video_ids()
    for v in direct.video_ids():
        a, b = imported.read(v), direct.read(v)
        for k in ("rgb", "flow"):
            np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_allclose(a["times"], b["times"], rtol=0, atol=1e-9)
        assert imported.info(v).duration == pytest.approx(direct.info(v).duration)
        assert imported.info(v).subset == direct.info(v).subset
    fast = ["--steps", "6", "--pretrain-steps", "2", "--quiet", "--hidden-dim", "16", "--attention-dim", "8",
            "--model", "srnet", "--seed", "1", "--annotations", syn["annotations"], "--subset", "validation"]
    maps = []
    for name, store in (("direct", syn["untrimmed"]), ("imported", out)):
        r = invoke(train_tsr, [store, "--out", tmp_path / name, *fast])
        assert r.exit_code == 0, r.output
        r = invoke(detect, ["--run", tmp_path / name, "--quiet"])
        assert r.exit_code == 0, r.output
        maps.append(json.loads((tmp_path / name / "detections.eval.json").read_text())["mAP"])
    assert maps[0]["0.10"] > 0.05 and maps[0] == pytest.approx(maps[1], abs=1e-6)


def test_ambiguous_overlap_follows_the_official_rule():
    from tsrnet.data.format.ground_truth import load_annotations
    from tsrnet.data.format.protocols import overlaps_ambiguous

    amb = load_annotations(THUMOS / "annotations").ambiguous
    # video_test_0000278 has ambiguous spans [0.0, 1.4] and [95.7, 97.2] (Ambiguous_test.txt).
    videos = ["video_test_0000278"] * 4 + ["video_test_0000004"]
    starts, ends = [1.0, 1.4, 96.0, 50.0, 0.0], [2.0, 3.0, 96.5, 60.0, 1.4]
    # inside/overlapping -> True; touching at 1.4 only -> False; elsewhere or another video -> False
    assert overlaps_ambiguous(videos, starts, ends, amb).tolist() == [True, False, True, False, False]
