"""Reading valid cases: formats, names, censoring, times, items not used, invariances."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from neb_bayes.case import Case, CaseError, NotUsed, iter_cases, read_case, read_case_text

EXAMPLES = Path(__file__).resolve().parents[2] / "cases" / "examples"

CASE_YAML = """\
case_format: 1
id: demo-hashimoto-01
patient:
  sex: F
  age: 46
  pregnant: false
  menopausal_status: premenopausal
  menstrual_phase: follicular (day 9)
  bmi: 24.1
  medications:
    - levothyroxine 100 µg daily
    - {name: biotin, dose_mg_per_day: 10, last_dose: "07:00"}
  context:
    - night_shift_worker
measurements:
  - analyte: TSH
    specimen: serum
    value: 38.5
    unit: mIU/L
    collected: "08:40"
    day: 0
    method: immunoassay
    reference_interval: [0.4, 4.0]
    note: free text
  - analyte: free T4
    value: "<5"
    unit: pmol/L
  - analyte: TPO antibodies
    value: ">1000"
    unit: IU/mL
  - analyte: Cortisol
    specimen: saliva
    value: 0.12
    unit: µg/dL
    collected: "23:00"
symptoms:
  present: [fatigue, dry skin, Cold-Intolerance]
  absent: [palpitations, tremor]
  unknown: [hoarseness]
