"""Input streaming and the wide CSV column convention."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neb_bayes.batch import inputs
from neb_bayes.batch.csv_cases import plan_header, row_to_case, sparse_row
from neb_bayes.batch.export import case_to_dict, write_csv
from neb_bayes.batch.inputs import (
    InputError,
    RawItem,
    count_items,
    describe_inputs,
    item_count,
    iter_items,
    materialise,
    read_spans,
    split_item,
)
from neb_bayes.batch.worker import ChunkTask, process_chunk
from neb_bayes.case import read_case


@pytest.mark.parametrize(
    ("column", "analyte", "unit", "specimen", "collected", "day"),
    [
        ("TSH_mIU_per_L", "TSH", "mIU/L", None, None, None),
        ("FT4_pmol_per_L", "FT4", "pmol/L", None, None, None),
        ("free_T4_ng_per_dL", "free_T4", "ng/dL", None, None, None),
        ("glucose_fasting_mg_per_dL", "glucose_fasting", "mg/dL", None, None, None),
        ("cortisol_acth_stim_30_nmol_per_L", "cortisol_acth_stim_30", "nmol/L", None, None,
         None),
        ("cortisol_ug_per_dL__serum__t0800", "cortisol", "ug/dL", "serum", "08:00", None),
        ("cortisol_nmol_per_L__t2300__saliva", "cortisol", "nmol/L", "saliva", "23:00", None),
        ("pra_ng_per_mL_per_h", "pra", "ng/mL/h", None, None, None),
        ("ufc_nmol_per_24h__urine_24h", "ufc", "nmol/24h", "urine_24h", None, None),
        ("HbA1c_pct", "HbA1c", "%", None, None, None),
        ("TSH_mIU_per_L__d30", "TSH", "mIU/L", None, None, 30.0),
    ],
)
def test_measurement_columns(column, analyte, unit, specimen, collected, day) -> None:
    (spec,) = plan_header((column,)).columns
    assert spec.kind == "measurement"
    assert (spec.key, spec.unit, spec.specimen, spec.collected, spec.day) == (
        analyte, unit, specimen, collected, day)


def test_reserved_and_other_columns() -> None:
    plan = plan_header(("ID", "Sex", "age", "pregnant", "medications", "sym_fatigue",
                        "symptoms_absent", "mrn", "notes"))
    kinds = [c.kind for c in plan.columns]
    assert kinds == ["id", "text", "number", "bool", "list", "symptom", "symptoms",
                     "other", "other"]
    assert plan_header(("id", "TSH_mIU_per_L", "TSH_mIU_per_L")).errors


def test_row_to_case_reads_like_a_case_file() -> None:
    header = ["id", "sex", "age", "pregnant", "medications", "context", "sym_fatigue",
              "sym_tremor", "sym_goiter", "TSH_mIU_per_L", "FT4_pmol_per_L",
              "cortisol_ug_per_dL__serum__t0800", "extra"]
    cells = ["p1", "F", "46", "0", "levothyroxine 100 µg daily; biotin 10 mg",
             "night_shift_worker", "1", "0", "", "<0.01", "31.5", "12", "x"]
    data, labels, errs = row_to_case(header, cells)
    assert errs == []
    case = read_case(data, source_name="t.csv:2")
    assert case.id == "p1" and case.patient.sex == "F" and case.patient.age == 46
    assert case.patient.pregnant is False
    assert [m.raw for m in case.patient.medications] == ["levothyroxine 100 µg daily",
                                                          "biotin 10 mg"]
    assert case.patient.context == ("night_shift_worker",)
    assert case.symptoms.present == {"fatigue"} and case.symptoms.absent == {"tremor"}
    tsh = case.measurements[0]
    assert (tsh.analyte, tsh.censor, tsh.value) == ("tsh", "left", 0.01)
    cortisol = case.measurements[2]
    assert cortisol.hour == 8.0 and cortisol.specimen == "serum"
    assert labels["measurements[1]"] == "FT4_pmol_per_L"
    assert any("extra" in n.item for n in case.not_used)


def test_csv_errors_name_the_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,age,TSH_mIU_per_L,FT4_kg,sym_fatigue\n"
                    "a,-3,-1,12,maybe\n", encoding="utf-8")
    items = list(iter_items([path]))
    result = process_chunk(ChunkTask(index=0, first_item=0, items=items))
    assert result.table.num_rows == 0
    (record,) = result.errors
    by_path = {e["path"]: e for e in record["errors"]}
    assert by_path["patient.age"]["column"] == "age"
    assert by_path["measurements[0].value"]["column"] == "TSH_mIU_per_L"
    assert by_path["measurements[1].unit"]["column"] == "FT4_kg"
    assert "sym_fatigue" in by_path
    assert record["source"] == f"{path}:2" and record["case_id"] == "a"


def test_jsonl_streaming_blank_lines_bom_and_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": 1}\n\n  \n{"id": 2}\n\xff\xfe\n{"id": 3}')
    items = list(iter_items([path]))
    assert [i.source for i in items] == [f"{path}:1", f"{path}:4", f"{path}:5", f"{path}:6"]
    assert [i.kind for i in items] == ["json", "json", "error", "json"]
    assert json.loads(items[0].data) == {"id": 1}
    assert count_items([path]) == 4
    blank_bom = tmp_path / "b.jsonl"
    blank_bom.write_bytes(b'\xef\xbb\xbf\n{"id": 1}\n \t\r\n')
    assert count_items([blank_bom]) == len(list(iter_items([blank_bom]))) == 1


@pytest.mark.parametrize("spans", [False, True])
def test_a_byte_order_mark_at_the_start_of_any_line_is_skipped(tmp_path: Path, spans) -> None:
    """Two files written with a byte order mark, joined (``cat a.jsonl b.jsonl``): the
    second's mark, now in the middle, is skipped as the first's is, in either reading; a
    line of a mark alone is blank."""
    path = tmp_path / "joined.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": 1}\n{"id": 2}\n\xef\xbb\xbf{"id": 3}\n'
                     b'\xef\xbb\xbf\n\xef\xbb\xbf  {"id": 4}')
    items = _as_text(read_spans(list(iter_items([path], spans=True)))) if spans else list(
        iter_items([path]))
    assert [i.source for i in items] == [f"{path}:{n}" for n in (1, 2, 3, 5)]
    assert [json.loads(i.data) for i in items] == [{"id": n} for n in (1, 2, 3, 4)]
    assert not any(i.data.startswith("\ufeff") for i in items)
    assert count_items([path]) == 4


def _as_text(items: list[RawItem]) -> list[RawItem]:
    """``items`` with a line given as UTF-8 bytes (as :func:`read_spans` gives the lines of a
    valid block) as its text."""
    return [RawItem(i.source, i.kind, i.data.decode()) if isinstance(i.data, bytes) else i
            for i in items]


def _lines_as_the_file_iterator_reads_them(path: Path) -> list[RawItem]:
    """The reference: every line as Python's file iterator splits it (at b"\\n"), a byte
    order mark removed from the start of any line (files joined), blank lines
    (``bytes.strip`` empty) left out."""
    out = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            raw = raw.removeprefix(b"\xef\xbb\xbf")
            if not raw.strip():
                continue
            try:
                out.append(RawItem(f"{path}:{number}", "json", raw.decode("utf-8")))
            except UnicodeDecodeError as exc:
                out.append(RawItem(f"{path}:{number}", "error", [
                    inputs.FieldError(inputs.FILE, f"line is not UTF-8 text: {exc.reason}")]))
    return out


_PIECES = [b"\n", b"\r\n", b" ", b"\t", b"\x0b", b"\x0c", b"\r", b"{}", b'{"id": "a"}',
           b"\xef\xbb\xbf", b"\xff", b"\xc3\xa9", b"x" * 40, b"\xe2\x80\xa8"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40), st.sampled_from([1, 3, 16, 1 << 22]))
def test_jsonl_lines_found_in_blocks_are_the_file_iterators(tmp_path_factory, pieces,
                                                            block) -> None:
    """Lines found block by block (any block size, lines across blocks), as runs of spans
    or as text, are the file iterator's lines, numbered alike; the runs stand for as many
    items as the file iterator gives and read back as the same items, cut anywhere (as a
    chunk's end cuts them), and the count is theirs."""
    path = tmp_path_factory.mktemp("lines") / "c.jsonl"
    path.write_bytes(b"".join(pieces))
    want = _lines_as_the_file_iterator_reads_them(path)
    old = inputs._READ_BLOCK
    inputs._READ_BLOCK = block
    try:
        spans = list(iter_items([path], spans=True))
        assert list(iter_items([path])) == want
        assert count_items([path]) == len(want)
    finally:
        inputs._READ_BLOCK = old
    assert all(i.kind == "spans" for i in spans)
    assert sum(item_count(i) for i in spans) == len(want)
    assert _as_text(read_spans(spans)) == want
    for k, run in enumerate(spans):
        for cut in range(1, item_count(run)):
            head, tail = split_item(run, cut)
            assert (item_count(head), item_count(tail)) == (cut, item_count(run) - cut)
            cut_up = [*spans[:k], head, tail, *spans[k + 1:]]
            assert _as_text(read_spans(cut_up)) == want


def test_spans_of_several_files_and_other_items_are_read_in_place(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b'{"id": 1}\n\n{"id": 2}\n')
    b.write_bytes(b'\xef\xbb\xbf{"id": 3}\r\n\xff\n')
    other = RawItem("x", "json", '{"id": 9}')
    mixed = [*iter_items([a], spans=True), other, *iter_items([b], spans=True)]
    got = read_spans(mixed)
    assert _as_text(got) == [*iter_items([a]), other, *iter_items([b])]
    # a valid file's lines as bytes (not decoded to be encoded again by the plain reader);
    # in a file with a line that is not UTF-8, the others as text, that one an error
    assert [type(i.data) for i in got] == [bytes, bytes, str, str, list]
    c = tmp_path / "c.jsonl"
    c.write_bytes('{"id": 1}\n{"id": "é"}\n'.encode())
    got = read_spans(list(iter_items([c], spans=True)))
    assert got == [RawItem(f"{c}:1", "json", b'{"id": 1}\n'),
                   RawItem(f"{c}:2", "json", '{"id": "é"}\n'.encode())]
    # a file that has changed since (shrunk; rewritten with the same size; appended to):
    # every span of it an error that says so, nothing else lost
    import os

    for change in (b"{}", b'\xef\xbb\xbf{"id": 4}\r\n\xfe\n', b'\xef\xbb\xbf{"id": 3}\r\n\xff\n{}\n'):
        b.write_bytes(b'\xef\xbb\xbf{"id": 3}\r\n\xff\n')
        spans = list(iter_items([b], spans=True))
        b.write_bytes(change)
        st = os.stat(b)
        os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))   # (coarse clocks)
        got = read_spans([other, *spans, other])
        assert got[0] == got[-1] == other
        assert [i.kind for i in got[1:-1]] == ["error", "error"]
        assert "changed since the batch started" in got[1].data[0].message
        assert [i.source for i in got[1:-1]] == [f"{b}:1", f"{b}:2"]
    # the file as it was: read
    b.write_bytes(b'\xef\xbb\xbf{"id": 3}\r\n\xff\n')
    assert read_spans(list(iter_items([b], spans=True))) == list(iter_items([b]))


