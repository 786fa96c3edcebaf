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
    fitted = rng.normal(size=(chains, n_draw, ax.n_states))
    idata = az.from_dict({"posterior": {f"prior_base__{ax.name}": fitted}})
    n = chains * n_draw

    got = draws_from_posterior(model, idata, base)
    assert got.n_draws == n
    want = np.where(~ax.baseline, fitted.reshape(n, -1), base.prior_base[ai][np.arange(n)])
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
    np.testing.assert_array_equal(point.prior_base[ai], np.where(
        ~ax.baseline, fitted.reshape(n, -1), point_params(model).prior_base[ai]))
