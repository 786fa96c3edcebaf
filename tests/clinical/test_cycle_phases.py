"""A cycling woman whose phase is not written is read over her cycle's phases.

Expectations come from physiology and cited figures, never from engine output (priors/
default.yaml: source c_cycle_phases):

- facts.md §1: the mid-cycle LH peak is ~14-96 IU/L (follicular LH ~2-13), ovulation
  estradiol ~64-357 pg/mL, mid-luteal progesterone > 3 ng/mL (~10 nmol/L).  A surge is what a
  healthy cycle shows for ~3 days in 28 (the engine's own reading of a cycle day:
  ``neb_bayes.case.menstrual``), so an LH of 45 IU/L with a high estradiol and the phase not
  written is not evidence of PCOS or ovarian insufficiency; written as follicular (day 4) the
  same LH is abnormal.
- PCOS, ovarian insufficiency and central hypogonadism are oligo- or anovulatory by
  definition (Rotterdam; ESHRE; facts §4d, §4g): only the healthy state cycles.
- No phase is summed over where the ovary does not cycle: men, pregnancy, after the
  menopause, on the combined pill, with a cycle disturbance written, before menarche.
- The reading over the phases is the mixture of the readings with each phase written, weighted
  by its share of the cycle (follicular 12/28, ovulatory 3/28, luteal 13/28): the evidence of
  the unknown phase is the weighted sum of the three evidences, and each condition's
  probability the evidence-weighted mean of the three.
"""

from __future__ import annotations

import math

import pytest

import neb_bayes as nb
from neb_bayes.case import read_case
from neb_bayes.context import read_context

ANOVULATORY = ("pcos", "hypogonadism_primary_female", "hypogonadism_secondary_female")
#: the mid-cycle surge (facts §1: LH peak ~14-96 IU/L, ovulation estradiol 235-1310 pmol/L)
SURGE = [("lh", 45.0, "IU/L"), ("fsh", 15.0, "IU/L"), ("estradiol", 900.0, "pmol/L")]
#: mid-luteal progesterone after ovulation (> 10 nmol/L), gonadotropins low-normal
LUTEAL = [("progesterone", 35.0, "nmol/L"), ("lh", 4.0, "IU/L"), ("fsh", 3.5, "IU/L")]
#: each phase's share of a 28-day cycle, as the engine reads a cycle day
SHARES = {"follicular (day 4)": 12 / 28, "ovulatory (day 14)": 3 / 28, "luteal (day 22)": 13 / 28}


def _case(patient: dict, measurements: list[tuple], present=()) -> dict:
    return {"case_format": 1, "id": "c",
            "patient": {"sex": "F", "age": 29, "pregnant": False, **patient},
            "measurements": [{"analyte": a, "value": v, "unit": u, "collected": "09:00"}
                             for a, v, u in measurements],
            "symptoms": {"present": list(present), "absent": ["hirsutism", "acne"]}}


def _infer(patient: dict, measurements: list[tuple], present=()):
    return nb.infer(_case(patient, measurements, present), explain=False, uncertainty=False)


def _flags(patient: dict) -> set[str]:
    return set(read_context(read_case(_case(patient, [("tsh", 1.5, "mIU/L")]))).flags)


@pytest.mark.parametrize("phase", [None, "unknown", "cycle day 40"])
def test_a_mid_cycle_surge_with_the_phase_not_written_reads_healthy(phase):
    patient = {} if phase is None else {"menstrual_phase": phase}
    res = _infer(patient, SURGE)
    for cond in ANOVULATORY:
        assert res.probabilities[cond] < 0.05, (cond, res.probabilities[cond])


def test_the_same_surge_written_follicular_is_abnormal():
    res = _infer({"menstrual_phase": "follicular (day 4)"}, SURGE)
    assert sum(res.probabilities[c] for c in ANOVULATORY) > 0.5


def test_a_written_ovulatory_phase_applies_to_the_healthy_cycle_only():
    """Written as ovulatory, the surge is the healthy cycle's: PCOS is not read with the
    surge added to its own raised LH."""
    res = _infer({"menstrual_phase": "ovulatory (day 14)"}, SURGE)
    assert res.probabilities["pcos"] < 0.05


def test_a_luteal_progesterone_with_the_phase_not_written_reads_ovulation():
    """Progesterone 35 nmol/L means the cycle ovulated: against the anovulatory states."""
    unknown = _infer({}, LUTEAL)
    assert sum(unknown.probabilities[c] for c in ANOVULATORY) < 0.05


@pytest.mark.parametrize("measurements", [SURGE, LUTEAL, [("lh", 14.0, "IU/L"), ("fsh", 5.5, "IU/L"),
                                                            ("testosterone", 2.6, "nmol/L")]],
                         ids=["surge", "luteal", "pcos-like"])
def test_the_unknown_phase_is_the_mixture_of_the_written_phases(measurements):
    unknown = _infer({"menstrual_phase": "unknown"}, measurements)
    known = {ph: _infer({"menstrual_phase": ph}, measurements) for ph in SHARES}
    log_w = {ph: math.log(SHARES[ph]) + r.exact.log_evidence for ph, r in known.items()}
    top = max(log_w.values())
    z = sum(math.exp(v - top) for v in log_w.values())
    assert unknown.exact.log_evidence == pytest.approx(top + math.log(z), abs=1e-4)
    for cond in unknown.probabilities:
        mix = sum(math.exp(log_w[ph] - top) * known[ph].probabilities[cond] for ph in SHARES) / z
        assert unknown.probabilities[cond] == pytest.approx(mix, abs=1e-4), cond


