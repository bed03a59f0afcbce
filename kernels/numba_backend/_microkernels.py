"""Register-blocked micro-kernels for conv1d and dense, written as LLVM vector IR (Numba
intrinsics), and the vector data movement around them.

Why IR: a convolution's multiply-adds run at the machine's FMA rate only if a block of outputs
stays in vector registers while the whole reduction streams past it (the GEMM micro-kernel
idea). LLVM does not keep a Numba loop's accumulator array in registers (measured 3 GFLOP/s:
it reloads and re-stores the block around every multiply-add, behind runtime alias checks), so
the block is spelled out here as vector values. The loops around the block stay in Numba.

Three block kernels, each a factory of intrinsics for a block shape (compile-time constants):

:func:`taps_kernel` (forward, and the input gradient)
    ``out[i, j] = bias[i] + sum_t w[row_t, i] * x[off_t + j]`` for ``rows`` output rows ``i``
    and ``cols`` consecutive output positions ``j``: a block of ``MR`` rows by ``NV`` vectors,
    ``MR * NV`` accumulators. Each tap ``t`` of a table ``(off_t, row_t)`` is one input row
    segment (a channel at a kernel offset, in a phase-split padded input, see ``conv1d``) and
    one weight row. Per tap: ``NV`` vector loads, ``MR`` broadcast weights, ``MR * NV`` FMAs.
:func:`outer_kernel` (conv1d's weight gradient; all three products of ``dense_blocked``)
    ``out[i, j] (+)= sum_{n, l} a[n, off_i + l] * b[n, l, j]``: the same block of ``MR`` taps
    by ``NV`` vectors of output channels, reduced over the batch and the positions with ``b``
    the transposed gradient (channels contiguous), so no lane ever needs adding across. Per
    step: ``NV`` vector loads, ``MR`` broadcasts, ``MR * NV`` FMAs. (A first version reduced
    along the positions, vectors of ``g`` rows against ``x`` rows, and added each vector's lanes
    at the end: with 28-value rows, the lane sums and the masked tails held it to ~50 GFLOP/s.)
:func:`inner_kernel` (``dense_blocked``'s ``dz @ W.T`` at small batches)
    ``out[i, m] = sum_l a[i, l] * b[m, l]``: ``RA`` rows of ``a`` by ``RB`` rows of ``b``, both
    read along their rows, ``RA * RB`` accumulators whose lanes are added once at the end. Per
    step: ``RA + RB`` vector loads, ``RA * RB`` FMAs. It needs no operand transposed, and pays
    off where rows are long (the lane sums come once per row pair) and the batch small (the
    outer kernel would first transpose all of ``W`` for a few rows of output).

Measured (prototype, float32, one thread, batch 128, C28->32 L28 K3 forward): 210 GFLOP/s
against 110-125 GFLOP/s for OpenBLAS's sgemm on this machine's GEMM shapes and 107 GFLOP/s for
PyTorch's oneDNN on one thread.

Vectors are :data:`VECTOR_BYTES` wide: 64 bytes where Numba compiles for AVX-512, else 32. Lanes
and rows past the valid counts are computed but never stored (masked stores), so the caller
only has to keep every load inside its buffers.

Four more intrinsics move data where Numba loops stayed scalar: :func:`split_pairs` (a row's
stride-2 phases), :func:`shift_row` (a row into a zero-padded one), :func:`transpose_block` and
:func:`transpose_whole_block`.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import numba_compiles_avx512

#: Bytes per vector register: 64 where Numba compiles for AVX-512 (32 registers), else 32 (AVX2:
#: 16 registers; the block shapes below then spill some accumulators, which costs speed, not
#: correctness). What Numba compiles for, not what the host has: on an AVX-512 host told
#: ``NUMBA_CPU_NAME=generic`` (portable caches), 64-byte blocks compiled for plain x86-64 made
#: ``dense_blocked`` and ``conv1d_blocked`` take their products 40-80x slower than on AVX-512,
#: 5-25x slower than the NumPy backend (an audit's finding); at 32 they go to BLAS and im2col.
VECTOR_BYTES = 64 if numba_compiles_avx512() else 32

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def lanes(dtype):
    """Values per vector for a NumPy dtype."""
    return VECTOR_BYTES // dtype.itemsize


class _Vectors:
    """IR helpers for one element type: splats, lane masks, masked loads and stores."""

    def __init__(self, builder, numba_type):
        self.builder = builder
        self.scalar = ir.FloatType() if numba_type == types.float32 else ir.DoubleType()
        self.lanes = VECTOR_BYTES // (4 if numba_type == types.float32 else 8)
        self.type = ir.VectorType(self.scalar, self.lanes)
        self.mask_type = ir.VectorType(ir.IntType(1), self.lanes)
        suffix = f"v{self.lanes}f{32 if numba_type == types.float32 else 64}.p0"
        module = builder.module
        self.fma = cgutils.get_or_insert_function(
            module, ir.FunctionType(self.type, [self.type] * 3), f"llvm.fma.{suffix[:-3]}")
        self.masked_store = cgutils.get_or_insert_function(
            module, ir.FunctionType(ir.VoidType(), [self.type, ir.PointerType(), _I32,
                                                    self.mask_type]),
            f"llvm.masked.store.{suffix}")
        self.masked_load = cgutils.get_or_insert_function(
            module, ir.FunctionType(self.type, [ir.PointerType(), _I32, self.mask_type,
                                                self.type]),
            f"llvm.masked.load.{suffix}")
        self.zero = ir.Constant(self.type, [0.0] * self.lanes)
        self.align = 4 if numba_type == types.float32 else 8       # an element's alignment

    def splat(self, value, vector_type=None):
        """A vector of ``value`` (a scalar of the vector's element type) in every lane; the
        vector is of ``vector_type``, by default this float vector type."""
        vector_type = vector_type or self.type
        undefined = ir.Constant(vector_type, ir.Undefined)
        one = self.builder.insert_element(undefined, value, ir.Constant(_I32, 0))
        return self.builder.shuffle_vector(one, undefined, ir.Constant(
            ir.VectorType(_I32, vector_type.count), [0] * vector_type.count))

    def masks(self, valid, count):
        """``count`` lane masks: lanes ``v*lanes + (0..lanes-1) < valid`` for vector ``v``."""
        return [self.lanes_below(self.builder.sub(valid, ir.Constant(_I64, v * self.lanes)))
                for v in range(count)]

    def lanes_below(self, valid):
        """The lane mask ``(0..lanes-1) < valid`` (``valid`` an i64 value, may be negative)."""
        ivec = ir.VectorType(_I32, self.lanes)
        b = self.builder
        clamped = b.select(b.icmp_signed("<", valid, ir.Constant(_I64, self.lanes)), valid,
                           ir.Constant(_I64, self.lanes))
        bound = self.splat(b.trunc(clamped, _I32), ivec)
        return b.icmp_signed("<", ir.Constant(ivec, list(range(self.lanes))), bound)

    def load(self, pointer):
        return self.builder.load(pointer, typ=self.type, align=self.align)

    def load_masked(self, pointer, mask):
        return self.builder.call(self.masked_load, [pointer, ir.Constant(_I32, self.align), mask,
                                                    self.zero])

    def store_masked(self, value, pointer, mask):
        self.builder.call(self.masked_store, [value, pointer, ir.Constant(_I32, self.align), mask])


def _data(context, builder, array_type, array):
    """The data pointer of a Numba array value."""
    return context.make_array(array_type)(context, builder, array).data


def _at(builder, pointer, *offsets):
    """``pointer + sum(offsets)`` elements (offsets are i64 values or ints)."""
    total = offsets[0] if not isinstance(offsets[0], int) else ir.Constant(_I64, offsets[0])
    for off in offsets[1:]:
        total = builder.add(total, off if not isinstance(off, int) else ir.Constant(_I64, off))
    return builder.gep(pointer, [total])


def _accumulate(builder, vec, acc, scalars, vectors):
    """``acc[i][v] += scalars[i] * vectors[v]`` (each scalar broadcast): one step of a block."""
    for i, scalar in enumerate(scalars):
        broadcast = vec.splat(scalar)
        for v, vector in enumerate(vectors):
            builder.store(builder.call(vec.fma, [broadcast, vector, builder.load(acc[i][v])]),
                          acc[i][v])


def taps_kernel(MR, NV):
    """An intrinsic ``kernel(x, x0, xv, taps, t0, T, w, w0, ws, out, o0, os, ov, rows, cols,
    cv, bias, b0, use_bias)`` computing one block of ``MR`` rows by ``NV`` vectors (see the
    module docstring).

    ``x``, ``w``, ``out``, ``bias``: arrays of one float dtype, addressed flat from offsets
    ``x0, w0, o0, b0``; ``taps``: int64 array, tap ``t`` (``t0 <= t < t0 + T``) at
    ``taps[2t]`` (offset into ``x`` from ``x0``) and ``taps[2t + 1]`` (weight row); the weight of
    output row ``i`` in row ``r`` is ``w[w0 + r*ws + i]`` for every ``i < MR`` (pad ``w`` so all
    are in bounds). Vector ``v`` reads ``x`` from ``v*xv`` further on and writes lanes
    ``j < cols - v*cv`` of ``out[o0 + v*ov + i*os + j]`` for rows ``i < rows``.

    With ``xv = ov = cv = lanes`` the vectors are one row's consecutive positions; with ``xv``
    and ``ov`` an item's size and ``cv = 0``, vector ``v`` is item ``v``'s row, which keeps the
    block full where rows are shorter than ``NV`` vectors.
    """
    @intrinsic
    def kernel(typingctx, x, x0, xv, taps, t0, T, w, w0, ws, out, o0, os, ov, rows, cols, cv,
               bias, b0, use_bias):
        sig = types.void(x, x0, xv, taps, t0, T, w, w0, ws, out, o0, os, ov, rows, cols, cv,
                         bias, b0, use_bias)

        def codegen(context, builder, signature, args):
            (x, x0, xv, taps, t0, T, w, w0, ws, out, o0, os, ov, rows, cols, cv, bias, b0,
             use_bias) = args
            vec = _Vectors(builder, signature.args[0].dtype)
            tys = signature.args
            xp = _at(builder, _data(context, builder, tys[0], x), x0)
            tp = _data(context, builder, tys[3], taps)
            wp = _at(builder, _data(context, builder, tys[6], w), w0)
            op = _at(builder, _data(context, builder, tys[9], out), o0)
            bp = _at(builder, _data(context, builder, tys[16], bias), b0)
            x_steps = [builder.mul(xv, ir.Constant(_I64, v)) for v in range(NV)]
            acc = [[cgutils.alloca_once_value(builder, vec.zero) for _ in range(NV)]
                   for _ in range(MR)]
            with cgutils.for_range(builder, T) as loop:
                t = builder.add(t0, loop.index)
                two_t = builder.mul(t, ir.Constant(_I64, 2))
                off = builder.load(builder.gep(tp, [two_t]))
                row = builder.load(builder.gep(tp, [builder.add(two_t, ir.Constant(_I64, 1))]))
                xs = [vec.load(_at(builder, xp, off, step)) for step in x_steps]
                wrow = _at(builder, wp, builder.mul(row, ws))
                _accumulate(builder, vec, acc, [builder.load(_at(builder, wrow, i))
                                                for i in range(MR)], xs)
            masks = [vec.lanes_below(builder.sub(cols, builder.mul(cv, ir.Constant(_I64, v))))
                     for v in range(NV)]
            has_bias = builder.icmp_signed("!=", use_bias, ir.Constant(use_bias.type, 0))
            for i in range(MR):
                with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, i), rows)):
                    bi = builder.select(has_bias, builder.load(_at(builder, bp, i)),
                                        ir.Constant(vec.scalar, 0.0))
                    orow = _at(builder, op, builder.mul(ir.Constant(_I64, i), os))
                    for v in range(NV):
                        value = builder.fadd(builder.load(acc[i][v]), vec.splat(bi))
                        where = _at(builder, orow, builder.mul(ov, ir.Constant(_I64, v)))
                        vec.store_masked(value, where, masks[v])
            return context.get_dummy_value()
        return sig, codegen
    return kernel


def outer_kernel(MR, NV, masked=False):
    """An intrinsic ``kernel(a, a0, an, taps, t0, b, b0, bn, bs, items, length, out, o0, os,
    rows, cols, accumulate, ahead)``: ``out[i, j] (+)= sum_{n, l} a[n, off_i + l] * b[n, l,
    j]``, one block of ``MR`` taps by ``NV`` vectors (see the module docstring).

    For ``n < items``, ``l < length``: reads ``a[a0 + n*an + taps[2(t0 + i)] + l]`` and the
    ``NV`` vectors from ``b[b0 + n*bn + l*bs]`` (all in bounds; with ``masked``, only their
    lanes ``j < cols``, so ``b`` needs no padding). Writes ``out[o0 + i*os + j]`` for ``i <
    rows``, ``j < cols``, added to (``accumulate``) or overwritten.

    ``ahead``: with a nonzero value, each step also prefetches ``b``'s vectors ``ahead`` steps
    further on (``l + ahead``; a prefetch never faults, so past the end is harmless). For a
    ``b`` read down a column strip of a wide matrix, one row's two lines per step 3 KB apart,
    which the hardware prefetchers follow poorly (``dense_blocked``); 0 emits nothing once
    inlined with the constant.
    """
    @intrinsic
    def kernel(typingctx, a, a0, an, taps, t0, b, b0, bn, bs, items, length, out, o0, os, rows,
               cols, accumulate, ahead):
        sig = types.void(a, a0, an, taps, t0, b, b0, bn, bs, items, length, out, o0, os, rows,
                         cols, accumulate, ahead)

        def codegen(context, builder, signature, args):
            (a, a0, an, taps, t0, b, b0, bn, bs, items, length, out, o0, os, rows, cols,
             accumulate, ahead) = args
            prefetch = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [ir.PointerType(), _I32, _I32,
                                                                _I32]), "llvm.prefetch.p0")
            fetch_ahead = builder.icmp_signed("!=", ahead, ir.Constant(ahead.type, 0))
            read, keep, data = ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)
            vec = _Vectors(builder, signature.args[0].dtype)
            tys = signature.args
            ap = _at(builder, _data(context, builder, tys[0], a), a0)
            tp = _data(context, builder, tys[3], taps)
            bp = _at(builder, _data(context, builder, tys[5], b), b0)
            op = _at(builder, _data(context, builder, tys[11], out), o0)
            offs = [builder.load(builder.gep(tp, [builder.mul(builder.add(t0, ir.Constant(
                _I64, i)), ir.Constant(_I64, 2))])) for i in range(MR)]
            acc = [[cgutils.alloca_once_value(builder, vec.zero) for _ in range(NV)]
                   for _ in range(MR)]
            b_masks = vec.masks(cols, NV) if masked else None
            with cgutils.for_range(builder, items) as item:
                ai = _at(builder, ap, builder.mul(item.index, an))
                bi = _at(builder, bp, builder.mul(item.index, bn))
                with cgutils.for_range(builder, length) as step:
                    brow = _at(builder, bi, builder.mul(step.index, bs))
                    with builder.if_then(fetch_ahead):
                        later = _at(builder, brow, builder.mul(bs, ahead))
                        for v in range(NV):
                            builder.call(prefetch, [_at(builder, later, v * vec.lanes), read,
                                                    keep, data])
                    bv = [vec.load_masked(_at(builder, brow, v * vec.lanes), b_masks[v])
                          if masked else vec.load(_at(builder, brow, v * vec.lanes))
                          for v in range(NV)]
                    _accumulate(builder, vec, acc, [builder.load(_at(builder, ai, offs[i],
                                                                     step.index))
                                                    for i in range(MR)], bv)
            masks = vec.masks(cols, NV)
            add = builder.icmp_signed("!=", accumulate, ir.Constant(accumulate.type, 0))
            for i in range(MR):
                with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, i), rows)):
                    orow = _at(builder, op, builder.mul(ir.Constant(_I64, i), os))
                    for v in range(NV):
                        where = _at(builder, orow, v * vec.lanes)
                        old = vec.load_masked(where, masks[v])
                        total = builder.load(acc[i][v])
                        value = builder.select(add, builder.fadd(total, old), total)
                        vec.store_masked(value, where, masks[v])
            return context.get_dummy_value()
        return sig, codegen
    return kernel


def inner_kernel(RA, RB):
    """An intrinsic ``kernel(a, a0, an, arows, b, b0, bn, brows, length, out, o0, oa, ob)``:
    ``out[o0 + i*oa + m*ob] = sum_{l < length} a[a0 + i*an + l] * b[b0 + m*bn + l]`` for
    ``i < arows <= RA`` and ``m < brows <= RB`` (see the module docstring).

    Rows ``i >= arows`` (``m >= brows``) read row ``arows - 1`` (``brows - 1``) again and are
    never stored, so a short block needs no padding; the last ``length % lanes`` values are
    read masked. Each output is its lanes' partial sums added pairwise (halves, then quarters,
    ...), in a fixed order, so a value does not depend on how the caller splits the work.
    ``length``, ``arows`` and ``brows`` are at least 1.
    """
    @intrinsic
    def kernel(typingctx, a, a0, an, arows, b, b0, bn, brows, length, out, o0, oa, ob):
        sig = types.void(a, a0, an, arows, b, b0, bn, brows, length, out, o0, oa, ob)

        def codegen(context, builder, signature, args):
            a, a0, an, arows, b, b0, bn, brows, length, out, o0, oa, ob = args
            tys = signature.args
            vec = _Vectors(builder, tys[0].dtype)
            V = vec.lanes

            def rows(array_type, array, start, stride, valid, count):
                base = _at(builder, _data(context, builder, array_type, array), start)
                last = builder.sub(valid, ir.Constant(_I64, 1))
                pointers = []
                for i in range(count):
                    inside = builder.icmp_signed("<", ir.Constant(_I64, i), valid)
                    row = builder.select(inside, ir.Constant(_I64, i), last)
                    pointers.append(_at(builder, base, builder.mul(row, stride)))
                return pointers
            a_rows = rows(tys[0], a, a0, an, arows, RA)
            b_rows = rows(tys[4], b, b0, bn, brows, RB)
            op = _at(builder, _data(context, builder, tys[9], out), o0)
            acc = [[cgutils.alloca_once_value(builder, vec.zero) for _ in range(RB)]
                   for _ in range(RA)]

            def step(offset, mask):
                def load(row):
                    at = _at(builder, row, offset)
                    return vec.load(at) if mask is None else vec.load_masked(at, mask)
                av = [load(row) for row in a_rows]
                for m, row in enumerate(b_rows):        # one b vector live at a time
                    bv = load(row)
                    for i in range(RA):
                        builder.store(builder.call(vec.fma, [av[i], bv, builder.load(acc[i][m])]),
                                      acc[i][m])
            full = builder.sdiv(length, ir.Constant(_I64, V))
            with cgutils.for_range(builder, full) as loop:
                step(builder.mul(loop.index, ir.Constant(_I64, V)), None)
            done = builder.mul(full, ir.Constant(_I64, V))
            with builder.if_then(builder.icmp_signed("<", done, length)):
                step(done, vec.lanes_below(builder.sub(length, done)))
            for i in range(RA):
                with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, i), arows)):
                    for m in range(RB):
                        with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, m),
                                                                 brows)):
                            total = _lane_sum(builder, vec, builder.load(acc[i][m]))
                            builder.store(total, _at(builder, op, builder.mul(
                                ir.Constant(_I64, i), oa), builder.mul(ir.Constant(_I64, m), ob)))
            return context.get_dummy_value()
        return sig, codegen
    return kernel


def _lane_sum(builder, vec, value):
    """The sum of ``value``'s lanes: the upper half added to the lower, then again, to one."""
    V = vec.lanes
    width = V
    while width > 1:
        width //= 2
        upper = builder.shuffle_vector(value, value, ir.Constant(
            ir.VectorType(_I32, V), [j + width if j < width else j for j in range(V)]))
        value = builder.fadd(value, upper)
    return builder.extract_element(value, ir.Constant(_I32, 0))


