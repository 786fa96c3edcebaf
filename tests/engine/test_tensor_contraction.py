"""Variable elimination in :mod:`neb_bayes.tensor`: the elimination order has the least total
work (checked against every permutation), and the contraction's marginals and masked
probability equal those of the joint tensor whatever the order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neb_bayes import tensor


def _random_scopes(rng, n_vars: int, n_factors: int) -> list[frozenset]:
    scopes = [frozenset({v}) for v in range(n_vars)]
    for _ in range(n_factors):
        k = int(rng.integers(2, min(4, n_vars) + 1))
        scopes.append(frozenset(rng.choice(n_vars, size=k, replace=False).tolist()))
    return scopes


def _work(scopes, sizes, order) -> int:
    live = [set(s) for s in scopes]
    total = 0
    for v in order:
        union = set().union(*(s for s in live if v in s)) or {v}
        total += int(np.prod([sizes[u] for u in union]))
        live = [s for s in live if v not in s] + [union - {v}]
    return total


@pytest.mark.parametrize("seed", range(12))
def test_optimal_order_has_the_least_total_work_of_all_orders(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 7))
    sizes = {v: int(rng.integers(2, 8)) for v in range(n)}
    scopes = _random_scopes(rng, n, int(rng.integers(2, 6)))
    order = tensor._optimal_order(scopes, sizes)
    assert sorted(order) == list(range(n))
    best = min(_work(scopes, sizes, p) for p in itertools.permutations(range(n)))
    assert _work(scopes, sizes, order) == best
    assert _work(scopes, sizes, order) <= _work(scopes, sizes, tensor._greedy_order(scopes, sizes))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("exact_max", [0, 12])
def test_contraction_equals_the_joint_tensor_with_either_order(seed, exact_max, monkeypatch):
    monkeypatch.setattr(tensor, "EXACT_ORDER_MAX", exact_max)
    monkeypatch.setattr(tensor, "_ORDERS", {})
    rng = np.random.default_rng(100 + seed)
    n, batch = 5, 3
    shape = tuple(int(x) for x in rng.integers(2, 5, size=n))
    scopes = _random_scopes(rng, n, 4)
    parts = []
    for sc in scopes:
        s = [batch] + [shape[v] if v in sc else 1 for v in range(n)]
        parts.append(rng.normal(scale=2.0, size=s))
    pot_shape = [batch] + [shape[v] if v in (0, 2) else 1 for v in range(n)]
    potentials = [rng.uniform(0.01, 1.0, size=pot_shape)]
    masks = [(rng.uniform(size=shape[v]) < 0.6).astype(float) for v in range(n)]
    for m in masks:
        m[0] = 1.0
    marg, masked = tensor.contract_marginals(parts, masks, potentials=potentials)
    log_joint = sum(np.broadcast_to(p, (batch, *shape)) for p in parts)
    joint = np.exp(log_joint - log_joint.max(axis=tuple(range(1, n + 1)), keepdims=True))
    joint = joint * potentials[0]
    joint /= joint.sum(axis=tuple(range(1, n + 1)), keepdims=True)
    for v in range(n):
        ref = joint.sum(axis=tuple(a + 1 for a in range(n) if a != v))
        np.testing.assert_allclose(marg[v], ref, rtol=1e-12, atol=1e-14)
    inside = joint
    for v in range(n):
        inside = inside * masks[v].reshape((1,) + tuple(shape[v] if a == v else 1
                                                         for a in range(n)))
    np.testing.assert_allclose(masked, inside.sum(axis=tuple(range(1, n + 1))),
                               rtol=1e-12, atol=1e-14)
