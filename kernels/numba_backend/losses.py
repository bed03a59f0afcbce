"""Losses (Numba). Every loss is a mean; its backward takes the upstream scalar ``dloss``.

Per-row (or per-chunk) partial sums are written to an array and added up serially afterwards, so
a loss never depends on how threads were scheduled. Row-wise kernels loop serially below
``PARALLEL_MIN_SIZE`` elements (a parallel region costs more than a (128, 10) batch) and over
``prange`` above it. The softmax comes from ``activations`` (``_softmax_row``, and
``_softmax_narrow_rows`` for rows narrower than ``NARROW_ROWS``), its ``exp`` vectorised; the one
``log`` per row stays ``math.log``. Binary cross-entropy takes two logs per element, so they are
``_vecmath``'s, which LLVM vectorises: with libm's ``log`` and ``log1p`` the loop ran scalar,
1.2-1.4x NumPy at (1024, 1000) and 0.9x at (128, 10).
"""
import math

import numpy as np
from numba import prange

from ._config import PARALLEL_MIN_SIZE, jit, jit_ordered, jit_parallel
from .activations import NARROW_ROWS, _softmax_narrow_rows, _softmax_row
from ._vecmath import add_exactly, log, log1p

# log(p) is clamped at this value, as PyTorch's BCELoss does, so log(0) is never taken.
_LOG_FLOOR = -100.0
# Smallest p*(1-p) used as a divisor in the BCE gradient: PyTorch's 1e-12, exact in each dtype
# (PyTorch's is a float32 constant, 9.99999996e-13, in float64 too: where the clamp applies,
# the gradients differ by 4e-9 relative, an audit measured).
_BCE_EPS = 1e-12


@jit
def _sum(v):
    """Serial sum. Inside a ``parallel=True`` kernel ``v.sum()`` becomes a parallel region of its
    own: a thread wake-up (measured 10-40 us) even for a 128-row batch."""
    total = 0.0
    for i in range(v.size):
        total += v[i]
    return total


@jit_ordered
def _nll_term(m, z, log_s):
    """``-log softmax(z)`` of a logit ``z`` in a row of maximum ``m`` and shifted log-sum
    ``log_s``. In this order: ``(m + log_s) - z``, which ``reassoc`` may make of it, rounds
    ``log_s`` away next to a large ``m`` (logits of 1e8 in float32 gave a loss of 0)."""
    return (m - z) + log_s


@jit(inline="always")          # it holds a softmax row's sum: see activations._softmax_row
def _sce_dense_row(z, t, p, i):
    """Cross-entropy of softmax(z[i]) against the distribution t[i]; softmax(z[i]) goes to p[i].
    (Rows by index, not as views: see ``activations._softmax_row``.)"""
    m, log_s = _softmax_row(z, p, i)
    acc = 0.0
    for j in range(z.shape[1]):
        # A class with no target mass adds nothing when its logit is finite, even if its
        # -log p overflows to inf (a logit gap beyond the dtype's range; 0 * inf is NaN). A
        # non-finite logit still gives 0 * inf = NaN there, as in PyTorch.
        if t[i, j] != 0 or not math.isfinite(z[i, j]):
            acc += t[i, j] * _nll_term(m, z[i, j], log_s)
    return acc


@jit(inline="always")          # as _softmax_narrow_rows: 0.3 s of a cold first training step
def _sce_index_narrow_rows(logits, labels, probs, stats, row_loss, lo, hi):
    """Rows lo..hi of the index-label loss for rows narrower than ``NARROW_ROWS``: the softmax
    in blocks (``activations._softmax_narrow_rows``, with each row's max and shifted sum in
    ``stats (2, N)``), then each row's loss."""
    _softmax_narrow_rows(logits, probs, stats[0], stats[1], lo, hi)
    for i in range(lo, hi):
        row_loss[i] = -(logits[i, labels[i]] - stats[0, i])          # -(z_label - max)
        row_loss[i] += math.log(stats[1, i])


