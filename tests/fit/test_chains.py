"""How a fit runs its chains: nutpie's chains are threads, which take turns on the GIL
while Ops evaluated from Python run (free analyte levels, free symptom rates), so such fits
run one nutpie chain per process and join them; a prevalence fit is compiled code only and
keeps its threads."""

from __future__ import annotations

import dataclasses

import arviz as az
import numpy as np
import pytest

pytest.importorskip("pymc")

from neb_bayes.fit import (  # noqa: E402
    build_fit_model,
    chain_seeds,
    join_chains,
    nuts_library,
    runs_in_python,
)
from neb_bayes.model.compiled import load_model  # noqa: E402
from neb_bayes.simulate import simulate  # noqa: E402

from .conftest import covered  # noqa: E402


@pytest.fixture(scope="module")
def cohort():
    model = load_model()
    sims = simulate(model, 30, seed=5, p_repeat=0.0, p_measure=0.4, p_symptom_reported=0.3)
    return model, covered(model, [s.case for s in sims])


@pytest.mark.parametrize(("groups", "python_ops"), [
    (("prevalence",), False),
    (("analyte-levels",), True),
    (("symptoms",), True),
    (("analyte-levels", "prevalence", "symptoms"), True),
])
def test_python_ops_are_found_in_the_log_density(cohort, groups, python_ops):
    model, cases = cohort
    assert runs_in_python(build_fit_model(model, cases, groups)) is python_ops


def _one_chain(rng, draws=50):
    tree = az.from_dict({
        "posterior": {"mu": rng.normal(size=(1, draws)), "v": rng.normal(size=(1, draws, 3))},
        "sample_stats": {"diverging": np.zeros((1, draws), bool),
                         "energy": rng.normal(size=(1, draws))},
    })
    tree["sample_stats"].attrs["inference_library"] = "nutpie"   # where nutpie puts it
    return tree


def test_single_chains_join_into_one_trace():
    rng = np.random.default_rng(0)
    trees = [_one_chain(rng) for _ in range(3)]
    joined = join_chains(trees)
    post = joined["posterior"]
    assert list(post["chain"].values) == [0, 1, 2]
    assert post["v"].shape == (3, 50, 3)
    for i, t in enumerate(trees):
        np.testing.assert_array_equal(post["mu"].values[i], t["posterior"]["mu"].values[0])
        np.testing.assert_array_equal(joined["sample_stats"]["energy"].values[i],
                                      t["sample_stats"]["energy"].values[0])
    assert nuts_library(joined) == "nutpie"
    # diagnostics read the joined trace as any multi-chain trace
    assert float(az.rhat(joined["posterior"])["mu"]) < 1.1


def test_chain_seeds_are_distinct_and_reproducible():
    assert chain_seeds(0, 4) == chain_seeds(0, 4)
    assert len(set(chain_seeds(0, 4))) == 4
    assert chain_seeds(0, 4) != chain_seeds(1, 4)


