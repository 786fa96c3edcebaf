"""The fit's whitened coordinates (:mod:`neb_bayes.fit_whitening`): the mode and Hessian
against a posterior known in closed form, the same log density and variables as the model's
own, and fits that sample them."""

from __future__ import annotations

import numpy as np
import pytest

from neb_bayes.fit_whitening import (
    Z_NAME,
    find_whitening,
    whitened_model,
    whitened_start,
    without_whitened,
)

pm = pytest.importorskip("pymc")
pytensor = pytest.importorskip("pytensor")
pt = pytest.importorskip("pytensor.tensor")

#: a normal posterior over (a0, a1, log s): priors N(0, 1), N(0, 1), log s ~ N(0, 0.5), and
#: a correlated normal likelihood term of precision Q around M
Q = np.array([[30.0, 12.0, 4.0], [12.0, 9.0, -2.0], [4.0, -2.0, 6.0]])
M = np.array([0.4, -0.3, 0.2])
PRIOR_SD = np.array([1.0, 1.0, 0.5])


def _toy(extra_curvature: float = 0.0):
    """The toy model; ``extra_curvature`` adds ``+c/2 (log s)^2`` to the log density (a
    direction flatter than its prior)."""
    with pm.Model(coords={"k": ["u", "v"]}) as model:
        a = pm.Normal("a", 0.0, 1.0, dims="k")
        s = pm.LogNormal("s", 0.0, 0.5)
        x = pt.concatenate([a, pt.log(s)[None]])
        d = x - M
        pm.Potential("lik", -0.5 * pt.dot(d, pt.dot(Q, d)) + 0.5 * extra_curvature
                     * pt.log(s) ** 2)
    return model


def _closed_form():
    precision = np.diag(1.0 / PRIOR_SD ** 2) + Q
    return np.linalg.solve(precision, Q @ M), np.linalg.inv(precision)


def test_mode_and_covariance_of_a_normal_posterior():
    """The mode found and ``L L'`` are the closed-form mode and covariance; ``to_x`` and
    ``to_z`` invert each other."""
    mode, cov = _closed_form()
    w = find_whitening(_toy(), np.zeros(3), PRIOR_SD)
    np.testing.assert_allclose(w.centre, mode, atol=1e-5)
    np.testing.assert_allclose(w.factor @ w.factor.T, cov, rtol=1e-5, atol=1e-8)
    x = np.array([0.3, 0.1, -0.7])
    np.testing.assert_allclose(w.to_x(w.to_z(x)), x, atol=1e-12)
    np.testing.assert_allclose(w.inverse @ w.factor, np.eye(3), atol=1e-10)
    assert w.record["eigenvalues_floored"] == 0
    assert w.record["mode_converged"]
    assert w.record["evaluations"] >= 2 * 3


def test_flat_direction_is_floored_at_the_widest_prior():
    """A direction flatter than every prior (the likelihood pulling it apart: the posterior
    precision's smallest eigenvalue 0.1, a sd of ~3.2) gets the widest prior's scale (1),
    which the sampler's own adaptation then widens; the others keep theirs."""
    c = 6.972447656105246      # (the smallest eigenvalue of diag(1, 1, 4) + Q - c e3 e3': 0.1)
    precision = np.diag(1.0 / PRIOR_SD ** 2) + Q - np.diag([0.0, 0.0, c])
    assert np.linalg.eigvalsh(precision).min() == pytest.approx(0.1, abs=1e-9)
    w = find_whitening(_toy(extra_curvature=c), np.zeros(3), PRIOR_SD)
    assert w.record["eigenvalues_floored"] == 1
    scales = np.sort(np.sqrt(np.sum(w.factor ** 2, axis=0)))    # each eigen-direction's sd
    np.testing.assert_allclose(scales, [1 / np.sqrt(36.6835103), 1 / np.sqrt(7.24404204), 1.0],
                               rtol=1e-5)
    np.testing.assert_allclose(w.centre, np.linalg.solve(precision, Q @ M), atol=1e-5)


