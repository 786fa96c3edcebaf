"""One axis' laboratory factor in the PyMC formulation: the formula, its data, its Op.

log p(an axis' results | the states of the axes they depend on) for each person with
results on the axis and each grid point of those axes (:func:`lab_loglik`): the latents
integrated by completing the square in information form, a censored result by its normal
mass, and the gross-error mixture over the results exactly (leave-one-out identity).

:class:`LabBlock` holds one group's data for one axis, laid out so that the cost and memory
of an evaluation do not grow with the size of the grid or of the cohort:

* grid points with the same own state, state effects and rhythm amplitudes give the same
  factor, so it is computed on the distinct ones (gonadal: 48 of 648 in a sex view) and
  gathered back;
* the people are split into parts of at most :data:`PART_SIZE` elements of the largest
  intermediate, those with a censored result apart from the others (each part has one
  structure, no masks), people alike (:func:`run_key`) next to each other: the kernel
  inverts their posterior precisions once per run.

With fixed parameters the factor is evaluated in numpy.  With free ones (an analyte-level
fit) it is part of its group's :func:`LabFactors` Op in the model's graph (the group's axes
together), which runs the compiled kernel
:func:`~neb_bayes.inference.lab_kernels.lab_factor` part by part (numba, cached on disk, on
each axis' own latents, compiled per number of latents), which also keeps each person's and
grid point's gradient with respect to a few intermediates (the hand-written reverse pass);
its gradient is a second Op that contracts those with the cotangent
(:func:`~neb_bayes.inference.lab_kernels.lab_pullback`), so a log-density and gradient runs
the forward pass once.  So the graph NUTS compiles has a handful of nodes per group, no cohort-sized
constants, and nothing to compile per fit.  The formula compiled by pytensor
(:func:`compiled`, padded to :data:`PAD_LATENTS` latents so that one compiled function
serves every axis) is kept as the reference: tests hold the kernel's gradient equal to
pytensor's automatic differentiation of :func:`lab_loglik`.
"""

from __future__ import annotations

import threading

import numpy as np

from neb_bayes.inference.array_ops import Ops
from neb_bayes.inference.python_ops import map_pieces, piece_size, register_by_reference

LOG_2PI = float(np.log(2 * np.pi))

#: latents per axis in the compiled formula: an axis with fewer gets independent padding
#: latents (mean 0, sd 1, no loadings), which change nothing, so that one compiled formula
#: serves every axis (1-4 latents today)
PAD_LATENTS = 4
#: censored results on one axis that a person's factor in the information form covers (their
#: mass by the normal or the bivariate normal CDF, the kernel's); beyond, the exact engine's
MAX_CENSORED = 2
#: largest number of elements of one part's biggest intermediate (people x distinct grid
#: points x latents^2 or slots): bounds an evaluation's memory whatever the cohort size
PART_SIZE = 1 << 20

#: fewest people in a part made smaller for threads (:func:`_part_people`): smaller pieces'
#: hand-offs between threads cost more than they save (a 2,000-person fit with one chain on
#: 2 threads: 77 ms per leapfrog step with parts of 64 people and passes of 32, 72 with
#: these floors, 72 on one thread; 2026-12-07)
MIN_PART_PEOPLE = 256


def _part_people(step: int, n: int) -> int:
    """People per part of ``n`` with the same structure: at most ``step`` (the memory
    bound), cut for the threads down to :data:`MIN_PART_PEOPLE`
    (:func:`~neb_bayes.inference.python_ops.piece_size`)."""
    return piece_size(n, step, MIN_PART_PEOPLE)


