"""The batch output directory: atomic chunk files, the manifest, resuming, the merge.

Layout of ``--out DIR``::

    DIR/manifest.json                   what was run (inputs, chunk size, priors) and status
    DIR/chunks/chunk-000123.arrow       results of chunk 123 (the chunk is done iff it exists)
    DIR/chunks/chunk-000123.errors.jsonl  error records of chunk 123 (possibly empty)
    DIR/chunks/chunk-000123.reports/    per-case JSON reports of chunk 123, staged by item
    DIR/results.<fmt>                   every chunk's rows merged in input order
    DIR/errors.jsonl                    every error record, in input order
    DIR/reports/<case_id>.json          per-case reports (with --per-case-reports)
    DIR/.lock                           held while a batch runs in DIR

Every file is written under a temporary name (``.<name>.<random>.tmp``) and renamed into
place with :func:`os.replace`, so a crash leaves whole files or temporary ones, which the
next run deletes.  A chunk's reports and error file are renamed into place before its table,
so an existing table means the whole chunk is there.  Chunk tables are Arrow IPC files
whatever the output format, uncompressed: a local pool's workers write them
(:func:`write_chunk_files`) and the merge maps them into memory, so their columns are read
without a copy.  (A Parquet file took ~4 ms each way and a CSV or JSON Lines file was parsed
row by row; LZ4 saved only ~17 % of a chunk's probabilities, and cost ~1.5 ms per chunk of
2,000 each way.)  Files written compressed by an earlier version are read as well.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa

from neb_bayes.batch.table import FORMATS, TableWriter
from neb_bayes.batch.task import ChunkResult
from neb_bayes.files import atomic_text, atomic_write

__all__ = ["BatchLocked", "Merge", "OutputDir", "OutputUnusable", "report_name"]

MANIFEST = "manifest.json"
OWN_NAMES = {"manifest.json", "chunks", "reports", "errors.jsonl", ".lock",
             *(f"results{ext}" for ext in FORMATS.values())}
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")
#: chunk tables: Arrow IPC files
CHUNK_EXT = ".arrow"


class BatchLocked(RuntimeError):
    """Another batch is running in the same output directory."""


class OutputUnusable(Exception):
    """The output directory cannot be created or written (a usage error: exit 2)."""


def report_name(case_id: str) -> str:
    """File name of a case's report: the id itself when it is a safe file name, else the id
    with unsafe characters replaced and a short hash of the id appended."""
    if _SAFE.match(case_id) and not case_id.endswith(".tmp"):
        return f"{case_id}.json"
    digest = hashlib.sha256(case_id.encode("utf-8")).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", case_id)[:100].lstrip(".") or "case"
    return f"{stem}-{digest}.json"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_ipc(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _chunk_file(chunks: Path, k: int, suffix: str) -> Path:
    """Chunk ``k``'s table (:data:`CHUNK_EXT`), error records (``.errors.jsonl``) or staged
    reports (``.reports``) in the ``chunks`` directory."""
    return chunks / f"chunk-{k:06d}{suffix}"


def write_chunk_files(root: str | os.PathLike[str], result: ChunkResult) -> None:
    """Write chunk ``result.index``'s reports, error records and table into ``root/chunks``
    (see the layout above), each atomically, the table last.  The driver calls it for a chunk
    whose result it receives; a local worker calls it itself (:attr:`ChunkTask.out`)."""
    assert result.table is not None
    chunks = Path(root) / "chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    k = result.index
    if result.reports:
        final = _chunk_file(chunks, k, ".reports")
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=chunks))
        try:
            for item, text in result.reports:
                (tmp / f"{item:012d}.json").write_text(text, encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.errors)
    atomic_text(_chunk_file(chunks, k, ".errors.jsonl"), lines)
    table = result.table
    atomic_write(_chunk_file(chunks, k, CHUNK_EXT), lambda tmp: _write_ipc(table, tmp))
    _fsync_dir(chunks)


def _id_hash(case_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(case_id.encode("utf-8"), digest_size=8).digest(),
                          "little")


class OutputDir:
    """One batch output directory.

    Parameters
    ----------
    root
        The ``--out`` directory (created when missing).
    fmt
        Table format: ``parquet``, ``csv`` or ``jsonl``.
    """

    def __init__(self, root: str | os.PathLike[str], fmt: str) -> None:
        self.root = Path(root)
        self.fmt = fmt
        self.ext = FORMATS[fmt]
        self.chunks = self.root / "chunks"
        self.reports = self.root / "reports"
        self.manifest_path = self.root / MANIFEST
        self.results_path = self.root / f"results{self.ext}"
        self.errors_path = self.root / "errors.jsonl"

    # ------------------------------------------------------------------ locking, cleaning
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the directory (released on exit, or when the process dies).

        Raises
        ------
        BatchLocked
            When another process holds it.
        OutputUnusable
            When the directory cannot be created or written (its path and the reason).
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = open(self.root / ".lock", "a+")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise OutputUnusable(f"--out {self.root}: cannot create or write this directory "
                                 f"({exc.strerror or type(exc).__name__})") from None
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BatchLocked(f"{self.root}: another batch is running in this directory")\
                    from None
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def foreign_entries(self) -> list[str]:
        """Entries of the directory that a batch did not write (hidden files, such as a
        file manager's ``.DS_Store`` or a ``.gitkeep``, do not count: a batch never
        touches them)."""
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.name not in OWN_NAMES and not p.name.startswith("."))

    def clean_temporary(self) -> int:
        """Delete temporary files and directories left by an interrupted run."""
        n = 0
        for folder in (self.root, self.chunks, self.reports):
            if not folder.is_dir():
                continue
            for p in folder.iterdir():
                if p.name.startswith(".") and p.name.endswith(".tmp"):
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink(missing_ok=True)
                    n += 1
        return n

    def wipe(self) -> None:
        """Remove everything a batch writes (``--restart``), keeping other files and the lock."""
        for name in OWN_NAMES - {".lock"}:
            p = self.root / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    # ------------------------------------------------------------------ manifest
    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or ``None`` when there is none (or it cannot be read)."""
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Write the manifest atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_text(self.manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")

    # ------------------------------------------------------------------ chunks
    def chunk_path(self, k: int) -> Path:
        """The table file of chunk ``k``."""
        return _chunk_file(self.chunks, k, CHUNK_EXT)

    def chunk_errors_path(self, k: int) -> Path:
        """The error records of chunk ``k``."""
        return _chunk_file(self.chunks, k, ".errors.jsonl")

    def chunk_reports_dir(self, k: int) -> Path:
        """The staged per-case reports of chunk ``k``."""
        return _chunk_file(self.chunks, k, ".reports")

    def is_done(self, k: int) -> bool:
        """Whether chunk ``k`` is complete (its table file exists)."""
        return self.chunk_path(k).exists()

    def write_chunk(self, result: ChunkResult) -> None:
        """Write a chunk's reports, error records and table, each atomically, table last."""
        write_chunk_files(self.root, result)

    def read_chunk(self, k: int, schema: pa.Schema,
                   columns: Sequence[str] | None = None) -> pa.Table:
        """The table of chunk ``k`` (only ``columns`` of it when given), its columns in the
        file mapped into memory, not copied (a compressed file's: decompressed).

        Raises
        ------
        ValueError
            When the file does not hold a table of ``schema`` (a damaged file).
        """
        path = self.chunk_path(k)
        options = None
        if columns is not None:
            fields = [schema.get_field_index(c) for c in columns]
            schema = pa.schema([schema.field(i) for i in fields])
            options = pa.ipc.IpcReadOptions(included_fields=fields)
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_file(src, options=options).read_all()
        if not table.schema.equals(schema):
            raise ValueError(f"{path}: columns differ from the batch's table schema")
        return table

    def read_chunk_errors(self, k: int) -> list[dict[str, Any]]:
        """The error records of chunk ``k`` (none when the file is missing)."""
        path = self.chunk_errors_path(k)
        if not path.exists():
            return []
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    # ------------------------------------------------------------------ merge
    def start_merge(self, schema: pa.Schema, reports: bool) -> Merge:
        """A merge of the chunks in order, as they are done (:class:`Merge`)."""
        return Merge(self, schema, reports)

    def _move_reports(self, k: int, table: pa.Table) -> None:
        """Move chunk ``k``'s staged reports of the kept rows to ``reports/<case_id>.json``."""
        staged = self.chunk_reports_dir(k)
        if not staged.is_dir():
            return
        kept = set()
        for item, case_id in zip(table.column("item").to_pylist(),
                                 table.column("case_id").to_pylist(), strict=True):
            src = staged / f"{item:012d}.json"
            kept.add(src.name)
            if src.exists():
                os.replace(src, self.reports / report_name(case_id))
        for p in staged.iterdir():  # reports of duplicates
            if p.name not in kept:
                p.unlink()
        with contextlib.suppress(OSError):
            staged.rmdir()


class _FirstItems:
    """The case ids met so far, as 64-bit hashes of the ids (:func:`_id_hash`) with the item
    that first had each: sorted runs of 16 bytes per distinct id, not the ids; a run is
    merged into the one before it once that one is at most twice its size, so there are
    ~log2(n) runs and each id is moved ~log2(n) times."""

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def first_of(self, hashes: np.ndarray, items: np.ndarray) -> np.ndarray:
        """For cases ``items`` (ascending, after every case met before) with id hashes
        ``hashes``: the item of the first earlier case with the same hash, or -1; the
        hashes not met before are remembered with their first item."""
        first = np.full(hashes.size, -1, dtype=np.int64)
        for h_run, i_run in self.runs:
            at = np.minimum(np.searchsorted(h_run, hashes), h_run.size - 1)
            hit = h_run[at] == hashes
            first[hit] = i_run[at[hit]]
        new = np.flatnonzero(first < 0)
        if new.size:
            uniq, at_first, which = np.unique(hashes[new], return_index=True,
                                              return_inverse=True)
            first_items = items[new][at_first]
            later = at_first[which] != np.arange(new.size)      # an earlier one here
            first[new[later]] = first_items[which[later]]
            self.runs.append((uniq, first_items))
            while len(self.runs) > 1 and self.runs[-2][0].size <= 2 * self.runs[-1][0].size:
                (h1, i1), (h2, i2) = self.runs.pop(-2), self.runs.pop()
                h = np.concatenate([h1, h2])
                order = np.argsort(h, kind="stable")
                self.runs.append((h[order], np.concatenate([i1, i2])[order]))
        return first


#: why a long CSV may have repeated ids it was not meant to have (its rows of one case are
#: those in a row: :mod:`neb_bayes.batch.long_csv`), in a repeat's error and the summary
LONG_CSV_HINT = ("in a long CSV, rows of an id that come back after other cases' rows are "
                 "read as another case: sort the file by id")


class Merge:
    """The merged results table, ``errors.jsonl`` and ``reports/`` of a batch, written chunk
    by chunk in input order while the batch runs (:meth:`add_ready` after each chunk is
    written), under temporary names renamed into place by :meth:`finish`.

    A case whose id an earlier case already has is left out of the results and listed in
    the errors (the first one wins, whatever the chunking: cases are merged in input
    order).  Merging the same chunks again gives the same files.
    """

    def __init__(self, out: OutputDir, schema: pa.Schema, reports: bool) -> None:
        self.out, self.schema, self.reports = out, schema, reports
        self.next = 0
        self.counts = {"rows": 0, "errors": 0, "duplicates": 0}
        self._seen = _FirstItems()
        if reports:
            out.reports.mkdir(parents=True, exist_ok=True)
        self._tmp: list[Path] = []
        self._writer: TableWriter | None = None
        self._err: IO[str] | None = None
        try:
            for final in (out.results_path, out.errors_path):
                fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp",
                                            dir=out.root)
                os.close(fd)
                self._tmp.append(Path(name))
            self._writer = TableWriter(self._tmp[0], out.fmt, schema)
            self._err = open(self._tmp[1], "w", encoding="utf-8")  # noqa: SIM115
        except BaseException:
            self.abort()
            raise

    def add_ready(self, result: ChunkResult | None = None) -> None:
        """Merge the chunks from the next one on, as long as they are done (``result``: a
        chunk just written, merged from memory)."""
        while self.out.is_done(self.next):
            self._add(self.next, result if result is not None and
                      result.index == self.next else None)

    def finish(self, n_chunks: int) -> dict[str, int]:
        """Merge the chunks left of ``0 .. n_chunks - 1``, sync the files and rename them
        into place.

        Returns
        -------
        dict
            ``rows`` (results), ``errors`` (error records) and ``duplicates``.
        """
        while self.next < n_chunks:
            self._add(self.next, None)
        assert self._writer is not None and self._err is not None
        self._writer.close()
        self._err.flush()
        os.fsync(self._err.fileno())
        self._err.close()
        with open(self._tmp[0], "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self._tmp[0], self.out.results_path)
        os.replace(self._tmp[1], self.out.errors_path)
        _fsync_dir(self.out.root)
        return dict(self.counts)

    def abort(self) -> None:
        """Close and delete the temporary files."""
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()
        with contextlib.suppress(Exception):
            if self._err is not None:
                self._err.close()
        for tmp in self._tmp:
            tmp.unlink(missing_ok=True)

    def _add(self, k: int, result: ChunkResult | None) -> None:
        if result is not None:
            table = result.table if result.table is not None else self.out.read_chunk(
                k, self.schema)
            records = list(result.errors)
        else:
            table, records = self.out.read_chunk(k, self.schema), self.out.read_chunk_errors(k)
        # (to_pylist, not to_numpy, and a mask made from its bits, not pa.array: either of
        # those would import pandas into the driver, ~0.2 s)
        ids = table.column("case_id").to_pylist()
        items = np.array(table.column("item").to_pylist(), dtype=np.int64)
        first = self._seen.first_of(np.array([_id_hash(c) for c in ids], dtype=np.uint64),
                                    items)
        repeated = np.flatnonzero(first >= 0)
        if repeated.size:
            sources = table.column("source").to_pylist()
            for j in repeated.tolist():
                records.append({
                    "item": int(items[j]), "source": sources[j], "case_id": ids[j],
                    "errors": [{"path": "id", "message":
                                f"duplicate case id: input item {int(first[j])} has the same "
                                f"id; this case is left out of the results ({LONG_CSV_HINT})"}]})
            records.sort(key=lambda r: r["item"])
            keep = np.packbits(first < 0, bitorder="little")
            table = table.filter(pa.Array.from_buffers(pa.bool_(), first.size,
                                                       [None, pa.py_buffer(keep)]))
            self.counts["duplicates"] += repeated.size
        assert self._writer is not None and self._err is not None
        self._writer.write(table)
        self.counts["rows"] += table.num_rows
        for r in records:
            self._err.write(json.dumps(r, ensure_ascii=False) + "\n")
        self.counts["errors"] += len(records)
        if self.reports:
            self.out._move_reports(k, table)
        self.next = k + 1
