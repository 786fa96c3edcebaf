"""Compiled loops of the vectorised batch engine (:mod:`neb_bayes.inference.vectorised`).

Each kernel replaces a chain of numpy operations that made large temporaries (gathers of the
latent posterior per result, exponentials of every leave-one-out term) by one pass.  A case's
numbers are computed by loops over that case's own rows only, in a fixed order, so they do not
depend on which other cases share the chunk (the batch's bit-identity guarantee).  Compiled by
numba on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["gross_mixture", "joint_marginals", "loo_conditionals", "present_symptoms"]

LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, nogil=True)
def loo_conditionals(L, mu, amp, nd, a, ry, rd, n, c, M_inv, post_mean):  # pragma: no cover
    """``log p(y_j | y_-j, states)`` of observed results: ``(rows, S * R)``.

    ``L`` (C, K) loadings, ``mu``/``amp`` (C, S * R) expected level and rhythm amplitude,
    ``nd``, ``a``, ``ry``, ``rd`` each result's diagonal of ``R^-1``, ``R^-1 1``, ``R^-1 y``,
    ``R^-1 d``; ``n``, ``c`` its case and axis channel; ``M_inv`` (N, S, K, K) and
    ``post_mean`` (N, S, R, K) the latents' posterior precision inverse and mean.
    """
    m = n.size
    S, R, K = post_mean.shape[1], post_mean.shape[2], post_mean.shape[3]
    out = np.empty((m, S * R))
    for i in range(m):
        ni, ci = n[i], c[i]
        ai = a[i]
        for s in range(S):
            quad = 0.0
            for k in range(K):
                t = 0.0
                for l2 in range(K):
                    t += M_inv[ni, s, k, l2] * L[ci, l2]
                quad += L[ci, k] * t
            cjj = nd[i] - ai * ai * quad
            half = 0.5 * (math.log(cjj) - LOG_2PI)
            for r in range(R):
                g = s * R + r
                fit = mu[ci, g]
                for k in range(K):
                    fit += L[ci, k] * post_mean[ni, s, r, k]
                u = ry[i] - ai * fit - rd[i] * amp[ci, g]
                out[i, g] = half - 0.5 * u * u / cjj
    return out


@njit(cache=True, nogil=True)
def gross_mixture(lr, start, count, eps):  # pragma: no cover
    """``log((1 - n eps) + eps sum_j exp(lr_j))`` over each case's rows ``start[b] ..
    start[b] + count[b] - 1`` of ``lr`` (rows, G): ``(cases, G)``."""
    nb, G = start.size, lr.shape[1]
    out = np.empty((nb, G))
    mx = np.empty(G)
    acc = np.empty(G)
    for b in range(nb):
        lo, hi = start[b], start[b] + count[b]
        for g in range(G):
            mx[g] = 0.0
            acc[g] = 0.0
        for j in range(lo, hi):
            for g in range(G):
                if lr[j, g] > mx[g]:
                    mx[g] = lr[j, g]
        for j in range(lo, hi):
            for g in range(G):
                acc[g] += math.exp(lr[j, g] - mx[g])
        w = 1.0 - count[b] * eps
        for g in range(G):
            out[b, g] = mx[g] + math.log(w * math.exp(-mx[g]) + eps * acc[g])
    return out


@njit(cache=True, nogil=True)
def joint_marginals(p, shape, healthy):  # pragma: no cover
    """Every axis marginal and the ``healthy``-weighted total of each case's joint ``p``
    (N, J), in one pass: ``(N, sum(shape))`` marginals (axes one after another) and ``(N,)``
    totals ``sum_j p[n, j]`` and ``sum_j p[n, j] healthy[j]``."""
    N, J = p.shape
    nd = shape.size
    offset = np.zeros(nd, np.int64)
    for d in range(1, nd):
        offset[d] = offset[d - 1] + shape[d - 1]
    width = offset[nd - 1] + shape[nd - 1]
    # the marginal slot of every joint state on every axis (C order: last axis fastest)
    slot = np.empty((J, nd), np.int64)
    for j in range(J):
        rest = j
        for d in range(nd - 1, -1, -1):
            slot[j, d] = offset[d] + rest % shape[d]
            rest //= shape[d]
    marg = np.zeros((N, width))
    z = np.zeros(N)
    h = np.zeros(N)
    for i in range(N):
        zi, hi = 0.0, 0.0
        for j in range(J):
            v = p[i, j]
            zi += v
            hi += v * healthy[j]
            for d in range(nd):
                marg[i, slot[j, d]] += v
        z[i], h[i] = zi, hi
    return marg, z, h


@njit(cache=True, nogil=True)
def present_symptoms(p, present_prob, ids, start, count, w):  # pragma: no cover
    """Multiply each case's joint ``p`` (N, J) in place by P(its present symptoms | state):
    ``sum_k w[n, k] prod_y present_prob[y, k * J + j]`` over the propensity levels ``k``, with
    case ``n``'s symptoms ``ids[start[n]:start[n] + count[n]]`` (cases without any are left
    as they are)."""
    N, J = p.shape
    P = w.shape[1]
    tot = np.empty(J)
    prod = np.empty(J)
    for i in range(N):
        if count[i] == 0:
            continue
        lo, hi = start[i], start[i] + count[i]
        for j in range(J):
            tot[j] = 0.0
        for k in range(P):
            base = k * J
            row = present_prob[ids[lo]]
            for j in range(J):
                prod[j] = row[base + j]
            for t in range(lo + 1, hi):
                row = present_prob[ids[t]]
                for j in range(J):
                    prod[j] *= row[base + j]
            wk = w[i, k]
            for j in range(J):
                tot[j] += wk * prod[j]
        for j in range(J):
            p[i, j] *= tot[j]
