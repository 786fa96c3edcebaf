"""`neb-bayes priors fit` end to end on a small simulated cohort (a few minutes at most)."""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pytest
from click.testing import CliRunner

from neb_bayes.batch.export import case_to_dict
from neb_bayes.cli import main
from neb_bayes.model.compiled import load_model
from neb_bayes.simulate import simulate

from .conftest import covered

EXAMPLE = "cases/examples/subclinical_hypothyroidism_01.yaml"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fit")
    model = load_model()
    sims = simulate(model, 80, seed=21, p_repeat=0.0, p_measure=0.35, p_symptom_reported=0.0)
    cases = [s.case for s in sims]
    cohort = tmp / "cohort.jsonl"
    cohort.write_text("".join(json.dumps(case_to_dict(c)) + "\n" for c in cases))
    (tmp / "bad.jsonl").write_text('{"id": "x", "measurements": [{"analyte": "TSH", '
                                   '"value": -1, "unit": "mIU/L"}]}\n' + UNSUPPORTED + "\n")
    # a man labelled with polycystic ovary syndrome: left out with --drop-unsupported
    man = next(c for c in cases if c.patient.sex == "M")
    (tmp / "labels.yaml").write_text(f"{man.id}: [pcos]\n")
    out = tmp / "fitted.nc"
    res = CliRunner().invoke(main, [
        "priors", "fit", str(cohort), str(tmp / "bad.jsonl"), "--out", str(out),
        "--fit", "prevalence", "--sampler", "pymc", "--draws", "150", "--tune", "150",
        "--chains", "2", "--force", "--no-progress", "--drop-unsupported",
        "--labels", str(tmp / "labels.yaml")])
    assert res.exit_code == 0, res.output
    # the cases fitted: with bad.jsonl's three-censored case, without the man
    return out, res.output, len(cases) + 1 - 1


#: a valid case with three censored results on one axis (beyond the fit's information
#: form: its thyroid factor comes from the exact engine)
UNSUPPORTED = json.dumps({"id": "three-censored", "patient": {"sex": "F", "age": 40},
                          "measurements": [
                              {"analyte": "tsh", "specimen": "serum", "value": "<0.01",
                               "unit": "mIU/L"},
                              {"analyte": "ft4", "specimen": "serum", "value": "<5",
                               "unit": "pmol/L"},
                              {"analyte": "ft3", "specimen": "serum", "value": "<1.5",
                               "unit": "pmol/L"}]})


def test_impossible_labels_stop_a_fit_unless_left_out(tmp_path):
    """A label the person cannot have (a man labelled with polycystic ovary syndrome) stops
    the fit before sampling without --drop-unsupported (exit 2, the case and the label
    named, the option suggested, nothing written); with it the case is left out (here
    nothing is left)."""
    cohort = tmp_path / "c.jsonl"
    model = load_model()
    sims = simulate(model, 6, seed=3, p_repeat=0.0, p_measure=0.3, p_symptom_reported=0.0)
    man = json.dumps({"id": "man", "patient": {"sex": "M", "age": 40}, "measurements": [
        {"analyte": "tsh", "specimen": "serum", "value": 2.0, "unit": "mIU/L"}]})
    cohort.write_text("".join(json.dumps(case_to_dict(s.case)) + "\n" for s in sims)
                      + man + "\n")
    labels = tmp_path / "labels.yaml"
    labels.write_text("man: [pcos]\n")
    out = tmp_path / "never.nc"
    res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out", str(out),
                                    "--labels", str(labels), "--no-progress"])
    assert res.exit_code == 2, res.output
    assert "man: label gonadal=['pcos'] impossible for this person" in res.output
    assert "1 of 7" in res.output and "--drop-unsupported" in res.output
    assert not out.exists()
    only = tmp_path / "only.jsonl"
    only.write_text(man + "\n")
    res = CliRunner().invoke(main, ["priors", "fit", str(only), "--out", str(out),
                                    "--labels", str(labels), "--no-progress",
                                    "--drop-unsupported"])
    assert res.exit_code == 2 and "no case left" in res.output, res.output
    assert not out.exists()


