"""Parameter recovery: simulate a cohort from known parameters, fit, check interval coverage."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from neb_bayes.fit import fit, prior_sd
from neb_bayes.model.compiled import load_model
from neb_bayes.model.params import (
    GROUP_PARAMS,
    flat_parameters,
    literature_draws,
    point_params,
    with_params,
)
from neb_bayes.simulate import simulate

from .conftest import uncovered_cases

MODEL = load_model()


def _cohort(model, n, seed):
    """``n`` simulated people (~0.5 % of them with two censored results on an axis: their
    factor there from the exact engine); the first ``n`` of ``1.3 n`` drawn, the cohorts the
    recorded coverages were measured on."""
    sims = simulate(model, int(n * 1.3), seed=seed, p_repeat=0.0, p_measure=0.4,
                    p_symptom_reported=0.2)
    return [s.case for s in sims][:n]


def _truth(groups: tuple[str, ...], seed: int):
    """One draw of the literature prior for the fitted groups; every other group at the prior
    set's own values, which is what the fit holds it at (a truth that also moved the fixed
    groups would make the fit misspecified: at 2,000 people a prevalence-only fit then put the
    truth outside 40 % of its 90 % intervals, all on the axes whose laboratory parameters the
    draw had moved)."""
    draw = literature_draws(MODEL, 20, seed=seed).subset(slice(3, 4))
    point = point_params(MODEL)
    fixed = {f: getattr(point, f) for g, fields in GROUP_PARAMS.items() if g not in groups
             for f in fields}
    # the fit anchors the healthy states' latent means at the prior set's values (0), which
    # identifies the laboratories' medians; a truth outside that space has no counterpart
    # in the fit (a draw's metabolic healthy state at glycaemia -0.21 put the fit's glucose
    # medians 0.21 below the truth's, all within 0.02 of each other: 25 of 42 medians
    # covered at 500 people)
    if "analyte-levels" in groups:
        fixed["lat_mean"] = tuple(
            np.where(ax.baseline[None, :, None], point.lat_mean[ai], draw.lat_mean[ai])
            for ai, ax in enumerate(MODEL.axes))
    return dataclasses.replace(draw, **fixed)


def _inside(post: dict, truth: dict, name: str) -> bool:
    """Whether the true value of ``name`` lies in its equal-tailed 90 % posterior interval."""
    lo, hi = np.quantile(post[name], [0.05, 0.95])
    return bool(lo <= truth[name][0] <= hi)


@dataclasses.dataclass
class Recovery:
    """How a fit of a simulated cohort covers the truth with its 90 % intervals."""
    coverage: float          # over every free parameter the fit moved
    n: int
    informed_coverage: float  # over those the data narrowed (see :func:`_informed`)
    n_informed: int
    res: object


def _prior_sds(widen: float = 1.0) -> dict[str, float]:
    """Each parameter's prior sd in the fit (:func:`~neb_bayes.fit.prior_sd`, of the
    logarithm for a spread), by :func:`flat_parameters`' names."""
    sd = prior_sd(MODEL, widen)
    out: dict[str, float] = {}
    for ai, ax in enumerate(MODEL.axes):
        for st in ax.states:
            for ki, lat in enumerate(ax.latents):
                out[f"lat_mean[{ax.name}.{st}.{lat}]"] = float(sd["lat_mean"][ai][ki])
                out[f"lat_sd[{ax.name}.{st}.{lat}]"] = sd["lat_sd"]
    return out | {k: sd[k.split("[")[0]] for k in flat_parameters(point_params(MODEL), MODEL)
                  if k.split("[")[0] not in ("lat_mean", "lat_sd")}


def _informed(post: dict, names: list[str], widen: float = 1.0) -> list[str]:
    """The parameters whose posterior sd (of the logarithm, for a spread) is below 0.7 of the
    fit's prior sd: where the data, not the prior, decide the interval."""
    prior = _prior_sds(widen)
    out = []
    for k in names:
        x = np.log(post[k]) if k.startswith("lat_sd[") else post[k]
        if 0 < np.std(x) < 0.7 * prior[k]:
            out.append(k)
    return out


def _coverage(n_people: int, groups: tuple[str, ...], draws: int, tune: int, seed: int,
              sampler: str = "pymc", extra=(), prior_widen: float = 1.0) -> Recovery:
    """Fit a cohort simulated from a known truth (a literature draw: from the fit's prior
    when ``prior_widen`` is 1); ``extra`` cases are added to it."""
    truth_draws = _truth(groups, seed)
    true_model = with_params(MODEL, truth_draws, 0)
    cases = _cohort(true_model, n_people, seed)
    res = fit(MODEL, cases + list(extra), groups=groups, draws=draws, tune=tune, chains=2,
              sampler=sampler, seed=seed, progressbar=False, prior_widen=prior_widen)
    truth = flat_parameters(truth_draws, MODEL)
    post = flat_parameters(res.draws, MODEL)
    fields = [f for g in groups for f in GROUP_PARAMS[g]]
    names = [k for k in post if k.split("[")[0] in fields and np.std(post[k]) > 0]
    informed = _informed(post, names, prior_widen)
    return Recovery(
        coverage=float(np.mean([_inside(post, truth, k) for k in names])), n=len(names),
        informed_coverage=float(np.mean([_inside(post, truth, k) for k in informed]))
        if informed else float("nan"),
        n_informed=len(informed), res=res)


