"""Losses on both backends and dtypes against the naive oracle, plus their stability."""
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastnet.functional as F
import naive
from conftest import tolerance


@pytest.mark.parametrize("N, C", [(1, 1), (1, 3), (5, 10), (64, 7)])
@pytest.mark.parametrize("labels", ["index", "onehot"])
def test_softmax_cross_entropy_matches_oracle(backend, dtype, tol, N, C, labels):
    rng = np.random.default_rng(N + C)
    logits = (rng.standard_normal((N, C)) * 3).astype(dtype)
    y = rng.integers(0, C, N)
    target = y if labels == "index" else naive.one_hot(y, C).astype(dtype)
    loss, probs = F.softmax_cross_entropy(logits, target, return_probs=True)
    assert isinstance(loss, dtype)
    np.testing.assert_allclose(loss, naive.softmax_cross_entropy(logits, y), **tol)
    np.testing.assert_allclose(probs, naive.softmax_rows(logits), **tol)
    grad = F.softmax_cross_entropy_backward(probs, target)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, naive.softmax_cross_entropy_grad(logits, y), **tol)
    np.testing.assert_allclose(F.softmax_cross_entropy_backward(probs, target, dloss=2.5),
                               2.5 * naive.softmax_cross_entropy_grad(logits, y), **tol)


@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 50), C=st.integers(1, 40), seed=st.integers(0, 2**31),
       scale=st.sampled_from([0.1, 1.0, 30.0]))
def test_softmax_cross_entropy_hypothesis(backend, dtype, N, C, seed, scale):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((N, C)) * scale).astype(dtype)
    y = rng.integers(0, C, N)
    rtol, atol = tolerance(dtype)
    loss, probs = F.softmax_cross_entropy(logits, y, return_probs=True)
    np.testing.assert_allclose(loss, naive.softmax_cross_entropy(logits, y), rtol=rtol * 10, atol=atol * 10)
    np.testing.assert_allclose(F.softmax_cross_entropy_backward(probs, y),
                               naive.softmax_cross_entropy_grad(logits, y), rtol=rtol, atol=atol * 10)


@pytest.mark.parametrize("labels, dloss, error, words", [
    (np.array([0, 3]), 1.0, ValueError, "label 3 out of range for 3 classes"),
    (np.array([-1, 0]), 1.0, ValueError, "label -1 out of range for 3 classes"),
    (np.array([0, 1]), float("nan"), ValueError, "dloss=nan"),
    (np.array([0, 1]), float("-inf"), ValueError, "dloss=-inf"),
    (np.array([0, 1]), True, TypeError, "dloss must be a real number"),
    (np.array([0, 1, 2]), 1.0, ValueError, "labels have shape (3,)")])
def test_softmax_cross_entropy_backward_refuses_on_its_shortcut(backend, dtype, labels, dloss,
                                                                  error, words):
    # Plain int64 labels and a float dloss take the call's shortcut (functional); what it does
    # not pass must still get the full checks' error.
    probs = np.full((2, 3), 1 / 3, dtype)
    with pytest.raises(error, match=re.escape(words)):
        F.softmax_cross_entropy_backward(probs, labels, dloss)


def test_softmax_cross_entropy_backward_takes_any_label_array(backend, dtype, tol):
    # Labels off the shortcut (another integer dtype, read-only, strided, a list) give what
    # plain int64 labels give, which the oracle checks.
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((6, 5)).astype(dtype)
    y = rng.integers(0, 5, 6)
    probs = F.softmax(logits)
    want = naive.softmax_cross_entropy_grad(logits, y)
    np.testing.assert_allclose(F.softmax_cross_entropy_backward(probs, y), want, **tol)
    read_only = y.copy()
    read_only.flags.writeable = False
    for labels in (y.astype(np.uint8), read_only, np.repeat(y, 2)[::2], list(y)):
        np.testing.assert_array_equal(F.softmax_cross_entropy_backward(probs, labels),
                                      F.softmax_cross_entropy_backward(probs, y))


def test_softmax_cross_entropy_soft_targets(backend, dtype, tol):
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((6, 4)).astype(dtype)
    target = rng.random((6, 4)).astype(dtype)
    target /= target.sum(axis=1, keepdims=True)
    loss, probs = F.softmax_cross_entropy(logits, target, return_probs=True)
    np.testing.assert_allclose(loss, naive.softmax_cross_entropy(logits, target), **tol)
    np.testing.assert_allclose(F.softmax_cross_entropy_backward(probs, target),
                               (naive.softmax_rows(logits) - target) / 6, **tol)