def test_fit_reports_diagnostics_and_saves_arviz_readable_draws(fitted):
    out, output, n = fitted
    assert "R-hat max" in output and "divergences" in output and "BFMI" in output
    assert "chains' median log densities" in output   # PyMC records each draw's lp
    assert "skipped" in output  # the bad case is listed, the rest is fitted
    # three censored results on one axis: the fit uses the case (its thyroid factor from the
    # exact engine); --drop-unsupported leaves out the impossibly labelled man only
    reason = "label gonadal=['pcos'] impossible for this person"
    assert f"left out 1 case(s) the fit cannot use: {reason} (1)" in output
    exact_line = next(line for line in output.splitlines()
                      if "its factor the exact engine's:" in line)
    assert "thyroid (1 person)" in exact_line   # (a simulated person may add another axis)
    tree = az.from_netcdf(out)
    post = tree["posterior"]
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 150   # chains kept apart
    assert "diverging" in tree["sample_stats"] or "divergences" in tree["sample_stats"]
    assert np.isfinite(np.asarray(az.rhat(tree)["prior_base__thyroid"])[1:]).all()
    attrs = post.attrs
    assert int(attrs["cohort_n"]) == n
    assert int(attrs["cohort_excluded"]) == 1
    assert json.loads(attrs["cohort_excluded_reasons"]) == {reason: 1}
    assert int(attrs["cohort_labelled"]) == 0
    assert json.loads(attrs["cohort_exact_factors"])["thyroid"] == 1
    for key in ("cohort_hash", "created", "package_versions", "sampler_settings",
                "model_fingerprint", "diagnostics"):
        assert key in attrs
    # --sampler pymc ran PyMC's own NUTS (PyMC 6 hands NUTS to nutpie unless told not to)
    settings = json.loads(attrs["sampler_settings"])
    assert settings["sampler"] == "pymc" and settings["nuts_library"] == "pymc"
    assert settings["init_spread"] == 0.25   # where the chains started, for the record
    # prevalence was fitted: its draws vary; analyte levels were not: they keep the prior
    # set's draws (draw k of the fit paired with the prior set's draw k), so that their
    # uncertainty stays in every report made with the fitted set
    assert np.std(np.asarray(post["prior_base__thyroid"])[..., 1]) > 0
    from neb_bayes.priorset import load_prior_set

    base = np.asarray(load_prior_set(None).draws.log_median)
    saved = np.asarray(post["log_median"])
    k = saved.shape[0] * saved.shape[1]
    np.testing.assert_array_equal(saved.reshape(k, -1), base[np.arange(k) % len(base)])
    assert attrs["groups_not_fitted"] == "the prior set's parameter draws, paired draw by draw"


