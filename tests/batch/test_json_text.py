"""The batch's fast JSON parse gives what the case reader's parse gives: the same values, the
same errors (a key twice in an object, malformed text), whatever the spacing or escapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neb_bayes.batch.json_text import MAX_KEYS, parse_json_case
from neb_bayes.case.loader import load_file, load_text
from neb_bayes.case.model import CaseError

CASES = Path(__file__).resolve().parents[2] / "cases"


def _outcome(parse, text: str):
    """``("ok", value as JSON)`` or ``("error", messages)``; NaN compared as text."""
    try:
        value = parse(text)
    except CaseError as exc:
        return "error", [(e.path, e.message) for e in exc.errors]
    return "ok", json.dumps(value, sort_keys=False)


def _same_as_the_case_reader(text: str) -> None:
    assert _outcome(parse_json_case, text) == _outcome(lambda t: load_text(t, "json"), text)


@pytest.mark.parametrize("text", [
    '{"id": "x", "id": "y"}',                                  # the key twice
    '{"id": "x",   "id"  :  "y"}',                             # ... with spacing
    '{"id": "x", "\\u0069d": "y"}',                            # ... once escaped
    '{"a": {"b": 1, "b": 2}}',                                 # in a nested object
    '{"m": [{"v": 1}, {"v": 2, "u": 3, "v": 4}]}',             # in an object in a list
    '{"m": [{"v": 1}, {"v": 2}], "v": {"v": {"v": 3}}}',       # the same key in other objects
    '{"a": 1, "b": {"c": 2}, "a": 3}',                         # twice around a nested object
    '{"a:b": "\\":", "a": ":", "x": "\\"a\\": 1"}',            # keys and colons in strings
    '{"\\"": 1, "\\\\": 2, "": 3, "é": 4, "e\\u0301": 5}',      # escaped and non-ASCII keys
    '{"é": 1, "\\u00e9": 2}',                                   # the same key, escaped once
    '{"": 1, "": 2}',                                          # the empty key twice
    '{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1e400}',   # only the stdlib reads these
    '{"a": "\\ud800"}',                                        # a lone surrogate
    '{"a": 123456789012345678901234567890, "b": -0, "c": -0.0, "d": 5e-324}',
    '{"a": 1,}', '{"a": 1} x', '{"a": [1, 2}', '', '   ', '[]', '1', '"x"', 'null',
    '{"id": "x", "measurements": [}',
    "{" + ", ".join(f'"k{i}": {i}' for i in range(MAX_KEYS + 5)) + "}",
    "{" + ", ".join(f'"k{i}": {i}' for i in range(MAX_KEYS + 5)) + ', "k3": 0}',
    '{"a": {"b": {"c": {"d": [[{"e": 1, "e": 2}]]}}}}',
])
def test_values_and_errors_are_the_case_readers(text):
    _same_as_the_case_reader(text)


def test_a_key_twice_is_the_case_readers_error():
    with pytest.raises(CaseError) as exc:
        parse_json_case('{"id": "x", "patient": {"sex": "F", "sex": "M"}}', source="f:3")
    (err,) = exc.value.errors
    assert err.path == "<file>" and "found the key 'sex' twice" in err.message


def test_every_shipped_case_as_json_reads_the_same():
    cases = [load_file(p) for p in sorted(CASES.rglob("*.yaml"))]
    assert len(cases) >= 10
    for case in cases:
        _same_as_the_case_reader(json.dumps(case))                  # one line, as in JSON Lines
        _same_as_the_case_reader(json.dumps(case, indent=2, ensure_ascii=False))


_keys = st.text(st.sampled_from('ab:"\\é{}[], \n'), max_size=3)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.lists(st.tuples(_keys, inner), max_size=5),
    max_leaves=20,
)


def _write(x, indent: bool, ascii_only: bool) -> str:
    """JSON text of ``x``, where a list of pairs is an object whose keys may repeat."""
    sep = ",\n  " if indent else ", "
    if isinstance(x, list) and x and all(isinstance(p, tuple) for p in x):
        return "{" + sep.join(json.dumps(k, ensure_ascii=ascii_only)
                              + (" : " if indent else ": ") + _write(v, indent, ascii_only)
                              for k, v in x) + "}"
    if isinstance(x, list):
        return "[" + sep.join(_write(v, indent, ascii_only) for v in x) + "]"
    return json.dumps(x, ensure_ascii=ascii_only)


@settings(max_examples=300, deadline=None)
@given(_json, st.booleans(), st.booleans())
def test_any_json_text_reads_as_the_case_reader_reads_it(x, indent, ascii_only):
    # objects with repeated keys come out often: both must refuse them alike
    _same_as_the_case_reader(_write(x, indent, ascii_only))


@pytest.mark.parametrize("text", ['{"id": "x", "measurements": []}', '  {"a": 1}',
                                  '{"id": "x", "id": "y"}', '{"a": 1,}', ''])
def test_a_byte_order_mark_at_the_start_is_skipped_as_the_case_reader_skips_it(text):
    """A text starting with a byte order mark (a JSON line of a file written with one) reads
    as the text without it, in the fast parse and the case reader's alike."""
    marked = "\ufeff" + text
    _same_as_the_case_reader(marked)
    assert _outcome(parse_json_case, marked) == _outcome(parse_json_case, text)
