"""Load and check a prior set file (the model as data).

A prior set is a YAML file under ``priors/`` whose tables define the whole model: axes with
their discrete states and continuous latents, measurement channels, state effects, diurnal
profiles, the prior network over states and the symptom noisy-OR table.  This module reads
it, checks every cross-reference (so a typo fails loudly at load time, not as a wrong
probability later) and fingerprints it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PRIOR_FILE = Path(__file__).resolve().parents[2] / "priors" / "default.yaml"


class PriorSetError(ValueError):
    """A prior set file that is inconsistent; lists every problem found."""

    def __init__(self, problems: list[str], source: str = "",
                 heading: str = "invalid prior set"):
        self.problems = problems
        super().__init__(
            f"{heading} {source}:\n" + "\n".join(f"  - {p}" for p in problems)
        )


@dataclass(frozen=True)
class ModelSpec:
    """The parsed tables of a prior set, unchanged, with a content fingerprint."""

    raw: dict[str, Any]
    source: str
    fingerprint: str

    @property
    def name(self) -> str:
        return str(self.raw.get("prior_set", Path(self.source).stem))

    @property
    def version(self) -> str:
        return str(self.raw.get("version", ""))

    @property
    def order(self) -> list[str]:
        return list(self.raw["order"])

    @property
    def conditions(self) -> dict[str, dict[str, list[str]]]:
        return self.raw["conditions"]


def fingerprint(tables: dict[str, Any]) -> str:
    """Stable short hash of a prior set's tables (key order does not matter)."""
    blob = json.dumps(tables, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_reference_state(state: str) -> bool:
    """A reference (normal) state of an axis, the one prevalences are relative to: named
    ``normal`` or ``normal_<...>`` (e.g. ``normal_female``)."""
    return state == "normal" or state.startswith("normal_")


def _check(raw: dict[str, Any]) -> list[str]:
    """Return every inconsistency in the tables (empty when the prior set is sound)."""
    problems: list[str] = []
    for key in TOP_TABLES:
        if key not in raw:
            problems.append(f"missing top-level table '{key}'")
    if problems:
        return problems
    sources = raw["sources"]
    axes = raw["axes"]

    def check_src(where: str, src: Any) -> None:
        keys = src if isinstance(src, list) else [src]
        if not keys or src is None:
            problems.append(f"{where}: no source")
        for k in keys:
            if k not in sources:
                problems.append(f"{where}: unknown source key '{k}'")

    if sorted(raw["order"]) != sorted(axes):
        problems.append("order must list every axis exactly once")
    for ax, spec in axes.items():
        lat = list(spec.get("latents", {}))
        for st, sspec in spec["states"].items():
            if lat:
                check_src(f"axes.{ax}.states.{st}", sspec.get("src"))
                for part in ("mean", "sd"):
                    if sorted(sspec.get(part, {})) != sorted(lat):
                        problems.append(f"axes.{ax}.states.{st}.{part} must give every latent {lat}")
                for sd in sspec.get("sd", {}).values():
                    if not sd > 0:
                        problems.append(f"axes.{ax}.states.{st}.sd must be > 0")
                for a, b, rho in sspec.get("corr", []):
                    if a not in lat or b not in lat or not -1 < rho < 1:
                        problems.append(f"axes.{ax}.states.{st}.corr [{a}, {b}, {rho}] is invalid")
        in_condition = {(a, st) for where in raw["conditions"].values()
                        for a, sts in where.items() for st in sts}
        for st, sspec in spec["states"].items():
            if not is_reference_state(st) and (ax, st) not in in_condition and not sspec.get("description"):
                problems.append(f"axes.{ax}.states.{st}: a state that is neither normal nor a "
                                "condition needs a `description` (reports name it)")
        for st in spec.get("diurnal_amplitude", {}):
            if st not in spec["states"]:
                problems.append(f"axes.{ax}.diurnal_amplitude: unknown state '{st}'")
    for cond, where in raw["conditions"].items():
        for ax, states in where.items():
            if ax not in axes:
                problems.append(f"conditions.{cond}: unknown axis '{ax}'")
                continue
            for st in states:
                if st not in axes[ax]["states"]:
                    problems.append(f"conditions.{cond}: unknown state '{ax}.{st}'")
    profiles = raw.get("diurnal_profiles", {})
    for name, prof in profiles.items():
        check_src(f"diurnal_profiles.{name}", prof.get("src"))
        if len(prof["hours"]) != len(prof["offsets"]):
            problems.append(f"diurnal_profiles.{name}: hours and offsets differ in length")
    for ch, spec in raw["analytes"].items():
        where = f"analytes.{ch}"
        ax = spec.get("axis")
        if ax not in axes:
            problems.append(f"{where}: unknown axis '{ax}'")
            continue
        check_src(where, spec.get("src"))
        for lat in spec.get("loadings", {}):
            if lat not in axes[ax].get("latents", {}):
                problems.append(f"{where}: loading on unknown latent '{lat}' of axis {ax}")
        med = spec.get("median")
        meds = med.values() if isinstance(med, dict) else [med]
        if not all(isinstance(m, int | float) and m > 0 for m in meds):
            problems.append(f"{where}: median must be positive")
        for k in ("tau", "cvi", "cva"):
            if not (isinstance(spec.get(k), int | float) and spec[k] >= 0):
                problems.append(f"{where}: {k} must be a number >= 0")
        if "floor" in spec and not (isinstance(spec["floor"], int | float)
                                    and not isinstance(spec["floor"], bool)
                                    and math.isfinite(spec["floor"]) and spec["floor"] > 0):
            problems.append(f"{where}: floor must be a positive number")
        d = spec.get("diurnal")
        if d and d.get("profile") not in profiles:
            problems.append(f"{where}: unknown diurnal profile '{d.get('profile')}'")
    gross = raw.get("gross_error")
    if gross is not None:
        check_src("gross_error", gross.get("src"))
        rate, sd = gross.get("rate"), gross.get("widen_sd")
        if not (isinstance(rate, int | float) and 0 <= rate < 0.05):
            problems.append("gross_error.rate must be a number in [0, 0.05)")
        if not (isinstance(sd, int | float) and sd >= 0):
            problems.append("gross_error.widen_sd must be a number >= 0")
    channel_analytes = {spec.get("analyte", ch) for ch, spec in raw["analytes"].items()}
    for i, eff in enumerate(raw.get("effects", [])):
        where = f"effects[{i}]"
        check_src(where, eff.get("src"))
        if eff.get("analyte") not in raw["analytes"] and eff.get("analyte") not in channel_analytes:
            problems.append(f"{where}: unknown analyte channel '{eff.get('analyte')}'")
        for ax, states in eff.get("when", {}).items():
            if ax not in axes or any(s not in axes[ax]["states"] for s in states):
                problems.append(f"{where}: unknown state in when: {ax}: {states}")
    for ax, prev in raw["prevalence"].items():
        if ax not in axes:
            problems.append(f"prevalence.{ax}: unknown axis")
            continue
        check_src(f"prevalence.{ax}", prev.get("src"))
        for st in prev.get("base", {}):
            if st not in axes[ax]["states"]:
                problems.append(f"prevalence.{ax}.base: unknown state '{st}'")
        for j, mod in enumerate(prev.get("modifiers", [])):
            check_src(f"prevalence.{ax}.modifiers[{j}]", mod.get("src"))
            for st in mod.get("odds", {}):
                if st not in axes[ax]["states"]:
                    problems.append(f"prevalence.{ax}.modifiers[{j}]: unknown state '{st}'")
    order = raw["order"]
    for i, link in enumerate(raw.get("links", [])):
        (pa, ps), (ca, cs) = link["parent"], link["child"]
        if pa not in axes or ps not in axes[pa]["states"]:
            problems.append(f"links[{i}]: unknown parent {pa}.{ps}")
        elif ca not in axes or cs not in axes[ca]["states"]:
            problems.append(f"links[{i}]: unknown child {ca}.{cs}")
        elif order.index(pa) >= order.index(ca):
            problems.append(f"links[{i}]: parent axis {pa} must come before {ca} in `order`")
        check_src(f"links[{i}]", link.get("src"))
    problems.extend(_check_context(raw, check_src))
    problems.extend(_check_uncertainty(raw, check_src))
    sym = raw["symptoms"]
    for cause, table in sym.get("causes", {}).items():
        if "." in cause:
            ax, st = cause.split(".", 1)
            if ax not in axes or st not in axes[ax]["states"]:
                problems.append(f"symptoms.causes: unknown cause '{cause}'")
        elif cause not in raw["conditions"]:
            problems.append(f"symptoms.causes: unknown condition '{cause}'")
        for s, p in table.items():
            if s not in sym["leak"]:
                problems.append(f"symptoms.causes.{cause}: symptom '{s}' has no leak")
            if not 0 <= p < 1:
                problems.append(f"symptoms.causes.{cause}.{s}: probability must be in [0, 1)")
    for s, p in sym["leak"].items():
        if not 0 < p < 1:
            problems.append(f"symptoms.leak.{s}: probability must be in (0, 1)")
    return problems


def _check_context(raw: dict[str, Any], check_src) -> list[str]:
    from neb_bayes.context import flag_table

    problems: list[str] = []
    flags = flag_table()
    axes = raw["axes"]
    names = set(raw["analytes"]) | {s.get("analyte", c) for c, s in raw["analytes"].items()}
    for ax, spec in axes.items():
        for st, sspec in spec["states"].items():
            for key in ("only_with", "not_with"):
                gate = sspec.get(key) or []
                for flag in [gate] if isinstance(gate, str) else gate:
                    if flag not in flags:
                        problems.append(f"axes.{ax}.states.{st}.{key}: unknown context flag "
                                        f"'{flag}'")
    for i, row in enumerate(raw.get("context_effects", [])):
        where = f"context_effects[{i}]"
        check_src(where, row.get("src"))
        for flag in row["flag"] if isinstance(row["flag"], list) else [row["flag"]]:
            if flag not in flags:
                problems.append(f"{where}: unknown context flag '{flag}'")
        an = row.get("analyte", [])
        for a in an if isinstance(an, list) else [an]:
            if a not in names:
                problems.append(f"{where}: unknown analyte '{a}'")
        for part in ("latent", "sd_scale"):
            for ax, states in row.get(part, {}).items():
                if ax not in axes or any(s not in axes[ax]["states"] for s in states):
                    problems.append(f"{where}.{part}: unknown axis/state {ax}: {list(states)}")
        causes = set(raw.get("symptoms", {}).get("causes", {}))
        for cause, factor in row.get("symptoms", {}).items():
            if cause not in causes:
                problems.append(f"{where}.symptoms: '{cause}' causes no symptom in `symptoms.causes`")
            if not 0 < factor <= 1:
                problems.append(f"{where}.symptoms.{cause}: factor must be in (0, 1]")
        if "diurnal" in row and row["diurnal"].get("profile") not in raw.get("diurnal_profiles", {}):
            problems.append(f"{where}: unknown diurnal profile")
        if "group" in row and not ("latent" in row or "sd_scale" in row):
            problems.append(f"{where}: `group` (rows that do not stack) applies to latent rows only")
        if "group" in row and not (isinstance(row["group"], str) and row["group"]):
            problems.append(f"{where}: `group` must be a name")
    for ax, prev in raw["prevalence"].items():
        for j, mod in enumerate(prev.get("modifiers", [])):
            if "group" in mod and not (isinstance(mod["group"], str) and mod["group"]):
                problems.append(f"prevalence.{ax}.modifiers[{j}]: `group` must be a name")
            when = mod.get("when", {})
            for flag in [when.get("flag")] + list(when.get("any_flag", [])):
                if flag is not None and flag not in flags:
                    problems.append(f"prevalence.{ax}.modifiers[{j}]: unknown flag '{flag}'")
    for i, row in enumerate(raw.get("age_effects", [])):
        check_src(f"age_effects[{i}]", row.get("src"))
    return problems


def _is_spread(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and x >= 0


def _check_uncertainty(raw: dict[str, Any], check_src) -> list[str]:
    """Problems in the ``uncertainty`` table: every spread a number >= 0; a per-axis entry
    (``axes.<axis>``: ``latent_mean`` per latent, with its sources) naming known axes and
    latents only."""
    problems: list[str] = []
    u = raw.get("uncertainty") or {}
    for key, value in u.items():
        if key != "axes" and not _is_spread(value):
            problems.append(f"uncertainty.{key} must be a number >= 0")
    for ax, entry in (u.get("axes") or {}).items():
        where = f"uncertainty.axes.{ax}"
        if ax not in raw["axes"]:
            problems.append(f"{where}: unknown axis")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a table (latent_mean, src)")
            continue
        check_src(where, entry.get("src"))
        for key in sorted(set(entry) - {"latent_mean", "src"}):
            problems.append(f"{where}: unknown key '{key}' (known: latent_mean, src)")
        latents = raw["axes"][ax].get("latents", {})
        for lat, value in (entry.get("latent_mean") or {}).items():
            if lat not in latents:
                problems.append(f"{where}.latent_mean: unknown latent '{lat}' of axis {ax}")
            elif not _is_spread(value):
                problems.append(f"{where}.latent_mean.{lat} must be a number >= 0")
    return problems


def spec_from_tables(raw: dict[str, Any], source: str) -> ModelSpec:
    """Check and wrap prior set tables that did not come from a YAML file (e.g. a saved fit)."""
    problems = _check(raw)
    if problems:
        raise PriorSetError(problems, source)
    return ModelSpec(raw=raw, source=source, fingerprint=fingerprint(raw))


def load_spec(path: str | Path | None = None) -> ModelSpec:
    """Read and check a prior set YAML file (default: the shipped literature prior set);
    cached per file and its :func:`file_state`, so a file written again is read again."""
    path = Path(path) if path is not None else DEFAULT_PRIOR_FILE
    resolved = path.resolve()
    return _load_spec_cached(str(resolved), file_state(resolved))


def file_state(path: str | Path) -> tuple[int, int] | None:
    """A file's size and modification time, the part of a cache key that makes a process
    which keeps running (a notebook, a Dask worker) read a prior set file written again;
    None when it cannot be read (the loader then says why)."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


#: the first bytes of an HDF5 file (netCDF-4 is HDF5), and of a classic netCDF file
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NETCDF_CLASSIC_SIGNATURE = b"CDF"
NETCDF_SUFFIXES = frozenset({".nc", ".h5", ".netcdf"})


def is_netcdf(path: str | Path) -> bool:
    """Whether a file holds netCDF/HDF5 (by its first bytes; by its suffix if unreadable)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return Path(path).suffix in NETCDF_SUFFIXES
    return (head.startswith(HDF5_SIGNATURE) or head.startswith(NETCDF_CLASSIC_SIGNATURE)
            or Path(path).suffix in NETCDF_SUFFIXES)


#: where a prior set's YAML tables are read, and where the files they are not go
TABLES_READERS = ("load_model(path) and `neb-bayes priors draws --priors` read a prior set's "
                  "YAML tables (e.g. priors/default.yaml)")
NETCDF_READERS = ("read a netCDF prior set with neb_bayes.priorset.load_prior_set(path) (its "
                  "`.model` is the compiled model), infer(case, priors=path), or `--priors` of "
                  "`report`, `next-test`, `batch`, `priors fit`, `priors show`/`validate`")
CASE_READERS = ("read a case with neb_bayes.read_case(path) or `neb-bayes report`/`check`; "
                "a JSON Lines file of cases with `neb-bayes batch` or `priors fit`")
#: the top-level tables every prior set has
TOP_TABLES = ("axes", "conditions", "analytes", "prevalence", "order", "symptoms", "sources")


def _netcdf_kind(path: Path) -> str:
    """What a netCDF file is, from its provenance attributes (``kind``), and where its tables
    are when they are a YAML file beside it."""
    from neb_bayes.model.params import read_attrs

    try:
        kind = read_attrs(path).get("kind")
    except Exception:  # noqa: BLE001 - any unreadable file is just "a netCDF/HDF5 file"
        return "a netCDF/HDF5 file"
    if kind == "fit":
        return "a prior set saved by `neb-bayes priors fit` (netCDF)"
    tables = [t for t in (path.with_suffix(".yaml"), path.with_suffix(".yml")) if t.is_file()]
    beside = f" of the tables {tables[0].name} beside it: pass that" if tables else ""
    return f"a prior set's parameter draws (netCDF, kind {kind!r}){beside}"


def _not_tables(path: Path) -> PriorSetError | None:
    """The error for a path that is plainly no prior set YAML file (a directory, a netCDF
    file), saying what it is and what reads it; None otherwise."""
    if path.is_dir():
        return PriorSetError([f"a directory, not a prior set file: {TABLES_READERS}"], str(path))
    if path.is_file() and is_netcdf(path):
        return PriorSetError([_netcdf_kind(path), TABLES_READERS, NETCDF_READERS], str(path),
                             heading="not a prior set's YAML tables")
    return None


def _case_like(raw: object) -> bool:
    """Whether parsed YAML/JSON looks like a case (``case_format``, ``measurements``)."""
    return isinstance(raw, dict) and bool({"case_format", "measurements"} & set(raw))


def _jsonl_of_cases(path: str) -> bool:
    """Whether a file that is not YAML starts with a JSON line holding a case."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            first = fh.readline()
        return _case_like(json.loads(first))
    except (OSError, ValueError):
        return False


def _not_a_prior_set(raw: object) -> str | None:
    """What parsed YAML is when it is no prior set at all (a case, no tables of one)."""
    if _case_like(raw):
        return f"a case file, not a prior set: {CASE_READERS}; {TABLES_READERS}"
    if not isinstance(raw, dict):
        return f"not a prior set: its top level is no mapping of tables; {TABLES_READERS}"
    if not set(TOP_TABLES) & set(raw):
        return (f"not a prior set: none of its tables ({', '.join(TOP_TABLES)}); "
                f"{TABLES_READERS}")
    return None


@lru_cache(maxsize=16)
def _load_spec_cached(path: str, state: tuple[int, int] | None = None) -> ModelSpec:
    other = _not_tables(Path(path))
    if other is not None:
        raise other
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        hint = f"; {NETCDF_READERS}" if Path(path).suffix in NETCDF_SUFFIXES else ""
        raise PriorSetError([f"cannot read: {exc}{hint}"], path) from exc
    except UnicodeDecodeError:   # its message would carry the file's bytes: not shown
        raise PriorSetError(["not a text (YAML) file, nor a netCDF prior set"], path) from None
    except yaml.YAMLError as exc:
        if _jsonl_of_cases(path):
            raise PriorSetError([f"a JSON Lines file of cases, not a prior set: "
                                 f"{CASE_READERS}; {TABLES_READERS}"], path) from None
        raise PriorSetError([f"not valid YAML: {exc}"], path) from exc
    other_text = _not_a_prior_set(raw)
    if other_text is not None:
        raise PriorSetError([other_text], path)
    problems = _check(raw)
    if problems:
        raise PriorSetError(problems, path)
    return ModelSpec(raw=raw, source=path, fingerprint=fingerprint(raw))
