"""TV-L1: the project's fused backend (C kernel on a CPU, tensor code on a GPU) against OpenCV's DualTVL1
and against known flow."""
import ctypes

import cv2
import numpy as np
import pytest
import torch

from tsrnet.data.generators.synthetic_motion import affine_pair
from tsrnet.extract import tvl1_cpu
from tsrnet.extract.flow import (TVL1Params, _centred_gradient, _downscale, _median, _median_network, _step,
                                 default_backend, tvl1, tvl1_torch)


def epe(a, b):
    return float(np.linalg.norm(a - b, axis=-1).mean())


@pytest.fixture(scope="module")
def pairs():
    """Textured frame pairs with affine motions of up to 10 px, and their true flow."""
    rng = np.random.default_rng(0)
    ps = [affine_pair(72, 96, rng, max_motion=m) for m in (3.0, 6.0, 10.0, 10.0)]
    prev, nxt, gt = (np.stack(x) for x in zip(*ps))
    return prev, nxt, gt


@pytest.fixture(scope="module")
def flows(pairs):
    """OpenCV's flow and the fused CPU backend's."""
    prev, nxt, _ = pairs
    return tvl1(prev, nxt, "opencv"), tvl1(prev, nxt, "torch", "cpu")


@pytest.fixture(scope="module")
def tensor_flow(pairs):
    """The tensor code (the GPU path), run eagerly on the CPU."""
    prev, nxt, _ = pairs
    with torch.no_grad():
        return tvl1_torch(torch.from_numpy(prev).float(), torch.from_numpy(nxt).float()).numpy()


def test_true_motion_reaches_ten_pixels(pairs):
    assert np.linalg.norm(pairs[2], axis=-1).max() == pytest.approx(10.0, abs=1e-3)


def test_fused_cpu_agrees_with_opencv(flows):
    # The same primitives around the same iterations: only float rounding (and where that moves a
    # stopping test by one iteration) separates them.
    cv, fused = flows
    for a, b in zip(cv, fused):
        assert epe(a, b) <= 0.01


def test_tensor_path_agrees_with_opencv(flows, tensor_flow):
    for a, b in zip(flows[0], tensor_flow):
        assert epe(a, b) <= 0.3


@pytest.mark.parametrize("which", ["fused", "tensor"])
def test_error_no_worse_than_opencv(pairs, flows, tensor_flow, which):
    gt = pairs[2]
    cv = flows[0]
    ours = flows[1] if which == "fused" else tensor_flow
    assert np.mean([epe(t, g) for t, g in zip(ours, gt)]) <= 1.15 * np.mean([epe(c, g) for c, g in zip(cv, gt)])
    # and both actually recover the motion (a zero flow would be ~5 px off)
    assert np.mean([epe(c, g) for c, g in zip(cv, gt)]) < 0.5


def test_kernel_iteration_equals_tensor_step(rng):
    # The C kernel's single sweep (flow of row y, then the dual variables of row y - 1) against the
    # straightforward five-pass formulation of the same iteration, over several iterations.
    h, w = 13, 21
    u1, u2, p11, p12, p21, p22, ix, iy, rho_c = (rng.standard_normal((h, w)).astype(np.float32) for _ in range(9))
    ix[2, 3] = iy[2, 3] = 0.0  # a flat pixel: |grad I1|^2 = 0 takes the third branch of TH
    grad = ix * ix + iy * iy
    l_t, theta, taut = 0.15 * 0.3, 0.3, 0.25 / 0.3
    t = [torch.from_numpy(a.copy())[None] for a in (u1, u2, p11, p12, p21, p22, ix, iy, grad, rho_c)]
    active = torch.ones(1, dtype=torch.bool)
    for _ in range(3):
        *t[:6], active = _step(*t, active, l_t, taut, theta, 0.0)
    assert active.all()  # epsilon 0: only an update of exactly 0 would meet the test
    bufs = tvl1_cpu._arrays(11, h, w)
    for b, a in zip(bufs, (u1, u2, p11, p12, p21, p22, ix, iy, grad, rho_c)):
        b[:] = a
    done = ctypes.c_int(0)
    ran = tvl1_cpu.kernel().tvl1_iterate(h, w, *[b.ctypes.data for b in bufs], l_t, theta, taut, 0.0, 3,
                                         ctypes.byref(done))
    assert ran == 3 and done.value == 0
    for b, ref in zip(bufs[:6], t[:6]):
        np.testing.assert_allclose(b, ref[0].numpy(), rtol=1e-5, atol=1e-5)


def test_kernel_stops_on_the_first_converged_iteration(rng):
    # eps = infinity: the first iteration meets the test and the kernel returns after it.
    h, w = 8, 9
    bufs = tvl1_cpu._arrays(11, h, w)
    for b in bufs[:10]:
        b[:] = rng.standard_normal((h, w))
    done = ctypes.c_int(0)
    ran = tvl1_cpu.kernel().tvl1_iterate(h, w, *[b.ctypes.data for b in bufs], 0.045, 0.3, 0.83, 1e30, 30,
                                         ctypes.byref(done))
    assert (ran, done.value) == (1, 1)


CHEAP = TVL1Params(scales=3, warps=2)  # the tensor code is slow on a CPU; these tests need no full solve


@pytest.fixture(scope="module")
def cheap_batch(pairs):
    prev, nxt, _ = pairs
    with torch.no_grad():
        return tvl1_torch(torch.from_numpy(prev[:3]).float(), torch.from_numpy(nxt[:3]).float(), CHEAP).numpy()


