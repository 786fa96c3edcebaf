"""``neb-bayes batch`` end to end: inputs, bad cases, determinism, formats, resume rules."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from neb_bayes.batch import BatchOptions, ResumeRefused, run_batch, write_case_dir, write_csv
from neb_bayes.batch.export import case_to_dict
from neb_bayes.cli import main
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.batch_exact import infer_batch

from .conftest import BAD_CASES, errors, mixed_jsonl, results

N = 160


def _quiet(_: str) -> None:
    pass


def _probs(table: pa.Table, model) -> np.ndarray:
    return np.column_stack([table.column(c).to_numpy() for c in [*model.conditions, "none"]])


@pytest.fixture(scope="module")
def jsonl_input(tmp_path_factory, sim_cases) -> tuple[Path, set[int]]:
    path = tmp_path_factory.mktemp("in") / "cases.jsonl"
    bad = mixed_jsonl(path, sim_cases[:N], every=25)   # (each of BAD_CASES once)
    return path, bad


@pytest.fixture(scope="module")
def reference(tmp_path_factory, jsonl_input, schema) -> pa.Table:
    """One run in this process, one chunk: what every other run must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "out"
    run_batch(BatchOptions(inputs=[str(jsonl_input[0])], out=str(out), chunk_size=10_000,
                           progress=False), echo=_quiet)
    return results(out, schema)


def test_jsonl_results_and_errors(
    tmp_path, jsonl_input, reference, sim_cases, model, schema
) -> None:
    path, bad = jsonl_input
    table = reference
    assert table.num_rows == N
    items = table.column("item").to_pylist()
    assert items == sorted(items)
    assert set(items).isdisjoint(bad) and len(set(items) | bad) == N + len(bad)
    assert table.column("case_id").to_pylist() == [c.id for c in sim_cases[:N]]
    # the batch gives exactly what infer_batch gives for the same cases
    expected = infer_batch(model, [build_evidence(model, c) for c in sim_cases[:N]])
    np.testing.assert_array_equal(_probs(table, model), expected)
    names = [*model.conditions, "none"]
    top = [names[i] for i in expected.argmax(axis=1)]
    assert table.column("top_condition").to_pylist() == top
    np.testing.assert_array_equal(table.column("top_probability").to_numpy(), expected.max(1))
    for c in names:  # no draws: the interval collapses onto the probability
        np.testing.assert_array_equal(table.column(f"{c}_lo").to_numpy(),
                                      table.column(c).to_numpy())
        np.testing.assert_array_equal(table.column(f"{c}_hi").to_numpy(),
                                      table.column(c).to_numpy())
    assert all(s.startswith(f"{path}:") for s in table.column("source").to_pylist())


def test_only_the_few_valued_columns_are_stored_with_a_dictionary(tmp_path, jsonl_input,
                                                                   schema) -> None:
    import pyarrow.parquet as pq

    from neb_bayes.batch.table import DICTIONARY_COLUMNS

    out = tmp_path / "out"
    run_batch(BatchOptions(inputs=[str(jsonl_input[0])], out=str(out), chunk_size=50,
                           progress=False), echo=_quiet)
    meta = pq.ParquetFile(out / "results.parquet").metadata
    assert set(DICTIONARY_COLUMNS) <= set(schema.names)
    for i, name in enumerate(schema.names):
        encodings = meta.row_group(0).column(i).encodings
        assert ("RLE_DICTIONARY" in encodings) == (name in DICTIONARY_COLUMNS), name


def test_bad_cases_listed_with_every_error(tmp_path, jsonl_input) -> None:
    path, bad = jsonl_input
    out = tmp_path / "out"
    summary = run_batch(BatchOptions(inputs=[str(path)], out=str(out), chunk_size=25,
                                     progress=False), echo=_quiet)
    assert summary.failed == len(bad) and summary.rows == N and summary.errors == len(bad)
    records = errors(out)
    assert [r["item"] for r in records] == sorted(bad)
    for k, record in enumerate(records):
        line, paths = BAD_CASES[k % len(BAD_CASES)]
        assert {e["path"] for e in record["errors"]} == paths
        assert record["source"].startswith(f"{path}:")
        assert all(e["message"] for e in record["errors"])
    assert records[3]["case_id"] == "bad-many" and len(records[3]["errors"]) == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["chunk_size"] == 25
    assert manifest["intervals"].startswith("point: no parameter draws asked for")
    assert manifest["priors"]["fingerprint"] and manifest["neb_bayes_version"]
    assert manifest["inputs"][0]["path"] == str(path) and manifest["inputs"][0]["stat_hash"]


