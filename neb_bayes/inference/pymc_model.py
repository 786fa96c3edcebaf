"""The same model in PyMC: the population log-density with states summed out exactly.

Built from the same compiled tables as the exact engine, but computed independently: the
exact engine works in covariance form (a Gaussian over each axis' results), this module in
information form (each channel's results reduced to sufficient statistics, the latents
integrated by completing the square).  A test holds the two equal.

Per person the discrete states are enumerated and summed out (logsumexp over the joint
tensor), the latents integrated analytically, so NUTS only sees population parameters
(shared/research/inference-notes.md).  Supported evidence: everything the exact engine reads,
except (a) a result with a daily rhythm and no collection time and (b) more than one censored
result per axis, or a censored result whose channel also has an observed result; such cases
raise :class:`UnsupportedEvidence` naming them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np

from neb_bayes.evidence import Evidence, build_evidence
from neb_bayes.model.compiled import CompiledModel, sex_keep, view_for_sex
from neb_bayes.model.params import ParamDraws, point_params
from neb_bayes.model.prior import Covariates, _matches

LOG_2PI = float(np.log(2 * np.pi))


class UnsupportedEvidence(ValueError):
    """Evidence the PyMC formulation does not cover (the exact engine does)."""


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
    stats: dict[str, np.ndarray]  # w, s1, s2, t1, t2, t3, ld: (P, C)
    A: np.ndarray                 # (P, K, K)
    cen: dict[str, np.ndarray]    # has, ch, lim, sign, d, var: (P,)


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
    label_mask: np.ndarray | None = None   # (P, J) 0 or -inf
    evidences: list[Evidence] = field(default_factory=list)


def _channel_stats(model: CompiledModel, block, rows: np.ndarray, ch: int) -> dict[str, float]:
    c = model.channels[ch]
    y, d = block.y[rows], block.diurnal[rows]
    day = block.day[rows]
    extra = block.extra_var[rows] if block.extra_var is not None else np.zeros(rows.size)
    same_day = day[:, None] == day[None, :]
    R = c.tau**2 + c.cvi**2 * same_day + np.diag(c.cva**2 + extra)
    Ri = np.linalg.inv(R)
    one = np.ones(rows.size)
    sign, logdet = np.linalg.slogdet(R)
    return {"w": one @ Ri @ one, "s1": one @ Ri @ y, "s2": y @ Ri @ y, "t1": one @ Ri @ d,
            "t2": d @ Ri @ d, "t3": y @ Ri @ d, "ld": logdet + rows.size * LOG_2PI}


def _axis_structure(model: CompiledModel, axis: int):
    chans = np.array([i for i, c in enumerate(model.channels) if c.axis == axis])
    deps = {axis}
    for ci in chans:
        c = model.channels[ci]
        deps.update(e.axis for e in c.effects)
        if c.amp_axis is not None:
            deps.add(c.amp_axis)
    deps = tuple(sorted(deps))
    sizes = [model.axes[d].n_states for d in deps]
    grid = list(product(*[range(s) for s in sizes]))
    own = deps.index(axis)
    effect = np.zeros((chans.size, len(grid)))
    amp = np.zeros((chans.size, len(grid)))
    for j, ci in enumerate(chans):
        c = model.channels[ci]
        for g, states in enumerate(grid):
            effect[j, g] = sum(e.shift[states[deps.index(e.axis)]] for e in c.effects)
            if c.amp_axis is not None:
                amp[j, g] = c.amp[states[deps.index(c.amp_axis)]]
    own_idx = np.array([states[own] for states in grid])
    L = np.stack([model.channels[ci].loadings for ci in chans])
    return chans, L, deps, tuple(sizes), own_idx, effect, amp


def _modifier_offsets(model: CompiledModel, cov: Covariates) -> list[np.ndarray]:
    out = []
    for ax in model.axes:
        off = np.zeros(ax.n_states)
        for mod in model.spec.raw["prevalence"].get(ax.name, {}).get("modifiers", []):
            if _matches(mod["when"], cov):
                for st, odds in mod["odds"].items():
                    if st in ax.states:
                        off[ax.states.index(st)] += np.log(odds)
        out.append(off)
    return out


def prepare_group(model: CompiledModel, evidences: list[Evidence],
                  labels: list[dict[str, str] | None] | None = None) -> GroupData:
    """Sufficient statistics of a group of people who share ``model`` (one sex view)."""
    n = len(evidences)
    problems = []
    axes = []
    for ai, ax in enumerate(model.axes):
        if not ax.latents:
            continue
        chans, L, deps, sizes, own_idx, effect, amp = _axis_structure(model, ai)
        if chans.size == 0:
            continue
        pos = {int(c): j for j, c in enumerate(chans)}
        stats = {k: np.zeros((n, chans.size)) for k in ("w", "s1", "s2", "t1", "t2", "t3", "ld")}
        cen = {"has": np.zeros(n), "ch": np.zeros(n, dtype=np.int64), "lim": np.zeros(n),
               "sign": np.zeros(n), "d": np.zeros(n), "var": np.ones(n)}
        for p, ev in enumerate(evidences):
            block = next((b for b in ev.blocks if b.axis == ai), None)
            if block is None:
                continue
            if np.any(block.diurnal_var > 0):
                problems.append(f"{ev.case_id}: result with a daily rhythm but no collection time")
                continue
            obs = block.censor == 0
            for ch in np.unique(block.channel[obs]):
                rows = np.flatnonzero(obs & (block.channel == ch))
                for k, v in _channel_stats(model, block, rows, int(ch)).items():
                    stats[k][p, pos[int(ch)]] = v
            cens = np.flatnonzero(~obs)
            if cens.size > 1:
                problems.append(f"{ev.case_id}: {cens.size} censored results on axis {ax.name}")
            elif cens.size == 1:
                i = cens[0]
                ch = int(block.channel[i])
                if np.any(obs & (block.channel == ch)):
                    problems.append(f"{ev.case_id}: censored {model.channels[ch].name} with an "
                                    "observed repeat")
                c = model.channels[ch]
                extra = block.extra_var[i] if block.extra_var is not None else 0.0
                cen["has"][p] = 1.0
                cen["ch"][p] = pos[ch]
                cen["lim"][p] = block.y[i]
                cen["sign"][p] = float(block.censor[i])
                cen["d"][p] = block.diurnal[i]
                cen["var"][p] = c.tau**2 + c.cvi**2 + c.cva**2 + extra
        A = np.einsum("pc,ck,cl->pkl", stats["w"], L, L)
        axes.append(AxisData(ai, chans, L, deps, sizes, own_idx, effect, amp, stats, A, cen))
    if problems:
        raise UnsupportedEvidence("; ".join(problems))
    ids = {s: i for i, s in enumerate(model.symptoms)}
    present = np.zeros((n, len(ids)))
    absent = np.zeros((n, len(ids)))
    for p, ev in enumerate(evidences):
        present[p, ev.present] = 1.0
        absent[p, ev.absent] = 1.0
    modoff = [np.stack([_modifier_offsets(model, ev.covariates)[ai] for ev in evidences])
              for ai in range(len(model.axes))]
    label_mask = None
    if labels is not None and any(lab for lab in labels):
        label_mask = np.zeros((n,) + model.shape)
        for p, lab in enumerate(labels):
            for ax_name, sts in (lab or {}).items():
                ai = model.axis_index(ax_name)
                sts = [sts] if isinstance(sts, str) else list(sts)
                allowed = [s for s in sts if s in model.axes[ai].states]
                if not allowed:
                    raise UnsupportedEvidence(f"label {ax_name}={sts} impossible for this person")
                bad = np.ones(model.axes[ai].n_states, bool)
                for st in allowed:
                    bad[model.axes[ai].states.index(st)] = False
                shape = [1] * len(model.axes)
                shape[ai] = -1
                label_mask[p] = np.where(bad.reshape(shape), -np.inf, label_mask[p])
    return GroupData(model=model, keep=sex_keep(model), case_ids=[ev.case_id for ev in evidences],
                     modoff=modoff, axes=axes, present=present, absent=absent,
                     label_mask=label_mask, evidences=list(evidences))


def prepare_cohort(model: CompiledModel, cases, labels=None) -> list[GroupData]:
    """Group a cohort's cases by sex view and precompute their sufficient statistics."""
    groups: dict[str | None, list] = {}
    for i, case in enumerate(cases):
        groups.setdefault(case.patient.sex, []).append(i)
    out = []
    for sex, idx in groups.items():
        view = view_for_sex(model, sex)
        evs = [build_evidence(view, cases[i]) for i in idx]
        labs = None if labels is None else [labels[i] for i in idx]
        out.append(prepare_group(view, evs, labs))
    return out


