"""The variable-elimination Op of the PyMC formulation: value and hand-written gradient."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

pytensor = pytest.importorskip("pytensor")

from neb_bayes.inference.pymc_model import Elimination  # noqa: E402


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    sizes = [2, 3, 4, 2]
    n = 5
    const = [((0, 1), rng.random((n, 2, 3))), ((1, 2, 3), rng.random((n, 3, 4, 2)))]
    free_scopes = ((0,), (2, 3), (1, 3), (3,))
    vals = [rng.normal(size=(n,) + tuple(sizes[d] for d in s)) for s in free_scopes]
    vals[1][0, 1, 0] = -np.inf   # an impossible state
    return sizes, n, const, free_scopes, vals


def test_value_is_the_log_sum_over_the_joint():
    sizes, n, const, free_scopes, vals = _setup()
    op = Elimination(const, free_scopes, sizes, n)
    joint = np.zeros((n,) + tuple(sizes))
    for s, t in [(s, np.log(t)) for s, t in const] + list(zip(free_scopes, vals, strict=True)):
        joint = joint + t.reshape((n,) + tuple(sizes[d] if d in s else 1 for d in range(4)))
    got = pytensor.function([], op(*[pytensor.tensor.as_tensor(v) for v in vals])[0])()
    np.testing.assert_allclose(got, logsumexp(joint.reshape(n, -1), axis=1), rtol=1e-13)
    # the derivative outputs are posterior marginals: they sum to one per person
    _, marg = op.value_and_marginals(vals)
    for m in marg:
        np.testing.assert_allclose(m.reshape(n, -1).sum(axis=1), 1.0, rtol=1e-12)


def test_gradient_by_finite_differences():
    sizes, n, const, free_scopes, vals = _setup(1)
    vals[1][0, 1, 0] = 0.3    # verify_grad perturbs every entry: keep them finite
    op = Elimination(const, free_scopes, sizes, n)
    pytensor.gradient.verify_grad(lambda *xs: op(*xs)[0], vals, rng=np.random.default_rng(2))


def test_people_in_passes_give_the_same_value_and_marginals(monkeypatch):
    from neb_bayes.inference import pymc_model

    sizes, n, const, free_scopes, vals = _setup(3)
    whole = Elimination(const, free_scopes, sizes, n).value_and_marginals(vals)
    monkeypatch.setattr(pymc_model, "ELIMINATION_PEOPLE", 2)   # passes of 2, 2 and 1 people
    parts = Elimination(const, free_scopes, sizes, n).value_and_marginals(vals)
    np.testing.assert_allclose(parts[0], whole[0], rtol=1e-14)
    for a, b in zip(parts[1], whole[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-300)


def test_numba_compiled_graph_reaches_the_op_by_reference():
    """In a numba-compiled graph the Op is called through a process-local table
    (:mod:`neb_bayes.inference.python_ops`), not pickled into the compiled code with its
    constant tables (which made the first evaluation of a 2,000-person fit take ~3.8 GB):
    the same values as the Op's own evaluation."""
    from neb_bayes.inference import python_ops

    sizes, n, const, free_scopes, vals = _setup(4)
    op = Elimination(const, free_scopes, sizes, n)
    xs = [pytensor.tensor.tensor(shape=(None,) * v.ndim, dtype="float64") for v in vals]
    fn = pytensor.function(xs, op(*xs)[0], mode="NUMBA")
    np.testing.assert_allclose(fn(*vals), op.value_and_marginals(vals)[0], rtol=1e-14)
    assert any(entry[0] is op for entry in python_ops._CALLS.values())


