"""The batch's reader of plain cases gives exactly what read_case + build_evidence give.

For every case it accepts, its rows equal those the engine reads from the full reader's
evidence (:meth:`Flat.of`), bit for bit and in the same order, and the rest of the evidence
(covariates, symptoms, context, warnings) is the same; it declines every case the full
reader would report anything about (an error, an item not used), and the probabilities of
the cases it reads equal the full path's.
"""

from __future__ import annotations

import copy
import json
from dataclasses import fields

import numpy as np
import pytest

from neb_bayes.batch.export import case_to_dict
from neb_bayes.batch.inputs import RawItem
from neb_bayes.batch.plain import PlainReader
from neb_bayes.batch.worker import ChunkTask, process_chunk
from neb_bayes.case.model import CaseError
from neb_bayes.case.read import read_case
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.vectorised import Flat, posterior_batch, posterior_rows
from neb_bayes.simulate import simulate
from tests.batch.conftest import BAD_CASES
from tests.case.test_fast_read import EXAMPLES, VARIANTS

BASE = {"id": "v", "patient": {"sex": "F", "age": 40},
        "measurements": [{"analyte": "TSH", "specimen": "serum", "value": 2.5,
                          "unit": "mIU/L", "collected": "09:00"},
                         {"analyte": "FT4", "value": 14.0, "unit": "pmol/L", "day": 1},
                         {"analyte": "cortisol", "value": 400.0, "unit": "nmol/L",
                          "collected": "08:00"}],
        "symptoms": {"present": ["fatigue"], "absent": ["weight_gain"]}}

