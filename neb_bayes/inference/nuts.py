"""Per-case sampling of the latent axis quantities, conditional on each discrete state.

For model extensions that leave the closed form.  No chain ever has to jump between
diagnostic states: for every state combination of a measured axis that carries posterior
mass, the latents are sampled with NUTS *given* that combination, and the combinations are
weighted by their exact evidence (shared/research/inference-notes.md).  One PyMC model per
axis is compiled once (by nutpie; or PyMC's own NUTS) and its state-specific inputs swapped
per combination (nutpie's ``with_data``, ``pm.set_data``).

The measurement model is the exact engine's: given the latents ``z``, an axis' results are
Gaussian (one censored result as the probability mass beyond its limit; two or more through
GHK's uniform variables sampled with the latents, :func:`_results_logp`), and at most one of
them is a gross error (:meth:`CompiledModel.gross_log_density`), so the block's likelihood is
``(1 - n eps) p(y | z) + eps sum_j q(y_j) p(y_-j | z)`` (a potential, by log-sum-exp).
The result is an ArviZ/xarray DataTree with the draws and diagnostics of every combination.
"""

from __future__ import annotations

import os

import numpy as np

from neb_bayes.evidence import Evidence
from neb_bayes.inference.exact import ExactPosterior, block_moments
from neb_bayes.model.compiled import CompiledModel


def _combos(post: ExactPosterior, deps: tuple[int, ...], nd: int, mass: float, max_states: int):
    w = post.joint.sum(axis=tuple(j for j in range(nd) if j not in deps))
    order = np.argsort(w.ravel())[::-1]
    keep, total = [], 0.0
    for flat in order[:max_states]:
        keep.append(np.unravel_index(flat, w.shape))
        total += w.ravel()[flat]
        if total >= mass:
            break
    return keep, np.array([w[k] for k in keep])