# --------------------------------------------------------------------------------------------
# the log-density in pytensor
def _lat_cov(pt, model: CompiledModel, axis: int, sd):
    ax = model.axes[axis]
    base_sd = np.sqrt(np.einsum("skk->sk", ax.lat_cov))
    corr = ax.lat_cov / np.einsum("si,sj->sij", base_sd, base_sd)
    return pt.as_tensor(corr) * sd[:, :, None] * sd[:, None, :]


def group_loglik(theta: dict, g: GroupData):
    """log p(evidence of each person in the group) under parameters ``theta`` (a dict of
    pytensor tensors in the full-model layout: see :func:`theta_constants`)."""
    import pytensor.tensor as pt
    from pymc.distributions.dist_math import normal_lcdf

    m = g.model
    nd = len(m.axes)
    P = len(g.case_ids)
    keep = g.keep

    def cut(ai, x):  # full-model per-state parameter -> this view's states
        return x[keep[ai]] if ai in keep else x

    parts = []
    # prior network
    names = m.axis_names
    links = m.spec.raw.get("links", [])
    for ai, ax in enumerate(m.axes):
        lo = cut(ai, theta["prior_base"][ai])[None, :] + pt.as_tensor(g.modoff[ai])   # (P, S)
        lo = lo.reshape((P,) + (1,) * ai + (ax.n_states,) + (1,) * (nd - ai - 1))
        for link in links:
            (pa, ps), (ca, cs) = link["parent"], link["child"]
            pi = names.index(pa)
            if ca != ax.name or cs not in ax.states or ps not in m.axes[pi].states:
                continue
            shape = [1] * (nd + 1)
            shape[1 + pi] = m.axes[pi].n_states
            shape[1 + ai] = ax.n_states
            t = np.zeros(shape)
            idx = [0] * (nd + 1)
            idx[1 + pi] = m.axes[pi].states.index(ps)
            idx[1 + ai] = ax.states.index(cs)
            t[tuple(idx)] = np.log(link["odds"])
            lo = lo + pt.as_tensor(t)
        parts.append(lo - pt.logsumexp(lo, axis=1 + ai, keepdims=True))
    # laboratory blocks (information form)
    for ad in g.axes:
        a = ad.axis
        st = {k: pt.as_tensor(v) for k, v in ad.stats.items()}
        mu_c = theta["log_median"][ad.channels][:, None] + pt.as_tensor(ad.effect)   # (C, G)
        amp = pt.as_tensor(ad.amp)
        s1r = st["s1"][:, :, None] - mu_c[None] * st["w"][:, :, None] - amp[None] * st["t1"][:, :, None]
        q = (st["s2"][:, :, None] + mu_c[None] ** 2 * st["w"][:, :, None]
             + amp[None] ** 2 * st["t2"][:, :, None] - 2 * mu_c[None] * st["s1"][:, :, None]
             - 2 * amp[None] * st["t3"][:, :, None] + 2 * mu_c[None] * amp[None] * st["t1"][:, :, None])
        c = -0.5 * q.sum(axis=1) - 0.5 * st["ld"].sum(axis=1)[:, None]                   # (P, G)
        L = pt.as_tensor(ad.loadings)
        b = pt.einsum("pcg,ck->pgk", s1r, L)                                                 # (P, G, K)
        lat_mean = cut(a, theta["lat_mean"][a])[ad.own_idx]                               # (G, K)
        lat_cov = _lat_cov(pt, m, a, cut(a, theta["lat_sd"][a]))[ad.own_idx]              # (G, K, K)
        S_inv = pt.linalg.inv(lat_cov)
        chol_S = pt.linalg.cholesky(lat_cov)
        logdet_S = 2 * pt.log(pt.diagonal(chol_S, axis1=-2, axis2=-1)).sum(-1)            # (G,)
        M = S_inv[None] + pt.as_tensor(ad.A)[:, None]                                     # (P, G, K, K)
        M_inv = pt.linalg.inv(M)
        chol_M = pt.linalg.cholesky(M)
        logdet_M = 2 * pt.log(pt.diagonal(chol_M, axis1=-2, axis2=-1)).sum(-1)            # (P, G)
        s_mu = pt.einsum("gkl,gl->gk", S_inv, lat_mean)                                   # (G, K)
        eta = s_mu[None] + b
        post_mean = pt.einsum("pgkl,pgl->pgk", M_inv, eta)
        ll = (c - 0.5 * (lat_mean * s_mu).sum(-1)[None] + 0.5 * (eta * post_mean).sum(-1)
              - 0.5 * logdet_S[None] - 0.5 * logdet_M)
        cen = ad.cen
        if cen["has"].any():
            ch = cen["ch"]
            Lw = pt.as_tensor(ad.loadings[ch])                                            # (P, K)
            mean_w = (mu_c.T[:, ch].T + amp.T[:, ch].T * pt.as_tensor(cen["d"])[:, None]
                      + pt.einsum("pk,pgk->pg", Lw, post_mean))
            var_w = pt.einsum("pk,pgkl,pl->pg", Lw, M_inv, Lw) + pt.as_tensor(cen["var"])[:, None]
            sign = pt.as_tensor(cen["sign"])[:, None]
            t = -sign * (pt.as_tensor(cen["lim"])[:, None] - mean_w) / pt.sqrt(var_w)
            ll = ll + pt.as_tensor(cen["has"])[:, None] * normal_lcdf(0.0, 1.0, t)
        shape = [1] * nd
        for d in ad.deps:
            shape[d] = m.axes[d].n_states
        parts.append(ll.reshape((P,) + tuple(shape)))
    # symptoms
    leak, cause = theta["symptom_tables"]
    cause = [cut(ai, c) for ai, c in enumerate(cause)]
    n_lev = m.log1m_leak.shape[0]
    absent = pt.as_tensor(g.absent)
    for ai, ax in enumerate(m.axes):
        term = pt.dot(absent, cause[ai].T)                                                # (P, S)
        parts.append(term.reshape((P,) + (1,) * ai + (ax.n_states,) + (1,) * (nd - ai - 1)))
    total = (pt.as_tensor(m.log_propensity_w)[None] + pt.dot(absent, leak.T))             # (P, lev)
    total = total.reshape((P, n_lev) + (1,) * nd)
    for y in np.flatnonzero(g.present.any(axis=0)):
        rows = np.flatnonzero(g.present[:, y])
        lq = leak[:, y].reshape((n_lev,) + (1,) * nd)
        for ai in range(nd):
            lq = lq + cause[ai][:, y].reshape((1,) + (1,) * ai + (m.axes[ai].n_states,)
                                              + (1,) * (nd - ai - 1))
        term = pt.log(-pt.expm1(lq))[None]
        mask = np.zeros((P,) + (1,) * (nd + 1))
        mask[rows] = 1.0
        total = total + pt.as_tensor(mask) * term
    parts.append(pt.logsumexp(total, axis=1))
    joint = parts[0]
    for p in parts[1:]:
        joint = joint + p
    if g.label_mask is not None:
        joint = joint + pt.as_tensor(g.label_mask)
    return pt.logsumexp(joint.reshape((P, -1)), axis=1)


