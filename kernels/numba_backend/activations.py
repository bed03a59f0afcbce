"""Element-wise activations and row-wise softmax (Numba).

Element-wise kernels run a plain loop below ``PARALLEL_MIN_SIZE`` elements and a ``prange`` loop
above it: a parallel region costs ~2 us to start, which small arrays never earn back. ``exp``,
``sigmoid`` and ``tanh`` come from ``_vecmath`` (plain arithmetic that LLVM vectorises), not
from ``math``, whose libm calls keep every loop scalar.
"""
import math

import numpy as np
from numba import prange

from ._config import PARALLEL_MIN_SIZE, jit, jit_parallel
from ._scalar import RELU, SIGMOID, TANH, relu, relu_grad, relu_row_, sigmoid_grad, tanh_grad
from ._vecmath import exp, maximum, sigmoid, tanh
from ._wide import wide_vectors


@jit_parallel
def _relu_forward(x, y):
    n = x.size
    if n < PARALLEL_MIN_SIZE:
        for i in range(n):
            y[i] = relu(x[i])
    else:
        for i in prange(n):
            y[i] = relu(x[i])


@jit_parallel
def _relu_backward(dout, x, dx):
    n = x.size
    if n < PARALLEL_MIN_SIZE:
        for i in range(n):
            dx[i] = relu_grad(dout[i], x[i])
    else:
        for i in prange(n):
            dx[i] = relu_grad(dout[i], x[i])


@jit_parallel
def _sigmoid_forward(x, y):
    n = x.size
    if n < PARALLEL_MIN_SIZE:
        wide_vectors()
        for i in range(n):
            y[i] = sigmoid(x[i])
    else:
        for i in prange(n):
            wide_vectors()
            y[i] = sigmoid(x[i])


# In place, one array (``activate_``): ``_sigmoid_forward(y, y)`` runs a loop compiled for two
# arrays, which LLVM vectorises behind a run-time check that they do not overlap; the same array
# twice fails the check and took the scalar loop below the parallel size (the ``prange`` bodies
# were not affected). Measured on an AMD EPYC (Zen 3), 57 344 values, one thread: sigmoid
# float32 376-406 us that way against 48-54 us here, float64 534-561 against 176-203 us; tanh
# alike.

@jit_parallel
def _sigmoid_(y):
    n = y.size
    if n < PARALLEL_MIN_SIZE:
        wide_vectors()
        for i in range(n):
            y[i] = sigmoid(y[i])
    else:
        for i in prange(n):
            wide_vectors()
            y[i] = sigmoid(y[i])


@jit_parallel
def _tanh_(y):
    n = y.size
    if n < PARALLEL_MIN_SIZE:
        wide_vectors()
        for i in range(n):
            y[i] = tanh(y[i])
    else:
        for i in prange(n):
            wide_vectors()
            y[i] = tanh(y[i])


@jit_parallel
def _sigmoid_backward(dout, y, dx):
    n = y.size
    if n < PARALLEL_MIN_SIZE:
        for i in range(n):
            dx[i] = sigmoid_grad(dout[i], y[i])
    else:
        for i in prange(n):
            dx[i] = sigmoid_grad(dout[i], y[i])


@jit_parallel
def _tanh_forward(x, y):
    n = x.size
    if n < PARALLEL_MIN_SIZE:
        wide_vectors()
        for i in range(n):
            y[i] = tanh(x[i])
    else:
        for i in prange(n):
            wide_vectors()
            y[i] = tanh(x[i])


@jit_parallel
def _tanh_backward(dout, y, dx):
    n = y.size
    if n < PARALLEL_MIN_SIZE:
        for i in range(n):
            dx[i] = tanh_grad(dout[i], y[i])
    else:
        for i in prange(n):
            dx[i] = tanh_grad(dout[i], y[i])


# Outputs come from ``np.empty(shape, dtype)``: the inputs are C-contiguous ndarrays already, and
# ``np.empty_like`` spends 0.3 us more per call working out a layout (a fifth of a 1000-element
# call).

