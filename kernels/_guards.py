"""The guarded door to the kernels, shared by both backends.

``fastnet.functional`` checks every argument fully, with messages written for users, and then
calls a backend's ``trusted`` kernels (and so do the unchecked training steps of
``fastnet._dense_chain``, whose first step was checked). A kernel called directly, as
``fastnet.kernels.load("numba").dense_forward(...)``, runs behind :func:`guarded`'s wrappers
instead: they check what the contract promises its kernels (float32/float64 arrays of one dtype,
C-contiguous, shapes that fit together, sizes in range, labels and arg-max indices in range)
and raise ``TypeError``/``ValueError`` naming the kernel, the argument and the shapes. Compiled
loops do not check bounds, so without these a bad direct call could read or write outside its
arrays (a crash, or a silently wrong result) or update a copy instead of the caller's array.

Both backends build their public functions here, so a bad call raises the same error on either.
"""
import functools
import inspect

import numpy as np

from . import DENSE_ACTIVATIONS, conv1d_output_length, pool_output_length

#: Largest size, stride, padding or dilation (``fastnet._checks`` uses it too): it keeps every
#: index a compiled loop computes inside int64.
MAX_SIZE = 2**31 - 1

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_INDEX = np.dtype(np.int64)


def _fail(kernel, problem, **arrays):
    got = ", ".join(f"{name} {_describe(a)}" for name, a in arrays.items())
    raise ValueError(f"{kernel}: {problem}; got {got}. The kernels check only what keeps their "
                     f"loops inside the arrays: fastnet.functional checks every argument")


def _describe(a):
    if isinstance(a, np.ndarray):
        return f"{a.dtype} {a.shape}"
    return repr(a) if isinstance(a, (int, float, str, type(None))) else type(a).__name__


def _array(kernel, name, a):
    # Plain arrays only: a subclass may keep two dimensions through reshape(-1) (np.matrix: an
    # update wrote past its end) or report a shape that is not its memory's.
    if type(a) is not np.ndarray:
        raise TypeError(f"{kernel}: {name} must be a plain NumPy array (np.asarray of it); got "
                        f"{type(a).__name__}")
    if not a.flags.c_contiguous:
        _fail(kernel, f"{name} must be C-contiguous (np.ascontiguousarray)", **{name: a})


def floats(kernel, **arrays):
    """Each array a C-contiguous NumPy array of float32 or float64, all of one native dtype."""
    dtype = None
    for name, a in arrays.items():
        _array(kernel, name, a)
        if a.dtype not in _FLOATS or not a.dtype.isnative:
            raise TypeError(f"{kernel}: {name} has dtype {a.dtype}; the kernels take float32 or "
                            f"float64 (native byte order)")
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype:
            _fail(kernel, "the arrays must share one dtype", **arrays)


def same_shape(kernel, **arrays):
    """The arrays have one shape (and one float dtype)."""
    floats(kernel, **arrays)
    shapes = [a.shape for a in arrays.values()]
    if shapes.count(shapes[0]) != len(shapes):
        _fail(kernel, "the arrays must have one shape", **arrays)


def in_place(kernel, **arrays):
    """A parameter, its gradient and its state arrays: one shape, one dtype, C-contiguous (a
    flat view of anything else would be a copy, and the update would not land), all but the
    gradient writeable, and no two sharing memory (the loops read each element once, so
    overlapping views or one array as two states gave other results than NumPy's)."""
    same_shape(kernel, **arrays)
    items = list(arrays.items())
    for i, (name, a) in enumerate(items):
        if name != "grad" and not a.flags.writeable:
            _fail(kernel, f"{name} is read-only; it is updated in place", **{name: a})
        for other, b in items[i + 1:]:
            if np.may_share_memory(a, b):
                _fail(kernel, f"{name} and {other} share memory", **{name: a, other: b})


def sizes(kernel, low, high=MAX_SIZE, **values):
    """Integer hyper-parameters (stride, padding, dilation, kernel size, length) in
    ``[low, high]``."""
    for name, v in values.items():
        if isinstance(v, (bool, np.bool_, np.timedelta64)) \
                or not isinstance(v, (int, np.integer)) or not low <= v <= high:
            raise ValueError(f"{kernel}: {name}={_shown(v)}; expected an integer in [{low}, "
                             f"{high}]")


