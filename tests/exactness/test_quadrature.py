"""Independent numerical check of the exact engine's posterior (quadrature over the latents).

The exact engine integrates the latents out in closed form (a Gaussian marginal likelihood per
block; normal, bivariate (Owen's T) and multivariate-normal (Genz QMC) CDFs for censored
results).  Here the same posterior is recomputed from the generative model as described,
using only the compiled model's tables, and never the engine's evidence blocks or
likelihood code: it starts from the :class:`Case`.

* For every combination of the states a measured axis depends on (its own state, the axes of
  its channels' effects and rhythm amplitudes), p(results | states) is the integral over the
  axis' latent vector z (K <= 4) of N(z; lat_mean[s], lat_cov[s]) times the product over
  channels of p(that channel's results | z, s).
* Given z, a channel's results are a small Gaussian vector (covariance tau^2 J + cvi^2
  [same day] + cva^2 I + diag(context noise), see below) whose density is computed directly;
  a censored result contributes the normal CDF of its conditional distribution given z and
  the channel's other results.
* In whitened latents w the log of prior x observed densities is a quadratic (checked at
  random points); its integral is done by tensor Gauss-Hermite quadrature centred on its mode
  and scaled by its (finite-difference) curvature.  The censored CDFs are affine in w: their
  expectation under that Gaussian is reduced to <= 2 orthonormal directions (QR) and done by
  adaptive quadrature (QUADPACK) and the trapezoid rule.  A censored limit far inside a wide
  latent spread is a sharp edge that plain Gauss-Hermite cannot resolve (errors ~1e-3 at
  order 25), hence this split.
* Everything is computed at two accuracies; the posteriors must agree within 1e-6.
* Gross errors (prior set ``gross_error``): at most one result per axis is wrong, each with
  probability eps, drawn from the channel's population mixture; p(block) is then the mixture
  (1 - n eps) I(all results) + eps sum_j q(y_j) I(all but j), every I a quadrature of its own
  (the engine instead uses the leave-one-out identity for observed results).
* The prior set's age trends (``age_effects``) are added to the expected log levels, and the
  symptoms' noisy-OR is summed over the person's symptom-propensity levels.
* Context effects, from the compiled tables (``context_shifts``, ``context_latents``,
  ``context_diurnal``) and the model's generative definition (``simulate.py`` draws exactly
  this), never from the engine's evidence blocks: with flag strengths s_f,

  - measurement shifts: every ``ContextShift`` of a result's channel whose flag is raised adds
    shift x s_f to that result's expected log level, and sqrt(v_i) x c to its value, where
    v_i is the sum of the rows' (extra_sd x s_f)^2 and c ~ N(0, 1) is the person's context
    variation in that channel: one draw shared by every result of the channel (repeats
    included), like the person-level term, so two results carry covariance sqrt(v_i v_j);
  - latent shifts (treated disease): z_a ~ N(lat_mean[s] + sum_f mean_shift_f[s] s_f,
    c[s]^2 lat_cov[s]) with c[s] = prod_f (1 + (sd_scale_f[s] - 1) s_f);
  - daily-rhythm changes: each ``ContextDiurnal`` of a channel's profile moves the clock hour
    the rhythm is read at by ``phase_shift`` (mod 24), multiplies the rhythm's amplitude by
    ``amplitude`` and adds ``extra_sd``^2 to v_i above (the model takes no
    strength here; the reference asserts strength 1);
  - treated disease causes fewer symptoms: every noisy-OR cause probability is multiplied by
    the ``context_symptoms`` factors of the raised flags (each to the flag's strength);
  - a gross error is drawn from the channel's population mixture moved by the result's
    context shift and age trend (the engine reads q on the result with both removed), without
    the extra noise.

  The flags, their strengths and any symptoms they imply are taken from the context
  recogniser (``read_context``: recognition is not under test).  Effects that depend on
  sampling times or assay methods are not implemented (biotin's decay after the last dose,
  ``levothyroxine_recent_dose``, ``unaffected_methods``), nor lab reference intervals: the
  reference asserts that its cases use none of them.

The prior tensor (not under test) is taken from ``log_prior`` (with the case's context
flags).  Every case is ambiguous (several states of its focus axis above 0.05 posterior), and
every axis marginal and condition probability must agree with the engine within 1e-4.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.special import log_ndtr, logsumexp, roots_hermite
from scipy.stats import multivariate_normal, norm

from neb_bayes.case.model import Case, Measurement, Medication, Patient, Symptoms
from neb_bayes.context import read_context
from neb_bayes.evidence import build_evidence
from neb_bayes.model.compiled import load_model
from neb_bayes.model.prior import log_prior

try:
    from neb_bayes.inference.exact import infer_exact
except ImportError:  # the engine's older module name
    from neb_bayes.infer.exact import infer_exact

MODEL = load_model()
TOL = 1e-4          # engine vs reference (absolute, probabilities)
CONV_TOL = 1e-6     # reference at two accuracies (absolute, probabilities)
AMBIGUOUS = 0.05
LOG_2PI = math.log(2.0 * math.pi)


SPECIMEN = {
    "tsh": "serum", "ft4": "serum", "ft3": "serum", "tt4": "serum", "cortisol": "serum",
    "acth": "plasma", "ufc": "urine_24h", "testosterone": "serum", "lh": "serum", "fsh": "serum",
    "prolactin": "serum", "glucose_fasting": "plasma", "hba1c": "whole_blood",
    "insulin_fasting": "serum", "shbg": "serum", "ferritin": "serum",
}


# --------------------------------------------------------------------------------------------
# the reference computation
@dataclass(frozen=True)
class _Result:
    channel: int
    y: float          # log value, or log limit when censored
    censor: int       # 0 observed, -1 below the limit, +1 above
    day: float
    hour: float | None  # clock hour the channel's daily rhythm is read at (context applied)
    shift: float = 0.0      # context measurement shift (log units)
    extra_var: float = 0.0  # v_i: variance of the context variation (shared in a channel)
    amp: float = 1.0        # context factor on the daily rhythm's amplitude


#: context flags whose effects depend on sampling times or assay methods (not implemented)
TIMED_FLAGS = frozenset({"biotin", "levothyroxine_recent_dose"})


@dataclass(frozen=True)
class _Context:
    """The case's context flags with their strengths, and the symptoms they imply."""

    flags: dict[str, float]
    extra_symptoms: frozenset[str] = frozenset()


NO_CONTEXT = _Context({})


def _context_of(case: Case) -> _Context:
    """Context flags as the recogniser reads them (recognition is not under test)."""
    reading = read_context(case)
    flags = dict(reading.flags)
    assert not TIMED_FLAGS & set(flags), f"reference handles no timed flags: {flags}"
    # the engine raises levothyroxine_recent_dose from the time of the last dose
    assert reading.details.get("levothyroxine", {}).get("last_dose_hour") is None
    assert all(0.0 < v <= 1.0 for v in flags.values()), flags
    return _Context(flags, frozenset(reading.extra_symptoms))


