"""The exact posterior for many cases at once: the batch path's engine.

Same model and same answer as :func:`neb_bayes.inference.exact.infer_exact`, organised for
throughput instead of explanation.  Cases in a chunk rarely share a pattern of results (which
analytes, repeats, days), so the covariance form of the single-case engine cannot be shared
between them.  Here each case's results are reduced to per-channel sufficient statistics
(information form, as in :mod:`neb_bayes.inference.pymc_model`), padded to every channel of
an axis, and the latents are integrated by completing the square for all cases of the chunk
together: every step is an array operation over ``(cases, ...)``.

Gross errors (at most one per axis block, :meth:`CompiledModel.gross_log_density`) enter as
in the single-case engine, ``p = (1 - n eps) p(y) + eps sum_j q(y_j) p(y_-j)``: for a block
of observed results ``p(y_-j)`` comes from the leave-one-out identity in information form
(:func:`_loo_conditionals`); in a block with censored results, without an observed result
the censored results' conditional is downdated by it, and without a censored one the other's
mass is left (:func:`_without_each`).

A censored result is integrated given the latent posterior and, where its channel also
holds observed results, the regression of its noise on theirs (:func:`_channel_regression`).
Context that changes the model a case is read with (latent shifts of treated disease, symptom
factors) is built into a derived model (:func:`context_model`), and cases sharing it run
together.  A block this form does not cover (more than two censored results on an axis, a
daily-rhythm result without a collection time) gets its factor from the single-case
engine's block function (:func:`~neb_bayes.inference.exact.block_log_factor`), and a case
whose factors underflow is computed with :func:`~neb_bayes.inference.exact.infer_exact`, so
every case gets the exact answer; a test holds the two engines equal.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from functools import lru_cache

import numpy as np
from scipy.special import log_ndtr

from neb_bayes.evidence import Evidence, block_of_rows
from neb_bayes.inference import kernels
from neb_bayes.inference.bivariate_normal import log_bivariate_normal_cdf
from neb_bayes.inference.exact import block_log_factor, infer_exact
from neb_bayes.model.compiled import (
    CompiledModel,
    axis_channel_grid,
    gates_of,
    gross_table,
    view_for_sex,
)
from neb_bayes.model.prior import log_prior
from neb_bayes.tensor import FactorPlan, distinct_rows, factor_plan, padded, padded_length

LOG_2PI = float(np.log(2.0 * np.pi))
#: cases evaluated together: bounds the memory of the ``(cases or rows, dependency grid)``
#: arrays (the joint is never stored: :func:`kernels.fused_joint`); larger groups spread numpy's
#: per-call overhead over more cases (128 -> 512: about 1.2x faster on small cases; 512 ->
#: 1,024 with the batch's chunks of 2,000, a sex's ~1,000 cases in one group: ~7 % less CPU
#: per case in a worker)
SUB_CHUNK = 1024
#: below this normaliser the product of probability-space factors is recomputed in log space
UNDERFLOW = 1e-250
_STATS = ("w", "s1", "s2", "t1", "t2", "t3", "ld")


# --------------------------------------------------------------------------------------------
# per model view: the tables that do not depend on the case
@dataclass(frozen=True)
class AxisTables:
    """One axis' channels and their expected levels over the axis' dependency grid.

    The grid is ordered own-axis state first (``S``), then the other dependency axes
    (``R`` combinations), so the latent posterior, which depends on the own state only,
    is shared by the ``R`` grid points of a state.
    """

    axis: int
    pos: np.ndarray        # (n_channels,) position of a model channel on this axis, or -1
    loadings: np.ndarray   # (C, K)
    grid: tuple[int, ...]  # sizes of the dependency axes, own axis first
    dest: tuple[int, ...]  # the joint-tensor dimension of each grid dimension
    #: each of the R combinations of the other axes' states -> its distinct column: those
    #: that shift this axis' channels alike (most states affect no other axis' results) share
    #: one, so the work below is on ``G = S x R'`` points, R' <= R (e.g. 12 of 162)
    rest: np.ndarray       # (R,) index into the R' distinct combinations
    mu: np.ndarray         # (C, G) log median + state effects
    amp: np.ndarray        # (C, G) daily-rhythm amplitude
    s_inv: np.ndarray      # (S, K, K) latent precision per own state
    s_mu: np.ndarray       # (G, K) latent precision @ latent mean
    const: np.ndarray      # (G,) -0.5 mean' S^-1 mean - 0.5 log|S|
    noise_var: np.ndarray  # (3, C): tau^2, cvi^2, cva^2

    def on_grid(self, x: np.ndarray) -> np.ndarray:
        """``(N, G)`` values on the distinct points to ``(N, *grid)``, the whole grid."""
        x = x.reshape(x.shape[0], self.grid[0], -1)[:, :, self.rest]
        return x.reshape((x.shape[0],) + self.grid)


@dataclass(frozen=True)
class ViewTables:
    """Everything the vectorised engine needs of one model view (cached per view)."""

    axes: tuple[AxisTables, ...]
    shape: tuple[int, ...]
    #: the joint's axes in the order :func:`kernels.fused_joint` walks them: the largest one
    #: last, whose states it visits in runs (the female view's 6,480 states in 720 runs of
    #: 9 instead of 1,620 of 4; ~17.5 -> ~13.5 us per case); ``healthy`` and
    #: ``present_stride`` are in this order
    order: tuple[int, ...]
    healthy: np.ndarray       # (J,) 1 where no axis is in a condition state
    #: P(symptom present | level, states of its cause axes): each symptom's table
    #: (P, cause-axis grid) flattened, laid one after another from ``present_off[y]``;
    #: ``present_stride[y, d]`` is axis ``d``'s stride in it (0 for an axis that causes
    #: nothing of ``y``), the level's stride is ``present_size[y]``
    present_tab: np.ndarray     # (sum_y P * G_y,)
    present_off: np.ndarray     # (Y,)
    present_size: np.ndarray    # (Y,) G_y
    present_stride: np.ndarray  # (Y, n_axes)
    #: the log-factors to the kernel's tables: each axis' results factor (its own array),
    #: then one array of the absent symptoms' factor per axis (``cause``'s columns, axis by
    #: axis) and the propensity level's normaliser (the last column)
    plan: FactorPlan
    row_stride: np.ndarray      # each array's values per case (padded as the arrays are)
    cause: np.ndarray           # (sum_a S_a, Y) every axis' log1m_cause, one after another


def _axis_tables(model: CompiledModel, axis: int) -> AxisTables | None:
    ax = model.axes[axis]
    if not ax.latents:
        return None
    chans, L, deps, sizes, _, effect, amp = axis_channel_grid(model, axis)
    if chans.size == 0:
        return None
    own = deps.index(axis)
    order = [own] + [i for i in range(len(deps)) if i != own]

    def own_first(x):  # (C, G in deps order) -> (C, G own first)
        return np.transpose(x.reshape((-1,) + tuple(sizes)), [0] + [1 + i for i in order]).reshape(
            x.shape[0], -1)

    effect, amp = own_first(effect), own_first(amp)
    grid = tuple(sizes[i] for i in order)
    pos = np.full(len(model.channels), -1, dtype=np.int64)
    pos[chans] = np.arange(chans.size)
    mu = np.array([model.channels[c].log_median for c in chans])[:, None] + effect
    # the other axes' state combinations with the same means and rhythm amplitudes for every
    # own state: one column each (in order of first appearance)
    c_n, s_n = mu.shape[0], grid[0]
    cols = np.concatenate([mu, amp]).reshape(2 * c_n, s_n, -1)
    keep, rest = distinct_rows(cols.transpose(2, 0, 1).reshape(cols.shape[2], -1))
    mu = mu.reshape(c_n, s_n, -1)[:, :, keep].reshape(c_n, -1)
    amp = amp.reshape(c_n, s_n, -1)[:, :, keep].reshape(c_n, -1)
    n_rest = keep.size
    s_inv = np.linalg.inv(ax.lat_cov)
    _, logdet = np.linalg.slogdet(ax.lat_cov)
    own_idx = np.repeat(np.arange(ax.n_states), n_rest)
    lat_mean = ax.lat_mean[own_idx]
    s_mu = np.einsum("gkl,gl->gk", s_inv[own_idx], lat_mean)
    const = -0.5 * (lat_mean * s_mu).sum(-1) - 0.5 * logdet[own_idx]
    noise = np.array([[model.channels[c].tau, model.channels[c].cvi, model.channels[c].cva]
                      for c in chans]).T ** 2
    return AxisTables(
        axis=axis, pos=pos, loadings=L, grid=grid, dest=tuple(deps[i] for i in order),
        rest=rest, mu=mu, amp=amp, s_inv=s_inv, s_mu=s_mu, const=const, noise_var=noise)


def _on_axis(x: np.ndarray, ai: int, nd: int) -> np.ndarray:
    return x.reshape((1,) * ai + (-1,) + (1,) * (nd - ai - 1))


@lru_cache(maxsize=16)
def view_tables(model: CompiledModel) -> ViewTables:
    """The case-independent tables of a model view."""
    nd = len(model.axes)
    shape = model.shape
    healthy = np.ones(shape)
    for ai, ax in enumerate(model.axes):
        healthy = healthy * _on_axis(ax.healthy.astype(float), ai, nd)
    # P(present | level, cause states) = 1 - exp(log1m_leak[level] + sum_a log1m_cause_a),
    # on the grid of the symptom's own cause axes only
    n_sym = model.log1m_leak.shape[1]
    tabs, off, size = [], np.zeros(n_sym, np.int64), np.zeros(n_sym, np.int64)
    stride = np.zeros((n_sym, nd), np.int64)
    for y in range(n_sym):
        lq = model.log1m_leak[:, y].reshape((-1,) + (1,) * nd)                      # (P, ...)
        causes = [ai for ai, c in enumerate(model.log1m_cause) if np.any(c[:, y] != 0)]
        for ai in causes:
            lq = lq + _on_axis(model.log1m_cause[ai][:, y], ai, nd)
        tab = -np.expm1(lq)
        size[y] = int(np.prod([shape[ai] for ai in causes]))
        step = 1
        for ai in reversed(causes):
            stride[y, ai] = step
            step *= shape[ai]
        off[y] = sum(t.size for t in tabs)
        tabs.append(tab.ravel())
    axes = tuple(t for t in (_axis_tables(model, ai) for ai in range(nd)) if t is not None)
    big = max(range(nd), key=lambda a: (shape[a], a))
    order = tuple(a for a in range(nd) if a != big) + (big,)
    # each axis' results factor: its own array (N, *grid), grid axes in ``dest`` order
    factors = []
    for p, axis_tabs in enumerate(axes):
        strides, jshape, step = [0] * nd, [1] * nd, 1
        for d, k in reversed(list(zip(axis_tabs.dest, axis_tabs.grid, strict=True))):
            strides[d], jshape[d], step = step, k, step * k
        factors.append((p, 0, tuple(strides), tuple(jshape)))
    # the absent symptoms' factor of each axis, then the level's normaliser: one array
    col = 0
    for ai, c in enumerate(model.log1m_cause):
        factors.append((len(axes), col, tuple(int(d == ai) for d in range(nd)),
                        tuple(c.shape[0] if d == ai else 1 for d in range(nd))))
        col += c.shape[0]
    factors.append((len(axes), col, (0,) * nd, (1,) * nd))
    return ViewTables(axes=axes, shape=shape, order=order,
                      healthy=healthy.transpose(order).ravel(),
                      present_tab=np.concatenate(tabs), present_off=off, present_size=size,
                      present_stride=np.ascontiguousarray(stride[:, order]),
                      plan=factor_plan(tuple(factors)),
                      row_stride=np.array([math.prod(t.grid) for t in axes] + [col + 1]
                                          + [0] * (padded_length(len(axes) + 1) - len(axes) - 1),
                                          np.int64),
                      cause=np.concatenate(model.log1m_cause))


# --------------------------------------------------------------------------------------------
# per chunk: every case's results as flat arrays, then sufficient statistics per axis
@dataclass
class Flat:
    """Every result of a list of cases, one row each."""

    case: np.ndarray
    axis: np.ndarray
    channel: np.ndarray
    y: np.ndarray
    censor: np.ndarray
    day: np.ndarray
    diurnal: np.ndarray
    diurnal_var: np.ndarray
    extra: np.ndarray

    @classmethod
    def of(cls, evs: list[Evidence]) -> Flat:
        blocks = [(i, b) for i, ev in enumerate(evs) for b in ev.blocks]
        if not blocks:
            e = np.zeros(0)
            return cls(*(e.astype(np.int64),) * 3, e, e.astype(np.int8), e, e, e, e)
        n = np.array([b.n for _, b in blocks])
        return cls(
            case=np.repeat([i for i, _ in blocks], n),
            axis=np.repeat([b.axis for _, b in blocks], n),
            channel=np.concatenate([b.channel for _, b in blocks]),
            y=np.concatenate([b.y for _, b in blocks]),
            censor=np.concatenate([b.censor for _, b in blocks]),
            day=np.concatenate([b.day for _, b in blocks]),
            diurnal=np.concatenate([b.diurnal for _, b in blocks]),
            diurnal_var=np.concatenate([b.diurnal_var for _, b in blocks]),
            extra=np.concatenate([b.extra_var if b.extra_var is not None else np.zeros(b.n)
                                  for _, b in blocks]),
        )

    def take(self, idx: np.ndarray, case: np.ndarray | None = None) -> Flat:
        """The rows ``idx``, renumbered to cases ``case`` when given."""
        out = Flat(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})
        if case is not None:
            out.case = case
        return out

    def cases(self, part: np.ndarray, bounds: np.ndarray) -> Flat:
        """The rows of cases ``part`` (in that order), renumbered ``0 .. len(part) - 1``;
        ``bounds``: case ``i``'s rows are ``bounds[i]:bounds[i + 1]`` (rows by case)."""
        count = bounds[part + 1] - bounds[part]
        first = np.repeat(bounds[part] - (np.cumsum(count) - count), count)
        return self.take(first + np.arange(int(count.sum())),
                         case=np.repeat(np.arange(part.size), count))

    def exact_blocks(self, model: CompiledModel, n_cases: int) -> np.ndarray:
        """``(n_cases, axes)``: the axis blocks the information form does not cover (more
        than two censored results on the axis; :func:`_not_covered`), whose factors come
        from the single-case engine's block function."""
        n_axes = len(model.axes)
        return _not_covered(self.case * n_axes + self.axis, self.censor,
                            untimed_elsewhere(model, self.channel, self.diurnal_var),
                            n_cases * n_axes).reshape(n_cases, n_axes)


