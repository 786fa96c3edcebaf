"""The gross-error component: at most one result per axis block is wrong (a sample mix-up).

p(block | s) = (1 - n eps) p(y | s) + eps sum_j q(y_j) p(y_-j | s), with q the channel's
population mixture among people of the patient's sex (``CompiledModel.gross_log_density``).
The engine computes the sub-block likelihoods p(y_-j | s) by the leave-one-out identity for
observed results; here every sub-block is recomputed on its own, for one parameter set and
under parameter draws.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate
from scipy.special import logsumexp

import neb_bayes as nb
from neb_bayes.case.model import Case, Measurement, Patient, Symptoms
from neb_bayes.evidence import build_evidence
from neb_bayes.inference import draws as dr
from neb_bayes.inference.exact import block_loglik, infer_exact
from neb_bayes.model.compiled import load_model
from neb_bayes.model.spec import PriorSetError, spec_from_tables
from neb_bayes.priorset import load_prior_set
from neb_bayes.simulate import simulate

MODEL = load_model()
EXAMPLES = sorted(p for p in Path("cases/examples").glob("*.yaml") if p.name != "expectations.yaml")
CASES = [p for p in EXAMPLES if "censored" in p.name or "repeat" in p.name] + EXAMPLES[:12]


def _explicit(model, block, latent, log_median=None) -> np.ndarray:
    """The mixture from every sub-block recomputed directly (no leave-one-out identity)."""
    eps, n = model.gross_error_rate, block.n
    full = block_loglik(model, block, latent=latent, log_median=log_median, gross=False)
    log_q = model.gross_log_density(block.channel, block.y, block.censor, block.sex)
    terms = [np.log1p(-n * eps) + full]
    for j in range(n):
        rest = (block_loglik(model, block, np.delete(np.arange(n), j), latent, log_median,
                             gross=False) if n > 1 else 0.0)
        terms.append(np.log(eps) + log_q[j] + rest + 0.0 * full)
    return logsumexp(np.stack(np.broadcast_arrays(*terms)), axis=0)


def test_prior_set_has_a_sourced_gross_error_rate() -> None:
    assert 0.0 < MODEL.gross_error_rate < 0.05
    assert "carraro2007" in MODEL.spec.raw["gross_error"]["src"]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_leave_one_out_identity_equals_recomputing_each_sub_block(path: Path) -> None:
    ev = build_evidence(MODEL, nb.read_case(path))
    assert ev.blocks
    for block in ev.blocks:
        latent = ev.latent_params(MODEL, block.axis)
        got = block_loglik(MODEL, block, latent=latent)
        np.testing.assert_allclose(got, _explicit(MODEL, block, latent), rtol=0, atol=1e-10)


@pytest.mark.parametrize("path", CASES[:6], ids=lambda p: p.name)
def test_leave_one_out_identity_under_parameter_draws(path: Path) -> None:
    ps = load_prior_set()
    draws = ps.draws.subset(np.array([0, 7, 500]))
    model, draws, ev = dr.sex_view(ps.model, draws, build_evidence(ps.model, nb.read_case(path)))
    tab = dr.draw_tables(model, draws)
    for block in ev.blocks:
        latent = (draws.lat_mean[block.axis], tab.lat_cov[block.axis])
        got = block_loglik(model, block, latent=latent, log_median=draws.log_median)
        ref = _explicit(model, block, latent, draws.log_median)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["tsh", "ft3", "prolactin", "cortisol"])
def test_gross_error_density_is_a_proper_density_and_censoring_is_its_mass(name: str) -> None:
    ch = next(i for i, c in enumerate(MODEL.channels) if c.analyte == name)

    def q(y, censor=0):
        return float(np.exp(MODEL.gross_log_density(np.array([ch]), np.array([y]),
                                                    np.array([censor]))[0]))

    mid = float(MODEL.channels[ch].log_median)
    total, _ = integrate.quad(q, mid - 15, mid + 15, points=[mid], limit=200)
    assert total == pytest.approx(1.0, abs=1e-6)
    below, _ = integrate.quad(q, mid - 15, mid - 0.5, limit=200)
    assert q(mid - 0.5, censor=-1) == pytest.approx(below, rel=1e-6)
    assert q(mid - 0.5, censor=+1) == pytest.approx(1.0 - below, rel=1e-6)


def test_gross_error_density_of_a_result_does_not_depend_on_the_others() -> None:
    """Evaluated for many results at once (the batch engine: channel by channel), each
    result's value is the one it gets alone or among a few (one pass, every channel padded
    to the most components) bit for bit (answers must not depend on the chunk), and the
    mixture's density (or mass beyond a limit) computed directly."""
    from scipy.special import logsumexp
    from scipy.stats import norm

    from neb_bayes.model.compiled import GROSS_PADDED_MAX

    rows = [(b.channel, b.y, b.censor) for s in simulate(MODEL, 60, seed=5)
            for b in build_evidence(MODEL, s.case).blocks]
    channel, y, censor = (np.concatenate(x) for x in zip(*rows, strict=True))
    assert y.size > GROSS_PADDED_MAX
    censor = censor.copy()
    censor[::7] = -1
    censor[3::11] = 1
    many = MODEL.gross_log_density(channel, y, censor)
    alone = [MODEL.gross_log_density(channel[i:i + 1], y[i:i + 1], censor[i:i + 1])[0]
             for i in range(0, y.size, 5)]
    np.testing.assert_array_equal(many[::5], alone)
    few = MODEL.gross_log_density(channel[:40], y[:40], censor[:40])
    np.testing.assert_array_equal(many[:40], few)
    for i in range(0, y.size, 3):
        log_w, mean, sd = MODEL.gross_mix[channel[i]]
        if censor[i] == 0:
            part = norm.logpdf(y[i], mean, sd)
        else:
            part = norm.logcdf(-censor[i] * (y[i] - mean) / sd)
        assert many[i] == pytest.approx(logsumexp(log_w + part), rel=1e-12, abs=1e-12)