def _unary(kernel, x):
    y = np.empty(x.shape, x.dtype)
    if x.ndim == 1:                    # no reshapes: they are a third of a 1000-element call
        kernel(x, y)
    else:
        kernel(x.reshape(-1), y.reshape(-1))
    return y


def _binary(kernel, dout, a):
    dx = np.empty(dout.shape, dout.dtype)
    if dout.ndim == 1:
        kernel(dout, a, dx)
    else:
        kernel(dout.reshape(-1), a.reshape(-1), dx.reshape(-1))
    return dx


def relu_forward(x):
    """``max(x, 0)``; NaN propagates."""
    return _unary(_relu_forward, x)


def relu_backward(dout, x):
    """``dout`` where ``x > 0`` or ``x`` is NaN, else 0 (PyTorch's choices)."""
    return _binary(_relu_backward, dout, x)


def sigmoid_forward(x):
    """``1 / (1 + exp(-x))`` written so that no ``exp`` ever overflows."""
    return _unary(_sigmoid_forward, x)


def sigmoid_backward(dout, y):
    """``dout * y * (1 - y)`` from the forward output ``y``."""
    return _binary(_sigmoid_backward, dout, y)


def tanh_forward(x):
    """``tanh(x)``, computed as ``-m / (m + 2)`` with ``m = expm1(-2|x|)``; exactly +-1 far out."""
    return _unary(_tanh_forward, x)


def tanh_backward(dout, y):
    """``dout * (1 - y**2)`` from the forward output ``y``."""
    return _binary(_tanh_backward, dout, y)


# The row kernels take the whole matrices and a row index, not the rows as views: each view is
# an array of its own whose reference count Numba updates on the way in and out, ~30-50 ns a
# row, more than the work on a 10-class row (measured: softmax backward (1024, 10) 50 -> 6 us).

#: Rows narrower than this take :func:`_softmax_narrow_rows`: blocks of rows whose ``exp`` runs
#: as one flat loop (a 16-lane ``exp`` loop over a 10-class row runs scalar). Measured, softmax
#: of (100, C) float32: C = 64 12.1 -> 8.9 us, 256 24.3 -> 21.8 us, 512 even; (1024, 1000) 383
#: -> 422 us, so wider rows stay one by one. The loss at (128, 10): 7 -> 3 us.
NARROW_ROWS = 512


# Inlined at Numba IR level into its callers (as are the loss's row functions that call it):
# compiled as a function of its own, its optimised code was linked into each caller and
# optimised again there, and ``reassoc`` let the second pass add the sum in another order, so a
# process that compiled a caller (running the first copy) and one that loaded it from the cache
# (the second) gave rows one ulp apart (a (20, 600) float32 batch: 3 of 20 rows; an audit's
# finding).
@jit(inline="always")
def _softmax_row(z, p, i):
    """Write softmax(z[i]) into p[i]; return ``(max, log(sum(exp(z[i] - max))))``, whose sum is
    logsumexp(z[i]). Kept apart, so that a loss takes ``(max - z) + log(sum)``: the sum first
    would round log(sum) away next to a large max (logits of 1e8 in float32 gave a loss of 0)."""
    wide_vectors()
    C = z.shape[1]
    m = z[i, 0]
    for j in range(1, C):
        m = maximum(m, z[i, j])
    # Summed in the logits' dtype: a float64 sum of float32 terms made this loop ~25% slower, and
    # every term is in (0, 1] (relative error of the float32 sum ~1e-7 at C = 1000).
    s = z.dtype.type(0)
    for j in range(C):
        e = exp(z[i, j] - m)
        p[i, j] = e
        s += e
    r = z.dtype.type(1) / s
    for j in range(C):
        p[i, j] *= r
    return m, math.log(s)


