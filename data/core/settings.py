"""How a configuration dataclass declares a setting, and what it declares about it.

Every setting of the project's configuration (``tsrnet.train.config.TrainConfig``,
``tsrnet.detect.config.DetectConfig``, each method's ``Options``) is a
dataclass field made with :func:`opt`: its default and, in the field's
metadata, its help text, its choices or range, and whether it is
``runtime`` (changes how fast a run goes, not what it computes). This module
is the one place that writes and reads that metadata; the command lines
(``tsrnet.data.common_cli``, ``train/cli.py``) build their options from it, and
:func:`parse_value` types a value given as text (``compare-methods --set``)
as the option would.

It sits in the lowest layer because configurations of every layer use it
(``detect``'s, ``train``'s); it imports nothing of the project.
"""
from __future__ import annotations

import dataclasses

_HELP, _CHOICES, _RANGE, _RUNTIME = "help", "choices", "range", "runtime"


def opt(default, help: str, *, choices=None, range=None, runtime: bool = False):
    """A config dataclass field with its command-line help text.

    ``choices``: the allowed values (a string setting); ``range``: ``(low, high)``, inclusive, of a number or
    of every number of a list; ``runtime``: left out of what a resumed run must match
    (``Config.result_dict``). A list or dict default is copied for every instance.
    """
    meta = {_HELP: help}
    if choices is not None:
        meta[_CHOICES] = choices
    if range is not None:
        meta[_RANGE] = range
    if runtime:
        meta[_RUNTIME] = True
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_default(f: dataclasses.Field):
    """The default a field gives a new instance."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def field_help(f: dataclasses.Field) -> str:
    return f.metadata.get(_HELP, "")


def field_choices(f: dataclasses.Field):
    """The allowed values, or None."""
    return f.metadata.get(_CHOICES)


def field_range(f: dataclasses.Field):
    """``(low, high)``, or None."""
    return f.metadata.get(_RANGE)


def is_runtime(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get(_RUNTIME))


def field_kind(f: dataclasses.Field) -> tuple:
    """What one command-line option needs to parse the field's values: the default's type, choices, range."""
    return type(field_default(f)), field_choices(f), field_range(f)


def parse_value(f: dataclasses.Field, text: str):
    """``text`` as the type of ``f``'s default, checked against its choices and range.

    A bool reads true/false, 1/0, yes/no, on/off; a list, comma-separated numbers. Raises
    :class:`ValueError` saying what is wrong.
    """
    default = field_default(f)
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ValueError("expected true or false")
        value = text.lower() in ("true", "1", "yes", "on")
    elif isinstance(default, list):
        value = [float(v) for v in text.split(",")]
    else:
        value = type(default)(text)
    choices, rng = field_choices(f), field_range(f)
    if choices and value not in choices:
        raise ValueError(f"choose from {', '.join(choices)}")
    if rng and not all(rng[0] <= v <= rng[1] for v in (value if isinstance(value, list) else [value])):
        raise ValueError(f"outside [{rng[0]}, {rng[1]}]")
    return value
