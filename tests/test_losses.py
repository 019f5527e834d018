"""Losses and modules against the paper's formulas."""
import numpy as np
import pytest
import torch

from tsrnet.train.losses import smoothness, sparsity
from tsrnet.train.modules import SelfAttention, mmd2


def paper_smoothness(a: np.ndarray) -> float:
    """Eq. (4) in matrix form: 2aᵀa − aᵀP1a − aᵀP2a − 2aᵀP3P4ᵀa, matrices built as printed."""
    n = len(a)
    P1 = np.zeros((n, n)); P1[0, 0] = 1
    P2 = np.zeros((n, n)); P2[-1, -1] = 1
    P3 = np.eye(n); P3[-1, -1] = 0
    P4 = np.zeros((n, n)); P4[np.arange(1, n), np.arange(n - 1)] = 1  # ones below the diagonal
    return float(2 * a @ a - a @ P1 @ a - a @ P2 @ a - 2 * a @ P3 @ P4.T @ a)


@pytest.mark.parametrize("n", [2, 3, 7, 40])
def test_smoothness_equals_matrix_form(n, rng):
    a = rng.random(n)
    g = torch.tensor(a, dtype=torch.float64).view(1, n, 1)
    mask = torch.ones(1, n, dtype=torch.bool)
    assert smoothness(g, mask, "sum").item() == pytest.approx(paper_smoothness(a), rel=1e-12)
    assert smoothness(g, mask, "mean").item() == pytest.approx(paper_smoothness(a) / (n - 1), rel=1e-12)
    assert smoothness(g, mask).item() == smoothness(g, mask, "sum").item()
    assert paper_smoothness(a) == pytest.approx(float(np.sum(np.diff(a) ** 2)), rel=1e-12)


def test_smoothness_ignores_padding():
    g = torch.tensor([[0.0, 1.0, 0.0, 5.0, 9.0], [0.0, 2.0, 2.0, 2.0, 2.0]]).unsqueeze(-1)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    # video 1: (1 + 1) over 2 real pairs; video 2: 4 over 4 pairs
    assert smoothness(g, mask, "sum").item() == pytest.approx((2.0 + 4.0) / 2)
    assert smoothness(g, mask, "mean").item() == pytest.approx((2.0 / 2 + 4.0 / 4) / 2)


def test_sparsity_is_mean_l1_over_real_rows():
    g = torch.tensor([[0.5, 0.5, 0.0, 7.0], [1.0, 0.0, 0.0, 0.0]]).unsqueeze(-1)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    # video 1: (0.5+0.5+0)/3, video 2: 1/4
    assert sparsity(g, mask).item() == pytest.approx((1 / 3 + 1 / 4) / 2)


def test_sparsity_keep_exempts_the_highest_gates_of_each_video():
    # video 1: 5 real rows (the 7.0 is padding); keep 0.4 -> floor(0.6 * 5) = 3 lowest: 0.1 + 0.3 + 0.5, over 5
    # video 2: 4 rows; keep 0.4 -> floor(0.6 * 4) = 2 lowest: 0.05 + 0.2, over 4
    g = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.7, 7.0], [0.2, 0.8, 0.05, 0.6, 9.0, 9.0]]).unsqueeze(-1)
    mask = torch.tensor([[True] * 5 + [False], [True] * 4 + [False] * 2])
    assert sparsity(g, mask, keep=0.4).item() == pytest.approx((0.9 / 5 + 0.25 / 4) / 2)
    assert sparsity(g, mask, keep=0.0).item() == pytest.approx(sparsity(g, mask).item())
    # the exempt rows get no gradient; the penalised ones get 1 / n
    g = g.clone().requires_grad_(True)
    sparsity(g, mask, keep=0.4).backward()
    expected = torch.tensor([[0, 1 / 5, 1 / 5, 1 / 5, 0, 0], [1 / 4, 0, 1 / 4, 0, 0, 0]]).unsqueeze(-1) / 2
    assert torch.allclose(g.grad, expected)


def test_softmax_attention_sums_to_one_and_gate_is_bounded(rng):
    x = torch.tensor(rng.standard_normal((2, 9, 6)), dtype=torch.float32)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    a, g = SelfAttention(6, 5, kind="softmax")(x, mask)
    assert torch.allclose(a.sum(dim=1), torch.ones(2, 1))
    assert a[1, 6:].abs().max() == 0
    assert torch.allclose(g.amax(dim=1), torch.ones(2, 1))
    a, g = SelfAttention(6, 5, kind="gate")(x, mask)
    assert ((g >= 0) & (g <= 1)).all() and g[1, 6:].abs().max() == 0
    assert torch.allclose(a[1, :6], g[1, :6] / 6)