def test_softmax_cross_entropy_hand_computed(backend, dtype):
    # Two equal logits: p = 1/2 each, loss = log 2; gradient (p - t)/N.
    loss, probs = F.softmax_cross_entropy(np.zeros((1, 2), dtype), np.array([0]), return_probs=True)
    assert abs(float(loss) - np.log(2)) < 1e-6
    np.testing.assert_allclose(F.softmax_cross_entropy_backward(probs, np.array([0])), [[-0.5, 0.5]])


def test_softmax_cross_entropy_huge_logits_and_zero_probability(backend, dtype):
    logits = np.array([[1e4, -1e4, 0], [-1e4, 1e4, 0], [0, 0, 0]], dtype=dtype)
    y = np.array([1, 1, 2])   # row 0: the true class has probability exactly 0
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss, probs = F.softmax_cross_entropy(logits, y, return_probs=True)
        grad = F.softmax_cross_entropy_backward(probs, y)
    assert np.isfinite(loss)
    np.testing.assert_allclose(float(loss), (2e4 + 0 + np.log(3)) / 3, rtol=1e-6)
    assert np.all(np.isfinite(probs)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(probs[0], [1, 0, 0])


@pytest.mark.parametrize("labels", ["index", "onehot"])
@pytest.mark.parametrize("C", [3, 80], ids=["narrow", "wide"])
@pytest.mark.parametrize("big", [1e4, 1e8, 1e15])
def test_softmax_cross_entropy_keeps_log2_next_to_a_large_max(backend, dtype, labels, C, big):
    """Two equal largest logits: loss = log 2 whatever their size. ``logsumexp - z`` rounds
    log 2 away next to 1e8 (float32: 0.0) or 1e15 (float64: 0.75); ``(max - z) + log(sum)``
    does not."""
    if dtype == np.float32 and big > 3e38:
        pytest.skip("beyond float32")
    logits = np.zeros((2, C), dtype)
    logits[:, :2] = big
    logits[:, 2:] = -big if C > 3 else 0
    y = np.array([0, 1])
    target = y if labels == "index" else naive.one_hot(y, C).astype(dtype)
    loss = F.softmax_cross_entropy(logits, target)
    np.testing.assert_allclose(float(loss), np.log(2), rtol=1e-6)

@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("C", [2, 80], ids=["narrow", "wide"])
def test_logit_gaps_beyond_the_dtype_give_no_nan_with_distribution_targets(backend, dtype, C):
    """Finite logits whose gap overflows the dtype: -log p of the far class is inf. A class
    without target mass adds nothing (0 * inf would be NaN, PyTorch's result); one-hot rows give
    the loss of the same labels."""
    big = np.finfo(dtype).max
    logits = np.zeros((3, C), dtype)
    logits[:, 0], logits[:, 1] = big, -big
    y = np.zeros(3, np.int64)
    target = naive.one_hot(y, C).astype(dtype)
    loss = F.softmax_cross_entropy(logits, target)
    assert float(loss) == float(F.softmax_cross_entropy(logits, y)) == 0.0
    target[2] = [0.5, 0.5] + [0.0] * (C - 2)      # mass on the far class: an honest inf
    assert F.softmax_cross_entropy(logits, target) == np.inf
    grad = F.softmax_cross_entropy_backward(F.softmax(logits), naive.one_hot(y, C).astype(dtype))
    assert np.isfinite(grad).all()
    logits[:, 1] = -np.inf                        # a non-finite logit off the target: NaN, as
    target = naive.one_hot(y, C).astype(dtype)    # torch.nn.functional.cross_entropy gives
    assert np.isnan(F.softmax_cross_entropy(logits, target))


def test_softmax_huge_logits(backend, dtype):
    y = F.softmax(np.array([[1e4, 1e4 - 1, -1e4]], dtype=dtype))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[0, :2], naive.softmax_rows(np.array([[1.0, 0.0]]))[0], rtol=1e-5)


