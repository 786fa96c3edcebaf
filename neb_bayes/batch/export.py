"""Turn :class:`~neb_bayes.case.model.Case` objects back into case-format data.

The simulator (:func:`neb_bayes.simulate.simulate`) produces normalised ``Case`` objects
(canonical analyte ids, values in canonical units).  Batch inputs are case-format files
(``shared/spec/case-format.md``), so tests and benchmarks need the way back:
:func:`case_to_dict` writes a case as the mapping a case file holds, and
:func:`write_jsonl`, :func:`write_case_dir` and :func:`write_csv` write many of them as the
three batch input kinds.  Values are written with full precision (``repr``) so reading the
output gives back the same numbers.

Examples
--------
>>> from neb_bayes.case.model import Case, Measurement
>>> case = Case(id="c1", measurements=(
...     Measurement(index=0, analyte="tsh", specimen="serum", value=0.01, censor="left",
...                 hour=8.5),))
>>> case_to_dict(case)["measurements"]
[{'analyte': 'tsh', 'specimen': 'serum', 'value': '<0.01', 'unit': 'mIU/L', 'collected': '08:30'}]
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from neb_bayes import vocab
from neb_bayes.case.model import Case, Measurement

__all__ = ["case_to_dict", "csv_column", "write_case_dir", "write_csv", "write_jsonl",
           "write_long_csv"]


def _clock(hour: float) -> str:
    """``8.5`` -> ``"08:30"`` (minutes rounded; 24:00 wraps to 00:00)."""
    minutes = int(round(hour * 60.0)) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _value(m: Measurement) -> float | str:
    if m.censor == "left":
        return f"<{m.value!r}"
    if m.censor == "right":
        return f">{m.value!r}"
    return float(m.value)


def _unit(m: Measurement) -> str:
    analyte = vocab.analytes().get(m.analyte)
    if analyte is None:
        raise ValueError(f"analyte {m.analyte!r} is not in the vocabulary")
    return analyte.canonical_unit


def _specimen(m: Measurement) -> str | None:
    """The specimen, or ``None`` when the analyte does not list it (use its default)."""
    analyte = vocab.analytes().get(m.analyte)
    if analyte is not None and m.specimen in analyte.specimens:
        return m.specimen
    return None


def measurement_to_dict(m: Measurement) -> dict[str, Any]:
    """One measurement as a case-file entry, in the analyte's canonical unit.

    Parameters
    ----------
    m
        A normalised measurement (value in the canonical unit).

    Returns
    -------
    dict
        ``analyte``, ``specimen`` (when the analyte lists it), ``value`` (a number, or
        ``"<limit"``/``">limit"`` text when censored), ``unit``, ``collected`` (``"HH:MM"``,
        when known) and ``day`` (when not 0).
    """
    out: dict[str, Any] = {"analyte": m.analyte}
    specimen = _specimen(m)
    if specimen is not None:
        out["specimen"] = specimen
    out["value"] = _value(m)
    out["unit"] = _unit(m)
    if m.hour is not None:
        out["collected"] = _clock(m.hour)
    if m.day:
        out["day"] = float(m.day)
    if m.method:
        out["method"] = m.method
    if m.reference_interval is not None:
        out["reference_interval"] = [float(x) for x in m.reference_interval]
    return out


def case_to_dict(case: Case) -> dict[str, Any]:
    """A case as the mapping a case file (YAML/JSON, format 1) holds.

    Parameters
    ----------
    case
        A validated case, e.g. ``SimulatedCase.case`` from the simulator.

    Returns
    -------
    dict
        Plain JSON-serialisable data; ``read_case`` reads it back into an equivalent case.
    """
    p = case.patient
    patient: dict[str, Any] = {}
    for key in ("sex", "age", "pregnant", "gestational_week", "menopausal_status",
                "menstrual_phase", "bmi"):
        value = getattr(p, key)
        if value is not None:
            patient[key] = value
    if p.medications:
        patient["medications"] = [m.raw for m in p.medications]
    if p.context:
        patient["context"] = list(p.context)
    out: dict[str, Any] = {"case_format": 1, "id": case.id}
    if patient:
        out["patient"] = patient
    out["measurements"] = [measurement_to_dict(m) for m in case.measurements]
    symptoms = {
        state: sorted(getattr(case.symptoms, state))
        for state in ("present", "absent", "unknown")
        if getattr(case.symptoms, state)
    }
    if symptoms:
        out["symptoms"] = symptoms
    return out


def write_jsonl(cases: Iterable[Case | dict], path: str | os.PathLike[str]) -> int:
    """Write cases as JSON Lines (one case per line); returns how many were written."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for case in cases:
            data = case if isinstance(case, dict) else case_to_dict(case)
            fh.write(json.dumps(data, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_case_dir(cases: Iterable[Case | dict], directory: str | os.PathLike[str]) -> int:
    """Write each case to ``directory/<n>.json`` (numbered in input order)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    for case in cases:
        data = case if isinstance(case, dict) else case_to_dict(case)
        (directory / f"case-{n:07d}.json").write_text(
            json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        n += 1
    return n


def csv_column(m: Measurement) -> str:
    """The wide-CSV column name of a measurement (see :mod:`neb_bayes.batch.csv_cases`).

    ``<analyte>_<unit>`` with ``/`` written ``_per_`` and ``%`` written ``pct``, then
    ``__<specimen>``, ``__t<HHMM>`` and ``__d<day>`` when they apply.
    """
    unit = _unit(m).replace("/", "_per_").replace("%", "pct")
    name = f"{m.analyte}_{unit}"
    specimen = _specimen(m)
    if specimen is not None:
        name += f"__{specimen}"
    if m.hour is not None:
        name += f"__t{_clock(m.hour).replace(':', '')}"
    if m.day:
        name += f"__d{m.day:g}"
    return name


def _csv_row(case: Case) -> dict[str, str]:
    p = case.patient
    row: dict[str, str] = {"id": case.id}
    for key in ("sex", "age", "gestational_week", "menopausal_status", "menstrual_phase", "bmi"):
        value = getattr(p, key)
        if value is not None:
            row[key] = value if isinstance(value, str) else repr(value)
    if p.pregnant is not None:
        row["pregnant"] = "1" if p.pregnant else "0"
    if p.medications:
        row["medications"] = ";".join(m.name for m in p.medications)
    if p.context:
        row["context"] = ";".join(p.context)
    for m in case.measurements:
        value = _value(m)
        row[csv_column(m)] = value if isinstance(value, str) else repr(value)
    for s in case.symptoms.present:
        row[f"sym_{s}"] = "1"
    for s in case.symptoms.absent:
        row[f"sym_{s}"] = "0"
    return row


def write_csv(cases: Iterable[Case], path: str | os.PathLike[str]) -> int:
    """Write cases as one wide CSV (one row per case, the batch CSV column convention).

    The header is the union of every case's columns, so the cases are held in memory:
    meant for test and benchmark inputs, not for production exports.  Two measurements of
    one case with the same column (same analyte, specimen, time and day) cannot both be
    written: the last one is kept.
    """
    rows = [_csv_row(c) for c in cases]
    header = _header(rows)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def _header(rows: list[dict[str, str]]) -> list[str]:
    """The columns of ``rows``: the case's own first, in a fixed order, then the others
    sorted."""
    fixed = ["id", "sex", "age", "pregnant", "gestational_week", "menopausal_status",
             "menstrual_phase", "bmi", "medications", "context"]
    seen = {k for r in rows for k in r}
    return [k for k in fixed if k in seen] + sorted(k for k in seen if k not in fixed)


def _case_columns(case: Case) -> dict[str, str]:
    """A case's columns of the wide row without its measurements (the long form's case
    columns)."""
    measured = {csv_column(m) for m in case.measurements}
    return {k: v for k, v in _csv_row(case).items() if k not in measured}


def write_long_csv(cases: Iterable[Case], path: str | os.PathLike[str],
                   case_columns_once: bool = False) -> int:
    """Write cases as one long CSV (one row per result; see :mod:`neb_bayes.batch.long_csv`),
    the case columns on every row of a case or (``case_columns_once``) on its first only;
    a case without results gets one row of its case columns.  Meant for test and benchmark
    inputs (the cases are held in memory for the header)."""
    cases = list(cases)
    heads = [_case_columns(c) for c in cases]
    header = _header(heads) + ["analyte", "value", "unit", "specimen", "collected", "day"]
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, restval="")
        writer.writeheader()
        for case, head in zip(cases, heads, strict=True):
            rows = []
            for m in case.measurements:
                value = _value(m)
                row = {"analyte": m.analyte, "unit": _unit(m),
                       "value": value if isinstance(value, str) else repr(value)}
                if (specimen := _specimen(m)) is not None:
                    row["specimen"] = specimen
                if m.hour is not None:
                    row["collected"] = _clock(m.hour)
                if m.day:
                    row["day"] = f"{m.day:g}"
                rows.append(row)
            rows = rows or [{}]
            for k, row in enumerate(rows):
                writer.writerow(({"id": case.id} | head if k == 0 or not case_columns_once
                                 else {"id": case.id}) | row)
            n += 1
    return n
