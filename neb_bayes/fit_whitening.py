"""A fit's dense preconditioner: NUTS on coordinates whitened at the posterior's mode.

A fit's posterior over the population parameters is close to normal but correlated, more
so the larger the cohort: the correlation matrix of the analyte-level group's ``H^-1``
(``H`` the negative log density's Hessian at its mode) has a condition number of 12 at
1,000 simulated people and 32 at 10,000 (226 parameters; 2026-12-08).  NUTS with a
diagonal mass matrix (nutpie's, and PyMC's) then needs more leapfrog steps per draw
(11.7 at 1,000 people, 13.6-14.8 at 10,000), and every step is a log-density and gradient
of the whole cohort.  On the whitened coordinates below, one chain of 10,000 people took
10.9 steps per draw against 13.6 (the same seed, side by side; the effective draws per
draw about the same) and the default fit of 1,000 people 11 against 13
(docs/performance-history.md, 2026-12-08).

Neither sampler takes a dense mass matrix from outside, so the same thing is done by a
change of variables: the sampler's parameters ``x`` (the free variables in the sampler's
unconstrained space, flat, in the model's order) are written

    x = centre + L z,    L L' = H^-1,

``centre`` the mode found by L-BFGS, ``H`` by central differences of the gradient there
(its eigenvalues floored at the smallest prior precision, so a direction the mode did not
settle is scaled as the prior scales it).  The model that NUTS samples
(:func:`whitened_model`) has ``z`` as its one free variable and the original parameters
as deterministics (by their names and dims), so a trace, its diagnostics and the saved
prior set read as before (:func:`without_whitened`).  The map is affine: its Jacobian is
constant and the posterior is the same one; only its geometry changes for the sampler.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Z_NAME", "Whitening", "find_whitening", "whitened_model", "whitened_start",
           "without_whitened"]

#: the whitened coordinates' variable in the sampled model
Z_NAME = "whitened__"

#: the mode search's cap on L-BFGS iterations (each one or a few log-density and gradient
#: evaluations): the preconditioner needs the mode's neighbourhood, not its last digit
MODE_MAX_ITER = 250

#: the central differences' step, in units of each parameter's prior sd (the sampler's
#: space)
HESSIAN_STEP = 1e-3


@dataclass(frozen=True)
class Whitening:
    """``x = centre + factor @ z`` (:func:`find_whitening`); ``record``: how it was found,
    for a fit's provenance."""

    centre: np.ndarray
    factor: np.ndarray
    record: dict[str, Any]

    @property
    def inverse(self) -> np.ndarray:
        """``factor``'s inverse (``z = inverse @ (x - centre)``)."""
        return np.linalg.inv(self.factor)

    def to_z(self, x: np.ndarray) -> np.ndarray:
        """The whitened coordinates of a point ``x`` of the sampler's space."""
        return self.inverse @ (np.asarray(x, dtype=np.float64) - self.centre)

    def to_x(self, z: np.ndarray) -> np.ndarray:
        """The point of the sampler's space at whitened coordinates ``z`` (the last axis)."""
        return self.centre + np.asarray(z, dtype=np.float64) @ self.factor.T


def _logp_dlogp(pmodel) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """The model's log density and gradient at a flat point of the sampler's space."""
    fn = pmodel.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})

    def f(x: np.ndarray) -> tuple[float, np.ndarray]:
        lp, grad = fn(np.asarray(x, dtype=np.float64))
        return float(lp), np.asarray(grad, dtype=np.float64)

    return f