def _context_result(model, c: int, m: Measurement, ctx: _Context) -> tuple[float, float, float,
                                                                             float | None]:
    """(shift, extra variance, rhythm amplitude factor, clock hour of the rhythm) of a result."""
    shift, var = 0.0, 0.0
    for eff in model.context_shifts.get(c, ()):
        s = ctx.flags.get(eff.flag, 0.0)
        if s > 0.0:
            assert not (m.method and eff.unaffected_methods), "reference ignores assay methods"
            shift += eff.shift * s
            var += (eff.extra_sd * s) ** 2
    ch = model.channels[c]
    hour, amp = m.hour, 1.0
    if ch.diurnal is not None:
        for dm in model.context_diurnal:
            if dm.profile == ch.diurnal and dm.flag in ctx.flags:
                assert ctx.flags[dm.flag] == 1.0, "rhythm changes are all-or-nothing"
                hour = (hour + dm.phase_shift) % 24.0
                amp *= dm.amplitude
                var += dm.extra_sd**2
    return shift, var, amp, hour


def _results_by_axis(model, case: Case, ctx: _Context = NO_CONTEXT) -> dict[int, list[_Result]]:
    """The case's usable results, on the log scale, grouped by the axis their channel loads on."""
    out: dict[int, list[_Result]] = {}
    for m in case.measurements:
        c = model.channel_for(m.analyte, m.specimen)
        if c is None or not (m.value > 0 and math.isfinite(m.value)):
            continue
        assert m.reference_interval is None, "reference handles no lab reference intervals"
        ch = model.channels[c]
        assert ch.diurnal is None or m.hour is not None, "give the clock time of rhythmic results"
        code = {"none": 0, "left": -1, "right": 1}[m.censor]
        shift, var, amp, hour = _context_result(model, c, m, ctx)
        out.setdefault(ch.axis, []).append(
            _Result(c, math.log(m.value), code, m.day, hour, shift, var, amp))
    return out


def _latent_params(model, axis: int, ctx: _Context) -> tuple[np.ndarray, np.ndarray]:
    """Per-state latent mean (S, K) and covariance (S, K, K) with the context's latent shifts."""
    ax = model.axes[axis]
    mean, scale = ax.lat_mean.copy(), np.ones(ax.n_states)
    used = set()        # rows of one group do not stack: the first listed that applies
    for cl in model.context_latents:
        s = ctx.flags.get(cl.flag, 0.0)
        if s <= 0.0 or cl.group in used:
            continue
        if cl.group is not None:
            used.add(cl.group)
        if cl.axis == axis:
            mean = mean + cl.mean_shift * s
            scale = scale * (1.0 + (cl.sd_scale - 1.0) * s)
    return mean, ax.lat_cov * (scale**2)[:, None, None]


@dataclass(frozen=True)
class _ChannelTerm:
    """State- and latent-independent pieces of one channel's Gaussian given z."""

    obs: np.ndarray        # positions (in the axis' result list) of observed results
    cen: int | None        # position of the censored result, if any
    sign: int              # its censor code
    chol_inv: np.ndarray   # inverse Cholesky factor of the observed results' covariance
    half_logdet: float
    gain: np.ndarray       # Sigma_CO Sigma_OO^-1
    cond_sd: float


def _channel_terms(model, results: list[_Result]) -> list[_ChannelTerm]:
    terms = []
    chans = np.array([r.channel for r in results])
    for c in dict.fromkeys(chans.tolist()):
        ch = model.channels[c]
        pos = np.flatnonzero(chans == c)
        days = np.array([results[p].day for p in pos])
        same_day = (days[:, None] == days[None, :]).astype(float)
        n = pos.size
        own = np.sqrt([results[p].extra_var for p in pos])    # sd of the shared context term
        sigma = (ch.tau**2 * np.ones((n, n)) + ch.cvi**2 * same_day + ch.cva**2 * np.eye(n)
                 + np.outer(own, own))
        cen_local = [i for i, p in enumerate(pos) if results[p].censor != 0]
        assert len(cen_local) <= 1, "reference handles one censored result per channel"
        obs_local = [i for i in range(n) if i not in cen_local]
        soo = sigma[np.ix_(obs_local, obs_local)]
        if obs_local:
            chol = np.linalg.cholesky(soo)
            chol_inv = np.linalg.inv(chol)
            half_logdet = float(np.log(np.diag(chol)).sum())
        else:
            chol_inv, half_logdet = np.zeros((0, 0)), 0.0
        if cen_local:
            k = cen_local[0]
            sco = sigma[k, obs_local]
            gain = sco @ np.linalg.inv(soo) if obs_local else np.zeros(0)
            cond_var = sigma[k, k] - (gain @ sco if obs_local else 0.0)
            cen, sign, cond_sd = int(pos[k]), results[pos[k]].censor, math.sqrt(cond_var)
        else:
            cen, sign, gain, cond_sd = None, 0, np.zeros(0), 1.0
        terms.append(_ChannelTerm(pos[obs_local], cen, sign, chol_inv, half_logdet, gain, cond_sd))
    return terms


def _deps(model, axis: int, results: list[_Result]) -> tuple[int, ...]:
    deps = {axis}
    for r in results:
        ch = model.channels[r.channel]
        deps.update(e.axis for e in ch.effects)
        if ch.amp_axis is not None:
            deps.add(ch.amp_axis)
    return tuple(sorted(deps))


def _age_shift(model, channel: int, patient: Patient) -> float:
    """The prior set's age trend of a channel (``age_effects``: per year beyond ``start``)."""
    out = 0.0
    for ae in getattr(model, "age_effects", ()):
        if (channel in ae.channels and patient.age is not None and patient.age > ae.start
                and (ae.sex is None or ae.sex == patient.sex)):
            out += ae.per_year * (patient.age - ae.start)
    return out


def _base_means(model, results: list[_Result], deps, combo, patient: Patient) -> np.ndarray:
    """Expected log level of each result without the latent term, for one state combination."""
    state = dict(zip(deps, combo, strict=True))
    base = np.empty(len(results))
    for i, r in enumerate(results):
        ch = model.channels[r.channel]
        mu = ch.log_median + sum(float(e.shift[state[e.axis]]) for e in ch.effects)
        mu += _age_shift(model, r.channel, patient) + r.shift
        if ch.diurnal is not None:
            off, extra = model.diurnal_offset(ch.diurnal, r.hour)
            assert extra == 0.0
            mu += float(ch.amp[state[ch.amp_axis]]) * ch.diurnal_scale * r.amp * off
        base[i] = mu
    return base