def _not_covered(block: np.ndarray, censor: np.ndarray, untimed_elsewhere: np.ndarray,
                 n_blocks: int) -> np.ndarray:
    """Which of ``n_blocks`` blocks (each row's block number ``block``) the information form
    does not cover: more than two censored results, or a result without a collection time
    whose rhythm another axis' state scales (``untimed_elsewhere``; a rhythm the own axis'
    state scales is read per own state, :func:`state_copies`)."""
    cen = censor != 0
    bad = np.bincount(block[cen], minlength=n_blocks) > 2
    bad[block[untimed_elsewhere]] = True
    return bad


def state_amplitudes(model: CompiledModel, axis: int, chans: np.ndarray) -> np.ndarray:
    """``(C, S)``: the daily rhythm's amplitude of the channels ``chans`` of ``axis`` in each
    of its states (1 for a channel whose rhythm no state scales: the exact engine's
    :func:`~neb_bayes.inference.exact._structure_of`)."""
    amp = np.ones((chans.size, model.axes[axis].n_states))
    for j, ci in enumerate(chans):
        c = model.channels[int(ci)]
        if c.amp_axis == axis:
            amp[j] = c.amp
    return amp


def untimed_elsewhere(model: CompiledModel, channel: np.ndarray,
                      diurnal_var: np.ndarray) -> np.ndarray:
    """Per result: a daily rhythm without a collection time whose amplitude another axis'
    state scales (none in today's tables), which :func:`state_copies` cannot read."""
    return (diurnal_var > 0) & _amp_elsewhere(model)[channel]


