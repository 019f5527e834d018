"""KT-MGFN's own parts against hand-worked examples: dilated receptive fields, masking, erasing, anchors, OIC."""
import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tsrnet.detect.config import DetectConfig
from tsrnet.detect.localize import Evidence, VideoScores, detect_video
from tsrnet.train.methods import method_class
from tsrnet.train.methods.ktmgfn import (BRM, KEY, MDCM, KTMGFNOptions, MGFNOptions, erase_rows, fused_cas, rescale,
                                         restore)
from tsrnet.train.methods.oic import anchor_oic, decode, encode, oic, select_anchors
from tsrnet.train.packed import Packed, dropout

STREAMS = ("rgb", "flow")


def small(**kw):
    return dict(hidden_dim=8, **kw)


def model_of(name, dim=5, classes=("a", "b", "c"), **opts):
    method = method_class(name)(method_class(name).Options(**small(**opts)))
    return method, method.module(STREAMS, dim, list(classes))


def batch_of(x, mask, targets, trimmed=None, pair=None):
    return SimpleNamespace(x=x, mask=mask, targets=targets, trimmed=trimmed,
                           pair=torch.zeros(0, dtype=torch.long) if pair is None else pair)


# -- MDCM ----------------------------------------------------------------------------------------------
def test_each_dilated_branch_sees_its_receptive_field():
    """An impulse at row 20 reaches rows 20 ± (2 + d): two base convs of kernel 3 (± 1 each), then dilation d."""
    net = MDCM(1, 1, 2, [1, 2, 3, 5], 3, 0.0)
    with torch.no_grad():
        for conv in [*net.base, *net.branches]:
            conv.weight.fill_(1.0)
            conv.bias.zero_()
    x = torch.zeros(1, 41, 1)
    x[0, 20, 0] = 1.0
    f = net.features(x, torch.ones(1, 41, dtype=torch.bool))  # (1, 4, 41, 1)
    assert f.shape == (1, 4, 41, 1)
    for i, d in enumerate([1, 2, 3, 5]):
        reached = torch.nonzero(f[0, i, :, 0] > 0).flatten().tolist()
        assert reached == list(range(20 - 2 - d, 20 + 2 + d + 1)), d
    o = net(x, torch.ones(1, 41, dtype=torch.bool))
    assert o["rows"].shape == (1, 4, 41, 2) and o["video"].shape == (1, 4, 2) and o["gap"].shape == (1, 4)


def test_video_logits_are_the_fc_of_the_gap_over_real_rows():
    torch.manual_seed(0)
    net = MDCM(3, 4, 2, [1, 2], 3, 0.0).eval()
    x = torch.randn(2, 9, 3)
    mask = torch.tensor([[True] * 9, [True] * 6 + [False] * 3])
    o = net(x, mask)
    f = net.features(x, mask)
    for b, n in ((0, 9), (1, 6)):
        for i in range(2):
            gap = f[b, i, :n].mean(dim=0)
            torch.testing.assert_close(o["video"][b, i], net.fcs[i](gap))
            torch.testing.assert_close(o["gap"][b, 4 * i:4 * (i + 1)], gap)


def test_packed_layout_hand_worked():
    # Video 0: rows 0-1, video 1: rows 0-2, gap 2: packed [a0 a1 0 0 b0 b1 b2 0 0].
    rows = Packed(torch.tensor([[True, True, False, False], [True, True, True, False]]), gap=2)
    assert rows.length == 9 and rows.rows.tolist() == [0, 1, 4, 5, 6] and rows.gaps.tolist() == [2, 3, 7, 8]
    assert rows.at.tolist() == [0, 1, 2, 2, 4, 5, 6, 7]  # a slot beyond a video reads the gap row after it
    x = torch.arange(1.0, 9.0).view(2, 4, 1)  # padding rows hold 3, 4 and 8: they must not enter
    assert rows.pack(x).flatten().tolist() == [1, 2, 0, 0, 5, 6, 7, 0, 0]
    assert rows.unpack(rows.pack(x)[0]).tolist() == [[[1, 2, 0, 0]], [[5, 6, 7, 0]]]
    assert rows.owner.t().tolist() == [[1, 1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 0, 0]]


