"""Fit population parameters to a cohort with PyMC (researchers' use).

The model is :mod:`neb_bayes.inference.pymc_model` (per-person states summed out exactly,
latents integrated analytically), so NUTS samples only population parameters.  Parameter
groups not being fitted stay at the prior set's values.  The result is saved as a prior set
(netCDF with the draws, the tables and provenance) that ``neb-bayes report --priors`` uses.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from neb_bayes.fit_whitening import (
    Z_NAME,
    Whitening,
    find_whitening,
    whitened_model,
    whitened_start,
    without_whitened,
)
from neb_bayes.model.compiled import CompiledModel
from neb_bayes.model.params import (
    GROUP_PARAMS,
    PARAM_GROUPS,
    ParamDraws,
    latent_mean_spread,
    point_params,
)

#: convergence thresholds below which `priors fit` refuses to save (unless --force)
#: ``logp_gap_max``: a gap between chains' median log densities above this, and above
#: ``logp_gap_z`` Monte Carlo standard errors of the gap, is a chain in a minor mode
THRESHOLDS = {"r_hat_max": 1.01, "ess_bulk_min": 400.0, "ess_tail_min": 400.0,
              "divergences_max": 0, "bfmi_min": 0.3, "logp_gap_max": 10.0, "logp_gap_z": 5.0}

#: the fit's prior spread of a free parameter where the prior set's ``uncertainty`` table
#: gives none (no table, or a spread of 0): wide, so that the cohort decides
FALLBACK_PRIOR_SD = {"lat_mean": 0.5, "lat_sd": 0.3, "log_median": 0.3, "prior_base": 1.5,
                     "cause_logit": 1.0, "leak_logit": 1.0}
#: the ``uncertainty`` entry that gives each free parameter's prior spread (``lat_mean``: per
#: axis and latent, :func:`~neb_bayes.model.params.latent_mean_spread`), as it gives the
#: literature draws' (:func:`~neb_bayes.model.params.literature_draws`)
UNCERTAINTY_ENTRY = {"lat_sd": "latent_sd", "log_median": "median", "prior_base": "prevalence",
                     "cause_logit": "symptom", "leak_logit": "symptom"}


def widen_factors(widen: float | Mapping[str, float]) -> dict[str, float]:
    """The factor on each parameter group's prior spreads: ``widen`` for all, or per group
    name (a mapping; groups it does not name 1)."""
    per_group = dict(widen) if isinstance(widen, Mapping) else dict.fromkeys(GROUP_PARAMS, widen)
    unknown = sorted(set(per_group) - set(GROUP_PARAMS))
    if unknown:
        raise ValueError(f"unknown parameter group(s) {unknown} to widen the prior of; choose "
                         f"from {list(GROUP_PARAMS)}")
    for group, factor in per_group.items():
        if not (isinstance(factor, (int, float)) and not isinstance(factor, bool)
                and np.isfinite(factor) and factor > 0):
            raise ValueError(f"the prior's widening must be a number above 0, got {factor!r}"
                             + (f" for {group}" if isinstance(widen, Mapping) else ""))
    return {g: float(per_group.get(g, 1.0)) for g in GROUP_PARAMS}


def prior_sd(model: CompiledModel, widen: float | Mapping[str, float] = 1.0) -> dict[str, Any]:
    """The fit's prior: each free parameter normal about the prior set's value (``lat_sd``
    log-normal) with the spread the prior set's own ``uncertainty`` table gives it, the
    spread of its literature draws, times ``widen`` (one factor, or one per parameter group:
    :func:`widen_factors`); :data:`FALLBACK_PRIOR_SD` where the table gives none.  A fit so
    updates the prior set's uncertainty with the cohort (the draws a report uses without a
    fit are draws of this prior); ``widen`` > 1 for a cohort whose population or
    laboratories the literature may not describe (e.g. ``{"prevalence": 4}`` for a clinic's
    patients measured by the usual laboratories).

    Returns the spread per group name: a float, or for ``lat_mean`` one ``(K,)`` array per
    axis (per latent)."""
    factors = widen_factors(widen)
    factor = {name: factors[g] for g, names in GROUP_PARAMS.items() for name in names}
    table = model.spec.raw.get("uncertainty") or {}

    def spread(value, name: str):
        value = np.asarray(value, dtype=np.float64)
        return factor[name] * np.where(value > 0, value, FALLBACK_PRIOR_SD[name])

    # numpy's float64, not Python floats: pytensor would make a float32 constant of one that
    # float32 holds exactly (0.25), and the log density would take its logarithm in float32
    out: dict[str, Any] = {name: np.float64(spread(table.get(entry, 0.0), name))
                           for name, entry in UNCERTAINTY_ENTRY.items()}
    out["lat_mean"] = [spread(latent_mean_spread(model, ai), "lat_mean")
                       for ai in range(len(model.axes))]
    return out


@dataclass
class FitResult:
    idata: Any
    draws: ParamDraws
    diagnostics: dict[str, Any]
    passed: bool
    attrs: dict[str, Any] = field(default_factory=dict)


def cohort_hash(cases) -> str:
    """Content hash of a cohort (order-independent), for provenance."""
    from neb_bayes.batch.export import case_to_dict

    blobs = sorted(json.dumps(case_to_dict(c), sort_keys=True, default=str) for c in cases)
    return hashlib.sha256("\n".join(blobs).encode()).hexdigest()[:16]


def prior_sd_record(model: CompiledModel, spreads: dict[str, Any],
                    groups: Sequence[str]) -> dict[str, Any]:
    """The fitted groups' prior spreads (:func:`prior_sd`) as plain values for the
    provenance: ``lat_mean`` per axis and latent."""
    out: dict[str, Any] = {}
    for name in (n for g in groups for n in GROUP_PARAMS[g]):
        if name == "lat_mean":
            out[name] = {ax.name: dict(zip(ax.latents, map(float, spreads[name][ai]), strict=True))
                         for ai, ax in enumerate(model.axes) if ax.latents}
        else:
            out[name] = spreads[name]
    return out


def build_fit_model(model: CompiledModel, cases, groups=("analyte-levels",), labels=None,
                    table_dtype: str = "float32", prepared=None,
                    prior_widen: float | Mapping[str, float] = 1.0):
    """The PyMC model of a cohort: free RVs for the chosen parameter groups + the exact
    summed-out log-likelihood as a potential.

    ``table_dtype`` is the precision of the per-person tables that the states are summed
    out of: a prevalence-only fit's (:func:`neb_bayes.inference.pymc_model.group_loglik`),
    and the elimination's tables and messages in the other fits
    (:func:`~neb_bayes.inference.pymc_model.eliminate`; the laboratory factors themselves
    are computed in double precision).  ``"float32"``: less memory traffic per evaluation
    (an analyte-level evaluation ~12 % faster at 1,000 and 10,000 people, 2026-12-07),
    about 1e-7 relative error in each person's evidence; ``"float64"``: exact.
    ``prepared``: the cohort's :func:`~neb_bayes.inference.pymc_model.prepare_cohort`, if the
    caller has it.  The free parameters' prior: :func:`prior_sd` (``prior_widen``)."""
    import pymc as pm
    import pytensor.tensor as pt

    from neb_bayes.inference.pymc_model import (
        cohort_loglik,
        prepare_cohort,
        shared_pack,
        symptom_tables,
    )

    unknown = set(groups) - set(PARAM_GROUPS)
    if unknown:
        raise ValueError(f"unknown parameter group(s) {sorted(unknown)}; choose from {PARAM_GROUPS}")
    pt_ = point_params(model)
    sd = prior_sd(model, prior_widen)
    data = prepare_cohort(model, cases, labels) if prepared is None else prepared
    coords = {"channel": [c.name for c in model.channels], "symptom": list(model.symptoms),
              "symptom_entry": [f"{c}|{y}" for c, y in model.symptom_table.entries]}
    for ax in model.axes:
        coords[f"{ax.name}_state"] = list(ax.states)
        coords[f"{ax.name}_free_state"] = [st for st, b in zip(ax.states, ax.baseline,
                                                                strict=True) if not b]
        if ax.latents:
            coords[f"{ax.name}_latent"] = list(ax.latents)
    with pm.Model(coords=coords) as pmodel:
        theta: dict[str, Any] = {"lat_mean": [], "lat_sd": [], "prior_base": []}
        for ai, ax in enumerate(model.axes):
            m0, s0 = pt_.lat_mean[ai][0], pt_.lat_sd[ai][0]
            # healthy (baseline) states anchor the latents at the prior set's values (0):
            # identifiability; only the other states' means and prevalences are variables
            free = np.flatnonzero(~ax.baseline)
            if "analyte-levels" in groups and ax.latents:
                latent = f"{ax.name}_latent"
                lat_m = pt.as_tensor_variable(m0)
                if free.size:
                    raw_m = pm.Normal(f"lat_mean__{ax.name}", m0[free], sd["lat_mean"][ai],
                                      dims=(f"{ax.name}_free_state", latent))
                    lat_m = pt.set_subtensor(lat_m[free], raw_m)
                lat_s = pm.LogNormal(f"lat_sd__{ax.name}", np.log(s0), sd["lat_sd"],
                                     dims=(f"{ax.name}_state", latent))
            else:   # fixed groups stay numpy: their factors are computed once, in numpy
                lat_m, lat_s = m0, s0
            theta["lat_mean"].append(lat_m)
            theta["lat_sd"].append(lat_s)
            b0 = pt_.prior_base[ai][0]
            if "prevalence" in groups and free.size:
                raw_b = pm.Normal(f"prior_base__{ax.name}", b0[free], sd["prior_base"],
                                  dims=f"{ax.name}_free_state")
                theta["prior_base"].append(pt.set_subtensor(pt.as_tensor_variable(b0)[free],
                                                            raw_b))
            else:
                theta["prior_base"].append(b0)
        if "analyte-levels" in groups:
            theta["log_median"] = pm.Normal("log_median", pt_.log_median[0], sd["log_median"],
                                            dims="channel")
        else:
            theta["log_median"] = pt_.log_median[0]
        if "symptoms" in groups:
            cl = pm.Normal("cause_logit", pt_.cause_logit[0], sd["cause_logit"],
                           dims="symptom_entry")
            ll = pm.Normal("leak_logit", pt_.leak_logit[0], sd["leak_logit"], dims="symptom")
        else:
            cl, ll = pt_.cause_logit[0], pt_.leak_logit[0]
        theta["symptom_logits"] = (cl, ll)
        theta["symptom_tables"] = symptom_tables(model, cl, ll)
        with shared_pack():     # the cohort's arrays in a few shared variables
            total = sum(ll for _, ll in cohort_loglik(theta, data, table_dtype, totals=True))
        pm.Potential("cohort_loglik", total)
    return pmodel


