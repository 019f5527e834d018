"""SRNet's rows centred at the mean training row (``centre_rows``): a component every row shares must not decide
what the attention learns (docs/studies/defaults.md, "Where the scaling loses"; issue 31, item 3).

With gates pooled as ``a = g / n`` the pooled feature is the mass times an average of rows; a component c that every
row shares reaches the classifier as ``mass * c``, and the class loss's gradient for each gate, ``u . x_i / n``, is
then mostly ``u . c / n``, the same for every row: the attention learns a level, not which rows. The demo's
random-weight RGB rows are such features (their mean row is 10 times their variation); SRNet's RGB attention closed
there and its row scores went flat.
"""
import dataclasses

import torch

from tsrnet.train.methods import method_class


def test_the_running_centre_is_the_mean_of_the_rows_seen_and_fixed_outside_training():
    cls = method_class("srnet")
    opts = dataclasses.replace(cls.Options(), hidden_dim=8, attention_dim=4)
    net = cls(opts).module(("rgb",), 3, ["a", "b"]).nets["rgb"]
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    net.train()
    net(x, mask)
    net(x[:1] + 1.0, mask[:1])
    seen = torch.cat([x[0], x[1, :2], x[0] + 1.0])  # the real rows of both batches, padding left out
    torch.testing.assert_close(net.centre, seen.mean(dim=0))
    before = net.centre.clone()
    net.eval()
    net(x + 100.0, mask)
    torch.testing.assert_close(net.centre, before)


def test_an_old_run_without_a_centre_loads_uncentred():
    cls = method_class("srnet")
    opts = dataclasses.replace(cls.Options(), hidden_dim=8, attention_dim=4)
    old = {k: v for k, v in cls(opts).module(("rgb",), 3, ["a", "b"]).state_dict().items() if "centre" not in k}
    net = cls(opts).module(("rgb",), 3, ["a", "b"])
    net.load_state_dict(old)  # strict: no missing key
    assert float(net.nets["rgb"].centre.abs().sum()) == 0.0
