"""Read the ``measurements`` section of a case.

Each result is named by analyte id, name, synonym or LOINC code; its specimen is resolved
(written, implied by the name, or the analyte's default), its unit converted to the
canonical one, censored strings (``"<0.01"``) and an exported 0 (below the detection limit)
made explicit, and its collection time read as an hour of the day.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from neb_bayes import vocab
from neb_bayes.case.collect import NUMBER_TEXT, Collector, fmt, fmt_raw, is_number, type_name
from neb_bayes.case.model import Measurement
from neb_bayes.units import Conversion, UnitError, conversion

__all__ = ["MEASUREMENT_KEYS", "first_sample_date", "plain_dated", "plain_day", "plain_extra",
           "plain_extra_count", "plain_form", "plain_result", "plain_value", "read_measurements"]

MEASUREMENT_KEYS = (
    "analyte",
    "specimen",
    "value",
    "unit",
    "collected",
    "day",
    "method",
    "reference_interval",
    "note",
)
_CENSORED = re.compile(r"^\s*(<=|>=|≤|≥|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?\s*$")
#: the ISO date-times archives write (whole seconds; a space for the T; a UTC offset, which
#: leaves the clock time as written): a date, then the rest
_DATE_PART = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TIME_PART = re.compile(r"[T ]((?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)?)"
                        r"(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?")
#: the parts read so far (an archive's date-times are each distinct, their dates and clock
#: times are few): date -> ordinal, rest -> clock time (None: not plain)
_DATE_PARTS: dict[str, int | None] = {}
_TIME_PARTS: dict[str, str | None] = {}


def read_measurements(c: Collector, raw: Any) -> tuple[Measurement, ...]:
    """Read ``measurements``: canonical analyte, specimen and unit; censoring explicit."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        c.error("measurements", f"expected a list of measurements, got {type_name(raw)}")
        return ()
    read: list[tuple[Measurement, date | None]] = []
    for i, item in enumerate(raw):
        fast = _fast_measurement(i, item)
        if fast is not None:
            read.append((fast, None))
            continue
        result = _measurement(c, i, item)
        if result is not None:
            read.append(result)
    return _days_from_dates(read)


#: fast-path forms by (analyte, specimen, unit, collected) as written: (analyte id, specimen,
#: conversion, plausible bounds, hour) for the combinations the full reader resolves without a
#: message, else ``False``
_FORMS: dict[tuple, tuple[str, str, Conversion, tuple | None, float | None] | bool] = {}
_INF = float("inf")


def _fast_measurement(i: int, item: Any) -> Measurement | None:
    """The common, clean result read without the collector, or ``None``.

    The same :class:`Measurement` the full reader (:func:`_measurement`) makes, for the
    results :func:`plain_result` accepts.
    """
    fields = plain_result(item)
    if fields is None:
        return None
    analyte_id, chosen, canonical, censor, unit, value, hour, day, extra = fields
    # the frozen dataclass filled without its per-field ``object.__setattr__`` (6x faster)
    m = _new(Measurement)
    m.__dict__.update(_DEFAULTS, index=i, analyte=analyte_id, specimen=chosen, value=canonical,
                      censor=censor, unit=unit, raw_value=value, hour=hour, day=day)
    if extra is not None:
        m.__dict__.update(method=extra[0], reference_interval=extra[1], note=extra[2])
    return m


def plain_result(item: Any) -> tuple | None:
    """A common, clean result's fields, or ``None`` for anything the full reader must see.

    A mapping of analyte, unit and value, and optionally specimen, collection time, day,
    method, note and reference interval, that :func:`plain_form`, :func:`plain_value`,
    :func:`plain_day` and :func:`plain_extra` accept gives ``(analyte id, specimen,
    canonical value, censoring, unit as written, value as written, hour or None, day,
    extra)`` (``extra``: ``(method, reference interval, note)``, or ``None`` when none is
    given): what the full reader (:func:`_measurement`) reads from it, with nothing to
    report.  Anything else (other fields, fields given as null) returns ``None``; the full
    reader then gives every message with its field path.  The batch's reader of plain cases
    (:mod:`neb_bayes.batch.plain`) reads results the same way.
    """
    if type(item) is not dict:
        return None
    get = item.get
    specimen, collected, day = get("specimen"), get("collected"), get("day")
    # analyte, unit and value, and no field but the known ones (each given is not null)
    n = 3 + (specimen is not None) + (collected is not None) + (day is not None)
    extra = len(item) != n
    if extra and len(item) != n + plain_extra_count(get):
        return None
    form = plain_form(get("analyte"), specimen, get("unit"), collected)
    if form is None:
        return None
    analyte_id, chosen, conv, bounds, hour = form
    value = get("value")
    read = plain_value(value, conv, bounds)
    day = plain_day(day)
    if read is None or day is None:
        return None
    if extra and (extra := plain_extra(item, conv)) is None:
        return None
    return (analyte_id, chosen, read[0], read[1], item["unit"], value, hour, day,
            extra or None)


