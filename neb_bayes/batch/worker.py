"""The work on one chunk, run in a worker process (local pool or Dask worker).

:func:`process_chunk` gets the chunk's raw items and the prior set's path (never a model
object: each worker loads and caches the model itself), reads and validates every case,
builds the evidence, runs :func:`~neb_bayes.inference.batch_exact.infer_batch` once for the
chunk, and returns the chunk's results table, its error records and, when asked, each
case's JSON report.  It writes nothing: a local pool's chunks are written where they ran
(:func:`~neb_bayes.batch.task.run_chunk`), a Dask worker's by the driver, so Dask workers
never need the output directory.  A local pool's workers read their chunk's JSON
Lines lines from the input file (``"spans"`` items: where the lines are); a Dask worker gets
every case's text and needs no input file.

A bad case never stops the chunk: it becomes an error record with every problem the reader
found, each with its field path.  Error messages are the reader's own, which name fields and
reasons and may quote the offending value of the field they name (as ``neb-bayes check``
does: the errors file is case data, like the results); nothing else from the case is copied
into them, and none of it is logged.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np

from neb_bayes.batch.csv_cases import column_label
from neb_bayes.batch.inputs import ParsedItem, RawItem, parse_item, read_spans
from neb_bayes.batch.plain import PlainReader
from neb_bayes.batch.table import interval_bounds, results_table
from neb_bayes.batch.task import ChunkResult, ChunkTask
from neb_bayes.case.model import Case, CaseError, FieldError
from neb_bayes.case.read import read_case
from neb_bayes.evidence import Evidence, build_evidence
from neb_bayes.inference.batch_exact import infer_batch, infer_batch_draws
from neb_bayes.inference.vectorised import posterior_rows
from neb_bayes.model.compiled import CompiledModel
from neb_bayes.model.params import ParamDraws
from neb_bayes.priorset import load_prior_set

__all__ = ["ChunkResult", "ChunkTask", "error_record", "process_chunk", "read_parsed"]

log = logging.getLogger(__name__)


def interval_bounds_by_case(model: CompiledModel, draws: ParamDraws,
                            evidences: list[Evidence], probs: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Each case's interval bounds (:func:`~neb_bayes.batch.table.interval_bounds`) from its
    probabilities under every parameter draw, case by case: a chunk holds ``(cases,
    conditions + 1)`` bounds, never the ``(draws, cases, conditions + 1)`` probabilities
    (168 MB for 1,000 cases and 1,000 draws, and as much again for the quantiles' sort).
    ``probs``: the cases' point probabilities, in the same order."""
    from neb_bayes.allocator import retain_freed_memory

    # (each case allocates and frees its factors and tables, megabytes each: kept in the
    # process, they are not faulted in again case after case; see retain_freed_memory)
    retain_freed_memory()
    lo, hi = np.empty_like(probs), np.empty_like(probs)
    for i, ev in enumerate(evidences):
        lo[i:i + 1], hi[i:i + 1] = interval_bounds(probs[i:i + 1],
                                                   infer_batch_draws(model, draws, [ev]))
    return lo, hi


