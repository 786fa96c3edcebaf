"""Population parameters as draws: what a prior set's uncertainty is made of.

A :class:`ParamDraws` holds, for ``D`` draws, every population parameter the exact engine
reads that a fit can change: per-state latent means and spreads, channel medians, base
prevalences and the symptom tables.  Draws come from

* the literature prior set itself (:func:`literature_draws`: each number perturbed within the
  relative spread its ``uncertainty`` table gives), or
* a PyMC fit (``neb-bayes priors fit``), saved as netCDF that ArviZ opens
  (:func:`save_draws` / :func:`load_draws`).

The engine evaluates the exact posterior under every draw at once (:mod:`neb_bayes.inference.draws`);
the spread of the results is the credible interval of each probability.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from neb_bayes.model.compiled import CompiledModel

#: parameter groups a fit can free (the rest stay at the prior set's values), and each
#: one's fields of :class:`ParamDraws`
GROUP_PARAMS = {"analyte-levels": ("lat_mean", "lat_sd", "log_median"),
                "prevalence": ("prior_base",), "symptoms": ("cause_logit", "leak_logit")}
PARAM_GROUPS = tuple(GROUP_PARAMS)


def latent_corr(lat_cov: np.ndarray) -> np.ndarray:
    """The latents' correlations ``(S, K, K)`` from an axis' covariances (0 where a spread
    is 0)."""
    sd = np.sqrt(np.einsum("skk->sk", lat_cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(lat_cov / np.einsum("si,sj->sij", sd, sd))


def latent_cov(lat_cov: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Covariances with ``lat_cov``'s correlations and the spreads ``sd`` ``(..., S, K)``:
    ``(..., S, K, K)``."""
    return latent_corr(lat_cov) * sd[..., :, None] * sd[..., None, :]


@dataclass(frozen=True)
class ParamDraws:
    """``D`` draws of the population parameters (leading dimension of every array)."""

    lat_mean: tuple[np.ndarray, ...]     # per axis (D, S, K)
    lat_sd: tuple[np.ndarray, ...]       # per axis (D, S, K)
    log_median: np.ndarray               # (D, C)
    prior_base: tuple[np.ndarray, ...]   # per axis (D, S): log base probability
    cause_logit: np.ndarray              # (D, E): logit P(symptom | cause) per table entry
    leak_logit: np.ndarray               # (D, Y): logit of each symptom's leak
    attrs: dict[str, Any] = field(default_factory=dict)
    #: the draws are this many chains' draws one after another (a fit's; saved with their
    #: chain dimension, so that ArviZ can recheck convergence)
    n_chains: int = 1

    def symptom_tables(self, model: CompiledModel, columns: np.ndarray | None = None):
        """(log1m_leak (D, P, Y), per-axis log1m_cause (D, S, Y)) for these draws
        (only the given symptom ``columns`` when given)."""
        return model.symptom_table.tables(self.cause_logit, self.leak_logit, columns)

    @property
    def n_draws(self) -> int:
        return int(self.log_median.shape[0])

    def lat_cov(self, model: CompiledModel, axis: int) -> np.ndarray:
        """(D, S, K, K) latent covariances: the prior set's correlations, these spreads."""
        return latent_cov(model.axes[axis].lat_cov, self.lat_sd[axis])

    def subset(self, idx) -> ParamDraws:
        def take(x):
            return x[idx]
        return replace(
            self,
            lat_mean=tuple(map(take, self.lat_mean)), lat_sd=tuple(map(take, self.lat_sd)),
            log_median=take(self.log_median), prior_base=tuple(map(take, self.prior_base)),
            cause_logit=take(self.cause_logit), leak_logit=take(self.leak_logit), n_chains=1,
        )

    def restrict(self, keep: dict[int, np.ndarray]) -> ParamDraws:
        """The draws for a restricted model view (see ``compiled.restrict``)."""
        if not keep:
            return self

        def cut(arrs):
            return tuple(a[:, keep[i]] if i in keep else a for i, a in enumerate(arrs))
        return replace(self, lat_mean=cut(self.lat_mean), lat_sd=cut(self.lat_sd),
                       prior_base=cut(self.prior_base))

    def mean(self) -> ParamDraws:
        """A single draw at the draws' mean (on the scales the engine uses)."""
        def avg(x):
            return x.mean(axis=0, keepdims=True)
        return replace(
            self,
            lat_mean=tuple(map(avg, self.lat_mean)), lat_sd=tuple(map(avg, self.lat_sd)),
            log_median=avg(self.log_median), prior_base=tuple(map(avg, self.prior_base)),
            cause_logit=avg(self.cause_logit), leak_logit=avg(self.leak_logit), n_chains=1,
        )


