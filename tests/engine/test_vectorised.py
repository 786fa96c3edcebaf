"""The batch engine (information form, vectorised over cases) equals the single-case engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neb_bayes.batch.export import case_to_dict
from neb_bayes.case import read_case
from neb_bayes.case.model import Case, Measurement, Patient
from neb_bayes.evidence import build_evidence
from neb_bayes.inference import vectorised
from neb_bayes.inference.exact import infer_exact
from neb_bayes.inference.vectorised import Flat, posterior_batch
from neb_bayes.model.compiled import load_model, view_for_sex
from neb_bayes.simulate import simulate
from neb_bayes.tensor import factor_plan, padded

MODEL = load_model()
EXAMPLES = Path(__file__).resolve().parents[2] / "cases" / "examples"


def _reference(evs):
    probs, log_ev = [], []
    for ev in evs:
        post = infer_exact(MODEL, ev, explain=False)
        probs.append(np.append(post.condition_probs, post.none_prob))
        log_ev.append(post.log_evidence)
    return np.array(probs), np.array(log_ev)


@pytest.fixture(scope="module")
def sim_evidence():
    """Simulated patients: censored results, repeats, unknown collection days, every sex."""
    sims = simulate(MODEL, 160, seed=31) + simulate(MODEL, 60, seed=32, p_measure=0.2,
                                                   p_symptom_reported=0.6)
    evs = [build_evidence(MODEL, s.case) for s in sims]
    # and a few with unknown sex (summed out) and with nothing measured
    for s in sims[:12]:
        data = case_to_dict(s.case)
        data.update(id=data["id"] + "-nosex", patient={}, measurements=data["measurements"][:6])
        evs.append(build_evidence(MODEL, read_case(data)))
    evs.append(build_evidence(MODEL, read_case({"id": "one-symptom", "patient": {"sex": "F"},
                                                "symptoms": {"absent": ["fatigue"]}})))
    return evs


def test_equal_to_single_case_engine_on_simulated_cases(sim_evidence):
    probs, log_ev = posterior_batch(MODEL, sim_evidence)
    ref_probs, ref_log_ev = _reference(sim_evidence)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-10, rtol=0)
    np.testing.assert_allclose(log_ev, ref_log_ev, atol=1e-8, rtol=1e-10)


def test_simulated_cases_exercise_the_vectorised_path(sim_evidence):
    """Most cases are computed by the information form (the equality test has teeth)."""
    flat = Flat.of(sim_evidence)
    bad = flat.exact_blocks(MODEL, len(sim_evidence)).any(1)
    censored = {int(i) for i in flat.case[flat.censor != 0]}
    repeats = sum(len(set(b.channel.tolist())) < b.n for ev in sim_evidence for b in ev.blocks)
    assert bad.mean() < 0.1
    assert len(censored - set(np.flatnonzero(bad).tolist())) >= 5
    cen = flat.censor != 0
    per_axis = np.bincount(flat.case[cen] * len(MODEL.axes) + flat.axis[cen])
    pairs = np.flatnonzero(per_axis == 2) // len(MODEL.axes)
    assert np.count_nonzero(~bad[pairs]) >= 2      # two censored results on one axis
    assert repeats >= 10


def test_blocks_the_information_form_does_not_cover_take_the_block_engine():
    """Three censored results on one axis: that block's factor comes from the single-case
    engine's block function, the rest of the case from the information form (no case is
    left to the single-case engine), with the single-case engine's answer; alone or beside
    cases it covers.  A daily-rhythm result without its collection time is the information
    form's (read per own state, ``test_untimed_rhythm_results_read_per_own_state``)."""
    from neb_bayes.inference.vectorised import posterior_rows

    def result(analyte, value, unit, **extra):
        return {"analyte": analyte, "value": value, "unit": unit, **extra}

    cases = [
        {"id": "three-low-tsh", "patient": {"sex": "F", "age": 50},
         "measurements": [result("TSH", "<0.01", "mIU/L", collected="09:00", day=d)
                          for d in (0, 3, 9)] + [result("FT4", 31.0, "pmol/L"),
                                                 result("cortisol", 350.0, "nmol/L",
                                                        collected="08:00")],
         "symptoms": {"present": ["tremor"], "absent": ["fatigue"]}},
        {"id": "cortisol-no-time", "patient": {"sex": "M", "age": 61},
         "measurements": [result("cortisol", 150.0, "nmol/L"), result("ACTH", 40.0, "pmol/L",
                                                                       collected="08:00"),
                          result("TSH", 2.0, "mIU/L", collected="09:00")]},
        {"id": "both", "patient": {"sex": "F", "age": 33},
         "measurements": [result("cortisol", ">1500", "nmol/L", collected="23:00", day=d)
                          for d in (0, 1, 2)] + [result("cortisol", 90.0, "nmol/L"),
                                                 result("TSH", 0.3, "mIU/L", collected="10:00")]},
    ]
    evs = [build_evidence(MODEL, read_case(c)) for c in cases]
    evs += [build_evidence(MODEL, s.case) for s in simulate(MODEL, 20, seed=7)]
    flat = Flat.of(evs)
    odd = flat.exact_blocks(MODEL, len(evs))
    assert odd[[0, 2]].any(1).all() and not odd[1].any() and not odd[3:].any()
    probs, log_ev, exact = posterior_rows(MODEL, evs, flat)
    assert not exact.any()
    ref_probs, ref_log_ev = _reference(evs)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-10, rtol=0)
    np.testing.assert_allclose(log_ev, ref_log_ev, atol=1e-8, rtol=1e-10)
    for i in range(3):
        alone, _, _ = posterior_rows(MODEL, evs[i:i + 1], Flat.of(evs[i:i + 1]))
        np.testing.assert_array_equal(alone[0], probs[i])


