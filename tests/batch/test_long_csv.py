"""Long CSV input (one row per result, :mod:`neb_bayes.batch.long_csv`): the same cases and
probabilities as their JSON Lines, case columns on every row or on one, a case's bad rows
named by their line, and the batch, the fit's cohort reader and resume reading it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neb_bayes.batch.export import case_to_dict, write_jsonl, write_long_csv
from neb_bayes.batch.inputs import count_items, iter_case_data, iter_items, parse_item
from neb_bayes.batch.long_csv import is_long, rows_to_case
from neb_bayes.batch.task import ChunkTask
from neb_bayes.batch.worker import process_chunk
from neb_bayes.case import read_case
from neb_bayes.case.model import CaseError

from .conftest import errors


def _probabilities(model, path: Path) -> tuple[np.ndarray, list]:
    result = process_chunk(ChunkTask(index=0, first_item=0, items=list(iter_items([path]))))
    names = [*model.conditions, "none"]
    return (np.column_stack([result.table.column(n).to_numpy() for n in names]),
            result.errors)


@pytest.mark.parametrize("once", [False, True], ids=["every-row", "first-row"])
def test_long_csv_reads_the_same_cases_and_probabilities_as_json_lines(
        tmp_path: Path, sim_cases, model, once) -> None:
    cases = sim_cases[:40]
    # (the simulated cases carry censored results, times, days, symptoms and contexts)
    assert any(m.censor != "none" for c in cases for m in c.measurements)
    assert any(m.day for c in cases for m in c.measurements)
    long, jsonl = tmp_path / "c.csv", tmp_path / "c.jsonl"
    write_long_csv(cases, long, case_columns_once=once)
    write_jsonl(cases, jsonl)
    assert count_items([long]) == len(cases)
    items = list(iter_items([long]))
    assert {i.kind for i in items} == {"csv_long"}
    for item, case in zip(items, cases, strict=True):
        data = parse_item(item).data
        assert read_case(data).measurements == read_case(case_to_dict(case)).measurements
        assert read_case(data).patient == case.patient
        assert read_case(data).symptoms == case.symptoms
    got, errors = _probabilities(model, long)
    want, _ = _probabilities(model, jsonl)
    assert errors == []
    np.testing.assert_array_equal(got, want)


def test_case_columns_must_agree_and_rows_are_named(tmp_path: Path, model) -> None:
    path = tmp_path / "l.csv"
    path.write_text(
        "id,sex,age,symptoms_present,Analyte,Value,Unit,specimen,collected,day\n"
        "a,F,45,fatigue,TSH,38,mIU/L,serum,08:30,\n"
        "a,,,,Free T4,6.1,pmol/L,,08:30,\n"
        "a,F,45,,TSH,41,mIU/L,,08:30,30\n"
        "b,M,50,,TSH,2.0,mIU/L,,,\n"
        "b,M,51,,FT4,14,pmol/L,,,\n"
        "c,M,40,,TSH,abc,mIU/L,,,\n"
        "d,F,30,palpitations,,,,,,\n"
        ",,,,,,,,,\n"
        '"e, quoted",F,52,,TSH,"<0.01",mIU/L,,,\n', encoding="utf-8")
    assert is_long(["id", "ANALYTE", " value "]) and not is_long(["id", "TSH_mIU_per_L"])
    got = dict(iter_case_data([path]))
    assert list(got) == [f"{path}:2-4", f"{path}:5-6", f"{path}:7", f"{path}:8",
                         f"{path}:10"]
    a = read_case(got[f"{path}:2-4"])
    assert [(m.analyte, m.value, m.day) for m in a.measurements] == [
        ("tsh", 38.0, 0.0), ("ft4", 6.1, 0.0), ("tsh", 41.0, 30.0)]
    assert a.patient.age == 45 and a.symptoms.present == frozenset({"fatigue"})
    # a case column that two rows fill differently: that case's error, naming both rows
    b = got[f"{path}:5-6"]
    assert isinstance(b, CaseError)
    assert [e.path for e in b.errors] == ["row 6, column 'age'"]
    assert "row 5" in b.errors[0].message
    # the reader's own error, the row named as the column
    with pytest.raises(CaseError) as err:
        read_case(got[f"{path}:7"])
    assert err.value.errors[0].path == "measurements[0].value"
    _, labels, _ = rows_to_case(*next(i for i in iter_items([path])
                                      if i.source.endswith(":7")).data)
    assert labels["measurements[0]"] == "row 7"
    # a row of case columns only: a case without results, its symptoms read
    d = read_case(got[f"{path}:8"])
    assert d.measurements == () and d.symptoms.present == frozenset({"palpitations"})
    # a quoted id and a quoted censored value
    e = read_case(got[f"{path}:10"])
    assert e.id == "e, quoted" and e.measurements[0].censor == "left"
    _, errors = _probabilities(model, path)
    assert sorted(e["case_id"] for e in errors) == ["b", "c"]


def test_rows_of_an_id_that_come_back_are_a_repeated_case_and_say_how_to_mend_it(
        tmp_path: Path) -> None:
    """A long CSV's case is its consecutive rows: an id whose rows come back after another
    case's is a second case with that id, left out as a repeat; the error and the summary
    say the file must be sorted by id."""
    from neb_bayes.batch import BatchOptions, run_batch

    path = tmp_path / "unsorted.csv"
    path.write_text("id,sex,age,analyte,value,unit\n"
                    "a,F,45,TSH,38,mIU/L\n"
                    "b,M,50,TSH,2.0,mIU/L\n"
                    "a,F,45,FT4,6.1,pmol/L\n", encoding="utf-8")
    out = tmp_path / "out"
    summary = run_batch(BatchOptions(inputs=[str(path)], out=str(out), progress=False),
                        echo=lambda *a, **k: None)
    assert summary.rows == 2 and summary.duplicates == 1
    assert "sort the file by id" in summary.text()
    (record,) = errors(out)
    assert record["case_id"] == "a" and record["source"].endswith(":4")
    assert "sort the file by id" in record["errors"][0]["message"]


def test_a_long_csv_without_an_id_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text("analyte,value,unit\nTSH,2,mIU/L\n", encoding="utf-8")
    (item,) = list(iter_items([path]))
    assert item.kind == "error" and "needs an 'id' column" in item.data[0].message


def test_the_batch_and_the_fits_cohort_reader_take_a_long_csv(tmp_path: Path, sim_cases,
                                                                model) -> None:
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from neb_bayes.cli import main
    from neb_bayes.fit_inputs import read_cohort

    cases = sim_cases[:25]
    path = tmp_path / "l.csv"
    write_long_csv(cases, path, case_columns_once=True)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["batch", str(path), "--out", str(out), "--jobs", "1",
                                    "--chunk-size", "10", "--no-progress"])
    assert res.exit_code == 0, res.output
    table = pq.read_table(out / "results.parquet")
    assert table.column("case_id").to_pylist() == [c.id for c in cases]
    # resumed: every chunk done already
    res = CliRunner().invoke(main, ["batch", str(path), "--out", str(out), "--jobs", "1",
                                    "--chunk-size", "10", "--no-progress"])
    assert res.exit_code == 0 and "0 processed" in res.output, res.output
    cohort = read_cohort([path])
    assert [c.id for c in cohort.cases] == [c.id for c in cases]


def test_the_plain_reader_takes_plain_cases_at_once_as_the_full_reader_reads_them(
        tmp_path: Path, sim_cases, model, monkeypatch) -> None:
    """A chunk's long-CSV cases are read at once (``PlainReader.add_long``: no case-file
    mapping, no object per result) where every part is plain, the same probabilities bit for
    bit as one by one; a case whose rows disagree, or a result without a unit or with a day
    that is no number, is left to the full reader (its error)."""
    from neb_bayes.batch.plain import PlainReader

    path = tmp_path / "l.csv"
    write_long_csv(sim_cases[:60], path)
    items = list(iter_items([path]))
    assert PlainReader(model).add_long([i.data for i in items]).all()
    bad = tmp_path / "b.csv"
    bad.write_text("id,age,analyte,value,unit,day\n"
                   "a,45,TSH,2,mIU/L,\na,46,FT4,14,pmol/L,\n"
                   "b,45,TSH,2,,\n"
                   "c,45,TSH,2,mIU/L,soon\n"
                   "d,45,TSH,2,mIU/L,3\n", encoding="utf-8")
    taken = PlainReader(model).add_long([i.data for i in iter_items([bad])])
    assert taken.tolist() == [False, False, False, True]
    fast, _ = _probabilities(model, path)
    monkeypatch.setattr(PlainReader, "add_long",
                        lambda self, items: np.zeros(len(items), bool))
    slow, _ = _probabilities(model, path)
    np.testing.assert_array_equal(fast, slow)
