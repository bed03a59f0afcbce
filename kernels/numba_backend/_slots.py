"""Batch parts side by side on Numba's threads, each part one compiled C function (a "slot").

Used by conv1d's im2col + GEMM path, a chain of serial Numba passes (im2col, transpositions,
col2im) around BLAS GEMMs. The batch is cut into one contiguous part per thread; each part runs
the whole chain on its own thread, BLAS single-threaded meanwhile, so exactly one thread works
per core and nothing spins. (With BLAS alone multi-threaded, one of the 2 cores idled during every
pass; making the passes parallel loops of their own set the OpenMP and OpenBLAS thread pools
spinning against each other: see ``conv1d``.)

Why slots: the parts run as one ``prange`` loop, whose worker wakes in ~25 us on this VM, against
50-80 us for a Python thread (the previous design). But a ``parallel=True`` function that calls a
big jitted function links that function's code into its own and optimises it again, several
times over: the conv backward's ``prange`` wrapper took 2.3 s to compile, and the cold start
exceeded its 10 s target. Here a part's chain is compiled once, as a C-ABI function
(``numba.cfunc``, cached on disk like every kernel); the one ``prange`` runner, :func:`_run`,
calls it by address. The runner is small, compiles once for every slot (0.3-0.5 s), and caches
because the address is an argument, not a constant.

A slot is ``slot(i, parts, args, work)``: part ``i`` of ``parts``, ``args`` a pointer to int64
values (array addresses and sizes, laid out by the kernel that owns the slot), ``work`` a pointer
to the scratch buffer, whose float type fixes the slot's dtype. :func:`pointer_like` turns an
address from ``args`` back into a typed pointer for ``numba.carray``.

Results do not depend on timing: the parts are fixed by the batch size and the thread count,
each writes only its own slice of the outputs, and sums over parts are added in part order by
the caller. (A different thread count gives different parts, so sums may round differently.)
"""
import ctypes
import threading

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic
from numba.np.ufunc import parallel as _numba_parallel

from . import _ahead
from ._config import CACHE, ERROR_MODEL, FASTMATH, jit_parallel

_state = {"lock": threading.Lock(), "slots": {}, "blas": None, "active": 0, "saved": []}


@intrinsic
def pointer_like(typingctx, address, like):
    """The int64 ``address`` as a pointer of the same type as ``like`` (a slot's ``work``)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(like))
    return like(types.int64, like), codegen


@intrinsic
def int64_pointer(typingctx, address):
    """The int64 ``address`` as a pointer to int64: an integer array that a slot receives among
    its ``arrays`` as a view of the slot's float dtype (max pooling's indices)."""
    signature = types.CPointer(types.int64)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))
    return signature, codegen


@intrinsic
def call_slot(typingctx, address, i, parts, args, work):
    """Call the slot at ``address`` with ``(i, parts, args.ctypes.data, work.ctypes.data)``
    (the runner below; a slot may call another, ``dense_blocked``'s AdaGrad slot)."""
    def codegen(context, builder, signature, llargs):
        address_, i_, parts_, args_, work_ = llargs
        args_data = context.make_array(signature.args[3])(context, builder, args_).data
        work_data = context.make_array(signature.args[4])(context, builder, work_).data
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(64), ir.IntType(64), args_data.type,
                                               work_data.type])
        builder.call(builder.inttoptr(address_, fnty.as_pointer()),
                     [i_, parts_, args_data, work_data])
        return context.get_dummy_value()
    return types.void(types.int64, types.int64, types.int64, args, work), codegen


#: Arrays a slot can receive (their addresses fill ``args[0:ARRAYS]``).
ARRAYS = 7


@jit_parallel
def _run(slot, parts, args, work, a0, a1, a2, a3, a4, a5, a6):
    """Parts ``0 .. parts-1`` of the slot at address ``slot``, with the addresses of ``a0 ..
    a6`` (1-D views of one dtype: one compiled runner for every slot) in ``args[0:7]``."""
    for j, a in enumerate((a0, a1, a2, a3, a4, a5, a6)):
        args[j] = a.ctypes.data
    if parts == 1:               # on the calling thread, without a parallel region
        call_slot(slot, 0, 1, args, work)
    else:
        for i in prange(parts):
            call_slot(slot, i, parts, args, work)


