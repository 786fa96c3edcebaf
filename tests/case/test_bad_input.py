"""Malformed case files: every error is a CaseError naming the exact field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from case.malformed_cases import (
    MALFORMED_CASES,
    MULTI_ERROR_CASE,
    MULTI_ERROR_PATHS,
    write_case,
)
from neb_bayes.case import CaseError, read_case


def test_there_are_at_least_30_distinct_cases() -> None:
    names = [name for name, _, _ in MALFORMED_CASES]
    assert len(names) >= 30
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("name", "case", "path"), MALFORMED_CASES, ids=[n for n, _, _ in MALFORMED_CASES]
)
def test_malformed_case_names_the_field(tmp_path: Path, name: str, case: object, path: str) -> None:
    file = write_case(tmp_path, name, case)
    with pytest.raises(CaseError) as info:
        read_case(file)
    paths = [e.path for e in info.value.errors]
    assert path in paths, f"{name}: expected an error at {path!r}, got {info.value}"
    assert info.value.source == str(file)
    assert all(e.message for e in info.value.errors)


@pytest.mark.parametrize(
    ("name", "case", "path"),
    [c for c in MALFORMED_CASES if isinstance(c[1], dict)],
    ids=[n for n, c, _ in MALFORMED_CASES if isinstance(c, dict)],
)
def test_malformed_dict_gives_the_same_error(name: str, case: dict, path: str) -> None:
    with pytest.raises(CaseError) as info:
        read_case(case, source_name=name)
    assert path in [e.path for e in info.value.errors]
    assert info.value.source == name


def test_every_error_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    file = write_case(tmp_path, "many", MULTI_ERROR_CASE)
    with pytest.raises(CaseError) as info:
        read_case(file)
    paths = [e.path for e in info.value.errors]
    assert paths == MULTI_ERROR_PATHS
    text = str(info.value)
    assert f"{len(MULTI_ERROR_PATHS)} error(s)" in text
    for path in MULTI_ERROR_PATHS:
        assert f"  - {path}: " in text


def test_unit_error_names_the_unit_and_the_accepted_units() -> None:
    case = {"id": 1, "measurements": [{"analyte": "FT4", "value": 15, "unit": "mmol/mol"}]}
    with pytest.raises(CaseError) as info:
        read_case(case)
    (error,) = info.value.errors
    assert error.path == "measurements[0].unit"
    assert "'mmol/mol'" in error.message and "pmol/L" in error.message and "ng/dL" in error.message


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("id: x\nmeasurements: [\n  {analyte: TSH, value: 2\n", encoding="utf-8")
    with pytest.raises(CaseError) as info:
        read_case(file)
    (error,) = info.value.errors
    assert error.path == "<file>" and "line" in error.message and "column" in error.message


def test_missing_file_is_a_case_error(tmp_path: Path) -> None:
    with pytest.raises(CaseError) as info:
        read_case(tmp_path / "nope.yaml")
    assert info.value.errors[0].path == "<file>"


def test_negative_value_is_an_error_even_for_an_unknown_analyte() -> None:
    case = {
        "id": 1,
        "measurements": [
            {"analyte": "XYZ", "value": -1, "unit": "mg/L"},
            {"analyte": "TSH", "value": 1, "unit": "mIU/L"},
        ],
    }
    with pytest.raises(CaseError) as info:
        read_case(case)
    assert [e.path for e in info.value.errors] == ["measurements[0].value"]


def test_half_a_character_is_an_error_at_its_field(tmp_path: Path) -> None:
    r"""A JSON escape of an unpaired UTF-16 surrogate (``\ud83d`` alone: an emoji cut in
    two) is not text and could not be written to any output: an error at each field and key
    where it is; a whole pair is one character, and an escaped backslash no escape."""
    text = ('{"id": "half-\\ud83d", "medications": ["x\\udc00"], "\\ud800": 1, '
            '"patient": {"sex": "F", "note": "\\ud83d\\ude00 and \\\\ud800"}, '
            '"measurements": [{"analyte": "TSH\\ud800", "value": 2.0, "unit": "mIU/L"}]}')
    file = tmp_path / "case.json"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(CaseError) as info:
        read_case(file)
    assert sorted(e.path for e in info.value.errors) == [
        "<key>", "id", "measurements[0].analyte", "medications[0]"]
    assert all("half a character" in e.message for e in info.value.errors)
    whole = text.replace("\\ud83d\"", "\"").replace("\\udc00", "").replace(
        "\\ud800\": 1", "k\": 1").replace("TSH\\ud800", "TSH")
    file.write_text(whole, encoding="utf-8")
    assert read_case(file).id == "half-"