"""


def _case(*measurements: dict, **extra: object) -> dict:
    return {"id": "t", "measurements": list(measurements), **extra}


def _one(measurement: dict, **extra: object) -> Case:
    return read_case(_case(measurement, **extra))


def _strip_source(case: Case) -> Case:
    return dataclasses.replace(case, source=None)


# ------------------------------------------------------------------------------ formats
def test_yaml_and_json_read_to_the_same_case(tmp_path: Path) -> None:
    data = yaml.safe_load(CASE_YAML)
    (tmp_path / "c.yaml").write_text(CASE_YAML, encoding="utf-8")
    (tmp_path / "c.json").write_text(json.dumps(data), encoding="utf-8")
    from_yaml = read_case(tmp_path / "c.yaml")
    from_json = read_case(tmp_path / "c.json")
    assert _strip_source(from_yaml) == _strip_source(from_json)
    assert _strip_source(from_yaml) == _strip_source(read_case(data))
    assert from_yaml.source == str(tmp_path / "c.yaml")


def test_the_spec_example_reads_fully() -> None:
    case = read_case_text(CASE_YAML, source_name="spec")
    assert case.id == "demo-hashimoto-01" and case.source == "spec"
    p = case.patient
    assert (p.sex, p.age, p.pregnant, p.menopausal_status, p.bmi) == (
        "F",
        46.0,
        False,
        "premenopausal",
        24.1,
    )
    assert p.menstrual_phase == "follicular (day 9)"
    assert p.menstrual is not None and (p.menstrual.phase, p.menstrual.cycle_day) == (
        "follicular",
        9,
    )
    assert [m.name for m in p.medications] == ["levothyroxine 100 µg daily", "biotin"]
    assert p.medications[1].dose_mg_per_day == 10 and p.medications[1].last_dose == "07:00"
    assert p.context == ("night_shift_worker",)
    tsh, ft4, tpo, cortisol = case.measurements
    assert (tsh.analyte, tsh.specimen, tsh.value, tsh.censor) == ("tsh", "serum", 38.5, "none")
    assert (tsh.hour, tsh.day, tsh.method, tsh.note) == (
        8 + 40 / 60,
        0.0,
        "immunoassay",
        "free text",
    )
    assert tsh.reference_interval == (0.4, 4.0)
    assert (ft4.analyte, ft4.specimen, ft4.censor, ft4.value, ft4.raw_value) == (
        "ft4",
        "serum",
        "left",
        5.0,
        "<5",
    )
    assert (tpo.analyte, tpo.censor, tpo.value) == ("tpo_ab", "right", 1000.0)
    assert (cortisol.specimen, cortisol.hour) == ("saliva", 23.0)
    assert cortisol.value == pytest.approx(0.12 * 27.589, rel=1e-4)
    assert case.symptoms.present == {"fatigue", "dry_skin", "cold_intolerance"}
    assert case.symptoms.absent == {"palpitations", "tremor"}
    assert case.symptoms.unknown == {"hoarseness"}
    assert case.not_used == () and case.warnings == ()


def test_every_example_case_reads() -> None:
    files = sorted(p for p in EXAMPLES.glob("*.yaml") if p.name != "expectations.yaml")
    assert files
    for file in files:
        case = read_case(file)
        assert case.id and (case.measurements or case.symptoms.present)


def test_integer_id_becomes_text() -> None:
    assert read_case({"id": 17, "symptoms": {"present": ["fatigue"]}}).id == "17"


def test_dict_input_is_not_changed() -> None:
    data = yaml.safe_load(CASE_YAML)
    before = copy.deepcopy(data)
    read_case(data)
    assert data == before


# ------------------------------------------------------------------------------ names
@pytest.mark.parametrize(
    ("name", "aid"),
    [
        ("FT4", "ft4"),
        ("free T4", "ft4"),
        ("Free-T4", "ft4"),
        ("free_t4", "ft4"),
        ("Free thyroxine (FT4)", "ft4"),
        ("3024-7", "ft4"),
        ("LOINC:3016-3", "tsh"),
        ("Thyrotropin", "tsh"),
        ("T4", "tt4"),
        ("T3", "tt3"),
        ("rT3", "rt3"),
        ("anti-TPO", "tpo_ab"),
        ("TRAb", "trab"),
        ("DHEA-S", "dheas"),
        ("17-OHP", "ohp17"),
        ("oestradiol", "estradiol"),
        ("A1C", "hba1c"),
        ("FPG", "glucose_fasting"),
        ("OGTT 2h glucose", "glucose_ogtt_2h"),
        ("PRA", "pra"),
        ("Na", "sodium"),
        ("1 mg DST", "cortisol_dst"),
        ("cortisol post dexamethasone", "cortisol_dst"),
        ("cortisol 30 min after synacthen", "cortisol_acth_stim_30"),
        ("Cortisol 60 min after cosyntropin", "cortisol_acth_stim_60"),
        ("UFC", "ufc"),
        ("beta-hCG", "hcg"),
        ("PEG recovery", "prolactin_peg_recovery"),
        ("monomeric prolactin", "prolactin_monomeric"),
        ("SHBG", "shbg"),
    ],
)
def test_analyte_names_synonyms_and_loinc(name: str, aid: str) -> None:
    from neb_bayes.vocab import lookup_analyte

    analyte = lookup_analyte(name)
    assert analyte is not None and analyte.id == aid


def test_specimen_and_unit_route_cortisol_to_ufc_and_renin_to_pra() -> None:
    case = read_case(
        _case(
            {"analyte": "cortisol", "specimen": "24-hour urine", "value": 150, "unit": "nmol/24h"},
            {"analyte": "cortisol", "value": 80, "unit": "µg/24 h"},
            {"analyte": "urinary free cortisol", "specimen": "urine", "value": 80, "unit": "µg/d"},
            {"analyte": "renin", "value": 2.5, "unit": "ng/mL/h"},
            {"analyte": "renin", "value": 20, "unit": "mIU/L"},
        )
    )
    got = [(m.analyte, m.specimen) for m in case.measurements]
    assert got == [("ufc", "urine_24h")] * 3 + [("pra", "plasma"), ("renin", "plasma")]
    assert case.measurements[1].value == pytest.approx(80 * 2.7589, rel=1e-4)


def test_implied_and_generic_specimens() -> None:
    case = read_case(
        _case(
            {"analyte": "late-night salivary cortisol", "value": 3.0, "unit": "nmol/L"},
            {"analyte": "2142-8", "value": 3.0, "unit": "nmol/L"},
            {"analyte": "HbA1c", "specimen": "blood", "value": 6.1, "unit": "%"},
            {"analyte": "TSH", "specimen": "blood", "value": 1.0, "unit": "mIU/L"},
            {"analyte": "ACTH", "specimen": "EDTA plasma", "value": 20, "unit": "pg/mL"},
            {"analyte": "HbA1c", "value": 40, "unit": "mmol/mol"},
        )
    )
    assert [m.specimen for m in case.measurements] == [
        "saliva",
        "saliva",
        "whole_blood",
        "serum",
        "plasma",
        "whole_blood",
    ]


# ------------------------------------------------------------------------------ values
@pytest.mark.parametrize(
    ("raw", "censor", "limit"),
    [
        ("<0.01", "left", 0.01),
        ("< 0.8", "left", 0.8),
        (">1000", "right", 1000.0),
        ("≤0.05", "left", 0.05),
        ("≥ 75", "right", 75.0),
        ("<=2", "left", 2.0),
        (">= 3.5", "right", 3.5),
        ("2.5", "none", 2.5),
        (" 7 ", "none", 7.0),
        ("1e-2", "none", 0.01),
    ],
)
def test_censored_strings(raw: str, censor: str, limit: float) -> None:
    m = _one({"analyte": "TSH", "value": raw, "unit": "mIU/L"}).measurements[0]
    assert (m.censor, m.value, m.raw_value) == (censor, pytest.approx(limit), raw)


def test_censored_limit_is_converted() -> None:
    m = _one({"analyte": "FT4", "value": "<0.3", "unit": "ng/dL"}).measurements[0]
    assert m.censor == "left" and m.value == pytest.approx(0.3 * 12.872, rel=1e-4)
    assert m.unit == "ng/dL"


def test_zero_is_left_censored_at_the_detection_limit() -> None:
    case = _one({"analyte": "TSH", "value": 0, "unit": "mIU/L"})
    m = case.measurements[0]
    assert (m.censor, m.value, m.raw_value) == ("left", 0.01, 0)
    assert case.warnings == ("measurements[0]: 0 read as below the detection limit 0.01 mIU/L",)


def test_zero_uses_the_method_and_specimen_limit() -> None:
    case = read_case(
        _case(
            {"analyte": "estradiol", "value": 0, "unit": "pmol/L", "method": "LC-MS/MS"},
            {"analyte": "estradiol", "value": 0.0, "unit": "pg/mL"},
            {"analyte": "cortisol", "specimen": "saliva", "value": "0", "unit": "nmol/L"},
            {"analyte": "TSH", "value": "<0", "unit": "mIU/L"},
        )
    )
    assert [(m.value, m.censor) for m in case.measurements] == [
        (4.0, "left"),
        (37.0, "left"),
        (1.5, "left"),
        (0.01, "left"),
    ]
    assert case.warnings[1] == (
        "measurements[1]: 0 read as below the detection limit 10.1 pg/mL (37 pmol/L)"
    )


def test_implausible_value_for_the_unit_is_a_warning() -> None:
    case = _one({"analyte": "FT4", "value": 15, "unit": "ng/dL"})
    assert case.warnings == (
        "measurements[0]: FT4 15 ng/dL = 193 pmol/L is implausible; check the unit",
    )
    assert case.measurements[0].value == pytest.approx(193.08, rel=1e-3)


@pytest.mark.parametrize("ri", [[None, 35], [0.4, None]])
def test_one_sided_reference_interval_is_accepted_and_listed_as_not_used(ri) -> None:
    case = _one({"analyte": "TSH", "value": 1.2, "unit": "mIU/L", "reference_interval": ri})
    assert case.measurements[0].reference_interval is None
    assert [n.item for n in case.not_used] == ["measurements[0].reference_interval"]


@pytest.mark.parametrize("ri", [[None, None], [None, -1], [1, 2, 3]])
def test_bad_reference_interval_says_what_is_expected(ri) -> None:
    with pytest.raises(CaseError) as err:
        _one({"analyte": "TSH", "value": 1.2, "unit": "mIU/L", "reference_interval": ri})
    assert "measurements[0].reference_interval" in str(err.value)
    assert "[null, 35]" in str(err.value) or ">= 0" in str(err.value)


def test_reference_interval_is_converted() -> None:
    m = _one(
        {"analyte": "FT4", "value": 1.2, "unit": "ng/dL", "reference_interval": [0.8, 1.8]}
    ).measurements[0]
    assert m.reference_interval == pytest.approx((0.8 * 12.872, 1.8 * 12.872), rel=1e-4)
    hba1c = _one(
        {"analyte": "HbA1c", "value": 6.0, "unit": "%", "reference_interval": [0, 5.6]}
    ).measurements[0]
    assert hba1c.reference_interval == pytest.approx((0.0, (5.6 - 2.15) * 10.929))


# ------------------------------------------------------------------------------ time
@pytest.mark.parametrize(
    ("collected", "hour"),
    [
        ("24:00", 0.0),
        ("00:00", 0.0),
        ("08:30", 8.5),
        ("8:30", 8.5),
        ("23:59", 23 + 59 / 60),
        ("07:15:36", 7 + 15 / 60 + 36 / 3600),
        ("2024-03-01T08:40:00", 8 + 40 / 60),
        ("2024-03-01T23:00:00Z", 23.0),
        ("2024-03-01 06:30", 6.5),
        ("2024-03-01T08:00:00+02:00", 8.0),
    ],
)
def test_collected_becomes_hour_of_day(collected: str, hour: float) -> None:
    m = _one({"analyte": "cortisol", "value": 400, "unit": "nmol/L", "collected": collected})
    assert m.measurements[0].hour == pytest.approx(hour)


def test_unquoted_yaml_clock_time_is_not_base_60() -> None:
    text = (
        "id: t\nmeasurements:\n  - {analyte: cortisol, value: 400, unit: nmol/L, collected: 8:40}\n"
    )
    assert read_case_text(text).measurements[0].hour == pytest.approx(8 + 40 / 60)
    text = (
        "id: t\nmeasurements:\n  - {analyte: cortisol, value: 400, unit: nmol/L,\n"
        "      collected: 2024-03-01T08:40:00}\n"
    )
    assert read_case_text(text).measurements[0].hour == pytest.approx(8 + 40 / 60)


def test_dates_give_days_when_day_is_not_written() -> None:
    case = read_case(
        _case(
            {"analyte": "TSH", "value": 6, "unit": "mIU/L", "collected": "2024-03-01T08:00"},
            {"analyte": "TSH", "value": 7, "unit": "mIU/L", "collected": "2024-04-12T09:00"},
            {
                "analyte": "TSH",
                "value": 8,
                "unit": "mIU/L",
                "collected": "2024-04-12T09:00",
                "day": 3,
            },
            {"analyte": "TSH", "value": 9, "unit": "mIU/L", "day": 2},
        )
    )
    assert [m.day for m in case.measurements] == [0.0, 42.0, 3.0, 2.0]


# ------------------------------------------------------------------------------ not used
def test_items_not_understood_are_listed_with_the_reason() -> None:
    case = read_case(
        {
            "id": "t",
            "history": "long story",
            "patient": {
                "sex": "female",
                "menstrual_phase": "it varies",
                "hobby": "chess",
                "menopausal_status": "menopausal-ish",
            },
            "measurements": [
                {"analyte": "TSH", "value": 2, "unit": "mIU/L", "flag": "H"},
                {"analyte": "XYZ", "value": 4, "unit": "mg/L"},
                {"analyte": "HOMA-IR", "value": 3.1},
                {"analyte": "TSH", "specimen": "cerebrospinal fluid", "value": 2, "unit": "mIU/L"},
                {"analyte": "TSH", "specimen": "24h urine", "value": 2, "unit": "mIU/L"},
            ],
            "symptoms": {"present": ["fatigue", "feeling blue"], "maybe": ["acne"]},
        }
    )
    assert case.patient.sex == "F" and case.patient.menstrual is None
    items = {n.item: n.reason for n in case.not_used}
    assert set(items) == {
        "history",
        "patient.hobby",
        "patient.menopausal_status",
        "patient.menstrual_phase",
        "measurements[0].flag",
        "measurements[1]",
        "measurements[2]",
        "measurements[3]",
        "measurements[4]",
        "symptoms.present[1]",
        "symptoms.maybe",
    }
    assert items["measurements[1]"] == "unknown analyte 'XYZ'"
    assert items["measurements[2]"] == "calculated index; give fasting glucose and insulin instead"
    assert items["symptoms.present[1]"] == "unknown symptom 'feeling blue'"
    assert "unknown specimen 'cerebrospinal fluid'" in items["measurements[3]"]
    assert "not modelled for tsh" in items["measurements[4]"]
    assert "it varies" in items["patient.menstrual_phase"]
    assert [m.index for m in case.measurements] == [0]
    assert all(isinstance(n, NotUsed) for n in case.not_used)


def test_generic_glucose_is_read_as_random_with_a_warning() -> None:
    case = _one({"analyte": "glucose", "value": 99, "unit": "mg/dL"})
    assert case.measurements[0].analyte == "glucose_random"
    assert case.warnings and "random (non-fasting)" in case.warnings[0]


def test_gestational_week_without_pregnancy_is_a_warning() -> None:
    case = read_case(
        {
            "id": 1,
            "patient": {"sex": "F", "pregnant": False, "gestational_week": 10},
            "symptoms": {"present": ["nausea"]},
        }
    )
    assert case.patient.gestational_week == 10
    assert case.warnings[0].startswith("patient.gestational_week:")


def test_medication_mapping_keeps_every_key_for_the_context_reader() -> None:
    med = {"name": "prednisolone", "status": "stopped", "stopped_days_ago": 28}
    case = read_case(
        {"id": 1, "patient": {"medications": [med]}, "symptoms": {"present": ["fatigue"]}}
    )
    assert case.patient.medications[0].raw == med and case.not_used == ()


# ------------------------------------------------------------------------------ symptoms
def test_symptom_synonyms_and_states() -> None:
    case = read_case(
        {
            "id": 1,
            "symptoms": {
                "present": [
                    "Tiredness",
                    "feeling_cold",
                    "goitre",
                    "ED",
                    "diarrhoea",
                    "oligomenorrhoea",
                    "weight gain",
                    "fatigue",
                ],
                "absent": ["Hot Flushes"],
                "unknown": ["tired", "hoarse voice"],
            },
        }
    )
    assert case.symptoms.present == {
        "fatigue",
        "cold_intolerance",
        "goiter",
        "erectile_dysfunction",
        "diarrhea",
        "oligomenorrhea",
        "weight_gain",
    }
    assert case.symptoms.absent == {"hot_flashes"}
    assert case.symptoms.unknown == {"hoarseness"}
    assert any("symptoms.unknown[0]" in w for w in case.warnings)


MEASUREMENTS = [
    {"analyte": "TSH", "value": 5.5, "unit": "mIU/L", "collected": "08:00"},
    {"analyte": "FT4", "value": "<0.4", "unit": "ng/dL"},
    {"analyte": "cortisol", "value": 0, "unit": "µg/dL", "collected": "24:00"},
    {"analyte": "HbA1c", "value": 6.4, "unit": "%"},
    {"analyte": "prolactin", "value": 30, "unit": "ng/mL", "day": 2},
    {"analyte": "XYZ", "value": 1, "unit": "mg/L"},
    {"analyte": "TSH", "value": 6.1, "unit": "µIU/mL", "day": 30},
    {"analyte": "insulin", "value": 12, "unit": "µU/mL"},
]
SYMPTOMS = {
    "present": ["fatigue", "goitre", "dry skin", "weight gain"],
    "absent": ["tremor", "palpitations"],
    "unknown": ["hoarseness", "acne"],
}


def _normalised(case: Case) -> tuple:
    ms = sorted(
        (m.analyte, m.specimen, m.value, m.censor, m.hour, m.day, m.unit) for m in case.measurements
    )
    return ms, case.symptoms, sorted(w.split(":", 1)[1] for w in case.warnings)


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(range(len(MEASUREMENTS))),
    present=st.permutations(SYMPTOMS["present"]),
    absent=st.permutations(SYMPTOMS["absent"]),
    unknown=st.permutations(SYMPTOMS["unknown"]),
)
def test_order_of_measurements_and_symptoms_does_not_matter(
    order: list[int], present: list[str], absent: list[str], unknown: list[str]
) -> None:
    reference = read_case({"id": 1, "measurements": MEASUREMENTS, "symptoms": SYMPTOMS})
    shuffled = read_case(
        {
            "id": 1,
            "measurements": [MEASUREMENTS[i] for i in order],
            "symptoms": {"present": present, "absent": absent, "unknown": unknown},
        }
    )
    assert _normalised(shuffled) == _normalised(reference)
    by_index = {m.index: m.analyte for m in shuffled.measurements}
    assert all(
        by_index[k] == shuffled.measurements[j].analyte for j, k in enumerate(sorted(by_index))
    )


# ------------------------------------------------------------------------------ batches
def test_iter_cases_reads_json_lines_and_keeps_going(tmp_path: Path) -> None:
    good = [json.dumps({"id": x, "symptoms": {"present": ["fatigue"]}}) for x in "ab"]
    lines = tmp_path / "batch.jsonl"
    lines.write_text(f"{good[0]}\n\n{{broken\n[1, 2]\n{good[1]}\n", encoding="utf-8")
    items = list(iter_cases(lines))
    assert [name for name, _ in items] == [f"{lines}:1", f"{lines}:3", f"{lines}:4", f"{lines}:5"]
    assert isinstance(items[0][1], dict) and isinstance(items[3][1], dict)
    assert isinstance(items[1][1], CaseError) and items[1][1].errors[0].path == "<file>"
    assert isinstance(items[2][1], CaseError)
    assert read_case(items[3][1], source_name=items[3][0]).id == "b"


def test_iter_cases_skips_a_byte_order_mark_at_the_start_of_any_line(tmp_path: Path) -> None:
    """Two JSON Lines files written with a byte order mark, joined: the second's mark starts
    a line in the middle and is skipped as the first's is (as the batch reads them)."""
    good = [json.dumps({"id": x, "symptoms": {"present": ["fatigue"]}}) for x in "abc"]
    lines = tmp_path / "joined.jsonl"
    lines.write_text(f"\ufeff{good[0]}\n{good[1]}\n\ufeff{good[2]}\n\ufeff\n", encoding="utf-8")
    items = list(iter_cases(lines))
    assert [name for name, _ in items] == [f"{lines}:{n}" for n in (1, 2, 3)]
    assert [data["id"] for _, data in items] == ["a", "b", "c"]