def _state_densities(model, ch: int, y: np.ndarray, sex: str | None):
    """Each joint state's prior probability for people of ``sex`` and the log density of a
    result of channel ``ch`` at ``y`` in that state (latents integrated out), from the
    generative story directly: every joint state, no merging."""
    from scipy.stats import norm

    from neb_bayes.model.prior import Covariates, log_prior

    c = model.channels[ch]
    ax = model.axes[c.axis]
    p = np.exp(log_prior(model, Covariates(sex=sex)))
    noise = c.tau**2 + c.cvi**2 + c.cva**2 + model.gross_error_sd**2
    weights, dens = [], []
    for idx in zip(*np.nonzero(p), strict=True):
        s = idx[c.axis]
        mean = c.log_median + ax.lat_mean[s] @ c.loadings
        mean += sum(e.shift[idx[e.axis]] for e in c.effects)
        sd = np.sqrt(c.loadings @ ax.lat_cov[s] @ c.loadings + noise)
        weights.append(p[idx])
        dens.append(norm.logpdf(y, mean, sd))
    return np.array(weights), np.array(dens)


@pytest.mark.parametrize("name", ["testosterone", "prolactin", "tsh", "lh"])
@pytest.mark.parametrize("sex", ["F", "M", None])
def test_a_gross_error_is_another_persons_result_of_the_patients_sex(name: str, sex) -> None:
    """q is the population mixture among people of the patient's sex (everyone's when the
    sex is unknown): the prior for that sex over every joint state, each state's distribution
    of the result, summed; so it is never above the densest state the patient can be in (a
    woman's testosterone far above her range is not explained by a man's)."""
    ch = next(i for i, c in enumerate(MODEL.channels) if c.analyte == name)
    mid = float(MODEL.channels[ch].log_median)
    y = mid + np.linspace(-4.0, 4.0, 33)
    w, dens = _state_densities(MODEL, ch, y, sex)
    want = logsumexp(dens, axis=0, b=(w / w.sum())[:, None])
    got = MODEL.gross_log_density(np.full(y.size, ch), y, np.zeros(y.size, np.int8), sex)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert (got <= dens.max(axis=0) + 1e-12).all()


def _case(measurements) -> Case:
    ms = tuple(Measurement(index=i, analyte=a, specimen="serum", value=v, day=d)
               for i, (a, v, d) in enumerate(measurements))
    return Case(id="gross", patient=Patient(sex="F", age=40), measurements=ms,
                symptoms=Symptoms(present=frozenset(), absent=frozenset()))


def _p_hypo(model, case) -> float:
    post = infer_exact(model, build_evidence(model, case), explain=False)
    probs = dict(zip(model.conditions, post.condition_probs, strict=True))
    return probs["primary_hypothyroidism"] + probs["subclinical_hypothyroidism"]


#: two TSH results from the same day, 1.4 and 40, with a normal FT4 and FT3: one of them is
#: wrong.  FT4 and FT3 in range do not say which: TSH 40 with them in range is subclinical
#: hypothyroidism by definition (facts §4c; ~20 % of SCH has TSH > 10), as 1.4 is normal.  A
#: TSH from another visit (1.5, a month before) says which: the person's TSH is normal.
DISCORDANT = [("tsh", 1.4, 0), ("tsh", 40.0, 0), ("ft4", 15.0, 0), ("ft3", 5.0, 0)]
DISCORDANT_WITH_HISTORY = [*DISCORDANT, ("tsh", 1.5, -30)]


