"""Small tensor helpers shared by the prior and the inference engine."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from neb_bayes.accel import use_compiled


@functools.cache
def _move_order(ndim: int, source: int, destination: int) -> tuple[int, ...]:
    src, dst = source % ndim, destination % ndim
    order = [d for d in range(ndim) if d != src]
    order.insert(dst, src)
    return tuple(order)


def move_axis(x: np.ndarray, source: int, destination: int) -> np.ndarray:
    """``np.moveaxis(x, source, destination)`` for one axis of an array (the same view),
    without its argument checks: ~0.3 against ~3 us, in loops that call it per factor."""
    return x.transpose(_move_order(x.ndim, source, destination))


def sum_factors(parts: list[np.ndarray]) -> np.ndarray:
    """Sum log-factors that broadcast to one joint tensor, with as few full-size passes as
    possible: each factor is first added into a larger one whose dimensions contain its own
    (:func:`merge_nested`).
    """
    merged = merge_nested([np.asarray(p, dtype=float) for p in parts])
    total = merged[0]
    for p in merged[1:]:
        total = total + p
    return total


def distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``rows`` ``(R, n)``, numbered in order of first appearance:
    ``(first, inverse)``, the index of each distinct row's first appearance ``(R',)``
    (ascending) and each row's number ``(R,)`` (``rows[first][inverse] == rows``).

    Rows are compared by their bytes, each row one opaque item (4-5x faster than
    ``np.unique(axis=0)``, which compares field by field): -0.0 and 0.0 count as different,
    which can only split a class of equal rows, never merge unequal ones."""
    rows = np.ascontiguousarray(rows)
    if rows.shape[1] == 0:                      # rows without columns are all equal
        return np.zeros(min(1, rows.shape[0]), dtype=np.int64), np.zeros(rows.shape[0],
                                                                          dtype=np.int64)
    items = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(items, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty(first.size, dtype=np.int64)
    rank[order] = np.arange(first.size)
    return first[order], rank[inverse.reshape(-1)]


#: elimination orders already worked out, by the factors' scopes and the axis sizes
_ORDERS: dict[tuple, tuple[int, ...]] = {}


#: above this many variables the elimination order is greedy instead of optimal
EXACT_ORDER_MAX = 12


def _elimination_order(scopes: list[frozenset], sizes: dict[int, int]) -> tuple[int, ...]:
    """Variable-elimination order with the least total work: the smallest sum, over the
    steps, of the table each step multiplies (found by dynamic programming over the sets of
    eliminated variables; greedy beyond :data:`EXACT_ORDER_MAX` variables).  Deterministic."""
    key = (tuple(tuple(sorted(sc)) for sc in scopes), tuple(sorted(sizes.items())))
    order = _ORDERS.get(key)
    if order is None:
        order = (_optimal_order(scopes, sizes) if len(sizes) <= EXACT_ORDER_MAX
                 else _greedy_order(scopes, sizes))
        if len(_ORDERS) > 4096:
            _ORDERS.clear()
        _ORDERS[key] = order
    return order


def _optimal_order(scopes: list[frozenset], sizes: dict[int, int]) -> tuple[int, ...]:
    """The order minimising the summed table sizes.  Eliminating ``v`` after the set ``S``
    multiplies a table over ``v`` and every variable outside ``S`` reachable from ``v``
    through ``S`` in the interaction graph, whatever the order within ``S``, so the best
    order is a shortest path over the subsets (ties: the lower variable first)."""
    vs = sorted(sizes)
    n = len(vs)
    pos = {v: i for i, v in enumerate(vs)}
    adj = [0] * n
    for sc in scopes:
        mask = 0
        for v in sc:
            mask |= 1 << pos[v]
        for v in sc:
            adj[pos[v]] |= mask
    adj = [a & ~(1 << i) for i, a in enumerate(adj)]

    sz = [sizes[v] for v in vs]
    prods: dict[int, int] = {}

    def table(i: int, done: int) -> int:
        reach = seen = frontier = 1 << i
        while frontier:
            nb = 0
            while frontier:
                low = frontier & -frontier
                nb |= adj[low.bit_length() - 1]
                frontier ^= low
            nb &= ~seen
            seen |= nb
            reach |= nb & ~done
            frontier = nb & done
        size = prods.get(reach)
        if size is None:
            size = prods[reach] = math.prod(sz[j] for j in range(n) if reach >> j & 1)
        return size

    best: dict[int, tuple[int, tuple[int, ...]]] = {0: (0, ())}
    for done in sorted(range(1 << n), key=lambda m: (bin(m).count("1"), m)):
        cost, path = best[done]
        for i in range(n):
            if done >> i & 1:
                continue
            nxt = done | 1 << i
            c = cost + table(i, done)
            if nxt not in best or c < best[nxt][0]:
                best[nxt] = (c, path + (vs[i],))
    return best[(1 << n) - 1][1]


def _greedy_order(scopes: list[frozenset], sizes: dict[int, int]) -> tuple[int, ...]:
    """Greedy order: next the variable whose elimination multiplies the smallest table
    (ties: the lower index)."""
    live = [set(sc) for sc in scopes]
    left = set(sizes)
    out = []
    while left:
        def cost(v, live=live):
            union = set().union(*(sc for sc in live if v in sc)) or {v}
            return (int(np.prod([sizes[u] for u in union])), v)
        v = min(left, key=cost)
        union = set().union(*(sc for sc in live if v in sc))
        live = [sc for sc in live if v not in sc] + [union - {v}]
        left.discard(v)
        out.append(v)
    return tuple(out)


def _product(tables: list[np.ndarray]) -> np.ndarray:
    """Elementwise product of broadcastable tables, into one new float64 array (multiplied in
    float64, as in the compiled loops)."""
    if len(tables) == 1:
        return tables[0]
    out = np.empty(np.broadcast_shapes(*(t.shape for t in tables)))
    np.multiply(tables[0], tables[1], out=out, dtype=np.float64)
    for t in tables[2:]:
        np.multiply(out, t, out=out)
    return out


#: offsets of :func:`product_sum`'s loop, by the tables' shapes and strides and the kept
#: dimensions
_OFFSETS: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...],
                            int]] = {}


