"""The prior set's ``uncertainty`` table: a latent's mean spread per axis
(``uncertainty.axes.<axis>.latent_mean``), how literature draws use it and how the loader
names a bad entry."""

from __future__ import annotations

import numpy as np
import pytest

from neb_bayes.model.compiled import load_model
from neb_bayes.model.params import latent_mean_spread, literature_draws
from neb_bayes.model.spec import PriorSetError, spec_from_tables


def test_a_per_axis_latent_mean_spread_applies_to_that_latent_only():
    model = load_model()
    u = model.spec.raw["uncertainty"]
    draws = literature_draws(model, 4000, seed=5)
    for ai, axis in enumerate(model.axes):
        spread = latent_mean_spread(model, ai)
        own = u.get("axes", {}).get(axis.name, {}).get("latent_mean", {})
        for k, lat in enumerate(axis.latents):
            assert spread[k] == own.get(lat, u["latent_mean"])
            sd = draws.lat_mean[ai][:, :, k].std(axis=0)
            np.testing.assert_allclose(sd, spread[k], rtol=0.1, atol=1e-12)


@pytest.mark.parametrize("entry, message", [
    ({"nonesuch": {"latent_mean": {"x": 0.1}, "src": ["f4_glyc"]}}, "unknown axis"),
    ({"metabolic": {"latent_mean": {"nonesuch": 0.1}, "src": ["f4_glyc"]}}, "unknown latent 'nonesuch'"),
    ({"metabolic": {"latent_mean": {"glycaemia": -0.1}, "src": ["f4_glyc"]}},
     "latent_mean.glycaemia must be a number >= 0"),
    ({"metabolic": {"latent_mean": {"glycaemia": 0.1}}}, "uncertainty.axes.metabolic: no source"),
    ({"metabolic": {"latent_mean": {"glycaemia": 0.1}, "src": ["nope"]}}, "unknown source key 'nope'"),
    ({"metabolic": {"latent_sd": {"glycaemia": 0.1}, "src": ["f4_glyc"]}}, "unknown key 'latent_sd'"),
])
def test_a_bad_per_axis_spread_is_named(entry, message):
    raw = dict(load_model().spec.raw)
    raw["uncertainty"] = {**raw["uncertainty"], "axes": entry}
    with pytest.raises(PriorSetError) as err:
        spec_from_tables(raw, "test")
    assert any(message in p for p in err.value.problems), err.value.problems


def test_axes_without_their_own_spread_draw_as_without_the_table():
    """A per-axis entry changes that axis' latent means only: every other draw is the one
    the global spreads give, value for value (same seed)."""
    from dataclasses import replace

    from neb_bayes.model.compiled import compile_spec

    model = load_model()
    raw = dict(model.spec.raw)
    raw["uncertainty"] = {k: v for k, v in raw["uncertainty"].items() if k != "axes"}
    plain = compile_spec(replace(model.spec, raw=raw))
    own = set(model.spec.raw["uncertainty"].get("axes", {}))
    a, b = literature_draws(model, 50), literature_draws(plain, 50)
    for ai, axis in enumerate(model.axes):
        np.testing.assert_array_equal(a.lat_sd[ai], b.lat_sd[ai])
        np.testing.assert_array_equal(a.prior_base[ai], b.prior_base[ai])
        if axis.name not in own:
            np.testing.assert_array_equal(a.lat_mean[ai], b.lat_mean[ai])
    np.testing.assert_array_equal(a.log_median, b.log_median)
    np.testing.assert_array_equal(a.cause_logit, b.cause_logit)
