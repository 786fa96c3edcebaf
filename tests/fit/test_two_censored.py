"""Two censored results on one axis in the fit's information form.

Oestradiol and progesterone below their limits after the menopause, TSH suppressed twice,
ACTH and the dexamethasone-suppressed cortisol: common in real cohorts.  Their mass given the
person's observed results is a bivariate normal CDF, in the compiled kernel
(:func:`~neb_bayes.inference.bivariate_normal.log_bvn`, its gradient in closed form), with
the gross-error mixture's terms by rank-one changes of the pair's conditional.  Before, each
such person-axis was the exact engine's, its gradient by finite differences (~1.3 ms per
person-axis and evaluation).  The log density equals the exact engine's log evidence; the
kernel's value and hand-written gradient equal the exact engine's factor and its finite
differences; the pair's covariance (one channel: the shared person, day and context terms,
given the channel's observed results) matters.
"""

from __future__ import annotations

import numpy as np
import pytest

from neb_bayes.case.model import Case, Measurement, Patient
from neb_bayes.inference.pymc_model import cohort_loglik_value, prepare_cohort
from neb_bayes.model.compiled import load_model
from neb_bayes.model.params import literature_draws, with_params

from .conftest import (
    FREE,
    assert_log_density_equals_exact,
    beside_simulated,
    exact_log_evidence,
    kernel_against_exact,
    two_censored_cases,
)

MODEL = load_model()
M = Measurement


def more_pairs() -> list[Case]:
    """Pairs in the forms the data take: one channel on one day beside an observed result of
    it (the pair's noise covariance given it), one channel on two days with an observed
    result between, two channels each with observed repeats, a pair above its limits (a
    high-sensitivity assay's upper limit) and one below, an untimed cortisol in the pair (read
    per own state), and a man's testosterone pair."""
    return [
        Case(id="tsh-twice-below-beside-observed", patient=Patient(sex="F", age=48),
             measurements=(M(0, "tsh", "serum", 0.01, censor="left"),
                           M(1, "tsh", "serum", 0.01, censor="left"),
                           M(2, "tsh", "serum", 0.05), M(3, "ft4", "serum", 26.0))),
        Case(id="tsh-below-on-two-days", patient=Patient(sex="M", age=61),
             measurements=(M(0, "tsh", "serum", 0.01, censor="left"),
                           M(1, "tsh", "serum", 0.03, day=10),
                           M(2, "tsh", "serum", 0.01, censor="left", day=20),
                           M(3, "ft3", "serum", 8.0, day=10))),
        Case(id="two-channels-with-repeats", patient=Patient(sex="F", age=35),
             measurements=(M(0, "tsh", "serum", 0.01, censor="left"),
                           M(1, "tsh", "serum", 0.02, day=5),
                           M(2, "ft4", "serum", 60.0, censor="right"),
                           M(3, "ft4", "serum", 48.0, day=5))),
        Case(id="cortisol-untimed-pair", patient=Patient(sex="F", age=52),
             measurements=(M(0, "cortisol", "serum", 28.0, censor="left"),
                           M(1, "acth", "plasma", 1.1, censor="left", hour=9),
                           M(2, "dheas", "serum", 1.2))),
        Case(id="testosterone-and-lh-below", patient=Patient(sex="M", age=66),
             measurements=(M(0, "testosterone", "serum", 0.5, censor="left", hour=8),
                           M(1, "lh", "serum", 0.1, censor="left"), M(2, "fsh", "serum", 0.4))),
    ]


def pair_cases() -> list[Case]:
    return two_censored_cases() + more_pairs()


@pytest.fixture(scope="module")
def cohort() -> list[Case]:
    """The pairs beside simulated people of the same groups."""
    return beside_simulated(MODEL, pair_cases(), seed=5)


def test_pairs_are_in_the_information_form_not_the_exact_engines(cohort):
    groups = prepare_cohort(MODEL, cohort)
    assert not any(g.exact for g in groups)
    pairs = set()
    for g in groups:
        for ad in g.axes:
            # the people read per own state (the untimed cortisol) have S rows each, last
            first = ad.rows.size - ad.per_state
            per = ad.cen["has"][first:].reshape(ad.per_state, g.model.axes[ad.axis].n_states)
            people = np.r_[ad.rows[:first][ad.cen["has"][:first] == 2],
                           ad.rows[first:][(per == 2).all(axis=1)]]
            pairs |= {g.case_ids[p] for p in people}
    assert pairs >= {c.id for c in pair_cases()}
    # the forms the cases are for: one channel's pair with a noise covariance, given observed
    # results of its channel; a pair above and below its limits
    cen = [ad.cen for g in groups for ad in g.axes]
    assert any(((c["has"] == 2) & (c["cov"] > 0)).any() for c in cen)
    assert any(((c["has"] == 2) & (c["alpha"] < 1).all(axis=1)).any() for c in cen)
    assert any(((c["has"] == 2) & (c["sign"][:, 0] != c["sign"][:, 1])).any() for c in cen)


@pytest.mark.parametrize("free", FREE, ids=["+".join(f) or "none" for f in FREE])
def test_log_density_equals_the_exact_engines(cohort, free):
    """Person by person, under a parameter draw that is not the prior set's values, whichever
    groups are free (numpy path and graph path)."""
    assert_log_density_equals_exact(MODEL, cohort, free)


def test_kernel_value_and_gradient_equal_the_exact_engines(cohort):
    """On the axes with pairs, over every grid point (states that rule the pair out
    included: its mass there far in the tail), the kernel's factor equals the exact engine's
    and its hand-written vector-Jacobian product the exact engine's finite differences."""
    draws = literature_draws(MODEL, 10)
    rng = np.random.default_rng(0)
    checked = set()
    tail = False
    for g in prepare_cohort(MODEL, cohort):
        if g.lat_shift:     # (the helper reads the draw's latents without the context's shift)
            continue
        for ad in g.axes:
            if not (ad.cen["has"] == 2).any():
                continue
            kernel, _, (mean, sd, med), _, g_exact, g_kernel = kernel_against_exact(
                g, ad, draws, rng)
            n = len(g.case_ids)
            values = kernel.people_values((mean, sd, med[ad.channels]), n)
            tail |= bool((values[ad.rows] < -60).any())
            for x, y in zip([g_exact[0], g_exact[1], g_exact[2][ad.channels]], g_kernel,
                            strict=True):
                np.testing.assert_allclose(x, y, rtol=0, atol=1e-6 * np.abs(y).max())
            checked.add(g.model.axes[ad.axis].name)
    assert checked == {"thyroid", "adrenal", "gonadal"}
    assert tail


def test_the_pairs_covariance_matters(monkeypatch):
    """Two results below TSH's limit on one day share its day-level noise: with their
    covariance dropped, the log density moves off the exact engine's."""
    import neb_bayes.inference.lab_block as lab_block

    case = more_pairs()[0]
    draws = literature_draws(MODEL, 10)
    exact = exact_log_evidence(with_params(MODEL, draws, 7), [case])
    free = ("analyte-levels",)
    assert cohort_loglik_value(MODEL, [case], draws.subset(slice(7, 8)), free=free
                               ) == pytest.approx(exact, abs=1e-10)
    real = lab_block.LabBlock.__init__

    def no_cov(self, ad, corr):
        ad.cen["cov"] = np.zeros_like(ad.cen["cov"])
        real(self, ad, corr)

    monkeypatch.setattr(lab_block.LabBlock, "__init__", no_cov)
    wrong = cohort_loglik_value(MODEL, [case], draws.subset(slice(7, 8)), free=free)
    assert abs(wrong[0] - exact[0]) > 1e-3
