"""Calibration on the model's own simulations: reported probabilities mean what they say."""

from __future__ import annotations

import numpy as np
import pytest

from neb_bayes.evidence import build_evidence
from neb_bayes.inference.batch_exact import infer_batch
from neb_bayes.model.compiled import load_model
from neb_bayes.simulate import expected_calibration_error, simulate

MODEL = load_model()
OUTCOMES = [*MODEL.conditions, "none"]


def _run(n: int, seed: int):
    sims = simulate(MODEL, n, seed=seed)
    probs = infer_batch(MODEL, [build_evidence(MODEL, s.case) for s in sims])
    truth = np.array([[s.conditions[c] for c in OUTCOMES] for s in sims], dtype=float)
    return probs, truth


def test_ece_below_002_on_5000_simulated_cases():
    probs, truth = _run(5000, seed=101)
    ece = expected_calibration_error(probs, truth, bins=10)
    assert ece < 0.02, ece
    # and no outcome is systematically over- or under-called
    for j, c in enumerate(OUTCOMES):
        diff = abs(probs[:, j].mean() - truth[:, j].mean())
        se = np.sqrt(max(truth[:, j].mean() * (1 - truth[:, j].mean()), 1e-4) / len(truth))
        assert diff < 4 * se + 1e-3, (c, probs[:, j].mean(), truth[:, j].mean())


def test_ece_detects_a_miscalibrated_engine():
    """The check has teeth: shrinking probabilities towards 0.5 breaks calibration."""
    probs, truth = _run(1000, seed=7)
    assert expected_calibration_error(0.5 + 0.5 * (probs - 0.5) * 0.5, truth) > 0.02


@pytest.mark.slow
def test_ece_on_20000_simulated_cases():
    probs, truth = _run(20000, seed=202)
    assert expected_calibration_error(probs, truth, bins=20) < 0.01