@pytest.mark.parametrize("scope", [(2, 3), (3, 2)])
def test_a_factor_at_distinct_points_equals_its_whole_grid(scope):
    """A laboratory factor comes at its distinct grid points with their map (``expands``):
    the Op expands it a pass of people at a time, and its marginal output is the grid's
    summed per distinct point; the value and gradient are the whole grid's (the map in the
    C order of the factor's scope, whichever order its variables come in)."""
    sizes, n, const, free_scopes, vals = _setup(5)
    free_scopes = (free_scopes[0], scope) + free_scopes[2:]
    rng = np.random.default_rng(6)
    expand = np.array([2, 0, 1, 2, 0, 1, 1, 0])   # 4 x 2 grid points, 3 distinct
    distinct = rng.normal(size=(n, 3))
    vals[1] = distinct[:, expand].reshape((n,) + tuple(sizes[d] for d in scope))
    whole = Elimination(const, free_scopes, sizes, n).value_and_marginals(vals)
    op = Elimination(const, free_scopes, sizes, n, (None, expand, None, None))
    got = op.value_and_marginals([vals[0], distinct, vals[2], vals[3]])
    np.testing.assert_allclose(got[0], whole[0], rtol=1e-14)
    summed = np.stack([whole[1][1].reshape(n, -1)[:, expand == j].sum(axis=1) for j in range(3)],
                      axis=1)
    np.testing.assert_allclose(got[1][1], summed, rtol=1e-13)
    for i in (0, 2, 3):
        np.testing.assert_allclose(got[1][i], whole[1][i], rtol=1e-13, atol=1e-300)
    pytensor.gradient.verify_grad(lambda *xs: op(*xs)[0], [vals[0], distinct, vals[2], vals[3]],
                                  rng=np.random.default_rng(7))


def test_single_precision_tables_give_the_value_and_marginals_to_single_precision():
    """``table_dtype="float32"`` stores the tables and messages in single precision (each
    step's products and sums in double): each person's log sum within ~1e-6 of the exact
    one, and the marginals (the gradient) within ~1e-6 of theirs; a constant table's values
    below float32's normal range (1e-38 of its largest) are 0, not subnormal."""
    sizes, n, const, free_scopes, vals = _setup(8)
    const[0][1][2, 1, 0] = const[0][1][2].max() * np.exp(-95.0)   # subnormal in float32
    exact = Elimination(const, free_scopes, sizes, n).value_and_marginals(vals)
    op = Elimination(const, free_scopes, sizes, n, table_dtype="float32")
    tables = [t for p in op.const_passes for _, t in p]
    assert all(t.dtype == np.float32 for t in tables)
    assert not any(np.any((t != 0) & (t < np.finfo(np.float32).tiny)) for t in tables)
    single = op.value_and_marginals(vals)
    np.testing.assert_allclose(single[0], exact[0], rtol=0, atol=2e-6)
    assert not np.array_equal(single[0], exact[0])      # (single precision was used)
    for a, b in zip(single[1], exact[1], strict=True):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)
    with pytest.raises(ValueError, match="float64 or float32"):
        Elimination(const, free_scopes, sizes, n, table_dtype="float16")


def test_variables_of_constant_tables_only_are_summed_out_first_where_that_costs_less():
    """A variable only constant tables touch is summed out before the Op (once) unless the
    table that makes costs the Op more than the variable: a binary parent of four axes
    (the pituitary) joins them into one table of all their states (10^4 per person),
    where left to the Op each step joins two axes at most.  A level read by one table is
    summed out first.  The value is the same either way."""
    from neb_bayes.inference.pymc_model import _cheapest_upfront, _steps_cost, eliminate

    sizes = [2, 10, 10, 10, 10, 3]
    const = [(0,), (0, 1), (0, 2), (0, 3), (0, 4), (1, 5)]
    free = [(1,), (2,), (3,), (4,)]
    assert _cheapest_upfront(const, free, sizes, [5, 0]) == [5]
    # (the joined table of all four axes, against steps of at most 2 x 10 x 3)
    assert _steps_cost([{1, 2, 3, 4}, {1}, {2}, {3}, {4}], sizes) >= 10 ** 4
    rng = np.random.default_rng(9)
    n = 3
    tables = [(s, rng.normal(size=(n,) + tuple(sizes[d] for d in s))) for s in const]
    lab = [(s, rng.normal(size=(n,) + tuple(sizes[d] for d in s))) for s in free]
    joint = np.zeros((n,) + tuple(sizes))
    for s, t in tables + lab:
        joint = joint + t.reshape((n,) + tuple(sizes[d] if d in s else 1 for d in range(6)))
    want = logsumexp(joint.reshape(n, -1), axis=1)
    got = eliminate(tables + [(s, pytensor.tensor.as_tensor(t)) for s, t in lab], sizes, n)
    np.testing.assert_allclose(pytensor.function([], got)(), want, rtol=1e-13)
