"""A lower prolactin never raises P(hyperprolactinaemia), on a fine grid, beside a lesion too.

Hyperprolactinaemia is prolactin above the reference interval (facts §4e: one raised value
confirms; StatPearls, facts §1), so a prolactin below the interval is never evidence of excess:
it is hypoprolactinaemia, lactotroph loss or a dopamine agonist's work (priors `prl_floor`).
Over 0.3-500 ng/mL in steps of ~3.3 % (200 log-spaced points), a higher prolactin is never
less evidence for the excess, in a woman and a man, with and without a known pituitary lesion
(whose prior odds, ~50 % in women, once made the excess state's wide tail win far below the
interval: 1 ng/mL read hyperprolactinaemia 91 %, 0.5 ng/mL 100 %).  Below the channel's floor
(the excess-vs-normal likelihood-ratio minimum, priors `prl_floor`) a result is read at it.

Known failure (strict xfail, so that a fix shows): beside overt primary hypothyroidism, which
raises prolactin +0.3 log units in every prolactin state, the likelihood-ratio minimum lies
0.3 higher in that state (7.3 ng/mL in women) than the floor (5.4 ng/mL), so with TSH 60 mIU/L
and FT4 5 pmol/L P(hyperprolactinaemia) falls from 1.7e-4 at the floor to 8.3e-5 at 9.8 ng/mL in
a woman of 35 (a man: 3.2e-5 to 2.5e-5 at 7.2); a floor that high would floor half of healthy
men's results.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

import neb_bayes as nb

#: the probabilities move by at most this against the definition (rounding only)
TOL = 1e-9
#: ng/mL, 0.3 to 500, log-spaced
GRID = np.exp(np.linspace(np.log(0.3), np.log(500.0), 200))
ANALYTES = ("prolactin", "monomeric prolactin")
LESIONS = {"none": (), "macroadenoma": ("pituitary macroadenoma",), "adenoma": ("pituitary adenoma",)}
#: overt primary hypothyroidism (facts §4c): TSH far above, FT4 below the interval
HYPOTHYROID = ({"analyte": "TSH", "value": 60.0, "unit": "mIU/L"},
               {"analyte": "free T4", "value": 5.0, "unit": "pmol/L"})


def _p_hyperprolactinaemia(analyte: str, value: float, sex: str, context: tuple[str, ...],
                           extra: tuple[dict, ...] = ()) -> float:
    patient = {"sex": sex, "age": 35, **({"context": list(context)} if context else {})}
    case = {"case_format": 1, "id": f"prl-{value:.3f}", "patient": patient,
            "measurements": [{"analyte": analyte, "value": float(value), "unit": "ng/mL"},
                             *extra]}
    return nb.infer(case, uncertainty=False, explain=False).probabilities["hyperprolactinemia"]


def _assert_monotone(analyte: str, sex: str, context: tuple[str, ...],
                     extra: tuple[dict, ...] = ()) -> None:
    p = [_p_hyperprolactinaemia(analyte, v, sex, context, extra) for v in GRID]
    for (a, b), (p0, p1) in zip(pairwise(GRID), pairwise(p), strict=True):
        assert p1 >= p0 - TOL, (f"P(hyperprolactinaemia) falls from {p0:.6g} to {p1:.6g} "
                                f"between {a:.3g} and {b:.3g} ng/mL")


@pytest.mark.parametrize("lesion", list(LESIONS))
@pytest.mark.parametrize("sex", ["F", "M"])
@pytest.mark.parametrize("analyte", ANALYTES)
def test_a_higher_prolactin_never_lowers_p_hyperprolactinaemia(analyte, sex, lesion) -> None:
    _assert_monotone(analyte, sex, LESIONS[lesion])


@pytest.mark.xfail(strict=True, reason="known: module doc (hypothyroidism's prolactin shift)")
@pytest.mark.parametrize("sex", ["F", "M"])
def test_beside_primary_hypothyroidism(sex) -> None:
    _assert_monotone("prolactin", sex, (), HYPOTHYROID)


@pytest.mark.parametrize("lesion", ["pituitary macroadenoma", "pituitary adenoma"])
@pytest.mark.parametrize("value", [0.5, 0.8, 1.0, 2.0])
def test_very_low_prolactin_beside_a_lesion_is_not_excess(lesion, value) -> None:
    # a woman of 35 with a known pituitary lesion and a prolactin far below the interval
    # (4.8-23.3 ng/mL, priors prl_ri): not hyperprolactinaemia whatever the lesion's odds
    assert _p_hyperprolactinaemia("prolactin", value, "F", (lesion,)) < 0.05


def test_very_low_prolactin_beside_a_lesion_reads_below_the_lesions_prior() -> None:
    # the lesion alone (no prolactin measured: a cortisol in its interval stands in) gives the
    # prior; a prolactin below the interval can only lower it
    patient = {"sex": "F", "age": 35, "context": ["pituitary macroadenoma"]}
    case = {"case_format": 1, "id": "prior", "patient": patient,
            "measurements": [{"analyte": "cortisol", "value": 400.0, "unit": "nmol/L",
                              "collected": "08:00"}]}
    prior = nb.infer(case, uncertainty=False, explain=False).probabilities["hyperprolactinemia"]
    assert _p_hyperprolactinaemia("prolactin", 0.8, "F", ("pituitary macroadenoma",)) < prior
