"""Prior set files that cannot be used: every command refuses them with exit 3 and a message
that says what is wrong (never an internal error, never NaN probabilities)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from neb_bayes.cli import EXIT_PRIORS, main

EXAMPLE = "cases/examples/diabetes_01.yaml"
DEFAULT_DRAWS = Path("priors/default.nc")


def commands(prior_set: Path, tmp_path: Path) -> dict[str, list[str]]:
    """Every command that reads a prior set, reading ``prior_set``."""
    p = str(prior_set)
    return {
        "report": ["report", EXAMPLE, "--priors", p],
        "next-test": ["next-test", EXAMPLE, "--priors", p],
        "show": ["priors", "show", p],
        "validate": ["priors", "validate", p],
        "compare": ["priors", "compare", p, str(DEFAULT_DRAWS)],
        "batch": ["batch", EXAMPLE, "--out", str(tmp_path / "batch"), "--priors", p],
    }


def edited(tmp_path: Path, name: str, variable: str, edit) -> Path:
    """A copy of the shipped literature draws with one variable edited in place."""
    out = tmp_path / name
    shutil.copy(DEFAULT_DRAWS, out)
    with h5py.File(out, "r+") as f:
        data = f[f"posterior/{variable}"]
        values = data[...]
        edit(values)
        data[...] = values
    return out


def _nan(x):
    x.reshape(-1)[3] = np.nan


def _negative_sd(x):
    x[..., 0, 0] = -0.5


@pytest.mark.parametrize("name,variable,edit,named", [
    ("nan.nc", "prior_base__thyroid", _nan, "prior_base[thyroid."),
    ("negative_sd.nc", "lat_sd__thyroid", _negative_sd, "lat_sd[thyroid."),
])
def test_draws_outside_their_domain_are_refused_by_every_command(tmp_path, name, variable,
                                                                  edit, named):
    """A NaN draw or a negative spread: exit 3 naming the parameter, nothing written."""
    bad = edited(tmp_path, name, variable, edit)
    for cmd, args in commands(bad, tmp_path).items():
        res = CliRunner().invoke(main, args)
        assert res.exit_code == EXIT_PRIORS, (cmd, res.output)
        assert named in res.output, (cmd, res.output)
        assert "internal error" not in res.output
    assert not (tmp_path / "batch" / "results.parquet").exists()


def _truncated(tmp_path):
    out = tmp_path / "truncated.nc"
    out.write_bytes(DEFAULT_DRAWS.read_bytes()[:20000])
    return out


def _empty(tmp_path):
    out = tmp_path / "empty.nc"
    out.write_bytes(b"")
    return out


def _text(tmp_path):
    out = tmp_path / "text.nc"
    out.write_text("hello\n")
    return out


def _missing_variable(tmp_path):
    out = tmp_path / "missing.nc"
    shutil.copy(DEFAULT_DRAWS, out)
    with h5py.File(out, "r+") as f:
        del f["posterior/log_median"]
    return out


def _not_a_prior_set(tmp_path):
    out = tmp_path / "other.yaml"
    out.write_text("a: 1\n")
    return out


def _binary_yaml(tmp_path):
    out = tmp_path / "binary.yaml"
    out.write_bytes(bytes(range(256)) * 100)
    return out


@pytest.mark.parametrize("make", [_truncated, _empty, _text, _missing_variable,
                                  _not_a_prior_set, _binary_yaml])
def test_unreadable_prior_set_files_exit_3_everywhere(tmp_path, make):
    bad = make(tmp_path)
    for cmd, args in commands(bad, tmp_path).items():
        res = CliRunner().invoke(main, args)
        assert res.exit_code == EXIT_PRIORS, (cmd, res.output)
        assert "invalid prior set" in res.output, (cmd, res.output)
        assert len(res.output) < 2000, (cmd, res.output[:300])   # no file contents
        assert not isinstance(res.exception, (OSError, KeyError, UnicodeDecodeError))


def test_a_saved_prior_set_is_recognised_by_its_content_whatever_its_name(tmp_path):
    """`priors fit --out priors/mycohort` writes netCDF without the suffix: it loads."""
    unnamed = tmp_path / "mycohort"
    shutil.copy(DEFAULT_DRAWS, unnamed)
    runner = CliRunner()
    res = runner.invoke(main, ["priors", "validate", str(unnamed)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["report", EXAMPLE, "--priors", str(unnamed), "--format", "json"])
    assert res.exit_code == 0, res.output


def test_the_domain_check_names_nothing_when_the_draws_are_valid(monkeypatch):
    """It runs on every load: one vectorised test per parameter array, and the parameters
    are named only when one fails (its time is a benchmark, ``benchmarks/bench_single.py``,
    not a test)."""
    from neb_bayes.model import params
    from neb_bayes.priorset import load_prior_set

    ps = load_prior_set()

    def named(*_args, **_kwargs):
        raise AssertionError("valid draws were named one parameter at a time")

    monkeypatch.setattr(params, "flat_parameters", named)
    assert params.draw_problems(ps.draws, ps.model) == []


def as_fit(tmp_path: Path, name: str, **attrs) -> Path:
    """A copy of the literature draws marked as a fit (as `priors fit` writes one)."""
    out = tmp_path / name
    shutil.copy(DEFAULT_DRAWS, out)
    with h5py.File(out, "r+") as f:
        f["posterior"].attrs.update({"kind": "fit", "cohort_hash": "c0ffee", "cohort_n": 20,
                                     **attrs})
    return out


def test_a_fitted_prior_set_has_its_own_identity(tmp_path):
    """Name, parameter digest, cohort and --force are shown by `priors show` and in every
    report format; the tables' fingerprint stays the base's."""
    from neb_bayes.priorset import load_prior_set

    fitted = as_fit(tmp_path, "mycohort.nc", threshold_failures="max R-hat 1.3 > 1.01",
                    forced=1)
    edit = edited(tmp_path, "edited.nc", "log_median", lambda x: x.__iadd__(1e-9))
    base, fit, changed = (load_prior_set(p) for p in (DEFAULT_DRAWS, fitted, edit))
    assert fit.name == "mycohort" and base.name == "literature-default"
    assert fit.model.spec.fingerprint == base.model.spec.fingerprint
    assert changed.parameter_digest != base.parameter_digest   # any value change
    assert fit.parameter_digest == base.parameter_digest       # same values (a copy)
    runner = CliRunner()
    shown = runner.invoke(main, ["priors", "show", str(fitted)]).output
    assert "prior_set: mycohort" in shown and base.parameter_digest in shown
    md = runner.invoke(main, ["report", EXAMPLE, "--priors", str(fitted)]).output
    md_base = runner.invoke(main, ["report", EXAMPLE]).output
    line = next(x for x in md.splitlines() if x.startswith("neb_bayes "))
    assert line not in md_base
    for text in ("`mycohort`", "c0ffee", "n = 20", "--force", "max R-hat 1.3 > 1.01",
                 "literature-default"):
        assert text in line, text
    for fmt in ("json", "html"):
        out = runner.invoke(main, ["report", EXAMPLE, "--priors", str(fitted),
                                   "--format", fmt]).output
        assert "mycohort" in out and fit.parameter_digest in out and "c0ffee" in out


def test_priors_show_lists_a_fits_stored_diagnostics(tmp_path):
    """However long the stored diagnostics are, `priors show` gives each of them."""
    import json

    diag = {"r_hat_max": 1.33, "ess_bulk_min": 64.0, "ess_tail_min": 13.0, "divergences": 0,
            "chain_logp_median": [-286.92] * 8, "logp_gap": 1.05, "logp_gap_se": 1.76,
            "bfmi_min": 0.976}
    assert len(json.dumps(diag)) > 200
    fitted = as_fit(tmp_path, "long.nc", diagnostics=json.dumps(diag))
    shown = CliRunner().invoke(main, ["priors", "show", str(fitted)]).output
    for key in ("r_hat_max: 1.33", "ess_bulk_min: 64", "ess_tail_min: 13", "divergences: 0",
                "bfmi_min: 0.976"):
        assert key in shown, key


def test_saved_chains_stay_apart_and_read_back_in_order(tmp_path):
    """A fit's chains are saved with their chain dimension (and its per-draw sample
    statistics), so ArviZ can recheck convergence; every reader sees the same draws, chain
    after chain, as a file of one merged chain gives them."""
    from dataclasses import replace

    import arviz as az
    import xarray as xr

    from neb_bayes.model.params import literature_draws, parameter_digest, save_draws
    from neb_bayes.priorset import load_prior_set

    model = load_prior_set().model
    draws = replace(literature_draws(model, 40, seed=1), n_chains=2)
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 20), bool)),
                        "energy": (("chain", "draw"), np.arange(40.0).reshape(2, 20))})
    two, one = tmp_path / "two.nc", tmp_path / "one.nc"
    save_draws(two, draws, model, {"kind": "fit"}, sample_stats=stats)
    save_draws(one, replace(draws, n_chains=1), model, {"kind": "fit"})
    tree = az.from_netcdf(two)
    assert dict(tree["posterior"].sizes)["chain"] == 2
    assert dict(tree["posterior"].sizes)["draw"] == 20
    assert "sample_stats" in tree.children and "energy" in tree["sample_stats"]
    np.testing.assert_array_equal(np.asarray(tree["posterior"]["log_median"])[1, 0],
                                  draws.log_median[20])
    a, b = load_prior_set(two), load_prior_set(one)
    assert a.draws.n_chains == 2 and b.draws.n_chains == 1
    assert a.parameter_digest == b.parameter_digest == parameter_digest(draws)
    res = CliRunner().invoke(main, ["priors", "compare", str(two), str(one), "--json"])
    assert res.exit_code == 0, res.output


def _fixed_at(draw: int):
    def edit(x):
        x[...] = x[:, draw][:, None]
    return edit


def test_compare_measures_fixed_parameters_against_the_other_sets_spread(tmp_path):
    """Parameters one set held fixed (zero spread) get a shift in pooled spreads, not a
    division by ~0; fixed in both at different values, they are marked and listed last; the
    text output gives each set's interval."""
    import json

    a = edited(tmp_path, "a.nc", "log_median", _fixed_at(0))
    b = edited(tmp_path, "b.nc", "log_median", _fixed_at(1))
    runner = CliRunner()
    rows = json.loads(runner.invoke(main, ["priors", "compare", str(a), str(DEFAULT_DRAWS),
                                           "--json"]).output)
    medians = [r for r in rows if r["parameter"].startswith("log_median[")]
    assert medians and all(r["fixed"] == ["A"] for r in medians)
    assert max(abs(r["z"]) for r in rows) < 10          # a draw is within a few spreads
    rows = json.loads(runner.invoke(main, ["priors", "compare", str(a), str(b),
                                           "--json"]).output)
    moved = [r for r in rows if r["z"] is None]
    assert moved and all(r["parameter"].startswith("log_median[") for r in moved)
    assert all(r["z"] is None for r in rows[-len(moved):])   # ranked apart, last
    text = runner.invoke(main, ["priors", "compare", str(a), str(DEFAULT_DRAWS)]).output
    line = next(x for x in text.splitlines() if x.startswith("log_median["))
    assert line.count("[") == 3 and "A" in line.split()[-1]   # name, two intervals; fixed in A
    text = runner.invoke(main, ["priors", "compare", str(a), str(b)]).output
    assert "fixed" in next(x for x in text.splitlines() if x.startswith("log_median["))


