"""``extract-features --cluster``: the shards of a run on a dask.distributed cluster, merged by the client.

The client splits the videos into N shards with the same rule as ``--shard
K/N`` and SLURM arrays (a hash of the video id), and submits one task per
shard. A task is an ordinary single-process run of that shard into
``OUT-shard-K-of-N.h5`` on the shared filesystem, so it has that run's
guarantees: a finished video is written at once and never redone, and a
task started again resumes its shard. When a worker dies, the scheduler
gives its task to another worker (dask's ``allowed-failures``), which
resumes the shard. When every shard is done the client merges OUT (if it
already holds videos) and the shard stores into OUT, atomically, and removes
the shard stores.

A run that stops early (the client killed, a shard failed beyond retries)
leaves the shard stores; the same command resumes them, keeping their shard
count. Videos already in OUT are excluded from the shards, so a grown SOURCE
only extracts the new videos.
"""
from __future__ import annotations

import contextlib
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from tsrnet.data.core.devices import available_cpus
from tsrnet.data.core.errors import DataError, OptionError
from tsrnet.data.core.settings import opt
from tsrnet.data.core.progress import report

from .job import ExtractSettings, check_settings, in_shard, prepare, refuse_other_domain, shard_path, videos_in
from .run import EXIT_SOME_FAILED, changed_sources, merge_stores, run_extraction

EXIT_SHARD_FAILED = 3


@dataclass(frozen=True)
class ClusterSettings:
    """How extract-features runs its shards on a dask.distributed cluster."""

    cluster: str | None = opt(None, "Run the shards on a dask.distributed cluster and merge them into OUT: local:N "
                                    "(N worker processes here) or HOST:PORT of a running scheduler (OUT and SOURCE "
                                    "on a shared filesystem). Needs pip install -e .[cluster].",
                              metavar="local:N|HOST:PORT")
    shards: int = opt(0, "With --cluster: number of shards, at least 2 (0: one per worker thread; a resumed run "
                         "keeps its count).", range=(0, None))
POLL_SECONDS = 2.0  # how often the client looks at the shard stores for progress


def parse_cluster(spec: str) -> tuple[str, object]:
    """``local:N`` -> ("local", N); ``HOST:PORT``, ``tcp://HOST:PORT`` or ``dask://HOST:PORT`` ->
    ("address", "tcp://HOST:PORT")."""
    m = re.fullmatch(r"local:(\d+)", spec.strip())
    if m:
        n = int(m.group(1))
        if n < 1:
            raise OptionError("--cluster", f"{spec!r}: need at least one worker")
        return "local", n
    m = re.fullmatch(r"(?:(?:dask|tcp)://)?([^/:]+|\[[0-9a-fA-F:]+\]):(\d+)", spec.strip())
    if not m:
        raise OptionError("--cluster", f"{spec!r} is neither local:N nor HOST:PORT")
    return "address", f"tcp://{m.group(1)}:{m.group(2)}"


def _connect(kind: str, where):
    """A dask Client (and the LocalCluster it owns, or None)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise DataError("--cluster needs dask.distributed: pip install -e .[cluster]") from None
    if kind == "local":
        # Worker processes, one task each: a shard runs its CNNs with the threads given to it, and a
        # worker that dies takes only its own shard down (the nanny restarts it).
        cluster = LocalCluster(n_workers=where, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        return Client(cluster), cluster
    try:
        client = Client(where, timeout=30)
    except OSError as e:
        raise DataError(f"cannot reach the dask scheduler at {where} ({e})") from None
    return client, None


def extract_shard(settings: ExtractSettings, k: int, n: int) -> dict:
    """One task: extract shard K of N as ``extract-features --shard K/N`` would; its exit status."""
    # The nanny sets OMP_NUM_THREADS=1 in workers; a shard gets its share of the machine instead.
    threads = settings.threads or max(1, available_cpus() // max(1, _worker_threads()))
    # no_consolidate off: the merge removes shard stores, so they must not point into parts.
    settings = replace(settings, shard=(k, n), threads=threads, no_consolidate=False)
    tee = _ErrorLines(sys.stderr)
    try:
        with contextlib.redirect_stderr(tee):
            rc = run_extraction(settings)
    except DataError as e:  # the shard could not start: exit status 2, as the command's
        return {"shard": k, "rc": 2, "errors": [*tee.lines, f"error: {e}"]}
    return {"shard": k, "rc": rc, "errors": tee.lines}


class _ErrorLines:
    """The worker's stderr, passed through, keeping the ``error: ...`` lines for the client to show."""

    def __init__(self, stream):
        self.stream, self.lines = stream, []

    def write(self, s: str) -> int:
        self.lines += [line for line in s.splitlines() if line.startswith("error: ")]
        return self.stream.write(s)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


