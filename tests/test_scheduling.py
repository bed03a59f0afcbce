"""``run_side_by_side``: independent tasks (a Concat's branches), in order on the NumPy backend,
on separate threads on the Numba backend; results, errors, thread counts, and Concat on top."""
import _thread
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastnet
from fastnet.models import RECIPES

numba = pytest.importorskip("numba")

#: A ``size`` well above the Numba backend's side-by-side threshold.
BIG = 1 << 30
threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads():
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"]


@pytest.fixture
def two_threads(monkeypatch):
    """The Numba backend at two threads with a thread-safe threading layer (chosen by running
    a parallel kernel), side by side enabled whatever this host's OpenMP spin policy, or a
    skip."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two Numba threads")
    from fastnet.kernels.numba_backend import scheduling
    monkeypatch.setattr(scheduling, "SIDE_BY_SIDE", True)
    with fastnet.set_backend("numba"), fastnet.set_num_threads(2):
        fastnet.functional.relu(np.ones(1 << 17, np.float32))      # a prange kernel
        if numba.threading_layer() not in ("omp", "tbb"):
            pytest.skip(f"threading layer {numba.threading_layer()} runs the tasks in order")
        yield fastnet.backend.kernels()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
def test_results_come_back_in_task_order(kern, n):
    squares = kern.run_side_by_side([lambda i=i: i * i for i in range(n)], BIG, None)
    assert squares == [i * i for i in range(n)]


def test_the_first_error_in_task_order_is_raised(kern):
    def fail(message):
        raise KeyError(message)
    # On two threads task 1 runs on its own and task 2 after task 0: two errors, in both orders
    # of finishing; task 1's is first in task order.
    with pytest.raises(KeyError, match="task 1"):
        kern.run_side_by_side([lambda: 0, lambda: fail("task 1"), lambda: fail("task 2")], BIG,
                              None)


def test_tasks_run_at_the_same_time(two_threads):
    """Each task waits for the other at a barrier: run one after the other, they time out."""
    barrier = threading.Barrier(2, timeout=20)
    task = lambda: (barrier.wait(), threading.get_ident())[1]
    ids = two_threads.run_side_by_side([task] * 2, BIG, None)
    assert ids[0] == threading.get_ident() and ids[1] != ids[0]


def test_each_task_has_its_share_of_threads_and_blas_one(two_threads):
    task = lambda: (numba.get_num_threads(), blas_threads())
    seen = two_threads.run_side_by_side([task] * 2, BIG, None)
    assert all(n == 1 and set(blas) == {1} for n, blas in seen), seen
    assert numba.get_num_threads() == 2 and set(blas_threads()) == {2}


@pytest.mark.parametrize("costs", [None, [1.0, 3.0], [3.0, 1.0]])
def test_the_caller_takes_the_costliest_task(two_threads, costs):
    """It starts at once and needs no hand-back; without costs it takes task 0."""
    ids = two_threads.run_side_by_side([threading.get_ident] * 2, BIG, costs)
    caller = 1 if costs == [1.0, 3.0] else 0
    assert ids[caller] == threading.get_ident() and ids[1 - caller] != ids[caller]


@pytest.mark.parametrize("costs, groups", [
    (None, [[0, 2, 4], [1, 3]]),
    ([5, 1, 1, 1, 1], [[0], [1, 2, 3, 4]]),
    ([1, 1, 1, 1, 9], [[4], [0, 1, 2, 3]]),
    ([1, 2, 3, 4, 5], [[0, 1, 4], [2, 3]]),      # longest first into the lightest: 8 and 7
    ([1, 2], [[0, 2, 4], [1, 3]]),               # not one cost per task: ignored
])
def test_tasks_are_grouped_longest_first_heaviest_group_on_the_caller(costs, groups):
    from fastnet.kernels.numba_backend.scheduling import _groups
    assert _groups(5, 2, costs) == groups


@pytest.mark.parametrize("costs", [None, [0.0, 0.0, 0.0], [1.0, 5.0, 2.0], [9.0, 1.0, 1.0]])
def test_costs_move_tasks_not_results(kern, costs):
    squares = kern.run_side_by_side([lambda i=i: i * i for i in range(3)], BIG, costs)
    assert squares == [0, 1, 4]


def test_the_caller_waits_for_every_task_before_raising(two_threads):
    finished = []

    def slow():
        time.sleep(0.3)
        finished.append(True)

    def fail():
        raise ValueError("task 0")
    with pytest.raises(ValueError, match="task 0"):
        two_threads.run_side_by_side([fail, slow], BIG, None)
    assert finished == [True]
    assert numba.get_num_threads() == 2 and set(blas_threads()) == {2}


def test_a_task_runs_nested_tasks_on_its_own_thread(two_threads):
    def nested():
        return (two_threads.run_side_by_side([threading.get_ident] * 2, BIG, None),
                threading.get_ident())
    for inner, outer in two_threads.run_side_by_side([nested] * 2, BIG, None):
        assert inner == [outer, outer]


def test_one_thread_runs_the_tasks_in_order_on_the_caller(two_threads):
    order = []
    with fastnet.set_num_threads(1):
        ids = two_threads.run_side_by_side(
            [lambda i=i: (order.append(i), threading.get_ident())[1] for i in range(3)], BIG,
            None)
    assert order == [0, 1, 2] and set(ids) == {threading.get_ident()}


def test_small_work_runs_in_order_on_the_caller(two_threads):
    from fastnet.kernels.numba_backend._config import SIDE_BY_SIDE_MIN_SIZE
    for size, same in [(SIDE_BY_SIDE_MIN_SIZE - 1, True), (SIDE_BY_SIDE_MIN_SIZE, False)]:
        ids = two_threads.run_side_by_side([threading.get_ident] * 2, size, None)
        assert (ids == [threading.get_ident()] * 2) == same, size


def test_tasks_run_in_order_on_the_caller_where_openmp_workers_spin(two_threads, monkeypatch):
    from fastnet.kernels.numba_backend import scheduling
    monkeypatch.setattr(scheduling, "SIDE_BY_SIDE", False)
    ids = two_threads.run_side_by_side([threading.get_ident] * 2, BIG, None)
    assert ids == [threading.get_ident()] * 2


@pytest.mark.parametrize("environ, asleep", [
    ({"GOMP_SPINCOUNT": "1000"}, True), ({"GOMP_SPINCOUNT": "0"}, True),
    ({"GOMP_SPINCOUNT": "10000"}, False), ({"GOMP_SPINCOUNT": "infinite"}, False),
    ({}, False),                                               # libgomp's default: 300000
    ({"OMP_WAIT_POLICY": "PASSIVE"}, True), ({"OMP_WAIT_POLICY": "active"}, False),
    ({"OMP_WAIT_POLICY": "passive", "GOMP_SPINCOUNT": "20000"}, False),   # the count wins
])
def test_openmp_wait_policy_is_read_as_libgomp_reads_it(environ, asleep):
    from fastnet.kernels.numba_backend.scheduling import workers_sleep_at_once
    assert workers_sleep_at_once(environ) == asleep


def test_numpy_error_state_reaches_every_task(two_threads):
    def divide():
        try:
            np.float64(1.0) / np.float64(0.0)
        except FloatingPointError:
            return "raised"
        return "silent"
    with np.errstate(divide="raise"):
        assert two_threads.run_side_by_side([divide] * 2, BIG, None) == ["raised", "raised"]


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler for the test: a process started in the background by a
    script (``cmd &``) ignores SIGINT, and ``_thread.interrupt_main`` then does nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_while_waiting_is_raised_once_every_worker_is_done(two_threads, python_sigint):
    """Ctrl-C reached the caller while its worker still ran a task (on the caller's layers),
    and the worker was never given back: one thread more per interrupt."""
    from fastnet.kernels.numba_backend import scheduling
    finished = []

    def interrupting():
        _thread.interrupt_main()       # the caller's own task is done: it is waiting for this
        time.sleep(0.3)
        finished.append(True)
    two_threads.run_side_by_side([lambda: 0, lambda: 0], BIG, None)
    idle = len(scheduling._state["idle"])
    for _ in range(3):
        finished.clear()
        with pytest.raises(KeyboardInterrupt):
            two_threads.run_side_by_side([lambda: 0, interrupting], BIG, None)
        assert finished == [True]
        assert len(scheduling._state["idle"]) == idle


def test_a_ctrl_c_while_the_thread_count_is_restored_still_waits_for_the_workers(
        two_threads, monkeypatch):
    """The caller restored its Numba thread count before it waited, outside the wait's guard:
    a Ctrl-C landing there (one run in eight of the test above, on a quiet 2-core host) left
    the worker running and never given back, and the count unrestored."""
    from fastnet.kernels.numba_backend import scheduling
    finished = []

    def slow():
        time.sleep(0.3)
        finished.append(True)
    two_threads.run_side_by_side([lambda: 0, lambda: 0], BIG, None)
    idle = len(scheduling._state["idle"])
    threads = numba.get_num_threads()
    real_set = numba.set_num_threads
    interrupts = []

    def set_num_threads(n):
        if n == threads and not interrupts:          # the caller's restore: Ctrl-C lands here
            interrupts.append(True)
            raise KeyboardInterrupt
        real_set(n)
    monkeypatch.setattr(numba, "set_num_threads", set_num_threads)
    with pytest.raises(KeyboardInterrupt):
        two_threads.run_side_by_side([lambda: 0, slow], BIG, None)
    assert interrupts == [True] and finished == [True]
    assert len(scheduling._state["idle"]) == idle
    assert numba.get_num_threads() == threads


def _in_child(queue):
    try:
        kern = fastnet.backend.kernels()
        queue.put(kern.run_side_by_side([lambda: 1, lambda: 2], BIG, None))
    except RuntimeError as err:
        queue.put(str(err))


def test_a_forked_child_gets_its_own_workers_or_a_clear_error(two_threads):
    """The parent's pool threads do not exist in a forked child; reusing that pool would hang.
    Under GNU OpenMP (started in the parent, here by the thread count it asked Numba for) the
    child cannot run Numba's parallel kernels at all, and the Numba backend says so."""
    two_threads.run_side_by_side([lambda: 0] * 2, BIG, None)       # the parent's pool exists
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_in_child, args=(queue,))
    child.start()
    try:
        got = queue.get(timeout=60)
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    from numba.np.ufunc import parallel
    if parallel._threading_layer == "omp" and getattr(
            sys.modules.get("numba.np.ufunc.omppool"), "openmp_vendor", "GNU") == "GNU":
        assert "forked from one whose Numba kernels had started GNU OpenMP" in got
    else:
        assert got == [1, 2]


