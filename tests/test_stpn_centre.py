"""STPN's rows centred at the mean training row (``centre_rows``, off by default): x̄ = Σ λ_t x_t / T pools the
mass times an average of rows, as SRNet's gates do, so a component every row shares reaches the classifier as the
mass alone (docs/studies/defaults.md, "STPN: the rows centred"). The centring is the SRNet family's
(``tsrnet.train.modules.CentredRows``)."""
import dataclasses

import torch

from tsrnet.train.methods import method_class


def model(**options):
    cls = method_class("stpn")
    opts = dataclasses.replace(cls.Options(), attention_dim=8, **options)
    torch.manual_seed(0)
    return cls(opts).module(("rgb", "flow"), 6, ["a", "b", "c"])


def videos():
    torch.manual_seed(1)
    x = torch.randn(2, 7, 6)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 4:] = False
    return {"rgb": x, "flow": x.flip(-1)}, mask


def train(net, x, mask, steps=3):
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    optim = torch.optim.Adam(net.parameters(), lr=0.05)
    net.train()
    for _ in range(steps):
        out = net(x, mask)
        loss = sum(torch.nn.functional.binary_cross_entropy_with_logits(o["logits"], targets)
                   + o["attention"].sum() / mask.sum() for o in out.values())
        optim.zero_grad()
        loss.backward()
        optim.step()
    return net.eval()


def test_off_by_default_and_then_the_rows_go_in_as_they_are():
    assert method_class("stpn").Options().centre_rows is False
    net = model()
    x, mask = videos()
    train(net, x, mask, steps=1)
    assert float(net.nets["rgb"].centre.abs().sum()) == 0.0


def test_the_centre_is_the_mean_of_the_real_training_rows_and_fixed_outside_training():
    net = model(centre_rows=True)
    x, mask = videos()
    train(net, x, mask, steps=2)
    rows = torch.cat([x["rgb"][0], x["rgb"][1, :4]])  # padding left out; two steps see the same rows twice
    torch.testing.assert_close(net.nets["rgb"].centre, rows.mean(dim=0))
    before = net.nets["rgb"].centre.clone()
    net.score({s: v + 5.0 for s, v in x.items()}, mask)
    torch.testing.assert_close(net.nets["rgb"].centre, before)


def test_a_component_every_row_shares_changes_nothing_when_centred():
    # Trained and scored on x or on x + c (c the same vector on every row), the centred network is the same
    # function; the uncentred one is not.
    x, mask = videos()
    c = torch.linspace(3.0, 9.0, 6)
    shifted = {s: v + c for s, v in x.items()}
    for centre, same in ((True, True), (False, False)):
        a = train(model(centre_rows=centre), x, mask).score(x, mask)
        b = train(model(centre_rows=centre), shifted, mask).score(shifted, mask)
        for s in ("rgb", "flow"):
            pairs = ((a["rows"][s]["attention"], b["rows"][s]["attention"]),
                     (a["rows"][s]["tcam"], b["rows"][s]["tcam"]), (a["video_prob"][s], b["video_prob"][s]))
            close = all(torch.allclose(p, q, atol=1e-5) for p, q in pairs)
            assert close == same, (centre, s)


def test_an_old_run_without_a_centre_loads_uncentred():
    old = {k: v for k, v in model().state_dict().items() if "centre" not in k}
    net = model(centre_rows=True)
    net.load_state_dict(old)  # strict: no missing key
    assert float(net.nets["rgb"].centre.abs().sum()) == 0.0
