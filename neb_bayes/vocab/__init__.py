"""Vocabulary as data: analytes, symptoms and specimens, loaded from the YAML files beside this
module and looked up by any accepted name.

Names match case-insensitively, with spaces, underscores and hyphens equivalent
(``free_T4`` = ``Free-T4`` = ``free t4``).  Every table is read once per process
(:func:`functools.cache`); lookups are dictionary reads.

Examples
--------
>>> lookup_analyte("Free T4").id
'ft4'
>>> lookup_analyte("3016-3").id
'tsh'
>>> lookup_symptom("goitre")
'goiter'
>>> lookup_specimen("24-hour urine")
'urine_24h'
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

__all__ = [
    "AXES",
    "Analyte",
    "AnalyteMatch",
    "UnitFactor",
    "VocabError",
    "analyte_ids",
    "analytes",
    "analytes_digest",
    "lookup_analyte",
    "lookup_specimen",
    "lookup_symptom",
    "match_analyte",
    "normalise_name",
    "not_modelled_reason",
    "specimen_candidates",
    "specimen_ids",
    "symptom_ids",
]

AXES = ("thyroid", "adrenal", "gonadal", "prolactin", "metabolic", "other")
ROUTES = ("canonical", "scale", "molar_mass", "factor", "affine", "alias")

_EMPTY: MappingProxyType = MappingProxyType({})
_SEPARATORS = re.compile(r"[\s_\-]+")
_LOINC_PREFIX = re.compile(r"^loinc\s*[:#|]?\s*", re.IGNORECASE)
_PARENS = re.compile(r"\(([^()]*)\)")


class VocabError(ValueError):
    """A vocabulary file that breaks its own rules (a bug in the package data)."""


@dataclass(frozen=True)
class UnitFactor:
    """An analyte-specific equivalence: ``1 <from_unit> = <factor> <to_unit>``."""

    from_unit: str
    to_unit: str
    factor: float


@dataclass(frozen=True)
class Analyte:
    """One analyte of the vocabulary (``neb_bayes/vocab/analytes.yaml``).

    Attributes
    ----------
    id
        Canonical id (``ft4``); the model refers to analytes by it.
    canonical_unit
        The unit every value is converted to (``pmol/L``).
    units
        Accepted unit strings mapped to their conversion route (``canonical``, ``scale``,
        ``molar_mass``, ``factor``, ``affine``, ``alias``).
    molar_mass, factors, affine, unit_aliases
        What the routes need (see :mod:`neb_bayes.units`).
    lod, reference_interval, plausible
        In the canonical unit, keyed by ``default``, a sex (``F``/``M``), a specimen, a
        method or a named sub-population; use :meth:`lod_for`, :meth:`reference_for` and
        :meth:`plausible_for` rather than reading them directly.
    alternates
        Analytes this name may really mean when the specimen or unit says so (``cortisol``
        in 24-h urine is ``ufc``; ``renin`` in ng/mL/h is ``pra``).
    source
        Where each number comes from (facts.md section and row, or ``estimate``).
    """

    id: str
    name: str
    axis: str
    canonical_unit: str
    synonyms: tuple[str, ...] = ()
    loinc: tuple[str, ...] = ()
    specimens: tuple[str, ...] = ()
    molar_mass: float | None = None
    factors: tuple[UnitFactor, ...] = ()
    alternates: tuple[str, ...] = ()
    notes: str | None = None
    units: MappingProxyType = field(default=_EMPTY, compare=False, repr=False)
    affine: MappingProxyType = field(default=_EMPTY, compare=False, repr=False)
    unit_aliases: MappingProxyType = field(default=_EMPTY, compare=False, repr=False)
    lod: MappingProxyType = field(default=_EMPTY, compare=False, repr=False)
    reference_interval: MappingProxyType = field(default=_EMPTY, compare=False, repr=False)
    plausible: MappingProxyType = field(default=_EMPTY, compare=False, repr=False)
    implied_specimen: MappingProxyType = field(default=_EMPTY, compare=False, repr=False)
    warn_names: MappingProxyType = field(default=_EMPTY, compare=False, repr=False)
    source: MappingProxyType = field(default=_EMPTY, compare=False, repr=False)

    @property
    def accepted_units(self) -> tuple[str, ...]:
        """The unit strings listed as accepted, canonical first."""
        return tuple(self.units)

    def lod_for(self, specimen: str | None = None, method: str | None = None) -> float | None:
        """Typical detection limit (canonical unit) for a method and specimen, if known."""
        if method is not None:
            wanted = normalise_name(method)
            for key, value in self.lod.items():
                if normalise_name(key) == wanted:
                    return value
        if specimen is not None and specimen in self.lod:
            return self.lod[specimen]
        return self.lod.get("default")

    def reference_for(
        self, sex: str | None = None, specimen: str | None = None, group: str | None = None
    ) -> tuple[float, float] | None:
        """Default adult reference interval (canonical unit): most specific key first."""
        for key in (group, specimen, sex, "default"):
            if key is not None and key in self.reference_interval:
                return self.reference_interval[key]
        return None

    def plausible_for(self, specimen: str | None = None) -> tuple[float, float] | None:
        """Wide physiologically plausible range (canonical unit) for a specimen."""
        if specimen is not None and specimen in self.plausible:
            return self.plausible[specimen]
        return self.plausible.get("default")


@dataclass(frozen=True)
class AnalyteMatch:
    """What a name or LOINC code resolved to, with what the name itself implies."""

    analyte: Analyte
    implied_specimen: str | None = None
    warning: str | None = None


def normalise_name(text: str) -> str:
    """Lower-case ``text`` and make spaces, underscores and hyphens one space."""
    return _SEPARATORS.sub(" ", text.strip().lower()).strip(" .,;:")


HERE = Path(__file__).resolve().parent


def _read_yaml(name: str) -> Any:
    text = (HERE / name).read_text(encoding="utf-8")
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.cache
def analytes_digest() -> str:
    """SHA-256 of ``analytes.yaml``: names the vocabulary a unit table was built from."""
    import hashlib  # only needed here; keeps ``import neb_bayes.vocab`` light

    return hashlib.sha256((HERE / "analytes.yaml").read_bytes()).hexdigest()


def _keyed(raw: Any, what: str, aid: str, pair: bool) -> MappingProxyType:
    """Read a number/interval, or a mapping of them by key, into a read-only mapping."""
    if raw is None:
        return _EMPTY
    if not isinstance(raw, dict):
        raw = {"default": raw}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if pair:
            if not (isinstance(value, list) and len(value) == 2 and value[0] <= value[1]):
                raise VocabError(f"{aid}.{what}.{key}: expected [low, high], got {value!r}")
            out[str(key)] = (float(value[0]), float(value[1]))
        else:
            if not isinstance(value, (int, float)) or value <= 0:
                raise VocabError(f"{aid}.{what}.{key}: expected a number > 0, got {value!r}")
            out[str(key)] = float(value)
    return MappingProxyType(out)


def _analyte(raw: dict) -> Analyte:
    aid = raw["id"]
    if raw.get("axis") not in AXES:
        raise VocabError(f"{aid}: axis must be one of {AXES}")
    units = {str(k): str(v) for k, v in raw["units"].items()}
    if units.get(raw["canonical_unit"]) != "canonical":
        raise VocabError(f"{aid}: the canonical unit must be listed first as 'canonical'")
    bad = [u for u, r in units.items() if r not in ROUTES]
    if bad:
        raise VocabError(f"{aid}: unknown conversion route for {bad}")
    affine = {
        str(u): (float(rule["offset"]), float(rule["scale"]))
        for u, rule in (raw.get("affine") or {}).items()
    }
    return Analyte(
        id=aid,
        name=raw["name"],
        axis=raw["axis"],
        canonical_unit=str(raw["canonical_unit"]),
        synonyms=tuple(str(s) for s in raw.get("synonyms", ())),
        loinc=tuple(str(c) for c in raw.get("loinc", ())),
        specimens=tuple(raw["specimens"]),
        molar_mass=float(raw["molar_mass"]) if raw.get("molar_mass") is not None else None,
        factors=tuple(
            UnitFactor(str(f["from"]), str(f["to"]), float(f["factor"]))
            for f in raw.get("factors", ())
        ),
        alternates=tuple(raw.get("alternates", ())),
        notes=raw.get("notes"),
        units=MappingProxyType(units),
        affine=MappingProxyType(affine),
        unit_aliases=MappingProxyType(
            {str(k): str(v) for k, v in (raw.get("unit_aliases") or {}).items()}
        ),
        lod=_keyed(raw.get("lod"), "lod", aid, pair=False),
        reference_interval=_keyed(raw.get("reference_interval"), "reference_interval", aid, True),
        plausible=_keyed(raw.get("plausible"), "plausible", aid, pair=True),
        implied_specimen=MappingProxyType(
            {normalise_name(str(k)): v for k, v in (raw.get("implied_specimen") or {}).items()}
        ),
        warn_names=MappingProxyType(
            {normalise_name(str(k)): v for k, v in (raw.get("warn_names") or {}).items()}
        ),
        source=MappingProxyType(dict(raw.get("source") or {})),
    )


@functools.cache
def _analyte_tables() -> tuple[MappingProxyType, MappingProxyType, MappingProxyType]:
    data = _read_yaml("analytes.yaml")
    table: dict[str, Analyte] = {}
    index: dict[str, str] = {}
    specimens = set(specimen_ids())
    for raw in data["analytes"]:
        analyte = _analyte(raw)
        if analyte.id in table:
            raise VocabError(f"duplicate analyte id {analyte.id}")
        if not set(analyte.specimens) <= specimens:
            raise VocabError(f"{analyte.id}: unknown specimen in {analyte.specimens}")
        table[analyte.id] = analyte
        for name in (analyte.id, analyte.name, *analyte.synonyms, *analyte.loinc):
            key = normalise_name(name)
            owner = index.setdefault(key, analyte.id)
            if owner != analyte.id:
                raise VocabError(f"name {name!r} names both {owner} and {analyte.id}")
    for analyte in table.values():
        missing = [a for a in analyte.alternates if a not in table]
        if missing:
            raise VocabError(f"{analyte.id}: unknown alternates {missing}")
    not_modelled: dict[str, str] = {}
    for entry in data.get("not_modelled", ()):
        for name in entry["names"]:
            key = normalise_name(name)
            if key in index:
                raise VocabError(f"not_modelled name {name!r} is also an analyte name")
            not_modelled[key] = entry["reason"]
    return MappingProxyType(table), MappingProxyType(index), MappingProxyType(not_modelled)


def analytes() -> MappingProxyType:
    """All analytes by id, in the order of the vocabulary file."""
    return _analyte_tables()[0]


def analyte_ids() -> tuple[str, ...]:
    """All analyte ids, in the order of the vocabulary file."""
    return tuple(_analyte_tables()[0])


def _candidates(name: str) -> list[str]:
    key = normalise_name(_LOINC_PREFIX.sub("", name.strip()))
    keys = [key]
    if "(" in key:
        keys.append(normalise_name(_PARENS.sub(" ", key)))
        keys.extend(normalise_name(inner) for inner in _PARENS.findall(key))
    return keys


def _word_key(key: str) -> str:
    """A normalised name's words in sorted order, commas dropped: ``"t4, free"`` and
    ``"free t4"`` give the same key."""
    return " ".join(sorted(key.replace(",", " ").split()))


@functools.cache
def _word_index() -> MappingProxyType:
    """Every analyte name by its :func:`_word_key`: ``(analyte id, the name's key)``, or
    ``None`` where names of two analytes have the same words (never resolved that way)."""
    out: dict[str, tuple[str, str] | None] = {}
    for key, aid in _analyte_tables()[1].items():
        words = _word_key(key)
        hit = out.setdefault(words, (aid, key))
        if hit is not None and hit[0] != aid:
            out[words] = None
    return MappingProxyType(out)


@functools.lru_cache(maxsize=4096)  # keyed by text from case files: bounded
def match_analyte(name: str) -> AnalyteMatch | None:
    """Resolve an analyte id, name, synonym or LOINC code, with what the name implies.

    ``"Free thyroxine (FT4)"`` also resolves: when the whole text is not a known name, the
    text outside the parentheses and then the text inside them are tried.  Lab-style word
    order resolves too (``"T4, free"``, ``"cortisol AM"``): a text whose words, commas
    dropped, are those of one analyte's name in another order is that analyte.
    """
    table, index, _ = _analyte_tables()
    candidates = _candidates(name)
    for key in candidates:
        aid = index.get(key)
        if aid is not None:
            return _match(table[aid], key)
    words = _word_index()
    for key in candidates:
        hit = words.get(_word_key(key))
        if hit is not None:
            return _match(table[hit[0]], hit[1])
    return None


def _match(analyte: Analyte, key: str) -> AnalyteMatch:
    """What the name ``key`` (normalised) of ``analyte`` resolves to."""
    return AnalyteMatch(analyte, analyte.implied_specimen.get(key), analyte.warn_names.get(key))


def lookup_analyte(name_or_loinc: str) -> Analyte | None:
    """The analyte a name, synonym, id or LOINC code refers to, or ``None``."""
    match = match_analyte(name_or_loinc)
    return match.analyte if match is not None else None


def not_modelled_reason(name: str) -> str | None:
    """Why a recognised but unused name (``HOMA-IR``) is not used, or ``None``."""
    reasons = _analyte_tables()[2]
    for key in _candidates(name):
        if key in reasons:
            return reasons[key]
    return None


@functools.cache
def _symptom_tables() -> tuple[tuple[str, ...], MappingProxyType]:
    ids: list[str] = []
    index: dict[str, str] = {}
    for entry in _read_yaml("symptoms.yaml")["symptoms"]:
        sid = entry["id"]
        ids.append(sid)
        for name in (sid, *entry.get("synonyms", ())):
            owner = index.setdefault(normalise_name(str(name)), sid)
            if owner != sid:
                raise VocabError(f"symptom name {name!r} names both {owner} and {sid}")
    return tuple(ids), MappingProxyType(index)


def symptom_ids() -> tuple[str, ...]:
    """All symptom ids, in the order of ``shared/spec/vocabulary.md``."""
    return _symptom_tables()[0]


@functools.lru_cache(maxsize=4096)  # keyed by text from case files: bounded
def lookup_symptom(name: str) -> str | None:
    """The symptom id a name or synonym refers to, or ``None``."""
    return _symptom_tables()[1].get(normalise_name(name))


@functools.cache
def _specimen_tables() -> tuple[tuple[str, ...], MappingProxyType]:
    data = _read_yaml("specimens.yaml")
    ids: list[str] = []
    index: dict[str, tuple[str, ...]] = {}
    for entry in data["specimens"]:
        sid = entry["id"]
        ids.append(sid)
        for name in (sid, entry.get("name", sid), *entry.get("synonyms", ())):
            key = normalise_name(str(name))
            if index.setdefault(key, (sid,)) != (sid,):
                raise VocabError(f"specimen name {name!r} names two specimens")
    for name, targets in (data.get("generic") or {}).items():
        key = normalise_name(str(name))
        if key in index or not set(targets) <= set(ids):
            raise VocabError(f"generic specimen {name!r} is ambiguous or names unknown ids")
        index[key] = tuple(targets)
    return tuple(ids), MappingProxyType(index)


def specimen_ids() -> tuple[str, ...]:
    """The canonical specimen ids."""
    return _specimen_tables()[0]


def specimen_candidates(name: str) -> tuple[str, ...]:
    """Canonical specimens a written name may mean, preferred first (empty if unknown).

    A specific name gives one (``"EDTA plasma"`` → ``("plasma",)``); a generic one gives
    several (``"blood"`` → ``("serum", "plasma", "whole_blood")``) and the reader takes
    the first that the analyte accepts.
    """
    return _specimen_tables()[1].get(normalise_name(name), ())


def lookup_specimen(name: str) -> str | None:
    """The canonical specimen a written name refers to (first candidate), or ``None``."""
    candidates = specimen_candidates(name)
    return candidates[0] if candidates else None
