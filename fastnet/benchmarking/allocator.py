"""Steady memory allocation in a benchmark process (glibc's ``mallopt``; elsewhere nothing).

Why: a call that frees a few MB of temporaries before the next call allocates them again may
get its memory back from the heap, or may have glibc hand it to the kernel (the heap's free top
past the trim threshold, or an ``mmap`` per array) and fault every page in again, depending on
the sizes the process freed before. Measured (an audit's finding, then here): the NumPy
baseline's AdaGrad update at (784, 400) float64 took 2.8-3.3 ms with 1193 page faults per call
in a small process, 0.75-0.82 ms with none in another, and PyTorch's float64 ``mse_loss`` at
(1024, 1000) 3.0-5.5 ms or 0.5-0.8 ms from one process to the next: ratios that said which
member happened to fault. Training loops allocate steadily already (the MLP and CNN epochs: no
page faults per step either way).

How: arrays up to 32 MB (the most glibc allows) come from the heap rather than their own
``mmap``, and the heap's free memory stays with the process (trim threshold 1 GB), so each
call reuses what the last one freed, for every member alike (NumPy's arrays, fastnet's outputs,
PyTorch's tensors all allocate through ``malloc``).
"""
import ctypes

#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30

_state = {"steady": False}


def steady_allocations():
    """Set both thresholds in this process; returns whether that was done (glibc only)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):    # no C library to ask, or no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _state["steady"] = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                            and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _state["steady"]


def describe():
    """A line for the report's header."""
    if _state["steady"]:
        return (f"memory: glibc malloc set steady (arrays up to {MMAP_THRESHOLD >> 20} MB from "
                f"the heap, free memory kept), so that repeated calls reuse it instead of "
                f"faulting pages in")
    return "memory: the C library's malloc as it comes (not glibc, or mallopt refused)"
