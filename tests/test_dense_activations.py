"""Dense and activation kernels on both backends and dtypes against the naive oracle."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastnet
import fastnet.functional as F
import naive
from conftest import tolerance

ACTIVATIONS = [None, "relu", "sigmoid", "tanh"]


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("N, n_in, n_out", [(1, 1, 1), (3, 5, 4), (20, 17, 9)])
def test_dense_forward_backward_match_oracle(backend, dtype, tol, activation, N, n_in, n_out):
    rng = np.random.default_rng(N * 100 + n_in)
    x, W, b = rand(rng, (N, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, n_out, dtype)
    y = F.dense(x, W, b, activation=activation)
    act = activation or "none"
    assert y.dtype == dtype and y.shape == (N, n_out)
    np.testing.assert_allclose(y, naive.dense(x, W, b, act), **tol)

    dout = rand(rng, (N, n_out), dtype)
    dx, dW, db = F.dense_backward(dout, x, W, y, activation=activation)
    ref = naive.dense_backward(dout, x, W, y, act)
    for got, want in zip((dx, dW, db), ref):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **tol)
    no_dx, dW2, db2 = F.dense_backward(dout, x, W, y, activation=activation, need_dx=False)
    assert no_dx is None
    np.testing.assert_allclose(dW2, ref[1], **tol)
    np.testing.assert_allclose(db2, ref[2], **tol)


@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 40), n_in=st.integers(1, 30), n_out=st.integers(1, 30),
       activation=st.sampled_from(ACTIVATIONS), seed=st.integers(0, 2**31))
def test_dense_hypothesis_shapes(backend, dtype, N, n_in, n_out, activation, seed):
    rng = np.random.default_rng(seed)
    x, W, b = rand(rng, (N, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, n_out, dtype)
    y = F.dense(x, W, b, activation)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(y, naive.dense(x, W, b, activation or "none"), rtol=rtol, atol=atol * 10)
    dout = rand(rng, (N, n_out), dtype)
    for got, want in zip(F.dense_backward(dout, x, W, y, activation),
                         naive.dense_backward(dout, x, W, y, activation or "none")):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * 10)


def test_dense_large_parallel_path(backend, dtype):
    """Above the parallel threshold the kernels split rows across threads."""
    rng = np.random.default_rng(7)
    x, W, b = rand(rng, (300, 64), dtype), rand(rng, (64, 500), dtype), rand(rng, 500, dtype)
    y = F.dense(x, W, b, "relu")
    ref = np.maximum(x.astype(np.float64) @ W + b, 0)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, ref, rtol=rtol, atol=rtol)
    dout = rand(rng, y.shape, dtype)
    dz = np.where(y > 0, dout.astype(np.float64), 0)
    dx, dW, db = F.dense_backward(dout, x, W, y, "relu")
    np.testing.assert_allclose(db, dz.sum(0), rtol=rtol, atol=rtol * 10)
    np.testing.assert_allclose(dW, x.T.astype(np.float64) @ dz, rtol=rtol, atol=rtol * 10)
    np.testing.assert_allclose(dx, dz @ W.T, rtol=rtol, atol=rtol * 10)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("N, n_in, n_out", [(20, 784, 400), (24, 200, 512), (2, 400, 200),
                                            (20, 1024, 200), (20, 200, 10), (25, 784, 400)])
def test_dense_small_batch_wide_layers(backend, dtype, activation, N, n_in, n_out):
    """The MLP's shapes at small batches, where the Numba kernel has BLAS compute products as
    their transposes (inside its windows: the first four) and copies them back to rows. The
    reference is float64 matrix algebra (the naive loops would take minutes here)."""
    rng = np.random.default_rng(N + n_in + n_out)
    x, b = rand(rng, (N, n_in), dtype), rand(rng, n_out, dtype)
    W = rand(rng, (n_in, n_out), dtype, 0.05)
    act = activation or "none"
    x64, W64 = x.astype(np.float64), W.astype(np.float64)
    y = F.dense(x, W, b, activation)
    z = x64 @ W64 + b
    ref = {"none": z, "relu": np.maximum(z, 0), "sigmoid": 1 / (1 + np.exp(-z)),
           "tanh": np.tanh(z)}[act]
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    assert y.flags.c_contiguous and y.shape == (N, n_out) and y.dtype == dtype
    np.testing.assert_allclose(y, ref, rtol=rtol, atol=rtol)
    dout = rand(rng, y.shape, dtype)
    dx, dW, db = F.dense_backward(dout, x, W, y, activation)
    y64 = y.astype(np.float64)
    dz = dout * {"none": 1, "relu": y64 > 0, "sigmoid": y64 * (1 - y64), "tanh": 1 - y64 ** 2}[act]
    assert dx.flags.c_contiguous and dx.shape == (N, n_in) and dx.dtype == dtype
    for got, want in zip((dx, dW, db), (dz @ W64.T, x64.T @ dz, dz.sum(0))):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 10)


def test_the_numba_dense_backward_keeps_sigmoid_and_tanh_apart(monkeypatch):
    """Their gradients are a function of their own, so that a ReLU network's first step does
    not compile them (0.13 s of a cold start); the results are the oracle's either way (the
    tests above)."""
    pytest.importorskip("numba")
    from fastnet.kernels.numba_backend import dense
    calls = []
    for name in ("_act_grad_colsum", "_smooth_grad_colsum"):
        original = getattr(dense, name)
        monkeypatch.setattr(dense, name, lambda *a, _f=original, _n=name:
                            calls.append((_n, a[2])) or _f(*a))
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((4, 5)), rng.standard_normal((5, 3))
    for activation in ("none", "relu", "sigmoid", "tanh"):
        y = dense.dense_forward(x, W, np.zeros(3), activation)
        dense.dense_backward(np.ones_like(y), x, W, y, activation, True)
    assert [name for name, _ in calls] == ["_act_grad_colsum"] * 2 + ["_smooth_grad_colsum"] * 2


def test_the_numba_activation_pass_takes_one_array(monkeypatch):
    """dense and conv1d apply sigmoid and tanh in place with the one-array kernels: the
    two-array loop, given one array twice, fails LLVM's no-overlap check and runs scalar (3-8x
    slower below the parallel size; ``activations._sigmoid_``)."""
    pytest.importorskip("numba")
    from fastnet.kernels.numba_backend import activations, conv1d, dense
    calls = []
    for name in ("_sigmoid_", "_tanh_", "_sigmoid_forward", "_tanh_forward"):
        original = getattr(activations, name)
        monkeypatch.setattr(activations, name, lambda *a, _f=original, _n=name:
                            calls.append(_n) or _f(*a))
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((4, 5)), rng.standard_normal((5, 3))
    xc, Wc = rng.standard_normal((2, 3, 8)), rng.standard_normal((4, 3, 3))
    for activation in ("sigmoid", "tanh"):
        dense.dense_forward(x, W, np.zeros(3), activation)
        conv1d.conv1d_forward(xc, Wc, np.zeros(4), 1, 1, 1, 1, activation)
    assert calls == ["_sigmoid_"] * 2 + ["_tanh_"] * 2


def test_dense_single_sample_and_no_bias(backend, dtype, tol):
    rng = np.random.default_rng(1)
    x, W = rand(rng, 6, dtype), rand(rng, (6, 3), dtype)
    y = F.dense(x, W)
    assert y.shape == (3,)
    np.testing.assert_allclose(y, naive.dense(x[None], W, np.zeros(3))[0], **tol)


def test_dense_without_bias_checks_its_output_before_building_one(backend, dtype):
    """Without ``b``, dense builds a bias of ``n_out`` zeros: for a zero-size ``W`` of shape
    ``(0, 2**40)`` that asked NumPy for 4 TiB before the output's own check could name ``x``
    and ``W`` (audit finding); and an empty batch needs no bias at all."""
    with pytest.raises(MemoryError, match=r"dense: the output would have shape "
                                          r"\(5, 1099511627776\) .* from x of shape \(5, 0\)"):
        F.dense(np.zeros((5, 0), dtype), np.zeros((0, 2**40), dtype))
    y = F.dense(np.zeros((0, 0), dtype), np.zeros((0, 2**40), dtype))
    assert (y.shape, y.dtype) == ((0, 2**40), dtype)
    y = F.dense(np.zeros((0, 3), dtype), np.ones((3, 4), dtype), activation="relu")
    assert (y.shape, y.dtype) == ((0, 4), dtype)


UNARY = {
    "relu": (F.relu, F.relu_backward, lambda v: max(v, 0.0), "input"),
    "sigmoid": (F.sigmoid, F.sigmoid_backward, naive.sigmoid, "output"),
    "tanh": (F.tanh, F.tanh_backward, math.tanh, "output"),
}


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape", [(0,), (7,), (3, 4), (2, 3, 5), (70000,)])
def test_activation_forward_backward_match_oracle(backend, dtype, tol, name, shape):
    forward, backward, f, grad_from = UNARY[name]
    rng = np.random.default_rng(3)
    x = rand(rng, shape, dtype, scale=3)
    y = forward(x)
    assert y.shape == shape and y.dtype == dtype
    np.testing.assert_allclose(y, naive.elementwise(f, x), **tol)
    dout = rand(rng, shape, dtype)
    dx = backward(dout, x if grad_from == "input" else y)
    act = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}[name]
    want = naive.elementwise(lambda d, yy: naive.activation_grad(act, d, yy), dout, y)
    np.testing.assert_allclose(dx, want, **tol)


def test_relu_gradient_at_zero_is_zero(backend, dtype):
    x = np.array([-1.0, 0.0, 2.0], dtype=dtype)
    np.testing.assert_array_equal(F.relu_backward(np.ones(3, dtype), x), [0, 0, 1])
    # A unit that is cut off passes nothing, not even an inf or NaN gradient (dout * (x > 0)
    # would give NaN there).
    x = np.array([-1.0, 0.0, -0.0, -np.inf, 2.0], dtype=dtype)
    dout = np.array([np.inf, np.nan, -np.inf, np.nan, -3.0], dtype=dtype)
    got = F.relu_backward(dout, x)
    np.testing.assert_array_equal(got, [0, 0, 0, 0, -3])
    assert not np.signbit(got[:4]).any()        # +0.0, as np.where(x <= 0, 0, dout) gave


@pytest.mark.parametrize("repeats", [1, 20000])          # the serial and the parallel loop
def test_relu_gradient_passes_through_nan_as_pytorch(backend, dtype, repeats):
    """torch.relu's backward passes the gradient at a NaN input (its output is NaN); it was 0."""
    x = np.tile(np.array([np.nan, -1.0, 0.0, 2.0, -np.inf, np.inf], dtype=dtype), repeats)
    dout = np.tile(np.array([3.0, 4.0, 5.0, 6.0, 7.0, 8.0], dtype=dtype), repeats)
    want = np.tile(np.array([3.0, 0, 0, 6.0, 0, 8.0], dtype=dtype), repeats)
    np.testing.assert_array_equal(F.relu_backward(dout, x), want)
    # Fused into dense: the gradient is taken from the output y = relu(x @ W + b).
    y = F.relu(x.reshape(-1, 6))
    W = np.eye(6, dtype=dtype)
    with np.errstate(invalid="ignore", over="ignore"):      # NaN/inf in the GEMMs (NumPy)
        _, _, db = F.dense_backward(dout.reshape(-1, 6), y, W, y, "relu")
    np.testing.assert_allclose(db, want.reshape(-1, 6).sum(axis=0))


