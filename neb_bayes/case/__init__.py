"""Case files in, validated and normalised :class:`Case` objects out.

>>> from neb_bayes.case import read_case
>>> case = read_case({"id": 1, "measurements": [
...     {"analyte": "Free T4", "value": 1.1, "unit": "ng/dL"}]})
>>> case.measurements[0].analyte, round(case.measurements[0].value, 2)
('ft4', 14.16)
"""

from neb_bayes.case.loader import iter_cases, load_file, load_text
from neb_bayes.case.model import (
    Case,
    CaseError,
    FieldError,
    Measurement,
    Medication,
    MenstrualReading,
    NotUsed,
    Patient,
    Symptoms,
)
from neb_bayes.case.read import read_case, read_case_text

__all__ = [
    "Case",
    "CaseError",
    "FieldError",
    "Measurement",
    "Medication",
    "MenstrualReading",
    "NotUsed",
    "Patient",
    "Symptoms",
    "iter_cases",
    "load_file",
    "load_text",
    "read_case",
    "read_case_text",
]
