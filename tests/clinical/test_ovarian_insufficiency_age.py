"""Ovarian insufficiency, the menopause transition and age.

Expectations come from definitions and cited figures, never from engine output
(priors/default.yaml: sources c_poi_age, c_transition_age, c_ovarian_ageing):

- ``hypogonadism_primary_female`` is ovarian insufficiency (shared/spec/conditions.md: FSH
  high, estradiol low, AMH low).  Before 40 it is POI (facts.md §4d: < 40, FSH > 25 IU/L);
  at 40-44 early menopause (NICE NG23 1.2.5 diagnoses it by FSH at 40-45; British Menopause
  Society: FSH > 30 IU/L with >= 3 months of absent or infrequent periods), ovarian
  insufficiency by mechanism and managed as POI is, so the condition holds it.
- From 45 ovarian failure is the menopause transition or natural menopause: NICE NG23 1.2.1
  diagnoses the perimenopause over 45 from irregular periods, 1.2.3 uses no FSH for it; STRAW+10
  (Harlow 2012): the early transition is a persistent >= 7-day change in cycle length, the
  late transition >= 60 days without a period with FSH > 25 IU/L, and FSH is variable before
  (late reproductive stage).  So a woman of 45-54 written premenopausal, or with her cycle
  written (regular or not), with FSH 80 IU/L and a low estradiol is not ovarian insufficiency.
- Population figures: ~1 % of women have ovarian failure by 40 (facts.md §5), ~5 % by 45
  (early menopause); the prior by age rises between them, without jumps.
"""

from __future__ import annotations

import pytest

import neb_bayes as nb
from neb_bayes.case import read_case
from neb_bayes.context import read_context

POI = "hypogonadism_primary_female"
#: FSH well inside the postmenopausal range (facts.md §1: ~26-135 IU/L) and an estradiol below
#: the postmenopausal cut-off (< 20-30 pg/mL)
HIGH_FSH_LOW_E2 = [("fsh", 80.0, "IU/L"), ("estradiol", 15.0, "pg/mL")]
#: a result on another axis only, so that the gonadal reading is the prior
NEUTRAL = [("tsh", 1.5, "mIU/L")]
AMENORRHOEA = {"menstrual_phase": "amenorrhoeic for 6 months"}


def _case(patient: dict, measurements: list[tuple]) -> dict:
    return {"case_format": 1, "id": "c", "patient": {"sex": "F", **patient},
            "measurements": [{"analyte": a, "value": v, "unit": u, "collected": "09:00"}
                             for a, v, u in measurements]}


def _p(patient: dict, measurements: list[tuple] = HIGH_FSH_LOW_E2) -> float:
    return nb.infer(_case(patient, measurements), uncertainty=False,
                    explain=False).probabilities[POI]


def _flags(patient: dict) -> set[str]:
    return set(read_context(read_case(_case(patient, NEUTRAL))).flags)


# ------------------------------------------------------------------- 45 and over: physiology
@pytest.mark.parametrize("patient", [
    {"age": 45, "menopausal_status": "premenopausal"},
    {"age": 50, "menopausal_status": "premenopausal"},
    {"age": 54, "menopausal_status": "premenopausal"},
    {"age": 50, "menopausal_status": "premenopausal", "menstrual_phase": "regular, day 3"},
    {"age": 50, "menstrual_phase": "follicular (day 5)"},
    {"age": 50, "menstrual_phase": "irregular cycles"},
    {"age": 48, "menstrual_phase": "oligomenorrhoea"},
    {"age": 50, "menstrual_phase": "amenorrhoeic for 6 months"},
    {"age": 50, "menopausal_status": "premenopausal", "menstrual_phase": "irregular cycles"},
])
def test_a_high_fsh_at_45_54_with_a_status_or_a_cycle_is_not_ovarian_insufficiency(
        patient: dict) -> None:
    """FSH 80 IU/L and estradiol 15 pg/mL at 45-54, written premenopausal or with the cycle
    written: the late reproductive stage or the transition (STRAW+10; NICE NG23 1.2.3: FSH
    does not diagnose the menopause over 45), not ovarian insufficiency.  It read 99.9 %."""
    assert _p(patient) < 0.05, patient


