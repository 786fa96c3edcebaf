"""Variable elimination in :mod:`neb_bayes.tensor`: the elimination order has the least total
work (checked against every permutation), and the contraction's marginals and masked
probability equal those of the joint tensor whatever the order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neb_bayes import tensor


def _random_scopes(rng, n_vars: int, n_factors: int) -> list[frozenset]:
    scopes = [frozenset({v}) for v in range(n_vars)]
    for _ in range(n_factors):
        k = int(rng.integers(2, min(4, n_vars) + 1))
        scopes.append(frozenset(rng.choice(n_vars, size=k, replace=False).tolist()))
    return scopes


def _work(scopes, sizes, order) -> int:
    live = [set(s) for s in scopes]
    total = 0
    for v in order:
        union = set().union(*(s for s in live if v in s)) or {v}
        total += int(np.prod([sizes[u] for u in union]))
        live = [s for s in live if v not in s] + [union - {v}]
    return total


@pytest.mark.parametrize("seed", range(12))
def test_optimal_order_has_the_least_total_work_of_all_orders(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 7))
    sizes = {v: int(rng.integers(2, 8)) for v in range(n)}
    scopes = _random_scopes(rng, n, int(rng.integers(2, 6)))
    order = tensor._optimal_order(scopes, sizes)
    assert sorted(order) == list(range(n))
    best = min(_work(scopes, sizes, p) for p in itertools.permutations(range(n)))
    assert _work(scopes, sizes, order) == best
    assert _work(scopes, sizes, order) <= _work(scopes, sizes, tensor._greedy_order(scopes, sizes))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("exact_max", [0, 12])
@pytest.mark.parametrize("compiled", [True, False])
def test_contraction_equals_the_joint_tensor_with_either_order(seed, exact_max, compiled,
                                                                monkeypatch):
    """On the compiled loops and on numpy, not only on whichever the test process picks
    (the compiled ones where numba is already loaded)."""
    monkeypatch.setattr(tensor, "use_compiled", lambda: compiled)
    monkeypatch.setattr(tensor, "EXACT_ORDER_MAX", exact_max)
    monkeypatch.setattr(tensor, "_ORDERS", {})
    rng = np.random.default_rng(100 + seed)
    n, batch = 5, 3
    shape = tuple(int(x) for x in rng.integers(2, 5, size=n))
    scopes = _random_scopes(rng, n, 4)
    parts = []
    for sc in scopes:
        s = [batch] + [shape[v] if v in sc else 1 for v in range(n)]
        parts.append(rng.normal(scale=2.0, size=s))
    pot_shape = [batch] + [shape[v] if v in (0, 2) else 1 for v in range(n)]
    potentials = [rng.uniform(0.01, 1.0, size=pot_shape)]
    masks = [(rng.uniform(size=shape[v]) < 0.6).astype(float) for v in range(n)]
    for m in masks:
        m[0] = 1.0
    marg, masked = tensor.contract_marginals(parts, masks, potentials=potentials)
    log_joint = sum(np.broadcast_to(p, (batch, *shape)) for p in parts)
    joint = np.exp(log_joint - log_joint.max(axis=tuple(range(1, n + 1)), keepdims=True))
    joint = joint * potentials[0]
    joint /= joint.sum(axis=tuple(range(1, n + 1)), keepdims=True)
    for v in range(n):
        ref = joint.sum(axis=tuple(a + 1 for a in range(n) if a != v))
        np.testing.assert_allclose(marg[v], ref, rtol=1e-12, atol=1e-14)
    inside = joint
    for v in range(n):
        inside = inside * masks[v].reshape((1,) + tuple(shape[v] if a == v else 1
                                                         for a in range(n)))
    np.testing.assert_allclose(masked, inside.sum(axis=tuple(range(1, n + 1))),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("single", [False, True])
def test_masked_probability_by_one_sum_or_by_elimination_where_z_is_tiny(single, monkeypatch):
    """The probability that every axis is in its mask is one sum of products over the masked
    states where they are few, and by elimination (which rescales each message) for a
    batch entry whose Z is below exp(-600), entry by entry: it equals the joint tensor's (in
    log space) for every entry, an entry's value does not depend on the others, and the
    entries with a tiny Z get the elimination's value bit for bit."""
    from scipy.special import logsumexp

    parts, masks, potentials = _problem(3, batch=6, scale=2.0)
    shape = np.broadcast_shapes(*(p.shape for p in parts))
    # entries 1 and 4: two factors (on axes 0 and 2, and 0 and 3: summed into different
    # hosts, (0, 1, 2) and (0, 1, 3, 4)) that disagree by 650 nats at every state
    a = np.zeros((6, shape[1], 1, shape[3], 1, 1))
    b = np.zeros((6, shape[1], 1, 1, shape[4], 1))
    a[[1, 4], 1:] = -650.0
    b[[1, 4], :1] = -650.0
    parts = [*parts, a, b]
    batches = []                      # the batch sizes the eliminations see
    elimination = tensor._Elimination

    def spy(tables, *args):
        batches.append(max(t.shape[-1] for t in tables))
        return elimination(tables, *args)

    monkeypatch.setattr(tensor, "_Elimination", spy)
    _, masked = tensor.contract_marginals(parts, masks, potentials=potentials, single=single)
    # the upward pass of the whole batch, then the masked states of entries 1 and 4 alone
    # (with ``single`` those two entries are redone in double precision first)
    assert batches[-1] == 2 and 6 in batches
    log_joint = (sum(np.broadcast_to(p, shape) for p in parts)
                 + np.log(np.broadcast_to(potentials[0], shape)))
    inside = log_joint.copy()
    for v, m in enumerate(masks):
        inside[(slice(None),) * (v + 1) + (m == 0,)] = -np.inf
    axes = tuple(range(1, len(shape)))
    ref = np.exp(logsumexp(inside, axis=axes) - logsumexp(log_joint, axis=axes))
    np.testing.assert_allclose(masked, ref, rtol=1e-5 if single else 1e-10)
    assert ref[[1, 4]].min() > 1e-6
    alone, alone_masked = tensor.contract_marginals(
        [p[[0, 2]] for p in parts], masks, potentials=[p[[0, 2]] for p in potentials],
        single=single)
    np.testing.assert_array_equal(masked[[0, 2]], alone_masked)
    monkeypatch.setattr(tensor, "MASKED_DIRECT_MAX", 0)        # elimination for every entry
    _, by_elimination = tensor.contract_marginals(parts, masks, potentials=potentials,
                                                  single=single)
    np.testing.assert_array_equal(masked[[1, 4]], by_elimination[[1, 4]])
    np.testing.assert_allclose(masked, by_elimination, rtol=1e-6 if single else 1e-12)