def test_directory_order_and_kinds(tmp_path: Path, sim_cases) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "b.yaml").write_text("id: b\nmeasurements:\n  - {analyte: TSH, value: 2, unit: mIU/L}\n",
                              encoding="utf-8")
    (d / "a.json").write_text(json.dumps(case_to_dict(sim_cases[0])), encoding="utf-8")
    (d / "c.jsonl").write_text(json.dumps(case_to_dict(sim_cases[1])) + "\n", encoding="utf-8")
    write_csv(sim_cases[2:4], d / "e.csv")
    (d / "notes.txt").write_text("not a case", encoding="utf-8")
    items = [materialise(i) for i in iter_items([d])]
    assert [i.source for i in items] == [
        str(d / "a.json"), str(d / "b.yaml"), f"{d / 'c.jsonl'}:1", f"{d / 'e.csv'}:2",
        f"{d / 'e.csv'}:3"]
    assert [i.kind for i in items] == ["text", "text", "json", "csv", "csv"]
    desc = describe_inputs([d])
    assert desc[0]["kind"] == "dir" and desc[0]["files"] == 4
    assert count_items([d, d / "c.jsonl"]) == len(list(iter_items([d, d / "c.jsonl"]))) == 6
    for at_most in range(1, 9):     # counting stops early: a file, a directory, a CSV
        assert count_items([d, d / "c.jsonl"], at_most=at_most) == min(6, at_most)
        assert count_items([d / "e.csv"], at_most=at_most) == min(2, at_most)


