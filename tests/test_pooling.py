"""max/avg pooling: both backends x float32/float64 against the naive oracle, tie and NaN rules,
finite differences, bad inputs and PyTorch."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastnet
import fastnet.functional as F
from conftest import assert_raises_naming
import gradcheck
import naive


def assert_close(got, want, dtype):
    rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else (1e-12, 1e-12)
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def check_kernels(kern, dtype, N, C, L, kernel_size, stride, padding, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, L)).astype(dtype)
    y, argmax = kern.maxpool1d_forward(x, kernel_size, stride, padding)
    y_ref, arg_ref = naive.maxpool1d(x, kernel_size, stride, padding)
    assert_close(y, y_ref, dtype)
    assert argmax.dtype == np.int64
    np.testing.assert_array_equal(argmax, arg_ref)
    dout = rng.standard_normal(y.shape).astype(dtype)
    assert_close(kern.maxpool1d_backward(dout, argmax, L),
                 naive.maxpool1d_backward(dout, arg_ref, L), dtype)
    assert_close(kern.avgpool1d_forward(x, kernel_size, stride, padding),
                 naive.avgpool1d(x, kernel_size, stride, padding), dtype)
    assert_close(kern.avgpool1d_backward(dout, L, kernel_size, stride, padding),
                 naive.avgpool1d_backward(dout, L, kernel_size, stride, padding), dtype)


@pytest.mark.parametrize("stride", [1, 2, 3, 5])
@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4, 7])
def test_grid_matches_oracle(kern, dtype, kernel_size, stride):
    for padding in range(kernel_size // 2 + 1):
        for L in (max(kernel_size - 2 * padding, 1), 13):
            check_kernels(kern, dtype, 2, 3, L, kernel_size, stride, padding)


@settings(max_examples=30, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 4), kernel_size=st.integers(1, 6),
       stride=st.integers(1, 6), data=st.data(), seed=st.integers(0, 2**16))
def test_hypothesis_configurations(kern, dtype, N, C, kernel_size, stride, data, seed):
    padding = data.draw(st.integers(0, kernel_size // 2))
    L = data.draw(st.integers(max(kernel_size - 2 * padding, 1), 30))
    check_kernels(kern, dtype, N, C, L, kernel_size, stride, padding, seed)


def test_large_inputs_match_row_by_row(kern):
    """Rows of a large input pool exactly as the same rows pooled on their own."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 32, 100)).astype(np.float32)
    y, argmax = kern.maxpool1d_forward(x, 3, 2, 1)
    for r in (0, 31, 63):
        y1, a1 = kern.maxpool1d_forward(np.ascontiguousarray(x[r:r + 1]), 3, 2, 1)
        np.testing.assert_array_equal(y[r:r + 1], y1)
        np.testing.assert_array_equal(argmax[r:r + 1], a1)
    dx = kern.maxpool1d_backward(y, argmax, 100)
    np.testing.assert_allclose(dx[5], naive.maxpool1d_backward(y[5:6], argmax[5:6], 100)[0],
                               rtol=1e-6)
    a = kern.avgpool1d_forward(x, 4, 3, 2)
    np.testing.assert_allclose(a[7:8], naive.avgpool1d(x[7:8], 4, 3, 2), rtol=1e-5, atol=1e-6)
    da = kern.avgpool1d_backward(a, 100, 4, 3, 2)
    np.testing.assert_allclose(da[7:8], naive.avgpool1d_backward(a[7:8], 100, 4, 3, 2),
                               rtol=1e-5, atol=1e-6)


# --- documented conventions ------------------------------------------------------------------

def test_ties_go_to_the_first_index(backend, dtype):
    x = np.array([1, 3, 3, 2, 2, 0], dtype=dtype)
    y, idx = F.max_pool1d(x, 3, stride=1, return_indices=True)
    np.testing.assert_array_equal(y, [3, 3, 3, 2])
    np.testing.assert_array_equal(idx, [1, 1, 2, 3])
    dx = F.max_pool1d_backward(np.ones(4, dtype), idx, 6)
    np.testing.assert_array_equal(dx, [0, 2, 1, 1, 0, 0])    # overlapping windows accumulate