def test_untimed_rhythm_results_read_per_own_state():
    """A cortisol, ACTH or testosterone without a collection time (its rhythm a variance that
    the own axis' state scales: each such case read once per own state,
    :func:`~neb_bayes.inference.vectorised.state_copies`) in the information form: the
    single-case engine's answer, alone or beside others; with one or two censored results
    on the axis (the pair's bivariate mass), the gross-error mixture, no sex given.  Before,
    each such block took the single-case engine's block function (~0.7 ms per case)."""
    from neb_bayes.inference.vectorised import posterior_rows
    from tests.fit.test_rhythm_per_state import untimed_cases

    M = Measurement
    extra = [
        Case(id="untimed-pair-below-limits", patient=Patient(sex="F", age=70), measurements=(
            M(0, "cortisol", "serum", 28.0, censor="left"), M(1, "acth", "plasma", 1.1,
                                                              censor="left"),
            M(2, "cortisol", "saliva", 3.0, hour=23.0))),
        Case(id="untimed-no-sex", patient=Patient(age=45), measurements=(
            M(0, "cortisol", "serum", 700.0), M(1, "testosterone", "serum", 4.0))),
    ]
    evs = [build_evidence(MODEL, c) for c in untimed_cases() + extra]
    n = len(evs)
    evs += [build_evidence(MODEL, s.case) for s in simulate(MODEL, 20, seed=8)]
    flat = Flat.of(evs)
    assert (flat.diurnal_var[flat.case < n] > 0).any()
    assert not flat.exact_blocks(MODEL, len(evs)).any()
    probs, log_ev, exact = posterior_rows(MODEL, evs, flat)
    assert not exact.any()
    ref_probs, ref_log_ev = _reference(evs)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-10, rtol=0)
    np.testing.assert_allclose(log_ev, ref_log_ev, atol=1e-8, rtol=1e-10)
    for i in range(n):
        alone, _, _ = posterior_rows(MODEL, evs[i:i + 1], Flat.of(evs[i:i + 1]))
        np.testing.assert_array_equal(alone[0], probs[i])