def _offsets(shapes: tuple[tuple[int, ...], ...], strides: tuple[tuple[int, ...], ...],
             keep: tuple[int, ...]):
    """Each table's first element at every state point of the product (from its strides in
    elements: a table broadcast over the product), the points grouped by the output point
    they are summed into (C order within a group), and each output point's first element in
    the C-contiguous output."""
    key = (shapes, strides, keep)
    hit = _OFFSETS.get(key)
    if hit is None:
        full = np.broadcast_shapes(*(sh[:-1] for sh in shapes))
        batch = max(sh[-1] for sh in shapes)
        out_shape = tuple(n if d in keep else 1 for d, n in enumerate(full)) + (batch,)

        def offsets(shape, steps):
            off = np.zeros((), dtype=np.int64)
            for d, n in enumerate(full):
                step = int(steps[d]) if shape[d] > 1 else 0
                off = off[..., None] + np.arange(n, dtype=np.int64) * step
            return off.reshape(-1)

        out_steps = np.cumprod((out_shape[1:] + (1,))[::-1])[::-1]       # C order
        out_all = offsets(out_shape, out_steps)
        order = np.argsort(out_all, kind="stable")
        out_sorted = out_all[order]
        first = np.flatnonzero(np.r_[True, out_sorted[1:] != out_sorted[:-1]])
        table_offsets = np.stack([offsets(sh, st) for sh, st in zip(shapes, strides,
                                                                    strict=True)])[:, order]
        wide = np.array([sh[-1] > 1 or batch == 1 for sh in shapes])
        hit = (np.ascontiguousarray(table_offsets), wide,
               np.r_[first, out_all.size].astype(np.int64), out_sorted[first], out_shape, batch)
        if len(_OFFSETS) > 4096:
            _OFFSETS.clear()
        _OFFSETS[key] = hit
    return hit


