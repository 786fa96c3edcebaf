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


def fine_pct(p: float) -> str:
    """A probability as :func:`pct` gives it, but small ones to two significant digits (a
    context's prior odds can move a condition from 0.03 % to 3 %)."""
    if 1e-6 <= p < 0.001:
        return f"{100 * p:.2g} %"
    return "<0.0001 %" if p < 1e-6 else pct(p)


def interval_text(iv: Sequence[float], draws: bool = True) -> str:
    """An interval as text for people: ``lo – hi``; one value when every parameter draw gives
    the same (``(all draws)``), or when the prior set has no parameter draws."""
    lo, hi = iv
    if abs(hi - lo) < 1e-9:
        return f"{pct(lo)} (all draws)" if draws else "no parameter draws"
    return f"{pct(lo)} – {pct(hi)}"


def context_prior_axes(d: dict) -> dict[str, list[str]]:
    """Per axis: the context (flag labels) that changed its prior odds, from a JSON report's
    ``accounted_for`` entries of kind ``prior_odds``."""
    out: dict[str, list[str]] = {}
    for entry in d.get("accounted_for") or []:
        if entry.get("kind") != "prior_odds":
            continue
        label = entry["text"].split(": prior odds", 1)[0]
        for axis in entry.get("axes", []):
            out.setdefault(axis, []).append(label)
    return out


def unassessed_sentences(d: dict) -> list[str]:
    """What the probabilities on axes without a usable result rest on: the population prior
    (and symptoms), or, where context changed an axis' prior odds, that context by name."""
    axes = list(d.get("unassessed_axes") or [])
    if not axes:
        return []
    moved = context_prior_axes(d)
    plain = [a for a in axes if a not in moved]
    out = []
    if plain:
        out.append("No usable result on: " + ", ".join(plain) + ". Probabilities there rest on "
                   "the population prior (and symptoms): they say what is common, not what "
                   "this patient has.")
    for axis in (a for a in axes if a in moved):
        out.append(f"No usable result on: {axis}. Probabilities there rest on the prior as "
                   f"changed by this patient's context ({', '.join(moved[axis])}; see "
                   "Accounted for) and the symptoms, not on a result.")
    return out


def states_text(states: str) -> str:
    """A NUTS state combination (the repr of a dict of axis: state) as ``axis=state, …``."""
    import ast

    try:
        return ", ".join(f"{k}={v}" for k, v in ast.literal_eval(states).items())
    except (ValueError, SyntaxError, AttributeError):
        return states


def nuts_verdict(nuts: dict) -> str:
    """How the ``--method nuts`` latent means compare with the exact ones, in words."""
    out = ("agree with the exact ones within Monte Carlo error" if nuts["agrees_with_exact"]
           else "do NOT all agree with the exact ones")
    if any(c["weak"] for c in nuts["state_combinations"]):
        out += (" — but some state combinations' chains are weak (below), so neither the "
                "sampled values nor this comparison can be relied on")
    return out
