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


def compare(a: PriorSet | str, b: PriorSet | str) -> list[dict]:
    """Parameter by parameter: each prior set's mean and 90 % interval, and the shift."""
    pa, pb = (_params(x if isinstance(x, PriorSet) else load_prior_set(x)) for x in (a, b))
    rows = []
    for name in pa:
        if name not in pb:
            continue
        xa, xb = pa[name], pb[name]
        if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(xb))):
            continue
        sd = float(xa.std()) or 1e-12
        rows.append({"parameter": name, "a_mean": float(xa.mean()), "b_mean": float(xb.mean()),
                     "a_interval": np.quantile(xa, [0.05, 0.95]).tolist(),
                     "b_interval": np.quantile(xb, [0.05, 0.95]).tolist(),
                     "z": (float(xb.mean()) - float(xa.mean())) / sd})
    rows.sort(key=lambda r: -abs(r["z"]))
    return rows
