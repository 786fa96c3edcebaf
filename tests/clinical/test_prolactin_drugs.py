"""Drug-induced hyperprolactinaemia is hyperprolactinaemia; pregnancy's rise is physiology.

Expectations come from the definitions and cited figures, never from engine output:

- hyperprolactinaemia is true (monomeric) prolactin excess; macroprolactin alone does not
  count (conditions.md).  A dopamine antagonist (risperidone, amisulpride, haloperidol,
  metoclopramide, ...) raises the real hormone: a raised prolactin on it *is* the condition,
  the drug its cause (hyperprolactinaemia in up to 70 % of antipsychotic users, facts.md §4e;
  88 % of women on risperidone, Kinon 2003), as opioids are the cause of secondary
  hypogonadism; the report names the drug under "accounted for" with the prior it gave;
- a normal prolactin on the drug is not the condition (the result is within the reference
  interval, facts.md §1 prolactin row), and a higher prolactin is never less of it;
- PEG recovery < 40 % with a normal monomeric prolactin is macroprolactinaemia (facts.md §4e),
  an assay matter, whatever the drug;
- pregnancy raises prolactin physiologically (lactotroph hyperplasia; third-trimester
  interval 4,087-9,734 mIU/L against 179-758 in non-pregnant women, Hu et al., CCLM 2018);
  the Endocrine Society excludes pregnancy before calling hyperprolactinaemia (facts.md §4e
  "Diagnosis"), so a prolactin inside the pregnancy interval is not the condition.
"""

from __future__ import annotations

import dataclasses
import math
from statistics import NormalDist

import pytest

import neb_bayes as nb
from neb_bayes.model.compiled import load_model

#: 1 ng/mL = 21.2 mIU/L (WHO 84/500; facts.md §1 prolactin row)
MIU_PER_NG = 21.2
#: Serri's "moderate" band of antipsychotic-induced hyperprolactinaemia (1,085-1,595 mIU/L,
#: facts.md §1), ~2.4x the women's upper limit (23.3 ng/mL = 494 mIU/L)
MODERATE_MIU = 1200.0
RISPERIDONE = "risperidone 4 mg daily"


def _woman(medications: tuple[str, ...] = (), **fields) -> dict:
    return {"sex": "F", "age": 34, "pregnant": False, "menopausal_status": "premenopausal",
            "menstrual_phase": "follicular (day 6)", "medications": list(medications), **fields}


def _case(patient: dict, prolactin_miu: float, extra: tuple[tuple, ...] = ()) -> dict:
    measurements = [{"analyte": "prolactin", "value": prolactin_miu, "unit": "mIU/L",
                     "specimen": "serum", "collected": "10:00"}]
    measurements += [{"analyte": a, "value": v, "unit": u, "specimen": "serum",
                      "collected": "10:00"} for a, v, u in extra]
    return {"case_format": 1, "id": "prl", "patient": patient, "measurements": measurements}


def _report(patient: dict, prolactin_miu: float, extra: tuple[tuple, ...] = ()) -> dict:
    return nb.infer(_case(patient, prolactin_miu, extra), uncertainty=False).to_dict()


def _p(report: dict) -> float:
    return report["conditions"]["hyperprolactinemia"]["probability"]


def _prior_entries(report: dict, flag: str) -> list[dict]:
    return [a for a in report["accounted_for"]
            if a["flag"] == flag and a.get("kind") == "prior_odds"]


# ----------------------------------------------------------------------------- antipsychotics
def test_a_raised_prolactin_on_risperidone_is_hyperprolactinaemia() -> None:
    """1,200 mIU/L on risperidone is true excess caused by the drug: high, at least as high as
    without it (it read 0.1 %: the drug's result shift made it look normal), and the report
    names risperidone as the context that made it likely."""
    on = _report(_woman((RISPERIDONE,)), MODERATE_MIU)
    off = _report(_woman(), MODERATE_MIU)
    assert _p(off) > 0.5, _p(off)
    assert _p(on) > 0.8, _p(on)
    assert _p(on) >= _p(off)
    entries = _prior_entries(on, "dopamine_antagonist")
    assert entries, on["accounted_for"]
    before, after = entries[0]["prior_change"]["hyperprolactinemia"]
    assert after > 10 * before, entries[0]


