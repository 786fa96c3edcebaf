"""Moments of a multivariate normal truncated to the censored results' region (Tallis'
formulas), against independent methods: scipy's univariate truncated normal, a double
integral by QUADPACK, and the derivatives of the region's log mass (``grad log alpha =
S^-1 E[x]``, ``hess log alpha = S^-1 Cov[x] S^-1 - S^-1``) by finite differences, which
reach the far tails where the mass underflows.

Before, the latent summaries applied each censored result's univariate update in turn, each
computed from the moments given the observed results only: with TSH suppressed twice the
pituitary drive's mean moved by 1.1 on the log scale and its variance went negative (a
zero-width interval in the report).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import integrate, stats

from neb_bayes.inference.exact import censored_log_mass
from neb_bayes.inference.truncated_normal import truncated_moments


def _random_problem(rng, m, depth=1.0):
    a = rng.normal(size=(m, m))
    cov = a @ a.T + 0.3 * np.eye(m)
    mu = rng.normal(size=m)
    sign = rng.choice([-1.0, 1.0], size=m)
    # limits so the region lies up to `depth` sds into a tail
    lim = mu - sign * rng.uniform(-1.0, depth, size=m) * np.sqrt(np.diag(cov))
    return mu, cov, sign, lim


@pytest.mark.parametrize("beta", [-40.0, -8.0, -1.5, 0.0, 2.0, 9.0])
@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_one_result_equals_scipys_truncated_normal(beta, sign):
    mu, sd = 0.7, 1.9
    lim = mu + beta * sd
    mean, cov = truncated_moments(np.array([mu]), np.array([[sd * sd]]), np.array([sign]),
                                  np.array([lim]))
    lo, hi = (-np.inf, beta) if sign < 0 else (beta, np.inf)
    want_m, want_v = stats.truncnorm.stats(lo, hi, loc=mu, scale=sd, moments="mv")
    np.testing.assert_allclose(mean[0], want_m, rtol=1e-9, atol=1e-9 * sd)
    np.testing.assert_allclose(cov[0, 0], want_v, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_two_results_equal_a_double_integral(seed):
    rng = np.random.default_rng(seed)
    mu, cov, sign, lim = _random_problem(rng, 2)
    mean, c = truncated_moments(mu, cov, sign, lim)
    pdf = stats.multivariate_normal(mu, cov).pdf
    bounds = [(lim[i], mu[i] + 12 * np.sqrt(cov[i, i])) if sign[i] > 0
              else (mu[i] - 12 * np.sqrt(cov[i, i]), lim[i]) for i in range(2)]

    def integral(f):
        return integrate.dblquad(lambda y, x: f(x, y) * pdf([x, y]), *bounds[0], *bounds[1],
                                 epsabs=1e-13, epsrel=1e-11)[0]

    mass = integral(lambda x, y: 1.0)
    ex = np.array([integral(lambda x, y: x), integral(lambda x, y: y)]) / mass
    exx = integral(lambda x, y: x * x) / mass
    eyy = integral(lambda x, y: y * y) / mass
    exy = integral(lambda x, y: x * y) / mass
    want_c = np.array([[exx, exy], [exy, eyy]]) - np.outer(ex, ex)
    np.testing.assert_allclose(mean, ex, atol=1e-7)
    np.testing.assert_allclose(c, want_c, atol=1e-6)


def _derivatives_of_log_mass(mu, cov, sign, lim, h=1e-3):
    """grad and Hessian of log P(region) in mu by central differences."""
    m = mu.size

    def f(x):
        return float(censored_log_mass(x[None], cov[None], sign, lim)[0])

    grad, hess = np.empty(m), np.empty((m, m))
    eye = np.eye(m) * h
    f0 = f(mu)
    for i in range(m):
        grad[i] = (f(mu + eye[i]) - f(mu - eye[i])) / (2 * h)
        hess[i, i] = (f(mu + eye[i]) - 2 * f0 + f(mu - eye[i])) / h**2
        for j in range(i):
            hess[i, j] = hess[j, i] = (f(mu + eye[i] + eye[j]) - f(mu + eye[i] - eye[j])
                                       - f(mu - eye[i] + eye[j]) + f(mu - eye[i] - eye[j])) / (
                4 * h * h)
    return grad, hess


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("depth", [1.0, 6.0, 12.0])
@pytest.mark.parametrize("seed", range(4))
def test_moments_are_the_derivatives_of_the_log_mass(m, depth, seed):
    """Into the far tails (regions of mass down to ~1e-60): the mean and covariance of the
    truncated normal are the first and second derivatives of the region's log mass."""
    rng = np.random.default_rng(100 * m + seed)
    mu, cov, sign, lim = _random_problem(rng, m, depth)
    mean, c = truncated_moments(mu, cov, sign, lim)
    grad, hess = _derivatives_of_log_mass(mu, cov, sign, lim)
    prec = np.linalg.inv(cov)
    scale = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(prec @ (mean - mu), grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose((prec @ c @ prec - prec) * np.outer(scale, scale),
                               hess * np.outer(scale, scale), atol=5e-4)
    assert np.all(np.linalg.eigvalsh(c) > 0)


def test_moments_over_a_grid_equal_those_point_by_point():
    rng = np.random.default_rng(7)
    mu0, cov, sign, lim = _random_problem(rng, 2)
    mus = mu0 + rng.normal(size=(3, 4, 2))
    mean, c = truncated_moments(mus, cov, sign, lim)
    for idx in np.ndindex(3, 4):
        m1, c1 = truncated_moments(mus[idx], cov, sign, lim)
        np.testing.assert_allclose(mean[idx], m1, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(c[idx], c1, rtol=1e-13, atol=1e-14)


def test_three_results_beyond_the_masses_floor_stay_finite():
    """Three censored results whose region's mass is below what the three-dimensional rule
    returns (1e-300; at states the results rule out): finite moments, each mean beyond its
    limit (each result's own truncated moments there)."""
    cov = np.array([[1.0, 0.6, 0.5], [0.6, 1.0, 0.4], [0.5, 0.4, 1.0]])
    mu = np.array([40.0, 38.0, 41.0])
    sign, lim = np.array([-1.0, -1.0, -1.0]), np.zeros(3)
    assert censored_log_mass(mu[None], cov[None], sign, lim)[0] < np.log(1e-290)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)    # no overflow, no invalid value
        mean, c = truncated_moments(mu, cov, sign, lim)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(c))
    assert np.all(mean < lim) and np.all(np.linalg.eigvalsh(c) > 0)
