"""The float64 step of AdaGrad, RMSprop and Adam, ``p -= k*u / (sqrt(s)*c + eps)``, with the
square root on the FMA units (an LLVM vector intrinsic).

Why: on Intel cores a float64 square root and a division share one divider, which takes
~4.4 cycles per value for both (measured: AdaGrad over the notebooks' 784 x 400 weights,
313 600 values, 552 us on one thread against 296 us for the same pass without them). That
made AdaGrad about a third of the notebooks' MLP step at batch 20. Here the root comes from
the AVX-512 estimate ``vrsqrt14pd`` (14 bits) and two Newton steps on the FMA units, then one
correction step, ``s += (x - s*s) * y/2``, which rounds it as ``sqrt`` does; only the
division stays on the divider. AdaGrad over the same values (``optimizers._adagrad64``): one
thread 379 against 538-552 us, two threads 224 against 279 us (medians of seven interleaved
rounds).

Exactness: the steps match the plain ``k*u / (sqrt(s)*c + eps)`` bit for bit on every value
tested (``tests/test_root_step.py``: random values over the whole float64 range, the edges,
and each optimizer against its plain loop). A vector with a value outside ``[2**-1000,
2**1000]`` (besides 0) takes the divider's ``sqrt`` throughout: inf, NaN and negatives need it
(the estimate gives NaN for inf), and subnormals and the extremes are kept out as a precaution,
where a Newton step's products come near underflow or overflow.

float32, hosts without AVX-512 and Numba told to compile without it (``NUMBA_CPU_NAME=generic``,
``NUMBA_CPU_FEATURES``, ``NUMBA_ENABLE_AVX=0``) get the plain ``sqrt`` (the same vector code): a
float32 root costs the divider less than half as much, and the estimate gained nothing there
(AdaGrad float32 over 313 600 values: 77.6 against 77.8 us).

Each optimizer's step is one intrinsic that updates the state too (``adagrad_step``,
``rmsprop_step``, ``adam_step``): updated by a loop of its own just before, the state was stored
in 256-bit halves (LLVM's preferred width here) and read back at once as one 512-bit masked load,
which the core cannot forward from the pending stores; it waits for them. Measured over 313 600
float64 values, two processes each: AdaGrad one thread 1.08 -> 0.94-0.97 ns per value, two
threads 0.54-0.56 -> 0.48-0.49; Adam two threads 0.76-0.84 -> 0.66-0.71, one thread 1.50-1.63 ->
1.37-1.44; RMSprop two threads 0.60-0.63 -> 0.57. (Adam's four arrays of 2.5 MB each do not fit
in L2: what is left is mostly its traffic.)

Numba's on-disk cache keys a kernel on its own source file only: after editing this module,
clear ``__pycache__`` (or ``NUMBA_CACHE_DIR``) or the cached kernels keep the old code.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._microkernels import VECTOR_BYTES, _Vectors, _at, _data

#: Range of ``s`` (besides 0) where the estimate and its Newton steps stay exact: no
#: subnormal residual, no overflow of ``y/2`` or ``s*y``.
_SAFE_LOW, _SAFE_HIGH = 2.0 ** -1000, 2.0 ** 1000


#: Whether the float64 root comes from the estimate (else from the divider's ``sqrt``): where
#: vectors are 64 bytes, which is where Numba compiles for AVX-512 (``_microkernels``). Tried on
#: an AVX2 host (AMD EPYC Zen 3) with ``rsqrtps`` (12 bits, through float32) and three Newton
#: steps: bit for bit right (``tests/test_root_step.py``), but AdaGrad over 313 600 float64
#: values took 1450-1610 us on one thread against 350-370 us for the plain loop, and 690-830 us
#: with plain loads and stores in place of AVX2's slow masked ones. There the divider's root
#: costs ~0.3 ns per value more than the same pass without it.
ESTIMATE = VECTOR_BYTES == 64


def _sqrt_by_estimate(builder, vec, x, exact_sqrt):
    """``sqrt(x)`` of a float64 vector from ``vrsqrt14pd``, two Newton steps and one
    correction; lanes outside the safe range (module docstring) from ``exact_sqrt``, which is
    only computed when one such lane is present."""
    module = builder.module
    mask_type = ir.IntType(vec.lanes)
    estimate = cgutils.get_or_insert_function(
        module, ir.FunctionType(vec.type, [vec.type, vec.type, mask_type]),
        "llvm.x86.avx512.rsqrt14.pd.512")
    one, half = (ir.Constant(vec.type, [v] * vec.lanes) for v in (1.0, 0.5))
    y = builder.call(estimate, [x, vec.zero, ir.Constant(mask_type, -1)])
    for _ in range(2):                        # 14 -> 28 -> 56 bits: y *= 1 + (1 - x*y*y)/2
        error = builder.call(vec.fma, [builder.fneg(builder.fmul(x, y)), y, one])
        y = builder.call(vec.fma, [builder.fmul(half, y), error, y])
    root = builder.fmul(x, y)
    residual = builder.call(vec.fma, [builder.fneg(root), root, x])    # exact: one FMA
    root = builder.call(vec.fma, [residual, builder.fmul(half, y), root])
    zero = builder.fcmp_ordered("==", x, vec.zero)
    root = builder.select(zero, x, root)      # x = +-0: y is inf, and sqrt(+-0) is +-0
    low, high = (ir.Constant(vec.type, [v] * vec.lanes) for v in (_SAFE_LOW, _SAFE_HIGH))
    safe = builder.and_(builder.fcmp_ordered(">=", x, low), builder.fcmp_ordered("<=", x, high))
    unsafe = builder.bitcast(builder.not_(builder.or_(safe, zero)), mask_type)
    fast_block = builder.block
    with builder.if_then(builder.icmp_unsigned("!=", unsafe, ir.Constant(mask_type, 0)),
                         likely=False):
        exact_block = builder.block
        exact = exact_sqrt(x)
    result = builder.phi(vec.type)
    result.add_incoming(root, fast_block)
    result.add_incoming(exact, exact_block)
    return result


def _vectors_at(context, builder, signature, arrays, start, valid):
    """``(vec, mask, pointers, loaded)``: a vector of the arrays' dtype at ``start`` from each
    of ``arrays`` (the intrinsic's first arguments), the first ``valid`` lanes (masked)."""
    vec = _Vectors(builder, signature.args[0].dtype)
    mask = vec.lanes_below(valid)
    pointers = [_at(builder, _data(context, builder, ty, arr), start)
                for ty, arr in zip(signature.args[:len(arrays)], arrays)]
    return vec, mask, pointers, [vec.load_masked(ptr, mask) for ptr in pointers]


def _step(builder, vec, p, u, s, k, c, eps):
    """``p - (k * u) / (sqrt(s) * c + eps)`` of vectors, the root by estimate for float64 where
    :data:`ESTIMATE` (module docstring), ``sqrt(s) * c + eps`` one fused multiply-add."""
    bits = 64 if isinstance(vec.scalar, ir.DoubleType) else 32
    sqrt = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vec.type, [vec.type]), f"llvm.sqrt.v{vec.lanes}f{bits}")

    def exact_sqrt(x):
        return builder.call(sqrt, [x])
    root = _sqrt_by_estimate(builder, vec, s, exact_sqrt) if bits == 64 and ESTIMATE \
        else exact_sqrt(s)
    denominator = builder.call(vec.fma, [root, vec.splat(c), vec.splat(eps)])
    return builder.fsub(p, builder.fdiv(builder.fmul(vec.splat(k), u), denominator))