def _problem(seed: int, batch: int, scale: float):
    rng = np.random.default_rng(200 + seed)
    n = 5
    shape = tuple(int(x) for x in rng.integers(2, 5, size=n))
    scopes = _random_scopes(rng, n, 4)
    parts = [rng.normal(scale=scale, size=[batch] + [shape[v] if v in sc else 1 for v in range(n)])
             for sc in scopes]
    pot_shape = [batch] + [shape[v] if v in (1, 3) else 1 for v in range(n)]
    potentials = [rng.uniform(1e-4, 1e-2, size=pot_shape)]
    masks = [(rng.uniform(size=shape[v]) < 0.6).astype(float) for v in range(n)]
    for m in masks:
        m[0] = 1.0
    return parts, masks, potentials


@pytest.mark.parametrize("seed", range(6))
def test_single_precision_is_within_1e6_of_double(seed):
    """float32 tables and products (float64 sums): every marginal and the masked probability
    within 1e-6 of the double-precision contraction, and not equal to it (float32 is used)."""
    parts, masks, potentials = _problem(seed, batch=64, scale=3.0)
    marg, masked = tensor.contract_marginals(parts, masks, potentials=potentials)
    marg32, masked32 = tensor.contract_marginals(parts, masks, potentials=potentials, single=True)
    diff = max(np.abs(masked32 - masked).max(),
               *(np.abs(a - b).max() for a, b in zip(marg32, marg, strict=True)))
    assert 0 < diff < 1e-6


