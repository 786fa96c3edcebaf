"""A known non-functioning pituitary adenoma: stalk-compression prolactin and central deficits.

The figures (priors/default.yaml: sources c_nfpa_prl, c_nfpa_deficits): beside a non-functioning
macroadenoma prolactin is raised by stalk compression in 29.4 % of 201 (Park 2018), 38.5 % of
226 (Karavitaki 2006) and 62.1 % of 140 patients (Dublin 2008), almost always below 2,000 mIU/L;
at presentation central hypothyroidism is found in 42 % (157/375) and ACTH deficiency in 36 %
(132/375) of 383 patients (reviews: TSH deficiency 8-81 %, ACTH 17-62 % across series).  The
words "non-functioning" say the adenoma secretes no hormone, so a case's text that says so is
read, not listed as unrecognised.  Expectations come from those figures, never from engine
output.
"""

from __future__ import annotations

import dataclasses

import pytest

import neb_bayes as nb
from neb_bayes.model.compiled import load_model

NFPA = "2.4 cm non-functioning pituitary macroadenoma on MRI"
#: the lowest and highest series' 95 % binomial limits (29.4 % of 201: 23-36 %; 62.1 % of 140:
#: 54-70 %)
STALK_HYPERPROLACTINAEMIA = (0.23, 0.70)
#: 42 % (157/375) and 36 % (132/375): the series' 95 % binomial intervals, widened to the
#: reviews' middle ranges
CENTRAL_HYPOTHYROIDISM = (0.25, 0.60)
SECONDARY_ADRENAL_INSUFFICIENCY = (0.20, 0.55)


def _case(context: list[str], sex: str, prolactin_ng: float | None = None) -> dict:
    patient = {"sex": sex, "age": 55, "context": context}
    result = ({"analyte": "TSH", "value": 1.5, "unit": "mIU/L", "collected": "09:00"}
              if prolactin_ng is None else
              {"analyte": "prolactin", "value": prolactin_ng, "unit": "ng/mL",
               "specimen": "serum", "collected": "09:00"})
    return {"case_format": 1, "id": "nfpa", "patient": patient, "measurements": [result]}


def _probs(context: list[str], sex: str) -> dict[str, float]:
    """Probabilities with no result on the axes asked about (a TSH of 1.5 only moves the thyroid
    axis, so the thyroid figure is read from the prior itself)."""
    return nb.infer(_case(context, sex), uncertainty=False, explain=False).probabilities


def _prior(context: list[str], sex: str, condition: str) -> float:
    """The condition's prior with the case's context (the report's "accounted for" entry)."""
    report = nb.infer(_case(context, sex), uncertainty=False).to_dict()
    entries = [a for a in report["accounted_for"] if a.get("kind") == "prior_odds"
               and condition in a.get("prior_change", {})]
    assert entries, report["accounted_for"]
    return entries[0]["prior_change"][condition][1]


@pytest.mark.parametrize("sex", ["F", "M"])
def test_stalk_compression_prolactin_is_as_common_as_in_the_series(sex: str) -> None:
    low, high = STALK_HYPERPROLACTINAEMIA
    assert low <= _probs([NFPA], sex)["hyperprolactinemia"] <= high


@pytest.mark.parametrize("sex", ["F", "M"])
def test_central_deficits_are_as_common_as_at_presentation(sex: str) -> None:
    """Before any result on the axis: central hypothyroidism ~42 %, ACTH deficiency ~36 %
    (they were 3 % and 15 %: the lesion alone, read as any pituitary disease)."""
    lo, hi = CENTRAL_HYPOTHYROIDISM
    assert lo <= _prior([NFPA], sex, "central_hypothyroidism") <= hi
    lo, hi = SECONDARY_ADRENAL_INSUFFICIENCY
    assert lo <= _probs([NFPA], sex)["adrenal_insufficiency_secondary"] <= hi


@pytest.mark.parametrize("text", ["NFPA with suprasellar extension",
                                  "non-functioning adenoma, 2.2 cm"])
def test_the_words_non_functioning_are_read(text: str) -> None:
    """'NFPA' and 'non-functioning adenoma' name the lesion (they were listed as not
    recognised and changed nothing)."""
    report = nb.infer(_case([text], "M"), uncertainty=False).to_dict()
    assert "patient.context[0]" not in [row["item"] for row in report["not_used"]]
    assert _prior([text], "M", "central_hypothyroidism") > 0.2


@pytest.mark.parametrize("sex", ["F", "M"])
def test_beside_the_adenoma_a_higher_prolactin_is_never_less_excess(sex: str) -> None:
    """Over 2-1,000 ng/mL P(hyperprolactinaemia) does not fall as prolactin rises, and a very
    low prolactin (lactotroph loss) is not excess (with the all-cause spread and the adenoma's
    prior 1 ng/mL read 89 % in a woman), and a prolactinoma's level beside a 'non-functioning'
    label is still excess.  Without gross errors strictly; with them a higher result may lower
    it by at most P(it is wrong) (ARCHITECTURE.md "Known limits"): below 1e-4 up to 250 ng/mL
    (beyond, by ~2e-3 at 1,000 ng/mL: still > 99 %)."""
    values = [2.0, 4.0, 8.0, 15.0, 25.0, 40.0, 94.0, 250.0, 500.0, 1000.0]
    one_ng = nb.infer(_case([NFPA], sex, 1.0), uncertainty=False, explain=False)
    assert one_ng.probabilities["hyperprolactinemia"] < 0.05
    exact = dataclasses.replace(load_model(), gross_error_rate=0.0)
    for model, grid, tolerance in ((exact, values, 1e-9), (load_model(), values[:-2], 1e-4)):
        probs = [nb.infer(_case([NFPA], sex, v), model, uncertainty=False, explain=False)
                 .probabilities["hyperprolactinemia"] for v in grid]
        assert all(b >= a - tolerance for a, b in zip(probs, probs[1:], strict=False)), probs
        assert probs[0] < 0.05 and probs[-1] > 0.9, probs
