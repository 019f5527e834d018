"""The method interface: a contract every registered method meets, tested the moment it is registered."""
import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tsrnet.data.core.errors import DataError
from tsrnet.data.format.store import FeatureStore
from tsrnet.detect.cli import detect
from tsrnet.detect.pipeline import score_store
from tsrnet.train.cli import train_tsr
from tsrnet.train.config import Config
from tsrnet.train.data import prepare_data
from tsrnet.train.methods import REGISTRY, method_class
from tsrnet.train.rundir import load_run
from tsrnet.train.trainer import Trainer

SMALL = {"hidden_dim": 16, "attention_dim": 8}


def small(name: str) -> dict:
    own = {f.name for f in dataclasses.fields(method_class(name).Options)}
    return {k: v for k, v in SMALL.items() if k in own}


def config(name, **train):
    return Config.for_method(name, small(name), {"epochs": 2, "pretrain_steps": 2, "checkpoint_seconds": 0, **train})


def data_for(name, tiny, cfg):
    return prepare_data(cfg, tiny["untrimmed"], tiny["annotations"], "train",
                        tiny["trimmed"] if method_class(name).uses_trimmed else None)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_contract(name, tiny, tmp_path):
    check_contract(name, tiny, tmp_path)


def test_the_documented_example_method_meets_the_contract(tiny, tmp_path):
    """docs/adding-a-method.md's example, registered as written, passes the same contract."""
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "adding-a-method.md").read_text()
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    try:
        exec(compile(code, "adding-a-method.md", "exec"), {"__name__": "tsrnet.train.methods.docs_example"})
        assert "my-method" in REGISTRY
        check_contract("my-method", tiny, tmp_path)
    finally:
        REGISTRY.pop("my-method", None)


