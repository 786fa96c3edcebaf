"""``neb-bayes priors ...``: build, fit, inspect and compare prior sets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from neb_bayes.cli import EXIT_INPUT, EXIT_PRIORS


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
    from neb_bayes.api import package_version
    from neb_bayes.model.compiled import load_model
    from neb_bayes.model.params import literature_draws, save_draws
    from neb_bayes.model.spec import DEFAULT_PRIOR_FILE

    model = load_model(tables)
    path = Path(out) if out else Path(tables or DEFAULT_PRIOR_FILE).with_suffix(".nc")
    draws = literature_draws(model, n_draws, seed)
    save_draws(path, draws, model, {"kind": "literature", "neb_bayes_version": package_version(),
                                    "model_fingerprint": model.spec.fingerprint})
    click.echo(f"wrote {n_draws} literature draws to {path}")


@priors.command("show")
@click.argument("prior_set", type=click.Path(exists=True, dir_okay=False))
def show_cmd(prior_set: str) -> None:
    """Print a prior set's provenance and parameter summaries."""
    from neb_bayes.cli.priors_summary import summary_text
    from neb_bayes.priorset import load_prior_set

    click.echo(summary_text(load_prior_set(prior_set)))


@priors.command("validate")
@click.argument("prior_set", type=click.Path(exists=True, dir_okay=False))
def validate_cmd(prior_set: str) -> None:
    """Check a prior set: tables, sources, draws (finite, matching shapes). Exit 3 if invalid."""
    from neb_bayes.cli.priors_summary import validate
    from neb_bayes.model.spec import PriorSetError

    try:
        problems = validate(prior_set)
    except PriorSetError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_PRIORS)
    if problems:
        for p in problems:
            click.echo(f"  - {p}", err=True)
        sys.exit(EXIT_PRIORS)
    click.echo(f"{prior_set}: valid")


@priors.command("compare")
@click.argument("a", type=click.Path(exists=True, dir_okay=False))
@click.argument("b", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def compare_cmd(a: str, b: str, as_json: bool) -> None:
    """Compare two prior sets parameter by parameter (means and 90 % intervals)."""
    from neb_bayes.cli.priors_summary import compare

    rows = compare(a, b)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'parameter':52s} {'A mean':>10s} {'B mean':>10s} {'shift/sdA':>10s}")
    for r in rows:
        click.echo(f"{r['parameter']:52s} {r['a_mean']:10.4g} {r['b_mean']:10.4g} "
                   f"{r['z']:10.2f}")


_ = EXIT_INPUT
