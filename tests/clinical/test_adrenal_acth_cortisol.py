"""ACTH tells primary from secondary adrenal insufficiency (facts §4b): in primary AI the
ACTH is raised by the lost feedback of cortisol, the more the lower the cortisol (Bornstein
2016; priors `pai_feedback`), so a very low morning cortisol beside an ACTH within its
reference interval is no pattern of primary AI."""

from __future__ import annotations

import neb_bayes as nb


def _probs(cortisol_nmol: float, acth_pg: float) -> dict[str, float]:
    case = {"case_format": 1, "id": f"ai-{cortisol_nmol}-{acth_pg}",
            "patient": {"sex": "M", "age": 45},
            "measurements": [
                {"analyte": "cortisol", "value": cortisol_nmol, "unit": "nmol/L",
                 "collected": "08:00"},
                {"analyte": "ACTH", "value": acth_pg, "unit": "pg/mL", "collected": "08:00"}]}
    return nb.infer(case, uncertainty=False, explain=False).probabilities


def test_a_very_low_cortisol_with_a_normal_acth_does_not_read_primary_ai() -> None:
    """08:00 cortisol 30 nmol/L with ACTH 36 pg/mL (within 7-63 pg/mL): primary AI would
    have the ACTH in the hundreds at such a cortisol.  Read 0.79 primary before the
    within-state feedback; an uncertain pattern now, primary below one half."""
    p = _probs(30.0, 36.0)
    assert p["adrenal_insufficiency_primary"] < 0.5


def test_with_a_very_low_cortisol_the_acth_decides_the_kind() -> None:
    """The same cortisol (30 nmol/L): a high ACTH reads primary, a low one secondary."""
    high, low = _probs(30.0, 400.0), _probs(30.0, 8.0)
    assert high["adrenal_insufficiency_primary"] > 0.95
    assert low["adrenal_insufficiency_secondary"] > 0.7
    assert low["adrenal_insufficiency_primary"] < 0.15
