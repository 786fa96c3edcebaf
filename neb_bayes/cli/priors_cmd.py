"""``neb-bayes priors ...``: build, fit, inspect and compare prior sets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from neb_bayes.cli import EXIT_INPUT, EXIT_PRIORS, _load_priors

#: fits expected to take longer than this (seconds) are announced with the
#: expected time (:func:`neb_bayes.fit.expected_fit_seconds`)
ANNOUNCE_FIT_S = 600


def _about(seconds: float) -> str:
    """An expected time as a person reads it: whole minutes under an hour (``15 min``),
    hours to one decimal from there (``2.1 h``)."""
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{max(1, round(seconds / 60))} min"


@click.group()
def priors() -> None:
    """Prior sets: literature draws, PyMC fits to a cohort, inspection and comparison."""


@priors.command("draws")
@click.option("--priors", "tables", type=click.Path(exists=True, dir_okay=False),
              help="Prior set tables (default: priors/default.yaml).")
@click.option("--n", "n_draws", default=1000, show_default=True, help="Number of draws.")
@click.option("--seed", default=20261124, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Default: beside the tables, .nc")
def draws_cmd(tables: str | None, n_draws: int, seed: int, out: str | None) -> None:
    """Draw parameter sets expressing the literature prior set's own uncertainty."""
    from neb_bayes.cli import _load_priors
    from neb_bayes.config import package_version
    from neb_bayes.model.params import literature_draws, save_draws
    from neb_bayes.model.spec import DEFAULT_PRIOR_FILE

    model = _load_priors(tables, tables_only=True)
    path = Path(out) if out else Path(tables or DEFAULT_PRIOR_FILE).with_suffix(".nc")
    draws = literature_draws(model, n_draws, seed)
    save_draws(path, draws, model, {"kind": "literature", "neb_bayes_version": package_version(),
                                    "model_fingerprint": model.spec.fingerprint})
    click.echo(f"wrote {n_draws} literature draws to {path}")


@priors.command("show")
@click.argument("prior_set", type=click.Path(exists=True, dir_okay=False))
def show_cmd(prior_set: str) -> None:
    """Print a prior set's provenance and parameter summaries."""
    from neb_bayes.cli import _load_priors
    from neb_bayes.cli.priors_summary import summary_text

    click.echo(summary_text(_load_priors(prior_set)))


@priors.command("validate")
@click.argument("prior_set", type=click.Path(exists=True, dir_okay=False))
def validate_cmd(prior_set: str) -> None:
    """Check a prior set: tables, sources, draws (readable, matching shapes, every value in
    its parameter's domain). Exit 3 if invalid."""
    from neb_bayes.model.spec import PriorSetError
    from neb_bayes.priorset import load_prior_set

    try:
        # every check runs when a prior set loads (from its files, not the disk cache)
        load_prior_set(prior_set, disk_cache=False)
    except PriorSetError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_PRIORS)
    click.echo(f"{prior_set}: valid")


