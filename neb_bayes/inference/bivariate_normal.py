"""The bivariate normal CDF on the log scale, accurate in its tails.

Two censored results on one axis (oestradiol and progesterone below their limits after the
menopause, TSH suppressed twice, ACTH and the dexamethasone-suppressed cortisol) have the
mass ``P(X < h, Y < k)`` of a standard bivariate normal with correlation ``rho``.  At the
grid points of states that the results rule out this mass is tiny, and a formula that
subtracts numbers of order one (Owen's T; Drezner and Wesolowsky's for negative ``rho``)
loses it: ``P(X < -10, Y < 3; 0.3)`` is 7.6e-24, such formulas give 0.  So:

* where the mass may be above :data:`TAIL` (``Phi(min(h, k))`` is), a closed form with an
  absolute error of ~1e-15 (so below ~1e-8 of the mass): Owen's T from scipy here, Genz's
  form of Drezner and Wesolowsky's method in the compiled version
  (:mod:`~neb_bayes.inference.bivariate_kernels`);
* below it, the integral of ``phi(x) Phi((k - rho x) / s)`` over ``x < h`` (``h <= k``,
  ``s = sqrt(1 - rho^2)``) on the log scale: the integrand is log-concave with curvature at
  least 1, so from its mode (or from ``h``, where it still rises) panels of width
  ``2 sigma``, ``2 sigma``, ``4 sigma``, ``8 sigma``, ... (``sigma`` its scale there), each by
  :data:`NODES` Gauss-Legendre nodes, reach every tail until the integrand is :data:`DEPTH`
  below its top.  Within ~1e-12 of QUADPACK on the log scale, from 1e-7 down to 1e-3800
  (``tests/exactness/test_bivariate_normal.py``).

:func:`log_bivariate_normal_cdf` runs the compiled version where the draws path runs its
kernels (:func:`neb_bayes.accel.use_compiled`: numba loaded, or a process's second report),
else this module's numpy version of the same steps, so that a one-shot report does not load
numba; the two agree to ~1e-12.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["log_bivariate_normal_cdf", "DEPTH", "NODES", "TAIL"]

LOG_2PI = math.log(2.0 * math.pi)
#: below this mass the tail integral replaces the closed forms, whose absolute error (~1e-15)
#: would be more than 1e-8 of the mass
TAIL = 1e-7
LOG_TAIL = math.log(TAIL)
#: the tail integral stops where the integrand is this far (log scale) below its largest
#: value (e^-40: below 5e-18 of the mass)
DEPTH = 40.0
#: Gauss-Legendre nodes (ascending) and weights on each panel of the tail integral
NODES = np.polynomial.legendre.leggauss(8)


def log_bivariate_normal_cdf(h, k, rho) -> np.ndarray:
    """log P(X < h, Y < k) for standard bivariate normals with correlations ``rho``,
    elementwise over broadcast arrays."""
    from neb_bayes import accel

    h, k, rho = np.broadcast_arrays(np.asarray(h, float), np.asarray(k, float),
                                    np.asarray(rho, float))
    out = np.empty(h.shape)
    flat = [np.ascontiguousarray(x).reshape(-1) for x in (h, k, rho)]
    if accel.use_compiled():
        from neb_bayes.inference.bivariate_kernels import log_bvn_many

        log_bvn_many(*flat, out.reshape(-1))
    else:
        out.reshape(-1)[:] = _log_bvn(*flat)
    return out


def _log_bvn(h: np.ndarray, k: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The numpy version of :func:`~neb_bayes.inference.bivariate_kernels.log_bvn` (flat
    arrays)."""
    from scipy.special import log_ndtr

    from neb_bayes.inference.exact import bivariate_normal_cdf

    h, k = np.minimum(h, k), np.maximum(h, k)
    out = np.full(h.shape, -np.inf)
    lh = log_ndtr(h)
    # as the compiled version: a limit at -inf, then at +inf, then rho 0, then |rho| 1
    some = h > -np.inf
    one = some & (k == np.inf)
    out[one] = lh[one]
    some &= ~one
    zero = some & (r == 0)
    out[zero] = lh[zero] + log_ndtr(k[zero])
    some &= ~zero
    pos = some & (r >= 1)
    out[pos] = lh[pos]
    neg = some & (r <= -1)
    if neg.any():
        p = np.exp(lh[neg]) - np.exp(log_ndtr(-k[neg]))
        with np.errstate(divide="ignore"):
            out[neg] = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf)
    general = some & (np.abs(r) < 1)
    # where Phi(min(h, k)) is above TAIL the mass may be: the closed form, kept above TAIL
    cand = general & (lh > LOG_TAIL)
    p = bivariate_normal_cdf(h[cand], k[cand], r[cand])
    fast = np.zeros_like(general)
    fast[cand] = p > TAIL
    out[fast] = np.log(np.minimum(p[p > TAIL], 1.0))
    tail = general & ~fast
    if tail.any():
        out[tail] = _log_tail(h[tail], k[tail], r[tail], log_ndtr)
    return out


