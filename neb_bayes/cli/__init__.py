"""The ``neb-bayes`` command line: a thin layer over :mod:`neb_bayes.api`.

Exit status
-----------
0  success
1  unexpected internal error (a bug: please report it), or a batch stopped by a failed
   chunk or worker (rerun it to resume)
2  invalid input: a case file with errors (all listed, with field paths), or bad usage
3  invalid prior set file
4  a fit's convergence diagnostics failed (``priors fit`` without ``--force``)
130  interrupted (Ctrl-C; a batch resumes when rerun)
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from neb_bayes.files import atomic_text

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_PRIORS = 0, 1, 2, 3
#: 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
EXIT_INTERRUPTED = 130

log = logging.getLogger("neb_bayes")


def _fail_case(exc) -> None:
    click.echo(str(exc), err=True)
    sys.exit(EXIT_INPUT)


def _read(case_path: str):
    from neb_bayes.case import read_case
    from neb_bayes.case.model import CaseError

    try:
        return read_case(case_path)
    except CaseError as exc:
        _fail_case(exc)


def _load_priors(priors: str | None, *, tables_only: bool = False):
    """The prior set of ``--priors`` (``tables_only``: the compiled model of its YAML tables,
    ``load_model``); exit 3 with what is wrong when it cannot be used."""
    from neb_bayes.model.compiled import load_model
    from neb_bayes.model.spec import PriorSetError
    from neb_bayes.priorset import load_prior_set

    try:
        return (load_model if tables_only else load_prior_set)(priors)
    except (PriorSetError, OSError, KeyError) as exc:
        click.echo(f"cannot use prior set {priors}: {exc}", err=True)
        sys.exit(EXIT_PRIORS)


def _version() -> str:
    from neb_bayes.config import package_version

    return package_version()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=None, package_name="neb_bayes", prog_name="neb-bayes")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Probabilistic diagnostic inference for neuro-endocrine balance.

    Reads a case (labs, symptoms, context) and reports the posterior probability of each
    endocrine condition with its uncertainty.  Decision support for clinicians, not a
    diagnosis.  Exit status: 0 ok, 1 internal error, 2 invalid input, 3 invalid prior set,
    4 fit diagnostics failed, 130 interrupted.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="neb-bayes %(levelname)s: %(message)s")


@main.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["json", "md", "html"]), default="md",
              show_default=True, help="Report format.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Write the report here (atomically) instead of standard output.")
@click.option("--priors", type=click.Path(exists=True, dir_okay=False),
              help="Prior set file (default: the shipped literature prior set).")
@click.option("--method", type=click.Choice(["exact", "nuts"]), default="exact",
              show_default=True,
              help="nuts: also sample the latents with NUTS given each likely state (slow; "
                   "probabilities stay exact).")
def report(case: str, fmt: str, out: str | None, priors: str | None, method: str) -> None:
    """Write a probability report for one CASE file (YAML or JSON)."""
    from neb_bayes.api import infer
    from neb_bayes.report import RENDERERS

    parsed = _read(case)
    prior_set = _load_priors(priors)
    log.info("case read: %d measurements", len(parsed.measurements))
    result = infer(parsed, prior_set, method=method)
    text = RENDERERS[fmt](result)
    if out:
        out_path = Path(out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_text(out_path, text)
        log.info("report written to %s", out)
    else:
        click.echo(text, nl=False)
    if method == "exact":
        done_cleanly()


@main.command()
@click.argument("case", type=click.Path(exists=True, dir_okay=False))
def check(case: str) -> None:
    """Validate a CASE file: list every error (exit 2), or what would not be used (exit 0)."""
    from neb_bayes.evidence import build_evidence
    from neb_bayes.model.compiled import load_model

    parsed = _read(case)
    ev = build_evidence(load_model(), parsed)
    click.echo(f"{case}: OK ({ev.n_measurements} results used, "
               f"{len(ev.present) + len(ev.absent)} symptoms)")
    for n in ev.not_used:
        click.echo(f"  not used: {n.item}: {n.reason}")
    for w in ev.warnings:
        click.echo(f"  warning: {w}")


@main.command()
@click.argument("what", type=click.Choice(["analytes", "symptoms", "conditions", "context"]))
def vocab(what: str) -> None:
    """List the ANALYTES, SYMPTOMS, CONDITIONS or CONTEXT effects the engine understands."""
    from neb_bayes.cli.vocab_listing import list_vocab

    click.echo(list_vocab(what))


#: set by a command that has written and closed everything it writes (a report by the exact
#: method, a local batch): :func:`run` then ends the process at once after it succeeds,
#: without the interpreter's teardown (freeing every module and object, which an ending
#: process does not need: ~0.03-0.05 s after a report, ~0.2 s after a batch with numba and
#: pyarrow loaded), its standard streams and logging flushed first
_done_cleanly = False


def done_cleanly() -> None:
    """Mark this command's outputs as all written and closed (see :func:`run`)."""
    global _done_cleanly
    _done_cleanly = True


def run() -> None:
    """The console entry point: :func:`main`, with an unexpected exception (a bug) reported
    by its type and where it was raised, exit status 1.  Its message is left out unless
    ``NEB_BAYES_TRACEBACK=1``: it may quote a case's values (a value that failed to
    convert, a record that failed to encode).  A command that succeeded and marked itself
    :func:`done_cleanly` ends the process at once."""
    try:
        main(standalone_mode=True)
    except SystemExit as exc:
        if _done_cleanly and exc.code in (0, None):
            _exit_now()
        raise
    except Exception as exc:  # noqa: BLE001
        click.echo(internal_error_text(exc), err=True)
        sys.exit(EXIT_INTERNAL)


def _exit_now() -> None:
    """End a successful process without the interpreter's teardown, its streams and logging
    flushed; where a stream cannot be flushed (a closed pipe), the usual exit says so."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return
    logging.shutdown()
    os._exit(EXIT_OK)


def internal_error_text(exc: BaseException) -> str:
    """What :func:`run` prints for an unexpected exception (:func:`bug_text`)."""
    return f"internal error: {bug_text(exc)}"


def bug_text(exc: BaseException) -> str:
    """An unexpected exception told without its message, which may quote case data: its
    type and the innermost place in neb_bayes it passed through, and how to see the rest;
    with ``NEB_BAYES_TRACEBACK=1`` the whole traceback, message included."""
    import os
    import traceback

    if os.environ.get("NEB_BAYES_TRACEBACK") == "1":
        return "\n" + "".join(traceback.format_exception(exc)).rstrip()
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = os.path.abspath(frame.filename)
        if path.startswith(package + os.sep):
            name = os.path.relpath(path, os.path.dirname(package)).replace(os.sep, "/")
            where = f" in {name}:{frame.lineno} ({frame.name})"
            break
    return (f"{type(exc).__name__}{where} (a bug: please report it; its message is left "
            "out, as it may quote case data: rerun with NEB_BAYES_TRACEBACK=1 to see it)")


from neb_bayes.cli.priors_cmd import priors  # noqa: E402

main.add_command(priors)


from neb_bayes.cli.batch_cmd import batch  # noqa: E402

main.add_command(batch)


from neb_bayes.cli.next_test_cmd import next_test  # noqa: E402

main.add_command(next_test)
