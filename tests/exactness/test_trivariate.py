"""The closed-form-plus-quadrature trivariate normal CDF against Genz's adaptive QMC."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import multivariate_normal

from neb_bayes.inference.exact import bivariate_normal_cdf, trivariate_normal_cdf


def _cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for trial in range(n):
        if trial % 3 == 0:   # strongly correlated, as repeats of one analyte are
            v = rng.normal(size=3)
            cov = np.outer(v, v) + np.diag(rng.uniform(0.001, 0.05, 3))
        else:
            a = rng.normal(size=(3, 3))
            cov = a @ a.T + np.diag(rng.uniform(0.01, 1, 3))
        yield rng.normal(size=3) * 2, rng.normal(size=3) * 2, cov


def _adaptive(upper, mean, cov) -> float:
    """The same conditioning, integrated by adaptive quadrature (QUADPACK) to ~1e-15."""
    sd = np.sqrt(np.diag(cov))
    t = (upper - mean) / sd
    r = cov / np.outer(sd, sd)
    s1, s2 = math.sqrt(1 - r[0, 1] ** 2), math.sqrt(1 - r[0, 2] ** 2)
    rc = (r[1, 2] - r[0, 1] * r[0, 2]) / (s1 * s2)

    def f(z):
        return math.exp(-z * z / 2) / math.sqrt(2 * math.pi) * float(
            bivariate_normal_cdf((t[1] - r[0, 1] * z) / s1, (t[2] - r[0, 2] * z) / s2, rc))

    steps = [x for x in (t[1] / r[0, 1], t[2] / r[0, 2]) if -40 < x < t[0]]
    return integrate.quad(f, -40, t[0], points=steps or None, epsabs=1e-15, epsrel=1e-13,
                          limit=500)[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_fixed_rule_agrees_with_adaptive_quadrature(seed):
    for upper, mean, cov in _cases(40, seed):
        assert float(trivariate_normal_cdf(upper, mean, cov)) == pytest.approx(
            _adaptive(upper, mean, cov), abs=1e-13, rel=1e-10)


def test_agrees_with_genz_qmc():
    """An independent method (Genz's randomised lattice QMC, whose own error reaches ~1e-7 even on
    well-conditioned covariances; it is not compared on near-singular ones, where it is
    the less accurate of the two: see the Monte Carlo test)."""
    for n, (upper, mean, cov) in enumerate(_cases(18, 2)):
        if n % 3 == 0:
            continue
        ref = multivariate_normal.cdf(upper, mean=mean, cov=cov, abseps=1e-12, releps=1e-10,
                                      maxpts=1_000_000, rng=np.random.default_rng(1))
        assert float(trivariate_normal_cdf(upper, mean, cov)) == pytest.approx(ref, abs=5e-7)


def test_near_singular_covariance_against_monte_carlo():
    """Correlations 0.99 / -0.93: plain Monte Carlo (1e7 draws) brackets the answer (Genz QMC
    is off by 1.4e-5 here, 9 standard errors)."""
    t = np.array([4.31730754, 4.1800845, 3.80304563])
    r = np.array([[1.0, 0.99220159, -0.92519525], [0.99220159, 1.0, -0.92532226],
                  [-0.92519525, -0.92532226, 1.0]])
    tail = 1 - float(trivariate_normal_cdf(t, np.zeros(3), r))
    chol = np.linalg.cholesky(r)
    rng = np.random.default_rng(0)
    miss = sum(np.count_nonzero((rng.standard_normal((2_000_000, 3)) @ chol.T >= t).any(1))
               for _ in range(5))
    est, se = miss / 1e7, np.sqrt(miss) / 1e7
    assert abs(tail - est) < 4 * se, (tail, est, se)


def test_vectorised_over_a_grid_of_means():
    rng = np.random.default_rng(3)
    mean = rng.normal(size=(4, 5, 3))
    cov = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]])
    got = trivariate_normal_cdf(np.zeros(3), mean, cov)
    assert got.shape == (4, 5)
    one = [float(trivariate_normal_cdf(np.zeros(3), m, cov)) for m in mean.reshape(-1, 3)]
    np.testing.assert_allclose(got.ravel(), one, rtol=1e-12)


def test_limits():
    cov = np.eye(3)
    assert trivariate_normal_cdf(np.full(3, 40.0), np.zeros(3), cov) == pytest.approx(1.0, abs=1e-12)
    # independent components: the product of the univariate CDFs
    from scipy.special import ndtr
    up = np.array([0.3, -1.2, 2.0])
    assert trivariate_normal_cdf(up, np.zeros(3), cov) == pytest.approx(np.prod(ndtr(up)), rel=1e-10)
