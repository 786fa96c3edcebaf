"""Exact posterior over the joint discrete states, latents integrated in closed form.

Given the discrete states of the axes a block depends on, a block's log results are jointly
Gaussian (latents, person-level residual, day-to-day biological variation and analytical
error are all Gaussian in log space), so p(results | states) is a Gaussian marginal
likelihood.  A censored result contributes the conditional probability mass beyond its limit
(normal CDF; multivariate normal CDF when an axis has several).  Symptoms are noisy-OR in the
states.  The joint states are enumerated as a dense tensor, so the posterior is exact and
deterministic.  No PyMC on this path (see shared/research/inference-notes.md).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from functools import cached_property, lru_cache

import numpy as np

from neb_bayes.accel import use_compiled
from neb_bayes.evidence import Block, Evidence
from neb_bayes.model.compiled import CompiledModel
from neb_bayes.model.prior import flag_modifiers, log_prior, without_flags
from neb_bayes.tensor import distinct_rows, move_axis

LOG_2PI = math.log(2.0 * math.pi)


# scipy.special on first use (~0.22 s to import, scipy.linalg with it): a report whose results
# are all observed needs none of these, and a one-shot `neb-bayes report` starts that much
# sooner
def ndtr(x):
    """``scipy.special.ndtr``."""
    import scipy.special

    return scipy.special.ndtr(x)


def log_ndtr(x):
    """``scipy.special.log_ndtr``."""
    import scipy.special

    return scipy.special.log_ndtr(x)


def owens_t(h, a):
    """``scipy.special.owens_t``."""
    import scipy.special

    return scipy.special.owens_t(h, a)


# --------------------------------------------------------------------------------------------
# block moments and likelihood
@dataclass(frozen=True)
class BlockMoments:
    """Mean over the block's dependency grid and covariance over its own axis' states.

    The mean is kept in two additive parts: ``own_mean`` varies with the block's own axis
    state (and any leading draw dimension), ``other_mean`` with the other dependency axes'
    states only (state effects and daily rhythms: no draw dimension).  The covariance is kept
    as ``noise + loadings @ lat_cov @ loadings.T``: noise (person, day, analytical, unknown
    collection time) does not depend on the draw, and the latent part has rank K (a few), so
    likelihoods need no factorisation of an n x n matrix per draw
    (:func:`gaussian_block_loglik`).
    """

    own_mean: np.ndarray    # lead + grid shape (1 except at own_pos) + (n,)
    other_mean: np.ndarray  # grid shape (1 at own_pos) + (n,)
    noise: np.ndarray       # grid shape (1 except possibly at own_pos) + (n, n)
    lat_cov: np.ndarray     # lead + grid shape (1 except at own_pos) + (K, K)
    loadings: np.ndarray    # (n, K)
    own_pos: int
    #: the latent covariance's precision S^-1 and log|S|^(1/2), shaped like ``lat_cov`` and
    #: ``lat_cov[..., 0, 0]``, where the caller has them (the draws path keeps them with the
    #: draws: they do not depend on the case); else ``None``
    lat_prec: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def mean(self) -> np.ndarray:
        """Expected log levels over the whole dependency grid: lead + grid shape + (n,)."""
        return self.own_mean + self.other_mean

    @cached_property
    def cov(self) -> np.ndarray:
        """Covariance of the log results: lead + grid shape (own axis only) + (n, n)."""
        return _dense_cov(self.noise, self.loadings, self.lat_cov)


def _dense_cov(noise: np.ndarray, loadings: np.ndarray, lat_cov: np.ndarray) -> np.ndarray:
    # (matrix products over the stack: 3x faster than the einsum with draws)
    return np.matmul(np.matmul(loadings, lat_cov), loadings.T) + noise


def latent_precision(lat_cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The precision ``S^-1`` and ``log|S|^(1/2)`` of stacked latent covariances ``S``
    (``(..., K, K)``): what the draws path's block kernels read instead of ``S``
    (:func:`~neb_bayes.inference.draws_kernels.mixture_block`), by Cholesky."""
    return _inverse_logdet(lat_cov)


def block_moments(
    model: CompiledModel,
    block: Block,
    keep: np.ndarray | None = None,
    latent: tuple[np.ndarray, np.ndarray] | None = None,
    log_median: np.ndarray | None = None,
) -> BlockMoments:
    """Expected log levels and their covariance for every combination of dependency states.

    ``latent`` overrides the axis' per-state latent (mean ``(S, K)``, covariance
    ``(S, K, K)``, and optionally the covariance's precision and ``log|S|^(1/2)``,
    :func:`latent_precision`), e.g. for a case's context effects
    (:meth:`Evidence.latent_params`); with a leading draw dimension ``D`` (and ``log_median``
    of shape ``(D, n_channels)``) the moments get that leading dimension too, so parameter
    draws are evaluated at once.
    """
    idx = np.arange(block.n) if keep is None else keep
    st = _block_structure(model, block, idx)
    n = st.channels.size
    L = st.loadings
    ax = model.axes[block.axis]
    lat_mean, lat_cov = latent[:2] if latent is not None else (ax.lat_mean, ax.lat_cov)
    lat_prec = latent[2] if latent is not None and len(latent) > 2 else None
    lead = lat_mean.shape[:-2]                      # () or (D,)
    base = st.log_median if log_median is None else log_median[..., st.channels]
    if lead:
        # with the results first in memory, (n, draws, states): the layout of the blocks'
        # kernels (one (n, draws x states) stack), which then read the residuals y - mean
        # without a transposing copy
        if use_compiled() and len(lead) == 1:
            from neb_bayes.inference.draws_kernels import own_mean_into

            own_t = np.empty((n,) + lat_mean.shape[:-1])
            own_mean_into(L, np.ascontiguousarray(lat_mean), np.ascontiguousarray(base),
                          st.own_shift, own_t)
        else:
            # (one matrix product over the draws and states: a stacked product calls BLAS
            # per draw)
            own_t = (L @ lat_mean.reshape(-1, lat_mean.shape[-1]).T).reshape(
                (n,) + lat_mean.shape[:-1])
            # (each part added in place: no (n, draws, states) temporary)
            own_t += move_axis(base, -1, 0)[..., None]
            own_t += st.own_shift.T.reshape((n,) + (1,) * len(lead) + (ax.n_states,))
        own_mean = move_axis(own_t, 0, -1).reshape(lead + st.own_shape)
    else:
        lat_part = (lat_mean.reshape(-1, lat_mean.shape[-1]) @ L.T).reshape(lat_mean.shape[:-1]
                                                                             + (n,))
        own_mean = base[..., None, :] + st.own_shift
        own_mean = np.add(own_mean, lat_part, out=own_mean if own_mean.shape == lat_part.shape
                          else None).reshape(lead + st.own_shape)
    g = len(block.deps)
    k = lat_cov.shape[-1]
    cshape = [1] * g + [k, k]
    cshape[st.own_pos] = ax.n_states
    if lat_prec is not None:
        lat_prec = (lat_prec[0].reshape(lead + tuple(cshape)),
                    lat_prec[1].reshape(lead + tuple(cshape[:-2])))
    return BlockMoments(own_mean=own_mean, other_mean=st.other_mean, noise=st.noise,
                        lat_cov=lat_cov.reshape(lead + tuple(cshape)), loadings=L,
                        own_pos=st.own_pos, lat_prec=lat_prec)


@dataclass(frozen=True)
class _BlockStructure:
    """What a block's moments take from its results' channels, days, daily rhythms and
    context variances alone: not their values, not the parameters (:func:`block_moments`
    adds the latent means and medians), so blocks with the same structure (one panel's
    results) share it (:func:`_block_structure`).  Arrays read-only."""

    channels: np.ndarray    # (n,) channel index per result
    loadings: np.ndarray    # (n, K)
    log_median: np.ndarray  # (n,) the channels' log medians (the model's parameters)
    own_shift: np.ndarray   # (S_own, n) the own axis' state effects (and daily rhythm)
    own_shape: tuple[int, ...]  # grid shape (1 except at own_pos) + (n,)
    other_mean: np.ndarray  # grid shape (1 at own_pos) + (n,)
    noise: np.ndarray       # grid shape (1 except possibly at own_pos) + (n, n)
    own_pos: int


#: :class:`_BlockStructure` per block structure, per model (the last few models: sex views,
#: a fit's parameter sets), each with at most :data:`STRUCTURES_MAX` structures (first in,
#: first out); entries hold their model, so an id is never reused while it is kept
_STRUCTURES: OrderedDict[int, tuple[CompiledModel, OrderedDict[tuple, _BlockStructure]]] = (
    OrderedDict())
STRUCTURE_MODELS = 8
STRUCTURES_MAX = 4096
_STRUCTURES_LOCK = threading.Lock()


def _block_structure(model: CompiledModel, block: Block, idx: np.ndarray) -> _BlockStructure:
    """A block's structure (:class:`_BlockStructure`) for results ``idx``, cached: about half
    the blocks of simulated work-ups repeat one seen before, and building it
    (:func:`_structure_of`, a few dozen small numpy operations) costs ~45 us beside the draws
    path's kernels."""
    key = (block.axis, block.deps, block.channel[idx].tobytes(), block.diurnal[idx].tobytes(),
           block.day[idx].tobytes(), block.diurnal_var[idx].tobytes(),
           None if block.extra_var is None else block.extra_var[idx].tobytes())
    entry = _STRUCTURES.get(id(model))
    if entry is not None and entry[0] is model:
        hit = entry[1].get(key)
        if hit is not None:
            return hit
    st = _structure_of(model, block, idx)
    with _STRUCTURES_LOCK:
        entry = _STRUCTURES.get(id(model))
        if entry is None or entry[0] is not model:
            entry = _keep(_STRUCTURES, id(model), (model, OrderedDict()), STRUCTURE_MODELS)
        _keep(entry[1], key, st, STRUCTURES_MAX)
    return st


def _keep(cache: OrderedDict, key, value, limit: int):
    """``cache[key] = value``, first dropping the oldest entry of a full ``cache`` (the
    caller holds :data:`_STRUCTURES_LOCK`); returns ``value``."""
    if len(cache) >= limit:
        cache.popitem(last=False)
    cache[key] = value
    return value


@dataclass(frozen=True)
class _ChannelArrays:
    """The channels' numbers as arrays indexed by channel (:func:`_structure_of`)."""

    shifts: tuple[np.ndarray, ...]  # per axis (S_axis, channels): the effects' shifts summed
    loadings: tuple[np.ndarray, ...]  # per axis (channels, K_axis) (0 for other axes' channels)
    tau: np.ndarray
    cvi: np.ndarray
    cva: np.ndarray
    log_median: np.ndarray
    rhythmic: np.ndarray            # (channels,) whose daily rhythm an axis' state scales


@lru_cache(maxsize=16)
def _channel_arrays(model: CompiledModel) -> _ChannelArrays:
    """``model``'s :class:`_ChannelArrays` (kept per model)."""
    chans = model.channels
    shifts = []
    for a, ax in enumerate(model.axes):
        per = np.zeros((len(chans), ax.n_states))
        for c, ch in enumerate(chans):
            for eff in ch.effects:
                if eff.axis == a:
                    per[c] += eff.shift
        shifts.append(np.ascontiguousarray(per.T))
    loadings = []
    for a, ax in enumerate(model.axes):
        per = np.zeros((len(chans), len(ax.latents)))
        for c, ch in enumerate(chans):
            if ch.axis == a:
                per[c] = ch.loadings
        loadings.append(per)
    return _ChannelArrays(
        shifts=tuple(shifts), loadings=tuple(loadings), tau=np.array([c.tau for c in chans]),
        cvi=np.array([c.cvi for c in chans]), cva=np.array([c.cva for c in chans]),
        log_median=np.array([c.log_median for c in chans], dtype=float),
        rhythmic=np.array([c.amp_axis is not None for c in chans]))


def _structure_of(model: CompiledModel, block: Block, idx: np.ndarray) -> _BlockStructure:
    """:func:`_block_structure` computed."""
    arrays = _channel_arrays(model)
    ch_id = block.channel[idx]
    n = ch_id.size
    deps = block.deps
    g = len(deps)
    sizes = [model.axes[d].n_states for d in deps]
    own_pos = deps.index(block.axis)
    ax = model.axes[block.axis]
    L = arrays.loadings[block.axis][ch_id]
    # each axis' state effects (summed per channel in the order of its effects), then the
    # daily rhythm scaled by an axis' state
    per_axis = [arrays.shifts[d][:, ch_id] for d in deps]
    amp_own = np.ones((ax.n_states, n))
    diurnal = block.diurnal[idx]
    for i in np.flatnonzero(arrays.rhythmic[ch_id]):
        ch = model.channels[ch_id[i]]
        per_axis[deps.index(ch.amp_axis)][:, i] += ch.amp * diurnal[i]
        if ch.amp_axis == block.axis:
            amp_own[:, i] = ch.amp
    own_shape = [1] * g + [n]
    own_shape[own_pos] = ax.n_states
    other_mean = np.zeros([1] * g + [n])
    for pos, arr in enumerate(per_axis):
        if pos != own_pos:
            shape = [1] * g + [n]
            shape[pos] = sizes[pos]
            other_mean = other_mean + arr.reshape(shape)
    # covariance: latent part (own axis states) + person/day/analytical noise
    tau = arrays.tau[ch_id]
    cvi = arrays.cvi[ch_id]
    cva = arrays.cva[ch_id]
    day = block.day[idx]
    same_ch = ch_id[:, None] == ch_id[None, :]
    same_day = same_ch & (day[:, None] == day[None, :])
    noise = same_ch * (tau[:, None] * tau) + same_day * (cvi[:, None] * cvi)
    diagonal = np.diag_indices(n)
    noise[diagonal] += cva**2
    if block.extra_var is not None:
        # the context's extra variation is the person's: results of one channel share it
        se = np.sqrt(block.extra_var[idx])
        noise += same_ch * (se[:, None] * se)
    dvar = block.diurnal_var[idx]
    nshape = [1] * g + [n, n]
    if (dvar > 0).any():
        noise = noise + np.einsum("si,ij->sij", amp_own**2 * dvar, np.eye(n))
        nshape[own_pos] = ax.n_states
    out = _BlockStructure(
        channels=np.array(ch_id), loadings=L,
        log_median=arrays.log_median[ch_id],
        own_shift=per_axis[own_pos], own_shape=tuple(own_shape), other_mean=other_mean,
        noise=noise.reshape(nshape), own_pos=own_pos)
    for a in (out.channels, out.loadings, out.log_median, out.own_shift, out.other_mean,
              out.noise):
        a.flags.writeable = False
    return out


