"""The command line: exit codes, atomic output, every malformed case named by field path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from neb_bayes.cli import main
from tests.case.malformed_cases import (
    MALFORMED_CASES,
    MULTI_ERROR_CASE,
    MULTI_ERROR_PATHS,
    write_case,
)
from tests.contract import CONDITION_IDS

EXAMPLES = Path("cases/examples")
CONDITIONS = list(CONDITION_IDS)


def test_at_least_30_malformed_cases():
    assert len(MALFORMED_CASES) >= 30


@pytest.mark.parametrize("name,case,path", MALFORMED_CASES, ids=[c[0] for c in MALFORMED_CASES])
def test_malformed_case_exits_2_names_the_field_and_writes_nothing(tmp_path, name, case, path):
    file = write_case(tmp_path, name, case)
    out = tmp_path / "report.json"
    res = CliRunner().invoke(main, ["report", str(file), "--format", "json", "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert path in res.output
    assert not out.exists()
    assert not list(tmp_path.glob(".report.json*"))  # no temporary left either


def test_every_error_reported_at_once(tmp_path):
    file = write_case(tmp_path, "multi", MULTI_ERROR_CASE)
    res = CliRunner().invoke(main, ["check", str(file)])
    assert res.exit_code == 2
    for path in MULTI_ERROR_PATHS:
        assert path in res.output


def test_json_report_has_the_contract_fields(tmp_path):
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, ["report", str(EXAMPLES / "primary_hypothyroidism_01.yaml"),
                                    "--format", "json", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["report_format"] == 1
    assert set(CONDITIONS) <= set(rep["conditions"])
    for c in CONDITIONS:
        lo, hi = rep["conditions"][c]["interval"]
        assert 0 <= lo <= rep["conditions"][c]["probability"] <= hi <= 1
    assert rep["interval_kind"] == "equal-tailed" and rep["interval_prob"] == 0.9
    assert {"neb_bayes_version", "prior_set", "prior_set_fingerprint"} <= set(rep["provenance"])
    assert "not_used" in rep and "warnings" in rep and "none" in rep
    assert "clinician" in rep["disclaimer"]


def test_the_version_is_asked_without_the_engine_and_provenance_is_fresh():
    """The package version comes from :mod:`neb_bayes.config` (no engine import: the batch
    driver records it); each report's provenance is its own dictionary."""
    import subprocess
    import sys

    import neb_bayes as nb
    from neb_bayes import api
    from neb_bayes.priorset import load_prior_set

    code = ("import sys, neb_bayes as nb; v = nb.__version__; "
            "print(v == nb.package_version(), 'neb_bayes.inference.exact' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["True", "False"]
    ps = load_prior_set()
    first, second = api.provenance(ps), api.provenance(ps)
    assert first == second and first is not second
    assert first["neb_bayes_version"] == nb.package_version() == api.package_version()


def test_markdown_report_names_evidence_interferences_and_disclaimer():
    res = CliRunner().invoke(main, ["report", str(EXAMPLES / "hard_pregnancy_first_trimester_tsh.yaml")])
    assert res.exit_code == 0
    text = res.output
    assert "Decision support" in text and "clinician" in text
    assert "first-trimester pregnancy" in text   # interference accounted for
    assert "Not used" in text


def test_check_and_vocab():
    runner = CliRunner()
    res = runner.invoke(main, ["check", str(EXAMPLES / "hard_mixed_units_diabetes.yaml")])
    assert res.exit_code == 0 and "OK" in res.output
    for what in ("analytes", "symptoms", "conditions", "context"):
        res = runner.invoke(main, ["vocab", what])
        assert res.exit_code == 0 and res.output.strip()
    conds = runner.invoke(main, ["vocab", "conditions"]).output
    for c in CONDITIONS:
        assert c in conds


def _child_case(age: float) -> dict:
    return {"id": "child", "patient": {"sex": "M", "age": age},
            "measurements": [{"analyte": "testosterone", "value": 0.3, "unit": "nmol/L",
                              "collected": "08:00"},
                             {"analyte": "LH", "value": 0.2, "unit": "IU/L"}]}


def test_child_is_read_with_a_warning_in_check_and_every_report_format(tmp_path):
    from neb_bayes.config import ADULT_AGE_YEARS

    runner = CliRunner()
    child = write_case(tmp_path, "child", _child_case(ADULT_AGE_YEARS - 9))
    res = runner.invoke(main, ["check", str(child)])
    assert res.exit_code == 0 and "OK" in res.output
    assert "patient.age" in res.output and "adults" in res.output
    for fmt in ("json", "md", "html"):
        res = runner.invoke(main, ["report", str(child), "--format", fmt])
        assert res.exit_code == 0, res.output
        assert "results for children are not valid" in res.output, fmt
    adult = write_case(tmp_path, "adult", _child_case(ADULT_AGE_YEARS))
    assert "adults" not in runner.invoke(main, ["check", str(adult)]).output


def test_version_and_bad_priors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["--version"])
    assert res.exit_code == 0 and "neb-bayes" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("prior_set: x\n")
    res = runner.invoke(main, ["report", str(EXAMPLES / "diabetes_01.yaml"), "--priors", str(bad)])
    assert res.exit_code == 3


