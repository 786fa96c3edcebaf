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

__all__ = ["censored_block", "censored_finish", "exp_into", "log_into", "mixture_block",
           "mixture_loglik", "mixture_point", "own_mean_into",
           "present_symptoms", "woodbury_stack"]


@njit(cache=True, nogil=True)
def present_symptoms(leak, cause, starts, sizes, out, limit):  # pragma: no cover
    """``out[g, p, d] = prod_y (1 - leak[y, p, d] * prod_a cause[y, starts[a] + g_a, d])``;
    returns how many values are below ``limit``.

    ``leak`` ``(Y, P, D)`` and ``cause`` ``(Y, sum of sizes, D)`` are the exponentiated
    (``exp(log1m_...)``) tables of the symptoms, the cause axes' states stacked one axis after
    another (axis ``a`` from row ``starts[a]``, ``sizes[a]`` states); ``out`` ``(G, P, D)``
    with ``G`` the product of ``sizes`` (C order over the cause axes), of any float type: the
    products are formed in float64 and rounded once when stored.  The cause product is
    formed axis by axis, ``((c_0 c_1) c_2) ...``, and kept per prefix of axes: stepping to the
    next grid point recomputes it only from the first axis whose state changed (mostly the
    last), and it serves every level ``p``.
    """
    n_y, n_p, n_d = leak.shape
    n_a = sizes.size
    n_g = out.shape[0]
    idx = np.zeros(n_a, dtype=np.int64)
    # prefix[y, a] = prod of symptom y's cause terms over axes 0..a at the current point
    prefix = np.ones((n_y, max(n_a, 1), n_d))
    last = max(n_a, 1) - 1          # the full product's row (row 0, all ones, without causes)
    acc = np.empty(n_d)
    under = 0
    for g in range(n_g):
        # the first axis whose state differs from the previous point's (all of them at g = 0)
        first = 0
        if g > 0:
            first = n_a - 1
            while idx[first] == sizes[first] - 1:
                idx[first] = 0
                first -= 1
            idx[first] += 1
        for y in range(n_y):
            for a in range(first, n_a):
                c = cause[y, starts[a] + idx[a]]
                dst = prefix[y, a]
                if a == 0:
                    for d in range(n_d):
                        dst[d] = c[d]
                else:
                    src = prefix[y, a - 1]
                    for d in range(n_d):
                        dst[d] = src[d] * c[d]
        for p in range(n_p):
            for d in range(n_d):
                acc[d] = 1.0
            for y in range(n_y - 1):
                lk = leak[y, p]
                q = prefix[y, last]
                for d in range(n_d):
                    acc[d] *= 1.0 - lk[d] * q[d]
            # the last symptom's factor written straight into the output
            lk = leak[n_y - 1, p]
            q = prefix[n_y - 1, last]
            dst = out[g, p]
            for d in range(n_d):
                v = acc[d] * (1.0 - lk[d] * q[d])
                dst[d] = v
                under += v < limit
    return under


#: exp's argument range handled by :func:`exp_into` (beyond it: 0 below, overflow above)
EXP_MIN, EXP_MAX = -708.0, 709.0


#: fused multiply-add allowed (and nothing else of fast-math: the reductions below rely on
#: exact rounding of ``t - 1.5 * 2^52``): every element rounds the same way wherever it sits,
#: and the polynomials' loops vectorise (2.5x faster than without contraction)
FMA = {"contract"}


@njit(cache=True, nogil=True, fastmath=FMA)
def own_mean_into(loadings, lat_mean, base, shift, out):  # pragma: no cover
    """A block's own-axis mean under every draw, results first: ``out[i, d, s] = sum_k
    L[i, k] mu[d, s, k] + base[d, i] + shift[s, i]`` (``loadings`` ``(n, K)``, ``lat_mean``
    ``(D, S, K)``, ``base`` ``(D, n)`` the channels' log medians, ``shift`` ``(S, n)`` the
    own axis' state effects; ``out`` ``(n, D, S)``): one pass instead of a matrix product
    and two broadcast additions (:func:`neb_bayes.inference.exact.block_moments`)."""
    n, k = loadings.shape
    n_d, n_s = lat_mean.shape[0], lat_mean.shape[1]
    for i in range(n):
        oi = out[i]
        for d in range(n_d):
            b = base[d, i]
            od, md = oi[d], lat_mean[d]
            for s in range(n_s):
                acc = b + shift[s, i]
                for kk in range(k):
                    acc += loadings[i, kk] * md[s, kk]
                od[s] = acc


@njit(cache=True, nogil=True, fastmath=FMA)
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


#: sqrt(2): the mantissa is reduced to [sqrt(2)/2, sqrt(2)) for :func:`log_into`
SQRT2 = 1.4142135623730951


