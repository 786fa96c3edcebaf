"""Settings for the whole suite."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _own_disk_cache(tmp_path_factory):
    """The suite's own disk cache (:mod:`neb_bayes.disk_cache`), one per test process and the
    commands it starts: the tests never read or write the user's cache."""
    before = os.environ.get("NEB_BAYES_CACHE_DIR")
    os.environ["NEB_BAYES_CACHE_DIR"] = str(tmp_path_factory.mktemp("neb_bayes_cache"))
    yield
    if before is None:
        os.environ.pop("NEB_BAYES_CACHE_DIR", None)
    else:
        os.environ["NEB_BAYES_CACHE_DIR"] = before
