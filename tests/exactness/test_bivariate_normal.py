"""The bivariate normal CDF on the log scale (two censored results on an axis) against an
independent integral, in its tails above all, and its gradient against finite differences.

Before, the engines took log(max(Phi2, 1e-300)) of Owen's T form, which loses a mass below
~1e-16 to cancellation: ``P(X < -10, Y < 3; 0.3)`` = 7.6e-24 read as 0, log -690.8 instead
of -53.2, at the grid points of the states such a pair of results rules out.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special

from neb_bayes import accel
from neb_bayes.inference.bivariate_kernels import log_bvn, log_bvn_grad
from neb_bayes.inference.bivariate_normal import TAIL, _log_bvn, log_bivariate_normal_cdf
from neb_bayes.inference.exact import bivariate_normal_cdf, censored_log_mass


def _reference(h: float, k: float, rho: float) -> float:
    """log P(X < h, Y < k) by QUADPACK on the log scale: the integral over x < min(h, k) of
    phi(x) Phi((k' - rho x) / s), scaled by its largest value on a fine grid."""
    h, k = min(h, k), max(h, k)
    s = np.sqrt(1 - rho * rho)

    def f(x):
        return -0.5 * x * x + special.log_ndtr((k - rho * x) / s)

    xs = np.linspace(h - 60, h, 600_001)
    fv = f(xs)
    top, at = fv.max(), xs[fv.argmax()]
    left = integrate.quad(lambda x: np.exp(f(x) - top), -np.inf, at, epsabs=0, epsrel=1e-13,
                          limit=500)[0]
    right = (integrate.quad(lambda x: np.exp(f(x) - top), at, h, epsabs=0, epsrel=1e-13,
                            limit=500)[0] if at < h else 0.0)
    return top - 0.5 * np.log(2 * np.pi) + np.log(left + right)


# the far tails Owen's T form lost (masses 1e-16 to 1e-3800), both signs of rho, rho near
# +-1 (a sharp step in the integrand), and the bulk
TAILS = [(-10, 3, 0.3), (-10, 3, -0.3), (-8, -1, 0.5), (-10, -10, 0.2), (3, -9, 0.1),
         (-12, 2, 0.0), (-9, 1, -0.8), (-5, -5, -0.9), (-3, -3, 0.999), (-3, -2.9, -0.999),
         (-30, -20, 0.6), (-20, -30, -0.6), (-40, 5, 0.95), (-7, -7, 0.93)]
BULK = [(-6, 6, 0.9), (0, 0, 0.5), (2, -2, -0.95), (5, 5, -0.99), (1.5, -0.3, 0.7),
        (-1, -2, -0.2), (0.3, 0.3, 0.926), (0.3, 0.3, -0.926)]


def _numpy(h, k, rho):
    """The numpy version (a one-shot report's, without numba), elementwise."""
    h, k, rho = (np.atleast_1d(np.asarray(x, float)) for x in np.broadcast_arrays(h, k, rho))
    return _log_bvn(h.ravel(), k.ravel(), rho.ravel()).reshape(h.shape)


@pytest.mark.parametrize(("h", "k", "rho"), TAILS + BULK)
def test_log_mass_equals_an_independent_integral_in_its_tails_and_bulk(h, k, rho):
    want = _reference(h, k, rho)
    got = log_bvn(h, k, rho)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-9)
    assert _numpy(h, k, rho)[0] == pytest.approx(want, rel=1e-12, abs=1e-9)
    # (symmetric in the limits)
    assert log_bvn(k, h, rho) == pytest.approx(got, rel=1e-12, abs=1e-11)


def test_random_limits_and_correlations_equal_the_integral():
    rng = np.random.default_rng(4)
    h, k = rng.uniform(-15, 8, (2, 120))
    rho = rng.uniform(-0.999, 0.999, 120)
    want = np.array([_reference(*a) for a in zip(h, k, rho, strict=True)])
    np.testing.assert_allclose(log_bivariate_normal_cdf(h, k, rho), want, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(_numpy(h, k, rho), want, rtol=1e-12, atol=1e-9)
    # both of its forms are exercised
    assert (want < np.log(TAIL)).sum() > 20 and (want > np.log(TAIL)).sum() > 20


def test_the_numpy_and_compiled_versions_agree(monkeypatch):
    """A one-shot report computes the masses in numpy (no numba loaded), later ones and the
    batch compiled: the same numbers to ~1e-11 (Owen's T and Drezner and Wesolowsky's form
    above TAIL, both to ~1e-16 absolute), the limits' special cases and rho near +-1 (no
    NaN: the integrand's curvature is held at least 1) included."""
    rng = np.random.default_rng(8)
    h, k = rng.uniform(-30, 9, (2, 3000))
    rho = rng.uniform(-1, 1, 3000)
    rho[:40] = [0.0, 1.0, -1.0, 0.999999, -0.999999] * 8
    h[40:50], k[50:60] = -np.inf, np.inf
    h[60:65] = k[60:65] = np.inf
    got = {}
    for compiled in ("1", "0"):
        monkeypatch.setenv("NEB_BAYES_COMPILED", compiled)
        assert accel.use_compiled() == (compiled == "1")
        got[compiled] = log_bivariate_normal_cdf(h, k, rho)
    np.testing.assert_array_equal(np.isfinite(got["1"]), np.isfinite(got["0"]))
    fin = np.isfinite(got["1"])
    # (just above TAIL the closed forms' absolute errors, ~1e-16, are ~1e-9 of the mass)
    np.testing.assert_allclose(got["0"][fin], got["1"][fin], rtol=1e-11, atol=1e-9)
    np.testing.assert_array_equal(got["0"][~fin], got["1"][~fin])


def test_the_bulk_equals_owens_t_form_and_the_tail_is_not_lost():
    rng = np.random.default_rng(5)
    h, k = rng.uniform(-4, 4, (2, 400))
    rho = rng.uniform(-0.99, 0.99, 400)
    p = bivariate_normal_cdf(h, k, rho)
    bulk = p > 1e-6
    np.testing.assert_allclose(np.exp(log_bivariate_normal_cdf(h, k, rho))[bulk], p[bulk],
                               rtol=1e-9)
    np.testing.assert_allclose(np.exp(_numpy(h, k, rho))[bulk], p[bulk], rtol=1e-9)
    # the old form's floor: 0 where the mass is 7.6e-24
    assert bivariate_normal_cdf(-10.0, 3.0, 0.3) == 0.0
    assert log_bvn(-10.0, 3.0, 0.3) == pytest.approx(np.log(7.619853023150511e-24), rel=1e-12)


def test_owens_t_form_at_both_limits_zero():
    """Owen's T form's a_h, a_k are 0 / 0 there: Sheppard's 1/4 + asin(rho) / (2 pi)."""
    rho = np.array([-0.9, -0.3, 0.0, 0.5, 0.99])
    np.testing.assert_allclose(bivariate_normal_cdf(0.0, 0.0, rho),
                               0.25 + np.arcsin(rho) / (2 * np.pi), rtol=1e-15)
    assert log_bvn(0.0, 0.0, 0.5) == pytest.approx(np.log(1 / 3), rel=1e-14)


def test_limits_without_a_second_dimension():
    t = np.array([-12.0, -1.0, 0.5, 7.0])
    assert np.allclose(log_bivariate_normal_cdf(t, 3.0, 0.0), special.log_ndtr(t)
                       + special.log_ndtr(3.0), rtol=1e-14)
    assert np.allclose(log_bivariate_normal_cdf(t, np.inf, 0.4), special.log_ndtr(t), rtol=1e-14)
    assert np.all(log_bivariate_normal_cdf(t, -np.inf, 0.4) == -np.inf)
    assert np.allclose(log_bivariate_normal_cdf(t, 1.0, 1.0),
                       special.log_ndtr(np.minimum(t, 1.0)), rtol=1e-14)
    # continuous where the two forms meet (the mass at TAIL)
    ks = np.linspace(-6.0, -4.0, 2001)
    lp = log_bivariate_normal_cdf(-1.0, ks, 0.5)
    assert np.all(np.diff(lp) > 0)          # increasing in a limit
    assert np.abs(np.diff(lp, 2)).max() < 1e-5


def test_gradient_equals_finite_differences():
    rng = np.random.default_rng(6)
    e = 1e-6
    for _ in range(400):
        h, k = rng.uniform(-14, 6, 2)
        rho = rng.uniform(-0.98, 0.98)
        lp = log_bvn(h, k, rho)
        got = np.array(log_bvn_grad(h, k, rho, lp))
        fd = np.array([(log_bvn(h + e, k, rho) - log_bvn(h - e, k, rho)) / (2 * e),
                       (log_bvn(h, k + e, rho) - log_bvn(h, k - e, rho)) / (2 * e),
                       (log_bvn(h, k, rho + e) - log_bvn(h, k, rho - e)) / (2 * e)])
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-6)


def test_the_exact_engines_pair_mass_is_the_integral_at_a_ruled_out_state():
    """Two results below their limits at a grid point whose state puts their means far above
    (a premenopausal level under oestradiol's limit): the mass is tiny and finite, not the
    old floor of 1e-300."""
    mu = np.array([[2.0, 0.4], [-1.0, -2.0]])                 # two grid points
    cov = np.array([[0.16, 0.05], [0.05, 0.09]])
    lim = np.array([-2.0, -0.8])
    got = censored_log_mass(mu, cov, np.array([-1.0, -1.0]), lim)
    sd = np.sqrt(np.diag(cov))
    rho = cov[0, 1] / (sd[0] * sd[1])
    want = [_reference(*((lim - m) / sd), rho) for m in mu]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert -60 < got[0] < -40