@pytest.mark.parametrize(("jobs", "chunk_size"), [(1, 7), (2, 16), (2, 1000)])
def test_same_output_whatever_jobs_and_chunk_size(tmp_path, jsonl_input, reference, schema,
                                                   jobs, chunk_size) -> None:
    out = tmp_path / "out"
    run_batch(BatchOptions(inputs=[str(jsonl_input[0])], out=str(out), jobs=jobs,
                           chunk_size=chunk_size, progress=False), echo=_quiet)
    table = results(out, schema)
    assert table.equals(reference)
    n_chunks = len(list((out / "chunks").glob("chunk-*.arrow")))
    assert n_chunks == -(-(N + len(jsonl_input[1])) // chunk_size)


def test_the_driver_runs_a_chunk_when_its_workers_have_enough(monkeypatch) -> None:
    """A local pool of N sends a chunk to its N - 1 workers while they hold fewer than two
    each, otherwise runs it in the driver; towards the end they are sent no more chunks than
    are left (one sent cannot be taken back: a worker could still hold two while the driver
    had none)."""
    import concurrent.futures as cf

    import neb_bayes.batch.runner as runner

    here: list[int] = []

    def run_here(task):
        here.append(task.index)
        fut = cf.Future()
        fut.set_result(None)
        return fut

    monkeypatch.setattr(runner, "_run_here", run_here)
    pool = runner._Pool(3)
    try:
        sent: list[cf.Future] = []
        monkeypatch.setattr(pool.pool, "submit", lambda fn, task: sent.append(cf.Future())
                            or sent[-1])

        def submit(k: int, left: int) -> None:
            pool.submit(runner.ChunkTask(index=k, first_item=0, items=[]), left=left)

        for k in range(6):
            submit(k, left=20 - k)
        assert here == [4, 5] and len(sent) == 4
        sent[0].set_result(None)           # a worker is done with one: it gets the next
        submit(6, left=14)
        assert here == [4, 5] and len(sent) == 5
        for f in sent[1:3]:
            f.set_result(None)             # two in flight, three chunks left: one more sent
        submit(7, left=3)
        submit(8, left=2)
        submit(9, left=1)
        assert here == [4, 5, 8, 9] and len(sent) == 6
    finally:
        pool.close()


def test_a_new_batch_starts_its_workers_while_it_counts_the_inputs(tmp_path, jsonl_input,
                                                                    reference, schema,
                                                                    monkeypatch) -> None:
    """A new batch of several chunks starts its workers (as many as its chunks need) before
    it counts its inputs whole, each loading the prior set the chunks will use; a batch of
    one chunk starts none, and a resumed batch decides once it knows what is left."""
    import neb_bayes.batch.runner as runner
    from neb_bayes.batch.inputs import count_items

    events: list[tuple] = []
    real_pool = runner._Pool

    class Recorded(real_pool):
        def __init__(self, jobs: int) -> None:
            events.append(("pool", jobs))
            super().__init__(jobs)

        def start(self, priors):
            events.append(("start", priors))
            super().start(priors)

    def counted(inputs, at_most=None):
        events.append(("count", at_most))
        return count_items(inputs, at_most)

    monkeypatch.setattr(runner, "_Pool", Recorded)
    monkeypatch.setattr(runner, "count_items", counted)
    n = N + len(jsonl_input[1])
    priors = str(Path("priors/default.nc").resolve())
    for size, jobs, want in [
            (-(-n // 2), 4, [("count", 4 * -(-n // 2)), ("pool", 2), ("start", priors),
                             ("count", None)]),
            (n, 4, [("count", 4 * n), ("count", None)])]:
        events.clear()
        out = tmp_path / f"out{size}"
        opts = BatchOptions(inputs=[str(jsonl_input[0])], out=str(out), jobs=jobs,
                            chunk_size=size, priors=priors, progress=False)
        run_batch(opts, echo=_quiet)
        assert events == want
        assert results(out, schema).equals(reference)
    (out.parent / f"out{-(-n // 2)}" / "results.parquet").unlink()
    (out.parent / f"out{-(-n // 2)}" / "chunks" / "chunk-000001.arrow").unlink()
    events.clear()
    run_batch(BatchOptions(inputs=[str(jsonl_input[0])], out=str(out.parent / f"out{-(-n // 2)}"),
                           jobs=4, chunk_size=-(-n // 2), priors=priors, progress=False),
              echo=_quiet)
    assert events == [("count", None)]           # one chunk left: it runs in the driver
    assert results(out.parent / f"out{-(-n // 2)}", schema).equals(reference)


def test_the_driver_runs_its_chunks_on_one_blas_thread(tmp_path, jsonl_input, reference,
                                                      schema, monkeypatch) -> None:
    """The chunks the driver runs beside its workers use one BLAS thread, as each worker
    does (more would take the workers' cores), including the BLAS the engine loads with the
    first chunk; the caller's thread counts are restored when the batch ends."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import neb_bayes.batch.runner as runner

    seen: list[list[int]] = []
    real = runner._run_here

    def recorded(task):
        seen.append([lib["num_threads"] for lib in threadpool_info()])
        return real(task)

    monkeypatch.setattr(runner, "_run_here", recorded)
    with threadpool_limits(2):
        before = [lib["num_threads"] for lib in threadpool_info()]
        out = tmp_path / "out"
        run_batch(BatchOptions(inputs=[str(jsonl_input[0])], out=str(out), jobs=2,
                               chunk_size=20, progress=False), echo=_quiet)
        assert [lib["num_threads"] for lib in threadpool_info()] == before
    assert results(out, schema).equals(reference)
    assert len(seen) >= 3 and all(n == [1] * len(n) for n in seen)


def test_no_more_workers_than_chunks(tmp_path, jsonl_input, reference, schema,
                                     monkeypatch) -> None:
    """One chunk left to do runs in the driver (no worker to start and load the model);
    two run on at most two workers, whatever --jobs asks for."""
    import neb_bayes.batch.runner as runner

    started: list[int] = []
    real = runner._Pool

    def pool(jobs: int):
        started.append(jobs)
        return real(jobs)

    monkeypatch.setattr(runner, "_Pool", pool)
    n = N + len(jsonl_input[1])
    for chunk_size in (n, -(-n // 2)):
        out = tmp_path / f"out{chunk_size}"
        run_batch(BatchOptions(inputs=[str(jsonl_input[0])], out=str(out), jobs=4,
                               chunk_size=chunk_size, progress=False), echo=_quiet)
        assert results(out, schema).equals(reference)
    assert started == [2]


def test_directory_and_csv_inputs(tmp_path, sim_cases, model, schema) -> None:
    cases = sim_cases[:40]
    write_case_dir(cases[:20], tmp_path / "dir")
    (tmp_path / "dir" / "zz-bad.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    write_csv(cases[20:], tmp_path / "c.csv")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["batch", str(tmp_path / "dir"), str(tmp_path / "c.csv"),
                                       "--out", str(out), "--chunk-size", "8"])
    assert result.exit_code == 0, result.output
    assert "batch done: 41 cases" in result.output
    table = results(out, schema)
    assert table.column("case_id").to_pylist() == [c.id for c in cases]
    assert table.column("source").to_pylist()[0] == str(tmp_path / "dir" / "case-0000000.json")
    assert table.column("source").to_pylist()[20] == f"{tmp_path / 'c.csv'}:2"
    expected = infer_batch(model, [build_evidence(model, c) for c in cases])
    np.testing.assert_allclose(_probs(table, model), expected, rtol=1e-9, atol=1e-15)
    (record,) = errors(out)
    assert record["source"] == str(tmp_path / "dir" / "zz-bad.yaml")
    assert record["errors"][0]["path"] == "<file>"


@pytest.mark.parametrize(("fmt", "jobs"), [("csv", 1), ("jsonl", 1), ("parquet", 2)])
def test_other_formats_and_per_case_reports(tmp_path, sim_cases, model, schema, fmt,
                                            jobs) -> None:
    """Per-case reports, whoever writes them (the driver, or, with ``--jobs 2``, a worker
    its chunk's too), end up under ``reports/`` but for the duplicate's."""
    cases = [*sim_cases[:6], sim_cases[0]]  # the last one repeats an id
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(case_to_dict(c)) + "\n" for c in cases),
                    encoding="utf-8")
    out = tmp_path / "out"
    summary = run_batch(BatchOptions(inputs=[str(path)], out=str(out), fmt=fmt, chunk_size=2,
                                     per_case_reports=True, progress=False, jobs=jobs),
                        echo=_quiet)
    assert summary.duplicates == 1 and summary.rows == 6
    table = results(out, schema, fmt)
    assert table.column("case_id").to_pylist() == [c.id for c in cases[:6]]
    expected = infer_batch(model, [build_evidence(model, c) for c in cases[:6]])
    np.testing.assert_array_equal(_probs(table, model), expected)
    (dup,) = errors(out)
    assert dup["item"] == 6 and dup["errors"][0]["path"] == "id"
    reports = sorted(p.name for p in (out / "reports").iterdir())
    assert reports == sorted(f"{c.id}.json" for c in cases[:6])
    report = json.loads((out / "reports" / f"{cases[1].id}.json").read_text())
    assert report["case_id"] == cases[1].id
    assert report["conditions"]["diabetes"]["probability"] == pytest.approx(
        table.column("diabetes")[1].as_py(), abs=1e-6)
    assert not list((out / "chunks").glob("*.reports"))  # staged reports moved


def test_resume_refused_on_different_batch(tmp_path, sim_cases) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(case_to_dict(c)) + "\n" for c in sim_cases[:12]),
                    encoding="utf-8")
    out = tmp_path / "out"
    args = ["batch", str(path), "--out", str(out), "--chunk-size", "5"]
    runner = CliRunner()
    assert runner.invoke(main, args).exit_code == 0
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "12 skipped" in again.output
    # the same input by another spelling of its path is the same batch
    relative = os.path.relpath(path)
    assert relative != str(path)
    respelled = runner.invoke(main, ["batch", relative, *args[2:]])
    assert respelled.exit_code == 0 and "12 skipped" in respelled.output
    changed = runner.invoke(main, [*args[:-1], "6"])
    assert changed.exit_code == 2 and "chunk_size" in changed.output
    assert "--restart" in changed.output
    with open(path, "a", encoding="utf-8") as fh:  # the input grows
        fh.write(json.dumps(case_to_dict(sim_cases[12])) + "\n")
    with pytest.raises(ResumeRefused, match="inputs"):
        run_batch(BatchOptions(inputs=[str(path)], out=str(out), chunk_size=5,
                               progress=False), echo=_quiet)
    # the same --priors path holding other parameter values is a different batch
    import shutil

    import h5py

    from neb_bayes.model.spec import DEFAULT_PRIOR_FILE

    priors = tmp_path / "p.nc"
    shutil.copyfile(DEFAULT_PRIOR_FILE.with_suffix(".nc"), priors)
    other = tmp_path / "out-priors"
    with_priors = ["batch", str(path), "--out", str(other), "--priors", str(priors)]
    assert runner.invoke(main, with_priors).exit_code == 0
    with h5py.File(priors, "r+") as fh:
        values = fh["posterior/prior_base__thyroid"]
        values[0, 0, 0] += 0.01
    moved = runner.invoke(main, with_priors)
    assert moved.exit_code == 2 and "priors" in moved.output
    restarted = runner.invoke(main, [*args, "--restart"])
    assert restarted.exit_code == 0 and "13 processed" in restarted.output
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("x")
    refused = runner.invoke(main, ["batch", str(path), "--out", str(foreign)])
    assert refused.exit_code == 2 and "not a batch output directory" in refused.output
    # hidden files (a file manager's, a .gitkeep) are not a reason to refuse, and are kept
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".DS_Store").write_text("x")
    (hidden / ".gitkeep").write_text("")
    assert runner.invoke(main, ["batch", str(path), "--out", str(hidden)]).exit_code == 0
    assert runner.invoke(main, ["batch", str(path), "--out", str(hidden),
                                "--restart"]).exit_code == 0
    assert (hidden / ".DS_Store").read_text() == "x" and (hidden / ".gitkeep").exists()


def test_progress_lines_when_not_a_terminal(tmp_path, sim_cases) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(case_to_dict(c)) + "\n" for c in sim_cases[:9]),
                    encoding="utf-8")
    lines: list[str] = []
    run_batch(BatchOptions(inputs=[str(path)], out=str(tmp_path / "out"), chunk_size=3,
                           log_every=1, progress=None), echo=lines.append)
    progress = [x for x in lines if "cases/s" in x]
    assert len(progress) == 3 and "9/9 cases" in progress[-1] and "ETA" in progress[-1]


def test_intervals_from_parameter_draws(tmp_path, sim_cases, model, schema) -> None:
    """With --draws, each probability gets an interval from the prior set's draws."""
    from neb_bayes.batch.export import write_jsonl

    src = tmp_path / "few.jsonl"
    write_jsonl(sim_cases[:12], src)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["batch", str(src), "--out", str(out), "--draws", "100",
                                    "--no-progress"])
    assert res.exit_code == 0, res.output
    table = results(out, schema)
    for c in [*model.conditions, "none"]:
        p = np.asarray(table[c])
        lo, hi = np.asarray(table[f"{c}_lo"]), np.asarray(table[f"{c}_hi"])
        assert np.all((0 <= lo) & (lo <= hi) & (hi <= 1)) and np.all((0 <= p) & (p <= 1))
    assert np.any(np.asarray(table["none_hi"]) - np.asarray(table["none_lo"]) > 1e-3)
    # each bound is the quantile of the case's probabilities under the first 100 draws, at
    # the configured interval probability (computed case by case in the worker: a chunk
    # never holds every case's probabilities under every draw)
    from neb_bayes import config
    from neb_bayes.inference.batch_exact import infer_batch_draws
    from neb_bayes.priorset import load_prior_set

    ps = load_prior_set(None)
    per_draw = infer_batch_draws(ps.model, ps.draws.subset(slice(0, 100)),
                                 [build_evidence(ps.model, c) for c in sim_cases[:12]])
    q = (1 - config.INTERVAL_PROB) / 2
    lo_ref, hi_ref = np.quantile(per_draw, [q, 1 - q], axis=0)
    names = [*model.conditions, "none"]
    got_lo = np.column_stack([np.asarray(table[f"{c}_lo"]) for c in names])
    got_hi = np.column_stack([np.asarray(table[f"{c}_hi"]) for c in names])
    np.testing.assert_array_equal(got_lo, lo_ref)
    np.testing.assert_array_equal(got_hi, hi_ref)
    # chunks of the size for a case's work with draws (point probabilities: larger ones)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["chunk_size"] == 1000
    assert manifest["intervals"] == (f"equal-tailed {config.INTERVAL_PROB:.0%} intervals of "
                                     f"each probability over 100 of the prior set's "
                                     f"{ps.draws.n_draws} parameter draws")
    # a different number of draws is a different batch: resuming is refused
    again = CliRunner().invoke(main, ["batch", str(src), "--out", str(out), "--draws", "50",
                                      "--no-progress"])
    assert again.exit_code == 2


def test_a_batch_with_draws_keeps_freed_memory_in_the_worker(monkeypatch):
    """A batch worker computing intervals frees each case's factors and tables (megabytes)
    before the next; with glibc's default thresholds much of that went back to the system
    and was faulted in again case after case (10,000 work-ups x 1,000 draws through
    ``neb-bayes batch --jobs 2``: 1.2 million page faults and 3.5 s of system time, 225,000
    and 1.4-1.9 s with it kept, docs/performance-history.md).  The worker asks for it to be
    kept (:func:`~neb_bayes.allocator.retain_freed_memory`) before a chunk's cases,
    and the intervals are those of the cases' own draws."""
    from neb_bayes import allocator, config
    from neb_bayes.batch import worker
    from neb_bayes.inference.batch_exact import infer_batch_draws
    from neb_bayes.priorset import load_prior_set
    from neb_bayes.simulate import simulate

    calls = []
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: calls.append(1) or True)
    ps = load_prior_set()
    draws = ps.draws.subset(np.arange(40))
    evs = [build_evidence(ps.model, s.case) for s in simulate(ps.model, 3, seed=5)]
    probs = infer_batch(ps.model, evs)
    lo, hi = worker.interval_bounds_by_case(ps.model, draws, evs, probs)
    assert calls == [1]
    per_draw = infer_batch_draws(ps.model, draws, evs)
    q = (1.0 - config.INTERVAL_PROB) / 2.0
    want_lo, want_hi = np.quantile(per_draw, [q, 1.0 - q], axis=0)
    np.testing.assert_array_equal(lo, want_lo)
    np.testing.assert_array_equal(hi, want_hi)


def test_a_chunk_file_read_in_part_holds_the_same_columns(tmp_path, sim_cases, schema) -> None:
    """The merge's duplicate check reads two columns of each chunk file (the others are not
    read): the same values as reading the whole file; a file whose columns differ from the
    batch's is refused either way."""
    from neb_bayes.batch.store import OutputDir

    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(case_to_dict(c)) + "\n" for c in sim_cases[:9]),
                    encoding="utf-8")
    out = tmp_path / "out"
    run_batch(BatchOptions(inputs=[str(path)], out=str(out), chunk_size=4, progress=False),
              echo=_quiet)
    store = OutputDir(out, "parquet")
    for k in range(3):
        whole = store.read_chunk(k, schema)
        part = store.read_chunk(k, schema, ("item", "case_id"))
        assert part.column_names == ["item", "case_id"]
        assert part.equals(whole.select(["item", "case_id"]))
    other = pa.schema([pa.field("item", pa.string()) if f.name == "item" else f
                       for f in schema])
    for columns in (None, ("item", "case_id")):
        with pytest.raises(ValueError, match="columns differ"):
            store.read_chunk(0, other, columns)


