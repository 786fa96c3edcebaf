"""How the fit's Ops that run from Python (the laboratory factors, the elimination over
states) are called from a numba-compiled log-density.

pytensor's numba backend calls such an Op in numba's object mode through a closure over the
Op and its graph node, and numba pickles that closure into the compiled code: the Op's data
(each group's constant tables and laboratory data) and the node's whole ancestor graph
became constants of the LLVM module.  At 2,000 people that made the first evaluation take
~3.8 GB of memory (~1.7 GB more per 1,000 people) and its compilation grow with the cohort.
Here the compiled code holds only an integer key; the Op and node are found in a
process-local table by :func:`run_registered`, which numba pickles by reference (a module
function).  Such compiled code is never cached on disk (pytensor gives it no cache key).

Those Ops split their people into independent pieces (the laboratory factors' parts, the
elimination's passes), whose compiled loops release the GIL: with :func:`set_threads` above
1 they run on that many threads of the process (:func:`map_pieces`), so that one chain can
use several cores (a fit whose chains are fewer than the machine's cores).  The results do
not depend on the number of threads beyond the order of a few floating-point sums.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["map_pieces", "piece_size", "register_by_reference", "run_registered",
           "set_threads", "threads", "using_threads"]

#: threads for the Ops' independent pieces in this process (1: the calling thread only)
_THREADS = 1
#: (process id, threads, executor): a pool made before a fork has no threads in the child
_POOL: tuple[int, int, Any] | None = None


def set_threads(n: int) -> None:
    """Run the Ops' independent pieces on ``n`` threads of this process from now on."""
    global _THREADS
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"threads must be a whole number of at least 1, got {n!r}")
    _THREADS = n


@contextlib.contextmanager
def using_threads(n: int) -> Iterator[None]:
    """:func:`set_threads` ``n`` until the block ends (then the number before)."""
    before = _THREADS
    set_threads(n)
    try:
        yield
    finally:
        set_threads(before)


def threads() -> int:
    """The threads :func:`map_pieces` uses in this process."""
    return _THREADS


def piece_size(n: int, cap: int, floor: int) -> int:
    """People per piece of ``n``: at most ``cap`` (a memory bound), and with several
    threads (:func:`threads`) small enough that each thread gets two pieces, down to
    ``floor`` (smaller pieces' hand-offs between threads cost more than they save)."""
    if _THREADS == 1:
        return cap
    return max(1, min(cap, max(floor, -(-n // (2 * _THREADS)))))


def map_pieces(fn: Callable[[Any], Any], items: Sequence) -> list:
    """``[fn(x) for x in items]``, on :func:`threads` threads when there are more than one
    (the pieces' compiled loops release the GIL); the results in ``items``' order."""
    global _POOL
    if _THREADS <= 1 or len(items) < 2:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    if _POOL is None or _POOL[:2] != (os.getpid(), _THREADS):
        if _POOL is not None and _POOL[0] == os.getpid():
            _POOL[2].shutdown(wait=False)
        _POOL = (os.getpid(), _THREADS,
                 ThreadPoolExecutor(_THREADS, thread_name_prefix="neb-bayes-op"))
    return list(_POOL[2].map(fn, items))

#: key -> (Op, node, number of outputs) of every registered call compiled in this process
_CALLS: dict[int, tuple[object, object, int]] = {}
_KEYS = itertools.count()


def run_registered(key: int, inputs: tuple):
    """Run the registered Op's ``perform`` on ``inputs``: its output, or a tuple of them."""
    op, node, n_out = _CALLS[key]
    storage = [[None] for _ in range(n_out)]
    op.perform(node, list(inputs), storage)
    out = tuple(s[0] for s in storage)
    return out[0] if n_out == 1 else out


def register_by_reference(op_class: type) -> None:
    """Make pytensor's numba backend call ``op_class``'s ``perform`` in object mode through
    :func:`run_registered` and a key (instead of a pickled closure over the Op)."""
    import numba
    from pytensor.link.numba.dispatch.basic import get_numba_type, numba_funcify, numba_njit

    @numba_funcify.register(op_class)
    def _funcify(op, node=None, **kwargs):
        key = next(_KEYS)
        _CALLS[key] = (op, node, len(node.outputs))
        if len(node.outputs) == 1:
            ret_sig = get_numba_type(node.outputs[0].type)
        else:
            ret_sig = numba.types.Tuple([get_numba_type(o.type) for o in node.outputs])

        @numba_njit
        def perform(*inputs):  # pragma: no cover  (compiled)
            with numba.objmode(ret=ret_sig):
                ret = run_registered(key, inputs)
            return ret

        return perform
