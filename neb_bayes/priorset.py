"""Prior sets: the model tables plus (optionally) draws of the population parameters.

A prior set is either a YAML file of tables (``priors/default.yaml``; its draws, when shipped,
sit beside it as ``priors/default.nc``) or a netCDF file written by ``neb-bayes priors fit``
that embeds the tables, the posterior draws and their provenance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from neb_bayes.model.compiled import CompiledModel, compile_spec, load_model
from neb_bayes.model.params import ParamDraws, load_draws, read_attrs, tables_of, with_params
from neb_bayes.model.spec import DEFAULT_PRIOR_FILE, spec_from_tables

log = logging.getLogger("neb_bayes")


@dataclass(frozen=True, eq=False)
class PriorSet:
    """A compiled model (at the prior set's point values) and its parameter draws."""

    model: CompiledModel
    draws: ParamDraws | None
    source: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        spec = self.model.spec
        out = {
            "prior_set": spec.name,
            "prior_set_version": spec.version,
            "prior_set_fingerprint": spec.fingerprint,
            "prior_set_file": Path(self.source).name,
            "parameter_draws": 0 if self.draws is None else self.draws.n_draws,
        }
        for key in ("kind", "created", "cohort_hash", "cohort_n", "sampler", "fit_groups",
                    "neb_bayes_version", "model_fingerprint"):
            if key in self.attrs:
                out[f"draws_{key}"] = self.attrs[key]
        return out


def load_prior_set(path: str | Path | None = None) -> PriorSet:
    """Load a prior set file (default: the shipped literature prior set with its draws)."""
    path = Path(path) if path is not None else DEFAULT_PRIOR_FILE
    return _load(str(path.resolve()))


@cache
def _load(path: str) -> PriorSet:
    p = Path(path)
    if p.suffix in {".nc", ".h5", ".netcdf"}:
        raw = tables_of(p)
        model = compile_spec(spec_from_tables(raw, path))
        draws = load_draws(p, model)
        attrs = read_attrs(p)
        attrs.pop("prior_set_tables", None)
        if attrs.get("kind") == "fit":
            model = with_params(model, draws.mean())
        return PriorSet(model=model, draws=draws, source=path, attrs=attrs)
    model = load_model(p)
    sibling = p.with_suffix(".nc")
    draws, attrs = None, {}
    if sibling.exists():
        attrs = read_attrs(sibling)
        attrs.pop("prior_set_tables", None)
        if attrs.get("base_fingerprint") == model.spec.fingerprint:
            draws = load_draws(sibling, model)
        else:
            log.warning("ignoring %s: its tables do not match %s (re-run `neb-bayes priors "
                        "draws`)", sibling.name, p.name)
            attrs = {}
    return PriorSet(model=model, draws=draws, source=path, attrs=attrs)
