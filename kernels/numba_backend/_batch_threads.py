"""Batch parts side by side on Python threads, with BLAS single-threaded meanwhile.

Used by conv1d's im2col + GEMM path, a chain of serial Numba passes (im2col, transpositions,
col2im) around BLAS GEMMs. With BLAS alone multi-threaded, one of the 2 cores idled during
every pass (about a third of the call), and making the passes OpenMP-parallel set the OpenMP
and OpenBLAS thread pools spinning against each other (see ``conv1d``). Here the batch is cut
into one contiguous part per thread instead; each part runs the whole chain on its own thread,
with every BLAS call single-threaded while the parts run, so exactly one thread works per core
and nothing spins. The parts really run at once: Numba's kernels are compiled ``nogil`` and
NumPy releases the GIL around BLAS.

Results do not depend on timing: the parts are fixed by the batch size and the thread count,
each writes only its own slice of the outputs, and sums over parts are added in part order by
the caller. (A different thread count gives different parts, so sums may round differently.)
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

_state = {"lock": threading.Lock(), "pool": None, "workers": 0, "blas": None, "active": 0,
          "saved": ()}


def _reset_after_fork():
    # A forked child has none of the parent's worker threads; an executor copied from the
    # parent would queue work that never runs.
    _state.update(lock=threading.Lock(), pool=None, workers=0, active=0, saved=())


os.register_at_fork(after_in_child=_reset_after_fork)


def batch_parts(N):
    """Contiguous, balanced ``(n0, n1)`` ranges of ``range(N)``: one per thread of Numba's
    current thread count (``fastnet.set_num_threads`` sets it), at most ``N``."""
    parts = max(1, min(numba.get_num_threads(), N))
    bounds = [N * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def run_parts(fn, ranges):
    """``[fn(n0, n1) for n0, n1 in ranges]``, the ranges side by side when there are several
    (the first on the calling thread) and BLAS single-threaded until all have finished.

    ``fn`` must write only into its own range's slices of the outputs.
    """
    if len(ranges) == 1:
        return [fn(*ranges[0])]
    pool = _executor(len(ranges) - 1)
    _blas_single_threaded_enter()
    try:
        futures = [pool.submit(fn, *r) for r in ranges[1:]]
        try:
            first = fn(*ranges[0])
        finally:                  # never return (or raise) while a part still writes
            for f in futures:
                f.exception()
        return [first] + [f.result() for f in futures]
    finally:
        _blas_single_threaded_leave()


def _executor(workers):
    with _state["lock"]:
        if _state["workers"] < workers:
            if _state["pool"] is not None:
                _state["pool"].shutdown(wait=False)
            _state.update(pool=ThreadPoolExecutor(workers, thread_name_prefix="fastnet-batch"),
                          workers=workers)
        return _state["pool"]


def _blas_controllers():
    if _state["blas"] is None:
        from threadpoolctl import ThreadpoolController
        _state["blas"] = ThreadpoolController().select(user_api="blas").lib_controllers
    return _state["blas"]


def _blas_single_threaded_enter():
    # Callers can overlap (a user's own threads); the first one in saves the BLAS thread
    # counts, the last one out restores them.
    with _state["lock"]:
        if _state["active"] == 0:
            libs = _blas_controllers()
            _state["saved"] = tuple(lib.num_threads for lib in libs)
            for lib in libs:
                lib.set_num_threads(1)
        _state["active"] += 1


def _blas_single_threaded_leave():
    with _state["lock"]:
        _state["active"] -= 1
        if _state["active"] == 0:
            for lib, n in zip(_blas_controllers(), _state["saved"]):
                lib.set_num_threads(n)
