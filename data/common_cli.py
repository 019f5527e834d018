"""What every command module shares: config dataclasses as click options, one-line errors.

The settings themselves, with their help, choices and ranges, are declared in the configuration
(``tsrnet.data.core.settings.opt``); this module only turns them into click options.
"""
from __future__ import annotations

import dataclasses
import functools
import sys

import click

from tsrnet.data.core.errors import DataError
from tsrnet.data.core.settings import field_choices, field_cli, field_default, field_help, field_range


def fail_cleanly(fn):
    """Turn :class:`DataError` into a one-line ``error: ...`` and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DataError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return wrapper


class SectionOption(click.Option):
    """A click option that ``--help`` lists under a heading (``section``)."""

    def __init__(self, *args, section: str | None = None, **kw):
        super().__init__(*args, **kw)
        self.section = section


class SectionedCommand(click.Command):
    """A command whose ``--help`` groups options under their :class:`SectionOption` headings, in order.

    Options whose section is ``""`` are left to :meth:`extra_sections`, which a
    subclass fills (the method settings of ``train-tsr``, listed per method);
    those sections follow the first one.
    """

    def extra_sections(self, ctx) -> list[tuple[str, list]]:
        return []

    def format_options(self, ctx, formatter):
        sections: dict[str, list] = {}
        for p in self.get_params(ctx):
            rec = p.get_help_record(ctx)
            section = getattr(p, "section", None)
            if rec is not None and section != "":
                sections.setdefault(section or "Options", []).append(rec)
        items = list(sections.items())
        items[1:1] = self.extra_sections(ctx)
        for title, records in items:
            with formatter.section(title):
                formatter.write_dl(records)


class _Parsed(click.ParamType):
    """A value read by the setting's own ``parse`` function (``opt(parse=...)``); its ValueError is the message."""

    def __init__(self, parse, metavar: str | None):
        self.parse, self.name = parse, metavar or getattr(parse, "__name__", "value")

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


_PATHS = {"file": dict(dir_okay=False), "dir": dict(file_okay=False), "any": {},
          "existing file": dict(exists=True, dir_okay=False), "existing dir": dict(exists=True, file_okay=False),
          "existing": dict(exists=True)}


def field_option(f, dest: str, flag: str, help_: str, default_text: str | None, section: str | None = None):
    """One click option for a config dataclass field: bool -> on/off pair (or a bare flag), list -> repeated,
    a path, a choice, a range, or the field's own ``parse``; ``default_text`` None: no default shown."""
    default, choices, rng, cli = field_default(f), field_choices(f), field_range(f), field_cli(f)
    shown = cli.get("shown", default_text)
    suffix = "" if shown is None else f" [default: {shown}]"
    kw = dict(cls=SectionOption, section=section, default=None, hidden=cli.get("hidden", False))
    if cli.get("metavar"):
        kw["metavar"] = cli["metavar"]
    if isinstance(default, bool):
        if cli.get("flag"):
            return click.option(flag, dest, is_flag=True, flag_value=True, help=help_, **kw)
        return click.option(f"{flag}/--no-{flag[2:]}", dest, help=f"{help_}{suffix}", **kw)
    if isinstance(default, list):
        typ = cli.get("parse") or (click.FloatRange(*rng) if rng is not None else float)
        return click.option(flag, dest, type=typ, multiple=True,
                            help=f"{help_} Repeat the option for several.{suffix}", **kw)
    if "path" in cli:
        typ = click.Path(**_PATHS[cli["path"]])  # text, as settings record it (JSON)
    elif "parse" in cli and not isinstance(cli["parse"], type):
        typ = _Parsed(cli["parse"], cli.get("metavar"))
    elif choices is not None:
        typ = click.Choice(choices)
    elif rng is not None:
        typ = click.IntRange(*rng) if isinstance(default, int) else click.FloatRange(*rng)
    else:
        typ = cli.get("parse") or (type(default) if default is not None else str)
    return click.option(flag, dest, type=typ, help=f"{help_}{suffix}", **kw)


def dataclass_options(kind, prefix: str, skip=(), flag_prefix: str = "", section: str | None = None, other=None,
                      other_label: str = ""):
    """Click options for every field of a config dataclass, named ``--{flag_prefix}field-name``.

    Values arrive as keyword arguments ``{prefix}__{field}``; collect them with
    :func:`collect`. Defaults are ``None`` so that only what the user typed
    overrides the dataclass default (which ``--help`` shows).

    With ``other``, a second dataclass for another mode of the command (the synthetic generator's spec with
    ``--layout``), the fields of both are offered once, each default shown for the mode it belongs to.
    """

    def decorate(fn):
        mine = {f.name: f for f in dataclasses.fields(kind) if f.name not in skip}
        theirs = {f.name: f for f in dataclasses.fields(other) if f.name not in skip} if other else {}
        names = list(mine) + [n for n in theirs if n not in mine]
        for name in reversed(names):
            f = mine.get(name) or theirs[name]
            if other:
                shown = ([f"{field_default(mine[name])} without {other_label}"] if name in mine else []) + \
                        ([f"{field_default(theirs[name])} with {other_label}"] if name in theirs else [])
                default_text = "; ".join(shown)
            else:
                default_text = None if field_default(f) is None else str(field_default(f))
            flag = field_cli(f).get("option") or "--" + flag_prefix + name.replace("_", "-").strip("-")
            fn = field_option(f, f"{prefix}__{name}", flag, field_help(f), default_text, section)(fn)
        return fn

    return decorate


def collect(kwargs: dict, prefix: str) -> dict:
    """Pop the options of one section that the user set."""
    out = {}
    for key in [k for k in kwargs if k.startswith(prefix + "__")]:
        value = kwargs.pop(key)
        if value is None or value == ():
            continue
        out[key.split("__", 1)[1]] = list(value) if isinstance(value, tuple) else value
    return out
