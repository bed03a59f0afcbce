"""1-D convolution (cross-correlation, as PyTorch's ``conv1d``) by im2col + BLAS (NumPy).

The textbook vectorised formulation: pad, take the sliding windows as a strided view
(``sliding_window_view``, no copy), contract windows and weights with ``tensordot`` (which
copies the windows into a column matrix and calls BLAS), and for ``dx`` scatter the column
gradient back with one strided ``+=`` per kernel tap (col2im as a loop over ``K``).

Shapes: ``x (N, C_in, L)``, ``W (C_out, C_in, K)``, ``b (C_out,)``, ``y (N, C_out, L_out)`` with
``L_out = (L + padding_left + padding_right - dilation*(K-1) - 1) // stride + 1``.

Padding far longer than the input and the column matrix (``padding=2**30`` with a large stride
or dilation, say, for an output of a few positions) would make the padded copy the whole cost,
gigabytes of zeros; and a column matrix beyond :data:`COLUMNS_MAX_BYTES` (``K * C_in`` values per
output position, 16 GiB for ``x (1, 64, 2**20)`` and 64 taps) would need far more memory than
the output, which is all that the functional API's memory check counts. There the same sums run
tap by tap instead, each tap over the output positions where it reads a real element: memory
stays within a few times that of ``x`` and ``y``, as in the Numba backend.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import conv1d_output_length
from .activations import activate_, activation_grad


def _windows(x, K, stride, padding_left, padding_right, dilation):
    """Padded input and its windows ``(N, C_in, L_out, K)`` as a view into it."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding_left, padding_right)))
    span = dilation * (K - 1) + 1
    windows = sliding_window_view(xp, span, axis=2)[:, :, ::stride, ::dilation]
    return xp, windows


#: Largest column matrix (bytes) that the im2col path builds; beyond it the sums run tap by tap.
#: The benchmarks' shapes stay far below (84 MB at most: N64 C32 L1024 K5 float64), so their
#: timings are those of the textbook path.
COLUMNS_MAX_BYTES = 256 << 20


def _by_taps(x, L_out, K, padding_left, padding_right):
    """Whether the sums run tap by tap: the padding longer than both the input and the column
    matrix's rows, or the column matrix beyond :data:`COLUMNS_MAX_BYTES`."""
    N, C_in, L = x.shape
    return (padding_left + padding_right > max(L, K * L_out)
            or N * L_out * C_in * K * x.itemsize > COLUMNS_MAX_BYTES)


