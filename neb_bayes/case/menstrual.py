"""Read the free-text ``patient.menstrual_phase`` of a case.

Clinicians write the phase as they like: ``"follicular (day 9)"``, ``"luteal (day 22)"``,
``"amenorrhoeic for 5 months"``, ``"no period for 18 months"``, ``"last period 13 months
ago"``, ``"LMP 12 days ago"`` (cycle day 13), ``"LMP 2026-11-20"`` (the day counted by the
case reader from the first dated sample), ``"oligomenorrhoea (cycles 50-90 days)"``,
``"on combined OCP, active-pill week"``.
:func:`read_menstrual_phase` takes out what is written — phase, cycle day, cycle disturbance
and its duration, cycle length, pill week, whether the cycles are said to be regular — and
nothing more: it does not infer a phase from
a cycle day.  :func:`phase_from_cycle_day` does, for a cycle day written without a phase
("day 22", "day 21 of a 28-day cycle"), by the convention below.

>>> read_menstrual_phase("luteal (day 22)")
MenstrualReading(phase='luteal', cycle_day=22, disturbance=None, duration_months=None, \
cycle_length_days=None, pill_week=None, regular=False, lmp_date=None, days_since_lmp=None)
>>> read_menstrual_phase("LMP 12 days ago").cycle_day
13
>>> read_menstrual_phase("regular, LMP 2026-11-20").lmp_date
datetime.date(2026, 11, 20)
>>> read_menstrual_phase("regular cycles").regular
True
>>> read_menstrual_phase("amenorrhoeic for 5 months").duration_months
5.0
>>> read_menstrual_phase("it varies") is None
True
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date

from neb_bayes.case.model import MenstrualReading

__all__ = [
    "LUTEAL_PHASE_DAYS",
    "OVULATORY_HALF_WINDOW_DAYS",
    "USUAL_CYCLE_DAYS",
    "phase_from_cycle_day",
    "read_menstrual_phase",
    "with_lmp_cycle_day",
]

#: Cycle length assumed when a cycle day is written without one (the textbook 28-day cycle;
#: neither the spec nor the clinical facts give another convention).
USUAL_CYCLE_DAYS = 28
#: Days from ovulation to the next period (the luteal phase is about this long whatever the
#: cycle's length; the follicular phase is what varies).
LUTEAL_PHASE_DAYS = 14
#: Days either side of the expected ovulation day read as the ovulatory phase; a day this
#: close is not read as follicular or luteal.
OVULATORY_HALF_WINDOW_DAYS = 1

_F = re.IGNORECASE
_CONTRACEPTION = re.compile(
    r"\b(?:ocp|cocp?|pop)\b|oral contracepti|contraceptive pill|combined pill|\bthe pill\b|"
    r"hormonal contracepti|progest(?:ogen|in)[- ]only|pill[- ]free|active[- ]pill|"
    r"placebo pill|hormone[- ]free interval",
    _F,
)
_ACTIVE = re.compile(r"active[- ]?(?:pill|tablet|hormone)|active week|hormone week", _F)
_PILL_FREE = re.compile(
    r"pill[- ]free|placebo|hormone[- ]free|withdrawal bleed|inactive pill|sugar pill|break week",
    _F,
)
_NOT_PREGNANT = re.compile(r"\bnot pregnant|non[- ]?pregnant", _F)
_PREGNANT = re.compile(r"\bpregnan", _F)
_POSTPARTUM = re.compile(r"post[- ]?partum|breast[- ]?feeding|lactating", _F)
_POSTMENOPAUSAL = re.compile(
    r"post[- ]?menopaus|(?<![a-z-])(?<!peri )(?<!pre )menopaus(?:e|al)\b", _F
)
_OLIGO = re.compile(r"oligo[- ]?a?menorrh|infrequent (?:periods|menses|cycles)", _F)
_AMENORRHOEA = re.compile(
    r"amenorrh|\bno (?:menstrual )?(?:periods?|menses|menstruation)\b|"
    r"absent (?:periods|menses)",
    _F,
)
_LAST_PERIOD = re.compile(
    r"\b(?:last (?:menstrual )?period|lmp)\b[^.;]*?"
    r"(\d+(?:\.\d+)?\s*(?:months?|mo|mths?|weeks?|wks?|years?|yrs?))\s+ago\b",
    _F,
)
#: the first day of the last period so many days ago ("LMP 12 days ago", "LMP 12/7 ago"):
#: cycle day n + 1
_LMP_AGO = re.compile(
    r"\b(?:lmp|last (?:menstrual )?period)\b[^.;]*?\b(\d{1,2})\s*(?:days?|d|/7)\s*ago\b", _F)
#: the first day of the last period as an ISO date (other date forms are ambiguous: 03/04)
_LMP_DATE = re.compile(r"\b(?:lmp|last (?:menstrual )?period)\b[^.;\d]*?(\d{4}-\d{2}-\d{2})\b", _F)
_ANOVULATION = re.compile(r"anovulat", _F)
_IRREGULAR = re.compile(r"irregular", _F)
#: regular cycles written as such ("irregular" has no word boundary before "regular"; "not
#: regular" is not read)
_REGULAR = re.compile(r"(?<!not )(?<!never )\bregular\b", _F)
#: phases without ordinary cycles: regularity written beside them is not read
_NO_CYCLE_PHASES = frozenset({"amenorrhoeic", "pregnant", "postpartum", "postmenopausal",
                              "hormonal_contraception"})
_LUTEAL = re.compile(r"luteal|post[- ]?ovulat|secretory phase", _F)
_OVULATORY = re.compile(r"(?<!an)(?<!post)(?<!post-)(?<!post )ovulat|mid[- ]?cycle", _F)
_FOLLICULAR = re.compile(
    r"follicul|proliferative phase|menstrual phase|menstruating|during (?:her )?(?:period|menses)|"
    r"on (?:her )?period",
    _F,
)
_UNKNOWN = re.compile(r"^\s*(?:unknown|not known|unsure|n/?a|not applicable|none)\s*$", _F)
_DAY = re.compile(r"\b(?:cycle\s*day|day|cd|d)\s*(\d{1,2})\b", _F)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(months?|mo|mths?|weeks?|wks?|years?|yrs?)\b", _F)
_LENGTH = re.compile(
    r"cycles?\s*(?:of\s*|length\s*)?(\d+)\s*(?:(?:-|–|to)\s*(\d+)\s*)?days?|"
    r"(\d+)\s*(?:(?:-|–|to)\s*(\d+)\s*)?[- ]?days?\s*cycles?",
    _F,
)
#: Months since the last period from which "last period ... ago" is read as amenorrhoea
#: (secondary amenorrhoea: no menses for more than 3 months after regular cycles, 6 after
#: irregular ones; ASRM Practice Committee, Current evaluation of amenorrhea, Fertil Steril
#: 2008, and the Australian Therapeutic Guidelines' classification, checked 2026-12-06;
#: shorter is an ordinary or a late cycle, and is not read).
AMENORRHOEA_MIN_MONTHS = 3.0
#: mean days per month of the Gregorian calendar (an LMP date's months before a sample)
DAYS_PER_MONTH = 365.2425 / 12
_MONTHS = {
    "mo": 1.0,
    "mon": 1.0,
    "mth": 1.0,
    "wee": 12 / 52.1775,
    "wk": 12 / 52.1775,
    "yea": 12.0,
    "yr": 12.0,
}


def _amenorrhoea(text: str) -> bool:
    """Absent periods written as such, or a last period at least
    :data:`AMENORRHOEA_MIN_MONTHS` ago."""
    if _AMENORRHOEA.search(text):
        return True
    match = _LAST_PERIOD.search(text)
    months = _duration_months(match.group(1)) if match else None
    return months is not None and months >= AMENORRHOEA_MIN_MONTHS


def _phase(text: str) -> str | None:
    if _CONTRACEPTION.search(text):
        return "hormonal_contraception"
    if _PREGNANT.search(text) and not _NOT_PREGNANT.search(text):
        return "pregnant"
    if _POSTPARTUM.search(text):
        return "postpartum"
    if _POSTMENOPAUSAL.search(text):
        return "postmenopausal"
    if _amenorrhoea(text) and not _OLIGO.search(text):
        return "amenorrhoeic"
    for name, pattern in (
        ("luteal", _LUTEAL),
        ("ovulatory", _OVULATORY),
        ("follicular", _FOLLICULAR),
    ):
        if pattern.search(text):
            return name
    if _UNKNOWN.match(text):
        return "unknown"
    return None


def _disturbance(text: str) -> str | None:
    if _OLIGO.search(text):
        return "oligomenorrhoea"
    if _amenorrhoea(text):
        return "amenorrhoea"
    if _ANOVULATION.search(text):
        return "anovulation"
    if _IRREGULAR.search(text):
        return "irregular"
    return None


def _duration_months(text: str) -> float | None:
    match = _DURATION.search(text)
    if match is None:
        return None
    unit = match.group(2).lower()
    for stem, factor in _MONTHS.items():
        if unit.startswith(stem):
            return round(float(match.group(1)) * factor, 3)
    return None  # pragma: no cover - every unit the pattern matches has a stem


def _cycle_length(text: str) -> tuple[float, float] | None:
    match = _LENGTH.search(text)
    if match is None:
        return None
    low, high = match.group(1) or match.group(3), match.group(2) or match.group(4)
    low_f = float(low)
    high_f = float(high) if high else low_f
    return (min(low_f, high_f), max(low_f, high_f))


def read_menstrual_phase(text: str) -> MenstrualReading | None:
    """Read phase, cycle day and cycle disturbance from a free-text menstrual phase.

    Returns ``None`` when the text says nothing the engine can use (the reader then lists
    it under "not used").
    """
    phase = _phase(text)
    disturbance = _disturbance(text)
    day_match = _DAY.search(text)
    cycle_day = int(day_match.group(1)) if day_match else None
    lmp_date = None
    if cycle_day is None:
        ago = _LMP_AGO.search(text)
        if ago:
            cycle_day = int(ago.group(1)) + 1
        else:
            lmp_date = _iso_date(_LMP_DATE.search(text))
    if cycle_day is not None and not 1 <= cycle_day <= 60:
        cycle_day = None
    pill_week = None
    if phase == "hormonal_contraception":
        if _PILL_FREE.search(text):
            pill_week = "pill_free"
        elif _ACTIVE.search(text):
            pill_week = "active"
    duration = _duration_months(text) if disturbance in ("amenorrhoea", "oligomenorrhoea") else None
    length = _cycle_length(text)
    regular = (disturbance is None and phase not in _NO_CYCLE_PHASES
               and _REGULAR.search(text) is not None)
    if (phase is None and disturbance is None and cycle_day is None and length is None
            and not regular and lmp_date is None):
        return None
    return MenstrualReading(
        phase=phase,
        cycle_day=cycle_day,
        disturbance=disturbance,
        duration_months=duration,
        cycle_length_days=length,
        pill_week=pill_week,
        regular=regular,
        lmp_date=lmp_date,
    )


def _iso_date(match: re.Match | None) -> date | None:
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def with_lmp_cycle_day(reading: MenstrualReading | None, first_sample: date | None,
                       pregnant: bool | None = None) -> MenstrualReading | None:
    """The reading with the cycle day of an LMP date counted to the first dated sample (day 1
    the LMP's own), or, :data:`AMENORRHOEA_MIN_MONTHS` or more before it with no phase or
    disturbance written, amenorrhoea for that long (as "last period 4 months ago");
    unchanged where there is no LMP date, no dated sample, or the count falls between (the
    context reader then lists the LMP as not used).  In a pregnancy (``pregnant`` or a
    pregnant phase) only the days are kept: its gestational age."""
    if reading is None or reading.lmp_date is None or first_sample is None:
        return reading
    days = (first_sample - reading.lmp_date).days
    reading = dataclasses.replace(reading, days_since_lmp=days)
    if pregnant or reading.phase in _NO_CYCLE_PHASES:
        return reading        # e.g. a pregnancy, dated from its LMP by the context reader
    if 1 <= days + 1 <= 60:
        return dataclasses.replace(reading, cycle_day=days + 1)
    months = days / DAYS_PER_MONTH
    if (months >= AMENORRHOEA_MIN_MONTHS and reading.phase in (None, "unknown")
            and reading.disturbance is None):
        return dataclasses.replace(reading, phase="amenorrhoeic", disturbance="amenorrhoea",
                                   duration_months=round(months, 3), regular=False)
    return reading


def _phase_on_day(day: int, length: float) -> str | None:
    """The phase of ``day`` in a regular cycle of ``length`` days (None: past its end)."""
    if day > length:
        return None
    ovulation = length - LUTEAL_PHASE_DAYS
    if day < ovulation - OVULATORY_HALF_WINDOW_DAYS:
        return "follicular"
    if day <= ovulation + OVULATORY_HALF_WINDOW_DAYS:
        return "ovulatory"
    return "luteal"


def phase_from_cycle_day(
    day: int, cycle_length_days: tuple[float, float] | None = None
) -> tuple[str | None, str]:
    """The phase a cycle day written without one falls in, and the basis of that reading.

    Ovulation is taken as :data:`LUTEAL_PHASE_DAYS` before the cycle's end, the days within
    :data:`OVULATORY_HALF_WINDOW_DAYS` of it as ovulatory; the cycle is the one written, else
    :data:`USUAL_CYCLE_DAYS` long.  Conservative: a range of cycle lengths gives a phase only
    where both ends agree, and a day past the cycle's end gives none.

    Returns
    -------
    phase, basis
        ``follicular``, ``ovulatory``, ``luteal`` or ``None`` (no phase can be assumed), and
        the convention used, as text for the report.

    >>> phase_from_cycle_day(22)[0]
    'luteal'
    >>> phase_from_cycle_day(21, (35.0, 35.0))[0]
    'ovulatory'
    >>> phase_from_cycle_day(30)[0] is None
    True
    """
    if cycle_length_days is None:
        lengths: tuple[float, float] = (USUAL_CYCLE_DAYS, USUAL_CYCLE_DAYS)
        basis = f"a {USUAL_CYCLE_DAYS}-day cycle assumed"
    else:
        lengths = cycle_length_days
        low, high = lengths
        basis = f"a {low:g}-day cycle" if low == high else f"cycles of {low:g}-{high:g} days"
    basis += f", ovulation about {LUTEAL_PHASE_DAYS} days before the next period"
    phases = {_phase_on_day(day, length) for length in lengths}
    return (phases.pop() if len(phases) == 1 else None), basis
