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

from neb_bayes.tensor_kernels import tile_factors

__all__ = ["channel_groups", "fused_joint", "gaussian_terms", "grid_index", "gross_log_q", "gross_mixture",
           "log_ndtr", "loo_conditionals", "present_symptom_table", "spd_inverse_into",
           "spd_inverse_k",
           "spd_inverse_logdet"]

LOG_2PI = math.log(2.0 * math.pi)
SQRT2 = math.sqrt(2.0)
#: below this, log Phi(t) by its asymptotic series (erfc(-t / sqrt 2) would leave double
#: precision's normal range near t = -37.5)
ASYMPTOTIC_BELOW = -37.0


@njit(cache=True, nogil=True)
def log_ndtr(t):  # pragma: no cover
    """log Phi(t) to double precision: ``log1p(-erfc(t / sqrt 2) / 2)`` above -1,
    ``log(erfc(-t / sqrt 2) / 2)`` down to :data:`ASYMPTOTIC_BELOW`, then the asymptotic
    series ``-t^2/2 - log(-t) - log(2 pi)/2 + log(1 - 1/t^2 + 3/t^4 - ...)`` (six terms,
    truncation below 1e-15 there)."""
    if t > -1.0:
        return math.log1p(-0.5 * math.erfc(t / SQRT2))
    if t > ASYMPTOTIC_BELOW:
        return math.log(0.5 * math.erfc(-t / SQRT2))
    r = 1.0 / (t * t)
    s = 1.0 - r * (1.0 - 3.0 * r * (1.0 - 5.0 * r * (1.0 - 7.0 * r * (1.0 - 9.0 * r))))
    return -0.5 * t * t - math.log(-t) - 0.5 * LOG_2PI + math.log(s)




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
def gross_log_q(channel, y, censor, log_w, mean, sd, log_sd, count):  # pragma: no cover
    """log q(y) of each result as a gross error (its channel's mixture ``(components,
    channels)`` tables, channel ``c``'s components the first ``count[c]``): a density for an
    observed result, the mass beyond its limit for a censored one (``censor`` -1 below, +1
    above).  The terms as :func:`~neb_bayes.model.compiled._gross_log_q` computes them, per
    result: ``max + log(sum in component order of exp(term - max))``."""
    out = np.empty(y.size)
    dens = np.empty(max(log_w.shape[0], 1))
    for r in range(y.size):
        c = channel[r]
        mx = -np.inf
        for k in range(count[c]):
            z = (y[r] - mean[k, c]) / sd[k, c]
            if censor[r] == 0:
                d = log_w[k, c] + (-0.5 * z * z - log_sd[k, c] - 0.5 * LOG_2PI)
            else:
                d = log_w[k, c] + log_ndtr(-censor[r] * z)
            dens[k] = d
            if d > mx:
                mx = d
        acc = 0.0
        for k in range(count[c]):
            acc += math.exp(dens[k] - mx)
        out[r] = mx + math.log(acc)
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


#: cases per tile of :func:`fused_joint` (64: 27 us per case against 28 with 128 or 256)
JOINT_TILE = 64


@njit(cache=True, nogil=True)
def grid_index(stride, gstride, shape, base, idx):  # pragma: no cover
    """Each point of a grid over some of the axes ``shape`` (``gstride``: its strides, last
    axis fastest, 0 for an axis not on it): its entry ``base + sum_d digit_d stride[d]`` in
    a table with axis strides ``stride``, written to ``idx`` in the grid's order (built axis
    by axis, outermost first, by expanding the entries found so far).  Returns the grid's
    size."""
    idx[0] = base
    m = 1
    for d in range(shape.size):
        if gstride[d] == 0:
            continue
        s = stride[d]
        n = shape[d]
        for q in range(m - 1, -1, -1):     # in place: each entry's block lies after it
            b0 = idx[q]
            for x in range(n - 1, -1, -1):
                idx[q * n + x] = b0 + x * s
        m *= n
    return m


