"""In-place optimizer updates (Numba): one fused pass over the parameter each.

Each mutates its array arguments and returns None. Arrays are updated through flat views, so the
caller's arrays (held by layers and dicts) are never rebound.

Hyper-parameters arrive as Python floats (float64) and are rounded once to the parameter's dtype
inside the kernel (``p.dtype.type(x)``), so float32 updates run in float32 arithmetic. (Making
NumPy scalars in the wrapper instead cost ~0.25 us each: Adam's seven were 1.7 us of a 3.4 us
call.) ``1 - beta`` and ``1 - rho`` are computed in float64 and passed as scalars of their own:
beta = 0.99999999 rounds to 1.0 in float32, and 1 - 1.0 would lose the update entirely (NumPy,
given Python floats, also computes 1 - beta before rounding).
"""
import math

import numpy as np
from numba import config, prange

from ._config import PARALLEL_MIN_SIZE, jit_ordered, jit_parallel_ordered, jit_parallel_unfused
from ._microkernels import VECTOR_BYTES
from ._root_step import ESTIMATE, adagrad_step, adam_step, rmsprop_step

# Decaying state (momentum's velocity, RMSProp's h, Adam's m and v) is stored as 0 where its
# magnitude falls below the dtype's smallest normal number (``tiny``, passed in): a parameter
# whose gradient stays 0 (a dead ReLU unit's weights) has its state shrink by the decay rate every
# step into the subnormal range, where every operation on it costs a microcode assist on Intel
# cores (~100 cycles). In MNIST CNN training (Adam, Intel Xeon), 21 k of the hidden layer's 115 k
# m values were subnormal from the second epoch on, and epochs took 1.74-1.83 s instead of the
# first's 1.55 s. The select compiles branch-free; NaN and infinities are kept.
#
# The updates compile with ``jit_parallel_ordered``, keeping their written order (no fast-math
# reassociation): it is NumPy's and PyTorch's, ``(1 - beta2) * g * g`` scaling before it
# squares, so all three overflow at the same gradients. Reassociated, ``g * g`` came first and
# overflowed for float32 gradients from ~1.8e19, where NumPy's step stays finite: v became inf
# and the parameter silently did not move. Nothing here is a reduction, so the loops vectorise
# without reassociation. SGD and momentum also keep their products apart from the additions
# (``jit_parallel_unfused``): the same results as NumPy's, bit for bit, overflow included.


@jit_parallel_unfused
def _sgd(p, g, lr):
    lr = p.dtype.type(lr)          # a Python float, rounded once to the parameter's dtype
    n = p.size
    if n < PARALLEL_MIN_SIZE:
        for i in range(n):
            p[i] -= lr * g[i]
    else:
        for i in prange(n):
            p[i] -= lr * g[i]


@jit_parallel_unfused
def _momentum(p, g, v, lr, mu, nesterov, tiny):
    to_p = p.dtype.type
    lr, mu, tiny, zero = to_p(lr), to_p(mu), to_p(tiny), to_p(0)
    n = p.size
    if n < PARALLEL_MIN_SIZE:
        for i in range(n):
            vi = mu * v[i] + g[i]
            vi = zero if abs(vi) < tiny else vi
            v[i] = vi
            p[i] -= lr * (g[i] + mu * vi) if nesterov else lr * vi
    else:
        for i in prange(n):
            vi = mu * v[i] + g[i]
            vi = zero if abs(vi) < tiny else vi
            v[i] = vi
            p[i] -= lr * (g[i] + mu * vi) if nesterov else lr * vi


@jit_parallel_ordered
def _adagrad(p, g, h, lr, eps):
    to_p = p.dtype.type
    lr, eps = to_p(lr), to_p(eps)
    n = p.size
    if n < PARALLEL_MIN_SIZE:
        for i in range(n):
            hi = h[i] + g[i] * g[i]
            h[i] = hi
            p[i] -= lr * g[i] / (math.sqrt(hi) + eps)
    else:
        for i in prange(n):
            hi = h[i] + g[i] * g[i]
            h[i] = hi
            p[i] -= lr * g[i] / (math.sqrt(hi) + eps)


