"""extract-features end to end on small videos made with PyAV: row counts and times,
labels, bad inputs, resume after a kill, shards + merge, settings checks."""
import importlib.util
import json
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tsrnet.data.format.store import FeatureStore
from tsrnet.data.generators.videos import moving_texture, write_video
from tsrnet.extract import writer
from tsrnet.extract.cli import extract_features, merge_features

# Random weights and a cheap TV-L1 keep each run to seconds; the full algorithm is tested in test_flow.
FAST_EXTRACT = ["--weights", "random", "--fps", "2", "--batch-size", "8", "--quiet", "--tvl1-scales", "2",
        "--tvl1-warps", "1", "--tvl1-outer-iterations", "2"]


def run(args):
    return CliRunner().invoke(extract_features, [str(a) for a in args] + FAST_EXTRACT)


def equal_stores(a, b):
    sa, sb = FeatureStore(a), FeatureStore(b)
    assert sorted(sa.video_ids()) == sorted(sb.video_ids())
    for v in sa.video_ids():
        xa, xb = sa.read(v), sb.read(v)
        for k in ("rgb", "flow", "times"):
            np.testing.assert_array_equal(xa[k], xb[k])
        assert sa.info(v) == sb.info(v)


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    """A UCF101-like folder: <root>/<Class>/<clip>, plus odd, gray and variable-frame-rate files."""
    root = tmp_path_factory.mktemp("ucf")
    (root / "HighJump").mkdir()
    (root / "Diving").mkdir()
    write_video(root / "HighJump" / "v_HighJump_g01.mp4", moving_texture(20, 48, 64, (2, 0), seed=1), fps=10)
    write_video(root / "Diving" / "v_Diving_g01.avi", moving_texture(25, 48, 64, (0, 3), seed=2), fps=10)
    write_video(root / "Diving" / "odd_size.mkv", moving_texture(20, 47, 63, (1, 1), seed=3), fps=10)
    write_video(root / "Diving" / "gray.mkv", moving_texture(20, 48, 64, (-2, 0), seed=4)[..., 0], fps=10)
    vfr_times = np.cumsum(np.r_[0, np.where(np.arange(19) % 2, 0.05, 0.15)])  # 0, .15, .2, .35, ...
    write_video(root / "HighJump" / "vfr.mp4", moving_texture(20, 48, 64, (2, 2), seed=5), times=vfr_times)
    return root, vfr_times


@pytest.fixture(scope="module")
def extracted(ucf, tmp_path_factory):
    out = tmp_path_factory.mktemp("x") / "ucf.h5"
    r = run([ucf[0], out, "--trimmed"])
    assert r.exit_code == 0, r.output
    return out


def test_rows_times_and_labels(ucf, extracted):
    s = FeatureStore(extracted)
    assert sorted(s.video_ids()) == ["gray", "odd_size", "v_Diving_g01", "v_HighJump_g01", "vfr"]
    assert s.feature_dim == 2048
    # 2.0 s at 2 rows/s: targets 0.25, 0.75, 1.25, 1.75; each row takes the first frame at or
    # after its target, frames being 0.1 s apart.
    np.testing.assert_allclose(s.read("v_HighJump_g01")["times"], [0.3, 0.8, 1.3, 1.8], atol=1e-6)
    assert len(s.read("v_Diving_g01")["times"]) == 5  # 2.5 s
    info = s.info("v_Diving_g01")
    assert info.domain == "trimmed" and info.n_frames == 25 and info.duration == pytest.approx(2.5, abs=1e-3)
    assert s.labels("v_HighJump_g01") == ["HighJump"] and s.labels("gray") == ["Diving"]
    for v in s.video_ids():
        x = s.read(v)
        assert x["rgb"].shape == x["flow"].shape == (len(x["times"]), 2048)
        assert np.abs(x["flow"]).sum() > 0


