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
_PARSE, _METAVAR, _FLAG, _PATH, _HIDDEN, _SHOWN, _OPTION = "parse", "metavar", "flag", "path", "hidden", "shown", "option"
PATH_KINDS = ("file", "dir", "any", "existing file", "existing dir", "existing")


def opt(default, help: str, *, choices=None, range=None, runtime: bool = False, parse=None, metavar: str | None = None,
        flag: bool = False, path: str | None = None, shown: str | None = None, hidden: bool = False,
        option: str | None = None):
    """A config dataclass field with its command-line help text.

    ``choices``: the allowed values (a string setting); ``range``: ``(low, high)``, inclusive (None: open), of
    a number or of every number of a list; ``runtime``: left out of what a resumed run must match
    (``Config.result_dict``). A list or dict default is copied for every instance.

    For the command line only: ``parse`` reads the value from its text (a type such as ``int`` for a
    setting whose default is None, or a function raising :class:`ValueError` that says what is wrong);
    ``metavar`` names the value in ``--help``; ``flag``: a bool off by default, switched on by a bare
    ``--name``; ``path``: the value names a file or folder (one of :data:`PATH_KINDS`; "existing ..." ones
    must exist); ``shown``: the default as ``--help`` states it, where the value alone would not say it
    (None: "from SLURM_ARRAY_TASK_ID"); ``hidden``: left out of ``--help`` (plumbing between processes);
    ``option``: the option's name where it is not the field's (``--fps`` for ``rows_per_second``).
    """
    meta = {_HELP: help}
    if choices is not None:
        meta[_CHOICES] = choices
    if range is not None:
        meta[_RANGE] = range
    if runtime:
        meta[_RUNTIME] = True
    if path is not None and path not in PATH_KINDS:
        raise ValueError(f"path={path!r}: choose from {PATH_KINDS}")
    for key, value in ((_PARSE, parse), (_METAVAR, metavar), (_PATH, path), (_SHOWN, shown), (_OPTION, option)):
        if value is not None:
            meta[key] = value
    if flag:
        meta[_FLAG] = True
    if hidden:
        meta[_HIDDEN] = True
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


def field_cli(f: dataclasses.Field) -> dict:
    """What the command line needs beyond the value's type: parse, metavar, flag, path, shown, hidden."""
    return {k: f.metadata[k] for k in (_PARSE, _METAVAR, _FLAG, _PATH, _SHOWN, _HIDDEN, _OPTION) if k in f.metadata}


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
    low, high = rng if rng else (None, None)
    if any((low is not None and v < low) or (high is not None and v > high)
           for v in (value if isinstance(value, list) else [value])):
        raise ValueError(f"outside [{low}, {'' if high is None else high}]")
    return value