def test_whitened_model_has_the_same_log_density_and_variables():
    """At any point, the whitened model's log density is the model's own (priors, the log
    transform's Jacobian, potentials); its deterministics are the model's variables by name,
    dims and value; a start maps to the whitened coordinates of the same point."""
    model = _toy()
    w = find_whitening(model, np.zeros(3), PRIOR_SD)
    wm = whitened_model(model, w)
    own, white = model.compile_logp(), wm.compile_logp()
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.normal(size=3)
        assert white({Z_NAME: w.to_z(x)}) == pytest.approx(own({"a": x[:2], "s_log__": x[2]}),
                                                           rel=1e-12)
    assert [v.name for v in wm.free_RVs] == [Z_NAME]
    assert {d.name for d in wm.deterministics} == {"a", "s"}
    assert wm.named_vars_to_dims["a"] == ("k",)
    x = np.array([0.2, -0.1, 0.3])
    values = pytensor.function(wm.value_vars, wm.replace_rvs_by_values([wm["a"], wm["s"]]))(
        w.to_z(x))
    np.testing.assert_allclose(values[0], x[:2], atol=1e-12)
    np.testing.assert_allclose(values[1], np.exp(x[2]), rtol=1e-12)
    start = whitened_start(lambda seed: x + seed, w)
    np.testing.assert_allclose(w.to_x(start(1.0)), x + 1.0, atol=1e-12)


def test_a_sampled_normal_posterior_and_its_trace():
    """nutpie on the whitened toy model: the posterior means and covariance of the model's
    own variables are the closed form's within Monte Carlo error, and the trace has them and
    not the whitened coordinates."""
    import dataclasses

    import nutpie

    model = _toy()
    w = find_whitening(model, np.zeros(3), PRIOR_SD)
    compiled = nutpie.compile_pymc_model(whitened_model(model, w), backend="numba")
    compiled = dataclasses.replace(compiled, initial_point_func=whitened_start(
        lambda seed: np.zeros(3), w))
    trace = without_whitened(nutpie.sample(compiled, draws=2000, tune=300, chains=2, seed=3,
                                           progress_bar=False))
    post = trace.posterior
    assert set(post.data_vars) == {"a", "s"}
    draws = np.column_stack([post["a"].values.reshape(-1, 2),
                             np.log(post["s"].values.reshape(-1))])
    mode, cov = _closed_form()
    se = np.sqrt(np.diag(cov) / 1500)        # (over 4,000 draws: a conservative ESS)
    assert np.all(np.abs(draws.mean(axis=0) - mode) < 4 * se)
    np.testing.assert_allclose(np.cov(draws.T), cov, rtol=0.15, atol=2e-3)
    assert not any(Z_NAME in str(d) for g in trace.children for d in trace[g].to_dataset().dims)


@pytest.fixture(scope="module")
def small_cohort():
    from neb_bayes.model.compiled import load_model
    from neb_bayes.simulate import simulate

    from .conftest import covered

    model = load_model()
    sims = simulate(model, 60, seed=21, p_repeat=0.0, p_measure=0.5, p_symptom_reported=0.2)
    return model, covered(model, [s.case for s in sims])[:40]


@pytest.mark.parametrize(("groups", "sampler"), [(("prevalence",), "pymc"),
                                                 (("analyte-levels",), "nutpie")])
def test_a_whitened_fit_reads_as_the_models_own(small_cohort, groups, sampler):
    """A fit on whitened coordinates (nutpie's chains in processes, each sampling the
    whitened model it builds from the parent's whitening, and pm.sample's chains): the trace
    has the model's own variables only, the prior set drawn from it has every parameter
    finite, and the provenance says how the whitening was found.  (nutpie's chains in
    threads run the same per-chain sampling as one in a process.)"""
    import json

    from neb_bayes.fit import fit

    model, cases = small_cohort
    res = fit(model, cases, groups=groups, draws=10, tune=10, chains=2, sampler=sampler,
              progressbar=False, whiten=True)
    settings = json.loads(res.attrs["sampler_settings"])
    record = settings["whitening"]
    assert record["parameters"] == res.diagnostics["n_parameters"] > 0
    assert record["evaluations"] >= 2 * record["parameters"]
    post = res.idata.posterior
    assert Z_NAME not in post.data_vars and post.sizes["chain"] == 2
    want = {"prior_base__thyroid"} if groups == ("prevalence",) else {"log_median",
                                                                      "lat_sd__thyroid"}
    assert want <= set(post.data_vars)
    assert all(np.isfinite(np.asarray(post[v])).all() for v in post.data_vars)
    assert np.isfinite(res.draws.log_median).all()
    chains = np.asarray(post[sorted(want)[0]])
    assert not np.allclose(chains[0], chains[1])
