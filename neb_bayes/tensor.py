"""Small tensor helpers shared by the prior and the inference engine."""

from __future__ import annotations

import numpy as np


def sum_factors(parts: list[np.ndarray]) -> np.ndarray:
    """Sum log-factors that broadcast to one joint tensor, with as few full-size passes as
    possible: each factor is first added into a larger one whose dimensions contain its own.
    """
    parts = [np.asarray(p, dtype=float) for p in parts]
    ndim = max(p.ndim for p in parts)
    parts = [p.reshape((1,) * (ndim - p.ndim) + p.shape) for p in parts]

    def dims(p):
        return frozenset(i for i, n in enumerate(p.shape) if n > 1)

    merged = merge_nested(parts)
    total = merged[0]
    for p in merged[1:]:
        total = total + p
    return total


def merge_nested(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Add each factor into a larger one whose non-singleton dimensions contain its own."""
    ndim = max(p.ndim for p in parts)
    parts = [np.asarray(p, dtype=float).reshape((1,) * (ndim - p.ndim) + p.shape) for p in parts]

    def dims(p):
        return frozenset(i for i, n in enumerate(p.shape) if n > 1)

    merged = sorted(parts, key=lambda p: p.size)
    i = 0
    while i < len(merged):
        p = merged[i]
        host = next((j for j in range(i + 1, len(merged)) if dims(p) <= dims(merged[j])), None)
        if host is not None:
            merged[host] = merged[host] + p
            del merged[i]
        else:
            i += 1
    return merged


#: contraction orders already worked out, by expression and operand shapes
_PATHS: dict[tuple, list] = {}


def contract_marginals(parts: list[np.ndarray], masks: list[np.ndarray] | None = None,
                       n_axes: int | None = None):
    """Marginals of exp(sum of log-factors) without building the joint tensor.

    ``parts`` broadcast to ``(D, S_0, ..., S_{n-1})`` (a leading batch dimension, e.g. parameter
    draws, then one dimension per axis).  The sum over joint states factorises along the
    factors' small scopes, so each marginal is an einsum contraction (variable elimination
    with an optimised order) instead of a pass over every joint state.

    Returns ``(marginals, masked)``: per axis ``(D, S_a)`` normalised marginals, and for the
    optional per-axis 0/1 ``masks`` the probability ``(D,)`` that every axis is in its mask.
    With ``n_axes``, only the first ``n_axes`` dimensions are axes to report; later ones
    (e.g. the symptom-propensity level) are summed out.
    """
    merged = merge_nested(parts)
    nd = merged[0].ndim - 1 if n_axes is None else n_axes
    batch = max(p.shape[0] for p in merged)
    letters = "abcdefghijklmnopqrstuvwxy"
    ops, subs = [], []
    for p in merged:
        keep = [i for i in range(p.ndim) if p.shape[i] > 1 or i == 0]
        mx = p.max(axis=tuple(range(1, p.ndim)), keepdims=True)
        e = np.exp(p - mx)
        e = e.reshape([p.shape[i] for i in keep])
        sub = "".join("z" if i == 0 else letters[i - 1] for i in keep)
        if e.shape[0] == 1 and batch > 1:  # batch-independent factor
            e, sub = e[0], sub[1:]
        ops.append(e)
        subs.append(sub)
    sizes = {}
    for p in merged:
        for i in range(1, p.ndim):
            if p.shape[i] > 1:
                sizes[letters[i - 1]] = p.shape[i]

    def run(extra_ops, extra_subs, out):
        expr = ",".join(subs + extra_subs) + "->" + out
        operands = [*ops, *extra_ops]
        key = (expr, tuple(o.shape for o in operands))
        path = _PATHS.get(key)
        if path is None:
            path = np.einsum_path(expr, *operands, optimize="greedy")[0]
            if len(_PATHS) > 4096:
                _PATHS.clear()
            _PATHS[key] = path
        return np.einsum(expr, *operands, optimize=path)

    marg = []
    for a in range(nd):
        if letters[a] in sizes:
            marg.append(run([], [], "z" + letters[a]))
        else:  # an axis no factor depends on (size 1 in this view)
            marg.append(run([], [], "z")[:, None])
    z = marg[0].sum(axis=1)
    marg = [m / z[:, None] for m in marg]
    masked = None
    if masks is not None:
        extra = [m for a, m in enumerate(masks) if letters[a] in sizes]
        extra_subs = [letters[a] for a in range(nd) if letters[a] in sizes]
        masked = run(extra, extra_subs, "z") / z
    return marg, masked
