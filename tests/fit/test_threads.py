"""One chain on several cores: the fit's Ops run their independent pieces of people (the
laboratory factors' parts, the elimination's passes) on threads
(:mod:`neb_bayes.inference.python_ops`), with the same results as on one; the fit gives
each chain in a process the cores the chains leave over."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

pytest.importorskip("pytensor")

from neb_bayes.fit import chain_layout  # noqa: E402
from neb_bayes.inference import lab_block, python_ops  # noqa: E402
from neb_bayes.inference.pymc_model import Elimination  # noqa: E402
from neb_bayes.model.compiled import load_model  # noqa: E402

from .test_lab_block import _blocks  # noqa: E402


@pytest.fixture
def three_threads():
    python_ops.set_threads(3)
    yield
    python_ops.set_threads(1)


def test_pieces_run_side_by_side_in_order(three_threads):
    """Three pieces that each wait for the other two finish only if they run at once; the
    results come back in the pieces' order."""
    barrier = threading.Barrier(3)

    def piece(i):
        barrier.wait(timeout=10)       # BrokenBarrierError unless all three run together
        return i * i, threading.get_ident()

    got = python_ops.map_pieces(piece, [1, 2, 3])
    assert [v for v, _ in got] == [1, 4, 9]
    assert len({t for _, t in got}) == 3


def test_one_thread_runs_the_pieces_in_the_calling_thread():
    assert python_ops.threads() == 1
    here = threading.get_ident()
    assert python_ops.map_pieces(lambda i: (i, threading.get_ident()), [0, 1]) == [
        (0, here), (1, here)]


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_threads_are_a_whole_number_of_at_least_one(n):
    with pytest.raises(ValueError, match="threads must be a whole number"):
        python_ops.set_threads(n)


def _pieces_in_child(queue):
    queue.put(python_ops.map_pieces(lambda i: i + 1, [1, 2, 3]))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_forked_process_makes_its_own_pool(three_threads):
    """pm.sample forks its chains: a pool made before the fork has no threads in the child,
    whose pieces would wait for ever; the child makes its own."""
    python_ops.map_pieces(lambda i: i, [0, 1])        # the parent's pool exists
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_pieces_in_child, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=60) == [2, 3, 4]
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()


def test_laboratory_parts_on_threads_give_the_same_factor_and_gradient(monkeypatch,
                                                                       three_threads):
    """With three threads a block's people come in more, smaller parts, run side by side:
    every person's factor is the same to the last bit (each is computed alone), and the
    gradient the same to the order of the parts' sums."""
    monkeypatch.setattr(lab_block, "MIN_PART_PEOPLE", 4)   # a small cohort's blocks split too
    python_ops.set_threads(1)
    blocks = _blocks(load_model(), {"gonadal", "thyroid"})
    python_ops.set_threads(3)
    rng = np.random.default_rng(5)
    split = 0
    for params, b, ad in blocks:
        k = b.n_latents
        threaded = lab_block.LabBlock(ad, b.shared["corr"][:, :k, :k])
        split += len(threaded.parts) > len(b.parts)
        n = 1 + int(np.max(b.rows))
        ct = rng.normal(size=(b.n_rows, b.inverse.size))
        np.testing.assert_array_equal(threaded.people_values(params, n),
                                      b.people_values(params, n))
        for got, want in zip(threaded.gradient(params, ct), b.gradient(params, ct),
                             strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    assert split >= len(blocks) // 2


def test_elimination_passes_on_threads_give_the_same_value_and_marginals(monkeypatch,
                                                                         three_threads):
    from neb_bayes.inference import pymc_model

    from .test_elimination_op import _setup

    sizes, n, const, free_scopes, vals = _setup(3)
    python_ops.set_threads(1)
    alone = Elimination(const, free_scopes, sizes, n).value_and_marginals(vals)
    python_ops.set_threads(3)
    monkeypatch.setattr(pymc_model, "ELIMINATION_PEOPLE", 1)   # five passes of one person
    op = Elimination(const, free_scopes, sizes, n)
    assert len(op.const_passes) == n
    both = op.value_and_marginals(vals)
    np.testing.assert_allclose(both[0], alone[0], rtol=1e-14)
    for a, b in zip(both[1], alone[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize(("chains", "cores", "layout"), [
    (2, 2, (2, 1)), (2, 16, (2, 8)), (4, 2, (2, 1)), (3, 8, (3, 2)), (1, 1, (1, 1)),
    (1, 6, (1, 6))])
def test_chains_run_at_once_up_to_the_cores_and_share_the_rest(chains, cores, layout):
    assert chain_layout(chains, cores) == layout


@pytest.mark.parametrize(("n_threads", "n", "passes"), [(1, 1000, 256), (2, 1000, 250),
                                                        (4, 1000, 128), (8, 100, 128),
                                                        (3, 3000, 256), (2, 600, 150)])
def test_more_threads_cut_the_people_into_more_pieces(n_threads, n, passes):
    """Two pieces per thread where the memory bound leaves fewer, down to a floor that keeps
    the compiled loops' runs over people long."""
    from neb_bayes.inference import pymc_model

    python_ops.set_threads(n_threads)
    try:
        assert pymc_model._pass_people(n) == passes
        assert lab_block._part_people(2_000, n) == (2_000 if n_threads == 1 else
                                                    max(256, -(-n // (2 * n_threads))))
    finally:
        python_ops.set_threads(1)
