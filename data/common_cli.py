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
from tsrnet.data.core.settings import field_choices, field_default, field_help, field_range


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


def field_option(f, dest: str, flag: str, help_: str, default_text: str, section: str | None = None):
    """One click option for a config dataclass field (bool -> on/off pair, list -> repeated)."""
    default, choices, rng = field_default(f), field_choices(f), field_range(f)
    kw = dict(cls=SectionOption, section=section, default=None)
    if isinstance(default, bool):
        return click.option(f"{flag}/--no-{flag[2:]}", dest, help=f"{help_} [default: {default_text}]", **kw)
    if isinstance(default, list):
        typ = click.FloatRange(*rng) if rng is not None else float
        return click.option(flag, dest, type=typ, multiple=True,
                            help=f"{help_} Repeat the option for several. [default: {default_text}]", **kw)
    typ = click.Choice(choices) if choices is not None else type(default)
    if rng is not None:
        typ = click.FloatRange(*rng)
    return click.option(flag, dest, type=typ, help=f"{help_} [default: {default_text}]", **kw)


def dataclass_options(kind, prefix: str, skip=(), flag_prefix: str = "", section: str | None = None):
    """Click options for every field of a config dataclass, named ``--{flag_prefix}field-name``.

    Values arrive as keyword arguments ``{prefix}__{field}``; collect them with
    :func:`collect`. Defaults are ``None`` so that only what the user typed
    overrides the dataclass default (which ``--help`` shows).
    """

    def decorate(fn):
        for f in reversed(dataclasses.fields(kind)):
            if f.name in skip:
                continue
            flag = "--" + flag_prefix + f.name.replace("_", "-").strip("-")
            fn = field_option(f, f"{prefix}__{f.name}", flag, field_help(f), str(field_default(f)), section)(fn)
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
