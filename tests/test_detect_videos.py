"""``detect VIDEO... --run RUN``: videos extracted with the recipe of the run's store, cached beside the run, then
scored as the store's videos are; refused in one line when the recipe cannot be followed. On the quick start's
videos and run (tests/test_quick_start.py)."""
import functools
import json
import os
import shutil

import h5py
import numpy as np
import pytest
import torch

from tsrnet.data.format.store import FeatureStore
from tsrnet.detect.cli import detect
from tsrnet.extract import resnet
from tsrnet.extract.cli import extract_features
from test_quick_start import CHEAP_EXTRACT, quick_start, run  # noqa: F401 - quick_start is the module fixture


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    # As the quick start extracted: one torch thread (the same arithmetic), the seeded networks computed once.
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    monkeypatch.setattr(resnet, "random_state", functools.lru_cache(resnet.random_state))


def test_help_names_the_two_kinds_of_input():
    r = run(detect, ["--help"])
    assert "[FEATURES | VIDEO...]" in r.output and "--features" in r.output


def _results(path):
    return json.loads(path.read_text())["results"]


def _test_video(qs, i=0):
    return qs["root"] / "videos" / f"{qs['ann'].video_ids('test')[i]}.mp4"


def test_a_video_gives_the_detections_of_extract_features_then_detect(quick_start, tmp_path):
    """The quick start extracted its videos with extract-features and detected; the same video given to
    detect directly gives the same features and the same detections, to the last digit."""
    video = _test_video(quick_start)
    out = tmp_path / "det.json"
    r = run(detect, [video, "--run", quick_start["run"], "--threshold", "0.2", "--quiet", "--out", out])
    assert r.exit_code == 0, r.output
    cache = quick_start["run"] / "videos.h5"
    assert "detections in 1 videos" in r.output
    with FeatureStore(cache) as got, FeatureStore(quick_start["out"]) as want:
        assert got.video_ids() == [video.stem]
        a, b = got.read(video.stem), want.read(video.stem)
        for k in ("rgb", "flow", "times"):
            np.testing.assert_array_equal(a[k], b[k])
        assert json.loads(got.attrs["extraction"]) == json.loads(want.attrs["extraction"])
    expected = _results(quick_start["run"] / "detections.json")[video.stem]
    assert _results(out) == {video.stem: expected}


def _detect_copy(video, run_dir, cache, out):
    r = run(detect, [video, "--run", run_dir, "--threshold", "0.2", "--quiet", "--features", cache, "--out", out])
    assert r.exit_code == 0, r.output
    return r.output


def test_a_second_call_extracts_nothing_and_an_edited_video_is_extracted_again(quick_start, tmp_path):
    first, second = _test_video(quick_start, 0), _test_video(quick_start, 1)
    (tmp_path / "v").mkdir()
    video = tmp_path / "v" / second.name
    shutil.copy2(second, video)
    cache, out = tmp_path / "cache.h5", tmp_path / "det.json"
    assert "1 extracted" in _detect_copy(video, quick_start["run"], cache, out)
    detections = _results(out)
    stamp = cache.stat().st_mtime_ns

    output = _detect_copy(video, quick_start["run"], cache, out)
    assert "already extracted" in output and "extracted, " not in output
    assert cache.stat().st_mtime_ns == stamp  # not even rewritten
    assert _results(out) == detections

    os.utime(video, ns=(stamp, stamp + 10**9))  # touched, not edited: the content's hash says it is the same
    assert "already extracted" in _detect_copy(video, quick_start["run"], cache, out)

    shutil.copy(first, video)  # same name, other content: extracted again, and scored as the other video
    output = _detect_copy(video, quick_start["run"], cache, out)
    assert "changed on disk" in output and "1 extracted" in output
    assert _results(out) == {video.stem: _results(quick_start["run"] / "detections.json")[first.stem]}
    with FeatureStore(cache) as got, FeatureStore(quick_start["out"]) as want:
        np.testing.assert_array_equal(got.read(video.stem)["rgb"], want.read(first.stem)["rgb"])


def test_extract_features_redoes_an_edited_video_and_skips_the_others(quick_start, tmp_path):
    src = tmp_path / "v"
    src.mkdir()
    # Named to sort before the base-*.h5 a resumed store keeps in OUT.parts: the redone part must win.
    shutil.copy2(_test_video(quick_start, 0), src / "a.mp4")
    shutil.copy2(_test_video(quick_start, 1), src / "b.mp4")
    a, b = src / "a.mp4", src / "b.mp4"
    store = tmp_path / "s.h5"
    r = run(extract_features, [src, store, *CHEAP_EXTRACT])
    assert r.exit_code == 0 and "2 extracted" in r.output, r.output
    with h5py.File(store) as f:
        recorded = json.loads(f["videos"][a.stem].attrs["source_file"])
    assert recorded["size"] == a.stat().st_size and len(recorded["sha256_ends"]) == 64
    shutil.copy(b, a)
    r = run(extract_features, [src, store, *CHEAP_EXTRACT])
    assert r.exit_code == 0 and "1 extracted, 1 skipped" in r.output and "changed on disk" in r.output, r.output
    with FeatureStore(store) as s:
        np.testing.assert_array_equal(s.read(a.stem)["rgb"], s.read(b.stem)["rgb"])


