"""Exact inference for many cases at once (the batch path): probabilities only."""

from __future__ import annotations

import numpy as np

from neb_bayes.evidence import Evidence
from neb_bayes.model.compiled import CompiledModel
from neb_bayes.model.params import ParamDraws


def infer_batch(model: CompiledModel, evidences: list[Evidence]) -> np.ndarray:
    """Posterior probability of each condition and of ``none`` for each case.

    Returns an array of shape ``(n_cases, n_conditions + 1)``; columns follow
    ``model.conditions`` then ``"none"``.  Computed for the whole list at once by
    :func:`neb_bayes.inference.vectorised.posterior_batch` (equal to
    :func:`~neb_bayes.inference.exact.infer_exact` case by case); results do not depend on
    how cases are chunked.
    """
    from neb_bayes.inference.vectorised import posterior_batch

    return posterior_batch(model, evidences)[0]


def infer_batch_draws(model: CompiledModel, draws: ParamDraws, evidences: list[Evidence],
                      single: bool = True) -> np.ndarray:
    """Probabilities under every parameter draw: ``(n_draws, n_cases, n_conditions + 1)``.

    Case by case through :func:`~neb_bayes.inference.draws.probabilities_over_draws` (with
    ``single``, its float32 contraction: within about 1e-6 of double precision).
    """
    from neb_bayes.inference.draws import probabilities_over_draws

    out = np.empty((draws.n_draws, len(evidences), len(model.conditions) + 1))
    for i, ev in enumerate(evidences):
        out[:, i] = probabilities_over_draws(model, draws, ev, single=single)
    return out