def test_console_script_runs_without_importing_pymc(tmp_path):
    """The single-case report path stays light: no PyMC, no xarray, no matplotlib; and, for
    a case whose results are all observed (no value beyond a detection limit), no
    scipy.special (~0.2 s of a one-shot report's start)."""
    code = (
        "import sys; from neb_bayes.cli import main\n"
        "sys.argv=['neb-bayes','report','cases/examples/diabetes_01.yaml','--format','json',"
        f"'--out',{str(tmp_path / 'x.json')!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy=[m for m in ('pymc','pytensor','xarray','matplotlib','pandas','scipy.special')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_a_one_shot_report_of_two_censored_results_does_not_load_numba(tmp_path):
    """Two results below their limits on one axis (their mass by the bivariate normal CDF on
    the log scale): a one-shot report computes it in numpy, as the draws path does, and does
    not load numba (~0.3 s more of its start, measured)."""
    case = tmp_path / "pair.yaml"
    case.write_text("id: pair\npatient: {sex: F, age: 63}\nmeasurements:\n"
                    "  - {analyte: estradiol, value: '<18.4', unit: pmol/L}\n"
                    "  - {analyte: progesterone, value: '<0.3', unit: nmol/L}\n"
                    "  - {analyte: TSH, value: '<0.01', unit: mIU/L}\n"
                    "  - {analyte: TSH, value: '<0.01', unit: mIU/L, day: 30}\n"
                    "  - {analyte: FT4, value: 24, unit: pmol/L}\n")
    code = (
        "import sys; from neb_bayes.cli import main\n"
        f"sys.argv=['neb-bayes','report',{str(case)!r},'--format','json',"
        f"'--out',{str(tmp_path / 'x.json')!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('NUMBA', 'numba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "NUMBA False" in out.stdout, out.stdout + out.stderr
    report = json.loads((tmp_path / "x.json").read_text())
    assert report["conditions"], report


@pytest.mark.parametrize("case", ["diabetes_01", "hyperthyroidism_overt_01"])
def test_a_report_does_not_depend_on_what_the_process_imported_before(case, tmp_path):
    """The same report, byte for byte, whether or not scipy.special was imported before it:
    the engine imports it where a censored result needs it, and nothing computes a number
    one way with it loaded and another way without."""
    outs = []
    for k, pre in enumerate(("", "import scipy.special\n")):
        path = tmp_path / f"{k}.json"
        code = (pre + "import sys; from neb_bayes.cli import main\n"
                f"sys.argv=['neb-bayes','report','cases/examples/{case}.yaml','--format','json',"
                f"'--out',{str(path)!r}]\n"
                "try:\n    main()\nexcept SystemExit:\n    pass\n")
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        outs.append(path.read_bytes())
    assert outs[0] == outs[1] and json.loads(outs[0])["case_id"]


def test_an_internal_error_names_its_type_and_place_but_not_its_message(tmp_path, monkeypatch,
                                                                         capsys) -> None:
    """A bug's message may quote case data (a value that failed to convert, a record that
    failed to encode): the console entry point prints its type and where it was raised,
    exit status 1; the message only with NEB_BAYES_TRACEBACK=1."""
    import neb_bayes.cli as cli

    def broken(**_: object) -> None:
        from neb_bayes.files import atomic_text

        atomic_text(tmp_path / "x.txt", "a value that cannot be encoded: 4.25 \udc00")

    monkeypatch.setattr(cli, "main", broken)
    monkeypatch.delenv("NEB_BAYES_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as info:
        cli.run()
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("internal error: UnicodeEncodeError in neb_bayes/files.py:")
    assert "4.25" not in err
    monkeypatch.setenv("NEB_BAYES_TRACEBACK", "1")
    with pytest.raises(SystemExit):
        cli.run()
    assert "Traceback" in capsys.readouterr().err


def test_nuts_samples_a_case_with_two_censored_results_on_an_axis(tmp_path) -> None:
    """Per-case NUTS refused two censored results on an axis (exit 2, until 2026-12-07); it
    samples them now (their mass through GHK variables), and its latents agree with the
    exact ones in the report."""
    case = tmp_path / "two-censored.yaml"
    case.write_text("id: two-censored\npatient: {sex: F, age: 40}\nmeasurements:\n"
                    "  - {analyte: TSH, value: '<0.01', unit: mIU/L}\n"
                    "  - {analyte: TSH, value: '<0.01', unit: mIU/L, day: 7}\n"
                    "  - {analyte: FT4, value: 30, unit: pmol/L}\n")
    res = CliRunner().invoke(main, ["report", str(case), "--method", "nuts", "--format", "json"])
    assert res.exit_code == 0, res.output
    nuts = json.loads(res.output)["nuts"]
    assert nuts["state_combinations"] and nuts["agrees_with_exact"], nuts


def _console(*args: str, **kw) -> subprocess.CompletedProcess:
    """``neb-bayes ARGS`` as the console script runs it (:func:`neb_bayes.cli.run`)."""
    code = f"import sys; from neb_bayes.cli import run; sys.argv = ['neb-bayes', *{list(args)!r}]; run()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, **kw)


@pytest.mark.parametrize("fmt", ["html", "json"])
def test_a_report_that_ends_the_process_at_once_has_written_everything(fmt, tmp_path):
    """A successful report ends its process without the interpreter's teardown: what it
    wrote to standard output (a whole HTML report, hundreds of kB through a pipe) and to
    --out is complete and the same, exit status 0; the JSON the same bytes as the command
    run in-process (the HTML's figures may differ by a process's plotting state)."""
    case = "cases/examples/primary_hypothyroidism_01.yaml"
    piped = _console("report", case, "--format", fmt)
    assert piped.returncode == 0, piped.stderr
    to_file = _console("report", case, "--format", fmt, "--out", str(tmp_path / "r"))
    assert to_file.returncode == 0, to_file.stderr
    assert piped.stdout == (tmp_path / "r").read_bytes()
    if fmt == "html":
        assert piped.stdout.rstrip().endswith(b"</html>")
    else:
        here = CliRunner().invoke(main, ["report", case, "--format", fmt])
        assert here.exit_code == 0 and piped.stdout == here.output.encode()


def test_a_failing_command_ends_as_before(tmp_path):
    """Only a success ends the process at once: a bad case still exits 2 with its message."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("case_format: 1\nid: x\npatient: {sex: Q}\nmeasurements: []\n")
    res = _console("report", str(bad), text=True)
    assert res.returncode == 2 and "patient.sex" in res.stderr, res.stderr


def test_a_batch_that_ends_the_process_at_once_leaves_its_outputs_complete(tmp_path):
    """A local batch ends its process without the teardown once its results are merged and
    its manifest says complete: the table has every case."""
    import pyarrow.parquet as pq

    src = tmp_path / "in.jsonl"
    src.write_text("".join(
        json.dumps({"case_format": 1, "id": f"c{i}", "patient": {"sex": "F", "age": 30 + i},
                    "measurements": [{"analyte": "tsh", "value": 1.0 + i, "unit": "mIU/L"}]})
        + "\n" for i in range(30)))
    res = _console("batch", str(src), "--out", str(tmp_path / "out"), "--no-progress",
                   "--jobs", "1", text=True)
    assert res.returncode == 0, res.stderr
    assert "batch done: 30 cases" in res.stderr
    assert pq.read_table(tmp_path / "out" / "results.parquet").num_rows == 30
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "complete"


def test_a_successful_report_marks_its_outputs_done_and_a_failed_one_does_not(tmp_path,
                                                                             monkeypatch):
    """What lets the console script end at once: a report by the exact method marks itself
    done when it has written its output; a report that failed does not."""
    from neb_bayes import cli

    monkeypatch.setattr(cli, "_done_cleanly", False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("case_format: 1\nid: x\npatient: {sex: Q}\nmeasurements: []\n")
    assert CliRunner().invoke(main, ["report", str(bad)]).exit_code == 2
    assert cli._done_cleanly is False
    res = CliRunner().invoke(main, ["report", "cases/examples/diabetes_01.yaml",
                                    "--out", str(tmp_path / "r.md")])
    assert res.exit_code == 0 and cli._done_cleanly is True
