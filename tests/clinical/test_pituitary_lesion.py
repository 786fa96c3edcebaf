"""A known pituitary lesion: the central reading of a low FT4 with a normal TSH.

The figures: central hypothyroidism is an FT4 below its reference interval with a low, normal
or mildly raised TSH, in pituitary or hypothalamic disease (facts §4c, Endocrine Society
hypopituitarism guideline 2016 / ETA 2018).  In a man with a known pituitary macroadenoma that
pattern is central hypothyroidism; without the lesion the same numbers are rare enough
(1:20,000-1:80,000, facts §5) that other readings compete.  A lesion is not a deficit: normal FT4
and TSH beside it are not central hypothyroidism.  Expectations come from those definitions,
never from engine output.
"""

from __future__ import annotations

import neb_bayes as nb
from neb_bayes.posterior import Result

CENTRAL = "central_hypothyroidism"
MACROADENOMA = "3.1 cm non-functioning pituitary macroadenoma on MRI"


def _infer(ft4: float, tsh: float, context: list[str]) -> Result:
    case = {"id": "pituitary-lesion",
            "patient": {"sex": "M", "age": 55, "context": context},
            "measurements": [
                {"analyte": "FT4", "value": ft4, "unit": "pmol/L", "collected": "08:30"},
                {"analyte": "TSH", "value": tsh, "unit": "mIU/L", "collected": "08:30"}]}
    return nb.infer(case, uncertainty=False)


def _thyroid_conditions(result: Result) -> dict[str, float]:
    return {c: p for c, p in result.probabilities.items()
            if c.endswith("thyroidism") or c.startswith("hyperthyroidism")
            or c == "nonthyroidal_illness"}


def test_low_ft4_with_normal_tsh_beside_a_macroadenoma_is_central_hypothyroidism() -> None:
    # FT4 7.8 pmol/L (< 10, facts §1) with TSH 0.9 mIU/L (in range)
    result = _infer(7.8, 0.9, [MACROADENOMA])
    probs = _thyroid_conditions(result)
    assert probs[CENTRAL] >= 0.5 and max(probs, key=probs.get) == CENTRAL, probs
    items = [row["item"] for row in result.to_dict()["not_used"]]
    assert "patient.context[0]" not in items, items


def test_the_lesion_raises_the_central_reading_of_the_same_results() -> None:
    without = _infer(7.8, 0.9, [])
    with_lesion = _infer(7.8, 0.9, [MACROADENOMA])
    assert with_lesion.probabilities[CENTRAL] > without.probabilities[CENTRAL]


def test_a_lesion_with_normal_thyroid_results_is_not_central_hypothyroidism() -> None:
    # FT4 14 and TSH 1.2: in range, so no deficit whatever the MRI shows
    assert _infer(14.0, 1.2, [MACROADENOMA]).probabilities[CENTRAL] < 0.05


def test_a_negated_lesion_changes_nothing() -> None:
    negated = _infer(7.8, 0.9, ["MRI: no pituitary adenoma"])
    plain = _infer(7.8, 0.9, [])
    assert abs(negated.probabilities[CENTRAL] - plain.probabilities[CENTRAL]) < 1e-9