@njit(cache=True, nogil=True)
def present_symptom_table(i, present, ids, lo, hi, w, shape, ustride, idx, acc,
                          sym):  # pragma: no cover
    """Case ``i``'s ``P(present symptoms | states)``, summed over the propensity level, on the
    grid of its present symptoms' (``ids[lo:hi]``) cause axes (last axis fastest), written
    to ``sym``; that grid's axis strides (0 for other axes) to ``ustride``.  Returns its size.
    ``present``, ``w`` and ``shape`` as in :func:`fused_joint`; ``idx`` (one entry per grid
    point) and ``acc`` (``(levels, grid points)``) are scratch.

    Every value is ``sum_k w[i, k] prod_y tab_y[k, .]``, the products in symptom order and
    the sum in level order; each product is taken over the whole grid at once, one symptom
    at a time (its entries found once per symptom: :func:`grid_index`), so that the inner
    loops are long ones over the grid's points.
    """
    tab, off, size, stride = present
    nd = shape.size
    P = w.shape[1]
    n_u = 1
    for d in range(nd - 1, -1, -1):
        ustride[d] = 0
        for t in range(lo, hi):
            if stride[ids[t], d] > 0:
                ustride[d] = n_u
                n_u *= shape[d]
                break
    for k in range(P):
        wk = w[i, k]
        a = acc[k]
        for u in range(n_u):
            a[u] = wk
    for t in range(lo, hi):
        y = ids[t]
        grid_index(stride[y], ustride, shape, off[y], idx)
        lev = size[y]
        for k in range(P):
            a = acc[k]
            ko = k * lev
            for u in range(n_u):
                a[u] *= tab[idx[u] + ko]
    for u in range(n_u):
        sym[u] = 0.0
    for k in range(P):
        a = acc[k]
        for u in range(n_u):
            sym[u] += a[u]
    return n_u