@jit(inline="always")          # as _sce_dense_row
def _sce_index_wide_rows(logits, labels, probs, row_loss, lo, hi):
    """Rows lo..hi of the index-label loss for rows of ``NARROW_ROWS`` classes or more, one by
    one."""
    for i in range(lo, hi):
        m, log_s = _softmax_row(logits, probs, i)
        row_loss[i] = _nll_term(m, logits[i, labels[i]], log_s)


# The row-wise loss kernels come as serial and parallel functions, and the Python wrapper picks
# by size (and, for index labels, by row width): a batch below PARALLEL_MIN_SIZE never pays the
# parallel version's compile time (~1.3 s each, measured, most of a cold first training step),
# and a 10-class batch never compiles the wide-row code. Outputs are allocated in compiled code:
# at (128, 10) each Python-level allocation is a measurable part of the call.

@jit
def _sce_index_narrow(logits, labels):
    N = logits.shape[0]
    probs = np.empty_like(logits)
    row_loss = np.empty(N, dtype=np.float64)
    stats = np.empty((2, N), logits.dtype)
    _sce_index_narrow_rows(logits, labels, probs, stats, row_loss, 0, N)
    return _sum(row_loss) / N, probs


@jit
def _sce_index_wide(logits, labels):
    N = logits.shape[0]
    probs = np.empty_like(logits)
    row_loss = np.empty(N, dtype=np.float64)
    _sce_index_wide_rows(logits, labels, probs, row_loss, 0, N)
    return _sum(row_loss) / N, probs


@jit_parallel
def _sce_index_parallel(logits, labels):
    N, C = logits.shape
    probs = np.empty_like(logits)
    row_loss = np.empty(N, dtype=np.float64)
    stats = np.empty((2, N), logits.dtype)
    n_chunks = min(N, 64)
    for c in prange(n_chunks):
        lo, hi = c * N // n_chunks, (c + 1) * N // n_chunks
        if C < NARROW_ROWS:
            _sce_index_narrow_rows(logits, labels, probs, stats, row_loss, lo, hi)
        else:
            _sce_index_wide_rows(logits, labels, probs, row_loss, lo, hi)
    return _sum(row_loss) / N, probs


@jit_parallel
def _sce_dense(logits, target):
    N = logits.shape[0]
    probs = np.empty_like(logits)
    row_loss = np.empty(N, dtype=np.float64)
    if logits.size < PARALLEL_MIN_SIZE:
        for i in range(N):
            row_loss[i] = _sce_dense_row(logits, target, probs, i)
    else:
        for i in prange(N):
            row_loss[i] = _sce_dense_row(logits, target, probs, i)
    return _sum(row_loss) / N, probs


def softmax_cross_entropy_forward(logits, target):
    """Mean cross-entropy of ``softmax(logits)`` against ``target``.

    ``target`` is int64 labels ``(N,)`` or a float distribution ``(N, C)`` (e.g. one-hot).
    The loss is computed as ``logsumexp(z) - z`` from max-subtracted logits, so it stays finite
    for logits up to 1e4 and for a true class whose probability underflows to 0.
    Returns ``(loss, probs)``.
    """
    loss, probs = softmax_cross_entropy_kernel(logits.shape, target.ndim)(logits, target)
    return logits.dtype.type(loss), probs


def softmax_cross_entropy_kernel(shape, target_ndim):
    """The loss kernel that :func:`softmax_cross_entropy_forward` runs for logits of ``shape``
    and targets of ``target_ndim`` dimensions (``fastnet._loss_ahead`` asks which one a first
    training step will compile)."""
    if target_ndim == 2:
        return _sce_dense
    if shape[0] * shape[1] >= PARALLEL_MIN_SIZE:
        return _sce_index_parallel
    return _sce_index_narrow if shape[1] < NARROW_ROWS else _sce_index_wide


@jit(inline="always")             # as _sce_index_narrow_rows: 0.1-0.2 s of a cold first step
def _sce_backward_index_row(scale, p, label, d, i):
    for j in range(p.shape[1]):
        d[i, j] = p[i, j] * scale
    d[i, label] -= scale


