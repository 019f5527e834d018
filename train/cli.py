"""``train-tsr`` and ``compare-methods``."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from tsrnet.data.common_cli import SectionedCommand, collect, dataclass_options, fail_cleanly, field_option
from tsrnet.data.core.errors import DataError
from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.core.settings import field_default, field_help, field_kind, parse_value
from tsrnet.data.format.store import FeatureStore

from .compare import Comparison, compare
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
                records.append((flag, f"{field_help(f)} [default: {field_default(f)}]"))
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
    fn = click.option("--trimmed-annotations", type=click.Path(exists=True),
                      help="Labels of the trimmed clips (default: their 'labels' attribute).")(fn)
    fn = click.option("--trimmed", type=click.Path(exists=True, dir_okay=False),
                      help="Feature store of trimmed clips (e.g. UCF101) for knowledge transfer [default: the "
                           "trimmed clips in FEATURES].")(fn)
    fn = click.option("--subset", help="Train on this subset of the annotations or store (e.g. validation) "
                                       "[default: 'train' or 'training'; 'validation' when there is 'test'].")(fn)
    fn = click.option("--annotations", type=click.Path(exists=True),
                      help="Ground truth (ActivityNet JSON, THUMOS14 folder, or CSV); only video-level labels are "
                           "used. Default: the store's 'labels' attributes.")(fn)
    fn = click.argument("features", type=click.Path(exists=True, dir_okay=False))(fn)
    return fn


def _describe_methods() -> str:
    return "; ".join(f"{n} ({c.description})" for n, c in REGISTRY.items())


@click.command(cls=MethodCommand, context_settings={"help_option_names": ["-h", "--help"],
                                                    "max_content_width": 110})
@common_inputs
@click.option("--model", "method", type=click.Choice(list(REGISTRY)), default=DEFAULT_METHOD, show_default=True,
              help=f"Method: {_describe_methods()}.")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory [default: runs/<model>-<time>].")
@click.option("--overwrite", is_flag=True, help="Start afresh even if --out holds a checkpoint (default: resume).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@method_options
@dataclass_options(TrainConfig, "train", section="Training (every method)")
@fail_cleanly
def train_tsr(features, annotations, subset, trimmed, trimmed_annotations, method, out, overwrite, quiet, **kw):
    """Train TSRNet (or another method) on cached two-stream features.

    \b
    train-tsr thumos.h5 --annotations gt.json --subset validation \\
        --trimmed ucf101.h5 --out runs/tsrnet
    detect --threshold 0.2

    Re-running the same command with the same --out resumes from the last
    checkpoint. Each method's own settings are listed under its name below;
    a setting of another method is refused.
    """
    cfg = build_config(method, settings_for(method, given_settings(kw)), kw)
    run_dir = train_run(cfg, Inputs(features, annotations, subset, trimmed, trimmed_annotations), out, overwrite,
                        progress=not quiet, log=_log)
    click.echo(str(run_dir))


@click.command(cls=MethodCommand, context_settings={"help_option_names": ["-h", "--help"],
                                                    "max_content_width": 110})
@common_inputs
@click.option("--test-subset", help="Evaluate on this subset [default: the other subset of the annotations].")
@click.option("--models", default="two-stream,srnet,tsrnet", show_default=True,
              help="Comma-separated methods to train and compare.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/compare", show_default=True,
              help="Folder for one run per method, the table (table.csv, table.json, table.md), every run's row "
                   "(runs.csv) and a chart of mAP against tIoU (table.png).")
@click.option("--repeats", default=1, show_default=True, type=click.IntRange(1),
              help="Train each method this many times, with seeds --seed, --seed+1, ...; the table gives the mean "
                   "and a second table the standard deviation over seeds (runs in OUT/<model>-seed<k>).")
@click.option("--overwrite", is_flag=True, help="Retrain runs that exist (default: resume or reuse them).")
@click.option("--published", type=click.Choice(["thumos14", "activitynet13"]),
              help="Also print each method's mAP next to the numbers its paper published for this dataset, with "
                   "the difference (published.csv, published.md).")
@click.option("--localise", type=click.Choice(["recorded", "current"]), default="recorded", show_default=True,
              help="Localisation settings every run is evaluated with: those recorded in it when it was trained, "
                   "or its method's current defaults (to re-score runs an earlier version trained, whose recorded "
                   "defaults have changed since).")
@click.option("--set", "per_method", multiple=True, metavar="METHODS:NAME=VALUE",
              help="A setting for some of the listed methods only, e.g. --set srnet,tsrnet:beta=0.1 (where "
                   "--beta would also set STPN's sparsity and KT-MGFN's L_KT weight). Repeat for several; it "
                   "overrides the plain option for those methods.")
@click.option("--diagnose", "diagnose_dir", type=click.Path(file_okay=False),
              help="Also diagnose every run's test detections (DETAD's error types and sensitivity, as the diagnose "
                   "command) and write one report with the methods side by side here.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1),
              help="Runs trained at once, each in its own process with an equal share of the CPU threads. On a CPU "
                   "2 per 2 cores trained the demo's runs about 1.4x faster (a small model does not keep two cores "
                   "busy); a run's weights then differ from a --jobs 1 run's in rounding, and its train_s is "
                   "its time beside the others. Keep 1 on a GPU.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@method_options
@dataclass_options(TrainConfig, "train", section="Training (every method)")
@fail_cleanly
def compare_methods(features, annotations, subset, trimmed, trimmed_annotations, test_subset, models, out,
                    repeats, overwrite, published, localise, per_method, diagnose_dir, jobs, quiet, **kw):
    """Train several methods on the same features and print one table (the ablation).

    Columns: video-level top-1 accuracy and mAP, and detection mAP at tIoU
    0.1-0.7 with their average, on the test subset. The first row, "random
    scores", is the floor: the same post-processing on random row scores. On small datasets one
    training seed can move mAP by several points; --repeats 3 shows how much.
    A method setting applies to the listed methods that have it. Every method
    detects with its own default localisation.
    """
    if not annotations:
        raise DataError("compare-methods evaluates detections and needs --annotations with segments")
    ann = load_annotations(annotations)
    store = FeatureStore(features)
    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in REGISTRY]
    if unknown or not names:
        raise click.BadParameter(f"{', '.join(unknown) or 'none given'}; choose from {', '.join(REGISTRY)}",
                                 param_hint="--models")
    given = given_settings(kw)
    overrides = parse_per_method(per_method, names)
    unused = [k for k in given if not any(settings_for(m, {k: 0}, others_ok=True) for m in names)]
    if unused:
        have = [m for m, _ in method_settings()[unused[0]]]
        raise DataError(f"--{unused[0].replace('_', '-')} is a setting of {', '.join(have)}, none of which is in "
                        "--models")
    outcome = compare(Comparison(Inputs(features, annotations, subset, trimmed, trimmed_annotations), ann, store, names,
                       settings={m: {**settings_for(m, given, others_ok=True), **overrides[m]} for m in names},
                       train=collect(kw, "train"), out=Path(out), test_subset=test_subset, repeats=repeats,
                       overwrite=overwrite, localise=localise, published=published, diagnose_dir=diagnose_dir,
                       quiet=quiet, jobs=jobs))
    click.echo(outcome.text)
    if outcome.diagnosis is not None:
        from tsrnet.detect.diagnose_cli import print_diagnosis

        print_diagnosis(outcome.diagnosis, outcome.page)
