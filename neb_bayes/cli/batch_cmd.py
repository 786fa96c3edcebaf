"""``neb-bayes batch``: probabilities for many cases, streamed, resumable and parallel.

See :mod:`neb_bayes.batch` for the machinery, :mod:`neb_bayes.batch.csv_cases` for the
wide CSV column convention and :mod:`neb_bayes.batch.long_csv` for the long one (both
repeated in the command's ``--help``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from neb_bayes.cli import EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_PRIORS

__all__ = ["batch"]

HELP = """Posterior probabilities for many cases: INPUT... are JSON Lines files (one case per
line), directories of case files (.yaml/.yml/.json, and .jsonl/.csv files in them), single
case files, or CSV files: wide (one row per case) or long (one row per result; a case's rows
consecutive, as a file sorted by id has them).

Input is streamed in chunks of --chunk-size cases; memory stays bounded.  Each finished chunk
is written at once (DIR/chunks/), so a run that stops (crash, kill, power cut) is resumed by
running the same command again: finished chunks are skipped.  A different input, chunk size,
prior set or format in the same DIR is refused (exit 2) unless --restart.

\b
Output in --out DIR:
  results.<format>        one row per case, input order: item, case_id, source,
                          one probability column per condition and none, top_condition,
                          top_probability, n_results_used, n_not_used, n_warnings,
                          unassessed_axes, then <condition>_lo/_hi interval bounds
  errors.jsonl            each bad case: source, id and every error with its field path
  reports/<case_id>.json  full JSON report per case (--per-case-reports), as `neb-bayes
                          report` writes it: intervals over all the prior set's draws,
                          whatever --draws; an id that is not a safe file name gets
                          <id, unsafe characters as _>-<hash>.json
                          (neb_bayes.batch.store.report_name gives it)
  manifest.json           inputs, chunk size, prior set fingerprint, version, status
  chunks/                 per-chunk tables and error lists (what a resume reuses)

Bad cases never stop the batch.  Results do not depend on --jobs or --chunk-size.

\b
Wide CSV columns (first row = header):
  id, sex, age, pregnant (1/0), gestational_week, menopausal_status, menstrual_phase, bmi
  medications, context, symptoms_present, symptoms_absent, symptoms_unknown:
      items separated by ';'
  sym_<symptom>: 1 present, 0 absent, empty unknown
  <analyte>_<unit>[__<specimen>][__t<HHMM>][__d<day>]: one lab result, with / in the
      unit written _per_ and % written pct; the unit is the last _-separated word,
      extended leftwards over each _per_; modifiers after double underscores:
      specimen, collection time, day of a repeated measure.  Examples:
      TSH_mIU_per_L, FT4_pmol_per_L, free_T4_ng_per_dL, HbA1c_pct,
      cortisol_ug_per_dL__serum__t0800, cortisol_nmol_per_L__saliva__t2300,
      TSH_mIU_per_L__d30
  cells: a number, a censored value like <0.01 or >1000, or empty (not measured);
  other columns are listed as not used when filled.

\b
Long CSV (one result per row; a header with analyte and value columns):
  analyte, value (a number or <0.01 / >1000), unit (mIU/L, pmol/L, %), and optionally
      specimen, collected (08:40 or 2024-03-01T08:40), day
  id (required) and the wide form's case columns (sex, age, ..., sym_<symptom>):
      filled on one row of the case or on all, equal where filled twice
  a case's rows are consecutive: a new id starts the next case

\b
Examples:
  neb-bayes batch cases.jsonl --out run1 --jobs 8
  neb-bayes batch labs.csv more_cases/ --out run2 --format csv --per-case-reports
  neb-bayes batch big.jsonl --out run3 --scheduler tcp://10.0.0.5:8786

With --scheduler, the Dask workers need neb_bayes installed and the prior set file at the
same path (they load the model themselves); they never need the input or output files.
"""


@click.command("batch", help=HELP, short_help="Probabilities for many cases (streamed, "
               "resumable, parallel).")
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (created; rerun with the same DIR to resume).")
@click.option("--priors", type=click.Path(exists=True, dir_okay=False),
              help="Prior set file (default: the shipped literature prior set).")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=1, show_default=True,
              help="Local processes inferring chunks: this one and N-1 workers "
                   "(0: one per CPU core).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run the chunks on an existing Dask distributed cluster "
                   "(tcp://HOST:PORT) instead of local processes.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "jsonl"]),
              default="parquet", show_default=True, help="Table format of the results.")
@click.option("--per-case-reports", is_flag=True,
              help="Also write each case's full JSON report (slower).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None,
              help="Cases per chunk (the unit of work, of writing and of resuming) "
                   "[default: 2000; 1000 with --draws or --per-case-reports].")
@click.option("--draws", "n_draws", type=click.IntRange(min=-1), default=0, show_default=True,
              help="Parameter draws of the prior set used for each probability's interval "
                   "(<cond>_lo/_hi columns): 0 = point probabilities only (fastest), -1 = all.")
@click.option("--restart", is_flag=True,
              help="Discard an earlier batch in DIR instead of resuming it.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: when standard error is a terminal; otherwise "
                   "a log line every --log-every chunks).")
@click.option("--log-every", type=click.IntRange(min=1), default=10, show_default=True,
              help="Chunks between progress log lines (without a progress bar).")
def batch(inputs: tuple[Path, ...], out: Path, priors: str | None, jobs: int,
          scheduler: str | None, fmt: str, per_case_reports: bool, chunk_size: int | None,
          n_draws: int, restart: bool, progress: bool | None, log_every: int) -> None:
    """Run ``neb-bayes batch`` (the help text is :data:`HELP`)."""
    import os

    from neb_bayes.allocator import arrow_pool_from_libc

    arrow_pool_from_libc()            # (before pyarrow is imported)
    from neb_bayes.batch.runner import BatchFailed, BatchOptions, BatchUsageError, run_batch
    from neb_bayes.batch.store import BatchLocked, OutputUnusable
    from neb_bayes.model.spec import PriorSetError

    opts = BatchOptions(
        inputs=[str(p) for p in inputs], out=str(out), priors=priors,
        jobs=jobs or (os.cpu_count() or 1), scheduler=scheduler, fmt=fmt,
        per_case_reports=per_case_reports, chunk_size=chunk_size, restart=restart,
        draws=n_draws,
        progress=progress, log_every=log_every,
    )
    try:
        summary = run_batch(opts, echo=lambda text: click.echo(text, err=True))
    except (BatchUsageError, BatchLocked, OutputUnusable) as exc:
        click.echo(f"neb-bayes batch: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    except PriorSetError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_PRIORS)
    except KeyboardInterrupt:
        click.echo("neb-bayes batch: interrupted; finished chunks are kept: rerun the same "
                   "command to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BatchFailed as exc:
        from concurrent.futures import BrokenExecutor

        from neb_bayes.cli import bug_text

        click.echo(f"neb-bayes batch: {exc}", err=True)
        if exc.__cause__ is not None and not isinstance(exc.__cause__, BrokenExecutor):
            click.echo(f"  cause: {bug_text(exc.__cause__)}", err=True)
        sys.exit(EXIT_INTERNAL)
    click.echo(summary.text(), err=True)
    if not scheduler:
        from neb_bayes.cli import done_cleanly

        done_cleanly()        # (a Dask client's own exit is left to run)
