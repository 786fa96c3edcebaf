"""Per-case NUTS conditional on each state agrees with the exact path within Monte Carlo error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import multivariate_normal

from neb_bayes.case.model import Case, Measurement, Patient
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.exact import block_moments, infer_exact
from neb_bayes.inference.latents import latent_summaries
from neb_bayes.inference.nuts import infer_nuts, nuts_latent_summary
from neb_bayes.model.compiled import load_model, view_for_sex


def _exact_latent_mean(model, block, mom, lat_mean, lat_cov, s):
    """E[z | y, state s] with every result observed: a mixture over which result, if any, is
    the block's gross error, each component the Gaussian conditional given the others."""
    n, eps = block.n, model.gross_error_rate
    log_q = model.gross_log_density(block.channel, block.y, block.censor)
    means, log_w = [], []
    for drop in [None, *range(n)]:
        k = np.delete(np.arange(n), [] if drop is None else [drop])
        C = mom.cov[s][np.ix_(k, k)]
        r = block.y[k] - mom.mean[s][k]
        means.append(lat_mean[s] + lat_cov[s] @ mom.loadings[k].T @ np.linalg.solve(C, r))
        log_w.append(multivariate_normal.logpdf(block.y[k], mom.mean[s][k], C)
                     + (np.log1p(-n * eps) if drop is None else np.log(eps) + log_q[drop]))
    return softmax(log_w) @ np.array(means)


CASES = {
    "borderline-tsh-ft4": (Measurement(0, "tsh", "serum", 4.8), Measurement(1, "ft4", "serum", 12.0)),
    "censored-tsh": (Measurement(0, "tsh", "serum", 0.05, censor="left"),
                     Measurement(1, "ft4", "serum", 19.0)),
    # two censored results on the axis: their mass by the GHK variables (before: refused)
    "tsh-suppressed-twice": (Measurement(0, "tsh", "serum", 0.01, censor="left", day=0),
                             Measurement(1, "ft4", "serum", 24.0, day=0),
                             Measurement(2, "tsh", "serum", 0.01, censor="left", day=42),
                             Measurement(3, "ft4", "serum", 23.0, day=42)),
}
#: draws and tuning steps per chain, and the most state combinations sampled
SETTINGS = {"tsh-suppressed-twice": (300, 300, 2)}


@pytest.mark.parametrize("name,sampler", [(name, "nutpie") for name in CASES]
                         + [("censored-tsh", "pymc")])
def test_nuts_latents_match_exact(name, sampler):
    """nutpie (each axis' model compiled once, its data swapped per state combination; the
    default) and PyMC's own NUTS."""
    _check_nuts_against_exact(name, sampler)


def _check_nuts_against_exact(name, sampler):
    model = view_for_sex(load_model(), "F")
    case = Case(id=name, patient=Patient(sex="F", age=45), measurements=CASES[name])
    ev = build_evidence(model, case)
    post = infer_exact(model, ev, explain=False)
    draws, tune, max_states = SETTINGS.get(name, (400, 400, 6))
    tree = infer_nuts(model, ev, post, draws=draws, tune=tune, chains=2, max_states=max_states,
                      sampler=sampler)
    block = ev.blocks[0]
    mom = block_moments(model, block, latent=ev.latent_params(model, block.axis))
    lat_mean, lat_cov = ev.latent_params(model, block.axis)
    n_combo = 0
    for node in tree.subtree:
        ds = node.to_dataset()
        if "z" not in ds:
            continue
        n_combo += 1
        assert ds.attrs["divergences"] == 0 and ds.attrs["r_hat_max"] < 1.05
        z = ds["z"].values.reshape(-1, ds.sizes["latent"])
        states = eval(ds.attrs["states"])  # noqa: S307 - our own repr of a dict of names
        s = model.axes[block.axis].states.index(states["thyroid"])
        if (block.censor == 0).all():
            exact = _exact_latent_mean(model, block, mom, lat_mean, lat_cov, s)
            se = z.std(0) / np.sqrt(ds.attrs["ess_bulk_min"])
            assert np.all(np.abs(z.mean(0) - exact) < 5 * se + 1e-3), (z.mean(0), exact)
    assert n_combo >= 2, "the case must be ambiguous: several states sampled"
    # weighted over states, the latent means agree with the exact mixture summaries
    exact_rows = {r["latent"]: r["log_mean"] for r in latent_summaries(model, ev, post, 0.9)
                  if r["axis"] == "thyroid"}
    for row in nuts_latent_summary(tree):
        # within Monte Carlo error, plus what the state combinations left unsampled can move
        # a mean (their exact weight times the latent's span over the states' means)
        k = model.axes[block.axis].latents.index(row["latent"])
        span = float(np.ptp(lat_mean[:, k])) + 4 * float(np.sqrt(lat_cov[:, k, k].max()))
        bound = 5 * row["mcse"] + (1 - row["mass_sampled"]) * span + 1e-3
        assert abs(row["log_mean"] - exact_rows[row["latent"]]) < max(bound, 0.05), row


@pytest.mark.parametrize("signs", [(-1, -1), (-1, 1), (1, -1, -1), (-1, -1, -1)])
def test_ghk_variables_integrate_to_the_censored_results_mass(signs):
    """With several censored results the block's graph carries their mass through uniform
    variables (GHK): integrated over them, it is the exact mass of the censored results'
    region given the observed ones (the exact engine's ``censored_log_mass``), here with
    strongly correlated results and an observed one."""
    import pytensor
    import pytensor.tensor as pt

    from neb_bayes.inference.exact import censored_log_mass
    from neb_bayes.inference.nuts import _results_logp

    m = len(signs)
    rng = np.random.default_rng(m + signs[1])
    a = rng.normal(size=(m + 1, m + 1))
    noise = a @ a.T + 0.1 * np.eye(m + 1) + 2.0     # correlations ~0.6-0.9
    loc = rng.normal(size=m + 1)
    censor = np.array([*signs, 0])
    y = loc + rng.normal(size=m + 1) * np.sqrt(np.diag(noise))
    us = [pt.dscalar(f"u{i}") for i in range(m)]
    graph = _results_logp(y, censor, pt.as_tensor(loc), pt.as_tensor(noise), np.arange(m + 1),
                          dict(enumerate(us)))
    f = pytensor.function(us[: m - 1], graph, on_unused_input="ignore")
    # Gauss-Legendre over the unit cube of the first m - 1 variables
    x, w = np.polynomial.legendre.leggauss(400 if m == 2 else 60)
    x, w = (x + 1) / 2, w / 2
    total = 0.0
    for idx in np.ndindex(*(x.size,) * (m - 1)):
        total += np.prod(w[list(idx)]) * np.exp(f(*x[list(idx)]))
    # the exact value: the observed result's density times the censored ones' mass given it
    obs, cen = [m], list(range(m))
    gain = noise[np.ix_(cen, obs)] / noise[m, m]
    mu_c = loc[cen] + gain[:, 0] * (y[m] - loc[m])
    cov_c = noise[np.ix_(cen, cen)] - gain @ noise[np.ix_(obs, cen)]
    log_obs = -0.5 * (np.log(2 * np.pi * noise[m, m]) + (y[m] - loc[m]) ** 2 / noise[m, m])
    want = log_obs + float(censored_log_mass(mu_c[None], cov_c[None], censor[:m].astype(float),
                                             y[:m])[0])
    assert abs(np.log(total) - want) < 2e-5