def dense(kernel, x, W, b=None, dout=None, y=None):
    """``x (N, n_in)``, ``W (n_in, n_out)``, ``b (n_out,)``, ``dout`` and ``y`` ``(N, n_out)``."""
    arrays = {"x": x, "W": W} if b is None else {"x": x, "W": W, "b": b}
    floats(kernel, **arrays)
    if x.ndim != 2 or W.ndim != 2 or x.shape[1] != W.shape[0] \
            or (b is not None and b.shape != (W.shape[1],)):
        _fail(kernel, "expected x (N, n_in), W (n_in, n_out) and b (n_out,)", **arrays)
    if dout is not None:
        same_shape(kernel, dout=dout, y=y)
        if dout.shape != (x.shape[0], W.shape[1]) or dout.dtype != x.dtype:
            _fail(kernel, "dout and y must be (N, n_out), in x's dtype", x=x, W=W, dout=dout)


def labels(kernel, logits, target, in_range):
    """``logits (N, C)`` with int64 labels ``(N,)`` in ``[0, C)`` (``in_range``: the backend's
    ``labels_in_range``) or a float target ``(N, C)``."""
    floats(kernel, logits=logits)
    if logits.ndim != 2 or logits.shape[1] < 1:
        _fail(kernel, "expected logits or probabilities of shape (N, C), C >= 1", logits=logits)
    _array(kernel, "target", target)
    if target.ndim == 2:
        same_shape(kernel, logits=logits, target=target)
        return
    if target.dtype != _INDEX or target.shape != logits.shape[:1]:
        _fail(kernel, "expected int64 labels (N,) or a float target (N, C)",
              logits=logits, target=target)
    indices(kernel, "target", target, logits.shape[1], in_range)


def conv1d(kernel, x, W, b, stride, padding_left, padding_right, dilation):
    """``x (N, C_in, L)``, ``W (C_out, C_in, K)``, ``b (C_out,)`` and sizes in range; returns
    ``L_out``, which must be at least 1."""
    floats(kernel, x=x, W=W, b=b)
    if x.ndim != 3 or W.ndim != 3 or x.shape[1] != W.shape[1] or b.shape != (W.shape[0],) \
            or W.shape[2] < 1:
        _fail(kernel, "expected x (N, C_in, L), W (C_out, C_in, K) and b (C_out,)",
              x=x, W=W, b=b)
    sizes(kernel, 1, stride=stride, dilation=dilation)
    sizes(kernel, 0, padding_left=padding_left, padding_right=padding_right)
    L_out = conv1d_output_length(x.shape[2], W.shape[2], stride, padding_left, padding_right,
                                 dilation)
    if L_out < 1:
        _fail(kernel, f"the padded input is shorter than the dilated kernel (output length "
                      f"{L_out})", x=x, W=W)
    return L_out


def _pool_sizes(kernel, L, kernel_size, stride, padding, **arrays):
    sizes(kernel, 1, kernel_size=kernel_size, stride=stride)
    sizes(kernel, 0, padding=padding)
    if 2 * padding > kernel_size or L + 2 * padding < kernel_size:
        _fail(kernel, f"expected padding <= kernel_size // 2 and L + 2*padding >= kernel_size "
                      f"(kernel_size={kernel_size}, padding={padding}, L={L})", **arrays)
    return pool_output_length(L, kernel_size, stride, padding)


def pool(kernel, x, kernel_size, stride, padding):
    """``x (N, C, L)``; ``kernel_size``, ``stride`` >= 1, ``0 <= padding <= kernel_size // 2``,
    and at least one window."""
    floats(kernel, x=x)
    if x.ndim != 3 or x.shape[2] < 1:
        _fail(kernel, "expected x (N, C, L) with L >= 1", x=x)
    _pool_sizes(kernel, x.shape[2], kernel_size, stride, padding, x=x)