@njit(cache=True, nogil=True)
def fused_joint(prior, stratum, parts, row_stride, plan, n_entries, rows, index, present, ids,
                start, count, w, shape, healthy):  # pragma: no cover
    """Every axis marginal of each case's joint posterior, without storing the joint.

    Case ``n``'s unnormalised posterior at joint state ``j`` is ``prior[stratum[n], j] *
    prod_f factors[n, index[f, j]] * sum_k w[n, k] prod_y P(y | k, j)`` over its present
    symptoms ``y`` (``ids[start[n]:start[n] + count[n]]``; a case without any skips the
    sum).  The factors' tables (``n_entries`` in all) are each factor's table on its own
    small scope, one after another, made per tile from the log-factors (``parts``,
    ``row_stride``) by ``plan`` (:func:`~neb_bayes.tensor_kernels.tile_factors`: scaled to a
    maximum of 1, the log-maxima summed into the returned ``shift``; ``rows``: the tile
    buffer's rows); ``index[f, j]`` is joint state ``j``'s entry in factor ``f``.  ``present = (tab, off,
    size, stride)``: symptom ``y``'s table over (level, its cause axes) flattened from
    ``tab[off[y]]``, with axis strides ``stride[y]`` (0 for other axes) and level stride
    ``size[y]``.  The symptom sum is computed on the grid of the case's present symptoms'
    cause axes only (:func:`present_symptom_table`), then read per joint state.

    Cases are taken in tiles of :data:`JOINT_TILE`, the cases of a tile innermost: each
    joint state's factor entries are read once per tile and its products are contiguous
    loops over the tile's cases (vectorised).  The cases go into tiles in the order (has
    present symptoms, stratum, position), so that most tiles share a stratum (the prior
    then read as one number per joint state, not gathered per case) and most have no
    present symptoms (no symptom table read at all).  A case's numbers come from the same
    operations in the same order whatever its tile: ``prior * f_0 * f_1 * ... * sym``
    (a skipped factor of 1 changes nothing), summed over the last axis within a run and the
    runs in order; its total is the sum of its last axis' marginal.

    Returns ``(N, sum(shape))`` marginals (axes one after another), ``(N,)`` totals
    ``sum_j p`` and ``sum_j p healthy[j]``, and ``(N,)`` log-scale shifts (the product's
    factor left out of ``p``).  The last axis is innermost, so the other axes'
    marginals are added once per run of it.
    """
    N = stratum.size
    J = prior.shape[1]
    nd = shape.size
    n_f = index.shape[0]
    E = n_entries
    last = shape[nd - 1]
    offset = np.zeros(nd, np.int64)
    for d in range(1, nd):
        offset[d] = offset[d - 1] + shape[d - 1]
    width = offset[nd - 1] + last
    runs = J // last
    # every run of the last axis: its state on each other axis
    digit = np.empty((runs, max(nd - 1, 1)), np.int64)
    for r in range(runs):
        rest = r
        for d in range(nd - 2, -1, -1):
            digit[r, d] = rest % shape[d]
            rest //= shape[d]
    # the outermost digit each run changes from the one before (its carry level): a case's
    # offset into its symptom table moves by its step for that level
    carry = np.zeros(runs, np.int64)
    for r in range(1, runs):
        c = nd - 2
        while c > 0 and digit[r, c] == 0:
            c -= 1
        carry[r] = c
    key = np.empty(N, np.int64)
    for i in range(N):
        key[i] = ((count[i] > 0) * prior.shape[0] + stratum[i]) * N + i
    perm = np.argsort(key)
    marg = np.zeros((N, width))
    z = np.zeros(N)
    h = np.zeros(N)
    B = JOINT_TILE
    # the tile's factor tables, cases innermost, and a row of ones after them: the first
    # three factors are multiplied in one loop (a missing one reads the ones, exactly)
    ft = np.ones((rows, B))
    work = np.empty(rows * B)
    mx = np.empty(B)
    chk = np.empty(B)
    shift = np.zeros(N)
    lead = np.full((3, J), E, np.int64)
    for f in range(min(n_f, 3)):
        for j in range(J):
            lead[f, j] = index[f, j]
    ustr = np.zeros((nd, B), np.int64)     # each case's symptom-grid strides
    sbase = np.zeros(B, np.int64)          # where each case's symptom table starts in ``sym``
    ub = np.zeros(B, np.int64)
    step = np.zeros((max(nd - 1, 1), B), np.int64)   # each case's offset change per carry level
    pos = np.zeros(B, np.int64)
    v = np.empty(B)
    run = np.empty(B)
    ht = np.empty(B)
    lacc = np.empty((last, B))
    mt = np.empty((width, B))
    ustride = np.zeros(nd, np.int64)
    idx = np.empty(J, np.int64)
    acc = np.empty((w.shape[1], J))
    sym = np.empty(B * J + 1)
    prior_flat = prior.ravel()
    for i0 in range(0, N, B):
        nb = min(B, N - i0)
        # the tile's present-symptom tables one after another; slot 0 holds 1 (none)
        sym[0] = 1.0
        used = 1
        any_sym = False
        one = True                         # one stratum
        for b in range(nb):
            i = perm[i0 + b]
            pos[b] = stratum[i] * J
            one = one and stratum[i] == stratum[perm[i0]]
            lo, hi = start[i], start[i] + count[i]
            if hi > lo:
                any_sym = True
                sbase[b] = used
                used += present_symptom_table(i, present, ids, lo, hi, w, shape, ustride,
                                              idx, acc, sym[used:])
                for d in range(nd):
                    ustr[d, b] = ustride[d]
            else:
                sbase[b] = 0
                for d in range(nd):
                    ustr[d, b] = 0
            ht[b] = 0.0
        tile_factors(parts, row_stride, plan, perm, i0, nb, ft, mx, chk, shift, work)
        for c in range(width):
            for b in range(nb):
                mt[c, b] = 0.0
        for t in range(last):
            for b in range(nb):
                lacc[t, b] = 0.0
        ul = ustr[nd - 1]
        prow = prior_flat[pos[0]:pos[0] + J]
        if any_sym:
            for b in range(nb):
                ub[b] = sbase[b]
            for c in range(nd - 1):
                for b in range(nb):
                    dx = ustr[c, b]
                    for d in range(c + 1, nd - 1):
                        dx -= (shape[d] - 1) * ustr[d, b]
                    step[c, b] = dx
        for r in range(runs):
            if any_sym and r > 0:
                sr = step[carry[r]]
                for b in range(nb):
                    ub[b] += sr[b]
            for b in range(nb):
                run[b] = 0.0
            for t in range(last):
                j = r * last + t
                r0, r1, r2 = ft[lead[0, j]], ft[lead[1, j]], ft[lead[2, j]]
                if one:
                    pj = prow[j]
                    for b in range(nb):
                        v[b] = pj * r0[b] * r1[b] * r2[b]
                else:
                    # the gather in a loop of its own, so that the products vectorise
                    for b in range(nb):
                        v[b] = prior_flat[pos[b] + j]
                    for b in range(nb):
                        v[b] = v[b] * r0[b] * r1[b] * r2[b]
                for f in range(3, n_f):
                    row = ft[index[f, j]]
                    for b in range(nb):
                        v[b] *= row[b]
                if any_sym:
                    for b in range(nb):
                        v[b] *= sym[ub[b] + t * ul[b]]
                la = lacc[t]
                for b in range(nb):
                    x = v[b]
                    la[b] += x
                    run[b] += x
                hj = healthy[j]
                if hj != 0.0:
                    for b in range(nb):
                        ht[b] += v[b] * hj
            for d in range(nd - 1):
                row = mt[offset[d] + digit[r, d]]
                for b in range(nb):
                    row[b] += run[b]
        for b in range(nb):
            i = perm[i0 + b]
            for c in range(offset[nd - 1]):
                marg[i, c] = mt[c, b]
            total = 0.0
            for t in range(last):
                marg[i, offset[nd - 1] + t] = lacc[t, b]
                total += lacc[t, b]
            z[i], h[i] = total, ht[b]
    return marg, z, h, shift