def _flat_run(t: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """A flat view of a table's memory from its first to its last element, and its strides
    in elements (the batch dimension, last, with unit stride; copied otherwise)."""
    if t.flags.c_contiguous and t.size:    # most tables: no test of the strides
        return t.reshape(-1), _c_steps(t.shape)    # (the same run; a reshape costs less)
    item = t.itemsize
    if t.strides[-1] != item and t.shape[-1] > 1 or any(st < 0 for st in t.strides):
        t = np.ascontiguousarray(t)
    if t.flags.c_contiguous and t.size:
        return t.reshape(-1), _c_steps(t.shape)
    steps = tuple(st // item if n > 1 else 0 for st, n in zip(t.strides, t.shape, strict=True))
    span = 1 + sum((n - 1) * st for n, st in zip(t.shape, steps, strict=True))
    return np.lib.stride_tricks.as_strided(t, shape=(span,), strides=(item,)), steps


@functools.lru_cache(maxsize=4096)
def _c_steps(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A C-contiguous table's strides in elements (0 along dimensions of size 1)."""
    steps, size = [], 1
    for n in reversed(shape):
        steps.append(size if n > 1 else 0)
        size *= n
    return tuple(reversed(steps))


def product_sum(tables: list[np.ndarray], keep, scale: np.ndarray | None = None,
                dtype=np.float64) -> np.ndarray:
    """The elementwise product of broadcastable batch-last tables, summed over every state
    dimension not in ``keep`` (kept with size 1), without forming the product (one compiled
    pass, :func:`neb_bayes.tensor_kernels.product_sum`; tables may be views with strided
    state dimensions).  The tables share one float type; products and sums are float64,
    times ``scale`` (one factor per batch entry) if given, then rounded once to ``dtype``
    (what a caller would get from the float64 sums multiplied and cast, without that pass
    over them)."""
    if not use_compiled():
        drop = tuple(d for d in range(tables[0].ndim - 1) if d not in keep)
        out = _product(tables).sum(axis=drop, keepdims=True, dtype=np.float64)
        return (out if scale is None else out * scale).astype(dtype, copy=False)
    from neb_bayes.tensor_kernels import product_sum as compiled

    flat, (table_offsets, wide, group_starts, out_offsets, out_shape, batch) = _plan(tables,
                                                                                    keep)
    out = np.empty(out_shape, dtype=dtype)
    factor = _NO_SCALE if scale is None else np.ascontiguousarray(scale, dtype=np.float64)
    compiled(flat, table_offsets, wide, group_starts, out_offsets, out.reshape(-1),
             factor.reshape(-1), batch)
    return out


#: :func:`product_sum`'s compiled loop without a scale
_NO_SCALE = np.empty(0)


#: the compiled loops take their tables as a tuple of one of these lengths, padded with a
#: one-element table the loop never reads (it counts the tables by its offsets): numba
#: compiles a loop once per tuple type, ~1.3 s each, and a tuple's type includes its
#: length, so one per number of tables (1 to 10 in a batch with draws, ~20 s of compiling
#: in every new process until the disk cache has them) became one per size here; more
#: tables than the largest size are passed as they are
TUPLE_SIZES = (4, 16)

#: how many padding tables a tuple of ``n`` tables gets (index ``n``)
_PAD_COUNT = tuple(next((s for s in TUPLE_SIZES if s >= n), n) - n
                   for n in range(max(TUPLE_SIZES) + 1))

#: per float type, the most padding any tuple gets (one one-element table, repeated)
_PADS: dict[np.dtype, tuple[np.ndarray, ...]] = {}


def padded_length(n: int) -> int:
    """The length of a tuple of ``n`` tables once padded (:func:`padded`)."""
    return n + (_PAD_COUNT[n] if n < len(_PAD_COUNT) else 0)


def padded(flat: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """``flat`` padded to the next of :data:`TUPLE_SIZES` (shared by the batch engine's
    joint pass, :func:`neb_bayes.inference.kernels.fused_joint`)."""
    extra = _PAD_COUNT[len(flat)] if len(flat) < len(_PAD_COUNT) else 0
    if not extra:
        return flat
    pads = _PADS.get(flat[0].dtype)
    if pads is None:
        pads = _PADS[flat[0].dtype] = (np.ones(1, dtype=flat[0].dtype),) * max(TUPLE_SIZES)
    return flat + pads[:extra]


def _plan(tables: list[np.ndarray], keep):
    """The compiled loops' arguments for a product of ``tables`` summed to ``keep``: each
    table's flat run (padded, :func:`padded`) and the loop's offsets (:func:`_offsets`)."""
    flat, steps = zip(*(_flat_run(t) for t in tables), strict=True)
    return padded(flat), _offsets(tuple(t.shape for t in tables), steps, tuple(sorted(keep)))


def scaled_message(tables: list[np.ndarray], keep, dtype) -> tuple[np.ndarray, np.ndarray]:
    """:func:`product_sum` divided by its maximum per batch entry (entries whose maximum is
    0 are left as they are) in ``dtype``, and the maxima, shaped to broadcast against it;
    compiled: one call (:func:`neb_bayes.tensor_kernels.message`), the float64 sums never
    stored."""
    if not use_compiled():
        msg = product_sum(tables, keep)
        mx = msg.max(axis=tuple(range(msg.ndim - 1)), keepdims=True)
        return (msg * (1.0 / np.where(mx > 0, mx, 1.0))).astype(dtype, copy=False), mx
    from neb_bayes.tensor_kernels import message

    flat, (table_offsets, wide, group_starts, out_offsets, out_shape, batch) = _plan(tables,
                                                                                    keep)
    out = np.empty(out_shape, dtype=dtype)
    mx = np.empty(batch)
    message(flat, table_offsets, wide, group_starts, out_offsets, out.reshape(-1), mx, batch)
    return out, mx.reshape((1,) * (out.ndim - 1) + (batch,))


class _Elimination:
    """One upward pass of variable elimination over potentials with the batch dimension last.

    ``pool`` holds the factors, then one message per eliminated variable; step ``i``
    multiplies the pool entries ``inputs[i]`` (every live table that depends on ``order[i]``)
    and sums ``order[i]`` out (:func:`scaled_message`: the product is never formed).  Messages
    are rescaled by their maximum per batch entry (and stored in the tables' float type);
    ``log_scale`` (per batch entry) and the final constant give the log partition function.
    ``low`` is, per batch entry, the smallest of the messages' maxima (see
    :data:`SINGLE_LOW`); ``z`` the final constant.
    """

    def __init__(self, tables: list[np.ndarray], scopes: list[frozenset], order: tuple[int, ...]):
        nv = tables[0].ndim - 1
        dtype = tables[0].dtype
        steps, self.inputs, self.scopes, rest = _schedule(tuple(scopes), order, nv)
        self.pool = pool = list(tables)
        log_scale = 0.0
        low = np.inf
        with np.errstate(divide="ignore", invalid="ignore"):
            for ids, keep in steps:
                msg, mx = scaled_message([pool[i] for i in ids], keep, dtype)
                mx = mx.reshape(-1)
                log_scale = log_scale + np.log(mx)
                low = np.minimum(low, mx)
                pool.append(msg)
            self.log_scale, self.low = log_scale, low
            # what is left has no state dimension: constants per batch entry
            z = self.z = _product([pool[i].reshape(-1).astype(float) for i in rest]) if rest else 1.0
            self.log_z = log_scale + np.log(z)


@functools.lru_cache(maxsize=4096)
def _schedule(scopes: tuple[frozenset, ...], order: tuple[int, ...], nv: int):
    """:class:`_Elimination`'s steps for factors of these scopes eliminated in ``order``:
    per step the pool entries it multiplies and the dimensions it keeps; the entries each
    step read (``inputs``), every entry's scope (the factors', then one per message), and
    the entries left at the end."""
    scopes = list(scopes)
    live = set(range(len(scopes)))
    steps, inputs = [], []
    for v in order:
        ids = sorted(i for i in live if v in scopes[i])
        steps.append((tuple(ids), tuple(a for a in range(nv) if a != v)))
        inputs.append(ids)
        live.difference_update(ids)
        live.add(len(scopes))
        scopes.append(frozenset().union(*(scopes[i] for i in ids)) - {v})
    return tuple(steps), tuple(map(tuple, inputs)), tuple(scopes), tuple(sorted(live))


def _state_max(t: np.ndarray) -> np.ndarray:
    """The maximum over every dimension but the last (the batch) of a batch-last table,
    shaped to broadcast against it: over the table's memory as one 2-D reduction where it
    is contiguous batch-last or batch-first (a reduction over several strided dimensions
    is many times slower)."""
    first = move_axis(t, -1, 0)
    if t.flags.c_contiguous:
        mx = t.reshape(-1, t.shape[-1]).max(axis=0)
    elif first.flags.c_contiguous:
        mx = first.reshape(t.shape[-1], -1).max(axis=1)
    else:
        return t.max(axis=tuple(range(t.ndim - 1)), keepdims=True)
    return mx.reshape((1,) * (t.ndim - 1) + (t.shape[-1],))


@functools.lru_cache(maxsize=4096)
def _nesting(shapes: tuple[tuple[int, ...], ...]
             ) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """:func:`merge_nested`'s plan for tables of these shapes (one number of dimensions):
    the ``(guest, host)`` steps in the order they are taken (each table, smallest first,
    into the first larger one that contains it), and the roots (the tables no larger one
    contains), smallest first."""
    order = sorted(range(len(shapes)), key=lambda i: math.prod(shapes[i]))
    dims = [frozenset(d for d, n in enumerate(shapes[i]) if n > 1) for i in order]
    steps, roots = [], []
    for k, i in enumerate(order):
        host = next((order[j] for j in range(k + 1, len(order)) if dims[k] <= dims[j]), None)
        if host is None:
            roots.append(i)
        else:
            steps.append((i, host))
    return tuple(steps), tuple(roots)


def merge_nested(tables: list[np.ndarray], combine: np.ufunc = np.add,
                 owned: list[bool] | None = None) -> list[np.ndarray]:
    """Combine each table into a larger one whose non-singleton dimensions contain its own
    (tables broadcast against each other; shorter ones are padded on the left): ``np.add``
    for log-factors, ``np.multiply`` for tables on the probability scale.  Fewer, larger
    tables for what follows to read (a sum over the joint tensor, the batch engine's
    factors, every step of the contraction).  Smaller tables first, each into the first
    larger one that contains it (its host), which then goes into its own host in turn: every
    table lands in a root (a table that fits in no larger one), and each combination costs
    the size of its host, not of the root (the batch engine's largest root, 648 states, gets
    two of its eight tables directly instead of all of them).  A table marked ``owned``
    (made by the caller for this purpose) is combined into in place; any other host (it may
    be the caller's, or a view) is replaced by a new C-contiguous array, and a root without
    guests is returned as it is."""
    tables = [np.asarray(t) for t in tables]
    ndim = max(t.ndim for t in tables)
    tables = [t if t.ndim == ndim else t.reshape((1,) * (ndim - t.ndim) + t.shape)
              for t in tables]
    owned = [False] * len(tables) if owned is None else list(owned)
    steps, roots = _nesting(tuple(t.shape for t in tables))
    for guest, host in steps:
        t, g = tables[host], tables[guest]
        if owned[host]:
            combine(t, g, out=t)
        else:
            tables[host] = combine(t, g, out=np.empty(t.shape, np.result_type(t, g)))
            owned[host] = True
    return [tables[r] for r in roots]


@dataclass(frozen=True)
class FactorPlan:
    """How :func:`neb_bayes.tensor_kernels.tile_factors` makes probability tables from
    log-factors read where they lie (the batch engine's cases, the draws contraction's
    draws).

    Factor ``q`` lies in one of the arrays handed to the kernel, from an offset, with an
    element stride per joint axis (0 off its scope).  The factors are combined as
    :func:`merge_nested` combines tables of their shapes (the same steps in the same order:
    the same sums), the roots laid one after another in the kernel buffer's first
    ``n_entries`` rows (C order over their joint-axis shapes), a row of ones after them,
    the other factors' rows after that.
    """

    #: the kernel's plan: ``node_part, node_row, own_ptr, own_map, step_guest, step_host,
    #: gmap_ptr, gmap, roots`` (int64 arrays, :func:`~neb_bayes.tensor_kernels.tile_factors`)
    arrays: tuple[np.ndarray, ...]
    shapes: tuple[tuple[int, ...], ...]   # each root's shape over the joint axes (1 elsewhere)
    n_entries: int                        # the roots' entries, one after another
    rows: int                             # the kernel buffer's rows


@functools.lru_cache(maxsize=512)
def factor_plan(factors: tuple[tuple[int, int, tuple[int, ...], tuple[int, ...]], ...]
                ) -> FactorPlan:
    """The :class:`FactorPlan` of log-factors given as ``(array, offset, element strides per
    joint axis, shape over the joint axes)`` (cached: it depends on the layout only)."""
    jshapes, own = [], []
    for _, offset, strides, jshape in factors:
        at = np.full(jshape, offset, dtype=np.int64)
        for d, (k, st) in enumerate(zip(jshape, strides, strict=True)):
            if k > 1:
                at += (np.arange(k, dtype=np.int64) * st).reshape(
                    (1,) * d + (k,) + (1,) * (len(jshape) - d - 1))
        own.append(at.ravel())
        jshapes.append(tuple(jshape))
    steps, roots = _nesting(tuple(jshapes))
    row = np.zeros(len(factors), np.int64)
    at = 0
    for r in roots:
        row[r], at = at, at + math.prod(jshapes[r])
    n_entries, at = at, at + 1                                   # row n_entries: ones
    for q in range(len(factors)):
        if q not in roots:
            row[q], at = at, at + math.prod(jshapes[q])
    gmaps = [np.broadcast_to(np.arange(math.prod(jshapes[g])).reshape(jshapes[g]),
                             jshapes[h]).ravel() for g, h in steps]

    def ptr(blocks):
        return np.cumsum([0] + [b.size for b in blocks]).astype(np.int64)

    def cat(blocks):
        return np.concatenate(blocks + [np.zeros(0)]).astype(np.int64)

    arrays = (np.array([f[0] for f in factors], np.int64), row, ptr(own), cat(own),
              np.array([g for g, _ in steps], np.int64), np.array([h for _, h in steps], np.int64),
              ptr(gmaps), cat(gmaps), np.array(roots, np.int64))
    return FactorPlan(arrays=arrays, shapes=tuple(jshapes[r] for r in roots),
                      n_entries=n_entries, rows=at)


#: a chunk of :func:`contract_marginals` keeps its largest table under this many bytes
#: (measured: the 1,000 draws of a report whose largest table has 3,240 states per draw are
#: contracted fastest in two chunks of 500; smaller tables fastest all at once)
CHUNK_BYTES = 8 << 20


#: with ``single``, batch entries where a message's maximum (or Z, or a marginal's total) falls
#: below this, relative to its inputs' maxima of 1, are recomputed in double precision: values
#: float32 rounds to 0 are below 1.2e-38 of their table's maximum (and products keep a
#: relative precision of 6e-8 down to 1.2e-38), so elsewhere they are below 1e-8 of what they
#: are summed with
SINGLE_LOW = 1e-30


def contract_marginals(parts: list[np.ndarray], masks: list[np.ndarray] | None = None,
                       n_axes: int | None = None, potentials: list[np.ndarray] | None = None,
                       single: bool = False, chunk: int | None = None):
    """Marginals of exp(sum of log-factors) without building the joint tensor.

    ``parts`` broadcast to ``(D, S_0, ..., S_{n-1})`` (a leading batch dimension, e.g. parameter
    draws, then one dimension per axis).  The sum over joint states factorises along the
    factors' small scopes: one pass of variable elimination (least-work order) sends messages up,
    one pass sends them back (Shafer-Shenoy), and every axis' marginal comes from the table
    where it was eliminated, so all marginals cost about twice one contraction.  Tables keep
    the batch dimension last, so every product is a contiguous elementwise loop, and no
    product is ever formed (:func:`product_sum`).

    Returns ``(marginals, masked)``: per axis ``(D, S_a)`` normalised marginals, and for the
    optional per-axis 0/1 ``masks`` the probability ``(D,)`` that every axis is in its mask.
    With ``n_axes``, only the first ``n_axes`` dimensions are axes to report; later ones
    (e.g. the symptom-propensity level) are summed out.  ``potentials`` are more factors
    given on the probability scale (non-negative, shaped like ``parts``): no log/exp round trip.

    With ``single``, the tables (log-factors exponentiated with a maximum of 1 per batch
    entry, potentials as given) and the messages are float32, the products and sums float64
    (:mod:`neb_bayes.tensor_kernels`): every result is within about 1e-6 of the double
    precision one (each value rounds (tables + 2 steps) times at 6e-8: a message is rounded
    when written, then when scaled, except its largest value, exactly 1).  Batch entries
    where a message's maximum falls below :data:`SINGLE_LOW` (factors in conflict by more
    than ~69 nats, where values float32 rounds to 0 could matter) are recomputed in double
    precision, entry by entry, so a result does not depend on the other entries of its
    batch.

    With ``chunk``, the log-factors are summed once for the whole batch and the tables made
    and contracted in chunks of equal size, at most ``chunk`` batch entries and at most
    :data:`CHUNK_BYTES` in the largest table (a chunk's tables and messages stay in cache);
    results do not depend on it.
    """
    nv = max(p.ndim for p in parts) - 1
    nd = nv if n_axes is None else n_axes
    dtype = np.float32 if single else np.float64
    # the log-factors batch-last (views), summed into hosts that contain their scopes
    logs = merge_nested(
        [move_axis(np.asarray(p, dtype=float).reshape((1,) * (nv + 1 - p.ndim) + p.shape), 0, -1)
         for p in parts])
    maxima = [_state_max(p) for p in logs]
    pots = [move_axis(p.reshape((p.shape[0],) + (1,) * (nv + 1 - p.ndim) + p.shape[1:]), 0, -1)
            for p in potentials or []]
    batch = max(t.shape[-1] for t in logs + pots)
    # chunks of equal size, at most ``chunk`` entries and no larger than a largest table of
    # CHUNK_BYTES (less Python per entry with larger chunks, less cache traffic with smaller)
    largest = max(math.prod(t.shape[:-1]) for t in logs + pots) * np.dtype(dtype).itemsize
    step = batch if chunk is None else max(1, min(chunk, CHUNK_BYTES // largest))
    step = -(-batch // -(-batch // step))

    def cut(t: np.ndarray, start: int) -> np.ndarray:
        return t[..., start:start + step] if t.shape[-1] > 1 else t

    order = None
    pieces = []
    for start in range(0, batch, step):
        # each chunk's tables compact (C-contiguous, the chunk's draws only): a chunk's
        # tables and messages then stay in cache
        tables, owned = [], []
        for p, mx in zip(logs, maxima, strict=True):
            # exp(p - max), a maximum of 1 per batch entry (the difference in float64)
            t = np.empty(cut(p, start).shape, dtype=dtype)
            np.subtract(cut(p, start), cut(mx, start), out=t)
            tables.append(np.exp(t, out=t))
            owned.append(True)
        for p in pots:
            # (probabilities, not rescaled: far from float32's range unless a value is tiny,
            # and then the check on the messages' maxima below applies)
            # (a chunk of them a view where it has the tables' type, its batch still of unit
            # stride: the merge reads a guest where it lies, and gives a host a new array
            # while it multiplies into it, one pass instead of a copy and a product)
            tables.append(cut(p, start).astype(dtype, copy=False))
            owned.append(not np.may_share_memory(tables[-1], p))
        tables = merge_nested(tables, np.multiply, owned)
        if order is None:
            scopes = [frozenset(i for i in range(nv) if t.shape[i] > 1) for t in tables]
            sizes = {i: t.shape[i] for t in tables for i in range(nv) if t.shape[i] > 1}
            order = _elimination_order(scopes, sizes)
        pieces.append(_contract_tables(tables, scopes, order, sizes, nd, masks))
    if len(pieces) == 1:
        out, masked, low = pieces[0]
    else:
        out = [np.concatenate([np.broadcast_to(p[0][a], (p[2].size, p[0][a].shape[1]))
                               for p in pieces]) for a in range(nd)]
        masked = None if masks is None else np.concatenate(
            [np.broadcast_to(p[1], (p[2].size,)) for p in pieces])
        low = np.concatenate([p[2] for p in pieces])
    if single:
        bad = np.flatnonzero(_full(~(low >= SINGLE_LOW), (batch,)))
        if bad.size:
            # these entries in double precision (each entry's numbers are its own)
            redo_m, redo_z = contract_marginals(
                [p[bad] if p.shape[0] > 1 else p for p in parts], masks, n_axes,
                [p[bad] if p.shape[0] > 1 else p for p in potentials or []])
            out = [np.array(np.broadcast_to(o, (batch, o.shape[1]))) for o in out]
            for o, r in zip(out, redo_m, strict=True):
                o[bad] = r
            if masked is not None:
                masked = np.array(masked)
                masked[bad] = redo_z
    return out, masked


#: the probability that every axis is in its mask (:func:`_contract_tables`) is one sum of
#: products over the masked states where they are at most this many (and log Z is above
#: ``MASKED_DIRECT_LOG_Z`` for every batch entry); else a pass of variable elimination
MASKED_DIRECT_MAX = 512
MASKED_DIRECT_LOG_Z = -600.0


def _full(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``np.broadcast_to(x, shape)``, or ``x`` itself where it has that shape already."""
    return x if x.shape == shape else np.broadcast_to(x, shape)


@functools.lru_cache(maxsize=4096)
def _downward(inputs: tuple[tuple[int, ...], ...], order: tuple[int, ...], n0: int,
              nd: int) -> tuple[tuple[int, int | None], ...]:
    """The downward pass's steps, last first: each step ``i`` that needs the message coming
    down (for its own marginal, an axis below ``nd``, or for the messages it passes down to
    the steps that fed it) with the step ``j`` consuming its message (``None``: the last)."""
    consumer = {m: j for j, ids in enumerate(inputs) for m in ids}
    need = [False] * len(order)
    for i, ids in enumerate(inputs):
        need[i] = order[i] < nd or any(need[k - n0] for k in ids if k >= n0)
    return tuple((i, consumer.get(n0 + i)) for i in reversed(range(len(order))) if need[i])


def _mask_cuts(masks: list[np.ndarray]) -> tuple[tuple[np.ndarray, ...], tuple]:
    """Each 0/1 mask's kept states, and how a table is cut to them: a slice where they are
    consecutive (e.g. one healthy state: a view), else the states (kept by the masks'
    values)."""
    return _cuts_of(tuple(np.asarray(m, dtype=float).tobytes() for m in masks))


@functools.lru_cache(maxsize=64)
def _cuts_of(masks: tuple[bytes, ...]) -> tuple[tuple[np.ndarray, ...], tuple]:
    kept = tuple(np.flatnonzero(np.frombuffer(m) != 0) for m in masks)
    for ix in kept:
        ix.flags.writeable = False
    return kept, tuple(
        (slice(ix[0], ix[-1] + 1) if ix.size and ix[-1] - ix[0] + 1 == ix.size else ix)
        for ix in kept)


def _contract_tables(tables: list[np.ndarray], scopes: list[frozenset], order: tuple[int, ...],
                     sizes: dict[int, int], nd: int, masks: list[np.ndarray] | None):
    """:func:`contract_marginals` on batch-last tables: the marginals, the masked
    probability, and per batch entry the smallest message maximum (or Z, or a marginal's
    total), which decides a single-precision entry's recomputation."""
    nv = tables[0].ndim - 1
    dtype = tables[0].dtype
    up = _Elimination(tables, scopes, order)
    low = np.minimum(up.low, up.z)
    batch = max(t.shape[-1] for t in up.pool)
    # downward pass: down[i] is the message into step i's table from the step consuming it
    n0 = len(tables)
    down: list[np.ndarray | None] = [None] * len(order)
    marg: dict[int, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):   # Z = 0: redone below
        for i, j in _downward(up.inputs, order, n0, nd):
            v = order[i]
            others = [] if j is None else [up.pool[k] for k in up.inputs[j] if k != n0 + i]
            if j is not None and down[j] is not None:
                others.append(down[j])
            if others:
                keep = up.scopes[n0 + i]
                down[i], mx = scaled_message(others, keep, dtype)
                low = np.minimum(low, mx.reshape(-1))
            if v < nd:
                # the belief of step i's table (its inputs and the message coming down),
                # summed to axis v
                inputs = [up.pool[k] for k in up.inputs[i]]
                if down[i] is not None:
                    inputs.append(down[i])
                m = product_sum(inputs, (v,)).reshape(sizes[v], -1)
                total = m.sum(axis=0, keepdims=True)
                low = np.minimum(low, total.reshape(-1))
                marg[v] = _full((m / total).T, (batch, sizes[v]))
    out = [marg[a] if a in marg else np.ones((batch, 1)) for a in range(nd)]
    masked = None
    if masks is not None:
        # P(every axis in its mask) = Z(tables cut to the masked states) / Z: a pass over
        # small tables (masks are 0/1)
        kept, cuts = _mask_cuts(masks)
        keep_ix = {a: kept[a] for a in range(nd) if a in sizes}
        if any(ix.size == 0 for ix in keep_ix.values()):
            masked = np.zeros(batch)
        else:
            picks = {a: cuts[a] for a in keep_ix}
            cut = []
            for t in tables:
                for a, pick in picks.items():
                    if t.shape[a] > 1:
                        t = (t[(slice(None),) * a + (pick,)] if isinstance(pick, slice)
                             else t.take(pick, axis=a))
                cut.append(t)
            cut_sizes = {a: n for a, n in sizes.items()
                         if a not in keep_ix or keep_ix[a].size > 1}
            cut_sizes.update({a: ix.size for a, ix in keep_ix.items() if ix.size > 1})
            # (not guarded: its values are small exactly when the probability is, and then
            # only their absolute error, relative to Z, counts)
            cut_scopes = [frozenset(a for a in range(nv) if t.shape[a] > 1) for t in cut]

            def eliminated(tabs: list[np.ndarray]) -> np.ndarray:
                return _Elimination(tabs, cut_scopes,
                                    _elimination_order(cut_scopes, cut_sizes)).log_z

            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                if math.prod(cut_sizes.values()) <= MASKED_DIRECT_MAX:
                    # a small grid (most healthy masks keep one or two states of an axis):
                    # its sum of products in one pass, not rescaled; it can fall below
                    # float64's range only where the probability is below 1e-47 (log Z >
                    # -600); the other entries by elimination, each on its own
                    log_cut = np.array(_full(np.log(product_sum(cut, []).reshape(-1)), (batch,)))
                    far = np.flatnonzero(_full(~(up.log_z > MASKED_DIRECT_LOG_Z), (batch,)))
                    if far.size:
                        log_cut[far] = eliminated([t[..., far] if t.shape[-1] > 1 else t
                                                   for t in cut])
                else:
                    log_cut = eliminated(cut)
                masked = _full(np.exp(log_cut - up.log_z), (batch,))
    return out, masked, _full(low, (batch,))