def test_an_undetectable_amh_at_50_is_no_ovarian_insufficiency_either() -> None:
    """AMH falls to undetectable in the years before the final period (STRAW+10: AMH low from
    the late reproductive stage; median 0.68 ng/mL over 50 in regularly cycling women,
    Racoubian 2020): beside FSH 80 and a low estradiol at 50, written premenopausal, it is
    no ovarian insufficiency."""
    assert _p({"age": 50, "menopausal_status": "premenopausal"},
              [*HIGH_FSH_LOW_E2, ("amh", 0.05, "ng/mL")]) < 0.05


@pytest.mark.parametrize(("patient", "flag"), [
    ({"age": 50, "menstrual_phase": "irregular cycles"}, "perimenopausal"),
    ({"age": 46, "menstrual_phase": "oligomenorrhoea"}, "perimenopausal"),
    ({"age": 50, "menstrual_phase": "amenorrhoeic for 3 months"}, "perimenopausal"),
    ({"age": 50, "menopausal_status": "premenopausal",
      "menstrual_phase": "irregular cycles"}, "perimenopausal"),
    ({"age": 50, "menopausal_status": "premenopausal"}, "ovarian_ageing"),
    ({"age": 50, "menstrual_phase": "follicular (day 5)"}, "ovarian_ageing"),
])
def test_the_cycle_from_45_tells_the_transition_from_a_cycling_woman(
        patient: dict, flag: str) -> None:
    """From 45, irregular, infrequent or absent periods (under 12 months) are the transition
    by definition (STRAW+10; NICE NG23 1.2.1); a premenopausal status or a cycle without them
    is a woman still cycling at the age of ovarian ageing."""
    flags = _flags(patient)
    assert flag in flags, flags
    assert not {"perimenopausal", "ovarian_ageing", "postmenopausal"} - {flag} & flags, flags


@pytest.mark.parametrize("patient", [
    {"age": 44, "menopausal_status": "premenopausal"},
    {"age": 42, "menstrual_phase": "irregular cycles"},
    {"age": 50, "menopausal_status": "perimenopausal"},
    {"age": 50, "menopausal_status": "postmenopausal"},
    {"age": 50, "menopausal_status": "premenopausal", "medications": [{"name": "combined pill"}]},
])
def test_no_ovarian_ageing_flag_under_45_or_with_another_reading(patient: dict) -> None:
    assert "ovarian_ageing" not in _flags(patient)


# ------------------------------------------------------------------ 40-44: early menopause
@pytest.mark.parametrize("age", [40, 42, 44])
def test_ovarian_failure_at_40_44_is_ovarian_insufficiency(age: int) -> None:
    """Amenorrhoea for 6 months, FSH 80 and a low estradiol at 40-44 is early menopause
    (NICE NG23 1.2.5; BMS: FSH > 30 IU/L and >= 3 months without periods): ovarian
    insufficiency, which the condition holds (conditions.md)."""
    assert _p({"age": age, **AMENORRHOEA}) > 0.9


def test_the_prior_by_age_follows_the_population_figures() -> None:
    """With no gonadal result, P(ovarian insufficiency) in a woman of 40 is about the ~1 % by
    40 and under the ~5 % by 45 at 44, and from 45 far below either (the transition's)."""
    p40, p44, p46 = (_p({"age": a}, NEUTRAL) for a in (40, 44, 46))
    assert 0.005 <= p40 <= 0.02, p40
    assert 0.025 <= p44 <= 0.05, p44
    assert p46 < 0.005, p46


