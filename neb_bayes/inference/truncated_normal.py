"""Mean and covariance of a multivariate normal truncated to the censored results' region.

Given the discrete states and the observed results, an axis' latents and its censored
results ``w`` are jointly Gaussian, and the latents are linear in ``w``: so the latents'
posterior moments given that every censored result lies beyond its limit follow from the
first two moments of ``w`` truncated to that region, ``{w : sign_i (w_i - lim_i) > 0}``
(one finite bound per result: ``sign`` -1 below the limit, +1 above).

Those moments are Tallis' (1961) formulas as written by Manjunath and Wilhelm (2012,
"Moments calculation for the doubly truncated multivariate normal density", eqs. 9 and 16),
with one finite bound per coordinate: with ``x = w - mu``, ``beta = lim - mu``, ``alpha`` the
region's mass and ``F_k``, ``F_kq`` the density of ``x_k`` at ``beta_k`` (of ``(x_k, x_q)``
at ``(beta_k, beta_q)``) times the mass of the other results given it,

* ``E[x_i] = sum_k s_ik sign_k F_k / alpha``,
* ``E[x_i x_j] = s_ij + sum_k s_ik s_jk sign_k beta_k F_k / (s_kk alpha)
  + sum_k sum_(q != k) s_ik (s_jq - s_kq s_jk / s_kk) sign_k sign_q F_kq / alpha``.

Every ratio ``F / alpha`` is formed on the log scale, each mass by
:func:`~neb_bayes.inference.exact.censored_log_mass` (the normal CDF, the bivariate CDF
accurate in its tails, the trivariate and higher rules), so the moments stay finite where
the region's mass underflows.  One censored result gives the familiar truncated-normal
moments (inverse Mills ratio).  The rules for three or more dimensions return a probability,
floored at 1e-300: below that mass (states the results rule out) each result's own
truncated moments stand in (:data:`LOG_FLOOR`).
"""

from __future__ import annotations

import math

import numpy as np

from neb_bayes.inference.bivariate_normal import LOG_2PI
from neb_bayes.inference.exact import censored_log_mass

__all__ = ["truncated_moments"]
#: the log of the smallest mass the rules for three or more dimensions return (their
#: probabilities are floored at 1e-300), with a margin
LOG_FLOOR = math.log(1e-290)


def _given(mu, cov, at, beta, rest):
    """The conditional mean and covariance of ``w[rest]`` given ``x[at] = beta[at]``."""
    s_aa = cov[..., at, :][..., :, at]
    s_ra = cov[..., rest, :][..., :, at]
    gain = np.linalg.solve(s_aa, np.swapaxes(s_ra, -1, -2))            # (..., a, r)
    gain = np.swapaxes(gain, -1, -2)                                   # (..., r, a)
    mean = mu[..., rest] + np.matmul(gain, beta[..., at, None])[..., 0]
    c = cov[..., rest, :][..., :, rest] - np.matmul(gain, np.swapaxes(s_ra, -1, -2))
    return mean, c


def truncated_moments(mu: np.ndarray, cov: np.ndarray, sign: np.ndarray,
                      lim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``w ~ N(mu, cov)`` given ``sign_i (w_i - lim_i) > 0`` for all
    ``i``.

    Parameters
    ----------
    mu : numpy.ndarray
        Means, shape ``grid + (m,)``.
    cov : numpy.ndarray
        Covariances, broadcastable to ``grid + (m, m)``.
    sign : numpy.ndarray
        ``(m,)``: -1 where the result is below its limit, +1 above.
    lim : numpy.ndarray
        ``(m,)``: the limits.

    Returns
    -------
    mean, cov : numpy.ndarray
        ``grid + (m,)`` and ``grid + (m, m)``.
    """
    sign = np.asarray(sign, float)
    lim = np.asarray(lim, float)
    m = sign.size
    grid = np.broadcast_shapes(mu.shape[:-1], cov.shape[:-2])
    mu = np.broadcast_to(mu, grid + (m,))
    cov = np.broadcast_to(cov, grid + (m, m))
    beta = lim - mu
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    log_alpha = censored_log_mass(mu, cov, sign, lim)
    every = np.arange(m)
    # sign_k F_k / alpha
    f1 = np.empty(grid + (m,))
    for k in range(m):
        rest = every[every != k]
        lf = -0.5 * (LOG_2PI + np.log(var[..., k]) + beta[..., k] ** 2 / var[..., k])
        if rest.size:
            mean_r, cov_r = _given(mu, cov, [k], beta, rest)
            lf = lf + censored_log_mass(mean_r, cov_r, sign[rest], lim[rest])
        f1[..., k] = sign[k] * np.exp(lf - log_alpha)
    ex = np.matmul(cov, f1[..., None])[..., 0]
    e2 = cov + np.matmul(cov * (f1 * beta / var)[..., None, :], np.swapaxes(cov, -1, -2))
    for k in range(m):
        for q in range(m):
            if q == k:
                continue
            pair = [k, q]
            rest = every[(every != k) & (every != q)]
            s_kk, s_qq, s_kq = var[..., k], var[..., q], cov[..., k, q]
            det = s_kk * s_qq - s_kq**2
            bk, bq = beta[..., k], beta[..., q]
            lf = (-LOG_2PI - 0.5 * np.log(det)
                  - 0.5 * (s_qq * bk**2 - 2.0 * s_kq * bk * bq + s_kk * bq**2) / det)
            if rest.size:
                mean_r, cov_r = _given(mu, cov, pair, beta, rest)
                lf = lf + censored_log_mass(mean_r, cov_r, sign[rest], lim[rest])
            f2 = sign[k] * sign[q] * np.exp(lf - log_alpha)
            u = cov[..., :, k]
            v = cov[..., :, q] - (s_kq / s_kk)[..., None] * u
            e2 = e2 + (f2[..., None] * u)[..., :, None] * v[..., None, :]
    with np.errstate(over="ignore", invalid="ignore"):
        c = e2 - ex[..., :, None] * ex[..., None, :]
    mean, c = mu + ex, 0.5 * (c + np.swapaxes(c, -1, -2))
    if m >= 3:
        # three or more: the masses of three and more dimensions are exact down to ~1e-300
        # only (their rules return a probability), so where the region's mass is below
        # that, the ratios are not: there (states the results rule out, of no weight) each
        # result's own truncated moments, as if the others were not correlated with it
        bad = (log_alpha < LOG_FLOOR) | ~np.all(np.isfinite(mean), -1) \
            | ~np.all(np.isfinite(c), (-2, -1))
        if bad.any():
            for i in range(m):
                mi, vi = truncated_moments(mu[bad][:, [i]], cov[bad][:, [i]][:, :, [i]],
                                           sign[[i]], lim[[i]])
                mean[bad, i] = mi[:, 0]
                row = c[bad]
                row[:, i, :] = row[:, :, i] = 0.0
                row[:, i, i] = vi[:, 0, 0]
                c[bad] = row
    return mean, c