#: variants of the whole case (top-level fields, patient, symptoms)
CASE_VARIANTS = [
    {"case_format": 1}, {"case_format": 1.0}, {"case_format": 2}, {"case_format": True},
    {"id": 5}, {"id": " x "}, {"id": " "}, {"id": None}, {"id": True}, {"extra": 1},
    {"measurements": []}, {"measurements": None}, {"measurements": {"a": 1}},
    {"measurements": [], "symptoms": None}, {"symptoms": None},
    {"patient": None}, {"patient": {"sex": "M", "age": 40}}, {"patient": {"sex": "female"}},
    {"patient": {"sex": "F", "age": 62}}, {"patient": {"sex": "F", "age": 62.5}},
    {"patient": {"sex": "F", "age": 130}}, {"patient": {"sex": "F", "age": True}},
    {"patient": {"sex": ["F"]}}, {"patient": {"sex": "Q"}}, {"patient": {"sex": "F", "pregnant": True}},
    {"patient": {"sex": "F", "medications": ["levothyroxine"]}}, {"patient": {"sex": "F", "bmi": 31}},
    {"patient": "F"}, {"patient": {"sex": "F", "pregnant": True, "gestational_week": 9}},
    {"patient": {"sex": "F", "pregnant": False, "gestational_week": 9}},
    {"patient": {"sex": "M", "pregnant": True}}, {"patient": {"sex": "F", "shoe_size": 38}},
    {"patient": {"sex": "F", "menopausal_status": "post"}},
    {"patient": {"sex": "F", "menopausal_status": "sometimes"}},
    {"patient": {"sex": "F", "menstrual_phase": "luteal"}},
    {"patient": {"sex": "F", "menstrual_phase": "no periods for 8 months"}},
    {"patient": {"sex": "F", "medications": [{"name": "levothyroxine", "last_dose": "07:00"}]}},
    {"patient": {"sex": "F", "medications": [{"name": "biotin", "dose_mg_per_day": 10,
                                              "last_dose": "06:00"}]}},
    {"patient": {"sex": "F", "medications": ["prednisolone", "oral contraceptive"]}},
    {"patient": {"sex": "F", "context": ["night shift worker", "critical illness"]}},
    {"patient": {"sex": "F", "medications": [3]}}, {"patient": {"sex": "F", "age": float("nan")}},
    # patient numbers written as text, as a result's value may be ("2.1")
    {"patient": {"sex": "F", "age": "40"}}, {"patient": {"sex": "F", "age": " 62.5 "}},
    {"patient": {"sex": "F", "age": "forty"}}, {"patient": {"sex": "F", "age": "1e400"}},
    {"patient": {"sex": "F", "age": "-3"}}, {"patient": {"sex": "F", "bmi": "31"}},
    {"patient": {"sex": "F", "pregnant": True, "gestational_week": "9"}},
    {"symptoms": {"present": ["Fatigue "]}}, {"symptoms": {"present": ["fatigue"], "absent": ["fatigue"]}},
    {"symptoms": {"present": ["fatigue"], "unknown": ["fatigue"]}}, {"symptoms": {"unknown": ["fatigue"]}},
    {"symptoms": {"present": ["nonsense"]}}, {"symptoms": {"present": [""]}},
    {"symptoms": {"present": "fatigue"}}, {"symptoms": {"other": []}}, {"symptoms": {"present": [3]}},
    {"symptoms": {"present": ["fatigue", "fatigue", "cold_intolerance"]}}, {"symptoms": []},
    # results of analytes the prior set does not model (listed as not used)
    {"measurements": [{"analyte": "ferritin", "value": 80.0, "unit": "ng/mL"},
                      {"analyte": "TSH", "value": 2.0, "unit": "mIU/L"},
                      {"analyte": "creatinine", "value": 70, "unit": "umol/L", "day": 2}]},
    {"measurements": [{"analyte": "ferritin", "value": 80.0, "unit": "ng/mL"}], "symptoms": None},
    {"measurements": [{"analyte": "ferritin", "value": 1e7, "unit": "ng/mL"}]},
    {"measurements": [{"analyte": "ferritin", "value": "<5", "unit": "ng/mL"},
                      {"analyte": "ferritin", "value": 80.0, "unit": "kg"}]},
    # the lab's reference intervals (method offsets, a daily rhythm's time), methods, notes
    {"measurements": [
        {"analyte": "TSH", "value": 2.5, "unit": "mIU/L", "reference_interval": [0.3, 3.0]},
        {"analyte": "cortisol", "value": 14.5, "unit": "ug/dL", "collected": "16:00",
         "reference_interval": [2.0, 11.0], "method": "immunoassay", "note": " lipaemic "},
        {"analyte": "FT4", "value": 15.0, "unit": "pmol/L", "reference_interval": [9, 25],
         "method": " "},
        {"analyte": "ferritin", "value": 80.0, "unit": "ng/mL", "reference_interval": [20, 300]}]},
    {"patient": {"sex": "F", "medications": [{"name": "biotin", "dose_mg_per_day": 10,
                                              "last_dose": "07:00"}]},
     "measurements": [{"analyte": "TSH", "value": 0.9, "unit": "mIU/L", "collected": "09:00",
                       "method": "LC-MS/MS"},
                      {"analyte": "TSH", "value": 0.9, "unit": "mIU/L", "collected": "09:00",
                       "method": "immunoassay", "day": 3},
                      {"analyte": "FT4", "value": 30.0, "unit": "pmol/L", "collected": "09:00"}]},
    {"measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L",
                       "reference_interval": [4.0, 0.4]}]},
    {"measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L",
                       "reference_interval": [0.4, 4.0, 9.0]}]},
    {"measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L",
                       "reference_interval": "0.4-4.0"}]},
    {"measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L", "method": 3}]},
    {"measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L", "note": None}]},
    {"measurements": [{"analyte": "TSH", "value": "<0.01", "unit": "mIU/L",
                       "reference_interval": [0.4, 4.0]}]},
    # values converted to the canonical unit, and at, inside and beyond the plausible bounds
    {"measurements": [{"analyte": "cortisol", "value": 14.5, "unit": "ug/dL", "collected": "08:00"},
                      {"analyte": "glucose_fasting", "value": 95.0, "unit": "mg/dL"},
                      {"analyte": "testosterone", "value": 450.0, "unit": "ng/dL"},
                      {"analyte": "TSH", "value": 2000.0, "unit": "mIU/L"}]},
    {"measurements": [{"analyte": "glucose_fasting", "value": 80.0, "unit": "mmol/L"}]},
    {"measurements": [{"analyte": "glucose_fasting", "value": 0.5, "unit": "mmol/L"}]},
    {"measurements": [{"analyte": "glucose_fasting", "value": 0.49, "unit": "mmol/L"}]},
    {"measurements": [{"analyte": "glucose_fasting", "value": 80.01, "unit": "mmol/L"}]},
    {"measurements": [{"analyte": "TSH", "value": 2000.5, "unit": "mIU/L"}]},
    {"measurements": [{"analyte": "TSH", "value": 5e-324, "unit": "mIU/L"}]},
    # glycaemia below its channel's floor (read at it), censored below it, moved by context
    {"measurements": [{"analyte": "HbA1c", "value": 4.0, "unit": "%"},
                      {"analyte": "HbA1c", "value": "<4.5", "unit": "%", "day": 1},
                      {"analyte": "HbA1c", "value": "<6.0", "unit": "%", "day": 2},
                      {"analyte": "glucose_fasting", "value": 60.0, "unit": "mg/dL"}]},
    {"patient": {"sex": "F", "age": 40, "context": ["non-fasting"]},
     "measurements": [{"analyte": "glucose_fasting", "value": 90.0, "unit": "mg/dL"},
                      {"analyte": "glucose_fasting", "value": 60.0, "unit": "mg/dL", "day": 1},
                      {"analyte": "random glucose", "value": 50.0, "unit": "mg/dL"}]},
    {"measurements": [{"analyte": "cortisol", "value": 1e308, "unit": "ug/dL",
                       "collected": "08:00"}]},
    # collection date-times: two dates (days from their difference), one date, seconds, a day
    # beside a date, an offset, a space, an impossible date, an LMP date
    {"measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L",
                       "collected": "2024-03-01T09:00"},
                      {"analyte": "TSH", "value": 3.1, "unit": "mIU/L",
                       "collected": "2024-04-15T09:30:15"},
                      {"analyte": "ferritin", "value": 80.0, "unit": "ng/mL",
                       "collected": "2024-02-20T10:00"},
                      {"analyte": "FT4", "value": 14.0, "unit": "pmol/L", "day": 3,
                       "collected": "2024-05-01T09:00"}]},
    {"measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L",
                       "collected": "2024-03-01T09:00"},
                      {"analyte": "cortisol", "value": 400.0, "unit": "nmol/L",
                       "collected": "2024-03-01T08:00"}]},
    {"measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L",
                       "collected": "2024-03-01T09:00Z"}]},
    {"measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L",
                       "collected": "2024-03-01 09:00"}]},
    {"measurements": [{"analyte": "TSH", "value": 2.5, "unit": "mIU/L",
                       "collected": "2024-02-30T09:00"}]},
    {"patient": {"sex": "F", "age": 31, "menstrual_phase": "LMP 2024-02-20"},
     "measurements": [{"analyte": "LH", "value": 40.0, "unit": "IU/L",
                       "collected": "2024-03-05T09:00"},
                      {"analyte": "FSH", "value": 12.0, "unit": "IU/L",
                       "collected": "2024-03-05T09:00"}]},
    {"patient": {"sex": "F", "age": 31, "menstrual_phase": "LMP 2024-02-20"},
     "measurements": [{"analyte": "LH", "value": 40.0, "unit": "IU/L", "collected": "09:00"}]},
    # daily rhythms without their collection time (build_evidence's warning; read per state)
    {"measurements": [{"analyte": "cortisol", "value": 400.0, "unit": "nmol/L"},
                      {"analyte": "TSH", "value": 2.5, "unit": "mIU/L"},
                      {"analyte": "cortisol", "value": "<30", "unit": "nmol/L", "day": 2},
                      {"analyte": "ACTH", "value": 6.0, "unit": "pmol/L", "collected": "08:00"}]},
    {"patient": {"sex": "M", "age": 55, "context": ["night shift worker"]},
     "measurements": [{"analyte": "testosterone", "value": 12.0, "unit": "nmol/L"},
                      {"analyte": "cortisol", "value": 250.0, "unit": "nmol/L",
                       "specimen": "saliva"},
                      {"analyte": "ferritin", "value": 80.0, "unit": "ng/mL"}]},
]