def test_a_prior_set_file_written_again_is_read_again_in_the_same_process(tmp_path) -> None:
    """A notebook or a Dask worker keeps running while a prior set file is edited, or its
    draws beside it removed or replaced: the next inference reads the file as it is now
    (found by an audit: the tables were cached by path alone)."""
    import neb_bayes as nb
    from neb_bayes.model.spec import DEFAULT_PRIOR_FILE
    from neb_bayes.priorset import load_prior_set

    tables = tmp_path / "mine.yaml"
    shutil.copyfile(DEFAULT_PRIOR_FILE, tables)
    shutil.copyfile(DEFAULT_PRIOR_FILE.with_suffix(".nc"), tables.with_suffix(".nc"))
    case = Path(__file__).resolve().parents[2] / "cases/examples/subclinical_hypothyroidism_01.yaml"
    before = nb.infer(case, priors=tables)
    assert load_prior_set(tables).draws is not None
    text = tables.read_text()
    for state in ("subclinical_hypothyroidism", "subclinical_hypothyroidism_high_tsh"):
        # the condition's two states' prevalences, whatever their values
        text, n = re.subn(rf"^(\s+{state}): [0-9.]+", r"\1: 0.0001", text, count=1,
                          flags=re.MULTILINE)
        assert n == 1, state
    tables.write_text(text)
    after = nb.infer(case, priors=tables)
    assert (after.provenance["prior_set_fingerprint"]
            != before.provenance["prior_set_fingerprint"])
    assert (after.probabilities["subclinical_hypothyroidism"]
            < before.probabilities["subclinical_hypothyroidism"] / 2)
    tables.with_suffix(".nc").unlink()
    assert load_prior_set(tables).draws is None


