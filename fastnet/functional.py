"""The functional API: validated, backend-dispatching functions over the kernels.

This is the drop-in backend for scratch code: replace ``np.dot(X, W) + b`` by
``fastnet.functional.dense(X, W, b)`` and nested convolution loops by
``fastnet.functional.conv1d(x, w, b, stride=..., padding=...)``.

Every argument is checked before a kernel runs (see ``fastnet._checks``): arrays must be float32
or float64 and share one dtype (nothing is cast silently), shapes must agree, labels must be in
range, hyper-parameters must be finite. Non-contiguous inputs are accepted (copied once to
C order); arrays that an update writes in place (a parameter and its optimizer state) must be
C-contiguous and writable, as a copy would lose the update. The backend is looked up at each
call, so ``fastnet.set_backend`` takes effect at once.

Conventions
-----------
* ReLU's gradient at exactly 0 is 0 (PyTorch's choice).
* Losses are means: ``softmax_cross_entropy`` over the batch, ``mse`` and ``binary_cross_entropy``
  over all elements. Backward functions take the upstream scalar ``dloss`` (default 1).
* Functions ending in ``_`` (the optimizer updates) update the parameter and their state
  arrays in place, never the gradient, and return ``None``.
"""
import numpy as np

from . import _checks as check
from .backend import kernels
from .functional_conv import (conv1d, conv1d_backward, conv1d_output_length, max_pool1d,
                              max_pool1d_backward, avg_pool1d, avg_pool1d_backward)

__all__ = [
    "dense", "dense_backward",
    "relu", "relu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "softmax", "softmax_backward",
    "softmax_cross_entropy", "softmax_cross_entropy_backward",
    "mse", "mse_backward", "binary_cross_entropy", "binary_cross_entropy_backward",
    "sgd_update_", "momentum_update_", "adagrad_update_", "rmsprop_update_", "adam_update_",
    "conv1d", "conv1d_backward", "conv1d_output_length",
    "max_pool1d", "max_pool1d_backward", "avg_pool1d", "avg_pool1d_backward",
]


_NATIVE_FLOATS = check.NATIVE_FLOATS
_INT64 = np.dtype(np.int64)


# --- dense ---------------------------------------------------------------------------------------

def _plain_dense(x, W, b_or_dout, y, outputs):
    """True in the common case of :func:`dense` (``outputs`` 0: ``b_or_dout`` is ``b``, ``y``
    is ``x``) or :func:`dense_backward` (``outputs`` 1: ``b_or_dout`` and ``y`` are ``dout`` and
    ``y``), where the full checks would pass every array on unchanged and find the shapes
    consistent: plain C-contiguous, writeable ndarrays of one native float dtype, ``x (N,
    n_in)``, ``W (n_in, n_out)``, ``b (n_out,)`` or ``dout`` and ``y (N, n_out)``. It builds no
    messages: the full checks cost ~5 us per call of a training step's layer, ~30 us of the
    notebooks' MLP step at batch 20 (0.45 ms). False sends the arrays through the full checks,
    which raise or convert."""
    if not (type(x) is np.ndarray and type(W) is np.ndarray and type(b_or_dout) is np.ndarray
            and type(y) is np.ndarray):
        return False
    dtype = W.dtype
    if (dtype not in _NATIVE_FLOATS or x.dtype != dtype or b_or_dout.dtype != dtype
            or y.dtype != dtype or x.ndim != 2 or W.ndim != 2 or x.shape[1] != W.shape[0]):
        return False
    want = (x.shape[0], W.shape[1]) if outputs else (W.shape[1],)
    if b_or_dout.shape != want or (outputs and y.shape != want):
        return False
    for a in (x, W, b_or_dout, y):
        flags = a.flags
        if not (flags.c_contiguous and flags.writeable):
            return False
    return True


def _dense_shapes(op, x, W, b):
    check.ndim(op, "x", x, 1, 2)
    check.ndim(op, "W", W, 2)
    if x.shape[-1] != W.shape[0]:
        raise ValueError(f"{op}: x has shape {x.shape} and W has shape {W.shape}; x's last "
                         f"dimension ({x.shape[-1]}) must equal W.shape[0] ({W.shape[0]}), "
                         f"the layout is W (n_in, n_out)")
    if b is not None and b.shape != (W.shape[1],):
        raise ValueError(f"{op}: b has shape {b.shape}; expected ({W.shape[1]},) to match W "
                         f"of shape {W.shape}")


def _dense_output_fits(op, x, W):
    """Refuse an output ``(N, n_out)`` beyond the memory (see :func:`check.memory_for_output`):
    ``x (1e5, 1)`` and ``W (1, 55000)`` take under a MiB and ask for 20 GiB. Small outputs pass
    on one product (~0.1 us), as this runs on every call."""
    rows = x.shape[0] if x.ndim == 2 else 1
    if rows * W.shape[1] * W.itemsize >= 2**28:
        check.memory_for_output(op, (rows, W.shape[1]), W.dtype,
                                lambda: f"from x of shape {x.shape} and W of shape {W.shape}")


