"""1-D max and average pooling over the last axis of ``x (N, C, L)`` (NumPy).

``L_out = (L + 2*padding - kernel_size) // stride + 1`` (floor mode, as PyTorch's default).

* Max pooling pads with ``-inf`` (padding never wins) and returns the arg-max as an int64 index
  into ``L``. Ties go to the first (lowest) index; a NaN in a window is the maximum (the last NaN
  wins), so NaN propagates; both rules are PyTorch's.
* Average pooling pads with zeros that count in the divisor: every window divides by
  ``kernel_size`` (PyTorch's ``count_include_pad=True`` default).

The caller guarantees ``padding <= kernel_size // 2``, so every window holds a real element.
With fewer windows than taps (a window longer than the input, say ``kernel_size=2**31-1``) each
window is reduced over the real elements it covers, one window at a time: a padded copy would
be mostly padding, gigabytes of it.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import pool_output_length


def _windows(xp, kernel_size, stride):
    return sliding_window_view(xp, kernel_size, axis=2)[:, :, ::stride]   # (N, C, L_out, K)


def _covered(L, L_out, kernel_size, stride, padding):
    """``(l, lo, hi)`` per window ``l``: the real elements ``x[..., lo:hi]`` it covers."""
    for l in range(L_out):
        start = l * stride - padding
        yield l, max(start, 0), min(start + kernel_size, L)


def _window_by_window(x, L_out, kernel_size, stride, padding, reduce):
    """``reduce(x[:, :, lo:hi], axis=2)`` of each window's real elements, stacked ``(N, C,
    L_out)``."""
    return np.stack([reduce(x[:, :, lo:hi], axis=2)
                     for _, lo, hi in _covered(x.shape[2], L_out, kernel_size, stride, padding)],
                    axis=2)


def _to_last_nan(windows, k, axis):
    """The arg-max ``k`` along ``axis`` with each window that holds NaN sent to its last NaN
    (``argmax`` gives the first)."""
    nan = np.isnan(windows)
    last = windows.shape[axis] - 1 - np.flip(nan, axis=axis).argmax(axis=axis)
    return np.where(nan.any(axis=axis), last, k)


def _argmax_last_nan(windows, axis):
    k = windows.argmax(axis=axis)
    return _to_last_nan(windows, k, axis) if np.isnan(windows).any() else k


def _max_by_tap(windows):
    """``(max, arg-max)`` over the last axis of ``windows (N, C, L_out, K)``, one tap at a time
    over whole arrays: ``argmax`` along a short last axis ran 9x slower (20-45 against 5 ms at
    (128, 32, 784), K = 2). A later tap takes over where it is strictly greater (ties stay with
    the first) or NaN (the last NaN wins); ``np.maximum`` keeps a NaN already found."""
    y = windows[..., 0].copy()
    k = np.zeros(y.shape, np.int32)                  # K <= 2**31 - 1 (the checks' MAX_SIZE)
    for t in range(1, windows.shape[-1]):
        v = windows[..., t]
        took = (v > y) | np.isnan(v)
        np.maximum(y, v, out=y)
        k += took * (t - k)                          # no branch: np.where on random data is slow
    return y, k


def _no_rows(a):
    """Whether ``a (N, C, L)`` has no rows to pool: the window starts and views below would
    still be ``L_out`` or ``L`` long (an empty batch of length 2**40 asked NumPy for a 4 TiB
    ``arange``; the Numba backend allocates nothing there)."""
    return a.shape[0] * a.shape[1] == 0


def maxpool1d_forward(x, kernel_size, stride, padding):
    """``(y, argmax)``: window maxima and the int64 index into ``L`` of each (first on ties, last
    NaN)."""
    L_out = pool_output_length(x.shape[2], kernel_size, stride, padding)
    if _no_rows(x):
        return np.empty((*x.shape[:2], L_out), x.dtype), np.empty((*x.shape[:2], L_out), np.int64)
    if L_out < kernel_size:
        # Padding is -inf and never wins; a window of -inf values goes to its first real element.
        lo = np.maximum(np.arange(L_out, dtype=np.int64) * stride - padding, 0)  # as _covered
        argmax = _window_by_window(x, L_out, kernel_size, stride, padding,
                                   _argmax_last_nan) + lo
        return np.take_along_axis(x, argmax, axis=2), argmax
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)), constant_values=-np.inf)
    windows = _windows(xp, kernel_size, stride)
    y, k = _max_by_tap(windows)
    starts = np.arange(windows.shape[2], dtype=np.int64) * stride - padding
    # A window whose real values are all -inf ties with the -inf left padding, which comes first:
    # the tie goes to its first real element, index 0 (the padding is never an arg-max).
    argmax = np.maximum(k.astype(np.int64) + starts, 0)
    return np.ascontiguousarray(y), argmax


def maxpool1d_backward(dout, argmax, length):
    """``dx (N, C, length)``: each ``dout`` goes to its window's arg-max; overlaps accumulate."""
    N, C, L_out = dout.shape
    dx = np.zeros((N * C, length), dtype=dout.dtype)
    argmax, dout = argmax.reshape(N * C, L_out), dout.reshape(N * C, L_out)
    if (argmax[:, 1:] > argmax[:, :-1]).all():
        # Windows that do not overlap (stride >= kernel_size, the usual pooling) give strictly
        # increasing indices along each row: no target repeats, so a plain scatter does.
        # np.add.at took 12 ms at (128, 32, 784), K = 2; this takes 5 ms, the check included.
        np.put_along_axis(dx, argmax, dout, axis=1)
    else:
        np.add.at(dx, (np.arange(N * C)[:, None], argmax), dout)
    return dx.reshape(N, C, length)


def avgpool1d_forward(x, kernel_size, stride, padding):
    """Window means, zeros of the padding counted: every window divides by ``kernel_size``."""
    L_out = pool_output_length(x.shape[2], kernel_size, stride, padding)
    if _no_rows(x):
        return np.empty((*x.shape[:2], L_out), x.dtype)
    if L_out < kernel_size:
        sums = _window_by_window(x, L_out, kernel_size, stride, padding, np.sum)
        return sums / x.dtype.type(kernel_size)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding))) if padding else x
    # Tap by tap, one strided slice each, as the backward below: .mean over the windows' last
    # axis reduced k values at a time (25.9 against 1.5 ms at (128, 32, 784), k = 2).
    last = stride * (L_out - 1) + 1
    sums = xp[:, :, 0:last:stride].copy()
    for k in range(1, kernel_size):
        sums += xp[:, :, k:k + last:stride]
    return sums / x.dtype.type(kernel_size)


def avgpool1d_backward(dout, length, kernel_size, stride, padding):
    """``dx (N, C, length)``: each ``dout / kernel_size`` spread over its window."""
    N, C, L_out = dout.shape
    if _no_rows(dout):
        return np.zeros((N, C, length), dtype=dout.dtype)
    g = dout / dout.dtype.type(kernel_size)
    if L_out < kernel_size:
        # Fewer windows than taps (huge windows): add each window's share to the real elements
        # it covers, so the loop and the buffer never scale with kernel_size or padding.
        dx = np.zeros((N, C, length), dtype=dout.dtype)
        for l, lo, hi in _covered(length, L_out, kernel_size, stride, padding):
            dx[:, :, lo:hi] += g[:, :, l:l + 1]
        return dx
    dxp = np.zeros((N, C, length + 2 * padding), dtype=dout.dtype)
    last = stride * (L_out - 1) + 1
    for k in range(kernel_size):
        dxp[:, :, k:k + last:stride] += g
    return np.ascontiguousarray(dxp[:, :, padding:padding + length])