def _two_chains(post):
    """The draws as R-hat reads them: one chain as its two halves (ArviZ gives no R-hat for
    one chain; split R-hat then compares the chain's four quarters, as Stan's does), more
    chains as they are."""
    import xarray as xr

    if post.sizes["chain"] != 1 or post.sizes["draw"] < 8:
        return post
    half = post.sizes["draw"] // 2
    return xr.concat([post.isel(chain=[0], draw=slice(i * half, (i + 1) * half))
                      .assign_coords(chain=[i], draw=np.arange(half)) for i in range(2)],
                     dim="chain")


def diagnostics(idata) -> dict[str, Any]:
    """R-hat, bulk/tail ESS, divergences and BFMI of a fit."""
    import arviz as az

    post = idata.posterior
    rhat = az.rhat(_two_chains(post.to_dataset()))
    ess_b = az.ess(idata, method="bulk")
    ess_t = az.ess(idata, method="tail")

    def extreme(ds, fn):
        vals = [float(fn(np.asarray(ds[v]))) for v in ds.data_vars if np.asarray(ds[v]).size]
        return fn(np.array(vals)) if vals else float("nan")

    out = {
        "r_hat_max": extreme(rhat, np.nanmax),
        "ess_bulk_min": extreme(ess_b, np.nanmin),
        "ess_tail_min": extreme(ess_t, np.nanmin),
        "n_parameters": int(sum(np.asarray(post[v]).size // (post.sizes["chain"] * post.sizes["draw"])
                                for v in post.data_vars)),
    }
    stats = idata.sample_stats
    div_name = "diverging" if "diverging" in stats else "divergences"
    out["divergences"] = int(np.asarray(stats[div_name]).sum()) if div_name in stats else 0
    # each chain's median log density (nutpie: logp, PyMC: lp): a chain far below another
    # sits in a minor mode it will not leave (see INIT_SPREAD); the gap's Monte Carlo
    # standard error (from each chain's own autocorrelation) tells a gap that short or
    # slowly mixing chains leave by chance
    lp_name = next((n for n in ("logp", "lp") if n in stats), None)
    if lp_name is not None:
        lp = np.asarray(stats[lp_name], dtype=float)
        medians = np.median(lp, axis=1)
        out["chain_logp_median"] = [round(float(x), 2) for x in medians]
        out["logp_gap"] = float(medians.max() - medians.min())
        se = [float(np.nan_to_num(az.mcse(lp[[k]], method="median")))
              for k in (int(np.argmin(medians)), int(np.argmax(medians)))]
        out["logp_gap_se"] = float(np.hypot(*se))
    if "energy" in stats:
        bfmi = az.bfmi(idata)     # a DataTree / Dataset with an `energy` variable (ArviZ 1)
        values = np.asarray(bfmi["energy"] if not isinstance(bfmi, np.ndarray) else bfmi)
        out["bfmi_min"] = float(np.min(values))
    else:                         # a sampler that records no energy: BFMI does not apply
        out["bfmi_min"] = float("nan")
    return out


