"""The last menstrual period (LMP) as clinicians write it.

"LMP 12 days ago" is cycle day 13 (day 1 is the LMP's first day); "LMP 2026-11-20" is counted
to the first sample collected as an ISO date-time; three months or more without a period after
it is amenorrhoea (ASRM: secondary amenorrhoea, > 3 months; the same threshold as "last period
4 months ago"); in a pregnancy the LMP dates the gestation (Naegele).  Other date forms
(03/04/2026) are ambiguous between day and month and are not read.
"""

from __future__ import annotations

import pytest

import neb_bayes as nb
from neb_bayes.case import read_case
from neb_bayes.case.menstrual import read_menstrual_phase
from neb_bayes.context import read_context

SURGE = [("lh", 45.0, "IU/L"), ("fsh", 15.0, "IU/L"), ("estradiol", 900.0, "pmol/L")]


def _case(phase: str, collected: str = "09:00", measurements=SURGE, **patient) -> dict:
    return {"case_format": 1, "id": "c",
            "patient": {"sex": "F", "age": 29, "menstrual_phase": phase, **patient},
            "measurements": [{"analyte": a, "value": v, "unit": u, "collected": collected}
                             for a, v, u in measurements]}


@pytest.mark.parametrize(("text", "day"), [
    ("LMP 12 days ago", 13), ("lmp 0 days ago", 1), ("last period 20 days ago", 21),
    ("LMP 13/7 ago", 14), ("regular cycles, LMP 3 days ago", 4)])
def test_lmp_days_ago_is_a_cycle_day(text, day):
    assert read_menstrual_phase(text).cycle_day == day


def test_a_written_cycle_day_wins_over_the_lmp():
    assert read_menstrual_phase("day 5, LMP 12 days ago").cycle_day == 5


@pytest.mark.parametrize("text", ["LMP 03/04/2026", "LMP last month", "LMP 2026-13-40"])
def test_ambiguous_or_invalid_dates_are_not_read(text):
    reading = read_menstrual_phase(text)
    assert reading is None or (reading.lmp_date is None and reading.cycle_day is None)


def test_an_lmp_date_counts_to_the_first_dated_sample():
    case = read_case(_case("LMP 2026-11-20", "2026-12-03T09:00"))
    assert case.patient.menstrual.cycle_day == 14
    assert "ovulatory_phase" in read_context(case).flags
    res = nb.infer(_case("LMP 2026-11-20", "2026-12-03T09:00"), explain=False, uncertainty=False)
    assert res.probabilities["pcos"] < 0.05            # the surge on day 14 is the cycle's


def test_an_lmp_date_without_a_dated_sample_is_listed_not_used():
    ctx = read_context(read_case(_case("LMP 2026-11-20")))
    assert any("LMP 2026-11-20" in n.reason for n in ctx.not_used)
    assert "cycle_phase_unknown" in ctx.flags


def test_an_lmp_four_months_back_is_amenorrhoea():
    tsh = [("tsh", 1.2, "mIU/L")]
    ctx = read_context(read_case(_case("LMP 2026-08-01", "2026-12-03T09:00", tsh)))
    assert "amenorrhea" in ctx.extra_symptoms
    recent = nb.infer(_case("LMP 2026-11-20", "2026-12-03T09:00", tsh), explain=False,
                      uncertainty=False)
    absent = nb.infer(_case("LMP 2026-08-01", "2026-12-03T09:00", tsh), explain=False,
                      uncertainty=False)
    anovulatory = ("pcos", "hypogonadism_secondary_female", "hypogonadism_primary_female")
    assert (sum(absent.probabilities[c] for c in anovulatory)
            > 2 * sum(recent.probabilities[c] for c in anovulatory))


@pytest.mark.parametrize("patient", [{"pregnant": True}, {}], ids=["field", "text"])
def test_a_pregnancy_is_dated_from_its_lmp(patient):
    """Nine weeks from the LMP is the first trimester: a suppressed TSH then is hCG's, not
    hyperthyroidism (facts §1, ATA 2017)."""
    phase = "LMP 2026-10-01" if patient else "pregnant, LMP 2026-10-01"
    tsh = [("tsh", 0.05, "mIU/L"), ("ft4", 16.0, "pmol/L")]
    case = read_case(_case(phase, "2026-12-03T09:00", tsh, **patient))
    ctx = read_context(case)
    assert "pregnancy_t1" in ctx.flags, sorted(ctx.flags)
    assert not any("LMP" in n.reason for n in ctx.not_used)
    assert any("gestational week 9" in a["text"] for a in ctx.assumptions)
