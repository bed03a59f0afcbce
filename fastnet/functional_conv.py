"""Validated functional API for 1-D convolution and pooling (re-exported by ``fastnet.functional``).

Every argument is checked here, before a kernel runs: the Numba kernels do not check bounds, so
an output length below 1, a channel mismatch or an out-of-range pooling index must never reach
them. Arrays must be float32 or float64 and share one dtype (nothing is cast behind the user's
back); plain Python lists and numbers have no dtype and take the dtype of the array arguments
(the default dtype when there are none). Non-contiguous arrays are copied once to C order.

Conventions
-----------
* ``conv1d`` is a cross-correlation, as PyTorch's: ``y[n, o, l] = b[o] +
  sum_{c,k} W[o, c, k] * xpad[n, c, l*stride + k*dilation]``.
* ``padding``: an int (both sides), a ``(left, right)`` pair, ``"valid"`` (no padding) or
  ``"same"`` (output length = input length; stride 1 only — with stride > 1 it is rejected, as in
  PyTorch; total padding ``dilation*(K-1)`` split ``left = total // 2``, ``right = total - left``,
  the extra element on the right when the total is odd, as PyTorch).
* Zero padding takes part in the products, as if the input were padded explicitly: an inf or NaN
  weight on a tap that reads padding gives NaN there (``0 * inf``), and so does an inf or NaN
  ``dout`` at such a position in ``dW``. PyTorch gives this with explicitly padded input
  (``torch.nn.functional.pad``); its CPU convolution's own ``padding=`` skips the padded taps
  (a finite value there). Both backends and both conv strategies here agree.
* Ranks: ``x (N, C_in, L)`` batched, ``x (C_in, L)`` one sample, or ``x (L,)`` one sample with one
  channel together with ``W (K,)`` and a scalar or ``(1,)`` bias; outputs and gradients come back
  with the matching rank.
* Max pooling: padding is ``-inf``; ties go to the first (lowest) index; NaN propagates (a
  window's last NaN is its arg-max, as in PyTorch).
  Average pooling counts the zero padding in the divisor (PyTorch's ``count_include_pad=True``).
  For both, ``padding <= kernel_size // 2`` (PyTorch's rule: every window holds a real element).
"""
import numpy as np

from . import _checks as check
from .backend import kernels
# The formulas the backends share; this module checks their arguments and results.
from .kernels import conv1d_output_length as _conv1d_L_out, pool_output_length as _pool_L_out


# --- argument helpers ----------------------------------------------------------------------------

