"""A fit's single-precision tables (a prevalence fit's per-person tables, the elimination's
tables and messages in the others): the log-density and its gradient agree with the exact
(float64) formulation to single precision."""

from __future__ import annotations

import numpy as np
import pytest

from neb_bayes.fit import build_fit_model
from neb_bayes.inference.pymc_model import UnsupportedEvidence, cohort_loglik_value, prepare_cohort
from neb_bayes.model.compiled import load_model
from neb_bayes.model.params import literature_draws
from neb_bayes.simulate import simulate

MODEL = load_model()


def _cohort(n: int = 20):
    out = []
    for s in simulate(MODEL, n, seed=3, p_repeat=0.2, p_measure=0.5):
        try:
            prepare_cohort(MODEL, [s.case])
        except UnsupportedEvidence:
            continue
        out.append(s.case)
    return out


GROUPS = ["prevalence", "analyte-levels"]


@pytest.mark.parametrize("group", GROUPS)
def test_float32_log_evidence_is_float64_to_single_precision(group):
    cases = _cohort()
    sub = literature_draws(MODEL, 10).subset(slice(7, 8))
    exact = cohort_loglik_value(MODEL, cases, sub, free=(group,))
    single = cohort_loglik_value(MODEL, cases, sub, free=(group,), table_dtype="float32")
    np.testing.assert_allclose(single, exact, rtol=0, atol=1e-5)
    assert not np.array_equal(single, exact)    # (single precision was used)


@pytest.mark.parametrize("group", GROUPS)
def test_float32_gradient_is_float64_to_single_precision(group):
    cases = _cohort()
    grads = []
    for dtype in ("float64", "float32"):
        pm_model = build_fit_model(MODEL, cases, (group,), table_dtype=dtype)
        point = pm_model.initial_point()
        rng = np.random.default_rng(0)
        point = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in point.items()}
        grads.append(pm_model.compile_dlogp(jacobian=False, mode="FAST_COMPILE")(point))
    scale = np.abs(grads[0]).max()
    np.testing.assert_allclose(grads[1], grads[0], rtol=0, atol=1e-5 * scale)


def test_subnormal_values_are_flushed_and_nothing_else_changes():
    from neb_bayes.inference.pymc_model import flush_subnormal

    for dtype in (np.float32, np.float64):
        tiny = np.finfo(dtype).tiny
        x = np.array([1.0, tiny, tiny / 2, -tiny / 4, 0.0, 3e-30, tiny * 1.5], dtype=dtype)
        want = np.array([1.0, tiny, 0.0, 0.0, 0.0, 3e-30, tiny * 1.5], dtype=dtype)
        out = flush_subnormal(x.copy())
        np.testing.assert_array_equal(out, want)
        assert not np.any((out != 0) & (np.abs(out) < tiny))


def test_single_precision_tables_hold_no_subnormal_values(monkeypatch):
    # a cohort whose tables span more than float32's normal range, so that casting them makes
    # subnormal values (each evaluation reads them all: slow on x86)
    from neb_bayes.inference import pymc_model

    real = pymc_model.flush_subnormal
    seen = []

    def recording(x):
        tiny = np.finfo(x.dtype).tiny
        before = int(np.count_nonzero((x != 0) & (np.abs(x) < tiny)))
        out = real(x)
        seen.append((x.dtype, before, int(np.count_nonzero((out != 0) & (np.abs(out) < tiny)))))
        return out

    monkeypatch.setattr(pymc_model, "flush_subnormal", recording)
    # (40 people: with 20, whether one of them has such a table depends on the model's
    # tables of the day; 40 give ~1,500 subnormal values)
    build_fit_model(MODEL, _cohort(40), ("prevalence",), table_dtype="float32")
    single = [(b, a) for dt, b, a in seen if dt == np.float32]
    assert single
    assert sum(b for b, _ in single) > 0      # there were some (else the test shows nothing)
    assert all(a == 0 for _, a in single)

