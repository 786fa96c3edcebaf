"""A readable report for people: what is likely, how sure, why, and what was not used."""

from __future__ import annotations

import math

from neb_bayes import config
from neb_bayes.posterior import Result
from neb_bayes.report.format import (
    fine_pct,
    interval_text,
    nuts_verdict,
    states_text,
    unassessed_sentences,
)
from neb_bayes.report.format import pct as _pct
from neb_bayes.report.results import analyte_info, hhmm, num_text, reported_text, value_text


def _next_tests(result: Result) -> tuple[list[dict], list[dict]]:
    """The five best next tests and the target conditions with why each is one."""
    try:
        from neb_bayes.next_test import plan_next_tests

        plan = plan_next_tests(result)
        return plan.top(5), plan.target_reasons
    except Exception:  # noqa: BLE001 - a report without suggestions beats no report
        return [], []


def _move_text(moved: dict) -> str:
    """A condition a test would move: ``name now → 10th–90th percentile`` and what that range
    hides (:func:`neb_bayes.next_test.tail_text`)."""
    from neb_bayes.next_test import tail_text

    lo, hi = moved["likely_range"]
    tail = tail_text(moved)
    return (f"`{moved['condition']}` {_pct(moved['probability'])} → {_pct(lo)} – {_pct(hi)}"
            + (f" ({tail})" if tail else ""))


def _nuts_lines(nuts: dict) -> list[str]:
    """The ``--method nuts`` section: sampled latents against the exact ones, and each state
    combination's chain diagnostics."""
    th = nuts["thresholds"]
    verdict = nuts_verdict(nuts)
    lines = ["", "## NUTS check (--method nuts)", "",
             f"{nuts['method']}. State probabilities above are exact; the sampled latent "
             f"means {verdict}.", "",
             "| axis | quantity | NUTS log mean | exact log mean | difference | MC SE |",
             "|---|---|---:|---:|---:|---:|"]
    for r in nuts["latents"]:
        exact = f"{r['exact_log_mean']:+.3f}" if "exact_log_mean" in r else "—"
        diff = f"{r['difference']:+.3f}" if "difference" in r else "—"
        lines.append(f"| {r['axis']} | {r.get('label', r['latent'])} | {r['log_mean']:+.3f} | "
                     f"{exact} | {diff} | {r['mcse']:.3f} |")
    lines += ["", f"Chains per state combination (weak: R-hat > {th['r_hat_max']:g}, bulk ESS "
              f"< {th['ess_bulk_min']:g} or divergences):", "",
              "| axis | states | exact weight | R-hat | bulk ESS | divergences | chains |",
              "|---|---|---:|---:|---:|---:|---|"]
    for c in nuts["state_combinations"]:
        lines.append(f"| {c['axis']} | {states_text(c['states'])} | {fine_pct(c['exact_weight'])} | "
                     f"{c['r_hat_max']:.3f} | {c['ess_bulk_min']:.0f} | {c['divergences']} | "
                     f"{'WEAK: ' + '; '.join(c['problems']) if c['weak'] else 'ok'} |")
    return lines


