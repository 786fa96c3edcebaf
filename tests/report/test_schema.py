"""The JSON report against its JSON Schema (draft 2020-12), shipped as package data."""

from __future__ import annotations

import copy
import json
import re
from importlib import resources

import pytest

from neb_bayes.report import render_json

from .conftest import CONDITION_IDS, ROOT, example_result, raw_measurements

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


def test_json_echoes_every_lab_result_as_given_and_as_used(example_name: str) -> None:
    """``lab_results``: each result the reader read, its value and unit as the case file gave
    them, its value in the model's unit, specimen, time, whether it was used and the flags the
    engine attached (the context that adjusted it, a likely wrong result)."""
    result = example_result(example_name)
    report = json.loads(render_json(result))
    given = raw_measurements(example_name)
    rows = {row["item"]: row for row in report["lab_results"]}
    assert len(rows) == len(result.case.measurements)
    used = {int(s) for b in result.evidence.blocks for s in b.source.tolist()}
    for m in result.case.measurements:
        row = rows[f"measurements[{m.index}]"]
        raw = given[m.index]
        assert (row["analyte"], row["specimen"]) == (m.analyte, m.specimen)
        assert row["value"] == raw["value"] and row["unit"] == raw.get("unit", "")
        assert row["canonical_value"] == pytest.approx(m.value)
        assert row["censor"] == m.censor
        assert (row["time"] is None) == (m.hour is None)
        collected = raw.get("collected")
        if isinstance(collected, str) and re.search(r"\b\d\d:\d\d", collected):
            assert row["time"] in collected
        assert row["used"] == (m.index in used)
    for entry in report["accounted_for"]:
        for item in entry.get("items", []):
            if item in rows and "flag" in entry and entry.get("kind") != "prior_odds":
                assert entry["flag"] in rows[item]["flags"], (item, entry["flag"])
    for suspect in report["suspect_results"]:
        assert "suspect_result" in rows[f"measurements[{suspect['measurement']}]"]["flags"]


def test_the_echoed_results_stay_out_of_the_log(tmp_path, caplog) -> None:
    """The JSON and Markdown reports echo the values; the log (-vv) still names none."""
    import logging

    from click.testing import CliRunner

    from neb_bayes.cli import main

    case = ROOT / "cases" / "examples" / "hard_biotin_interference.yaml"
    values = [str(m["value"]) for m in raw_measurements(case.name)]
    caplog.set_level(logging.DEBUG)
    for fmt in ("json", "md"):
        out = tmp_path / f"report.{fmt}"
        res = CliRunner().invoke(main, ["-vv", "report", str(case), "--format", fmt,
                                        "--out", str(out)])
        assert res.exit_code == 0, res.output
        written = out.read_text(encoding="utf-8")
        assert all(v in written for v in values)
        logged = res.output + caplog.text
        assert "report written" in logged
        logged = logged.replace(str(tmp_path), "OUT")   # its name may hold digits
        assert not any(re.search(rf"(?<![\d.]){re.escape(v)}(?![\d.])", logged)
                       for v in values), logged
