"""Every backward against central finite differences of its forward (float64, both backends).

Each forward is reduced to a scalar with a fixed random projection ``sum(out * R)``, so the
upstream gradient is ``R`` and every output element is exercised.
"""
import numpy as np
import pytest

import fastnet.functional as F
from gradcheck import check

rng = np.random.default_rng(2024)


def projection(shape):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
def test_dense_gradients(backend, activation):
    x, W, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    if activation == "relu":          # keep pre-activations away from the kink at 0
        x[np.abs(x @ W + b).min(axis=1) < 1e-3] += 0.5
    R = projection((4, 3))
    f = lambda: float((F.dense(x, W, b, activation) * R).sum())
    y = F.dense(x, W, b, activation)
    dx, dW, db = F.dense_backward(R, x, W, y, activation)
    check(f, dx, x)
    check(f, dW, W)
    check(f, db, b)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_activation_gradients(backend, name):
    forward, backward = getattr(F, name), getattr(F, name + "_backward")
    x = rng.standard_normal((3, 4))
    x[np.abs(x) < 1e-3] = 0.5
    R = projection(x.shape)
    f = lambda: float((forward(x) * R).sum())
    dx = backward(R, x if name == "relu" else forward(x))
    check(f, dx, x)


def test_softmax_gradient(backend):
    x, R = rng.standard_normal((3, 5)), projection((3, 5))
    f = lambda: float((F.softmax(x) * R).sum())
    check(f, F.softmax_backward(R, F.softmax(x)), x)


@pytest.mark.parametrize("labels", ["index", "soft"])
def test_softmax_cross_entropy_gradient(backend, labels):
    x = rng.standard_normal((4, 6)) * 2
    target = rng.integers(0, 6, 4) if labels == "index" else rng.dirichlet(np.ones(6), 4)
    f = lambda: float(F.softmax_cross_entropy(x, target))
    _, probs = F.softmax_cross_entropy(x, target, return_probs=True)
    check(f, F.softmax_cross_entropy_backward(probs, target), x)


def test_mse_gradient(backend):
    y, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    check(lambda: float(F.mse(y, t)), F.mse_backward(y, t), y)


def test_bce_gradient(backend):
    p, t = rng.uniform(0.05, 0.95, (3, 4)), rng.random((3, 4))
    check(lambda: float(F.binary_cross_entropy(p, t)), F.binary_cross_entropy_backward(p, t), p)
