"""ResNet101 defined in the project: torchvision's state-dict layout, weight loading, cross-modality init."""
import pytest
import torch

from tsrnet.extract.resnet import ResNet101, WeightsError, build, cross_modality, load_state

# Independent facts about torchvision.models.resnet101 (its documentation and any checkpoint):
# 44,549,160 parameters; 626 state-dict entries (5 per BatchNorm, 1 per conv, 2 for fc).
TV_NUM_PARAMS = 44_549_160
TV_NUM_KEYS = 626
TV_SHAPES = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.running_var": (64,),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer2.3.bn3.num_batches_tracked": (),
    "layer3.22.conv3.weight": (1024, 256, 1, 1),
    "layer4.0.downsample.1.running_mean": (2048,),
    "layer4.2.conv2.weight": (512, 512, 3, 3),
    "fc.weight": (1000, 2048),
    "fc.bias": (1000,),
}


def expected_keys():
    """torchvision's key names, written out from its Bottleneck / layer naming scheme."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["conv1.weight"] + [f"bn1.{b}" for b in bn]
    for stage, blocks in enumerate((3, 4, 23, 3), start=1):
        for i in range(blocks):
            p = f"layer{stage}.{i}"
            for j in (1, 2, 3):
                keys += [f"{p}.conv{j}.weight"] + [f"{p}.bn{j}.{b}" for b in bn]
            if i == 0:
                keys += [f"{p}.downsample.0.weight"] + [f"{p}.downsample.1.{b}" for b in bn]
    return keys + ["fc.weight", "fc.bias"]


@pytest.fixture(scope="module")
def net():
    return ResNet101()


def test_state_dict_matches_torchvision_layout(net):
    sd = net.state_dict()
    assert len(sd) == TV_NUM_KEYS
    assert set(sd) == set(expected_keys())
    assert sum(p.numel() for p in net.parameters()) == TV_NUM_PARAMS
    for k, shape in TV_SHAPES.items():
        assert tuple(sd[k].shape) == shape, k


def test_features_are_the_pooled_input_of_fc(net):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f = net.features(x)
        assert f.shape == (2, 2048)
        torch.testing.assert_close(net(x), net.fc(f))


def test_cross_modality_init(net):
    sd = net.state_dict()
    flow = cross_modality(sd, 10)
    w = flow["conv1.weight"]
    assert w.shape == (64, 10, 7, 7)
    mean = sd["conv1.weight"].mean(dim=1)  # (64, 7, 7): the average over R, G, B
    for c in range(10):
        torch.testing.assert_close(w[:, c], mean)
    m = build(10, sd, "test")
    torch.testing.assert_close(m.conv1.weight, w)
    torch.testing.assert_close(m.layer3[5].conv2.weight, sd["layer3.5.conv2.weight"])  # the rest as is


def test_checkpoint_file_round_trip_with_wrappers(net, tmp_path):
    sd = net.state_dict()
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "dp.pth")
    loaded = load_state(str(tmp_path / "dp.pth"))
    m = build(3, loaded, "dp.pth")
    torch.testing.assert_close(m.fc.weight, sd["fc.weight"])


def test_wrong_keys_are_listed(net, tmp_path):
    sd = net.state_dict()
    bad = {k: v for k, v in sd.items() if not k.startswith("layer4.2.")}
    bad["classifier.weight"] = torch.zeros(3)
    with pytest.raises(WeightsError) as e:
        build(3, bad, "bad.pth")
    msg = str(e.value)
    assert "bad.pth" in msg and "missing" in msg and "layer4.2.conv1.weight" in msg and "classifier.weight" in msg


def test_missing_file_and_random_mode(tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        load_state(str(tmp_path / "nope.pth"))
    assert load_state("random") is None
    m = build(10, None, "random")
    assert m.conv1.weight.shape == (64, 10, 7, 7)
    with torch.no_grad():  # random weights give features of ImageNet-like size, far inside float16 range
        f = m.features(0.15 * torch.randn(2, 10, 224, 224))
        assert 0.2 < f.pow(2).mean().sqrt() < 1.0 and f.abs().max() < 1e3


def test_random_weights_are_seeded_and_keep_flow_direction():
    a, b = build(10, None, "random"), build(10, None, "random")
    torch.testing.assert_close(a.conv1.weight, b.conv1.weight)  # same network in every process
    w = a.conv1.weight  # (64, 10, 7, 7): independent filters per flow channel, unlike cross-modality init
    assert not torch.allclose(w[:, 0], w[:, 1])
    # so motion along x and the same motion along y give different features; with all channels
    # sharing one filter (cross-modality init) swapping the components changes nothing
    x = torch.randn(1, 10, 64, 64)
    swapped = x[:, [1, 0, 3, 2, 5, 4, 7, 6, 9, 8]]
    with torch.no_grad():
        assert not torch.allclose(a.features(x), a.features(swapped))
        shared = build(10, a.state_dict() | {"conv1.weight": w[:, :1].repeat(1, 10, 1, 1)}, "shared")
        torch.testing.assert_close(shared.features(x), shared.features(swapped))
