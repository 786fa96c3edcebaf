"""`neb-bayes priors fit` checks its options before it reads or samples anything: a bad
value is a usage error (exit 2) naming the option, never an internal error after tuning;
a missing directory for --out is made when the fit is saved."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import neb_bayes.cli.priors_cmd as cmd
import neb_bayes.fit
import neb_bayes.model.params
from neb_bayes.cli import main


@pytest.fixture
def cohort(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "p", "patient": {"sex": "F", "age": 40}, "measurements": [
        {"analyte": "tsh", "specimen": "serum", "value": 2.0, "unit": "mIU/L"}]}) + "\n")
    return path


@pytest.fixture
def nothing_runs(monkeypatch):
    """The prior set is never loaded and nothing is fitted (either fails the test)."""
    def refuse(*args, **kwargs):
        raise AssertionError("ran past the option checks")

    monkeypatch.setattr(cmd, "_load_priors", refuse)
    monkeypatch.setattr(neb_bayes.fit, "fit", refuse)


@pytest.mark.parametrize("args,option,told", [
    (["--fit", ""], "--fit", "name at least one parameter group"),
    (["--fit", ","], "--fit", "name at least one parameter group"),
    (["--fit", "prevalence,prevalance"], "--fit", "unknown parameter group(s) 'prevalance'"),
    (["--draws", "0"], "--draws", "0 is not in the range"),
    (["--draws", "-5"], "--draws", "-5 is not in the range"),
    (["--tune", "0"], "--tune", "0 is not in the range"),
    (["--chains", "0"], "--chains", "0 is not in the range"),
    (["--cores", "0"], "--cores", "0 is not in the range"),
    (["--seed", "-1"], "--seed", "-1 is not in the range"),
    (["--prior-widen", "0"], "--prior-widen", "must be a number above 0, got 0.0"),
    (["--prior-widen", "-2"], "--prior-widen", "must be a number above 0, got -2.0"),
    (["--prior-widen", "nan"], "--prior-widen", "must be a number above 0, got nan"),
    (["--prior-widen", "wide"], "--prior-widen", "give a number above 0 or group=number pairs"),
    (["--prior-widen", "prevalence=0"], "--prior-widen",
     "must be a number above 0, got 0.0 for prevalence"),
    (["--prior-widen", "prevalance=4"], "--prior-widen", "unknown parameter group(s) ['prevalance']"),
    (["--prior-widen", "prevalence=4,prevalence=2"], "--prior-widen", "named twice"),
    (["--out", ""], "--out", "give a file name"),
])
def test_bad_option_values_are_usage_errors_before_anything_runs(cohort, tmp_path, nothing_runs,
                                                                  args, option, told):
    res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out", str(tmp_path / "o.nc"),
                                    *args])
    assert res.exit_code == 2, res.output
    assert f"Invalid value for '{option}'" in res.output and told in res.output, res.output


def test_out_must_be_a_file_in_a_directory(cohort, tmp_path, nothing_runs):
    for out, told in [(tmp_path, "is a directory"), (cohort / "x.nc", "is not a directory")]:
        res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out", str(out)])
        assert res.exit_code == 2 and told in res.output, res.output


def test_a_missing_out_directory_is_made_when_the_fit_is_saved(cohort, tmp_path, monkeypatch):
    """(The fit and the saving are stubbed: what is tested is where the file goes.)"""
    saved = []

    def fake_fit(*args, **kwargs):
        diag = {"r_hat_max": 1.0, "ess_bulk_min": 1e3, "ess_tail_min": 1e3, "divergences": 0,
                "bfmi_min": 1.0}
        attrs = {"cohort_excluded": "0", "cohort_exact_factors": "{}",
                 "sampler_settings": json.dumps({"nuts_library": "x", "chains_in": "threads"})}
        return SimpleNamespace(attrs=attrs, diagnostics=diag, passed=True,
                               draws=SimpleNamespace(n_draws=1),
                               idata=SimpleNamespace(children={}))

    def fake_save(path, *args, **kwargs):
        assert path.parent.is_dir()
        path.write_text("x")
        saved.append(path)

    monkeypatch.setattr(neb_bayes.fit, "fit", fake_fit)
    monkeypatch.setattr(neb_bayes.model.params, "save_draws", fake_save)
    out = tmp_path / "new" / "deeper" / "o.nc"
    res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out", str(out), "--fit",
                                    "prevalence"])
    assert res.exit_code == 0, res.output
    assert saved == [out] and out.exists()


def test_a_broken_prior_set_is_exit_3(cohort, tmp_path):
    broken = tmp_path / "p.yaml"
    broken.write_text("x: 1\n")
    res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out", str(tmp_path / "o.nc"),
                                    "--priors", str(broken)])
    assert res.exit_code == 3 and "cannot use prior set" in res.output, res.output


@pytest.mark.parametrize(("option", "value"), [("draws", 0), ("tune", -1), ("chains", 0),
                                               ("draws", 2.5), ("seed", -1), ("cores", 0),
                                               ("cores", 1.5)])
def test_the_library_fit_checks_its_numbers_before_any_work(option, value) -> None:
    """(The command line checked them; fit() itself crashed late, e.g. nutpie on tune 0.)"""
    from neb_bayes.fit import fit
    from neb_bayes.model.compiled import load_model

    with pytest.raises(ValueError, match=f"{option} must be a whole number"):
        fit(load_model(), [], **{option: value})


@pytest.mark.parametrize(("sampler", "tune"), [("nutpie", 300), ("pymc", 1000)])
def test_the_library_fit_tunes_as_long_as_each_sampler_does_by_default(monkeypatch, sampler,
                                                                       tune) -> None:
    """fit() without ``tune`` asks nutpie for 300 tuning steps per chain (its own default)
    and PyMC for 1,000 (PyMC's)."""
    import pymc as pm

    from neb_bayes.model.compiled import load_model
    from neb_bayes.simulate import simulate

    asked = {}

    class Asked(Exception):
        pass

    def record(*args, **kwargs):
        asked.update(kwargs)
        raise Asked

    monkeypatch.setattr(neb_bayes.fit, "_nutpie_sample", record)
    monkeypatch.setattr(pm, "sample", record)
    model = load_model()
    cases = [s.case for s in simulate(model, 3, seed=1)]
    with pytest.raises(Asked):
        neb_bayes.fit.fit(model, cases, groups=("prevalence",), sampler=sampler, chains=1,
                          progressbar=False)
    assert asked["tune"] == tune


@pytest.mark.parametrize(("given", "passed"), [
    (None, 1.0), ("2.5", 2.5), ("prevalence=4", {"prevalence": 4.0}),
    (" prevalence = 4 , analyte-levels=1.5", {"prevalence": 4.0, "analyte-levels": 1.5})])
def test_prior_widen_reaches_the_fit(cohort, tmp_path, monkeypatch, given, passed):
    """``--prior-widen`` is passed to the fit (the fit's prior spreads: ``fit.prior_sd``),
    one factor or one per parameter group."""
    seen = {}

    def fake_fit(model, cases, **kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(neb_bayes.fit, "fit", fake_fit)
    extra = [] if given is None else ["--prior-widen", given]
    res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out", str(tmp_path / "o.nc"),
                                    *extra])
    assert res.exit_code == 2 and "cannot fit: stop here" in res.output, res.output
    assert seen["prior_widen"] == passed


