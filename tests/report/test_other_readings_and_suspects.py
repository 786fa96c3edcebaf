"""Every probability the report gives carries its interval, "other readings" included; a
suspect result is named by the same field path (``measurements[i]``, 0-based) as the
warnings and "not used" entries."""

from __future__ import annotations

import re

import pytest

from neb_bayes.api import infer
from neb_bayes.report import RENDERERS
from neb_bayes.report.format import interval_text

from .conftest import example_result

#: a free T4 far above what the normal TSH (twice) and free T3 allow: a likely wrong result
SUSPECT_CASE = {
    "case_format": 1, "id": "suspect-ft4", "patient": {"sex": "F", "age": 40},
    "measurements": [
        {"analyte": "TSH", "specimen": "serum", "value": 1.5, "unit": "mIU/L", "collected": "09:00"},
        {"analyte": "TSH", "specimen": "serum", "value": 1.7, "unit": "mIU/L", "collected": "09:00",
         "day": 1},
        {"analyte": "Free T3", "specimen": "serum", "value": 4.8, "unit": "pmol/L",
         "collected": "09:00"},
        {"analyte": "Free T4", "specimen": "serum", "value": 70, "unit": "pmol/L",
         "collected": "09:00"},
    ],
}


@pytest.mark.parametrize("name", ["hard_macroprolactinaemia.yaml",
                                  "hard_isolated_low_ft3_outpatient.yaml"])
def test_other_readings_carry_their_interval(name):
    result = example_result(name)
    others = result.to_dict()["other_states"]
    assert others
    draws = result.draw_probs is not None and len(result.draw_probs) > 1
    for o in others:
        lo, hi = o["interval"]
        assert 0.0 <= lo <= hi <= 1.0
        text = interval_text(o["interval"], draws)
        for fmt in ("md", "html"):
            rendered = RENDERERS[fmt](result).replace("&gt;", ">").replace("&lt;", "<")
            line = next(ln for ln in rendered.replace("<li>", "\n").splitlines()
                        if o["description"] in ln.replace("&#x27;", "'"))
            assert f"interval {text}" in line, line


def test_the_interval_of_an_other_reading_is_the_draws_quantile():
    import numpy as np

    result = example_result("hard_isolated_low_ft3_outpatient.yaml")
    o = result.to_dict()["other_states"][0]
    ai = result.model.axis_names.index(o["axis"])
    col = sum(ax.n_states for ax in result.model.axes[:ai]) + \
        result.model.axes[ai].states.index(o["state"])
    q = (1 - result.interval_prob) / 2
    want = np.quantile(result.draw_states[:, col], [q, 1 - q])
    assert o["interval"] == pytest.approx(list(want), abs=1e-6)
    assert o["interval"][1] - o["interval"][0] > 1e-3      # the draws do disagree here


def test_a_suspect_result_is_named_by_its_field_path():
    result = infer(SUSPECT_CASE, uncertainty=False)
    (suspect,) = result.to_dict()["suspect_results"]
    i = suspect["measurement"]
    assert result.case.measurements[i].analyte == suspect["analyte"] == "ft4"
    assert f"measurements[{i}]" in suspect["text"]
    assert not re.search(r"measurement \d", suspect["text"])
    assert f"measurements[{i}]" in RENDERERS["md"](result)


def _woman_testosterone(value: float) -> dict:
    return {"case_format": 1, "id": f"t-{value}",
            "patient": {"sex": "F", "age": 26, "menstrual_phase": "follicular (day 5)"},
            "measurements": [{"analyte": "testosterone", "value": value, "unit": "nmol/L",
                              "collected": "08:30"}],
            "symptoms": {"present": ["hirsutism"]}}


def test_a_result_beyond_every_state_is_said_without_reading_it_as_wrong():
    """A woman's testosterone of 15 nmol/L (seven times the upper reference limit ~2.1,
    facts.md §1; PCOS rarely exceeds ~5, the threshold for an androgen-secreting tumour) lies
    beyond every state the model has: the report says so by its field path, while the
    probabilities keep it as hyperandrogenism (not a likely wrong result, not healthy)."""
    result = infer(_woman_testosterone(15.0), uncertainty=False)
    d = result.to_dict()
    (far,) = [s for s in d["suspect_results"] if s["kind"] == "beyond_every_state"]
    assert far["analyte"] == "testosterone" and "measurements[0]" in far["text"]
    assert "above" in far["text"]
    assert far["probability"] < 0.1            # not read as a wrong result
    assert d["none"]["probability"] < 0.05
    for fmt in ("md", "html"):
        assert "lies beyond the range of every state" in RENDERERS[fmt](result)


@pytest.mark.parametrize("value", [1.0, 4.0])
def test_a_result_within_a_states_range_is_not_said_to_lie_beyond(value):
    # 1.0 nmol/L: a healthy woman's median; 4.0: raised, within PCOS's range (facts §4g)
    d = infer(_woman_testosterone(value), uncertainty=False).to_dict()
    assert d["suspect_results"] == []


@pytest.mark.parametrize("name", ["normal_healthy_woman_01.yaml", "normal_healthy_man_01.yaml",
                                  "normal_healthy_older_woman_01.yaml"])
def test_healthy_examples_have_no_result_beyond_every_state(name):
    assert example_result(name).to_dict()["suspect_results"] == []
