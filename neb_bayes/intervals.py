"""Equal-tailed intervals over parameter draws: the bounds every report and batch table
carries with a probability."""

from __future__ import annotations

import numpy as np

__all__ = ["equal_tailed"]


def equal_tailed(draws: np.ndarray, interval_prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of the equal-tailed interval of probability ``interval_prob``
    over the first dimension of ``draws``: what ``np.quantile(draws, [q, 1 - q], axis=0)``
    gives (``q = (1 - interval_prob) / 2``, numpy's default linear interpolation), bit for
    bit, a cell with a NaN giving NaN.

    Each cell's draws are copied contiguous and sorted (numpy's vectorised sort) and the two
    order statistics either side of each quantile read off: ~0.2 ms for 1,000 draws of 62
    cells, where ``np.quantile`` takes ~0.85 ms (its partition at four positions along a
    strided dimension), most of a batch case's time outside the engine.

    Parameters
    ----------
    draws
        ``(n_draws, ...)``, at least one draw.
    interval_prob
        Probability inside the interval, in [0, 1].

    Returns
    -------
    lo, hi
        Shaped like ``draws[0]``.
    """
    draws = np.asarray(draws)
    q = (1.0 - interval_prob) / 2.0
    if draws.dtype != np.float64 or draws.ndim == 0 or draws.shape[0] == 0:
        lo, hi = np.quantile(draws, [q, 1.0 - q], axis=0)
        return lo, hi
    n = draws.shape[0]
    cells = np.ascontiguousarray(draws.reshape(n, -1).T)
    cells.sort(axis=-1)                                   # NaN last, as np.quantile's partition
    virtual = (n - 1) * np.array([q, 1.0 - q])
    prev = np.floor(virtual)
    gamma = virtual - prev
    nan = np.isnan(cells[:, -1])
    out = []
    for v, p, g in zip(virtual, prev.astype(np.intp), gamma, strict=True):
        # numpy's indexes and interpolation (``_get_indexes``, ``_lerp``)
        i, j = (-1, -1) if v >= n - 1 else (0, 0) if v < 0 else (p, p + 1)
        a, b = cells[:, i], cells[:, j]
        d = b - a
        bound = b - d * (1 - g) if g >= 0.5 else a + d * g
        bound[nan] = np.nan
        out.append(bound.reshape(draws.shape[1:]))
    return out[0], out[1]
