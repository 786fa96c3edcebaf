"""The bivariate normal CDF on the log scale, compiled (numba, cached on disk): the fit's
kernel calls :func:`log_bvn` and :func:`log_bvn_grad` per grid point, and
:func:`~neb_bayes.inference.bivariate_normal.log_bivariate_normal_cdf` calls
:func:`log_bvn_many` where numba is loaded (the method: that module's docstring).

* :func:`log_bvn`: Genz's double-precision form of Drezner and Wesolowsky's method (Genz
  2004, *Statistics and Computing* 14:251-260; absolute error ~1e-15) where the mass is
  above :data:`TAIL`; below, :func:`_log_tail`.
* :func:`log_bvn_grad`: the partial derivatives with respect to ``h``, ``k`` and ``rho``
  from the closed forms ``phi(h) Phi((k - rho h) / s)`` and the bivariate density, divided
  by the mass on the log scale.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from neb_bayes.inference.bivariate_normal import DEPTH, LOG_2PI, LOG_TAIL, NODES, TAIL
from neb_bayes.inference.kernels import log_ndtr

__all__ = ["log_bvn", "log_bvn_grad", "log_bvn_many"]

SQRT2 = math.sqrt(2.0)
_DEPTH = DEPTH

# Gauss-Legendre rules of 6, 12 and 20 points for Drezner and Wesolowsky's integral, as
# Genz's code holds them: the positive half of each symmetric rule


def _half_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)
    return x[n // 2:], w[n // 2:]


(_X6, _W6), (_X12, _W12), (_X20, _W20) = (_half_rule(n) for n in (6, 12, 20))
_PX, _PW = NODES


@njit(cache=True, nogil=True)
def _phid(z):  # pragma: no cover
    return 0.5 * math.erfc(-z / SQRT2)


@njit(cache=True, nogil=True)
def _upper(h, k, r, x6, w6, x12, w12, x20, w20):  # pragma: no cover
    """P(X > h, Y > k), correlation ``r``, finite ``h``, ``k``: Genz's form of Drezner and
    Wesolowsky's method."""
    ar = abs(r)
    if ar < 0.3:
        x, w = x6, w6
    elif ar < 0.75:
        x, w = x12, w12
    else:
        x, w = x20, w20
    hk = h * k
    bvn = 0.0
    if ar < 0.925:
        hs = 0.5 * (h * h + k * k)
        asr = math.asin(r)
        for i in range(x.size):
            for sgn in (-1.0, 1.0):
                sn = math.sin(0.5 * asr * (1.0 + sgn * x[i]))
                bvn += w[i] * math.exp((sn * hk - hs) / (1.0 - sn * sn))
        return bvn * asr / (4.0 * math.pi) + _phid(-h) * _phid(-k)
    if r < 0.0:
        k = -k
        hk = -hk
    if ar < 1.0:
        as_ = (1.0 - r) * (1.0 + r)
        a = math.sqrt(as_)
        bs = (h - k) * (h - k)
        c = (4.0 - hk) / 8.0
        d = (12.0 - hk) / 16.0
        asr = -0.5 * (bs / as_ + hk)
        if asr > -100.0:
            bvn = a * math.exp(asr) * (1.0 - c * (bs - as_) * (1.0 - d * bs / 5.0) / 3.0
                                       + c * d * as_ * as_ / 5.0)
        if hk > -100.0:
            b = math.sqrt(bs)
            sp = math.sqrt(2.0 * math.pi) * _phid(-b / a)
            bvn -= math.exp(-0.5 * hk) * sp * b * (1.0 - c * bs * (1.0 - d * bs / 5.0) / 3.0)
        a *= 0.5
        for i in range(x.size):
            for sgn in (-1.0, 1.0):
                xs = (a + a * sgn * x[i]) ** 2
                rs = math.sqrt(1.0 - xs)
                asr = -0.5 * (bs / xs + hk)
                if asr > -100.0:
                    sp = 1.0 + c * xs * (1.0 + d * xs)
                    ep = math.exp(-hk * (1.0 - rs) / (2.0 * (1.0 + rs))) / rs
                    bvn += a * w[i] * math.exp(asr) * (ep - sp)
        bvn = -bvn / (2.0 * math.pi)
    if r > 0.0:
        return bvn + _phid(-max(h, k))
    return -bvn + max(0.0, _phid(-h) - _phid(-k))


@njit(cache=True, nogil=True)
def _ell(x, k, r, s):  # pragma: no cover
    """log phi(x) + log Phi((k - r x) / s) without log(2 pi) / 2, with its first two
    derivatives."""
    t = (k - r * x) / s
    lt = log_ndtr(t)
    lam = math.exp(-0.5 * t * t - 0.5 * LOG_2PI - lt)      # phi(t) / Phi(t)
    q = r / s
    return -0.5 * x * x + lt, -x - q * lam, -1.0 - q * q * lam * (t + lam)


@njit(cache=True, nogil=True)
def _ell_value(x, k, r, s):  # pragma: no cover
    """:func:`_ell`'s value alone."""
    return -0.5 * x * x + log_ndtr((k - r * x) / s)


