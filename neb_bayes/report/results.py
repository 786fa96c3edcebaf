"""The case's laboratory results as the reports echo them: as given, in the model's unit,
against a reference interval, with what the engine did with each (used or not, the context
flags that adjusted it, whether it looks like a wrong result).  Shared by the JSON report's
``lab_results`` (:func:`lab_results`), the Markdown table built from it and the HTML table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from neb_bayes.case.model import Measurement, Patient
    from neb_bayes.posterior import Result


def num_text(v: float) -> str:
    """A result's number for people: four significant digits, three at the extremes."""
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.3g}"
    return f"{v:.4g}"


def hhmm(hour: float | None) -> str:
    """A clock time in hours as ``HH:MM`` (``—`` when not given)."""
    if hour is None:
        return "—"
    m = int(round(hour * 60)) % (24 * 60)
    return f"{m // 60:02d}:{m % 60:02d}"


def analyte_info(aid: str) -> Any:
    """The vocabulary's entry of an analyte id (None when it cannot be had)."""
    try:
        from neb_bayes.vocab import analytes

        return analytes().get(aid)
    except Exception:  # noqa: BLE001 - the vocabulary only labels results here
        return None


def vocab_ri(aid: str, specimen: str, patient: Patient) -> tuple[float, float] | None:
    """The vocabulary's default reference interval for this patient (menopause, cycle phase
    and sex where it has one for them)."""
    a = analyte_info(aid)
    if a is None:
        return None
    sex = patient.sex
    groups = []
    if sex and patient.menopausal_status == "postmenopausal":
        groups.append(f"{sex}_postmenopausal")
    reading = getattr(patient, "menstrual", None)
    phase = getattr(reading, "phase", None) if reading is not None else None
    if sex and phase:
        groups.append(f"{sex}_{phase}")
    for g in groups:
        if g in a.reference_interval:
            return a.reference_interval[g]
    return a.reference_for(sex, specimen)


def reference_interval(m: Measurement, patient: Patient
                       ) -> tuple[tuple[float, float] | None, str]:
    """(interval in the canonical unit, its source): the lab's own, else the vocabulary's
    default (``"vocabulary default"``), else ``(None, "none")``."""
    if m.reference_interval is not None:
        return tuple(m.reference_interval), "lab"  # type: ignore[return-value]
    ri = vocab_ri(m.analyte, m.specimen, patient)
    return ri, ("vocabulary default" if ri is not None else "none")


def range_flag(m: Measurement, ri: tuple[float, float] | None) -> tuple[str, str]:
    """(text, level) of a result relative to its reference interval; level ``"low"``,
    ``"high"`` or ``""``; text ``"—"`` without an interval."""
    if ri is None:
        return "—", ""
    lo, hi = ri
    v = m.value
    if m.censor == "left":
        if v <= lo:
            return "low (below the limit)", "low"
        return f"below {num_text(v)}: may be within", ""
    if m.censor == "right":
        if v >= hi:
            return "high (above the limit)", "high"
        return f"above {num_text(v)}: may be within", ""
    if v < lo:
        return "low", "low"
    if v > hi:
        return "high", "high"
    return "within", ""


def value_text(m: Measurement, canonical_unit: str) -> str:
    """The value in the model's unit, with ``<``/``>`` for a censored result."""
    sign = {"left": "<", "right": ">"}.get(m.censor, "")
    return f"{sign}{num_text(m.value)} {canonical_unit}".strip()


def reported_text(m: Measurement) -> str:
    """The value and unit as the case file gave them."""
    raw = m.raw_value if m.raw_value is not None else num_text(m.value)
    if isinstance(raw, float):
        raw = f"{raw:g}"
    return f"{raw} {m.unit}".strip()


def used_sources(result: Result) -> set[int]:
    """Indices of the measurements the engine used."""
    return {int(s) for b in result.evidence.blocks for s in b.source.tolist()}


def _item_flags(result: Result) -> dict[str, list[str]]:
    """Per item (``measurements[i]``): the context flags that adjusted it (``accounted_for``),
    and ``suspect_result`` where it is likely a wrong result."""
    out: dict[str, list[str]] = {}
    for entry in result.evidence.adjustments:
        for item in entry.get("items", ()):
            out.setdefault(item, []).append(entry.get("flag", ""))
    for row in result.suspect_results():
        out.setdefault(f"measurements[{row['measurement']}]", []).append("suspect_result")
    return {k: list(dict.fromkeys(f for f in v if f)) for k, v in out.items()}


def lab_results(result: Result) -> list[dict[str, Any]]:
    """Every laboratory result the case reader read, in the case's order (the JSON report's
    ``lab_results``): ``item``, ``analyte``, ``value`` and ``unit`` as given,
    ``canonical_value`` (for a censored result its limit) and ``canonical_unit``, ``censor``,
    ``specimen``, ``day``, ``time`` (``HH:MM`` or None), ``method`` and ``note`` (or None),
    ``reference_interval`` (canonical unit, or None) and ``reference_interval_source``,
    ``range`` (its flag against that interval), ``used``, the engine's ``flags`` (context
    flags that adjusted it, ``suspect_result``) and, when not used, ``not_used`` (why)."""
    patient = result.case.patient
    used, flags = used_sources(result), _item_flags(result)
    reasons = {n.item: n.reason for n in result.evidence.not_used}
    rows = []
    for m in result.case.measurements:
        a = analyte_info(m.analyte)
        ri, source = reference_interval(m, patient)
        item = f"measurements[{m.index}]"
        raw = m.raw_value if m.raw_value is not None else m.value
        rows.append({
            "item": item, "analyte": m.analyte, "value": raw, "unit": m.unit,
            "canonical_value": float(m.value),
            "canonical_unit": a.canonical_unit if a is not None else "",
            "censor": m.censor, "specimen": m.specimen, "day": float(m.day),
            "time": hhmm(m.hour) if m.hour is not None else None,
            "method": m.method, "note": m.note,
            "reference_interval": [float(x) for x in ri] if ri is not None else None,
            "reference_interval_source": source, "range": range_flag(m, ri)[0],
            "used": m.index in used, "flags": flags.get(item, []),
            **({} if m.index in used else {"not_used": reasons.get(item, "")}),
        })
    return rows