def test_single_precision_recomputes_conflicting_entries_in_double():
    """Batch entries whose factors conflict by hundreds of nats (float32 would round every
    product to 0) are recomputed in double precision, entry by entry: they equal the double
    result, and each entry's result does not depend on the other entries of the batch."""
    parts, masks, potentials = _problem(1, batch=8, scale=2.0)
    # entries 2 and 5: a log-factor 200 nats down at state 0 of axis 1, where a potential puts
    # all but 1e-100 of its weight
    n1 = potentials[0].shape[2]
    conflict = np.zeros((8, 1, n1, 1, 1, 1))
    conflict[[2, 5], 0, 0] = -200.0
    weight = np.ones((8, 1, n1, 1, 1, 1))
    weight[[2, 5], 0, 1:] = 1e-100
    parts = [*parts, conflict]
    potentials = [potentials[0] * weight]
    marg, masked = tensor.contract_marginals(parts, masks, potentials=potentials)
    marg32, masked32 = tensor.contract_marginals(parts, masks, potentials=potentials, single=True)
    assert np.isfinite(masked32).all()
    for a, b in zip(marg32, marg, strict=True):
        np.testing.assert_array_equal(a[[2, 5]], b[[2, 5]])
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(masked32[[2, 5]], masked[[2, 5]])
    # the other entries (float32) are the same computed in a batch of their own
    rest = [0, 1, 3, 4, 6, 7]
    alone, alone_masked = tensor.contract_marginals(
        [p[rest] for p in parts], masks, potentials=[p[rest] for p in potentials], single=True)
    for a, b in zip(marg32, alone, strict=True):
        np.testing.assert_array_equal(a[rest], b)
    np.testing.assert_array_equal(masked32[rest], alone_masked)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_message_is_its_float64_sums_scaled_to_a_maximum_of_exactly_1(dtype, monkeypatch):
    """The compiled message (product, sum, maximum and scaling in one call, no float64 message
    stored) equals the float64 sums divided by their maximum, within two roundings to the
    tables' type; each batch entry's largest value is exactly 1, and an entry whose sums are
    all 0 stays 0 with maximum 0."""
    rng = np.random.default_rng(7)
    a = rng.uniform(0.0, 1.0, size=(3, 4, 1, 16)).astype(dtype)
    b = rng.uniform(0.0, 1.0, size=(1, 4, 5, 16)).astype(dtype)
    a[..., 3] = 0.0                   # batch entry 3: every product 0
    b[..., 5] *= 1e-20                # batch entry 5: tiny values, the same relative precision
    monkeypatch.setattr(tensor, "use_compiled", lambda: True)
    msg, mx = tensor.scaled_message([a, b], [0, 2], dtype)
    assert msg.dtype == dtype and msg.shape == (3, 1, 5, 16)
    sums = (a.astype(np.float64) * b).sum(axis=1, keepdims=True)        # products in float64
    top = sums.max(axis=(0, 1, 2))
    np.testing.assert_allclose(mx.reshape(-1), top, rtol=1e-12, atol=0)
    assert mx.reshape(-1)[3] == 0.0 and not msg[..., 3].any()
    live = np.arange(16) != 3
    assert (msg.max(axis=(0, 1, 2))[live] == 1.0).all()
    ref = sums[..., live] / top[live]
    np.testing.assert_allclose(msg[..., live], ref, rtol=2.5 * np.finfo(dtype).eps, atol=0)
    monkeypatch.setattr(tensor, "use_compiled", lambda: False)
    msg_np, mx_np = tensor.scaled_message([a, b], [0, 2], dtype)
    np.testing.assert_allclose(msg, msg_np, rtol=2.5 * np.finfo(dtype).eps, atol=0)
    np.testing.assert_allclose(mx, mx_np, rtol=1e-12, atol=0)


