"""Independent pieces of work (a ``Concat``'s branches) side by side, one thread per core.

Why: the branches of the MNIST CNN (two views of the image, each Conv1d-MaxPool-Conv1d-MaxPool
at batch 128) are too small for their kernels to gain from two threads each: one branch's
forward+backward took 1.9-2.2 ms on one thread and 1.9-2.6 ms on two (splitting the batch costs
a thread wake-up per kernel, and the second convolution is below ``SPLIT_MIN_VALUES`` anyway).
The two branches side by side, one thread each, cut the whole training step by 4-11 %
(in-process A/B, 10 interleaved rounds per process: 4.80 -> 4.37, 6.44 -> 5.85, 5.58 -> 5.35
ms per step, medians). Less than the two threads promise: the two branches meet on the GIL
between kernels, and handing a task to a sleeping thread and back costs ~30 us each way here.

How: the first group of tasks runs on the calling thread, the others on worker threads. Every
group gets ``threads // groups`` Numba threads (Numba's thread count is per thread) and BLAS runs
single-threaded meanwhile, so the groups never oversubscribe the cores. Numba kernels release
the GIL, so the groups only meet on the Python between kernels.

Two things keep the hand-over cheap. A worker is a thread of its own that waits on a lock (a
``ThreadPoolExecutor``'s futures cost ~25 us more per call). And given the tasks' ``costs``
(e.g. their last durations), the calling thread takes the heaviest group: it starts at once
while a worker wakes up, and finishing last it finds the workers' results ready instead of
waiting for a wake-up of its own (MNIST CNN training step against the executor, in-process
A/B, three processes: 2.30 -> 2.26, 2.24 -> 2.21, 2.28 -> 2.23 ms).

Only where OpenMP's idle workers sleep at once (``GOMP_SPINCOUNT`` at most 1000, or
``OMP_WAIT_POLICY=passive``; fastnet's default on hosts without AVX-512, see ``fastnet.backend``).
Where they spin between kernels (the AVX-512 default, 30000), a worker spinning after the
previous kernel takes the core the other branch's thread needs, and the branches run faster in
order, each kernel on both threads: the MNIST CNN's training step (per-step medians of
interleaved rounds, one process each) took 1.69 ms in order and 1.77 ms side by side at 1000
(six rounds each), and 2.17 ms side by side at 10000 (three rounds).

Falls back to running the tasks in order on the calling thread: where workers spin (above), for
small work (below ``SIDE_BY_SIDE_MIN_SIZE``, where the hand-off costs more than it saves), with
one thread, when called from inside a task (no nesting: a task waiting for a worker could wait
for itself), or when Numba's threading layer is not thread-safe (``workqueue``) or not chosen yet
(no parallel kernel has run in this process).

Results do not depend on the scheduling: a task computes the same as it would alone with the
same thread count, and tasks write nothing shared.
"""
import contextvars
import functools
import os
import threading

import numba

from ._config import SIDE_BY_SIDE_MIN_SIZE
from ._slots import blas_single_threaded, thread_count

#: Threading layers that can run parallel kernels from several threads at once.
THREADSAFE_LAYERS = ("omp", "tbb")

_state = {"idle": [], "pid": None, "lock": threading.Lock()}


def workers_sleep_at_once(environ=os.environ):
    """Whether libgomp's idle workers sleep within microseconds of a parallel region, from the
    variables it reads when it loads (after ``fastnet.backend`` set its default):
    ``GOMP_SPINCOUNT`` when it is a number, else ``OMP_WAIT_POLICY``, else libgomp's default
    (300000 spins, ~3 ms)."""
    try:
        return int(environ.get("GOMP_SPINCOUNT", "")) <= 1000
    except ValueError:                 # unset, "infinite", "10k", ...: see OMP_WAIT_POLICY
        return environ.get("OMP_WAIT_POLICY", "").strip().lower() == "passive"


#: Whether tasks go side by side at all (see the module's docstring).
SIDE_BY_SIDE = workers_sleep_at_once()
_local = threading.local()           # .inside: this thread is running a task