def run(pyfunc, parts, arrays, sizes, work, blas_threads=True, calls_blas=True, room=0,
        ahead=None):
    """Run ``pyfunc``'s slot on ``parts`` batch parts side by side, BLAS single-threaded
    meanwhile when there are several (or when ``blas_threads`` is False) and the slot calls BLAS.

    Parameters
    ----------
    pyfunc : the slot's Python function, ``pyfunc(i, parts, args_p, work_p)``
    parts : int, at least 1
    arrays : up to :data:`ARRAYS` C-contiguous arrays of ``work``'s dtype; the slot finds their
        addresses in ``args[0:ARRAYS]``, in this order
    sizes : ints (a sequence or an int64 array), ``args[ARRAYS:]``
    work : 1-D scratch buffer, one equal share per part
    blas_threads : bool
        With one part, whether its GEMMs may use BLAS's threads: worth it for one big item,
        not for a small chain, whose GEMMs each wake BLAS's workers while the passes around
        them run on one core anyway.
    calls_blas : bool
        False for a slot that calls no BLAS (the micro-kernel slots): BLAS's thread count is
        then left alone, which saves setting it twice per call (~2 us each time).
    room : int
        Zeros after ``sizes`` in ``args``, for the slot's own tables.
    ahead : Python function or None
        The slot the next call will need (the convolution's backward after its forward), which
        a helper process compiles meanwhile on a cold cache (``_ahead``).
    """
    assert len(arrays) <= ARRAYS, f"{len(arrays)} arrays; a slot takes at most {ARRAYS}"
    slot = slot_address(pyfunc, work.dtype, ahead)
    # A read-only input (np.load with mmap_mode="r", np.broadcast_to) is a different Numba type,
    # which the runner's loop over a0..a6 cannot mix with the others: it gets a writeable copy
    # (slots only read their inputs).
    flat = [a.ravel() if a.flags.writeable else a.ravel().copy() for a in arrays]
    flat += [work] * (ARRAYS - len(arrays))
    # Filled in place, not concatenated: ~0.4 us less per call (a dense product's fixed cost
    # was ~4.5 us beyond its arithmetic).
    args = np.zeros(ARRAYS + len(sizes) + room, np.int64)
    args[ARRAYS:ARRAYS + len(sizes)] = sizes
    if not calls_blas or (parts == 1 and blas_threads):
        _run(slot, parts, args, work, *flat)
    else:
        with blas_single_threaded():
            _run(slot, parts, args, work, *flat)


def slot_address(pyfunc, dtype, ahead=None):
    """The address of ``pyfunc`` compiled as a slot for ``dtype`` (compiled, or loaded from
    the cache, on first use). Where the cache holds neither, a helper process compiles
    ``ahead``'s slot (if given) meanwhile (``_ahead``); a slot that a helper is compiling is
    waited for, then loaded."""
    key = (pyfunc, np.dtype(dtype))
    slot = _state["slots"].get(key)
    if slot is None:
        with _state["lock"]:
            slot = _state["slots"].get(key)
            if slot is None:
                _ahead.wait(pyfunc, dtype)
                sig = types.void(types.int64, types.int64, types.CPointer(types.int64),
                                 types.CPointer(numba.from_dtype(key[1])))
                if ahead is not None and (ahead, key[1]) not in _state["slots"]:
                    _ahead.start_if_cold(pyfunc, ahead, sig, dtype)
                _ahead.start_armed_if_cold(pyfunc, sig)
                slot = numba.cfunc(sig, cache=CACHE, fastmath=FASTMATH,
                                   error_model=ERROR_MODEL)(pyfunc)
                _state["slots"][key] = slot
    return slot.address


def compiled_slots():
    """The slots compiled in this process (``numba`` CFunc objects; for the cache test)."""
    return list(_state["slots"].values())


def part_count(N):
    """Batch parts for ``N`` items: one per thread of Numba's current thread count
    (``fastnet.set_num_threads`` sets it), at most ``N``."""
    return max(1, min(thread_count(), N))


