"""A daily-rhythm result without a collection time in the fit's information form.

Its rhythm is a variance that the own axis' state scales (a flattened cortisol rhythm in
Cushing's syndrome), so such a person's results are read once per own state
(:func:`~neb_bayes.inference.pymc_model._per_own_state`): the whole log density still equals
the exact engine's log evidence, and the kernel's value and hand-written gradient equal the
exact engine's factor and its finite differences.  Before, these people's factors were the
exact engine's with finite-difference gradients (~2.5 ms per person and evaluation).
"""

from __future__ import annotations

import numpy as np
import pytest

from neb_bayes.case.model import Case, Measurement, Patient, Symptoms
from neb_bayes.inference.pymc_model import cohort_loglik_value, prepare_cohort
from neb_bayes.model.compiled import load_model
from neb_bayes.model.params import literature_draws, with_params

from .conftest import (
    FREE,
    assert_log_density_equals_exact,
    beside_simulated,
    exact_log_evidence,
    kernel_against_exact,
)

MODEL = load_model()
M = Measurement


def untimed_cases() -> list[Case]:
    """Results with a daily rhythm and no collection time, alone and beside others: repeated
    on two days, below its limit, below its limit beside a timed result of its channel,
    salivary, an extreme value (the gross-error mixture), testosterone in a man and a woman."""
    return [
        Case(id="cortisol-untimed-twice", patient=Patient(sex="M", age=52), measurements=(
            M(0, "cortisol", "serum", 420.0), M(1, "cortisol", "serum", 610.0, day=14),
            M(2, "acth", "plasma", 6.0, hour=8.5), M(3, "tsh", "serum", 2.1))),
        Case(id="cortisol-untimed-below-limit", patient=Patient(sex="F", age=61), measurements=(
            M(0, "cortisol", "serum", 28.0, censor="left"), M(1, "acth", "plasma", 3.0, hour=9),
            M(2, "sodium", "serum", 131.0)),
            symptoms=Symptoms(present=frozenset(["fatigue"]))),
        Case(id="cortisol-untimed-censored-beside-timed", patient=Patient(sex="M", age=44),
             measurements=(M(0, "cortisol", "serum", 560.0, hour=8),
                           M(1, "cortisol", "serum", 30.0, censor="left", day=3),
                           M(2, "cortisol", "saliva", 9.0, day=3))),
        Case(id="acth-untimed-extreme", patient=Patient(sex="F", age=38), measurements=(
            M(0, "acth", "plasma", 900.0), M(1, "cortisol", "serum", 300.0, hour=8),
            M(2, "dheas", "serum", 5.0))),
        Case(id="testosterone-untimed-man", patient=Patient(sex="M", age=58), measurements=(
            M(0, "testosterone", "serum", 7.5), M(1, "lh", "serum", 3.0), M(2, "fsh", "serum", 4.0),
            M(3, "shbg", "serum", 35.0), M(4, "testosterone", "serum", 8.1, hour=8, day=10))),
        Case(id="testosterone-untimed-woman", patient=Patient(sex="F", age=27), measurements=(
            M(0, "testosterone", "serum", 3.4), M(1, "lh", "serum", 14.0),
            M(2, "fsh", "serum", 5.0), M(3, "shbg", "serum", 30.0))),
    ]


@pytest.fixture(scope="module")
def cohort() -> list[Case]:
    """The untimed cases beside simulated people of the same groups."""
    return beside_simulated(MODEL, untimed_cases(), seed=11)


def test_untimed_people_are_read_per_own_state_not_by_the_exact_engine(cohort):
    groups = prepare_cohort(MODEL, cohort)
    assert not any(g.exact for g in groups)
    per_state = {g.case_ids[p] for g in groups for ad in g.axes
                 for p in ad.rows[ad.rows.size - ad.per_state:]}
    assert per_state == {c.id for c in untimed_cases()}
    for g in groups:
        for ad in g.axes:
            S = g.model.axes[ad.axis].n_states
            assert ad.A.shape[0] == ad.rows.size + ad.per_state * (S - 1)


@pytest.mark.parametrize("free", FREE, ids=["+".join(f) or "none" for f in FREE])
def test_log_density_equals_the_exact_engines(cohort, free):
    """Person by person, under a parameter draw that is not the prior set's values, whichever
    groups are free (numpy path and graph path)."""
    assert_log_density_equals_exact(MODEL, cohort, free)


def test_the_rhythms_variance_per_state_matters(monkeypatch):
    """The per-state variance is what makes the two equal: with the healthy amplitude's
    variance in every state's copy, the log evidence of a Cushing's-range untimed cortisol
    differs from the exact engine's."""
    import neb_bayes.inference.pymc_model as pymc_model

    case = Case(id="cortisol-untimed-high", patient=Patient(sex="F", age=40), measurements=(
        M(0, "cortisol", "serum", 950.0), M(1, "cortisol", "serum", 1100.0, day=7)))
    draws = literature_draws(MODEL, 10)
    exact = exact_log_evidence(with_params(MODEL, draws, 7), [case])
    assert cohort_loglik_value(MODEL, [case], draws.subset(slice(7, 8))) == pytest.approx(
        exact, abs=1e-10)
    real = pymc_model._per_own_state

    def one_amplitude(model, ai, chans, pos_of, res, n):
        out, apart = real(model, ai, chans, pos_of, res, n)
        copies = out["person"] >= n
        out["diag"][copies] = out["diurnal_var"][copies]
        return out, apart

    monkeypatch.setattr(pymc_model, "_per_own_state", one_amplitude)
    wrong = cohort_loglik_value(MODEL, [case], draws.subset(slice(7, 8)))
    assert abs(wrong[0] - exact[0]) > 1e-3


def test_kernel_value_and_gradient_equal_the_exact_engines(cohort):
    """On the per-state people, the kernel's factor equals the exact engine's and its
    hand-written vector-Jacobian product the exact engine's finite differences."""
    draws = literature_draws(MODEL, 10)
    rng = np.random.default_rng(0)
    checked = 0
    for g in prepare_cohort(MODEL, cohort):
        if g.lat_shift:
            continue
        for ad in g.axes:
            if not ad.per_state:
                continue
            kernel, _, (mean, sd, med), _, g_exact, g_kernel = kernel_against_exact(
                g, ad, draws, rng)
            # the numpy formula (a model whose analyte levels are fixed) too
            n = len(g.case_ids)
            np.testing.assert_allclose(
                kernel.fixed_people_values((mean, sd, med[ad.channels]), n),
                kernel.people_values((mean, sd, med[ad.channels]), n), rtol=0, atol=1e-9)
            for x, y in zip([g_exact[0], g_exact[1], g_exact[2][ad.channels]], g_kernel,
                            strict=True):
                np.testing.assert_allclose(x, y, rtol=0, atol=1e-6 * np.abs(y).max())
            checked += 1
    assert checked >= 3     # adrenal in both sexes' views, gonadal
