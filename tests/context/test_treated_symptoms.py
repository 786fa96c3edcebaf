"""Treated disease causes fewer symptoms (``context_effects`` rows with ``symptoms``).

On an antithyroid drug or thyroid hormone replacement, the treated condition's noisy-OR cause
probabilities are multiplied by the row's factor, so absent symptoms count less against the
treated state (and present ones less for it).  The leak (symptoms from other causes) is
unchanged.  Every engine reads the same tables: the point engine, the draws path (checked
per draw in ``tests/engine/test_draws.py``) and the batch engine (which hands such cases to
the point engine).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import neb_bayes as nb
from neb_bayes.case.model import Case, Measurement, Medication, Patient, Symptoms
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.batch_exact import infer_batch
from neb_bayes.inference.exact import infer_exact
from neb_bayes.model.compiled import compile_spec, load_model
from neb_bayes.model.spec import PriorSetError, spec_from_tables

MODEL = load_model()
HYPER = ("palpitations", "tremor", "weight_loss", "heat_intolerance", "anxiety")


def _without_symptom_rows(model):
    raw = copy.deepcopy(model.spec.raw)
    raw["context_effects"] = [r for r in raw["context_effects"] if "symptoms" not in r]
    return compile_spec(spec_from_tables(raw, "test"))


def _case(meds: tuple[str, ...], present=(), absent=HYPER) -> Case:
    ms = (Measurement(index=0, analyte="tsh", specimen="serum", value=0.3),
          Measurement(index=1, analyte="ft4", specimen="serum", value=17.0))
    return Case(id="treated", patient=Patient(
        sex="F", age=45, medications=tuple(Medication(name=m, raw=m) for m in meds)),
        measurements=ms, symptoms=Symptoms(present=frozenset(present), absent=frozenset(absent)))


def _p(model, case, condition="hyperthyroidism_overt") -> float:
    post = infer_exact(model, build_evidence(model, case), explain=False)
    return float(dict(zip(model.conditions, post.condition_probs, strict=True))[condition])


def test_absent_symptoms_count_less_against_treated_hyperthyroidism() -> None:
    case = _case(("carbimazole 10 mg daily",))
    with_rows, without_rows = _p(MODEL, case), _p(_without_symptom_rows(MODEL), case)
    assert with_rows > without_rows
    # the symptoms are the only difference: with none reported the two models agree
    bare = _case(("carbimazole 10 mg daily",), absent=())
    assert _p(MODEL, bare) == pytest.approx(_p(_without_symptom_rows(MODEL), bare), rel=1e-12)


def test_off_treatment_the_symptoms_keep_their_full_weight() -> None:
    case = _case(())
    assert build_evidence(MODEL, case).cause_scale is None
    assert _p(MODEL, case) == pytest.approx(_p(_without_symptom_rows(MODEL), case), rel=1e-12)


def test_the_report_accounts_for_it_only_when_symptoms_are_reported() -> None:
    text = "antithyroid drug: treated hyperthyroidism causes fewer symptoms"
    acc = nb.infer(_case(("carbimazole 10 mg daily",)), uncertainty=False).to_dict()["accounted_for"]
    assert any(a["text"] == text and a["items"] == ["symptoms"] for a in acc)
    acc = nb.infer(_case(("carbimazole 10 mg daily",), absent=()), uncertainty=False).to_dict()
    assert not any(a["text"] == text for a in acc["accounted_for"])


def test_cause_probabilities_are_scaled_exactly() -> None:
    ev = build_evidence(MODEL, _case(("levothyroxine 100 micrograms",), absent=("fatigue",)))
    table = MODEL.symptom_table
    p = 1 / (1 + np.exp(-table.cause_logit))
    p_scaled = 1 / (1 + np.exp(-table.scaled_cause_logit(ev.cause_scale)))
    np.testing.assert_allclose(p_scaled, p * ev.cause_scale, rtol=1e-12)
    hypo = [i for i, (cause, _) in enumerate(table.entries) if cause == "primary_hypothyroidism"]
    assert np.allclose(ev.cause_scale[hypo], 0.35)
    assert np.all(ev.cause_scale[[i for i in range(len(table.entries)) if i not in hypo]] <= 1)


def test_batch_engine_equals_the_point_engine_on_treated_cases() -> None:
    cases = [_case(("carbimazole 10 mg daily",)), _case(("levothyroxine 50 micrograms",),
             present=("fatigue", "dry_skin"), absent=("cold_intolerance",)), _case(())]
    evs = [build_evidence(MODEL, c) for c in cases]
    batch = infer_batch(MODEL, evs)
    for row, ev in zip(batch, evs, strict=True):
        post = infer_exact(MODEL, ev, explain=False)
        np.testing.assert_allclose(row, np.append(post.condition_probs, post.none_prob),
                                   rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(("cause", "factor"), [("no_such_condition", 0.5),
                                               ("primary_hypothyroidism", 1.5),
                                               ("primary_hypothyroidism", 0.0)])
def test_prior_set_rejects_an_invalid_symptom_row(cause: str, factor: float) -> None:
    raw = copy.deepcopy(MODEL.spec.raw)
    raw["context_effects"].append({"flag": "levothyroxine", "symptoms": {cause: factor},
                                   "text": "x", "src": "team"})
    with pytest.raises(PriorSetError, match="symptoms"):
        spec_from_tables(raw, "test")
