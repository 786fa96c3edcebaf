"""The naive alternative the exact engine is compared with: a fresh ``pm.Model`` per case,
discrete axis states as ``pm.Categorical`` and every latent sampled, then ``pm.sample``.

This is what one would write first with PyMC; shared/research/inference-notes.md explains why
it is slow and, on ambiguous cases, wrong.  Kept out of the package on purpose.
"""

from __future__ import annotations

import numpy as np

from neb_bayes.evidence import Evidence
from neb_bayes.model.compiled import CompiledModel


def naive_case_model(model: CompiledModel, ev: Evidence, marginal_priors: list[np.ndarray]):
    """A generative per-case PyMC model of the measured axes (states sampled, not summed)."""
    import pymc as pm
    import pytensor.tensor as pt

    with pm.Model() as m:
        for block in ev.blocks:
            ax = model.axes[block.axis]
            prior = marginal_priors[block.axis]
            state = pm.Categorical(f"state_{ax.name}", p=prior / prior.sum())
            chol = np.linalg.cholesky(ax.lat_cov)
            eps = pm.Normal(f"eps_{ax.name}", 0.0, 1.0, shape=len(ax.latents))
            z = pt.as_tensor(ax.lat_mean)[state] + pt.dot(pt.as_tensor(chol)[state], eps)
            for i in range(block.n):
                ch = model.channels[block.channel[i]]
                mean = ch.log_median + pt.dot(pt.as_tensor(ch.loadings), z)
                for eff in ch.effects:
                    if eff.axis == block.axis:
                        mean = mean + pt.as_tensor(eff.shift)[state]
                    else:  # other axes held at their most likely prior state
                        mean = mean + eff.shift[int(np.argmax(marginal_priors[eff.axis]))]
                if ch.amp is not None and ch.amp_axis == block.axis:
                    mean = mean + pt.as_tensor(ch.amp)[state] * block.diurnal[i]
                sd = float(np.sqrt(ch.tau**2 + ch.cvi**2 + ch.cva**2))
                if block.censor[i] == 0:
                    pm.Normal(f"y{i}_{ax.name}", mean, sd, observed=block.y[i])
                else:
                    lo, hi = (None, block.y[i]) if block.censor[i] < 0 else (block.y[i], None)
                    pm.Censored(f"y{i}_{ax.name}", pm.Normal.dist(mean, sd), lower=lo, upper=hi,
                                observed=block.y[i])
    return m


def naive_probabilities(model: CompiledModel, ev: Evidence, marginal_priors, *, draws=1000,
                        tune=1000, chains=2, seed=0) -> dict[str, dict[str, float]]:
    """Sample the naive model; state frequencies per measured axis."""
    import pymc as pm

    m = naive_case_model(model, ev, marginal_priors)
    with m:
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=1, random_seed=seed,
                          progressbar=False, compute_convergence_checks=False)
    out = {}
    for block in ev.blocks:
        ax = model.axes[block.axis]
        s = np.asarray(idata.posterior[f"state_{ax.name}"]).ravel()
        out[ax.name] = {st: float(np.mean(s == k)) for k, st in enumerate(ax.states)}
    return out
