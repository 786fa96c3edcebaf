"""Long CSV batch input: one row per result, as laboratory systems export them.

Column convention
-----------------
A CSV whose header has an ``analyte`` and a ``value`` column (names matched
case-insensitively) is read in the long form; any other CSV is wide
(:mod:`neb_bayes.batch.csv_cases`).

Result columns (one result per row)
    ``analyte`` (an analyte id, name or synonym: ``TSH``, ``Free T4``), ``value`` (a number,
    or a censored value: ``<0.01``, ``>1000``), ``unit`` (as written in a case file:
    ``mIU/L``, ``pmol/L``, ``%``), and optionally ``specimen`` (``serum``, ``saliva``),
    ``collected`` (``08:40``, or a date-time ``2024-03-01T08:40``) and ``day``.
Case columns
    ``id`` (required) and every column of the wide form that is not a measurement:
    ``sex``, ``age``, ``pregnant``, ``gestational_week``, ``menopausal_status``,
    ``menstrual_phase``, ``bmi``, ``medications``, ``context``, ``symptoms_present``,
    ``symptoms_absent``, ``symptoms_unknown``, ``sym_<symptom>``.  They describe the case,
    not the row: they may be filled on every row of the case or on one, and where two of its
    rows fill one they must agree (else the case is an error, naming both rows).

A case's rows are consecutive (lab exports are sorted by patient or request): a new ``id``
starts a new case.  An id met again after other cases is a second case with that id, which
the batch counts as a duplicate (the first wins; its error and the batch's summary say to
sort the file by id).  A row with neither an analyte nor a value only carries case columns
(a case without results, or its symptoms on a row of their own).

Errors name the row (its line in the file) as well as the case-file field path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any

from neb_bayes.batch.csv_cases import (
    RowParts,
    _number_or_text,
    last_header,
    row_parts,
    row_to_case,
)
from neb_bayes.case.model import FieldError

__all__ = ["RESULT_COLUMNS", "id_column", "is_long", "long_parts", "rows_to_case"]

#: the columns of one result; every other column describes the case
RESULT_COLUMNS = ("analyte", "value", "unit", "specimen", "collected", "day")


def is_long(header: Sequence[str]) -> bool:
    """Whether a CSV header is the long form's (an ``analyte`` and a ``value`` column)."""
    names = {name.strip().lower() for name in header}
    return {"analyte", "value"} <= names


def id_column(header: Sequence[str]) -> int | None:
    """The position of the ``id`` column, or None."""
    names = [name.strip().lower() for name in header]
    return names.index("id") if "id" in names else None


@dataclass(frozen=True)
class _Layout:
    """How a long header is read: each result column's position, the case columns (their
    positions, as runs of consecutive ones, and their names: a wide header of one row)."""

    at: dict[str, int]
    case_cols: list[int]
    is_case: list[bool]
    runs: list[tuple[int, int]]
    case_header: tuple[str, ...]


@last_header
def _layout(header: Sequence[str]) -> _Layout:
    """A long header's :class:`_Layout` (kept for the last header object met: the items of
    a file share one)."""
    names = [name.strip().lower() for name in header]
    case_cols = [j for j, name in enumerate(names) if name not in RESULT_COLUMNS]
    return _Layout({name: names.index(name) for name in RESULT_COLUMNS if name in names},
                   case_cols, [name not in RESULT_COLUMNS for name in names],
                   _runs(case_cols), tuple(header[j] for j in case_cols))


