"""In-place optimizer updates on MNIST-MLP-sized parameters."""
import numpy as np
import pytest

import fastnet.functional as F
from conftest import assert_close, reference, run, torch

SHAPES = [(400,), (784, 400), (2000, 1000)]
OPTIMIZERS = ("sgd", "adagrad", "adam")


def state(shape, dtype):
    rng = np.random.default_rng(0)
    p, g = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    return p, g, np.zeros_like(p), np.zeros_like(p)


def fastnet_step(name, p, g, a, b):
    if name == "sgd":
        return lambda: F.sgd_update_(p, g, 0.01)
    if name == "adagrad":
        return lambda: F.adagrad_update_(p, g, a, 0.01)
    return lambda: F.adam_update_(p, g, a, b, 1, lr=1e-3)


def torch_step(name, p, g):
    """torch.optim's single-tensor update (foreach=False), the form a torch user runs."""
    tp = torch.from_numpy(p)
    tp.grad = torch.from_numpy(g)
    opt = {"sgd": lambda: torch.optim.SGD([tp], lr=0.01, foreach=False),
           "adagrad": lambda: torch.optim.Adagrad([tp], lr=0.01, eps=1e-7, foreach=False),
           "adam": lambda: torch.optim.Adam([tp], lr=1e-3, foreach=False)}[name]()
    return opt.step


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", OPTIMIZERS)
def bench_update(benchmark, member, name, shape, dtype):
    p0, g, _, _ = state(shape, dtype)
    want = p0.copy()
    with reference():
        fastnet_step(name, want, g, np.zeros_like(p0), np.zeros_like(p0))()
    p, _, a, b = state(shape, dtype)
    fn = torch_step(name, p, g) if member == "torch" else fastnet_step(name, p, g, a, b)

    def first_step_matches(_):
        assert_close(p, want, dtype)       # the warm-up call was one update from p0
    run(benchmark, fn, group=f"{name} update {shape} {np.dtype(dtype).name}", member=member,
        check=first_step_matches, op=name, direction="update", shape=str(shape),
        dtype=np.dtype(dtype).name)