def test_uncovered_blocks_read_with_the_cases_context_and_without_a_sex():
    """An uncovered block (three censored copies of a result) in cases whose context shifts a
    latent distribution (the derived model's latents) or that give no sex (the model's full
    states): its factor as the single-case engine's, the case's answer equal to it."""
    import copy

    import yaml

    from neb_bayes.inference.vectorised import posterior_rows

    evs = []
    for path in sorted((EXAMPLES / "context").glob("*_with.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        first = data["measurements"][0]
        if not isinstance(first.get("value"), (int, float)) or _read_at_floor(data):
            continue
        for sign, sexless in (("<", False), (">", True)):
            case = copy.deepcopy(data)
            case["measurements"] += [dict(first, value=f"{sign}{first['value']}", day=d)
                                     for d in (1, 2, 3)]
            if sexless:
                case["patient"].pop("sex", None)
            evs.append(build_evidence(MODEL, read_case(case)))
    shifted = [ev for ev in evs if ev.lat_shift]
    assert len(shifted) >= 4 and any(ev.covariates.sex is None for ev in evs)
    flat = Flat.of(evs)
    assert flat.exact_blocks(MODEL, len(evs)).any(1).all()
    probs, log_ev, exact = posterior_rows(MODEL, evs, flat)
    assert not exact.any()
    ref_probs, ref_log_ev = _reference(evs)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-10, rtol=0)
    np.testing.assert_allclose(log_ev, ref_log_ev, atol=1e-8, rtol=1e-10)


def _read_at_floor(data: dict) -> bool:
    """Whether a case's results include one below its channel's floor: censored copies of it
    below a limit under the floor are read as observed at the floor, no uncovered block."""
    ev = build_evidence(MODEL, read_case(data))
    return any(a["flag"] == "read_at_floor" for a in ev.adjustments)


def _with_censored_copies(case, rng):
    """Variants of a case with censored results beside observed ones in the same channel:
    the same day, another day, two of them, and beside a repeated result."""
    data = case_to_dict(case)
    ms = data["measurements"]
    plain = [i for i, m in enumerate(ms) if isinstance(m["value"], float)]
    counts = {}
    for m in ms:
        counts[m["analyte"]] = counts.get(m["analyte"], 0) + 1
    repeated = [i for i in plain if counts[ms[i]["analyte"]] > 1]

    def cens(i, sign, day=None):
        m = dict(ms[i], value=f"{sign}{ms[i]['value'] * (0.9 if sign == '<' else 1.1):.4g}")
        if day is not None:
            m["day"] = day
        return m

    out = []
    for extra in ([cens(plain[0], "<")], [cens(plain[1], ">", 3.0)],
                  [cens(plain[2], "<"), cens(plain[2], ">", 5.0)],
                  [cens(plain[3], ">"), cens(plain[4], "<")],
                  [cens(i, "<", float(rng.choice([0.0, 2.0]))) for i in repeated[:1]]):
        if extra:
            out.append(read_case(dict(data, id=f"{data['id']}-c{len(out)}",
                                      measurements=ms + extra)))
    return out


def test_censored_result_beside_observed_ones_in_its_channel():
    """A censored result whose channel also has observed results (once sent to the
    single-case engine) is computed by the information form, with the same answer."""
    rng = np.random.default_rng(3)
    sims = simulate(MODEL, 30, seed=41)
    evs = [build_evidence(MODEL, c) for s in sims for c in _with_censored_copies(s.case, rng)]
    flat = Flat.of(evs)
    assert flat.exact_blocks(MODEL, len(evs)).any(1).mean() < 0.2
    probs, log_ev = posterior_batch(MODEL, evs)
    ref_probs, ref_log_ev = _reference(evs)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-10, rtol=0)
    np.testing.assert_allclose(log_ev, ref_log_ev, atol=1e-8, rtol=1e-10)