def masked_padded_reference(convs, x, mask):
    """The convs over the padded batch, rows outside the mask zeroed before and after each: (B, W, T)."""
    m = mask.unsqueeze(1).to(x.dtype)
    h = x.transpose(1, 2) * m
    for conv in convs:
        h = torch.relu(conv(h) * m)
    return h


@pytest.mark.parametrize("holes", [False, True])
def test_packed_mdcm_equals_the_masked_padded_batch(holes):
    """Forward and gradients of the MDCM on packed rows equal the convs over the padded batch with every row
    outside the mask zeroed before and after each conv (float64, dropout off); with holes inside a video too."""
    torch.manual_seed(3)
    net = MDCM(3, 4, 2, [1, 2, 3, 5], 3, 0.0).double()
    x = torch.randn(3, 13, 3, dtype=torch.float64) * 5  # junk in the padding
    mask = torch.zeros(3, 13, dtype=torch.bool)
    for b, n in enumerate((9, 4, 13)):
        mask[b, :n] = True
    if holes:
        mask[0, 3] = mask[2, 6:8] = False
    o = net(x, mask)
    wr, wg = torch.randn_like(o["rows"]), torch.randn_like(o["gap"])
    loss = (o["rows"] * wr).sum() + (o["gap"] * wg).sum() + o["video"].sum()
    got = torch.autograd.grad(loss, list(net.parameters()))

    h = masked_padded_reference(net.base, x, mask)
    f = torch.stack([masked_padded_reference([b], h.transpose(1, 2), mask) for b in net.branches], 1)  # (B, n, W, T)
    f = f.transpose(2, 3)  # (B, n, T, W)
    rows = torch.stack([fc(f[:, i]) for i, fc in enumerate(net.fcs)], 1)  # (B, n, T, C)
    m = mask.to(x.dtype)[:, None, :, None]
    n = m.sum(dim=2)
    video, gap = (rows * m).sum(dim=2) / n, ((f * m).sum(dim=2) / n).flatten(1)
    torch.testing.assert_close(net.features(x, mask), f, rtol=1e-12, atol=1e-12)
    for k, v in (("rows", rows), ("video", video), ("gap", gap)):
        torch.testing.assert_close(o[k], v, rtol=1e-12, atol=1e-12, msg=k)
    loss = (rows * wr).sum() + (gap * wg).sum() + video.sum()
    for a, b in zip(got, torch.autograd.grad(loss, list(net.parameters()))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_packed_brm_equals_the_masked_padded_batch():
    torch.manual_seed(4)
    brm = BRM(3, 2, width=4).double()
    torch.nn.init.normal_(brm.out.weight)  # the zero start would hide the last conv
    torch.nn.init.normal_(brm.out.bias)
    x = torch.randn(2, 11, 3, dtype=torch.float64)
    mask = torch.tensor([[True] * 6 + [False] * 5, [True] * 11])
    p = brm(x, mask)  # (B, T, M, 2)
    m = mask.unsqueeze(1).to(x.dtype)
    ref = brm.out(masked_padded_reference(brm.convs, x, mask)) * m  # (B, 2M, T)
    torch.testing.assert_close(p, ref.view(2, 2, 2, 11).permute(0, 3, 1, 2), rtol=1e-12, atol=1e-12)
    g = torch.randn_like(p)
    got = torch.autograd.grad((p * g).sum(), list(brm.parameters()))
    want = torch.autograd.grad((ref.view(2, 2, 2, 11).permute(0, 3, 1, 2) * g).sum(), list(brm.parameters()))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_dropout_keeps_one_minus_p_scaled_and_is_off_in_eval():
    torch.manual_seed(5)
    h = torch.ones(200_000, requires_grad=True)
    out = dropout(h, 0.3, True)
    kept = out != 0
    assert abs(float(kept.float().mean()) - 0.7) < 0.005  # the binomial's sd is 0.001
    torch.testing.assert_close(out[kept], torch.full((int(kept.sum()),), 1 / 0.7))
    out.sum().backward()
    torch.testing.assert_close(h.grad, kept.float() / 0.7)
    x = torch.randn(5, 3)
    assert dropout(x, 0.3, False) is x and dropout(x, 0.0, True) is x
    assert (dropout(x, 1.0, True) == 0).all()


def test_fused_cas_halves_h0_plus_the_mean_of_the_dilated_branches():
    # Branch sigmoids 0.5 (H0), 0.75 and 0.25 (H1, H2): (0.5 + 0.5) / 2 = 0.5; and 0.9 alone stays 0.9.
    logits = torch.tensor([0.0, math.log(3), -math.log(3)]).view(1, 3, 1, 1)
    assert float(fused_cas(logits)) == pytest.approx(0.5)
    logits = torch.tensor([0.0, math.log(3), math.log(3)]).view(1, 3, 1, 1)
    assert float(fused_cas(logits)) == pytest.approx((0.5 + 0.75) / 2)
    assert float(fused_cas(torch.tensor(math.log(9)).view(1, 1, 1, 1))) == pytest.approx(0.9)


@pytest.mark.parametrize("name,fixed", [("mgfn", 0), ("kt-mgfn", 0), ("mgfn", 8)])
def test_padding_does_not_change_a_videos_scores(name, fixed):
    torch.manual_seed(1)
    _, model = model_of(name, fixed_length=fixed)
    model.eval()
    short = {s: torch.randn(1, 10, 5) for s in STREAMS}
    other = {s: torch.randn(1, 16, 5) for s in STREAMS}
    alone = model.score(short, torch.ones(1, 10, dtype=torch.bool))
    padded = {s: torch.cat([F.pad(short[s], (0, 0, 0, 6), value=7.0), other[s]]) for s in STREAMS}  # junk padding
    mask = torch.tensor([[True] * 10 + [False] * 6, [True] * 16])
    batch = model.score(padded, mask)
    for k, v in alone["rows"][KEY].items():
        torch.testing.assert_close(batch["rows"][KEY][k][0, :10], v[0], msg=k)
    torch.testing.assert_close(batch["video_prob"][KEY][0], alone["video_prob"][KEY][0])


def test_fixed_length_rescaling_hand_worked():
    # A ramp of 4 rows at 8 (half-row aligned): sources (j + 0.5) / 2 - 0.5, clamped at the ends.
    seq = torch.zeros(2, 5, 1)
    seq[0, :4, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0])
    seq[1, :, 0] = 7.0
    out = rescale(seq, torch.tensor([4, 5]), 8)
    torch.testing.assert_close(out[0, :, 0], torch.tensor([0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]))
    torch.testing.assert_close(out[1, :, 0], torch.full((8,), 7.0))
    # Back to each video's rows, padded with zeros; at its own length a sequence is unchanged.
    back = restore(out[..., 0], torch.tensor([4, 5]), 6)
    assert back.shape == (2, 6) and (back[0, 4:] == 0).all() and (back[1, 5:] == 0).all()
    torch.testing.assert_close(back[1, :5], torch.full((5,), 7.0))
    torch.testing.assert_close(rescale(seq[:1], torch.tensor([5]), 5), seq[:1])


