"""Vectorisable ``exp``, ``sigmoid``, ``tanh``, ``log`` and ``log1p`` for the Numba kernels.

Why not ``math.exp``: the llvmlite wheels ship no SVML, so ``math.exp`` / ``math.tanh`` in a Numba
loop are calls into the scalar libm and LLVM cannot vectorise the loop around them (measured:
``math.tanh`` over 1e6 float32 took ~20 ms against NumPy's SIMD ``np.tanh`` ~0.4 ms). The
functions here are plain arithmetic, which LLVM inlines and vectorises (AVX-512 on this machine).

Method (Cody and Waite; the classic libm algorithm)::

    x = k*ln2 + r,   k = rint(x / ln2),   |r| <= ln2/2
    r = (x - k*LN2_HI) - k*LN2_LO        LN2_HI has trailing zero bits, so k*LN2_HI is exact
    e^r = 1 + r + r^2 * P(r)             P near-minimax (Lawson-weighted least squares, mpmath)
    e^x = e^r * 2^k                      2^k written as bits by the intrinsic ``_pow2``

``P`` has degree 9 for float64 and 4 for float32; its own error is below 2^-57 and 2^-28
relative, so what remains is rounding. Float32 inputs are computed in float32 throughout (16 lanes
per AVX-512 register) with float32 constants: a Python float literal is float64 and would promote
the whole expression.

Max error in ulps of the output dtype, measured by ``tests/test_fastmath_fns.py`` against an
x87 extended-precision reference on ~5 million points per function and dtype spanning the whole
range (every 1021st float32 bit pattern; random float64 bit patterns plus dense uniform samples)::

              float64   float32
    exp        1.03      1.00
    sigmoid    2.31      2.23     e^x / (1 + e^x) below 0: e's 1 ulp can be 2 ulps of the result
    tanh       2.50      2.23     float64 near |x| ~ 4: -m / (m + 2) rounds m + 2 in the binade
                                  above 1; float32 (another form there) near |x| ~ 0.2, and at
                                  most 1.09 from |x| = 1 on
    log        0.85      0.84     x = 2^k * m, m in [sqrt(1/2), sqrt(2)), log(m) = 2*atanh(s),
    log1p      0.84      0.83     s = (m - 1)/(m + 1); log1p adds the rounding of 1 + x back

Edges: ``exp(-inf) = 0``, ``exp(+inf) = inf``, NaN gives NaN, overflow gives inf; results below
the smallest normal underflow gradually (denormals, within one denormal step) and then to 0.
``sigmoid`` never overflows and is exactly 0 or 1 far out; ``tanh`` is exactly +-1 from |x| = 18.54
in float64 and 9.01 in float32 (measured; a correctly rounded tanh gets there at 19.06 and 9.01,
NumPy's at 18.99 and 10.0; in between, the 1.0 is within the error bounds above) and keeps its
relative accuracy near 0 (down to the denormals). ``tanh(-0.0) = -0.0``.

Every function is branch-free: out-of-range inputs are clamped first (so no lane computes with
garbage) and the special values are restored by selects, which LLVM turns into masked blends.
Division is written ``np.true_divide``: under Numba's default error model Python's ``/`` tests the
divisor for zero and raises, and that branch stops LLVM from vectorising the loop (the kernels
compile with NumPy's error model, ``_config.ERROR_MODEL``; this keeps the functions safe anywhere).

``log`` is -inf at +-0, NaN below 0 and inf at inf; denormals are scaled into the normal range
first. ``log1p(-1) = -inf``, and tiny arguments give themselves (``-0.0`` included).

Cost (one core, 1e6 elements, AVX-512 Zen 4): exp 0.36 / 0.84 ms, sigmoid 0.43 / 0.97 ms, tanh
0.28 / 0.78 ms for float32 / float64, against ``math.tanh`` ~20 ms and NumPy's ``np.tanh`` 0.35 /
1.6 ms. (Zen 5, the later host: float32 tanh 0.20-0.22 ms with its second form, 0.15 ms
before; NumPy's 0.16 ms.) The loops are bound by FMA throughput; in float64 the division is
~1/3 of tanh. log 0.40 / 1.02 ms and log1p 0.46 / 1.15 ms (Zen 4 again, a later session; NumPy's
own SIMD loops 0.38 / 0.79 and 0.46 / 1.02 ms).

The public names ``exp``, ``sigmoid``, ``tanh``, ``log``, ``log1p`` (and ``maximum``, for row
maxima) take float32 or float64 scalars; the implementation for the type is picked when the
calling kernel is compiled.
With ``NUMBA_DISABLE_JIT=1`` everything here runs as plain Python and gives the same numbers
but for the last bit here and there (compiled, the multiply-adds fuse into FMAs).

Numba's on-disk cache keys a kernel on its own source file only: after editing this module,
clear ``__pycache__`` (or ``NUMBA_CACHE_DIR``) or the cached kernels keep the old code.
"""
import math
import operator

