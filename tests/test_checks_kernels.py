"""The backends' whole-array checks (``labels_in_range``, ``all_finite``,
``all_in_unit_interval``) against plain loops."""
import math
import threading

import numpy as np
import pytest

import fastnet
from fastnet import _checks as check
from fastnet.kernels.numba_backend import checks as numba_checks


def finite_by_loop(a):
    return all(math.isfinite(v) for v in a.tolist())


# Sizes below and above the Numba backend's split over threads (made 4 KiB per thread here, so
# that 5003 values split), and a vector's odd remainder.
SIZES = [0, 1, 17, 1000, 5003]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_finite_finds_one_non_finite_value_anywhere(kern, dtype, n, bad, monkeypatch):
    monkeypatch.setattr(numba_checks, "ALL_FINITE_BYTES_PER_THREAD", 1 << 12)
    a = np.random.default_rng(n).standard_normal(n).astype(dtype)
    assert bool(kern.all_finite(a)) is finite_by_loop(a) is True
    for where in sorted({0, n // 2, n - 1}) if n else []:
        b = a.copy()
        b[where] = bad
        assert bool(kern.all_finite(b)) is False, where


def test_all_finite_accepts_the_extremes_of_each_dtype(kern, dtype):
    info = np.finfo(dtype)
    a = np.array([info.max, -info.max, info.tiny, info.tiny / 4, -0.0, 0.0], dtype)
    assert finite_by_loop(a) and bool(kern.all_finite(a)) is True


def test_labels_in_range_against_a_loop(kern):
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 1000):
        labels = rng.integers(0, 10, n)
        for bad in (None, -1, 10, np.iinfo(np.int64).min, np.iinfo(np.int64).max):
            if bad is not None and n == 0:
                continue
            case = labels.copy()
            if bad is not None:
                case[n // 2] = bad
            want = all(0 <= v < 10 for v in case.tolist())
            assert bool(kern.labels_in_range(case, 10)) is want, (n, bad)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")      # np.matrix
@pytest.mark.parametrize("make", [
    lambda a: a.astype(np.float16),                              # no kernel for float16
    lambda a: a[:, ::2],                                         # strided
    lambda a: np.lib.stride_tricks.as_strided(a, writeable=False),      # read-only
    lambda a: a.astype(a.dtype.newbyteorder(">")),               # non-native byte order
    np.asmatrix,                                                 # a subclass that stays 2-D
])
def test_check_all_finite_takes_any_float_array(backend, make):
    a = np.ones((4, 6))
    assert check.all_finite(make(a)) is True
    a[2, 4] = np.nan
    assert check.all_finite(make(a)) is False


def in_unit_interval_by_loop(a):
    return not any(v < 0 or v > 1 for v in a.tolist())


@pytest.mark.parametrize("n", SIZES)
def test_all_in_unit_interval_finds_one_value_outside_anywhere(kern, dtype, n):
    info = np.finfo(dtype)
    a = np.random.default_rng(n).random(n).astype(dtype)
    a[::7] = np.resize(np.array([0.0, -0.0, 1.0, np.nan, info.smallest_subnormal], dtype),
                       a[::7].size)
    assert bool(kern.all_in_unit_interval(a)) is in_unit_interval_by_loop(a) is True
    outside = [-info.smallest_subnormal, np.nextafter(dtype(1), dtype(2)), np.inf, -np.inf,
               -1.0, 2.0, info.max]
    for where in sorted({0, n // 2, n - 1}) if n else []:
        for bad in outside:
            b = a.copy()
            b[where] = bad
            assert in_unit_interval_by_loop(b) is False
            assert bool(kern.all_in_unit_interval(b)) is False, (where, bad)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")      # np.matrix
@pytest.mark.parametrize("make", [
    lambda a: a.astype(np.float16),
    lambda a: a[:, ::2],
    lambda a: np.lib.stride_tricks.as_strided(a, writeable=False),
    lambda a: a.astype(a.dtype.newbyteorder(">")),
    np.asmatrix,
    lambda a: a,
])
def test_check_all_in_unit_interval_takes_any_float_array(backend, make):
    a = np.full((4, 6), 0.5)
    assert check.all_in_unit_interval(make(a)) is True
    a[2, 4] = 1.5
    assert check.all_in_unit_interval(make(a)) is False


def test_fit_names_the_first_row_with_nan_above_the_parallel_split():
    rows = 2 * numba_checks.ALL_FINITE_BYTES_PER_THREAD // 32 + 5      # 8 float32 values a row
    X = np.zeros((rows, 8), np.float32)
    X[rows - 3, 7] = np.inf
    model = fastnet.model.Classifier([fastnet.layers.FC(8, 3)],
                                     optimizer=fastnet.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match=rf"X contains NaN or inf \(first in row {rows - 3}\)"):
        model.fit(X, np.zeros(rows, np.int64), epochs=1)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")      # np.matrix
def test_fit_checks_a_parameter_the_user_replaced_by_a_matrix():
    """A layer's W replaced by an np.matrix still trains (the kernels see it as an ndarray),
    and the end-of-epoch check of the parameters takes it too."""
    model = fastnet.model.Classifier([fastnet.layers.FC(4, 3)],
                                     optimizer=fastnet.optimizers.SGD(0.1))
    model.layers[0].W = np.asmatrix(model.layers[0].W)
    X = np.random.default_rng(0).random((10, 4)).astype(model.layers[0].dtype)
    model.fit(X, np.arange(10) % 3, epochs=1)
    assert np.isfinite(np.asarray(model.layers[0].W)).all()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_all_finite_splits_large_arrays_over_threads_and_counts_every_part(monkeypatch):
    """The parts after the first run on Python threads; a NaN in any part is found, with any
    thread count, and a part whose thread failed is an error, not a pass."""
    monkeypatch.setattr(numba_checks, "ALL_FINITE_BYTES_PER_THREAD", 1 << 12)
    a = np.zeros(10_000)                                   # 80 KB: up to 19 parts
    for threads in (1, 2):
        with fastnet.set_num_threads(threads):
            assert numba_checks.all_finite(a)
            for where in (0, 4999, 5000, 9999):
                b = a.copy()
                b[where] = np.nan
                assert not numba_checks.all_finite(b), (threads, where)
    real = numba_checks._count_non_finite

    def flaky(part):
        if threading.current_thread() is not threading.main_thread():
            raise MemoryError("a part's thread failed")
        return real(part)
    monkeypatch.setattr(numba_checks, "_count_non_finite", flaky)
    with fastnet.set_num_threads(2), pytest.raises(RuntimeError, match="a part of 10000 values"):
        numba_checks.all_finite(a)
