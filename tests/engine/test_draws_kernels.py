"""The draws path's full-grid block kernels equal the dense computation they replace.

With parameter draws, :func:`gaussian_block_loglik` gets the mean in two parts (a part over the
draws and the own axis, ``other`` over the remaining dependency axes) and the covariance as
noise + a rank-K latent part.  Over the full grid it then works in a (stack, other-axes)
layout, with a dense C^-1 per stack entry when the other axes have many points and the
Woodbury form when they have few; with ``mixture`` it sums the gross-error mixture as it goes.
Each is held here to the plain dense computation (full mean, full covariance, one Cholesky
per grid point) on random inputs, including an own axis in the middle of the grid and noise
that varies with the own axis.
"""

from __future__ import annotations

import numpy as np
import pytest

from neb_bayes.inference.exact import gaussian_block_loglik, gross_mixture

D = 4


def _problem(seed: int, grid: tuple[int, ...], own_pos: int, m: int, k: int,
             noise_varies: bool):
    rng = np.random.default_rng(seed)
    g = len(grid)
    own_shape = [1] * g
    own_shape[own_pos] = grid[own_pos]
    other_shape = list(grid)
    other_shape[own_pos] = 1
    own_mean = rng.normal(size=(D, *own_shape, m))
    other = rng.normal(scale=0.5, size=(*other_shape, m))
    a = rng.normal(size=(m, m))
    base = a @ a.T / m + np.eye(m) * 0.3
    if noise_varies:
        scale = 1.0 + rng.uniform(size=grid[own_pos])
        noise = (base[None] * scale[:, None, None]).reshape(tuple(own_shape) + (m, m))
    else:
        noise = base.reshape((1,) * g + (m, m))
    loadings = rng.normal(size=(m, k))
    b = rng.normal(size=(D, *own_shape, k, k))
    lat_cov = b @ np.swapaxes(b, -1, -2) + np.eye(k) * 0.2
    y = rng.normal(size=m)
    return y, own_mean, other, noise, loadings, lat_cov


def _dense(y, own_mean, other, noise, loadings, lat_cov):
    """log p(y) and log p(y_j | y_-j) over the full grid from the full mean and covariance."""
    mean = own_mean + other
    cov = noise + np.einsum("ik,...kl,jl->...ij", loadings, lat_cov, loadings)
    cov = np.broadcast_to(cov, mean.shape[:-1] + cov.shape[-2:])
    return gaussian_block_loglik(y, np.zeros(y.size, int), mean, cov, loo=True)


# (grid, own axis position): few points on the other axes (Woodbury form) and many (dense
# C^-1), the own axis first, in the middle and last
SHAPES = [((3,), 0), ((3, 2), 0), ((2, 5), 1), ((3, 4, 2), 1), ((6, 7, 4), 2), ((5, 3, 6), 0)]