def error_record(
    item: int, source: str, case_id: str | None, errors: list[FieldError],
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One line of ``errors.jsonl``: where the case is and every problem in it.

    Parameters
    ----------
    item, source
        Input position and source name of the case.
    case_id
        The case's id when it could be read, else ``None``.
    errors
        Every problem, with its field path.
    labels
        For CSV input: field path -> column name; each error then also names its column.
    """
    out = []
    for e in errors:
        entry = {"path": e.path, "message": e.message}
        if labels is not None:
            column = labels.get(e.path) or column_label(labels, e.path)
            if column is not None:
                entry["column"] = column
        out.append(entry)
    return {"item": item, "source": source, "case_id": case_id, "errors": out}


def _id_of(data: Any) -> str | None:
    if isinstance(data, dict):
        value = data.get("id")
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def read_parsed(parsed: ParsedItem, item: RawItem) -> tuple[Case | None, dict[str, Any] | None]:
    """A case, or an error record's parts (``case_id``, ``errors``, ``labels``: the
    arguments of :func:`error_record` after ``item`` and ``source``) as a dict."""
    if isinstance(parsed.data, CaseError):
        return None, {"case_id": None, "errors": parsed.data.errors, "labels": parsed.labels}
    try:
        case = read_case(parsed.data, source_name=item.source)
    except CaseError as exc:
        errors = parsed.extra + exc.errors
    else:
        if not parsed.extra:
            return case, None
        errors = parsed.extra
    return None, {"case_id": _id_of(parsed.data), "errors": errors, "labels": parsed.labels}


def _internal(what: str, exc: BaseException) -> list[FieldError]:
    # the exception text may quote values: name only its type
    return [FieldError("<case>", f"internal error while {what} ({type(exc).__name__}); "
                                 "run this case alone with `neb-bayes report` for details")]


@lru_cache(maxsize=256)
def _unassessed(model: CompiledModel, measured: frozenset[int]) -> str:
    """The axes with latents and no result, ``;``-separated (cached: a chunk's cases have a
    few patterns between them)."""
    return ";".join(a.name for i, a in enumerate(model.axes) if a.latents and i not in measured)


def _infer(model: CompiledModel, evs: list[Evidence]) -> tuple[np.ndarray, list[int]]:
    """Probabilities of the whole chunk in one call; on failure, case by case.

    Returns the probabilities of the cases that worked and the positions that failed.
    """
    try:
        return infer_batch(model, evs), []
    except Exception:  # noqa: BLE001 - isolate the failing case(s)
        log.debug("infer_batch failed on a chunk; retrying case by case", exc_info=True)
    rows, failed = [], []
    for i, ev in enumerate(evs):
        try:
            rows.append(infer_batch(model, [ev])[0])
        except Exception:  # noqa: BLE001
            failed.append(i)
    width = len(model.conditions) + 1
    return (np.array(rows) if rows else np.empty((0, width))), failed


def process_chunk(task: ChunkTask) -> ChunkResult:
    """Read, validate and infer every case of one chunk.

    The cyclic garbage collector is paused for the chunk: reading a chunk makes some 10^5
    small objects, most freed by reference counting when it ends, and collections triggered
    by their allocation would otherwise rescan every live object many times over (it is
    switched back on, and cycles collected as usual, when the chunk is done).

    Parameters
    ----------
    task
        The chunk (:class:`ChunkTask`).

    Returns
    -------
    ChunkResult
        Results table (one row per case that could be read, in input order), error
        records (input order) and, with ``task.reports``, ``(item, report_json)`` pairs.
    """
    from neb_bayes.allocator import retain_freed_memory

    # a chunk's arrays (megabytes) are freed when it ends: kept in the process, the next
    # chunk does not fault them in again (100,000 cases, point probabilities: ~1 s less
    # system time of the workers; see retain_freed_memory)
    retain_freed_memory()
    enabled = gc.isenabled()
    gc.disable()
    try:
        if any(item.kind == "spans" for item in task.items):
            # JSON Lines lines given by where they are (a local batch): read here
            task = replace(task, items=read_spans(task.items))
        return _process_chunk(task)
    finally:
        if enabled:
            gc.enable()


class _Columns:
    """The results table's columns of a chunk's cases, filled case by case or many at once,
    before the table is built."""

    __slots__ = ("item", "case_id", "source", "probs", "n_used", "n_not_used", "n_warnings",
                 "unassessed")

    def __init__(self) -> None:
        self.item: list[int] = []
        self.case_id: list[str] = []
        self.source: list[str] = []
        self.probs: list[np.ndarray] = []      # blocks of rows
        self.n_used: list[int] = []
        self.n_not_used: list[int] = []
        self.n_warnings: list[int] = []
        self.unassessed: list[str] = []


def _process_chunk(task: ChunkTask) -> ChunkResult:
    t0 = time.perf_counter()
    prior_set = load_prior_set(task.priors)
    model = prior_set.model
    want_draws = prior_set.draws is not None and task.draws != 0
    # plain cases go straight to the engine's rows (point probabilities, no per-case reports)
    plain = None if (task.reports or want_draws) else PlainReader(model)
    plain_items: list[tuple[int, RawItem, ParsedItem | None]] = []
    errors: list[dict[str, Any]] = []
    good: list[tuple[int, RawItem, Case, Evidence]] = []

    def read(idx: int, item: RawItem, parsed: ParsedItem) -> None:
        try:
            case, err = read_parsed(parsed, item)
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the batch
            log.debug("reading %s failed", item.source, exc_info=True)
            errors.append(error_record(idx, item.source, None, _internal("reading", exc)))
            return
        if case is None:
            assert err is not None
            errors.append(error_record(idx, item.source, err["case_id"], err["errors"],
                                       err["labels"]))
            return
        try:
            ev = build_evidence(model, case)
        except Exception as exc:  # noqa: BLE001
            log.debug("evidence for %s failed", item.source, exc_info=True)
            errors.append(error_record(idx, item.source, case.id,
                                       _internal("building the evidence", exc)))
            return
        good.append((idx, item, case, ev))

    at_once = np.zeros(len(task.items), bool)
    if plain is not None:
        # JSON lines read straight from their text and CSV rows from their cells, all at
        # once (plain_json, csv_cases.row_parts, long_csv.long_parts); the others are parsed
        # and read one by one
        try:
            for kind, add in (("json", plain.add_texts), ("csv", plain.add_rows),
                              ("csv_long", plain.add_long)):
                if at := [k for k, item in enumerate(task.items) if item.kind == kind]:
                    at_once[at] = add([task.items[k].data for k in at])
                    # (in the order the reader kept them)
                    plain_items.extend((task.first_item + k, task.items[k], None)
                                       for k in at if at_once[k])
        except Exception:  # noqa: BLE001 - the one-by-one reading decides (and reports)
            log.debug("reading a chunk's items at once failed", exc_info=True)
            plain = PlainReader(model)
            plain_items.clear()
            at_once[:] = False
    for offset, item in enumerate(task.items):
        if at_once[offset]:
            continue
        idx = task.first_item + offset
        try:
            parsed = parse_item(item)
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the batch
            log.debug("reading %s failed", item.source, exc_info=True)
            errors.append(error_record(idx, item.source, None, _internal("reading", exc)))
            continue
        if plain is not None and not parsed.extra and not isinstance(parsed.data, CaseError):
            try:
                taken = plain.add(parsed.data)
            except Exception:  # noqa: BLE001 - the full reader decides (and reports)
                log.debug("the plain reader failed on %s", item.source, exc_info=True)
                taken = False
            if taken:
                plain_items.append((idx, item, parsed))
                continue
        read(idx, item, parsed)
    cols = _Columns()
    if plain_items:
        assert plain is not None
        try:
            probs_p, _, exact = posterior_rows(model, plain.evidences, plain.flat())
        except Exception:  # noqa: BLE001 - isolate the failing case(s) on the full path
            log.debug("the engine failed on a chunk's plain cases", exc_info=True)
            exact = np.ones(len(plain_items), bool)
        for k in np.flatnonzero(exact).tolist():
            # a case the vectorised form could not compute (its factors underflow): the full
            # path gives its evidence (and infer_exact its probabilities)
            idx, item, parsed = plain_items[k]
            read(idx, item, parse_item(item) if parsed is None else parsed)
        took = np.flatnonzero(~exact).tolist()
        evs = plain.evidences
        cols.item = [plain_items[k][0] for k in took]
        cols.case_id = [evs[k].case_id for k in took]
        cols.source = [plain_items[k][1].source for k in took]
        cols.probs.append(probs_p[took])
        cols.n_used = [plain.n_used[k] for k in took]
        cols.n_not_used = [len(evs[k].not_used) for k in took]
        cols.n_warnings = [len(evs[k].warnings) for k in took]
        cols.unassessed = [_unassessed(model, plain.axes[k]) for k in took]
        good.sort(key=lambda g: g[0])
    probs, failed = _infer(model, [g[3] for g in good])
    for i in failed:
        idx, item, case, _ = good[i]
        errors.append(error_record(idx, item.source, case.id,
                                   _internal("computing probabilities", RuntimeError())))
    if failed:
        bad = set(failed)
        good = [g for i, g in enumerate(good) if i not in bad]
    errors.sort(key=lambda r: r["item"])
    bounds = None
    if want_draws and good:
        draws = prior_set.draws
        if 0 < task.draws < draws.n_draws:
            draws = draws.subset(slice(0, task.draws))
        bounds = interval_bounds_by_case(model, draws, [g[3] for g in good], probs)
    for idx, item, case, ev in good:
        cols.item.append(idx)
        cols.case_id.append(case.id)
        cols.source.append(item.source)
        cols.n_used.append(ev.n_measurements)
        cols.n_not_used.append(len(ev.not_used))
        cols.n_warnings.append(len(ev.warnings))
        cols.unassessed.append(_unassessed(model, frozenset(b.axis for b in ev.blocks)))
    cols.probs.append(probs.reshape(len(good), len(model.conditions) + 1))
    # input order (plain cases have no draws: ``bounds`` is only made without them)
    order = np.argsort(np.array(cols.item, dtype=np.int64), kind="stable")

    def ordered(values: list) -> list:
        return [values[i] for i in order.tolist()]

    table = results_table(
        model.conditions,
        items=ordered(cols.item),
        case_ids=ordered(cols.case_id),
        sources=ordered(cols.source),
        probs=np.concatenate(cols.probs)[order],
        n_used=ordered(cols.n_used),
        n_not_used=ordered(cols.n_not_used),
        n_warnings=ordered(cols.n_warnings),
        unassessed=ordered(cols.unassessed),
        bounds=None if bounds is None else tuple(b[order] for b in bounds),
    )
    reports: list[tuple[int, str]] = []
    if task.reports:
        from neb_bayes.api import infer
        from neb_bayes.report import render_json

        for idx, item, case, _ev in good:
            try:
                reports.append((idx, render_json(infer(case, prior_set))))
            except Exception as exc:  # noqa: BLE001 - the table row stands; say why no report
                log.debug("report for %s failed", item.source, exc_info=True)
                errors.append(error_record(idx, item.source, case.id,
                                           _internal("writing the per-case report", exc)))
        errors.sort(key=lambda r: r["item"])
    return ChunkResult(index=task.index, table=table, errors=errors, reports=reports,
                       n_items=len(task.items), seconds=time.perf_counter() - t0)