def _branches(seed):
    """The MNIST CNN recipe's two views: its first layer, a Concat."""
    return RECIPES["cnn"].layers(seed)[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concat_side_by_side_equals_each_branch_alone(two_threads, dtype):
    """Bit-identical to every branch run alone at one thread (the share each one gets), at the
    MNIST CNN's size, where the convolutions would split the batch on two threads."""
    with fastnet.set_default_dtype(dtype):
        concat = _branches(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 28, 28)).astype(dtype)
    out = concat.forward(x)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = concat.backward(dout)
    grads = [layer.dW.copy() for _, layer in concat.named_leaves() if hasattr(layer, "dW")]
    with fastnet.set_num_threads(1):
        alone = [branch.forward(x) for branch in concat.branches]
        widths = [a[0].size for a in alone]
        parts = np.split(dout, np.cumsum(widths)[:-1], axis=1)
        dx_alone = sum(branch.backward(p.reshape(a.shape))
                       for branch, p, a in zip(concat.branches, parts, alone))
    np.testing.assert_array_equal(out, np.concatenate([a.reshape(128, -1) for a in alone], 1))
    np.testing.assert_array_equal(dx, dx_alone)
    for g, (_, layer) in zip(grads, [(n, l) for n, l in concat.named_leaves()
                                     if hasattr(l, "dW")]):
        np.testing.assert_array_equal(g, layer.dW)


