"""The vocabulary tables: complete, consistent, sourced."""

from __future__ import annotations

import re

import pytest

from neb_bayes import vocab
from neb_bayes.units import conversion

# shared/spec/vocabulary.md, "Symptoms and signs"
SPEC_SYMPTOMS = """fatigue, weakness, low_mood, anxiety, irritability, insomnia, headache,
dizziness_orthostatic, weight_gain, weight_loss, polyphagia, salt_craving, nausea, abdominal_pain,
constipation, diarrhea, cold_intolerance, heat_intolerance, dry_skin, hair_loss, alopecia,
hoarseness, palpitations, tremor, atrial_fibrillation, goiter, neck_swelling, eye_signs,
peripheral_edema, myalgia, muscle_stiffness, proximal_weakness, partial_paresis, moon_face,
facial_plethora, purple_striae, striae_thin_pale, thin_skin, easy_bruising, delayed_healing,
hypertension, hyperpigmentation, acanthosis_nigricans, hirsutism, acne, oligomenorrhea, amenorrhea,
infertility, galactorrhea, failure_to_lactate, gynecomastia, low_libido, erectile_dysfunction,
reduced_morning_erections, hot_flashes, vaginal_dryness, visual_field_defect, blurred_vision,
polyuria, polydipsia, genital_thrush, itching, obesity"""

# The canonical ids and units the model uses (fixed).
CANONICAL = {
    "tsh": "mIU/L",
    "ft4": "pmol/L",
    "ft3": "pmol/L",
    "tt4": "nmol/L",
    "tt3": "nmol/L",
    "t_uptake": "%",
    "fti": "1",
    "tbg": "mg/L",
    "rt3": "nmol/L",
    "tpo_ab": "IU/mL",
    "trab": "IU/L",
    "cortisol": "nmol/L",
    "ufc": "nmol/24h",
    "cortisol_dst": "nmol/L",
    "cortisol_acth_stim_30": "nmol/L",
    "cortisol_acth_stim_60": "nmol/L",
    "acth": "pmol/L",
    "dheas": "µmol/L",
    "renin": "mIU/L",
    "pra": "ng/mL/h",
    "aldosterone": "pmol/L",
    "sodium": "mmol/L",
    "potassium": "mmol/L",
    "lh": "IU/L",
    "fsh": "IU/L",
    "testosterone": "nmol/L",
    "free_testosterone": "pmol/L",
    "shbg": "nmol/L",
    "estradiol": "pmol/L",
    "progesterone": "nmol/L",
    "ohp17": "nmol/L",
    "amh": "pmol/L",
    "hcg": "IU/L",
    "prolactin": "mIU/L",
    "prolactin_peg_recovery": "%",
    "prolactin_monomeric": "mIU/L",
    "glucose_fasting": "mmol/L",
    "glucose_ogtt_2h": "mmol/L",
    "glucose_random": "mmol/L",
    "hba1c": "mmol/mol",
    "insulin_fasting": "pmol/L",
    "insulin_ogtt_2h": "pmol/L",
    "c_peptide": "nmol/L",
    "triglycerides": "mmol/L",
    "hdl": "mmol/L",
    "creatinine": "µmol/L",
    "ferritin": "µg/L",
}
MOLAR_MASS = {
    "ft4": 776.87,
    "ft3": 650.98,
    "cortisol": 362.46,
    "aldosterone": 360.44,
    "testosterone": 288.42,
    "estradiol": 272.38,
    "progesterone": 314.46,
    "ohp17": 330.46,
    "glucose_fasting": 180.156,
    "c_peptide": 3020.3,
    "creatinine": 113.12,
}


def test_symptom_ids_are_those_of_the_spec() -> None:
    assert vocab.symptom_ids() == tuple(re.split(r",\s*", SPEC_SYMPTOMS.strip()))


def test_analyte_ids_and_canonical_units_are_fixed() -> None:
    table = vocab.analytes()
    assert {aid: a.canonical_unit for aid, a in table.items()} == CANONICAL
    for aid, mass in MOLAR_MASS.items():
        assert table[aid].molar_mass == mass


