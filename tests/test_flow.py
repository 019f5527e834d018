"""TV-L1: the torch backend against OpenCV's DualTVL1 and against known flow."""
import cv2
import numpy as np
import pytest
import torch

from tsrnet.extract.flow import TVL1Params, _centred_gradient, _downscale, _median, tvl1
from tsrnet.data.synthetic_motion import affine_pair


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
    prev, nxt, _ = pairs
    return tvl1(prev, nxt, "opencv"), tvl1(prev, nxt, "torch", "cpu")


def test_true_motion_reaches_ten_pixels(pairs):
    assert np.linalg.norm(pairs[2], axis=-1).max() == pytest.approx(10.0, abs=1e-3)


def test_torch_agrees_with_opencv(flows):
    cv, th = flows
    for a, b in zip(cv, th):
        assert epe(a, b) <= 0.3


def test_torch_error_no_worse_than_opencv(pairs, flows):
    gt = pairs[2]
    cv, th = flows
    assert np.mean([epe(t, g) for t, g in zip(th, gt)]) <= 1.15 * np.mean([epe(c, g) for c, g in zip(cv, gt)])
    # and both actually recover the motion (a zero flow would be ~5 px off)
    assert np.mean([epe(c, g) for c, g in zip(cv, gt)]) < 0.5


def test_batch_equals_pairs_alone(pairs, flows):
    # Pairs converge at different iterations; each must stop on its own, unaffected by the batch.
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


def test_median_matches_cv2_median_blur(rng):
    u = rng.standard_normal((1, 20, 31)).astype(np.float32)
    np.testing.assert_allclose(_median(torch.from_numpy(u), 5)[0].numpy(), cv2.medianBlur(u[0], 5), atol=1e-6)


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
