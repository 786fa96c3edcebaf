"""Compiled value and vector-Jacobian product of one axis' laboratory factor in the fit
(:func:`neb_bayes.inference.lab_block.lab_loglik`, the reference formula in numpy and
pytensor), in one pass over people and grid points, and its vector-Jacobian product.

An analyte-level fit evaluates the factor and its gradient with respect to ``(lat_mean,
lat_sd, log_median)`` at every leapfrog step.  The formula's pytensor graph, compiled by the
C backend, ran node by node over (people x grid points x latents^2) intermediates, with
pytensor's Python fallback for every matrix product; this kernel keeps each person's and
grid point's numbers in registers and small arrays, and its reverse pass is written out by
hand (checked against pytensor's automatic differentiation of the same formula and against
finite differences, ``tests/fit/test_lab_block.py``).

Per own state ``s`` the latents' prior covariance ``S_s = corr_s * sd_s sd_s'``; per person
``r`` and state the posterior precision ``M = S_s^-1 + A_r``; per grid point ``g`` the
completed square ``eta = S_s^-1 mu_s + b_rg``, ``zhat = M^-1 eta``, then the censored
result's normal mass and the gross-error mixture by the leave-one-out identity.  Gradients
with respect to a matrix are taken as if its entries were independent (``M^-1``, ``S^-1``);
the chain rule through ``X = M^-1`` is ``dM = -X dX X``.

The reverse pass is split where the cotangent enters: :func:`lab_factor`, in the forward
pass, keeps each person's and grid point's gradient with respect to a few intermediates (the
posterior precision's inverse, the completed square, the channels' medians: ~3K + slots + C
numbers, 3K + 3 slots + C beside censored results; ~0.13 GB for an analyte-level fit of
10,000 people); :func:`lab_pullback` contracts them with the cotangent and applies the chain
rule per person and state, then per state.  A log-density and gradient so runs the forward
pass once, not twice (2026-12-07: the kernels' time per evaluation 97 -> 47 ms at 3,000
people, with the latents' count compiled in).  Compiled by numba on first use, once per
number of latents (a tuple's length, so the latents' loops are unrolled), and cached on disk
(``cache=True``); the GIL is released.

A part without censored results (most people) runs :func:`lab_factor_observed`: the same
numbers with a person's grid points as lanes, so that its loops vectorise (one
log-density and gradient of 10,000 people 198-212 -> 178-179 ms, medians alternating,
2026-12-08).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from neb_bayes.inference.bivariate_kernels import log_bvn, log_bvn_grad
from neb_bayes.inference.draws_kernels import FMA, exp_into, log_into
from neb_bayes.inference.kernels import log_ndtr, spd_inverse_k

__all__ = ["lab_factor", "lab_pullback", "log_ndtr", "rows_sum"]

LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, nogil=True)
def _mills(t, log_phi):  # pragma: no cover
    """d log Phi(t) / dt = phi(t) / Phi(t), from ``log_phi = log Phi(t)``."""
    return math.exp(-0.5 * t * t - 0.5 * LOG_2PI - log_phi)


@njit(cache=True, nogil=True)
def _quad(k, u, m, v):  # pragma: no cover
    """``u' m v`` (``k`` entries)."""
    s = 0.0
    for a in range(k):
        t = 0.0
        for b in range(k):
            t += m[a, b] * v[b]
        s += u[a] * t
    return s


@njit(cache=True, nogil=True)
def _add_outer(k, dst, f, u, v):  # pragma: no cover
    """``dst += f u v'`` (``k`` entries)."""
    for a in range(k):
        fa = f * u[a]
        for b in range(k):
            dst[a, b] += fa * v[b]


@njit(cache=True, nogil=True)
def _inverse_pullback(k, inv, bar, out, tmp):  # pragma: no cover
    """``out += -inv bar inv``: the gradient with respect to ``m`` of a function of ``inv =
    m^-1`` whose gradient with respect to ``inv`` is ``bar`` (``inv`` symmetric, ``k x k``)."""
    for a in range(k):
        for b in range(k):
            s = 0.0
            for c in range(k):
                s += inv[a, c] * bar[c, b]
            tmp[a, b] = s
    for a in range(k):
        for b in range(k):
            s = 0.0
            for c in range(k):
                s += tmp[a, c] * inv[c, b]
            out[a, b] -= s


@njit(cache=True, nogil=True)
def _censored_mass(n_w, mean, V, lim, sign, r, t, sd):  # pragma: no cover
    """log P(every censored result beyond its limit) of ``n_w`` (1 or 2) results with means
    ``mean`` and covariance ``V`` (2 x 2); writes their standardised limits ``t`` and sds
    ``sd``; returns ``(log mass, rho)`` (rho 0 for one result)."""
    for a in range(n_w):
        sd[a] = math.sqrt(V[a, a])
        t[a] = sign[r, a] * (mean[a] - lim[r, a]) / sd[a]
    if n_w == 1:
        return log_ndtr(t[0]), 0.0
    rho = sign[r, 0] * sign[r, 1] * V[0, 1] / (sd[0] * sd[1])
    return log_bvn(t[0], t[1], rho), rho


