"""Shared helpers of the fit tests."""

from __future__ import annotations

import numpy as np

from neb_bayes.case.model import Case, Measurement, Patient, Symptoms
from neb_bayes.inference.pymc_model import prepare_cohort


def exact_log_evidence(model, cases) -> np.ndarray:
    """Each case's log evidence by the exact engine (its sex's view of ``model``)."""
    from neb_bayes.evidence import build_evidence
    from neb_bayes.inference.exact import infer_exact
    from neb_bayes.model.compiled import view_for_sex

    out = []
    for c in cases:
        view = view_for_sex(model, c.patient.sex)
        out.append(infer_exact(view, build_evidence(view, c), explain=False).log_evidence)
    return np.array(out)


#: the parameter groups a fit can free, alone and together (the tests' parametrisation)
FREE = [(), ("prevalence",), ("analyte-levels",), ("symptoms",),
        ("analyte-levels", "prevalence", "symptoms")]


def beside_simulated(model, cases: list, seed: int) -> list:
    """``cases`` beside 16 simulated people that the information form covers (of the same
    groups: sex views, contexts)."""
    from neb_bayes.simulate import simulate

    sims = covered(model, [s.case for s in simulate(model, 24, seed=seed, p_repeat=0.2)])
    return list(cases) + sims[:16]


def assert_log_density_equals_exact(model, cases: list, free: tuple) -> None:
    """The fit's log density of each case equals the exact engine's log evidence (1e-10),
    under a parameter draw that is not the prior set's values, with ``free`` groups free
    (the numpy path for fixed groups, the graph path for free ones)."""
    from neb_bayes.inference.pymc_model import cohort_loglik_value
    from neb_bayes.model.params import literature_draws, with_params

    draws = literature_draws(model, 10)
    pymc_ll = cohort_loglik_value(model, cases, draws.subset(slice(7, 8)), free=free)
    np.testing.assert_allclose(pymc_ll, exact_log_evidence(with_params(model, draws, 7), cases),
                               rtol=1e-10, atol=1e-10)


def covered(model, cases) -> list:
    """The cases the fit's information form covers on every axis (none of their factors
    from the exact engine, :attr:`~neb_bayes.inference.pymc_model.GroupData.exact`)."""
    return [c for c in cases if not any(g.exact for g in prepare_cohort(model, [c]))]


def two_censored_cases() -> list:
    """Two censored results on one axis (in the information form since the kernel has the
    bivariate normal CDF), each case with results on other axes too: a suppressed TSH twice;
    oestradiol and progesterone both below their limits after the menopause; ACTH and the
    cortisol after overnight dexamethasone both below their limits (a normal suppression
    test); on levothyroxine, TSH below its limit twice (a shift of the thyroid latents)."""
    M = Measurement
    return [
        Case(id="suppressed-tsh-twice", patient=Patient(sex="F", age=55), measurements=(
            M(0, "tsh", "serum", 0.01, censor="left"),
            M(1, "tsh", "serum", 0.01, censor="left", day=42),
            M(2, "ft4", "serum", 31.0), M(3, "ft3", "serum", 9.5, day=42),
            M(4, "prolactin", "serum", 300.0)),
            symptoms=Symptoms(present=frozenset(["palpitations"]),
                              absent=frozenset(["fatigue"]))),
        Case(id="postmenopausal-below-limits", patient=Patient(sex="F", age=63), measurements=(
            M(0, "estradiol", "serum", 18.4, censor="left"),
            M(1, "progesterone", "serum", 0.3, censor="left"),
            M(2, "fsh", "serum", 78.0), M(3, "lh", "serum", 41.0),
            M(4, "tsh", "serum", 0.02, censor="left"), M(5, "ft4", "serum", 14.0))),
        Case(id="dexamethasone-suppressed-acth-below-limit", patient=Patient(sex="M", age=47),
             measurements=(
            M(0, "cortisol_dst", "serum", 28.0, censor="left"),
            M(1, "acth", "plasma", 1.1, censor="left", hour=9), M(2, "sodium", "serum", 139.0),
            M(3, "glucose_fasting", "plasma", 6.3), M(4, "hba1c", "whole_blood", 44.0))),
        _levothyroxine_tsh_below_limit(2),
    ]


