"""The report's evidence breakdown: each group's log Bayes factor (leave that group out, the
change in the condition's log odds) is exact for confident cases too.

The log odds of a condition is ``log P(c) - log P(not c)``, each side summed over its own
joint states; taken as ``logit(p)`` from ``p`` alone it keeps three digits at ``1 - p`` of
1e-13 and none past 1e-16, where the textbook overt hyperthyroidism case sits (its TSH,
antibodies and eye signs vanished from the breakdown, FT3 and FT4 read +4 instead of +17).
The references here are sums in log space (scipy's ``logsumexp``) over the exact engine's
joint posterior of the case with and without the group."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp

from neb_bayes.batch.export import case_to_dict
from neb_bayes.case import read_case
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.exact import (
    _condition_matrix,
    condition_log_odds,
    infer_exact,
)
from neb_bayes.model.compiled import load_model

MODEL = load_model()
EXAMPLE = Path(__file__).resolve().parents[2] / "cases" / "examples" / "hyperthyroidism_overt_01.yaml"


def _log_odds_reference(log_joint: np.ndarray) -> np.ndarray:
    """log P(c) - log P(not c) of every condition (and none) by logsumexp over each side."""
    lj = log_joint.reshape(-1)
    m = _condition_matrix(MODEL) > 0
    with np.errstate(divide="ignore"):
        return np.array([logsumexp(lj[row]) - logsumexp(lj[~row]) for row in m])


def _posterior(case):
    ev = build_evidence(MODEL, case)
    post = infer_exact(MODEL, ev)
    with np.errstate(divide="ignore"):
        return post, np.log(post.joint)


def test_log_odds_equal_sums_in_log_space_even_where_sides_underflow():
    """On the example's posterior and on a far sharper one (log joint x 40: the complement
    of the leading condition ~1e-300 of its mass and below), each side's sum equals the
    log-space reference."""
    _, lj = _posterior(read_case(EXAMPLE))
    finite = np.isfinite(lj)
    for scale in (1.0, 40.0):
        x = np.where(finite, lj * scale, -np.inf)
        got, want = condition_log_odds(MODEL, x), _log_odds_reference(x)
        both = np.isfinite(want)
        assert np.array_equal(np.isfinite(got), both)
        np.testing.assert_allclose(got[both], want[both], rtol=1e-12, atol=1e-9)
        if scale > 1:
            assert np.max(np.abs(want[both])) > 745   # a side underflows in probability space


@pytest.mark.parametrize("group", ["measurements[0]", "measurements[1]", "measurements[3]",
                                   "eye_signs"])
def test_log_bayes_factor_of_a_group_is_the_change_in_exact_log_odds(group):
    """Leaving a result (TSH below its limit, FT4, the TSH-receptor antibodies) or a symptom
    out of the overt hyperthyroidism example changes the condition's log odds by the
    reported log Bayes factor (the case rebuilt without it and its log odds summed in log
    space); each of the three results is strong evidence for the condition (factor > 10), though its
    probability is above 1 - 1e-10 either way."""
    full = read_case(EXAMPLE)
    data = case_to_dict(full)
    if group.startswith("measurements"):
        i = int(group[len("measurements["):-1])
        del data["measurements"][i]
    else:
        data["symptoms"]["present"] = [s for s in data["symptoms"]["present"] if s != group]
    post, lj = _posterior(full)
    _, lj_without = _posterior(read_case(data))
    k = MODEL.conditions.index("hyperthyroidism_overt")
    want = _log_odds_reference(lj)[k] - _log_odds_reference(lj_without)[k]
    if group.startswith("measurements"):
        gi = next(j for j, g in enumerate(post.groups)
                  if g["kind"] == "measurement" and i in g["sources"])
    else:
        gi = next(j for j, g in enumerate(post.groups)
                  if g["kind"] == "symptom" and MODEL.symptoms[g["symptom"]] == group)
    got = post.log_bf[gi, k]
    assert got == pytest.approx(want, abs=1e-6)
    if group != "eye_signs":
        # strong evidence: a Bayes factor above 10.  (Not more: an undetectable TSH is also
        # grade 2 subclinical hyperthyroidism's, and TRAb is raised in subclinical Graves', so
        # beside FT4 and FT3 these two favour overt disease ~20-100 fold, not 150+.)
        assert got > math.log(10)
    assert post.condition_probs[k] > 1 - 1e-10


def test_report_names_every_result_that_moved_a_confident_diagnosis():
    """The report's "what moved it" for the overt hyperthyroidism example lists the
    suppressed TSH, FT4, FT3 and the TSH-receptor antibodies, each for the condition (the
    clipped logit used to leave TSH and the antibodies out: their factors read 0)."""
    import neb_bayes as nb

    rows = nb.infer(EXAMPLE, uncertainty=False).contributions()["hyperthyroidism_overt"]
    moved = {r["analyte"]: r["log_bayes_factor"] for r in rows if r["kind"] == "measurement"}
    assert set(moved) >= {"tsh", "ft4", "ft3", "trab"}, moved
    assert all(v > 3.0 for v in moved.values()), moved