@pytest.mark.parametrize("shape", [(1,), (4, 3), (70000,)])
def test_mse_matches_oracle(backend, dtype, tol, shape):
    rng = np.random.default_rng(11)
    y, t = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    rtol = tol["rtol"] * (50 if y.size > 1000 else 1)
    np.testing.assert_allclose(F.mse(y, t), naive.mse(y, t), rtol=rtol)
    np.testing.assert_allclose(F.mse_backward(y, t, dloss=3.0), 3.0 * 2 * (y.astype(float) - t) / y.size,
                               **tol)


@pytest.mark.parametrize("shape", [(1,), (4, 3), (70000,)])
def test_bce_matches_oracle(backend, dtype, tol, shape):
    rng = np.random.default_rng(12)
    p = rng.uniform(0.01, 0.99, shape).astype(dtype)
    t = (rng.random(shape) > 0.5).astype(dtype)
    rtol = tol["rtol"] * (50 if p.size > 1000 else 1)
    np.testing.assert_allclose(F.binary_cross_entropy(p, t), naive.bce(p, t), rtol=rtol)
    pf = p.astype(np.float64)
    np.testing.assert_allclose(F.binary_cross_entropy_backward(p, t),
                               (pf - t) / (pf * (1 - pf)) / p.size, **tol)