def test_iter_cases_reads_a_directory_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("id: b\nsymptoms: {present: [fatigue]}\n", encoding="utf-8")
    (tmp_path / "a.json").write_text('{"id": "a"}', encoding="utf-8")
    (tmp_path / "c.yml").write_text("id: [\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("not a case", encoding="utf-8")
    items = list(iter_cases(tmp_path))
    assert [Path(name).name for name, _ in items] == ["a.json", "b.yaml", "c.yml"]
    assert isinstance(items[2][1], CaseError)
    assert items[1][1] == {"id": "b", "symptoms": {"present": ["fatigue"]}}


def test_iter_cases_reads_a_single_file(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text("id: one\n", encoding="utf-8")
    assert list(iter_cases(tmp_path / "one.yaml")) == [(str(tmp_path / "one.yaml"), {"id": "one"})]


# ------------------------------------------------------------------------------ speed
def test_a_warm_read_opens_no_file_and_parses_no_vocabulary(monkeypatch) -> None:
    """The vocabularies, unit table and context rules are loaded once per process: a warm
    read of an eight-measurement case opens nothing.  Its time is a benchmark
    (``benchmarks/bench_single.py``), not a test."""
    import builtins
    import io

    data = {
        "id": 1,
        "patient": {"sex": "F", "age": 40},
        "measurements": [m for m in MEASUREMENTS if m["analyte"] != "XYZ"]
        + [{"analyte": "LH", "value": 5, "unit": "IU/L"}],
        "symptoms": SYMPTOMS,
    }
    assert len(data["measurements"]) == 8
    first = read_case(data)

    def opened(*_args, **_kwargs):
        raise AssertionError("a warm read opened a file")

    for module, name in ((builtins, "open"), (io, "open"), (Path, "read_text"),
                         (Path, "read_bytes"), (Path, "open"), (yaml, "safe_load"),
                         (json, "load"), (json, "loads")):
        monkeypatch.setattr(module, name, opened)
    assert read_case(data) == first
