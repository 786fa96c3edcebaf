"""The result of inference on one case: probabilities, intervals, axis states, latents, and
the evidence behind them; exported as a plain dict (the JSON report) or as xarray objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from neb_bayes import config
from neb_bayes.case.model import Case
from neb_bayes.evidence import Evidence
from neb_bayes.inference.exact import ExactPosterior, results_beyond_states
from neb_bayes.intervals import equal_tailed
from neb_bayes.model.compiled import CompiledModel

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return float(np.log(p / (1 - p)))


def _flag_label(flag: str) -> str:
    from neb_bayes.context import flag_table

    info = flag_table().get(flag)
    return info.label if info is not None else flag


def _flag_items(ev: Evidence, flag: str) -> list[str]:
    """The case fields a context flag was recognised from (or implied by)."""
    from neb_bayes.context import flag_table

    table = flag_table()
    recognised = ev.context.recognised if ev.context is not None else []
    items = [r["item"] for r in recognised
             if r["flag"] == flag or flag in getattr(table.get(r["flag"]), "implies", ())]
    return list(dict.fromkeys(items)) or ["patient"]


def _odds_text(rows: list[dict]) -> str:
    """Prevalence modifier rows as text: ``prior odds axis: state ×odds, …``, or a row's own
    ``text`` where it has one (a row that picks the phase of a healthy state says so)."""
    return "; ".join(row["text"] if row.get("text") else
                     f"prior odds {row['axis']}: " + ", ".join(
                         f"{st} ×{odds:g}" for st, odds in row["odds"].items())
                     for row in rows)


def _pct_text(p: float) -> str:
    from neb_bayes.report.format import fine_pct

    return fine_pct(p)


def _evidence_label(model: CompiledModel, case: Case, group: dict, ev: Evidence) -> dict:
    if group["kind"] == "context":
        flag = group["flag"]
        return {"evidence": f"{_flag_label(flag)} ({_odds_text(group['modifiers'])})",
                "kind": "context", "items": _flag_items(ev, flag), "flag": flag}
    if group["kind"] == "symptom":
        sym = model.symptoms[group["symptom"]]
        return {"evidence": f"symptom {sym} {group['status']}", "kind": "symptom",
                "items": [f"symptoms.{group['status']}"], "symptom": sym}
    ch = model.channels[group["channel"]]
    items = [f"measurements[{i}]" for i in group["sources"]]
    specimen = f" ({ch.specimens[0]})" if ch.specimens and ch.analyte == "cortisol" else ""
    n = len(items)
    label = f"{_analyte_name(ch.analyte)}{specimen}" + (f" x{n}" if n > 1 else "")
    return {"evidence": label, "kind": "measurement", "items": items, "analyte": ch.analyte}


def _analyte_name(analyte_id: str) -> str:
    try:
        from neb_bayes.vocab import analytes

        a = analytes().get(analyte_id)
        return a.name if a is not None else analyte_id
    except Exception:  # vocabulary is optional for labels
        return analyte_id


#: ``--method nuts``: a sampled latent mean agrees with the exact one within this many Monte
#: Carlo standard errors plus this absolute tolerance (log scale; combinations not sampled)
NUTS_AGREE_SE, NUTS_AGREE_ABS = 4.0, 0.02


def _nuts_problems(row: dict) -> list[str]:
    """Why a NUTS state combination's chains are weak (empty when they are not)."""
    out = []
    if not row["r_hat_max"] <= config.NUTS_RHAT_MAX:
        out.append(f"R-hat {row['r_hat_max']:.3f} > {config.NUTS_RHAT_MAX:g}")
    if not row["ess_bulk_min"] >= config.NUTS_ESS_MIN:
        out.append(f"bulk ESS {row['ess_bulk_min']:.0f} < {config.NUTS_ESS_MIN:g}")
    if row["divergences"]:
        out.append(f"{row['divergences']} divergent transitions")
    return out


