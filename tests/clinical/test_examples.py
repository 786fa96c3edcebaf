"""Clinical example cases: the engine must read each synthetic case as a clinician would.

Every case file in ``cases/examples/`` has an entry in ``cases/examples/expectations.yaml``
saying which condition must lead (or ``none``), how probable it must be, and which conditions
must stay below / above a threshold. The expectations were written from textbook lab patterns
(``shared/clinical/facts.md`` §1 and §4), never from engine output.

The structural tests (coverage, schema, case-file sanity) need only PyYAML; the engine is
imported inside the fixture so that collection works before the engine exists.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "cases" / "examples"
EXPECTATIONS_FILE = EXAMPLES / "expectations.yaml"
CONDITIONS_SPEC = ROOT.parent / "shared" / "spec" / "conditions.md"

# The stable condition ids of shared/spec/conditions.md (checked against the spec below).
CONDITION_IDS: tuple[str, ...] = (
    "primary_hypothyroidism",
    "subclinical_hypothyroidism",
    "central_hypothyroidism",
    "hyperthyroidism_overt",
    "hyperthyroidism_subclinical",
    "nonthyroidal_illness",
    "cushings_acth_dependent",
    "cushings_acth_independent",
    "adrenal_insufficiency_primary",
    "adrenal_insufficiency_secondary",
    "hypogonadism_primary_male",
    "hypogonadism_secondary_male",
    "hypogonadism_primary_female",
    "hypogonadism_secondary_female",
    "pcos",
    "hyperprolactinemia",
    "insulin_resistance",
    "prediabetes",
    "diabetes",
)
NONE = "none"
OUTCOMES: tuple[str, ...] = (*CONDITION_IDS, NONE)
DEFAULT_BELOW_THRESHOLD = 0.5
EXPECTATION_KEYS = {"leading", "min_probability", "below", "below_threshold", "above", "rationale"}

CASE_TOP_KEYS = {"case_format", "id", "patient", "measurements", "symptoms"}
PATIENT_KEYS = {
    "sex", "age", "pregnant", "gestational_week", "menopausal_status", "menstrual_phase",
    "bmi", "medications", "context",
}
MEASUREMENT_KEYS = {
    "analyte", "specimen", "value", "unit", "collected", "day", "method",
    "reference_interval", "note",
}
SYMPTOM_KEYS = {"present", "absent", "unknown"}
CLOCK_RE = re.compile(r"^([01]\d|2[0-4]):[0-5]\d$")
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?")
CENSORED_RE = re.compile(r"^\s*[<>]\s*\d+(\.\d+)?\s*$")


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _case_files() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.yaml") if p.name != EXPECTATIONS_FILE.name)


EXPECTATIONS: dict[str, dict[str, Any]] = _load_yaml(EXPECTATIONS_FILE) or {}
CASE_FILES: list[str] = _case_files()


def _spec_condition_ids() -> list[str]:
    """Condition ids from the first column of the table in shared/spec/conditions.md."""
    ids = []
    for line in CONDITIONS_SPEC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\|\s*([a-z][a-z0-9_]*)\s*\|", line)
        if m and m.group(1) not in {"id", NONE}:
            ids.append(m.group(1))
    return ids


def _top(probabilities: dict[str, float], n: int = 6) -> str:
    ranked = sorted(probabilities.items(), key=lambda kv: kv[1], reverse=True)[:n]
    return ", ".join(f"{k}={v:.3f}" for k, v in ranked)


# --------------------------------------------------------------------------- engine

@pytest.fixture(scope="module")
def engine():
    import neb_bayes  # imported here so the structural tests run without the engine

    return neb_bayes


@pytest.mark.parametrize("case_file", sorted(EXPECTATIONS))
def test_example_case(case_file: str, engine) -> None:
    expect = EXPECTATIONS[case_file]
    case = engine.read_case(EXAMPLES / case_file)
    result = engine.infer(case)
    probs = {k: float(v) for k, v in result.probabilities.items()}

    missing = [o for o in OUTCOMES if o not in probs]
    assert not missing, f"{case_file}: result.probabilities lacks {missing}"
    for outcome in OUTCOMES:
        p = probs[outcome]
        assert math.isfinite(p) and 0.0 <= p <= 1.0, f"{case_file}: P({outcome}) = {p}"

    context = f"{case_file}: top outcomes: {_top(probs)}\nrationale: {expect.get('rationale')}"

    leading = expect.get("leading")
    if leading is not None:
        others = {o: probs[o] for o in OUTCOMES if o != leading}
        runner_up = max(others, key=others.__getitem__)
        assert probs[leading] > others[runner_up], (
            f"expected {leading} to lead, but {runner_up} ({others[runner_up]:.3f}) >= "
            f"{leading} ({probs[leading]:.3f})\n{context}"
        )
        min_p = expect.get("min_probability")
        if min_p is not None:
            assert probs[leading] >= min_p, (
                f"P({leading}) = {probs[leading]:.3f} < min_probability {min_p}\n{context}"
            )

    threshold = expect.get("below_threshold", DEFAULT_BELOW_THRESHOLD)
    too_high = {o: probs[o] for o in expect.get("below", []) if probs[o] >= threshold}
    assert not too_high, f"expected below {threshold}: {too_high}\n{context}"

    too_low = {o: probs[o] for o, t in (expect.get("above") or {}).items() if probs[o] < t}
    assert not too_low, (
        f"expected above {expect['above']}: got {too_low}\n{context}"
    )


# --------------------------------------------------------------------------- coverage

def test_every_case_file_has_expectations() -> None:
    missing = [f for f in CASE_FILES if f not in EXPECTATIONS]
    assert not missing, f"case files without an entry in expectations.yaml: {missing}"


def test_every_expectation_has_a_case_file() -> None:
    orphans = [f for f in EXPECTATIONS if f not in CASE_FILES]
    assert not orphans, f"expectations.yaml entries without a case file: {orphans}"


def test_every_condition_leads_some_example() -> None:
    led = {e.get("leading") for e in EXPECTATIONS.values()}
    uncovered = [c for c in CONDITION_IDS if c not in led]
    assert not uncovered, f"no example has these conditions as `leading`: {uncovered}"
    assert NONE in led, "no normal example (leading: none)"


def test_condition_ids_match_spec() -> None:
    if not CONDITIONS_SPEC.exists():
        pytest.skip(f"{CONDITIONS_SPEC} not available")
    assert sorted(_spec_condition_ids()) == sorted(CONDITION_IDS)


# --------------------------------------------------------------------------- schema

@pytest.mark.parametrize("case_file", sorted(EXPECTATIONS))
def test_expectation_entry_is_well_formed(case_file: str) -> None:
    e = EXPECTATIONS[case_file]
    assert isinstance(e, dict), case_file
    assert set(e) <= EXPECTATION_KEYS, f"{case_file}: unknown keys {set(e) - EXPECTATION_KEYS}"
    assert isinstance(e.get("rationale"), str) and e["rationale"].strip(), (
        f"{case_file}: rationale missing"
    )
    assert {"leading", "below", "above"} & set(e), f"{case_file}: asserts nothing"

    leading = e.get("leading")
    if leading is not None:
        assert leading in OUTCOMES, f"{case_file}: unknown leading {leading!r}"
        assert "min_probability" in e, f"{case_file}: leading without min_probability"
    if "min_probability" in e:
        assert leading is not None, f"{case_file}: min_probability without leading"
        assert 0.0 < e["min_probability"] < 1.0

    below = e.get("below", [])
    assert isinstance(below, list)
    assert len(set(below)) == len(below), f"{case_file}: duplicates in below"
    unknown = [o for o in below if o not in OUTCOMES]
    assert not unknown, f"{case_file}: unknown ids in below: {unknown}"
    assert leading not in below, f"{case_file}: leading {leading} is also in below"
    threshold = e.get("below_threshold", DEFAULT_BELOW_THRESHOLD)
    assert 0.0 < threshold <= 1.0

    above = e.get("above") or {}
    assert isinstance(above, dict)
    for o, t in above.items():
        assert o in OUTCOMES, f"{case_file}: unknown id in above: {o}"
        assert 0.0 < t < 1.0
        assert not (o in below and t >= threshold), f"{case_file}: {o} both above and below"


# --------------------------------------------------------------------------- case files

@pytest.mark.parametrize("case_file", CASE_FILES)
def test_case_file_follows_format(case_file: str) -> None:
    """Light check of the case format (case-format.md), independent of the engine's reader."""
    case = _load_yaml(EXAMPLES / case_file)
    assert isinstance(case, dict)
    assert set(case) <= CASE_TOP_KEYS, f"{case_file}: unknown keys {set(case) - CASE_TOP_KEYS}"
    assert case.get("case_format", 1) == 1
    assert isinstance(case.get("id"), str) and case["id"]

    patient = case.get("patient") or {}
    assert set(patient) <= PATIENT_KEYS, f"{case_file}: patient keys {set(patient) - PATIENT_KEYS}"
    assert patient.get("sex") in {"F", "M", None}
    assert isinstance(patient.get("age"), (int, float))

    for i, m in enumerate(case.get("measurements") or []):
        where = f"{case_file}: measurements[{i}]"
        assert set(m) <= MEASUREMENT_KEYS, f"{where}: keys {set(m) - MEASUREMENT_KEYS}"
        for key in ("analyte", "value", "unit"):
            assert key in m, f"{where}: missing {key}"
        assert isinstance(m["analyte"], str) and isinstance(m["unit"], str), where
        v = m["value"]
        assert (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0) or (
            isinstance(v, str) and CENSORED_RE.match(v)
        ), f"{where}: value {v!r}"
        if "collected" in m:
            c = m["collected"]
            # an unquoted 10:30 is read by YAML 1.1 as the integer 630: times must be strings
            assert isinstance(c, str) and (CLOCK_RE.match(c) or ISO_RE.match(c)), (
                f"{where}: collected {c!r}"
            )
        if "day" in m:
            assert isinstance(m["day"], (int, float)) and m["day"] >= 0, where
        if "reference_interval" in m:
            ri = m["reference_interval"]
            assert isinstance(ri, list) and len(ri) == 2 and ri[0] <= ri[1], where

    symptoms = case.get("symptoms") or {}
    assert set(symptoms) <= SYMPTOM_KEYS
    present = set(symptoms.get("present") or [])
    absent = set(symptoms.get("absent") or [])
    assert not present & absent, f"{case_file}: both present and absent: {present & absent}"


def test_case_ids_are_unique() -> None:
    ids = [_load_yaml(EXAMPLES / f)["id"] for f in CASE_FILES]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"duplicate case ids: {dupes}"