def _cell(text: object) -> str:
    """Text for a Markdown table cell: case texts may hold ``|`` or line breaks."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _lab_lines(result: Result, rows: list[dict]) -> list[str]:
    """The laboratory results table (the JSON report's ``lab_results``, as the HTML report's
    table): each result as reported and in the model's unit, against its reference
    interval, when it was collected, and what the engine did with it."""
    if not rows:
        return []
    lines = ["", "## Laboratory results", "",
             "As reported and in the model's unit, against the lab's own reference interval "
             "when given, else the vocabulary's default adult interval.", "",
             "| item | analyte | as reported | model unit | reference interval | flag | "
             "collected | use |", "|---|---|---|---|---|---|---|---|"]
    for m, row in zip(result.case.measurements, rows, strict=True):
        a = analyte_info(m.analyte)
        name = a.name if a is not None else m.analyte
        ri = row["reference_interval"]
        ri_text = (f"{num_text(ri[0])} – {num_text(ri[1])} {row['canonical_unit']} "
                   f"({row['reference_interval_source']})" if ri is not None else "—")
        when = (f"{hhmm(m.hour)}, " if m.hour is not None else "") + f"day {num_text(m.day)}"
        use = ("used" if row["used"] else f"not used: {row.get('not_used') or 'see Not used'}")
        if row["flags"]:
            use += f" ({', '.join(row['flags'])})"
        cells = [f"`{row['item']}`", f"{name} ({m.specimen})", reported_text(m),
                 value_text(m, row["canonical_unit"]), ri_text, row["range"], when, use]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _prior_text(prior: float, population: float) -> str:
    """The prior of a condition, and before context where context changed it."""
    if _pct(prior) == _pct(population) and abs(prior - population) < 1e-4:
        return f"prior {_pct(prior)}"
    return f"prior {fine_pct(population)} before context, {fine_pct(prior)} with it"


def render_markdown(result: Result) -> str:
    d = result.to_dict()
    p = result.case.patient
    lines = [f"# neb_bayes report — case `{d['case_id']}`", ""]
    who = ", ".join(
        x for x in (
            {"F": "female", "M": "male"}.get(p.sex or "", "sex not given"),
            f"{p.age:g} y" if p.age is not None else "age not given",
            "pregnant" + (f" (week {p.gestational_week:g})" if p.gestational_week else "")
            if p.pregnant else "",
        ) if x
    )
    lines += [f"**Patient:** {who}. **Results used:** {result.evidence.n_measurements}; "
              f"**symptoms reported:** {len(result.evidence.present)} present, "
              f"{len(result.evidence.absent)} absent.", ""]
    lines += [f"> {config.DISCLAIMER}", ""]
    lines += ["## Condition probabilities", "",
              f"Sorted by posterior probability; intervals are {d['interval_kind']} with "
              f"probability {d['interval_prob']:g} ({d['interval_source']}).", "",
              "| condition | probability | interval |", "|---|---:|---|"]
    ivs = result.intervals
    draws = result.draw_probs is not None and len(result.draw_probs) > 1
    for name, prob in result.ranked():
        lines.append(f"| {name} | {_pct(prob)} | {interval_text(ivs[name], draws)} |")
    if d["other_states"]:
        lines += ["", "**Other readings** (axis states that are not a listed condition):"]
        lines += [f"- {o['axis']}: {o['description']}: {_pct(o['probability'])}, "
                  f"interval {interval_text(o['interval'], draws)}; prior {_pct(o['prior'])}"
                  for o in d["other_states"]]
    for sentence in unassessed_sentences(d):
        lines += ["", sentence]
    lines += _lab_lines(result, d["lab_results"])
    ev = d["evidence"]
    if ev:
        lines += ["", "## What moved the leading probabilities", "",
                  "Log Bayes factor of each result group, symptom or context's prior odds "
                  "(leave-one-out; +1 multiplies the odds by e ≈ 2.7).", ""]
        population = d["population_prior"]
        for name, rows in ev.items():
            if name == "none":
                continue
            lines.append(f"**{name}** ({_pct(result.probabilities[name])}; "
                         f"{_prior_text(result.prior_probabilities[name], population[name])})")
            rows = [r for r in rows if abs(r["log_bayes_factor"]) >= 0.05]
            for r in rows[:6]:
                lines.append(f"- {r['evidence']}: {r['log_bayes_factor']:+.2f} "
                             f"(odds ×{math.exp(max(min(r['log_bayes_factor'], 50), -50)):.3g})")
            if not rows:
                lines.append("- no single result or symptom moved it much: it rests on the "
                             "prior and the combined evidence")
            lines.append("")
    if d["latents"]:
        lines += ["## Axis function (latent quantities)", "",
                  "| axis | quantity | estimate | interval | measured |", "|---|---|---:|---|---|"]
        for lat in d["latents"]:
            lo, hi = lat["fold_change_interval"]
            lines.append(f"| {lat['axis']} | {lat['label']} | ×{lat['fold_change']:.2f} | "
                         f"×{lo:.2f} – ×{hi:.2f} | {'yes' if lat['measured'] else 'no'} |")
        lines.append("")
        lines.append("Fold change relative to a healthy person's typical level.")
    if d.get("nuts"):
        lines += _nuts_lines(d["nuts"])
    nxt, targets = _next_tests(result)
    if nxt:
        from neb_bayes.next_test import target_reason_text

        lines += ["", "## What to test next", "",
                  "Ranked by expected information gain on the conditions in question "
                  "(preposterior analysis over each test's predictive distribution):", ""]
        lines += [f"- `{t['condition']}` {_pct(t['probability'])}: {target_reason_text(t)}"
                  for t in targets]
        lines += ["", "| rank | test | expected gain (bits) | would move |",
                  "|---:|---|---:|---|"]
        for row in nxt:
            moves = "; ".join(_move_text(c) for c in row.get("conditions", []))
            if row.get("listed_for"):
                moves += (" (best test for the raised suspicion of "
                          f"{', '.join(row['listed_for'])})")
            lines.append(f"| {row['rank']} | {row['label']} | "
                         f"{row['expected_information_gain_bits']:.3f} | {moves} |")
        lines += ["", "Would move: the probability now → where it lands for 80 % of the "
                  "test's results (10th–90th percentile), then how often it would reach a "
                  "decision level (1, 10, 50, 90, 99 %) beyond that range."]
    lines += ["", "## Accounted for", ""]
    lines += [f"- {a['text']}" for a in d["accounted_for"]] or ["- nothing beyond the defaults"]
    if d.get("suspect_results"):
        lines += ["", "## Results to check", ""]
        lines += [f"- {r['text']}" for r in d["suspect_results"]]
    lines += ["", "## Not used", ""]
    lines += [f"- `{n['item']}`: {n['reason']}" for n in d["not_used"]] or ["- everything given was used"]
    if d["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in d["warnings"]]
    lines += ["", "## Provenance", "", _provenance_line(d["provenance"]), ""]
    return "\n".join(lines)


def _provenance_line(prov: dict) -> str:
    """Package, prior set (name, tables' fingerprint, parameter digest; for a fitted set its
    base, cohort and whether it was saved despite failed checks) and method."""
    digest = prov.get("prior_set_parameter_digest")
    ident = f"fingerprint `{prov['prior_set_fingerprint']}`" + (
        f", parameters `{digest}`" if digest else "")
    text = (f"neb_bayes {prov['neb_bayes_version']}, prior set `{prov['prior_set']}` "
            f"{prov['prior_set_version']} ({ident})")
    if prov.get("draws_kind") == "fit":
        text += (f", fitted from `{prov.get('prior_set_base', prov['prior_set'])}` to cohort "
                 f"`{prov.get('draws_cohort_hash', '?')}` (n = {prov.get('draws_cohort_n', '?')})")
        if int(prov.get("draws_forced") or 0):
            failed = prov.get("draws_threshold_failures") or "convergence checks"
            text += f", saved with --force although its checks failed ({failed})"
    return f"{text}; {prov['method']}."
