"""The float64 optimizer step with its square root on the FMA units (``_root_step``) against
NumPy's ``sqrt`` and division, and the optimizer kernels built on it against their plain loops,
bit for bit."""
import os
import subprocess
import sys

import numpy as np
import pytest

numba = pytest.importorskip("numba")
config = pytest.importorskip("fastnet.kernels.numba_backend._config")
rs = pytest.importorskip("fastnet.kernels.numba_backend._root_step")
opt = pytest.importorskip("fastnet.kernels.numba_backend.optimizers")
mk = pytest.importorskip("fastnet.kernels.numba_backend._microkernels")

pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT,
                                reason="intrinsics need compiling (NUMBA_DISABLE_JIT is set)")


@config.jit
def _step_all(p, u, s, k, c, eps, lanes):
    for i in range(0, p.size, lanes):
        _bare_step(p, u, s, i, p.size - i, k, c, eps)


@config.jit
def _bare_step(p, u, s, start, valid, k, c, eps):
    """``p[i] -= (k * u[i]) / (sqrt(s[i]) * c + eps)``: Adam's step with its state left as it
    is (``beta = 1``, a zero gradient, no flush), so ``u`` and ``s`` are ``m`` and ``v``."""
    one, zero = p.dtype.type(1), p.dtype.type(0)
    rs.adam_step(p, np.zeros_like(p), u, s, start, valid, one, zero, one, zero, k, c, eps, zero)


def _wide(rng, n, dtype):
    """Positive values of ``dtype`` spread over its whole range (random exponents, random
    mantissas, subnormals included), dense values near 1, then the edges around ``_root_step``'s
    safe range and the special values."""
    info = np.finfo(dtype)
    bits = {np.float32: (np.uint32, 0x7F800000), np.float64: (np.uint64, 0x7FF0000000000000)}
    uint, inf_bits = bits[dtype]
    spread = rng.integers(0, inf_bits, n // 2, dtype=uint).view(dtype)
    near_one = rng.uniform(0, 10, n - n // 2).astype(dtype)
    edges = [0.0, -0.0, info.smallest_subnormal, info.smallest_normal, info.max, np.inf, -np.inf,
             np.nan, -1.0, -info.smallest_subnormal]
    if dtype == np.float64:
        for e in (-1000, 1000):
            edges += [np.nextafter(2.0 ** e, 0), 2.0 ** e, np.nextafter(2.0 ** e, np.inf)]
    return _scatter(np.concatenate([spread, near_one]), np.array(edges, dtype))


def _scatter(values, specials):
    """``values`` with ``specials`` added twice: together at the end, and each alone among
    ordinary values (37 apart, so in a vector of its own: a vector with one unsafe value takes
    the plain root throughout)."""
    values = values.copy()
    values[:37 * len(specials):37] = specials
    return np.concatenate([values, specials])


def _reference(p, u, s, k, c, eps):
    # c is a power of two, so sqrt(s)*c is exact and NumPy's two roundings equal the kernel's
    # one fused multiply-add.
    with np.errstate(all="ignore"):
        return p - (k * u) / (np.sqrt(s) * c + eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [1.0, 0.5, 4.0])
def test_the_step_matches_sqrt_and_division_bit_for_bit(dtype, c):
    rng = np.random.default_rng(7)
    s = _wide(rng, 400_000, dtype)
    n = s.size
    p = rng.standard_normal(n).astype(dtype)
    u = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)).astype(dtype)
    k, eps = dtype(0.01), dtype(1e-7)
    expected = _reference(p, u, s, k, dtype(c), eps)
    got, u_kept, s_kept = p.copy(), u.copy(), s.copy()
    _step_all(got, u_kept, s_kept, k, dtype(c), eps, mk.lanes(np.dtype(dtype)))
    np.testing.assert_array_equal(got, expected)           # NaN where NaN, inf where inf
    np.testing.assert_array_equal(s_kept, s)               # the state as it was
    assert np.isnan(got).sum() >= 4                         # inf, NaN and negative roots


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_step_writes_only_its_valid_values(dtype):
    lanes = mk.lanes(np.dtype(dtype))
    for valid in range(lanes + 2):
        for start in (0, 3):
            p = np.full(start + lanes + 8, 7.0, dtype)
            u, s = np.ones_like(p), np.full_like(p, 4.0)
            _bare_step(p, u, s, start, valid, dtype(1), dtype(1), dtype(0))
            changed = np.flatnonzero(p != 7.0)
            np.testing.assert_array_equal(changed, np.arange(start, start + min(valid, lanes)))
            np.testing.assert_array_equal(p[changed], 6.5)      # 7 - 1 / sqrt(4)