def dense(x, W, b=None, activation=None):
    """Fully connected layer ``act(x @ W + b)``.

    Parameters
    ----------
    x : ndarray, float32 or float64
        Inputs, ``(N, n_in)`` or a single sample ``(n_in,)``.
    W : ndarray
        Weights ``(n_in, n_out)``, same dtype as ``x``.
    b : ndarray, optional
        Bias ``(n_out,)``; zeros when omitted.
    activation : {None, "relu", "sigmoid", "tanh"}
        Fused into the same pass as the bias.

    Returns
    -------
    y : ndarray ``(N, n_out)`` (or ``(n_out,)`` for 1-D ``x``).

    Shape
    -----
    ``x``: ``(N, n_in)`` or ``(n_in,)``; ``W``: ``(n_in, n_out)``; ``b``: ``(n_out,)``;
    ``y``: ``(N, n_out)`` or ``(n_out,)``.

    Raises
    ------
    TypeError
        An array is not float32 or float64 (see :func:`relu`), or the dtypes differ.
    ValueError
        An unknown ``activation``; ``x`` not 1-D or 2-D, ``W`` not 2-D, ``x``'s last size not
        ``W.shape[0]``, or ``b`` not ``(n_out,)``; a list argument is ragged or out of range.
    """
    op = "dense"
    act = check.activation(op, activation)
    if _plain_dense(x, W, b, x, 0):
        _dense_output_fits(op, x, W)
        return kernels().dense_forward(x, W, b, act)
    if b is None:
        x, W = check.float_arrays(op, x=x, W=W)
        _dense_shapes(op, x, W, None)                 # before W.shape[1] is read
        _dense_output_fits(op, x, W)                  # before the bias of W.shape[1] zeros
        if x.ndim == 2 and len(x) == 0:
            # An empty batch needs no bias, whose zeros could be 4 TiB (a zero-size W (0, 2**40)).
            return np.empty((0, W.shape[1]), W.dtype)
        b = np.zeros(W.shape[1], dtype=W.dtype)
    else:
        x, W, b = check.float_arrays(op, x=x, W=W, b=b)
        _dense_shapes(op, x, W, b)
        _dense_output_fits(op, x, W)
    y = kernels().dense_forward(np.atleast_2d(x), W, b, act)
    return y.reshape(W.shape[1]) if x.ndim == 1 else y


def dense_backward(dout, x, W, y=None, activation=None, need_dx=True):
    """Gradients of :func:`dense`.

    Parameters
    ----------
    dout : ndarray ``(N, n_out)``
        Gradient of the loss with respect to the output ``y``.
    x, W : ndarray
        The forward inputs.
    y : ndarray ``(N, n_out)``, required when ``activation`` is not None
        The forward output (activation gradients are computed from it).
    activation : {None, "relu", "sigmoid", "tanh"}
    need_dx : bool
        False skips the input gradient (``dx`` is then None): a network's first layer.

    Returns
    -------
    dx : ndarray ``(N, n_in)`` (None when ``need_dx`` is False)
    dW : ndarray ``(n_in, n_out)``
    db : ndarray ``(n_out,)``

    Shape
    -----
    As :func:`dense`, with ``dout`` and ``y`` shaped as its output (``(n_out,)`` for 1-D ``x``,
    and then ``dx`` is ``(n_in,)``).

    Raises
    ------
    TypeError
        As :func:`dense`; ``need_dx`` not a bool (or 0/1).
    ValueError
        An unknown ``activation``, or one without ``y``; ``x`` not 1-D or 2-D, ``W`` not 2-D or
        ``x``'s last size not ``W.shape[0]``; ``dout`` or ``y`` not of the output's shape; a
        list argument is ragged or out of range.
    """
    op = "dense_backward"
    act = check.activation(op, activation)
    y_or_dout = dout if y is None else y               # unused by the kernel when act == "none"
    if (y is not None or act == "none") and _plain_dense(x, W, dout, y_or_dout, 1):
        return kernels().dense_backward(dout, x, W, y_or_dout, act,
                                        check.flag(op, "need_dx", need_dx))
    if act != "none" and y is None:
        raise ValueError(f"{op}: activation={activation!r} needs the forward output y")
    arrays = dict(dout=dout, x=x, W=W) if y is None else dict(dout=dout, x=x, W=W, y=y)
    checked = check.float_arrays(op, **arrays)
    dout, x, W = checked[:3]
    _dense_shapes(op, x, W, None)
    expected = x.shape[:-1] + (W.shape[1],)
    if dout.shape != expected:
        raise ValueError(f"{op}: dout has shape {dout.shape}; expected {expected} for x of shape "
                         f"{x.shape} and W of shape {W.shape}")
    y = checked[3] if y is not None else dout          # unused by the kernel when act == "none"
    check.same_shape(op, "y", y, "dout", dout)
    dx, dW, db = kernels().dense_backward(np.atleast_2d(dout), np.atleast_2d(x), W,
                                          np.atleast_2d(y), act,
                                          check.flag(op, "need_dx", need_dx))
    return (dx.reshape(x.shape) if x.ndim == 1 and dx is not None else dx), dW, db


def _trusted_dense(x, W, b, activation):
    """:func:`dense` of an ``FC`` layer in fit's trusted passes (``fastnet._trusted``), without
    the checks: ``x (N, n_in)`` and arguments that passed them in the step before."""
    return kernels().dense_forward(x, W, b, activation)


def _trusted_dense_backward(dout, x, W, y, activation, need_dx):
    """:func:`dense_backward` in fit's trusted passes, without the checks."""
    return kernels().dense_backward(dout, x, W, y, activation, need_dx)


# --- activations ---------------------------------------------------------------------------------

def _plain_floats(first, *others):
    """True in the common case, where the full checks would pass the arrays on unchanged: plain
    C-contiguous, writeable ndarrays of ``first``'s native float dtype and shape. It builds no
    messages, so small calls stay cheap (``relu_backward`` of 1000 values: ~1 us of its ~2.7 us
    were checks); False sends the arrays through the full checks."""
    if type(first) is not np.ndarray:
        return False
    dtype, shape, flags = first.dtype, first.shape, first.flags
    if dtype not in _NATIVE_FLOATS or not (flags.c_contiguous and flags.writeable):
        return False
    for a in others:
        if type(a) is not np.ndarray or a.dtype != dtype or a.shape != shape:
            return False
        flags = a.flags
        if not (flags.c_contiguous and flags.writeable):
            return False
    return True


def _unary(op, kernel_name, x):
    if not (_plain_floats(x) and x.ndim):
        x = check.float_array(op, "x", x)
        if x.ndim == 0:        # kernels see at least 1-D; a 0-d input gets a 0-d array back
            return getattr(kernels(), kernel_name)(x.reshape(1)).reshape(())
    return getattr(kernels(), kernel_name)(x)