@njit(cache=True, nogil=True)
def _panels(top, m, sigma, stop, sgn, k, r, s, px, pw):  # pragma: no cover
    """sum of exp(ell - top) * dx over x = m + sgn sigma u, u from 0 in panels [0, 2],
    [2, 4], [4, 8], ... to ``stop`` (a u, or inf) or until the panel's last node (``px``
    ascending) is :data:`_DEPTH` below ``top`` (the integrand is log-concave: it only falls
    further)."""
    total = 0.0
    lo, hi = 0.0, 2.0
    for _ in range(64):
        hi = min(hi, stop)
        half = 0.5 * (hi - lo)
        mid = 0.5 * (hi + lo)
        v = 0.0
        for i in range(px.size):
            v = _ell_value(m + sgn * sigma * (mid + half * px[i]), k, r, s)
            total += pw[i] * half * math.exp(v - top)
        if hi >= stop or v < top - _DEPTH:
            break
        lo, hi = hi, 2.0 * hi
    return total * sigma


@njit(cache=True, nogil=True)
def _log_tail(h, k, r, px, pw):  # pragma: no cover
    """log P(X < h, Y < k) for ``h <= k`` (finite), ``|r| < 1``, as the integral of
    ``phi(x) Phi((k - r x) / s)`` over ``x < h`` on the log scale."""
    s = math.sqrt((1.0 - r) * (1.0 + r))
    v, d1, d2 = _ell(h, k, r, s)
    m = h
    if d1 < 0.0:
        # the mode inside: ell' falls from +inf to d1 < 0; bracket it, then safeguarded Newton
        hi, step = h, 1.0
        lo = h - step
        while _ell(lo, k, r, s)[1] < 0.0:
            hi = lo
            step *= 2.0
            lo = h - step
        m = 0.5 * (lo + hi)
        for _ in range(60):
            v, d1, d2 = _ell(m, k, r, s)
            if d1 > 0.0:
                lo = m
            else:
                hi = m
            nxt = m - d1 / d2
            if not lo < nxt < hi:
                nxt = 0.5 * (lo + hi)
            if abs(nxt - m) <= 1e-10 * (1.0 + abs(m)) or hi - lo <= 1e-12 * (1.0 + abs(m)):
                m = nxt
                break
            m = nxt
        v, d1, d2 = _ell(m, k, r, s)
    # the integrand's scale at its mode (curvature at least 1; at the edge h its slope too)
    # (the curvature is at least 1; near |rho| = 1 its formula may lose that to rounding)
    sigma = 1.0 / max(math.sqrt(max(-d2, 1.0)), max(d1, 0.0))
    total = _panels(v, m, sigma, np.inf, -1.0, k, r, s, px, pw)
    if m < h:
        total += _panels(v, m, sigma, (h - m) / sigma, 1.0, k, r, s, px, pw)
    return v - 0.5 * LOG_2PI + math.log(total)


@njit(cache=True, nogil=True)
def log_bvn(h, k, r):  # pragma: no cover
    """log P(X < h, Y < k) for a standard bivariate normal with correlation ``r``."""
    if h == -np.inf or k == -np.inf:
        return -np.inf
    if h == np.inf:
        return log_ndtr(k)
    if k == np.inf:
        return log_ndtr(h)
    if r == 0.0:
        return log_ndtr(h) + log_ndtr(k)
    if abs(r) >= 1.0:
        if r > 0.0:
            return log_ndtr(min(h, k))
        p = _phid(h) - _phid(-k)
        return math.log(p) if p > 0.0 else -np.inf
    if h > k:
        h, k = k, h
    # (the mass is at most Phi(min(h, k)): where that is in the tail, so is the mass)
    if log_ndtr(h) > LOG_TAIL:
        p = _upper(-h, -k, r, _X6, _W6, _X12, _W12, _X20, _W20)
        if p > TAIL:
            return math.log(min(p, 1.0))
    return _log_tail(h, k, r, _PX, _PW)


@njit(cache=True, nogil=True)
def log_bvn_grad(h, k, r, lp):  # pragma: no cover
    """d log P / dh, dk, dr at ``lp = log_bvn(h, k, r)`` (finite ``h``, ``k``, ``|r| < 1``;
    0 where ``lp`` is -inf)."""
    if lp == -np.inf:
        return 0.0, 0.0, 0.0
    s = math.sqrt((1.0 - r) * (1.0 + r))
    dh = math.exp(-0.5 * h * h - 0.5 * LOG_2PI + log_ndtr((k - r * h) / s) - lp)
    dk = math.exp(-0.5 * k * k - 0.5 * LOG_2PI + log_ndtr((h - r * k) / s) - lp)
    dr = math.exp(-0.5 * (h * h - 2.0 * r * h * k + k * k) / (s * s) - LOG_2PI
                  - math.log(s) - lp)
    return dh, dk, dr


@njit(cache=True, nogil=True)
def log_bvn_many(h, k, r, out):  # pragma: no cover
    """:func:`log_bvn` of each element (flat arrays)."""
    for i in range(out.size):
        out[i] = log_bvn(h[i], k[i], r[i])
