"""Compiled loop of the contraction in :mod:`neb_bayes.tensor`: a product of tables summed
over some of their dimensions in one pass, never forming the product.

Tables have the batch dimension (e.g. parameter draws) last and contiguous, so every step of
the loop is a contiguous run over the batch.  Each batch entry's numbers come from that
entry's own values only, multiplied and summed in a fixed order (the tables in the order
given, the state points in C order), so results do not depend on which other entries share
the batch.  Compiled by numba on first use and cached on disk (``cache=True``); imported
only by the contraction (the point path never loads numba).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["product_sum"]


@njit(cache=True, nogil=True)
def product_sum(tables, offsets, wide, out_offsets, out, batch):  # pragma: no cover
    """``out[o] += prod_t tables[t][offsets[t, u]]`` over the state points ``u``.

    ``tables`` a tuple of flat arrays of one float type (products are formed in it; ``out``,
    float64, accumulates the sums), ``offsets`` ``(T, U)`` each table's first
    element for state point ``u``, ``wide[t]`` whether table ``t`` has the batch dimension
    (otherwise its one value is broadcast), ``out_offsets`` ``(U,)`` the output's first
    element for ``u``; every run is ``batch`` long.
    """
    n_tab, n_pts = offsets.shape
    tmp = np.empty(batch, dtype=tables[0].dtype)     # products in the tables' precision
    for u in range(n_pts):
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
        acc = out[out_offsets[u]:out_offsets[u] + batch]
        for b in range(batch):
            acc[b] += tmp[b]