def _reading(k, L, L_out, stride, padding_left, dilation):
    """``(l0, l1)``: the output positions ``l0 <= l < l1`` whose tap ``k`` reads inside ``x``
    (none when ``l1 <= l0``); the others read the padding."""
    first = k * dilation - padding_left                # the position output 0 reads
    l0 = max(0, -(first // stride))                    # ceil(-first / stride) when first < 0
    return l0, min(L_out, (L - 1 - first) // stride + 1)


def _taps(L, L_out, K, stride, padding_left, dilation):
    """``(k, outputs, inputs)`` for each kernel tap ``k`` that reads any real element: the
    slice of output positions ``l`` whose tap ``k`` reads inside ``x``, and the slice of ``x``'s
    positions they read, ``l*stride + k*dilation - padding_left`` (both the same length)."""
    for k in range(K):
        l0, l1 = _reading(k, L, L_out, stride, padding_left, dilation)
        if l1 > l0:
            p0 = k * dilation - padding_left + l0 * stride
            yield k, slice(l0, l1), slice(p0, p0 + (l1 - l0 - 1) * stride + 1, stride)


def _padding_reads(L, L_out, K, stride, padding_left, dilation):
    """``(k, before, after)`` for each tap: the slices of output positions whose tap ``k`` reads
    the padding (before and after ``x``).

    The tap-by-tap sums skip the padding, but ``0 * inf`` and ``0 * nan`` are NaN in the padded
    products of the other path and of the Numba backend: with a non-finite weight (forward) or
    ``dout`` (weight gradient) the sums they reach are made NaN over these slices."""
    for k in range(K):
        l0, l1 = _reading(k, L, L_out, stride, padding_left, dilation)
        if l1 <= l0:
            yield k, slice(0, L_out), slice(0, 0)
        else:
            yield k, slice(0, l0), slice(l1, L_out)


def conv1d_forward(x, W, b, stride, padding_left, padding_right, dilation, activation):
    """``y[n, o, l] = act(b[o] + sum_{c,k} W[o, c, k] * xpad[n, c, l*stride + k*dilation])``."""
    N, C_in, L = x.shape
    C_out, _, K = W.shape
    L_out = conv1d_output_length(L, K, stride, padding_left, padding_right, dilation)
    if _by_taps(x, L_out, K, padding_left, padding_right):
        yt = np.zeros((N, L_out, C_out), dtype=x.dtype)
        for k, outputs, inputs in _taps(L, L_out, K, stride, padding_left, dilation):
            yt[:, outputs] += np.tensordot(x[:, :, inputs], W[:, :, k], axes=([1], [1]))
        bad = ~np.isfinite(W).all(axis=1)                               # (C_out, K)
        if bad.any():
            for k, before, after in _padding_reads(L, L_out, K, stride, padding_left, dilation):
                for outputs in (before, after):
                    yt[:, outputs, bad[:, k]] = np.nan
    else:
        _, windows = _windows(x, K, stride, padding_left, padding_right, dilation)
        yt = np.tensordot(windows, W, axes=([1, 3], [1, 2]))      # (N, L_out, C_out)
    y = np.empty((N, C_out, L_out), dtype=x.dtype)
    np.add(yt.transpose(0, 2, 1), b[:, None], out=y)
    activate_(y, activation)
    return y


def conv1d_backward(dout, x, W, y, activation, stride, padding_left, padding_right, dilation,
                    need_dx):
    """Gradients ``(dx, dW, db)`` of :func:`conv1d_forward` given ``dout (N, C_out, L_out)``
    and the forward output ``y`` (read only for an activation; ``dx`` is None when ``need_dx``
    is False).

    Input positions that no window reads (skipped by a stride larger than the span, or beyond the
    last window) get ``dx = 0``; gradients that land in the padding are dropped.
    """
    dout = activation_grad(dout, y, activation)
    K = W.shape[2]
    L = x.shape[2]
    L_out = dout.shape[2]
    db = dout.sum(axis=(0, 2))
    if _by_taps(x, L_out, K, padding_left, padding_right):
        return _backward_by_taps(dout, x, W, stride, padding_left, dilation, need_dx) + (db,)
    xp, windows = _windows(x, K, stride, padding_left, padding_right, dilation)
    dW = np.tensordot(dout, windows, axes=([0, 2], [0, 2]))        # (C_out, C_in, K)
    if not need_dx:
        return None, dW, db
    dcols = np.tensordot(dout, W, axes=([1], [0]))                 # (N, L_out, C_in, K)
    dxp = np.zeros_like(xp)
    last = stride * (L_out - 1) + 1
    for k in range(K):
        start = k * dilation
        dxp[:, :, start:start + last:stride] += dcols[:, :, :, k].transpose(0, 2, 1)
    dx = np.ascontiguousarray(dxp[:, :, padding_left:padding_left + L])
    return dx, dW, db


def _backward_by_taps(dout, x, W, stride, padding_left, dilation, need_dx):
    """``(dx, dW)`` tap by tap (see :func:`_taps`), without a padded copy of ``x``."""
    L, L_out, K = x.shape[2], dout.shape[2], W.shape[2]
    dW = np.zeros_like(W)
    dx = np.zeros_like(x) if need_dx else None
    for k, outputs, inputs in _taps(L, L_out, K, stride, padding_left, dilation):
        dW[:, :, k] = np.tensordot(dout[:, :, outputs], x[:, :, inputs], axes=([0, 2], [0, 2]))
        if need_dx:
            dx[:, :, inputs] += np.tensordot(dout[:, :, outputs], W[:, :, k],
                                             axes=([1], [0])).transpose(0, 2, 1)
    bad = ~np.isfinite(dout).all(axis=0)                                # (C_out, L_out)
    if bad.any():
        for k, before, after in _padding_reads(L, L_out, K, stride, padding_left, dilation):
            hit = bad[:, before].any(axis=1) | bad[:, after].any(axis=1)    # (C_out,)
            dW[hit, :, k] = np.nan
    return dx, dW
