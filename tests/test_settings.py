"""tsrnet.data.core.settings: a setting's declaration (opt) and what is read back from it."""
import dataclasses

import pytest

from tsrnet.data.core.settings import (field_choices, field_default, field_help, field_kind, field_range, is_runtime, opt,
                                  parse_value)


@dataclasses.dataclass
class Example:
    rate: float = opt(0.5, "A rate.", range=(0.0, 1.0))
    mode: str = opt("mean", "A mode.", choices=("mean", "sum"))
    on: bool = opt(True, "A switch.")
    widths: list = opt([1.0, 2.0], "Widths.", range=(0.0, 8.0))
    workers: int = opt(0, "Processes.", runtime=True)


F = {f.name: f for f in dataclasses.fields(Example)}


def test_what_opt_declares_is_read_back():
    assert field_help(F["rate"]) == "A rate." and field_range(F["rate"]) == (0.0, 1.0)
    assert field_choices(F["mode"]) == ("mean", "sum") and field_choices(F["rate"]) is None
    assert is_runtime(F["workers"]) and not is_runtime(F["rate"])
    assert field_default(F["widths"]) == [1.0, 2.0] and field_kind(F["mode"]) == (str, ("mean", "sum"), None)
    # a list default is each instance's own
    a, b = Example(), Example()
    a.widths.append(3.0)
    assert b.widths == [1.0, 2.0]


def test_an_undeclared_keyword_is_refused():
    with pytest.raises(TypeError):
        opt(1, "x", chioces=(1, 2))


@pytest.mark.parametrize("name, text, value", [("rate", "0.25", 0.25), ("mode", "sum", "sum"), ("on", "off", False),
                                               ("on", "Yes", True), ("widths", "1,4", [1.0, 4.0]),
                                               ("workers", "2", 2)])
def test_text_is_typed_as_the_option_would(name, text, value):
    assert parse_value(F[name], text) == value


@pytest.mark.parametrize("name, text, message", [("rate", "1.5", r"outside \[0.0, 1.0\]"),
                                                 ("widths", "1,9", r"outside \[0.0, 8.0\]"),
                                                 ("mode", "median", "choose from mean, sum"),
                                                 ("on", "maybe", "expected true or false"),
                                                 ("workers", "two", "invalid literal")])
def test_bad_text_says_what_is_wrong(name, text, message):
    with pytest.raises(ValueError, match=message):
        parse_value(F[name], text)
