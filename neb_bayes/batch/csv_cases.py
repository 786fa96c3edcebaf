"""Wide CSV batch input: one row per case, converted to the case-file mapping.

Column convention
-----------------
The first row is the header.  Column names are matched as written, except the reserved
names and the ``sym_`` prefix, which are matched case-insensitively.

Patient and case columns (all optional except ``id``)
    ``id``, ``sex`` (F/M/empty), ``age``, ``pregnant`` (1/0, true/false, yes/no, or empty),
    ``gestational_week``, ``menopausal_status``, ``menstrual_phase`` (free text), ``bmi``.
List columns (items separated by ``;``)
    ``medications``, ``context``, ``symptoms_present``, ``symptoms_absent``,
    ``symptoms_unknown``.
Symptom columns
    ``sym_<symptom>``: ``1`` present, ``0`` absent, empty unknown (also ``yes``/``no``,
    ``true``/``false``, ``present``/``absent``/``unknown``).
Measurement columns
    ``<analyte>_<unit>[__<specimen>][__t<HHMM>][__d<day>]``:

    * ``<analyte>``: an analyte id, name or synonym with spaces written ``_``
      (``TSH``, ``ft4``, ``free_T4``, ``glucose_fasting``);
    * ``<unit>``: the unit with every ``/`` written ``_per_`` and ``%`` written ``pct``
      (``mIU_per_L``, ``pmol_per_L``, ``ug_per_dL``, ``ng_per_mL_per_h``, ``pct``);
      the unit is the last ``_``-separated word, extended to the left over each
      ``_per_``, so analyte names may contain ``_`` but units may not;
    * optional modifiers, each after a double underscore, in any order: a specimen
      (``__saliva``, ``__urine_24h``, ``__whole_blood``), a collection time
      (``__t0840`` = 08:40) and a day for repeated measures (``__d14``).

    A cell holds a number (``38.5``), a censored value (``<0.01``, ``>1000``) or nothing
    (not measured).  Examples: ``TSH_mIU_per_L``, ``FT4_pmol_per_L``,
    ``cortisol_ug_per_dL__serum__t0800``, ``cortisol_nmol_per_L__saliva__t2300``,
    ``TSH_mIU_per_L__d30``, ``HbA1c_pct``.
Other columns
    A column that fits none of the above (no ``_<unit>`` part) is not an error: when its
    cell is filled it is listed in the case's "not used" items as ``csv column '<name>'``
    (a column without a name, such as a trailing comma's: ``csv column <number> (no
    name)``).

Errors name the column as well as the case-file field path the reader reports.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any, NamedTuple

import numpy as np

from neb_bayes.case.model import FieldError

__all__ = ["ColumnSpec", "CsvPlan", "RowParts", "SparseRow", "column_label", "last_header",
           "plan_header", "row_parts", "row_to_case", "sparse_row"]

PATIENT_NUMBERS = ("age", "gestational_week", "bmi")
PATIENT_TEXT = ("sex", "menopausal_status", "menstrual_phase")
PATIENT_LISTS = ("medications", "context")
SYMPTOM_LISTS = {"symptoms_present": "present", "symptoms_absent": "absent",
                 "symptoms_unknown": "unknown"}
RESERVED = ("id", "pregnant", *PATIENT_NUMBERS, *PATIENT_TEXT, *PATIENT_LISTS, *SYMPTOM_LISTS)

_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_TIME = re.compile(r"^t(\d{2}):?(\d{2})$", re.IGNORECASE)
_DAY = re.compile(r"^d(\d+(?:\.\d+)?)$", re.IGNORECASE)
_UNIT_WORDS = {"pct": "%", "percent": "%"}
_TRUE = {"1", "true", "yes", "y", "present"}
_FALSE = {"0", "false", "no", "n", "absent"}
_SYMPTOM_STATE = {**dict.fromkeys(_TRUE, "present"), **dict.fromkeys(_FALSE, "absent"),
                  "unknown": "unknown"}


@dataclass(frozen=True)
class ColumnSpec:
    """What one CSV column holds.

    Attributes
    ----------
    kind
        ``id``, ``number``, ``text``, ``bool``, ``list``, ``symptoms``, ``symptom``,
        ``measurement`` or ``other``.
    key
        The patient field, symptom state list, symptom name or analyte name.
    unit, specimen, collected, day
        For measurement columns: unit as labs write it, specimen text, ``"HH:MM"``, day.
    """

    name: str
    kind: str
    key: str = ""
    unit: str = ""
    specimen: str | None = None
    collected: str | None = None
    day: float | None = None


@dataclass(frozen=True)
class CsvPlan:
    """How every column of a header is read; ``errors`` are header problems."""

    columns: tuple[ColumnSpec, ...]
    errors: tuple[str, ...] = ()

    @functools.cached_property
    def layout(self) -> tuple[tuple[int, ...], tuple]:
        """Per column, what :func:`row_parts` does with a filled cell: a code and its
        payload (a measurement's form and day, a symptom's name or state, a patient field)."""
        codes, payload = [], []
        for spec in self.columns:
            kind = spec.kind
            if kind == "measurement":
                codes.append(_MEASUREMENT)
                payload.append(((spec.key, spec.specimen, spec.unit, spec.collected),
                                0.0 if spec.day is None else spec.day))
            elif kind in _KEYED:
                codes.append(_KEYED[kind])
                payload.append(spec.key)
            elif kind in _PATIENT_CELLS:
                codes.append(_PATIENT)
                payload.append((kind, spec.key))
            else:
                codes.append(_ID if kind == "id" else _OTHER)
                payload.append(None)
        return tuple(codes), tuple(payload)


def _measurement(name: str) -> ColumnSpec | None:
    head, *mods = name.split("__")
    tokens = head.split("_")
    if len(tokens) < 2 or not all(tokens):
        return None
    i = len(tokens) - 1
    unit = _UNIT_WORDS.get(tokens[i].lower(), tokens[i])
    while i >= 3 and tokens[i - 1].lower() == "per":
        unit = f"{_UNIT_WORDS.get(tokens[i - 2].lower(), tokens[i - 2])}/{unit}"
        i -= 2
    analyte = "_".join(tokens[:i])
    if not analyte:
        return None
    specimen = collected = None
    day = None
    for mod in mods:
        if m := _TIME.match(mod):
            collected = f"{m.group(1)}:{m.group(2)}"
        elif m := _DAY.match(mod):
            day = float(m.group(1))
        elif mod:
            specimen = mod
        else:
            return None
    return ColumnSpec(name, "measurement", analyte, unit, specimen, collected, day)


def _column(name: str) -> ColumnSpec:
    low = name.strip().lower()
    if low == "id":
        return ColumnSpec(name, "id")
    if low == "pregnant":
        return ColumnSpec(name, "bool", "pregnant")
    if low in PATIENT_NUMBERS:
        return ColumnSpec(name, "number", low)
    if low in PATIENT_TEXT:
        return ColumnSpec(name, "text", low)
    if low in PATIENT_LISTS:
        return ColumnSpec(name, "list", low)
    if low in SYMPTOM_LISTS:
        return ColumnSpec(name, "symptoms", SYMPTOM_LISTS[low])
    if low.startswith("sym_") and len(low) > 4:
        return ColumnSpec(name, "symptom", name.strip()[4:])
    return _measurement(name.strip()) or ColumnSpec(name, "other")


@functools.lru_cache(maxsize=64)
def plan_header(header: tuple[str, ...]) -> CsvPlan:
    """Read a CSV header into a :class:`CsvPlan` (cached: one per file in practice).

    Parameters
    ----------
    header
        The column names of the first row.
    """
    errors = []
    seen: dict[str, int] = {}
    for j, name in enumerate(header):
        key = name.strip().lower() if name.strip().lower() in RESERVED else name.strip()
        if not key:
            continue          # (a column without a name: read as any other column)
        if key in seen:
            errors.append(f"column {name!r} appears twice (columns {seen[key] + 1} and {j + 1})")
        else:
            seen[key] = j
    return CsvPlan(tuple(_column(n) for n in header), tuple(errors))


def last_header(build: Callable[[Sequence[str]], Any]) -> Callable[[Sequence[str]], Any]:
    """``build(header)``, kept for the last header object met: the rows of a file share one
    header object, whose thousands of names a cache keyed by value would hash on every row.
    The header and its value are replaced as one tuple, so threads reading other files never
    see a header with another's value."""
    last: list[tuple] = [(None, None)]

    def of(header: Sequence[str]) -> Any:
        seen, value = last[0]
        if seen is header:
            return value
        value = build(header)
        last[0] = (header, value)
        return value

    return of


