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


def applied_modifiers(model: CompiledModel, cov: Covariates) -> list[dict]:
    """The prevalence modifiers that apply to this stratum (for the report)."""
    out = []
    for ax, prev in model.spec.raw["prevalence"].items():
        for mod in prev.get("modifiers", []):
            if _matches(mod["when"], cov):
                out.append({"axis": ax, **mod})
    return out


def _axis_log_odds(model: CompiledModel, ai: int, cov: Covariates) -> np.ndarray:
    """Unnormalised log prior of one axis' states for this stratum (no parents)."""
    ax = model.axes[ai]
    prev = model.spec.raw["prevalence"].get(ax.name, {})
    base = prev.get("base", {})
    rest = [s for s in ax.states if s not in base]
    rest_mass = max(1.0 - sum(base.values()), 1e-12) / max(len(rest), 1)
    p = np.array([float(base.get(s, rest_mass)) for s in ax.states])
    lo = np.log(p)
    for mod in prev.get("modifiers", []):
        if _matches(mod["when"], cov):
            for st, odds in mod["odds"].items():
                lo[ax.states.index(st)] += math.log(odds)
    if cov.sex is not None:
        lo[[s is not None and s != cov.sex for s in ax.sex]] = -np.inf
    return lo


def _log_prior_uncached(model: CompiledModel, cov: Covariates) -> np.ndarray:
    names = model.axis_names
    shape = model.shape
    total = np.zeros(shape)
    links = model.spec.raw.get("links", [])
    for ai, ax in enumerate(model.axes):
        # conditional log table over (all axes) broadcast: parents vary along their dims
        lo = _axis_log_odds(model, ai, cov).reshape(
            [1] * ai + [ax.n_states] + [1] * (len(shape) - ai - 1)
        )
        for link in links:
            (pa, ps), (ca, cs) = link["parent"], link["child"]
            if ca != ax.name:
                continue
            pi = names.index(pa)
            ind = np.zeros(shape[pi])
            ind[model.axes[pi].states.index(ps)] = 1.0
            bump = np.zeros(ax.n_states)
            bump[ax.states.index(cs)] = math.log(link["odds"])
            lo = lo + np.expand_dims(
                ind.reshape([1] * pi + [shape[pi]] + [1] * (len(shape) - pi - 1))
                * bump.reshape([1] * ai + [ax.n_states] + [1] * (len(shape) - ai - 1)),
                axis=(),
            )
        finite = np.where(np.isfinite(lo), lo, -np.inf)
        mx = np.max(finite, axis=ai, keepdims=True)
        lse = mx + np.log(np.sum(np.exp(finite - mx), axis=ai, keepdims=True))
        total = total + (lo - lse)
    return total


@lru_cache(maxsize=256)
def _cached(model: CompiledModel, cov: Covariates) -> np.ndarray:
    out = _log_prior_uncached(model, cov)
    out.setflags(write=False)
    return out


def log_prior(model: CompiledModel, cov: Covariates) -> np.ndarray:
    """Log prior probability of every joint state (tensor of shape ``model.shape``)."""
    return _cached(model, cov)