def _worker_threads() -> int:
    try:
        from distributed import get_worker

        return get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return 1


def _absolute(settings: ExtractSettings) -> ExtractSettings:
    """Paths as every worker sees them on the shared filesystem (a worker's cwd is its own)."""
    paths = {}
    for key in ("source", "out", "annotations", "rgb_weights", "flow_weights", "weights"):
        v = getattr(settings, key)
        if v is not None and Path(v).exists():
            paths[key] = Path(v).resolve()
    return replace(settings, **paths)


def existing_shard_count(out: Path) -> int | None:
    """The N of shard stores left by an earlier run of OUT (None when there are none)."""
    pat = re.compile(re.escape(out.stem) + r"-shard-\d{4}-of-(\d{4})" + re.escape(out.suffix) + "$")
    counts = {int(m.group(1)) for p in out.parent.glob(f"{out.stem}-shard-*{out.suffix}")
              if (m := pat.match(p.name)) and int(m.group(1)) > 1}  # N = 1 writes OUT itself
    if len(counts) > 1:
        raise DataError(f"holds shard stores of several shard counts ({sorted(counts)}); merge them with "
                        "merge-features or remove them", out.parent)
    return counts.pop() if counts else None


def _settle(out: Path) -> None:
    """An OUT left as an index of parts by a killed single-process run: index every part and consolidate,
    so that OUT alone holds its finished videos before shards exclude them."""
    import h5py

    from . import writer

    if not writer.parts_dir(out).is_dir() or not out.exists():
        return
    with h5py.File(out, "r") as f:
        attrs = dict(f.attrs)
    writer.write_index(out, attrs)
    writer.consolidate(out)


def _drop_merged_shards(out: Path, done: set[str]) -> None:
    """Shard stores whose videos are all in OUT were merged by a run stopped before removing them."""
    from . import writer

    n = existing_shard_count(out)
    for k in range(n or 0):
        s = shard_path(out, k, n)
        if s.exists() and not writer.parts_dir(s).exists() and videos_in(s) <= done:
            s.unlink()


