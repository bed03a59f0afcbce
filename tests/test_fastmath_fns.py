"""Accuracy of the vectorisable exp / sigmoid / tanh / log / log1p of the Numba backend
(``_vecmath``).

Each function runs over millions of points spanning its whole range (every 1021st float32 bit
pattern, both signs; random float64 bit patterns plus dense uniform samples; the edges) and is
compared with an x87 extended-precision reference (64-bit mantissa, so the reference's own error
is ~2^-11 of a float64 ulp). The error is reported in ulps of the output dtype; run with ``-s``
to see the table. Special values are checked exactly.
"""
import json
import math
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from fastnet.kernels.numba_backend import _vecmath as vm
from fastnet.kernels.numba_backend._config import FASTMATH

EXTENDED = np.finfo(np.longdouble).nmant >= 63
needs_extended = pytest.mark.skipif(not EXTENDED, reason="needs x87 80-bit long double")

# Max ulp error allowed. Measured here (AVX-512, llvmlite 0.50): exp 1.03 / 1.00, sigmoid
# 2.31 / 2.23, tanh 2.50 / 2.18 (float64 / float32); log 0.84 / 0.84, log1p 0.84 / 0.83 (AMD
# Zen 4, llvmlite 0.50; an audit's denser float64 sample found 0.853 for log); the margin is for
# other CPUs and LLVMs.
MAX_ULP = {"exp": 1.5, "sigmoid": 3.0, "tanh": 3.0, "log": 1.2, "log1p": 1.2}


def _loop(fn):
    # Same fast-math flags as the kernels; no on-disk cache: a cached test loop would keep
    # running an old _vecmath (Numba's cache does not track the modules a function calls).
    @numba.njit(fastmath=FASTMATH)
    def apply(x, y):
        for i in range(x.size):
            y[i] = fn(x[i])
    return apply


KERNELS = {name: _loop(getattr(vm, name)) for name in ("exp", "sigmoid", "tanh", "log", "log1p")}
#: Where each function is real (outside it: NaN or -inf, checked in ``test_special_values``).
DOMAIN = {"log": lambda x: x > 0, "log1p": lambda x: x > -1}


def run(name, x):
    y = np.empty_like(x)
    KERNELS[name](x, y)
    return y


def reference(name, x):
    """The exact function in extended precision."""
    xl = x.astype(np.longdouble)
    if name == "exp":
        return np.exp(xl)
    if name == "tanh":
        return np.tanh(xl)
    if name in ("log", "log1p"):
        return getattr(np, name)(xl)
    e = np.exp(-np.abs(xl))
    return np.where(xl >= 0, 1 / (1 + e), e / (1 + e))


def points(name, dtype):
    rng = np.random.default_rng(0)
    if dtype == np.float32:
        pos = np.arange(0, 0x7F800000, 1021, dtype=np.uint32).view(np.float32)
        parts = [pos, -pos, rng.uniform(-105, 90, 1_000_000).astype(np.float32)]
    else:
        bits = rng.integers(0, 0x7FF0000000000000, 1_000_000, dtype=np.uint64)
        pos = bits.view(np.float64)
        parts = [pos, -pos, rng.uniform(-750, 715, 1_000_000), rng.uniform(-1, 1, 1_000_000),
                 rng.uniform(-25, 25, 1_000_000)]
    edges = [0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 1, -1, 88.72, 88.73, -87.33, -103.9, -104,
             709.78, 709.79, -708.39, -708.4, -745.13, -745.14, 1e4, -1e4]
    parts.append(np.array(edges).astype(dtype))
    if name in DOMAIN:      # densely where the results are small: near 1 for log, 0 for log1p
        near = rng.uniform(-0.5, 1.0, 1_000_000)
        parts += [near + (1 if name == "log" else 0), np.logspace(-40, 0, 100_000),
                  -np.logspace(-40, 0, 100_000) + (1 if name == "log" else 0)]
    x = np.concatenate(parts).astype(dtype)
    x = x[np.isfinite(x)]
    return x[DOMAIN[name](x)] if name in DOMAIN else x