@pytest.mark.parametrize("patient", [
    {"sex": "M"},
    {"pregnant": True, "gestational_week": 10},
    {"age": 60, "menopausal_status": "postmenopausal"},
    {"age": 50},                                              # read as in the transition
    {"medications": ["combined oral contraceptive"]},
    {"menstrual_phase": "amenorrhoeic for 6 months"},
    {"menstrual_phase": "oligomenorrhoea (cycles 45-90 days)"},
    {"menstrual_phase": "on combined OCP, active-pill week"},
    {"menstrual_phase": "luteal (day 22)"},
    {"menstrual_phase": "follicular (day 4)"},
    {"age": 9},
], ids=["man", "pregnant", "postmenopausal", "50-no-status", "pill", "amenorrhoea",
        "oligomenorrhoea", "pill-text", "luteal", "follicular", "child"])
def test_no_phase_is_summed_over_where_the_ovary_does_not_cycle_or_the_phase_is_written(patient):
    assert "cycle_phase_unknown" not in _flags(patient)


@pytest.mark.parametrize("patient", [{}, {"menstrual_phase": "unknown"}, {"sex": None},
                                     {"menstrual_phase": "regular cycles"},
                                     {"age": 47, "menopausal_status": "premenopausal"}],
                         ids=["nothing", "unknown", "sex-unknown", "regular", "47-cycling"])
def test_a_woman_who_may_be_cycling_with_no_phase_is_read_over_the_phases(patient):
    assert "cycle_phase_unknown" in _flags(patient)


def test_the_report_says_the_phases_were_summed_over():
    res = nb.infer(_case({}, SURGE), uncertainty=False)
    texts = [a["text"] for a in res.context_priors()]
    assert any("read over the cycle's phases" in t for t in texts), texts


def test_phases_add_no_states_where_they_cannot_apply():
    """A man's or a postmenopausal woman's model has no phase states (no cost, no change)."""
    from neb_bayes.api import infer

    man = infer(_case({"sex": "M"}, [("tsh", 1.5, "mIU/L")]), explain=False, uncertainty=False)
    woman = infer(_case({}, [("tsh", 1.5, "mIU/L")]), explain=False, uncertainty=False)
    gonadal = man.model.axis_index("gonadal")
    assert not any("ovulatory" in s or "luteal" in s for s in man.model.axes[gonadal].states)
    states = woman.model.axes[gonadal].states
    assert "normal_female_ovulatory" in states and "normal_female_luteal" in states


@pytest.mark.parametrize(("measurements", "above"), [
    ([("fsh", 60.0, "IU/L")], 0.95),
    ([("fsh", 40.0, "IU/L")], 0.6),
    ([("fsh", 60.0, "IU/L"), ("estradiol", 15.0, "pg/mL")], 0.99),
], ids=["fsh-60", "fsh-40", "fsh-60-low-estradiol"])
def test_an_fsh_far_above_the_mid_cycle_peak_still_reads_ovarian_insufficiency(measurements, above):
    """The mid-cycle FSH peak is ~4.7-21.5 IU/L (facts §1, Abbott phase intervals): an FSH of
    40-60 IU/L in a woman of 35 is not the cycle's, phase written or not (with the surge
    state's FSH spread too wide, FSH 60 read 0.31 and FSH 40 0.13)."""
    res = _infer({"age": 35}, measurements)
    assert res.probabilities["hypogonadism_primary_female"] > above


def test_the_report_names_the_phase_the_results_read():
    res = nb.infer(_case({}, SURGE), uncertainty=False)
    entry = next(a for a in res.context_priors() if a["flag"] == "cycle_phase_unknown")
    assert "ovulatory phase (mid-cycle peak) >99.9 %" in entry["text"], entry["text"]


def test_a_fit_label_names_only_states_the_persons_view_has():
    """A label naming the follicular state for a woman whose phase is written luteal is
    impossible for her (the state is closed), and the fit drops her with the reason."""
    from neb_bayes.inference.pymc_model import without_unsupported
    from neb_bayes.model.compiled import load_model

    cases = [read_case(_case({"menstrual_phase": ph}, LUTEAL) | {"id": f"w{i}"})
             for i, ph in enumerate(["luteal (day 22)", "unknown"])]
    label = {"gonadal": ["normal_female"]}
    kept, _, dropped = without_unsupported(load_model(), cases, [label, label])
    assert [c.id for c in kept] == ["w1"]
    assert [cid for cid, _ in dropped] == ["w0"]


@pytest.mark.parametrize("phase", ["follicular (day 4)", "ovulatory (day 14)", "luteal (day 22)"])
def test_the_phases_change_nothing_without_a_gonadal_result(phase):
    """The phases' shares of the healthy state add up to the follicular state's own prior, so
    a case with no result the phase moves (thyroid tests only) reads the same whatever phase is
    written or not."""
    thyroid = [("tsh", 6.5, "mIU/L"), ("ft4", 11.0, "pmol/L")]
    unknown, known = _infer({}, thyroid), _infer({"menstrual_phase": phase}, thyroid)
    for cond, p in known.probabilities.items():
        assert unknown.probabilities[cond] == pytest.approx(p, rel=1e-9, abs=1e-12), cond
    assert unknown.exact.log_evidence == pytest.approx(known.exact.log_evidence, abs=1e-9)
