"""Keeping freed memory in the process (glibc's allocator): a batch worker's chunks, a
report's draw threads and the batch driver's results free megabytes at a time, which glibc
would otherwise give back to the system and fault in again.  A module of its own, without
numpy, so that the batch driver can ask for it without importing the engine."""

from __future__ import annotations

__all__ = [
    "ALLOCATOR_VARIABLES",
    "ARROW_POOL_VARIABLE",
    "arrow_pool_from_libc",
    "retain_freed_memory",
    "startup_environment",
]


def retain_freed_memory() -> bool:
    """On glibc, keep freed memory in the process instead of returning it to the system:
    allocations below 32 MB from the allocator's heaps (``M_MMAP_THRESHOLD``, otherwise
    adapted per size) and no trimming of their free top below 256 MB (``M_TRIM_THRESHOLD``).

    A report's draw threads allocate their factors, tables and messages (~16 MB) in
    per-thread heaps that glibc gives back when they are freed, so every report faulted the
    pages in again: ~4,000 page faults and ~15 ms of system time per report with two threads
    (measured on cushings_acth_dependent_01; none on one thread, whose large arrays come
    from the main heap, which keeps them).  Called once, when the report's thread pool is
    made; not where the process was started with the allocator's thresholds set
    (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``: what glibc
    read at start-up, not what a library put in ``os.environ`` for its child processes since,
    as dask's distributed does) or on another C library.  Returns whether the thresholds were
    set.
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc" or ALLOCATOR_VARIABLES & startup_environment():
        return False
    try:
        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3          # <malloc.h>
        return bool(libc.mallopt(m_trim_threshold, 256 << 20)
                    and libc.mallopt(m_mmap_threshold, 32 << 20))
    except (OSError, AttributeError):
        return False


#: the environment variable that chooses Arrow's default memory pool when it is first used
ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def arrow_pool_from_libc() -> bool:
    """Have Arrow take its buffers from the C library's allocator (its ``system`` pool), whose
    freed memory :func:`retain_freed_memory` keeps, in this process and those it starts.

    The batch driver merges ~1 MB of results per chunk (and, for Dask, receives and writes
    them, as it did for every chunk when this was measured).  Arrow's default pool
    (mimalloc) gives freed memory back to the system within milliseconds, so chunk after
    chunk it was faulted in again, a huge page at a time, each zeroed by the kernel
    (100,000 cases: 0.59-0.61 -> 0.21-0.31 s of the driver's system
    time).  Arrow reads the choice once, when pyarrow is imported, and for its own code as
    well as pyarrow's (``pyarrow.set_memory_pool`` changes only the latter's), so this acts
    only before pyarrow is imported, and not where ``ARROW_DEFAULT_MEMORY_POOL`` is set
    already.  Returns whether it set it.
    """
    import os
    import sys

    if "pyarrow" in sys.modules or ARROW_POOL_VARIABLE in os.environ:
        return False
    os.environ[ARROW_POOL_VARIABLE] = "system"
    return True


#: environment variables that set glibc's allocator thresholds
ALLOCATOR_VARIABLES = frozenset({"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                                 "GLIBC_TUNABLES"})


def startup_environment() -> set[str]:
    """The names in the environment the process was started with (``/proc/self/environ``;
    ``os.environ`` where that cannot be read)."""
    import os

    try:
        with open("/proc/self/environ", "rb") as fh:
            return {kv.split(b"=", 1)[0].decode(errors="replace")
                    for kv in fh.read().split(b"\0") if kv}
    except OSError:
        return set(os.environ)
