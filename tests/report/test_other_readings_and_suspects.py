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
