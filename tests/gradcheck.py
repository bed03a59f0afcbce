"""Central finite differences, float64: the numerical oracle for every backward."""
import numpy as np


def numerical_grad(f, x, h=1e-6):
    """d f(x) / d x for a scalar function ``f`` of an array ``x`` (perturbed in place)."""
    grad = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        up = f()
        x[idx] = old - h
        down = f()
        x[idx] = old
        grad[idx] = (up - down) / (2 * h)
    return grad


def check(f, analytic, x, rtol=1e-5, atol=1e-7):
    np.testing.assert_allclose(analytic, numerical_grad(f, x), rtol=rtol, atol=atol)