def extract_on_cluster(settings: ExtractSettings, spec: str, n_shards: int) -> int:
    """The client side of ``--cluster`` (``settings`` without a shard): checks, submit the shards, wait,
    merge; returns the exit status (0, :data:`EXIT_SOME_FAILED` or :data:`EXIT_SHARD_FAILED`)."""
    from .decode import probe

    kind, where = parse_cluster(spec)
    settings = _absolute(settings)
    out: Path = settings.out
    if n_shards == 1:
        raise OptionError("--shards", "--cluster needs at least 2 shards (for one, run without --cluster)")
    if settings.overwrite:
        raise OptionError("--overwrite", "with --cluster: remove OUT and its shard stores instead")
    job = prepare(replace(settings, shard=(0, 1), exclude_from=None))
    check_settings(out, job.extraction)  # before any worker starts: a mismatch is one message, not N
    refuse_other_domain(out, job.ids, "trimmed" if job.trimmed else "untrimmed")
    _settle(out)
    stored = videos_in(out)
    _drop_merged_shards(out, stored)
    changed = changed_sources(job, out, stored)
    done = stored - set(changed)
    todo = [v for v in job.ids if v not in done]
    if not todo:
        report(f"{out}: all {len(job.ids)} videos already extracted")
        return 0
    client, cluster = _connect(kind, where)
    try:
        if kind == "local" and not settings.threads:
            # N processes share this machine's CPUs.
            settings = replace(settings, threads=max(1, available_cpus() // where))
        # At least 2 shards: with one, the shard's store would be OUT itself (shard_path), which the merge
        # reads and the cleanup removes.
        n = existing_shard_count(out) or n_shards or max(2, _cluster_threads(client))
        settings = replace(settings, exclude_from=out if out.exists() else None)
        expected = {v: probe(job.by_id[v]).rows(job.extraction["rows_per_second"]) for v in todo}
        results, lost = _run_shards(client, settings, n, todo, expected, settings.quiet)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    shards = [shard_path(out, k, n) for k in range(n)]
    if lost:
        for k, why in sorted(lost.items()):
            report(f"error: {shards[k]}: shard {k}/{n} failed on the cluster ({why})")
        report(f"{out}: {len(lost)} of {n} shards failed; finished videos are kept in the shard stores, "
                   "run the same command again to resume")
        return EXIT_SHARD_FAILED
    sources = ([out] if out.exists() else []) + [s for s in shards if s.exists()]
    n_videos, failures = merge_stores(sources, out, retried=set(todo))
    for s in shards:
        s.unlink(missing_ok=True)
    again = f", {len(changed)} extracted again" if changed else ""
    report(f"{out}: {n_videos} videos ({n_videos - len(stored)} new{again}) from {n} shards on {spec}, "
               f"{len(failures)} failed")
    return EXIT_SOME_FAILED if failures else 0


def _cluster_threads(client) -> int:
    try:
        client.wait_for_workers(1, timeout=120)
    except TimeoutError:
        raise DataError(f"no worker joined the scheduler at {client.scheduler.address} in 120 s") from None
    return max(1, sum(w["nthreads"] for w in client.scheduler_info()["workers"].values()))


def _run_shards(client, settings: ExtractSettings, n, todo, expected, quiet) -> tuple[dict, dict]:
    """Submit the N shard tasks and wait for all; (exit status by shard, error by shard that failed)."""
    from distributed import wait

    from tsrnet.data.core.progress import progress_bar

    from .writer import finished

    futures = {client.submit(extract_shard, settings, k, n, key=f"extract-shard-{k:04d}-of-{n:04d}", pure=False): k
               for k in range(n)}
    shard_of = {v: next(k for k in range(n) if in_shard(v, k, n)) for v in todo}
    bar = progress_bar(total=sum(expected.values()), desc=f"extract {settings.out.name} on {n} shards",
                       unit="row", disable=quiet)
    results, lost, pending = {}, {}, set(futures)
    while pending:
        try:
            wait(list(pending), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
        except TimeoutError:  # distributed's wait raises when none finished in time: time to poll
            pass
        ready = {f for f in pending if f.done()}
        pending -= ready
        for f in ready:
            k = futures[f]
            try:
                r = f.result()
                results[k] = r["rc"]
                if r["rc"] not in (0, 1):  # the shard could not start: its own one-line error says why
                    lost[k] = "; ".join(e.removeprefix("error: ") for e in r["errors"]) or f"exit status {r['rc']}"
            except Exception as e:  # noqa: BLE001 - KilledWorker beyond retries, or the task's own error
                lost[k] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        # Rows of finished videos: a running shard's parts, or all of a shard that is over.
        over = set(results) | set(lost)
        parts = {k: finished(shard_path(settings.out, k, n)) for k in range(n) if k not in over}
        rows = sum(r for v, r in expected.items() if shard_of[v] in over or v in parts.get(shard_of[v], ()))
        bar.update(rows - bar.n)
    bar.close()
    return results, lost
