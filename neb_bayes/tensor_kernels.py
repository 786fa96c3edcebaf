"""Compiled loops of the contraction in :mod:`neb_bayes.tensor`: a product of tables summed
over some of their dimensions in one pass, never forming the product, and a message's
rescaling to a maximum of 1 with its conversion to the tables' float type.

Tables have the batch dimension (e.g. parameter draws) last with unit stride, so every step
of the loop is a contiguous run over the batch (a table may be a view whose other
dimensions are strided, e.g. a chunk of draws cut from a larger table).  Each batch entry's
numbers come from that entry's own values only, multiplied and summed in a fixed order (the
tables in the order given, the state points in C order), so results do not depend on which
other entries share the batch.  Compiled by numba on first use and cached on disk
(``cache=True``); imported only by the contraction (the point path never loads numba).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["product_sum", "rescale"]


@njit(cache=True, nogil=True)
def product_sum(tables, offsets, wide, group_starts, out_offsets, out, batch):  # pragma: no cover
    """``out[o] = sum_u prod_t tables[t][offsets[t, u]]`` over the state points ``u`` of
    each output point ``o``.

    ``tables`` a tuple of flat arrays of one float type (products are formed in it; ``out``,
    float64, receives the sums), ``offsets`` ``(T, U)`` each table's first element for state
    point ``u``, the points grouped by output point (group ``g`` is ``group_starts[g]`` to
    ``group_starts[g + 1]``, in C order within it), ``wide[t]`` whether table ``t`` has the
    batch dimension (otherwise its one value is broadcast), ``out_offsets`` ``(G,)`` each
    output point's first element; every run is ``batch`` long.  Each output run is written
    once (``out`` need not be initialised).
    """
    n_tab = offsets.shape[0]
    tmp = np.empty(batch, dtype=tables[0].dtype)     # products in the tables' precision
    acc = np.empty(batch)                            # sums in float64
    for g in range(out_offsets.size):
        for b in range(batch):
            acc[b] = 0.0
        for u in range(group_starts[g], group_starts[g + 1]):
            # slices of the runs (not offset indexing): the loops then vectorise
            o = offsets[0, u]
            if wide[0]:
                run = tables[0][o:o + batch]
                for b in range(batch):
                    tmp[b] = run[b]
            else:
                tmp[:] = tables[0][o]
            for t in range(1, n_tab):
                o = offsets[t, u]
                if wide[t]:
                    run = tables[t][o:o + batch]
                    for b in range(batch):
                        tmp[b] *= run[b]
                else:
                    v = tables[t][o]
                    for b in range(batch):
                        tmp[b] *= v
            for b in range(batch):
                acc[b] += tmp[b]
        dst = out[out_offsets[g]:out_offsets[g] + batch]
        for b in range(batch):
            dst[b] = acc[b]


@njit(cache=True, nogil=True)
def rescale(msg, mx, out):  # pragma: no cover
    """``mx[b] = max_u msg[u, b]`` and ``out[u, b] = msg[u, b] * (1 / mx[b])`` (``mx[b] = 0``:
    divided by 1), ``out`` of the tables' float type: one pass to find the maxima, one to
    scale and convert (numpy needs four).  ``msg`` ``(U, B)`` float64."""
    n_u, n_b = msg.shape
    for b in range(n_b):
        mx[b] = msg[0, b]
    for u in range(1, n_u):
        row = msg[u]
        for b in range(n_b):
            if row[b] > mx[b]:
                mx[b] = row[b]
    inv = np.empty(n_b)
    for b in range(n_b):
        inv[b] = 1.0 / mx[b] if mx[b] > 0 else 1.0
    for u in range(n_u):
        row = msg[u]
        dst = out[u]
        for b in range(n_b):
            dst[b] = row[b] * inv[b]