@jit(inline="always")             # a call per row costs ~7 ns beside 10 classes' work
def _sce_backward_dense_row(scale, p, t, d, i):
    mass = t.dtype.type(0)                      # the row's target mass: 1 for one-hot rows
    for j in range(p.shape[1]):
        mass += t[i, j]
    for j in range(p.shape[1]):
        d[i, j] = (p[i, j] * mass - t[i, j]) * scale


# The backward kernels write into ``d`` from the wrapper's ``np.empty``: an array allocated
# inside Numba and returned costs ~0.08 us more to box (measured at (20, 10), a twelfth of the
# call). The loss kernels above keep their allocations in compiled code: three arrays each, of
# which they return one.

@jit
def _sce_backward_index_serial(dloss, probs, labels, d):
    N = probs.shape[0]
    scale = probs.dtype.type(dloss / N)
    for i in range(N):
        _sce_backward_index_row(scale, probs, labels[i], d, i)


@jit_parallel
def _sce_backward_index_parallel(dloss, probs, labels, d):
    N = probs.shape[0]
    scale = probs.dtype.type(dloss / N)
    for i in prange(N):
        _sce_backward_index_row(scale, probs, labels[i], d, i)


@jit_parallel
def _sce_backward_dense(dloss, probs, target, d):
    N = probs.shape[0]
    scale = probs.dtype.type(dloss / N)
    if probs.size < PARALLEL_MIN_SIZE:
        for i in range(N):
            _sce_backward_dense_row(scale, probs, target, d, i)
    else:
        for i in prange(N):
            _sce_backward_dense_row(scale, probs, target, d, i)


def softmax_cross_entropy_backward(dloss, probs, target):
    """``dloss * (probs - onehot(target)) / N``; for target rows ``(N, C)``, ``dloss * (probs *
    sum(t) - t) / N`` row by row (the exact gradient where a row does not sum to 1)."""
    d = np.empty(probs.shape, probs.dtype)
    if target.ndim == 2:
        _sce_backward_dense(dloss, probs, target, d)
    elif probs.size < PARALLEL_MIN_SIZE:
        _sce_backward_index_serial(dloss, probs, target, d)
    else:
        _sce_backward_index_parallel(dloss, probs, target, d)
    return d


def _n_chunks(size):
    return 1 if size < PARALLEL_MIN_SIZE else 16


# The chunk sums take views of their chunk, not the whole arrays and a range: indexed from a
# ``lo`` that Numba cannot know is not negative, each read carried a wraparound select, and LLVM
# vectorised the loop with gathers (MSE over 65 536 float32 values: 56 us).


@jit
def _sq_err_sum(y, t):
    acc = 0.0
    for i in range(y.size):
        # Squared in float64, as NumPy's: a float32 square overflows from |d| ~ 1.8e19, where
        # the mean of many can still be finite.
        d = np.float64(y[i] - t[i])
        acc += d * d
    return acc


@jit(inline="always")
def _chunk(c, n, n_chunks):
    """The bounds of chunk ``c`` of ``n_chunks`` over ``n`` values."""
    return c * n // n_chunks, (c + 1) * n // n_chunks


# The element-wise losses' kernels take the C-contiguous arrays in their own shapes and flatten
# them inside: three ``reshape(-1)`` calls in Python cost 0.39 us, more than MSE's gradient at
# (20, 10) (0.35 us for the kernel's call). Each number of dimensions compiles once.


@jit_parallel
def _sum_sq_err(y, t, n_chunks):
    """Sum of (y - t)**2 in float64; chunk partials are added in chunk order. One chunk runs
    serially: a parallel region would wake the threads for nothing."""
    y, t = y.reshape(y.size), t.reshape(t.size)
    if n_chunks == 1:
        return _sq_err_sum(y, t)
    partial = np.zeros(n_chunks, dtype=np.float64)
    for c in prange(n_chunks):
        lo, hi = _chunk(c, y.size, n_chunks)
        partial[c] = _sq_err_sum(y[lo:hi], t[lo:hi])
    return _sum(partial)