@pytest.mark.parametrize("shapes", [
    [(3, 4, 16)],                                       # one table
    [(3, 4, 16), (1, 4, 16)],                           # two: product added in one loop
    [(3, 1, 16), (1, 4, 16), (3, 4, 16)],               # three
    [(3, 4, 16), (1, 4, 16), (3, 1, 16), (3, 4, 16)],   # four
    [(3, 4, 16), (1, 4, 16), (3, 1, 16), (3, 4, 16), (1, 1, 16)],   # five: a product buffer
    [(3, 4, 16), (1, 4, 1), (3, 1, 16)],                # one table without the batch
    [(3, 1, 16), (1, 4, 16)] * 9,                       # more than the largest tuple size
])
def test_compiled_product_sums_multiply_in_table_order_and_add_in_state_order(shapes, monkeypatch):
    """Each output value is the tables' product in their order, multiplied in float64 (in
    single precision, products of small values would fall below its normal range: slow
    subnormal arithmetic), added in float64 over the state points in C order: exactly, for
    every number of tables and with a table broadcast over the batch (the compiled loop
    has shortcuts for tables over the batch; they must round alike)."""
    rng = np.random.default_rng(11)
    tables = [rng.uniform(0.1, 1.0, size=sh).astype(np.float32) for sh in shapes]
    monkeypatch.setattr(tensor, "use_compiled", lambda: True)
    got = tensor.product_sum(tables, [0])
    full = np.broadcast_shapes(*(t.shape for t in tables))
    ref = np.zeros((full[0], 1, full[-1]))
    for i in range(full[0]):
        for j in range(full[1]):            # state points of output i, in C order
            prod = np.broadcast_to(tables[0][i % tables[0].shape[0], j % tables[0].shape[1]],
                                   full[-1:]).astype(np.float64)
            for t in tables[1:]:
                prod = prod * t[i % t.shape[0], j % t.shape[1]]
            ref[i, 0] += prod
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_scaled_product_sum_is_the_float64_sums_times_the_scale_rounded_once(dtype, compiled,
                                                                             monkeypatch):
    """With a scale per batch entry and an output type (the elimination's backward pass
    writes a message's gradient so), the product sum is the float64 sums times the scale,
    rounded once to the type: what multiplying and casting the unscaled float64 sums gives,
    bit for bit."""
    rng = np.random.default_rng(5)
    a = rng.uniform(0.0, 1.0, size=(3, 4, 1, 16)).astype(np.float32)
    b = rng.uniform(0.0, 1.0, size=(1, 4, 5, 16)).astype(np.float32)
    scale = 1.0 / rng.uniform(0.5, 3e3, size=16)
    monkeypatch.setattr(tensor, "use_compiled", lambda: compiled)
    got = tensor.product_sum([a, b], [0, 2], scale, dtype)
    plain = tensor.product_sum([a, b], [0, 2])
    assert got.dtype == dtype and got.shape == plain.shape == (3, 1, 5, 16)
    assert plain.dtype == np.float64
    np.testing.assert_array_equal(got, (plain * scale).astype(dtype))
    assert not np.array_equal(got, plain.astype(dtype))     # (the scale was applied)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_compiled_loops_are_compiled_per_tuple_size_not_per_number_of_tables(dtype,
                                                                                 monkeypatch):
    """Numba compiles a loop once per type of its tables' tuple (~1.3 s each in every new
    process until its disk cache has it), and a tuple's type includes its length: the tables
    are padded to one of a few lengths (:data:`neb_bayes.tensor.TUPLE_SIZES`), and a padded
    product equals numpy's."""
    from neb_bayes import tensor_kernels

    rng = np.random.default_rng(3)
    monkeypatch.setattr(tensor, "use_compiled", lambda: True)
    for n in range(1, 11):
        tables = [rng.uniform(0.1, 1.0, size=(2, 3, 8)).astype(dtype) for _ in range(n)]
        got = tensor.product_sum(tables, [0])
        msg, mx = tensor.scaled_message(tables, [1], dtype)
        ref = np.prod(np.stack(tables).astype(np.float64), axis=0)
        np.testing.assert_allclose(got, ref.sum(axis=1, keepdims=True), rtol=1e-13)
        np.testing.assert_allclose(msg * mx, ref.sum(axis=0, keepdims=True),
                                   rtol=3 * np.finfo(dtype).eps)
    for kernel in (tensor_kernels.product_sum, tensor_kernels.message):
        lengths = {len(sig[0]) for sig in kernel.signatures
                   if str(sig[0].dtype.dtype) == np.dtype(dtype).name}
        # (more tables than the largest size go as they are: another test passes 18)
        assert all(n in tensor.TUPLE_SIZES or n > max(tensor.TUPLE_SIZES) for n in lengths), (
            kernel, lengths)


def test_distinct_rows_number_rows_by_first_appearance():
    """Equal rows share a number, numbers follow first appearance, ``first`` points at each
    class's first row: the same classes as numpy's row-wise unique, for float and int rows,
    and rows without columns are one class."""
    rng = np.random.default_rng(5)
    for dtype in (float, np.int64):
        rows = rng.integers(0, 3, size=(200, 4)).astype(dtype)
        first, inverse = tensor.distinct_rows(rows)
        np.testing.assert_array_equal(rows[first][inverse], rows)
        assert (np.diff(first) > 0).all() and first[0] == 0
        assert np.array_equal(np.unique(inverse, return_index=True)[1], first)
        assert first.size == np.unique(rows, axis=0).shape[0]
    first, inverse = tensor.distinct_rows(np.zeros((5, 0)))
    assert first.tolist() == [0] and inverse.tolist() == [0] * 5


