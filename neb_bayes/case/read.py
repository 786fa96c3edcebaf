"""Read a case file into a validated, normalised :class:`~neb_bayes.case.model.Case`.

The format is ``shared/spec/case-format.md`` (version 1).  Reading never stops at the first
problem: every error in the file is collected, each with its field path
(``measurements[3].unit``), and raised together as one :class:`CaseError`.  What is
understood but not usable (an unknown analyte, symptom, specimen or field) is not an error:
it is listed in :attr:`Case.not_used` with the reason.  Doubtful but usable input (a value
implausible for its unit, 0 read as below the detection limit) gives a warning string.

No patient value is ever written to the log.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neb_bayes.case.collect import Collector, type_name
from neb_bayes.case.loader import load_file, load_text
from neb_bayes.case.measurements import first_sample_date, read_measurements
from neb_bayes.case.menstrual import with_lmp_cycle_day
from neb_bayes.case.model import Case, CaseError, FieldError
from neb_bayes.case.patient import read_patient
from neb_bayes.case.symptoms import read_symptoms

__all__ = ["read_case", "read_case_text"]

log = logging.getLogger(__name__)

TOP_KEYS = ("case_format", "id", "patient", "measurements", "symptoms")


def _case_id(c: Collector, data: dict) -> str:
    if "id" not in data or data["id"] is None:
        c.error("id", "missing: every case needs an id (text or integer)")
        return ""
    value = data["id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        c.error("id", f"expected text or an integer, got {type_name(value)}")
        return ""
    text = str(value).strip()
    if not text:
        c.error("id", "must not be empty")
    return text


def _case_format(c: Collector, data: dict) -> None:
    if "case_format" not in data:
        return
    value = data["case_format"]
    if isinstance(value, bool) or value != 1:
        c.error("case_format", f"this reader knows case format 1, got {type_name(value)}")


def _case_from_data(data: Any, source: str | None) -> Case:
    if not isinstance(data, dict):
        kind = "empty" if data is None else type_name(data)
        raise CaseError(
            [FieldError("<file>", f"a case must be a mapping, this one is {kind}")], source
        )
    reader = Collector()
    _case_format(reader, data)
    case_id = _case_id(reader, data)
    reader.unknown_keys(data, TOP_KEYS, "")
    patient = read_patient(reader, data.get("patient"))
    measurements = read_measurements(reader, data.get("measurements"))
    if patient.menstrual is not None and patient.menstrual.lmp_date is not None:
        # an LMP written as a date: the cycle day on the first dated sample
        patient = dataclasses.replace(patient, menstrual=with_lmp_cycle_day(
            patient.menstrual, first_sample_date(data.get("measurements")), patient.pregnant))
    symptoms = read_symptoms(reader, data.get("symptoms"))
    if not reader.errors and not measurements and not (symptoms.present or symptoms.absent):
        reader.error(
            "measurements",
            "nothing usable: no measurement could be used and no symptom is present or absent",
        )
    if reader.errors:
        log.debug("case rejected with %d error(s)", len(reader.errors))
        raise CaseError(reader.errors, source)
    log.debug(
        "case read: %d measurement(s), %d item(s) not used", len(measurements), len(reader.not_used)
    )
    return Case(
        id=case_id,
        patient=patient,
        measurements=measurements,
        symptoms=symptoms,
        not_used=tuple(reader.not_used),
        warnings=tuple(reader.warnings),
        source=source,
    )


def read_case(source: str | os.PathLike[str] | dict, *, source_name: str | None = None) -> Case:
    """Read, validate and normalise one case.

    Parameters
    ----------
    source
        A path to a YAML (``.yaml``/``.yml``) or JSON (``.json``) file, or an already
        parsed mapping.
    source_name
        How the case is named in messages and in :attr:`Case.source`; defaults to the path.

    Raises
    ------
    CaseError
        Carrying every error in the case, each with its field path (a JSON Lines file, which
        holds many cases, is one: read it with ``neb-bayes batch`` or
        :func:`neb_bayes.case.iter_cases`).
    TypeError
        For a ``source`` that is neither a path nor a mapping.
    """
    if isinstance(source, Mapping):
        return _case_from_data(dict(source), source_name)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"read_case takes a path to a case file or a mapping, not "
                        f"{type(source).__name__}")
    path = Path(source)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        raise CaseError([FieldError("<file>", "a JSON Lines file holds many cases: read it with "
                                              "`neb-bayes batch` (or neb_bayes.case.iter_cases)")],
                        str(path))
    name = source_name if source_name is not None else str(path)
    try:
        data = load_file(path)
    except CaseError as exc:
        raise CaseError(exc.errors, name) from None
    return _case_from_data(data, name)


def read_case_text(text: str, fmt: str = "yaml", *, source_name: str | None = None) -> Case:
    """Read one case from YAML (``fmt="yaml"``) or JSON (``fmt="json"``) text."""
    return _case_from_data(load_text(text, fmt, source=source_name), source_name)