def dated(datas: list[dict], every: int = 2) -> list[dict]:
    """Every ``every``-th case with its results' collection times written as ISO date-times
    (a lab export's form) and their days as the dates' differences; in every third such case
    one result keeps its day beside its date (the day wins), and one is dated on a day of its
    own (an extra distinct date)."""
    import datetime

    out = copy.deepcopy(datas)
    start = datetime.date(2024, 2, 27)
    for k, d in enumerate(out[::every]):
        for j, m in enumerate(d["measurements"]):
            day = m.get("day", 0)
            keep_day = k % 3 == 0 and j == 0
            if not keep_day:
                m.pop("day", None)
            when = start + datetime.timedelta(days=int(day) + (40 if keep_day else 0))
            m["collected"] = f"{when.isoformat()}T{m.get('collected', '09:00')}"
    return out


def untimed(datas: list[dict], every: int = 3) -> list[dict]:
    """Every ``every``-th case with the collection time removed from its results with a
    daily rhythm (archives often lack it)."""
    out = copy.deepcopy(datas)
    for d in out[::every]:
        for m in d["measurements"]:
            if m["analyte"] in ("cortisol", "acth", "testosterone", "free_testosterone"):
                m.pop("collected", None)
    return out


def _full(model, data):
    try:
        return build_evidence(model, read_case(copy.deepcopy(data), source_name="t"))
    except CaseError:
        return None


