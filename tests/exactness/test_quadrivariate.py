"""The four-dimensional normal CDF (conditioning plus the trivariate CDF) against adaptive
quadrature and Genz's QMC, and the engine's four censored results with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import multivariate_normal, norm

from neb_bayes.inference.exact import quadrivariate_normal_cdf, trivariate_normal_cdf


def _cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for trial in range(n):
        if trial % 3 == 0:   # strongly correlated, as repeats of one analyte are
            v = rng.normal(size=4)
            cov = np.outer(v, v) + np.diag(rng.uniform(0.001, 0.05, 4))
        else:
            a = rng.normal(size=(4, 4 + trial % 2))
            cov = a @ a.T + np.diag(rng.uniform(0.05, 1, 4))
        up = rng.normal(size=4) * 1.5
        yield up + (4 if trial % 5 == 0 else -3 if trial % 7 == 0 else 0), rng.normal(size=4), cov


def _adaptive(upper, mean, cov) -> float:
    """Conditioning on the first variable (whatever the function under test picks),
    integrated by adaptive quadrature (QUADPACK), the trivariate CDF inside (itself checked
    against adaptive quadrature in test_trivariate.py)."""
    sd0 = math.sqrt(cov[0, 0])
    c = cov[1:, 0] / cov[0, 0]
    cond = cov[1:, 1:] - np.outer(cov[1:, 0], cov[0, 1:]) / cov[0, 0]

    def f(x):
        return norm.pdf(x, mean[0], sd0) * float(
            trivariate_normal_cdf(upper[1:], mean[1:] + c * (x - mean[0]), cond))

    return integrate.quad(f, mean[0] - 12 * sd0, upper[0], epsabs=1e-14, epsrel=1e-12,
                          limit=500)[0]


@pytest.mark.parametrize("seed", [1, 2])
def test_agrees_with_adaptive_quadrature(seed):
    for upper, mean, cov in _cases(8, seed):
        assert float(quadrivariate_normal_cdf(upper, mean, cov)) == pytest.approx(
            _adaptive(upper, mean, cov), abs=1e-11, rel=1e-9)


def test_agrees_with_genz_qmc():
    for upper, mean, cov in _cases(6, 3):
        ref = multivariate_normal.cdf(upper, mean=mean, cov=cov, abseps=1e-9, releps=1e-7,
                                      rng=np.random.default_rng(0))
        assert float(quadrivariate_normal_cdf(upper, mean, cov)) == pytest.approx(
            ref, abs=1e-7, rel=1e-5)


def test_vectorised_over_a_grid_and_independent_variables():
    cov = np.diag([1.0, 2.0, 0.5, 3.0])
    upper = np.array([0.3, -0.2, 1.0, 2.0])
    means = np.linspace(-1, 1, 70).reshape(7, 10, 1) * np.ones(4)   # more than one block
    p = quadrivariate_normal_cdf(upper, means, cov)
    assert p.shape == (7, 10)
    expect = np.prod(norm.cdf((upper - means) / np.sqrt(np.diag(cov))), axis=-1)
    np.testing.assert_allclose(p, expect, atol=1e-13, rtol=0)
    for i in (0, 4, 6):
        assert p[i, 3] == quadrivariate_normal_cdf(upper, means[i, 3], cov)
