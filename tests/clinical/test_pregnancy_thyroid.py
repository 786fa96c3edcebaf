"""Pregnancy and the thyroid: the trimester's TSH interval, not the non-pregnant one.

The product's own standard: a pregnant woman's first-trimester low TSH must not read as
hyperthyroid.  The figures are facts.md §1's pregnancy rows: trimester-specific intervals
(Zhang, Nanjing 2019: T1 TSH 0.02-3.78, T2 0.47-3.89, T3 0.55-4.91 mIU/L; FT4 T1 13.93-26.49
pmol/L), ATA 2017 (0.1-4.0 mU/L in T1-T2, the non-pregnant interval in T3) and the ATA rule of
thumb for T1 (non-pregnant limits -0.4 lower, -0.5 upper).  Expectations come from those
sources, never from engine output.
"""

from __future__ import annotations

import math

import pytest

import neb_bayes as nb
from neb_bayes.case.model import Case, Measurement, Patient, Symptoms
from neb_bayes.context import read_context
from neb_bayes.evidence import result_adjustments
from neb_bayes.model.compiled import load_model

MODEL = load_model()
HYPER = ("hyperthyroidism_overt", "hyperthyroidism_subclinical")
HYPER_SYMPTOMS = ("palpitations", "tremor", "weight_loss", "heat_intolerance")
#: a ratio the model's limits may lie outside the cited span (the non-pregnant model's own
#: range, 0.45-5.0 mIU/L, is itself ~10 % above the cited ~0.4-4.5)
SLACK = 1.12


def _patient(week: float | None) -> Patient:
    return Patient(sex="F", age=29, pregnant=week is not None, gestational_week=week)


def _case(tsh: float | str, ft4: float, week: float | None, *, present: tuple[str, ...] = (),
          absent: tuple[str, ...] = ()) -> Case:
    censor = "left" if isinstance(tsh, str) else "none"
    tsh_value = float(tsh.lstrip("<")) if isinstance(tsh, str) else tsh
    ms = (Measurement(index=0, analyte="tsh", specimen="serum", value=tsh_value, censor=censor),
          Measurement(index=1, analyte="ft4", specimen="serum", value=ft4))
    return Case(id="pregnancy-thyroid", patient=_patient(week), measurements=ms,
                symptoms=Symptoms(present=frozenset(present), absent=frozenset(absent)))


def _p_hyper(case: Case) -> float:
    probs = nb.infer(case, uncertainty=False).probabilities
    return sum(probs[c] for c in HYPER)


def _healthy_tsh_range(week: float | None) -> tuple[float, float]:
    """The model's 2.5-97.5 % TSH range of a healthy woman (thyroid axis normal) at ``week``."""
    patient = _patient(week)
    ctx = read_context(Case(id="range", patient=patient))
    ci = next(i for i, c in enumerate(MODEL.channels) if c.name == "tsh")
    ch = MODEL.channels[ci]
    axis = MODEL.axes[ch.axis]
    normal = axis.states.index("normal")
    shift, extra_var, _, _ = result_adjustments(MODEL, ctx, ci, None, None, patient)
    mean = ch.log_median + float(ch.loadings @ axis.lat_mean[normal]) + shift
    var = (float(ch.loadings @ axis.lat_cov[normal] @ ch.loadings)
           + ch.tau**2 + ch.cvi**2 + ch.cva**2 + extra_var)
    half = 1.959964 * math.sqrt(var)
    return math.exp(mean - half), math.exp(mean + half)


@pytest.mark.parametrize(("week", "lower", "upper"), [
    (10.0, (0.02, 0.1), (3.78, 4.0)),    # Zhang T1; ATA 0.1-4.0; rule of thumb ~0.0-4.0
    (20.0, (0.1, 0.47), (3.89, 4.0)),    # ATA 0.1-4.0; Zhang T2
    (33.0, (0.4, 0.55), (4.5, 4.91)),    # ATA: non-pregnant interval; Zhang T3
])
def test_healthy_tsh_range_of_each_trimester_matches_the_sources(week, lower, upper) -> None:
    lo, hi = _healthy_tsh_range(week)
    assert lower[0] / SLACK <= lo <= lower[1] * SLACK, (lo, lower)
    assert upper[0] / SLACK <= hi <= upper[1] * SLACK, (hi, upper)


def test_first_trimester_range_reaches_lower_than_later_trimesters() -> None:
    # hCG peaks at weeks 9-12: the first trimester's interval is the lowest and the widest
    (lo1, hi1), (lo2, hi2), (lo3, hi3) = (_healthy_tsh_range(w) for w in (10.0, 20.0, 33.0))
    assert lo1 < lo2 < lo3
    assert hi1 / lo1 > hi2 / lo2 > hi3 / lo3


def test_first_trimester_low_tsh_with_normal_ft4_is_not_hyperthyroid() -> None:
    # TSH 0.02 (Zhang's T1 lower limit), FT4 16 pmol/L, no hyperthyroid symptoms or signs: it read
    # 0.90 subclinical hyperthyroidism when T1 moved TSH by -0.7 log units only
    absent = (*HYPER_SYMPTOMS, "goiter", "eye_signs")
    assert _p_hyper(_case(0.02, 16.0, 10.0, absent=absent)) < 0.25
    # the same results outside pregnancy are subclinical hyperthyroidism (TSH < 0.1, facts §1)
    assert _p_hyper(_case(0.02, 16.0, None, absent=absent)) > 0.5


def test_higher_first_trimester_tsh_reads_less_hyperthyroid() -> None:
    absent = (*HYPER_SYMPTOMS, "goiter", "eye_signs")
    p = [_p_hyper(_case(tsh, 16.0, 10.0, absent=absent)) for tsh in (0.02, 0.05, 0.1, 0.2)]
    assert p == sorted(p, reverse=True) and p[1] < p[0] / 2, p


@pytest.mark.parametrize("ft4", [30.0, 40.0])
def test_pregnant_overt_hyperthyroidism_still_reads_overt(ft4: float) -> None:
    # FT4 far above the T1 interval (13.93-26.49 pmol/L) with a suppressed TSH and symptoms:
    # overt hyperthyroidism whatever hCG does to TSH
    probs = nb.infer(_case("<0.01", ft4, 10.0, present=HYPER_SYMPTOMS),
                     uncertainty=False).probabilities
    assert probs["hyperthyroidism_overt"] > 0.95