def check_thresholds(diag: dict[str, Any]) -> list[str]:
    fails = []
    if not diag["r_hat_max"] <= THRESHOLDS["r_hat_max"]:
        fails.append(f"max R-hat {diag['r_hat_max']:.3f} > {THRESHOLDS['r_hat_max']}")
    if not diag["ess_bulk_min"] >= THRESHOLDS["ess_bulk_min"]:
        fails.append(f"min bulk ESS {diag['ess_bulk_min']:.0f} < {THRESHOLDS['ess_bulk_min']:.0f}")
    if not diag["ess_tail_min"] >= THRESHOLDS["ess_tail_min"]:
        fails.append(f"min tail ESS {diag['ess_tail_min']:.0f} < {THRESHOLDS['ess_tail_min']:.0f}")
    if diag["divergences"] > THRESHOLDS["divergences_max"]:
        fails.append(f"{diag['divergences']} divergent transitions")
    if not (diag["bfmi_min"] >= THRESHOLDS["bfmi_min"] or np.isnan(diag["bfmi_min"])):
        fails.append(f"min BFMI {diag['bfmi_min']:.2f} < {THRESHOLDS['bfmi_min']}")
    gap, gap_se = diag.get("logp_gap", 0.0), diag.get("logp_gap_se", 0.0)
    if gap > max(THRESHOLDS["logp_gap_max"], THRESHOLDS["logp_gap_z"] * gap_se):
        lp = diag["chain_logp_median"]
        within = f" ({gap / gap_se:.0f} standard errors)" if gap_se > 0 else ""
        fails.append(f"chain {int(np.argmin(lp))}'s median log density is {gap:.0f} below "
                     f"chain {int(np.argmax(lp))}'s{within}: it sits in a minor mode (more "
                     "draws will not help; check the prior set's values against the cohort)")
    return fails


def draws_from_posterior(model: CompiledModel, idata,
                         base: ParamDraws | None = None) -> ParamDraws:
    """Posterior draws of the fitted groups; the other groups keep the prior set's: its
    parameter draws ``base`` when given, draw ``k`` of the fit paired with draw ``k mod D``
    of the ``D`` there (their uncertainty stays in every report made with the fitted set:
    the fit did not update them, so their distribution is still the prior set's), else its
    point values (no uncertainty left in them).

    The fitted groups were sampled with the others at the prior set's point values: pairing
    their draws with the others' draws treats the two as independent (a cut), which is
    what the prior set's draws say of the groups not fitted.  The healthy states' latent
    means and prevalences anchor a fitted group (its variables are the other states'
    only): they keep the anchor, the prior set's point values, as in the fit (the
    laboratories' medians were fitted about them)."""
    post = idata.posterior
    n = post.sizes["chain"] * post.sizes["draw"]
    pt_ = point_params(model)
    rows = None if base is None else np.arange(n) % base.n_draws

    def get(name, default, drawn, free=None):
        if name not in post:
            return np.repeat(default, n, axis=0) if rows is None else np.asarray(drawn)[rows]
        if free is None:
            return np.asarray(post[name]).reshape((n,) + default.shape[1:])
        out = np.repeat(default, n, axis=0)       # anchored entries: the anchor
        out[:, free] = np.asarray(post[name]).reshape((n, free.size) + default.shape[2:])
        return out

    src = pt_ if base is None else base
    lat_mean, lat_sd, prior_base = [], [], []
    for ai, ax in enumerate(model.axes):
        free = np.flatnonzero(~ax.baseline)
        lat_mean.append(get(f"lat_mean__{ax.name}", pt_.lat_mean[ai], src.lat_mean[ai], free))
        lat_sd.append(get(f"lat_sd__{ax.name}", pt_.lat_sd[ai], src.lat_sd[ai]))
        prior_base.append(get(f"prior_base__{ax.name}", pt_.prior_base[ai], src.prior_base[ai],
                              free))
    return ParamDraws(
        lat_mean=tuple(lat_mean), lat_sd=tuple(lat_sd),
        log_median=get("log_median", pt_.log_median, src.log_median),
        prior_base=tuple(prior_base),
        cause_logit=get("cause_logit", pt_.cause_logit, src.cause_logit),
        leak_logit=get("leak_logit", pt_.leak_logit, src.leak_logit),
        attrs={"kind": "fit"}, n_chains=int(post.sizes["chain"]),
    )