def _states_text(states: str) -> str:
    from neb_bayes.report.format import states_text

    return states_text(states)


@dataclass
class Result:
    """Posterior for one case.

    Attributes
    ----------
    probabilities
        Posterior probability of every condition id and of ``"none"``.
    intervals
        Equal-tailed credible interval (probability :data:`neb_bayes.config.INTERVAL_PROB`)
        of each probability, from the prior set's parameter draws; a single point when the
        prior set has no draws.
    """

    case: Case
    evidence: Evidence
    model: CompiledModel
    exact: ExactPosterior
    draw_probs: np.ndarray | None = None       # (n_draws, n_conditions + 1)
    draw_states: np.ndarray | None = None      # (n_draws, sum of the axes' states)
    latents: list[dict] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    interval_prob: float = config.INTERVAL_PROB
    nuts: Any = None                             # DataTree from --method nuts
    #: the model with every state the patient's sex allows (``model`` may also leave out the
    #: states the context rules out, e.g. the phases of a cycle), for priors compared across
    #: contexts; None: ``model``
    prior_model: CompiledModel | None = None

    @property
    def _prior_model(self) -> CompiledModel:
        return self.model if self.prior_model is None else self.prior_model

    # -- probabilities ---------------------------------------------------------------------
    @property
    def condition_ids(self) -> tuple[str, ...]:
        return self.model.conditions

    @property
    def probabilities(self) -> dict[str, float]:
        p = dict(zip(self.condition_ids, map(float, self.exact.condition_probs), strict=True))
        p["none"] = float(self.exact.none_prob)
        return p

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        names = [*self.condition_ids, "none"]
        if self.draw_probs is None or len(self.draw_probs) < 2:
            return {k: (v, v) for k, v in self.probabilities.items()}
        lo, hi = equal_tailed(self.draw_probs, self.interval_prob)
        return {n: (float(a), float(b)) for n, a, b in zip(names, lo, hi, strict=True)}

    def ranked(self) -> list[tuple[str, float]]:
        """Conditions (and ``none``) by decreasing probability."""
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])

    @property
    def axis_states(self) -> dict[str, dict[str, dict[str, float]]]:
        out = {}
        for ai, ax in enumerate(self.model.axes):
            out[ax.name] = {
                st: {"probability": float(self.exact.marginals[ai][si]),
                     "prior": float(self.exact.prior_marginals[ai][si])}
                for si, st in enumerate(ax.states)
            }
        return out

    @property
    def unassessed_axes(self) -> list[str]:
        """Axes with no usable result: their probabilities are essentially prior (and symptoms)."""
        measured = {self.model.axes[b.axis].name for b in self.evidence.blocks}
        return [a.name for a in self.model.axes if a.latents and a.name not in measured]

    # -- explanation ----------------------------------------------------------------------
    @property
    def prior_probabilities(self) -> dict[str, float]:
        """Prior probability of every condition (and ``none``) for this patient's stratum."""
        names = [*self.condition_ids, "none"]
        return dict(zip(names, map(float, self.exact.prior_condition_probs), strict=True))

    @property
    def population_prior_probabilities(self) -> dict[str, float]:
        """Prior probability of every condition (and ``none``) for this patient's sex and age
        before any context (medications, illness, pregnancy) changed the prior odds; equal
        to :attr:`prior_probabilities` when no context did."""
        from neb_bayes.inference.exact import prior_summary
        from neb_bayes.model.prior import without_flags

        names = [*self.condition_ids, "none"]
        _, probs = prior_summary(self._prior_model, without_flags(self.evidence.covariates))
        return dict(zip(names, map(float, probs), strict=True))

    def context_priors(self) -> list[dict]:
        """Each context flag that changed prior odds (``prevalence`` modifiers with a
        ``flag``): its rows, the axes they act on, and what it did to each condition's prior
        (that flag alone left out → with it), as "accounted for" entries.  A flag whose rows
        leave every condition's prior as it was for this patient (e.g. odds on a man's state
        in a woman) is not listed."""
        from neb_bayes.inference.exact import prior_summary
        from neb_bayes.model.prior import flag_modifiers, without_flags

        cov = self.evidence.covariates
        names = [*self.condition_ids, "none"]
        _, with_all = prior_summary(self._prior_model, cov)
        out = []
        for flag, rows in flag_modifiers(self._prior_model, cov).items():
            _, without = prior_summary(self._prior_model, without_flags(cov, {flag}))
            if (np.allclose(with_all, without, rtol=1e-6, atol=1e-12)
                    and not any(row.get("text") for row in rows)):
                continue  # its rows concern states this patient cannot have: nothing done
            moved = sorted(((abs(_logit(a) - _logit(b)), n, b, a) for n, a, b
                            in zip(names, with_all, without, strict=True)
                            if n != "none" and abs(_logit(a) - _logit(b)) >= 0.01), reverse=True)
            did = ", ".join(f"{n} {_pct_text(b)} → {_pct_text(a)}"
                            for d, n, b, a in moved[:3] if d >= 0.1)
            read = self._states_opened(flag, rows)
            out.append({
                "flag": flag, "kind": "prior_odds",
                "text": f"{_flag_label(flag)}: {_odds_text(rows)}"
                        + (f" (prior {did})" if did else "")
                        + (f"; the results read (if healthy): {read}" if read else ""),
                "items": _flag_items(self.evidence, flag),
                "axes": list(dict.fromkeys(row["axis"] for row in rows)),
                "prior_change": {n: [round(float(b), 6), round(float(a), 6)]
                                 for _, n, b, a in moved},
            })
        return out

    def _states_opened(self, flag: str, rows: list[dict]) -> str:
        """Where a flag's rows share a healthy state out among states the flag opens (the
        phases of a cycle not written): the posterior share of each, given that state is the
        one (e.g. ``follicular phase 0.1 %, ovulatory phase (mid-cycle peak) 99.9 %, ...``);
        empty otherwise."""
        parts = []
        for name in dict.fromkeys(row["axis"] for row in rows):
            ai = self.model.axis_index(name)
            ax = self.model.axes[ai]
            named = {st for row in rows if row["axis"] == name for st in row["odds"]}
            idx = [i for i, st in enumerate(ax.states)
                   if st in named or (ax.only_with and ax.only_with[i]
                                      and flag in ax.only_with[i])]
            if len(idx) < 2:
                continue
            p = np.asarray(self.exact.marginals[ai])[idx]
            if p.sum() <= 0:
                continue
            p = p / p.sum()
            parts.append(", ".join(f"{ax.descriptions.get(ax.states[i], ax.states[i])} "
                                   f"{_pct_text(float(q))}" for i, q in zip(idx, p, strict=True)))
        return "; ".join(parts)

    def explained_conditions(self, threshold: float = config.LEADING_THRESHOLD) -> list[str]:
        """Conditions worth explaining: likely ones, and ones the evidence or the context's
        prior odds moved a lot."""
        post, prior = self.probabilities, self.prior_probabilities
        population = self.population_prior_probabilities
        out = []
        for name in [*self.condition_ids, "none"]:
            p, q = post[name], prior[name]
            shift = max(abs(_logit(p) - _logit(q)), abs(_logit(p) - _logit(population[name])))
            moved = shift >= 2.0 and p >= 0.005
            if p >= threshold or moved:
                out.append(name)
        return out

    def contributions(self, threshold: float = config.LEADING_THRESHOLD) -> dict[str, list[dict]]:
        """For each condition worth explaining (:meth:`explained_conditions`): each evidence
        group's log Bayes factor.

        The log Bayes factor of a group is how much the log odds of the condition changed
        because of that group, all other evidence held (leave-one-group-out).  Positive
        values moved the probability up.
        """
        if self.exact.log_bf is None:
            return {}
        names = [*self.condition_ids, "none"]
        out: dict[str, list[dict]] = {}
        labels = [_evidence_label(self.model, self.case, g, self.evidence)
                  for g in self.exact.groups]
        keep = set(self.explained_conditions(threshold))
        for ci, name in enumerate(names):
            if name not in keep:
                continue
            rows = []
            for gi, lab in enumerate(labels):
                lbf = float(self.exact.log_bf[gi, ci])
                if abs(lbf) >= 0.01:
                    rows.append({**lab, "log_bayes_factor": round(lbf, 4),
                                 "direction": "for" if lbf > 0 else "against"})
            out[name] = sorted(rows, key=lambda r: -abs(r["log_bayes_factor"]))
        return out

    def other_states(self, threshold: float = config.OTHER_STATE_THRESHOLD) -> list[dict]:
        """Axis states that are neither normal nor a reported condition but probable for this
        case (e.g. macroprolactinaemia; low T3 without thyroid disease): the condition table
        alone would hide what the engine concluded about that axis.  Highest first."""
        out = []
        first = np.cumsum([0] + [ax.n_states for ax in self.model.axes])
        for ai, ax in enumerate(self.model.axes):
            for si in np.flatnonzero(ax.other):
                p = float(self.exact.marginals[ai][si])
                if p < threshold:
                    continue
                st = ax.states[si]
                out.append({"axis": ax.name, "state": st, "probability": round(p, 6),
                            "interval": [round(x, 6) for x in self._state_interval(
                                first[ai] + si, p)],
                            "prior": round(float(self.exact.prior_marginals[ai][si]), 6),
                            "description": ax.descriptions.get(st, st)})
        return sorted(out, key=lambda r: -r["probability"])

    def _state_interval(self, column: int, p: float) -> tuple[float, float]:
        """The interval of one axis state's probability over the parameter draws (its column
        in :attr:`draw_states`); a point without draws, as :attr:`intervals`."""
        states = self.draw_states
        if states is None or len(states) < 2 or states.shape[1] != sum(
                ax.n_states for ax in self.model.axes):
            return (p, p)
        lo, hi = equal_tailed(states[:, [column]], self.interval_prob)
        return float(lo[0]), float(hi[0])

    def suspect_results(self, threshold: float = config.SUSPECT_RESULT_THRESHOLD,
                        z_min: float = config.BEYOND_STATES_Z) -> list[dict]:
        """Results to check, highest probability of being wrong first.

        ``kind`` ``"wrong_result"``: results that fit the rest of the case so badly that they
        are likely wrong, each with its posterior probability of being the gross error of its
        axis (model: at most one per axis, a sample mix-up, ``gross_error`` in the prior
        set); the probabilities above already allow for it, and a repeat sample settles it.
        ``"beyond_every_state"``: results further than ``z_min`` standard deviations from
        every state the patient can be in
        (:func:`~neb_bayes.inference.exact.results_beyond_states`): read as the nearest state,
        but a value that far out may have a cause the model does not include.
        """
        wrong = {g["source"]: g["probability"] for g in self.exact.gross_errors}
        out = []
        for source, p in wrong.items():
            if p < threshold:
                continue
            m = self.case.measurements[source]
            out.append({
                "measurement": source, "analyte": m.analyte, "kind": "wrong_result",
                "probability": round(p, 4),
                "text": f"{m.analyte} (measurements[{m.index}]) does not fit the other "
                        f"results: probability {p:.2f} that it is a wrong result "
                        "(sample mix-up or interference); consider repeating it",
            })
        listed = {r["measurement"] for r in out}
        for far in results_beyond_states(self.model, self.evidence, z_min):
            if far["source"] in listed:
                continue
            m = self.case.measurements[far["source"]]
            p = wrong.get(far["source"], 0.0)
            side = "above" if far["z"] > 0 else "below"
            out.append({
                "measurement": far["source"], "analyte": m.analyte, "kind": "beyond_every_state",
                "probability": round(p, 4),
                "text": f"{m.analyte} (measurements[{m.index}]) lies beyond the range of every "
                        f"state the model has for this patient ({abs(far['z']):.1f} SD {side} "
                        f"the nearest, {far['state']}): read as that state, but a value this "
                        "far out may have a cause the model does not include; consider "
                        "repeating it and looking for such a cause",
            })
        return sorted(out, key=lambda r: -r["probability"])

    # -- export -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON report (shared/spec/conditions.md), plain Python types only; besides the
        spec's fields, ``lab_results`` echoes every result read, as given and in the model's
        unit, with the engine's flags (:func:`neb_bayes.report.results.lab_results`)."""
        from neb_bayes.report.results import lab_results

        probs, ivs = self.probabilities, self.intervals
        conds = {
            c: {"probability": round(probs[c], 6), "interval": [round(x, 6) for x in ivs[c]]}
            for c in self.condition_ids
        }
        notes = [n.__dict__ for n in self.evidence.not_used]
        nuts = self._nuts_summary() if self.nuts is not None else None
        return {
            "report_format": config.REPORT_FORMAT,
            "case_id": self.case.id,
            "conditions": conds,
            "none": {"probability": round(probs["none"], 6),
                     "interval": [round(x, 6) for x in ivs["none"]]},
            "interval_kind": config.INTERVAL_KIND,
            "interval_prob": self.interval_prob,
            "interval_source": (
                f"{len(self.draw_probs)} parameter draws of the prior set"
                if self.draw_probs is not None and len(self.draw_probs) > 1
                else "point parameter values (prior set has no draws): interval shows no "
                "parameter uncertainty"
            ),
            "ranked": [{"condition": k, "probability": round(v, 6)} for k, v in self.ranked()],
            "axes": self.axis_states,
            "other_states": self.other_states(),
            "unassessed_axes": self.unassessed_axes,
            "latents": self.latents,
            "evidence": self.contributions(),
            "population_prior": {k: round(v, 6)
                                 for k, v in self.population_prior_probabilities.items()},
            "accounted_for": list(self.evidence.adjustments) + self.context_priors(),
            "suspect_results": self.suspect_results(),
            "lab_results": lab_results(self),
            "not_used": notes,
            "warnings": list(self.evidence.warnings) + (nuts["warnings"] if nuts else []),
            "log_evidence": self.exact.log_evidence,
            "disclaimer": config.DISCLAIMER,
            "provenance": self.provenance,
            **({"nuts": nuts} if nuts is not None else {}),
        }

    def _nuts_summary(self) -> dict[str, Any]:
        """The ``--method nuts`` block: each sampled state combination with its diagnostics
        (``weak`` where R-hat or bulk ESS is past :data:`~neb_bayes.config.NUTS_RHAT_MAX` /
        :data:`~neb_bayes.config.NUTS_ESS_MIN`, or a chain diverged), the sampled latents
        beside the exact engine's, and the warnings the report shows."""
        from neb_bayes.inference.nuts import nuts_latent_summary

        combos, warnings = [], []
        for node in self.nuts.subtree:
            ds = node.to_dataset()
            if "z" not in ds:
                continue
            row = {k: ds.attrs[k] for k in ("axis", "states", "exact_weight",
                                            "r_hat_max", "ess_bulk_min", "divergences")}
            row["problems"] = _nuts_problems(row)
            row["weak"] = bool(row["problems"])
            combos.append(row)
            if row["weak"]:
                warnings.append(
                    f"NUTS: {row['axis']} given {_states_text(row['states'])} (exact weight "
                    f"{_pct_text(row['exact_weight'])}): {'; '.join(row['problems'])}; its "
                    "latent draws are unreliable")
        exact = {(r["axis"], r["latent"]): r for r in self.latents}
        latents = []
        for row in nuts_latent_summary(self.nuts):
            ref = exact.get((row["axis"], row["latent"]))
            if ref is not None:
                diff = row["log_mean"] - ref["log_mean"]
                row.update(exact_log_mean=ref["log_mean"], difference=diff,
                           agrees=bool(abs(diff) <= NUTS_AGREE_SE * row["mcse"] + NUTS_AGREE_ABS))
                row["label"] = ref.get("label", row["latent"])
                if not row["agrees"]:
                    warnings.append(
                        f"NUTS: {row['axis']} {row['label']}: sampled log mean differs from the "
                        f"exact one by {diff:+.3f} (Monte Carlo SE {row['mcse']:.3f})")
            latents.append(row)
        agree = [r["agrees"] for r in latents if "agrees" in r]
        return {"method": self.nuts.attrs.get("method", ""), "state_combinations": combos,
                "latents": latents, "agrees_with_exact": bool(agree) and all(agree),
                "warnings": warnings,
                "thresholds": {"r_hat_max": config.NUTS_RHAT_MAX,
                               "ess_bulk_min": config.NUTS_ESS_MIN}}

    def to_dataset(self) -> xr.Dataset:
        """The result as an :class:`xarray.Dataset` that ``to_netcdf`` can write.

        Returns
        -------
        xarray.Dataset
            Coordinates ``condition`` (every condition id and ``"none"``), ``<axis>_state``
            per axis, ``latent`` (``axis.latent``) and ``bound`` (``"lower"``, ``"upper"``).
            Variables:

            - ``probability`` (condition) and ``probability_interval`` (condition, bound): the
              posterior and its credible interval (attrs ``interval_prob``, ``interval_kind``),
              as the JSON report's ``conditions``/``none``; ``probability_draws`` (draw,
              condition) where the prior set has draws;
            - ``state_<axis>`` and ``state_<axis>_interval`` (``<axis>_state``, bound): each
              axis state's posterior probability and its interval over the draws (the JSON
              report's ``other_states`` intervals, for every state); ``state_<axis>_prior``
              its prior;
            - ``latent_mean``, ``latent_lower``, ``latent_upper`` (latent): the latents' log
              means and intervals;
            - with ``--method nuts`` (``method="nuts"``), the JSON report's ``nuts`` block:
              per sampled state combination (dimension ``nuts_combination``) ``nuts_axis``,
              ``nuts_states``, ``nuts_exact_weight``, ``nuts_r_hat_max``,
              ``nuts_ess_bulk_min``, ``nuts_divergences``, ``nuts_weak`` and
              ``nuts_problems`` (text, ``"; "``-joined); per sampled latent (dimension
              ``nuts_latent``, ``axis.latent``) ``nuts_latent_log_mean``, ``_log_sd``,
              ``_mcse``, ``_mass_sampled``, ``_exact_log_mean``, ``_difference`` (NaN where
              the exact engine has no such latent) and ``_agrees``; attrs ``nuts_method``,
              ``nuts_agrees_with_exact`` (0/1), ``nuts_r_hat_max_threshold``,
              ``nuts_ess_bulk_min_threshold`` and ``nuts_warnings`` (newline-joined).

            Attrs are strings and numbers only (netCDF-legal): ``case_id``, the interval's
            kind and probability, ``warnings`` (newline-joined) and each provenance entry as
            ``provenance_<key>`` (text).
        """
        import xarray as xr

        names = [*self.condition_ids, "none"]
        probs, ivs = self.probabilities, self.intervals
        ds = xr.Dataset(
            {"probability": ("condition", np.array([probs[n] for n in names])),
             "probability_interval": (("condition", "bound"),
                                      np.array([ivs[n] for n in names], dtype=float))},
            coords={"condition": names, "bound": ["lower", "upper"]},
            attrs={"case_id": str(self.case.id), "interval_prob": self.interval_prob,
                   "interval_kind": config.INTERVAL_KIND,
                   "warnings": "\n".join(self.evidence.warnings), **{
                       f"provenance_{k}": str(v) for k, v in self.provenance.items()}},
        )
        if self.draw_probs is not None:
            ds["probability_draws"] = (("draw", "condition"), self.draw_probs)
        first = np.cumsum([0] + [ax.n_states for ax in self.model.axes])
        for ai, ax in enumerate(self.model.axes):
            dim, marg = f"{ax.name}_state", self.exact.marginals[ai]
            ds = ds.assign_coords({dim: list(ax.states)})
            ds[f"state_{ax.name}"] = (dim, np.asarray(marg, dtype=float))
            ds[f"state_{ax.name}_interval"] = ((dim, "bound"), np.array(
                [self._state_interval(first[ai] + si, float(marg[si]))
                 for si in range(ax.n_states)], dtype=float))
            ds[f"state_{ax.name}_prior"] = (dim, np.asarray(self.exact.prior_marginals[ai],
                                                            dtype=float))
        if self.latents:
            ds["latent_mean"] = ("latent", [x["log_mean"] for x in self.latents])
            ds["latent_lower"] = ("latent", [x["log_interval"][0] for x in self.latents])
            ds["latent_upper"] = ("latent", [x["log_interval"][1] for x in self.latents])
            ds = ds.assign_coords(latent=[f"{x['axis']}.{x['latent']}" for x in self.latents])
        if self.nuts is not None:
            ds = _with_nuts(ds, self._nuts_summary())
        return ds