@njit(cache=True, nogil=True)
def channel_groups(tau2, cvi2, cva2, n_ch, key, order, y, d, day, extra, diag, out,
                   per):  # pragma: no cover
    """:func:`~neb_bayes.inference.vectorised.channel_stats` on results sorted by ``key``
    (``case * n_ch + channel``; ``order``: each sorted result's input position): for each
    run of one key, the channel's noise covariance ``R`` of the case's results in it
    (person and same-day terms, analytical noise, the context's variation shared in the
    channel, each result's own variance ``diag``), its inverse and log-determinant, and the
    statistics written to ``out`` ``(7, N, C)`` (``w, s1, s2, t1, t2, t3, ld``) and ``per``
    ``(4, R)`` (``a, ry, rd, nd`` at each result's input position).  Each run's numbers come
    from its own results only."""
    n = key.size
    width = 1
    i = 0
    while i < n:          # the longest run, for the scratch matrices
        j = i
        while j < n and key[j] == key[i]:
            j += 1
        width = max(width, j - i)
        i = j
    R = np.empty((width, width))
    Ri = np.empty((width, width))
    c = np.empty((width, width))
    x = np.empty((width, width))
    se = np.empty(width)
    riy = np.empty(width)
    rid = np.empty(width)
    i = 0
    while i < n:
        j = i
        while j < n and key[j] == key[i]:
            j += 1
        m = j - i
        ci, cj = key[i] // n_ch, key[i] % n_ch
        if m == 1:
            var = tau2[cj] + cvi2[cj] + cva2[cj] + extra[i] + diag[i]
            inv = 1.0 / var
            out[0, ci, cj] = inv
            out[1, ci, cj] = y[i] * inv
            out[2, ci, cj] = y[i] ** 2 * inv
            out[3, ci, cj] = d[i] * inv
            out[4, ci, cj] = d[i] ** 2 * inv
            out[5, ci, cj] = y[i] * d[i] * inv
            out[6, ci, cj] = math.log(var) + LOG_2PI
            r = order[i]
            per[0, r] = inv
            per[1, r] = y[i] * inv
            per[2, r] = d[i] * inv
            per[3, r] = inv
        else:
            for a in range(m):
                se[a] = math.sqrt(extra[i + a])
            for a in range(m):
                for b in range(m):
                    v = tau2[cj] + cvi2[cj] * (1.0 if day[i + a] == day[i + b] else 0.0)
                    v = v + (cva2[cj] + diag[i + a] if a == b else 0.0)
                    R[a, b] = v + se[a] * se[b]
            logdet = spd_inverse_into(R[:m, :m], Ri[:m, :m], c[:m, :m], x[:m, :m])
            w = s1 = s2 = t1 = t2 = t3 = 0.0
            for a in range(m):
                sy = 0.0
                sd = 0.0
                row = 0.0
                for b in range(m):
                    sy += Ri[a, b] * y[i + b]
                    sd += Ri[a, b] * d[i + b]
                    row += Ri[a, b]
                riy[a] = sy
                rid[a] = sd
                w += row
                s1 += sy
                s2 += y[i + a] * sy
                t1 += sd
                t2 += d[i + a] * sd
                t3 += y[i + a] * sd
                r = order[i + a]
                per[0, r] = row
                per[1, r] = sy
                per[2, r] = sd
                per[3, r] = Ri[a, a]
            out[0, ci, cj] = w
            out[1, ci, cj] = s1
            out[2, ci, cj] = s2
            out[3, ci, cj] = t1
            out[4, ci, cj] = t2
            out[5, ci, cj] = t3
            out[6, ci, cj] = logdet + m * LOG_2PI
        i = j


