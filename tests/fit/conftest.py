"""Shared helpers of the fit tests."""

from __future__ import annotations

from neb_bayes.inference.pymc_model import UnsupportedEvidence, prepare_cohort


def supported(model, cases) -> list:
    """The cases the PyMC formulation covers (the others raise :class:`UnsupportedEvidence`)."""
    out = []
    for c in cases:
        try:
            prepare_cohort(model, [c])
        except UnsupportedEvidence:
            continue
        out.append(c)
    return out