#: measured cost of one log-density + gradient when a group whose factors are evaluated per
#: person at every step is free: about ``fixed + per_person x people`` seconds.  Analyte
#: levels (the compiled laboratory kernel, its forward pass once per evaluation, Ops reached
#: by key from the compiled graph, the elimination's tables in single precision, people
#: alike sharing the kernel's work per person and grid points a person's results cannot
#: tell apart its factor; 2-core AMD EPYC, 2026-12-07, ``bench_fit.py --time-eval``, one
#: thread, every person in the information form): 13.1-13.5 ms at 300 people, 27.6-28.5 ms
#: at 1,000 (13:55), 206-209 ms at 10,000 (14:20; the code before the sharing, alternating
#: with it: 12.7-13.5, 28.7-29.2 and 242-257 ms; at 05:57 the same day, before the
#: single-precision elimination: 15.3, 34.4 and 297 ms; the Intel Xeon of 2026-12-03: 28.7
#: and 69.6 ms at 300 and 1,000); the elimination's numpy steps folded into its compiled
#: loops at 18:12–20:05 made it ~10 % faster, alternating with the code before beside a fit
#: on the other core (206-213 against 227-240 ms at 10,000, 29-30 against 32-34 ms at 1,000),
#: so the per-person cost is the 14:20 figure times 0.9.  Symptoms
#: (each person's present-symptom table over the axes that cause them and the propensity
#: level, summed out in the elimination): 21, 67-74 and 279 ms of CPU at 100, 300 and 1,000
#: people (2026-12-03).  A prevalence fit is far cheaper (17 ms at 10,000 people) and is not
#: listed.
EVAL_COST_S = {"analyte-levels": (0.005, 0.018e-3), "symptoms": (0.005, 0.27e-3)}
#: measured cost per log-density + gradient of one person-axis whose factor is the exact
#: engine's (:attr:`~neb_bayes.inference.pymc_model.GroupData.exact`: three or more
#: censored results on the axis) while analyte levels are free: ~1.4 ms (its value and two-point
#: differences, 2026-12-06); a constant otherwise
EXACT_PERSON_AXIS_COST_S = 1.4e-3
#: nutpie's leapfrog steps per draw over warm-up and sampling, each dearer inside the
#: sampler than alone: a 1,000-person analyte-level fit, 2 x (300 + 300), took 15 steps per
#: draw and ~73 ms per step against 64.8 ms for one evaluation alone (2026-12-06): 15 x 1.12
#: (2026-12-07: 347 s wall for the fit, ~36 ms per step against 34.4 ms alone, 15 x 1.06;
#: at 11:05, 292 s with ~20 s of it building and compiling, ~30 ms per step against 27 ms
#: alone, 15 x 1.1)
EVALS_PER_DRAW = 17
#: the same on whitened coordinates (:mod:`neb_bayes.fit_whitening`): 11 steps per draw in a
#: 1,000-person analyte-level fit, 2 x (300 + 1,500) (2026-12-08, 748 s wall); one chain of
#: 10,000 people, 300 + 300 draws: 10.9 against 13.6 steps per draw on the model's own
#: coordinates (the same seed, side by side)
EVALS_PER_DRAW_WHITENED = 12.5
#: the whitening's own cost before the chains start: its log-density and gradient
#: evaluations (the mode's at most ~250 L-BFGS iterations and 2 per parameter for the
#: Hessian: 719 for the analyte-level group at 1,000 people, 41 s with compiling) and the
#: compiling, in seconds (2026-12-08)
WHITENING_EVALS = 750
WHITENING_COMPILE_S = 15.0


#: draws per chain kept after tuning when none are asked for: a prevalence-only fit mixes
#: fast (2 x 1,000 draws of 10,000 people: tail ESS 1,123 or more); free analyte levels and
#: symptom rates include rare states' parameters that mix slowly: 2 x 1,000 draws of a
#: 1,000-person analyte-level fit were refused twice at the thresholds' edge (tail ESS 377,
#: then R-hat 1.0108 on one parameter), 2 x 1,500 passed with a margin (R-hat 1.0069, ESS
#: bulk/tail 612/778; 18.5 min on 2 cores; 2026-12-07, docs/performance-history.md).  Under
#: the prior set's own spreads (:func:`prior_sd`) the slow parameters mix: 2 x (300 + 1,000)
#: draws of 1,000 people gave ESS bulk/tail min 1,989/905 but R-hat max 1.0089, on a
#: parameter with bulk ESS 3,524: R-hat's own noise over ~250 parameters, not the mixing,
#: now asks for the draws (2026-12-07 21:54)
DEFAULT_DRAWS = {"prevalence": 1000, "other": 1500}