import numpy as np
from llvmlite import ir
from numba import config, types
from numba.extending import intrinsic, overload

from ._config import jit


# --- building blocks: three IEEE operations in a fixed order, and 2**n from bits ----------------

def _in_order(opname):
    """An IEEE float ``fadd``/``fsub``/``fmul`` that LLVM may fuse into an FMA but not reassociate.

    The backend's fast-math set includes ``reassoc``, which is what lets LLVM vectorise sums; but
    it also let LLVM fold ``(x - k*LN2_HI) - k*LN2_LO`` into ``x - k*(LN2_HI + LN2_LO)`` (undoing
    Cody-Waite) and turn ``(p * 2^k1) * 2^k2`` into ``p * (2^k1 * 2^k2)`` (inf or 0 where the
    result is finite). Numba adds its fast-math flags only to float instructions that carry none,
    so an instruction emitted with ``contract`` alone keeps its IEEE evaluation order.
    """
    @intrinsic
    def op(typingctx, a, b):
        if not (isinstance(a, types.Float) and a == b):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, opname)(args[0], args[1], flags=("contract",))

        return a(a, b), codegen

    return op


#: Each float type's IEEE layout: (bits, exponent bias, mantissa bits).
_LAYOUT = {types.float64: (64, 1023, 52), types.float32: (32, 127, 23)}


@intrinsic
def _pow2_bits(typingctx, n):
    """``2.0**n`` for a float ``n`` holding an integer in the normal exponent range (-1022..1023
    for float64, -126..127 for float32), in ``n``'s type.

    Numba has no scalar bitcast: this writes the IEEE exponent field, ``(int(n) + bias) <<
    mantissa_bits``, and reinterprets it (``vcvttps2dq``, ``vpaddd``, ``vpslld`` when vectorised).
    """
    if n not in _LAYOUT:
        return None
    int_bits, bias, mant = _LAYOUT[n]

    def codegen(context, builder, sig, args):
        ity = ir.IntType(int_bits)
        k = builder.fptosi(args[0], ity)
        bits = builder.shl(builder.add(k, ity(bias)), ity(mant))
        return builder.bitcast(bits, context.get_value_type(sig.return_type))

    return n(n), codegen


@intrinsic
def _log_reduce_bits(typingctx, x):
    """``(k, m)`` with ``x = 2**k * m`` and ``m`` in ``[sqrt(1/2), sqrt(2))``, both in ``x``'s
    type, for a positive normal ``x`` (other inputs give values the caller discards).

    From the bits: subtracting the bits of ``sqrt(1/2)`` makes the exponent field, shifted down
    with its sign, the ``k`` that puts ``m`` in that range; removing ``k`` from the exponent
    field leaves ``m`` (integer operations on the vector lanes, no branch).
    """
    if x not in _LAYOUT:
        return None
    int_bits, _, mant = _LAYOUT[x]
    low_edge = {64: 0x3FE6A09E667F3BCD, 32: 0x3F3504F3}[int_bits]      # sqrt(1/2), rounded

    def codegen(context, builder, sig, args):
        ity = ir.IntType(int_bits)
        fty = context.get_value_type(x)
        bits = builder.bitcast(args[0], ity)
        k = builder.ashr(builder.sub(bits, ity(low_edge)), ity(mant))
        m = builder.bitcast(builder.sub(bits, builder.shl(k, ity(mant))), fty)
        return context.make_tuple(builder, sig.return_type, [builder.sitofp(k, fty), m])

    return types.UniTuple(x, 2)(x), codegen


@intrinsic
def _maximum_intrinsic(typingctx, a, b):
    """LLVM's ``llvm.maximum``: IEEE 754-2019 maximum, NaN if either operand is NaN.

    Python's ``max`` and ``np.maximum`` compile to compare-and-select chains that LLVM does not
    vectorise as a reduction (without ``nnan``): a softmax row max ran at ~0.5 ns per element.
    ``llvm.maximum`` is a reduction LLVM knows: ~0.05 ns per element, and NaN still propagates.
    """
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, sig, args):
        ty = context.get_value_type(sig.return_type)
        fn = builder.module.declare_intrinsic("llvm.maximum", [ty], ir.FunctionType(ty, [ty, ty]))
        return builder.call(fn, args)

    return a(a, b), codegen


