"""BLAS GEMM callable from inside Numba kernels, with a per-thread BLAS thread count.

Why: conv1d's im2col + GEMM path is a chain of Numba passes around GEMMs. Called from Python,
every link of the chain crosses the GIL, and splitting the batch over two Python threads cost
20-70 us of thread hand-off per call on this VM. Calling the GEMM from Numba puts the whole chain
of one batch part in a single ``nogil`` function, and the parts in one ``prange`` loop, each part
with BLAS single-threaded on its own thread. Measured, forward, float32, batch 128, 2 threads:
C28->32 L28 0.275 -> 0.172 ms, C32->64 L14 0.318 -> 0.161 ms, C64->128 L14 0.75 -> 0.56-0.63 ms.

How: NumPy's wheels bundle an ILP64 OpenBLAS (64-bit integer arguments) whose CBLAS GEMMs carry a
suffixed name (``scipy_cblas_sgemm64_`` since NumPy 2, ``cblas_sgemm64_`` before) and, from
OpenBLAS 0.3.27, ``openblas_set_num_threads_local`` (the thread count of the calling thread only).
:func:`available` looks those up in the BLAS that NumPy loaded and registers their addresses with
LLVM under fixed names (``fastnet_sgemm``, ...). Compiled kernels refer to the fixed names only, so
they cache like any other kernel; each process binds the names again before any kernel that calls
them is compiled or loaded from the cache. Where NumPy's BLAS is something else (MKL, Accelerate,
an older OpenBLAS), :func:`available` is False and callers keep NumPy's ``matmul``.
"""
import ctypes

import llvmlite.binding as llvm
from numba import types

from ._config import jit

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

# (fixed name, candidate symbols in NumPy's BLAS): all of a candidate row must be present.
_CANDIDATES = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"),   # NumPy >= 2 wheels (scipy-openblas64)
    ("cblas_sgemm64_", "cblas_dgemm64_"),               # NumPy 1.x wheels (openblas64_)
)
_THREADS_LOCAL = ("openblas_set_num_threads_local", "scipy_openblas_set_num_threads_local64_",
                  "openblas_set_num_threads_local64_")

_i32, _i64, _ptr = types.int32, types.int64, types.intp
_sgemm = types.ExternalFunction("fastnet_sgemm", types.void(
    _i32, _i32, _i32, _i64, _i64, _i64, types.float32, _ptr, _i64, _ptr, _i64, types.float32,
    _ptr, _i64))
_dgemm = types.ExternalFunction("fastnet_dgemm", types.void(
    _i32, _i32, _i32, _i64, _i64, _i64, types.float64, _ptr, _i64, _ptr, _i64, types.float64,
    _ptr, _i64))
_threads_local = types.ExternalFunction("fastnet_blas_threads_local", types.int32(types.int32))

_state = {"available": None}


def available():
    """Whether :func:`gemm` and :func:`set_threads_local` can run in this process (bound once)."""
    if _state["available"] is None:
        _state["available"] = _bind()
    return _state["available"]


def _bind():
    addresses = _find_symbols()
    if addresses is None:
        return False
    for name, address in zip(("fastnet_sgemm", "fastnet_dgemm", "fastnet_blas_threads_local"),
                             addresses):
        llvm.add_symbol(name, address)
    return True


def _find_symbols():
    """Addresses of sgemm, dgemm and the per-thread thread setter in the OpenBLAS that NumPy
    uses, or None."""
    try:
        from threadpoolctl import ThreadpoolController
        libs = ThreadpoolController().select(internal_api="openblas").lib_controllers
    except Exception:                  # no threadpoolctl, or it cannot inspect this process
        return None
    for lib in libs:
        try:
            handle = ctypes.CDLL(lib.filepath)
        except OSError:
            continue
        local = _address(handle, _THREADS_LOCAL)
        for sgemm, dgemm in _CANDIDATES:
            found = [_address(handle, (sgemm,)), _address(handle, (dgemm,))]
            if None not in found and local is not None:
                return found + [local]
    return None


def _address(handle, names):
    for name in names:
        try:
            return ctypes.cast(getattr(handle, name), ctypes.c_void_p).value
        except AttributeError:
            continue
    return None


@jit
def set_threads_local(n):
    """Set the calling thread's BLAS thread count; returns the previous one."""
    return _threads_local(n)


@jit
def gemm(a, b, c, trans_a, trans_b, beta):
    """``c = op(a) @ op(b) + beta * c`` with ``op`` a transpose where asked.

    ``a``, ``b``, ``c``: C-contiguous 2-D arrays of one dtype (float32 or float64), shapes
    consistent (checked by the callers, not here: BLAS reads raw pointers).
    """
    M = a.shape[1] if trans_a else a.shape[0]
    K = a.shape[0] if trans_a else a.shape[1]
    N = b.shape[0] if trans_b else b.shape[1]
    ta = _TRANS if trans_a else _NO_TRANS
    tb = _TRANS if trans_b else _NO_TRANS
    if a.itemsize == 4:
        _sgemm(_ROW_MAJOR, ta, tb, M, N, K, 1.0, a.ctypes.data, a.shape[1], b.ctypes.data,
               b.shape[1], beta, c.ctypes.data, c.shape[1])
    else:
        _dgemm(_ROW_MAJOR, ta, tb, M, N, K, 1.0, a.ctypes.data, a.shape[1], b.ctypes.data,
               b.shape[1], beta, c.ctypes.data, c.shape[1])

