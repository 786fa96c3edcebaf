"""Equal-tailed intervals over parameter draws (:func:`neb_bayes.intervals.equal_tailed`):
numpy's quantiles bit for bit, whatever the draws."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neb_bayes.batch.table import interval_bounds
from neb_bayes.intervals import equal_tailed


def _reference(draws: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    q = (1.0 - prob) / 2.0
    lo, hi = np.quantile(draws, [q, 1.0 - q], axis=0)
    return lo, hi


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 999, 1000, 1001])
@pytest.mark.parametrize("prob", [0.0, 0.5, 0.9, 0.95, 0.99, 1.0])
def test_equals_numpy_quantile(n: int, prob: float) -> None:
    rng = np.random.default_rng(n)
    draws = rng.beta(0.3, 2.0, size=(n, 3, 62))
    draws[:, 1, ::3] = np.round(draws[:, 1, ::3], 2)          # ties
    draws[:, 2, 5] = 0.25                                      # a constant cell
    got, want = equal_tailed(draws, prob), _reference(draws, prob)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape == draws.shape[1:]
        assert np.array_equal(g, w)


def test_nan_cells_are_nan_and_others_unchanged() -> None:
    rng = np.random.default_rng(3)
    draws = rng.random((1000, 62))
    draws[17, 4] = np.nan
    draws[0, 60] = np.nan
    lo, hi = equal_tailed(draws, 0.9)
    want_lo, want_hi = _reference(draws, 0.9)
    assert np.isnan(lo[[4, 60]]).all() and np.isnan(hi[[4, 60]]).all()
    assert np.array_equal(lo, want_lo, equal_nan=True)
    assert np.array_equal(hi, want_hi, equal_nan=True)


def test_input_is_not_modified_and_other_float_types_agree() -> None:
    rng = np.random.default_rng(4)
    draws = rng.random((50, 2, 5))
    keep = draws.copy()
    equal_tailed(draws, 0.9)
    assert np.array_equal(draws, keep)
    single = draws.astype(np.float32)
    for g, w in zip(equal_tailed(single, 0.9), _reference(single, 0.9), strict=True):
        assert np.array_equal(g, w)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40),
                  elements=st.floats(0.0, 1.0)),
       st.floats(0.0, 1.0))
def test_property_equals_numpy(draws: np.ndarray, prob: float) -> None:
    for g, w in zip(equal_tailed(draws, prob), _reference(draws, prob), strict=True):
        assert np.array_equal(g, w)


def test_batch_bounds_and_report_intervals_use_it() -> None:
    rng = np.random.default_rng(5)
    draws = rng.random((200, 4, 9))
    probs = draws.mean(axis=0)
    lo, hi = interval_bounds(probs, draws, 0.8)
    assert np.array_equal(lo, _reference(draws, 0.8)[0])
    assert np.array_equal(hi, _reference(draws, 0.8)[1])
    # without draws (or one), the bounds are the probabilities
    assert interval_bounds(probs, None)[0] is probs
