"""The Python API: everything the command line does, as functions.

>>> import neb_bayes as nb
>>> case = nb.read_case("cases/examples/primary_hypothyroidism_01.yaml")
>>> result = nb.infer(case)
>>> result.probabilities["primary_hypothyroidism"] > 0.9
True
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from neb_bayes import config
from neb_bayes.accel import report_done
from neb_bayes.case.model import Case
from neb_bayes.config import package_version
from neb_bayes.context import read_context
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.exact import infer_exact
from neb_bayes.inference.latents import latent_summaries
from neb_bayes.model.compiled import CompiledModel, gates_of, sex_keep, view_for_sex
from neb_bayes.posterior import Result
from neb_bayes.priorset import PriorSet, load_prior_set


def provenance(prior_set: PriorSet) -> dict[str, Any]:
    """Where a result came from: package version and the prior set's identity."""
    return {
        "neb_bayes_version": package_version(),
        **prior_set.provenance(),
        "method": "exact enumeration of discrete states, closed-form latent integration",
    }


def resolve_priors(priors: str | Path | CompiledModel | PriorSet | None) -> PriorSet:
    """A :class:`PriorSet` from a path, a compiled model (no draws) or ``None`` (default)."""
    if isinstance(priors, PriorSet):
        return priors
    if isinstance(priors, CompiledModel):
        return PriorSet(model=priors, draws=None, source=priors.spec.source)
    return load_prior_set(priors)


@lru_cache(maxsize=16)
def _draws_for(prior_set: PriorSet, sex: str | None, gates: frozenset[str] | None = None):
    """The prior set's draws cut to a patient's view (cached: slicing 1,000 draws is not
    free)."""
    return prior_set.draws.restrict(sex_keep(view_for_sex(prior_set.model, sex, gates)))


def infer(
    case: Case | dict | str | Path,
    priors: str | Path | CompiledModel | PriorSet | None = None,
    *,
    explain: bool = True,
    uncertainty: bool = True,
    interval_prob: float = config.INTERVAL_PROB,
    method: str = "exact",
    nuts_options: dict[str, Any] | None = None,
) -> Result:
    """Exact posterior probabilities of every condition for one case.

    Parameters
    ----------
    case
        A :class:`~neb_bayes.case.model.Case`, or anything :func:`read_case` accepts.
    priors
        Prior set file (default: the shipped literature prior set with its parameter
        draws), a :class:`~neb_bayes.priorset.PriorSet`, or a compiled model (no draws).
    explain
        Also compute the evidence breakdown (log Bayes factor per result group and symptom)
        and the latent axis quantities.  Batch runs turn this off for speed.
    uncertainty
        Evaluate the exact posterior under each of the prior set's parameter draws (the
        intervals); without it every interval is the point probability.
    interval_prob
        Probability mass of reported intervals, strictly between 0 and 1 (default pinned
        in :data:`neb_bayes.config.INTERVAL_PROB`).
    method
        ``"exact"`` (default), or ``"nuts"``: also sample the latent axis quantities with
        NUTS conditional on each likely state (for model extensions); the state
        probabilities stay exact, and the draws with their diagnostics are attached as
        ``result.nuts`` (an ArviZ DataTree), summarised with their diagnostics and their
        agreement with the exact latents in every report format.
    nuts_options
        Keyword arguments for :func:`~neb_bayes.inference.nuts.infer_nuts` (draws, tune,
        chains, max_states, seed, sampler: ``"nutpie"`` or ``"pymc"``) with
        ``method="nuts"``.
    """
    if (not isinstance(interval_prob, (int, float)) or isinstance(interval_prob, bool)
            or not 0.0 < interval_prob < 1.0):
        raise ValueError(f"interval_prob must be a probability strictly between 0 and 1, got "
                         f"{interval_prob!r}")
    if method not in ("exact", "nuts"):
        raise ValueError(f"method must be 'exact' or 'nuts', got {method!r}")
    if not isinstance(case, Case):
        from neb_bayes.case import read_case

        case = read_case(case)
    prior_set = resolve_priors(priors)
    # impossible states (the other sex's gonadal states, the phases of a cycle written or
    # absent) are cut: same answer, less work
    context = read_context(case)
    gates = gates_of(prior_set.model, context.flags)
    model = view_for_sex(prior_set.model, case.patient.sex, gates)
    ev = build_evidence(model, case, context=context)
    post = infer_exact(model, ev, explain=explain)
    latents = latent_summaries(model, ev, post, interval_prob) if explain else []
    draw_probs = draw_states = None
    if uncertainty and prior_set.draws is not None:
        from neb_bayes.inference.draws import probabilities_over_draws

        draws = _draws_for(prior_set, case.patient.sex, gates)
        draw_probs, draw_states = probabilities_over_draws(
            model, draws, ev, threads=min(config.REPORT_DRAW_THREADS, os.cpu_count() or 1),
            marginals=True)
        report_done()
    nuts = None
    if method == "nuts":
        from neb_bayes.inference.nuts import infer_nuts

        nuts = infer_nuts(model, ev, post, **(nuts_options or {}))
    prov = provenance(prior_set)
    if nuts is not None:
        prov["method"] += f"; latents also sampled: {nuts.attrs.get('method', 'NUTS')}"
    return Result(
        case=case,
        evidence=ev,
        model=model,
        exact=post,
        nuts=nuts,
        draw_probs=draw_probs,
        draw_states=draw_states,
        latents=latents,
        provenance=prov,
        interval_prob=interval_prob,
        prior_model=view_for_sex(prior_set.model, case.patient.sex),
    )
