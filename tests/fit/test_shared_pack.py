"""A fit graph's cohort arrays in a few shared variables (``pymc_model.SharedPack``).

nutpie's compiled log-density unpacks each shared variable of the graph in its own step,
and compiling that grew steeply with their number: a prevalence fit's 51 took ~45 s of
numba's time in every fit, before sampling began.
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytest
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.traversal import ancestors

from neb_bayes.fit import build_fit_model
from neb_bayes.inference.pymc_model import shared_pack
from neb_bayes.model.compiled import load_model
from neb_bayes.simulate import simulate
from tests.fit.conftest import covered


def test_packed_arrays_come_back_with_their_shapes_and_broadcasting():
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(3, 1, 4)), rng.integers(0, 9, size=(5, 2)),
              np.array(2.5), np.zeros((0, 3)), rng.normal(size=(1,)),
              rng.normal(size=(2, 3)).astype(np.float32), rng.integers(0, 4, size=7)]
    with shared_pack() as pack:
        views = [pack.add(x) for x in arrays]
    got = pytensor.function([], views)()
    for x, v, g in zip(arrays, views, got, strict=True):
        assert g.dtype == x.dtype and g.shape == x.shape
        np.testing.assert_array_equal(g, x)
        # size-1 dimensions are known to the graph (they broadcast), the others are not
        assert v.type.shape == tuple(1 if n == 1 else None for n in x.shape)
    assert len(pack.buffers) == 3     # float64, int64, float32


@pytest.mark.parametrize("n", [20, 60])
def test_a_prevalence_fits_graph_has_few_shared_variables(n):
    """Whatever the cohort's size: the pack's buffers and table, the per-person tables of
    each group (each its own variable, not copied into a buffer) and PyMC's dimension
    lengths."""
    model = load_model()
    sims = simulate(model, n, seed=21, p_repeat=0.0, p_measure=0.5, p_symptom_reported=0.2)
    cases = covered(model, [s.case for s in sims])
    pmodel = build_fit_model(model, cases, ("prevalence",))
    graph = pmodel.logp()
    shared = [v for v in ancestors([graph]) if isinstance(v, SharedVariable)]
    dims = set(pmodel.dim_lengths.values())
    packed = [v for v in shared if (v.name or "").startswith("pack_")]
    tables = [v for v in shared if v not in dims and v not in packed]
    assert {v.name for v in packed} <= {"pack_layout", "pack_float64", "pack_int64",
                                        "pack_float32"}
    # each remaining variable is a per-person table of the pattern Op
    consumers = {}
    for node in pytensor.graph.traversal.applys_between(shared, [graph]):
        for x in node.inputs:
            consumers.setdefault(x, set()).add(type(node.op).__name__)
    for v in tables:
        assert consumers[v] == {"_PatternLogLik"}, (v, consumers[v])
    assert len(tables) <= 4
