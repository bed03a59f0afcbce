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
