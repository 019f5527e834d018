"""Shared command-line plumbing: config dataclasses as click options, one-line errors."""
from __future__ import annotations

import dataclasses
import functools
import sys

import click

from .errors import DataError


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


def dataclass_options(kind, prefix: str, skip=(), flag_prefix: str = ""):
    """Click options for every field of a config dataclass, named ``--{flag_prefix}field-name``.

    Values arrive as keyword arguments ``{prefix}__{field}``; collect them with
    :func:`collect`. Defaults are ``None`` so that only what the user typed
    overrides the dataclass default (which ``--help`` shows).
    """

    def decorate(fn):
        for f in reversed(dataclasses.fields(kind)):
            if f.name in skip:
                continue
            meta = f.metadata
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            name = "--" + flag_prefix + f.name.replace("_", "-").strip("-")
            dest = f"{prefix}__{f.name}"
            help_ = meta.get("help", "")
            if isinstance(default, bool):
                fn = click.option(f"{name}/--no-{flag_prefix}{f.name.replace('_', '-')}", dest, default=None,
                                  help=f"{help_} [default: {default}]")(fn)
            elif isinstance(default, list):
                typ = click.FloatRange(*meta["range"]) if "range" in meta else float
                fn = click.option(name, dest, type=typ, multiple=True, default=None,
                                  help=f"{help_} Repeat the option for several. [default: {default}]")(fn)
            else:
                typ = click.Choice(meta["choices"]) if "choices" in meta else type(default)
                if "range" in meta:
                    typ = click.FloatRange(*meta["range"])
                fn = click.option(name, dest, type=typ, default=None, help=f"{help_} [default: {default}]")(fn)
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
