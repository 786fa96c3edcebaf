"""The batch results table: its schema, and writing/reading it as Parquet, CSV or JSON Lines.

One row per case that could be read, in input order.  Columns:

``item``
    Position of the case in the input stream (0-based, over all inputs); sort by it to get
    input order.
``case_id``, ``source``
    The case's id and where it came from (``file:line`` or the case file's path).
``<condition>`` ... ``none``
    Posterior probability of each condition (``model.conditions`` order) and of ``none``.
``top_condition``, ``top_probability``
    The most probable of those (conditions and ``none``; first one on ties).
``n_results_used``, ``n_not_used``, ``n_warnings``
    Laboratory results used, items not used, warnings (details: ``--per-case-reports``).
``unassessed_axes``
    Axes with no usable result, ``;``-separated (their probabilities are mostly prior).
``<condition>_lo``, ``<condition>_hi`` ... ``none_lo``, ``none_hi``
    Credible interval of each probability.  A prior set without parameter draws gives no
    parameter uncertainty: both bounds then equal the probability
    (:func:`interval_bounds` is where draws will come in).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa

from neb_bayes import config
from neb_bayes.intervals import equal_tailed

__all__ = [
    "FORMATS",
    "TableWriter",
    "interval_bounds",
    "probability_columns",
    "read_table",
    "result_schema",
    "results_table",
]

FORMATS = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl"}


def probability_columns(conditions: Sequence[str]) -> list[str]:
    """The probability column names: every condition id, then ``none``."""
    return [*conditions, "none"]


def result_schema(conditions: Sequence[str]) -> pa.Schema:
    """The Arrow schema of the results table for a model's conditions."""
    probs = probability_columns(conditions)
    fields = [
        pa.field("item", pa.int64(), nullable=False),
        pa.field("case_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        *(pa.field(c, pa.float64(), nullable=False) for c in probs),
        pa.field("top_condition", pa.string(), nullable=False),
        pa.field("top_probability", pa.float64(), nullable=False),
        pa.field("n_results_used", pa.int32(), nullable=False),
        pa.field("n_not_used", pa.int32(), nullable=False),
        pa.field("n_warnings", pa.int32(), nullable=False),
        pa.field("unassessed_axes", pa.string(), nullable=False),
    ]
    for c in probs:
        fields.append(pa.field(f"{c}_lo", pa.float64(), nullable=False))
        fields.append(pa.field(f"{c}_hi", pa.float64(), nullable=False))
    return pa.schema(fields)


def interval_bounds(
    probs: np.ndarray, draws: np.ndarray | None = None,
    interval_prob: float = config.INTERVAL_PROB,
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of each probability's equal-tailed credible interval.

    Parameters
    ----------
    probs
        ``(n_cases, n_conditions + 1)`` posterior probabilities.
    draws
        ``(n_draws, n_cases, n_conditions + 1)`` probabilities under each parameter draw of
        the prior set, or ``None`` for a prior set without draws.
    interval_prob
        Probability mass inside the interval (neb_bayes's configured one by default,
        :data:`neb_bayes.config.INTERVAL_PROB`).

    Returns
    -------
    lo, hi
        Arrays shaped like ``probs``; both equal ``probs`` when there are no draws.
    """
    if draws is None or len(draws) < 2:
        return probs, probs
    return equal_tailed(draws, interval_prob)


def results_table(
    conditions: Sequence[str],
    items: Sequence[int],
    case_ids: Sequence[str],
    sources: Sequence[str],
    probs: np.ndarray,
    n_used: Sequence[int],
    n_not_used: Sequence[int],
    n_warnings: Sequence[int],
    unassessed: Sequence[str],
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> pa.Table:
    """Build the results table of some cases (see the module docstring for the columns).

    Parameters
    ----------
    conditions
        ``model.conditions``.
    probs
        ``(n_cases, n_conditions + 1)`` from :func:`~neb_bayes.inference.batch_exact.infer_batch`.
    bounds
        ``(lo, hi)`` of each probability's interval, shaped like ``probs``
        (:func:`interval_bounds` of the cases' probabilities under the prior set's draws),
        or ``None`` (a prior set without draws: both equal ``probs``).
    """
    schema = result_schema(conditions)
    names = probability_columns(conditions)
    n = len(items)
    probs = np.asarray(probs, dtype=np.float64).reshape(n, len(names))
    top = np.argmax(probs, axis=1) if n else np.zeros(0, dtype=np.int64)
    lo, hi = (probs, probs) if bounds is None else bounds
    cols: dict[str, pa.Array] = {
        "item": _numbers(items, np.int64),
        "case_id": _strings(case_ids),
        "source": _strings(sources),
    }
    for j, c in enumerate(names):
        cols[c] = _numbers(probs[:, j], np.float64)
    cols["top_condition"] = _strings([names[k] for k in top])
    cols["top_probability"] = _numbers(probs[np.arange(n), top], np.float64)
    cols["n_results_used"] = _numbers(n_used, np.int32)
    cols["n_not_used"] = _numbers(n_not_used, np.int32)
    cols["n_warnings"] = _numbers(n_warnings, np.int32)
    cols["unassessed_axes"] = _strings(unassessed)
    for j, c in enumerate(names):
        cols[f"{c}_lo"] = _numbers(np.asarray(lo)[:, j], np.float64)
        cols[f"{c}_hi"] = _numbers(np.asarray(hi)[:, j], np.float64)
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)


# The columns are made from their buffers, not by ``pa.array``: its first call in a process
# imports pandas (~0.2 s of every batch worker's start-up), which a results table never needs.
def _numbers(values: Any, dtype: type) -> pa.Array:
    """A column of numbers (no nulls) over a contiguous copy of ``values`` as ``dtype``."""
    data = np.ascontiguousarray(values, dtype=dtype)
    return pa.Array.from_buffers(pa.from_numpy_dtype(data.dtype), data.size,
                                 [None, pa.py_buffer(data)])


def _strings(values: Sequence[str]) -> pa.Array:
    """A column of strings (no nulls): UTF-8 data and 32-bit offsets (``pa.array`` for what
    those cannot hold: more than 2 GiB, or text that is not valid Unicode)."""
    try:
        data = [v.encode("utf-8") for v in values]
    except UnicodeEncodeError:
        return pa.array(values, pa.string())
    offsets = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    if offsets[-1] >= 2**31:
        return pa.array(values, pa.string())
    return pa.Array.from_buffers(pa.string(), len(data),
                                 [None, pa.py_buffer(offsets.astype(np.int32)),
                                  pa.py_buffer(b"".join(data))])


# ---------------------------------------------------------------------------- formats
def _jsonl_lines(table: pa.Table) -> list[str]:
    return [json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_pylist()]


def _csv_text(table: pa.Table, header: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow([repr(v) if isinstance(v, float) else v for v in row.values()])
    return buf.getvalue()


#: rows per Parquet row group of the merged results (the chunks' small tables are gathered
#: up to this many: one row group per 500-case chunk took ~3 ms each to write)
ROW_GROUP_ROWS = 65_536

#: the Parquet columns stored with a dictionary: those of few distinct values.  The others
#: (ids, sources, probabilities: nearly every value distinct) are stored plainly; hashing
#: their values for a dictionary that is then given up took 0.32 of 0.37 s of CPU to write
#: 100,000 rows, for a larger file (56 against 46 MB)
DICTIONARY_COLUMNS = ("top_condition", "unassessed_axes")


class TableWriter:
    """Append tables of one schema to one file, streamed (the merged results).

    Parameters
    ----------
    path
        File to write (the caller renames it into place when done).
    fmt
        ``parquet``, ``csv`` or ``jsonl``.
    schema
        The table schema (:func:`result_schema`).
    """

    def __init__(self, path: str | Path, fmt: str, schema: pa.Schema) -> None:
        self.fmt = fmt
        self.schema = schema
        self._pq: Any = None
        self._fh: IO[str] | None = None
        self._pending: list[pa.Table] = []
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self._pq = pq.ParquetWriter(str(path), schema,
                                        use_dictionary=list(DICTIONARY_COLUMNS))
        elif fmt in ("csv", "jsonl"):
            self._fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            if fmt == "csv":
                self._fh.write(_csv_text(schema.empty_table(), header=True))
        else:
            raise ValueError(f"unknown table format {fmt!r}")

    def write(self, table: pa.Table) -> None:
        """Append ``table`` (its rows, in order)."""
        if self._pq is not None:
            self._pending.append(table)
            if sum(t.num_rows for t in self._pending) >= ROW_GROUP_ROWS:
                self._flush()
        elif self._fh is not None:
            if self.fmt == "csv":
                self._fh.write(_csv_text(table, header=False))
            else:
                self._fh.writelines(_jsonl_lines(table))

    def _flush(self) -> None:
        if self._pending:
            self._pq.write_table(pa.concat_tables(self._pending), row_group_size=ROW_GROUP_ROWS)
            self._pending = []

    def close(self) -> None:
        """Finish the file (flushed and synced)."""
        import os

        if self._pq is not None:
            self._flush()
            self._pq.close()
            self._pq = None
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _typed(value: str, typ: pa.DataType) -> Any:
    if pa.types.is_floating(typ):
        return float(value)
    if pa.types.is_integer(typ):
        return int(value)
    return value


def read_table(path: str | Path, fmt: str, schema: pa.Schema) -> pa.Table:
    """Read a table written by :class:`TableWriter` (the merged results), with its types.

    Raises
    ------
    ValueError
        When the file does not hold a table of ``schema`` (a damaged file).
    """
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(str(path))
        if not table.schema.equals(schema):
            raise ValueError(f"{path}: columns differ from the batch's table schema")
        return table
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8", newline="") as fh:
        if fmt == "jsonl":
            for line in fh:
                if line.strip():
                    rows.append(json.loads(line))
        elif fmt == "csv":
            reader = csv.reader(fh)
            header = next(reader, None)
            if header != schema.names:
                raise ValueError(f"{path}: header differs from the batch's table schema")
            types = [f.type for f in schema]
            for row in reader:
                if len(row) != len(types):
                    raise ValueError(f"{path}: a row has {len(row)} cells, expected {len(types)}")
                rows.append({n: _typed(v, t) for n, v, t in zip(schema.names, row, types,
                                                                strict=True)})
        else:
            raise ValueError(f"unknown table format {fmt!r}")
    return pa.Table.from_pylist(rows, schema=schema)
