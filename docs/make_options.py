"""Render docs/options.md, the reference of every command's options and defaults, from the code.

    python docs/make_options.py           # rewrite docs/options.md
    python docs/make_options.py --check   # exit 1 if docs/options.md differs from what the code gives

The commands are the console scripts of setup.cfg, in its order; each table lists what the click
command declares (the sections its ``--help`` shows, its help texts and defaults), so no default
is typed by hand. ``./pipeline.sh``'s usage text is copied from the script. tests/test_docs.py
fails when the committed file differs from a fresh rendering, and uses :func:`option_tables` to
check the defaults the other documents state.
"""
from __future__ import annotations

import configparser
import contextlib
import dataclasses
import importlib
import re
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "options.md"
DEFAULT_AT_END = re.compile(r"\s*\[default: (.*)\]\s*$", re.S)
PER_METHOD = re.compile(r"^Settings of (.*)$")


def commands() -> dict[str, click.Command]:
    """Console script name -> click command, in setup.cfg's order."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    out = {}
    for line in cfg["options.entry_points"]["console_scripts"].strip().splitlines():
        name, _, target = (s.strip() for s in line.partition("="))
        module, _, attr = target.partition(":")
        out[name] = getattr(importlib.import_module(module), attr)
    return out


@dataclasses.dataclass
class Row:
    names: list[str]  # every spelling: --x, --no-x
    kind: str         # the value it takes, in words
    default: str      # as the code states it; "" when unset or off
    help: str
    param: click.Option


class _Recorder:
    """Stands in for click's HelpFormatter: keeps the sections and rows ``format_options`` writes."""

    def __init__(self):
        self.sections: list[tuple[str, list]] = []

    @contextlib.contextmanager
    def section(self, title):
        self.sections.append((title, []))
        yield

    def write_dl(self, rows, *args, **kw):
        self.sections[-1][1].extend(rows)


def _kind(p: click.Option) -> str:
    """The value an option takes, in words that do not depend on click's version."""
    t = p.type
    if p.is_flag and not p.secondary_opts:
        return "flag"
    if p.secondary_opts:
        return "on / off"
    if p.metavar:
        kind = p.metavar
    elif isinstance(t, click.Choice):
        kind = " | ".join(f"`{c}`" for c in t.choices)
    elif isinstance(t, (click.IntRange, click.FloatRange)):
        lo = "" if t.min is None else f"{t.min:g}{' <' if t.min_open else ' ≤'} "
        hi = "" if t.max is None else f"{' <' if t.max_open else ' ≤'} {t.max:g}"
        kind = f"{'integer' if isinstance(t, click.IntRange) else 'number'} {lo}x{hi}"
    elif isinstance(t, click.Path):
        kind = "file" if not t.dir_okay else "folder" if not t.file_okay else "path"
    else:
        kind = {"integer": "integer", "float": "number", "text": "text", "boolean": "on / off"}.get(t.name, t.name)
    return kind + (", repeatable" if p.multiple else "")


def _default(p: click.Option, help_text: str) -> tuple[str, str]:
    """(default, help without it): the ``[default: ...]`` a help text ends with, else a shown default."""
    m = DEFAULT_AT_END.search(help_text)
    if m:
        return m.group(1), help_text[:m.start()]
    if p.show_default and p.default is not None and (p.secondary_opts or not p.is_flag):
        return str(p.default), help_text
    return "", help_text


