"""train-backbone: TSN fine-tuning of the two streams on trimmed clips, and extraction with its weights."""
import json
import math
from concurrent.futures import ThreadPoolExecutor

import cv2
import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tsrnet.data.generators.videos import moving_texture, write_video
from tsrnet.extract.cli import extract_features, merge_features
from tsrnet.extract.features import TransformConfig, flow_frame, resize_flow
from tsrnet.extract.flow import TVL1Params
from tsrnet.extract.pipeline import FlowRunner
from tsrnet.extract.resnet import describe_weights
from tsrnet.extract.finetune import augment
from tsrnet.extract.finetune.cache import SnippetCache, dequantise, quantise, snippet_frames
from tsrnet.extract.finetune.cli import train_backbone
from tsrnet.extract.finetune.clips import find_clips
from tsrnet.extract.finetune.config import BackboneConfig
from tsrnet.extract.finetune.loop import Runtime, Sampler, StreamTrainer
from tsrnet.extract.finetune.model import TSN, consensus, initial_network, soft_cross_entropy

# Tiny inputs, random weights and a cheap TV-L1: each run takes seconds. The full TV-L1 is tested in test_flow.
CHEAP_FLOW = ["--tvl1-scales", "2", "--tvl1-warps", "1", "--tvl1-outer-iterations", "2"]
TINY = ["--weights", "random", "--size", "32", "--batch", "2", "--segments", "2", "--snippets", "4",
        "--quiet", "--threads", "1", *CHEAP_FLOW]
EXTRACT = ["--fps", "2", "--resize", "37", "--crop", "32", "--quiet", "--trimmed", "--threads", "1", *CHEAP_FLOW]


def make_clips(root, n=3, frames=12):
    """Two classes told apart by the direction of motion (what a flow network must learn)."""
    for cls, v in (("Right", (2.0, 0.0)), ("Down", (0.0, 2.0))):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_video(root / cls / f"{cls}_{i}.mp4", moving_texture(frames, 48, 64, velocity=v,
                                                                      seed=i + 10 * (cls == "Down")), fps=10)
    return root


@pytest.fixture(autouse=True)
def one_thread():
    # ResNet101 on tiny inputs is fastest on one thread, and far slower on two beside another busy process.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def trained(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("bb") / "run"
    r = CliRunner().invoke(train_backbone, [str(clips), str(out), "--iterations", "2", *TINY])
    assert r.exit_code == 0, r.output
    return out


# -- the model --------------------------------------------------------------------------------------------
def test_consensus_is_the_average_of_snippet_scores_hand_worked():
    s = torch.tensor([[[1.0, 2.0], [3.0, 0.0], [2.0, 4.0]]])  # (B=1, K=3, C=2)
    assert consensus(s).tolist() == [[2.0, 2.0]]
    # equal clip scores: the cross-entropy of either class is log 2
    assert soft_cross_entropy(consensus(s), torch.tensor([[1.0, 0.0]])).item() == pytest.approx(math.log(2))


def test_soft_cross_entropy_of_a_two_label_video_hand_worked():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax (1/4, 3/4)
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_cross_entropy(logits, torch.tensor([[0.5, 0.5]])).item() == pytest.approx(expected)


def test_partial_bn_only_the_first_batchnorm_adapts():
    model = TSN(initial_network("flow", None, "random"), 2, 0.5).train()
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns[0] is model.backbone.bn1 and model.backbone.bn1.training and bns[0].weight.requires_grad
    assert all(not m.training and not m.weight.requires_grad for m in bns[1:])
    assert model.backbone.fc.out_features == 2 and model.backbone.conv1.in_channels == 10


# -- cache and augmentation -------------------------------------------------------------------------------
def test_snippet_positions_hand_worked():
    centre, window = snippet_frames(12, 4)  # centres floor((i + .5) * 3); windows centre - 2, kept in [0, 6]
    assert centre.tolist() == [1, 4, 7, 10] and window.tolist() == [0, 2, 5, 6]
    assert snippet_frames(6, 25)[0].tolist() == [0, 1, 2, 3, 4, 5]  # fewer frames than snippets: each once


