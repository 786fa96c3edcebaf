"""Calibration on the model's own simulations: reported probabilities mean what they say."""

from __future__ import annotations

import numpy as np
import pytest

from neb_bayes.case.model import Medication
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.batch_exact import infer_batch
from neb_bayes.model.compiled import load_model
from neb_bayes.simulate import expected_calibration_error, simulate, simulate_case

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


def _meds(*names: str) -> dict:
    return {"medications": tuple(Medication(name=n, raw=n) for n in names)}


#: contexts whose effects (measurement shifts, latent shifts of treated disease, prior odds)
#: are on in the calibration check below: (patient fields, sex or None, flag it must raise)
CONTEXTS = [
    (_meds("levothyroxine 100 micrograms daily"), None, "levothyroxine"),
    (_meds("liothyronine 20 micrograms twice daily"), None, "liothyronine"),
    (_meds("carbimazole 10 mg daily"), None, "antithyroid_drug"),
    (_meds("amiodarone 200 mg daily"), None, "amiodarone"),
    (_meds("lithium carbonate 800 mg"), None, "lithium"),
    (_meds("prednisolone 10 mg daily"), None, "glucocorticoid"),
    (_meds("risperidone 2 mg"), None, "dopamine_antagonist"),
    (_meds("combined oral contraceptive pill"), "F", "oral_estrogen"),
    ({"context": ("septic shock, intensive care day 2",)}, None, "critical_illness"),
    ({"pregnant": True, "gestational_week": 10.0}, "F", "pregnancy_t1"),
    ({"pregnant": True, "gestational_week": 30.0}, "F", "pregnancy_t3"),
]


def test_ece_with_context_effects_on():
    """Calibration holds with the context effects on: each simulated patient carries one of
    the contexts above, drawn from the model as the engine reads it (the prior's odds
    modifiers, the shifts of the results, the latent shifts of treated disease)."""
    rng = np.random.default_rng(303)
    sims, flags = [], set()
    for i in range(3300):
        fields, sex, _ = CONTEXTS[i % len(CONTEXTS)]
        sims.append(simulate_case(MODEL, rng, f"ctx-{i}", patient_fields=fields, sex=sex))
    evs = [build_evidence(MODEL, s.case) for s in sims]
    for ev in evs:
        flags |= set(ev.covariates.flags)
    assert {f for _, _, f in CONTEXTS} <= flags, {f for _, _, f in CONTEXTS} - flags
    probs = infer_batch(MODEL, evs)
    truth = np.array([[s.conditions[c] for c in OUTCOMES] for s in sims], dtype=float)
    # measured: ECE 0.0013 (an engine that ignores the context: 0.029, and hyperprolactinaemia
    # over-called by 113 standard errors)
    assert expected_calibration_error(probs, truth, bins=10) < 0.01
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
