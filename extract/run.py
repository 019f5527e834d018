"""The writing side of extract-features: the loop over videos and the merge of stores.

One entry point, :func:`run_extraction`, serves the command and each cluster
shard alike, so a shard is exactly an ordinary run of ``--shard K/N``. A
video that fails is recorded and the loop goes on; OUT's index is rewritten
after every video, so a killed run leaves a readable store.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from tsrnet.data.core.devices import use_cpu_threads
from tsrnet.data.core.errors import DataError
from tsrnet.data.core.progress import report
from tsrnet.data.format.store import SOURCE_ATTR

from .job import ExtractSettings, Job, check_settings, prepare, refuse_other_domain

EXIT_SOME_FAILED = 1


def run_extraction(settings: ExtractSettings) -> int:
    """Check, then extract the videos of ``settings`` not yet in OUT; returns the exit status (0 or
    :data:`EXIT_SOME_FAILED`). A run that cannot start raises :class:`DataError`."""
    job = prepare(settings)
    if "random" in job.specs.values():
        report("warning: --weights random: the features carry no learned information (tests and demos only)")
    return _run(job, settings)


def _run(job: Job, s: ExtractSettings) -> int:
    """Extract the job's videos not yet in OUT; returns the exit status."""
    from . import writer
    from .resnet import FEATURE_DIM

    out = job.out
    if s.overwrite:
        import shutil

        shutil.rmtree(writer.parts_dir(out), ignore_errors=True)
        if out.exists():
            out.unlink()
    recorded = check_settings(out, job.extraction)
    refuse_other_domain(out, job.ids, "trimmed" if job.trimmed else "untrimmed")
    done = writer.stored(out)
    done -= set(changed_sources(job, out, done))
    todo = [v for v in job.ids if v not in done]
    failures = [f for f in recorded if f["video"] not in set(todo) | done]  # retried now or since fixed
    if not todo and failures == recorded and out.exists() and not writer.parts_dir(out).exists():
        # Nothing to do and nothing to record: OUT is left as it is (not even rewritten).
        report(f"{out}: all {len(job.ids)} videos already extracted")
        return 0
    writer.open_for_append(out)
    warnings = [w for w in writer.read_warnings(out) if w["video"] in done]

    def save_index():  # OUT.h5 as it stands: every finished video, failure and warning so far
        writer.write_index(out, writer.root_attrs(FEATURE_DIM, job.extraction, job.info, failures, warnings))

    if not todo:
        report(f"{out}: all {len(job.ids)} videos already extracted")
        _finish(out, save_index, s.no_consolidate)
        return 0

    extractor = _extractor(job, s)
    save_index()
    stats = _extract_videos(job, extractor, todo, s, failures, warnings, save_index)
    _finish(out, save_index, s.no_consolidate)
    report(f"{out}: {stats['ok']} extracted, {len(job.ids) - len(todo)} skipped (done before), "
               f"{len(failures)} failed, {len(warnings)} warned; {stats['rows']} rows in {stats['wall']:.1f} s "
               f"(decode {stats['decode']:.1f} s, flow {stats['flow']:.1f} s, cnn {stats['cnn']:.1f} s)")
    return EXIT_SOME_FAILED if failures else 0


def changed_sources(job: Job, out: Path, done: set[str]) -> list[str]:
    """The job's videos stored in OUT whose file has changed since (same name, other content): not done.
    Says which, when there are any."""
    from .writer import changed_files

    changed = changed_files(out, {v: job.by_id[v] for v in job.ids if v in done})
    if changed:
        report(f"{out}: {len(changed)} video(s) changed on disk since they were extracted, extracting them again: "
               f"{', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''}")
    return changed


def _finish(out: Path, save_index, no_consolidate: bool) -> None:
    from . import writer

    save_index()
    if not no_consolidate:
        writer.consolidate(out)


def _extractor(job: Job, s: ExtractSettings):
    from .features import TwoStreamCNN
    from .pipeline import Extractor
    from .resnet import WeightsError, build, load_state

    try:
        rgb_net = build(3, load_state(job.specs["rgb"]), job.specs["rgb"])
        flow_net = build(10, load_state(job.specs["flow"]), job.specs["flow"])
    except WeightsError as e:
        raise DataError(str(e)) from None
    n_threads = use_cpu_threads(s.threads, job.dev)
    cnn = TwoStreamCNN(rgb_net, flow_net, job.dev, job.prec, s.batch_size)
    return Extractor(cnn, job.extraction["rows_per_second"], job.tf, s.decoder, job.backend, job.dev,
                     s.workers or n_threads)


