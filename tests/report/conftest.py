"""Shared fixtures of the report tests: every example case, read and inferred once."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml

from neb_bayes.api import infer
from neb_bayes.case import read_case
from neb_bayes.posterior import Result
from tests.contract import CONDITION_IDS  # noqa: F401  (re-exported to the report tests)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "cases" / "examples"
EXAMPLE_FILES: list[Path] = sorted(
    p for p in EXAMPLES.glob("*.yaml") if p.name != "expectations.yaml"
)


@functools.cache
def example_result(name: str) -> Result:
    """The posterior of one example case (cached for the whole test session)."""
    return infer(read_case(EXAMPLES / name))


@functools.cache
def example_html(name: str) -> str:
    """The HTML report of one example case (cached for the whole test session)."""
    from neb_bayes.report.html import render_html

    return render_html(example_result(name))


def raw_measurements(name: str) -> list[dict]:
    """The case file's measurements as written."""
    data = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    return list(data.get("measurements") or [])


@pytest.fixture(params=[p.name for p in EXAMPLE_FILES], ids=lambda n: n.removesuffix(".yaml"))
def example_name(request: pytest.FixtureRequest) -> str:
    """Each example case file name in turn."""
    return request.param
