"""The disk cache of loaded prior sets (:mod:`neb_bayes.disk_cache`): a process reads a prior
set it has loaded before from the cache, gives the same results, and never meets an entry
made from other files, another version of the code, or one that cannot be read."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neb_bayes import disk_cache, priorset
from neb_bayes.api import infer
from neb_bayes.priorset import load_prior_set

CASE = "cases/examples/primary_hypothyroidism_01.yaml"
TABLES = Path("priors/default.yaml")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory of this test's own, and no prior set kept in the process."""
    where = tmp_path / "cache"
    monkeypatch.setenv(disk_cache.CACHE_ENV, str(where))
    priorset._load.cache_clear()
    yield where
    priorset._load.cache_clear()


@pytest.fixture
def reads(monkeypatch):
    """Count the prior set loads that read the files (not the cache)."""
    calls = []
    real = priorset._read

    def counted(p):
        calls.append(str(p))
        return real(p)

    monkeypatch.setattr(priorset, "_read", counted)
    return calls


def own_copy(tmp_path: Path) -> Path:
    """A copy of the shipped tables and draws, to edit."""
    for suffix in (".yaml", ".nc"):
        shutil.copy(TABLES.with_suffix(suffix), tmp_path / f"mine{suffix}")
    return tmp_path / "mine.yaml"


def new_process() -> None:
    """What a new process starts with: nothing kept in memory."""
    priorset._load.cache_clear()


def test_a_new_process_reads_the_prior_set_from_the_cache_with_the_same_results(cache, reads):
    first = load_prior_set()
    p_first = infer(CASE, first).probabilities
    assert len(reads) == 1 and len(list(cache.glob("prior_set-*.pickle"))) == 1
    new_process()
    again = load_prior_set()
    assert len(reads) == 1, "read from the files again, not from the cache"
    assert again is not first
    assert again.parameter_digest == first.parameter_digest
    assert again.model.spec.fingerprint == first.model.spec.fingerprint
    assert again.draws.n_draws == first.draws.n_draws
    assert again.provenance() == first.provenance()
    p_again = infer(CASE, again).probabilities
    assert p_again.keys() == p_first.keys()
    assert all(p_again[k] == p_first[k] for k in p_first)


def test_an_edited_prior_set_is_read_again(cache, reads, tmp_path):
    mine = own_copy(tmp_path)
    before = load_prior_set(mine)
    text = mine.read_text(encoding="utf-8")
    edited = text.replace("prior_set:", "# edited\nprior_set:", 1)
    assert edited != text
    mine.write_text(edited, encoding="utf-8")
    new_process()
    after = load_prior_set(mine)
    assert len(reads) == 2
    # a comment changes the file, not the tables: the draws still match them
    assert after.model.spec.fingerprint == before.model.spec.fingerprint
    # the same draws written again (new times, the same bytes): from the cache
    shutil.copy(TABLES.with_suffix(".nc"), mine.with_suffix(".nc"))
    new_process()
    load_prior_set(mine)
    assert len(reads) == 2
    # one draw changed: read again, with the new value
    import h5py

    with h5py.File(mine.with_suffix(".nc"), "r+") as f:
        name = next(k for k in f["posterior"] if k.startswith("lat_mean"))
        data = f[f"posterior/{name}"]
        values = data[...]
        values.reshape(-1)[0] += 0.01
        data[...] = values
    new_process()
    changed = load_prior_set(mine)
    assert len(reads) == 3
    assert changed.parameter_digest != before.parameter_digest