def option_tables(name: str, cmd: click.Command) -> list[tuple[str, list[Row]]]:
    """The sections of ``cmd``'s ``--help`` (title, rows), arguments and ``--help`` left out."""
    ctx = click.Context(cmd, info_name=name)
    rec = _Recorder()
    cmd.format_options(ctx, rec)
    extra = {title for title, _ in cmd.extra_sections(ctx)} if hasattr(cmd, "extra_sections") else set()
    by_flag = {o: p for p in cmd.get_params(ctx) if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}
    out = []
    for title, records in rec.sections:
        rows = []
        for flag_text, help_text in records:
            p = by_flag.get(flag_text.split()[0].split("/")[0])
            if p is None or "--help" in p.opts:  # arguments (named in the usage line) and --help
                continue
            # The rows a command adds per method (train-tsr's extra_sections) carry that method's help
            # and default; every other row takes the option's own help, free of click's rendering.
            default, text = _default(p, help_text if title in extra else p.help or "")
            rows.append(Row(p.opts + p.secondary_opts, _kind(p), default, " ".join(text.split()), p))
        if rows:
            out.append((title, rows))
    return out


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _help_text(cmd: click.Command) -> list[str]:
    """The command's docstring: ``\\b`` paragraphs as code, the rest as prose."""
    out = []
    for para in re.split(r"\n\s*\n", (cmd.help or "").strip()):
        lines = para.strip().splitlines()
        if lines and lines[0].strip() == "\b":
            body = lines[1:]
            indent = min(len(ln) - len(ln.lstrip()) for ln in body if ln.strip())
            out += ["```bash", *(ln[indent:] for ln in body), "```", ""]
        else:
            out += [" ".join(ln.strip() for ln in lines), ""]
    return out


def render_command(name: str, cmd: click.Command) -> list[str]:
    ctx = click.Context(cmd, info_name=name)
    usage = " ".join([name, *cmd.collect_usage_pieces(ctx)])
    out = [f"## {name}", "", f"`{usage}`", "", *_help_text(cmd)]
    for title, rows in option_tables(name, cmd):
        out += [f"**{title}**", "", "| option | value | default | what |", "|---|---|---|---|"]
        for r in rows:
            names = ", ".join(f"`{o}`" for o in r.names)
            out.append(f"| {names} | {_cell(r.kind)} | {_cell(f'`{r.default}`' if r.default else '')} | "
                       f"{_cell(r.help)} |")
        out.append("")
    return out


def localisation_defaults() -> dict[str, dict]:
    """Method -> its localisation defaults (what it records in a run; ``detect`` uses them unless told)."""
    from tsrnet.train.methods import REGISTRY

    return {m: dataclasses.asdict(c.detect_config()) for m, c in REGISTRY.items()}


def render_localisation_defaults() -> list[str]:
    values = localisation_defaults()
    fields = list(next(iter(values.values())))
    out = ["## Localisation defaults per method", "",
           "What each method records in its runs and `detect` uses unless an option overrides it "
           "([localisation.md](localisation.md) says what each setting does).", "",
           "| setting | " + " | ".join(f"`{m}`" for m in values) + " |", "|---" * (len(values) + 1) + "|"]
    for f in fields:
        out.append(f"| `--{f.replace('_', '-')}` | " + " | ".join(_cell(str(v[f])) for v in values.values()) + " |")
    return out + [""]


def pipeline_usage() -> str:
    m = re.search(r"cat <<'USAGE'\n(.*?)\nUSAGE\n", (ROOT / "pipeline.sh").read_text(), re.S)
    return m.group(1)


def render() -> str:
    cmds = commands()
    out = ["# Options of every command", "",
           "Generated from the code by `python docs/make_options.py`; do not edit by hand "
           "(`tests/test_docs.py` checks that this file equals a fresh rendering). What the commands do, "
           "and how they fit together: [usage.md](usage.md).", "",
           "Commands: " + ", ".join(f"[{n}](#{n})" for n in cmds) + ", [localisation defaults per method]"
           "(#localisation-defaults-per-method), [./pipeline.sh](#pipelinesh).", "",
           "Options whose default is blank are off or unset unless given. `train-tsr` and `compare-methods` "
           "list each method's own settings under the methods that have them, with that method's default; "
           "`detect`'s localisation options default to what the run's method recorded in the run (the table "
           "shows the values most methods record; [below](#localisation-defaults-per-method), every "
           "method's).", ""]
    for name, cmd in cmds.items():
        out += render_command(name, cmd)
    out += render_localisation_defaults()
    out += ["## ./pipeline.sh", "", "Its `--help`, copied from the script:", "", "```text", pipeline_usage(),
            "```", ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} differs from the code's options: run python docs/make_options.py",
                  file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