def test_a_count_that_stops_early_reads_only_as_far_as_it_needs(tmp_path: Path) -> None:
    """``count_items(..., at_most=n)``, which decides how many workers a new batch starts
    before the inputs are counted whole, gives ``min(count, n)`` and reads a JSON Lines file
    only a block at a time until it has ``n``."""
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id": 1}\n\n' * 30_000)
    assert count_items([path]) == 30_000
    reads: list[int] = []

    class Counted(io.FileIO):
        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            reads.append(len(data))
            return data

    real_open = open
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inputs, "open", lambda p, mode="r", *a, **k: Counted(p, "rb")
                   if mode == "rb" else real_open(p, mode, *a, **k), raising=False)
        mp.setattr(inputs, "_READ_BLOCK", 4096)
        assert count_items([path], at_most=1000) == 1000
        assert reads and sum(reads) < 3 * 4096 * 2
        assert count_items([path], at_most=40_000) == 30_000


def test_unknown_input_kind(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(InputError):
        describe_inputs([path])


def test_csv_round_trip_gives_the_same_cases(sim_cases, model) -> None:
    import tempfile

    import numpy as np

    from neb_bayes.evidence import build_evidence
    from neb_bayes.inference.batch_exact import infer_batch

    cases = sim_cases[:30]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.csv"
        write_csv(cases, path)
        result = process_chunk(ChunkTask(index=0, first_item=0, items=list(iter_items([path]))))
    assert result.errors == []
    expected = infer_batch(model, [build_evidence(model, c) for c in cases])
    names = [*model.conditions, "none"]
    got = np.column_stack([result.table.column(n).to_numpy() for n in names])
    # CSV columns come in another order than the cases' measurements: sums differ in ulps
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-15)


