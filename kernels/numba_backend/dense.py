"""Fully connected layer ``y = act(x @ W + b)`` (Numba).

The products (most of the work) go to the outer micro-kernel (``dense_blocked``) on AVX-512 hosts
for mid-sized layers, where it runs at 2-3x OpenBLAS's rate on this machine (the figures are in
``dense_blocked``'s docstring), and to BLAS through NumPy's ``@`` elsewhere (tiny products, batches
above 512 rows, and operands beyond the L3 cache, where BLAS's fuller cache blocking wins:
``dense_blocked.pays``). Numba fuses everything around them into single passes: bias plus ReLU in
the forward, activation gradient plus the bias-gradient column sums in the backward. Sigmoid and
tanh run after the bias as a pass of their own (``activations.activate_``, ``_vecmath``'s
vectorisable versions), so a ReLU network never compiles them.

Small batches on BLAS (hosts without AVX-512): for a few rows against a wide layer, NumPy's
OpenBLAS computes the product's transpose ``W.T @ x.T`` faster than ``x @ W`` itself (float64,
20 x 784 -> 400: 146 against 237-275 us on two threads, 261 against 396 us on one). The gap
comes from how OpenBLAS blocks a product with one short side; it is measured here, not derived.
:func:`_transposed_pays` says when to use it; the forward then reads the transpose in its bias
pass (no extra pass), and the input gradient is copied back to rows. Plain time over transposed
time (copy included) over N 2-32, inner sizes 10-784 and widths 10-1024, both dtypes: 1.0-1.9x
inside the rule's window; 0.4-1.0x for widths below 128, inner sizes below 128 and float32
forward widths of 1024; mixed from N = 32 up. The input gradient ``dz @ W.T`` keeps winning up
to width 1024 in both dtypes (20 x 400 -> 784: 1.25x float64, 1.16x float32), so its window
reaches 1024 and the forward's 512. Outside the windows nothing changes.

One row (a batch of one sample) is a matrix-vector product, which BLAS streams at memory speed;
the micro-kernel computes its whole block of rows for it, and its ``dz @ W.T`` four rows of
``dz``. So ``x @ W`` and ``dz @ W.T`` of one row go to BLAS. Measured (Intel Xeon, two threads,
micro-kernel time over BLAS time): ``x @ W`` 1 x 1024 -> 1024 1.67 float64 and 1.61 float32;
``dz @ W.T`` 1 x 784 -> 784 2.0 float64 and 1.8 float32, 1 x 2000 -> 400 1.8 and 2.3. The
weight gradient of one row (an outer product) stays: 3.9-7.4x faster than BLAS's.
"""
import numpy as np
from numba import prange

from . import dense_blocked
from ._blas import numpy_has_openblas
from ._config import PARALLEL_MIN_SIZE, jit, jit_parallel
from ._scalar import ACT_CODE, NONE, RELU, SIGMOID, relu, relu_grad, sigmoid_grad, tanh_grad
from .activations import activate_
from .optimizers import adagrad_update_
from .scheduling import workers_sleep_at_once

#: Whether the passes around a BLAS product (bias and ReLU after it, the activation gradient and
#: bias gradient before the backward's two products) stay on one thread. Where OpenMP's idle
#: workers spin after a parallel region (fastnet's ``GOMP_SPINCOUNT`` on AVX-512 hosts, see
#: ``fastnet.backend``), a parallel pass leaves a worker spinning on the core that the next BLAS
#: product needs. Measured on an Intel Xeon at ``GOMP_SPINCOUNT=30000`` (NumPy baseline time over
#: this one's, one benchmark run each): 512 x 2048 -> 1024 forward float32 0.99x with parallel
#: passes, 1.02x with serial ones (float64 1.00x -> 1.03x); 128 x 784 -> 400 float64 backward
#: 0.96-1.02x over three runs before. Where workers sleep at once, the passes stay parallel.
SERIAL_BESIDE_BLAS = not workers_sleep_at_once()


@jit
def _bias_act_rows(y, b, act, lo, hi):
    n_out = y.shape[1]
    for i in range(lo, hi):
        row = y[i]
        if act == RELU:
            for j in range(n_out):
                row[j] = relu(row[j] + b[j])
        else:
            for j in range(n_out):
                row[j] += b[j]


@jit
def _bias_act_transposed(yt, b, act, y):
    """``y = yt.T + b``, ReLU'd when ``act`` is ``RELU``; ``yt (n_out, N)``, ``y (N, n_out)``."""
    N, n_out = y.shape
    for i in range(N):
        row = y[i]
        if act == RELU:
            for j in range(n_out):
                row[j] = relu(yt[j, i] + b[j])
        else:
            for j in range(n_out):
                row[j] = yt[j, i] + b[j]


