"""Number formatting shared by the report renderers and the command line."""

from __future__ import annotations

from collections.abc import Sequence


def pct(p: float) -> str:
    """A probability as a percentage for people (``<0.1 %`` and ``>99.9 %`` at the ends)."""
    if p < 0.001:
        return "<0.1 %"
    if p > 0.999:
        return ">99.9 %"
    return f"{100 * p:.1f} %"


def interval_text(iv: Sequence[float], draws: bool = True) -> str:
    """An interval as text for people: ``lo – hi``; one value when every parameter draw gives
    the same (``(all draws)``), or when the prior set has no parameter draws."""
    lo, hi = iv
    if abs(hi - lo) < 1e-9:
        return f"{pct(lo)} (all draws)" if draws else "no parameter draws"
    return f"{pct(lo)} – {pct(hi)}"
