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
"""

from __future__ import annotations

import itertools

__all__ = ["register_by_reference", "run_registered"]

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