def bivariate_normal_cdf(h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """P(X < h, Y < k) for standard bivariate normal with correlation ``rho`` (Owen's T).

    Exact closed form (Owen 1956): Phi2 = (Phi(h) + Phi(k))/2 - T(h, a_h) - T(k, a_k) - c.
    """
    h, k, rho = np.broadcast_arrays(np.asarray(h, float), np.asarray(k, float), np.asarray(rho, float))
    s = np.sqrt(np.maximum(1.0 - rho * rho, 1e-300))
    with np.errstate(divide="ignore", invalid="ignore"):
        a_h = np.where(h != 0, (k - rho * h) / (h * s), np.inf * np.sign(k - rho * h))
        a_k = np.where(k != 0, (h - rho * k) / (k * s), np.inf * np.sign(h - rho * k))
    a_h = np.nan_to_num(a_h, nan=0.0)
    a_k = np.nan_to_num(a_k, nan=0.0)
    c = np.where((h * k < 0) | ((h * k == 0) & (h + k < 0)), 0.5, 0.0)
    out = 0.5 * (ndtr(h) + ndtr(k)) - owens_t(h, a_h) - owens_t(k, a_k) - c
    # both limits 0: the formula's a_h, a_k are 0 / 0 (Sheppard: 1/4 + asin(rho) / (2 pi))
    out = np.where((h == 0) & (k == 0), 0.25 + np.arcsin(rho) / (2 * np.pi), out)
    return np.clip(out, 0.0, 1.0)


def _composite_gauss_legendre(panels: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of a composite Gauss-Legendre rule on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(order)
    nodes = ((x[None, :] + 1) / 2 + np.arange(panels)[:, None]) / panels
    return nodes.ravel(), np.tile(w / 2, panels) / panels


#: the outer rule of the trivariate CDF, on each of its pieces: 4 panels of 16 nodes (as
#: accurate as 8 against adaptive quadrature: 5.6e-16 largest absolute difference over the
#: tests' 80 cases, 2 panels 6e-10; half the bivariate CDFs of 8)
_GL_NODES, _GL_WEIGHTS = _composite_gauss_legendre(4, 16)


def trivariate_normal_cdf(upper: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """P(X < upper) for X ~ N(mean, cov) in three dimensions, vectorised over leading axes.

    The variable least correlated with the other two is integrated out numerically over
    [-9, min(t, 9)] standard deviations; given it, the other two are bivariate normal in
    closed form (:func:`bivariate_normal_cdf`).  The integrand steps where either conditional
    limit crosses zero (sharply when correlations are high), so the range is cut into five
    pieces at 8 conditional standard deviations either side of each step, each integrated by
    a composite Gauss-Legendre rule.  Agrees with adaptive quadrature to ~1e-13 (tests);
    deterministic.
    """
    mean = np.asarray(mean, float)
    cov = np.asarray(cov, float)
    grid = np.broadcast_shapes(mean.shape[:-1], cov.shape[:-2])
    sd = np.sqrt(np.einsum("...ii->...i", cov))
    t = np.broadcast_to((np.asarray(upper, float) - mean) / sd, grid + (3,))
    rho = np.broadcast_to(cov / (sd[..., :, None] * sd[..., None, :]), grid + (3, 3))
    off = np.abs(rho - np.eye(3) * rho)
    first = int(np.argmin(off.reshape(-1, 3, 3).max(axis=(0, 2))))
    i, j, k = first, *[x for x in range(3) if x != first]
    r_ij, r_ik, r_jk = rho[..., i, j], rho[..., i, k], rho[..., j, k]
    s_j = np.sqrt(np.maximum(1 - r_ij**2, 1e-300))
    s_k = np.sqrt(np.maximum(1 - r_ik**2, 1e-300))
    r_c = np.clip((r_jk - r_ij * r_ik) / (s_j * s_k), -1.0, 1.0)
    z, width, at = _step_pieces(t[..., i], ((t[..., j], r_ij, s_j), (t[..., k], r_ik, s_k)))

    def on(x):
        return np.broadcast_to(x, grid).reshape(-1)[at, None]

    f = bivariate_normal_cdf((on(t[..., j]) - on(r_ij) * z) / on(s_j),
                             (on(t[..., k]) - on(r_ik) * z) / on(s_k), on(r_c))
    return _sum_pieces(z, width, at, f, math.prod(grid)).reshape(grid)


def _step_pieces(t_first: np.ndarray, conditionals) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nodes of the integral over the first variable of a multivariate normal CDF.

    The range [-9, min(t, 9)] standard deviations (at least 2 wide) is cut at 8 conditional
    standard deviations either side of each other variable's step (``conditionals``: its
    limit, correlation with the first and conditional standard deviation, grid-shaped); only
    the pieces of positive width are kept (a step outside the range leaves its window empty:
    most pieces, where correlations are weak).  Returns ``(z, width, at)``: the composite
    Gauss-Legendre nodes ``(pieces, nodes)``, each piece's width ``(pieces, 1)`` and grid point
    (flat index).
    """
    start, width, at = _pieces(t_first, conditionals)
    return start + width * _GL_NODES, width, at


def _pieces(t_first: np.ndarray, conditionals) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of :func:`_step_pieces`: each one's start and width ``(pieces, 1)`` and
    grid point (flat index)."""
    hi = np.minimum(t_first, 9.0)
    lo = np.minimum(-9.0, hi - 2.0)
    cuts = [lo, hi]
    for tt, r, s in conditionals:
        with np.errstate(divide="ignore", invalid="ignore"):
            centre = np.where(np.abs(r) > 1e-12, tt / r, lo)
            half = np.where(np.abs(r) > 1e-12, 8.0 * s / np.abs(r), 0.0)
        cuts += [np.clip(centre - half, lo, hi), np.clip(centre + half, lo, hi)]
    n = len(cuts) - 1
    cuts = np.sort(np.stack(cuts, axis=-1), axis=-1)                       # (..., n + 1)
    width = np.diff(cuts, axis=-1).reshape(-1)                             # (G * n,)
    live = np.flatnonzero(~(width <= 0))          # (a NaN width stays: NaN propagates)
    return cuts[..., :-1].reshape(-1)[live, None], width[live, None], live // n


def _sum_pieces(z: np.ndarray, width: np.ndarray, at: np.ndarray, f: np.ndarray,
                size: int) -> np.ndarray:
    """``sum`` over each grid point's pieces (in order) of the integral of ``phi(z) f`` by the
    Gauss-Legendre rule, clipped to [0, 1]: ``(size,)``."""
    piece = _piece_sums(z, width, f)
    return np.clip(np.bincount(at, weights=piece, minlength=size), 0.0, 1.0)


def _piece_sums(z: np.ndarray, width: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Each piece's integral of ``phi(z) f`` by the Gauss-Legendre rule at its nodes ``z``
    (``(pieces, nodes)``; ``f`` broadcast to them): ``(pieces,)``."""
    return np.sum(width * _GL_WEIGHTS * _phi(z) * f, axis=-1)


def _phi(x: np.ndarray) -> np.ndarray:
    """The standard normal density."""
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


#: grid points per call of the four-dimensional CDF's inner trivariate CDF: bounds its
#: arrays (~7 pieces x 64 nodes x 5 pieces x 64 nodes bivariate values per point, ~1 MB)
QUAD_BLOCK = 32


def quadrivariate_normal_cdf(upper: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """P(X < upper) for X ~ N(mean, cov) in four dimensions, vectorised over leading axes.

    :func:`trivariate_normal_cdf` one dimension up: the variable least correlated with the
    other three is integrated out numerically over [-9, min(t, 9)] standard deviations; given
    it, the other three are trivariate normal (:func:`trivariate_normal_cdf`, the nodes of
    :data:`QUAD_BLOCK` grid points in one call).  The range is cut at 8 conditional standard
    deviations either side of each of the three conditional limits' steps (seven pieces,
    only those of positive width), each integrated by the composite Gauss-Legendre rule.
    Agrees with adaptive quadrature to ~1e-13 (tests); deterministic; replaces Genz QMC
    (~150 ms per grid point) for four censored results on an axis.
    """
    mean = np.asarray(mean, float)
    cov = np.asarray(cov, float)
    upper = np.asarray(upper, float)
    grid = np.broadcast_shapes(upper.shape[:-1], mean.shape[:-1], cov.shape[:-2])
    sd = np.sqrt(np.einsum("...ii->...i", cov))
    t = np.broadcast_to((upper - mean) / sd, grid + (4,)).reshape(-1, 4)
    rho = np.broadcast_to(cov / (sd[..., :, None] * sd[..., None, :]), grid + (4, 4))
    rho = rho.reshape(-1, 4, 4)
    out = np.empty(t.shape[0])
    for lo in range(0, t.shape[0], QUAD_BLOCK):
        out[lo:lo + QUAD_BLOCK] = _quadrivariate_block(t[lo:lo + QUAD_BLOCK],
                                                       rho[lo:lo + QUAD_BLOCK])
    return out.reshape(grid)


def _quadrivariate_block(t: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """:func:`quadrivariate_normal_cdf` of standardised limits ``t`` ``(G, 4)`` and
    correlations ``rho`` ``(G, 4, 4)``."""
    n = t.shape[0]
    off = np.abs(rho - np.eye(4) * rho)
    first = int(np.argmin(off.max(axis=(0, 2))))
    rest = [x for x in range(4) if x != first]
    r = rho[:, first, rest]                                                # (G, 3)
    s = np.sqrt(np.maximum(1 - r**2, 1e-300))
    cond = np.clip((rho[:, rest, :][:, :, rest] - r[:, :, None] * r[:, None, :])
                   / (s[:, :, None] * s[:, None, :]), -1.0, 1.0)
    cond[:, [0, 1, 2], [0, 1, 2]] = 1.0
    z, width, at = _step_pieces(t[:, first], [(t[:, rest[q]], r[:, q], s[:, q]) for q in range(3)])
    up3 = np.stack([(t[at, rest[q], None] - r[at, q, None] * z) / s[at, q, None]
                    for q in range(3)], axis=-1)                           # (pieces, nodes, 3)
    c3 = np.broadcast_to(cond[at][:, None], up3.shape[:-1] + (3, 3))
    return _sum_pieces(z, width, at, trivariate_normal_cdf(up3, np.zeros(3), c3), n)


def factor_normal_cdf(upper: np.ndarray, mean: np.ndarray, loading: np.ndarray,
                      resid: np.ndarray, pairs: tuple[tuple[int, int], ...] = ()) -> np.ndarray:
    """P(X < upper) for X = mean + loading F + e, F ~ N(0, 1) and e ~ N(0, resid) independent
    of F, where ``resid`` is diagonal except for disjoint ``pairs`` of variables; any
    dimension, vectorised over leading axes (``upper``, ``mean``, ``loading``: ``grid +
    (c,)``; ``resid``: ``grid + (c, c)``).

    Given F the variables fall into independent singletons and pairs, so the CDF is the
    integral over F of ``phi(f)`` times each singleton's normal CDF and each pair's bivariate
    normal CDF (:func:`bivariate_normal_cdf`): over [-9, 9] cut at 8 conditional standard
    deviations either side of each variable's step, each piece by the composite
    Gauss-Legendre rule of :func:`trivariate_normal_cdf`.  Repeats of one analyte on
    different days share one factor (the person's level) and are otherwise independent; two
    analytes, each measured twice, share one factor and keep a correlated pair.  Deterministic;
    a few normal CDFs per node instead of a (c-1)-dimensional CDF per node; at points where
    nothing loads on the factor, the product of the CDFs directly; pieces where the integrand
    is phi times a constant, or negligible beside the rest, without their nodes
    (:func:`_factor_block`).
    """
    upper, mean, loading = np.broadcast_arrays(*(np.asarray(x, float)
                                                 for x in (upper, mean, loading)))
    grid = upper.shape[:-1]
    c = upper.shape[-1]
    res_var = np.broadcast_to(np.diagonal(resid, axis1=-2, axis2=-1), grid + (c,))
    sd = np.sqrt(res_var + loading * loading)
    t = ((upper - mean) / sd).reshape(-1, c)
    r = (loading / sd).reshape(-1, c)
    s = (np.sqrt(res_var) / sd).reshape(-1, c)
    rho = [np.broadcast_to(resid[..., j, k] / np.sqrt(res_var[..., j] * res_var[..., k]),
                           grid).reshape(-1) for j, k in pairs]
    single = [i for i in range(c) if not any(i in pq for pq in pairs)]
    out = np.empty(t.shape[0])
    # where nothing loads on the factor, the singletons and pairs are independent: the
    # product of their CDFs (the integral over the factor would only multiply by ~1)
    unloaded = np.all(r == 0.0, axis=1)
    flat, live = np.flatnonzero(unloaded), np.flatnonzero(~unloaded)
    if flat.size:
        out[flat] = np.prod(ndtr(t[flat][:, single]), axis=1)
        for (j, k), rh in zip(pairs, rho, strict=True):
            out[flat] *= bivariate_normal_cdf(t[flat, j], t[flat, k], rh[flat])
        t, r, s, rho = t[live], r[live], s[live], [rh[live] for rh in rho]
    # singletons equal at every point (repeats of one analyte with the same limit, time
    # and noise: a suppressed TSH on several days) are one normal CDF to a power, and their
    # steps one cut of the range
    distinct, power = _equal_columns(np.stack([t, r, s]), single)
    used = distinct + [i for pq in pairs for i in pq]
    col = {i: q for q, i in enumerate(used)}
    pair_cols = [(col[j], col[k]) for j, k in pairs]
    for lo in range(0, t.shape[0], FACTOR_BLOCK):
        part = slice(lo, lo + FACTOR_BLOCK)
        out[live[part]] = _factor_block(t[part][:, used], r[part][:, used], s[part][:, used],
                                        power, pair_cols, [rh[part] for rh in rho])
    return out.reshape(grid)


def _factor_block(t: np.ndarray, r: np.ndarray, s: np.ndarray, power: list[int],
                  pair_cols: list[tuple[int, int]], pair_rho: list[np.ndarray]) -> np.ndarray:
    """:func:`factor_normal_cdf` at ``G`` grid points from each used variable's standardised
    limit ``t``, loading ``r`` and residual standard deviation ``s`` (``(G, used)``: the
    distinct singletons, then the pairs' columns ``pair_cols`` with correlations
    ``pair_rho``, each ``(G,)``): ``(G,)``.

    Each piece of the range is one of three kinds, by each variable's limit given the factor
    at the piece's ends (linear between):

    - *flat*: every limit at least :data:`FLAT_LIMIT` (each CDF within 7e-16 of 1) or
      constant (a variable that loads nothing): the integrand is phi times a constant, the
      product at the piece's midpoint;
    - *beyond*: some variable's limit at most ``-FLAT_LIMIT`` throughout (its CDF below
      7e-16): integrated only where a bound on the piece's integral is not negligible
      (:data:`BEYOND_TOL`) beside the rest of its point's mass (:func:`_beyond_bound`);
    - the others, by the nodes of the composite Gauss-Legendre rule.
    """
    n = t.shape[0]
    start, width, at = _pieces(np.full(n, np.inf), [(t[:, q], r[:, q], s[:, q])
                                                     for q in range(t.shape[1])])
    ta, ra, sa = t[at], r[at], s[at]                                       # (pieces, used)
    ends = (ta[..., None] - ra[..., None] * np.stack([start, start + width], -1)) / sa[..., None]
    lowest, highest = ends.min(axis=-1), ends.max(axis=-1)
    flat = np.all((lowest >= FLAT_LIMIT) | (ra == 0.0), axis=1)
    beyond = ~flat & np.any(highest <= -FLAT_LIMIT, axis=1)

    def integrate(sel: np.ndarray, midpoint: bool = False) -> np.ndarray:
        z = start[sel] + width[sel] * _GL_NODES
        zz = start[sel] + 0.5 * width[sel] if midpoint else z
        # each variable's standardised limit given the factor: (pieces, used, nodes)
        given = (ta[sel, :, None] - ra[sel, :, None] * zz[:, None, :]) / sa[sel, :, None]
        f = _factor_integrand(given, power, pair_cols, [rh[at[sel], None] for rh in pair_rho])
        return _piece_sums(z, width[sel], f)

    total = np.zeros(n)
    for sel, midpoint in ((np.flatnonzero(flat), True), (np.flatnonzero(~flat & ~beyond), False)):
        if sel.size:
            total += np.bincount(at[sel], weights=integrate(sel, midpoint), minlength=n)
    sel = np.flatnonzero(beyond)
    if sel.size:
        bound = _beyond_bound(start[sel], width[sel], highest[sel], ra[sel] / sa[sel], power,
                              pair_cols)
        sel = sel[~(bound <= BEYOND_TOL * total[at[sel]])]
        if sel.size:
            total += np.bincount(at[sel], weights=integrate(sel), minlength=n)
    return np.clip(total, 0.0, 1.0)


def _beyond_bound(start: np.ndarray, width: np.ndarray, highest: np.ndarray, slope: np.ndarray,
                  power: list[int], pair_cols: list[tuple[int, int]]) -> np.ndarray:
    """An upper bound on the integral of phi times :func:`factor_normal_cdf`'s integrand
    over each piece (``start``, ``width``: ``(pieces, 1)``), from each variable's highest
    limit given the factor on the piece ``highest`` and the rate it changes at ``slope``
    (``r / s``; ``(pieces, used)``): the integrand is at most any one variable's CDF (to its
    power), and where that variable's limit is ``h`` at most and falls at rate ``m`` the
    integral of its CDF is at most ``(h Phi(h) + phi(h)) / m`` (else the width times
    ``Phi(h)``); phi at most its value nearest 0.  ``(pieces,)``."""
    k = np.ones(highest.shape[1])
    k[:len(power)] = power
    cdf = ndtr(highest)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        tail = highest * cdf + _phi(highest)
        along = np.where(slope != 0.0, np.abs(tail / slope), np.inf)
        each = cdf ** (k - 1) * np.fmin(width * cdf, 1.01 * along)
    nearest = np.clip(0.0, start, start + width)[:, 0]
    return _phi(nearest) * np.nanmin(each, axis=1)


def _factor_integrand(given: np.ndarray, power: list[int], pair_cols: list[tuple[int, int]],
                      pair_rho: list[np.ndarray]) -> np.ndarray:
    """The product of :func:`factor_normal_cdf`'s CDFs given the factor, from each
    variable's standardised limit ``given`` ``(pieces, used, nodes)``: the distinct
    singletons' normal CDFs, each to its ``power``, and the pairs' bivariate ones (at
    columns ``pair_cols``, correlations ``pair_rho``)."""
    nd = ndtr(given[:, :len(power)])
    f = np.prod(nd, axis=1)
    for q, k in enumerate(power):
        for _ in range(k - 1):
            f *= nd[:, q]
    for (j, k), rh in zip(pair_cols, pair_rho, strict=True):
        f *= bivariate_normal_cdf(given[:, j], given[:, k], rh)
    return f


def _equal_columns(x: np.ndarray, columns: list[int]) -> tuple[list[int], list[int]]:
    """``columns`` of ``x`` (``(..., c)``) without those equal (bit for bit, everywhere) to
    an earlier one, and how many each stands for."""
    flat = x.reshape(-1, x.shape[-1])
    distinct: list[int] = []
    power: list[int] = []
    for i in columns:
        for q, j in enumerate(distinct):
            if np.array_equal(flat[:, i], flat[:, j]):
                power[q] += 1
                break
        else:
            distinct.append(i)
            power.append(1)
    return distinct, power


#: grid points per pass of :func:`factor_normal_cdf` (its node arrays stay ~10 MB)
FACTOR_BLOCK = 256

#: a piece of :func:`factor_normal_cdf`'s range where each variable's limit given the factor
#: is at least this (Phi within 7e-16 of 1) has a constant integrand but for phi (the pieces
#: end 8 conditional standard deviations from each step; the margin is for rounding)
FLAT_LIMIT = 8.0 - 1e-9

#: a piece beyond some variable's step is left out where a bound on its integral is at most
#: this fraction of the rest of its grid point's mass (below the sum's rounding)
BEYOND_TOL = 1e-17

#: a covariance counts as a factor plus a residual of singletons and pairs when it is within
#: this much (relative to the standard deviations) of it; the CDF moves by about as much
FACTOR_TOL = 1e-10


def _factor_cover(ccc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                            list[tuple[tuple[int, int], ...]]]:
    """Where covariances ``ccc`` ``(N, c, c)`` are one factor plus a residual of independent
    singletons and pairs (:func:`factor_normal_cdf`): ``ccc = resid + loading loading'``
    within :data:`FACTOR_TOL`, ``resid`` zero off the pairs' entries and positive definite
    (every variance above 1e-8 of the variable's, every pair's correlation below 1 - 1e-9).

    Returns ``(label, loading, resid, patterns)``: per covariance the index of its pattern
    of pairs in ``patterns`` (-1 where it has no such form), ``loading`` ``(N, c)`` and
    ``resid`` ``(N, c, c)``.  The loadings follow from an anchor triple ``(i, j, k)`` whose
    three pairs all lie in the factor, ``i`` in no pair: ``l_i^2 = C_ij C_ik / C_jk`` and
    ``l_m = C_im / l_i``; each anchor and triple is tried in turn on the covariances still
    without a form, and last no factor at all (independent singletons and pairs)."""
    n, c = ccc.shape[0], ccc.shape[-1]
    pairs, pa, pb, incidence, bits, anchors = _pair_layout(c)
    var = np.diagonal(ccc, axis1=-2, axis2=-1)
    label = np.full(n, -1)
    loading = np.zeros((n, c))
    resid = np.array(ccc, dtype=float)
    codes: dict[int, int] = {}
    for anchor in anchors:
        todo = np.flatnonzero(label < 0)
        if todo.size == 0:
            break
        cc = ccc[todo]
        if anchor is None:
            lo = np.zeros((todo.size, c))
            ok = np.ones(todo.size, dtype=bool)
        else:
            i, j, k = anchor
            with np.errstate(divide="ignore", invalid="ignore"):
                li_sq = cc[:, i, j] * cc[:, i, k] / cc[:, j, k]
                ok = li_sq > 0
                li = np.sqrt(np.where(ok, li_sq, 1.0))
                lo = cc[:, i, :] / li[:, None]
            lo[:, i] = li
        # (a covariance without a form at this anchor may give inf/NaN loadings: its
        # residual check below then fails, and it is left for the next anchor)
        with np.errstate(invalid="ignore", over="ignore"):
            rs = cc - lo[:, :, None] * lo[:, None, :]
        v = var[todo]
        off = np.abs(rs[:, pa, pb])                                         # (n', pairs)
        scale = np.sqrt(v[:, pa] * v[:, pb])
        left = off > FACTOR_TOL * scale
        count = left.astype(np.int64) @ incidence                          # pairs per variable
        rv = np.diagonal(rs, axis1=-2, axis2=-1)
        ok &= np.all(count <= 1, axis=1) & np.all(rv > 1e-8 * v, axis=1)
        if anchor is not None:
            ok &= count[:, anchor[0]] == 0
        ok &= ~np.any(left & (off >= (1 - 1e-9) * np.sqrt(np.abs(rv[:, pa] * rv[:, pb]))),
                      axis=1)
        if not ok.any():
            continue
        code = left[ok].astype(np.int64) @ bits
        for cd in np.unique(code):
            codes.setdefault(int(cd), len(codes))
        at = todo[ok]
        label[at] = [codes[int(cd)] for cd in code]
        loading[at] = lo[ok]
        resid[at] = rs[ok]
    patterns = [tuple(pairs[q] for q in range(len(pairs)) if cd >> q & 1) for cd in codes]
    return label, loading, resid, patterns


@lru_cache(maxsize=16)
def _pair_layout(c: int):
    """For ``c`` variables: the pairs ``i < j`` (list, and as two index arrays), which
    variables each pair holds ``(pairs, c)``, each pair's bit, and the anchors of
    :func:`_factor_cover` (every variable with every two others, then ``None``)."""
    from itertools import combinations

    pairs = list(combinations(range(c), 2))
    pa, pb = np.array(pairs).T
    incidence = np.zeros((len(pairs), c), dtype=np.int64)
    incidence[np.arange(len(pairs)), pa] = 1
    incidence[np.arange(len(pairs)), pb] = 1
    bits = 1 << np.arange(len(pairs), dtype=np.int64)
    anchors = [(i, j, k) for i in range(c)
               for j, k in combinations([x for x in range(c) if x != i], 2)] + [None]
    return pairs, pa, pb, incidence, bits, anchors


def _mvn_log_cdf(upper: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
    """log P(X < upper) for X ~ N(mean, cov), several dimensions (Genz QMC, fixed seed)."""
    from scipy.stats import multivariate_normal  # imported only when needed (slow import)

    p = multivariate_normal.cdf(
        upper, mean=mean, cov=cov, abseps=1e-9, releps=1e-7, rng=np.random.default_rng(0)
    )
    return math.log(max(float(p), 1e-300))


def _grid_dot(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``sum_i x[..., i] e[..., i]`` broadcast over the grid, as one matrix product.

    ``x`` has shape ``lead + grid + (m,)`` and ``e`` shape ``grid + (m,)``, where no grid
    dimension is larger than 1 in both (``x`` varies with the own axis, ``e`` with the
    others).  Returns ``lead + grid``.
    """
    g = e.ndim - 1
    lead = x.shape[: x.ndim - 1 - g]
    xg, eg = x.shape[len(lead):-1], e.shape[:-1]
    xa = [i for i in range(g) if xg[i] > 1]
    ea = [i for i in range(g) if i not in xa]
    if any(eg[i] > 1 for i in xa):
        raise ValueError("x and e vary along the same grid dimension")
    m = x.shape[-1]
    prod = x.reshape(-1, m) @ e.reshape(-1, m).T
    prod = prod.reshape(lead + tuple(xg[i] for i in xa) + tuple(eg[i] for i in ea))
    order = np.argsort(xa + ea)
    return prod.transpose(tuple(range(len(lead))) + tuple(len(lead) + order))


def _to_stack(x: np.ndarray, stack: tuple[int, ...], tail: tuple[int, ...]) -> np.ndarray:
    """``x`` (broadcastable to ``stack + tail``) as ``tail + (N,)``, the stack flattened last.

    Small-matrix algebra over many tiny matrices is then a few contiguous elementwise
    operations per matrix entry, instead of one strided or LAPACK call per matrix.
    """
    n = math.prod(stack)
    x = np.broadcast_to(x, stack + tail).reshape((n,) + tail)
    return np.ascontiguousarray(move_axis(x, 0, -1))


def _from_stack(x: np.ndarray, stack: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`_to_stack`: ``tail + (N,)`` to ``stack + tail``."""
    return move_axis(x, -1, 0).reshape(stack + x.shape[:-1])


def _stack_mul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Matrix products ``x @ y`` of stacked-last matrices: ``(I, M, N) x (M, J, N)``."""
    out = x[:, 0, None, :] * y[None, 0, :, :]
    for m in range(1, x.shape[1]):
        out += x[:, m, None, :] * y[None, m, :, :]
    return out


def _stack_chol(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of stacked-last SPD matrices ``(K, K, N)``."""
    k = a.shape[0]
    low = np.zeros(a.shape)
    for j in range(k):
        d = a[j, j].copy()
        for m in range(j):
            d -= low[j, m] ** 2
        low[j, j] = np.sqrt(d)
        for i in range(j + 1, k):
            acc = a[i, j].copy()
            for m in range(j):
                acc -= low[i, m] * low[j, m]
            low[i, j] = acc / low[j, j]
    return low


def _stack_forward_solve(low: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``low^-1 b`` for stacked-last lower-triangular ``low (K, K, N)``, ``b (K, M, N)``."""
    x = np.empty(b.shape)
    for i in range(low.shape[0]):
        acc = b[i].copy()
        for m in range(i):
            acc -= low[i, m, None, :] * x[m]
        x[i] = acc / low[i, i, None, :]
    return x


def _woodbury_stack(lat_cov: np.ndarray, a: np.ndarray, bt: np.ndarray, r: np.ndarray):
    """The rank-K part of ``C = N + L S L'`` over a stack (stacked last): ``(sum_i log W_ii,
    |V'r|^2, V V'r, V')`` with ``R = chol(S)``, ``W = chol(I + R'AR)``, ``V' = W^-1 R'B'``
    (numpy; :func:`neb_bayes.inference.draws_kernels.woodbury_stack` is the compiled
    counterpart)."""
    k = a.shape[0]
    low = _stack_chol(lat_cov)                                           # R
    rt = low.transpose(1, 0, 2)                                          # R'
    w = _stack_mul(_stack_mul(rt, a), low)
    for i in range(k):
        w[i, i] += 1.0
    w = _stack_chol(w)                                                   # W W' = I + R'AR
    vt = _stack_forward_solve(w, _stack_mul(rt, bt))                     # V' (K, n, N)
    t = np.sum(vt * r[None], axis=1)                                     # V' r (K, N)
    return (np.log(np.stack([w[i, i] for i in range(k)])).sum(0), np.sum(t * t, axis=0),
            np.sum(vt * t[:, None, :], axis=0), vt)


def _stack_matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x @ y`` for a stack of small ``x``; one matrix product when ``y`` is the same for
    the whole stack (a stacked matmul of tiny matrices is slow)."""
    if any(d > 1 for d in y.shape[:-2]):
        return np.matmul(x, y)
    shape = np.broadcast_shapes(x.shape[:-2], y.shape[:-2]) + (x.shape[-2], y.shape[-1])
    x = np.broadcast_to(x, shape[:-2] + x.shape[-2:])
    return (x.reshape(-1, x.shape[-1]) @ y.reshape(y.shape[-2:])).reshape(shape)


def _inverse_logdet(noise: np.ndarray, compiled: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """N^-1 and log|N|^(1/2) of symmetric positive definite matrices (stacked), by Cholesky;
    ``compiled``: one compiled pass (:func:`~neb_bayes.inference.kernels.spd_inverse_logdet`,
    for the draws path's kernels: LAPACK's calls cost ~60 us per block there, beside the
    kernels, against ~11 us alone)."""
    if compiled:
        from neb_bayes.inference.kernels import spd_inverse_logdet

        inv, logdet = spd_inverse_logdet(noise)
        return inv, 0.5 * logdet
    chol = np.linalg.cholesky(noise)
    linv = np.linalg.inv(chol)
    return (np.matmul(np.swapaxes(linv, -1, -2), linv),
            np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1))


def gaussian_block_loglik(
    y: np.ndarray, censor: np.ndarray, mean: np.ndarray, cov: np.ndarray,
    other: np.ndarray | None = None,
    low_rank: tuple[np.ndarray, np.ndarray] | None = None,
    loo: bool = False,
    mixture: tuple[np.ndarray, float] | None = None,
    precision: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray] | None:
    """log p(y | states) for every state combination (censored entries as probability mass).

    ``mean`` has shape ``grid + (n,)``; ``cov`` broadcasts to ``grid + (n, n)``.  With
    ``other`` (shape ``grid + (n,)``, varying only along grid dimensions where ``mean`` and
    ``cov`` do not, e.g. :attr:`BlockMoments.other_mean`) the mean is ``mean + other``: the
    quadratic form is then expanded around ``mean`` so that the per-draw work stays on
    ``mean``'s grid and the full grid costs a few matrix products.  With ``low_rank =
    (loadings (n, K), lat_cov (grid + (K, K)))`` the covariance is ``cov + loadings @ lat_cov
    @ loadings.T`` (Woodbury): ``cov`` is then the draw-independent noise, factorised once,
    and each draw only needs K x K work.

    With ``loo`` (at most :data:`LOO_CENSORED_MAX` censored results) also return ``log p(y) -
    log p(y_-j)`` for every result ``j`` in block order (a list of ``n`` arrays broadcastable
    to ``grid``): for an observed result ``log p(y_j | y_-j)``, from the diagonal of C^-1 and
    C^-1 r (the leave-one-out identity), plus the change of the censored results' mass
    (:func:`_censored_loo`: a rank-one change of their conditional); for a censored result
    the mass without it.  No sub-block is recomputed: O(n) extra work besides one normal
    CDF of the censored results per term.

    With ``mixture = (log q(y) (n,), eps)`` (every result observed, ``other`` and
    ``low_rank`` given: the draws path) return the block's log-likelihood with at most one
    gross error, ``log p(y) + log((1 - n eps) + eps sum_j q(y_j) / p(y_j | y_-j))``, computed
    without keeping the leave-one-out terms; ``None`` where a term would overflow.  Its
    compiled kernel reads the latent covariance by its ``precision`` (S^-1 and log|S|^(1/2),
    :func:`latent_precision`, shaped like ``lat_cov`` and ``lat_cov[..., 0, 0]``), computed
    from ``lat_cov`` where not given.
    """
    obs = censor == 0
    if mixture is not None and not (obs.all() and other is not None and low_rank is not None
                                    and low_rank[1].shape[-1]):
        raise ValueError("the fused mixture needs observed results, other and low_rank")
    if loo and (~obs).sum() > LOO_CENSORED_MAX:
        raise ValueError(f"leave-one-out terms need at most {LOO_CENSORED_MAX} censored results")
    cen = ~obs
    grid = mean.shape[:-1] if other is None else np.broadcast_shapes(mean.shape[:-1],
                                                                      other.shape[:-1])
    out = np.zeros(grid)
    if low_rank is None:
        low_rank = (np.zeros((cen.size, 0)), np.zeros(cov.shape[:-2] + (0, 0)))
    loadings, lat_cov = low_rank
    if obs.any():
        # C = N + L S L' = N + (L R)(L R)',  C^-1 = N^-1 - V V',  V = N^-1 L R W^-T,
        # W W' = I + R' L' N^-1 L R,  log|C| = log|N| + 2 log|W|
        n_inv, logdet = _inverse_logdet(cov[..., obs, :][..., :, obs],
                                        mixture is not None and use_compiled())
        # (every result observed: in the mean's memory layout, e.g. the results first)
        r = y - mean if obs.all() else y[obs] - mean[..., obs]
        if mixture is not None and use_compiled():
            return _fused_mixture(r, n_inv, logdet, loadings[obs], lat_cov, other[..., obs],
                                  mixture, precision)
        n_inv_r = _stack_matmul(r[..., None, :], np.swapaxes(n_inv, -1, -2))[..., 0, :]
        quad = np.sum(r * n_inv_r, axis=-1)
        pr = n_inv_r
        k = lat_cov.shape[-1]
        m = r.shape[-1]
        st = np.broadcast_shapes(r.shape[:-1], n_inv.shape[:-2],
                                 *((lat_cov.shape[:-2],) if k else ()))
        if k:
            b = np.matmul(n_inv, loadings[obs])                          # N^-1 L  (.., n, K)
            a = np.matmul(loadings[obs].T, b)                            # L' N^-1 L
            # K x K algebra for every (draw, own state) at once, the stack flattened last
            st = np.broadcast_shapes(st, a.shape[:-2])
            stacked = (_to_stack(lat_cov, st, (k, k)), _to_stack(a, st, (k, k)),
                       _to_stack(np.swapaxes(b, -1, -2), st, (k, m)), _to_stack(r, st, (m,)))
            if use_compiled():
                from neb_bayes.inference.draws_kernels import woodbury_stack

                n_st = stacked[3].shape[-1]
                vt_st, t = np.empty((k, m, n_st)), np.empty((k, n_st))
                ld, qs, ps = np.empty(n_st), np.empty(n_st), np.empty((m, n_st))
                woodbury_stack(*stacked, vt_st, t, ld, qs, ps)
            else:
                ld, qs, ps, vt_st = _woodbury_stack(*stacked)
            logdet = logdet + _from_stack(ld, st)
            quad = quad - _from_stack(qs, st)
            pr = pr - _from_stack(ps, st)                                # C^-1 r
            vt = move_axis(vt_st, 1, -1).reshape((k,) + st + (m,))     # (K,) + st + (n,)
        if other is not None:
            e = other[..., obs]
            if loo or k:
                # the full grid in one layout: (stack N = lead + the dimensions the mean and
                # covariance vary along, E = the dimensions ``other`` varies along); with the
                # dense C^-1 per stack entry, every full-grid quantity is one matrix product
                # over the m results (BLAS) and a few elementwise passes
                if mixture is not None:
                    return _expanded_loglik(st, e, pr, quad, logdet, n_inv, vt_st, True,
                                            mixture)
                out, cond = _expanded_loglik(st, e, pr, quad, logdet, n_inv,
                                             vt_st if k else None, loo)
                if loo and obs.all():
                    return out, cond
            else:
                # (r - e)' C^-1 (r - e) = r'C^-1 r - 2 (C^-1 r)'e + e'N^-1 e
                ee = (e[..., :, None] * e[..., None, :]).reshape(e.shape[:-1] + (m * m,))
                quad = (quad - 2.0 * _grid_dot(pr, e)
                        + _grid_dot(n_inv.reshape(n_inv.shape[:-2] + (m * m,)), ee))
                out = out - 0.5 * quad - logdet - 0.5 * m * LOG_2PI
        else:
            out = out - 0.5 * quad - logdet - 0.5 * m * LOG_2PI
            if loo:
                # C^-1 r and diag(C^-1) = diag(N^-1) - sum_k V_kj^2
                c_diag = np.diagonal(n_inv, axis1=-2, axis2=-1)
                if k:
                    c_diag = c_diag - np.sum(vt**2, axis=0)
                cond = [0.5 * (np.log(c_diag[..., j]) - LOG_2PI) - 0.5 * pr[..., j]**2 / c_diag[..., j]
                        for j in range(m)]
                if obs.all():
                    return out, cond
    if cen.any():
        # the censored rows of the covariance only (with the latent part: L_c S L')
        rows = cov[..., cen, :]
        if lat_cov.shape[-1]:
            rows = rows + np.matmul(np.matmul(loadings[cen], lat_cov), loadings.T)
        ccc = rows[..., :, cen]
        mu = mean[..., cen]
        if other is not None:
            mu = mu + other[..., cen]
        if obs.any():
            cco = rows[..., :, obs]
            if lat_cov.shape[-1]:
                # C_OO^-1 = N^-1 - V V' from the observed part's Woodbury factors
                coo_inv = n_inv - np.einsum("k...i,k...j->...ij", vt, vt)
            else:
                coo_inv = np.linalg.inv(cov[..., obs, :][..., :, obs])
            gain = np.matmul(cco, coo_inv)
            mu = mu + np.matmul(gain, r[..., None])[..., 0]
            if other is not None:
                shift = [_grid_dot(gain[..., j, :], e) for j in range(int(cen.sum()))]
                mu = mu - np.stack(shift, axis=-1)
            ccc = ccc - np.matmul(gain, np.swapaxes(cco, -1, -2))
        sign = censor[cen].astype(float)  # -1 below limit, +1 above
        lim = y[cen]
        log_mass = censored_log_mass(mu, ccc, sign, lim)
        out = out + log_mass
        if loo:
            return out, _censored_loo(obs, cond if obs.any() else [], log_mass,
                                      (coo_inv, gain, r, e if other is not None else None)
                                      if obs.any() else None, mu, ccc, sign, lim)
    return out


def censored_log_mass(mu: np.ndarray, ccc: np.ndarray, sign: np.ndarray,
                       lim: np.ndarray, factor: bool = True) -> np.ndarray:
    """log P(every censored result beyond its limit) over the grid: ``mu`` ``grid + (c,)`` and
    ``ccc`` (broadcastable to ``grid + (c, c)``) their conditional mean and covariance,
    ``sign`` -1 below the limit, +1 above.  One result: the normal CDF; two: the bivariate
    CDF on the log scale, accurate in its tails
    (:func:`~neb_bayes.inference.bivariate_normal.log_bivariate_normal_cdf`); three:
    :func:`trivariate_normal_cdf`; four: :func:`quadrivariate_normal_cdf`; more: Genz QMC
    per grid point.  Three or more are first split into groups uncorrelated with each other
    (:func:`_independent_groups`), each group's mass by its own rule; at the grid points
    where a group's covariance is one shared factor plus independent singletons and pairs
    (repeats of one analyte on different days; two analytes, each measured twice:
    :func:`_factor_cover`) by a one-dimensional integral, :func:`factor_normal_cdf`, whatever
    its size (``factor=False``: never)."""
    c = sign.size
    grid = np.broadcast_shapes(mu.shape[:-1], ccc.shape[:-2])
    if c >= 3:
        groups = _independent_groups(ccc)
        if len(groups) > 1:
            # uncorrelated at every grid point (e.g. two analytes on separate latents, each
            # measured twice): the mass is the product of the groups' masses
            return sum(censored_log_mass(mu[..., g], ccc[..., g, :][..., :, g], sign[g],
                                          lim[g]) for g in groups)
    d = -sign
    if c >= 3 and factor:
        # where the covariance is one factor plus independent singletons and pairs, a
        # one-dimensional integral (:func:`factor_normal_cdf`); the other grid points below
        cg = ccc.shape[:-2]
        label, loading, resid, patterns = _factor_cover(ccc.reshape((-1, c, c)))
        if patterns:
            row = np.broadcast_to(np.arange(label.size).reshape(cg), grid).reshape(-1)
            mu_f = np.broadcast_to(mu, grid + (c,)).reshape(-1, c)
            out = np.empty(row.size)
            lab = label[row]
            dd = np.outer(d, d)
            for q, pairs in enumerate(patterns):
                at = np.flatnonzero(lab == q)
                p = factor_normal_cdf(d * lim, d * mu_f[at], d * loading[row[at]],
                                      resid[row[at]] * dd, pairs)
                out[at] = np.log(np.maximum(p, 1e-300))
            rest = np.flatnonzero(lab < 0)
            if rest.size:
                out[rest] = censored_log_mass(mu_f[rest], ccc.reshape((-1, c, c))[row[rest]],
                                               sign, lim, factor=False)
            return out.reshape(grid)
    if c == 1:
        return log_ndtr(-sign[0] * (lim[0] - mu[..., 0]) / np.sqrt(ccc[..., 0, 0]))
    if c == 2:
        sd = np.sqrt(np.stack([ccc[..., 0, 0], ccc[..., 1, 1]], -1))
        t = -sign * (lim - mu) / sd
        rho = sign[0] * sign[1] * ccc[..., 0, 1] / (sd[..., 0] * sd[..., 1])
        from neb_bayes.inference.bivariate_normal import log_bivariate_normal_cdf

        return log_bivariate_normal_cdf(t[..., 0], t[..., 1], rho)
    if c == 3:
        p3 = trivariate_normal_cdf(d * lim, d * mu, ccc * np.outer(d, d))
        return np.log(np.maximum(p3, 1e-300))
    if c == 4:
        p4 = quadrivariate_normal_cdf(d * lim, d * mu, ccc * np.outer(d, d))
        return np.log(np.maximum(p4, 1e-300))
    # P(s_i * (w_i - lim_i) > 0 for all i) = P(D w < D lim) with D = diag(-sign)
    out = np.empty(grid)
    mu_b = np.broadcast_to(mu, grid + (c,))
    cov_b = np.broadcast_to(ccc, grid + (c, c))
    for ix in np.ndindex(*grid):
        out[ix] = _mvn_log_cdf(d * lim, d * mu_b[ix], cov_b[ix] * np.outer(d, d))
    return out


#: correlations at most this large (in absolute value) count as none when the censored
#: results are split into independent groups (the mass changes by at most ~|rho| / (2 pi))
RHO_INDEPENDENT = 1e-14


def _independent_groups(ccc: np.ndarray) -> list[np.ndarray]:
    """The censored results split into groups that are uncorrelated with each other at every
    grid point (connected components of the graph of correlations above
    :data:`RHO_INDEPENDENT`), each group's indices in order; one group when all are linked."""
    c = ccc.shape[-1]
    var = np.diagonal(ccc, axis1=-2, axis2=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.abs(ccc) / np.sqrt(var[..., :, None] * var[..., None, :])
    # (a NaN correlation counts as linked: no split where a grid point is undefined)
    linked = np.any(~(rho.reshape(-1, c, c) <= RHO_INDEPENDENT), axis=0)
    # the components by the graph's transitive closure (a handful of results: a few boolean
    # matrix products, where a sparse-graph routine spends ~0.2 ms checking its input)
    reach = (linked | linked.T | np.eye(c, dtype=bool)).astype(np.int64)
    for _ in range(max(1, (c - 1).bit_length())):
        reach = np.minimum(reach @ reach, 1)
    groups, seen = [], np.zeros(c, dtype=bool)
    for i in range(c):
        if not seen[i]:
            g = np.flatnonzero(reach[i])
            seen[g] = True
            groups.append(g)
    return groups


def _stack_layout(st: tuple[int, ...], e: np.ndarray):
    """The (stack ``N``, other points ``E``) layout of a block's full grid: ``st`` is the
    stack (``lead + grid``, larger than 1 along the grid dimensions the mean and covariance
    vary along), ``e`` (``grid + (m,)``) the other axes' mean part, varying along the
    remaining grid dimensions.  Returns ``e`` as ``(E, m)``, the grid dimensions of the stack
    and of ``e``, and the function that turns an ``(N, E)`` array into a view in grid order
    (``lead + grid``)."""
    m = e.shape[-1]
    g = e.ndim - 1
    nl = len(st) - g
    eg = e.shape[:-1]
    xd = [i for i in range(g) if st[nl + i] > 1]
    ed = [i for i in range(g) if i not in xd]
    if any(eg[i] > 1 for i in xd):
        raise ValueError("the mean parts vary along the same grid dimension")
    shape = st[:nl] + tuple(st[nl + i] for i in xd) + tuple(eg[i] for i in ed)
    perm = tuple(range(nl)) + tuple(nl + (xd.index(i) if i in xd else len(xd) + ed.index(i))
                                    for i in range(g))

    def on_grid(x: np.ndarray) -> np.ndarray:
        return x.reshape(shape).transpose(perm)

    return e.reshape(-1, m), xd, ed, on_grid


def _fused_mixture(r: np.ndarray, n_inv: np.ndarray, logdet: np.ndarray, loadings: np.ndarray,
                   lat_cov: np.ndarray, e: np.ndarray, mixture: tuple[np.ndarray, float],
                   precision: tuple[np.ndarray, np.ndarray] | None = None
                   ) -> np.ndarray | None:
    """:func:`gaussian_block_loglik`'s fused mixture (every result observed, parameter draws)
    in one compiled call (:func:`~neb_bayes.inference.draws_kernels.mixture_block`) from the
    residuals ``r`` (``lead + grid + (m,)``), the noise part's ``N^-1`` and ``log|N|^(1/2)``
    (over the grid), the loadings ``(m, K)``, the latent covariance ``lat_cov`` (the kernel
    reads its ``precision``, :func:`latent_precision`, computed here where not given) and
    the other axes' mean part ``e``; ``None`` where a term would overflow."""
    from neb_bayes.inference.draws_kernels import mixture_block

    m, k = r.shape[-1], lat_cov.shape[-1]
    st = np.broadcast_shapes(r.shape[:-1], n_inv.shape[:-2], lat_cov.shape[:-2])
    lay = _KernelLayout(st, e, n_inv.size > m * m)
    b = np.matmul(n_inv, loadings)                                       # N^-1 L
    prec, half_logdet = latent_precision(lat_cov) if precision is None else precision
    out = np.empty(math.prod(st) * lay.e_flat.shape[0])
    ok = mixture_block(_to_stack(r, st, (m,)), _to_stack(prec, st, (k, k)),
                       _to_stack(half_logdet, st, ()),
                       lay.per_x(n_inv, (m, m)), lay.per_x(logdet, ()),
                       lay.per_x(np.matmul(loadings.T, b), (k, k)),
                       lay.per_x(np.swapaxes(b, -1, -2), (k, m)),
                       np.ascontiguousarray(lay.e_flat.T),
                       np.asarray(mixture[0], dtype=float) + 0.5 * LOG_2PI, float(mixture[1]),
                       lay.positions, out)
    return lay.on_grid(out) if ok else None


class _KernelLayout:
    """How the draws path's block kernels (:mod:`neb_bayes.inference.draws_kernels`) see a
    block: the stack ``st`` (``lead + grid``: draws x the grid dimensions the mean and
    covariance vary along) flattened last, the noise parts per point ``X`` of the stack's
    grid part where the noise varies (``noise_varies``; else one), the other axes' mean
    part ``e`` as ``(E, m)`` points, and each (stack entry, point)'s place in the result
    (the grid in C order, the draws last in memory)."""

    def __init__(self, st: tuple[int, ...], e: np.ndarray, noise_varies: bool):
        self.st = st
        self.xs = st[len(st) - (e.ndim - 1):] if noise_varies else ()
        self.n_x = math.prod(self.xs)
        self.e_flat, xd, _, _ = _stack_layout(st, e)
        self.nl = len(st) - (e.ndim - 1)
        self.full = tuple(st[self.nl + i] if i in xd else n for i, n in enumerate(e.shape[:-1]))
        self.positions = _grid_positions(self.full, tuple(xd))

    def per_x(self, v: np.ndarray, tail: tuple[int, ...]) -> np.ndarray:
        """``v`` (its last dimensions: the noise's grid part, then ``tail``) as ``tail + (X,)``."""
        xs = self.xs
        if not xs:                                    # one noise part for every entry
            return np.ascontiguousarray(v.reshape(tail + (1,)))
        v = np.broadcast_to(v.reshape(v.shape[v.ndim - len(tail) - len(xs):]), xs + tail)
        return np.ascontiguousarray(move_axis(v.reshape((self.n_x,) + tail), 0, -1))

    def on_grid(self, out: np.ndarray) -> np.ndarray:
        """The kernel's flat result as ``lead + grid`` (a view: the draws last in memory)."""
        lead = self.st[:self.nl]
        return move_axis(out.reshape(self.full + (math.prod(lead),)), -1, 0).reshape(
            lead + self.full)


def _fused_censored(y: np.ndarray, censor: np.ndarray, mom: BlockMoments, log_q: np.ndarray,
                    eps: float) -> np.ndarray | None:
    """A block's log-likelihood with the gross-error mixture under parameter draws, for a
    block with exactly one censored result whose other axes have one point (most such
    blocks): :func:`~neb_bayes.inference.draws_kernels.censored_block`, one ``log_ndtr``
    over its standardised limits, and
    :func:`~neb_bayes.inference.draws_kernels.censored_finish` (the same quantities as
    :func:`gaussian_block_loglik` with ``loo``, :func:`_censored_loo` and
    :func:`gross_mixture`, without full-size intermediate arrays).  ``None`` where it does
    not apply or a term would overflow."""
    from neb_bayes.inference.draws_kernels import censored_block, censored_finish

    obs = censor == 0
    e = mom.other_mean
    if (~obs).sum() != 1 or obs.sum() == 0 or math.prod(e.shape[:-1]) != 1:
        return None
    ci = int(np.flatnonzero(~obs)[0])
    noise, lat_cov, loadings = mom.noise, mom.lat_cov, mom.loadings
    m, k, n = int(obs.sum()), lat_cov.shape[-1], obs.size
    n_inv, logdet = _inverse_logdet(noise[..., obs, :][..., :, obs], True)
    r = y[obs] - mom.own_mean[..., obs]
    st = np.broadcast_shapes(r.shape[:-1], n_inv.shape[:-2], lat_cov.shape[:-2])
    lay = _KernelLayout(st, e[..., obs], noise.size > n * n)
    l_o = loadings[obs]
    b = np.matmul(n_inv, l_o)                                            # N^-1 L
    n_st = math.prod(st)
    base, cond, z = np.empty(n_st), np.empty((m, n_st)), np.empty((m + 1, n_st))
    e_point = e.reshape(n)
    prec, half_logdet = latent_precision(lat_cov) if mom.lat_prec is None else mom.lat_prec
    censored_block(_to_stack(r, st, (m,)), _to_stack(lat_cov, st, (k, k)),
                   _to_stack(prec, st, (k, k)), _to_stack(half_logdet, st, ()),
                   lay.per_x(n_inv, (m, m)), lay.per_x(logdet, ()),
                   lay.per_x(np.matmul(l_o.T, b), (k, k)), lay.per_x(np.swapaxes(b, -1, -2), (k, m)),
                   np.ascontiguousarray(e_point[obs]), _to_stack(mom.own_mean[..., ci], st, ()),
                   float(e_point[ci]), lay.per_x(noise[..., ci, obs], (m,)),
                   lay.per_x(noise[..., ci, ci], ()), np.ascontiguousarray(l_o),
                   np.ascontiguousarray(loadings[ci]), float(y[ci]), float(censor[ci]),
                   base, cond, z)
    out = np.empty(n_st)
    if not censored_finish(base, cond, log_ndtr(z), np.asarray(log_q, dtype=float), ci,
                           float(eps), lay.positions, out):
        return None
    return lay.on_grid(out)


@lru_cache(maxsize=256)
def _grid_positions(full: tuple[int, ...], stack_dims: tuple[int, ...]) -> np.ndarray:
    """``(S, E)``: the C-order position in the grid ``full`` of stack entry ``s`` (C order
    over the dimensions ``stack_dims``) at point ``g`` of the other dimensions (C order
    over them)."""
    rest = tuple(i for i in range(len(full)) if i not in stack_dims)
    pos = np.arange(math.prod(full), dtype=np.int64).reshape(full).transpose(stack_dims + rest)
    pos = np.ascontiguousarray(pos.reshape(math.prod(full[i] for i in stack_dims), -1))
    pos.flags.writeable = False
    return pos


def _expanded_loglik(st: tuple[int, ...], e: np.ndarray, pr: np.ndarray, quad: np.ndarray,
                     logdet: np.ndarray, n_inv: np.ndarray, vt: np.ndarray | None, loo: bool,
                     mixture: tuple[np.ndarray, float] | None = None):
    """The observed results' log-likelihood (and leave-one-out terms) over the full grid, for
    a mean part that varies along ``st`` (``lead + grid``: the draw and own-axis dimensions;
    ``pr = C^-1 r``, ``quad = r'C^-1 r``, ``logdet = log|C|^(1/2)``) and an ``other`` part
    ``e`` (``grid + (m,)``) that varies along the remaining grid dimensions.

    Full-grid arrays are computed in the layout ``(stack N, other dimensions E)`` and returned
    as views in grid order (all with the same memory order, so elementwise work on them stays
    contiguous).  The quadratic form is ``r'C^-1 r - 2 (C^-1 r)'e + e'C^-1 e``; the
    leave-one-out terms need ``u = C^-1 (r - e)`` and ``diag(C^-1)``.  With many points along
    the other dimensions, ``C^-1 = N^-1 - V V'`` is formed densely per stack entry (``m x m``)
    and ``C^-1 e`` is a matrix product per result; with few, ``C^-1 e = N^-1 e - V (V'e)``
    costs K passes per result.

    With ``mixture = (log q (m,), eps)`` the function returns ``log p(y)`` plus the gross-error
    mixture's log factor ``log((1 - m eps) + eps sum_j q(y_j) / p(y_j | y_-j))`` as one array
    (each result's term exponentiated while it is in cache), or ``None`` where a term would
    overflow (the caller then takes the leave-one-out terms and :func:`gross_mixture`).
    """
    m = e.shape[-1]
    nl = len(st) - (e.ndim - 1)
    e_flat, xd, ed, on_grid = _stack_layout(st, e)
    n = math.prod(st)
    n_e = e_flat.shape[0]
    k = 0 if vt is None else vt.shape[0]
    ng = n_inv.shape[:-2]
    nx = tuple(ng[i] for i in xd)
    pr_st = _to_stack(pr, st, (m,))                                      # C^-1 r  (m, N)
    c0 = -0.5 * _to_stack(quad, st, ()) - _to_stack(logdet, st, ()) - 0.5 * m * LOG_2PI
    low_rank = (k and n_e * (2 * k - m / 8) <= k * m and not any(ng[i] > 1 for i in ed))
    if low_rank:
        wsh = st[:nl] + tuple(st[nl + i] for i in xd)                     # the stack, unflattened
        ne = (n_inv.reshape((-1, m)) @ e_flat.T).reshape(nx + (m, n_e))   # N^-1 e
        ne = move_axis(ne, -2, 0).reshape((m,) + (1,) * nl + nx + (n_e,))
        ve = np.matmul(vt.transpose(0, 2, 1), e_flat.T)                   # V'e  (K, N, E)
        # log p = c0 + (C^-1 r)'e - e'N^-1 e / 2 + |V'e|^2 / 2
        ll = pr_st.T @ e_flat.T
        ll += c0[:, None]
        ene = np.sum(ne * e_flat.T.reshape((m,) + (1,) * (nl + len(nx)) + (n_e,)), axis=0)
        ll.reshape(wsh + (n_e,))[...] -= 0.5 * ene
        tmp = np.empty_like(ll)
        for vk in ve:
            np.square(vk, out=tmp)
            tmp *= 0.5
            ll += tmp
        n_diag = np.diagonal(n_inv, axis1=-2, axis2=-1).reshape((1,) * nl + nx + (m,))
    else:
        q = _to_stack(n_inv, st, (m, m))                                 # (m, m, N)
        for v in vt if k else ():
            q -= v[:, None, :] * v[None, :, :]                           # C^-1 = N^-1 - V V'
        # log p = c0 + (C^-1 r)'e - e'C^-1 e / 2: one product over [1, e, e e']
        coef = np.concatenate([c0[:, None], pr_st.T, q.reshape(m * m, n).T], axis=1)
        ee = (e_flat[:, :, None] * e_flat[:, None, :]).reshape(n_e, m * m)
        basis = np.concatenate([np.ones((1, n_e)), e_flat.T, -0.5 * ee.T], axis=0)
        ll = coef @ basis
    cond: list[np.ndarray] = []
    if not loo:
        return on_grid(ll), cond
    acc = None
    for j in range(m):
        # u_j = (C^-1 (r - e))_j as a fresh contiguous (N, E) array, and c_j = (C^-1)_jj
        if low_rank:
            uj = np.subtract(pr_st[j].reshape(wsh + (1,)), ne[j]).reshape(ll.shape)
            cj = np.broadcast_to(n_diag[..., j], wsh).reshape(-1).copy()
            for kk in range(k):
                np.multiply(vt[kk, j][:, None], ve[kk], out=tmp)
                uj += tmp
                cj -= vt[kk, j] ** 2
        else:
            uj = q[j].T @ e_flat.T                                       # (C^-1 e)_j
            np.subtract(pr_st[j][:, None], uj, out=uj)
            cj = q[j, j]
        np.square(uj, out=uj)
        half_log = 0.5 * (np.log(cj) - LOG_2PI)
        if mixture is None:
            # log p(y_j | y_-j) = (log c_j - log 2 pi) / 2 - u_j^2 / (2 c_j)
            uj *= (-0.5 / cj)[:, None]
            uj += half_log[:, None]
            cond.append(on_grid(uj))
        else:
            # q(y_j) / p(y_j | y_-j), summed over j
            uj *= (0.5 / cj)[:, None]
            uj += (mixture[0][j] - half_log)[:, None]
            with np.errstate(over="ignore"):
                np.exp(uj, out=uj)
            if acc is None:
                acc = uj
            else:
                acc += uj
    if mixture is None:
        return on_grid(ll), cond
    if not np.isfinite(acc).all():
        return None
    eps = mixture[1]
    acc *= eps
    acc += 1.0 - m * eps
    ll += np.log(acc, out=acc)
    return on_grid(ll)


def _censored_loo(obs, cond_obs, log_mass, parts, mu, ccc, sign, lim) -> list:
    """``log p(y) - log p(y_-j)`` for every result of a block with censored results (at most
    :data:`LOO_CENSORED_MAX`), in block order, without recomputing the block.

    For an observed ``j``: its observed-part term (``cond_obs``, the leave-one-out identity)
    plus the change of the censored results' mass when ``j`` leaves the conditioning, by the
    inverse of a principal submatrix (``A = C_OO^-1``, ``g = C_cO A``, ``h = A (r - e)``): the
    censored results' conditional mean moves by ``-g_j h_j / A_jj`` and their covariance by
    ``+g_j g_j' / A_jj`` (rank one).  For a censored ``j``: the mass of all of them minus that
    of the others (the same conditional, without ``j``'s row and column).
    """
    out: list = [None] * obs.size
    cen_at = np.flatnonzero(~obs)
    for c, pos in enumerate(cen_at):
        keep = np.delete(np.arange(cen_at.size), c)
        rest = (censored_log_mass(mu[..., keep], ccc[..., keep, :][..., :, keep], sign[keep],
                                   lim[keep]) if keep.size else 0.0)
        out[pos] = log_mass - rest
    if parts is None:
        return out
    coo_inv, gain, r, e = parts
    h = np.matmul(coo_inv, r[..., None])[..., 0]
    a_diag = np.diagonal(coo_inv, axis1=-2, axis2=-1)
    mus, cccs = [], []
    for j in range(int(obs.sum())):
        hj = h[..., j]
        if e is not None:
            hj = hj - _grid_dot(coo_inv[..., j, :], e)
        gj, ajj = gain[..., :, j], a_diag[..., j]
        slope = gj / ajj[..., None]                                   # g_j / A_jj  (.., c)
        mus.append(mu - slope * hj[..., None])
        cccs.append(ccc + slope[..., :, None] * gj[..., None, :])
    if mus:
        # every observed result's leave-one-out mass in one call, stacked in front of the
        # grid (one pass of the CDF rules' setup instead of one per result)
        rest = censored_log_mass(np.stack(np.broadcast_arrays(*mus)),
                                  np.stack(np.broadcast_arrays(*cccs)), sign, lim)
        for j, pos in enumerate(np.flatnonzero(obs)):
            out[pos] = (log_mass - rest[j]) + cond_obs[j]
    return out


#: blocks with up to this many censored results get their gross-error terms from the block's
#: own algebra (:func:`_censored_loo`); beyond, each p(y_-j) is computed anew
LOO_CENSORED_MAX = 3


def block_loglik(
    model: CompiledModel,
    block: Block,
    keep: np.ndarray | None = None,
    latent: tuple[np.ndarray, np.ndarray] | None = None,
    log_median: np.ndarray | None = None,
    gross: bool = True,
) -> np.ndarray:
    """A block's log-likelihood as a tensor broadcastable to the joint state shape
    (with the leading draw dimension of ``latent`` when given).

    With ``gross`` (and a prior set whose ``gross_error.rate`` is above 0) the block's
    results may hold one gross error (see :meth:`CompiledModel.gross_log_density`):
    p = (1 - n eps) p(y) + eps sum_j q(y_j) p(y_-j).  Observed results use the leave-one-out
    identity (with censored results, plus a rank-one change of their conditional); a block
    with more than :data:`LOO_CENSORED_MAX` censored results recomputes each p(y_-j).
    """
    idx = np.arange(block.n) if keep is None else np.asarray(keep)
    return _on_joint(model, block, _grid_loglik(model, block, idx, latent, log_median, gross))


def _on_joint(model: CompiledModel, block: Block, ll: np.ndarray) -> np.ndarray:
    """A ``lead + deps shape`` tensor as one broadcastable to the joint state shape."""
    shape = [1] * len(model.axes)
    for d in block.deps:
        shape[d] = model.axes[d].n_states
    lead = ll.shape[: ll.ndim - len(block.deps)]
    return ll.reshape(lead + tuple(shape))


def _grid_loglik(model: CompiledModel, block: Block, idx: np.ndarray, latent, log_median,
                 gross: bool) -> np.ndarray:
    """:func:`block_loglik` over the block's dependency grid (``lead + deps shape``); with
    parameter draws, computed on the distinct combinations of the other axes' states
    (:class:`_DistinctOthers`, the gross-error mixture included) and read back at the end."""
    mom = block_moments(model, block, idx, latent, log_median)
    red = _DistinctOthers.of(mom, int((block.censor[idx] != 0).sum()))
    ll, ratio = _gaussian_and_gross_on(model, block, idx, mom if red is None else red.reduce(mom),
                                       latent, log_median, gross, True, red)
    if ratio is not None:
        ll = ll + gross_mixture(ratio, model.gross_error_rate)
    return ll if red is None else red.expand(ll)


def block_log_factor(model: CompiledModel, block: Block, latent=None
                     ) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """A block's factor ``log p(results | dependency states)`` over ``block.deps`` (in that
    order), with at most one gross error among its results (:func:`gross_mixture`), and the
    gross-error terms it was mixed from (None without gross errors).  ``latent``: the
    axis' per-state latent mean and covariance (the model's when None), e.g. with a case's
    context shifts (:meth:`~neb_bayes.evidence.Evidence.latent_params`)."""
    ll, ratio = _gaussian_and_gross(model, block, np.arange(block.n), latent, None, True)
    if ratio is not None:
        ll = ll + gross_mixture(ratio, model.gross_error_rate)
    return ll, ratio


def _gaussian_and_gross(model: CompiledModel, block: Block, idx: np.ndarray, latent, log_median,
                        gross: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """log p(y | states) without gross errors, and (with ``gross``) for every result j
    ``log q(y_j) + log p(y_-j | states) - log p(y | states)`` (a list of ``n`` arrays
    broadcastable to the grid).  (With parameter draws, :func:`_grid_loglik` evaluates a
    block on the distinct combinations of the other axes' states, :class:`_DistinctOthers`.)"""
    mom = block_moments(model, block, idx, latent, log_median)
    red = _DistinctOthers.of(mom, int((block.censor[idx] != 0).sum()))
    if red is None:
        return _gaussian_and_gross_on(model, block, idx, mom, latent, log_median, gross, False)
    ll, ratio = _gaussian_and_gross_on(model, block, idx, red.reduce(mom), latent, log_median,
                                       gross, False, red)
    return red.expand(ll), None if ratio is None else [red.expand(r) for r in ratio]


#: :meth:`_DistinctOthers._classes` by (id of ``other_mean``, grid); entries hold the array,
#: so an id is never reused while it is kept
_CLASSES: OrderedDict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

#: blocks whose (draws x) grid has at least this many points are evaluated on the distinct
#: combinations of the other axes' states (below, finding them costs more than it saves)
DISTINCT_MIN = 4096


@dataclass(frozen=True)
class _DistinctOthers:
    """The combinations of a block's other dependency axes' states that shift its results
    alike (most states of another axis affect none of them): their likelihood is the same,
    so it is computed once per distinct combination on a ``(own states, R')`` grid and read
    back per grid point.  Results left out of the block keep that property, so the mapping
    of a block serves its sub-blocks too."""

    grid: tuple[int, ...]     # the block's dependency grid
    own_pos: int
    first: np.ndarray         # (R',) a combination of each class, in C order of the others
    inverse: np.ndarray       # (R,) the class of every combination

    @classmethod
    def of(cls, mom: BlockMoments, censored: int = 0) -> _DistinctOthers | None:
        """The mapping for a block's moments, or ``None`` where it would not pay: with
        parameter draws on large grids; with one parameter set (small grids, dense form) only
        for a block with ``censored`` >= 2 censored results, whose bivariate or trivariate
        normal CDF per grid point (and per result left out) is the heavy part."""
        grid_nd = mom.other_mean.ndim - 1
        lead = mom.own_mean.shape[:mom.own_mean.ndim - grid_nd - 1]
        if not lead and censored < 2:
            return None
        grid = tuple(max(a, b) for a, b in zip(mom.own_mean.shape[len(lead):-1],
                                               mom.other_mean.shape[:-1], strict=True))
        n_rest = math.prod(grid) // grid[mom.own_pos]
        if n_rest < 2 or (lead and math.prod(lead) * math.prod(grid) < DISTINCT_MIN):
            return None
        first, inverse = cls._classes(mom, grid)
        if first.size == n_rest:
            return None
        return cls(grid, mom.own_pos, first, inverse)

    @classmethod
    def _classes(cls, mom: BlockMoments, grid: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """:func:`~neb_bayes.tensor.distinct_rows` of :meth:`_rows`, kept per ``other_mean``
        array (blocks of one structure share it, :func:`_block_structure`) and grid."""
        key = (id(mom.other_mean), grid)
        hit = _CLASSES.get(key)
        if hit is not None and hit[0] is mom.other_mean:
            return hit[1], hit[2]
        first, inverse = distinct_rows(cls._rows(mom, grid))
        if not mom.other_mean.flags.writeable:         # (a kept structure's: it stays as it is)
            first.flags.writeable = inverse.flags.writeable = False
            with _STRUCTURES_LOCK:
                _keep(_CLASSES, key, (mom.other_mean, first, inverse), STRUCTURES_MAX)
        return first, inverse

    @staticmethod
    def _rows(mom: BlockMoments, grid: tuple[int, ...]) -> np.ndarray:
        """The other axes' mean part per combination, ``(R, n)``."""
        shape = list(grid)
        shape[mom.own_pos] = 1
        n = mom.other_mean.shape[-1]
        return np.broadcast_to(mom.other_mean, tuple(shape) + (n,)).reshape(-1, n)

    def reduce(self, mom: BlockMoments) -> BlockMoments:
        """The moments on the ``(own states, R')`` grid (own axis first)."""
        n = mom.other_mean.shape[-1]
        g = len(self.grid)
        lead = mom.own_mean.shape[:mom.own_mean.ndim - g - 1]
        k = mom.lat_cov.shape[-1]
        prec = mom.lat_prec
        if prec is not None:
            prec = (prec[0].reshape(lead + (-1, 1, k, k)), prec[1].reshape(lead + (-1, 1)))
        return BlockMoments(
            own_mean=mom.own_mean.reshape(lead + (-1, 1, n)),
            other_mean=self._rows(mom, self.grid)[self.first].reshape(1, -1, n),
            noise=mom.noise.reshape((-1, 1, n, n)),
            lat_cov=mom.lat_cov.reshape(lead + (-1, 1, k, k)),
            loadings=mom.loadings, own_pos=0, lat_prec=prec)

    def expand(self, x):
        """An array broadcastable to ``lead + (own states, R')`` back on the block's whole
        grid, ``lead + grid``."""
        if np.ndim(x) < 2:
            return x
        x = np.asarray(x)
        lead = x.shape[:-2]
        nl = len(lead)
        own = self.grid[self.own_pos]
        rest = tuple(n for i, n in enumerate(self.grid) if i != self.own_pos)
        # read with the leading (draw) dimensions last, so that the result has them last in
        # memory too: contiguous rows to copy, and the layout the contraction reads
        x = np.moveaxis(np.broadcast_to(x, lead + (own, self.first.size)), range(nl),
                        range(-nl, 0))[:, self.inverse]
        x = np.moveaxis(x.reshape((own,) + rest + lead), range(-nl, 0), range(nl))
        return move_axis(x, nl, nl + self.own_pos)


def _gaussian_and_gross_on(model: CompiledModel, block: Block, idx: np.ndarray,
                           mom: BlockMoments, latent, log_median, gross: bool, fuse: bool,
                           red: _DistinctOthers | None = None):
    """:func:`_gaussian_and_gross` on given moments (the block's grid, or the distinct
    combinations of ``red``), results on the moments' grid.  With ``fuse`` (the caller wants
    only the mixed likelihood) the draws path may return the mixed log-likelihood with
    ``None`` for the terms."""
    eps = model.gross_error_rate if gross else 0.0
    mixed = eps > 0.0 and idx.size > 0
    loo = mixed and (block.censor[idx] != 0).sum() <= LOO_CENSORED_MAX
    draws = mom.own_mean.ndim > mom.other_mean.ndim
    if (fuse and loo and draws and mom.lat_cov.shape[-1] and not block.censor[idx].any()):
        # parameter draws, every result observed: the mixture summed as each result's
        # leave-one-out term is computed (falls through where a term would overflow)
        ll = gaussian_block_loglik(block.y[idx], block.censor[idx], mom.own_mean, mom.noise,
                                   other=mom.other_mean, low_rank=(mom.loadings, mom.lat_cov),
                                   mixture=(_block_log_q(model, block)[idx], eps),
                                   precision=mom.lat_prec)
        if ll is not None:
            return ll, None
    if (fuse and loo and draws and mom.lat_cov.shape[-1] and use_compiled()
            and (block.censor[idx] != 0).sum() == 1):
        # parameter draws, one censored result: the same in compiled passes where the
        # other axes have one point (most such blocks)
        ll = _fused_censored(block.y[idx], block.censor[idx], mom, _block_log_q(model, block)[idx],
                             eps)
        if ll is not None:
            return ll, None
    if draws:
        # parameter draws: the expanded mean and the rank-K latent covariance keep the work
        # per draw small
        ll = gaussian_block_loglik(block.y[idx], block.censor[idx], mom.own_mean, mom.noise,
                                   other=mom.other_mean, low_rank=(mom.loadings, mom.lat_cov),
                                   loo=loo)
    else:
        # one parameter set: the dense form over the grid is cheaper than the bookkeeping
        ll = gaussian_block_loglik(block.y[idx], block.censor[idx], mom.mean, mom.cov, loo=loo)
    if not mixed:
        return ll, None
    log_q = _block_log_q(model, block)[idx]
    if loo:
        ll, cond = ll
        return ll, [lq - c for lq, c in zip(log_q, cond, strict=True)]
    # censored results: each p(y_-j) directly (on the same grid); results that are
    # exchangeable (repeats of one analyte on different days with the same value and limit:
    # a suppressed TSH month after month) leave the same block behind, computed once
    rest: list = []
    done: list[tuple[bytes, BlockMoments, np.ndarray]] = []
    for j in range(idx.size):
        sub = np.delete(idx, j)
        if sub.size == 0:
            rest.append(0.0)
            continue
        sub_mom = block_moments(model, block, sub, latent, log_median)
        if red is not None:
            sub_mom = red.reduce(sub_mom)
        key = block.y[sub].tobytes() + block.censor[sub].tobytes()
        same = next((val for k, m, val in done if k == key and _same_moments(m, sub_mom)), None)
        if same is None:
            same = _gaussian_and_gross_on(model, block, sub, sub_mom, latent, log_median,
                                          False, True, red)[0]
            done.append((key, sub_mom, same))
        rest.append(same)
    return ll, [r - ll + lq for r, lq in zip(rest, log_q, strict=True)]


def _same_moments(a: BlockMoments, b: BlockMoments) -> bool:
    """Whether two blocks' moments are equal bit for bit, every field of them (so are their
    likelihoods)."""
    return all(_same_value(getattr(a, f.name), getattr(b, f.name))
               for f in fields(BlockMoments))


def _same_value(x: object, y: object) -> bool:
    """Bit-for-bit equality of arrays, tuples of them, numbers and ``None``."""
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.shape == y.shape
                and np.array_equal(x, y))
    if isinstance(x, tuple) or isinstance(y, tuple):
        return (isinstance(x, tuple) and isinstance(y, tuple) and len(x) == len(y)
                and all(_same_value(u, v) for u, v in zip(x, y, strict=True)))
    return x == y


#: log q(y) of each block's results, kept while the block is in use (explanations evaluate a
#: block's sub-blocks many times); entries hold the block itself, so an id is never reused
_LOG_Q: dict[int, tuple] = {}


def _block_log_q(model: CompiledModel, block: Block) -> np.ndarray:
    val = _cached_log_q(model, block)
    if val is None:
        val = model.gross_log_density(block.channel, block.y, block.censor, block.sex)
        _keep_log_q(model, [block], [val])
    return val


def prime_block_log_q(model: CompiledModel, blocks: list[Block]) -> None:
    """Every block's log q(y) (:func:`_block_log_q`) in one call over all their results: the
    same numbers (each result's value depends on that result only), one pass of the
    per-channel work instead of one per block."""
    todo = [b for b in blocks if _cached_log_q(model, b) is None]
    if model.gross_error_rate <= 0.0:
        return
    for sex in dict.fromkeys(b.sex for b in todo):    # one case's blocks: one sex
        same = [b for b in todo if b.sex == sex]
        if len(same) < 2:
            continue
        val = model.gross_log_density(np.concatenate([b.channel for b in same]),
                                      np.concatenate([b.y for b in same]),
                                      np.concatenate([b.censor for b in same]), sex)
        _keep_log_q(model, same, np.split(val, np.cumsum([b.y.size for b in same])[:-1]))


def _cached_log_q(model: CompiledModel, block: Block) -> np.ndarray | None:
    """A block's kept log q(y), or ``None``."""
    hit = _LOG_Q.get(id(block))
    return (hit[2] if hit is not None and hit[0] is block
            and hit[1] is model.gross_mix_for(block.sex) else None)


def _keep_log_q(model: CompiledModel, blocks: list[Block], values: list[np.ndarray]) -> None:
    """Keep blocks' log q(y) (at most 64 blocks: the cache is emptied when it would be more)."""
    if len(_LOG_Q) + len(blocks) > 64:
        _LOG_Q.clear()
    for b, v in zip(blocks, values, strict=True):
        _LOG_Q[id(b)] = (b, model.gross_mix_for(b.sex), v)


def results_beyond_states(model: CompiledModel, ev: Evidence, z_min: float) -> list[dict]:
    """Observed results further than ``z_min`` standard deviations from their expected level
    in every state the patient can be in (each state's own distribution of that result, its
    latents integrated out, the case's context, rhythm and laboratory terms included).

    Such a result lies beyond the range of every state of the model: the probabilities read
    it as the state nearest to it (a gross error is drawn from states the patient can be in,
    so it does not explain it better), and the report says that it lies that far out.
    Returns one dict per such result: ``source`` (its measurement index), ``z`` (signed, from
    the nearest state) and ``state`` (the nearest own-axis state).
    """
    lp = log_prior(model, ev.covariates)
    out = []
    for block in ev.blocks:
        observed = np.flatnonzero(block.censor == 0)
        if observed.size == 0:
            continue
        mom = block_moments(model, block, latent=ev.latent_params(model, block.axis))
        others = tuple(a for a in range(lp.ndim) if a not in block.deps)
        possible = np.isfinite(lp).any(axis=others) if others else np.isfinite(lp)
        grid = possible.shape + (block.n,)
        sd = np.sqrt(np.broadcast_to(np.diagonal(mom.cov, axis1=-2, axis2=-1), grid))
        z = ((block.y - np.broadcast_to(mom.mean, grid)) / sd)[possible]      # (points, n)
        own = np.nonzero(possible)[block.deps.index(block.axis)]
        for j in observed.tolist():
            k = int(np.argmin(np.abs(z[:, j])))
            if abs(z[k, j]) > z_min:
                out.append({"source": int(block.source[j]), "z": float(z[k, j]),
                            "state": model.axes[block.axis].states[int(own[k])]})
    return out


def gross_error_probabilities(model: CompiledModel, block: Block, ratio: list[np.ndarray] | None,
                              joint: np.ndarray) -> np.ndarray:
    """P(result j is the block's gross error | all evidence) for every result of a block.

    ``ratio`` are the block's gross-error terms (:attr:`ExactPosterior.factors`
    ``"gross_ratio"``, ``None`` without the component) and ``joint`` the normalised posterior
    over the joint states; within each state of the block's dependencies the responsibility of
    result j is eps q(y_j) p(y_-j) / ((1 - n eps) p(y) + eps sum_i q(y_i) p(y_-i)).
    """
    if ratio is None:
        return np.zeros(block.n)
    eps = model.gross_error_rate
    mix = gross_mixture(ratio, eps)
    others = tuple(i for i in range(joint.ndim) if i not in block.deps)
    w = joint.sum(axis=others)                      # over the block's deps, in deps order
    return np.array([float((w * np.exp(math.log(eps) + r - mix)).sum()) for r in ratio])


def gross_mixture(log_ratio: list[np.ndarray], eps: float) -> np.ndarray:
    """``log((1 - n eps) + eps sum_j exp(log_ratio_j))`` over the ``n`` arrays (broadcastable to
    one shape): the log factor by which at most one gross error among ``n`` results changes a
    block's likelihood, with ``log_ratio_j = log q(y_j) + log p(y_-j) - log p(y)``."""
    n = len(log_ratio)
    shape = np.broadcast_shapes(*(np.shape(r) for r in log_ratio))
    # without a shift first (n exponentials and sums, in the memory order of the terms: the
    # draws path gives them as same-layout views); a term large enough to overflow (a result
    # some 37 standard deviations from every state's expectation) takes the shifted form
    full = [r for r in log_ratio if np.shape(r) == shape]
    tot = np.empty_like(full[0]) if full else np.empty(shape)
    tmp = np.empty_like(tot)
    with np.errstate(over="ignore"):
        np.exp(log_ratio[0], out=tot)
        for r in log_ratio[1:]:
            tot += np.exp(r, out=tmp)
    if np.isfinite(tot).all():
        tot *= eps
        tot += 1.0 - n * eps
        return np.log(tot, out=tot)
    mx = np.zeros(shape)
    for r in log_ratio:
        np.maximum(mx, r, out=mx)
    tot = np.exp(-mx)
    tot *= 1.0 - n * eps
    for r in log_ratio:
        tot += eps * np.exp(r - mx)
    np.log(tot, out=tot)
    tot += mx
    return tot


# --------------------------------------------------------------------------------------------
# symptoms
def _axis_shape(model: CompiledModel, ai: int) -> list[int]:
    shape = [1] * len(model.axes)
    shape[ai] = model.axes[ai].n_states
    return shape


def _present_potentials_numpy(model: CompiledModel, present: np.ndarray, log1m_leak: np.ndarray,
                              log1m_cause: tuple[np.ndarray, ...], lead: tuple[int, ...]):
    """The present symptoms' potentials of :func:`symptom_level_factors` in numpy (without
    loading numba, :mod:`neb_bayes.accel`): one table per set of cause axes."""
    nd = len(model.axes)
    n_prop = log1m_leak.shape[-2]
    potentials: dict[tuple[int, ...], np.ndarray] = {}
    for y in present:
        # built with the lead (draw) dimension last in memory, the cause product growing one
        # axis at a time and then times the leak (the compiled pass's order), returned as
        # lead-first views
        q = None
        causes = []
        for ai in range(nd):
            col = log1m_cause[ai][..., y]
            if np.any(col != 0):
                shape = _axis_shape(model, ai) + [1]
                c = move_axis(np.exp(col), -1, 0).reshape(tuple(shape) + (-1,) * bool(lead))
                q = c if q is None else q * c
                causes.append(ai)
        leak = move_axis(np.exp(log1m_leak[..., y]), -1, 0).reshape(
            (1,) * nd + (n_prop,) + (-1,) * bool(lead))
        q = leak if q is None else leak * q
        q = np.subtract(1.0, q)
        if lead:
            q = move_axis(q, -1, 0)
        key = tuple(causes)
        if key in potentials:
            potentials[key] *= q
        else:
            potentials[key] = q
    return list(potentials.values())


def symptom_level_factors(
    model: CompiledModel,
    present: np.ndarray,
    absent: np.ndarray,
    log1m_leak: np.ndarray,
    log1m_cause: tuple[np.ndarray, ...],
    can_cause: np.ndarray | None = None,
    single: bool = False,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The symptom likelihood as factors over ``(lead, S_0, ..., S_{n-1}, P)``.

    The propensity level ``P`` is kept as a last dimension to be summed out by a
    contraction (:func:`neb_bayes.tensor.contract_marginals`): each present symptom is then a
    factor over its own cause axes only, never over the product of all of them.  ``can_cause``
    ``(n_axes, len(present))``, when given, says which axes have a non-zero cause term for
    each present symptom (under some draw); otherwise it is read from the tables.  With
    ``single`` the potentials are float32 (formed in float64, rounded once), the contraction's
    type, so that it copies nothing; float64 wherever a value is below
    :data:`~neb_bayes.tensor.SINGLE_LOW` (float32 could lose it).

    Returns
    -------
    log_factors, potentials
        The absent symptoms and the level weights as log-factors; the present symptoms as
        probabilities ``1 - exp(log1m_leak + sum of log1m_cause)``, one table per set of cause
        axes (symptoms with the same causes multiplied together).
    """
    nd = len(model.axes)
    lead = log1m_leak.shape[:-2]
    n_prop = log1m_leak.shape[-2]
    absent = np.asarray(absent, dtype=np.int64)
    present = np.asarray(present, dtype=np.int64)
    out = []
    base = model.log_propensity_w + log1m_leak[..., absent].sum(-1)          # (..., P)
    out.append(base.reshape(lead + (1,) * nd + (n_prop,)))
    if absent.size:
        for ai in range(nd):
            out.append(log1m_cause[ai][..., absent].sum(-1).reshape(
                lead + tuple(_axis_shape(model, ai)) + (1,)))
    # 1 - exp(leak + sum_a cause_a) as 1 - exp(leak) prod_a exp(cause_a): exponentials on
    # the small per-axis tables, products on the grid, in one compiled pass per set of cause
    # axes (:func:`neb_bayes.inference.draws_kernels.present_symptoms`; P(present) >= the leak,
    # so the subtraction keeps its relative precision).  The tables are built with the lead
    # (draw) dimension last in memory and returned as lead-first views: the contraction keeps
    # that dimension last, so it copies nothing.
    if not use_compiled():
        return out, _present_potentials_numpy(model, present, log1m_leak, log1m_cause, lead)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, y in enumerate(present):
        causes = tuple(ai for ai in range(nd)
                       if (can_cause[ai, i] if can_cause is not None
                           else np.any(log1m_cause[ai][..., y] != 0)))
        groups.setdefault(causes, []).append(int(y))
    potentials = []
    if groups:
        from neb_bayes.inference.draws_kernels import present_symptoms
        from neb_bayes.tensor import SINGLE_LOW

    n_lead = math.prod(lead)
    for causes, ys in groups.items():
        leak = np.exp(move_axis(np.broadcast_to(log1m_leak[..., ys], lead + (n_prop, len(ys)))
                                .reshape(n_lead, n_prop, len(ys)), 0, -1))     # (P, Y, D)
        cols = [move_axis(np.broadcast_to(log1m_cause[ai][..., ys],
                                          lead + (model.axes[ai].n_states, len(ys)))
                          .reshape(n_lead, -1, len(ys)), 0, -1)
                for ai in causes]                                                # (S_a, Y, D)
        cause = np.exp(np.concatenate(cols, axis=0).transpose(1, 0, 2)) if causes else \
            np.ones((len(ys), 0, n_lead))
        sizes = np.array([model.axes[ai].n_states for ai in causes], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        args = (np.ascontiguousarray(leak.transpose(1, 0, 2)), np.ascontiguousarray(cause),
                starts, sizes)
        q = np.empty((math.prod(sizes), n_prop, n_lead),
                     dtype=np.float32 if single else np.float64)
        if present_symptoms(*args, q, SINGLE_LOW if single else 0.0):
            q = np.empty(q.shape)
            present_symptoms(*args, q, 0.0)
        shape = tuple(model.axes[ai].n_states if ai in causes else 1 for ai in range(nd))
        q = q.reshape(shape + (n_prop, n_lead))
        potentials.append(move_axis(q, -1, 0).reshape(lead + shape + (n_prop,)))
    return out, potentials


# --------------------------------------------------------------------------------------------
# posterior summaries from a joint log tensor
def _normalise(log_joint: np.ndarray) -> tuple[np.ndarray, float]:
    mx = np.max(log_joint)
    p = np.exp(log_joint - mx)
    z = p.sum()
    return p / z, float(mx + math.log(z))


def axis_marginals(joint: np.ndarray) -> list[np.ndarray]:
    """Posterior probability of each state of each axis (clipped to [0, 1]: a state with all
    the mass can sum to 1 + 2e-16)."""
    v = np.clip(_marginal_matrix(joint.shape) @ joint.reshape(-1), 0.0, 1.0)
    return np.split(v, np.cumsum(joint.shape)[:-1])


@lru_cache(maxsize=8)
def _marginal_matrix(sizes: tuple[int, ...]) -> np.ndarray:
    """``(sum of the axes' states, joint states)``: 1 where a joint state (C order) has an
    axis' state, the axes' states one after another.  Times a joint tensor's values it
    gives every axis' marginal in one matrix product (a reduction over all dimensions but
    one per axis runs its inner loops over the last axis' few states: several times
    slower)."""
    idx = np.indices(sizes).reshape(len(sizes), -1)
    start = np.concatenate([[0], np.cumsum(sizes)])
    out = np.zeros((start[-1], idx.shape[1]))
    cols = np.arange(idx.shape[1])
    for a in range(len(sizes)):
        out[start[a] + idx[a], cols] = 1.0
    return out


@lru_cache(maxsize=8)
def _condition_matrix(model: CompiledModel) -> np.ndarray:
    """``(conditions + 1, joint states)``: 1 where a joint state belongs to a condition, and
    in the last row where every axis is in a healthy state (``none``)."""
    sizes = tuple(ax.n_states for ax in model.axes)
    idx = np.indices(sizes).reshape(len(sizes), -1)
    out = np.zeros((len(model.cond_axis) + 1, idx.shape[1]))
    for k, (a, mask) in enumerate(zip(model.cond_axis, model.cond_states, strict=True)):
        out[k] = np.asarray(mask, dtype=bool)[idx[a]]
    out[-1] = np.all([np.asarray(ax.healthy, dtype=bool)[idx[a]]
                      for a, ax in enumerate(model.axes)], axis=0)
    return out


@lru_cache(maxsize=8)
def _condition_sides(model: CompiledModel) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_condition_matrix` and its complement (1 where a state is not in the row's
    condition), read-only."""
    inside = _condition_matrix(model)
    outside = 1.0 - inside
    inside.setflags(write=False)
    outside.setflags(write=False)
    return inside, outside


#: reported log Bayes factors are clipped to this (a factor of ~1e434)
LOG_BF_MAX = 1000.0
#: a side of a log odds whose summed mass (relative to the largest joint state's) is below
#: this is summed again in log space (its states' masses may have underflowed)
_SIDE_LOW = 1e-250


def condition_log_odds(model: CompiledModel, log_joint: np.ndarray) -> np.ndarray:
    """``log P(c) - log P(not c)`` for each condition ``c`` and ``none`` (last), from the
    unnormalised log posterior over joint states.

    Each side is summed over its own joint states, never taken as ``1 - p``: exact for
    probabilities near 0 and 1 (``1 - p`` of a probability of 1 - 1e-13 keeps three
    digits; past 1 - 1e-16 none), to any magnitude (a side whose mass is tiny relative to
    the largest state's is summed in log space).  A side with no mass at all (a condition
    this patient cannot have) gives an infinite log odds."""
    inside, outside = _condition_sides(model)
    lj = log_joint.reshape(-1)
    mx = float(np.max(lj))
    p = np.exp(lj - mx)
    sides = np.stack([inside @ p, outside @ p])                         # (2, rows)
    with np.errstate(divide="ignore"):
        out = np.log(sides)
    for side, rows in ((0, inside), (1, outside)):
        for r in np.flatnonzero(sides[side] < _SIDE_LOW):
            at = lj[rows[r] > 0]
            if at.size and np.max(at) > -np.inf:
                top = float(np.max(at))
                out[side, r] = top - mx + math.log(np.sum(np.exp(at - top)))
    return out[0] - out[1]


def condition_probabilities(model: CompiledModel,
                            joint: np.ndarray) -> tuple[np.ndarray, float]:
    """P(condition) for each condition and P(none of them), from one matrix product."""
    v = np.clip(_condition_matrix(model) @ joint.reshape(-1), 0.0, 1.0)
    return v[:-1], float(v[-1])


@dataclass
class ExactPosterior:
    """Raw output of the exact engine for one case and one parameter set."""

    joint: np.ndarray                 # normalised posterior over joint states
    log_evidence: float               # log p(all evidence) under the model
    condition_probs: np.ndarray       # (n_conditions,)
    none_prob: float
    marginals: list[np.ndarray]       # per axis
    prior_marginals: list[np.ndarray]
    prior_condition_probs: np.ndarray  # (n_conditions + 1,) prior P(condition), last = none
    groups: list[dict]                # evidence groups (for contributions)
    log_bf: np.ndarray | None         # (n_groups, n_conditions + 1): log Bayes factor per group
    factors: dict                     # block_ll: per block; gross_ratio: per axis (latents)
    gross_errors: list[dict] = field(default_factory=list)  # per result: P(it is a gross error)


class SymptomTerms:
    """log p(reported symptoms | joint state), the propensity level summed out.

    Noisy-OR: P(present | s, k) = 1 - exp(leak_k + sum_a cause_a(s_a)).  An absent symptom's
    log-likelihood is additive over axes; a present one couples only the axes that can cause
    it (``cause_axes``), so the sum over propensity levels runs on the grid of those axes alone
    and is then broadcast.  Each symptom's terms are computed once, so leaving one out (for
    its log Bayes factor) only re-sums them.  Tables with a leading draw dimension give
    results with that dimension.
    """

    def __init__(self, model: CompiledModel, present: np.ndarray, absent: np.ndarray,
                 log1m_leak: np.ndarray | None = None,
                 log1m_cause: tuple[np.ndarray, ...] | None = None):
        nd = len(model.axes)
        leak = model.log1m_leak if log1m_leak is None else log1m_leak
        cause = model.log1m_cause if log1m_cause is None else log1m_cause
        self.nd = nd
        self.lead = leak.shape[:-2]
        self.log_w = model.log_propensity_w
        self.shapes = [self.lead + tuple(_axis_shape(model, ai)) for ai in range(nd)]
        present = np.asarray(present, dtype=np.int64)
        self.absent_ids = np.asarray(absent, dtype=np.int64)
        self.absent_cols = [cause[ai][..., self.absent_ids] for ai in range(nd)]   # (.., S, A)
        self.absent_leak = leak[..., self.absent_ids]                                # (.., P, A)
        self.cause_axes = [ai for ai in range(nd)
                           if present.size and np.any(cause[ai][..., present] != 0)]
        self._tables = (model, leak, cause)
        self.present_ids = present
        self._present: dict[int, np.ndarray] | None = None

    @property
    def present(self) -> dict[int, np.ndarray]:
        """Each present symptom's log-likelihood per level on its cause axes (lazily)."""
        if self._present is None:
            model, leak, cause = self._tables
            n_prop = leak.shape[-2]
            self._present = {}
            for y in self.present_ids:
                lq = leak[..., y].reshape(self.lead + (n_prop,) + (1,) * self.nd)
                for ai in self.cause_axes:
                    lq = lq + cause[ai][..., y].reshape(
                        self.lead + (1,) + tuple(_axis_shape(model, ai)))
                self._present[int(y)] = np.log(-np.expm1(lq))
        return self._present

    def parts(self, drop: int | None = None) -> list[np.ndarray]:
        """The symptoms' log-likelihood as log-factors with small scopes (their sum is
        :meth:`factor`): each absent symptom's term per axis, then the present symptoms with
        the propensity level summed out, over the cause axes only."""
        keep = self.absent_ids != drop
        every = drop is None or keep.all()
        out = []
        if keep.any():
            for ai, cols in enumerate(self.absent_cols):
                out.append((cols if every else cols[..., keep]).sum(-1).reshape(self.shapes[ai]))
        level = self.log_w + (self.absent_leak if every else self.absent_leak[..., keep]).sum(-1)
        total = level.reshape(self.lead + (-1,) + (1,) * self.nd)
        for y, term in self.present.items():
            if y != drop:
                total = total + term
        ax = len(self.lead)
        mx = total.max(axis=ax, keepdims=True)
        out.append(np.squeeze(mx + np.log(np.exp(total - mx).sum(axis=ax, keepdims=True)),
                              axis=ax))
        return out

    def factor(self, drop: int | None = None) -> np.ndarray:
        """The symptoms' log-likelihood tensor, without symptom ``drop`` when given."""
        out = np.zeros(self.lead + (1,) * self.nd)
        for part in self.parts(drop):
            out = out + part
        return out


@lru_cache(maxsize=256)
def prior_summary(model: CompiledModel, cov) -> tuple[list[np.ndarray], np.ndarray]:
    """Prior axis marginals and condition probabilities (``none`` last) of a stratum
    (:class:`~neb_bayes.model.prior.Covariates`), cached."""
    prior_joint, _ = _normalise(log_prior(model, cov))
    marg = axis_marginals(prior_joint)
    c, none = condition_probabilities(model, prior_joint)
    return marg, np.append(c, none)


def _with_prior(log_joint: np.ndarray, lp: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The unnormalised log posterior ``log_joint`` (prior ``lp`` times the likelihood) under
    the ``other`` log prior instead; states impossible under ``lp`` stay impossible."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isneginf(lp), -np.inf, log_joint - lp + other)


def infer_exact(model: CompiledModel, ev: Evidence, explain: bool = True) -> ExactPosterior:
    """Exact posterior for one case.

    Parameters
    ----------
    model
        Compiled prior set.
    ev
        The case's evidence.
    explain
        Also compute each evidence group's log Bayes factor for every condition
        (leave-one-group-out), used by reports to say what moved each probability: result
        groups, symptoms, and each context flag's prior odds (``kind`` ``"context"``: the
        prior with that flag's prevalence modifiers left out,
        :func:`~neb_bayes.model.prior.flag_modifiers`).
    """
    lp = log_prior(model, ev.covariates)
    log_joint = lp.copy()
    groups: list[dict] = []
    block_ll = []
    latent = {b.axis: ev.latent_params(model, b.axis) for b in ev.blocks}
    gross_ratio: dict[int, list[np.ndarray] | None] = {}
    for bi, block in enumerate(ev.blocks):
        ll, gross_ratio[block.axis] = block_log_factor(model, block, latent[block.axis])
        ll = _on_joint(model, block, ll)
        block_ll.append(ll)
        log_joint = log_joint + ll
        for ch in dict.fromkeys(block.channel.tolist()):
            groups.append({"kind": "measurement", "block": bi, "channel": ch,
                           "sources": block.source[block.channel == ch].tolist()})
    terms = SymptomTerms(model, ev.present, ev.absent,
                         *(ev.symptom_tables(model) if ev.cause_scale is not None else ()))
    sym_total = terms.factor()
    log_joint = log_joint + sym_total
    for status, idx in (("absent", ev.absent), ("present", ev.present)):
        for s in idx:
            groups.append({"kind": "symptom", "status": status, "symptom": int(s)})
    context_priors = flag_modifiers(model, ev.covariates) if explain else {}
    for flag, rows in context_priors.items():
        groups.append({"kind": "context", "flag": flag, "modifiers": rows})
    joint, log_ev = _normalise(log_joint)
    marginals = axis_marginals(joint)
    probs, none = condition_probabilities(model, joint)
    prior_marg, prior_cond = prior_summary(model, ev.covariates)
    log_bf = None
    if explain and groups:
        full = condition_log_odds(model, log_joint)
        log_bf = np.zeros((len(groups), probs.size + 1))
        for gi, g in enumerate(groups):
            if g["kind"] == "symptom":
                alt = log_joint - sym_total + terms.factor(drop=g["symptom"])
            elif g["kind"] == "context":
                alt = _with_prior(log_joint, lp,
                                  log_prior(model, without_flags(ev.covariates, {g["flag"]})))
            else:
                block = ev.blocks[g["block"]]
                keep = np.flatnonzero(block.channel != g["channel"])
                without = (block_loglik(model, block, keep, latent[block.axis])
                           if keep.size else 0.0)
                alt = log_joint - block_ll[g["block"]] + without
            with np.errstate(invalid="ignore"):
                # (a condition this patient cannot have: no evidence moves it, 0)
                log_bf[gi] = np.clip(np.nan_to_num(full - condition_log_odds(model, alt),
                                                   nan=0.0), -LOG_BF_MAX, LOG_BF_MAX)
    gross = []
    if explain and model.gross_error_rate > 0.0:
        for bi, block in enumerate(ev.blocks):
            pj = gross_error_probabilities(model, block, gross_ratio[block.axis], joint)
            gross += [{"block": bi, "source": int(src), "channel": int(ch), "probability": float(p)}
                      for src, ch, p in zip(block.source, block.channel, pj, strict=True)]
    return ExactPosterior(
        joint=joint,
        log_evidence=log_ev,
        condition_probs=probs,
        none_prob=none,
        marginals=marginals,
        prior_marginals=prior_marg,
        prior_condition_probs=prior_cond,
        groups=groups,
        log_bf=log_bf,
        factors={"block_ll": block_ll, "gross_ratio": gross_ratio},
        gross_errors=gross,
    )


