"""Posterior of the continuous latent axis quantities (gland output, central drive, ...).

Given the discrete states, a latent's posterior is Gaussian (observed results) updated by the
exact truncated-normal moments of each censored result in turn (exact for one censored result
per axis, assumed-density for several).  With the gross-error component (at most one wrong
result per axis, :func:`neb_bayes.inference.exact.block_loglik`) it is, given the states, a
mixture over which result, if any, is wrong (the latents then given the others).  Over
states it is a mixture, weighted by the exact state posterior; its mean and equal-tailed
interval are reported on the display scale (fold change from a healthy person's typical
level).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from neb_bayes.evidence import Block, Evidence
from neb_bayes.inference.exact import ExactPosterior, block_loglik, block_moments
from neb_bayes.model.compiled import CompiledModel


def _truncated_update(mean, cov, mu_w, var_w, cov_zw, lim, sign):
    """Moments of z after learning w < lim (sign -1) or w > lim (sign +1)."""
    sd = np.sqrt(var_w)
    alpha = (lim - mu_w) / sd
    phi = np.exp(-0.5 * alpha**2) / np.sqrt(2 * np.pi)
    if sign < 0:
        lam = phi / np.maximum(ndtr(alpha), 1e-300)
        e_w = mu_w - sd * lam
        v_w = var_w * (1 - alpha * lam - lam**2)
    else:
        lam = phi / np.maximum(ndtr(-alpha), 1e-300)
        e_w = mu_w + sd * lam
        v_w = var_w * (1 + alpha * lam - lam**2)
    b = cov_zw / var_w[..., None]
    new_mean = mean + b * (e_w - mu_w)[..., None]
    new_cov = cov - np.einsum("...i,...j->...ij", b, cov_zw) + np.einsum(
        "...i,...j->...ij", b, b) * v_w[..., None, None]
    return new_mean, new_cov


def _mixture_summary(w, m, s, prob):
    """Mean and equal-tailed interval of a 1-D Gaussian mixture."""
    w = w / w.sum()
    mean = float(np.sum(w * m))
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    keep = w > 1e-9
    w, m, s = w[keep], m[keep], np.maximum(s[keep], 1e-9)
    grid = np.linspace((m - 6 * s).min(), (m + 6 * s).max(), 401)
    cdf = (w[:, None] * ndtr((grid[None, :] - m[:, None]) / s[:, None])).sum(0)
    return mean, float(np.interp(lo_q, cdf, grid)), float(np.interp(hi_q, cdf, grid))


def _given_results(model: CompiledModel, block: Block, keep: np.ndarray, latent, grid):
    """Mean and covariance of the latents given the block's results ``keep`` and the states of
    its dependency axes (``grid + (K,)``, ``grid + (K, K)``)."""
    lat_mean, lat_cov = latent
    mom = block_moments(model, block, keep, latent=latent)
    y, censor = block.y[keep], block.censor[keep]
    own = mom.own_pos
    shape = [1] * len(grid)
    shape[own] = lat_mean.shape[0]
    k = lat_mean.shape[-1]
    lat_m = np.broadcast_to(lat_mean.reshape(shape + [-1]), grid + (k,))
    lat_c = lat_cov.reshape(shape + [k] * 2)
    L = mom.loadings
    cov_zy = np.matmul(lat_c, L.T)            # (..., K, n)
    obs = censor == 0
    means = lat_m.copy()
    covs = np.broadcast_to(lat_c, grid + lat_c.shape[-2:]).copy()
    if obs.any():
        coo = mom.cov[..., obs, :][..., :, obs]
        gain = np.matmul(cov_zy[..., obs], np.linalg.inv(coo))  # (..., K, no)
        r = y[obs] - mom.mean[..., obs]
        means = means + np.matmul(gain, r[..., None])[..., 0]
        covs = covs - np.matmul(gain, np.swapaxes(cov_zy[..., obs], -1, -2))
    # censored results, one at a time, conditioned on the observed ones
    for ci in np.flatnonzero(~obs):
        idx = np.flatnonzero(obs)
        c_wo = mom.cov[..., ci, :][..., idx]
        c_ww = np.broadcast_to(mom.cov[..., ci, ci], grid)
        mu_w = mom.mean[..., ci]
        czw = cov_zy[..., ci]
        if idx.size:
            coo_inv = np.linalg.inv(mom.cov[..., idx, :][..., :, idx])
            g = np.matmul(c_wo[..., None, :], coo_inv)[..., 0, :]
            mu_w = mu_w + np.sum(g * (y[idx] - mom.mean[..., idx]), -1)
            c_ww = c_ww - np.sum(g * c_wo, -1)
            czw = czw - np.matmul(cov_zy[..., idx], g[..., None])[..., 0]
        means, covs = _truncated_update(means, covs, mu_w, c_ww, czw, y[ci], int(censor[ci]))
    return means, covs


def _block_mixture(model: CompiledModel, block: Block, latent, w: np.ndarray):
    """The latents' posterior over the block's dependency states (weights ``w``, that grid) as
    a flat Gaussian mixture ``(weights, means, covs)``: per grid point, one component for the
    results all right and one for each result as the block's gross error (the latents then
    given the others), weighted as in :func:`neb_bayes.inference.exact.block_loglik`."""
    grid = w.shape
    every = np.arange(block.n)
    eps = model.gross_error_rate
    comps = [(every, 0.0)]
    if eps > 0:
        log_q = model.gross_log_density(block.channel, block.y, block.censor)
        comps = [(every, np.log1p(-block.n * eps))] + [
            (np.delete(every, j), np.log(eps) + log_q[j]) for j in range(block.n)]
    log_w, means, covs = [], [], []
    for keep, log_prior in comps:
        ll = (block_loglik(model, block, keep, latent, gross=False).reshape(grid) if keep.size
              else np.zeros(grid))
        log_w.append(log_prior + ll)
        m, c = _given_results(model, block, keep, latent, grid)
        means.append(m)
        covs.append(c)
    log_w = np.stack(log_w)
    comp = np.exp(log_w - log_w.max(axis=0))
    comp = comp / comp.sum(axis=0) * w
    k = means[0].shape[-1]
    return (comp.reshape(-1), np.stack(means).reshape(-1, k),
            np.stack(covs).reshape(-1, k, k))


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
            w = post.joint.sum(axis=tuple(j for j in range(nd) if j not in block.deps))
            w, means, covs = _block_mixture(model, block, (lat_mean, lat_cov), w)
        for k, lat in enumerate(ax.latents):
            mean, lo, hi = _mixture_summary(
                np.asarray(w).reshape(-1), means[:, k], np.sqrt(np.maximum(covs[:, k, k], 0)), prob)
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