def test_padding_is_never_chosen(backend, dtype):
    x = -np.arange(1, 6, dtype=dtype)                        # all negative: -1 .. -5
    y, idx = F.max_pool1d(x, 3, stride=2, padding=1, return_indices=True)
    np.testing.assert_array_equal(y, [-1, -2, -4])
    np.testing.assert_array_equal(idx, [0, 1, 3])


def test_nan_propagates(backend, dtype):
    x = np.array([1, np.nan, 5, 2, np.nan, np.nan], dtype=dtype)
    y, idx = F.max_pool1d(x, 3, stride=1, return_indices=True)
    assert np.isnan(y).all()
    np.testing.assert_array_equal(idx, [1, 1, 4, 5])           # the last NaN, as PyTorch


def test_average_counts_padding(backend, dtype):
    x = np.array([3, 3, 3], dtype=dtype)
    np.testing.assert_allclose(F.avg_pool1d(x, 3, stride=1, padding=1), [2, 3, 2])
    dx = F.avg_pool1d_backward(np.ones(3, dtype), 3, 3, stride=1, padding=1)
    np.testing.assert_allclose(dx, [2 / 3, 1, 2 / 3])


def test_stride_defaults_to_kernel_size_and_ranks(backend, dtype):
    x = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    y = F.max_pool1d(x, 2)
    assert y.shape == (2, 3, 2)
    np.testing.assert_array_equal(y[1, 2], [21, 23])
    np.testing.assert_array_equal(F.max_pool1d(x[0], 2), y[0])
    np.testing.assert_array_equal(F.avg_pool1d(x[0, 0], 2), [0.5, 2.5])
    _, idx = F.max_pool1d(x[0], 2, return_indices=True)
    assert F.max_pool1d_backward(np.ones((3, 2), dtype), idx, 4).shape == (3, 4)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_finite_difference_gradients(backend, kind):
    rng = np.random.default_rng(4)
    x = rng.permutation(40).reshape(2, 2, 10) / 7.0          # distinct values: no ties
    R = rng.standard_normal((2, 2, 5))
    if kind == "max":
        _, idx = F.max_pool1d(x, 3, 2, 1, return_indices=True)
        dx = F.max_pool1d_backward(R, idx, 10)

        def loss():
            return float(np.sum(F.max_pool1d(x, 3, 2, 1) * R))
    else:
        dx = F.avg_pool1d_backward(R, 10, 3, 2, 1)

        def loss():
            return float(np.sum(F.avg_pool1d(x, 3, 2, 1) * R))
    gradcheck.check(loss, dx, x)


# --- bad inputs ------------------------------------------------------------------------------

