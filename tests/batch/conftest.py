"""Shared inputs for the batch tests: simulated cases written as batch input files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from neb_bayes.batch.table import read_table, result_schema
from neb_bayes.case.model import Case
from neb_bayes.model.compiled import CompiledModel, load_model
from neb_bayes.simulate import simulate

#: bad cases mixed into the inputs: (json line, the field paths its errors must name)
BAD_CASES: list[tuple[str, set[str]]] = [
    ("{not json", {"<file>"}),
    ('[1, 2, 3]', {"<file>"}),
    (json.dumps({"id": "bad-sex", "patient": {"sex": "Q"},
                 "measurements": [{"analyte": "TSH", "value": 2.0, "unit": "mIU/L"}]}),
     {"patient.sex"}),
    (json.dumps({"id": "bad-many", "patient": {"age": -4},
                 "measurements": [{"analyte": "TSH", "value": -1, "unit": "mIU/L"},
                                  {"analyte": "FT4", "value": 12, "unit": "kg"}]}),
     {"patient.age", "measurements[0].value", "measurements[1].unit"}),
    (json.dumps({"patient": {"sex": "F"}, "measurements": []}), {"id"}),
    # half a character (an unpaired UTF-16 surrogate escape, an emoji cut in two): not
    # text, and it could not be written to any output
    (json.dumps({"id": "half-\ud83d", "medications": ["x\udc00"],
                 "measurements": [{"analyte": "TSH\ud800", "value": 2.0, "unit": "mIU/L"}]}),
     {"id", "medications[0]", "measurements[0].analyte"}),
]


@pytest.fixture(scope="session")
def model() -> CompiledModel:
    return load_model()


@pytest.fixture(scope="session")
def sim_cases(model: CompiledModel) -> list[Case]:
    """300 simulated cases (tests take slices)."""
    return [s.case for s in simulate(model, 300, seed=11)]


@pytest.fixture(scope="session")
def many_cases(model: CompiledModel) -> list[Case]:
    """2,000 simulated cases with fewer results each (quicker to infer)."""
    return [s.case for s in simulate(model, 2000, seed=12, p_measure=0.3)]


@pytest.fixture(scope="session")
def schema(model: CompiledModel) -> pa.Schema:
    return result_schema(model.conditions)


def mixed_jsonl(path: Path, cases: list[Case], every: int = 40) -> set[int]:
    """Write cases as JSON Lines with a bad case after every ``every`` good ones (and blank
    lines); return the input items (positions) of the bad ones."""
    from neb_bayes.batch.export import case_to_dict

    bad_items: set[int] = set()
    item = 0
    k = 0
    with open(path, "w", encoding="utf-8") as fh:
        for i, case in enumerate(cases):
            fh.write(json.dumps(case_to_dict(case)) + "\n")
            item += 1
            if (i + 1) % every == 0:
                fh.write("\n" + BAD_CASES[k % len(BAD_CASES)][0] + "\n")
                bad_items.add(item)
                item += 1
                k += 1
    return bad_items


def results(out: Path, schema: pa.Schema, fmt: str = "parquet") -> pa.Table:
    ext = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl"}[fmt]
    return read_table(out / f"results{ext}", fmt, schema)


def errors(out: Path) -> list[dict]:
    with open(out / "errors.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