def test_a_discordant_result_on_the_same_day_is_read_as_a_likely_error() -> None:
    without = dataclasses.replace(MODEL, gross_error_rate=0.0)
    assert _p_hypo(without, _case(DISCORDANT)) > 0.5      # no way out but a thyroid state
    # with the component and the earlier TSH: back near the prior (~0.05 for a woman of 40)
    assert _p_hypo(MODEL, _case(DISCORDANT_WITH_HISTORY)) < 0.1


def test_a_consistent_picture_keeps_its_reading() -> None:
    case = _case([("tsh", 40.0, 0), ("ft4", 6.0, 0), ("ft3", 3.0, 0)])
    assert _p_hypo(MODEL, case) > 0.99


def test_simulator_draws_gross_errors_at_the_model_rate() -> None:
    sims = simulate(MODEL, 4000, seed=5)
    blocks = [sum(1 for m in s.case.measurements
                  if MODEL.channels[MODEL.channel_for(m.analyte, m.specimen)].axis == a)
              for s in sims for a in range(len(MODEL.axes))]
    expected = sum(n * MODEL.gross_error_rate for n in blocks)
    seen = sum(len(s.gross_errors) for s in sims)
    assert abs(seen - expected) < 4.0 * np.sqrt(expected)
    assert all(len(s.gross_errors) <= len(MODEL.axes) for s in sims)


@pytest.mark.parametrize("bad", [{"rate": 0.2}, {"rate": -0.1}, {"rate": 0.003, "widen_sd": -1}])
def test_prior_set_rejects_an_invalid_gross_error_table(bad: dict) -> None:
    raw = copy.deepcopy(MODEL.spec.raw)
    raw["gross_error"] = {**raw["gross_error"], **bad}
    with pytest.raises(PriorSetError, match="gross_error"):
        spec_from_tables(raw, "test")


def test_report_names_the_result_that_is_likely_wrong() -> None:
    case = _case(DISCORDANT_WITH_HISTORY)
    result = nb.infer(case, uncertainty=False)
    suspects = result.to_dict()["suspect_results"]
    assert suspects and suspects[0]["measurement"] == 1 and suspects[0]["probability"] > 0.8
    # one gross error per axis at most: the probabilities of a block's results sum to <= 1
    assert sum(g["probability"] for g in result.exact.gross_errors) <= 1.0 + 1e-12


def test_report_lists_nothing_when_the_results_agree() -> None:
    case = _case([("tsh", 40.0, 0), ("ft4", 6.0, 0), ("ft3", 3.0, 0)])
    assert nb.infer(case, uncertainty=False).to_dict()["suspect_results"] == []


def test_latents_follow_the_results_that_fit() -> None:
    # the latent TSH drive is read from the TSHs that fit each other (1.4, and 1.5 a month
    # before), not from an average with the likely wrong one (40)
    case = _case(DISCORDANT_WITH_HISTORY)
    lat = {x["latent"]: x for x in nb.infer(case, uncertainty=False).latents
           if x["axis"] == "thyroid"}
    lo, hi = lat["tsh_drive"]["fold_change_interval"]
    assert lo < 1.4 / 1.5 < hi
    # posterior mean near 1.4 / 1.5 (~0.95 that the 40 is the wrong one, so ~5 % of the mass
    # sits near 40 / 1.5 and the upper end of the 90 % interval reaches toward it)
    assert 0.7 < lat["tsh_drive"]["fold_change"] < 1.5


def _one_censored_blocks(model, n_blocks: int):
    out = []
    for s in simulate(model, 400, seed=8, p_repeat=0.3):
        ev = build_evidence(model, s.case)
        out += [(ev, b) for b in ev.blocks if (b.censor != 0).sum() == 1]
        if len(out) >= n_blocks:
            break
    assert len(out) >= n_blocks
    return out[:n_blocks]


def test_one_censored_result_by_the_submatrix_identity_equals_recomputation() -> None:
    """A block with one censored result: the observed results' leave-one-out terms move the
    censored mass by a rank-one change of its conditional (point parameters and draws)."""
    ps = load_prior_set()
    draws = ps.draws.subset(np.array([3, 400]))
    blocks = _one_censored_blocks(ps.model, 12)
    assert any((b.censor == 0).sum() >= 2 for _, b in blocks)
    for ev, block in blocks:
        _assert_equals_recomputation(ps, draws, ev, block.axis)


