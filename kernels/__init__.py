"""The kernel contract: the raw compute fastnet runs on, in two peer implementations.

Installed as ``fastnet.kernels`` (the folder is ``kernels/`` at the repository top).

A backend is a module that exports every name in :data:`CONTRACT` with the same positional
signature and the same semantics. ``fastnet.functional`` checks shapes, dtypes, contiguity and
ranges, with messages for users, before calling a backend's ``trusted`` kernels. Every array a
kernel receives is C-contiguous, floating arrays share one dtype (float32 or float64), and
integer labels are int64. A backend's public functions are the same kernels behind the cheap
guards of ``_guards.py``, which hold direct callers to those promises.

Naming: ``<op>_forward`` / ``<op>_backward``; functions ending in ``_`` update their first
arguments in place and return ``None`` (but ``dense_backward_adagrad_`` and
``dense_backward_adagrad_ahead_``, which return the gradients they do not spend on the update).
A backward with ``need_dx=False`` returns ``None`` for ``dx`` and skips its work (a network's
first layer: nothing needs the input's gradient).

Backends
--------
``"numpy"``  vectorised NumPy, the reference and the yardstick (``numpy_backend/``).
``"numba"``  Numba-compiled, the product (``numba_backend/``, the only place that imports numba).
"""
import importlib

BACKENDS = ("numba", "numpy")

#: Activations that the dense and conv1d kernels can fuse.
DENSE_ACTIVATIONS = ("none", "relu", "sigmoid", "tanh")

CONTRACT = (
    # dense.py
    "dense_forward",          # (x, W, b, activation) -> y
    "dense_bias_act_",        # (xw, b, activation)       xw = act(xw + b): dense_forward after
                              #  its product, bit for bit
    "dense_backward",         # (dout, x, W, y, activation, need_dx) -> (dx, dW, db)
    "dense_backward_adagrad_",  # (W, h, dout, x, y, activation, need_dx, lr, eps) -> (dx, db)
                              #  dense_backward, then adagrad_update_(W, dW, h, lr, eps), bit
                              #  for bit, without returning dW; dx from W as it was
    "dense_backward_adagrad_ahead_",  # (W, h, dout, x, y, activation, need_dx, lr, eps,
                              #  x_next) -> (dx, db, xw)  dense_backward_adagrad_, then the
                              #  product x_next @ W (updated) that dense_forward computes, bit
                              #  for bit: a training step's next forward, while W is in cache
    # activations.py
    "relu_forward",           # (x) -> y
    "relu_backward",          # (dout, x) -> dx            gradient at x == 0 is 0
    "sigmoid_forward",        # (x) -> y
    "sigmoid_backward",       # (dout, y) -> dx            uses the forward output
    "tanh_forward",           # (x) -> y
    "tanh_backward",          # (dout, y) -> dx            uses the forward output
    "softmax_forward",        # (x) -> y                   row-wise over axis 1 of (N, C)
    "softmax_backward",       # (dout, y) -> dx
    # losses.py
    "softmax_cross_entropy_forward",   # (logits, target) -> (loss, probs)
    "softmax_cross_entropy_backward",  # (dloss, probs, target) -> dlogits (rows: probs*sum(t)-t)
    "mse_forward",            # (y, t) -> loss             mean over all elements
    "mse_backward",           # (dloss, y, t) -> dy
    "bce_forward",            # (p, t) -> loss             mean over all elements
    "bce_backward",           # (dloss, p, t) -> dp
    # checks.py
    "labels_in_range",        # (labels, n_classes) -> bool  every int64 label in [0, n_classes)
    "all_finite",             # (a) -> bool                every value of a 1-D float array finite
    "all_in_unit_interval",   # (a) -> bool                no value of a 1-D float array below 0
                              #                            or above 1 (NaN passes)
    # optimizers.py
    "sgd_update_",            # (param, grad, lr)
    "momentum_update_",       # (param, grad, velocity, lr, momentum, nesterov)
    "adagrad_update_",        # (param, grad, h, lr, eps)
    "rmsprop_update_",        # (param, grad, h, lr, rho, eps)
    "adam_update_",           # (param, grad, m, v, lr, beta1, beta2, eps, step)
    # conv1d.py
    "conv1d_forward",         # (x, W, b, stride, padding_left, padding_right, dilation,
                              #  activation) -> y
    "conv1d_backward",        # (dout, x, W, y, activation, stride, padding_left, padding_right,
                              #  dilation, need_dx) -> (dx, dW, db)
    # pooling.py
    "maxpool1d_forward",      # (x, kernel_size, stride, padding) -> (y, argmax)
    "maxpool1d_backward",     # (dout, argmax, length) -> dx
    "avgpool1d_forward",      # (x, kernel_size, stride, padding) -> y
    "avgpool1d_backward",     # (dout, length, kernel_size, stride, padding) -> dx
    # scheduling.py
    "run_side_by_side",       # (tasks, size, costs) -> [task() for task in tasks]
                              #  independent callables sharing `size` input elements; the numba
                              #  backend runs them on separate threads where that pays, balanced
                              #  by the tasks' expected `costs`
)


def load(name):
    """Import and return the backend module called ``name`` (one of :data:`BACKENDS`).

    Raises
    ------
    ValueError
        ``name`` is not one of :data:`BACKENDS`.
    ImportError
        The backend's own dependencies are missing; the original error is chained.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    return importlib.import_module(f".{name}_backend", __name__)


def conv1d_output_length(L, K, stride, padding_left, padding_right, dilation):
    """``L_out`` of a 1-D convolution, for the backends (``fastnet.functional`` checks the
    arguments and that the result is at least 1)."""
    return (L + padding_left + padding_right - dilation * (K - 1) - 1) // stride + 1


def pool_output_length(L, kernel_size, stride, padding):
    """``L_out`` of a 1-D pooling (floor mode), for the backends."""
    return (L + 2 * padding - kernel_size) // stride + 1