def default_draws(groups: Sequence[str]) -> int:
    """Draws per chain for a fit of ``groups`` when none are asked for
    (:data:`DEFAULT_DRAWS`)."""
    return DEFAULT_DRAWS["prevalence" if set(groups) <= {"prevalence"} else "other"]


#: tuning steps per chain when none are asked for, per sampler: each one's own default.
#: nutpie adapts its mass matrix from the gradients as well as the draws and is made for
#: short warm-ups: a 1,000-person analyte-level fit with 2 x (300 + 1,500) passed the checks
#: twice (seeds 0 and 1: R-hat max 1.0073 and 1.0078, ESS bulk/tail min 519/704 and
#: 478/516) as 2 x (1,000 + 1,500) did (1.0069, 612/778), its posterior means the same
#: within Monte Carlo error, in 14.5 and 13.6 min instead of 18.5 (2026-12-07,
#: docs/performance-history.md); PyMC's NUTS adapts from the draws alone.
DEFAULT_TUNE = {"nutpie": 300, "pymc": 1000}


#: parameter groups whose fits sample whitened coordinates by default
#: (:mod:`neb_bayes.fit_whitening`), from this many people on: the model's slow
#: evaluations, in cohorts large enough that the parameters are correlated (the condition
#: number of the analyte-level group's posterior correlation at its mode: 4.9 at 150
#: simulated people, 12 at 1,000, 32 at 10,000), where the leapfrog steps saved outweigh the
#: mode and Hessian found first
WHITEN_GROUPS = frozenset({"analyte-levels"})
WHITEN_MIN_PEOPLE = 1000


def default_whiten(groups: Sequence[str], n_people: int) -> bool:
    """Whether a fit of ``groups`` to ``n_people`` samples whitened coordinates when not
    told (:data:`WHITEN_GROUPS`, :data:`WHITEN_MIN_PEOPLE`)."""
    return bool(WHITEN_GROUPS & set(groups)) and n_people >= WHITEN_MIN_PEOPLE


def default_tune(sampler: str) -> int:
    """Tuning steps per chain for ``sampler`` when none are asked for
    (:data:`DEFAULT_TUNE`)."""
    return DEFAULT_TUNE[sampler]