def test_the_prior_rises_smoothly_through_early_menopause() -> None:
    """From 35 to 44.9 the prior never falls and never more than doubles from one half-year to
    the next (the share of women with ovarian failure grows ~1.4-fold a year from 40 to 45)."""
    ages = [35 + 0.5 * i for i in range(20)] + [44.9]
    p = [_p({"age": a}, NEUTRAL) for a in ages]
    for i in range(1, len(ages)):
        assert p[i - 1] * (1 - 1e-6) <= p[i] <= 2 * p[i - 1], (ages[i - 1], p[i - 1], ages[i], p[i])


@pytest.mark.parametrize("patient", [{"age": 42, **AMENORRHOEA}, {"age": 42},
                                     {"age": 50, "menopausal_status": "premenopausal"},
                                     {"age": 32, **AMENORRHOEA}])
def test_ovarian_insufficiency_is_monotone_in_fsh_and_estradiol(patient: dict) -> None:
    """A higher FSH (3-200 IU/L) never lowers P(ovarian insufficiency), a higher estradiol
    from the postmenopausal cut-off up (20-150 pg/mL) never raises it (the definition: FSH
    high, estradiol low; below ~20 pg/mL every hypogonadal state reads the estradiol as low,
    and secondary hypogonadism's lower one may take a little, ~1e-4, from it)."""
    fsh = [_p(patient, [("fsh", f, "IU/L"), ("estradiol", 15.0, "pg/mL")])
           for f in (3, 5, 8, 12, 20, 30, 50, 80, 120, 200)]
    assert all(b >= a - 1e-9 for a, b in zip(fsh, fsh[1:], strict=False)), fsh
    e2 = [_p(patient, [("fsh", 80.0, "IU/L"), ("estradiol", e, "pg/mL")])
          for e in (20, 30, 40, 80, 150)]
    assert all(b <= a + 1e-9 for a, b in zip(e2, e2[1:], strict=False)), e2


def test_with_age_ovarian_failure_reads_early_menopause_then_the_transition() -> None:
    """FSH 80, a low estradiol and 6 months without periods: ovarian insufficiency from 35 to
    44.9, not less likely with age there; from 45 (where NICE NG23 reads the transition or
    menopause) under 5 % and not rising with age."""
    young = [_p({"age": a, **AMENORRHOEA}) for a in (35, 38, 40, 41, 42, 43, 44, 44.9)]
    assert all(p > 0.9 for p in young), young
    assert all(b >= a - 1e-9 for a, b in zip(young, young[1:], strict=False)), young
    old = [_p({"age": a, **AMENORRHOEA}) for a in (45, 47, 50, 52, 54)]
    assert all(p < 0.05 for p in old), old
    assert all(b <= a + 1e-9 for a, b in zip(old, old[1:], strict=False)), old


# --------------------------------------------- regular cycles and the late reproductive stage
#: a single FSH raised to the POI cut-off's range (facts.md §4d: > 25 IU/L) with a follicular
#: estradiol (facts.md §1): the late reproductive stage's pattern (STRAW+10 -3b/-3a)
RAISED_FSH_NORMAL_E2 = [("fsh", 30.0, "IU/L"), ("estradiol", 80.0, "pg/mL")]
REGULAR = {"menstrual_phase": "regular cycles"}


@pytest.mark.parametrize("patient", [
    {"age": 43, **REGULAR},
    {"age": 43, "menopausal_status": "premenopausal", "menstrual_phase": "regular, day 3"},
    {"age": 41, "menstrual_phase": "follicular (day 4)"},
    {"age": 30, **REGULAR},
])
def test_one_raised_fsh_with_regular_cycles_is_not_ovarian_insufficiency(patient: dict) -> None:
    """Ovarian insufficiency needs oligo- or amenorrhoea for >= 4 months and FSH > 25 IU/L
    twice (ESHRE 2016; NICE NG23 1.2.5 tests FSH at 40-45 only with a change in the cycle):
    one FSH of 30 IU/L with a normal estradiol in a woman who cycles is diminished reserve or
    the late reproductive stage, whose FSH is variable (STRAW+10 -3b/-3a)."""
    assert _p(patient, RAISED_FSH_NORMAL_E2) < 0.05, patient