def _unary_backward(op, kernel_name, dout, name, a):
    if not (_plain_floats(dout, a) and a.ndim):
        dout, a = check.float_arrays(op, dout=dout, **{name: a})
        check.same_shape(op, "dout", dout, name, a)
        if a.ndim == 0:
            return getattr(kernels(), kernel_name)(dout.reshape(1), a.reshape(1)).reshape(())
    return getattr(kernels(), kernel_name)(dout, a)


def relu(x):
    """Rectified linear unit ``max(x, 0)``, element-wise.

    Parameters
    ----------
    x : ndarray, float32 or float64
        Any shape, 0-d included. A Python list or number takes the default dtype.

    Returns
    -------
    y : ndarray, shaped as ``x``, of its dtype. NaN propagates (``relu(nan)`` is NaN).

    Shape
    -----
    ``x``: ``(*)``, any number of dimensions; ``y``: ``(*)``, the same.

    Raises
    ------
    TypeError
        ``x`` is neither a float32/float64 ndarray nor a list or number of ints or floats
        (integer, float16, byte-swapped and masked arrays included).
    ValueError
        ``x`` is a ragged list, or a list holding values beyond the default dtype's range.

    Examples
    --------
    >>> relu([-1., 0, 2])
    array([0., 0., 2.], dtype=float32)
    """
    return _unary("relu", "relu_forward", x)


