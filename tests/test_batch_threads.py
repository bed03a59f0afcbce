"""The Numba backend's batch splitting over threads (``_batch_threads``): parts, ordering, errors,
the BLAS thread count around it, and a forked child."""
import multiprocessing
import threading
import time

import numpy as np
import pytest

import fastnet

bt = pytest.importorskip("fastnet.kernels.numba_backend._batch_threads")
threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads():
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"]


@pytest.mark.parametrize("threads, N, want", [
    (1, 128, [(0, 128)]),
    (2, 128, [(0, 64), (64, 128)]),
    (2, 5, [(0, 2), (2, 5)]),
    (2, 1, [(0, 1)]),
])
def test_batch_parts_are_contiguous_and_balanced(threads, N, want):
    with fastnet.set_backend("numba"), fastnet.set_num_threads(threads):
        assert bt.batch_parts(N) == want


def test_parts_run_side_by_side_and_results_come_in_order():
    # Each part waits until both have started: run one after the other, this would time out.
    both_started = threading.Barrier(2, timeout=10)

    def part(n0, n1):
        both_started.wait()
        return (n0, n1, threading.get_ident())

    got = bt.run_parts(part, [(0, 3), (3, 7)])
    assert [g[:2] for g in got] == [(0, 3), (3, 7)]
    assert got[0][2] == threading.get_ident() != got[1][2]


def test_blas_is_single_threaded_inside_and_restored_after():
    before = blas_threads()
    seen = []
    bt.run_parts(lambda n0, n1: seen.append(blas_threads()), [(0, 1), (1, 2)])
    assert seen and all(counts == [1] * len(before) for counts in seen)
    assert blas_threads() == before


@pytest.mark.parametrize("failing", [0, 1])
def test_an_error_in_any_part_propagates_after_every_part_has_finished(failing):
    before = blas_threads()
    finished = []

    def part(n0, n1):
        if n0 == failing:
            raise ValueError(f"part {n0} failed")
        time.sleep(0.05)
        finished.append(n0)

    with pytest.raises(ValueError, match=f"part {failing} failed"):
        bt.run_parts(part, [(0, 1), (1, 2)])
    assert finished == [1 - failing]             # the other part ran to its end first
    assert blas_threads() == before


def _conv_in_child(queue):
    from fastnet import functional as F
    x = np.ones((64, 28, 28), np.float32)
    W = np.ones((64, 28, 3), np.float32)
    queue.put(float(F.conv1d(x, W, None, 1, 1).sum()))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_forked_child_gets_its_own_worker_threads():
    """The parent has used the pool; a forked child (no threads of its own) must not wait on
    the parent's workers forever."""
    from fastnet import functional as F
    with fastnet.set_backend("numba"), fastnet.set_num_threads(2):
        x = np.ones((64, 28, 28), np.float32)
        W = np.ones((64, 28, 3), np.float32)
        want = float(F.conv1d(x, W, None, 1, 1).sum())      # large enough to split
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_conv_in_child, args=(queue,))
        child.start()
        child.join(60)
        if child.exitcode is None:
            child.kill()
        assert child.exitcode == 0, "the forked child hung or failed"
        assert queue.get(timeout=5) == want