if config.DISABLE_JIT:      # plain Python (e.g. a coverage run): the same operations, uncompiled
    _add, _sub, _mul = operator.add, operator.sub, operator.mul

    def _pow2(n):
        return type(n)(math.ldexp(1.0, int(n)))

    def _log_reduce(x):
        m, k = math.frexp(x)                     # m in [0.5, 1), or 0 and garbage for x <= 0
        if m < math.sqrt(0.5):
            m, k = 2 * m, k - 1
        return type(x)(k), type(x)(m)

    def maximum(a, b):
        """The larger of ``a`` and ``b``; NaN if either is NaN (vectorisable as a reduction)."""
        return a if (a > b or a != a) else b
else:
    _add, _sub, _mul = _in_order("fadd"), _in_order("fsub"), _in_order("fmul")
    _pow2 = _pow2_bits
    _log_reduce = _log_reduce_bits
    maximum = _maximum_intrinsic

#: An addition that fast-math cannot fold away (``_in_order``): ``x + 0.0`` stays the IEEE sum,
#: which is ``+0.0`` for ``x = -0.0`` (``_scalar.relu_row_``).
add_exactly = _add


# --- float64 -----------------------------------------------------------------------------------

_F64_LOG2E = 1.4426950408889634
_F64_LN2_HI = 6.93147180369123816490e-01     # 0x3fe62e42fee00000: 32 significant bits
_F64_LN2_LO = 1.90821492927058770002e-10     # ln2 - LN2_HI
# exp(x) is 0 below -745.14 and inf above 709.79; clamping just outside keeps every k in range.
_F64_EXP_LO = -746.0
_F64_EXP_HI = 710.0
# Near-minimax P(r) for (e^r - 1 - r) / r^2 on |r| <= ln2/2, relative error 3.6e-18 (2^-57.9).
_F64_P0 = 0.5000000000000011
_F64_P1 = 0.16666666666666413
_F64_P2 = 0.04166666666653026
_F64_P3 = 0.008333333333494336
_F64_P4 = 0.001388888894359938
_F64_P5 = 0.000198412695067794
_F64_P6 = 2.480149313455227e-05
_F64_P7 = 2.7557586262911595e-06
_F64_P8 = 2.763023446764578e-07
_F64_P9 = 2.5000074236309794e-08
# tanh(x) rounds to 1.0 for x > 19.06; beyond the clamp 2**k never leaves the normal range.
_F64_TANH_CLAMP = 20.0


@jit
def _expm1_reduced_f64(x):
    """``(k, e^r - 1)`` with ``x = k*ln2 + r``; ``x`` must be finite and within the clamp."""
    k = np.rint(x * _F64_LOG2E)
    r = _sub(_sub(x, k * _F64_LN2_HI), k * _F64_LN2_LO)
    p = _F64_P9
    p = p * r + _F64_P8
    p = p * r + _F64_P7
    p = p * r + _F64_P6
    p = p * r + _F64_P5
    p = p * r + _F64_P4
    p = p * r + _F64_P3
    p = p * r + _F64_P2
    p = p * r + _F64_P1
    p = p * r + _F64_P0
    return k, r + r * r * p


@jit
def _exp_f64(x):
    # NaN fails both comparisons, so it is clamped too (no lane works on NaN); it is put back last.
    xc = x if x > _F64_EXP_LO else _F64_EXP_LO
    xc = xc if xc < _F64_EXP_HI else _F64_EXP_HI
    k, em1 = _expm1_reduced_f64(xc)
    # 2**k in two factors: k runs -1076..1024, past the normal exponent range at both ends. The
    # second multiplication rounds once, into inf or into the denormals.
    k1 = np.floor(k * 0.5)
    y = _mul(_mul(_add(1.0, em1), _pow2(k1)), _pow2(k - k1))
    # NaN goes back as ``x + 0`` (the IEEE sum: that NaN, quieted), not as ``x``: in a loop that
    # writes over its input (``p[k] = exp(p[k])``), a lane that stores back what it loaded let
    # LLVM keep only the other lanes' stores, as AVX2 masked stores (``vmaskmovps``), which
    # AMD's Zen 3 runs slowly (as ``_scalar.relu_row_``). The same in tanh, both precisions.
    return y if x == x else _add(x, 0.0)


