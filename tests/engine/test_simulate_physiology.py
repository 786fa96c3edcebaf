"""The simulator reports no symptom that is a stage's physiology (a postmenopausal woman's
amenorrhoea, a pregnant woman's): the engine does not read them as evidence, and a real
record would not list them as findings."""

from __future__ import annotations

from neb_bayes.context import physiological_symptoms, read_context
from neb_bayes.model.compiled import load_model
from neb_bayes.simulate import simulate


def test_simulated_cases_list_no_physiological_symptom():
    sims = simulate(load_model(), 400, seed=11, p_symptom_reported=1.0)
    staged = 0
    for sim in sims:
        physiology = physiological_symptoms(read_context(sim.case).flags)
        if physiology:
            staged += 1
        listed = sim.case.symptoms.present | sim.case.symptoms.absent
        assert not listed & set(physiology), (sim.case.id, sorted(listed & set(physiology)))
    assert staged > 20   # the cohort has women past the menopause (and pregnant ones)
