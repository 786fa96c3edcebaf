"""The exact engine's laboratory factor in a fit with the analyte levels free
(:mod:`neb_bayes.inference.exact_lab_block`): its finite-difference gradient against the
compiled kernel's analytic one where both apply, and the whole fit model's gradient against
its log density where only it applies (two censored results on an axis)."""

from __future__ import annotations

import numpy as np
import pytest

pytensor = pytest.importorskip("pytensor")

from neb_bayes.inference.exact_lab_block import ExactLabBlock  # noqa: E402
from neb_bayes.inference.pymc_model import prepare_cohort  # noqa: E402
from neb_bayes.model.compiled import load_model  # noqa: E402
from neb_bayes.model.params import literature_draws  # noqa: E402
from neb_bayes.simulate import simulate  # noqa: E402

from .conftest import (  # noqa: E402
    covered,
    kernel_against_exact,
    treated_uncovered_case,
    uncovered_cases,
)

MODEL = load_model()


def test_gradient_equals_the_kernels_where_both_apply():
    """On people the information form covers, the exact engine's factor equals the kernel's
    and its finite-difference vector-Jacobian product equals the kernel's hand-written one
    (itself held to pytensor's automatic differentiation, ``test_lab_block.py``), for every
    axis, under a parameter draw that is not the prior set's values; a cotangent over the
    kernel's grid is summed over the axes the people's blocks do not depend on."""
    cases = covered(MODEL, [s.case for s in simulate(MODEL, 30, seed=3)])
    draws = literature_draws(MODEL, 10)
    rng = np.random.default_rng(0)
    checked = set()
    for g in prepare_cohort(MODEL, cases):
        if g.lat_shift:
            continue
        for ad in g.axes:
            a = ad.axis
            _, exact, (mean, sd, med), ct_exact, g_exact, g_kernel = kernel_against_exact(
                g, ad, draws, rng)
            if a not in checked:
                # the derivatives kept from the evaluation are those a pullback at other
                # parameters computes afresh (here: a block that has evaluated nothing)
                fresh = ExactLabBlock(g.model, a, g.evidences, ad.rows)
                fresh.people_values((mean + 0.1, sd, med), len(g.case_ids))
                for x, y in zip(fresh.gradient((mean, sd, med), ct_exact), g_exact,
                                strict=True):
                    np.testing.assert_array_equal(x, y)
            for x, y in zip(g_exact, [*g_kernel[:2], None], strict=True):
                if y is None:
                    x, y = x[ad.channels], g_kernel[2]
                    assert not np.delete(g_exact[2], ad.channels).any()
                np.testing.assert_allclose(x, y, rtol=0, atol=1e-7 * np.abs(y).max())
            checked.add(a)
    assert len(checked) == 5


@pytest.fixture(scope="module")
def fit_model():
    """An analyte-level fit's model of people beyond the information form (one of them
    treated: a latent shift) and a few within it: its value variables, a compiled function
    of its log density and gradient, and a point near the prior set's values.  In double
    precision throughout (``table_dtype="float64"``): a central difference with steps of
    1e-5 reads the log density to ~1e-11."""
    from neb_bayes.fit import build_fit_model

    cases = (uncovered_cases() + [treated_uncovered_case()]
             + covered(MODEL, [s.case for s in simulate(MODEL, 6, seed=4)]))
    groups = prepare_cohort(MODEL, cases)
    assert sum(len(p) for g in groups for p in g.exact.values()) == 4
    pmodel = build_fit_model(MODEL, cases, groups=("analyte-levels",), prepared=groups,
                             table_dtype="float64")
    value_vars = pmodel.value_vars
    logp = pmodel.logp()
    fn = pytensor.function(value_vars, [logp, *pytensor.grad(logp, value_vars)])
    ip = pmodel.initial_point()
    rng = np.random.default_rng(1)
    x0 = [ip[v.name] + 0.1 * rng.normal(size=np.shape(ip[v.name])) for v in value_vars]
    return value_vars, fn, x0


@pytest.mark.parametrize("stepped", ["lat_mean", "lat_sd", "log_median"])
def test_the_fit_models_gradient_is_the_derivative_of_its_log_density(fit_model, stepped):
    """The compiled model's gradient along a random direction of one parameter field equals
    the central difference of its log density (in the sampler's unconstrained space: every
    transform, the sex view's states, the elimination and the Op's wiring); a wrong sign or
    a parameter read from the wrong place moves it by far more."""
    value_vars, fn, x0 = fit_model
    rng = np.random.default_rng(2)
    out = fn(*x0)
    # a random direction of the field, each coordinate's sign the gradient's (so that the
    # slope is not small by chance)
    direction = [np.sign(gr) * rng.uniform(0.5, 1.5, size=np.shape(x))
                 if v.name.startswith(stepped) else np.zeros_like(x)
                 for v, x, gr in zip(value_vars, x0, out[1:], strict=True)]
    assert any(d.any() for d in direction), [v.name for v in value_vars]
    slope = sum(float(np.sum(gr * d)) for gr, d in zip(out[1:], direction, strict=True))
    h = 1e-5
    up = fn(*[x + h * d for x, d in zip(x0, direction, strict=True)])[0]
    down = fn(*[x - h * d for x, d in zip(x0, direction, strict=True)])[0]
    assert abs(slope) > 1.0
    assert slope == pytest.approx((up - down) / (2 * h), rel=1e-6)