@lru_cache(maxsize=16)
def _amp_elsewhere(model: CompiledModel) -> np.ndarray:
    """Per channel: its rhythm's amplitude follows another axis' state (kept per model)."""
    return np.array([c.amp_axis is not None and c.amp_axis != c.axis for c in model.channels],
                    dtype=bool)


def state_copies(case: np.ndarray, diurnal_var: np.ndarray, amp: np.ndarray,
                 n_cases: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One axis' results, with the cases that have a daily-rhythm result without a
    collection time read once per state of the axis.

    Such a result's rhythm is a variance, its rhythm's variance over the day
    (``diurnal_var``) times the square of its channel's amplitude in the axis' state, and
    independent of the case's other results (the exact engine's
    :func:`~neb_bayes.inference.exact._structure_of`), so the noise covariance depends on
    the own state only.  ``case`` (sorted) and ``diurnal_var`` are per result, ``amp``
    ``(results, S)`` each result's amplitude per state (:func:`state_amplitudes`).

    Returns ``(rows, new_case, diag, apart)``: the results in their new order (indices into
    the input: the other cases' results, then ``S`` copies of each ``apart[k]``'s, state-major
    per case), each one's case (copy ``s`` of ``apart[k]`` is case ``n_cases + k S + s``)
    and own variance ``diag`` (0 for the others), and the cases read per state.  Each case's
    results keep their order."""
    apart = np.unique(case[diurnal_var > 0])
    if apart.size == 0:
        return np.arange(case.size), case, np.zeros(case.size), apart
    S = amp.shape[1]
    sel = np.flatnonzero(np.isin(case, apart))
    k = np.searchsorted(apart, case[sel])
    # copy s of case k: its results in order, cases n + k S + s in increasing order
    order = np.lexsort((np.tile(np.arange(sel.size), S), np.repeat(np.arange(S), sel.size),
                        np.tile(k, S)))
    src = np.tile(sel, S)[order]
    state = np.repeat(np.arange(S), sel.size)[order]
    copy_case = n_cases + np.tile(k, S)[order] * S + state
    keep = np.setdiff1d(np.arange(case.size), sel)
    rows = np.concatenate([keep, src])
    diag = np.concatenate([np.zeros(keep.size), diurnal_var[src] * amp[src, state] ** 2])
    return rows, np.concatenate([case[keep], copy_case]), diag, apart


def channel_stats(noise_var: np.ndarray, n_cases: int, case, ch, y, d, day, extra,
                  diag=None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """GLS sufficient statistics of the observed results of many cases at once (shared with
    the PyMC formulation's :func:`~neb_bayes.inference.pymc_model.prepare_group`).

    ``noise_var`` ``(3, C)``: tau^2, CVI^2, CVA^2 per channel position; ``case``, ``ch``:
    each result's case and channel position.  A case's results in one channel share ``R``
    (person and same-day terms, analytical noise, and the context's variation, shared in a
    channel; with ``diag``, each result's own variance, independent of the others': the daily
    rhythm of a result without a collection time, :func:`state_copies`); one compiled pass
    over the results sorted by case and channel
    (:func:`kernels.channel_groups`).

    Returns ``(per_channel, per_result)``: ``per_channel`` maps each of :data:`_STATS` to a
    ``(n_cases, n_channels)`` array (``w = 1'R^-1 1``, ``s1 = 1'R^-1 y``, ``s2 = y'R^-1 y``,
    ``t1 = 1'R^-1 d``, ``t2 = d'R^-1 d``, ``t3 = y'R^-1 d``, ``ld = log|2 pi R|``, with ``R``
    the noise covariance of a case's results in one channel and ``d`` their daily-rhythm
    offsets); ``per_result`` holds, in the input order, the result's entries of ``R^-1 1``
    (``a``), ``R^-1 y`` (``ry``), ``R^-1 d`` (``rd``) and the diagonal of ``R^-1`` (``nd``).
    """
    n_ch = noise_var.shape[1]
    stats = np.zeros((len(_STATS), n_cases, n_ch))
    each = np.zeros((4, case.size))
    if case.size:
        tau2, cvi2, cva2 = (np.ascontiguousarray(v, dtype=float) for v in noise_var)
        key = case.astype(np.int64) * n_ch + ch
        order = np.argsort(key, kind="stable")
        diag = np.zeros(case.size) if diag is None else diag
        kernels.channel_groups(tau2, cvi2, cva2, n_ch, key[order], order,
                               *(np.ascontiguousarray(v[order], dtype=float)
                                 for v in (y, d, day, extra, diag)), stats, each)
    return (dict(zip(_STATS, stats, strict=True)),
            dict(zip(("a", "ry", "rd", "nd"), each, strict=True)))


def _axis_loglik(model: CompiledModel, tabs: AxisTables, n_cases: int, flat: Flat,
                 eps: float = 0.0, log_q: np.ndarray | None = None) -> np.ndarray:
    """log p(this axis' results | dependency states) for every case: ``(N, *tabs.grid)``.

    With a gross-error rate ``eps > 0`` (``log_q``: log q(y) of every row of ``flat``), each
    case's block is the mixture ``(1 - n eps) p(y) + eps sum_j q(y_j) p(y_-j)``: for a block
    of observed results ``log p(y_-j) = log p(y) - log p(y_j | y_-j)``
    (:func:`_loo_conditionals`); for a block with censored results
    :func:`_without_each` gives ``log p(y_-j)``.  A block the information form does not
    cover (:meth:`Flat.exact_blocks`) gets its factor from the single-case engine
    (:func:`_exact_factors`).
    """
    sel = np.flatnonzero(flat.axis == tabs.axis)
    # only the cases with results on this axis: for the others the factor is exactly 1
    # (log 0), and their share of the grid work would be wasted
    with_rows, local = np.unique(flat.case[sel], return_inverse=True)
    if with_rows.size == 0:
        return np.zeros((n_cases,) + tabs.grid)
    local = local.reshape(-1)
    odd = _not_covered(local, flat.censor[sel],
                       untimed_elsewhere(model, flat.channel[sel], flat.diurnal_var[sel]),
                       with_rows.size)
    if odd.any():
        odd_rows = odd[local]
        exact_part = _exact_factors(model, tabs, flat.take(sel[odd_rows]))
        sel, local = sel[~odd_rows], local[~odd_rows]
    # a daily-rhythm result without a collection time: its case read once per own state
    S = tabs.grid[0]
    amp = state_amplitudes(model, tabs.axis, np.flatnonzero(tabs.pos >= 0))
    rows, case, diag, apart = state_copies(local, flat.diurnal_var[sel],
                                           amp[tabs.pos[flat.channel[sel]]], with_rows.size)
    sel = sel[rows]
    n_all = with_rows.size + apart.size * S
    on = flat.take(sel, case=case)                       # rows are by case
    ll, cond, without = _gaussian_loglik(tabs, n_all, on, loo=eps > 0,
                                         diag=diag if apart.size else None)
    if eps > 0 and sel.size:
        lq = log_q[sel][:, None]
        lr = lq - cond                                    # log q(y_j) + log p(y_-j) - log p(y)
        if without is not None:
            # blocks with censored results: log p(y_-j) from the downdated conditionals
            rows = np.flatnonzero(np.isin(on.case, on.case[on.censor != 0]))
            lr[rows] = lq[rows] + without[rows] - ll[on.case[rows]]
        ll = ll + _gross_mixture(lr, on.case, n_all, eps)
    if apart.size:
        # each copy's own state: a case read per state takes state s from its copy s
        copies = ll[with_rows.size:].reshape(apart.size, S, S, -1)
        ll = ll[:with_rows.size]
        ll.reshape(with_rows.size, S, -1)[apart] = copies[:, np.arange(S), np.arange(S)]
    ll = tabs.on_grid(ll)
    if odd.any():
        ll[odd] = exact_part
    if with_rows.size == n_cases:
        return ll
    out = np.zeros((n_cases,) + tabs.grid)
    out[with_rows] = ll
    return out


def _exact_factors(model: CompiledModel, tabs: AxisTables, rows: Flat) -> np.ndarray:
    """The factors of blocks the information form does not cover, each from the single-case
    engine's block function (:func:`~neb_bayes.inference.exact.block_log_factor`, the
    model's latents: a context's shifts are in ``model``), laid on ``tabs``' grid:
    ``(blocks, *tabs.grid)``, one per case of ``rows`` (one axis, by case) in order."""
    starts = np.flatnonzero(np.r_[True, rows.case[1:] != rows.case[:-1]])
    out = np.empty((starts.size,) + tabs.grid)
    for k, (lo, hi) in enumerate(zip(starts.tolist(), np.r_[starts[1:], rows.case.size].tolist(),
                                     strict=True)):
        block = block_of_rows(model, tabs.axis, rows.channel[lo:hi], rows.y[lo:hi],
                              rows.censor[lo:hi], rows.day[lo:hi], rows.diurnal[lo:hi],
                              rows.diurnal_var[lo:hi], np.arange(hi - lo), rows.extra[lo:hi])
        ll, _ = block_log_factor(model, block)
        # from the block's dependency axes (sorted) to the grid's (own axis first), 1 along
        # those that move none of its results
        dims = [d for d in tabs.dest if d in block.deps]
        ll = np.transpose(ll, [block.deps.index(d) for d in dims])
        out[k] = ll.reshape([n if d in block.deps else 1
                             for d, n in zip(tabs.dest, tabs.grid, strict=True)])
    return out


def _gaussian_loglik(tabs: AxisTables, n_cases: int, on: Flat, loo: bool,
                     diag: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """log p(y | dependency states) of every case's rows ``on`` (one axis, sorted by case),
    without gross errors: ``(N, G)``; with ``loo`` also ``log p(y_j | y_-j, states)`` of each
    observed row, ``(rows, G)`` (0 for censored rows), and, where some rows are censored,
    ``log p(y_-j | states)`` of each row of a case with censored rows (:func:`_without_each`;
    ``(rows, G)``, other rows unset), else None.  ``diag``: each row's own variance,
    independent of the other rows' (:func:`state_copies`), or None (0)."""
    case, ch = on.case, tabs.pos[on.channel]
    y, d, cen, extra = on.y, on.diurnal, on.censor, on.extra
    obs = cen == 0
    st, per = channel_stats(tabs.noise_var, n_cases, case[obs], ch[obs], y[obs], d[obs],
                            on.day[obs], extra[obs], None if diag is None else diag[obs])
    L = tabs.loadings
    S = tabs.grid[0]
    G = tabs.mu.shape[1]
    # (N, S, R), (N, S, R, K), (N, S, K, K)
    ll, post_mean, M_inv = kernels.gaussian_terms(
        st["s2"], st["w"], st["s1"], st["t1"], st["t2"], st["t3"], st["ld"], tabs.mu, tabs.amp,
        L, tabs.s_mu, np.ascontiguousarray(tabs.s_inv), tabs.const)
    cond = None
    if loo:
        cond = np.zeros((case.size, G))
        cond[obs] = _loo_conditionals(tabs, per, case[obs], ch[obs], M_inv, post_mean)
    without = None
    has = np.flatnonzero(~obs)
    if has.size:
        # censored results: their probability mass given the observed ones, whose
        # information is in the latent posterior and, for observed results of the same
        # channel, in the regression of the censored result's noise on theirs
        n, j = case[has], ch[has]
        f, by, bd, v, bw, bday, bse, brow = _channel_regression(tabs, on, has, diag)
        ll_obs = ll.copy() if loo else None
        single = pair = None
        Lw = L[j]                                                          # (m, K)
        mean_w = (f[:, None] * tabs.mu[j] + tabs.amp[j] * (d[has] - bd)[:, None]
                  + by[:, None]).reshape(n.size, S, -1) + f[:, None, None] * np.matmul(
            post_mean[n], Lw[:, None, :, None])[..., 0]                    # (m, S, R)
        first = np.r_[True, n[1:] != n[:-1]]                               # rows are by case
        one = first & np.r_[first[1:], True]
        i1 = np.flatnonzero(one)
        if i1.size:
            var_w = (f[i1, None] ** 2 * np.einsum("mk,mskl,ml->ms", Lw[i1], M_inv[n[i1]], Lw[i1])
                     + v[i1, None])
            sign = cen[has][i1].astype(float)[:, None, None]
            ll[n[i1]] += log_ndtr(-sign * (y[has][i1, None, None] - mean_w[i1])
                                  / np.sqrt(var_w)[:, :, None])
            single = (i1, var_w)
        a = np.flatnonzero(first & ~one)                                   # pairs: a, a + 1
        if a.size:
            b = a + 1
            var_a = f[a, None] ** 2 * np.einsum("mk,mskl,ml->ms", Lw[a], M_inv[n[a]], Lw[a]) + (
                v[a, None])
            var_b = f[b, None] ** 2 * np.einsum("mk,mskl,ml->ms", Lw[b], M_inv[n[b]], Lw[b]) + (
                v[b, None])
            same = (j[a] == j[b]).astype(float)
            same_day = same * (on.day[has][a] == on.day[has][b])
            se_a, se_b = np.sqrt(extra[has][a]), np.sqrt(extra[has][b])
            shared = (same * (tabs.noise_var[0, j[a]] + se_a * se_b)
                      + same_day * tabs.noise_var[1, j[a]])
            # less what the observed results of the channel (if any) explain of it
            r_b = tabs.noise_var[0, j[a], None] + tabs.noise_var[1, j[a], None] * (
                bday[a] == on.day[has][b, None]) + se_b[:, None] * bse[a]
            shared = shared - same * (bw[a] * r_b).sum(-1)
            cov_ab = (f[a, None] * f[b, None] * np.einsum("mk,mskl,ml->ms", Lw[a], M_inv[n[a]], Lw[b])
                      + shared[:, None])
            sa = cen[has][a].astype(float)[:, None]
            sb = cen[has][b].astype(float)[:, None]
            h = -sa[..., None] * (y[has][a, None, None] - mean_w[a]) / np.sqrt(var_a)[..., None]
            k = -sb[..., None] * (y[has][b, None, None] - mean_w[b]) / np.sqrt(var_b)[..., None]
            rho = (sa * sb * cov_ab / np.sqrt(var_a * var_b))[..., None]
            ll[n[a]] += log_bivariate_normal_cdf(h, k, rho)
            pair = (a, var_a, var_b, cov_ab)
        if loo:
            without = _without_each(tabs, on, per, M_inv, post_mean, cond, ll_obs, has, f,
                                    mean_w, bw, brow, single, pair)
    return ll.reshape(n_cases, G), cond, without


def _without_each(tabs: AxisTables, on: Flat, per: dict[str, np.ndarray], M_inv: np.ndarray,
                  post_mean: np.ndarray, cond: np.ndarray, ll_obs: np.ndarray,
                  has: np.ndarray, f: np.ndarray, mean_w: np.ndarray, bw: np.ndarray,
                  brow: np.ndarray, single: tuple | None, pair: tuple | None) -> np.ndarray:
    """``log p(y_-j | states)`` of every row ``j`` of the cases with censored rows ``has``
    (one or two per case, :func:`_gaussian_loglik`'s): ``(rows, G)``, other rows unset.

    Without a censored result, the rest is the observed results' density ``ll_obs`` times
    the other censored result's mass (one or none).  Without an observed result ``j``, it is
    ``p(y_o) / p(y_j | y_o-j)`` (``cond``) times the censored results' mass given ``y_o-j``:
    their conditional given all observed results, downdated by ``j``.  In information form,
    with ``C^-1 = N^-1 - N^-1 L M^-1 L' N^-1`` the precision of the observed results, the
    coefficient of ``y_j`` in a censored result ``w``'s regression on them is ``k_j =
    (C^-1 Cov(y_o, w))_j = b_j + f a_j L_j M^-1 L_w'`` (``b_j`` its channel regression's
    coefficient, :func:`_channel_regression`, 0 in another channel; ``a_j`` the row's
    ``R^-1 1``); with ``e_j = (C^-1 r)_j / (C^-1)_jj`` (the leave-one-out residual),
    ``E[w | y_o-j] = E[w | y_o] - k_j e_j`` and ``Cov(w, w' | y_o-j) = Cov(w, w' | y_o) +
    k_j k'_j / (C^-1)_jj``.
    """
    L, S = tabs.loadings, tabs.grid[0]
    case, ch = on.case, tabs.pos[on.channel]
    y, cen = on.y, on.censor
    obs = cen == 0
    G = tabs.mu.shape[1]
    out = np.empty((case.size, G))
    ll_obs = ll_obs.reshape(ll_obs.shape[0], G)
    # each observed row's position among the observed rows (``per``'s order)
    at = np.cumsum(obs) - 1
    bounds = np.searchsorted(case, np.arange(int(case.max(initial=-1)) + 2))

    def observed_of(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(censored row h's index, observed row j) for every observed row of h's case."""
        n = case[has[h]]
        lo, hi = bounds[n], bounds[n + 1]
        reps = np.repeat(np.arange(h.size), hi - lo)
        rows = lo[reps] + np.arange(reps.size) - np.repeat(np.cumsum(hi - lo) - (hi - lo), hi - lo)
        keep = obs[rows]
        return reps[keep], rows[keep]

    def residual(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For observed rows ``rows``: ``1 / (C^-1)_jj`` (p, S) and the leave-one-out
        residual ``e`` (p, S, R)."""
        n, cj, p = case[rows], ch[rows], at[rows]
        a, Lj = per["a"][p], L[cj]
        cjj = per["nd"][p][:, None] - a[:, None] ** 2 * np.einsum("pk,pskl,pl->ps", Lj,
                                                                  M_inv[n], Lj)
        fit = tabs.mu[cj] + np.einsum("pk,psrk->psr", Lj, post_mean[n]).reshape(rows.size, G)
        u = per["ry"][p][:, None] - a[:, None] * fit - (per["rd"][p][:, None] * tabs.amp[cj])
        return 1.0 / cjj, u.reshape(rows.size, S, -1) / cjj[:, :, None]

    def coefficient(h: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The coefficient ``k`` (p, S) of observed rows ``rows`` in the regressions of the
        censored rows ``has[h]`` of their cases."""
        a = per["a"][at[rows]]
        b_j = (bw[h] * (brow[h] == rows[:, None])).sum(-1)
        return b_j[:, None] + f[h, None] * a[:, None] * np.einsum(
            "pk,pskl,pl->ps", L[ch[rows]], M_inv[case[rows]], L[ch[has[h]]])

    def mass(w: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """log P(censored row has[w] beyond its limit), ``mean`` (p, S, R), ``var`` (p, S)."""
        sign = cen[has[w]].astype(float)[:, None, None]
        return log_ndtr(-sign * (y[has[w]][:, None, None] - mean) / np.sqrt(var)[:, :, None])

    if single is not None:
        i1, var_w = single                 # i1: index into has; var_w (len(i1), S)
        n1 = case[has[i1]]
        out[has[i1]] = ll_obs[n1]
        q, rows = observed_of(i1)
        if rows.size:
            inv_c, e = residual(rows)
            k = coefficient(i1[q], rows)
            mean = mean_w[i1[q]] - k[:, :, None] * e
            var = var_w[q] + k * k * inv_c
            out[rows] = (ll_obs[case[rows]] - cond[rows]
                         + mass(i1[q], mean, var).reshape(rows.size, G))
    if pair is not None:
        a, var_a, var_b, cov_ab = pair     # a: index into has (b = a + 1)
        b = a + 1
        na = case[has[a]]
        out[has[a]] = ll_obs[na] + mass(b, mean_w[b], var_b).reshape(a.size, G)
        out[has[b]] = ll_obs[na] + mass(a, mean_w[a], var_a).reshape(a.size, G)
        q, rows = observed_of(a)
        if rows.size:
            inv_c, e = residual(rows)
            ka, kb = coefficient(a[q], rows), coefficient(b[q], rows)
            mean_a = mean_w[a[q]] - ka[:, :, None] * e
            mean_b = mean_w[b[q]] - kb[:, :, None] * e
            va = var_a[q] + ka * ka * inv_c
            vb = var_b[q] + kb * kb * inv_c
            cab = cov_ab[q] + ka * kb * inv_c
            sa = cen[has[a[q]]].astype(float)[:, None]
            sb = cen[has[b[q]]].astype(float)[:, None]
            hh = -sa[..., None] * (y[has[a[q]]][:, None, None] - mean_a) / np.sqrt(va)[..., None]
            kk = -sb[..., None] * (y[has[b[q]]][:, None, None] - mean_b) / np.sqrt(vb)[..., None]
            rho = np.broadcast_to((sa * sb * cab / np.sqrt(va * vb))[..., None], hh.shape)
            bvn = log_bivariate_normal_cdf(hh, kk, rho)
            out[rows] = ll_obs[case[rows]] - cond[rows] + bvn.reshape(rows.size, G)
    return out


def _channel_regression(tabs: AxisTables, on: Flat, has: np.ndarray,
                        diag: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """A censored result's noise given the observed results of its case and channel.

    For censored rows ``has`` of ``on`` (one axis, sorted by case) whose channel also holds
    observed results ``o``: with that channel's noise covariance ``R`` (:func:`_stats`) and
    ``b = R_oo^-1 r_o``, where ``r_o`` is the noise covariance of the observed results with the
    censored one, given the latents ``w | y_o ~ N(f (mu + L z) + amp (d - b'd_o) + b'y_o,
    v)`` with ``f = 1 - b'1`` and ``v = r - r_o'b``.  Returns ``(f, b'y_o, b'd_o, v, b, day_o)``
    per row (``b`` and the observed results' days padded with 0 and -1); rows without
    observed results in their channel get ``f = 1``, ``v`` their own noise variance and
    ``b = 0``.  ``diag``: each row's own variance (:func:`state_copies`), or None (0).
    """
    tau2, cvi2, cva2 = tabs.noise_var
    ch, day, extra = tabs.pos[on.channel], on.day, on.extra
    diag = np.zeros(ch.size) if diag is None else diag
    j = ch[has]
    m = has.size
    f, by, bd = np.ones(m), np.zeros(m), np.zeros(m)
    v = tabs.noise_var[:, j].sum(0) + extra[has] + diag[has]
    o = np.flatnonzero(on.censor == 0)
    n_ch = tabs.loadings.shape[0]
    key_o = on.case[o] * n_ch + ch[o]
    order = np.argsort(key_o, kind="stable")
    key_o, o = key_o[order], o[order]
    key = on.case[has] * n_ch + j
    start = np.searchsorted(key_o, key)
    count = np.searchsorted(key_o, key, side="right") - start
    width = int(count.max(initial=0))
    bw, bday = np.zeros((m, max(width, 1))), np.full((m, max(width, 1)), -1, dtype=day.dtype)
    bse = np.zeros((m, max(width, 1)))
    brow = np.full((m, max(width, 1)), -1, dtype=np.int64)
    for k in np.unique(count[count > 0]).tolist():
        i = np.flatnonzero(count == k)
        rows = o[start[i][:, None] + np.arange(k)[None, :]]               # (g, k)
        c, dy = j[i], day[rows]
        R = tau2[c][:, None, None] + cvi2[c][:, None, None] * (dy[:, :, None] == dy[:, None, :])
        se = np.sqrt(extra[rows])                       # context variation, shared in a channel
        R = R + np.einsum("gi,ij->gij", cva2[c][:, None] + diag[rows],
                          np.eye(k)) + se[:, :, None] * se[:, None, :]
        r = (tau2[c][:, None] + cvi2[c][:, None] * (dy == day[has][i, None])
             + np.sqrt(extra[has][i, None]) * se)                                # (g, k)
        b = np.linalg.solve(R, r[..., None])[..., 0]
        f[i] = 1.0 - b.sum(-1)
        by[i] = (b * on.y[rows]).sum(-1)
        bd[i] = (b * on.diurnal[rows]).sum(-1)
        v[i] = v[i] - (b * r).sum(-1)
        bw[i, :k], bday[i, :k], bse[i, :k], brow[i, :k] = b, dy, se, rows
    return f, by, bd, v, bw, bday, bse, brow


def _loo_conditionals(tabs: AxisTables, per: dict[str, np.ndarray], n: np.ndarray,
                      c: np.ndarray, M_inv: np.ndarray, post_mean: np.ndarray) -> np.ndarray:
    """``log p(y_j | y_-j, states)`` of observed results ``j`` (cases ``n``, axis channels
    ``c``, :func:`_stats`' ``per_result`` terms ``per``): ``(rows, G)``.

    The leave-one-out identity in information form.  With noise covariance ``N`` (block
    diagonal per channel), latent prior covariance ``S``, ``C = N + L S L'``, ``M = S^-1 +
    L' N^-1 L`` and ``zhat`` the latents' posterior mean, the residual ``r = y - E y`` has
    ``C^-1 r = N^-1 (y - mu - amp d - L zhat)`` and ``(C^-1)_jj = (N^-1)_jj - (N^-1 L)_j M^-1
    (N^-1 L)_j'``, where a result's rows of ``N^-1`` are those of its channel's ``R^-1``
    (``(N^-1 L)_j = a_j L_c``).  Then ``log p(y_j | y_-j) = 0.5 (log (C^-1)_jj - log 2 pi)
    - 0.5 (C^-1 r)_j^2 / (C^-1)_jj``.
    """
    return kernels.loo_conditionals(tabs.loadings, tabs.mu, tabs.amp, per["nd"], per["a"], per["ry"],
                            per["rd"], n, c, M_inv, post_mean)


def _gross_mixture(lr: np.ndarray, case: np.ndarray, n_cases: int, eps: float) -> np.ndarray:
    """``log((1 - n eps) + eps sum_j exp(lr_j))`` over each case's rows ``j`` (``lr``:
    ``(rows, G)``, rows sorted by ``case``; ``n`` the case's number of rows): ``(N, G)``, 0
    for cases without rows (:func:`~neb_bayes.inference.exact.gross_mixture` per case)."""
    start = np.flatnonzero(np.r_[True, case[1:] != case[:-1]])
    n = np.diff(np.r_[start, case.size])
    out = np.zeros((n_cases, lr.shape[1]))
    out[case[start]] = kernels.gross_mixture(np.ascontiguousarray(lr), start, n, eps)
    return out


def _rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` computed row by row in a fixed order (no BLAS blocking, whose summation
    order can depend on the number of rows): a case's answer must not depend on its chunk."""
    return np.einsum("nc,cg->ng", a, b)


# --------------------------------------------------------------------------------------------
# the joint posterior of a group of cases that share a model view
def _group(model: CompiledModel, evs: list[Evidence], flat: Flat) -> tuple[np.ndarray, np.ndarray]:
    vt = view_tables(model)
    n = len(evs)
    eps = model.gross_error_rate
    log_q = _gross_log_density(model, flat) if eps > 0 else None
    parts = [np.ascontiguousarray(_axis_loglik(model, tabs, n, flat, eps, log_q)).reshape(-1)
             for tabs in vt.axes]
    # symptoms: absent ones are additive over axes (one array: each axis' columns, then the
    # propensity level's normaliser); present ones couple their cause axes
    n_sym = len(model.symptoms)
    absent = np.zeros((n, n_sym))
    absent[np.repeat(np.arange(n), [ev.absent.size for ev in evs]),
           np.concatenate([ev.absent for ev in evs] + [np.zeros(0, np.int64)])] = 1.0
    other = np.empty((n, vt.cause.shape[0] + 1))
    other[:, :-1] = _rows(absent, vt.cause.T)
    level = model.log_propensity_w[None] + _rows(absent, model.log1m_leak.T)  # (N, P)
    level_max = level.max(1)
    level = np.exp(level - level_max[:, None])                              # (N, P), max 1
    other[:, -1] = level_max + np.log(level.sum(1))
    parts.append(other.reshape(-1))
    # every factor to probability space on its own small scope (few exponentials), tile by
    # tile inside the joint pass: no exponential over the joint states, and no pass over the
    # chunk's memory per factor (the arrays padded as the contraction pads its tables)
    parts = padded(tuple(parts))
    # the strata: the cases' covariates, found by object first (a chunk's cases share a few
    # objects, one per patient section: hashing each case's would cost ~1 us)
    objs = {id(ev.covariates): ev.covariates for ev in evs}
    where = {c: i for i, c in enumerate(dict.fromkeys(objs.values()))}
    prior = np.stack([_prior_prob(model, c, vt.order) for c in where])
    of = {k: where[c] for k, c in objs.items()}
    stratum = np.array([of[id(ev.covariates)] for ev in evs], dtype=np.int64)
    index = _factor_index(vt.plan.shapes, vt.shape, vt.order)
    # present symptoms: p(present | s) = sum_k w_k prod_y P(y | k, s) / sum_k w_k (the
    # normaliser of w is already in ``parts``); every factor, the prior and the present
    # symptoms multiplied per joint state and summed into the marginals in one pass
    w = level / level.sum(1, keepdims=True)
    counts = np.array([ev.present.size for ev in evs], dtype=np.int64)
    ids = np.concatenate([ev.present for ev in evs] + [np.zeros(0, np.int64)]).astype(np.int64)
    marg, z, healthy, shift = kernels.fused_joint(
        prior, stratum, parts, vt.row_stride, vt.plan.arrays, vt.plan.n_entries,
        vt.plan.rows, index,
        (vt.present_tab, vt.present_off, vt.present_size, vt.present_stride),
        ids, np.cumsum(counts) - counts, counts, w,
        np.array([vt.shape[a] for a in vt.order], dtype=np.int64), vt.healthy)
    # (each axis' marginal where the kernel's order puts it)
    first, at = {}, 0
    for a in vt.order:
        first[a], at = at, at + vt.shape[a]
    out = np.empty((n, len(model.conditions) + 1))
    for k, (a, mask) in enumerate(zip(model.cond_axis, model.cond_states, strict=True)):
        out[:, k] = marg[:, first[a]:first[a] + vt.shape[a]][:, mask].sum(1)
    out[:, -1] = healthy
    with np.errstate(divide="ignore"):
        log_ev = shift + np.log(z)
    probs = np.clip(out / z[:, None], 0.0, 1.0)
    # a case whose factors disagree so much that the product underflows: recomputed in log
    # space by the caller
    ok = z > UNDERFLOW
    return probs, np.where(ok, log_ev, np.nan)


def _gross_log_density(model: CompiledModel, flat: Flat) -> np.ndarray:
    """:meth:`CompiledModel.gross_log_density` of every row, in one compiled pass
    (:func:`kernels.gross_log_q`; ~3.8 -> ~0.5 us per case, numpy's pass channel by
    channel spent most of its time in calls), each row's value from its own terms only."""
    return kernels.gross_log_q(flat.channel, flat.y, flat.censor, *gross_table(model))


@lru_cache(maxsize=64)
def _factor_index(shapes: tuple[tuple[int, ...], ...], joint: tuple[int, ...],
                  order: tuple[int, ...] | None = None) -> np.ndarray:
    """``(F, J)``: each joint state's (shape ``joint``) entry in factor ``f`` (shape
    ``shapes[f]``, 1 along the axes it does not depend on) when the factors' tables are laid
    one after another; the joint states with their axes in ``order`` (default: as given)."""
    out = np.empty((len(shapes), int(np.prod(joint))), dtype=np.int32)
    order = tuple(range(len(joint))) if order is None else order
    offset = 0
    for f, shape in enumerate(shapes):
        size = int(np.prod(shape))
        out[f] = np.broadcast_to(np.arange(offset, offset + size).reshape(shape),
                                 joint).transpose(order).ravel()
        offset += size
    out.setflags(write=False)
    return out


@lru_cache(maxsize=512)
def _prior_prob(model: CompiledModel, cov, order: tuple[int, ...]) -> np.ndarray:
    """Prior probability of every joint state of a stratum, its axes in ``order``, flattened
    (cached)."""
    out = np.exp(log_prior(model, cov)).transpose(order).ravel()
    out.setflags(write=False)
    return out


#: models with a context's latent shifts and symptom factors applied, by context signature
_CONTEXT_MODELS: OrderedDict[tuple, tuple[CompiledModel, CompiledModel]] = OrderedDict()


def context_model(model: CompiledModel, ev: Evidence) -> CompiledModel:
    """``model`` with the case's context latent shifts and symptom factors built in, so that
    cases sharing a context run through the vectorised engine together (cached per model and
    signature; the gross-error density and the prior are the model's own, as in
    :func:`~neb_bayes.inference.exact.infer_exact`)."""
    sig = ev.context_signature
    if not sig:
        return model
    key = (id(model), sig)
    hit = _CONTEXT_MODELS.get(key)
    if hit is not None and hit[0] is model:
        _CONTEXT_MODELS.move_to_end(key)
        return hit[1]
    axes = list(model.axes)
    for a in ev.lat_shift:
        mean, cov = ev.latent_params(model, a)
        axes[a] = replace(axes[a], lat_mean=mean, lat_cov=cov)
    leak, cause = (model.log1m_leak, model.log1m_cause) if ev.cause_scale is None \
        else ev.symptom_tables(model)
    derived = replace(model, axes=tuple(axes), log1m_leak=leak, log1m_cause=cause)
    _CONTEXT_MODELS[key] = (model, derived)
    if len(_CONTEXT_MODELS) > 64:
        _CONTEXT_MODELS.popitem(last=False)
    return derived


def posterior_batch(model: CompiledModel, evidences: list[Evidence]) -> tuple[np.ndarray, np.ndarray]:
    """Exact condition probabilities and log evidence for many cases.

    Returns ``(probabilities, log_evidence)``: ``(n_cases, n_conditions + 1)`` with columns
    ``model.conditions`` then ``"none"``, and ``(n_cases,)``.  Each case's answer is the
    same as :func:`~neb_bayes.inference.exact.infer_exact`'s whatever the chunk it is in.
    """
    probs, log_ev, exact = posterior_rows(model, evidences, Flat.of(evidences))
    for i in np.flatnonzero(exact).tolist():
        post = infer_exact(model, evidences[i], explain=False)
        probs[i, :-1], probs[i, -1], log_ev[i] = post.condition_probs, post.none_prob, post.log_evidence
    return probs, log_ev


def posterior_rows(model: CompiledModel, evidences: list[Evidence],
                   flat: Flat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`posterior_batch` with every case's results given as rows.

    ``flat``: the results of ``evidences`` (``flat.case`` indexes them), by case, as
    :meth:`Flat.of` gives them, which this reads instead of the evidences' blocks (the
    batch's reader of plain cases builds it without blocks: :mod:`neb_bayes.batch.plain`);
    the evidences give the rest (covariates, symptoms, context).  Returns ``(probabilities,
    log_evidence, exact)``; a case with ``exact`` set (one whose factors underflow) has no
    answer here (NaN): the caller computes it with
    :func:`~neb_bayes.inference.exact.infer_exact` from its full evidence.
    """
    n = len(evidences)
    probs = np.full((n, len(model.conditions) + 1), np.nan)
    log_ev = np.full(n, np.nan)
    exact = np.zeros(n, bool)
    bounds = np.searchsorted(flat.case, np.arange(n + 1))       # case i: rows bounds[i]:bounds[i+1]
    groups: dict[tuple, list[int]] = {}
    for i, ev in enumerate(evidences):
        if not exact[i]:
            cov = ev.covariates
            groups.setdefault((cov.sex, gates_of(model, cov.flags), ev.context_signature),
                              []).append(i)
    for (sex, gates, _), idx in groups.items():
        # cases sharing a context (treated disease: latent shifts, symptom factors) share a
        # model with it built in
        view = view_for_sex(context_model(model, evidences[idx[0]]), sex, gates)
        for s in range(0, len(idx), SUB_CHUNK):
            part = np.asarray(idx[s:s + SUB_CHUNK])
            probs[part], log_ev[part] = _group(view, [evidences[i] for i in part],
                                               flat.cases(part, bounds))
    exact |= np.isnan(log_ev)
    probs[exact] = np.nan
    return probs, log_ev, exact