@pytest.mark.parametrize("n", [1, 70000])                   # serial; chunks over threads
def test_bce_of_confident_right_answers_keeps_its_relative_accuracy(backend, dtype, n):
    """A loss near 0 (p near 1 with t = 1, p near 0 with t = 0) is -log p or -log(1 - p), each
    term accurate to itself: fast-math's reassociation had factored the sum into log_q +
    t*(log_p - log_q), which cancels (float64 p = 1 - 2.6e-15, t = 1: a loss of 0.0)."""
    eps = float(np.finfo(dtype).eps)
    for p_value, t_value in ((1 - 12 * eps, 1.0), (1 - 1e-4, 1.0), (30 * eps, 0.0)):
        p = np.full(n, p_value, dtype)
        t = np.full(n, t_value, dtype)
        q = float(p[0])
        want = -math.log(q) if t_value == 1 else -math.log1p(-q)
        np.testing.assert_allclose(float(F.binary_cross_entropy(p, t)), want,
                                   rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_bce_at_exact_zero_and_one_is_finite(backend, dtype):
    p = np.array([0.0, 1.0, 0.0, 1.0], dtype=dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss = F.binary_cross_entropy(p, t)
        grad = F.binary_cross_entropy_backward(p, t)
    np.testing.assert_allclose(float(loss), 200 / 4)   # two clamped logs of -100
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("fn", [F.relu, F.sigmoid, F.tanh, F.softmax])
def test_nan_and_inf_inputs_do_not_crash(backend, dtype, fn):
    x = np.array([[np.nan, np.inf, -np.inf, 1.0]], dtype=dtype)
    y = fn(x)
    assert y.shape == x.shape
    assert np.isnan(y[0, 0])


def test_nan_propagates_through_losses(backend, dtype):
    logits = np.array([[np.nan, 1.0], [0.0, 1.0]], dtype=dtype)
    loss = F.softmax_cross_entropy(logits, np.array([0, 1]))
    assert np.isnan(loss)
    assert np.isnan(F.mse(np.array([np.nan], dtype), np.array([0.0], dtype)))
    assert np.isnan(F.binary_cross_entropy(np.array([np.nan], dtype), np.array([1.0], dtype)))
    np.testing.assert_array_equal(F.relu(np.array([np.nan, -np.inf, np.inf], dtype)),
                                  [np.nan, 0, np.inf])


@pytest.mark.parametrize("N, C", [(8000, 10), (300, 300)])
def test_softmax_cross_entropy_large_batches(backend, dtype, N, C):
    """Above the parallel threshold (narrow rows in blocks, wide rows one by one), against a
    float64 log-softmax computed here."""
    rng = np.random.default_rng(C)
    logits = (rng.standard_normal((N, C)) * 4).astype(dtype)
    y = rng.integers(0, C, N)
    z = logits.astype(np.float64)
    log_p = z - z.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    loss, probs = F.softmax_cross_entropy(logits, y, return_probs=True)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(loss, -log_p[np.arange(N), y].mean(), rtol=rtol)
    want = np.exp(log_p)
    want[np.arange(N), y] -= 1
    np.testing.assert_allclose(F.softmax_cross_entropy_backward(probs, y), want / N,
                               rtol=rtol * 10, atol=(5e-7 if dtype == np.float32 else 1e-15) / N)  # p ~ 1: ulps of 1


def test_soft_targets_not_summing_to_one_get_the_exact_gradient(backend):
    """The gradient was (p - t) / N whatever the rows summed to: right for distributions only.
    Checked against central differences of the loss itself (and PyTorch's formula)."""
    logits = np.array([[0.3, -1.2, 2.0], [1.0, 0.5, -0.5], [0.1, 0.2, 0.3]])
    target = np.array([[0.2, 0.3, 0.9], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    grad = F.softmax_cross_entropy_backward(
        F.softmax_cross_entropy(logits, target, return_probs=True)[1], target, dloss=2.0)
    numeric = np.zeros_like(logits)
    h = 1e-6
    for i in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (F.softmax_cross_entropy(up, target)
                      - F.softmax_cross_entropy(down, target)) / (2 * h)
    np.testing.assert_allclose(grad, 2.0 * numeric, rtol=1e-6, atol=1e-9)
    assert not grad[1].any()                 # an all-zero row contributes nothing


@pytest.mark.parametrize("N", [7, 20000])        # 80 000 values: the parallel loop
def test_kernels_take_each_target_rows_mass_into_the_gradient(kern, dtype, N):
    """Both backends' kernels compute ``dloss * (p * sum(t) - t) / N`` row by row: one-hot
    rows, distributions and rows of mass 0, 0.5 and 3, against naive loops."""
    rng = np.random.default_rng(N)
    p = rng.dirichlet(np.ones(4), N).astype(dtype)
    t = rng.random((N, 4)).astype(dtype)
    t[0], t[1] = 0, [0, 1, 0, 0]
    for row, mass in ((2, 1.0), (3, 0.5), (4, 3.0), (N - 1, 2.0)):
        t[row] *= dtype(mass / t[row].sum())
    want = np.empty((N, 4))
    for i in range(N):
        mass = sum(float(v) for v in t[i])
        for j in range(4):
            want[i, j] = 0.5 * (float(p[i, j]) * mass - float(t[i, j])) / N
    got = kern.softmax_cross_entropy_backward(0.5, p, t)
    rtol, atol = tolerance(dtype)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol / N)


@pytest.mark.parametrize("target", ["labels", "soft rows"])
def test_loss_object_backward_equals_the_functional_one(backend, dtype, target):
    """The loss object skips re-checking what its forward checked; the gradient is the same,
    and a ``probs`` the user put in its place is checked as in the functional API."""
    from fastnet.losses import SoftmaxCrossEntropy
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((6, 5)).astype(dtype)
    t = rng.integers(0, 5, 6) if target == "labels" else \
        rng.dirichlet(np.ones(5), 6).astype(dtype)
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, t)
    want = F.softmax_cross_entropy_backward(F.softmax(logits), t, 0.5)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(loss.backward(0.5), want, rtol=rtol, atol=atol)
    loss.probs = loss.probs * 2                        # replaced: checked and used as given
    np.testing.assert_allclose(loss.backward(0.5),
                               F.softmax_cross_entropy_backward(loss.probs, t, 0.5),
                               rtol=rtol, atol=atol)
    loss.probs = loss.probs[:, :4]
    with pytest.raises(ValueError, match="softmax_cross_entropy_backward: (label 4|one-hot)"):
        loss.backward()
    loss.forward(logits, t)
    with pytest.raises(ValueError, match="dloss"):
        loss.backward(float("nan"))


def test_loss_object_backward_with_probs_set_before_any_forward_says_so(backend):
    from fastnet.losses import SoftmaxCrossEntropy
    loss = SoftmaxCrossEntropy()
    loss.probs = np.full((2, 3), 1 / 3)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        loss.backward()


def test_a_float32_mean_whose_sum_overflows_is_finite_on_both_backends(backend):
    """The NumPy backend summed float32 terms in float32: inf where the mean is 2.25e38 (the
    Numba backend sums in float64 and gave the finite mean)."""
    assert F.mse(np.full(100, 1.5e19, np.float32), np.zeros(100, np.float32)) \
        == pytest.approx(2.25e38, rel=1e-6)
    logits = np.tile(np.float32([[1e38, -1e38, 0]]), (4, 1))
    assert F.softmax_cross_entropy(logits, np.array([1, 1, 1, 1])) == pytest.approx(2e38,
                                                                                  rel=1e-6)
    one_hot = np.tile(np.float32([[0, 1, 0]]), (4, 1))
    assert F.softmax_cross_entropy(logits, one_hot) == pytest.approx(2e38, rel=1e-6)


@pytest.mark.parametrize("n", [1000, 100_000])         # the serial and the parallel sum
def test_a_float32_mean_of_one_square_beyond_float32_is_finite_on_both_backends(backend, n):
    """One difference of 1e20 squares to 1e40, beyond float32, but the mean is 1e37 (or 1e35):
    the Numba backend squared in float32 and gave inf."""
    y = np.zeros(n, np.float32)
    y[n // 3] = 1e20
    assert F.mse(y, np.zeros(n, np.float32)) == pytest.approx(1e40 / n, rel=1e-6)
    y[n // 3] = -3e38                   # the difference itself overflows: inf, as in NumPy
    with np.errstate(over="ignore"):
        assert F.mse(y, np.full(n, 3e38, np.float32)) == np.inf


def test_loss_objects_take_a_list_output_as_the_functional_api_does(backend):
    """``[1, 2]`` is int64 to NumPy: the target was cast to int64 (1.5 became 1) and the error
    then named the target."""
    from fastnet.losses import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy
    assert MeanSquaredError().forward([1, 2], [1.5, 3]) == pytest.approx(0.625)
    assert MeanSquaredError().forward([1, 2], [1.5, 3]) == pytest.approx(F.mse([1, 2], [1.5, 3]))
    assert BinaryCrossEntropy().forward([1, 0], [0.5, 0.5]) == pytest.approx(
        F.binary_cross_entropy([1, 0], [0.5, 0.5]))
    assert SoftmaxCrossEntropy().forward([[1, 2]], [[0.5, 0.5]]) == pytest.approx(
        F.softmax_cross_entropy(np.float32([[1, 2]]), np.float32([[0.5, 0.5]])))
    with pytest.raises(TypeError, match=r"mse: y has dtype int64"):
        MeanSquaredError().forward(np.array([1, 2]), [1.5, 3])


@pytest.mark.parametrize("target", [np.ma.masked_array([1, 0], mask=[0, 1]),
                                    np.ma.masked_array(np.eye(3)[[1, 0]], mask=np.eye(3)[[0, 1]])],
                         ids=["labels", "one-hot"])
def test_softmax_cross_entropy_object_refuses_a_masked_target(backend, dtype, target):
    """The loss object turned the target into a plain array first, dropping its mask, so the
    masked entries counted in the loss; the functional API refuses masked labels."""
    from fastnet.losses import SoftmaxCrossEntropy
    with pytest.raises(TypeError, match="SoftmaxCrossEntropy: target is a masked array"):
        SoftmaxCrossEntropy().forward(np.zeros((2, 3), dtype), target)


_WIDE_ROWS = """
import hashlib, numpy as np
from fastnet.kernels.numba_backend import activations, losses
rng = np.random.default_rng(0)
rng.random((20, 784))
z = (rng.standard_normal((20, 600)) * 3).astype(np.float32)
t = rng.integers(0, 600, 20)
out = [losses.softmax_cross_entropy_forward(z, t)[1], activations.softmax_forward(z),
       losses.softmax_cross_entropy_forward(z, np.eye(600, dtype=np.float32)[t])[1]]
print(hashlib.sha256(b"".join(a.tobytes() for a in out)).hexdigest())
"""


def test_wide_softmax_rows_are_the_same_bits_compiled_or_loaded(tmp_path):
    """A process that compiles the serial wide-row kernels and one that loads them from the
    cache got rows one ulp apart (3 of these 20): the row code, a function of its own, ran as
    compiled in the first and as optimised again inside its caller in the second (an audit's
    finding). It is inlined now."""
    import os
    import subprocess
    import sys
    from fastnet.kernels.numba_backend import _config
    if not _config.CACHE:
        pytest.skip("nothing is cached")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    digests = [subprocess.run([sys.executable, "-c", _WIDE_ROWS], capture_output=True, text=True,
                              env=env, timeout=600, check=True).stdout for _ in range(2)]
    assert digests[0] == digests[1] and len(digests[0]) == 65
