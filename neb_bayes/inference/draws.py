"""The exact posterior under every parameter draw at once: uncertainty for each probability.

Same computation as :mod:`neb_bayes.inference.exact` (the same functions, with a leading
draw dimension), probabilities only.  To keep the work per draw small:

* axes are cut to the states the patient's sex allows (the other sex's gonadal states have
  prior probability 0), whether or not the caller already passed a sex view;
* what does not depend on the case is computed once per (model, draws) and kept
  (:class:`DrawTables`): the symptom tables for every symptom, latent covariances, and the
  prior's conditional tables per stratum;
* a block's likelihood over draws x its dependency grid is computed in one (draws x own
  states, other axes) layout, with the gross-error mixture summed while each result's
  leave-one-out term is in cache (:func:`~neb_bayes.inference.exact.gaussian_block_loglik`;
  where every result is observed, one compiled call from the residuals and covariance
  parts, :func:`~neb_bayes.inference.draws_kernels.mixture_block`, which writes it with
  the draws last in memory, as the prior's cached tables are: the layout the contraction
  reads, so its sums and maxima over the factors do not transpose them; where one result
  is censored and the other axes have one point, two compiled passes and one ``log_ndtr``,
  :func:`~neb_bayes.inference.draws_kernels.censored_block`); the latent covariances and a
  block's mean come with the stack's tail first in memory, which these kernels read
  without a copy;
* the present symptoms' tables over their cause axes, levels and draws come from one
  compiled pass per set of cause axes
  (:func:`~neb_bayes.inference.draws_kernels.present_symptoms`);
* every likelihood stays a factor over its own small scope, and the marginals come from a
  contraction of those factors (:func:`neb_bayes.tensor.contract_marginals`, log-factors
  summed once, tables made and contracted in chunks of draws that stay in cache; each
  product summed in one compiled pass without being formed), never from the joint tensor.
  By default the contraction's tables and products are float32 with float64 sums
  (``single``): every probability within about 1e-6 of double precision (2.2e-7 the largest
  difference seen over 187 cases x 200 draws), draws whose factors conflict so strongly
  that float32 could lose values recomputed in float64.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from neb_bayes.accel import decided
from neb_bayes.allocator import retain_freed_memory
from neb_bayes.evidence import Evidence
from neb_bayes.inference.exact import (
    SymptomTerms,
    block_loglik,
    latent_precision,
    prime_block_log_q,
    symptom_level_factors,
)
from neb_bayes.model.compiled import CompiledModel, gates_of, keep_within, view_for_sex
from neb_bayes.model.params import ParamDraws
from neb_bayes.model.prior import Covariates, axis_modifiers, log_prior_parts
from neb_bayes.tensor import contract_marginals, move_axis

#: above this many joint states of the present symptoms' cause axes, the propensity level is
#: left to the contraction instead of being summed out on that grid
SMALL_SYMPTOM_GRID = 150

#: the contraction in float32 by default (probabilities within ~1e-6 of float64)
SINGLE = True


class DrawTables:
    """What the draws path reads that depends on the model and the draws but not the case.

    Parameters
    ----------
    model
        Compiled model (possibly a restricted view).
    draws
        Parameter draws matching ``model``'s states.
    """

    def __init__(self, model: CompiledModel, draws: ParamDraws):
        self.model = model
        self.draws = draws
        self._symptoms: dict[bytes | None, tuple] = {}
        # (D, S, K, K) each, with (K, K) first in memory: the layout of the blocks' kernels
        # (one (K, K, draws x states) stack), which they then read without a copy
        self.lat_cov = tuple(np.moveaxis(np.ascontiguousarray(np.moveaxis(
            draws.lat_cov(model, a), (-2, -1), (0, 1))), (0, 1), (-2, -1))
            for a in range(len(model.axes)))
        # their precisions and log|S|^(1/2) (what the blocks' kernels read; in the same layout)
        self.lat_prec = tuple(_kernel_layout_precision(c) for c in self.lat_cov)
        self._prior: dict[tuple, list[np.ndarray]] = {}

    def symptom_rows(self, scale: np.ndarray | None = None
                     ) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
        """Every symptom's noisy-OR tables under every draw, symptom first (a case's symptoms
        are then whole rows to gather; indexing the last axis of (draws, states, symptoms)
        is a strided gather): ``log1m_leak`` ``(Y, D, P)``, per axis ``log1m_cause``
        ``(Y, D, S_a)``, and which axes can cause each symptom under some draw
        ``(n_axes, Y)``.  With a context's cause-probability factors ``scale`` (treated
        disease causes fewer symptoms) the tables it gives; cached per ``scale``, so that the
        cases sharing a context share them."""
        key = None if scale is None else np.asarray(scale, dtype=float).tobytes()
        hit = self._symptoms.get(key)
        if hit is None:
            leak, cause = self.model.symptom_table.tables(
                self.draws.cause_logit, self.draws.leak_logit, None, scale)
            hit = (np.ascontiguousarray(np.moveaxis(leak, -1, 0)),
                   tuple(np.ascontiguousarray(np.moveaxis(c, -1, 0)) for c in cause),
                   np.stack([np.any(c != 0, axis=tuple(range(c.ndim - 1))) for c in cause]))
            if len(self._symptoms) >= SYMPTOM_CONTEXTS:
                self._symptoms.pop(next(k for k in self._symptoms if k is not None))
            self._symptoms[key] = hit
        return hit

    def prior_parts(self, cov: Covariates) -> list[np.ndarray]:
        """The prior's conditional log tables for a stratum, one per axis, ``(D, ...)``.

        Cached by what the prior reads from the stratum (the sex and which prevalence
        modifiers apply), so patients of different ages in one age band share an entry.
        """
        # (the modifiers by identity: the prior set's own objects, alive with the model)
        key = (cov.sex, tuple((ax, id(m)) for ax in self.model.spec.raw["prevalence"]
                              for m in axis_modifiers(self.model, ax, cov)))
        parts = self._prior.get(key)
        if parts is None:
            if len(self._prior) >= 32:
                self._prior.pop(next(iter(self._prior)))
            # (each with the draws last in memory, the layout the contraction reads)
            parts = [np.moveaxis(np.ascontiguousarray(np.moveaxis(p, 0, -1)), -1, 0)
                     for p in log_prior_parts(self.model, cov, list(self.draws.prior_base))]
            self._prior[key] = parts
        return parts


def _kernel_layout_precision(lat_cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~neb_bayes.inference.exact.latent_precision` of ``(D, S, K, K)`` covariances,
    the precision stored with ``(K, K)`` first in memory (as :attr:`DrawTables.lat_cov`)."""
    prec, half_logdet = latent_precision(np.ascontiguousarray(lat_cov))
    return (np.moveaxis(np.ascontiguousarray(np.moveaxis(prec, (-2, -1), (0, 1))), (0, 1),
                        (-2, -1)), half_logdet)