def test_report_uses_the_fitted_prior_set(fitted):
    out, _, n = fitted
    res = CliRunner().invoke(main, ["report", EXAMPLE, "--priors", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["provenance"]["draws_kind"] == "fit"
    assert report["provenance"]["prior_set"] == "fitted"      # its --out name
    assert report["provenance"]["prior_set_base"] == "literature-default"
    assert int(report["provenance"]["draws_cohort_n"]) == n
    lo, hi = report["conditions"]["subclinical_hypothyroidism"]["interval"]
    assert lo < hi


def test_validate_show_and_compare(fitted):
    out, _, _ = fitted
    runner = CliRunner()
    assert runner.invoke(main, ["priors", "validate", str(out)]).exit_code == 0
    shown = runner.invoke(main, ["priors", "show", str(out)])
    assert shown.exit_code == 0 and "cohort_n" in shown.output
    cmp = runner.invoke(main, ["priors", "compare", "priors/default.nc", str(out), "--json"])
    assert cmp.exit_code == 0
    rows = json.loads(cmp.output)
    assert any(r["parameter"].startswith("prior_base[thyroid.") for r in rows)


def test_refuses_to_save_when_checks_fail(tmp_path):
    model = load_model()
    sims = simulate(model, 12, seed=2, p_repeat=0.0, p_measure=0.3, p_symptom_reported=0.0)
    cohort = tmp_path / "c.jsonl"
    cohort.write_text("".join(json.dumps(case_to_dict(s.case)) + "\n" for s in sims
                              if sum(m.censor != "none" for m in s.case.measurements) <= 1))
    out = tmp_path / "never.nc"
    res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out", str(out), "--fit",
                                    "prevalence", "--sampler", "pymc", "--draws", "20",
                                    "--tune", "20", "--chains", "2", "--no-progress"])
    assert res.exit_code == 4, res.output
    assert not out.exists()
    # the fit is not lost: its draws are kept beside, named for what they are, and their
    # provenance says the checks failed
    kept = tmp_path / "never.unconverged.nc"
    assert f"not saved to {out}" in res.output and f"kept in {kept}" in res.output
    from neb_bayes.priorset import load_prior_set

    prov = load_prior_set(kept).provenance()
    assert prov["prior_set"] == "never" and prov["draws_forced"] == 1
    assert prov["draws_threshold_failures"] in res.output
    # a later fit saved to the same name says the kept draws beside it are not its own
    res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out", str(out), "--fit",
                                    "prevalence", "--sampler", "pymc", "--draws", "20",
                                    "--tune", "20", "--chains", "2", "--no-progress", "--force"])
    assert res.exit_code == 0 and out.exists(), res.output
    assert f"note: {kept} holds the draws of an earlier fit refused" in res.output
    # with --force it is saved, with a warning that names the failed checks, and the saved
    # prior set says so (its provenance, its stored diagnostics)
    forced = tmp_path / "forced.nc"
    res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out", str(forced), "--fit",
                                    "prevalence", "--sampler", "pymc", "--draws", "20",
                                    "--tune", "20", "--chains", "2", "--no-progress",
                                    "--force"])
    assert res.exit_code == 0, res.output
    warning = next(x for x in res.output.splitlines() if x.startswith("warning:"))
    assert "convergence checks failed" in warning and "R-hat" in warning
    prov = load_prior_set(forced).provenance()
    assert prov["prior_set"] == "forced" and prov["draws_forced"] == 1
    assert prov["draws_threshold_failures"] in warning
    shown = CliRunner().invoke(main, ["priors", "show", str(forced)]).output
    assert "r_hat_max:" in shown and "bfmi_min:" in shown and "ess_bulk_min:" in shown


def _fit_three(tmp_path, groups: str, args=(), extra: str = "") -> str:
    """The output of `priors fit` on three simulated people (and the JSON lines ``extra``),
    fitting ``groups``: the caller stops it where it looks (a monkeypatched step)."""
    sims = simulate(load_model(), 3, seed=4, p_repeat=0.0, p_measure=0.3, p_symptom_reported=0.0)
    cohort = tmp_path / "c.jsonl"
    cohort.write_text("".join(json.dumps(case_to_dict(s.case)) + "\n" for s in sims) + extra)
    return CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out",
                                     str(tmp_path / "x.nc"), "--fit", groups, "--no-progress",
                                     *args]).output


@pytest.mark.parametrize("groups,told", [("analyte-levels", True), ("symptoms", True),
                                         ("prevalence", False)])
def test_large_fits_are_announced_as_slow(tmp_path, monkeypatch, groups, told):
    """An analyte-level or symptom fit expected to take long is told so, with the expected
    time, once the cohort is prepared and before the model is built (stopped there by the
    test); an analyte-level fit counts the person-axes whose factor is the exact engine's."""
    import neb_bayes.cli.priors_cmd as cmd
    import neb_bayes.fit

    def stop(*args, **kwargs):
        raise ValueError("stopped by the test")

    monkeypatch.setattr(cmd, "ANNOUNCE_FIT_S", 1)
    monkeypatch.setattr(neb_bayes.fit, "build_fit_model", stop)
    output = _fit_three(tmp_path, groups, extra=UNSUPPORTED + "\n")
    assert "stopped by the test" in output
    assert ("--fit prevalence" in output) is told
    assert ("expected time" in output) is told
    exact = "for 4 people, 1 of their person-axes by the exact engine with"
    assert (exact in output) is (groups == "analyte-levels"), output


