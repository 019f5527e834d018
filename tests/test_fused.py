"""The fused CPU ResNet101 (extract/fused.py) against the network as defined, computed in float64."""
import copy

import numpy as np
import pytest
import torch

from tsrnet.extract import fused
from tsrnet.extract.features import TwoStreamCNN
from tsrnet.extract.resnet import ResNet101

pytestmark = pytest.mark.skipif(not fused.available(), reason="this torch has no oneDNN fused convolutions")
CPU = torch.device("cpu")


def randomised(in_channels: int, seed: int) -> ResNet101:
    """A ResNet101 in eval mode whose BatchNorms have random statistics and affines (a fresh one's are
    the identity, which folding would pass however wrong it were), scaled so that the residual
    branches neither vanish nor overflow over 33 blocks."""
    g = torch.Generator().manual_seed(seed)
    net = ResNet101(in_channels)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) * 0.4 + 0.2)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return net.eval()


def rel(a, b):
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def nets():
    return {3: randomised(3, 0), 10: randomised(10, 1)}


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(2)
    return {3: torch.randn(3, 3, 48, 40, generator=g), 10: torch.randn(3, 10, 48, 40, generator=g) * 0.15}


@pytest.fixture(scope="module")
def exact(nets, inputs):
    """features() of each network in float64: the reference neither path computes in."""
    with torch.no_grad():
        return {c: copy.deepcopy(nets[c]).double().features(inputs[c].double()) for c in nets}


def test_batchnorm_folds_into_the_convolution():
    g = torch.Generator().manual_seed(3)
    conv, bn = torch.nn.Conv2d(5, 7, 3, padding=1, bias=True), torch.nn.BatchNorm2d(7).eval()
    with torch.no_grad():
        for t in (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean):
            t.copy_(torch.randn(t.shape, generator=g))
        bn.running_var.copy_(torch.rand(7, generator=g) + 0.1)
        x = torch.randn(2, 5, 9, 9, generator=g)
        w, b = fused.fold_batchnorm(conv, bn)
        torch.testing.assert_close(torch.nn.functional.conv2d(x, w, b, padding=1), bn(conv(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels", [3, 10])
def test_float32_equals_the_network_to_rounding(nets, inputs, exact, channels):
    got = fused.FusedFeatures(nets[channels], "fp32")(inputs[channels])
    assert got.dtype == torch.float32 and got.shape == (3, 2048)
    assert rel(got, exact[channels]) < 1e-5
    with torch.no_grad():
        eager = nets[channels].features(inputs[channels])
    assert rel(eager, exact[channels]) < 1e-5  # the eager float32 path: the same order of rounding


@pytest.mark.parametrize("channels", [3, 10])
def test_bfloat16_is_as_close_as_autocast(nets, inputs, exact, channels):
    # bfloat16 keeps 8 bits of mantissa (relative rounding 2^-9 = 0.002 per operation), so the features
    # are expected within a few 1e-3; autocast on the modules is the precision extraction had before.
    got = fused.FusedFeatures(nets[channels], "bf16")(inputs[channels])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        auto = nets[channels].features(inputs[channels]).float()
    err, err_auto = rel(got, exact[channels]), rel(auto, exact[channels])
    assert err < 2e-2
    assert err < 2 * err_auto + 1e-3


def test_input_is_left_unchanged_and_batches_are_independent(nets, inputs):
    f = fused.FusedFeatures(nets[3], "fp32")
    x = inputs[3].clone()
    whole = f(x)
    assert torch.equal(x, inputs[3])
    torch.testing.assert_close(torch.cat([f(x[:2]), f(x[2:])]), whole, rtol=1e-5, atol=1e-6)


def test_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval"):
        fused.FusedFeatures(ResNet101().train(), "fp32")


@pytest.mark.parametrize("precision,is_fused,tol", [("fp32", True, 1e-5), ("bf16", True, 2e-2), ("fp16", False, 2e-2)])
def test_two_stream_cnn_fuses_fp32_and_bf16_on_a_cpu(nets, inputs, exact, precision, is_fused, tol):
    cnn = TwoStreamCNN(nets[3], nets[10], CPU, precision, batch_size=2)
    assert cnn.fused is is_fused
    for stream, c in (("rgb", 3), ("flow", 10)):
        got = cnn(stream, inputs[c])  # 3 rows in batches of 2: a short last batch
        assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (3, 2048)
        assert rel(got, exact[c]) < tol
    assert not TwoStreamCNN(nets[3], nets[10], CPU, precision, fused=False).fused


def test_without_the_fused_operators_the_modules_run(nets, inputs, exact, monkeypatch):
    monkeypatch.setattr(fused, "available", lambda: False)
    cnn = TwoStreamCNN(nets[3], nets[10], CPU, "fp32", batch_size=2)
    assert not cnn.fused
    assert rel(cnn("rgb", inputs[3]), exact[3]) < 1e-5
