"""HbA1c against its default reference interval (neb_bayes/vocab/analytes.yaml): normal below
5.7 % = 39 mmol/mol (facts §1, ADA), the usual laboratory interval 4.0-5.6 % (20-38 mmol/mol),
low below 4.0 % (Carson 2010).  A result in % is flagged as its IFCC value reads."""

from __future__ import annotations

import pytest

from neb_bayes.case import read_case
from neb_bayes.report.results import range_flag, reference_interval


@pytest.mark.parametrize(("value", "flag"), [(3.9, "low"), (4.0, "within"), (5.0, "within"),
                                              (5.6, "within"), (5.7, "high"), (6.5, "high")])
def test_hba1c_in_percent_is_flagged_against_the_usual_interval(value: float, flag: str) -> None:
    case = read_case({"case_format": 1, "id": "a1c", "patient": {"sex": "F", "age": 40},
                      "measurements": [{"analyte": "HbA1c", "value": value, "unit": "%"}]})
    m = case.measurements[0]
    ri, source = reference_interval(m, case.patient)
    assert source == "vocabulary default"
    assert range_flag(m, ri)[1] == ("" if flag == "within" else flag)
