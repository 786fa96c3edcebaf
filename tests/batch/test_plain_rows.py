"""Wide-CSV rows read at once (PlainReader.add_rows, csv_cases.row_parts) give what reading
them one by one gives (row_to_case, then PlainReader.add): the same rows bit for bit, in the
same order, and the same evidence; a row that row_to_case would report anything about, or
that the plain reader declines, is left to the one-by-one path."""

from __future__ import annotations

import csv
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from neb_bayes.batch.export import write_csv
from neb_bayes.batch.inputs import iter_items, parse_item
from neb_bayes.batch.plain import PlainReader
from neb_bayes.case.read import read_case
from neb_bayes.simulate import simulate


def _items(tmp_path: Path, header: list[str], rows: list[list[str]]) -> list:
    path = tmp_path / "rows.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return list(iter_items([str(path)]))


def _same_reading(model, items) -> np.ndarray:
    """Read the items' rows at once and one by one; assert every row read at once is read
    one by one too, to the same rows and evidence.  Returns which were read at once."""
    at_once, one_by_one = PlainReader(model), PlainReader(model)
    taken = at_once.add_rows([item.data for item in items])
    assert taken.shape == (len(items),) and taken.dtype == bool
    for item, t in zip(items, taken, strict=True):
        if t:
            parsed = parse_item(item)
            assert not parsed.extra, parsed.extra
            read_case(parsed.data)                    # the full reader reads it too
            assert one_by_one.add(parsed.data), parsed.data
    a, b = at_once.flat(), one_by_one.flat()
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype and np.array_equal(x, y), f.name
    assert at_once.n_used == one_by_one.n_used and at_once.axes == one_by_one.axes
    for e1, e2 in zip(at_once.evidences, one_by_one.evidences, strict=True):
        assert (e1.case_id, e1.covariates, e1.not_used, e1.warnings, e1.context_signature) == (
            e2.case_id, e2.covariates, e2.not_used, e2.warnings, e2.context_signature)
        assert np.array_equal(e1.present, e2.present) and np.array_equal(e1.absent, e2.absent)
    return taken


def test_simulated_cases_as_a_wide_csv_read_at_once_as_one_by_one(model, tmp_path):
    sims = [s.case for s in simulate(model, 120, seed=41)]
    write_csv(sims, tmp_path / "sims.csv")
    items = list(iter_items([str(tmp_path / "sims.csv")]))
    taken = _same_reading(model, items)
    plain = np.array([(p := parse_item(i)).extra == [] and PlainReader(model).add(p.data)
                      for i in items])
    assert taken.sum() >= 0.9 * plain.sum() and plain.sum() >= 100


HEADER = ["id", "sex", "age", "pregnant", "medications", "context", "TSH_mIU_per_L",
          "FT4_pmol_per_L", "cortisol_nmol_per_L__t0800", "cortisol_ug_per_dL__t2300",
          "TSH_mIU_per_L__d30", "glucose_fasting_mg_per_dL", "ferritin_ng_per_mL",
          "sym_fatigue", "sym_weight_gain", "symptoms_present", "symptoms_absent",
          "symptoms_unknown"]
BASE = ["r", "F", "40", "", "", "", "2.5", "14", "400", "", "", "", "", "1", "0", "", "", ""]


@pytest.mark.parametrize(("changes", "read"), [
    ({}, True),
    ({"TSH_mIU_per_L": "<0.01"}, True), ({"FT4_pmol_per_L": ">100"}, True),
    ({"TSH_mIU_per_L": "1."}, True), ({"TSH_mIU_per_L": ".5"}, True),
    ({"TSH_mIU_per_L": "+2"}, True), ({"TSH_mIU_per_L": "2e0"}, True),
    ({"TSH_mIU_per_L": " 2.5 "}, True), ({"TSH_mIU_per_L": "3.5 mIU"}, False),
    ({"TSH_mIU_per_L": "0"}, False), ({"TSH_mIU_per_L": "-1"}, False),
    ({"TSH_mIU_per_L": "1e999"}, False), ({"TSH_mIU_per_L": "5000"}, False),
    ({"cortisol_ug_per_dL__t2300": "3.1"}, True), ({"TSH_mIU_per_L__d30": "4.0"}, True),
    ({"glucose_fasting_mg_per_dL": "95"}, True), ({"ferritin_ng_per_mL": "80"}, True),
    ({"sym_fatigue": "yes", "sym_weight_gain": "no"}, True),
    ({"sym_fatigue": "present"}, True), ({"sym_fatigue": "unknown"}, True),
    ({"sym_fatigue": "maybe"}, False),
    ({"symptoms_present": "cold intolerance; goiter", "symptoms_unknown": "hair loss"}, True),
    ({"symptoms_absent": "fatigue"}, False),                 # fatigue in two states
    ({"symptoms_present": "nonsense"}, False), ({"symptoms_present": " ; "}, True),
    ({"sex": "M"}, True), ({"sex": "X"}, False), ({"age": "forty"}, False),
    ({"age": ""}, True), ({"pregnant": "yes"}, True), ({"pregnant": "maybe"}, False),
    ({"medications": "levothyroxine"}, True),
    ({"medications": "prednisolone; oral contraceptive"}, True),
    ({"context": "night shift worker"}, True),
    ({"id": ""}, False), ({"id": "  r2  "}, True),
    ({"TSH_mIU_per_L": "", "FT4_pmol_per_L": "", "cortisol_nmol_per_L__t0800": "",
      "sym_fatigue": "", "sym_weight_gain": ""}, False),     # nothing to read
])
def test_rows_read_at_once_as_one_by_one(model, tmp_path, changes, read):
    row = dict(zip(HEADER, BASE, strict=True)) | changes
    items = _items(tmp_path, HEADER, [BASE, list(row.values()), BASE])
    taken = _same_reading(model, items)
    assert taken.tolist() == [True, read, True]


def test_rows_with_problems_of_the_file_are_left_to_the_one_by_one_path(model, tmp_path):
    extra = _items(tmp_path, [*HEADER, "notes"], [[*BASE, "see chart"], [*BASE, ""]])
    assert _same_reading(model, extra).tolist() == [False, True]   # a column of no kind
    twice = _items(tmp_path, [*HEADER, "TSH_mIU_per_L"], [[*BASE, "3"]])
    assert not _same_reading(model, twice).any()                  # a column twice
    longer = _items(tmp_path, HEADER, [[*BASE, "9"], BASE])
    assert _same_reading(model, longer).tolist() == [False, True]  # more cells than columns
