"""JSON lines read at once (PlainReader.add_texts, the compiled pass of plain_json) give what
reading them one by one gives (PlainReader.add on the parsed data, itself held equal to the
full reader in test_plain_reader): the same rows bit for bit, in the same order, and the same
evidence.  A text is read at once only when it is valid JSON without a key given twice, and
whatever the spacing, key order or escapes; any other text is left to the one-by-one path.
"""

from __future__ import annotations

import copy
import json
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neb_bayes.batch import plain_json
from neb_bayes.batch.export import case_to_dict
from neb_bayes.batch.plain import PlainReader
from neb_bayes.case.loader import load_text
from neb_bayes.simulate import simulate
from tests.batch.conftest import BAD_CASES
from tests.batch.test_plain_reader import BASE, CASE_VARIANTS
from tests.case.test_fast_read import VARIANTS


def _same_reading(model, texts: list[str]) -> np.ndarray:
    """Read ``texts`` at once and one by one; assert every case read at once is valid JSON,
    read one by one too, to the same rows and evidence.  Returns which were read at once."""
    at_once, one_by_one = PlainReader(model), PlainReader(model)
    taken = at_once.add_texts(texts)
    assert taken.shape == (len(texts),) and taken.dtype == bool
    for text, t in zip(texts, taken, strict=True):
        if t:
            assert one_by_one.add(load_text(text, "json")), text   # valid JSON, plain
    a, b = at_once.flat(), one_by_one.flat()
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype and np.array_equal(x, y), f.name
    assert at_once.n_used == one_by_one.n_used and at_once.axes == one_by_one.axes
    assert len(at_once.evidences) == len(one_by_one.evidences) == int(taken.sum())
    for e1, e2 in zip(at_once.evidences, one_by_one.evidences, strict=True):
        assert (e1.case_id, e1.covariates, e1.not_used, e1.warnings, e1.context_signature) == (
            e2.case_id, e2.covariates, e2.not_used, e2.warnings, e2.context_signature)
        assert np.array_equal(e1.present, e2.present) and np.array_equal(e1.absent, e2.absent)
        assert e1.lat_shift.keys() == e2.lat_shift.keys() and e1.context == e2.context
    return taken


def _styles(data) -> list[str]:
    """One case written as other tools write JSON: compact, spaced, indented, escaped."""
    return [json.dumps(data), json.dumps(data, separators=(",", ":"), ensure_ascii=False),
            json.dumps(data, indent=1).replace("\n", " \t"),
            json.dumps(dict(reversed(list(data.items()))), ensure_ascii=False)]


def _variants() -> list[dict]:
    datas = [copy.deepcopy(BASE)]
    for variant in VARIANTS:
        for k in range(3):
            data = copy.deepcopy(BASE)
            data["measurements"][k].update(variant)
            datas.append(data)
    for variant in CASE_VARIANTS:
        data = copy.deepcopy(BASE)
        data.update(variant)
        datas.append(data)
    return datas


def test_simulated_cases_read_at_once_as_one_by_one(model):
    sims = [case_to_dict(s.case) for s in simulate(model, 80, seed=31)]
    texts = [t for d in sims for t in _styles(d)]
    taken = _same_reading(model, texts)
    assert taken.all()          # every style of every simulated case, escapes included


def test_variants_read_at_once_as_one_by_one(model):
    datas = _variants()
    texts = [t for d in datas for t in _styles(d)]
    taken = _same_reading(model, texts)
    # most of what add() reads is read at once; the rest goes one by one (results with a
    # method, note, reference interval or a null; ids as numbers; values not numbers)
    one = PlainReader(model)
    plain = np.array([one.add(copy.deepcopy(d)) for d in datas for _ in range(4)])
    assert not (taken & ~plain).any()
    assert taken.sum() > 0.6 * plain.sum(), (taken.sum(), plain.sum())