def test_frozen_pairs_make_checks_free(pairs, cheap_batch):
    # Looking at convergence every 7 iterations (the GPU looks every 10) instead of every one gives the
    # same flow: a converged pair is frozen by the mask until the batch drops it.
    prev, nxt, _ = pairs
    with torch.no_grad():
        sparse = tvl1_torch(torch.from_numpy(prev[:3]).float(), torch.from_numpy(nxt[:3]).float(), CHEAP,
                            check_every=7).numpy()
    np.testing.assert_allclose(sparse, cheap_batch, atol=1e-5)


def test_tensor_batch_equals_pairs_alone(pairs, cheap_batch):
    prev, nxt, _ = pairs
    with torch.no_grad():
        alone = np.concatenate([tvl1_torch(torch.from_numpy(prev[i:i + 1]).float(),
                                           torch.from_numpy(nxt[i:i + 1]).float(), CHEAP).numpy() for i in range(3)])
    np.testing.assert_allclose(alone, cheap_batch, atol=1e-4)


def test_kernel_unavailable_falls_back_to_opencv(monkeypatch, tmp_path):
    # No compiler: a clear error, and auto picks OpenCV on a CPU.
    monkeypatch.setattr(tvl1_cpu, "_lib", None)
    monkeypatch.setattr(tvl1_cpu, "_error", None)
    monkeypatch.setenv("TSRNET_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "/bin/false")
    with pytest.raises(RuntimeError, match="fused TV-L1 kernel is not available: /bin/false could not compile"):
        tvl1_cpu.kernel()
    assert default_backend("cpu") == "opencv"
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_batch_equals_pairs_alone(pairs, flows):
    # Pairs converge at different iterations and run in parallel threads; each must stop on its own,
    # unaffected by the batch.
    prev, nxt, _ = pairs
    alone = np.stack([tvl1(prev[i], nxt[i], "torch", "cpu") for i in range(len(prev))])
    np.testing.assert_allclose(alone, flows[1], atol=1e-4)


def test_single_pair_shape_and_dtype(pairs):
    f = tvl1(pairs[0][0], pairs[1][0], "opencv")
    assert f.shape == (72, 96, 2) and f.dtype == np.float32


def test_downscale_matches_cv2_resize(rng):
    img = rng.uniform(0, 255, (1, 61, 83)).astype(np.float32)
    ours = _downscale(torch.from_numpy(img), 0.8)[0].numpy()
    ref = cv2.resize(img[0], None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    assert ours.shape == ref.shape
    # OpenCV's float path rounds its interpolation weights slightly (~1e-5 relative)
    np.testing.assert_allclose(ours, ref, rtol=3e-5, atol=1e-3)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_median_matches_cv2_median_blur(rng, k):
    u = rng.standard_normal((1, 20, 31)).astype(np.float32)
    if k <= 5:
        ref = cv2.medianBlur(u[0], k)
    else:  # cv2.medianBlur takes float32 only up to 5 x 5
        from scipy.ndimage import median_filter
        ref = median_filter(u[0], size=k, mode="nearest")
    np.testing.assert_allclose(_median(torch.from_numpy(u), k)[0].numpy(), ref, atol=1e-6)


@pytest.mark.parametrize("m", [9, 25])
def test_median_network_finds_the_median(rng, m):
    net = _median_network(m)
    assert all(0 <= i < j < m for i, j in net)
    for _ in range(200):
        v = list(rng.permutation(m))  # every rank lands everywhere over the draws
        for i, j in net:
            v[i], v[j] = min(v[i], v[j]), max(v[i], v[j])
        assert v[m // 2] == (m - 1) // 2


def test_centred_gradient_by_hand():
    img = torch.tensor([[[0.0, 1.0, 4.0], [2.0, 3.0, 8.0], [4.0, 9.0, 16.0]]])
    gx, gy = _centred_gradient(img)
    # interior: half the central difference; border: half the one-sided difference (OpenCV's choice)
    assert gx[0, 1, 1] == 0.5 * (8 - 2) and gy[0, 1, 1] == 0.5 * (9 - 1)
    assert gx[0, 0, 0] == 0.5 * (1 - 0) and gy[0, 2, 2] == 0.5 * (16 - 8)


def test_bad_arguments():
    with pytest.raises(ValueError, match="one shape"):
        tvl1(np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8))
    with pytest.raises(ValueError, match="unknown TV-L1 backend"):
        tvl1(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), backend="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_matches_cpu(pairs):
    # Not elementwise: CUDA's bicubic warp and reductions round differently, and TV-L1 stops each pair when its
    # update falls under epsilon, so the two devices may stop an iteration apart; on an H100 5% of flow values
    # differed by more than 0.01 px (at most 1.8 px, at texture edges). The flows must agree on average and
    # recover the true motion as well.
    prev, nxt, gt = pairs
    gpu, cpu = tvl1(prev, nxt, "torch", "cuda"), tvl1(prev, nxt, "torch", "cpu")
    for g, c, t in zip(gpu, cpu, gt):
        assert epe(g, c) <= 0.05
        assert epe(g, t) <= 1.05 * epe(c, t) + 0.01


def test_params_reach_opencv(pairs):
    # Fewer warps and scales change OpenCV's answer: the parameters are passed through.
    prev, nxt, _ = pairs
    a = tvl1(prev[3], nxt[3], "opencv")
    b = tvl1(prev[3], nxt[3], "opencv", params=TVL1Params(scales=1, warps=1))
    assert epe(a, b) > 0.05
