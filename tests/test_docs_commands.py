"""The documents agree with the code: every command line they show parses, and the option reference is current.

A command line is any line of a fenced block in README.md or docs/ that starts
with a console script of setup.cfg. It is parsed as click parses it, with the
option types checked (choices, numbers, ranges) but paths not required to
exist; ``...``, ``[...]`` and ``$VAR`` stand for arguments left out.
"""
import re
import shlex
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import make_options  # noqa: E402

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
COMMANDS = make_options.commands()  # console script name -> click command
PLACEHOLDER = re.compile(r"^(\.\.\.|\$\w+|\[.*|.*\])$")  # ..., $VAR, [...] (possibly split over words)


def command_lines() -> list[tuple[str, str]]:
    """(where, line) for every documented command line; backslash continuations joined."""
    out = []
    for doc in DOCUMENTS:
        for block in re.findall(r"```[^\n]*\n(.*?)```", doc.read_text(), re.S):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                words = line.split()
                if words and Path(words[0]).name in COMMANDS:
                    out.append((doc.relative_to(ROOT).as_posix(), line.strip()))
    return out


def check_line(line: str) -> None:
    """Raise click's own error if ``line`` would not parse; paths are not looked up."""
    words = shlex.split(line, comments=True)
    name = Path(words[0]).name
    cmd = COMMANDS[name]
    args = [w for w in words[1:] if not PLACEHOLDER.match(w)]
    elided = len(args) < len(words) - 1
    ctx = click.Context(cmd, info_name=name)
    values, extra, _ = cmd.make_parser(ctx).parse_args(args=args)  # unknown options, missing values
    if extra:
        raise click.UsageError(f"unexpected arguments {extra}")
    for p in cmd.get_params(ctx):
        given = values.get(p.name)
        if given is not None and not isinstance(given, (str, int, float, list, tuple)):
            given = None  # click's marker for "not on the line" (a sentinel object in click 8.2+)
        if isinstance(p, click.Argument) and given is None and p.required and not elided:
            raise click.MissingParameter(param=p)
        if given is not None and not isinstance(p.type, click.Path):
            p.type_cast_value(ctx, given)  # choices, numbers, ranges


LINES = command_lines()


def test_the_documents_show_command_lines():
    used = {Path(line.split()[0]).name for _, line in LINES}
    assert {"train-tsr", "detect", "extract-features", "train-backbone", "compare-methods", "import-features"} <= used


@pytest.mark.parametrize("where, line", LINES, ids=[f"{w}:{i}" for i, (w, _) in enumerate(LINES)])
def test_a_documented_command_line_parses(where, line):
    check_line(line)


@pytest.mark.parametrize("line, message", [
    ("detect --threshhold 0.2", "No such option"),
    ("detect --scale nonsense", "nonsense"),
    ("train-tsr out.h5 --model no-such-method", "no-such-method"),
    ("train-tsr", "Missing"),
    ("evaluate gt.json", "Missing"),
    ("detect --threshold", "requires an argument"),
    ("train-backbone clips/ out/ --epochs two", "two"),
])
def test_the_check_refuses_what_the_command_refuses(line, message):
    with pytest.raises(click.ClickException, match=message):
        check_line(line)


def test_a_placeholder_stands_for_left_out_arguments():
    check_line("compare-methods ... --diagnose DIR")
    check_line("train-tsr th14s0/untrimmed.h5 --seed 0 $O")


def test_the_option_reference_is_what_the_code_declares():
    # docs/options.md is rendered from the click commands (defaults included): regenerate, never edit.
    assert (ROOT / "docs" / "options.md").read_text() == make_options.render(), \
        "docs/options.md is out of date: run python docs/make_options.py"


def test_the_rendered_defaults_are_the_options_defaults():
    """Spot-check the renderer against the commands' own defaults, so a broken renderer cannot agree with itself."""
    backbone = {o: r for _, rs in make_options.option_tables("train-backbone", COMMANDS["train-backbone"])
                for r in rs for o in r.names}
    from tsrnet.extract.finetune.config import BackboneConfig

    for field in ("segments", "iterations", "batch", "lr_rgb", "lr_flow", "dropout", "snippets"):
        row = backbone["--" + field.replace("_", "-")]
        assert float(row.default) == float(getattr(BackboneConfig(), field)), field
