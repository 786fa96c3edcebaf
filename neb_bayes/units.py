"""Unit conversion to and from each analyte's canonical unit.

Dimensions are checked by :mod:`pint`, never by string matching: a unit string is first
rewritten from lab spelling into pint syntax (:func:`pint_expression`: ``µ``/``mc``
prefixes, ``U`` for international units, ``/24h``, ``%``...), parsed, and then related to
the canonical unit by the route the analyte allows:

* same dimension: a pure rescaling (``µIU/mL`` → ``mIU/L``);
* mass ↔ amount of substance through the analyte's molar mass (``ng/dL`` → ``pmol/L``);
* an analyte-specific equivalence (prolactin ``1 ng/mL = 21.2 mIU/L``); international units
  are their own base dimension (``[iu]``), so ``IU/L`` against ``ng/mL`` is a dimension
  mismatch unless such an equivalence exists;
* an affine rule (HbA1c ``IFCC = (NGSP − 2.15) × 10.929``).

Every listed unit's conversion is derived by pint once, when the package is built, into
``vocab/unit_table.json`` (``python -m neb_bayes.units``); pint is imported only for a unit
outside that table, e.g. to explain a dimension error.  Each ``(analyte, unit)`` pair is
then cached, so a warm conversion is one dictionary lookup and one multiplication.

Examples
--------
>>> from neb_bayes.vocab import analytes
>>> round(to_canonical(analytes()["ft4"], 1.0, "ng/dL"), 2)
12.87
>>> round(to_canonical(analytes()["hba1c"], 6.5, "%"), 1)
47.5
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neb_bayes.vocab import Analyte, analytes, analytes_digest

if TYPE_CHECKING:  # pragma: no cover
    import pint

__all__ = [
    "Conversion",
    "UnitError",
    "build_unit_table",
    "conversion",
    "from_canonical",
    "pint_expression",
    "registry",
    "to_canonical",
]


log = logging.getLogger(__name__)


class UnitError(ValueError):
    """A unit string that is unknown, or does not fit the analyte's dimension."""


@dataclass(frozen=True)
class Conversion:
    """``canonical = (value + offset) * scale``; ``route`` says how it was derived."""

    scale: float
    offset: float = 0.0
    route: str = "scale"

    def forward(self, value: float) -> float:
        """Value in the given unit → canonical unit."""
        return (value + self.offset) * self.scale if self.offset else value * self.scale

    def backward(self, value: float) -> float:
        """Value in the canonical unit → the given unit."""
        return value / self.scale - self.offset if self.offset else value / self.scale


@functools.cache
def registry() -> pint.UnitRegistry:
    """The module's unit registry, with ``IU`` as its own base dimension ``[iu]``."""
    import pint

    try:
        ureg = pint.UnitRegistry(cache_folder=":auto:")
    except Exception:  # pragma: no cover - an unwritable cache folder
        ureg = pint.UnitRegistry()
    ureg.define("international_unit = [iu] = IU")
    return ureg


# ----------------------------------------------------------------------------- spelling
_PREFIXES = {
    "": "",
    "f": "f",
    "p": "p",
    "n": "n",
    "u": "u",
    "mc": "u",
    "m": "m",
    "c": "c",
    "d": "d",
    "k": "k",
}
_BASES = {"g": "g", "mol": "mol", "l": "L", "iu": "IU", "u": "IU"}
_WORDS = {
    "%": "percent",
    "percent": "percent",
    "pct": "percent",
    "h": "hour",
    "hr": "hour",
    "hrs": "hour",
    "hour": "hour",
    "hours": "hour",
    "d": "day",
    "day": "day",
    "days": "day",
    "min": "minute",
    "mins": "minute",
    "minute": "minute",
    "minutes": "minute",
    "s": "second",
    "sec": "second",
    "second": "second",
    "seconds": "second",
    "liter": "L",
    "litre": "L",
    "liters": "L",
    "litres": "L",
}
# Annotations labs append that carry no dimension (``% (NGSP)``, ``mmol/mol Hb``).
_ANNOTATIONS = {"ngsp", "dcct", "ifcc", "hb", "hgb"}
_ATOM = re.compile(r"[A-Za-z%]+")
_HOURS = re.compile(r"(\d+(?:\.\d+)?)\s*[-*]?\s*(?:h|hr|hrs|hour|hours)\b", re.IGNORECASE)
_PER = re.compile(r"\s+per\s+", re.IGNORECASE)
_LEGAL = re.compile(r"^[A-Za-z0-9.*/()^ ]*$")