def find_whitening(pmodel, start: np.ndarray, prior_scale: np.ndarray, *,
                   max_iter: int = MODE_MAX_ITER) -> Whitening:
    """The mode of ``pmodel``'s log density from ``start`` (L-BFGS, at most ``max_iter``
    iterations), the Hessian there by central differences of the gradient (2 evaluations per
    parameter, steps of :data:`HESSIAN_STEP` ``x prior_scale``), and the whitening it gives.

    ``start`` and ``prior_scale`` (each parameter's prior sd) are flat vectors in the
    sampler's space, in the model's order of free variables.  Raises ``ValueError`` if the
    log density or its gradient is not finite at ``start``, at the mode or next to it."""
    from scipy import optimize

    f = _logp_dlogp(pmodel)
    start = np.asarray(start, dtype=np.float64)
    scale = np.asarray(prior_scale, dtype=np.float64)
    t0 = time.perf_counter()
    evals = 0

    def negative(x):
        nonlocal evals
        evals += 1
        lp, grad = f(x)
        if not np.isfinite(lp):       # (L-BFGS backs off from an infinite value)
            return np.inf, np.zeros_like(grad)
        return -lp, -grad

    lp0 = f(start)[0]
    if not np.isfinite(lp0):
        raise ValueError("the log density is not finite at the chains' centre")
    res = optimize.minimize(negative, start, jac=True, method="L-BFGS-B",
                            options={"maxiter": max_iter})
    centre = res.x
    lp_mode, grad = f(centre)
    if not np.isfinite(lp_mode) or not np.all(np.isfinite(grad)):
        raise ValueError("the log density is not finite at the mode found")
    mode_evals = evals + 2
    n = centre.size
    hess = np.empty((n, n))
    for i in range(n):
        step = HESSIAN_STEP * scale[i]
        e = np.zeros(n)
        e[i] = step
        hess[i] = (f(centre - e)[1] - f(centre + e)[1]) / (2.0 * step)
    if not np.all(np.isfinite(hess)):
        raise ValueError("the log density's gradient is not finite next to the mode found")
    hess = 0.5 * (hess + hess.T)
    vals, vecs = np.linalg.eigh(hess)
    floor = float(np.min(1.0 / scale ** 2))
    floored = int(np.sum(vals < floor))
    vals = np.maximum(vals, floor)
    factor = vecs / np.sqrt(vals)
    cov = (vecs / vals) @ vecs.T
    sd = np.sqrt(np.diag(cov))
    corr_eig = np.linalg.eigvalsh(cov / np.outer(sd, sd))
    record = {
        "method": "L-BFGS mode, Hessian by central differences of the gradient",
        "parameters": n,
        "mode_iterations": int(res.nit),
        "mode_converged": bool(res.success),
        "mode_log_density": round(lp_mode, 4),
        "start_log_density": round(lp0, 4),
        "mode_gradient_max": float(np.max(np.abs(grad))),
        "evaluations": mode_evals + 2 * n,
        "seconds": round(time.perf_counter() - t0, 2),
        "eigenvalues_floored": floored,
        "correlation_condition_number": round(float(corr_eig.max() / corr_eig.min()), 2),
    }
    return Whitening(centre=centre, factor=factor, record=record)


def whitened_model(pmodel, whitening: Whitening):
    """``pmodel`` over the whitened coordinates: one free variable (:data:`Z_NAME`, flat,
    improper flat prior), the original log density (its priors, transforms' Jacobians and
    potentials) at ``x = centre + factor @ z`` as a potential, and each original free
    variable as a deterministic of its name and dims.  (PyMC writes the graphs over one
    flat ``x``: ``join_nonshared_inputs``; the free variables in their own space:
    ``replace_rvs_by_values``.)"""
    import pymc as pm
    import pytensor.tensor as pt
    from pymc.pytensorf import join_nonshared_inputs
    from pytensor.graph.replace import graph_replace

    (logp, *values), flat = join_nonshared_inputs(
        pmodel.initial_point(), [pmodel.logp(), *pmodel.replace_rvs_by_values(pmodel.free_RVs)],
        pmodel.value_vars)
    with pm.Model(coords=pmodel.coords) as out:
        z = pm.Flat(Z_NAME, shape=whitening.centre.size)
        x = pt.as_tensor_variable(whitening.centre) + pt.dot(
            pt.as_tensor_variable(whitening.factor), z)
        logp, *values = graph_replace([logp, *values], {flat: x.astype(flat.dtype)},
                                      strict=False)
        pm.Potential("log_density", logp)
        for rv, value in zip(pmodel.free_RVs, values, strict=True):
            pm.Deterministic(rv.name, value, dims=pmodel.named_vars_to_dims.get(rv.name))
    return out


def whitened_start(start: Callable[[Any], np.ndarray],
                   whitening: Whitening) -> Callable[[Any], np.ndarray]:
    """A chain start function of the sampler's space (``seed -> x``, as
    :func:`neb_bayes.fit.start_function`) as one of the whitened coordinates."""

    def start_z(seed) -> np.ndarray:
        return whitening.to_z(start(seed))

    return start_z


def without_whitened(idata):
    """A trace of :func:`whitened_model` as a trace of the original model: its posterior
    without the whitened coordinates (the original variables are there already)."""
    import xarray as xr

    groups = {}
    for name in idata.children:
        ds = idata[name].to_dataset()
        if Z_NAME in ds.data_vars:
            ds = ds.drop_vars(Z_NAME)
            ds = ds.drop_dims([d for d in ds.dims if d.startswith(f"{Z_NAME}_dim")],
                              errors="ignore")
        groups[name] = ds
    out = xr.DataTree.from_dict(groups)
    out.attrs = dict(idata.attrs)
    return out