def test_fixed_length_anchors_are_rescaled_to_the_videos_rows():
    """15 rows seen as 5: an anchor of 1 row there is 3 rows here. The CAS is 1 on rows 6-8."""
    method, _ = model_of("mgfn", anchors=[1.0], fixed_length=5)
    cas = np.zeros((15, 1))
    cas[6:9, 0] = 1.0
    rows = {"cas": cas, "brm_px0": np.zeros(15), "brm_pw0": np.zeros(15)}
    vs = VideoScores("v", np.arange(15) + 0.5, 15.0, {KEY: rows}, {KEY: np.array([0.5])})
    # Row 7's anchor: [6, 9], outer [5.25, 9.75] all 0 -> L = -1, p_conf = 1 x 2 x 0.5.
    assert method.evidence(vs, method.detect_config()).intervals == [
        (0, pytest.approx(6.0), pytest.approx(9.0), pytest.approx(1.0))]
    # Taken as 1-row anchors (no rescaling) only the edge rows pass: [6, 7] has 0 and 1 in its margins, -0.5.
    method, _ = model_of("mgfn", anchors=[1.0])
    assert method.evidence(vs, method.detect_config()).intervals == [
        (0, pytest.approx(6.0), pytest.approx(7.0), pytest.approx(0.75)),
        (0, pytest.approx(8.0), pytest.approx(9.0), pytest.approx(0.75))]