def infer_nuts(model: CompiledModel, ev: Evidence, post: ExactPosterior, *, draws: int = 500,
               tune: int = 500, chains: int = 2, mass: float = 0.999, max_states: int = 6,
               seed: int = 0, sampler: str = "nutpie"):
    """Sample each measured axis' latents given each likely state combination.

    ``sampler``: ``"nutpie"`` (each axis' model compiled once, its data swapped per state
    combination) or ``"pymc"`` (PyMC's own NUTS).

    Returns an :class:`xarray.DataTree`: a node per axis and state combination with groups
    ``posterior`` (latent draws) and ``sample_stats``, and attributes with the exact weight
    of the combination, its state names, R-hat, bulk ESS and divergences.
    """
    import arviz as az
    import pymc as pm
    import pytensor.tensor as pt
    import xarray as xr

    if sampler not in ("nutpie", "pymc"):
        raise ValueError(f"sampler must be 'nutpie' or 'pymc', got {sampler!r}")
    if sampler == "nutpie":
        import nutpie

    nodes: dict[str, xr.Dataset] = {}
    nd = len(model.axes)
    for block in ev.blocks:
        ax = model.axes[block.axis]
        lat_mean, lat_cov = ev.latent_params(model, block.axis)
        mom = block_moments(model, block, latent=(lat_mean, lat_cov))
        n, K = block.n, len(ax.latents)
        L = mom.loadings
        log_q = model.gross_log_density(block.channel, block.y, block.censor, block.sex)
        # noise covariance given the latents: total covariance minus the latent part
        combos, weights = _combos(post, block.deps, nd, mass, max_states)
        with pm.Model() as m:
            mu_z = pm.Data("mu_z", np.zeros(K))
            chol_z = pm.Data("chol_z", np.eye(K))
            mean_y = pm.Data("mean_y", np.zeros(n))
            noise = pm.Data("noise", np.eye(n))
            eps = pm.Normal("eps", 0.0, 1.0, shape=K)
            z = pm.Deterministic("z", mu_z + pt.dot(chol_z, eps))
            loc = mean_y + pt.dot(pt.as_tensor(L), z)
            loglik = _block_loglik(block, loc, noise, model.gross_error_rate, log_q)
            pm.Potential("results", loglik)
        compiled = None
        for k, (combo, wgt) in enumerate(zip(combos, weights, strict=True)):
            own = combo[block.deps.index(block.axis)]
            mean_full = mom.mean[combo]
            cov_full = mom.cov[tuple(c if d == block.axis else 0
                                     for d, c in zip(block.deps, combo, strict=True))]
            latent_part = L @ lat_cov[own] @ L.T
            data = {"mu_z": lat_mean[own], "chol_z": np.linalg.cholesky(lat_cov[own]),
                    "mean_y": mean_full - L @ lat_mean[own], "noise": cov_full - latent_part}
            if sampler == "nutpie":
                # compiled once per axis, its data swapped per state combination
                if compiled is None:
                    compiled = nutpie.compile_pymc_model(m, backend="numba")
                idata = nutpie.sample(compiled.with_data(**data), draws=draws, tune=tune,
                                      chains=chains, cores=min(chains, os.cpu_count() or 1),
                                      seed=seed + k, progress_bar=False)
            else:
                with m:
                    pm.set_data(data)
                    idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=1,
                                      random_seed=seed + k, progressbar=False,
                                      compute_convergence_checks=False, var_names=["z"],
                                      nuts_sampler="pymc")
            states = {model.axes[d].name: model.axes[d].states[c]
                      for d, c in zip(block.deps, combo, strict=True)}
            zs = idata.posterior["z"].rename({"z_dim_0": "latent"}).assign_coords(
                latent=list(ax.latents))
            ds = xr.Dataset({"z": zs})
            ds.attrs.update({
                "axis": ax.name, "states": str(states), "exact_weight": float(wgt),
                "r_hat_max": float(np.max(np.asarray(az.rhat(idata.posterior["z"])))),
                "ess_bulk_min": float(np.min(np.asarray(az.ess(idata.posterior["z"],
                                                              method="bulk")))),
                "divergences": int(np.asarray(idata.sample_stats["diverging"]).sum()),
            })
            nodes[f"{ax.name}/combo_{k}"] = ds
    tree = xr.DataTree.from_dict(nodes, name="neb_bayes_nuts")
    tree.attrs["method"] = ("NUTS on latents conditional on each state combination; "
                            "combinations weighted by exact evidence")
    tree.attrs["sampler"] = sampler
    return tree


def _block_loglik(block, loc, noise, rate: float, log_q: np.ndarray):
    """The block's log-likelihood given the latents as graph, with at most one gross error:
    ``log((1 - n eps) p(y | z) + eps sum_j q(y_j) p(y_-j | z))``, each term by
    :func:`_results_logp`.  With two or more censored results, one uniform variable per
    censored result (``censored_u``) carries their mass (see there)."""
    import pymc as pm
    import pytensor.tensor as pt

    n = block.n
    every = np.arange(n)
    u = None
    cen = np.flatnonzero(block.censor)
    if cen.size > 1:
        draws = pm.Uniform("censored_u", 0.0, 1.0, shape=cen.size)
        u = {int(c): draws[i] for i, c in enumerate(cen)}   # by the result's index
    loglik = _results_logp(block.y, block.censor, loc, noise, every, u)
    if rate <= 0:
        return loglik
    return pt.logsumexp(pt.stack(
        [loglik + np.log1p(-n * rate)]
        + [_results_logp(block.y, block.censor, loc, noise, np.delete(every, j), u)
           + (np.log(rate) + log_q[j]) for j in range(n)]))