def test_variable_frame_rate_uses_presentation_times(ucf, extracted):
    _, vfr_times = ucf
    times = FeatureStore(extracted).read("vfr")["times"]
    targets = (np.arange(len(times)) + 0.5) / 2
    expected = [vfr_times[np.searchsorted(vfr_times, t - 1e-9)] for t in targets]
    np.testing.assert_allclose(times, expected, atol=1e-3)
    assert not np.allclose(times, targets + 0.05)  # what index / fps would have given


def test_settings_recorded_and_random_weights_flagged(extracted):
    with h5py.File(extracted, "r") as f:
        settings = json.loads(f.attrs["extraction"])
        assert settings["rows_per_second"] == 2.0 and settings["weights"] == {"rgb": "random", "flow": "random"}
        assert settings["transform"]["tvl1"]["warps"] == 1
        assert "RANDOM" in f.attrs["weights_warning"]
        assert json.loads(f.attrs["failures"]) == []
    assert not extracted.with_name(extracted.name + ".parts").exists()  # consolidated


def test_rerun_skips_and_other_settings_are_refused(ucf, extracted):
    before = extracted.stat().st_mtime_ns
    r = CliRunner().invoke(extract_features, [str(ucf[0]), str(extracted), "--trimmed"] + FAST_EXTRACT)
    assert r.exit_code == 0 and "already extracted" in r.output
    r = CliRunner().invoke(extract_features, [str(ucf[0]), str(extracted), "--trimmed"] + FAST_EXTRACT + ["--fps", "3"])
    assert r.exit_code == 2 and "rows_per_second" in r.output and str(extracted) in r.output
    assert len(FeatureStore(extracted).video_ids()) == 5 and extracted.stat().st_mtime_ns >= before


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_rotation_metadata_is_applied(tmp_path, decoder):
    from tsrnet.extract.decode import VideoReader

    frames = np.zeros((8, 48, 64, 3), np.uint8)
    frames[:, :8, :8] = 255  # a marker in the top-left corner
    path = write_video(tmp_path / "portrait.mp4", frames, fps=10, rotation=90)
    _, f = next(VideoReader(path, decoder).frames(np.array([0])))
    # displayed turned 90 degrees counter-clockwise: 64 high, 48 wide, marker bottom-left
    assert f.shape == (64, 48, 3)
    ys, xs = np.nonzero(f[..., 0] > 128)
    assert ys.min() >= 64 - 8 - 1 and xs.max() <= 8