def test_the_drug_does_not_read_the_prolactin_result_away() -> None:
    """No accounted-for entry of the drug claims the prolactin result as a shifted reading: the
    drug raises the hormone itself, it does not disturb its measurement."""
    on = _report(_woman((RISPERIDONE,)), MODERATE_MIU)
    entries = [a for a in on["accounted_for"] if a["flag"] == "dopamine_antagonist"]
    assert entries
    for entry in entries:
        assert not any(item.startswith("measurements") for item in entry["items"]), entry


def test_a_normal_prolactin_on_risperidone_is_not_hyperprolactinaemia() -> None:
    """10 ng/mL (mid reference interval) on risperidone: not the condition, and far below the
    drug's prior (a normal result is evidence against excess)."""
    on = _report(_woman((RISPERIDONE,)), round(10.0 * MIU_PER_NG, 1))
    assert _p(on) < 0.1, _p(on)
    prior = _prior_entries(on, "dopamine_antagonist")[0]["prior_change"]["hyperprolactinemia"][1]
    assert _p(on) < prior / 5


#: from below the women's lower limit (4.8 ng/mL) to a macroadenoma's (usually > 375 ng/mL,
#: facts.md §4e) and beyond
GRID_NG = [2, 3, 4, 5, 6, 8, 10, 12, 15, 18, 20, 23, 25, 30, 40, 60, 80, 120, 200, 300, 400,
           500, 700, 1000]


def _monotone_on_risperidone(model, grid_ng: list[float]) -> list[tuple]:
    """(ng/mL, P) pairs where P(hyperprolactinaemia) fell from the previous grid point."""
    ps = [nb.infer(_case(_woman((RISPERIDONE,)), round(ng * MIU_PER_NG, 1)), model,
                   uncertainty=False, explain=False).probabilities["hyperprolactinemia"]
          for ng in grid_ng]
    return [(grid_ng[i], ps[i], grid_ng[i + 1], ps[i + 1]) for i in range(len(ps) - 1)
            if ps[i + 1] < ps[i] - 1e-9]


def test_prolactin_is_monotone_on_risperidone() -> None:
    """With the drug, a higher prolactin never reads as less hyperprolactinaemia, given that the
    result is right (no gross error: the definition's statement).  With gross errors a result
    that no state expects may be the wrong one, and a higher one can lower the probability by
    at most P(it is wrong) (ARCHITECTURE.md "Known limits", as for TSH): below 1e-4 here over
    the clinical range.  (With the all-cause state's spread it fell from 4 % at 3 ng/mL to 2 %
    at 5, and read 1 ng/mL as 97 %.)"""
    exact = dataclasses.replace(load_model(), gross_error_rate=0.0)
    assert _monotone_on_risperidone(exact, GRID_NG) == []
    dips = _monotone_on_risperidone(load_model(), GRID_NG[1:-3])
    assert all(pa - pb < 1e-4 for _, pa, _, pb in dips), dips


def test_macroprolactin_on_risperidone_is_still_macroprolactinaemia() -> None:
    """Total 1,500 mIU/L with PEG recovery 25 % (< 40 %) and monomeric 300 mIU/L: the raised
    total is big-big prolactin (facts.md §4e), an assay matter the drug does not change."""
    labs = (("prolactin_peg_recovery", 25.0, "%"), ("prolactin_monomeric", 300.0, "mIU/L"))
    on = _report(_woman((RISPERIDONE,)), 1500.0, labs)
    assert _p(on) < 0.5, _p(on)
    states = on["axes"]["prolactin"]
    assert states["macroprolactinemia"]["probability"] > 0.5, states


@pytest.mark.parametrize("medication", ["olanzapine 10 mg nocte", "methadone 60 mg daily"])
def test_other_prolactin_raising_drugs_make_a_raised_prolactin_likelier(medication: str) -> None:
    """Olanzapine (hyperprolactinaemia in ~30-45 %, Amaladoss 2016) and opioids (15 % of
    methadone-maintained men, Spasovska Trajanovska 2013) raise true prolactin too: a mildly
    raised prolactin (650 mIU/L, ~1.3x the upper limit) is likelier the condition on them."""
    on = _report(_woman((medication,)), 650.0)
    off = _report(_woman(), 650.0)
    assert _p(on) > _p(off), (_p(on), _p(off))
    assert any(a.get("kind") == "prior_odds" and "hyperprolactinemia" in a["prior_change"]
               for a in on["accounted_for"]), on["accounted_for"]


