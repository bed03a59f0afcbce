"""``dense_backward_adagrad_``: the dense backward with AdaGrad's step of the weights taken at
once, on both backends and dtypes: bit for bit the two kernels in turn, and the oracle's
values. (Where ``fit`` uses it: ``test_dense_chain.py``.)"""
import numpy as np
import pytest

import fastnet
import naive
from fastnet.kernels import load

LR, EPS = 0.01, 1e-7
#: Small shapes take the two kernels in turn on both backends; from ~0.5 M multiply-adds the
#: Numba backend fuses the step with the weight gradient's product on its micro-kernel: one
#: row, two, a short last row block (250 = 25 blocks of 10, 101 = 10 and a row), masked column
#: tails (170, 301, 500, 700 columns) and the notebooks' 784 -> 400 at batch 20.
SHAPES = [(3, 5, 4), (1, 784, 700), (2, 600, 500), (13, 250, 170), (20, 101, 301),
          (20, 784, 400)]


def operands(rng, N, K, M, dtype, activation):
    x = rng.standard_normal((N, K)).astype(dtype)
    W = (rng.standard_normal((K, M)) * 0.1).astype(dtype)
    h = rng.random((K, M)).astype(dtype)
    h[0, :3] = 0                       # a fresh state: the first step divides by eps
    dout = rng.standard_normal((N, M)).astype(dtype)
    y = load("numpy").dense_forward(x, W, np.zeros(M, dtype), activation)
    return x, W, h, dout, y


@pytest.mark.parametrize("activation", ["none", "relu", "sigmoid"])
@pytest.mark.parametrize("N, K, M", SHAPES)
def test_it_is_the_backward_then_the_update_bit_for_bit(kern, dtype, activation, N, K, M):
    rng = np.random.default_rng(N * 7 + K + M)
    x, W, h, dout, y = operands(rng, N, K, M, dtype, activation)
    dout[-1, 1] = np.nan               # NaN reaches column 1 of dW, of W and of h, as unfused
    dx, dW, db = kern.dense_backward(dout, x, W, y, activation, True)
    W_want, h_want = W.copy(), h.copy()
    kern.adagrad_update_(W_want, dW, h_want, LR, EPS)
    for need_dx in (True, False):
        W_got, h_got = W.copy(), h.copy()
        dx_got, db_got = kern.dense_backward_adagrad_(W_got, h_got, dout, x, y, activation,
                                                      need_dx, LR, EPS)
        np.testing.assert_array_equal(W_got, W_want)
        np.testing.assert_array_equal(h_got, h_want)
        np.testing.assert_array_equal(db_got, db)
        if need_dx:                    # from W as it was before the step
            np.testing.assert_array_equal(dx_got, dx)
        else:
            assert dx_got is None
    if activation == "none":           # (ReLU's gradient may be 0 there: then no NaN at all)
        assert np.isnan(W_want[:, 1]).all() and np.isfinite(np.delete(W_want, 1, axis=1)).all()


@pytest.mark.parametrize("N, K, M", [(3, 5, 4), (20, 101, 301)])
def test_it_matches_the_oracle(kern, dtype, tol, N, K, M):
    rng = np.random.default_rng(K)
    x, W, h, dout, y = operands(rng, N, K, M, dtype, "relu")
    dx_want, dW, db_want = naive.dense_backward(dout, x, W, y, "relu")
    W_want, h_want = naive.adagrad(W.astype(np.float64), dW, h.astype(np.float64), LR, EPS)
    dx, db = kern.dense_backward_adagrad_(W, h, dout, x, y, "relu", True, LR, EPS)
    for got, want in ((W, W_want), (h, h_want), (dx, dx_want), (db, db_want)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)


