"""A fitted prior set's draws: the fitted groups from the posterior, the others from the
prior set (its draws when it has them: their uncertainty stays in every report)."""

from __future__ import annotations

import arviz as az
import numpy as np

from neb_bayes.fit import draws_from_posterior
from neb_bayes.model.params import point_params
from neb_bayes.priorset import load_prior_set


def test_groups_not_fitted_keep_the_prior_sets_draws() -> None:
    ps = load_prior_set(None)
    model, base = ps.model, ps.draws
    ai = next(i for i, ax in enumerate(model.axes) if ax.name == "thyroid")
    ax = model.axes[ai]
    rng = np.random.default_rng(0)
    chains, n_draw = 2, 3
    free = np.flatnonzero(~ax.baseline)     # the fit's variables: the non-healthy states
    fitted = rng.normal(size=(chains, n_draw, free.size))
    idata = az.from_dict({"posterior": {f"prior_base__{ax.name}": fitted}})
    n = chains * n_draw

    got = draws_from_posterior(model, idata, base)
    assert got.n_draws == n
    want = np.repeat(point_params(model).prior_base[ai], n, axis=0)   # the healthy anchor
    want[:, free] = fitted.reshape(n, -1)
    np.testing.assert_array_equal(got.prior_base[ai], want)
    # every group not fitted: the prior set's draw k for the fit's draw k
    for name in ("lat_mean", "lat_sd", "prior_base"):
        for aj in range(len(model.axes)):
            if name == "prior_base" and aj == ai:
                continue
            np.testing.assert_array_equal(getattr(got, name)[aj],
                                          np.asarray(getattr(base, name)[aj])[:n])
    for name in ("log_median", "cause_logit", "leak_logit"):
        np.testing.assert_array_equal(getattr(got, name), np.asarray(getattr(base, name))[:n])
    assert np.ptp(got.log_median, axis=0).max() > 0          # uncertainty kept

    # without the prior set's draws: its point values, no uncertainty left in them
    point = draws_from_posterior(model, idata)
    np.testing.assert_array_equal(point.log_median, np.repeat(point_params(model).log_median,
                                                              n, axis=0))
    np.testing.assert_array_equal(point.prior_base[ai], want)


def test_fitted_latent_means_keep_the_healthy_anchor_not_the_prior_sets_draws() -> None:
    """The fit holds the healthy states' latent means at the prior set's values (the
    laboratories' medians are fitted about them), so a fitted set keeps them there: the
    prior set's draws of them (spread 0.15) would widen every healthy person's predicted
    levels by more than the fit supports.  Spreads and the other states' means are the
    posterior's."""
    ps = load_prior_set(None)
    model, base = ps.model, ps.draws
    rng = np.random.default_rng(1)
    chains, n_draw = 2, 4
    n = chains * n_draw
    post = {}
    for ax in model.axes:
        if ax.latents:
            k = len(ax.latents)
            post[f"lat_mean__{ax.name}"] = rng.normal(size=(chains, n_draw, int((~ax.baseline).sum()), k))
            post[f"lat_sd__{ax.name}"] = np.exp(rng.normal(size=(chains, n_draw, ax.n_states, k)))
    got = draws_from_posterior(model, az.from_dict({"posterior": post}), base)
    point = point_params(model)
    for ai, ax in enumerate(model.axes):
        if not ax.latents:
            continue
        healthy = got.lat_mean[ai][:, ax.baseline]
        np.testing.assert_array_equal(healthy, np.repeat(point.lat_mean[ai][:, ax.baseline], n, 0))
        assert np.ptp(np.asarray(base.lat_mean[ai])[:n, ax.baseline], axis=0).max() > 0.05
        np.testing.assert_array_equal(
            got.lat_mean[ai][:, ~ax.baseline],
            post[f"lat_mean__{ax.name}"].reshape((n, -1, len(ax.latents))))
        np.testing.assert_array_equal(got.lat_sd[ai], post[f"lat_sd__{ax.name}"].reshape(
            (n, ax.n_states, len(ax.latents))))