def test_sigmoid_never_overflows(backend, dtype):
    x = np.array([-1e4, -800, -100, 0, 100, 800, 1e4], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = F.sigmoid(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(y[[0, -1]], [0, 1])
    assert y[3] == 0.5


def test_non_contiguous_input(backend, dtype, tol):
    rng = np.random.default_rng(4)
    x = rand(rng, (6, 8), dtype)[:, ::2]
    assert not x.flags.c_contiguous
    np.testing.assert_allclose(F.sigmoid(x), naive.elementwise(naive.sigmoid, x), **tol)
    W = rand(rng, (5, 4), dtype).T           # Fortran-ordered view, shape (4, 5)
    np.testing.assert_allclose(F.dense(x, W), naive.dense(x, W, np.zeros(5)), **tol)


@pytest.mark.parametrize("shape", [(1, 1), (4, 10), (3, 1000)])
def test_softmax_forward_backward(backend, dtype, tol, shape):
    rng = np.random.default_rng(5)
    x = rand(rng, shape, dtype, scale=4)
    y = F.softmax(x)
    np.testing.assert_allclose(y, naive.softmax_rows(x), **tol)
    dout = rand(rng, shape, dtype)
    np.testing.assert_allclose(F.softmax_backward(dout, y), naive.softmax_backward_rows(dout, y),
                               **tol)


def test_softmax_last_axis_of_nd_input(backend, dtype, tol):
    x = np.arange(24, dtype=dtype).reshape(2, 3, 4) / 7
    y = F.softmax(x)
    np.testing.assert_allclose(y.reshape(-1, 4), naive.softmax_rows(x.reshape(-1, 4)), **tol)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_zero_dimensional_inputs_keep_their_shape(backend, dtype, name):
    x = np.array(-0.5, dtype=dtype)
    y = getattr(F, name)(x)
    assert isinstance(y, np.ndarray) and y.shape == () and y.dtype == dtype
    np.testing.assert_allclose(y, getattr(F, name)(x.reshape(1))[0])
    back = getattr(F, name + "_backward")(np.array(1.0, dtype=dtype), x if name == "relu" else y)
    assert back.shape == () and back.dtype == dtype


@pytest.mark.parametrize("plain", [True, False])
def test_a_dense_output_beyond_the_memory_available_now_is_refused(backend, dtype, plain,
                                                                   monkeypatch):
    """Small ``x`` and ``W`` can ask for a huge output (``(1e5, 1) @ (1, 55000)`` is 20 GiB),
    which Linux can grant and then kill the process writing it. The system is made to report
    256 MiB available: a 512 MiB output is refused before anything is allocated, on the fast
    path for plain arrays and on the checked one (no ``b``)."""
    from fastnet import _checks
    monkeypatch.setattr(_checks, "_available_memory", lambda: 2**28)
    n_out = 2**29 // np.dtype(dtype).itemsize // 1024
    x, W = np.ones((1024, 1), dtype), np.ones((1, n_out), dtype)
    b = np.zeros(n_out, dtype) if plain else None
    with pytest.raises(MemoryError, match=rf"dense: the output would have shape \(1024, "
                                          rf"{n_out}\) .* 0\.5 GiB, more than the 0\.2 GiB "
                                          rf"of memory available now .*; from x of shape "
                                          rf"\(1024, 1\) and W of shape \(1, {n_out}\)"):
        F.dense(x, W, b)
    assert F.dense(x[:2], W[:, :3], None if b is None else b[:3]).shape == (2, 3)


@pytest.mark.parametrize("serial", [False, True])
def test_passes_beside_blas_on_one_thread_or_several(monkeypatch, dtype, serial):
    """The Numba backend's bias+ReLU pass after a BLAS product and its activation-gradient pass
    before the backward's products run serially where OpenMP workers spin (``dense``'s
    ``SERIAL_BESIDE_BLAS``) and in parallel elsewhere; both give the float64 algebra's results
    for a layer big enough (90 000 outputs) for the parallel pass."""
    dense = pytest.importorskip("fastnet.kernels.numba_backend.dense")
    monkeypatch.setattr(dense, "SERIAL_BESIDE_BLAS", serial)
    monkeypatch.setattr(dense.dense_blocked, "AVAILABLE", False)      # every product on BLAS
    rng = np.random.default_rng(5)
    x, W, b, dout = (rng.standard_normal(s).astype(dtype)
                     for s in [(300, 64), (64, 300), (300,), (300, 300)])
    with fastnet.set_backend("numba"), fastnet.set_num_threads(2):
        y = F.dense(x, W, b, "relu")
        dx, dW, db = F.dense_backward(dout, x, W, y, "relu")
    x64, W64, dout64 = x.astype(float), W.astype(float), dout.astype(float)
    z = x64 @ W64 + b
    dz = np.where(z > 0, dout64, 0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in [(y, np.maximum(z, 0)), (dx, dz @ W64.T), (dW, x64.T @ dz),
                      (db, dz.sum(0))]:
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("serial", [False, True])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_smooth_activations_beside_blas_in_pieces(monkeypatch, dtype, serial, activation):
    """Beside BLAS the Numba backend runs sigmoid and tanh on one thread, in pieces below the
    parallel size (a parallel pass waited for a core held by BLAS's spinning worker: 0.73 ms
    for (1000, 100) float32, an audit's finding); every piece, the last short one included,
    gives the values of the activation over the whole output at once."""
    dense = pytest.importorskip("fastnet.kernels.numba_backend.dense")
    monkeypatch.setattr(dense, "SERIAL_BESIDE_BLAS", serial)
    monkeypatch.setattr(dense.dense_blocked, "AVAILABLE", False)      # every product on BLAS
    rng = np.random.default_rng(6)
    x, W, b = (rng.standard_normal(s).astype(dtype) for s in [(1001, 64), (64, 137), (137,)])
    with fastnet.set_backend("numba"):
        y = F.dense(x, W, b, activation)                    # 137 137 values: three pieces
        want = getattr(F, activation)(F.dense(x, W, b))
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("shape", [(300, 10), (7000, 10), (130, 511), (130, 512), (70, 1001)])
def test_softmax_rows_in_blocks_in_parallel_and_with_non_finite_values(backend, dtype, tol,
                                                                        shape):
    # The Numba backend takes rows narrower than 512 in blocks of ~2048 values (one flat exp
    # over a block), wider ones one by one, and both in parallel from 65536 values on: each
    # path against the definition evaluated in float64. A NaN or +inf makes its own row NaN
    # and no other; a -inf gets probability 0.
    rng = np.random.default_rng(shape[1])
    x = rand(rng, shape, dtype, scale=4)
    x[1, 3], x[2, 0], x[3, 1] = np.nan, np.inf, -np.inf
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        e = np.exp(x64 - x64.max(axis=1, keepdims=True))
        want = e / e.sum(axis=1, keepdims=True)
    y = F.softmax(x)
    assert np.isnan(y[1:3]).all() and not np.isnan(np.delete(y, [1, 2], axis=0)).any()
    assert y[3, 1] == 0
    np.testing.assert_allclose(y, want, **tol)
    dout = rand(rng, shape, dtype)
    y = np.delete(y, [1, 2], axis=0)
    dout = np.delete(dout, [1, 2], axis=0)
    y64, d64 = y.astype(np.float64), dout.astype(np.float64)
    want = y64 * (d64 - (d64 * y64).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(F.softmax_backward(dout, y), want, **tol)