#: a header's :class:`CsvPlan`, for the last header object met
_plan_of = last_header(lambda header: plan_header(tuple(header)))


def _number_or_text(cell: str) -> float | str:
    return float(cell) if _NUMBER.match(cell) else cell


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


_PATIENT_CELLS = ("number", "text", "bool")
#: the codes of :attr:`CsvPlan.layout`
_MEASUREMENT, _SYMPTOM, _SYMPTOMS, _ID, _PATIENT, _LIST, _OTHER = range(7)
_KEYED = {"symptom": _SYMPTOM, "symptoms": _SYMPTOMS, "list": _LIST}


def _patient_value(kind: str, cell: str) -> Any:
    """A patient field's value from its cell (a column of kind number, text or bool)."""
    if kind == "number":
        return _number_or_text(cell)
    if kind == "bool":
        low = cell.lower()
        return True if low in _TRUE else False if low in _FALSE else cell
    return cell


def column_label(labels: dict[str, str], path: str) -> str | None:
    """The CSV column a case-file field path came from (longest matching prefix)."""
    best = None
    for prefix, column in labels.items():
        if path == prefix or path.startswith((prefix + ".", prefix + "[")):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, column)
    return best[1] if best else None


_COMMA = ord(",")


class SparseRow(NamedTuple):
    """A CSV row by its non-empty cells: a wide file has thousands of columns, a case fills
    a few dozen."""

    n_cells: int                  # the row's number of cells, empty ones included
    index: tuple[int, ...]        # each non-empty cell's column
    cells: tuple[str, ...]