def base_log_prior(model: CompiledModel, axis: int) -> np.ndarray:
    """An axis' base log probabilities from the prior set's prevalence table."""
    ax = model.axes[axis]
    base = model.spec.raw["prevalence"].get(ax.name, {}).get("base", {})
    rest = [s for s in ax.states if s not in base]
    rest_mass = max(1.0 - sum(base.values()), 1e-12) / max(len(rest), 1)
    return np.log(np.array([float(base.get(s, rest_mass)) for s in ax.states]))


def point_params(model: CompiledModel) -> ParamDraws:
    """The prior set's own values as a single draw."""
    sd = [np.sqrt(np.einsum("skk->sk", a.lat_cov))[None] for a in model.axes]
    return ParamDraws(
        lat_mean=tuple(a.lat_mean[None] for a in model.axes),
        lat_sd=tuple(sd),
        log_median=np.array([c.log_median for c in model.channels])[None],
        prior_base=tuple(base_log_prior(model, i)[None] for i in range(len(model.axes))),
        cause_logit=model.symptom_table.cause_logit[None],
        leak_logit=model.symptom_table.leak_logit[None],
        attrs={"kind": "point"},
    )


def latent_mean_spread(model: CompiledModel, axis: int) -> np.ndarray:
    """The absolute spread (log units) of each of an axis' latent means across literature
    draws, ``(K,)``: the ``uncertainty`` table's ``latent_mean``, or the axis' own value for
    a latent where ``uncertainty.axes.<axis>.latent_mean`` gives one (a latent whose states'
    means the literature pins more tightly, e.g. by diagnostic thresholds)."""
    u = model.spec.raw.get("uncertainty", {})
    ax = model.axes[axis]
    own = u.get("axes", {}).get(ax.name, {}).get("latent_mean", {})
    default = u.get("latent_mean", 0.0)
    return np.array([float(own.get(k, default)) for k in ax.latents])


def literature_draws(model: CompiledModel, n: int = 1000, seed: int = 20261124) -> ParamDraws:
    """Draws that express the literature prior set's own uncertainty.

    Each group is perturbed by the spread in the prior set's ``uncertainty`` table: latent
    means (absolute, log units; per axis and latent where the table gives one,
    :func:`latent_mean_spread`), latent spreads and medians (relative), prevalence and
    symptom probabilities (on the odds scale).  Deterministic for a seed.
    """
    u = model.spec.raw.get("uncertainty", {})
    rng = np.random.default_rng(seed)
    pt = point_params(model)
    lat_mean, lat_sd, prior_base = [], [], []
    for ai, ax in enumerate(model.axes):
        m = pt.lat_mean[ai]
        spread = latent_mean_spread(model, ai)
        lat_mean.append(m + rng.normal(0.0, spread, size=(n,) + m.shape[1:]))
        s = pt.lat_sd[ai]
        lat_sd.append(s * np.exp(rng.normal(0.0, u.get("latent_sd", 0.0), size=(n,) + s.shape[1:])))
        b = pt.prior_base[ai][0]
        normal = ax.baseline
        jitter = rng.normal(0.0, u.get("prevalence", 0.0), size=(n, ax.n_states))
        jitter[:, normal] = 0.0
        prior_base.append(b[None] + jitter)
    med = pt.log_median + rng.normal(0.0, u.get("median", 0.0), size=(n, pt.log_median.shape[1]))
    sd = u.get("symptom", 0.0)
    cause = pt.cause_logit + rng.normal(0.0, sd, size=(n, pt.cause_logit.shape[1]))
    leak = pt.leak_logit + rng.normal(0.0, sd, size=(n, pt.leak_logit.shape[1]))
    return ParamDraws(
        lat_mean=tuple(lat_mean), lat_sd=tuple(lat_sd), log_median=med,
        prior_base=tuple(prior_base), cause_logit=cause, leak_logit=leak,
        attrs={"kind": "literature", "seed": seed, "n_draws": n,
               "uncertainty": json.dumps(u, sort_keys=True)},
    )