def test_every_analyte_is_complete_and_sourced() -> None:
    for a in vocab.analytes().values():
        assert a.axis in vocab.AXES and a.name and a.specimens and a.units
        assert a.plausible_for() is not None, a.id
        assert a.reference_interval, a.id
        assert set(a.specimens) <= set(vocab.specimen_ids())
        assert all(re.fullmatch(r"\d{1,6}-\d", code) for code in a.loinc), a.id
        for number in (
            "reference_interval",
            "plausible",
            *(["lod"] if a.lod else []),
            *(["molar_mass"] if a.molar_mass else []),
            *(["factors"] if a.factors else []),
            *(["affine"] if a.affine else []),
        ):
            assert a.source.get(number), f"{a.id}: no source for {number}"
        low, high = a.plausible_for()
        for interval in a.reference_interval.values():
            assert 0 <= interval[0] <= interval[1] <= high, a.id  # 0: no lower limit
            assert interval[0] == 0 or interval[0] >= low, a.id
        for lod in a.lod.values():
            assert 0 < lod <= high, a.id  # a limit may sit below what is plausible
        for unit in a.units:
            conversion(a, unit)  # every listed unit converts


def test_lookups() -> None:
    assert vocab.lookup_analyte("nonsense") is None
    assert vocab.lookup_symptom("Cold-Intolerance") == "cold_intolerance"
    assert vocab.lookup_symptom("feeling_cold") == "cold_intolerance"
    assert vocab.lookup_symptom("feeling blue") is None
    assert vocab.lookup_specimen("24-hour urine") == "urine_24h"
    assert vocab.lookup_specimen("24h urine") == "urine_24h"
    assert vocab.lookup_specimen("24 h urine") == "urine_24h"
    assert vocab.lookup_specimen("EDTA plasma") == "plasma"
    assert vocab.lookup_specimen("whole blood") == "whole_blood"
    assert vocab.lookup_specimen("spleen") is None
    assert vocab.specimen_candidates("blood") == ("serum", "plasma", "whole_blood")
    assert vocab.not_modelled_reason("HOMA") == (
        "calculated index; give fasting glucose and insulin instead"
    )
    assert vocab.not_modelled_reason("TSH") is None


@pytest.mark.parametrize(
    ("name", "aid"),
    [
        ("11580-8", "tsh"),  # TSH, high-sensitivity code
        ("14928-6", "ft3"),  # free T3, moles/volume
        ("17856-6", "hba1c"),  # HbA1c by HPLC
        ("LOINC:1518-0", "glucose_ogtt_2h"),  # glucose 2 h after 75 g, mass/volume
    ],
)
def test_common_loinc_codes(name: str, aid: str) -> None:
    assert vocab.lookup_analyte(name).id == aid


@pytest.mark.parametrize(
    ("name", "aid"),
    [("T4, free", "ft4"), ("T3, total", "tt3"), ("cortisol AM", "cortisol"),
     ("PEG prolactin recovery", "prolactin_peg_recovery"), ("Glucose, fasting", "glucose_fasting")],
)
def test_lab_style_word_order(name: str, aid: str) -> None:
    assert vocab.lookup_analyte(name).id == aid


def test_word_order_never_resolves_a_name_two_analytes_share() -> None:
    """Free T4 index (fti) and free T4 (ft4) differ by a word: never read as each other."""
    assert vocab.lookup_analyte("index, free T4").id == "fti"
    assert vocab.lookup_analyte("T4 free").id == "ft4"
    assert vocab.lookup_analyte("free, T4, thyroxine, total") is None


@pytest.mark.parametrize(
    ("aid", "sex", "specimen", "group", "expected"),
    [
        ("testosterone", "M", None, None, (9.2, 31.8)),
        ("testosterone", "F", None, None, (0.5, 2.1)),
        ("cortisol", None, "saliva", None, (1.1, 15.5)),
        ("cortisol", None, "serum", None, (140, 700)),
        ("fsh", "F", None, "F_postmenopausal", (26, 135)),
        ("tsh", "F", None, None, (0.4, 4.5)),
        ("amh", "M", None, None, None),
    ],
)
def test_reference_intervals(aid, sex, specimen, group, expected) -> None:
    assert vocab.analytes()[aid].reference_for(sex, specimen, group) == expected


def test_detection_limits() -> None:
    a = vocab.analytes()
    assert a["tsh"].lod_for() == 0.01
    assert a["cortisol"].lod_for("saliva") == 1.5
    assert a["estradiol"].lod_for(method="lc-ms/ms") == 4.0
    assert a["estradiol"].lod_for(method="immunoassay") == 37.0
    assert a["sodium"].lod_for() is None
