"""conv1d's "blocked" strategy: register-blocked micro-kernels (``_microkernels``), no im2col.

Shapes as in ``conv1d``: ``x (N, C_in, L)``, ``W (C_out, C_in, K)``, ``y (N, C_out, L_out)``.

Forward, per batch item
    The padded item is split into ``stride`` phases, ``xph[c, r, m] = xpad[c, m*stride + r]``,
    so that every tap ``(k, c)`` reads a contiguous run: output ``l`` needs ``xpad[c, l*stride +
    k*dilation]``, which is ``xph[c, r, l + q]`` with ``k*dilation = q*stride + r``. The taps
    kernel computes blocks of output channels by output positions straight into ``y``, bias
    included, from a table of the taps' offsets in ``xph``; where an output row fits in one
    vector, a block holds the same rows of two items.
Backward, per chunk of items
    ``g = dout * act'`` goes into a zero-padded copy per item (``gpad``), summed into ``db`` on
    the way, and into its transpose ``gT (L_out, C_out_pad)``. The weight gradient is the outer
    kernel over the chunk: the forward's taps of ``xph`` against ``gT`` rows. The input gradient
    is a convolution of ``gpad`` with the transposed weights, one output phase at a time: input
    position ``j = m*stride + r`` receives tap ``k`` wherever ``j + padding_left - k*dilation``
    is a multiple of the stride, from ``gpad`` at ``m + q``, ``q = (r + padding_left -
    k*dilation) / stride``. With stride 1 it is written straight into ``dx``; otherwise into a
    phase buffer, then interleaved.

The batch runs as parts side by side on Numba's threads (``_slots``); no BLAS anywhere.

Compile time: a Numba function that another one calls is compiled on its own (typed, optimised,
emitted as machine code) and then optimised and emitted again inside each caller. The helpers a
slot calls once (``_forward_items``, ``_backward_items``, ``_pad_gradient``, ``_weight_gradient``,
``_input_gradient``) are therefore inlined into it (``inline="always"``): a fresh cache's
forward + backward compile went from 5.3 to 4.1 s (median of four interleaved runs; C28->32
L28 float32). ``_convolve`` and ``_pack_phases``, each called from several places, stay
separate: inlining them too (the micro-kernels at every call site) took 5.6 s.
Determinism as in ``conv1d``: ``dW`` and ``db`` are summed in a fixed order (items in order
within a part, parts in order by the caller).
"""
import functools

import numpy as np
from numba import carray, config

from ._config import jit
from ._microkernels import (VECTOR_BYTES, lanes, outer_kernel, shift_row, split_pairs,
                            taps_kernel, transpose_block)
from ._scalar import RELU, activation_grad_row, relu_row_
from ._slots import ARRAYS, part_count, pointer_like, run

#: Block of the taps kernel: output rows by vectors (16 accumulators). The two vectors are
#: consecutive positions of one item's rows where rows are longer than one vector, else the
#: same rows of two items. Measured (float32, one thread, batch 128, forward): 206-210 GFLOP/s
#: at C28->32 L28, C32->64 L1024 and (two items a block) C64->128 L14; at C64->128 L14 one
#: item per block reached 101 GFLOP/s with two vectors, 139 with a 16 x 1 block.
TAPS_ROWS, TAPS_VECTORS = 8, 2
#: Block of the outer kernel (the weight gradient): taps by vectors of output channels.
OUTER_TAPS, OUTER_VECTORS = 8, 2
#: Channel counts are padded to a multiple of this (two vectors of float32), so that every
#: block's loads stay in bounds.
ROW_PAD = 32
#: Target bytes of one backward chunk's buffers (``xph``, ``gpad`` and ``gT`` of its items),
#: inside a core's L2.
CHUNK_BYTES = 256 << 10
#: Multiply-adds from which a call splits its batch over threads. Waking a sleeping thread costs
#: 25-50 us here, about 4 M multiply-adds on one thread; but this path runs on AVX-512 hosts,
#: where fastnet lets OpenMP's worker spin across a training step's kernels (``fastnet.backend``),
#: so it is usually awake. Measured, MNIST CNN at batch 32 (convolutions of 2.4 and 2.8 M), per-
#: step medians of four interleaved rounds: 0.97 ms with 4 M, 0.93 ms with 1 M.
SPLIT_MIN_MACS = 1_000_000