def avgpool_backward(kernel, dout, length, kernel_size, stride, padding):
    """``dout (N, C, L_out)`` for an input of ``length`` pooled as the arguments say."""
    floats(kernel, dout=dout)
    sizes(kernel, 1, length=length)
    L_out = _pool_sizes(kernel, length, kernel_size, stride, padding, dout=dout)
    if dout.ndim != 3 or dout.shape[2] != L_out:
        _fail(kernel, f"expected dout (N, C, {L_out}), the pooled length", dout=dout)


def argmax(kernel, dout, argmax, length):
    """``dout (N, C, L_out)`` and int64 arg-max indices of its shape, for an input of
    ``length`` (that each index lies in ``[0, length)`` is :func:`indices`' check)."""
    floats(kernel, dout=dout)
    sizes(kernel, 1, length=length)
    _array(kernel, "argmax", argmax)
    if dout.ndim != 3 or argmax.dtype != _INDEX or argmax.shape != dout.shape:
        _fail(kernel, "expected dout (N, C, L_out) and int64 argmax of its shape",
              dout=dout, argmax=argmax)


def indices(kernel, name, index, bound, in_range):
    """Every int64 in ``index`` in ``[0, bound)`` (``in_range``: the backend's
    ``labels_in_range``), else a ValueError naming ``name``."""
    if not in_range(index.reshape(-1), bound):
        raise ValueError(f"{kernel}: {name} holds an index outside [0, {bound}) (min "
                         f"{index.min()}, max {index.max()})")


def flag(kernel, name, value):
    """True or False (NumPy's too), or the integers 0 and 1: a kernel may pass ``int(value)``
    on (0.5 skipped a gradient that ``bool`` had allocated, which went back unwritten)."""
    if not (isinstance(value, (bool, np.bool_)) or (isinstance(value, int) and value in (0, 1))):
        raise TypeError(f"{kernel}: {name}={_shown(value)}; expected True or False")


def activation(kernel, name):
    if name not in DENSE_ACTIVATIONS:
        raise ValueError(f"{kernel}: activation={name!r}; expected one of {DENSE_ACTIVATIONS}")


def _labels_array(kernel, labels):
    _array(kernel, "labels", labels)
    if labels.dtype != _INDEX or labels.ndim != 1:
        _fail(kernel, "expected int64 labels (N,)", labels=labels)