def test_iter_case_data_streams_mappings_and_errors(tmp_path: Path) -> None:
    from neb_bayes.batch.inputs import iter_case_data
    from neb_bayes.case.model import CaseError

    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"id": "a"}\n"text"\n', encoding="utf-8")
    table = tmp_path / "c.csv"
    table.write_text("id,sym_fatigue,TSH_mIU_per_L\nb,1,2.5\nc,2,\n", encoding="utf-8")
    got = list(iter_case_data([jsonl, table]))
    assert [s for s, _ in got] == [f"{jsonl}:1", f"{jsonl}:2", f"{table}:2", f"{table}:3"]
    assert got[0][1] == {"id": "a"}
    assert isinstance(got[1][1], CaseError)
    assert got[2][1]["measurements"] == [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L"}]
    assert isinstance(got[3][1], CaseError) and got[3][1].errors[0].path == "sym_fatigue"


def test_a_chunk_task_survives_pickling(tmp_path: Path, sim_cases) -> None:
    """Tasks travel to worker processes (and Dask workers) pickled, items as columns."""
    import pickle

    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id": 1}\n\xff\n' + json.dumps(case_to_dict(sim_cases[0])).encode())
    items = list(iter_items([path]))
    task = ChunkTask(index=4, first_item=12, items=items, priors="/p.nc", reports=True, draws=9)
    back = pickle.loads(pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == task and [type(i) for i in back.items] == [type(i) for i in items]
    assert back.items[1].kind == "error" and back.items[1].data == items[1].data


def _csv_module_reading(path: Path) -> list[tuple[str, object]]:
    """Every item the way the csv module reads the file (what ``_iter_csv`` did for every
    row before unquoted rows were passed on as lines): ``(source, case mapping, labels,
    errors)`` or ``(source, error messages)``."""
    import csv
    import io

    data = io.BytesIO(path.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    reader = csv.reader(line.decode("utf-8") for line in data)    # lines end at \n only
    header = tuple(next(reader))
    out = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            out.append((f"{path}:{reader.line_num}", [f"malformed CSV: {exc}"]))
            continue
        if any(c.strip() for c in row):
            out.append((f"{path}:{reader.line_num}", row_to_case(header, row)))
    return out


def test_csv_rows_read_as_lines_equal_the_csv_modules_reading(tmp_path: Path) -> None:
    """A row without quotes travels as its line and is split at commas by the worker; every
    other row (quoted fields, a quoted line break spanning two lines, a NUL, a carriage
    return inside the line: an error item) is read by the csv module: the cases, labels, errors and
    sources are the csv module's reading of the whole file, blank and whitespace-only rows
    skipped, and count_items agrees."""
    path = tmp_path / "w.csv"
    header = "id,sex,age,TSH_mIU_per_L,FT4_pmol_per_L,medications,context,sym_fatigue\r\n"
    rows = [
        "a,F,46,8.2,9.1,,,1\r\n",
        ",,,,,,,\r\n",                                    # blank: skipped
        "  , ,\t,\u00a0,,,,\r\n",                         # whitespace only: skipped
        'b,M,50,"<0,01",20,"levothyroxine; ""T4""",,0\r\n',  # quoted: the csv module
        'c,F,33,1.2,,"line one\nline two",,\r\n',          # a quoted line break
        "d,F,29, 3.0 ,12.5,,pregnant,\r\n",                 # spaces inside cells
        "e,F,61,2.0,é,,,,,\r\n",                            # more cells than the header
        "f,M,40,1.1,13\r\n",                                # fewer cells
        "g,F,3\x0051,1.0,,,,\r\n",                          # a NUL: the csv module
        "h,F,40,1.0\r,14,,,\r\n",                           # a CR inside: its error
        "i,M,70,4.4,15,,,",                                 # no line ending at the end
    ]
    path.write_bytes(("\ufeff" + header + "".join(rows)).encode("utf-8"))
    items = list(iter_items([path]))
    got = []
    for item in items:
        if item.kind == "error":
            got.append((item.source, [e.message for e in item.data]))
        else:
            got.append((item.source, row_to_case(*item.data)))
    assert got == _csv_module_reading(path)
    assert [isinstance(i.data[1], str) for i in items if i.kind == "csv"] == [
        True, False, False, True, True, True, False, True]
    assert count_items([path]) == len(items) == 9


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(exclude_characters='",\r\n\x00'), max_size=6),
                min_size=1, max_size=40),
       st.sampled_from(["", "\n", "\r\n"]))
