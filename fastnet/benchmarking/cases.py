"""Benchmark cases: one definition serves ``python -m fastnet bench`` and the pytest-benchmark
files in ``bench/``.

A :class:`Case` is one operation at one shape and dtype in one direction. ``case.make(member)``
returns a zero-argument callable for a member — ``"numpy"`` and ``"numba"`` (fastnet's backends;
the caller makes that backend current) or ``"torch"`` (PyTorch CPU, the outside yardstick) — and
``case.check(result, reference)`` compares a member's result with the NumPy baseline's.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import functional as F

MEMBERS = ("numpy", "numba", "torch")


class Unsupported(Exception):
    """The member cannot run this case (e.g. torch is not installed)."""


def torch_module():
    from .report import optional_torch
    torch = optional_torch()
    if torch is None:
        raise Unsupported("torch is not installed (or cannot be imported)")
    return torch


@dataclass
class Case:
    family: str          # activations, losses, optimizers, dense, conv1d, pooling, epoch
    op: str
    shape: str           # human-readable
    dtype: str
    direction: str       # forward, backward, update, epoch
    size: str            # small, mnist, large
    make: Callable       # member -> zero-argument callable
    check: Callable = None
    flops: int = 0
    note: str = ""
    info: dict = field(default_factory=dict)

    @property
    def name(self):
        return f"{self.op} {self.direction} {self.shape} {self.dtype}"


def _rng():
    return np.random.default_rng(0)


def to_numpy(a):
    return a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)


def require(condition, message):
    """A result check: ``AssertionError(message)`` unless ``condition``. Not an ``assert``
    statement, which ``python -O`` removes: the table would then show wrong results' timings
    (an audit's finding)."""
    if not condition:
        raise AssertionError(message)


def _allclose(tol, start=None, floor=None):
    """A check that each result array matches the reference's: of the same dtype, and to
    ``tol`` relative to the element plus ``floor`` (default ``tol``) relative to the largest
    reference element. (An absolute tolerance of its own would pass a wrong result whose values
    are all small, e.g. an all-zero gradient of 1024 x 1000 logits.) Element-wise results,
    whose elements carry their own relative error, take a ``floor`` well below ``tol``: at
    ``tol`` a float32 softmax of 1024 x 1000 went unchecked below 1e-4 of its largest value,
    three quarters of it (an audit's finding).

    With ``start`` (an in-place update's arrays before the update, one per result), the changes
    from ``start`` are compared instead: an update is small beside the parameter it changes, so
    comparing the parameters would pass an update that did nothing. Each element's own rounding
    (4 ulps of its start) is allowed on top.

    A PyTorch tensor where the reference returns several arrays (PyTorch's loss, without the
    probabilities that fastnet's forward also returns, for its backward) is compared with the
    first; fastnet's members return ndarrays, all of them, and all are compared (any one
    array was once compared with the first alone, so a member that dropped an output passed;
    an audit's finding)."""
    floor = tol if floor is None else floor

    def check(got, want):
        want = want if isinstance(want, (tuple, list)) else (want,)
        got = got if isinstance(got, (tuple, list)) else (got,)
        if len(got) == 1 and not isinstance(got[0], np.ndarray):
            want = want[:1]
        require(len(got) == len(want), f"{len(got)} results, the reference has {len(want)}")
        starts = (start,) if isinstance(start, np.ndarray) else start or (None,) * len(want)
        for g, w, s in zip(got, want, starts):
            g, w = to_numpy(g), to_numpy(w)
            require(g.dtype == w.dtype, f"result of dtype {g.dtype}, the reference's {w.dtype}")
            rounding = 0.0
            if s is not None and w.dtype.kind == "f":
                rounding = 4 * np.finfo(w.dtype).eps * np.abs(s)
            g, w = g.astype(np.float64), w.astype(np.float64)
            if s is not None:
                g, w = g - s, w - s
            scale = float(np.max(np.abs(w))) if w.size else 0.0
            # Equal (NaN included), or within rtol of the element, or within the floor.
            bad = ~(np.isclose(g, w, rtol=tol, atol=0, equal_nan=True)
                    | (np.abs(g - w) <= floor * scale + rounding))
            if bad.any():
                require(False, f"{int(bad.sum())} of {w.size} elements differ from the reference "
                               f"beyond rtol {tol:g} (+ {floor:g} of its largest, {scale:.3g}): "
                               f"the first at {np.unravel_index(np.argmax(bad), w.shape)}, "
                               f"{g[bad][0]!r} against {w[bad][0]!r}")
    return check


def _tol(dtype):
    return 1e-4 if dtype == np.float32 else 1e-9


def _elementwise_check(dtype):
    """The check of an element-wise result (activations, softmax, the loss's probabilities
    and gradient, pooling): each element to ``_tol`` of itself, with a floor of 1 % of that
    relative to the largest element (for the cancellation in, say, tanh's ``1 - y*y`` near
    1)."""
    return _allclose(_tol(dtype), floor=_tol(dtype) / 100)


# --- activations ---------------------------------------------------------------------------

#: The softmax's (rows, classes) for each size of the element-wise activations: the notebooks'
#: batches of 20 and 128 over MNIST's 10 classes, and ImageNet's 1000 classes.
SOFTMAX_SHAPES = {"small": (20, 10), "mnist": (128, 10), "large": (1024, 1000)}


def activation_cases(sizes=None, dtypes=(np.float32, np.float64)):
    """ReLU, sigmoid and tanh over ``sizes`` elements, then the row-wise softmax at the same
    sizes' :data:`SOFTMAX_SHAPES`."""
    sizes = sizes or {"small": 1_000, "mnist": 128 * 784, "large": 1_000_000}
    for op in ("relu", "sigmoid", "tanh"):
        for size, n in sizes.items():
            for dtype in dtypes:
                x = (_rng().standard_normal(n) * 3).astype(dtype)
                dout = _rng().standard_normal(n).astype(dtype)
                for direction in ("forward", "backward"):
                    yield Case("activations", op, f"({n},)", np.dtype(dtype).name, direction,
                               size, _activation_maker(op, direction, x, dout),
                               _elementwise_check(dtype))
    for size in sizes:
        shape = SOFTMAX_SHAPES[size]
        for dtype in dtypes:
            x = (_rng().standard_normal(shape) * 3).astype(dtype)
            dout = _rng().standard_normal(shape).astype(dtype)
            for direction in ("forward", "backward"):
                yield Case("activations", "softmax", str(shape), np.dtype(dtype).name, direction,
                           size, _softmax_maker(direction, x, dout), _elementwise_check(dtype))


def _activation_maker(op, direction, x, dout):
    def make(member):
        if direction == "forward":
            if member == "torch":
                torch = torch_module()
                t = torch.from_numpy(x)
                return lambda: getattr(torch, op)(t)
            f = getattr(F, op)
            return lambda: f(x)
        with _numpy_backend():
            saved = x if op == "relu" else getattr(F, op)(x)     # relu's backward uses its input
        if member == "torch":
            torch = torch_module()
            td, ts = torch.from_numpy(dout), torch.from_numpy(saved)
            aten = torch.ops.aten
            return {"relu": lambda: aten.threshold_backward(td, ts, 0),
                    "sigmoid": lambda: aten.sigmoid_backward(td, ts),
                    "tanh": lambda: aten.tanh_backward(td, ts)}[op]
        f = getattr(F, op + "_backward")
        return lambda: f(dout, saved)
    return make


def _softmax_maker(direction, x, dout):
    def make(member):
        if direction == "forward":
            if member == "torch":
                torch = torch_module()
                t = torch.from_numpy(x)
                return lambda: torch.softmax(t, 1)
            return lambda: F.softmax(x)
        with _numpy_backend():
            y = F.softmax(x)
        if member == "torch":
            torch = torch_module()
            td, ty = torch.from_numpy(dout), torch.from_numpy(y)
            return lambda: torch.ops.aten._softmax_backward_data(td, ty, 1, ty.dtype)
        return lambda: F.softmax_backward(dout, y)
    return make


def _numpy_backend():
    from ..backend import set_backend
    return set_backend("numpy")


# --- losses ----------------------------------------------------------------------------------

def _loss_size(N, C):
    return "large" if N * C >= 100_000 else "small" if N < 128 else "mnist"


def loss_cases(shapes=((20, 10), (128, 10), (1024, 1000)), dtypes=(np.float32, np.float64)):
    """Softmax cross-entropy with index labels, then binary cross-entropy (sigmoid outputs
    against 0/1 targets) and the mean squared error, at the same shapes."""
    for N, C in shapes:
        size = _loss_size(N, C)
        for dtype in dtypes:
            logits = (_rng().standard_normal((N, C)) * 3).astype(dtype)
            labels = _rng().integers(0, C, N)
            for direction in ("forward", "backward"):
                yield Case("losses", "softmax_cross_entropy", f"({N}, {C})",
                           np.dtype(dtype).name, direction, size,
                           _sce_maker(direction, logits, labels), _elementwise_check(dtype))
    for op in ("binary_cross_entropy", "mse"):
        for N, C in shapes:
            size = _loss_size(N, C)
            for dtype in dtypes:
                z = _rng().standard_normal((N, C)) * 3
                if op == "mse":
                    y, t = z.astype(dtype), _rng().standard_normal((N, C)).astype(dtype)
                else:
                    y = (1 / (1 + np.exp(-z))).astype(dtype)
                    t = (_rng().random((N, C)) < 0.5).astype(dtype)
                for direction in ("forward", "backward"):
                    yield Case("losses", op, f"({N}, {C})", np.dtype(dtype).name, direction,
                               size, _pointwise_loss_maker(op, direction, y, t),
                               _elementwise_check(dtype))


def _pointwise_loss_maker(op, direction, y, t):
    """``op`` (``binary_cross_entropy`` or ``mse``, both means over all elements) of ``y``
    against ``t``, or its gradient with respect to ``y``."""
    def make(member):
        if member == "torch":
            torch = torch_module()
            ty, tt = torch.from_numpy(y), torch.from_numpy(t)
            f = {"binary_cross_entropy": torch.nn.functional.binary_cross_entropy,
                 "mse": torch.nn.functional.mse_loss}[op]
            if direction == "forward":
                return lambda: f(ty, tt)
            aten, one = torch.ops.aten, torch.ones((), dtype=ty.dtype)
            if op == "mse":
                return lambda: aten.mse_loss_backward(one, ty, tt, 1)      # 1: the mean
            return lambda: aten.binary_cross_entropy_backward(one, ty, tt, None, 1)
        f = getattr(F, op if direction == "forward" else op + "_backward")
        return lambda: f(y, t)
    return make


def _sce_maker(direction, logits, labels):
    def make(member):
        if member == "torch":
            torch = torch_module()
            tl, ty = torch.from_numpy(logits), torch.from_numpy(labels)
            if direction == "forward":
                return lambda: torch.nn.functional.cross_entropy(tl, ty)
            # What autograd runs for cross_entropy's backward: nll_loss, then log_softmax.
            aten = torch.ops.aten
            logp = torch.log_softmax(tl, 1)
            one = torch.ones((), dtype=tl.dtype)
            total = torch.tensor(float(len(labels)), dtype=tl.dtype)
            return lambda: aten._log_softmax_backward_data(
                aten.nll_loss_backward(one, logp, ty, None, 1, -100, total), logp, 1, tl.dtype)
        if direction == "forward":      # the probabilities too: computed anyway, and checked
            return lambda: F.softmax_cross_entropy(logits, labels, return_probs=True)
        with _numpy_backend():
            _, probs = F.softmax_cross_entropy(logits, labels, return_probs=True)
        return lambda: F.softmax_cross_entropy_backward(probs, labels)
    return make


# --- optimizer updates -----------------------------------------------------------------------

#: Adam's step count in the optimizer cases: past the first, whose update is about
#: ``lr * sign(g)`` whatever the state.
ADAM_STEP = 5


def optimizer_cases(shapes=((400,), (784, 400), (2000, 1000)), dtypes=(np.float32, np.float64)):
    for shape in shapes:
        n = int(np.prod(shape))
        size = "small" if n < 10_000 else "mnist" if n < 1_000_000 else "large"
        for name in ("sgd", "adagrad", "adam"):
            for dtype in dtypes:
                p, _, state = _update_state(name, shape, dtype)
                start = tuple(a.astype(np.float64) for a in (p, *state))
                yield Case("optimizers", name, str(shape), np.dtype(dtype).name, "update", size,
                           _update_maker(name, shape, dtype), _allclose(_tol(dtype), start))


def _update_state(name, shape, dtype):
    """Parameter, gradient and the optimizer's state (AdaGrad's ``h``, Adam's ``m`` and
    ``v``), the state not zero: from zero, a first update is about ``lr * sign(g)`` whatever
    the kernel does with it, and a kernel that never wrote its state passed (an audit's
    finding). Each case's result is the parameter and the state, all compared."""
    rng = _rng()
    p = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    state = {"sgd": (),
             "adagrad": (rng.random(shape) + 0.5,),
             "adam": (0.1 * rng.standard_normal(shape), 0.01 * (rng.random(shape) + 0.1))}[name]
    return p, g, tuple(a.astype(dtype) for a in state)


def _torch_update(torch, name, tp, tg, state):
    """PyTorch's update of one tensor as its fastest CPU kernel does it, called directly, as
    fastnet's member calls its function: AdaGrad's and Adam's fused kernels (those of
    ``fused=True``, 2.3-2.6x faster than the default loop at (784, 400)) and SGD's ``add_``
    (what ``SGD(foreach=False)`` runs). Not ``optimizer.step()``: its Python bookkeeping costs
    ~20 us a call (Adam ~25-70 us), which training shares among all the parameters but which
    fell here on one update (an audit: the (400,) rows read 4.7-6.4x PyTorch, almost all of it
    that cost). Adam's step count stays :data:`ADAM_STEP`, as fastnet's member's. A PyTorch
    without the private fused ops gets its optimizer's ``step``, its state set to ``state``
    (and Adam's count then goes on from there)."""
    if name == "sgd":
        return lambda: tp.add_(tg, alpha=-0.01)
    step = torch.full((), float(ADAM_STEP if name == "adam" else 1), dtype=tp.dtype)
    fused = getattr(torch, f"_fused_{name}_", None)
    if name == "adagrad" and fused is not None:
        return lambda: fused([tp], [tg], list(state), [step], lr=0.01, lr_decay=0.0,
                             weight_decay=0.0, eps=1e-7, maximize=False)
    if name == "adam" and fused is not None:
        return lambda: fused([tp], [tg], state[:1], state[1:], [], [step], amsgrad=False,
                             lr=1e-3, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8,
                             maximize=False)
    tp.grad = tg
    if name == "adagrad":
        optimizer = torch.optim.Adagrad([tp], lr=0.01, eps=1e-7)
        optimizer.state[tp]["sum"] = state[0]
    else:
        optimizer = torch.optim.Adam([tp], lr=1e-3)
        optimizer.state[tp] = {"step": step - 1, "exp_avg": state[0], "exp_avg_sq": state[1]}
    return optimizer.step


def _update_maker(name, shape, dtype):
    def make(member):
        p, g, state = _update_state(name, shape, dtype)
        if member == "torch":
            torch = torch_module()
            p, g, state = torch.from_numpy(p), torch.from_numpy(g), \
                [torch.from_numpy(a) for a in state]
            step = _torch_update(torch, name, p, g, state)
        else:
            step = {"sgd": lambda: F.sgd_update_(p, g, 0.01),
                    "adagrad": lambda: F.adagrad_update_(p, g, *state, 0.01),
                    "adam": lambda: F.adam_update_(p, g, *state, ADAM_STEP, lr=1e-3)}[name]

        def update():
            step()
            # The warm-up call's result is checked: one update from the same start.
            return (p, *state)
        return update
    return make


# --- dense -----------------------------------------------------------------------------------

def dense_cases(shapes=((20, 784, 400), (128, 784, 400), (128, 400, 200), (512, 2048, 1024)),
                dtypes=(np.float32, np.float64)):
    for N, n_in, n_out in shapes:
        size = "small" if N < 128 else "large" if n_in > 1000 else "mnist"
        for dtype in dtypes:
            rng = _rng()
            x = rng.standard_normal((N, n_in)).astype(dtype)
            W = (rng.standard_normal((n_in, n_out)) * 0.05).astype(dtype)
            b = rng.standard_normal(n_out).astype(dtype)
            dout = rng.standard_normal((N, n_out)).astype(dtype)
            for direction, mult in (("forward", 1), ("backward", 2)):
                yield Case("dense", "dense+relu", f"({N}, {n_in})->{n_out}",
                           np.dtype(dtype).name, direction, size,
                           _dense_maker(direction, x, W, b, dout), _allclose(_tol(dtype)),
                           flops=2 * N * n_in * n_out * mult)


def _dense_maker(direction, x, W, b, dout):
    def make(member):
        if member == "torch":
            torch = torch_module()
            tx, tW, tb, td = (torch.from_numpy(a) for a in (x, W, b, dout))
            if direction == "forward":
                return lambda: torch.relu(torch.addmm(tb, tx, tW))
            ty = torch.relu(torch.addmm(tb, tx, tW))

            def backward():
                dz = torch.ops.aten.threshold_backward(td, ty, 0)
                return dz @ tW.T, tx.T @ dz, dz.sum(0)
            return backward
        if direction == "forward":
            return lambda: F.dense(x, W, b, "relu")
        with _numpy_backend():
            y = F.dense(x, W, b, "relu")
        return lambda: F.dense_backward(dout, x, W, y, "relu")
    return make


# --- conv1d and pooling ----------------------------------------------------------------------

#: (N, C_in, L, C_out, K, stride, padding, dilation): the MNIST-CNN shapes of the conv issue.
CONV_SHAPES = [(128, 1, 784, 3, 3, 1, 0, 1), (128, 1, 784, 16, 5, 1, 2, 1),
               (128, 28, 28, 64, 3, 1, 1, 1), (128, 64, 28, 64, 3, 2, 1, 1),
               (128, 64, 14, 128, 3, 1, 1, 1), (20, 1, 784, 8, 3, 1, 28, 28)]
#: Beyond MNIST: longer signals, more channels, a wider kernel.
CONV_LARGE = [(64, 32, 1024, 64, 5, 1, 2, 1)]
#: Many channels, few output positions: one sample through a late layer (one position), and a
#: batch of 16 after pooling (four positions an item). An audit found these 3-8x slower than
#: the NumPy baseline before the rows path (``conv1d_rows``).
CONV_FEW_OUTPUTS = [(1, 256, 9, 256, 9, 1, 0, 1), (16, 256, 4, 256, 3, 1, 1, 1)]


def _conv_label(shape):
    N, C_in, L, C_out, K, s, p, d = shape
    extra = "".join(f" {k}{v}" for k, v in (("s", s), ("p", p), ("d", d))
                    if v != (0 if k == "p" else 1))
    return f"N{N} C{C_in} L{L} -> C{C_out} K{K}{extra}"


def conv_cases(shapes=CONV_SHAPES + CONV_FEW_OUTPUTS + CONV_LARGE,
               dtypes=(np.float32, np.float64)):
    for shape in shapes:
        N, C_in, L, C_out, K, stride, padding, dilation = shape
        size = "large" if shape in CONV_LARGE else "small" if N < 128 else "mnist"
        for dtype in dtypes:
            rng = _rng()
            x = rng.standard_normal((N, C_in, L)).astype(dtype)
            W = (rng.standard_normal((C_out, C_in, K)) / np.sqrt(C_in * K)).astype(dtype)
            b = rng.standard_normal(C_out).astype(dtype)
            L_out = F.conv1d_output_length(L, K, stride, padding, dilation)
            dout = rng.standard_normal((N, C_out, L_out)).astype(dtype)
            flops = 2 * N * C_out * L_out * C_in * K
            for direction, mult in (("forward", 1), ("backward", 2)):
                yield Case("conv1d", "conv1d", _conv_label(shape), np.dtype(dtype).name,
                           direction, size,
                           _conv_maker(direction, x, W, b, dout, stride, padding, dilation),
                           _allclose(_tol(dtype)), flops=flops * mult)


def _conv_maker(direction, x, W, b, dout, stride, padding, dilation):
    def make(member):
        if member == "torch":
            torch = torch_module()
            tx, tW, tb, td = (torch.from_numpy(a) for a in (x, W, b, dout))
            if direction == "forward":
                return lambda: torch.nn.functional.conv1d(tx, tW, tb, stride, padding, dilation)
            # The kernel autograd calls: all three gradients in one call.
            return lambda: torch.ops.aten.convolution_backward(
                td, tx, tW, [tb.shape[0]], [stride], [padding], [dilation], False, [0], 1,
                [True, True, True])
        if direction == "forward":
            return lambda: F.conv1d(x, W, b, stride, padding, dilation)
        return lambda: F.conv1d_backward(dout, x, W, stride, padding, dilation)
    return make


#: Overlapping windows over long rows (stride below the window): an audit found the Numba
#: backend at half the NumPy baseline's speed here before its tap-by-tap passes.
POOL_OVERLAPPING = [((8, 3, 5000), 7, 1, 3), ((8, 16, 1000), 3, 2, 1)]


def pooling_cases(shapes=((20, 16, 28), (128, 64, 28), (128, 32, 784)),
                  dtypes=(np.float32, np.float64), overlapping=POOL_OVERLAPPING,
                  kinds=("max", "avg")):
    windows = [(shape, 2, 2, 0) for shape in shapes] + list(overlapping)
    for kind in kinds:
        for (N, C, L), k, stride, padding in windows:
            size = "small" if N < 128 and k == 2 else "large" if L > 28 else "mnist"
            L_out = (L + 2 * padding - k) // stride + 1
            op = f"{kind}_pool1d k2" if k == 2 else f"{kind}_pool1d k{k} s{stride} p{padding}"
            for dtype in dtypes:
                x = _rng().standard_normal((N, C, L)).astype(dtype)
                dout = _rng().standard_normal((N, C, L_out)).astype(dtype)
                maker = _pool_maker if kind == "max" else _avg_pool_maker
                for direction in ("forward", "backward"):
                    yield Case("pooling", op, f"({N}, {C}, {L})", np.dtype(dtype).name,
                               direction, size, maker(direction, x, dout, k, stride, padding),
                               _elementwise_check(dtype))


def _pool_maker(direction, x, dout, k, stride, padding):
    def make(member):
        if member == "torch":
            torch = torch_module()
            tx, td = torch.from_numpy(x), torch.from_numpy(dout)
            if direction == "forward":
                # The indices too, as fastnet's member: the work of a training forward (PyTorch
                # takes this path whenever the input requires grad). Its values-only path, for
                # inference, is 10-15x faster (README, "How to read the figures").
                return lambda: torch.nn.functional.max_pool1d(tx, k, stride, padding,
                                                              return_indices=True)
            _, idx = torch.nn.functional.max_pool1d(tx, k, stride, padding, return_indices=True)
            return lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                td[:, :, None], tx[:, :, None], [1, k], [1, stride], [0, padding], [1, 1],
                False, idx[:, :, None])[:, :, 0]
        if direction == "forward":      # the indices too: computed anyway, and checked
            return lambda: F.max_pool1d(x, k, stride, padding, return_indices=True)
        with _numpy_backend():
            _, idx = F.max_pool1d(x, k, stride, padding, return_indices=True)
        return lambda: F.max_pool1d_backward(dout, idx, x.shape[-1])
    return make


def _avg_pool_maker(direction, x, dout, k, stride, padding):
    def make(member):
        if member == "torch":
            torch = torch_module()
            tx, td = torch.from_numpy(x), torch.from_numpy(dout)
            if direction == "forward":
                return lambda: torch.nn.functional.avg_pool1d(tx, k, stride, padding)
            # The kernel autograd calls for avg_pool1d: the 2-D one over a height of 1.
            return lambda: torch.ops.aten.avg_pool2d_backward(
                td[:, :, None], tx[:, :, None], [1, k], [1, stride], [0, padding], False, True,
                None)[:, :, 0]
        if direction == "forward":
            return lambda: F.avg_pool1d(x, k, stride, padding)
        return lambda: F.avg_pool1d_backward(dout, x.shape[-1], k, stride, padding)
    return make


KERNEL_FAMILIES = {"activations": activation_cases, "losses": loss_cases,
                   "optimizers": optimizer_cases, "dense": dense_cases, "conv1d": conv_cases,
                   "pooling": pooling_cases}


def kernel_cases(families=None):
    """Every kernel case, family by family."""
    for name, make in KERNEL_FAMILIES.items():
        if families is None or name in families:
            yield from make()
