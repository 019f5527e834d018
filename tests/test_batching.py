"""Batching for a GPU: float16 batches converted on the device, and the prefetch thread."""
import numpy as np
import pytest
import torch

from tsrnet.data.format.batching import ahead, collate


def items(rng, lengths=(5, 3), d=4):
    return [{"id": f"v{i}", "x": {"rgb": rng.standard_normal((n, d)).astype(np.float16),
                                 "flow": rng.standard_normal((n, d)).astype(np.float16)},
             "times": np.arange(n) / 4.0, "target": np.eye(3, dtype=np.float32)[i]} for i, n in enumerate(lengths)]


def test_half_batch_equals_float_batch_once_on_the_device(rng):
    its = items(rng)
    full, half = collate(its), collate(its, keep_dtype=True)
    assert full.x["rgb"].dtype == torch.float32 and half.x["rgb"].dtype == torch.float16
    moved = half.to("cpu")
    for s in ("rgb", "flow"):
        assert moved.x[s].dtype == torch.float32
        torch.testing.assert_close(moved.x[s], full.x[s], rtol=0, atol=0)  # float16 -> float32 is exact
        assert (moved.x[s][1, 3:] == 0).all()  # the padded tail
    assert torch.equal(moved.mask, full.mask) and torch.equal(moved.targets, full.targets)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinning needs a CUDA runtime")
def test_pinned_batch(rng):
    b = collate(items(rng), keep_dtype=True).pin_memory()
    assert b.x["rgb"].is_pinned() and b.mask.is_pinned()


def test_ahead_keeps_order_and_ends():
    assert list(ahead(iter(range(7)), depth=3)) == list(range(7))
    assert list(ahead([])) == []


def test_ahead_raises_where_the_source_fails():
    def source():
        yield 1
        yield 2
        raise ValueError("bad video v3")

    got = []
    with pytest.raises(ValueError, match="bad video v3"):
        for x in ahead(source()):
            got.append(x)
    assert got == [1, 2]
