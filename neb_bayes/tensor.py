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
    total = merged[0]
    for p in merged[1:]:
        total = total + p
    return total
