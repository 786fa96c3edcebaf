"""Recognition of context: medications (generic names and brands), free-text context, patient
fields, negations, unrecognised items, biotin dose and timing, and the ``vocab context`` listing.

Cases are built in memory (the case format of ``shared/spec/case-format.md``) with one ordinary
TSH result, so that every case is usable.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
from click.testing import CliRunner

import neb_bayes as nb

TSH = {"analyte": "TSH", "specimen": "serum", "value": 1.5, "unit": "mIU/L", "collected": "09:00"}


def _case(meds=(), context=(), measurements=None, **patient: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"sex": "F", "age": 34, "pregnant": False,
                         "menopausal_status": "premenopausal",
                         "medications": list(meds), "context": list(context)}
    p.update(patient)
    return {"case_format": 1, "id": "recognition", "patient": p,
            "measurements": measurements or [dict(TSH)]}


@functools.cache
def _infer_json(case_json: str):
    return nb.infer(nb.read_case(json.loads(case_json)))


def _run(case: dict[str, Any]):
    return _infer_json(json.dumps(case, sort_keys=True))


def _flags(case: dict[str, Any]) -> dict[str, float]:
    return dict(_run(case).evidence.context.flags)


def _not_used_items(case: dict[str, Any]) -> list[str]:
    return [n["item"] for n in _run(case).to_dict()["not_used"]]


def _accounted(case: dict[str, Any]) -> list[dict[str, Any]]:
    return _run(case).to_dict()["accounted_for"]


# ---------------------------------------------------------------- medications: names and brands

MEDICATIONS = [
    ("levothyroxine 100 µg daily", {"levothyroxine"}),
    ("Synthroid 100 mcg daily", {"levothyroxine"}),
    ("Euthyrox 75 µg", {"levothyroxine"}),
    ("L-thyroxine 50", {"levothyroxine"}),
    ("liothyronine 20 µg", {"liothyronine"}),
    ("Cytomel 25 mcg", {"liothyronine"}),
    ("carbimazole 20 mg daily", {"antithyroid_drug"}),
    ("methimazole 10 mg", {"antithyroid_drug"}),
    ("propylthiouracil 100 mg tds", {"antithyroid_drug"}),
    ("amiodarone 200 mg daily", {"amiodarone"}),
    ("lithium carbonate 800 mg nocte", {"lithium"}),
    ("Yasmin", {"oral_estrogen"}),
    ("combined pill", {"oral_estrogen"}),
    ("ethinylestradiol 30 µg / levonorgestrel 150 µg", {"oral_estrogen"}),
    ("on risperidone", {"dopamine_antagonist"}),
    ("haloperidol 5 mg", {"dopamine_antagonist"}),
    ("metoclopramide 10 mg tds", {"dopamine_antagonist"}),
    ("domperidone 10 mg tds", {"dopamine_antagonist"}),
    ("amisulpride 400 mg bd", {"dopamine_antagonist"}),
    ("paliperidone palmitate (Xeplion) monthly", {"dopamine_antagonist"}),
    ("olanzapine 10 mg nocte", {"antipsychotic_other"}),
    ("lurasidone 37 mg", {"antipsychotic_other"}),
    ("cabergoline 0.5 mg twice weekly", {"dopamine_agonist"}),
    ("methadone 60 mg daily", {"opioid"}),
    ("oxycodone 10 mg", {"opioid"}),
    ("testosterone gel 50 mg daily", {"testosterone_therapy"}),
    ("Testogel 50 mg", {"testosterone_therapy"}),
    ("Nebido 1000 mg every 12 weeks", {"testosterone_therapy"}),
    ("testosterone undecanoate 1 g IM", {"testosterone_therapy"}),
    ("gliclazide 80 mg bd", {"glucose_lowering"}),
    ("metformin 500 mg bd", {"glucose_lowering"}),
    ("insulin glargine 20 units", {"insulin_therapy", "glucose_lowering"}),
    ("budesonide inhaler", {"glucocorticoid"}),
    ("fluticasone 500 µg bd", {"glucocorticoid"}),
    ("dexamethasone 4 mg", {"glucocorticoid"}),
    ("prednisolone 5 mg daily", {"glucocorticoid", "glucocorticoid_cross_reacting"}),
    ("hydrocortisone 10/5/5 mg", {"glucocorticoid", "glucocorticoid_cross_reacting"}),
]


@pytest.mark.parametrize(("medication", "expected"), MEDICATIONS, ids=[m for m, _ in MEDICATIONS])
def test_medication_recognised(medication: str, expected: set[str]) -> None:
    case = _case(meds=[medication])
    assert expected <= set(_flags(case)), _flags(case)
    assert "patient.medications[0]" not in _not_used_items(case)


@pytest.mark.parametrize("medication", ["quetiapine 100 mg nocte", "clozapine 300 mg",
                                        "brexpiprazole 2 mg"])
def test_prolactin_sparing_antipsychotics_raise_no_prolactin_flag(medication: str) -> None:
    """Quetiapine and clozapine spare prolactin (Peuskens 2014), brexpiprazole leaves it nearly
    unchanged (pooled trials): no flag gives them the prior odds of drug-induced
    hyperprolactinaemia; like other drugs the model has no effect for, they are not used."""
    case = _case(meds=[medication])
    assert not {"dopamine_antagonist", "antipsychotic_other"} & set(_flags(case)), _flags(case)
    assert "patient.medications[0]" in _not_used_items(case)


@pytest.mark.parametrize("medication", ["aripiprazole 10 mg", "Abilify Maintena 400 mg monthly"])
def test_aripiprazole_is_read_as_lowering_prolactin(medication: str) -> None:
    """Aripiprazole, a D2 partial agonist, lowers prolactin (Sogawa 2016; Li 2013): it is read
    (not listed as unrecognised), as the partial agonist and never as a prolactin-raising drug."""
    case = _case(meds=[medication])
    flags = set(_flags(case))
    assert "dopamine_partial_agonist" in flags, flags
    assert not {"dopamine_antagonist", "antipsychotic_other"} & flags, flags
    assert "patient.medications[0]" not in _not_used_items(case)


def test_non_cross_reacting_glucocorticoid_is_not_flagged_as_cross_reacting() -> None:
    assert "glucocorticoid_cross_reacting" not in _flags(_case(meds=["budesonide inhaler"]))
    assert "glucocorticoid_cross_reacting" not in _flags(_case(meds=["dexamethasone 4 mg"]))


# ---------------------------------------------------------------- free-text context

CONTEXT = [
    ("on risperidone", "dopamine_antagonist"),
    ("ICU day 4, septic shock", "critical_illness"),
    ("mechanically ventilated in intensive care", "critical_illness"),
    ("permanent night-shift worker", "night_shift_worker"),
    ("works nights", "night_shift_worker"),
    ("non-fasting sample", "non_fasting"),
    ("sample taken after breakfast", "non_fasting"),
    ("recovering from septic shock, recently discharged from ICU", "illness_recovery"),
    ("on testosterone replacement since 2021", "testosterone_therapy"),
    ("3.1 cm non-functioning pituitary macroadenoma on MRI", "pituitary_lesion"),
    ("exclusively breastfeeding, 3 months postpartum", "breastfeeding"),
    ("breast-feeding twice a day", "breastfeeding"),
    ("transsphenoidal surgery for a craniopharyngioma in 2019", "pituitary_lesion"),
    ("3.1 cm non-functioning pituitary macroadenoma on MRI", "nonfunctioning_pituitary_adenoma"),
    ("nonfunctioning macroadenoma, 2.2 cm", "nonfunctioning_pituitary_adenoma"),
    ("NFPA with suprasellar extension", "nonfunctioning_pituitary_adenoma"),
    ("non-functioning adenoma on MRI", "nonfunctioning_pituitary_adenoma"),
    ("non-functioning adenoma on MRI", "pituitary_lesion"),
    # the flag's own label and id, as a form writes them
    ("known pituitary lesion on MRI", "pituitary_lesion"),
    ("pituitary_lesion", "pituitary_lesion"),
    ("hypothalamic lesion after radiotherapy", "pituitary_lesion"),
]


def test_a_lesion_not_called_non_functioning_is_not_read_as_one() -> None:
    """A microadenoma or an adenoma of unstated function is a pituitary lesion, not a known
    non-functioning adenoma (which could be a prolactinoma's stalk effect ruled out)."""
    for text in ("6 mm pituitary microadenoma", "pituitary macroadenoma, function not known"):
        flags = set(_flags(_case(context=[text])))
        assert "pituitary_lesion" in flags and "nonfunctioning_pituitary_adenoma" not in flags


def test_a_testosterone_result_in_context_text_is_not_therapy() -> None:
    """A bare 'testosterone' in context text is a result, not the treatment."""
    case = _case(context=["low testosterone on screening"])
    assert "testosterone_therapy" not in _flags(case), _flags(case)


@pytest.mark.parametrize(("text", "flag"), CONTEXT, ids=[t for t, _ in CONTEXT])
def test_context_text_recognised(text: str, flag: str) -> None:
    case = _case(context=[text])
    assert flag in _flags(case), _flags(case)
    assert "patient.context[0]" not in _not_used_items(case)


def test_recovery_overrides_critical_illness() -> None:
    flags = _flags(_case(context=["recovering from septic shock, recently discharged from ICU"]))
    assert "illness_recovery" in flags
    assert "critical_illness" not in flags


def test_non_fasting_is_not_read_as_fasting() -> None:
    flags = _flags(_case(context=["non-fasting sample"]))
    assert "non_fasting" in flags and "fasting" not in flags
    flags = _flags(_case(context=["overnight fast of 12 hours"]))
    assert "fasting" in flags and "non_fasting" not in flags


# ---------------------------------------------------------------- patient fields


@pytest.mark.parametrize(("week", "flag"), [(6, "pregnancy_t1"), (10, "pregnancy_t1"),
                                            (13, "pregnancy_t1"), (14, "pregnancy_t2"),
                                            (22, "pregnancy_t2"), (28, "pregnancy_t3"),
                                            (36, "pregnancy_t3")])
def test_gestational_week_gives_trimester(week: int, flag: str) -> None:
    flags = _flags(_case(pregnant=True, gestational_week=week))
    trimesters = {f for f in flags if f.startswith("pregnancy_t")}
    assert trimesters == {flag}
    assert "pregnancy_any" in flags


def test_pregnancy_from_text_with_week() -> None:
    flags = _flags(_case(pregnant=None, context=["pregnant, 9 weeks"]))
    assert {"pregnancy_any", "pregnancy_t1"} <= set(flags)


def test_pregnancy_without_week_is_unknown_trimester() -> None:
    result = _run(_case(pregnant=True))
    assert "pregnancy_unknown_trimester" in result.evidence.context.flags
    assert any("gestational week" in w for w in result.to_dict()["warnings"])


def test_pregnant_as_menstrual_phase_is_pregnancy() -> None:
    by_phase = _run(_case(pregnant=None, menstrual_phase="pregnant"))
    by_field = _run(_case(pregnant=True))
    pregnancy = {f for f in by_field.evidence.context.flags if f.startswith("pregnancy")}
    assert pregnancy and pregnancy <= set(by_phase.evidence.context.flags)
    assert any("gestational week" in w for w in by_phase.to_dict()["warnings"])
    assert "patient.menstrual_phase" in [
        i for a in _accounted(_case(pregnant=None, menstrual_phase="pregnant"))
        for i in a["items"]]


def test_pregnant_phase_contradicting_pregnant_false_is_warned() -> None:
    case = _case(pregnant=False, menstrual_phase="pregnant")
    result = _run(case)
    assert not any(f.startswith("pregnancy") for f in result.evidence.context.flags)
    assert any("patient.menstrual_phase" in w and "patient.pregnant" in w
               for w in result.to_dict()["warnings"])
    assert "patient.menstrual_phase" in _not_used_items(case)


def test_menstrual_phase_for_a_man_is_not_used() -> None:
    case = _case(sex="M", pregnant=None, menstrual_phase="luteal (day 22)")
    assert "luteal_phase" not in _flags(case)
    assert "patient.menstrual_phase" in _not_used_items(case)


def test_postmenopausal_from_status_and_from_age() -> None:
    assert "postmenopausal" in _flags(_case(age=58, menopausal_status="postmenopausal"))
    result = _run(_case(age=58, menopausal_status=None))
    assert "postmenopausal" in result.evidence.context.flags
    assert any("postmenopausal" in w for w in result.to_dict()["warnings"])
    assert "postmenopausal" not in _flags(_case(age=32, menopausal_status=None))
    assert "perimenopausal" in _flags(_case(age=47, menopausal_status="perimenopausal"))


@pytest.mark.parametrize("text", ["no period for 18 months", "last period 13 months ago"])
def test_postmenopausal_from_age_and_a_year_without_a_period(text: str) -> None:
    """NICE NG23: past 45, 12 months without a period is postmenopausal (at 50, age alone
    does not assume it); fewer months is not."""
    assert "postmenopausal" in _flags(_case(age=50, menopausal_status=None, menstrual_phase=text))
    assert "postmenopausal" not in _flags(_case(age=50, menopausal_status=None,
                                                menstrual_phase="no period for 6 months"))


def test_menopause_not_applied_to_men() -> None:
    flags = _flags(_case(sex="M", age=70, pregnant=None, menopausal_status=None))
    assert "postmenopausal" not in flags


@pytest.mark.parametrize(("phase", "flag"), [
    ("luteal (day 22)", "luteal_phase"),
    ("ovulatory", "ovulatory_phase"),
    ("mid-cycle (day 14)", "ovulatory_phase"),
    ("on combined OCP, active-pill week", "oral_estrogen"),
    ("on combined OCP", "oral_estrogen"),
])
def test_menstrual_phase_text(phase: str, flag: str) -> None:
    assert flag in _flags(_case(menstrual_phase=phase)), _flags(_case(menstrual_phase=phase))


@pytest.mark.parametrize("text", ["cycle day 22", "day 22", "day 21 of a 28-day cycle", "CD 23"])
def test_cycle_day_alone_reads_as_its_phase(text: str) -> None:
    case = _case(menstrual_phase=text)
    assert "luteal_phase" in _flags(case)
    noted = [a for a in _accounted(case) if "patient.menstrual_phase" in a["items"]]
    assert noted and "luteal" in noted[0]["text"] and "cycle" in noted[0]["text"]


def test_early_cycle_day_alone_is_accounted_for() -> None:
    case = _case(menstrual_phase="day 5")
    assert not {"luteal_phase", "ovulatory_phase"} & set(_flags(case))
    assert any("patient.menstrual_phase" in a["items"] and "follicular" in a["text"]
               for a in _accounted(case))


@pytest.mark.parametrize("text", ["day 40", "irregular cycles, day 22"])
def test_cycle_day_giving_no_phase_is_listed_as_not_used(text: str) -> None:
    case = _case(menstrual_phase=text)
    assert not {"luteal_phase", "ovulatory_phase"} & set(_flags(case))
    assert "patient.menstrual_phase" in _not_used_items(case)


def test_follicular_phase_sets_no_flag() -> None:
    flags = _flags(_case(menstrual_phase="follicular (day 9)"))
    assert not {"luteal_phase", "ovulatory_phase", "oral_estrogen"} & set(flags)


def test_progestogen_only_pill_is_not_oral_estrogen() -> None:
    assert "oral_estrogen" not in _flags(_case(menstrual_phase="progestogen-only pill"))


def test_amenorrhoea_in_menstrual_phase_is_evidence() -> None:
    result = _run(_case(menstrual_phase="amenorrhoeic for 5 months"))
    assert "amenorrhea" in result.evidence.context.extra_symptoms


# ---------------------------------------------------------------- negations and stopped drugs


def test_negated_glucocorticoid_sets_no_flag() -> None:
    result = _run(_case(context=["no glucocorticoid exposure"]))
    assert not {"glucocorticoid", "glucocorticoid_withdrawal"} & set(
        result.evidence.context.flags)
    assert any(n["flag"] == "glucocorticoid" for n in result.evidence.context.negated)


def test_hcg_negative_is_no_pregnancy_and_not_dropped_silently() -> None:
    case = _case(pregnant=None, context=["hCG negative"])
    result = _run(case)
    assert not any(f.startswith("pregnancy") for f in result.evidence.context.flags)
    noted = [n["item"] for n in result.evidence.context.negated] + _not_used_items(case)
    assert "patient.context[0]" in noted


@pytest.mark.parametrize("text", ["not pregnant", "no antipsychotic, antiemetic or opioid use",
                                  "never used opioids", "not breastfeeding"])
def test_other_negations(text: str) -> None:
    flags = _flags(_case(pregnant=None, context=[text]))
    assert not {"pregnancy_any", "dopamine_antagonist", "antipsychotic_other",
                "opioid", "breastfeeding"} & set(flags), flags


@pytest.mark.parametrize("med", [
    "prednisolone 5 mg, stopped 3 weeks ago",
    {"name": "prednisolone 10 mg daily", "status": "stopped"},
])
def test_stopped_glucocorticoid_is_withdrawal(med: Any) -> None:
    flags = _flags(_case(meds=[med]))
    assert "glucocorticoid_withdrawal" in flags
    assert "glucocorticoid" not in flags
    assert "glucocorticoid_cross_reacting" not in flags


# ---------------------------------------------------------------- not used


def test_unrecognised_medication_listed_as_not_used() -> None:
    case = _case(meds=["folic acid 0.4 mg daily", "levothyroxine 100 µg"])
    items = _not_used_items(case)
    assert "patient.medications[0]" in items
    assert "patient.medications[1]" not in items
    reasons = [n["reason"] for n in _run(case).to_dict()["not_used"]
               if n["item"] == "patient.medications[0]"]
    assert "folic acid" in reasons[0]


@pytest.mark.parametrize("med", ["L-Thyroxin 75", "levothyroxine100mcg", "Lévothyrox 50 µg"])
def test_levothyroxine_spellings_with_glued_dose_or_accents(med: str) -> None:
    assert "levothyroxine" in _flags(_case(meds=[med]))


def test_unrecognised_medication_reason_says_not_recognised() -> None:
    case = _case(meds=["folic acid 0.4 mg daily"])
    reason = next(n["reason"] for n in _run(case).to_dict()["not_used"]
                  if n["item"] == "patient.medications[0]")
    assert "not recognised" in reason and "no known effect" not in reason


def test_unrecognised_context_listed_as_not_used() -> None:
    assert "patient.context[0]" in _not_used_items(_case(context=["routine check, feels well"]))


# ---------------------------------------------------------------- biotin dose and timing

BIOTIN_LABS = [
    {"analyte": "TSH", "specimen": "serum", "value": 0.03, "unit": "mIU/L", "collected": "09:00",
     "method": "immunoassay"},
    {"analyte": "Free T4", "specimen": "serum", "value": 41, "unit": "pmol/L",
     "collected": "09:00", "method": "immunoassay"},
]
HYPER = ("hyperthyroidism_overt", "hyperthyroidism_subclinical")


def _p_hyper(case: dict[str, Any]) -> float:
    probs = _run(case).probabilities
    return sum(probs[c] for c in HYPER)


def _biotin_texts(case: dict[str, Any]) -> list[str]:
    return [a["text"] for a in _accounted(case) if a["flag"] == "biotin"]


def test_multivitamin_biotin_dose_does_not_interfere() -> None:
    low = _case(meds=[{"name": "multivitamin with biotin", "dose_mg_per_day": 0.03,
                       "last_dose": "07:00"}], measurements=BIOTIN_LABS)
    none = _case(meds=[], measurements=BIOTIN_LABS)
    assert "biotin" not in _flags(low)
    assert _biotin_texts(low) == []
    assert _p_hyper(low) == pytest.approx(_p_hyper(none), rel=1e-9, abs=1e-12)
    text_low = _case(meds=["multivitamin with biotin 0.03 mg"], measurements=BIOTIN_LABS)
    assert "biotin" not in _flags(text_low)


def test_high_dose_biotin_interferes_fully() -> None:
    high = _case(meds=[{"name": "biotin", "dose_mg_per_day": 10, "last_dose": "07:00"}],
                 measurements=BIOTIN_LABS)
    assert _flags(high)["biotin"] == pytest.approx(1.0)
    texts = _biotin_texts(high)
    assert any("TSH falsely low" in t for t in texts)
    assert any("FT4/FT3 falsely high" in t for t in texts)
    assert _flags(_case(meds=["biotin 10 mg daily"]))["biotin"] == pytest.approx(1.0)
    none = _case(meds=[], measurements=BIOTIN_LABS)
    assert _p_hyper(high) < _p_hyper(none)


def test_biotin_without_dose_is_moderate_with_warning() -> None:
    result = _run(_case(meds=["biotin"]))
    assert 0 < result.evidence.context.flags["biotin"] < 1
    assert any("biotin" in w for w in result.to_dict()["warnings"])


def test_biotin_effect_fades_with_time_since_dose() -> None:
    recent = _case(meds=[{"name": "biotin", "dose_mg_per_day": 10, "last_dose": "07:00"}],
                   measurements=BIOTIN_LABS)
    old = _case(meds=[{"name": "biotin", "dose_mg_per_day": 10, "last_dose": "10:00"}],
                measurements=BIOTIN_LABS)  # 23 h before the 09:00 sample
    none = _case(meds=[], measurements=BIOTIN_LABS)
    assert _p_hyper(recent) < _p_hyper(old) < _p_hyper(none)


def test_biotin_not_applied_to_lc_ms_ms() -> None:
    labs = [dict(m, method="lc-ms/ms") for m in BIOTIN_LABS]
    case = _case(meds=[{"name": "biotin", "dose_mg_per_day": 10, "last_dose": "07:00"}],
                 measurements=labs)
    texts = _biotin_texts(case)
    assert texts and all(t.startswith("not applied") for t in texts)


# ---------------------------------------------------------------- levothyroxine dose timing

LT4_LABS = [
    {"analyte": "TSH", "specimen": "serum", "value": 0.35, "unit": "mIU/L", "collected": "09:00"},
    {"analyte": "Free T4", "specimen": "serum", "value": 25, "unit": "pmol/L",
     "collected": "09:00"},
]


@pytest.mark.parametrize(("last_dose", "recent"), [("07:30", True), ("04:00", True),
                                                   ("00:30", True), ("23:30", False),
                                                   ("10:00", False), ("22:00", False)])
def test_levothyroxine_recent_dose_timing(last_dose: str, recent: bool) -> None:
    case = _case(meds=[{"name": "levothyroxine 100 µg", "last_dose": last_dose}],
                 measurements=LT4_LABS)
    flags = {a["flag"] for a in _accounted(case)}
    assert "levothyroxine" in _flags(case)
    assert ("levothyroxine_recent_dose" in flags) is recent


# ---------------------------------------------------------------- vocab listing


def _flags_with_effects() -> set[str]:
    from neb_bayes.model.compiled import load_model

    raw = load_model().spec.raw
    out: set[str] = set()
    for row in raw.get("context_effects", []):
        out.update(row["flag"] if isinstance(row["flag"], list) else [row["flag"]])
    for prev in raw["prevalence"].values():
        for mod in prev.get("modifiers", []):
            when = mod.get("when", {})
            if "flag" in when:
                out.add(when["flag"])
            out.update(when.get("any_flag", []))
    return out


def test_vocab_context_lists_every_flag_with_its_effects() -> None:
    from neb_bayes.cli import main

    res = CliRunner().invoke(main, ["vocab", "context"])
    assert res.exit_code == 0, res.output
    blocks: dict[str, str] = {}
    for block in res.output.split("\n\n"):
        lines = block.strip().splitlines()
        if lines and "[" in lines[0]:
            blocks[lines[0].split()[0]] = block
    expected = _flags_with_effects()
    assert len(expected) >= 25
    missing = sorted(expected - set(blocks))
    assert not missing, f"flags with effects missing from `vocab context`: {missing}"
    for flag in expected:
        assert "effect:" in blocks[flag] or "prior odds" in blocks[flag], flag


# ---------------------------------------------------------------- what a mention says of itself

@pytest.mark.parametrize("text", [
    "pregnancy excluded", "pregnancy ruled out", "pregnancy test negative", "hCG negative",
    "negative beta-hCG", "not pregnant"])
def test_a_mention_that_says_it_is_absent_is_negated(text: str) -> None:
    """(Found by an audit: "pregnancy excluded" and "pregnancy ruled out" were read as
    pregnancy, and "hCG negative", an example in the case format, was not recognised.)"""
    case = _case(context=[text], pregnant=None)
    assert "pregnancy_any" not in _flags(case)
    assert "patient.context[0]" not in _not_used_items(case)
    assert any(n["flag"] == "pregnancy" for n in _run(case).evidence.context.negated)


@pytest.mark.parametrize("text", [
    "possible pregnancy", "pregnancy test pending", "pregnancy to be excluded",
    "pregnant?", "query pregnancy"])
def test_a_mention_not_known_yet_is_not_read_as_a_fact(text: str) -> None:
    case = _case(context=[text], pregnant=None)
    assert "pregnancy_any" not in _flags(case)
    reasons = [n for n in _run(case).to_dict()["not_used"] if n["item"] == "patient.context[0]"]
    assert reasons and "not known yet" in reasons[0]["reason"]


@pytest.mark.parametrize("text", ["pregnant, 10 weeks", "hCG positive",
                                  "pregnant (dating scan pending)"])
def test_a_mention_of_a_fact_is_read(text: str) -> None:
    assert "pregnancy_any" in _flags(_case(context=[text], pregnant=None))


def test_an_hcg_number_is_not_pregnancy() -> None:
    """A quantitative hCG ("urine hCG <5" is negative) is not read as pregnancy."""
    case = _case(context=["urine hCG <5"], pregnant=None)
    assert "pregnancy_any" not in _flags(case)
    assert "patient.context[0]" in _not_used_items(case)


# ---------------------------------------------------------------- menopause: cycle physiology


@pytest.mark.parametrize(("status", "age"), [("postmenopausal", 55), ("perimenopausal", 48)])
@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize("symptom", ["amenorrhea", "oligomenorrhea"])
def test_listed_cycle_disturbance_of_a_menopause_stage_is_not_evidence(
        status: str, age: int, state: str, symptom: str) -> None:
    """Absent or irregular periods in the menopausal transition or after menopause are
    physiology: listed in the symptoms, they move nothing and are listed as not used."""
    without = _case(age=age, menopausal_status=status)
    listed = dict(without, symptoms={state: [symptom]})
    assert _run(listed).probabilities == _run(without).probabilities
    notes = {n["item"]: n["reason"] for n in _run(listed).to_dict()["not_used"]}
    assert status in notes[f"symptoms.{state}: {symptom}"]


def test_listed_amenorrhoea_of_a_premenopausal_woman_is_evidence() -> None:
    without = _case(age=30, menopausal_status="premenopausal")
    listed = dict(without, symptoms={"present": ["amenorrhea"]})
    assert _run(listed).probabilities != _run(without).probabilities
    assert not any("amenorrhea" in n for n in _not_used_items(listed))
