"""Dense layer ``act(x @ W + b)``: forward and backward at the notebooks' MLP shapes."""
import numpy as np
import pytest

import fastnet.functional as F
from conftest import assert_close, reference, run, torch

# (batch, n_in, n_out): notebook batch 20, a typical batch 128, and a large layer
SHAPES = [(20, 784, 400), (128, 784, 400), (128, 400, 200), (512, 2048, 1024)]


def data(N, n_in, n_out, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, n_in)).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) * 0.05).astype(dtype)
    return x, W, rng.standard_normal(n_out).astype(dtype), rng.standard_normal((N, n_out)).astype(dtype)


def torch_fns(x, W, b, dout):
    tx, tW, tb, td = (torch.from_numpy(a) for a in (x, W, b, dout))
    ty = torch.relu(torch.addmm(tb, tx, tW))

    def backward():
        dz = torch.ops.aten.threshold_backward(td, ty, 0)
        return dz @ tW.T, tx.T @ dz, dz.sum(0)
    return (lambda: torch.relu(torch.addmm(tb, tx, tW))), backward


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("direction", ["forward", "backward"])
def bench_dense_relu(benchmark, member, direction, shape, dtype):
    x, W, b, dout = data(*shape, dtype)
    with reference():
        y = F.dense(x, W, b, "relu")
        want = y if direction == "forward" else F.dense_backward(dout, x, W, y, "relu")
    if member == "torch":
        forward, backward = torch_fns(x, W, b, dout)
        fn = forward if direction == "forward" else backward
    elif direction == "forward":
        fn = lambda: F.dense(x, W, b, "relu")
    else:
        fn = lambda: F.dense_backward(dout, x, W, y, "relu")
    N, n_in, n_out = shape
    run(benchmark, fn, group=f"dense+relu {direction} {shape} {np.dtype(dtype).name}",
        member=member, check=lambda got: assert_close(got, want, dtype), op="dense_relu",
        direction=direction, shape=str(shape), dtype=np.dtype(dtype).name,
        flops=2 * N * n_in * n_out * (1 if direction == "forward" else 2))
