"""One axis' laboratory factor as the fit evaluates it (:mod:`neb_bayes.inference.lab_block`):
the compiled kernel's value against the numpy formula, its hand-written vector-Jacobian
product against pytensor's automatic differentiation of the same formula and against finite
differences, on distinct grid points, padding latents, censored results, gross-error slots
and people split into parts; the work the kernels share between people alike and between
grid points a person's results cannot tell apart, against the same work done apart."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

pytensor = pytest.importorskip("pytensor")

from neb_bayes.inference import lab_block  # noqa: E402
from neb_bayes.inference.pymc_model import (  # noqa: E402
    _lab_inputs,
    prepare_cohort,
    theta_constants,
)
from neb_bayes.model.compiled import compile_spec, load_model  # noqa: E402
from neb_bayes.model.params import point_params  # noqa: E402
from neb_bayes.model.spec import spec_from_tables  # noqa: E402
from neb_bayes.simulate import simulate  # noqa: E402

from .conftest import covered  # noqa: E402


def _two_latent_model():
    """The shipped prior set with the metabolic axis' glycation latent folded back into
    HbA1c's person-level residual (tau): an axis of two latents, a structure the shipped set
    no longer has, so that the kernels stay checked for every number of latents 1-4."""
    raw = copy.deepcopy(load_model().spec.raw)
    axis = raw["axes"]["metabolic"]
    del axis["latents"]["glycation"]
    for state in axis["states"].values():
        state["mean"].pop("glycation")
        state["sd"].pop("glycation")
        state["corr"] = [c for c in state.get("corr", []) if "glycation" not in c[:2]]
    raw["analytes"]["hba1c"]["loadings"].pop("glycation")
    raw["analytes"]["hba1c"]["tau"] = 0.071
    raw["uncertainty"]["axes"]["metabolic"]["latent_mean"].pop("glycation")
    return compile_spec(spec_from_tables(raw, "two-latent metabolic axis"))


def _blocks(model, axes: set[str] | None = None, cases: list | None = None) -> list:
    if cases is None:
        # a seed whose cohort exercises every structure
        # (test_the_cohort_exercises_every_structure)
        sims = simulate(model, 120, seed=12, p_repeat=0.3, p_measure=0.6,
                        p_symptom_reported=0.2)
        cases = covered(model, [s.case for s in sims])
    theta = theta_constants(model)
    out = []
    for g in prepare_cohort(model, cases):
        for ad in g.axes:
            if axes is not None and model.axes[ad.axis].name not in axes:
                continue
            _lab_inputs(theta, g, ad)       # makes ad.block
            a = ad.axis
            keep = g.keep.get(a, slice(None))
            params = (theta["lat_mean"][a][keep], theta["lat_sd"][a][keep],
                      theta["log_median"][ad.channels])
            out.append((params, ad.block, ad))
    return out


@pytest.fixture(scope="module")
def blocks():
    """(params, block) of every group and axis of a small simulated cohort, and of the
    metabolic axis with two latents (:func:`_two_latent_model`)."""
    return _blocks(load_model()) + _blocks(_two_latent_model(), {"metabolic"})


def test_the_cohort_exercises_every_structure(blocks):
    structures = {b.structure(d) for _, b, _ in blocks for _, d in b.parts}
    assert {s[:2] for s in structures} == {(0, True), (1, True), (2, True)}
    assert {b.n_latents for _, b, _ in blocks} >= {1, 2, 3, 4}
    # distinct grid points: the gonadal block's grid collapses
    assert any(b.n_unique < b.inverse.size // 4 for _, b, _ in blocks)
    # a censored result with observed repeats in its channel (its conditional given them)
    assert any((d["alpha"] != 1).any() and (d["kr"] != 0).any()
               for _, b, _ in blocks for _, d in b.parts if "alpha" in d)


@pytest.mark.parametrize("evaluate", ["kernel_value", "_evaluate_value"])
def test_compiled_value_equals_the_numpy_formula(blocks, evaluate):
    for params, b, _ in blocks:
        np.testing.assert_allclose(b.values(params, getattr(lab_block, evaluate)),
                                   b.values(params), rtol=1e-10, atol=1e-9)


def test_kernel_vjp_equals_automatic_differentiation(blocks):
    """The kernel's reverse pass, written by hand, against pytensor's gradient of the
    formula, for every structure (censored result, gross-error slots, 1-4 latents)."""
    rng = np.random.default_rng(7)
    for params, b, _ in blocks:
        # parameters away from the prior set's, so that no term is at a special value
        moved = (params[0] + 0.3 * rng.normal(size=np.shape(params[0])),
                 params[1] * np.exp(0.2 * rng.normal(size=np.shape(params[1]))),
                 params[2] + 0.2 * rng.normal(size=np.shape(params[2])))
        ct = rng.normal(size=(b.n_rows, b.inverse.size))
        got = b.vjp(moved, ct, lab_block.kernel_vjp)
        want = b.vjp(moved, ct, lab_block._evaluate_vjp)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9 * np.abs(w).max())


def test_the_lanes_kernel_equals_the_scalar_one(blocks, alike_blocks):
    """A part without censored results runs the kernel whose grid points are lanes
    (:func:`~neb_bayes.inference.lab_kernels.lab_factor_observed`): its factor and
    vector-Jacobian product equal the scalar kernel's (:func:`lab_factor`, every structure's)
    on the same part, people alike and points a person cannot tell apart included."""
    from neb_bayes.inference.lab_kernels import lab_factor

    rng = np.random.default_rng(3)
    checked = 0
    for params, b, _ in blocks + alike_blocks:
        padded = b._padded(params)
        for _, d in b.parts:
            st = b.structure(d)
            if st[0] or not len(d["A_k"]):
                continue
            ct = rng.normal(size=(len(d["A_k"]), d["effect"].shape[1]))
            lanes = (lab_block.kernel_value(st, padded, d),
                     lab_block.kernel_vjp(st, padded, d, ct))
            scalar_run = lambda structure, args, out, coefs: lab_factor(*args, out, *coefs)  # noqa: E731
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(lab_block, "_run_kernel", scalar_run)
                scalar = (lab_block.kernel_value(st, padded, d),
                          lab_block.kernel_vjp(st, padded, d, ct))
            np.testing.assert_allclose(lanes[0], scalar[0], rtol=1e-12, atol=1e-10)
            for g, w in zip(lanes[1], scalar[1], strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10 * np.abs(w).max())
            checked += 1
    assert checked


@pytest.fixture(scope="module")
def alike_blocks():
    """Blocks of a cohort of people alike: one result per channel (so that many share their
    channels), each person beside a twin whose results are 2 % higher (the same channels,
    censored ones included, so that every structure has people alike)."""
    model = load_model()
    sims = simulate(model, 150, seed=5, p_repeat=0.0, p_measure=0.6, p_symptom_reported=0.2)
    cases = covered(model, [s.case for s in sims])
    twins = [dataclasses.replace(c, id=f"{c.id}-twin", measurements=tuple(
        dataclasses.replace(m, value=m.value * 1.02) for m in c.measurements)) for c in cases]
    return _blocks(model, cases=cases + twins)


def test_people_alike_share_the_kernels_work_and_nothing_else(alike_blocks, monkeypatch):
    """People with equal :func:`~neb_bayes.inference.lab_block.run_key` share the posterior
    covariances in the kernels (one ``M^-1`` and chain rule per run); the factor and its
    gradient equal those of every person on their own."""
    shared = {}
    for _, b, _ in alike_blocks:
        for _, d in b.parts:
            shared[d["n_w"]] = shared.get(d["n_w"], 0) + int((~d["new_run"]).sum())
    assert min(shared.get(n, 0) for n in range(lab_block.MAX_CENSORED + 1)) > 0, shared

    monkeypatch.setattr(lab_block, "new_runs", lambda key: np.ones(len(key), dtype=bool))
    rng = np.random.default_rng(11)
    for params, b, ad in alike_blocks:
        alone = lab_block.LabBlock(ad, b.shared["corr_k"])
        assert all(d["new_run"].all() for _, d in alone.parts)
        moved = (params[0] + 0.3 * rng.normal(size=np.shape(params[0])),
                 params[1] * np.exp(0.2 * rng.normal(size=np.shape(params[1]))),
                 params[2] + 0.2 * rng.normal(size=np.shape(params[2])))
        np.testing.assert_allclose(b.values(moved, lab_block.kernel_value),
                                   alone.values(moved, lab_block.kernel_value),
                                   rtol=1e-12, atol=1e-10)
        ct = rng.normal(size=(b.n_rows, b.inverse.size))
        for g, w in zip(b.vjp(moved, ct, lab_block.kernel_vjp),
                        alone.vjp(moved, ct, lab_block.kernel_vjp), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10 * np.abs(w).max())


def _each_person_twice(b, d: dict) -> dict:
    """A part's data ``d`` with each person followed by a copy of itself."""
    R = d["A_k"].shape[0]
    out = {}
    for k, v in d.items():
        if k in ("_kernel_data", "new_run"):     # (the kernel's arguments, kept)
            continue
        if k == "cen_k":
            out[k] = {kk: np.repeat(vv, 2, axis=0) for kk, vv in v.items()}
        elif isinstance(v, np.ndarray) and v.shape[:1] == (R,) and k not in b.shared:
            out[k] = np.repeat(v, 2, axis=0)
        else:
            out[k] = v
    return out


