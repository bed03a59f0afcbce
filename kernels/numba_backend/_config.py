"""The numerics and compilation policy of the Numba backend, in one place.

FASTMATH
    Every LLVM fast-math flag except ``nnan`` and ``ninf``. With those two, LLVM may assume that no
    value is NaN or inf and silently delete ``x != x`` checks and NaN propagation; without them we
    keep IEEE semantics for non-finite values while still letting LLVM reassociate sums
    (vectorised reductions), contract to FMA and use fast reciprocals/approximate functions.
CACHE
    ``cache=True``: compiled machine code is written next to the source (or to ``NUMBA_CACHE_DIR``)
    so a second process loads it instead of recompiling. Parallel kernels are cached too; the test
    suite checks that a fresh process gets cache hits for them.
PARALLEL_MIN_SIZE
    Element count above which the element-wise kernels switch to their ``prange`` variant. Below it
    the cost of waking the worker threads (measured: ~10-20 us) outweighs the gain; above it the
    2-core machine sees ~1.6-1.9x. Chosen by measurement with ``bench/``.
GOMP_SPINCOUNT
    Numba's OpenMP workers busy-wait after each parallel region (libgomp's default spin count is
    large). On 2 cores that spinning starves the OpenBLAS threads of the GEMM that usually comes
    next: measured, a 5 us parallel kernel followed by a 0.1 ms GEMM took 8 ms. A spin count of
    1000 releases the cores at once (the same pair: 0.14-0.2 ms) while back-to-back regions still
    start in ~2-7 us. Set only when the user has not chosen a value; libgomp reads it when the
    first parallel region starts, after this module is imported.
"""
import functools
import os

os.environ.setdefault("GOMP_SPINCOUNT", "1000")

import numba  # noqa: E402  (after the environment default above)

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
CACHE = True
PARALLEL_MIN_SIZE = 1 << 16

#: Decorator for serial kernels.
jit = functools.partial(numba.njit, cache=CACHE, fastmath=FASTMATH, nogil=True)
#: Decorator for kernels whose outer loop is a ``prange``.
jit_parallel = functools.partial(numba.njit, cache=CACHE, fastmath=FASTMATH, nogil=True,
                                 parallel=True)
