"""Parameter recovery: simulate a cohort from known parameters, fit, check interval coverage."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from neb_bayes.fit import fit
from neb_bayes.model.compiled import load_model
from neb_bayes.model.params import flat_parameters, literature_draws, point_params, with_params
from neb_bayes.simulate import simulate

MODEL = load_model()


def _cohort(model, n, seed):
    sims = simulate(model, int(n * 1.3), seed=seed, p_repeat=0.0, p_measure=0.4,
                    p_symptom_reported=0.2)
    out = []
    for s in sims:
        per_axis = Counter(model.channels[model.channel_for(m.analyte, m.specimen)].axis
                           for m in s.case.measurements if m.censor != "none")
        if all(v <= 1 for v in per_axis.values()):
            out.append(s.case)
    return out[:n]


#: the parameter fields of each group a fit can free
GROUP_FIELDS = {"prevalence": ("prior_base",),
                "analyte-levels": ("lat_mean", "lat_sd", "log_median"),
                "symptoms": ("cause_logit", "leak_logit")}


def _truth(groups: tuple[str, ...], seed: int):
    """One draw of the literature prior for the fitted groups; every other group at the prior
    set's own values, which is what the fit holds it at (a truth that also moved the fixed
    groups would make the fit misspecified: at 2,000 people a prevalence-only fit then put the
    truth outside 40 % of its 90 % intervals, all on the axes whose laboratory parameters the
    draw had moved)."""
    draw = literature_draws(MODEL, 20, seed=seed).subset(slice(3, 4))
    point = point_params(MODEL)
    fixed = {f: getattr(point, f) for g, fields in GROUP_FIELDS.items() if g not in groups
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


def _coverage(n_people: int, groups: tuple[str, ...], draws: int, tune: int, seed: int,
              sampler: str = "pymc"):
    truth_draws = _truth(groups, seed)
    true_model = with_params(MODEL, truth_draws, 0)
    cases = _cohort(true_model, n_people, seed)
    res = fit(MODEL, cases, groups=groups, draws=draws, tune=tune, chains=2, sampler=sampler,
              seed=seed, progressbar=False)
    truth = flat_parameters(truth_draws, MODEL)
    post = flat_parameters(res.draws, MODEL)
    prefix = {"prevalence": "prior_base[", "analyte-levels": ("lat_mean[", "lat_sd[", "log_median["),
              "symptoms": ("cause_logit[", "leak_logit[")}
    names = [k for k in post if any(k.startswith(p) for g in groups
                                    for p in np.atleast_1d(prefix[g]))
             and np.std(post[k]) > 0]
    inside = [_inside(post, truth, k) for k in names]
    return float(np.mean(inside)), len(names), res


def test_recovery_small_prevalence_fit():
    """Small version for CI: 300 people, prevalence group, short chains."""
    cov, n, res = _coverage(300, ("prevalence",), draws=200, tune=200, seed=5)
    assert n >= 20
    assert res.diagnostics["divergences"] == 0
    assert 0.7 <= cov <= 1.0, cov


def test_recovery_small_symptom_fit():
    """Small version for CI: 80 people, symptom group (cause and leak rates), short chains
    (~70 s on 2 cores).  Most of the 235 rates are barely informed by 80 people (the fit's
    prior on each logit has sd 1, wider than the literature's spread the truth is drawn
    from, so their intervals cover it easily); the check that can fail is on those the data
    narrowed (posterior sd below 0.7: 20 rates, mostly the common symptoms' background
    rates, 18 of them covered on 2026-12-03)."""
    from neb_bayes.fit import PRIOR_SD

    cov, n, res = _coverage(80, ("symptoms",), draws=100, tune=100, seed=7)
    assert n >= 100
    assert res.diagnostics["divergences"] == 0
    assert 0.8 <= cov <= 1.0, cov
    truth = flat_parameters(_truth(("symptoms",), 7), MODEL)
    post = flat_parameters(res.draws, MODEL)
    informed = [k for k in post
                if (k.startswith("cause_logit[")
                    and 0 < np.std(post[k]) < 0.7 * PRIOR_SD["cause_logit"])
                or (k.startswith("leak_logit[")
                    and 0 < np.std(post[k]) < 0.7 * PRIOR_SD["leak_logit"])]
    assert len(informed) >= 5, len(informed)
    inside = [_inside(post, truth, k) for k in informed]
    assert np.mean(inside) >= 0.7, (np.mean(inside), len(informed))


@pytest.mark.slow
def test_recovery_2000_people_prevalence_nominal_coverage():
    """2,000 people, prevalence group (about 3.5 min on 2 cores): 90 % intervals cover at
    about 90 % (24 of 25 on 2026-12-03; 15 of 25 while the truth also moved the fixed
    laboratory and symptom parameters)."""
    cov, n, res = _coverage(2000, ("prevalence",), draws=1000, tune=1000, seed=9,
                            sampler="nutpie")
    assert n >= 20
    assert res.passed, res.attrs["threshold_failures"]
    assert 0.8 <= cov <= 1.0, (cov, n)


@pytest.mark.slow
def test_recovery_2000_people_nominal_coverage():
    """2,000 people, analyte levels and prevalence: 90 % intervals cover at about 90 %.

    Run to the end once (2026-12-03, 2 h 37 min on 2 cores): it failed its convergence
    check (max R-hat 1.94, min bulk ESS 3: the two chains disagree), so coverage is not yet
    known; see the issue on the model in PyMC."""
    # nutpie (one chain per process): on a 100-person analyte-level fit PyMC's NUTS was seen
    # building trees of depth 7-8 (128-256 leapfrog steps) during warm-up; nutpie needed 15
    cov, n, res = _coverage(2000, ("analyte-levels", "prevalence"), draws=1000, tune=1000, seed=9,
                            sampler="nutpie")
    assert res.passed, res.attrs["threshold_failures"]
    assert 0.8 <= cov <= 0.98, (cov, n)
