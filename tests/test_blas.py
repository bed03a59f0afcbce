"""BLAS called from inside Numba kernels (``numba_backend._blas``): the GEMM against NumPy, and
the fallback when NumPy's BLAS does not offer it."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnet

blas = pytest.importorskip("fastnet.kernels.numba_backend._blas")
needs_blas = pytest.mark.skipif(not blas.available(),
                                reason="NumPy's BLAS cannot be called from Numba here")


@needs_blas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True),
                                              (True, True)])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_gemm_matches_numpy(dtype, trans_a, trans_b, beta):
    rng = np.random.default_rng(0)
    M, K, N = 7, 5, 3
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    c0 = rng.standard_normal((M, N)).astype(dtype)
    c = c0.copy()
    blas.gemm(a, b, c, trans_a, trans_b, beta)
    want = (a.T if trans_a else a) @ (b.T if trans_b else b) + beta * c0
    np.testing.assert_allclose(c, want, rtol=1e-5 if dtype == np.float32 else 1e-12)


@needs_blas
def test_gemm_reads_and_writes_views_at_an_offset_only():
    """The kernels hand BLAS matrices cut from one work buffer: only the view may change."""
    work = np.zeros(100)
    a = np.arange(6.0).reshape(2, 3)
    b = np.ones((3, 2))
    c = work[10:14].reshape(2, 2)
    blas.gemm(a, b, c, False, False, 0.0)
    np.testing.assert_array_equal(c, a @ b)
    assert not work[:10].any() and not work[14:].any()


def test_without_the_symbols_it_is_unavailable_and_conv1d_still_runs(monkeypatch):
    """A NumPy on another BLAS (MKL, Accelerate, an older OpenBLAS): no symbols, no binding, and
    conv1d's GEMM path uses NumPy's matmul with the same results."""
    from fastnet import functional as F
    monkeypatch.setattr(blas, "_find_symbols", lambda: None)
    monkeypatch.setitem(blas._state, "available", None)
    assert blas.available() is False
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 16, 10))
    W = rng.standard_normal((32, 16, 3))
    with fastnet.set_backend("numba"):
        got = F.conv1d(x, W, None, 1, 1)
    with fastnet.set_backend("numpy"):
        want = F.conv1d(x, W, None, 1, 1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)



@pytest.mark.skipif(not blas.numpy_has_openblas(), reason="NumPy's BLAS is not OpenBLAS here")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_batch_dense_orientation_follows_the_blas(monkeypatch, dtype):
    """With NumPy's OpenBLAS, a batch-20 784 -> 400 dense layer has BLAS compute the products'
    transposes (the bias pass reads the transpose); with another BLAS it keeps ``x @ W``. Both
    give the plain product's results."""
    from fastnet import functional as F
    from fastnet.kernels.numba_backend import dense
    # The BLAS path's rule: on AVX-512 hosts these shapes go to the micro-kernel instead.
    monkeypatch.setattr(dense.dense_blocked, "AVAILABLE", False)
    calls = []
    bias_pass = dense._bias_act_transposed
    monkeypatch.setattr(dense, "_bias_act_transposed", lambda *a: calls.append(1) or bias_pass(*a))
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((20, 784)).astype(dtype), rng.standard_normal((20, 400))
    W, b = (rng.standard_normal((784, 400)) * 0.05).astype(dtype), np.ones(400, dtype)
    results = {}
    for openblas in (True, False):
        monkeypatch.setitem(blas._state, "openblas", openblas)
        calls.clear()
        with fastnet.set_backend("numba"):
            y = F.dense(x, W, b, "relu")
            results[openblas] = (y,) + F.dense_backward(dout.astype(dtype), x, W, y, "relu")
        assert len(calls) == openblas
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in zip(results[True], results[False]):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


_UNCOMPILED_CONV = """
import numpy as np, fastnet
from fastnet import functional as F
from fastnet.kernels.numba_backend import _blas
rng = np.random.default_rng(0)
x, W = rng.standard_normal((4, 16, 10)), rng.standard_normal((32, 16, 3))    # 40 outputs
with fastnet.set_backend("numba"):
    got = [F.conv1d(x, W, None, 1, 1)] + list(F.conv1d_backward(np.ones((4, 32, 10)), x, W, 1, 1))
with fastnet.set_backend("numpy"):
    want = [F.conv1d(x, W, None, 1, 1)] + list(F.conv1d_backward(np.ones((4, 32, 10)), x, W, 1, 1))
print(_blas.available(), max(float(abs(g - w).max()) for g, w in zip(got, want)))
"""


def test_uncompiled_python_runs_conv1d_without_the_c_functions():
    """With NUMBA_DISABLE_JIT=1 (coverage runs) plain Python cannot call BLAS or the conv slots
    by address: the GEMM path takes NumPy's matmul instead."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", _UNCOMPILED_CONV], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    available, error = out.stdout.split()
    assert available == "False" and float(error) < 1e-12


_UNCOMPILED_FIRST_CONV = """
import numpy as np, fastnet
from fastnet import functional as F
rng = np.random.default_rng(0)
x, W = rng.standard_normal((2, 3, 9)), rng.standard_normal((4, 3, 3))
dout = rng.standard_normal((2, 4, 9))
got = F.conv1d_backward(dout, x, W, padding=1, need_dx=False)[1:]
with fastnet.set_backend("numpy"):
    want = F.conv1d_backward(dout, x, W, padding=1, need_dx=False)[1:]
print(max(float(abs(g - w).max()) for g, w in zip(got, want)))
"""


def test_uncompiled_python_runs_a_first_layers_conv1d_backward():
    """A first layer's direct-path backward (no input gradient) indexed the rows of its
    stand-in ``dx``, which had none: compiled code let it pass, plain Python (and Numba's bounds
    checks) raised IndexError (an audit)."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", _UNCOMPILED_FIRST_CONV], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 1e-12
