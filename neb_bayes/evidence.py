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

import numpy as np

from neb_bayes.case.model import Case, Measurement, NotUsed
from neb_bayes.model.compiled import CompiledModel
from neb_bayes.model.prior import Covariates

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

    @property
    def n_measurements(self) -> int:
        return sum(b.n for b in self.blocks)


def _healthy_log_median(model: CompiledModel, ch: int, sex: str | None) -> float:
    """Expected log level of a channel in a healthy person of this sex at 08:00."""
    channel = model.channels[ch]
    out = channel.log_median
    for eff in channel.effects:
        ax = model.axes[eff.axis]
        healthy = [
            i for i, s in enumerate(ax.states)
            if not ax.condition_of[i] and (sex is None or ax.sex[i] in (None, sex))
            and s != "macroprolactinemia"
        ]
        out += float(np.mean(eff.shift[healthy]))
    return out


def _lab_ri_shift(model: CompiledModel, ch: int, m: Measurement, sex: str | None) -> float | None:
    """Method-bias correction from the lab's own reference interval (log units)."""
    if m.reference_interval is None:
        return None
    lo, hi = m.reference_interval
    if not (lo > 0 and hi > lo):
        return None
    channel = model.channels[ch]
    if channel.diurnal and m.hour is not None:
        # the lab's interval is for the same time of day as the sample
        off, _ = model.diurnal_offset(channel.diurnal, m.hour)
        off *= channel.diurnal_scale
    else:
        off = 0.0
    return 0.5 * (math.log(lo) + math.log(hi)) - (_healthy_log_median(model, ch, sex) + off)


def build_evidence(
    model: CompiledModel,
    case: Case,
    covariates: Covariates | None = None,
    use_lab_ri: bool = True,
) -> Evidence:
    """Turn a validated :class:`Case` into :class:`Evidence` for ``model``."""
    cov = covariates or Covariates(sex=case.patient.sex, age=case.patient.age)
    not_used = list(case.not_used)
    warnings = list(case.warnings)
    adjustments: list[dict] = []
    rows: dict[int, list[tuple]] = {}
    for m in case.measurements:
        item = f"measurements[{m.index}]"
        ch = model.channel_for(m.analyte, m.specimen)
        if ch is None:
            reason = (
                f"analyte '{m.analyte}' is not evidence for any condition in prior set "
                f"'{model.spec.name}'"
                if m.analyte not in model.modelled_analytes
                else f"'{m.analyte}' in specimen '{m.specimen}' is not modelled"
            )
            not_used.append(NotUsed(item, reason))
            continue
        if not (m.value > 0 and math.isfinite(m.value)):
            not_used.append(NotUsed(item, "value is not a positive concentration"))
            continue
        channel = model.channels[ch]
        y = math.log(m.value)
        shift = _lab_ri_shift(model, ch, m, cov.sex) if use_lab_ri else None
        if shift is not None and abs(shift) > 1e-9:
            # cap the correction: a lab interval far from the model's is more likely a
            # different population than a method bias
            capped = max(-0.7, min(0.7, shift))
            y -= capped
            adjustments.append({
                "item": item,
                "kind": "lab_reference_interval",
                "text": f"{m.analyte}: read relative to the lab's own reference interval "
                f"(method offset {math.exp(capped):.2f}x the model's healthy median)",
            })
        d_off, d_var = 0.0, 0.0
        if channel.diurnal:
            d_off, d_var = model.diurnal_offset(channel.diurnal, m.hour)
            d_off *= channel.diurnal_scale
            d_var *= channel.diurnal_scale**2
            if m.hour is None:
                warnings.append(
                    f"{item}: no collection time for {m.analyte}, which has a daily rhythm; "
                    "read as a daytime sample with wider uncertainty"
                )
        rows.setdefault(channel.axis, []).append(
            (ch, y, CENSOR_CODE[m.censor], m.day, d_off, d_var, m.index)
        )
    blocks = []
    for axis in sorted(rows):
        r = rows[axis]
        chans = np.array([x[0] for x in r], dtype=np.int64)
        deps = {axis}
        for c in set(chans.tolist()):
            channel = model.channels[c]
            deps.update(e.axis for e in channel.effects)
            if channel.amp_axis is not None:
                deps.add(channel.amp_axis)
        blocks.append(
            Block(
                axis=axis,
                deps=tuple(sorted(deps)),
                channel=chans,
                y=np.array([x[1] for x in r]),
                censor=np.array([x[2] for x in r], dtype=np.int8),
                day=np.array([x[3] for x in r], dtype=float),
                diurnal=np.array([x[4] for x in r]),
                diurnal_var=np.array([x[5] for x in r]),
                source=np.array([x[6] for x in r], dtype=np.int64),
            )
        )
    sym_index = {s: i for i, s in enumerate(model.symptoms)}
    present, absent = [], []
    for status, ids, out in (
        ("present", case.symptoms.present, present),
        ("absent", case.symptoms.absent, absent),
    ):
        for s in sorted(ids):
            if s in sym_index:
                out.append(sym_index[s])
            else:
                not_used.append(
                    NotUsed(f"symptoms.{status}: {s}", "symptom not in the model's symptom table")
                )
    return Evidence(
        case_id=case.id,
        covariates=cov,
        blocks=tuple(blocks),
        present=np.array(present, dtype=np.int64),
        absent=np.array(absent, dtype=np.int64),
        not_used=tuple(not_used),
        warnings=tuple(warnings),
        adjustments=tuple(adjustments),
    )
