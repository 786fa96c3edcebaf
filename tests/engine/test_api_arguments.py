"""The Python API's arguments: clear errors for what it cannot take, nothing printed."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import MappingProxyType

import pytest

import neb_bayes as nb
from neb_bayes.case import CaseError

EXAMPLE = Path(__file__).resolve().parents[2] / "cases/examples/primary_hypothyroidism_01.yaml"


@pytest.mark.parametrize("bad", [1.5, 0.0, 1.0, "0.9", True])
def test_an_interval_probability_outside_0_1_is_refused(bad) -> None:
    with pytest.raises(ValueError, match="interval_prob must be a probability"):
        nb.infer(EXAMPLE, interval_prob=bad, uncertainty=False)


def test_an_unknown_method_is_refused_before_any_work() -> None:
    with pytest.raises(ValueError, match="method must be 'exact' or 'nuts'"):
        nb.infer(EXAMPLE, method="hmc")


@pytest.mark.parametrize("bad", [None, 42, ["a"]])
def test_read_case_names_what_it_takes(bad) -> None:
    with pytest.raises(TypeError, match="a path to a case file or a mapping"):
        nb.read_case(bad)


def test_read_case_takes_any_mapping_and_explains_a_json_lines_file(tmp_path) -> None:
    case = {"id": "m", "measurements": [{"analyte": "TSH", "value": 2.0, "unit": "mIU/L"}]}
    assert nb.read_case(MappingProxyType(case)).id == "m"
    lines = tmp_path / "many.jsonl"
    lines.write_text('{"id": "a"}\n{"id": "b"}\n')
    with pytest.raises(CaseError, match="JSON Lines file holds many cases"):
        nb.read_case(lines)


def test_three_censored_results_on_one_axis_warn_nothing() -> None:
    """(Found by an audit: numpy's 'invalid value encountered in multiply' reached the
    user's stderr from the censored-results factor search, whose NaN rows it discards.)"""
    case = {"id": "rw", "patient": {"sex": "F", "age": 40}, "measurements": [
        {"analyte": "glucose_ogtt_2h", "value": "<12.7", "unit": "mmol/L"},
        {"analyte": "glucose_random", "value": ">3.9", "unit": "mmol/L"},
        {"analyte": "c_peptide", "value": "<0.66", "unit": "nmol/L"}]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = nb.infer(case)
    assert 0.0 <= result.probabilities["diabetes"] <= 1.0
