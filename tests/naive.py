"""Naive reference implementations: the independent oracle for the kernels.

Written for obviousness, not speed: explicit Python loops, float64 arithmetic, formulas taken
from their textbook definitions. Nothing here imports fastnet.
"""
import math

import numpy as np


def dense(x, W, b, activation="none"):
    N, n_in = x.shape
    n_out = W.shape[1]
    y = np.zeros((N, n_out))
    for i in range(N):
        for j in range(n_out):
            s = float(b[j])
            for k in range(n_in):
                s += float(x[i, k]) * float(W[k, j])
            y[i, j] = activation_fn(activation, s)
    return y


def activation_fn(name, v):
    if name == "relu":
        return v if v > 0 else 0.0
    if name == "sigmoid":
        return sigmoid(v)
    if name == "tanh":
        return math.tanh(v)
    return v


def sigmoid(v):
    # 1/(1+e^-v) evaluated with exp of a non-positive argument only.
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    return math.exp(v) / (1.0 + math.exp(v))


def activation_grad(name, dout, y):
    """d act / d z expressed through the output y (relu: 1 where y > 0, else 0)."""
    if name == "relu":
        return dout if y > 0 else 0.0
    if name == "sigmoid":
        return dout * y * (1 - y)
    if name == "tanh":
        return dout * (1 - y * y)
    return dout


def dense_backward(dout, x, W, y, activation="none"):
    N, n_in = x.shape
    n_out = W.shape[1]
    dz = np.zeros((N, n_out))
    for i in range(N):
        for j in range(n_out):
            dz[i, j] = activation_grad(activation, float(dout[i, j]), float(y[i, j]))
    dx = np.zeros((N, n_in))
    dW = np.zeros((n_in, n_out))
    db = np.zeros(n_out)
    for i in range(N):
        for j in range(n_out):
            db[j] += dz[i, j]
            for k in range(n_in):
                dx[i, k] += dz[i, j] * float(W[k, j])
                dW[k, j] += float(x[i, k]) * dz[i, j]
    return dx, dW, db


def elementwise(f, *arrays):
    out = np.zeros(arrays[0].shape)
    for idx in np.ndindex(arrays[0].shape):
        out[idx] = f(*(float(a[idx]) for a in arrays))
    return out


def softmax_rows(x):
    N, C = x.shape
    y = np.zeros((N, C))
    for i in range(N):
        m = max(float(v) for v in x[i])
        e = [math.exp(float(v) - m) for v in x[i]]
        s = sum(e)
        for j in range(C):
            y[i, j] = e[j] / s
    return y


def softmax_backward_rows(dout, y):
    N, C = y.shape
    dx = np.zeros((N, C))
    for i in range(N):
        for j in range(C):
            # Jacobian row: dy_k/dx_j = y_k (delta_kj - y_j)
            dx[i, j] = sum(float(dout[i, k]) * float(y[i, k]) * ((k == j) - float(y[i, j]))
                           for k in range(C))
    return dx


def one_hot(labels, C):
    t = np.zeros((len(labels), C))
    for i, c in enumerate(labels):
        t[i, c] = 1.0
    return t


def softmax_cross_entropy(logits, target):
    """Mean over rows of -sum_j t_ij log softmax(z_i)_j, with log-softmax = z - logsumexp(z)."""
    N, C = logits.shape
    if target.ndim == 1:
        target = one_hot(target, C)
    total = 0.0
    for i in range(N):
        m = max(float(v) for v in logits[i])
        lse = m + math.log(sum(math.exp(float(v) - m) for v in logits[i]))
        for j in range(C):
            total -= float(target[i, j]) * (float(logits[i, j]) - lse)
    return total / N


def softmax_cross_entropy_grad(logits, target):
    N, C = logits.shape
    if target.ndim == 1:
        target = one_hot(target, C)
    return (softmax_rows(logits) - target) / N


def mse(y, t):
    return sum((float(a) - float(b)) ** 2 for a, b in zip(y.ravel(), t.ravel())) / y.size


def bce(p, t):
    total = 0.0
    for a, b in zip(p.ravel(), t.ravel()):
        a, b = float(a), float(b)
        log_p = max(math.log(a), -100.0) if a > 0 else -100.0
        log_q = max(math.log(1 - a), -100.0) if a < 1 else -100.0
        total -= b * log_p + (1 - b) * log_q
    return total / p.size


# --- optimizers: one step, written per element from the published update rules ---------------

def sgd(p, g, lr):
    return p - lr * g


def momentum(p, g, v, lr, mu, nesterov):
    v = mu * v + g
    step = g + mu * v if nesterov else v
    return p - lr * step, v


def adagrad(p, g, h, lr, eps):
    h = h + g * g
    return p - lr * g / (np.sqrt(h) + eps), h


def rmsprop(p, g, h, lr, rho, eps):
    h = rho * h + (1 - rho) * g * g
    return p - lr * g / (np.sqrt(h) + eps), h


def adam(p, g, m, v, lr, beta1, beta2, eps, t):
    """Kingma & Ba, Algorithm 1 (with the eps placement PyTorch uses: after the bias-corrected
    square root)."""
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