@njit(cache=True, nogil=True)
def _censored_mass_bar(n_w, lm_bar, lm, t, sd, rho, sign, r, mean_bar, V_bar):  # pragma: no cover
    """:func:`_censored_mass`' reverse pass: ``lm_bar`` times its gradient with respect to
    the means and covariance, added into ``mean_bar`` and ``V_bar`` (``V_bar[0, 1]`` for the
    one covariance)."""
    if lm_bar == 0.0:
        return
    if n_w == 1:
        t_bar0 = lm_bar * _mills(t[0], lm)
        mean_bar[0] += t_bar0 * sign[r, 0] / sd[0]
        V_bar[0, 0] -= 0.5 * t_bar0 * t[0] / (sd[0] * sd[0])
        return
    dh, dk, dr = log_bvn_grad(t[0], t[1], rho, lm)
    rho_bar = lm_bar * dr
    for a in range(2):
        t_bar = lm_bar * (dh if a == 0 else dk)
        mean_bar[a] += t_bar * sign[r, a] / sd[a]
        sd_bar = -(t_bar * t[a] + rho_bar * rho) / sd[a]
        V_bar[a, a] += 0.5 * sd_bar / sd[a]
    V_bar[0, 1] += rho_bar * sign[r, 0] * sign[r, 1] / (sd[0] * sd[1])


@njit(cache=True, nogil=True, inline="always")
def _active_channels(r, w, s1, s2, t1, t2, t3, ld, active):  # pragma: no cover
    """Person ``r``'s channels with results into ``active`` (a channel without, all its
    statistics 0, adds nothing to the factor's quadratic form), and the sums of its ``s2``
    and ``ld`` over every channel: ``(count, s2 sum, ld sum)``."""
    s2_sum = 0.0
    ld_sum = 0.0
    n_act = 0
    for c in range(w.shape[1]):
        s2_sum += s2[r, c]
        ld_sum += ld[r, c]
        if w[r, c] != 0.0 or s1[r, c] != 0.0 or t1[r, c] != 0.0 or t2[r, c] != 0.0 \
                or t3[r, c] != 0.0:
            active[n_act] = c
            n_act += 1
    return n_act, s2_sum, ld_sum


@njit(cache=True, nogil=True)
def _state_terms(k, lat_mean, lat_sd, corr):  # pragma: no cover
    """Per own state: ``S^-1`` ``(S, k, k)``, ``S^-1 mu`` ``(S, k)`` and the constant
    ``-mu'S^-1 mu / 2 - log|S| / 2`` ``(S,)``."""
    n_s = lat_mean.shape[0]
    s_inv = np.empty((n_s, k, k))
    s_mu = np.zeros((n_s, k))
    cst = np.empty(n_s)
    cov, low, x = np.empty((k, k)), np.empty((k, k)), np.empty((k, k))
    for s in range(n_s):
        for a in range(k):
            for b in range(k):
                cov[a, b] = corr[s, a, b] * lat_sd[s, a] * lat_sd[s, b]
        ld_s = spd_inverse_k(k, cov, s_inv[s], low, x)
        q = 0.0
        for a in range(k):
            v = 0.0
            for b in range(k):
                v += s_inv[s, a, b] * lat_mean[s, b]
            s_mu[s, a] = v
            q += lat_mean[s, a] * v
        cst[s] = -0.5 * q - 0.5 * ld_s
    return s_inv, s_mu, cst