def test_a_local_worker_writes_its_chunk_and_sends_no_table(tmp_path, sim_cases, schema) -> None:
    """Given the output directory (a local pool's task), a worker writes its chunk's table,
    error records and reports itself and sends back only the error records and counts: the
    files hold what the chunk's result would have carried."""
    from neb_bayes.batch.inputs import RawItem
    from neb_bayes.batch.store import OutputDir
    from neb_bayes.batch.task import ChunkTask, run_chunk
    from neb_bayes.batch.worker import process_chunk

    items = [RawItem(f"c:{i}", "json", json.dumps(case_to_dict(c)))
             for i, c in enumerate(sim_cases[:5])]
    items.insert(2, RawItem("c:bad", "json", BAD_CASES[0][0]))
    for reports in (False, True):
        task = ChunkTask(index=3, first_item=30, items=items, reports=reports)
        want = process_chunk(task)
        out = tmp_path / f"out-{reports}"
        sent = run_chunk(replace(task, out=str(out)))
        assert sent.table is None and sent.reports == []
        assert sent.errors == want.errors and len(sent.errors) == 1
        assert sent.n_items == want.n_items == 6
        store = OutputDir(out, "parquet")
        assert store.is_done(3) and not store.is_done(2)
        assert store.read_chunk(3, schema).equals(want.table)
        assert store.read_chunk_errors(3) == want.errors
        staged = sorted(p.name for p in store.chunk_reports_dir(3).glob("*.json"))
        assert staged == sorted(f"{item:012d}.json" for item, _ in want.reports)
        assert len(staged) == (5 if reports else 0)


