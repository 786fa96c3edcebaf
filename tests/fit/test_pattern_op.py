"""The Op of a prevalence fit's log-density (``PatternLogLik``): per-person values, their sum
and its gradient, against plain matrix-vector products and finite differences, in numpy and
inside numba-compiled graphs."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from neb_bayes.inference.pymc_model import PatternLogLik


def _data(dtype, seed=0):
    rng = np.random.default_rng(seed)
    starts = np.array([0, 0, 37, 100, 101], dtype=np.int64)   # an empty pattern, partial blocks
    tables = rng.random((101, 24)).astype(dtype)
    joint = rng.random((4, 24)).astype(dtype)
    return joint, tables, starts


def _reference(joint, tables, starts):
    rows = np.repeat(np.arange(joint.shape[0]), np.diff(starts))
    v = np.einsum("ps,ps->p", tables.astype(float), joint[rows].astype(float))
    grad = np.zeros(joint.shape)
    np.add.at(grad, rows, tables.astype(float) / v[:, None])
    return np.log(v), grad


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "NUMBA"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_values_and_gradient_equal_plain_products(mode, dtype, monkeypatch):
    from neb_bayes.inference import pymc_model

    monkeypatch.setattr(pymc_model, "PATTERN_BLOCK", 16)   # the Python path reads it per call
    joint, tables, starts = _data(dtype)
    x = pt.matrix(dtype=dtype)
    logv, total, _ = PatternLogLik()(x, pt.as_tensor(tables), pt.as_tensor(starts))
    f = pytensor.function([x], [logv, total[0], pytensor.grad(total[0], x)], mode=mode)
    got_v, got_t, got_g = f(joint)
    ref_v, ref_g = _reference(joint, tables, starts)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(got_v, ref_v, rtol=tol)
    np.testing.assert_allclose(got_t, ref_v.sum(), rtol=tol)
    np.testing.assert_allclose(got_g, ref_g, rtol=tol)


def test_gradient_matches_finite_differences():
    joint, tables, starts = _data("float64", seed=1)
    op = PatternLogLik()
    verify_grad(lambda j: op(j, pt.as_tensor(tables), pt.as_tensor(starts))[1][0], [joint],
                rng=np.random.default_rng(2), mode="FAST_COMPILE")


def test_per_person_values_have_no_gradient():
    joint, tables, starts = _data("float64")
    x = pt.dmatrix()
    logv = PatternLogLik()(x, pt.as_tensor(tables), pt.as_tensor(starts))[0]
    with pytest.raises(NotImplementedError, match="per-person"):
        pytensor.grad(logv.sum(), x)
