"""Element-wise activations and row-wise softmax (NumPy)."""
import numpy as np


def relu_forward(x):
    """``max(x, 0)``; NaN propagates."""
    return np.maximum(x, 0)


_SAME_SIZE_INT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def relu_backward(dout, x):
    """``dout`` where ``x > 0`` or ``x`` is NaN, else 0 (PyTorch's choices: 0 at exactly 0, and
    a NaN input passes its gradient)."""
    # Bitwise: dout's bits AND all-ones (keep) or all-zeros (+0.0). np.where(x <= 0, 0, dout)
    # gives the same values but branches on every element: 3.5 ms per million random-signed
    # values against 0.3 ms; dout * keep would turn an inf or NaN gradient at x <= 0 into NaN.
    mask = (~(x <= 0)).astype(_SAME_SIZE_INT[dout.dtype])
    np.negative(mask, out=mask)                 # True -> -1: all bits set
    np.bitwise_and(dout.view(mask.dtype), mask, out=mask)
    return mask.view(dout.dtype)


def sigmoid_forward(x):
    """``1 / (1 + exp(-x))`` written so that no ``exp`` ever overflows: ``e = exp(-|x|)`` in
    (0, 1], then ``1 / (1 + e)`` for ``x >= 0`` and ``e / (1 + e)`` below."""
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    # The numerator picked without branching (np.where took 4-10 ms per million random-signed
    # values, this whole function 0.7): max(e, 1) = 1 for x >= 0, max(e, 0) = e below, NaN stays.
    y = np.maximum(e, x >= 0)
    e += 1
    np.divide(y, e, out=y)
    return y


def sigmoid_backward(dout, y):
    """``dout * y * (1 - y)`` from the forward output ``y``."""
    return dout * y * (1 - y)


def tanh_forward(x):
    """``tanh(x)``, NumPy's."""
    return np.tanh(x)


def tanh_backward(dout, y):
    """``dout * (1 - y**2)`` from the forward output ``y``."""
    return dout * (1 - y * y)


def activate_(y, activation):
    """In place: ``y = act(y)``, the activation fused into dense and conv1d (``"none"``: as is)."""
    if activation == "relu":
        np.maximum(y, 0, out=y)
    elif activation == "sigmoid":
        y[...] = sigmoid_forward(y)
    elif activation == "tanh":
        np.tanh(y, out=y)


def activation_grad(dout, y, activation):
    """``dout`` times the fused activation's derivative, from its output ``y`` (for ReLU,
    ``y > 0`` exactly where the input was > 0)."""
    if activation == "relu":
        return relu_backward(dout, y)
    if activation == "sigmoid":
        return sigmoid_backward(dout, y)
    if activation == "tanh":
        return tanh_backward(dout, y)
    return dout


def softmax_forward(x):
    """Row-wise softmax of ``x (N, C)``, max-subtracted so ``exp`` never overflows."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def softmax_backward(dout, y):
    """Vector-Jacobian product of softmax: ``y * (dout - sum(dout * y, axis=1))``."""
    return y * (dout - (dout * y).sum(axis=1, keepdims=True))