def test_a_rewrite_that_keeps_the_size_and_times_is_read_again(cache, reads, tmp_path):
    """The key is the files' content, not their times: the tables' file rewritten with a
    comment of the same length and its times put back (as a copy that keeps them leaves it,
    or a rewrite within the file system's clock tick) is read again."""
    mine = own_copy(tmp_path)
    text = mine.read_text(encoding="utf-8")
    load_prior_set(mine)
    st = mine.stat()
    edited = text.replace("# ", "#-", 1)
    assert edited != text and len(edited) == len(text)        # a comment, same length
    mine.write_text(edited, encoding="utf-8")
    os.utime(mine, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (mine.stat().st_size, mine.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    new_process()
    load_prior_set(mine)
    assert len(reads) == 2


def test_another_version_of_the_code_never_meets_an_old_entry(cache, reads, monkeypatch):
    load_prior_set()
    new_process()
    monkeypatch.setattr(disk_cache, "code_stamp", lambda: "another version of neb_bayes")
    load_prior_set()
    assert len(reads) == 2
    assert len(list(cache.glob("prior_set-*.pickle"))) == 2


def test_an_entry_that_cannot_be_read_is_rebuilt(cache, reads):
    first = load_prior_set()
    (entry,) = cache.glob("prior_set-*.pickle")
    entry.write_bytes(entry.read_bytes()[:1000])            # cut short
    new_process()
    again = load_prior_set()
    assert len(reads) == 2
    assert again.parameter_digest == first.parameter_digest
    new_process()
    load_prior_set()
    assert len(reads) == 2, "the rebuilt entry is used"


def test_an_entry_others_can_write_is_never_read(cache, reads):
    """Unpickling runs code: an entry another user could have written is not read."""
    load_prior_set()
    (entry,) = cache.glob("prior_set-*.pickle")
    assert entry.stat().st_mode & 0o077 == 0, "written readable by its owner only"
    entry.chmod(0o666)
    new_process()
    load_prior_set()
    assert len(reads) == 2


def test_an_entry_for_another_key_is_not_used(cache, reads, tmp_path):
    """An entry whose stored key is not the one asked for (a digest collision, a file
    copied in) is refused."""
    mine = own_copy(tmp_path)
    load_prior_set()
    (entry,) = cache.glob("prior_set-*.pickle")
    new_process()
    own = load_prior_set(mine)
    (mine_entry,) = set(cache.glob("prior_set-*.pickle")) - {entry}
    shutil.copy(entry, mine_entry)
    new_process()
    assert load_prior_set(mine).source == own.source
    assert len(reads) == 3


@pytest.mark.parametrize("setting", ["off", "0", ""])
def test_the_cache_can_be_turned_off(tmp_path, monkeypatch, reads, setting):
    monkeypatch.setenv(disk_cache.CACHE_ENV, setting)
    monkeypatch.chdir(tmp_path)
    new_process()
    load_prior_set(Path(__file__).parents[2] / TABLES)
    new_process()
    load_prior_set(Path(__file__).parents[2] / TABLES)
    assert len(reads) == 2
    assert list(tmp_path.iterdir()) == []
    new_process()


def test_a_cache_that_cannot_be_written_costs_only_the_cache(tmp_path, monkeypatch, reads):
    blocker = tmp_path / "a file, not a directory"
    blocker.write_text("x")
    monkeypatch.setenv(disk_cache.CACHE_ENV, str(blocker / "cache"))
    new_process()
    prior_set = load_prior_set()
    assert prior_set.draws is not None and len(reads) == 1
    new_process()


def test_draws_ignored_with_a_warning_are_not_kept(cache, reads, tmp_path, caplog):
    """Draws that do not match their tables are ignored with a warning: given every time,
    so that load is never served from the cache."""
    mine = own_copy(tmp_path)
    text = mine.read_text(encoding="utf-8")
    mine.write_text(_changed_table(text), encoding="utf-8")
    for _ in range(2):
        new_process()
        with caplog.at_level(logging.WARNING, logger="neb_bayes"):
            caplog.clear()
            assert load_prior_set(mine).draws is None
        assert "do not match" in caplog.text
    assert len(reads) == 2
    assert list(cache.glob("prior_set-*.pickle")) == []


def _changed_table(text: str) -> str:
    """The tables with one value changed (so their fingerprint no longer matches the draws
    beside them)."""
    import yaml

    raw = yaml.safe_load(text)
    raw["version"] = f"{raw.get('version', '')}-edited"
    return yaml.safe_dump(raw, sort_keys=False)


def test_validate_reads_the_files_whatever_is_kept(cache, reads):
    load_prior_set()
    new_process()
    load_prior_set(disk_cache=False)
    assert len(reads) == 2


def test_the_least_recently_used_entries_are_removed(cache, monkeypatch):
    monkeypatch.setattr(disk_cache, "MAX_ENTRIES", 3)
    for k in range(5):
        disk_cache.store("thing", (k,), {"k": k})
        entry = disk_cache._entry("thing", (k,))
        os.utime(entry, ns=(k * 10**9, k * 10**9))
    disk_cache.store("thing", (5,), {"k": 5})
    kept = [k for k in range(6) if disk_cache.load("thing", (k,)) is not None]
    assert kept == [3, 4, 5]


def test_a_report_in_a_new_process_uses_the_cache(tmp_path):
    """Two reports in two processes: the second reads the cache the first wrote, and its
    probabilities are the same."""
    env = {**os.environ, disk_cache.CACHE_ENV: str(tmp_path / "cache")}
    outs = []
    for _ in range(2):
        run = subprocess.run([str(Path(sys.executable).with_name("neb-bayes")), "report",
                              CASE, "--format", "json"], capture_output=True, text=True,
                             env=env, check=True)
        outs.append(json.loads(run.stdout))
    assert len(list((tmp_path / "cache").glob("prior_set-*.pickle"))) == 1
    assert outs[0]["conditions"] == outs[1]["conditions"]
    assert outs[0]["provenance"] == outs[1]["provenance"]
    assert np.isfinite([c["probability"] for c in outs[0]["conditions"].values()]).all()
