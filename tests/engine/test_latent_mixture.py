"""The latent summaries' mixture: mean and equal-tailed interval of a 1-D Gaussian mixture."""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats

from neb_bayes.inference.latents import _mixture_summary


def _reference(w, m, s, prob):
    """Mean and quantiles by root-finding on the mixture's CDF (scipy)."""
    w = w / w.sum()

    def cdf(x):
        return float(np.sum(w * stats.norm.cdf(x, m, s)))

    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    span = (float((m - 10 * s).min()), float((m + 10 * s).max()))
    return (float(np.sum(w * m)), optimize.brentq(lambda x: cdf(x) - lo_q, *span),
            optimize.brentq(lambda x: cdf(x) - hi_q, *span))


def test_mixture_summary_matches_root_finding_on_the_cdf():
    rng = np.random.default_rng(3)
    w, m, s = rng.uniform(0.1, 1, 6), rng.normal(0, 1, 6), rng.uniform(0.2, 0.8, 6)
    got = _mixture_summary(w, m, s, 0.9)
    want = _reference(w, m, s, 0.9)
    assert abs(got[0] - want[0]) < 1e-12
    # bracketed on a coarse grid, interpolated on a fine one within the bracket
    np.testing.assert_allclose(got[1:], want[1:], atol=1e-4)


def test_repeated_components_give_the_same_summary_as_merged_ones():
    """Components repeated over other axes' states (the same mean and spread) are merged
    before the CDF is formed: the summary equals that of the merged mixture."""
    rng = np.random.default_rng(4)
    w, m, s = rng.uniform(0.1, 1, 5), rng.normal(0, 1, 5), rng.uniform(0.2, 0.8, 5)
    reps = rng.integers(1, 60, 5)
    split = [rng.dirichlet(np.ones(r)) * wi for r, wi in zip(reps, w, strict=True)]
    order = rng.permutation(int(reps.sum()))
    w_rep = np.concatenate(split)[order]
    m_rep, s_rep = np.repeat(m, reps)[order], np.repeat(s, reps)[order]
    np.testing.assert_allclose(_mixture_summary(w_rep, m_rep, s_rep, 0.9),
                               _mixture_summary(w, m, s, 0.9), rtol=1e-12, atol=1e-12)
