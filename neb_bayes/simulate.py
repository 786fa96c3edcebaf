"""Simulate patients from the model itself (states -> latents -> results -> symptoms).

Used to check calibration (cases drawn from the model must be reported with calibrated
probabilities), for parameter-recovery studies and for benchmarks.  The simulator follows the
generative story written out in ARCHITECTURE.md, step by step, independently of the closed
form the exact engine uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neb_bayes.case.model import Case, Measurement, Patient, Symptoms
from neb_bayes.context import physiological_symptoms, read_context
from neb_bayes.evidence import context_latent_shifts, context_symptom_scale, result_adjustments
from neb_bayes.model.compiled import CompiledModel
from neb_bayes.model.prior import Covariates, log_prior

#: detection limits used when simulating censored results (canonical units; facts.md §3)
SIM_DETECTION_LIMITS = {
    "tsh": 0.01,        # 3rd-generation functional sensitivity
    "acth": 1.1,        # "<5 pg/mL"
    "estradiol": 18.0,  # direct immunoassay ~5 pg/mL
    "amh": 0.2,
    "testosterone": 0.1,
    "progesterone": 0.3,
    "cortisol_dst": 14.0,
    "lh": 0.1,
    "fsh": 0.1,
}

SIM_AGES = (25.0, 35.0, 45.0, 58.0, 72.0)
SIM_HOURS = (8.0, 9.0, 16.0, 23.0)


@dataclass(frozen=True)
class SimulatedCase:
    case: Case
    states: dict[str, str]          # axis -> true state
    conditions: dict[str, bool]     # condition id (and "none") -> true?
    gross_errors: tuple[int, ...] = ()  # indices of measurements that are gross errors


def _default_specimen(analyte: str) -> str:
    from neb_bayes.vocab import analytes

    a = analytes().get(analyte)
    return a.specimens[0] if a is not None and a.specimens else "serum"


def _sample_states(model: CompiledModel, cov: Covariates, rng: np.random.Generator) -> tuple[int, ...]:
    p = np.exp(log_prior(model, cov)).ravel()
    flat = rng.choice(p.size, p=p / p.sum())
    return tuple(int(i) for i in np.unravel_index(flat, model.shape))


def simulate_case(
    model: CompiledModel,
    rng: np.random.Generator,
    case_id: str,
    *,
    p_measure: float = 0.6,
    p_repeat: float = 0.1,
    p_symptom_reported: float = 0.3,
    patient_fields: dict | None = None,
    sex: str | None = None,
) -> SimulatedCase:
    """Draw one patient from the model.

    Context is read from the patient as the engine reads it (``patient_fields`` may add
    medications, context or pregnancy: e.g. ``{"pregnant": True, "gestational_week": 10}``),
    and its effects are applied to the results the engine will remove them from.  Each
    channel is measured with probability ``p_measure`` (so results are missing at random),
    repeated on a second day with probability ``p_repeat``; each symptom is reported (present
    or absent) with probability ``p_symptom_reported``.  ``sex`` fixes the patient's sex
    (default: drawn, F or M with equal probability; e.g. "F" for pregnancy fields).  Each
    axis' results hold at most one gross error (probability ``gross_error_rate`` per
    result), drawn from the prior set's gross-error distribution instead of the patient's
    states and latents.
    """
    drawn_sex = str(rng.choice(["F", "M"]))   # drawn either way: the stream does not depend on it
    sex = sex or drawn_sex
    age = float(rng.choice(SIM_AGES))
    patient = Patient(sex=sex, age=age, **(patient_fields or {}))
    skeleton = Case(id=case_id, patient=patient)
    ctx = read_context(skeleton)          # e.g. postmenopausal from age, as the engine reads it
    cov = Covariates(sex=sex, age=age, flags=frozenset(ctx.flags))
    s = _sample_states(model, cov, rng)
    lat_shift = context_latent_shifts(model, ctx)
    z = {}
    for ai, ax in enumerate(model.axes):
        if ax.latents:
            mean, cov_z = ax.lat_mean[s[ai]], ax.lat_cov[s[ai]]
            if ai in lat_shift:
                shift, scale = lat_shift[ai]
                mean, cov_z = mean + shift[s[ai]], cov_z * scale[s[ai]] ** 2
            z[ai] = rng.multivariate_normal(mean, cov_z)
    drawn: list[dict] = []
    for ci, ch in enumerate(model.channels):
        if rng.random() >= p_measure:
            continue
        u = rng.normal(0.0, ch.tau)
        days = [0.0] + ([float(rng.integers(7, 60))] if rng.random() < p_repeat else [])
        ctx_z = None    # the person's context variation in this channel (shared by repeats)
        for day in days:
            b = rng.normal(0.0, ch.cvi)
            hour = float(rng.choice(SIM_HOURS)) if ch.diurnal else None
            specimen = ch.specimens[0] if ch.specimens else _default_specimen(ch.analyte)
            shift, extra_var, d_off, _ = result_adjustments(model, ctx, ci, hour, None,
                                                            skeleton.patient)
            mean = ch.log_median + float(ch.loadings @ z[ch.axis]) + shift
            for eff in ch.effects:
                mean += eff.shift[s[eff.axis]]
            if ch.diurnal:
                mean += ch.amp[s[ch.amp_axis]] * d_off
            e = rng.normal(0.0, ch.cva)
            z_i = rng.normal()          # drawn for every result (the same random stream as ever)
            ctx_z = z_i if ctx_z is None else ctx_z
            y = mean + u + b + e + math.sqrt(extra_var) * ctx_z
            drawn.append({"ch": ci, "specimen": specimen, "hour": hour, "day": day, "y": y,
                          "shift": shift})
    # gross errors: at most one per axis block, each result with probability gross_error_rate;
    # a wrong result is drawn from the channel's population mixture among people of the
    # patient's sex, whatever the states (the engine reads it after removing the context
    # shift, as for any result)
    for ai in range(len(model.axes)):
        rows = [r for r in drawn if model.channels[r["ch"]].axis == ai]
        if rows and rng.random() < len(rows) * model.gross_error_rate:
            r = rows[int(rng.integers(len(rows)))]
            log_w, mean, sd = model.gross_mix_for(sex)[r["ch"]]
            k = rng.choice(log_w.size, p=np.exp(log_w) / np.exp(log_w).sum())
            r["y"] = rng.normal(mean[k], sd[k]) + r["shift"]
            r["gross"] = True
    measurements: list[Measurement] = []
    for r in drawn:
        value, censor = math.exp(r["y"]), "none"
        lod = SIM_DETECTION_LIMITS.get(model.channels[r["ch"]].name)
        if lod is not None and value < lod:
            value, censor = lod, "left"
        measurements.append(Measurement(
            index=len(measurements), analyte=model.channels[r["ch"]].analyte,
            specimen=r["specimen"], value=value, censor=censor, hour=r["hour"], day=r["day"]))
    gross = tuple(i for i, r in enumerate(drawn) if r.get("gross"))
    present, absent = set(), set()
    level = rng.choice(len(model.log_propensity_w), p=np.exp(model.log_propensity_w))
    scale = context_symptom_scale(model, ctx)          # treated disease causes fewer symptoms
    log1m_leak, log1m_cause = (
        (model.log1m_leak, model.log1m_cause) if scale is None
        else model.symptom_table.tables(scale=scale))
    physiology = physiological_symptoms(ctx.flags)     # a stage's own (the menopause's
    for yi, sym in enumerate(model.symptoms):          # amenorrhoea): not reported
        if rng.random() >= p_symptom_reported or sym in physiology:
            continue
        lq = log1m_leak[level, yi] + sum(
            log1m_cause[ai][s[ai], yi] for ai in range(len(model.axes)))
        (present if rng.random() < -math.expm1(lq) else absent).add(sym)
    states = {ax.name: ax.states[s[ai]] for ai, ax in enumerate(model.axes)}
    conds = {
        c: bool(model.cond_states[k][s[model.cond_axis[k]]])
        for k, c in enumerate(model.conditions)
    }
    conds["none"] = not any(conds.values())
    case = Case(
        id=case_id,
        patient=patient,
        measurements=tuple(measurements),
        symptoms=Symptoms(present=frozenset(present), absent=frozenset(absent)),
    )
    return SimulatedCase(case=case, states=states, conditions=conds, gross_errors=gross)


def simulate(model: CompiledModel, n: int, seed: int = 0, **kwargs) -> list[SimulatedCase]:
    """``n`` independent patients drawn from the model (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    return [simulate_case(model, rng, f"sim-{seed}-{i:06d}", **kwargs) for i in range(n)]


def expected_calibration_error(prob: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: bin-weighted |mean predicted - observed frequency|."""
    prob = np.asarray(prob, float).ravel()
    truth = np.asarray(truth, float).ravel()
    idx = np.minimum((prob * bins).astype(int), bins - 1)
    err = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            err += m.mean() * abs(prob[m].mean() - truth[m].mean())
    return float(err)

