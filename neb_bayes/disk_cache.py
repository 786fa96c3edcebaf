"""A per-user disk cache of what neb_bayes builds from files and can always build again.

Loading a prior set (reading its YAML tables, checking them, compiling the model, reading
and checking its draws) takes ~0.1 s, in every process: each report, and each worker of a
batch.  The loaded prior set is kept here, pickled (~4 MB for the shipped one, ~4 ms to
read back), and used again while nothing it was built from has changed.

An entry's key holds what it was built from (for a prior set: its path and the SHA-256 of
its files' bytes, ~3 ms) and :func:`code_stamp` (every source file of the installed
neb_bayes, the versions of Python and numpy), so an edited prior set, an upgrade or an edit
to neb_bayes itself never meets an old entry.  Entries are written atomically, readable by
their owner only; one that cannot be read is ignored and replaced, and one that another user
could have written is never read (unpickling runs code).  Nothing here holds patient data.

Where: ``$NEB_BAYES_CACHE_DIR`` when set (``off``, ``0`` or empty: no disk cache), else the
platform's user cache directory (``~/.cache/neb_bayes`` on Linux).  A directory that cannot
be written costs nothing but the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
from functools import cache
from pathlib import Path
from typing import Any

from neb_bayes.files import atomic_write

__all__ = ["CACHE_ENV", "cache_dir", "code_stamp", "load", "store"]

log = logging.getLogger("neb_bayes")

#: environment variable naming the cache directory (``off``, ``0`` or empty: no disk cache)
CACHE_ENV = "NEB_BAYES_CACHE_DIR"

#: entries kept per kind; the least recently used beyond this are removed
MAX_ENTRIES = 8

#: layout of an entry (a pickled ``(FORMAT, key, value)``)
FORMAT = 1

_OFF = frozenset({"", "0", "off", "no", "false", "none"})


def cache_dir() -> Path | None:
    """The cache directory, or None when the disk cache is off (:data:`CACHE_ENV`)."""
    raw = os.environ.get(CACHE_ENV)
    if raw is not None:
        return None if raw.strip().lower() in _OFF else Path(raw).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("neb_bayes", appauthor=False))


@cache
def code_stamp() -> str:
    """A digest of the code that builds a cached value: every source and data file of the
    neb_bayes package (name, size, modification time; ~1 ms) and the versions of Python and
    numpy (whose objects are pickled)."""
    import numpy

    root = Path(__file__).parent
    h = hashlib.sha256(f"{sys.version}\0{numpy.__version__}\0{FORMAT}".encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__pycache__")))
        for name in sorted(filenames):
            if name.endswith((".py", ".yaml", ".yml", ".json")):
                st = os.stat(os.path.join(dirpath, name))
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _entry(kind: str, key: tuple) -> Path | None:
    where = cache_dir()
    if where is None:
        return None
    digest = hashlib.sha256(repr((kind, key, code_stamp())).encode()).hexdigest()[:32]
    return where / f"{kind}-{digest}.pickle"


def load(kind: str, key: tuple) -> Any | None:
    """The value stored under ``(kind, key)``, or None (none stored, the cache off, or an
    entry that cannot be read: it is removed)."""
    path = _entry(kind, key)
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            if not _own(os.fstat(fh.fileno())):
                return None
            data = fh.read()
    except OSError:
        return None
    try:
        fmt, stored_key, value = pickle.loads(data)
        if fmt != FORMAT or stored_key != key:
            raise ValueError("another entry")
    except Exception as exc:  # noqa: BLE001 - any unreadable entry is rebuilt
        log.debug("disk cache: %s unreadable (%s): removed", path.name, type(exc).__name__)
        path.unlink(missing_ok=True)
        return None
    try:
        os.utime(path)                  # (recently used: kept by the pruning)
    except OSError:
        pass
    return value


def _own(st: os.stat_result) -> bool:
    """Whether an entry may be unpickled: a file of this user that no one else can write
    (unpickling runs code: an entry someone else could have written is never read)."""
    if not hasattr(os, "getuid"):  # pragma: no cover - Windows: the user's own profile
        return True
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def store(kind: str, key: tuple, value: Any) -> None:
    """Keep ``value`` under ``(kind, key)`` (best effort: a cache that cannot be written is
    skipped, with a debug log line), then remove this kind's least recently used entries
    beyond :data:`MAX_ENTRIES`."""
    path = _entry(kind, key)
    if path is None:
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = pickle.dumps((FORMAT, key, value), protocol=pickle.HIGHEST_PROTOCOL)
        atomic_write(path, lambda tmp: tmp.write_bytes(data), sync=False)
        _prune(path.parent, kind)
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
        log.debug("disk cache: %s not written (%s)", path.name, type(exc).__name__)


def _prune(where: Path, kind: str) -> None:
    entries = []
    for p in where.glob(f"{kind}-*.pickle"):
        try:
            entries.append((p.stat().st_mtime_ns, p))
        except OSError:
            continue
    for _, p in sorted(entries, reverse=True)[MAX_ENTRIES:]:
        p.unlink(missing_ok=True)