def test_a_line_splits_into_the_csv_modules_cells(cells, ending) -> None:
    """Any line without quotes, NULs or carriage returns inside: its non-empty cells found
    at the commas equal the csv module's reading of it (any text in the cells: spaces,
    letters of any script, other whitespace)."""
    import csv

    line = ",".join(cells) + ending
    row = next(csv.reader([line]), [])
    assert sparse_row(line) == sparse_row(row)


@pytest.mark.skipif(os.name != "posix" or sys.platform == "darwin",
                    reason="needs file names of arbitrary bytes")
def test_a_file_name_that_is_not_utf8_is_not_read_and_is_named(tmp_path: Path) -> None:
    """Such a name could not be written as a case's source (every output is UTF-8): a
    directory's is listed among the files not read, a path given as input is refused."""
    (tmp_path / "good.json").write_text('{"id": "a", "measurements": []}')
    bad = os.path.join(os.fsencode(tmp_path), b"x\xff.json")
    with open(bad, "wb") as fh:
        fh.write(b'{"id": "b", "measurements": []}')
    assert [i.source for i in iter_items([tmp_path])] == [str(tmp_path / "good.json")]
    assert inputs.ignored_files(tmp_path) == [os.fsdecode(b"x\xff.json")]
    with pytest.raises(InputError, match="not UTF-8"):
        describe_inputs([os.fsdecode(bad)])