def _typed_alike(arrays, scalars):
    """Whether the arrays are 1-D, C-contiguous and of one dtype (the vectors read them so),
    and the scalars of that dtype (they are splatted into its vectors)."""
    dtype = arrays[0].dtype if isinstance(arrays[0], types.Array) else None
    return (all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"
                and a.dtype == dtype for a in arrays)
            and all(x == dtype for x in scalars))


@intrinsic
def adagrad_step(typingctx, p, g, h, start, valid, lr, eps):
    """AdaGrad on one vector: for ``i`` in ``start .. start + valid - 1`` (at most
    ``_microkernels.lanes(dtype)`` values; fewer are masked), ``h[i] += g[i] * g[i]`` (one fused
    multiply-add, as a loop compiles it), then ``p[i] -= (lr * g[i]) / (sqrt(h[i]) + eps)``.

    ``p``, ``g``, ``h``: 1-D C-contiguous arrays of one float dtype; ``lr``, ``eps``: scalars of
    that dtype. The caller keeps ``start + min(valid, lanes)`` within the arrays. (The state is
    updated in the same vector as the step: module docstring.)"""
    if not _typed_alike((p, g, h), (lr, eps)):
        return None           # a typing error
    sig = types.void(p, g, h, start, valid, lr, eps)

    def codegen(context, builder, signature, args):
        p_, g_, h_, start_, valid_, lr_, eps_ = args
        vec, mask, pointers, (pv, gv, hv) = _vectors_at(context, builder, signature,
                                                        (p_, g_, h_), start_, valid_)
        hv = builder.call(vec.fma, [gv, gv, hv])
        vec.store_masked(hv, pointers[2], mask)
        one = ir.Constant(vec.scalar, 1.0)
        vec.store_masked(_step(builder, vec, pv, gv, hv, lr_, one, eps_), pointers[0], mask)
        return context.get_dummy_value()
    return sig, codegen