def test_two_prolactin_raising_drugs_do_not_stack() -> None:
    """Risperidone with olanzapine is no likelier hyperprolactinaemia a priori than risperidone
    alone: one prior for the drug-induced state, not the product of both drugs' odds."""
    both = _report(_woman((RISPERIDONE, "olanzapine 5 mg")), 300.0)
    one = _report(_woman((RISPERIDONE,)), 300.0)
    assert _p(both) == pytest.approx(_p(one), rel=1e-6)


# ----------------------------------------------------------------------------- pregnancy
#: Hu et al. (CCLM 2018), one ECLIA assay: non-pregnant women 179-758 mIU/L (the lab's
#: reference interval the results are read against), third trimester 4,087-9,734 mIU/L
HU_NON_PREGNANT = [179.0, 758.0]


@pytest.mark.parametrize("prolactin_miu", [4500.0, 7000.0, 9500.0])
def test_a_third_trimester_prolactin_is_physiology(prolactin_miu: float) -> None:
    """Week 32, prolactin inside the third-trimester interval of the same assay (Hu 2018):
    physiology, not hyperprolactinaemia; the same value outside pregnancy is the condition."""
    def report(patient: dict) -> dict:
        case = _case(patient, prolactin_miu)
        case["measurements"][0]["reference_interval"] = HU_NON_PREGNANT
        return nb.infer(case, uncertainty=False).to_dict()

    pregnant = report(_woman(pregnant=True, gestational_week=32, menstrual_phase=None))
    assert _p(pregnant) < 0.1, _p(pregnant)
    assert _p(report(_woman())) > 0.9


# ------------------------------------------------- a prolactin near the upper limit on the drug
#: women's upper reference limit, ng/mL (Roche, facts.md §1 prolactin row; priors: prl_ri)
WOMEN_ULN_NG = 23.3
#: women on risperidone with prolactin above the upper limit (Kinon 2003: 88 %)
RISPERIDONE_ABOVE_ULN = 0.88
#: log spreads of prolactin across women on the drug whose mean spans Kinon's 69 ng/mL (women
#: of reproductive age on any antipsychotic, the lower end) to ~125 ng/mL
DRUG_LOG_SDS = (0.6, 0.8, 1.0)
#: a single result's noise about the person's level: CVI 20-30 %, CVA 6 % (facts.md §2)
NOISE_LOG_SDS = tuple(math.sqrt(math.log(1 + cvi ** 2) + math.log(1 + 0.06 ** 2))
                      for cvi in (0.20, 0.25, 0.30))


def _p_true_level_above_uln(result_ng: float, drug_sd: float, noise_sd: float) -> float:
    """P(the woman's own level is above the upper limit | one result), her level log-normal
    across women on risperidone through Kinon's 88 % above the limit, the result her level
    with the day-to-day and assay noise: the definition (true excess above the interval)
    applied to the published distribution, independent of the engine's states."""
    mu = math.log(WOMEN_ULN_NG) + NormalDist().inv_cdf(RISPERIDONE_ABOVE_ULN) * drug_sd
    var = 1 / (1 / drug_sd ** 2 + 1 / noise_sd ** 2)
    mean = var * (mu / drug_sd ** 2 + math.log(result_ng) / noise_sd ** 2)
    return 1 - NormalDist(mean, math.sqrt(var)).cdf(math.log(WOMEN_ULN_NG))


@pytest.mark.parametrize("result_ng", [16.0, 20.0, WOMEN_ULN_NG, 27.0, 30.0])
def test_near_the_upper_limit_on_risperidone_reads_as_the_published_distribution(
        result_ng: float) -> None:
    """Guard for the drug-level row (c_prl_drug_level): 20 ng/mL on risperidone in a woman
    reads ~39 % hyperprolactinaemia.  That is what the published distribution gives: with 88 %
    of women on the drug above 23.3 ng/mL and a result's noise of CVI 20-30 %, a single 20 ng/mL
    leaves the woman's own level above the limit with probability 0.30-0.53 (0.05-0.28 at 16,
    0.79-0.86 at 27).  The engine must stay within 0.06 of that range."""
    refs = [_p_true_level_above_uln(result_ng, d, n) for d in DRUG_LOG_SDS for n in NOISE_LOG_SDS]
    p = _p(_report(_woman((RISPERIDONE,)), round(result_ng * MIU_PER_NG, 1)))
    assert min(refs) - 0.06 <= p <= max(refs) + 0.06, (p, min(refs), max(refs))
