"""Scalar helpers shared by the Numba kernels (inlined by LLVM into the loops that call them).

``exp``, ``sigmoid`` and ``tanh`` live in ``_vecmath``: they must be written so that LLVM can
vectorise them, which is a module's worth of explanation.
"""
import numpy as np

from ._config import jit
from ._vecmath import add_exactly, maximum

#: Codes of the activations that dense and conv1d apply (a compiled kernel takes an int). Codes
#: up to ``RELU`` are fused into the kernels' own passes; the others run after them.
ACT_CODE = {"none": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
NONE, RELU, SIGMOID, TANH = (ACT_CODE[name] for name in ("none", "relu", "sigmoid", "tanh"))

# float32 constants: float32 with float32 stays float32 (a Python 0.0 or 1 would turn a float32 loop
# into float64 with two conversions per element), and float32 with float64 gives float64.
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


@jit
def relu(v):
    # `v > 0` is False for NaN; the explicit `v != v` keeps NaN visible instead of mapping it to 0.
    return v if (v > 0 or v != v) else _ZERO


@jit
def relu_grad(d, v):
    """``d`` where ``v > 0`` or ``v`` is NaN, else 0: PyTorch's convention (0 at exactly 0; a NaN
    input, whose output is NaN, passes its gradient)."""
    return _ZERO if v <= 0 else d


@jit
def sigmoid_grad(d, y):
    return d * y * (_ONE - y)


@jit
def tanh_grad(d, y):
    return d * (_ONE - y * y)


@jit
def relu_row_(row):
    """In place: ``row = relu(row)``, one vectorised loop. The dense and conv1d kernels fuse
    only the bias and ReLU; sigmoid and tanh run as a pass of their own
    (``activations.activate_``), so a ReLU network never compiles them (~0.3-0.5 s of a cold
    first training step).

    Written as ``maximum(v, 0) + 0`` (``llvm.maximum``, NaN kept; the IEEE addition turns the
    ``-0.0`` that the fast-math ``maximum`` may return into ``+0.0``), the values of
    :func:`relu` and of NumPy's ``np.maximum(x, 0)``, bit for bit. Not :func:`relu`'s select:
    with it LLVM saw that a positive value is stored back unchanged and kept only the stores of
    zeros, as AVX2 masked stores (``vmaskmovps``), which AMD's Zen 3 runs slowly. Measured
    there (one thread, 57 344 values, as the conv forward's pass; three process pairs): float32
    40-44 -> 4-6 us, float64 38-47 -> 12-13 us."""
    zero = row.dtype.type(0)
    for i in range(row.size):
        row[i] = add_exactly(maximum(row[i], zero), zero)


@jit
def activation_grad_row(d, y, act, out):
    """``out = d * act'`` from the output row ``y`` (one vectorisable loop per activation)."""
    if act == RELU:
        for i in range(out.size):
            out[i] = relu_grad(d[i], y[i])
    elif act == SIGMOID:
        for i in range(out.size):
            out[i] = sigmoid_grad(d[i], y[i])
    elif act == TANH:
        for i in range(out.size):
            out[i] = tanh_grad(d[i], y[i])
    else:
        for i in range(out.size):
            out[i] = d[i]
