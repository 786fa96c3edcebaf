"""``--method nuts`` is visible in every report format: the method, the sampled latents beside
the exact ones, each state combination's diagnostics and a warning for weak chains.  NUTS is
kept cheap (one state combination, 2 x 20 draws): these tests check the report, not the
sampler (tests/fit/test_nuts.py)."""

from __future__ import annotations

import functools
import json
import re

import pytest

from neb_bayes import config
from neb_bayes.api import infer
from neb_bayes.posterior import Result, _nuts_problems
from neb_bayes.report import RENDERERS

from .conftest import EXAMPLES

CASE = EXAMPLES / "subclinical_hypothyroidism_01.yaml"
TINY = {"draws": 20, "tune": 20, "chains": 2, "max_states": 1, "seed": 1}


@functools.cache
def _nuts_result() -> Result:
    return infer(CASE, method="nuts", nuts_options=TINY)


@functools.cache
def _exact_result() -> Result:
    return infer(CASE)


def test_json_states_the_method_and_the_nuts_diagnostics():
    d = json.loads(RENDERERS["json"](_nuts_result()))
    assert "NUTS" in d["provenance"]["method"]
    assert "NUTS" not in _exact_result().to_dict()["provenance"]["method"]
    nuts = d["nuts"]
    (combo,) = nuts["state_combinations"]
    assert {"r_hat_max", "ess_bulk_min", "divergences", "weak", "problems"} <= set(combo)
    exact = {(r["axis"], r["latent"]): r["log_mean"] for r in d["latents"]}
    for row in nuts["latents"]:
        assert row["exact_log_mean"] == pytest.approx(exact[(row["axis"], row["latent"])])
        assert row["difference"] == pytest.approx(row["log_mean"] - row["exact_log_mean"])
        assert row["mcse"] > 0
    # 2 x 20 draws cannot reach the bulk ESS asked for: the chains are weak, and said so
    assert combo["ess_bulk_min"] < config.NUTS_ESS_MIN and combo["weak"]
    assert any(w.startswith("NUTS:") and "ESS" in w for w in d["warnings"])


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_markdown_and_html_show_the_nuts_result(fmt):
    text = RENDERERS[fmt](_nuts_result())
    exact_text = RENDERERS[fmt](_exact_result())
    assert "NUTS" in text and "NUTS" not in exact_text
    d = _nuts_result().to_dict()
    (combo,) = d["nuts"]["state_combinations"]
    assert f"{combo['r_hat_max']:.3f}" in text                      # R-hat
    assert re.search(rf"\b{combo['ess_bulk_min']:.0f}\b", text)     # bulk ESS
    for row in d["nuts"]["latents"]:                                # NUTS beside exact
        assert f"{row['log_mean']:+.3f}" in text and f"{row['exact_log_mean']:+.3f}" in text
    assert "weak" in text.lower() and "bulk ESS" in text
    # the method in the provenance of every format
    assert "latents also sampled" in text


@pytest.mark.parametrize(("r_hat", "ess", "div", "weak"), [
    (1.09, 17.0, 0, True),      # what the audit saw, at 0.1 % weight, with no warning
    (1.02, 400.0, 0, True),
    (1.001, 99.0, 0, True),
    (1.001, 400.0, 2, True),
    (1.005, 400.0, 0, False),
])
def test_weak_chains_are_named(r_hat, ess, div, weak):
    problems = _nuts_problems({"r_hat_max": r_hat, "ess_bulk_min": ess, "divergences": div})
    assert bool(problems) is weak


def test_the_nuts_json_report_matches_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    from importlib import resources

    schema = json.loads(resources.files("neb_bayes.report").joinpath(
        "schema/report.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(_nuts_result().to_dict())