def ulp_error(y, ref, dtype):
    """|y - ref| in ulps of ``dtype`` at ``ref`` (0 where both are the same infinity)."""
    ref_d = ref.astype(dtype)                    # the correctly rounded answer (or +-inf)
    with np.errstate(over="ignore", invalid="ignore"):
        ulp = np.spacing(np.abs(ref_d)).astype(np.longdouble)
        ulp = np.where(np.isinf(ref_d), np.spacing(np.finfo(dtype).max), ulp)
        err = np.abs(y.astype(np.longdouble) - ref) / ulp
    same = (y == ref_d)                          # covers overflow to inf on both sides
    return np.where(same, 0.0, err)


@needs_extended
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["exp", "sigmoid", "tanh", "log", "log1p"])
@pytest.mark.filterwarnings("ignore:overflow")
def test_max_ulp_error(name, dtype):
    x = points(name, dtype)
    y = run(name, x)
    with np.errstate(over="ignore"):
        err = ulp_error(y, reference(name, x), dtype)
    worst = int(np.argmax(err))
    # Against NumPy in float64 (what the kernel tests compare with).
    with np.errstate(over="ignore"):
        x64 = x.astype(np.float64)
        e = np.exp(-np.abs(x64))
        plain = (np.where(x64 >= 0, 1 / (1 + e), e / (1 + e)) if name == "sigmoid"
                 else getattr(np, name)(x64))
        vs_numpy = ulp_error(y, plain.astype(np.longdouble), dtype).max()
    print(f"\n{name:8s} {np.dtype(dtype).name}: {x.size:,} points, max {err.max():.3f} ulp "
          f"at x={x[worst]!r} (mean {err.mean():.3f}); vs NumPy float64: {vs_numpy:.3f} ulp")
    assert err.max() <= MAX_ULP[name]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_special_values(dtype):
    inf, nan = np.inf, np.nan
    big = 1e4
    cases = {
        "exp": [(-inf, 0.0), (inf, inf), (0.0, 1.0), (-0.0, 1.0), (big, inf), (-big, 0.0),
                (1e3, inf), (-1e3, 0.0)],
        "sigmoid": [(-inf, 0.0), (inf, 1.0), (0.0, 0.5), (big, 1.0), (-big, 0.0), (200, 1.0)],
        "tanh": [(-inf, -1.0), (inf, 1.0), (0.0, 0.0), (big, 1.0), (-big, -1.0), (25, 1.0),
                 (-25, -1.0)],
        "log": [(0.0, -inf), (-0.0, -inf), (inf, inf), (1.0, 0.0), (-1.0, nan), (-inf, nan),
                (-np.finfo(dtype).tiny, nan)],
        "log1p": [(-1.0, -inf), (inf, inf), (0.0, 0.0), (-1.5, nan), (-inf, nan)],
    }
    for name, pairs in cases.items():
        x = np.array([p[0] for p in pairs] + [nan], dtype=dtype)
        y = run(name, x)
        assert y.dtype == dtype
        np.testing.assert_array_equal(y[:-1], np.array([p[1] for p in pairs], dtype=dtype),
                                      err_msg=name)
        assert np.isnan(y[-1]), name
    for name in ("tanh", "log1p"):
        assert np.signbit(run(name, np.array([-0.0], dtype=dtype))[0]), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_exp_underflow_is_gradual(dtype):
    """Results below the smallest normal are denormals within one denormal step, then 0."""
    tiny = np.finfo(dtype).smallest_subnormal
    lo = math.log(float(tiny))
    x = np.linspace(lo - 2, lo + 30, 100_001).astype(dtype)
    y = run("exp", x)
    ref = np.exp(x.astype(np.longdouble))
    assert np.all(np.abs(y - ref) <= tiny * 1.0001 + 2 * np.spacing(np.abs(ref).astype(dtype)))
    assert np.all(y >= 0) and np.all(np.diff(y) >= 0)      # monotone, never negative


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_tanh_relative_accuracy_near_zero(dtype):
    x = np.logspace(-30, 0, 10_001).astype(dtype)
    x = np.concatenate([x, -x])
    y = run("tanh", x)
    ref = np.tanh(x.astype(np.float64)) if dtype == np.float32 else np.tanh(x)
    np.testing.assert_allclose(y, ref, rtol=4 * np.finfo(dtype).eps, atol=0)
    assert np.all(np.sign(y) == np.sign(x))