# -- CCM -----------------------------------------------------------------------------------------------
def test_erasing_removes_exactly_the_rows_above_xi_times_the_video_peak():
    cas = torch.tensor([[[0.1, 0.9], [0.5, 0.9], [0.9, 0.9], [0.75, 0.9], [1.0, 0.9], [0.2, 0.9], [5.0, 5.0]]])
    mask = torch.tensor([[True] * 6 + [False]])  # the padded last row must neither count as peak nor be erased
    sel = torch.tensor([[True, False]])  # class 1 is high everywhere but not selected
    # Peak of class 0 over real rows: 1.0; rows above 0.8: 2 (0.9) and 4 (1.0); 3 (0.75) stays.
    assert erase_rows(cas, sel, mask, 0.8)[0].tolist() == [False, False, True, False, True, False, False]
    # Both classes selected: class 1 is at its peak (0.9 > 0.72) on every real row.
    assert erase_rows(cas, torch.tensor([[True, True]]), mask, 0.8)[0].tolist() == [True] * 6 + [False]
    # Relative to the range: 0.1 + 0.8 x (1.0 - 0.1) = 0.82 -> rows 2 (0.9) and 4 (1.0); at xi 0.7 (0.73)
    # row 3 (0.75) too, where the max rule's bar 0.7 would also take it; at xi 0.5: 0.55 vs 0.5, row 1 (0.5) differs.
    assert erase_rows(cas, sel, mask, 0.8, "range")[0].tolist() == [False, False, True, False, True, False, False]
    assert erase_rows(cas, sel, mask, 0.7, "range")[0].tolist() == [False, False, True, True, True, False, False]
    assert erase_rows(cas, sel, mask, 0.45, "max")[0].tolist() == [False, True, True, True, True, False, False]
    assert erase_rows(cas, sel, mask, 0.45, "range")[0].tolist() == [False, False, True, True, True, False, False]


def test_second_stage_sees_the_features_with_exactly_those_rows_zeroed():
    torch.manual_seed(2)
    # An untrained CAS is flat (about 0.6 +- 0.05 here): 0.8 x max would take every row; the range rule does not.
    _, model = model_of("mgfn", stages=2, erase_scale="range")
    model.eval()
    seen = {}
    stage2 = model.stages[1].forward
    model.stages[1].forward = lambda inp, mask, fcs=None: seen.setdefault("x", inp) is not None and stage2(inp, mask)
    x = {s: torch.rand(2, 12, 5) + 0.1 for s in STREAMS}
    mask = torch.ones(2, 12, dtype=torch.bool)
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    out = model(x, mask, targets)
    erased = erase_rows(out["stages"][0]["cas"], targets > 0.5, mask, 0.8, "range")
    assert erased.any() and not erased.all()
    seq = torch.cat([x["rgb"], x["flow"]], dim=-1)
    torch.testing.assert_close(seen["x"], seq * (~erased).unsqueeze(-1))
    # Final CAS: the element-wise maximum of the stages.
    torch.testing.assert_close(out["cas"], torch.maximum(out["stages"][0]["cas"], out["stages"][1]["cas"]))


def test_one_stage_is_the_plain_multi_dilated_classifier():
    torch.manual_seed(3)
    method, model = model_of("mgfn", stages=1, brm=False)
    model.eval()
    assert len(model.stages) == 1 and model.brm is None
    x = {s: torch.randn(1, 7, 5) for s in STREAMS}
    mask = torch.ones(1, 7, dtype=torch.bool)
    out = model(x, mask)
    st = model.stages[0](torch.cat([x["rgb"], x["flow"]], dim=-1), mask)
    torch.testing.assert_close(out["cas"], fused_cas(st["rows"]))
    targets = torch.tensor([[0.0, 1.0, 0.0]])
    total, parts = method.loss(model, batch_of(x, mask, targets), "main")
    assert set(parts) == {"class_stage1"}
    v = st["video"].detach()
    expect = np.mean([float(F.binary_cross_entropy_with_logits(v[0, i], targets[0], reduction="sum"))
                      for i in range(4)])
    assert float(total.detach()) == pytest.approx(expect, rel=1e-5)