_taps = taps_kernel(TAPS_ROWS, TAPS_VECTORS)
_outer = outer_kernel(OUTER_TAPS, OUTER_VECTORS)

#: Whether conv1d uses this strategy: the block shapes above are sized for 32 vector
#: registers (AVX-512); with 16 (AVX2) they spill, and conv1d keeps its im2col + GEMM path.
#: Blocks of 6 by 2 fit AVX2's registers but did not pay: on an AMD EPYC (Zen 3), float32 batch
#: 128, two threads, forward / backward ms against the GEMM path, interleaved: C28->32 L28
#: 0.54 / 0.54 against 0.52 / 0.50, C32->64 L14 0.65 / 1.14 against 0.67 / 0.91, C64->128 L14
#: 1.78 / 3.68 against 1.55 / 2.79.
#: Plain Python (``NUMBA_DISABLE_JIT=1``, a coverage run) cannot run the intrinsics either.
AVAILABLE = VECTOR_BYTES == 64 and not config.DISABLE_JIT


def _round_up(n, m):
    return -(-n // m) * m


class Geometry:
    """Buffer sizes and tap tables of one convolution shape.

    Attributes
    ----------
    L_ph : int
        Length of a phase row: an item's ``xph`` is ``(C_in, stride, L_ph)``.
    L_g, g_left : int
        An item's ``gpad`` is ``(C_out_pad, L_g)`` with ``g[o, l]`` at ``[o, g_left + l]``.
    C_out_pad, C_in_pad : int
        Channel counts rounded up to :data:`ROW_PAD`.
    taps : int64 ``(T_pad, 2)``
        Forward tap ``t = k*C_in + c``: its offset in an item's ``xph`` and its weight row
        ``t``; padded with copies of tap 0 to a multiple of :data:`OUTER_TAPS`.
    dx_taps : int64 ``(n, 2)``
        The input gradient's taps, phase ``r``'s at ``dx_starts[r]:dx_starts[r+1]``: offset in an
        item's ``gpad`` and row ``k*C_out + o`` of the transposed weights.
    dx_starts : int64 ``(stride + 1,)``
    """

    def __init__(self, C_in, L, C_out, K, L_out, stride, padding_left, dilation, dtype):
        V = lanes(np.dtype(dtype))
        s, d, pl = stride, dilation, padding_left
        # What the taps kernel reads past a row's offset: one vector where the row fits in one
        # (two items a block), else whole blocks of two.
        span = lambda n: V if n <= V else _round_up(n, 2 * V)      # noqa: E731
        self.L_ph = span(L_out) + (K - 1) * d // s
        self.C_out_pad = _round_up(C_out, ROW_PAD)
        self.C_in_pad = _round_up(C_in, ROW_PAD)
        taps = [(c * s * self.L_ph + (k * d) % s * self.L_ph + (k * d) // s, k * C_in + c)
                for k in range(K) for c in range(C_in)]
        taps += [taps[0]] * (_round_up(len(taps), OUTER_TAPS) - len(taps))
        self.taps = np.array(taps, np.int64)
        q = [(r + pl - k * d) // s for r in range(s) for k in range(K)]
        self.g_left = max(0, -min(q))
        # Room for the input gradient's reads and for the rows written: a right padding past
        # the input can give more outputs than that (L=2, padding 40: L_out 42).
        self.L_g = self.g_left + max(max(q) + span(-(-L // s)), L_out)
        dx_taps, starts = [], [0]
        for r in range(s):
            for k in range(K):
                if (r + pl - k * d) % s == 0:
                    offset = self.g_left + (r + pl - k * d) // s
                    dx_taps += [(o * self.L_g + offset, k * C_out + o) for o in range(C_out)]
            starts.append(len(dx_taps))
        self.dx_taps = np.array(dx_taps or [(0, 0)], np.int64)
        self.dx_starts = np.array(starts, np.int64)
        self.tails = {}                      # _with_length's, by sizes


@functools.lru_cache(maxsize=64)
def geometry(C_in, L, C_out, K, L_out, stride, padding_left, dilation, dtype):
    """The :class:`Geometry` of a shape (``dtype`` a NumPy dtype), built once per shape."""
    return Geometry(C_in, L, C_out, K, L_out, stride, padding_left, dilation, dtype)


@jit(inline="always")
def _lanes_of(a):
    """Values per vector for ``a``'s dtype."""
    return VECTOR_BYTES // a.itemsize


@jit
def _pack_phases(xn, stride, padding_left, xph):
    """``xph[c, r, m] = xn[c, m*stride + r - padding_left]``, zero outside ``xn`` (``xph`` flat,
    ``(C_in, stride, L_ph)``).

    Strides 1 and 2 go through vector intrinsics, a masked copy per row (``shift_row``) and
    shuffles (``split_pairs``): as Numba loops, LLVM kept them scalar (stride 1 with the stride
    a compile-time constant: 0.027 ms at N=128, C_in=28, L=28, float32, against 0.020 ms now,
    and 6x longer with it a runtime value; stride 2: 0.115 ms at N=128, C_in=64, L=28, about a
    third of the convolution it feeds)."""
    C_in, L = xn.shape
    if stride == 1:
        L_ph = xph.size // C_in
        for c in range(C_in):
            shift_row(xn, c * L - padding_left, padding_left, padding_left + L, xph, c * L_ph,
                      L_ph)
    elif stride == 2:
        L_ph = xph.size // (2 * C_in)
        for c in range(C_in):
            split_pairs(xn, c * L - padding_left, padding_left, padding_left + L, xph,
                        2 * c * L_ph, xph, (2 * c + 1) * L_ph, L_ph)
    else:
        _pack(xn, stride, padding_left, xph)


@jit(inline="always")
def _pack(xn, stride, padding_left, xph):
    """:func:`_pack_phases`. Explicit loops over 0-based views: Numba's slice assignment
    (``row[lo:hi] = ...``) checks for overlap (~40 ns a row)."""
    C_in, L = xn.shape
    L_ph = xph.size // (C_in * stride)
    for r in range(stride):
        first = r - padding_left                       # the xn index of m = 0
        lo = 0 if first >= 0 else (-first + stride - 1) // stride
        hi = 0 if L - 1 - first < 0 else (L - 1 - first) // stride + 1
        lo = min(lo, L_ph)
        hi = min(max(hi, lo), L_ph)
        for c in range(C_in):
            row = xph[(c * stride + r) * L_ph:(c * stride + r + 1) * L_ph]
            for m in range(lo):
                row[m] = 0
            inside = row[lo:]
            src = xn[c, lo * stride + first:]
            for m in range(hi - lo):
                inside[m] = src[m * stride]
            tail = row[hi:]
            for m in range(L_ph - hi):
                tail[m] = 0


@jit
def _convolve(src, src_item, taps, t0, T, w, w_cols, bias, use_bias, rows, length, out, out_row,
              out_item, items):
    """``out[n*out_item + i*out_row + m] = bias[i] + sum_t w[row_t, i] * src[n*src_item + off_t +
    m]`` for ``n < items`` (1 or 2), ``i < rows``, ``m < length``: the taps kernel over the whole
    output. Rows of at most one vector go two items a block, one vector each (a lone item
    leaves the second vector unread and unstored); longer rows go item by item, two consecutive
    vectors a block."""
    V = _lanes_of(src)
    if length <= V:
        step, out_step, masked = (src_item, out_item, 0) if items == 2 else (0, 0, length)
        for i in range(0, rows, TAPS_ROWS):
            _taps(src, 0, step, taps, t0, T, w, i, w_cols, out, i * out_row, out_row, out_step,
                  min(TAPS_ROWS, rows - i), length, masked, bias, i, use_bias)
        return
    for n in range(items):
        for i in range(0, rows, TAPS_ROWS):
            for m in range(0, length, TAPS_VECTORS * V):
                _taps(src, n * src_item + m, V, taps, t0, T, w, i, w_cols, out,
                      n * out_item + i * out_row + m, out_row, V, min(TAPS_ROWS, rows - i),
                      min(TAPS_VECTORS * V, length - m), V, bias, i, use_bias)


@jit(inline="always")
def _plain(n):
    """``n`` as a plain int64, for an argument of :func:`_convolve`. A constant argument is
    typed as a literal, and Numba compiles a callee once per pattern of literals: the forward's
    ``(t0=0, use_bias=1)`` and the input gradient's ``use_bias=0`` each had a ``_convolve`` of
    their own, ~0.45 s more of a cold CNN step (backward slot 2.67 -> 2.21 s)."""
    return np.int64(n)


@jit(inline="always")
def _pad_gradient(dn, yn, act, g_left, need_dx, gpad, gT, db):
    """The transposed gradient ``gT[l, o] = g[o, l] = dn[o, l] * act'(yn[o, l])`` with zero
    columns up to ``C_out_pad`` (flat ``(L_out, C_out_pad)``), each row's sum added to
    ``db[o]``, and, if ``need_dx``, ``gpad[o, g_left + l] = g[o, l]`` zero around it (rows
    ``o < C_out`` of the flat ``(C_out_pad, L_g)``).

    ``g`` is computed over the whole item first, in one flat pass (one row of 14-28 values at a
    time, the activation's loop never reached LLVM's vector body of 64 values and ran scalar,
    6-8x slower: C28->64 L28, 128 items, 0.59 against 0.09 ms), into ``gT`` when ``gpad`` is
    built from it (the transposition overwrites it last), else into ``gpad``, unused then. The
    rows and the transposition go through vector intrinsics (``shift_row``,
    ``transpose_block``): as Numba loops they ran scalar. Measured, one thread, 128 items,
    float32: C_out 32 L_out 28 0.105 -> 0.037 ms, C_out 64 L_out 14 0.111 -> 0.049 ms with
    ``gpad``; 0.030 ms without it."""
    C_out, L_out = dn.shape
    C_out_pad = gT.size // L_out
    L_g = gpad.size // C_out_pad
    V = _lanes_of(gT)
    if need_dx:
        g = gT[:C_out * L_out]
        activation_grad_row(dn.reshape(-1), yn.reshape(-1), act, g)
        for o in range(C_out):
            shift_row(g, o * L_out - g_left, g_left, g_left + L_out, gpad, o * L_g, L_g)
        src, first, row = gpad, g_left, L_g
    else:
        src, first, row = gpad[:C_out * L_out], 0, L_out
        activation_grad_row(dn.reshape(-1), yn.reshape(-1), act, src)
    for o in range(0, C_out_pad, V):
        for l in range(0, L_out, V):
            transpose_block(src, first + o * row + l, row, C_out - o, min(V, L_out - l), gT,
                            l * C_out_pad + o, C_out_pad, min(V, C_out_pad - o), db, o)


@jit(inline="always")
def _weight_gradient(gT, g_item, xph, x_item, items, taps, T, L_out, dW_tap, first):
    """``dW_tap[t, o] (+)= sum_{n, l} xph[n, off_t + l] * gT[n, l, o]`` over the chunk's
    ``items`` (``=`` if ``first``): the outer kernel, block by block."""
    C_out = dW_tap.shape[1]
    C_out_pad = g_item // L_out
    block = OUTER_VECTORS * _lanes_of(gT)
    flat = dW_tap.reshape(-1)
    for t in range(0, T, OUTER_TAPS):
        for o in range(0, C_out, block):
            _outer(xph, 0, x_item, taps, t, gT, o, g_item, C_out_pad, items, L_out, flat,
                   t * C_out + o, C_out, min(OUTER_TAPS, T - t), min(block, C_out - o),
                   not first, 0)


@jit(inline="always")
def _input_gradient(gpad, g_item, dx_taps, dx_starts, W_t, C_in_pad, stride, dxn, phase):
    """``dxn (items, C_in, L)`` (one or two items) from their ``gpad`` rows, ``g_item`` apart,
    phase by phase (see the module docstring); ``W_t (K*C_out, C_in_pad)`` the transposed
    weights; ``phase`` a buffer of at least ``items * C_in * ceil(L / stride)`` values (unused
    for stride 1)."""
    items, C_in, L = dxn.shape
    flat = dxn.reshape(-1)
    for r in range(min(stride, L)):
        t0, t1 = dx_starts[r], dx_starts[r + 1]
        M = (L - r + stride - 1) // stride
        out, out_row = (flat, L) if stride == 1 else (phase, M)
        _convolve(gpad, g_item, dx_taps, t0, t1 - t0, W_t, C_in_pad, W_t, _plain(0), C_in, M,
                  out, out_row, C_in * out_row, items)
        if stride != 1:
            for n in range(items):
                for c in range(C_in):
                    src = phase[(n * C_in + c) * M:]
                    for m in range(M):
                        dxn[n, c, m * stride + r] = src[m]


@jit(inline="always")
def _forward_items(x, taps, T, W_pad, b_pad, stride, padding_left, xph, y):
    """:func:`_convolve` two items at a time, each from its own half of ``xph``."""
    N = x.shape[0]
    C_out, L_out = y.shape[1:]
    x_item = xph.size // 2
    for n in range(0, N, 2):
        items = min(2, N - n)
        for j in range(items):
            _pack_phases(x[n + j], stride, padding_left, xph[j * x_item:(j + 1) * x_item])
        _convolve(xph, x_item, taps, _plain(0), T, W_pad, b_pad.size, b_pad, _plain(1), C_out,
                  L_out, y[n:n + items].reshape(-1), L_out, C_out * L_out, items)


@jit(inline="always")
def _backward_items(dout, x, y, act, taps, T, dx_taps, dx_starts, W_t, C_in_pad, stride,
                    padding_left, g_left, chunk, xph, gpad, gT, phase, dx, dW_tap, db, need_dx):
    """The backward of a batch part, ``chunk`` items at a time (see the module docstring)."""
    N = x.shape[0]
    L_out = dout.shape[2]
    x_item = xph.size // chunk
    g_item = gpad.size // chunk
    t_item = gT.size // chunk
    db[:] = 0
    for n0 in range(0, N, chunk):
        items = min(chunk, N - n0)
        for j in range(items):
            _pack_phases(x[n0 + j], stride, padding_left, xph[j * x_item:(j + 1) * x_item])
            _pad_gradient(dout[n0 + j], y[n0 + j], act, g_left, need_dx,
                          gpad[j * g_item:(j + 1) * g_item], gT[j * t_item:(j + 1) * t_item], db)
        _weight_gradient(gT, t_item, xph, x_item, items, taps, T, L_out, dW_tap, n0 == 0)
        if need_dx:
            for j in range(0, items, 2):
                pair = min(2, items - j)
                _input_gradient(gpad[j * g_item:(j + pair) * g_item], g_item, dx_taps,
                                dx_starts, W_t, C_in_pad, stride, dx[n0 + j:n0 + j + pair], phase)


# --- slots (``_slots``), one batch part each. ``args`` holds the array addresses, then
# ``len(args)`` and the sizes named in each docstring, then the tap tables.

#: Sizes in a forward slot's ``args``, from ``len(args)`` on.
_FORWARD_SIZES = 12
#: ... in a backward slot's.
_BACKWARD_SIZES = 18


@jit(inline="always")
def _args(args_p, count):
    """The slot's int64 ``args``, whose length is at ``args[ARRAYS]``."""
    return carray(args_p, (carray(args_p, (ARRAYS + count,))[ARRAYS],))


def _forward_slot(i, parts, args_p, work_p):
    """Forward of batch part ``i``. ``args``: the addresses of ``x, W_pad, b_pad, y``; then
    ``len(args), N, C_in, L, C_out, L_out, T, C_out_pad, stride, padding_left, act,
    len(work)``; then the forward taps. ``work``: two items' ``xph`` per part."""
    a = _args(args_p, _FORWARD_SIZES)
    N, C_in, L, C_out, L_out, T, C_out_pad = a[8], a[9], a[10], a[11], a[12], a[13], a[14]
    stride, padding_left, act, work_len = a[15], a[16], a[17], a[18]
    n0, n1 = N * i // parts, N * (i + 1) // parts
    x = carray(pointer_like(a[0], work_p), (N, C_in, L))[n0:n1]
    W_pad = carray(pointer_like(a[1], work_p), (T * C_out_pad,))
    b_pad = carray(pointer_like(a[2], work_p), (C_out_pad,))
    y = carray(pointer_like(a[3], work_p), (N, C_out, L_out))[n0:n1]
    share = work_len // parts
    xph = carray(work_p, (work_len,))[i * share:(i + 1) * share]
    _forward_items(x, a[ARRAYS + _FORWARD_SIZES:], T, W_pad, b_pad, stride, padding_left, xph, y)
    if act == RELU:
        relu_row_(y.reshape(-1))


def _backward_slot(i, parts, args_p, work_p):
    """Backward of batch part ``i``: its ``dW_parts[i] (T, C_out)``, ``db_parts[i]`` and (if
    ``need_dx``) its ``dx``. ``args``: the addresses of ``dout, x, y, dx, W_t, dW_parts,
    db_parts``; then ``len(args), N, C_in, L, C_out, L_out, T, C_in_pad, stride, padding_left,
    act, need_dx, g_left, chunk, len(work)`` and the lengths of an item's ``xph``, ``gpad`` and
    ``gT``; then the tables: forward taps (``2 * T_pad``), ``dx_starts``, ``dx_taps``.
    ``work``: per part, ``chunk`` items' ``xph``, ``gpad`` and ``gT``, and a phase buffer of
    two items."""
    a = _args(args_p, _BACKWARD_SIZES)
    N, C_in, L, C_out, L_out, T, C_in_pad = a[8], a[9], a[10], a[11], a[12], a[13], a[14]
    stride, padding_left, act, need_dx = a[15], a[16], a[17], a[18] != 0
    g_left, chunk, work_len, x_item, g_item, t_item = a[19], a[20], a[21], a[22], a[23], a[24]
    n0, n1 = N * i // parts, N * (i + 1) // parts
    dout = carray(pointer_like(a[0], work_p), (N, C_out, L_out))[n0:n1]
    x = carray(pointer_like(a[1], work_p), (N, C_in, L))[n0:n1]
    y = carray(pointer_like(a[2], work_p), (N, C_out, L_out))[n0:n1]
    dx = carray(pointer_like(a[3], work_p), (N, C_in, L))[n0:n1]
    W_t = carray(pointer_like(a[4], work_p), (T // C_in * C_out * C_in_pad,))
    dW_tap = carray(pointer_like(a[5], work_p), (parts, T, C_out))[i]
    db = carray(pointer_like(a[6], work_p), (parts, C_out))[i]
    tables = a[ARRAYS + _BACKWARD_SIZES:]
    n_taps = 2 * (-(-T // OUTER_TAPS) * OUTER_TAPS)          # the padded forward taps
    taps = tables[:n_taps]
    dx_starts = tables[n_taps:n_taps + stride + 1]
    dx_taps = tables[n_taps + stride + 1:]
    share = work_len // parts
    work = carray(work_p, (work_len,))[i * share:(i + 1) * share]
    xph = work[:chunk * x_item]
    gpad = work[chunk * x_item:chunk * (x_item + g_item)]
    gT = work[chunk * (x_item + g_item):chunk * (x_item + g_item + t_item)]
    phase = work[chunk * (x_item + g_item + t_item):]
    _backward_items(dout, x, y, act, taps, T, dx_taps, dx_starts, W_t, C_in_pad, stride,
                    padding_left, g_left, chunk, xph, gpad, gT, phase, dx, dW_tap, db, need_dx)


# --- the Python side --------------------------------------------------------------------------

def _parts(macs, N):
    """Batch parts: one per thread once the call has ``SPLIT_MIN_MACS`` multiply-adds."""
    return part_count(N) if macs >= SPLIT_MIN_MACS else 1


def _padded_rows(W, axes, width):
    """``W.transpose(axes)`` as a C-contiguous ``(rows, width)`` matrix of its last axis, zero
    beyond it: one copy (two, a transposed copy and then a padded one, cost ~1 us more)."""
    t = W.transpose(axes)
    out = np.empty(t.shape[:2] + (width,), W.dtype)
    if width > t.shape[2]:
        out[:, :, t.shape[2]:] = 0
    out[:, :, :t.shape[2]] = t
    return out.reshape(-1, width)


def forward(x, W, b, stride, padding_left, dilation, act, y, scratch):
    """``y`` (allocated) gets the convolution with bias, ReLU applied if ``act`` is ReLU (other
    activations are the caller's); ``scratch(size, dtype)`` gives a work buffer."""
    N, C_in, L = x.shape
    C_out, L_out = y.shape[1:]
    K = W.shape[2]
    geo = geometry(C_in, L, C_out, K, L_out, stride, padding_left, dilation, x.dtype)
    W_pad = _padded_rows(W, (2, 1, 0), geo.C_out_pad)          # tap-major: (K*C_in, C_out_pad)
    b_pad = b
    if geo.C_out_pad > C_out:
        b_pad = np.zeros(geo.C_out_pad, x.dtype)
        b_pad[:C_out] = b
    parts = _parts(N * C_out * L_out * C_in * K, N)
    work = scratch(parts * 2 * C_in * stride * geo.L_ph, x.dtype)
    sizes = (N, C_in, L, C_out, L_out, K * C_in, geo.C_out_pad, stride, padding_left, act,
             work.shape[0])
    run(_forward_slot, parts, (x, W_pad, b_pad, y), _with_length(geo, sizes, geo.taps), work,
        calls_blas=False, ahead=_backward_slot)


def backward(dout, x, W, y, act, stride, padding_left, dilation, dx, need_dx, scratch):
    """``(dW_parts, db_parts)``, each batch part's ``dW_tap (K*C_in, C_out)`` and ``db`` (the
    caller adds them up in part order), and ``dx`` (allocated) written if ``need_dx``; ``y`` is
    read only for an activation (any array of ``dout``'s shape otherwise)."""
    N, C_in, L = x.shape
    C_out, _, K = W.shape
    L_out = dout.shape[2]
    geo = geometry(C_in, L, C_out, K, L_out, stride, padding_left, dilation, x.dtype)
    W_t = _padded_rows(W, (2, 0, 1), geo.C_in_pad)               # (K*C_out, C_in_pad)
    parts = _parts(N * C_out * L_out * C_in * K * (2 if need_dx else 1), N)
    x_item, g_item = C_in * stride * geo.L_ph, geo.C_out_pad * geo.L_g
    t_item = L_out * geo.C_out_pad
    per_item = (x_item + g_item + t_item) * x.itemsize
    chunk = max(1, min(CHUNK_BYTES // per_item, -(-N // parts)))
    chunk += chunk % 2 if chunk < N else 0          # the input gradient goes two items a block
    share = chunk * (x_item + g_item + t_item) + 2 * C_in * -(-L // stride)
    work = scratch(parts * share, x.dtype)
    dW_parts = np.empty((parts, K * C_in, C_out), x.dtype)
    db_parts = np.empty((parts, C_out), x.dtype)
    sizes = (N, C_in, L, C_out, L_out, K * C_in, geo.C_in_pad, stride, padding_left, act,
             int(need_dx), geo.g_left, chunk, work.shape[0], x_item, g_item, t_item)
    run(_backward_slot, parts, (dout, x, y, dx, W_t, dW_parts, db_parts),
        _with_length(geo, sizes, geo.taps, geo.dx_starts, geo.dx_taps), work, calls_blas=False)
    return dW_parts, db_parts


def _with_length(geo, sizes, *tables):
    """``args`` after the addresses: its own length first, then ``sizes``, then the tables
    (``geo``'s). Built once per geometry and sizes, which repeat from call to call: building it
    took ~4 us of a call's ~15 us outside the compiled code."""
    key = (sizes, len(tables))
    tail = geo.tails.get(key)
    if tail is None:
        tail = np.concatenate([np.asarray(sizes, np.int64)] + [t.reshape(-1) for t in tables])
        tail = np.concatenate(([ARRAYS + 1 + tail.size], tail))
        tail.setflags(write=False)
        if len(geo.tails) >= 16:             # batch sizes come and go (a last, short batch)
            geo.tails.clear()
        geo.tails[key] = tail
    return tail