def sparse_row(cells: Sequence[str] | str) -> SparseRow:
    """The row's non-empty cells, from its cells or from its line (a line without quotes,
    NULs or carriage returns inside it, whose cells are the line split at commas: the
    commas found by numpy, a string made for the non-empty cells only)."""
    if not isinstance(cells, str):
        return SparseRow(len(cells), tuple(compress(range(len(cells)), cells)),
                         tuple(compress(cells, cells)))
    # (surrogatepass: any str round-trips, though a line decoded from UTF-8 has none)
    data = cells.rstrip("\r\n").encode("utf-8", "surrogatepass")
    if not data:
        return SparseRow(0, (), ())      # an empty line has no cells (the csv module's [])
    commas = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _COMMA)
    starts = np.concatenate(([0], commas + 1))
    ends = np.concatenate((commas, [len(data)]))
    filled = np.flatnonzero(ends > starts)
    return SparseRow(starts.size, tuple(filled.tolist()),
                     tuple(data[a:b].decode("utf-8", "surrogatepass") for a, b in
                           zip(starts[filled].tolist(), ends[filled].tolist(), strict=True)))



def row_to_case(
    header: Sequence[str], cells: Sequence[str] | SparseRow | str
) -> tuple[dict[str, Any], dict[str, str], list[FieldError]]:
    """Convert one CSV row into a case-file mapping.

    Parameters
    ----------
    header
        The file's column names.
    cells
        The row's cells (missing trailing cells read as empty), only its non-empty ones
        (:func:`sparse_row`), or its line (no quotes: the cells are the line split at
        commas).

    Returns
    -------
    case
        The case mapping, ready for :func:`neb_bayes.case.read_case`.
    labels
        Case-file field path -> CSV column name (``"measurements[2]" -> "TSH_mIU_per_L"``),
        so that the reader's errors can name the column.
    errors
        Problems only the CSV form can have (a symptom cell that is not 1/0/empty);
        each path is the column name.
    """
    plan = _plan_of(header)
    errors = [FieldError("<header>", e) for e in plan.errors]
    row = cells if isinstance(cells, SparseRow) else sparse_row(cells)
    if row.n_cells > len(header):
        errors.append(FieldError("<row>", f"{row.n_cells} cells, the header has {len(header)}"))
    case: dict[str, Any] = {}
    patient: dict[str, Any] = {}
    measurements: list[dict[str, Any]] = []
    symptoms: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    columns = plan.columns
    for j, raw in zip(row.index, row.cells, strict=True):
        cell = raw.strip()
        if not cell or j >= len(columns):
            continue
        spec = columns[j]
        if spec.kind == "id":
            case["id"] = cell
            labels["id"] = spec.name
        elif spec.kind in _PATIENT_CELLS:
            patient[spec.key] = _patient_value(spec.kind, cell)
            labels[f"patient.{spec.key}"] = spec.name
        elif spec.kind == "list":
            items = patient.setdefault(spec.key, [])
            for part in _split(cell):
                labels[f"patient.{spec.key}[{len(items)}]"] = spec.name
                items.append(part)
        elif spec.kind == "symptoms":
            items = symptoms.setdefault(spec.key, [])
            for part in _split(cell):
                labels[f"symptoms.{spec.key}[{len(items)}]"] = spec.name
                items.append(part)
        elif spec.kind == "symptom":
            state = _SYMPTOM_STATE.get(cell.lower())
            if state is None:
                errors.append(FieldError(
                    spec.name, "expected 1 (present), 0 (absent) or empty (unknown)"))
                continue
            items = symptoms.setdefault(state, [])
            labels[f"symptoms.{state}[{len(items)}]"] = spec.name
            items.append(spec.key)
        elif spec.kind == "measurement":
            entry: dict[str, Any] = {"analyte": spec.key, "value": _number_or_text(cell),
                                     "unit": spec.unit}
            if spec.specimen is not None:
                entry["specimen"] = spec.specimen
            if spec.collected is not None:
                entry["collected"] = spec.collected
            if spec.day is not None:
                entry["day"] = spec.day
            labels[f"measurements[{len(measurements)}]"] = spec.name
            measurements.append(entry)
        else:
            name = spec.name.strip()
            case[f"csv column {name!r}" if name else f"csv column {j + 1} (no name)"] = (
                "(not read)")
    if patient:
        case["patient"] = patient
    if measurements:
        case["measurements"] = measurements
    if symptoms:
        case["symptoms"] = symptoms
    return case, labels, errors