@pytest.mark.parametrize(("groups", "args", "want"), [
    ("analyte-levels", [], "2 chains x 300 tune + 1500 draws"),
    ("symptoms", [], "2 chains x 300 tune + 1500 draws"),
    ("prevalence", [], "2 chains x 300 tune + 1000 draws"),
    ("analyte-levels", ["--draws", "700"], "2 chains x 300 tune + 700 draws"),
    ("analyte-levels", ["--sampler", "pymc"], "2 chains x 1000 tune + 1500 draws"),
    ("prevalence", ["--sampler", "pymc", "--tune", "40"], "2 chains x 40 tune + 1000 draws"),
])
def test_default_draws_and_tuning_follow_the_groups_and_sampler(tmp_path, monkeypatch, groups,
                                                                args, want):
    """Free analyte levels or symptom rates get 1,500 draws per chain unless told (their
    rare states' parameters mix slowly: 1,000 left a 1,000-person fit at the thresholds'
    edge), a prevalence-only fit 1,000; tuning is each sampler's own default (nutpie 300,
    PyMC 1,000) unless told; the draws and tuning steps the sampler is asked for are those
    printed."""
    import neb_bayes.fit
    from neb_bayes.fit import default_draws, default_tune

    assert default_draws(("prevalence",)) == 1000
    assert default_draws(("analyte-levels", "prevalence")) == 1500
    assert (default_tune("nutpie"), default_tune("pymc")) == (300, 1000)
    seen = {}

    def stop(*a, **kwargs):
        seen.update(kwargs)
        raise ValueError("stopped by the test")

    monkeypatch.setattr(neb_bayes.fit, "fit", stop)
    output = _fit_three(tmp_path, groups, args)
    assert want in output, output
    assert seen["draws"] == int(want.split("+ ")[1].split()[0])
    assert seen["tune"] == int(want.split("x ")[1].split()[0])


def test_expected_fit_time_reads_in_minutes_under_an_hour():
    from neb_bayes.cli.priors_cmd import _about

    assert _about(918.0) == "15 min"      # the default 1,000-person analyte-level fit
    assert _about(20.0) == "1 min"
    assert _about(3599.0) == "60 min"
    assert _about(7650.0) == "2.1 h"      # 10,000 people


def test_expected_fit_time_counts_the_exact_engines_person_axes():
    """Each person-axis beyond the information form adds its measured cost per evaluation
    when analyte levels are free (its factor is a constant otherwise)."""
    from neb_bayes.fit import EVALS_PER_DRAW, EXACT_PERSON_AXIS_COST_S, expected_fit_seconds

    base = expected_fit_seconds(1000, 500, 500, 2, ("analyte-levels",))
    more = expected_fit_seconds(1000, 500, 500, 2, ("analyte-levels",), exact_person_axes=10)
    assert more - base == pytest.approx(1000 * EVALS_PER_DRAW * 10 * EXACT_PERSON_AXIS_COST_S)
    sym = expected_fit_seconds(1000, 500, 500, 2, ("symptoms",))
    assert expected_fit_seconds(1000, 500, 500, 2, ("symptoms",), exact_person_axes=10) == sym


