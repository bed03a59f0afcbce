"""Process-wide settings: which kernels run, the default dtype, and thread counts.

Each setter changes the setting at once and returns an object that can also be used as a
``with`` block, restoring the previous value on exit (as xarray's ``set_options``)::

    fastnet.set_backend("numpy")            # from here on
    with fastnet.set_backend("numba"):      # only inside the block
        ...

The backend is looked up at call time by ``fastnet.functional``, so switching it changes which
kernels an existing model calls. Nothing falls back silently: an unknown name raises with the
allowed set, and a backend that cannot be imported raises with the original import error.

Environment defaults: ``FASTNET_BACKEND`` (``numba`` | ``numpy``), ``FASTNET_NUM_THREADS`` (which
also sizes Numba's worker pool, when Numba is not imported yet: a count for every thread).

OpenMP spinning: importing fastnet sets ``GOMP_SPINCOUNT`` unless it or ``OMP_WAIT_POLICY`` is
already set: how long GNU OpenMP workers (Numba's parallel kernels, and PyTorch's pool when
torch shares the process) busy-wait after each parallel region before they sleep. Waking a
sleeping worker costs ~20 us on this VM, a few times per training step; a spinning one takes a
core from whatever runs next. Which costs more depends on where the products run: in Numba
kernels where Numba compiles for AVX-512 (``kernels._host.numba_will_compile_avx512``: the host
has it, and ``NUMBA_CPU_NAME=generic`` or the like does not take it away), else in BLAS:

* ``30000`` (~0.25 ms of spinning: measured, a worker burns 0.25 ms of CPU after a parallel
  kernel here) where Numba compiles for AVX-512 and the dense and conv products are its kernels:
  a training step is then a chain of parallel regions with short gaps, and the worker stays
  awake across them. Measured against ``1000`` (per-step medians, one process per round, rounds
  interleaved): MLP at batch 20 float64 0.60 -> 0.53 ms, at batch 128 float32 0.89 -> 0.80 ms,
  the MNIST CNN 1.77 -> 1.69 ms, all at ``10000`` (with the CNN's branches in order, see
  ``kernels.numba_backend.scheduling``). The CNN's gaps are longer (its serial pooling and
  transposes, ~30-40 us each): on an Intel Xeon (Emerald Rapids), six rounds each, its step
  took 3.57-3.67 ms at ``10000``, 3.39-3.46 ms at ``30000`` and 3.33-3.45 ms at ``100000``
  (0.8 ms of spinning); both MLPs were unchanged within noise (three rounds each).
* ``1000`` (a few microseconds) elsewhere, where the products are BLAS GEMMs whose threads the
  spinning worker would starve. Measured: a 4 us parallel kernel then a 0.23 ms two-thread GEMM
  took 0.26 ms at ``1000``, 0.40 ms at ``10000`` and 0.67 ms at libgomp's default (300000);
  100 MLP training steps took 1080 ms instead of 146 ms once torch had run an op in the same
  process (its own pool, spinning at the default).

So on AVX-512 hosts your own BLAS work right after a fastnet call can lose up to ~0.25 ms to the
spinning worker; export ``GOMP_SPINCOUNT=1000`` if that matters more to you. libgomp reads the
variable when it is loaded, so it must be set before numba's parallel layer or torch starts
(import fastnet first, or export the variable yourself). Where a GNU OpenMP runtime is already
loaded at import (``import torch`` before ``import fastnet``), Numba's kernels run on that
runtime with its default spinning, and nothing can change it from inside the process: importing
fastnet then warns (measured: the batch-128 CNN's training step took 7.4-9.4 ms instead of
4.6-5.5 ms; with ``GOMP_SPINCOUNT=1000`` exported, 5.1-5.6 ms).

OpenBLAS spinning: likewise ``OPENBLAS_THREAD_TIMEOUT=4`` unless set. NumPy's OpenBLAS workers
spin (yielding) for about 2^28 cycles, ~0.1 s, after every GEMM, so during training they always
compete with the Numba workers of the next parallel kernel. With a timeout of 2^4 cycles they
sleep at once. Measured: the notebook MLP at batch 20 (float64) went from 1.25 to 1.05 ms per
step (minimum of 9 rounds, two processes each). OpenBLAS reads the variable when NumPy is first
imported. When NumPy came first (``import numpy as np`` before ``import fastnet``, as most
scripts do), :func:`_openblas_workers_sleep` makes OpenBLAS read it again and restarts its
workers with it. Without that, the batch-128 CNN's training step took 6.2-8.9 ms instead of
4.4-4.6 ms: after each GEMM of its dense layers, one OpenBLAS worker spun through the whole
step (111 of 117 clock ticks of CPU time), taking a core from the convolutions. The restart is
skipped when a thread of yours is alive at import (it could be inside a GEMM, and restarting
the workers under it hangs both threads); export ``OPENBLAS_THREAD_TIMEOUT=4`` then.
"""
import ctypes
import os
import sys
import threading
import warnings