@jit
def _sigmoid_f64(x):
    # exp of a non-positive number only: 1/(1+e^-x) for x >= 0, e^x/(1+e^x) below.
    e = _exp_f64(-abs(x))
    return np.true_divide(1.0 if x >= 0 else e, 1.0 + e)


@jit
def _tanh_f64(x):
    # tanh|x| = -m / (m + 2) with m = expm1(-2|x|) in (-1, 0]: no cancellation near 0, where
    # m ~ -2|x| comes straight from r + r^2*P(r) with k = 0, so the relative error stays small.
    a = abs(x)
    a = a if a < _F64_TANH_CLAMP else _F64_TANH_CLAMP
    k, em1 = _expm1_reduced_f64(-2.0 * a)
    s = _pow2(k)
    m = _add(s * em1, s - 1.0)
    t = math.copysign(np.true_divide(m, m + 2.0), x)    # |t| = -m/(m+2); tanh(-0.0) = -0.0
    return t if x == x else _add(x, 0.0)


# log(x) = k*ln2 + log(m), x = 2^k * m, m in [sqrt(1/2), sqrt(2)); log(m) = log(1 + f) = 2*atanh(s)
# with f = m - 1 (exact) and s = f / (2 + f), |s| <= 0.1716: log(1 + f) = f - (h - s*(h + R(s^2)))
# with h = f^2/2, where R(z) = z*G(z) ~ 2z/3 + 2z^2/5 + ... (this splitting keeps f, the large
# term, exact). G near-minimax (Chebyshev fit, mpmath) on 0 <= z <= 0.02944: error 3.1e-16
# (2^-51.5) of G, ~2^-57.6 of the result.
_F64_LOG_G0 = 0.66666666666666696862
_F64_LOG_G1 = 0.3999999999989950449
_F64_LOG_G2 = 0.28571428625975484921
_F64_LOG_G3 = 0.22222211134795079855
_F64_LOG_G4 = 0.1818288912526172208
_F64_LOG_G5 = 0.15331721600556041269
_F64_LOG_G6 = 0.1461644968504340586
_F64_MIN_NORMAL = 2.2250738585072014e-308
_F64_TWO54 = 18014398509481984.0            # scales a denormal into the normal range
_F64_LOG1P_TINY = 5.551115123125783e-17      # 2^-54: log1p(y) rounds to y below it
_F64_LOG1P_BIG = 1.152921504606847e18        # 2^60: 1 + y's rounding error is beneath notice


@jit
def _log_reduced_f64(k, m, c):
    """``k*ln2 + log(m) + c`` for ``m`` in ``[sqrt(1/2), sqrt(2))`` and a small ``c`` (a
    correction from :func:`_log1p_f64`; 0 for ``log``)."""
    f = m - 1.0
    s = np.true_divide(f, 2.0 + f)
    z = s * s
    g = _F64_LOG_G6
    g = g * z + _F64_LOG_G5
    g = g * z + _F64_LOG_G4
    g = g * z + _F64_LOG_G3
    g = g * z + _F64_LOG_G2
    g = g * z + _F64_LOG_G1
    g = g * z + _F64_LOG_G0
    h = 0.5 * f * f
    # In this order, which fast-math's reassociation would undo: the small terms first, then
    # f, then k*LN2_HI (exact: LN2_HI has 32 significant bits, k at most 11).
    low = _add(_add(s * (h + z * g), k * _F64_LN2_LO), c)
    return _add(k * _F64_LN2_HI, _sub(f, _sub(h, low)))


@jit
def _log_special_f64(y, x):
    """``y`` (log of a finite positive ``x``) with the IEEE results for the other ``x``: inf
    for inf, NaN for NaN (``x``'s, as ``exp``) and for ``x < 0``, -inf for +-0."""
    y = y if x < np.inf else _add(x, 0.0)
    y = np.nan if x < 0.0 else y
    return -np.inf if x == 0.0 else y


@jit
def _log_f64(x):
    tiny = x < _F64_MIN_NORMAL                      # denormals (and x <= 0, put right last)
    k, m = _log_reduce(x * _F64_TWO54 if tiny else x)
    k = k - 54.0 if tiny else k
    return _log_special_f64(_log_reduced_f64(k, m, 0.0), x)


