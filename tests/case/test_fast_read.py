"""The reader's fast path for clean results gives exactly what the full reader gives."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from neb_bayes.batch.export import case_to_dict
from neb_bayes.case import measurements as meas
from neb_bayes.case.model import CaseError
from neb_bayes.case.read import read_case
from neb_bayes.model.compiled import load_model
from neb_bayes.simulate import simulate

EXAMPLES = sorted(Path(__file__).resolve().parents[2].joinpath("cases", "examples").glob("*.yaml"))

#: result variants around the fast path's edges (each replaces a clean result)
VARIANTS = [
    {"value": "<0.01"}, {"value": ">1000"}, {"value": 0}, {"value": 0.0}, {"value": -1.0},
    {"value": float("nan")}, {"value": float("inf")}, {"value": True}, {"value": "3.5"},
    {"value": 1e9}, {"value": 1e-12}, {"value": 3}, {"value": None},
    {"unit": "kg"}, {"unit": None}, {"unit": 5}, {"unit": ""}, {"unit": " mIU/L "},
    {"specimen": "saliva"}, {"specimen": ""}, {"specimen": "  serum "}, {"specimen": "blood"},
    {"specimen": 3}, {"specimen": "urine"},
    {"analyte": "  TSH "}, {"analyte": "Free thyroxine (FT4)"}, {"analyte": "HOMA-IR"},
    {"analyte": "nonsense"}, {"analyte": ""}, {"analyte": 7},
    {"collected": "08:40"}, {"collected": "8:40"}, {"collected": "24:00"}, {"collected": "25:00"},
    {"collected": "2024-03-01T08:40"}, {"collected": "2024-03-01"}, {"collected": 840},
    {"collected": " 07:30:15 "}, {"day": 3}, {"day": -1}, {"day": True}, {"day": 2.5},
    {"day": float("nan")}, {"method": "LC-MS/MS"}, {"note": "x"},
    {"reference_interval": [0.4, 4.0]}, {"extra_field": 1},
]


def _read(data):
    try:
        return read_case(copy.deepcopy(data), source_name="t")
    except CaseError as exc:
        return ("error", [(e.path, e.message) for e in exc.errors])


def _both(data, monkeypatch):
    fast = _read(data)
    with monkeypatch.context() as m:
        m.setattr(meas, "_fast_measurement", lambda i, item: None)
        slow = _read(data)
    return fast, slow


def _cases():
    import yaml

    out = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in EXAMPLES]
    model = load_model()
    out += [json.loads(json.dumps(case_to_dict(s.case)))
            for s in simulate(model, 60, seed=5)]
    return out


def test_fast_path_equals_full_reader(monkeypatch):
    cases = _cases()
    assert len(cases) > 60
    for data in cases:
        fast, slow = _both(data, monkeypatch)
        assert fast == slow, data.get("id")


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: repr(v)[:40])
def test_fast_path_edges(variant, monkeypatch):
    base = {"id": "v", "patient": {"sex": "F", "age": 40},
            "measurements": [{"analyte": "TSH", "specimen": "serum", "value": 2.5,
                              "unit": "mIU/L", "collected": "09:00"},
                             {"analyte": "FT4", "value": 14.0, "unit": "pmol/L", "day": 1},
                             {"analyte": "cortisol", "value": 400.0, "unit": "nmol/L",
                              "collected": "2024-03-02T08:00"}]}
    for k in range(2):
        data = copy.deepcopy(base)
        data["measurements"][k].update(variant)
        fast, slow = _both(data, monkeypatch)
        assert fast == slow


@pytest.mark.parametrize("field,text,number", [
    ("age", "40", 40), ("age", " 62.5 ", 62.5), ("bmi", "31", 31),
    ("gestational_week", "9", 9),
])
def test_patient_numbers_as_text_read_as_the_number(field, text, number):
    """``patient.age: "40"`` reads as ``40``, as a result's value "2.1" reads as 2.1, in the
    single-case reader and in the batch's reader of plain cases alike."""
    from neb_bayes.batch.plain import PlainReader
    from neb_bayes.evidence import build_evidence

    def case(value):
        patient = {"sex": "F", "age": 40, "pregnant": field == "gestational_week", field: value}
        return {"id": "t", "patient": patient,
                "measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L"}]}

    as_text, as_number = _read(case(text)), _read(case(number))
    assert as_text == as_number and not isinstance(as_text, tuple)
    model = load_model()
    reader = PlainReader(model)
    assert reader.add(case(text)) and reader.add(case(number))
    a, b = reader.evidences
    assert a.covariates == b.covariates == build_evidence(model, as_text).covariates


@pytest.mark.parametrize("text", ["forty", "40 years", "", "1e400", "-3", "140"])
def test_age_text_that_is_no_age_is_an_error_at_its_path(text):
    """Text that is no number, or a number outside 0-130, is an error naming patient.age in
    both readers (the batch's plain reader leaves such a case to the full reader)."""
    from neb_bayes.batch.plain import PlainReader

    data = {"id": "t", "patient": {"sex": "F", "age": text},
            "measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L"}]}
    outcome = _read(data)
    assert outcome[0] == "error" and [p for p, _ in outcome[1]] == ["patient.age"]
    message = outcome[1][0][1]
    assert ("must be from 0 to below 130" in message if text in ("-3", "140")
            else "expected age in years" in message and repr(text) in message)
    assert not PlainReader(load_model()).add(copy.deepcopy(data))