def test_quantised_flow_round_trip():
    f = np.random.default_rng(0).uniform(-25, 25, (6, 5, 2)).astype(np.float32)
    back = dequantise(quantise(f))
    assert np.abs(back - np.clip(f, -20, 20)).max() <= 40 / 255 / 2 + 1e-5


def test_rotated_flow_follows_the_rotated_picture():
    # Turning the picture 90 degrees counter-clockwise (as shown, y down) turns a rightward motion upward.
    right = np.zeros((9, 9, 2), np.float32)
    right[..., 0] = 3.0
    up = augment.rotate_flow(right, 90.0)
    np.testing.assert_allclose(up[..., 0], 0.0, atol=1e-5)
    np.testing.assert_allclose(up[..., 1], -3.0, atol=1e-5)
    d = augment.Draw(angle=0.0, side=9, top=0, left=0, flip=True)
    flipped = augment.flow_sample(np.tile(right, (1, 1, 5)), d, 9)  # flipped: leftward, normalised
    np.testing.assert_allclose(flipped[0], -3.0 / 40 / 0.226, rtol=1e-5)


def test_rotated_flow_matches_tvl1_on_rotated_frames():
    # Independent check of the convention: flow of the rotated frames, against the rotated flow.
    a = (moving_texture(2, 64, 64, velocity=(2.0, 1.0), seed=4)[..., 0] * 255).astype(np.uint8) \
        if moving_texture(2, 8, 8).dtype != np.uint8 else moving_texture(2, 64, 64, velocity=(2.0, 1.0), seed=4)
    g0, g1 = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if f.ndim == 3 else f for f in a)
    run = FlowRunner(TVL1Params(), "opencv", torch.device("cpu"))
    m = cv2.getRotationMatrix2D((31.5, 31.5), 30.0, 1.0)
    r0, r1 = (cv2.warpAffine(g, m, (64, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
              for g in (g0, g1))
    direct = run([r0], [r1])[0]
    turned = augment.rotate_flow(run([g0], [g1])[0], 30.0)
    inner = (slice(20, 44), slice(20, 44))
    assert np.abs(direct[inner] - turned[inner]).mean() < 0.3
    assert np.abs(direct[inner].mean((0, 1)) - turned[inner].mean((0, 1))).max() < 0.2


def test_cached_flow_is_the_extractors_flow(clips, tmp_path):
    tf = TransformConfig(resize=37, crop=32, tvl1=TVL1Params(scales=2, warps=1, outer_iterations=2))
    settings = {"snippets": 4, "resize": 37, "flow_short_side": 256, "tvl1": tf.tvl1.to_dict()}
    cache = SnippetCache(tmp_path, "flow", settings)
    clip = find_clips(clips)[0][0]
    flow = FlowRunner(tf.tvl1, "opencv", torch.device("cpu"))
    cache.build(clip, "pyav", flow, tf)
    from tsrnet.extract.decode import VideoReader

    frames = dict(VideoReader(clip.path, "pyav").frames(np.arange(12)))
    centre, window = snippet_frames(12, 4)
    w = int(window[1])
    expect = np.concatenate([resize_flow(flow([flow_frame(frames[j], tf)], [flow_frame(frames[j + 1], tf)])[0], 37)
                             for j in range(w, w + 5)], axis=-1)
    got = cache.read(clip.id, 1)
    assert got.shape == expect.shape
    assert np.abs(got - np.clip(expect, -20, 20)).max() <= 40 / 255 / 2 + 1e-4


def test_sampler_draws_one_snippet_per_segment_deterministically():
    cfg = BackboneConfig(segments=3, batch=4, snippets=9)
    s = Sampler(cfg, "rgb", [9, 9, 6])
    for it in range(5):
        batch = s(it)
        assert [b[:2] for b in batch] == [b[:2] for b in Sampler(cfg, "rgb", [9, 9, 6])(it)]
        for c, idx, _ in batch:
            n = [9, 9, 6][c]
            assert [int(i * 3 // n) for i in idx] == [0, 1, 2]  # snippet i of n lies in segment floor(3i/n)
    epoch0 = [b[0] for it in range(3) for b in s(it)][:3]  # the first 3 draws: one epoch, each clip once
    assert sorted(epoch0) == [0, 1, 2]


# -- training ---------------------------------------------------------------------------------------------
def _trainer(clips, out, cache_root, **cfg):
    found = find_clips(clips)[0]
    tf = TransformConfig(resize=37, crop=32)
    cache = SnippetCache(cache_root, "rgb", {"snippets": 4, "resize": 37, "flow_short_side": 256, "tvl1": None})
    cache.check()
    for c in found:
        if not cache.has(c.id):
            cache.build(c, "pyav", None, tf)
    cfg = BackboneConfig(**{"size": 32, "batch": 2, "segments": 2, "snippets": 4, **cfg})
    return StreamTrainer("rgb", found, ["Down", "Right"], cache, cfg, (None, "random", "random"), out,
                         Runtime(torch.device("cpu"), "fp32", 1, 1e9, True))


def test_one_step_changes_the_weights_and_lowers_the_loss(clips, tmp_path):
    t = _trainer(clips, tmp_path / "run", tmp_path / "cache", iterations=1, dropout=0.0, lr_rgb=1e-3)
    with ThreadPoolExecutor(1) as pool:  # the batch of the one step
        x, y = next(t._batches(0, Sampler(t.cfg, "rgb", [t.cache.count(c.id) for c in t.clips]), pool))

    def loss(model):
        with torch.no_grad():
            return soft_cross_entropy(model.train()(x), y).item()

    start = t.initial_model()
    before = {k: v.clone() for k, v in start.backbone.state_dict().items()}
    t.run()
    after = torch.load(t.final_path, weights_only=True)["state_dict"]
    changed = {k for k in before if k.endswith("weight") and not torch.equal(before[k], after[k])}
    assert {"fc.weight", "conv1.weight", "bn1.weight", "layer4.2.conv3.weight"} <= changed
    assert "layer1.0.bn1.weight" not in changed  # partial BN
    trained = t.initial_model()
    trained.backbone.load_state_dict(after)
    assert loss(trained) < loss(start)


def test_clipped_first_step_moves_the_weights_by_lr_times_the_clip(clips, tmp_path):
    # First SGD step without weight decay: the update is -lr * g * c / |g| when |g| > c, so its norm is lr * c.
    lr, c = 1e-2, 1e-3
    t = _trainer(clips, tmp_path / "run", tmp_path / "cache", iterations=1, lr_rgb=lr, clip_gradient=c,
                 weight_decay=0.0)
    start = t.initial_model()
    names = {n for n, p in start.backbone.named_parameters() if p.requires_grad}
    before = {n: v.clone() for n, v in start.backbone.state_dict().items() if n in names}
    t.run()
    after = torch.load(t.final_path, weights_only=True)["state_dict"]
    moved = torch.sqrt(sum(((after[n] - before[n]).double() ** 2).sum() for n in names))
    assert float(moved) == pytest.approx(lr * c, rel=1e-3)


def test_resume_equals_an_uninterrupted_run(clips, tmp_path):
    whole = _trainer(clips, tmp_path / "whole", tmp_path / "cache", iterations=3)
    whole.run()
    part = _trainer(clips, tmp_path / "part", tmp_path / "cache", iterations=3)
    assert part.run(stop_after=2) is None and part.state_path.exists() and not part.final_path.exists()
    again = _trainer(clips, tmp_path / "part", tmp_path / "cache", iterations=3)
    again.run()
    a = torch.load(whole.final_path, weights_only=True)
    b = torch.load(again.final_path, weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    la = [(r["iteration"], r["loss"]) for r in json.loads(
        __import__("pandas").read_csv(whole.log_path).to_json(orient="records"))]
    lb = [(r["iteration"], r["loss"]) for r in json.loads(
        __import__("pandas").read_csv(again.log_path).to_json(orient="records"))]
    assert la == lb and len(la) == 3 and not again.state_path.exists()


def test_a_checkpoint_of_other_settings_is_refused(clips, tmp_path):
    part = _trainer(clips, tmp_path / "part", tmp_path / "cache", iterations=4)
    part.run(stop_after=1)
    other = _trainer(clips, tmp_path / "part", tmp_path / "cache", iterations=4, lr_rgb=0.01)
    with pytest.raises(Exception, match="another training .*config"):
        other.run()


# -- the command and extraction with its weights -----------------------------------------------------------
def test_command_writes_both_networks_with_their_record(trained):
    rec = json.loads((trained / "record.json").read_text())
    assert rec["classes"] == ["Down", "Right"] and rec["skipped"] == []
    for s, channels in (("rgb", 3), ("flow", 10)):
        ck = torch.load(trained / f"{s}.pt", weights_only=True)
        assert ck["state_dict"]["conv1.weight"].shape[1] == channels
        assert ck["state_dict"]["fc.weight"].shape == (2, 2048)
        assert ck["record"]["stream"] == s and ck["record"]["iterations"] == 2 and ck["record"]["size"] == 32
        assert rec["streams"][s]["config"]["lr_" + s] == ck["record"]["config"]["lr_" + s]
        assert len((trained / f"log-{s}.csv").read_text().splitlines()) == 3
    assert not list(trained.glob("state-*.pt")) and not list(trained.rglob("*.tmp"))


def test_flow_started_from_the_fine_tuned_rgb_network_in_a_second_call(clips, tmp_path):
    """The demo's recipe: RGB first, then flow cross-modality initialised from it; one record of both."""
    out = tmp_path / "run"
    r = CliRunner().invoke(train_backbone, [str(clips), str(out), "--stream", "rgb", "--iterations", "1", *TINY])
    assert r.exit_code == 0, r.output
    own = [a for a in TINY if a not in ("--weights", "random")]
    r = CliRunner().invoke(train_backbone, [str(clips), str(out), "--stream", "flow", "--iterations", "1",
                                            "--weights", str(out / "rgb.pt"), *own])
    assert r.exit_code == 0, r.output
    rgb = torch.load(out / "rgb.pt", weights_only=True)
    flow = torch.load(out / "flow.pt", weights_only=True)
    assert flow["record"]["initial_weights"] == describe_weights(str(out / "rgb.pt"))[0]
    rec = json.loads((out / "record.json").read_text())
    assert rec["streams"]["rgb"] == rgb["record"] and rec["streams"]["flow"] == flow["record"]
    # Cross-modality: flow conv1 is the RGB conv1's channel mean, one copy per flow channel, before training.
    w = rgb["state_dict"]["conv1.weight"].mean(dim=1, keepdim=True)
    moved = (flow["state_dict"]["conv1.weight"] - w.expand(-1, 10, -1, -1)).abs().max()
    assert moved < 0.05 * w.abs().max()
    assert flow["state_dict"]["layer4.2.conv3.weight"].shape == rgb["state_dict"]["layer4.2.conv3.weight"].shape


def test_finished_run_is_reused_and_other_settings_refused(clips, trained):
    before = (trained / "rgb.pt").stat().st_mtime_ns
    r = CliRunner().invoke(train_backbone, [str(clips), str(trained), "--iterations", "2", *TINY])
    assert r.exit_code == 0, r.output
    assert (trained / "rgb.pt").stat().st_mtime_ns == before
    r = CliRunner().invoke(train_backbone, [str(clips), str(trained), "--iterations", "3", *TINY])
    assert r.exit_code == 2 and "trained otherwise" in r.output and len(r.output.strip().splitlines()) <= 3


def test_extract_features_loads_the_checkpoint_and_records_it(clips, trained, tmp_path):
    tuned, rand = tmp_path / "tuned.h5", tmp_path / "random.h5"
    r = CliRunner().invoke(extract_features, [str(clips / "Down"), str(tuned), "--rgb-weights",
                                              str(trained / "rgb.pt"), "--flow-weights", str(trained / "flow.pt"),
                                              *EXTRACT])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(extract_features, [str(clips / "Down"), str(rand), "--weights", "random", *EXTRACT])
    assert r.exit_code == 0, r.output
    with h5py.File(tuned) as a, h5py.File(rand) as b:
        w = json.loads(a.attrs["extraction"])["weights"]
        assert w["rgb"].startswith("sha256:") and w["flow"].startswith("sha256:") and w["rgb"] != w["flow"]
        assert json.loads(b.attrs["extraction"])["weights"] == {"rgb": "random", "flow": "random"}
        assert json.loads(a.attrs["weights_records"])["flow"]["stream"] == "flow"
        v = sorted(a["videos"])[0]
        for s in ("rgb", "flow"):
            fa, fb = a["videos"][v][s][()], b["videos"][v][s][()]
            assert fa.shape == fb.shape and not np.allclose(fa, fb)
    # the two stores never mix: no appending other weights' rows, no merging
    r = CliRunner().invoke(extract_features, [str(clips / "Right"), str(tuned), "--weights", "random", *EXTRACT])
    assert r.exit_code == 2 and "other settings (weights)" in r.output
    r = CliRunner().invoke(merge_features, [str(tuned), str(rand), str(tmp_path / "m.h5")])
    assert r.exit_code != 0 and not (tmp_path / "m.h5").exists()


def test_bad_clips_are_named_and_left_out(clips, tmp_path):
    src = tmp_path / "clips"
    make_clips(src, n=2)
    (src / "Down" / "broken.mp4").write_bytes(b"not a video at all" * 10)
    out = tmp_path / "run"
    r = CliRunner().invoke(train_backbone, [str(src), str(out), "--iterations", "1", "--stream", "rgb", *TINY])
    assert r.exit_code == 0, r.output
    lines = [l for l in r.output.splitlines() if "broken" in l]
    assert len(lines) == 1 and "skipped" in lines[0] and str(src / "Down" / "broken.mp4") in lines[0]
    rec = json.loads((out / "record.json").read_text())
    assert [s["clip"] for s in rec["skipped"]] == ["broken"] and rec["streams"]["rgb"]["n_clips"] == 4


@pytest.mark.parametrize("layout, message", [
    ("loose", "must sit in a folder named after its class"),
    ("one_class", "at least 2"),
    ("all_broken", "none of the 2 clips could be decoded"),
])
def test_unusable_clip_sets_fail_with_one_line_and_leave_nothing(tmp_path, layout, message):
    src = tmp_path / "clips"
    if layout == "loose":
        src.mkdir()
        write_video(src / "a.mp4", moving_texture(8, 32, 32), fps=10)
    elif layout == "one_class":
        (src / "Only").mkdir(parents=True)
        write_video(src / "Only" / "a.mp4", moving_texture(8, 32, 32), fps=10)
    else:
        for c in ("A", "B"):
            (src / c).mkdir(parents=True)
            (src / c / f"{c}.mp4").write_bytes(b"junk")
    out = tmp_path / "run"
    r = CliRunner().invoke(train_backbone, [str(src), str(out), "--iterations", "1", "--stream", "rgb", *TINY])
    assert r.exit_code == 2, r.output
    errors = [l for l in r.output.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert layout == "all_broken" or not out.exists()


def test_epochs_set_the_number_of_iterations(clips, tmp_path):
    t = _trainer(clips, tmp_path / "run", tmp_path / "cache", epochs=3)
    assert t.total == math.ceil(3 * 6 / 2)


def test_without_partial_bn_every_batchnorm_trains():
    model = TSN(initial_network("rgb", None, "random"), 2, 0.5, partial_bn=False).train()
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.training and m.weight.requires_grad for m in bns)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1", "tpu7"])
def test_unusable_device_is_refused_in_one_line(clips, tmp_path, device):
    out = tmp_path / "run"
    r = CliRunner().invoke(train_backbone, [str(clips), str(out), "--device", device, *TINY])
    assert r.exit_code == 2 and f"--device {device!r}" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()