@jit
def _log1p_f64(y):
    # log(u) for u = 1 + y, rounded, plus c/u with c = y - (u - 1) the rounding's error (exact:
    # u - 1 is exact for u in [1/2, 2], and for y < -1/2 the sum itself is), or 1 - (u - y) for
    # y above 1. Far out the correction is beneath notice (and inf - inf would make it NaN).
    u = _add(1.0, y)
    c = _sub(y, _sub(u, 1.0)) if u < 2.0 else _sub(1.0, _sub(u, y))
    c = c if u < _F64_LOG1P_BIG else 0.0
    k, m = _log_reduce(u)                           # u >= 2^-53 when positive: never denormal
    t = _log_special_f64(_log_reduced_f64(k, m, np.true_divide(c, u)), u)
    # log1p(y) rounds to y for tiny y; this also keeps the sign of -0.0
    return y if abs(y) < _F64_LOG1P_TINY else t


# --- float32 (the same algorithm with float32 constants) ----------------------------------------

_F32_LOG2E = np.float32(1.44269504)
_F32_LN2_HI = np.float32(0.693359375)          # 0x3f318000: 9 significant bits
_F32_LN2_LO = np.float32(-2.12194440e-4)       # ln2 - LN2_HI
_F32_EXP_LO = np.float32(-104.0)               # exp is 0 below -103.97 and inf above 88.73
_F32_EXP_HI = np.float32(89.0)
# Near-minimax P(r) for (e^r - 1 - r) / r^2 on |r| <= ln2/2, relative error 3.1e-9 (2^-28.3).
_F32_P0 = np.float32(0.49999993451472624)
_F32_P1 = np.float32(0.16666520687563108)
_F32_P2 = np.float32(0.04166838740854697)
_F32_P3 = np.float32(0.00836871003530828)
_F32_P4 = np.float32(0.0013814611001066852)
_F32_TANH_CLAMP = np.float32(10.0)             # tanh is 1.0f beyond 9.01 (this one too)
_F32_TANH_FAR = np.float32(0.55)             # tanh 0.5: 1 - r loses nothing from here on
_F32_HALF = np.float32(0.5)
_F32_ZERO = np.float32(0.0)
_F32_ONE = np.float32(1.0)
_F32_TWO = np.float32(2.0)
_F32_MINUS_TWO = np.float32(-2.0)


@jit
def _expm1_reduced_f32(x):
    """``(k, e^r - 1)`` with ``x = k*ln2 + r``; ``x`` must be finite and within the clamp."""
    k = np.rint(x * _F32_LOG2E)
    r = _sub(_sub(x, k * _F32_LN2_HI), k * _F32_LN2_LO)
    p = _F32_P4
    p = p * r + _F32_P3
    p = p * r + _F32_P2
    p = p * r + _F32_P1
    p = p * r + _F32_P0
    return k, r + r * r * p


@jit
def _exp_f32(x):
    xc = x if x > _F32_EXP_LO else _F32_EXP_LO
    xc = xc if xc < _F32_EXP_HI else _F32_EXP_HI
    k, em1 = _expm1_reduced_f32(xc)
    k1 = np.floor(k * _F32_HALF)
    y = _mul(_mul(_add(_F32_ONE, em1), _pow2(k1)), _pow2(k - k1))
    return y if x == x else _add(x, _F32_ZERO)


@jit
def _sigmoid_f32(x):
    e = _exp_f32(-abs(x))
    return np.true_divide(_F32_ONE if x >= 0 else e, _F32_ONE + e)


@jit
def _tanh_f32(x):
    # As float64's near 0. Beyond |x| = 0.55 (tanh > 0.5) it takes 1 - 2q / (1 + q), q =
    # e^(-2|x|): -m / (m + 2) rounds m + 2 to the binade above 1, up to 2.5 ulps of a result
    # near 1, and the gradient 1 - tanh^2 of a saturated unit amplified that (median relative
    # error 2.5e-3 at |x| 4-8; now 9.0e-4, a correctly rounded tanh's). Here the rounding is
    # that of the small term 2q / (1 + q): 1.53 ulps at most on 0.55-1, 1.09 beyond (measured,
    # as the table in the module docstring), and exactly 1 from 9.01 on. Costs ~30 % of the
    # function's time (both forms run, branch-free); float64 keeps the one form, whose 2.5
    # ulps are 1e-16 and no gradient's concern.
    a = abs(x)
    a = a if a < _F32_TANH_CLAMP else _F32_TANH_CLAMP
    k, em1 = _expm1_reduced_f32(_F32_MINUS_TWO * a)
    s = _pow2(k)
    m = _add(s * em1, s - _F32_ONE)                # e^(-2|x|) - 1
    q = _add(s * em1, s)                           # e^(-2|x|), not m + 1: accurate when small
    far = a > _F32_TANH_FAR
    r = np.true_divide(q if far else -m, m + _F32_TWO)
    t = math.copysign(_F32_ONE - _F32_TWO * r if far else r, x)     # 2r: exact
    return t if x == x else _add(x, _F32_ZERO)