@njit(cache=True, nogil=True)
def lab_factor(kdim, lat_mean, lat_sd, log_median, L, effect, amp, own, corr, A, new_run,
               reps, sig, w, s1, s2, t1, t2, t3, ld,
               ch, lim, sign, dd, var, alpha, kappa, cov12,
               slot_ch, ry, r1, rd, rjj, lw, l0, cen_lw, kr,
               n_w, gross, out, m_inv_all, c_vec, c_slot, c_v, c_ch):  # pragma: no cover
    """One part's factor ``out (R, G)`` and, when ``c_vec`` has rows, each person's and grid
    point's gradient of it with respect to the per-person intermediates the pullback
    (:func:`lab_pullback`) contracts with a cotangent.

    ``kdim`` is a tuple of the axis' number of latents ``k`` (its length is all that is read:
    numba compiles the kernel once per length, with the latents' loops unrolled).  The other
    arrays are :func:`~neb_bayes.inference.lab_block.lab_loglik`'s with its one-hot gathers
    as indices: ``own (G,)`` each grid point's own state, ``slot_ch (J,)`` each gross-error
    slot's channel.  Every person of the part has ``n_w`` censored results (0, 1 or 2; their
    mass by the normal or bivariate normal CDF): per person and censored result ``(R, n_w)``
    its channel ``ch``, ``lim``, ``sign``, and ``alpha``, ``kappa``, ``dd`` and ``var``, its
    conditional given observed repeats in its channel (1, 0, its own and 0 without);
    ``cov12 (R,)`` the two's noise covariance given those; per slot ``kr (R, J, n_w)``, each
    censored result's part in leaving the slot's result out, and ``cen_lw (R, n_w)`` its
    gross-error weight.  ``gross`` says whether the part has gross-error slots (the arrays
    of what it has not may be empty).  A slot with ``lw = -inf`` is empty.  ``new_run (R,)``
    is false for a person whose ``A``, ``r1``, ``rjj``, empty slots and censored results'
    ``ch``, ``alpha``, ``var`` and ``cov12`` are those of the person before
    (:func:`~neb_bayes.inference.lab_block.new_runs`): the run shares the posterior
    covariances and what follows from them alone, computed at its first person.
    ``reps (P, G)`` per pattern of channels and ``sig (R,)`` each person's pattern
    (:func:`~neb_bayes.inference.lab_block.point_reps`): each grid point's first one with the
    same own state, effects and amplitudes on the channels of the person's results, whose
    value it takes (its gradients are not written: the pullback adds its cotangent to that
    point's).

    The gradients (``coef``: ``c_vec`` with rows), per person ``r`` and grid point ``g`` of
    own state ``s``: ``m_inv_all (R, S, k, k)`` the posterior covariance ``M^-1`` per state
    (written at the first person of each run only);
    ``c_vec (R, G, 3k)`` the gradient with respect to ``S^-1 mu_s``, then ``h`` and ``eta``,
    whose product ``h eta'`` is the gradient with respect to ``M^-1``; ``c_slot (R, G, 3J)``
    the scalars of the rank-one terms ``L_c L_c'`` (one per slot) and ``Lw L_c'`` (two per
    slot) of that gradient (``(R, G, J)``, the first only, in a part without censored
    results); ``c_v (R, G, 3)`` those of ``Lw Lw'`` (the censored results' covariance);
    ``c_ch (R, G, C)`` the gradient with respect to the channels' log medians.
    The gradients with respect to the constant and ``log|M|`` are 1 and -1/2.
    """
    k = len(kdim)
    n_s = lat_mean.shape[0]
    n_c, n_g = effect.shape
    n_r = A.shape[0]
    n_j = slot_ch.size if gross else 0
    jj = max(n_j, 1)
    coef = c_vec.shape[0] > 0
    low, x, mm = np.empty((k, k)), np.empty((k, k)), np.empty((k, k))
    s_inv, s_mu, cst = _state_terms(k, lat_mean, lat_sd, corr)
    mu = np.empty((n_c, n_g))
    for c in range(n_c):
        for g in range(n_g):
            mu[c, g] = log_median[c] + effect[c, g]
    # per person
    m_inv = np.empty((n_s, k, k))
    ld_m = np.empty(n_s)
    active = np.empty(n_c, dtype=np.int64)
    lw_row = np.zeros((2, k))      # the censored results' loadings (times alpha)
    V_s = np.zeros((n_s, 2, 2))    # their covariance given the observed results, per state
    inv_c = np.empty((n_s, jj))
    cross = np.empty((n_s, jj, 2))     # Lw_a M^-1 L_c of each slot's channel
    half_log_ic = np.empty((n_s, jj))
    # per grid point
    b_v = np.empty(k)
    eta = np.empty(k)
    pm = np.empty(k)
    pm_bar = np.empty(k)
    mean_w = np.zeros(2)
    mean_bar = np.zeros(2)
    V_bar = np.zeros((2, 2))
    t_w = np.zeros(2)
    sd_w = np.zeros(2)
    V_j = np.zeros((2, 2))
    mean_j = np.zeros(2)
    mj_bar = np.zeros(2)
    Vj_bar = np.zeros((2, 2))
    u = np.zeros(2)
    u_bar = np.zeros(2)
    t_cen = np.full(2, -np.inf)
    # per slot, the forward pass' values for the reverse
    j_res, j_ic, j_rat, j_lm, j_rho = (np.empty(jj), np.empty(jj), np.empty(jj), np.empty(jj),
                                       np.empty(jj))
    j_u, j_t, j_sd = np.zeros((jj, 2)), np.zeros((jj, 2)), np.zeros((jj, 2))
    j_w, c_w = np.zeros(jj), np.zeros(2)   # the mixture's terms over the largest
    inv_tot = 1.0
    r0 = 0
    for r in range(n_r):
        # a person like the one before (``new_run`` false: the same A, slots and censored
        # results' structure) shares its M^-1 and everything below that depends on it alone
        fresh = new_run[r]
        if fresh:
            r0 = r
        if coef:
            m_inv = m_inv_all[r0]
        if fresh:
            for s in range(n_s):
                for a in range(k):
                    for b in range(k):
                        mm[a, b] = s_inv[s, a, b] + A[r, a, b]
                ld_m[s] = spd_inverse_k(k, mm, m_inv[s], low, x)
        n_act, s2_sum, ld_sum = _active_channels(r, w, s1, s2, t1, t2, t3, ld, active)
        for i in range(n_w):
            for a in range(k):
                lw_row[i, a] = alpha[r, i] * L[ch[r, i], a]
        for s in range(n_s if fresh else 0):
            for i in range(n_w):
                for i2 in range(i, n_w):
                    V_s[s, i, i2] = _quad(k, lw_row[i], m_inv[s], lw_row[i2]) + (
                        var[r, i] if i == i2 else cov12[r])
            if n_w == 2:
                V_s[s, 1, 0] = V_s[s, 0, 1]
        for j in range(n_j if fresh else 0):
            if lw[r, j] == -np.inf:
                continue
            lc = L[slot_ch[j]]
            for s in range(n_s):
                ic = 1.0 / (rjj[r, j] - r1[r, j] * r1[r, j] * _quad(k, lc, m_inv[s], lc))
                inv_c[s, j] = ic
                half_log_ic[s, j] = 0.5 * math.log(ic)
                for i in range(n_w):
                    cross[s, j, i] = _quad(k, lw_row[i], m_inv[s], lc)
        rep = reps[sig[r]]
        for g in range(n_g):
            if rep[g] != g:      # a point the person's results cannot tell from an earlier one
                out[r, g] = out[r, rep[g]]
                continue
            s = own[g]
            # -q/2 - log|N|/2: the results' quadratic form about the channel means
            q = s2_sum
            for a in range(k):
                b_v[a] = 0.0
            for i in range(n_act):
                c = active[i]
                mc, ac = mu[c, g], amp[c, g]
                q += (w[r, c] * mc * mc - 2.0 * s1[r, c] * mc + t2[r, c] * ac * ac
                      - 2.0 * t3[r, c] * ac + 2.0 * t1[r, c] * mc * ac)
                f = s1[r, c] - w[r, c] * mc - t1[r, c] * ac
                for a in range(k):
                    b_v[a] += f * L[c, a]
            for a in range(k):
                eta[a] = s_mu[s, a] + b_v[a]
            quad = 0.0
            for a in range(k):
                v = 0.0
                for b in range(k):
                    v += m_inv[s, a, b] * eta[b]
                pm[a] = v
                quad += eta[a] * v
            ll = -0.5 * q - 0.5 * ld_sum + cst[s] + 0.5 * quad - 0.5 * ld_m[s]
            lm = 0.0
            rho = 0.0
            if n_w:
                for i in range(n_w):
                    cw = ch[r, i]
                    mw = alpha[r, i] * mu[cw, g] + amp[cw, g] * dd[r, i] + kappa[r, i]
                    for a in range(k):
                        mw += lw_row[i, a] * pm[a]
                    mean_w[i] = mw
                lm, rho = _censored_mass(n_w, mean_w, V_s[s], lim, sign, r, t_w, sd_w)
                ll += lm
            lse = 0.0
            if gross:
                top = l0[r]
                # a censored result the gross error: the others' mass without it
                for i in range(n_w):
                    t_cen[i] = cen_lw[r, i] - lm + (log_ndtr(t_w[1 - i]) if n_w == 2 else 0.0)
                    top = max(top, t_cen[i])
                for j in range(n_j):
                    if lw[r, j] == -np.inf:
                        j_rat[j] = -np.inf
                        continue
                    c = slot_ch[j]
                    mc = mu[c, g]
                    for a in range(k):
                        mc += L[c, a] * pm[a]
                    res = ry[r, j] - r1[r, j] * mc - rd[r, j] * amp[c, g]
                    ic = inv_c[s, j]
                    rat = lw[r, j] + 0.5 * LOG_2PI + 0.5 * res * res * ic + half_log_ic[s, j]
                    if n_w:
                        # the censored results given the observed ones but this: their mean
                        # and covariance by a rank-one change
                        for i in range(n_w):
                            u[i] = r1[r, j] * cross[s, j, i] + kr[r, j, i]
                            mean_j[i] = mean_w[i] - u[i] * ic * res
                            j_u[j, i] = u[i]
                        for i in range(n_w):
                            for i2 in range(n_w):
                                V_j[i, i2] = V_s[s, i, i2] + u[i] * u[i2] * ic
                        lmj, rho_j = _censored_mass(n_w, mean_j, V_j, lim, sign, r, j_t[j],
                                                    j_sd[j])
                        rat += lmj - lm
                        j_lm[j], j_rho[j] = lmj, rho_j
                    j_res[j], j_ic[j], j_rat[j] = res, ic, rat
                    top = max(top, rat)
                # the mixture's terms relative to the largest, kept: the reverse pass' weights
                # are these over their sum (no second exponential)
                tot = math.exp(l0[r] - top)
                for i in range(n_w):
                    c_w[i] = math.exp(t_cen[i] - top)
                    tot += c_w[i]
                for j in range(n_j):
                    j_w[j] = math.exp(j_rat[j] - top) if j_rat[j] != -np.inf else 0.0
                    tot += j_w[j]
                lse = top + math.log(tot)
                inv_tot = 1.0 / tot
                ll += lse
            out[r, g] = ll
            if not coef:
                continue
            # ---- reverse pass: the gradient of ll with respect to the intermediates
            cc = c_ch[r, g]
            cs = c_slot[r, g]
            cc[:] = 0.0
            cs[:] = 0.0
            for a in range(k):
                pm_bar[a] = 0.0
            lm_bar = 1.0
            mean_bar[:] = 0.0
            V_bar[:] = 0.0
            if gross:
                for i in range(n_w):
                    pc = c_w[i] * inv_tot
                    lm_bar -= pc
                    if n_w == 2:
                        o = 1 - i
                        tb = pc * _mills(t_w[o], log_ndtr(t_w[o]))
                        mean_bar[o] += tb * sign[r, o] / sd_w[o]
                        V_bar[o, o] -= 0.5 * tb * t_w[o] / (sd_w[o] * sd_w[o])
                for j in range(n_j):
                    if j_rat[j] == -np.inf:
                        continue
                    c = slot_ch[j]
                    lc = L[c]
                    rb = j_w[j] * inv_tot
                    res, ic = j_res[j], j_ic[j]
                    res_bar = rb * res * ic
                    ic_bar = 0.5 * rb * (res * res + 1.0 / ic)
                    if n_w:
                        lm_bar -= rb
                        mj_bar[:] = 0.0
                        Vj_bar[:] = 0.0
                        _censored_mass_bar(n_w, rb, j_lm[j], j_t[j], j_sd[j], j_rho[j], sign,
                                           r, mj_bar, Vj_bar)
                        # mean_j = mean_w - u ic res, V_j = V + ic u u' (Vj_bar[0, 1] the
                        # gradient of the one covariance)
                        for i in range(n_w):
                            ui = j_u[j, i]
                            mean_bar[i] += mj_bar[i]
                            V_bar[i, i] += Vj_bar[i, i]
                            res_bar -= mj_bar[i] * ui * ic
                            ic_bar -= mj_bar[i] * ui * res
                            u_bar[i] = -mj_bar[i] * ic * res + 2.0 * Vj_bar[i, i] * ic * ui
                            ic_bar += Vj_bar[i, i] * ui * ui
                        if n_w == 2:
                            V_bar[0, 1] += Vj_bar[0, 1]
                            u_bar[0] += Vj_bar[0, 1] * ic * j_u[j, 1]
                            u_bar[1] += Vj_bar[0, 1] * ic * j_u[j, 0]
                            ic_bar += Vj_bar[0, 1] * j_u[j, 0] * j_u[j, 1]
                        for i in range(n_w):
                            cs[jj + 2 * j + i] = u_bar[i] * r1[r, j]
                    cs[j] = ic_bar * ic * ic * r1[r, j] * r1[r, j]
                    mc_bar = -r1[r, j] * res_bar
                    cc[c] += mc_bar
                    for a in range(k):
                        pm_bar[a] += mc_bar * lc[a]
            if n_w:
                _censored_mass_bar(n_w, lm_bar, lm, t_w, sd_w, rho, sign, r, mean_bar, V_bar)
                for i in range(n_w):
                    cc[ch[r, i]] += alpha[r, i] * mean_bar[i]
                    for a in range(k):
                        pm_bar[a] += mean_bar[i] * lw_row[i, a]
                c_v[r, g, 0] = V_bar[0, 0]
                c_v[r, g, 1] = V_bar[1, 1]
                c_v[r, g, 2] = V_bar[0, 1]
            # zhat = M^-1 eta and eta' M^-1 eta / 2
            cv = c_vec[r, g]
            for a in range(k):
                v = pm[a]
                for b in range(k):
                    v += m_inv[s, b, a] * pm_bar[b]
                cv[a] = v
                cv[k + a] = 0.5 * eta[a] + pm_bar[a]
                cv[2 * k + a] = eta[a]
            for i in range(n_act):
                c = active[i]
                mc, ac = mu[c, g], amp[c, g]
                lb = 0.0
                for a in range(k):
                    lb += L[c, a] * cv[a]
                cc[c] -= (w[r, c] * mc - s1[r, c] + t1[r, c] * ac) + w[r, c] * lb