def test_two_user_threads_share_the_pool(two_threads):
    """Two threads of the user's, each with its own model, both running their branches side by
    side through the one worker: the same results as each model alone."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((32, 28, 28)).astype(np.float32)     # above the size threshold
    models = [_branches(seed) for seed in (0, 100)]

    def run(concat):
        out = concat.forward(x)
        return out, concat.backward(np.ones_like(out))
    alone = [run(m) for m in models]
    results = [None, None]
    barrier = threading.Barrier(2, timeout=20)

    def user(i):
        barrier.wait()
        for _ in range(5):
            results[i] = run(models[i])
    threads = [threading.Thread(target=user, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for (out, dx), (out_alone, dx_alone) in zip(results, alone):
        np.testing.assert_array_equal(out, out_alone)
        np.testing.assert_array_equal(dx, dx_alone)
    assert numba.get_num_threads() == 2 and set(blas_threads()) == {2}


def test_a_trusted_pass_reaches_the_side_by_side_branches(two_threads):
    """fit's trusted passes (``fastnet._trusted``) include a Concat's branches, which may run
    on another thread: they see the caller's setting, on and off."""
    from fastnet import _trusted

    def task():
        return threading.get_ident(), _trusted.active()
    with _trusted.steps():
        on = two_threads.run_side_by_side([task] * 2, BIG, None)
    off = two_threads.run_side_by_side([task] * 2, BIG, None)
    assert len({ident for ident, _ in on}) == 2
    assert [flag for _, flag in on] == [True, True] and [flag for _, flag in off] == [False] * 2


