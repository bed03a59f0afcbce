"""In-place optimizer updates (NumPy). Each mutates its array arguments and returns None.

Decaying state (momentum's velocity, RMSProp's h, Adam's m and v) is stored as 0 where its
magnitude falls below the dtype's smallest normal number, as in the Numba backend (see there:
subnormal numbers cost ~100 cycles per operation on Intel cores, and a dead unit's state decays
into them).
"""
import math

import numpy as np


def _flush_subnormal_(state):
    """Set the values of ``state`` whose magnitude is below the smallest normal number to 0
    (NaN and infinities are kept)."""
    np.copyto(state, 0, where=np.abs(state) < np.finfo(state.dtype).tiny)


def sgd_update_(param, grad, lr):
    """``param -= lr * grad``."""
    param -= lr * grad


def momentum_update_(param, grad, velocity, lr, momentum, nesterov):
    """Heavy-ball momentum in PyTorch's form: ``v = momentum*v + g``, then
    ``param -= lr * v`` or, with Nesterov, ``param -= lr * (g + momentum*v)``."""
    velocity *= momentum
    velocity += grad
    _flush_subnormal_(velocity)
    if nesterov:
        param -= lr * (grad + momentum * velocity)
    else:
        param -= lr * velocity


def adagrad_update_(param, grad, h, lr, eps):
    """DL-from-scratch AdaGrad: ``h += g*g``; ``param -= lr * g / (sqrt(h) + eps)``."""
    h += grad * grad
    param -= lr * grad / (np.sqrt(h) + eps)


def rmsprop_update_(param, grad, h, lr, rho, eps):
    """``h = rho*h + (1-rho)*g*g``; ``param -= lr * g / (sqrt(h) + eps)``."""
    h *= rho
    h += (1 - rho) * grad * grad
    _flush_subnormal_(h)
    param -= lr * grad / (np.sqrt(h) + eps)


def adam_update_(param, grad, m, v, lr, beta1, beta2, eps, step):
    """Adam with bias correction (``step`` counts from 1), PyTorch's formulation:
    ``param -= lr/(1-beta1**step) * m / (sqrt(v)/sqrt(1-beta2**step) + eps)``."""
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    _flush_subnormal_(m)
    _flush_subnormal_(v)
    step_size = lr / (1 - beta1 ** step)
    # math.sqrt keeps the scalar a Python float: np.sqrt would give a float64 NumPy scalar and
    # turn every float32 temporary below into float64.
    denom = np.sqrt(v) / math.sqrt(1 - beta2 ** step) + eps
    param -= step_size * m / denom