@pytest.mark.parametrize(("given", "passed"), [([], None), (["--whiten"], True),
                                               (["--no-whiten"], False)])
def test_whiten_reaches_the_fit(cohort, tmp_path, monkeypatch, given, passed):
    """``--whiten/--no-whiten`` is passed to the fit; without either, the fit decides
    (``fit.default_whiten``: analyte levels free, 1,000 people or more)."""
    seen = {}

    def fake_fit(model, cases, **kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(neb_bayes.fit, "fit", fake_fit)
    res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out", str(tmp_path / "o.nc"),
                                    *given])
    assert res.exit_code == 2 and "cannot fit: stop here" in res.output, res.output
    assert seen["whiten"] is passed


def test_default_whiten():
    """Whitened coordinates by default where they were measured to pay: analyte levels free
    in a cohort of 1,000 people or more."""
    from neb_bayes.fit import default_whiten

    assert default_whiten(("analyte-levels",), 1000)
    assert default_whiten(("analyte-levels", "prevalence"), 20000)
    assert not default_whiten(("analyte-levels",), 999)
    assert not default_whiten(("prevalence",), 10000)
    assert not default_whiten(("symptoms",), 10000)


@pytest.mark.parametrize(("whitening", "said"), [
    ({"evaluations": 719, "seconds": 41.2, "parameters": 226},
     "on coordinates whitened at the posterior's mode (719 log-density evaluations, 41 s)"),
    ({"failed": "the log density is not finite at the mode found"},
     "not whitened: the log density is not finite at the mode found (sampled the model's own "
     "coordinates)"),
    ("off", None)])
def test_the_fit_says_how_it_was_whitened(cohort, tmp_path, monkeypatch, whitening, said):
    """The line that says where the chains ran says whether the fit sampled whitened
    coordinates, what that cost, and why not when the whitening failed."""
    def fake_fit(*args, **kwargs):
        diag = {"r_hat_max": 1.0, "ess_bulk_min": 1e3, "ess_tail_min": 1e3, "divergences": 0,
                "bfmi_min": 1.0}
        attrs = {"cohort_excluded": "0", "cohort_exact_factors": "{}",
                 "sampler_settings": json.dumps({"nuts_library": "nutpie",
                                                 "chains_in": "processes",
                                                 "whitening": whitening})}
        return SimpleNamespace(attrs=attrs, diagnostics=diag, passed=True,
                               draws=SimpleNamespace(n_draws=1),
                               idata=SimpleNamespace(children={}))

    monkeypatch.setattr(neb_bayes.fit, "fit", fake_fit)
    monkeypatch.setattr(neb_bayes.model.params, "save_draws",
                        lambda path, *a, **k: path.write_text("x"))
    res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out",
                                    str(tmp_path / "o.nc")])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("sampled with"))
    if said is None:
        assert line == "sampled with nutpie (chains in processes)"
    else:
        assert said in line