def _check(model, datas):
    """Each accepted case equals the full path; returns (accepted, full evidences)."""
    reader = PlainReader(model)
    taken, full = [], []
    for data in datas:
        ev = _full(model, data)
        if not reader.add(copy.deepcopy(data)):
            continue
        label = str(data.get("id"))[:40]
        assert ev is not None, label
        plain = reader.evidences[len(full)]
        assert plain.case_id == ev.case_id and plain.covariates == ev.covariates, label
        assert np.array_equal(plain.present, ev.present), label
        assert np.array_equal(plain.absent, ev.absent), label
        assert plain.context_signature == ev.context_signature, label
        assert plain.warnings == ev.warnings and plain.not_used == ev.not_used, label
        assert plain.cause_scale is None and ev.cause_scale is None or np.array_equal(
            plain.cause_scale, ev.cause_scale), label
        assert reader.n_used[-1] == ev.n_measurements, label
        assert reader.axes[-1] == {b.axis for b in ev.blocks}, label
        taken.append(data)
        full.append(ev)
    a, b = reader.flat(), Flat.of(full)
    for f in fields(Flat):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype and np.array_equal(x, y), f.name
    if full:
        p, lev, exact = posterior_rows(model, reader.evidences, a)
        q, lev_q = posterior_batch(model, full)
        assert np.array_equal(p[~exact], q[~exact]) and np.array_equal(lev[~exact], lev_q[~exact])
    return taken, full


def test_plain_reader_equals_the_full_path_on_simulated_cases(model):
    sims = dated(untimed([json.loads(json.dumps(case_to_dict(s.case)))
                          for s in simulate(model, 150, seed=21)]))
    # censored values, repeats, clock times, older women (context from age) among them,
    # daily rhythms without their times, and collection date-times
    assert any(isinstance(m["value"], str) for d in sims for m in d["measurements"])
    taken, full = _check(model, sims)
    assert len(taken) == len(sims)
    assert sum(any("no collection time" in w for w in ev.warnings) for ev in full) >= 10
    assert sum("T" in m.get("collected", "") for d in sims for m in d["measurements"]) > 300
    # the dates' differences are the days (a repeat 48 days later is on day 48)
    assert any(b.day.max() > 30 for ev in full for b in ev.blocks)


