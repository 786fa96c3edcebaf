"""Batch inference at scale: streamed, resumable, parallel, and on Dask when one machine is
not enough.

>>> from neb_bayes.batch import BatchOptions, run_batch   # doctest: +SKIP
>>> summary = run_batch(BatchOptions(inputs=["cases.jsonl"], out="out", jobs=4))  # doctest: +SKIP

With ``jobs`` above 1, the worker processes are spawned and import the calling script: a
script must call ``run_batch`` under ``if __name__ == "__main__":`` (as any script using
multiprocessing's spawn must); a notebook need not.

Modules
-------
:mod:`~neb_bayes.batch.inputs`
    JSON Lines, directories and wide CSV files as a stream of raw case items.
:mod:`~neb_bayes.batch.csv_cases`
    The wide CSV column convention, one row -> one case-file mapping.
:mod:`~neb_bayes.batch.task`
    What travels between the driver and its workers: a chunk's task and result.
:mod:`~neb_bayes.batch.worker`
    One chunk: read, validate, infer (in a worker process).
:mod:`~neb_bayes.batch.table`
    The results table schema and its Parquet/CSV/JSON Lines forms.
:mod:`~neb_bayes.batch.store`
    The output directory: atomic chunk files, manifest, resume, merge.
:mod:`~neb_bayes.batch.runner`
    The driver: chunks, local pool or Dask cluster, progress, summary.
:mod:`~neb_bayes.batch.export`
    ``Case`` objects back to case-format data (simulated inputs for tests and benchmarks).
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:   # (for type checkers; at run time each name is imported on first use)
    from neb_bayes.batch.export import case_to_dict, write_case_dir, write_csv, write_jsonl
    from neb_bayes.batch.runner import (
        BatchFailed,
        BatchOptions,
        BatchSummary,
        BatchUsageError,
        ResumeRefused,
        run_batch,
    )
    from neb_bayes.batch.table import result_schema

# (each name imported on first use: a batch worker unpickling its task imports this package,
# and needs neither the driver nor the exporters)
_WHERE = {
    "BatchFailed": "runner", "BatchOptions": "runner", "BatchSummary": "runner",
    "BatchUsageError": "runner", "ResumeRefused": "runner", "run_batch": "runner",
    "case_to_dict": "export", "write_case_dir": "export", "write_csv": "export",
    "write_jsonl": "export", "result_schema": "table",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"neb_bayes.batch.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BatchFailed",
    "BatchOptions",
    "BatchSummary",
    "BatchUsageError",
    "ResumeRefused",
    "case_to_dict",
    "result_schema",
    "run_batch",
    "write_case_dir",
    "write_csv",
    "write_jsonl",
]