def test_bad_videos_are_named_and_the_rest_extracted(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = write_video(src / "good.mp4", moving_texture(20, 48, 64, (2, 0)), fps=10)
    data = good.read_bytes()
    (src / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (src / "notes.mp4").write_text("this is a text file, not a video\n")
    (src / "empty.avi").write_bytes(b"")
    write_video(src / "tiny.mp4", moving_texture(4, 48, 64, (2, 0)), fps=10)  # fewer frames than a flow stack
    write_video(src / "zero.mkv", np.zeros((0, 48, 64, 3), np.uint8), fps=10)  # a video stream with no frames
    write_video(src / "rotated.mp4", moving_texture(12, 48, 64, (2, 0)), fps=10, rotation=-90)  # fine
    out = tmp_path / "o.h5"
    r = run([src, out])
    assert r.exit_code == 1, r.output
    for name in ("truncated", "notes", "empty", "tiny", "zero"):
        assert f"video {name}:" in r.output
    assert "flow stack" in r.output
    assert FeatureStore(out).video_ids() == ["good", "rotated"]
    with h5py.File(out, "r") as f:
        fails = {x["video"]: x["reason"] for x in json.loads(f.attrs["failures"])}
    assert set(fails) == {"truncated", "notes", "empty", "tiny", "zero"}
    assert "empty" in fails["empty"] and "no frames" in fails["zero"]


def test_foreign_store_is_not_appended_to(ucf, tmp_path):
    from tsrnet.data.format.store import StoreWriter

    out = tmp_path / "foreign.h5"
    with StoreWriter(out, 8) as w:
        w.add("x", times=[0.5], fps=1, duration=1, n_frames=1, rgb=np.ones((1, 8)), flow=np.ones((1, 8)))
    r = run([ucf[0], out])
    assert r.exit_code == 2 and "not written by extract-features" in r.output
    assert FeatureStore(out).video_ids() == ["x"]


def test_resume_after_kill_completes_identically(ucf, extracted, tmp_path):
    out = tmp_path / "k.h5"
    cmd = [sys.executable, "-c", "from tsrnet.extract.cli import extract_features; extract_features()",
           str(ucf[0]), str(out), "--trimmed"] + FAST_EXTRACT
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "k.h5.parts"
    deadline = time.time() + 120
    while time.time() < deadline and not (parts.is_dir() and len(list(parts.glob("*.h5"))) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    indexed = FeatureStore(out).video_ids()  # the store opens, with the finished videos
    for v in indexed:
        assert FeatureStore(out).read(v)["rgb"].shape[1] == 2048
    # A kill between a part's rename and the index's rewrite leaves one part not yet indexed; the
    # resume works from the parts, so those are the videos it must skip.
    done = sorted(writer.finished(out))
    assert 1 <= len(done) < 5 and set(indexed) <= set(done) and len(done) - len(indexed) <= 1, (done, indexed)
    r = run([ucf[0], out, "--trimmed"])
    assert r.exit_code == 0, r.output
    assert f"{5 - len(done)} extracted, {len(done)} skipped" in r.output
    equal_stores(out, extracted)


def test_shards_merged_equal_one_run(ucf, extracted, tmp_path, monkeypatch):
    """The SLURM array recipe: shard 0 by --shard, shard 1 from the array's variables (task ids 1..2)."""
    out = tmp_path / "s.h5"
    r = run([ucf[0], out, "--trimmed", "--shard", "0/2"])
    assert r.exit_code == 0, r.output
    for name, value in (("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "2"), ("SLURM_ARRAY_TASK_MIN", "1")):
        monkeypatch.setenv(name, value)
    r = run([ucf[0], out, "--trimmed"])
    assert r.exit_code == 0, r.output
    shards = sorted(tmp_path.glob("s-shard-*.h5"))
    assert len(shards) == 2
    sizes = [len(FeatureStore(p).video_ids()) for p in shards]
    assert sum(sizes) == 5 and min(sizes) > 0
    r = CliRunner().invoke(merge_features, [str(p) for p in shards] + [str(tmp_path / "merged.h5")])
    assert r.exit_code == 0, r.output
    equal_stores(tmp_path / "merged.h5", extracted)


def test_merge_refuses_different_settings(ucf, extracted, tmp_path):
    other = tmp_path / "other.h5"
    src = tmp_path / "one"
    src.mkdir()
    shutil.copy(ucf[0] / "HighJump" / "vfr.mp4", src / "x.mp4")
    r = CliRunner().invoke(extract_features, [str(src), str(other)] + FAST_EXTRACT + ["--fps", "3"])  # last --fps wins
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(merge_features, [str(extracted), str(other), str(tmp_path / "m.h5")])
    assert r.exit_code == 2 and "rows_per_second" in r.output
    assert not (tmp_path / "m.h5").exists()


def test_slurm_array_variables_pick_the_shard(monkeypatch):
    from tsrnet.extract.job import ExtractSettings, shard_of_text

    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    assert ExtractSettings(source="v", out="o.h5").shard == (3, 4)  # no --shard: the array task's
    assert ExtractSettings(source="v", out="o.h5", shard=shard_of_text("2/8")).shard == (2, 8)
    with pytest.raises(ValueError, match="need 0 <= K < N"):
        shard_of_text("8/8")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_extraction_matches_cpu(ucf, tmp_path):
    """The GPU path (torch TV-L1 on CUDA, bf16 autocast, channels_last) against fp32 on the CPU."""
    clip = ucf[0] / "HighJump" / "v_HighJump_g01.mp4"
    outs = {}
    for dev, prec in (("cuda", "bf16"), ("cpu", "fp32")):
        outs[dev] = tmp_path / f"{dev}.h5"
        r = run([clip, outs[dev], "--device", dev, "--precision", prec, "--flow-backend", "torch"])
        assert r.exit_code == 0, r.output
    a, b = FeatureStore(outs["cuda"]).read("v_HighJump_g01"), FeatureStore(outs["cpu"]).read("v_HighJump_g01")
    np.testing.assert_array_equal(a["times"], b["times"])
    for s in ("rgb", "flow"):
        x, y = a[s].astype(np.float64), b[s].astype(np.float64)
        cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
        assert cos.min() > 0.98, (s, cos)


def test_shard_selection_partitions_ids_and_ignores_the_others():
    from tsrnet.extract.job import in_shard

    ids = [f"video_{i:03d}" for i in range(200)]
    for n in (1, 3, 16):
        owners = {v: [k for k in range(n) if in_shard(v, k, n)] for v in ids}
        assert all(len(o) == 1 for o in owners.values())  # each video in exactly one shard
        if n > 1:
            assert min(sum(o == [k] for o in owners.values()) for k in range(n)) > 0  # no shard left empty


def test_progress_counts_rows_and_a_log_gets_plain_lines(ucf, tmp_path, monkeypatch):
    """stderr is not a terminal under CliRunner: progress lines (every update with interval 0), no redraws,
    the total in rows known from the headers before any video is decoded."""
    clip = ucf[0] / "Diving" / "v_Diving_g01.avi"  # 2.5 s at 2 rows/s: 5 rows
    monkeypatch.setenv("TSRNET_PROGRESS_INTERVAL", "0")
    args = [str(clip), str(tmp_path / "p.h5")] + [a for a in FAST_EXTRACT if a != "--quiet"] + ["--batch-size", "2"]
    r = CliRunner().invoke(extract_features, args)
    assert r.exit_code == 0, r.output
    assert "\r" not in r.output
    lines = [x for x in r.output.splitlines() if x.startswith("extract p.h5:")]
    assert len(lines) >= 1 and all("/5 row" in x for x in lines), r.output
    assert lines[-1].startswith("extract p.h5: 5/5 row (100.0%)")
    assert "v_Diving_g01: 5 rows in" not in r.output  # per-video lines are for terminals
    monkeypatch.setenv("TSRNET_PROGRESS_INTERVAL", "3600")
    r = CliRunner().invoke(extract_features, args[:1] + [str(tmp_path / "q.h5")] + args[2:])
    progress = [x for x in r.output.splitlines() if x.startswith("extract q.h5:")]
    assert r.exit_code == 0 and len(progress) == 1 and "5/5 row" in progress[0], r.output  # the end alone


def test_fps_all_gives_a_row_per_frame_at_its_presentation_time(ucf, extracted, tmp_path):
    """Every decoded frame is a row timed at its presentation time; rows centred on the same frame as a
    --fps 2 row have that row's features (the same frame and the same flow stack)."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(ucf[0] / "HighJump" / "vfr.mp4", src / "vfr.mp4")
    out = tmp_path / "all.h5"
    r = CliRunner().invoke(extract_features, [str(src), str(out), "--trimmed"] + FAST_EXTRACT + ["--fps", "all"])
    assert r.exit_code == 0, r.output
    x = FeatureStore(out).read("vfr")
    np.testing.assert_allclose(x["times"], ucf[1], atol=1e-3)  # the 20 frames' own times
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["extraction"])["rows_per_second"] == "all"
    ref = FeatureStore(extracted).read("vfr")
    rows = [int(np.argmin(np.abs(x["times"] - t))) for t in ref["times"]]
    for s in ("rgb", "flow"):
        np.testing.assert_allclose(x[s][rows].astype(np.float32), ref[s].astype(np.float32), rtol=0.02, atol=0.02)
    r = CliRunner().invoke(extract_features, [str(src), str(out), "--fps", "often"])
    assert r.exit_code == 2 and "'often'" in r.output


def _decodable_frames(path):
    import av

    n = 0
    try:
        with av.open(str(path)) as c:
            for _ in c.decode(video=0):
                n += 1
    except av.FFmpegError:
        pass
    return n


def test_truncated_video_is_reported_and_strict_fails_it(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    full = write_video(src / "full.mkv", moving_texture(40, 48, 64, (2, 0), seed=6), fps=10)  # declares 4 s
    data = full.read_bytes()
    (src / "half.mkv").write_bytes(data[: len(data) // 2])
    n_half = _decodable_frames(src / "half.mkv")
    assert 6 <= n_half <= 30  # decodable, and far shorter than the 40 declared
    out = tmp_path / "t.h5"
    r = run([src, out])
    assert r.exit_code == 0, r.output
    assert "video half:" in r.output and "4.00 s" in r.output and f"{n_half / 10:.2f} s" in r.output
    assert "video full:" not in r.output
    with h5py.File(out, "r") as f:
        warned = json.loads(f.attrs["warnings"])
    assert [w["video"] for w in warned] == ["half"]
    assert warned[0]["declared_duration"] == pytest.approx(4.0)
    assert warned[0]["decoded_frames"] == n_half and warned[0]["decoded_duration"] == pytest.approx(n_half / 10)
    assert sorted(FeatureStore(out).video_ids()) == ["full", "half"]

    r = run([src, tmp_path / "s.h5", "--strict"])
    assert r.exit_code == 1 and "video half:" in r.output and "--strict" in r.output
    assert FeatureStore(tmp_path / "s.h5").video_ids() == ["full"]
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert [x["video"] for x in json.loads(f.attrs["failures"])] == ["half"]
        assert json.loads(f.attrs["warnings"]) == []


def test_threads_follow_the_setting_and_the_affinity(monkeypatch):
    import os

    from tsrnet.data.core.devices import available_cpus, cpu_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if hasattr(os, "sched_getaffinity"):
        assert available_cpus() == len(os.sched_getaffinity(0))
    assert cpu_threads() == available_cpus()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads() == 3
    assert cpu_threads(5) == 5  # --threads wins


needs_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="needs dask.distributed: pip install -e .[cluster]")


@needs_dask
def test_cluster_run_equals_one_process_and_resumes_with_new_videos(ucf, extracted, tmp_path):
    """A dask LocalCluster on the loopback: shards extracted by two worker processes, merged by the client,
    equal to a single-process run row for row; a second run extracts only the video added since."""
    src = tmp_path / "in"
    shutil.copytree(ucf[0], src)
    out = tmp_path / "c.h5"
    (src / "HighJump" / "vfr.mp4").rename(tmp_path / "later.mp4")  # added for the second run
    r = run([src, out, "--trimmed", "--cluster", "local:2"])
    assert r.exit_code == 0, r.output
    assert "4 videos (4 new) from 2 shards" in r.output
    assert not list(tmp_path.glob("c-shard-*")) and not (tmp_path / "c.h5.parts").exists()
    (tmp_path / "later.mp4").rename(src / "HighJump" / "vfr.mp4")
    r = run([src, out, "--trimmed", "--cluster", "local:2"])
    assert r.exit_code == 0, r.output
    assert "5 videos (1 new)" in r.output
    equal_stores(out, extracted)
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["extraction"]) == json.loads(h5py.File(extracted, "r").attrs["extraction"])
    # An edited file (same name, other content) is extracted again by the shards and replaces the stored one:
    # the store then equals a one-process run on the edited folder.
    edited = src / "HighJump" / "v_HighJump_g01.mp4"
    write_video(edited, moving_texture(20, 48, 64, (-1, 2), seed=9), fps=10)
    r = run([src, out, "--trimmed", "--cluster", "local:2"])
    assert r.exit_code == 0, r.output
    assert "1 video(s) changed on disk" in r.output and "5 videos (0 new, 1 extracted again)" in r.output
    single = tmp_path / "single.h5"
    assert run([src, single, "--trimmed"]).exit_code == 0
    equal_stores(out, single)
    assert not np.array_equal(FeatureStore(out).read(edited.stem)["rgb"], FeatureStore(extracted).read(edited.stem)["rgb"])
    r = CliRunner().invoke(extract_features, [str(src), str(out), "--cluster", "local:2"] + FAST_EXTRACT + ["--fps", "3"])
    assert r.exit_code == 2 and "rows_per_second" in r.output  # refused by the client, before any worker


@needs_dask
def test_cluster_lost_worker_shard_is_redone_without_redoing_finished_videos(ucf, extracted, tmp_path):
    """One worker, two shards; the worker is killed once its first shard has a finished video. The nanny
    starts a new worker, the scheduler gives it the shard again, and it resumes: the finished videos are
    skipped, the rest extracted, and the merged store equals a single-process run."""
    import psutil

    from tsrnet.extract.job import in_shard

    out = tmp_path / "k.h5"
    shard0 = [v for v in FeatureStore(extracted).video_ids() if in_shard(v, 0, 2)]
    assert len(shard0) >= 3  # room to be killed midway
    log = tmp_path / "stderr.txt"
    cmd = [sys.executable, "-c", "from tsrnet.extract.cli import extract_features; extract_features()",
           str(ucf[0]), str(out), "--trimmed", "--cluster", "local:1", "--shards", "2"] + FAST_EXTRACT
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        parts = tmp_path / "k-shard-0000-of-0002.h5.parts"
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            n = len([p for p in parts.glob("*.h5") if not p.name.startswith("base-")]) if parts.is_dir() else 0
            if 1 <= n < len(shard0):
                break
            time.sleep(0.05)
        workers = [c for c in psutil.Process(proc.pid).children(recursive=True)
                   if "resource_tracker" not in " ".join(c.cmdline())]
        assert workers, "no worker process found"
        for w in workers:
            w.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=300)
    text = log.read_text()
    assert rc == 0, text
    resumed = re.findall(r"k-shard-0000-of-0002\.h5: (\d+) extracted, (\d+) skipped \(done before\)", text)
    assert resumed and int(resumed[-1][1]) >= 1 and sum(map(int, resumed[-1])) == len(shard0), text
    equal_stores(out, extracted)


def test_weights_given_as_paths_are_recorded_as_text(tmp_path, monkeypatch):
    # A cluster hands each shard resolved Paths; the store records the weights spec as JSON.
    from tsrnet.extract import resnet
    from tsrnet.extract.cluster import _absolute
    from tsrnet.extract.job import ExtractSettings, prepare

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(resnet, "describe_weights", lambda spec: ("random" if spec == "random" else "sha256:0", None))
    (tmp_path / "rgb.pt").write_bytes(b"")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v.mp4").write_bytes(b"")
    given = dict(source="videos", out="out.h5", weights="random", rgb_weights="rgb.pt", rows_per_second=4.0,
                 decoder="pyav", flow_backend="opencv", device="cpu", precision="fp32", resize=128, crop=112)
    s = _absolute(ExtractSettings(**given))  # every other setting at its declared default
    assert s.source == tmp_path / "videos" and s.rgb_weights == tmp_path / "rgb.pt" and s.weights == "random"
    job = prepare(s)
    assert job.specs == {"rgb": str(tmp_path / "rgb.pt"), "flow": "random"}
    json.dumps(job.info)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_cuda_on_a_machine_without_one_is_refused_before_anything_is_written(ucf, tmp_path):
    out = tmp_path / "x.h5"
    r = run([ucf[0], out, "--trimmed", "--device", "cuda"])
    assert r.exit_code == 2 and "no CUDA device is available (use --device cpu)" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not list(tmp_path.iterdir())