def test_the_merge_maps_a_chunk_file_without_copying_it(tmp_path, sim_cases, schema) -> None:
    """A chunk's table is read from its file's pages (memory-mapped), not copied into new
    buffers; a chunk file written LZ4-compressed, as earlier versions wrote them, is read
    too, and a finished batch merged again from such files gives the same results."""
    from neb_bayes.batch.store import OutputDir

    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(case_to_dict(c)) + "\n" for c in sim_cases[:40]),
                    encoding="utf-8")
    out = tmp_path / "out"
    opts = BatchOptions(inputs=[str(path)], out=str(out), chunk_size=20, progress=False)
    run_batch(opts, echo=_quiet)
    want = results(out, schema)
    store = OutputDir(out, "parquet")
    before = pa.total_allocated_bytes()
    table = store.read_chunk(0, schema)
    assert table.num_rows == 20
    assert pa.total_allocated_bytes() - before < table.nbytes // 10
    for k in range(2):     # rewritten as an earlier version wrote them (a new file: the
        old = store.read_chunk(k, schema)      # old one's pages stay mapped while read)
        tmp = tmp_path / "lz4.arrow"
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(
                sink, schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
            writer.write_table(old)
        os.replace(tmp, store.chunk_path(k))
        assert store.read_chunk(k, schema).equals(old)
    (out / "results.parquet").unlink()
    summary = run_batch(opts, echo=_quiet)
    assert summary.skipped == 40 and summary.processed == 0
    assert results(out, schema).equals(want)


@pytest.mark.parametrize("n", [0, 1, 7])
def test_the_results_table_is_what_pa_array_makes(n, model, schema) -> None:
    """The table's columns are made from their buffers (not ``pa.array``, whose first call
    imports pandas): the same table as ``pa.array`` makes, non-ASCII text included."""
    from neb_bayes.batch.table import probability_columns, results_table

    rng = np.random.default_rng(n)
    names = probability_columns(model.conditions)
    probs = rng.dirichlet(np.ones(len(names)), size=n)
    lo, hi = probs * 0.9, np.minimum(probs * 1.1, 1.0)
    items = list(range(3, 3 + n))
    ids = [f"case-{i}-é€𝄞" for i in items]
    sources = [f"/data/ü/{i}.json" for i in items]
    used, not_used, warn = rng.integers(0, 9, (3, n)).tolist()
    unassessed = ["", "pituitary;gonadal", "prolactin"] * n
    got = results_table(model.conditions, items, ids, sources, probs, used, not_used, warn,
                        unassessed[:n], (lo, hi))
    top = probs.argmax(1) if n else np.zeros(0, dtype=int)
    cols = {"item": pa.array(items, pa.int64()), "case_id": pa.array(ids, pa.string()),
            "source": pa.array(sources, pa.string())}
    for j, c in enumerate(names):
        cols[c] = pa.array(probs[:, j], pa.float64())
    cols["top_condition"] = pa.array([names[k] for k in top], pa.string())
    cols["top_probability"] = pa.array(probs[np.arange(n), top], pa.float64())
    cols["n_results_used"] = pa.array(used, pa.int32())
    cols["n_not_used"] = pa.array(not_used, pa.int32())
    cols["n_warnings"] = pa.array(warn, pa.int32())
    cols["unassessed_axes"] = pa.array(unassessed[:n], pa.string())
    for j, c in enumerate(names):
        cols[f"{c}_lo"] = pa.array(lo[:, j], pa.float64())
        cols[f"{c}_hi"] = pa.array(hi[:, j], pa.float64())
    want = pa.table(cols, schema=schema)
    assert got.schema.equals(want.schema, check_metadata=True)
    assert got.equals(want)
    got.validate(full=True)


def test_a_batch_does_not_import_pandas(tmp_path, sim_cases) -> None:
    """Neither a chunk's work nor the driver's merge needs pandas (importing it was ~0.2 s
    of each worker's start-up and of the driver): a batch with a repeated id, its chunks
    run in the driver."""
    import subprocess
    import sys

    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(case_to_dict(c)) + "\n"
                            for c in [*sim_cases[:5], sim_cases[0]]), encoding="utf-8")
    code = ("import sys; from neb_bayes.batch import BatchOptions, run_batch; "
            f"s = run_batch(BatchOptions(inputs=[{str(path)!r}], out={str(tmp_path / 'o')!r}, "
            "chunk_size=4, progress=False), echo=lambda t: None); "
            "assert s.rows == 5 and s.duplicates == 1; print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=300), st.integers(1, 50))
def test_the_first_case_with_an_id_is_found_chunk_by_chunk(ids, size) -> None:
    """The merge's record of ids met (sorted runs of hashes) gives each case the first
    earlier case with its id, chunk after chunk, as a dictionary would."""
    from neb_bayes.batch.store import _FirstItems

    seen, want = {}, []
    for item, i in enumerate(ids):
        want.append(seen[i] if i in seen else -1)
        seen.setdefault(i, item)
    record, got = _FirstItems(), []
    for lo in range(0, len(ids), size):
        part = np.array(ids[lo:lo + size], dtype=np.uint64) * np.uint64(2**40 + 7)
        got += record.first_of(part, np.arange(lo, lo + part.size)).tolist()
    assert got == want
    assert sum(h.size for h, _ in record.runs) == len(set(ids))
    assert len(record.runs) <= max(1, 2 * int(np.log2(len(ids) + 1)) + 1)


@pytest.mark.parametrize("chunk_size", [1, 3, 8])
def test_repeated_ids_across_chunks_merge_as_in_one_chunk(tmp_path, sim_cases,
                                                          chunk_size) -> None:
    """Ids repeated within and across chunks: the first case of each id is kept, each
    repeat listed in the errors with that first case's item, whatever the chunking."""
    order = [0, 1, 0, 2, 1, 1, 3, 0, 4, 2, 5]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(case_to_dict(sim_cases[i])) + "\n" for i in order),
                    encoding="utf-8")
    runs = {}
    for size in (chunk_size, 100):
        out = tmp_path / f"out{size}"
        summary = run_batch(BatchOptions(inputs=[str(path)], out=str(out), chunk_size=size,
                                         progress=False), echo=_quiet)
        runs[size] = (summary, (out / "results.parquet").read_bytes(),
                      (out / "errors.jsonl").read_text())
    (summary, table_bytes, errors_text), (_, want_table, want_errors) = runs.values()
    assert table_bytes == want_table and errors_text == want_errors
    assert summary.duplicates == 5 and summary.rows == 6
    # the summary counts them as read, and says which error records are theirs
    assert "11 processed (11 read, 0 failed)" in summary.text()
    assert "errors: 5 (errors.jsonl), of which 5 for a repeated id" in summary.text()
    firsts = {}
    want = [(item, firsts.setdefault(i, item)) for item, i in enumerate(order)
            if firsts.setdefault(i, item) != item]
    got = [(r["item"], int(r["errors"][0]["message"].split("input item ")[1].split()[0]))
           for r in map(json.loads, errors_text.splitlines())]
    assert got == want


