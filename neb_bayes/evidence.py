"""Case -> Evidence: the fixed arrays the inference engine reads.

Each laboratory result is mapped to a model channel (analyte x specimen), put on the log
scale, corrected for the reporting lab's own reference interval (method bias), given its
daily-rhythm offset from the collection time, and grouped into one block per axis.  Symptoms
become index arrays.  Whatever cannot be used is listed with its reason; nothing is dropped
silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from neb_bayes.case.model import Case, NotUsed, Patient
from neb_bayes.context import (
    ContextReading,
    decay,
    hours_between,
    physiological_symptoms,
    physiology_not_used,
    read_context,
)
from neb_bayes.model.compiled import CompiledModel
from neb_bayes.model.prior import Covariates, first_of_group
from neb_bayes.vocab import analytes

#: biotin interference: full for 8 h after a dose, then halving every 16 h (facts §4c:
#: guidance is to wait >= 8 h after low doses and up to 72 h after high doses)
BIOTIN_FULL_HOURS, BIOTIN_HALF_LIFE = 8.0, 16.0
#: levothyroxine taken within this many hours before sampling raises FT4 transiently (Ain et
#: al., Thyroid 1993, PMID 8369656: FT4 raised for 9 h after a dose; priors: c_lt4_timing)
LT4_RECENT_HOURS = 9.0

CENSOR_CODE = {"none": 0, "left": -1, "right": 1}


@dataclass(frozen=True)
class Block:
    """All results on one axis: they share that axis' latents, so they are read jointly.

    Attributes
    ----------
    axis
        Index of the axis whose latents the results load on.
    deps
        Sorted indices of every axis whose state changes these results' distribution.
    channel, y, censor, day, diurnal, diurnal_var, source
        Per result: channel index, log value (or log limit when censored), censoring code
        (0 observed, -1 below the limit, +1 above), day, daily-rhythm offset (before the
        state's amplitude), extra variance for an unknown collection time, and the index of
        the measurement in the case file.
    extra_var
        Per result: the variance the context adds (between-person variation of its effect).
        It is the person's: results of one channel share it (covariance ``sqrt(v_i v_j)``),
        so repeats under one context are not independent evidence about it.
    sex
        The patient's sex (``None``: unknown): a gross error among these results is another
        person's result of that sex (:meth:`~neb_bayes.model.compiled.CompiledModel.gross_log_density`).
    """

    axis: int
    deps: tuple[int, ...]
    channel: np.ndarray
    y: np.ndarray
    censor: np.ndarray
    day: np.ndarray
    diurnal: np.ndarray
    diurnal_var: np.ndarray
    source: np.ndarray
    extra_var: np.ndarray | None = None
    sex: str | None = None

    @property
    def n(self) -> int:
        return int(self.channel.size)


@dataclass(frozen=True)
class Evidence:
    """Everything inference needs about one case, and what was done to read it."""

    case_id: str
    covariates: Covariates
    blocks: tuple[Block, ...]
    present: np.ndarray   # symptom indices (model.symptoms) reported present
    absent: np.ndarray    # symptom indices reported absent
    not_used: tuple[NotUsed, ...] = ()
    warnings: tuple[str, ...] = ()
    adjustments: tuple[dict, ...] = field(default_factory=tuple)
    lat_shift: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    context: ContextReading | None = None
    #: (E,) factor on each noisy-OR cause probability from the context (treated disease
    #: causes fewer symptoms), or None
    cause_scale: np.ndarray | None = None

    @property
    def context_signature(self) -> tuple:
        """What of the case's context changes the model it is read with (latent shifts of
        treated disease, symptom factors), hashable; ``()`` when nothing does.  Cases with
        equal signatures can be evaluated together on one derived model."""
        if not self.lat_shift and self.cause_scale is None:
            return ()                 # (most cases: asked per case by the batch engine)
        lat = tuple((a, np.asarray(s, float).tobytes(), np.asarray(c, float).tobytes())
                    for a, (s, c) in sorted(self.lat_shift.items(), key=lambda kv: kv[0]))
        sym = None if self.cause_scale is None else self.cause_scale.tobytes()
        return () if not lat and sym is None else (lat, sym)

    def symptom_tables(self, model: CompiledModel, cause_logit: np.ndarray | None = None,
                       leak_logit: np.ndarray | None = None, columns: np.ndarray | None = None):
        """The noisy-OR tables this case is read with: the model's (or these parameter
        draws'), with the context's cause-probability factors applied."""
        return model.symptom_table.tables(cause_logit, leak_logit, columns, self.cause_scale)

    def latent_params(self, model: CompiledModel, axis: int, mean: np.ndarray | None = None,
                      cov: np.ndarray | None = None,
                      precision: tuple[np.ndarray, np.ndarray] | None = None) -> tuple:
        """Per-state latent mean (..., S, K) and covariance (..., S, K, K) of an axis for this
        case: the model's (or the given ones, e.g. parameter draws') with the case's context
        latent shifts applied.  With the covariance's ``precision`` (S^-1 and log|S|^(1/2),
        :func:`~neb_bayes.inference.exact.latent_precision`) also those, as a third item."""
        ax = model.axes[axis]
        mean = ax.lat_mean if mean is None else mean
        cov = ax.lat_cov if cov is None else cov
        if axis not in self.lat_shift:
            return (mean, cov) if precision is None else (mean, cov, precision)
        shift, scale = self.lat_shift[axis]
        out = (mean + shift, cov * (scale**2)[:, None, None])
        if precision is None:
            return out
        # S s^2: precision S^-1 / s^2, log|S|^(1/2) + K log s (per state)
        prec, half_logdet = precision
        return out + ((prec * (scale**-2.0)[:, None, None],
                       half_logdet + cov.shape[-1] * np.log(scale)),)

    @property
    def n_measurements(self) -> int:
        return sum(b.n for b in self.blocks)


def _healthy_log_median(model: CompiledModel, ch: int, sex: str | None) -> float:
    """Expected log level of a channel in a healthy person of this sex at 08:00 (the state
    effects over the full model's healthy states, whatever states the view keeps)."""
    return model.channels[ch].log_median + float(model.healthy_effect[sex][ch])


def log_value(value: float) -> float:
    """A result's value on the model's log scale, as every reader takes it: numpy's
    logarithm, which gives the same bits for a value alone and for that value among many in
    an array (the batch's column reader takes a chunk's values at once: ~60x faster than
    ``math.log`` value by value, which differs from numpy's in the last bit of ~1 value in
    2,500)."""
    return float(np.log(value))


def _lab_ri_shift(model: CompiledModel, ch: int, ri: tuple[float, float] | None,
                  hour: float | None, sex: str | None) -> float | None:
    """Method-bias correction from the lab's own reference interval (log units)."""
    if ri is None:
        return None
    lo, hi = ri
    if not (lo > 0 and hi > lo):
        return None
    channel = model.channels[ch]
    if channel.diurnal and hour is not None:
        # the lab's interval is for the same time of day as the sample
        off, _ = model.diurnal_offset(channel.diurnal, hour)
        off *= channel.diurnal_scale
    else:
        off = 0.0
    return 0.5 * (math.log(lo) + math.log(hi)) - (_healthy_log_median(model, ch, sex) + off)


def lab_corrected(model: CompiledModel, ch: int, y: float, ri: tuple[float, float] | None,
                  hour: float | None, sex: str | None, analyte: str = "", note=None,
                  item: str = "") -> float:
    """A result's log value ``y`` read relative to its lab's reference interval ``ri``
    (canonical unit; ``None``: as it is): less the method offset, capped at 0.7 (a lab
    interval far from the model's is more likely a different population than a method
    bias), noted with ``note(flag, text, item)`` when given."""
    shift = _lab_ri_shift(model, ch, ri, hour, sex)
    if shift is None or abs(shift) <= 1e-9:
        return y
    capped = max(-0.7, min(0.7, shift))
    if note is not None:
        note("lab_reference_interval",
             f"{analyte}: read relative to the lab's own reference interval "
             f"(method offset {math.exp(capped):.2f}x the model's healthy median)", item)
    return y - capped


def not_modelled(model: CompiledModel, analyte: str, specimen: str) -> str:
    """Why a result of ``analyte`` in ``specimen`` is not used: no channel models it."""
    if analyte not in model.modelled_analytes:
        return (f"analyte '{analyte}' is not evidence for any condition in prior set "
                f"'{model.spec.name}'")
    return f"'{analyte}' in specimen '{specimen}' is not modelled"


def untimed_rhythm_warning(analyte: str) -> str:
    """The warning for a result of ``analyte`` (a daily rhythm) without a collection time."""
    return (f"no collection time for {analyte}, which has a daily rhythm; read as a daytime "
            "sample with wider uncertainty")


@dataclass(frozen=True)
class ContextSign:
    """A result that points to a context the case may not give (:data:`CONTEXT_SIGNS`)."""

    analyte: str
    #: the analyte's name and canonical unit, as the warning writes them
    name: str
    unit: str
    #: the context flag that explains it: no warning when the case's context has it
    flag: str
    #: the sex it is read in
    sex: str
    #: ``(lower bound in the canonical unit, what a result above it is)``, high to low
    bounds: tuple[tuple[float, str], ...]
    #: what the case leaves unsaid, and what that does to the report and what to do
    unsaid: str
    consequence: str


#: results that point to a context the case does not give, which would change how the
#: other results read.  Serum hCG: below 5 IU/L in women who are not pregnant, above 25
#: IU/L a positive pregnancy test, 5-25 IU/L equivocal (to be repeated in ~48 h: it doubles
#: every 2-3 days in early pregnancy) (GLOWM, "Pregnancy test", after Operational Medicine
#: 2001, NAVMED P-5139; the usual laboratory cut-offs).  hCG is evidence for no condition in
#: the model, but in the first trimester it stimulates the thyroid (TSH low, FT4
#: high-normal) and pregnancy moves many results.
CONTEXT_SIGNS: tuple[ContextSign, ...] = (
    ContextSign(
        "hcg", "hCG", "IU/L", "pregnancy_any", "F",
        ((25.0, "in the range of pregnancy (above 25 IU/L; under 5 IU/L outside pregnancy)"),
         (5.0, "above the non-pregnant range (5 IU/L) but below a positive pregnancy test "
               "(25 IU/L): equivocal, to be repeated in about 48 hours")),
        "the case does not say the patient is pregnant",
        "this report reads every result as outside pregnancy (in the first trimester hCG "
        "lowers TSH and raises FT4, and pregnancy moves other results too). Confirm "
        "pregnancy status; if pregnant, give patient.pregnant and gestational_week and run "
        "the report again"),
)


#: the analytes of :data:`CONTEXT_SIGNS` (the batch's plain reader leaves their cases to
#: the full reader, which warns)
SIGN_ANALYTES = frozenset(sign.analyte for sign in CONTEXT_SIGNS)


def context_sign_warnings(case: Case, flags) -> list[str]:
    """Warnings for results that point to a context the case does not give
    (:data:`CONTEXT_SIGNS`): e.g. an hCG in the range of pregnancy in a woman the case does
    not say is pregnant, whose thyroid results this report reads as outside pregnancy."""
    out = []
    for sign in CONTEXT_SIGNS:
        if sign.flag in flags or case.patient.sex != sign.sex:
            continue
        for m in case.measurements:
            if m.analyte != sign.analyte or m.censor == "left" or not m.value > 0:
                continue
            said = next((text for bound, text in sign.bounds if m.value > bound), None)
            if said is not None:
                out.append(f"measurements[{m.index}]: {sign.name} {m.value:g} {sign.unit} is "
                           f"{said}, but {sign.unsaid}: {sign.consequence}")
    return out


def build_evidence(
    model: CompiledModel,
    case: Case,
    covariates: Covariates | None = None,
    use_lab_ri: bool = True,
    context: ContextReading | None = None,
) -> Evidence:
    """Turn a validated :class:`Case` into :class:`Evidence` for ``model`` (``context``: the
    case's :func:`~neb_bayes.context.read_context`, when the caller has read it already)."""
    ctx = read_context(case) if context is None else context
    cov = covariates or Covariates(
        sex=case.patient.sex, age=case.patient.age, flags=frozenset(ctx.flags))
    not_used = list(case.not_used) + list(ctx.not_used)
    warnings = (list(case.warnings) + list(ctx.warnings)
                + context_sign_warnings(case, ctx.flags))
    applied: dict[tuple[str, str], dict] = {}

    def note(flag: str, text: str, item: str) -> None:
        entry = applied.setdefault((flag, text), {"flag": flag, "text": text, "items": []})
        if item not in entry["items"]:
            entry["items"].append(item)
    for assumed in ctx.assumptions:
        for item in assumed["items"]:
            note(assumed["flag"], assumed["text"], item)
    rows: dict[int, list[tuple]] = {}
    channels = model.channels
    # channels whose results context or age may move (the others need no adjustment call)
    shifted = model.context_shifts if ctx.flags else {}
    aged = channel_age_effects(model) if case.patient.age is not None else {}
    for m in case.measurements:
        item = f"measurements[{m.index}]"
        ch = model.channel_for(m.analyte, m.specimen)
        if ch is None:
            not_used.append(NotUsed(item, not_modelled(model, m.analyte, m.specimen)))
            continue
        if not (m.value > 0 and math.isfinite(m.value)):
            not_used.append(NotUsed(item, "value is not a positive concentration"))
            continue
        y = log_value(m.value)
        if use_lab_ri:
            y = lab_corrected(model, ch, y, m.reference_interval, m.hour, cov.sex, m.analyte,
                              note, item)
        row = result_row(model, ctx, case.patient, ch, y, CENSOR_CODE[m.censor], m.hour, m.day,
                         m.index, shifted, aged, m.method, note, item)
        if channels[ch].diurnal and m.hour is None:
            warnings.append(f"{item}: {untimed_rhythm_warning(m.analyte)}")
        rows.setdefault(channels[ch].axis, []).append(row)
    blocks = []
    for axis in sorted(rows):
        # one array of every row, split into its columns (ints and floats exact in float64)
        cols = np.array(rows[axis], dtype=float).T.copy()
        blocks.append(block_of_rows(model, axis, cols[0].astype(np.int64), cols[1],
                                    cols[2].astype(np.int8), cols[3], cols[4], cols[5],
                                    cols[6].astype(np.int64), cols[7], sex=cov.sex))
    sym_index = {s: i for i, s in enumerate(model.symptoms)}
    present, absent = [], []
    from_context = ctx.extra_symptoms - case.symptoms.present - case.symptoms.absent
    # a stage's physiology (menopause's or pregnancy's missed periods, early pregnancy's
    # nausea), listed or not, is no evidence
    physiology = physiological_symptoms(ctx.flags)
    for status, ids, out in (
        ("present", case.symptoms.present | from_context, present),
        ("absent", case.symptoms.absent, absent),
    ):
        for s in sorted(ids):
            if s in physiology:
                not_used.append(physiology_not_used(status, s, physiology[s]))
            elif s in sym_index:
                out.append(sym_index[s])
            else:
                not_used.append(
                    NotUsed(f"symptoms.{status}: {s}", "symptom not in the model's symptom table")
                )
    lat_shift = context_latent_shifts(model, ctx, note)
    cause_scale = context_symptom_scale(model, ctx, present + absent, note)
    adjustments = list(applied.values())
    return Evidence(
        case_id=case.id,
        covariates=cov,
        blocks=tuple(blocks),
        present=np.array(present, dtype=np.int64),
        absent=np.array(absent, dtype=np.int64),
        not_used=tuple(not_used),
        warnings=tuple(warnings),
        adjustments=tuple(adjustments),
        lat_shift=lat_shift,
        context=ctx,
        cause_scale=cause_scale,
    )


def block_of_rows(model: CompiledModel, axis: int, channel: np.ndarray, y: np.ndarray,
                  censor: np.ndarray, day: np.ndarray, diurnal: np.ndarray,
                  diurnal_var: np.ndarray, source: np.ndarray,
                  extra_var: np.ndarray | None, sex: str | None = None) -> Block:
    """The :class:`Block` of one axis' results given as columns (its ``deps``: the axis and
    every axis whose state moves one of its channels) of a patient of ``sex``."""
    deps_of = _channel_deps(model)
    deps = {axis}
    for c in set(channel.tolist()):
        deps.update(deps_of[c])
    return Block(axis=axis, deps=tuple(sorted(deps)), channel=channel, y=y, censor=censor,
                 day=day, diurnal=diurnal, diurnal_var=diurnal_var, source=source,
                 extra_var=extra_var, sex=sex)


@lru_cache(maxsize=16)
def _channel_deps(model: CompiledModel) -> tuple[tuple[int, ...], ...]:
    """Per channel: the axes of its state effects and of its daily-rhythm amplitude."""
    out = []
    for channel in model.channels:
        deps = [e.axis for e in channel.effects]
        if channel.amp_axis is not None:
            deps.append(channel.amp_axis)
        out.append(tuple(deps))
    return tuple(out)


@lru_cache(maxsize=16)
def channel_age_effects(model: CompiledModel) -> dict[int, tuple]:
    """Per channel: the model's age effects on it, in the model's order."""
    out: dict[int, list] = {}
    for ae in model.age_effects:
        for ch in dict.fromkeys(ae.channels):
            out.setdefault(ch, []).append(ae)
    return {ch: tuple(v) for ch, v in out.items()}


def context_latent_shifts(model: CompiledModel, ctx: ContextReading,
                          note=None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per axis: (latent mean shift (S, K), sd scale (S,)) from the case's context flags."""
    lat_shift: dict[int, tuple] = {}
    for cl in first_of_group(model.context_latents, lambda cl: cl.flag in ctx.flags):
        mean, scale = lat_shift.get(cl.axis, (0.0, 1.0))
        lat_shift[cl.axis] = (mean + cl.mean_shift * ctx.flags[cl.flag],
                              scale * (1 + (cl.sd_scale - 1) * ctx.flags[cl.flag]))
        if note is not None:
            note(cl.flag, cl.text, "patient")
    return lat_shift


def context_symptom_scale(model: CompiledModel, ctx: ContextReading, reported: list[int] | None = None,
                          note=None) -> np.ndarray | None:
    """(E,) factors on the noisy-OR cause probabilities from the case's context flags (each
    row's factor raised to the flag's strength), or None when no row applies.  The effect is
    noted (accounted for) when a ``reported`` symptom is one the row affects."""
    scale = None
    table = model.symptom_table
    for cs in model.context_symptoms:
        strength = ctx.flags.get(cs.flag, 0.0)
        if strength <= 0:
            continue
        factor = cs.scale ** strength
        scale = factor if scale is None else scale * factor
        hit = np.isin(table.entry_symptom[cs.scale < 1], np.asarray(reported or [], dtype=np.int64))
        if note is not None and hit.any():
            note(cs.flag, cs.text, "symptoms")
    return scale


def _no_note(flag: str, text: str, item: str) -> None:
    return None


def result_row(model: CompiledModel, ctx: ContextReading, patient: Patient, ch: int, y: float,
               censor: int, hour: float | None, day: float, index: int, shifted: dict,
               aged: dict, method: str | None = None, note=_no_note, item: str = "",
               cache: dict | None = None, floor: bool = True) -> tuple:
    """One result as a row of its block: ``(channel, y, censoring code, day, rhythm offset,
    rhythm variance, index, extra variance)``, with ``y`` (log value, after any method-bias
    correction) less the context and age shifts.

    ``shifted`` and ``aged``: the channels context (``model.context_shifts`` when the case
    has context flags, else empty) and age (:func:`channel_age_effects` when the age is
    known, else empty) may move.  Shared by :func:`build_evidence` and the batch's reader of
    plain cases (:mod:`neb_bayes.batch.plain`), which keeps a ``cache`` of the adjustments
    by ``(ch, hour, method)`` per context and patient (notes unused).  ``floor``: read a
    result below its channel's floor at it (:func:`floored`; ``False``: the shifts alone, as
    the batch's column reader asks for them).
    """
    if not model.channels[ch].diurnal and ch not in shifted and ch not in aged:
        # nothing moves this result: what the adjustments below would give
        if floor:
            y, censor = floored(model, ch, y, censor, note, item)
        return (ch, y, censor, day, 0.0, 0.0, index, 0.0)
    adj = None if cache is None else cache.get((ch, hour, method))
    if adj is None:
        adj = result_adjustments(model, ctx, ch, hour, method, patient, note, item)
        if cache is not None:
            cache[(ch, hour, method)] = adj
    ctx_shift, extra_var, d_off, d_var = adj
    y = y - ctx_shift
    if floor:
        y, censor = floored(model, ch, y, censor, note, item)
    return (ch, y, censor, day, d_off, d_var, index, extra_var)


def floored(model: CompiledModel, ch: int, y: float | np.ndarray, censor: int | np.ndarray,
            note=_no_note, item: str = "") -> tuple:
    """A result's log value ``y`` (less its shifts) and censoring code, read at the channel's
    floor where it lies below it.

    Below a channel's ``floor`` (priors: a value the model's states describe only above) a
    lower value is read as the floor itself, so that it is never more evidence for a state
    than a value at the floor: where one state's Gaussian is wider than another's, its tail
    outgrows the other's far from both, and a value far below the healthy range would read
    as that state (a very low HbA1c as diabetes).  A result censored below a limit at or
    under the floor is read as observed at the floor.  Noted with ``note(flag, text, item)``.
    ``y`` and ``censor`` may be arrays of one channel's results (next-test's hypothetical
    ones): each is read so, and arrays are returned.
    """
    floor = model.channels[ch].log_floor
    if isinstance(y, np.ndarray):
        low = (y < floor) & (np.asarray(censor) <= 0)
        if not low.any():
            return y, censor
        _note_floor(model, ch, floor, note, item)
        return np.where(low, floor, y), np.where(low, 0, censor)
    if y >= floor or censor > 0:
        return y, censor
    _note_floor(model, ch, floor, note, item)
    return floor, 0


def _note_floor(model: CompiledModel, ch: int, floor: float, note, item: str) -> None:
    """Note that a result of channel ``ch`` was read at its ``floor`` (log)."""
    analyte = model.channels[ch].analyte
    entry = analytes().get(analyte)
    unit = f" {entry.canonical_unit}" if entry is not None else ""
    note("read_at_floor", f"{analyte}: a result below {math.exp(floor):.3g}{unit} is read as "
         "that value (the states are described from it up: a lower result is no more "
         "evidence for any of them)", item)


def result_adjustments(model: CompiledModel, ctx: ContextReading, ch: int, hour: float | None,
                       method: str | None, patient: Patient, note=_no_note, item: str = ""):
    """How context and time of day change one result's expected log level.

    Returns ``(shift, extra_var, rhythm_offset, rhythm_var)``: the context and age shift
    (subtracted from the result), the extra variance the context adds, and the daily-rhythm
    offset and its variance (before the state's amplitude), with context changes to the
    rhythm (night shifts) applied.  The simulator adds what evidence building removes.
    ``hour`` and ``method``: the result's collection hour and assay method, or ``None``.
    """
    shift, extra_var = _context_shift(model, ctx, ch, hour, method, patient, note, item)
    channel = model.channels[ch]
    d_off, d_var = 0.0, 0.0
    if channel.diurnal:
        amp = 1.0
        for dmod in model.context_diurnal:
            if dmod.profile == channel.diurnal and dmod.flag in ctx.flags:
                if hour is not None:
                    hour = (hour + dmod.phase_shift) % 24.0
                amp *= dmod.amplitude
                extra_var += dmod.extra_sd**2
                note(dmod.flag, dmod.text, item)
        d_off, d_var = model.diurnal_offset(channel.diurnal, hour)
        d_off *= channel.diurnal_scale * amp
        d_var *= (channel.diurnal_scale * amp) ** 2
    return shift, extra_var, d_off, d_var


def _context_shift(model, ctx, ch, hour, method, patient, note, item) -> tuple[float, float]:
    """Total context shift (log units) and extra variance for one result."""
    shift, var = 0.0, 0.0
    effects = model.context_shifts.get(ch, ()) if ctx.flags else ()
    if effects:
        flags = dict(ctx.flags)
        lt4 = ctx.details.get("levothyroxine", {})
        since_lt4 = hours_between(lt4.get("last_dose_hour"), hour)
        if "levothyroxine" in flags and since_lt4 is not None and since_lt4 < LT4_RECENT_HOURS:
            flags["levothyroxine_recent_dose"] = 1.0
        lowered = (method or "").lower()
    for eff in effects:
        strength = flags.get(eff.flag, 0.0)
        if strength <= 0:
            continue
        if lowered and any(u in lowered for u in eff.unaffected_methods):
            note(eff.flag, f"not applied to {item} ({method}): {eff.text}", item)
            continue
        if eff.flag == "biotin":
            since = hours_between(ctx.details.get("biotin", {}).get("last_dose_hour"), hour)
            strength *= decay(since, BIOTIN_FULL_HOURS, BIOTIN_HALF_LIFE)
        shift += eff.shift * strength
        var += (eff.extra_sd * strength) ** 2
        note(eff.flag, eff.text, item)
    age, sex = patient.age, patient.sex
    if age is not None:
        for ae in channel_age_effects(model).get(ch, ()):
            if (ae.sex is None or ae.sex == sex) and age > ae.start:
                shift += ae.per_year * (age - ae.start)
                note("age", f"{ae.text} (age {age:g})", item)
    return shift, var