@pytest.mark.parametrize(("symptoms", "read"), [
    (None, True), ({}, True), ({"present": []}, True),
    ({"present": ["fatigue", "fatigue"], "absent": ["goiter"]}, True),   # twice in one state
    ({"present": [" Fatigue ", "cold intolerance"]}, True),              # as the reader reads
    ({"unknown": ["fatigue"], "absent": ["goiter", "weight_gain"]}, True),
    ({"absent": ["weight_gain", "goiter", "acne", "dry_skin"]}, True),    # (ordered by id)
    ({"present": ["fatigue"], "absent": ["fatigue"]}, False),           # two states
    ({"present": ["fatigue"], "unknown": ["Fatigue"]}, False),
    ({"present": ["nonsense"]}, False), ({"present": [""]}, False),
    ({"present": "fatigue"}, False), ({"other": []}, False), ({"present": [3]}, False),
    ([], False), ({"present": ["fatigue", 3]}, False),
])
def test_symptoms_read_at_once_as_the_reader_reads_them(model, symptoms, read):
    text = json.dumps({**BASE, "symptoms": symptoms})
    twice = text.replace('"present": ["fatigue"]', '"present": ["fatigue"], "present": []')
    taken = _same_reading(model, [text, twice])
    assert taken[0] == read
    assert not taken[1] or twice == text


def _base_text(**changes) -> str:
    return json.dumps({**BASE, **changes})


@pytest.mark.parametrize("text", [
    *[b for b, _ in BAD_CASES],
    _base_text()[:-1],                                               # not closed
    _base_text() + " x",                                             # something after it
    _base_text() + " {}",
    '{"id": "a", "id": "b", "measurements": []}',                    # keys twice ...
    _base_text().replace('"sex": "F"', '"sex": "F", "sex": "M"'),   # ... in the patient
    _base_text().replace('"present": ["fatigue"]',
                         '"present": ["fatigue"], "present": []'),  # ... in the symptoms
    _base_text().replace('"value": 2.5', '"value": 2.5, "value": 25'),  # ... in a result
    _base_text().replace('"unit": "mIU/L"', '"unit": "mIU/L", "unit": "mIU/L"'),
    _base_text().replace('"sex": "F"', '"sex": "F", "\\u0073ex": "M"'),   # ... escaped once
    _base_text().replace('"value": 2.5', '"value": NaN'),
    _base_text().replace('"value": 2.5', '"value": Infinity'),
    _base_text().replace('"value": 2.5', '"value": 2.5.1'),
    _base_text().replace('"value": 2.5', '"value": .5'),
    _base_text().replace('"value": 2.5', '"value": 02.5'),
    _base_text().replace('"value": 2.5', '"value": +2.5'),
    _base_text().replace('"value": 2.5', '"value": 1e999'),
    _base_text().replace('"value": 2.5', '"value": -2.5'),
    _base_text().replace('"value": 2.5', '"value": 0'),
    _base_text().replace('"value": 2.5', '"value": "2.5\\u0030"'),
    _base_text().replace('"value": 2.5', '"value": true'),
    _base_text().replace('"value": 2.5', '"value": [2.5]'),
    _base_text().replace('"day": 1', '"day": -1'),
    _base_text().replace('"day": 1', '"day": 1e999'),
    _base_text().replace('"day": 1', '"day": null'),
    _base_text().replace('"unit": "mIU/L"', '"unit": "mIU/L\\x"'),         # a bad escape
    _base_text().replace('"unit": "mIU/L"', '"unit": "mIU/L\\ud800"'),     # lone surrogate
    _base_text().replace('"unit": "mIU/L"', '"unit": "mIU/L\t"'),          # a raw tab
    _base_text().replace('"sex": "F"', '"sex": "F\t"'),
    _base_text().replace('"sex": "F"', '"sex": F'),
    _base_text().replace('"present": ["fatigue"]', '"present": ["fatigue",]'),
    _base_text().replace('"id": "v"', '"id": "v\\u0031"'),
    _base_text().replace('"id": "v"', '"id": 7'),
    _base_text().replace('"id": "v"', '"id": "  "'),
    '{"case_format": 1.0, "id": "x", "measurements": []}',
    '{"case_format": 2, "id": "x", "measurements": []}',
    '{"case_format": 1, "id": "x", "measurements": [], "extra": 1}',
    '{"id": "x", "measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L",'
    ' "note": "x"}]}',
    '{"id": "x", "measurements": [{"analyte": "TSH", "value": 2.5}]}',
    '{"id": "x", "measurements": {}}',
    '{"id": "x", "measurements": [[]]}',
    '{"id": "x", "measurements": [], "patient": {"sex": "F"}}',      # nothing to read
    '{"id": "x", "patient": {"sex": "F"}, "symptoms": {"present": ["fatigue"]}}',
    '   ', '{}', '[]', '"x"', '{"id": "x", "measurements": [] ,}',
])
def test_texts_read_at_once_only_when_valid_and_plain(model, text):
    taken = _same_reading(model, [text, _base_text(), text])
    assert taken[1]             # a good case beside a bad one is read