# --------------------------------------------------------------------------------------------
# netCDF (ArviZ-readable): group "posterior" with dims (chain, draw, ...)
def _names(model: CompiledModel):
    yield from enumerate(model.axes)


def _chains(draws: ParamDraws) -> int:
    """How many chains the draws are saved as (1 unless they divide evenly)."""
    c = max(int(draws.n_chains), 1)
    return c if draws.n_draws % c == 0 else 1


def _sample_stats(stats, chains: int, draws: int):
    """A fit's per-draw sample statistics (divergences, energy, log density, step size, ...):
    the variables over (chain, draw) only, or None."""
    import xarray as xr

    if stats is None:
        return None
    ds = stats.to_dataset() if hasattr(stats, "to_dataset") else stats
    data = {v: (("chain", "draw"), np.asarray(ds[v])) for v in ds.data_vars
            if ds[v].dims == ("chain", "draw") and ds[v].shape == (chains, draws)}
    if not data:
        return None
    return xr.Dataset(data, coords={"chain": np.arange(chains), "draw": np.arange(draws)},
                      attrs={k: v for k, v in ds.attrs.items() if isinstance(v, str | int | float)})


def to_datatree(draws: ParamDraws, model: CompiledModel, attrs: dict[str, Any],
                sample_stats=None):
    """The draws as an ArviZ/xarray DataTree: ``posterior`` group, dims (chain, draw, ...),
    a fit's chains kept apart (:attr:`ParamDraws.n_chains`), and its ``sample_stats`` when
    given."""
    import xarray as xr

    chains = _chains(draws)
    d = draws.n_draws // chains

    def split(x):  # (chains * draws, ...) -> (chain, draw, ...)
        return x.reshape((chains, d) + x.shape[1:])

    data: dict[str, Any] = {}
    coords: dict[str, Any] = {"chain": np.arange(chains), "draw": np.arange(d),
                              "channel": [c.name for c in model.channels],
                              "symptom": list(model.symptoms),
                              "symptom_entry": [f"{c}|{y}" for c, y in model.symptom_table.entries]}
    for ai, ax in _names(model):
        st, lat = f"{ax.name}_state", f"{ax.name}_latent"
        coords[st] = list(ax.states)
        if ax.latents:
            coords[lat] = list(ax.latents)
            data[f"lat_mean__{ax.name}"] = (("chain", "draw", st, lat), split(draws.lat_mean[ai]))
            data[f"lat_sd__{ax.name}"] = (("chain", "draw", st, lat), split(draws.lat_sd[ai]))
        data[f"prior_base__{ax.name}"] = (("chain", "draw", st), split(draws.prior_base[ai]))
    data["log_median"] = (("chain", "draw", "channel"), split(draws.log_median))
    data["cause_logit"] = (("chain", "draw", "symptom_entry"), split(draws.cause_logit))
    data["leak_logit"] = (("chain", "draw", "symptom"), split(draws.leak_logit))
    ds = xr.Dataset(data, coords=coords)
    clean = {k: (v if isinstance(v, str | int | float) else json.dumps(v, default=str))
             for k, v in {**draws.attrs, **attrs}.items()}
    ds.attrs.update(clean)
    groups = {"posterior": ds}
    if (stats := _sample_stats(sample_stats, chains, d)) is not None:
        groups["sample_stats"] = stats
    return xr.DataTree.from_dict(groups, name="neb_bayes_prior_set")