def expected_fit_seconds(n_people: int, tune: int, draws: int, chains: int,
                         groups: Sequence[str] = ("analyte-levels",),
                         cores: int = 2, exact_person_axes: int = 0,
                         whiten: bool = False) -> float:
    """Expected wall time of a fit with ``groups`` free from the measured costs above
    (:data:`EVAL_COST_S`, summed over the free groups listed there, and
    :data:`EXACT_PERSON_AXIS_COST_S` for each of ``exact_person_axes`` when analyte levels
    are free; chains in parallel, one per core; with ``whiten``, fewer steps per draw,
    :data:`EVALS_PER_DRAW_WHITENED`, after the whitening's own evaluations), compilation
    not included; 0 when none of them is free."""
    costs = [EVAL_COST_S[g] for g in groups if g in EVAL_COST_S]
    if not costs:
        return 0.0
    per_eval = sum(fixed + per_person * n_people for fixed, per_person in costs)
    if "analyte-levels" in groups:
        per_eval += EXACT_PERSON_AXIS_COST_S * exact_person_axes
    waves = -(-chains // max(1, cores))
    if not whiten:
        return (tune + draws) * EVALS_PER_DRAW * per_eval * waves
    return ((tune + draws) * EVALS_PER_DRAW_WHITENED * per_eval * waves
            + WHITENING_EVALS * per_eval + WHITENING_COMPILE_S)


def runs_in_python(pmodel) -> bool:
    """Whether the model's log-density evaluates Ops from Python (the laboratory factors of
    free analyte levels, the elimination over states when symptom or analyte-level
    parameters are free): those hold the GIL while they run."""
    try:
        from pytensor.graph.traversal import ancestors
    except ImportError:   # pytensor before 3.x's traversal module
        from pytensor.graph.basic import ancestors

    return any(getattr(getattr(v.owner, "op", None), "runs_in_python", False)
               for v in ancestors(list(pmodel.potentials)))


def chain_seeds(seed: int, chains: int) -> list[int]:
    """One independent seed per chain (for chains sampled in separate processes)."""
    return [int(x) for x in np.random.SeedSequence(seed).generate_state(chains)]


#: where chains start: at the prior set's values, each free parameter moved by a uniform
#: draw of up to this many of its prior sds (:func:`prior_sd`) in the sampler's space.
#: PyMC's and nutpie's default start moves every parameter by up to 1 in that space
#: whatever its scale, 3.3 prior sds for a laboratory's median: at 500 simulated people with
#: analyte levels and prevalence free, one chain of two started in a relabelled mode (the
#: metabolic axis's healthy state on the prediabetic people, the glucose and insulin medians
#: up to 2.3-fold higher) 32 log-density units below the other chain and stayed there
#: (R-hat 1.88; the 2,000-person run failed alike, R-hat 1.94).  From this start both chains
#: found the same mode (median log densities 0.3 apart).
INIT_SPREAD = 0.25


def _prior_scale(rv) -> np.ndarray:
    """A free variable's prior sd in the sampler's space: its normal's (or, log-transformed,
    its log-normal's) ``sigma``, as built by :func:`build_fit_model`."""
    return np.asarray(rv.owner.op.dist_params(rv.owner)[-1].eval(), dtype=np.float64)


class _Start(NamedTuple):
    """Where chains start (:func:`_start`)."""

    #: a chain's seed -> its start in the sampler's space (:func:`start_function`)
    start: Callable[[Any], np.ndarray]
    #: the free variables' shapes, in the model's order
    shapes: list[tuple[int, ...]]
    #: the prior set's values in the sampler's space (flat, the model's order)
    centre: np.ndarray
    #: the free parameters' prior sds in the sampler's space (flat, the model's order)
    sd: np.ndarray


def _start(pmodel) -> _Start:
    """:func:`start_function` and what it is made of, from one evaluation of the prior set's
    values."""
    from pymc.initial_point import make_initial_point_fn

    names = [pmodel.rvs_to_values[rv].name for rv in pmodel.free_RVs]
    centre = make_initial_point_fn(model=pmodel, jitter_rvs=set(), return_transformed=True)(0)
    flat_centre = np.concatenate([np.ravel(centre[n]).astype("float64") for n in names])
    flat_sd = np.concatenate([np.broadcast_to(_prior_scale(rv), np.shape(centre[n])).ravel()
                              for n, rv in zip(names, pmodel.free_RVs, strict=True)])

    def start(chain_seed) -> np.ndarray:
        move = np.random.default_rng(chain_seed).uniform(-1.0, 1.0, flat_centre.size)
        return flat_centre + INIT_SPREAD * flat_sd * move

    return _Start(start, [np.shape(centre[n]) for n in names], flat_centre, flat_sd)


def start_function(pmodel):
    """Where chains start, as nutpie takes it: a function of a chain's seed that returns the
    start in the sampler's (transformed) space as one flat vector (the free variables in
    the model's order): the prior set's values, each free parameter moved by
    ``U(-1, 1) x`` :data:`INIT_SPREAD` ``x`` its prior sd.  The prior set's values are
    computed once; the function itself is numpy only (nutpie calls it from its threads)."""
    return _start(pmodel).start


def initial_values(pmodel, seeds: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """Each seed's chain start (:func:`start_function`) in the parameters' own space, by
    name (``pm.sample``'s ``initvals``)."""
    start, shapes = _start(pmodel)[:2]
    out = []
    for seed in seeds:
        flat, at, values = start(seed), 0, {}
        for rv, shape in zip(pmodel.free_RVs, shapes, strict=True):
            size = int(np.prod(shape))
            x, at = flat[at:at + size].reshape(shape), at + size
            transform = pmodel.rvs_to_transforms.get(rv)
            values[rv.name] = x if transform is None else transform.backward(
                x, *rv.owner.inputs).eval()
        out.append(values)
    return out


def one_blas_thread():
    """A context in which this process's BLAS libraries run one thread each, as while chains
    sample: the chains are the parallelism (one per core), and each chain's small matrix
    products gain nothing from more threads.  OpenBLAS's threads spin while they wait for
    work, so two chain processes with two BLAS threads each on 2 cores took 2.2x the wall
    time and CPU of one thread each (a symptom-group fit of 80 people, 2 x (100 + 100)
    draws: 175 s against 81 s with nutpie, 192 s against 82 s with ``pm.sample``).  A
    single chain alone loses ~9 % of wall time to the limit and halves its CPU (one
    evaluation at 300 people: 67.2 ms against 61.5 ms wall and 122.5 ms CPU).
    Forked chains (``pm.sample``) inherit the setting; spawned ones (:func:`_nutpie_chain`)
    enter it themselves.  scipy's OpenBLAS, which the graph's compiled products call, is
    loaded first so that the limit reaches it."""
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS, which numba's np.dot calls)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity, where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:     # (macOS, Windows)
        return os.cpu_count() or 1


def chain_layout(chains: int, cores: int) -> tuple[int, int]:
    """``(chains at once, threads per chain)`` for chains in processes on ``cores`` cores:
    as many chains at once as there are cores, and each chain the cores left over
    (:func:`~neb_bayes.inference.python_ops.set_threads`: its Ops' pieces of people on
    threads), e.g. 2 chains on 16 cores: 8 threads each."""
    at_once = max(1, min(chains, cores))
    return at_once, max(1, cores // at_once)


def _nutpie_sample(pmodel, *, draws: int, tune: int, chains: int, seed: int,
                   progressbar: bool, cores: int = 2, whitening: Whitening | None = None):
    """nutpie on a PyMC model: its chains in threads of this process, each started by
    :func:`start_function`; with a ``whitening``, on the model's whitened coordinates
    (:mod:`neb_bayes.fit_whitening`), the trace given as the model's own."""
    import dataclasses

    import nutpie

    start = start_function(pmodel)
    target = pmodel
    if whitening is not None:
        target, start = whitened_model(pmodel, whitening), whitened_start(start, whitening)
    with warnings.catch_warnings():
        # our Ops run from Python by design (numba calls them in object mode): not news to
        # the user
        warnings.filterwarnings("ignore", message="Numba will use object mode to run _",
                                category=UserWarning)
        compiled = nutpie.compile_pymc_model(target, backend="numba", jitter_rvs=set())
    compiled = dataclasses.replace(compiled, initial_point_func=start)
    with one_blas_thread():
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                              progress_bar=progressbar, cores=max(1, min(chains, cores)))
    return idata if whitening is None else without_whitened(idata)


def _nutpie_chain(model: CompiledModel, cases, groups, labels, table_dtype: str, draws: int,
                  tune: int, seed: int, progressbar: bool, threads: int = 1,
                  prior_widen: float | Mapping[str, float] = 1.0,
                  whitening: Whitening | None = None):
    """One nutpie chain in this process (a worker of :func:`_nutpie_in_processes`), its
    Ops' pieces on ``threads`` threads."""
    from neb_bayes.inference.python_ops import set_threads

    set_threads(threads)     # before the model: its laboratory parts are sized for them
    pmodel = build_fit_model(model, cases, groups, labels, table_dtype,
                             prior_widen=prior_widen)
    return _nutpie_sample(pmodel, draws=draws, tune=tune, chains=1, seed=seed,
                          progressbar=progressbar, whitening=whitening)


def _nutpie_in_processes(model: CompiledModel, cases, groups, labels, table_dtype: str, *,
                         draws: int, tune: int, seeds: list[int], progressbar: bool,
                         cores: int, prior_widen: float | Mapping[str, float] = 1.0,
                         whitening: Whitening | None = None):
    """nutpie, one chain per seed and process (at most one process per core), the chains
    joined.

    nutpie runs its chains in threads, which take turns on the GIL while Ops evaluated
    from Python run (a 2-chain fit of 100 people used one core); in processes they run side
    by side, as many at once as there are ``cores``, each with the cores left over as
    threads (:func:`chain_layout`).  Each process builds and compiles the model itself
    (spawned: no fork of a process with compiler threads).  The progress bar is the first
    chain's."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    workers, threads = chain_layout(len(seeds), cores)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            futures = [ex.submit(_nutpie_chain, model, cases, groups, labels, table_dtype, draws,
                                 tune, s, progressbar and i == 0, threads, prior_widen,
                                 whitening)
                       for i, s in enumerate(seeds)]
            return join_chains([f.result() for f in futures])
    except BrokenProcessPool as exc:
        raise RuntimeError(
            "a chain's process ended abruptly (out of memory, killed, or failed to start: a "
            "script that runs a fit must call it under `if __name__ == \"__main__\":`, "
            "because each chain's process imports the script again)") from exc


def nuts_library(idata) -> str:
    """The library that ran NUTS, as the trace records it (PyMC on the posterior group,
    nutpie on the sample statistics)."""
    for group in ("posterior", "sample_stats"):
        if group in idata.children and "inference_library" in idata[group].attrs:
            library = idata[group].attrs["inference_library"]
            return getattr(library, "__name__", str(library))   # pymc: the module
    return "unknown"


def join_chains(trees):
    """ArviZ DataTrees of single chains as one DataTree with chains ``0..n-1``."""
    import xarray as xr

    groups = {}
    for name in trees[0].children:
        parts = [t[name].to_dataset() for t in trees]
        if "chain" in parts[0].dims:
            parts = [p.assign_coords(chain=[i]) for i, p in enumerate(parts)]
            groups[name] = xr.concat(parts, dim="chain", combine_attrs="drop_conflicts")
        else:
            groups[name] = parts[0]
    out = xr.DataTree.from_dict(groups)
    out.attrs = dict(trees[0].attrs)
    return out


def fit(model: CompiledModel, cases, *, groups=("analyte-levels",), labels=None,
        draws: int | None = None,
        tune: int | None = None, chains: int = 2, sampler: str = "nutpie", seed: int = 0,
        progressbar: bool = True, table_dtype: str = "float32",
        drop_unsupported: bool = False,
        on_prepared: Callable[[int, dict[str, int]], None] | None = None,
        base_draws: ParamDraws | None = None, cores: int | None = None,
        prior_widen: float | Mapping[str, float] = 1.0,
        whiten: bool | None = None) -> FitResult:
    """Sample the population parameters given a cohort; diagnostics and provenance included.

    ``draws`` per chain after ``tune`` steps (defaults: :func:`default_draws` of ``groups``,
    :func:`default_tune` of ``sampler``).
    ``sampler``: ``"nutpie"`` (chains in threads when the log-density is all compiled code,
    as in a prevalence fit; otherwise one chain per process, :func:`_nutpie_in_processes`)
    or ``"pymc"`` (PyMC's own NUTS, chains in processes).  ``table_dtype``: see
    :func:`build_fit_model`.  Every case's evidence is used (where the information form does
    not reach, the exact engine's factor: :func:`~neb_bayes.inference.pymc_model.prepare_group`);
    labels a person cannot have (a state cut from their sex view) raise
    :class:`~neb_bayes.inference.pymc_model.UnsupportedEvidence` naming them all, unless
    ``drop_unsupported``: then the fit runs without those cases and its provenance counts
    them (``cohort_excluded``, and by reason).  ``on_prepared(n_people, exact)``, when given,
    is called once the cohort is prepared and before sampling, with the number of people
    fitted and :func:`exact_factors` (e.g. to announce the expected time).  ``base_draws``:
    the prior set's parameter draws, which the groups not fitted keep in the result
    (:func:`draws_from_posterior`; without them, its point values).  ``cores``: how many
    CPU cores the fit may use (default: :func:`available_cores`); chains in processes run
    as many at once and use the rest as threads (:func:`chain_layout`).  ``prior_widen``:
    the free parameters' prior spreads are the prior set's ``uncertainty`` table's times
    this, one factor or one per parameter group (:func:`prior_sd`).  ``whiten``: sample on
    coordinates whitened at the posterior's mode (:mod:`neb_bayes.fit_whitening`; the
    mode and Hessian are found first, on all ``cores``); default (None):
    :func:`default_whiten` of ``groups`` and the cohort's size.  If the mode cannot be
    found (a log density that is not finite there), the fit samples the model's own
    coordinates and its provenance says why.

    Chains in processes are spawned, and a spawned process imports the calling script
    again: a script that calls this must do so under ``if __name__ == "__main__":``, or
    its chains fail at start-up (a ``RuntimeError`` that says so)."""
    import pymc as pm

    from neb_bayes.inference.pymc_model import prepare_cohort, without_unsupported
    from neb_bayes.inference.python_ops import using_threads

    if sampler not in ("nutpie", "pymc"):
        raise ValueError(f"unknown sampler {sampler!r}; choose nutpie or pymc")
    if draws is None:
        draws = default_draws(groups)
    if tune is None:
        tune = default_tune(sampler)
    for name, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be a whole number from 0 to 2**64 - 1, got {seed!r}")
    spreads = prior_sd(model, prior_widen)
    if cores is None:
        cores = available_cores()
    elif not isinstance(cores, int) or isinstance(cores, bool) or cores < 1:
        raise ValueError(f"cores must be a whole number of at least 1, got {cores!r}")
    dropped: list[tuple[str, str]] = []
    if drop_unsupported:
        cases, labels, dropped = without_unsupported(model, cases, labels)
        if not cases:
            raise ValueError("no case left to fit")
    prepared = prepare_cohort(model, cases, labels)
    if on_prepared is not None:
        on_prepared(len(cases), exact_factors(prepared))
    threads = chain_layout(chains, cores)[1]
    # chains that run in this process (one nutpie chain) or are forked from it (pm.sample)
    # use its threads: the model is made for them (its laboratory parts and elimination
    # passes cut to keep them busy)
    here = threads if sampler == "pymc" or chains == 1 else 1
    with using_threads(here):
        pmodel = build_fit_model(model, cases, groups, labels, table_dtype, prepared,
                                 prior_widen)
    settings = {"sampler": sampler, "draws": draws, "tune": tune, "chains": chains, "seed": seed,
                "table_dtype": table_dtype, "init_spread": INIT_SPREAD, "cores": cores,
                "prior_widen": widen_factors(prior_widen)}
    whitening = None
    if default_whiten(groups, len(cases)) if whiten is None else whiten:
        begin = _start(pmodel)
        try:
            with using_threads(cores):
                whitening = find_whitening(pmodel, begin.centre, begin.sd)
            settings["whitening"] = whitening.record
        except ValueError as exc:
            settings["whitening"] = {"failed": str(exc)}
    else:
        settings["whitening"] = "off"
    # (threads serve the Ops evaluated from Python only: an all-compiled log-density has none)
    ops = runs_in_python(pmodel)
    if sampler == "nutpie" and chains > 1 and ops:
        settings["chains_in"] = "processes"
        settings["chain_seeds"] = chain_seeds(seed, chains)
        settings["threads_per_chain"] = threads
        idata = _nutpie_in_processes(model, cases, groups, labels, table_dtype, draws=draws,
                                     tune=tune, seeds=settings["chain_seeds"],
                                     progressbar=progressbar, cores=cores,
                                     prior_widen=prior_widen, whitening=whitening)
    elif sampler == "nutpie":
        settings["chains_in"] = "threads"
        settings["threads_per_chain"] = here if ops else 1
        with using_threads(here):
            idata = _nutpie_sample(pmodel, draws=draws, tune=tune, chains=chains, seed=seed,
                                   progressbar=progressbar, cores=cores, whitening=whitening)
    else:
        settings["chains_in"] = "processes"
        settings["threads_per_chain"] = here if ops else 1
        if whitening is None:
            target, starts = pmodel, initial_values(pmodel, chain_seeds(seed, chains))
        else:
            target, start = whitened_model(pmodel, whitening), _start(pmodel).start
            starts = [{Z_NAME: whitening.to_z(start(s))} for s in chain_seeds(seed, chains)]
        with target, one_blas_thread(), using_threads(here):
            # nuts_sampler="pymc": PyMC 6 otherwise hands NUTS to nutpie when it is installed
            idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=min(chains, cores),
                              random_seed=seed, progressbar=progressbar, nuts_sampler="pymc",
                              init="adapt_diag", initvals=starts,
                              compute_convergence_checks=False)
        if whitening is not None:
            idata = without_whitened(idata)
    settings["nuts_library"] = nuts_library(idata)
    diag = diagnostics(idata)
    fails = check_thresholds(diag)
    attrs = {
        "kind": "fit",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "cohort_hash": cohort_hash(cases),
        "cohort_n": len(cases),
        "cohort_excluded": len({cid for cid, _ in dropped}),
        "cohort_excluded_reasons": json.dumps(excluded_reasons(dropped)),
        "cohort_labelled": 0 if labels is None else sum(1 for x in labels if x),
        "cohort_exact_factors": json.dumps(exact_factors(prepared)),
        "fit_groups": ",".join(groups),
        "fit_prior_sd": json.dumps(prior_sd_record(model, spreads, groups)),
        "sampler_settings": json.dumps(settings),
        "diagnostics": json.dumps(diag),
        "package_versions": json.dumps(_versions()),
        "model_fingerprint": model.spec.fingerprint,
        "groups_not_fitted": ("the prior set's parameter draws, paired draw by draw"
                              if base_draws is not None else "the prior set's point values"),
    }
    return FitResult(idata=idata, draws=draws_from_posterior(model, idata, base_draws),
                     diagnostics=diag,
                     passed=not fails, attrs={**attrs, "threshold_failures": "; ".join(fails)})


def exact_factors(prepared) -> dict[str, int]:
    """Per axis, how many people's factor on it is the exact engine's (evidence beyond the
    fit's information form: three or more censored results on the axis;
    :attr:`~neb_bayes.inference.pymc_model.GroupData.exact`)."""
    out: dict[str, int] = {}
    for g in prepared:
        for ai, people in g.exact.items():
            name = g.model.axes[ai].name
            out[name] = out.get(name, 0) + len(people)
    return dict(sorted(out.items()))


def excluded_reasons(dropped: list[tuple[str, str]]) -> dict[str, int]:
    """How many cases were left out for each reason (the reasons without case ids)."""
    from collections import Counter

    return dict(Counter(msg for _, msg in dropped).most_common())


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("neb_bayes", "pymc", "pytensor", "arviz", "nutpie", "numpy", "scipy", "xarray"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