_CALLS_FROM_TWO_THREADS = """
import numpy as np, numba, fastnet.functional as F
from concurrent.futures import ThreadPoolExecutor
from fastnet.layers import FC
from fastnet.model import Classifier
from fastnet.optimizers import AdaGrad
rng = np.random.default_rng(0)
X, y = rng.random((600, 784)).astype(np.float32), rng.integers(0, 10, 600)
model = Classifier([FC(784, 400, activation="relu"), FC(400, 10)], optimizer=AdaGrad(0.01))
model.fit(X, y, epochs=1, batch_size=128)
chunks = [X[:256], X[256:512]]
want = [model.predict(c) for c in chunks]
big = rng.standard_normal(1 << 20).astype(np.float32)
with ThreadPoolExecutor(2) as pool:
    got = list(pool.map(model.predict, chunks * 8))
    relus = list(pool.map(F.relu, [big] * 8))
print(numba.threading_layer(), all(np.array_equal(g, want[i % 2]) for i, g in enumerate(got)),
      all(np.array_equal(r, np.maximum(big, 0)) for r in relus))
"""


@pytest.mark.parametrize("layer", ["workqueue", "default"])
def test_kernels_called_from_two_threads_at_once_under_any_threading_layer(layer):
    """Numba's workqueue layer (where no OpenMP runtime or TBB is installed) ends the process
    when two threads run parallel kernels at once: ``predict`` from a thread pool exited with
    SIGABRT (an audit's finding). Under it the kernels now run one caller at a time."""
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer}
    out = subprocess.run([sys.executable, "-c", _CALLS_FROM_TWO_THREADS], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    chosen, predictions_equal, relus_equal = out.stdout.split()
    assert (chosen == "workqueue") == (layer == "workqueue")
    assert predictions_equal == relus_equal == "True"


def test_the_kernels_take_turns_only_where_the_layer_needs_it():
    from fastnet.kernels.numba_backend.scheduling import one_caller_at_a_time
    with fastnet.set_backend("numba"):
        fastnet.functional.relu(np.zeros(1 << 17))    # a parallel kernel: Numba picks a layer
    assert one_caller_at_a_time("workqueue") and one_caller_at_a_time("WORKQUEUE")
    assert not any(map(one_caller_at_a_time, ("omp", "tbb", "safe", "threadsafe")))
    assert one_caller_at_a_time() == (numba.threading_layer() == "workqueue")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_while_another_thread_has_the_kernels_turn_gets_its_own():
    """The lock was copied into the child held, by a thread the child does not have: the
    child's first kernel waited for good (an audit's finding, under ``forksafe``)."""
    from fastnet.kernels.numba_backend.scheduling import serialized
    inside, release = threading.Event(), threading.Event()

    def hold():
        inside.set()
        release.wait(30)
    kernels = serialized({"hold": hold, "seven": lambda: 7})
    holder = threading.Thread(target=kernels["hold"])
    holder.start()
    assert inside.wait(30)
    pid = os.fork()
    if pid == 0:                                        # the child: one kernel, then leave
        os._exit(0 if kernels["seven"]() == 7 else 1)
    release.set()
    holder.join()
    for _ in range(300):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's kernel waited for a lock it can never have")
    assert os.waitstatus_to_exitcode(status) == 0