def _assert_equals_recomputation(ps, draws, ev, axis: int, censor=None) -> None:
    """The block of ``axis`` (with ``censor`` instead of its own censoring when given):
    ``block_loglik`` equals :func:`_explicit`, with point parameters and under ``draws``."""
    def block_of(evidence):
        block = next(b for b in evidence.blocks if b.axis == axis)
        return block if censor is None else dataclasses.replace(block, censor=censor)

    block = block_of(ev)
    latent = ev.latent_params(ps.model, axis)
    np.testing.assert_allclose(block_loglik(ps.model, block, latent=latent),
                               _explicit(ps.model, block, latent), rtol=0, atol=1e-10)
    model, d, ev_v = dr.sex_view(ps.model, draws, ev)
    tab = dr.draw_tables(model, d)
    vb = block_of(ev_v)
    lat = (d.lat_mean[axis], tab.lat_cov[axis])
    np.testing.assert_allclose(block_loglik(model, vb, latent=lat, log_median=d.log_median),
                               _explicit(model, vb, lat, d.log_median), rtol=0, atol=1e-9)


def _check_with_censoring(select, censor_of, want: int, seed: int, n: int) -> None:
    """``want`` blocks of simulated patients that ``select`` picks (none of their results
    censored), with the censoring ``censor_of(block)``: each equal to recomputing every
    sub-block, with point parameters and under draws."""
    ps = load_prior_set()
    draws = ps.draws.subset(np.array([3, 400]))
    seen = 0
    for s in simulate(ps.model, n, seed=seed, p_repeat=0.3):
        ev = build_evidence(ps.model, s.case)
        for block in ev.blocks:
            if select(block) and not (block.censor != 0).any():
                _assert_equals_recomputation(ps, draws, ev, block.axis, censor_of(block))
                seen += 1
                if seen >= want:
                    return
    raise AssertionError(f"only {seen} blocks to check")


@pytest.mark.parametrize("censored", [(0, 2), (1, 2, 4), (0, 3)])
def test_several_censored_results_by_the_submatrix_identity_equal_recomputation(censored):
    """Blocks with two or three censored results: each observed result's leave-one-out term
    moves the censored results' conditional by a rank-one change, and each censored result's
    term drops it from their joint mass; equal to recomputing every sub-block (point parameters
    and draws), with one censored above and the others below their limits."""
    def censor_of(block):
        censor = block.censor.copy()
        censor[list(censored)] = -1
        censor[censored[-1]] = 1
        return censor

    _check_with_censoring(lambda b: b.n >= 6, censor_of, want=4, seed=21, n=60)


def test_blocks_of_only_censored_results_equal_recomputation():
    """Two or three results, all censored (one above its limit): each term is the censored
    mass without that result; equal to recomputing every sub-block."""
    def censor_of(block):
        censor = -np.ones(block.n, dtype=block.censor.dtype)
        censor[0] = 1
        return censor

    _check_with_censoring(lambda b: b.n in (2, 3), censor_of, want=6, seed=3, n=80)


def test_exchangeable_censored_repeats_leave_one_block_behind_computed_once(tmp_path, monkeypatch):
    """More censored results than the block's own algebra takes (each p(y_-j) recomputed):
    repeats of one analyte with the same limit on different days leave the same block
    behind, which is computed once; the same numbers as computing each, and as recomputing
    every sub-block (point parameters and draws)."""
    import yaml

    from neb_bayes.inference import exact

    case = yaml.safe_load(Path("cases/examples/hyperthyroidism_overt_01.yaml").read_text())
    tsh = case["measurements"][0]
    assert tsh["analyte"] == "TSH" and str(tsh["value"]).startswith("<")
    case["measurements"] += [dict(tsh, day=d) for d in (7, 14, 21, 28)]
    path = tmp_path / "repeats.yaml"
    path.write_text(yaml.safe_dump(case), encoding="utf-8")
    ev = build_evidence(MODEL, nb.read_case(path))
    (block,) = [b for b in ev.blocks if (b.censor != 0).sum() == 5]
    assert (block.censor != 0).sum() > exact.LOO_CENSORED_MAX
    latent = ev.latent_params(MODEL, block.axis)
    calls = []
    real = exact._gaussian_and_gross_on

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(exact, "_gaussian_and_gross_on", counted)
    got = block_loglik(MODEL, block, latent=latent)
    once = len(calls)
    monkeypatch.setattr(exact, "_same_moments", lambda a, b: False)
    calls.clear()
    each = block_loglik(MODEL, block, latent=latent)
    # the four later repeats leave one block behind (computed once, reused three times);
    # the first, listed before the other analytes, leaves them in another order
    assert once == len(calls) - 3
    np.testing.assert_array_equal(got, each)
    monkeypatch.undo()
    np.testing.assert_allclose(got, _explicit(MODEL, block, latent), rtol=0, atol=1e-10)
    ps = load_prior_set()
    _assert_equals_recomputation(ps, ps.draws.subset(np.array([3, 400])), ev, block.axis)