class RowParts(NamedTuple):
    """What the batch's plain reader reads of a CSV row (:func:`row_parts`)."""

    case_id: str | None
    patient: dict[str, Any] | None     # the case's patient section (None: no patient cells)
    forms: list[tuple]                 # each result's (analyte, specimen, unit, collected)
    values: list[float | str]          # its value, as row_to_case reads the cell
    days: list[float]                  # its day (0 when its column names none)
    symptoms: list[tuple[str, str]]    # (state, name) of each symptom listed
    #: whether each result gives its day (a long CSV's day cell; None: none do)
    has_days: list[bool] | None = None


def row_parts(header: Sequence[str], cells: Sequence[str] | SparseRow | str) -> RowParts | None:
    """A row's parts as :func:`row_to_case` reads them, without the case-file mapping (no
    object per result, no labels), or None where it would report a problem (a header
    problem, too many cells, a symptom cell that is not 1/0) or add a field the plain
    reader does not read (a column of no known kind)."""
    plan = _plan_of(header)
    row = cells if isinstance(cells, SparseRow) else sparse_row(cells)
    if plan.errors or row.n_cells > len(header):
        return None
    codes, payload = plan.layout
    case_id = None
    patient: dict[str, Any] = {}
    forms, values, days, symptoms = [], [], [], []
    n_columns = len(codes)
    for j, raw in zip(row.index, row.cells, strict=True):
        cell = raw.strip()
        if not cell or j >= n_columns:
            continue
        code = codes[j]
        if code == _MEASUREMENT:
            form, day = payload[j]
            forms.append(form)
            values.append(_number_or_text(cell))
            days.append(day)
        elif code == _SYMPTOM:
            if (state := _SYMPTOM_STATE.get(cell.lower())) is None:
                return None
            symptoms.append((state, payload[j]))
        elif code == _SYMPTOMS:
            symptoms.extend((payload[j], part) for part in _split(cell))
        elif code == _ID:
            case_id = cell
        elif code == _PATIENT:
            kind, key = payload[j]
            patient[key] = _patient_value(kind, cell)
        elif code == _LIST:
            patient.setdefault(payload[j], []).extend(_split(cell))
        else:
            return None
    return RowParts(case_id, patient or None, forms, values, days, symptoms)
