"""Physiology of the female gonadal axis is not disease.

Expectations come from definitions and cited figures, never from engine output:

- primary ovarian insufficiency (POI) is loss of ovarian function *before 40* (facts.md §4d
  "Female primary (POI)"; ~1 % of women < 40, facts.md §5); in the menopause transition and
  after menopause FSH is high and estradiol low as physiology (facts.md §1: postmenopausal
  FSH ~26-135 IU/L, estradiol < 20-30 pg/mL).  The transition begins at a median ~47 y and
  the final period comes at a median 52.5 y (SWAN, Gold 2013), so a woman of 45-54 whose
  status and cycle are not given is most likely in the transition or after it: her high FSH
  must not read as POI (priors/default.yaml: sources c_transition_age, c_poi_age).
"""

from __future__ import annotations

import pytest

import neb_bayes as nb
from neb_bayes.case import read_case
from neb_bayes.context import read_context

#: FSH well inside the postmenopausal range (facts.md §1: ~26-135 IU/L) and an estradiol below
#: the postmenopausal cut-off (< 20-30 pg/mL; 15 pg/mL = 55 pmol/L)
HIGH_FSH_LOW_E2 = [("fsh", 80.0, "IU/L"), ("estradiol", 15.0, "pg/mL")]


def _case(patient: dict, measurements: list[tuple], present: tuple[str, ...] = ()) -> dict:
    return {"case_format": 1, "id": "c", "patient": patient,
            "measurements": [{"analyte": a, "value": v, "unit": u, "collected": "09:00"}
                             for a, v, u in measurements],
            "symptoms": {"present": list(present)}}


def _probs(patient: dict, measurements: list[tuple], present: tuple[str, ...] = ()) -> dict:
    return nb.infer(_case(patient, measurements, present), uncertainty=False,
                    explain=False).probabilities


@pytest.mark.parametrize("age", [45, 47, 50, 52, 54])
def test_a_high_fsh_in_the_transition_ages_without_a_status_is_not_poi(age: int) -> None:
    """FSH 80 IU/L with a low estradiol at 45-54, menopausal status and cycle not given: the
    transition or menopause (physiology), not ovarian insufficiency (defined before 40).  It
    read 99.99 % POI."""
    p = _probs({"sex": "F", "age": age}, HIGH_FSH_LOW_E2)
    assert p["hypogonadism_primary_female"] < 0.05, (age, p["hypogonadism_primary_female"])


def test_a_high_fsh_in_a_perimenopausal_woman_is_not_poi() -> None:
    """The same results with the transition given as the status (it read 17 % POI)."""
    p = _probs({"sex": "F", "age": 49, "menopausal_status": "perimenopausal"}, HIGH_FSH_LOW_E2)
    assert p["hypogonadism_primary_female"] < 0.05, p["hypogonadism_primary_female"]


def test_ovarian_failure_before_40_is_still_poi() -> None:
    """The definition's own case: at 32 with amenorrhoea for 6 months, FSH 80 and a low
    estradiol (facts.md §4d: < 40, amenorrhoea >= 4 months, FSH > 25) POI stays the reading."""
    p = _probs({"sex": "F", "age": 32, "menstrual_phase": "amenorrhoeic for 6 months"},
               HIGH_FSH_LOW_E2)
    assert p["hypogonadism_primary_female"] > 0.9, p["hypogonadism_primary_female"]


def test_poi_is_no_likelier_with_age_past_its_definition() -> None:
    """With status and cycle not given, P(POI) given FSH 80 and a low estradiol does not rise
    with age from 45 to 60 (menopause takes over from 45; at 40-44 the state holds early
    menopause, whose share rises with age: tests/clinical/test_ovarian_insufficiency_age.py)."""
    ages = [45, 48, 51, 54, 55, 60]
    p = [_probs({"sex": "F", "age": a}, HIGH_FSH_LOW_E2)["hypogonadism_primary_female"]
         for a in ages]
    for i in range(1, len(ages)):
        assert p[i] <= p[i - 1] + 1e-9, (ages[i - 1], p[i - 1], ages[i], p[i])


