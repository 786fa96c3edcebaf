"""Diabetes and prediabetes at the ADA cut-offs, read as the definition and the assays' own
variation read them.

The contract (shared/spec/conditions.md) and facts §4f define the categories by each
analyte's value: diabetes HbA1c >= 6.5 %, FPG >= 126 mg/dL; prediabetes HbA1c 5.7-6.4 %,
FPG 100-125 mg/dL.  A single result differs from the patient's own (true) value by its
analytical and within-person variation (facts §2: HbA1c CVA <= 2 %, CVI 1.2 %; glucose CVA
2-3 %, CVI 5.0 %), so a result just past a cut-off is, by that variation alone, more likely
than not a true value past it.  The reference below is that calculation: a Gaussian
measurement error about the true value, and a population density of true values that is flat
on either side of the cut and steps by the ratio of the two categories' prevalences (facts §5:
diabetes 13 %, prediabetes 34.5 %, normal the rest), i.e. each category spread over a width
like its neighbour's.  The engine must agree with it within reason; it need not match it
(its states are Gaussian, not bands).
"""

from __future__ import annotations

import math

import pytest

import neb_bayes as nb
from neb_bayes.model.compiled import load_model

HBA1C_CV = math.hypot(0.02, 0.012)        # facts §2: CVA <= 2 %, CVI 1.2 %
GLUCOSE_CV = math.hypot(0.025, 0.05)      # facts §2: CVA 2-3 % (upper), CVI 5.0 %
DIABETES, PREDIABETES = 0.13, 0.345       # facts §5 (CDC 2020)
NORMAL = 1.0 - DIABETES - PREDIABETES

#: (analyte, unit, cut-off, CV, density ratio above/below the cut, conditions above the cut)
CUTS = {
    "a1c-diabetes": ("HbA1c", "%", 6.5, HBA1C_CV, DIABETES / PREDIABETES, ("diabetes",)),
    "a1c-prediabetes": ("HbA1c", "%", 5.7, HBA1C_CV, PREDIABETES / NORMAL,
                        ("prediabetes", "diabetes")),
    "fpg-diabetes": ("fasting glucose", "mg/dL", 126.0, GLUCOSE_CV, DIABETES / PREDIABETES,
                     ("diabetes",)),
    "fpg-prediabetes": ("fasting glucose", "mg/dL", 100.0, GLUCOSE_CV, PREDIABETES / NORMAL,
                        ("prediabetes", "diabetes")),
}