def _jsonl_of_cases(tmp_path: Path) -> Path:
    out = tmp_path / "cases.jsonl"
    out.write_text('{"case_format": 1, "id": "a"}\n{"case_format": 1, "id": "b"}\n')
    return out


def _lonely_draws(tmp_path: Path) -> Path:
    out = tmp_path / "draws.nc"
    shutil.copy(DEFAULT_DRAWS, out)
    return out


@pytest.mark.parametrize("make,says", [
    (lambda tmp: DEFAULT_DRAWS, ["parameter draws", "pass that", "default.yaml",
                                 "load_prior_set(path)", "--priors"]),
    (_lonely_draws, ["parameter draws", "load_prior_set(path)", "--priors"]),
    (lambda tmp: Path(EXAMPLE), ["a case file", "read_case", "neb-bayes report"]),
    (_jsonl_of_cases, ["JSON Lines file of cases", "neb-bayes batch"]),
    (lambda tmp: tmp, ["a directory"]),
    (lambda tmp: Path("cases/examples/expectations.yaml"), ["none of its tables"]),
], ids=["shipped-draws", "draws-alone", "case", "jsonl", "directory", "other-yaml"])
def test_load_model_says_what_a_wrong_file_is_and_what_reads_it(tmp_path, make, says):
    """`load_model` reads YAML tables only: any other file is named for what it is, with the
    call or option that takes it, in one line each (not a list of missing tables)."""
    from neb_bayes.model.compiled import load_model
    from neb_bayes.model.spec import PriorSetError

    with pytest.raises(PriorSetError) as err:
        load_model(make(tmp_path))
    text = str(err.value)
    for words in says:
        assert words in text, text
    assert "load_model(path)" in text and "missing top-level table" not in text
    assert "not a text (YAML) file" not in text


def test_priors_draws_refuses_a_draws_file_as_its_tables(tmp_path):
    """`priors draws --priors default.nc` (not tables): exit 3 saying what reads it."""
    out = tmp_path / "draws.nc"
    res = CliRunner().invoke(main, ["priors", "draws", "--priors", str(DEFAULT_DRAWS),
                                    "--out", str(out), "--n", "2"])
    assert res.exit_code == EXIT_PRIORS, res.output
    assert "parameter draws" in res.output and "load_prior_set" in res.output
    assert not out.exists()
