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