def thread_count():
    """``numba.get_num_threads()``, read directly once Numba's threads are up: the public
    function takes two locks on every call (0.81 us against 0.24 us, and a training step of the
    MNIST CNN asks ~20 times). Numba's own function wherever its internals differ."""
    if getattr(_numba_parallel, "_is_initialized", False):
        read = getattr(_numba_parallel, "_get_num_threads", None)
        count = read() if read is not None else 0
        if isinstance(count, int) and count > 0:
            return count
    return numba.get_num_threads()


def blas_single_threaded():
    """A context manager: BLAS at one thread inside the block (while the parts run), restored
    after it.

    Callers can overlap (a user's own threads): the first one in saves the BLAS thread counts,
    the last one out restores them.
    """
    return _BLAS_SINGLE_THREADED


class _BlasSingleThreaded:
    """:func:`blas_single_threaded`'s context manager; its state is in ``_state`` (a class, not
    ``contextlib.contextmanager``, whose generator costs ~2 us per block)."""

    def __enter__(self):
        with _state["lock"]:
            if _state["active"] == 0:
                libs = _blas_thread_functions()
                _state["saved"] = [get() for get, _ in libs]
                for _, set_threads in libs:
                    set_threads(1)
            _state["active"] += 1

    def __exit__(self, *exc):
        with _state["lock"]:
            _state["active"] -= 1
            if _state["active"] == 0:
                for (_, set_threads), n in zip(_blas_thread_functions(), _state["saved"]):
                    set_threads(n)


_BLAS_SINGLE_THREADED = _BlasSingleThreaded()


def _blas_thread_functions():
    """``[(get, set), ...]``: the functions that read and set the thread count of each BLAS in
    the process, found once. An OpenBLAS on its own threads (not OpenMP) is called directly:
    entering and leaving :func:`blas_single_threaded` then costs ~2 us instead of ~5 us through
    threadpoolctl's controllers, which look their symbols up on every call, and a conv call
    that runs as one part enters it every time. Any other BLAS goes through threadpoolctl."""
    if _state["blas"] is None:
        from threadpoolctl import ThreadpoolController
        _state["blas"] = [_openblas_thread_functions(lib)
                          or ((lambda lib=lib: lib.num_threads), lib.set_num_threads)
                          for lib in ThreadpoolController().select(user_api="blas")
                          .lib_controllers]
    return _state["blas"]


def _openblas_thread_functions(lib):
    """``(get, set)`` from the library of a pthreads OpenBLAS controller, or None."""
    if lib.internal_api != "openblas" or getattr(lib, "threading_layer", None) != "pthreads":
        return None
    try:
        handle = ctypes.CDLL(lib.filepath)
    except OSError:
        return None
    for prefix in ("", "scipy_"):                   # scipy-openblas: scipy_openblas_..._64_
        for suffix in ("", "64_", "_64"):
            get = getattr(handle, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_threads = getattr(handle, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and set_threads is not None:
                get.argtypes, get.restype = [], ctypes.c_int
                set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
                return get, set_threads
    return None


_scratch_store = threading.local()


def scratch(size, dtype):
    """A reusable 1-D work buffer of ``size`` elements, one per thread, grown but never shrunk.

    Used by the convolution and dense slots (their ``work``). Why: a fresh ``np.empty`` for the
    im2col buffer on every call is, after glibc has returned the previous one to the OS (its heap
    trimming follows the sizes freed so far), a fresh mapping whose first touch page-faults:
    measured 480 faults per forward call at N=128, C_in=28, L=28 (~1.9 us each here), which made
    the call 2.8x slower (1.41 ms instead of 0.50 ms). The buffer stays about one chunk per batch
    part (see ``conv1d._work``; the batch is chunked), results never live in it, and each calling
    thread has its own, so concurrent calls from several threads stay safe.
    """
    nbytes = size * np.dtype(dtype).itemsize
    buf = getattr(_scratch_store, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        raw = np.empty(nbytes + 64, dtype=np.uint8)
        start = -raw.ctypes.data % 64                      # 64-byte aligned, as BLAS prefers
        buf = raw[start:start + nbytes]
        _scratch_store.buf = buf
    return buf[:nbytes].view(dtype)
