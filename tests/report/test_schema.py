"""The JSON report against its JSON Schema (draft 2020-12), shipped as package data."""

from __future__ import annotations

import copy
import json
import re
from importlib import resources

import pytest

from neb_bayes.report import render_json

from .conftest import CONDITION_IDS, ROOT, example_result

jsonschema = pytest.importorskip("jsonschema")

SPEC = ROOT.parent / "shared" / "spec" / "conditions.md"


@pytest.fixture(scope="module")
def schema() -> dict:
    text = resources.files("neb_bayes.report").joinpath("schema/report.schema.json").read_text(
        encoding="utf-8")
    return json.loads(text)


@pytest.fixture(scope="module")
def validator(schema: dict):
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_is_package_data_and_draft_2020_12(schema: dict) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_requires_every_condition_of_the_contract(schema: dict) -> None:
    required = schema["properties"]["conditions"]["required"]
    assert set(required) == set(CONDITION_IDS)
    if SPEC.exists():  # the shared spec lives beside the repository in the workspace
        table = re.findall(r"^\| ([a-z_]+) \|", SPEC.read_text(encoding="utf-8"), re.MULTILINE)
        assert set(required) == {t for t in table if t not in ("id", "none")}


def test_every_example_report_validates(example_name: str, validator) -> None:
    report = json.loads(render_json(example_result(example_name)))
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    for cid, entry in [*report["conditions"].items(), ("none", report["none"])]:
        lo, hi = entry["interval"]
        assert lo <= hi, cid


@pytest.mark.parametrize("mutate", [
    lambda r: r["conditions"].pop("pcos"),
    lambda r: r["conditions"]["diabetes"].__setitem__("probability", 1.2),
    lambda r: r["conditions"]["diabetes"].__setitem__("interval", [0.1]),
    lambda r: r["none"].__setitem__("interval", ["a", 0.2]),
    lambda r: r.pop("provenance"),
    lambda r: r["not_used"].append({"item": "measurements[9]"}),
    lambda r: r.__setitem__("report_format", 2),
], ids=["missing-condition", "probability>1", "short-interval", "non-numeric-interval",
        "no-provenance", "not-used-without-reason", "format-2"])
def test_schema_rejects_broken_reports(validator, mutate) -> None:
    report = json.loads(render_json(example_result("primary_hypothyroidism_01.yaml")))
    assert validator.is_valid(report)
    broken = copy.deepcopy(report)
    mutate(broken)
    assert not validator.is_valid(broken)