def z(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


BAD = [
    (lambda: F.max_pool1d(z(1, 1, 4), 0), ValueError, ["kernel_size=0"]),
    (lambda: F.max_pool1d(z(1, 1, 4), 2, stride=0), ValueError, ["stride=0"]),
    (lambda: F.max_pool1d(z(1, 1, 4), 2, padding=-1), ValueError, ["padding=-1"]),
    (lambda: F.max_pool1d(z(1, 1, 4), 2, padding=2), ValueError, ["padding=2", "kernel_size // 2"]),
    (lambda: F.max_pool1d(z(1, 1, 4), 5), ValueError, ["output length 0", "input length 4"]),
    (lambda: F.max_pool1d(z(1, 1, 4), 2.0), TypeError, ["kernel_size", "2.0"]),
    (lambda: F.max_pool1d(z(1, 1, 4), True), TypeError, ["kernel_size", "True"]),
    (lambda: F.max_pool1d(np.zeros((1, 1, 4), int), 2), TypeError, ["x", "int64"]),
    (lambda: F.max_pool1d(z(1, 1, 1, 4), 2), ValueError, ["x", "(1, 1, 1, 4)"]),
    (lambda: F.max_pool1d(z(1, 0, 4), 2), ValueError, ["x", "(1, 0, 4)"]),
    (lambda: F.max_pool1d_backward(z(1, 1, 2), np.array([[[0, 4]]]), 4), ValueError,
     ["indices", "[0, 3]"]),
    (lambda: F.max_pool1d_backward(z(1, 1, 2), np.array([[[0, -1]]]), 4), ValueError,
     ["indices", "-1"]),
    (lambda: F.max_pool1d_backward(z(1, 1, 2), np.array([[[0., 1.]]]), 4), TypeError,
     ["indices", "float64"]),
    (lambda: F.max_pool1d_backward(z(1, 1, 2), np.array([[0, 1, 2]]), 4), ValueError,
     ["indices", "dout"]),
    (lambda: F.max_pool1d_backward(z(1, 1, 2), np.array([[[0, 1]]]), 0), ValueError,
     ["length=0"]),
    (lambda: F.avg_pool1d(z(1, 1, 4), 3, padding=2), ValueError, ["padding=2"]),
    (lambda: F.avg_pool1d_backward(z(1, 1, 3), 4, 2), ValueError, ["dout", "length 3", "2"]),
    (lambda: F.avg_pool1d_backward(z(1, 1, 2), 4, 2, stride=0), ValueError, ["stride=0"]),
]


@pytest.mark.parametrize("call, exc, words", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_inputs_raise_before_the_kernel(backend, call, exc, words):
    assert_raises_naming(call, exc, words)


# --- PyTorch ---------------------------------------------------------------------------------

def max_pool_as_torch(torch, x, kernel_size, stride, padding):
    """fastnet's max pooling of ``x`` with the values and indices of PyTorch's asserted equal;
    returns ``(y, idx)`` and PyTorch's input and output tensors, for the gradients."""
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = torch.nn.functional.max_pool1d(tx, kernel_size, stride, padding,
                                              return_indices=True)
    y, idx = F.max_pool1d(x, kernel_size, stride, padding, return_indices=True)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    return y, idx, tx, ty


@pytest.mark.parametrize("kernel_size, stride, padding", [(2, None, 0), (3, 1, 1), (4, 3, 2),
                                                          (5, 2, 0)])
def test_matches_torch(backend, kernel_size, stride, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4, 23))
    y, idx, tx, ty = max_pool_as_torch(torch, x, kernel_size, stride, padding)
    dout = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dout))
    np.testing.assert_allclose(F.max_pool1d_backward(dout, idx, 23), tx.grad.numpy(), rtol=1e-12)

    tx.grad = None
    ta = torch.nn.functional.avg_pool1d(tx, kernel_size, stride, padding)
    np.testing.assert_allclose(F.avg_pool1d(x, kernel_size, stride, padding),
                               ta.detach().numpy(), rtol=1e-12, atol=1e-14)
    ta.backward(torch.tensor(dout))
    np.testing.assert_allclose(F.avg_pool1d_backward(dout, 23, kernel_size, stride, padding),
                               tx.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kernel_size, stride, padding", [(2, None, 0), (3, 1, 1), (5, 2, 2),
                                                          (30, 1, 0)])
