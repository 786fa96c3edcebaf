"""The Op of a prevalence fit's log-density (``PatternLogLik``): per-person values, their sum
and its gradient, against plain matrix-vector products and finite differences, in numpy and
inside numba-compiled graphs; each person's row cut to the axes it varies along
(``pattern_layout``) changes nothing but the order of the sums."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from neb_bayes.inference.pymc_model import PatternLogLik, pattern_layout

SIZES = (2, 3, 4)


def _data(dtype, seed=0, constant=False):
    """Four patterns (one without people, partial blocks); with ``constant``, people whose
    rows do not vary along some axes, in every combination."""
    rng = np.random.default_rng(seed)
    counts = [0, 37, 63, 1]
    pattern = rng.permutation(np.repeat(np.arange(4), counts))
    tables = rng.random((pattern.size,) + SIZES)
    if constant:
        for p in range(pattern.size):
            for d in range(len(SIZES)):
                if (p >> d) & 1:       # constant along axis d: its first slice everywhere
                    first = np.take(tables[p], [0], axis=d)
                    tables[p] = np.broadcast_to(first, SIZES)
    joint = rng.random((4, int(np.prod(SIZES))))
    return joint.astype(dtype), tables.reshape(pattern.size, -1).astype(dtype), pattern


def _reference(joint, tables, pattern):
    v = np.einsum("ps,ps->p", tables.astype(float), joint[pattern].astype(float))
    grad = np.zeros(joint.shape)
    np.add.at(grad, pattern, tables.astype(float) / v[:, None])
    return np.log(v), grad


def _op_outputs(joint, tables, pattern, mode):
    order, layout = pattern_layout(tables, pattern, SIZES)
    x = pt.matrix(dtype=joint.dtype)
    logv, total, _ = PatternLogLik()(x, *(pt.as_tensor(a) for a in layout))
    f = pytensor.function([x], [logv, total[0], pytensor.grad(total[0], x)], mode=mode)
    got_v, got_t, got_g = f(joint)
    back = np.empty_like(order)
    back[order] = np.arange(order.size)
    return got_v[back], got_t, got_g, layout


@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("mode", ["FAST_COMPILE", "NUMBA"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_values_and_gradient_equal_plain_products(mode, dtype, constant, monkeypatch):
    from neb_bayes.inference import pymc_model

    monkeypatch.setattr(pymc_model, "PATTERN_BLOCK", 16)   # the Python path reads it per call
    joint, tables, pattern = _data(dtype, constant=constant)
    got_v, got_t, got_g, _ = _op_outputs(joint, tables, pattern, mode)
    ref_v, ref_g = _reference(joint, tables, pattern)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(got_v, ref_v, rtol=tol)
    np.testing.assert_allclose(got_t, ref_v.sum(), rtol=tol)
    np.testing.assert_allclose(got_g, ref_g, rtol=tol)


@pytest.mark.parametrize("block", [7, 4096])   # people per pass over the tables
def test_rows_are_cut_to_the_axes_they_vary_along(block):
    joint, tables, pattern = _data("float64", constant=True)
    order, (data, groups, maps) = pattern_layout(tables, pattern, SIZES, block=block)
    # person p is constant along the axes of the set bits of p: 8 cuts, rows of 24 / 2^...
    widths = {int(np.prod([n for d, n in enumerate(SIZES) if not (p >> d) & 1]))
              for p in range(pattern.size)}
    assert {int(w) for w in groups[:, 4]} == widths
    assert data.size == sum(int(np.prod([n for d, n in enumerate(SIZES) if not (p >> d) & 1]))
                            for p in range(pattern.size))
    assert groups[:, 3].sum() == pattern.size
    # people by pattern, then by the axes they vary along; each group one pattern
    assert (np.diff(pattern[order]) >= 0).all()
    for u, m, at, n, w in groups:
        rows = data[at:at + n * w].reshape(n, w)
        first = int(groups[:, 3][(groups[:, 2] < at)].sum())
        people = order[first:first + n]
        assert (pattern[people] == u).all()
        np.testing.assert_array_equal(rows[:, maps[m]], tables[people])   # exact cut
    # the cut rows are what is read: less than the full table
    assert data.size < tables.size


def test_gradient_matches_finite_differences():
    joint, tables, pattern = _data("float64", seed=1, constant=True)
    _, layout = pattern_layout(tables, pattern, SIZES)
    op = PatternLogLik()
    verify_grad(lambda j: op(j, *(pt.as_tensor(a) for a in layout))[1][0], [joint],
                rng=np.random.default_rng(2), mode="FAST_COMPILE")


def test_per_person_values_have_no_gradient():
    joint, tables, pattern = _data("float64")
    _, layout = pattern_layout(tables, pattern, SIZES)
    x = pt.dmatrix()
    logv = PatternLogLik()(x, *(pt.as_tensor(a) for a in layout))[0]
    with pytest.raises(NotImplementedError, match="per-person"):
        pytensor.grad(logv.sum(), x)