@pytest.mark.parametrize(("patient", "expected"), [
    ({"age": 50}, True),
    ({"age": 45}, True),
    ({"age": 44}, False),
    ({"age": 50, "menopausal_status": "premenopausal"}, False),
    ({"age": 50, "menstrual_phase": "follicular (day 5)"}, False),
    ({"age": 50, "menstrual_phase": "unknown"}, True),
])
def test_the_transition_is_read_from_age_only_without_a_status_or_a_cycle(
        patient: dict, expected: bool) -> None:
    """A woman of 45-54 with neither a menopausal status nor a cycle written is read as in the
    transition or after; a status or a cycle phase, when given, is what counts."""
    case = read_case(_case({"sex": "F", **patient}, [("fsh", 6.0, "IU/L")]))
    assert ("perimenopausal" in read_context(case).flags) is expected


# ----------------------------------------------------------------------------- lactation
#: a nursing woman amenorrhoeic at 4 months postpartum: estradiol low (Battin 1985: 4.25 pg/mL
#: in amenorrhoeic nursing women), LH low-normal, FSH normal (McNeilly 1993/1994: FSH sufficient
#: for follicle growth), prolactin raised by suckling (Battin: basal 44-90 ng/mL)
LACTATING = [("estradiol", 8.0, "pg/mL"), ("lh", 2.5, "IU/L"), ("fsh", 5.0, "IU/L"),
             ("prolactin", 60.0, "ng/mL")]


@pytest.mark.parametrize("patient", [
    {"menstrual_phase": "amenorrhoeic for 4 months", "context": ["breastfeeding"]},
    {"menstrual_phase": "lactational amenorrhoea"},
    {"context": ["exclusively breastfeeding, 4 months postpartum"]},
])
def test_lactational_amenorrhoea_is_not_hypogonadism(patient: dict) -> None:
    """Lactational amenorrhoea is physiology: its amenorrhoea and low estradiol are no
    evidence of secondary hypogonadism (it read 99.95 %) and its prolactin none of
    hyperprolactinaemia."""
    p = _probs({"sex": "F", "age": 31, **patient}, LACTATING)
    assert p["hypogonadism_secondary_female"] < 0.05, p["hypogonadism_secondary_female"]
    assert p["hyperprolactinemia"] < 0.05, p["hyperprolactinemia"]


def test_the_same_results_without_lactation_are_hypogonadotropic() -> None:
    """Without lactation the same picture, amenorrhoea with a low estradiol, low-normal
    gonadotropins and a raised prolactin, is hypogonadotropic hypogonadism (facts.md §4d, §4e)."""
    p = _probs({"sex": "F", "age": 31, "menstrual_phase": "amenorrhoeic for 4 months"},
               LACTATING)
    assert p["hypogonadism_secondary_female"] > 0.5, p["hypogonadism_secondary_female"]


def test_amenorrhoea_listed_while_breastfeeding_is_physiology_not_evidence() -> None:
    """Listed as a symptom, the amenorrhoea of a breastfeeding woman is noted as not used."""
    case = _case({"sex": "F", "age": 31, "context": ["breastfeeding"]}, LACTATING,
                 present=("amenorrhea",))
    d = nb.infer(case, uncertainty=False, explain=False).to_dict()
    reasons = [n["reason"] for n in d["not_used"] if "amenorrhea" in n["item"]]
    assert reasons and "breastfeeding" in reasons[0], d["not_used"]


@pytest.mark.parametrize("text", ["postmenopausal", "postmenopausal for 3 years"])
def test_a_cycle_text_that_says_postmenopausal_is_read_as_the_status(text: str) -> None:
    """"Postmenopausal" written in the cycle field with no status given says what the status
    field would: FSH 80 and a low estradiol at 50 are menopause, not POI (it read 99.9 %)."""
    p = _probs({"sex": "F", "age": 50, "menstrual_phase": text}, HIGH_FSH_LOW_E2)
    assert p["hypogonadism_primary_female"] < 0.05, p["hypogonadism_primary_female"]
