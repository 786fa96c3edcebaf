"""Prior sets: the model tables plus (optionally) draws of the population parameters.

A prior set is either a YAML file of tables (``priors/default.yaml``; its draws, when shipped,
sit beside it as ``priors/default.nc``) or a netCDF file written by ``neb-bayes priors fit``
that embeds the tables, the posterior draws and their provenance.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from neb_bayes import disk_cache
from neb_bayes.model.compiled import CompiledModel, compile_spec, load_model
from neb_bayes.model.params import (
    ParamDraws,
    draw_problems,
    load_draws,
    parameter_digest,
    point_params,
    read_attrs,
    tables_of,
    with_params,
)
from neb_bayes.model.spec import (
    DEFAULT_PRIOR_FILE,
    PriorSetError,
    file_state,
    is_netcdf,
    spec_from_tables,
)

log = logging.getLogger("neb_bayes")


@dataclass(frozen=True, eq=False)
class PriorSet:
    """A compiled model (at the prior set's point values) and its parameter draws."""

    model: CompiledModel
    draws: ParamDraws | None
    source: str
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The prior set's own name: a fitted set's is the one it was saved under (its file
        name without the suffix, for files saved before names were stored); otherwise the
        tables' ``prior_set`` name."""
        if "prior_set_name" in self.attrs:
            return str(self.attrs["prior_set_name"])
        if self.attrs.get("kind") == "fit":
            return Path(self.source).stem
        return self.model.spec.name

    @cached_property
    def parameter_digest(self) -> str:
        """Digest of the parameter values: every draw (the tables' point values when there
        are no draws), :func:`~neb_bayes.model.params.parameter_digest`.  It changes
        whenever a value changes; ``model.spec.fingerprint`` identifies the tables (a fitted
        set keeps the tables it started from, so two fits of one base share it).  Results
        depend on both: a batch's resume identity should hold both."""
        return parameter_digest(self.draws if self.draws is not None
                                else point_params(self.model))

    def provenance(self) -> dict[str, Any]:
        spec = self.model.spec
        out: dict[str, Any] = {
            "prior_set": self.name,
            "prior_set_version": spec.version,
            "prior_set_fingerprint": spec.fingerprint,
            "prior_set_parameter_digest": self.parameter_digest,
            "prior_set_file": Path(self.source).name,
            "parameter_draws": 0 if self.draws is None else self.draws.n_draws,
        }
        if self.name != spec.name:
            out["prior_set_base"] = spec.name
        for key in ("kind", "created", "cohort_hash", "cohort_n", "sampler", "fit_groups",
                    "neb_bayes_version", "model_fingerprint"):
            if key in self.attrs:
                out[f"draws_{key}"] = self.attrs[key]
        if self.attrs.get("kind") == "fit":
            failures = str(self.attrs.get("threshold_failures") or "")
            # files saved before "forced" was stored: only --force saves a failed fit
            out["draws_forced"] = int(self.attrs.get("forced", bool(failures)))
            if out["draws_forced"]:
                out["draws_threshold_failures"] = failures
        return out


def load_prior_set(path: str | Path | None = None, *, disk_cache: bool = True) -> PriorSet:
    """Load a prior set file (default: the shipped literature prior set with its draws).

    A netCDF/HDF5 file is recognised by its content (its signature), whatever its name; any
    other file is read as YAML tables.  Raises
    :class:`~neb_bayes.model.spec.PriorSetError` for a file that cannot be read as a prior
    set (truncated, empty, not a prior set, a variable missing) and for draws outside their
    parameters' domains (:func:`~neb_bayes.model.params.draw_problems`), every such
    parameter named.

    A prior set loaded once is kept, for this process and on disk
    (:mod:`~neb_bayes.disk_cache`: ~10 ms instead of ~0.1 s in the next process), until its
    files or neb_bayes change; ``disk_cache=False`` reads and checks the files whatever is
    kept (``priors validate``).
    """
    path = Path(path) if path is not None else DEFAULT_PRIOR_FILE
    resolved = path.resolve()
    # (a file written again, or its draws beside it, e.g. a new fit saved over an old one:
    # read again in a process that keeps running)
    return _load(str(resolved), (file_state(resolved), file_state(resolved.with_suffix(".nc"))),
                 disk_cache)


def _checked(draws: ParamDraws, model: CompiledModel, source: str) -> ParamDraws:
    """``draws`` if every value lies in its parameter's domain, else PriorSetError."""
    problems = draw_problems(draws, model)
    if problems:
        raise PriorSetError(problems, source)
    return draws


def _read_saved(p: Path, model: CompiledModel | None = None):
    """(model, draws, attrs) of a saved prior set; PriorSetError when it cannot be read."""
    try:
        if model is None:
            model = compile_spec(spec_from_tables(tables_of(p), str(p)))
        draws = load_draws(p, model)
        attrs = read_attrs(p)
    except PriorSetError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise PriorSetError([f"cannot read as a saved prior set (netCDF written by `neb-bayes "
                             f"priors fit` or `priors draws`): {_short(exc)}"],
                            str(p)) from None
    attrs.pop("prior_set_tables", None)
    return model, _checked(draws, model, str(p)), attrs


def _short(exc: BaseException) -> str:
    """An exception's message, never longer than a line or two (no file contents)."""
    text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
    text = text or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."


@lru_cache(maxsize=8)
def _load(path: str, state: tuple = (None, None), use_disk: bool = True) -> PriorSet:
    use_disk = use_disk and state[0] is not None       # (an unreadable file: say why below)
    if use_disk:
        key = (path, _content_digest(Path(path)))
        if (kept := disk_cache.load("prior_set", key)) is not None:
            return kept
    prior_set, complete = _read(Path(path))
    # (kept only if the files did not change while they were read)
    if use_disk and complete and _content_digest(Path(path)) == key[1]:
        prior_set.parameter_digest  # noqa: B018  (computed once, kept with it)
        disk_cache.store("prior_set", key, prior_set)
    return prior_set


def _content_digest(p: Path) -> str:
    """SHA-256 of a prior set's files as they are now (its tables, and draws beside them):
    the disk cache's key, so an entry serves only the very bytes it was read from, whatever
    the files' times say (a rewrite within the file system's clock tick, a copy that keeps
    them; ~3 ms for the shipped set)."""
    h = hashlib.sha256()
    for f in dict.fromkeys((p, p.with_suffix(".nc"))):
        try:
            h.update(f.read_bytes())
        except OSError:
            h.update(b"\0none")
        h.update(b"\0")
    return h.hexdigest()


def _read(p: Path) -> tuple[PriorSet, bool]:
    """A prior set read from its files, and whether it is all it should be (not when draws
    beside its tables were ignored, with a warning that must be given each time)."""
    path = str(p)
    if is_netcdf(p):
        model, draws, attrs = _read_saved(p)
        if attrs.get("kind") == "fit":
            model = with_params(model, draws.mean())
        return PriorSet(model=model, draws=draws, source=path, attrs=attrs), True
    model = load_model(p)
    sibling = p.with_suffix(".nc")
    draws, attrs = None, {}
    if sibling.exists():
        try:
            sibling_attrs = read_attrs(sibling)
        except (OSError, KeyError) as exc:
            raise PriorSetError([f"its draws {sibling.name}: cannot be read: {_short(exc)}"],
                                path) from None
        if sibling_attrs.get("base_fingerprint") == model.spec.fingerprint:
            _, draws, attrs = _read_saved(sibling, model)
        else:
            log.warning("ignoring %s: its tables do not match %s (re-run `neb-bayes priors "
                        "draws`)", sibling.name, p.name)
            return PriorSet(model=model, draws=None, source=path, attrs={}), False
    return PriorSet(model=model, draws=draws, source=path, attrs=attrs), True
