"""The Numba backend's vector IR helpers that the convolution kernels do not exercise on their
own, against NumPy slicing."""
import numpy as np
import pytest

mk = pytest.importorskip("fastnet.kernels.numba_backend._microkernels")
config = pytest.importorskip("fastnet.kernels.numba_backend._config")
numba = pytest.importorskip("numba")

pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT,
                                reason="intrinsics need compiling (NUMBA_DISABLE_JIT is set)")


@config.jit
def _split(src, s0, lo, hi, a, b, n):
    mk.split_pairs(src, s0, lo, hi, a, 1, b, 2, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("L", [1, 2, 15, 16, 17, 31, 32, 33, 70])
@pytest.mark.parametrize("left", [0, 1, 2, 3])
@pytest.mark.parametrize("extra", [0, 1, 5])
def test_split_pairs_gives_the_stride_2_phases_of_a_zero_padded_row(dtype, L, left, extra):
    """``a[m] = xpad[2m]``, ``b[m] = xpad[2m + 1]`` for ``xpad`` the row with ``left`` zeros
    before it and zeros after; nothing written outside ``a[1:1+n]``, ``b[2:2+n]``."""
    row = np.random.default_rng(L).uniform(1, 2, L).astype(dtype)
    n = (left + L + 1) // 2 + extra
    xpad = np.concatenate([np.zeros(left, dtype), row, np.zeros(2 * n, dtype)])
    a, b = np.full(n + 4, -1, dtype), np.full(n + 4, -1, dtype)
    _split(row, -left, left, left + L, a, b, n)
    np.testing.assert_array_equal(a[1:1 + n], xpad[0:2 * n:2])
    np.testing.assert_array_equal(b[2:2 + n], xpad[1:2 * n:2])
    assert (a[0] == -1 and (a[1 + n:] == -1).all() and (b[:2] == -1).all()
            and (b[2 + n:] == -1).all())


@config.jit
def _shift(src, s0, lo, hi, dst, n):
    mk.shift_row(src, s0, lo, hi, dst, 1, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("L", [1, 7, 16, 17, 40])
@pytest.mark.parametrize("left", [0, 1, 3, 20])
@pytest.mark.parametrize("n", [1, 9, 16, 33, 70])
def test_shift_row_copies_a_row_into_a_zero_padded_one(dtype, L, left, n):
    """``dst[1 + m] = xpad[m]`` for ``m < n``, ``xpad`` the row after ``left`` zeros and
    followed by zeros; nothing written outside ``dst[1:1+n]``."""
    row = np.random.default_rng(L).uniform(1, 2, L).astype(dtype)
    xpad = np.concatenate([np.zeros(left, dtype), row, np.zeros(n, dtype)])
    dst = np.full(n + 3, -1, dtype)
    _shift(row, -left, left, left + L, dst, n)
    np.testing.assert_array_equal(dst[1:1 + n], xpad[:n])
    assert dst[0] == -1 and (dst[1 + n:] == -1).all()


@config.jit
def _transpose(src, s0, ss, rows, cols, dst, d0, ds, width, sums):
    mk.transpose_block(src, s0, ss, rows, cols, dst, d0, ds, width, sums, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, cols, width", [(1, 1, 1), (3, 5, 3), (3, 5, 8), (8, 8, 8),
                                               (16, 16, 16), (5, 16, 16), (16, 2, 7),
                                               (0, 4, 4)])
def test_transpose_block_transposes_zero_fills_and_sums_rows(dtype, rows, cols, width):
    """``dst[j, i] = src[i, j]`` for ``j < cols``, ``i < width`` (rows past ``rows`` as 0), and
    ``sums[1 + i] += src[i, :cols].sum()`` for ``i < min(rows, width)``; nothing else written,
    nothing read outside the block (the source is exactly its rows)."""
    V = mk.VECTOR_BYTES // np.dtype(dtype).itemsize
    rows, cols, width = min(rows, V), min(cols, V), min(width, V)
    rng = np.random.default_rng(rows * 100 + cols)
    ss = cols + 3                                        # a row stride past the block
    src = rng.uniform(1, 2, max(rows, 1) * ss).astype(dtype)
    block = src.reshape(-1, ss)[:rows, :cols]
    ds = width + 2
    dst = np.full(2 + cols * ds, -1, dtype)
    sums = np.full(V + 2, 0.5, dtype)
    _transpose(src, 0, ss, rows, cols, dst, 2, ds, width, sums)
    got = dst[2:].reshape(cols, ds)
    want = np.zeros((cols, width), dtype)
    want[:, :min(rows, width)] = block.T[:, :width]
    np.testing.assert_array_equal(got[:, :width], want)
    assert (got[:, width:] == -1).all() and (dst[:2] == -1).all()
    k = min(rows, width)
    np.testing.assert_allclose(sums[1:1 + k], 0.5 + block[:k].sum(axis=1), rtol=1e-6)
    assert sums[0] == 0.5 and (sums[1 + k:] == 0.5).all()


@config.jit
def _transpose_whole(src, s0, ss, dst, d0, ds):
    mk.transpose_whole_block(src, s0, ss, dst, d0, ds)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra", [0, 3])
def test_transpose_whole_block_transposes_one_block_and_nothing_else(dtype, extra):
    """``dst[d0 + j*ds + i] = src[s0 + i*ss + j]`` for ``i, j < lanes``, with row strides
    ``extra`` values past the block's width; nothing else written."""
    V = mk.VECTOR_BYTES // np.dtype(dtype).itemsize
    ss, ds = V + extra, V + 2 * extra
    src = np.random.default_rng(extra).uniform(1, 2, 3 + V * ss).astype(dtype)
    dst = np.full(1 + V * ds, -1, dtype)
    _transpose_whole(src, 3, ss, dst, 1, ds)
    got = dst[1:].reshape(V, ds)
    np.testing.assert_array_equal(got[:, :V], src[3:].reshape(V, ss)[:, :V].T)
    assert (got[:, V:] == -1).all() and dst[0] == -1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("I", [1, 4, 7, 8, 9, 16, 17, 33, 100])
@pytest.mark.parametrize("J", [1, 8, 9, 16, 31, 64, 1030])
def test_conv1d_transpose_tiled_matches_numpy_on_row_slices(dtype, I, J):
    """conv1d's blocked transposition (whole blocks in registers, the rest one by one), into
    and out of row slices of larger buffers as the windows chain uses it (``xt[p:p+L]``); the
    rows around the slices are left alone."""
    tr = pytest.importorskip("fastnet.kernels.numba_backend._transposition")
    a = np.random.default_rng(I * J).standard_normal((I, J)).astype(dtype)
    padded = np.full((J + 5, I), -7, dtype)
    tr.transpose_tiled(a, padded[2:2 + J])
    np.testing.assert_array_equal(padded[2:2 + J], a.T)
    assert (padded[:2] == -7).all() and (padded[2 + J:] == -7).all()
    back = np.full((I, J), np.nan, dtype)
    tr.transpose_tiled(padded[2:2 + J], back)
    np.testing.assert_array_equal(back, a)
