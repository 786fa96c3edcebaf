"""The Python API: everything the command line does, as functions.

>>> import neb_bayes as nb
>>> case = nb.read_case("cases/examples/primary_hypothyroidism_01.yaml")
>>> result = nb.infer(case)
>>> result.probabilities["primary_hypothyroidism"] > 0.9
True
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from neb_bayes import config
from neb_bayes.case.model import Case
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.exact import infer_exact
from neb_bayes.inference.latents import latent_summaries
from neb_bayes.model.compiled import CompiledModel, load_model
from neb_bayes.posterior import Result


def package_version() -> str:
    try:
        return version("neb_bayes")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def provenance(model: CompiledModel) -> dict[str, Any]:
    """Where a result came from: package version and the prior set's identity."""
    spec = model.spec
    return {
        "neb_bayes_version": package_version(),
        "prior_set": spec.name,
        "prior_set_version": spec.version,
        "prior_set_fingerprint": spec.fingerprint,
        "prior_set_file": Path(spec.source).name,
        "method": "exact enumeration of discrete states, closed-form latent integration",
    }


def infer(
    case: Case | dict | str | Path,
    priors: str | Path | CompiledModel | None = None,
    *,
    explain: bool = True,
    interval_prob: float = config.INTERVAL_PROB,
) -> Result:
    """Exact posterior probabilities of every condition for one case.

    Parameters
    ----------
    case
        A :class:`~neb_bayes.case.model.Case`, or anything :func:`read_case` accepts.
    priors
        Prior set file (default: the shipped literature prior set) or a compiled model.
    explain
        Also compute the evidence breakdown (log Bayes factor per result group and symptom)
        and the latent axis quantities.  Batch runs turn this off for speed.
    interval_prob
        Probability mass of reported intervals.
    """
    if not isinstance(case, Case):
        from neb_bayes.case import read_case

        case = read_case(case)
    model = priors if isinstance(priors, CompiledModel) else load_model(priors)
    ev = build_evidence(model, case)
    post = infer_exact(model, ev, explain=explain)
    latents = latent_summaries(model, ev, post, interval_prob) if explain else []
    return Result(
        case=case,
        evidence=ev,
        model=model,
        exact=post,
        latents=latents,
        provenance=provenance(model),
        interval_prob=interval_prob,
    )