def _read_rows(header: Sequence[str], rows: Sequence[tuple[int, Sequence[str] | str]],
               strict: bool):
    """The rows of one case: ``(merged case cells, their first rows, results, errors)``,
    each result ``(line, analyte, value, unit, specimen, collected, day)`` as written
    (stripped).  ``strict``: None at the first problem (a row with more cells than the
    header, case columns that disagree) instead of its error."""
    lay = _layout(header)
    errors: list[FieldError] = []
    merged = [""] * len(header)
    first_line: dict[int, int] = {}
    results = []
    before: Sequence[str] | None = None
    for line, cells in rows:
        if isinstance(cells, str):
            cells = cells.split(",")
        if len(cells) > len(header):
            if strict:
                return None
            errors.append(FieldError(f"row {line}",
                                     f"{len(cells)} cells, the header has {len(header)}"))
            cells = cells[:len(header)]
        # a row that repeats the case columns of the row before it (an export writes them
        # on every row) has nothing new to merge; else its non-empty cells only
        same = before is not None and all(cells[a:b] == before[a:b] for a, b in lay.runs)
        before = cells
        for j in () if same else compress(range(len(cells)), cells):
            value = cells[j].strip()
            if not value or not lay.is_case[j]:
                continue
            if not merged[j]:
                merged[j], first_line[j] = value, line
            elif value != merged[j]:
                if strict:
                    return None
                errors.append(FieldError(
                    f"row {line}, column {header[j].strip()!r}",
                    f"{value!r} differs from {merged[j]!r} on row {first_line[j]}: the rows "
                    "of one case must agree on its case columns"))
        got = [cells[j].strip() if (j := lay.at.get(name)) is not None and j < len(cells)
               else "" for name in RESULT_COLUMNS]
        if got[0] or got[1]:
            results.append((line, *got))
    return [merged[j] for j in lay.case_cols], first_line, results, errors


def rows_to_case(
    header: Sequence[str], rows: Sequence[tuple[int, Sequence[str] | str]]
) -> tuple[dict[str, Any], dict[str, str], list[FieldError]]:
    """Convert one case's rows into a case-file mapping.

    Parameters
    ----------
    header
        The file's column names.
    rows
        ``(line, cells)`` of each of the case's rows, in file order (``cells`` a list, or
        the line's text without quotes, split here at commas).

    Returns
    -------
    case, labels, errors
        As :func:`~neb_bayes.batch.csv_cases.row_to_case`: the mapping for
        :func:`neb_bayes.case.read_case`, case-file field path -> where it came from (a
        result: ``row <line>``; a case column: its name and row), and problems only the CSV
        form can have (case columns whose rows disagree, a row with more cells than the
        header).
    """
    lay = _layout(header)
    case_cells, first_line, results, errors = _read_rows(header, rows, strict=False)
    measurements: list[dict[str, Any]] = []
    labels: dict[str, str] = {}
    for line, analyte, value, unit, specimen, collected, day in results:
        entry: dict[str, Any] = {"analyte": analyte}
        if value:
            entry["value"] = _number_or_text(value)
        for name, cell in (("unit", unit), ("specimen", specimen), ("collected", collected)):
            if cell:
                entry[name] = cell
        if day:
            entry["day"] = _number_or_text(day)
        labels[f"measurements[{len(measurements)}]"] = f"row {line}"
        measurements.append(entry)
    case, case_labels, extra = row_to_case(lay.case_header, case_cells)
    # (a case column's label: its name and the row it was read from)
    row_of = {header[j]: first_line[j] for j in lay.case_cols if j in first_line}
    labels |= {path: f"{name} (row {row_of[name]})" if name in row_of else name
               for path, name in case_labels.items()}
    if measurements:
        case["measurements"] = measurements
    return case, labels, errors + extra


def long_parts(header: Sequence[str], rows: Sequence[tuple[int, Sequence[str] | str]]
               ) -> RowParts | None:
    """One case's rows as the batch's plain reader reads them
    (:class:`~neb_bayes.batch.csv_cases.RowParts`, with each result's ``has_day``), the same
    parts :func:`rows_to_case` gives, or None wherever it would report a problem or leave a
    field out (a result without an analyte, value or unit, a day that is not a number)."""
    got = _read_rows(header, rows, strict=True)
    if got is None:
        return None
    case_cells, _, results, _ = got
    forms, values, days, has_days = [], [], [], []
    for _, analyte, value, unit, specimen, collected, day in results:
        if not (analyte and value and unit):
            return None
        d = _number_or_text(day) if day else 0.0
        if type(d) is str:
            return None
        forms.append((analyte, specimen or None, unit, collected or None))
        values.append(_number_or_text(value))
        days.append(d)
        has_days.append(bool(day))
    parts = row_parts(_layout(header).case_header, case_cells)
    if parts is None:
        return None
    return parts._replace(forms=forms, values=values, days=days, has_days=has_days)


def _runs(positions: list[int]) -> list[tuple[int, int]]:
    """Sorted positions as ``[start, stop)`` runs of consecutive ones."""
    out: list[tuple[int, int]] = []
    for j in positions:
        if out and out[-1][1] == j:
            out[-1] = (out[-1][0], j + 1)
        else:
            out.append((j, j + 1))
    return out