def _cli_batch_in_a_subprocess(tmp_path: Path, cases: list, args: list[str], after: str,
                               env: dict[str, str] | None = None, before: str = "") -> str:
    """``neb-bayes batch`` of ``cases`` (as JSON Lines) with ``args`` in a new Python
    process, between the code ``before`` and ``after`` there; the last line that process
    prints."""
    import subprocess
    import sys

    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(case_to_dict(c)) + "\n" for c in cases),
                    encoding="utf-8")
    # (main, not the console entry run(): a successful run() ends the process at once, and
    # ``after`` must run in it)
    code = (before + "import sys; from neb_bayes.cli import main; "
            f"sys.argv = ['neb-bayes', 'batch', {str(path)!r}, '--out', "
            f"{str(tmp_path / 'o')!r}, *{args!r}, '--no-progress']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            + after)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    return out.stdout.strip().splitlines()[-1]


def test_the_driver_starts_its_worker_before_it_imports_the_engine(tmp_path,
                                                                   sim_cases) -> None:
    """With ``--jobs 2`` the driver starts one worker process, before it imports the engine
    and readers, their compiled kernels or scipy (~0.45 s of its start-up, which would delay
    the worker's start); then it runs chunks itself whenever the worker has two queued
    (here most of six: the worker takes ~1 s to start), each on one BLAS thread, including
    the BLAS the engine loads with the first (as its worker).  pandas is never imported."""
    mods = ("numba", "scipy", "pandas", "neb_bayes.batch.worker", "neb_bayes.inference.exact",
            "neb_bayes.inference.vectorised", "neb_bayes.report")
    before = ("import sys, multiprocessing.process as mpp\n"
              "import neb_bayes.batch.runner as runner\n"
              "from threadpoolctl import threadpool_info\n"
              "starts, start = [], mpp.BaseProcess.start\n"
              "def counted(self):\n"
              f"    starts.append(sorted(m for m in {mods!r} if m in sys.modules))\n"
              "    return start(self)\n"
              "mpp.BaseProcess.start = counted\n"
              "threads, here = [], runner._run_here\n"
              "def run_here(task):\n"
              "    threads.append(max(lib['num_threads'] for lib in threadpool_info()))\n"
              "    return here(task)\n"
              "runner._run_here = run_here\n")
    last = _cli_batch_in_a_subprocess(
        tmp_path, sim_cases[:12], ["--jobs", "2", "--chunk-size", "2"],
        "print(starts, 'neb_bayes.batch.worker' in sys.modules, 'pandas' in sys.modules, "
        "len(threads) >= 2, set(threads))", before=before)
    assert last == "[[]] True False True {1}"
    assert sorted(p.name for p in (tmp_path / "o" / "chunks").glob("*.arrow")) == [
        f"chunk-{k:06d}.arrow" for k in range(6)]


@pytest.mark.parametrize("preset", [None, "mimalloc"])
def test_the_batch_command_takes_arrows_buffers_from_the_c_library(tmp_path, sim_cases,
                                                                    preset) -> None:
    """``neb-bayes batch`` has Arrow allocate from the C library (whose freed memory the
    driver keeps) rather than mimalloc (which gives it back, so every chunk's results were
    faulted in again), unless the user chose a pool; and the choice is not made once pyarrow
    has been imported, where it would no longer act."""
    import os

    from neb_bayes.allocator import ARROW_POOL_VARIABLE, arrow_pool_from_libc

    before = os.environ.get(ARROW_POOL_VARIABLE)
    assert not arrow_pool_from_libc()                  # (pyarrow is imported here)
    assert os.environ.get(ARROW_POOL_VARIABLE) == before
    env = {k: v for k, v in os.environ.items() if k != ARROW_POOL_VARIABLE}
    if preset:
        env[ARROW_POOL_VARIABLE] = preset
    last = _cli_batch_in_a_subprocess(
        tmp_path, sim_cases[:2], ["--jobs", "1"],
        "import pyarrow\nprint(pyarrow.default_memory_pool().backend_name)", env=env)
    assert last == (preset or "system")


@pytest.mark.parametrize(("opts", "size"), [({}, 2000), ({"per_case_reports": True}, 1000),
                                             ({"chunk_size": 7}, 7)])
def test_the_default_chunk_size_follows_the_work_per_case(tmp_path, sim_cases, opts,
                                                           size) -> None:
    """Point probabilities in chunks of 2,000 (the engine's fixed costs spread over more
    cases); per-case reports (and draws: test_intervals_from_parameter_draws) in chunks of
    1,000, whose work is far more than those costs; a chunk size given is used."""
    from neb_bayes.batch.export import write_jsonl
    from neb_bayes.batch.runner import default_chunk_size

    assert default_chunk_size(draws=True, per_case_reports=False) == 1000
    path = tmp_path / "few.jsonl"
    write_jsonl(sim_cases[:3], path)
    out = tmp_path / "out"
    summary = run_batch(BatchOptions(inputs=[str(path)], out=str(out), progress=False, **opts),
                        echo=_quiet)
    assert summary.rows == 3
    assert json.loads((out / "manifest.json").read_text())["chunk_size"] == size


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=12), st.integers(1, 7),
       st.sets(st.integers(0, 12)))