@njit(cache=True, nogil=True, fastmath=FMA)
def log_into(x, out, work, expo):  # pragma: no cover
    """``out = log(x)`` for positive normal ``x``, within one ulp (tested).

    ``x = 2^k m`` read from the bits (``m`` in ``[sqrt(2)/2, sqrt(2))``), then ``log(m) =
    2 atanh(s)``, ``s = (m - 1) / (m + 1)`` (``|s| <= 0.172``), by its series to ``s^23``
    (truncation below 1e-18), and ``k ln 2`` in two parts as in :func:`exp_into`: only
    arithmetic and integer operations, so the loops vectorise (``math.log`` per element does
    not).  ``work`` and ``expo`` are scratch arrays of ``x``'s size (float64).
    """
    bits = work.view(np.int64)
    for i in range(x.size):
        work[i] = x[i]
    for i in range(x.size):
        b = bits[i]
        expo[i] = float((b >> 52) - 1023)
        bits[i] = (b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000      # the mantissa in [1, 2)
    for i in range(x.size):
        m = work[i]
        k = expo[i]
        if m >= SQRT2:
            m = 0.5 * m
            k += 1.0
        f = m - 1.0
        s = f / (2.0 + f)
        r = s * s
        p = 1.0 / 23.0
        p = p * r + 1.0 / 21.0
        p = p * r + 1.0 / 19.0
        p = p * r + 1.0 / 17.0
        p = p * r + 1.0 / 15.0
        p = p * r + 1.0 / 13.0
        p = p * r + 1.0 / 11.0
        p = p * r + 1.0 / 9.0
        p = p * r + 1.0 / 7.0
        p = p * r + 1.0 / 5.0
        p = p * r + 1.0 / 3.0
        # log(m) = 2 s (1 + r p) = f - s (f - 2 r p): f exact, the correction small
        log_m = f - s * (f - 2.0 * r * p)
        out[i] = k * 6.93147180369123816490e-01 + (k * 1.90821492927058770002e-10 + log_m)


#: a term above this (exp(700)) could be near exp's range: :func:`mixture_loglik` gives no answer
MIXTURE_TERM_MAX = 1.0142320547350045e+304


#: stack entries :func:`mixture_loglik` takes at a time (their C^-1 stays in cache
#: while every point of the other axes is visited)
STACK_BLOCK = 256


@njit(cache=True, nogil=True, fastmath=FMA)
def mixture_loglik(c0, pr, q, et, base, eps, out):  # pragma: no cover
    """A block's log-likelihood with at most one gross error, for every stack entry ``n``
    (draw x own states) and point ``g`` of the other axes: ``out (N, E)``.

    ``log p = c0 + (C^-1 r)'e - e'C^-1 e / 2`` and, with ``u = C^-1 (r - e)`` and ``c_j =
    (C^-1)_jj``, ``log p + log((1 - m eps) + eps sum_j exp(base_j + u_j^2 / (2 c_j) -
    log(c_j) / 2))`` (``base_j = log q(y_j) + log(2 pi) / 2``).  ``c0 (N,)``, ``pr`` ``(m, N)``
    = C^-1 r, ``q`` ``(m, m, N)`` = C^-1, ``et`` ``(m, E)`` the other axes' mean part.  The
    loops over the stack entries are innermost (contiguous in ``c0``, ``pr`` and ``q``), in
    blocks of :data:`STACK_BLOCK` entries, so they vectorise however few points the other
    axes have (a block that depends on its own axis only has one; 5-10x faster there than
    loops over the points, 2x with 12); exponentials and logarithms by :func:`exp_into` and
    :func:`log_into`.  Rows of ``et`` that are 0 at every point (results the other axes do
    not move: most) are skipped in ``C^-1 e`` and ``(C^-1 r)'e`` (their terms are exactly 0).
    Each (entry, point) is computed by the same operations in the same
    order wherever it sits.  Returns False where a term could overflow (a sum of terms above
    :data:`MIXTURE_TERM_MAX`, or not finite: the caller then takes the shifted form).
    """
    m, n_st = pr.shape
    n_e = et.shape[1]
    nb = min(STACK_BLOCK, n_st)
    w = np.empty((m, nb))
    ll = np.empty(nb)
    acc = np.empty(nb)
    arg = np.empty(nb)
    ex = np.empty(nb)
    work = np.empty(nb)
    work2 = np.empty(nb)
    inv2c = np.empty((m, nb))
    off = np.empty((m, nb))
    keep = 1.0 - m * eps
    over = 0
    # the results the other axes move (most move with none of them: terms in e that are
    # exactly 0 add nothing, so they are skipped)
    moved = np.empty(m, dtype=np.int64)
    n_moved = 0
    for c in range(m):
        for g in range(n_e):
            if et[c, g] != 0.0:
                moved[n_moved] = c
                n_moved += 1
                break
    for n0 in range(0, n_st, nb):
        n1 = min(n0 + nb, n_st)
        k = n1 - n0
        for j in range(m):
            for n in range(k):
                qjj = q[j, j, n0 + n]
                inv2c[j, n] = 0.5 / qjj
                off[j, n] = base[j] - 0.5 * math.log(qjj)
        for g in range(n_e):
            for n in range(k):
                ll[n] = c0[n0 + n]
                acc[n] = 0.0
            for i in range(m):
                wi = w[i]                                   # (C^-1 e)_i
                for n in range(k):
                    wi[n] = 0.0
                for cc in range(n_moved):
                    c = moved[cc]
                    qic = q[i, c, n0:n1]
                    ec = et[c, g]
                    for n in range(k):
                        wi[n] += qic[n] * ec
            for ii in range(n_moved):
                i = moved[ii]
                pi = pr[i, n0:n1]
                wi = w[i]
                ei = et[i, g]
                for n in range(k):
                    ll[n] += (pi[n] - 0.5 * wi[n]) * ei
            for j in range(m):
                pj = pr[j, n0:n1]
                wj = w[j]
                ij = inv2c[j]
                oj = off[j]
                for n in range(k):
                    u = pj[n] - wj[n]
                    arg[n] = u * u * ij[n] + oj[n]
                exp_into(arg[:k], ex[:k], work[:k])
                for n in range(k):
                    acc[n] += ex[n]
            for n in range(k):
                over += not (acc[n] <= MIXTURE_TERM_MAX)
                arg[n] = keep + eps * acc[n]
            log_into(arg[:k], ex[:k], work[:k], work2[:k])
            for n in range(k):
                out[n0 + n, g] = ll[n] + ex[n]
    return over == 0


#: log(2 pi), as in :mod:`neb_bayes.inference.exact`
LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, nogil=True)
def mixture_block(r, prec, half_logdet_s, n_inv, logdet_n, a, bt, et, base, eps, pos,
                  out):  # pragma: no cover
    """A block's log-likelihood with at most one gross error over the full grid, from its
    residuals and covariance parts (every result observed, ``C = N + L S L'``): the Woodbury
    parts (:func:`_woodbury_part`), the dense ``C^-1`` and :func:`mixture_loglik` in turn, in
    one call and per block of :data:`STACK_BLOCK` stack entries (no full-size intermediate
    arrays; each entry's numbers from the same operations in the same order wherever it
    sits).

    ``r`` ``(m, N)`` the residuals ``y - mean`` per stack entry (draw x own states x ...);
    the latent part by its precision ``prec`` ``(K, K, N)`` = S^-1 and ``half_logdet_s``
    ``(N,)`` = log|S|^(1/2) (they do not depend on the case: kept with the draws,
    :class:`neb_bayes.inference.draws.DrawTables`); the noise part of stack entry ``n`` is
    entry ``n % X`` of ``n_inv`` ``(m, m, X)`` = N^-1, ``logdet_n`` ``(X,)`` = log|N|^(1/2),
    ``a`` ``(K, K, X)`` = L'N^-1 L and ``bt`` ``(K, m, X)`` = (N^-1 L)'.  The entries are taken
    one noise part at a time, whose parts are then constants in every loop.  ``et``,
    ``base``, ``eps`` and the return value as in :func:`mixture_loglik`.  The stack is ``L``
    leading entries (the draws) of ``S`` entries each (``n = l S + s``); the result of entry
    ``n`` at point ``g`` of the other axes goes to ``out[pos[s, g] * L + l]`` (``out`` flat,
    ``pos`` ``(S, E)``): with ``pos`` the grid point in C order, the draws come last in
    memory, the layout the contraction reads (:func:`neb_bayes.tensor.contract_marginals`).
    Where the other axes have one point (``et`` one column: a block that depends on its own
    axis only, most of them) the residuals are taken about it and :func:`mixture_point`
    finishes from the Woodbury parts, with no dense C^-1.
    """
    m, n_st = r.shape
    k = prec.shape[0]
    n_x = logdet_n.size
    n_e = et.shape[1]
    n_s = pos.shape[0]
    n_l = n_st // n_s
    ok = True
    nz = _nonzero(n_inv)
    q_base = np.exp(base)                                   # q(y_j) sqrt(2 pi)
    e_one = np.zeros(m)
    if n_e == 1:
        for j in range(m):
            e_one[j] = et[j, 0]
    res = np.empty((min(STACK_BLOCK, n_st), n_e))
    for x in range(n_x):
        ni, ax, bx = n_inv[:, :, x].copy(), a[:, :, x].copy(), bt[:, :, x].copy()
        ldn = logdet_n[x]
        for first in range(x, n_st, STACK_BLOCK * n_x):
            nb = min(STACK_BLOCK, (n_st - first + n_x - 1) // n_x)
            # one point of the other axes: the residuals taken about it, d = r - e
            d, vt, ld, qs, ps = _woodbury_part(r, prec, half_logdet_s, ax, bx, e_one, first,
                                               n_x, nb)
            if n_e == 1:
                ok = mixture_point(d, ni, nz, ldn, vt, ld, qs, ps, q_base, eps,
                                   res[:nb, 0]) and ok
            else:
                # C^-1 r = N^-1 r - V V'r, r'C^-1 r = r'N^-1 r - |V'r|^2, C^-1 = N^-1 - V V'
                pr, c0, q = np.empty((m, nb)), np.empty(nb), np.empty((m, m, nb))
                quad, cd = np.zeros(nb), np.empty(nb)
                for i in range(m):
                    _observed_row(i, d, ni, nz, vt, ps, quad, pr[i], cd)
                    for c in range(m):
                        nic, qic = ni[i, c], q[i, c]
                        for n in range(nb):
                            qic[n] = nic
                        for kk in range(k):
                            vki, vkc = vt[kk, i], vt[kk, c]
                            for n in range(nb):
                                qic[n] -= vki[n] * vkc[n]
                for n in range(nb):
                    c0[n] = -0.5 * (quad[n] - qs[n]) - (ldn + ld[n]) - 0.5 * m * LOG_2PI
                ok = mixture_loglik(c0, pr, q, et, base, eps, res[:nb]) and ok
            _scatter(res, first, n_x, nb, n_s, n_l, pos, out)
    return ok


@njit(cache=True, nogil=True)
def _woodbury_part(r, prec, half_logdet_s, a, bt, e, first, step, nb):  # pragma: no cover
    """The Woodbury parts of stack entries ``first + n step`` (``n < nb``) of one noise part
    (``a`` ``(K, K)`` = L'N^-1 L, ``bt`` ``(K, m)`` = B' = (N^-1 L)'; ``r``, ``prec`` and
    ``half_logdet_s`` as in :func:`mixture_block`), in the precision form: with ``W W' = P +
    A`` (``P = S^-1``) and ``V' = W^-1 B'``, ``C^-1 = N^-1 - V V'`` and ``log|C|^(1/2) =
    log|N|^(1/2) + log|S|^(1/2) + sum_i log W_ii``.  Returns the residuals about ``e``
    ``(m,)``, ``d = r - e`` ``(m, nb)``, ``V'`` ``(K, m, nb)``, ``log|S|^(1/2) + sum_i log
    W_ii``, ``|V'd|^2`` and ``V V'd``; each step a contiguous loop over the entries."""
    k, m = bt.shape
    d = np.empty((m, nb))
    for j in range(m):
        src, dst, ej = r[j], d[j], e[j]
        for n in range(nb):
            dst[n] = src[first + n * step] - ej
    # W W' = P + A (lower triangle), with the reciprocals of its diagonal
    w = np.empty((k, k, nb))
    rw = np.empty((k, nb))
    acc = np.empty(nb)
    for j in range(k):
        for i in range(j, k):
            pij, aij = prec[i, j], a[i, j]
            for n in range(nb):
                acc[n] = pij[first + n * step] + aij
            for c in range(j):
                li, lj = w[i, c], w[j, c]
                for n in range(nb):
                    acc[n] -= li[n] * lj[n]
            wij = w[i, j]
            if i == j:
                rj = rw[j]
                for n in range(nb):
                    s = math.sqrt(acc[n])
                    wij[n] = s
                    rj[n] = 1.0 / s
            else:
                rj = rw[j]
                for n in range(nb):
                    wij[n] = acc[n] * rj[n]
    # log|S|^(1/2) + sum_i log W_ii (as the log of the product: one logarithm)
    ld = np.empty(nb)
    for n in range(nb):
        acc[n] = 1.0
    for i in range(k):
        wi = w[i, i]
        for n in range(nb):
            acc[n] *= wi[n]
    for n in range(nb):
        ld[n] = half_logdet_s[first + n * step] + math.log(acc[n])
    # V' = W^-1 B' by forward substitution
    vt = np.empty((k, m, nb))
    for i in range(k):
        ri = rw[i]
        for j in range(m):
            bij = bt[i, j]
            for n in range(nb):
                acc[n] = bij
            for c in range(i):
                wic, vcj = w[i, c], vt[c, j]
                for n in range(nb):
                    acc[n] -= wic[n] * vcj[n]
            dst = vt[i, j]
            for n in range(nb):
                dst[n] = acc[n] * ri[n]
    t, qs, ps = np.empty((k, nb)), np.empty(nb), np.empty((m, nb))
    _project(vt, d, t, qs, ps)
    return d, vt, ld, qs, ps


@njit(cache=True, nogil=True)
def _project(vt, d, t, quad_sub, pr_sub):  # pragma: no cover
    """``t = V'd`` ``(K, N)``, ``|t|^2`` and ``V t`` ``(m, N)`` (written to ``t``,
    ``quad_sub`` and ``pr_sub``) for every entry, from ``V'`` ``(K, m, N)`` and ``d``
    ``(m, N)``: what the Woodbury form subtracts from ``d'N^-1 d`` and ``N^-1 d``."""
    k, m, n_st = vt.shape
    for n in range(n_st):
        quad_sub[n] = 0.0
    for i in range(k):
        ti = t[i]
        for n in range(n_st):
            ti[n] = 0.0
        for j in range(m):
            vij, dj = vt[i, j], d[j]
            for n in range(n_st):
                ti[n] += vij[n] * dj[n]
        for n in range(n_st):
            quad_sub[n] += ti[n] * ti[n]
    for j in range(m):
        dst = pr_sub[j]
        for n in range(n_st):
            dst[n] = 0.0
        for i in range(k):
            vij, ti = vt[i, j], t[i]
            for n in range(n_st):
                dst[n] += vij[n] * ti[n]


@njit(cache=True, nogil=True, fastmath=FMA)
def _observed_row(i, d, n_inv, nz, vt, ps, quad, u, c):  # pragma: no cover
    """Row ``i`` of ``u = C^-1 d = N^-1 d - V V'd`` and ``c_i = (C^-1)_ii = (N^-1)_ii -
    sum_k V_ik^2`` for every entry (written to ``u`` and ``c``; ``n_inv`` ``(m, m)`` one
    noise part's N^-1), and ``d_i (N^-1 d)_i`` added to ``quad`` (:func:`mixture_point`'s
    observed part; N^-1's zero entries, ``nz``, skipped)."""
    m, nb = d.shape
    k = vt.shape[0]
    for n in range(nb):
        u[n] = 0.0
    for j in range(m):
        if not nz[i, j]:
            continue
        nij, dj = n_inv[i, j], d[j]
        for n in range(nb):
            u[n] += nij * dj[n]
    nii, di, psi = n_inv[i, i], d[i], ps[i]
    for n in range(nb):
        quad[n] += di[n] * u[n]
        u[n] -= psi[n]
        c[n] = nii
    for kk in range(k):
        vki = vt[kk, i]
        for n in range(nb):
            c[n] -= vki[n] * vki[n]


@njit(cache=True, nogil=True)
def _nonzero(n_inv):  # pragma: no cover
    """``(m, m)``: which entries of N^-1 ``(m, m, X)`` are not zero for some noise part
    (results of different channels on independent noise have zeros: the loops skip them,
    which changes nothing)."""
    m, _, n_x = n_inv.shape
    nz = np.zeros((m, m), dtype=np.bool_)
    for i in range(m):
        for j in range(m):
            for x in range(n_x):
                if n_inv[i, j, x] != 0.0:
                    nz[i, j] = True
                    break
    return nz


@njit(cache=True, nogil=True)
def _scatter(res, first, step, nb, n_s, n_l, pos, out):  # pragma: no cover
    """The results ``res`` of stack entries ``first + n step`` (``n < nb``) to their places
    in ``out`` (:func:`mixture_block`)."""
    n_e = res.shape[1]
    for n in range(nb):
        lead, s = divmod(first + n * step, n_s)
        for g in range(n_e):
            out[pos[s, g] * n_l + lead] = res[n, g]


@njit(cache=True, nogil=True, fastmath=FMA)
def mixture_point(d, n_inv, nz, logdet_n, vt, ld, qs, ps, q_base, eps, out):  # pragma: no cover
    """:func:`mixture_block` where the other axes have one point ``e``, for entries of one
    noise part (``n_inv`` ``(m, m)`` its N^-1, ``logdet_n`` its log|N|^(1/2)): from the
    residuals about it, ``d = r - e`` ``(m, nb)``, and their Woodbury parts
    (:func:`_woodbury_part`: ``vt`` = V', ``ld`` = log|C|^(1/2) - log|N|^(1/2), ``qs`` =
    |V'd|^2, ``ps`` = V V'd), ``u = C^-1 d = N^-1 d - V V'd``, ``d'C^-1 d = d'N^-1 d -
    |V'd|^2`` and ``c_j = (C^-1)_jj = (N^-1)_jj - sum_k V_jk^2``: no dense ``C^-1`` (``m^2
    K`` per entry) and no product with ``e``.  ``nz`` ``(m, m)`` says which entries of N^-1
    are not zero for some noise part (results of different channels on independent noise:
    most; a zero entry adds nothing to ``u``).

    Each result's term ``q(y_j) / p(y_j | y_-j)`` is ``q_base_j exp(u_j^2 / (2 c_j)) /
    sqrt(c_j)`` (``q_base_j = q(y_j) sqrt(2 pi)``): one exponential and a square root per
    term, no logarithm.  ``eps`` as in :func:`mixture_loglik`; returns False (no answer) where
    a term could overflow: an exponent above 700 or a sum of terms above
    :data:`MIXTURE_TERM_MAX`.  Writes ``out (nb,)``.
    """
    m, nb = d.shape
    keep = 1.0 - m * eps
    quad = np.empty(nb)
    acc = np.zeros(nb)
    u = np.empty(nb)
    c = np.empty(nb)
    arg = np.empty(nb)
    ex = np.empty(nb)
    work = np.empty(nb)
    work2 = np.empty(nb)
    over = 0
    for n in range(nb):
        quad[n] = -qs[n]
    for i in range(m):
        _observed_row(i, d, n_inv, nz, vt, ps, quad, u, c)
        for n in range(nb):
            t = u[n] * u[n] * (0.5 / c[n])
            over += not (t <= 700.0)
            arg[n] = t
        exp_into(arg, ex, work)
        bi = q_base[i]
        for n in range(nb):
            acc[n] += ex[n] * (bi / math.sqrt(c[n]))
    for n in range(nb):
        over += not (acc[n] <= MIXTURE_TERM_MAX)
        arg[n] = keep + eps * acc[n]
    log_into(arg, ex, work, work2)
    for n in range(nb):
        out[n] = (-0.5 * quad[n] - (logdet_n + ld[n]) - 0.5 * m * LOG_2PI) + ex[n]
    return over == 0


@njit(cache=True, nogil=True)
def woodbury_stack(lat_cov, a, bt, r, vt, t, logdet_add, quad_sub, pr_sub):  # pragma: no cover
    """The rank-K part of ``C = N + L S L'`` for every stack entry ``n`` (draw x own
    states), stacked last: with ``R = chol(S)``, ``W = chol(I + R' A R)`` (``A = L'N^-1 L``)
    and ``V' = W^-1 R' B'`` (``B = N^-1 L``), ``C^-1 = N^-1 - V V'`` and ``log|C|^(1/2) =
    log|N|^(1/2) + sum_i log W_ii``.

    ``lat_cov``, ``a`` ``(K, K, N)``, ``bt`` ``(K, m, N)`` = B', ``r`` ``(m, N)`` the residuals;
    writes ``vt`` ``(K, m, N)`` = V', ``t`` ``(K, N)`` = V'r, ``logdet_add`` ``(N,)`` = sum_i
    log W_ii, ``quad_sub`` ``(N,)`` = |V'r|^2 and ``pr_sub`` ``(m, N)`` = V V'r (subtracted
    from r'N^-1 r and N^-1 r).  Every step is a contiguous loop over the stack (the same
    operations, in the same order, as the stacked numpy code it replaces,
    :func:`neb_bayes.inference.exact._woodbury_stack`; a test holds them equal), without its
    temporaries.
    """
    k, m, n_st = bt.shape
    low = np.zeros((k, k, n_st))
    w = np.zeros((k, k, n_st))
    rb = np.empty((k, m, n_st))
    acc = np.empty(n_st)

    def chol(src, dst, add_identity):
        for j in range(k):
            dj = dst[j, j]
            for n in range(n_st):
                acc[n] = src[j, j, n] + (1.0 if add_identity else 0.0)
            for c in range(j):
                lc = dst[j, c]
                for n in range(n_st):
                    acc[n] -= lc[n] * lc[n]
            for n in range(n_st):
                dj[n] = math.sqrt(acc[n])
            for i in range(j + 1, k):
                for n in range(n_st):
                    acc[n] = src[i, j, n]
                for c in range(j):
                    li, lj = dst[i, c], dst[j, c]
                    for n in range(n_st):
                        acc[n] -= li[n] * lj[n]
                di = dst[i, j]
                for n in range(n_st):
                    di[n] = acc[n] / dj[n]

    def rt_times(x, dst):
        """dst = R' x for x (K, J, N) (R lower triangular)."""
        for i in range(k):
            for j in range(x.shape[1]):
                out = dst[i, j]
                for n in range(n_st):
                    out[n] = 0.0
                for c in range(i, k):
                    lci, xcj = low[c, i], x[c, j]
                    for n in range(n_st):
                        out[n] += lci[n] * xcj[n]

    chol(lat_cov, low, False)                                   # R
    # M = R'AR (the identity added in its Cholesky factorisation), lower triangle
    ra = np.empty((k, k, n_st))
    rt_times(a, ra)
    mm = np.zeros((k, k, n_st))
    for i in range(k):
        for j in range(i + 1):
            dst = mm[i, j]
            for c in range(j, k):
                ric, lcj = ra[i, c], low[c, j]
                for n in range(n_st):
                    dst[n] += ric[n] * lcj[n]
    chol(mm, w, True)                                           # W W' = I + R'AR
    # sum_i log W_ii as the log of the product (W_ii >= 1: no underflow; one logarithm)
    for n in range(n_st):
        logdet_add[n] = 1.0
    for i in range(k):
        wi = w[i, i]
        for n in range(n_st):
            logdet_add[n] *= wi[n]
    for n in range(n_st):
        logdet_add[n] = math.log(logdet_add[n])
    # R'B', then V' = W^-1 R'B' by forward substitution
    rt_times(bt, rb)
    for i in range(k):
        for j in range(m):
            for n in range(n_st):
                acc[n] = rb[i, j, n]
            for c in range(i):
                wic, vcj = w[i, c], vt[c, j]
                for n in range(n_st):
                    acc[n] -= wic[n] * vcj[n]
            wii, dst = w[i, i], vt[i, j]
            for n in range(n_st):
                dst[n] = acc[n] / wii[n]
    _project(vt, r, t, quad_sub, pr_sub)


@njit(cache=True, nogil=True)
def censored_block(r, lat_cov, prec, half_logdet_s, n_inv, logdet_n, a, bt, e_o, mu_c, e_c,
                   n_co, n_cc, l_o, l_c, lim, sign, base, cond, z):  # pragma: no cover
    """A block with one censored result where the other axes have one point: per stack
    entry ``n`` (draws x own states) the observed results' log density ``base`` ``(N,)``,
    their leave-one-out terms ``cond`` ``(m, N)`` (``log p(y_j | y_-j)``), and the
    standardised limits ``z`` ``(m + 1, N)`` whose ``log_ndtr`` the caller takes: row 0 the
    censored result given every observed one, row ``1 + j`` given all but observed result
    ``j`` (its conditional moved by a rank-one change).

    ``r`` ``(m, N)`` the observed residuals ``y - mean``, ``lat_cov`` ``(K, K, N)`` = S,
    ``prec``, ``half_logdet_s``, ``n_inv``, ``logdet_n``, ``a`` and ``bt`` as in
    :func:`mixture_block` (the observed results' parts, noise entry ``n % X``, taken one noise
    part at a time); ``e_o`` ``(m,)`` the other axes' mean part of the observed results;
    ``mu_c`` ``(N,)`` and ``e_c`` the censored result's mean parts; ``n_co`` ``(m, X)`` and
    ``n_cc`` ``(X,)`` its noise covariance with the observed results and its noise variance;
    ``l_o`` ``(m, K)`` and ``l_c`` ``(K,)`` the loadings; ``lim`` its limit and ``sign`` -1
    below, +1 above.  With ``d = r - e_o``, ``A = C_OO^-1`` (Woodbury, :func:`_woodbury_part`),
    ``u = A d``, ``c_j = A_jj``, ``k = C_cO`` and ``g = A k``: the censored result's mean
    ``mu_c + e_c + k'u`` and variance ``C_cc - k'g``; without result ``j`` they move by
    ``-g_j u_j / c_j`` and ``+g_j^2 / c_j`` (what :func:`neb_bayes.inference.exact._censored_loo`
    computes over the grid).
    """
    m, n_st = r.shape
    k = lat_cov.shape[0]
    n_x = logdet_n.size
    nz = _nonzero(n_inv)
    for x in range(n_x):
        ni, ax, bx = n_inv[:, :, x].copy(), a[:, :, x].copy(), bt[:, :, x].copy()
        ldn, ncc = logdet_n[x], n_cc[x]
        for first in range(x, n_st, STACK_BLOCK * n_x):
            nb = min(STACK_BLOCK, (n_st - first + n_x - 1) // n_x)
            u, c, kk_, g = (np.empty((m, nb)), np.empty((m, nb)), np.empty((m, nb)),
                            np.empty((m, nb)))
            w, vk, kq, vvk = np.empty((k, nb)), np.empty((k, nb)), np.empty(nb), np.empty((m, nb))
            quad, mu, var = np.empty(nb), np.empty(nb), np.empty(nb)
            lcb, work, work2 = np.empty(nb), np.empty(nb), np.empty(nb)
            rb, vt, ld, qs, ps = _woodbury_part(r, prec, half_logdet_s, ax, bx, e_o, first,
                                                n_x, nb)
            # the observed part: u = A d, c_j = A_jj, d'A d, log N(y_O)
            for n in range(nb):
                quad[n] = -qs[n]
            for i in range(m):
                ui, ci = u[i], c[i]
                _observed_row(i, rb, ni, nz, vt, ps, quad, ui, ci)
                log_into(ci, lcb, work, work2)
                cond_i = cond[i]
                for n in range(nb):
                    cond_i[first + n * n_x] = (0.5 * (lcb[n] - LOG_2PI)
                                               - 0.5 * ui[n] * ui[n] / ci[n])
            for n in range(nb):
                base[first + n * n_x] = -0.5 * quad[n] - (ldn + ld[n]) - 0.5 * m * LOG_2PI
            # the censored result's covariance with the observed ones: k = N_cO + L_O S L_c
            for p in range(k):
                wp = w[p]
                for n in range(nb):
                    wp[n] = 0.0
                for q in range(k):
                    lq, spq = l_c[q], lat_cov[p, q]
                    for n in range(nb):
                        wp[n] += spq[first + n * n_x] * lq
            for n in range(nb):
                var[n] = ncc
            for p in range(k):
                lp, wp = l_c[p], w[p]
                for n in range(nb):
                    var[n] += lp * wp[n]
            for j in range(m):
                kj, nco = kk_[j], n_co[j, x]
                for n in range(nb):
                    kj[n] = nco
                for p in range(k):
                    ljp, wp = l_o[j, p], w[p]
                    for n in range(nb):
                        kj[n] += ljp * wp[n]
            # g = A k = N^-1 k - V (V'k)
            _project(vt, kk_, vk, kq, vvk)
            for i in range(m):
                gi, vi = g[i], vvk[i]
                for n in range(nb):
                    gi[n] = 0.0
                for j in range(m):
                    if not nz[i, j]:
                        continue
                    nij, kj = ni[i, j], kk_[j]
                    for n in range(nb):
                        gi[n] += nij * kj[n]
                for n in range(nb):
                    gi[n] -= vi[n]
            for n in range(nb):
                mu[n] = mu_c[first + n * n_x] + e_c
            for j in range(m):
                kj, uj, gj = kk_[j], u[j], g[j]
                for n in range(nb):
                    mu[n] += kj[n] * uj[n]
                    var[n] -= kj[n] * gj[n]
            z0 = z[0]
            for n in range(nb):
                z0[first + n * n_x] = -sign * (lim - mu[n]) / math.sqrt(var[n])
            for j in range(m):
                zj, uj, gj, cj = z[1 + j], u[j], g[j], c[j]
                for n in range(nb):
                    s = gj[n] / cj[n]
                    zj[first + n * n_x] = (-sign * (lim - (mu[n] - s * uj[n]))
                                           / math.sqrt(var[n] + s * gj[n]))


@njit(cache=True, nogil=True, fastmath=FMA)
def censored_finish(base, cond, log_ndtr_z, log_q, cpos, eps, pos, out):  # pragma: no cover
    """:func:`censored_block`'s entries finished with the gross-error mixture: ``log p(y) =
    base + log_mass`` (``log_mass = log_ndtr_z[0]``), each result's ``log p(y) - log p(y_-j)``
    (observed ``j``: ``log_mass - log_ndtr_z[1 + j] + cond[j]``; the censored one:
    ``log_mass``), and ``log p(y) + log((1 - n eps) + eps sum_j exp(log q_j - (log p(y) - log
    p(y_-j))))`` over the ``n = m + 1`` results in block order (``log_q`` ``(n,)``, the
    censored one at ``cpos``), written to ``out[pos[s] * L + l]`` for entry ``n = l S + s``
    (as :func:`mixture_block`); exponentials and the logarithm by :func:`exp_into` and
    :func:`log_into`.  Returns False (no answer) where a term's exponent is above 700 or not
    finite."""
    m, n_st = cond.shape
    n_s = pos.shape[0]
    n_l = n_st // n_s
    keep = 1.0 - (m + 1) * eps
    over = 0
    log_mass = log_ndtr_z[0]
    acc = np.zeros(n_st)
    arg, ex, work, work2 = np.empty(n_st), np.empty(n_st), np.empty(n_st), np.empty(n_st)
    j = 0
    for i in range(m + 1):
        lq = log_q[i]
        if i == cpos:
            for n in range(n_st):
                arg[n] = lq - log_mass[n]
        else:
            lz, cj = log_ndtr_z[1 + j], cond[j]
            for n in range(n_st):
                arg[n] = lq - ((log_mass[n] - lz[n]) + cj[n])
            j += 1
        for n in range(n_st):
            over += not (arg[n] <= 700.0)
        exp_into(arg, ex, work)
        for n in range(n_st):
            acc[n] += ex[n]
    for n in range(n_st):
        arg[n] = keep + eps * acc[n]
    log_into(arg, ex, work, work2)
    for n in range(n_st):
        arg[n] = base[n] + log_mass[n] + ex[n]
    _scatter(arg.reshape(n_st, 1), 0, 1, n_st, n_s, n_l, pos, out)
    return over == 0
