"""conv1d: both backends x float32/float64 against the naive-loop oracle, the notebook's worked
examples, finite differences, odd layouts, bad inputs, determinism and PyTorch."""
import functools
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastnet
import fastnet.functional as F
import gradcheck
import naive
from conftest import assert_raises_naming
from fastnet.kernels import load


def tolerances(dtype):
    """(rtol, atol) against the float64 oracle; sums here have up to ~35 terms of O(1)."""
    return (1e-4, 1e-4) if dtype == np.float32 else (1e-10, 1e-10)


def assert_close(got, want, dtype):
    rtol, atol = tolerances(dtype)
    assert got.dtype == dtype
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@functools.lru_cache(maxsize=None)
def problem(N, C_in, C_out, L, K, stride, pl, pr, dilation, seed=0):
    """Float64 inputs and the oracle's outputs for one configuration (shared by dtypes/backends)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C_in, L))
    W = rng.standard_normal((C_out, C_in, K))
    b = rng.standard_normal(C_out)
    y = naive.conv1d(x, W, b, stride, pl, pr, dilation)
    dout = rng.standard_normal(y.shape)
    grads = naive.conv1d_backward(dout, x, W, stride, pl, pr, dilation)
    return x, W, b, y, dout, grads


#: The fused activations: forward, and the derivative from the output (float64 oracle).
ACTIVATIONS = {"relu": (lambda z: np.maximum(z, 0), lambda y: (y > 0).astype(float)),
               "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda y: y * (1 - y)),
               "tanh": (np.tanh, lambda y: 1 - y * y)}


def check_kernels(kern, dtype, *config):
    x, W, b, y, dout, (dx, dW, db) = problem(*config)
    stride, pl, pr, dilation = config[5:9]
    hyper = (stride, pl, pr, dilation)
    cast = [a.astype(dtype) for a in (x, W, b, dout)]
    x, W, b, dout = cast
    assert_close(kern.conv1d_forward(x, W, b, *hyper, "none"), y, dtype)
    got = kern.conv1d_backward(dout, x, W, dout, "none", *hyper, True)
    for g, want in zip(got, (dx, dW, db)):
        assert_close(g, want, dtype)
        assert g.flags.c_contiguous
    no_dx, dW2, db2 = kern.conv1d_backward(dout, x, W, dout, "none", *hyper, False)
    assert no_dx is None
    assert_close(dW2, dW, dtype)
    assert_close(db2, db, dtype)
    for name, (act, act_grad) in ACTIVATIONS.items():
        y_act = act(y).astype(dtype)                   # the backward reads this output
        assert_close(kern.conv1d_forward(x, W, b, *hyper, name), act(y), dtype)
        dz = dout.astype(np.float64) * act_grad(y_act.astype(np.float64))
        want = naive.conv1d_backward(dz, x.astype(np.float64), W.astype(np.float64), *hyper)
        for g, w in zip(kern.conv1d_backward(dout, x, W, y_act, name, *hyper, True), want):
            assert_close(g, w, dtype)


def min_length(K, pl, pr, dilation):
    return max(dilation * (K - 1) + 1 - pl - pr, 1)


# --- kernels against the oracle: the grid -----------------------------------------------------

PADDINGS = [(0, 0), (1, 1), (2, 2), (3, 3), (2, 0), (0, 3), (1, 2)]


@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("pl, pr", PADDINGS)
@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_grid_matches_oracle(kern, dtype, stride, pl, pr, dilation):
    """stride 1..4 x padding 0..3 (+ asymmetric) x dilation 1..3, each with K = 1..7; C_in
    cycles through 1..5 so that every (K, C_in) pair appears across the grid. Lengths are the
    shortest legal one plus a stride-dependent tail, so the last windows and the skipped
    positions of large strides are both exercised."""
    for K in range(1, 8):
        C_in = 1 + (K + stride + dilation + pl) % 5
        L = min_length(K, pl, pr, dilation) + (K + 2 * stride) % 7
        check_kernels(kern, dtype, 2, C_in, 3, L, K, stride, pl, pr, dilation)


@pytest.mark.parametrize("C_in", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("K", [1, 2, 3, 5, 7])
def test_channels_by_kernel_size(kern, dtype, C_in, K):
    check_kernels(kern, dtype, 3, C_in, 4, 11 + 2 * K, K, 2, 1, 2, 2)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), C_in=st.integers(1, 6), C_out=st.integers(1, 4),
       K=st.integers(1, 7), stride=st.integers(1, 5), pl=st.integers(0, 4), pr=st.integers(0, 4),
       dilation=st.integers(1, 4), extra=st.integers(0, 12), seed=st.integers(0, 2**16))
def test_hypothesis_configurations(kern, dtype, N, C_in, C_out, K, stride, pl, pr, dilation,
                                   extra, seed):
    L = min_length(K, pl, pr, dilation) + extra
    check_kernels(kern, dtype, N, C_in, C_out, L, K, stride, pl, pr, dilation, seed)


@pytest.mark.parametrize("strategy", ["direct", "rows", "blocked", "blocked-chunked",
                                      "blocked-split", "gemm", "gemm-chunked", "gemm-split",
                                      "gemm-split-chunked", "gemm-windows", "gemm-split-windows",
                                      "matmul", "matmul-chunked"])
@pytest.mark.parametrize("config", [
    (3, 1, 2, 40, 3, 1, 0, 0, 1),     # few channels, no padding
    (2, 2, 3, 33, 5, 3, 2, 1, 2),     # stride > 1, asymmetric padding, dilation
    (4, 7, 5, 17, 3, 2, 1, 1, 1),     # many channels
    (2, 6, 3, 9, 1, 4, 0, 0, 1),      # K=1 with stride 4: skipped input positions
    (2, 3, 2, 12, 4, 1, 3, 3, 3),     # taps entirely in the padding for the first outputs
    (3, 4, 3, 15, 5, 2, 1, 2, 1),     # K > stride: windows every 3rd output (ceil(K/stride))
    (2, 3, 4, 4, 5, 2, 1, 0, 1),      # fewer outputs (1) than that
    (3, 3, 32, 2, 3, 1, 1, 40, 1),    # right padding far past the input: 41 outputs from 2
    (3, 5, 40, 37, 3, 1, 1, 1, 1),    # channels and outputs past one vector, neither a multiple
])
def test_numba_both_strategies(dtype, monkeypatch, strategy, config):
    """The Numba backend picks direct loops or, for many channels, one GEMM against the weights
    as they lie where the output positions are few (rows), else the blocked micro-kernels
    (im2col + GEMM where they are not available); force each on every case. The blocked path
    also with the smallest backward chunks (two items: dW, db summed over chunks) and with the batch
    split over two threads at every size (summed over parts); the GEMM path likewise, with the
    windows chain (one item per chunk, GEMMs on the padded item in place; dilation 1 only, the
    others keep im2col), and with NumPy's matmul in place of BLAS called from Numba (the path for
    NumPy builds without it). The blocked path runs on any x86 host (AVX2 spills registers)."""
    nb_conv = pytest.importorskip("fastnet.kernels.numba_backend.conv1d")
    monkeypatch.setattr(nb_conv, "_use_gemm", lambda *shape: strategy != "direct")
    monkeypatch.setattr(nb_conv.conv1d_rows, "pays", lambda *shape: strategy == "rows")
    monkeypatch.setattr(nb_conv.conv1d_rows, "pays_forward", lambda *shape: False)
    monkeypatch.setattr(nb_conv.conv1d_blocked, "AVAILABLE", strategy.startswith("blocked"))
    if strategy == "blocked-chunked":
        monkeypatch.setattr(nb_conv.conv1d_blocked, "CHUNK_BYTES", 1)
    if strategy == "blocked-split":
        monkeypatch.setattr(nb_conv.conv1d_blocked, "SPLIT_MIN_MACS", 0)
    if strategy.endswith(("chunked", "windows")):
        monkeypatch.setattr(nb_conv, "GEMM_CHUNK_BYTES", 1)
        monkeypatch.setattr(nb_conv, "GEMM_MIN_ROWS_PER_CHANNEL", 0)
    if strategy.endswith("chunked"):
        monkeypatch.setattr(nb_conv, "_windows", lambda *shape: None)
    if strategy.startswith("gemm-split"):
        monkeypatch.setattr(nb_conv, "SPLIT_MIN_VALUES", 0)
    if strategy.startswith("matmul"):
        monkeypatch.setattr(nb_conv._blas, "available", lambda: False)
    elif strategy.startswith("gemm") and not nb_conv._blas.available():
        pytest.skip("NumPy's BLAS cannot be called from Numba here")
    with fastnet.set_num_threads(2):
        check_kernels(load("numba"), dtype, *config)


@pytest.mark.parametrize("config", [
    (1, 64, 128, 9, 9, 1, 0, 0, 1),       # one output position, 73 728 weights: parallel dW
    (3, 32, 40, 6, 3, 2, 1, 1, 1),        # three positions an item, stride 2, padding
    (6, 16, 24, 3, 3, 1, 0, 0, 1),        # one position an item: dW summed by BLAS
    (2, 24, 20, 11, 4, 3, 2, 1, 2),       # dilation, asymmetric padding
])
def test_few_output_positions_take_the_rows_path(dtype, monkeypatch, config):
    """Many channels and few output positions in all (a late layer, one sample) take one GEMM
    against the weights as they lie (``conv1d_rows``), chosen by the backend itself here, not
    forced; against the naive oracle."""
    nb_conv = pytest.importorskip("fastnet.kernels.numba_backend.conv1d")
    calls = []
    for name in ("forward", "backward"):
        real = getattr(nb_conv.conv1d_rows, name)
        monkeypatch.setattr(nb_conv.conv1d_rows, name,
                            lambda *a, real=real, name=name: calls.append(name) or real(*a))
    check_kernels(load("numba"), dtype, *config)
    assert calls.count("forward") == 4 and calls.count("backward") == 5, calls


@pytest.mark.parametrize("config, directions", [
    ((33, 128, 128, 4, 1, 1, 0, 0, 1), ["forward"]),       # 16 384 weights, rows of 4
    ((48, 64, 256, 9, 3, 2, 1, 0, 1), ["forward", "backward"]),    # 49 152, rows of 4, stride 2
    ((16, 512, 512, 16, 1, 1, 0, 0, 1), ["forward"]),      # 262 144 weights, 256 positions
    ((6, 256, 256, 33, 3, 1, 1, 0, 1), ["backward"]),      # 196 608 weights, 192 positions, K3
    ((32, 128, 128, 16, 1, 1, 0, 0, 1), []),               # rows of 16 (a float32 vector)
])
def test_many_weights_take_the_rows_path_where_it_pays_in_each_direction(dtype, monkeypatch,
                                                                         config, directions):
    """Beyond few output positions (``conv1d_rows.pays``), each direction has a rule of its own
    for the rows path against the blocked one: short rows of many weights, where the blocked
    kernel's vectors along the positions would idle (``pays_forward``, ``pays_backward``), and
    backward, windows of 3 taps or more with many weights per position. Chosen by the backend
    itself, against a float64 oracle of explicit windows."""
    nb_conv = pytest.importorskip("fastnet.kernels.numba_backend.conv1d")
    if not nb_conv.conv1d_blocked.AVAILABLE:
        pytest.skip("the rules pick between the rows and the blocked (AVX-512) paths")
    N, C_in, C_out, L, K, stride, pl, pr, dilation = config
    L_out = (L + pl + pr - K) // stride + 1
    assert not nb_conv.conv1d_rows.pays(N, L_out, C_out * C_in * K)
    calls = []
    for name in ("forward", "backward"):
        real = getattr(nb_conv.conv1d_rows, name)
        monkeypatch.setattr(nb_conv.conv1d_rows, name,
                            lambda *a, real=real, name=name: calls.append(name) or real(*a))
    rng = np.random.default_rng(L_out)
    x, W = rng.standard_normal((N, C_in, L)), rng.standard_normal((C_out, C_in, K)) * 0.05
    b, dout = rng.standard_normal(C_out), rng.standard_normal((N, C_out, L_out))
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(x, ((0, 0), (0, 0), (pl, pr))), K, axis=2)[:, :, ::stride]    # (N, C_in, L_out, K)
    z = np.einsum("nclk,ock->nol", windows, W) + b[:, None]
    dxp = np.zeros((N, C_in, L + pl + pr))
    for k, d_tap in enumerate(np.einsum("nol,ock->kncl", dout, W)):
        dxp[:, :, k:k + stride * (L_out - 1) + 1:stride] += d_tap
    hyper = (stride, pl, pr, dilation)
    xd, Wd, bd, dd = (a.astype(dtype) for a in (x, W, b, dout))
    for name, (act, _) in {"none": (lambda v: v, None), **ACTIVATIONS}.items():
        assert_close(nb_conv.conv1d_forward(xd, Wd, bd, *hyper, name), act(z), dtype)
    for need_dx in (True, False):
        dx, dW, db = nb_conv.conv1d_backward(dd, xd, Wd, dd, "none", *hyper, need_dx)
        assert_close(dW, np.einsum("nol,nclk->ock", dout, windows), dtype)
        assert_close(db, dout.sum(axis=(0, 2)), dtype)
        if need_dx:
            assert_close(dx, dxp[:, :, pl:pl + L], dtype)
    assert calls == [name for name in ("forward", "backward") if name in directions
                     for _ in range(4 if name == "forward" else 2)], calls


@pytest.mark.parametrize("L, padding", [(3, 0), (3, 1)])    # the whole item as the window, not
def test_rows_path_is_silent_on_non_finite_values_as_every_numba_kernel(L, padding):
    """The rows path multiplies on NumPy's BLAS, which follows ``np.seterr``; the Numba backend's
    convolutions stay silent under ``np.errstate(all="raise")`` (an audit found this path
    raising FloatingPointError where the others return NaN)."""
    nb_conv = pytest.importorskip("fastnet.kernels.numba_backend.conv1d")
    rng = np.random.default_rng(7)
    x, W = rng.standard_normal((4, 64, L)), rng.standard_normal((128, 64, 3))
    W[0, 0, 0] = W[1, 0, 0] = np.inf         # inf * 0 in the padding; inf - inf in dx
    assert nb_conv.conv1d_rows.pays(4, L + 2 * padding - 2, W.size)
    with fastnet.set_backend("numba"), np.errstate(all="raise"):
        y = F.conv1d(x, W, None, padding=padding)
        dout = np.ones_like(y)
        dout[:, 1] = -1
        dx, dW, _ = F.conv1d_backward(dout, x, W, padding=padding)
    assert not np.isfinite(y[:, :2]).any() and np.isfinite(y[:, 2:]).all()
    assert np.isnan(dx).any() and np.isfinite(dW).all()


@pytest.mark.parametrize("config", [
    (32, 1, 16, 300, 5, 1, 2, 2, 1),
    (16, 24, 32, 20, 3, 2, 1, 1, 1),
    (5, 1, 8, 200, 3, 1, 28, 28, 28),
    (4, 16, 24, 600, 5, 1, 2, 2, 1),          # long items: the windows chain
    (3, 12, 20, 900, 4, 2, 1, 2, 1),          # the same with stride 2
    (8, 32, 64, 14, 3, 1, 1, 1, 1),           # channels the blocks' width: weights unpadded
    (8, 64, 128, 4, 3, 1, 1, 1, 1),           # few outputs: rows path on the dense kernels
])
def test_larger_shapes_against_float64(kern, config):
    """Shapes big enough for the parallel paths; float32 against a float64 run of the numpy
    backend (itself checked against the oracle above)."""
    N, C_in, C_out, L, K, stride, pl, pr, dilation = config
    rng = np.random.default_rng(1)
    x, W, b = (rng.standard_normal(s) for s in [(N, C_in, L), (C_out, C_in, K), (C_out,)])
    ref = load("numpy")
    hyper = (stride, pl, pr, dilation)
    y64 = ref.conv1d_forward(x, W, b, *hyper, "relu")
    dout = rng.standard_normal(y64.shape)
    g64 = ref.conv1d_backward(dout, x, W, y64, "relu", *hyper, True)
    f = [a.astype(np.float32) for a in (x, W, b, dout, y64)]
    y32 = kern.conv1d_forward(f[0], f[1], f[2], *hyper, "relu")
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)
    for g32, g in zip(kern.conv1d_backward(f[3], f[0], f[1], f[4], "relu", *hyper, True), g64):
        np.testing.assert_allclose(g32, g, rtol=1e-4, atol=1e-4 * np.abs(g).max())


@pytest.mark.parametrize("config", [
    (3, 16, 32, 20, 3, 1, 1, 1, 1),      # many channels: im2col + GEMM
    (3, 3, 4, 10, 3, 2, 0, 0, 1),        # stride 2: GEMM
    (2, 1, 3, 30, 3, 1, 1, 1, 1),        # few channels: direct loops
])
def test_read_only_inputs(backend, dtype, tmp_path, config):
    """Read-only arrays (a memory-mapped .npy, writeable=False) are inputs like any other, on
    every path; the Numba GEMM path once failed on them with an internal typing error."""
    N, C_in, C_out, L, K, stride, pl, pr, dilation = config
    x, W, b, y, dout, grads = problem(*config)
    x, W, b, dout = (a.astype(dtype) for a in (x, W, b, dout))
    np.save(tmp_path / "x.npy", x)
    x_ro = np.load(tmp_path / "x.npy", mmap_mode="r")
    W_ro, b_ro, dout_ro = (a.copy() for a in (W, b, dout))
    for a in (W_ro, b_ro, dout_ro):
        a.flags.writeable = False
    hyper = dict(stride=stride, padding=(pl, pr), dilation=dilation)
    assert_close(F.conv1d(x_ro, W_ro, b_ro, **hyper), y, dtype)
    for got, want in zip(F.conv1d_backward(dout_ro, x_ro, W_ro, **hyper), grads):
        assert_close(got, want, dtype)


@pytest.mark.parametrize("stride, padding, dilation", [
    (10**8, 10**8, 1), (2**31 - 1, 2**31 - 1, 1), (2**31 - 1, 2**30, 2**30)])
def test_padding_far_beyond_the_input(backend, dtype, stride, padding, dilation):
    """A padding, stride or dilation many times the input length, for an output of a few
    positions. The Numba GEMM path would allocate a padded copy of that size inside its compiled
    chain, where a failed allocation cannot raise (the call returned garbage), and the NumPy
    baseline's padded copy raised MemoryError (48 GB): the Numba backend takes its direct loops,
    the baseline sums tap by tap over the real elements."""
    rng = np.random.default_rng(0)
    x, W, b = (rng.standard_normal(s) for s in [(2, 64, 10), (3, 64, 3), (3,)])
    want = naive.conv1d(x, W, b, stride, padding, padding, dilation)
    dout = rng.standard_normal(want.shape)
    grads = naive.conv1d_backward(dout, x, W, stride, padding, padding, dilation)
    x, W, b, dout = (a.astype(dtype) for a in (x, W, b, dout))
    hyper = dict(stride=stride, padding=padding, dilation=dilation)
    assert_close(F.conv1d(x, W, b, **hyper), want, dtype)
    for got, ref in zip(F.conv1d_backward(dout, x, W, **hyper), grads):
        assert_close(got, ref, dtype)


def test_an_output_beyond_the_machines_memory_names_the_padding(backend, dtype, monkeypatch):
    """A padding of 2**28 asks for a 16 GiB output (float32). NumPy's MemoryError named only a
    shape; this one names the padding, before any kernel allocates. The machine is made to report
    1 GiB, so the check fires wherever the tests run."""
    import os
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": (1 << 30) // 4096}
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    x, W = np.ones((2, 3, 10), dtype), np.ones((4, 3, 3), dtype)
    with pytest.raises(MemoryError, match=r"conv1d: the output would have shape "
                                          rf"\(2, 4, 536870920\) \({np.dtype(dtype)}\), "
                                          rf"{4 * np.dtype(dtype).itemsize}\.0 GiB, more than this "
                                          r"machine's 1\.0 GiB; from input length 10 with "
                                          r"padding=268435456, stride=1"):
        F.conv1d(x, W, padding=2**28)
    assert F.conv1d(x, W, padding=100).shape == (2, 4, 208)


def test_an_output_beyond_the_memory_available_now_is_refused(backend, dtype, monkeypatch):
    """Linux granted a 22 GiB output (``padding=10**9``) on a 23.5 GiB machine whose memory
    was partly in use, and killed the process while the kernel wrote it: the check compared with
    the RAM alone. The system is made to report 256 MiB available, so a 512 MiB output (and
    the NumPy baseline's working copy of it) is refused before anything is allocated."""
    from fastnet import _checks
    monkeypatch.setattr(_checks, "_available_memory", lambda: 2**28)
    x, W = np.ones((1, 1, 1), dtype), np.ones((1, 1, 1), dtype)
    padding = 2**29 // np.dtype(dtype).itemsize // 2
    with pytest.raises(MemoryError, match=r"conv1d: the output would have shape .* 0\.5 GiB, "
                                          r"more than the 0\.2 GiB of memory available now for "
                                          r"it and 1 working copy of its size; from input length 1 "
                                          rf"with padding={padding}, stride=1"):
        F.conv1d(x, W, padding=padding)
    assert F.conv1d(x, W, padding=100).shape == (1, 1, 201)


_ONE_WINDOW_HUGE_STRIDE = """
import sys
import numpy as np, fastnet
from fastnet import functional as F
sys.path.insert(0, sys.argv[1])
import naive
stride = 2**31 - 1
rng = np.random.default_rng(0)
for xs, ws, pad in [((2, 28, 28), (64, 28, 3), 1), ((2, 3, 1), (4, 3, 11), 5)]:
    x, W, b = rng.standard_normal(xs), rng.standard_normal(ws), np.zeros(ws[0])
    want = naive.conv1d(x, W, b, stride, pad, pad, 1)
    dout = rng.standard_normal(want.shape)
    grads = naive.conv1d_backward(dout, x, W, stride, pad, pad, 1)
    for backend in ("numba", "numpy"):
        with fastnet.set_backend(backend):
            got = [F.conv1d(x, W, b, stride, pad)]
            got += F.conv1d_backward(dout, x, W, stride, pad)
        for g, w in zip(got, [want, *grads]):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)
print("ok")
"""


def test_huge_stride_with_one_window_needs_no_memory_of_its_size():
    """One output position: the stride is never applied. The Numba blocked path sized its phase
    buffers and set-up loops by the stride (``stride=2**31-1`` had the process killed for
    memory); run under a 3 GB address-space limit so that a regression fails instead."""
    resource = pytest.importorskip("resource")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    tests = os.path.dirname(os.path.abspath(__file__))
    run = subprocess.run([sys.executable, "-c", _ONE_WINDOW_HUGE_STRIDE, tests],
                         preexec_fn=limit, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


@pytest.mark.parametrize("config", [
    # N, C_in, C_out, L, K, stride, pl, pr, dilation: padding longer than the input and than
    # K * L_out, so the NumPy baseline sums tap by tap; taps that read only padding, taps that
    # read some outputs' inputs and not others', inputs no tap reads, inputs several taps read
    (2, 3, 4, 6, 3, 5, 9, 8, 4), (1, 2, 3, 5, 2, 3, 11, 2, 7), (3, 1, 2, 4, 4, 6, 13, 13, 5),
    (2, 2, 2, 7, 1, 9, 12, 30, 1), (2, 2, 3, 10, 3, 4, 30, 30, 4)])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_padding_longer_than_input_and_columns(backend, dtype, config, activation):
    N, C_in, C_out, L, K, stride, pl, pr, dilation = config
    L_out = naive.conv1d_output_length(L, K, stride, pl, pr, dilation)
    assert pl + pr > max(L, K * L_out)
    rng = np.random.default_rng(1)
    x, W, b = (rng.standard_normal(s) for s in [(N, C_in, L), (C_out, C_in, K), (C_out,)])
    z = naive.conv1d(x, W, b, stride, pl, pr, dilation)
    y = np.maximum(z, 0) if activation else z
    dout = rng.standard_normal(z.shape)
    dz = dout * (z > 0) if activation else dout
    grads = naive.conv1d_backward(dz, x, W, stride, pl, pr, dilation)
    x, W, b, dout, y = (a.astype(dtype) for a in (x, W, b, dout, y))
    hyper = dict(stride=stride, padding=(pl, pr), dilation=dilation, activation=activation)
    got = F.conv1d(x, W, b, **hyper)
    assert_close(got, y, dtype)
    for need_dx in (True, False):
        dx, dW, db = F.conv1d_backward(dout, x, W, y=got, need_dx=need_dx, **hyper)
        assert_close(dW, grads[1], dtype)
        assert_close(db, grads[2], dtype)
        if need_dx:
            assert_close(dx, grads[0], dtype)
        else:
            assert dx is None


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("strategy", ["direct", "rows", "blocked", "gemm", "gemm-windows",
                                      "taps"])
@pytest.mark.parametrize("stride, pl, pr, dilation", [(1, 1, 1, 1), (1, 2, 0, 1), (2, 1, 2, 2),
                                                       (1, 3, 3, 2),
                                                       # padding longer than the input and the
                                                       # columns (NumPy: tap by tap)
                                                       (10, 12, 15, 1), (7, 20, 3, 2)])
def test_non_finite_weights_and_gradients_meet_the_padding_as_pytorch(
        backend, dtype, monkeypatch, strategy, stride, pl, pr, dilation):
    """The padding's zeros enter the products: 0 * inf is NaN. An inf or NaN weight makes NaN
    of every output whose window reaches the padding at that tap, and an inf or NaN gradient
    at such an output makes that tap's dW NaN (PyTorch and the NumPy backend, which pad
    explicitly; the Numba direct loops skipped the padding and gave inf or a finite value).
    Oracle: the naive loops over an explicitly zero-padded input."""
    if backend == "numba":
        nb_conv = pytest.importorskip("fastnet.kernels.numba_backend.conv1d")
        monkeypatch.setattr(nb_conv, "_use_gemm", lambda *shape: strategy != "direct")
        monkeypatch.setattr(nb_conv.conv1d_rows, "pays", lambda *shape: strategy == "rows")
        monkeypatch.setattr(nb_conv.conv1d_rows, "pays_forward", lambda *shape: False)
        monkeypatch.setattr(nb_conv.conv1d_blocked, "AVAILABLE", strategy == "blocked")
        if strategy == "gemm-windows":
            monkeypatch.setattr(nb_conv, "GEMM_CHUNK_BYTES", 1)
            monkeypatch.setattr(nb_conv, "GEMM_MIN_ROWS_PER_CHANNEL", 0)
        if strategy == "taps":
            pytest.skip("a NumPy-backend strategy")
    elif strategy == "taps":            # the baseline's tap-by-tap sums wherever they can run
        monkeypatch.setattr(load("numpy").conv1d, "COLUMNS_MAX_BYTES", 0)
    elif strategy != "direct":
        pytest.skip("one strategy in the NumPy backend")
    rng = np.random.default_rng(3)
    x, W, b = (rng.standard_normal(s) for s in [(2, 2, 9), (3, 2, 3), (3,)])
    W[0, 0, 0], W[1, 1, 2], W[2, 0, 1] = np.inf, np.nan, -np.inf
    xpad = np.pad(x, ((0, 0), (0, 0), (pl, pr)))
    want = naive.conv1d(xpad, W, b, stride, 0, 0, dilation)
    dout = rng.standard_normal(want.shape)
    dout[0, 0, 0], dout[1, 2, -1], dout[0, 1, -1] = np.inf, np.nan, -np.inf
    ones = np.ones_like(W)
    _, want_dW, want_db = naive.conv1d_backward(dout, xpad, ones, stride, 0, 0, dilation)
    assert np.isnan(want).any() and np.isnan(want_dW).any()      # the case is exercised
    x, W, b, dout, ones = (a.astype(dtype) for a in (x, W, b, dout, ones))
    hyper = dict(stride=stride, padding=(pl, pr), dilation=dilation)
    rtol, atol = tolerances(dtype)
    np.testing.assert_allclose(F.conv1d(x, W, b, **hyper), want, rtol=rtol, atol=atol)
    _, dW, db = F.conv1d_backward(dout, x, ones, **hyper)
    np.testing.assert_allclose(dW, want_dW, rtol=rtol, atol=atol)
    np.testing.assert_allclose(db, want_db, rtol=rtol, atol=atol)


@pytest.mark.parametrize("config", [
    # N, C_in, C_out, L, K, stride, pl, pr, dilation: padding shorter than the input
    (2, 3, 4, 12, 3, 1, 1, 1, 1), (3, 2, 5, 17, 4, 2, 0, 3, 2), (1, 4, 2, 9, 2, 3, 2, 2, 1),
    (2, 1, 3, 8, 5, 1, 0, 0, 1)])
def test_numpy_baseline_tap_by_tap_beyond_its_column_budget(dtype, monkeypatch, config):
    """Past ``COLUMNS_MAX_BYTES`` the baseline sums tap by tap (made 0 here, so every call
    does); an audit found the column matrix taking 5x the output's memory (16 GiB for a 4 MiB
    output), which the memory check does not count. Oracle: the naive loops."""
    np_conv = load("numpy").conv1d
    monkeypatch.setattr(np_conv, "COLUMNS_MAX_BYTES", 0)
    check_kernels(np_conv, dtype, *config)


def test_numpy_baseline_memory_stays_near_the_output_beyond_its_column_budget(monkeypatch):
    """Peak traced memory of the baseline's forward and backward, with a column matrix of 8 MiB
    against a 1 MiB budget: the tap-by-tap sums need ~1.5 MiB."""
    import tracemalloc
    np_conv = load("numpy").conv1d
    monkeypatch.setattr(np_conv, "COLUMNS_MAX_BYTES", 1 << 20)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 16, 4096)).astype(np.float32)   # 512 KiB
    W = rng.standard_normal((2, 16, 16)).astype(np.float32)
    b = np.zeros(2, np.float32)
    columns = 2 * 4096 * 16 * 16 * 4                             # 8 MiB (L_out 4096)
    tracemalloc.start()
    try:
        y = np_conv.conv1d_forward(x, W, b, 1, 8, 7, 1, "none")
        np_conv.conv1d_backward(y, x, W, y, "none", 1, 8, 7, 1, True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert y.shape == (2, 2, 4096)
    assert peak < columns / 4, peak


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("strategy", ["rows", "blocked", "gemm"])
def test_non_finite_weights_leave_input_gradients_as_the_real_products(dtype, monkeypatch,
                                                                         strategy):
    """dx sums only products of a weight and a real gradient: an inf weight gives inf, not
    NaN, at input positions whose windows reach past the output (the blocked path convolves a
    zero-padded gradient, so such weights must not take it). Oracle: the naive loops."""
    nb_conv = pytest.importorskip("fastnet.kernels.numba_backend.conv1d")
    monkeypatch.setattr(nb_conv, "_use_gemm", lambda *shape: True)
    monkeypatch.setattr(nb_conv.conv1d_rows, "pays", lambda *shape: strategy == "rows")
    monkeypatch.setattr(nb_conv.conv1d_rows, "pays_forward", lambda *shape: False)
    monkeypatch.setattr(nb_conv.conv1d_blocked, "AVAILABLE", strategy == "blocked")
    rng = np.random.default_rng(4)
    x, W = rng.standard_normal((2, 3, 10)), rng.standard_normal((4, 3, 3))
    W[0, 0, 0], W[1, 2, 2] = np.inf, -np.inf
    dout = rng.standard_normal((2, 4, 10))
    want, _, _ = naive.conv1d_backward(dout, x, W, 1, 1, 1, 1)
    assert np.isinf(want).any() and not np.isnan(want).any()
    dx, _, _ = nb_conv.conv1d_backward(*(a.astype(dtype) for a in (dout, x, W)), None, "none",
                                       1, 1, 1, 1, True)
    np.testing.assert_array_equal(np.isinf(dx), np.isinf(want))
    assert not np.isnan(dx).any()


# --- the notebook's worked examples (functional API, lists in, default dtype out) ------------

def test_worked_example_single_channel(backend):
    y = F.conv1d([1, 2, 3, 4], [3, 5, 7], [1])
    assert y.dtype == fastnet.get_default_dtype()
    np.testing.assert_array_equal(y, [35, 50])
    dx, dW, db = F.conv1d_backward([10, 20], [1, 2, 3, 4], [3, 5, 7])
    np.testing.assert_array_equal(dx, [30, 110, 170, 140])
    np.testing.assert_array_equal(dW, [50, 80, 110])
    np.testing.assert_array_equal(db, [30])


def test_worked_example_two_channels(backend):
    x = [[1, 2, 3, 4], [2, 3, 4, 5]]
    W = np.ones((3, 2, 3), dtype=np.float32)
    y = F.conv1d(x, W, [1, 2, 3])
    np.testing.assert_array_equal(y, [[16, 22], [17, 23], [18, 24]])
    dx, dW, db = F.conv1d_backward([[52, 56], [32, 35], [9, 11]], x, W)
    np.testing.assert_array_equal(dx, [[93, 195, 195, 102], [93, 195, 195, 102]])
    assert dW.shape == (3, 2, 3) and db.shape == (3,)
    np.testing.assert_array_equal(db, [108, 67, 20])


def test_scalar_bias_and_ranks(backend, dtype):
    x = np.arange(6, dtype=dtype)
    w = np.array([1, -1], dtype=dtype)
    np.testing.assert_array_equal(F.conv1d(x, w, dtype(0.5)), np.full(5, -0.5))
    np.testing.assert_array_equal(F.conv1d(x, w, np.array([0.5], dtype)), np.full(5, -0.5))
    x2 = x.reshape(2, 3)
    W2 = np.ones((4, 2, 2), dtype)
    y2 = F.conv1d(x2, W2)
    assert y2.shape == (4, 2)
    y3 = F.conv1d(x2[None], W2)
    np.testing.assert_array_equal(y3[0], y2)
    dx, dW, db = F.conv1d_backward(np.ones((4, 2), dtype), x2, W2)
    assert dx.shape == (2, 3) and dW.shape == (4, 2, 2) and db.shape == (4,)


# --- functional API: padding forms, output length, gradients ------------------------------------

@pytest.mark.parametrize("K, dilation", [(1, 1), (2, 1), (3, 1), (4, 1), (4, 2), (5, 3)])
def test_same_padding_keeps_length(backend, K, dilation):
    rng = np.random.default_rng(K)
    x = rng.standard_normal((2, 3, 10))
    W = rng.standard_normal((2, 3, K))
    y = F.conv1d(x, W, padding="same", dilation=dilation)
    assert y.shape == (2, 2, 10)
    total = dilation * (K - 1)
    want = naive.conv1d(x, W, np.zeros(2), 1, total // 2, total - total // 2, dilation)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)


def test_padding_forms_agree(backend):
    rng = np.random.default_rng(3)
    x, W = rng.standard_normal((2, 2, 9)), rng.standard_normal((3, 2, 3))
    np.testing.assert_array_equal(F.conv1d(x, W, padding="valid"), F.conv1d(x, W, padding=0))
    np.testing.assert_array_equal(F.conv1d(x, W, padding=(2, 2)), F.conv1d(x, W, padding=2))
    np.testing.assert_allclose(F.conv1d(x, W, padding=[1, 3]),
                               naive.conv1d(x, W, np.zeros(3), 1, 1, 3, 1), rtol=1e-10)


@pytest.mark.parametrize("args, want", [
    ((4, 3), 2), ((28, 3, 1, 1), 28), ((28, 3, 2, 1), 14), ((784, 3, 1, 28, 28), 784),
    ((10, 4, 1, "same"), 10), ((10, 4, 1, "valid"), 7), ((10, 3, 3, (0, 2)), 4),
    ((5, 1, 4), 2),
])
def test_output_length(args, want):
    assert F.conv1d_output_length(*args) == want


@pytest.mark.parametrize("stride, padding, dilation, K", [
    (1, 0, 1, 3), (2, (1, 2), 1, 3), (3, 1, 2, 2), (1, "same", 2, 4), (4, 0, 1, 1),
])
def test_finite_difference_gradients(backend, stride, padding, dilation, K):
    """Central differences in float64 of L = sum(conv1d(x, W, b) * R)."""
    rng = np.random.default_rng(K + stride)
    x = rng.standard_normal((2, 3, 11))
    W = rng.standard_normal((2, 3, K))
    b = rng.standard_normal(2)
    R = rng.standard_normal(F.conv1d(x, W, b, stride, padding, dilation).shape)

    def loss():
        return float(np.sum(F.conv1d(x, W, b, stride, padding, dilation) * R))

    dx, dW, db = F.conv1d_backward(R, x, W, stride, padding, dilation)
    gradcheck.check(loss, dx, x)
    gradcheck.check(loss, dW, W)
    gradcheck.check(loss, db, b)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_fused_activation_finite_difference_gradients(backend, activation):
    """L = sum(conv1d(x, W, b, activation=...) * R), through the functional API."""
    rng = np.random.default_rng(7)
    x, W, b = rng.standard_normal((2, 3, 10)), rng.standard_normal((4, 3, 3)), rng.standard_normal(4)
    conv = lambda: F.conv1d(x, W, b, 2, 1, activation=activation)      # noqa: E731
    y = conv()
    R = rng.standard_normal(y.shape)
    dx, dW, db = F.conv1d_backward(R, x, W, 2, 1, y=y, activation=activation)
    for grad, p in ((dx, x), (dW, W), (db, b)):
        gradcheck.check(lambda: float(np.sum(conv() * R)), grad, p)


def test_non_contiguous_inputs(backend, dtype):
    rng = np.random.default_rng(5)
    big = rng.standard_normal((3, 8, 40)).astype(dtype)
    x = big[:, ::2, ::2]                                   # (3, 4, 20), strided
    W = np.asfortranarray(rng.standard_normal((5, 4, 3)).astype(dtype))
    b = rng.standard_normal(10).astype(dtype)[::2]
    assert not (x.flags.c_contiguous or W.flags.c_contiguous or b.flags.c_contiguous)
    y = F.conv1d(x, W, b, stride=2, padding=1)
    xc, Wc, bc = (np.ascontiguousarray(a) for a in (x, W, b))
    np.testing.assert_array_equal(y, F.conv1d(xc, Wc, bc, stride=2, padding=1))
    dout = rng.standard_normal((6,) + y.shape[1:]).astype(dtype)[::2]
    assert not dout.flags.c_contiguous
    got = F.conv1d_backward(dout, x, W, stride=2, padding=1)
    want = F.conv1d_backward(np.ascontiguousarray(dout), xc, Wc, stride=2, padding=1)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_inputs_are_not_modified(backend):
    rng = np.random.default_rng(6)
    x, W, b = rng.standard_normal((2, 3, 9)), rng.standard_normal((4, 3, 3)), np.ones(4)
    dout = rng.standard_normal((2, 4, 9))
    copies = [a.copy() for a in (x, W, b, dout)]
    F.conv1d(x, W, b, padding=1)
    F.conv1d_backward(dout, x, W, padding=1)
    for a, c in zip((x, W, b, dout), copies):
        np.testing.assert_array_equal(a, c)


# --- determinism ---------------------------------------------------------------------------------

SHAPES = [(64, 1, 300, 8, 5, 1, 2), (64, 32, 20, 16, 3, 2, 1),
          (128, 28, 28, 64, 3, 1, 1)]             # the last: GEMM path, batch split over threads


def conv_pass(shape):
    N, C_in, L, C_out, K, stride, padding = shape
    rng = np.random.default_rng(9)
    x = rng.standard_normal((N, C_in, L)).astype(np.float32)
    W = rng.standard_normal((C_out, C_in, K)).astype(np.float32)
    b = rng.standard_normal(C_out).astype(np.float32)
    y = F.conv1d(x, W, b, stride, padding)
    dout = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
    return (y,) + F.conv1d_backward(dout, x, W, stride, padding)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES)
def test_repeated_calls_are_bit_identical(backend, shape, threads):
    """Same inputs, same backend, same thread count: the same bits (no racing reductions)."""
    with fastnet.set_num_threads(threads):
        first = conv_pass(shape)
        for _ in range(3):
            for got, want in zip(conv_pass(shape), first):
                np.testing.assert_array_equal(got, want)


def test_numba_direct_path_does_not_depend_on_thread_count():
    """The direct kernels reduce dW and db per batch item, then over the batch in order."""
    with fastnet.set_backend("numba"):
        with fastnet.set_num_threads(1):
            one = conv_pass(SHAPES[0])
        with fastnet.set_num_threads(2):
            two = conv_pass(SHAPES[0])
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


# --- bad inputs, both backends -------------------------------------------------------------------

f32, f64 = np.float32, np.float64


def z(*shape, dtype=f32):
    return np.zeros(shape, dtype)


BAD = [
    # (call, exception, words the message must contain)
    (lambda: F.conv1d(z(1, 1, 4), z(1, 1, 9), padding=2, stride=3), ValueError,
     ["conv1d: padding=2, stride=3, kernel_size=9, dilation=1 give output length 0 for input "
      "length 4; need L + 2*padding >= dilation*(kernel_size-1)+1"]),
    (lambda: F.conv1d(z(1, 1, 4), z(1, 1, 3), padding=(0, 1), dilation=3), ValueError,
     ["padding=(0, 1)", "output length", "L + padding_left + padding_right"]),
    (lambda: F.conv1d(z(1, 1, 8), z(1, 1, 3), stride=0), ValueError, ["stride=0", ">= 1"]),
    (lambda: F.conv1d(z(1, 1, 8), z(1, 1, 3), stride=-2), ValueError, ["stride=-2"]),
    (lambda: F.conv1d(z(1, 1, 8), z(1, 1, 3), dilation=0), ValueError, ["dilation=0"]),
    (lambda: F.conv1d(z(1, 1, 8), z(1, 1, 3), padding=-1), ValueError, ["padding=-1"]),
    (lambda: F.conv1d(z(1, 1, 8), z(1, 1, 3), padding=(1, -1)), ValueError, ["padding[1]", "-1"]),
    (lambda: F.conv1d(z(1, 1, 8), z(1, 1, 3), padding=(1, 2, 3)), ValueError, ["padding", "pair"]),
    (lambda: F.conv1d(z(1, 1, 8), z(1, 1, 3), padding="full"), ValueError, ["padding", "full"]),
    (lambda: F.conv1d(z(1, 1, 8), z(1, 1, 3), stride=2, padding="same"), ValueError,
     ["same", "stride=2"]),
    (lambda: F.conv1d(z(1, 1, 8), z(1, 1, 3), stride=True), TypeError, ["stride", "True"]),
    (lambda: F.conv1d(z(1, 1, 8), z(1, 1, 3), stride=1.0), TypeError, ["stride", "1.0"]),
    (lambda: F.conv1d(z(1, 1, 8), z(1, 1, 3), dilation=2.5), TypeError, ["dilation", "2.5"]),
    (lambda: F.conv1d(z(1, 1, 8), z(1, 1, 3), padding=1.5), TypeError, ["padding", "1.5"]),
    (lambda: F.conv1d(z(2, 3, 8), z(4, 2, 3)), ValueError, ["x", "(2, 3, 8)", "W", "(4, 2, 3)",
                                                           "channels"]),
    (lambda: F.conv1d(z(2, 3, 8), z(4, 3, 3), z(3)), ValueError, ["b", "(3,)", "(4,)"]),
    (lambda: F.conv1d(z(2, 3, 8), z(4, 3, 3), z(4, 1)), ValueError, ["b", "(4, 1)"]),
    (lambda: F.conv1d(z(2, 3, 8), z(4, 3, 3, dtype=f64)), TypeError, ["W", "float64", "float32"]),
    (lambda: F.conv1d(z(2, 3, 8), z(4, 3, 3), z(4, dtype=f64)), TypeError, ["b", "float64"]),
    (lambda: F.conv1d(np.zeros((2, 3, 8), int), z(4, 3, 3)), TypeError, ["x", "int64"]),
    (lambda: F.conv1d(z(2, 3, 8, dtype=np.float16), z(4, 3, 3)), TypeError, ["x", "float16"]),
    (lambda: F.conv1d(z(2, 3, 8), np.ones((4, 3, 3), bool)), TypeError, ["W", "bool"]),
    (lambda: F.conv1d(z(1, 2, 3, 8), z(4, 3, 3)), ValueError, ["x", "(1, 2, 3, 8)"]),
    (lambda: F.conv1d(z(3, 8), z(4, 3)), ValueError, ["W", "(4, 3)"]),
    (lambda: F.conv1d(z(8), z(1, 1, 3)), ValueError, ["1-D", "(8,)", "(1, 1, 3)"]),
    (lambda: F.conv1d(z(3, 8), z(3)), ValueError, ["1-D", "(3, 8)", "(3,)"]),
    (lambda: F.conv1d(z(2, 0, 8), z(4, 0, 3)), ValueError,
     ["(2, 0, 8)", "but the batch must be at least 1"]),        # an empty batch is allowed
    (lambda: F.conv1d(z(2, 3, 8), z(4, 3, 0)), ValueError, ["(4, 3, 0)", "at least 1"]),
    (lambda: F.conv1d("x", z(4, 3, 3)), TypeError, ["x", "str"]),
    (lambda: F.conv1d_backward(z(2, 4, 5), z(2, 3, 8), z(4, 3, 3)), ValueError,
     ["dout", "(2, 4, 5)", "(2, 4, 6)"]),
    (lambda: F.conv1d_backward(z(2, 4, 6, dtype=f64), z(2, 3, 8), z(4, 3, 3)), TypeError,
     ["x", "float32", "float64"]),
    (lambda: F.conv1d_backward(z(2, 4, 6), z(2, 3, 8), z(4, 3, 3), stride=0), ValueError,
     ["stride=0"]),
    (lambda: F.conv1d(z(2, 3, 8), z(4, 3, 3), activation="softmax"), ValueError,
     ["activation", "softmax", "relu"]),
    (lambda: F.conv1d_backward(z(2, 4, 6), z(2, 3, 8), z(4, 3, 3), activation="relu"),
     ValueError, ["activation", "needs the forward output y"]),
    (lambda: F.conv1d_backward(z(2, 4, 6), z(2, 3, 8), z(4, 3, 3), y=z(2, 4, 5),
                               activation="relu"), ValueError, ["y", "(2, 4, 5)", "(2, 4, 6)"]),
    (lambda: F.conv1d_backward(z(2, 4, 6), z(2, 3, 8), z(4, 3, 3), y=z(2, 4, 6, dtype=f64),
                               activation="tanh"), TypeError, ["y", "float64"]),
    (lambda: F.conv1d_output_length(4, 9, 3, 2), ValueError, ["output length 0", "L + 2*padding"]),
    (lambda: F.conv1d_output_length(0, 3), ValueError, ["L=0"]),
    (lambda: F.conv1d_output_length(10, 3, 1, None), TypeError, ["padding", "None"]),
]


@pytest.mark.parametrize("call, exc, words", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_inputs_raise_before_the_kernel(backend, call, exc, words):
    assert_raises_naming(call, exc, words)


# --- PyTorch -----------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("shape, stride, padding, dilation", [
    ((4, 3, 20), 1, 0, 1), ((4, 3, 20), 2, 1, 1), ((2, 5, 31), 3, 2, 2), ((3, 1, 50), 1, 28, 7),
    ((2, 4, 16), 1, "same", 2), ((2, 4, 15), 1, "same", 1),
])
def test_matches_torch(backend, shape, stride, padding, dilation):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    N, C_in, L = shape
    K = 4 if padding == "same" else 3
    x = rng.standard_normal(shape)
    W = rng.standard_normal((6, C_in, K))
    b = rng.standard_normal(6)
    tx, tW, tb = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    ty = torch.nn.functional.conv1d(tx, tW, tb, stride=stride, padding=padding, dilation=dilation)
    y = F.conv1d(x, W, b, stride, padding, dilation)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    dout = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dout))
    for got, t in zip(F.conv1d_backward(dout, x, W, stride, padding, dilation), (tx, tW, tb)):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_kernel_grid_is_exhaustive_over_the_issue_ranges():
    """Documents the coverage of test_grid_matches_oracle: every (K, C_in) pair of the issue's
    ranges (K 1..7, C_in 1..5) is reached by some (stride, padding, dilation) cell."""
    cells = itertools.product([1, 2, 3, 4], PADDINGS, [1, 2, 3], range(1, 8))
    pairs = {(K, 1 + (K + s + d + pl) % 5) for s, (pl, _), d, K in cells}
    assert pairs == set(itertools.product(range(1, 8), range(1, 6)))


