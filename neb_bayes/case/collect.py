"""Collect errors, items not used and warnings while one case is read, and the small
type checks and formatting every section of the reader shares."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from neb_bayes.case.model import FieldError, NotUsed

__all__ = ["NUMBER_TEXT", "Collector", "fmt", "fmt_raw", "is_number", "number_in", "type_name"]

#: a number written as text ("2.1", " 40 ", "1e-3"), as a result's value may be given
NUMBER_TEXT = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$")


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number_in(value: Any) -> float | None:
    """The finite number ``value`` is, or holds as text (:data:`NUMBER_TEXT`); else None."""
    if is_number(value):
        return float(value)
    if isinstance(value, str) and NUMBER_TEXT.match(value):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def type_name(value: Any) -> str:
    """How a value of the wrong type is named in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}" if is_number(value) else f"the non-finite number {value!r}"
    return "a mapping" if isinstance(value, dict) else type(value).__name__


def fmt(value: float) -> str:
    """A value in a message: three significant digits."""
    return f"{value:.3g}"


def fmt_raw(value: Any) -> str:
    """A value as written in the case."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).strip()


@dataclasses.dataclass
class Collector:
    """Collects errors, items not used and warnings while one case is read."""

    errors: list[FieldError] = dataclasses.field(default_factory=list)
    not_used: list[NotUsed] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        """Record an error at a field path."""
        self.errors.append(FieldError(path, message))

    def skip(self, item: str, reason: str) -> None:
        """Record an item that is understood but not used, with the reason."""
        self.not_used.append(NotUsed(item=item, reason=reason))

    def unknown_keys(self, data: dict, known: tuple[str, ...], prefix: str) -> None:
        """List the keys of ``data`` outside ``known`` as not used."""
        for key in data:
            if key not in known:
                item = f"{prefix}.{key}" if prefix else str(key)
                self.skip(item, f"unknown field; known fields: {', '.join(known)}")

    def number(
        self,
        data: dict,
        key: str,
        path: str,
        *,
        low: float = 0.0,
        high: float | None = None,
        high_open: bool = True,
        what: str = "a number",
        text_ok: bool = False,
    ) -> float | None:
        """A number in [low, high) (or [low, high] when not ``high_open``), or None;
        ``text_ok``: also a number written as text (``"40"``), as a result's value."""
        raw = data.get(key)
        if raw is None:
            return None
        value = number_in(raw) if text_ok else (raw if is_number(raw) else None)
        if value is None:
            also = " (a number, or one written as text like '40')" if text_ok else ""
            self.error(path, f"expected {what}{also}, got {type_name(raw)}")
            return None
        too_high = high is not None and (value >= high if high_open else value > high)
        if value < low or too_high:
            if high is None:
                bounds = f"at least {low:g}"
            else:
                bounds = f"from {low:g} to {'below ' if high_open else ''}{high:g}"
            self.error(path, f"must be {bounds}, got {value:g}")
            return None
        return float(value)

    def text(self, data: dict, key: str, path: str) -> str | None:
        """Stripped text at ``data[key]``, or None (an error if it is not text)."""
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(path, f"expected text, got {type_name(value)}")
            return None
        return value.strip()

    def text_list(self, data: dict, key: str, path: str) -> list[tuple[int, str]]:
        """``(index, text)`` of a list of non-empty text items (an error for anything else)."""
        value = data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"expected a list of text items, got {type_name(value)}")
            return []
        out = []
        for j, item in enumerate(value):
            if isinstance(item, str) and item.strip():
                out.append((j, item.strip()))
            else:
                self.error(f"{path}[{j}]", f"expected non-empty text, got {type_name(item)}")
        return out
