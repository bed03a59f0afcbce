"""Losses (NumPy). Every loss is a mean; its backward takes the upstream scalar ``dloss``.

The means are summed in float64, as the Numba backend sums them: a float32 sum could overflow
to inf where the mean itself is finite (100 squared errors of 1.5e19: the mean is 2.25e38), and
the two backends disagreed there.
"""
import numpy as np

# log(p) is clamped at this value, as PyTorch's BCELoss does, so log(0) is never taken.
_LOG_FLOOR = -100.0
# Smallest p*(1-p) used as a divisor in the BCE gradient: PyTorch's 1e-12, exact in each dtype
# (PyTorch's is a float32 constant, 9.99999996e-13, in float64 too: where the clamp applies,
# the gradients differ by 4e-9 relative, an audit measured).
_BCE_EPS = 1e-12


def softmax_cross_entropy_forward(logits, target):
    """Mean cross-entropy of ``softmax(logits)`` against ``target``.

    ``target`` is int64 labels ``(N,)`` or a float distribution ``(N, C)`` (e.g. one-hot).
    The loss is computed as ``logsumexp(z) - z`` from max-subtracted logits, so it stays finite
    for logits up to 1e4 and for a true class whose probability underflows to 0.
    Returns ``(loss, probs)``.
    """
    N = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    if target.ndim == 1:
        # -log p of the true class only: the whole (N, C) log p made this 1.4x slower (an
        # audit's finding: (1024, 1000) float32 1.65-2.03 ms against 1.24-1.38 ms). The same
        # values: a - b is exactly -(b - a).
        picked = np.log(s[:, 0]) - shifted[np.arange(N), target]
        loss = picked.sum(dtype=np.float64) / N
    else:
        log_probs = shifted - np.log(s)
        # Classes without target mass add nothing where the logit is finite, even if log p
        # overflows to -inf (0 * -inf is NaN); a non-finite logit gives NaN, as in PyTorch.
        counted = (target != 0) | ~np.isfinite(logits)
        terms = np.multiply(target, log_probs, out=np.zeros_like(log_probs), where=counted)
        loss = -terms.sum(dtype=np.float64) / N
    e /= s
    return logits.dtype.type(loss), e


def softmax_cross_entropy_backward(dloss, probs, target):
    """``dloss * (probs - onehot(target)) / N``; for target rows ``(N, C)``, ``dloss * (probs *
    sum(t) - t) / N`` row by row (the exact gradient where a row does not sum to 1)."""
    N = probs.shape[0]
    if target.ndim == 1:
        d = probs.copy()
        d[np.arange(N), target] -= 1
    else:
        d = probs * target.sum(axis=1, keepdims=True)
        d -= target
    d *= dloss / max(N, 1)              # an empty batch: an empty gradient, as Numba's
    return d


def mse_forward(y, t):
    """``mean((y - t)**2)`` over all elements."""
    diff = (y - t).astype(np.float64, copy=False)
    return y.dtype.type(np.vdot(diff, diff) / diff.size)


def mse_backward(dloss, y, t):
    """``dloss * 2 * (y - t) / size``."""
    d = np.subtract(y, t, out=np.empty(y.shape, y.dtype))   # an array also for 0-d inputs
    d *= 2 * dloss / d.size
    return d


def bce_forward(p, t):
    """``mean(-(t*log(p) + (1-t)*log(1-p)))`` with each log clamped at -100."""
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p), _LOG_FLOOR)
        log_q = np.maximum(np.log1p(-p), _LOG_FLOOR)
    return p.dtype.type(-(t * log_p + (1 - t) * log_q).mean(dtype=np.float64))


def bce_backward(dloss, p, t):
    """``dloss * (p - t) / max(p*(1-p), 1e-12) / size``."""
    d = np.asarray((p - t) / np.maximum(p * (1 - p), _BCE_EPS))   # 0-d inputs: still an array
    d *= dloss / d.size
    return d