def _with_nuts(ds: xr.Dataset, nuts: dict[str, Any]) -> xr.Dataset:
    """``ds`` with the ``--method nuts`` summary (:meth:`Result._nuts_summary`) as variables on
    the ``nuts_combination`` and ``nuts_latent`` dimensions and netCDF-legal attrs."""
    combos, latents = nuts["state_combinations"], nuts["latents"]
    cdim, ldim = "nuts_combination", "nuts_latent"
    out = ds.assign({
        "nuts_axis": (cdim, [str(c["axis"]) for c in combos]),
        "nuts_states": (cdim, [str(c["states"]) for c in combos]),
        "nuts_exact_weight": (cdim, np.array([c["exact_weight"] for c in combos], dtype=float)),
        "nuts_r_hat_max": (cdim, np.array([c["r_hat_max"] for c in combos], dtype=float)),
        "nuts_ess_bulk_min": (cdim, np.array([c["ess_bulk_min"] for c in combos], dtype=float)),
        "nuts_divergences": (cdim, np.array([c["divergences"] for c in combos], dtype=np.int64)),
        "nuts_weak": (cdim, np.array([c["weak"] for c in combos], dtype=bool)),
        "nuts_problems": (cdim, ["; ".join(c["problems"]) for c in combos]),
    })
    out = out.assign_coords({ldim: [f"{r['axis']}.{r['latent']}" for r in latents]})
    for key in ("log_mean", "log_sd", "mcse", "mass_sampled", "exact_log_mean", "difference"):
        out[f"nuts_latent_{key}"] = (ldim, np.array([r.get(key, np.nan) for r in latents],
                                                    dtype=float))
    out["nuts_latent_agrees"] = (ldim, np.array([bool(r.get("agrees", False))
                                                 for r in latents], dtype=bool))
    out.attrs.update({
        "nuts_method": str(nuts["method"]),
        "nuts_agrees_with_exact": int(nuts["agrees_with_exact"]),
        "nuts_r_hat_max_threshold": float(nuts["thresholds"]["r_hat_max"]),
        "nuts_ess_bulk_min_threshold": float(nuts["thresholds"]["ess_bulk_min"]),
        "nuts_warnings": "\n".join(nuts["warnings"]),
    })
    return out