@pytest.mark.parametrize("age", [32, 43])
def test_regular_cycles_written_lower_ovarian_insufficiency(age: int) -> None:
    """The same results read less ovarian insufficiency when the cycles are written as
    regular than when nothing is written about them (the definition needs disturbed periods),
    and irregular cycles do not count as regular."""
    bare = _p({"age": age}, RAISED_FSH_NORMAL_E2)
    regular = _p({"age": age, **REGULAR}, RAISED_FSH_NORMAL_E2)
    irregular = _p({"age": age, "menstrual_phase": "irregular cycles"}, RAISED_FSH_NORMAL_E2)
    assert regular < bare / 3, (bare, regular)
    assert irregular > regular, (irregular, regular)


@pytest.mark.parametrize(("patient", "flags"), [
    ({"age": 43, **REGULAR}, {"regular_cycles", "late_reproductive"}),
    ({"age": 42, "menstrual_phase": "luteal (day 22)"}, {"late_reproductive"}),
    ({"age": 30, **REGULAR}, {"regular_cycles"}),
    ({"age": 50, **REGULAR}, {"regular_cycles", "ovarian_ageing"}),
])
def test_regular_cycles_and_the_late_reproductive_stage_are_read(patient: dict,
                                                                  flags: set[str]) -> None:
    """"Regular cycles" is read from the cycle text (it was listed as not used, and at 45-54
    left the woman read as in the transition); 40-44 and cycling is the late reproductive
    stage."""
    got = _flags(patient)
    assert flags <= got, got
    assert not {"perimenopausal", "postmenopausal"} & got, got
    late = {"late_reproductive"} & got
    assert late == ({"late_reproductive"} & flags), got


@pytest.mark.parametrize("patient", [
    {"age": 42, **AMENORRHOEA}, {"age": 42, "menstrual_phase": "irregular cycles"},
    {"age": 42}, {"age": 42, "menopausal_status": "premenopausal"}, {"age": 38, **REGULAR},
    {"age": 42, **REGULAR, "medications": ["combined pill"]},
])
def test_no_late_reproductive_flag_without_cycling_at_40_44(patient: dict) -> None:
    assert "late_reproductive" not in _flags(patient)


@pytest.mark.parametrize("patient", [{"age": 43, **REGULAR}, {"age": 30, **REGULAR}])
def test_with_regular_cycles_still_monotone_in_fsh(patient: dict) -> None:
    """A higher FSH (3-200 IU/L) never lowers P(ovarian insufficiency), with a normal
    estradiol as with a low one."""
    for e2 in (15.0, 80.0):
        p = [_p(patient, [("fsh", f, "IU/L"), ("estradiol", e2, "pg/mL")])
             for f in (3, 5, 8, 12, 20, 30, 50, 80, 120, 200)]
        assert all(b >= a - 1e-9 for a, b in zip(p, p[1:], strict=False)), (e2, p)


@pytest.mark.parametrize("age", [47, 52])
def test_menopausal_status_n_a_is_read_as_not_given(age: int) -> None:
    """"n/a" (case format: premenopausal | perimenopausal | postmenopausal | n/a | null) tells
    no stage: at 45-54 it reads as a status not given (the transition or after it), so FSH 80
    and a low estradiol are not ovarian insufficiency (it read 99.9 % at 52)."""
    patient = {"age": age, "menopausal_status": "n/a"}
    assert _flags(patient) & {"perimenopausal", "postmenopausal"}
    assert _p(patient) < 0.05


