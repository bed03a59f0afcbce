"""The dense layer's micro-kernel products (Numba, AVX-512 hosts) against float64 algebra."""
import numpy as np
import pytest

import fastnet
import fastnet.functional as F

db = pytest.importorskip("fastnet.kernels.numba_backend.dense_blocked")
pytestmark = pytest.mark.skipif(not db.AVAILABLE, reason="the micro-kernels need AVX-512 "
                                                         "(and compiled code)")

@pytest.fixture
def numba_backend():
    """The Numba backend in use, so that ``fastnet.set_num_threads`` reaches Numba's threads
    (it sets them once fastnet has loaded the backend)."""
    with fastnet.set_backend("numba"):
        fastnet.backend.kernels()
        yield


SHAPES = [(1, 1, 1), (3, 5, 7), (9, 33, 17), (8, 16, 32), (20, 784, 400), (17, 100, 65),
          (2, 1000, 3), (130, 40, 33), (11, 513, 70)]       # K = 513: slabs of 256, 256, 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, K, M", SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_products_match_float64_algebra(monkeypatch, dtype, N, K, M, threads):
    """``x @ W``, ``x.T @ dz`` and ``dz @ W.T`` at sizes that leave short row blocks and
    partial column blocks, on one part and (split at every size) on two."""
    monkeypatch.setattr(db, "SPLIT_MIN_MACS", 0)
    rng = np.random.default_rng(N * K + M)
    x, W, dz = (rng.standard_normal(s).astype(dtype) for s in [(N, K), (K, M), (N, M)])
    x64, W64, dz64 = (a.astype(np.float64) for a in (x, W, dz))
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    with fastnet.set_num_threads(threads):
        got = [db.times(x, W), db.transposed_times(x, dz),
               db.times_transposed(dz, W)]
    for g, want in zip(got, [x64 @ W64, x64.T @ dz64, dz64 @ W64.T]):
        assert g.dtype == dtype and g.shape == want.shape and g.flags.c_contiguous
        scale = np.abs(want).max()
        np.testing.assert_allclose(g, want, rtol=rtol, atol=rtol * scale)


def test_nan_and_inf_propagate_as_in_the_product():
    """A non-finite value reaches exactly the outputs whose sums include it; the masked lanes
    and repeated rows of partial blocks add nothing (no 0 * inf)."""
    x, W = np.ones((9, 5)), np.ones((5, 19))
    x[4, 2], W[1, 18] = np.inf, np.nan
    got, want = db.times(x, W), x @ W
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[np.isfinite(want)], want[np.isfinite(want)])


def test_nan_and_inf_propagate_across_reduction_slabs():
    """``x @ W`` sums ``K`` in slabs of ``KC``, later slabs adding to the first's output: a
    non-finite term in any slab reaches exactly the outputs it belongs to, in all three
    products."""
    K = 2 * db.KC + 7
    x, W, dz = np.ones((12, K)), np.ones((K, 21)), np.ones((12, 21))
    x[3, db.KC + 5], W[2 * db.KC + 1, 20], W[7, 4] = np.nan, np.inf, -np.inf
    for got, want in [(db.times(x, W), x @ W), (db.transposed_times(x, dz), x.T @ dz),
                      (db.times_transposed(dz, W), dz @ W.T)]:
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(got[~np.isnan(want)], want[~np.isnan(want)])


def test_few_rows_split_the_reduction_of_x_times_w_over_the_threads(monkeypatch, numba_backend):
    """Up to ``SPLIT_K_MAX_ROWS`` rows each thread sums its share of ``K`` (whole rows of ``W``)
    and the shares are added after: a non-finite term in either share reaches exactly its
    outputs, and ``inf`` in one share against ``-inf`` in the other gives NaN, as the whole sum
    does. More rows, or one thread, split the columns."""
    added = []
    add_parts = db._add_parts
    monkeypatch.setattr(db, "_add_parts", lambda *a: added.append(a[2]) or add_parts(*a))
    K = 2 * db.KC + 60                     # shares of 290 and 286 rows: two slabs each
    x, W = np.ones((db.SPLIT_K_MAX_ROWS, K)), np.ones((K, 300))
    x[3, 5], x[3, K - 2] = np.inf, -np.inf                         # one in each share
    x[7, K - 1], W[10, 299], W[K - 3, 17] = np.nan, np.inf, np.nan
    want = x @ W
    with fastnet.set_num_threads(2):
        got = db.times(x, W)
        db.times(np.ones((db.SPLIT_K_MAX_ROWS + 1, K)), W)
    with fastnet.set_num_threads(1):
        db.times(x, W)
    assert added == [1]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(want)], want[~np.isnan(want)])
    assert np.isnan(got[3]).all() and np.isnan(got[:, 17]).all() and np.isinf(got[0, 299])