def test_the_numba_backend_fuses_the_step_on_its_micro_kernel(monkeypatch):
    """At the notebooks' 784 -> 400, and at a layer under ``MIN_MACS`` whose backward takes the
    micro-kernel, the weight gradient is never computed on its own; at a small layer the two
    kernels run in turn."""
    from fastnet.kernels.numba_backend import dense, dense_blocked
    if not dense_blocked.AVAILABLE:
        pytest.skip("no micro-kernel on this host (AVX-512)")
    calls = []
    for name in ("transposed_times", "transposed_times_adagrad_"):
        original = getattr(dense_blocked, name)
        monkeypatch.setattr(dense_blocked, name,
                            lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    rng = np.random.default_rng(0)
    for N, K, M in [(20, 784, 400), (64, 100, 100), (3, 5, 4)]:
        x, W, h, dout, y = operands(rng, N, K, M, np.float64, "relu")
        dense.dense_backward_adagrad_(W, h, dout, x, y, "relu", False, LR, EPS)
    assert calls == ["transposed_times_adagrad_"] * 2


#: ``(N, N2, K, M)``: a batch, then the next one. The Numba backend multiplies the next batch
#: inside the update where both products run on its micro-kernel and the forward's reduction is
#: split as the update splits ``W`` (the notebooks' 784 -> 400 at batch 20, a short next batch,
#: float32 at batch 128, short row blocks and masked column tails); elsewhere the two in turn
#: (tiny layers, a next batch of one row, or of 200 rows, whose forward splits the columns, or a
#: layer under ``MIN_MACS``: its backward on the micro-kernel, its forward on BLAS).
AHEAD_SHAPES = [(20, 20, 784, 400), (20, 7, 784, 400), (128, 128, 784, 400),
                (13, 17, 250, 330), (20, 1, 784, 400), (20, 200, 784, 400), (3, 4, 5, 6),
                (13, 17, 250, 170)]


@pytest.mark.parametrize("activation", ["none", "relu", "tanh"])
@pytest.mark.parametrize("N, N2, K, M", AHEAD_SHAPES)
def test_ahead_is_the_step_then_the_next_forward_bit_for_bit(kern, dtype, activation, N, N2, K,
                                                              M):
    """``dense_backward_adagrad_ahead_`` and then ``dense_bias_act_`` on its product: the
    step, then ``dense_forward`` of the next batch with the updated ``W``, bit for bit."""
    rng = np.random.default_rng(N + N2 + K + M)
    x, W, h, dout, y = operands(rng, N, K, M, dtype, activation)
    x_next = rng.standard_normal((N2, K)).astype(dtype)
    x_next[0, 3] = np.inf if N2 > 2 else 0          # inf reaches row 0 of the next product
    b = rng.standard_normal(M).astype(dtype)
    W_want, h_want = W.copy(), h.copy()
    dx, db = kern.dense_backward_adagrad_(W_want, h_want, dout, x, y, activation, True, LR, EPS)
    with np.errstate(invalid="ignore"):
        y_next = kern.dense_forward(x_next, W_want, b, activation)
        for need_dx in (True, False):
            W_got, h_got = W.copy(), h.copy()
            dx_got, db_got, xw = kern.dense_backward_adagrad_ahead_(
                W_got, h_got, dout, x, y, activation, need_dx, LR, EPS, x_next)
            assert xw.shape == (N2, M) and xw.dtype == dtype and xw.flags.c_contiguous
            assert np.isfinite(xw[0]).all() == (N2 <= 2)
            kern.dense_bias_act_(xw, b, activation)
            for got, want in ((W_got, W_want), (h_got, h_want), (db_got, db), (xw, y_next)):
                np.testing.assert_array_equal(got, want)
            assert dx_got is None if not need_dx else np.array_equal(dx_got, dx)


#: ``(N, N2, K, M)`` where a part's last row block of ``W`` ends a full slab of the next
#: product and then the part's short last slab: 260 rows on one part (one thread: slabs [0, 256)
#: and [256, 260) both end in the block at 250), 512 and 1030 rows on two parts (part 0's rows
#: end at 260 and 520). An audit found the short slab left out, so ``fit`` with AdaGrad trained
#: on a wrong first layer at these input widths (784 was not one of them).
TWO_SLAB_SHAPES = [(10, 10, 260, 400), (20, 20, 512, 256), (20, 16, 1030, 128)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("N, N2, K, M", TWO_SLAB_SHAPES)
def test_ahead_multiplies_every_slab_at_any_thread_count(kern, dtype, threads, N, N2, K, M):
    rng = np.random.default_rng(K)
    x, W, h, dout, y = operands(rng, N, K, M, dtype, "relu")
    x_next = rng.standard_normal((N2, K)).astype(dtype)
    b = np.zeros(M, dtype)
    with fastnet.set_num_threads(threads):            # (capped at the usable CPUs)
        W_want, h_want = W.copy(), h.copy()
        kern.dense_backward_adagrad_(W_want, h_want, dout, x, y, "relu", False, LR, EPS)
        y_next = kern.dense_forward(x_next, W_want, b, "relu")
        _, _, xw = kern.dense_backward_adagrad_ahead_(W, h, dout, x, y, "relu", False, LR, EPS,
                                                      x_next)
    kern.dense_bias_act_(xw, b, "relu")
    np.testing.assert_array_equal(W, W_want)
    np.testing.assert_array_equal(xw, y_next)


def test_the_numba_backend_multiplies_the_next_batch_inside_the_update(monkeypatch):
    """At the notebooks' 784 -> 400 the next batch's product is taken in the update's slot (no
    ``times`` call after it); with a next batch of one row, the two in turn."""
    from fastnet.kernels.numba_backend import dense, dense_blocked
    if not dense_blocked.AVAILABLE:
        pytest.skip("no micro-kernel on this host (AVX-512)")
    calls = []
    for name in ("times", "transposed_times_adagrad_"):
        original = getattr(dense_blocked, name)
        monkeypatch.setattr(dense_blocked, name, lambda *a, _f=original, _n=name:
                            calls.append((_n, len(a))) or _f(*a))
    rng = np.random.default_rng(0)
    for N2 in (20, 1):
        x, W, h, dout, y = operands(rng, 20, 784, 400, np.float64, "relu")
        dense.dense_backward_adagrad_ahead_(W, h, dout, x, y, "relu", False, LR, EPS,
                                            rng.standard_normal((N2, 784)))
    # With x_next (7 arguments), then without; the row of one goes to BLAS, as in the forward.
    assert calls == [("transposed_times_adagrad_", 7), ("transposed_times_adagrad_", 6)]