def _extract_videos(job: Job, extractor, todo, s: ExtractSettings, failures, warnings, save_index) -> dict:
    """The loop over videos: each is written, failed or warned about as it finishes; OUT's index follows."""
    from tsrnet.data.core.progress import LogProgress, progress_bar

    from .decode import probe, truncation

    rate = job.extraction["rows_per_second"]
    declared = {v: probe(job.by_id[v]) for v in todo}  # headers only: the total is known before decoding
    expected = {v: declared[v].rows(rate) for v in todo}
    bar = progress_bar(total=sum(expected.values()), desc=f"extract {job.out.name}", unit="row", disable=s.quiet)
    per_video_lines = not s.quiet and not isinstance(bar, LogProgress)  # a log gets the periodic line alone
    stats = {"ok": 0, "rows": 0, "decode": 0.0, "flow": 0.0, "cnn": 0.0}
    t_start = time.perf_counter()
    for i, vid in enumerate(todo):
        path = job.by_id[vid]
        counted = [0]

        def on_rows(n, counted=counted):
            counted[0] += n
            bar.update(n)

        t_video = time.perf_counter()
        try:
            source = _fingerprint(path)  # before decoding: a file edited meanwhile is redone next time
            feats = _extract_one(extractor, path, s.decoder, on_rows)
            _check_finite(feats)
            short = truncation(declared[vid], feats.n_frames, feats.duration)
            if short and s.strict:
                raise _VideoFailed(f"{short} (--strict)")
        except _VideoFailed as e:
            bar.total -= expected[vid] - counted[0]  # its rows will not come
            failures.append({"video": vid, "path": str(path), "reason": str(e)})
            bar.write(f"{path}: video {vid}: {e}")
            save_index()
            continue
        bar.total += len(feats.times) - expected[vid]  # the header's estimate, now exact
        bar.update(len(feats.times) - counted[0])  # nonzero only when decord failed midway and PyAV redid it
        if short:
            warnings.append(_warning(vid, path, declared[vid], feats, short))
            bar.write(f"warning: {path}: video {vid}: {short}")
        _write_video(job, vid, path, feats, source)
        save_index()
        stats["ok"] += 1
        stats["rows"] += len(feats.times)
        for p_, s_ in feats.seconds.items():
            stats[p_] += s_
        bar.set_postfix(videos=f"{i + 1}/{len(todo)}", last=vid)
        if per_video_lines:
            bar.write(f"{vid}: {len(feats.times)} rows in {time.perf_counter() - t_video:.1f} s")
    bar.close()
    stats["wall"] = time.perf_counter() - t_start
    return stats


def _check_finite(feats) -> None:
    for s_, x_ in (("rgb", feats.rgb), ("flow", feats.flow)):
        if not np.isfinite(x_.astype(np.float16)).all():
            raise _VideoFailed(f"{s_} features are not finite in float16 (weights producing "
                               "activations beyond 65504?)")


def _warning(vid, path, declared, feats, message) -> dict:
    """A store's record of a suspect video: both figures, so that a script can judge without the files."""
    return {"video": vid, "path": str(path), "warning": message, "declared_duration": declared.duration,
            "declared_frames": declared.n_frames, "decoded_duration": round(float(feats.duration), 6),
            "decoded_frames": int(feats.n_frames)}


def _fingerprint(path: Path) -> dict:
    from .sources import source_fingerprint

    try:
        return source_fingerprint(path)
    except OSError as e:
        raise _VideoFailed(f"cannot read the file ({e.strerror or e})") from None


def _write_video(job: Job, vid, path, feats, source: dict) -> None:
    from . import writer

    a = job.ann[vid] if job.ann is not None and vid in job.ann else None
    subset, labels = (a.subset, a.labels) if a is not None else (None, None)
    if a is None and job.trimmed and job.root is not None and path.parent != job.root:
        labels = [path.parent.name]
    writer.write_part(job.out, vid, times=feats.times, fps=feats.fps, duration=feats.duration,
                      n_frames=feats.n_frames, domain="trimmed" if job.trimmed else "untrimmed", subset=subset,
                      labels=labels, rgb=feats.rgb, flow=feats.flow,
                      extra_attrs={SOURCE_ATTR: json.dumps(source, sort_keys=True)})


class _VideoFailed(Exception):
    pass


def _extract_one(extractor, path: Path, decoder: str, on_rows=None):
    """Features of one video; when decord cannot read it, PyAV is the fallback."""
    from .decode import DecodeError, with_fallback

    try:
        return with_fallback(lambda d: extractor(path, d, on_rows), decoder)
    except DecodeError as e:
        raise _VideoFailed(str(e)) from None


def merge_stores(stores: list[Path], out: Path, retried: set[str] = frozenset()) -> tuple[int, list[dict]]:
    """Write ``out`` (atomically; it may be one of ``stores``) with every video of ``stores``, whose
    settings must match; failures and warnings are merged, less those of videos now stored and, for
    failures, of videos in ``retried`` (tried again in this run: its stores have the newer verdict, and
    failures are only taken from stores other than ``out``). A video of ``retried`` that ``out`` holds
    and another store holds too (extracted again, its file edited) is taken from the other store.
    Returns the videos and the failures."""
    import h5py

    from .writer import copy_videos, read_settings, read_warnings, settings_diff

    first, failures, warnings, seen = None, [], [], {}
    for s in stores:
        settings, fails = read_settings(s)
        if first is None:
            first = (s, settings)
        elif settings != first[1]:
            raise DataError(f"was extracted with other settings than {first[0]} "
                            f"({', '.join(settings_diff(settings, first[1]))})", s)
        failures += [f for f in fails if s != out or f["video"] not in retried]
        warnings += read_warnings(s)
        with h5py.File(s, "r") as f:
            for vid in f["videos"]:
                if vid in seen and not (seen[vid] == out and s != out and vid in retried):
                    raise DataError(f"video also in {seen[vid]}", s, vid)
                seen[vid] = s
    with h5py.File(stores[0], "r") as f0:
        attrs = dict(f0.attrs)
    failures = [f for f in failures if f["video"] not in seen]  # failed in one shard, done in another
    attrs["failures"] = json.dumps(failures)
    attrs["warnings"] = json.dumps([w for w in warnings if w["video"] in seen])
    copy_videos(list(stores), out, attrs, only=seen)
    return len(seen), failures
