"""``fit``'s softmax cross-entropy, compiled ahead in a helper process on a cold Numba cache.

Why: the first training step of a cold start compiles its kernels one after another, on one
core (``kernels/numba_backend/_ahead``). The loss is the one compile that ``fit`` can name
before the step starts: its kind, the batch's rows, the dtype and the targets are known, and
the forward pass that comes first takes seconds to compile (the MLP's dense slot and its
callees). Measured (Intel Xeon, fresh processes, empty caches, interleaved): the MLP recipe's
first step 5.0-6.3 s without a helper against 3.6-3.9 s with one in three pairs of four (the
fourth 5.0 against 5.1 s: the helper had not finished, so it was stopped; the index-label loss
and its backward are ~1.3 s of a step); the start-up probe of ``python -m fastnet bench`` (the
MLP, then the CNN), medians of six pairs 10.5 against 8.9 s.

How: :func:`arm`, called as ``fit`` begins, asks the Numba backend which loss kernel the
step will run (``losses.softmax_cross_entropy_kernel``) and arms a helper
(``_ahead.arm_call``) when neither this process nor the on-disk cache holds it for this
signature. The helper starts when the first forward is about to compile a slot (the dense or
convolution products of AVX-512 hosts, seconds on one core); a model whose forward compiles no
slot compiles its loss itself (a helper started at once made a 12 -> 8 -> 5 classifier's cold
``fit`` 0.3 s slower). The helper runs :func:`compile_in_helper`: the loss's forward and
backward on zeros of the batch's shape, through the same checks as the step, so it compiles
exactly what the step will load. After the first forward (or if ``fit`` stops before it),
``fit`` calls :func:`collect`: a helper that has finished leaves its work in the cache, where
the loss finds it; one still running is stopped, and the loss compiles here as it would have
without one (waiting made a small model's cold ``fit`` slower).

Only fastnet's own ``SoftmaxCrossEntropy`` (a classifier's loss) with the Numba backend, for a
network that ends in an ``FC`` layer (:func:`output_width` gives the class count), integer
labels that fit it (``fit`` refuses the others) and a serial loss kernel (fewer than
``PARALLEL_MIN_SIZE`` logits): one-hot rows and larger batches take the parallel kernels, which
compile for longer than a forward, so a helper never finished first.
"""
import numpy as np

from .backend import get_backend
from .layers import FC, Dropout, ReLU, Sigmoid, Softmax, Tanh
from .losses import SoftmaxCrossEntropy

#: Layers after the last ``FC`` that keep its output's width.
_SHAPE_KEEPING = (ReLU, Sigmoid, Tanh, Softmax, Dropout)


def arm(loss, layers, dtype, rows, y):
    """Arm a helper compiling ``loss``'s kernels for a first batch of ``rows`` samples of
    ``dtype`` with targets like ``y`` (labels ``(N,)`` or rows ``(N, C)``), where worth it: it
    starts when this process is about to compile a slot (``_ahead.arm_call``).

    Returns
    -------
    tuple or None
        The helper's key for :func:`collect`; None where none was armed.
    """
    if type(loss) is not SoftmaxCrossEntropy or get_backend() != "numba" or y.size == 0:
        return None
    from .kernels.numba_backend import _ahead
    classes = output_width(layers)
    if not _ahead.enabled() or classes is None:
        return None
    if not (y.shape[1] == classes if y.ndim == 2 else          # cast to the logits' dtype
            y.ndim == 1 and y.dtype.kind in "iu" and 0 <= y.min() and y.max() < classes):
        return None                                            # fit refuses them
    from .kernels.numba_backend import losses
    kernel = losses.softmax_cross_entropy_kernel((rows, classes), y.ndim)
    if kernel.targetoptions.get("parallel"):
        # A parallel kernel (one-hot rows, large batches) compiles for longer than a forward
        # (one-hot rows: 4.3 s alone against 2.2 s for labels): its helper was always stopped.
        # The serial ones take fewer than PARALLEL_MIN_SIZE logits, which also bounds the
        # helper's arrays.
        return None
    key = (np.dtype(dtype).name, int(rows), classes, y.ndim)
    try:
        cold = _compiled(kernel, *key) is False
    except Exception:           # noqa: BLE001 (a Numba whose internals differ: no helper)
        return None
    if not cold:
        return None
    _ahead.arm_call(__name__, "compile_in_helper", *key)
    return key


def output_width(layers):
    """The class count of a network that ends in one of fastnet's ``FC`` layers (then maybe
    parameter-free activations, a softmax or dropout); None for any other ending."""
    for layer in reversed(layers):
        if isinstance(layer, FC):
            W = getattr(layer, "W", None)
            return W.shape[1] if isinstance(W, np.ndarray) and W.ndim == 2 else None
        if not isinstance(layer, _SHAPE_KEEPING):       # compat's subclasses too
            return None
    return None


def _compiled(kernel, dtype, rows, classes, target_ndim):
    """Whether the loss ``kernel`` for this batch is compiled here or in the on-disk cache;
    None where that cannot be told."""
    import numba
    from .kernels.numba_backend import _ahead
    sig = tuple(numba.typeof(a) for a in _zeros(dtype, 1, 1, target_ndim))  # shapes aside
    if sig in kernel.overloads:
        return True
    return _ahead.on_disk(kernel.py_func, sig)


def _zeros(dtype, rows, classes, target_ndim):
    """Logits and targets of the batch's shapes, as the step passes them to the kernels (labels
    checked to int64; target rows of the logits' dtype)."""
    logits = np.zeros((rows, classes), dtype)
    return logits, np.zeros(rows, np.int64) if target_ndim == 1 else np.zeros_like(logits)


def collect(key):
    """The helper that :func:`arm` returned ``key`` for: its work loads if it has finished; if
    not, it is stopped (or disarmed) and the loss compiles here (``_ahead.done_or_stop_call``)."""
    if key is not None:
        from .kernels.numba_backend import _ahead
        _ahead.done_or_stop_call(__name__, "compile_in_helper", *key)


def compile_in_helper(dtype, rows, classes, target_ndim):
    """In the helper: the loss's forward and backward on zeros, compiling what the step will
    run."""
    from .backend import set_backend
    set_backend("numba")
    loss = SoftmaxCrossEntropy()
    loss.forward(*_zeros(dtype, rows, classes, target_ndim))
    loss.backward()