def test_ties_and_several_nans_per_window_as_torch(backend, dtype, kernel_size, stride, padding):
    """Ties take the first index, NaN the last: indices and gradients as PyTorch's (the last
    shape has fewer windows than taps, the NumPy backend's window-by-window path)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(kernel_size)
    x = rng.integers(-2, 3, (2, 3, 31)).astype(dtype)
    x[rng.random(x.shape) < 0.3] = np.nan
    x[0, 0, :4] = np.nan
    y, idx, tx, ty = max_pool_as_torch(torch, x, kernel_size, stride, padding)
    dout = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.tensor(dout))
    np.testing.assert_array_equal(F.max_pool1d_backward(dout, idx, 31), tx.grad.numpy())


@pytest.mark.parametrize("stride", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("kernel_size", [1, 2, 3, 5, 7, 9])
def test_long_rows_by_taps_keep_the_rules(backend, dtype, kernel_size, stride):
    """Rows with many windows take the Numba backend's tap-by-tap passes (strides 1-3 read in
    place, each a loop of its own; wider strides a row's phases first, or window by window
    where the windows are narrower than twice the stride; the windows at the ends one by one):
    ties (small integers), NaNs (the last wins) and every padding, against the oracle."""
    rng = np.random.default_rng(kernel_size * 10 + stride)
    x = rng.integers(-2, 3, (2, 2, 300 * stride + 1)).astype(dtype)
    x[rng.random(x.shape) < 0.05] = np.nan
    for padding in range(kernel_size // 2 + 1):
        y, idx = F.max_pool1d(x, kernel_size, stride, padding, return_indices=True)
        want_y, want_idx = naive.maxpool1d(x, kernel_size, stride, padding)
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(idx, want_idx)


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4, 7])
def test_avg_pool_long_rows_by_taps(backend, dtype, kernel_size, stride):
    """The Numba backend's average pooling sums and spreads the windows inside a row one tap at
    a time (strides 1 and 2 each a loop of its own; windows that tile, kernel_size == stride
    from 2 to 4, each in one step) and the windows at the ends one by one: every padding
    against the oracle, forward and backward."""
    rng = np.random.default_rng(kernel_size * 10 + stride)
    x = rng.standard_normal((2, 3, 200 * stride + 1)).astype(dtype)
    for padding in range(kernel_size // 2 + 1):
        y = F.avg_pool1d(x, kernel_size, stride, padding)
        assert_close(y, naive.avgpool1d(x, kernel_size, stride, padding), dtype)
        dout = rng.standard_normal(y.shape).astype(dtype)
        assert_close(F.avg_pool1d_backward(dout, x.shape[2], kernel_size, stride, padding),
                     naive.avgpool1d_backward(dout, x.shape[2], kernel_size, stride, padding),
                     dtype)


@pytest.mark.parametrize("shape, kernel_size", [((4, 5, 28), 2), ((3, 2, 12), 3), ((1, 1, 8), 2),
                                                ((4, 5, 29), 2), ((2, 3, 20), 4)])
def test_avg_pool_windows_that_tile_their_rows(backend, dtype, shape, kernel_size):
    """Windows that tile every row exactly (kernel_size == stride, no padding, nothing left
    over) make the whole batch one row in the Numba backend: each window's mean and gradient
    stay its own row's (a row that does not tile, (4, 5, 29), keeps its rows)."""
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    y = F.avg_pool1d(x, kernel_size)
    assert_close(y, naive.avgpool1d(x, kernel_size, kernel_size, 0), dtype)
    dout = rng.standard_normal(y.shape).astype(dtype)
    assert_close(F.avg_pool1d_backward(dout, shape[2], kernel_size),
                 naive.avgpool1d_backward(dout, shape[2], kernel_size, kernel_size, 0), dtype)


@pytest.mark.parametrize("stride, kernel_size, windows", [(1, 3, 64), (2, 3, 28), (3, 5, 28),
                                                        (3, 7, 64), (4, 8, 64), (1, 2, 8),
                                                        (3, 2, 8)])