@pytest.mark.parametrize("patient", [
    {"age": 50, "medications": ["combined pill"]},
    {"age": 47, "menopausal_status": "premenopausal", "medications": ["microgynon"]},
    {"age": 52, "menstrual_phase": "on combined OCP, active-pill week"},
])
def test_a_high_fsh_on_the_combined_pill_from_45_is_not_ovarian_insufficiency(
        patient: dict) -> None:
    """NICE NG23 1.2.4: FSH does not diagnose the menopause in a woman on combined hormonal
    contraception; from 45 ovarian failure is the transition or menopause (NICE NG23 1.2.1),
    so FSH 80 and a low estradiol on the pill at 45-54 are not ovarian insufficiency (it
    read 0.95 at 50), and the woman is read as in the transition or after it."""
    assert "perimenopausal" in _flags(patient)
    assert _p(patient) < 0.05, patient


# ------------------------------------------------------------------- under 40: POI by age
@pytest.mark.parametrize(("age", "share"), [(20, 1e-4), (30, 1e-3), (35, 1 / 250), (39, 1e-2)])
def test_the_prior_under_40_follows_the_cumulative_figures(age: int, share: float) -> None:
    """With no gonadal result, P(ovarian insufficiency) is the share of women with ovarian
    failure by that age: 1 in 10,000 by 20, 1 in 1,000 by 30, 1 in 250 by 35, 1 in 100 by
    40 (Coulam 1986 via NICHD; facts.md §5: ~1 % under 40, 0.1 % under 30), within a factor
    of 1.5 (it read ~0.9 % at every age under 40)."""
    p = _p({"age": age}, NEUTRAL)
    assert share / 1.5 <= p <= share * 1.5, (age, p)


def test_the_prior_rises_smoothly_from_youth_to_early_menopause() -> None:
    """From 16 to 44.9 the prior never falls and never rises more than 1.5-fold from one
    half-year to the next (the cumulative figures grow ~1.26-fold a year to 40, ~1.4-fold a
    year from 40 to 45)."""
    ages = [16 + 0.5 * i for i in range(58)] + [44.9]
    p = [_p({"age": a}, NEUTRAL) for a in ages]
    for i in range(1, len(ages)):
        assert p[i - 1] * (1 - 1e-6) <= p[i] <= 1.5 * p[i - 1], (ages[i - 1], p[i - 1],
                                                                 ages[i], p[i])


# ------------------------------------------------------- the combined pill under 45
PILL = {"medications": ["combined pill"]}
FSH_GRID = (3, 5, 8, 12, 20, 30, 50, 80, 120, 200)


def test_fsh_30_on_the_combined_pill_at_44_is_not_ovarian_insufficiency() -> None:
    """NICE NG23 1.2.4: FSH does not diagnose the menopause on combined hormonal
    contraception; ESHRE 2024: the pill may lower FSH and may need stopping before POI is
    confirmed.  FSH 30 IU/L with estradiol 15 pg/mL (the pill suppresses endogenous
    estradiol) at 44 on the pill does not make the diagnosis (it read 0.95)."""
    assert _p({"age": 44, **PILL}, [("fsh", 30.0, "IU/L"), ("estradiol", 15.0, "pg/mL")]) < 0.5


@pytest.mark.parametrize("age", [24, 32, 44])
def test_on_the_combined_pill_fsh_is_weak_evidence(age: int) -> None:
    """On the pill an FSH from 3 to 80 IU/L moves the odds of ovarian insufficiency less
    than 30-fold (weak evidence: NICE NG23 1.2.4, ESHRE 2024), where off it FSH tells
    ovarian failure from health (more than 1,000-fold); still never less for a higher
    FSH (the definition: FSH high)."""
    def odds(p: float) -> float:
        return p / (1 - p)
    for patient, bound in (({"age": age, **PILL}, None), ({"age": age}, 1000.0)):
        p = [_p(patient, [("fsh", f, "IU/L"), ("estradiol", 15.0, "pg/mL")]) for f in FSH_GRID]
        assert all(b >= a - 1e-9 for a, b in zip(p, p[1:], strict=False)), (patient, p)
        moved = odds(p[FSH_GRID.index(80)]) / odds(p[0])
        if bound is None:
            assert moved < 30, (patient, moved)
        else:
            assert moved > bound, (patient, moved)