@njit(cache=True, nogil=True)
def lab_pullback(kdim, lat_mean, lat_sd, L, own, corr, new_run, reps, sig, ch, alpha, n_w,
                 slot_ch, lw, gross, ct, m_inv_all, c_vec, c_slot, c_v, c_ch,
                 g_mean, g_sd, g_med):  # pragma: no cover
    """The gradient of ``sum(ct * factor)`` with respect to ``lat_mean``, ``lat_sd`` ``(S,
    k)`` and ``log_median`` ``(C,)``, added into ``g_mean``, ``g_sd`` and ``g_med``, from
    :func:`lab_factor`'s gradients per person and grid point (its ``m_inv_all``, ``c_vec``,
    ``c_slot``, ``c_v``, ``c_ch``) at the same parameters: the cotangent contracted with
    them (at each grid point whose value it computed, ``reps``), then per run of people
    sharing ``M^-1`` (``new_run``) and state the chain rule through it, then per state
    through ``S^-1`` and ``S^-1 mu``."""
    k = len(kdim)
    n_s = lat_mean.shape[0]
    n_r, n_g = ct.shape
    n_c = c_ch.shape[2]
    n_j = slot_ch.size if gross else 0
    jj = max(n_j, 1)
    tmp = np.empty((k, k))
    s_inv, s_mu, _ = _state_terms(k, lat_mean, lat_sd, corr)
    s_inv_bar = np.zeros((n_s, k, k))
    s_mu_bar = np.zeros((n_s, k))
    cst_bar = np.zeros(n_s)
    m_bar = np.zeros((n_s, k, k))
    ld_m_bar = np.zeros(n_s)
    lml_bar = np.zeros((n_s, jj))
    cross_bar = np.zeros((n_s, jj, 2))
    V_acc = np.zeros((n_s, 3))
    lw_row = np.zeros((2, k))
    ct_rep = np.empty(n_g)
    r0 = 0
    for r in range(n_r):
        if new_run[r]:
            r0 = r
            m_bar[:] = 0.0
            ld_m_bar[:] = 0.0
            lml_bar[:] = 0.0
            cross_bar[:] = 0.0
            V_acc[:] = 0.0
        # the cotangent of a point that takes an earlier one's value is that point's too
        rep = reps[sig[r]]
        ct_rep[:] = 0.0
        for g in range(n_g):
            ct_rep[rep[g]] += ct[r, g]
        for g in range(n_g):
            gb = ct_rep[g]
            if gb == 0.0 or rep[g] != g:
                continue
            s = own[g]
            cv = c_vec[r, g]
            for a in range(k):
                s_mu_bar[s, a] += gb * cv[a]
                f = gb * cv[k + a]
                for b in range(k):
                    m_bar[s, a, b] += f * cv[2 * k + b]
            ld_m_bar[s] -= 0.5 * gb
            cst_bar[s] += gb
            if gross:
                cs = c_slot[r, g]
                for j in range(n_j):
                    lml_bar[s, j] += gb * cs[j]
                    for i in range(n_w):
                        cross_bar[s, j, i] += gb * cs[jj + 2 * j + i]
            if n_w:
                for i in range(3):
                    V_acc[s, i] += gb * c_v[r, g, i]
            cc = c_ch[r, g]
            for c in range(n_c):
                g_med[c] += gb * cc[c]
        if r + 1 < n_r and not new_run[r + 1]:
            continue     # the run of people sharing M^-1 goes on: one chain rule for them all
        for i in range(n_w):
            for a in range(k):
                lw_row[i, a] = alpha[r, i] * L[ch[r, i], a]
        m_inv = m_inv_all[r0]
        for s in range(n_s):
            for i in range(n_w):
                _add_outer(k, m_bar[s], V_acc[s, i], lw_row[i], lw_row[i])
            if n_w == 2:
                _add_outer(k, m_bar[s], V_acc[s, 2], lw_row[0], lw_row[1])
            for j in range(n_j):
                if lw[r, j] == -np.inf:
                    continue
                lc = L[slot_ch[j]]
                _add_outer(k, m_bar[s], lml_bar[s, j], lc, lc)
                for i in range(n_w):
                    _add_outer(k, m_bar[s], cross_bar[s, j, i], lw_row[i], lc)
            # M = S^-1 + A_r: the person's gradient with respect to M, added to S^-1's
            _inverse_pullback(k, m_inv[s], m_bar[s], s_inv_bar[s], tmp)
            for a in range(k):
                for b in range(k):
                    s_inv_bar[s, a, b] += ld_m_bar[s] * m_inv[s, a, b]
    cov_bar = np.empty((k, k))
    tot_bar = np.empty(k)
    for s in range(n_s):
        # cst = -mu'(S^-1 mu) / 2 - log|S| / 2, and S^-1 mu
        for a in range(k):
            tot_bar[a] = s_mu_bar[s, a] - 0.5 * cst_bar[s] * lat_mean[s, a]
        for a in range(k):
            v = -0.5 * cst_bar[s] * s_mu[s, a]
            for b in range(k):
                v += s_inv[s, b, a] * tot_bar[b]
            g_mean[s, a] += v
        _add_outer(k, s_inv_bar[s], 1.0, tot_bar, lat_mean[s])
        cov_bar[:] = 0.0
        _inverse_pullback(k, s_inv[s], s_inv_bar[s], cov_bar, tmp)
        for a in range(k):
            for b in range(k):
                cov_bar[a, b] -= 0.5 * cst_bar[s] * s_inv[s, a, b]
        # cov = corr * sd sd'
        for a in range(k):
            v = 0.0
            for b in range(k):
                v += (cov_bar[a, b] * corr[s, a, b] + cov_bar[b, a] * corr[s, b, a]) * lat_sd[s, b]
            g_sd[s, a] += v