from .kernels._host import numba_will_compile_avx512
from .kernels._host import usable_cpus as _usable_cpus

_GOMP_SPINCOUNT_IS_OURS = not {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & set(os.environ)
if _GOMP_SPINCOUNT_IS_OURS:
    os.environ["GOMP_SPINCOUNT"] = "30000" if numba_will_compile_avx512() else "1000"
_NUMPY_CAME_FIRST = "numpy" in sys.modules
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np

from .kernels import BACKENDS, load as _load_backend_module

_DTYPES = (np.float32, np.float64)


def _openblas_workers_sleep():
    """Apply ``OPENBLAS_THREAD_TIMEOUT`` (the user's or fastnet's) to an OpenBLAS that NumPy
    loaded while the variable was unset.

    OpenBLAS keeps the environment it read when it was loaded (``openblas_thread_timeout()`` is
    0 when the variable was unset). Its exported ``openblas_read_env`` reads the environment
    again, and ``blas_thread_shutdown_`` (what OpenBLAS itself calls before a ``fork``) stops
    its workers; the next multi-threaded call starts them again with the new timeout and the
    same thread count. Runs once, at import. Stopping the workers under a GEMM running on another
    thread deadlocks both threads, so it is skipped when another thread that may call BLAS is
    alive (see :func:`_other_threads_may_use_blas`, and on Linux, for threads that Python's
    ``threading`` does not list, :func:`_threads_unknown_to_python`); the workers then keep
    OpenBLAS's default spinning unless ``OPENBLAS_THREAD_TIMEOUT`` was exported before Python
    started. A BLAS without these functions (MKL, Accelerate) is left alone.
    """
    if _other_threads_may_use_blas():
        return
    try:
        from threadpoolctl import ThreadpoolController
        libs = ThreadpoolController().select(internal_api="openblas").lib_controllers
    except Exception:                  # threadpoolctl cannot inspect this process: leave it
        return
    restarts = []
    workers = 0
    for lib in libs:
        try:
            handle = ctypes.CDLL(lib.filepath)
            timeout, read_env, shutdown = (handle.openblas_thread_timeout,
                                           handle.openblas_read_env, handle.blas_thread_shutdown_)
            # The threads its server started, this one included: it never stops one when
            # the count is lowered, only at a shutdown.
            workers += ctypes.c_int.in_dll(handle, "blas_num_threads").value - 1
        except (OSError, AttributeError, ValueError):
            continue
        if timeout() == 0:             # loaded without the variable
            restarts.append((read_env, shutdown))
    if restarts and _threads_unknown_to_python(workers):
        return
    for read_env, shutdown in restarts:
        read_env()
        shutdown()


#: Modules whose threads never call BLAS: a Jupyter kernel's own (heartbeat, I/O, control,
#: history) and tqdm's monitor. Any other thread alive at import might be inside a GEMM.
_BLAS_FREE_THREAD_MODULES = ("ipykernel", "IPython", "zmq", "jupyter_client", "tornado", "tqdm")


#: Native threads known never to call BLAS, by the start of their OS name: ZeroMQ's I/O
#: threads (a Jupyter kernel's).
_BLAS_FREE_NATIVE_THREADS = ("ZMQbg",)


def _threads_unknown_to_python(blas_workers):
    """Whether the process has OS threads beyond Python's ``threading`` ones and OpenBLAS's
    ``blas_workers``, other than :data:`_BLAS_FREE_NATIVE_THREADS` (Linux; elsewhere False, as
    it cannot tell). A thread that ``threading`` does not list (one from
    ``_thread.start_new_thread``, or a C extension's) might be inside a GEMM: stopping the
    OpenBLAS workers under it hung ``import fastnet`` for good (an audit's finding)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return False
    native = 0
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                native += f.read().startswith(_BLAS_FREE_NATIVE_THREADS)
        except OSError:                # the thread has just ended
            native += 1
    return len(tasks) - native > len(threading.enumerate()) + blas_workers


def _other_threads_may_use_blas(threads=None):
    """Whether a thread other than this one is alive (among ``threads``, default all) that is
    not known to stay out of BLAS."""
    me = threading.current_thread()
    for thread in threading.enumerate() if threads is None else threads:
        if thread is me:
            continue
        target = getattr(thread, "_target", None)
        origin = getattr(target, "__module__", None) or type(thread).__module__ or ""
        if not origin.startswith(_BLAS_FREE_THREAD_MODULES):
            return True
    return False


def _openmp_already_loaded():
    """Whether a GNU OpenMP runtime (``libgomp.so.1``, e.g. PyTorch's copy) is in the process."""
    try:
        ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD)
    except (OSError, AttributeError):        # not loaded; or no RTLD_NOLOAD (not Linux)
        return False
    return True


if _NUMPY_CAME_FIRST:
    _openblas_workers_sleep()
if _GOMP_SPINCOUNT_IS_OURS and _openmp_already_loaded():
    warnings.warn(
        "fastnet was imported after a GNU OpenMP runtime (PyTorch's, for one) had started "
        "without GOMP_SPINCOUNT: its idle workers spin after every parallel region and take a "
        "core from the next kernel (measured: CNN training steps 1.6x slower on 2 cores). "
        "Import fastnet first, or export GOMP_SPINCOUNT (e.g. 1000) before starting Python.",
        RuntimeWarning, stacklevel=3)

_state = {
    "backend": None,        # name; None until first use, so a bad FASTNET_BACKEND fails at use
    "dtype": np.float32,
    "threads": None,        # None: library defaults (all cores)
}
_modules = {}


class _Restorer:
    """Returned by the setters; restores the previous value when used as a context manager."""

    def __init__(self, apply, previous):
        self._apply = apply
        self._previous = previous

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._apply(self._previous)
        return False


# --- backend -----------------------------------------------------------------------------------

def _after_fork_in_child():
    """In a child made by ``fork()``: if the parent's Numba kernels had started GNU OpenMP's
    threads, Numba ends this process at its first parallel kernel ("Terminating: fork() called
    from a process already using GNU OpenMP"), which left a ``multiprocessing.Pool`` waiting
    for good. The Numba backend is unloaded here, and loading it again raises a clear error."""
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is None or not getattr(parallel, "_is_initialized", False) \
            or getattr(parallel, "_threading_layer", None) != "omp":
        return                         # no threads started, or TBB / workqueue (fork-safe)
    omppool = sys.modules.get("numba.np.ufunc.omppool")
    if getattr(omppool, "openmp_vendor", "GNU") != "GNU":
        return                         # Intel's OpenMP is fork-safe
    _modules.pop("numba", None)
    _state["forked_after_openmp"] = True


if hasattr(os, "register_at_fork"):   # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _module(name):
    if name not in _modules:
        if name == "numba" and _state.get("forked_after_openmp"):
            raise RuntimeError(
                "fastnet: this process was forked from one whose Numba kernels had started GNU "
                "OpenMP's threads, and Numba's OpenMP layer would end it at its first parallel "
                "kernel. Start worker processes with multiprocessing.get_context('spawn') (or "
                "'forkserver'), or use fastnet.set_backend('numpy') in this one.")
        try:
            # The backend's unguarded kernels: every call from fastnet has passed the
            # functional API's full checks (direct callers get the guarded module functions).
            _modules[name] = _load_backend_module(name).trusted
        except ImportError as err:
            raise ImportError(
                f"fastnet backend {name!r} could not be loaded: {err}. "
                f"Install its dependencies (pip install numba) or choose another backend "
                f"from {BACKENDS} with fastnet.set_backend(...) or FASTNET_BACKEND."
            ) from err
        if _state["threads"] is not None:      # e.g. from FASTNET_NUM_THREADS
            _apply_threads(_state["threads"])
    return _modules[name]


def _check_backend_name(name, source):
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"{source}: unknown backend {name!r}; choose one of {BACKENDS}")
    return name


