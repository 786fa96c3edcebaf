"""What to test next: ranking, exactness against re-running inference, CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from neb_bayes import config, next_test
from neb_bayes.api import infer
from neb_bayes.case import read_case
from neb_bayes.case.model import Measurement
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.exact import infer_exact
from neb_bayes.next_test import (
    candidate_tests,
    load_condition_families,
    load_test_costs,
    next_tests,
    plan_next_tests,
)
from neb_bayes.posterior import Result

from .conftest import EXAMPLES, example_result

TSH_ONLY = {"id": "tsh-only", "patient": {"sex": "F", "age": 45},
            "measurements": [{"analyte": "TSH", "value": 8.5, "unit": "mIU/L"}]}
CENSORED = {"id": "tsh-ft4-censored", "patient": {"sex": "F", "age": 50},
            "measurements": [{"analyte": "TSH", "value": 6.5, "unit": "mIU/L"},
                             {"analyte": "FT4", "value": "<11", "unit": "pmol/L"}]}
# context cases: results read with context shifts and extra variance (pregnancy, drugs,
# illness), a changed daily rhythm (night shifts)
PREGNANT_T1 = {"id": "pregnant-t1", "patient": {"sex": "F", "age": 29, "pregnant": True,
                                                "gestational_week": 10},
               "measurements": [{"analyte": "TSH", "value": 0.02, "unit": "mIU/L"},
                                {"analyte": "FT4", "value": 16, "unit": "pmol/L"}],
               "symptoms": {"absent": ["palpitations", "tremor", "weight_loss"]}}
PREGNANT_T2 = {"id": "pregnant-t2", "patient": {"sex": "F", "age": 31, "pregnant": True,
                                                "gestational_week": 20},
               "measurements": [{"analyte": "TSH", "value": 0.08, "unit": "mIU/L"},
                                {"analyte": "FT4", "value": 13, "unit": "pmol/L"}]}
ICU = {"id": "icu", "patient": {"sex": "M", "age": 66, "context": ["septic shock, ICU day 3"]},
       "measurements": [{"analyte": "TSH", "value": 0.3, "unit": "mIU/L"},
                        {"analyte": "FT4", "value": 11, "unit": "pmol/L"}]}
RECOVERY = {"id": "recovery", "patient": {"sex": "F", "age": 58,
                                          "context": ["recovering from severe pneumonia"]},
            "measurements": [{"analyte": "TSH", "value": 7.5, "unit": "mIU/L"},
                             {"analyte": "FT4", "value": 13, "unit": "pmol/L"}]}
AMIODARONE = {"id": "amiodarone", "patient": {"sex": "M", "age": 70,
                                              "medications": ["amiodarone 200 mg daily"]},
              "measurements": [{"analyte": "TSH", "value": 0.2, "unit": "mIU/L"},
                               {"analyte": "FT4", "value": 24, "unit": "pmol/L"}]}
NIGHT_SHIFT = {"id": "night-shift", "patient": {"sex": "F", "age": 40,
                                                "context": ["night shift worker"]},
               "measurements": [{"analyte": "cortisol", "specimen": "saliva", "value": 20.0,
                                 "unit": "nmol/L", "collected": "23:00"}],
               "symptoms": {"present": ["weight_gain", "easy_bruising", "purple_striae",
                                        "moon_face", "facial_plethora", "proximal_weakness"]}}
#: the share of results above the 90th percentile of the probability after a test (and below
#: the 10th): as the probability averages to the current one over the results and lies in
#: [0, 1], the current one is at least 0.9 x the 10th percentile and at most 0.9 x the 90th
#: plus 0.1.  (A fixed slack of 0.02 around the range did not hold for a rare condition and a
#: test that excludes it: Cushing's at 3 % and a DST that reads it <0.1 % for 90 % of results.)
TAIL = 0.1
CONTEXT_CASES = [PREGNANT_T1, PREGNANT_T2, ICU, RECOVERY, AMIODARONE, NIGHT_SHIFT]


@pytest.fixture(scope="module")
def tsh_only() -> Result:
    return infer(read_case(TSH_ONLY), uncertainty=False)


def _questions(result: Result, targets: list[int]) -> list[tuple[int, np.ndarray]]:
    """``(axis, states answering yes)`` of each question: a target condition, or, for the
    members of a condition family not yet established (below ESTABLISHED_PROBABILITY now),
    one question whether the disease (any member) is present."""
    model = result.model
    marg = result.exact.marginals
    merged: set[int] = set()
    out = []
    for fam in load_condition_families():
        idx = [model.conditions.index(m) for m in fam.members]
        ai = int(model.cond_axis[idx[0]])
        mask = np.any([np.asarray(model.cond_states[c], bool) for c in idx], axis=0)
        if set(idx) & set(targets) and \
                float(np.asarray(marg[ai])[mask].sum()) < config.ESTABLISHED_PROBABILITY:
            merged.update(idx)
            out.append((ai, mask))
    out += [(int(model.cond_axis[c]), np.asarray(model.cond_states[c], bool))
            for c in targets if c not in merged]
    return out


def _entropy(result: Result, targets: list[int], marginals: list[np.ndarray]) -> float:
    """Summed over the target axes: the entropy (bits) of the answers to the axis' questions
    (:func:`_questions`; the axis' states grouped by their answers)."""
    questions = _questions(result, targets)
    total = 0.0
    for ai in {a for a, _ in questions}:
        cells: dict[tuple[bool, ...], float] = {}
        for j, pj in enumerate(np.asarray(marginals[ai])):
            key = tuple(bool(m[j]) for a, m in questions if a == ai)
            cells[key] = cells.get(key, 0.0) + float(pj)
        p = np.array([v for v in cells.values() if v > 0])
        total -= float((p * np.log2(p)).sum())
    return total


def _with_result(result: Result, cand, x: float):
    """The exact posterior with the candidate's result at log value ``x`` added as a
    measurement (the brute-force references below)."""
    m = Measurement(index=len(result.case.measurements), analyte=cand.analyte,
                    specimen=cand.specimen, value=math.exp(x), hour=cand.hour, day=0.0)
    case = dataclasses.replace(result.case, measurements=(*result.case.measurements, m))
    return infer_exact(result.model, build_evidence(result.model, case), explain=False)


def _brute_force_gain(result: Result, test: str, grid: np.ndarray) -> tuple[float, float]:
    """Expected entropy reduction by adding the result as a measurement and re-running
    exact inference on a fine grid of hypothetical values (trapezoid rule)."""
    plan = plan_next_tests(result)
    targets = [result.model.conditions.index(c) for c in plan.targets]
    cand = next(c for c in candidate_tests(result.model, result.evidence, result.case)
                if c.id == test)
    dens, ent = [], []
    for x in grid:
        post = _with_result(result, cand, x)
        dens.append(math.exp(post.log_evidence - result.exact.log_evidence))
        ent.append(_entropy(result, targets, post.marginals))
    dens_a, ent_a = np.array(dens), np.array(ent)
    mass = float(np.trapezoid(dens_a, grid))
    now = _entropy(result, targets, result.exact.marginals)
    return now - float(np.trapezoid(dens_a * ent_a, grid)) / mass, mass


def test_high_tsh_alone_puts_ft4_above_every_other_axis(tsh_only: Result) -> None:
    rows = next_tests(tsh_only, top=50)
    order = [r["test"] for r in rows]
    assert "ft4" in order
    ft4 = order.index("ft4")
    other_axes = [i for i, r in enumerate(rows) if r["axis"] != "thyroid"]
    assert other_axes, "other-axis candidates should be evaluated (prolactin depends on thyroid)"
    assert all(ft4 < i for i in other_axes)
    # the thyroid questions are the targets: overt vs subclinical vs normal
    plan = plan_next_tests(tsh_only)
    assert {"primary_hypothyroidism", "subclinical_hypothyroidism"} <= set(plan.targets)
    assert plan.axes == ["thyroid"]


@pytest.mark.parametrize(("case", "test", "lo", "hi"), [
    (TSH_ONLY, "ft4", 0.5, 5.0),
    (TSH_ONLY, "tpo_ab", -4.0, 10.0),
    (CENSORED, "tpo_ab", -4.0, 10.0),      # a censored result on the same axis
    (CENSORED, "ft3", -0.5, 3.5),
    (PREGNANT_T1, "trab", -4.0, 6.0),      # context: shifted, wider results on the axis
    (PREGNANT_T1, "ft3", -0.5, 3.5),
    (PREGNANT_T1, "tt4", 3.0, 7.0),        # the candidate itself is shifted by pregnancy
])
def test_gain_equals_rerunning_inference(case: dict, test: str, lo: float, hi: float) -> None:
    result = infer(read_case(case), uncertainty=False)
    fast = {r["test"]: r for r in plan_next_tests(result).rows}[test]
    brute, mass = _brute_force_gain(result, test, np.linspace(lo, hi, 701))
    assert mass == pytest.approx(1.0, abs=2e-3)
    assert fast["_quadrature_mass"] == pytest.approx(1.0, abs=1e-3)
    assert fast["expected_information_gain_bits"] == pytest.approx(brute, rel=0.02, abs=2e-3)


@pytest.mark.parametrize("case", CONTEXT_CASES, ids=[c["id"] for c in CONTEXT_CASES])
def test_predicted_probabilities_average_to_the_current_ones(case: dict) -> None:
    # a property of any case: the posterior expected over the predicted results is the
    # current probability (the predictive is the current posterior's), so the likely range
    # after a test cannot lie wholly on one side of it.  Pregnant cases broke it: the
    # hypothetical result was read without the context's extra variance (TRAb "9.9 % ->
    # 99.6 %..>99.9 %")
    result = infer(read_case(case), uncertainty=False)
    plan = plan_next_tests(result)
    assert plan.targets and plan.rows, "the case should leave something uncertain"
    for row in plan.rows:
        assert row["_quadrature_mass"] == pytest.approx(1.0, abs=2e-3), row["test"]
        for cond, after in row["_expected_probability"].items():
            now = result.probabilities[cond]
            # within the quadrature's error (16 Gauss-Hermite nodes per component: up to
            # ~0.005 where the posterior is steep in the result, fasting glucose near a cut)
            assert after == pytest.approx(now, abs=0.01), (row["test"], cond)
        for moved in row["conditions"]:
            lo, hi = moved["likely_range"]
            assert (1 - TAIL) * lo <= moved["probability"] <= (1 - TAIL) * hi + TAIL, \
                (row["test"], moved)


def test_measured_channels_are_not_candidates() -> None:
    result = example_result("cushings_acth_dependent_01.yaml")
    ids = {c.id for c in candidate_tests(result.model, result.evidence, result.case)}
    assert "cortisol_saliva_2300" not in ids      # measured at 23:00 twice
    assert "acth" not in ids and "ufc" not in ids and "cortisol_dst" not in ids
    assert {"cortisol_serum_0800", "cosyntropin"} <= ids


def test_dynamic_tests_are_candidates(tsh_only: Result) -> None:
    cands = {c.id: c for c in candidate_tests(tsh_only.model, tsh_only.evidence, tsh_only.case)}
    for cid, hour in [("cortisol_dst", None), ("cosyntropin", None),
                      ("cortisol_saliva_2300", 23.0), ("cortisol_serum_0800", 8.0)]:
        assert cid in cands, cid
        assert cands[cid].hour == hour
        assert cands[cid].dynamic
    assert "tsh" not in cands


def test_cost_weight_trades_gain_against_cost(tsh_only: Result) -> None:
    default, costs = load_test_costs()
    assert default > 0 and costs["tsh"] == 1.0
    plan = plan_next_tests(tsh_only, cost_weight=1.0)
    for r in plan.rows:
        assert r["score"] == pytest.approx(r["expected_information_gain_bits"]
                                           / r["relative_cost"], abs=1e-6)
    scores = [r["score"] for r in plan.rows]
    assert scores == sorted(scores, reverse=True)


def test_scope_all_adds_unasked_axes(tsh_only: Result) -> None:
    plan = plan_next_tests(tsh_only, scope="all")
    assert "metabolic" in plan.axes
    assert plan.entropy_bits > plan_next_tests(tsh_only).entropy_bits


def test_nothing_uncertain_gives_no_test() -> None:
    result = example_result("hard_primary_hypothyroidism_censored_ft4.yaml")
    plan = plan_next_tests(result)
    assert "primary_hypothyroidism" not in plan.targets    # > 99 %: settled
    rows = next_tests(result, top=5)
    assert len(rows) <= 5
    assert all(r["axis"] != "thyroid" or r["expected_information_gain_bits"] < 0.05
               for r in rows)


def test_every_example_ranks_without_rerunning_inference(example_name: str,
                                                          monkeypatch) -> None:
    """The ranking is preposterior analysis in closed form: it never re-runs the inference
    for a hypothetical result (that is what keeps it well under a second; its time is a
    benchmark, ``benchmarks/bench_report.py``, not a test)."""
    result = example_result(example_name)
    from neb_bayes.inference import exact

    def rerun(*_args, **_kwargs):
        raise AssertionError("next_tests re-ran the inference")

    monkeypatch.setattr(exact, "infer_exact", rerun)
    monkeypatch.setattr("neb_bayes.api.infer_exact", rerun)
    monkeypatch.setattr("neb_bayes.api.infer", rerun)
    rows = next_tests(result, top=5)
    gains = [r["expected_information_gain_bits"] for r in rows]
    assert gains == sorted(gains, reverse=True)
    assert all(g > 0 for g in gains)
    json.dumps(rows)          # plain types only


def test_cli_next_test_text_and_json(tmp_path) -> None:
    from neb_bayes.cli import main

    case = tmp_path / "tsh.json"
    case.write_text(json.dumps(TSH_ONLY), encoding="utf-8")
    res = CliRunner().invoke(main, ["next-test", str(case), "--top", "3"])
    assert res.exit_code == 0, res.output
    assert "free thyroxine" in res.output
    res = CliRunner().invoke(main, ["next-test", str(case), "--format", "json", "--top", "2",
                                    "--cost-weight", "0.5"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert len(out["tests"]) == 2 and out["cost_weight"] == 0.5
    assert out["targets"] and out["objective"]
    bad = CliRunner().invoke(main, ["next-test", str(EXAMPLES / "nope.yaml")])
    assert bad.exit_code == 2


def test_the_text_table_keeps_whole_names_lists_only_moves_and_explains_an_empty_one() -> None:
    """(Found by an audit: names were cut at 44 characters, conditions a test leaves where
    they are were listed as moved, and an empty table had no word of why.)"""
    from neb_bayes.cli.next_test_cmd import format_text

    long = "adrenocorticotropic hormone (ACTH) (08:00), a name well over forty-four letters"
    row = {"rank": 1, "label": long, "specimen": "plasma", "expected_information_gain_bits": 0.5,
           "relative_cost": 3.0, "score": 0.5,
           "conditions": [{"condition": "moved", "probability": 0.3, "likely_range": [0.1, 0.9]},
                          {"condition": "still", "probability": 0.705,
                           "likely_range": [0.704, 0.706]}]}
    plan = {"case_id": "c", "scope": "question", "cost_weight": 0.0, "targets": ["moved"],
            "entropy_bits": 1.0, "tests": [row]}
    text = format_text(plan)
    assert f"{long} [plasma]" in text
    assert "moved 30" in text
    assert "still" not in text
    empty = format_text({**plan, "tests": []})
    assert "no candidate test would change them" in empty


# ---------------------------------------------------------------------------------------------
# Cushing's work-up order (facts §4a, Nieman 2008): after excluding exogenous glucocorticoid do
# a high-accuracy screening test (1 mg DST, late-night salivary cortisol, 24-h UFC), a second
# one if it is abnormal, and only once hypercortisolism is established plasma ACTH, which
# splits ACTH-dependent from -independent disease but cannot establish it.
CUSHING_SIGNS = ["moon_face", "purple_striae", "easy_bruising", "proximal_weakness",
                 "hypertension"]
SCREENING = ("cortisol_dst", "ufc", "cortisol_saliva")


def _cushing_case(measurements: list[dict], signs: list[str]) -> Result:
    return infer(read_case({"id": "cushing-workup", "patient": {"sex": "F", "age": 50},
                            "measurements": measurements, "symptoms": {"present": signs}}),
                 uncertainty=False)


def _p_cushing(result: Result) -> float:
    p = result.probabilities
    return p["cushings_acth_dependent"] + p["cushings_acth_independent"]


def _acth_and_best_screening_gain(result: Result) -> tuple[float, float]:
    gains = {r["test"]: r["expected_information_gain_bits"]
             for r in plan_next_tests(result).rows}
    screening = [g for t, g in gains.items() if t.startswith(SCREENING)]
    assert screening, "a screening test should be a candidate"
    return gains["acth"], max(screening)


def test_screening_test_before_acth_while_hypercortisolism_is_open() -> None:
    # Cushing's signs and one abnormal screening test (late-night salivary cortisol above the
    # LC-MS/MS cut-off 0.09 µg/dL): the guideline asks for a second screening test.  The summed
    # yes/no entropy counted the ACTH split of the two subtypes twice and ranked ACTH first.
    result = _cushing_case([{"analyte": "cortisol", "specimen": "saliva", "value": 0.25,
                             "unit": "µg/dL", "collected": "23:00", "method": "lc-ms/ms"}],
                           CUSHING_SIGNS)
    assert 0.2 < _p_cushing(result) < 0.8, "precondition: hypercortisolism not established"
    acth, screening = _acth_and_best_screening_gain(result)
    assert screening > acth


def test_every_screening_test_before_acth_after_one_abnormal_one() -> None:
    # one abnormal screening test (LNSC 0.25 µg/dL), hypercortisolism open: the guideline's
    # next step is a second screening test, any of them (DST, UFC), and ACTH only once
    # hypercortisolism is established.  ACTH's bits for splitting the subtypes of a disease
    # still in doubt ranked it above UFC (0.98 against <0.74 bits) and level with the DST.
    result = _cushing_case([{"analyte": "cortisol", "specimen": "saliva", "value": 0.25,
                             "unit": "µg/dL", "collected": "23:00", "method": "lc-ms/ms"}],
                           CUSHING_SIGNS)
    assert 0.2 < _p_cushing(result) < config.ESTABLISHED_PROBABILITY, "precondition: open"
    plan = plan_next_tests(result)
    rank = {r["test"]: r["rank"] for r in plan.rows}
    assert rank["cortisol_dst"] < rank["acth"] and rank["ufc"] < rank["acth"], rank
    assert any("Cushing's syndrome" in n and "presence before subtype" in n
               for n in plan.notes)


def test_an_open_family_is_asked_as_presence(cushingoid: Result) -> None:
    # Cushing's ~1 %: the question is whether hypercortisolism is present; the entropy is
    # that of presence alone, and no test gains more than it
    plan = plan_next_tests(cushingoid)
    p = _p_cushing(cushingoid)
    presence = -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    assert plan.entropy_bits == pytest.approx(presence, rel=1e-6)
    assert all(r["expected_information_gain_bits"] <= presence + 1e-9 for r in plan.rows)


def test_acth_before_screening_once_hypercortisolism_is_established() -> None:
    # two abnormal screening tests (LNSC 0.30 µg/dL, DST cortisol 6.5 µg/dL > 1.8): the next
    # question is the cause, which ACTH answers and a third screening test does not
    result = _cushing_case(
        [{"analyte": "cortisol", "specimen": "saliva", "value": 0.30, "unit": "µg/dL",
          "collected": "23:00", "method": "lc-ms/ms"},
         {"analyte": "cortisol after 1 mg dexamethasone", "value": 6.5, "unit": "µg/dL",
          "collected": "08:00"}],
        ["hypertension", "easy_bruising"])
    assert _p_cushing(result) > 0.9, "precondition: hypercortisolism established"
    acth, screening = _acth_and_best_screening_gain(result)
    assert acth > screening


# ---------------------------------------------------------------------------------------------
# A rare condition under raised suspicion (Nieman 2008: test a patient with several features of
# high discriminatory value).  Cushingoid signs alone, no results: each Cushing's subtype stayed
# below the 1 % of "uncertain" and the adrenal axis moved less than 0.05, so nothing was a target
# and next-test listed no test in either scope.
NO_FINDINGS = {"id": "no-findings", "patient": {"sex": "F", "age": 50},
               "symptoms": {"absent": CUSHING_SIGNS + ["fatigue", "weight_gain"]}}
HEALTHY_EXAMPLES = ["normal_healthy_man_01.yaml", "normal_healthy_woman_01.yaml",
                    "normal_healthy_older_woman_01.yaml"]


@pytest.fixture(scope="module")
def cushingoid() -> Result:
    return _cushing_case([], CUSHING_SIGNS)


def _raised(plan) -> set[str]:
    return {d["condition"] for d in plan.target_reasons if "suspicion_raised" in d["why"]}


def test_cushingoid_signs_raise_the_suspicion_of_cushings(cushingoid: Result) -> None:
    prior = cushingoid.exact.prior_condition_probs
    conds = cushingoid.model.conditions
    p0 = sum(float(prior[conds.index(c)]) for c in ("cushings_acth_dependent",
                                                    "cushings_acth_independent"))
    p = _p_cushing(cushingoid)
    assert p < 0.05 and p > 10 * p0, "precondition: rare, but far above its prior"
    for scope in ("question", "all"):
        plan = plan_next_tests(cushingoid, scope=scope)
        assert "cushings_acth_dependent" in _raised(plan)
        for d in plan.target_reasons:
            if "suspicion_raised" in d["why"]:
                assert d["odds_ratio"] >= config.RAISED_ODDS_RATIO
                assert d["probability"] >= config.RAISED_MIN_PROBABILITY


@pytest.mark.parametrize("scope", ["question", "all"])
def test_cushingoid_signs_get_the_screening_tests_ranked_above_acth(
    cushingoid: Result, scope: str
) -> None:
    plan = plan_next_tests(cushingoid, scope=scope)
    rank = {r["test"]: r["rank"] for r in plan.rows}
    screening = [t for t in rank if t.startswith(SCREENING)]
    assert {t.split("_2300")[0] for t in screening} == set(SCREENING)
    assert all(rank[t] < rank["acth"] for t in screening), rank
    listed = next_tests(cushingoid, top=5, scope=scope)
    assert any(r["test"].startswith(SCREENING) for r in listed), listed
    if scope == "question":          # Cushing's is the only question: all three come first
        assert all(any(r["test"].startswith(s) for r in listed) for s in SCREENING)


def test_a_rare_raised_target_keeps_its_best_test_in_the_list(cushingoid: Result) -> None:
    # scope all: the metabolic screening questions hold ~1 bit each, Cushing's at 1 % 0.08 bits,
    # so by bits alone the cortisol tests rank below the 5th place
    plan = plan_next_tests(cushingoid, scope="all")
    best_five = [r["test"] for r in plan.rows if r["expected_information_gain_bits"] > 0][:5]
    assert not any(t.startswith(SCREENING) for t in best_five), "precondition"
    rows = plan.top(5)
    assert len(rows) == 5
    kept = [r for r in rows if r.get("listed_for")]
    assert [r["test"].startswith(SCREENING) for r in kept] == [True]
    assert "cushings_acth_dependent" in kept[0]["listed_for"]
    assert [r["rank"] for r in rows] == sorted(r["rank"] for r in rows)
    assert rows[0]["rank"] == 1                       # the best test overall stays


def test_every_raised_only_axis_has_its_best_test_listed(example_name: str) -> None:
    result = example_result(example_name)
    for scope in ("question", "all"):
        plan = plan_next_tests(result, scope=scope)
        listed = {r["test"] for r in plan.top(5)}
        for axis in plan.raised_axes():
            useful = [r for r in plan.rows if r["_gain_by_axis"].get(axis, 0.0) > 1e-4]
            if useful:
                best = max(useful, key=lambda r, a=axis: (r["_gain_by_axis"][a], -r["rank"]))
                assert best["test"] in listed, (scope, axis)


def test_raised_targets_follow_the_documented_rule(example_name: str) -> None:
    # the rule, from the condition probabilities and this patient's prior: posterior odds at
    # least RAISED_ODDS_RATIO times the prior odds, probability in [floor, 99 %]
    result = example_result(example_name)
    e = result.exact
    expected = set()
    for ci, c in enumerate(result.model.conditions):
        p, p0 = float(e.condition_probs[ci]), float(e.prior_condition_probs[ci])
        if 0 < p0 < 1 and config.RAISED_MIN_PROBABILITY <= p <= 0.99:
            if (p / (1 - p)) / (p0 / (1 - p0)) >= config.RAISED_ODDS_RATIO:
                expected.add(c)
    plan = plan_next_tests(result)
    assert _raised(plan) == expected
    assert set(plan.targets) >= expected
    assert [d["condition"] for d in plan.target_reasons] == plan.targets


@pytest.mark.parametrize("name", HEALTHY_EXAMPLES + ["no findings"])
def test_no_findings_raise_no_suspicion(name: str) -> None:
    result = (infer(read_case(NO_FINDINGS), uncertainty=False) if name == "no findings"
              else example_result(name))
    for scope in ("question", "all"):
        plan = plan_next_tests(result, scope=scope)
        assert not _raised(plan), plan.target_reasons
        assert not plan.raised_axes()
        assert not any(r.get("listed_for") for r in plan.top(5))


def test_the_raised_odds_threshold_is_the_configured_one(
    cushingoid: Result, monkeypatch: pytest.MonkeyPatch
) -> None:
    ratio = min(d["odds_ratio"] for d in plan_next_tests(cushingoid).target_reasons)
    monkeypatch.setattr(config, "RAISED_ODDS_RATIO", 2 * ratio)
    assert not plan_next_tests(cushingoid).targets
    monkeypatch.setattr(config, "RAISED_ODDS_RATIO", 10.0)
    monkeypatch.setattr(config, "RAISED_MIN_PROBABILITY", 0.5)
    assert not plan_next_tests(cushingoid).targets


def test_cli_and_html_say_why_each_condition_is_a_target(tmp_path, cushingoid: Result) -> None:
    from neb_bayes.cli import main
    from neb_bayes.report.html import _next_test_section

    case = tmp_path / "cushingoid.json"
    case.write_text(json.dumps({"id": "cushingoid", "patient": {"sex": "F", "age": 50},
                                "symptoms": {"present": CUSHING_SIGNS}}), encoding="utf-8")
    res = CliRunner().invoke(main, ["next-test", str(case)])
    assert res.exit_code == 0, res.output
    assert "cushings_acth_dependent" in res.output and "suspicion raised" in res.output
    assert "salivary cortisol" in res.output and "dexamethasone" in res.output
    res = CliRunner().invoke(main, ["next-test", str(case), "--format", "json"])
    out = json.loads(res.output)
    assert [d["condition"] for d in out["target_reasons"]] == out["targets"]
    assert all(d["why"] for d in out["target_reasons"])
    res = CliRunner().invoke(main, ["next-test", str(case), "--scope", "all"])
    assert "listed as the best test for the raised suspicion" in res.output
    plan = plan_next_tests(cushingoid)
    html = _next_test_section(plan.top(5), None, plan)
    assert "suspicion raised" in html and "cushings_acth_dependent" in html


# ---------------------------------------------------------------------------------------------
# One procedure, several results: the cosyntropin test gives cortisol at 30 and 60 min
# (Bornstein 2016, facts §4b: the peak at 30 or 60 min), a 75 g OGTT the fasting and the 2-h
# glucose (ADA, facts §4f).  Each was listed as if its results were separate tests (two
# cosyntropin rows with the same gain), a 2-h glucose as if it could be ordered without an OGTT.
SUSPECTED_AI = {"id": "suspected-ai", "patient": {"sex": "F", "age": 45},
                "measurements": [{"analyte": "cortisol", "specimen": "serum", "value": 6.0,
                                  "unit": "µg/dL", "collected": "08:00"}],
                "symptoms": {"present": ["fatigue", "weight_loss"]}}


@pytest.fixture(scope="module")
def suspected_ai() -> Result:
    return infer(read_case(SUSPECTED_AI), uncertainty=False)


def _result_names(result: Result, cand) -> set[str]:
    return {result.model.channels[ci].name for ci, _ in cand.parts}


def test_a_procedure_is_one_candidate_with_all_its_results(suspected_ai: Result) -> None:
    cands = candidate_tests(suspected_ai.model, suspected_ai.evidence, suspected_ai.case)
    results = [_result_names(suspected_ai, c) for c in cands]
    stim = {"cortisol_acth_stim_30", "cortisol_acth_stim_60"}
    assert stim in results                                    # one test, both results
    assert not any(r & stim and r != stim for r in results)   # never one of them alone
    assert {"glucose_fasting", "glucose_ogtt_2h"} in results  # the OGTT
    assert {"glucose_ogtt_2h"} not in results                 # no 2-h glucose without it
    assert {"glucose_fasting"} in results                     # a fasting glucose alone
    ids = [c.id for c in cands]
    assert len(ids) == len(set(ids))
    rows = plan_next_tests(suspected_ai).rows
    assert [r["results"] for r in rows].count(sorted(stim)) == 1
    assert not any(r["results"] in (["cortisol_acth_stim_30"], ["cortisol_acth_stim_60"])
                   for r in rows)


def _as_single(result: Result, cand, channel: int):
    ch = result.model.channels[channel]
    return dataclasses.replace(cand, id=ch.name, channel=channel, analyte=ch.analyte,
                               channels=(), hours=())


def test_both_results_of_a_procedure_tell_at_least_as_much_as_either(
    suspected_ai: Result,
) -> None:
    # the information of two results is at least that of one of them (data processing)
    cands = {c.id: c for c in candidate_tests(suspected_ai.model, suspected_ai.evidence,
                                              suspected_ai.case)}
    for pid in ("cosyntropin", "ogtt"):
        proc = cands[pid]
        singles = [_as_single(suspected_ai, proc, ci) for ci, _ in proc.parts]
        rows = {r["test"]: r["expected_information_gain_bits"]
                for r in plan_next_tests(suspected_ai, candidates=[proc, *singles]).rows}
        assert rows[pid] >= max(rows[s.id] for s in singles) - 1e-3, rows
        assert rows[pid] > 0


def _brute_force_pair_gain(result: Result, test: str, u: np.ndarray,
                           v: np.ndarray) -> tuple[float, float]:
    """As :func:`_brute_force_gain` for a test with two results, on a grid of their mean
    ``u`` and difference ``v`` (log values; the pair is strongly correlated)."""
    plan = plan_next_tests(result)
    targets = [result.model.conditions.index(c) for c in plan.targets]
    cand = next(c for c in candidate_tests(result.model, result.evidence, result.case)
                if c.id == test)
    (c1, h1), (c2, h2) = cand.parts
    n = len(result.case.measurements)
    dens, ent = np.zeros((u.size, v.size)), np.zeros((u.size, v.size))
    for i, ui in enumerate(u):
        for j, vj in enumerate(v):
            ms = tuple(Measurement(index=n + k, analyte=result.model.channels[c].analyte,
                                   specimen=cand.specimen, value=math.exp(x), hour=h, day=0.0)
                       for k, (c, h, x) in enumerate([(c1, h1, ui - vj / 2),
                                                      (c2, h2, ui + vj / 2)]))
            case = dataclasses.replace(result.case, measurements=(*result.case.measurements, *ms))
            post = infer_exact(result.model, build_evidence(result.model, case), explain=False)
            dens[i, j] = math.exp(post.log_evidence - result.exact.log_evidence)
            ent[i, j] = _entropy(result, targets, post.marginals)
    mass = float(np.trapezoid(np.trapezoid(dens, v, axis=1), u))
    after = float(np.trapezoid(np.trapezoid(dens * ent, v, axis=1), u)) / mass
    return _entropy(result, targets, result.exact.marginals) - after, mass


def test_procedure_gain_equals_rerunning_inference_with_both_results(
    suspected_ai: Result,
) -> None:
    fast = {r["test"]: r for r in plan_next_tests(suspected_ai).rows}["cosyntropin"]
    brute, mass = _brute_force_pair_gain(suspected_ai, "cosyntropin",
                                         np.linspace(2.0, 9.5, 151), np.linspace(-1.5, 1.5, 61))
    assert mass == pytest.approx(1.0, abs=2e-3)
    assert fast["_quadrature_mass"] == pytest.approx(1.0, abs=1e-3)
    assert fast["expected_information_gain_bits"] == pytest.approx(brute, rel=0.02, abs=2e-3)


# ---------------------------------------------------------------------------------------------
# What the 10th-90th percentile range hides: a screening test takes Cushing's from ~0.7 % to
# 10 % or more in ~1 % of its results (a positive test, LR+ ~10-15: facts §4a), and "would
# move" showed "0.7 % -> <0.1 %..<0.1 %".  Each listed condition now has the chance of reaching
# each decision level (chance_at_least / chance_at_most).
def _brute_force_posteriors(result: Result, test: str, cond: str,
                            grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictive density and the condition's probability after each value of ``grid`` (log
    result), by adding it as a measurement and re-running exact inference."""
    cand = next(c for c in candidate_tests(result.model, result.evidence, result.case)
                if c.id == test)
    ci = result.model.conditions.index(cond)
    dens, after = [], []
    for x in grid:
        post = _with_result(result, cand, x)
        dens.append(math.exp(post.log_evidence - result.exact.log_evidence))
        after.append(float(post.condition_probs[ci]))
    return np.array(dens), np.array(after)


@pytest.mark.parametrize(("test", "lo", "hi"), [("cortisol_dst", -2.0, 8.0),
                                                 ("acth", -2.0, 8.0)])
def test_level_chances_are_the_share_of_results_reaching_the_level(
    cushingoid: Result, test: str, lo: float, hi: float
) -> None:
    cond = "cushings_acth_dependent"
    row = {r["test"]: r for r in plan_next_tests(cushingoid).rows}[test]
    moved = next(c for c in row["conditions"] if c["condition"] == cond)
    grid = np.linspace(lo, hi, 1501)
    dens, after = _brute_force_posteriors(cushingoid, test, cond, grid)
    mass = float(np.trapezoid(dens, grid))
    assert mass == pytest.approx(1.0, abs=2e-3)
    assert moved["chance_at_least"] and not moved["chance_at_most"]     # rare: levels above
    for d in moved["chance_at_least"]:
        assert d["level"] > moved["probability"]
        share = float(np.trapezoid(dens * (after >= d["level"]), grid)) / mass
        assert d["chance"] == pytest.approx(share, abs=2e-3), d


def test_level_chances_keep_the_bound_of_an_average(example_name: str) -> None:
    # the probability after a test averages to the current one p and lies in [0, 1], so it
    # reaches a level L > p in at most p / L of results (Markov), and L < p in at most
    # (1 - p) / (1 - L)
    plan = plan_next_tests(example_result(example_name))
    for row in plan.rows:
        for c in row["conditions"]:
            p = c["probability"]
            assert [d["level"] for d in c["chance_at_least"]] == [
                lv for lv in next_test.DECISION_LEVELS if lv > p]
            for d in c["chance_at_least"]:
                assert d["chance"] <= p / d["level"] + 0.01, (row["test"], c)
            for d in c["chance_at_most"]:
                assert d["chance"] <= (1 - p) / (1 - d["level"]) + 0.01, (row["test"], c)


def test_a_rare_conditions_rise_is_shown_where_the_range_hides_it(
    cushingoid: Result, tmp_path
) -> None:
    from neb_bayes.cli import main
    from neb_bayes.report.markdown import render_markdown

    row = {r["test"]: r for r in plan_next_tests(cushingoid).rows}["cortisol_dst"]
    moved = next(c for c in row["conditions"] if c["condition"] == "cushings_acth_dependent")
    assert moved["likely_range"][1] < 0.1, "precondition: the range hides the rise"
    ten = next(d for d in moved["chance_at_least"] if d["level"] == 0.1)
    assert ten["chance"] >= next_test.SHOW_MIN_CHANCE
    assert ">=10 %" in next_test.tail_text(moved)
    case = tmp_path / "cushingoid.json"
    case.write_text(json.dumps({"id": "c", "patient": {"sex": "F", "age": 50},
                                "symptoms": {"present": CUSHING_SIGNS}}), encoding="utf-8")
    text = CliRunner().invoke(main, ["next-test", str(case)])
    assert text.exit_code == 0, text.output
    dst_line = next(ln for ln in text.output.splitlines() if "dexamethasone" in ln)
    assert "cushings_acth_dependent" in dst_line and ">=10 %" in dst_line
    md = render_markdown(cushingoid)
    dst_md = next(ln for ln in md.splitlines() if "dexamethasone" in ln and ln.startswith("|"))
    assert ">=10 %" in dst_md


# ---------------------------------------------------------------------------------------------
# A channel's floor (priors: HbA1c 32.2 mmol/mol, glucose 85 mg/dL fasting): a real result
# below it is read at it, and so must next-test's hypothetical results be, or it scores
# readings no report would make (an HbA1c of 25 mmol/mol read as diabetes, the Gaussian tail
# the floor is there to cut off).
FASTING_95 = {"id": "fpg-95", "patient": {"sex": "M", "age": 50},
              "measurements": [{"analyte": "fasting glucose", "value": 95, "unit": "mg/dL"}]}


def test_a_hypothetical_result_below_the_floor_reads_as_a_report_with_it() -> None:
    result = infer(read_case(FASTING_95), uncertainty=False)
    cand = next(c for c in candidate_tests(result.model, result.evidence, result.case)
                if c.id == "hba1c")
    floor = math.exp(result.model.channels[cand.channel].log_floor)
    values = [0.6 * floor, 0.8 * floor, 0.95 * floor, floor, 1.1 * floor]
    after = next_test.probabilities_after(result, cand, np.log(values)[:, None])
    for v, fast in zip(values, after, strict=True):
        report = _with_result(result, cand, math.log(v))
        # the report's gross-error component (which next-test leaves out) moves these by
        # <1e-3 here; read unfloored, 0.6 x the floor put P(diabetes) 0.08 higher
        np.testing.assert_allclose(fast, report.condition_probs, rtol=0, atol=2e-3,
                                   err_msg=f"HbA1c {v:.3g} mmol/mol")