def plain_extra_count(get: Callable[[str], Any]) -> int:
    """How many of a result's method, note and reference interval are given (not null)."""
    return ((get("method") is not None) + (get("note") is not None)
            + (get("reference_interval") is not None))


def plain_extra(item: dict, conv: Conversion) -> tuple | None:
    """``(method or None, reference interval in the canonical unit or None, note or None)``
    of a result, as the full reader reads them, or ``None`` when it would report one."""
    method, note = item.get("method"), item.get("note")
    if method is not None:
        if type(method) is not str:
            return None
        method = method.strip() or None
    if note is not None:
        if type(note) is not str:
            return None
        note = note.strip() or None
    c = Collector()
    ri = _reference_interval(c, item, "", conv)
    return None if c.errors or c.not_used else (method, ri, note)


def plain_form(name: Any, specimen: Any, unit: Any, collected: Any) -> tuple | None:
    """``(analyte id, specimen, conversion, plausible bounds, hour or None)`` of a result's
    analyte, specimen, unit and collection time as written, when the full reader resolves
    them without a message (text, a known analyte in a known unit, an ``HH:MM[:SS]`` time);
    else ``None``.  Cached: the same few combinations recur in every case of a batch."""
    key = (name, specimen, unit, collected)
    try:
        form = _FORMS[key]
    except KeyError:
        form = _FORMS[key] = _plain_form(name, specimen, unit, collected)
        if len(_FORMS) > 4096:
            _FORMS.clear()
    except TypeError:            # unhashable: not text
        return None
    return form or None


def _plain_form(name: Any, specimen: Any, unit: Any, collected: Any) -> tuple | bool:
    if type(name) is not str or type(unit) is not str or (
            specimen is not None and type(specimen) is not str) or (
            collected is not None and type(collected) is not str):
        return False
    text = name.strip()
    if not text:
        return False
    match = vocab.match_analyte(text)
    if match is None or match.warning:
        return False
    c = Collector()
    resolved = _resolve(c, "", match, (specimen.strip() or None) if specimen is not None else None,
                        unit, True)
    if resolved is None or resolved[2] is None or c.errors or c.not_used or c.warnings:
        return False
    analyte, chosen, conv = resolved
    hour, when = _collected(c, collected, "")
    if when is not None or c.errors:
        return False
    return analyte.id, chosen, conv, analyte.plausible_for(chosen), hour


def plain_value(value: Any, conv: Conversion, bounds: tuple | None) -> tuple[float, str] | None:
    """``(canonical value, censoring)`` of a value as written, when the full reader reads it
    without a message: a positive finite number (or one as text) within the plausible
    ``bounds``, or a censored value such as ``"<0.01"`` with a positive limit; else ``None``."""
    vt = type(value)
    censor = "none"
    if vt is float or vt is int:
        number = value
    elif vt is str:
        if hit := _CENSORED.match(value):
            censor = "left" if hit.group(1) in ("<", "<=", "≤") else "right"
            number = float(hit.group(2))
        elif NUMBER_TEXT.match(value):
            number = float(value)
        else:
            return None
    else:
        return None
    if not 0 < number < _INF:
        return None
    canonical = conv.forward(float(number))
    if not canonical > 0 or (censor == "none" and bounds is not None
                             and not bounds[0] <= canonical <= bounds[1]):
        return None
    return canonical, censor


def plain_day(day: Any) -> float | None:
    """The day of a result as the full reader reads it (``None``: 0.0), or ``None`` when
    it is not a finite number >= 0."""
    if day is None:
        return 0.0
    dt = type(day)
    if (dt is float or dt is int) and 0 <= day < _INF:
        return float(day)
    return None


_new = object.__new__
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Measurement)
             if f.default is not dataclasses.MISSING}