def test_recovery_small_prevalence_fit():
    """Small version for CI: 300 people, prevalence group, short chains."""
    rec = _coverage(300, ("prevalence",), draws=200, tune=200, seed=5)
    assert rec.n >= 20
    assert rec.res.diagnostics["divergences"] == 0
    assert 0.7 <= rec.coverage <= 1.0, rec


def test_recovery_small_symptom_fit():
    """Small version for CI: 80 people, symptom group (cause and leak rates), short chains
    (~80 s on 2 cores with one BLAS thread per chain; ~190 s with OpenBLAS's default
    threads).  Most of the 235 rates are barely informed by 80 people; the check
    that can fail is on those the data narrowed (20 rates, mostly the common symptoms'
    background rates, 18 of them covered on 2026-12-03).  The prior is widened 4x (sd 1 on
    the logit scale): under the prior set's own spread (0.25) 80 people narrow none of
    them (0 of 235; 0.91 covered overall)."""
    rec = _coverage(80, ("symptoms",), draws=100, tune=100, seed=7, prior_widen=4.0)
    assert rec.n >= 100
    assert rec.res.diagnostics["divergences"] == 0
    assert 0.8 <= rec.coverage <= 1.0, rec
    assert rec.n_informed >= 5, rec
    assert rec.informed_coverage >= 0.7, rec


def test_recovery_small_analyte_level_fit():
    """Small version for CI: 150 people, analyte levels (the CLI's default group: state
    means and spreads of the latents, the laboratories' medians), nutpie, short chains
    (~3 min on 2 cores beside another fit).  Under the prior set's own spreads, the truth a
    draw of that prior (2026-12-07): 202 of 230 intervals cover (0.88), 25 of the 28 the
    data narrowed (0.89).  Under the wide fixed spreads of before (latent means 0.5), on
    2026-12-04: 174 of 186 (0.94), 66 of 77 narrowed (0.86).  While the truth's healthy states had
    latent means the fit anchors elsewhere (its medians then have no true counterpart) it
    failed: 0.84 overall, 0.63 of the narrowed ones."""
    rec = _coverage(150, ("analyte-levels",), draws=150, tune=150, seed=11, sampler="nutpie",
                    extra=uncovered_cases())
    diag = rec.res.diagnostics
    # the cases beyond the information form are fitted too (their factor on that axis the
    # exact engine's, its gradient by finite differences), none left out
    assert int(rec.res.attrs["cohort_n"]) == 150 + len(uncovered_cases())
    assert int(rec.res.attrs["cohort_excluded"]) == 0
    exact = json.loads(rec.res.attrs["cohort_exact_factors"])
    assert all(exact.get(a, 0) >= 1 for a in ("thyroid", "gonadal", "adrenal")), exact
    # the laboratory factors are Ops evaluated from Python: one chain per process
    assert json.loads(rec.res.attrs["sampler_settings"])["chains_in"] == "processes"
    assert diag["divergences"] == 0 and diag["logp_gap"] < 10, diag
    assert 0.8 <= rec.coverage <= 1.0, rec
    assert rec.n_informed >= 20, rec
    assert rec.informed_coverage >= 0.75, rec


@pytest.mark.slow
def test_recovery_2000_people_prevalence_nominal_coverage():
    """2,000 people, prevalence group (about 2-3.5 min on 2 cores): 90 % intervals cover at
    about 90 % (under the prior set's own spreads, 2026-12-07: 24 of 27, 8 of the 10 the
    data narrowed, R-hat max 1.0068, ESS 3,355/1,169; with the wide prior of before, 24 of
    25 on 2026-12-03; 15 of 25 while the truth also moved the fixed laboratory and symptom
    parameters)."""
    rec = _coverage(2000, ("prevalence",), draws=1000, tune=1000, seed=9, sampler="nutpie")
    assert rec.n >= 20
    assert rec.res.passed, rec.res.attrs["threshold_failures"]
    assert 0.8 <= rec.coverage <= 1.0, rec


@pytest.mark.slow
def test_recovery_2000_people_nominal_coverage():
    """2,000 people, analyte levels and prevalence: 90 % intervals cover at about 90 %.

    2026-12-04 (79 min on 2 cores beside other work, 15 leapfrog steps per draw): 199 of
    211 intervals cover (0.94), 111 of the 123 the data narrowed (0.90); both chains in one
    mode (median log densities 2.8 apart), 0 divergences, BFMI 0.99, max R-hat 1.017, min
    bulk/tail ESS 146/107: the metabolic axis's overlapping states (their latent means and
    prevalences, 8 of 234 parameters below 400) mix slowly, so this fit misses the strict
    thresholds `priors fit` saves at (R-hat 1.01, ESS 400); the check here is that the
    chains agree.  (The run of 2026-12-03, from PyMC's default start and with a truth
    outside the fit's parameter space, failed: R-hat 1.94, one chain in a relabelled mode.)"""
    # nutpie (one chain per process): on a 100-person analyte-level fit PyMC's NUTS was seen
    # building trees of depth 7-8 (128-256 leapfrog steps) during warm-up; nutpie needed 15
    rec = _coverage(2000, ("analyte-levels", "prevalence"), draws=700, tune=700, seed=9,
                    sampler="nutpie")
    diag = rec.res.diagnostics
    assert diag["divergences"] == 0 and diag["logp_gap"] < 10, diag
    assert diag["r_hat_max"] < 1.05, diag
    assert 0.8 <= rec.coverage <= 0.98, rec
    assert rec.informed_coverage >= 0.8, rec
