"""A pregnancy's own symptoms are physiology, not evidence of a condition.

Expectations come from definitions and cited figures, never from engine output: a pregnancy
has no periods, so a pregnant woman's amenorrhoea says nothing of PCOS, hyperprolactinaemia
or hypogonadism; nausea and vomiting come with most first trimesters (69 % of pregnancies,
Einarson et al. 2013; 89 % in early pregnancy, 99 % of them starting in the first trimester,
Chan et al. 2011), so there they say nothing of adrenal insufficiency, whose symptoms they
are otherwise.  Later in pregnancy nausea is uncommon enough to stay evidence.
"""

from __future__ import annotations

import pytest

import neb_bayes as nb

TSH = [{"analyte": "tsh", "value": 1.2, "unit": "mIU/L", "specimen": "serum"}]


def _result(week: int, present: list[str]):
    case = {"case_format": 1, "id": "p", "measurements": TSH,
            "patient": {"sex": "F", "age": 29, "pregnant": True, "gestational_week": week},
            "symptoms": {"present": present}}
    return nb.infer(case, uncertainty=False, explain=False)


@pytest.mark.parametrize("week", [8, 20, 34])
def test_a_pregnant_womans_amenorrhoea_is_no_evidence(week: int) -> None:
    """Amenorrhoea listed in pregnancy moves no condition (PCOS read 17 % against 5 %
    without it) and is listed as not used, as pregnancy's physiology."""
    with_it = _result(week, ["amenorrhea", "fatigue"])
    without = _result(week, ["fatigue"])
    for cond, p in without.probabilities.items():
        assert with_it.probabilities[cond] == pytest.approx(p, rel=1e-12, abs=1e-15), cond
    reasons = [n["reason"] for n in with_it.to_dict()["not_used"] if "amenorrhea" in n["item"]]
    assert reasons and "pregnancy physiology" in reasons[0]


def test_first_trimester_nausea_is_no_evidence_of_adrenal_insufficiency() -> None:
    """Nausea in the first trimester is the pregnancy's (before: it raised secondary adrenal
    insufficiency ~10-fold, so the cosyntropin test led next-test's list)."""
    with_it = _result(9, ["nausea", "fatigue"])
    without = _result(9, ["fatigue"])
    for cond in ("adrenal_insufficiency_primary", "adrenal_insufficiency_secondary"):
        assert with_it.probabilities[cond] == pytest.approx(without.probabilities[cond],
                                                            rel=1e-12, abs=1e-15)


def test_third_trimester_nausea_is_still_evidence() -> None:
    """Late in pregnancy nausea is no longer the rule: it stays a symptom, and raises
    adrenal insufficiency as outside pregnancy."""
    with_it = _result(32, ["nausea", "fatigue"])
    without = _result(32, ["fatigue"])
    assert (with_it.probabilities["adrenal_insufficiency_primary"]
            > without.probabilities["adrenal_insufficiency_primary"])