def run_side_by_side(tasks, size, costs):
    """``[task() for task in tasks]``, the tasks on separate threads where that can pay.

    Parameters
    ----------
    tasks : sequence of callables taking no arguments; they must not depend on each other
    size : int
        How much work: the number of input elements the tasks share (a hint; small work runs in
        order on the calling thread).
    costs : sequence of float, or None
        Each task's expected cost (e.g. its last duration in seconds), to balance the threads:
        the tasks are grouped longest first, each into the lightest group, and the calling
        thread takes the heaviest group. Without it, task ``i`` goes to group ``i % groups``.

    Returns
    -------
    list : the tasks' results, in order

    Raises
    ------
    The first exception (in task order) that a task raised, once every started task has
    finished. Whether the tasks after it ran is unspecified (a group stops at its first error).
    """
    tasks = list(tasks)
    threads = thread_count()
    n_groups = min(len(tasks), threads)
    if (not SIDE_BY_SIDE or n_groups < 2 or size < SIDE_BY_SIDE_MIN_SIZE
            or getattr(_local, "inside", False) or not _layer_is_threadsafe()):
        return [task() for task in tasks]
    groups = _groups(len(tasks), n_groups, costs)
    results = [None] * len(tasks)
    errors = [None] * len(tasks)

    def run_group(group):
        if numba.get_num_threads() != threads // n_groups:    # a worker keeps its count
            numba.set_num_threads(threads // n_groups)
        _local.inside = True
        try:
            for i in group:
                try:
                    results[i] = tasks[i]()
                except BaseException as err:          # re-raised on the calling thread
                    errors[i] = err
                    return
        finally:
            _local.inside = False

    with blas_single_threaded():
        workers = []
        try:
            for group in groups[1:]:
                workers.append(_take_worker())
                # In a copy of the caller's context, so that e.g. np.errstate reaches it.
                workers[-1].start(contextvars.copy_context().run, run_group, group)
            run_group(groups[0])
        finally:
            interrupted = _wait_for(workers, errors, threads)
    if interrupted is not None:
        raise interrupted
    for err in errors:
        if err is not None:
            raise err
    return results


def _wait_for(workers, errors, threads):
    """Restore the calling thread's Numba thread count, wait for every worker, add its error to
    ``errors`` and give it back; the Ctrl-C that came meanwhile, if any, for the caller to raise
    once they are all done. (Raised at once, it let the caller go on while a worker still wrote
    to the layers it was running, and the worker was never given back.) A Ctrl-C can land
    between any two steps, so each step is retried until it is done; a worker leaves
    ``workers`` as it is given back, so none is waited for or given back twice."""
    interrupted = None
    restored = False
    while workers or not restored:
        try:
            if not restored:
                numba.set_num_threads(threads)
                restored = True
            while workers:
                errors.append(workers[0].wait())
                _give_back(workers.pop(0))
        except KeyboardInterrupt as err:
            interrupted = err
    return interrupted


def _groups(n_tasks, n_groups, costs):
    """Task indices per group, the calling thread's group first; each group in task order."""
    if costs is None or len(costs) != n_tasks:
        return [list(range(g, n_tasks, n_groups)) for g in range(n_groups)]
    groups = [[] for _ in range(n_groups)]
    loads = [0.0] * n_groups
    for i in sorted(range(n_tasks), key=lambda i: -costs[i]):
        lightest = loads.index(min(loads))
        groups[lightest].append(i)
        loads[lightest] += costs[i]
    groups.sort(key=lambda group: -sum(costs[i] for i in group))
    return [sorted(group) for group in groups]


def one_caller_at_a_time(layer=None):
    """Whether the kernels must run for one caller at a time: Numba's threading layer will be
    ``workqueue``, which ends the process ("Concurrent access has been detected") when two
    threads run parallel kernels at once (an audit's finding: ``predict`` from a thread pool).
    Numba picks the layer at its first parallel kernel: ``NUMBA_THREADING_LAYER`` (``layer``)
    names one, or a preference among TBB, OpenMP and workqueue, the first whose library loads
    (workqueue where neither TBB nor an OpenMP runtime is installed: a slim container, a pip
    install on macOS). Loading a pool's library here starts no thread."""
    layer = (numba.config.THREADING_LAYER if layer is None else layer).lower()
    if layer in ("omp", "tbb", "safe", "threadsafe"):   # Numba fails rather than fall back
        return False
    if layer != "default":                              # workqueue, or forksafe's choice
        return layer == "workqueue" or not _loads("tbbpool")
    return not (_loads("tbbpool") or _loads("omppool"))


def _loads(pool):
    try:
        __import__(f"numba.np.ufunc.{pool}")
    except ImportError:
        return False
    return True


def serialized(kernels):
    """``kernels`` (a dict of functions), each run under one process-wide lock (re-entrant: a
    kernel may call another). A forked child gets a lock of its own: one copied while another
    thread held it would never be released there (the child's first kernel hung)."""
    lock = [threading.RLock()]
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: lock.__setitem__(0, threading.RLock()))

    def one_at_a_time(kernel):
        @functools.wraps(kernel)
        def call(*args, **kwargs):
            with lock[0]:
                return kernel(*args, **kwargs)
        return call
    return {name: one_at_a_time(kernel) for name, kernel in kernels.items()}


def _layer_is_threadsafe():
    try:
        return numba.threading_layer() in THREADSAFE_LAYERS
    except ValueError:               # not chosen until the first parallel kernel runs
        return False


class _Worker:
    """A thread that runs one job at a time, handed over through a lock and back through an
    event: waiting for an event again after a Ctrl-C is harmless, where a lock that the
    interrupted wait had already taken would have been waited for forever."""

    def __init__(self):
        self._go, self._done = threading.Lock(), threading.Event()
        self._go.acquire()
        self._job = self._error = None
        # A daemon: it holds no resources between jobs, and must not keep the process alive.
        threading.Thread(target=self._loop, name="fastnet-side-by-side", daemon=True).start()

    def _loop(self):
        while True:
            self._go.acquire()
            job, self._job = self._job, None
            try:
                job[0](*job[1:])
            except BaseException as err:       # kept for the caller: the thread lives on
                self._error = err
            self._done.set()

    def start(self, *job):
        """Run ``job[0](*job[1:])`` on this worker's thread."""
        self._job, self._error = job, None
        self._done.clear()
        self._go.release()

    def wait(self):
        """Wait for the job to finish; the exception it raised, or None."""
        self._done.wait()
        return self._error


def _take_worker():
    """An idle worker of this process, or a new one (a forked child starts without any: the
    parent's threads do not exist there). Several user threads calling at once each get
    their own."""
    with _state["lock"]:
        if _state["pid"] != os.getpid():
            _state["idle"], _state["pid"] = [], os.getpid()
        if _state["idle"]:
            return _state["idle"].pop()
    return _Worker()


def _give_back(worker):
    with _state["lock"]:
        _state["idle"].append(worker)
