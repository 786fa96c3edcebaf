"""One model, two evaluators: the PyMC log-density equals the exact engine's log evidence."""

from __future__ import annotations

import numpy as np
import pytest

from neb_bayes.evidence import build_evidence
from neb_bayes.inference.exact import infer_exact
from neb_bayes.inference.pymc_model import UnsupportedEvidence, cohort_loglik_value, prepare_cohort
from neb_bayes.model.compiled import load_model, view_for_sex
from neb_bayes.model.params import literature_draws, with_params
from neb_bayes.simulate import simulate

from .conftest import (
    FREE,
    covered,
    exact_log_evidence,
    treated_uncovered_case,
    uncovered_cases,
)

MODEL = load_model()


def _covered(cases):
    return covered(MODEL, cases)


@pytest.fixture(scope="module")
def cohort():
    sims = simulate(MODEL, 40, seed=3, p_repeat=0.2, p_measure=0.5)
    cases = _covered([s.case for s in sims])
    assert len(cases) >= 25
    assert any(m.censor != "none" for c in cases for m in c.measurements), "needs censored values"
    assert any(m.day > 0 for c in cases for m in c.measurements), "needs repeated values"
    assert all(len(c.measurements) < len(MODEL.channels) for c in cases), "needs missing values"
    assert {c.patient.sex for c in cases} == {"F", "M"}
    return cases





@pytest.mark.parametrize("draw,free", [(None, ())] + [(7, f) for f in FREE],
                         ids=["prior-set-values"] + [f"draw-7-free-{'+'.join(f) or 'none'}"
                                                     for f in FREE])