def test_plain_reader_declines_what_the_full_reader_reports(model):
    import yaml

    examples = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in EXAMPLES]
    datas = [copy.deepcopy(BASE), *examples]
    for variant in VARIANTS:
        for k in range(3):
            data = copy.deepcopy(BASE)
            data["measurements"][k].update(variant)
            data["id"] = f"result {k} {variant!r}"
            datas.append(data)
    for variant in CASE_VARIANTS:
        data = copy.deepcopy(BASE)
        data.update(variant)
        datas.append(data)
    taken, full = _check(model, datas)
    # the base case and many variants are plain; the rest went to the full reader
    assert taken[0] == BASE
    assert 30 < len(taken) < len(datas) - 40, (len(taken), len(datas))


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_a_chunk_gives_the_same_table_whichever_reader_reads_it(model, monkeypatch, kind):
    """The same table and errors from JSON lines or CSV rows read at once
    (PlainReader.add_texts, add_rows), read one by one from parsed data (PlainReader.add),
    or by the full reader alone."""
    from neb_bayes.batch.csv_cases import plan_header  # noqa: F401 - CSV items below

    sims = untimed([case_to_dict(s.case) for s in simulate(model, 60, seed=22)])
    if kind == "jsonl":
        # and the variants with date-times (an LMP date beside dated results: the full
        # reader's)
        sims = dated(sims) + [
            dict(copy.deepcopy(BASE), id=f"dated-{k}", **copy.deepcopy(v))
            for k, v in enumerate(CASE_VARIANTS)
            if "2024-" in json.dumps(v) and "02-30" not in json.dumps(v)]
        lines = [json.dumps(d) for d in sims]
        lines[5:5] = [b for b, _ in BAD_CASES]
        items = [RawItem(f"in.jsonl:{i + 1}", "json", line) for i, line in enumerate(lines)]
    else:
        items = _csv_items(sims)
    task = ChunkTask(index=0, first_item=0, items=items)
    calls = {"add_texts": 0, "add_rows": 0, "add": 0}

    def spy(name):
        method = getattr(PlainReader, name)

        def counted(self, data):
            out = method(self, data)
            calls[name] += int(np.sum(out))
            return out
        return counted

    for name in calls:
        monkeypatch.setattr(PlainReader, name, spy(name))
    at_once = process_chunk(task)
    assert sum(calls.values()) >= 50
    assert calls["add_texts" if kind == "jsonl" else "add_rows"] >= 45
    for name in ("add_texts", "add_rows"):
        monkeypatch.setattr(PlainReader, name, lambda self, items: np.zeros(len(items), bool))
    one_by_one = process_chunk(task)
    monkeypatch.setattr(PlainReader, "add", lambda self, data: False)
    without = process_chunk(task)
    for other in (one_by_one, without):
        assert at_once.table.equals(other.table)
        assert at_once.errors == other.errors
    assert at_once.table.num_rows == len(sims)


def _csv_items(sims):
    """The simulated cases as wide-CSV batch items (one column per analyte and unit)."""
    import csv
    import io

    from neb_bayes.batch.inputs import iter_items

    columns: dict[str, int] = {}
    rows = []
    for d in sims:
        row = {"id": d["id"], "sex": d["patient"].get("sex") or "",
               "age": d["patient"].get("age", "")}
        for m in d["measurements"]:
            name = f"{m['analyte']}_{m['unit'].replace('/', '_per_').replace('%', 'pct')}"
            if m.get("specimen"):
                name += f"__{m['specimen']}"
            if m.get("collected"):
                name += "__t" + m["collected"].replace(":", "")
            if m.get("day"):
                name += f"__d{m['day']:g}"
            row.setdefault(name, m["value"])
            columns[name] = 1
        rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["id", "sex", "age", *columns], restval="")
    writer.writeheader()
    writer.writerows(rows)
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "in.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    return list(iter_items([str(path)]))


