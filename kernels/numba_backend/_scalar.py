"""Scalar helpers shared by the Numba kernels (inlined by LLVM into the loops that call them)."""
import math

from ._config import jit


@jit
def relu(v):
    # `v > 0` is False for NaN; the explicit `v != v` keeps NaN visible instead of mapping it to 0.
    return v if (v > 0 or v != v) else 0.0


@jit
def relu_grad(d, v):
    """Gradient at exactly 0 is 0 (PyTorch's convention)."""
    return d if v > 0 else 0.0


@jit
def sigmoid(v):
    # exp of a non-positive number only: never overflows for any finite input.
    if v >= 0:
        return 1 / (1 + math.exp(-v))
    e = math.exp(v)
    return e / (1 + e)


@jit
def sigmoid_grad(d, y):
    return d * y * (1 - y)


@jit
def tanh_grad(d, y):
    return d * (1 - y * y)