def get_backend():
    """Name of the current backend: ``"numba"`` (default) or ``"numpy"``."""
    if _state["backend"] is None:
        _state["backend"] = _check_backend_name(
            os.environ.get("FASTNET_BACKEND", "").strip() or "numba", "FASTNET_BACKEND")
    return _state["backend"]


def _apply_backend(name):
    _state["backend"] = name


def set_backend(name):
    """Make ``name`` the current backend (also usable as a ``with`` block).

    Raises
    ------
    ValueError
        ``name`` is not one of ``("numba", "numpy")``.
    ImportError
        The backend's dependencies cannot be imported (the original error is chained).
    """
    _check_backend_name(name, "set_backend")
    _module(name)                      # load now, so a missing dependency fails here
    previous = _state["backend"]
    _apply_backend(name)
    return _Restorer(_apply_backend, previous)


def kernels():
    """The current backend's ``trusted`` kernels: every name in ``fastnet.kernels.CONTRACT``,
    without the guards that the backend module's own functions add for direct callers."""
    # The common case first, one dict lookup: every functional call asks (~16 times per training
    # step of a three-layer MLP).
    module = _modules.get(_state["backend"])
    return module if module is not None else _module(get_backend())


# --- default dtype ---------------------------------------------------------------------------

def get_default_dtype():
    """dtype new parameters are created in: ``np.float32`` (default) or ``np.float64``."""
    return _state["dtype"]


