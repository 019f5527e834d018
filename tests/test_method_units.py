"""STPN's and UntrimmedNet's own parts against hand-worked examples and the papers' formulas."""
import numpy as np
import pytest
import torch

from tsrnet.data.format.batching import Clips, tsn_rows
from tsrnet.detect.config import DetectConfig
from tsrnet.detect.localize import VideoScores, detect_video
from tsrnet.train.methods.stpn import STPN, STPNOptions, STPNStream
from tsrnet.train.methods.untrimmednet import (UNTStream, UniformProposals, multi_label_cross_entropy, shot_cuts,
                                               top_k_mean)


def test_tcam_is_the_classifier_applied_row_wise_without_bias():
    torch.manual_seed(0)
    net = STPNStream(5, 3, 4)
    x = torch.randn(2, 7, 5)
    by_row = torch.stack([torch.stack([net.classifier(x[b, t]) - net.classifier.bias for t in range(7)])
                          for b in range(2)])
    torch.testing.assert_close(net.tcam(x), by_row)
    # Eq. (3): the video logit is the attention-weighted mean of the T-CAM, plus the bias.
    mask = torch.ones(2, 7, dtype=torch.bool)
    o = net(x, mask)
    expect = (o["attention"].unsqueeze(-1) * net.tcam(x)).mean(dim=1) + net.classifier.bias
    torch.testing.assert_close(o["logits"], expect)


def stpn_video(lam_rgb, lam_flow, a_rgb, a_flow):
    t = np.arange(len(lam_rgb)) + 0.5
    rows = {"rgb": {"attention": np.array(lam_rgb, float), "tcam": np.array(a_rgb, float)[:, None]},
            "flow": {"attention": np.array(lam_flow, float), "tcam": np.array(a_flow, float)[:, None]}}
    return VideoScores("v", t, float(len(t)), rows, {"rgb": np.array([0.9]), "flow": np.array([0.7])})


def test_stpn_eq7_score_hand_worked():
    # RGB attention opens on rows 1-2, flow on rows 2-3; T-CAMs constant per stream.
    vs = stpn_video([0.0, 1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5, 0.0],
                    [2.0, 2.0, 2.0, 2.0, 2.0], [4.0, 4.0, 4.0, 4.0, 4.0])
    cfg = DetectConfig(threshold=[0.5], scale="absolute", suppress="none", class_threshold=0.0,
                       score="inside", theta=0.5)
    dets = detect_video(vs, ["c"], cfg, STPN(STPNOptions()).evidence)
    # psi_rgb = lam * sigmoid(2) = 0.881 on rows 1-2 -> [1, 3); psi_flow = 0.5 * sigmoid(4) = 0.491 < 0.5 -> none.
    assert [d["segment"] for d in dets] == [[1.0, 3.0]]
    # Eq. 7: mean over rows 1-2 of lam_rgb * (0.5 * 2 + 0.5 * 4) = 3.0.
    assert dets[0]["score"] == pytest.approx(3.0)
    cfg = DetectConfig(threshold=[0.4], scale="absolute", suppress="none", class_threshold=0.0, score="inside",
                       theta=0.25)
    dets = detect_video(vs, ["c"], cfg, STPN(STPNOptions()).evidence)
    # Now flow's rows 2-3 pass too: its proposal is scored with the flow attention, 0.5 * (0.25*2 + 0.75*4) = 1.75.
    by_seg = {tuple(d["segment"]): d["score"] for d in dets}
    assert by_seg == {(1.0, 3.0): pytest.approx(3.5), (2.0, 4.0): pytest.approx(1.75)}
    # Video level: the mean of the two streams, (0.9 + 0.7) / 2.
    assert STPN(STPNOptions()).evidence(vs, cfg).video[0] == pytest.approx(0.8)


def test_hard_selection_top_k_hand_worked():
    # One video, 5 clips (k = 2), 2 classes; a second video padded to 3 real clips (k = 1).
    logits = torch.tensor([[[1.0, 0.0], [5.0, 1.0], [3.0, 2.0], [2.0, 9.0], [0.0, 3.0]],
                           [[4.0, 1.0], [6.0, 0.0], [1.0, 7.0], [99.0, 99.0], [99.0, 99.0]]])
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out = top_k_mean(logits, mask)
    torch.testing.assert_close(out, torch.tensor([[(5 + 3) / 2, (9 + 3) / 2], [6.0, 7.0]]))


def test_soft_attention_sums_to_one_over_real_clips():
    torch.manual_seed(0)
    net = UNTStream(6, 4, 0.0, soft=True).eval()
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    o = net(torch.randn(2, 5, 6), mask)
    torch.testing.assert_close(o["attention"].sum(dim=1), torch.ones(2))
    assert (o["attention"][1, 2:] == 0).all()
    # Eq. 4: a convex combination of probability vectors is one.
    torch.testing.assert_close(o["log_prob"].exp().sum(dim=1), torch.ones(2))


def test_l1_normalised_target_cross_entropy():
    log_p = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    y = torch.tensor([[1.0, 1.0, 0.0]])
    # -(0.5 log 0.5 + 0.5 log 0.25)
    expect = -(0.5 * np.log(0.5) + 0.5 * np.log(0.25))
    assert float(multi_label_cross_entropy(log_p, y)) == pytest.approx(expect)


def test_shot_cuts_on_a_crafted_sequence():
    rng = np.random.default_rng(0)
    a, b, c = rng.standard_normal((3, 16))
    # Three shots of slowly drifting rows: 0-9 near a, 10-24 near b, 25-29 near c.
    x = np.concatenate([a + 0.01 * rng.standard_normal((10, 16)), b + 0.01 * rng.standard_normal((15, 16)),
                        c + 0.01 * rng.standard_normal((5, 16))])
    assert shot_cuts(x, 5.0).tolist() == [10, 25]
    assert shot_cuts(np.ones((8, 4)), 5.0).tolist() == []  # no change, no cut


def test_uniform_proposals_and_clip_sampling():
    class Store:
        class I:
            n_rows = 21

        def info(self, v):
            return self.I()

    props = UniformProposals(7)(Store(), "v")
    assert props == [(0, 2), (3, 5), (6, 8), (9, 11), (12, 14), (15, 17), (18, 20)]
    # Without a generator, the TSN rows are the centres of the clip's thirds.
    assert tsn_rows(0, 8, 3, None).tolist() == [1, 4, 7]
    rows = Clips(UniformProposals(7), 7, 3)(Store(), "v", np.random.default_rng(0))
    assert len(rows) == 21 and all(lo <= r <= hi for (lo, hi), r in zip(np.repeat(props, 3, axis=0), rows))