def test_example_cases_with_context_equal_single_case_engine():
    """Every shipped example (context effects, lab intervals, rhythms, censored values)."""
    files = sorted(EXAMPLES.glob("*.yaml")) + sorted((EXAMPLES / "context").glob("*.yaml"))
    evs = [build_evidence(MODEL, read_case(f)) for f in files
           if f.name not in ("expectations.yaml", "pairs.yaml")]
    assert len(evs) > 80
    probs, log_ev = posterior_batch(MODEL, evs)
    ref_probs, ref_log_ev = _reference(evs)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-10, rtol=0)
    np.testing.assert_allclose(log_ev, ref_log_ev, atol=1e-8, rtol=1e-10)


def test_answers_do_not_depend_on_chunking(sim_evidence, monkeypatch):
    whole, _ = posterior_batch(MODEL, sim_evidence)
    monkeypatch.setattr(vectorised, "SUB_CHUNK", 7)
    parts = np.concatenate([posterior_batch(MODEL, sim_evidence[i:i + 25])[0]
                            for i in range(0, len(sim_evidence), 25)])
    np.testing.assert_array_equal(whole, parts)


def test_underflowing_product_is_recomputed_in_log_space(sim_evidence, monkeypatch):
    """A case whose probability-space product underflows gets the log-space answer."""
    monkeypatch.setattr(vectorised, "UNDERFLOW", np.inf)   # every case "underflows"
    probs, _ = posterior_batch(MODEL, sim_evidence[:20])
    ref, _ = _reference(sim_evidence[:20])
    np.testing.assert_allclose(probs, ref, atol=1e-12, rtol=0)


