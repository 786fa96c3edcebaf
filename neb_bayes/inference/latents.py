"""Posterior of the continuous latent axis quantities (gland output, central drive, ...).

Given the discrete states, a latent's posterior is Gaussian (observed results) updated by the
censored results' exact moments, all of an axis' together: the first two moments of the
multivariate normal truncated to their region (:mod:`~neb_bayes.inference.truncated_normal`),
so the latents' mean and covariance are exact; an interval reads each heavy component's
exact, skewed distribution given them (a latent below a limit, say), the others as Gaussians
with their exact moments.  Over states (and over which result, if any, is the axis' gross
error: that result is then left out) it is a mixture, weighted by the exact posterior; its
mean and equal-tailed interval are reported on the display scale (fold change from a healthy
person's typical level).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from neb_bayes.evidence import Block, Evidence
from neb_bayes.inference.exact import (
    ExactPosterior,
    block_moments,
    censored_log_mass,
    gross_mixture,
)
from neb_bayes.inference.truncated_normal import truncated_moments
from neb_bayes.model.compiled import CompiledModel


def ndtr(x) -> np.ndarray:
    """The standard normal CDF, ``erfc(-x / sqrt 2) / 2`` by the standard library's ``erfc``
    (within 2e-13 relative of ``scipy.special.ndtr`` down to -30; ~65 ns a value, the ~5,000-9,000
    values of a report's latent summaries ~0.5 ms): a report whose results are all observed
    then imports no scipy.special (~0.2 s of a one-shot `neb-bayes report`)."""
    x = np.multiply(x, -1.0 / math.sqrt(2.0))
    return 0.5 * np.fromiter(map(math.erfc, x.ravel().tolist()), float,
                             count=x.size).reshape(x.shape)


#: gross-error components with less posterior weight than this are left out of the summaries
MIN_COMPONENT_WEIGHT = 1e-9
#: components (grid points, gross-error configurations) given censored results whose
#: weight is at least this share of the whole get their exact, skewed distribution in an
#: interval (:func:`_truncated_cdf`); lighter ones are Gaussian with their exact moments
SKEW_MIN_WEIGHT = 1e-3
#: at most this many censored results on an axis for the skewed reading (its CDF then needs
#: the bivariate or trivariate CDF; with more, Genz's rules took a minute a report): beyond,
#: the components are Gaussians with their exact moments
MAX_SKEWED_CENSORED = 2


class Truncation(NamedTuple):
    """The latents' and the censored results' joint Gaussian given the observed results, on
    the block's grid (``mean (..., K)``, ``cov (..., K, K)``; ``mu_w (..., m)``, ``c_ww (...,
    m, m)``, their covariance ``czw (..., K, m)``), and the region the censored results lie
    in (``lim``, ``sign`` ``(m,)``: -1 below the limit, +1 above)."""

    mean: np.ndarray
    cov: np.ndarray
    mu_w: np.ndarray
    c_ww: np.ndarray
    czw: np.ndarray
    lim: np.ndarray
    sign: np.ndarray

    def flat(self) -> Truncation:
        """The same with the grid flattened to one dimension of components."""
        k, m = self.mean.shape[-1], self.lim.size
        grid = self.mean.shape[:-1]
        return Truncation(
            self.mean.reshape(-1, k), np.broadcast_to(self.cov, grid + (k, k)).reshape(-1, k, k),
            np.broadcast_to(self.mu_w, grid + (m,)).reshape(-1, m),
            np.broadcast_to(self.c_ww, grid + (m, m)).reshape(-1, m, m),
            np.broadcast_to(self.czw, grid + (k, m)).reshape(-1, k, m), self.lim, self.sign)


def _truncated_cdf(t: Truncation, rows: np.ndarray, k: int):
    """The CDF of latent ``k`` given the censored results beyond their limits, for the
    components ``rows`` of a flat :class:`Truncation`: ``P(z_k <= x, w in region) / P(w in
    region)``, one more dimension of the censored results' mass
    (:func:`~neb_bayes.inference.exact.censored_log_mass`).  Returns ``x -> (rows, x)``."""
    m = t.lim.size
    mu_z, mu_w = t.mean[rows, k], t.mu_w[rows]
    cov = np.empty((rows.size, m + 1, m + 1))
    cov[:, 0, 0] = t.cov[rows, k, k]
    cov[:, 0, 1:] = cov[:, 1:, 0] = t.czw[rows, k]
    cov[:, 1:, 1:] = t.c_ww[rows]
    log_alpha = censored_log_mass(mu_w, t.c_ww[rows], t.sign, t.lim)
    sign = np.concatenate([[-1.0], t.sign])
    lim = np.concatenate([[0.0], t.lim])

    def cdf(x: np.ndarray) -> np.ndarray:
        mu = np.empty((rows.size, x.size, m + 1))
        mu[..., 0] = mu_z[:, None] - x[None, :]
        mu[..., 1:] = mu_w[:, None, :]
        lm = censored_log_mass(mu, cov[:, None], sign, lim)
        return np.minimum(np.exp(lm - log_alpha[:, None]), 1.0)

    return cdf


def _truncated_update(mean, cov, mu_w, c_ww, cov_zw, lim, sign):
    """Moments of z after learning that every censored result ``w`` lies beyond its limit
    (``sign`` -1 below, +1 above), from ``z``'s and ``w``'s joint Gaussian (``mean``, ``cov``;
    ``mu_w``, ``c_ww``; ``cov_zw (..., K, m)``): ``z`` is linear in ``w`` given the rest, so
    its moments follow from ``w``'s truncated to the region
    (:func:`~neb_bayes.inference.truncated_normal.truncated_moments`)."""
    e_w, v_w = truncated_moments(mu_w, c_ww, sign, lim)
    b = np.swapaxes(np.linalg.solve(c_ww, np.swapaxes(cov_zw, -1, -2)), -1, -2)   # (..., K, m)
    new_mean = mean + np.matmul(b, (e_w - mu_w)[..., None])[..., 0]
    new_cov = (cov - np.matmul(b, np.swapaxes(cov_zw, -1, -2))
               + np.matmul(np.matmul(b, v_w), np.swapaxes(b, -1, -2)))
    return new_mean, new_cov


#: points of the coarse grid that brackets each quantile, and of the fine grid within the
#: bracket (the quantile then interpolated between fine points: 1/1600 of the +-6 sd span)
QUANTILE_GRID = 41
_UNIT = np.linspace(0.0, 1.0, QUANTILE_GRID)


def _mixture_summary(w, m, s, prob, skewed=None):
    """Mean and equal-tailed interval of a 1-D mixture: Gaussian components, and with
    ``skewed = (mask, cdf)`` the components ``mask`` by their own CDF instead (``cdf(x)``:
    ``(mask.sum(), x.size)``; their means ``m`` and spreads ``s`` are their exact moments).

    Each quantile is bracketed on a coarse grid over the components' +-6 sd span, then
    interpolated on a fine grid within its bracket (:data:`QUANTILE_GRID` points each)."""
    w = w / w.sum()
    mean = float(np.sum(w * m))
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    keep = w > 1e-9
    lo, hi = (m[keep] - 6 * s[keep]).min(), (m[keep] + 6 * s[keep]).max()
    w_sk, cdf_sk = None, None
    if skewed is not None:
        mask, cdf_sk = skewed
        w_sk, m_sk, s_sk = w[mask], m[mask], np.maximum(s[mask], 1e-9)
        keep = keep & ~mask
    w, m, s = w[keep], m[keep], np.maximum(s[keep], 1e-9)
    # identical components (states of other axes that do not move this latent, gross-error
    # configurations that leave it alone) merged: the same mixture, a fraction of the terms
    # (one complex key per component: a 1-d unique is ~10x faster than rows of a 2-d array)
    comps, which = np.unique(m + 1j * s, return_inverse=True)
    if comps.size < m.size:
        w = np.bincount(which.reshape(-1), weights=w, minlength=comps.size)
        m, s = comps.real, comps.imag

    def cdf(x, exact=True):
        out = (w[:, None] * ndtr((x[None, :] - m[:, None]) / s[:, None])).sum(0)
        if cdf_sk is not None:
            out = out + (w_sk[:, None] * (cdf_sk(x) if exact else ndtr(
                (x[None, :] - m_sk[:, None]) / s_sk[:, None]))).sum(0)
        return out

    coarse = lo + (hi - lo) * _UNIT
    q = np.array([lo_q, hi_q])
    if cdf_sk is not None:
        # the skewed components' CDFs cost more: brackets from their Gaussians (their exact
        # moments), the exact mixture on a window of cells around each
        at = np.searchsorted(cdf(coarse, exact=False), q)
        a = np.clip(at - 3, 0, QUANTILE_GRID - 1)
        b = np.clip(at + 2, 0, QUANTILE_GRID - 1)
        fine = coarse[a][:, None] + (coarse[b] - coarse[a])[:, None] * _UNIT[None, :]
        values = cdf(fine.reshape(-1)).reshape(fine.shape)
        if np.all((values[:, 0] <= q) & (values[:, -1] >= q)):
            return (mean, float(np.interp(lo_q, values[0], fine[0])),
                    float(np.interp(hi_q, values[1], fine[1])))
    at = np.searchsorted(cdf(coarse), q)
    at = np.minimum(np.maximum(at, 1), QUANTILE_GRID - 1)
    fine = coarse[at - 1][:, None] + (coarse[at] - coarse[at - 1])[:, None] * _UNIT   # (2, n)
    values = cdf(fine.reshape(-1)).reshape(fine.shape)
    return (mean, float(np.interp(lo_q, values[0], fine[0])),
            float(np.interp(hi_q, values[1], fine[1])))


def latent_summaries(
    model: CompiledModel, ev: Evidence, post: ExactPosterior, prob: float
) -> list[dict]:
    """Posterior mean and interval of every latent of every axis, on the log and display scale."""
    out = []
    by_axis = {b.axis: b for b in ev.blocks}
    nd = len(model.axes)
    for ai, ax in enumerate(model.axes):
        if not ax.latents:
            continue
        block = by_axis.get(ai)
        lat_mean, lat_cov = ev.latent_params(model, ai)
        if block is None:
            w = post.marginals[ai]
            means, covs = lat_mean, lat_cov
        else:
            deps = block.deps
            w = post.joint.sum(axis=tuple(j for j in range(nd) if j not in deps))
            every = np.arange(block.n)
            means, covs, loo, trunc = _conditioned(model, block, every, lat_mean, lat_cov,
                                                   w.shape, leave_one_out=True,
                                                   with_truncation=True)
            parts, resp = [(means, covs, trunc)], [np.ones(w.shape)]
            ratio = post.factors["gross_ratio"].get(ai)
            if ratio is not None:
                # one mixture component per gross-error configuration (none, or result j),
                # weighted by its responsibility within each state
                eps = model.gross_error_rate
                mix = gross_mixture(ratio, eps)
                resp = [np.exp(math.log1p(-block.n * eps) - mix)]
                for j in range(block.n):
                    r = np.exp(math.log(eps) + ratio[j] - mix)
                    if float((w * r).sum()) < MIN_COMPONENT_WEIGHT:
                        continue        # cannot move a summary reported to a few digits
                    resp.append(r)
                    if block.n == 1:
                        parts.append((*_unconditioned(ax, lat_mean, lat_cov, block, w.shape),
                                      None))
                    elif loo is not None:
                        parts.append((*loo(j), None))
                    else:
                        parts.append(_conditioned(model, block, np.delete(every, j), lat_mean,
                                                  lat_cov, w.shape, with_truncation=True))
            k_lat = len(ax.latents)
            w = np.concatenate([(w * r).reshape(-1) for r in resp])
            means = np.concatenate([np.broadcast_to(m, r.shape + (k_lat,)).reshape(-1, k_lat)
                                    for (m, _, _), r in zip(parts, resp, strict=True)])
            covs = np.concatenate([np.broadcast_to(c, r.shape + (k_lat, k_lat)).reshape(
                -1, k_lat, k_lat) for (_, c, _), r in zip(parts, resp, strict=True)])
            # the components given censored results: where and with which truncation
            starts = np.cumsum([0] + [r.size for r in resp])
            skew_parts = [(starts[i], t.flat()) for i, (_, _, t) in enumerate(parts)
                          if t is not None]
        for k, lat in enumerate(ax.latents):
            w_flat = np.asarray(w).reshape(-1)
            skewed = None
            if block is not None and skew_parts:
                skewed = _skewed_components(w_flat, skew_parts, k)
            mean, lo, hi = _mixture_summary(
                w_flat, means[:, k], np.sqrt(np.maximum(covs[:, k, k], 0)), prob, skewed)
            info = ax.labels.get(lat, {}) or {}
            out.append({
                "axis": ax.name,
                "latent": lat,
                "label": info.get("label", lat),
                "display": info.get("display", ""),
                "log_mean": mean,
                "log_interval": [lo, hi],
                "fold_change": float(np.exp(mean)),
                "fold_change_interval": [float(np.exp(lo)), float(np.exp(hi))],
                "measured": block is not None,
            })
    return out


def _skewed_components(w: np.ndarray, skew_parts, k: int):
    """The components of latent ``k`` whose exact distribution given censored results goes
    into its interval: weight at least :data:`SKEW_MIN_WEIGHT` of the whole and a latent the
    censored results inform.  Parts with the same censored results (a gross error among
    the observed ones) share one evaluation of their CDFs.  Returns ``(mask, cdf)`` for
    :func:`_mixture_summary`, or ``None``."""
    mask = np.zeros(w.size, bool)
    floor = SKEW_MIN_WEIGHT * w.sum()
    groups: dict[bytes, list] = {}
    for start, t in skew_parts:
        if t.lim.size > MAX_SKEWED_CENSORED:
            continue
        n = t.mean.shape[0]
        informed = np.any(t.czw[:, k, :] != 0.0, axis=-1)
        rows = np.flatnonzero((w[start:start + n] >= floor) & informed)
        if rows.size:
            groups.setdefault(t.lim.tobytes() + t.sign.tobytes(), []).append((start, t, rows))
    if not groups:
        return None
    order, cdfs = [], []
    for members in groups.values():
        t0 = members[0][1]
        joined = Truncation(*(np.concatenate([getattr(t, f)[rows] for _, t, rows in members])
                              for f in ("mean", "cov", "mu_w", "c_ww", "czw")),
                            t0.lim, t0.sign)
        order.append(np.concatenate([start + rows for start, _, rows in members]))
        cdfs.append(_truncated_cdf(joined, np.arange(joined.mean.shape[0]), k))
    at = np.concatenate(order)
    mask[at] = True
    # the mixture reads the masked components in index order
    back = np.argsort(at, kind="stable")
    return mask, lambda x: np.concatenate([f(x) for f in cdfs])[back]


def _own_shape(block: Block, ai: int, n_states: int, grid: tuple[int, ...]) -> list[int]:
    shape = [1] * len(grid)
    shape[block.deps.index(ai)] = n_states
    return shape


def _unconditioned(ax, lat_mean, lat_cov, block: Block, grid: tuple[int, ...]):
    """The latents' prior per state, on the block's grid (no result to condition on)."""
    shape = _own_shape(block, block.axis, ax.n_states, grid)
    k = len(ax.latents)
    return (np.broadcast_to(lat_mean.reshape(shape + [k]), grid + (k,)),
            np.broadcast_to(lat_cov.reshape(shape + [k, k]), grid + (k, k)))


def _conditioned(model: CompiledModel, block: Block, keep: np.ndarray, lat_mean, lat_cov,
                 grid: tuple[int, ...], leave_one_out: bool = False,
                 with_truncation: bool = False):
    """Posterior mean and covariance of the axis' latents given the block's results ``keep``,
    on the block's dependency grid (censored results by their exact truncated moments).

    With ``leave_one_out`` also a function of ``j`` giving them without result ``j`` (where
    every result is observed, by a rank-one change: with ``P = C^-1`` and the gain ``a =
    Cov(z, y) P``, the mean moves by ``-a_j (P r)_j / P_jj`` and the covariance by ``a_j
    a_j' / P_jj``), or ``None`` (censored results: the caller conditions on the others
    anew).  With ``with_truncation`` also the :class:`Truncation` the censored results
    impose (``None`` without them), for their latents' exact distribution."""
    ax = model.axes[block.axis]
    mom = block_moments(model, block, keep, latent=(lat_mean, lat_cov))
    y, censor = block.y[keep], block.censor[keep]
    shape = _own_shape(block, block.axis, ax.n_states, grid)
    k = len(ax.latents)
    lat_m = np.broadcast_to(lat_mean.reshape(shape + [k]), grid + (k,))
    lat_c = lat_cov.reshape(shape + [k, k])
    L = mom.loadings
    cov_zy = np.matmul(lat_c, L.T)            # (..., K, n)
    obs = censor == 0
    means = lat_m.copy()
    covs = np.broadcast_to(lat_c, grid + lat_c.shape[-2:]).copy()
    loo = None
    if obs.any():
        coo = mom.cov[..., obs, :][..., :, obs]
        prec = np.linalg.inv(coo)
        gain = np.matmul(cov_zy[..., obs], prec)                 # (..., K, no)
        r = y[obs] - mom.mean[..., obs]
        means = means + np.matmul(gain, r[..., None])[..., 0]
        covs = covs - np.matmul(gain, np.swapaxes(cov_zy[..., obs], -1, -2))
        if leave_one_out and obs.all():
            pr = np.matmul(prec, r[..., None])[..., 0]               # P r
            pjj = np.diagonal(prec, axis1=-2, axis2=-1)

            def loo(j: int, means=means, covs=covs):
                aj = gain[..., :, j]
                return (means - aj * (pr[..., j] / pjj[..., j])[..., None],
                        covs + aj[..., :, None] * aj[..., None, :]
                        / pjj[..., j][..., None, None])
    # the censored results together, given the observed ones
    cen = np.flatnonzero(~obs)
    trunc = None
    if cen.size:
        mu_w = mom.mean[..., cen]
        c_ww = np.broadcast_to(mom.cov[..., cen, :][..., :, cen], grid + (cen.size, cen.size))
        czw = cov_zy[..., cen]
        if obs.any():
            g = np.matmul(mom.cov[..., cen, :][..., :, obs], prec)            # (..., m, no)
            mu_w = mu_w + np.matmul(g, r[..., None])[..., 0]
            c_ww = c_ww - np.matmul(g, mom.cov[..., obs, :][..., :, cen])
            czw = czw - np.matmul(cov_zy[..., obs], np.swapaxes(g, -1, -2))
        trunc = Truncation(means, covs, mu_w, c_ww, czw, y[cen], censor[cen].astype(float))
        means, covs = _truncated_update(means, covs, mu_w, c_ww, czw, y[cen], censor[cen])
    out = (means, covs, loo) if leave_one_out else (means, covs)
    return out + (trunc,) if with_truncation else out
