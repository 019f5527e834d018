"""``train-tsr`` and ``compare-methods``."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import click
import numpy as np

import dataclasses

from tsrnet.data.cliutil import SectionedCommand, collect, dataclass_options, fail_cleanly, field_option
from tsrnet.data.errors import DataError
from tsrnet.data.ground_truth import load_annotations
from tsrnet.data.io import atomic_path, undone_on_failure, write_json
from tsrnet.data.settings import field_default, field_help, field_kind, parse_value
from tsrnet.data.subsets import exclude_trained

from .config import DEFAULT_METHOD, Config, TrainConfig
from .methods import REGISTRY, method_class
from .trainer import Trainer, load_run, prepare_data

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


def default_run_dir(model: str) -> Path:
    return Path("runs") / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def _train(cfg, features, annotations, subset, trimmed, trimmed_annotations, out, overwrite, quiet) -> Path:
    data = prepare_data(cfg, features, annotations, subset, trimmed, trimmed_annotations)
    run_dir = Path(out) if out else default_run_dir(cfg.method)
    info = data.run_info
    which = "all videos" if info["train_subset"] is None else f"subset {info['train_subset']!r}"
    click.echo(f"{cfg.method}: {info['n_train_videos']} untrimmed training videos ({which}: "
               f"{info['train_subset_reason']}), {len(data.classes)} classes"
               + (f", {info['n_trimmed_clips']} trimmed clips of {len(info['overlapping_classes'])} shared classes"
                  f" ({info['n_trimmed_ignored']} of other classes ignored)" if "n_trimmed_clips" in info else ""),
               err=True)
    trainer = Trainer(cfg, data, run_dir, progress=not quiet, log=lambda m: click.echo(m, err=True))
    # Only now, with inputs, device and model checked, is the old run worth giving up.
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    trainer.fit()
    return run_dir


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
    run_dir = _train(cfg, features, annotations, subset, trimmed, trimmed_annotations, out, overwrite, quiet)
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
@click.option("--quiet", is_flag=True, help="No progress bars.")
@method_options
@dataclass_options(TrainConfig, "train", section="Training (every method)")
@fail_cleanly
def compare_methods(features, annotations, subset, trimmed, trimmed_annotations, test_subset, models, out,
                    repeats, overwrite, published, localise, per_method, diagnose_dir, quiet, **kw):
    """Train several methods on the same features and print one table (the ablation).

    Columns: video-level top-1 accuracy and mAP, and detection mAP at tIoU
    0.1-0.7 with their average, on the test subset. The first row, "random
    scores", is the floor: the same post-processing on random row scores. On small datasets one
    training seed can move mAP by several points; --repeats 3 shows how much.
    A method setting applies to the listed methods that have it. Every method
    detects with its own default localisation.
    """
    # Imported here so that train-tsr does not load the detection stack.
    from tsrnet.data.store import FeatureStore

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
    transfer = [m for m in names if method_class(m).uses_trimmed]
    if transfer and not trimmed and not store.video_ids(domain="trimmed"):
        raise DataError(f"{', '.join(transfer)} transfer(s) knowledge and need --trimmed TRIMMED.h5 or trimmed "
                        f"clips in the store (extract-features CLIPS/ {features} --trimmed), or leave them out "
                        "of --models", features)
    base = build_config(names[0], {**settings_for(names[0], given, others_ok=True), **overrides[names[0]]}, dict(kw))
    # Every input is checked before the first run trains: an hour of training must not end in a refusal.
    probe = prepare_data(base, features, annotations, subset,
                         trimmed if method_class(names[0]).uses_trimmed else None, trimmed_annotations)
    _, note = scored_test_set(ann, test_subset or probe.run_info["eval_subset"], probe.run_info)
    if note:
        click.echo(note, err=True)
    seeds = [base.train.seed + k for k in range(repeats)]
    # Trained runs are reused by the next attempt, so they stay; a failure before any run has a
    # checkpoint leaves OUT as it was (a failing run's own folder is removed by the trainer).
    with undone_on_failure(out, keep=lambda: any(Path(out).glob("*/checkpoint.pt"))):
        tested = {} if diagnose_dir else None
        rows, ts = _train_and_score(names, seeds, given, kw, features, annotations, subset, trimmed, trimmed_annotations,
                                    out, repeats, overwrite, quiet, store, ann, test_subset, localise, overrides,
                                    tested)
        _report(rows, ts, Path(out), seeds)
        if published:
            _report_published(rows, published, Path(out))
        if diagnose_dir:
            from tsrnet.detect.diagnose_cli import diagnose_runs

            diagnose_runs(tested, diagnose_dir, f"compare-methods: test subset '{ts}'")


def _train_and_score(names, seeds, given, kw, features, annotations, subset, trimmed, trimmed_annotations, out, repeats,
                     overwrite, quiet, store, ann, test_subset, localise="recorded", overrides=None, tested=None):
    """Train every (method, seed) run under ``out`` (resuming or reusing what is there) and score it.

    Returns one table row per run and the subset the last run was tested on; ``tested`` (a dict), when
    given, receives each run's test set and detections by run name.
    """
    rows, ts = [], None
    for seed in seeds:
        row, ts = _random_row(store, ann, features, annotations, subset, test_subset, seed, kw)
        rows.append({"model": RANDOM_ROW, "seed": seed, **row})
    for model in names:
        for seed in seeds:
            own = {**settings_for(model, given, others_ok=True), **(overrides or {}).get(model, {})}
            cfg = build_config(model, own, dict(kw)).replace("train", seed=seed)
            run_dir = Path(out) / (model if repeats == 1 else f"{model}-seed{seed}")
            _train(cfg, features, annotations, subset, trimmed if method_class(model).uses_trimmed else None,
                   trimmed_annotations, run_dir, overwrite, quiet)
            row, ts = _evaluate_run(run_dir, cfg, store, ann, test_subset, localise, tested)
            rows.append({"model": model, "seed": seed, **row})
    return rows, ts


RANDOM_ROW = "random scores"


def _table_row(ev, cm) -> dict:
    row = {"top1": cm["top1"], "cls_mAP": cm["mAP"]}
    upto_07 = {f"mAP@{t:.1f}": v for t, v in zip(ev.tiou_thresholds, ev.map) if t <= 0.7 + 1e-9}
    row.update(upto_07)
    row["avg(0.1:0.7)"] = float(np.mean(list(upto_07.values())))
    return row


def _random_row(store, ann, features, annotations, subset, test_subset, seed, kw) -> tuple[dict, str]:
    """The floor of the table: random row and video scores through the default post-processing, on the test set
    the runs are scored on (their training videos excluded)."""
    from tsrnet.detect.config import DetectConfig
    from tsrnet.detect.pipeline import detections, evaluate_scores, random_scores

    cfg = build_config(next(iter(REGISTRY)), {}, dict(kw))
    data = prepare_data(cfg, features, annotations, subset)
    ts = test_subset or data.run_info["eval_subset"]
    test, _ = scored_test_set(ann, ts, data.run_info)
    scores = random_scores(store, test.video_ids(), len(data.classes), seed)
    dcfg = DetectConfig()
    res = detections(scores, data.classes, dcfg)
    return {**_table_row(*evaluate_scores(scores, res, test, data.classes, dcfg)), TIME_COLUMN: 0.0}, ts


def _write_csv(frame, path: Path, **kw) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kw)


TIME_COLUMN = "train_s"  # seconds of training (sum of the run's epochs); every other column is a fraction


def _percent(frame):
    """Metric columns in percent, training seconds as they are, for printing."""
    out = frame.copy()
    metric = [c for c in out.columns if c != TIME_COLUMN]
    out[metric] = out[metric] * 100
    return out.round(1)


def markdown_table(mean, std=None) -> str:
    """The table as Markdown: percent (and ± std over seeds), seconds for training time.

    Hand-formatted: pandas' ``to_markdown`` needs the ``tabulate`` package,
    a dependency for one table.
    """
    m = _percent(mean)
    sd = None if std is None else _percent(std)
    head = ["model", *m.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in m.index:
        cells = []
        for c in m.columns:
            v = f"{m.loc[model, c]:.1f}"
            if sd is not None and not np.isnan(sd.loc[model, c]):
                v += f" ± {sd.loc[model, c]:.1f}"
            cells.append(v)
        lines.append("| " + " | ".join([str(model), *cells]) + " |")
    return "\n".join(lines) + "\n"


def _report(rows: list[dict], ts: str, out: Path, seeds: list[int]) -> None:
    """Write the tables (CSV, JSON, Markdown) and chart into ``out`` (each file atomically) and print the table."""
    import pandas as pd

    from tsrnet.detect.plot import plot_comparison

    runs = pd.DataFrame(rows)
    table = runs.drop(columns="seed").groupby("model", sort=False).mean()
    _write_csv(table, out / "table.csv")
    write_json(out / "table.json", rows)
    _write_csv(runs, out / "runs.csv", index=False)
    chart = plot_comparison(runs[runs["model"] != RANDOM_ROW], out / "table.png", f"test subset '{ts}'")
    std = runs.drop(columns="seed").groupby("model", sort=False).std(ddof=1) if len(seeds) > 1 else None
    with atomic_path(out / "table.md") as tmp:
        Path(tmp).write_text(markdown_table(table, std))
    if len(seeds) > 1:
        click.echo(f"mean over seeds {', '.join(map(str, seeds))}:")
    click.echo(_percent(table).to_string())
    if std is not None:
        _write_csv(std, out / "table_std.csv")
        click.echo("standard deviation over seeds:")
        click.echo(_percent(std).to_string())
    click.echo(f"(percent, training time {TIME_COLUMN} in seconds; test subset {ts!r}; runs and tables in {out}; "
               f"chart: {chart})")


def _report_published(rows: list[dict], dataset: str, out: Path) -> None:
    """The measured mAP (mean over seeds) next to each paper's, written as CSV and Markdown and printed."""
    import pandas as pd

    from tsrnet.detect.published import comparison

    runs = pd.DataFrame(rows)
    cols = [c for c in runs.columns if c.startswith("mAP@")]
    mean = runs.drop(columns="seed").groupby("model", sort=False)[cols].mean() * 100
    measured = {m: {round(float(c[4:]), 2): float(mean.loc[m, c]) for c in cols} for m in mean.index}
    table = pd.DataFrame(comparison(dataset, measured))
    if table.empty:
        click.echo(f"(no method of this comparison has published {dataset} numbers)")
        return
    _write_csv(table, out / "published.csv", index=False)
    wide = table.pivot_table(index=["published as", "features"], columns="tIoU",
                             values=["measured", "published", "difference"], sort=False)
    lines = ["| published as | features | tIoU | " + " | ".join(f"{t:g}" for t in wide["published"].columns) + " |",
             "|---|---|---|" + "---|" * len(wide["published"].columns)]
    for (name, feats), r in wide.iterrows():
        for what in ("measured", "published", "difference"):
            vals = " | ".join("" if pd.isna(v) else f"{v:.1f}" for v in r[what])
            lines.append(f"| {name if what == 'measured' else ''} | {feats if what == 'measured' else ''} | {what} | "
                         f"{vals} |")
    with atomic_path(out / "published.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    click.echo(f"against the published {dataset} numbers (percent; difference = measured - published):")
    click.echo(wide["difference"].round(1).to_string())


def scored_test_set(ann, test_subset: str | None, info: dict):
    """The annotations of ``test_subset`` less the run's training videos, and a message when any were dropped."""
    test = ann.select(test_subset)
    ids, note = exclude_trained(test.video_ids(), info, lambda v: ann[v].subset, ann.path)
    return test.only(ids), note


def _evaluate_run(run_dir: Path, cfg: Config, store, ann, test_subset, localise="recorded",
                  tested=None) -> tuple[dict, str]:
    """One row of the compare-methods table for a trained run, and the subset it was tested on."""
    import pandas as pd

    from tsrnet.detect.pipeline import detections, evaluate_scores, score_store

    net, cfg, info = load_run(run_dir, cfg.train.device)
    if localise == "current":
        cfg = cfg.replace("detect", **dataclasses.asdict(method_class(cfg.method).detect_config()))
    ts = test_subset or info.get("eval_subset")
    test, _ = scored_test_set(ann, ts, info)
    scores = score_store(net, store, test.video_ids(), next(net.parameters()).device)
    res = detections(scores, net.classes, cfg.detect, net.method.evidence)
    ev, cm = evaluate_scores(scores, res, test, net.classes, cfg.detect, net.method.evidence)
    if tested is not None:
        tested[run_dir.name] = (test, res)
    row = _table_row(ev, cm)
    log = run_dir / "loss_log.csv"
    row[TIME_COLUMN] = float(pd.read_csv(log)["seconds"].sum()) if log.exists() else float("nan")
    return row, ts
