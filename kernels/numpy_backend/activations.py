"""Element-wise activations and row-wise softmax (NumPy)."""
import numpy as np


def relu_forward(x):
    """``max(x, 0)``; NaN propagates."""
    return np.maximum(x, 0)


def relu_backward(dout, x):
    """``dout`` where ``x > 0`` or ``x`` is NaN, else 0 (PyTorch's choices: 0 at exactly 0, and
    a NaN input passes its gradient)."""
    return np.where(x <= 0, 0, dout).astype(dout.dtype, copy=False)


def sigmoid_forward(x):
    """``1 / (1 + exp(-x))`` written so that no ``exp`` ever overflows."""
    e = np.exp(-np.abs(x))           # in (0, 1]: never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(dout, y):
    """``dout * y * (1 - y)`` from the forward output ``y``."""
    return dout * y * (1 - y)


def tanh_forward(x):
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