def _apply_dtype(dtype):
    _state["dtype"] = dtype


def set_default_dtype(dtype):
    """Set the dtype of newly created parameters (also usable as a ``with`` block)."""
    try:
        dt = None if dtype is None else np.dtype(dtype).type     # np.dtype(None) is float64
    except TypeError:
        dt = None
    if dt not in _DTYPES:
        raise TypeError(f"set_default_dtype: dtype={dtype!r}; expected np.float32 or np.float64")
    previous = _state["dtype"]
    _apply_dtype(dt)
    return _Restorer(_apply_dtype, previous)


# --- threads -----------------------------------------------------------------------------------

def _apply_numba_threads(n):
    import numba                       # only reached once the numba backend is loaded
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS) if n else
                          numba.config.NUMBA_NUM_THREADS)


def _apply_threads(n):
    from threadpoolctl import threadpool_limits
    # BLAS and OpenMP pools both spin on 2 cores; one limit for all of them keeps them from
    # oversubscribing each other.
    threadpool_limits(limits=n, user_api="blas")
    if "numba" in _modules:
        _apply_numba_threads(n)
    _state["threads"] = n


def get_num_threads():
    """Thread count set with :func:`set_num_threads`, or ``None`` for the libraries' defaults."""
    return _state["threads"]


def set_num_threads(n):
    """Limit BLAS and Numba to ``n`` threads each (also usable as a ``with`` block).

    ``n`` beyond the CPUs this process may use is capped there: more BLAS threads than cores
    only take turns on them (measured: ``--threads 3`` on 2 cores trained the MLP 20x slower).
    :func:`get_num_threads` returns the capped count. Numba cannot use more threads than it
    started with either (``NUMBA_NUM_THREADS``, all cores by default): it runs with the smaller
    of the two.

    BLAS's count is process-wide; Numba's is per Python thread (Numba's rule), so this sets it
    for the calling thread: a thread of your own that runs kernels calls it too.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: n={n!r}; expected an integer >= 1")
    if n < 1:
        raise ValueError(f"set_num_threads: n={n!r}; expected an integer >= 1")
    previous = _state["threads"]
    if previous is None:               # the libraries' own counts, which the user may have set
        previous = _library_thread_counts()
    _apply_threads(min(int(n), _usable_cpus()))
    return _Restorer(_restore_threads, previous)


def _library_thread_counts():
    """The BLAS libraries' and Numba's current thread counts, to restore exactly: a limit set
    with ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or threadpoolctl was once replaced by
    all cores when a ``with set_num_threads(n)`` block ended."""
    from threadpoolctl import ThreadpoolController
    blas = [(lib, lib.num_threads)
            for lib in ThreadpoolController().select(user_api="blas").lib_controllers]
    numba_threads = None
    if sys.modules.get("numba") is not None:    # else Numba starts with its default count
        numba_threads = sys.modules["numba"].get_num_threads()
    return blas, numba_threads


def _restore_threads(n):
    if isinstance(n, tuple):           # no fastnet setting before: the libraries' own counts
        blas, numba_threads = n
        for lib, count in blas:
            lib.set_num_threads(count)
        # Numba loaded inside the block took the block's count: back to its default.
        numba = sys.modules.get("numba")
        if numba is not None:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS if numba_threads is None
                                  else numba_threads)
        _state["threads"] = None
    else:
        _apply_threads(n)


#: Most Numba worker threads accepted from ``NUMBA_NUM_THREADS`` (measured here: 20 000 started;
#: at 50 000 GNU OpenMP failed to create threads, and at 100 000 the first kernel segfaulted).
MAX_NUMBA_THREADS = 4096


def _drop_bad_numba_threads():
    """``NUMBA_NUM_THREADS`` of 0 or less makes ``import numba`` itself fail ("Number of threads
    specified must be > 0."), at fastnet's first kernel call, and a huge one crashes the first
    parallel kernel; either is dropped with a warning, so that Numba starts with its default, as
    it does for a value that is not a number."""
    n = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    try:
        bad = "numba" not in sys.modules and not 1 <= int(n) <= MAX_NUMBA_THREADS
    except ValueError:
        return
    if bad:
        del os.environ["NUMBA_NUM_THREADS"]
        warnings.warn(f"NUMBA_NUM_THREADS={n!r} ignored; expected an integer in [1, "
                      f"{MAX_NUMBA_THREADS}]", RuntimeWarning, stacklevel=3)


def _init_from_env():
    _drop_bad_numba_threads()
    n = os.environ.get("FASTNET_NUM_THREADS", "").strip()
    if not n:
        return
    try:
        threads = int(n)
    except ValueError:
        threads = 0
    if threads < 1:
        # A warning, not an error: ``import fastnet`` (and ``fastnet info``) must still work.
        warnings.warn(f"FASTNET_NUM_THREADS={n!r} ignored; expected an integer >= 1",
                      RuntimeWarning, stacklevel=2)
        return
    _state["threads"] = min(threads, _usable_cpus())
    # Numba's count set by set_num_threads holds for the calling Python thread only; started
    # with this many workers, every thread's kernels keep to it (a kernel first run from a
    # thread of yours, or from any other thread, ran on all cores).
    if "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_NUM_THREADS", str(_state["threads"]))


_init_from_env()
