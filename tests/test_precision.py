"""train-tsr --precision: what auto chooses, that bf16 runs in bf16, and that a run keeps the precision it began with."""
import json

import pytest
import torch

from tsrnet.data.core.errors import DataError
from tsrnet.train import trainer as trainer_mod
from tsrnet.train.config import Config
from tsrnet.train.data import prepare_data
from tsrnet.train.trainer import Trainer, train_precision

CPU = torch.device("cpu")


def mgfn(tiny, epochs=2, precision="auto"):
    cfg = Config.for_method("mgfn", {"hidden_dim": 8}, {"epochs": epochs, "precision": precision,
                                                        "checkpoint_seconds": 0})
    return cfg, prepare_data(cfg, tiny["untrimmed"], tiny["annotations"], "train")


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_only_for_methods_that_prefer_it_where_the_device_computes_in_it(monkeypatch, native):
    monkeypatch.setattr(trainer_mod, "native_bf16", lambda device: native)
    assert train_precision("auto", CPU, "mgfn") == ("bf16" if native else "fp32")
    for small in ("tsrnet", "srnet", "stpn", "untrimmednet-soft", "two-stream", "kt-mgfn"):
        assert train_precision("auto", CPU, small) == "fp32"
    assert train_precision("bf16", CPU, "tsrnet") == "bf16" and train_precision("fp32", CPU, "mgfn") == "fp32"


@pytest.mark.parametrize("native", [True, False])
def test_a_run_records_what_auto_chose(tiny, tmp_path, monkeypatch, native):
    monkeypatch.setattr(trainer_mod, "native_bf16", lambda device: native)
    cfg, data = mgfn(tiny, epochs=1)
    t = Trainer(cfg, data, tmp_path / "run", progress=False)
    t.fit()
    want = "bf16" if native else "fp32"
    assert t.cfg.train.precision == want
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["precision"] == want


def test_bf16_runs_the_layers_in_bf16_and_keeps_float32_weights(tiny, tmp_path):
    cfg, data = mgfn(tiny, epochs=1, precision="bf16")
    t = Trainer(cfg, data, tmp_path / "run", progress=False, log=lambda m: None)
    seen = []
    conv = next(m for m in t.model.modules() if isinstance(m, torch.nn.Conv1d))
    conv.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    t.fit()
    assert seen and set(seen) == {torch.bfloat16}
    assert {p.dtype for p in t.model.parameters()} == {torch.float32}
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    # The same run in fp32 computes differently, but not far: bf16 keeps 8 bits of mantissa.
    cfg32, _ = mgfn(tiny, epochs=1, precision="fp32")
    t32 = Trainer(cfg32, data, tmp_path / "run32", progress=False)
    t32.fit()
    a, b = t.model.state_dict(), t32.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], rtol=0.05, atol=0.05)


def test_bf16_resume_equals_an_uninterrupted_run(tiny, tmp_path):
    cfg, data = mgfn(tiny, epochs=4, precision="bf16")
    full = Trainer(cfg, data, tmp_path / "full", progress=False, log=lambda m: None)
    full.fit()
    part = Trainer(cfg, data, tmp_path / "part", progress=False, log=lambda m: None)
    run_epoch = part.run_epoch

    def killed_at_2(epoch, stage):  # a kill after two epochs (checkpoint_seconds 0 saves each one)
        if epoch == 2:
            raise KeyboardInterrupt
        return run_epoch(epoch, stage)

    part.run_epoch = killed_at_2
    with pytest.raises(KeyboardInterrupt):
        part.fit()
    resumed = Trainer(cfg, data, tmp_path / "part", progress=False, log=lambda m: None)
    assert resumed.try_resume() and resumed.epochs_done == 2
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_in_another_precision_is_refused_by_name(tiny, tmp_path):
    cfg, data = mgfn(tiny, epochs=2, precision="bf16")
    part = Trainer(cfg, data, tmp_path / "run", progress=False, log=lambda m: None)
    part.stages = part.stages[:1]
    part.fit()
    with pytest.raises(DataError, match=r"train\.precision: 'bf16' in the run, 'fp32' now"):
        Trainer(cfg.replace("train", precision="fp32"), data, tmp_path / "run", progress=False).try_resume()


