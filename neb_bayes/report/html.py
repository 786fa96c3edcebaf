"""A self-contained HTML report for people: one file, inline CSS, figures embedded.

The file needs no network access: no scripts, no web fonts, no external style sheets; every
figure is drawn by matplotlib (:mod:`neb_bayes.report.plots`, imported only when an HTML report
is rendered) and embedded as a base64 ``data:image/svg+xml`` image.  Every text that comes from
the case file is escaped.  The report holds at least what the Markdown report holds, plus the
lab results against their reference intervals, the evidence waterfalls, the latent axis
function, what to test next and a plain-language summary.
"""

from __future__ import annotations

import base64
import html
import logging
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from neb_bayes import config
from neb_bayes.posterior import Result
from neb_bayes.report.format import (
    context_prior_axes,
    fine_pct,
    interval_text,
    nuts_verdict,
    states_text,
    unassessed_sentences,
)
from neb_bayes.report.format import pct as _pct
from neb_bayes.report.results import analyte_info as _analyte
from neb_bayes.report.results import hhmm as _hhmm
from neb_bayes.report.results import num_text as _num
from neb_bayes.report.results import range_flag as _flag
from neb_bayes.report.results import reference_interval as _ri_for
from neb_bayes.report.results import reported_text as _reported
from neb_bayes.report.results import used_sources as _used_sources
from neb_bayes.report.results import value_text as _value_text
from neb_bayes.report.results import vocab_ri as _vocab_ri

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from neb_bayes.case.model import Measurement

__all__ = ["CONDITION_NAMES", "render_html", "summary_text"]

log = logging.getLogger("neb_bayes")

CONDITION_NAMES: dict[str, str] = {
    "primary_hypothyroidism": "primary hypothyroidism",
    "subclinical_hypothyroidism": "subclinical hypothyroidism",
    "central_hypothyroidism": "central hypothyroidism",
    "hyperthyroidism_overt": "overt hyperthyroidism",
    "hyperthyroidism_subclinical": "subclinical hyperthyroidism",
    "nonthyroidal_illness": "non-thyroidal illness",
    "cushings_acth_dependent": "ACTH-dependent Cushing's syndrome",
    "cushings_acth_independent": "ACTH-independent Cushing's syndrome",
    "adrenal_insufficiency_primary": "primary adrenal insufficiency",
    "adrenal_insufficiency_secondary": "secondary adrenal insufficiency",
    "hypogonadism_primary_male": "primary hypogonadism (male)",
    "hypogonadism_secondary_male": "secondary hypogonadism (male)",
    "hypogonadism_primary_female": "primary ovarian insufficiency",
    "hypogonadism_secondary_female": "secondary hypogonadism (female)",
    "pcos": "polycystic ovary syndrome",
    "hyperprolactinemia": "hyperprolactinaemia",
    "insulin_resistance": "insulin resistance",
    "prediabetes": "prediabetes",
    "diabetes": "diabetes",
    "none": "none of the listed conditions",
}
"""Plain-language names of the condition ids (the ids stay in every table)."""

MAX_WATERFALL_STEPS = 8
"""At most this many single items per waterfall; the rest are one bar."""

MIN_WATERFALL_MOVE = 0.1
"""A leading condition whose log odds moved less than this gets a line, not a waterfall."""

CSS = """
:root { --ink:#1d2733; --muted:#5b6673; --line:#dde3ea; --accent:#1f4e79; --warn:#8a5a00;
        --warnbg:#fff6e0; --bg:#ffffff; --zebra:#f6f8fa; --for:#2e7d32; --against:#c62828; }
* { box-sizing: border-box; }
body { margin:0; background:#eef1f4; color:var(--ink);
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans",
       "Liberation Sans", sans-serif; }
main { max-width: 960px; margin: 24px auto; background: var(--bg); padding: 28px 40px 36px;
       border-radius: 6px; box-shadow: 0 1px 4px rgba(0,0,0,.08); }
h1 { font-size: 1.55rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 34px 0 10px; padding-bottom: 4px;
     border-bottom: 2px solid var(--line); }
h3 { font-size: 1.02rem; margin: 22px 0 6px; }
p { margin: 8px 0; }
td code { white-space: nowrap; overflow-wrap: normal; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace;
       font-size: .88em; background: var(--zebra); padding: 0 3px; border-radius: 3px;
       overflow-wrap: anywhere; }
.sub { color: var(--muted); margin: 0 0 14px; }
.disclaimer { background: var(--warnbg); border-left: 5px solid #e0a800; padding: 10px 14px;
              margin: 14px 0; color: #4a3a00; font-weight: 500; }
.summary { background: #eef5fb; border-left: 5px solid var(--accent); padding: 12px 16px;
           margin: 14px 0; font-size: 1.02rem; }
.facts { display: grid; grid-template-columns: 1fr 1fr; gap: 4px 28px; margin: 8px 0; }
.facts div { padding: 3px 0; border-bottom: 1px solid var(--line); display: grid;
             grid-template-columns: 9.5em 1fr; gap: 0 10px; }
.facts b { color: var(--muted); font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 12px; font-size: .9rem; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: var(--zebra); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfcfd; }
tr.unused td { color: var(--muted); }
.flag-high, .flag-low { color: var(--against); font-weight: 600; }
.for { color: var(--for); } .against { color: var(--against); }
figure { margin: 10px 0 16px; text-align: center; }
figure img { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: .85rem; margin-top: 2px; }
ul { margin: 6px 0 10px; padding-left: 22px; }
li { margin: 2px 0; }
.note { color: var(--muted); font-size: .88rem; }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--accent); font-weight: 600; }
footer { margin-top: 34px; color: var(--muted); font-size: .85rem; }
@media print { body { background: #fff; } main { box-shadow: none; margin: 0; max-width: none; } }
"""