def test_chunks_cut_runs_of_lines_where_they_end(runs, size, done) -> None:
    """Items that stand for several lines (runs of a JSON Lines file's spans) and single
    items are cut into chunks of ``size`` items by position, as one item per line would be;
    a chunk already done comes without its items."""
    from array import array

    from neb_bayes.batch.inputs import RawItem, SpanRun, item_count
    from neb_bayes.batch.runner import _chunks

    items, lines, number = [], [], 0
    for r in runs:                     # 0: a single (text) item; k > 0: a run of k lines
        if r == 0:
            items.append(RawItem(f"t{number}", "json", "{}"))
            lines.append(("t", number))
        else:
            nums = array("q", range(number, number + r))
            items.append(RawItem("f", "spans", SpanRun("f", (0, 0), nums, nums, nums)))
            lines += [("f", n) for n in nums]
        number += max(r, 1)
    got, first_expected, sizes = [], 0, []
    for k, first, n, chunk in _chunks(iter(items), size, lambda k: k in done):
        assert first == first_expected and k == len(sizes)
        first_expected += n
        sizes.append(n)
        if k in done:
            assert chunk is None
            got += [None] * n
            continue
        assert sum(item_count(i) for i in chunk) == n
        for i in chunk:
            got += ([("f", x) for x in i.data.numbers] if i.kind == "spans"
                    else [("t", int(i.source[1:]))])
    # every chunk full but the last; each line in its place
    assert sizes == [min(size, len(lines) - s) for s in range(0, len(lines), size)]
    assert [g for g in got if g is not None] == [
        want for g, want in zip(got, lines, strict=True) if g is not None]