def test_expected_fit_time_of_a_whitened_fit():
    """On whitened coordinates a fit takes fewer steps per draw, after the whitening's own
    evaluations: shorter for a long fit, longer for a very short one."""
    from neb_bayes.fit import (
        EVAL_COST_S,
        EVALS_PER_DRAW_WHITENED,
        WHITENING_COMPILE_S,
        WHITENING_EVALS,
        expected_fit_seconds,
    )

    fixed, per_person = EVAL_COST_S["analyte-levels"]
    per_eval = fixed + per_person * 10000
    white = expected_fit_seconds(10000, 300, 1500, 2, ("analyte-levels",), whiten=True)
    assert white == pytest.approx(1800 * EVALS_PER_DRAW_WHITENED * per_eval
                                  + WHITENING_EVALS * per_eval + WHITENING_COMPILE_S)
    assert white < expected_fit_seconds(10000, 300, 1500, 2, ("analyte-levels",))
    assert (expected_fit_seconds(1000, 5, 5, 2, ("analyte-levels",), whiten=True)
            > expected_fit_seconds(1000, 5, 5, 2, ("analyte-levels",)))


def test_prevalence_fit_runs_in_nutpie_threads(monkeypatch):
    """A prevalence fit is compiled code only: nutpie runs its chains as threads of this
    process, each from its own start (:func:`neb_bayes.fit.start_function`, called from
    nutpie's threads); draws come back finite and the chains differ.  The flat start vector
    lists the variables in nutpie's own order: without the move (``INIT_SPREAD`` 0) it is
    nutpie's own start, from the model nutpie compiled for this fit.  (The analyte-level
    group, one chain per process, runs in ``test_recovery_small_analyte_level_fit``.)"""
    nutpie = pytest.importorskip("nutpie")
    import neb_bayes.fit as fit_mod

    compiled = []
    compile_model = nutpie.compile_pymc_model

    def spy(pmodel, **kwargs):
        compiled.append((pmodel, compile_model(pmodel, **kwargs)))
        return compiled[-1][1]

    monkeypatch.setattr(nutpie, "compile_pymc_model", spy)
    model = load_model()
    sims = simulate(model, 60, seed=21, p_repeat=0.0, p_measure=0.5, p_symptom_reported=0.2)
    cases = covered(model, [s.case for s in sims])[:50]
    res = fit_mod.fit(model, cases, groups=("prevalence",), draws=30, tune=30, chains=2,
                      sampler="nutpie", progressbar=False)
    [(pmodel, nutpies)] = compiled
    monkeypatch.setattr(fit_mod, "INIT_SPREAD", 0.0)
    np.testing.assert_array_equal(fit_mod.start_function(pmodel)(3),
                                  nutpies.initial_point_func(0))
    settings = json.loads(res.attrs["sampler_settings"])
    assert settings["chains_in"] == "threads" and settings["nuts_library"] == "nutpie"
    assert settings["whitening"] == "off"     # (a prevalence fit: fit.default_whiten)
    post = res.idata.posterior
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 30
    x = np.asarray(post["prior_base__thyroid"])
    assert np.isfinite(x).all() and not np.allclose(x[0], x[1])


@pytest.mark.parametrize(("out", "kept"), [("fits/a.nc", "fits/a.unconverged.nc"),
                                           ("b", "b.unconverged.nc"),
                                           ("c.v2.nc", "c.v2.unconverged.nc")])
def test_unconverged_draws_are_kept_beside_the_out_file(out, kept):
    from pathlib import Path

    from neb_bayes.cli.priors_cmd import unconverged_path

    assert unconverged_path(Path(out)) == Path(kept)


@pytest.mark.parametrize(("args", "cores"), [(["--cores", "1"], 1), (["--cores", "3"], 3),
                                             ([], None)])
def test_the_announced_time_counts_the_cores_given(tmp_path, monkeypatch, args, cores):
    """2 chains on 1 core run one after the other: the estimate is told the cores the fit
    may use (by default the process's)."""
    import neb_bayes.fit
    from neb_bayes.fit import available_cores

    seen: list[int] = []

    def expected(*args, cores=2, **kwargs):
        seen.append(cores)
        raise ValueError("stopped by the test")

    monkeypatch.setattr(neb_bayes.fit, "expected_fit_seconds", expected)
    output = _fit_three(tmp_path, "analyte-levels", args)
    assert "stopped by the test" in output
    assert seen == [cores or available_cores()]
