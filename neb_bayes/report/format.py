"""Number formatting shared by the report renderers and the command line."""

from __future__ import annotations


def pct(p: float) -> str:
    """A probability as a percentage for people (``<0.1 %`` and ``>99.9 %`` at the ends)."""
    if p < 0.001:
        return "<0.1 %"
    if p > 0.999:
        return ">99.9 %"
    return f"{100 * p:.1f} %"