# Inlined at Numba IR level, as the loss's own narrow rows were before they moved here: compiled
# as a function of its own, this code cost the serial loss kernel 0.3 s more of a cold first
# training step (a callee's code is optimised again in every caller).
@jit(inline="always")
def _softmax_narrow_rows(z, p, row_max, row_sum, lo, hi):
    """Softmax of rows lo..hi of ``z`` into ``p`` for rows narrower than ``NARROW_ROWS``, in
    blocks of ~2048 values (which stay in L1), each in three flat passes: shift by the row max,
    ``exp`` over the whole block at once, then normalise. ``row_max[i]`` and ``row_sum[i]`` get
    the row's max and ``sum(exp(z[i] - max))`` (a loss takes the log of it). ``p`` must be
    C-contiguous (a block is one flat run of it)."""
    wide_vectors()                 # in the caller's function: this one is inlined as Numba IR
    C = z.shape[1]
    rows = max(1, 2048 // C)
    for b0 in range(lo, hi, rows):
        b1 = min(hi, b0 + rows)
        for i in range(b0, b1):
            m = z[i, 0]
            for j in range(1, C):
                m = maximum(m, z[i, j])
            for j in range(C):
                p[i, j] = z[i, j] - m
            row_max[i] = m
        flat = p[b0:b1].reshape(-1)
        for k in range(flat.size):
            flat[k] = exp(flat[k])
        for i in range(b0, b1):
            s = p.dtype.type(0)
            for j in range(C):
                s += p[i, j]
            r = p.dtype.type(1) / s
            for j in range(C):
                p[i, j] *= r
            row_sum[i] = s


@jit_parallel
def _softmax_rows(x, y):
    N, C = x.shape
    serial = x.size < PARALLEL_MIN_SIZE
    if C < NARROW_ROWS:
        row_max, row_sum = np.empty(N, x.dtype), np.empty(N, x.dtype)
        if serial:
            _softmax_narrow_rows(x, y, row_max, row_sum, 0, N)
        else:
            n_chunks = min(N, 64)
            for c in prange(n_chunks):
                _softmax_narrow_rows(x, y, row_max, row_sum, c * N // n_chunks,
                                     (c + 1) * N // n_chunks)
    elif serial:
        for i in range(N):
            _softmax_row(x, y, i)
    else:
        for i in prange(N):
            _softmax_row(x, y, i)


@jit(inline="always")             # a call per row: (1024, 10) 15 -> 8 us
def _softmax_backward_row(dout, y, dx, i):
    C = y.shape[1]
    s = y.dtype.type(0)
    for j in range(C):
        s += dout[i, j] * y[i, j]
    for j in range(C):
        dx[i, j] = y[i, j] * (dout[i, j] - s)


@jit_parallel
def _softmax_backward_rows(dout, y, dx):
    N = y.shape[0]
    if y.size < PARALLEL_MIN_SIZE:
        for i in range(N):
            _softmax_backward_row(dout, y, dx, i)
    else:
        for i in prange(N):
            _softmax_backward_row(dout, y, dx, i)


def softmax_forward(x):
    """Row-wise softmax of ``x (N, C)``, max-subtracted so ``exp`` never overflows."""
    y = np.empty(x.shape, x.dtype)
    _softmax_rows(x, y)
    return y


def softmax_backward(dout, y):
    """Vector-Jacobian product of softmax: ``y * (dout - sum(dout * y, axis=1))``."""
    dx = np.empty(dout.shape, dout.dtype)
    _softmax_backward_rows(dout, y, dx)
    return dx


def activate_(y, act, serial=False):
    """In place ``y = act(y)`` for a flat C-contiguous array and an activation code
    (``_scalar.ACT_CODE``): the activation pass of the dense and conv1d kernels, for those they
    do not fuse (sigmoid, tanh), or for a whole output at once. ``serial``: on one thread, in
    pieces below ``PARALLEL_MIN_SIZE`` (right after a BLAS product, whose workers still spin:
    a parallel pass waited for a core, see ``dense.SERIAL_BESIDE_BLAS``)."""
    if act == RELU:
        kernel = relu_row_
    elif act == SIGMOID:
        kernel = _sigmoid_
    elif act == TANH:
        kernel = _tanh_
    else:
        return
    if not serial or y.size < PARALLEL_MIN_SIZE:
        kernel(y)
        return
    piece = PARALLEL_MIN_SIZE - 1
    for start in range(0, y.size, piece):
        kernel(y[start:start + piece])
