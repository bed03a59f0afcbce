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
    """d act / d z expressed through the output y (relu: 0 where y <= 0, else 1; a NaN passes
    the gradient, as in PyTorch)."""
    if name == "relu":
        return 0.0 if y <= 0 else dout
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


# === conv1d and pooling (issue 3) =================================================================
# Written from the definitions, one output element at a time: an input position i is read by
# output l through tap k when i == l*stride + k*dilation - padding_left; positions outside
# [0, L) are the zero padding. The backward loops visit the same (l, k, i) triples.

def conv1d_output_length(L, K, stride, padding_left, padding_right, dilation):
    return (L + padding_left + padding_right - dilation * (K - 1) - 1) // stride + 1


def conv1d(x, W, b, stride=1, padding_left=0, padding_right=0, dilation=1):
    N, C_in, L = x.shape
    C_out, _, K = W.shape
    L_out = conv1d_output_length(L, K, stride, padding_left, padding_right, dilation)
    y = np.zeros((N, C_out, L_out))
    for n in range(N):
        for o in range(C_out):
            for l in range(L_out):
                s = float(b[o])
                for c in range(C_in):
                    for k in range(K):
                        i = l * stride + k * dilation - padding_left
                        if 0 <= i < L:
                            s += float(W[o, c, k]) * float(x[n, c, i])
                y[n, o, l] = s
    return y


def conv1d_backward(dout, x, W, stride=1, padding_left=0, padding_right=0, dilation=1):
    N, C_in, L = x.shape
    C_out, _, K = W.shape
    L_out = dout.shape[2]
    dx = np.zeros((N, C_in, L))
    dW = np.zeros((C_out, C_in, K))
    db = np.zeros(C_out)
    for n in range(N):
        for o in range(C_out):
            for l in range(L_out):
                g = float(dout[n, o, l])
                db[o] += g
                for c in range(C_in):
                    for k in range(K):
                        i = l * stride + k * dilation - padding_left
                        if 0 <= i < L:
                            dx[n, c, i] += g * float(W[o, c, k])
                            dW[o, c, k] += g * float(x[n, c, i])
    return dx, dW, db


def pool_output_length(L, kernel_size, stride, padding):
    return (L + 2 * padding - kernel_size) // stride + 1


def maxpool1d(x, kernel_size, stride, padding):
    """(y, argmax); padding never wins, ties go to the first index, the last NaN wins."""
    N, C, L = x.shape
    L_out = pool_output_length(L, kernel_size, stride, padding)
    y = np.zeros((N, C, L_out))
    argmax = np.zeros((N, C, L_out), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for l in range(L_out):
                best, at = None, None
                for k in range(kernel_size):
                    i = l * stride + k - padding
                    if not 0 <= i < L:
                        continue
                    v = float(x[n, c, i])
                    if best is None or v > best or math.isnan(v):
                        best, at = v, i
                y[n, c, l] = best
                argmax[n, c, l] = at
    return y, argmax


def maxpool1d_backward(dout, argmax, length):
    N, C, L_out = dout.shape
    dx = np.zeros((N, C, length))
    for n in range(N):
        for c in range(C):
            for l in range(L_out):
                dx[n, c, argmax[n, c, l]] += float(dout[n, c, l])
    return dx


def avgpool1d(x, kernel_size, stride, padding):
    """Window sums divided by kernel_size: the zero padding counts (count_include_pad=True)."""
    N, C, L = x.shape
    L_out = pool_output_length(L, kernel_size, stride, padding)
    y = np.zeros((N, C, L_out))
    for n in range(N):
        for c in range(C):
            for l in range(L_out):
                s = 0.0
                for k in range(kernel_size):
                    i = l * stride + k - padding
                    if 0 <= i < L:
                        s += float(x[n, c, i])
                y[n, c, l] = s / kernel_size
    return y


def avgpool1d_backward(dout, length, kernel_size, stride, padding):
    N, C, L_out = dout.shape
    dx = np.zeros((N, C, length))
    for n in range(N):
        for c in range(C):
            for l in range(L_out):
                for k in range(kernel_size):
                    i = l * stride + k - padding
                    if 0 <= i < length:
                        dx[n, c, i] += float(dout[n, c, l]) / kernel_size
    return dx
# === end of conv1d and pooling section ============================================================
