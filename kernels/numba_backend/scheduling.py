"""Independent pieces of work (a ``Concat``'s branches) side by side, one thread per core.

Why: the branches of the MNIST CNN (two views of the image, each Conv1d-MaxPool-Conv1d-MaxPool
at batch 128) are too small for their kernels to gain from two threads each: one branch's
forward+backward took 1.9-2.2 ms on one thread and 1.9-2.6 ms on two (splitting the batch costs
a thread wake-up per kernel, and the second convolution is below ``SPLIT_MIN_VALUES`` anyway).
The two branches side by side, one thread each, cut the whole training step by 4-11 %
(in-process A/B, 10 interleaved rounds per process: 4.80 -> 4.37, 6.44 -> 5.85, 5.58 -> 5.35
ms per step, medians). Less than the two threads promise: handing the task over and back costs
0.15-0.35 ms per call here, and the two branches meet on the GIL between kernels.

How: the first group of tasks runs on the calling thread, the others on a small thread pool.
Every group gets ``threads // groups`` Numba threads (Numba's thread count is per thread) and
BLAS runs single-threaded meanwhile, so the groups never oversubscribe the cores. Numba kernels
release the GIL, so the groups only meet on the Python between kernels.

Falls back to running the tasks in order on the calling thread for small work (below
``SIDE_BY_SIDE_MIN_SIZE``, where the hand-off costs more than it saves), with one thread, when
called from inside a task (no nesting: a task waiting for the pool could wait for itself), or
when Numba's threading layer is not thread-safe (``workqueue``) or not chosen yet (no parallel
kernel has run in this process).

Results do not depend on the scheduling: a task computes the same as it would alone with the
same thread count, and tasks write nothing shared.
"""
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

from ._config import SIDE_BY_SIDE_MIN_SIZE
from ._slots import blas_single_threaded

#: Threading layers that can run parallel kernels from several threads at once.
THREADSAFE_LAYERS = ("omp", "tbb")

_state = {"pool": None, "pid": None, "lock": threading.Lock()}
_local = threading.local()           # .inside: this thread is running a task


def run_side_by_side(tasks, size):
    """``[task() for task in tasks]``, the tasks on separate threads where that can pay.

    Parameters
    ----------
    tasks : sequence of callables taking no arguments; they must not depend on each other
    size : int
        How much work: the number of input elements the tasks share (a hint; small work runs in
        order on the calling thread).

    Returns
    -------
    list : the tasks' results, in order

    Raises
    ------
    The first exception (in task order) that a task raised, once every started task has
    finished. Whether the tasks after it ran is unspecified (a group stops at its first error).
    """
    tasks = list(tasks)
    threads = numba.get_num_threads()
    groups = min(len(tasks), threads)
    if (groups < 2 or size < SIDE_BY_SIDE_MIN_SIZE or getattr(_local, "inside", False)
            or not _layer_is_threadsafe()):
        return [task() for task in tasks]
    results = [None] * len(tasks)
    errors = [None] * len(tasks)

    def run_group(g):
        numba.set_num_threads(threads // groups)
        _local.inside = True
        try:
            for i in range(g, len(tasks), groups):
                try:
                    results[i] = tasks[i]()
                except BaseException as err:          # re-raised on the calling thread
                    errors[i] = err
                    return
        finally:
            _local.inside = False

    with blas_single_threaded():
        pool = _pool()
        # In a copy of the caller's context, so that e.g. np.errstate reaches the workers.
        futures = [pool.submit(contextvars.copy_context().run, run_group, g)
                   for g in range(1, groups)]
        try:
            run_group(0)
        finally:
            numba.set_num_threads(threads)
            for future in futures:
                future.result()
    for err in errors:
        if err is not None:
            raise err
    return results


def _layer_is_threadsafe():
    try:
        return numba.threading_layer() in THREADSAFE_LAYERS
    except ValueError:               # not chosen until the first parallel kernel runs
        return False


def _pool():
    """The worker threads of this process (a forked child gets its own: the parent's workers
    do not exist there)."""
    with _state["lock"]:
        if _state["pid"] != os.getpid():
            _state["pool"] = ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                                thread_name_prefix="fastnet-side-by-side")
            _state["pid"] = os.getpid()
        return _state["pool"]