def uncovered_cases() -> list:
    """Cases the information form does not cover on some axis (three censored results on it:
    their factor there is the exact engine's), each with covered results on others: a
    suppressed TSH three times; oestradiol below its limit twice and progesterone once after
    the menopause; ACTH below its limit twice and the dexamethasone-suppressed cortisol."""
    M = Measurement
    return [
        Case(id="suppressed-tsh-three-times", patient=Patient(sex="F", age=55), measurements=(
            M(0, "tsh", "serum", 0.01, censor="left"),
            M(1, "tsh", "serum", 0.01, censor="left", day=42),
            M(2, "tsh", "serum", 0.01, censor="left", day=90),
            M(3, "ft4", "serum", 31.0), M(4, "ft3", "serum", 9.5, day=42),
            M(5, "prolactin", "serum", 300.0)),
            symptoms=Symptoms(present=frozenset(["palpitations"]),
                              absent=frozenset(["fatigue"]))),
        Case(id="postmenopausal-three-below-limits", patient=Patient(sex="F", age=63),
             measurements=(
            M(0, "estradiol", "serum", 18.4, censor="left"),
            M(1, "progesterone", "serum", 0.3, censor="left"),
            M(2, "estradiol", "serum", 18.4, censor="left", day=30),
            M(3, "fsh", "serum", 78.0), M(4, "lh", "serum", 41.0),
            M(5, "tsh", "serum", 0.02, censor="left"), M(6, "ft4", "serum", 14.0))),
        Case(id="dexamethasone-suppressed-acth-below-limit-twice", patient=Patient(sex="M", age=47),
             measurements=(
            M(0, "cortisol_dst", "serum", 28.0, censor="left"),
            M(1, "acth", "plasma", 1.1, censor="left", hour=9),
            M(2, "acth", "plasma", 1.1, censor="left", hour=9, day=7),
            M(3, "sodium", "serum", 139.0),
            M(4, "glucose_fasting", "plasma", 6.3), M(5, "hba1c", "whole_blood", 44.0))),
    ]


def _levothyroxine_tsh_below_limit(times: int):
    """On levothyroxine (treated disease: a shift of the thyroid axis' latents), TSH below
    its limit ``times`` times."""
    import yaml

    from neb_bayes.case import read_case

    with open("cases/examples/context/levothyroxine_suppressed_tsh_with.yaml") as f:
        data = yaml.safe_load(f)
    data["id"] = f"levothyroxine-tsh-below-limit-{times}-times"
    tsh = data["measurements"][0]
    tsh["value"] = "<0.01"
    data["measurements"] += [dict(tsh, day=60 * i) for i in range(1, times)]
    return read_case(data)


def treated_uncovered_case():
    """On levothyroxine, TSH below its limit three times (beyond the information form on
    that axis)."""
    return _levothyroxine_tsh_below_limit(3)


def kernel_against_exact(g, ad, draws, rng, draw: int = 7):
    """One group's axis (``ad``) read by the fit's kernel (:class:`LabBlock`) and by the exact
    engine (:class:`ExactLabBlock`) under parameter draw ``draw``: their factors held equal
    (1e-9), then both vector-Jacobian products of one random cotangent (the exact block's
    summed over the axes its people's blocks do not depend on).  Returns ``(kernel, exact,
    params, cotangent for exact, exact gradient, kernel gradient)``, ``params`` the exact
    block's ``(lat_mean, lat_sd, log_median)`` (every channel's medians)."""
    from neb_bayes.inference.exact_lab_block import ExactLabBlock
    from neb_bayes.inference.lab_block import LabBlock
    from neb_bayes.inference.pymc_model import _aligned
    from neb_bayes.model.params import latent_corr

    a = ad.axis
    keep = g.keep.get(a, slice(None))
    params = (draws.lat_mean[a][draw][keep], draws.lat_sd[a][draw][keep], draws.log_median[draw])
    mean, sd, med = params
    kernel = LabBlock(ad, latent_corr(g.model.axes[a].lat_cov))
    exact = ExactLabBlock(g.model, a, g.evidences, ad.rows)
    n = len(g.case_ids)
    want = kernel.people_values((mean, sd, med[ad.channels]), n)
    got = exact.people_values(params, n)
    np.testing.assert_allclose(np.broadcast_to(_aligned(exact.scope, got, ad.deps), want.shape),
                               want, rtol=0, atol=1e-9)
    r = ad.rows.size
    ct = rng.normal(size=(r,) + kernel.grid_shape)
    missing = tuple(1 + i for i, d in enumerate(ad.deps) if d not in exact.scope)
    inner = [d for d in ad.deps if d in exact.scope]
    ct_exact = ct.sum(axis=missing).transpose(
        [0] + [1 + inner.index(d) for d in exact.scope]).reshape(r, -1)
    g_exact = exact.gradient(params, ct_exact)
    g_kernel = kernel.gradient((mean, sd, med[ad.channels]), ct.reshape(r, -1))
    return kernel, exact, params, ct_exact, g_exact, g_kernel
