"""The quick start's commands on small generated videos: one store for both domains, no flags but the cheap
settings, and a run never scored on the videos it trained on."""
import functools
import json
import os
import shutil

import pytest
from click.testing import CliRunner

from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.format.store import FeatureStore
from tsrnet.data.generators.synthetic_videos import VideoSpec, generate_videos
from tsrnet.detect.cli import detect
from tsrnet.extract import resnet
from tsrnet.extract.cli import extract_features
from tsrnet.train.cli import train_tsr
from conftest import invoke

# Cheap settings only (random weights, 1 row/s, 56-px crops, fp32, which CPUs without bf16 units run
# faster, a cheap TV-L1, a tiny network); the quick start's arguments themselves are used as written.
CHEAP_EXTRACT = ["--weights", "random", "--fps", "1", "--resize", "64", "--crop", "56", "--precision", "fp32",
                 "--quiet", "--tvl1-scales", "2", "--tvl1-warps", "1", "--tvl1-outer-iterations", "2"]
CHEAP_TRAIN = ["--steps", "8", "--pretrain-steps", "4", "--quiet", "--hidden-dim", "16", "--attention-dim", "8"]
SPEC = VideoSpec(n_classes=2, n_train=3, n_test=2, clips_per_class=2, width=80, height=60, actor_size=10,
                 min_duration=6, max_duration=8, min_action=2, max_action=3, max_instances=1,
                 clip_duration=2.0, seed=11)


run = functools.partial(invoke, catch_exceptions=False)  # a failure shows its traceback


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory):
    """The quick start run in a fresh folder: videos/, clips/, annotations.json, out.h5, runs/."""
    root = tmp_path_factory.mktemp("quick-start")
    generate_videos(root / "made", SPEC, progress=False)
    shutil.move(root / "made" / "untrimmed", root / "videos")
    shutil.move(root / "made" / "trimmed", root / "clips")
    shutil.move(root / "made" / "annotations.json", root / "annotations.json")
    out = root / "out.h5"
    steps = [
        (extract_features, ["videos", "out.h5", "--annotations", "annotations.json", *CHEAP_EXTRACT]),
        (extract_features, ["clips", "out.h5", "--trimmed", *CHEAP_EXTRACT]),
        (train_tsr, ["out.h5", *CHEAP_TRAIN]),
        (detect, ["--threshold", "0.2", "--quiet"]),
    ]
    outputs = []
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        # extract-features uses a torch thread per core; beside another busy process two threads on two
        # cores spin against each other (ResNet101 forward 30x slower, measured), so the test takes one.
        mp.setattr(os, "cpu_count", lambda: 1)
        # Both extractions build the same seeded networks; computing their weights once saves seconds.
        mp.setattr(resnet, "random_state", functools.lru_cache(resnet.random_state))
        for cmd, args in steps:
            r = run(cmd, args)
            assert r.exit_code == 0, r.output
            outputs.append(r.output)
    run_dir = root / outputs[2].strip().splitlines()[-1]
    return {"root": root, "out": out, "run": run_dir, "outputs": outputs,
            "ann": load_annotations(root / "annotations.json")}


def test_one_store_holds_both_domains(quick_start):
    store = FeatureStore(quick_start["out"])
    clips = sorted(p.stem for p in (quick_start["root"] / "clips").rglob("*.mp4"))
    assert sorted(store.video_ids(domain="trimmed")) == clips
    assert sorted(store.video_ids(domain="untrimmed")) == quick_start["ann"].video_ids()
    assert store.labels(clips[0]) == [next((quick_start["root"] / "clips").rglob(f"{clips[0]}.mp4")).parent.name]


def test_training_saw_only_the_train_subset_and_the_stores_clips(quick_start):
    info = json.loads((quick_start["run"] / "run.json").read_text())
    train = quick_start["ann"].video_ids("train")
    assert info["model"] == "tsrnet" and info["status"] == "finished"
    assert sorted(info["train_ids"]) == train and info["n_train_videos"] == len(train) == SPEC.n_train
    assert info["train_subset"] == "train" and info["eval_subset"] == "test"
    assert not set(info["train_ids"]) & set(quick_start["ann"].video_ids("test"))
    assert info["trimmed"] == str(quick_start["out"].resolve())  # the clips came from the same store
    assert info["n_trimmed_clips"] == SPEC.n_classes * SPEC.clips_per_class
    assert "subset 'train'" in quick_start["outputs"][2] and "convention" in quick_start["outputs"][2]


def test_detect_scored_only_test_videos(quick_start):
    res = json.loads((quick_start["run"] / "detections.json").read_text())["results"]
    assert sorted(res) == quick_start["ann"].video_ids("test")


def test_rerun_skips_and_a_clip_named_like_a_stored_video_is_refused(quick_start, tmp_path):
    r = run(extract_features, [quick_start["root"] / "clips", quick_start["out"], "--trimmed", *CHEAP_EXTRACT])
    assert r.exit_code == 0 and "already extracted" in r.output
    video = quick_start["ann"].video_ids("test")[0]
    (tmp_path / "Rise").mkdir()
    shutil.copy(quick_start["root"] / "videos" / f"{video}.mp4", tmp_path / "Rise" / f"{video}.mp4")
    before = quick_start["out"].read_bytes()
    r = CliRunner().invoke(extract_features, [str(tmp_path), str(quick_start["out"]), "--trimmed", *CHEAP_EXTRACT])
    assert r.exit_code == 2 and f"video {video}" in r.output and "already in the store as untrimmed" in r.output
    assert quick_start["out"].read_bytes() == before
    assert not quick_start["out"].with_name(quick_start["out"].name + ".parts").exists()