def test_without_brm_the_cas_is_thresholded_by_the_shared_post_processing():
    method, model = model_of("mgfn", brm=False)
    cas = np.zeros((6, 3))
    cas[1:3, 0] = 0.9
    vs = VideoScores("v", np.arange(6) + 0.5, 6.0, {KEY: {"cas": cas}}, {KEY: np.array([0.8, 0.01, 0.01])})
    ev = method.evidence(vs, method.detect_config())
    assert ev.intervals is None and len(ev.sources) == 1
    dets = detect_video(vs, ["a", "b", "c"], method.detect_config(), method.evidence)
    assert [(d["label"], d["segment"]) for d in dets] == [("a", [1.0, 3.0])]
    assert dets[0]["score"] == pytest.approx(0.9 * 0.8)  # mean inside x video score


# -- BRM and OIC ---------------------------------------------------------------------------------------
def test_anchor_decoding_hand_worked_and_round_trip():
    p = torch.zeros(3, 1, 2)
    p[1, 0] = torch.tensor([0.5, math.log(2)])
    s, e, S, E = decode(p, [2.0], 0.25)
    # Row 1: t_x = 1.5, t_w = 2 -> r_x = 2.5, r_w = 4 -> [0.5, 4.5], outer [-0.5, 5.5].
    assert (float(s[1, 0]), float(e[1, 0]), float(S[1, 0]), float(E[1, 0])) == pytest.approx((0.5, 4.5, -0.5, 5.5))
    # Row 0 with p = 0 is the anchor itself: centred at 0.5, length 2.
    assert (float(s[0, 0]), float(e[0, 0])) == pytest.approx((-0.5, 1.5))
    q = torch.randn(2, 9, 6, 2)
    scales = [1, 2, 4, 8, 16, 32]
    s, e, _, _ = decode(q, scales, 0.25)
    torch.testing.assert_close(encode(s, e, scales), q)


def crafted(values):
    return torch.tensor(values, dtype=torch.float64).view(1, -1, 1)


def bounds(s, e, gamma=0.25):
    w = e - s
    return [torch.tensor([[v]], dtype=torch.float64) for v in (s, e, s - gamma * w, e + gamma * w)]


def test_oic_is_negative_on_the_action_and_positive_beside_it():
    cas = crafted([0, 0, 0, 1, 1, 1, 0, 0, 0, 0])
    loss, inner, valid = oic(cas, *bounds(3.0, 6.0))  # the action: inside 1, margins 0
    assert float(loss) == pytest.approx(-1.0) and float(inner) == pytest.approx(1.0) and bool(valid)
    loss, _, valid = oic(cas, *bounds(0.0, 3.0))  # before it: inside 0; outer (3, 3.75] all action, [-0.75, 0) out
    assert float(loss) == pytest.approx(1.0) and bool(valid)
    # The whole video: no outer rows, no contrast.
    _, _, valid = oic(cas, *bounds(-1.0, 11.0))
    assert not bool(valid)


def test_oic_hand_worked_with_fractional_boundaries():
    cas = crafted([0, 0, 1, 1, 0.5, 0])
    # [1.5, 3.5]: 0.5 x 0 + 1 + 0.5 x 1 = 1.5 over 2 -> 0.75. Outer [1, 1.5) = 0, (3.5, 4] = 0.5 x 1 -> 0.5 / 1.
    loss, inner, _ = oic(cas, *bounds(1.5, 3.5))
    assert float(inner) == pytest.approx(0.75) and float(loss) == pytest.approx(0.5 - 0.75)


def test_oic_gradient_is_finite_and_pushes_inside_up_outside_down():
    cas = crafted([0.1, 0.1, 0.9, 0.8, 0.9, 0.2, 0.1, 0.1]).requires_grad_(True)
    p = torch.zeros(1, 8, 2, 2, dtype=torch.float64, requires_grad=True)
    a = anchor_oic(cas, p, [2, 4], 0.25)
    a["loss"][0, 3, 0, 0].backward()  # row 3, scale 2: inner [2.5, 4.5], outer [2, 2.5) and (4.5, 5]
    g = cas.grad[0, :, 0]
    assert torch.isfinite(g).all() and torch.isfinite(p.grad).all()
    assert (g[2:5] != 0).all() and (g[[0, 1, 5, 6, 7]] == 0).all()
    # Raising the inside (row 3) lowers the loss; rows 2 and 4 are half inside (-0.5 / 2) and half margin
    # (+0.5 / 1), so raising them raises it.
    assert float(g[3]) == pytest.approx(-0.5) and float(g[2]) == pytest.approx(0.25) == float(g[4])
    assert p.grad[0, 3, 0].abs().sum() > 0 and p.grad[0, 3, 1].abs().sum() == 0  # only that anchor moves


