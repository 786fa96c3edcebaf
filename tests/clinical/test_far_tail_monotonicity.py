"""A result further from normal never reads healthier, far beyond every state's range too.

A woman's total testosterone far above the range (facts.md §1: premenopausal women roughly
15-60 ng/dL, ~0.5-2.1 nmol/L) is hyperandrogenism, and above ~5 nmol/L (150 ng/dL) a red flag
for a severe cause: reading it as *healthier* as it rises is wrong.  The model's only
hyperandrogenic state is PCOS, so P(pcos) must not fall and P(none) must not rise along the
way.  It did (P(pcos) 99.9 % at 6 nmol/L, 54 % at 15): a gross error was drawn from the
population of both sexes, so a woman's testosterone of 15 nmol/L read as a likely man's sample.

The same holds wherever a result moves away from the reference interval into the direction of
a condition (facts.md §1 reference intervals): TSH (0.4-4.5 mIU/L) and FT4 (~10-23 pmol/L)
towards thyroid disease, prolactin (ULN 23.3 µg/L women, 15.2 men; ~490 and ~320 mIU/L) towards
hyperprolactinaemia, morning cortisol (5-25 µg/dL, 138-690 nmol/L) towards Cushing's, LH/FSH
(men LH 1.7-8.6, FSH 1.5-12.4; women follicular LH 2-13, FSH 3.5-12.5 IU/L) towards primary
hypogonadism, a man's testosterone below 264 ng/dL (9.2 nmol/L) towards hypogonadism.
Expectations come from those definitions, never from engine output.

The other way round, a result further below the non-diabetic range never reads *more*
dysglycaemia (HbA1c, fasting, 2-h and random glucose; section at the end).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

import neb_bayes as nb
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.exact import infer_exact
from neb_bayes.inference.vectorised import posterior_batch
from neb_bayes.model.compiled import load_model, view_for_sex

MODEL = load_model()
#: the probabilities move by at most this against the definition (rounding only)
TOL = 1e-9
FOLLICULAR = "follicular (day 5)"


def _case(analyte: str, value: float, unit: str, sex: str, age: float,
          phase: str | None = None, symptoms: tuple[str, ...] = ()) -> dict:
    patient = {"sex": sex, "age": age}
    if phase:
        patient["menstrual_phase"] = phase
    return {"case_format": 1, "id": f"{analyte}-{value}",
            "patient": patient,
            "measurements": [{"analyte": analyte, "value": value, "unit": unit,
                              "collected": "08:30"}],
            "symptoms": {"present": list(symptoms)}}


def _readings(cases: list[dict], conditions: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """P(none) and P(any of ``conditions``) of each case (point parameters)."""
    none, cond = [], []
    for case in cases:
        probs = nb.infer(case, uncertainty=False, explain=False).probabilities
        none.append(probs["none"])
        cond.append(sum(probs[c] for c in conditions))
    return np.array(none), np.array(cond)


def _assert_monotone(values, none: np.ndarray, cond: np.ndarray) -> None:
    for (a, b), (n0, n1), (c0, c1) in zip(pairwise(values), pairwise(none), pairwise(cond),
                                          strict=True):
        assert n1 <= n0 + TOL, f"P(none) rises from {n0:.6f} to {n1:.6f} between {a} and {b}"
        assert c1 >= c0 - TOL, f"the condition falls from {c0:.6f} to {c1:.6f} between {a} and {b}"


#: a woman's total testosterone from the upper reference limit (facts §1) to 30 nmol/L
FEMALE_T = [2.1, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0]


@pytest.mark.parametrize("symptoms", [(), ("hirsutism",)], ids=["no-symptoms", "hirsutism"])
def test_female_testosterone_far_above_the_range_never_reads_healthier(symptoms) -> None:
    cases = [_case("testosterone", v, "nmol/L", "F", 26, FOLLICULAR, symptoms) for v in FEMALE_T]
    none, pcos = _readings(cases, ("pcos",))
    _assert_monotone(FEMALE_T, none, pcos)
    # above ~5 nmol/L (150 ng/dL) a woman is hyperandrogenic whatever the cause: not healthy
    assert none[FEMALE_T.index(5.0):].max() < 0.05


def test_male_testosterone_far_below_the_range_never_reads_healthier() -> None:
    # from the harmonised lower limit 264 ng/dL = 9.2 nmol/L (facts §1) to castrate levels: a
    # woman's level in a man is hypogonadism, not a woman's sample
    values = [9.2, 8.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.3]
    cases = [_case("testosterone", v, "nmol/L", "M", 45) for v in values]
    none, hypo = _readings(cases, ("hypogonadism_primary_male", "hypogonadism_secondary_male"))
    _assert_monotone(values, none, hypo)
    assert none[values.index(3.0):].max() < 0.05


SERIES = [
    # (analyte, unit, values moving away from the reference interval, sex, age, phase,
    #  the conditions that direction points to)
    ("tsh", "mIU/L", [10, 20, 50, 100, 200, 500, 1000], "F", 40, None,
     ("primary_hypothyroidism", "subclinical_hypothyroidism")),
    ("ft4", "pmol/L", [30, 40, 60, 80, 100, 150], "F", 40, None,
     ("hyperthyroidism_overt", "hyperthyroidism_subclinical")),
    ("prolactin", "mIU/L", [1000, 2000, 5000, 10000, 20000], "F", 30, FOLLICULAR,
     ("hyperprolactinemia",)),
    ("prolactin", "mIU/L", [1000, 2000, 5000, 10000, 20000], "M", 40, None,
     ("hyperprolactinemia",)),
    ("cortisol", "nmol/L", [700, 900, 1200, 1600, 2000, 3000, 5000], "F", 40, None,
     ("cushings_acth_dependent", "cushings_acth_independent")),
    ("lh", "IU/L", [15, 25, 40, 60, 100, 200, 400], "M", 45, None,
     ("hypogonadism_primary_male",)),
    ("fsh", "IU/L", [15, 25, 40, 60, 100, 200, 400], "M", 45, None,
     ("hypogonadism_primary_male",)),
    ("lh", "IU/L", [15, 25, 40, 60, 100, 200, 400], "F", 30, FOLLICULAR,
     ("hypogonadism_primary_female",)),
    ("fsh", "IU/L", [15, 25, 40, 60, 100, 200, 400], "F", 30, FOLLICULAR,
     ("hypogonadism_primary_female",)),
]


@pytest.mark.parametrize(("analyte", "unit", "values", "sex", "age", "phase", "conditions"),
                         SERIES, ids=[f"{s[0]}-{s[3]}" for s in SERIES])
def test_far_tail_results_never_read_healthier(analyte, unit, values, sex, age, phase,
                                               conditions) -> None:
    cases = [_case(analyte, v, unit, sex, age, phase) for v in values]
    none, cond = _readings(cases, conditions)
    _assert_monotone(values, none, cond)


def test_engines_agree_on_a_sexed_patient_far_in_the_tail() -> None:
    """The full model given a woman's case, her sex view (the single-case path) and the
    vectorised batch engine give the same probabilities: a gross error is another woman's
    result in all three."""
    cases = [nb.read_case(_case("testosterone", v, "nmol/L", "F", 26, FOLLICULAR,
                                ("hirsutism",))) for v in FEMALE_T]
    view = view_for_sex(MODEL, "F")
    evs = [build_evidence(MODEL, c) for c in cases]
    batch, _ = posterior_batch(MODEL, evs)
    for case, ev, row in zip(cases, evs, batch, strict=True):
        full = infer_exact(MODEL, ev, explain=False)
        own = infer_exact(view, build_evidence(view, case), explain=False)
        want = np.append(full.condition_probs, full.none_prob)
        np.testing.assert_allclose(np.append(own.condition_probs, own.none_prob), want,
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(row, want, rtol=0, atol=1e-10)


# -- glycaemia below the non-diabetic range ---------------------------------------------------
# A result below the non-diabetic range (facts §1: HbA1c < 5.7 %, FPG ~70-99 mg/dL) is no
# evidence for diabetes: a low HbA1c points to shortened red-cell survival, haemoglobin
# variants or interference, a low glucose to hypoglycaemia or a delayed sample.  So from far
# above the diabetes cut-offs (facts §4f: HbA1c >= 6.5 %, FPG >= 126 mg/dL, 2-h OGTT and
# random glucose >= 200 mg/dL) to far below the range, a lower value never raises
# P(diabetes); below the prediabetes band (HbA1c 5.7 %, FPG 100, 2-h OGTT glucose 140 mg/dL,
# facts §4f) it never raises P(prediabetes) nor lowers P(none); and a value far below the
# range reads diabetes no more than the patient's prior does.

#: (analyte, unit, values falling over the clinically possible range, the prediabetes band's
#: lower cut or None)
GLYCAEMIA = [
    ("HbA1c", "%", [15, 14, 12, 10, 9, 8, 7.5, 7, 6.8, 6.6, 6.5, 6.4, 6.2, 6.0, 5.8, 5.7, 5.6,
                    5.5, 5.4, 5.3, 5.2, 5.1, 5.0, 4.9, 4.8, 4.6, 4.4, 4.2, 4.0, 3.8, 3.5], 5.7),
    ("fasting glucose", "mg/dL", [400, 350, 300, 250, 200, 175, 150, 140, 130, 126, 125, 120,
                                  110, 105, 100, 99, 95, 90, 88, 85, 82, 80, 75, 70, 65, 60,
                                  55, 50, 45, 40], 100),
    ("glucose 2h ogtt", "mg/dL", [500, 400, 300, 250, 200, 180, 160, 140, 130, 120, 100, 90,
                                  80, 70, 60, 50, 40], 140),
    ("random glucose", "mg/dL", [500, 400, 300, 250, 200, 180, 160, 140, 120, 100, 90, 80, 70,
                                 60, 50, 40], None),
]
ADULTS = [("M", 50), ("F", 30), ("M", 70)]


def _glycaemia(analyte: str, value: float, unit: str, sex: str, age: float) -> dict:
    return {"case_format": 1, "id": f"{analyte}-{value}", "patient": {"sex": sex, "age": age},
            "measurements": [{"analyte": analyte, "value": float(value), "unit": unit}]}


def _non_increasing(values, series, what: str) -> None:
    for (a, b), (p0, p1) in zip(pairwise(values), pairwise(series), strict=True):
        assert p1 <= p0 + TOL, f"{what} rises from {p0:.6f} to {p1:.6f} between {a} and {b}"


@pytest.mark.parametrize(("sex", "age"), ADULTS, ids=[f"{s}{a}" for s, a in ADULTS])
@pytest.mark.parametrize(("analyte", "unit", "values", "band"), GLYCAEMIA,
                         ids=[g[0].replace(" ", "-") for g in GLYCAEMIA])
def test_a_lower_glycaemia_result_never_reads_more_dysglycaemia(analyte, unit, values, band,
                                                                 sex, age) -> None:
    probs = [nb.infer(_glycaemia(analyte, v, unit, sex, age), uncertainty=False,
                      explain=False).probabilities for v in values]
    _non_increasing(values, [p["diabetes"] for p in probs], "P(diabetes)")
    if band is not None:
        below = [i for i, v in enumerate(values) if v <= band]
        low = [values[i] for i in below]
        _non_increasing(low, [probs[i]["prediabetes"] for i in below], "P(prediabetes)")
        _non_increasing(low, [-probs[i]["none"] for i in below], "-P(none)")


@pytest.mark.parametrize(("analyte", "value", "unit"), [
    ("HbA1c", 4.0, "%"), ("HbA1c", 3.5, "%"), ("fasting glucose", 60.0, "mg/dL"),
    ("fasting glucose", 40.0, "mg/dL"), ("glucose 2h ogtt", 50.0, "mg/dL"),
    ("random glucose", 40.0, "mg/dL"),
])
def test_glycaemia_far_below_the_range_reads_diabetes_no_more_than_the_prior(analyte, value,
                                                                              unit) -> None:
    result = nb.infer(_glycaemia(analyte, value, unit, "M", 50), explain=False)
    prior = result.population_prior_probabilities["diabetes"]
    assert result.probabilities["diabetes"] <= prior
    # the parameter draws too: the interval's upper end stays at the prior (small margin)
    assert result.intervals["diabetes"][1] <= prior + 0.02, (result.intervals["diabetes"], prior)
    # and the value is read as such (listed under the adjustments with its item)
    assert any(a["flag"] == "read_at_floor" for a in result.evidence.adjustments)
