"""The same model in PyMC: the population log-density with states summed out exactly.

Built from the same compiled tables as the exact engine, but computed independently: the
exact engine works in covariance form (a Gaussian over each axis' results), this module in
information form (each channel's results reduced to sufficient statistics, the latents
integrated by completing the square).  A test holds the two equal.

The joint states are never enumerated.  Each person's evidence is a product of factors on a
few axes: the prior network's conditional table per axis (scope: the axis and its parents),
each laboratory block (its own axis, the axes of its channels' effects, the rhythm axis),
absent symptoms (one factor per axis and one on the propensity level) and present symptoms
(one factor on the axes that cause them and the propensity level).  A laboratory block
includes the gross-error mixture over its results (at most one wrong result per axis, as in
the exact engine), exactly and without extra factorisations: the leave-one-out identity in
information form (:func:`_gross_log_factor`).  The axes are summed out one at a time
(variable elimination, :func:`eliminate`), per group of people whose factors have the same
shapes (sex view x axes coupled by present symptoms).  Factors whose parameters are not
being fitted are computed once in numpy and enter the graph as constants; constant factors
are multiplied together in numpy before the graph sees them.  So NUTS only sees population
parameters (shared/research/inference-notes.md).

Evidence: everything the exact engine reads.  The information form covers a person's results
on an axis when at most two of them are censored (their mass by the normal or the bivariate
normal CDF; a censored result whose channel also has observed results is covered: its noise
given theirs, :func:`_censored_with_repeats`; a
daily-rhythm result without a collection time is too: its rhythm a variance that the own
axis' state scales, the person read once per own state, :func:`_per_own_state`).  For the
others (three or more censored results on an axis) that person's factor on that axis
is the exact engine's (:func:`_exact_lab_inputs`): a constant where the analyte levels stay
fixed, else part of the group's :func:`~neb_bayes.inference.lab_block.LabFactors` Op,
around :class:`~neb_bayes.inference.exact_lab_block.ExactLabBlock` (gradient by finite
differences).  So every case is covered in every fit; :class:`UnsupportedEvidence` is left
for labels a person cannot have.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neb_bayes.context import read_context
from neb_bayes.evidence import Evidence, build_evidence
from neb_bayes.inference.array_ops import Ops, is_free
from neb_bayes.inference.lab_block import (
    MAX_CENSORED,
    GridSums,
    LabBlock,
    LabFactors,
)
from neb_bayes.inference.python_ops import map_pieces, piece_size, register_by_reference
from neb_bayes.model.compiled import (
    CompiledModel,
    axis_channel_grid,
    gates_of,
    sex_keep,
    view_for_sex,
)
from neb_bayes.model.params import ParamDraws, latent_corr, point_params
from neb_bayes.model.prior import Covariates, modifier_log_odds
from neb_bayes.tensor import product_sum, scaled_message


class UnsupportedEvidence(ValueError):
    """Evidence the PyMC formulation does not cover (the exact engine does).

    ``cases`` lists every such case as ``(case id, what is not covered)``; the message names
    the first :data:`NAMED` of them and how many more there are."""

    NAMED = 5

    def __init__(self, cases: list[tuple[str, str]]):
        self.cases = list(cases)
        named = "; ".join(f"{cid}: {msg}" for cid, msg in self.cases[:self.NAMED])
        more = len(self.cases) - self.NAMED
        super().__init__(named + (f"; and {more} more" if more > 0 else ""))


# --------------------------------------------------------------------------------------------
# data: per person sufficient statistics, grouped by restricted model view (sex)
@dataclass
class AxisData:
    axis: int
    channels: np.ndarray          # (C,) model channel indices on this axis
    loadings: np.ndarray          # (C, K)
    deps: tuple[int, ...]         # axes the block depends on
    grid_shape: tuple[int, ...]
    own_idx: np.ndarray           # (G,) own-axis state of each grid point
    effect: np.ndarray            # (C, G) fixed state-effect offsets
    amp: np.ndarray               # (C, G) daily-rhythm amplitude
    rows: np.ndarray              # (R,) the people with results on this axis
    # per row of the statistics: R - per_state rows, then S per person read per own state
    stats: dict[str, np.ndarray]  # w, s1, s2, t1, t2, t3, ld: (R', C)
    A: np.ndarray                 # (R', K, K)
    #: has (R',): each person's number of censored results (0 to MAX_CENSORED); ch, lim,
    #: sign, d, var, lq, alpha, kappa (R', 2): per censored result; cov (R',): the two's
    #: noise covariance
    cen: dict[str, np.ndarray]
    gross: dict[str, np.ndarray] | None = None   # observed results one by one (_gross_slots)
    block: LabBlock | None = None   # the factor's evaluation layout, made on first use
    #: the last ``per_state`` of ``rows``: people with a daily-rhythm result and no collection
    #: time, whose results' noise depends on the own axis' state (the rhythm's variance,
    #: scaled by the state's amplitude): their statistics are one row per own state ``s``
    #: (``S`` rows each, state-major, after the others'), and their factor at a grid point
    #: is that of its own state's row (:func:`_per_own_state`)
    per_state: int = 0


@dataclass
class GroupData:
    """People who share a model view (the same sex, or unknown sex)."""

    model: CompiledModel
    keep: dict[int, np.ndarray]
    case_ids: list[str]
    modoff: list[np.ndarray]      # per axis (P, S_a): stratum/flag log-odds offsets
    axes: list[AxisData]
    present: np.ndarray           # (P, Y) 0/1
    absent: np.ndarray            # (P, Y) 0/1
    present_scope: tuple[int, ...] = ()    # axes that cause a present symptom of someone
    label_mask: list[np.ndarray | None] | None = None   # per axis (P, S) 0 or -inf
    evidences: list[Evidence] = field(default_factory=list)
    #: the members' shared context (:attr:`Evidence.context_signature`): per axis the latent
    #: (mean shift, sd scale) of treated disease, and the factors on the symptom causes
    lat_shift: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    cause_scale: np.ndarray | None = None
    #: per axis, the people whose factor on it the exact engine computes (evidence the
    #: information form does not cover)
    exact: dict[int, np.ndarray] = field(default_factory=dict)


def _axis_results(evidences: list[Evidence]) -> dict[int, dict[str, np.ndarray]]:
    """Every person's results, one flat array per column and axis (people in order, each
    person's results in block order): ``person, channel, y, censor, day, diurnal,
    diurnal_var, extra``."""
    per_axis: dict[int, list[tuple[int, object]]] = {}
    for p, ev in enumerate(evidences):
        seen = set()
        for b in ev.blocks:
            if b.axis not in seen:   # one block per axis (the first, as the exact engine)
                seen.add(b.axis)
                per_axis.setdefault(b.axis, []).append((p, b))
    out = {}
    for ai, items in per_axis.items():
        bl = [b for _, b in items]
        out[ai] = {
            "person": np.repeat(np.array([p for p, _ in items], dtype=np.int64),
                                [b.n for b in bl]),
            "channel": np.concatenate([b.channel for b in bl]).astype(np.int64),
            "y": np.concatenate([b.y for b in bl]),
            "censor": np.concatenate([b.censor for b in bl]),
            "day": np.concatenate([b.day for b in bl]),
            "diurnal": np.concatenate([b.diurnal for b in bl]),
            "diurnal_var": np.concatenate([b.diurnal_var for b in bl]),
            "extra": np.concatenate([b.extra_var if b.extra_var is not None else np.zeros(b.n)
                                     for b in bl]),
        }
    return out


def _noise_var(model: CompiledModel, chans: np.ndarray) -> np.ndarray:
    """``(3, C)``: tau^2, CVI^2, CVA^2 of the channels ``chans``."""
    return np.array([[c.tau, c.cvi, c.cva] for c in (model.channels[int(i)] for i in chans)]
                    ).reshape(chans.size, 3).T ** 2


def _channel_stats(noise_var: np.ndarray, res: dict[str, np.ndarray], pos: np.ndarray,
                   n: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """GLS sufficient statistics of every person's observed results, per channel, for all
    people at once (:func:`~neb_bayes.inference.vectorised.channel_stats`, the batch
    engine's).

    ``noise_var`` is the axis' channels' :func:`_noise_var`, ``res`` holds the observed
    results (see :func:`_axis_results`; with ``diag``, each one's own variance:
    :func:`_per_own_state`), ``pos`` their channel's position among them.
    Returns the statistics ``w, s1, s2, t1, t2, t3, ld`` ``(n, C)``;
    per result ``(R^-1 y, R^-1 1, R^-1 d, (R^-1)_jj)`` ``(N, 4)`` (for the leave-one-out
    terms of the gross-error mixture); each result's rank among its person's results of its
    channel; and the largest number of results per channel ``(C,)``.
    """
    from neb_bayes.inference.vectorised import channel_stats

    C = noise_var.shape[1]
    stats, each = channel_stats(noise_var, n, res["person"], pos, res["y"], res["diurnal"],
                                res["day"], res["extra"], res.get("diag"))
    per = np.stack([each["ry"], each["a"], each["rd"], each["nd"]], axis=1)
    rank = np.zeros(pos.size, dtype=np.int64)
    most = np.zeros(C, dtype=np.int64)
    if pos.size:
        key = res["person"] * C + pos
        order = np.argsort(key, kind="stable")    # each group's results stay in block order
        ks = key[order]
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        sizes = np.diff(np.r_[starts, order.size])
        rank[order] = np.arange(order.size) - np.repeat(starts, sizes)
        np.maximum.at(most, pos[order[starts]], sizes)
    return stats, per, rank, most


def _gross_slots(most: np.ndarray, slot_row: np.ndarray, slot_pos: np.ndarray,
                 rank: np.ndarray, per: np.ndarray, lq: np.ndarray, n_rows: int,
                 n_results: np.ndarray, cen: dict[str, np.ndarray],
                 eps: float) -> dict[str, np.ndarray]:
    """The gross-error mixture's data, the observed results in slots shared by all people
    (``slot_ch``: the channel position of each slot, one slot per channel and repeat), so
    that per-channel quantities reach the slots by a matrix product.  Per person and slot
    ``(R, J)``: ``ry, r1, rd, rjj`` (see :func:`_channel_stats`), ``lw = log eps + log
    q(y_j)`` (-inf for an empty slot) and ``kr`` ``(R, J, 2)``, per censored result (the
    columns of ``per`` after the fourth); per person ``l0 = log(1 - n eps)`` over all ``n``
    results and ``cen_lw`` ``(R, 2)``, ``lw`` of each censored result (or -inf).  An observed result
    (person row ``slot_row``, channel position ``slot_pos``, ``rank`` among the person's
    results of that channel) takes slot ``first[slot_pos] + rank``."""
    per_ch = most.copy()
    if not per_ch.any():
        per_ch[0] = 1   # one empty slot: nobody has an observed result on the axis
    first = np.cumsum(per_ch) - per_ch
    J = int(per_ch.sum())
    out = {k: np.zeros((n_rows, J)) for k in ("ry", "r1", "rd")}
    out |= {"slot_ch": np.repeat(np.arange(per_ch.size), per_ch), "rjj": np.ones((n_rows, J)),
            "lw": np.full((n_rows, J), -np.inf), "kr": np.zeros((n_rows, J, MAX_CENSORED))}
    j = first[slot_pos] + rank
    for i, k in enumerate(("ry", "r1", "rd", "rjj")):
        out[k][slot_row, j] = per[:, i]
    out["kr"][slot_row, j] = per[:, 4:]
    out["lw"][slot_row, j] = np.log(eps) + lq
    out["l0"] = np.log1p(-n_results * eps)
    out["cen_lw"] = np.where(np.arange(MAX_CENSORED) < cen["has"][:, None],
                             np.log(eps) + cen["lq"], -np.inf)
    return out


def _modifier_offsets(model: CompiledModel, cov: Covariates) -> list[np.ndarray]:
    return [modifier_log_odds(model, ai, cov) for ai in range(len(model.axes))]


def _per_own_state(model: CompiledModel, ai: int, chans: np.ndarray, pos_of: np.ndarray,
                   res: dict[str, np.ndarray], n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The results ``res`` of one axis (:func:`_axis_results`) with each result's own
    variance ``diag``, the people with a daily-rhythm result and no collection time read once
    per state of the axis (:func:`~neb_bayes.inference.vectorised.state_copies`: copy ``s``
    of ``apart[k]`` is person ``n + k S + s``).  Returns ``(res, apart)``.  (A channel whose
    amplitude follows another axis' state has no such form: :func:`_axis_data` leaves it to
    the exact engine.)"""
    from neb_bayes.inference.vectorised import state_amplitudes, state_copies

    amp = state_amplitudes(model, ai, chans)[pos_of[res["channel"]]]
    rows, person, diag, apart = state_copies(res["person"], res["diurnal_var"], amp, n)
    out = {k: v[rows] for k, v in res.items()}
    out["person"], out["diag"] = person, diag
    return out, apart


def _censored_with_repeats(noise_var: np.ndarray, res: dict[str, np.ndarray], pos: np.ndarray,
                           cens: np.ndarray, slot: np.ndarray, observed: dict[str, np.ndarray],
                           obs_pos: np.ndarray, cen: dict[str, np.ndarray],
                           kr: np.ndarray) -> None:
    """The censored results ``w`` (rows ``cens`` of ``res``, each its person's ``slot``-th;
    ``pos`` every result's channel position) of a person who also has observed results ``O``
    in their channel: each one's noise shares the person term, the same-day term and the
    context variation with theirs (covariance ``k``; ``R`` theirs, as in
    :func:`~neb_bayes.inference.vectorised.channel_stats`).  Given the latents and ``O``,
    ``y_w = alpha mu + amp d_eff + kappa + alpha L z + e`` with ``g = R^-1 k``, ``alpha = 1 -
    1'g``, ``kappa = y_O'g``, ``d_eff = d_w - d_O'g`` and ``var(e) = var_w - k'g``: written
    into ``cen`` (``d`` and ``var`` replaced), and ``g`` per observed result into ``kr``
    (``k'N^-1``, its part in leaving that result out, for the gross-error mixture).  Two
    censored results of one channel: their noise covariance ``cov`` less ``k_1'R^-1 k_2``."""
    gs = {}
    for i, sl in zip(cens, slot, strict=True):
        p, c = res["person"][i], pos[i]
        js = np.flatnonzero((observed["person"] == p) & (obs_pos == c))
        tau2, cvi2, cva2 = noise_var[:, c]
        day = observed["day"][js]
        se = np.sqrt(observed["extra"][js])
        R = (tau2 + cvi2 * (day[:, None] == day[None, :]) + np.diag(cva2 + observed["diag"][js])
             + np.outer(se, se))
        k = tau2 + cvi2 * (day == res["day"][i]) + se * np.sqrt(res["extra"][i])
        g = np.linalg.solve(R, k)
        cen["alpha"][p, sl] = 1.0 - g.sum()
        cen["kappa"][p, sl] = observed["y"][js] @ g
        cen["d"][p, sl] = res["diurnal"][i] - observed["diurnal"][js] @ g
        cen["var"][p, sl] -= k @ g
        kr[js, sl] = g
        gs[p, sl] = (c, k, g)
    for (p, sl), (c, _, g) in gs.items():
        if sl == 1 and gs.get((p, 0), (-1,))[0] == c:
            cen["cov"][p] -= gs[p, 0][1] @ g


def _axis_data(model: CompiledModel, ai: int, res: dict[str, np.ndarray], n: int,
               beyond: list[tuple[int, str]]) -> AxisData | None:
    """One axis' :class:`AxisData` from its flat results (:func:`_axis_results`); the people
    whose results on it the information form does not cover (their factor is the exact
    engine's) are appended to ``beyond`` as ``(person, why)``."""
    ax = model.axes[ai]
    chans, L, deps, sizes, own_idx, effect, amp = axis_channel_grid(model, ai)
    if chans.size == 0:
        return None
    where = np.full(len(model.channels), -1, dtype=np.int64)
    where[chans] = np.arange(chans.size)
    person = res["person"]
    # what the information form does not cover: such a person's results on this axis are
    # left out of it whole (their factor on it is the exact engine's)
    from neb_bayes.inference.vectorised import untimed_elsewhere

    rhythm = np.unique(person[untimed_elsewhere(model, res["channel"], res["diurnal_var"])])
    n_cen = np.bincount(person[res["censor"] != 0], minlength=n)
    for p in np.union1d(rhythm, np.flatnonzero(n_cen > MAX_CENSORED)):
        if p in rhythm:
            beyond.append((int(p), "result with a daily rhythm scaled by another axis' state "
                                   "but no collection time"))
        if n_cen[p] > MAX_CENSORED:
            beyond.append((int(p), f"{n_cen[p]} censored results on axis {ax.name}"))
    res = {k: v[~np.isin(person, rhythm) & (n_cen[person] <= MAX_CENSORED)]
           for k, v in res.items()}
    res, apart = _per_own_state(model, ai, chans, where, res, n)
    n_real, n = n, n + apart.size * ax.n_states     # the copies are people n, n + 1, ...
    person = res["person"]
    n_results = np.bincount(person, minlength=n).astype(float)
    lq = (model.gross_log_density(res["channel"], res["y"], res["censor"]) if person.size
          else np.zeros(0))
    obs = res["censor"] == 0
    pos = where[res["channel"]]
    observed = {k: v[obs] for k, v in res.items()}
    noise_var = _noise_var(model, chans)
    stats, per, rank, most = _channel_stats(noise_var, observed, pos[obs], n)
    # each person's censored results (up to MAX_CENSORED), in block order: per person and
    # result (n, 2); ``cov`` the two's noise covariance (results of one channel share the
    # person term, the same-day term and the context variation)
    two = (n, MAX_CENSORED)
    cen = {"has": np.zeros(n), "ch": np.zeros(two, dtype=np.int64), "lim": np.zeros(two),
           "sign": np.zeros(two), "d": np.zeros(two), "var": np.ones(two), "lq": np.zeros(two),
           "alpha": np.ones(two), "kappa": np.zeros(two), "cov": np.zeros(n)}
    ci = np.flatnonzero(~obs)
    p = person[ci]
    sl = np.zeros(ci.size, dtype=np.int64)         # the result's place among its person's
    sl[1:] = p[1:] == p[:-1]
    np.add.at(cen["has"], p, 1.0)
    cen["ch"][p, sl] = pos[ci]
    cen["lim"][p, sl] = res["y"][ci]
    cen["sign"][p, sl] = res["censor"][ci].astype(float)
    cen["d"][p, sl] = res["diurnal"][ci]
    cen["var"][p, sl] = noise_var.sum(axis=0)[pos[ci]] + res["extra"][ci] + res["diag"][ci]
    cen["lq"][p, sl] = lq[ci]
    pair = np.flatnonzero(sl == 1)
    a, b = ci[pair - 1], ci[pair]
    same = pos[a] == pos[b]
    cen["cov"][p[pair]] = same * (noise_var[0, pos[a]] + np.sqrt(res["extra"][a] * res["extra"][b])
                                  + noise_var[1, pos[a]] * (res["day"][a] == res["day"][b]))
    # a censored result whose channel also has observed results shares their person, day
    # and context noise terms: its conditional given them, per person
    kr = np.zeros((int(obs.sum()), MAX_CENSORED))
    repeat = np.isin(p * chans.size + pos[ci], person[obs] * chans.size + pos[obs])
    if repeat.any():
        _censored_with_repeats(noise_var, res, pos, ci[repeat], sl[repeat], observed, pos[obs],
                               cen, kr)
    rows = np.flatnonzero((stats["w"] > 0).any(axis=1) | (cen["has"] > 0))
    # (every copy has results: the copies' rows are the last ones, in order)
    assert np.array_equal(rows[rows >= n_real], np.arange(n_real, n))
    stats = {k: v[rows] for k, v in stats.items()}
    cen = {k: v[rows] for k, v in cen.items()}
    A = np.einsum("pc,ck,cl->pkl", stats["w"], L, L)
    gross = None
    if model.gross_error_rate > 0:
        gross = _gross_slots(most, np.searchsorted(rows, observed["person"]), pos[obs], rank,
                             np.column_stack([per, kr]), lq[obs], rows.size, n_results[rows],
                             cen, model.gross_error_rate)
    people = np.concatenate([rows[rows < n_real], apart])
    return AxisData(ai, chans, L, deps, sizes, own_idx, effect, amp, people, stats, A, cen,
                    gross, per_state=apart.size)


def prepare_group(model: CompiledModel, evidences: list[Evidence],
                  labels: list[dict[str, str] | None] | None = None) -> GroupData:
    """Sufficient statistics of a group of people who share ``model`` (one sex view) and a
    context signature (:attr:`Evidence.context_signature`).

    Vectorised over people: each axis' results of all people are handled as flat arrays
    (:func:`_axis_data`), so the cost per person is a few array elements, not Python calls.
    Where the information form does not cover a person's results on an axis, that factor is
    the exact engine's (:attr:`GroupData.exact`).  A label the person cannot have (a state
    cut from their sex view) raises :class:`UnsupportedEvidence`.
    """
    n = len(evidences)
    if len({ev.context_signature for ev in evidences}) > 1:
        raise ValueError("a group's people must share their context signature")
    axes = []
    exact: dict[int, np.ndarray] = {}
    results = _axis_results(evidences)
    empty = {k: np.zeros(0, dtype=np.int64 if k in ("person", "channel") else float)
             for k in ("person", "channel", "y", "censor", "day", "diurnal", "diurnal_var",
                       "extra")}
    for ai, ax in enumerate(model.axes):
        if not ax.latents:
            continue
        found: list[tuple[int, str]] = []
        ad = _axis_data(model, ai, results.get(ai, empty), n, found)
        if found:
            exact[ai] = np.unique([p for p, _ in found])
        if ad is not None:
            axes.append(ad)
    present = np.zeros((n, len(model.symptoms)))
    absent = np.zeros((n, len(model.symptoms)))
    for p, ev in enumerate(evidences):
        present[p, ev.present] = 1.0
        absent[p, ev.absent] = 1.0
    offsets: dict[Covariates, list[np.ndarray]] = {}   # one per stratum/flag pattern
    for ev in evidences:
        if ev.covariates not in offsets:
            offsets[ev.covariates] = _modifier_offsets(model, ev.covariates)
    modoff = [np.stack([offsets[ev.covariates][ai] for ev in evidences])
              for ai in range(len(model.axes))]
    label_mask = None
    problems: list[tuple[str, str]] = []      # every impossible label, named at once
    if labels is not None and any(lab for lab in labels):
        label_mask = [None] * len(model.axes)
        for p, lab in enumerate(labels):
            for ax_name, sts in (lab or {}).items():
                ai, allowed = _label_states(model, ax_name, sts)
                if not allowed:
                    problems.append((evidences[p].case_id, _impossible_label(ax_name, sts)))
                    continue
                if label_mask[ai] is None:
                    label_mask[ai] = np.zeros((n, model.axes[ai].n_states))
                bad = np.ones(model.axes[ai].n_states, bool)
                for st in allowed:
                    bad[model.axes[ai].states.index(st)] = False
                label_mask[ai][p, bad] = -np.inf
    if problems:
        raise UnsupportedEvidence(problems)
    return GroupData(model=model, keep=sex_keep(model), case_ids=[ev.case_id for ev in evidences],
                     modoff=modoff, axes=axes, present=present, absent=absent,
                     present_scope=present_scope(model, np.flatnonzero(present.any(axis=0))),
                     label_mask=label_mask, evidences=list(evidences),
                     lat_shift=dict(evidences[0].lat_shift) if evidences else {},
                     cause_scale=evidences[0].cause_scale if evidences else None,
                     exact=exact)


def present_scope(model: CompiledModel, symptoms) -> tuple[int, ...]:
    """The axes with a state that causes one of these symptoms (in this view)."""
    t = model.symptom_table      # a view's table has the view's states
    cols = np.isin(t.entry_symptom, np.asarray(symptoms, dtype=np.int64))
    out = []
    for ai, mask in enumerate(t.state_mask):
        if mask[:, cols].any():
            out.append(ai)
    return tuple(out)


def prepare_cohort(model: CompiledModel, cases, labels=None,
                   groups_per_view: int = 3) -> list[GroupData]:
    """Group a cohort's cases and precompute their sufficient statistics.

    A group shares a model view (sex), a context signature (treated disease: latent shifts
    and symptom factors, :attr:`Evidence.context_signature`) and a set of axes its members'
    present symptoms may couple, so that every member has factors of the same shapes.  At
    most ``groups_per_view`` groups per view and context (each group is one more piece of
    graph to compile): the sets are merged greedily where that adds the least work.
    """
    by_view: dict[tuple, dict[tuple[int, ...], list[int]]] = {}
    views: dict[tuple, CompiledModel] = {}     # per sex and gated states open
    evs = {}
    scope_of: dict[tuple, tuple[int, ...]] = {}   # per view and set of present symptoms
    for i, case in enumerate(cases):
        context = read_context(case)
        vk = (case.patient.sex, gates_of(model, context.flags))
        if vk not in views:
            views[vk] = view_for_sex(model, *vk)
        evs[i] = build_evidence(views[vk], case, context=context)
        key = (vk, tuple(evs[i].present))
        if key not in scope_of:
            scope_of[key] = present_scope(views[vk], evs[i].present)
        group = (vk, evs[i].context_signature)
        by_view.setdefault(group, {}).setdefault(scope_of[key], []).append(i)
    out = []
    problems: list[tuple[str, str]] = []   # every group's, so that all are named at once
    for (vk, _), scopes in by_view.items():
        sizes = [ax.n_states for ax in views[vk].axes]
        for idx in _merge_scopes(scopes, sizes, groups_per_view):
            labs = None if labels is None else [labels[i] for i in idx]
            try:
                out.append(prepare_group(views[vk], [evs[i] for i in idx], labs))
            except UnsupportedEvidence as exc:
                problems += exc.cases
    if problems:
        raise UnsupportedEvidence(problems)
    return out


def without_unsupported(model: CompiledModel, cases, labels=None):
    """The cohort without the cases a fit cannot use (a label the person cannot have):
    ``(cases, labels, dropped)``, ``dropped`` as :attr:`UnsupportedEvidence.cases` (checked
    on the labels alone: nothing is prepared)."""
    dropped: list[tuple[str, str]] = []
    views: dict[tuple, CompiledModel] = {}     # per sex and gated states open
    for case, lab in zip(cases, labels or [None] * len(cases), strict=True):
        if not lab:
            continue
        vk = (case.patient.sex, gates_of(model, read_context(case).flags))
        if vk not in views:
            views[vk] = view_for_sex(model, *vk)
        for ax_name, sts in lab.items():
            if not _label_states(views[vk], ax_name, sts)[1]:
                dropped.append((case.id, _impossible_label(ax_name, sts)))
    bad = {cid for cid, _ in dropped}
    keep = [i for i, c in enumerate(cases) if c.id not in bad]
    return ([cases[i] for i in keep], None if labels is None else [labels[i] for i in keep],
            dropped)


def _label_states(model: CompiledModel, ax_name: str, sts) -> tuple[int, list[str]]:
    """A label's axis and the states it names that the model view has."""
    ai = model.axis_index(ax_name)
    sts = [sts] if isinstance(sts, str) else list(sts)
    return ai, [s for s in sts if s in model.axes[ai].states]


def _impossible_label(ax_name: str, sts) -> str:
    return f"label {ax_name}={[sts] if isinstance(sts, str) else list(sts)} impossible for this person"


def _merge_scopes(scopes: dict[tuple[int, ...], list[int]], sizes: list[int],
                  limit: int) -> list[list[int]]:
    """Merge people's symptom scopes into at most ``limit`` groups, greedily: the smallest
    group joins the one whose union with it costs least (people x states of the union)."""
    groups = {frozenset(s): list(v) for s, v in scopes.items()}

    def cost(s, n):
        return n * int(np.prod([sizes[d] for d in s]))

    while len(groups) > max(limit, 1):
        small = min(groups, key=lambda s: (len(groups[s]), sorted(s)))
        rest = [s for s in groups if s != small]
        n0 = len(groups[small])

        def extra(s, small=small, n0=n0):
            n1 = len(groups[s])
            return cost(s | small, n0 + n1) - cost(s, n1) - cost(small, n0)

        into = min(rest, key=lambda s: (extra(s), sorted(s)))
        merged = groups.pop(small) + groups.pop(into)
        groups[into | small] = groups.get(into | small, []) + merged
    return [sorted(v) for _, v in sorted(groups.items(), key=lambda kv: sorted(kv[0]))]


# --------------------------------------------------------------------------------------------
# the log-density: the same formulas in numpy (fixed parameters) or pytensor (free ones)
def _lab_inputs(theta: dict, g: GroupData, ad: AxisData) -> tuple[LabBlock, tuple]:
    """An axis' laboratory block of the group (made on first use) and its parameters
    ``(lat_mean, lat_sd, log_median)`` (numpy, or pytensor graph where they are fitted)."""
    a = ad.axis
    lat_mean = theta["lat_mean"][a]
    lat_sd = theta["lat_sd"][a]
    log_median = theta["log_median"][ad.channels]
    if a in g.keep:
        lat_mean, lat_sd = lat_mean[g.keep[a]], lat_sd[g.keep[a]]
    if a in g.lat_shift:
        # treated disease (context): the latent mean moves, its spread scales (as in
        # Evidence.latent_params, whose covariance is scaled by scale**2)
        shift, scale = g.lat_shift[a]
        lat_mean = lat_mean + shift
        lat_sd = lat_sd * (np.asarray(scale, float)[:, None] if np.ndim(scale) else scale)
    if ad.block is None:
        ad.block = LabBlock(ad, latent_corr(g.model.axes[a].lat_cov))
    return ad.block, (lat_mean, lat_sd, log_median)


def _exact_lab_inputs(theta: dict, g: GroupData, ai: int, people: np.ndarray):
    """For evidence the information form does not cover: the exact engine's block of
    ``people`` on axis ``ai`` (covariance form,
    :class:`~neb_bayes.inference.exact_lab_block.ExactLabBlock`) and its parameters."""
    from neb_bayes.inference.exact_lab_block import ExactLabBlock

    lat_mean, lat_sd, log_median = theta["lat_mean"][ai], theta["lat_sd"][ai], theta["log_median"]
    if ai in g.keep:
        lat_mean, lat_sd = lat_mean[g.keep[ai]], lat_sd[g.keep[ai]]
    return ExactLabBlock(g.model, ai, g.evidences, people), (lat_mean, lat_sd, log_median)


def _lab_tables(blocks: list, params: list[tuple], n: int) -> list:
    """Each block's factor of the group's ``n`` people, ``(n, *block.grid_shape)`` (0 for the
    people without results on its axis): numpy where its parameters are fixed
    (``fixed_people_values``); the others from one
    :func:`~neb_bayes.inference.lab_block.LabFactors` Op for the whole group (each Op call is
    compiled apart in a chain's process: one per group instead of one per axis and group)."""
    out = [None if is_free(*p) else block.fixed_people_values(p, n)
           for block, p in zip(blocks, params, strict=True)]
    free = [i for i, t in enumerate(out) if t is None]
    if free:
        tables = LabFactors([blocks[i] for i in free], n)(
            *(x for i in free for x in params[i]), return_list=True)
        for i, t in zip(free, tables, strict=True):
            # (n, U) at the block's distinct grid points: the elimination expands it to the
            # grid a pass of people at a time (:func:`eliminate`)
            t.tag.expand = blocks[i].expand
            out[i] = t
    return out


def _prior_factors(theta: dict, g: GroupData,
                   modoff: list[np.ndarray] | None = None) -> list[tuple[tuple[int, ...], object]]:
    """The prior network as one conditional log table per axis, scope (parents, axis), one
    row per person (or per row of ``modoff``, the stratum/flag offsets, if given)."""
    m = g.model
    names = m.axis_names
    modoff = g.modoff if modoff is None else modoff
    P = modoff[0].shape[0]
    out = []
    for ai, ax in enumerate(m.axes):
        base = theta["prior_base"][ai]
        if ai in g.keep:
            base = base[g.keep[ai]]
        o = Ops(is_free(base))
        rel = []
        for link in m.spec.raw.get("links", []):
            (pa, ps), (ca, cs) = link["parent"], link["child"]
            pi = names.index(pa)
            if ca == ax.name and cs in ax.states and ps in m.axes[pi].states:
                rel.append((pi, m.axes[pi].states.index(ps), ax.states.index(cs), link["odds"]))
        scope = tuple(sorted({ai} | {r[0] for r in rel}))
        sizes = tuple(m.axes[d].n_states for d in scope)
        pos = scope.index(ai)
        bump = np.zeros((1,) + sizes)
        for pi, ps, cs, odds in rel:
            sl = [0] + [slice(None)] * len(scope)
            sl[1 + scope.index(pi)] = ps
            sl[1 + pos] = cs
            bump[tuple(sl)] += np.log(odds)
        shape = (1,) * pos + (ax.n_states,) + (1,) * (len(scope) - pos - 1)
        off = modoff[ai].reshape((P,) + shape) + bump
        if o.symbolic:
            # data enter the graph as shared variables, not constants: the compiled code
            # then does not depend on the cohort (numba's cache serves the next fit)
            off = _shared(off)
        lo = base.reshape((1,) + shape) + off
        out.append((scope, lo - o.logsumexp(lo, axis=1 + pos)))
    return out


def _symptom_factors(theta: dict, g: GroupData) -> list[tuple[tuple[int, ...], object]]:
    """Absent symptoms: one log factor per axis and one over the propensity level; present
    ones: one factor over (the axes that cause them, propensity level)."""
    m = g.model
    nd = len(m.axes)
    P = len(g.case_ids)
    if g.cause_scale is None:
        leak, cause = theta["symptom_tables"]
        cause = [c[g.keep[ai]] if ai in g.keep else c for ai, c in enumerate(cause)]
    else:   # the context scales the cause probabilities: this group's own tables (view layout)
        leak, cause = symptom_tables(m, *theta["symptom_logits"], scale=g.cause_scale)
    o = Ops(is_free(leak, *cause))
    out = []
    for ai in range(nd):
        if g.absent.any():
            out.append(((ai,), o.m.dot(g.absent, cause[ai].T)))                         # (P, S)
    level = m.log_propensity_w[None] + o.m.dot(g.absent, leak.T)                        # (P, lev)
    scope = g.present_scope          # may be empty: present symptoms with only their leak
    sizes = [m.axes[d].n_states for d in scope]
    n_lev = leak.shape[0]
    total = level.reshape((P,) + (1,) * len(scope) + (n_lev,))
    ys = np.flatnonzero(g.present.any(axis=0))
    if ys.size:
        # log P(y present | causes, level) per symptom, flattened over (scope, level); each
        # person's sum over their present symptoms is one matrix product.  All symptoms in
        # one expression (symptom first): a graph of a few nodes per axis, not per symptom
        # and axis (pytensor's numba backend compiled ~3,900 nodes for ~10 minutes)
        full = tuple(sizes) + (n_lev,)
        lq = leak[:, ys].T.reshape((ys.size,) + (1,) * len(scope) + (n_lev,))
        for j, ai in enumerate(scope):
            lq = lq + cause[ai][:, ys].T.reshape((ys.size,) + (1,) * j + (sizes[j],)
                                                 + (1,) * (len(scope) - j))
        table = o.m.broadcast_to(o.m.log(-o.m.expm1(lq)),
                                 (ys.size,) + full).reshape((ys.size, -1))  # (Y', prod(full))
        total = total + o.m.dot(g.present[:, ys], table).reshape((P,) + full)
    return out + [(tuple(scope) + (nd,), total)]


def symptom_tables(model: CompiledModel, cause_logit, leak_logit, scale: np.ndarray | None = None):
    """(log1m_leak (P, Y), per-axis log1m_cause (S_a, Y)) from the logits, in numpy
    (:meth:`SymptomTable.tables`) or, when a logit is free, as pytensor graph; ``scale``
    (E,) multiplies the cause probabilities (a context's symptom factors)."""
    if not is_free(cause_logit, leak_logit):
        return model.symptom_table.tables(cause_logit, leak_logit, scale=scale)
    import pytensor.tensor as pt

    t = model.symptom_table
    if scale is not None:
        # logit(scale * sigmoid(cl)), as SymptomTable.scaled_cause_logit
        log_p = -pt.softplus(-cause_logit) + np.log(scale)
        cause_logit = log_p - pt.log(-pt.expm1(log_p))
    log1m_p = -pt.softplus(cause_logit)
    scatter = np.zeros((len(t.entries), t.n_symptoms))
    scatter[np.arange(len(t.entries)), t.entry_symptom] = 1.0
    cause = [pt.dot(pt.as_tensor(mask) * log1m_p[None, :], scatter) for mask in t.state_mask]
    leak = -pt.softplus(leak_logit[None, :] + pt.as_tensor(t.propensity_log_odds)[:, None])
    return leak, cause


def group_loglik(theta: dict, g: GroupData, table_dtype: str = "float64"):
    """log p(evidence of each person in the group), shape (P,).

    ``theta`` holds the parameters in the full-model layout (see :func:`theta_constants`):
    numpy arrays for fixed groups, pytensor graph for free ones.  The joint states are never
    enumerated: each factor (prior table per axis, laboratory block per axis, symptoms) lives
    on the few axes it depends on, and the axes are summed out one at a time
    (:func:`eliminate`).  Factors with fixed parameters are computed here in numpy.
    Returns numpy when every factor is fixed, else a pytensor vector.

    ``table_dtype``: ``"float32"`` stores the per-person tables of a prevalence-only fit
    (:func:`_prior_only_loglik`) and does their products in single precision (half the
    memory traffic; about 1e-6 relative error in each person's evidence), and in the other
    fits the :class:`Elimination` Op's tables and messages (:func:`eliminate`);
    ``"float64"`` (the default) is exact.
    """
    return cohort_loglik(theta, [g], table_dtype)[0][1]


def cohort_loglik(theta: dict, groups: list[GroupData], table_dtype: str = "float64",
                  totals: bool = False) -> list[tuple[list[str], Any]]:
    """:func:`group_loglik` of every group, as ``(case ids, log evidence)`` pieces (with
    ``totals``, each piece's sum over its people: what a fit needs).

    In a prevalence-only fit the groups of one model view (sex) share one piece: their
    constant tables are laid one after another and the prior network is computed once per
    view (groups differ only in the shapes of their constant factors, which are multiplied
    out in numpy), so the graph to compile does not grow with the number of groups.
    """
    pieces: list[tuple[list[str], Any]] = []
    shared: dict[tuple, list[_PriorOnly]] = {}
    for g in groups:
        factors, sizes = _group_factors(theta, g)
        if _prior_only(theta, factors):
            key = (id(g.model), tuple((a, k.tobytes()) for a, k in sorted(g.keep.items())))
            shared.setdefault(key, []).append(_PriorOnly.of(g, factors, sizes))
        else:
            ll = eliminate(_prior_factors(theta, g) + factors, sizes, len(g.case_ids),
                           table_dtype)
            pieces.append((g.case_ids, ll.sum() if totals else ll))
    for items in shared.values():
        ids = [c for it in items for c in it.group.case_ids]
        pieces.append((ids, _prior_only_loglik(theta, items, table_dtype, totals)))
    return pieces


def _group_factors(theta: dict, g: GroupData) -> tuple[list, list[int]]:
    """A group's factors other than the prior network (laboratory blocks, symptoms, labels)
    and the sizes of the variables (axes, then the propensity level)."""
    m = g.model
    scopes = [ad.deps for ad in g.axes]
    inputs = [_lab_inputs(theta, g, ad) for ad in g.axes]
    for ai, people in g.exact.items():
        inputs.append(_exact_lab_inputs(theta, g, ai, people))
        scopes.append(inputs[-1][0].scope)
    # (the group's free laboratory factors from one Op: :func:`_lab_tables`)
    tables = _lab_tables([b for b, _ in inputs], [p for _, p in inputs], len(g.case_ids))
    factors = list(zip(scopes, tables, strict=True))
    factors += _symptom_factors(theta, g)
    if g.label_mask is not None:
        factors += [((ai,), mask) for ai, mask in enumerate(g.label_mask) if mask is not None]
    return factors, [ax.n_states for ax in m.axes] + [m.log_propensity_w.shape[0]]


def _prior_only(theta: dict, factors) -> bool:
    """Whether only the prior network is free (a prevalence fit)."""
    return is_free(*theta["prior_base"]) and not any(is_free(f) for _, f in factors)


@dataclass
class _PriorOnly:
    """A group's constant factors multiplied into one table per person over the axes the
    data touch (``table``, ``(P, *sizes[scope])``, max-scaled; ``offset``: the log scale)."""

    group: GroupData
    scope: tuple[int, ...]
    table: np.ndarray
    offset: np.ndarray

    @classmethod
    def of(cls, g: GroupData, factors, sizes: list[int]) -> _PriorOnly:
        n = len(g.case_ids)
        scope, C, offset = _constant_product(factors, sizes, n, keep=set(range(len(g.model.axes))))
        return cls(g, scope, C, offset)

    def on(self, scope: tuple[int, ...], dtype: str) -> np.ndarray:
        """The table on a larger ``scope`` (constant along the added axes), ``(P, -1)``."""
        sizes = [ax.n_states for ax in self.group.model.axes]
        n = self.table.shape[0]
        x = _aligned(self.scope, self.table, scope)
        x = np.broadcast_to(x, (n,) + tuple(sizes[d] for d in scope))
        return flush_subnormal(np.ascontiguousarray(x.reshape(n, -1), dtype=dtype))


def flush_subnormal(x: np.ndarray) -> np.ndarray:
    """``x`` with its subnormal values (below the float type's normal range: 1.2e-38 in single
    precision) set to 0 (in place; a copy if ``x`` is read-only and has any).  Arithmetic on
    subnormal numbers is many times slower on x86 processors: 1 % of them in a prevalence
    fit's single-precision tables made each evaluation 1.3x slower; what they add to a sum
    is below 1.2e-38 of its largest term (tables are scaled to a maximum of 1)."""
    small = (np.abs(x) < np.finfo(x.dtype).tiny) & (x != 0)
    if small.any():
        if not x.flags.writeable:
            x = x.copy()
        x[small] = 0
    return x


def _prior_only_loglik(theta: dict, items: list[_PriorOnly], table_dtype: str = "float64",
                       total: bool = False):
    """``group_loglik`` when only the prior network is free (a prevalence fit), for groups
    that share a model view (``items``, people in their order); with ``total``, the sum over
    the people (a scalar whose gradient costs no second pass: what a fit needs).

    Every other factor is a constant: they are multiplied, and the variables the prior does
    not have summed out, once in numpy into one table per person over the axes the data
    touch (``C``, every axis: 4,860-6,480 states in a sex view).  People share the prior
    network by stratum/flag pattern, so the graph computes the prior over those axes once per
    pattern (the other axes, e.g. a hidden axis without results, summed out) and each
    person's evidence is a row of ``C`` times that vector; the :class:`PatternLogLik` Op
    computes them all, with the gradient of their sum, without a second graph pass.  Each
    row is cut to the axes it varies along (:func:`pattern_layout`: a person whose data do
    not touch an axis gets the prior summed over it), so an evaluation reads fewer bytes.

    With ``table_dtype="float32"`` the tables ``C`` (max-scaled per person) and the prior
    vectors (scaled by their maximum, which is added back outside the product and carries
    no gradient: the shift cancels) are single precision, so each evaluation reads half the
    bytes; the products are memory-bound, so it takes about half the time.  Values below
    single precision's normal range (1.2e-38 of their table's maximum) are 0
    (:func:`flush_subnormal`).  A person whose evidence lies only on joint states less
    probable than 1e-38 times the most probable one would get log 0 (the fit stops at its
    first evaluation; use float64 then).
    """
    import pytensor.tensor as pt
    from pytensor.gradient import disconnected_grad

    if table_dtype not in ("float64", "float32"):
        raise ValueError(f"table_dtype must be float64 or float32, not {table_dtype!r}")
    g = items[0].group
    n_axes = len(g.model.axes)
    scope = tuple(sorted(set().union(*[set(it.scope) for it in items])))
    modoff = [np.concatenate([it.group.modoff[a] for it in items]) for a in range(n_axes)]
    offset = np.concatenate([it.offset for it in items])
    patterns, inverse = np.unique(np.concatenate(modoff, axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    split = np.cumsum([a.shape[1] for a in modoff])[:-1]
    prior = _prior_factors(theta, g, np.split(patterns, split, axis=1))
    every = tuple(range(n_axes))
    n_pat = patterns.shape[0]
    if set(scope) == set(every):
        # every joint state's entry of each conditional table, gathered on (patterns, states):
        # two-dimensional graph (its gradient a scatter-add), which compiles far faster than
        # the same sum broadcast over one dimension per axis
        sizes = [ax.n_states for ax in g.model.axes]
        log_joint = 0
        for s, f in prior:
            idx = np.arange(math.prod(sizes[d] for d in s)).reshape([sizes[d] for d in s])
            idx = np.broadcast_to(_aligned(s, idx[None], every)[0], sizes).ravel()
            log_joint = log_joint + f.reshape((n_pat, -1))[:, _shared(idx)]
    else:
        log_joint = sum(_align_pt(f, s, every) for s, f in prior)
        log_joint = pt.logsumexp(log_joint, axis=tuple(1 + d for d in every if d not in scope))
        log_joint = log_joint.reshape((n_pat, -1))                     # (U, prod sizes[scope])
    if table_dtype == "float64":
        shift = pt.zeros((n_pat,))
        joint = pt.exp(log_joint)
    else:
        shift = disconnected_grad(pt.max(log_joint, axis=1))
        joint = pt.exp(log_joint - shift[:, None]).astype("float32")
        # (values below single precision's normal range as 0: see flush_subnormal)
        joint = pt.switch(joint < np.finfo(np.float32).tiny, np.float32(0), joint)
    tables = [it.on(scope, table_dtype) for it in items]
    C = tables[0] if len(tables) == 1 else np.concatenate(tables)
    del tables
    sizes_scope = tuple(g.model.axes[d].n_states for d in scope)
    order, layout = pattern_layout(C, inverse, sizes_scope)
    del C
    # the tables enter as shared variables (inputs of the compiled function, not constants
    # in its code): the graph does not depend on the cohort, so numba's cache serves the next
    # fit of the same structure (the tables themselves, most of a fit's memory, a shared
    # variable of their own, not copied into a pack's buffer)
    data, groups, maps = layout
    del layout
    logv, sum_logv, _ = PatternLogLik()(joint, _shared(data, pack=False), _shared(groups),
                                        _shared(maps))
    del data
    sum_logv = sum_logv[0]
    counts = np.bincount(inverse, minlength=n_pat).astype(float)
    if total:
        return sum_logv + pt.dot(_shared(counts), shift) + _shared(offset.sum())
    back = np.empty_like(order)
    back[order] = np.arange(order.size)
    return (logv + shift[inverse[order]])[back] + offset


def pattern_layout(C: np.ndarray, pattern: np.ndarray, sizes: tuple[int, ...],
                   block: int = 4096):
    """The per-person tables of a prevalence fit in the layout :class:`PatternLogLik` reads:
    each person's row of ``C`` (``(P, prod(sizes))``, over axes of ``sizes``; ``pattern``
    ``(P,)`` each person's stratum/flag pattern) cut to the axes it varies along.  A person
    whose data do not touch an axis (no result on it, no symptom it causes) has a row
    constant along it, and their evidence is that row times the prior summed over the axis:
    a shorter product (in a simulated 10,000-person cohort ~40 % of the people do not touch
    the hidden pituitary axis, whose two states then halve their row).

    Returns ``(order, (data, groups, maps))``: the people in the Op's order (by pattern, then
    by the axes they vary along), the rows one after another in that order (``data``, flat,
    ``C``'s dtype), one row of ``groups`` per run of people with the same pattern and axes
    (pattern, map, first element in ``data``, number of people, row length) and ``maps``
    ``(M, prod(sizes))``: each joint state's entry in the cut row.  Equality along an axis is
    exact (bit for bit), so the cut changes nothing but the order of the sums.
    """
    P = C.shape[0]
    nd = len(sizes)
    varies = np.zeros((P, nd), dtype=bool)
    for a in range(0, P, block):                    # bounded temporaries
        X = C[a:a + block].reshape((-1,) + sizes)
        for d in range(nd):
            same = X == np.take(X, [0], axis=1 + d)
            varies[a:a + block, d] = ~same.reshape(same.shape[0], -1).all(axis=1)
    code = varies @ (1 << np.arange(nd))
    order = np.lexsort((code, pattern))             # by pattern, then by varying axes
    codes = np.unique(code)
    which = np.searchsorted(codes, code)
    full = np.indices(sizes).reshape(nd, -1)
    maps = np.empty((codes.size, full.shape[1]), dtype=np.int64)
    for m, c in enumerate(codes):
        kept = [d for d in range(nd) if c >> d & 1]
        maps[m] = (np.ravel_multi_index(full[kept], [sizes[d] for d in kept]) if kept
                   else 0)
    key = pattern[order] * codes.size + which[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], P]
    groups = np.empty((starts.size, 5), dtype=np.int64)
    groups[:, 0] = pattern[order[starts]]
    groups[:, 1] = which[order[starts]]
    groups[:, 3] = ends - starts
    groups[:, 4] = [math.prod(n for d, n in enumerate(sizes) if codes[m] >> d & 1)
                    for m in groups[:, 1]]
    groups[:, 2] = np.cumsum(groups[:, 3] * groups[:, 4]) - groups[:, 3] * groups[:, 4]
    # filled in place, a block of people at a time (no second copy of the tables)
    data = np.empty(int((groups[:, 3] * groups[:, 4]).sum()), dtype=C.dtype)
    for (_, m, at, n, w), a in zip(groups, starts, strict=True):
        pick = (slice(None),) + tuple(slice(None) if codes[m] >> d & 1 else slice(0, 1)
                                      for d in range(nd))
        out = data[at:at + n * w].reshape(n, w)
        for lo in range(0, n, block):
            rows = C[order[a + lo:a + min(lo + block, n)]].reshape((-1,) + sizes)[pick]
            out[lo:lo + rows.shape[0]] = rows.reshape(rows.shape[0], w)
    return order, (data, groups, maps)


_PATTERN_OP: list = []
#: rows of the table per block of :class:`PatternLogLik` (32 rows of 6,480 single-precision
#: states: 0.8 MB, in a core's L2 cache between the two products)
PATTERN_BLOCK = 32


def PatternLogLik():  # noqa: N802 (a class, built lazily)
    """The Op of a prevalence fit's per-person log evidence (see ``_PatternLogLik`` in
    :func:`_make_pattern_op`); pytensor is imported only when a fit needs it."""
    if not _PATTERN_OP:
        _PATTERN_OP.append(_make_pattern_op())
    return _PATTERN_OP[0]()


def _make_pattern_op():
    import hashlib
    import inspect

    import numba
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType, disconnected_type
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    try:   # pytensor's registry of numba implementations (pytensor 3.x)
        from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key
    except ImportError:    # another layout: the Op runs in numba's object mode (slower compile)
        register_funcify_default_op_cache_key = None

    def run(joint, data, groups, maps):
        # per run of people with one pattern and one cut (see pattern_layout): the pattern's
        # prior summed onto the cut rows' entries, then per block of rows two matrix-vector
        # products (BLAS, in numpy and in numba alike): the values, then the gradient of
        # their sum, which reads the block again from cache rather than from memory; the
        # gradient read back onto the joint states
        joint = np.ascontiguousarray(joint)
        n_people = 0
        for k in range(groups.shape[0]):
            n_people += groups[k, 3]
        logv = np.empty(n_people)
        grad = np.zeros(joint.shape)
        row = 0
        for k in range(groups.shape[0]):
            u, m, at, n, w = groups[k, 0], groups[k, 1], groups[k, 2], groups[k, 3], groups[k, 4]
            where = maps[m]
            cut = np.zeros(w)
            for s in range(where.size):
                cut[where[s]] += joint[u, s]
            cut = cut.astype(joint.dtype)
            rows_all = data[at:at + n * w].reshape((n, w))
            g = np.zeros(w)
            for a in range(0, n, PATTERN_BLOCK):
                b = min(a + PATTERN_BLOCK, n)
                rows = rows_all[a:b]
                v = np.dot(rows, cut)
                logv[row + a:row + b] = np.log(v.astype(np.float64))
                g += np.dot(np.reciprocal(v), rows)
            for s in range(where.size):
                grad[u, s] += g[where[s]]
            row += n
        total = np.empty(1)
        total[0] = logv.sum()
        return logv, total, grad

    class _PatternLogLik(Op):
        """``log(C[p] . joint[u])`` for every person ``p`` of every pattern ``u``, each row
        ``C[p]`` cut to the axes it varies along (:func:`pattern_layout`).

        Inputs: ``joint`` (U, S), each pattern's prior over the joint states; the layout
        ``data`` (the cut rows one after another, float32 or float64 like ``joint``),
        ``groups`` (G, 5) and ``maps`` (M, S).  Outputs: the per-person values ``(P,)`` in
        the layout's order, their sum ``(1,)``, and the gradient of the sum with respect to
        ``joint`` (``sum_p C[p] / (C[p] . joint[u])``), from two matrix-vector products per
        block of :data:`PATTERN_BLOCK` people of a group (BLAS; under pytensor's numba
        backend inside the compiled function, without the GIL).  Only the sum has a gradient
        (what NUTS needs); the per-person values are for evaluation.
        """

        __props__ = ()
        #: compiled code: chains in threads run side by side (:func:`neb_bayes.fit.runs_in_python`)
        runs_in_python = False

        def make_node(self, joint, data, groups, maps):
            ins = [pt.as_tensor_variable(x) for x in (joint, data, groups, maps)]
            return Apply(self, ins, [pt.dvector(), pt.dvector(), pt.dmatrix()])

        def perform(self, node, inputs, outputs):
            joint, data, groups, maps = inputs
            res = run(joint, np.ascontiguousarray(data), groups, maps)
            for out, value in zip(outputs, res, strict=True):
                out[0] = value

        def pullback(self, inputs, outputs, cotangents):
            if not isinstance(cotangents[0].type, DisconnectedType):
                raise NotImplementedError("the gradient of the per-person values (use their "
                                          "sum, the second output)")
            return [(cotangents[1][0] * outputs[2]).astype(inputs[0].dtype),
                    disconnected_type(), disconnected_type(), disconnected_type()]

        L_op = pullback   # pytensor before pullback

        def connection_pattern(self, node):
            return [[True, True, False]] + [[False, False, False]] * 3

    run_compiled = numba.njit(run)
    # pytensor's on-disk cache knows the Op by its class and props only: the source of its
    # implementation salts the key, so that a changed implementation is compiled anew
    source = inspect.getsource(run) + f"PATTERN_BLOCK={PATTERN_BLOCK}"
    version = int(hashlib.sha256(source.encode()).hexdigest()[:12], 16)

    def _funcify(op, node=None, **kwargs):   # the Op inside numba-compiled graphs
        return run_compiled, version

    if register_funcify_default_op_cache_key is not None:
        register_funcify_default_op_cache_key(_PatternLogLik)(_funcify)
    return _PatternLogLik


#: the :class:`SharedPack` that :func:`_shared` adds cohort arrays to while a fit's graph is
#: built (:func:`shared_pack`), or None
_PACK: contextvars.ContextVar = contextvars.ContextVar("neb_bayes_shared_pack", default=None)


class SharedPack:
    """A fit graph's cohort arrays in one shared variable per dtype, and a shared table of
    each array's place and shape.

    nutpie's compiled log-density unpacks every shared variable of the graph in its own step
    of one compiled loop, and compiling that grew steeply with their number: 51 shared
    variables of a prevalence fit took ~45 s of numba's time in every fit (the graph itself
    ~11 s, then from pytensor's disk cache).  Packed, a graph has a few.  Each array is a
    slice of its buffer reshaped to its shape, both read from the table, so the graph
    still does not depend on the cohort's sizes (its size-1 dimensions, which broadcast,
    are constants, as :func:`_shared` gives them).  The buffers are filled when the graph is
    complete (:meth:`finish`)."""

    def __init__(self) -> None:
        import pytensor

        self.parts: dict[str, list[np.ndarray]] = {}
        self.buffers: dict[str, Any] = {}
        self.layout: list[int] = []
        self.table = pytensor.shared(np.zeros(0, np.int64), shape=(None,), name="pack_layout")

    def add(self, x: np.ndarray):
        """The graph's view of ``x``: a slice of its dtype's buffer, reshaped."""
        import pytensor

        x = np.asarray(x)
        key = x.dtype.str
        if key not in self.buffers:
            self.buffers[key] = pytensor.shared(np.zeros(0, x.dtype), shape=(None,),
                                                name=f"pack_{x.dtype.name}")
        parts = self.parts.setdefault(key, [])
        start = sum(p.size for p in parts)
        parts.append(x.reshape(-1))
        at = len(self.layout)
        self.layout += [start, start + x.size, *x.shape]
        lay = self.table
        flat = self.buffers[key][lay[at]:lay[at + 1]]
        if x.ndim == 0:
            return flat[0]
        shape = tuple(1 if n == 1 else lay[at + 2 + j] for j, n in enumerate(x.shape))
        return flat.reshape(shape, ndim=x.ndim)

    def finish(self) -> None:
        """Fill the buffers and the table (once the graph is built)."""
        for key, parts in self.parts.items():
            self.buffers[key].set_value(np.concatenate(parts), borrow=True)
        self.table.set_value(np.asarray(self.layout, np.int64), borrow=True)
        self.parts.clear()


@contextlib.contextmanager
def shared_pack():
    """Within it, :func:`_shared` packs the cohort's arrays (:class:`SharedPack`), and the
    buffers are filled on leaving it."""
    pack = SharedPack()
    token = _PACK.set(pack)
    try:
        yield pack
    finally:
        _PACK.reset(token)
    pack.finish()


def _shared(x, pack: bool = True):
    """A numpy array as a pytensor shared variable whose type knows only its size-1 dimensions
    (it broadcasts as the array would; other sizes are left out of the type, so the
    compiled code does not depend on them); inside :func:`shared_pack` (and with ``pack``)
    a view of the pack's buffer instead."""
    import pytensor

    x = np.asarray(x)
    current = _PACK.get()
    if pack and current is not None:
        return current.add(x)
    return pytensor.shared(x, shape=tuple(1 if d == 1 else None for d in x.shape), borrow=True)


def _align_pt(x, scope: tuple[int, ...], joined: tuple[int, ...]):
    """A pytensor (n, *scope) table as (n, *joined) with broadcast axes."""
    return x.dimshuffle([0] + [1 + scope.index(d) if d in scope else "x" for d in joined])


def _scaled_tables(factors, n: int) -> tuple[list, np.ndarray]:
    """Per-person log factors ``(scope, (n, ...))`` as probability tables divided by their
    per-person maximum: ``([(scope, table)], summed log maxima (n,))``."""
    offset = np.zeros(n)
    items = []
    for s, f in factors:
        f = np.asarray(f, dtype=float)
        axes = tuple(range(1, len(s) + 1))
        mx = np.max(f, axis=axes, keepdims=True) if axes else f.copy()
        mx = np.where(np.isfinite(mx), mx, 0.0)
        offset += mx.reshape(n)
        items.append((s, np.exp(f - mx)))
    return items, offset


def _constant_product(factors, sizes: list[int], n: int, keep: set[int]):
    """Constant log factors multiplied into one probability table per person over the
    variables of ``keep`` that they touch (the others summed out), scaled by its per-person
    maximum: ``(scope, table (n, *sizes[scope]), log offset (n,))``."""
    items, offset = _scaled_tables(factors, n)
    touched = set().union(*[set(s) for s, _ in items])
    order = [v for v in _greedy_order([set(s) for s, _ in items], sizes,
                                      frozenset(touched - keep)) if v not in keep]
    items, off = _eliminate_tables(items, order, n)
    offset += off
    scope = tuple(sorted(touched & keep))
    p = _product(items, scope) if items else np.ones((n,))
    p = np.broadcast_to(p, (n,) + tuple(sizes[d] for d in scope))
    mx = p.reshape(n, -1).max(axis=1)
    mx = np.where(mx > 0, mx, 1.0)
    return scope, p / mx.reshape((n,) + (1,) * len(scope)), offset + np.log(mx)


def _greedy_order(scopes: list[set[int]], sizes: list[int], first=frozenset()) -> list[int]:
    """Elimination order: each step sums out the variable whose joined factor is smallest;
    the variables in ``first`` (those only constant tables touch: summed out in numpy) go
    first."""
    scopes = [set(s) for s in scopes]
    left = set().union(*scopes)
    order = []
    while left:
        def cost(v, scopes=scopes):
            return int(np.prod([sizes[d] for d in set().union(*[s for s in scopes if v in s])]))
        v = min(sorted(left), key=lambda v: (v not in first, cost(v)))
        _, scopes = _sum_out(scopes, v)
        left.discard(v)
        order.append(v)
    return order


def eliminate(factors: list[tuple[tuple[int, ...], object]], sizes: list[int], n: int,
              table_dtype: str = "float64"):
    """log of the sum over all variables of the product of ``exp(factor)``, per person.

    Each factor is ``(scope, log values)`` with values of shape ``(n, *sizes[scope])``
    (numpy constant or pytensor graph).  Variables are summed out one at a time in a greedy
    order; the work happens in probability space, each table scaled by its per-person
    maximum (kept as a log offset), so that the sums are plain products and sums.  Constant
    tables are multiplied together and the variables that only they touch are summed out
    here, in numpy; the rest is one :class:`Elimination` node (numpy inside, with its
    gradient from the same pass), so the graph stays a few nodes whatever the number of
    factors.  Exact with ``table_dtype="float64"``; ``"float32"`` stores the
    :class:`Elimination` Op's tables and messages in single precision (sums and products
    of each step in double precision; about 1e-7 relative error in each person's evidence).
    """
    offset = np.zeros(n)

    def scaled(scope, x):
        axes = tuple(range(1, len(scope) + 1))
        mx = np.max(x, axis=axes, keepdims=True) if axes else x.copy()
        mx = np.where(np.isfinite(mx), mx, 0.0)
        np.add(offset, mx.reshape(n), out=offset)
        return np.exp(x - mx)

    # constant log tables whose scope lies inside another constant's are added to it
    const = [(s, np.asarray(f)) for s, f in factors if not is_free(f)]
    free = [(s, f) for s, f in factors if is_free(f)]
    const.sort(key=lambda sf: -len(sf[0]))
    merged: list[tuple[tuple[int, ...], np.ndarray]] = []
    for s, f in const:
        host = next((i for i, (hs, _) in enumerate(merged) if set(s) <= set(hs)), None)
        if host is None:
            merged.append((s, np.array(f, dtype=float, copy=True)))
            continue
        hs, hf = merged[host]
        shape = (n,) + tuple(sizes[d] if d in s else 1 for d in hs)
        perm = [0] + [1 + s.index(d) for d in hs if d in s]
        hf += np.transpose(f, perm).reshape(shape)
    items = [(s, scaled(s, f)) for s, f in merged]
    in_free = set().union(*[set(s) for s, _ in free])
    only_const = set().union(*[set(s) for s, _ in items]) - in_free
    order = _greedy_order([set(s) for s, _ in items], sizes, frozenset(only_const))
    upfront = _cheapest_upfront([s for s, _ in items], [s for s, _ in free], sizes,
                                [v for v in order if v in only_const])
    items, off = _eliminate_tables(items, upfront, n)
    offset += off
    if not free:
        return offset + sum(np.log(x) for _, x in items)
    # a free laboratory factor comes at its block's distinct grid points, with their map
    expands = tuple(getattr(getattr(f, "tag", None), "expand", None) for _, f in free)
    op = Elimination(items, tuple(s for s, _ in free), sizes, n, expands, table_dtype)
    return offset + op(*[f for _, f in free])[0]


def _sum_out(scopes: list[set[int]], v: int) -> tuple[set[int], list[set[int]]]:
    """One elimination step on scopes alone: the joined scope of the tables that hold ``v``,
    and the scopes left (those without it, then the joined one less ``v``)."""
    joined = set().union(*[s for s in scopes if v in s])
    return joined, [s for s in scopes if v not in s] + [joined - {v}]


def _scopes_after(scopes: list[set[int]], order: list[int]) -> list[set[int]]:
    """The scopes of the tables left once the variables of ``order`` are summed out of
    tables of ``scopes`` (:func:`_eliminate_tables`' scopes)."""
    scopes = [set(s) for s in scopes]
    for v in order:
        _, scopes = _sum_out(scopes, v)
    return scopes


def _steps_cost(scopes: list[set[int]], sizes: list[int]) -> int:
    """State points an elimination of tables of ``scopes`` visits (the sum over its greedy
    steps of the joined table's size): the per-person work of an :class:`Elimination`."""
    total = 0
    scopes = [set(s) for s in scopes]
    for v in _greedy_order(scopes, sizes):
        joined, scopes = _sum_out(scopes, v)
        total += int(np.prod([sizes[d] for d in joined]))
    return total


def _cheapest_upfront(const_scopes, free_scopes, sizes: list[int], candidates: list[int]):
    """Which of the variables only constant tables touch (``candidates``, in their greedy
    order) to sum out before the :class:`Elimination` Op (once, in numpy) and which to leave
    to it (at every evaluation): summing one out up front joins the tables it touches, and a
    joined table can cost the Op more than the variable (the pituitary, parent of four axes,
    joins them into one table of every axis' states).  The subset whose remaining
    elimination visits the fewest state points."""
    import itertools

    best, best_cost = list(candidates), None
    for k in range(len(candidates) + 1):
        for keep in itertools.combinations(candidates, k):
            up = [v for v in candidates if v not in keep]
            cost = _steps_cost(_scopes_after([set(s) for s in const_scopes], up)
                               + [set(s) for s in free_scopes], sizes)
            if best_cost is None or cost < best_cost:
                best, best_cost = up, cost
    return best


def _aligned(scope: tuple[int, ...], x: np.ndarray, joined: tuple[int, ...]) -> np.ndarray:
    """A (n, *scope) table as (n, *joined) with size-1 axes for the variables it lacks."""
    inner = [d for d in joined if d in scope]
    if inner != list(scope):
        x = x.transpose([0] + [1 + scope.index(d) for d in inner])
    return x.reshape((x.shape[0],) + tuple(x.shape[1 + inner.index(d)] if d in scope else 1
                                           for d in joined))


def _product(operands: list[tuple[tuple[int, ...], np.ndarray]], joined: tuple[int, ...]):
    """The broadcast product of (n, *scope) tables over ``joined``."""
    p = None
    for s, x in operands:
        x = _aligned(s, x, joined)
        p = x if p is None else p * x
    return p


def _sum_to(p: np.ndarray, joined: tuple[int, ...], scope: tuple[int, ...], like=None):
    """A (n, *joined) table summed over the variables outside ``scope``, as (n, *scope)
    (broadcast to ``like``'s shape where ``p`` has size-1 axes)."""
    drop = tuple(1 + j for j, d in enumerate(joined) if d not in scope)
    if drop:
        p = p.sum(axis=drop)
    kept = [d for d in joined if d in scope]
    if kept != list(scope):
        p = p.transpose([0] + [1 + kept.index(d) for d in scope])
    if like is not None and p.shape != like.shape:
        p = np.broadcast_to(p, like.shape)
    return p


def _eliminate_tables(items: list[tuple[tuple[int, ...], np.ndarray]], order: list[int],
                      n: int):
    """Sum the variables in ``order`` out of probability tables (the constant ones, before
    the :class:`Elimination` Op); each new table is scaled by its per-person maximum
    (returned as a log offset)."""
    tables = list(items)
    live = list(range(len(tables)))
    offset = np.zeros(n)
    for v in order:
        take = [i for i in live if v in tables[i][0]]
        live = [i for i in live if v not in tables[i][0]]
        joined = tuple(sorted(set().union(*[set(tables[i][0]) for i in take])))
        out = tuple(d for d in joined if d != v)
        p = _sum_to(_product([tables[i] for i in take], joined), joined, out)
        axes = tuple(range(1, len(out) + 1))
        mx = np.max(p, axis=axes, keepdims=True) if axes else p.copy()
        mx = np.where(mx > 0, mx, 1.0)
        p = p / mx
        offset += np.log(mx).reshape(n)
        live.append(len(tables))
        tables.append((out, p))
    return [tables[i] for i in live], offset


def _batch_last(scope: tuple[int, ...], x: np.ndarray, sizes: list[int]) -> np.ndarray:
    """A ``(n, *scope)`` table as ``(one dimension per variable (1 outside the scope), n)``:
    the layout of :mod:`neb_bayes.tensor`'s contraction."""
    x = np.moveaxis(np.asarray(x), 0, -1)
    order = sorted(range(len(scope)), key=lambda i: scope[i])
    x = x.transpose(order + [len(scope)])
    return x.reshape(tuple(sizes[d] if d in scope else 1 for d in range(len(sizes)))
                     + (x.shape[-1],))


def _batch_first(scope: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    """:func:`_batch_last`'s inverse: a batch-last table as ``(n, *scope)``."""
    ordered = sorted(scope)
    x = x.reshape(tuple(x.shape[d] for d in ordered) + (x.shape[-1],))
    return np.moveaxis(x, -1, 0).transpose([0] + [1 + ordered.index(d) for d in scope])


_OP_CLASS: list = []
#: people per pass of the elimination Op (bounds the memory its backward pass keeps)
ELIMINATION_PEOPLE = 256
#: fewest people in a pass made smaller for threads (:func:`_pass_people`): see
#: :data:`~neb_bayes.inference.lab_block.MIN_PART_PEOPLE`
MIN_PASS_PEOPLE = 128


def _pass_people(n: int) -> int:
    """People per pass of the elimination Op for a group of ``n``: at most
    :data:`ELIMINATION_PEOPLE`, cut for the threads down to :data:`MIN_PASS_PEOPLE`
    (:func:`~neb_bayes.inference.python_ops.piece_size`)."""
    return piece_size(n, ELIMINATION_PEOPLE, MIN_PASS_PEOPLE)


def Elimination(const, free_scopes, sizes, n, expands=None,  # noqa: N802  (a class, built lazily)
                table_dtype: str = "float64"):
    """The variable-elimination Op (see ``_Elimination`` in :func:`_make_elimination_op`);
    pytensor is imported only when a fit needs it."""
    if not _OP_CLASS:
        _OP_CLASS.append(_make_elimination_op())
    return _OP_CLASS[0](const, free_scopes, sizes, n, expands, table_dtype)


def _as_tables(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Constant probability tables (each person's scaled to a maximum of 1) in ``dtype``,
    without subnormal values in single precision (:func:`flush_subnormal`; every evaluation
    reads them).  The laboratory factors and messages of each evaluation are not flushed:
    few of their values fall between 1e-45 and 1e-38 of their person's largest (141 of
    5.4 million in an evaluation of a 3,000-person analyte-level fit away from its start,
    2026-12-07), fewer than a pass over them to flush would cost."""
    if x.dtype == dtype:
        return x
    return flush_subnormal(x.astype(dtype)) if dtype == np.float32 else x.astype(dtype)


def _make_elimination_op():
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class _Elimination(Op):
        """log sum over the states of exp(sum of the free log tables) x the constant tables,
        per person, by variable elimination (steps by :mod:`neb_bayes.tensor`'s product
        sums, compiled where numba is loaded).

        Inputs: the free log tables, each ``(n, *sizes[scope])``, or ``(n, U)`` at distinct
        points of that grid with ``expands[i]`` mapping the grid to them (a laboratory
        factor: expanded here a pass of people at a time, its marginal summed back per
        distinct point, so the whole grid's tables are never stored).  Outputs: the log sums
        ``(n,)`` and, per input, d(log sum)/d(input): the posterior marginal of the input's
        scope, from one backward pass over the same elimination steps.  The gradient of the
        log sums is then a product of outputs (no second pass); the marginal outputs have
        no gradient (NUTS needs first derivatives only).
        """

        #: evaluated from Python: holds the GIL (see :func:`neb_bayes.fit.runs_in_python`)
        runs_in_python = True

        def __init__(self, const, free_scopes, sizes, n, expands=None,
                     table_dtype: str = "float64"):
            if table_dtype not in ("float64", "float32"):
                raise ValueError(f"table_dtype must be float64 or float32, not {table_dtype!r}")
            #: the tables' and messages' float type (:func:`eliminate`)
            self.dtype = np.dtype(table_dtype)
            self.free_scopes = free_scopes
            self.n = n
            self.sizes = list(sizes)
            # per free input: None (the whole grid) or (grid -> distinct point, the sum back
            # per distinct point: lab_block.GridSums), the grid in the batch-last tables'
            # order (the scope's variables sorted)
            self.expands = [None if e is None else self._batch_last_map(sc, e)
                            for sc, e in zip(free_scopes, expands or [None] * len(free_scopes),
                                             strict=True)]
            self.step = step = _pass_people(n)
            # the constant tables of each pass of people, people-last and contiguous (kept
            # instead of the caller's: no second copy)
            self.const_passes = [
                [(sc, _as_tables(np.ascontiguousarray(_batch_last(
                    sc, t[lo:lo + step] if t.shape[0] == n else t, self.sizes)), self.dtype))
                 for sc, t in const] for lo in range(0, n, step)]
            self.order = _greedy_order([set(s) for s, _ in const]
                                       + [set(s) for s in free_scopes], list(sizes))

        def _batch_last_map(self, scope, expand):
            """A factor's map from its grid (C order over ``scope``) to its distinct points,
            as ``(map, GridSums)`` over the grid of its batch-last table
            (:func:`_batch_last`: the scope's variables in increasing order)."""
            e = np.asarray(expand, dtype=np.int64).reshape(tuple(self.sizes[d] for d in scope))
            e = e.transpose(sorted(range(len(scope)), key=lambda j: scope[j])).reshape(-1)
            return e, GridSums(e)

        def make_node(self, *xs):
            xs = [pt.as_tensor_variable(x).astype("float64") for x in xs]
            return Apply(self, xs, [pt.dvector()] + [x.type() for x in xs])

        def perform(self, node, inputs, outputs):
            logz, grads = self.value_and_marginals(inputs)
            outputs[0][0] = logz
            for i, g in enumerate(grads):
                outputs[1 + i][0] = g

        def value_and_marginals(self, inputs):
            """People are independent: at most :data:`ELIMINATION_PEOPLE` at a time, so the
            tables the backward pass keeps stay bounded whatever the group's size (the
            passes on :func:`~neb_bayes.inference.python_ops.threads` threads)."""
            n, step = self.n, self.step

            def one_pass(lo_const):
                lo, const = lo_const
                sl = slice(lo, min(n, lo + step))
                return self._value_and_marginals(const, [np.asarray(x)[sl] for x in inputs],
                                                 sl.stop - sl.start)

            parts = map_pieces(one_pass, list(zip(range(0, n, step), self.const_passes,
                                                  strict=True)))
            return (np.concatenate([z for z, _ in parts]),
                    [np.concatenate([g[i] for _, g in parts]) for i in range(len(inputs))])

        def _value_and_marginals(self, const, inputs, n):
            """One pass of people: the tables batch-last (people contiguous), each step's
            product summed without forming it (:func:`neb_bayes.tensor.scaled_message`,
            :func:`~neb_bayes.tensor.product_sum`: compiled loops where numba is loaded,
            as in a fit)."""
            dtype = self.dtype
            free, distinct, offset = self._free_tables(inputs, n)
            tabs = [t for _, t in const] + free
            scopes = [frozenset(sc) for sc, _ in const] + [frozenset(sc)
                                                           for sc in self.free_scopes]
            k0 = len(const)
            needs = [i >= k0 for i in range(len(tabs))]
            live = list(range(len(tabs)))
            tape = []
            for v in self.order:
                take = [i for i in live if v in scopes[i]]
                live = [i for i in live if v not in scopes[i]]
                keep = frozenset().union(*(scopes[i] for i in take)) - {v}
                msg, mx = scaled_message([tabs[i] for i in take], keep, dtype)
                mx = mx.reshape(-1)
                mx = np.where(mx > 0, mx, 1.0)   # (a message of zeros is left as it is)
                offset = offset + np.log(mx)
                tape.append((take, len(tabs), mx))
                needs.append(any(needs[i] for i in take))
                live.append(len(tabs))
                tabs.append(msg)
                scopes.append(keep)
            logz = offset + sum(np.log(tabs[i].reshape(-1)) for i in live)
            # backward: d log z / d table, for the tables that depend on a free input; a
            # message's is kept divided by the message's maximum (the step that made it
            # reads it so), in the tables' float type, written so by the product sum itself
            inv_mx = {k: 1.0 / mx for _, k, mx in tape}
            grads: list = [None] * len(tabs)
            for i in live:   # every scope is empty now: log z = offsets + sum of their logs
                if needs[i]:
                    g = 1.0 / tabs[i].astype(np.float64)
                    grads[i] = g if i not in inv_mx else (g * inv_mx[i]).astype(dtype)
            for take, k, _ in reversed(tape):
                if not needs[k]:
                    continue
                for i in take:
                    if needs[i]:
                        inv = inv_mx.get(i)
                        grads[i] = product_sum(
                            [grads[k]] + [tabs[j] for j in take if j != i], scopes[i], inv,
                            np.float64 if inv is None else dtype)
            marginals = []
            for i, sc in enumerate(self.free_scopes):
                e = self.expands[i]
                if e is None:
                    marginals.append(_batch_first(sc, grads[k0 + i] * tabs[k0 + i]))
                    continue
                # at distinct points: the factor's value there times the sum of the
                # gradient over its grid points (the grid's rows, people contiguous)
                g = np.ascontiguousarray(grads[k0 + i]).reshape(-1, n)
                summed = e[1](g, axis=0)                                    # (U, n)
                marginals.append((summed * distinct[i]).T)
            return logz, marginals

        def _free_tables(self, inputs, n):
            """The free log tables of a pass as probability tables over their scopes,
            divided by their per-person maximum (:func:`_scaled_tables`), batch-last in the
            tables' float type: ``(tables, per input its values at distinct points (U, n)
            or None, the log maxima (n,))``.  A factor at distinct points is expanded to its
            grid by one gather of rows (people contiguous)."""
            tables, distinct, offset = [], [], np.zeros(n)
            for sc, x, e in zip(self.free_scopes, inputs, self.expands, strict=True):
                if e is None:
                    [(_, t)], mx = _scaled_tables([(sc, x)], n)
                    offset += mx
                    tables.append(_batch_last(sc, t, self.sizes).astype(self.dtype,
                                                                        copy=False))
                    distinct.append(None)
                    continue
                # a factor at distinct points, scaled as a table over one variable: people
                # contiguous first, so the maximum and the exponential run along rows
                d = np.array(np.asarray(x, dtype=float).T, order="C")          # (U, n)
                mx = d.max(axis=0)
                mx = np.where(np.isfinite(mx), mx, 0.0)
                offset += mx
                np.subtract(d, mx, out=d)
                d = np.exp(d, out=d).astype(self.dtype, copy=False)
                tables.append(d[e[0]].reshape(tuple(
                    self.sizes[v] if v in sc else 1 for v in range(len(self.sizes))) + (n,)))
                distinct.append(d)
            return tables, distinct, offset

        def pullback(self, inputs, outputs, cotangents):
            if any(not isinstance(g.type, DisconnectedType) for g in cotangents[1:]):
                raise NotImplementedError("second derivatives of the elimination")
            g = cotangents[0]
            return [g.dimshuffle([0] + ["x"] * (x.ndim - 1)) * outputs[1 + i]
                    for i, x in enumerate(inputs)]

        L_op = pullback   # pytensor before pullback

        def connection_pattern(self, node):
            return [[True] * len(node.outputs) for _ in node.inputs]

    register_by_reference(_Elimination)
    return _Elimination


def theta_constants(model: CompiledModel, draws: ParamDraws | None = None, i: int = 0,
                    free: tuple[str, ...] = ()) -> dict:
    """Parameters of draw ``i`` (default: the prior set's values) in the layout
    :func:`group_loglik` reads: numpy arrays, or pytensor constants for the parameter groups
    in ``free`` (so that those factors take the graph path, as in a fit)."""
    d = draws if draws is not None else point_params(model)

    def as_(group, x):
        if group not in free:
            return x
        import pytensor.tensor as pt

        return pt.as_tensor(x)

    out = {
        "lat_mean": [as_("analyte-levels", x[i]) for x in d.lat_mean],
        "lat_sd": [as_("analyte-levels", x[i]) for x in d.lat_sd],
        "log_median": as_("analyte-levels", d.log_median[i]),
        "prior_base": [as_("prevalence", x[i]) for x in d.prior_base],
    }
    logits = (as_("symptoms", d.cause_logit[i]), as_("symptoms", d.leak_logit[i]))
    out["symptom_logits"] = logits
    out["symptom_tables"] = symptom_tables(model, *logits)
    return out


def cohort_loglik_value(model: CompiledModel, cases, draws: ParamDraws | None = None,
                        labels=None, free: tuple[str, ...] = (),
                        table_dtype: str = "float64") -> np.ndarray:
    """Per-person log evidence from this formulation, evaluated (for checks); the groups in
    ``free`` are computed as graph, the others in numpy, as in a fit of those groups
    (``table_dtype``: see :func:`group_loglik`)."""
    groups = prepare_cohort(model, cases, labels)
    out = {}
    theta = theta_constants(model, draws, free=free)
    for ids, ll in cohort_loglik(theta, groups, table_dtype):
        if is_free(ll):
            import pytensor

            ll = pytensor.function([], ll, mode="FAST_COMPILE")()
        out.update(zip(ids, ll, strict=True))
    return np.array([out[c.id] for c in cases])