def test_mmd_near_zero_for_one_distribution_and_grows_with_shift():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=gen)
    y = torch.randn(200, 16, generator=gen)
    same = mmd2(x, y).item()
    shifts = [mmd2(x, y + s).item() for s in (0.25, 0.5, 1.0, 2.0)]
    assert 0 <= same < 0.01
    assert shifts[0] > same
    assert all(b > a for a, b in zip(shifts, shifts[1:]))


def test_mmd_matches_eq7_by_hand():
    # One bandwidth: k(u, v) = exp(-|u-v|^2 / (2 s^2 med)); median pairwise sq. distance of {0, 1, 3} is 4.
    x = torch.tensor([[0.0], [1.0]])
    y = torch.tensor([[3.0]])
    k = lambda d2: np.exp(-d2 / (2 * 4.0))  # noqa: E731
    kxx = (2 * k(0) + 2 * k(1)) / 4
    kyy = k(0)
    kxy = (k(9) + k(4)) / 2
    assert mmd2(x, y, bandwidths=(1.0,)).item() == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-6)


def test_complement_pool_weights_and_background_loss():
    from tsrnet.train.losses import background_loss
    from tsrnet.train.modules import complement

    g = torch.tensor([[0.0, 0.5, 1.0, 0.3], [0.2, 0.2, 0.9, 0.9]]).unsqueeze(-1)
    mask = torch.tensor([[True, True, True, False], [True] * 4])
    w = complement(g, mask)
    # video 1: (1, 0.5, 0) over 1.5, padding 0; video 2: (0.8, 0.8, 0.1, 0.1) over 1.8
    np.testing.assert_allclose(w[..., 0].numpy(), [[2 / 3, 1 / 3, 0, 0], [0.8 / 1.8, 0.8 / 1.8, 0.1 / 1.8, 0.1 / 1.8]],
                               rtol=1e-6)
    logits = torch.tensor([[0.0, 2.0], [-1.0, 1.0]])
    # BCE against 0 is softplus(logit), summed over classes and averaged over videos.
    expected = (np.log(2) + np.log1p(np.exp(2.0)) + np.log1p(np.exp(-1.0)) + np.log1p(np.exp(1.0))) / 2
    assert background_loss(logits).item() == pytest.approx(expected, rel=1e-6)


def test_sparsity_weights_scale_each_videos_term():
    # video 1: mean |g| over its 3 real rows = 0.6; video 2: over 2 rows = 0.1; weights 0.5 and 2
    g = torch.tensor([[0.9, 0.3, 0.6, 5.0], [0.1, 0.1, 7.0, 7.0]]).unsqueeze(-1)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    w = torch.tensor([0.5, 2.0])
    assert sparsity(g, mask, weights=w).item() == pytest.approx((0.5 * 0.6 + 2.0 * 0.1) / 2)
    # with keep 0.5: floor(0.5 * 3) = 1 lowest row (0.3) of video 1, floor(0.5 * 2) = 1 (0.1) of video 2
    assert sparsity(g, mask, keep=0.5, weights=w).item() == pytest.approx((0.5 * 0.3 / 3 + 2.0 * 0.1 / 2) / 2)
    assert sparsity(g, mask, weights=torch.ones(2)).item() == pytest.approx(sparsity(g, mask).item())


def test_sparsity_confidence_weighs_each_video_by_its_own_class_probability():
    """SRNet with --sparsity-confidence: each video's R_sparsity times the mean sigmoid probability of its
    labelled classes, computed here from the model's own outputs."""
    from types import SimpleNamespace

    from tsrnet.train.methods import method_class

    torch.manual_seed(0)
    cls = method_class("srnet")
    method = cls(cls.Options(hidden_dim=8, attention_dim=4, dropout=0.0, sparsity_confidence=True,
                             sparsity_keep=0.0))
    model = method.build(("rgb", "flow"), 6, ["a", "b", "c"])
    model.eval()
    x = {s: torch.randn(2, 5, 6) for s in ("rgb", "flow")}
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    targets = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    batch = SimpleNamespace(x=x, mask=mask, targets=targets, trimmed=None, pair=torch.zeros(0, dtype=torch.long))
    _, parts = method.loss(model, batch, "main")
    with torch.no_grad():
        out = model(x, mask)["rgb"]
        p = torch.sigmoid(out["logits"]).numpy()
        g = out["g"][..., 0].numpy()
    conf = [(p[0, 0] + p[0, 2]) / 2, p[1, 1]]
    expect = (conf[0] * g[0, :5].mean() + conf[1] * g[1, :3].mean()) / 2
    assert float(parts["sparsity_rgb"]) == pytest.approx(expect, rel=1e-5)