def test_bf16_where_the_device_converts_is_warned_about(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_mod, "native_bf16", lambda device: False)
    cfg, data = mgfn(tiny, epochs=1, precision="bf16")
    logs = []
    Trainer(cfg, data, tmp_path / "run", progress=False, log=logs.append)
    assert len(logs) == 1 and logs[0].startswith("warning: --precision bf16 on cpu") and "slower than fp32" in logs[0]


@pytest.mark.parametrize("native", [True, False])
def test_train_tsr_says_when_auto_chose_bf16(tiny, tmp_path, monkeypatch, native):
    from click.testing import CliRunner

    from tsrnet.train.cli import train_tsr

    monkeypatch.setattr(trainer_mod, "native_bf16", lambda device: native)
    r = CliRunner().invoke(train_tsr, [str(tiny["untrimmed"]), "--annotations", str(tiny["annotations"]),
                                       "--subset", "train", "--model", "mgfn", "--steps", "2", "--hidden-dim", "8",
                                       "--quiet", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    said = "mgfn: training in bf16 autocast on cpu (--precision fp32 to compute in float32)"
    assert (said in r.output) == native
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["precision"] == (
        "bf16" if native else "fp32")


def test_oic_loss_under_bf16_autocast_stays_that_of_float32_on_long_videos():
    """L_OIC is computed in float32 from the bf16 network's outputs. Computed in bf16, anchor positions past row
    256 round to 2 rows and its running sums cancel: on this 400-row batch that gave -21.6 against -0.016."""
    from types import SimpleNamespace

    from tsrnet.train.methods import method_class

    torch.manual_seed(0)
    cls = method_class("mgfn")
    method = cls(cls.Options(hidden_dim=16, dropout=0.0, act_floor=0.0, oic_ceiling=1.0))  # every anchor kept
    model = method.module(("rgb", "flow"), 8, list("abc"))
    for p in model.brm.parameters():  # regress away from the anchors themselves
        torch.nn.init.normal_(p, std=0.05)
    b, t = 2, 400
    batch = SimpleNamespace(x={s: torch.randn(b, t, 8) for s in ("rgb", "flow")},
                            mask=torch.ones(b, t, dtype=torch.bool), targets=torch.tensor([[1.0, 0, 0], [0, 1, 0]]),
                            trimmed=None, pair=torch.zeros(0, dtype=torch.long))
    _, fp32 = method.loss(model, batch, "main")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, bf16 = method.loss(model, batch, "main")
    assert fp32["oic_anchors"] == bf16["oic_anchors"] == b * t
    assert bf16["oic"].dtype == torch.float32
    assert abs(float(bf16["oic"]) - float(fp32["oic"])) < 0.1


def test_an_auto_run_resumes_in_the_precision_it_began_with(tiny, tmp_path, monkeypatch):
    """A run begun in fp32 (on hardware without bf16, or before the setting existed) and continued where auto
    would choose bf16 keeps fp32, and the other way round; an explicit other precision is refused."""
    for began, now in (("fp32", True), ("bf16", False)):
        run = tmp_path / began
        monkeypatch.setattr(trainer_mod, "native_bf16", lambda device: began == "bf16")
        cfg, data = mgfn(tiny, epochs=2)
        part = Trainer(cfg, data, run, progress=False, log=lambda m: None)
        part.stages = part.stages[:1]
        part.fit()
        assert part.cfg.train.precision == began
        monkeypatch.setattr(trainer_mod, "native_bf16", lambda device: now)
        logs = []
        resumed = Trainer(cfg, data, run, progress=False, log=logs.append)
        assert resumed.try_resume() and resumed.epochs_done == 1 and resumed.cfg.train.precision == began
        assert any("trains in bf16, which cpu does not compute in" in m for m in logs) == (began == "bf16")
    other = cfg.replace("train", precision="fp32")
    with pytest.raises(DataError, match=r"train\.precision: 'bf16' in the run, 'fp32' now"):
        Trainer(other, data, tmp_path / "bf16", progress=False).try_resume()


def test_an_unknown_precision_is_refused():
    with pytest.raises(DataError, match="precision 'fp16' is not one of auto, fp32, bf16"):
        train_precision("fp16", CPU, "mgfn")