def test_anchor_filtering_hand_worked():
    # 3 positions, 2 scales, 1 class. Position 0: CAS below the floor; 1: best scale 1 at -0.5 (kept);
    # 2: best scale 0 at -0.2 (above the ceiling, dropped).
    loss = torch.tensor([[[-0.9, -0.9], [-0.1, -0.5], [-0.2, 0.4]]]).unsqueeze(-1)
    cas = torch.tensor([[0.05, 0.5, 0.5]]).unsqueeze(-1)
    allowed = torch.ones_like(cas, dtype=torch.bool)
    best, keep = select_anchors(loss, cas, allowed, 0.1, -0.3)
    assert best[0, :, 0].tolist() == [0, 1, 0] and keep[0, :, 0].tolist() == [False, True, False]
    # Scale 1 of position 1 has no contrast: scale 0 (-0.1) is its best, and is dropped.
    valid = torch.tensor([[[True, True], [True, False], [True, True]]])
    best, keep = select_anchors(loss, cas, allowed, 0.1, -0.3, valid)
    assert best[0, :, 0].tolist() == [0, 0, 0] and keep[0, :, 0].tolist() == [False, False, False]


def test_regressed_intervals_hand_worked_through_detect():
    """Anchors of length 3 at rows 2, 3, 4 of a CAS that is 1 on rows 2-4: only row 3's anchor passes."""
    method, _ = model_of("mgfn", anchors=[3.0])
    cas = np.zeros((8, 2))
    cas[2:5, 0] = 1.0
    rows = {"cas": cas, "brm_px0": np.zeros(8), "brm_pw0": np.zeros(8)}
    vs = VideoScores("v", np.arange(8) + 0.5, 8.0, {KEY: rows}, {KEY: np.array([0.5, 0.05])})
    ev = method.evidence(vs, method.detect_config())
    # Row 3: [2, 5], outer [1.25, 5.75] all 0 -> L = -1, p_act = 1, p_conf = 1 x 2 x 0.5.
    # Rows 2 and 4: inside 2/3, outer margins 0.75 rows of which 0.75 is action -> L = 0.5 - 2/3 > -0.3: dropped.
    assert ev.intervals == [(0, pytest.approx(2.0), pytest.approx(5.0), pytest.approx(1.0))]
    dets = detect_video(vs, ["a", "b"], method.detect_config(), method.evidence)
    assert dets == [{"label": "a", "score": 1.0, "segment": [2.0, 5.0]}]


def test_ready_made_intervals_are_mapped_to_time_and_suppressed():
    """The general hook: Evidence.intervals in row coordinates, rows of 2 s, then the configured NMS."""
    vs = VideoScores("v", np.array([1.0, 3.0, 5.0]), 6.0, {"rgb": {}}, {"rgb": np.array([0.9])})
    ev = Evidence(np.array([0.9]), [], np.zeros((3, 1)), "x",
                  intervals=[(0, 0.5, 2.0, 1.0), (0, 0.5, 1.75, 0.5), (0, 2.5, 3.0, 0.4)])
    cfg = DetectConfig(suppress="nms", nms=0.5)
    dets = detect_video(vs, ["a"], cfg, lambda v, c: ev)
    # Rows 0.5..2.0 -> 1.0..4.0 s; the second (1.0..3.5 s, tIoU 2.5/3) is suppressed; the third is 5.0..6.0 s.
    assert [(d["segment"], d["score"]) for d in dets] == [([1.0, 4.0], 1.0), ([5.0, 6.0], 0.4)]


# -- training ------------------------------------------------------------------------------------------
def planted_batch(n_classes=3, t=12):
    torch.manual_seed(4)
    x = {s: torch.randn(2, t, 5) for s in STREAMS}
    mask = torch.tensor([[True] * t, [True] * (t - 3) + [False] * 3])
    targets = torch.zeros(2, n_classes)
    targets[0, 0] = targets[1, 2] = 1.0
    return x, mask, targets