def test_rows_either_side_of_the_by_taps_thresholds(backend, dtype, stride, kernel_size, windows):
    """Rows with one or two inner windows fewer or more than the Numba backend needs to take a
    row by taps (``pooling.BY_TAPS_MIN_WINDOWS``, ``STRIDED_MIN_WINDOWS`` for max pooling,
    ``AVG_BY_TAPS_MIN_WINDOWS`` for average pooling), every padding and every length in
    between: the same values and indices as the oracle either way, and the same means."""
    rng = np.random.default_rng(stride * 100 + kernel_size)
    lo = (windows - 3) * stride + kernel_size
    for L in range(lo, lo + 6 * stride + 1):
        x = rng.integers(-2, 3, (2, 2, L)).astype(dtype)
        x[rng.random(x.shape) < 0.05] = np.nan
        for padding in range(kernel_size // 2 + 1):
            y, idx = F.max_pool1d(x, kernel_size, stride, padding, return_indices=True)
            want_y, want_idx = naive.maxpool1d(x, kernel_size, stride, padding)
            np.testing.assert_array_equal(y, want_y, err_msg=f"L={L}, padding={padding}")
            np.testing.assert_array_equal(idx, want_idx, err_msg=f"L={L}, padding={padding}")
            finite = np.nan_to_num(x)
            mean = F.avg_pool1d(finite, kernel_size, stride, padding)
            assert_close(mean, naive.avgpool1d(finite, kernel_size, stride, padding), dtype)
            assert_close(F.avg_pool1d_backward(mean, L, kernel_size, stride, padding),
                         naive.avgpool1d_backward(mean, L, kernel_size, stride, padding), dtype)


@pytest.mark.parametrize("L", [2, 7, 28])
def test_window_two_stride_two_path_keeps_the_rules(backend, dtype, L):
    """k=2, s=2, p=0 has its own branch-free Numba loop: ties, NaNs (the last wins) and an odd
    tail against the oracle."""
    rng = np.random.default_rng(L)
    x = rng.integers(-2, 3, (3, 4, L)).astype(dtype)              # many ties
    x[0, 0, :2] = [np.nan, 1]
    x[0, 1, :2] = [1, np.nan]
    x[0, 2, :2] = [np.nan, np.nan]
    y, idx = F.max_pool1d(x, 2, return_indices=True)
    want_y, want_idx = naive.maxpool1d(x, 2, 2, 0)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)
    assert idx[0, 2, 0] == 1 and idx[0, 1, 0] == 1 and idx[0, 0, 0] == 0


@pytest.mark.parametrize("shape", [(5, 40, 28), (3, 7, 14), (1, 1, 2)])
def test_window_two_stride_two_over_many_blocks(backend, dtype, shape):
    """The k=2, s=2 loops run over flat blocks of whole rows: inputs spanning several blocks (and
    rows that do not fill the last one) match the oracle, forward and backward."""
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-3, 4, shape).astype(dtype)
    y, idx = F.max_pool1d(x, 2, return_indices=True)
    want_y, want_idx = naive.maxpool1d(x, 2, 2, 0)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)
    dout = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(F.max_pool1d_backward(dout, idx, shape[-1]),
                                  naive.maxpool1d_backward(dout, want_idx, shape[-1]))


@pytest.mark.parametrize("N", [4, 40])            # 40: big enough to split over two threads
@pytest.mark.parametrize("where", ["random", "first", "last", "one_before", "two_after"])
def test_backward_takes_any_indices(backend, dtype, where, N):
    """max_pool1d_backward accepts any in-range indices, not only a k=2, s=2 pooling's: with
    ``length == 2*L_out`` the Numba backend first tries the pattern of such a pooling and must
    fall back to the general scatter when one index breaks it (repeats accumulate), also when
    the index is just outside its window (offsets -1 and 2 beside the pattern's 0 and 1), and
    when it is in either thread's part of the batch."""
    rng = np.random.default_rng(7)
    C, L_out = 60, 14
    dout = rng.standard_normal((N, C, L_out)).astype(dtype)
    if where == "random":
        idx = rng.integers(0, 2 * L_out, (N, C, L_out))
    else:
        idx = np.broadcast_to(2 * np.arange(L_out), (N, C, L_out)).copy()
        # only one index breaks the pattern
        at, value = {"first": ((0, 0, 0), 5), "last": ((-1, -1, -1), 0),
                     "one_before": ((2, 30, 5), 9), "two_after": ((1, 7, 5), 12)}[where]
        idx[at] = value
    with fastnet.set_num_threads(2):
        got = F.max_pool1d_backward(dout, idx, 2 * L_out)
    np.testing.assert_allclose(got, naive.maxpool1d_backward(dout, idx, 2 * L_out), rtol=1e-6,
                               atol=1e-6)   # repeats sum in float32


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(40, 60, 28), (3, 5, 2), (0, 4, 6)])
def test_windows_of_two_on_any_thread_count(backend, dtype, shape, threads):
    """The k=2, s=2 passes split the rows over threads from 65536 input values on (the first
    shape): each thread's part gives what one thread gives, ties, NaN and the empty batch
    included."""
    x = np.random.default_rng(11).integers(-3, 4, shape).astype(dtype)   # many ties
    if x.size:
        x.flat[::97] = np.nan
    with fastnet.set_num_threads(threads):
        y, idx = F.max_pool1d(x, 2, return_indices=True)
        dout = np.random.default_rng(12).standard_normal(y.shape).astype(dtype)
        dx = F.max_pool1d_backward(dout, idx, shape[-1])
    want_y, want_idx = naive.maxpool1d(x, 2, 2, 0)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(dx, naive.maxpool1d_backward(dout, want_idx, shape[-1]))


