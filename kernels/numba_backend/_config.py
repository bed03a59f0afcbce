"""The numerics and compilation policy of the Numba backend, in one place.

FASTMATH
    Every LLVM fast-math flag except ``nnan`` and ``ninf``. With those two, LLVM may assume that no
    value is NaN or inf and silently delete ``x != x`` checks and NaN propagation; without them we
    keep IEEE semantics for non-finite values while still letting LLVM reassociate sums
    (vectorised reductions), contract to FMA and use fast reciprocals/approximate functions.
FASTMATH_ORDERED
    ``FASTMATH`` without ``reassoc``, for expressions whose order is their point: a loss term
    ``(max - z) + log(sum)`` (see ``losses._nll_term``), and the optimizer updates, whose
    ``(1 - beta2) * g * g`` must scale before it squares (see ``optimizers``). LLVM keeps
    fast-math flags per instruction, so a small function compiled with these keeps its order
    when inlined into a ``FASTMATH`` kernel.
FASTMATH_UNFUSED
    ``FASTMATH_ORDERED`` without ``contract``, for SGD and momentum, whose ``p - lr * g`` and
    ``mu * v + g`` must round the product before they add, as NumPy and PyTorch do: fused into
    one FMA, ``lr * g`` never overflowed, so a parameter at inf stayed inf where NumPy's
    ``inf - inf`` gives NaN (an audit's finding), and the last bit differed from NumPy's. The
    updates are memory-bound: the FMA saved nothing.
CACHE
    ``cache=True``: compiled machine code is written next to the source (or to ``NUMBA_CACHE_DIR``)
    so a second process loads it instead of recompiling. Parallel kernels are cached too; the test
    suite checks that a fresh process gets cache hits for them. Numba keys a cached kernel on its
    own source file only: after editing a helper module that kernels inline (``_vecmath.py``,
    ``_scalar.py``), delete ``__pycache__/*.nbi``/``*.nbc`` or point ``NUMBA_CACHE_DIR`` at a new
    folder (an installed upgrade rewrites every file, which invalidates everything). Where Numba
    has nowhere to write (a read-only install, no writable home, no ``NUMBA_CACHE_DIR``: a
    ``docker --read-only`` container) it would refuse every kernel ("no locator available"), so
    caching is then off, with a warning: kernels compile in every process.
ERROR_MODEL
    ``"numpy"``: a division by zero gives inf/nan as in NumPy. Numba's default (``"python"``)
    tests every ``/`` for a zero divisor so that it can raise, and that branch stops LLVM from
    vectorising the loop: the serial branches of AdaGrad, RMSprop and Adam ran scalar, 3-4x
    slower (Adam over 2688 float32 values: 13 us, 5 us with this), while their ``prange``
    branches were fast, because Numba compiles those with NumPy's model anyway.
PARALLEL_MIN_SIZE
    Element count above which kernels run their ``prange`` variant. Below it the cost of waking
    the worker threads (measured: ~10-20 us) outweighs the gain; above it the 2-core machine sees
    ~1.6-1.9x. Chosen by measurement with ``bench/``. Two forms: most kernels branch inside one
    ``parallel=True`` function; the ones every small-batch training step calls (dense
    bias/activation and its gradient, index-label softmax-CE) are a ``jit`` and a
    ``jit_parallel`` function that the Python wrapper picks between, because compiling a parallel
    function costs ~1.3 s even when only its serial branch runs (cold first step 9.5 -> 5.7 s).
SIDE_BY_SIDE_MIN_SIZE
    Input elements from which ``run_side_by_side`` puts independent tasks (a ``Concat``'s
    branches) on separate threads. Handing a task to another thread and back costs 0.15-0.35 ms
    per call on this VM (waking a sleeping thread on the idle core). Measured on the MNIST CNN's
    two branches, forward+backward, three processes: 1 and 4 samples (784, 3136 elements) 2-2.7x
    slower side by side; 16 samples (12544) 1.11-1.26x faster, 32-64 samples 1.08-1.38x.
OpenMP spinning
    ``fastnet.backend`` sets ``GOMP_SPINCOUNT`` when fastnet is imported (see there): spinning
    OpenMP workers starve the BLAS threads on 2 cores, sleeping ones take ~20 us to wake.
"""
import functools
import os
import warnings

import numba
from numba.core.codegen import get_host_cpu_features


def _cache_available():
    """Whether Numba finds a writable cache folder for this package's source files (it picks one
    when a ``cache=True`` function is decorated, and raises RuntimeError if there is none)."""
    def probe():
        pass
    try:
        numba.njit(cache=True)(probe)
    except RuntimeError as err:
        given = os.environ.get("NUMBA_CACHE_DIR")
        remedy = (f"NUMBA_CACHE_DIR={given!r} is not writable either; point it at a writable "
                  f"folder" if given else "Set NUMBA_CACHE_DIR to a writable folder")
        warnings.warn(f"fastnet: Numba has nowhere to cache compiled kernels ({err}); they will "
                      f"compile in every process. {remedy}.", RuntimeWarning, stacklevel=2)
        return False
    return True


def numba_compiles_avx512():
    """Whether Numba compiles for AVX-512: the host has it, and neither ``NUMBA_CPU_NAME=generic``
    (whose features are none), ``NUMBA_CPU_FEATURES`` nor ``NUMBA_ENABLE_AVX=0`` takes it away.
    Code that names AVX-512 instructions or widths asks this, not the host: compiled for a target
    without AVX-512, the float64 root's estimate made LLVM abort the process ("Do not know how to
    split the result of this operator"; ``_root_step``)."""
    features = numba.config.CPU_FEATURES
    if features is None:
        features = get_host_cpu_features()
    return "+avx512f" in features.split(",")


FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
FASTMATH_ORDERED = FASTMATH - {"reassoc"}
FASTMATH_UNFUSED = FASTMATH_ORDERED - {"contract"}
CACHE = _cache_available()
ERROR_MODEL = "numpy"
PARALLEL_MIN_SIZE = 1 << 16
SIDE_BY_SIDE_MIN_SIZE = 8192

#: Decorator for serial kernels.
jit = functools.partial(numba.njit, cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL,
                        nogil=True)
#: Decorator for small helpers whose additions must stay in the written order.
jit_ordered = functools.partial(numba.njit, cache=CACHE, fastmath=FASTMATH_ORDERED,
                                error_model=ERROR_MODEL, nogil=True)
#: ``jit`` for serial kernels whose products must round before they add (no FMA).
jit_unfused = functools.partial(jit, fastmath=FASTMATH_UNFUSED)
#: Decorator for kernels whose outer loop is a ``prange``.
jit_parallel = functools.partial(numba.njit, cache=CACHE, fastmath=FASTMATH,
                                 error_model=ERROR_MODEL, nogil=True, parallel=True)
#: ``jit_parallel`` for kernels whose arithmetic must stay in the written order.
jit_parallel_ordered = functools.partial(jit_parallel, fastmath=FASTMATH_ORDERED)
#: ``jit_parallel`` for kernels whose products must round before they add (no FMA).
jit_parallel_unfused = functools.partial(jit_parallel, fastmath=FASTMATH_UNFUSED)