# log as float64's, with G of degree 2: error 1.9e-7 (2^-22.3) of G, ~2^-28.4 of the result.
_F32_LOG_G0 = np.float32(0.66666685039575855022)
_F32_LOG_G1 = np.float32(0.39988780566021981899)
_F32_LOG_G2 = np.float32(0.29579949391972784709)
_F32_MIN_NORMAL = np.float32(1.17549435e-38)
_F32_TWO25 = np.float32(33554432.0)
_F32_TWENTY_FIVE = np.float32(25.0)
_F32_LOG1P_TINY = np.float32(2.98023224e-08)    # 2^-25
_F32_LOG1P_BIG = np.float32(1.07374182e+09)     # 2^30
_F32_INF = np.float32(np.inf)
_F32_NAN = np.float32(np.nan)


@jit
def _log_reduced_f32(k, m, c):
    """As :func:`_log_reduced_f64`."""
    f = m - _F32_ONE
    s = np.true_divide(f, _F32_TWO + f)
    z = s * s
    g = _F32_LOG_G2
    g = g * z + _F32_LOG_G1
    g = g * z + _F32_LOG_G0
    h = _F32_HALF * f * f
    low = _add(_add(s * (h + z * g), k * _F32_LN2_LO), c)
    return _add(k * _F32_LN2_HI, _sub(f, _sub(h, low)))


@jit
def _log_special_f32(y, x):
    """As :func:`_log_special_f64`."""
    y = y if x < _F32_INF else _add(x, _F32_ZERO)
    y = _F32_NAN if x < _F32_ZERO else y
    return -_F32_INF if x == _F32_ZERO else y


@jit
def _log_f32(x):
    tiny = x < _F32_MIN_NORMAL
    k, m = _log_reduce(x * _F32_TWO25 if tiny else x)
    k = k - _F32_TWENTY_FIVE if tiny else k
    return _log_special_f32(_log_reduced_f32(k, m, _F32_ZERO), x)


@jit
def _log1p_f32(y):
    u = _add(_F32_ONE, y)
    c = _sub(y, _sub(u, _F32_ONE)) if u < _F32_TWO else _sub(_F32_ONE, _sub(u, y))
    c = c if u < _F32_LOG1P_BIG else _F32_ZERO
    k, m = _log_reduce(u)
    t = _log_special_f32(_log_reduced_f32(k, m, np.true_divide(c, u)), u)
    return y if abs(y) < _F32_LOG1P_TINY else t


# --- dtype dispatch ----------------------------------------------------------------------------

def exp(x):
    """``e**x`` of a float32 / float64 scalar, in its own precision (vectorisable)."""
    return _exp_f32(x) if isinstance(x, np.float32) else _exp_f64(x)


def sigmoid(x):
    """``1 / (1 + e**-x)``, never overflowing; exactly 0 / 1 far out (vectorisable)."""
    return _sigmoid_f32(x) if isinstance(x, np.float32) else _sigmoid_f64(x)


def tanh(x):
    """``tanh(x)``, accurate relative to ``x`` near 0 (vectorisable)."""
    return _tanh_f32(x) if isinstance(x, np.float32) else _tanh_f64(x)


def log(x):
    """Natural logarithm; -inf at +-0, NaN below 0 (vectorisable)."""
    return _log_f32(x) if isinstance(x, np.float32) else _log_f64(x)


def log1p(x):
    """``log(1 + x)``, accurate relative to ``x`` near 0 (vectorisable)."""
    return _log1p_f32(x) if isinstance(x, np.float32) else _log1p_f64(x)


def _by_dtype(f32_impl, f64_impl):
    """Compile-time choice between the float32 and float64 implementation."""
    def choose(x):
        if x == types.float32:
            return lambda x: f32_impl(x)
        if x == types.float64:
            return lambda x: f64_impl(x)
        return None
    return choose


overload(exp)(_by_dtype(_exp_f32, _exp_f64))
overload(sigmoid)(_by_dtype(_sigmoid_f32, _sigmoid_f64))
overload(tanh)(_by_dtype(_tanh_f32, _tanh_f64))
overload(log)(_by_dtype(_log_f32, _log_f64))
overload(log1p)(_by_dtype(_log1p_f32, _log1p_f64))