def test_values_beyond_the_float_range_fall_back_to_numpy_as_float_reads_them(model):
    texts = [_base_text(), _base_text().replace('"value": 2.5', '"value": 1e999')]
    scanned = plain_json.scan_chunk(texts)
    assert np.isinf(scanned.values).any()
    assert _same_reading(model, texts).tolist() == [True, False]


def test_a_full_table_of_forms_leaves_the_rest_to_the_one_by_one_path(model, monkeypatch):
    monkeypatch.setattr(plain_json, "MAX_FORMS", 2)
    texts = [_base_text(), _base_text()]           # three forms each
    assert not _same_reading(model, texts).any()


_space = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])


@settings(max_examples=60, deadline=None)
@given(st.lists(_space, min_size=40, max_size=40), st.permutations(list(BASE)),
       st.booleans())
def test_any_spacing_and_key_order_reads_the_same(model, spaces, order, ascii_only):
    """The base case rewritten with whitespace between every token and keys in any order."""
    data = {k: BASE[k] for k in order}
    text = json.dumps(data, ensure_ascii=ascii_only)
    out, k, inside = [], 0, False
    for ch in text:                  # (BASE's strings have no escaped quotes)
        out.append(ch)
        inside ^= ch == '"'
        if ch in "{}[],:" and not inside:
            out.append(spaces[k % len(spaces)])
            k += 1
    spaced = spaces[-1] + "".join(out) + spaces[-2]
    assert _same_reading(model, [spaced]).all()


def test_a_failure_reading_a_chunk_at_once_leaves_it_to_the_one_by_one_path(model, monkeypatch):
    from neb_bayes.batch.inputs import RawItem
    from neb_bayes.batch.worker import ChunkTask, process_chunk

    sims = [case_to_dict(s.case) for s in simulate(model, 20, seed=32)]
    items = [RawItem(f"in.jsonl:{i + 1}", "json", json.dumps(d)) for i, d in enumerate(sims)]
    task = ChunkTask(index=0, first_item=0, items=items)
    at_once = process_chunk(task)

    def broken(self, texts):
        self.evidences.append(None)      # half done, then a bug
        raise RuntimeError("a bug")

    monkeypatch.setattr(PlainReader, "add_texts", broken)
    one_by_one = process_chunk(task)
    assert one_by_one.table.equals(at_once.table) and one_by_one.errors == at_once.errors
    assert at_once.table.num_rows == len(sims)


def test_a_byte_order_mark_at_the_start_reads_at_once_as_without(model):
    """The compiled pass skips a byte order mark at the start of a text (str or UTF-8
    bytes), as the one-by-one path does: the same cases read at once, to the same rows."""
    texts = _styles(BASE)
    assert _same_reading(model, ["\ufeff" + t for t in texts]).all()
    marked = ["\ufeff" + t for t in texts] + [("\ufeff" + t).encode() for t in texts]
    with_mark, without = PlainReader(model), PlainReader(model)
    assert with_mark.add_texts(marked).all() and without.add_texts(texts + texts).all()
    a, b = with_mark.flat(), without.flat()
    for f in fields(a):
        assert np.array_equal(getattr(a, f.name), getattr(b, f.name)), f.name
