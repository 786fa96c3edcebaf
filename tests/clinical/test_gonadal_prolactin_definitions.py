"""Gonadal and prolactin axes read by their textbook definitions.

Expectations come from the definitions and cited figures, never from engine output:

- hyperprolactinaemia is prolactin *excess* (conditions.md: true monomeric prolactin above
  the reference interval; facts.md §4e); a prolactin at or below the reference interval
  (Roche Elecsys women 4.8-23.3, men 4.0-15.2 ng/mL; facts.md §1 prolactin row) is not
  hyperprolactinaemia, and below ~3 ng/mL (women) it is *hypo*prolactinaemia;
- primary ovarian insufficiency is defined before 40 (facts.md §4d "Female primary (POI)");
  a woman over 45 without a period for 12 months is postmenopausal (NICE NG23 1.2.1), and
  menopause is no condition (conditions.md), so it must not read as POI;
- opioid-induced androgen deficiency is secondary hypogonadism (low testosterone with
  low/normal LH/FSH; conditions.md, ES 2018 in facts.md §4d): the drug is its cause, as
  glucocorticoids are the cause of secondary adrenal insufficiency, not a reason to read it
  away.
"""

from __future__ import annotations

import pytest

import neb_bayes as nb

#: 1 ng/mL = 21.2 mIU/L (WHO 84/500; facts.md §1 prolactin row)
MIU_PER_NG = 21.2


def _probs(patient: dict, measurements: list[tuple], present: tuple[str, ...] = ()) -> dict:
    case = {"case_format": 1, "id": "c", "patient": patient,
            "measurements": [{"analyte": a, "value": v, "unit": u, "collected": "08:30",
                              "day": d} for a, v, u, d in measurements],
            "symptoms": {"present": list(present)}}
    return nb.infer(case, uncertainty=False, explain=False).probabilities


# ----------------------------------------------------------------------------- prolactin
#: from 0.9 x each sex's upper reference limit (Roche: 23.3 women, 15.2 men ng/mL) down through
#: the lower limit (4.8, 4.0) to hypoprolactinaemia (< 3 women, < 5 men ng/mL) and 1.5 ng/mL
LOW_PRL_NG = {"F": [21.0, 15.0, 10.0, 6.0, 4.8, 4.0, 3.0, 2.5, 2.0, 1.5],
              "M": [13.7, 10.0, 6.0, 4.0, 3.0, 2.5, 2.0, 1.5]}


@pytest.mark.parametrize("sex", ["F", "M"])
def test_a_normal_or_low_prolactin_is_not_hyperprolactinaemia(sex: str) -> None:
    """A prolactin within or below the reference interval never reads as prolactin excess
    (it read 96 % hyperprolactinaemia at 2.4 ng/mL in a woman: the wide state's tail)."""
    patient = {"sex": sex, "age": 30 if sex == "F" else 40}
    if sex == "F":
        patient["menstrual_phase"] = "follicular (day 5)"
    for ng in LOW_PRL_NG[sex]:
        p = _probs(patient, [("prolactin", round(ng * MIU_PER_NG, 1), "mIU/L", 0)])
        assert p["hyperprolactinemia"] < 0.01, (sex, ng, p["hyperprolactinemia"])


@pytest.mark.parametrize(("sex", "ng"), [("F", 60.0), ("M", 40.0)])
def test_a_prolactin_well_above_the_range_is_raised(sex: str, ng: float) -> None:
    """~2.6x the upper limit (facts.md §1 ULN; §4e a single raised value confirms) is a raised
    prolactin: true excess or, without a PEG test, macroprolactin (19 % of raised samples,
    facts.md §4e), true excess the likelier."""
    case = {"case_format": 1, "id": "c", "patient": {"sex": sex, "age": 30 if sex == "F" else 40},
            "measurements": [{"analyte": "prolactin", "value": round(ng * MIU_PER_NG, 1),
                              "unit": "mIU/L", "collected": "08:30"}]}
    states = nb.infer(case, uncertainty=False).axis_states["prolactin"]
    p = {k: v["probability"] for k, v in states.items()}
    assert p["normal"] < 0.1, p
    assert p["hyperprolactinemia"] > p["macroprolactinemia"], p


# ----------------------------------------------------------------------------- menopause
#: hypergonadotropic hypogonadism: FSH and LH high, estradiol low (facts.md §1 postmenopausal
#: FSH ~26-135 IU/L, estradiol < 20-30 pg/mL; §4d POI FSH > 25 IU/L)
OVARIAN_FAILURE = [("fsh", 80.0, "IU/L", 0), ("lh", 40.0, "IU/L", 0),
                   ("estradiol", "<20", "pmol/L", 0)]


@pytest.mark.parametrize(("age", "cycle"), [(52, "amenorrhoeic for 14 months"),
                                            (47, "amenorrhoea for 2 years")])
def test_menopause_from_age_and_a_year_without_periods_is_not_poi(age: int, cycle: str) -> None:
    """A woman over 45 without a period for 12 months is postmenopausal (NICE NG23 1.2.1),
    whether or not ``menopausal_status`` says so: her high FSH and low estradiol are the
    menopause, not primary ovarian insufficiency (defined before 40, facts.md §4d)."""
    patient = {"sex": "F", "age": age, "menstrual_phase": cycle}
    p = _probs(patient, OVARIAN_FAILURE, present=("hot_flashes",))
    assert p["hypogonadism_primary_female"] < 0.05, p["hypogonadism_primary_female"]
    # the same reading as when the status is written
    stated = _probs({**patient, "menopausal_status": "postmenopausal"}, OVARIAN_FAILURE,
                    present=("hot_flashes",))
    for condition in ("hypogonadism_primary_female", "hypogonadism_secondary_female", "pcos"):
        assert p[condition] == pytest.approx(stated[condition], abs=1e-9), condition


