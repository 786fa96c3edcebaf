"""Compiled loops of the draws path (:mod:`neb_bayes.inference.draws`), each one pass instead
of a chain of full-size numpy operations and temporaries: the present symptoms' noisy-OR
probabilities over their cause axes, every propensity level and every draw; and a block's
log-likelihood with the gross-error mixture over the full grid.

The draw dimension is last and contiguous; each draw's numbers come from its own values in
a fixed order (the same operations, in the same order, as the numpy expression they replace),
so they do not depend on the other draws.  Compiled by numba on first use and cached on disk
(``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["mixture_loglik", "present_symptoms"]


@njit(cache=True, nogil=True)
def present_symptoms(leak, cause, starts, sizes, out):  # pragma: no cover
    """``out[g, p, d] = prod_y (1 - leak[y, p, d] * prod_a cause[y, starts[a] + g_a, d])``.

    ``leak`` ``(Y, P, D)`` and ``cause`` ``(Y, sum of sizes, D)`` are the exponentiated
    (``exp(log1m_...)``) tables of the symptoms, the cause axes' states stacked one axis after
    another (axis ``a`` from row ``starts[a]``, ``sizes[a]`` states); ``out`` ``(G, P, D)``
    with ``G`` the product of ``sizes`` (C order over the cause axes).
    """
    n_y, n_p, n_d = leak.shape
    n_a = sizes.size
    n_g = out.shape[0]
    idx = np.empty(n_a, dtype=np.int64)
    tmp = np.empty(n_d)
    for g in range(n_g):
        rest = g
        for a in range(n_a - 1, -1, -1):
            idx[a] = starts[a] + rest % sizes[a]
            rest //= sizes[a]
        for p in range(n_p):
            acc = out[g, p]
            for y in range(n_y):
                lk = leak[y, p]
                for d in range(n_d):
                    tmp[d] = lk[d]
                for a in range(n_a):
                    c = cause[y, idx[a]]
                    for d in range(n_d):
                        tmp[d] *= c[d]
                if y == 0:
                    for d in range(n_d):
                        acc[d] = 1.0 - tmp[d]
                else:
                    for d in range(n_d):
                        acc[d] *= 1.0 - tmp[d]


#: exp's argument range handled by :func:`exp_into` (beyond it: 0 below, overflow above)
EXP_MIN, EXP_MAX = -708.0, 709.0


@njit(cache=True, nogil=True)
def exp_into(x, out, work):  # pragma: no cover
    """``out = exp(x)`` for ``EXP_MIN <= x <= EXP_MAX`` (clamped outside), within 1 ulp.

    Cody-Waite reduction (``x = k ln 2 + r``, ``|r| <= ln 2 / 2``), a degree-13 Taylor
    polynomial for ``exp(r)`` (truncation below 5e-18) and ``2^k`` built in the exponent bits
    of ``work``: only multiplications, additions and integer shifts, so the loops vectorise
    (a libm call per element does not).
    """
    bits = work.view(np.int64)
    for i in range(x.size):
        v = min(max(x[i], EXP_MIN), EXP_MAX)
        t = v * 1.4426950408889634 + 6755399441055744.0   # 1.5 * 2^52: k in the low bits
        work[i] = t
        k = t - 6755399441055744.0
        r = (v - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        out[i] = p * r + 1.0
    for i in range(x.size):
        # the low 11 bits of t's bits are k (mod 2^11): k + 1023 is 2^k's biased exponent
        bits[i] = (bits[i] + 1023) << 52
    for i in range(x.size):
        out[i] *= work[i]


@njit(cache=True, nogil=True)
def mixture_loglik(c0, pr, q, et, base, eps, out):  # pragma: no cover
    """A block's log-likelihood with at most one gross error, for every stack entry ``n``
    (draw x own states) and point ``g`` of the other axes: ``out (N, E)``.

    ``log p = c0 + (C^-1 r)'e - e'C^-1 e / 2`` and, with ``u = C^-1 (r - e)`` and ``c_j =
    (C^-1)_jj``, ``log p + log((1 - m eps) + eps sum_j exp(base_j + u_j^2 / (2 c_j) -
    log(c_j) / 2))`` (``base_j = log q(y_j) + log(2 pi) / 2``).  ``c0 (N,)``, ``pr`` ``(m, N)``
    = C^-1 r, ``q`` ``(m, m, N)`` = C^-1, ``et`` ``(m, E)`` the other axes' mean part.  Loops
    over the other points are innermost (contiguous), exponentials by :func:`exp_into`.
    Returns False where a term could overflow (the caller then takes the shifted form).
    """
    m, n_st = pr.shape
    n_e = et.shape[1]
    w = np.empty((m, n_e))
    ll = np.empty(n_e)
    acc = np.empty(n_e)
    arg = np.empty(n_e)
    ex = np.empty(n_e)
    work = np.empty(n_e)
    keep = 1.0 - m * eps
    top = -np.inf
    for n in range(n_st):
        for g in range(n_e):
            ll[g] = c0[n]
            acc[g] = 0.0
        for i in range(m):
            wi = w[i]                                   # (C^-1 e)_i
            for g in range(n_e):
                wi[g] = 0.0
            for k in range(m):
                qik = q[i, k, n]
                ek = et[k]
                for g in range(n_e):
                    wi[g] += qik * ek[g]
            pi = pr[i, n]
            ei = et[i]
            for g in range(n_e):
                ll[g] += (pi - 0.5 * wi[g]) * ei[g]
        for j in range(m):
            inv2c = 0.5 / q[j, j, n]
            off = base[j] - 0.5 * math.log(q[j, j, n])
            pj = pr[j, n]
            wj = w[j]
            for g in range(n_e):
                u = pj - wj[g]
                arg[g] = u * u * inv2c + off
                top = max(top, arg[g])
            exp_into(arg, ex, work)
            for g in range(n_e):
                acc[g] += ex[g]
        o = out[n]
        for g in range(n_e):
            o[g] = ll[g] + math.log(keep + eps * acc[g])
    # a term near exp's range, or any not finite: no answer
    return top < 700.0
