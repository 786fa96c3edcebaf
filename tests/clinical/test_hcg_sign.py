"""An hCG in the range of pregnancy in a woman the case does not say is pregnant: the report
warns that it reads every result as outside pregnancy (hCG lowers TSH in the first
trimester).  Cut-offs: serum hCG under 5 IU/L outside pregnancy, above 25 IU/L a positive
pregnancy test, 5-25 IU/L equivocal (the usual laboratory cut-offs; GLOWM, "Pregnancy test")."""

from __future__ import annotations

import pytest

import neb_bayes as nb
from neb_bayes.case.model import Case, Measurement, Patient


def _case(hcg: float, *, sex: str = "F", week: float | None = None,
          censor: str = "none") -> Case:
    ms = (Measurement(index=0, analyte="hcg", specimen="serum", value=hcg, censor=censor),
          Measurement(index=1, analyte="tsh", specimen="serum", value=0.15),
          Measurement(index=2, analyte="ft4", specimen="serum", value=17.5))
    patient = Patient(sex=sex, age=30, pregnant=week is not None, gestational_week=week)
    return Case(id="hcg", patient=patient, measurements=ms)


def _signs(case: Case) -> list[str]:
    return [w for w in nb.infer(case, uncertainty=False).evidence.warnings
            if "does not say the patient is pregnant" in w]


@pytest.mark.parametrize(("hcg", "said"), [(45000.0, "in the range of pregnancy"),
                                           (26.0, "in the range of pregnancy"),
                                           (12.0, "equivocal")])
def test_a_raised_hcg_without_a_pregnancy_is_named(hcg, said):
    [warning] = _signs(_case(hcg))
    assert warning.startswith("measurements[0]: hCG ") and said in warning
    assert "IU/L" in warning and "gestational_week" in warning


@pytest.mark.parametrize("case", [_case(3.0), _case(45000.0, week=10.0),
                                  _case(5.0, censor="left")],
                         ids=["not raised", "pregnancy given", "below its limit"])
def test_no_warning_where_the_case_explains_the_hcg_or_it_is_not_raised(case):
    assert _signs(case) == []


def test_a_batch_warns_as_the_report_does(tmp_path):
    """The batch's plain reader leaves a case with an hCG result to the full reader, which
    warns: the same case warns in a batch as in a report (one warning; none when the case
    gives the pregnancy)."""
    import json

    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from neb_bayes.cli import main

    def case(i: int, pregnant: bool) -> dict:
        patient = {"sex": "F", "age": 30, "pregnant": pregnant}
        if pregnant:
            patient["gestational_week"] = 10
        return {"case_format": 1, "id": f"c{i}", "patient": patient, "measurements": [
            {"analyte": "hCG", "specimen": "serum", "value": 45000, "unit": "IU/L",
             "collected": "10:30"},
            {"analyte": "TSH", "specimen": "serum", "value": 0.15, "unit": "mIU/L",
             "collected": "10:30"}]}

    cases = tmp_path / "c.jsonl"
    cases.write_text("".join(json.dumps(case(i, i == 1)) + "\n" for i in range(2)))
    res = CliRunner().invoke(main, ["batch", str(cases), "--out", str(tmp_path / "out"),
                                    "--jobs", "1"])
    assert res.exit_code == 0, res.output
    rows = {r["case_id"]: r for r in pq.read_table(tmp_path / "out/results.parquet").to_pylist()}
    assert rows["c0"]["n_warnings"] == 1 and rows["c1"]["n_warnings"] == 0