def _measurement(c: Collector, i: int, item: Any) -> tuple[Measurement, date | None] | None:
    path = f"measurements[{i}]"
    if not isinstance(item, dict):
        c.error(path, f"expected a mapping with analyte, value and unit, got {type_name(item)}")
        return None
    n_errors = len(c.errors)
    c.unknown_keys(item, MEASUREMENT_KEYS, path)
    name = c.text(item, "analyte", f"{path}.analyte")
    if "analyte" not in item or item["analyte"] is None:
        c.error(f"{path}.analyte", "missing: name the analyte (id, name or LOINC code)")
    value, censor = _value(c, item, path)
    unit = item.get("unit")
    unit_ok = True
    if is_number(unit):
        unit = f"{unit:g}"
    elif unit is not None and not isinstance(unit, str):
        c.error(f"{path}.unit", f"expected text, got {type_name(unit)}")
        unit, unit_ok = None, False
    hour, when = _collected(c, item.get("collected"), f"{path}.collected")
    day = c.number(item, "day", f"{path}.day", low=0, what="days since the first sample")
    method = c.text(item, "method", f"{path}.method") or None
    note = c.text(item, "note", f"{path}.note") or None
    specimen_text = c.text(item, "specimen", f"{path}.specimen") or None
    if not name:
        return None
    match = vocab.match_analyte(name)
    if match is None:
        reason = vocab.not_modelled_reason(name)
        c.skip(path, reason if reason else f"unknown analyte {name!r}")
        return None
    if match.warning:
        c.warnings.append(f"{path}: {match.warning}")
    resolved = _resolve(c, path, match, specimen_text, unit, unit_ok)
    if resolved is None:
        return None
    analyte, specimen, conv = resolved
    if conv is None or value is None or len(c.errors) > n_errors:
        return None
    canonical, censor = _canonical_value(
        c, path, name, analyte, specimen, method, value, censor, unit or "", conv
    )
    ri = _reference_interval(c, item, f"{path}.reference_interval", conv)
    if canonical is None or len(c.errors) > n_errors:
        return None
    measurement = Measurement(
        index=i,
        analyte=analyte.id,
        specimen=specimen,
        value=canonical,
        censor=censor,
        unit=unit or "",
        raw_value=item.get("value"),
        hour=hour,
        day=day if day is not None else 0.0,
        method=method,
        reference_interval=ri,
        note=note,
    )
    return measurement, (when if day is None else None)


def _value(c: Collector, item: dict, path: str) -> tuple[float | None, str]:
    raw = item.get("value")
    path = f"{path}.value"
    if "value" not in item or raw is None:
        c.error(path, "missing: give a number, or text like '<0.01' or '>1000'")
        return None, "none"
    censor = "none"
    if is_number(raw):
        value = float(raw)
    elif isinstance(raw, str) and NUMBER_TEXT.match(raw):
        value = float(raw)
    elif isinstance(raw, str) and (m := _CENSORED.match(raw)):
        censor = "left" if m.group(1) in ("<", "<=", "≤") else "right"
        value = float(m.group(2))
    else:
        c.error(
            path,
            f"expected a number or a censored value like '<0.01' or '>1000', got {type_name(raw)}",
        )
        return None, "none"
    if value < 0:
        c.error(path, f"a concentration cannot be negative, got {fmt_raw(raw)}")
        return None, "none"
    if value == 0 and censor == "right":
        c.error(path, "'>0' carries no information; give the value or leave it out")
        return None, "none"
    return value, censor


def _collected(c: Collector, raw: Any, path: str) -> tuple[float | None, date | None]:
    if raw is None:
        return None, None
    if not isinstance(raw, str):
        c.error(
            path,
            f"expected a clock time 'HH:MM' or an ISO 8601 date-time, got {type_name(raw)}",
        )
        return None, None
    m = _CLOCK.match(raw)
    if m:
        hours, minutes = int(m.group(1)), int(m.group(2))
        seconds = float(m.group(3) or 0)
        if (hours, minutes, seconds) == (24, 0, 0.0):
            return 0.0, None
        if hours < 24 and minutes < 60 and seconds < 60:
            return hours + minutes / 60 + seconds / 3600, None
        c.error(path, f"not a clock time: {raw!r} (00:00 to 24:00)")
        return None, None
    text = raw.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        c.error(path, f"{raw!r} is a date without a time; give 'YYYY-MM-DDTHH:MM'")
        return None, None
    try:
        when = _iso_datetime(text)
    except ValueError:
        c.error(path, f"expected a clock time 'HH:MM' or an ISO 8601 date-time, got {raw!r}")
        return None, None
    return when.hour + when.minute / 60 + when.second / 3600, when.date()


