"""The draws path equals the point engine run under each draw's parameters.

``probabilities_over_draws`` (single-case intervals) and ``infer_batch_draws`` (batch) evaluate
all parameter draws at once by variable elimination over small factors; the reference here is
:func:`infer_exact` on the joint tensor, with the model's parameters set to one draw.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import neb_bayes as nb
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.batch_exact import infer_batch_draws
from neb_bayes.inference.draws import probabilities_over_draws
from neb_bayes.inference.exact import infer_exact
from neb_bayes.model.compiled import sex_keep, view_for_sex
from neb_bayes.model.params import with_params
from neb_bayes.priorset import load_prior_set
from neb_bayes.simulate import simulate

PS = load_prior_set()
MODEL = PS.model
DRAWS = PS.draws.subset(np.array([0, 1, 2, 517, 998, 999]))
EXAMPLES = "cases/examples"

CASES = {
    "censored": f"{EXAMPLES}/hard_primary_hypothyroidism_censored_ft4.yaml",
    "censored+repeats": f"{EXAMPLES}/hypogonadism_primary_female_01.yaml",
    "repeats": f"{EXAMPLES}/hard_subclinical_hypothyroidism_repeat_tsh.yaml",
    "repeats-male": f"{EXAMPLES}/hard_panhypopituitarism.yaml",
    "many-symptoms": f"{EXAMPLES}/cushings_acth_dependent_01.yaml",
    "context-latent-thyroid": f"{EXAMPLES}/context/levothyroxine_recent_dose_with.yaml",
    "context-latent-metabolic": f"{EXAMPLES}/context/glucose_lowering_with.yaml",
    "context-symptoms": f"{EXAMPLES}/context/antithyroid_drug_high_tsh_with.yaml",
    "pcos": f"{EXAMPLES}/pcos_01.yaml",
    # far beyond every female state's range: a gross error is another woman's result
    "female-testosterone-far-tail": f"{EXAMPLES}/hard_female_testosterone_very_high.yaml",
}


def _case(name):
    if name.startswith("sim"):
        return simulate(MODEL, 3, seed=11, p_repeat=0.4)[int(name[3:])].case
    if name == "unknown-sex":
        case = nb.read_case(CASES["pcos"])
        return dataclasses.replace(case, patient=dataclasses.replace(case.patient, sex=None))
    return nb.read_case(CASES[name])


def _reference(case, draws) -> np.ndarray:
    """P(condition) and P(none) from the joint tensor, one draw at a time."""
    ev = build_evidence(MODEL, case)
    rows = []
    for i in range(draws.n_draws):
        model = view_for_sex(with_params(MODEL, draws, i), case.patient.sex)
        post = infer_exact(model, ev if case.patient.sex is None
                           else build_evidence(view_for_sex(MODEL, case.patient.sex), case),
                           explain=False)
        rows.append(np.append(post.condition_probs, post.none_prob))
    return np.array(rows)


NAMES = [*CASES, "unknown-sex", "sim0", "sim1", "sim2"]


#: the float32 contraction (the default) is held to the joint tensor within this; the double
#: precision one within 1e-8
SINGLE_TOL = 1e-6
#: largest difference seen between the float32 and float64 contractions, per case
_SINGLE_DIFF: dict[str, float] = {}


@pytest.mark.parametrize("name", NAMES)
def test_batch_and_single_case_paths_equal_the_joint_tensor_under_each_draw(name):
    case = _case(name)
    ref = _reference(case, DRAWS)
    # batch path: full model, evidence built on it
    ev = build_evidence(MODEL, case)
    got = infer_batch_draws(MODEL, DRAWS, [ev], single=False)[:, 0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-8)
    got_single = infer_batch_draws(MODEL, DRAWS, [ev])[:, 0]
    np.testing.assert_allclose(got_single, ref, rtol=0, atol=SINGLE_TOL)
    # single-case path: the sex view with its restricted draws (as nb.infer does)
    view = view_for_sex(MODEL, case.patient.sex)
    draws = DRAWS.restrict(sex_keep(view)) if view is not MODEL else DRAWS
    ev_view = build_evidence(view, case)
    got_view = probabilities_over_draws(view, draws, ev_view, single=False)
    np.testing.assert_allclose(got_view, ref, rtol=0, atol=1e-8)
    got_view_single = probabilities_over_draws(view, draws, ev_view)
    np.testing.assert_allclose(got_view_single, ref, rtol=0, atol=SINGLE_TOL)
    _SINGLE_DIFF[name] = float(max(np.abs(got_single - got).max(),
                                   np.abs(got_view_single - got_view).max()))


def test_the_default_contraction_is_single_precision():
    """The tolerance above is exercised: float32 results differ from float64 ones (by far less
    than the tolerance), so the comparison is not float64 against itself."""
    ev = build_evidence(MODEL, _case("pcos"))
    double = probabilities_over_draws(MODEL, DRAWS, ev, single=False)
    single = probabilities_over_draws(MODEL, DRAWS, ev)
    assert 1e-12 < np.abs(single - double).max() < SINGLE_TOL
    if len(_SINGLE_DIFF) == len(NAMES):
        assert max(_SINGLE_DIFF.values()) > 1e-12


def test_results_do_not_depend_on_chunking_or_on_the_other_cases(monkeypatch):
    cases = [_case(n) for n in ("censored+repeats", "unknown-sex", "sim1", "context-latent-thyroid")]
    evs = [build_evidence(MODEL, c) for c in cases]
    draws = PS.draws.subset(slice(0, 40))
    together = infer_batch_draws(MODEL, draws, evs)
    assert together.shape == (40, len(evs), len(MODEL.conditions) + 1)
    for i, ev in enumerate(evs):
        alone = infer_batch_draws(MODEL, draws, [ev])[:, 0]
        np.testing.assert_allclose(together[:, i], alone, rtol=0, atol=1e-12)
        for chunk in (1, 7, 40, 1000):
            np.testing.assert_allclose(probabilities_over_draws(MODEL, draws, ev, chunk=chunk),
                                       alone, rtol=0, atol=1e-12)
        # the draws in two shares, each on its own thread: the same numbers (shares are
        # used whatever the size of the case's factors)
        from neb_bayes.inference import draws as draws_module

        monkeypatch.setattr(draws_module, "THREADS_MIN_STATES", 0)
        np.testing.assert_array_equal(probabilities_over_draws(MODEL, draws, ev, chunk=7,
                                                               threads=2),
                                      probabilities_over_draws(MODEL, draws, ev, chunk=7))


@pytest.mark.parametrize("name", ["pcos_01", "cushings_acth_dependent_01",
                                  "hard_primary_hypothyroidism_censored_ft4"])
def test_numpy_and_compiled_kernels_give_the_same_probabilities(name, monkeypatch):
    """A one-shot CLI report runs the draws path without numba (neb_bayes.accel); it must give
    what the compiled kernels give (present symptoms, the gross-error mixture, the
    contraction's product-sums)."""
    case = nb.read_case(f"cases/examples/{name}.yaml")
    model = view_for_sex(MODEL, case.patient.sex)
    ev = build_evidence(model, case)
    draws = PS.draws.restrict(sex_keep(model)).subset(slice(0, 100))
    out = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("NEB_BAYES_COMPILED", flag)
        out[flag] = probabilities_over_draws(model, draws, ev)
    np.testing.assert_allclose(out["0"], out["1"], rtol=0, atol=1e-6)


def test_compiled_kernels_wait_for_numba_or_a_second_report(monkeypatch):
    import sys

    from neb_bayes import accel

    monkeypatch.delenv("NEB_BAYES_COMPILED", raising=False)
    monkeypatch.setattr(accel, "_reports", 0)
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    assert not accel.use_compiled()          # a fresh process's first report: numpy
    accel.report_done()
    assert accel.use_compiled()              # from the second on: compiled
    monkeypatch.setenv("NEB_BAYES_COMPILED", "0")
    assert not accel.use_compiled()


def test_blocks_on_distinct_combinations_of_other_axes_equal_the_full_grid(monkeypatch):
    """With parameter draws a block is evaluated on the distinct combinations of its other
    dependency axes' states and read back per grid point: the same log-likelihood (gross-error
    mixture included) as the whole grid, for blocks with 0, 1 and 2 censored results and for
    blocks whose results no other axis shifts (one combination)."""
    from neb_bayes.inference import exact

    monkeypatch.setattr(exact, "DISTINCT_MIN", 0)
    seen: dict = {}
    for sim in simulate(MODEL, 400, seed=5, p_repeat=0.3):
        # the full model and the patient's sex view (where e.g. no gonadal state shifts an
        # adrenal result: one combination)
        view = view_for_sex(MODEL, sim.case.patient.sex)
        for model, draws in ((MODEL, DRAWS), (view, DRAWS.restrict(sex_keep(view)))):
            _check_distinct_blocks(model, draws, sim.case, seen, monkeypatch)
    assert seen == {0: 2, 1: 2, 2: 2, "one": 2}


def _check_distinct_blocks(model, draws, case, seen, monkeypatch):
    from neb_bayes.inference import exact
    from neb_bayes.inference.draws import draw_tables

    tab = draw_tables(model, draws)
    ev = build_evidence(model, case)
    for block in ev.blocks:
        n_cen = int((block.censor != 0).sum())
        if len(block.deps) < 2 or n_cen > 2:
            continue
        latent = ev.latent_params(model, block.axis, draws.lat_mean[block.axis],
                                  tab.lat_cov[block.axis])
        red = exact._DistinctOthers.of(
            exact.block_moments(model, block, None, latent, draws.log_median))
        assert red is not None                               # the reduced path runs
        kind = "one" if red.first.size == 1 else n_cen
        if seen.get(kind, 0) >= 2:
            continue

        def ll(minimum, block=block, latent=latent):
            monkeypatch.setattr(exact, "DISTINCT_MIN", minimum)
            return exact.block_loglik(model, block, latent=latent,
                                      log_median=draws.log_median)

        np.testing.assert_allclose(ll(0), ll(10**12), rtol=1e-11, atol=1e-9)
        monkeypatch.setattr(exact, "DISTINCT_MIN", 0)
        seen[kind] = seen.get(kind, 0) + 1


@pytest.mark.parametrize("n_cen", [2, 3])
def test_point_blocks_with_censored_results_on_distinct_combinations(n_cen):
    """With one parameter set, a block with two or three censored results (a bivariate or
    trivariate normal CDF per grid point and per result left out) is evaluated on the distinct
    combinations of its other axes' states: the same log-likelihood and gross-error terms as
    on the whole grid."""
    from neb_bayes.inference import exact

    checked = 0
    for sim in simulate(MODEL, 60, seed=11):
        ev = build_evidence(MODEL, sim.case)
        for block in ev.blocks:
            if len(block.deps) < 2 or block.n < n_cen + 2:
                continue
            # the first n_cen results read as "below the limit" at their value
            censor = block.censor.copy()
            censor[:n_cen] = -1
            block = dataclasses.replace(block, censor=censor)
            idx = np.arange(block.n)
            mom = exact.block_moments(MODEL, block, idx, None, None)
            red = exact._DistinctOthers.of(mom, n_cen)
            if red is None:
                continue
            ll, ratio = exact._gaussian_and_gross(MODEL, block, idx, None, None, True)
            full_ll, full_ratio = exact._gaussian_and_gross_on(
                MODEL, block, idx, mom, None, None, True, False)
            assert ll.shape == np.broadcast_shapes(full_ll.shape, ll.shape)
            np.testing.assert_allclose(ll, np.broadcast_to(full_ll, ll.shape),
                                       rtol=1e-12, atol=1e-12)
            for r, f in zip(ratio, full_ratio, strict=True):
                np.testing.assert_allclose(np.broadcast_to(r, np.broadcast_shapes(
                    np.shape(r), np.shape(f))), np.broadcast_to(f, np.broadcast_shapes(
                        np.shape(r), np.shape(f))), rtol=1e-12, atol=1e-12)
            checked += 1
        if checked >= 3:
            break
    assert checked >= 3


def test_report_threads_do_not_fault_their_memory_back_in_on_every_report(monkeypatch):
    """A report's draw threads free ~16 MB of factors, tables and messages; glibc gave that
    memory back to the system from the threads' heaps, so each report faulted it in again
    (~4,000 page faults per report with two threads).  With the allocator told to keep it
    (:func:`~neb_bayes.allocator.retain_freed_memory`, set when the thread pool is
    made) repeated reports fault almost no pages.  The compiled kernels, as from a process'
    second report on (the numpy counterparts of a one-shot report form products larger
    than the thresholds)."""
    import platform
    import resource

    from neb_bayes import allocator
    from neb_bayes.inference import draws as draws_module

    if (platform.libc_ver()[0] != "glibc"
            or allocator.ALLOCATOR_VARIABLES & allocator.startup_environment()):
        pytest.skip("glibc's allocator thresholds only, and not where the user set them")
    monkeypatch.setenv("NEB_BAYES_COMPILED", "1")
    # a pool of its own (the thresholds are set when a pool is made), and what a library
    # put in os.environ for its children (dask's distributed does) changes nothing
    monkeypatch.setattr(draws_module, "_POOL", None)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    case = nb.read_case(CASES["many-symptoms"])
    model = view_for_sex(MODEL, case.patient.sex)
    ev = build_evidence(model, case)
    draws = PS.draws.restrict(sex_keep(model))
    assert draws_module._largest_scope(model, ev) >= draws_module.THREADS_MIN_STATES
    for _ in range(2):
        probabilities_over_draws(model, draws, ev, threads=2)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        probabilities_over_draws(model, draws, ev, threads=2)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3
    assert faults < 1000, f"{faults:.0f} page faults per report"


@pytest.mark.parametrize("compiled", ["1", "0"])
def test_draws_paths_equal_the_joint_tensor_on_simulated_cases(compiled, monkeypatch):
    """30 cases drawn from the model (repeated and censored results, unknown and known sex),
    with the compiled kernels and with their numpy counterparts forced (which one a test
    process uses otherwise depends on what it imported before): the batch path in float64
    within 1e-8 of the joint tensor under each draw, the float32 contraction and a report's
    two threads within 1e-6."""
    monkeypatch.setenv("NEB_BAYES_COMPILED", compiled)
    for sim in simulate(MODEL, 30, seed=2026, p_repeat=0.4):
        case = sim.case
        ref = _reference(case, DRAWS)
        ev = build_evidence(MODEL, case)
        np.testing.assert_allclose(infer_batch_draws(MODEL, DRAWS, [ev], single=False)[:, 0],
                                   ref, rtol=0, atol=1e-8)
        np.testing.assert_allclose(infer_batch_draws(MODEL, DRAWS, [ev])[:, 0], ref, rtol=0,
                                   atol=SINGLE_TOL)
        view = view_for_sex(MODEL, case.patient.sex)
        draws = DRAWS.restrict(sex_keep(view)) if view is not MODEL else DRAWS
        got = probabilities_over_draws(view, draws, build_evidence(view, case), threads=2)
        np.testing.assert_allclose(got, ref, rtol=0, atol=SINGLE_TOL)


def test_every_blocks_gross_error_density_at_once_equals_block_by_block():
    """The draws path computes a case's gross-error densities log q(y) for all its blocks in
    one call (``prime_block_log_q``): the same numbers as block by block, bit for bit, and
    the blocks then read them from the cache."""
    from neb_bayes.inference import exact

    ev = build_evidence(MODEL, nb.read_case(CASES["censored+repeats"]))
    assert len(ev.blocks) >= 3 and any(b.censor.any() for b in ev.blocks)
    exact._LOG_Q.clear()
    one_by_one = [exact._block_log_q(MODEL, b).copy() for b in ev.blocks]
    exact._LOG_Q.clear()
    exact.prime_block_log_q(MODEL, ev.blocks)
    assert len(exact._LOG_Q) == len(ev.blocks)
    for b, want in zip(ev.blocks, one_by_one, strict=True):
        got = exact._block_log_q(MODEL, b)
        assert got is exact._LOG_Q[id(b)][2]
        np.testing.assert_array_equal(got, want)


def test_prior_tables_are_shared_by_strata_with_the_same_modifiers_only():
    """The draws path keeps the prior's tables per stratum by what the prior reads from it
    (the sex and which prevalence modifiers apply): two ages in one band share an entry;
    another sex or a context flag that switches a modifier on gets its own, and each entry
    equals the tables computed afresh."""
    from neb_bayes.inference.draws import DrawTables
    from neb_bayes.model.prior import Covariates, applied_modifiers, log_prior_parts

    view = view_for_sex(MODEL, "F")
    tab = DrawTables(view, DRAWS.restrict(sex_keep(view)))
    young, also_young = Covariates(sex="F", age=31.0), Covariates(sex="F", age=31.5)
    later = Covariates(sex="F", age=58.0, flags=frozenset({"postmenopausal"}))
    assert applied_modifiers(view, young) == applied_modifiers(view, also_young)
    assert applied_modifiers(view, young) != applied_modifiers(view, later)
    first = tab.prior_parts(young)
    assert tab.prior_parts(also_young) is first
    other = tab.prior_parts(later)
    assert other is not first
    for cov, got in ((young, first), (later, other)):
        want = log_prior_parts(view, cov, list(tab.draws.prior_base))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("name", ["context-latent-thyroid", "censored", "censored+repeats",
                                  "repeats"])
def test_blocks_read_the_draws_latent_precision_kept_with_the_draws(name, monkeypatch):
    """The blocks' kernels read the latent covariance by its precision S^-1 and
    log|S|^(1/2), kept with the draws (``DrawTables.lat_prec``, in the kernels' layout) and
    scaled by a context's latent shift where the case has one: they equal the inverse and
    log-determinant of the covariance the case is read with, and a block's likelihood is the
    same (to 1e-12) with them given as computed afresh from the covariance."""
    from neb_bayes.inference.draws import DrawTables
    from neb_bayes.inference.exact import block_loglik

    monkeypatch.setenv("NEB_BAYES_COMPILED", "1")
    case = _case(name)
    view = view_for_sex(MODEL, case.patient.sex)
    draws = DRAWS.restrict(sex_keep(view)) if view is not MODEL else DRAWS
    ev = build_evidence(view, case)
    tab = DrawTables(view, draws)
    if name.startswith("context"):
        assert any(np.ptp(ev.lat_shift[a][1]) > 0 for a in ev.lat_shift), "needs a scaled latent"
    fused = 0
    for block in ev.blocks:
        a = block.axis
        mean, cov, (prec, half_logdet) = ev.latent_params(view, a, draws.lat_mean[a],
                                                          tab.lat_cov[a], tab.lat_prec[a])
        np.testing.assert_allclose(prec, np.linalg.inv(cov), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(half_logdet, 0.5 * np.linalg.slogdet(cov)[1], rtol=1e-12,
                                   atol=1e-12)
        given = block_loglik(view, block, latent=(mean, cov, (prec, half_logdet)),
                             log_median=draws.log_median)
        fresh = block_loglik(view, block, latent=(mean, cov), log_median=draws.log_median)
        np.testing.assert_allclose(given, fresh, rtol=1e-12, atol=1e-12)
        fused += (block.censor == 0).all() or (block.censor != 0).sum() == 1
    assert fused, "needs a block the fused kernels take"


def test_blocks_of_one_structure_share_their_moments_parts_and_nothing_else():
    """A block's moments take what depends only on its results' channels, days, rhythms and
    context variances from a kept structure: two cases whose blocks have the same structure
    (other values) share it, and the moments equal those computed with nothing kept; another
    model (other parameters) gets its own, with its own medians; the kept arrays are
    read-only, and so are the distinct combinations of the other axes read from them."""
    from neb_bayes.inference import exact

    sims = simulate(MODEL, 400, seed=7, p_repeat=0.3)
    evs = [build_evidence(MODEL, s.case) for s in sims]
    seen: dict[tuple, tuple] = {}
    pair = None
    for ev in evs:
        for b in ev.blocks:
            key = (b.axis, b.deps, b.channel.tobytes(), b.diurnal.tobytes(), b.day.tobytes(),
                   b.diurnal_var.tobytes(), None if b.extra_var is None else b.extra_var.tobytes())
            if key in seen and not np.array_equal(seen[key][1].y, b.y) and len(b.deps) > 1:
                pair = (seen[key][1], b)
                break
            seen[key] = (ev, b)
        if pair:
            break
    assert pair is not None, "needs two blocks of one structure with other values"
    first, second = pair
    a = first.axis
    draws = PS.draws                          # (all of them: the other axes' classes pay)
    latent = (draws.lat_mean[a], draws.lat_cov(MODEL, a))
    exact._STRUCTURES.clear()
    exact._CLASSES.clear()
    m1 = exact.block_moments(MODEL, first, latent=latent, log_median=draws.log_median)
    m2 = exact.block_moments(MODEL, second, latent=latent, log_median=draws.log_median)
    assert m2.noise is m1.noise and m2.other_mean is m1.other_mean
    assert not m1.noise.flags.writeable and not m1.other_mean.flags.writeable
    for fresh_of in (first, second):
        got = exact.block_moments(MODEL, fresh_of, latent=latent, log_median=draws.log_median)
        exact._STRUCTURES.clear()
        want = exact.block_moments(MODEL, fresh_of, latent=latent, log_median=draws.log_median)
        for f in ("own_mean", "other_mean", "noise", "lat_cov", "loadings"):
            np.testing.assert_array_equal(getattr(got, f), getattr(want, f))
        assert got.own_pos == want.own_pos
    # the distinct combinations of the other axes: kept per structure, equal to fresh ones
    m1 = exact.block_moments(MODEL, first, latent=latent, log_median=draws.log_median)
    m2 = exact.block_moments(MODEL, second, latent=latent, log_median=draws.log_median)
    red1 = exact._DistinctOthers.of(m1)
    assert red1 is not None, "needs a block on distinct combinations of the other axes"
    red2 = exact._DistinctOthers.of(m2)
    assert red2.inverse is red1.inverse
    exact._CLASSES.clear()
    fresh = exact._DistinctOthers.of(m2)
    np.testing.assert_array_equal(fresh.inverse, red1.inverse)
    np.testing.assert_array_equal(fresh.first, red1.first)
    # another model: its own structure, its own medians
    other = with_params(MODEL, DRAWS, 1)
    p1 = exact.block_moments(MODEL, first)
    p2 = exact.block_moments(other, first)
    assert p2.noise is not p1.noise
    ch = first.channel
    np.testing.assert_allclose(
        exact._block_structure(other, first, np.arange(first.n)).log_median,
        [other.channels[c].log_median for c in ch])
    assert not np.allclose(p1.own_mean, p2.own_mean)


def test_a_kept_block_structure_is_never_read_for_another_day_time_or_context():
    """Blocks with the same analytes but other days (repeats on one day share its
    within-day variation), sampling hours or none (a daily rhythm), or a pregnancy (the
    context's extra variance) have other structures: read in turn, each block's moments
    equal those computed with nothing kept."""
    from neb_bayes.case.model import Case, Measurement, Patient
    from neb_bayes.inference import exact

    def block(days, hours=(None, None), pregnant=False):
        ms = (Measurement(0, "cortisol", "serum", 300.0, day=days[0], hour=hours[0]),
              Measurement(1, "cortisol", "serum", 280.0, day=days[1], hour=hours[1]),
              Measurement(2, "acth", "plasma", 20.0, hour=8.0))
        patient = Patient(sex="F", age=30, pregnant=pregnant,
                          gestational_week=20.0 if pregnant else None)
        ev = build_evidence(MODEL, Case(id="x", patient=patient, measurements=ms))
        (b,) = [b for b in ev.blocks if b.n == 3]
        return b

    blocks = [block((0.0, 0.0)), block((0.0, 30.0)), block((0.0, 0.0), (8.0, 8.0)),
              block((0.0, 0.0), (8.0, 23.0)), block((0.0, 0.0), pregnant=True)]
    # (and the same rhythm offsets with another variance for an unknown collection time)
    blocks.append(dataclasses.replace(blocks[0], diurnal_var=blocks[0].diurnal_var + 0.05))
    assert len({(b.day.tobytes(), b.diurnal.tobytes(), b.diurnal_var.tobytes(),
                 None if b.extra_var is None else b.extra_var.tobytes()) for b in blocks}) == 6
    exact._STRUCTURES.clear()
    kept = [exact.block_moments(MODEL, b) for b in blocks + blocks]
    for b, got in zip(blocks + blocks, kept, strict=True):
        exact._STRUCTURES.clear()
        want = exact.block_moments(MODEL, b)
        for f in ("own_mean", "other_mean", "noise"):
            np.testing.assert_array_equal(getattr(got, f), getattr(want, f))


def test_block_means_under_draws_are_the_same_compiled_or_not(monkeypatch):
    """``block_moments`` with parameter draws forms a block's own-axis mean in one compiled
    pass where the kernels are on, by numpy otherwise: the same means to rounding."""
    from neb_bayes.inference.exact import block_moments

    ev = build_evidence(MODEL, nb.read_case(CASES["censored+repeats"]))
    for b in ev.blocks:
        latent = (DRAWS.lat_mean[b.axis], DRAWS.lat_cov(MODEL, b.axis))
        means = []
        for flag in ("1", "0"):
            monkeypatch.setenv("NEB_BAYES_COMPILED", flag)
            means.append(block_moments(MODEL, b, latent=latent,
                                       log_median=DRAWS.log_median).own_mean)
        assert means[0].shape == means[1].shape
        np.testing.assert_allclose(means[0], means[1], rtol=1e-13, atol=1e-12)


def _structure_by_result(model, block):
    """A block's structure built one result at a time from the model's channels (the
    reference for the kept, array-built one)."""
    chans = [model.channels[c] for c in block.channel]
    n, deps = len(chans), block.deps
    own_pos = deps.index(block.axis)
    ax = model.axes[block.axis]
    per_axis = [np.zeros((model.axes[d].n_states, n)) for d in deps]
    amp_own = np.ones((ax.n_states, n))
    for i, ch in enumerate(chans):
        for eff in ch.effects:
            per_axis[deps.index(eff.axis)][:, i] += eff.shift
        if ch.amp_axis is not None:
            per_axis[deps.index(ch.amp_axis)][:, i] += ch.amp * block.diurnal[i]
            if ch.amp_axis == block.axis:
                amp_own[:, i] = ch.amp
    other = np.zeros([1] * len(deps) + [n])
    for pos, arr in enumerate(per_axis):
        if pos != own_pos:
            shape = [1] * len(deps) + [n]
            shape[pos] = arr.shape[0]
            other = other + arr.reshape(shape)
    noise = np.zeros((n, n))
    for i, a in enumerate(chans):
        for j, b in enumerate(chans):
            if block.channel[i] == block.channel[j]:
                noise[i, j] += a.tau * b.tau
                if block.day[i] == block.day[j]:
                    noise[i, j] += a.cvi * b.cvi
                if block.extra_var is not None:
                    noise[i, j] += np.sqrt(block.extra_var[i] * block.extra_var[j])
        noise[i, i] += a.cva ** 2
    noise = noise + np.einsum("si,ij->sij", amp_own**2 * block.diurnal_var, np.eye(n))
    loadings = np.array([c.loadings for c in chans]).reshape(n, len(ax.latents))
    return loadings, per_axis[own_pos], other, noise, [c.log_median for c in chans]


def test_a_block_structure_equals_one_built_result_by_result():
    """The array-built structure (loadings, the own axis' state effects with the daily
    rhythm, the other axes' mean part, the noise covariance, the medians) equals one built
    from the model's channels result by result, for simulated work-ups of both sexes with
    repeats, collection times and contexts, and for blocks of the sex views."""
    from neb_bayes.inference import exact

    sims = simulate(MODEL, 40, seed=23, p_repeat=0.5, p_measure=0.8)
    cases = [s.case for s in sims] + [_case(n) for n in ("pcos", "repeats-male",
                                                           "context-latent-thyroid")]
    n_blocks = 0
    for case in cases:
        for model in (MODEL, view_for_sex(MODEL, case.patient.sex)):
            for block in build_evidence(model, case).blocks:
                exact._STRUCTURES.clear()
                st = exact._block_structure(model, block, np.arange(block.n))
                loadings, own_shift, other, noise, medians = _structure_by_result(model, block)
                np.testing.assert_allclose(st.loadings, loadings, rtol=0, atol=0)
                np.testing.assert_allclose(st.own_shift, own_shift, rtol=1e-15, atol=1e-15)
                np.testing.assert_allclose(st.other_mean, other, rtol=1e-15, atol=1e-15)
                np.testing.assert_allclose(
                    np.broadcast_to(st.noise.reshape((-1,) + noise.shape[1:]), noise.shape),
                    noise, rtol=1e-14, atol=1e-15)
                np.testing.assert_array_equal(st.log_median, medians)
                np.testing.assert_array_equal(st.channels, block.channel)
                n_blocks += 1
    assert n_blocks > 150


@pytest.mark.parametrize("columns", [None, [5, 3, 60, 3], [0], []])
@pytest.mark.parametrize("drawn", [True, False])
def test_symptom_tables_are_the_noisy_or_terms_summed_one_by_one(columns, drawn):
    """``log1m_cause[a][..., s, y]`` is the sum, over the table's entries about column ``y``'s
    symptom active in state ``s`` of axis ``a``, of log(1 - p_entry) (a state's entries are
    summed from the nonzero terms only, not as a dense matrix product): checked term by term
    in Python under parameter draws and at the point values, for all symptoms, a repeated
    column, one and none; and with a context's cause-probability factors."""
    table = MODEL.symptom_table
    cl = DRAWS.cause_logit if drawn else table.cause_logit
    ll = DRAWS.leak_logit if drawn else table.leak_logit
    scale = np.linspace(0.3, 1.0, len(table.entries))
    for sc in (None, scale):
        leak, cause = table.tables(cl, ll, columns, sc)
        cols = range(table.n_symptoms) if columns is None else columns
        p = 1.0 / (1.0 + np.exp(-np.atleast_2d(cl)))
        if sc is not None:
            p = p * sc
        for a, mask in enumerate(table.state_mask):
            want = np.zeros(p.shape[:1] + (mask.shape[0], len(cols)))
            for s in range(mask.shape[0]):
                for y, sym in enumerate(cols):
                    for e in range(len(table.entries)):
                        if mask[s, e] and table.entry_symptom[e] == sym:
                            want[:, s, y] += np.log1p(-p[:, e])
            got = np.asarray(cause[a]).reshape(want.shape)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        pl = 1.0 / (1.0 + np.exp(-(np.atleast_2d(ll)[:, None, list(cols)]
                                   + table.propensity_log_odds[:, None])))
        np.testing.assert_allclose(np.asarray(leak).reshape(pl.shape), np.log1p(-pl),
                                   rtol=1e-12, atol=1e-14)
