"""How far TSH is from its reference interval in subclinical thyroid disease.

Subclinical hypo- and hyperthyroidism are each two model states (a common mild form and a
tail whose TSH spreads like the overt disease's), so the share of the condition in each TSH
grade follows from their split and spreads.  The published shares, among patients who meet
the definition (facts §4c: TSH outside its reference interval, ~0.4-4.5 mIU/L (facts §1),
with FT4 (~10-23 pmol/L) and, for hyperthyroidism, FT3 (~3.5-6.5 pmol/L) within theirs):

* subclinical hypothyroidism: TSH < 10 mIU/L in ~80 % (Fatourechi, Mayo Clin Proc 2009), ~75 %
  (Surks et al., JAMA 2004), up to ~90 % in reviews (Cooper & Biondi, Lancet 2012): 75-90 %;
* subclinical hyperthyroidism: grade 2 (TSH < 0.1 mIU/L) is the minority; NHANES III TSH < 0.4
  in 3.2 % (2 % without known thyroid disease), < 0.1 in 0.7 % (Surks 2004): 22-35 %.

Patients are drawn from the model's own states (prior-weighted within the condition; latents,
then one result per analyte with its person-level, day-to-day and analytical noise: the
generative story of ARCHITECTURE.md without context or gross errors), and the simulated share
must lie in the published range, widened by four binomial standard errors of the simulation.
"""

from __future__ import annotations

import numpy as np
import pytest

from neb_bayes.model.compiled import CompiledModel, load_model
from neb_bayes.model.prior import Covariates, log_prior

#: simulated patients per condition and stratum
N_PATIENTS = 200_000
#: reference intervals (facts §1): TSH mIU/L, FT4 and FT3 pmol/L
TSH_RI = (0.4, 4.5)
FT4_RI = (10.0, 23.0)
FT3_RI = (3.5, 6.5)
STRATA = (("F", 45.0), ("M", 45.0), ("F", 70.0))


def _condition_results(model: CompiledModel, condition: str, sex: str, age: float,
                       analytes: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """One result per analyte (canonical units) for ``N_PATIENTS`` people with the condition,
    its states drawn in the proportions of the prior for a person of ``sex`` and ``age``."""
    k = model.conditions.index(condition)
    ai = model.cond_axis[k]
    axis = model.axes[ai]
    members = np.flatnonzero(model.cond_states[k])
    joint = np.exp(log_prior(model, Covariates(sex=sex, age=age)))
    marginal = joint.sum(axis=tuple(a for a in range(joint.ndim) if a != ai))[members]
    states = rng.choice(members, size=N_PATIENTS, p=marginal / marginal.sum())
    channels = [next(c for c in model.channels if c.name == a) for a in analytes]
    assert all(c.axis == ai and not c.effects for c in channels)
    loadings = np.stack([c.loadings for c in channels])
    noise = np.array([np.sqrt(c.tau**2 + c.cvi**2 + c.cva**2) for c in channels])
    log_y = np.empty((N_PATIENTS, len(channels)))
    for s in members:
        rows = states == s
        z = rng.multivariate_normal(axis.lat_mean[s], axis.lat_cov[s], size=int(rows.sum()))
        log_y[rows] = (np.array([c.log_median for c in channels]) + z @ loadings.T
                       + rng.normal(0.0, noise, size=(int(rows.sum()), len(channels))))
    return np.exp(log_y)


def _within(x: np.ndarray, ri: tuple[float, float]) -> np.ndarray:
    return (x >= ri[0]) & (x <= ri[1])


def _assert_share_in(share: float, n: int, low: float, high: float) -> None:
    tol = 4.0 * np.sqrt(share * (1.0 - share) / n)
    assert low - tol <= share <= high + tol, (share, n, (low, high))


@pytest.mark.parametrize(("sex", "age"), STRATA)
def test_most_subclinical_hypothyroidism_has_tsh_below_10(sex: str, age: float) -> None:
    rng = np.random.default_rng(2012)
    tsh, ft4 = _condition_results(load_model(), "subclinical_hypothyroidism", sex, age,
                                  ("tsh", "ft4"), rng).T
    meets = (tsh > TSH_RI[1]) & _within(ft4, FT4_RI)
    _assert_share_in(float(np.mean(tsh[meets] < 10.0)), int(meets.sum()), 0.75, 0.90)


@pytest.mark.parametrize(("sex", "age"), STRATA)
def test_grade_2_is_the_minority_of_subclinical_hyperthyroidism(sex: str, age: float) -> None:
    rng = np.random.default_rng(2008)
    tsh, ft4, ft3 = _condition_results(load_model(), "hyperthyroidism_subclinical", sex, age,
                                       ("tsh", "ft4", "ft3"), rng).T
    meets = (tsh < TSH_RI[0]) & _within(ft4, FT4_RI) & _within(ft3, FT3_RI)
    _assert_share_in(float(np.mean(tsh[meets] < 0.1)), int(meets.sum()), 0.22, 0.35)
