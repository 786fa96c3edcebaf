"""Frozen objects a case file is read into.

A :class:`Case` holds what the clinician sent, already normalised: canonical analyte,
specimen and symptom ids, values in each analyte's canonical unit, censoring made
explicit, clock times as hours.  Nothing here knows about the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

Censor = Literal["none", "left", "right"]
Sex = Literal["F", "M"]


@dataclass(frozen=True)
class FieldError:
    """One problem in a case file, located by its field path (``measurements[3].unit``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class CaseError(ValueError):
    """A case file that cannot be read; carries every error found, not just the first."""

    def __init__(self, errors: list[FieldError], source: str | None = None):
        self.errors = list(errors)
        self.source = source
        head = f"{source}: " if source else ""
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{head}{len(self.errors)} error(s) in case\n{lines}")


@dataclass(frozen=True)
class NotUsed:
    """An item of the case the engine did not use, and why (the report lists these)."""

    item: str
    reason: str


@dataclass(frozen=True)
class Measurement:
    """One laboratory result, converted to the analyte's canonical unit.

    Attributes
    ----------
    index
        Position in the case file's ``measurements`` list (for field paths).
    analyte
        Canonical analyte id (``tsh``, ``ft4``, ``cortisol``...).
    specimen
        Canonical specimen (``serum``, ``plasma``, ``whole_blood``, ``saliva``,
        ``urine_24h``, ``urine_spot``).
    value
        Value in the canonical unit.  For a censored result this is the limit.
    censor
        ``"left"`` for a result below ``value`` ("<0.01", or 0 read as below the
        detection limit), ``"right"`` for a result above it, ``"none"`` otherwise.
    unit
        The unit as written in the case file.
    hour
        Clock time of collection in hours (0-24), or ``None`` when not given.
    day
        Days since the first sample (repeated measures).
    """

    index: int
    analyte: str
    specimen: str
    value: float
    censor: Censor = "none"
    unit: str = ""
    raw_value: float | str | None = None
    hour: float | None = None
    day: float = 0.0
    method: str | None = None
    reference_interval: tuple[float, float] | None = None
    note: str | None = None


@dataclass(frozen=True)
class Medication:
    """A medication as written, with optional structured details."""

    name: str
    raw: str | dict
    dose_mg_per_day: float | None = None
    last_dose: str | None = None


@dataclass(frozen=True)
class MenstrualReading:
    """What a free-text ``menstrual_phase`` says, read by :mod:`neb_bayes.case.menstrual`.

    Attributes
    ----------
    phase
        ``follicular``, ``ovulatory``, ``luteal``, ``amenorrhoeic``, ``pregnant``,
        ``postpartum``, ``postmenopausal``, ``hormonal_contraception``, ``unknown`` or
        ``None`` when the text names no phase.
    cycle_day
        Day of the cycle ("day 9", "CD21"), or ``None``.
    disturbance
        ``amenorrhoea``, ``oligomenorrhoea``, ``anovulation`` or ``irregular``, or ``None``.
    duration_months
        How long the disturbance has lasted ("amenorrhoeic for 5 months"), or ``None``.
    cycle_length_days
        Cycle length as a range ("cycles 50-90 days"), or ``None``.
    pill_week
        ``active`` or ``pill_free`` for hormonal contraception, or ``None``.
    regular
        The text says the cycles are regular ("regular cycles", "regular, day 3") and names
        no disturbance or state without cycles.
    lmp_date
        The first day of the last menstrual period as an ISO date ("LMP 2026-11-20"), while
        no cycle day is read from it (the case reader counts the day from the first dated
        sample, :func:`neb_bayes.case.menstrual.with_lmp_cycle_day`), else ``None``.
    days_since_lmp
        Days from that LMP date to the first dated sample, when the case reader could count
        them (a pregnancy's gestational age), else ``None``.
    """

    phase: str | None = None
    cycle_day: int | None = None
    disturbance: str | None = None
    duration_months: float | None = None
    cycle_length_days: tuple[float, float] | None = None
    pill_week: str | None = None
    regular: bool = False
    lmp_date: date | None = None
    days_since_lmp: int | None = None


@dataclass(frozen=True)
class Patient:
    """Who the results belong to.  ``menstrual_phase`` is the text as written;
    ``menstrual`` is what could be read from it (``None`` when nothing could)."""

    sex: Sex | None = None
    age: float | None = None
    pregnant: bool | None = None
    gestational_week: float | None = None
    menopausal_status: str | None = None
    menstrual_phase: str | None = None
    bmi: float | None = None
    medications: tuple[Medication, ...] = ()
    context: tuple[str, ...] = ()
    menstrual: MenstrualReading | None = None


@dataclass(frozen=True)
class Symptoms:
    """Canonical symptom ids by status; a symptom listed nowhere is unknown."""

    present: frozenset[str] = frozenset()
    absent: frozenset[str] = frozenset()
    unknown: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Case:
    """One patient's case, validated and normalised."""

    id: str
    patient: Patient = field(default_factory=Patient)
    measurements: tuple[Measurement, ...] = ()
    symptoms: Symptoms = field(default_factory=Symptoms)
    not_used: tuple[NotUsed, ...] = ()
    warnings: tuple[str, ...] = ()
    source: str | None = None
