"""Censored results that share one factor (repeats of one analyte; two analytes, each measured
twice) or fall into uncorrelated groups: the one-dimensional rule and the split against the
general multivariate CDFs (themselves checked against adaptive quadrature), and the engine
with and without them."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import integrate
from scipy.stats import multivariate_normal, norm

from neb_bayes.inference import exact
from neb_bayes.inference.exact import (
    _factor_cover,
    censored_log_mass,
    factor_normal_cdf,
    quadrivariate_normal_cdf,
    trivariate_normal_cdf,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "cases" / "examples"


def _factor_cov(rng, c: int, pairs=()) -> np.ndarray:
    """A covariance of one factor plus independent parts, with extra correlation kept within
    each of ``pairs``."""
    lam = rng.normal(size=c) * rng.uniform(0.3, 2)
    cov = np.diag(rng.uniform(0.01, 1, c)) + np.outer(lam, lam)
    for j, k in pairs:
        v = rng.uniform(0.1, 1)
        cov[j, j] += v
        cov[k, k] += v
        cov[j, k] = cov[k, j] = cov[j, k] + v * rng.uniform(-0.95, 0.95)
    return cov


def _reference(upper, mean, cov) -> float:
    c = upper.size
    if c == 3:
        return float(trivariate_normal_cdf(upper, mean, cov))
    if c == 4:
        return float(quadrivariate_normal_cdf(upper, mean, cov))
    return float(multivariate_normal.cdf(upper, mean=mean, cov=cov, abseps=1e-9,
                                         releps=1e-7, maxpts=10**6,
                                         rng=np.random.default_rng(0)))


@pytest.mark.parametrize("c, pairs", [(3, ()), (4, ()), (5, ()), (6, ()), (4, ((2, 3),)),
                                      (5, ((0, 1), (3, 4))), (6, ((4, 5),))])
def test_factor_rule_agrees_with_general_cdfs(c, pairs):
    rng = np.random.default_rng(c * 10 + len(pairs))
    for trial in range(6 if c <= 4 else 3):
        cov = _factor_cov(rng, c, pairs)
        mean = rng.normal(size=c)
        upper = mean + rng.normal(size=c) * 1.5 + (3.0 if trial == 0 else 0.0)
        label, loading, resid, patterns = _factor_cover(cov[None])
        assert label[0] == 0 and set(patterns[0]) <= set(pairs)
        np.testing.assert_allclose(resid[0] + np.outer(loading[0], loading[0]), cov,
                                   atol=1e-13)
        off = ~np.eye(c, dtype=bool)
        for j, k in patterns[0]:
            off[j, k] = off[k, j] = False
        assert np.all(resid[0][off] == pytest.approx(0, abs=1e-12))
        p = float(factor_normal_cdf(upper, mean, loading[0], resid[0], patterns[0]))
        ref = _reference(upper, mean, cov)
        # Genz's QMC (five or more) is good to ~1e-6 at a million points (~1e-9 at 1e8,
        # checked by hand: the factor rule is the closer one)
        assert p == pytest.approx(ref, abs=1e-12 if c <= 4 else 2e-6,
                                  rel=1e-9 if c <= 4 else 1e-5)


@pytest.mark.parametrize("c, pairs", [(3, ()), (4, ()), (5, ()), (5, ((3, 4),))])
def test_repeats_equal_in_every_number_are_one_cdf_to_a_power(c, pairs):
    """Singletons equal at every point (a suppressed TSH on several days, same limit and
    time) are computed once and raised to their count: the same mass as the general CDFs
    and adaptive quadrature, over a grid where some points differ between them."""
    rng = np.random.default_rng(c + 7 * len(pairs))
    reps = c - 2 * len(pairs) - 1         # singletons 0..reps-1 equal, one more different
    lam = np.r_[np.full(reps, 0.8), rng.normal(size=c - reps)]
    cov = np.diag(np.r_[np.full(reps, 0.3), rng.uniform(0.1, 1, c - reps)]) + np.outer(lam, lam)
    for j, k in pairs:
        cov[j, k] = cov[k, j] = cov[j, k] + 0.2
    label, loading, resid, patterns = _factor_cover(cov[None])
    assert label[0] == 0 and set(patterns[0]) == set(pairs)
    grid = 5
    mean = np.tile(np.r_[np.full(reps, 0.2), rng.normal(size=c - reps)], (grid, 1))
    upper = np.tile(np.r_[np.full(reps, -0.5), rng.normal(size=c - reps)], (grid, 1))
    upper[:, :reps] += np.linspace(-2, 2, grid)[:, None]      # equal within each point
    load = np.broadcast_to(loading[0], (grid, c)).copy()
    load[:, :reps] = loading[0][0]                             # bit for bit equal
    res = np.broadcast_to(resid[0], (grid, c, c)).copy()
    res[:, range(reps), range(reps)] = resid[0][0, 0]
    p = factor_normal_cdf(upper, mean, load, res, patterns[0])
    distinct, power = exact._equal_columns(np.stack([upper, load]), list(range(reps)))
    assert distinct == [0] and power == [reps]
    for g in range(grid):
        full = res[g] + np.outer(load[g], load[g])
        assert p[g] == pytest.approx(_reference(upper[g], mean[g], full), abs=1e-12 if c <= 4
                                     else 2e-6, rel=1e-9 if c <= 4 else 1e-5)
    if not pairs:
        sd = np.sqrt(np.diagonal(res, axis1=1, axis2=2))
        for g in range(grid):
            def f(z, g=g):
                return norm.pdf(z) * np.prod(norm.cdf((upper[g] - mean[g] - load[g] * z) / sd[g]))
            ref = integrate.quad(f, -12, 12, epsabs=0, epsrel=1e-12, limit=2000)[0]
            assert p[g] == pytest.approx(ref, rel=1e-9)


def test_factor_rule_in_the_far_tail_against_adaptive_quadrature():
    """Masses far below 1e-30, where the trivariate rule's range can miss them: the integral
    over the factor by adaptive quadrature with the steps as break points."""
    rng = np.random.default_rng(4)
    for _ in range(8):
        c = 3 + rng.integers(3)
        lam = rng.normal(size=c)
        uniq = rng.uniform(0.001, 0.01, c)
        mean = rng.normal(size=c)
        upper = mean + rng.normal(size=c) * 3 - 2
        cov = np.diag(uniq) + np.outer(lam, lam)
        label, loading, resid, patterns = _factor_cover(cov[None])
        assert label[0] == 0 and patterns[0] == ()
        p = float(factor_normal_cdf(upper, mean, loading[0], resid[0]))

        def f(z, upper=upper, mean=mean, lam=lam, uniq=uniq):
            return norm.pdf(z) * np.prod(norm.cdf((upper - mean - lam * z) / np.sqrt(uniq)))

        steps = sorted(np.clip((upper - mean) / lam, -9, 9))
        ref = integrate.quad(f, -9, 9, points=steps, epsabs=0, epsrel=1e-12, limit=2000)[0]
        assert p == pytest.approx(ref, rel=1e-8, abs=1e-300)


@pytest.mark.parametrize("c, pairs, reps", [(3, (), 1), (4, (), 3), (5, (), 4), (4, ((2, 3),), 1),
                                            (5, ((3, 4),), 2), (6, ((0, 1), (4, 5)), 1)])
def test_flat_pieces_and_pieces_beyond_a_step_change_no_mass(monkeypatch, c, pairs, reps):
    """The shortcuts of the factor rule (a piece where every CDF is within 7e-16 of 1 from
    one midpoint; a piece beyond a step left out where its bound is negligible) against the
    same rule at every node of every piece, over limits from far below to far above the
    means, weak and strong loadings, repeats and pairs: within 1e-14 relative, tails
    below 1e-100 included (with pairs, within their CDF's absolute accuracy)."""
    rng = np.random.default_rng(100 * c + 10 * len(pairs) + reps)
    grid = 400
    loading = rng.normal(size=(grid, c)) * rng.uniform(0.05, 3, size=(grid, 1))
    var = rng.uniform(0.01, 1, size=(grid, c))
    var[::7] *= 1e-3                                            # some steps very sharp
    resid = np.zeros((grid, c, c))
    for j, k in pairs:
        resid[:, j, k] = resid[:, k, j] = np.sqrt(var[:, j] * var[:, k]) * rng.uniform(-0.9, 0.9, grid)
    mean = rng.normal(size=(grid, c))
    upper = mean + rng.uniform(-14, 8, size=(grid, c)) * np.sqrt(var + loading**2)
    for x in (loading, var, mean, upper):                       # repeats: equal columns
        x[:, :reps] = x[:, :1]
    resid[:, range(c), range(c)] = var
    args = (upper, mean, loading, resid, pairs)
    fast = factor_normal_cdf(*args)
    monkeypatch.setattr(exact, "FLAT_LIMIT", np.inf)            # every piece at its nodes
    full = factor_normal_cdf(*args)
    assert np.all(np.isfinite(fast)) and (full < 1e-100).any() and (full > 0.5).any()
    # a pair's bivariate CDF (Owen's T) is good to ~1e-17 absolute, not relative, in the far
    # tail: there the masses below that differ (both rules, by up to 1e-18)
    np.testing.assert_allclose(fast, full, rtol=1e-14, atol=1e-16 if pairs else 0)


def test_cover_finds_the_form_point_by_point_and_rejects_others():
    rng = np.random.default_rng(9)
    one = _factor_cov(rng, 4)
    grouped = _factor_cov(rng, 4, ((2, 3),))
    pairs_only = np.array([[1.0, 0.5, 0, 0], [0.5, 1.0, 0, 0], [0, 0, 2.0, -0.3],
                           [0, 0, -0.3, 1.0]])
    a = rng.normal(size=(4, 4))
    dense = a @ a.T + 0.1 * np.eye(4)
    label, loading, resid, patterns = _factor_cover(np.stack([one, grouped, pairs_only,
                                                              dense]))
    assert label[3] == -1
    assert [patterns[q] for q in label[:3]] == [(), ((2, 3),), ((0, 1), (2, 3))]
    for i in range(3):
        back = resid[i] + np.outer(loading[i], loading[i])
        np.testing.assert_allclose(back, [one, grouped, pairs_only][i], atol=1e-12)


def test_censored_mass_mixes_rules_over_a_grid_and_limits_on_either_side():
    """A grid whose points take different forms (one factor; factor and pair; no form, the
    four-dimensional CDF; two independent pairs, no factor) and results above and below their
    limits: each point equals the general rule."""
    rng = np.random.default_rng(3)
    pairs_only = np.array([[1.0, 0.5, 0, 0], [0.5, 1.0, 0, 0], [0, 0, 2.0, -0.3],
                           [0, 0, -0.3, 1.0]])
    covs = np.stack([_factor_cov(rng, 4), _factor_cov(rng, 4, ((1, 3),)),
                     (lambda a: a @ a.T + 0.2 * np.eye(4))(rng.normal(size=(4, 4))),
                     pairs_only])
    mu = rng.normal(size=(5, 4, 4))
    sign = np.array([-1.0, 1.0, -1.0, 1.0])
    lim = rng.normal(size=4)
    got = censored_log_mass(mu, covs, sign, lim)
    d = -sign
    for i in range(5):
        for j in range(4):
            ref = quadrivariate_normal_cdf(d * lim, d * mu[i, j], covs[j] * np.outer(d, d))
            assert got[i, j] == pytest.approx(np.log(ref), abs=1e-10)


def test_uncorrelated_groups_are_multiplied():
    rng = np.random.default_rng(5)
    a, b = _factor_cov(rng, 3)[:2, :2], _factor_cov(rng, 3)[:2, :2]
    cov = np.zeros((4, 4))
    cov[:2, :2], cov[2:, 2:] = a, b
    perm = [0, 2, 1, 3]                           # groups interleaved
    cov = cov[np.ix_(perm, perm)]
    mu = rng.normal(size=(6, 4))
    lim = rng.normal(size=4)
    sign = -np.ones(4)
    assert [list(g) for g in exact._independent_groups(cov)] == [[0, 2], [1, 3]]
    got = censored_log_mass(mu, cov, sign, lim)
    ref = np.log(quadrivariate_normal_cdf(lim, mu, cov))
    np.testing.assert_allclose(got, ref, atol=1e-12)
    # correlated at one grid point only: no split; an undefined (NaN) correlation links too
    grid = np.stack([cov, cov, cov])
    grid[1, 0, 1] = grid[1, 1, 0] = 0.1 * np.sqrt(cov[0, 0] * cov[1, 1])
    assert [list(g) for g in exact._independent_groups(grid)] == [[0, 1, 2, 3]]
    grid[1] = cov
    grid[2, 2, 3] = grid[2, 3, 2] = np.nan
    assert [list(g) for g in exact._independent_groups(grid)] == [[0, 1, 2, 3]]


@pytest.mark.parametrize("seed", range(40))
def test_independent_groups_are_the_correlation_graphs_components(seed):
    """The groups are the connected components scipy's graph routine finds, in the same
    order (by each group's first result), on random sparse correlation patterns."""
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(seed)
    c = int(rng.integers(3, 9))
    grid = np.tile(np.eye(c), (3, 1, 1)) * rng.uniform(0.5, 2.0, size=(3, 1, c))
    for _ in range(int(rng.integers(0, c + 2))):
        i, j = rng.choice(c, 2, replace=False)
        g = int(rng.integers(3))                 # linked at one grid point is linked
        grid[g, i, j] = grid[g, j, i] = 0.3 * np.sqrt(grid[g, i, i] * grid[g, j, j])
    linked = np.any(np.abs(grid) > 0, axis=0)
    n, label = connected_components(linked, directed=False)
    want = [list(np.flatnonzero(label == k)) for k in range(n)]
    assert [list(g) for g in exact._independent_groups(grid)] == want


def _without_shortcuts(monkeypatch):
    monkeypatch.setattr(exact, "_independent_groups", lambda ccc: [np.arange(ccc.shape[-1])])
    monkeypatch.setattr(exact, "_factor_cover", lambda ccc: (
        np.full(ccc.shape[0], -1), None, None, []))


def _hyperthyroid(tsh_repeats: int, ft4_high: bool) -> dict:
    case = yaml.safe_load((EXAMPLES / "hyperthyroidism_overt_01.yaml").read_text())
    m = case["measurements"]
    extra = [dict(copy.deepcopy(m[0]), day=float(d)) for d in (14, 42, 90, 120)[:tsh_repeats]]
    if ft4_high:
        m[1]["value"] = ">40"
        extra.append(dict(copy.deepcopy(m[1]), day=14.0))
    case["measurements"] = m + extra
    return case


@pytest.mark.parametrize("tsh_repeats, ft4_high", [(3, False), (1, True)])
def test_engine_with_and_without_the_factor_rule(monkeypatch, tsh_repeats, ft4_high):
    """Four suppressed TSH results (one factor), or two TSH and two FT4 above its limit
    (a factor and a pair): the same posterior as with the four-dimensional CDF."""
    from neb_bayes.api import infer

    case = _hyperthyroid(tsh_repeats, ft4_high)
    fast = infer(case, uncertainty=False)
    with monkeypatch.context() as mp:
        _without_shortcuts(mp)
        slow = infer(case, uncertainty=False)
    np.testing.assert_allclose(fast.exact.condition_probs, slow.exact.condition_probs,
                               atol=1e-10)
    assert fast.exact.log_evidence == pytest.approx(slow.exact.log_evidence, abs=1e-9)
    # repeated suppressed TSH is more evidence of overt hyperthyroidism, not less
    single = infer(yaml.safe_load((EXAMPLES / "hyperthyroidism_overt_01.yaml").read_text()),
                   uncertainty=False)
    k = list(fast.model.conditions).index("hyperthyroidism_overt")
    assert fast.exact.condition_probs[k] > 0.9
    if not ft4_high:
        assert fast.exact.condition_probs[k] >= single.exact.condition_probs[k] - 1e-9


def test_draws_with_and_without_the_factor_rule(monkeypatch):
    from neb_bayes.api import _draws_for, resolve_priors
    from neb_bayes.case import read_case
    from neb_bayes.evidence import build_evidence
    from neb_bayes.inference.draws import probabilities_over_draws
    from neb_bayes.model.compiled import view_for_sex

    case = read_case(_hyperthyroid(1, True))
    ps = resolve_priors(None)
    model = view_for_sex(ps.model, case.patient.sex)
    ev = build_evidence(model, case)
    draws = _draws_for(ps, case.patient.sex).subset(np.arange(8))
    fast = probabilities_over_draws(model, draws, ev, single=False)
    with monkeypatch.context() as mp:
        _without_shortcuts(mp)
        slow = probabilities_over_draws(model, draws, ev, single=False)
    np.testing.assert_allclose(fast, slow, atol=1e-9)
