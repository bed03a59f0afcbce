"""Fully connected layer ``y = act(x @ W + b)`` (NumPy)."""
from .activations import activate_, activation_grad
from .optimizers import adagrad_update_


def dense_forward(x, W, b, activation):
    """``act(x @ W + b)`` for ``x (N, n_in)``, ``W (n_in, n_out)``, ``b (n_out,)``."""
    y = x @ W
    dense_bias_act_(y, b, activation)
    return y


def dense_bias_act_(xw, b, activation):
    """In place, ``xw = act(xw + b)``: :func:`dense_forward` after its product."""
    xw += b
    activate_(xw, activation)


def dense_backward(dout, x, W, y, activation, need_dx):
    """Gradients ``(dx, dW, db)`` of ``y = act(x @ W + b)`` given ``dout = dL/dy``
    (``dx`` is None when ``need_dx`` is False: the first layer's input needs no gradient)."""
    dz = activation_grad(dout, y, activation)
    return (dz @ W.T if need_dx else None), x.T @ dz, dz.sum(axis=0)


def dense_backward_adagrad_(W, h, dout, x, y, activation, need_dx, lr, eps):
    """``dense_backward``, with ``dW`` spent at once on an AdaGrad step of ``W`` (state ``h``)
    in place; returns ``(dx, db)``, ``dx`` from ``W`` as it was."""
    dx, dW, db = dense_backward(dout, x, W, y, activation, need_dx)
    adagrad_update_(W, dW, h, lr, eps)
    return dx, db


def dense_backward_adagrad_ahead_(W, h, dout, x, y, activation, need_dx, lr, eps, x_next):
    """:func:`dense_backward_adagrad_`, then ``x_next @ W`` of the updated ``W``, the product
    of ``dense_forward(x_next, W, b, activation)``: returns ``(dx, db, xw)``."""
    dx, db = dense_backward_adagrad_(W, h, dout, x, y, activation, need_dx, lr, eps)
    return dx, db, x_next @ W