@pytest.mark.parametrize("compiled", [True, False])
def test_products_below_single_precision_range_are_kept(compiled, monkeypatch):
    """Single-precision tables whose products fall below float32's range (1e-25 x 1e-25):
    the products are formed in float64, so the sums and a message's maxima are those of the
    exact values (in float32 each product would be 0 or subnormal: lost, and slow).  (The
    message's values themselves are written in float32 before scaling, so here they are 0:
    a message whose maximum is below ``SINGLE_LOW`` is recomputed in float64 by
    ``contract_marginals``.)"""
    monkeypatch.setattr(tensor, "use_compiled", lambda: compiled)
    rng = np.random.default_rng(3)
    a = (rng.uniform(0.5, 1.0, size=(3, 4, 1, 8)) * 1e-25).astype(np.float32)
    b = (rng.uniform(0.5, 1.0, size=(1, 4, 5, 8)) * 1e-25).astype(np.float32)
    exact = (a.astype(np.float64) * b.astype(np.float64)).sum(axis=1, keepdims=True)
    assert (exact < 1e-45).all()                 # below even float32's subnormal range
    got = tensor.product_sum([a, b], [0, 2])
    np.testing.assert_allclose(got, exact, rtol=1e-15, atol=0)
    msg, mx = tensor.scaled_message([a, b], [0, 2], np.float32)
    np.testing.assert_allclose(mx.reshape(-1), exact.max(axis=(0, 1, 2)), rtol=1e-15, atol=0)
    assert (mx < tensor.SINGLE_LOW).all()


def test_move_axis_is_numpys_moveaxis_for_one_axis():
    """The cached-permutation view is ``np.moveaxis``'s, for every source and destination
    (negative ones too) of arrays of 1 to 5 dimensions."""
    rng = np.random.default_rng(3)
    for ndim in range(1, 6):
        x = rng.normal(size=tuple(range(2, 2 + ndim)))
        for src in range(-ndim, ndim):
            for dst in range(-ndim, ndim):
                got = tensor.move_axis(x, src, dst)
                want = np.moveaxis(x, src, dst)
                assert got.shape == want.shape and got.strides == want.strides
                assert np.shares_memory(got, x)
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("make", [
    lambda t: t,                                         # C-contiguous
    lambda t: t[:, ::2],                                 # a strided state dimension
    lambda t: np.broadcast_to(t[:, :1], t.shape),        # broadcast (stride 0)
    lambda t: t[::-1],                                   # negative strides: copied
    lambda t: np.asfortranarray(t),                      # batch not contiguous: copied
    lambda t: t[:, :, :1],                               # one batch entry
    lambda t: t[:, :1].copy(),                           # C-contiguous, a dimension of 1
])
def test_a_flat_run_and_its_steps_address_every_element(make):
    """``_flat_run`` gives a flat run and per-dimension steps (0 along dimensions of size
    1) such that element ``i`` of the table is ``run[sum(i_d * step_d)]``, whatever its
    layout (the compiled loops read tables through them)."""
    t = make(np.arange(3 * 6 * 5, dtype=np.float32).reshape(3, 6, 5))
    run, steps = tensor._flat_run(t)
    assert run.ndim == 1 and len(steps) == t.ndim
    assert all(st == 0 for st, n in zip(steps, t.shape, strict=True) if n == 1)
    for i in np.ndindex(t.shape):
        assert run[sum(a * s for a, s in zip(i, steps, strict=True))] == t[i]


@pytest.mark.parametrize("owned", [False, True])
def test_merge_nested_puts_every_table_in_a_root_that_contains_it(owned):
    """Each table lands in a root whose dimensions contain its own; the roots' sum (and
    product) broadcast to the whole grid equals the tables' own; tables of the same shapes
    again (the plan is kept by shapes) give the same roots; an owned root is summed into in
    place, another never."""
    rng = np.random.default_rng(8)
    shapes = [(3, 1, 1, 4), (3, 5, 1, 4), (1, 5, 1, 4), (1, 1, 2, 4), (1, 5, 2, 4),
              (1, 1, 1, 4), (1, 5, 2, 1)]
    for combine, total in ((np.add, np.sum), (np.multiply, np.prod)):
        for _ in range(2):
            tables = [rng.uniform(0.5, 1.5, size=sh) for sh in shapes]
            keep = [t.copy() for t in tables]
            roots = tensor.merge_nested(tables, combine, [owned] * len(tables))
            full = np.broadcast_shapes(*shapes)
            want = total([np.broadcast_to(t, full) for t in keep], axis=0)
            got = total([np.broadcast_to(r, full) for r in roots], axis=0)
            np.testing.assert_allclose(got, want, rtol=1e-13)
            # two roots, smaller first: neither contains the other
            assert [r.shape for r in roots] == [(1, 5, 2, 4), (3, 5, 1, 4)]
            assert (roots[0] is tables[4]) == owned and (roots[1] is tables[1]) == owned
            if not owned:
                for t, k in zip(tables, keep, strict=True):
                    np.testing.assert_array_equal(t, k)