def test_the_fast_evidence_of_a_plain_case_is_an_evidence_with_every_field():
    """The plain reader's evidence maker (no per-field checked assignment) gives the same
    object as ``Evidence(...)``: every field set, equal, frozen, with the same signature."""
    from dataclasses import FrozenInstanceError

    from neb_bayes.batch.plain import _evidence
    from neb_bayes.evidence import Evidence
    from neb_bayes.model.prior import Covariates

    values = dict(case_id="c1", covariates=Covariates("F", 40.0), present=np.array([2]),
                  absent=np.array([0, 5]), not_used=(), warnings=("w",), lat_shift={},
                  context=None, cause_scale=None)
    fast, slow = _evidence(**values), Evidence(blocks=(), adjustments=(), **values)
    assert set(vars(fast)) == {f.name for f in fields(Evidence)}
    for f in fields(Evidence):
        a, b = getattr(fast, f.name), getattr(slow, f.name)
        assert (np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b), f.name
    assert fast.context_signature == slow.context_signature
    with pytest.raises(FrozenInstanceError):
        fast.case_id = "other"


def test_joined_files_with_byte_order_marks_read_as_without(model, tmp_path):
    """Two JSON Lines files written with a byte order mark, joined: every line of both is
    read (the mark at the start of the second file's first line skipped, not an error), by
    the batch's readers at once, one by one and by the full reader alike."""
    from neb_bayes.batch.inputs import iter_items, read_spans

    sims = [json.dumps(case_to_dict(s.case)) for s in simulate(model, 6, seed=23)]
    plain_file, marked_file = tmp_path / "plain.jsonl", tmp_path / "marked.jsonl"
    plain_file.write_text("".join(t + "\n" for t in sims), encoding="utf-8")
    bom = b"\xef\xbb\xbf"
    marked_file.write_bytes(b"".join(bom + "".join(t + "\n" for t in part).encode()
                                     for part in (sims[:3], sims[3:])))
    tables = {}
    for name, path in (("plain", plain_file), ("marked", marked_file)):
        for spans in (False, True):
            items = list(iter_items([path], spans=spans))
            items = read_spans(items) if spans else items
            result = process_chunk(ChunkTask(index=0, first_item=0, items=items))
            assert result.errors == [], result.errors
            tables[name, spans] = result.table
    assert tables["plain", False].num_rows == len(sims)
    reference = tables["plain", False].drop(["source"])
    for table in tables.values():
        assert table.drop(["source"]).equals(reference)


def _rows_by_every_reader(model, monkeypatch, cases: list[dict]) -> list[dict]:
    """``cases``' result rows, the same whether the chunk is read at once, one case at a time
    or by the full reader (asserted), with every case read by the plain reader."""
    taken, _ = _check(model, cases)
    assert len(taken) == len(cases)       # read by the plain reader, as build_evidence reads them
    items = [RawItem(f"in.jsonl:{i + 1}", "json", json.dumps(d)) for i, d in enumerate(cases)]
    task = ChunkTask(index=0, first_item=0, items=items)
    at_once = process_chunk(task)
    monkeypatch.setattr(PlainReader, "add_texts", lambda self, items: np.zeros(len(items), bool))
    one_by_one = process_chunk(task)
    monkeypatch.setattr(PlainReader, "add", lambda self, data: False)
    without = process_chunk(task)
    for other in (one_by_one, without):
        assert at_once.table.equals(other.table)
    return at_once.table.to_pylist()


def _physiology_reads_as_without(rows: list[dict], conditions, pairs) -> None:
    """Each ``(k, j)``: row ``j`` (a listed physiological symptom) reads as row ``k`` (without
    it), with one more entry not used."""
    for k, j in pairs:
        assert [rows[j][c] for c in conditions] == [rows[k][c] for c in conditions]
        assert rows[j]["n_not_used"] == rows[k]["n_not_used"] + 1