def test_huge_windows_cost_what_the_input_costs(backend):
    """A window of 2**24 over 3 elements: the NumPy baseline once looped over every tap (~23 s,
    about an hour at the size limit); both backends now cost what the input costs."""
    K, pad = 2 ** 24, 2 ** 23 - 1
    dx = F.avg_pool1d_backward(np.ones((1, 1, 1), np.float32), 3, K, padding=pad)
    np.testing.assert_array_equal(dx, np.full((1, 1, 3), 1 / K, np.float32))


@pytest.mark.parametrize("shape", [(0, 1, 2 ** 40), (0, 3, 2 ** 40), (0, 2, 5)])
@pytest.mark.parametrize("kernel_size, padding", [(2, 0), (2 ** 20, 2 ** 19)])
def test_empty_batches_of_any_length_give_empty_outputs(backend, dtype, shape, kernel_size,
                                                       padding):
    """A zero-size input of length 2**40 costs no memory: the NumPy baseline's pooling asked
    for a 4 TiB array of window starts, or a window view too big to exist (errors naming no
    argument), where the Numba backend and the convolution return empty arrays (audit
    finding)."""
    x = np.zeros(shape, dtype)
    L_out = (shape[2] + 2 * padding - kernel_size) // kernel_size + 1
    y, idx = F.max_pool1d(x, kernel_size, padding=padding, return_indices=True)
    assert (y.shape, y.dtype, idx.shape, idx.dtype) == ((*shape[:2], L_out), dtype,
                                                      (*shape[:2], L_out), np.int64)
    mean = F.avg_pool1d(x, kernel_size, padding=padding)
    assert (mean.shape, mean.dtype) == ((*shape[:2], L_out), dtype)
    if shape[2] < 2 ** 31:            # the backward's length is at most 2**31 - 1 (checked)
        for dx in (F.max_pool1d_backward(y, idx, shape[2]),
                   F.avg_pool1d_backward(mean, shape[2], kernel_size, padding=padding)):
            assert (dx.shape, dx.dtype) == (shape, dtype)


@pytest.mark.parametrize("stride", [None, 3])
def test_huge_window_forwards_reduce_the_real_elements(backend, dtype, stride):
    """One window of 2**31 - 1 over 8 elements (padding 2**30 - 1): the NumPy baseline padded
    explicitly and asked for gigabytes (MemoryError); both backends now reduce what the windows
    cover, the -inf padding never winning a maximum and the zero padding counting in the mean."""
    K, pad = 2 ** 31 - 1, 2 ** 30 - 1
    x = np.random.default_rng(3).standard_normal((2, 3, 8)).astype(dtype)
    y, idx = F.max_pool1d(x, K, stride, padding=pad, return_indices=True)
    n_out = (8 + 2 * pad - K) // (stride or K) + 1
    assert y.shape == idx.shape == (2, 3, n_out)
    for l in range(n_out):
        lo = max(0, l * (stride or K) - pad)             # the windows all run past the end
        np.testing.assert_array_equal(idx[:, :, l], lo + x[:, :, lo:].argmax(axis=2))
        np.testing.assert_array_equal(y[:, :, l], x[:, :, lo:].max(axis=2))
        assert_close(F.avg_pool1d(x, K, stride, padding=pad)[:, :, l],
                     x[:, :, lo:].astype(np.float64).sum(axis=2) / K, dtype)