def _flushed(builder, vec, x, tiny):
    """``x``, with 0 in the lanes where ``|x| < tiny`` (the optimizers' flush of subnormal
    state; NaN kept, as the loops' ``0.0 if abs(x) < tiny else x``)."""
    bits = 64 if isinstance(vec.scalar, ir.DoubleType) else 32
    fabs = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vec.type, [vec.type]), f"llvm.fabs.v{vec.lanes}f{bits}")
    small = builder.fcmp_ordered("<", builder.call(fabs, [x]), vec.splat(tiny))
    return builder.select(small, vec.zero, x)


def _decayed(builder, vec, rate, state, share, g, tiny, squared=False):
    """``rate*state + share*g`` (``share*g*g`` where ``squared``: scaled before it squares, so
    it overflows where NumPy's does), one fused multiply-add after the product, as the loops
    compile it; then 0 in the lanes below ``tiny`` (:func:`_flushed`)."""
    term = builder.fmul(vec.splat(share), g)
    if squared:
        term = builder.fmul(term, g)
    return _flushed(builder, vec, builder.call(vec.fma, [vec.splat(rate), state, term]), tiny)


@intrinsic
def rmsprop_step(typingctx, p, g, h, start, valid, lr, rho, one_minus_rho, eps, tiny):
    """RMSprop on one vector (as :func:`adagrad_step`): ``h[i] = rho*h[i] + (1 - rho)*g[i]**2``
    (0 below ``tiny``), then ``p[i] -= (lr * g[i]) / (sqrt(h[i]) + eps)``. Scalars of the
    arrays' dtype; ``one_minus_rho`` computed by the caller."""
    if not _typed_alike((p, g, h), (lr, rho, one_minus_rho, eps, tiny)):
        return None           # a typing error
    sig = types.void(p, g, h, start, valid, lr, rho, one_minus_rho, eps, tiny)

    def codegen(context, builder, signature, args):
        p_, g_, h_, start_, valid_, lr_, rho_, one_minus_rho_, eps_, tiny_ = args
        vec, mask, pointers, (pv, gv, hv) = _vectors_at(context, builder, signature,
                                                        (p_, g_, h_), start_, valid_)
        hv = _decayed(builder, vec, rho_, hv, one_minus_rho_, gv, tiny_, squared=True)
        vec.store_masked(hv, pointers[2], mask)
        one = ir.Constant(vec.scalar, 1.0)
        vec.store_masked(_step(builder, vec, pv, gv, hv, lr_, one, eps_), pointers[0], mask)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def adam_step(typingctx, p, g, m, v, start, valid, beta1, one_minus_beta1, beta2,
              one_minus_beta2, step_size, inv_sqrt_bc2, eps, tiny):
    """Adam on one vector (as :func:`adagrad_step`): ``m[i] = beta1*m[i] + (1 - beta1)*g[i]``,
    ``v[i] = beta2*v[i] + (1 - beta2)*g[i]**2`` (each 0 below ``tiny``), then ``p[i] -=
    (step_size * m[i]) / (sqrt(v[i]) * inv_sqrt_bc2 + eps)``. Scalars of the arrays' dtype."""
    if not _typed_alike((p, g, m, v), (beta1, one_minus_beta1, beta2, one_minus_beta2,
                                       step_size, inv_sqrt_bc2, eps, tiny)):
        return None           # a typing error
    sig = types.void(p, g, m, v, start, valid, beta1, one_minus_beta1, beta2, one_minus_beta2,
                     step_size, inv_sqrt_bc2, eps, tiny)

    def codegen(context, builder, signature, args):
        (p_, g_, m_, v_, start_, valid_, beta1_, one_minus_beta1_, beta2_, one_minus_beta2_,
         step_size_, inv_sqrt_bc2_, eps_, tiny_) = args
        vec, mask, pointers, (pv, gv, mv, vv) = _vectors_at(context, builder, signature,
                                                            (p_, g_, m_, v_), start_, valid_)
        mv = _decayed(builder, vec, beta1_, mv, one_minus_beta1_, gv, tiny_)
        vv = _decayed(builder, vec, beta2_, vv, one_minus_beta2_, gv, tiny_, squared=True)
        vec.store_masked(mv, pointers[2], mask)
        vec.store_masked(vv, pointers[3], mask)
        vec.store_masked(_step(builder, vec, pv, mv, vv, step_size_, inv_sqrt_bc2_, eps_),
                         pointers[0], mask)
        return context.get_dummy_value()
    return sig, codegen
