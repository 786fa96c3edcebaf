"""The fit's prior is the prior set's own uncertainty: each free parameter about the prior
set's value with the spread of the prior set's literature draws (its ``uncertainty`` table),
times ``--prior-widen``; wide fallbacks where a prior set gives none."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from neb_bayes.fit import (
    FALLBACK_PRIOR_SD,
    build_fit_model,
    prior_sd,
    prior_sd_record,
    widen_factors,
)
from neb_bayes.model.compiled import load_model
from neb_bayes.model.params import literature_draws, point_params
from neb_bayes.simulate import simulate

MODEL = load_model()


def _without_uncertainty(model):
    """``model`` as if its prior set had no ``uncertainty`` table."""
    raw = copy.deepcopy(model.spec.raw)
    raw.pop("uncertainty", None)
    return SimpleNamespace(spec=SimpleNamespace(raw=raw), axes=model.axes)


def test_the_fits_prior_has_the_spread_of_the_literature_draws():
    """Per parameter, the fit's prior sd is the sd of the prior set's literature draws (4,000
    draws: within 5 %), including the latents the table pins tighter (metabolic means 0.02
    against 0.15 elsewhere)."""
    sd = prior_sd(MODEL)
    draws = literature_draws(MODEL, 4000, seed=3)
    for ai, ax in enumerate(MODEL.axes):
        if not ax.latents:
            continue
        free = ~ax.baseline
        got = draws.lat_mean[ai][:, free].std(axis=0)                   # (free states, K)
        np.testing.assert_allclose(got, np.broadcast_to(sd["lat_mean"][ai], got.shape), rtol=0.05)
        spread = np.log(draws.lat_sd[ai]).std(axis=0)
        np.testing.assert_allclose(spread, sd["lat_sd"], rtol=0.05)
    np.testing.assert_allclose(draws.log_median.std(axis=0), sd["log_median"], rtol=0.05)
    for name in ("cause_logit", "leak_logit"):
        np.testing.assert_allclose(getattr(draws, name).std(axis=0), sd[name], rtol=0.05)
    metabolic = MODEL.axis_index("metabolic")
    assert sd["lat_mean"][metabolic].min() == pytest.approx(0.02)
    assert sd["lat_mean"][MODEL.axis_index("thyroid")].tolist() == pytest.approx([0.15] * 3)


def test_widening_multiplies_every_spread_and_a_missing_table_falls_back():
    base, wide = prior_sd(MODEL), prior_sd(MODEL, 2.5)
    for name in FALLBACK_PRIOR_SD:
        if name == "lat_mean":
            for a, b in zip(base[name], wide[name], strict=True):
                np.testing.assert_allclose(b, 2.5 * a)
        else:
            assert wide[name] == pytest.approx(2.5 * base[name])
    bare = prior_sd(_without_uncertainty(MODEL))
    for name, value in FALLBACK_PRIOR_SD.items():
        got = np.concatenate(bare[name]) if name == "lat_mean" else bare[name]
        np.testing.assert_array_equal(got, value)
    for bad in (0, -1.0, float("nan"), float("inf"), True, "2", {"prevalence": 0}):
        with pytest.raises(ValueError, match="widening must be a number above 0"):
            prior_sd(MODEL, bad)


def test_widening_one_group_leaves_the_others():
    """A clinic's cohort: its prevalences may be far from the population's, its laboratories
    the usual ones."""
    base, clinic = prior_sd(MODEL), prior_sd(MODEL, {"prevalence": 4})
    assert clinic["prior_base"] == pytest.approx(4 * base["prior_base"])
    for name in ("lat_sd", "log_median", "cause_logit", "leak_logit"):
        assert clinic[name] == base[name]
    for a, b in zip(base["lat_mean"], clinic["lat_mean"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert widen_factors({"symptoms": 2}) == {"analyte-levels": 1.0, "prevalence": 1.0,
                                              "symptoms": 2.0}
    with pytest.raises(ValueError, match=r"unknown parameter group\(s\) \['prevalance'\]"):
        prior_sd(MODEL, {"prevalance": 4})


def _centre(point, group: str, ai: int | None) -> np.ndarray:
    """The prior set's value of a fit's variable: the healthy states' latent means and
    prevalences are anchored, no variables."""
    if group in ("log_median", "cause_logit", "leak_logit"):
        return getattr(point, group)[0]
    value = getattr(point, group)[ai][0]
    return value if group == "lat_sd" else value[np.flatnonzero(~MODEL.axes[ai].baseline)]


@pytest.mark.parametrize("widen", [1.0, 3.0])
def test_the_pymc_models_prior_is_that_spread(widen):
    """The PyMC model's prior log density of each free variable, at a point away from the
    prior set's values, is the normal (log-normal for a spread) with the fit's prior sd."""
    cases = [s.case for s in simulate(MODEL, 5, seed=1)]
    groups = ("analyte-levels", "prevalence", "symptoms")
    pmodel = build_fit_model(MODEL, cases, groups, prior_widen=widen)
    sd, pt_ = prior_sd(MODEL, widen), point_params(MODEL)
    rng = np.random.default_rng(0)
    for rv in pmodel.free_RVs:
        group, *axis = rv.name.split("__")
        ai = MODEL.axis_index(axis[0]) if axis else None
        centre = _centre(pt_, group, ai)
        scale = sd[group][ai] if group == "lat_mean" else sd[group]
        at = centre * np.exp(rng.normal(0, 0.1, centre.shape)) if group == "lat_sd" \
            else centre + rng.normal(0, 0.1, centre.shape)
        got = pmodel.compile_logp(vars=[rv], jacobian=False, sum=True)(
            {**pmodel.initial_point(), pmodel.rvs_to_values[rv].name:
             np.log(at) if group == "lat_sd" else at})
        dist = (stats.lognorm(s=scale, scale=centre) if group == "lat_sd"
                else stats.norm(centre, scale))
        assert got == pytest.approx(dist.logpdf(at).sum(), rel=1e-9), rv.name


def test_the_provenance_records_the_fitted_groups_prior():
    record = prior_sd_record(MODEL, prior_sd(MODEL, 2.0), ("analyte-levels",))
    assert set(record) == {"lat_mean", "lat_sd", "log_median"}
    assert record["lat_mean"]["thyroid"] == {"tsh_drive": 0.3, "gland_output": 0.3,
                                             "t3_conversion": 0.3}
    assert record["lat_mean"]["metabolic"]["glycaemia"] == pytest.approx(0.04)
    assert record["log_median"] == pytest.approx(0.1)
    json.dumps(record)   # plain values
    assert set(prior_sd_record(MODEL, prior_sd(MODEL), ("prevalence", "symptoms"))) == {
        "prior_base", "cause_logit", "leak_logit"}
