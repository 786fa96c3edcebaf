"""Context pairs: the same results read with and without one context, as an endocrinologist would.

``cases/examples/context/pairs.yaml`` lists pairs of synthetic case files that differ only in one
context (a medication, a free-text context item or a patient field such as pregnancy, menopausal
status, menstrual phase or age).  For each pair the context must be recognised in ``with`` and
absent in ``without``, must move the named condition(s) in the stated direction, must keep the
optional absolute bounds, and the ``with`` report must say which effect it accounted for (the
right reason).  The expectations were written from textbook knowledge
(``shared/clinical/facts.md`` §1, §4, §5), never from engine output.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = ROOT / "cases" / "examples" / "context"
PAIRS_FILE = CONTEXT / "pairs.yaml"

PAIR_KEYS = {
    "with", "without", "flag", "flag_scope", "condition", "direction", "min_ratio",
    "with_below", "with_above", "without_below", "without_above", "accounted_text",
    "same_labs", "rationale", "known_limitation",
}
REQUIRED_KEYS = {"with", "without", "flag", "condition", "direction", "accounted_text",
                 "rationale"}
BOUNDS = ("with_below", "with_above", "without_below", "without_above")
CONDITION_IDS = {
    "primary_hypothyroidism", "subclinical_hypothyroidism", "central_hypothyroidism",
    "hyperthyroidism_overt", "hyperthyroidism_subclinical", "nonthyroidal_illness",
    "cushings_acth_dependent", "cushings_acth_independent", "adrenal_insufficiency_primary",
    "adrenal_insufficiency_secondary", "hypogonadism_primary_male", "hypogonadism_secondary_male",
    "hypogonadism_primary_female", "hypogonadism_secondary_female", "pcos", "hyperprolactinemia",
    "insulin_resistance", "prediabetes", "diabetes", "none",
}
#: context flags that come from a physiological state rather than a context flag (no pair flag)
STATE_PAIRS_WITHOUT_FLAG = {"macroprolactin", "age_tsh", "age_dheas"}


def _load_pairs() -> dict[str, dict[str, Any]]:
    with PAIRS_FILE.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


PAIRS: dict[str, dict[str, Any]] = _load_pairs()
PAIR_NAMES = sorted(PAIRS)


def _known(check: str) -> list:
    """Pairs with a documented model limitation for this check (``known_limitation`` in
    pairs.yaml): strict xfail, so the test turns red the day the model gets it right."""
    out = []
    for n in PAIR_NAMES:
        lim = (PAIRS[n].get("known_limitation") or {}).get(check)
        out.append(pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=lim)) if lim else n)
    return out


def _is_axis_state(name: str) -> bool:
    """``axis.state`` (e.g. ``thyroid.normal``): an axis state instead of a condition id."""
    return "." in name


def _conditions(entry: dict[str, Any]) -> list[str]:
    cond = entry["condition"]
    return [cond] if isinstance(cond, str) else list(cond)


@functools.cache
def _result(file_name: str):
    import neb_bayes as nb

    return nb.infer(nb.read_case(CONTEXT / file_name))


@functools.cache
def _report(file_name: str) -> dict[str, Any]:
    return _result(file_name).to_dict()


def _prob(file_name: str, entry: dict[str, Any]) -> float:
    result = _result(file_name)
    probs = result.probabilities
    total = 0.0
    for c in _conditions(entry):
        if _is_axis_state(c):
            axis, state = c.split(".")
            total += result.axis_states[axis][state]["probability"]
        else:
            total += probs[c]
    return float(total)


def _case_yaml(file_name: str) -> dict[str, Any]:
    with (CONTEXT / file_name).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _flags_in(file_name: str, entry: dict[str, Any]) -> set[str]:
    """Flags the engine recognised: patient-level context flags, or (scope `result`) the flags
    of the effects it applied to individual results."""
    if entry.get("flag_scope", "patient") == "result":
        return {a["flag"] for a in _report(file_name)["accounted_for"]}
    return set(_result(file_name).evidence.context.flags)


def _numbers(entry: dict[str, Any]) -> str:
    pw, po = _prob(entry["with"], entry), _prob(entry["without"], entry)
    return f"P({'+'.join(_conditions(entry))}): with={pw:.4g}, without={po:.4g}"


# ---------------------------------------------------------------- structure (no engine needed)


def test_pairs_file_is_not_empty() -> None:
    assert len(PAIRS) >= 30


@pytest.mark.parametrize("name", PAIR_NAMES)
def test_pair_entry_is_well_formed(name: str) -> None:
    entry = PAIRS[name]
    assert set(entry) <= PAIR_KEYS, f"unknown keys {set(entry) - PAIR_KEYS}"
    assert REQUIRED_KEYS <= set(entry), f"missing keys {REQUIRED_KEYS - set(entry)}"
    assert entry["direction"] in {"lower", "higher"}
    assert entry.get("flag_scope", "patient") in {"patient", "result"}
    for c in _conditions(entry):
        if _is_axis_state(c):
            from neb_bayes.model.compiled import load_model

            axes = {ax.name: ax.states for ax in load_model().axes}
            axis, state = c.split(".")
            assert state in axes.get(axis, ()), f"unknown axis state {c!r}"
        else:
            assert c in CONDITION_IDS, f"unknown condition {c!r}"
    for key in (*BOUNDS, "min_ratio"):
        if key in entry:
            assert isinstance(entry[key], (int, float))
    if "min_ratio" in entry:
        assert entry["min_ratio"] > 1
    for key in BOUNDS:
        if key in entry:
            assert 0 < entry[key] < 1
    rationale = entry["rationale"]
    assert isinstance(rationale, str) and ("facts" in rationale or "conditions.md" in rationale)
    for side in ("with", "without"):
        assert (CONTEXT / entry[side]).is_file(), f"{entry[side]} missing"
    assert entry["with"].endswith("_with.yaml") and entry["without"].endswith("_without.yaml")
    if entry["flag"] is None:
        assert name in STATE_PAIRS_WITHOUT_FLAG, "only state pairs may have no flag"


@pytest.mark.parametrize("name", PAIR_NAMES)
def test_pair_differs_only_in_context(name: str) -> None:
    """Same results and symptoms; only the patient block (the context) differs."""
    entry = PAIRS[name]
    w, wo = _case_yaml(entry["with"]), _case_yaml(entry["without"])
    assert w["id"] != wo["id"]
    assert w["patient"] != wo["patient"] or not entry.get("same_labs", True)
    assert w.get("symptoms") == wo.get("symptoms")
    if entry.get("same_labs", True):
        assert w["measurements"] == wo["measurements"]
    else:
        # the state is in the extra results of `with`; the shared results are identical
        assert w["measurements"][: len(wo["measurements"])] == wo["measurements"]
        assert w["patient"] == wo["patient"]


def test_every_case_file_is_in_a_pair() -> None:
    files = {p.name for p in CONTEXT.glob("*.yaml") if p.name != PAIRS_FILE.name}
    used = {e[s] for e in PAIRS.values() for s in ("with", "without")}
    assert files == used


def test_every_flag_with_effects_has_a_pair() -> None:
    from neb_bayes.model.compiled import load_model

    raw = load_model().spec.raw
    with_effects: set[str] = set()
    for row in raw.get("context_effects", []):
        flags = row["flag"] if isinstance(row["flag"], list) else [row["flag"]]
        with_effects.update(flags)
    for prev in raw["prevalence"].values():
        for mod in prev.get("modifiers", []):
            when = mod.get("when", {})
            if "flag" in when:
                with_effects.add(when["flag"])
            with_effects.update(when.get("any_flag", []))
    covered = {e["flag"] for e in PAIRS.values() if e["flag"]}
    assert with_effects - covered == set()
    assert raw.get("age_effects"), "age effects expected in the prior set"
    assert {"age_tsh", "age_dheas"} <= set(PAIRS)


# ---------------------------------------------------------------- the engine's reading


@pytest.mark.parametrize("name", PAIR_NAMES)
def test_flag_recognised_with_and_absent_without(name: str) -> None:
    entry = PAIRS[name]
    flag = entry["flag"]
    if flag is None:
        pytest.skip("state pair: no context flag")
    assert flag in _flags_in(entry["with"], entry), (
        f"{flag} not recognised in {entry['with']}: {sorted(_flags_in(entry['with'], entry))}")
    assert flag not in _flags_in(entry["without"], entry), (
        f"{flag} wrongly recognised in {entry['without']}")


@pytest.mark.parametrize("name", _known("direction"))
def test_direction(name: str) -> None:
    entry = PAIRS[name]
    pw, po = _prob(entry["with"], entry), _prob(entry["without"], entry)
    if entry["direction"] == "lower":
        assert pw < po, _numbers(entry)
    else:
        assert pw > po, _numbers(entry)
    ratio = entry.get("min_ratio")
    if ratio is not None:
        hi, lo = (po, pw) if entry["direction"] == "lower" else (pw, po)
        assert hi >= ratio * lo, f"{_numbers(entry)}; expected a ratio of at least {ratio}"


@pytest.mark.parametrize("name", [p for p in _known("bounds")
                                  if any(k in PAIRS[getattr(p, "values", [p])[0]] for k in BOUNDS)])
def test_absolute_bounds(name: str) -> None:
    entry = PAIRS[name]
    pw, po = _prob(entry["with"], entry), _prob(entry["without"], entry)
    failures = []
    if "with_below" in entry and not pw < entry["with_below"]:
        failures.append(f"with must be < {entry['with_below']}")
    if "with_above" in entry and not pw > entry["with_above"]:
        failures.append(f"with must be > {entry['with_above']}")
    if "without_below" in entry and not po < entry["without_below"]:
        failures.append(f"without must be < {entry['without_below']}")
    if "without_above" in entry and not po > entry["without_above"]:
        failures.append(f"without must be > {entry['without_above']}")
    assert not failures, f"{_numbers(entry)}: {'; '.join(failures)}"


@pytest.mark.parametrize("name", PAIR_NAMES)
def test_accounted_for_gives_the_right_reason(name: str) -> None:
    entry = PAIRS[name]
    text = entry["accounted_text"]
    if text is None:
        pytest.skip("prior-only effect or state: nothing to account for on a result")
    texts = [a["text"] for a in _report(entry["with"])["accounted_for"]]
    assert any(text in t for t in texts), f"{text!r} not in accounted_for: {texts}"
    # the effect must not be claimed where the context is absent
    if entry["flag"] is not None:
        texts_without = [a["text"] for a in _report(entry["without"])["accounted_for"]]
        assert not any(text in t for t in texts_without)