@dataclass(frozen=True)
class _Integrand:
    """p(results | z, s) N(z; mean_s, cov_s) in whitened latents w (z = mean_s + chol(cov_s) w).

    ``log_gauss(w)`` is the log of N(w; 0, I) times the densities of the observed results (a
    quadratic in w); ``args(w)`` are the arguments of the normal CDFs that give the censored
    results' probabilities (affine in w).  Both take an (N, K) array.  ``unloaded``: the
    whitened latents no result loads on (their factor is N(w_j; 0, 1) alone).
    """

    k: int
    m: int
    log_gauss: Callable[[np.ndarray], np.ndarray]
    args: Callable[[np.ndarray], np.ndarray]
    unloaded: tuple[int, ...] = ()


def _make_integrand(model, axis: int, results, terms, base: np.ndarray, s_own: int,
                    latent: tuple[np.ndarray, np.ndarray] | None = None) -> _Integrand:
    ax = model.axes[axis]
    k = len(ax.latents)
    lat_mean, lat_cov = latent if latent is not None else (ax.lat_mean, ax.lat_cov)
    y = np.array([r.y for r in results])
    load = np.stack([model.channels[r.channel].loadings for r in results])   # (n, K)
    if k:
        a_mat = load @ np.linalg.cholesky(lat_cov[s_own])                    # (n, K)
        offset = y - base - load @ lat_mean[s_own]      # residual y - E[y | z] at w = 0
    else:
        a_mat, offset = np.zeros((len(results), 0)), y - base
    cens = [t for t in terms if t.cen is not None]

    def resid(w: np.ndarray) -> np.ndarray:
        return offset[None, :] - np.atleast_2d(w) @ a_mat.T

    def log_gauss(w: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(w)
        r = resid(w)
        out = -0.5 * np.sum(w * w, axis=1) - 0.5 * k * LOG_2PI
        for t in terms:
            if t.obs.size:
                zz = r[:, t.obs] @ t.chol_inv.T
                out = out - 0.5 * np.sum(zz * zz, axis=1) - t.half_logdet \
                    - 0.5 * t.obs.size * LOG_2PI
        return out

    def args(w: np.ndarray) -> np.ndarray:
        r = resid(w)
        cols = []
        for t in cens:
            # censored value's limit minus its conditional mean given z and the channel's
            # observed results; "left": P(Y < limit) = Phi(gap / sd), "right": Phi(-gap / sd)
            gap = r[:, t.cen] - (r[:, t.obs] @ t.gain if t.obs.size else 0.0)
            cols.append(-t.sign * gap / t.cond_sd)
        return np.stack(cols, axis=1) if cols else np.zeros((r.shape[0], 0))

    unloaded = tuple(j for j in range(k) if not a_mat[:, j].any())
    return _Integrand(k, len(cens), log_gauss, args, unloaded)


@dataclass(frozen=True)
class _Accuracy:
    gh_order: int      # Gauss-Hermite order per latent dimension (Gaussian part)
    step: float        # trapezoid step (innermost censored dimension)
    epsrel: float      # adaptive quadrature (outer censored dimensions)


ACCURACY = (_Accuracy(2, 0.3, 1e-7), _Accuracy(5, 0.1, 1e-10))


@cache
def _gh_grid(k: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite nodes t (weight exp(-t^2)) and log(weight * exp(|t|^2))."""
    t, w = roots_hermite(order)
    nodes = np.array(list(itertools.product(t, repeat=k))).reshape(-1, k)
    logw = np.array(list(itertools.product(np.log(w) + t * t, repeat=k))).reshape(-1, k).sum(1)
    return nodes, logw


def _derivatives(f, x0: np.ndarray, k: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Value, gradient and Hessian of f at x0 by central differences with unit steps (exact for
    a quadratic; the caller checks that f is one)."""
    eye = np.eye(k)
    pts = [x0 + eye[i] * si + eye[j] * sj
           for i in range(k) for j in range(k) for si in (1, -1) for sj in (1, -1)]
    vals = f(np.array(pts)).reshape(k, k, 2, 2, *np.shape(f(x0[None]))[1:])
    hess = (vals[:, :, 0, 0] - vals[:, :, 0, 1] - vals[:, :, 1, 0] + vals[:, :, 1, 1]) / 4.0
    grad = (f(x0 + eye) - f(x0 - eye)) / 2.0
    return f(x0[None])[0], grad, hess


def _gaussian_part(integ: _Integrand, acc: _Accuracy):
    """log of the integral of exp(log_gauss) by Gauss-Hermite centred on the mode and scaled by
    the curvature; also the mode and the factor L with L L^T = (-Hessian)^-1."""
    k = integ.k
    if k == 0:
        return float(integ.log_gauss(np.zeros((1, 0)))[0]), np.zeros(0), np.zeros((0, 0))
    f0, grad, hess = _derivatives(integ.log_gauss, np.zeros(k), k)
    rng = np.random.default_rng(1)
    for w in rng.normal(size=(3, k)) * 3:   # it is a quadratic
        taylor = f0 + grad @ w + 0.5 * w @ hess @ w
        assert abs(integ.log_gauss(w[None])[0] - taylor) < 1e-8 * (1 + abs(taylor))
    prec = -0.5 * (hess + hess.T)
    mode = np.linalg.solve(prec, grad)
    upper = np.linalg.cholesky(prec)               # prec = U U^T
    factor = np.linalg.inv(upper).T                # factor factor^T = prec^-1
    nodes, logw = _gh_grid(k, acc.gh_order)
    w = mode + math.sqrt(2.0) * nodes @ factor.T
    log_int = (0.5 * k * math.log(2.0) - float(np.log(np.diag(upper)).sum())
               + float(logsumexp(logw + integ.log_gauss(w))))
    return log_int, mode, factor


def _log_e_phi(a: float, b: float, step: float) -> float:
    """log E[Phi(a + b Y)], Y ~ N(0, 1), by the trapezoid rule in log space.

    For |b| > 1 the integrand has an edge sharper than the weight; E[Phi(a + bY)] =
    P(E <= a + bY) for an independent standard normal E, = E[Phi(a/|b| + E/|b|)], which is
    smooth: integrate over E instead.
    """
    if abs(b) > 1.0:
        a, b = a / abs(b), 1.0 / abs(b)
    y = np.arange(-45.0, 45.0 + step / 2, step)
    return float(logsumexp(-0.5 * y * y + log_ndtr(a + b * y))) + math.log(step) \
        - 0.5 * LOG_2PI


def log_expect_phi(c: np.ndarray, r: np.ndarray, acc: _Accuracy) -> float:
    """log E[prod_i Phi(c_i + (R y)_i)], y ~ N(0, I), R lower triangular (m x m).

    Factor i depends on y_0..y_last(i).  Level j integrates y_j with the factors whose last
    coordinate is j: the innermost level by the trapezoid rule (:func:`_log_e_phi` for a single
    factor), an outer level by adaptive quadrature (QUADPACK), over a window around the mode
    of the whole integrand (strongly log-concave, so nothing outside +-12 counts).
    """
    tol = 1e-9 * max(1.0, float(np.abs(r).max()))
    last = [max((j for j in range(r.shape[1]) if abs(r[i, j]) > tol), default=-1)
            for i in range(c.size)]
    const = float(sum(log_ndtr(c[i]) for i in range(c.size) if last[i] < 0))
    depth = max(last) + 1                  # coordinates beyond it carry no factor: integrate to 1
    if depth == 0:
        return const
    assert depth <= 2, "reference handles censored results spanning at most two latent directions"
    groups = [[i for i in range(c.size) if last[i] == j] for j in range(depth)]
    if depth == 1 and len(groups[0]) == 1:
        (i,) = groups[0]
        return const + _log_e_phi(float(c[i]), float(r[i, 0]), acc.step)
    res = optimize.minimize(
        lambda y: 0.5 * y @ y - float(np.sum(log_ndtr(c + r[:, :depth] @ y))), np.zeros(depth),
        method="BFGS")
    lo, hi = res.x - 12.0, res.x + 12.0

    def log_inner(prefix: np.ndarray) -> float:
        """Innermost level (coordinate depth - 1) given the outer coordinates."""
        j = depth - 1
        idx = groups[j]
        a = c[idx] + r[idx, :j] @ prefix
        b = r[idx, j]
        if len(idx) == 1:
            return _log_e_phi(float(a[0]), float(b[0]), acc.step)
        h = acc.step / max(1.0, float(np.abs(b).max()))
        y = np.arange(lo[j], hi[j] + h / 2, h)
        v = -0.5 * y * y + log_ndtr(a[:, None] + b[:, None] * y[None, :]).sum(0)
        return float(logsumexp(v)) + math.log(h) - 0.5 * LOG_2PI

    if depth == 1:
        return const + log_inner(np.zeros(0))
    idx = groups[0]

    def integrand(y0: float) -> float:
        v = -0.5 * y0 * y0 - 0.5 * LOG_2PI + float(np.sum(log_ndtr(c[idx] + r[idx, 0] * y0))) \
            + log_inner(np.array([y0]))
        return math.exp(v)

    edges = sorted(-c[i] / r[i, 0] for i in idx if r[i, 0] != 0 and lo[0] < -c[i] / r[i, 0] < hi[0])
    val, _ = integrate.quad(integrand, lo[0], hi[0], epsabs=0.0, epsrel=acc.epsrel, limit=400,
                            points=edges or None)
    return const + (math.log(val) if val > 0 else -math.inf)


def log_block_integral(integ: _Integrand, acc: _Accuracy) -> float:
    """log p(results | states): Gaussian part by Gauss-Hermite, censored part by quadrature."""
    log_gauss, mode, factor = _gaussian_part(integ, acc)
    if integ.m == 0:
        return log_gauss
    k = integ.k
    assert integ.m <= k, "reference handles at most K censored results on an axis"
    c, grad, _ = _derivatives(integ.args, mode, k)  # args is affine: grad exact
    assert np.allclose(integ.args(mode[None] + 2.0)[0], c + 2.0 * grad.sum(0), atol=1e-9)
    d = grad.T @ factor                             # args = c + d x, x ~ N(0, I_K)
    q, rt = np.linalg.qr(d.T)                       # d = rt^T q^T; y = q^T x ~ N(0, I_m)
    return log_gauss + log_expect_phi(c, rt.T, acc)


def reference_block_loglik(model, axis: int, results, prior_dep: np.ndarray,
                           patient: Patient, accuracies=ACCURACY, ctx: _Context = NO_CONTEXT,
                           ) -> tuple[tuple[int, ...], np.ndarray]:
    """log p(results on ``axis`` | states of its dependencies), one array per accuracy."""
    deps = _deps(model, axis, results)
    latent = _latent_params(model, axis, ctx)
    terms = _channel_terms(model, results)
    sizes = [model.axes[d].n_states for d in deps]
    out = np.full((len(accuracies), *sizes), -np.inf)
    for combo in itertools.product(*[range(s) for s in sizes]):
        if prior_dep[combo] <= 0.0:
            continue   # impossible for this patient (e.g. the other sex): posterior 0 anyway
        base = _base_means(model, results, deps, combo, patient)
        integ = _make_integrand(model, axis, results, terms, base, combo[deps.index(axis)],
                                latent)
        for i, acc in enumerate(accuracies):
            out[(i, *combo)] = log_block_integral(integ, acc)
    return deps, out


def _gross_log_q(model, r: _Result, patient: Patient) -> float:
    """log density (mass beyond the limit when censored) of a result that is a gross error: a
    mixture of normals on the log scale (the channel's population distribution among people
    of the patient's sex, ``gross_mix_for``; checked against the prior in
    ``tests/engine/test_gross_error.py``) at the patient's age and context (its age trend and
    context shift added, as for the patient's own results; not the context's extra noise)."""
    log_w, mean, sd = model.gross_mix_for(patient.sex)[r.channel]
    dist = norm(loc=mean + _age_shift(model, r.channel, patient) + r.shift, scale=sd)
    if r.censor == 0:
        dens = dist.logpdf(r.y)
    else:
        dens = dist.logcdf(r.y) if r.censor < 0 else dist.logsf(r.y)
    return float(logsumexp(dens + log_w))


def mixed_block_loglik(model, axis: int, results, prior: np.ndarray, patient: Patient,
                       ctx: _Context = NO_CONTEXT) -> tuple[tuple[int, ...], np.ndarray]:
    """log p(results on ``axis`` | states) when at most one of them is a gross error: each
    result is the error with probability eps (then drawn from the gross-error density, its
    own quadrature dropped), none with probability 1 - n eps.  Every sub-block is integrated
    on its own."""
    nd = len(model.axes)

    def block(res):
        deps = _deps(model, axis, res)
        prior_dep = prior.sum(axis=tuple(a for a in range(nd) if a not in deps))
        return reference_block_loglik(model, axis, res, prior_dep, patient, ctx=ctx)

    deps, ll = block(results)
    eps, n = model.gross_error_rate, len(results)
    if eps == 0.0:
        return deps, ll
    terms = [math.log1p(-n * eps) + ll]
    for j, r in enumerate(results):
        rest = results[:j] + results[j + 1:]
        sub = 0.0
        if rest:
            d2, l2 = block(rest)
            sub = l2.reshape(l2.shape[:1] + tuple(
                model.axes[d].n_states if d in d2 else 1 for d in deps))
        terms.append(math.log(eps) + _gross_log_q(model, r, patient) + sub)
    with np.errstate(invalid="ignore"):
        return deps, logsumexp(np.stack(np.broadcast_arrays(*terms)), axis=0)


def _log1m_cause(model, ctx: _Context) -> list[np.ndarray]:
    """Per axis (S_a, Y): sum of log(1 - p) over the causes active in each state, every cause
    probability p of the symptom table multiplied by the context's factors (treated disease
    causes fewer symptoms: ``context_symptoms``, each row's factor to the flag's strength);
    built entry by entry from the table, not from the engine's arrays."""
    table = model.symptom_table
    p = 1.0 / (1.0 + np.exp(-np.asarray(table.cause_logit, float)))
    for row in model.context_symptoms:
        strength = ctx.flags.get(row.flag, 0.0)
        if strength > 0:
            p = p * row.scale ** strength
    out = []
    for a, ax in enumerate(model.axes):
        t = np.zeros((ax.n_states, len(model.symptoms)))
        for e, y in enumerate(table.entry_symptom):
            t[:, y] += table.state_mask[a][:, e] * np.log1p(-p[e])
        out.append(t)
    return out


def _symptom_logliks(model, case: Case, ctx: _Context = NO_CONTEXT) -> np.ndarray:
    """log P(reported symptoms | s): noisy-OR given s and the person's symptom propensity level.

    The prior set may give each person one of P propensity levels (weights ``log_propensity_w``)
    that scale every leak (``log1m_leak`` is then (P, Y)); symptoms are independent given the
    state and the level, and the level is summed out.  Without levels ``log1m_leak`` is (Y,).
    """
    nd = len(model.axes)
    leak = np.atleast_2d(model.log1m_leak)                       # (P, Y)
    n_prop = leak.shape[0]
    log_w = np.asarray(getattr(model, "log_propensity_w", np.zeros(1)), float)
    assert log_w.shape == (n_prop,) and abs(np.exp(log_w).sum() - 1.0) < 1e-12
    # symptoms the context implies (a menstrual reading) count as present unless reported
    implied = ctx.extra_symptoms - case.symptoms.present - case.symptoms.absent
    reported = [(sid, "present") for sid in case.symptoms.present | implied]
    reported += [(sid, "absent") for sid in case.symptoms.absent]
    if not reported:
        return np.zeros([1] * nd)
    cause = _log1m_cause(model, ctx)
    total = np.zeros([n_prop] + [1] * nd)
    for sid, status in reported:
        y = model.symptoms.index(sid)
        lq = leak[:, y].reshape([n_prop] + [1] * nd)
        for a in range(nd):
            shape = [1] * (nd + 1)
            shape[a + 1] = model.axes[a].n_states
            lq = lq + cause[a][:, y].reshape(shape)
        total = total + (lq if status == "absent" else np.log(-np.expm1(lq)))
    return logsumexp(total + log_w.reshape([n_prop] + [1] * nd), axis=0)


@dataclass
class Reference:
    joints: list[np.ndarray]          # posterior per accuracy in ACCURACY (last = highest)
    marginals: list[list[np.ndarray]]
    condition_probs: list[np.ndarray]


def reference_posterior(model, case: Case, covariates) -> Reference:
    ctx = _context_of(case)
    assert set(covariates.flags) == set(ctx.flags), (covariates.flags, ctx.flags)
    lp = np.asarray(log_prior(model, covariates))
    prior = np.exp(lp)
    assert abs(prior.sum() - 1.0) < 1e-12
    nd = len(model.axes)
    by_axis = _results_by_axis(model, case, ctx)
    n_acc = len(ACCURACY)
    log_joint = np.broadcast_to(lp + _symptom_logliks(model, case, ctx), (n_acc, *model.shape))
    for axis, results in by_axis.items():
        deps, ll = mixed_block_loglik(model, axis, results, prior, case.patient, ctx)
        shape = [n_acc] + [1] * nd
        for d in deps:
            shape[d + 1] = model.axes[d].n_states
        log_joint = log_joint + ll.reshape(shape)
    joints, margs, conds = [], [], []
    for lj in log_joint:
        p = np.exp(lj - lj.max())
        p /= p.sum()
        m = [p.sum(axis=tuple(j for j in range(nd) if j != i)) for i in range(nd)]
        c = np.array([m[a][mask].sum()
                      for a, mask in zip(model.cond_axis, model.cond_states, strict=True)])
        joints.append(p)
        margs.append(m)
        conds.append(c)
    return Reference(joints, margs, conds)


# --------------------------------------------------------------------------------------------
# cases
def M(analyte, value, censor="none", day=0.0, hour=None, specimen=None) -> dict:  # noqa: N802
    return {"analyte": analyte, "specimen": specimen or SPECIMEN[analyte], "value": value,
            "censor": censor, "day": day, "hour": hour}


def make_case(cid, sex, age, meas, present=(), absent=(), patient=None) -> Case:
    """``patient``: more patient fields (``medications`` as names, ``context``, ``pregnant``,
    ``gestational_week``...)."""
    extra = dict(patient or {})
    extra["medications"] = tuple(Medication(name=n, raw=n) for n in extra.get("medications", ()))
    extra["context"] = tuple(extra.get("context", ()))
    ms = tuple(Measurement(index=i, **m) for i, m in enumerate(meas))
    return Case(id=cid, patient=Patient(sex=sex, age=age, **extra), measurements=ms,
                symptoms=Symptoms(present=frozenset(present), absent=frozenset(absent)))


P_T1 = {"pregnant": True, "gestational_week": 10.0}
P_T2 = {"pregnant": True, "gestational_week": 20.0}


# (id, sex, age, measurements, symptoms present, symptoms absent, focus axis[, patient fields
# that raise context flags]): each case must leave at least two states of its focus axis above
# 0.05
CASES = [
    # thyroid: borderline TSH / FT4 / FT3
    ("tsh4.8-ft4_12", "F", 40, [M("tsh", 4.8), M("ft4", 12.0)], (), (), "thyroid"),
    ("tsh0.3-ft4_19-age45", "F", 45, [M("tsh", 0.3), M("ft4", 19.0)], (), (), "thyroid"),
    ("ft4_6-tsh1.0-central", "M", 38, [M("ft4", 6.0), M("tsh", 1.0)], ("fatigue",), (),
     "thyroid"),
    ("ft4_7-tsh1.0-age60", "M", 60, [M("ft4", 7.0), M("tsh", 1.0)],
     ("fatigue", "cold_intolerance"), (), "thyroid"),
    ("ft3_lownormal", "F", 38, [M("tsh", 1.2), M("ft4", 11.5), M("ft3", 2.9)], ("fatigue",), (),
     "thyroid"),
    # censored results
    ("tsh<0.05-ft4_14", "F", 35, [M("tsh", 0.05, "left"), M("ft4", 14.0)], (), (), "thyroid"),
    ("tsh<0.01-ft4_12-palpitations", "F", 35, [M("tsh", 0.01, "left"), M("ft4", 12.0)],
     (), ("palpitations", "tremor", "weight_loss"), "thyroid"),
    ("ft4<8-tsh5", "F", 35, [M("tsh", 5.0), M("ft4", 8.0, "left")], (), (), "thyroid"),
    ("ft4>20-tsh0.1", "F", 35, [M("tsh", 0.1), M("ft4", 20.0, "right")], (), (), "thyroid"),
    ("tsh<0.1-ft4>16-two-censored", "F", 35, [M("tsh", 0.1, "left"), M("ft4", 16.0, "right")],
     (), (), "thyroid"),
    ("tsh<0.1-ft4>16-tt4>110-three-censored", "F", 35,
     [M("tsh", 0.1, "left"), M("ft4", 16.0, "right"), M("tt4", 110.0, "right")], (), (),
     "thyroid"),
    # repeated measurements
    ("tsh-day0-and-day30", "F", 38, [M("tsh", 5.5), M("tsh", 4.2, day=30.0), M("ft4", 13.0)],
     (), (), "thyroid"),
    ("two-tsh-same-day", "F", 38, [M("tsh", 4.9), M("tsh", 6.1), M("ft4", 12.5)], (), (),
     "thyroid"),
    ("tsh<0.1-then-tsh0.35-day42", "F", 38,
     [M("tsh", 0.1, "left"), M("tsh", 0.35, day=42.0), M("ft4", 17.0, day=42.0)], (), (),
     "thyroid"),
    # adrenal: daily rhythm at a clock hour
    ("cortisol08h_120-acth25", "F", 40,
     [M("cortisol", 120.0, hour=8.0), M("acth", 25.0, hour=8.0)], (), (), "adrenal"),
    ("cortisol08h_150-acth30-fatigue", "F", 40,
     [M("cortisol", 150.0, hour=8.0), M("acth", 30.0, hour=8.0)], ("fatigue",), (),
     "adrenal"),
    ("cortisol-two-days-acth", "F", 40,
     [M("cortisol", 120.0, hour=8.0), M("cortisol", 105.0, hour=9.0, day=3.0),
      M("acth", 22.0, hour=8.0)], (), (), "adrenal"),
    ("saliva23h_8-ufc250", "F", 40,
     [M("cortisol", 8.0, hour=23.0, specimen="saliva"), M("ufc", 250.0)], (), (), "adrenal"),
    ("saliva23h_10-ufc300-striae-absent", "F", 40,
     [M("cortisol", 10.0, hour=23.0, specimen="saliva"), M("ufc", 300.0)], ("weight_gain",),
     ("purple_striae",), "adrenal"),
    # gonadal
    ("testosterone08h_8-lh12-man", "M", 40, [M("testosterone", 8.0, hour=8.0), M("lh", 12.0)],
     (), (), "gonadal"),
    ("testosterone08h_7-lh5-man", "M", 40, [M("testosterone", 7.0, hour=8.0), M("lh", 5.0)],
     ("low_libido",), (), "gonadal"),
    ("testosterone16h_5-lh2-man", "M", 38, [M("testosterone", 5.0, hour=16.0), M("lh", 2.0)],
     (), (), "gonadal"),
    ("sex-unknown-lh15", None, 30, [M("lh", 15.0)], (), (), "gonadal"),
    ("sex-unknown-testosterone3", None, 30, [M("testosterone", 3.0, hour=9.0)], (), (),
     "gonadal"),
    # prolactin (depends on the thyroid and gonadal states too)
    ("prolactin700", "F", 30, [M("prolactin", 700.0)], (), (), "prolactin"),
    ("prolactin650-tsh6-galactorrhea", "F", 30, [M("prolactin", 650.0), M("tsh", 6.0)],
     ("galactorrhea",), (), "prolactin"),
    # metabolic
    ("glucose5.6-hba1c40", "F", 40, [M("glucose_fasting", 5.6), M("hba1c", 40.0)], (), (),
     "metabolic"),
    ("glucose6.0-hba1c40-insulin90", "M", 40,
     [M("glucose_fasting", 6.0), M("hba1c", 40.0), M("insulin_fasting", 90.0)], (), (),
     "metabolic"),
    # missing / unusable analytes, symptoms only
    ("tsh5.5-only-ferritin-unmodelled-ft4-zero", "F", 33,
     [M("tsh", 5.5), M("ferritin", 15.0), M("ft4", 0.0)], ("fatigue", "weight_gain"),
     ("goiter",), "thyroid"),
    ("symptoms-only", "F", 30, [], ("fatigue", "weight_gain", "oligomenorrhea", "hirsutism"),
     ("galactorrhea",), "gonadal"),
    ("panel-many-axes", "F", 36,
     [M("tsh", 4.6), M("ft4", 12.0), M("prolactin", 650.0), M("glucose_fasting", 5.7),
      M("hba1c", 39.0), M("cortisol", 300.0, hour=8.5), M("lh", 9.0)],
     ("fatigue", "oligomenorrhea"), ("tremor",), "thyroid"),
    # context: measurement shifts with extra noise, latent shifts of treated disease, a
    # changed daily rhythm, prior odds
    ("pregnancy-t1-tsh0.01-ft4_20", "F", 30, [M("tsh", 0.01), M("ft4", 20.0)], (), (),
     "thyroid", P_T1),
    ("pregnancy-t1-tsh<0.05-ft4_17", "F", 30, [M("tsh", 0.05, "left"), M("ft4", 17.0)], (), (),
     "thyroid", P_T1),
    ("pregnancy-t2-tsh4.5-ft4_10", "F", 30, [M("tsh", 4.5), M("ft4", 10.0)], (), (), "thyroid",
     P_T2),
    ("pregnancy-t2-two-tsh-same-day", "F", 30, [M("tsh", 4.0), M("tsh", 5.0), M("ft4", 10.0)],
     (), (), "thyroid", P_T2),
    ("pregnancy-t1-prolactin5000", "F", 30, [M("prolactin", 5000.0)], (), (), "prolactin",
     P_T1),
    ("levothyroxine-tsh6-ft4_14", "F", 50, [M("tsh", 6.0), M("ft4", 14.0)], ("fatigue",), (),
     "thyroid", {"medications": ("levothyroxine",)}),
    ("liothyronine-ft3_7-ft4_9-tsh0.8", "F", 45, [M("tsh", 0.8), M("ft4", 9.0), M("ft3", 7.0)],
     (), (), "thyroid", {"medications": ("liothyronine",)}),
    ("levothyroxine+liothyronine-tsh0.2-ft4_15-ft3_6.5", "F", 50,
     [M("tsh", 0.2), M("ft4", 15.0), M("ft3", 6.5)], (), (), "thyroid",
     {"medications": ("levothyroxine", "liothyronine")}),   # two latent shifts, two FT4 shifts
    ("amiodarone-tsh0.1-ft4_30", "M", 60, [M("tsh", 0.1), M("ft4", 30.0)], (), (), "thyroid",
     {"medications": ("amiodarone",)}),
    ("carbimazole-tsh4-ft4_12", "F", 40, [M("tsh", 4.0), M("ft4", 12.0)], (), (), "thyroid",
     {"medications": ("carbimazole",)}),
    ("critical-illness-tsh0.4-ft4_14", "M", 60, [M("tsh", 0.4), M("ft4", 14.0)], (), (),
     "thyroid", {"context": ("ICU, septic shock",)}),
    ("coc-cortisol08h_90", "F", 30, [M("cortisol", 90.0, hour=8.0)], (), (), "adrenal",
     {"medications": ("combined oral contraceptive",)}),
    ("oral-estrogen-cortisol08h_70-acth8", "F", 30,
     [M("cortisol", 70.0, hour=8.0), M("acth", 8.0, hour=8.0)], (), (), "adrenal",
     {"medications": ("oral estradiol",)}),
    ("glucocorticoid-cortisol08h_80-acth5", "F", 45,
     [M("cortisol", 80.0, hour=8.0), M("acth", 5.0, hour=8.0)], (), (), "adrenal",
     {"medications": ("fluticasone inhaler",)}),
    ("night-shift-cortisol08h_50-acth30", "F", 40,
     [M("cortisol", 50.0, hour=8.0), M("acth", 30.0, hour=8.0)], (), (), "adrenal",
     {"context": ("night shift worker",)}),
    ("metformin-glucose6.2-hba1c42", "M", 55, [M("glucose_fasting", 6.2), M("hba1c", 42.0)],
     (), (), "metabolic", {"medications": ("metformin",)}),
    ("non-fasting-glucose6.5-insulin100", "M", 40,
     [M("glucose_fasting", 6.5), M("hba1c", 40.0), M("insulin_fasting", 100.0)], (), (),
     "metabolic", {"context": ("non-fasting sample",)}),
    ("postmenopausal-from-age-lh3-fsh5", "F", 60, [M("lh", 3.0), M("fsh", 5.0)], (), (),
     "gonadal"),
]


def _case_of(row) -> tuple[Case, str]:
    cid, sex, age, meas, present, absent, focus, *patient = row
    return make_case(cid, sex, age, meas, present, absent, *patient), focus


# --------------------------------------------------------------------------------------------
# tests
def _engine(case: Case):
    ev = build_evidence(MODEL, case)
    return ev, infer_exact(MODEL, ev, explain=False)


def _describe_joint(p: np.ndarray) -> list[str]:
    out = []
    for ix in zip(*np.nonzero(p > AMBIGUOUS), strict=True):
        names = [f"{MODEL.axes[a].name}={MODEL.axes[a].states[s]}"
                 for a, s in enumerate(ix) if s != 0 or MODEL.axes[a].name == "gonadal"]
        out.append(f"{p[ix]:.3f} [{', '.join(names) or 'all normal'}]")
    return out


def _no_context(ev) -> None:
    """The case must trigger no context handling (checks of the plain model)."""
    # (a woman's phase not written opens the healthy ovary's phases: states, no result's reading)
    flags = set(ev.covariates.flags) - {"cycle_phase_unknown"}
    assert not flags, f"context flags {sorted(flags)}"
    # only age trends may adjust results; no context effects
    assert all(a["flag"] == "age" for a in ev.adjustments), ev.adjustments
    assert not getattr(ev, "lat_shift", None)


def _context_kinds(case: Case) -> set[str]:
    """Which kinds of context effect act on a case's results (from the compiled tables)."""
    flags = read_context(case).flags
    kinds = {"prior"} if flags else set()
    for m in case.measurements:
        c = MODEL.channel_for(m.analyte, m.specimen)
        if c is None:
            continue
        n_shifts = sum(e.flag in flags for e in MODEL.context_shifts.get(c, ()))
        if n_shifts:
            kinds.add("shift")
        if n_shifts > 1 or sum(cl.flag in flags and cl.axis == MODEL.channels[c].axis
                               for cl in MODEL.context_latents) > 1:
            kinds.add("combined")
        if any(d.flag in flags and d.profile == MODEL.channels[c].diurnal
               for d in MODEL.context_diurnal):
            kinds.add("diurnal")
        if any(cl.flag in flags and cl.axis == MODEL.channels[c].axis
               for cl in MODEL.context_latents):
            kinds.add("latent")
    reported = {MODEL.symptoms.index(y) for y in case.symptoms.present | case.symptoms.absent}
    if any(row.flag in flags and reported & set(
            MODEL.symptom_table.entry_symptom[row.scale < 1].tolist())
           for row in MODEL.context_symptoms):
        kinds.add("symptoms")
    return kinds


@pytest.mark.parametrize("row", CASES, ids=[r[0] for r in CASES])
def test_engine_matches_quadrature(row):
    case, focus = _case_of(row)
    ev, post = _engine(case)
    ref = reference_posterior(MODEL, case, ev.covariates)

    # the case is ambiguous
    fa = MODEL.axis_index(focus)
    marg = ref.marginals[-1][fa]
    live = [f"{MODEL.axes[fa].states[i]}={marg[i]:.3f}" for i in np.flatnonzero(marg > AMBIGUOUS)]
    joint_live = _describe_joint(ref.joints[-1])
    print(f"\n{case.id}: {focus} states > {AMBIGUOUS}: {live}; joint states > {AMBIGUOUS}: "
          f"{joint_live}")
    assert len(live) >= 2, f"{case.id} is not ambiguous on {focus}: {live}"

    # the quadrature has converged (two accuracies agree far below the tolerance)
    conv = float(np.abs(ref.joints[0] - ref.joints[-1]).max())
    assert conv < CONV_TOL, f"{case.id}: quadrature not converged: {conv:.2e}"

    # the engine agrees on every axis marginal and condition probability
    for a, ax in enumerate(MODEL.axes):
        diff = np.abs(post.marginals[a] - ref.marginals[-1][a])
        worst = int(np.argmax(diff))
        assert diff[worst] < TOL, (
            f"{case.id}: P({ax.name}={ax.states[worst]}) engine {post.marginals[a][worst]:.6f} "
            f"vs quadrature {ref.marginals[-1][a][worst]:.6f}")
    diff = np.abs(post.condition_probs - ref.condition_probs[-1])
    worst = int(np.argmax(diff))
    assert diff[worst] < TOL, (
        f"{case.id}: P({MODEL.conditions[worst]}) engine {post.condition_probs[worst]:.6f} "
        f"vs quadrature {ref.condition_probs[-1][worst]:.6f}")
    worst_joint = float(np.abs(post.joint - ref.joints[-1]).max())
    assert worst_joint < TOL
    print(f"  max |engine - quadrature|: joint {worst_joint:.1e}, conditions {diff[worst]:.1e}; "
          f"two accuracies differ by {conv:.1e}")


def test_enough_ambiguous_cases_with_required_features():
    ids = [r[0] for r in CASES]
    assert len(ids) >= 20 and len(set(ids)) == len(ids)
    meas = [m for r in CASES for m in r[3]]
    assert any(m["censor"] == "left" for m in meas) and any(m["censor"] == "right" for m in meas)
    assert any(m["hour"] is not None for m in meas)
    assert any(r[1] is None for r in CASES)
    for r in CASES:   # repeated measurements: on different days and on the same day
        keys = [(m["analyte"], m["specimen"], m["day"]) for m in r[3]]
        if len(set(keys)) < len(keys):
            break
    else:
        raise AssertionError("no case repeats a measurement on the same day")
    assert any(len({m["day"] for m in r[3]}) > 1 for r in CASES)
    # context: every kind of effect, on several axes, with censoring and same-day repeats
    kinds = {r[0]: _context_kinds(_case_of(r)[0]) for r in CASES}
    with_context = [r for r in CASES if kinds[r[0]]]
    assert len(with_context) >= 10
    assert set().union(*kinds.values()) >= {"prior", "shift", "latent", "diurnal", "combined",
                                            "symptoms"}
    assert len({r[6] for r in with_context}) >= 4          # focus axes
    shifted = [r for r in with_context if "shift" in kinds[r[0]]]
    assert any(m["censor"] != "none" for r in shifted for m in r[3])
    assert any(len({(m["analyte"], m["specimen"], m["day"]) for m in r[3]}) < len(r[3])
               for r in shifted)


def test_integrator_is_exact_on_a_gaussian_case():
    """No censoring: quadrature = closed-form Gaussian marginal (computed here) to 1e-10."""
    case = make_case("g", "F", 40, [M("tsh", 4.8), M("tsh", 3.9, day=20.0), M("ft4", 12.0),
                                    M("ft3", 4.1)])
    ev, post = _engine(case)
    _no_context(ev)
    axis = MODEL.axis_index("thyroid")
    results = _results_by_axis(MODEL, case)[axis]
    ax = MODEL.axes[axis]
    y = np.array([r.y for r in results])
    load = np.stack([MODEL.channels[r.channel].loadings for r in results])
    deps, ll = reference_block_loglik(MODEL, axis, results, np.ones(ax.n_states), case.patient)
    assert deps == (axis,)
    noise = np.zeros((len(results), len(results)))
    for i, ri in enumerate(results):
        for j, rj in enumerate(results):
            if ri.channel == rj.channel:
                ch = MODEL.channels[ri.channel]
                noise[i, j] = ch.tau**2 + ch.cvi**2 * (ri.day == rj.day) + ch.cva**2 * (i == j)
    for s in range(ax.n_states):
        base = _base_means(MODEL, results, deps, (s,), case.patient)
        cov = load @ ax.lat_cov[s] @ load.T + noise
        exact = multivariate_normal.logpdf(y, base + load @ ax.lat_mean[s], cov)
        assert np.abs(ll[:, s] - exact).max() < 1e-10, (s, ll[:, s], exact)
    ref = reference_posterior(MODEL, case, ev.covariates)
    assert np.abs(post.joint - ref.joints[-1]).max() < 1e-10


def _nquad_full(integ: _Integrand, centre: np.ndarray) -> float:
    """log of the integral of the whole integrand (Gaussian part times the censored CDFs) over
    the whitened latents by plain adaptive quadrature (scipy nquad), for at most two latents
    that results load on.  A latent no result loads on is a standard normal factor of its own:
    it integrates to 1, so it is held at 0 and its N(0; 0, 1) put back analytically."""
    loaded = [j for j in range(integ.k) if j not in integ.unloaded]

    def log_f(*w_loaded):
        w = np.zeros((1, integ.k))
        w[0, loaded] = w_loaded
        return float(integ.log_gauss(w)[0] + np.sum(log_ndtr(integ.args(w)[0])))
    centre = np.asarray(centre)[loaded]
    peak = log_f(*centre)
    val, _ = integrate.nquad(lambda *w: math.exp(log_f(*w) - peak),
                             [(c - 12.0, c + 12.0) for c in centre],
                             opts={"epsabs": 0.0, "epsrel": 1e-10, "limit": 200})
    return math.log(val) + peak + 0.5 * len(integ.unloaded) * LOG_2PI


@pytest.mark.parametrize("axis_name, meas, combos", [
    # one latent: a censored and an observed prolactin on different days
    ("prolactin", [M("prolactin", 400.0, "right"), M("prolactin", 520.0, day=7.0)],
     [(0, 0, 0), (1, 0, 0), (2, 1, 6), (1, 2, 4)]),
    # two loaded latents: late-night salivary cortisol "<3" with an ACTH (the censored edge is
    # much sharper than the latent spread in the Cushing's states); the adrenal reserve, which
    # only the cosyntropin-stimulated cortisols load on, integrates out
    ("adrenal", [M("cortisol", 3.0, "left", hour=23.0, specimen="saliva"),
                 M("acth", 9.0, hour=8.0)], [(0,), (2,)]),
], ids=["prolactin-K1", "adrenal-K2"])
def test_censored_block_matches_plain_adaptive_quadrature(axis_name, meas, combos):
    case = make_case("c", "F", 30, meas)
    axis = MODEL.axis_index(axis_name)
    results = _results_by_axis(MODEL, case)[axis]
    deps = _deps(MODEL, axis, results)
    terms = _channel_terms(MODEL, results)
    for combo in combos:
        base = _base_means(MODEL, results, deps, combo, case.patient)
        integ = _make_integrand(MODEL, axis, results, terms, base, combo[deps.index(axis)])
        assert integ.m == 1
        ours = [log_block_integral(integ, acc) for acc in ACCURACY]
        _, mode, _ = _gaussian_part(integ, ACCURACY[-1])
        plain = _nquad_full(integ, mode)
        assert np.allclose(ours, plain, rtol=0.0, atol=1e-8), (combo, ours, plain)


@pytest.mark.parametrize("m, rank", [(2, 2), (2, 1), (3, 2)])
def test_nested_censored_integral_matches_orthant_probability(m, rank):
    """E[prod Phi(c + R y)] = P(E - R y <= c) with E - R y ~ N(0, I + R R^T)."""
    rng = np.random.default_rng(m + 10 * rank)
    for _ in range(3):
        r = np.tril(rng.normal(size=(m, m)) * 3.0)
        r[:, rank:] = 0.0
        c = rng.normal(size=m) * 2.0
        ours = [log_expect_phi(c, r, acc) for acc in ACCURACY]
        ref = multivariate_normal.cdf(c, mean=np.zeros(m), cov=np.eye(m) + r @ r.T,
                                      abseps=1e-10, releps=1e-8, maxpts=2_000_000,
                                      rng=np.random.default_rng(0))
        assert np.allclose(np.exp(ours), ref, rtol=0.0, atol=1e-7), (c, r, np.exp(ours), ref)
