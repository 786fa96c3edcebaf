"""On hormonal contraception the bleeding pattern is the method's, not the ovary's.

Expectations from physiology, never from engine output: combined hormonal contraception
inhibits ovulation through hypothalamic-pituitary suppression, its bleeds are withdrawal
bleeds, and absent withdrawal bleeds ("pill amenorrhoea", a thin endometrium) are benign
(Nguyen & Jacobson, Managing Contraception 2016).  So amenorrhoea or infrequent bleeds
written for a woman on the pill say nothing of PCOS, ovarian insufficiency, central
hypogonadism or hyperprolactinaemia, and are listed as not used; off the pill they are
evidence.  Progestogen-only methods alike: poor cycle control is their main adverse effect,
amenorrhoea in about half of DMPA users by 12 months (Australian Prescriber, "Progestogen-only
methods of contraception").
"""

from __future__ import annotations

import pytest

import neb_bayes as nb

TSH = [{"analyte": "tsh", "value": 1.2, "unit": "mIU/L", "specimen": "serum"}]
PILL_TEXT = "on combined OCP, amenorrhoeic"


def _result(patient: dict, present: list[str]):
    case = {"case_format": 1, "id": "p", "measurements": TSH,
            "patient": {"sex": "F", "age": 27, "pregnant": False, **patient},
            "symptoms": {"present": present}}
    return nb.infer(case, uncertainty=False, explain=False)


@pytest.mark.parametrize("symptom", ["amenorrhea", "oligomenorrhea"])
def test_a_listed_missed_period_on_the_pill_is_no_evidence(symptom):
    on_pill = {"medications": ["combined oral contraceptive"]}
    with_it = _result(on_pill, [symptom, "fatigue"])
    without = _result(on_pill, ["fatigue"])
    for cond, p in without.probabilities.items():
        assert with_it.probabilities[cond] == pytest.approx(p, rel=1e-12, abs=1e-15), cond
    reasons = [n["reason"] for n in with_it.to_dict()["not_used"] if symptom in n["item"]]
    assert reasons and "oral estrogen" in reasons[0]


def test_pill_amenorrhoea_in_the_cycle_text_is_no_evidence():
    """The cycle text "on combined OCP, amenorrhoeic" (before: read as a missed period,
    evidence of the anovulatory states)."""
    with_it = _result({"menstrual_phase": PILL_TEXT}, ["fatigue"])
    without = _result({"menstrual_phase": "on combined OCP, active-pill week"}, ["fatigue"])
    for cond, p in without.probabilities.items():
        assert with_it.probabilities[cond] == pytest.approx(p, rel=1e-12, abs=1e-15), cond


def test_off_the_pill_amenorrhoea_stays_evidence():
    with_it = _result({"menstrual_phase": "follicular (day 5)"}, ["amenorrhea", "fatigue"])
    without = _result({"menstrual_phase": "follicular (day 5)"}, ["fatigue"])
    anovulatory = ("pcos", "hypogonadism_secondary_female", "hypogonadism_primary_female")
    assert (sum(with_it.probabilities[c] for c in anovulatory)
            > 2 * sum(without.probabilities[c] for c in anovulatory))


@pytest.mark.parametrize("patient", [
    {"medications": ["desogestrel 75 micrograms daily"]},
    {"medications": ["Nexplanon implant"]},
    {"medications": ["Depo-Provera every 12 weeks"]},
    {"medications": ["Mirena coil"]},
    {"menstrual_phase": "progestogen-only pill, amenorrhoeic"},
], ids=["desogestrel", "implant", "dmpa", "lng-ius", "pop-text"])
def test_amenorrhoea_on_progestogen_only_contraception_is_no_evidence(patient):
    """Amenorrhoea is common on progestogen-only methods (about half of DMPA users by a year):
    the method's bleeding pattern, not the ovary's."""
    with_it = _result(patient, ["amenorrhea", "fatigue"])
    without = _result(patient, ["fatigue"])
    for cond, p in without.probabilities.items():
        assert with_it.probabilities[cond] == pytest.approx(p, rel=1e-12, abs=1e-15), cond
    assert "progestogen_contraception" in with_it.evidence.covariates.flags


def test_a_low_amh_on_the_pill_reads_less_ovarian_insufficiency():
    """The combined pill lowers AMH by ~19 % (Birch Petersen 2015): the same low AMH reads
    less ovarian insufficiency on it than off it, and the report names the adjustment."""
    amh = [{"analyte": "amh", "value": 0.6, "unit": "ng/mL", "specimen": "serum"}]

    def poi(patient):
        case = {"case_format": 1, "id": "a", "measurements": amh,
                "patient": {"sex": "F", "age": 33, "pregnant": False, **patient}}
        return nb.infer(case, uncertainty=False)

    on, off = poi({"medications": ["combined oral contraceptive"]}), poi({})
    assert (on.probabilities["hypogonadism_primary_female"]
            < off.probabilities["hypogonadism_primary_female"])
    texts = [a["text"] for a in on.to_dict()["accounted_for"]]
    assert any("lowers AMH" in t for t in texts), texts