@njit(cache=True, nogil=True)
def gaussian_terms(s2, w, s1, t1, t2, t3, ld, mu, amp, L, s_mu, s_inv, const):  # pragma: no cover
    """Each case's log-likelihood of its observed results on an axis' grid, the latents
    integrated by completing the square, in one pass per case.

    From the per-channel statistics (``(N, C)`` each, :func:`vectorised.channel_stats`),
    the expected levels ``mu`` and rhythm amplitudes ``amp`` (``(C, G)``, ``G = S R``: own
    state first), loadings ``L`` (``(C, K)``), the latent prior's ``s_mu`` (``(G, K)``:
    precision @ mean), precision ``s_inv`` (``(S, K, K)``) and ``const`` (``(G,)``):
    ``q[g] = sum_c (y - mu - amp d)' R^-1 (y - mu - amp d)``, ``eta[g] = s_mu[g] + sum_c L_c
    (1'R^-1 y - (1'R^-1 1) mu - (1'R^-1 d) amp)``, ``M[s] = s_inv[s] + sum_c w_c L_c L_c'``;
    then ``ll[g] = -q/2 - sum_c ld_c / 2 + const[g] + eta M^-1 eta' / 2 - log|M| / 2``.
    Channels a case has no results in are skipped, and each case's sums run over its own
    channels in a fixed order.  Returns ``ll`` ``(N, S, R)``, the latents' posterior means
    ``eta M^-1`` ``(N, S, R, K)`` and ``M^-1`` ``(N, S, K, K)``.
    """
    N, C = w.shape
    G = mu.shape[1]
    K = L.shape[1]
    S = s_inv.shape[0]
    R = G // S
    ll = np.empty((N, S, R))
    post = np.empty((N, S, R, K))
    M_inv = np.empty((N, S, K, K))
    q = np.empty(G)
    eta = np.empty((G, K))
    base = np.empty(K)
    wll = np.empty((K, K))
    m = np.empty((K, K))
    ch = np.zeros((K, K))      # Cholesky factor, lower
    x = np.zeros((K, K))       # its inverse, lower
    for n in range(N):
        acc = 0.0
        lds = 0.0
        for c in range(C):
            acc += s2[n, c]
            lds += ld[n, c]
        for k in range(K):
            acc_k = 0.0
            for c in range(C):
                acc_k += s1[n, c] * L[c, k]
            base[k] = acc_k
            for k2 in range(K):
                acc_kl = 0.0
                for c in range(C):
                    acc_kl += w[n, c] * L[c, k] * L[c, k2]
                wll[k, k2] = acc_kl
        for g in range(G):
            q[g] = acc
            for k in range(K):
                eta[g, k] = s_mu[g, k] + base[k]
        for c in range(C):
            wc, s1c, t1c, t2c, t3c = w[n, c], s1[n, c], t1[n, c], t2[n, c], t3[n, c]
            if wc == 0.0 and t2c == 0.0:
                continue
            for g in range(G):
                mg = mu[c, g]
                a = amp[c, g]
                q[g] += (wc * mg * mg + t2c * a * a - 2.0 * s1c * mg - 2.0 * t3c * a
                         + 2.0 * t1c * mg * a)
                coef = wc * mg + t1c * a
                for k in range(K):
                    eta[g, k] -= coef * L[c, k]
        for s in range(S):
            for k in range(K):
                for k2 in range(K):
                    m[k, k2] = s_inv[s, k, k2] + wll[k, k2]
            logdet = spd_inverse_into(m, M_inv[n, s], ch, x)
            for r in range(R):
                g = s * R + r
                quad = 0.0
                for k in range(K):
                    v = 0.0
                    for k2 in range(K):
                        v += eta[g, k2] * M_inv[n, s, k2, k]
                    post[n, s, r, k] = v
                    quad += v * eta[g, k]
                ll[n, s, r] = (-0.5 * q[g] - 0.5 * lds + const[g]) + 0.5 * quad - 0.5 * logdet
    return ll, post, M_inv


