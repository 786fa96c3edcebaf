"""Unit conversion: factors from facts.md, lab spellings, dimension errors, exact round trips."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neb_bayes.units import UnitError, conversion, from_canonical, pint_expression, to_canonical
from neb_bayes.vocab import analytes

A = analytes()


# (analyte, unit, factor to the canonical unit, source) — shared/clinical/facts.md §1
FACTS_FACTORS = [
    ("ft4", "ng/dL", 12.87, "§1 FT4 12.87"),
    ("tt4", "µg/dL", 12.87, "§1 TT4 12.87"),
    ("ft3", "pg/mL", 1.536, "§1 FT3 1.536"),
    ("cortisol", "µg/dL", 27.59, "§1 cortisol 27.59"),
    ("cortisol_dst", "µg/dL", 27.59, "§1 cortisol after dexamethasone 27.59"),
    ("ufc", "µg/24h", 2.759, "§1 UFC 2.759"),
    ("acth", "pg/mL", 0.2202, "§1 ACTH 0.2202"),
    ("dheas", "µg/dL", 0.02714, "§1 DHEA-S 0.02714"),
    ("testosterone", "ng/dL", 0.0347, "§1 testosterone 0.0347"),
    ("free_testosterone", "pg/mL", 3.467, "§1 free testosterone 3.467"),
    ("estradiol", "pg/mL", 3.671, "§1 estradiol 3.671"),
    ("progesterone", "ng/mL", 3.18, "§1 progesterone 3.18"),
    ("amh", "ng/mL", 7.14, "§1 AMH 7.14"),
    ("prolactin", "ng/mL", 21.2, "§1 prolactin 21.2 (WHO 84/500)"),
    ("prolactin_monomeric", "ng/mL", 21.2, "§1 prolactin 21.2"),
    ("glucose_fasting", "mg/dL", 0.0555, "§1 fasting glucose 0.0555"),
    ("glucose_ogtt_2h", "mg/dL", 0.0555, "§1 glucose 0.0555"),
    ("insulin_fasting", "µIU/mL", 6.0, "§1 insulin 6.0"),
    ("triglycerides", "mg/dL", 0.01129, "brief"),
    ("hdl", "mg/dL", 0.02586, "brief"),
    ("lh", "mIU/mL", 1.0, "§1 LH/FSH IU/L = mIU/mL"),
    ("tsh", "µIU/mL", 1.0, "§1 TSH mIU/L = µIU/mL"),
]


@pytest.mark.parametrize(("aid", "unit", "factor", "source"), FACTS_FACTORS)
def test_factor_matches_facts(aid: str, unit: str, factor: float, source: str) -> None:
    assert to_canonical(A[aid], 1.0, unit) == pytest.approx(factor, rel=1e-3), source


def test_worked_examples() -> None:
    assert to_canonical(A["ft4"], 1.0, "ng/dL") == pytest.approx(12.87, rel=1e-3)
    assert round(to_canonical(A["hba1c"], 6.5, "%")) == 48  # facts §4f: 6.5 % = 48 mmol/mol
    assert round(to_canonical(A["hba1c"], 5.7, "%")) == 39  # facts §4f: 5.7 % = 39 mmol/mol
    assert to_canonical(A["glucose_fasting"], 126, "mg/dL") == pytest.approx(7.0, abs=0.01)
    assert to_canonical(A["glucose_ogtt_2h"], 200, "mg/dL") == pytest.approx(11.1, abs=0.01)
    assert to_canonical(A["testosterone"], 264, "ng/dL") == pytest.approx(9.2, abs=0.05)
    assert to_canonical(A["cortisol"], 1.8, "µg/dL") == pytest.approx(50, abs=0.5)
    assert to_canonical(A["pra"], 1.0, "pmol/L/min") == pytest.approx(1 / 12.86, rel=1e-3)
    assert to_canonical(A["creatinine"], 1.0, "mg/dL") == pytest.approx(88.4, rel=1e-3)
    assert to_canonical(A["sodium"], 140, "mEq/L") == 140


@pytest.mark.parametrize(
    ("aid", "spellings"),
    [
        ("cortisol", ["µg/dL", "μg/dL", "ug/dL", "mcg/dL", "UG/DL", "µg / dL", "ug/dl"]),
        ("tsh", ["mIU/L", "µIU/mL", "uIU/mL", "mU/L", "µU/mL", "miu/l", "m[IU]/L", "mIU per L"]),
        ("trab", ["IU/L", "U/L", "mIU/mL", "[IU]/L", "iu/l"]),
        ("tpo_ab", ["IU/mL", "kIU/L", "U/mL", "kU/L"]),
        (
            "ufc",
            [
                "nmol/24h",
                "nmol/24 h",
                "nmol/24-hour",
                "nmol/d",
                "nmol/day",
                "nmol per day",
                "nmol/(24.h)",
            ],
        ),
        ("pra", ["ng/mL/h", "ng/mL/hr", "ng/(mL·h)", "µg/L/h", "ng/mL per hour"]),
        ("hba1c", ["%", "% (NGSP)", "%(DCCT)", "% of total Hb", "%Hb", "% Hb"]),
        ("hba1c", ["mmol/mol", "mmol/mol Hb", "mmol/mol (IFCC)"]),
        ("fti", ["1", "", "index"]),
    ],
)
def test_lab_spellings_agree(aid: str, spellings: list[str]) -> None:
    values = {s: to_canonical(A[aid], 3.0, s) for s in spellings}
    first = values[spellings[0]]
    assert all(v == pytest.approx(first, rel=1e-12) for v in values.values()), values


@pytest.mark.parametrize(
    ("aid", "unit"),
    [
        ("ft4", "mmol/mol"),  # a ratio for a concentration
        ("ft4", "%"),
        ("tsh", "ng/dL"),  # IU without an IU<->mass factor
        ("tsh", "pmol/L"),
        ("glucose_fasting", "IU/L"),
        ("cortisol", "nmol/24h"),  # amount per time for a concentration
        ("ufc", "nmol/L"),  # a concentration without the urine volume
        ("hba1c", "1"),  # ratio, but not one of HbA1c's listed units
        ("hba1c", "mg/dL"),
        ("prolactin", "nmol/L"),  # prolactin has an IU<->mass factor, not a molar mass
        ("t_uptake", "mmol/mol"),
        ("shbg", "mg/L"),  # SHBG has no molar mass in the vocabulary
    ],
)
def test_wrong_dimension_is_an_error(aid: str, unit: str) -> None:
    with pytest.raises(UnitError) as info:
        to_canonical(A[aid], 1.0, unit)
    message = str(info.value)
    assert repr(unit) in message and aid in message
    assert "accepted units: " + A[aid].canonical_unit in message


@pytest.mark.parametrize("unit", ["bananas/L", "mg/dL/", "ng//mL", "mEq/L", "µg/dL;", "12"])
def test_unknown_unit_string_is_an_error(unit: str) -> None:
    with pytest.raises(UnitError) as info:
        to_canonical(A["cortisol"], 1.0, unit)
    assert repr(unit) in str(info.value) and "nmol/L" in str(info.value)


def test_unit_must_be_text() -> None:
    with pytest.raises(UnitError):
        conversion(A["tsh"], 5)  # type: ignore[arg-type]


def test_pint_expression_rewrites_lab_spellings() -> None:
    assert pint_expression("µg/24 h") == "ug/(24*hour)"
    assert pint_expression("mU/L") == "mIU/L"
    assert pint_expression("mcg/dL") == "ug/dL"
    assert pint_expression("%") == "percent"
    assert pint_expression("") == "dimensionless"


ALL_UNITS = [(aid, unit) for aid, a in A.items() for unit in a.units]


@pytest.mark.parametrize(("aid", "unit"), ALL_UNITS, ids=[f"{a}-{u}" for a, u in ALL_UNITS])
def test_declared_route_is_the_route_taken(aid: str, unit: str) -> None:
    declared = A[aid].units[unit]
    conv = conversion(A[aid], unit)
    if declared in ("canonical", "scale"):
        assert conv.route in ("canonical", "scale")
        assert conv.offset == 0
        if declared == "canonical":
            assert conv.scale == 1.0
    else:
        assert conv.route == declared


def _positive(aid: str, unit: str) -> st.SearchStrategy[float]:
    conv = conversion(A[aid], unit)
    if conv.offset:  # affine: stay where the unit means something (HbA1c 2.5-25 %)
        low, high = (conv.backward(b) for b in A[aid].plausible_for())
        return st.floats(min_value=max(low, 1e-3), max_value=high)
    return st.floats(min_value=1e-9, max_value=1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_round_trip_is_exact_for_every_analyte_and_unit(data: st.DataObject) -> None:
    aid, unit = data.draw(st.sampled_from(ALL_UNITS))
    x = data.draw(_positive(aid, unit))
    back = from_canonical(A[aid], to_canonical(A[aid], x, unit), unit)
    assert back == pytest.approx(x, rel=1e-12, abs=0)


@pytest.mark.parametrize(("aid", "unit"), ALL_UNITS, ids=[f"{a}-{u}" for a, u in ALL_UNITS])
def test_round_trip_at_the_plausible_bounds(aid: str, unit: str) -> None:
    for canonical in A[aid].plausible_for() or ():
        if canonical <= 0:
            continue
        x = from_canonical(A[aid], canonical, unit)
        assert to_canonical(A[aid], x, unit) == pytest.approx(canonical, rel=1e-12)


def test_a_warm_conversion_is_a_cached_lookup(monkeypatch) -> None:
    """Once a unit has been seen, converting it derives nothing again (no resolving, no
    table, no pint): that is what makes it one lookup and one multiplication.  Its time is a
    benchmark (``benchmarks/bench_single.py``), not a test."""
    import neb_bayes.units as units

    a = A["ft4"]
    first = to_canonical(a, 1.0, "ng/dL")

    def derive(*_args, **_kwargs):
        raise AssertionError("a warm conversion derived the unit again")

    monkeypatch.setattr(units, "_compute", derive)
    monkeypatch.setattr(units, "_resolve", derive)
    monkeypatch.setattr(units, "registry", derive)
    assert to_canonical(a, 1.0, "ng/dL") == first
    assert from_canonical(a, first, "ng/dL") == pytest.approx(1.0, rel=1e-12)


def test_importing_the_reader_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, neb_bayes.case, neb_bayes.units, neb_bayes.vocab; "
        "heavy = [m for m in ('pint', 'scipy', 'scipy.stats', 'xarray', 'pandas', 'pymc') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_shipped_unit_table_is_current() -> None:
    """``vocab/unit_table.json`` equals a fresh pint derivation (``python -m neb_bayes.units``)."""
    import json

    from neb_bayes.units import TABLE_PATH, _table, build_unit_table

    shipped = json.loads(TABLE_PATH.read_text(encoding="utf-8"))
    fresh = build_unit_table()
    assert shipped["vocab_sha256"] == fresh["vocab_sha256"], "run python -m neb_bayes.units"
    assert shipped["conversions"].keys() == fresh["conversions"].keys()
    for aid, rows in fresh["conversions"].items():
        assert shipped["conversions"][aid].keys() == rows.keys(), aid
        for expr, (scale, offset, route) in rows.items():
            got = shipped["conversions"][aid][expr]
            assert got[0] == pytest.approx(scale, rel=1e-15) and got[1:] == [offset, route]
    assert _table(), "the shipped table is ignored"


def test_reading_listed_units_does_not_import_pint() -> None:
    code = (
        "import sys; from neb_bayes.case import read_case; "
        "c = read_case({'id': 1, 'measurements': ["
        "{'analyte': 'FT4', 'value': 1.1, 'unit': 'ng/dL'}, "
        "{'analyte': 'HbA1c', 'value': 6.1, 'unit': '%'}, "
        "{'analyte': 'cortisol', 'value': 12, 'unit': 'mcg/dL'}, "
        "{'analyte': 'sodium', 'value': 140, 'unit': 'mEq/L'}, "
        "{'analyte': 'TSH', 'value': 2, 'unit': 'mU/L'}]}); "
        "print('pint' in sys.modules, len(c.measurements))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "5"]
