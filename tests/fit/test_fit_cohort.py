"""How `neb-bayes priors fit` reads its cohort: a case that cannot be read is skipped with
every error and its field path; of cases with one id only the first is fitted (ids are
unique in a cohort, as `batch` has them)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from neb_bayes.cli import main
from neb_bayes.fit_inputs import read_cohort


def _case(cid, tsh=2.0):
    return {"id": cid, "patient": {"sex": "F", "age": 40}, "measurements": [
        {"analyte": "tsh", "specimen": "serum", "value": tsh, "unit": "mIU/L"}]}


#: a case with two errors, each with its field path
BAD = {"id": "bad", "patient": {"sex": "F", "age": 400}, "measurements": [
    {"analyte": "tsh", "specimen": "serum", "value": -1, "unit": "mIU/L"}]}


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "c.jsonl"
    lines = [_case("a"), _case("b"), BAD, _case("a", tsh=9.0), _case("c"), _case("b")]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + "{not json\n")
    return path


def test_repeated_ids_are_fitted_once_first_wins(jsonl):
    read = read_cohort([jsonl])
    assert [c.id for c in read.cases] == ["a", "b", "c"]
    assert read.cases[0].measurements[0].value == 2.0          # the first "a", not the second
    assert [(s.rsplit(":", 1)[1], cid, f.rsplit(":", 1)[1]) for s, cid, f in read.repeated] == [
        ("4", "a", "1"), ("6", "b", "2")]


def test_unreadable_cases_keep_every_error_with_its_path(jsonl):
    read = read_cohort([jsonl])
    bad, broken = read.skipped
    assert bad["source"].endswith(":3") and bad["case_id"] == "bad"
    assert {e["path"] for e in bad["errors"]} == {"patient.age", "measurements[0].value"}
    assert broken["case_id"] is None and broken["errors"][0]["path"] == "<file>"
    assert read.skipped_ids == {"bad"}


def test_a_repeated_csv_row_is_fitted_once_and_a_bad_cell_names_its_column(tmp_path):
    table = tmp_path / "c.csv"
    table.write_text("id,sex,age,sym_fatigue,TSH_mIU_per_L\n"
                     "p1,F,40,1,2.5\np2,M,50,0,1.1\np1,F,40,1,2.5\np3,F,30,1,-1\n")
    read = read_cohort([table])
    assert [c.id for c in read.cases] == ["p1", "p2"]
    assert [cid for _, cid, _ in read.repeated] == ["p1"]
    [rec] = read.skipped
    assert rec["case_id"] == "p3"
    assert rec["errors"] == [dict(rec["errors"][0], path="measurements[0].value",
                                  column="TSH_mIU_per_L")]


def test_the_command_lists_skipped_cases_errors_and_repeated_ids(tmp_path, jsonl, monkeypatch):
    """Each skipped case's errors with their field paths (as `neb-bayes check` gives them);
    each case left out for a repeated id, by source and id; then the fit of the rest (stopped
    by the test before the model is built)."""
    import neb_bayes.fit

    def stop(*args, **kwargs):
        raise ValueError("stopped by the test")

    monkeypatch.setattr(neb_bayes.fit, "build_fit_model", stop)
    res = CliRunner().invoke(main, ["priors", "fit", str(jsonl), "--out", str(tmp_path / "o.nc"),
                                    "--fit", "prevalence", "--no-progress"])
    assert "stopped by the test" in res.output, res.output
    assert f"skipped {jsonl}:3: 2 error(s)" in res.output
    assert "  - patient.age:" in res.output and "  - measurements[0].value:" in res.output
    assert f"skipped {jsonl}:7: 1 error(s)\n  - <file>: malformed JSON" in res.output
    assert "left out 2 case(s) whose id an earlier case has" in res.output
    assert f"  - {jsonl}:4: id a (fitted from {jsonl}:1)" in res.output
    assert "cohort: 3 cases (2 skipped, 2 with a repeated id left out)" in res.output


def test_an_input_of_unknown_kind_is_a_usage_error(tmp_path):
    path = tmp_path / "cohort.txt"
    path.write_text("x\n")
    res = CliRunner().invoke(main, ["priors", "fit", str(path), "--out", str(tmp_path / "o.nc")])
    assert res.exit_code == 2 and "unknown input type '.txt'" in res.output, res.output