@jit_parallel_ordered
def _rmsprop(p, g, h, lr, rho, one_minus_rho, eps, tiny):
    to_p = p.dtype.type
    lr, rho, one_minus_rho, eps = to_p(lr), to_p(rho), to_p(one_minus_rho), to_p(eps)
    tiny, zero = to_p(tiny), to_p(0)
    n = p.size
    if n < PARALLEL_MIN_SIZE:
        for i in range(n):
            hi = rho * h[i] + one_minus_rho * g[i] * g[i]
            hi = zero if abs(hi) < tiny else hi
            h[i] = hi
            p[i] -= lr * g[i] / (math.sqrt(hi) + eps)
    else:
        for i in prange(n):
            hi = rho * h[i] + one_minus_rho * g[i] * g[i]
            hi = zero if abs(hi) < tiny else hi
            h[i] = hi
            p[i] -= lr * g[i] / (math.sqrt(hi) + eps)


@jit_parallel_ordered
def _adam(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, inv_sqrt_bc2,
          eps, tiny):
    to_p = p.dtype.type
    tiny, zero = to_p(tiny), to_p(0)
    beta1, one_minus_beta1 = to_p(beta1), to_p(one_minus_beta1)
    beta2, one_minus_beta2 = to_p(beta2), to_p(one_minus_beta2)
    step_size, inv_sqrt_bc2, eps = to_p(step_size), to_p(inv_sqrt_bc2), to_p(eps)
    n = p.size
    if n < PARALLEL_MIN_SIZE:
        for i in range(n):
            mi = beta1 * m[i] + one_minus_beta1 * g[i]
            vi = beta2 * v[i] + one_minus_beta2 * g[i] * g[i]
            mi = zero if abs(mi) < tiny else mi
            vi = zero if abs(vi) < tiny else vi
            m[i] = mi
            v[i] = vi
            p[i] -= step_size * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)
    else:
        for i in prange(n):
            mi = beta1 * m[i] + one_minus_beta1 * g[i]
            vi = beta2 * v[i] + one_minus_beta2 * g[i] * g[i]
            mi = zero if abs(mi) < tiny else mi
            vi = zero if abs(vi) < tiny else vi
            m[i] = mi
            v[i] = vi
            p[i] -= step_size * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)


# --- float64: the square root on the FMA units (``_root_step``) -------------------------------
#
# One vector at a time, each updating its state and taking its step in one intrinsic
# (``adagrad_step``, ``rmsprop_step``, ``adam_step``). Same arithmetic as above, bit for bit
# (tested); AdaGrad over 313 600 values on two threads: 279 -> 224 us with the root on the FMA
# units, then 224 -> ~150 us with the state updated in the same vector.

#: Values per chunk (4 KB per array), the unit of the ``prange`` split: a part is many chunks.
_CHUNK = 128
#: Whether float64 updates take these kernels: where Numba compiles for AVX-512, where they were
#: measured (elsewhere the root would stay on the divider anyway), and never with
#: ``NUMBA_DISABLE_JIT=1`` (plain Python cannot run an intrinsic).
BY_ROOT = ESTIMATE and not config.DISABLE_JIT


@jit_ordered(inline="always")
def _chunk(c, n):
    """``(lo, hi)``: the values of chunk ``c`` of ``n``."""
    return c * _CHUNK, min(n, (c + 1) * _CHUNK)


