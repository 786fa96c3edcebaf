"""Adrenal insufficiency symptoms without laboratory results.

Adrenal insufficiency is rare (primary 82-144, secondary 150-280 per million: facts §5) and its
presenting complaints are the commonest in medicine: fatigue, weakness, weight loss, nausea,
dizziness (facts §6; fatigue 50-95 %, nausea 20-62 %, anorexia and weight loss 43-73 %; source
``ai_symptoms`` in priors/default.yaml).  Even among acute medical inpatients whom clinicians
tested for suspected AI only 11.4 % had it, and a history of glucocorticoid withdrawal, not a
symptom, was the one strong independent factor (nausea: odds ratio 3.4; PMC3574842).  A person
with the non-specific cluster alone and no risk factor stands below such a tested population,
so the cluster must leave AI well below the 5 % at which it would be a likely diagnosis.
Hyperpigmentation is the one specific sign, and only of primary AI (facts §6).
Expectations come from these figures, never from engine output.
"""

from __future__ import annotations

import math

import pytest

import neb_bayes as nb

PRIMARY, SECONDARY = "adrenal_insufficiency_primary", "adrenal_insufficiency_secondary"
CLUSTER = ["fatigue", "weakness", "weight_loss", "nausea", "dizziness_orthostatic"]


def _probs(symptoms: list[str]) -> dict[str, float]:
    case = {"id": "ai-symptoms", "patient": {"sex": "F", "age": 40},
            "symptoms": {"present": symptoms}}
    return nb.infer(case, uncertainty=False).probabilities


def _p_ai(probs: dict[str, float]) -> float:
    return probs[PRIMARY] + probs[SECONDARY]


@pytest.mark.parametrize("symptoms", [CLUSTER, [s for s in CLUSTER if s != "weakness"]],
                         ids=["five", "four"])
def test_non_specific_symptoms_alone_do_not_make_adrenal_insufficiency_likely(symptoms) -> None:
    assert _p_ai(_probs(symptoms)) < 0.05


def test_hyperpigmentation_points_to_primary_adrenal_insufficiency() -> None:
    # the one specific sign (primary only): it raises AI and moves the split to primary
    plain, pigmented = _probs(CLUSTER), _probs([*CLUSTER, "hyperpigmentation"])
    assert _p_ai(pigmented) > _p_ai(plain)
    assert (math.log(pigmented[PRIMARY] / pigmented[SECONDARY])
            > math.log(plain[PRIMARY] / plain[SECONDARY]))