#: the symptom tables kept per DrawTables for contexts that change cause probabilities (each
#: ~8 MB with 1,000 draws; a batch meets a handful of such contexts)
SYMPTOM_CONTEXTS = 8

#: DrawTables by (id(model), id(draws)); each entry holds its model and draws, so ids stay valid
_TABLES: dict[tuple[int, int], DrawTables] = {}
#: sex-restricted draws by (id(draws), id(view)), with the objects they were made from
_VIEWS: dict[tuple[int, int], tuple[ParamDraws, CompiledModel, ParamDraws]] = {}


def draw_tables(model: CompiledModel, draws: ParamDraws) -> DrawTables:
    """The (cached) :class:`DrawTables` of a model and its draws."""
    key = (id(model), id(draws))
    tab = _TABLES.get(key)
    if tab is None or tab.model is not model or tab.draws is not draws:
        if len(_TABLES) >= 16:
            _TABLES.pop(next(iter(_TABLES)))
        tab = _TABLES[key] = DrawTables(model, draws)
    return tab


def sex_view(model: CompiledModel, draws: ParamDraws,
             ev: Evidence) -> tuple[CompiledModel, ParamDraws, Evidence]:
    """The model, draws and evidence cut to the states the patient's sex and context allow.

    The cut states have prior probability 0, so every probability is unchanged.  A model that
    is already a sex view is returned as it is.
    """
    cov = ev.covariates
    view = view_for_sex(model, cov.sex, gates_of(model, cov.flags))
    if view is model:
        return model, draws, ev
    keep = keep_within(view, model)
    key = (id(draws), id(view))
    hit = _VIEWS.get(key)
    if hit is None or hit[0] is not draws or hit[1] is not view:
        if len(_VIEWS) >= 8:
            _VIEWS.pop(next(iter(_VIEWS)))
        hit = _VIEWS[key] = (draws, view, draws.restrict(keep))
    shifts = {a: ((shift[keep[a]] if np.ndim(shift) else shift),
                  (scale[keep[a]] if np.ndim(scale) else scale)) if a in keep else (shift, scale)
              for a, (shift, scale) in ev.lat_shift.items()}
    return view, hit[2], dataclasses.replace(ev, lat_shift=shifts)


