"""Loss objects: ``forward(output, target) -> float``, then ``backward(dloss=1) -> doutput``.

Each is a thin stateful wrapper over ``fastnet.functional``: ``forward`` keeps what ``backward``
needs. All are means: :class:`SoftmaxCrossEntropy` over the batch, :class:`MeanSquaredError`
and :class:`BinaryCrossEntropy` over all elements.

Targets are cast once to the output's dtype when they are floating or, for
:class:`SoftmaxCrossEntropy`, one-hot rows of integers or bools (a float64 or int one-hot with a
float32 model is fine); integer labels stay integers.
"""
import numpy as np

from . import _checks as check
from . import functional as F
from ._serialize import register
from .backend import get_default_dtype

__all__ = ["Loss", "SoftmaxCrossEntropy", "MeanSquaredError", "BinaryCrossEntropy", "get_loss"]


def _class_target(op, t, dtype):
    """A classification target: 1-D integer labels stay labels; one-hot or probability rows of
    any real type (float, or integer / bool ``np.eye(C)[y]``) become the output's dtype. A
    masked target is refused (``np.asarray`` would drop its mask)."""
    check.not_masked(op, "target", t)
    t = np.asarray(t)
    if t.ndim == 1 and t.dtype.kind in "iu":
        return t
    return check.cast_real(op, "target", t, dtype)


def _dtype_of(output):
    """The dtype the functional API computes ``output`` in, to cast the target to: a float
    array's own, the default dtype for numbers and lists (NumPy's own dtype for ``[1, 2]``,
    int64, truncated a target of 1.5 to 1, and the error then named the target)."""
    if isinstance(output, (np.ndarray, np.generic)) and output.dtype.kind == "f":
        return output.dtype
    return get_default_dtype()


class Loss:
    """Base class of the losses."""

    def forward(self, output, target):
        raise NotImplementedError

    def backward(self, dloss=1.0):
        raise NotImplementedError

    def __call__(self, output, target):
        return self.forward(output, target)

    def get_config(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


@register()
class SoftmaxCrossEntropy(Loss):
    """Mean cross-entropy of ``softmax(logits)``, fused (never takes ``log(0)``).

    ``forward(logits, t)`` takes logits ``(N, C)`` and integer labels ``(N,)`` in ``[0, C)`` or
    one-hot / probability rows ``(N, C)``; ``backward(dloss=1)`` returns
    ``dloss * (softmax(logits) - onehot(t)) / N``.

    Attributes
    ----------
    probs : ndarray ``(N, C)``
        ``softmax(logits)`` of the last forward.

    Examples
    --------
    >>> loss = SoftmaxCrossEntropy()
    >>> round(loss.forward(np.zeros((2, 10)), np.array([3, 7])), 4)   # log(10)
    2.3026
    """

    probs = _target = _checked = None

    def forward(self, logits, target):
        target = _class_target("SoftmaxCrossEntropy", target, _dtype_of(logits))
        loss, self.probs, checked = F._softmax_cross_entropy_checked(logits, target)
        self._target, self._checked = target, (self.probs, checked)
        return float(loss)

    def backward(self, dloss=1.0):
        check.need_forward(self, self.probs)
        if self._checked is not None and self.probs is self._checked[0]:
            # probs as the forward made it: the forward's checks still hold
            return F._softmax_cross_entropy_backward_checked(*self._checked, dloss)
        check.need_forward(self, self._target)        # probs set by hand, before any forward
        return F.softmax_cross_entropy_backward(self.probs, self._target, dloss)


@register()
class MeanSquaredError(Loss):
    """``mean((y - t)**2)`` over all elements; ``backward`` gives ``2 * (y - t) / y.size``."""

    _y = _t = None

    def forward(self, y, t):
        self._y = y
        self._t = check.cast_real("MeanSquaredError", "target", t, _dtype_of(y))
        return float(F.mse(self._y, self._t))

    def backward(self, dloss=1.0):
        check.need_forward(self, self._y)
        return F.mse_backward(self._y, self._t, dloss)


@register()
class BinaryCrossEntropy(Loss):
    """``mean(-(t*log(p) + (1-t)*log(1-p)))`` over all elements, for probabilities ``p``
    (e.g. a :class:`~fastnet.layers.Sigmoid` output); logs are clamped at -100 (PyTorch)."""

    _p = _t = None

    def forward(self, p, t):
        self._p = p
        self._t = check.cast_real("BinaryCrossEntropy", "target", t, _dtype_of(p))
        return float(F.binary_cross_entropy(self._p, self._t))

    def backward(self, dloss=1.0):
        check.need_forward(self, self._p)
        return F.binary_cross_entropy_backward(self._p, self._t, dloss)


_BY_NAME = {
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "cross_entropy": SoftmaxCrossEntropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "binary_cross_entropy": BinaryCrossEntropy,
    "bce": BinaryCrossEntropy,
}


def get_loss(loss):
    """A loss object from a loss object, a name (``"softmax_cross_entropy"``, ``"mse"``,
    ``"binary_cross_entropy"`` and short forms) or None (None stays None)."""
    if loss is None or isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss not in _BY_NAME:
            raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(_BY_NAME)}")
        return _BY_NAME[loss]()
    if isinstance(loss, type):
        raise TypeError(f"loss is the class {loss.__name__}; pass an instance, "
                        f"{loss.__name__}()")
    if callable(getattr(loss, "forward", None)) and callable(getattr(loss, "backward", None)):
        return loss
    raise TypeError(f"loss must be a name, a fastnet loss or an object with forward/backward; "
                    f"got {type(loss).__name__}")