def _iso_datetime(text: str) -> datetime:
    """An ISO 8601 date-time as written in ``collected`` (a trailing ``Z`` is UTC)."""
    return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


#: resolutions that succeeded without a message, by (analyte, implied specimen, specimen text,
#: unit, unit ok):
#: the same few combinations recur in every case of a batch
_RESOLVED: dict[tuple, tuple[vocab.Analyte, str, Conversion | None]] = {}


def _resolve(
    c: Collector,
    path: str,
    match: vocab.AnalyteMatch,
    specimen_text: str | None,
    unit: str | None,
    unit_ok: bool = True,
) -> tuple[vocab.Analyte, str, Conversion | None] | None:
    """Choose analyte (or an alternate), specimen and unit conversion."""
    key = (match.analyte.id, match.implied_specimen, specimen_text, unit, unit_ok)
    hit = _RESOLVED.get(key)
    if hit is not None:
        return hit
    before = (len(c.errors), len(c.not_used), len(c.warnings))
    out = _resolve_uncached(c, path, match, specimen_text, unit, unit_ok)
    if out is not None and (len(c.errors), len(c.not_used), len(c.warnings)) == before:
        if len(_RESOLVED) > 4096:
            _RESOLVED.clear()
        _RESOLVED[key] = out
    return out


def _resolve_uncached(c, path, match, specimen_text, unit, unit_ok):  # types: see _resolve
    analyte = match.analyte
    if specimen_text is not None:
        candidates = vocab.specimen_candidates(specimen_text)
        if not candidates:
            c.skip(
                path,
                f"unknown specimen {specimen_text!r} for {analyte.id}; known "
                f"specimens: {', '.join(vocab.specimen_ids())}",
            )
            return None
    else:
        candidates = (match.implied_specimen,) if match.implied_specimen else ()
    choice = _pick(analyte, candidates)
    if choice is None:
        for alt_id in analyte.alternates:
            alt = vocab.analytes()[alt_id]
            if _pick(alt, candidates) is not None:
                analyte, choice = alt, _pick(alt, candidates)
                break
    if choice is None:
        c.skip(
            path,
            f"specimen {candidates[0]} is not modelled for {analyte.id} "
            f"(modelled: {', '.join(analyte.specimens)})",
        )
        return None
    if not unit_ok:
        return analyte, choice, None
    conv = _unit(c, path, analyte, unit, specimen_text is not None or bool(candidates))
    if isinstance(conv, tuple):  # the unit says it is an alternate analyte (no specimen given)
        analyte, conv = conv
        choice = analyte.specimens[0]
    return analyte, choice, conv


def _unit(
    c: Collector, path: str, analyte: vocab.Analyte, unit: str | None, specimen_given: bool
) -> Conversion | tuple[vocab.Analyte, Conversion] | None:
    if unit is None:
        try:
            return conversion(analyte, "")
        except UnitError:
            c.error(
                f"{path}.unit",
                f"missing: give the unit ({analyte.id} accepts "
                f"{', '.join(analyte.accepted_units)})",
            )
            return None
    try:
        return conversion(analyte, unit)
    except UnitError as exc:
        problem = str(exc)
    if not specimen_given:
        for alt_id in analyte.alternates:
            alt = vocab.analytes()[alt_id]
            try:
                return alt, conversion(alt, unit)
            except UnitError:
                continue
    c.error(f"{path}.unit", problem)
    return None


def _canonical_value(
    c: Collector,
    path: str,
    name: str,
    analyte: vocab.Analyte,
    specimen: str,
    method: str | None,
    value: float,
    censor: str,
    unit: str,
    conv: Conversion,
) -> tuple[float | None, str]:
    if value == 0 and censor in ("none", "left"):
        lod = analyte.lod_for(specimen, method)
        if lod is None:
            c.error(
                f"{path}.value",
                f"0 is not a possible {analyte.id} value and "
                f"{analyte.id} has no detection limit; give the value as reported",
            )
            return None, censor
        shown = f"{fmt(conv.backward(lod))} {unit}".rstrip()
        if conv.scale != 1 or conv.offset:
            shown += f" ({fmt(lod)} {analyte.canonical_unit})"
        c.warnings.append(f"{path}: 0 read as below the detection limit {shown}")
        return lod, "left"
    canonical = conv.forward(value)
    if canonical <= 0:
        c.error(
            f"{path}.value",
            f"{fmt_raw(value)} {unit} is "
            f"{fmt(canonical)} {analyte.canonical_unit}, not a possible value",
        )
        return None, censor
    bounds = analyte.plausible_for(specimen)
    if censor == "none" and bounds is not None and not bounds[0] <= canonical <= bounds[1]:
        c.warnings.append(
            f"{path}: {name} {fmt_raw(value)} {unit} = {fmt(canonical)} "
            f"{analyte.canonical_unit} is implausible; check the unit"
        )
    return canonical, censor