def test_a_script_without_a_main_guard_gets_a_clear_error(tmp_path):
    """Chains in spawned processes import the calling script again; a script that fits at
    import time cannot start them, and is told why (not a bare BrokenProcessPool)."""
    import subprocess
    import sys

    script = tmp_path / "fit_at_import.py"
    script.write_text(
        "from neb_bayes.fit import fit\n"
        "from neb_bayes.model.compiled import load_model\n"
        "from neb_bayes.simulate import simulate\n"
        "model = load_model()\n"
        "cases = [s.case for s in simulate(model, 3, seed=1, p_repeat=0.0, p_measure=0.2)]\n"
        "fit(model, cases, groups=('analyte-levels',), draws=5, tune=5, chains=2,\n"
        "    progressbar=False, drop_unsupported=True)\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode != 0
    assert "RuntimeError" in run.stderr and '__name__ == "__main__"' in run.stderr, run.stderr[-2000:]


def test_chains_start_near_the_prior_sets_values(cohort):
    """Each chain starts at the prior set's values moved by at most INIT_SPREAD prior sds
    (PyMC's and nutpie's own start moves every parameter by up to 1 whatever its scale, and
    put one chain of two in a relabelled mode at 500 people); chains differ; ``pm.sample``
    gets the same start in the parameters' own space.  (That the flat vector nutpie takes
    lists the variables in nutpie's own order is checked where a fit compiles a model with
    nutpie anyway: ``test_prevalence_fit_runs_in_nutpie_threads``.)"""
    from pymc.initial_point import make_initial_point_fn

    import neb_bayes.fit as fit_mod

    model, cases = cohort
    pmodel = build_fit_model(model, cases, ("analyte-levels", "prevalence"))
    values = {pmodel.rvs_to_values[rv].name: rv for rv in pmodel.free_RVs}
    centre = make_initial_point_fn(model=pmodel, jitter_rvs=set(), return_transformed=True)(0)
    centre_flat = np.concatenate([np.ravel(centre[n]) for n in values])
    spreads = fit_mod.prior_sd(model)

    def spread(name: str):   # the prior set's uncertainty: per latent for the latent means
        group, *axis = name.split("__")
        return (spreads[group] if group != "lat_mean"
                else spreads[group][model.axis_index(axis[0])])

    sd = np.concatenate([np.broadcast_to(spread(n), np.shape(centre[n])).ravel()
                         for n in values])
    assert np.unique(sd).size >= 3    # not one scale for all (metabolic means: 0.02)
    start = fit_mod.start_function(pmodel)
    a, b = start(1), start(2)
    assert a.shape == centre_flat.shape and not np.allclose(a, b)
    for x in (a, b):
        moved = np.abs(x - centre_flat) / sd
        assert moved.max() <= fit_mod.INIT_SPREAD + 1e-12
        assert moved.mean() > 0.25 * fit_mod.INIT_SPREAD
    own = fit_mod.initial_values(pmodel, [1])[0]         # pm.sample's initvals
    assert list(own) == [rv.name for rv in values.values()]
    assert all(np.all(v > 0) for k, v in own.items() if k.startswith("lat_sd__"))
    back = np.concatenate([np.ravel(np.log(v) if k.startswith("lat_sd__") else v)
                           for k, v in own.items()])
    np.testing.assert_allclose(back, a, rtol=1e-12, atol=1e-12)


class Probed(Exception):
    """Raised by :func:`_probe_sampling`'s stand-in sampler once it has looked around."""


def _probe_sampling(monkeypatch, sampler: str, look):
    """Replace ``sampler``'s sampling function (pymc's or nutpie's) by a probe that calls
    ``look()`` and raises :class:`Probed`, and nutpie's compilation by a stand-in: what is
    tested is the setting sampling runs in."""
    import nutpie
    import pymc

    def probe(*args, **kwargs):
        look()
        raise Probed

    @dataclasses.dataclass
    class Compiled:        # nutpie's compiled model, as far as the fit touches it
        initial_point_func: object = None

    monkeypatch.setattr(pymc if sampler == "pymc" else nutpie, "sample", probe)
    monkeypatch.setattr(nutpie, "compile_pymc_model", lambda *a, **k: Compiled())


@pytest.mark.parametrize("sampler", ["pymc", "nutpie"])
def test_chains_sample_with_one_blas_thread_each(cohort, monkeypatch, sampler):
    """While chains sample, every BLAS library of the process (scipy's, which the compiled
    graph's products call, included) runs one thread: the chains are the parallelism, and
    OpenBLAS's spinning threads made a 2-chain symptom fit on 2 cores take 2.2x as long.
    ``pm.sample`` forks its chains from inside the limit; nutpie's sampling (in threads, or
    in each chain's own process) runs inside it.  Afterwards the process's own setting is
    back.  (The sampler is a probe.)"""
    import scipy.linalg  # noqa: F401  (its BLAS loaded, so the probe sees it)
    from threadpoolctl import threadpool_info, threadpool_limits

    import neb_bayes.fit as fit_mod

    seen: list[dict] = []
    _probe_sampling(monkeypatch, sampler, lambda: seen.extend(
        i for i in threadpool_info() if i["user_api"] == "blas"))
    model, cases = cohort
    with threadpool_limits(2, user_api="blas"):
        with pytest.raises(Probed):
            fit_mod.fit(model, cases, groups=("prevalence",), sampler=sampler, chains=2,
                        draws=10, tune=10, progressbar=False)
        after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    assert seen and all(i["num_threads"] == 1 for i in seen), seen
    assert after and all(n == 2 for n in after), after


@pytest.mark.parametrize(("sampler", "chains", "cores", "want"), [
    ("pymc", 2, 4, 2),          # forked from this process: 2 chains at once, 2 threads each
    ("nutpie", 1, 3, 3),        # one chain in this process: every core
])
def test_chains_of_this_process_use_the_cores_left_over_as_threads(cohort, monkeypatch, sampler,
                                                                   chains, cores, want):
    """The Ops' pieces of people run on the cores the chains leave over while the chains
    sample (pm.sample's forked chains inherit the setting); afterwards the process is back
    to one thread.  (The sampler is a probe.)"""
    import neb_bayes.fit as fit_mod
    from neb_bayes.inference import python_ops

    seen: list[int] = []
    _probe_sampling(monkeypatch, sampler, lambda: seen.append(python_ops.threads()))
    model, cases = cohort
    with pytest.raises(Probed):
        fit_mod.fit(model, cases, groups=("analyte-levels",), sampler=sampler, chains=chains,
                    cores=cores, draws=10, tune=10, progressbar=False)
    assert seen == [want]
    assert python_ops.threads() == 1


def test_a_chain_in_its_own_process_uses_the_threads_it_is_given(cohort, monkeypatch):
    """Chains in processes (nutpie with Ops evaluated from Python): each process enters its
    share of the cores before it builds the model, so the model's pieces are cut for them."""
    import neb_bayes.fit as fit_mod
    from neb_bayes.inference import python_ops

    seen: list[int] = []
    built: list[int] = []
    real_build = fit_mod.build_fit_model

    def build(*args, **kwargs):
        built.append(python_ops.threads())
        return real_build(*args, **kwargs)

    monkeypatch.setattr(fit_mod, "build_fit_model", build)
    _probe_sampling(monkeypatch, "nutpie", lambda: seen.append(python_ops.threads()))
    model, cases = cohort
    try:
        with pytest.raises(Probed):
            fit_mod._nutpie_chain(model, cases, ("analyte-levels",), None, "float32", 10, 10, 0,
                                  False, threads=3)
    finally:
        python_ops.set_threads(1)
    assert built == [3] and seen == [3]