def test_max_pool_layer_backward_matches_the_checked_function(backend):
    """The layer skips the range check of its own indices; the result is the same."""
    from fastnet.layers import MaxPool1d
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)
    dout = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    pool = MaxPool1d(2)
    pool.forward(x)
    _, idx = F.max_pool1d(x, 2, return_indices=True)
    np.testing.assert_array_equal(pool.backward(dout), F.max_pool1d_backward(dout, idx, 8))


@pytest.mark.parametrize("shape", [(2, 3, 3), (2, 3, 5, 1), (6, 4), (2, 3)])
def test_max_pool_layer_refuses_a_dout_of_another_shape(backend, shape):
    from fastnet.layers import MaxPool1d
    pool = MaxPool1d(2)
    pool.forward(np.zeros((2, 3, 8), np.float32))
    assert_raises_naming(lambda: pool.backward(np.ones(shape, np.float32)), ValueError,
                         ["MaxPool1d.backward", "dout", str(shape)])


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_a_gradient_beyond_the_memory_available_now_is_refused(backend, dtype, pool,
                                                               monkeypatch):
    """``length`` is the caller's word: a one-element ``dout`` with ``length=5 * 10**9`` asked
    for a 20 GiB gradient, which Linux can grant and then kill the process writing it. The
    system is made to report 256 MiB available, so a 512 MiB gradient is refused before
    anything is allocated, and a small one is not."""
    from fastnet import _checks
    monkeypatch.setattr(_checks, "_available_memory", lambda: 2**28)
    length = 2**29 // np.dtype(dtype).itemsize
    dout = np.ones((1, 1, 1), dtype)

    def grad(length):
        if pool == "max":
            return F.max_pool1d_backward(dout, np.zeros((1, 1, 1), np.int64), length)
        return F.avg_pool1d_backward(dout, length, length)

    with pytest.raises(MemoryError, match=rf"{pool}_pool1d_backward: the output would have shape "
                                          rf"\(1, 1, {length}\) .* 0\.5 GiB, more than the "
                                          rf"0\.2 GiB of memory available now .*; from "
                                          rf"length={length} for dout of shape \(1, 1, 1\)"):
        grad(length)
    assert grad(100).shape == (1, 1, 100)


_UNCOMPILED = """
import json, sys
import numpy as np
import fastnet
import fastnet.functional as F
x = np.array(json.loads(sys.argv[1]), np.float64)
with fastnet.set_backend("numba"):
    y, idx = F.max_pool1d(x, 2, return_indices=True)
    dx = F.max_pool1d_backward(np.arange(y.size, dtype=x.dtype).reshape(y.shape), idx,
                               x.shape[-1])
print(json.dumps([y.tolist(), idx.tolist(), dx.tolist()]))
"""


def test_windows_of_two_run_uncompiled():
    """With NUMBA_DISABLE_JIT=1 (coverage runs) the k=2 passes run as plain Python, outside the
    slots whose intrinsics need compiled code: the same results, ties and NaN included."""
    x = np.array([[[1.0, 1.0, 3.0, 2.0, np.nan, 5.0, -1.0, np.nan]],
                  [[0.0, -0.0, 7.0, 8.0, 2.0, 2.0, np.inf, 4.0]]])
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", _UNCOMPILED, json.dumps(x.tolist())], env=env,
                         capture_output=True, text=True, check=True).stdout
    y, idx, dx = (np.array(a, dtype=dt) for a, dt in zip(json.loads(out),
                                                         (float, np.int64, float)))
    want_y, want_idx = naive.maxpool1d(x, 2, 2, 0)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)
    dout = np.arange(y.size, dtype=float).reshape(y.shape)
    np.testing.assert_array_equal(dx, naive.maxpool1d_backward(dout, want_idx, x.shape[-1]))
