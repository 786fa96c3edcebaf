"""A channel's ``floor`` (priors/default.yaml, sources glyc_floor): a result below it is read
at it, in the single-case and batch paths alike, and the loader names a bad floor."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import neb_bayes as nb
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.vectorised import posterior_batch
from neb_bayes.model.compiled import load_model
from neb_bayes.model.spec import PriorSetError, spec_from_tables

MODEL = load_model()


def _case(*results: dict) -> dict:
    return {"case_format": 1, "id": "floor", "patient": {"sex": "M", "age": 50},
            "measurements": list(results)}


def _a1c(value, **more) -> dict:
    return {"analyte": "HbA1c", "value": value, "unit": "mmol/mol", **more}


def _floor(analyte: str) -> float:
    return math.exp(next(c.log_floor for c in MODEL.channels if c.analyte == analyte))


def _probs(case: dict) -> np.ndarray:
    r = nb.infer(case, uncertainty=False, explain=False)
    return np.array(list(r.probabilities.values()))


def test_a_result_below_the_floor_reads_as_one_at_it():
    floor = _floor("hba1c")
    at = _probs(_case(_a1c(floor)))
    for value in (0.9 * floor, 0.5 * floor, 10.0):
        np.testing.assert_allclose(_probs(_case(_a1c(value))), at, rtol=0, atol=1e-12)
    # above it the value is read as it is
    assert not np.allclose(_probs(_case(_a1c(1.05 * floor))), at, rtol=0, atol=1e-6)


def test_a_result_censored_below_a_limit_under_the_floor_reads_observed_at_it():
    floor = _floor("hba1c")
    at = _probs(_case(_a1c(floor)))
    np.testing.assert_allclose(_probs(_case(_a1c(f"<{0.8 * floor:.1f}"))), at, rtol=0,
                               atol=1e-12)
    # a limit above the floor stays a censored result; a result above a low limit too
    assert not np.allclose(_probs(_case(_a1c(f"<{1.2 * floor:.1f}"))), at, atol=1e-6)
    ev = build_evidence(MODEL, nb.read_case(_case(_a1c(f">{0.8 * floor:.1f}"))))
    assert ev.blocks[0].censor.tolist() == [1] and ev.blocks[0].y[0] < math.log(floor)


def test_the_batch_engine_reads_the_floor_as_the_single_case_path():
    floor = _floor("hba1c")
    cases = [_case(_a1c(v), {"analyte": "fasting glucose", "value": g, "unit": "mg/dL"})
             for v in (0.6 * floor, floor, 1.3 * floor) for g in (40.0, 90.0, 200.0)]
    evs = [build_evidence(MODEL, nb.read_case(copy.deepcopy(c))) for c in cases]
    batch, _ = posterior_batch(MODEL, evs)
    for case, row in zip(cases, batch, strict=True):
        np.testing.assert_allclose(row, _probs(case), rtol=0, atol=1e-10)


@pytest.mark.parametrize("floor", [0, -1.0, "5", True, float("inf"), float("nan")])
def test_a_bad_floor_is_named(floor):
    raw = copy.deepcopy(dict(MODEL.spec.raw))
    raw["analytes"]["hba1c"] = {**raw["analytes"]["hba1c"], "floor": floor}
    with pytest.raises(PriorSetError) as err:
        spec_from_tables(raw, "test")
    assert any("analytes.hba1c: floor must be a positive number" in p
               for p in err.value.problems), err.value.problems