@jit_ordered(inline="always")
def adagrad_span(p, g, h, lr, eps):
    """AdaGrad over whole 1-D arrays (slices of a few kB): ``h += g*g``, then ``p -= lr*g /
    (sqrt(h) + eps)``, a vector at a time (``adagrad_step``); ``lr``, ``eps`` of ``p``'s dtype.
    Each chunk of ``_adagrad64``, and the update of the dense slot that fuses it with the weight
    gradient (``dense_blocked``); in float32 the arithmetic of ``_adagrad``'s loop, bit for bit
    (tested)."""
    for i in range(0, h.size, VECTOR_BYTES // p.itemsize):
        adagrad_step(p, g, h, i, h.size - i, lr, eps)


@jit_ordered(inline="always")
def _adagrad_chunk(p, g, h, lr, eps, c):
    lo, hi = _chunk(c, p.size)
    adagrad_span(p[lo:hi], g[lo:hi], h[lo:hi], lr, eps)


@jit_ordered(inline="always")
def _rmsprop_chunk(p, g, h, lr, rho, one_minus_rho, eps, tiny, c):
    lo, hi = _chunk(c, p.size)
    for i in range(lo, hi, VECTOR_BYTES // p.itemsize):
        rmsprop_step(p, g, h, i, hi - i, lr, rho, one_minus_rho, eps, tiny)


@jit_ordered(inline="always")
def _adam_chunk(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
                inv_sqrt_bc2, eps, tiny, c):
    lo, hi = _chunk(c, p.size)
    for i in range(lo, hi, VECTOR_BYTES // p.itemsize):
        adam_step(p, g, m, v, i, hi - i, beta1, one_minus_beta1, beta2, one_minus_beta2,
                  step_size, inv_sqrt_bc2, eps, tiny)


@jit_parallel_ordered
def _adagrad64(p, g, h, lr, eps):
    lr, eps = np.float64(lr), np.float64(eps)        # any real number, as in the plain loops
    n = p.size
    chunks = -(-n // _CHUNK)
    if n < PARALLEL_MIN_SIZE:
        for c in range(chunks):
            _adagrad_chunk(p, g, h, lr, eps, c)
    else:
        for c in prange(chunks):
            _adagrad_chunk(p, g, h, lr, eps, c)


@jit_parallel_ordered
def _rmsprop64(p, g, h, lr, rho, one_minus_rho, eps, tiny):
    lr, rho, one_minus_rho = np.float64(lr), np.float64(rho), np.float64(one_minus_rho)
    eps, tiny = np.float64(eps), np.float64(tiny)
    n = p.size
    chunks = -(-n // _CHUNK)
    if n < PARALLEL_MIN_SIZE:
        for c in range(chunks):
            _rmsprop_chunk(p, g, h, lr, rho, one_minus_rho, eps, tiny, c)
    else:
        for c in prange(chunks):
            _rmsprop_chunk(p, g, h, lr, rho, one_minus_rho, eps, tiny, c)


@jit_parallel_ordered
def _adam64(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
            inv_sqrt_bc2, eps, tiny):
    beta1, one_minus_beta1 = np.float64(beta1), np.float64(one_minus_beta1)
    beta2, one_minus_beta2 = np.float64(beta2), np.float64(one_minus_beta2)
    step_size, inv_sqrt_bc2 = np.float64(step_size), np.float64(inv_sqrt_bc2)
    eps, tiny = np.float64(eps), np.float64(tiny)
    n = p.size
    chunks = -(-n // _CHUNK)
    if n < PARALLEL_MIN_SIZE:
        for c in range(chunks):
            _adam_chunk(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
                        inv_sqrt_bc2, eps, tiny, c)
    else:
        for c in prange(chunks):
            _adam_chunk(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
                        inv_sqrt_bc2, eps, tiny, c)


#: The smallest normal number of each dtype, as a Python float.
_TINY = {np.dtype(np.float32): float(np.finfo(np.float32).tiny),
         np.dtype(np.float64): float(np.finfo(np.float64).tiny)}


def _tiny(param):
    return _TINY[param.dtype]


def _flat(*arrays):
    # Skipping the reshape of 1-D arrays matters at small sizes (~0.1 us each against a 1 us call).
    return [a if a.ndim == 1 else a.reshape(-1) for a in arrays]


def sgd_update_(param, grad, lr):
    """``param -= lr * grad``."""
    p, g = _flat(param, grad)
    _sgd(p, g, lr)


def momentum_update_(param, grad, velocity, lr, momentum, nesterov):
    """Heavy-ball momentum in PyTorch's form: ``v = momentum*v + g``, then
    ``param -= lr * v`` or, with Nesterov, ``param -= lr * (g + momentum*v)``."""
    _momentum(*_flat(param, grad, velocity), lr, momentum, bool(nesterov), _tiny(param))


def adagrad_update_(param, grad, h, lr, eps):
    """DL-from-scratch AdaGrad: ``h += g*g``; ``param -= lr * g / (sqrt(h) + eps)``."""
    kernel = _adagrad64 if BY_ROOT and param.itemsize == 8 else _adagrad
    kernel(*_flat(param, grad, h), lr, eps)


def rmsprop_update_(param, grad, h, lr, rho, eps):
    """``h = rho*h + (1-rho)*g*g``; ``param -= lr * g / (sqrt(h) + eps)``."""
    kernel = _rmsprop64 if BY_ROOT and param.itemsize == 8 else _rmsprop
    kernel(*_flat(param, grad, h), lr, rho, 1 - rho, eps, _tiny(param))


def adam_update_(param, grad, m, v, lr, beta1, beta2, eps, step):
    """Adam with bias correction (``step`` counts from 1), PyTorch's formulation:
    ``param -= lr/(1-beta1**step) * m / (sqrt(v)/sqrt(1-beta2**step) + eps)``."""
    step_size = lr / (1 - beta1 ** step)
    inv_sqrt_bc2 = 1 / math.sqrt(1 - beta2 ** step)
    kernel = _adam64 if BY_ROOT and param.itemsize == 8 else _adam
    kernel(*_flat(param, grad, m, v), beta1, 1 - beta1, beta2, 1 - beta2, step_size, inv_sqrt_bc2,
           eps, _tiny(param))