def _padding(op, padding, kernel_size, stride, dilation):
    """``padding`` as a ``(left, right)`` pair of non-negative ints."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            if stride != 1:
                raise ValueError(
                    f"{op}: padding='same' needs stride=1 (got stride={stride}); with a larger "
                    f"stride the output cannot have the input's length — give the padding as an "
                    f"int or a (left, right) pair instead")
            total = dilation * (kernel_size - 1)
            return total // 2, total - total // 2
        raise ValueError(f"{op}: padding={padding!r}; expected an int, a (left, right) pair, "
                         f"'valid' or 'same'")
    if isinstance(padding, np.ndarray) and padding.ndim == 1:
        padding = list(padding)                   # a (left, right) pair as an array
    if isinstance(padding, (tuple, list)):
        if len(padding) != 2:
            raise ValueError(f"{op}: padding={padding!r}; a sequence must be a (left, right) pair")
        return (check.size(op, "padding[0] (left)", padding[0], low=0),
                check.size(op, "padding[1] (right)", padding[1], low=0))
    p = check.size(op, "padding", padding, low=0)
    return p, p


def _describe_padding(pl, pr):
    return f"padding={pl}" if pl == pr else f"padding=({pl}, {pr})"


def _conv_length(op, L, K, stride, pl, pr, dilation, empty=False):
    L_out = _conv1d_L_out(L, K, stride, pl, pr, dilation)
    if L_out < 1:
        need = ("L + 2*padding" if pl == pr else "L + padding_left + padding_right")
        raise ValueError(
            f"{op}: {_describe_padding(pl, pr)}, stride={stride}, kernel_size={K}, "
            f"dilation={dilation} give output length {L_out} for input length {L}; need "
            f"{need} >= dilation*(kernel_size-1)+1 (output length = (L + {need[4:]} - "
            f"dilation*(kernel_size-1) - 1) // stride + 1)")
    _length_fits(op, L_out, empty, lambda: f"{_describe_padding(pl, pr)}, stride={stride}, "
                                    f"kernel_size={K}, dilation={dilation}")
    return L_out


def _length_fits(op, L_out, empty, settings):
    """Refuse an output length beyond ``MAX_SIZE``, the bound of every size the kernels take
    (a huge padding, each size within it, gave 2**31 + 1 values and 17 GB of memory). An empty
    batch has nothing to compute at any length."""
    if L_out > check.MAX_SIZE and not empty:
        raise ValueError(f"{op}: {settings()} give output length {L_out} for this input; "
                         f"the largest is 2**31 - 1 = {check.MAX_SIZE}")


def _hyper(op, kernel_size, stride, padding, dilation):
    stride = check.size(op, "stride", stride, low=1)
    dilation = check.size(op, "dilation", dilation, low=1)
    pl, pr = _padding(op, padding, kernel_size, stride, dilation)
    return stride, pl, pr, dilation


def conv1d_output_length(L, K, stride=1, padding=0, dilation=1):
    """Output length of :func:`conv1d`: ``(L + pl + pr - dilation*(K-1) - 1) // stride + 1``.

    Parameters
    ----------
    L, K : int >= 1
        Input length and kernel size.
    stride, dilation : int >= 1
    padding : int, (left, right), "valid" or "same"
        As in :func:`conv1d` (``"same"`` only with ``stride=1``).

    Returns
    -------
    L_out : int >= 1

    Raises
    ------
    ValueError
        A negative or zero size, stride < 1, dilation < 1, negative padding, an unknown padding
        string or a sequence that is not a pair, ``"same"`` with stride > 1, or a result < 1
        (the message shows the formula and the values).
    TypeError
        A non-integer size or hyper-parameter (bool and float included).
    """
    op = "conv1d_output_length"
    L = check.size(op, "L", L, low=1)
    K = check.size(op, "K", K, low=1)
    stride, pl, pr, dilation = _hyper(op, K, stride, padding, dilation)
    return _conv_length(op, L, K, stride, pl, pr, dilation)


def _conv_operands(op, x, W):
    """``x`` and ``W`` as ``(N, C_in, L)`` and ``(C_out, C_in, K)``; the rank of ``x`` (1, 2, 3)."""
    check.ndim(op, "x", x, 1, 2, 3)
    check.ndim(op, "W", W, 1, 3)
    if (x.ndim == 1) != (W.ndim == 1):
        raise ValueError(
            f"{op}: x has shape {x.shape} and W has shape {W.shape}; a 1-D x (one channel, "
            f"length L) goes with a 1-D W (K,), otherwise W must be (C_out, C_in, K) with x "
            f"(C_in, L) or (N, C_in, L)")
    rank = x.ndim
    if rank == 1:
        x3, W3 = x.reshape(1, 1, -1), W.reshape(1, 1, -1)
    else:
        x3 = x.reshape((1,) + x.shape) if rank == 2 else x
        W3 = W
    if x3.shape[1] != W3.shape[1]:
        raise ValueError(
            f"{op}: x has shape {x.shape} with {x3.shape[1]} input channels but W has shape "
            f"{W.shape} with {W3.shape[1]}; W must be (C_out, C_in, K) with C_in = "
            f"{x3.shape[1]}")
    if 0 in x3.shape[1:] or W3.shape[0] == 0 or W3.shape[2] == 0:
        raise ValueError(f"{op}: x has shape {x.shape} and W has shape {W.shape}; every "
                         f"dimension but the batch must be at least 1")
    return x3, W3, rank


def _bias(op, b, C_out, dtype):
    if b is None:
        return np.zeros(C_out, dtype=dtype)
    b = check.float_array(op, "b", b, dtype)
    if b.shape == () and C_out == 1:
        return b.reshape(1)
    if b.shape != (C_out,):
        raise ValueError(f"{op}: b has shape {b.shape}; expected ({C_out},), one bias per "
                         f"output channel of W" + (" (or a scalar)" if C_out == 1 else ""))
    return b


def _unbatch(a, rank):
    """Drop the batch (and, for rank 1, channel) axes added by :func:`_conv_operands`."""
    if rank == 3:
        return a
    if rank == 2:
        return a[0]
    return a[0, 0]


# --- convolution ---------------------------------------------------------------------------------

def conv1d(x, W, b=None, stride=1, padding=0, dilation=1, activation=None):
    """1-D convolution (cross-correlation, as PyTorch's ``conv1d``), optionally activated.

    ``y[n, o, l] = act(b[o] + sum_{c, k} W[o, c, k] * xpad[n, c, l*stride + k*dilation])``
    where ``xpad`` is ``x`` with ``padding_left`` zeros before and ``padding_right`` after.

    Parameters
    ----------
    x : ndarray, float32 or float64
        ``(N, C_in, L)``, one sample ``(C_in, L)``, or one single-channel sample ``(L,)``.
    W : ndarray
        ``(C_out, C_in, K)``; ``(K,)`` when ``x`` is 1-D. Same dtype as ``x``.
    b : ndarray, optional
        ``(C_out,)``; a scalar or ``(1,)`` when ``C_out == 1``. Zeros when omitted.
    stride, dilation : int >= 1
    padding : int, (left, right), "valid" or "same"
        Zero padding; ``"same"`` only with ``stride=1`` (see the module docstring).
    activation : {None, "relu", "sigmoid", "tanh"}
        Applied in the same pass that writes ``y`` (no separate activation pass).

    Returns
    -------
    y : ndarray ``(N, C_out, L_out)``, ``(C_out, L_out)`` or ``(L_out,)``, matching ``x``.

    Shape
    -----
    ``L_out = (L + padding_left + padding_right - dilation*(K-1) - 1) // stride + 1``, which must
    be at least 1. ``N`` may be 0 (an empty batch, as PyTorch allows); every other size is at
    least 1.

    Raises
    ------
    TypeError
        Non-float or mismatched dtypes; non-integer (bool, float) stride, padding or dilation.
    ValueError
        Wrong ranks, channel mismatch, wrong bias length, stride < 1, dilation < 1, negative
        padding, ``"same"`` with stride > 1, or an output length < 1.

    Examples
    --------
    >>> conv1d([1., 2, 3, 4], [3., 5, 7], [1.])
    array([35., 50.], dtype=float32)
    """
    op = "conv1d"
    act = check.activation(op, activation)
    if b is None:
        x, W = check.float_arrays(op, x=x, W=W)
    else:
        x, W, b = check.float_arrays(op, x=x, W=W, b=b)
    x3, W3, rank = _conv_operands(op, x, W)
    b = _bias(op, b, W3.shape[0], x.dtype)
    K = W3.shape[2]
    stride, pl, pr, dilation = _hyper(op, K, stride, padding, dilation)
    L_out = _conv_length(op, x3.shape[2], K, stride, pl, pr, dilation, x3.shape[0] == 0)
    check.memory_for_output(op, (x3.shape[0], W3.shape[0], L_out), x.dtype,
                            lambda: f"from input length {x3.shape[2]} with "
                                    f"{_describe_padding(pl, pr)}, stride={stride}")
    if len(x3) == 0:                       # an empty batch, as PyTorch allows
        return np.zeros((0, W3.shape[0], L_out), x.dtype)
    y = kernels().conv1d_forward(x3, W3, b, stride, pl, pr, dilation, act)
    return _unbatch(y, rank)


def conv1d_backward(dout, x, W, stride=1, padding=0, dilation=1, need_dx=True, y=None,
                    activation=None):
    """Gradients of :func:`conv1d` with respect to ``x``, ``W`` and ``b``.

    The exact adjoint of the forward: input positions that no window reads (skipped by a stride
    larger than the window span) get ``dx = 0``, and gradients falling on the padding are
    dropped. ``db`` is always returned (a sum over ``dout``, negligible next to ``dx`` and
    ``dW``); ignore it when the convolution has no bias.

    Parameters
    ----------
    dout : ndarray
        Gradient of the loss with respect to the output, shaped as :func:`conv1d`'s result.
    x, W : ndarray
        The forward inputs (same dtype as ``dout``).
    stride, padding, dilation
        As given to :func:`conv1d`.
    need_dx : bool
        False skips the input gradient (``dx`` is then None): a network's first layer.
    y, activation
        With an activation, the forward output ``y`` (shaped as ``dout``) is required: the
        activation's derivative is computed from it.

    Returns
    -------
    dx : ndarray, shaped as ``x`` (None when ``need_dx`` is False)
    dW : ndarray, shaped as ``W``
    db : ndarray ``(C_out,)`` (``(1,)`` for 1-D ``x``)

    Raises
    ------
    TypeError, ValueError
        As :func:`conv1d`, and when ``dout`` does not have the forward output's shape.
    """
    op = "conv1d_backward"
    act = check.activation(op, activation)
    if act != "none" and y is None:
        raise ValueError(f"{op}: activation={activation!r} needs the forward output y")
    if y is None:
        dout, x, W = check.float_arrays(op, dout=dout, x=x, W=W)
    else:
        dout, x, W, y = check.float_arrays(op, dout=dout, x=x, W=W, y=y)
        check.same_shape(op, "y", y, "dout", dout)
    x3, W3, rank = _conv_operands(op, x, W)
    K = W3.shape[2]
    stride, pl, pr, dilation = _hyper(op, K, stride, padding, dilation)
    L_out = _conv_length(op, x3.shape[2], K, stride, pl, pr, dilation, x3.shape[0] == 0)
    # The forward output's shape, without the batch (and channel) axes _conv_operands added.
    # (Sliced from a stand-in array, it cost a MemoryError instead of this ValueError when a
    # huge padding made the output larger than memory.)
    expected = (x3.shape[0], W3.shape[0], L_out)[3 - rank:]
    if dout.shape != expected:
        raise ValueError(
            f"{op}: dout has shape {dout.shape}; expected {expected}, the output shape for x of "
            f"shape {x.shape}, W of shape {W.shape}, stride={stride}, "
            f"{_describe_padding(pl, pr)}, dilation={dilation}")
    d3 = dout.reshape(x3.shape[0], W3.shape[0], L_out)
    y3 = d3 if y is None else y.reshape(d3.shape)       # unused by the kernels without act
    need_dx = check.flag(op, "need_dx", need_dx)
    if len(x3) == 0:                       # an empty batch: zero gradients (the kernels' dW
        return ((np.zeros(x.shape, x.dtype) if need_dx else None),   # would be unwritten)
                np.zeros(W.shape, x.dtype), np.zeros(W3.shape[0], x.dtype))
    dx, dW, db = kernels().conv1d_backward(d3, x3, W3, y3, act, stride, pl, pr, dilation,
                                           need_dx)
    return (None if dx is None else _unbatch(dx, rank)), dW.reshape(W.shape), db


def _trusted_conv1d(x, W, b, stride, padding, dilation, activation):
    """:func:`conv1d` of a ``Conv1d`` layer in fit's trusted passes (``fastnet._trusted``),
    without the checks: a batch ``(N, C_in, L)``, ``activation`` the kernels' name for it, and
    arguments that passed the checks in the step before."""
    pl, pr = _padding("conv1d", padding, W.shape[2], stride, dilation)
    return kernels().conv1d_forward(x, W, b, stride, pl, pr, dilation, activation)


def _trusted_conv1d_backward(dout, x, W, stride, padding, dilation, need_dx, y, activation):
    """:func:`conv1d_backward` in fit's trusted passes, without the checks (as above)."""
    pl, pr = _padding("conv1d_backward", padding, W.shape[2], stride, dilation)
    return kernels().conv1d_backward(dout, x, W, dout if y is None else y, activation, stride,
                                     pl, pr, dilation, need_dx)


# --- pooling -------------------------------------------------------------------------------------

def _pool_hyper(op, kernel_size, stride, padding):
    kernel_size, stride, padding = check.pool_window(op, kernel_size, stride, padding)
    return kernel_size, kernel_size if stride is None else stride, padding


def _pool_length(op, L, kernel_size, stride, padding, empty=False):
    L_out = _pool_L_out(L, kernel_size, stride, padding)
    if L_out < 1:
        raise ValueError(
            f"{op}: padding={padding}, stride={stride}, kernel_size={kernel_size} give output "
            f"length {L_out} for input length {L}; need L + 2*padding >= kernel_size "
            f"(output length = (L + 2*padding - kernel_size) // stride + 1)")
    _length_fits(op, L_out, empty, lambda: f"padding={padding}, stride={stride}, "
                                    f"kernel_size={kernel_size}")
    return L_out


def _pool_input(op, name, a):
    """``a`` (``(L,)``, ``(C, L)`` or ``(N, C, L)``) as ``(N, C, L)``."""
    check.ndim(op, name, a, 1, 2, 3)
    a3 = a.reshape((1,) * (3 - a.ndim) + a.shape)
    if 0 in a3.shape[1:]:           # an empty batch is allowed (the kernels loop over nothing)
        raise ValueError(f"{op}: {name} has shape {a.shape}; every dimension but the batch must "
                         f"be at least 1")
    return a3


def _pool_grad_fits(op, dout3, length):
    """Refuse a pooling gradient ``(N, C, length)`` beyond the memory: ``length`` is the
    caller's word, and a small ``dout`` with ``length=5 * 10**9`` asked for 20 GiB."""
    check.memory_for_output(op, dout3.shape[:2] + (length,), dout3.dtype,
                            lambda: f"from length={length} for dout of shape {dout3.shape}")


def _length(op, length):
    return check.size(op, "length", length, low=1)


def max_pool1d(x, kernel_size, stride=None, padding=0, return_indices=False):
    """Max over windows of ``kernel_size`` along the last axis.

    Parameters
    ----------
    x : ndarray ``(N, C, L)``, ``(C, L)`` or ``(L,)``, float32 or float64
    kernel_size : int >= 1
    stride : int >= 1, optional
        Defaults to ``kernel_size``.
    padding : int, 0 <= padding <= kernel_size // 2
        Implicit ``-inf`` on both sides (never chosen).
    return_indices : bool
        Also return the arg-max, int64 indices into ``L``, for :func:`max_pool1d_backward`.

    Returns
    -------
    y : ndarray, shaped as ``x`` with ``L`` replaced by ``L_out``; or ``(y, indices)``.

    Shape
    -----
    ``L_out = (L + 2*padding - kernel_size) // stride + 1``.

    Ties go to the first (lowest) index; a NaN in a window is its maximum (NaN propagates; the
    last NaN of the window is the arg-max, as in PyTorch).

    Raises
    ------
    TypeError
        ``x`` is not float32 or float64; a non-integer (bool, float) kernel_size, stride or
        padding; ``return_indices`` other than True, False, 0 or 1.
    ValueError
        ``x`` not 1-D to 3-D or with a size 0 other than the batch; kernel_size < 1,
        stride < 1, padding < 0 or above ``kernel_size // 2``, or an output length < 1.
    """
    op = "max_pool1d"
    x = check.float_array(op, "x", x)
    return_indices = check.flag(op, "return_indices", return_indices)
    x3 = _pool_input(op, "x", x)
    kernel_size, stride, padding = _pool_hyper(op, kernel_size, stride, padding)
    _pool_length(op, x3.shape[2], kernel_size, stride, padding, x3.shape[0] == 0)
    y, indices = kernels().maxpool1d_forward(x3, kernel_size, stride, padding)
    shape = x.shape[:-1] + (y.shape[2],)
    y = y.reshape(shape)
    return (y, indices.reshape(shape)) if return_indices else y


def max_pool1d_backward(dout, indices, length):
    """Gradient of :func:`max_pool1d`: each ``dout`` element goes to its window's arg-max.

    Parameters
    ----------
    dout : ndarray, shaped as the pooled output
    indices : integer ndarray, same shape: the ``indices`` returned by
        ``max_pool1d(..., return_indices=True)``
    length : int
        ``L``, the input length.

    Returns
    -------
    dx : ndarray, shaped as the input (``L`` = ``length``); overlapping windows accumulate.

    Shape
    -----
    ``dout`` and ``indices``: ``(N, C, L_out)``, ``(C, L_out)`` or ``(L_out,)``; ``dx``: the
    same with ``L_out`` replaced by ``length``.

    Raises
    ------
    TypeError
        ``indices`` not an integer ndarray (or masked); ``dout`` not float32 or float64;
        ``length`` not an integer.
    ValueError
        ``length < 1``; an index outside ``[0, length)``; ``dout`` not 1-D to 3-D, with a size 0
        other than the batch, or not of the shape of ``indices``.
    """
    op = "max_pool1d_backward"
    length = _length(op, length)
    if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu":
        got = (f"an ndarray of {indices.dtype}" if isinstance(indices, np.ndarray)
               else f"a NumPy {indices.dtype} scalar" if isinstance(indices, np.generic)
               else f"a {type(indices).__name__}")
        raise TypeError(f"{op}: indices must be an integer ndarray (from max_pool1d(..., "
                        f"return_indices=True)); got {got}")
    check.not_masked(op, "indices", indices)
    given, indices = indices, check.kernel_ready(indices, np.int64)
    # The backend's compiled range check (one pass: ~7 us at the CNN's 57k indices when they
    # are in cache, ~20 us from memory, against ~11 us / more for NumPy's min and max); the
    # kernel does not check bounds.
    if indices.size and not kernels().labels_in_range(indices.reshape(-1), length):
        raise ValueError(f"{op}: indices range over [{given.min()}, {given.max()}], outside "
                         f"[0, {length - 1}] for length={length}")
    return _max_pool1d_scatter(op, dout, indices, length)


def _max_pool1d_scatter(op, dout, indices, length):
    """:func:`max_pool1d_backward` once ``indices`` are known to be int64, C-contiguous and in
    ``[0, length)``: checked there, or returned by :func:`max_pool1d` itself for an input of
    length ``length`` (``MaxPool1d.backward`` keeps them from its forward and so skips the range
    check, ~20 us per call in training, where the indices have left the cache). ``dout`` is
    checked here, also against the shape of ``indices``."""
    dout = check.float_array(op, "dout", dout)
    dout3 = _pool_input(op, "dout", dout)
    check.same_shape(op, "indices", indices, "dout", dout)
    _pool_grad_fits(op, dout3, length)
    dx = kernels().maxpool1d_backward(dout3, indices.reshape(dout3.shape), length)
    return dx.reshape(dout.shape[:-1] + (length,))


def _trusted_max_pool1d(x, kernel_size, stride, padding):
    """``max_pool1d(x, ..., return_indices=True)`` of a ``MaxPool1d`` layer in fit's trusted
    passes (``fastnet._trusted``), without the checks: a batch ``(N, C, L)`` and a window that
    passed them in the step before."""
    return kernels().maxpool1d_forward(x, kernel_size, kernel_size if stride is None else stride,
                                       padding)


def _trusted_max_pool1d_scatter(op, dout, indices, length):
    """:func:`_max_pool1d_scatter` in fit's trusted passes: ``dout`` of the shape of
    ``indices``, from the layer after (``op`` is not used: nothing is checked)."""
    return kernels().maxpool1d_backward(dout, indices, length)


def avg_pool1d(x, kernel_size, stride=None, padding=0):
    """Mean over windows of ``kernel_size`` along the last axis:
    ``y[..., l] = sum_k xpad[..., l*stride + k] / kernel_size``.

    Zero padding counts in the divisor: every window divides by ``kernel_size`` (PyTorch's
    ``count_include_pad=True``).

    Parameters
    ----------
    x : ndarray ``(N, C, L)``, ``(C, L)`` or ``(L,)``, float32 or float64
    kernel_size : int >= 1
    stride : int >= 1, optional
        Defaults to ``kernel_size``.
    padding : int, 0 <= padding <= kernel_size // 2
        Implicit zeros on both sides.

    Returns
    -------
    y : ndarray, shaped as ``x`` with ``L`` replaced by ``L_out``, of its dtype.

    Shape
    -----
    ``L_out = (L + 2*padding - kernel_size) // stride + 1``, as :func:`max_pool1d`.

    Raises
    ------
    TypeError, ValueError
        As :func:`max_pool1d`.

    Examples
    --------
    >>> avg_pool1d([1., 2, 3, 4], 2)
    array([1.5, 3.5], dtype=float32)
    """
    op = "avg_pool1d"
    x = check.float_array(op, "x", x)
    x3 = _pool_input(op, "x", x)
    kernel_size, stride, padding = _pool_hyper(op, kernel_size, stride, padding)
    _pool_length(op, x3.shape[2], kernel_size, stride, padding, x3.shape[0] == 0)
    y = kernels().avgpool1d_forward(x3, kernel_size, stride, padding)
    return y.reshape(x.shape[:-1] + (y.shape[2],))


def avg_pool1d_backward(dout, length, kernel_size, stride=None, padding=0):
    """Gradient of :func:`avg_pool1d`: each ``dout / kernel_size`` spread over its window.

    Overlapping windows accumulate; the share that falls on the padding is dropped.

    Parameters
    ----------
    dout : ndarray, float32 or float64
        Gradient of the loss with respect to the output, shaped as :func:`avg_pool1d`'s result.
    length : int >= 1
        ``L``, the input length.
    kernel_size, stride, padding
        As given to :func:`avg_pool1d`.

    Returns
    -------
    dx : ndarray, shaped as ``dout`` with ``L_out`` replaced by ``length``, of its dtype.

    Shape
    -----
    ``dout``: ``(N, C, L_out)``, ``(C, L_out)`` or ``(L_out,)``, with ``L_out`` the output
    length for ``length`` (see :func:`max_pool1d`); ``dx``: the same with ``length`` for
    ``L_out``.

    Raises
    ------
    TypeError
        ``dout`` not float32 or float64; a non-integer (bool, float) length, kernel_size, stride
        or padding.
    ValueError
        As :func:`max_pool1d` (with ``dout`` for ``x`` and ``length`` for ``L``); ``length < 1``;
        ``dout``'s last size not ``L_out``.
    """
    op = "avg_pool1d_backward"
    dout = check.float_array(op, "dout", dout)
    dout3 = _pool_input(op, "dout", dout)
    length = _length(op, length)
    kernel_size, stride, padding = _pool_hyper(op, kernel_size, stride, padding)
    L_out = _pool_length(op, length, kernel_size, stride, padding, dout3.shape[0] == 0)
    if dout3.shape[2] != L_out:
        raise ValueError(f"{op}: dout has length {dout3.shape[2]} on its last axis; expected "
                         f"{L_out} for length={length}, kernel_size={kernel_size}, "
                         f"stride={stride}, padding={padding}")
    _pool_grad_fits(op, dout3, length)
    dx = kernels().avgpool1d_backward(dout3, length, kernel_size, stride, padding)
    return dx.reshape(dout.shape[:-1] + (length,))
