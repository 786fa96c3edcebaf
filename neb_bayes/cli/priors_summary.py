"""Text summaries, validation and comparison of prior sets (behind ``neb-bayes priors``)."""

from __future__ import annotations

import numpy as np

from neb_bayes.model.params import flat_parameters, point_params
from neb_bayes.priorset import PriorSet, load_prior_set


def _params(ps: PriorSet) -> dict[str, np.ndarray]:
    draws = ps.draws if ps.draws is not None else point_params(ps.model)
    return flat_parameters(draws, ps.model)


#: attributes longer than this are cut in ``priors show`` (the fit's diagnostics never are)
LONG_ATTR = 200


def _diagnostics_lines(raw: str | dict) -> list[str]:
    """A fit's stored convergence diagnostics (R-hat, ESS, divergences, BFMI, ...), one a
    line."""
    import json

    try:
        diag = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (ValueError, TypeError):
        return [f"  attr diagnostics: {raw}"]
    lines = ["  diagnostics:"]
    for k, v in diag.items():
        lines.append(f"    {k}: {f'{v:.4g}' if isinstance(v, float) else v}")
    return lines


def summary_text(ps: PriorSet) -> str:
    lines = [f"prior set: {ps.source}"]
    for k, v in ps.provenance().items():
        lines.append(f"  {k}: {v}")
    for k, v in sorted(ps.attrs.items()):
        if k == "diagnostics":
            lines += _diagnostics_lines(v)
        elif k != "uncertainty":
            text = str(v)
            lines.append(f"  attr {k}: " + (text if len(text) <= LONG_ATTR else
                                             f"{text[:LONG_ATTR]}... ({len(text)} characters)"))
    params = _params(ps)
    lines.append(f"{len(params)} parameters; mean [5 %, 95 %]:")
    for name, x in params.items():
        lo, hi = np.quantile(x, [0.05, 0.95])
        lines.append(f"  {name:60s} {x.mean():9.4g} [{lo:9.4g}, {hi:9.4g}]")
    return "\n".join(lines)


#: a spread this small relative to the parameter's scale is zero: the parameter was held
#: fixed (a fit keeps the groups it does not free at the prior set's values)
FIXED_SPREAD = 1e-9


def compare(a: PriorSet | str, b: PriorSet | str) -> list[dict]:
    """Parameter by parameter: each prior set's mean and 90 % interval, and the shift.

    The shift is standardised by the pooled spread ``sqrt((var_A + var_B) / 2)``, so a
    parameter one set held fixed (zero spread) is measured against the other's spread.  A
    parameter fixed in both has no spread to measure against: its ``z`` is ``None`` when
    the values differ (0 when they agree), and such rows come last, by the size of the
    shift.  ``fixed`` lists the sets ("A", "B") in which the parameter has no spread.
    """
    pa, pb = (_params(x if isinstance(x, PriorSet) else load_prior_set(x)) for x in (a, b))
    rows = []
    for name in pa:
        if name not in pb:
            continue
        xa, xb = pa[name], pb[name]
        if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(xb))):
            continue
        ma, mb = float(xa.mean()), float(xb.mean())
        scale = FIXED_SPREAD * max(1.0, abs(ma), abs(mb))
        sa, sb = float(xa.std()), float(xb.std())
        fixed = [k for k, sd in (("A", sa), ("B", sb)) if sd <= scale]
        pooled = float(np.sqrt((sa * sa + sb * sb) / 2.0))
        shift = mb - ma
        if len(fixed) < 2:
            z: float | None = shift / pooled
        else:
            z = 0.0 if abs(shift) <= scale else None
        rows.append({"parameter": name, "a_mean": ma, "b_mean": mb,
                     "a_interval": np.quantile(xa, [0.05, 0.95]).tolist(),
                     "b_interval": np.quantile(xb, [0.05, 0.95]).tolist(),
                     "a_sd": sa, "b_sd": sb, "shift": shift, "z": z, "fixed": fixed})
    rows.sort(key=lambda r: (r["z"] is None, -abs(r["z"] if r["z"] is not None
                                                   else r["shift"])))
    return rows


def compare_text(rows: list[dict]) -> str:
    """The comparison as a table: each set's mean and 90 % interval, and the shift in pooled
    spreads (``fixed`` where neither set has a spread)."""
    def cell(mean, interval):
        return f"{mean:9.4g} [{interval[0]:9.4g}, {interval[1]:9.4g}]"

    lines = [f"{'parameter':52s} {'A mean [5 %, 95 %]':>32s} {'B mean [5 %, 95 %]':>32s} "
             f"{'shift/sd':>9s}  held fixed in"]
    for r in rows:
        z = "fixed" if r["z"] is None else f"{r['z']:9.2f}"
        lines.append(f"{r['parameter']:52s} {cell(r['a_mean'], r['a_interval'])} "
                     f"{cell(r['b_mean'], r['b_interval'])} {z:>9s}  "
                     f"{' and '.join(r['fixed']) or '-'}")
    lines.append("shift/sd: (B mean - A mean) / sqrt((sd_A^2 + sd_B^2) / 2); 'fixed': held "
                 "fixed in both sets at different values (listed last)")
    return "\n".join(lines)