def mse_forward(y, t):
    """``mean((y - t)**2)`` over all elements."""
    return y.dtype.type(_sum_sq_err(y, t, _n_chunks(y.size)) / y.size)


@jit_parallel
def _scaled_diff(y, t, scale, d):
    y, t, d = y.reshape(y.size), t.reshape(t.size), d.reshape(d.size)
    scale = d.dtype.type(scale)    # a Python float (cheaper to pass than a NumPy scalar)
    n = y.size
    if n < PARALLEL_MIN_SIZE:
        for i in range(n):
            d[i] = (y[i] - t[i]) * scale
    else:
        for i in prange(n):
            d[i] = (y[i] - t[i]) * scale


def mse_backward(dloss, y, t):
    """``dloss * 2 * (y - t) / size``."""
    d = np.empty(y.shape, y.dtype)
    _scaled_diff(y, t, 2 * dloss / y.size, d)
    return d


@jit(inline="always")
def _bce_term(p, t):
    # p == 0 or 1 hits the clamp instead of log(0); NaN in p stays NaN. Inlined by Numba: with
    # its two logs it is past LLVM's inlining threshold, and a call keeps the loop scalar.
    log_p = _LOG_FLOOR if p == 0 else max(log(p), _LOG_FLOOR)
    log_q = _LOG_FLOOR if p == 1 else max(log1p(-p), _LOG_FLOOR)
    # The sum is the IEEE one: with fast-math's reassociation LLVM factored it into log_q +
    # t*(log_p - log_q), which cancels for a confident right answer (float64 p = 1 - 2.6e-15,
    # t = 1: a loss of 0.0 for 2.6e-15; an audit's finding).
    return -add_exactly(t * log_p, (1 - t) * log_q)


@jit
def _bce_sum(p, t):
    acc = 0.0
    for i in range(p.size):
        acc += _bce_term(p[i], t[i])
    return acc


@jit_parallel
def _sum_bce(p, t, n_chunks):
    """Sum of the BCE terms in float64; chunk partials are added in chunk order (one chunk:
    serially, as in :func:`_sum_sq_err`)."""
    p, t = p.reshape(p.size), t.reshape(t.size)
    if n_chunks == 1:
        return _bce_sum(p, t)
    partial = np.zeros(n_chunks, dtype=np.float64)
    for c in prange(n_chunks):
        lo, hi = _chunk(c, p.size, n_chunks)
        partial[c] = _bce_sum(p[lo:hi], t[lo:hi])
    return _sum(partial)


def bce_forward(p, t):
    """``mean(-(t*log(p) + (1-t)*log(1-p)))`` with each log clamped at -100."""
    return p.dtype.type(_sum_bce(p, t, _n_chunks(p.size)) / p.size)


@jit
def _bce_grad_term(p, t, one, eps, scale):
    return (p - t) / max(p * (one - p), eps) * scale


@jit_parallel
def _bce_grad(p, t, scale, d):
    # In the dtype throughout, as NumPy and PyTorch compute it: a Python 1 or 1e-12 would make
    # Numba's float32 arithmetic float64, and the floor 1e-12 is not float32's 9.99999996e-13.
    p, t, d = p.reshape(p.size), t.reshape(t.size), d.reshape(d.size)
    one, eps, scale = d.dtype.type(1), d.dtype.type(_BCE_EPS), d.dtype.type(scale)
    n = p.size
    if n < PARALLEL_MIN_SIZE:
        for i in range(n):
            d[i] = _bce_grad_term(p[i], t[i], one, eps, scale)
    else:
        for i in prange(n):
            d[i] = _bce_grad_term(p[i], t[i], one, eps, scale)


def bce_backward(dloss, p, t):
    """``dloss * (p - t) / max(p*(1-p), 1e-12) / size``."""
    d = np.empty(p.shape, p.dtype)
    _bce_grad(p, t, dloss / p.size, d)
    return d