@njit(cache=True, nogil=True)
def rows_sum(x, order, starts, out):  # pragma: no cover
    """``out[u] = sum of x[order[t]]`` for ``t`` from ``starts[u]`` to ``starts[u + 1]``:
    rows of ``x (G, m)`` summed per group (:class:`~neb_bayes.inference.lab_block.GridSums`),
    each in the order given."""
    m = x.shape[1]
    for u in range(starts.size - 1):
        o = out[u]
        for b in range(m):
            o[b] = 0.0
        for t in range(starts[u], starts[u + 1]):
            row = x[order[t]]
            for b in range(m):
                o[b] += row[b]


@njit(cache=True, nogil=True, fastmath=FMA)
def _spd_inverse_lanes(k, m, inv, ld, lo, li, diag, log_diag, work, expo):  # pragma: no cover
    """:func:`~neb_bayes.inference.kernels.spd_inverse_k` of ``n`` matrices at once, in
    lanes (``m``, ``inv`` ``(k, k, n)``: the matrices last in memory), so every step
    vectorises: the inverses into ``inv``, their log-determinants into ``ld (n,)``, the
    logarithms of the Cholesky factors' diagonals by one vectorised ``log_into``.  ``lo``,
    ``li`` ``(k, k, n)``, ``diag``, ``log_diag``, ``work``, ``expo`` ``(k n,)`` are scratch."""
    n = m.shape[2]
    for j in range(k):
        for s in range(n):
            v = m[j, j, s]
            for t in range(j):
                v -= lo[j, t, s] * lo[j, t, s]
            d = math.sqrt(v)
            lo[j, j, s] = d
            diag[j * n + s] = d
        for i in range(j + 1, k):
            for s in range(n):
                v = m[i, j, s]
                for t in range(j):
                    v -= lo[i, t, s] * lo[j, t, s]
                lo[i, j, s] = v / lo[j, j, s]
    log_into(diag[:k * n], log_diag[:k * n], work[:k * n], expo[:k * n])
    for s in range(n):
        ld[s] = 0.0
    for j in range(k):
        for s in range(n):
            ld[s] += 2.0 * log_diag[j * n + s]
    for i in range(k):
        for s in range(n):
            li[i, i, s] = 1.0 / lo[i, i, s]
        for j in range(i):
            for s in range(n):
                v = 0.0
                for t in range(j, i):
                    v += lo[i, t, s] * li[t, j, s]
                li[i, j, s] = -v * li[i, i, s]
    for i in range(k):
        for j in range(i + 1):
            for s in range(n):
                v = 0.0
                for t in range(i, k):
                    v += li[t, i, s] * li[t, j, s]
                inv[i, j, s] = v
                inv[j, i, s] = v


