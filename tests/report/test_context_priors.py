"""Context that changes prior odds (a medication, critical illness, pregnancy) is named in the
report: under "accounted for" with what it did to the prior, among the items that moved a
condition, and never hidden behind "rests on the population prior"."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from neb_bayes.api import infer
from neb_bayes.case import read_case
from neb_bayes.cli import main
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.exact import condition_log_odds, infer_exact
from neb_bayes.model.compiled import load_model, view_for_sex
from neb_bayes.model.prior import Covariates, without_flags
from neb_bayes.posterior import Result

CASE = Path(__file__).with_name("cases") / "icu_prednisolone_thyroid_only.yaml"
CONDITION = "adrenal_insufficiency_secondary"


def _case_without_medications(tmp_path: Path) -> Path:
    data = yaml.safe_load(CASE.read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    data["patient"]["medications"] = []
    out = tmp_path / "without.yaml"
    out.write_text(yaml.safe_dump(data), encoding="utf-8")
    return out


def _report(path: Path, fmt: str) -> str:
    res = CliRunner().invoke(main, ["report", str(path), "--format", fmt])
    assert res.exit_code == 0, res.output
    return res.output


def _glucocorticoid_entries(d: dict) -> list[dict]:
    return [a for a in d["accounted_for"] if a.get("kind") == "prior_odds"
            and "adrenal" in a.get("axes", [])]


def test_the_medication_changes_the_condition_and_the_json_report_says_so(tmp_path):
    with_med = json.loads(_report(CASE, "json"))
    without = json.loads(_report(_case_without_medications(tmp_path), "json"))
    p_with = with_med["conditions"][CONDITION]["probability"]
    p_without = without["conditions"][CONDITION]["probability"]
    assert p_with > 20 * p_without          # the case is about a large prior-odds effect
    entries = _glucocorticoid_entries(with_med)
    assert entries and not _glucocorticoid_entries(without)
    entry = entries[0]
    assert "patient.medications[0]" in entry["items"]
    assert CONDITION in entry["text"]
    before, after = entry["prior_change"][CONDITION]
    assert after > 20 * before
    # among what moved the condition: the context's prior odds, first
    rows = with_med["evidence"][CONDITION]
    assert rows[0]["kind"] == "context" and rows[0]["flag"] == entry["flag"]
    assert rows[0]["log_bayes_factor"] > 2
    # the axis is unassessed, but its prior is not the population's
    assert "adrenal" in with_med["unassessed_axes"]
    assert with_med["population_prior"][CONDITION] == pytest.approx(before, abs=1e-6)


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_markdown_and_html_name_it_and_do_not_call_it_the_population_prior(tmp_path, fmt):
    text = _report(CASE, fmt)
    label = "exogenous glucocorticoid"
    assert text.count(label) >= 3             # accounted for, what moved, the adrenal axis
    lines = [ln for ln in text.replace("<", "\n<").splitlines() if "population prior" in ln]
    assert lines and not any("adrenal" in ln for ln in lines), lines
    assert any("adrenal" in ln and label in ln for ln in text.replace("<", "\n<").splitlines()
               if "No usable result" in ln)
    without = _report(_case_without_medications(tmp_path), fmt)
    assert label not in without
    assert any("adrenal" in ln for ln in without.replace("<", "\n<").splitlines()
               if "population prior" in ln)


def test_a_context_log_bayes_factor_is_the_exact_change_without_its_prior_odds():
    """Leave-one-out for a context flag: the condition's log odds under the case's prior less
    those under the prior without that flag's prevalence modifiers (likelihood unchanged)."""
    case = read_case(CASE)
    model = view_for_sex(load_model(), case.patient.sex)
    ev = build_evidence(model, case)
    post = infer_exact(model, ev)
    names = [*model.conditions, "none"]
    groups = [g for g in post.groups if g["kind"] == "context"]
    assert {g["flag"] for g in groups} >= {"glucocorticoid", "critical_illness"}
    for g in groups:
        gi = post.groups.index(g)
        alt = infer_exact(model, build_evidence(
            model, case, covariates=without_flags(ev.covariates, {g["flag"]})), explain=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            want = (condition_log_odds(model, np.log(post.joint))
                    - condition_log_odds(model, np.log(alt.joint)))
        k = names.index(CONDITION if g["flag"] == "glucocorticoid" else "nonthyroidal_illness")
        assert post.log_bf[gi, k] == pytest.approx(want[k], abs=1e-6)


def _flags_with_prior_odds() -> list[str]:
    raw = load_model().spec.raw["prevalence"]
    flags = []
    for prev in raw.values():
        for mod in prev.get("modifiers", []):
            when = mod["when"]
            flags += [when["flag"]] if "flag" in when else list(when.get("any_flag", []))
    return sorted(set(flags))


def _sex_for(flag: str) -> str:
    """A sex whose prior the flag changes: "M" where its odds name only men's states
    (testosterone therapy: male hypogonadism), else "F"."""
    raw = load_model().spec.raw
    sexes = set()
    for axis, prev in raw["prevalence"].items():
        states = raw["axes"][axis]["states"]
        for mod in prev.get("modifiers", []):
            when = mod["when"]
            if flag == when.get("flag") or flag in when.get("any_flag", []):
                sexes |= {(states[s] or {}).get("sex") for s in mod["odds"]}
    return "M" if sexes == {"M"} else "F"


def _companion_flags(flag: str) -> frozenset[str]:
    """Flags the flag's rows also need where every one of them needs another (``flag`` with
    ``any_flag``: aripiprazole's odds apply beside a prolactin-raising drug): the first named."""
    rows = [mod["when"] for prev in load_model().spec.raw["prevalence"].values()
            for mod in prev.get("modifiers", []) if mod["when"].get("flag") == flag]
    if rows and all("any_flag" in when for when in rows):
        return frozenset({rows[0]["any_flag"][0]})
    return frozenset()


@pytest.mark.parametrize("flag", _flags_with_prior_odds())
def test_every_flag_with_prior_odds_is_accounted_for(flag):
    """Data-driven: whatever flag the prior set gives prior odds is named with its axis (beside
    the flags its rows also need, which are then named too)."""
    sex = _sex_for(flag)
    companions = _companion_flags(flag)
    # a woman of 44 with her status given: from 45 she is read as in the menopause transition
    # or, still cycling, at the age of ovarian ageing, flags with prior odds of their own
    # (the flag under test is given with the covariates, at 45, below)
    patient = {"sex": sex, "age": 44} | ({"menopausal_status": "premenopausal"} if sex == "F"
                                         else {})
    case = read_case({"case_format": 1, "id": f"flag-{flag}",
                      "patient": patient, "measurements": [],
                      "symptoms": {"absent": ["goiter"]}})
    model = view_for_sex(load_model(), sex)
    ev = build_evidence(model, case, covariates=Covariates(sex=sex, age=45,
                                                           flags=frozenset({flag}) | companions))
    result = Result(case=case, evidence=ev, model=model, exact=infer_exact(model, ev))
    d = result.to_dict()
    entries = [a for a in d["accounted_for"] if a.get("kind") == "prior_odds"]
    assert sorted(a["flag"] for a in entries) == sorted({flag} | companions)
    entry = next(a for a in entries if a["flag"] == flag)
    assert entry["axes"]
    rows = [mod for prev in model.spec.raw["prevalence"].values()
            for mod in prev.get("modifiers", []) if mod.get("when", {}).get("flag") == flag]
    if rows and all(mod.get("text") for mod in rows):
        # rows that pick a healthy state's phase: named by their text, no condition's prior moved
        assert all(mod["text"] in entry["text"] for mod in rows), entry["text"]
    else:
        assert entry["prior_change"]
    # without the flag: nothing (but, for a woman whose phase is not written, the phases of
    # her cycle summed over, which every such report names)
    assert [a for a in infer(case).to_dict()["accounted_for"]
            if a["flag"] != "cycle_phase_unknown"] == []


def test_the_json_report_with_context_priors_matches_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    from importlib import resources

    schema = json.loads(resources.files("neb_bayes.report").joinpath(
        "schema/report.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(json.loads(_report(CASE, "json")))


@pytest.mark.parametrize(("sex", "named"), [("F", False), ("M", True)])
def test_a_flag_that_changes_no_prior_for_this_patient_is_not_accounted_for(sex, named):
    """Testosterone therapy's prior odds concern men's states (male hypogonadism): in a woman
    they change no condition's prior, so the report does not list them; in a man it does.
    (Opioids served here until their prior odds on hyperprolactinaemia, a woman's condition
    too, were added.)"""
    case = read_case({"case_format": 1, "id": f"testosterone-{sex}",
                      "patient": {"sex": sex, "age": 44,
                                  # a woman's status given, under 45 (from 45: the transition
                                  # or ovarian ageing, flags with prior odds of their own)
                                  "menopausal_status": "premenopausal" if sex == "F" else None,
                                  # her phase written: no phases summed over, named as such
                                  "menstrual_phase": "follicular (day 5)" if sex == "F" else None,
                                  "medications": ["testosterone gel 50 mg daily"]},
                      "measurements": [], "symptoms": {"absent": ["goiter"]}})
    d = infer(case).to_dict()
    entries = [a for a in d["accounted_for"] if a.get("kind") == "prior_odds"]
    assert bool(entries) is named, entries
    for entry in entries:
        assert entry["prior_change"], entry
