"""Cushing's syndrome from its signs alone, and with its screening tests.

The figures: Nieman et al., Endocrine Society guideline, JCEM 2008 (facts §4a work-up row):
test only patients with multiple and progressive features, particularly those of high
discriminatory value (easy bruising, facial plethora, proximal myopathy, reddish-purple
striae); even then screening is a test, not a diagnosis (yields in high-risk groups of the
order of 0.5-5 %; 26 of 353 at-risk endocrinology outpatients, 7.4 %, León-Justel 2016).  A
single sign's discriminant index, its frequency in Cushing's over its frequency in (obese)
patients without it, is at most 8.0-10.3 (bruising, myopathy; Ross & Linch, Lancet 1982).
Three abnormal high-accuracy tests (1 mg DST, late-night salivary cortisol, UFC; each LR+
~10-15, facts §4a Galm 2020) with the features make it a diagnosis.  Expectations come from
those figures, never from engine output.
"""

from __future__ import annotations

import math

import pytest

import neb_bayes as nb
from neb_bayes.posterior import Result

SIGNS = ["moon_face", "purple_striae", "easy_bruising", "proximal_weakness", "hypertension"]
DISCRIMINATING = ["easy_bruising", "facial_plethora", "proximal_weakness", "purple_striae"]
#: the largest discriminant index of one sign (Ross & Linch 1982: bruising, myopathy 8.0-10.3)
MAX_SIGN_ODDS = 10.3
#: the guideline's lower yield of screening high-risk groups: a woman with the full picture
#: is at least as likely to have it as they are
MIN_P_FULL_PICTURE = 0.005
SCREENING_POSITIVE = [
    {"analyte": "cortisol after 1 mg dexamethasone", "value": 9.0, "unit": "µg/dL",
     "collected": "08:00"},                                                  # > 1.8 µg/dL
    {"analyte": "cortisol", "specimen": "saliva", "value": 0.45, "unit": "µg/dL",
     "collected": "23:00", "method": "lc-ms/ms"},                           # > 0.09 µg/dL
    {"analyte": "UFC", "specimen": "urine_24h", "value": 250, "unit": "µg/24h"},  # > ~45
]


def _infer(present: list[str], measurements: list[dict] | None = None) -> Result:
    case = {"id": "cushing-signs", "patient": {"sex": "F", "age": 50},
            "measurements": measurements or [], "symptoms": {"present": present}}
    return nb.infer(case, uncertainty=False)


def _p_cushing(result: Result, prior: bool = False) -> float:
    p = result.prior_probabilities if prior else result.probabilities
    return p["cushings_acth_dependent"] + p["cushings_acth_independent"]


def _odds(p: float) -> float:
    return p / (1.0 - p)


def _axis_state(result: Result, axis: str, state: str) -> float:
    model = result.model
    ai = [a.name for a in model.axes].index(axis)
    return float(result.exact.marginals[ai][model.axes[ai].states.index(state)])


def test_signs_alone_are_a_reason_to_test_not_a_diagnosis() -> None:
    result = _infer(SIGNS)
    p = _p_cushing(result)
    assert MIN_P_FULL_PICTURE < p < 0.5
    # the pituitary reading follows Cushing's disease: no more likely than Cushing's itself
    assert _axis_state(result, "pituitary", "disease") < 0.5


@pytest.mark.parametrize("sign", DISCRIMINATING)
def test_one_sign_moves_the_odds_by_a_single_digit_factor(sign: str) -> None:
    result = _infer([sign])
    before, after = _p_cushing(result, prior=True), _p_cushing(result)
    assert 1.0 < _odds(after) / _odds(before) <= MAX_SIGN_ODDS


def test_each_further_sign_raises_the_probability() -> None:
    probs = [_p_cushing(_infer(SIGNS[:1]), prior=True)]
    probs += [_p_cushing(_infer(SIGNS[:k])) for k in range(1, len(SIGNS) + 1)]
    assert all(b > a for a, b in zip(probs, probs[1:], strict=False)), probs


def test_signs_with_three_abnormal_screening_tests_are_cushings() -> None:
    assert _p_cushing(_infer(SIGNS, SCREENING_POSITIVE)) > 0.95


@pytest.mark.parametrize("k", range(len(SCREENING_POSITIVE)))
def test_each_abnormal_screening_test_raises_it(k: int) -> None:
    without = _p_cushing(_infer(SIGNS))
    assert math.isfinite(without)
    assert _p_cushing(_infer(SIGNS, [SCREENING_POSITIVE[k]])) > without