def _ell(x, k, r, s, log_ndtr):
    """log phi(x) + log Phi((k - r x) / s) without log(2 pi) / 2, and its first two
    derivatives."""
    t = (k - r * x) / s
    lt = log_ndtr(t)
    lam = np.exp(-0.5 * t * t - 0.5 * LOG_2PI - lt)
    q = r / s
    return -0.5 * x * x + lt, -x - q * lam, -1.0 - q * q * lam * (t + lam)


def _log_tail(h, k, r, log_ndtr):
    """log P(X < h, Y < k), ``h <= k`` finite, ``|r| < 1``: the integral on the log scale
    (the module docstring; :func:`~neb_bayes.inference.bivariate_kernels._log_tail`'s steps
    on arrays)."""
    s = np.sqrt((1.0 - r) * (1.0 + r))
    v, d1, d2 = _ell(h, k, r, s, log_ndtr)
    m = h.copy()
    inner = np.flatnonzero(d1 < 0.0)
    if inner.size:
        # the mode inside: bracket the root of ell', then safeguarded Newton
        hh, kk, rr, ss = h[inner], k[inner], r[inner], s[inner]
        hi, step = hh.copy(), np.ones(inner.size)
        lo = hh - step
        more = _ell(lo, kk, rr, ss, log_ndtr)[1] < 0.0
        while more.any():
            hi[more] = lo[more]
            step[more] *= 2.0
            lo[more] = hh[more] - step[more]
            more[more] = _ell(lo[more], kk[more], rr[more], ss[more], log_ndtr)[1] < 0.0
        mm = 0.5 * (lo + hi)
        alive = np.ones(inner.size, dtype=bool)
        for _ in range(60):
            a = np.flatnonzero(alive)
            if not a.size:
                break
            _, e1, e2 = _ell(mm[a], kk[a], rr[a], ss[a], log_ndtr)
            up = e1 > 0.0
            lo[a] = np.where(up, mm[a], lo[a])
            hi[a] = np.where(up, hi[a], mm[a])
            nxt = mm[a] - e1 / e2
            bad = ~((lo[a] < nxt) & (nxt < hi[a]))
            nxt[bad] = 0.5 * (lo[a] + hi[a])[bad]
            scale = 1.0 + np.abs(mm[a])
            done = (np.abs(nxt - mm[a]) <= 1e-10 * scale) | (hi[a] - lo[a] <= 1e-12 * scale)
            mm[a] = nxt
            alive[a[done]] = False
        m[inner] = mm
        v[inner], d1[inner], d2[inner] = _ell(mm, kk, rr, ss, log_ndtr)
    # (the curvature is at least 1; near |rho| = 1 its formula may lose that to rounding)
    sigma = 1.0 / np.maximum(np.sqrt(np.maximum(-d2, 1.0)), np.maximum(d1, 0.0))
    total = _panels(v, m, sigma, np.full(h.shape, np.inf), -1.0, k, r, s, log_ndtr)
    right = m < h
    if right.any():
        total[right] += _panels(v[right], m[right], sigma[right],
                                (h[right] - m[right]) / sigma[right], 1.0, k[right], r[right],
                                s[right], log_ndtr)
    return v - 0.5 * LOG_2PI + np.log(total)


def _panels(top, m, sigma, stop, sgn, k, r, s, log_ndtr):
    """:func:`~neb_bayes.inference.bivariate_kernels._panels` on arrays."""
    px, pw = NODES
    total = np.zeros(top.shape)
    lo, hi = 0.0, 2.0
    live = np.arange(top.size)
    for _ in range(64):
        end = np.minimum(hi, stop[live])
        half = 0.5 * (end - lo)
        u = 0.5 * (end + lo)[:, None] + half[:, None] * px
        x = m[live, None] + sgn * sigma[live, None] * u
        v = -0.5 * x * x + log_ndtr((k[live, None] - r[live, None] * x) / s[live, None])
        total[live] += (pw * np.exp(v - top[live, None])).sum(axis=1) * half
        live = live[~((end >= stop[live]) | (v[:, -1] < top[live] - DEPTH))]
        if not live.size:
            break
        lo, hi = hi, 2.0 * hi
    return total * sigma