def _scalar(kernel, name, value, dtype=None):
    """A finite real number (within ``dtype``'s range when given), as ``fastnet.functional``
    requires of a loss gradient and of the updates' hyper-parameters."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float)):
        raise TypeError(f"{kernel}: {name} must be a real number; got {_describe(value)}")
    if isinstance(value, int) and not -2**63 <= value < 2**63:
        raise ValueError(f"{kernel}: {name} is an integer beyond int64, which a compiled kernel "
                         f"cannot take; pass a float")
    limit = float(np.finfo(dtype).max) if dtype is not None else float("inf")
    try:
        finite = abs(float(value)) <= limit
    except OverflowError:                    # an int beyond float's range
        finite = False
    if not finite:
        raise ValueError(f"{kernel}: {name}={_describe(value)}; expected a finite number"
                         + (f" within {np.dtype(dtype)}'s range" if dtype is not None else ""))


def guarded(trusted):
    """The contract's functions for a backend's public names: each checks its arguments as above,
    then calls the kernel of the same name in ``trusted`` (a namespace of the backend's own
    functions, which ``fastnet.functional`` calls after its full checks)."""
    def unary(k, x):
        floats(k, x=x)
        if x.ndim == 0:
            _fail(k, "expected an array of at least one dimension", x=x)

    def binary(k, dout, a):
        same_shape(k, dout=dout, a=a)
        unary(k, a)

    def dense_forward(k, x, W, b, act):
        floats(k, b=b)                       # required here; dense() takes None as "no bias"
        dense(k, x, W, b)
        activation(k, act)

    def dense_backward(k, dout, x, W, y, act, need_dx):
        dense(k, x, W, dout=dout, y=y)
        activation(k, act)
        flag(k, "need_dx", need_dx)

    def dense_backward_adagrad_(k, W, h, dout, x, y, act, need_dx, lr, eps):
        dense_backward(k, dout, x, W, y, act, need_dx)
        in_place(k, W=W, h=h)
        read_apart(k, W, h, dout=dout, x=x, y=y)       # read while W and h change
        hyper(k, lr=lr, eps=eps)

    def read_apart(k, W, h, **read):
        for name, a in read.items():
            for target, b in (("W", W), ("h", h)):
                if np.may_share_memory(a, b):
                    _fail(k, f"{name} and {target} share memory", **{name: a, target: b})

    def dense_backward_adagrad_ahead_(k, W, h, dout, x, y, act, need_dx, lr, eps, x_next):
        dense_backward_adagrad_(k, W, h, dout, x, y, act, need_dx, lr, eps)
        floats(k, W=W, x_next=x_next)
        if x_next.ndim != 2 or x_next.shape[1] != W.shape[0]:
            _fail(k, "expected x_next (N, n_in), as x", x=x, W=W, x_next=x_next)
        read_apart(k, W, h, x_next=x_next)             # read after W and h change

    def dense_bias_act_(k, xw, b, act):
        floats(k, xw=xw, b=b)
        if xw.ndim != 2 or b.shape != (xw.shape[1],):
            _fail(k, "expected xw (N, n_out) and b (n_out,)", xw=xw, b=b)
        in_place(k, xw=xw)
        if np.may_share_memory(xw, b):
            _fail(k, "xw and b share memory", xw=xw, b=b)
        activation(k, act)

    def softmax_forward(k, x):
        floats(k, x=x)
        if x.ndim != 2 or x.shape[1] < 1:
            _fail(k, "expected x (N, C), C >= 1", x=x)

    def softmax_backward(k, dout, y):
        same_shape(k, dout=dout, y=y)
        softmax_forward(k, y)

    def softmax_cross_entropy_forward(k, logits, target):
        labels(k, logits, target, trusted.labels_in_range)
        if logits.shape[0] == 0:          # the loss is a mean over the rows (NaN of none)
            _fail(k, "a mean over no samples", logits=logits)

    def softmax_cross_entropy_backward(k, dloss, probs, target):
        labels(k, probs, target, trusted.labels_in_range)      # no rows: no gradient, (0, C)
        _scalar(k, "dloss", dloss, probs.dtype)

    def elementwise_loss(k, y, t):
        same_shape(k, y=y, t=t)
        if y.size == 0:
            _fail(k, "a mean over no elements", y=y)

    def elementwise_loss_backward(k, dloss, y, t):
        elementwise_loss(k, y, t)
        _scalar(k, "dloss", dloss, y.dtype)

    def labels_in_range(k, labels, n_classes):
        _labels_array(k, labels)
        sizes(k, 1, n_classes=n_classes)

    def all_finite(k, a):
        floats(k, a=a)
        if a.ndim != 1:
            _fail(k, "expected a 1-D array", a=a)

    def hyper(k, **values):
        for name, value in values.items():
            _scalar(k, name, value)

    def sgd_update_(k, param, grad, lr):
        in_place(k, param=param, grad=grad)
        hyper(k, lr=lr)

    def momentum_update_(k, param, grad, velocity, lr, momentum, nesterov):
        in_place(k, param=param, grad=grad, velocity=velocity)
        hyper(k, lr=lr, momentum=momentum)
        flag(k, "nesterov", nesterov)

    def adagrad_update_(k, param, grad, h, lr, eps):
        in_place(k, param=param, grad=grad, h=h)
        hyper(k, lr=lr, eps=eps)

    def rmsprop_update_(k, param, grad, h, lr, rho, eps):
        in_place(k, param=param, grad=grad, h=h)
        hyper(k, lr=lr, rho=rho, eps=eps)

    def adam_update_(k, param, grad, m, v, lr, beta1, beta2, eps, step):
        in_place(k, param=param, grad=grad, m=m, v=v)
        hyper(k, lr=lr, eps=eps)
        sizes(k, 1, 2**53, step=step)       # bias correction divides by 1 - beta**step
        hyper(k, beta1=beta1, beta2=beta2)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= beta < 1:
                raise ValueError(f"{k}: {name}={beta!r}; expected a number in [0, 1)")

    def conv1d_forward(k, x, W, b, stride, padding_left, padding_right, dilation, act):
        conv1d(k, x, W, b, stride, padding_left, padding_right, dilation)
        activation(k, act)

    def conv1d_backward(k, dout, x, W, y, act, stride, padding_left, padding_right, dilation,
                        need_dx):
        floats(k, dout=dout, x=x, W=W, y=y)
        if W.ndim != 3:
            _fail(k, "expected W (C_out, C_in, K)", W=W)
        bias = np.empty(W.shape[0], W.dtype)          # the forward's, for the shape checks
        L_out = conv1d(k, x, W, bias, stride, padding_left, padding_right, dilation)
        if dout.shape != (x.shape[0], W.shape[0], L_out) or y.shape != dout.shape:
            _fail(k, f"dout and y must be (N, C_out, L_out) = ({x.shape[0]}, {W.shape[0]}, "
                     f"{L_out})", x=x, W=W, dout=dout, y=y)
        activation(k, act)
        flag(k, "need_dx", need_dx)

    def maxpool1d_forward(k, x, kernel_size, stride, padding):
        pool(k, x, kernel_size, stride, padding)

    def maxpool1d_backward(k, dout, argmax_, length):
        argmax(k, dout, argmax_, length)
        indices(k, "argmax", argmax_, length, trusted.labels_in_range)

    def avgpool1d_backward(k, dout, length, kernel_size, stride, padding):
        avgpool_backward(k, dout, length, kernel_size, stride, padding)

    def run_side_by_side(k, tasks, size, costs):
        pass                                 # plain Python: nothing a loop could overrun

    checks = {"relu_forward": unary, "sigmoid_forward": unary, "tanh_forward": unary,
              "relu_backward": binary, "sigmoid_backward": binary, "tanh_backward": binary,
              "mse_forward": elementwise_loss, "bce_forward": elementwise_loss,
              "mse_backward": elementwise_loss_backward,
              "bce_backward": elementwise_loss_backward, "all_in_unit_interval": all_finite,
              "avgpool1d_forward": maxpool1d_forward}
    for check in (dense_forward, dense_bias_act_, dense_backward, dense_backward_adagrad_,
                  dense_backward_adagrad_ahead_, softmax_forward,
                  softmax_backward, softmax_cross_entropy_forward, softmax_cross_entropy_backward,
                  labels_in_range, all_finite, sgd_update_, momentum_update_, adagrad_update_,
                  rmsprop_update_, adam_update_, conv1d_forward, conv1d_backward,
                  maxpool1d_forward, maxpool1d_backward, avgpool1d_backward, run_side_by_side):
        checks[check.__name__] = check
    return {name: _wrap(trusted, name, check) for name, check in checks.items()}


def _plain_number(a):
    """A NumPy integer or float as a Python int or float (a ``np.timedelta64``, which NumPy
    counts as an integer, stays one: the checks refuse it)."""
    if isinstance(a, np.integer) and not isinstance(a, np.timedelta64):
        return int(a)
    return float(a) if isinstance(a, np.floating) else a


def _shown(value):
    """``repr(value)``, cut to 60 characters (an integer of 400 digits as a flag)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrap(trusted, name, check):
    kernel = getattr(trusted, name)
    signature = inspect.signature(kernel)

    @functools.wraps(kernel)
    def checked(*args, **kwargs):
        args = signature.bind(*args, **kwargs).args     # a wrong count: the kernel's TypeError
        # NumPy integers as Python ints, for the checks and the kernel alike: sizes computed in
        # an int32 (``np.int32(2**31 - 1)`` as dilation) wrapped past the output-length check.
        # NumPy floats as Python floats likewise (a float16 dloss was NotImplemented in Numba).
        args = tuple(map(_plain_number, args))
        check(name, *args)
        return kernel(*args)
    # Found by pickle under the public name (wraps copied the kernel's own).
    checked.__module__, checked.__qualname__ = trusted.__name__, name
    return checked