def check_contract(name, tiny, tmp_path):
    cfg = config(name)
    data = data_for(name, tiny, cfg)
    tr = Trainer(cfg, data, tmp_path / "run", progress=False)

    # Every parameter is optimised, and one training step gives a finite loss and a gradient to every one.
    in_optim = {id(p) for g in tr.optim.param_groups for p in g["params"]}
    assert all(id(p) in in_optim for p in tr.model.parameters())
    tr.model.train()
    batch = next(iter(tr._loader(tr.main_set, 0)))
    loss, parts = tr.method.loss(tr.model, batch, "main")
    assert torch.isfinite(loss) and all(np.isfinite(float(v)) for v in parts.values())
    loss.backward()
    dead = [n for n, p in tr.model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    if method_class(name).uses_trimmed:  # the trimmed attention learns from the partner clips of the batch
        assert batch.trimmed is not None
    assert dead == []

    # Training, then an interrupted run resumed, end in the same weights.
    tr = Trainer(cfg, data, tmp_path / "run", progress=False)
    tr.fit()
    part = Trainer(cfg, data, tmp_path / "part", progress=False)
    part.stages = part.stages[:-1]
    part.fit()
    resumed = Trainer(cfg, data, tmp_path / "part", progress=False)
    resumed.fit()
    a, b = tr.model.state_dict(), resumed.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])

    # The run rebuilds the same method; scores have the documented shapes.
    model, cfg2, info = load_run(tmp_path / "run", "cpu")
    assert cfg2.method == name and type(model.method) is method_class(name)
    # ... with the configuration given, --precision auto recorded as what it chose.
    assert cfg.train.precision == "auto" and tr.cfg.train.precision in ("fp32", "bf16")
    assert cfg2.to_dict() == cfg.replace("train", precision=tr.cfg.train.precision).to_dict()
    store = FeatureStore(tiny["untrimmed"])
    ids = store.video_ids(subset="test")[:3]
    c = len(model.classes)
    for vs in score_store(model, store, ids, "cpu"):
        t = len(vs.times)
        assert set(vs.rows) == set(model.outputs) and set(vs.video_prob) == set(model.outputs)
        for r in vs.rows.values():
            for key, arr in r.items():
                assert arr.shape in ((t,), (t, c)), key
                assert np.isfinite(arr).all()
        for p in vs.video_prob.values():
            assert p.shape == (c,) and (p >= 0).all() and (p <= 1).all()
        ev = model.method.evidence(vs, cfg2.detect)
        assert ev.video.shape == (c,) and ev.shown.shape == (t, c) and (ev.sources or ev.intervals is not None)
        assert all(s.level.shape == (t, c) and s.evidence.shape == (t, c) for s in ev.sources)
        assert all(0 <= k < c and 0 <= a <= b <= t and np.isfinite(sc) for k, a, b, sc in ev.intervals or [])

    # detect runs with the method's own defaults, no option given.
    r = CliRunner().invoke(detect, ["--run", str(tmp_path / "run"), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "mAP%" in r.output
    res = json.loads((tmp_path / "run" / "detections.json").read_text())["results"]
    assert set(res) == set(store.video_ids(subset="test"))


def test_each_method_records_its_own_detection_defaults():
    assert Config.for_method("stpn").detect.score == "inside"
    assert Config.for_method("kt-mgfn").detect.suppress == "soft-nms"
    from tsrnet.detect.config import DetectConfig
    # The localisation study chose the shared rule; the defaults study added the attention weighting.
    assert Config.for_method("untrimmednet-soft").detect == DetectConfig(attention_weight=1.0)
    assert Config.for_method("untrimmednet-hard").detect == DetectConfig()
    assert Config.for_method("untrimmednet-soft").options.n_clips == 15
    assert Config.for_method("untrimmednet-hard").options.n_clips == 7
    assert Config.for_method("tsrnet").detect.scale == "otsu" and Config.for_method("tsrnet").detect.min_rows == 2
    # What is given wins over the method's default.
    assert Config.for_method("stpn", detect={"score": "mean"}).detect.score == "mean"


def test_a_method_whose_paper_counts_epochs_has_its_own_length():
    """KT-MGFN's and MGFN's paper trains 100 epochs: their default length, which a length given either way
    replaces; every other method keeps --steps."""
    for name in ("kt-mgfn", "mgfn"):
        assert Config.for_method(name).train.epochs == 100
        assert Config.for_method(name, train={"steps": 300}).train.epochs == 0  # --steps 300 is the length
        assert Config.for_method(name, train={"steps": 300}).train.steps == 300
        assert Config.for_method(name, train={"epochs": 7}).train.epochs == 7
        assert Config.for_method(name, train={"seed": 3}).train.epochs == 100  # other settings leave it
    assert Config.for_method("tsrnet").train.epochs == 0 and Config.for_method("tsrnet").train.steps == 1500
    assert Config.for_method("stpn", train={"epochs": 4}).train.epochs == 4


def test_unknown_settings_are_refused():
    with pytest.raises(DataError, match="has no setting 'alpha'"):
        Config.for_method("stpn", {"alpha": 1.0})
    d = Config.for_method("srnet").to_dict()
    d["options"]["no_such"] = 1
    with pytest.raises(DataError, match="no setting 'no_such'"):
        Config.from_dict(d)
    d = Config.for_method("srnet").to_dict()
    d["train"]["lr_typo"] = 1
    with pytest.raises(DataError, match="no setting 'lr_typo'"):
        Config.from_dict(d)
    with pytest.raises(DataError, match="unknown section 'extra'"):
        Config.from_dict({**Config().to_dict(), "extra": {}})
    with pytest.raises(DataError, match="method 'nope'"):
        Config.from_dict({**Config().to_dict(), "method": "nope"})


def test_a_config_of_another_layout_is_refused_in_one_line():
    # A config.json with sections this version does not write (no compatibility with unreleased formats).
    with pytest.raises(DataError, match="unknown section 'loss'"):
        Config.from_dict({"model": {"model": "two-stream"}, "loss": {"alpha": 0.5}})


def test_recorded_settings_win_over_the_defaults():
    d = Config.for_method("tsrnet").to_dict()
    assert d["options"]["sparsity_keep"] == 0.7  # today's default
    d["options"]["sparsity_keep"] = 0.25
    assert Config.from_dict(d).options.sparsity_keep == 0.25

def test_train_tsr_refuses_a_setting_of_another_method(tiny, tmp_path):
    r = CliRunner().invoke(train_tsr, [str(tiny["untrimmed"]), "--annotations", str(tiny["annotations"]),
                                       "--model", "stpn", "--alpha", "2", "--out", str(tmp_path / "r")])
    assert r.exit_code == 2
    assert "--alpha is a setting of srnet, tsrnet-fc1, tsrnet, mgfn, kt-mgfn, not of --model stpn" in r.output
    assert not (tmp_path / "r").exists()


def test_help_lists_every_methods_settings_under_its_name():
    r = CliRunner().invoke(train_tsr, ["--help"])
    assert r.exit_code == 0
    for name in REGISTRY:
        assert name in r.output
    assert "Settings of stpn" in r.output and "Settings of untrimmednet-soft, untrimmednet-hard" in r.output
    assert "--shot-sigma" in r.output and "--kt-weight" in r.output


def test_a_module_outside_the_stream_nets_is_optimised(tiny):
    """build_optimizer groups by parameter name: a layer a method adds anywhere trains (lr for all but nets.flow.)."""
    from tsrnet.train.trainer import build_optimizer

    cfg = Config.for_method("srnet", small("srnet"), {"lr": 0.1, "lr_flow": 0.2})
    model = cfg.make_method().build(("rgb", "flow"), 24, ["a", "b"])
    model.extra = torch.nn.Linear(3, 3)
    opt = build_optimizer(model, cfg)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    for n, p in model.named_parameters():
        assert lr_of[id(p)] == (0.2 if n.startswith("nets.flow.") else 0.1), n


def test_the_module_knows_the_unit_that_built_it():
    """MethodModule.method: set by Method.module, None on a module built directly, never in the state."""
    from tsrnet.train.methods import Method, MethodModule

    unit = Config.for_method("stpn").make_method()
    model = unit.module(("rgb", "flow"), 24, ["a", "b"])
    assert model.method is unit and not any(k.startswith("method") for k in model.state_dict())
    assert unit.build(("rgb", "flow"), 24, ["a", "b"]).method is None
    assert "method" in MethodModule.__annotations__

    class Wrong(Method):
        def build(self, streams, dim, classes):
            return torch.nn.Linear(dim, len(classes))

    Wrong.Options = method_class("stpn").Options
    with pytest.raises(TypeError, match="must return a MethodModule"):
        Wrong().module(("rgb",), 4, ["a"])


def one_stream_copy(src, dst):
    """The RGB stream of a store alone, as a one-stream release (TSP) gives it."""
    from tsrnet.data.format.store import StoreWriter

    store = FeatureStore(src)
    with StoreWriter(dst, store.feature_dim, ("rgb",)) as w:
        for v in store.video_ids():
            i = store.info(v)
            f = store.read(v, ["rgb"])
            w.add(v, times=f["times"], fps=i.fps, duration=i.duration, n_frames=i.n_frames, domain=i.domain,
                  subset=i.subset, labels=i.labels, rgb=f["rgb"])
    return dst


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_method_trains_and_detects_on_a_one_stream_store(name, tiny, tmp_path):
    u = one_stream_copy(tiny["untrimmed"], tmp_path / "u.h5")
    t = one_stream_copy(tiny["trimmed"], tmp_path / "t.h5")
    cfg = config(name, epochs=1)
    data = prepare_data(cfg, u, tiny["annotations"], "train", t if method_class(name).uses_trimmed else None)
    assert data.run_info["streams"] == ["rgb"]
    Trainer(cfg, data, tmp_path / "run", progress=False).fit()
    model, _, _ = load_run(tmp_path / "run", "cpu")
    assert model.streams == ("rgb",)
    r = CliRunner().invoke(detect, ["--run", str(tmp_path / "run"), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0 and "mAP%" in r.output, r.output


def test_sparsity_keep_outside_0_1_is_refused(tiny, tmp_path):
    r = CliRunner().invoke(train_tsr, [str(tiny["untrimmed"]), "--annotations", str(tiny["annotations"]),
                                       "--model", "srnet", "--sparsity-keep", "1.5", "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "--sparsity-keep" in r.output and "not in the range" in r.output
    assert not (tmp_path / "r").exists()
