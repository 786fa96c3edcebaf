"""The latent summaries' mixture: mean and equal-tailed interval of a 1-D Gaussian mixture."""

from __future__ import annotations

import numpy as np
from scipy import optimize, special, stats

from neb_bayes.inference.latents import _mixture_summary, ndtr


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


def test_latents_without_one_result_by_the_rank_one_change_equal_conditioning_anew():
    """The gross-error components of a block's latents (the posterior without result j)
    come from the full conditioning by a rank-one change; they equal conditioning on the
    other results anew, for every result, including repeated results of one channel."""
    import neb_bayes as nb
    from neb_bayes.evidence import build_evidence
    from neb_bayes.inference.latents import _conditioned
    from neb_bayes.model.compiled import view_for_sex
    from neb_bayes.priorset import load_prior_set

    model0 = load_prior_set().model
    checked = 0
    for name in ("pcos_01", "cushings_acth_dependent_01",
                 "hard_subclinical_hypothyroidism_repeat_tsh"):
        case = nb.read_case(f"cases/examples/{name}.yaml")
        model = view_for_sex(model0, case.patient.sex)
        ev = build_evidence(model, case)
        for block in ev.blocks:
            if block.n < 2 or block.censor.any():
                continue
            grid = tuple(model.axes[d].n_states for d in block.deps)
            lat_mean, lat_cov = ev.latent_params(model, block.axis)
            every = np.arange(block.n)
            _, _, loo = _conditioned(model, block, every, lat_mean, lat_cov, grid,
                                     leave_one_out=True)
            for j in range(block.n):
                means, covs = loo(j)
                want_m, want_c = _conditioned(model, block, np.delete(every, j), lat_mean,
                                              lat_cov, grid)
                np.testing.assert_allclose(np.broadcast_to(means, want_m.shape), want_m,
                                           rtol=1e-9, atol=1e-10)
                np.testing.assert_allclose(np.broadcast_to(covs, want_c.shape), want_c,
                                           rtol=1e-9, atol=1e-10)
                checked += 1
    assert checked >= 10


def test_the_summaries_normal_cdf_is_scipys():
    """The latent summaries' normal CDF (the standard library's erfc, so that a report of
    observed results needs no scipy.special) equals ``scipy.special.ndtr`` to 2e-13 relative
    from -30 to 9 standard deviations, with its input's shape (a scalar: shape ())."""
    x = np.linspace(-30.0, 9.0, 20001).reshape(3, -1, 1)
    got = ndtr(x)
    assert got.shape == x.shape and got.dtype == float
    np.testing.assert_allclose(got, special.ndtr(x), rtol=2e-13, atol=0)
    assert ndtr(0.0).shape == () and float(ndtr(0.0)) == 0.5
    assert float(ndtr(-np.inf)) == 0.0 and float(ndtr(np.inf)) == 1.0


def test_mixture_summary_reads_skewed_components_by_their_own_cdf():
    """Components given censored results enter the interval by their exact CDF (a skewed
    one here, scipy's skew normal), the others as Gaussians: the quantiles equal root-finding
    on the combined CDF."""
    w = np.array([0.2, 0.1, 0.7])
    m = np.array([0.0, 1.5, -1.0])
    s = np.array([0.6, 0.4, 0.8])
    sk = stats.skewnorm(-6.0, loc=-0.2, scale=1.1)
    m[2], s[2] = sk.mean(), sk.std()     # the skewed component's exact moments
    mask = np.array([False, False, True])
    got = _mixture_summary(w, m, s, 0.9, (mask, lambda x: sk.cdf(x)[None, :]))

    def cdf(x):
        return float(w[0] * stats.norm.cdf(x, m[0], s[0]) + w[1] * stats.norm.cdf(x, m[1], s[1])
                     + w[2] * sk.cdf(x))

    want = [optimize.brentq(lambda x, q=q: cdf(x) - q, -10, 10) for q in (0.05, 0.95)]
    assert abs(got[0] - float(w @ m)) < 1e-12
    # (interpolated on a window of five coarse cells, 41 points: ~1e-4 of a spread)
    np.testing.assert_allclose(got[1:], want, atol=5e-4)
    gaussian = _mixture_summary(w, m, s, 0.9)
    assert np.abs(np.array(gaussian[1:]) - want).max() > 1e-2   # a Gaussian reading is off
