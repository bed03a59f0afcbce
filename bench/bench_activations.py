"""ReLU, sigmoid, tanh: forward and backward, small / MNIST-sized / large, float32 and float64."""
import numpy as np
import pytest

import fastnet.functional as F
from conftest import assert_close, reference, run, torch

SIZES = {"1e3": 1_000, "mnist-128x784": 128 * 784, "1e6": 1_000_000}
OPS = ("relu", "sigmoid", "tanh")


def inputs(size, dtype):
    rng = np.random.default_rng(0)
    return (rng.standard_normal(size) * 3).astype(dtype), rng.standard_normal(size).astype(dtype)


def forward_fn(member, op, x):
    if member == "torch":
        t = torch.from_numpy(x)
        f = getattr(torch, op)
        return lambda: f(t)
    f = getattr(F, op)
    return lambda: f(x)


def backward_fn(member, op, dout, x):
    y = getattr(np, op)(x) if op == "tanh" else (np.maximum(x, 0) if op == "relu" else 1 / (1 + np.exp(-x)))
    a = x if op == "relu" else y.astype(x.dtype)         # relu's backward uses its input
    if member == "torch":
        td, ta = torch.from_numpy(dout), torch.from_numpy(a)
        aten = torch.ops.aten
        f = {"relu": lambda: aten.threshold_backward(td, ta, 0),
             "sigmoid": lambda: aten.sigmoid_backward(td, ta),
             "tanh": lambda: aten.tanh_backward(td, ta)}[op]
        return f
    f = getattr(F, op + "_backward")
    return lambda: f(dout, a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
def bench_activation(benchmark, member, direction, op, size, dtype):
    x, dout = inputs(SIZES[size], dtype)
    with reference():
        want = (forward_fn("numpy", op, x) if direction == "forward"
                else backward_fn("numpy", op, dout, x))()
    fn = forward_fn(member, op, x) if direction == "forward" else backward_fn(member, op, dout, x)
    run(benchmark, fn, group=f"{op} {direction} n={size} {np.dtype(dtype).name}", member=member,
        check=lambda got: assert_close(got, want, dtype), op=op, direction=direction,
        shape=str(SIZES[size]), dtype=np.dtype(dtype).name)