def _results_logp(y: np.ndarray, censor: np.ndarray, loc, noise, keep: np.ndarray,
                  u: dict | None = None):
    """log p(y_keep | z) as graph: the observed results' Gaussian around ``loc`` (their mean
    given the latents) with covariance ``noise``, and the censored results' probability mass
    beyond their limits given the observed ones.

    One censored result: its normal CDF.  Several: the GHK representation of their mass
    (Geweke, Hajivassiliou, Keane): with ``R`` the Cholesky factor of their covariance given
    the observed results, ``w = mu + R e``, each ``e_i`` in turn is the normal truncated to
    where its result lies beyond its limit given ``e_1..e_(i-1)``, drawn from ``u_i`` by the
    inverse CDF, and the mass is the product of each step's normal CDF, integrated over the
    ``u`` uniform: sampled with the latents, the ``u`` make the latents' marginal exact,
    whatever the number of censored results, on a geometry NUTS handles (each ``u`` uniform
    given the rest, no ridge between an imputed value and the latents)."""
    import pymc as pm
    import pytensor.tensor as pt
    from pymc.distributions.dist_math import normal_lcdf

    obs, cen = keep[censor[keep] == 0], keep[censor[keep] != 0]
    out = pt.zeros(())
    if obs.size:
        out = pm.logp(pm.MvNormal.dist(mu=loc[obs], cov=noise[obs][:, obs]), y[obs])
    if not cen.size:
        return out
    mu_c, cov_c = loc[cen], noise[cen][:, cen]
    if obs.size:
        gain = pt.dot(noise[cen][:, obs], pt.linalg.inv(noise[obs][:, obs]))
        mu_c = mu_c + pt.dot(gain, y[obs] - loc[obs])
        cov_c = cov_c - pt.dot(gain, noise[obs][:, cen])
    if cen.size == 1:
        t = -float(censor[cen[0]]) * (y[cen[0]] - mu_c[0]) / pt.sqrt(cov_c[0, 0])
        return out + normal_lcdf(0.0, 1.0, t)
    chol = pt.linalg.cholesky(cov_c)
    e = []
    for i, c in enumerate(cen):
        sign = -float(censor[c])    # +1 below the limit, -1 above
        shift = mu_c[i] + sum((chol[i, k] * e[k] for k in range(i)), pt.zeros(()))
        bound = sign * (y[c] - shift) / chol[i, i]
        log_mass = normal_lcdf(0.0, 1.0, bound)
        out = out + log_mass
        if i + 1 < cen.size:
            # e_i = sign * Phi^-1(u_i Phi(bound)), Phi^-1(p) = -sqrt(2) erfcinv(2 p)
            p = pt.exp(pt.log(u[int(c)]) + log_mass)
            e.append(-sign * np.sqrt(2.0) * pt.erfcinv(2.0 * p))
    return out


def nuts_latent_summary(tree) -> list[dict]:
    """Mixture mean and standard deviation of each sampled latent over the sampled state
    combinations (weights: their exact evidence, renormalised over the sampled ones), with
    the mean's Monte Carlo standard error (each combination's variance over its smallest
    bulk ESS) and the exact weight the sampled combinations cover (``mass_sampled``)."""
    out: dict[tuple[str, str], list] = {}
    for node in tree.subtree:
        ds = node.to_dataset()
        if "z" not in ds:
            continue
        w, ess = ds.attrs["exact_weight"], max(float(ds.attrs["ess_bulk_min"]), 1.0)
        z = ds["z"].values.reshape(-1, ds.sizes["latent"])
        for k, lat in enumerate(ds["latent"].values):
            out.setdefault((ds.attrs["axis"], str(lat)), []).append(
                (w, z[:, k].mean(), z[:, k].var(), ess))
    rows = []
    for (axis, lat), items in out.items():
        raw = np.array([i[0] for i in items])
        w = raw / raw.sum()
        m = np.array([i[1] for i in items])
        v = np.array([i[2] for i in items])
        ess = np.array([i[3] for i in items])
        mean = float(w @ m)
        sd = float(np.sqrt(max(w @ (v + m**2) - mean**2, 0.0)))
        mcse = float(np.sqrt(np.sum(w**2 * v / ess)))
        rows.append({"axis": axis, "latent": lat, "log_mean": mean, "log_sd": sd,
                     "mcse": mcse, "mass_sampled": float(raw.sum())})
    return rows