@needs_extended
def test_float32_tanh_is_accurate_where_it_saturates():
    """The gradient ``1 - tanh^2`` of a saturated unit amplifies tanh's error near 1: with
    2.5 ulps there (one form everywhere) its median relative error at |x| 4-8 was 2.5e-3,
    against 9.0e-4 from a correctly rounded tanh (now matched) and 1.2e-3 from NumPy's. Every
    17th float32 from 1 to 10, both signs."""
    lo, hi = np.float32(1).view(np.uint32), np.float32(10).view(np.uint32)
    x = np.arange(lo, hi, 17, dtype=np.uint32).view(np.float32)
    x = np.concatenate([x, -x])
    y = run("tanh", x)
    assert ulp_error(y, reference("tanh", x), np.float32).max() <= 1.2
    a = x[(np.abs(x) >= 4) & (np.abs(x) <= 8)]
    ya = run("tanh", a)
    exact = 1 - np.tanh(a.astype(np.longdouble)) ** 2
    grad = (1 - ya.astype(np.longdouble) ** 2)
    assert float(np.median(np.abs(grad / exact - 1))) < 1.5e-3


_UNCOMPILED = """
import json, sys
import numpy as np
from fastnet.kernels.numba_backend import _vecmath as vm
np.seterr(all="ignore")
x = json.loads(sys.argv[1])
print(json.dumps({f"{name} {dtype.__name__}": [float(getattr(vm, name)(dtype(v))) for v in x]
                  for name in ("exp", "sigmoid", "tanh", "log", "log1p")
                  for dtype in (np.float32, np.float64)}))
"""


def test_uncompiled_python_gives_the_same_numbers():
    """With NUMBA_DISABLE_JIT=1 (coverage runs) the functions are plain Python: same numbers."""
    x = [-800, -100, -20, -1.5, -1, -0.7, -1e-5, 0, 3e-8, 1e-40, 0.3, 1, 2, 50, 700]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", _UNCOMPILED, json.dumps(x)], env=env,
                         capture_output=True, text=True, check=True).stdout
    for key, got in json.loads(out).items():
        name, dtype = key.split()
        dtype = np.dtype(dtype).type
        with np.errstate(over="ignore"):
            want = run(name, np.array(x).astype(dtype))
        np.testing.assert_allclose(np.array(got, dtype=dtype), want,
                                   rtol=4 * np.finfo(dtype).eps, err_msg=key)


def _specials(dtype, n):
    """``n`` values cycling through the edges (NaN of both signs, +-0, +-inf, subnormals, the
    extremes) and random values of both signs."""
    info = np.finfo(dtype)
    edges = np.array([np.nan, -np.nan, -0.0, 0.0, np.inf, -np.inf, info.smallest_subnormal,
                      -info.smallest_subnormal, info.tiny, -info.tiny, info.max, -info.max,
                      1.0, -1.0], dtype)
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 4).astype(dtype)
    x[::3] = np.resize(edges, x[::3].size)
    return x


@pytest.mark.parametrize("n", [1, 7, 33, 1000, 1 << 17])      # tails; the parallel loops
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_in_place_passes_give_the_values_bit_for_bit(dtype, n):
    """The activation passes that write over their input (``tests/test_numba_codegen.py`` says
    why they are written as they are): ReLU as ``np.maximum(x, 0)`` (+0.0 for -0.0, each NaN
    kept with its sign), sigmoid and tanh as their two-array loops."""
    from fastnet.kernels.numba_backend import activations
    from fastnet.kernels.numba_backend._scalar import relu_row_
    bits = np.uint32 if dtype == np.float32 else np.uint64
    x = _specials(dtype, n)
    y = x.copy()
    relu_row_(y)
    np.testing.assert_array_equal(y.view(bits), np.maximum(x, 0).view(bits))
    for in_place, two_arrays in ((activations._sigmoid_, activations._sigmoid_forward),
                                 (activations._tanh_, activations._tanh_forward)):
        y, want = x.copy(), np.empty_like(x)
        in_place(y)
        two_arrays(x, want)
        np.testing.assert_array_equal(y.view(bits), want.view(bits), err_msg=in_place.__name__)
