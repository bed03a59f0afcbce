"""The Numba backend's batch parts side by side (``_slots``): part counts, a slot's arguments,
the parts on separate threads, and the BLAS thread count around them."""
import numpy as np
import pytest

import fastnet

slots = pytest.importorskip("fastnet.kernels.numba_backend._slots")
threadpoolctl = pytest.importorskip("threadpoolctl")
numba = pytest.importorskip("numba")


def blas_threads():
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"]


def _record_slot(i, parts, args_p, work_p):
    """Part ``i`` writes ``(i, parts, thread id, sum of the sizes)`` into row ``i`` of the
    ``(parts, 4)`` array at ``args[0]``, and ``i + 1`` into its share of ``work``."""
    a = numba.carray(args_p, (slots.ARRAYS + 3,))
    out = numba.carray(slots.pointer_like(a[0], work_p), (parts, 4))
    out[i, 0], out[i, 1] = i, parts
    out[i, 2] = numba.get_thread_id()
    out[i, 3] = a[slots.ARRAYS] + a[slots.ARRAYS + 1] + a[slots.ARRAYS + 2]
    share = a[slots.ARRAYS + 2] // parts
    work = numba.carray(work_p, (a[slots.ARRAYS + 2],))
    work[i * share:(i + 1) * share] = i + 1


@pytest.mark.parametrize("threads, N, want", [(1, 128, 1), (2, 128, 2), (2, 5, 2), (2, 1, 1),
                                              (2, 0, 1)])
def test_one_part_per_thread_at_most_one_per_item(threads, N, want):
    if threads > min(numba.config.NUMBA_NUM_THREADS, fastnet.backend._usable_cpus()):
        pytest.skip(f"{threads} threads asked; Numba or this process has fewer")
    with fastnet.set_backend("numba"), fastnet.set_num_threads(threads):
        assert slots.part_count(N) == want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_every_part_runs_once_with_its_arguments(dtype, parts):
    out = np.full((parts, 4), -1, dtype)
    work = np.zeros(6 * parts, dtype)
    slots.run(_record_slot, parts, (out,), (10, 20, work.size), work)
    assert out[:, 0].tolist() == list(range(parts))
    assert (out[:, 1] == parts).all() and (out[:, 3] == 30 + work.size).all()
    assert work.tolist() == [i + 1 for i in range(parts) for _ in range(6)]


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="Numba has one thread")
def test_two_parts_run_on_two_threads():
    with fastnet.set_num_threads(2):
        out = np.zeros((2, 4))
        work = np.zeros(2)
        slots.run(_record_slot, 2, (out,), (0, 0, 2), work)
    assert out[0, 2] != out[1, 2]


def test_blas_is_single_threaded_inside_and_restored_after():
    before = blas_threads()
    with slots.blas_single_threaded():
        with slots.blas_single_threaded():           # overlapping callers
            assert blas_threads() == [1] * len(before)
        assert blas_threads() == [1] * len(before)   # the first one in still runs
    assert blas_threads() == before


def test_blas_threads_are_restored_after_an_error():
    before = blas_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with slots.blas_single_threaded():
            raise RuntimeError("inside")
    assert blas_threads() == before


def test_too_many_arrays_is_an_error():
    work = np.zeros(1)
    with pytest.raises(AssertionError):
        slots.run(_record_slot, 1, (work,) * (slots.ARRAYS + 1), (0, 0, 1), work)


@pytest.mark.parametrize("parts, blas_threads_allowed, single", [(1, True, False),
                                                                 (1, False, True),
                                                                 (2, True, True)])
def test_blas_runs_single_threaded_for_several_parts_or_when_asked(monkeypatch, parts,
                                                                   blas_threads_allowed, single):
    entered = []
    real = slots.blas_single_threaded

    def spy():
        entered.append(True)
        return real()
    monkeypatch.setattr(slots, "blas_single_threaded", spy)
    out = np.zeros((parts, 4))
    slots.run(_record_slot, parts, (out,), (0, 0, parts), np.zeros(parts), blas_threads_allowed)
    assert entered == ([True] if single else [])
    assert out[:, 0].tolist() == list(range(parts))


def test_a_small_conv_chain_runs_with_blas_single_threaded_a_big_item_with_its_threads(
        monkeypatch):
    conv = pytest.importorskip("fastnet.kernels.numba_backend.conv1d")
    if not conv._blas.available():
        pytest.skip("the conv GEMM path calls NumPy's matmul here")
    monkeypatch.setattr(conv.conv1d_blocked, "AVAILABLE", False)       # the GEMM path
    calls = []
    real = slots.run
    monkeypatch.setattr(conv, "run", lambda *a: calls.append((a[1], a[5])) or real(*a))
    rng = np.random.default_rng(0)
    W = rng.standard_normal((128, 64, 3)).astype(np.float32)
    with fastnet.set_num_threads(2):
        for N, L in ((8, 28), (1, 4000)):     # 8*28*(192 + 128) values moved; 1*4000*(192 + 128)
            assert conv._use_gemm(64, 128, 3, L, 1)
            x = rng.standard_normal((N, 64, L)).astype(np.float32)
            y = conv.conv1d_forward(x, W, np.zeros(128, np.float32), 1, 1, 1, 1, "none")
            assert y.shape == (N, 128, L)
    assert calls == [(1, False), (1, True)]


def test_the_thread_count_read_directly_follows_numba_in_every_thread():
    """``thread_count`` reads Numba's per-thread count without its locks: it must see each
    ``numba.set_num_threads``, and another thread's own count, as Numba's function does."""
    import threading
    before = numba.get_num_threads()
    seen = []

    def other():
        numba.set_num_threads(1)
        seen.append((slots.thread_count(), numba.get_num_threads()))
    try:
        for n in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(n)
            assert slots.thread_count() == numba.get_num_threads() == n
        numba.set_num_threads(before)
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
        assert seen == [(1, 1)] and slots.thread_count() == before
    finally:
        numba.set_num_threads(before)
