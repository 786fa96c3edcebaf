"""Rows of one `group` do not stack: combined T4/T3 therapy is one thyroid hormone replacement.

Levothyroxine and liothyronine each raise the prior odds of (treated) primary hypothyroidism
and move its latent distribution (treated disease reads near-normal).  Taken together they are
one replacement, not two: before the rows were grouped, the odds multiplied (150 x 100) and
the latent shifts added (TSH drive -2.4 - 2.2), so a suppressed TSH on combined therapy read
as treated hypothyroidism (0.89) instead of over-replacement, as on either drug alone.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from neb_bayes.case.model import Case, Measurement, Medication, Patient
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.exact import infer_exact
from neb_bayes.model.compiled import compile_spec, load_model
from neb_bayes.model.prior import Covariates, applied_modifiers, first_of_group, log_prior
from neb_bayes.model.spec import PriorSetError, spec_from_tables

MODEL = load_model()
BOTH = ("levothyroxine", "liothyronine")


def _case(meds: tuple[str, ...], tsh: float, ft4: float, ft3: float) -> Case:
    ms = (Measurement(0, "tsh", "serum", tsh), Measurement(1, "ft4", "serum", ft4),
          Measurement(2, "ft3", "serum", ft3))
    return Case(id="replacement", patient=Patient(
        sex="F", age=50, medications=tuple(Medication(name=m, raw=m) for m in meds)),
        measurements=ms)


def _probs(model, case) -> dict[str, float]:
    post = infer_exact(model, build_evidence(model, case), explain=False)
    return dict(zip(model.conditions, post.condition_probs, strict=True))


def _ungrouped(model):
    raw = copy.deepcopy(model.spec.raw)
    for mod in raw["prevalence"]["thyroid"]["modifiers"]:
        mod.pop("group", None)
    for row in raw["context_effects"]:
        row.pop("group", None)
    return compile_spec(spec_from_tables(raw, "test"))


def test_first_of_group_keeps_ungrouped_rows_and_the_first_of_each_group() -> None:
    rows = [{"id": 1, "group": "g"}, {"id": 2}, {"id": 3, "group": "g"}, {"id": 4, "group": "h"},
            {"id": 5, "group": "h"}]
    kept = first_of_group(rows, lambda r: r["id"] != 4)
    assert [r["id"] for r in kept] == [1, 2, 5]


def test_combined_therapy_has_the_prior_and_latent_shift_of_one_replacement() -> None:
    both, lt4 = (Covariates(sex="F", age=50, flags=frozenset(f)) for f in (BOTH, BOTH[:1]))
    assert [m["when"] for m in applied_modifiers(MODEL, both) if m["axis"] == "thyroid"] == \
        [m["when"] for m in applied_modifiers(MODEL, lt4) if m["axis"] == "thyroid"]
    np.testing.assert_array_equal(log_prior(MODEL, both), log_prior(MODEL, lt4))
    ev_both = build_evidence(MODEL, _case(BOTH, 1.5, 14.0, 4.5))
    ev_lt4 = build_evidence(MODEL, _case(BOTH[:1], 1.5, 14.0, 4.5))
    thyroid = MODEL.axis_index("thyroid")
    for got, want in zip(ev_both.lat_shift[thyroid], ev_lt4.lat_shift[thyroid], strict=True):
        np.testing.assert_array_equal(got, want)


def test_suppressed_tsh_on_combined_therapy_reads_as_over_replacement() -> None:
    """As on levothyroxine alone; ungrouped, the stacked shifts read it as treated disease."""
    case = _case(BOTH, 0.05, 20.0, 6.5)
    grouped = _probs(MODEL, case)
    assert grouped["hyperthyroidism_subclinical"] > 0.8
    assert grouped["hyperthyroidism_subclinical"] > 5 * grouped["primary_hypothyroidism"]
    lt4 = _probs(MODEL, _case(BOTH[:1], 0.05, 20.0, 6.5))
    assert abs(grouped["hyperthyroidism_subclinical"] - lt4["hyperthyroidism_subclinical"]) < 0.1
    stacked = _probs(_ungrouped(MODEL), case)
    assert stacked["primary_hypothyroidism"] > 0.5     # the defect the grouping removes


def test_liothyronine_alone_keeps_its_own_rows() -> None:
    cov = Covariates(sex="F", age=50, flags=frozenset(BOTH[1:]))
    assert any(m["when"] == {"flag": "liothyronine"} for m in applied_modifiers(MODEL, cov))
    ev = build_evidence(MODEL, _case(BOTH[1:], 1.5, 14.0, 4.5))
    assert MODEL.axis_index("thyroid") in ev.lat_shift


@pytest.mark.parametrize("where", ["modifier", "latent", "shift"])
def test_prior_set_rejects_a_bad_group(where: str) -> None:
    raw = copy.deepcopy(MODEL.spec.raw)
    if where == "modifier":
        raw["prevalence"]["thyroid"]["modifiers"][0]["group"] = ""
    elif where == "latent":
        next(r for r in raw["context_effects"] if "latent" in r)["group"] = 3
    else:   # a measurement shift: every matching row applies, a group would mean nothing
        next(r for r in raw["context_effects"] if "analyte" in r)["group"] = "g"
    with pytest.raises(PriorSetError, match="group"):
        spec_from_tables(raw, "test")
