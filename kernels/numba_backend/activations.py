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


@jit
def _softmax_row(z, p):
    """Write softmax(z) into p; return ``(max, log(sum(exp(z - max))))``, whose sum is
    logsumexp(z). Kept apart, so that a loss takes ``(max - z) + log(sum)``: the sum first would
    round log(sum) away next to a large max (logits of 1e8 in float32 gave a loss of 0)."""
    wide_vectors()
    C = z.size
    m = z[0]
    for j in range(1, C):
        m = maximum(m, z[j])
    # Summed in the logits' dtype: a float64 sum of float32 terms made this loop ~25% slower, and
    # every term is in (0, 1] (relative error of the float32 sum ~1e-7 at C = 1000).
    s = z.dtype.type(0)
    for j in range(C):
        e = exp(z[j] - m)
        p[j] = e
        s += e
    r = z.dtype.type(1) / s
    for j in range(C):
        p[j] *= r
    return m, math.log(s)


@jit_parallel
def _softmax_rows(x, y):
    N = x.shape[0]
    if x.size < PARALLEL_MIN_SIZE:
        for i in range(N):
            _softmax_row(x[i], y[i])
    else:
        for i in prange(N):
            _softmax_row(x[i], y[i])


@jit
def _softmax_backward_row(dout, y, dx):
    C = y.size
    s = y.dtype.type(0)
    for j in range(C):
        s += dout[j] * y[j]
    for j in range(C):
        dx[j] = y[j] * (dout[j] - s)


@jit_parallel
def _softmax_backward_rows(dout, y, dx):
    N = y.shape[0]
    if y.size < PARALLEL_MIN_SIZE:
        for i in range(N):
            _softmax_backward_row(dout[i], y[i], dx[i])
    else:
        for i in prange(N):
            _softmax_backward_row(dout[i], y[i], dx[i])


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


def activate_(y, act):
    """In place ``y = act(y)`` for a flat C-contiguous array and an activation code
    (``_scalar.ACT_CODE``): the activation pass of the dense and conv1d kernels, for those they
    do not fuse (sigmoid, tanh), or for a whole output at once."""
    if act == RELU:
        relu_row_(y)
    elif act == SIGMOID:
        _sigmoid_forward(y, y)
    elif act == TANH:
        _tanh_forward(y, y)
