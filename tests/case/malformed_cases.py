"""Malformed case files, each with the field path its error must name.

``MALFORMED_CASES`` is a list of ``(name, case, expected_path)``.  ``case`` is a dict (write it
as JSON), or text: JSON when ``name`` starts with ``json_``, YAML otherwise.  Use
:func:`write_case` to put one in a file.  The reader must raise ``CaseError`` with an error at
``expected_path``; the CLI must exit with status 2 and write no output.

``MULTI_ERROR_CASE`` has several errors that must all be reported at once
(``MULTI_ERROR_PATHS``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["MALFORMED_CASES", "MULTI_ERROR_CASE", "MULTI_ERROR_PATHS", "write_case"]


def _case(*measurements: dict, **fields: Any) -> dict:
    """A valid minimal case, changed by ``fields`` and given ``measurements``."""
    case: dict[str, Any] = {
        "case_format": 1,
        "id": "bad-case",
        "patient": {"sex": "F", "age": 40},
        "measurements": list(measurements) or [{"analyte": "TSH", "value": 2.1, "unit": "mIU/L"}],
        "symptoms": {"present": ["fatigue"], "absent": ["tremor"]},
    }
    for key, value in fields.items():
        if value is _DROP:
            case.pop(key, None)
        else:
            case[key] = value
    return case


def _patient(**fields: Any) -> dict:
    return _case(patient={"sex": "F", "age": 40, **fields})


def _m(**fields: Any) -> dict:
    """A measurement: TSH 2.1 mIU/L changed by ``fields`` (a value of _DROP removes the key)."""
    m = {"analyte": "TSH", "specimen": "serum", "value": 2.1, "unit": "mIU/L"}
    for key, value in fields.items():
        if value is _DROP:
            m.pop(key, None)
        else:
            m[key] = value
    return m


_DROP = object()

MALFORMED_CASES: list[tuple[str, Any, str]] = [
    # ---- the file itself
    ("yaml_syntax_error", "id: x\nmeasurements: [\n  {analyte: TSH, value: 2\n", "<file>"),
    ("yaml_tab_indent", "id: x\nmeasurements:\n\t- analyte: TSH\n", "<file>"),
    ("yaml_duplicate_key", "id: a\nid: b\nsymptoms: {present: [fatigue]}\n", "<file>"),
    ("json_syntax_error", '{"id": "x", "measurements": [}', "<file>"),
    (
        "json_duplicate_key",
        '{"id": "x", "id": "y", "symptoms": {"present": ["fatigue"]}}',
        "<file>",
    ),
    ("yaml_top_level_list", "- id: x\n- id: y\n", "<file>"),
    ("yaml_empty_file", "", "<file>"),
    # ---- top level
    ("missing_id", _case(id=_DROP), "id"),
    ("id_is_a_list", _case(id=["a", "b"]), "id"),
    ("id_is_boolean", _case(id=True), "id"),
    ("id_is_empty", _case(id="  "), "id"),
    ("case_format_2", _case(case_format=2), "case_format"),
    ("patient_not_a_mapping", _case(patient="female, 40"), "patient"),
    # ---- patient
    ("sex_unknown_value", _patient(sex="X"), "patient.sex"),
    ("sex_is_a_number", _patient(sex=1), "patient.sex"),
    ("age_negative", _patient(age=-3), "patient.age"),
    ("age_text", _patient(age="forty"), "patient.age"),
    ("age_130", _patient(age=130), "patient.age"),
    ("pregnant_text", _patient(pregnant="maybe"), "patient.pregnant"),
    (
        "gestational_week_50",
        _patient(pregnant=True, gestational_week=50),
        "patient.gestational_week",
    ),
    ("bmi_text", _patient(bmi="normal"), "patient.bmi"),
    ("medications_not_a_list", _patient(medications="levothyroxine"), "patient.medications"),
    (
        "medication_without_name",
        _patient(medications=[{"dose_mg_per_day": 5}]),
        "patient.medications[0].name",
    ),
    (
        "medication_negative_dose",
        _patient(medications=[{"name": "hydrocortisone", "dose_mg_per_day": -10}]),
        "patient.medications[0].dose_mg_per_day",
    ),
    ("context_item_number", _patient(context=["night_shift_worker", 42]), "patient.context[1]"),
    ("menstrual_phase_number", _patient(menstrual_phase=14), "patient.menstrual_phase"),
    # ---- measurements
    ("measurements_not_a_list", _case(measurements={"analyte": "TSH"}), "measurements"),
    ("measurement_not_a_mapping", _case(measurements=["TSH 2.1 mIU/L"]), "measurements[0]"),
    ("analyte_missing", _case(_m(), _m(analyte=_DROP)), "measurements[1].analyte"),
    ("analyte_is_a_number", _case(_m(analyte=3016)), "measurements[0].analyte"),
    ("value_missing", _case(_m(), _m(value=_DROP)), "measurements[1].value"),
    ("value_negative", _case(_m(value=-0.5)), "measurements[0].value"),
    ("value_negative_text", _case(_m(value="-0.5")), "measurements[0].value"),
    ("value_not_numeric", _case(_m(value="high")), "measurements[0].value"),
    ("value_decimal_comma", _case(_m(value="2,1")), "measurements[0].value"),
    ("value_boolean", _case(_m(value=True)), "measurements[0].value"),
    ("value_greater_than_zero", _case(_m(value=">0")), "measurements[0].value"),
    (
        "value_zero_without_detection_limit",
        _case(_m(analyte="sodium", value=0, unit="mmol/L")),
        "measurements[0].value",
    ),
    (
        "value_hba1c_below_conversion_range",
        _case(_m(analyte="HbA1c", specimen="whole blood", value=1.0, unit="%")),
        "measurements[0].value",
    ),
    (
        "json_value_nan",
        '{"id": "x", "measurements": [{"analyte": "TSH", "value": NaN, "unit": "mIU/L"}]}',
        "measurements[0].value",
    ),
    (
        "unit_wrong_dimension_ft4_ratio",
        _case(_m(analyte="FT4", value=15, unit="mmol/mol")),
        "measurements[0].unit",
    ),
    ("unit_wrong_dimension_tsh_mass", _case(_m(value=2.0, unit="ng/dL")), "measurements[0].unit"),
    (
        "unit_wrong_dimension_glucose_iu",
        _case(_m(analyte="fasting glucose", specimen="plasma", value=5.0, unit="IU/L")),
        "measurements[0].unit",
    ),
    (
        "unit_wrong_dimension_cortisol_percent",
        _case(_m(analyte="cortisol", value=400, unit="%")),
        "measurements[0].unit",
    ),
    ("unit_unknown_string", _case(_m(unit="bananas/L")), "measurements[0].unit"),
    ("unit_missing", _case(_m(unit=_DROP)), "measurements[0].unit"),
    ("unit_is_a_list", _case(_m(unit=["mIU/L"])), "measurements[0].unit"),
    (
        "reference_interval_one_number",
        _case(_m(reference_interval=[4.0])),
        "measurements[0].reference_interval",
    ),
    (
        "reference_interval_decreasing",
        _case(_m(reference_interval=[4.0, 0.4])),
        "measurements[0].reference_interval",
    ),
    (
        "reference_interval_text",
        _case(_m(reference_interval="0.4-4.0")),
        "measurements[0].reference_interval",
    ),
    ("collected_bad_format", _case(_m(collected="8h40")), "measurements[0].collected"),
    ("collected_hour_25", _case(_m(collected="25:10")), "measurements[0].collected"),
    ("collected_date_only", _case(_m(collected="2024-03-01")), "measurements[0].collected"),
    ("collected_number", _case(_m(collected=840)), "measurements[0].collected"),
    ("day_negative", _case(_m(day=-1)), "measurements[0].day"),
    ("specimen_is_a_number", _case(_m(specimen=7)), "measurements[0].specimen"),
    ("method_is_a_number", _case(_m(method=3)), "measurements[0].method"),
    # ---- symptoms
    ("symptoms_not_a_mapping", _case(symptoms=["fatigue"]), "symptoms"),
    ("symptoms_present_not_a_list", _case(symptoms={"present": "fatigue"}), "symptoms.present"),
    ("symptom_item_number", _case(symptoms={"present": ["fatigue", 3]}), "symptoms.present[1]"),
    (
        "symptom_present_and_absent",
        _case(symptoms={"present": ["fatigue"], "absent": ["fatigue"]}),
        "symptoms.absent[0]",
    ),
    (
        "symptom_synonym_present_and_absent",
        _case(symptoms={"present": ["tiredness", "goitre"], "absent": ["Goiter"]}),
        "symptoms.absent[0]",
    ),
    # ---- nothing usable
    (
        "nothing_usable_unknown_analyte",
        _case(_m(analyte="XYZ-42"), symptoms={"unknown": ["fatigue"]}),
        "measurements",
    ),
    ("nothing_usable_id_only", {"id": "only-an-id"}, "measurements"),
]

MULTI_ERROR_CASE: dict = {
    "id": "many-errors",
    "patient": {"sex": "unknown-ish", "age": -1},
    "measurements": [
        {"analyte": "FT4", "value": 15, "unit": "mmol/mol"},
        {"analyte": "TSH", "value": -2, "unit": "mIU/L"},
        {"analyte": "cortisol", "value": "about 400", "unit": "nmol/L", "collected": "8 o'clock"},
    ],
    "symptoms": {"present": ["fatigue"], "absent": ["tired"]},
}
MULTI_ERROR_PATHS = [
    "patient.sex",
    "patient.age",
    "measurements[0].unit",
    "measurements[1].value",
    "measurements[2].value",
    "measurements[2].collected",
    "symptoms.absent[0]",
]


def write_case(folder: Path, name: str, case: Any) -> Path:
    """Write ``case`` into ``folder`` as the file it stands for, and return its path."""
    if isinstance(case, str):
        path = folder / (f"{name}.json" if name.startswith("json_") else f"{name}.yaml")
        path.write_text(case, encoding="utf-8")
    else:
        path = folder / f"{name}.json"
        path.write_text(json.dumps(case), encoding="utf-8")
    return path