@jit_parallel
def _bias_act_parallel(y, b, act):
    """In place: ``y = y + b``, or ``relu(y + b)`` when ``act`` is ``RELU``, row chunks split
    across threads (large ``y`` only: the wrapper calls :func:`_bias_act_rows` directly below
    ``PARALLEL_MIN_SIZE``, so small layers never pay this function's parallel compile, ~1.3 s)."""
    N = y.shape[0]
    n_chunks = min(N, 64)
    for c in prange(n_chunks):
        _bias_act_rows(y, b, act, c * N // n_chunks, (c + 1) * N // n_chunks)


@jit
def _act_grad_colsum(dout, y, act, dz, partial, lo, hi):
    """dz[lo:hi] = act'(y) * dout over rows lo..hi for no activation or ReLU; their column sums
    go to `partial`. Sigmoid and tanh have a function of their own (:func:`_smooth_grad_colsum`):
    a ReLU network's first step then does not compile them (0.37 -> 0.24 s, float32)."""
    n_out = y.shape[1]
    for j in range(n_out):
        partial[j] = 0
    for i in range(lo, hi):
        if act == NONE:
            for j in range(n_out):
                g = dout[i, j]
                dz[i, j] = g
                partial[j] += g
        else:
            for j in range(n_out):
                g = relu_grad(dout[i, j], y[i, j])
                dz[i, j] = g
                partial[j] += g


@jit
def _smooth_grad_colsum(dout, y, act, dz, partial, lo, hi):
    """:func:`_act_grad_colsum` for sigmoid and tanh."""
    n_out = y.shape[1]
    for j in range(n_out):
        partial[j] = 0
    for i in range(lo, hi):
        if act == SIGMOID:
            for j in range(n_out):
                g = sigmoid_grad(dout[i, j], y[i, j])
                dz[i, j] = g
                partial[j] += g
        else:
            for j in range(n_out):
                g = tanh_grad(dout[i, j], y[i, j])
                dz[i, j] = g
                partial[j] += g


@jit_parallel
def _act_grad_and_db_parallel(dout, y, act, dz):
    """Fused ``dz = act'(y) * dout`` and ``db = dz.sum(axis=0)`` for large ``y`` (below
    ``PARALLEL_MIN_SIZE`` the wrapper calls :func:`_act_grad_colsum` or
    :func:`_smooth_grad_colsum` directly).

    Threads own disjoint row chunks and write their own row of `partials`; the partials are then
    summed in chunk order, so the result does not depend on thread timing.
    """
    N, n_out = y.shape
    n_chunks = min(N, 8)
    partials = np.empty((n_chunks, n_out), dtype=y.dtype)
    for c in prange(n_chunks):
        lo, hi = c * N // n_chunks, (c + 1) * N // n_chunks
        if act <= RELU:
            _act_grad_colsum(dout, y, act, dz, partials[c], lo, hi)
        else:
            _smooth_grad_colsum(dout, y, act, dz, partials[c], lo, hi)
    db = partials[0].copy()
    for c in range(1, n_chunks):
        db += partials[c]
    return db


def _transposed_pays(rows, W, K, M, widest):
    """Whether BLAS computes an ``(N, M)`` product of C-ordered ``rows (N, K)`` and ``W`` (or
    ``W.T``) faster as its transpose: few rows (N <= 24), a deep and wide product (K >= 200,
    200 <= M <= ``widest``), the C-ordered operands and the BLAS (NumPy's OpenBLAS) it was
    measured with (module docstring)."""
    return (rows.shape[0] <= 24 and K >= 200 and 200 <= M <= widest and rows.flags.c_contiguous
            and W.flags.c_contiguous and numpy_has_openblas())


def _bias_act(y, b, act, beside_blas=False):
    """In place, ``y + b`` (ReLU'd for ``RELU``), in parallel for large ``y`` only (and not
    beside BLAS where workers spin: :data:`SERIAL_BESIDE_BLAS`)."""
    if y.size < PARALLEL_MIN_SIZE or (beside_blas and SERIAL_BESIDE_BLAS):
        _bias_act_rows(y, b, act, 0, y.shape[0])
    else:
        _bias_act_parallel(y, b, act)


def dense_forward(x, W, b, activation):
    """``act(x @ W + b)`` for ``x (N, n_in)``, ``W (n_in, n_out)``, ``b (n_out,)``."""
    if _blocked_product(x, W):
        y = dense_blocked.times(x, W)              # C-contiguous, as the contract says
        _finish(y, b, activation)
    elif _transposed_pays(x, W, *W.shape, 512):
        y = np.empty((x.shape[0], W.shape[1]), W.dtype)
        act = ACT_CODE[activation]
        _bias_act_transposed(W.T @ x.T, b, act if act <= RELU else NONE, y)
        if act > RELU:
            activate_(y.reshape(-1), act, serial=SERIAL_BESIDE_BLAS)
    else:
        y = x @ W
        _finish(y, b, activation, beside_blas=True)
    return y


def dense_bias_act_(xw, b, activation):
    """In place, ``xw = act(xw + b)``: :func:`dense_forward` after its product, bit for bit."""
    _finish(xw, b, activation)


def _blocked_product(x, W):
    """Whether ``dense_forward``'s product goes to the micro-kernel (one row: to BLAS)."""
    return x.shape[0] > 1 and dense_blocked.pays(x.shape[0], *W.shape, W.dtype)


def _product(x, W):
    """``x @ W`` as :func:`dense_forward` computes it, C-contiguous (its transposed product is
    the same values: the bias pass reads either layout)."""
    if _blocked_product(x, W):
        return dense_blocked.times(x, W)
    if _transposed_pays(x, W, *W.shape, 512):
        return np.ascontiguousarray((W.T @ x.T).T)
    return x @ W


def _finish(y, b, activation, beside_blas=False):
    """In place: the bias, and ReLU in the same pass; sigmoid and tanh in a pass of their own
    (on one thread beside BLAS too: a parallel tanh over (1000, 100) float32 after its product
    took 0.73 ms more than the product, on one thread 0.00-0.03 ms; an audit's finding)."""
    act = ACT_CODE[activation]
    _bias_act(y, b, act if act <= RELU else NONE, beside_blas)
    if act > RELU:
        activate_(y.reshape(-1), act, serial=beside_blas and SERIAL_BESIDE_BLAS)


def dense_backward(dout, x, W, y, activation, need_dx):
    """Gradients ``(dx, dW, db)`` of ``y = act(x @ W + b)`` given ``dout = dL/dy``
    (``dx`` is None when ``need_dx`` is False: the first layer's input needs no gradient)."""
    blocked = dense_blocked.pays(x.shape[0], *W.shape, W.dtype, backward=True)
    dz, db = _grad_z_and_b(dout, y, activation, blocked)
    if blocked:
        return _grad_x_blocked(dz, W, need_dx), dense_blocked.transposed_times(x, dz), db
    if not need_dx:
        dx = None
    elif _transposed_pays(dz, W, W.shape[1], W.shape[0], 1024):
        dx = np.ascontiguousarray((W @ dz.T).T)
    else:
        dx = dz @ W.T
    return dx, x.T @ dz, db


def dense_backward_adagrad_(W, h, dout, x, y, activation, need_dx, lr, eps):
    """``dense_backward``, with ``dW`` spent at once on an AdaGrad step of ``W`` (state ``h``)
    in place; returns ``(dx, db)``, ``dx`` from ``W`` as it was. Bit for bit the two kernels in
    turn. On the micro-kernel the step is fused with the product (``dense_blocked``), so ``dW``
    is never stored: the notebooks' MLP step at batch 20 float64 took 0.87 ms instead of 0.92
    (medians of six interleaved process pairs, on a slow stretch of this machine)."""
    if not dense_blocked.pays(x.shape[0], *W.shape, W.dtype, backward=True):
        dx, dW, db = dense_backward(dout, x, W, y, activation, need_dx)
        adagrad_update_(W, dW, h, lr, eps)
        return dx, db
    dz, db = _grad_z_and_b(dout, y, activation, True)
    dx = _grad_x_blocked(dz, W, need_dx)               # before W changes
    dense_blocked.transposed_times_adagrad_(x, dz, W, h, lr, eps)
    return dx, db


def dense_backward_adagrad_ahead_(W, h, dout, x, y, activation, need_dx, lr, eps, x_next):
    """:func:`dense_backward_adagrad_`, then the product ``x_next @ W`` of the updated ``W``
    that ``dense_forward(x_next, W, b, activation)`` computes, bit for bit: returns ``(dx, db,
    xw)``. On the micro-kernel, each slab of ``W`` is multiplied as soon as its step is taken
    (``dense_blocked.transposed_times_adagrad_``); elsewhere the two in turn."""
    N, N2 = x.shape[0], x_next.shape[0]
    if not dense_blocked.fuses_next_product(N, N2, *W.shape, W.dtype):
        dx, db = dense_backward_adagrad_(W, h, dout, x, y, activation, need_dx, lr, eps)
        return dx, db, _product(x_next, W)
    dz, db = _grad_z_and_b(dout, y, activation, True)
    dx = _grad_x_blocked(dz, W, need_dx)               # before W changes
    return dx, db, dense_blocked.transposed_times_adagrad_(x, dz, W, h, lr, eps, x_next)


def _grad_z_and_b(dout, y, activation, blocked):
    """``dz = act'(y) * dout`` and ``db``, in parallel only for large ``y`` (and not beside BLAS
    where workers spin: :data:`SERIAL_BESIDE_BLAS`)."""
    dz = np.empty(dout.shape, dout.dtype)               # not empty_like: 0.3 us less
    if y.size < PARALLEL_MIN_SIZE or (SERIAL_BESIDE_BLAS and not blocked):
        db = np.empty(y.shape[1], dtype=y.dtype)
        act = ACT_CODE[activation]
        (_act_grad_colsum if act <= RELU else _smooth_grad_colsum)(dout, y, act, dz, db, 0,
                                                                    y.shape[0])
    else:
        db = _act_grad_and_db_parallel(dout, y, ACT_CODE[activation], dz)
    return dz, db


def _grad_x_blocked(dz, W, need_dx):
    """``dz @ W.T`` beside the micro-kernel's weight gradient, or None; one row on BLAS's
    matrix-vector product (module docstring)."""
    if not need_dx:
        return None
    return dense_blocked.times_transposed(dz, W) if dz.shape[0] > 1 else dz @ W.T