class GridSums:
    """For a map of grid points to distinct points ``(G,)``: sums a quantity per grid point
    over the grid points of each distinct point (``U`` of them), in float64, by one compiled
    pass over the rows (:func:`~neb_bayes.inference.lab_kernels.rows_sum`; a gather and a
    segmented sum in numpy took 6-11x as long at a fit's sizes), or a copy where every grid
    point is its own distinct point, in order."""

    def __init__(self, expand: np.ndarray):
        expand = np.asarray(expand, dtype=np.int64)
        self.identity = bool(np.array_equal(expand, np.arange(expand.size)))
        #: the grid points ordered by their distinct point, and where each one's run starts
        #: (the last entry: ``G``)
        self.order = np.argsort(expand, kind="stable")
        self.starts = np.searchsorted(expand[self.order], np.arange(int(expand.max()) + 2))

    def __call__(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        """``x`` per grid point along ``axis`` (``G`` long) summed per distinct point
        (``U`` along ``axis``)."""
        x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
        if self.identity:
            return np.moveaxis(x.copy(), 0, axis)
        from neb_bayes.inference.lab_kernels import rows_sum

        flat = x.reshape(x.shape[0], -1)
        out = np.empty((self.starts.size - 1, flat.shape[1]))
        rows_sum(flat, self.order, self.starts, out)
        return np.moveaxis(out.reshape(out.shape[:1] + x.shape[1:]), 0, axis)


STATS = ("w", "s1", "s2", "t1", "t2", "t3", "ld")
CENSORED = ("at_ch", "lim", "sign", "d", "var", "alpha", "kappa")
GROSS = ("ry", "r1", "rd", "rjj", "lw", "l0")
#: every array :func:`lab_loglik` reads, and its number of dimensions
SCHEMA = {k: 2 for k in ("L", "effect", "amp", "at_own", "to_slot", "at_ch", *STATS, *GROSS[:5])}
SCHEMA |= {k: 3 for k in ("corr", "A")} | {k: 1 for k in (*CENSORED[1:], "l0", "cen_lw")}
SCHEMA["kr"] = 2


def censored_t(sign, lim, mean, var, o: Ops):
    """``t`` with log P(censored result beyond its limit) = log Phi(t), from the mean and
    variance of its log level (shape ``(R, ...)``, one row per person; ``sign`` and ``lim``
    per person)."""
    return -sign[(slice(None),) + (None,) * (mean.ndim - 1)] * (
        lim[(slice(None),) + (None,) * (mean.ndim - 1)] - mean) / o.m.sqrt(var)


def spd_inverse(o: Ops, M, K: int):
    """Inverse and log-determinant of symmetric positive definite matrices ``(..., K, K)``.

    numpy: LAPACK.  pytensor: the Cholesky factor, its inverse and the product written out
    element by element for this ``K`` (the latents per axis: 1-4), so that the graph is
    elementwise arithmetic, which compiles to fused loops with cheap gradients (pytensor's
    batched linear-algebra Ops loop over the batch in Python, forward and backward).
    """
    if not o.symbolic:
        return np.linalg.inv(M), 2 * np.log(np.diagonal(np.linalg.cholesky(M), axis1=-2,
                                                        axis2=-1)).sum(-1)
    m = o.m
    c = [[None] * K for _ in range(K)]
    for j in range(K):
        c[j][j] = m.sqrt(M[..., j, j] - sum(c[j][k] ** 2 for k in range(j)))
        for i in range(j + 1, K):
            c[i][j] = (M[..., i, j] - sum(c[i][k] * c[j][k] for k in range(j))) / c[j][j]
    x = [[None] * K for _ in range(K)]   # c^-1, lower triangular
    for i in range(K):
        x[i][i] = 1.0 / c[i][i]
        for j in range(i):
            x[i][j] = -sum(c[i][k] * x[k][j] for k in range(j, i)) * x[i][i]
    inv = [[sum(x[k][a] * x[k][b] for k in range(max(a, b), K)) for b in range(K)]
           for a in range(K)]
    logdet = 2 * sum(m.log(c[i][i]) for i in range(K))
    return m.stack([m.stack(row, axis=-1) for row in inv], axis=-2), logdet


def lab_loglik(o: Ops, lat_mean, lat_sd, log_median, d: dict, K: int):
    """log p(results | grid point), ``(R, G)``, for people who all have one censored result
    (``"lim" in d``) or none.

    ``lat_mean``, ``lat_sd`` ``(S, K)``: the latents' mean and sd per own state (the view's
    states, treated-disease shifts applied); ``log_median`` ``(C,)``: the axis' channels.
    ``d`` holds the data (:data:`SCHEMA`): channel loadings, per grid point state effects,
    rhythm amplitudes and own state (one-hot ``at_own`` ``(S, G)``), the latents'
    correlations, each person's GLS statistics and information matrix ``A``, and, if
    present, the censored result (its channel one-hot, ``at_ch`` ``(R, C)``) and the
    gross-error slots (``"ry" in d``).  numpy or pytensor, as ``o``.  Gathers are products
    with one-hot matrices, which have plain matrix-product gradients.
    """
    L, effect, amp, at_own = d["L"], d["effect"], d["amp"], d["at_own"]
    w, s1, s2, t1, t2, t3, ld = (d[k] for k in STATS)
    dot, td = o.m.dot, o.m.tensordot
    mu_c = log_median[:, None] + effect                                                 # (C, G)
    # -0.5 * sum over channels of (y - mu - amp d)' R^-1 (y - mu - amp d), from the statistics
    q = (s2.sum(1)[:, None] + dot(w, mu_c**2) - 2 * dot(s1, mu_c) + dot(t2, amp**2)
         - 2 * dot(t3, amp) + 2 * dot(t1, mu_c * amp))                                  # (R, G)
    c = -0.5 * q - 0.5 * ld.sum(axis=1)[:, None]
    b = (dot(s1, L)[:, None, :] - td(w, mu_c[:, :, None] * L[:, None, :], axes=[[1], [0]])
         - td(t1, amp[:, :, None] * L[:, None, :], axes=[[1], [0]]))                   # (R, G, K)
    cov = d["corr"] * lat_sd[:, :, None] * lat_sd[:, None, :]                          # (S, K, K)
    S_inv, logdet_S = spd_inverse(o, cov, K)                                           # (S,)
    M_inv, logdet_M = spd_inverse(o, S_inv[None] + d["A"][:, None], K)                 # (R, S)
    s_mu = (S_inv * lat_mean[:, None, :]).sum(-1)                                      # (S, K)
    eta = dot(at_own.T, s_mu)[None] + b                                                # (R, G, K)
    M_inv_g = td(M_inv, at_own, axes=[[1], [0]]).transpose(0, 3, 1, 2)                 # (R, G, K, K)
    post_mean = (M_inv_g * eta[:, :, None, :]).sum(-1)                                 # (R, G, K)
    ll = (c + dot(-0.5 * (lat_mean * s_mu).sum(-1) - 0.5 * logdet_S, at_own)[None]
          + 0.5 * (eta * post_mean).sum(-1) - 0.5 * dot(logdet_M, at_own))
    censored = None
    if "lim" in d:
        at_ch = d["at_ch"]
        # (alpha, kappa, d and var: its conditional given observed repeats in its channel)
        Lw = d["alpha"][:, None] * dot(at_ch, L)                                       # (R, K)
        mean_w = (d["alpha"][:, None] * dot(at_ch, mu_c) + dot(at_ch, amp) * d["d"][:, None]
                  + d["kappa"][:, None] + (Lw[:, None] * post_mean).sum(-1))
        var_w = ((Lw[:, None, :, None] * M_inv_g * Lw[:, None, None, :]).sum(axis=(-2, -1))
                 + d["var"][:, None])
        log_mass = o.normal_lcdf(censored_t(d["sign"], d["lim"], mean_w, var_w, o))  # (R, G)
        ll = ll + log_mass
        censored = (Lw, mean_w, var_w, log_mass)
    if "ry" in d:
        ll = ll + _gross_log_factor(o, d, mu_c, post_mean, M_inv, censored)
    return ll


def _gross_log_factor(o: Ops, d: dict, mu_c, post_mean, M_inv, censored):
    """log((1 - n eps) + eps sum_j q(y_j) p(y_-j) / p(y)) per person and grid point (R, G):
    the gross-error mixture over the person's ``n`` results on the axis, exactly.

    Observed results by the leave-one-out identity in information form: with ``N`` the
    (per channel block-diagonal) noise covariance, ``zhat`` and ``M^-1`` the latents'
    posterior mean and covariance, ``C^-1 r = N^-1 (y - m - L zhat)`` and ``(C^-1)_jj =
    (N^-1)_jj - (N^-1 L)_j M^-1 (N^-1 L)_j'``, and log p(y_-j) = log p(y) - log p(y_j | y_-j).
    A censored result ``w``: p(y_-w) = p(y_obs); for an observed ``j`` in its block,
    P(w censored | y_obs,-j) from the latents' posterior without ``j`` (a rank-one downdate:
    ``zhat_-j = zhat - u_j (C^-1 r)_j / c_jj``, ``M_-j^-1 = M^-1 + u_j u_j' / c_jj`` with
    ``u_j = M^-1 (N^-1 L)_j'``).  Slots (``to_slot``: channel -> slot) hold each person's
    observed results, one per channel and repeat; an empty slot has ``lw = -inf``.
    """
    L, to_slot, at_own = d["L"], d["to_slot"], d["at_own"]
    td = o.m.tensordot

    def on_slots(x):   # (R, S, C): per own state and channel -> (R, G, J)
        return td(td(x, at_own, axes=[[1], [0]]), to_slot, axes=[[1], [0]])

    ry, r1, rd, rjj = (d[k][:, None, :] for k in ("ry", "r1", "rd", "rjj"))           # (R, 1, J)
    mean_c = td(post_mean, L, axes=[[2], [1]]) + mu_c.T                                # m + L zhat
    res = (ry - r1 * td(mean_c, to_slot, axes=[[2], [0]])
           - rd * o.m.dot(d["amp"].T, to_slot))                                        # (C^-1 r)_j
    lml = (M_inv[:, :, None] * (L[:, :, None] * L[:, None, :])).sum(axis=(-2, -1))     # (R, S, C)
    inv_c = 1.0 / (rjj - r1**2 * on_slots(lml))                                        # 1 / c_jj
    # log eps q(y_j) - log p(y_j | y_-j), (R, G, J)
    ratio = (d["lw"] + 0.5 * LOG_2PI)[:, None, :] + 0.5 * (res**2 * inv_c + o.m.log(inv_c))
    terms = [d["l0"][:, None, None] + o.m.zeros_like(ratio[:, :, :1])]
    if censored is not None:
        Lw, mean_w, var_w, log_mass = censored
        cross = td((Lw[:, None, :, None] * M_inv).sum(axis=2), L, axes=[[2], [1]])    # Lw M^-1 L'
        u = r1 * on_slots(cross) + d["kr"][:, None, :]                # cov(w, y_j) C^-1 e_j
        v = u * inv_c
        t_j = censored_t(d["sign"], d["lim"], mean_w[:, :, None] - v * res,
                         var_w[:, :, None] + u * v, o)
        ratio = ratio + o.normal_lcdf(t_j) - log_mass[:, :, None]
        terms.append((d["cen_lw"][:, None] - log_mass)[:, :, None])
    return o.logsumexp(o.m.concatenate(terms + [ratio], axis=2), axis=2)[:, :, 0]


def run_key(d: dict) -> np.ndarray:
    """Per person of a part's data ``d``, ``(R, m)``: what the kernels' work per person and
    own state depends on (``A``; per gross-error slot whether it is empty, and ``r1`` and
    ``rjj``; per censored result its channel, ``alpha`` and ``var``, and ``cov12``).  People
    with equal keys share the posterior covariances ``M^-1`` and what follows from them."""
    R = d["A_k"].shape[0]
    if not R:
        return np.zeros((0, 1))
    cols = [d["A_k"]]
    if "lw" in d:
        used = np.isfinite(d["lw"])
        cols += [used, np.where(used, d["r1"], 0.0), np.where(used, d["rjj"], 0.0)]
    if d["n_w"]:
        ck = d["cen_k"]
        cols += [ck["ch"], ck["alpha"], ck["var"], ck["cov"]]
    return np.concatenate([np.asarray(c, dtype=float).reshape(R, -1) for c in cols], axis=1)


def new_runs(key: np.ndarray) -> np.ndarray:
    """``(R,)``: whether each person's :func:`run_key` row differs from the one before (the
    first person's always does): where the kernels start a run of people alike."""
    out = np.ones(key.shape[0], dtype=np.bool_)
    out[1:] = (key[1:] != key[:-1]).any(axis=1)
    return out


def point_reps(d: dict) -> tuple[np.ndarray, np.ndarray]:
    """Which of a part's distinct grid points each person's results cannot tell apart.

    A person's factor at a grid point reads the points' own state and the state effects and
    rhythm amplitudes of the channels of its results only (observed, in a gross-error slot or
    censored); points equal in those give equal factors.  Returns ``reps (P, G)``, per
    pattern of such channels each point's first equal point, and ``sig (R,)``, each
    person's pattern (the kernels compute a point's factor only where ``reps[p, g] == g``)."""
    R, G = d["A_k"].shape[0], d["effect"].shape[1]
    if not R:
        return np.arange(G, dtype=np.int64)[None], np.zeros(0, dtype=np.int64)
    on = np.zeros((R, d["L_k"].shape[0]), dtype=bool)
    for name in ("w", "s1", "t1", "t2", "t3"):      # the kernel's active channels
        on |= d[name] != 0
    if d["n_w"]:
        on[np.arange(R)[:, None], d["cen_k"]["ch"]] = True
    if "lw" in d:
        for j, c in enumerate(d["slot_ch"]):
            on[:, c] |= np.isfinite(d["lw"][:, j])
    patterns, sig = np.unique(on, axis=0, return_inverse=True)
    reps = np.empty((len(patterns), G), dtype=np.int64)
    own = d["own"][None].astype(float)
    for p, channels in enumerate(patterns):
        cols = np.concatenate([own, d["effect"][channels], d["amp"][channels]])
        _, first, inverse = np.unique(cols, axis=1, return_index=True, return_inverse=True)
        reps[p] = first[inverse.reshape(-1)]
    return reps, np.ascontiguousarray(sig.reshape(-1), dtype=np.int64)


class LabBlock:
    """One group's laboratory factor on one axis (see the module docstring).

    Parameters
    ----------
    ad : AxisData
        The group's data on the axis (:func:`neb_bayes.inference.pymc_model.prepare_group`).
    corr : (S, K, K) array
        The latents' correlations per own state of the view.
    """

    def __init__(self, ad, corr: np.ndarray):
        key = np.concatenate([ad.own_idx[None].astype(float), ad.effect, ad.amp])
        _, first, self.inverse = np.unique(key, axis=1, return_index=True, return_inverse=True)
        self.inverse = self.inverse.reshape(-1)
        # the grid points by distinct point: a cotangent's columns summed per distinct point
        self.per_distinct_sums = GridSums(self.inverse)
        n_own = ad.grid_shape[ad.deps.index(ad.axis)]
        C, self.n_latents = ad.loadings.shape
        self.K = K = max(self.n_latents, PAD_LATENTS)
        pad = K - self.n_latents
        corr_padded = np.tile(np.eye(K), (corr.shape[0], 1, 1))
        corr_padded[:, :self.n_latents, :self.n_latents] = corr
        self.shared = {"L": np.pad(ad.loadings, ((0, 0), (0, pad))), "corr": corr_padded,
                       "effect": ad.effect[:, first], "amp": ad.amp[:, first],
                       "at_own": np.eye(n_own)[:, ad.own_idx[first]],
                       "own": np.ascontiguousarray(ad.own_idx[first], dtype=np.int64),
                       # the kernel's, without the padding latents
                       "L_k": np.ascontiguousarray(ad.loadings, dtype=float),
                       "corr_k": np.ascontiguousarray(corr, dtype=float)}
        self.n_rows = ad.rows.size
        self.n_unique = first.size
        #: (parameters, per part the kernel's gradients) of the last :meth:`people_values`
        self._last: tuple[bytes, list] | None = None
        self.rows = ad.rows
        # people read per own state (AxisData.per_state): their S rows of statistics each
        self.per_state = ad.per_state
        self.n_stats = ad.A.shape[0]
        self._points = np.arange(first.size)
        self.grid_shape = tuple(ad.grid_shape)
        gs = ad.gross
        if gs is not None:
            self.shared["to_slot"] = np.eye(C)[:, gs["slot_ch"]]
            self.shared["slot_ch"] = np.ascontiguousarray(gs["slot_ch"], dtype=np.int64)
        J = gs["lw"].shape[1] if gs is not None else 0
        step = max(1, PART_SIZE // max(1, self.n_unique * max(K * K, J + 2)))   # people
        has = ad.cen["has"].astype(np.int64)

        def part_data(idx: np.ndarray, n_w: int) -> dict:
            data = {k: ad.stats[k][idx] for k in STATS}
            data["A"] = np.pad(ad.A[idx], ((0, 0), (0, pad), (0, pad)))
            data["A_k"] = np.ascontiguousarray(ad.A[idx], dtype=float)
            data["n_w"] = n_w
            if n_w:
                # the kernel's: per person and censored result (R, n_w)
                data["cen_k"] = {k: ad.cen[k][idx, :n_w] for k in ("ch", *CENSORED[1:])}
                data["cen_k"]["cov"] = ad.cen["cov"][idx]
                if gs is not None:
                    data["cen_k"] |= {"cen_lw": gs["cen_lw"][idx, :n_w],
                                      "kr": gs["kr"][idx, :, :n_w]}
            if n_w == 1:   # the formula's (lab_loglik: one censored result)
                data |= {k: ad.cen[k][idx, 0] for k in CENSORED[1:]}
                data["at_ch"] = np.eye(C)[ad.cen["ch"][idx, 0]]
            if gs is not None:
                data |= {k: gs[k][idx] for k in GROSS}
                if n_w == 1:
                    data["cen_lw"] = gs["cen_lw"][idx, 0]
                    data["kr"] = gs["kr"][idx, :, 0]
            return data

        self.parts: list[tuple[np.ndarray, dict]] = []
        for n_w in range(MAX_CENSORED + 1):
            rows = np.flatnonzero(has == n_w)
            # people alike (run_key) next to each other: the kernels share their work per run
            key = run_key(part_data(rows, n_w))
            order = np.lexsort(key.T[::-1])
            rows, key = rows[order], key[order]
            size = _part_people(step, rows.size)
            for lo in range(0, rows.size, size):
                idx = rows[lo:lo + size]
                # with the shared arrays, kept: the compiled kernel's arguments are then
                # assembled once per part (:func:`_kernel_args`), not at every evaluation
                data = self.shared | part_data(idx, n_w)
                data["new_run"] = new_runs(key[lo:lo + size])
                data["reps"], data["sig"] = point_reps(data)
                self.parts.append((idx, data))

    def structure(self, data: dict) -> tuple[int, bool, int]:
        """(censored results, gross errors, latents) of a part: the compiled formula it
        needs."""
        return data["n_w"], "ry" in data, self.K

    def values(self, params, evaluate=None) -> np.ndarray:
        """The factor ``(R, G)`` at ``params = (lat_mean, lat_sd, log_median)``, in numpy or
        (``evaluate(structure, params, data)``) by a compiled formula.  A part with two
        censored results is the compiled kernel's where ``evaluate`` is the formula's (numpy
        or pytensor): :func:`lab_loglik` has no bivariate normal CDF."""
        return self._distinct_values(params, evaluate)[:, self.inverse]

    def _distinct_values(self, params, evaluate=None) -> np.ndarray:
        """:meth:`values` at the distinct grid points only, ``(R, U)``."""
        params = self._padded(params)

        def part_values(part):
            d = part[1]
            st = self.structure(d)
            if st[0] > 1 and evaluate in (None, _evaluate_value):
                return kernel_value(st, params, d)
            if evaluate is None:
                return lab_loglik(Ops(False), *params, d, self.K)
            return evaluate(st, params, d)

        out = np.empty((self.n_stats, self.n_unique))
        for (idx, _), x in zip(self.parts, map_pieces(part_values, self.parts), strict=True):
            out[idx] = x
        return self._from_states(out)

    def _split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``x`` of the statistics as (the others' rows, ``(per-state people, S, ...)``)."""
        S = self.shared["at_own"].shape[0]
        first = self.n_stats - self.per_state * S
        return x[:first], x[first:].reshape((self.per_state, S) + x.shape[1:])

    def _from_states(self, out: np.ndarray) -> np.ndarray:
        """Per row of the statistics ``(R', U)`` -> per person ``(R, U)``: a person read per
        own state takes, at each distinct grid point, its own state's row."""
        if not self.per_state:
            return out
        rest, per = self._split(out)
        return np.concatenate([rest, per[:, self.shared["own"], self._points]])

    def _to_states(self, ct: np.ndarray) -> np.ndarray:
        """:meth:`_from_states`' transpose: a cotangent per person ``(R, U)`` -> per row of
        the statistics (0 at the grid points of the other states' rows)."""
        if not self.per_state:
            return ct
        out = np.zeros((self.n_stats, ct.shape[1]))
        rest, per = self._split(out)
        first = rest.shape[0]
        rest[:] = ct[:first]
        per[:, self.shared["own"], self._points] = ct[first:]
        return out

    def on_people(self, values: np.ndarray, n: int) -> np.ndarray:
        """The factor ``(R, G)`` of the people with results on the axis as every person's of
        the group, ``(n, *grid_shape)`` (0, a factor of 1, for the others)."""
        return self._every_person(values, n).reshape((n,) + self.grid_shape)

    def _every_person(self, values: np.ndarray, n: int) -> np.ndarray:
        """Rows ``values`` of the people with results on the axis as ``n`` rows, one per
        person of the group (0, a factor of 1, for the others)."""
        out = np.zeros((n, values.shape[1]))
        out[self.rows] = values
        return out

    def vjp(self, params, cotangent: np.ndarray, evaluate) -> list[np.ndarray]:
        """d(sum(cotangent * factor))/d(params), by the compiled vector-Jacobian product
        ``evaluate(structure, params, data, cotangent_part)`` (the kernel's for a part with
        two censored results where ``evaluate`` is the formula's, as in :meth:`values`)."""
        return self._distinct_vjp(params, self.per_distinct(cotangent), evaluate)

    def per_distinct(self, x: np.ndarray) -> np.ndarray:
        """``(..., G)`` per grid point summed over the grid points of each distinct one,
        ``(..., U)``: a cotangent of the factor as one of its distinct values."""
        return self.per_distinct_sums(x)

    def _distinct_vjp(self, params, cotangent: np.ndarray, evaluate) -> list[np.ndarray]:
        """:meth:`vjp` with the cotangent per distinct grid point, ``(R, U)``."""
        ct = self._to_states(cotangent)
        params = self._padded(params)

        def part_vjp(part):
            idx, d = part
            st = self.structure(d)
            fn = kernel_vjp if st[0] > 1 and evaluate is _evaluate_vjp else evaluate
            return fn(st, params, d, ct[idx])

        grads = [np.zeros(np.shape(p)) for p in params]
        for part_grads in map_pieces(part_vjp, self.parts):     # summed in the parts' order
            for g, x in zip(grads, part_grads, strict=True):
                g += x
        k = self.n_latents
        return [grads[0][:, :k], grads[1][:, :k], grads[2]]

    @property
    def expand(self) -> np.ndarray:
        """``(G,)``: each grid point's distinct point (a factor per distinct point ``x`` is
        ``x[..., expand]`` per grid point)."""
        return self.inverse

    def people_values(self, params, n: int) -> np.ndarray:
        """Every person's factor of the group by the compiled kernel, ``(n, *grid_shape)``
        (:meth:`distinct_people_values` on the whole grid)."""
        return self.distinct_people_values(params, n)[:, self.inverse].reshape(
            (n,) + self.grid_shape)

    def distinct_people_values(self, params, n: int) -> np.ndarray:
        """Every person's factor of the group by the compiled kernel at the distinct grid
        points, ``(n, U)`` (0 for the people without results on the axis): what the fit's
        :func:`LabFactors` Op computes (the elimination expands it to the grid,
        :attr:`expand`, a pass of people at a time).

        The kernel's gradients per person and grid point are kept for :meth:`gradient` at
        the same parameters (the Op's pullback comes next in a log-density and gradient, so
        the forward pass is not done twice); replaced whole, so threads cannot mix them."""
        coefs = {}      # per part (the parts may run on several threads)

        def forward(structure, padded, d):
            out, coefs[id(d)] = kernel_forward(structure, padded, d)
            return out

        values = self._distinct_values(params, forward)
        self._last = (params_key(params), [coefs[id(d)] for _, d in self.parts])
        return self._every_person(values, n)

    def fixed_people_values(self, params, n: int) -> np.ndarray:
        """Every person's factor of the group in numpy, ``(n, *grid_shape)``: a model whose
        analyte levels are not fitted."""
        return self.on_people(self.values(params), n)

    def gradient(self, params, cotangent: np.ndarray) -> list[np.ndarray]:
        """:meth:`vjp` by the compiled kernels, ``cotangent`` ``(R, G)`` per grid point:
        :meth:`distinct_gradient` of its sums per distinct point."""
        return self.distinct_gradient(params, self.per_distinct(cotangent))

    def distinct_gradient(self, params, cotangent: np.ndarray) -> list[np.ndarray]:
        """:meth:`vjp` by the compiled kernels with the cotangent per distinct grid point,
        ``(R, U)`` (the Op's pullback): from the gradients the last
        :meth:`distinct_people_values` call kept when it was at these parameters."""
        last = self._last
        if last is None or last[0] != params_key(params):
            return self._distinct_vjp(params, cotangent, kernel_vjp)
        kept = {id(d): c for (_, d), c in zip(self.parts, last[1], strict=True)}

        def pullback(structure, padded, d, ct):
            return kernel_pullback(structure, padded, d, ct, kept[id(d)])

        return self._distinct_vjp(params, cotangent, pullback)

    def _padded(self, params):
        """(lat_mean, lat_sd, log_median) with the padding latents (mean 0, sd 1)."""
        lat_mean, lat_sd, log_median = (np.asarray(p, float) for p in params)
        k = self.n_latents
        mean = np.zeros((lat_mean.shape[0], self.K))     # (np.pad costs ~20 us a call)
        sd = np.ones((lat_sd.shape[0], self.K))
        mean[:, :k], sd[:, :k] = lat_mean, lat_sd
        return mean, sd, log_median


# --------------------------------------------------------------------------------------------
# the compiled kernel (what the fit's Ops evaluate): value and hand-written reverse pass
_NONE_1 = np.empty(0)
_NONE_2 = np.empty((0, 0))
_NONE_3 = np.empty((0, 0, 0))
_NONE_4 = np.empty((0, 0, 0, 0))
_NONE_I = np.empty(0, dtype=np.int64)
_NONE_I2 = np.empty((0, 0), dtype=np.int64)


#: the part's arrays in :func:`_kernel_args`' tuple, after the parameters
KERNEL_DATA = ("L", "effect", "amp", "own", "corr", "A", "new_run", "reps", "sig", *STATS, "ch",
               *CENSORED[1:], "cov12", "slot_ch", *GROSS[:5], "l0", "cen_lw", "kr", "n_w", "gross")
_DATA_AT = {name: i for i, name in enumerate(KERNEL_DATA)}


def _kernel_args(structure: tuple[int, bool, int], params, d: dict) -> tuple:
    """:func:`~neb_bayes.inference.lab_kernels.lab_factor`'s arguments up to ``gross``, for
    one part (empty arrays for what its structure lacks, so one compiled version serves
    every structure of a number of latents)."""
    def f(x):
        return np.ascontiguousarray(x, dtype=float)

    data = d.get("_kernel_data")
    if data is None:     # the part's arrays, once (kept in ``d``, which a LabBlock keeps)
        n_w, gross, _ = structure
        ck = d.get("cen_k")
        cen = ((np.ascontiguousarray(ck["ch"], dtype=np.int64),
                *(f(ck[k]) for k in CENSORED[1:]), f(ck["cov"])) if n_w
               else (_NONE_I2,) + (_NONE_2,) * 6 + (_NONE_1,))
        gro = ((d["slot_ch"], *(f(d[k]) for k in GROSS[:5]), f(d["l0"]),
                *((f(ck["cen_lw"]), f(ck["kr"])) if n_w else (_NONE_2, _NONE_3))) if gross
               else (_NONE_I,) + (_NONE_2,) * 5 + (_NONE_1, _NONE_2, _NONE_3))
        data = d["_kernel_data"] = (d["L_k"], f(d["effect"]), f(d["amp"]), d["own"],
                                    d["corr_k"], d["A_k"], d["new_run"], d["reps"], d["sig"],
                                    *(f(d[name]) for name in STATS),
                                    *cen, *gro, n_w, gross)
    n_lat = d["L_k"].shape[1]     # the axis' latents: the kernel needs no padding ones
    # the number of latents as a tuple's length: numba compiles the kernels once per number,
    # its loops unrolled (1.4x faster than a run-time count, 2026-12-07)
    return ((0,) * n_lat, f(params[0][:, :n_lat]), f(params[1][:, :n_lat]), f(params[2]),
            *data)


#: where :func:`_kernel_args`' tuple has what the kernel of a part without censored results
#: (:func:`~neb_bayes.inference.lab_kernels.lab_factor_observed`) reads: the parameters and
#: the arrays up to ``new_run``, the statistics, the gross-error slots, ``gross``
_OBSERVED_ARGS = (*range(4 + _DATA_AT["new_run"] + 1),
                  *(4 + _DATA_AT[name] for name in (*STATS, "slot_ch", *GROSS[:5], "l0",
                                                    "gross")))


def _run_kernel(structure: tuple[int, bool, int], args: tuple, out: np.ndarray,
                coefs: tuple[np.ndarray, ...]) -> None:
    """The compiled kernel of a part's structure on :func:`_kernel_args`' ``args``: a part
    without censored results by its grid points in lanes
    (:func:`~neb_bayes.inference.lab_kernels.lab_factor_observed`), the others by
    :func:`~neb_bayes.inference.lab_kernels.lab_factor`."""
    from neb_bayes.inference.lab_kernels import lab_factor, lab_factor_observed

    if structure[0] == 0:
        m_inv, c_vec, c_slot, _, c_ch = coefs
        lab_factor_observed(*(args[i] for i in _OBSERVED_ARGS), out, m_inv, c_vec, c_slot,
                            c_ch)
    else:
        lab_factor(*args, out, *coefs)


def kernel_value(structure: tuple[int, bool, int], params, d: dict) -> np.ndarray:
    """One part's factor ``(R, G)`` by the compiled kernel (``evaluate`` of
    :meth:`LabBlock.values`)."""
    out = np.empty((d["A"].shape[0], d["effect"].shape[1]))
    _run_kernel(structure, _kernel_args(structure, params, d), out,
                (_NONE_4, _NONE_3, _NONE_3, _NONE_3, _NONE_3))
    return out


def kernel_forward(structure: tuple[int, bool, int], params,
                   d: dict) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """One part's factor ``(R, G)`` and its gradients per person and grid point with respect
    to the intermediates :func:`kernel_pullback` contracts with a cotangent (the compiled
    kernel's ``m_inv_all, c_vec, c_slot, c_v, c_ch``)."""
    args = _kernel_args(structure, params, d)
    n_w, gross, _ = structure
    k = len(args[0])
    (R, G), S, C = (d["A"].shape[0], d["effect"].shape[1]), args[1].shape[0], d["L_k"].shape[0]
    J = d["slot_ch"].size if gross else 0
    out = np.empty((R, G))
    coefs = (np.empty((R, S, k, k)), np.empty((R, G, 3 * k)),
             # one number per slot, three beside censored results (their cross terms)
             np.empty((R, G, (3 if n_w else 1) * max(J, 1) if gross else 0)),
             np.zeros((R, G, 3 if n_w else 0)), np.empty((R, G, C)))
    _run_kernel(structure, args, out, coefs)
    return out, coefs


def kernel_pullback(structure: tuple[int, bool, int], params, d: dict, ct: np.ndarray,
                    coefs: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """One part's vector-Jacobian product from :func:`kernel_forward`'s gradients at the
    same ``params``: ``[lat_mean, lat_sd, log_median]``'s (padded as ``params``)."""
    from neb_bayes.inference.lab_kernels import lab_pullback

    args = _kernel_args(structure, params, d)
    kdim, lat_mean, lat_sd, log_median = args[:4]
    data = d["_kernel_data"]
    grads = [np.zeros(np.shape(p)) for p in (lat_mean, lat_sd, log_median)]
    lab_pullback(kdim, lat_mean, lat_sd, *(data[_DATA_AT[k]] for k in (
                     "L", "own", "corr", "new_run", "reps", "sig", "ch", "alpha", "n_w",
                     "slot_ch", "lw", "gross")),
                 np.ascontiguousarray(ct, dtype=float), *coefs, *grads)
    n_lat = lat_mean.shape[1]
    padded = [np.zeros(np.shape(p)) for p in params[:2]]   # the padding latents' are 0
    for full, g in zip(padded, grads[:2], strict=True):
        full[:, :n_lat] = g
    return [*padded, grads[2]]


def kernel_vjp(structure: tuple[int, bool, int], params, d: dict,
               ct: np.ndarray) -> list[np.ndarray]:
    """One part's vector-Jacobian product by the compiled kernels (``evaluate`` of
    :meth:`LabBlock.vjp`): :func:`kernel_forward`, then :func:`kernel_pullback`."""
    return kernel_pullback(structure, params, d, ct, kernel_forward(structure, params, d)[1])


def params_key(params) -> bytes:
    """The parameters' values as a key (is a pullback at the last evaluation's point?)."""
    return b"".join(np.ascontiguousarray(p, dtype=float).tobytes() for p in params)


# --------------------------------------------------------------------------------------------
# the formula compiled by pytensor (the reference for the kernel's reverse pass: automatic
# differentiation of :func:`lab_loglik`), and the Ops (pytensor imported only when a fit
# needs it)
_COMPILED: dict[tuple, tuple[object, threading.Lock]] = {}
_COMPILING = threading.Lock()
#: pytensor mode of the compiled formula; None: the C backend where pytensor has a C++
#: compiler (its modules are cached on disk, so the first fit on a machine compiles for
#: about a minute, later ones load them), else pytensor's default.  Measured on this
#: formula (1,000 people, 2026-12-02): C compiles in ~1 min and evaluates value + VJP in
#: ~230 ms; numba evaluates in ~100 ms but compiled the K-specific variants for 11 min.
MODE = None


def _mode():
    if MODE is not None:
        return MODE
    import pytensor
    from pytensor.compile.mode import Mode

    return Mode(linker="cvm", optimizer="fast_run") if pytensor.config.cxx else None


def _inputs(structure: tuple[bool, bool, int]) -> list[str]:
    censored, gross, _ = structure
    names = ["L", "effect", "amp", "corr", "A", "at_own", *STATS]
    if censored:
        names += list(CENSORED)
    if gross:
        names += ["to_slot", *GROSS] + (["cen_lw", "kr"] if censored else [])
    return names


def compiled(structure: tuple[bool, bool, int], what: str):
    """:func:`lab_loglik` (``what="value"``) or its vector-Jacobian product with respect to
    ``(lat_mean, lat_sd, log_median)`` (``"vjp"``, one more input: the cotangent ``(R, G)``)
    compiled for one structure with every array an input, once per process; called with the
    parameters then the arrays named by :func:`_inputs`.

    Returns ``(function, lock)``: a compiled pytensor function keeps its inputs and
    intermediates in its own storage, so callers in several threads (nutpie runs its chains
    in threads) hold the lock while they call it.  The lock costs nothing that the GIL does
    not already cost (the function holds it), whereas a copy per thread re-links the
    function's C code, which took minutes per thread in a 100-person fit."""
    key = (structure, what, str(MODE))
    if key not in _COMPILED:
        with _COMPILING:
            if key not in _COMPILED:
                _COMPILED[key] = (_compile(structure, what), threading.Lock())
    return _COMPILED[key]


def _compile(structure: tuple[bool, bool, int], what: str):
    import pytensor
    import pytensor.tensor as pt

    params = [pt.dmatrix("lat_mean"), pt.dmatrix("lat_sd"), pt.dvector("log_median")]
    data = {k: pt.tensor(k, dtype="float64", shape=(None,) * SCHEMA[k])
            for k in _inputs(structure)}
    ll = lab_loglik(Ops(True), *params, data, structure[2])
    ins = params + list(data.values())
    if what == "value":
        out = ll
    else:
        ins.append(pt.dmatrix("cotangent"))
        out = pytensor.grad((ll * ins[-1]).sum(), params)
    return pytensor.function(ins, out, mode=_mode(), on_unused_input="ignore")


def _evaluate(structure, what: str, args: list):
    fn, lock = compiled(structure, what)
    with lock:   # outputs are not the function's storage (pytensor's default, borrow=False)
        return fn(*args)


def _evaluate_value(structure, params, d):
    return _evaluate(structure, "value", [*params, *(d[k] for k in _inputs(structure))])


def _evaluate_vjp(structure, params, d, ct):
    return _evaluate(structure, "vjp", [*params, *(d[k] for k in _inputs(structure)), ct])


_OP_CLASSES: list = []


def LabFactors(blocks, n_people: int):  # noqa: N802  (a class, built lazily)
    """One Op for the factors of several blocks of one group: called with symbolic
    ``(lat_mean, lat_sd, log_median)`` of each block in turn, it gives each block's factor
    of every person of the group at its distinct grid points, ``(n_people, U)``
    (:meth:`LabBlock.distinct_people_values`; ``block.expand`` maps the grid to them, and
    the elimination expands each pass of people, so the whole grid's tables, 16x larger on
    the gonadal axis, are never stored); its pullback is one Op too, its cotangent per
    distinct point.  A block is a :class:`LabBlock` or, for evidence the information form
    does not cover, an :class:`~neb_bayes.inference.exact_lab_block.ExactLabBlock` (the same
    interface: ``grid_shape``, ``rows``, ``expand``, ``distinct_people_values``,
    ``distinct_gradient``; its distinct points are the grid's).

    pytensor's numba backend compiles every call of an Op that runs from Python in numba's
    object mode, never cached (:mod:`neb_bayes.inference.python_ops`): a group's axes as one
    Op, not one per axis, spare each chain's process most of that (a 150-person
    analyte-level fit: 132 such compilations, 11.4 s, against 36, 4.7 s).  (The blocks of
    all groups as one Op compiled no faster: its cost grows with the inputs and outputs.)"""
    if not _OP_CLASSES:
        _OP_CLASSES.extend(_make_ops())
    return _OP_CLASSES[0](tuple(blocks), n_people)


def _make_ops():
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    def as_params(xs):
        return [pt.as_tensor_variable(x).astype("float64") for x in xs]

    class _LabFactor(Op):
        """The laboratory factors of one group's blocks (:class:`LabBlock`), values only,
        one output per block; the pullback is :class:`_LabFactorVJP`."""

        #: evaluated from Python: holds the GIL (see :func:`neb_bayes.fit.runs_in_python`)
        runs_in_python = True

        def __init__(self, blocks: tuple, n_people: int):
            self.blocks = blocks
            self.n_people = n_people

        def make_node(self, *params):
            xs = as_params(params)
            if len(xs) != 3 * len(self.blocks):
                raise TypeError("three parameters (lat_mean, lat_sd, log_median) per block")
            return Apply(self, xs, [pt.dmatrix() for _ in self.blocks])

        def perform(self, node, inputs, outputs):
            for i, block in enumerate(self.blocks):
                outputs[i][0] = block.distinct_people_values(inputs[3 * i:3 * i + 3],
                                                             self.n_people)

        def pullback(self, inputs, outputs, cotangents):
            # (a block whose factor the log-density does not use: a zero cotangent)
            cts = [o.zeros_like() if isinstance(c.type, DisconnectedType) else c
                   for o, c in zip(outputs, cotangents, strict=True)]
            return _LabFactorVJP(self.blocks)(*inputs, *cts, return_list=True)

        L_op = pullback   # pytensor before pullback

    class _LabFactorVJP(Op):
        """d(sum(cotangent * factor))/d(lat_mean, lat_sd, log_median) of each block, its
        cotangent over every person of the group (first derivatives only: NUTS needs no
        more)."""

        runs_in_python = True

        def __init__(self, blocks: tuple):
            self.blocks = blocks

        def make_node(self, *xs):
            xs = as_params(xs)
            return Apply(self, xs, [x.type() for x in xs[:3 * len(self.blocks)]])

        def perform(self, node, inputs, outputs):
            k = len(self.blocks)
            for i, block in enumerate(self.blocks):
                ct = inputs[3 * k + i][block.rows]                               # (R, U)
                grads = block.distinct_gradient(inputs[3 * i:3 * i + 3], ct)
                for out, g in zip(outputs[3 * i:3 * i + 3], grads, strict=True):
                    out[0] = g

    register_by_reference(_LabFactor)
    register_by_reference(_LabFactorVJP)
    return _LabFactor, _LabFactorVJP