@priors.command("compare")
@click.argument("a", type=click.Path(exists=True, dir_okay=False))
@click.argument("b", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def compare_cmd(a: str, b: str, as_json: bool) -> None:
    """Compare two prior sets parameter by parameter (means and 90 % intervals), largest
    shifts first, in pooled spreads (a parameter one set held fixed is measured against the
    other's spread)."""
    from neb_bayes.cli import _load_priors
    from neb_bayes.cli.priors_summary import compare, compare_text

    rows = compare(_load_priors(a), _load_priors(b))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(compare_text(rows))


_ = EXIT_INPUT


def _parameter_groups(ctx, param, value: str) -> tuple[str, ...]:
    """``--fit``: comma-separated parameter groups, each known, at least one (in the order
    given, once each)."""
    from neb_bayes.model.params import PARAM_GROUPS

    groups = tuple(dict.fromkeys(g.strip() for g in value.split(",") if g.strip()))
    if not groups:
        raise click.BadParameter(f"name at least one parameter group: {', '.join(PARAM_GROUPS)}")
    unknown = [g for g in groups if g not in PARAM_GROUPS]
    if unknown:
        raise click.BadParameter(f"unknown parameter group(s) {', '.join(map(repr, unknown))}; "
                                 f"choose from {', '.join(PARAM_GROUPS)}")
    return groups


def _prior_widen(ctx, param, value: str) -> float | dict[str, float]:
    """``--prior-widen``: one factor, or ``group=factor`` pairs separated by commas; each a
    number above 0, each group known (:func:`neb_bayes.fit.widen_factors` checks them)."""
    from neb_bayes.fit import widen_factors

    text = value.strip()
    try:
        if "=" not in text:
            widen: float | dict[str, float] = float(text)
        else:
            pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
            widen = {g.strip(): float(f) for g, f in pairs}
    except ValueError:
        raise click.BadParameter("give a number above 0 or group=number pairs, e.g. "
                                 f"prevalence=4; got {value!r}") from None
    if isinstance(widen, dict) and len(widen) != len(pairs):
        raise click.BadParameter("a parameter group is named twice")
    try:
        widen_factors(widen)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return widen


def _out_path(ctx, param, value: str) -> Path:
    """``--out``: a file whose directory exists or can be made (made when the fit is
    saved), checked before anything is read or sampled."""
    import os

    if not value.strip():
        raise click.BadParameter("give a file name")
    path = Path(value)
    if path.is_dir():
        raise click.BadParameter(f"{value} is a directory; give a file name in it")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise click.BadParameter(f"{parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise click.BadParameter(f"cannot write in {parent}")
    return path


#: at most this many cases left out for a repeated id are named one by one
REPEATED_NAMED = 20


def _tell_left_out(read) -> None:
    """Each case of the cohort that cannot be read, with every error and its field path (as
    ``neb-bayes check`` and ``batch``'s ``errors.jsonl`` give them), and the cases left out
    for a repeated id (their sources and ids)."""
    for rec in read.skipped:
        click.echo(f"skipped {rec['source']}: {len(rec['errors'])} error(s)", err=True)
        for e in rec["errors"]:
            column = f" (column {e['column']!r})" if "column" in e else ""
            click.echo(f"  - {e['path']}{column}: {e['message']}", err=True)
    if read.repeated:
        click.echo(f"left out {len(read.repeated)} case(s) whose id an earlier case has (ids "
                   "are unique in a cohort; the first case with an id is fitted, as in "
                   "`neb-bayes batch`):", err=True)
        for source, cid, first in read.repeated[:REPEATED_NAMED]:
            click.echo(f"  - {source}: id {cid} (fitted from {first})", err=True)
        if len(read.repeated) > REPEATED_NAMED:
            click.echo(f"  - and {len(read.repeated) - REPEATED_NAMED} more", err=True)


@priors.command("fit")
@click.argument("cohort", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", required=True, callback=_out_path,
              help="Where to save the fitted prior set (netCDF, e.g. priors/mycohort.nc); a "
                   "missing directory is made.")
@click.option("--priors", "base", type=click.Path(exists=True, dir_okay=False),
              help="Prior set to start from (default: the shipped literature prior set).")
@click.option("--fit", "groups", default="analyte-levels", show_default=True,
              callback=_parameter_groups,
              help="Comma-separated parameter groups to fit: analyte-levels, prevalence, "
                   "symptoms. The rest are held at the starting prior set's values while "
                   "sampling, and the saved set keeps its draws for them (their uncertainty "
                   "stays in reports).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False),
              help="Known states per person (semi-supervised): YAML/JSON mapping case id -> "
                   "{axis: state(s)}, a condition id, or a list of condition ids (the person "
                   "has all of them; 'none': no condition). Checked before the fit: an id not "
                   "in the cohort, an unknown condition, axis or state, or conditions that "
                   "exclude each other stop it (exit 2).")
@click.option("--sampler", type=click.Choice(["nutpie", "pymc"]), default="nutpie",
              show_default=True,
              help="nutpie: chains in threads when the log-density is all compiled code (a "
                   "prevalence fit), else one chain per process (free analyte levels and "
                   "symptom rates are evaluated by Ops that hold Python's GIL). pymc: PyMC's "
                   "own NUTS, chains in processes.")
@click.option("--draws", default=None, type=click.IntRange(min=1),
              help="Draws per chain kept after tuning [default: 1500 with analyte levels or "
                   "symptom rates free (their rare states' parameters mix slowly), 1000 for "
                   "a prevalence-only fit].")
@click.option("--tune", default=None, type=click.IntRange(min=1),
              help="Tuning steps per chain (at least 1: nutpie needs one) [default: 300 "
                   "with nutpie, 1000 with pymc: each sampler's own].")
@click.option("--chains", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--cores", type=click.IntRange(min=1), default=None,
              help="CPU cores the fit may use [default: all this process may run on]. Chains "
                   "run at once up to this number; chains in processes (analyte levels, "
                   "symptom rates) share the cores left over as threads, e.g. 2 chains on 16 "
                   "cores: 8 threads each.")
@click.option("--prior-widen", default="1", show_default=True, callback=_prior_widen,
              metavar="X|GROUP=X,...",
              help="The fitted parameters' prior is the starting prior set's own uncertainty "
                   "(its `uncertainty` table, the spread of its literature draws) times this: "
                   "one factor (2.5), or factors per parameter group (prevalence=4 or "
                   "prevalence=4,analyte-levels=2; the others 1). Above 1 for a cohort whose "
                   "population or laboratories the literature may not describe (a clinic's "
                   "patients: prevalence=4); wider priors let rare states' parameters wander "
                   "and mix more slowly.")
@click.option("--whiten/--no-whiten", default=None,
              help="Sample on coordinates whitened at the posterior's mode: the mode (L-BFGS) "
                   "and the Hessian there are found first, on all --cores, and NUTS then "
                   "samples x = mode + L z with L L' the Hessian's inverse (a dense mass "
                   "matrix; the same posterior). Fewer leapfrog steps per draw where the "
                   "parameters are correlated, as in a large cohort's analyte levels. "
                   "[default: on when analyte levels are free and the cohort has 1,000 "
                   "people or more]")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**64 - 1))