def _atom(word: str) -> str:
    low = word.lower()
    if low in _WORDS:
        return _WORDS[low]
    if low in _ANNOTATIONS:
        return ""
    for prefix in sorted(_PREFIXES, key=len, reverse=True):
        if low.startswith(prefix) and low[len(prefix) :] in _BASES:
            return _PREFIXES[prefix] + _BASES[low[len(prefix) :]]
    raise UnitError(f"unknown unit word {word!r}")


@functools.lru_cache(maxsize=4096)  # keyed by text from case files: bounded
def pint_expression(unit: str) -> str:
    """Rewrite a unit as labs write it into an expression pint parses.

    >>> pint_expression("µg/24 h")
    'ug/(24*hour)'
    >>> pint_expression("mU/L")
    'mIU/L'
    """
    text = unit.strip().replace("µ", "u").replace("μ", "u")
    text = text.replace("·", "*").replace("×", "*").replace("[", "").replace("]", "")
    text = re.sub(r"\{[^}]*\}", "", text)  # UCUM annotations: {creat}
    text = re.sub(r"(\d)\.(?=[A-Za-z])", r"\1*", text)  # UCUM 24.h
    text = _PER.sub("/", text)
    text = _HOURS.sub(lambda m: f"({m.group(1)}*hour)", text)
    text = _ATOM.sub(lambda m: _atom(m.group(0)), text)
    text = re.sub(r"\(\s*\)", "", text)
    text = re.sub(r"\s+", "", text)
    if not text or text == "1":
        return "dimensionless"
    if not _LEGAL.match(text) or text.endswith("/") or text.startswith("/"):
        raise UnitError(f"cannot read unit {unit!r}")
    return text


def _quantity(unit: str) -> Any:
    ureg = registry()
    try:
        return ureg.parse_expression(pint_expression(unit))
    except UnitError:
        raise
    except Exception as exc:  # pint's own parse errors
        raise UnitError(f"cannot read unit {unit!r}") from exc


_DIMENSION_WORDS = {
    "[mass] / [length] ** 3": "mass concentration",
    "[substance] / [length] ** 3": "amount-of-substance concentration",
    "[iu] / [length] ** 3": "international units per volume",
    "[substance] / [time]": "amount of substance per time",
    "[mass] / [time]": "mass per time",
    "[mass] / [length] ** 3 / [time]": "mass concentration per time",
    "[substance] / [length] ** 3 / [time]": "substance concentration per time",
    "dimensionless": "a ratio",
}


def _dimension_words(quantity: Any) -> str:
    dims = str(quantity.dimensionality)
    return _DIMENSION_WORDS.get(dims, dims)


def _accepted(analyte: Analyte) -> str:
    return ", ".join(u for u in analyte.units if u) or "(none)"


def _bridges(analyte: Analyte) -> list[tuple[str, Any]]:
    """Quantities equal to 1 that link two dimensions for this analyte."""
    ureg = registry()
    out = [
        (
            "factor",
            ureg.parse_expression(f"{f.factor}*({pint_expression(f.to_unit)})")
            / ureg.parse_expression(pint_expression(f.from_unit)),
        )
        for f in analyte.factors
    ]
    if analyte.molar_mass is not None:
        per_gram = ureg.Quantity(1.0, "mol") / ureg.Quantity(analyte.molar_mass, "g")
        out.append(("molar_mass", per_gram))
    return out


def _alias_key(unit: str) -> str:
    return re.sub(r"\s+", "", unit.lower().replace("µ", "u").replace("μ", "u"))


def _resolve(analyte: Analyte, unit: str) -> tuple[str, str, bool]:
    """Apply the analyte's unit aliases and rewrite for pint: ``(unit, expression, aliased)``."""
    aliases = {_alias_key(k): v for k, v in analyte.unit_aliases.items()}
    resolved = aliases.get(_alias_key(unit), unit)
    try:
        expr = pint_expression(resolved)
    except UnitError:
        raise UnitError(
            f"unknown unit {unit!r} for {analyte.id}; accepted units: {_accepted(analyte)}"
        ) from None
    return resolved, expr, resolved != unit


