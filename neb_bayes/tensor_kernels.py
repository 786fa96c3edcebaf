"""Compiled loops of the contraction in :mod:`neb_bayes.tensor`: a product of tables summed
over some of their dimensions in one pass, never forming the product (in float64, or as a
message: in the tables' float type, rescaled to a maximum of 1).  Products and sums are
float64 whatever the tables' type: a product of single-precision values in single precision
falls below its normal range wherever small values meet (table entries of 1e-20 are common),
and arithmetic on such subnormal numbers is ~10x slower on x86 processors (it made a draws
contraction 1.2x slower in all).

Tables have the batch dimension (e.g. parameter draws) last with unit stride, so every step
of the loop is a contiguous run over the batch (a table may be a view whose other
dimensions are strided, e.g. a chunk of draws cut from a larger table).  Each batch entry's
numbers come from that entry's own values only, multiplied and summed in a fixed order (the
tables in the order given, the state points in C order), so results do not depend on which
other entries share the batch.  Compiled by numba on first use and cached on disk
(``cache=True``); imported only by the contraction and by the batch engine's loops
(:mod:`neb_bayes.inference.kernels`, whose joint pass makes its tables with
:func:`tile_factors`): a single report's point path never loads numba.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from neb_bayes.inference.draws_kernels import EXP_MIN, exp_into

__all__ = ["message", "product_sum", "tile_factors"]

#: :func:`tile_factors` writes 0 below this: where ``exp_into`` clamped its argument to
#: ``EXP_MIN`` (a value ~1e-308 of its table's maximum)
EXP_FLOOR = 2.0 * math.exp(EXP_MIN)


@njit(cache=True, nogil=True)
def tile_factors(parts, row_stride, plan, rows, i0, nb, ft, mx, chk, shift,
                 work):  # pragma: no cover
    """A tile's factor tables (batch entries ``rows[i0:i0 + nb]``, innermost in ``ft``)
    from their log-factors, as :func:`~neb_bayes.tensor.merge_nested` and an exponential
    would make them, without a pass over the whole batch's memory per step.

    ``parts``: flat arrays, entry ``r``'s values of array ``k`` from ``r * row_stride[k]``
    (0: the same for every entry).  ``plan`` (:class:`~neb_bayes.tensor.FactorPlan`'s
    arrays): factor ``q`` is read from ``parts[node_part[q]]`` at the offsets
    ``own_map[own_ptr[q]:own_ptr[q + 1]]`` (its entries in C order over the joint axes) into
    the rows of ``ft`` from ``node_row[q]``; each step then adds a guest into its host
    (``gmap``: each host entry's guest entry), in :func:`~neb_bayes.tensor.merge_nested`'s
    order, so the sums are its sums; each root (its rows first in ``ft``, one after another)
    is scaled to a maximum of 1 per entry and exponentiated (``draws_kernels.exp_into``,
    within 1 ulp; below ``EXP_FLOOR``, ~1e-308 of the maximum, 0), its log-maximum added to
    the entry's ``shift`` (NaN where a root holds NaN or +inf).  ``mx``, ``chk`` ``(B,)``
    and ``work`` (``ft``'s size) are scratch."""
    node_part, node_row, own_ptr, own_map, step_guest, step_host, gmap_ptr, gmap, roots = plan
    B = ft.shape[1]
    base = np.empty(B, np.int64)
    for q in range(node_part.size):
        k = node_part[q]
        src = parts[k]
        rs = row_stride[k]
        r0 = node_row[q]
        lo, hi = own_ptr[q], own_ptr[q + 1]
        for b in range(nb):
            base[b] = rows[i0 + b] * rs
        # entry by entry, the tile's entries innermost: contiguous writes, and each entry's
        # rows read along (one cache line per entry's row serves the next entries)
        for e in range(hi - lo):
            o = own_map[lo + e]
            dst = ft[r0 + e]
            for b in range(nb):
                dst[b] = src[base[b] + o]
    for k in range(step_guest.size):
        g0, h0 = node_row[step_guest[k]], node_row[step_host[k]]
        lo, hi = gmap_ptr[k], gmap_ptr[k + 1]
        for e in range(hi - lo):
            src = ft[g0 + gmap[lo + e]]
            dst = ft[h0 + e]
            for b in range(nb):
                dst[b] += src[b]
    for r in range(roots.size):
        q = roots[r]
        r0 = node_row[q]
        size = own_ptr[q + 1] - own_ptr[q]
        for b in range(nb):
            mx[b] = ft[r0, b]
            chk[b] = 0.0
        for e in range(1, size):
            row = ft[r0 + e]
            for b in range(nb):
                mx[b] = max(mx[b], row[b])
        for e in range(size):
            row = ft[r0 + e]
            for b in range(nb):
                row[b] -= mx[b]
                chk[b] += row[b]           # NaN if the root holds NaN or +inf
        for b in range(nb):
            i = rows[i0 + b]
            shift[i] += mx[b] if chk[b] == chk[b] else np.nan
        block = ft[r0:r0 + size].reshape(size * B)
        exp_into(block, block, work[:size * B])
        for e in range(size):
            row = ft[r0 + e]
            for b in range(nb):
                row[b] = row[b] if row[b] > EXP_FLOOR else 0.0


@njit(cache=True, nogil=True)
def _sums(tables, offsets, wide, group_starts, out_offsets, out, mx, scale,
          batch):  # pragma: no cover
    """The loop of :func:`product_sum` and :func:`message`: every output run written once in
    ``out``'s float type, each float64 sum times ``scale[b]`` where ``scale`` has ``batch``
    entries (else as it is); with ``mx`` (size ``batch``, else size 0) also the largest
    float64 sum of each batch entry (0 if none is positive)."""
    n_tab = offsets.shape[0]
    tmp = np.empty(batch)                            # products in float64
    acc = np.empty(batch)                            # sums in float64
    track = mx.size > 0
    scaled = scale.size > 0
    # with every table over the batch (the usual case) the product is added in the loop
    # that forms it, with up to four tables in one pass, more through ``tmp`` (the same
    # roundings in the same order as the general loop, fewer passes over the runs)
    fused = True
    for t in range(n_tab):
        fused = fused and wide[t]
    last = n_tab - 1
    # the first four tables and the last, looked up once (indices not static: the tuple
    # is padded beyond ``n_tab``, :data:`neb_bayes.tensor.TUPLE_SIZES`)
    t0, t1, t2, t3 = (tables[0], tables[min(1, last)], tables[min(2, last)],
                      tables[min(3, last)])
    tl = tables[last]
    for b in range(mx.size):
        mx[b] = 0.0
    for g in range(out_offsets.size):
        for b in range(batch):
            acc[b] = 0.0
        # slices of the runs (not offset indexing): the loops then vectorise
        if fused and n_tab == 1:
            for u in range(group_starts[g], group_starts[g + 1]):
                r0 = t0[offsets[0, u]:offsets[0, u] + batch]
                for b in range(batch):
                    acc[b] += r0[b]
        elif fused and n_tab == 2:
            for u in range(group_starts[g], group_starts[g + 1]):
                r0 = t0[offsets[0, u]:offsets[0, u] + batch]
                r1 = t1[offsets[1, u]:offsets[1, u] + batch]
                for b in range(batch):
                    acc[b] += np.float64(r0[b]) * r1[b]
        elif fused and n_tab == 3:
            for u in range(group_starts[g], group_starts[g + 1]):
                r0 = t0[offsets[0, u]:offsets[0, u] + batch]
                r1 = t1[offsets[1, u]:offsets[1, u] + batch]
                r2 = t2[offsets[2, u]:offsets[2, u] + batch]
                for b in range(batch):
                    acc[b] += np.float64(r0[b]) * r1[b] * r2[b]
        elif fused and n_tab == 4:
            for u in range(group_starts[g], group_starts[g + 1]):
                r0 = t0[offsets[0, u]:offsets[0, u] + batch]
                r1 = t1[offsets[1, u]:offsets[1, u] + batch]
                r2 = t2[offsets[2, u]:offsets[2, u] + batch]
                r3 = t3[offsets[3, u]:offsets[3, u] + batch]
                for b in range(batch):
                    acc[b] += np.float64(r0[b]) * r1[b] * r2[b] * r3[b]
        elif fused:
            for u in range(group_starts[g], group_starts[g + 1]):
                r0 = t0[offsets[0, u]:offsets[0, u] + batch]
                r1 = t1[offsets[1, u]:offsets[1, u] + batch]
                for b in range(batch):
                    tmp[b] = np.float64(r0[b]) * r1[b]
                for t in range(2, last):
                    run = tables[t][offsets[t, u]:offsets[t, u] + batch]
                    for b in range(batch):
                        tmp[b] *= run[b]
                run = tl[offsets[last, u]:offsets[last, u] + batch]
                for b in range(batch):
                    acc[b] += tmp[b] * run[b]
        else:
            for u in range(group_starts[g], group_starts[g + 1]):
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
        if scaled:
            for b in range(batch):
                dst[b] = acc[b] * scale[b]
        else:
            for b in range(batch):
                dst[b] = acc[b]
        if track:
            for b in range(batch):
                mx[b] = max(mx[b], acc[b])


@njit(cache=True, nogil=True)
def product_sum(tables, offsets, wide, group_starts, out_offsets, out, scale,
                batch):  # pragma: no cover
    """``out[o] = sum_u prod_t tables[t][offsets[t, u]]`` over the state points ``u`` of
    each output point ``o``, times ``scale[b]`` per batch entry where ``scale`` has
    ``batch`` entries (size 0: unscaled).

    ``tables`` a tuple of flat arrays of one float type (products are formed in float64;
    ``out``, of any float type, receives the sums, rounded once to it), of which the loop
    reads the first ``T`` (the rest pad the tuple to a length numba has compiled for),
    ``offsets`` ``(T, U)`` each table's
    first element for state point ``u``, the points grouped by output point (group ``g`` is
    ``group_starts[g]`` to ``group_starts[g + 1]``, in C order within it), ``wide[t]``
    whether table ``t`` has the batch dimension (otherwise its one value is broadcast),
    ``out_offsets`` ``(G,)`` each output point's first element; every run is ``batch``
    long.  Each output run is written once (``out`` need not be initialised).
    """
    _sums(tables, offsets, wide, group_starts, out_offsets, out, np.empty(0), scale, batch)


@njit(cache=True, nogil=True)
def message(tables, offsets, wide, group_starts, out_offsets, out, mx,
            batch):  # pragma: no cover
    """:func:`product_sum` in ``out``'s float type (the tables' type), divided by its maximum
    per batch entry: ``mx[b]`` (float64) receives the largest float64 sum (``mx[b] = 0``: the
    entry is left as it is).  One pass over the product and one over ``out``, no float64
    message written and read back; the sums are rounded to ``out``'s type, then scaled and
    rounded again, except the largest (every value that rounded to it), which is exactly 1
    (as when a float64 message is scaled, where a sum dominated by one state point keeps its
    precision)."""
    _sums(tables, offsets, wide, group_starts, out_offsets, out, mx, np.empty(0), batch)
    inv = np.empty(batch)
    top = np.empty(batch, dtype=out.dtype)
    for b in range(batch):
        inv[b] = 1.0 / mx[b] if mx[b] > 0 else 1.0
        top[b] = mx[b]
        if not top[b] > 0:             # nothing positive, or below the type's range
            top[b] = -1.0
    for g in range(out_offsets.size):
        dst = out[out_offsets[g]:out_offsets[g] + batch]
        for b in range(batch):
            dst[b] = 1.0 if dst[b] == top[b] else dst[b] * inv[b]