@intrinsic
def split_pairs(typingctx, src, s0, lo, hi, a, a0, b, b0, n):
    """``a[a0 + m] = v[2m]`` and ``b[b0 + m] = v[2m + 1]`` for ``m < n``, where ``v[q] =
    src[s0 + q]`` for ``lo <= q < hi`` and 0 elsewhere (``src`` is never read outside that
    range, so ``s0`` may be negative): a row's two stride-2 phases, zero padding included.

    Why: as a Numba loop (either phase with a runtime stride, or both in one loop with stride
    2) LLVM kept it scalar, ~1.5 cycles a value; here two vector loads and two shuffles make
    ``2 * lanes`` values."""
    sig = types.void(src, s0, lo, hi, a, a0, b, b0, n)

    def codegen(context, builder, signature, args):
        src, s0, lo, hi, a, a0, b, b0, n = args
        tys = signature.args
        vec = _Vectors(builder, tys[0].dtype)
        V = vec.lanes
        ivec = ir.VectorType(_I64, 2 * V)
        sp = _at(builder, _data(context, builder, tys[0], src), s0)
        ap = _at(builder, _data(context, builder, tys[4], a), a0)
        bp = _at(builder, _data(context, builder, tys[6], b), b0)
        lo_v, hi_v = (vec.splat(value, ivec) for value in (lo, hi))
        iota = ir.Constant(ivec, list(range(2 * V)))
        evens = ir.Constant(ir.VectorType(_I32, V), list(range(0, 2 * V, 2)))
        odds = ir.Constant(ir.VectorType(_I32, V), list(range(1, 2 * V, 2)))
        blocks = builder.sdiv(builder.add(n, ir.Constant(_I64, V - 1)), ir.Constant(_I64, V))
        with cgutils.for_range(builder, blocks) as loop:
            m = builder.mul(loop.index, ir.Constant(_I64, V))
            q = builder.add(vec.splat(builder.mul(m, ir.Constant(_I64, 2)), ivec), iota)
            inside = builder.and_(builder.icmp_signed(">=", q, lo_v),
                                  builder.icmp_signed("<", q, hi_v))
            halves = [builder.shuffle_vector(inside, inside, ir.Constant(
                ir.VectorType(_I32, V), list(range(h * V, (h + 1) * V)))) for h in range(2)]
            window = _at(builder, sp, builder.mul(m, ir.Constant(_I64, 2)))
            first, second = (vec.load_masked(_at(builder, window, h * V), halves[h])
                             for h in range(2))
            store = vec.lanes_below(builder.sub(n, m))
            vec.store_masked(builder.shuffle_vector(first, second, evens), _at(builder, ap, m),
                             store)
            vec.store_masked(builder.shuffle_vector(first, second, odds), _at(builder, bp, m),
                             store)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def shift_row(typingctx, src, s0, lo, hi, dst, d0, n):
    """``dst[d0 + m] = v[m]`` for ``m < n``, where ``v[q] = src[s0 + q]`` for ``lo <= q < hi``
    and 0 elsewhere (``src`` is never read outside that range, so ``s0`` may be negative): a
    row copied into a zero-padded one, the stride-1 sibling of :func:`split_pairs`.

    Why: the rows are short (14-28 values in the MNIST CNN), and LLVM's vector body for a copy
    loop takes 64 values a trip, so as a Numba loop every value went through the scalar tail;
    here each vector of ``lanes`` values is one masked load and one masked store."""
    sig = types.void(src, s0, lo, hi, dst, d0, n)

    def codegen(context, builder, signature, args):
        src, s0, lo, hi, dst, d0, n = args
        tys = signature.args
        vec = _Vectors(builder, tys[0].dtype)
        V = vec.lanes
        ivec = ir.VectorType(_I64, V)
        sp = _at(builder, _data(context, builder, tys[0], src), s0)
        dp = _at(builder, _data(context, builder, tys[4], dst), d0)
        lo_v, hi_v = (vec.splat(value, ivec) for value in (lo, hi))
        iota = ir.Constant(ivec, list(range(V)))
        blocks = builder.sdiv(builder.add(n, ir.Constant(_I64, V - 1)), ir.Constant(_I64, V))
        with cgutils.for_range(builder, blocks) as loop:
            m = builder.mul(loop.index, ir.Constant(_I64, V))
            q = builder.add(vec.splat(m, ivec), iota)
            inside = builder.and_(builder.icmp_signed(">=", q, lo_v),
                                  builder.icmp_signed("<", q, hi_v))
            value = vec.load_masked(_at(builder, sp, m), inside)
            vec.store_masked(value, _at(builder, dp, m), vec.lanes_below(builder.sub(n, m)))
        return context.get_dummy_value()
    return sig, codegen


