"""Compiled loop of the draws path (:mod:`neb_bayes.inference.draws`): the present symptoms'
noisy-OR probabilities over their cause axes, every propensity level and every draw, in one
pass instead of a chain of full-size numpy products and temporaries.

The draw dimension is last and contiguous; each draw's numbers come from its own values in
a fixed order (the same operations, in the same order, as the numpy expression they replace),
so they do not depend on the other draws.  Compiled by numba on first use and cached on disk
(``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["present_symptoms"]


@njit(cache=True, nogil=True)
def present_symptoms(leak, cause, starts, sizes, out):  # pragma: no cover
    """``out[g, p, d] = prod_y (1 - leak[y, p, d] * prod_a cause[y, starts[a] + g_a, d])``.

    ``leak`` ``(Y, P, D)`` and ``cause`` ``(Y, sum of sizes, D)`` are the exponentiated
    (``exp(log1m_...)``) tables of the symptoms, the cause axes' states stacked one axis after
    another (axis ``a`` from row ``starts[a]``, ``sizes[a]`` states); ``out`` ``(G, P, D)``
    with ``G`` the product of ``sizes`` (C order over the cause axes).
    """
    n_y, n_p, n_d = leak.shape
    n_a = sizes.size
    n_g = out.shape[0]
    idx = np.empty(n_a, dtype=np.int64)
    tmp = np.empty(n_d)
    for g in range(n_g):
        rest = g
        for a in range(n_a - 1, -1, -1):
            idx[a] = starts[a] + rest % sizes[a]
            rest //= sizes[a]
        for p in range(n_p):
            acc = out[g, p]
            for y in range(n_y):
                lk = leak[y, p]
                for d in range(n_d):
                    tmp[d] = lk[d]
                for a in range(n_a):
                    c = cause[y, idx[a]]
                    for d in range(n_d):
                        tmp[d] *= c[d]
                if y == 0:
                    for d in range(n_d):
                        acc[d] = 1.0 - tmp[d]
                else:
                    for d in range(n_d):
                        acc[d] *= 1.0 - tmp[d]