def test_a_menopause_stages_listed_cycle_disturbance_reads_as_the_single_case_path(
        model, monkeypatch):
    """A listed amenorrhoea or oligomenorrhoea of a peri- or postmenopausal woman is
    physiology (not evidence, listed as not used) in the batch as in build_evidence; a
    premenopausal woman's amenorrhoea is evidence in both."""
    cases = []
    for status, age in (("postmenopausal", 55), ("perimenopausal", 48), ("premenopausal", 30)):
        for symptoms in ({}, {"present": ["amenorrhea"]}, {"absent": ["oligomenorrhea"]}):
            data = copy.deepcopy(BASE)
            data["id"] = f"{status} {symptoms}"
            data["patient"] = {"sex": "F", "age": age, "menopausal_status": status}
            data["symptoms"] = {"present": ["fatigue", *symptoms.get("present", [])],
                                "absent": symptoms.get("absent", [])}
            cases.append(data)
    rows = _rows_by_every_reader(model, monkeypatch, cases)
    conditions = model.conditions
    # peri- and postmenopausal: the same as without
    _physiology_reads_as_without(rows, conditions, [(0, 1), (0, 2), (3, 4), (3, 5)])
    assert [rows[7][c] for c in conditions] != [rows[6][c] for c in conditions]


def test_pregnancys_physiological_symptoms_read_as_the_single_case_path(model, monkeypatch):
    """A pregnant woman's listed amenorrhoea, and her nausea in the first trimester, are
    physiology (not evidence, listed as not used) in the batch as in build_evidence; nausea
    in the third trimester is evidence in both."""
    cases = []
    for week in (10, 32):
        for present in ([], ["amenorrhea"], ["nausea"]):
            data = copy.deepcopy(BASE)
            data["id"] = f"week {week} {present}"
            data["patient"] = {"sex": "F", "age": 29, "pregnant": True, "gestational_week": week}
            data["symptoms"] = {"present": ["fatigue", *present], "absent": []}
            cases.append(data)
    rows = _rows_by_every_reader(model, monkeypatch, cases)
    conditions = model.conditions
    # week 10: amenorrhoea, nausea; week 32: amenorrhoea
    _physiology_reads_as_without(rows, conditions, [(0, 1), (0, 2), (3, 4)])
    assert [rows[5][c] for c in conditions] != [rows[3][c] for c in conditions]


def _log_sensitive_values(n: int = 12) -> list[float]:
    """Values as a laboratory writes them (three decimals) whose logarithm by ``math.log``
    differs in the last bit from numpy's on this machine (none where numpy takes the C
    library's, e.g. without AVX-512: the readers must agree there too)."""
    import math

    rng = np.random.default_rng(5)
    x = np.round(np.exp(rng.uniform(np.log(0.05), np.log(90.0), 100_000)), 3)
    sensitive = x[np.log(x) != np.fromiter(map(math.log, x.tolist()), float, x.size)]
    return np.unique(sensitive)[:n].tolist()


def test_every_reader_takes_the_same_logarithm_of_a_value(model):
    """The case reader (one value at a time), the plain reader's one-case path and its column
    reader (a chunk's values at once) give the same rows bit for bit, also for values whose
    logarithm depends on how it is computed."""
    values = _log_sensitive_values() or [2.5]
    cases = []
    for k, v in enumerate(values):
        data = copy.deepcopy(BASE)
        data["id"] = f"log-{k}"
        data["measurements"][0]["value"] = v
        data["measurements"][1]["value"] = 14.0 + v
        cases.append(data)
    taken, full = _check(model, cases)            # the one-case path against the case reader
    assert len(taken) == len(cases)
    reader = PlainReader(model)
    assert reader.add_texts([json.dumps(d) for d in cases]).all()
    a, b = reader.flat(), Flat.of(full)
    for f in fields(Flat):
        assert np.array_equal(getattr(a, f.name), getattr(b, f.name)), f.name