# --------------------------------------------------------------------------------------------
# small formatting helpers
def _e(text: Any) -> str:
    """Escape any text for HTML (case texts are never trusted)."""
    return html.escape(str(text), quote=True)


def _odds(lbf: float) -> str:
    x = math.exp(min(abs(lbf), 50.0))
    sign = "×" if lbf >= 0 else "÷"
    return f"{sign}{x:.3g}" if x < 1e4 else f"{sign}{x:.1e}"


def _name(cond: str) -> str:
    return CONDITION_NAMES.get(cond, cond.replace("_", " "))


def _img(fig: Figure, alt: str, caption: str) -> str:
    from neb_bayes.report.plots import to_svg

    data = base64.b64encode(to_svg(fig)).decode("ascii")
    return (f'<figure><img alt="{_e(alt)}" src="data:image/svg+xml;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _list(items: Iterable[str], empty: str) -> str:
    rows = [f"<li>{x}</li>" for x in items]
    return "<ul>" + ("".join(rows) if rows else f"<li>{_e(empty)}</li>") + "</ul>"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], num: Sequence[int] = (),
           row_attrs: Sequence[str] | None = None) -> str:
    """An HTML table; cells are already-escaped HTML."""
    th = "".join(f'<th class="num">{h}</th>' if i in num else f"<th>{h}</th>"
                 for i, h in enumerate(head))
    body = []
    for ri, row in enumerate(rows):
        attrs = row_attrs[ri] if row_attrs else ""
        tds = "".join(f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>"
                      for i, c in enumerate(row))
        body.append(f"<tr{attrs}>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# --------------------------------------------------------------------------------------------
# lab results
def _short(aid: str) -> str:
    a = _analyte(aid)
    if a is None:
        return aid
    name = a.name
    if name.endswith(")") and "(" in name:
        abbr = name[name.rindex("(") + 1:-1]
        if " " not in abbr and len(abbr) <= 10 and any(ch.isupper() for ch in abbr):
            return abbr
    return name if len(name) <= 26 else name[:25] + "…"


def _lab_section(result: Result) -> str:
    from neb_bayes.report.plots import ResultRow, results_plot

    case = result.case
    patient = case.patient
    used = _used_sources(result)
    ms = sorted(case.measurements, key=lambda m: (m.day, m.index))
    if not ms:
        return ("<h2>Laboratory results</h2><p>No laboratory result could be read from this case: "
                "the probabilities rest on the prior, the patient's stratum and the symptoms.</p>")
    rows, attrs, plot_rows = [], [], []
    for m in ms:
        a = _analyte(m.analyte)
        unit = a.canonical_unit if a is not None else ""
        ri, source = _ri_for(m, patient)
        flag, level = _flag(m, ri)
        cls = f"flag-{level}" if level else ""
        ri_text = f"{_num(ri[0])} – {_num(ri[1])} {unit}" if ri is not None else "—"
        name = a.name if a is not None else m.analyte
        extra = []
        if m.method:
            extra.append(_e(m.method))
        if m.note:
            extra.append(f"<i>{_e(m.note)}</i>")
        is_used = m.index in used
        rows.append([
            f"<code>measurements[{m.index}]</code>",
            f"{_e(name)}<br><span class='note'>{_e(m.specimen)}</span>",
            _e(_reported(m)),
            _e(_value_text(m, unit)) + (" <span class='note'>(censored)</span>"
                                        if m.censor != "none" else ""),
            f"{_e(ri_text)}<br><span class='note'>{_e(source)}</span>",
            f"<span class='{cls}'>{_e(flag)}</span>",
            (f"{_e(_hhmm(m.hour))}, " if m.hour is not None else "") + f"day {_e(_num(m.day))}",
            ("used" if is_used else "not used") + ("<br>" + "<br>".join(extra) if extra else ""),
        ])
        attrs.append(f' id="measurements-{m.index}"' + ("" if is_used else ' class="unused"'))
        when = [x for x in (m.specimen if m.analyte == "cortisol" else "",
                            _hhmm(m.hour) if m.hour is not None else "",
                            f"day {_num(m.day)}" if any(x.day for x in ms) else "") if x]
        plot_rows.append(ResultRow(
            label=f"{_short(m.analyte)}" + (f" ({', '.join(when)})" if when else ""),
            value=m.value, censor=m.censor, ri=ri, value_text=_value_text(m, unit),
            used=is_used,
        ))
    out = ["<h2>Laboratory results</h2>",
           "<p>Each result as reported and in the engine's canonical unit, against the reporting "
           "lab's own reference interval when given, else the vocabulary's default adult "
           "interval. A censored result (&lt; or &gt; a limit) enters the model as the "
           "probability of lying beyond that limit.</p>",
           _table(["item", "analyte", "as reported", "canonical value", "reference interval",
                   "flag", "collected", "use"], rows, row_attrs=attrs)]
    out.append(_img(results_plot(plot_rows), "Lab results against reference intervals",
                    "Each result's position relative to its reference interval (green band; "
                    "log scale within each row). Hollow carets: censored results at their limit, "
                    "pointing to where the true value lies; grey: not used."))
    out.append(_series_section(result, ms))
    out.append(_cortisol_section(result, ms))
    return "".join(out)


def _series_section(result: Result, ms: Sequence[Measurement]) -> str:
    from neb_bayes.report.plots import SeriesPoint, time_series_plot

    groups: dict[tuple[str, str], list[Measurement]] = {}
    for m in ms:
        groups.setdefault((m.analyte, m.specimen), []).append(m)
    series = []
    for (aid, spec), items in groups.items():
        if len({m.day for m in items}) < 2:
            continue
        items = sorted(items, key=lambda m: (m.day, m.hour or 0.0))
        a = _analyte(aid)
        ri = next((m.reference_interval for m in items if m.reference_interval), None)
        ri = ri or _vocab_ri(aid, spec, result.case.patient)
        series.append((f"{_short(aid)} ({spec})", a.canonical_unit if a else "", ri,
                       [SeriesPoint(m.day, m.value, m.censor) for m in items]))
    if not series:
        return ""
    return ("<h3>Repeated results over time</h3>"
            "<p>Repeats of one analyte read together: within-person day-to-day variation links "
            "them to one patient-level state, so they are not independent evidence.</p>"
            + _img(time_series_plot(series), "Repeated results by day",
                   "Repeated results by day (log scale), with the reference interval as a band."))


def _cortisol_section(result: Result, ms: Sequence[Measurement]) -> str:
    from neb_bayes.model.compiled import state_result_moments
    from neb_bayes.report.plots import CortisolPoint, cortisol_day_curve

    model = result.model
    cort = [m for m in ms if m.analyte == "cortisol" and m.hour is not None]
    if len({round(m.hour, 2) for m in cort}) < 2:  # type: ignore[arg-type]
        return ""
    points, healthy = [], {}
    hours = np.linspace(0.0, 24.0, 97)
    try:
        ai = model.axis_index("adrenal")
        ax = model.axes[ai]
        normal = ax.states.index("normal")
    except ValueError:
        return ""
    for m in cort:
        ci = model.channel_for("cortisol", m.specimen)
        if ci is None:
            continue
        ch = model.channels[ci]
        points.append(CortisolPoint(m.hour, m.value / math.exp(ch.log_median), m.specimen,  # type: ignore[arg-type]
                                    m.censor, f"{_reported(m)}, {_hhmm(m.hour)}"))
        key = "saliva" if m.specimen == "saliva" else "serum"
        if key not in healthy and ch.diurnal in model.profiles:
            ph, po = model.profiles[ch.diurnal]
            offs = np.interp(hours, ph, po, period=24.0) * ch.diurnal_scale
            sd = math.sqrt(state_result_moments(model, ci, normal)[1])
            healthy[key] = (hours.tolist(), offs.tolist(), sd)
    if len(points) < 2:
        return ""
    return ("<h3>Cortisol by time of day</h3>"
            "<p>Cortisol has a strong daily rhythm (high on waking, lowest around midnight): "
            "each result is shown at its collection time against a healthy person's rhythm "
            "in the same specimen.</p>"
            + _img(cortisol_day_curve(points, healthy), "Cortisol day curve",
                   "Cortisol results relative to the healthy 08:00 median of their specimen "
                   "(log scale); dashed: healthy median rhythm, shaded: 95 % of healthy people."))


# --------------------------------------------------------------------------------------------
# plain-language summary
def _strength(p: float) -> str:
    if p >= 0.99:
        return "very likely"
    if p >= 0.9:
        return "likely"
    if p >= 0.5:
        return "more likely than not"
    if p >= 0.2:
        return "possible"
    return "unlikely but not excluded"


def summary_text(result: Result, next_rows: Sequence[dict] | None = None) -> str:
    """A plain-language paragraph generated from the numbers (no case text in it).

    Parameters
    ----------
    result
        The case's posterior.
    next_rows
        Output of :func:`neb_bayes.next_test.next_tests`, if computed.

    Returns
    -------
    str
        Unescaped plain text.
    """
    probs = result.probabilities
    ivs = result.intervals
    ranked = result.ranked()
    parts: list[str] = []
    likely = [(c, p) for c, p in ranked if c != "none" and p >= 0.5]
    mentioned: set[str] = {c for c, _ in likely}
    if likely:
        first = []
        for c, p in likely:
            iv = ivs[c]
            how = _pct(p)
            if iv[1] - iv[0] > 1e-9:
                how += f", {result.interval_prob * 100:g} % interval {interval_text(iv)}"
            first.append(f"{_name(c)} is {_strength(p)} ({how})")
        parts.append("; ".join(first)[0].upper() + "; ".join(first)[1:] + ".")
    else:
        p_none = probs["none"]
        top_c, top_p = next((c, p) for c, p in ranked if c != "none")
        if p_none >= 0.5:
            parts.append(f"No listed condition is likely: the probability that none is present is "
                         f"{_pct(p_none)}.")
        else:
            parts.append("No single condition stands out: the evidence is spread over several "
                         "possibilities.")
        if top_p >= 0.05:
            parts.append(f"The most probable condition is {_name(top_c)} at {_pct(top_p)}.")
            mentioned.add(top_c)
    model = result.model
    assessed = [model.axes[a].name for a in sorted({b.axis for b in result.evidence.blocks})]
    covered = set(mentioned)
    clear_axes: list[str] = []
    for axis in assessed:
        conds = [(c, probs[c]) for ci, c in enumerate(model.conditions)
                 if model.axes[int(model.cond_axis[ci])].name == axis]
        if not conds or any(c in covered for c, _ in conds):
            continue
        c_top, p_top = max(conds, key=lambda cp: cp[1])
        if p_top < 0.05:
            clear_axes.append(axis)
        else:
            parts.append(f"On the {axis} axis, {_name(c_top)} is {_strength(p_top)} "
                         f"({_pct(p_top)}).")
        covered.update(c for c, _ in conds)
    if clear_axes:
        names = (", ".join(clear_axes[:-1]) + " and " + clear_axes[-1]
                 if len(clear_axes) > 1 else clear_axes[0])
        noun = "axes" if len(clear_axes) > 1 else "axis"
        parts.append(f"The results on the {names} {noun} "
                     "argue against every condition there (each below 5 %).")
    possible = [(c, p) for c, p in ranked
                if c != "none" and 0.2 <= p < 0.5 and c not in covered]
    if possible and likely:
        parts.append("Also possible: " + ", ".join(f"{_name(c)} ({_pct(p)})" for c, p in possible)
                     + ".")
    lead = likely[0][0] if likely else next((c for c, _ in ranked if c != "none"), None)
    contrib = result.contributions().get(lead or "", [])
    pro = [r for r in contrib if r["log_bayes_factor"] >= 0.1][:2]
    con = [r for r in contrib if r["log_bayes_factor"] <= -0.1][:2]
    if lead and (likely or probs[lead] >= 0.05):
        if pro:
            parts.append("Most in favour of " + _name(lead) + ": " + ", ".join(
                f"{r['evidence']} (odds {_odds(r['log_bayes_factor'])})" for r in pro) + ".")
        if con:
            parts.append(f"Against {_name(lead)}: " + ", ".join(
                f"{r['evidence']} (odds {_odds(r['log_bayes_factor'])})" for r in con) + ".")
        if not pro and not con:
            parts.append(f"No single result or symptom moved {_name(lead)} much: it rests on the "
                         "prior and the evidence taken together.")
    moved_axes = context_prior_axes({"accounted_for": result.context_priors()})
    unassessed = [a for a in result.unassessed_axes if a not in moved_axes]
    if unassessed:
        noun = "axes" if len(unassessed) > 1 else "axis"
        parts.append(f"There is no usable result on the {', '.join(unassessed)} {noun}: "
                     "probabilities there reflect how common each condition is (and the "
                     "symptoms), not a finding in this patient.")
    for axis in (a for a in result.unassessed_axes if a in moved_axes):
        parts.append(f"There is no usable result on the {axis} axis: probabilities there rest "
                     f"on the prior as changed by this patient's context "
                     f"({', '.join(moved_axes[axis])}), not on a result.")
    n_not = len(result.evidence.not_used)
    n_warn = len(result.evidence.warnings)
    if n_not or n_warn:
        bits = []
        if n_not:
            bits.append(f"{n_not} item{'s' if n_not > 1 else ''} of the case could not be used")
        if n_warn:
            bits.append(f"{n_warn} warning{'s' if n_warn > 1 else ''} need attention")
        parts.append(" and ".join(bits).capitalize() + " (listed below).")
    if next_rows:
        best = next_rows[0]
        parts.append(f"The most informative next test would be {best['label']} (expected "
                     f"information gain {best['expected_information_gain_bits']:.2f} bits).")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# sections
def _patient_section(result: Result) -> str:
    case = result.case
    p = case.patient
    ev = result.evidence
    sex = {"F": "female", "M": "male"}.get(p.sex or "", "not given")
    preg = "not given" if p.pregnant is None else ("yes" if p.pregnant else "no")
    if p.pregnant and p.gestational_week is not None:
        preg += f" (week {_num(p.gestational_week)})"
    meds = [_e(m.name if m.name else m.raw) for m in p.medications]
    days = sorted({m.day for m in case.measurements})
    times = sorted({_hhmm(m.hour) for m in case.measurements if m.hour is not None})
    facts = [
        ("Case id", f"<code>{_e(case.id)}</code>"),
        ("Sex", _e(sex)),
        ("Age", _e(f"{_num(p.age)} y") if p.age is not None else "not given"),
        ("Pregnant", _e(preg)),
        ("Menopausal status", _e(p.menopausal_status or "not given")),
        ("Menstrual phase", _e(p.menstrual_phase or "not given")),
        ("BMI", _e(f"{_num(p.bmi)} kg/m²") if p.bmi is not None else "not given"),
        ("Medications", ", ".join(meds) if meds else "none listed"),
        ("Context", "; ".join(_e(c) for c in p.context) if p.context else "none given"),
        ("Results", _e(f"{len(case.measurements)} read, {ev.n_measurements} used")),
        ("Sampling days", _e(", ".join(_num(d) for d in days)) if days else "—"),
        ("Collection times", _e(", ".join(times)) if times else "not given"),
        ("Symptoms present", _e(", ".join(sorted(case.symptoms.present)) or "none reported")),
        ("Symptoms absent", _e(", ".join(sorted(case.symptoms.absent)) or "none reported")),
    ]
    if case.symptoms.unknown:
        facts.append(("Symptoms unknown", _e(", ".join(sorted(case.symptoms.unknown)))))
    cells = "".join(f"<div><b>{_e(k)}</b><span>{v}</span></div>" for k, v in facts)
    return f"<h2>Patient and samples</h2><div class='facts'>{cells}</div>"


def _probability_section(result: Result, d: dict) -> str:
    from neb_bayes.report.plots import probability_plot

    ivs = result.intervals
    ranked = result.ranked()
    prior = result.prior_probabilities
    kind = f"{d['interval_prob'] * 100:g} % {d['interval_kind']} interval"
    draws = result.draw_probs is not None and len(result.draw_probs) > 1
    rows = [[f"<code>{_e(c)}</code>", _e(_name(c)), _e(_pct(p)), _e(interval_text(ivs[c], draws)),
             _e(_pct(prior[c]))] for c, p in ranked]
    fig = probability_plot([(c, p, ivs[c]) for c, p in ranked], kind)
    out = ["<h2>Condition probabilities</h2>",
           f"<p>Posterior probability of each condition, most probable first. Intervals are "
           f"{_e(kind)}s ({_e(d['interval_source'])}). Conditions on different axes are not "
           f"exclusive: a patient can have several.</p>",
           _img(fig, "Condition probabilities with intervals",
                f"Posterior probabilities; whiskers: {kind} over the prior set's parameter "
                "uncertainty."),
           _table(["condition id", "condition", "probability", "interval", "prior"], rows,
                  num=(2, 4))]
    if d.get("other_states"):
        out.append("<p><strong>Other readings</strong> (axis states that are not a listed "
                   "condition):</p>" + _list(
                       (f"{_e(o['axis'])}: {_e(o['description'])}: {_e(_pct(o['probability']))}, "
                        f"interval {_e(interval_text(o['interval'], draws))}; "
                        f"prior {_e(_pct(o['prior']))}" for o in d["other_states"]), ""))
    out += [f"<p class='note'>{_e(sentence)}</p>" for sentence in unassessed_sentences(d)]
    axes = d.get("axes") or {}
    if axes:
        arows = []
        for ax, states in axes.items():
            for st, v in states.items():
                arows.append([_e(ax), _e(st), _e(_pct(v["probability"])), _e(_pct(v["prior"]))])
        out.append("<details><summary>State probabilities per axis</summary>"
                   + _table(["axis", "state", "posterior", "prior"], arows, num=(2, 3))
                   + "</details>")
    return "".join(out)


def _latent_section(d: dict) -> str:
    from neb_bayes.report.plots import latent_plot

    lats = d.get("latents") or []
    if not lats:
        return ""
    rows = []
    for lat in lats:
        lo, hi = lat["fold_change_interval"]
        rows.append([_e(lat["axis"]), _e(lat["label"]), _e(f"×{lat['fold_change']:.2f}"),
                     _e(f"×{lo:.2f} – ×{hi:.2f}"), "yes" if lat["measured"] else "no (prior)"])
    return ("<h2>Axis function</h2><p>The model's continuous quantities behind the results, "
            "as fold change relative to a healthy person's typical level, with "
            f"{_e(format(d['interval_prob'] * 100, 'g'))} % intervals.</p>"
            + _img(latent_plot(lats), "Latent axis quantities",
                   "Posterior fold change of each axis quantity (log scale); dashed line: a "
                   "healthy person's typical level; grey: no result on that axis.")
            + _table(["axis", "quantity", "estimate", "interval", "measured"], rows, num=(2, 3)))


def _nuts_section(d: dict) -> str:
    """The ``--method nuts`` section (empty without it): sampled latents against the exact
    ones, and each state combination's chain diagnostics, weak chains marked."""
    nuts = d.get("nuts")
    if not nuts:
        return ""
    th = nuts["thresholds"]
    verdict = _e(nuts_verdict(nuts))
    lrows = [[_e(r["axis"]), _e(r.get("label", r["latent"])), _e(f"{r['log_mean']:+.3f}"),
              _e(f"{r['exact_log_mean']:+.3f}") if "exact_log_mean" in r else "—",
              _e(f"{r['difference']:+.3f}") if "difference" in r else "—",
              _e(f"{r['mcse']:.3f}")] for r in nuts["latents"]]
    crows = [[_e(c["axis"]), _e(states_text(c["states"])), _e(fine_pct(c["exact_weight"])),
              _e(f"{c['r_hat_max']:.3f}"), _e(f"{c['ess_bulk_min']:.0f}"), _e(c["divergences"]),
              (f"<span class='against'>weak: {_e('; '.join(c['problems']))}</span>"
               if c["weak"] else "ok")] for c in nuts["state_combinations"]]
    return ("<h2>NUTS check (--method nuts)</h2>"
            f"<p>{_e(nuts['method'])}. State probabilities above are exact; the sampled latent "
            f"means {verdict}.</p>"
            + _table(["axis", "quantity", "NUTS log mean", "exact log mean", "difference",
                      "MC SE"], lrows, num=(2, 3, 4, 5))
            + f"<p>Chains per state combination (weak: R-hat &gt; {_e(format(th['r_hat_max'], 'g'))}"
            f", bulk ESS &lt; {_e(format(th['ess_bulk_min'], 'g'))} or divergences):</p>"
            + _table(["axis", "states", "exact weight", "R-hat", "bulk ESS", "divergences",
                      "chains"], crows, num=(2, 3, 4, 5)))


def _adjustment_items(a: dict) -> list[str]:
    items = a.get("items")
    if items is None:
        items = [a["item"]] if a.get("item") else []
    return [str(i) for i in items]


def _evidence_section(result: Result, d: dict) -> str:
    from neb_bayes.report.plots import WaterfallStep, waterfall_plot

    contrib = d.get("evidence") or {}
    probs = result.probabilities
    # the bars start before context: a context's prior odds are one of the steps
    prior = result.population_prior_probabilities
    adjustments = list(d.get("accounted_for") or [])
    out = ["<h2>What moved the leading probabilities</h2>",
           "<p>For each condition at or above "
           f"{_e(_pct(config.LEADING_THRESHOLD))}, or moved far from its prior: how each result "
           "group, symptom or context's prior odds (medications, illness, pregnancy) changed "
           "its log odds (log Bayes factor, leave-one-out: the change when that item alone is "
           "removed; +1 multiplies the odds by e ≈ 2.7), from the prior for the patient's sex "
           "and age. The hatched bar is what the items do "
           "together beyond their single effects (redundant or reinforcing evidence), so the "
           "bars end at the posterior.</p>"]
    shown = 0
    order = sorted((c for c in contrib if c != "none"), key=lambda c: -probs[c])
    quiet: list[str] = []
    for cond in order:
        rows = contrib[cond]
        p, p0 = probs[cond], prior[cond]
        moved = abs(_logit(p) - _logit(p0))
        biggest = max((abs(r["log_bayes_factor"]) for r in rows), default=0.0)
        if moved < MIN_WATERFALL_MOVE and biggest < MIN_WATERFALL_MOVE:
            small = "; ".join(f"{r['evidence']} {r['log_bayes_factor']:+.2f}" for r in rows
                              if abs(r["log_bayes_factor"]) >= 0.05)
            quiet.append(f"{_e(_name(cond))} <code>{_e(cond)}</code>: {_e(fine_pct(p0))} "
                         f"before evidence → {_e(_pct(p))}"
                         + (f" <span class='note'>({_e(small)})</span>" if small else ""))
            continue
        shown += 1
        steps = [WaterfallStep(r["evidence"], r["log_bayes_factor"])
                 for r in rows[:MAX_WATERFALL_STEPS]]
        rest = rows[MAX_WATERFALL_STEPS:]
        if rest:
            steps.append(WaterfallStep(f"{len(rest)} more items",
                                       sum(r["log_bayes_factor"] for r in rest), "rest"))
        joint = _logit(p) - _logit(p0) - sum(r["log_bayes_factor"] for r in rows)
        if abs(joint) >= 0.01:
            steps.append(WaterfallStep("items together", joint, "joint"))
        out.append(f"<h3 id='evidence-{_e(cond)}'>{_e(_name(cond))} <code>{_e(cond)}</code>: "
                   f"{_e(fine_pct(p0))} before evidence → {_e(_pct(p))}</h3>")
        out.append(_img(waterfall_plot(p0, p, steps), f"Evidence waterfall for {cond}",
                        "Green: for, red: against, grey: prior/joint; top axis in probability."))
        trs = []
        for r in rows:
            lbf = r["log_bayes_factor"]
            trs.append([_e(r["evidence"]),
                        f"<span class='{'for' if lbf > 0 else 'against'}'>{lbf:+.2f}</span>",
                        _e(_odds(lbf)), _e(", ".join(r.get("items", [])))])
        if trs:
            out.append(_table(["evidence", "log Bayes factor", "odds", "items"], trs, num=(1, 2)))
        else:
            out.append("<p class='note'>No single result or symptom moved it: it rests on the "
                       "prior and the evidence taken together.</p>")
        items = {i for r in rows for i in r.get("items", [])}
        mine = [a for a in adjustments if items.intersection(_adjustment_items(a))]
        if mine:
            out.append("<p><b>Accounted for in this evidence:</b></p>" + _list(
                (f"{_e(a.get('text', ''))} <span class='note'>("
                 f"{_e(', '.join(_adjustment_items(a)))})</span>" for a in mine), ""))
    if quiet:
        out.append("<h3>Leading conditions the evidence hardly moved</h3>"
                   "<p>Their probability is essentially the prior for this patient's stratum "
                   f"(log odds moved by less than {MIN_WATERFALL_MOVE:g}):</p>"
                   + _list(quiet, ""))
    if not shown and not quiet:
        out.append("<p>No condition reached the threshold.</p>")
    return "".join(out)


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def _next_test_section(rows: list[dict] | None, error: str | None, plan: Any = None) -> str:
    out = ["<h2>What to test next</h2>"]
    if error is not None:
        out.append(f"<p class='note'>Could not be computed: {_e(error)}</p>")
        return "".join(out)
    if plan is not None and plan.targets:
        from neb_bayes.next_test import target_reason_text

        out.append(f"<p>Conditions in question ({_e(f'{plan.entropy_bits:.2f}')} bits of "
                   "uncertainty in all), and why each is:</p>")
        out.append(_list((f"<code>{_e(t['condition'])}</code> {_e(_pct(t['probability']))}: "
                          f"{_e(target_reason_text(t))}" for t in plan.target_reasons), ""))
    out.append("<p>Candidate tests ranked by expected information gain: how much, on average "
               "over the results the test could give (predicted by the model from everything "
               "known now), the uncertainty about the conditions in question would fall "
               "(entropy of which of them the patient has, one question per axis, in bits). "
               "A condition is in question when it is uncertain (1 %–99 %) on an axis with "
               "results or moved by the evidence, or when the evidence raised its odds "
               f"{_e(f'{config.RAISED_ODDS_RATIO:g}')}-fold or more over the prior's (and it is "
               f"{_e(_pct(config.RAISED_MIN_PROBABILITY))} or more): a rare condition under raised "
               "suspicion holds few bits, so its best test is listed even when it ranks "
               "lower. "
               "'Likely range' is where the probability would land for 80 % of possible "
               "results; in brackets, how often it would reach a decision level (1, 10, 50, "
               "90, 99 %) beyond that range (a rare condition's rise in a few results). "
               "Relative costs are illustrative.</p>")
    if not rows:
        out.append("<p>No condition on the axes in question is still uncertain (all below 1 % or "
                   "above 99 %) and no rare one is under raised suspicion: no single further "
                   "test is expected to change the picture much.</p>")
        return "".join(out)
    from neb_bayes.next_test import tail_text

    trs = []
    for r in rows:
        moves = "<br>".join(
            f"{_e(c['condition'])}: {_e(_pct(c['probability']))} → "
            f"<span style='white-space:nowrap'>{_e(_pct(c['likely_range'][0]))} – "
            f"{_e(_pct(c['likely_range'][1]))}</span>"
            + (f" <span class='note'>({_e(tail_text(c))})</span>" if tail_text(c) else "")
            for c in r["conditions"]) or "—"
        if r.get("listed_for"):
            moves += ("<br><span class='note'>listed as the best test for the raised suspicion "
                      f"of {_e(', '.join(r['listed_for']))}</span>")
        trs.append([_e(r["rank"]), _e(r["label"]) + f"<br><code>{_e(r['test'])}</code>",
                    _e(r["specimen"]) + (f", {_e(r['collected'])}" if r.get("collected") else ""),
                    _e(r["axis"]), _e(f"{r['expected_information_gain_bits']:.3f}"),
                    _e(f"{r['relative_cost']:g}"), moves])
    out.append(_table(["#", "test", "specimen, time", "axis", "gain (bits)", "relative cost",
                       "would move"], trs, num=(0, 4, 5)))
    if plan is not None and plan.notes:
        out.append(_list((_e(n) for n in plan.notes), ""))
    return "".join(out)


def _provenance_section(d: dict) -> str:
    prov = d.get("provenance") or {}
    rows = [[_e(k), f"<code>{_e(v)}</code>"] for k, v in prov.items()]
    rows.append([_e("report_format"), f"<code>{_e(d.get('report_format'))}</code>"])
    log_ev = float(d.get("log_evidence", 0.0))
    rows.append([_e("log_evidence"), f"<code>{_e(f'{log_ev:.4f}')}</code>"])
    return "<h2>Provenance</h2>" + _table(["field", "value"], rows)


# --------------------------------------------------------------------------------------------
def render_html(result: Result, *, next_test_top: int = 5) -> str:
    """The HTML report of one case: a single self-contained file.

    Parameters
    ----------
    result
        The case's posterior (computed with ``explain=True``).
    next_test_top
        How many next tests to list (0: leave the section out).

    Returns
    -------
    str
        The HTML document.
    """
    d = result.to_dict()
    next_rows: list[dict] | None = None
    next_err: str | None = None
    plan = None
    if next_test_top > 0:
        try:
            from neb_bayes.next_test import plan_next_tests

            plan = plan_next_tests(result)
            next_rows = plan.top(next_test_top)
        except Exception as exc:  # noqa: BLE001 - the report must not fail for this section
            log.warning("next-test ranking failed: %r", exc)
            next_err = repr(exc)
    title = f"neb_bayes report — case {result.case.id}"
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='sub'>Prior set {_e(d['provenance'].get('prior_set', '?'))} "
        f"{_e(d['provenance'].get('prior_set_version', ''))} · neb_bayes "
        f"{_e(d['provenance'].get('neb_bayes_version', '?'))}</p>",
        f"<div class='disclaimer' role='note'>{_e(d['disclaimer'])}</div>",
        f"<h2>Summary</h2><p class='summary'>{_e(summary_text(result, next_rows))}</p>",
        _patient_section(result),
        _probability_section(result, d),
        _evidence_section(result, d),
        _lab_section(result),
        _latent_section(d),
        _nuts_section(d),
    ]
    if next_test_top > 0:
        body.append(_next_test_section(next_rows, next_err, plan))
    acc = d.get("accounted_for") or []
    body.append("<h2>Accounted for</h2>" + _list(
        (f"{_e(a.get('text', ''))} <span class='note'>({_e(', '.join(_adjustment_items(a)))})"
         "</span>" for a in acc), "nothing beyond the defaults"))
    if d.get("suspect_results"):
        body.append("<h2>Results to check</h2>" + _list(
            (_e(r["text"]) for r in d["suspect_results"]), ""))
    body.append("<h2>Not used</h2>" + _list(
        (f"<code>{_e(n['item'])}</code>: {_e(n['reason'])}" for n in d.get("not_used") or []),
        "everything given was used"))
    if d.get("warnings"):
        body.append("<h2>Warnings</h2>" + _list((_e(w) for w in d["warnings"]), ""))
    body.append(_provenance_section(d))
    body.append(f"<footer><div class='disclaimer'>{_e(d['disclaimer'])}</div>"
                f"Generated by neb_bayes {_e(d['provenance'].get('neb_bayes_version', '?'))}; "
                f"method: {_e(d['provenance'].get('method', ''))}.</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(body) + "\n</main>\n</body>\n</html>\n")
