"""What a fit reports: diagnostics from a trace (R-hat, ESS, divergences and BFMI are numbers,
not NaN) and a warning for people whose context the PyMC formulation does not apply.

ArviZ 1 returns BFMI as a DataTree; ``np.min`` of that raised and the value used to come out
as NaN for every fit (nutpie and ``pm.sample`` both record the energy).  A synthetic trace
with a known energy autocorrelation checks the value itself.
"""

from __future__ import annotations

import arviz as az
import numpy as np

from neb_bayes.fit import check_thresholds, diagnostics


def _trace(energy: np.ndarray, logp: np.ndarray | None = None) -> object:
    rng = np.random.default_rng(0)
    chains, draws = energy.shape
    stats = {"energy": energy, "diverging": np.zeros((chains, draws), bool)}
    if logp is not None:
        stats["logp"] = logp
    return az.from_dict({
        "posterior": {"theta": rng.normal(size=(chains, draws))},
        "sample_stats": stats,
    })


def test_bfmi_is_computed_from_the_energy() -> None:
    rng = np.random.default_rng(1)
    white = rng.normal(size=(2, 1000))
    diag = diagnostics(_trace(white))
    # independent energies: BFMI = E[(dE)^2] / Var(E) = 2
    assert 1.8 < diag["bfmi_min"] < 2.2
    assert diag["divergences"] == 0 and diag["r_hat_max"] < 1.01


def test_low_bfmi_fails_the_thresholds() -> None:
    rng = np.random.default_rng(2)
    walk = np.cumsum(rng.normal(size=(2, 1000)), axis=1)   # energy barely moves between draws
    diag = diagnostics(_trace(walk))
    assert diag["bfmi_min"] < 0.3
    assert any("BFMI" in f for f in check_thresholds(diag))


def test_a_chain_in_a_minor_mode_fails_the_thresholds() -> None:
    """A chain whose log density sits far below another's is named (seen at 500 simulated
    people: one chain 32 units below, in a relabelled mode); chains that mix do not trip
    it."""
    rng = np.random.default_rng(3)
    energy = rng.normal(size=(2, 500))
    mixing = -4676 + 11 * rng.normal(size=(2, 500))
    diag = diagnostics(_trace(energy, mixing))
    assert diag["logp_gap"] < 3
    assert not check_thresholds(diag)
    stuck = mixing + np.array([[0.0], [-32.0]])
    diag = diagnostics(_trace(energy, stuck))
    assert 28 < diag["logp_gap"] < 36
    fails = check_thresholds(diag)
    assert len(fails) == 1 and "chain 1's median log density is" in fails[0]


def test_a_gap_that_chance_explains_is_not_a_minor_mode() -> None:
    """Short, slowly mixing chains (a random walk in the log density) leave their medians
    apart by chance: a gap above 10 but within 5 Monte Carlo standard errors is not named,
    the same gap between well-mixed chains is."""
    rng = np.random.default_rng(5)
    energy = rng.normal(size=(2, 150))
    walk = -4676 + np.cumsum(rng.normal(size=(2, 150)), axis=1)   # autocorrelated
    walk += np.array([[0.0], [-12.0]]) - np.median(walk, axis=1, keepdims=True)
    diag = diagnostics(_trace(energy, walk))
    assert 11.9 < diag["logp_gap"] < 12.1 and diag["logp_gap"] < 5 * diag["logp_gap_se"]
    assert not any("minor mode" in f for f in check_thresholds(diag))
    iid = -4676 + 3 * rng.normal(size=(2, 150))
    iid += np.array([[0.0], [-12.0]]) - np.median(iid, axis=1, keepdims=True)
    diag = diagnostics(_trace(energy, iid))
    assert diag["logp_gap"] > 5 * diag["logp_gap_se"]
    assert any("minor mode" in f for f in check_thresholds(diag))


def test_one_chain_has_an_r_hat_from_its_halves() -> None:
    """ArviZ gives no R-hat for one chain (NaN, which failed every one-chain fit's checks):
    the chain's halves are compared instead.  A chain that mixes passes; one whose second
    half drifts away from its first fails, as two such chains would."""
    rng = np.random.default_rng(3)
    energy = rng.normal(size=(1, 1000))
    mixed = az.from_dict({"posterior": {"theta": rng.normal(size=(1, 1000))},
                          "sample_stats": {"energy": energy}})
    diag = diagnostics(mixed)
    assert np.isfinite(diag["r_hat_max"]) and diag["r_hat_max"] < 1.01
    assert not check_thresholds(diag)
    drift = rng.normal(size=(1, 1000)) + np.r_[np.zeros(500), np.full(500, 1.0)]
    stuck = az.from_dict({"posterior": {"theta": drift}, "sample_stats": {"energy": energy}})
    diag = diagnostics(stuck)
    assert diag["r_hat_max"] > 1.05
    assert any("R-hat" in f for f in check_thresholds(diag))
    # two chains are read as they are: one in each half's place gives the same R-hat
    two = az.from_dict({"posterior": {"theta": drift.reshape(2, 500)},
                        "sample_stats": {"energy": energy.reshape(2, 500)}})
    assert diagnostics(two)["r_hat_max"] == diag["r_hat_max"]
