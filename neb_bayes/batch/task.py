"""What travels between the batch's driver and its workers: a chunk's task and its result.

Kept apart from :mod:`~neb_bayes.batch.worker` so that the driver does not import the
engine, the readers and their compiled kernels (~0.3 s of its start-up, before the first
worker can start): :func:`run_chunk` imports the worker where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from neb_bayes.batch.inputs import RawItem

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ChunkResult", "ChunkTask", "run_chunk", "warm_up"]


@dataclass(frozen=True)
class ChunkTask:
    """Everything a worker needs for one chunk.

    Attributes
    ----------
    index
        Chunk number ``k``: items ``[k * size, (k + 1) * size)``.
    first_item
        Input position of ``items[0]``.
    items
        The chunk's raw items (case files already read into text; JSON Lines lines, for a
        local pool, as ``"spans"`` items the worker reads from the file: one may stand for
        many lines).
    priors
        Prior set file, or ``None`` for the shipped prior set.
    reports
        Also render each case's full JSON report (the slower per-case path).
    draws
        Use the first ``draws`` parameter draws of the prior set for intervals (0: point
        probabilities only, the fast path; -1: all draws).
    out
        The batch's output directory, for a worker that shares the driver's file system (a
        local pool): it writes the chunk's files there itself
        (:func:`~neb_bayes.batch.store.write_chunk_files`) and sends back only what the
        driver counts, so the results table does not travel through a pipe and is not
        written by the driver.  ``None`` (Dask, one process): the result carries it all.
    """

    index: int
    first_item: int
    items: list[RawItem]
    priors: str | None = None
    reports: bool = False
    draws: int = 0
    out: str | None = None

    def __reduce__(self) -> tuple:
        # the items as three lists of strings: pickled 2x and unpickled 2-3x faster than as
        # objects (~1 ms per 500-case chunk each way, on the driver and the worker)
        items = self.items
        return (_chunk_task, (self.index, self.first_item, [i.source for i in items],
                              [i.kind for i in items], [i.data for i in items], self.priors,
                              self.reports, self.draws, self.out))


def _chunk_task(index: int, first_item: int, sources: list, kinds: list, datas: list,
                priors: str | None, reports: bool, draws: int, out: str | None) -> ChunkTask:
    items = [RawItem(*x) for x in zip(sources, kinds, datas, strict=True)]
    return ChunkTask(index, first_item, items, priors, reports, draws, out)


@dataclass
class ChunkResult:
    """What a worker sends back for one chunk: its table, error records and reports, or,
    where the worker wrote the chunk's files itself (:attr:`ChunkTask.out`), no table and no
    reports (the error records still, for the driver's count and merge)."""

    index: int
    table: pa.Table | None
    errors: list[dict[str, Any]] = field(default_factory=list)
    reports: list[tuple[int, str]] = field(default_factory=list)
    n_items: int = 0
    seconds: float = 0.0


def run_chunk(task: ChunkTask) -> ChunkResult:
    """:func:`~neb_bayes.batch.worker.process_chunk`, imported where the chunk runs; with
    ``task.out``, the chunk's files written here."""
    from neb_bayes.batch.worker import process_chunk

    result = process_chunk(task)
    if task.out is None:
        return result
    from neb_bayes.batch.store import write_chunk_files

    write_chunk_files(task.out, result)
    return ChunkResult(result.index, None, result.errors, [], result.n_items, result.seconds)


def warm_up(priors: str | None) -> None:
    """A worker's start: import the engine and load the prior set (``None``: the shipped
    one) before its first chunk comes.  A local pool starts its workers with it while the
    driver counts the inputs."""
    from neb_bayes.batch.worker import process_chunk  # noqa: F401  (the engine, the readers)
    from neb_bayes.priorset import load_prior_set

    load_prior_set(priors)
