"""The exact posterior under every parameter draw at once: uncertainty for each probability.

Same computation as :mod:`neb_bayes.inference.exact` (the same functions, with a leading
draw dimension), probabilities only.  To keep the work per draw small, axes are cut to the
states the patient's stratum allows (a known sex removes the other sex's gonadal states).
"""

from __future__ import annotations

import numpy as np

from neb_bayes.evidence import Evidence
from neb_bayes.inference.exact import SymptomTerms, block_loglik, symptom_level_factors
from neb_bayes.model.compiled import CompiledModel
from neb_bayes.model.params import ParamDraws
from neb_bayes.model.prior import log_prior_parts
from neb_bayes.tensor import contract_marginals

#: above this many joint states of the present symptoms' cause axes, the propensity level is
#: left to the contraction instead of being summed out on that grid
SMALL_SYMPTOM_GRID = 150


def probabilities_over_draws(
    model: CompiledModel, draws: ParamDraws, ev: Evidence, chunk: int = 250
) -> np.ndarray:
    """P(condition) for every condition (and ``none`` last) under every draw: ``(D, C + 1)``."""
    out = np.empty((draws.n_draws, len(model.conditions) + 1))
    # symptom tables only for the reported symptoms, re-indexed 0..n-1
    cols = np.concatenate([ev.present, ev.absent]).astype(np.int64)
    leak, cause = draws.symptom_tables(model, cols)
    present = np.arange(ev.present.size)
    absent = np.arange(ev.present.size, cols.size)
    for start in range(0, draws.n_draws, chunk):
        sl = slice(start, min(start + chunk, draws.n_draws))
        sym = (present, absent, leak[sl], tuple(c[sl] for c in cause))  # leak (D, P, Y')
        out[sl] = _probabilities(model, draws.subset(sl), ev, sym)
    return out


def _probabilities(model: CompiledModel, draws: ParamDraws, ev: Evidence, sym) -> np.ndarray:
    nd = len(model.axes)
    parts = [p[..., None] for p in log_prior_parts(model, ev.covariates, list(draws.prior_base))]
    for block in ev.blocks:
        a = block.axis
        mean = draws.lat_mean[a]
        cov = draws.lat_cov(model, a)
        if a in ev.lat_shift:
            shift, scale = ev.lat_shift[a]
            mean = mean + shift
            cov = cov * (scale**2)[:, None, None]
        ll = block_loglik(model, block, latent=(mean, cov), log_median=draws.log_median)
        parts.append(ll[..., None])
    terms = SymptomTerms(model, *sym)
    grid = int(np.prod([model.axes[ai].n_states for ai in terms.cause_axes]))
    if grid <= SMALL_SYMPTOM_GRID:
        # few cause axes: sum the propensity level out on their grid directly
        parts.append(terms.factor()[..., None])
    else:
        # many: keep the level as a last dimension, summed out by the contraction, so each
        # present symptom is a factor over its own cause axes only
        parts.extend(symptom_level_factors(model, *sym))
    d = draws.n_draws
    marg, none = contract_marginals(parts, [ax.healthy.astype(float) for ax in model.axes],
                                    n_axes=nd)
    out = np.empty((d, len(model.conditions) + 1))
    for k, (a, mask) in enumerate(zip(model.cond_axis, model.cond_states, strict=True)):
        out[:, k] = marg[a][:, mask].sum(axis=1)
    out[:, -1] = none
    return np.clip(out, 0.0, 1.0)