def test_axis_tables_keep_each_distinct_column_of_the_other_axes_once():
    """Combinations of the other axes' states that shift an axis' channels alike share one
    column of the engine's tables, and reading the columns back through ``rest`` gives every
    channel's expected level and rhythm amplitude at every point of the full grid."""
    from neb_bayes.model.compiled import axis_channel_grid

    saved = 0
    for tabs in vectorised.view_tables(MODEL).axes:
        chans, _, deps, sizes, _, effect, amp = axis_channel_grid(MODEL, tabs.axis)
        own = deps.index(tabs.axis)
        order = [own] + [i for i in range(len(deps)) if i != own]
        assert tabs.grid == tuple(sizes[i] for i in order)

        def own_first(x, order=order, sizes=sizes):
            return np.transpose(x.reshape((-1,) + tuple(sizes)),
                                [0] + [1 + i for i in order]).reshape(x.shape[0], -1)

        median = np.array([MODEL.channels[c].log_median for c in chans])[:, None]
        for full, kept in ((median + own_first(effect), tabs.mu), (own_first(amp), tabs.amp)):
            back = kept.reshape(kept.shape[0], tabs.grid[0], -1)[:, :, tabs.rest]
            np.testing.assert_array_equal(back.reshape(full.shape), full)
        n_rest = int(np.prod(tabs.grid[1:]))
        assert tabs.rest.shape == (n_rest,)
        saved += n_rest - (tabs.rest.max() + 1)
    assert saved > 0         # the default model has such combinations (e.g. the gonadal axis)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_spd_inverse_and_log_determinant_equal_lapack(k):
    """The batch engine's compiled Cholesky inverse and log-determinant of stacks of small
    symmetric positive definite matrices equal numpy's (LAPACK) to rounding."""
    from neb_bayes.inference.kernels import spd_inverse_logdet

    rng = np.random.default_rng(k)
    a = rng.normal(size=(7, 3, k, k))
    m = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(k)
    inv, logdet = spd_inverse_logdet(m)
    assert inv.shape == m.shape and logdet.shape == m.shape[:-2]
    ref = np.linalg.inv(m)
    np.testing.assert_allclose(inv, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(logdet, np.linalg.slogdet(m)[1], rtol=0, atol=1e-12)


def _layout(array, column, dims, sizes, nd):
    """A factor laid in C order over its axes ``dims`` (memory order, sizes ``sizes``) from
    ``column`` of ``array``'s rows, as :func:`~neb_bayes.tensor.factor_plan` takes it."""
    strides, jshape, step = [0] * nd, [1] * nd, 1
    for d, k in reversed(list(zip(dims, sizes, strict=True))):
        strides[d], jshape[d], step = step, k, step * k
    return array, column, tuple(strides), tuple(jshape)


def _joint_by_brute_force(prior, stratum, log_factors, present, ids, start, count, w,
                          shape, healthy):
    """:func:`kernels.fused_joint`'s marginals and totals from the whole joint in numpy
    (``log_factors``: per factor its values ``(N, size)`` in its memory order, its joint
    axes in that order; on the log scale, not shifted)."""
    tab, off, size, stride = present
    J = prior.shape[1]
    nd = len(shape)
    digits = np.stack(np.unravel_index(np.arange(J), tuple(shape)), axis=1)   # (J, nd)
    marg, z, h = [], [], []
    for i in range(stratum.size):
        log_f = np.zeros(tuple(shape))
        for values, dims in log_factors:
            t = values[i].reshape([int(shape[d]) for d in dims])
            t = np.transpose(t, np.argsort(dims))
            full = [1] * nd
            for d in dims:
                full[d] = int(shape[d])
            log_f = log_f + t.reshape(full)
        p = prior[stratum[i]] * np.exp(log_f.ravel())
        sym = np.zeros(J)
        for k in range(w.shape[1]):
            term = np.full(J, w[i, k])
            for y in ids[start[i]:start[i] + count[i]]:
                term *= tab[off[y] + k * size[y] + digits @ stride[y]]
            sym += term
        p = p * (sym if count[i] else 1.0)
        joint = p.reshape(tuple(shape))
        marg.append(np.concatenate([joint.sum(tuple(a for a in range(len(shape)) if a != d))
                                    for d in range(len(shape))]))
        z.append(p.sum())
        h.append((p * healthy).sum())
    return np.array(marg), np.array(z), np.array(h)


@pytest.mark.parametrize("n_factors", [1, 2, 3, 5, 9])
def test_fused_joint_equals_the_whole_joint_and_does_not_depend_on_its_tile(n_factors):
    """The compiled joint pass (cases in tiles, each tile's log-factors combined and
    exponentiated in it, the first three tables in one loop) gives every case the marginals
    of its whole joint, with any number of factors (in any memory order, in several arrays,
    some nested in others) and present symptoms, and the same numbers bit for bit alone as
    in a tile of other cases (also one with an impossible state, -inf, and one far below
    its table's maximum)."""
    from neb_bayes.inference import kernels

    rng = np.random.default_rng(n_factors)
    shape = np.array([2, 3, 4, 3])
    J = int(np.prod(shape))
    n, n_strata, n_sym, P = kernels.JOINT_TILE + 9, 3, 5, 3
    # log-factors on random scopes, each in a random memory order, in two arrays
    specs, blocks, cols = [], [[], []], [0, 0]
    for f in range(n_factors):
        dims = tuple(int(d) for d in rng.permutation(len(shape)) if rng.random() < 0.5)
        dims = dims or ((1,) if f == 0 else ())      # (the first holds the -inf below)
        sizes = tuple(int(shape[d]) for d in dims)
        arr = f % 2
        specs.append((arr, cols[arr], dims, sizes))
        blocks[arr].append(rng.normal(0.0, 2.0, (n, int(np.prod(sizes)))))
        cols[arr] += int(np.prod(sizes))
    blocks[0][0][2, 0] = -np.inf                  # an impossible state
    blocks[0][0][3, 0] = -800.0                   # far below its table's maximum
    arrays = [np.concatenate(b, axis=1) if b else np.zeros((n, 1)) for b in blocks]
    log_factors = [(arrays[a][:, c:c + int(np.prod(sz))], dims) for a, c, dims, sz in specs]
    plan = factor_plan(tuple(_layout(a, c, dims, sizes, len(shape)) for a, c, dims, sizes in specs))
    parts = padded(tuple(a.reshape(-1) for a in arrays))
    row_stride = np.array([a.shape[1] for a in arrays] + [0] * (len(parts) - 2), np.int64)
    index = vectorised._factor_index(plan.shapes, tuple(int(s) for s in shape))
    prior = rng.random((n_strata, J))
    prior /= prior.sum(1, keepdims=True)
    stratum = rng.integers(0, n_strata, n)
    # symptoms: each caused by a random set of axes; its table over (level, those axes)
    cause = [rng.random(len(shape)) < 0.6 for _ in range(n_sym)]
    cause[0][:], cause[1][:] = False, True       # caused by no axis; by every axis
    stride = np.zeros((n_sym, len(shape)), np.int64)
    off, size, tabs = np.zeros(n_sym, np.int64), np.zeros(n_sym, np.int64), []
    for y, c in enumerate(cause):
        m = 1
        for d in range(len(shape) - 1, -1, -1):
            if c[d]:
                stride[y, d] = m
                m *= int(shape[d])
        size[y] = m
        off[y] = sum(t.size for t in tabs)
        tabs.append(rng.random(P * m))
    present = (np.concatenate(tabs), off, size, stride)
    lists = [rng.choice(n_sym, c, replace=False) for c in rng.integers(0, 4, n)]
    lists[:5] = [[], [], [], [0], [1, 2]]
    count = np.array([len(x) for x in lists], dtype=np.int64)
    ids = np.concatenate(lists).astype(np.int64)
    start = np.cumsum(count) - count
    w = rng.random((n, P))
    healthy = (rng.random(J) < 0.3).astype(float)

    def run(sel, ids_, start_):
        rows = padded(tuple(a[sel].reshape(-1) for a in arrays))
        return kernels.fused_joint(prior, stratum[sel], rows, row_stride, plan.arrays,
                                   plan.n_entries, plan.rows, index, present, ids_, start_,
                                   count[sel], w[sel], shape, healthy)

    marg, z, h, shift = run(slice(None), ids, start)
    ref = _joint_by_brute_force(prior, stratum, log_factors, present, ids, start, count, w,
                                shape, healthy)
    scale = np.exp(shift)
    for got, want in zip((marg * scale[:, None], z * scale, h * scale), ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    for i in (0, 2, 3, 4, 5, n - 1):
        alone = run(slice(i, i + 1), ids[start[i]:start[i] + count[i]], np.zeros(1, np.int64))
        for got, one in zip((marg, z, h, shift), alone, strict=True):
            np.testing.assert_array_equal(got[i], one[0])


def test_tile_factors_scale_each_case_to_a_maximum_of_one_and_give_zero_below_the_floor():
    """A tile's table of one factor: exp(x - max x) per case, its log-maximum in ``shift``;
    -inf and values ~800 below the maximum exactly 0 (not ``exp_into``'s clamped ~1e-308);
    a NaN makes the case's shift NaN (recomputed by the caller)."""
    from neb_bayes.inference import kernels
    from neb_bayes.tensor_kernels import tile_factors

    x = np.array([[1.0, -np.inf, -799.0, 0.5], [2.0, 2.0, 2.0, 2.0], [0.0, np.nan, 1.0, 1.0]])
    plan = factor_plan(((0, 0, (1,), (4,)),))
    B = kernels.JOINT_TILE
    ft = np.ones((plan.rows, B))
    shift = np.zeros(3)
    tile_factors(padded((x.reshape(-1),)), np.array([4] + [0] * 3), plan.arrays,
                 np.arange(3), 0, 3, ft, np.empty(B), np.empty(B), shift,
                 np.empty(plan.rows * B))
    np.testing.assert_allclose(ft[:4, 0], [1.0, 0.0, 0.0, np.exp(-0.5)], rtol=1e-15, atol=0)
    assert ft[1, 0] == 0.0 and ft[2, 0] == 0.0
    np.testing.assert_array_equal(ft[:4, 1], 1.0)
    assert ft[4, 0] == 1.0                             # the row of ones after the tables
    assert shift[0] == 1.0 and shift[1] == 2.0 and np.isnan(shift[2])


def test_grid_index_gives_each_grid_points_entry_in_a_table():
    """A grid over some axes (last fastest): each point's entry in a table with other strides,
    as numpy's index arithmetic gives it, in the grid's order."""
    from neb_bayes.inference import kernels

    shape = np.array([2, 3, 4, 5])
    rng = np.random.default_rng(4)
    for on in ([True, False, True, True], [False, False, False, True], [False] * 4, [True] * 4):
        gstride, m = np.zeros(4, np.int64), 1
        for d in range(3, -1, -1):
            if on[d]:
                gstride[d], m = m, m * int(shape[d])
        stride = rng.integers(0, 50, 4)
        idx = np.empty(int(np.prod(shape)), np.int64)
        assert kernels.grid_index(stride, gstride, shape, 7, idx) == m
        axes = [d for d in range(4) if on[d]]
        digits = np.stack(np.unravel_index(np.arange(m), tuple(int(shape[d]) for d in axes)),
                          axis=1) if axes else np.zeros((1, 0), np.int64)
        np.testing.assert_array_equal(idx[:m], 7 + digits @ stride[axes])


def test_channel_stats_equal_dense_linear_algebra():
    """The per-channel GLS statistics (one compiled pass over the results sorted by case and
    channel) equal numpy's inverse and log-determinant of each case's channel covariance:
    single results, repeats on one day and on several, context variation shared in the
    channel, results given in any order."""
    rng = np.random.default_rng(5)
    n_cases, n_ch, n = 7, 4, 40
    noise = rng.uniform(0.01, 0.2, (3, n_ch))
    case = rng.integers(0, n_cases, n)
    ch = rng.integers(0, n_ch, n)
    y, d = rng.normal(size=n), rng.normal(size=n) * 0.3
    day = rng.integers(0, 3, n).astype(float)
    extra = 0.05 * (case % 2)          # the context's variation: a case's, in every channel
    stats, per = vectorised.channel_stats(noise, n_cases, case, ch, y, d, day, extra)
    tau2, cvi2, cva2 = noise
    seen_multi = False
    for i in range(n_cases):
        for j in range(n_ch):
            rows = np.flatnonzero((case == i) & (ch == j))
            if rows.size == 0:
                assert stats["w"][i, j] == 0.0
                continue
            seen_multi |= rows.size > 2
            dy = day[rows]
            se = np.sqrt(extra[rows])
            R = (tau2[j] + cvi2[j] * (dy[:, None] == dy[None, :]) + cva2[j] * np.eye(rows.size)
                 + np.outer(se, se))
            Ri = np.linalg.inv(R)
            one = np.ones(rows.size)
            want = {"w": one @ Ri @ one, "s1": one @ Ri @ y[rows], "s2": y[rows] @ Ri @ y[rows],
                    "t1": one @ Ri @ d[rows], "t2": d[rows] @ Ri @ d[rows],
                    "t3": y[rows] @ Ri @ d[rows],
                    "ld": np.linalg.slogdet(2 * np.pi * R)[1]}
            for k, v in want.items():
                assert stats[k][i, j] == pytest.approx(v, rel=1e-11, abs=1e-11), k
            np.testing.assert_allclose(per["a"][rows], Ri @ one, rtol=1e-11, atol=1e-11)
            np.testing.assert_allclose(per["ry"][rows], Ri @ y[rows], rtol=1e-11, atol=1e-11)
            np.testing.assert_allclose(per["rd"][rows], Ri @ d[rows], rtol=1e-11, atol=1e-11)
            np.testing.assert_allclose(per["nd"][rows], np.diag(Ri), rtol=1e-11, atol=1e-11)
    assert seen_multi


def test_the_compiled_gross_error_density_is_the_models() -> None:
    """The batch engine's gross-error density (one compiled pass over every result) equals
    :meth:`CompiledModel.gross_log_density` on every channel, for observed results and for
    censored ones below and above their limits, far into the tails; each result's value
    is the same alone as among others (bit for bit)."""
    from neb_bayes.inference import kernels
    from neb_bayes.model.compiled import gross_table

    rng = np.random.default_rng(7)
    n_ch = len(MODEL.channels)
    channel = np.repeat(np.arange(n_ch), 12)
    mean = np.array([MODEL.gross_mix[c][1].mean() for c in channel])
    y = mean + rng.normal(0.0, 1.0, channel.size) * rng.choice([0.3, 3.0, 30.0], channel.size)
    censor = rng.choice(np.array([-1, 0, 1], np.int8), channel.size)
    flat = Flat(case=np.zeros(channel.size, np.int64), axis=np.zeros(channel.size, np.int64),
                channel=channel, y=y, censor=censor, day=np.zeros(channel.size),
                diurnal=np.zeros(channel.size), diurnal_var=np.zeros(channel.size),
                extra=np.zeros(channel.size))
    got = vectorised._gross_log_density(MODEL, flat)
    want = MODEL.gross_log_density(channel, y, censor)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # a sex view's (the batch runs each sex's cases on its view) is that sex's population's,
    # as the full model gives it for a patient of that sex
    for sex in ("F", "M"):
        view = view_for_sex(MODEL, sex)
        np.testing.assert_allclose(vectorised._gross_log_density(view, flat),
                                   MODEL.gross_log_density(channel, y, censor, sex),
                                   rtol=1e-12, atol=1e-12)
    for r in rng.choice(channel.size, 10, replace=False):
        one = kernels.gross_log_q(channel[r:r + 1], y[r:r + 1], censor[r:r + 1],
                                  *gross_table(MODEL))
        assert one[0] == got[r]


def test_state_copies_lay_out_each_untimed_case_once_per_state():
    """:func:`~neb_bayes.inference.vectorised.state_copies`: the other cases' results first,
    then ``S`` copies of each case with an untimed rhythm result, copy ``s`` of the ``k``-th
    such case numbered ``n + k S + s``, every case's results in their order, the rhythm's
    variance times the squared amplitude of state ``s`` on the untimed results only."""
    from neb_bayes.inference.vectorised import state_copies

    case = np.array([0, 0, 1, 2, 2, 2, 4])
    diurnal_var = np.array([0.0, 0.0, 0.3, 0.0, 0.2, 0.0, 0.0])
    amp = np.array([[1.0, 0.5, 2.0]] * case.size)            # per result, per state (S = 3)
    amp[4] = [1.0, 1.0, 0.1]
    rows, new_case, diag, apart = state_copies(case, diurnal_var, amp, 5)
    assert apart.tolist() == [1, 2]
    assert rows[:3].tolist() == [0, 1, 6]
    assert new_case[:3].tolist() == [0, 0, 4] and not diag[:3].any()
    # case 1 (one result) as cases 5, 6, 7; case 2 (three results) as 8, 9, 10
    assert new_case[3:].tolist() == [5, 6, 7] + [8] * 3 + [9] * 3 + [10] * 3
    assert rows[3:].tolist() == [2, 2, 2] + [3, 4, 5] * 3
    np.testing.assert_allclose(diag[3:6], 0.3 * np.array([1.0, 0.5, 2.0]) ** 2)
    np.testing.assert_allclose(diag[6:], [0, 0.2, 0] + [0, 0.2, 0] + [0, 0.2 * 0.01, 0])
    assert np.all(np.diff(new_case) >= 0)                    # still sorted by case
    none = state_copies(case, np.zeros(case.size), amp, 5)
    assert none[0].tolist() == list(range(case.size)) and none[3].size == 0
