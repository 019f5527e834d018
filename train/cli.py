"""``train-tsr`` and ``compare-methods``."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from tsrnet.data.common_cli import SectionedCommand, collect, dataclass_options, fail_cleanly, field_option
from tsrnet.data.core.errors import DataError
from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.core.settings import field_default, field_help, field_kind, opt, parse_value
from tsrnet.data.core.progress import quiet_opt
from tsrnet.data.format.store import FeatureStore

from .compare import CompareOptions, Comparison, compare
from .config import DEFAULT_METHOD, Config, TrainConfig
from .data import Inputs
from .methods import REGISTRY, method_class
from .trainer import train_run

OPT = "opt"  # keyword prefix of method settings


def method_settings() -> dict[str, list]:
    """Setting name -> [(method name, dataclass field), ...] over every registered method, in registry order."""
    table: dict[str, list] = {}
    for name, cls in REGISTRY.items():
        for f in dataclasses.fields(cls.Options):
            table.setdefault(f.name, []).append((name, f))
    return table


def method_options(fn):
    """One click option per setting name; several methods may share a name (``--beta``), each with its
    own meaning and default. ``--help`` lists them per method (:class:`MethodCommand`)."""
    for key, entries in reversed(list(method_settings().items())):
        kinds = {field_kind(f) for _, f in entries}
        if len(kinds) > 1:  # one click option parses the value for all of them
            raise TypeError(f"methods {[m for m, _ in entries]} declare setting {key!r} with different types or "
                            "choices; rename one")
        fn = field_option(entries[0][1], f"{OPT}__{key}", "--" + key.replace("_", "-"), "", "", "")(fn)
    return fn


class MethodCommand(SectionedCommand):
    """``--help`` with one section per method's ``Options`` class: the settings that class declares, with
    that method's help and default. Methods whose options extend another's (tsrnet's extend srnet's) are
    named in the section of every class they inherit from."""

    def extra_sections(self, ctx):
        params = {p.name: p for p in self.get_params(ctx)}
        sections = []
        for cls in dict.fromkeys(c.Options for c in REGISTRY.values()):
            users = [n for n, c in REGISTRY.items() if issubclass(c.Options, cls)]
            inherited = {f.name for base in cls.__mro__[1:] if dataclasses.is_dataclass(base)
                         for f in dataclasses.fields(base)}
            records = []
            for f in dataclasses.fields(cls):
                if f.name in inherited:
                    continue
                flag = params[f"{OPT}__{f.name}"].get_help_record(ctx)[0]
                # A subclass may declare the setting again with another default (tsrnet's --centre-rows).
                other = {}
                for n in users:
                    d = field_default(REGISTRY[n].Options.__dataclass_fields__[f.name])
                    if d != field_default(f):
                        other.setdefault(d, []).append(n)
                own = "".join(f"; {', '.join(ns)}: {d}" for d, ns in other.items())
                records.append((flag, f"{field_help(f)} [default: {field_default(f)}{own}]"))
            if records:
                sections.append((f"Settings of {', '.join(users)}", records))
        return sections


def given_settings(kw: dict) -> dict:
    """Pop the method settings the user typed."""
    return collect(kw, OPT)


def settings_for(method: str, given: dict, others_ok: bool = False) -> dict:
    """The typed settings that ``method`` has; a typed setting it lacks is an error unless ``others_ok``."""
    own = {f.name for f in dataclasses.fields(method_class(method).Options)}
    if not others_ok:
        alien = [k for k in given if k not in own]
        if alien:
            have = [m for m, _ in method_settings()[alien[0]]]
            raise DataError(f"--{alien[0].replace('_', '-')} is a setting of {', '.join(have)}, not of "
                            f"--model {method}")
    return {k: v for k, v in given.items() if k in own}


def parse_per_method(items, names) -> dict[str, dict]:
    """``--set METHODS:NAME=VALUE`` values -> {method: {setting: typed value}} for every listed method."""
    out: dict[str, dict] = {m: {} for m in names}
    for item in items:
        head, sep, value = item.partition("=")
        methods, colon, name = head.partition(":")
        if not (sep and colon and methods and name):
            raise click.BadParameter(f"{item!r} is not METHODS:NAME=VALUE (e.g. srnet,tsrnet:beta=0.1)",
                                     param_hint="--set")
        key = name.strip().lstrip("-").replace("-", "_")
        for m in (x.strip() for x in methods.split(",")):
            if m not in out:
                raise click.BadParameter(f"{item!r}: {m!r} is not in --models ({', '.join(names)})", param_hint="--set")
            field = {f.name: f for f in dataclasses.fields(method_class(m).Options)}.get(key)
            if field is None:
                raise click.BadParameter(f"{item!r}: {m} has no setting {key.replace('_', '-')!r}", param_hint="--set")
            try:
                out[m][key] = parse_value(field, value.strip())
            except ValueError as e:
                raise click.BadParameter(f"{item!r}: {e}", param_hint="--set") from None
    return out


def build_config(method: str, settings: dict, kw: dict) -> Config:
    return Config.for_method(method, settings, collect(kw, "train"), collect(kw, "detect"))


def _log(message: str) -> None:
    click.echo(message, err=True)


def common_inputs(fn):
    """FEATURES and the other inputs of a training (:class:`Inputs`)."""
    fn = dataclass_options(Inputs, "inputs", skip=("features",))(fn)
    return click.argument("features", type=click.Path(exists=True, dir_okay=False))(fn)


def _describe_methods() -> str:
    return "; ".join(f"{n} ({c.description})" for n, c in REGISTRY.items())


@dataclasses.dataclass(frozen=True)
class TrainRun:
    """What train-tsr trains and where it writes, beside the method's and the training's settings."""

    method: str = opt(DEFAULT_METHOD, f"Method: {_describe_methods()}.", choices=tuple(REGISTRY), option="--model")
    out: str | None = opt(None, "Run directory.", path="dir", shown="runs/<model>-<time>")
    overwrite: bool = opt(False, "Start afresh even if --out holds a checkpoint (default: resume).", flag=True)
    quiet: bool = quiet_opt()


@click.command(cls=MethodCommand, context_settings={"help_option_names": ["-h", "--help"],
                                                    "max_content_width": 110})
@common_inputs
@dataclass_options(TrainRun, "run")
@method_options
@dataclass_options(TrainConfig, "train", section="Training (every method)")
@fail_cleanly
def train_tsr(features, **kw):
    """Train TSRNet (or another method) on cached two-stream features.

    \b
    train-tsr thumos.h5 --annotations gt.json --subset validation \\
        --trimmed ucf101.h5 --out runs/tsrnet
    detect --threshold 0.2

    Re-running the same command with the same --out resumes from the last
    checkpoint. Each method's own settings are listed under its name below;
    a setting of another method is refused.
    """
    run = TrainRun(**collect(kw, "run"))
    inputs = Inputs(features, **collect(kw, "inputs"))
    cfg = build_config(run.method, settings_for(run.method, given_settings(kw)), kw)
    run_dir = train_run(cfg, inputs, run.out, run.overwrite, progress=not run.quiet, log=_log)
    click.echo(str(run_dir))


@click.command(cls=MethodCommand, context_settings={"help_option_names": ["-h", "--help"],
                                                    "max_content_width": 110})
@common_inputs
@dataclass_options(CompareOptions, "cmp")
@method_options
@dataclass_options(TrainConfig, "train", section="Training (every method)")
@fail_cleanly
def compare_methods(features, **kw):
    """Train several methods on the same features and print one table (the ablation).

    Columns: video-level top-1 accuracy and mAP, and detection mAP at tIoU
    0.1-0.7 with their average, on the test subset. The first row, "random
    scores", is the floor: the same post-processing on random row scores. On small datasets one
    training seed can move mAP by several points; --repeats 3 shows how much.
    A method setting applies to the listed methods that have it. Every method
    detects with its own default localisation.
    """
    o = CompareOptions(**collect(kw, "cmp"))
    inputs = Inputs(features, **collect(kw, "inputs"))
    if not inputs.annotations:
        raise DataError("compare-methods evaluates detections and needs --annotations with segments")
    ann = load_annotations(inputs.annotations)
    store = FeatureStore(features)
    names = [m.strip() for m in o.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in REGISTRY]
    if unknown or not names:
        raise click.BadParameter(f"{', '.join(unknown) or 'none given'}; choose from {', '.join(REGISTRY)}",
                                 param_hint="--models")
    given = given_settings(kw)
    overrides = parse_per_method(o.per_method, names)
    unused = [k for k in given if not any(settings_for(m, {k: 0}, others_ok=True) for m in names)]
    if unused:
        have = [m for m, _ in method_settings()[unused[0]]]
        raise DataError(f"--{unused[0].replace('_', '-')} is a setting of {', '.join(have)}, none of which is in "
                        "--models")
    outcome = compare(Comparison(inputs, ann, store, names,
                                 settings={m: {**settings_for(m, given, others_ok=True), **overrides[m]} for m in names},
                                 train=collect(kw, "train"), out=Path(o.out), test_subset=o.test_subset,
                                 repeats=o.repeats, overwrite=o.overwrite, published=o.published,
                                 diagnose_dir=o.diagnose_dir, quiet=o.quiet, jobs=o.jobs))
    click.echo(outcome.text)
    if outcome.diagnosis is not None:
        from tsrnet.detect.diagnose_cli import print_diagnosis

        print_diagnosis(outcome.diagnosis, outcome.page)
