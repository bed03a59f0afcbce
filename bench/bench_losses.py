"""Fused softmax cross-entropy (and softmax): forward and backward at classifier-head shapes."""
import numpy as np
import pytest

import fastnet.functional as F
from conftest import assert_close, reference, run, torch

SHAPES = [(20, 10), (128, 10), (1024, 1000)]


def data(N, C, dtype):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((N, C)) * 3).astype(dtype), rng.integers(0, C, N)


def torch_forward(logits, labels):
    tl, ty = torch.from_numpy(logits), torch.from_numpy(labels)
    return lambda: torch.nn.functional.cross_entropy(tl, ty)


def torch_backward(logits, labels):
    """What autograd runs for cross_entropy's backward: nll_loss then log_softmax backward."""
    aten = torch.ops.aten
    tl, ty = torch.from_numpy(logits), torch.from_numpy(labels)
    logp = torch.log_softmax(tl, 1)
    one = torch.ones((), dtype=tl.dtype)
    total = torch.tensor(float(len(labels)), dtype=tl.dtype)

    def backward():
        g = aten.nll_loss_backward(one, logp, ty, None, 1, -100, total)
        return aten._log_softmax_backward_data(g, logp, 1, tl.dtype)
    return backward


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("direction", ["forward", "backward"])
def bench_softmax_cross_entropy(benchmark, member, direction, shape, dtype):
    logits, labels = data(*shape, dtype)
    with reference():
        loss, probs = F.softmax_cross_entropy(logits, labels, return_probs=True)
        want = loss if direction == "forward" else F.softmax_cross_entropy_backward(probs, labels)
    if member == "torch":
        fn = (torch_forward if direction == "forward" else torch_backward)(logits, labels)
    elif direction == "forward":
        fn = lambda: F.softmax_cross_entropy(logits, labels, return_probs=True)[0]
    else:
        fn = lambda: F.softmax_cross_entropy_backward(probs, labels)
    run(benchmark, fn, group=f"softmax_cross_entropy {direction} {shape} {np.dtype(dtype).name}",
        member=member, check=lambda got: assert_close(got, want, dtype),
        op="softmax_cross_entropy", direction=direction, shape=str(shape),
        dtype=np.dtype(dtype).name)
