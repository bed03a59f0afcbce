"""1-D max and average pooling over the last axis of ``x (N, C, L)`` (Numba).

``L_out = (L + 2*padding - kernel_size) // stride + 1`` (floor mode, as PyTorch's default).

* Max pooling pads with ``-inf`` (padding never wins) and returns the arg-max as an int64 index
  into ``L``. Ties go to the first (lowest) index; a NaN in a window is the maximum (the first NaN
  wins), so NaN propagates, as in PyTorch.
* Average pooling pads with zeros that count in the divisor: every window divides by
  ``kernel_size`` (PyTorch's ``count_include_pad=True`` default).

The caller guarantees ``padding <= kernel_size // 2``, so every window holds a real element.

The loops are serial: pooling streams each element once or twice (memory-bound, ~0.1 ms for the
MNIST CNN's 128 x 64 x 28 activations), and every Numba parallel function costs about a second of
cold compile time per dtype, which these kernels would not earn back. Rows are independent and
overlapping windows of a row accumulate in order, so results are deterministic.
"""
import numpy as np

from ._config import jit


@jit
def _maxpool_forward(x, kernel_size, stride, padding, y, argmax):
    """Rows of ``x (R, L)`` into ``y``, ``argmax (R, L_out)``."""
    R, L = x.shape
    for r in range(R):
        xr = x[r]
        for l in range(y.shape[1]):
            start = l * stride - padding
            lo = max(start, 0)
            best = xr[lo]
            at = lo
            for i in range(lo + 1, min(start + kernel_size, L)):
                if best != best:               # a NaN is the maximum: the first one stays
                    break
                v = xr[i]
                if v > best or v != v:         # strict: ties keep the first index
                    best = v
                    at = i
            y[r, l] = best
            argmax[r, l] = at


@jit
def _maxpool2_forward(x, y, argmax):
    """The common case, windows of 2 with stride 2 and no padding, written without branches
    (selects) so the loop vectorises (measured 4x faster at (128, 32, 28)); same semantics as
    :func:`_maxpool_forward`."""
    R = x.shape[0]
    L_out = y.shape[1]
    for r in range(R):
        xr = x[r]
        yr = y[r]
        ar = argmax[r]
        for l in range(L_out):
            a = xr[2 * l]
            b = xr[2 * l + 1]
            take = (b > a) | ((b != b) & (a == a))     # ties and a first NaN keep `a`
            yr[l] = b if take else a
            ar[l] = 2 * l + 1 if take else 2 * l


@jit
def _maxpool_backward(dout, argmax, dx):
    for r in range(dout.shape[0]):
        dxr = dx[r]
        for i in range(dxr.shape[0]):
            dxr[i] = 0
        for l in range(dout.shape[1]):
            dxr[argmax[r, l]] += dout[r, l]


@jit
def _avgpool_forward(x, kernel_size, stride, padding, y):
    R, L = x.shape
    scale = 1 / x.dtype.type(kernel_size)
    for r in range(R):
        xr = x[r]
        for l in range(y.shape[1]):
            start = l * stride - padding
            s = x.dtype.type(0)
            for i in range(max(start, 0), min(start + kernel_size, L)):
                s += xr[i]
            y[r, l] = s * scale


@jit
def _avgpool_backward(dout, kernel_size, stride, padding, dx):
    R, L = dx.shape
    scale = 1 / dx.dtype.type(kernel_size)
    for r in range(R):
        dxr = dx[r]
        for i in range(L):
            dxr[i] = 0
        for l in range(dout.shape[1]):
            start = l * stride - padding
            g = dout[r, l] * scale
            for i in range(max(start, 0), min(start + kernel_size, L)):
                dxr[i] += g


def _output_length(L, kernel_size, stride, padding):
    return (L + 2 * padding - kernel_size) // stride + 1


def maxpool1d_forward(x, kernel_size, stride, padding):
    """``(y, argmax)``: window maxima and the int64 index into ``L`` of each (first on ties)."""
    N, C, L = x.shape
    L_out = _output_length(L, kernel_size, stride, padding)
    assert L_out >= 1 and 2 * padding <= kernel_size
    y = np.empty((N, C, L_out), dtype=x.dtype)
    argmax = np.empty((N, C, L_out), dtype=np.int64)
    rows = (x.reshape(N * C, L), y.reshape(N * C, L_out), argmax.reshape(N * C, L_out))
    if kernel_size == 2 and stride == 2 and padding == 0:
        _maxpool2_forward(*rows)
    else:
        _maxpool_forward(rows[0], kernel_size, stride, padding, *rows[1:])
    return y, argmax


def maxpool1d_backward(dout, argmax, length):
    """``dx (N, C, length)``: each ``dout`` goes to its window's arg-max; overlaps accumulate."""
    N, C, L_out = dout.shape
    dx = np.empty((N, C, length), dtype=dout.dtype)
    _maxpool_backward(dout.reshape(N * C, L_out), argmax.reshape(N * C, L_out),
                      dx.reshape(N * C, length))
    return dx


def avgpool1d_forward(x, kernel_size, stride, padding):
    """Window means, zeros of the padding counted: every window divides by ``kernel_size``."""
    N, C, L = x.shape
    L_out = _output_length(L, kernel_size, stride, padding)
    assert L_out >= 1 and 2 * padding <= kernel_size
    y = np.empty((N, C, L_out), dtype=x.dtype)
    _avgpool_forward(x.reshape(N * C, L), kernel_size, stride, padding, y.reshape(N * C, L_out))
    return y


def avgpool1d_backward(dout, length, kernel_size, stride, padding):
    """``dx (N, C, length)``: each ``dout / kernel_size`` spread over its window."""
    N, C, L_out = dout.shape
    dx = np.empty((N, C, length), dtype=dout.dtype)
    _avgpool_backward(dout.reshape(N * C, L_out), kernel_size, stride, padding,
                      dx.reshape(N * C, length))
    return dx
