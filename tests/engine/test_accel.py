"""Which path the draws take (:mod:`neb_bayes.accel`): decided once per case."""

from __future__ import annotations

from neb_bayes import accel
from neb_bayes.inference import draws as draws_mod


def test_the_decision_is_held_within_a_block_and_read_again_after(monkeypatch):
    monkeypatch.setenv("NEB_BAYES_COMPILED", "1")
    assert accel.use_compiled()
    with accel.decided() as held:
        assert held is True
        monkeypatch.setenv("NEB_BAYES_COMPILED", "0")
        assert accel.use_compiled()               # held as it was on entry
        with accel.decided() as inner:            # an inner block keeps the outer decision
            assert inner is True and accel.use_compiled()
        assert accel.use_compiled()
    assert not accel.use_compiled()               # read again once the block ends
    monkeypatch.setenv("NEB_BAYES_COMPILED", "1")
    assert accel.use_compiled()


def test_a_case_with_draws_asks_the_environment_once(monkeypatch):
    """One case's draws read the setting once, however many blocks and contractions ask."""
    from neb_bayes.api import infer
    from neb_bayes.priorset import load_prior_set

    calls = []
    real = accel._decide

    def counted():
        calls.append(1)
        return real()

    monkeypatch.setattr(accel, "_decide", counted)
    prior_set = load_prior_set()
    draws = prior_set.draws
    result = infer("cases/examples/cushings_acth_dependent_01.yaml", prior_set)
    calls.clear()
    draws_mod.probabilities_over_draws(prior_set.model, draws, result.evidence)
    assert len(calls) == 1
