"""Read the ``patient`` section of a case."""

from __future__ import annotations

from typing import Any

from neb_bayes import config, vocab
from neb_bayes.case.collect import Collector, type_name
from neb_bayes.case.menstrual import read_menstrual_phase
from neb_bayes.case.model import Medication, Patient

__all__ = ["PATIENT_KEYS", "read_patient"]

PATIENT_KEYS = (
    "sex",
    "age",
    "pregnant",
    "gestational_week",
    "menopausal_status",
    "menstrual_phase",
    "bmi",
    "medications",
    "context",
)
_SEX = {"f": "F", "female": "F", "m": "M", "male": "M", "unknown": None}
_MENOPAUSE = {
    "premenopausal": "premenopausal",
    "pre": "premenopausal",
    "pre menopausal": "premenopausal",
    "premenopause": "premenopausal",
    "perimenopausal": "perimenopausal",
    "peri": "perimenopausal",
    "peri menopausal": "perimenopausal",
    "perimenopause": "perimenopausal",
    "menopausal transition": "perimenopausal",
    "postmenopausal": "postmenopausal",
    "post": "postmenopausal",
    "post menopausal": "postmenopausal",
    "postmenopause": "postmenopausal",
    "n/a": "n/a",
    "na": "n/a",
    "not applicable": "n/a",
}


def read_patient(c: Collector, raw: Any) -> Patient:
    """Read ``patient``; medications and context are kept as written, not interpreted."""
    if raw is None:
        return Patient()
    if not isinstance(raw, dict):
        c.error("patient", f"expected a mapping, got {type_name(raw)}")
        return Patient()
    c.unknown_keys(raw, PATIENT_KEYS, "patient")
    sex = _sex(c, raw.get("sex"))
    age = c.number(raw, "age", "patient.age", low=0, high=130, what="age in years",
                   text_ok=True)
    if age is not None and age < config.ADULT_AGE_YEARS:
        c.warnings.append(
            f"patient.age: under {config.ADULT_AGE_YEARS:g}: the model's reference intervals "
            "and priors are for adults; results for children are not valid")
    pregnant = raw.get("pregnant")
    if pregnant is not None and not isinstance(pregnant, bool):
        c.error("patient.pregnant", f"expected true, false or null, got {type_name(pregnant)}")
        pregnant = None
    week = c.number(
        raw,
        "gestational_week",
        "patient.gestational_week",
        low=0,
        high=45,
        high_open=False,
        what="weeks of gestation",
        text_ok=True,
    )
    if week is not None and pregnant is not True:
        state = "false" if pregnant is False else "not given"
        c.warnings.append(
            f"patient.gestational_week: given while patient.pregnant is {state}; "
            "pregnancy is not assumed"
        )
    if pregnant is True and sex == "M":
        c.warnings.append("patient.pregnant: true with sex M; check the case")
    bmi = c.number(raw, "bmi", "patient.bmi", low=5, high=150, what="BMI in kg/m2",
                   text_ok=True)
    phase = c.text(raw, "menstrual_phase", "patient.menstrual_phase")
    reading = None
    if phase:
        reading = read_menstrual_phase(phase)
        if reading is None:
            c.skip(
                "patient.menstrual_phase",
                f"could not read a phase, cycle day or cycle disturbance from {phase!r}",
            )
    return Patient(
        sex=sex,
        age=age,
        pregnant=pregnant,
        gestational_week=week,
        menopausal_status=_menopause(c, raw),
        menstrual_phase=phase or None,
        bmi=bmi,
        medications=_medications(c, raw.get("medications")),
        context=tuple(t for _, t in c.text_list(raw, "context", "patient.context")),
        menstrual=reading,
    )


def _sex(c: Collector, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in _SEX:
        return _SEX[value.strip().lower()]
    shown = repr(value) if isinstance(value, str) else type_name(value)
    c.error("patient.sex", f"unknown sex value {shown}; use F, M or null")
    return None


def _menopause(c: Collector, raw: dict) -> str | None:
    value = c.text(raw, "menopausal_status", "patient.menopausal_status")
    if not value:
        return None
    status = _MENOPAUSE.get(vocab.normalise_name(value))
    if status is None:
        c.skip(
            "patient.menopausal_status",
            f"unknown menopausal status {value!r}; use premenopausal, perimenopausal, "
            "postmenopausal or n/a",
        )
    return status


def _medications(c: Collector, raw: Any) -> tuple[Medication, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        c.error("patient.medications", f"expected a list of medications, got {type_name(raw)}")
        return ()
    out = []
    for j, item in enumerate(raw):
        path = f"patient.medications[{j}]"
        if isinstance(item, str) and item.strip():
            out.append(Medication(name=item.strip(), raw=item))
        elif isinstance(item, dict):
            # Other keys (status: stopped, ...) stay in ``raw`` for the context reader.
            name = c.text(item, "name", f"{path}.name")
            if "name" not in item or item["name"] is None:
                c.error(f"{path}.name", "missing: a medication mapping needs a name")
            dose = c.number(
                item,
                "dose_mg_per_day",
                f"{path}.dose_mg_per_day",
                low=0,
                what="a dose in mg per day",
            )
            last = c.text(item, "last_dose", f"{path}.last_dose")
            if name:
                out.append(
                    Medication(name=name, raw=dict(item), dose_mg_per_day=dose, last_dose=last)
                )
        else:
            c.error(path, f"expected text or a mapping, got {type_name(item)}")
    return tuple(out)