def test_oic_gradient_reaches_the_cas_only_when_asked():
    x, mask, targets = planted_batch()
    for to_cas in (True, False):
        method, model = model_of("mgfn", oic_to_cas=to_cas, act_floor=0.0, oic_ceiling=10.0, dropout=0.0)
        out = model(x, mask, targets)
        lo, n = method.oic_loss(out, batch_of(x, mask, targets))
        assert n > 0 and torch.isfinite(lo)
        lo.backward()
        g = model.stages[0].fcs[0].weight.grad
        assert (g is not None and g.abs().sum() > 0) == to_cas
        assert model.brm.out.weight.grad.abs().sum() > 0


def test_oic_sum_is_per_video_and_mean_is_per_anchor():
    x, mask, targets = planted_batch()
    torch.manual_seed(5)
    method, model = model_of("mgfn", act_floor=0.0, oic_ceiling=10.0, oic_reduction="sum")
    model.eval()
    with torch.no_grad():
        out = model(x, mask, targets)
    total, n = method.oic_loss(out, batch_of(x, mask, targets))
    # Every real row of each video's one class is kept: 12 + 9 anchors.
    assert n == 21
    method.options = dataclasses.replace(method.options, oic_reduction="mean")
    mean, _ = method.oic_loss(out, batch_of(x, mask, targets))
    assert method.Options().oic_reduction == "mean"  # the default (docs/methods/kt-mgfn.md says why)
    assert float(total.detach()) == pytest.approx(float(mean) * 21 / 2)


def test_schedule_switches_the_oic_term_on_and_drops_the_learning_rate():
    method, _ = model_of("mgfn", brm_after=0.3, lr_drop=0.1)
    got = [(method.epoch_start("main", i, 10), method.oic_on) for i in range(10)]
    assert got == [(1.0, False)] * 3 + [(0.1, True)] * 7  # the paper's 30 + 70 epochs
    assert method.epoch_start("trimmed", 0, 5) == 1.0
    method, _ = model_of("mgfn", brm_after=0.0)
    assert method.epoch_start("main", 0, 10) == 1.0 and method.oic_on
    method, _ = model_of("mgfn", brm=False)  # no regressor, no second phase
    assert [method.epoch_start("main", i, 10) for i in range(10)] == [1.0] * 10


def test_the_trainer_follows_the_schedule(tiny, tmp_path):
    from tsrnet.train.config import Config
    from tsrnet.train.data import prepare_data
    from tsrnet.train.trainer import Trainer

    cfg = Config.for_method("mgfn", {"hidden_dim": 8, "brm_after": 0.5},
                            {"epochs": 4, "lr": 0.01, "checkpoint_seconds": 0})
    tr = Trainer(cfg, prepare_data(cfg, tiny["untrimmed"], tiny["annotations"], "train"), tmp_path / "r",
                 progress=False)
    tr.fit()
    assert [h["oic_on"] for h in tr.history] == [0.0, 0.0, 1.0, 1.0]
    assert [g["lr"] for g in tr.optim.param_groups] == [pytest.approx(0.001)]
    for h in tr.history[:2]:  # without L_OIC the loss is the two stages' classification losses
        assert h["loss"] == pytest.approx(h["class_stage1"] + h["class_stage2"], rel=1e-5)


def test_trimmed_stage_trains_the_trimmed_branch_with_the_shared_fcs():
    torch.manual_seed(6)
    method, model = model_of("kt-mgfn", dropout=0.0, trimmed_branch="own-convs")
    x = {s: torch.randn(3, 6, 5) for s in STREAMS}
    mask = torch.ones(3, 6, dtype=torch.bool)
    targets = torch.eye(3)
    total, parts = method.loss(model, batch_of(x, mask, targets), "trimmed")
    with torch.no_grad():  # the expectation only reads values
        f = model.trimmed.features(torch.cat([x["rgb"], x["flow"]], dim=-1), mask).mean(dim=2)  # (B, n, W) GAP
        expect = np.mean([float(F.binary_cross_entropy_with_logits(model.stages[0].fcs[i](f[:, i]), targets,
                                                                  reduction="sum")) / 3 for i in range(4)])
    assert float(total.detach()) == pytest.approx(expect, rel=1e-5) and set(parts) == {"trimmed_class"}
    total.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("trimmed.base") for n in grads) and any(n.startswith("stages.0.fcs") for n in grads)
    assert not any(n.startswith(("brm.", "stages.1.", "stages.0.base")) for n in grads)