def _unused_first_slot(e):
    lw = e["lw"][1::2]
    lw[np.arange(len(lw)), np.argmax(np.isfinite(lw), axis=1)] = -np.inf


#: a copy that differs in one input the kernels' shared work reads
CHANGES = {
    "A": lambda e: e["A_k"][1::2].__imul__(1.1),
    "empty slot": _unused_first_slot,
    "r1": lambda e: e["r1"][1::2].__imul__(0.9),
    "rjj": lambda e: e["rjj"][1::2].__imul__(1.1),
    "censored channel": lambda e: e["cen_k"]["ch"][1::2].__setitem__(
        slice(None), (e["cen_k"]["ch"][1::2] + 1) % e["L_k"].shape[0]),
    "alpha": lambda e: e["cen_k"]["alpha"][1::2].__imul__(0.9),
    "censored variance": lambda e: e["cen_k"]["var"][1::2].__imul__(1.2),
    "censored covariance": lambda e: e["cen_k"]["cov"][1::2].__iadd__(1e-3),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_people_who_differ_in_what_the_kernels_share_are_not_alike(alike_blocks, change):
    """A person and a copy of it that differs in one input of the shared work: their
    factors and gradients with the kernels' runs (:func:`lab_block.new_runs`) equal those
    with every person on their own (a key without that input would share wrongly)."""
    from neb_bayes.inference.lab_block import kernel_value, kernel_vjp, new_runs, run_key

    rng = np.random.default_rng(5)
    n_w = 0 if change in ("A", "empty slot", "r1", "rjj") else lab_block.MAX_CENSORED
    checked = 0
    for params, b, _ in alike_blocks:
        for _, d in b.parts:
            if d["n_w"] != n_w or "lw" not in d or not len(d["A_k"]):
                continue
            e = _each_person_twice(b, d)
            assert not new_runs(run_key(e))[1::2].any()     # unchanged, each copy shares
            CHANGES[change](e)
            st = b.structure(e)
            padded = b._padded(params)
            ct = rng.normal(size=(len(e["A_k"]), e["effect"].shape[1]))
            got = []
            for runs in (new_runs(run_key(e)), np.ones(len(e["A_k"]), dtype=bool)):
                f = {**e, "new_run": runs}
                got.append((kernel_value(st, padded, f), kernel_vjp(st, padded, f, ct)))
            np.testing.assert_allclose(got[0][0], got[1][0], rtol=1e-12, atol=1e-10)
            for g, w in zip(got[0][1], got[1][1], strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10 * np.abs(w).max())
            checked += 1
    assert checked


def _unkept(d: dict) -> dict:
    """Part data ``d`` without the kernel arguments a call kept in it (``_kernel_data``)."""
    return {k: v for k, v in d.items() if k != "_kernel_data"}


def _every_point(e: dict) -> dict:
    """Part data ``e`` whose kernels compute every grid point for every person."""
    return {**e, "reps": np.arange(e["effect"].shape[1], dtype=np.int64)[None],
            "sig": np.zeros(len(e["A_k"]), dtype=np.int64)}


def _odd_points_apart(e: dict, what: str) -> dict:
    """Part data ``e`` whose grid points all differ in the effects on the channels of
    censored results, or whose odd grid points differ from the even ones in every channel's
    rhythm amplitude."""
    e = _unkept(e)
    points = np.arange(e["effect"].shape[1])
    if what == "amplitudes":
        e["amp"] = e["amp"] + 0.1 * (points % 2)
    else:
        e["effect"] = e["effect"].copy()
        e["effect"][np.unique(e["cen_k"]["ch"])] += 0.01 * points
    e["reps"], e["sig"] = lab_block.point_reps(e)
    return e


@pytest.mark.parametrize("what", ["as simulated", "censored channels' effects", "amplitudes"])
def test_points_a_person_cannot_tell_apart_share_its_factor(blocks, alike_blocks, what):
    """A person's factor at a grid point equal to an earlier one in own state, effects and
    amplitudes on the channels of its results is that point's (``point_reps``; the kernels
    compute it once): the factor and gradient equal those computed at every point."""
    from neb_bayes.inference.lab_block import kernel_value, kernel_vjp

    rng = np.random.default_rng(2)
    merged = checked = 0
    for params, b, _ in blocks + alike_blocks:     # (censored results with repeats, without)
        padded = b._padded(params)
        for _, d in b.parts:
            if not len(d["A_k"]) or (what != "as simulated" and not d["n_w"]):
                continue
            e = d if what == "as simulated" else _odd_points_apart(b.shared | d, what)
            merged += int((d["reps"] != np.arange(d["reps"].shape[1])).sum())
            st = b.structure(e)
            ct = rng.normal(size=(len(e["A_k"]), e["effect"].shape[1]))
            got = [(kernel_value(st, padded, f), kernel_vjp(st, padded, f, ct))
                   for f in (_unkept(e), _every_point(_unkept(e)))]
            np.testing.assert_allclose(got[0][0], got[1][0], rtol=1e-12, atol=1e-10)
            for g, w in zip(got[0][1], got[1][1], strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10 * np.abs(w).max())
            checked += 1
    assert checked and merged


def test_kernel_log_ndtr_equals_scipy():
    from scipy.special import log_ndtr

    from neb_bayes.inference.lab_kernels import log_ndtr as kernel_log_ndtr

    t = np.concatenate([np.linspace(-60, 12, 2001), [-1e4, -1e3, -37.0, -37.0001, -1.0, 38.0]])
    got = np.array([kernel_log_ndtr(x) for x in t])
    np.testing.assert_allclose(got, log_ndtr(t), rtol=1e-13, atol=1e-300)


def test_parts_do_not_change_the_value(blocks, monkeypatch):
    params, b, ad = max(blocks, key=lambda x: x[1].n_rows * x[1].n_unique)
    monkeypatch.setattr(lab_block, "PART_SIZE", 1)   # one person per part
    k = b.n_latents
    small = lab_block.LabBlock(ad, b.shared["corr"][:, :k, :k])
    assert len(small.parts) == b.n_rows > len(b.parts)
    # equal to rounding: numpy's stacked products round differently with the stack's size, so
    # a value near 0 (a sum of terms of magnitude ~10) may differ by a few 1e-13 absolute
    np.testing.assert_allclose(small.values(params), b.values(params), rtol=1e-12, atol=1e-12)


def test_vjp_matches_finite_differences(blocks):
    rng = np.random.default_rng(3)
    for params, b, _ in blocks:
        ct = rng.normal(size=(b.n_rows, b.inverse.size))
        grads = b.vjp(params, ct, lab_block.kernel_vjp)
        assert [g.shape for g in grads] == [np.shape(p) for p in params]
        direction = [rng.normal(size=np.shape(p)) for p in params]
        h = 1e-5

        def f(t, direction=direction, ct=ct, params=params, b=b):
            moved = [p + t * v for p, v in zip(params, direction, strict=True)]
            moved[1] = np.abs(moved[1])
            return float((ct * b.values(moved)).sum())

        fd = (f(h) - f(-h)) / (2 * h)
        got = sum(float((g * v).sum()) for g, v in zip(grads, direction, strict=True))
        assert got == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_free_analyte_levels_are_a_few_nodes_per_group():
    """The fit's graph holds one laboratory Op per group (its axes together) and one for its
    pullback, not the formula and not one per axis (each Op call is compiled apart in every
    chain's process), and no cohort-sized constants: building the log-density and its
    gradient is quick."""
    import pytensor.tensor as pt
    from pytensor.graph.basic import Constant

    try:
        from pytensor.graph.traversal import ancestors, io_toposort
    except ImportError:   # pytensor before 3.x's traversal module
        from pytensor.graph.basic import ancestors, io_toposort

    from neb_bayes.inference.pymc_model import group_loglik

    model = load_model()
    sims = simulate(model, 60, seed=5, p_measure=0.5)
    cases = covered(model, [s.case for s in sims])
    pp = point_params(model)
    theta = theta_constants(model)
    lat_mean = [pt.dmatrix(f"m{i}") for i in range(len(model.axes))]
    theta["lat_mean"] = lat_mean
    groups = prepare_cohort(model, cases)
    total = sum(group_loglik(theta, g).sum() for g in groups)
    grads = pytensor.grad(total, [m for m, x in zip(lat_mean, pp.lat_mean, strict=True)
                                  if x[0].size])
    nodes = io_toposort(lat_mean, [total, *grads])
    labs = [n for n in nodes if type(n.op).__name__ == "_LabFactor"]
    with_labs = [g for g in groups if g.axes or g.exact]
    assert len(labs) == len(with_labs)
    assert sum(len(n.op.blocks) for n in labs) == sum(len(g.axes) + len(g.exact)
                                                     for g in with_labs)
    assert max(len(n.op.blocks) for n in labs) > 1
    assert sum(type(n.op).__name__ == "_LabFactorVJP" for n in nodes) == len(with_labs)
    assert len(nodes) < 120 * len(prepare_cohort(model, cases))
    big = [v for v in ancestors([total, *grads]) if isinstance(v, Constant)
           and getattr(v.data, "size", 0) > 10_000]
    assert not big


def test_concurrent_threads_get_the_same_values(blocks):
    """nutpie runs chains in threads: concurrent evaluations must not overwrite each other's
    storage (a 300-person fit aborted before the pytensor function's lock; the kernel keeps
    none and releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    params, b, _ = max(blocks, key=lambda x: x[1].n_rows * x[1].n_unique)
    ct = np.random.default_rng(4).normal(size=(b.n_rows, b.inverse.size))
    want_v = b.values(params, lab_block.kernel_value)
    want_g = b.vjp(params, ct, lab_block.kernel_vjp)

    def work(_):
        return [(b.values(params, lab_block.kernel_value),
                 b.vjp(params, ct, lab_block.kernel_vjp)) for _ in range(20)]

    with ThreadPoolExecutor(4) as ex:
        for results in ex.map(work, range(4)):
            for v, g in results:
                np.testing.assert_array_equal(v, want_v)
                for x, y in zip(g, want_g, strict=True):
                    np.testing.assert_array_equal(x, y)


def test_one_op_for_several_blocks_gives_each_its_own_factor_and_gradient(blocks):
    """A group's blocks in one Op: each output is its block's factor, each block's
    parameters get the gradient of its own output only, and an output the log-density does
    not use gives zero gradients (a disconnected cotangent), not an error."""
    import pytensor.tensor as pt

    (p0, b0, _), (p1, b1, _) = blocks[:2]
    n = 1 + max(int(np.max(b0.rows)), int(np.max(b1.rows)))
    syms = [[pt.as_tensor_variable(np.asarray(x, float)).type() for x in p] for p in (p0, p1)]
    outs = lab_block.LabFactors([b0, b1], n)(*syms[0], *syms[1])
    cost = outs[0].sum()
    flat = syms[0] + syms[1]
    f = pytensor.function(flat, [*outs, *pytensor.grad(cost, flat, disconnected_inputs="ignore")])
    res = f(*[np.asarray(x, float) for p in (p0, p1) for x in p])
    # each block's factor at its distinct grid points (the elimination expands it)
    for got, b, p in ((res[0], b0, p0), (res[1], b1, p1)):
        np.testing.assert_allclose(got[:, b.expand].reshape((n,) + b.grid_shape),
                                   b.on_people(b.values(p), n), rtol=1e-10, atol=1e-10)
    ct = np.ones((len(b0.rows), b0.n_unique))
    for got, want in zip(res[2:5], b0.distinct_gradient(p0, ct), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert all(not np.any(g) for g in res[5:])


def test_gradient_reuses_the_last_evaluation_only_at_its_parameters(blocks):
    """The Op's pullback reads the gradients the forward pass kept (no second forward
    pass): equal to the kernels' vector-Jacobian product from scratch at those parameters,
    and, at other parameters, that of the other parameters (never the kept ones)."""
    rng = np.random.default_rng(11)
    for params, b, _ in blocks:
        n = 1 + int(np.max(b.rows))
        ct = rng.normal(size=(b.n_rows, b.inverse.size))
        moved = (params[0] + 0.2, params[1] * 1.1, params[2] - 0.1)
        b.people_values(params, n)
        kept = b.gradient(params, ct)
        fresh = b.vjp(params, ct, lab_block.kernel_vjp)
        for g, w in zip(kept, fresh, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12 * np.abs(w).max())
        other = b.gradient(moved, ct)           # the kept gradients are at ``params``
        want = b.vjp(moved, ct, lab_block._evaluate_vjp)
        for g, w in zip(other, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9 * np.abs(w).max())
        assert any(not np.allclose(g, w) for g, w in zip(other, kept, strict=True))


@pytest.mark.parametrize("seed", range(4))
def test_grid_sums_add_each_distinct_points_grid_points(seed):
    """A cotangent per grid point summed per distinct point (the elimination's and the
    pullback's way back from the grid) equals numpy's sum over each distinct point's grid
    points, along any axis; where every grid point is its own, in order, it is the input
    itself (a copy)."""
    rng = np.random.default_rng(seed)
    n_u = int(rng.integers(1, 8))
    expand = np.concatenate([np.arange(n_u), rng.integers(0, n_u, int(rng.integers(0, 30)))])
    expand = rng.permutation(expand)
    sums = lab_block.GridSums(expand)
    x = rng.normal(size=(expand.size, 5, 3)).astype(np.float32)
    want = np.stack([x[expand == u].astype(np.float64).sum(axis=0) for u in range(n_u)])
    got = sums(x, axis=0)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums(np.moveaxis(x, 0, -1)), np.moveaxis(want, 0, -1),
                               rtol=1e-12, atol=1e-12)
    same = lab_block.GridSums(np.arange(6))
    y = rng.normal(size=(4, 6))
    got = same(y)
    np.testing.assert_array_equal(got, y)
    got[0, 0] += 1.0
    assert got[0, 0] != y[0, 0]
