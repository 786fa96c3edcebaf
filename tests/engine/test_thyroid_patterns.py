"""Thyroid patterns beyond the classic states, and the report's "other readings".

Two states were added to the thyroid axis from cited figures (``priors/default.yaml``):

* ``hyperthyroidism_t3_predominant`` (T3-toxicosis: TSH suppressed, FT3 raised, FT4 normal to
  low-normal; ~4 % of thyrotoxicosis), part of the condition ``hyperthyroidism_overt``;
* ``low_t3_adaptive`` (low T3 without thyroid disease outside critical illness: fasting,
  calorie restriction, chronic disease, age), not a condition: a report names it under
  ``other_states``.

The expectations are the textbook readings (facts §4c; conditions.md: non-thyroidal illness
needs severe illness or recovery).
"""

from __future__ import annotations

import copy

import pytest

import neb_bayes as nb
from neb_bayes.case.model import Case, Measurement, Patient, Symptoms
from neb_bayes.model.compiled import load_model
from neb_bayes.model.spec import PriorSetError, spec_from_tables

MODEL = load_model()


def _case(results: dict[str, float], *, context: tuple[str, ...] = (), age: float = 50,
          sex: str = "F", present: tuple[str, ...] = (), absent: tuple[str, ...] = ()) -> Case:
    ms = tuple(Measurement(index=i, analyte=a, specimen="serum", value=v)
               for i, (a, v) in enumerate(results.items()))
    return Case(id="thyroid-pattern", patient=Patient(sex=sex, age=age, context=context),
                measurements=ms,
                symptoms=Symptoms(present=frozenset(present), absent=frozenset(absent)))


def _thyroid(result) -> dict[str, float]:
    return {st: v["probability"] for st, v in result.axis_states["thyroid"].items()}


def _infer(case: Case):
    return nb.infer(case, uncertainty=False)


def test_t3_toxicosis_reads_as_overt_hyperthyroidism() -> None:
    # TSH suppressed, FT3 well above range, FT4 within range (facts §4c "TSH low with FT4 and/or
    # T3 high"): overt hyperthyroidism in its T3-predominant form, not subclinical
    r = _infer(_case({"tsh": 0.01, "ft4": 17.0, "ft3": 9.0}, sex="M", age=63,
                     present=("palpitations", "weight_loss")))
    assert r.probabilities["hyperthyroidism_overt"] > 0.8
    assert r.probabilities["hyperthyroidism_subclinical"] < 0.2
    assert _thyroid(r)["hyperthyroidism_t3_predominant"] > _thyroid(r)["hyperthyroidism_overt"]


def test_t3_and_t4_both_raised_stays_the_classic_overt_state() -> None:
    r = _infer(_case({"tsh": 0.01, "ft4": 40.0, "ft3": 14.0}))
    th = _thyroid(r)
    assert th["hyperthyroidism_overt"] > 0.9 > th["hyperthyroidism_t3_predominant"]


@pytest.mark.parametrize("ft3", [2.0, 2.3, 2.6])
def test_isolated_low_t3_in_a_well_outpatient_is_not_nonthyroidal_illness(ft3: float) -> None:
    r = _infer(_case({"tsh": 1.5, "ft4": 12.5, "ft3": ft3}, age=66))
    assert r.probabilities["nonthyroidal_illness"] < 0.05
    assert _thyroid(r)["low_t3_adaptive"] > 0.8
    other = r.to_dict()["other_states"]
    assert other[0]["axis"] == "thyroid" and other[0]["state"] == "low_t3_adaptive"
    assert "without thyroid disease" in other[0]["description"]


def test_the_same_low_t3_in_critical_illness_is_nonthyroidal_illness() -> None:
    r = _infer(_case({"tsh": 0.6, "ft4": 11.0, "ft3": 2.3}, age=66,
                     context=("septic shock, intensive care day 3",)))
    assert "critical_illness" in r.evidence.context.flags
    assert r.probabilities["nonthyroidal_illness"] > 0.9
    assert _thyroid(r)["low_t3_adaptive"] < 0.05


def test_lower_ft3_never_lowers_the_low_t3_reading() -> None:
    seq = [_thyroid(_infer(_case({"tsh": 1.5, "ft4": 13.0, "ft3": f})))["low_t3_adaptive"]
           for f in (4.5, 3.8, 3.3, 3.0, 2.7, 2.4, 2.1)]
    assert all(b >= a - 1e-12 for a, b in zip(seq, seq[1:], strict=False)), seq
    assert seq[0] < 0.05 and seq[-1] > 0.9


def test_a_normal_panel_names_no_other_reading() -> None:
    r = _infer(_case({"tsh": 1.6, "ft4": 15.0, "ft3": 4.9, "prolactin": 200.0}))
    assert r.to_dict()["other_states"] == []


def test_other_states_are_exactly_the_non_normal_non_condition_states() -> None:
    for ax in MODEL.axes:
        for si, st in enumerate(ax.states):
            expected = not ax.condition_of[si] and not (st == "normal" or st.startswith("normal_"))
            assert bool(ax.other[si]) == expected, (ax.name, st)
            if expected:
                assert ax.descriptions.get(st), f"{ax.name}.{st} has no description"


def test_prior_set_requires_a_description_for_other_states() -> None:
    raw = copy.deepcopy(MODEL.spec.raw)
    del raw["axes"]["thyroid"]["states"]["low_t3_adaptive"]["description"]
    with pytest.raises(PriorSetError, match="low_t3_adaptive.*description"):
        spec_from_tables(raw, "test")


@pytest.mark.parametrize("src", [None, "no_such_source"])
def test_prior_set_requires_a_known_source_for_every_prevalence_modifier(src) -> None:
    raw = copy.deepcopy(MODEL.spec.raw)
    raw["prevalence"]["thyroid"]["modifiers"][0]["src"] = src
    with pytest.raises(PriorSetError, match=r"prevalence\.thyroid\.modifiers\[0\]"):
        spec_from_tables(raw, "test")