def test_a_quote_never_closed_is_an_error_and_the_rows_after_it_are_read(tmp_path: Path
                                                                          ) -> None:
    """The csv module reads the rest of a file into a quoted cell that is never closed (no
    quote follows it): that row is an error naming it, and every row after it is read as if
    it were not there (nothing is silently dropped).  A quoted cell closed on a later line
    is one record, at the end of the file too (with and without a last line break)."""
    path = tmp_path / "q.csv"
    path.write_text('id,sex,TSH_mIU_per_L,context\nq1,F,2.0,"two\nlines"\n'
                    'q2,F,3.0,"never closed\nq3,F,4.0,\n\nq4,F,5.0,\n')
    items = list(iter_items([path]))
    assert [(i.source.rsplit(":", 1)[1], i.kind) for i in items] == [
        ("3", "csv"), ("4", "error"), ("5", "csv"), ("7", "csv")]
    assert items[1].data[0].message == ("malformed CSV: a quoted cell opened on this row is "
                                        "never closed")
    assert [row_to_case(*i.data)[0]["id"] for i in items if i.kind == "csv"] == [
        "q1", "q3", "q4"]
    assert count_items([path]) == len(items)
    for end in ("", "\n"):
        closed = tmp_path / "c.csv"
        closed.write_text('id,sex,TSH_mIU_per_L,context\nq1,F,2.0,\nq2,F,3.0,"two\nlines"'
                          + end)
        items = list(iter_items([closed]))
        assert [i.kind for i in items] == ["csv", "csv"]
        assert row_to_case(*items[1].data)[0]["id"] == "q2"
    broken_header = tmp_path / "h.csv"
    broken_header.write_text('id,"sex\nq1,F\n')
    (item,) = iter_items([broken_header])
    assert item.kind == "error" and item.data[0].path == "<header>"


def test_blank_lines_before_the_header_and_a_column_without_a_name(tmp_path: Path) -> None:
    """Spreadsheet exports: blank lines above the header are skipped; a column without a
    name (a trailing comma on every line) is read as any column of no known kind: nothing
    when empty, a 'not used' item naming its number when filled, never an error."""
    path = tmp_path / "x.csv"
    path.write_text("\n \nid,sex,TSH_mIU_per_L,\nq1,F,2.0,\nq2,F,3.0,oops\n")
    items = list(iter_items([path]))
    assert [i.kind for i in items] == ["csv", "csv"] and count_items([path]) == 2
    (q1, _, err1), (q2, _, err2) = (row_to_case(*i.data) for i in items)
    assert err1 == err2 == []
    assert q1["measurements"][0]["analyte"] == "TSH" and "csv column 4 (no name)" not in q1
    assert q2["csv column 4 (no name)"] == "(not read)"


def test_a_directorys_subdirectories_and_broken_links_are_named_as_not_read(tmp_path) -> None:
    """A directory input is not read recursively: its subdirectories, and links to nothing,
    are among what the batch names as not read (they were skipped without a word)."""
    (tmp_path / "a.json").write_text('{"id": "a", "measurements": []}')
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "b.json").write_text('{"id": "b", "measurements": []}')
    (tmp_path / "gone.json").symlink_to(tmp_path / "nowhere.json")
    assert [i.source for i in iter_items([tmp_path])] == [str(tmp_path / "a.json")]
    assert inputs.ignored_files(tmp_path) == ["gone.json", "more/"]
