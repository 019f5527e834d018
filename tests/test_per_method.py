"""compare-methods --set METHODS:NAME=VALUE: a setting for some methods only."""
import click
import pytest

from tsrnet.train.cli import build_config, parse_per_method


def test_typed_values_reach_only_the_named_methods():
    names = ["srnet", "stpn", "kt-mgfn"]
    got = parse_per_method(["srnet,stpn:beta=0.1", "srnet:smoothness=sum", "srnet:sparsity-confidence=false",
                            "kt-mgfn:stages=2"], names)
    assert got == {"srnet": {"beta": 0.1, "smoothness": "sum", "sparsity_confidence": False},
                   "stpn": {"beta": 0.1}, "kt-mgfn": {"stages": 2}}
    # kt-mgfn's own beta (the L_KT weight) keeps its default
    default = build_config("kt-mgfn", {}, {}).options.beta
    assert build_config("kt-mgfn", got["kt-mgfn"], {}).options.beta == default != 0.1
    assert build_config("srnet", got["srnet"], {}).options.beta == 0.1


@pytest.mark.parametrize("item, message", [
    ("srnet-beta=0.1", "not METHODS:NAME=VALUE"),
    ("tsrnet:beta=0.1", "'tsrnet' is not in --models"),
    ("srnet:no-such=1", "srnet has no setting 'no-such'"),
    ("srnet:beta=high", "could not convert"),
    ("srnet:smoothness=median", "choose from mean, sum"),
    ("srnet:sparsity-keep=1.5", "outside"),
    ("srnet:sparsity-confidence=maybe", "expected true or false"),
])
def test_bad_items_are_refused(item, message):
    with pytest.raises(click.BadParameter, match=message):
        parse_per_method([item], ["srnet", "stpn"])
