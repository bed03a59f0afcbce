"""1-D max and average pooling over the last axis of ``x (N, C, L)`` (NumPy).

``L_out = (L + 2*padding - kernel_size) // stride + 1`` (floor mode, as PyTorch's default).

* Max pooling pads with ``-inf`` (padding never wins) and returns the arg-max as an int64 index
  into ``L``. Ties go to the first (lowest) index; a NaN in a window is the maximum (the first NaN
  wins), so NaN propagates, as in PyTorch.
* Average pooling pads with zeros that count in the divisor: every window divides by
  ``kernel_size`` (PyTorch's ``count_include_pad=True`` default).

The caller guarantees ``padding <= kernel_size // 2``, so every window holds a real element.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(xp, kernel_size, stride):
    return sliding_window_view(xp, kernel_size, axis=2)[:, :, ::stride]   # (N, C, L_out, K)


def maxpool1d_forward(x, kernel_size, stride, padding):
    """``(y, argmax)``: window maxima and the int64 index into ``L`` of each (first on ties)."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)), constant_values=-np.inf)
    windows = _windows(xp, kernel_size, stride)
    k = windows.argmax(axis=3)                       # first occurrence of the maximum
    y = np.take_along_axis(windows, k[..., None], axis=3)[..., 0]
    starts = np.arange(windows.shape[2], dtype=np.int64) * stride - padding
    # A window whose real values are all -inf ties with the -inf left padding, which comes first:
    # the tie goes to its first real element, index 0 (the padding is never an arg-max).
    argmax = np.maximum(k.astype(np.int64) + starts, 0)
    return np.ascontiguousarray(y), argmax


def maxpool1d_backward(dout, argmax, length):
    """``dx (N, C, length)``: each ``dout`` goes to its window's arg-max; overlaps accumulate."""
    N, C, L_out = dout.shape
    dx = np.zeros((N * C, length), dtype=dout.dtype)
    rows = np.arange(N * C)[:, None]
    np.add.at(dx, (rows, argmax.reshape(N * C, L_out)), dout.reshape(N * C, L_out))
    return dx.reshape(N, C, length)


def avgpool1d_forward(x, kernel_size, stride, padding):
    """Window means, zeros of the padding counted: every window divides by ``kernel_size``."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    return _windows(xp, kernel_size, stride).mean(axis=3)


def avgpool1d_backward(dout, length, kernel_size, stride, padding):
    """``dx (N, C, length)``: each ``dout / kernel_size`` spread over its window."""
    N, C, L_out = dout.shape
    g = dout / dout.dtype.type(kernel_size)
    if L_out < kernel_size:
        # Fewer windows than taps (huge windows): add each window's share to the real elements
        # it covers, so the loop and the buffer never scale with kernel_size or padding.
        dx = np.zeros((N, C, length), dtype=dout.dtype)
        for l in range(L_out):
            start = l * stride - padding
            lo, hi = max(start, 0), min(start + kernel_size, length)
            dx[:, :, lo:hi] += g[:, :, l:l + 1]
        return dx
    dxp = np.zeros((N, C, length + 2 * padding), dtype=dout.dtype)
    last = stride * (L_out - 1) + 1
    for k in range(kernel_size):
        dxp[:, :, k:k + last:stride] += g
    return np.ascontiguousarray(dxp[:, :, padding:padding + length])
