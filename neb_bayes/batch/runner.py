"""Run a batch: stream the inputs in chunks, infer them in parallel, write, resume, merge.

The driver (this module) reads the inputs as a stream of raw items
(:func:`~neb_bayes.batch.inputs.iter_items`), cuts it into chunks of ``chunk_size`` items
(chunk ``k`` = items ``[k * size, (k + 1) * size)``, the same on every run), skips the chunks
whose table file already exists, and hands the others to workers: in this process
(``jobs=1``), a local pool (``jobs>1``: ``jobs - 1`` worker processes and this process, which
runs a chunk whenever the workers have enough queued) or a Dask distributed cluster
(``scheduler="tcp://host:port"``).  At most ``2 x jobs`` chunks are in flight, so memory
stays bounded whatever the input size.  Each finished chunk is written atomically (by a local
worker itself, otherwise by the driver) and merged, in input order, as soon as every chunk
before it is (the merged files are renamed into place at the end).  A local pool's workers
read their chunk's JSON Lines lines from the input files; the driver only finds where each
line is.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import itertools
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neb_bayes.batch.inputs import (
    RawItem,
    count_items,
    describe_inputs,
    ignored_files,
    item_count,
    iter_items,
    materialise,
    split_item,
)
from neb_bayes.batch.store import LONG_CSV_HINT, OutputDir
from neb_bayes.batch.table import FORMATS, result_schema
from neb_bayes.batch.task import ChunkResult, ChunkTask, run_chunk, warm_up

__all__ = [
    "BatchFailed",
    "BatchOptions",
    "BatchSummary",
    "BatchUsageError",
    "ResumeRefused",
    "run_batch",
]

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
#: manifest keys that must match for a rerun to resume
IDENTITY_KEYS = ("manifest_format", "neb_bayes_version", "inputs", "chunk_size", "priors",
                 "format", "per_case_reports", "draws")


class BatchUsageError(ValueError):
    """Options that cannot work (exit status 2)."""


class ResumeRefused(BatchUsageError):
    """The output directory holds another batch (different inputs, chunk size, priors...)."""


class BatchFailed(RuntimeError):
    """A chunk failed as a whole (a worker died, a bug): the batch stops, and can be resumed."""


@dataclass
class BatchOptions:
    """What ``neb-bayes batch`` was asked to do.

    Attributes
    ----------
    inputs
        JSON Lines files, wide CSV files, case files and directories of them, in order.
    out
        Output directory.
    priors
        Prior set file, or ``None`` for the shipped one.
    jobs
        Local processes that infer chunks: this one and ``jobs - 1`` workers (1: this
        process only).
    scheduler
        Address of a Dask distributed scheduler (``tcp://host:8786``); overrides ``jobs``.
    fmt
        ``parquet``, ``csv`` or ``jsonl``.
    per_case_reports
        Also write each case's full JSON report to ``reports/<case_id>.json``.
    chunk_size
        Cases per chunk; ``None``: :func:`default_chunk_size`.
    restart
        Discard a previous batch in ``out`` instead of resuming it.
    draws
        Parameter draws used for the intervals (0: none, point probabilities; -1: all).
    progress
        Progress bar (``True``), log lines (``False``) or decide by whether stderr is a
        terminal (``None``).
    log_every
        Without a progress bar, write a progress line every this many chunks.
    """

    inputs: Sequence[str]
    out: str
    priors: str | None = None
    jobs: int = 1
    scheduler: str | None = None
    fmt: str = "parquet"
    per_case_reports: bool = False
    chunk_size: int | None = None
    restart: bool = False
    draws: int = 0
    progress: bool | None = None
    log_every: int = 10


@dataclass
class BatchSummary:
    """How a batch went.

    Attributes
    ----------
    items
        Cases in the input.
    chunks
        Chunks in the input.
    processed, failed
        Cases inferred by this run, and how many of them were bad (error records).
    skipped
        Cases of chunks already done by an earlier run (resumed).
    rows, errors, duplicates
        In the merged output: result rows, error records, cases left out for a repeated id.
    seconds, cases_per_s
        Wall time of this run and its throughput (cases processed by this run per second).
    """

    items: int = 0
    chunks: int = 0
    processed: int = 0
    failed: int = 0
    skipped: int = 0
    rows: int = 0
    errors: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    cases_per_s: float = 0.0
    results: str = ""

    def text(self) -> str:
        """One-paragraph summary for the terminal."""
        return (
            f"batch done: {self.items:,} cases in {self.chunks:,} chunks; this run: "
            f"{self.processed:,} processed ({self.processed - self.failed:,} read, "
            f"{self.failed:,} failed), {self.skipped:,} skipped (already done); "
            f"{self.seconds:.1f} s, {self.cases_per_s:,.0f} cases/s\n"
            f"results: {self.results} ({self.rows:,} rows); errors: {self.errors:,} "
            f"(errors.jsonl)" + (f", of which {self.duplicates:,} for a repeated id (the "
                                 f"case left out of the results; {LONG_CSV_HINT})"
                                 if self.duplicates else "")
        )


# ------------------------------------------------------------------------------ progress
def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """A tqdm bar on a terminal, plain log lines every ``log_every`` chunks elsewhere."""

    def __init__(self, total: int, skipped: int, n_chunks: int, bar: bool, log_every: int,
                 echo: Callable[[str], None]) -> None:
        self.total, self.n_chunks = total, n_chunks
        self.done = skipped
        self.processed = 0
        self.chunks = 0
        self.log_every = max(1, log_every)
        self.echo = echo
        self.t0 = time.perf_counter()
        self.bar: Any = None
        if bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=skipped, unit="case", unit_scale=True,
                            desc="neb-bayes batch", file=sys.stderr, dynamic_ncols=True,
                            smoothing=0.1)

    def advance(self, cases: int) -> None:
        """Record one finished chunk of ``cases`` cases."""
        self.done += cases
        self.processed += cases
        self.chunks += 1
        if self.bar is not None:
            self.bar.update(cases)
        elif self.chunks % self.log_every == 0:
            self.echo(self.line())

    def line(self) -> str:
        """The plain progress line."""
        elapsed = time.perf_counter() - self.t0
        rate = self.processed / elapsed if elapsed > 0 else 0.0
        left = max(self.total - self.done, 0)
        eta = _duration(left / rate) if rate > 0 else "?"
        return (f"neb-bayes batch: {self.done:,}/{self.total:,} cases "
                f"({self.chunks:,} chunks this run), {rate:,.0f} cases/s, ETA {eta}")

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------ executors
def _run_here(task: ChunkTask) -> cf.Future:
    """Run a chunk in this process; its result (or exception) as a finished future."""
    fut: cf.Future = cf.Future()
    try:
        fut.set_result(run_chunk(task))
    except Exception as exc:  # noqa: BLE001 - reported by the driver like a pool's
        fut.set_exception(exc)
    return fut


class _Inline:
    """Run each chunk in this process, at submission."""

    slots = 1
    #: whether the workers write their chunks' files themselves (:attr:`ChunkTask.out`)
    writes_chunks = False

    def submit(self, task: ChunkTask, left: int = 1) -> cf.Future:
        return _run_here(task)

    def wait(self, pending: set) -> tuple[set, set]:
        return set(pending), set()

    def close(self) -> None:
        pass


def _worker_start(driver: int) -> None:
    """Worker start-up: the worker dies with its driver (process ``driver``:
    :func:`_die_with_driver`), and runs one BLAS/OpenMP thread (the parallelism is the
    processes; more threads would oversubscribe the cores)."""
    from threadpoolctl import threadpool_limits

    _die_with_driver(driver)
    threadpool_limits(1)
    atexit.register(_exit_now)


#: how often a worker looks whether its driver still runs (where the kernel cannot tell it)
DRIVER_POLL_S = 0.5


def _die_with_driver(driver: int) -> None:
    """End this worker as soon as its driver process ends, however it ends (SIGKILL, a
    crash, SIGTERM): the pool's queues never tell an idle worker, which would otherwise
    live on, and a busy one would write its chunk into an output directory that a new run
    may already own (wiped, or restarted with other input).  On Linux the kernel kills it
    with the driver (``prctl(PR_SET_PDEATHSIG, SIGKILL)``); everywhere a daemon thread
    checks every :data:`DRIVER_POLL_S` s that the parent is still ``driver``."""
    import ctypes
    import signal

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != driver:            # (gone before the signal was asked for)
        os._exit(1)

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(DRIVER_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="neb-bayes-driver-watch", daemon=True).start()


def _exit_now() -> None:
    """A worker's exit, once the pool has told it to stop (every result is sent by then):
    streams flushed, then ``os._exit`` without tearing down the interpreter's modules."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


class _Pool:
    """A local pool: ``jobs - 1`` spawned worker processes (no fork of a threaded driver),
    and this process, which runs a chunk itself whenever the workers have as many as they
    can take queued (one running, one waiting each).  So ``--jobs N`` keeps N processes
    busy, and one worker fewer starts (~0.6 s of CPU each: its imports, the model, the
    compiled kernels).  The workers write their chunks' files into the output directory
    themselves (:attr:`ChunkTask.out`), so their results tables do not pass through pipes
    and this process.

    A chunk sent to a worker cannot be taken back, so towards the end the workers are sent
    no more than there are chunks left: otherwise a worker could still hold two chunks
    while this process had none (10 chunks of ~9 s with draws: ~5 s longer)."""

    writes_chunks = True

    def __init__(self, jobs: int) -> None:
        self.slots = jobs
        self.pool = cf.ProcessPoolExecutor(max_workers=jobs - 1,
                                           mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_worker_start,
                                           initargs=(os.getpid(),))
        self._sent: set[cf.Future] = set()
        # the chunks run here share the cores with the workers: one BLAS/OpenMP thread, as
        # in each worker, while the pool lasts (again once the first chunk here has loaded
        # the engine's libraries: scipy's BLAS).  OpenBLAS keeps the setting per thread, so
        # it is made, and restored by close, in the thread that runs the chunks
        self._owner = threading.get_ident()
        self._limits: list[Any] = []
        self._limit_threads()

    def _limit_threads(self) -> None:
        from threadpoolctl import threadpool_limits

        self._limits.append(threadpool_limits(1))

    def _run_in_driver(self, task: ChunkTask) -> cf.Future:
        fut = _run_here(task)
        if len(self._limits) == 1:
            self._limit_threads()
        return fut

    def start(self, priors: str | None) -> None:
        """Start the workers now (the pool would at its first chunk), each importing the
        engine and loading the prior set ``priors`` (:func:`~neb_bayes.batch.task.warm_up`)."""
        for _ in range(self.slots - 1):
            self.pool.submit(warm_up, priors)

    def submit(self, task: ChunkTask, left: int = 1) -> cf.Future:
        """Run ``task`` in a worker or here (``left``: chunks left to run, this one
        included)."""
        self._sent = {f for f in self._sent if not f.done()}
        if len(self._sent) >= min(2 * (self.slots - 1), left):
            return self._run_in_driver(task)
        fut = self.pool.submit(run_chunk, task)
        self._sent.add(fut)
        return fut

    def wait(self, pending: set) -> tuple[set, set]:
        done, rest = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        return set(done), set(rest)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        while self._limits and threading.get_ident() == self._owner:
            self._limits.pop().restore_original_limits()


def _check_scheduler_address(address: str) -> None:
    """A usage error for a string that is no Dask scheduler address (checked before anything
    is written or connected: a client made with it fails only after a minute)."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise BatchUsageError(f"--scheduler {address!r}: not a Dask scheduler address ({exc}); "
                              "give e.g. tcp://10.0.0.5:8786") from None


#: seconds to wait for a Dask scheduler to answer before ``--scheduler`` is refused
SCHEDULER_CONNECT_TIMEOUT_S = 30.0


class _Dask:
    """Chunks as tasks on an existing Dask distributed cluster (whose workers may not see
    the output directory: their results come back whole)."""

    writes_chunks = False

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - dask is a dependency
            raise BatchUsageError("--scheduler needs dask[distributed] installed") from exc
        try:
            self.client = Client(address, timeout=SCHEDULER_CONNECT_TIMEOUT_S,
                                 set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise BatchUsageError(
                f"--scheduler {address}: cannot reach the Dask scheduler ({exc}); nothing was "
                "run: rerun with a scheduler that answers, or without --scheduler to run "
                "here (the same --out resumes)") from None
        self.slots = max(1, sum(self.client.nthreads().values()))

    def submit(self, task: ChunkTask, left: int = 1) -> Any:
        return self.client.submit(run_chunk, task, pure=False,
                                  key=f"neb-bayes-chunk-{task.index}-{id(task):x}")

    def wait(self, pending: set) -> tuple[set, set]:
        from distributed import wait

        with self.client.as_current():
            res = wait(list(pending), return_when="FIRST_COMPLETED")
        return set(res.done), set(res.not_done)

    def close(self) -> None:
        self.client.close()


# ------------------------------------------------------------------------------ the run
def _chunks(items: Iterator[RawItem], size: int, is_done: Callable[[int], bool]
            ) -> Iterator[tuple[int, int, int, list[RawItem] | None]]:
    """``(k, first_item, n_items, items or None when the chunk is already done)``; an item
    that stands for several (:func:`~neb_bayes.batch.inputs.item_count`: lines of a JSON
    Lines file) is cut where a chunk ends."""
    first = 0
    carry: RawItem | None = None
    for k in itertools.count():
        chunk: list[RawItem] = []
        n = 0
        while n < size:
            item = carry if carry is not None else next(items, None)
            carry = None
            if item is None:
                break
            m = item_count(item)
            if n + m > size:
                item, carry = split_item(item, size - n)
                m = size - n
            chunk.append(item)
            n += m
        if n == 0:
            return
        yield k, first, n, None if is_done(k) else chunk
        first += n


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The identity keys whose values differ between two manifests (an input named by
    another spelling of the same path, e.g. absolute and relative, is the same input:
    its resolved path, size and times are compared, not the path as given; a prior set is
    compared by its tables and draws, not its path)."""
    return [k for k in IDENTITY_KEYS if _comparable(k, old.get(k)) != _comparable(k, new.get(k))]


def _comparable(key: str, value: Any) -> Any:
    if key == "inputs" and isinstance(value, list):
        return [{k: v for k, v in d.items() if k != "path"} if isinstance(d, dict) else d
                for d in value]
    if key == "priors" and isinstance(value, dict):
        # the prior set is its tables and draws (fingerprint, parameter digest), not the
        # spelling of its path
        return {k: v for k, v in value.items() if k != "file"}
    return value


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


#: cases per chunk by default for point probabilities: the engine works on arrays over about
#: twice the cases per call as with 1,000 (a group of one sex), its fixed costs spread over
#: more of them (a worker's CPU per case ~76.5 -> ~71 us; 100,000 cases end to end 5.90-6.48
#: -> 5.66-5.81 s)
POINT_CHUNK_SIZE = 2000
#: with parameter draws or per-case reports, where a case's work is far more than a chunk's
#: fixed costs: smaller chunks keep the workers evenly loaded to the end (10,000 cases with
#: draws: ten chunks, five per worker)
CHUNK_SIZE = 1000


def _mark_stopped(out: OutputDir, manifest: dict[str, Any], exc: BaseException) -> None:
    """Say in the manifest that the batch stopped before its end: ``interrupted`` (Ctrl-C,
    an exit) or ``failed`` (a chunk, a worker), with the time.  A rerun resumes it as
    before; a killed process (SIGKILL) leaves ``running``.  A manifest that cannot be
    written is left as it was: the reason the batch stopped is what the user must see."""
    status = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
    try:
        out.write_manifest({**manifest, "status": status, "updated": _now()})
    except OSError:
        log.debug("the manifest could not be updated", exc_info=True)


def _failed(what: str, exc: BaseException) -> BatchFailed:
    """The error that stops a batch when a chunk fails as a whole: what failed, why in
    words (the exception's type; its message may quote case data), and how to go on."""
    if isinstance(exc, cf.BrokenExecutor):
        why = ("a worker process ended unexpectedly: killed, out of memory, or, from a Python "
               "script, run_batch called outside `if __name__ == \"__main__\":`?")
    else:
        why = type(exc).__name__
    return BatchFailed(f"{what} ({why}); finished chunks are kept: rerun the same command "
                       "to resume")


def _intervals_text(draws: Any, wanted: int) -> str:
    """What the results' ``<condition>_lo``/``_hi`` columns are (the manifest's
    ``intervals``): ``draws`` the prior set's parameter draws (None: none), ``wanted``
    :attr:`BatchOptions.draws`."""
    from neb_bayes import config

    point = "so <condition>_lo = <condition>_hi = <condition>"
    if draws is None:
        return f"point: the prior set has no parameter draws, {point}"
    if wanted == 0:
        return f"point: no parameter draws asked for (--draws 0), {point}"
    n = draws.n_draws if wanted < 0 else min(wanted, draws.n_draws)
    return (f"equal-tailed {config.INTERVAL_PROB:.0%} intervals of each probability over "
            f"{n} of the prior set's {draws.n_draws} parameter draws")


def default_chunk_size(draws: bool, per_case_reports: bool) -> int:
    """Cases per chunk when none is given: :data:`POINT_CHUNK_SIZE` for point probabilities,
    :data:`CHUNK_SIZE` with parameter draws or per-case reports."""
    return CHUNK_SIZE if draws or per_case_reports else POINT_CHUNK_SIZE


def run_batch(opts: BatchOptions, echo: Callable[[str], None] = _stderr) -> BatchSummary:
    """Run (or resume) a batch.

    Parameters
    ----------
    opts
        The batch (:class:`BatchOptions`).
    echo
        Where progress lines and notes go (default: standard error).

    Returns
    -------
    BatchSummary

    Raises
    ------
    BatchUsageError
        Bad options, an unreadable input path, or (:class:`ResumeRefused`) an output
        directory holding a different batch.
    neb_bayes.model.spec.PriorSetError
        An invalid prior set file.
    BatchFailed
        A chunk failed as a whole; finished chunks are kept and a rerun resumes.
    """
    from neb_bayes.allocator import retain_freed_memory
    from neb_bayes.batch.inputs import InputError, input_kind
    from neb_bayes.config import package_version
    from neb_bayes.priorset import load_prior_set

    t0 = time.perf_counter()
    # each chunk's results pass through here (merged; from Dask or in this process also
    # written, ~1 MB each time): kept in the process, that memory is not faulted in again
    # chunk after chunk (100,000 cases: ~160,000 page faults, ~0.8 s of system time when
    # every chunk's results were received here)
    retain_freed_memory()
    if isinstance(opts.inputs, (str, os.PathLike)):     # (one path, not a list of them)
        opts = replace(opts, inputs=[opts.inputs])
    if opts.fmt not in FORMATS:
        raise BatchUsageError(f"unknown format {opts.fmt!r}; use {', '.join(FORMATS)}")
    for name in ("jobs", "chunk_size", "draws", "log_every"):
        value = getattr(opts, name)
        if not (value is None and name == "chunk_size") and (
                not isinstance(value, int) or isinstance(value, bool)):
            raise BatchUsageError(f"{name} must be a whole number, got {type(value).__name__}")
    if (opts.chunk_size is not None and opts.chunk_size < 1) or opts.jobs < 1:
        raise BatchUsageError("--chunk-size and --jobs must be at least 1")
    if opts.draws < -1:
        raise BatchUsageError("--draws must be -1 (all), 0 (none) or a number of draws")
    if not opts.inputs:
        raise BatchUsageError("give at least one input")
    if opts.scheduler:
        _check_scheduler_address(opts.scheduler)
    try:
        inputs_desc = describe_inputs(opts.inputs)
    except (InputError, OSError) as exc:
        raise BatchUsageError(str(exc)) from None
    for raw in opts.inputs:
        if input_kind(Path(raw)) == "dir" and (ignored := ignored_files(Path(raw))):
            echo(f"neb-bayes batch: {raw}: {len(ignored)} entries not read (not .jsonl, "
                 f".ndjson, .csv, .yaml, .yml or .json, hidden, a name that is not UTF-8, a "
                 f"subdirectory: directories are not read recursively, or a broken link), "
                 f"e.g. {ignored[0]!r}")
    prior_set = load_prior_set(opts.priors)
    if opts.draws != 0 and prior_set.draws is None:
        echo("neb-bayes batch: --draws: the prior set has no parameter draws; the intervals "
             "are point values (<condition>_lo = _hi = <condition>)")
    elif prior_set.draws is not None and opts.draws > prior_set.draws.n_draws:
        echo(f"neb-bayes batch: --draws {opts.draws}: the prior set has "
             f"{prior_set.draws.n_draws}; all are used")
    model = prior_set.model
    spec = model.spec
    schema = result_schema(model.conditions)
    chunk_size = opts.chunk_size or default_chunk_size(
        draws=prior_set.draws is not None and opts.draws != 0,
        per_case_reports=opts.per_case_reports)
    identity: dict[str, Any] = {
        "manifest_format": MANIFEST_FORMAT,
        "neb_bayes_version": package_version(),
        "inputs": inputs_desc,
        "chunk_size": chunk_size,
        "priors": {"file": str(opts.priors) if opts.priors else None, "name": prior_set.name,
                   "version": spec.version, "fingerprint": spec.fingerprint,
                   "parameter_digest": prior_set.parameter_digest},
        "format": opts.fmt,
        "per_case_reports": bool(opts.per_case_reports),
        "draws": opts.draws,
    }
    out = OutputDir(opts.out, opts.fmt)
    if out.root.exists() and not out.root.is_dir():
        raise BatchUsageError(f"--out {out.root}: exists and is not a directory")
    with out.locked():
        foreign = out.foreign_entries()
        old = out.read_manifest()
        if foreign and old is None:
            raise BatchUsageError(
                f"--out {out.root}: not empty and not a batch output directory (has "
                f"{foreign[0]!r}); choose a new or empty directory")
        if old is not None and not opts.restart and (diff := _differences(old, identity)):
            raise ResumeRefused(
                f"--out {out.root} holds a batch with different {', '.join(diff)}; rerun the "
                "same command to resume it, use another --out, or add --restart to discard it")
        if opts.restart or (old is None and (out.chunks.exists() or out.reports.exists())):
            if old is None and not opts.restart:
                echo(f"neb-bayes batch: {out.root}: chunks without a manifest.json cannot be "
                     "checked against this batch: starting over")
            out.wipe()
            old = None
        cleaned = out.clean_temporary()
        if cleaned:
            echo(f"neb-bayes batch: removed {cleaned} temporary file(s) of an interrupted run")
        manifest: dict[str, Any] = {
            **identity,
            "status": "running",
            "started": _now() if old is None else old.get("started", _now()),
            "updated": _now(),
            "jobs": opts.jobs,
            "scheduler": opts.scheduler,
            "intervals": _intervals_text(prior_set.draws, opts.draws),
            "results": out.results_path.name,
        }
        # the scheduler answers before the manifest says "running": one that cannot be
        # reached leaves --out as it was, for a rerun to start or resume
        dask = _Dask(opts.scheduler) if opts.scheduler else None
        # workers (possibly elsewhere, under Dask) load the model from an absolute path
        priors_path = str(Path(opts.priors).resolve()) if opts.priors else None
        started: _Pool | None = None
        try:
            out.write_manifest(manifest)
            if opts.jobs > 1 and not opts.scheduler and not out.chunks.exists():
                # a new batch of more than one chunk: its workers start (~0.6 s each) while
                # the inputs are counted (~0.15 s per 100,000 work-ups); as many as its
                # chunks need
                head = -(-count_items(opts.inputs, at_most=opts.jobs * chunk_size)
                         // chunk_size)
                if head > 1:
                    started = _Pool(head)
                    started.start(priors_path)
            total = count_items(opts.inputs)
        except BaseException:
            for opened in (started, dask):
                if opened is not None:
                    opened.close()
            raise
        n_chunks_est = -(-total // chunk_size)
        done_before = sum(1 for k in range(n_chunks_est) if out.is_done(k))
        skipped_est = min(done_before * chunk_size, total)
        if done_before:
            echo(f"neb-bayes batch: resuming: {done_before} of {n_chunks_est} chunks already "
                 "done")
        if dask is not None:
            if opts.jobs > 1:
                echo("neb-bayes batch: --scheduler given: --jobs is ignored (the cluster's "
                     "workers run the chunks)")
            pool: _Inline | _Pool | _Dask = dask
        elif started is not None:
            pool = started
        elif (workers := min(opts.jobs, n_chunks_est - done_before)) > 1:
            # (no more processes than chunks left to do: one chunk runs here, with no worker
            # to start, ~0.6 s of CPU each to import and load the model)
            pool = _Pool(workers)
        else:
            pool = _Inline()
        bar = sys.stderr.isatty() if opts.progress is None else opts.progress
        progress = Progress(total, skipped_est, n_chunks_est, bar, opts.log_every, echo)
        summary = BatchSummary(items=total)
        window = 2 * pool.slots
        pending: set = set()
        which: dict[Any, int] = {}

        def finish(done: set) -> None:
            for fut in sorted(done, key=lambda f: which[f]):
                k = which.pop(fut)
                try:
                    result: ChunkResult = fut.result()
                except Exception as exc:
                    raise _failed(f"chunk {k} failed", exc) from exc
                if result.table is not None:   # (a local worker wrote its chunk itself)
                    out.write_chunk(result)
                merge.add_ready(result)
                summary.processed += result.n_items
                summary.failed += len({r["item"] for r in result.errors})
                progress.advance(result.n_items)

        n_chunks = 0
        # the chunks are merged in order as they are done, while the others run: at the
        # end only what the last ones add is left to write
        merge = out.start_merge(schema, opts.per_case_reports)
        try:
            # local workers read JSON Lines themselves, from where the lines are in the files
            # (the lines' text is not read here and sent through a pipe); Dask's workers,
            # possibly elsewhere, get the text
            stream = iter_items(opts.inputs, spans=not opts.scheduler)
            for k, first, n, items in _chunks(stream, chunk_size, out.is_done):
                n_chunks = k + 1
                if items is None:
                    summary.skipped += n
                    continue
                while len(pending) >= window:
                    done, pending = pool.wait(pending)
                    finish(done)
                task = ChunkTask(index=k, first_item=first,
                                 items=[materialise(i) for i in items],
                                 priors=priors_path,
                                 reports=opts.per_case_reports, draws=opts.draws,
                                 out=str(out.root.resolve()) if pool.writes_chunks else None)
                try:
                    fut = pool.submit(task, left=max(1, n_chunks_est - k))
                except cf.BrokenExecutor as exc:
                    raise _failed(f"chunk {k} could not be sent", exc) from exc
                which[fut] = k
                pending.add(fut)
            while pending:
                done, pending = pool.wait(pending)
                finish(done)
            # every chunk is in: the workers exit (~0.2 s) while the merge is finished
            closing = threading.Thread(target=pool.close, name="neb-bayes-pool-close")
            closing.start()
            counts = merge.finish(n_chunks)
            closing.join()
        except BaseException as exc:
            merge.abort()
            _mark_stopped(out, manifest, exc)
            raise
        finally:
            progress.close()
            pool.close()

        summary.items = summary.processed + summary.skipped
        summary.chunks = n_chunks
        summary.rows, summary.errors = counts["rows"], counts["errors"]
        summary.duplicates = counts["duplicates"]
        summary.seconds = time.perf_counter() - t0
        summary.cases_per_s = summary.processed / summary.seconds if summary.seconds else 0.0
        summary.results = str(out.results_path)
        manifest.update(status="complete", updated=_now(), finished=_now(),
                        summary=asdict(summary))
        manifest["summary"].update(items=summary.items, chunks=n_chunks)
        out.write_manifest(manifest)
    return summary