@pytest.mark.parametrize("grid,own_pos", SHAPES)
@pytest.mark.parametrize("m,k", [(1, 1), (5, 2), (9, 3)])
@pytest.mark.parametrize("noise_varies", [False, True])
def test_expanded_likelihood_and_leave_one_out_terms_equal_the_dense_form(grid, own_pos, m, k,
                                                                          noise_varies):
    y, own_mean, other, noise, loadings, lat_cov = _problem(
        len(grid) * 100 + own_pos * 10 + m, grid, own_pos, m, k, noise_varies)
    ref_ll, ref_cond = _dense(y, own_mean, other, noise, loadings, lat_cov)
    ll, cond = gaussian_block_loglik(y, np.zeros(m, int), own_mean, noise, other=other,
                                     low_rank=(loadings, lat_cov), loo=True)
    full = (D, *grid)
    np.testing.assert_allclose(np.broadcast_to(ll, full), ref_ll, rtol=1e-11, atol=1e-11)
    assert len(cond) == m
    for c, rc in zip(cond, ref_cond, strict=True):
        np.testing.assert_allclose(np.broadcast_to(c, full), rc, rtol=1e-10, atol=1e-10)
    # without the leave-one-out terms: the same likelihood
    alone = gaussian_block_loglik(y, np.zeros(m, int), own_mean, noise, other=other,
                                  low_rank=(loadings, lat_cov))
    np.testing.assert_allclose(np.broadcast_to(alone, full), ref_ll, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("grid,own_pos", SHAPES)
@pytest.mark.parametrize("m,k", [(1, 1), (5, 2), (9, 3)])
@pytest.mark.parametrize("compiled", [False, True])
def test_fused_gross_error_mixture_equals_the_leave_one_out_terms(grid, own_pos, m, k,
                                                                  compiled, monkeypatch):
    """The mixture summed as the likelihood is computed (numpy, or one compiled pass with
    C^-1 dense or in its low-rank form) equals the dense likelihood and its leave-one-out
    terms mixed afterwards."""
    from neb_bayes.inference import exact

    monkeypatch.setattr(exact, "use_compiled", lambda: compiled)
    y, own_mean, other, noise, loadings, lat_cov = _problem(
        7 + len(grid) + own_pos + m, grid, own_pos, m, k, own_pos == 1)
    rng = np.random.default_rng(m)
    log_q = rng.normal(loc=-2.0, size=m)
    eps = 0.003
    ref_ll, ref_cond = _dense(y, own_mean, other, noise, loadings, lat_cov)
    ref = ref_ll + gross_mixture([lq - c for lq, c in zip(log_q, ref_cond, strict=True)], eps)
    got = gaussian_block_loglik(y, np.zeros(m, int), own_mean, noise, other=other,
                                low_rank=(loadings, lat_cov), mixture=(log_q, eps))
    np.testing.assert_allclose(np.broadcast_to(got, (D, *grid)), ref, rtol=1e-11, atol=1e-11)
    if compiled:
        # the draws last in memory (the layout the contraction reads), the grid in C order
        assert got.shape == (D, *grid)
        assert np.moveaxis(got, 0, -1).flags.c_contiguous
    # a term that would overflow: no answer, the caller takes the shifted form
    huge = log_q.copy()
    huge[0] = 800.0
    assert gaussian_block_loglik(y, np.zeros(m, int), own_mean, noise, other=other,
                                 low_rank=(loadings, lat_cov), mixture=(huge, eps)) is None


@pytest.mark.parametrize("still", [(), (0, 2), (0, 1, 2, 3)])
def test_mixture_kernel_gives_each_entry_the_same_numbers_whatever_else_is_in_the_call(still):
    """The mixture kernel's loops run over blocks of stack entries (draws x own states): an
    entry's numbers do not depend on the block it falls in or on the other entries (a
    report's draws may be cut into shares), and they equal the by-point formula, also where
    the other axes leave some results (``still``: their rows of the other axes' mean part
    are 0, as for most results of a block; the kernel skips them) or all of them as they
    are."""
    from neb_bayes.inference.draws_kernels import STACK_BLOCK, mixture_loglik

    rng = np.random.default_rng(12)
    m, n_st, n_e = 4, 2 * STACK_BLOCK + 37, 5
    x = rng.normal(size=(n_st, m, m + 3))
    prec = x @ np.swapaxes(x, -1, -2) / (m + 3) + 0.2 * np.eye(m)       # C^-1 per entry
    q = np.ascontiguousarray(np.moveaxis(prec, 0, -1))
    pr = rng.normal(size=(m, n_st))
    c0 = rng.normal(size=n_st)
    et = rng.normal(size=(m, n_e))
    et[list(still)] = 0.0
    base = rng.normal(loc=-2.0, size=m)
    eps = 0.003
    out = np.empty((n_st, n_e))
    assert mixture_loglik(c0, pr, q, et, base, eps, out)
    for sl in (slice(0, 1), slice(5, STACK_BLOCK + 9), slice(STACK_BLOCK - 3, n_st)):
        part = np.empty((sl.stop - sl.start, n_e))
        mixture_loglik(c0[sl], np.ascontiguousarray(pr[:, sl]), np.ascontiguousarray(q[..., sl]),
                       et, base, eps, part)
        np.testing.assert_array_equal(part, out[sl])
    # the formula, point by point
    for n in (0, STACK_BLOCK, n_st - 1):
        for g in range(n_e):
            e, c = et[:, g], prec[n]
            u = pr[:, n] - c @ e
            terms = np.exp(base + u**2 / (2 * np.diag(c)) - 0.5 * np.log(np.diag(c)))
            want = (c0[n] + pr[:, n] @ e - 0.5 * e @ c @ e
                    + np.log(1 - m * eps + eps * terms.sum()))
            np.testing.assert_allclose(out[n, g], want, rtol=1e-12)


@pytest.mark.parametrize("independent", [False, True])
def test_mixture_block_with_one_point_of_the_other_axes_equals_the_general_loop_and_formula(
        independent):
    """Where the other axes have one point (most blocks: they depend on their own axis
    only), :func:`mixture_block` takes the residuals about it and the Woodbury parts
    (:func:`mixture_point`) instead of a dense C^-1 per entry: the same numbers as the
    general loop (the point given twice) and as the dense formula, with noise that varies
    along the stack and more entries than one block, dense or with the zeros of results on
    independent noise (``independent``: only results 0 and 1 share theirs, the kernel skips
    the zero entries of N^-1); a term that would overflow gives no answer either way."""
    from neb_bayes.inference.draws_kernels import STACK_BLOCK, mixture_block

    rng = np.random.default_rng(21)
    # (more entries per noise part than one block holds, the parts of unequal length)
    m, k, n_x, n_st = 5, 3, 3, 3 * (STACK_BLOCK + 40) + 2
    load = rng.normal(size=(m, k))
    n_inv = []
    for _ in range(n_x):
        x = rng.normal(size=(m, m + 2))
        prec = x @ x.T / (m + 2) + 0.3 * np.eye(m)
        if independent:
            shared = np.zeros((m, m), bool)
            shared[:2, :2] = True
            prec = np.where(shared | np.eye(m, dtype=bool), prec, 0.0)
        n_inv.append(prec)
    n_inv = np.array(n_inv)                                              # (X, m, m) = N^-1
    noise = np.linalg.inv(n_inv)
    b = n_inv @ load                                                     # N^-1 L
    x = rng.normal(size=(n_st, k, k + 2))
    lat = x @ np.swapaxes(x, -1, -2) / (k + 2) + 0.1 * np.eye(k)         # (N, K, K)
    r = rng.normal(size=(n_st, m))
    e = rng.normal(scale=0.5, size=m)
    base = rng.normal(loc=-2.0, size=m)
    eps = 0.003
    # (the latent part by its precision and log|S|^(1/2), as the draws keep it)
    args = (np.ascontiguousarray(r.T), np.ascontiguousarray(np.moveaxis(np.linalg.inv(lat), 0, -1)),
            0.5 * np.linalg.slogdet(lat)[1], np.ascontiguousarray(np.moveaxis(n_inv, 0, -1)),
            0.5 * np.linalg.slogdet(noise)[1],
            np.ascontiguousarray(np.moveaxis(np.swapaxes(load, 0, 1) @ b, 0, -1)),
            np.ascontiguousarray(np.moveaxis(np.swapaxes(b, -1, -2), 0, -1)))
    # (one leading entry: the results in stack order, the points of the other axes last)
    def pos(n_e):
        return np.arange(n_st * n_e).reshape(n_st, n_e)

    one = np.empty((n_st, 1))
    assert mixture_block(*args, e[:, None], base, eps, pos(1), one.reshape(-1))
    two = np.empty((n_st, 2))
    assert mixture_block(*args, np.repeat(e[:, None], 2, axis=1), base, eps, pos(2),
                         two.reshape(-1))
    np.testing.assert_allclose(one[:, 0], two[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(two[:, 0], two[:, 1])
    for n in (0, STACK_BLOCK + 1, n_x * (STACK_BLOCK + 5) + 1, n_st - 1):
        c = noise[n % n_x] + load @ lat[n] @ load.T
        prec = np.linalg.inv(c)
        d = r[n] - e
        u = prec @ d
        cj = np.diag(prec)
        want = (-0.5 * d @ u - 0.5 * np.linalg.slogdet(c)[1] - 0.5 * m * np.log(2 * np.pi)
                + np.log(1 - m * eps + eps * np.exp(base + u**2 / (2 * cj)
                                                    - 0.5 * np.log(cj)).sum()))
        np.testing.assert_allclose(one[n, 0], want, rtol=1e-11)
    huge = base.copy()
    huge[2] = 800.0
    assert not mixture_block(*args, e[:, None], huge, eps, pos(1), one.reshape(-1))
    assert not mixture_block(*args, np.repeat(e[:, None], 2, axis=1), huge, eps, pos(2),
                             two.reshape(-1))
    # an exponent u_j^2 / (2 c_j) above 700 gives no answer even where q(y_j) is small
    # enough for the term itself to be finite (exp is only evaluated up to its range)
    far = np.ascontiguousarray(args[0].copy())
    far[:, 7] += 1e4
    assert not mixture_block(far, *args[1:], e[:, None], base - 1e9, eps, pos(1),
                             one.reshape(-1))


def test_gross_mixture_without_a_shift_equals_the_shifted_form_and_survives_overflow():
    rng = np.random.default_rng(3)
    eps = 0.003

    def shifted(rs):
        mx = np.maximum(0.0, np.max(np.broadcast_arrays(*rs), axis=0))
        tot = np.exp(-mx) * (1 - len(rs) * eps)
        for r in rs:
            tot = tot + eps * np.exp(r - mx)
        return mx + np.log(tot)

    rs = [rng.normal(scale=5.0, size=(3, 4)), rng.normal(size=(3, 1)), np.array(-40.0)]
    np.testing.assert_allclose(gross_mixture(rs, eps), shifted(rs), rtol=1e-14, atol=1e-14)
    # layouts: transposed views keep their memory order and give the same values
    t = [np.ascontiguousarray(r.T).T if np.ndim(r) == 2 else r for r in rs]
    np.testing.assert_allclose(gross_mixture(t, eps), shifted(rs), rtol=1e-14, atol=1e-14)
    big = [np.array([1.0, 900.0, -5.0]), np.array([2.0, 3.0, 1000.0])]
    got = gross_mixture(big, eps)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, shifted(big), rtol=1e-14, atol=1e-14)


def _symptom_setup(leak_range=(0.01, 0.2)):
    from types import SimpleNamespace

    rng = np.random.default_rng(5)
    sizes, n_prop, n_sym = (2, 3, 4), 3, 5
    model = SimpleNamespace(axes=[SimpleNamespace(n_states=n) for n in sizes],
                            log_propensity_w=np.log(np.full(n_prop, 1 / n_prop)))
    leak = -rng.uniform(*leak_range, size=(D, n_prop, n_sym))
    cause = [-rng.uniform(0.0, 2.0, size=(D, n, n_sym)) for n in sizes]
    cause[0][..., [1, 3]] = 0.0                 # symptoms 1 and 3: caused by axes 1 and 2 only
    cause[2][..., 4] = 0.0                      # symptom 4: axes 0 and 1
    return model, sizes, leak, cause


def _noisy_or(sizes, leak, cause, present):
    """prod_y (1 - exp(leak_y + sum_a cause_a,y)) on the full grid (D, S0, S1, S2, P)."""
    total = 1.0
    for y in present:
        lq = leak[:, None, None, None, :, y]
        for a, n in enumerate(sizes):
            shape = [D, 1, 1, 1, 1]
            shape[1 + a] = n
            lq = lq + cause[a][..., y].reshape(shape)
        total = total * (1.0 - np.exp(lq))
    return total


@pytest.mark.parametrize("single", [False, True])
def test_present_symptom_tables_equal_the_noisy_or_formula(single, monkeypatch):
    """``symptom_level_factors``' present-symptom tables (one compiled pass per set of cause
    axes) multiply to prod_y (1 - exp(leak_y + sum_a cause_a,y)) over the cause axes, levels
    and draws, one table per set; ``single`` gives float32 tables (rounded once)."""
    from neb_bayes.inference.exact import symptom_level_factors

    monkeypatch.setenv("NEB_BAYES_COMPILED", "1")
    model, sizes, leak, cause = _symptom_setup()
    present = np.array([0, 1, 3, 4])
    _, pots = symptom_level_factors(model, present, np.array([2]), leak, tuple(cause),
                                    single=single)
    scopes = [frozenset(a for a in range(3) if p.shape[1 + a] > 1) for p in pots]
    assert sorted(map(sorted, scopes)) == [[0, 1], [0, 1, 2], [1, 2]]
    assert all(p.dtype == (np.float32 if single else np.float64) for p in pots)
    ref = _noisy_or(sizes, leak, cause, present)
    got = np.prod([np.broadcast_to(p, ref.shape).astype(float) for p in pots], axis=0)
    np.testing.assert_allclose(got, ref, rtol=1.2e-7 if single else 1e-13, atol=0)


def test_present_symptom_tables_too_small_for_float32_stay_double(monkeypatch):
    """Present-symptom probabilities below SINGLE_LOW (float32 could lose them) are kept in
    float64 even for a single-precision contraction."""
    from neb_bayes.inference.exact import symptom_level_factors

    monkeypatch.setenv("NEB_BAYES_COMPILED", "1")
    model, sizes, leak, cause = _symptom_setup(leak_range=(1e-9, 1e-8))
    for c in cause:
        c[...] = 0.0                                # present only by the leak: P ~ 1e-8 each
    present = np.array([0, 1, 2, 3, 4])
    _, pots = symptom_level_factors(model, present, np.array([], dtype=int), leak,
                                    tuple(cause), single=True)
    assert all(p.dtype == np.float64 for p in pots)
    ref = _noisy_or(sizes, leak, cause, present)       # ~1e-40: below float32's range
    got = np.prod([np.broadcast_to(p, ref.shape) for p in pots], axis=0)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


def test_vectorised_exponential_is_within_one_ulp():
    """The mixture kernel's exponential (Cody-Waite reduction, polynomial, exponent bits)
    equals ``np.exp`` within 2.3e-16 relative over its whole range, and clamps outside it."""
    from neb_bayes.inference.draws_kernels import EXP_MAX, EXP_MIN, exp_into

    rng = np.random.default_rng(9)
    x = np.concatenate([rng.uniform(-40, 40, 20_000), rng.uniform(EXP_MIN, EXP_MAX, 20_000),
                        [0.0, -0.0, 1e-300, np.log(2.0), -np.log(2.0) / 2, EXP_MIN, EXP_MAX]])
    out, work = np.empty_like(x), np.empty_like(x)
    exp_into(x, out, work)
    np.testing.assert_allclose(out, np.exp(x), rtol=2.3e-16, atol=0)
    edge = np.array([-1000.0, 1000.0])
    exp_into(edge, out[:2], work[:2])
    np.testing.assert_allclose(out[:2], np.exp([EXP_MIN, EXP_MAX]), rtol=2.3e-16, atol=0)


def test_vectorised_logarithm_is_within_one_ulp():
    """The mixture kernel's logarithm (exponent and mantissa from the bits, atanh series)
    equals ``np.log`` within one ulp over the positive normal numbers, exactly 0 at 1."""
    from neb_bayes.inference.draws_kernels import log_into

    rng = np.random.default_rng(10)
    x = np.concatenate([rng.uniform(0.5, 2.0, 20_000), np.exp(rng.uniform(-700, 700, 20_000)),
                        rng.uniform(0.9, 1e6, 20_000),
                        [1.0, 2.0, 0.5, np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 0.0),
                         1.0 + 2.2e-16, 1.0 - 1.1e-16, np.finfo(float).tiny, np.finfo(float).max]])
    out, work, expo = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    log_into(x, out, work, expo)
    ref = np.log(x)
    assert np.all(np.abs(out - ref) <= np.spacing(np.abs(ref)))
    assert out[x == 1.0][0] == 0.0


@pytest.mark.parametrize("k", [1, 2, 4])
def test_compiled_woodbury_stack_equals_the_numpy_one(k):
    """The compiled rank-K algebra (Cholesky factors, forward substitution, V'r) equals the
    stacked numpy operations it replaces, and gives C^-1 and log|C| of C = N + L S L'."""
    from neb_bayes.inference.draws_kernels import woodbury_stack
    from neb_bayes.inference.exact import _woodbury_stack

    rng = np.random.default_rng(11 + k)
    m, n_st = 5, 7
    noise = np.diag(rng.uniform(0.5, 2.0, m))
    load = rng.normal(size=(m, k))
    x = rng.normal(size=(n_st, k, k + 2))
    lat = x @ np.swapaxes(x, -1, -2) / (k + 2) + 0.1 * np.eye(k)        # (N, K, K)
    r = rng.normal(size=(n_st, m))
    n_inv = np.linalg.inv(noise)
    b = n_inv @ load
    a = load.T @ b
    stacked = (np.ascontiguousarray(np.moveaxis(lat, 0, -1)),
               np.ascontiguousarray(np.broadcast_to(a[..., None], (k, k, n_st))),
               np.ascontiguousarray(np.broadcast_to(b.T[..., None], (k, m, n_st))),
               np.ascontiguousarray(r.T))
    vt, t = np.empty((k, m, n_st)), np.empty((k, n_st))
    ld, qs, ps = np.empty(n_st), np.empty(n_st), np.empty((m, n_st))
    woodbury_stack(*stacked, vt, t, ld, qs, ps)
    ref = _woodbury_stack(*stacked)
    for got, want in zip((ld, qs, ps, vt), ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    for n in range(n_st):
        c = noise + load @ lat[n] @ load.T
        np.testing.assert_allclose(n_inv - vt[..., n].T @ vt[..., n], np.linalg.inv(c),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(0.5 * np.linalg.slogdet(noise)[1] + ld[n],
                                   0.5 * np.linalg.slogdet(c)[1], rtol=1e-12)
        np.testing.assert_allclose(qs[n], r[n] @ n_inv @ r[n] - r[n] @ np.linalg.inv(c) @ r[n],
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("grid,own_pos", [((4,), 0), ((1, 5), 1), ((3, 1, 1), 0)])
@pytest.mark.parametrize("m,k", [(2, 1), (6, 3)])
@pytest.mark.parametrize("cpos", [0, -1, 1])
@pytest.mark.parametrize("sign", [-1, 1])
def test_fused_mixture_with_one_censored_result_equals_the_leave_one_out_terms(
        grid, own_pos, m, k, cpos, sign):
    """A block with one censored result whose other axes have one point: the compiled
    passes (:func:`exact._fused_censored`) equal the dense likelihood with the censored
    result's mass, its leave-one-out terms and the mixture taken afterwards, with the
    censored result first, in the middle or last, below or above its limit, and noise that
    varies along the own axis or not."""
    from neb_bayes.inference import exact

    cpos = cpos % m
    y, own_mean, other, noise, loadings, lat_cov = _problem(
        31 + m + 10 * own_pos + cpos, grid, own_pos, m, k, len(grid) > 1)
    censor = np.zeros(m, int)
    censor[cpos] = sign
    mom = exact.BlockMoments(own_mean=own_mean, other_mean=other, noise=noise,
                             lat_cov=lat_cov, loadings=loadings, own_pos=own_pos)
    rng = np.random.default_rng(m + cpos)
    log_q = rng.normal(loc=-2.0, size=m)
    eps = 0.003
    got = exact._fused_censored(y, censor, mom, log_q, eps)
    mean = own_mean + other
    cov = np.broadcast_to(noise + np.einsum("ik,...kl,jl->...ij", loadings, lat_cov, loadings),
                          mean.shape[:-1] + (m, m))
    ref_ll, ref_loo = gaussian_block_loglik(y, censor, mean, cov, loo=True)
    ref = ref_ll + gross_mixture([lq - c for lq, c in zip(log_q, ref_loo, strict=True)], eps)
    assert got is not None and got.shape == (D, *grid)
    np.testing.assert_allclose(got, np.broadcast_to(ref, got.shape), rtol=1e-10, atol=1e-10)
    # the draws last in memory (the layout the contraction reads)
    assert np.moveaxis(got, 0, -1).flags.c_contiguous
    # a term that would overflow: no answer (the caller takes the numpy path)
    huge = log_q.copy()
    huge[(cpos + 1) % m] = 800.0
    assert exact._fused_censored(y, censor, mom, huge, eps) is None


def test_fused_censored_declines_what_it_does_not_cover():
    """Two censored results, none, or other axes with more than one point: no answer."""
    from neb_bayes.inference import exact

    y, own_mean, other, noise, loadings, lat_cov = _problem(5, (3, 2), 0, 4, 2, False)
    mom = exact.BlockMoments(own_mean=own_mean, other_mean=other, noise=noise,
                             lat_cov=lat_cov, loadings=loadings, own_pos=0)
    log_q = np.full(4, -2.0)
    assert exact._fused_censored(y, np.array([1, 0, 0, 0]), mom, log_q, 0.003) is None
    one_point = exact.BlockMoments(own_mean=own_mean, other_mean=other[:, :1], noise=noise,
                                   lat_cov=lat_cov, loadings=loadings, own_pos=0)
    assert exact._fused_censored(y, np.array([1, 0, 0, 0]), one_point, log_q, 0.003) is not None
    assert exact._fused_censored(y, np.array([1, 0, -1, 0]), one_point, log_q, 0.003) is None
    assert exact._fused_censored(y, np.zeros(4, int), one_point, log_q, 0.003) is None


@pytest.mark.parametrize("shape", [(1, 1), (4,), (3, 1), ()])
def test_compiled_noise_inverse_equals_lapacks(shape):
    """The draws path's kernels take N^-1 and log|N|^(1/2) of a block's noise from one
    compiled pass (``_inverse_logdet(..., compiled=True)``): equal to numpy's Cholesky-based
    ones, stacked or not, with the stack's shape kept."""
    from neb_bayes.inference.exact import _inverse_logdet

    rng = np.random.default_rng(8)
    for m in (1, 2, 6, 11):
        x = rng.normal(size=(*shape, m, m + 2))
        noise = x @ np.swapaxes(x, -1, -2) / (m + 2) + 0.05 * np.eye(m)
        got, want = _inverse_logdet(noise, True), _inverse_logdet(noise)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(want[1], 0.5 * np.linalg.slogdet(noise)[1], rtol=1e-12)


def test_own_mean_kernel_equals_the_matrix_product_and_sums():
    """A block's own-axis mean under every draw in one compiled pass equals the matrix
    product of the loadings with the latent means plus the medians and the state shifts;
    ``block_moments`` gives the same means with it as with numpy."""
    from neb_bayes.inference.draws_kernels import own_mean_into

    rng = np.random.default_rng(9)
    n, k, d, s = 5, 3, 7, 4
    load, mu = rng.normal(size=(n, k)), rng.normal(size=(d, s, k))
    base, shift = rng.normal(size=(d, n)), rng.normal(size=(s, n))
    out = np.empty((n, d, s))
    own_mean_into(load, mu, base, shift, out)
    want = np.einsum("ik,dsk->ids", load, mu) + base.T[:, :, None] + shift.T[:, None, :]
    np.testing.assert_allclose(out, want, rtol=1e-13, atol=1e-13)