def _transposed(builder, rows):
    """``V`` vectors of ``V`` lanes, transposed in registers: ``log2(V)`` rounds of two-input
    shuffles, each swapping one bit of the row index with the same bit of the column index."""
    r, V = list(rows), len(rows)
    bit = 1
    while bit < V:
        low = [j if not j & bit else V + j - bit for j in range(V)]
        high = [j + bit if not j & bit else V + j for j in range(V)]
        for i in range(V):
            if not i & bit:
                a, b = r[i], r[i + bit]
                r[i] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, V), low))
                r[i + bit] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, V),
                                                                      high))
        bit *= 2
    return r


@intrinsic
def transpose_whole_block(typingctx, src, s0, ss, dst, d0, ds):
    """A whole ``lanes x lanes`` block transposed: ``dst[d0 + j*ds + i] = src[s0 + i*ss + j]``
    for ``i, j < lanes``, with plain vector loads and stores (``src``, ``dst`` arrays of one
    dtype; offsets and row strides in elements; the caller keeps the block inside both).

    Why beside :func:`transpose_block`: that one masks its loads and stores for partial blocks,
    and where there is no AVX-512 a masked load or store (``vmaskmov``) costs more than the
    shuffles save. Measured on an AVX2 host (AMD EPYC, Zen 3), float32 (32, 1024) -> (1024, 32),
    one thread: 39 us masked, 7-9 us with this, 17-19 us as 8 x 8 tiles of scalar copies."""
    sig = types.void(src, s0, ss, dst, d0, ds)

    def codegen(context, builder, signature, args):
        src, s0, ss, dst, d0, ds = args
        tys = signature.args
        vec = _Vectors(builder, tys[0].dtype)
        sp = _at(builder, _data(context, builder, tys[0], src), s0)
        dp = _at(builder, _data(context, builder, tys[3], dst), d0)
        r = [vec.load(_at(builder, sp, builder.mul(ss, ir.Constant(_I64, i))))
             for i in range(vec.lanes)]
        for j, row in enumerate(_transposed(builder, r)):
            at = _at(builder, dp, builder.mul(ds, ir.Constant(_I64, j)))
            builder.store(row, builder.bitcast(at, vec.type.as_pointer()), align=vec.align)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def transpose_block(typingctx, src, s0, ss, rows, cols, dst, d0, ds, width, sums, u0):
    """One block of at most ``lanes x lanes`` values transposed: ``dst[d0 + j*ds + i] =
    src[s0 + i*ss + j]`` for ``j < cols`` and ``i < width``, where rows ``i >= rows`` read as
    0 (so ``width > rows`` zero-fills columns); and ``sums[u0 + i] += sum_{j < cols} src[s0 +
    i*ss + j]`` for ``i < min(rows, width)``. Only ``src[s0 + i*ss + j]`` for ``i < rows``,
    ``j < cols`` is read.

    Why: a transposition written as Numba loops reads or writes with a stride and runs scalar
    (~1 cycle a value here); in registers it is ``log2(lanes)`` rounds of two-input shuffles,
    each swapping one bit of the row index with the same bit of the column index. The row sums
    come free from the transposed vectors (a Numba loop over 32 channels never reached LLVM's
    64-value vector body)."""
    sig = types.void(src, s0, ss, rows, cols, dst, d0, ds, width, sums, u0)

    def codegen(context, builder, signature, args):
        src, s0, ss, rows, cols, dst, d0, ds, width, sums, u0 = args
        tys = signature.args
        vec = _Vectors(builder, tys[0].dtype)
        V = vec.lanes
        sp = _at(builder, _data(context, builder, tys[0], src), s0)
        dp = _at(builder, _data(context, builder, tys[5], dst), d0)
        up = _at(builder, _data(context, builder, tys[9], sums), u0)
        col_mask = vec.lanes_below(cols)
        no_lanes = ir.Constant(vec.mask_type, [0] * V)
        r = []
        for i in range(V):
            inside = builder.icmp_signed("<", ir.Constant(_I64, i), rows)
            mask = builder.select(inside, col_mask, no_lanes)
            r.append(vec.load_masked(_at(builder, sp, builder.mul(ss, ir.Constant(_I64, i))),
                                     mask))
        r = _transposed(builder, r)
        store_mask = vec.lanes_below(width)
        total = vec.zero
        for j in range(V):
            with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, j), cols)):
                vec.store_masked(r[j], _at(builder, dp, builder.mul(ds, ir.Constant(_I64, j))),
                                 store_mask)
            # Columns j >= cols were loaded as 0: adding them changes no sum.
            total = builder.fadd(total, r[j])
        sum_mask = vec.lanes_below(builder.select(builder.icmp_signed("<", rows, width), rows,
                                                  width))
        old = vec.load_masked(up, sum_mask)
        vec.store_masked(builder.fadd(old, total), up, sum_mask)
        return context.get_dummy_value()
    return sig, codegen