@config.jit
def _adagrad_one(p, states, start, valid, hyper):
    rs.adagrad_step(p, np.ones_like(p), states[0], start, valid, *hyper)


@config.jit
def _rmsprop_one(p, states, start, valid, hyper):
    rs.rmsprop_step(p, np.ones_like(p), states[0], start, valid, *hyper)


@config.jit
def _adam_one(p, states, start, valid, hyper):
    rs.adam_step(p, np.ones_like(p), states[0], states[1], start, valid, *hyper)


#: Each step at g = 1 from p = 7: its state before and after, and p after (hand-computed).
_ONE_VECTOR = {
    "adagrad": (_adagrad_one, (1.0, 0.0), [3.0], [4.0], 6.5),                  # 7 - 1/sqrt(4)
    "rmsprop": (_rmsprop_one, (1.0, 0.5, 0.5, 0.0, 0.0), [7.0], [4.0], 6.5),   # h = 3.5 + 0.5
    "adam": (_adam_one, (0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 0.0, 0.0), [3.0, 7.0], [2.0, 4.0],
             6.0),                                                            # 7 - 2/sqrt(4)
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("update", sorted(_ONE_VECTOR))
def test_each_step_updates_its_state_in_the_same_lanes(dtype, update):
    """The state's update happens in the same vector as the step: both masked alike."""
    step, hyper, before, after, p_after = _ONE_VECTOR[update]
    hyper = tuple(dtype(x) for x in hyper)
    lanes = mk.lanes(np.dtype(dtype))
    for valid in range(lanes + 2):
        p = np.full(3 + lanes + 8, 7.0, dtype)
        states = tuple(np.full_like(p, x) for x in before)
        step(p, states, 3, valid, hyper)
        touched = np.arange(3, 3 + min(valid, lanes))
        np.testing.assert_array_equal(np.flatnonzero(p != 7.0), touched)
        np.testing.assert_array_equal(p[touched], p_after)
        for state, x, y in zip(states, before, after):
            np.testing.assert_array_equal(np.flatnonzero(state != x), touched)
            np.testing.assert_array_equal(state[touched], y)


@pytest.mark.parametrize("update", sorted(_ONE_VECTOR))
def test_each_step_refuses_arguments_it_would_misread(update):
    step, hyper, before, _, _ = _ONE_VECTOR[update]
    other = np.float32
    for bad in (np.ones(32)[::2], np.ones(16, other), np.ones((4, 4))):
        with pytest.raises(numba.core.errors.TypingError):
            step(np.zeros(16), (bad,) * len(before), 0, 8, hyper)
    with pytest.raises(numba.core.errors.TypingError):       # a scalar of another dtype
        step(np.zeros(16), tuple(np.ones(16) for _ in before), 0, 8,
             (other(hyper[0]),) + hyper[1:])


# --- the float64 kernels of AdaGrad, RMSprop and Adam against their plain loops -------------

needs_root = pytest.mark.skipif(not opt.BY_ROOT, reason="float64 updates take the plain loops "
                                                        "on this host (no AVX-512)")
_TINY = float(np.finfo(np.float64).tiny)


def _state(rng, n):
    """Gradients and states for ``n`` parameters: wide ranges, and zeros, subnormals, NaN and
    inf among them."""
    g = rng.standard_normal(n) * 10.0 ** rng.uniform(-20, 5, n)
    h = rng.random(n) * 10.0 ** rng.uniform(-310, 30, n)
    if n > 400:
        g = _scatter(g, np.array([0.0, np.nan, np.inf]))[:n]
        h = _scatter(h, np.array([0.0, 5e-324, np.nan, np.inf, -1.0, 1e-305, 1e305]))[-n:]
    return g, h


@needs_root
@pytest.mark.parametrize("n", [1, 7, 127, 128, 129, 1000, 70_001])
@pytest.mark.parametrize("update", ["adagrad", "rmsprop", "adam"])
def test_float64_kernels_match_the_plain_loops_bit_for_bit(n, update):
    rng = np.random.default_rng(n)
    p = rng.standard_normal(n)
    g, h = _state(rng, n)
    m = rng.standard_normal(n) * 1e-3
    if update == "adagrad":
        plain, rooted, state, hyper = opt._adagrad, opt._adagrad64, [h], (0.01, 1e-7)
    elif update == "rmsprop":
        plain, rooted, state, hyper = opt._rmsprop, opt._rmsprop64, [h], (0.01, 0.9, 0.1, 1e-7,
                                                                          _TINY)
    else:
        plain, rooted, state = opt._adam, opt._adam64, [m, np.abs(h)]
        hyper = (0.9, 0.1, 0.999, 0.001, 0.002, 1 / np.sqrt(1 - 0.999 ** 3), 1e-8, _TINY)
    expected = [p.copy()] + [a.copy() for a in state]
    got = [p.copy()] + [a.copy() for a in state]
    with np.errstate(all="ignore"):
        for _ in range(3):
            plain(expected[0], g, *expected[1:], *hyper)
            rooted(got[0], g, *got[1:], *hyper)
    for e, o in zip(expected, got):
        np.testing.assert_array_equal(o, e)


@needs_root
def test_float64_updates_take_the_root_step_kernels(monkeypatch):
    calls = []
    monkeypatch.setattr(opt, "_adagrad64", lambda *a: calls.append(a[0].dtype))
    opt.adagrad_update_(np.zeros(3), np.ones(3), np.zeros(3), 0.1, 1e-7)
    opt.adagrad_update_(np.zeros(3, np.float32), np.ones(3, np.float32), np.zeros(3, np.float32),
                        0.1, 1e-7)
    assert calls == [np.float64]


def test_float64_kernels_are_on_where_avx512_is():
    assert opt.BY_ROOT == rs.ESTIMATE
    compiles_for_this_host = numba.config.CPU_NAME is None and numba.config.CPU_FEATURES is None
    if mk.VECTOR_BYTES == 64 and compiles_for_this_host and numba.config.ENABLE_AVX:
        assert rs.ESTIMATE


def test_float64_updates_run_where_numba_compiles_without_avx512(tmp_path):
    # NUMBA_CPU_NAME=generic (portable caches) compiles with no CPU features: the estimate's
    # AVX-512 instruction made LLVM abort the process there ("Do not know how to split the
    # result of this operator"), while every other kernel compiled.
    code = """
import numba, numpy as np
from fastnet.kernels.numba_backend import _microkernels as mk, _root_step as rs
from fastnet.kernels.numba_backend import optimizers as opt
LANES = mk.lanes(np.dtype(np.float64))
@numba.njit
def step(p, u, s):
    for i in range(0, p.size, LANES):
        rs.adam_step(p, np.zeros_like(p), u, s, i, p.size - i, 1.0, 0.0, 1.0, 0.0, 0.5, 1.0,
                     1e-7, 0.0)
p, u, s = np.zeros(20), np.ones(20), np.arange(20.0)
step(p, u, s)
assert np.array_equal(p, -0.5 / (np.sqrt(s) + 1e-7)), p
h = np.zeros(20)
opt.adagrad_update_(p, u, h, 0.1, 1e-7)
opt.rmsprop_update_(p, u, h, 0.1, 0.9, 1e-7)
opt.adam_update_(p, u, h.copy(), h.copy(), 0.1, 0.9, 0.999, 1e-8, 1)
print(opt.BY_ROOT, rs.ESTIMATE, np.isfinite(p).all())
"""
    env = dict(os.environ, NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_CPU_FEATURES", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False", "True"]


@needs_root
@pytest.mark.parametrize("lr", [1, np.float32(0.1), True])
def test_float64_kernels_take_hyper_parameters_of_any_real_type(lr):
    # The plain loops round every hyper-parameter to the parameter's dtype; the float64 kernels
    # once passed an int or a float32 learning rate straight to the intrinsic, and failed to
    # compile ("value needs to be of type double not i64").
    rng = np.random.default_rng(3)
    p, g = rng.standard_normal(300), rng.standard_normal(300)
    h = rng.random(300)
    cases = [(opt._adagrad, opt._adagrad64, [h], (lr, 1e-7)),
             (opt._rmsprop, opt._rmsprop64, [h], (lr, 0.9, 0.1, 1e-7, _TINY)),
             (opt._adam, opt._adam64, [h * 0.1, h], (0.9, 0.1, 0.999, 0.001, lr, 1.0, 1e-8, _TINY))]
    for plain, rooted, state, hyper in cases:
        expected = [p.copy()] + [a.copy() for a in state]
        got = [p.copy()] + [a.copy() for a in state]
        plain(expected[0], g, *expected[1:], *hyper)
        rooted(got[0], g, *got[1:], *hyper)
        for e, o in zip(expected, got):
            np.testing.assert_array_equal(o, e)
