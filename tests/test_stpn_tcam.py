"""STPN's T-CAM (Eq. 4) is taken at the scale of the pooled feature its classifier was trained on
(``row_input="mass"``): x̄ = Σ λ_t x_t / T is the video's mean attention times an average of its rows, so a row
given as it is lies 1 / mean(λ) times outside that scale (docs/methods/stpn.md, docs/studies/defaults.md)."""
import dataclasses

import torch

from tsrnet.train.methods import method_class


def model(**options):
    cls = method_class("stpn")
    opts = dataclasses.replace(cls.Options(), attention_dim=8, **options)
    torch.manual_seed(0)
    return cls(opts).module(("rgb", "flow"), 6, ["a", "b", "c"]).eval()


def repeated_row_video(n=9):
    """Two videos, each one row repeated (the second padded)."""
    torch.manual_seed(1)
    x = (torch.rand(2, 1, 6) * 4).expand(2, n, 6).clone()
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, 6:] = False
    return {"rgb": x, "flow": x.flip(-1)}, mask


def test_a_video_of_one_repeated_row_has_its_video_logit_on_every_row():
    # Eq. 3: the video's class score is Σ_t λ_t a_t / T (+ the bias); for one repeated row that is λ a, which the
    # mass-scaled T-CAM gives on every row.
    net = model()
    x, mask = repeated_row_video()
    out = net.score(x, mask)
    for s in ("rgb", "flow"):
        tcam, video = out["rows"][s]["tcam"], out["video_prob"][s]  # (B, T, C), (B, C)
        bias = net.nets[s].classifier.bias
        for b, n in enumerate(mask.sum(dim=1).tolist()):
            torch.testing.assert_close(torch.sigmoid(tcam[b, :n] + bias), video[b].expand(n, -1))


def test_the_row_as_it_is_is_outside_the_training_scale():
    net = model(row_input="row")
    x, mask = repeated_row_video()
    out = net.score(x, mask)
    lam = out["rows"]["rgb"]["attention"][0, 0]
    assert lam < 0.99
    scaled = model().score(x, mask)["rows"]["rgb"]["tcam"][0]
    torch.testing.assert_close(out["rows"]["rgb"]["tcam"][0] * lam, scaled)


def test_a_stream_whose_attention_closed_proposes_nothing():
    """RGB attention shut on every row (as on the demo's random-weight features): without the rule, its flat ψ
    became one whole-video interval of score 0 for every kept class; the flow stream's action is still found."""
    import numpy as np

    from tsrnet.detect.config import DetectConfig
    from tsrnet.detect.localize import VideoScores
    from tsrnet.detect.pipeline import detections

    t = np.arange(20) + 0.5
    tcam = np.full((20, 3), -2.0)
    tcam[5:9, 1] = 3.0  # class b over rows 5-8
    lam_flow = np.full(20, 0.05)
    lam_flow[5:9] = 0.95
    rows = {"rgb": {"attention": np.full(20, 1e-30), "tcam": tcam},
            "flow": {"attention": lam_flow, "tcam": tcam}}
    vp = np.array([0.3, 0.9, 0.2])  # every class passes the class threshold 0.1
    vs = VideoScores("v", t, 20.0, rows, {"rgb": vp, "flow": vp})
    stpn = method_class("stpn")(method_class("stpn").Options())
    dets = detections([vs], ["a", "b", "c"], DetectConfig(score="inside"), stpn.evidence)["v"]
    assert all(d["segment"] == [5.0, 9.0] for d in dets)  # λ's peak, for each class; no whole-video interval
    assert max(dets, key=lambda d: d["score"])["label"] == "b"
    stpn.CLOSED = 0.0  # the rule off: the closed stream adds a whole-video interval for every kept class
    whole = [d for d in detections([vs], ["a", "b", "c"], DetectConfig(score="inside"), stpn.evidence)["v"]
             if d["segment"] == [0.0, 20.0]]
    assert sorted(d["label"] for d in whole) == ["a", "b", "c"]
    stpn.CLOSED = type(stpn).CLOSED

    rows["flow"]["attention"] = np.full(20, 1e-30)  # both closed: no evidence at all, no detection
    assert detections([vs], ["a", "b", "c"], DetectConfig(score="inside"), stpn.evidence)["v"] == []