def test_gemm_chunks_keep_enough_rows_per_output_channel(monkeypatch):
    """A GEMM chunk targets GEMM_CHUNK_BYTES but keeps at least GEMM_MIN_ROWS_PER_CHANNEL rows
    per output channel (each chunk re-reads the C_out-wide weights and dW accumulator), and
    never more items than the batch part holds."""
    nb_conv = pytest.importorskip("fastnet.kernels.numba_backend.conv1d")
    monkeypatch.setattr(nb_conv, "GEMM_CHUNK_BYTES", 1)
    rows = nb_conv.GEMM_MIN_ROWS_PER_CHANNEL * 128
    chunk, _ = nb_conv._work(128, 1, 14, (192, 128), np.float32)
    assert chunk * 14 >= rows > (chunk - 1) * 14
    assert nb_conv._work(4, 1, 14, (192, 128), np.float32)[0] == 4
    assert nb_conv._work(128, 2, 14, (192, 128), np.float32)[0] == min(chunk, 64)
    monkeypatch.setattr(nb_conv, "GEMM_CHUNK_BYTES", 1 << 30)
    assert nb_conv._work(128, 2, 14, (192, 128), np.float32)[0] == 64


def test_windows_chain_runs_where_one_item_fills_a_chunk():
    """The windows chain (GEMMs on the padded item in place) takes the long-signal shapes, whose
    one item fills a GEMM chunk, with dilation 1; batched chunks and dilation > 1 keep im2col."""
    nb_conv = pytest.importorskip("fastnet.kernels.numba_backend.conv1d")

    def chunk(N, C_in, L, C_out, K, stride, padding, dilation):
        L_out = naive.conv1d_output_length(L, K, stride, padding, padding, dilation)
        windows = nb_conv._windows(L, L_out, K, stride, padding, dilation, C_in, 1)
        return nb_conv._work(N, 2, L_out, (K * C_in, C_out), np.float32, windows)[0]

    assert chunk(64, 32, 1024, 64, 5, 1, 2, 1) == 0
    assert chunk(64, 32, 1024, 64, 5, 2, 2, 1) == 0
    assert chunk(64, 32, 1024, 64, 5, 1, 4, 2) == 1
    assert chunk(128, 28, 28, 64, 3, 1, 1, 1) > 1