@click.option("--force", is_flag=True, help="Save even if convergence checks fail.")
@click.option("--drop-unsupported", is_flag=True,
              help="Fit without the cases whose --labels name a state the person cannot "
                   "have (one cut from their sex view); they are counted in the provenance. "
                   "Every case's results are used (where the fit's information form does not "
                   "reach, e.g. three censored results on an axis, the exact engine's "
                   "factor).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def fit_cmd(cohort, out, base, groups, labels, sampler, draws, tune, chains, cores,
            prior_widen, whiten, seed, force, drop_unsupported, no_progress) -> None:
    """Fit population parameters to a COHORT with PyMC (NUTS over population parameters;
    per-person states summed out exactly, latents integrated analytically).

    COHORT: JSON Lines of case files, a directory of case files, or a CSV, wide (one row
    per case) or long (one row per result; see `neb-bayes batch --help` for both column
    conventions).  Bad cases are listed with every
    error and skipped; of cases with the same id the first is fitted, the others left out.
    Exit status: 0 saved, 2 unusable cohort, labels or options (checked before anything
    is sampled), 3 invalid prior set, 4 convergence checks failed (not saved to --out: the
    draws are kept beside it as NAME.unconverged.nc; use --force to save anyway).
    """
    from neb_bayes.batch.inputs import InputError
    from neb_bayes.fit import (
        available_cores,
        default_draws,
        default_tune,
        default_whiten,
        expected_fit_seconds,
        fit,
    )
    from neb_bayes.fit_inputs import LabelError, labels_for, read_cohort
    from neb_bayes.inference.pymc_model import UnsupportedEvidence
    from neb_bayes.model.params import save_draws

    ps = _load_priors(base)
    try:
        read = read_cohort(cohort)
    except (InputError, OSError) as exc:
        click.echo(f"cannot read the cohort: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    _tell_left_out(read)
    cases = read.cases
    if not cases:
        click.echo("no usable case in the cohort", err=True)
        sys.exit(EXIT_INPUT)
    group_list = groups
    draws = default_draws(group_list) if draws is None else draws
    tune = default_tune(sampler) if tune is None else tune
    try:
        labs = (labels_for(ps.model, cases, labels, skipped_ids=read.skipped_ids)
                if labels else None)
    except LabelError as exc:
        click.echo(f"cannot fit: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    left_out = (f", {len(read.repeated)} with a repeated id left out" if read.repeated
                else "")
    click.echo(f"cohort: {len(cases)} cases ({len(read.skipped)} skipped{left_out}); "
               f"fitting {', '.join(group_list)} with {sampler} ({chains} chains x {tune} tune "
               f"+ {draws} draws)")

    def announce(n_people: int, exact: dict[str, int]) -> None:
        """Once the cohort is prepared: the expected time of a long fit."""
        n_exact = sum(exact.values())
        expected = expected_fit_seconds(n_people, tune, draws, chains, group_list,
                                        cores=cores or available_cores(),
                                        exact_person_axes=n_exact,
                                        whiten=(default_whiten(group_list, n_people)
                                                if whiten is None else whiten))
        if expected >= ANNOUNCE_FIT_S:
            beyond = (f", {n_exact} of their person-axes by the exact engine"
                      if n_exact and "analyte-levels" in group_list else "")
            click.echo(f"note: expected time about {_about(expected)} for {n_people} "
                       f"people{beyond} with {', '.join(group_list)} free (measured per "
                       "log-density + gradient and per draw on 2 cores; "
                       "docs/performance-history.md). A prevalence fit of 10,000 people takes "
                       "minutes: --fit prevalence", err=True)

    try:
        res = fit(ps.model, cases, groups=group_list, labels=labs, draws=draws, tune=tune,
                  chains=chains, sampler=sampler, seed=seed, progressbar=not no_progress,
                  drop_unsupported=drop_unsupported, on_prepared=announce,
                  base_draws=ps.draws, cores=cores, prior_widen=prior_widen, whiten=whiten)
    except UnsupportedEvidence as exc:
        n = len({cid for cid, _ in exc.cases})
        click.echo(f"cannot fit: {n} of {len(cases)} cases have labels the fit cannot use "
                   f"({exc}). Correct the labels, or rerun with --drop-unsupported to fit "
                   "without these cases.", err=True)
        sys.exit(EXIT_INPUT)
    except ValueError as exc:
        click.echo(f"cannot fit: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    if int(res.attrs["cohort_excluded"]):
        reasons = json.loads(res.attrs["cohort_excluded_reasons"])
        click.echo(f"left out {res.attrs['cohort_excluded']} case(s) the fit cannot use: "
                   + "; ".join(f"{k} ({v})" for k, v in reasons.items()), err=True)
    exact = json.loads(res.attrs["cohort_exact_factors"])
    if exact:
        click.echo("evidence beyond the fit's information form (three or more censored "
                   "results on an axis), its factor the exact engine's: "
                   + "; ".join(f"{k} ({v} {'person' if v == 1 else 'people'})"
                               for k, v in exact.items()))
    d = res.diagnostics
    used = json.loads(res.attrs["sampler_settings"])
    threads = used.get("threads_per_chain", 1)
    click.echo(f"sampled with {used['nuts_library']} (chains in {used['chains_in']}"
               + (f", {threads} threads each" if threads > 1 else "") + ")"
               + _whitening_line(used.get("whitening")))
    click.echo(f"R-hat max {d['r_hat_max']:.4f}; ESS bulk min {d['ess_bulk_min']:.0f}, tail min "
               f"{d['ess_tail_min']:.0f}; divergences {d['divergences']}; BFMI min "
               f"{d['bfmi_min']:.3f}"
               + (f"; chains' median log densities {d['logp_gap']:.1f} apart "
                  f"(standard error {d.get('logp_gap_se', float('nan')):.1f})"
                  if "logp_gap" in d else ""))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(path: Path) -> None:
        # the fitted set's own name (from --out), and whether its checks failed
        save_draws(path, res.draws, ps.model,
                   {**res.attrs, "prior_set_name": out.stem, "forced": int(not res.passed)},
                   sample_stats=res.idata["sample_stats"] if "sample_stats" in res.idata.children
                   else None)

    if not res.passed and not force:
        # a long fit is not lost: its draws are kept beside, under a name that says what
        # they are, and their provenance says the checks failed wherever they are used
        kept = unconverged_path(out)
        save(kept)
        click.echo(f"not saved to {out}: convergence checks failed "
                   f"({res.attrs['threshold_failures']}). The draws are kept in {kept} (its "
                   "provenance says the checks failed): inspect them with `neb-bayes priors "
                   "show`; fit again with more --draws (and --tune), or use that file as it "
                   "is (--priors) or --force to save anyway", err=True)
        sys.exit(4)
    if not res.passed:
        click.echo(f"warning: convergence checks failed ({res.attrs['threshold_failures']}); "
                   "saving anyway (--force): the draws may not represent the posterior, and "
                   "the prior set's provenance says so", err=True)
    save(out)
    click.echo(f"saved {res.draws.n_draws} draws to {out}")
    earlier = unconverged_path(out)
    if earlier.exists():
        click.echo(f"note: {earlier} holds the draws of an earlier fit refused by its "
                   "convergence checks, not this one's", err=True)


def _whitening_line(record) -> str:
    """How a fit's whitening went (its ``sampler_settings``' ``whitening``), for the line
    that says where the chains ran."""
    if isinstance(record, dict) and "failed" in record:
        return (f"; not whitened: {record['failed']} (sampled the model's own coordinates)")
    if isinstance(record, dict):
        return (f", on coordinates whitened at the posterior's mode ({record['evaluations']} "
                f"log-density evaluations, {record['seconds']:.0f} s)")
    return ""


def unconverged_path(out: Path) -> Path:
    """Where `priors fit` keeps the draws of a fit whose convergence checks failed (without
    --force): beside ``out``, ``NAME.unconverged.nc`` for ``NAME.nc``."""
    return out.with_name(f"{out.stem}.unconverged{out.suffix or '.nc'}")
