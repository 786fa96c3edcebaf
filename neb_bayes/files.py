"""Files written whole or not at all.

Every file neb_bayes writes (reports, batch chunks and manifests, prior sets, its disk cache)
goes through :func:`atomic_write`: a temporary file beside the target, renamed into place, so
an interrupted run leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_text"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None], *,
                 sync: bool = True, mode: int | None = None) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path`` (``.<name>.<random>.tmp``),
    then rename it to ``path``; the temporary file is removed if anything fails.

    Parameters
    ----------
    path
        The file to write; its directory must exist.
    write
        Writes the content to the path it is given.
    sync
        Flush the content to the disk before the rename (a crash of the machine then leaves
        the old or the new file whole); off for files that can be rebuilt (a cache).
    mode
        Permission bits for the file (default: ``tempfile``'s private ``0o600``).
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if sync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_write`."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