def test_after_menopause_amenorrhoea_is_no_evidence_of_a_condition() -> None:
    """A postmenopausal woman has no periods: written in her cycle text it is physiology, not
    a symptom of PCOS, hyperprolactinaemia or hypothalamic amenorrhoea (facts.md §6 rows)."""
    patient = {"sex": "F", "age": 60, "menopausal_status": "postmenopausal"}
    labs = [("tsh", 2.0, "mIU/L", 0)]
    without = _probs(patient, labs)
    written = _probs({**patient, "menstrual_phase": "amenorrhoeic for 10 years"}, labs)
    for condition in ("pcos", "hyperprolactinemia", "hypogonadism_secondary_female"):
        assert written[condition] == pytest.approx(without[condition], abs=1e-9), condition


def test_the_same_labs_before_40_are_poi() -> None:
    """Age 32, amenorrhoea for 14 months, FSH 80: primary ovarian insufficiency (facts.md §4d)."""
    p = _probs({"sex": "F", "age": 32, "menstrual_phase": "amenorrhoeic for 14 months"},
               OVARIAN_FAILURE, present=("hot_flashes",))
    assert p["hypogonadism_primary_female"] > 0.9, p["hypogonadism_primary_female"]


# ----------------------------------------------------------------------------- opioids
LOW_T_LOW_LH = [("testosterone", 5.0, "nmol/L", 0), ("testosterone", 5.5, "nmol/L", 14),
                ("lh", 1.5, "IU/L", 0), ("fsh", 2.0, "IU/L", 0)]


def _man_on(medications: list[str], labs: list[tuple], present: tuple[str, ...] = ()) -> dict:
    return _probs({"sex": "M", "age": 45, "medications": medications}, labs, present)


def test_opioid_induced_androgen_deficiency_is_secondary_hypogonadism() -> None:
    """Testosterone unequivocally low on two days (< 9.2 nmol/L, facts.md §4d) with low LH and
    sexual symptoms on methadone: secondary hypogonadism, the opioid its cause (63 % of male
    opioid users, de Vries 2020), as without the opioid; it read 22 % (the opioid's result
    shifts explained the deficiency away)."""
    symptoms = ("low_libido", "erectile_dysfunction")
    on = _man_on(["methadone 80 mg daily"], LOW_T_LOW_LH, symptoms)
    off = _man_on([], LOW_T_LOW_LH, symptoms)
    assert off["hypogonadism_secondary_male"] > 0.9
    assert on["hypogonadism_secondary_male"] > 0.9, on["hypogonadism_secondary_male"]


def test_an_opioid_makes_a_borderline_low_testosterone_likelier_hypogonadism() -> None:
    """A borderline testosterone (9 nmol/L, at the harmonised lower limit) with normal LH is
    likelier secondary hypogonadism on a long-term opioid than off it."""
    labs = [("testosterone", 9.0, "nmol/L", 0), ("lh", 3.0, "IU/L", 0)]
    on = _man_on(["oxycodone 20 mg twice daily"], labs)
    off = _man_on([], labs)
    assert on["hypogonadism_secondary_male"] > off["hypogonadism_secondary_male"]


def test_a_normal_testosterone_on_an_opioid_is_not_hypogonadism() -> None:
    """The opioid is a cause, not a diagnosis: a normal morning testosterone and LH read normal."""
    p = _man_on(["methadone 80 mg daily"], [("testosterone", 18.0, "nmol/L", 0),
                                            ("lh", 4.0, "IU/L", 0)])
    assert p["hypogonadism_secondary_male"] < 0.1, p["hypogonadism_secondary_male"]


def test_irregular_cycles_in_the_menopausal_transition_are_not_pcos() -> None:
    """Variable cycles and skipped periods define the menopausal transition (STRAW; Harlow
    2007): in a perimenopausal woman of 49 with FSH 35 IU/L (above the follicular range, facts.md
    §1) they are no evidence of PCOS (Rotterdam oligo-anovulation, facts.md §4g): 36 % with
    them written, 10 % (the prior) without."""
    patient = {"sex": "F", "age": 49, "menopausal_status": "perimenopausal"}
    labs = [("fsh", 35.0, "IU/L", 0), ("estradiol", 150.0, "pmol/L", 0)]
    without = _probs(patient, labs, present=("hot_flashes",))
    written = _probs({**patient, "menstrual_phase": "oligomenorrhoea (cycles 40-90 days)"}, labs,
                     present=("hot_flashes",))
    for condition in ("pcos", "hypogonadism_primary_female", "hypogonadism_secondary_female"):
        assert written[condition] == pytest.approx(without[condition], abs=1e-9), condition


# ----------------------------------------------------------------------------- testosterone therapy
def test_on_testosterone_therapy_a_suppressed_lh_is_the_drug_not_a_diagnosis() -> None:
    """Exogenous testosterone suppresses LH and FSH by negative feedback in every man on it:
    a normal testosterone with undetectable LH/FSH on a gel is not proof of secondary
    hypogonadism (it read 100 % with the gel not recognised), and treated hypogonadism of
    either kind stays possible."""
    labs = [("testosterone", 24.0, "nmol/L", 0), ("lh", "<0.3", "IU/L", 0),
            ("fsh", "<0.3", "IU/L", 0)]
    p = _probs({"sex": "M", "age": 50, "medications": ["testosterone gel 50 mg daily"]}, labs)
    assert p["hypogonadism_secondary_male"] < 0.95, p["hypogonadism_secondary_male"]
    assert p["none"] > 0.01, p["none"]