def test_a_chunk_that_fails_stops_the_batch_without_quoting_its_message(tmp_path, sim_cases,
                                                                        monkeypatch) -> None:
    """A chunk failing as a whole (a bug) stops the batch with how to resume, exit 1; the
    exception's message, which may quote case data, is left out."""
    import neb_bayes.batch.runner as runner
    from neb_bayes.batch.export import write_jsonl

    def broken(task):
        raise ValueError("cannot convert the value 4.25")

    monkeypatch.setattr(runner, "run_chunk", broken)
    monkeypatch.delenv("NEB_BAYES_TRACEBACK", raising=False)
    src = tmp_path / "few.jsonl"
    write_jsonl(sim_cases[:3], src)
    res = CliRunner().invoke(main, ["batch", str(src), "--out", str(tmp_path / "out"),
                                    "--no-progress"])
    assert res.exit_code == 1
    assert "chunk 0 failed (ValueError)" in res.output
    assert "rerun the same command to resume" in res.output and "4.25" not in res.output
    # the manifest says the batch failed (not "running"), and a rerun resumes it
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    monkeypatch.undo()
    rerun = CliRunner().invoke(main, ["batch", str(src), "--out", str(tmp_path / "out"),
                                      "--no-progress"])
    assert rerun.exit_code == 0, rerun.output
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["status"] == "complete"


