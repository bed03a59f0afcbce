"""1-D convolution (cross-correlation, as PyTorch's ``conv1d``) by im2col + BLAS (NumPy).

The textbook vectorised formulation: pad, take the sliding windows as a strided view
(``sliding_window_view``, no copy), contract windows and weights with ``tensordot`` (which
copies the windows into a column matrix and calls BLAS), and for ``dx`` scatter the column
gradient back with one strided ``+=`` per kernel tap (col2im as a loop over ``K``).

Shapes: ``x (N, C_in, L)``, ``W (C_out, C_in, K)``, ``b (C_out,)``, ``y (N, C_out, L_out)`` with
``L_out = (L + padding_left + padding_right - dilation*(K-1) - 1) // stride + 1``.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .activations import activate_, activation_grad


def _windows(x, K, stride, padding_left, padding_right, dilation):
    """Padded input and its windows ``(N, C_in, L_out, K)`` as a view into it."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding_left, padding_right)))
    span = dilation * (K - 1) + 1
    windows = sliding_window_view(xp, span, axis=2)[:, :, ::stride, ::dilation]
    return xp, windows


def conv1d_forward(x, W, b, stride, padding_left, padding_right, dilation, activation):
    """``y[n, o, l] = act(b[o] + sum_{c,k} W[o, c, k] * xpad[n, c, l*stride + k*dilation])``."""
    N = x.shape[0]
    C_out = W.shape[0]
    _, windows = _windows(x, W.shape[2], stride, padding_left, padding_right, dilation)
    L_out = windows.shape[2]
    yt = np.tensordot(windows, W, axes=([1, 3], [1, 2]))          # (N, L_out, C_out)
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
    xp, windows = _windows(x, K, stride, padding_left, padding_right, dilation)
    L_out = windows.shape[2]
    db = dout.sum(axis=(0, 2))
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
