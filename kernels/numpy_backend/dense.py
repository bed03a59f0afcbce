"""Fully connected layer ``y = act(x @ W + b)`` (NumPy)."""
import numpy as np

from .activations import relu_backward, sigmoid_backward, tanh_backward


def dense_forward(x, W, b, activation):
    """``act(x @ W + b)`` for ``x (N, n_in)``, ``W (n_in, n_out)``, ``b (n_out,)``."""
    y = x @ W
    y += b
    if activation == "relu":
        np.maximum(y, 0, out=y)
    elif activation == "sigmoid":
        y[...] = _sigmoid(y)
    elif activation == "tanh":
        np.tanh(y, out=y)
    return y


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def dense_backward(dout, x, W, y, activation, need_dx):
    """Gradients ``(dx, dW, db)`` of ``y = act(x @ W + b)`` given ``dout = dL/dy``
    (``dx`` is None when ``need_dx`` is False: the first layer's input needs no gradient)."""
    if activation == "relu":
        dz = relu_backward(dout, y)       # y > 0 exactly where x @ W + b > 0
    elif activation == "sigmoid":
        dz = sigmoid_backward(dout, y)
    elif activation == "tanh":
        dz = tanh_backward(dout, y)
    else:
        dz = dout
    return (dz @ W.T if need_dx else None), x.T @ dz, dz.sum(axis=0)
