"""``neb-bayes next-test``: which test would tell the most about the conditions still in question.

See :mod:`neb_bayes.next_test` for the computation (preposterior analysis, exact in the model).
"""

from __future__ import annotations

import json

import click

__all__ = ["next_test", "format_text"]




def format_text(plan_dict: dict) -> str:
    """Plain-text table of a next-test plan (the ``--format text`` output).

    Parameters
    ----------
    plan_dict
        The JSON form written by ``--format json``.

    Returns
    -------
    str
        Lines of text, ending with a newline.
    """
    from neb_bayes.config import RAISED_MIN_PROBABILITY, RAISED_ODDS_RATIO
    from neb_bayes.report.format import pct as _pct

    lines = [f"case {plan_dict['case_id']}: next tests by expected information gain "
             f"(scope: {plan_dict['scope']}, cost weight {plan_dict['cost_weight']:g})"]
    if not plan_dict["targets"]:
        lines.append(f"no condition on the axes in question is still uncertain (1 %-99 %) and "
                     f"none is under raised suspicion (odds x{RAISED_ODDS_RATIO:g} the prior's "
                     f"or more, {_pct(RAISED_MIN_PROBABILITY)} or more): no test is expected to "
                     "change the picture much")
        return "\n".join(lines) + "\n"
    lines.append(f"target conditions ({plan_dict['entropy_bits']:.3f} bits in all), and why:")
    lines += _target_lines(plan_dict)
    if not plan_dict["tests"]:
        lines.append("no candidate test would change them: the tests that bear on them are "
                     "already in the case, or none is in the catalogue "
                     "(neb_bayes/vocab/test_costs.yaml)")
        return "\n".join(lines) + "\n"
    labels = [r["label"] + (f" [{r['specimen']}]" if r["specimen"] else "")
              for r in plan_dict["tests"]]
    width = max(len("test"), *map(len, labels))          # (whole names: none cut)
    lines.append(f"{'#':>2}  {'test':{width}s} {'gain bits':>9} {'cost':>5} {'score':>7}  "
                 "would move")
    for r, label in zip(plan_dict["tests"], labels, strict=True):
        moves = "; ".join(_move_text(c) for c in r["conditions"] if _moves(c))
        lines.append(f"{r['rank']:>2}  {label:{width}s} "
                     f"{r['expected_information_gain_bits']:9.4f} "
                     f"{r['relative_cost']:5.2g} {r['score']:7.4f}  {moves or '-'}")
    for r in plan_dict["tests"]:
        if r.get("listed_for"):
            lines.append(f"note: #{r['rank']} is listed as the best test for the raised "
                         f"suspicion of {', '.join(r['listed_for'])}: a rare condition holds "
                         "few bits, so its tests rank below those of common ones")
    for note in plan_dict.get("notes", []):
        lines.append(f"note: {note}")
    lines.append("gain: expected fall in the entropy of which target conditions the patient "
                 "has, one question per axis; would move: the probability now -> where it "
                 "lands for 80 % of results (10th-90th percentile), then how often it would "
                 "reach a decision level beyond that range; costs are illustrative "
                 "(neb_bayes/vocab/test_costs.yaml)")
    return "\n".join(lines) + "\n"


def _target_lines(plan_dict: dict) -> list[str]:
    """One line per target: its probability and why it is a target (``target_reasons``;
    the bare name where a plan has none)."""
    from neb_bayes.next_test import target_reason_text
    from neb_bayes.report.format import pct

    given = {d["condition"]: d for d in plan_dict.get("target_reasons") or []}
    return [f"  {c} {pct(given[c]['probability'])}: {target_reason_text(given[c])}"
            if c in given else f"  {c}" for c in plan_dict["targets"]]


#: a condition a test's likely results move by less than this (probability, either way) is
#: not listed under "would move"
MOVE_MIN = 0.005


def _moves(row: dict) -> bool:
    """Whether a test's likely results move a condition enough to list (:data:`MOVE_MIN`),
    or some of its results take it to a decision level its likely range hides."""
    from neb_bayes.next_test import tail_text

    lo, hi = row["likely_range"]
    return (max(row["probability"] - lo, hi - row["probability"]) >= MOVE_MIN
            or bool(tail_text(row)))


def _move_text(row: dict) -> str:
    """``condition now -> 10th..90th percentile`` and what the range hides (``tail_text``)."""
    from neb_bayes.next_test import tail_text
    from neb_bayes.report.format import pct

    lo, hi = row["likely_range"]
    tail = tail_text(row)
    return (f"{row['condition']} {pct(row['probability'])} -> {pct(lo)}..{pct(hi)}"
            + (f" ({tail})" if tail else ""))


@click.command("next-test")
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many tests to list.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@click.option("--cost-weight", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Rank by gain / cost**W (0: information only; 1: bits per unit of the "
              "illustrative relative cost).")
@click.option("--scope", type=click.Choice(["question", "all"]), default="question",
              show_default=True,
              help="'question': uncertain conditions on axes with results or moved by the "
              "evidence; 'all': every uncertain condition, screening included.  Either way "
              "a condition whose odds the evidence raised tenfold or more is a target.")
@click.option("--priors", type=click.Path(exists=True, dir_okay=False),
              help="Prior set file (default: the shipped literature prior set).")
def next_test(case: str, top: int, fmt: str, cost_weight: float, scope: str,
              priors: str | None) -> None:
    """Rank the tests that would best resolve what is still in question in CASE.

    Each candidate (every modelled analyte not yet measured, plus the 1 mg dexamethasone
    suppression test, late-night salivary cortisol at 23:00 and serum cortisol at 08:00; a
    procedure with several results, the cosyntropin test's cortisol at 30 and 60 min or an
    OGTT's glucose at 0 and 120 min, is one candidate scored on all its results) is scored
    by the expected information gain on the target conditions (uncertain ones, and rare ones
    whose suspicion the evidence raised), averaged over the results the model predicts for
    it.  Decision support for a clinician, not a diagnosis.
    """
    from neb_bayes.api import infer
    from neb_bayes.cli import _load_priors, _read
    from neb_bayes.next_test import plan_next_tests

    parsed = _read(case)
    prior_set = _load_priors(priors)
    result = infer(parsed, prior_set, uncertainty=False)
    plan = plan_next_tests(result, cost_weight=cost_weight, scope=scope)  # type: ignore[arg-type]
    rows = plan.top(top)
    out = {
        "case_id": result.case.id,
        "scope": plan.scope,
        "cost_weight": plan.cost_weight,
        "targets": plan.targets,
        "target_reasons": plan.target_reasons,
        "axes": plan.axes,
        "entropy_bits": round(plan.entropy_bits, 6),
        "objective": "expected reduction, summed over the target axes, of the entropy (bits) "
                     "of which target conditions the patient has on the axis = sum of the "
                     "axes' mutual information with the test result",
        "tests": rows,
        "notes": plan.notes,
    }
    if fmt == "json":
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        click.echo(format_text(out), nl=False)