def theta_constants(model: CompiledModel, draws: ParamDraws | None = None, i: int = 0) -> dict:
    """Parameters as pytensor constants (draw ``i``; default: the prior set's values)."""
    import pytensor.tensor as pt

    d = draws if draws is not None else point_params(model)
    leak, cause = model.symptom_table.tables(d.cause_logit[i], d.leak_logit[i])
    return {
        "lat_mean": [pt.as_tensor(x[i]) for x in d.lat_mean],
        "lat_sd": [pt.as_tensor(x[i]) for x in d.lat_sd],
        "log_median": pt.as_tensor(d.log_median[i]),
        "prior_base": [pt.as_tensor(x[i]) for x in d.prior_base],
        "symptom_tables": (pt.as_tensor(leak), [pt.as_tensor(c) for c in cause]),
    }


def cohort_loglik_value(model: CompiledModel, cases, draws: ParamDraws | None = None,
                        labels=None) -> np.ndarray:
    """Per-person log evidence from the PyMC formulation, evaluated (for checks)."""
    import pytensor

    groups = prepare_cohort(model, cases, labels)
    out = {}
    theta = theta_constants(model, draws)
    for g in groups:
        fn = pytensor.function([], group_loglik(theta, g), mode="FAST_COMPILE")
        out.update(zip(g.case_ids, fn(), strict=True))
    return np.array([out[c.id] for c in cases])
