"""The prior over the joint discrete state: a Bayesian network read from the prior set.

Each axis, in the prior set's ``order``, gets base probabilities, odds modifiers for the
patient's stratum (sex, age, context flags) and odds multipliers from parent axis states
(``links``).  The result is the log prior as a dense tensor over all joint states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from neb_bayes.model.compiled import CompiledModel
from neb_bayes.tensor import sum_factors


@dataclass(frozen=True)
class Covariates:
    """What the prior depends on: the patient's stratum and recognised context flags."""

    sex: str | None = None
    age: float | None = None
    flags: frozenset[str] = frozenset()


def _matches(when: dict, cov: Covariates) -> bool:
    for key, val in when.items():
        if key == "sex":
            if cov.sex != val:
                return False
        elif key == "age_min":
            if cov.age is None or cov.age < val:
                return False
        elif key == "age_max":
            if cov.age is None or cov.age > val:
                return False
        elif key == "flag":
            if val not in cov.flags:
                return False
        elif key == "any_flag":
            if not cov.flags.intersection(val):
                return False
        else:
            raise ValueError(f"unknown modifier condition '{key}'")
    return True


def first_of_group(rows, applies) -> list:
    """The rows that apply, where rows sharing a ``group`` do not stack: of those, only the
    first listed that applies is kept (e.g. levothyroxine and liothyronine together are one
    thyroid hormone replacement, not two).  ``applies(row)`` says whether a row's condition
    holds; ``rows`` are dicts or objects with a ``group`` attribute (None: no group)."""
    out, seen = [], set()
    for row in rows:
        group = row.get("group") if isinstance(row, dict) else row.group
        if group is not None and group in seen or not applies(row):
            continue
        if group is not None:
            seen.add(group)
        out.append(row)
    return out


def axis_modifiers(model: CompiledModel, axis_name: str, cov: Covariates) -> list[dict]:
    """The prevalence modifiers of one axis that apply to this stratum."""
    mods = model.spec.raw["prevalence"].get(axis_name, {}).get("modifiers", [])
    return first_of_group(mods, lambda mod: _matches(mod["when"], cov))


def modifier_log_odds(model: CompiledModel, ai: int, cov: Covariates) -> np.ndarray:
    """Log odds the stratum's modifiers add to each state of axis ``ai``: ``(S,)``."""
    ax = model.axes[ai]
    off = np.zeros(ax.n_states)
    for mod in axis_modifiers(model, ax.name, cov):
        for st, odds in mod["odds"].items():
            if st in ax.states:
                off[ax.states.index(st)] += math.log(odds)
    # a gated state is impossible without one of its ``only_with`` flags or with one of its
    # ``not_with`` flags (the phases of the cycle)
    off[~ax.allowed(None, cov.flags)] = -np.inf
    return off


def applied_modifiers(model: CompiledModel, cov: Covariates) -> list[dict]:
    """The prevalence modifiers that apply to this stratum (for the report)."""
    return [{"axis": ax, **mod} for ax in model.spec.raw["prevalence"]
            for mod in axis_modifiers(model, ax, cov)]


def without_flags(cov: Covariates, flags: set[str] | frozenset[str] | None = None) -> Covariates:
    """The same stratum without these context ``flags`` (``None``: without any)."""
    keep = frozenset() if flags is None else cov.flags - frozenset(flags)
    return Covariates(sex=cov.sex, age=cov.age, flags=keep)


def flag_modifiers(model: CompiledModel, cov: Covariates) -> dict[str, list[dict]]:
    """Per context flag of the stratum: the prevalence modifier rows (with their ``axis``)
    that apply because of it, i.e. that no longer apply when that flag alone is left out.
    Flags that change no prior odds are absent.  For the report: what the context did to the
    prior."""
    applied = applied_modifiers(model, cov)
    out: dict[str, list[dict]] = {}
    for flag in sorted(cov.flags):
        without = applied_modifiers(model, without_flags(cov, {flag}))
        rows = [mod for mod in applied if mod not in without]
        if rows:
            out[flag] = rows
    return out


def _axis_log_odds(model: CompiledModel, ai: int, cov: Covariates,
                   base: np.ndarray | None = None) -> np.ndarray:
    """Unnormalised log prior of one axis' states for this stratum (no parents).

    ``base`` (shape ``(..., S)``) replaces the prior set's base log probabilities, e.g. one
    row per parameter draw.
    """
    from neb_bayes.model.params import base_log_prior

    ax = model.axes[ai]
    if base is None:
        override = model.prior_base_override
        base = override[ax.name] if override else base_log_prior(model, ai)
        if base.shape[-1] != ax.n_states:  # a restricted view: keep its states' values
            base = base[..., list(ax.kept)]
    lo = np.array(base, dtype=float, copy=True) + modifier_log_odds(model, ai, cov)
    if cov.sex is not None:
        lo[..., [s is not None and s != cov.sex for s in ax.sex]] = -np.inf
    return lo


def log_prior_tensor(model: CompiledModel, cov: Covariates,
                     bases: list[np.ndarray] | None = None) -> np.ndarray:
    """Log prior of every joint state; with ``bases`` (per axis ``(D, S)``) one per draw."""
    return sum_factors(log_prior_parts(model, cov, bases))


def log_prior_parts(model: CompiledModel, cov: Covariates,
                    bases: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """The prior as one conditional log table per axis (broadcastable to the joint shape)."""
    names = model.axis_names
    shape = model.shape
    nd = len(shape)
    lead = () if bases is None else bases[0].shape[:-1]
    parts = []
    links = model.spec.raw.get("links", [])
    for ai, ax in enumerate(model.axes):
        base = None if bases is None else bases[ai]
        lo = _axis_log_odds(model, ai, cov, base).reshape(
            lead + (1,) * ai + (ax.n_states,) + (1,) * (nd - ai - 1))
        for link in links:
            (pa, ps), (ca, cs) = link["parent"], link["child"]
            if ca != ax.name or cs not in ax.states or ps not in model.axes[names.index(pa)].states:
                continue
            pi = names.index(pa)
            ind = np.zeros(shape[pi])
            ind[model.axes[pi].states.index(ps)] = 1.0
            bump = np.zeros(ax.n_states)
            bump[ax.states.index(cs)] = math.log(link["odds"])
            lo = lo + (ind.reshape((1,) * pi + (shape[pi],) + (1,) * (nd - pi - 1))
                       * bump.reshape((1,) * ai + (ax.n_states,) + (1,) * (nd - ai - 1)))
        axis = len(lead) + ai
        mx = np.max(lo, axis=axis, keepdims=True)
        lse = mx + np.log(np.sum(np.exp(lo - mx), axis=axis, keepdims=True))
        parts.append(lo - lse)
    return parts


@lru_cache(maxsize=256)
def _cached(model: CompiledModel, cov: Covariates) -> np.ndarray:
    out = log_prior_tensor(model, cov)
    out.setflags(write=False)
    return out


def log_prior(model: CompiledModel, cov: Covariates) -> np.ndarray:
    """Log prior probability of every joint state (tensor of shape ``model.shape``)."""
    return _cached(model, cov)