def _ndtr(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def reference(measured: float, cut: float, cv: float, ratio: float) -> float:
    """P(true value >= cut | one measured value) from measurement error alone (module doc)."""
    z = (cut - measured) / (cv * cut)
    above, below = ratio * _ndtr(-z), _ndtr(z)
    return above / (above + below)


def _case(*results: tuple[str, float, str]) -> dict:
    return {"case_format": 1, "id": "glycaemia",
            "patient": {"sex": "M", "age": 50},
            "measurements": [{"analyte": a, "value": v, "unit": u} for a, v, u in results]}


_CACHE: dict[tuple, dict[str, float]] = {}


def probabilities(*results: tuple[str, float, str]) -> dict[str, float]:
    """Point probabilities (no parameter draws: these tests are about the tables' shape)."""
    if results not in _CACHE:
        _CACHE[results] = nb.infer(_case(*results), explain=False,
                                   uncertainty=False).probabilities
    return _CACHE[results]


def _above(p: dict[str, float], conditions: tuple[str, ...]) -> float:
    return sum(p[c] for c in conditions)


def test_the_reference_reads_a_hba1c_of_6_6_as_more_likely_diabetes():
    """The brief's claim, from facts' figures alone (no engine)."""
    name, unit, cut, cv, ratio, _ = CUTS["a1c-diabetes"]
    assert reference(6.6, cut, cv, ratio) > 0.5
    assert reference(6.4, cut, cv, ratio) < 0.5


def test_hba1c_result_noise_is_facts_cvs_where_the_cut_offs_decide():
    """The model's constant log-scale CVs are facts §2's NGSP-scale CVs moved to log mmol/mol
    between the two cut-offs (IFCC = (NGSP - 2.15) x 10.929 is affine, so the factor changes
    with the level: 1.68 at the 5.3 % median, 1.49 at 6.5 %): within 5 % at both cut-offs."""
    ch = next(c for c in load_model().channels if c.analyte == "hba1c")
    for ngsp in (5.7, 6.5):
        scale = ngsp / (ngsp - 2.15)           # d log(mmol/mol) / d log(%)
        assert ch.cvi == pytest.approx(scale * 0.012, rel=0.05), ngsp
        assert ch.cva == pytest.approx(scale * 0.02, rel=0.05), ngsp


def test_hba1c_just_past_the_diabetes_cut_reads_diabetes_leading():
    p = probabilities(("HbA1c", 6.6, "%"))
    assert p["diabetes"] > p["prediabetes"], {k: round(v, 3) for k, v in p.items() if v > 0.05}


@pytest.mark.parametrize(("cut", "side", "tolerance"), [
    ("a1c-diabetes", -1, 0.1), ("a1c-diabetes", 1, 0.1),
    ("fpg-diabetes", -1, 0.1), ("fpg-diabetes", 1, 0.1),
    # The prediabetes state's Gaussian sits nearer the lower cut than the upper one (most
    # prediabetes is just above 100 mg/dL), so its tail reaches below the lower cut: wider.
    ("a1c-prediabetes", -1, 0.2), ("a1c-prediabetes", 1, 0.2),
    ("fpg-prediabetes", -1, 0.2), ("fpg-prediabetes", 1, 0.2),
])
def test_one_measurement_sd_from_a_cut_agrees_with_measurement_error_alone(cut, side, tolerance):
    name, unit, at, cv, ratio, above = CUTS[cut]
    measured = round(at * (1.0 + side * cv), 2)
    got = _above(probabilities((name, measured, unit)), above)
    want = reference(measured, at, cv, ratio)
    assert got == pytest.approx(want, abs=tolerance), (measured, got, want)


@pytest.mark.parametrize(("results", "leader"), [
    ((("HbA1c", 6.8, "%"),), "diabetes"),
    ((("fasting glucose", 135.0, "mg/dL"),), "diabetes"),
    ((("HbA1c", 6.1, "%"),), "prediabetes"),
    ((("fasting glucose", 112.0, "mg/dL"),), "prediabetes"),
    ((("HbA1c", 5.3, "%"),), "none"),
    ((("fasting glucose", 88.0, "mg/dL"),), "none"),
])
def test_a_clear_step_past_a_cut_puts_that_side_in_the_lead(results, leader):
    p = probabilities(*results)
    glycaemic = {k: p[k] for k in ("none", "prediabetes", "diabetes")}
    assert max(glycaemic, key=glycaemic.__getitem__) == leader, glycaemic


def test_hba1c_and_fpg_both_just_past_the_diabetes_cut_read_diabetes_above_either_alone():
    """Two criteria past the cut (facts §4f's confirmation by a second abnormal result):
    diabetes is then more likely than from either alone, and leads."""
    both = probabilities(("HbA1c", 6.6, "%"), ("fasting glucose", 128.0, "mg/dL"))
    a1c = probabilities(("HbA1c", 6.6, "%"))
    fpg = probabilities(("fasting glucose", 128.0, "mg/dL"))
    assert both["diabetes"] > max(a1c["diabetes"], fpg["diabetes"])
    assert both["diabetes"] > both["prediabetes"]


@pytest.mark.parametrize(("name", "unit", "values"), [
    ("HbA1c", "%", [5.3, 5.5, 5.6, 5.7, 5.8, 6.0, 6.2, 6.4, 6.5, 6.6, 6.8, 7.0,
                    7.5, 8.0, 9.0, 11.0, 14.0]),
    ("fasting glucose", "mg/dL", [88, 90, 96, 100, 104, 110, 118, 124, 126, 128, 135, 150,
                                  200, 300, 450]),
])
def test_glycaemic_conditions_are_monotone_in_each_analyte(name, unit, values):
    """Higher HbA1c or FPG never makes diabetes, or any dysglycaemia, less likely: from the
    healthy median up (below it: tests/clinical/test_far_tail_monotonicity.py)."""
    ps = [probabilities((name, float(v), unit)) for v in values]
    diabetes = [p["diabetes"] for p in ps]
    either = [p["diabetes"] + p["prediabetes"] for p in ps]
    for series in (diabetes, either):
        steps = [b - a for a, b in zip(series, series[1:], strict=False)]
        assert min(steps) >= -1e-9, list(zip(values, (round(s, 4) for s in series),
                                             strict=True))