def test_shared_trimmed_branch_is_stage_one_itself():
    torch.manual_seed(8)
    method, model = model_of("kt-mgfn", dropout=0.0)
    assert model.trimmed is None
    x = {s: torch.randn(3, 6, 5) for s in STREAMS}
    mask = torch.ones(3, 6, dtype=torch.bool)
    targets = torch.eye(3)
    total, _ = method.loss(model, batch_of(x, mask, targets), "trimmed")
    v = model.stages[0](torch.cat([x["rgb"], x["flow"]], dim=-1), mask)["video"]  # (B, n, C)
    expect = np.mean([float(F.binary_cross_entropy_with_logits(v[:, i].detach(), targets, reduction="sum")) / 3
                      for i in range(4)])
    assert float(total.detach()) == pytest.approx(expect, rel=1e-5)
    total.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("stages.0.base") for n in grads)
    assert not any(n.startswith(("brm.", "stages.1.")) for n in grads)


@pytest.mark.parametrize("branch", ["shared", "own-convs"])
def test_transfer_adds_mmd_between_class_matched_gap_representations(branch):
    x, mask, targets = planted_batch()
    torch.manual_seed(7)
    method, model = model_of("kt-mgfn", dropout=0.0, brm=False, trimmed_branch=branch)
    tx = {s: torch.randn(2, 4, 5) for s in STREAMS}
    trimmed = SimpleNamespace(x=tx, mask=torch.ones(2, 4, dtype=torch.bool), targets=targets.clone())
    total, parts = method.loss(model, batch_of(x, mask, targets, trimmed, torch.tensor([0, 1])), "main")
    assert {"kt", "trimmed_class"} <= set(parts)
    out_u = model(x, mask, targets)
    out_t = model.trimmed_forward(tx, trimmed.mask)
    assert float(parts["kt"]) == pytest.approx(float(method.mmd(out_t["gap"], out_u["stages"][0]["gap"]).detach()), rel=1e-5)
    rest = float(parts["class_stage1"] + parts["class_stage2"] + parts["trimmed_class"])
    assert float(total.detach()) == pytest.approx(rest + 10.0 * float(parts["kt"]), rel=1e-5)


def test_options_are_the_papers_defaults():
    o = KTMGFNOptions()
    assert o.dilations == [1, 2, 3, 5] and o.stages == 2 and o.xi_era == 0.8
    assert o.anchors == [1, 2, 4, 8, 16, 32] and o.gamma == 0.25 and o.alpha == 10.0 and o.beta == 10.0
    assert o.act_floor == 0.1 and o.oic_ceiling == -0.3
    assert not hasattr(MGFNOptions(), "beta")
    assert method_class("kt-mgfn").uses_trimmed and not method_class("mgfn").uses_trimmed
    d = method_class("kt-mgfn").detect_config()
    assert d.suppress == "soft-nms" and d.soft_nms_sigma == 0.75 and d.nms == 0.5


def test_fixed_length_trains_and_detects(tiny, tmp_path):
    from tsrnet.data.format.store import FeatureStore
    from tsrnet.detect.pipeline import score_store
    from tsrnet.train.config import Config
    from tsrnet.train.data import prepare_data
    from tsrnet.train.trainer import Trainer

    cfg = Config.for_method("kt-mgfn", {"hidden_dim": 8, "fixed_length": 16, "max_rows": 0, "brm_after": 0.0},
                            {"epochs": 2, "pretrain_steps": 2, "checkpoint_seconds": 1e9})
    data = prepare_data(cfg, tiny["untrimmed"], tiny["annotations"], "train", tiny["trimmed"])
    tr = Trainer(cfg, data, tmp_path / "r", progress=False)
    tr.fit()
    assert all(np.isfinite(h["loss"]) for h in tr.history)
    store = FeatureStore(tiny["untrimmed"])
    for vs in score_store(tr.model, store, store.video_ids(subset="test")[:3], "cpu"):
        t = len(vs.times)
        assert vs.rows[KEY]["cas"].shape == (t, len(data.classes))
        ev = tr.method.evidence(vs, cfg.detect)
        assert all(0 <= a < b <= t for _, a, b, _ in ev.intervals)
        for d in detect_video(vs, data.classes, cfg.detect, tr.method.evidence):
            assert 0 <= d["segment"][0] < d["segment"][1] <= vs.duration + 1e-6