def save_draws(path: str | Path, draws: ParamDraws, model: CompiledModel,
               attrs: dict[str, Any], sample_stats=None) -> None:
    """Write draws + provenance + the prior set's tables as netCDF (atomic rename); a fit's
    chains stay apart, and its per-draw ``sample_stats`` (an xarray Dataset or DataTree
    node) are saved beside them, so ArviZ can recheck convergence."""
    from neb_bayes.files import atomic_write

    path = Path(path)
    tree = to_datatree(draws, model, {
        **attrs,
        "prior_set_tables": json.dumps(model.spec.raw, default=str),
        "base_fingerprint": model.spec.fingerprint,
    }, sample_stats)
    enc = {f"/{g}": {v: {"zlib": True, "complevel": 4} for v in tree[g].data_vars}
           for g in tree.children}
    atomic_write(path, lambda tmp: tree.to_netcdf(tmp, engine="h5netcdf", encoding=enc),
                 mode=0o644)


def _plain(v: Any) -> Any:
    """An HDF5 attribute as a plain Python value (JSON-serialisable)."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return v.item() if v.size == 1 else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The provenance attributes of a saved prior set (fast: h5py only)."""
    import h5py

    with h5py.File(path, "r") as f:
        return {k: _plain(v) for k, v in f["posterior"].attrs.items() if not k.startswith("_")}


def load_draws(path: str | Path, model: CompiledModel) -> ParamDraws:
    """Read draws saved by :func:`save_draws` (h5py, no xarray: keeps reports fast), the
    chains one after another (files of one merged chain read the same)."""
    import h5py

    def stacked(x):  # (chain, draw, ...) -> (chain * draw, ...)
        x = np.asarray(x, dtype=float)
        return x.reshape((-1,) + x.shape[2:])

    with h5py.File(path, "r") as f:
        g = f["posterior"]
        lat_mean, lat_sd, base = [], [], []
        for _, ax in _names(model):
            if ax.latents:
                lat_mean.append(stacked(g[f"lat_mean__{ax.name}"]))
                lat_sd.append(stacked(g[f"lat_sd__{ax.name}"]))
            else:
                d = g["log_median"].shape[0] * g["log_median"].shape[1]
                lat_mean.append(np.zeros((d, ax.n_states, 0)))
                lat_sd.append(np.zeros((d, ax.n_states, 0)))
            base.append(stacked(g[f"prior_base__{ax.name}"]))
        attrs = {k: _plain(v) for k, v in g.attrs.items()
                 if k != "prior_set_tables" and not k.startswith("_")}
        return ParamDraws(
            lat_mean=tuple(lat_mean), lat_sd=tuple(lat_sd), log_median=stacked(g["log_median"]),
            prior_base=tuple(base), cause_logit=stacked(g["cause_logit"]),
            leak_logit=stacked(g["leak_logit"]), attrs=attrs,
            n_chains=int(g["log_median"].shape[0]),
        )


def tables_of(path: str | Path) -> dict[str, Any]:
    """The prior set tables embedded in a saved prior set."""
    import h5py

    with h5py.File(path, "r") as f:
        raw = f["posterior"].attrs["prior_set_tables"]
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def with_params(model: CompiledModel, draws: ParamDraws, i: int = 0) -> CompiledModel:
    """A compiled model whose parameters are draw ``i`` (e.g. the draws' mean)."""
    axes = []
    for ai, ax in enumerate(model.axes):
        axes.append(replace(ax, lat_mean=draws.lat_mean[ai][i],
                            lat_cov=latent_cov(ax.lat_cov, draws.lat_sd[ai][i])))
    channels = tuple(replace(c, log_median=float(draws.log_median[i, ci]))
                     for ci, c in enumerate(model.channels))
    base = {ax.name: draws.prior_base[ai][i] for ai, ax in enumerate(model.axes)}
    table = replace(model.symptom_table, cause_logit=draws.cause_logit[i],
                    leak_logit=draws.leak_logit[i])
    log1m_leak, log1m_cause = table.tables()
    return replace(model, axes=tuple(axes), channels=channels, symptom_table=table,
                   log1m_cause=log1m_cause, log1m_leak=log1m_leak, prior_base_override=base)