@njit(cache=True, nogil=True)
def spd_inverse_into(m, inv, c, x):  # pragma: no cover
    """``inv = m^-1`` of one symmetric positive definite ``(K, K)`` matrix by its Cholesky
    factor (written into ``c``, lower) and that factor's inverse (``x``, lower); returns
    ``log|m|``."""
    return spd_inverse_k(m.shape[0], m, inv, c, x)


@njit(cache=True, nogil=True, inline="always")
def spd_inverse_k(k, m, inv, c, x):  # pragma: no cover
    """:func:`spd_inverse_into` of the leading ``(k, k)`` block, inlined into its callers
    (numba's IR: a call per inverse cost the batch engine's point path ~5 %): a caller whose
    ``k`` is a compile-time constant (the fit's laboratory kernel,
    :mod:`neb_bayes.inference.lab_kernels`) gets its loops unrolled."""
    ld = 0.0
    for j in range(k):
        s = m[j, j]
        for t in range(j):
            s -= c[j, t] * c[j, t]
        c[j, j] = math.sqrt(s)
        ld += math.log(c[j, j])
        for i in range(j + 1, k):
            s = m[i, j]
            for t in range(j):
                s -= c[i, t] * c[j, t]
            c[i, j] = s / c[j, j]
    for i in range(k):
        x[i, i] = 1.0 / c[i, i]
        for j in range(i):
            s = 0.0
            for t in range(j, i):
                s += c[i, t] * x[t, j]
            x[i, j] = -s * x[i, i]
    for i in range(k):
        for j in range(i + 1):
            s = 0.0
            for t in range(i, k):
                s += x[t, i] * x[t, j]
            inv[i, j] = s
            inv[j, i] = s
    return 2.0 * ld


@njit(cache=True, nogil=True)
def _spd_inverse_logdet(m, inv, logdet):  # pragma: no cover
    n, k = m.shape[0], m.shape[1]
    c = np.zeros((k, k))        # Cholesky factor, lower
    x = np.zeros((k, k))        # its inverse, lower
    for b in range(n):
        logdet[b] = spd_inverse_into(m[b], inv[b], c, x)


def spd_inverse_logdet(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and log-determinant of symmetric positive definite matrices ``(..., K, K)``
    (small K: the latents of an axis, the results of one channel) by their Cholesky factors,
    one compiled pass over the stack (LAPACK's per-matrix calls cost more than the arithmetic
    at these sizes); each matrix's numbers from its own entries."""
    m = np.ascontiguousarray(m, dtype=float)
    k = m.shape[-1]
    flat = m.reshape(-1, k, k)
    inv = np.empty_like(flat)
    logdet = np.empty(flat.shape[0])
    _spd_inverse_logdet(flat, inv, logdet)
    return inv.reshape(m.shape), logdet.reshape(m.shape[:-2])
