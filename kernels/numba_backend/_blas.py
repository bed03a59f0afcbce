"""BLAS GEMM callable from inside Numba kernels.

Why: conv1d's im2col + GEMM path is a chain of Numba passes around GEMMs. Called from Python,
every link of the chain crosses the GIL, and with the batch split over two threads each crossing
could wait for the other thread (50-100 us per call on this VM). Calling the GEMM from Numba puts
the whole chain of one batch part in one compiled function, which runs beside the other parts
without the GIL (see ``conv1d`` and ``_slots``).

How: NumPy's wheels bundle an ILP64 OpenBLAS (64-bit integer arguments) whose CBLAS GEMMs carry a
suffixed name (``scipy_cblas_sgemm64_`` since NumPy 2, ``cblas_sgemm64_`` before).
:func:`available` looks those up in the BLAS that NumPy loaded and registers their addresses with
LLVM under fixed names (``fastnet_sgemm``, ...). Compiled kernels refer to the fixed names only, so
they cache like any other kernel; each process binds the names again before any kernel that calls
them is compiled or loaded from the cache. Where NumPy's BLAS is something else (MKL, Accelerate,
another ILP64 naming), :func:`available` is False and callers keep NumPy's ``matmul``.
"""
import ctypes

import llvmlite.binding as llvm
from numba import config, types

from ._config import jit

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

# Candidate (sgemm, dgemm) symbol pairs in NumPy's BLAS; both of a pair must be present.
_CANDIDATES = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"),   # NumPy >= 2 wheels (scipy-openblas64)
    ("cblas_sgemm64_", "cblas_dgemm64_"),               # NumPy 1.x wheels (openblas64_)
)

_i32, _i64, _ptr = types.int32, types.int64, types.intp
_sgemm = types.ExternalFunction("fastnet_sgemm", types.void(
    _i32, _i32, _i32, _i64, _i64, _i64, types.float32, _ptr, _i64, _ptr, _i64, types.float32,
    _ptr, _i64))
_dgemm = types.ExternalFunction("fastnet_dgemm", types.void(
    _i32, _i32, _i32, _i64, _i64, _i64, types.float64, _ptr, _i64, _ptr, _i64, types.float64,
    _ptr, _i64))

_state = {"available": None, "openblas": None}


def available():
    """Whether :func:`gemm` can run in this process (the symbols are bound once). Never with
    ``NUMBA_DISABLE_JIT=1`` (a coverage run): plain Python cannot call the C functions."""
    if _state["available"] is None:
        _state["available"] = not config.DISABLE_JIT and _bind()
    return _state["available"]


def numpy_has_openblas():
    """Whether NumPy's BLAS is the wheels' OpenBLAS (found once), whose speeds some kernels'
    choices were measured on (``dense``'s small-batch product orientation)."""
    if _state["openblas"] is None:
        _state["openblas"] = _find_symbols() is not None
    return _state["openblas"]


def _bind():
    addresses = _find_symbols()
    if addresses is None:
        return False
    for name, address in zip(("fastnet_sgemm", "fastnet_dgemm"), addresses):
        llvm.add_symbol(name, address)
    return True


def _find_symbols():
    """Addresses of sgemm and dgemm in the OpenBLAS that NumPy uses, or None."""
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
        for sgemm, dgemm in _CANDIDATES:
            found = [_address(handle, sgemm), _address(handle, dgemm)]
            if None not in found:
                return found
    return None


def _address(handle, name):
    try:
        return ctypes.cast(getattr(handle, name), ctypes.c_void_p).value
    except AttributeError:
        return None


# Inlined into their callers at Numba IR level: called with constant flags, a separate function
# is compiled once per flag combination (Numba types constants as literals), three times for
# conv1d's slots (~0.5 s of a cold first step).
@jit(inline="always")
def gemm(a, b, c, trans_a, trans_b, beta):
    """``c = op(a) @ op(b) + beta * c`` with ``op`` a transpose where asked.

    ``a``, ``b``, ``c``: C-contiguous 2-D arrays of one dtype (float32 or float64), shapes
    consistent (checked by the callers, not here: BLAS reads raw pointers).
    """
    M = a.shape[1] if trans_a else a.shape[0]
    K = a.shape[0] if trans_a else a.shape[1]
    N = b.shape[0] if trans_b else b.shape[1]
    gemm_strided(trans_a, trans_b, M, N, K, a.reshape(-1), 0, a.shape[1], b.reshape(-1), 0,
                 b.shape[1], beta, c.reshape(-1), 0, c.shape[1])


@jit(inline="always")
def gemm_strided(trans_a, trans_b, M, N, K, a, a_start, lda, b, b_start, ldb, beta, c, c_start,
                 ldc):
    """``C = op(A) @ op(B) + beta * C`` for row-major matrices that lie inside the 1-D arrays
    ``a``, ``b``, ``c`` (one dtype): each from element ``*_start``, rows ``ld*`` elements apart.

    ``op(A)`` is ``(M, K)``, ``op(B)`` ``(K, N)``, ``C`` ``(M, N)``. BLAS only needs each row's
    elements contiguous, so rows may be spaced more widely than they are long (every ``q``-th
    window of a signal, say). Each ``ld*`` must be at least its stored matrix's row length, and
    the matrices must lie inside their arrays: the callers make sure, BLAS reads raw pointers.
    """
    ta = _TRANS if trans_a else _NO_TRANS
    tb = _TRANS if trans_b else _NO_TRANS
    a_p = a.ctypes.data + a_start * a.itemsize
    b_p = b.ctypes.data + b_start * b.itemsize
    c_p = c.ctypes.data + c_start * c.itemsize
    if a.itemsize == 4:
        _sgemm(_ROW_MAJOR, ta, tb, M, N, K, 1.0, a_p, lda, b_p, ldb, beta, c_p, ldc)
    else:
        _dgemm(_ROW_MAJOR, ta, tb, M, N, K, 1.0, a_p, lda, b_p, ldb, beta, c_p, ldc)