def test_small_batches_take_the_inner_kernel_for_dz_times_w_transposed():
    """The inner kernel takes ``dz @ W.T`` for a few rows of ``dz`` at least four vectors long:
    the notebooks' layers at batch 20, not at batch 128, nor rows of 10 values."""
    assert db.inner_pays(20, 400, np.float64) and db.inner_pays(20, 200, np.float32)
    assert db.inner_pays(32, 400, np.float64) and not db.inner_pays(32, 400, np.float32)
    assert not db.inner_pays(128, 400, np.float32) and not db.inner_pays(20, 10, np.float64)
    lanes = 64 // 4
    assert db.inner_pays(1, 4 * lanes, np.float32) and not db.inner_pays(1, 4 * lanes - 1,
                                                                          np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_inner_kernel_propagates_nan_and_inf_to_exactly_their_outputs(dtype):
    """``dz @ W.T`` on the inner kernel, with rows and columns that leave short blocks and a
    masked tail: a NaN in ``dz`` spoils its row of the output, an inf in ``W`` its column, and
    the masked lanes and repeated rows add nothing (no 0 * inf, no NaN beyond them)."""
    N, K, M = 7, 13, 4 * 64 // np.dtype(dtype).itemsize + 3
    assert db.inner_pays(N, M, dtype)
    dz, W = np.ones((N, M), dtype), np.ones((K, M), dtype)
    dz[N - 1, M - 1], W[K - 1, 2], W[5, M - 1] = np.nan, np.inf, -np.inf
    got, want = db.times_transposed(dz, W), dz.astype(np.float64) @ W.T.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(want)], want[~np.isnan(want)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_inner_kernel_gives_the_same_bits_on_one_thread_or_two(monkeypatch, dtype,
                                                                   numba_backend):
    """Each output is one block's lane sums in a fixed order, whichever part computes it."""
    monkeypatch.setattr(db, "SPLIT_MIN_MACS", 0)
    rng = np.random.default_rng(5)
    dz, W = (rng.standard_normal(s).astype(dtype) for s in [(19, 203), (97, 203)])
    assert db.inner_pays(19, 203, dtype)
    results = []
    for threads in (1, 2):
        with fastnet.set_num_threads(threads):
            assert db.part_count(2) == threads
            results.append(db.times_transposed(dz, W))
    np.testing.assert_array_equal(*results)


@pytest.mark.parametrize("N, expected", [
    (1, ["transposed_times"]),                          # one row: x @ W and dz @ W.T on BLAS
    (2, ["times", "times_transposed", "transposed_times"])])
def test_one_row_takes_blas_for_the_matrix_vector_products(monkeypatch, N, expected):
    """A batch of one row multiplies ``x @ W`` and ``dz @ W.T`` on BLAS (matrix-vector
    products, where the micro-kernel computes a whole block of rows); its weight gradient stays
    on the micro-kernel. The results match float64 algebra either way."""
    assert db.pays(1, 784, 1600, np.float64)
    rng = np.random.default_rng(N)
    x, W, dout = rng.standard_normal((N, 784)), rng.standard_normal((784, 1600)), np.ones((N, 1600))
    assert layer_products(monkeypatch, x, W, dout) == expected


def layer_products(monkeypatch, x, W, dout):
    """The micro-kernel products that a float64 layer's forward and backward call, in order
    (its results checked against float64 algebra)."""
    calls = []
    for name in ("times", "transposed_times", "times_transposed"):
        def record(*args, _name=name, _f=getattr(db, name)):
            calls.append(_name)
            return _f(*args)
        monkeypatch.setattr(db, name, record)
    with fastnet.set_backend("numba"):
        y = F.dense(x, W, np.zeros(W.shape[1]))
        dx, dW, _ = F.dense_backward(dout, x, W, y)
    for got, want in [(y, x @ W), (dx, dout @ W.T), (dW, x.T @ dout)]:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    return calls


@pytest.mark.parametrize("N, K, M, backward", [
    (64, 100, 100, ["transposed_times", "times_transposed"]),    # 640 000 multiply-adds
    (64, 1000, 10, []),                                           # as many, 10 outputs
    (16, 200, 200, [])])                                          # as many, 16 rows
def test_layers_under_min_macs_take_the_micro_kernel_backward_only(monkeypatch, N, K, M,
                                                                   backward):
    """From ``MIN_MACS_BACKWARD`` to ``MIN_MACS`` multiply-adds a layer's forward product runs
    on BLAS and its backward's on the micro-kernel, unless it has at most ``NARROW_MAX``
    outputs or fewer than ``MIN_ROWS_BACKWARD`` rows. The results match float64 algebra either
    way."""
    assert db.MIN_MACS_BACKWARD <= N * K * M < db.MIN_MACS
    rng = np.random.default_rng(K)
    x, W = rng.standard_normal((N, K)), rng.standard_normal((K, M))
    dout = rng.standard_normal((N, M))
    assert sorted(layer_products(monkeypatch, x, W, dout)) == sorted(backward)


def test_the_mlp_layers_take_the_micro_kernel_and_agree_with_blas(monkeypatch):
    """On an AVX-512 host the notebooks' 784 -> 400 layer at batch 20 is computed by the
    micro-kernel (``pays``); the layer's results equal the BLAS path's to rounding."""
    monkeypatch.setattr(db, "MAX_MACS", None)              # BLAS with AVX2 kernels
    assert db.pays(20, 784, 400, np.float64) and not db.pays(20, 200, 10, np.float64)
    assert db.pays(512, 2048, 1024, np.float64)            # 28 MB of operands
    assert not db.pays(1024, 784, 400, np.float32)         # more rows than MAX_ROWS
    assert not db.pays(256, 4096, 4096, np.float32)        # past MAX_BYTES
    rng = np.random.default_rng(3)
    x, W, b = rng.standard_normal((20, 784)), rng.standard_normal((784, 400)) * 0.05, np.ones(400)
    dout = rng.standard_normal((20, 400))
    results = []
    for available in (True, False):
        monkeypatch.setattr(db, "AVAILABLE", available)
        with fastnet.set_backend("numba"):
            y = F.dense(x, W, b, "relu")
            results.append((y,) + F.dense_backward(dout, x, W, y, "relu"))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("libs, avx512", [
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": "Haswell"}], False),
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": "SkylakeX"}], True),
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": "Zen"}], False),
    ([{"user_api": "blas", "internal_api": "mkl"}], True),
    ([{"user_api": "openmp", "internal_api": "openmp"}], False),
])
def test_big_products_go_to_a_blas_with_avx512_kernels(monkeypatch, libs, avx512):
    """Beside OpenBLAS's AVX-512 kernels the micro-kernel lost from ~268 M multiply-adds on in
    float32 (0.76x at 512 x 2048 -> 1024) and from ~40 M in float64 (0.91x at 128 x 784 -> 400,
    on an Intel Xeon)."""
    import threadpoolctl
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: libs)
    assert db._blas_runs_avx512() == avx512
    monkeypatch.setattr(db, "MAX_MACS", db.MAX_MACS_BESIDE_AVX512_BLAS)
    assert db.pays(512, 784, 400, np.float32)                # 161 M: still the micro-kernel
    assert not db.pays(512, 2048, 1024, np.float32)          # 1074 M: BLAS
    assert db.pays(64, 784, 400, np.float64)                 # float64 gives way sooner: 20 M
    assert not db.pays(128, 784, 400, np.float64)            # 40 M: BLAS