def relu_backward(dout, x):
    """Gradient of :func:`relu`: ``dout`` where ``x > 0``, else 0.

    Computed from the forward *input* ``x``. As in PyTorch, the gradient at exactly 0 is 0 and a
    NaN input passes its gradient; where ``x <= 0`` the result is 0 even for an inf or NaN
    ``dout``.

    Parameters
    ----------
    dout : ndarray, float32 or float64
        Gradient of the loss with respect to ``relu(x)``.
    x : ndarray
        The forward input, same shape and dtype as ``dout``.

    Returns
    -------
    dx : ndarray, shaped as ``x``, of its dtype.

    Shape
    -----
    ``dout``, ``x`` and ``dx``: ``(*)``, any one shape.

    Raises
    ------
    TypeError
        An argument is not float32 or float64 (see :func:`relu`), or the two dtypes differ.
    ValueError
        ``dout`` and ``x`` differ in shape; a list argument is ragged or out of range.
    """
    return _unary_backward("relu_backward", "relu_backward", dout, "x", x)


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, element-wise.

    Computed so that no ``exp`` overflows: finite for any finite ``x``, exactly 0 or 1 far out
    (where the result rounds to them).

    Parameters
    ----------
    x : ndarray, float32 or float64
        Any shape, 0-d included. A Python list or number takes the default dtype.

    Returns
    -------
    y : ndarray, shaped as ``x``, of its dtype, in ``[0, 1]``. NaN propagates.

    Shape
    -----
    ``x``: ``(*)``, any number of dimensions; ``y``: ``(*)``, the same.

    Raises
    ------
    TypeError, ValueError
        As :func:`relu`.
    """
    return _unary("sigmoid", "sigmoid_forward", x)


def sigmoid_backward(dout, y):
    """Gradient of :func:`sigmoid`: ``dout * y * (1 - y)``.

    Parameters
    ----------
    dout : ndarray, float32 or float64
        Gradient of the loss with respect to ``y``.
    y : ndarray
        The forward *output* ``sigmoid(x)`` (not its input), same shape and dtype as ``dout``.

    Returns
    -------
    dx : ndarray, shaped as ``y``, of its dtype.

    Shape
    -----
    ``dout``, ``y`` and ``dx``: ``(*)``, any one shape.

    Raises
    ------
    TypeError, ValueError
        As :func:`relu_backward` (with ``y`` for ``x``).
    """
    return _unary_backward("sigmoid_backward", "sigmoid_backward", dout, "y", y)


def tanh(x):
    """Hyperbolic tangent ``tanh(x)``, element-wise.

    Parameters
    ----------
    x : ndarray, float32 or float64
        Any shape, 0-d included. A Python list or number takes the default dtype.

    Returns
    -------
    y : ndarray, shaped as ``x``, of its dtype, in ``[-1, 1]``. NaN propagates.

    Shape
    -----
    ``x``: ``(*)``, any number of dimensions; ``y``: ``(*)``, the same.

    Raises
    ------
    TypeError, ValueError
        As :func:`relu`.
    """
    return _unary("tanh", "tanh_forward", x)


def tanh_backward(dout, y):
    """Gradient of :func:`tanh`: ``dout * (1 - y**2)``.

    Parameters
    ----------
    dout : ndarray, float32 or float64
        Gradient of the loss with respect to ``y``.
    y : ndarray
        The forward *output* ``tanh(x)`` (not its input), same shape and dtype as ``dout``.

    Returns
    -------
    dx : ndarray, shaped as ``y``, of its dtype.

    Shape
    -----
    ``dout``, ``y`` and ``dx``: ``(*)``, any one shape.

    Raises
    ------
    TypeError, ValueError
        As :func:`relu_backward` (with ``y`` for ``x``).
    """
    return _unary_backward("tanh_backward", "tanh_backward", dout, "y", y)


def _rows(op, name, a):
    """View ``a (..., C)`` as ``(rows, C)`` for the row-wise kernels."""
    check.ndim(op, name, a, *range(1, 33))
    if a.shape[-1] == 0:
        raise ValueError(f"{op}: {name} has shape {a.shape}; the class axis (last) is empty")
    return a.reshape(-1, a.shape[-1])


def softmax(x):
    """Softmax over the last axis: ``y[..., j] = exp(x[..., j]) / sum_k exp(x[..., k])``.

    Each row is max-subtracted first, so ``exp`` never overflows for finite ``x``; a NaN in a
    row makes that whole row NaN. For column-layout code (classes on axis 0) see
    ``fastnet.compat.softmax(U, reduce_axis=0)``.

    Parameters
    ----------
    x : ndarray, float32 or float64
        Scores, classes on the last axis. A Python list takes the default dtype.

    Returns
    -------
    y : ndarray, shaped as ``x``, of its dtype; each row along the last axis sums to 1.

    Shape
    -----
    ``x``: ``(..., C)``, 1-D to 32-D with ``C >= 1`` (the leading sizes may be 0); ``y``: the
    same.

    Raises
    ------
    TypeError
        As :func:`relu`.
    ValueError
        ``x`` is 0-d or has an empty last axis (``C == 0``); a ragged or out-of-range list.

    Examples
    --------
    >>> softmax([0., 0.])
    array([0.5, 0.5], dtype=float32)
    """
    if _plain_floats(x) and x.ndim == 2 and x.shape[1]:      # the common case, checks passed
        return kernels().softmax_forward(x)
    x = check.float_array("softmax", "x", x)
    return kernels().softmax_forward(_rows("softmax", "x", x)).reshape(x.shape)


def softmax_backward(dout, y):
    """Gradient of :func:`softmax` (its vector-Jacobian product) from its output ``y``:
    ``dx = y * (dout - sum(dout * y))``, the sum over the last axis of each row.

    Parameters
    ----------
    dout : ndarray, float32 or float64
        Gradient of the loss with respect to ``y``.
    y : ndarray
        The forward output ``softmax(x)``, same shape and dtype as ``dout``.

    Returns
    -------
    dx : ndarray, shaped as ``y``, of its dtype.

    Shape
    -----
    ``dout``, ``y`` and ``dx``: ``(..., C)``, as in :func:`softmax`.

    Raises
    ------
    TypeError
        An argument is not float32 or float64 (see :func:`relu`), or the two dtypes differ.
    ValueError
        ``dout`` and ``y`` differ in shape, are 0-d or have an empty last axis; a list argument
        is ragged or out of range.
    """
    if _plain_floats(y, dout) and y.ndim == 2 and y.shape[1]:   # as in softmax
        return kernels().softmax_backward(dout, y)
    op = "softmax_backward"
    dout, y = check.float_arrays(op, dout=dout, y=y)
    check.same_shape(op, "dout", dout, "y", y)
    return kernels().softmax_backward(_rows(op, "dout", dout), _rows(op, "y", y)).reshape(y.shape)


# --- losses --------------------------------------------------------------------------------------

def _class_scores(op, name, a, target):
    """``logits`` or ``probs`` ``(N, C)`` of a classification loss, ``N, C >= 1``. A Python
    list takes the dtype of a float ``target`` (one-hot rows) beside it, as lists do everywhere
    in this API (it took the default dtype, and a float64 target was then a dtype mismatch
    that the user had not made: an audit)."""
    like = (target.dtype if isinstance(target, np.ndarray) and target.dtype in check.NATIVE_FLOATS
            else None)
    a = check.float_array(op, name, a, like if isinstance(a, (list, tuple)) else None)
    check.ndim(op, name, a, 2)
    N, C = a.shape
    if N == 0 or C == 0:
        raise ValueError(f"{op}: {name} has shape {a.shape}; need at least one sample and one "
                         f"class (a mean over an empty batch is undefined)")
    return a


def softmax_cross_entropy(logits, target, return_probs=False):
    """Mean cross-entropy of ``softmax(logits)`` against ``target``:
    ``-mean_n sum_c t[n, c] * log(softmax(logits)[n, c])``, a mean over the batch.

    Parameters
    ----------
    logits : ndarray ``(N, C)``, float32 or float64
    target : ndarray
        Integer labels ``(N,)`` in ``[0, C)`` (any integer dtype) or a distribution ``(N, C)``
        such as one-hot (same dtype as ``logits``). A list of 2-D rows takes the logits' dtype.
    return_probs : bool
        Also return ``softmax(logits)``, which :func:`softmax_cross_entropy_backward` needs.

    Returns
    -------
    loss : NumPy scalar of the logits' dtype (summed in float64), or ``(loss, probs)`` with
        ``probs`` an ndarray ``(N, C)`` of that dtype.

    Computed as ``logsumexp(z) - z_target`` from max-subtracted logits: finite for logits up to
    1e4 in magnitude and when the true class has probability 0 (no ``log(0)`` is taken). Finite
    logits never give NaN: a class without target mass adds nothing, even where its ``-log p``
    overflows (only a non-finite logit there gives ``0 * inf = NaN``, as in PyTorch).

    Shape
    -----
    ``logits``: ``(N, C)`` with ``N, C >= 1``; ``target``: ``(N,)`` or ``(N, C)``.

    Raises
    ------
    TypeError
        ``logits`` is not float32 or float64 (see :func:`relu`); 1-D labels of a non-integer
        dtype; a one-hot ``target`` of another dtype than ``logits``; ``return_probs`` not a
        bool (or 0/1).
    ValueError
        ``logits`` is not 2-D or has ``N == 0`` or ``C == 0``; labels not of length ``N`` or
        outside ``[0, C)``; a one-hot ``target`` not of the logits' shape; ``target`` neither
        1-D nor 2-D.
    """
    return_probs = check.flag("softmax_cross_entropy", "return_probs", return_probs)
    loss, probs, _ = _softmax_cross_entropy_checked(logits, target)
    return (loss, probs) if return_probs else loss


def _softmax_cross_entropy_checked(logits, target):
    """:func:`softmax_cross_entropy` with ``return_probs``, and the target as checked for the
    kernel (labels as int64): :func:`_softmax_cross_entropy_backward_checked` takes it back."""
    op = "softmax_cross_entropy"
    logits = _class_scores(op, "logits", logits, target)
    target = check.class_target(op, target, logits)
    loss, probs = kernels().softmax_cross_entropy_forward(logits, target)
    return loss, probs, target


def softmax_cross_entropy_backward(probs, target, dloss=1.0):
    """Gradient of :func:`softmax_cross_entropy` with respect to the logits:
    ``dloss * (probs - onehot(target)) / N``.

    For target rows ``t`` that do not sum to 1 it is ``dloss * (probs * sum(t) - t) / N``, the
    exact gradient of the loss (as PyTorch's).

    Parameters
    ----------
    probs : ndarray ``(N, C)``, float32 or float64
        The second output of ``softmax_cross_entropy(..., return_probs=True)`` (not checked to
        be a softmax).
    target : ndarray
        As given to :func:`softmax_cross_entropy`: labels ``(N,)`` or a distribution ``(N, C)``.
    dloss : float
        Upstream gradient of the loss (a finite real number; default 1).

    Returns
    -------
    dlogits : ndarray ``(N, C)`` of the dtype of ``probs``.

    Shape
    -----
    ``probs`` and ``dlogits``: ``(N, C)`` with ``N, C >= 1``; ``target``: ``(N,)`` or ``(N, C)``.

    Raises
    ------
    TypeError
        As :func:`softmax_cross_entropy` (with ``probs`` for ``logits``); ``dloss`` not a real
        number (a bool included).
    ValueError
        As :func:`softmax_cross_entropy`; ``dloss`` not finite or beyond the dtype's range.
    """
    backend = kernels()
    if (_plain_floats(probs) and probs.ndim == 2 and probs.size
            and _plain_labels(target, probs.shape[0]) and type(dloss) is float
            and abs(dloss) <= _MAX[probs.dtype]                         # False for NaN
            and backend.labels_in_range(target, probs.shape[1])):
        # The common case, tested without building any message: at (20, 10) the full checks
        # were ~1.7 us of a ~3.4 us call (now ~2.2 us)
        return backend.softmax_cross_entropy_backward(dloss, probs, target)
    op = "softmax_cross_entropy_backward"
    probs = _class_scores(op, "probs", probs, target)
    target = check.class_target(op, target, probs, "probs")
    return _softmax_cross_entropy_backward_checked(probs, target, dloss)


def _plain_labels(target, N):
    """True in the common case of integer labels, where ``check.class_target`` would pass them
    on unchanged: a plain, C-contiguous, writeable int64 ndarray ``(N,)``. (Their range is the
    caller's to check.)"""
    if type(target) is not np.ndarray or target.dtype is not _INT64 or target.shape != (N,):
        return False
    flags = target.flags
    return flags.c_contiguous and flags.writeable


def _softmax_cross_entropy_backward_checked(probs, target, dloss):
    """:func:`softmax_cross_entropy_backward` for ``probs`` and ``target`` as the forward
    returned and checked them (:func:`_softmax_cross_entropy_checked`); ``dloss`` is checked
    here. The loss object's backward, on every training step: checking the labels again cost
    ~2 us of a ~4 us call."""
    dloss = _hyper("softmax_cross_entropy_backward", "dloss", dloss, probs.dtype)
    return kernels().softmax_cross_entropy_backward(dloss, probs, target)


def _pair(op, a_name, a, b_name, b):
    a, b = check.float_arrays(op, **{a_name: a, b_name: b})
    check.same_shape(op, a_name, a, b_name, b)
    if a.size == 0:
        raise ValueError(f"{op}: {a_name} is empty (shape {a.shape}); a mean needs elements")
    return a, b


def mse(y, t):
    """Mean squared error ``mean((y - t)**2)`` over all elements (PyTorch's ``MSELoss``).

    Parameters
    ----------
    y : ndarray, float32 or float64
        Predictions, any shape with at least one element.
    t : ndarray
        Targets, same shape and dtype as ``y``. A Python list or number takes the other
        argument's dtype (the default dtype when neither is an array).

    Returns
    -------
    loss : NumPy scalar of the arrays' dtype (the squares summed in float64). NaN propagates.

    Shape
    -----
    ``y`` and ``t``: ``(*)``, any one shape (0-d included), not empty.

    Raises
    ------
    TypeError
        An argument is not float32 or float64 (see :func:`relu`), or the two dtypes differ.
    ValueError
        ``y`` and ``t`` differ in shape or are empty; a list argument is ragged or out of range.

    Examples
    --------
    >>> float(mse([1., 2], [0., 0]))
    2.5
    """
    y, t = _pair("mse", "y", y, "t", t)
    return kernels().mse_forward(y, t)


def mse_backward(y, t, dloss=1.0):
    """Gradient of :func:`mse` with respect to ``y``: ``dloss * 2 * (y - t) / y.size``.

    Parameters
    ----------
    y, t : ndarray, float32 or float64
        As given to :func:`mse`.
    dloss : float
        Upstream gradient of the loss (a finite real number; default 1).

    Returns
    -------
    dy : ndarray, shaped as ``y`` (0-d for 0-d ``y``), of its dtype.

    Shape
    -----
    ``y``, ``t`` and ``dy``: ``(*)``, any one shape, not empty.

    Raises
    ------
    TypeError
        As :func:`mse`; ``dloss`` not a real number (a bool included).
    ValueError
        As :func:`mse`; ``dloss`` not finite or beyond the dtype's range.
    """
    op = "mse_backward"
    y, t = _pair(op, "y", y, "t", t)
    return kernels().mse_backward(_hyper(op, "dloss", dloss, y.dtype), y, t)


def _probabilities(op, p, t):
    """``p`` and ``t`` must lie in [0, 1], as PyTorch's BCE requires of both (an inf target made
    the backends' losses differ: NaN against inf); NaN passes, to show in the loss."""
    p, t = _pair(op, "p", p, "t", t)
    for name, a, hint in (("p", p, "apply sigmoid first"),
                          ("t", t, "targets are 0/1 labels or soft labels")):
        if not check.all_in_unit_interval(a):
            raise ValueError(f"{op}: {name} must hold probabilities in [0, 1]; got values in "
                             f"[{np.nanmin(a)}, {np.nanmax(a)}] ({hint})")
    return p, t


def binary_cross_entropy(p, t):
    """Binary cross-entropy ``mean(-(t*log(p) + (1-t)*log(1-p)))`` over all elements.

    Each log is clamped at -100, as in PyTorch's ``BCELoss``: ``p`` of exactly 0 or 1 gives a
    finite loss (no ``log(0)`` is taken).

    Parameters
    ----------
    p : ndarray, float32 or float64
        Predicted probabilities in ``[0, 1]`` (apply :func:`sigmoid` first), any shape with at
        least one element.
    t : ndarray
        Targets in ``[0, 1]`` (0/1 labels or soft labels), same shape and dtype as ``p``.

    Returns
    -------
    loss : NumPy scalar of the arrays' dtype (summed in float64). NaN in ``p`` or ``t`` is not
        refused and propagates to the loss.

    Shape
    -----
    ``p`` and ``t``: ``(*)``, any one shape (0-d included), not empty.

    Raises
    ------
    TypeError
        An argument is not float32 or float64 (see :func:`relu`), or the two dtypes differ.
    ValueError
        ``p`` and ``t`` differ in shape or are empty; a value of ``p`` or ``t`` outside
        ``[0, 1]`` (inf included); a list argument is ragged or out of range.
    """
    p, t = _probabilities("binary_cross_entropy", p, t)
    return kernels().bce_forward(p, t)


def binary_cross_entropy_backward(p, t, dloss=1.0):
    """Gradient of :func:`binary_cross_entropy` with respect to ``p``:
    ``dloss * (p - t) / max(p*(1-p), 1e-12) / p.size``.

    The floor of 1e-12 keeps the gradient finite at ``p`` of exactly 0 or 1. PyTorch floors
    at its float32 constant 1e-12, 9.99999996e-13 in float64, so its gradient there is
    4e-9 (relative) larger in float64 than this one.

    Parameters
    ----------
    p, t : ndarray, float32 or float64
        As given to :func:`binary_cross_entropy`, both in ``[0, 1]``.
    dloss : float
        Upstream gradient of the loss (a finite real number; default 1).

    Returns
    -------
    dp : ndarray, shaped as ``p``, of its dtype.

    Shape
    -----
    ``p``, ``t`` and ``dp``: ``(*)``, any one shape, not empty.

    Raises
    ------
    TypeError
        As :func:`binary_cross_entropy`; ``dloss`` not a real number (a bool included).
    ValueError
        As :func:`binary_cross_entropy`; ``dloss`` not finite or beyond the dtype's range.
    """
    op = "binary_cross_entropy_backward"
    p, t = _probabilities(op, p, t)
    return kernels().bce_backward(_hyper(op, "dloss", dloss, p.dtype), p, t)


# --- optimizer updates -------------------------------------------------------------------------

def _in_place(op, param, grad, **state):
    """Check a parameter, its gradient and optimizer state for an in-place update.

    Returns ``[param, grad, *state]`` for the kernel: plain ndarrays (a subclass such as
    ``np.matrix`` as an ndarray view of the same memory, which a compiled kernel can index
    safely). No state array may share memory with the parameter, the gradient or another state
    array, and the gradient may overlap the parameter only as the very same array: the two
    backends would read a partial overlap at different moments of the update.
    """
    if _plain_in_place(param, grad, state.values()):
        return [param, grad, *state.values()]
    # Mixed dtypes named all at once: checked one by one against param's, adam_update_(float64
    # param, float32 grad, m, v) said "grad is float32 but the other inputs are float64".
    check.one_float_dtype(op, param=param, grad=grad, **state)
    param = check.updatable(op, "param", param)
    param = check.float_array(op, "param", param)
    grad = check.float_array(op, "grad", grad, param.dtype)
    check.same_shape(op, "grad", grad, "param", param)
    if np.may_share_memory(param, grad) and _data(param) != _data(grad):
        # grad = param itself is fine (each element reads its own gradient); a shifted
        # overlap would be read before or after its update depending on the backend.
        raise ValueError(f"{op}: grad overlaps param at an offset; pass a gradient with "
                         f"memory of its own (or param itself)")
    names, arrays = ["param", "grad"], [param, grad]
    for name, a in state.items():
        a = check.updatable(op, name, a)
        check.float_array(op, name, a, param.dtype)
        check.same_shape(op, name, a, "param", param)
        for other_name, other in zip(names, arrays):
            # Exact for C-contiguous blocks: they overlap if and only if their bounds do.
            if np.may_share_memory(a, other):
                raise ValueError(f"{op}: {name} shares memory with {other_name}; each optimizer "
                                 f"state array needs memory of its own")
        names.append(name)
        arrays.append(a)
    return arrays


def _plain_in_place(param, grad, states):
    """The common case of :func:`_in_place`, tested without building any message: plain
    C-contiguous ndarrays of one native float dtype and one shape, all writeable but the
    gradient, no two sharing memory (the gradient may be the parameter itself). False sends the
    arrays through the full checks, which raise or convert. (Adam's four arrays: 1.9 us here
    against 4.4 us through the full checks, on every parameter of every training step.)"""
    if not _plain_floats(param, grad, *states):
        return False
    arrays = (param, *states) if grad is param else (param, grad, *states)
    return _apart(arrays) or not any(np.may_share_memory(a, b) for i, a in enumerate(arrays)
                                     for b in arrays[i + 1:])


def _apart(arrays):
    """True when the arrays cannot share memory, told from their owners alone: each is, or is a
    view of, an ndarray that owns its memory, and no two have the same owner. (Optimizer state
    and layer parameters are such arrays; ~0.6 us for Adam's four, against ~1.5 us for the six
    ``np.may_share_memory`` tests.) False means "maybe": look at the addresses."""
    owners = set()
    for a in arrays:
        owner = a if a.base is None else a.base
        if type(owner) is not np.ndarray or not owner.flags.owndata or id(owner) in owners:
            return False
        owners.add(id(owner))
    return True


def _data(a):
    return a.__array_interface__["data"][0]


_TINY = {np.dtype(t): float(np.finfo(t).tiny) for t in check.FLOAT_DTYPES}
_MAX = {np.dtype(t): float(np.finfo(t).max) for t in check.FLOAT_DTYPES}


def _lr(op, lr, dtype):
    """``lr``, a finite float >= 0 within ``dtype``'s range (:func:`_hyper`) and 0 or at least
    its smallest normal number (``lr=1e-50`` is 0 in float32: a step that silently changes
    nothing), tested first without building anything: every optimizer update checks one."""
    if type(lr) is float and (_TINY[dtype] <= lr <= _MAX[dtype] or lr == 0.0):  # not NaN
        return lr
    lr = _hyper(op, "lr", lr, dtype, low=0)
    if 0 < lr < _TINY[dtype]:
        raise ValueError(f"{op}: lr={lr!r} is below the smallest normal {dtype} "
                         f"({_TINY[dtype]:.3g}) and would round to 0 or lose precision; use 0 "
                         f"or at least that")
    return lr


def _hyper(op, name, value, dtype, **bounds):
    """A hyper-parameter (``check.real``) that the kernels can round to ``dtype`` without
    overflow: ``lr=1e300`` would be inf in float32 and turn every parameter into NaN."""
    value = check.real(op, name, value, **bounds)
    if abs(value) > _MAX[dtype]:
        raise ValueError(f"{op}: {name}={value!r} is beyond the {dtype} range of the arrays "
                         f"(max {_MAX[dtype]:.3g})")
    return value


def _eps(op, eps, dtype):
    """``eps`` at least the dtype's smallest normal number (1e-50 would be 0 in float32)."""
    if type(eps) is float and _TINY[dtype] <= eps <= _MAX[dtype]:     # the common case
        return eps
    eps = _hyper(op, "eps", eps, dtype, low=0, low_open=True)
    if eps < _TINY[dtype]:
        raise ValueError(f"{op}: eps={eps!r} is below the smallest normal {dtype} "
                         f"({_TINY[dtype]:.3g}) and would round to 0 or lose precision; use at "
                         f"least that")
    return eps


def sgd_update_(param, grad, lr):
    """Stochastic gradient descent step, in place: ``param -= lr * grad``.

    Modifies ``param``; ``grad`` is only read. Returns None.

    Parameters
    ----------
    param : ndarray, float32 or float64
        The parameter, updated in place: a writeable, C-contiguous ndarray.
    grad : ndarray
        Its gradient, same shape and dtype. It may be a list, strided or read-only (copied
        once), and may be ``param`` itself, but must not overlap it otherwise.
    lr : float
        Learning rate, finite, ``0`` or at least the dtype's smallest normal number.

    Returns
    -------
    None

    Shape
    -----
    ``param`` and ``grad``: ``(*)``, any one shape.

    Raises
    ------
    TypeError
        ``param`` is not an ndarray; an array is not float32 or float64, or the dtypes differ;
        a masked array; ``lr`` not a real number (a bool included).
    ValueError
        ``param`` is read-only or not C-contiguous; ``grad`` has another shape or overlaps
        ``param`` at an offset; ``lr`` negative, not finite, beyond the dtype's range or
        below its smallest normal number (but 0).

    Examples
    --------
    >>> p = np.array([1., 2.], np.float32)
    >>> sgd_update_(p, np.array([1., 1.], np.float32), 0.5)
    >>> p
    array([0.5, 1.5], dtype=float32)
    """
    op = "sgd_update_"
    param, grad = _in_place(op, param, grad)
    kernels().sgd_update_(param, grad, _lr(op, lr, param.dtype))


def momentum_update_(param, grad, velocity, lr, momentum=0.9, nesterov=False):
    """SGD with momentum in PyTorch's form, in place: ``v = momentum*v + g``, then
    ``param -= lr*v`` (Nesterov: ``param -= lr*(g + momentum*v)``, with the new ``v``).

    Modifies ``param`` and ``velocity``; ``grad`` is only read. Returns None.

    A state value whose magnitude falls below the dtype's smallest normal number is stored
    as 0, as in :func:`adam_update_` (which says why).

    Parameters
    ----------
    param, grad : ndarray, float32 or float64
        As in :func:`sgd_update_`.
    velocity : ndarray
        The velocity ``v`` (zeros at the first step), updated in place: writeable,
        C-contiguous, of ``param``'s shape and dtype, sharing memory with no other argument.
    lr : float
        Learning rate, finite, ``0`` or at least the dtype's smallest normal number.
    momentum : float
        Finite and ``>= 0`` (default 0.9).
    nesterov : bool
        Nesterov momentum (default False; needs ``momentum > 0``).

    Returns
    -------
    None

    Shape
    -----
    ``param``, ``grad`` and ``velocity``: ``(*)``, any one shape.

    Raises
    ------
    TypeError
        As :func:`sgd_update_`, for ``velocity`` too; ``momentum`` not a real number;
        ``nesterov`` not a bool (or 0/1).
    ValueError
        As :func:`sgd_update_`, for ``velocity`` too; ``velocity`` shares memory with ``param``
        or ``grad``; ``momentum`` not finite or outside ``[0, 1]`` (beyond 1 every step grows
        the velocity: the parameters diverge); ``nesterov=True`` with ``momentum=0``.
    """
    op = "momentum_update_"
    param, grad, velocity = _in_place(op, param, grad, velocity=velocity)
    momentum = _hyper(op, "momentum", momentum, param.dtype, low=0, high=1)
    nesterov = check.flag(op, "nesterov", nesterov)
    if nesterov and momentum == 0:          # as the optimizer (and PyTorch) refuse it
        raise ValueError(f"{op}: nesterov=True needs momentum > 0")
    kernels().momentum_update_(param, grad, velocity, _lr(op, lr, param.dtype), momentum,
                               nesterov)


def adagrad_update_(param, grad, h, lr, eps=1e-7):
    """AdaGrad step as in Deep Learning from Scratch, in place: ``h += g*g``, then
    ``param -= lr*g/(sqrt(h) + eps)``.

    Modifies ``param`` and ``h``; ``grad`` is only read. Returns None. ``eps`` defaults to 1e-7
    as in Deep Learning from Scratch (PyTorch uses 1e-10).

    Parameters
    ----------
    param, grad : ndarray, float32 or float64
        As in :func:`sgd_update_`.
    h : ndarray
        The sum of squared gradients (zeros at the first step), updated in place: writeable,
        C-contiguous, of ``param``'s shape and dtype, sharing memory with no other argument.
        Its values are not checked (a pass over ``h`` on every update): a negative one, which
        no sequence of updates produces, makes the step's square root, and ``param``, NaN.
    lr : float
        Learning rate, finite, ``0`` or at least the dtype's smallest normal number.
    eps : float
        Added to ``sqrt(h)``: ``> 0``, at least the dtype's smallest normal number (1.2e-38
        for float32, 2.2e-308 for float64) and within its range.

    Returns
    -------
    None

    Shape
    -----
    ``param``, ``grad`` and ``h``: ``(*)``, any one shape.

    Raises
    ------
    TypeError
        As :func:`sgd_update_`, for ``h`` too; ``eps`` not a real number.
    ValueError
        As :func:`sgd_update_`, for ``h`` too; ``h`` shares memory with ``param`` or ``grad``;
        ``eps`` outside the range above or not finite.
    """
    op = "adagrad_update_"
    param, grad, h = _in_place(op, param, grad, h=h)
    kernels().adagrad_update_(param, grad, h, _lr(op, lr, param.dtype),
                              _eps(op, eps, param.dtype))


def rmsprop_update_(param, grad, h, lr, rho=0.99, eps=1e-7):
    """RMSProp step, in place: ``h = rho*h + (1-rho)*g*g``, then
    ``param -= lr*g/(sqrt(h) + eps)``.

    Modifies ``param`` and ``h``; ``grad`` is only read. Returns None.

    A state value whose magnitude falls below the dtype's smallest normal number is stored
    as 0, as in :func:`adam_update_` (which says why).

    Parameters
    ----------
    param, grad : ndarray, float32 or float64
        As in :func:`sgd_update_`.
    h : ndarray
        The running mean of squared gradients (zeros at the first step), updated in place, as
        in :func:`adagrad_update_` (and, as there, not checked for negative values).
    lr : float
        Learning rate, finite, ``0`` or at least the dtype's smallest normal number.
    rho : float
        Decay rate in ``[0, 1]`` (default 0.99).
    eps : float
        As in :func:`adagrad_update_` (default 1e-7).

    Returns
    -------
    None

    Shape
    -----
    ``param``, ``grad`` and ``h``: ``(*)``, any one shape.

    Raises
    ------
    TypeError
        As :func:`adagrad_update_`; ``rho`` not a real number.
    ValueError
        As :func:`adagrad_update_`; ``rho`` outside ``[0, 1]`` or not finite.
    """
    op = "rmsprop_update_"
    param, grad, h = _in_place(op, param, grad, h=h)
    kernels().rmsprop_update_(param, grad, h, _lr(op, lr, param.dtype),
                              check.real(op, "rho", rho, low=0, high=1),
                              _eps(op, eps, param.dtype))


def adam_update_(param, grad, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam step with bias correction (PyTorch's formulation), in place:
    ``m = beta1*m + (1-beta1)*g``, ``v = beta2*v + (1-beta2)*g*g``, then
    ``param -= lr/(1-beta1**step) * m / (sqrt(v)/sqrt(1-beta2**step) + eps)``.

    Modifies ``param``, ``m`` and ``v``; ``grad`` is only read. Returns None.

    A state value whose magnitude falls below the dtype's smallest normal number
    (``np.finfo(dtype).tiny``) is stored as 0: a parameter whose gradient stays 0 (a dead
    unit's) has its state decay into subnormal numbers, which cost ~100 cycles per
    operation on Intel cores (MNIST CNN epochs with Adam ran 12-18 % slower from the
    second on). The values flushed are below 1.2e-38 (float32) or 2.2e-308 (float64); the
    steps they would have made are far below any parameter's rounding.

    Parameters
    ----------
    param, grad : ndarray, float32 or float64
        As in :func:`sgd_update_`.
    m, v : ndarray
        First and second moment estimates (zeros at the first step), updated in place:
        writeable, C-contiguous, of ``param``'s shape and dtype, each with memory of its own.
        ``v`` is not checked for negative values, as ``h`` in :func:`adagrad_update_`.
    step : int
        The 1-based count of updates so far, this one included: ``1 <= step <= 2**53``.
    lr : float
        Learning rate, finite, ``0`` or at least the dtype's smallest normal number
        (default 1e-3).
    beta1, beta2 : float
        Decay rates in ``[0, 1 - 1e-12]`` (defaults 0.9 and 0.999).
    eps : float
        As in :func:`adagrad_update_` (default 1e-8).

    Returns
    -------
    None

    Shape
    -----
    ``param``, ``grad``, ``m`` and ``v``: ``(*)``, any one shape.

    Raises
    ------
    TypeError
        As :func:`sgd_update_`, for ``m`` and ``v`` too; ``beta1``, ``beta2`` or ``eps`` not a
        real number; ``step`` not an integer (a bool or a float such as 1.0 included).
    ValueError
        As :func:`sgd_update_`, for ``m`` and ``v`` too; ``m`` or ``v`` shares memory with
        another array argument; ``step``, ``beta1``, ``beta2`` or ``eps`` out of the ranges
        above (or not finite).
    """
    op = "adam_update_"
    param, grad, m, v = _in_place(op, param, grad, m=m, v=v)
    kernels().adam_update_(param, grad, m, v, _lr(op, lr, param.dtype),
                           check.real(op, "beta1", beta1, low=0, high=1 - 1e-12),
                           check.real(op, "beta2", beta2, low=0, high=1 - 1e-12),
                           _eps(op, eps, param.dtype),
                           # beta**step is computed in float64: step must convert to a float
                           check.integer(op, "step", step, low=1, high=2**53))