def test_an_output_directory_that_cannot_be_made_is_a_usage_error(tmp_path, sim_cases) -> None:
    from neb_bayes.batch.export import write_jsonl

    src = tmp_path / "few.jsonl"
    write_jsonl(sim_cases[:2], src)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = CliRunner().invoke(main, ["batch", str(src), "--out", str(blocker / "out"),
                                    "--no-progress"])
    assert res.exit_code == 2
    assert f"--out {blocker / 'out'}: cannot create or write this directory" in res.output


def test_more_draws_than_the_prior_set_has_is_said(tmp_path, sim_cases) -> None:
    from neb_bayes.batch.export import write_jsonl
    from neb_bayes.priorset import load_prior_set

    src = tmp_path / "few.jsonl"
    write_jsonl(sim_cases[:2], src)
    n = load_prior_set(None).draws.n_draws
    res = CliRunner().invoke(main, ["batch", str(src), "--out", str(tmp_path / "out"),
                                    "--draws", str(n + 1), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert f"--draws {n + 1}: the prior set has {n}; all are used" in res.output


@pytest.mark.parametrize(("change", "told"), [
    ({"scheduler": "not-an-address"}, "not a Dask scheduler address"),
    ({"scheduler": "tcp://::1"}, "not a Dask scheduler address"),
    ({"draws": -5}, "--draws must be"),
    ({"draws": 5.5}, "draws must be a whole number"),
    ({"jobs": "2"}, "jobs must be a whole number"),
])
def test_bad_options_from_python_are_usage_errors_before_anything_is_written(
        tmp_path, sim_cases, change, told) -> None:
    """run_batch's options are checked as the command line's are: a BatchUsageError naming
    the option, before the output directory is made or a scheduler is called (a malformed
    scheduler address made the Dask client fail only after a minute, as an internal error)."""
    from dataclasses import replace

    from neb_bayes.batch import BatchUsageError
    from neb_bayes.batch.export import write_jsonl

    src = tmp_path / "few.jsonl"
    write_jsonl(sim_cases[:2], src)
    out = tmp_path / "out"
    opts = replace(BatchOptions(inputs=[str(src)], out=str(out), progress=False), **change)
    with pytest.raises(BatchUsageError, match=told):
        run_batch(opts, echo=_quiet)
    assert not out.exists()


def test_one_input_path_may_be_given_alone(tmp_path, sim_cases) -> None:
    from neb_bayes.batch.export import write_jsonl

    src = tmp_path / "few.jsonl"
    write_jsonl(sim_cases[:2], src)
    summary = run_batch(BatchOptions(inputs=str(src), out=str(tmp_path / "out"),
                                     progress=False), echo=_quiet)
    assert summary.processed == 2


@pytest.mark.parametrize("before", ["new", "half-done"])
def test_an_unreachable_scheduler_is_a_usage_error_that_leaves_out_to_resume(
        tmp_path, sim_cases, schema, monkeypatch, before) -> None:
    """A well-formed --scheduler nobody answers at: exit 2 naming it once the connection
    times out, before the manifest says "running" (a new --out holds no manifest, a resumed
    one keeps its own), and a rerun without --scheduler starts or resumes the batch."""
    pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    from neb_bayes.batch import runner

    monkeypatch.setattr(runner, "SCHEDULER_CONNECT_TIMEOUT_S", 0.5)
    src = tmp_path / "c.jsonl"
    with open(src, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(case_to_dict(c)) + "\n" for c in sim_cases[:30])
    out = tmp_path / "out"
    args = ["batch", str(src), "--out", str(out), "--chunk-size", "10", "--no-progress"]
    if before == "half-done":
        res = CliRunner().invoke(main, [*args, "--jobs", "1"])
        assert res.exit_code == 0, res.output
        # as an interrupted run leaves it: chunk 1 not done, no results, "running"
        for part in (out / "chunks").glob("chunk-000001*"):
            part.unlink()
        (out / "results.parquet").unlink()
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["status"] = "running"
        (out / "manifest.json").write_text(json.dumps(manifest))
    kept = (out / "manifest.json").read_text() if before == "half-done" else None
    address = "tcp://127.0.0.1:9"
    res = CliRunner().invoke(main, [*args, "--scheduler", address])
    assert res.exit_code == 2, res.output
    assert f"--scheduler {address}: cannot reach the Dask scheduler" in res.output
    assert "internal error" not in res.output
    assert not any(str(c.measurements[0].value) in res.output for c in sim_cases[:30])
    manifest = out / "manifest.json"
    assert (manifest.read_text() if manifest.exists() else None) == kept
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert ("resuming" in res.output) == (before == "half-done")
    assert json.loads(manifest.read_text())["status"] == "complete"
    assert results(out, schema).num_rows == 30