def parameter_digest(draws: ParamDraws) -> str:
    """A short digest of every parameter value of every draw (their order, shapes and
    float64 bytes): it changes whenever any value changes (~2 ms for 1,000 draws of the
    literature prior set).  The tables' fingerprint (``ModelSpec.fingerprint``) does not: a
    fitted prior set keeps the tables it started from."""
    import hashlib

    h = hashlib.sha256()
    for group, arrays in (("lat_mean", draws.lat_mean), ("lat_sd", draws.lat_sd),
                          ("log_median", (draws.log_median,)),
                          ("prior_base", draws.prior_base),
                          ("cause_logit", (draws.cause_logit,)),
                          ("leak_logit", (draws.leak_logit,))):
        for x in arrays:
            x = np.ascontiguousarray(x, dtype=np.float64)
            h.update(f"{group}{x.shape}".encode())
            h.update(x.data)
    return h.hexdigest()[:16]


#: what every draw of a parameter group must satisfy (its domain), and the words for a
#: draw outside it; symptom probabilities of 0 or 1 are infinite logits, NaN is never valid
_DOMAINS: dict[str, tuple[Any, str]] = {
    "lat_mean": (np.isfinite, "non-finite draws"),
    "lat_sd": (lambda x: np.isfinite(x) & (x > 0), "non-positive or non-finite draws"),
    "prior_base": (np.isfinite, "non-finite draws"),
    "log_median": (np.isfinite, "non-finite draws"),
    "cause_logit": (lambda x: ~np.isnan(x), "NaN draws"),
    "leak_logit": (np.isfinite, "non-finite draws"),
}


def _groups(draws: ParamDraws, model: CompiledModel):
    """(group, where, array) of every parameter array of ``draws``."""
    for ai, ax in enumerate(model.axes):
        yield "lat_mean", f"axis {ax.name}", draws.lat_mean[ai]
        yield "lat_sd", f"axis {ax.name}", draws.lat_sd[ai]
        yield "prior_base", f"axis {ax.name}", draws.prior_base[ai]
    yield "log_median", "channels", draws.log_median
    yield "cause_logit", "symptom table", draws.cause_logit
    yield "leak_logit", "symptom leaks", draws.leak_logit


def draw_problems(draws: ParamDraws, model: CompiledModel) -> list[str]:
    """Every parameter with a draw outside its domain (NaN or infinite values, a spread that
    is not positive), named; empty when all draws are valid.

    One vectorised test per parameter array (well under a millisecond for 1,000 draws of
    the literature prior set); names are looked up only when a test fails.
    """
    bad = [(g, where) for g, where, x in _groups(draws, model)
           if x.size and not _DOMAINS[g][0](x).all()]
    if not bad:
        return []
    problems = []
    groups = {g for g, _ in bad}
    for name, x in flat_parameters(draws, model).items():
        group = name.split("[", 1)[0]
        if group in groups and (n := int(np.sum(~_DOMAINS[group][0](x)))):
            problems.append(f"{name}: {_DOMAINS[group][1]} ({n} of {x.size})")
    # a reference state's base prevalence has no name of its own in flat_parameters
    problems += [f"{g} of {where}: {_DOMAINS[g][1]}" for g, where in bad
                 if not any(p.startswith(f"{g}[{where.removeprefix('axis ')}.")
                            or (p.startswith(f"{g}[") and not where.startswith("axis "))
                            for p in problems)]
    return problems


def flat_parameters(draws: ParamDraws, model: CompiledModel) -> dict[str, np.ndarray]:
    """Every parameter as a named ``(D,)`` vector (for summaries, comparisons, recovery)."""
    out: dict[str, np.ndarray] = {}
    for ai, ax in enumerate(model.axes):
        for si, st in enumerate(ax.states):
            for ki, lat in enumerate(ax.latents):
                out[f"lat_mean[{ax.name}.{st}.{lat}]"] = draws.lat_mean[ai][:, si, ki]
                out[f"lat_sd[{ax.name}.{st}.{lat}]"] = draws.lat_sd[ai][:, si, ki]
            if not ax.baseline[si]:
                out[f"prior_base[{ax.name}.{st}]"] = draws.prior_base[ai][:, si]
    for ci, ch in enumerate(model.channels):
        out[f"log_median[{ch.name}]"] = draws.log_median[:, ci]
    for e, (cause, sym) in enumerate(model.symptom_table.entries):
        out[f"cause_logit[{cause}|{sym}]"] = draws.cause_logit[:, e]
    for y, sym in enumerate(model.symptoms):
        out[f"leak_logit[{sym}]"] = draws.leak_logit[:, y]
    return out