def _with_pint(analyte: Analyte, unit: str, expr: str, written: str, aliased: bool) -> Conversion:
    """Derive the conversion with pint (dimension checks included)."""
    for listed, (offset, scale) in analyte.affine.items():
        if pint_expression(listed) == expr:
            return Conversion(scale=scale, offset=offset, route="affine")
    canonical = _quantity(analyte.canonical_unit)
    try:
        given = _quantity(unit)
    except UnitError:
        raise UnitError(
            f"unknown unit {written!r} for {analyte.id}; accepted units: {_accepted(analyte)}"
        ) from None
    route = "alias" if aliased else "scale"
    if canonical.dimensionless:
        # Ratios (%, mmol/mol, an index) are only accepted as listed: pint would happily
        # turn 6.5 % HbA1c into 65 mmol/mol.
        listed = {pint_expression(u) for u, r in analyte.units.items() if r != "alias"}
        if expr not in listed:
            raise UnitError(
                f"unit {written!r} does not fit {analyte.id} ({analyte.canonical_unit}); "
                f"accepted units: {_accepted(analyte)}"
            )
    ratio = given / canonical
    if ratio.dimensionless:
        scale = float(ratio.to("dimensionless").magnitude)
        if pint_expression(analyte.canonical_unit) == expr and not aliased:
            route = "canonical"
        return Conversion(scale=scale, route=route)
    for name, bridge in _bridges(analyte):
        for candidate in (ratio * bridge, ratio / bridge):
            if candidate.dimensionless:
                return Conversion(scale=float(candidate.to("dimensionless").magnitude), route=name)
    raise UnitError(
        f"unit {written!r} ({_dimension_words(given)}) does not fit {analyte.id}, measured in "
        f"{analyte.canonical_unit} ({_dimension_words(canonical)}); accepted units: "
        f"{_accepted(analyte)}"
    )


def _compute(analyte: Analyte, unit: str, table: dict | None = None) -> Conversion:
    resolved, expr, aliased = _resolve(analyte, unit)
    hit = (table or {}).get(analyte.id, {}).get(expr)
    if hit is not None:
        scale, offset, route = hit
        return Conversion(scale=scale, offset=offset, route="alias" if aliased else route)
    return _with_pint(analyte, resolved, expr, unit, aliased)


# ----------------------------------------------------------------------------- unit table
# Conversions of every listed unit, derived by pint and shipped with the package, so that
# reading a case needs pint (~0.3 s to import) only for a spelling outside the table or to
# explain a dimension error.  Regenerate with ``python -m neb_bayes.units`` after editing
# analytes.yaml; the table is ignored when its digest does not match the vocabulary, and a
# test holds it equal to a fresh pint derivation.
TABLE_PATH = Path(__file__).resolve().parent / "vocab" / "unit_table.json"
TABLE_FORMAT = 1


def build_unit_table() -> dict:
    """Derive, with pint, the conversion of every analyte's listed units."""
    conversions: dict[str, dict[str, list]] = {}
    for aid, analyte in analytes().items():
        rows: dict[str, list] = {}
        for unit, route in analyte.units.items():
            if route == "alias":
                continue
            resolved, expr, aliased = _resolve(analyte, unit)
            conv = _with_pint(analyte, resolved, expr, unit, aliased)
            rows[expr] = [conv.scale, conv.offset, conv.route]
        conversions[aid] = rows
    return {
        "format": TABLE_FORMAT,
        "vocab_sha256": analytes_digest(),
        "note": "generated by `python -m neb_bayes.units`; do not edit",
        "conversions": conversions,
    }


@functools.cache
def _table() -> dict:
    try:
        data = json.loads(TABLE_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if data.get("format") != TABLE_FORMAT or data.get("vocab_sha256") != analytes_digest():
        log.debug("unit table out of date; conversions will be derived with pint")
        return {}
    return data["conversions"]


@functools.lru_cache(maxsize=4096)  # keyed by text from case files: bounded
def _cached(analyte_id: str, unit: str) -> Conversion:
    return _compute(analytes()[analyte_id], unit, _table())


def conversion(analyte: Analyte, unit: str) -> Conversion:
    """How a value in ``unit`` converts to ``analyte``'s canonical unit.

    Raises
    ------
    UnitError
        For an unknown unit string or a unit of the wrong dimension; the message names the
        unit and the analyte's accepted units.
    """
    if not isinstance(unit, str):
        raise UnitError(f"unit must be text, got {type(unit).__name__}")
    if analytes().get(analyte.id) is analyte:
        return _cached(analyte.id, unit)
    return _compute(analyte, unit)


def to_canonical(analyte: Analyte, value: float, unit: str) -> float:
    """Convert ``value`` in ``unit`` to the analyte's canonical unit."""
    return conversion(analyte, unit).forward(value)


def from_canonical(analyte: Analyte, value: float, unit: str) -> float:
    """Convert ``value`` in the analyte's canonical unit to ``unit``."""
    return conversion(analyte, unit).backward(value)


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    table = build_unit_table()
    rows = ",\n".join(
        f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in table["conversions"].items()
    )
    head = {k: v for k, v in table.items() if k != "conversions"}
    text = json.dumps(head, indent=1)[:-2] + ',\n "conversions": {\n' + rows + "\n }\n}\n"
    assert json.loads(text) == table
    TABLE_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {TABLE_PATH}")