def _reference_interval(
    c: Collector, item: dict, path: str, conv: Conversion
) -> tuple[float, float] | None:
    raw = item.get("reference_interval")
    if raw is None:
        return None
    if not (
        isinstance(raw, list)
        and len(raw) == 2
        and all(v is None or is_number(v) for v in raw)
        and raw != [None, None]
    ):
        c.error(
            path,
            "expected [low, high], two numbers in the result's unit (one may be null for an "
            f"open limit, e.g. [null, 35]), got {type_name(raw)}",
        )
        return None
    if None in raw:
        _one_sided(c, path, raw)
        return None
    low, high = float(raw[0]), float(raw[1])
    if low < 0 or not low < high:
        c.error(path, f"expected 0 <= low < high, got [{low:g}, {high:g}]")
        return None
    # an affine unit can map a lower limit of 0 below zero (0 % HbA1c): clamp it
    return max(conv.forward(low), 0.0), conv.forward(high)


def _one_sided(c: Collector, path: str, raw: list) -> None:
    """A lab interval with one open limit (``[null, 35]``): accepted, its limit checked, and
    listed as not used (the lab's interval is read by its midpoint, which needs both)."""
    limit = raw[0] if raw[1] is None else raw[1]
    if limit < 0:
        c.error(path, "expected a limit >= 0")
        return
    c.skip(path, "one-sided reference interval: a lab's interval is read (as its method's "
                 "offset) from both limits, so this one is not used")


def _pick(analyte: vocab.Analyte, candidates: tuple[str, ...]) -> str | None:
    if not candidates:
        return analyte.specimens[0]
    for candidate in candidates:
        if candidate in analyte.specimens:
            return candidate
    return None


def plain_dated(collected: str) -> tuple[str, int] | None:
    """``(clock time, date's proleptic ordinal)`` of a ``collected`` date-time written
    ``YYYY-MM-DD[T ]HH:MM[:SS][Z|+HH:MM]`` (whole seconds), as the full reader reads it: the
    clock time read as ``"HH:MM[:SS]"`` gives the same hour (:func:`_collected`: the time as
    written, whatever its offset), and the date the same day offsets; ``None`` for anything
    else (the full reader decides)."""
    head, rest = collected[:10], collected[10:]
    try:
        day = _DATE_PARTS[head]
    except KeyError:
        day = _DATE_PARTS[head] = _date_part(head)
        if len(_DATE_PARTS) > 4096:
            _DATE_PARTS.clear()
    if day is None:
        return None
    try:
        clock = _TIME_PARTS[rest]
    except KeyError:
        m = _TIME_PART.fullmatch(rest)
        clock = _TIME_PARTS[rest] = None if m is None else m.group(1)
        if len(_TIME_PARTS) > 4096:
            _TIME_PARTS.clear()
    return None if clock is None else (clock, day)


def _date_part(text: str) -> int | None:
    """A ``YYYY-MM-DD`` date's proleptic ordinal, or None."""
    m = _DATE_PART.fullmatch(text)
    if m is None:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3))).toordinal()
    except ValueError:
        return None


def first_sample_date(raw: Any) -> date | None:
    """The earliest date among the ``collected`` ISO date-times of a case's measurements as
    written (``None``: none dated); what the reader's checks reject is skipped here."""
    dates = []
    for item in raw if isinstance(raw, list) else []:
        text = item.get("collected") if isinstance(item, dict) else None
        if isinstance(text, str) and not _CLOCK.match(text):
            try:
                dates.append(_iso_datetime(text).date())
            except ValueError:
                continue
    return min(dates, default=None)


def _days_from_dates(read: list[tuple[Measurement, date | None]]) -> tuple[Measurement, ...]:
    """Give measurements dated by an ISO date-time (and no ``day``) their day offset."""
    dates = [when for _, when in read if when is not None]
    if len(set(dates)) < 2:
        return tuple(m for m, _ in read)
    first = min(dates)
    return tuple(
        dataclasses.replace(m, day=float((when - first).days)) if when is not None else m
        for m, when in read
    )