def test_a_broken_video_is_named_and_skipped(quick_start, tmp_path):
    good = _test_video(quick_start, 0)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    listing = tmp_path / "videos.txt"
    listing.write_text(f"{good}\n{bad.name}\n")
    out = tmp_path / "det.json"
    r = run(detect, [listing, "--run", quick_start["run"], "--threshold", "0.2", "--quiet",
                     "--features", tmp_path / "c.h5", "--out", out])
    assert r.exit_code == 1, r.output
    assert "skipped video broken" in r.output and "could not be extracted" in r.output
    assert sorted(_results(out)) == [good.stem]


def _run_on(quick_start, tmp_path, edit):
    """A copy of the quick start's run whose store is a copy of out.h5 with its root attributes edited."""
    store = tmp_path / "store.h5"
    shutil.copy(quick_start["out"], store)
    with h5py.File(store, "a") as f:
        extraction = json.loads(f.attrs["extraction"])
        attrs = {k: f.attrs[k] for k in f.attrs}
        edit(extraction, attrs)
        for k in list(f.attrs):
            del f.attrs[k]
        for k, v in attrs.items():
            f.attrs[k] = v
        if extraction is not None:
            f.attrs["extraction"] = json.dumps(extraction, sort_keys=True)
    run_dir = tmp_path / "run"
    shutil.copytree(quick_start["run"], run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    info["features"] = str(store)
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


def _imported(extraction, attrs):
    extraction.clear()
    del attrs["extraction"]
    attrs["source"] = "import-features"


def _backbone(extraction, attrs):
    extraction["backbone"] = "i3d"


def _moved(extraction, attrs):
    attrs["weights_files"] = json.dumps({"rgb": "/nowhere/rgb.pt", "flow": "random"})


def _changed(tmp_path):
    ckpt = tmp_path / "rgb.pt"
    torch.save({"conv1.weight": torch.ones(2, 2)}, ckpt)

    def edit(extraction, attrs):
        attrs["weights_files"] = json.dumps({"rgb": str(ckpt), "flow": "random"})
        extraction["weights"]["rgb"] = "sha256:" + "0" * 64  # what the file held when the store was made
    return edit


@pytest.mark.parametrize("case, words", [
    ("imported", "was not written by extract-features"),
    ("backbone", "backbone 'i3d', which this project does not implement"),
    ("moved", "weights /nowhere/rgb.pt are no longer at that path"),
    ("changed", "has changed since the store was extracted"),
])
def test_a_run_that_cannot_be_reproduced_is_refused_in_one_line_before_any_work(quick_start, tmp_path, case,
                                                                                 words):
    edit = {"imported": _imported, "backbone": _backbone, "moved": _moved}.get(case) or _changed(tmp_path)
    run_dir = _run_on(quick_start, tmp_path, edit)
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    r = run(detect, [_test_video(quick_start), "--run", run_dir, "--quiet"])
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and r.output.startswith("error: ") and words in r.output, r.output
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before  # no features, no detections


def test_features_without_videos_and_a_store_among_videos_are_refused(quick_start, tmp_path):
    r = run(detect, [quick_start["out"], "--run", quick_start["run"], "--features", tmp_path / "c.h5"])
    assert r.exit_code == 2 and "--features names where" in r.output
    r = run(detect, [quick_start["out"], _test_video(quick_start), "--run", quick_start["run"]])
    assert r.exit_code == 2 and "not several stores or both" in r.output
    assert not (tmp_path / "c.h5").exists()



def test_by_default_the_features_and_detections_of_videos_go_beside_the_run(quick_start):
    video = _test_video(quick_start, 1)
    before = (quick_start["run"] / "detections.json").read_bytes()
    r = run(detect, [video, "--run", quick_start["run"], "--threshold", "0.2", "--quiet"])
    assert r.exit_code == 0, r.output
    assert video.stem in FeatureStore(quick_start["run"] / "videos.h5")
    assert sorted(_results(quick_start["run"] / "videos-detections.json")) == [video.stem]
    assert (quick_start["run"] / "detections.json").read_bytes() == before  # the store's detections are kept


def test_annotations_evaluate_and_plot_draws_the_videos_given(quick_start, tmp_path):
    videos = [_test_video(quick_start, 0), _test_video(quick_start, 1)]
    r = run(detect, [*videos, "--run", quick_start["run"], "--threshold", "0.2", "--quiet",
                     "--annotations", quick_start["root"] / "annotations.json", "--plot", tmp_path / "plots",
                     "--features", tmp_path / "c.h5", "--out", tmp_path / "det.json"])
    assert r.exit_code == 0, r.output
    assert "evaluated on 2 videos" in r.output and "mAP%" in r.output
    assert sorted(p.stem for p in (tmp_path / "plots").glob("*.png")) == sorted(v.stem for v in videos)
    assert (tmp_path / "det.eval.json").exists()


def test_a_recipe_with_checkpoint_files_is_followed_while_they_hold_what_they_held(quick_start, tmp_path):
    """Fine-tuned weights: the store names checkpoint files; they are used as long as their content is the one
    recorded (describe_weights' id), and the settings read back are those extract-features was given."""
    from tsrnet.extract.recipe import settings_from_store
    from tsrnet.extract.resnet import describe_weights

    ckpt = tmp_path / "rgb.pt"
    torch.save({"conv1.weight": torch.ones(2, 2)}, ckpt)

    def edit(extraction, attrs):
        attrs["weights_files"] = json.dumps({"rgb": str(ckpt), "flow": "random"})
        extraction["weights"]["rgb"] = describe_weights(str(ckpt))[0]
    run_dir = _run_on(quick_start, tmp_path, edit)
    store = json.loads((run_dir / "run.json").read_text())["features"]
    s = settings_from_store(store, [_test_video(quick_start)], tmp_path / "c.h5", "cpu")
    assert (s.weights, s.flow_weights, s.rows_per_second, s.resize, s.crop) == (str(ckpt), "random", 1.0, 64, 56)
    assert s.tvl1["scales"] == 2 and s.tvl1["warps"] == 1 and s.precision == "fp32" and s.shard == (0, 1)
    assert not (tmp_path / "c.h5").exists()


def test_a_run_whose_store_is_gone_or_a_cache_of_other_settings_is_refused(quick_start, tmp_path):
    run_dir = _run_on(quick_start, tmp_path, lambda e, a: None)
    other = tmp_path / "other.h5"
    shutil.copy(run_dir.parent / "store.h5", other)
    with h5py.File(other, "a") as f:
        f.attrs["extraction"] = json.dumps({**json.loads(f.attrs["extraction"]), "rows_per_second": 2.0})
    stamp = other.stat().st_mtime_ns
    r = run(detect, [_test_video(quick_start), "--run", run_dir, "--features", other, "--quiet"])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "other settings (rows_per_second)" in r.output and other.stat().st_mtime_ns == stamp
    (run_dir.parent / "store.h5").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    r = run(detect, [_test_video(quick_start), "--run", run_dir, "--quiet"])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "feature store is no longer there" in r.output
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


def _viewer_data(page):
    import re

    return json.loads(re.search(r"id='view-data'>(.*?)</script>", page.read_text(), re.S).group(1))


def test_the_viewer_finds_the_stores_videos_and_the_report_links_to_it(quick_start, tmp_path):
    """On the run's store, the viewer finds each video where extract-features read it; its detections are those
    of detections.json; the diagnosis report's timelines link to it by relative path."""
    view, report, out = tmp_path / "view", tmp_path / "report", tmp_path / "det.json"
    r = run(detect, ["--run", quick_start["run"], "--threshold", "0.2", "--quiet", "--out", out, "--view", view,
                     "--diagnose", report, "--annotations", quick_start["root"] / "annotations.json"])
    assert r.exit_code == 0, r.output
    test_ids = quick_start["ann"].video_ids("test")
    assert f"viewer: {view / 'index.html'} ({len(test_ids)} of {len(test_ids)} videos with their file)" in r.output
    # The generator writes MPEG-4 Part 2, which browsers do not play: said, with the way out.
    assert "in codecs browsers do not play (mpeg4)" in r.output and "--view-copy" in r.output
    data, results = _viewer_data(view / "index.html"), _results(out)
    assert [v["id"] for v in data["videos"]] == test_ids
    for v in data["videos"]:
        assert (view / v["src"]).resolve() == (quick_start["root"] / "videos" / f"{v['id']}.mp4").resolve()
        assert sorted(v["det"]) == sorted([d["label"], *d["segment"], d["score"]] for d in results[v["id"]])
        assert sorted(v["gt"]) == sorted([s.label, s.start, s.end] for s in quick_start["ann"][v["id"]].segments)
    page = (report / "index.html").read_text()
    assert '"viewer":{"page":"../view/index.html","videos":' in page


def test_the_viewer_of_a_video_given_copies_it_as_h264(quick_start, tmp_path):
    from tsrnet.detect.viewer import probe

    video = _test_video(quick_start)
    view = tmp_path / "view"
    r = run(detect, [video, "--run", quick_start["run"], "--threshold", "0.2", "--quiet", "--features",
                     tmp_path / "cache.h5", "--out", tmp_path / "det.json", "--view", view, "--view-copy"])
    assert r.exit_code == 0, r.output
    (v,) = _viewer_data(view / "index.html")["videos"]
    assert v["src"] == f"videos/{video.stem}.mp4" and v["note"] == ""
    assert probe(view / v["src"]).codec == "h264"