@njit(cache=True, nogil=True, fastmath=FMA)
def lab_factor_observed(kdim, lat_mean, lat_sd, log_median, L, effect, amp, own, corr, A,
                        new_run, w, s1, s2, t1, t2, t3, ld, slot_ch, ry, r1, rd, rjj, lw, l0,
                        gross, out, m_inv_all, c_vec, c_slot, c_ch):  # pragma: no cover
    """:func:`lab_factor` for a part without censored results (most people), its grid points
    in lanes: per person, each step is a loop over every grid point, which vectorises (the
    scalar kernel's loops run over a point's few latents and results).  The same value and
    gradients, with every point computed (the scalar kernel copies a point that the person's
    results cannot tell from an earlier one: the same numbers, and the pullback reads the
    gradients of the first of them only) and the mixture's exponentials and logarithms by
    :func:`~neb_bayes.inference.draws_kernels.exp_into` and ``log_into`` (within 1 ulp of
    ``math``'s)."""
    k = len(kdim)
    n_s = lat_mean.shape[0]
    n_c, n_g = effect.shape
    n_r = A.shape[0]
    n_j = slot_ch.size if gross else 0
    coef = c_vec.shape[0] > 0
    s_inv, s_mu, cst = _state_terms(k, lat_mean, lat_sd, corr)
    mu = np.empty((n_c, n_g))
    for c in range(n_c):
        for g in range(n_g):
            mu[c, g] = log_median[c] + effect[c, g]
    # per grid point: its own state's terms, gathered once
    smu_g = np.empty((k, n_g))
    base_g = np.empty(n_g)
    for g in range(n_g):
        for a in range(k):
            smu_g[a, g] = s_mu[own[g], a]
    m_inv = np.empty((n_s, k, k))
    ld_m = np.empty(n_s)
    # per state, in lanes (the states last): S^-1, M, M^-1 and the inverse's scratch
    s_inv_s = np.empty((k, k, n_s))
    for s in range(n_s):
        for a in range(k):
            for b in range(k):
                s_inv_s[a, b, s] = s_inv[s, a, b]
    mm_s, minv_s, lo_s, li_s = (np.empty((k, k, n_s)), np.empty((k, k, n_s)),
                                np.empty((k, k, n_s)), np.empty((k, k, n_s)))
    minv_g = np.empty((k, k, n_g))      # M^-1 of each point's own state (per run of people)
    ic_g = np.empty((max(n_j, 1), n_g))
    hlic_g = np.empty((max(n_j, 1), n_g))
    active = np.empty(n_c, dtype=np.int64)
    filled = np.empty(max(n_j, 1), dtype=np.int64)
    q = np.empty(n_g)
    bv = np.empty((k, n_g))
    pm = np.empty((k, n_g))
    quad = np.empty(n_g)
    top = np.empty(n_g)
    res = np.empty((max(n_j, 1), n_g))
    # the mixture's log terms (row 0 no gross error, then each filled slot), their
    # exponentials, scratch
    lt = np.empty((max(n_j, 1) + 1, n_g))
    et = np.empty((max(n_j, 1) + 1, n_g))
    work = np.empty(max((max(n_j, 1) + 1) * n_g, max(n_j, k) * n_s))
    # the vectorised logarithms' values, results and scratch (the precisions' Cholesky
    # diagonals, the slots' variances per state, the mixture's sums: one after the other)
    span = max(n_g, max(n_j, k) * n_s)
    sv, lsv, expo = np.empty(span), np.empty(span), np.empty(span)
    tot = np.empty(n_g)
    log_tot = np.empty(n_g)
    pm_bar = np.empty((k, n_g))
    cvl = np.empty((k, n_g))
    r0 = 0
    for r in range(n_r):
        fresh = new_run[r]
        if fresh:
            r0 = r
        if coef:
            m_inv = m_inv_all[r0]
        if fresh:
            # M = S^-1 + A per state, inverted in lanes over the states
            for a in range(k):
                for b in range(k):
                    arb = A[r, a, b]
                    for s in range(n_s):
                        mm_s[a, b, s] = s_inv_s[a, b, s] + arb
            _spd_inverse_lanes(k, mm_s, minv_s, ld_m, lo_s, li_s, sv, lsv, work, expo)
            if coef:
                for s in range(n_s):
                    for a in range(k):
                        for b in range(k):
                            m_inv[s, a, b] = minv_s[a, b, s]
            for g in range(n_g):
                s = own[g]
                base_g[g] = cst[s] - 0.5 * ld_m[s]
                for a in range(k):
                    for b in range(k):
                        minv_g[a, b, g] = minv_s[a, b, s]
        n_act, s2_sum, ld_sum = _active_channels(r, w, s1, s2, t1, t2, t3, ld, active)
        n_f = 0
        for j in range(n_j):
            if lw[r, j] != -np.inf:
                filled[n_f] = j
                n_f += 1
        if fresh and n_f:
            # each filled slot's conditional variance per state, and their logarithms in one
            # vectorised pass (a logarithm per slot and state was most of a person's time
            # where the grid is small)
            for i in range(n_f):
                j = filled[i]
                lc = L[slot_ch[j]]
                rjj_j, r1_2 = rjj[r, j], r1[r, j] * r1[r, j]
                for s in range(n_s):
                    v = 0.0
                    for a in range(k):
                        for b in range(k):
                            v += lc[a] * lc[b] * minv_s[a, b, s]
                    sv[i * n_s + s] = rjj_j - r1_2 * v
            m = n_f * n_s
            log_into(sv[:m], lsv[:m], work[:m], expo[:m])
            for i in range(n_f):
                j = filled[i]
                for g in range(n_g):
                    t = i * n_s + own[g]
                    ic_g[j, g] = 1.0 / sv[t]
                    hlic_g[j, g] = -0.5 * lsv[t]
        # the results' quadratic form and the completed square, every point at once
        for g in range(n_g):
            q[g] = s2_sum
        for a in range(k):
            for g in range(n_g):
                bv[a, g] = 0.0
        for i in range(n_act):
            c = active[i]
            wc, sc, t1c, t2c, t3c = w[r, c], s1[r, c], t1[r, c], t2[r, c], t3[r, c]
            mrow, arow = mu[c], amp[c]
            for g in range(n_g):
                mc, ac = mrow[g], arow[g]
                q[g] += (wc * mc * mc - 2.0 * sc * mc + t2c * ac * ac - 2.0 * t3c * ac
                         + 2.0 * t1c * mc * ac)
            for a in range(k):
                la = L[c, a]
                for g in range(n_g):
                    bv[a, g] += (sc - wc * mrow[g] - t1c * arow[g]) * la
        for a in range(k):
            for g in range(n_g):
                bv[a, g] += smu_g[a, g]          # eta
        for g in range(n_g):
            quad[g] = 0.0
        for a in range(k):
            for g in range(n_g):
                pm[a, g] = 0.0
            for b in range(k):
                for g in range(n_g):
                    pm[a, g] += minv_g[a, b, g] * bv[b, g]
            for g in range(n_g):
                quad[g] += bv[a, g] * pm[a, g]
        ro = out[r]
        for g in range(n_g):
            ro[g] = -0.5 * q[g] - 0.5 * ld_sum + base_g[g] + 0.5 * quad[g]
        if gross:
            l0r = l0[r]
            for g in range(n_g):
                top[g] = l0r
            for i in range(n_f):
                j = filled[i]
                c = slot_ch[j]
                ryj, r1j, rdj, lwj = ry[r, j], r1[r, j], rd[r, j], lw[r, j] + 0.5 * LOG_2PI
                mrow, arow = mu[c], amp[c]
                rs, lrow = res[j], lt[i + 1]
                for g in range(n_g):
                    mc = mrow[g]
                    for a in range(k):
                        mc += L[c, a] * pm[a, g]
                    e = ryj - r1j * mc - rdj * arow[g]
                    rs[g] = e
                    v = lwj + 0.5 * e * e * ic_g[j, g] + hlic_g[j, g]
                    lrow[g] = v
                    top[g] = max(top[g], v)
            for g in range(n_g):
                lt[0, g] = l0r - top[g]
            for i in range(n_f):
                for g in range(n_g):
                    lt[i + 1, g] -= top[g]
            m = (n_f + 1) * n_g
            exp_into(lt.reshape(-1)[:m], et.reshape(-1)[:m], work[:m])
            for g in range(n_g):
                tot[g] = et[0, g]
            for i in range(n_f):
                for g in range(n_g):
                    tot[g] += et[i + 1, g]
            log_into(tot, log_tot, work[:n_g], expo[:n_g])
            for g in range(n_g):
                ro[g] += top[g] + log_tot[g]
                tot[g] = 1.0 / tot[g]
        if not coef:
            continue
        # ---- the gradients with respect to the intermediates (as lab_factor's)
        cs = c_slot[r]
        cc = c_ch[r]
        cs[:] = 0.0
        cc[:] = 0.0
        for a in range(k):
            for g in range(n_g):
                pm_bar[a, g] = 0.0
        for i in range(n_f):
            j = filled[i]
            c = slot_ch[j]
            r1j = r1[r, j]
            rs, ew = res[j], et[i + 1]
            for g in range(n_g):
                rb = ew[g] * tot[g]
                e, ic = rs[g], ic_g[j, g]
                res_bar = rb * e * ic
                ic_bar = 0.5 * rb * (e * e + 1.0 / ic)
                cs[g, j] = ic_bar * ic * ic * r1j * r1j
                mc_bar = -r1j * res_bar
                cc[g, c] += mc_bar
                for a in range(k):
                    pm_bar[a, g] += mc_bar * L[c, a]
        cv = c_vec[r]
        for a in range(k):
            for g in range(n_g):
                cvl[a, g] = pm[a, g]
            for b in range(k):
                for g in range(n_g):
                    cvl[a, g] += minv_g[b, a, g] * pm_bar[b, g]
            for g in range(n_g):
                cv[g, a] = cvl[a, g]
                cv[g, k + a] = 0.5 * bv[a, g] + pm_bar[a, g]
                cv[g, 2 * k + a] = bv[a, g]
        for i in range(n_act):
            c = active[i]
            wc, sc, t1c = w[r, c], s1[r, c], t1[r, c]
            mrow, arow = mu[c], amp[c]
            for g in range(n_g):
                lb = 0.0
                for a in range(k):
                    lb += L[c, a] * cvl[a, g]
                cc[g, c] -= (wc * mrow[g] - sc + t1c * arow[g]) + wc * lb