def test_pymc_log_density_equals_exact_log_evidence(cohort, draw, free):
    """Every factor has a numpy path (its group fixed) and a graph path (its group free);
    each group alone and all together cover both paths of every factor."""
    draws = None if draw is None else literature_draws(MODEL, 10)
    model = MODEL if draw is None else with_params(MODEL, draws, draw)
    sub = None if draw is None else draws.subset(slice(draw, draw + 1))
    pymc_ll = cohort_loglik_value(MODEL, cohort, sub, free=free)
    exact_ll = exact_log_evidence(model, cohort)
    assert abs(pymc_ll.sum() - exact_ll.sum()) <= 1e-8 * abs(exact_ll.sum())
    np.testing.assert_allclose(pymc_ll, exact_ll, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("free", [(), ("analyte-levels",)], ids=["numpy", "graph"])
def test_gross_error_edge_blocks(free):
    """The gross-error mixture where it matters most or is easiest to get wrong: a wrong
    result far out, a block with one censored result only, a censored result beside
    repeated observed ones (the rank-one downdate), a single result."""
    from neb_bayes.case.model import Case, Measurement, Patient

    def case(name, sex, *ms):
        return Case(id=name, patient=Patient(sex=sex, age=45), measurements=ms)

    cases = [
        case("outlier", "F", Measurement(0, "tsh", "serum", 2000.0),
             Measurement(1, "ft4", "serum", 15.0), Measurement(2, "tsh", "serum", 1.5, day=1)),
        case("censored-only", "F", Measurement(0, "tsh", "serum", 0.01, censor="left")),
        case("censored-with-repeats", "M", Measurement(0, "tsh", "serum", 0.01, censor="left"),
             Measurement(1, "ft4", "serum", 30.0), Measurement(2, "ft4", "serum", 33.0, day=3)),
        case("one-result", "F", Measurement(0, "ft4", "serum", 40.0)),
        # a censored result whose analyte also has observed results: its noise shares the
        # person term with theirs, and the day term with the same day's
        case("censored-with-observed-repeat", "F",
             Measurement(0, "tsh", "serum", 0.01, censor="left"),
             Measurement(1, "tsh", "serum", 0.3, day=2), Measurement(2, "ft4", "serum", 20.0)),
        case("censored-beside-same-day-repeat", "M",
             Measurement(0, "tsh", "serum", 0.01, censor="left"),
             Measurement(1, "tsh", "serum", 0.05), Measurement(2, "tsh", "serum", 0.2, day=5),
             Measurement(3, "ft4", "serum", 30.0)),
        case("censored-above-with-repeats", "F",
             Measurement(0, "ft4", "serum", 100.0, censor="right"),
             Measurement(1, "ft4", "serum", 60.0, day=1), Measurement(2, "ft4", "serum", 70.0,
                                                                      day=2)),
        # a person term (tau > 0) and a daily rhythm: the conditional's offset and slope
        case("censored-cortisol-with-repeats", "M",
             Measurement(0, "cortisol", "serum", 20.0, censor="left", hour=8.0),
             Measurement(1, "cortisol", "serum", 90.0, day=1, hour=16.0),
             Measurement(2, "cortisol", "serum", 60.0, day=1, hour=20.0),
             Measurement(3, "acth", "plasma", 40.0, hour=8.0)),
        # the context's variation, shared by the channel's results (first-trimester TSH)
        Case(id="pregnant-censored-tsh-with-repeat",
             patient=Patient(sex="F", age=30, pregnant=True, gestational_week=10.0),
             measurements=(Measurement(0, "tsh", "serum", 0.01, censor="left"),
                           Measurement(1, "tsh", "serum", 0.08, day=3),
                           Measurement(2, "ft4", "serum", 16.0))),
    ]
    assert MODEL.gross_error_rate > 0
    draws = literature_draws(MODEL, 10)
    pymc_ll = cohort_loglik_value(MODEL, cases, draws.subset(slice(7, 8)), free=free)
    np.testing.assert_allclose(pymc_ll, exact_log_evidence(with_params(MODEL, draws, 7), cases),
                               rtol=1e-10, atol=1e-10)


def test_grouping_does_not_change_the_log_density(cohort):
    """Merging people's symptom scopes into fewer groups is exact."""
    from neb_bayes.inference.pymc_model import group_loglik, theta_constants

    theta = theta_constants(MODEL)
    one = {}
    for g in prepare_cohort(MODEL, cohort, groups_per_view=1):
        one.update(zip(g.case_ids, group_loglik(theta, g), strict=True))
    many = {}
    for g in prepare_cohort(MODEL, cohort, groups_per_view=50):
        many.update(zip(g.case_ids, group_loglik(theta, g), strict=True))
    ids = [c.id for c in cohort]
    np.testing.assert_allclose([one[i] for i in ids], [many[i] for i in ids], rtol=1e-10)


def test_a_present_symptom_with_no_cause_in_the_view_still_counts():
    """A symptom whose causes are all cut from a person's sex view keeps its leak term (it
    was once dropped from a group whose present symptoms had no cause axis)."""
    from neb_bayes.case.model import Case, Patient, Symptoms
    from neb_bayes.inference.pymc_model import group_loglik, theta_constants

    cases = [Case(id=f"s{i}", patient=Patient(sex="F", age=72.0),
                  symptoms=Symptoms(present=frozenset(p), absent=frozenset(["fatigue"])))
             for i, p in enumerate([["striae_thin_pale"], ["striae_thin_pale", "hoarseness"]])]
    theta = theta_constants(MODEL)
    got = {}
    for g in prepare_cohort(MODEL, cases, groups_per_view=len(cases)):
        got.update(zip(g.case_ids, group_loglik(theta, g), strict=True))
    np.testing.assert_allclose([got[c.id] for c in cases], exact_log_evidence(MODEL, cases), rtol=1e-10)


def _impossible_label(i: int, sex: str):
    """A case whose label names a state of the other sex's gonadal axis."""
    from neb_bayes.case.model import Case, Measurement, Patient

    case = Case(id=f"bad-{i}", patient=Patient(sex=sex, age=40), measurements=(
        Measurement(0, "tsh", "serum", 0.01, censor="left"),
        Measurement(1, "ft4", "serum", 5.0, censor="left")))
    return case, {"gonadal": ["pcos" if sex == "M" else "normal_male"]}


def test_impossible_labels_are_named():
    case, label = _impossible_label(0, "M")
    with pytest.raises(UnsupportedEvidence, match=r"bad-0: label gonadal=\['pcos'\] impossible"):
        prepare_cohort(MODEL, [case], [label])


def test_every_case_with_an_impossible_label_is_named_and_can_be_left_out():
    """All the cohort's cases a fit cannot use in one error (across groups: both sexes), the
    message naming five and counting the rest; ``without_unsupported`` drops exactly
    those, with their labels."""
    from neb_bayes.inference.pymc_model import without_unsupported

    good = _covered([s.case for s in simulate(MODEL, 6, seed=8, p_measure=0.4)])
    bad = [_impossible_label(i, "F" if i % 2 else "M") for i in range(7)]
    cohort = [c for pair in zip([b for b, _ in bad], good, strict=False) for c in pair]
    cohort += [b for b, _ in bad[len(good):]]
    by_id = {b.id: lab for b, lab in bad}
    labels = [by_id.get(c.id) for c in cohort]
    with pytest.raises(UnsupportedEvidence) as err:
        prepare_cohort(MODEL, cohort, labels)
    assert sorted(cid for cid, _ in err.value.cases) == sorted(by_id)
    assert all("impossible for this person" in msg for _, msg in err.value.cases)
    assert str(err.value).count("bad-") == 5 and str(err.value).endswith("and 2 more")
    kept, kept_labels, dropped = without_unsupported(MODEL, cohort, labels)
    assert [c.id for c in kept] == [c.id for c in good]
    assert kept_labels == [None] * len(good) and len(dropped) == len(bad)
    prepare_cohort(MODEL, kept, kept_labels)           # what is left is usable
    assert without_unsupported(MODEL, kept) == (kept, None, [])
    # without the labels the same cases are used whole (two censored results on the thyroid
    # axis: that factor from the exact engine)
    assert len(without_unsupported(MODEL, cohort)[0]) == len(cohort)


def test_labels_restrict_the_states():
    sims = simulate(MODEL, 6, seed=5, p_measure=0.4)
    cases = _covered([s.case for s in sims])
    labels = [{"thyroid": [s.states["thyroid"]]} for s in sims if s.case in cases]
    free = cohort_loglik_value(MODEL, cases)
    fixed = cohort_loglik_value(MODEL, cases, labels=labels)
    # log p(y, s_thyroid) <= log p(y), with equality only when the label has all the mass
    assert np.all(fixed <= free + 1e-9)
    # a prevalence fit's path (constant tables with the labels in them, one Op per sex view)
    # gives the same labelled log evidence
    graph = cohort_loglik_value(MODEL, cases, labels=labels, free=("prevalence",))
    np.testing.assert_allclose(graph, fixed, rtol=1e-10, atol=1e-10)


@pytest.fixture(scope="module")
def treated_cohort():
    """The context examples (with and without their context) that this formulation covers:
    treated disease moves latent distributions (levothyroxine, antithyroid drugs, ...) and
    lowers symptom cause probabilities."""
    import glob

    from neb_bayes.case import read_case

    cases = _covered([read_case(p) for p in sorted(glob.glob("cases/examples/context/*_with.yaml"))])
    evs = [build_evidence(view_for_sex(MODEL, c.patient.sex), c) for c in cases]
    # the treated ones, plus two without such context (each context is a group of its own)
    keep = [i for i, ev in enumerate(evs) if ev.context_signature]
    keep += [i for i, ev in enumerate(evs) if not ev.context_signature][:2]
    cases, evs = [cases[i] for i in keep], [evs[i] for i in keep]
    # repeats under a context whose effect varies between people (pregnancy's TSH shift):
    # the repeats share that variation
    from neb_bayes.case.model import Case, Measurement, Patient

    for cid, week, days in (("preg-t2-two-tsh-same-day", 20.0, (0.0, 0.0)),
                            ("preg-t1-tsh-day0-day30", 10.0, (0.0, 30.0))):
        cases.append(Case(id=cid, patient=Patient(sex="F", age=30, pregnant=True,
                                                  gestational_week=week),
                          measurements=(Measurement(0, "tsh", "serum", 4.0, day=days[0]),
                                        Measurement(1, "tsh", "serum", 5.0, day=days[1]),
                                        Measurement(2, "ft4", "serum", 10.0))))
        evs.append(build_evidence(view_for_sex(MODEL, "F"), cases[-1]))
    assert any(b.extra_var is not None and np.count_nonzero(b.extra_var) > 1
               for ev in evs for b in ev.blocks), "needs repeats with context variation"
    assert sum(bool(ev.lat_shift) for ev in evs) >= 5, "needs latent shifts"
    assert any(ev.cause_scale is not None and (ev.present.size or ev.absent.size) for ev in evs), \
        "needs symptom factors on reported symptoms"
    return cases


@pytest.mark.parametrize("free", [(), ("prevalence",), ("analyte-levels", "prevalence", "symptoms")],
                         ids=["numpy", "prevalence-only", "graph"])
def test_pymc_log_density_applies_context_of_treated_disease(treated_cohort, free):
    """Context latent shifts and symptom factors are part of the one model: the PyMC
    log-density equals the exact engine's for treated people too, on the numpy and the graph
    path of each factor.  At the prior set's values: several of these cases give the lab's
    reference interval, and that correction is read against the medians of the model the
    evidence is built with (the prior set's, in a fit)."""
    pymc_ll = cohort_loglik_value(MODEL, treated_cohort, None, free=free)
    exact_ll = exact_log_evidence(MODEL, treated_cohort)
    np.testing.assert_allclose(pymc_ll, exact_ll, rtol=1e-8, atol=1e-8)


def test_context_changes_the_log_evidence(treated_cohort):
    """The check above can fail: read without its context, a treated person's log evidence
    moves by far more than its tolerance (where the context moves an axis with results, or
    the symptoms: a latent shift on an axis without results, e.g. a pituitary lesion's
    narrower prolactin excess with no prolactin measured, moves none)."""
    import dataclasses

    moved = []
    for c in treated_cohort:
        view = view_for_sex(MODEL, c.patient.sex)
        ev = build_evidence(view, c)
        measured = {b.axis for b in ev.blocks}
        if not set(ev.lat_shift) & measured and ev.cause_scale is None:
            continue
        bare = dataclasses.replace(ev, lat_shift={}, cause_scale=None)
        moved.append(abs(infer_exact(view, ev, explain=False).log_evidence
                         - infer_exact(view, bare, explain=False).log_evidence))
    assert len(moved) >= 5 and min(moved) > 1e-4, moved


@pytest.mark.parametrize("free", FREE, ids=["+".join(f) or "none" for f in FREE])
def test_every_case_is_covered(cohort, free):
    """A person's factor on an axis the information form does not cover (two censored
    results on it) is the exact engine's, a constant
    or, with the analyte levels free, an Op with a finite-difference gradient
    (``test_exact_lab_block.py``): the whole log-density still equals the exact engine's log
    evidence, person by person, beside the covered people of the same groups (the other axes
    of these people in information form), under a parameter draw that is not the prior
    set's values, whichever parameter groups are free."""
    cases = list(cohort[:12]) + uncovered_cases() + [treated_uncovered_case()]
    groups = prepare_cohort(MODEL, cases)
    via_exact = {g.case_ids[p] for g in groups for people in g.exact.values() for p in people}
    assert via_exact == {c.id for c in cases[12:]}
    # treated disease moves this person's thyroid latents (the shift applied per evidence)
    assert any(g.lat_shift and g.exact for g in groups)
    draws = literature_draws(MODEL, 10)
    pymc_ll = cohort_loglik_value(MODEL, cases, draws.subset(slice(7, 8)), free=free)
    np.testing.assert_allclose(pymc_ll, exact_log_evidence(with_params(MODEL, draws, 7), cases),
                               rtol=1e-10, atol=1e-10)