def probabilities_over_draws(
    model: CompiledModel, draws: ParamDraws, ev: Evidence, chunk: int = 1000,
    single: bool = SINGLE, threads: int = 1, marginals: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """P(condition) for every condition (and ``none`` last) under every draw.

    Parameters
    ----------
    model
        Compiled model (the full model or a sex view).
    draws
        Parameter draws matching ``model``.
    ev
        The case's evidence, built with ``model`` or with the full model.
    chunk
        At most this many draws contracted together (fewer where the case's tables are
        large, :data:`neb_bayes.tensor.CHUNK_BYTES`; results do not depend on it).
    single
        Contract in float32 (products) with float64 sums: every probability within about 1e-6
        of the double-precision result (``single=False``); see
        :func:`neb_bayes.tensor.contract_marginals`.
    threads
        The draws split into up to this many contiguous shares, each computed on its own
        thread from the factors to the contraction (the compiled loops and large numpy
        operations release the GIL): for a single report's latency on an otherwise idle
        machine; one share when the case's factors are small (:data:`THREADS_MIN_STATES`);
        the batch path runs one thread per worker process.  Results do not depend on it.
    marginals
        Also return every axis state's probability under every draw (the contraction's
        marginals, at no extra cost): a report's intervals of the "other readings".

    Returns
    -------
    numpy.ndarray
        ``(D, C + 1)``: columns follow ``model.conditions``, then ``none``; with
        ``marginals`` also ``(D, sum of the axes' states)``, the sex view's axes' states one
        after another.
    """
    global _POOL
    model, draws, ev = sex_view(model, draws, ev)

    def share(tab: DrawTables) -> tuple[np.ndarray, np.ndarray]:
        parts, potentials = _factors(model, tab, ev, single)
        return _contract(model, parts, potentials, tab.draws.n_draws, chunk, single)

    if threads > 1 and _largest_scope(model, ev) < THREADS_MIN_STATES:
        threads = 1
    # the shares' tables looked up (and cached) here, so that the threads only read caches
    tabs = [draw_tables(model, d) for d in _shares(draws, threads)]
    with decided():
        if len(tabs) == 1:
            probs, marg = share(tabs[0])
        else:
            if _POOL is None or _POOL._max_workers < len(tabs):
                retain_freed_memory()
                _POOL = ThreadPoolExecutor(max_workers=len(tabs), thread_name_prefix="neb-draws")
            done = list(_POOL.map(share, tabs))
            probs = np.concatenate([d[0] for d in done])
            marg = np.concatenate([d[1] for d in done])
    return (probs, marg) if marginals else probs


#: below this many joint states per draw in a case's largest factor (a block's dependency
#: grid, the present symptoms' cause axes), its draws take ~20 ms or less and a second thread
#: costs more than it saves (measured: subclinical_hypothyroidism_01, 270 states, 28 -> 33 ms)
THREADS_MIN_STATES = 500


def _largest_scope(model: CompiledModel, ev: Evidence) -> int:
    """Joint states per draw of the case's largest factor: a block's dependency grid or the
    grid of the axes that can cause a present symptom."""
    sizes = [math.prod(model.axes[d].n_states for d in b.deps) for b in ev.blocks]
    if ev.present.size:
        causes = [a for a, c in enumerate(model.log1m_cause) if np.any(c[:, ev.present] != 0)]
        sizes.append(math.prod(model.axes[a].n_states for a in causes))
    return max(sizes, default=0)


#: threads for :func:`probabilities_over_draws` (created on first use with more than one)
_POOL: ThreadPoolExecutor | None = None
#: the draws' contiguous shares per thread count, with the draws they were cut from
_SHARES: dict[tuple[int, int], tuple[ParamDraws, list[ParamDraws]]] = {}


def _shares(draws: ParamDraws, threads: int) -> list[ParamDraws]:
    """``draws`` cut into at most ``threads`` contiguous shares of equal size (cached)."""
    k = max(1, min(threads, draws.n_draws))
    if k == 1:
        return [draws]
    key = (id(draws), k)
    hit = _SHARES.get(key)
    if hit is None or hit[0] is not draws:
        bounds = [draws.n_draws * i // k for i in range(k + 1)]
        if len(_SHARES) >= 16:
            _SHARES.pop(next(iter(_SHARES)))
        hit = _SHARES[key] = (draws, [draws.subset(np.arange(a, b))
                                      for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    return hit[1]


def _contract(model: CompiledModel, parts: list[np.ndarray], potentials: list[np.ndarray],
              n_draws: int, chunk: int, single: bool = SINGLE) -> tuple[np.ndarray, np.ndarray]:
    """P(condition) and P(none) ``(D, C + 1)`` from a case's factors over ``D`` draws, and
    every axis state's probability ``(D, sum of the axes' states)``."""
    masks, columns, starts, kept = _condition_columns(model)
    out = np.zeros((n_draws, len(model.conditions) + 1))
    # the log-factors summed once for all draws; tables made and contracted in chunks of
    # draws that stay in cache
    marg, none = contract_marginals(parts, masks, n_axes=len(model.axes), potentials=potentials,
                                    single=single, chunk=chunk)
    # each condition's states summed, every condition in one pass over the marginals
    states = np.concatenate(marg, axis=1)
    out[:, kept] = np.add.reduceat(states[:, columns], starts, axis=1)
    out[:, -1] = none
    return np.clip(out, 0.0, 1.0), states


@functools.lru_cache(maxsize=16)
def _condition_columns(model: CompiledModel) -> tuple[list[np.ndarray], np.ndarray, np.ndarray,
                                                       np.ndarray]:
    """The healthy masks (0/1 per axis), and for :func:`_contract`'s sums of the axes'
    marginals side by side: each condition's columns, where each condition starts among
    them, and the conditions with a state in ``model`` (a sex view may have none)."""
    first = np.cumsum([0] + [ax.n_states for ax in model.axes])
    columns, starts, kept = [], [], []
    for k, (a, mask) in enumerate(zip(model.cond_axis, model.cond_states, strict=True)):
        states = np.flatnonzero(mask)
        if states.size:
            kept.append(k)
            starts.append(len(columns))
            columns.extend(first[a] + states)
    out = ([ax.healthy.astype(float) for ax in model.axes], np.array(columns, dtype=np.intp),
           np.array(starts, dtype=np.intp), np.array(kept, dtype=np.intp))
    for a in (*out[0], *out[1:]):
        a.flags.writeable = False
    return out


def _factors(model: CompiledModel, tab: DrawTables, ev: Evidence,
             single: bool = SINGLE) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every factor of the posterior under every draw, each ``(D, S_0, ..., S_{n-1}, P)``
    (1 where a factor does not depend on an axis; ``P`` the propensity level): log-factors,
    and factors already on the probability scale (present symptoms with the level kept; in
    float32 for a ``single`` contraction)."""
    draws = tab.draws
    parts = [p[..., None] for p in tab.prior_parts(ev.covariates)]
    potentials: list[np.ndarray] = []
    prime_block_log_q(model, ev.blocks)
    for block in ev.blocks:
        a = block.axis
        latent = ev.latent_params(model, a, draws.lat_mean[a], tab.lat_cov[a], tab.lat_prec[a])
        ll = block_loglik(model, block, latent=latent, log_median=draws.log_median)
        parts.append(ll[..., None])
    # the symptom tables as (D, ..., symptoms) views: the terms read the reported symptoms'
    # columns from them
    leak_rows, cause_rows, cause_nonzero = tab.symptom_rows(ev.cause_scale)
    present = np.asarray(ev.present, dtype=np.int64)
    can_cause = cause_nonzero[:, present]
    sym = (present, np.asarray(ev.absent, dtype=np.int64), move_axis(leak_rows, 0, -1),
           tuple(move_axis(c, 0, -1) for c in cause_rows))
    cause_axes = [ai for ai in range(len(model.axes)) if can_cause[ai].any()]
    if math.prod(model.axes[ai].n_states for ai in cause_axes) <= SMALL_SYMPTOM_GRID:
        # few cause axes: the propensity level summed out on their grid directly
        parts.extend(p[..., None] for p in SymptomTerms(model, *sym).parts())
    else:
        # many: the level kept as a last dimension (summed out by the contraction), so each
        # present symptom is a factor over its own cause axes only
        log_parts, potentials = symptom_level_factors(model, *sym, can_cause=can_cause,
                                                      single=single)
        parts.extend(log_parts)
    return parts, potentials
