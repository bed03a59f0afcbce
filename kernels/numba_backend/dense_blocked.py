"""The dense layer's three products on the outer micro-kernel (``_microkernels``), no BLAS.

``x @ W``, ``x.T @ dz`` and ``dz @ W.T`` for C-ordered operands, AVX-512 hosts only (the
block below is sized for 32 vector registers, as in ``conv1d_blocked``).

Why: on this machine OpenBLAS's GEMM runs at about half of what the outer kernel reaches on
the same shapes, one thread or two. Measured (prototype, ``prange`` over blocks; micro-kernel
against NumPy's ``@``, two threads):

* float32, 128 x 896 -> 128 (the MNIST CNN's hidden layer): ``x @ W`` 64 against 166 us,
  ``x.T @ dz`` 73 against 151 us;
* float64, 20 x 784 -> 400 (the notebooks' MLP at batch 20): ``x @ W`` 90 against 268 us,
  ``x.T @ dz`` 63 against 138 us;
* float32, 128 x 784 -> 400: 191 against 376 us and 180 against 372 us.

How: the output is cut into blocks of ``MR`` rows by ``NV`` vectors, each one call of the outer
kernel, which keeps the block in registers while the reduction streams past it.

* ``x @ W``: rows of ``x`` are the kernel's broadcast side (offsets ``n*K``), rows of ``W`` its
  vectors, the reduction the kernel's ``length``, in slabs of ``KC`` (see there).
* ``x.T @ dz``: the reduction runs over the batch as the kernel's ``items``: columns of ``x``
  (offsets ``k``, one row of ``x`` per item) against rows of ``dz``. No transposition.
* ``dz @ W.T``: vectors must run along ``W``'s rows, so each batch part first transposes its
  columns' share of ``W`` (``transpose_block``) into its scratch, then multiplies as above.
  Small batches take the inner kernel instead (``inner_kernel``: rows of ``W`` against rows of
  ``dz``, lanes added at the end), which reads ``W`` once as it is: the transposition moved all
  of ``W`` twice for a handful of output rows (:data:`INNER_MAX_ROWS`).
* ``x.T @ dz`` fused with AdaGrad (:func:`transposed_times_adagrad_`): each part computes ``MR``
  whole rows of the product into scratch, then updates the same rows of ``W`` and its state
  ``h`` (``optimizers.adagrad_span``) while the rows are in L1. The weight gradient is never
  written out: unfused, it was written to memory (after the cache lines were read for
  ownership) and read back by the update, 7.5 MB of L3 traffic per step for the notebooks'
  784 -> 400 float64 layer. In training it also takes the next batch's ``x @ W`` (the next
  step's forward), each slab of ``W`` as soon as the part has updated it: ``x @ W`` after the
  update read ``W`` back from L3.

The kernel reads ``b`` masked to the valid columns, and the rows of a short last block repeat
the last real row, so no operand needs padding. Blocks go to batch parts (one per thread,
``_slots``) in contiguous ranges; each output value is summed by one thread in a fixed order,
so results are deterministic for a given thread count. (``x @ W`` of a few rows splits its
reduction instead, :data:`SPLIT_K_MAX_ROWS`: each part sums a share of every output, and the
shares are added in part order, so its last bits depend on the thread count.)
"""
import numpy as np
from numba import carray, config

from ._config import jit
from ._microkernels import VECTOR_BYTES, inner_kernel, lanes, outer_kernel, transpose_block
from ._slots import ARRAYS, call_slot, part_count, pointer_like, run, scratch, slot_address
from .optimizers import adagrad_span

#: Block: rows by vectors of columns, 20 accumulators (with the two ``b`` vectors and a broadcast,
#: 23 of the 32 registers). Measured against 8 x 2, 12 x 2, 5 x 4 and 6 x 4 (two threads, us per
#: ``x @ W``, ``x.T @ dz``, ``dz @ W.T``): float64 20 x 784 -> 400 83, 69, 111 at 8 x 2 and 67, 65,
#: 98 at 10 x 2 (20 rows fill two blocks, not three); float32 128 x 784 -> 400 182, 185, 195 and
#: 172, 173, 188; every other block shape was slower on one of the five layer shapes timed.
MR, NV = 10, 2
#: Multiply-adds from which a product splits over threads (as ``conv1d_blocked``: the other
#: thread is usually spinning, awake, between a step's kernels). Measured, the notebooks' MLP at
#: batch 20 float64 (layer 2's products 1.6 M), per-step medians of four interleaved rounds:
#: 0.51 ms with 4 M, 0.47 ms with 1 M and with 0.3 M; at batch 128 float32 no change.
SPLIT_MIN_MACS = 1_000_000
#: Per part, ``args`` carries a table of ``MR`` row offsets (the kernel's ``taps`` layout).
_TABLE = 2 * MR

#: Smallest product (multiply-adds) worth a slot: below it the call's fixed ~4.5 us is more
#: than BLAS takes (20 x 200 -> 10: 5.8 against 2.3 us float32; 128 x 128 -> 10 float32 0.6-0.7x,
#: the 10 columns filling a third of a block's 32 lanes). Re-measured on Zen 4, the products
#: alone (52 layer shapes of 0.5-1.1 M multiply-adds in both dtypes, against NumPy's ``@``):
#: below 1 M BLAS won, medians 0.61-0.81x forward and for ``dW`` (20 x 200 -> 129 float32
#: 0.66x), on one thread too (0.55-0.78x forward); from 1 M, where the products split over the
#: threads (``SPLIT_MIN_MACS``), the micro-kernel won, medians 1.06-1.48x. The layer's forward
#: (``fastnet.functional.dense``, 44 shapes of 0.5-1 M in both dtypes) agreed: 1.05-2.29x
#: longer on the micro-kernel, median 1.35-1.51x. Its backward did not (next).
MIN_MACS = 1_000_000
#: The backward's (``dense_backward``: ``dz`` and ``db`` in one pass beside it, then ``dW`` and
#: ``dx``), for batches of at least ``MIN_ROWS_BACKWARD`` rows and layers of more than
#: ``NARROW_MAX`` outputs. Measured as the forward: 0.5-1 M multiply-adds with 64-400 outputs
#: and 20-512 rows took 0.55-1.13x the time on the micro-kernel (medians 0.75x float32, 0.84x
#: float64; 20 x 200 -> 200 float32 0.50x in another run), but 33 outputs 0.75-1.40x (median
#: 0.92-1.03x), 10 outputs 0.93-1.75x, and batches of 8-16 rows either way (16 x 64 -> 500, an
#: audit's finding, 1.2-1.4x; 16 x 200 -> 200 0.59-0.77x). From ``MIN_MACS`` on the micro-kernel
#: takes every layer.
MIN_MACS_BACKWARD = 500_000
MIN_ROWS_BACKWARD = 20
#: The widest layer held to ``MIN_MACS`` backward.
NARROW_MAX = 48
#: Largest batch: ``x.T @ dz`` streams the whole batch past each output block (no slabs), and
#: falls behind BLAS beyond it (two threads, against NumPy's ``@``: 1.3-1.4x at N = 512, 0.99x
#: float32 and 0.45x float64 at 1024 x 4096 -> 2048, 0.2x at 4096 x 1024 -> 1024).
MAX_ROWS = 512
#: Largest operands (bytes of the three matrices together): past the L3 cache (32 MB here) the
#: slabs are not enough, and ``x @ W`` and ``dz @ W.T`` fall to BLAS's rate or below (256 x 4096
#: -> 4096: 0.92x float32 at 72 MB, 0.91-0.97x float64; 512 x 4096 -> 2048 float64, 88 MB,
#: 1.04-1.35x; 512 x 2048 -> 1024 float64, 28 MB, 1.21-1.40x).
MAX_BYTES = 32 << 20
#: Largest product (multiply-adds) where NumPy's BLAS runs AVX-512 kernels of its own. All the
#: figures above are against OpenBLAS's AVX2 ("Haswell") kernels, which the environment of the
#: AMD EPYC they were measured on forced (``OPENBLAS_CORETYPE=Haswell``). Its AVX-512
#: ("SkylakeX") kernels run 505 against 268 GFLOP/s at 1024^3 float32, and overtake the
#: micro-kernel on big products:
#: forward+backward, two threads, BLAS time over micro-kernel time: 1.66-1.71 at 20 x 784 -> 400,
#: 1.28-1.29 at 128 x 784 -> 400, 1.03-1.07 at 512 x 784 -> 400 (161 M), then 0.63-0.99 from
#: 268 M (128 x 2048 -> 1024, 256 x 1024 -> 1024, 512 x 1024 -> 512) and 0.76 at 512 x 2048 ->
#: 1024. float64 gives way sooner: on an Intel Xeon (Emerald Rapids, OpenBLAS's own SkylakeX
#: kernels), BLAS time over micro-kernel time, forward+backward with ReLU, two threads, medians
#: of 9: 1.24 at 20 x 784 -> 400 (6 M), 1.30 at 128 x 400 -> 200 (10 M), 1.02-1.07 at 20 M,
#: then 0.91 at 128 x 784 -> 400 (40 M), 0.88 at 128 x 1024 -> 512, 0.97 at 256 x 784 -> 400;
#: float32 stayed 1.01-1.62 on the same shapes, up to 80 M.
MAX_MACS_BESIDE_AVX512_BLAS = {np.dtype(np.float32): 200_000_000,
                               np.dtype(np.float64): 32_000_000}


def _blas_runs_avx512():
    """Whether NumPy's BLAS runs AVX-512 kernels: OpenBLAS's core type (threadpoolctl reads the
    one it chose, after ``OPENBLAS_CORETYPE``), or MKL, which picks them itself."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return False
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        if lib.get("internal_api") == "mkl":
            return True
        if str(lib.get("architecture", "")).lower() in ("skylakex", "cooperlake",
                                                        "sapphirerapids"):
            return True
    return False


#: Whether the products may go to the micro-kernel: where Numba compiles for AVX-512. On an AVX2
#: host (AMD EPYC Zen 3, 16 vector registers) blocks of 6 rows by 2 vectors fit the registers (no
#: spills) and reach 28-30 GFLOP/s float64 and 57 float32 on one thread (with plain loads and stores
#: for whole blocks: AVX2's masked ones, free with AVX-512's mask registers, took float64 to 19
#: GFLOP/s), but OpenBLAS's own AVX2 kernels run near the core's peak there. Measured (two threads,
#: micro-kernel against NumPy's ``@``, us): ``x @ W`` 20 x 784 -> 400 float64 386 against 406 and
#: 128 x 784 -> 400 float32 758 against 532; ``x.T @ dz`` 460 against 273 and 842 against 616. Only
#: ``dz @ W.T`` at 20 rows won (inner kernel, 3 x 4 block: 215 against 359), and the MLP step at
#: batch 20 did not change (2.10 against 1.75-2.13 ms), so those hosts keep BLAS.
AVAILABLE = VECTOR_BYTES == 64 and not config.DISABLE_JIT
#: Largest product per dtype for the micro-kernel on this host (``MAX_MACS_BESIDE_AVX512_BLAS``).
MAX_MACS = MAX_MACS_BESIDE_AVX512_BLAS if AVAILABLE and _blas_runs_avx512() else None

_outer = outer_kernel(MR, NV, masked=True)
#: The inner kernel's block for ``dz @ W.T``: rows of ``W`` by rows of ``dz``, 24 accumulators
#: (with the six ``W`` vectors and one of ``dz``, 31 of the 32 registers). Measured against 4 x
#: 5, 5 x 4, 3 x 7, 2 x 10 and 4 x 4 (two threads, 20 x 400 @ (784 x 400).T): float64 91 us
#: against 88-128, float32 62 against 58-70; at 32-64 rows the fastest, or within 2 %.
RA, RB = 6, 4
_inner = inner_kernel(RA, RB)
#: ``dz @ W.T`` goes to the inner kernel up to this many rows of ``dz`` (per dtype), when its
#: rows are at least :data:`INNER_MIN_VECTORS` vectors long. Measured (Intel Xeon, two threads,
#: time by the transposing path over time by the inner kernel, K = 784): float64, M = 32 to
#: 1024, 1.54-3.42 up to 24 rows and 1.22-1.93 at 32, then 0.76-1.85 at 48 (below 1 at M = 32
#: and 64); float32 1.02-3.76 up to 24 rows, then 0.90-2.30 at 32 (below 1 at M = 32 and 64).
#: Shorter rows leave too few multiply-adds per lane sum.
INNER_MAX_ROWS = {np.dtype(np.float32): 24, np.dtype(np.float64): 32}
INNER_MIN_VECTORS = 4
#: ``x @ W`` reduces over ``K`` in slabs of ``KC``, every block of the part once per slab (the
#: blocks after the first slab add to their output): a slab of ``W``'s column strip (``KC`` rows
#: of two vectors, 32 KB) then stays in L1 across the strip's row blocks, and ``x``'s slab in L2
#: across the column blocks. Measured, 512 x 2048 -> 1024, two threads: float32 8.98 -> 5.81 ms
#: (BLAS 8.48), float64 19.2 -> 12.4 ms (BLAS 17.4); 512 gave the same within noise. ``dz @ W.T``
#: runs through the same loop. The MNIST shapes did not change.
KC = 256
#: Rows of ``W`` that ``x @ W`` prefetches ahead of the one it reads (``outer_kernel``'s
#: ``ahead``). A column strip's rows are ``M`` values apart (3.2 KB at 400 float64 columns), a
#: pattern the hardware prefetchers follow poorly, and in training ``W`` comes from L3: the
#: optimizer's update has just streamed it and its state through the cache. Measured (Intel
#: Xeon, two threads, medians of 350 calls, 2-4 processes each): the 784 -> 400 layer's
#: forward right after an AdaGrad update of its weights, float64 batch 20 249-257 -> 212-218
#: us, float32 batch 128 433-453 -> 382-402 us; alone, float32 128 x 896 -> 128 140 -> 114 us.
#: 16 to 64 rows measured alike. ``dz @ W.T`` does not prefetch: it multiplies by a share of
#: ``W`` transposed into scratch just before, and prefetching there cost 10-20 %.
PREFETCH_ROWS = 32
#: ``x @ W`` up to this many rows gives each thread a share of the reduction (rows of ``W``, at
#: the fused update's split: :func:`_split_k`), and adds their outputs up after; above it, each
#: thread computes whole outputs for a share of the columns. In training the update just before
#: left each thread's rows of ``W`` in its own cache, and a share of the columns needs the other
#: thread's half too; whole rows of ``W`` are also a plainer stream. Measured (Intel Xeon, two
#: threads, 20 x 784 -> 400 float64, medians of 400, two processes each): the forward right after
#: an AdaGrad update 200-233 -> 151-152 us, and that update 211-226 -> 179-183 us; the forward
#: alone 151-176 -> 119-124 us. The notebooks' MLP step at batch 20 float64, eight interleaved
#: process pairs: median 0.852 -> 0.830 ms. At batch 128 float32, 784 -> 400 right after an
#: AdaGrad update, four process pairs: forward 325-370 -> 273-305 us, the update 110-125 -> 70-77
#: us; training steps, interleaved pairs: the MLP (eight) median 1.368 -> 1.345 ms, the MNIST CNN
#: (four, Adam) 2.55-2.69 -> 2.51-2.58 ms. Alone, 8 to 512 rows, float32 and float64, the two
#: splits took the same time within noise (one exception: 512 x 784 -> 128 float32, 445-457 ->
#: 368-381 us). Larger batches were not measured in training and keep the columns split.
SPLIT_K_MAX_ROWS = 128


@jit(inline="always")
def _width(a):
    """Columns per block: ``NV`` vectors of ``a``'s dtype."""
    return NV * (VECTOR_BYTES // a.itemsize)


@jit(inline="always")
def _times(a, K, b, b_row, out, out_row, N, width, lo, hi, offs, ahead, k_lo, k_hi, k_first):
    """``out[n*out_row + j] = sum_k a[n*K + k] * b[k*b_row + j]`` for ``n < N``, ``j < width``,
    ``k_lo <= k < k_hi``, over blocks ``lo .. hi-1`` (row block ``r``, column block ``c`` at
    ``c * n_row_blocks + r``); ``offs`` an int64 table of ``2*MR``; ``ahead`` the rows of ``b``
    prefetched ahead (0: none; see :data:`PREFETCH_ROWS`). The sum starts at ``k_first``
    (usually ``k_lo``): from a later ``k_lo`` it adds to ``out``, as every slab after the first
    does.

    Column blocks outermost: the row blocks of one column block then read the same strip of
    ``b`` while it is in L2, so ``b`` (the weights) streams from L3 once per call instead of once
    per row block (20 x 784 -> 400 float64, two threads: 127 -> 96 us)."""
    bw = _width(a)
    nr = -(-N // MR)
    for k0 in range(k_lo, k_hi, KC):
        kc = min(KC, k_hi - k0)
        for block in range(lo, hi):
            n0, j0 = block % nr * MR, block // nr * bw
            for i in range(MR):
                offs[2 * i] = min(n0 + i, N - 1) * K
            _outer(a, k0, 0, offs, 0, b, k0 * b_row + j0, 0, b_row, 1, kc, out,
                   n0 * out_row + j0, out_row, min(MR, N - n0), min(bw, width - j0),
                   k0 > k_first, ahead)


@jit(inline="always")
def _times_transposed(a, K, b, M, out, N, lo, hi, offs):
    """``out[k*M + j] = sum_n a[n*K + k] * b[n*M + j]`` (``a.T @ b``) over blocks ``lo .. hi-1``
    of ``out (K, M)``, row blocks of ``k`` by column blocks of ``j``."""
    bw = _width(a)
    nb = -(-M // bw)
    for block in range(lo, hi):
        k0, j0 = block // nb * MR, block % nb * bw
        for i in range(MR):
            offs[2 * i] = min(k0 + i, K - 1)
        _outer(a, 0, K, offs, 0, b, j0, M, 0, N, 1, out, k0 * M + j0, M, min(MR, K - k0),
               min(bw, M - j0), False, 0)


@jit(inline="always")
def _split_k(K, i, parts):
    """Where part ``i`` of ``parts`` starts its share of ``x @ W``'s reduction over ``K`` rows
    of ``W``: at a row block of the fused update's split (``_adagrad_slot``), so that
    each thread reads the rows of ``W`` that it updated."""
    blocks = -(-K // MR)
    return min(K, blocks * i // parts * MR)


@jit
def _add_parts(out, work, parts):
    """``out += work[p*n : (p+1)*n]`` for ``p < parts``, in that order (``n = out.size``)."""
    n = out.size
    for p in range(parts):
        share = work[p * n:(p + 1) * n]
        for j in range(n):
            out[j] += share[j]


@jit(inline="always")
def _sizes(args_p, i):
    """``(N, K, M, product, offs)`` from a slot's ``args``: the first sizes after the
    addresses, then part ``i``'s offset table."""
    s = carray(args_p, (ARRAYS + _SIZES,))
    N, K, M, product = s[ARRAYS], s[ARRAYS + 1], s[ARRAYS + 2], s[ARRAYS + 3]
    at = ARRAYS + _SIZES + i * _TABLE
    return N, K, M, product, carray(args_p, (at + _TABLE,))[at:]


@jit(inline="always")
def _operands(args_p, work_p, a_size, b_size, out_size):
    """The flat ``a``, ``b`` and ``out`` of a slot, from the addresses in ``args``."""
    s = carray(args_p, (3,))
    return (carray(pointer_like(s[0], work_p), (a_size,)),
            carray(pointer_like(s[1], work_p), (b_size,)),
            carray(pointer_like(s[2], work_p), (out_size,)))


# --- the slot (``_slots``): ``args`` holds the addresses of ``a, b, out``, then ``N, K, M`` and
# the product's code, then one offset table per part. One slot for all the products: each
# slot is a function that Numba compiles on a cold start, ~0.3 s apiece, and the three that
# multiply by ``_times`` share one copy of it (3 slots: ~1.2 s of the MLP's first step). The
# weight gradient spent on AdaGrad's step has a slot of its own (``_adagrad_slot``), which only
# training with AdaGrad compiles, after the first step.

#: Products, as the slot's ``args`` names them.
_TIMES, _TRANSPOSED_TIMES, _TIMES_TRANSPOSED, _TIMES_TRANSPOSED_INNER = 0, 1, 2, 3
_TIMES_SPLIT_K, _TIMES_SLAB = 4, 5
#: Sizes in ``args`` after the addresses: ``N, K, M``, the product, then two more (a slab's
#: rows for ``_TIMES_SLAB``; the AdaGrad slot's own, see there).
_SIZES = 6


def _dense_slot(i, parts, args_p, work_p):
    """Part ``i`` of one product, by the code in ``args``:

    * ``_TIMES``: ``out (N, M) = a (N, K) @ b (K, M)``;
    * ``_TRANSPOSED_TIMES``: ``out (K, M) = a (N, K).T @ b (N, M)``;
    * ``_TIMES_TRANSPOSED``: ``out (N, K) = a (N, M) @ b (K, M).T``: the part's columns ``c0 ..
      c1-1`` of ``out``, from its share of ``b`` transposed into ``work`` (``(M, c1 - c0)`` per
      part, then a vector of scratch for the transposition's row sums, which are not used);
    * ``_TIMES_TRANSPOSED_INNER``: the same product on the inner kernel, the part's row blocks
      of ``b`` against every row of ``a``.
    * ``_TIMES_SPLIT_K``: ``out (N, M) = a (N, K) @ b (K, M)``, the part's share of the
      reduction (:func:`_split_k`) over every block, part 0 into ``out``, part ``i > 0`` into
      ``work[(i - 1) * N * M:]``; the caller adds them up.
    * ``_TIMES_SLAB``: one slab of that share, rows ``k_lo .. k_hi - 1`` of ``b`` (the last two
      sizes), added to what the slabs before it left: the AdaGrad slot calls it.
    """
    N, K, M, product, offs = _sizes(args_p, i)
    if product == _TIMES_TRANSPOSED_INNER:
        a, b, out = _operands(args_p, work_p, N * M, K * M, N * K)
        blocks = -(-K // RA)
        # Row blocks of b outermost: a block's RA rows stay in L1 while every row of a (in L2)
        # passes them, so b streams from memory once.
        for block in range(blocks * i // parts, blocks * (i + 1) // parts):
            k0 = block * RA
            for n0 in range(0, N, RB):
                _inner(b, k0 * M, M, min(RA, K - k0), a, n0 * M, M, min(RB, N - n0), M, out,
                       n0 * K + k0, 1, K)
        return
    if product == _TRANSPOSED_TIMES:
        a, b, out = _operands(args_p, work_p, N * K, N * M, K * M)
        blocks = -(-K // MR) * -(-M // _width(a))
        _times_transposed(a, K, b, M, out, N, blocks * i // parts, blocks * (i + 1) // parts,
                          offs)
        return
    k_first = 0                             # where the sum starts (a later k_lo adds to out)
    if product == _TIMES or product == _TIMES_SPLIT_K or product == _TIMES_SLAB:
        a, b, out = _operands(args_p, work_p, N * K, K * M, N * M)
        blocks = -(-N // MR) * -(-M // _width(a))
        cols, b_row, out_row, width = K, M, M, M
        ahead = PREFETCH_ROWS
        if product == _TIMES:
            lo, hi, k_lo, k_hi = blocks * i // parts, blocks * (i + 1) // parts, 0, K
        else:                   # every block over the part's rows of b; after part 0, into work
            k_first = _split_k(K, i, parts)
            lo, hi, k_lo, k_hi = 0, blocks, k_first, _split_k(K, i + 1, parts)
            if product == _TIMES_SLAB:
                s = carray(args_p, (ARRAYS + _SIZES,))
                k_lo, k_hi = s[ARRAYS + 4], s[ARRAYS + 5]
            if i > 0:
                out = carray(work_p, (i * N * M,))[(i - 1) * N * M:]
    else:                                   # _TIMES_TRANSPOSED: b's share transposed, then _TIMES
        a, b_rows, out_all = _operands(args_p, work_p, N * M, K * M, N * K)
        bw = _width(a)
        V = VECTOR_BYTES // a.itemsize
        col_blocks = -(-K // bw)
        c0 = min(K, col_blocks * i // parts * bw)
        c1 = min(K, col_blocks * (i + 1) // parts * bw)
        w = c1 - c0
        share = M * -(-col_blocks // parts) * bw + V
        work = carray(work_p, (parts * share,))[i * share:(i + 1) * share]
        b, sums = work[:M * w], work[share - V:]
        for cb in range(0, w, V):
            for ob in range(0, M, V):
                rows = min(V, w - cb)
                transpose_block(b_rows, (c0 + cb) * M + ob, M, rows, min(V, M - ob), b,
                                ob * w + cb, w, rows, sums, 0)
        out = out_all[c0:]
        cols, b_row, out_row, width = M, w, K, w
        lo, hi = 0, -(-N // MR) * -(-w // bw)
        ahead = 0               # its share of b, transposed just now, is in cache
        k_lo, k_hi = 0, cols
    # One call for all three, so that the slot holds one copy of the micro-kernel's loop.
    _times(a, cols, b, b_row, out, out_row, N, width, lo, hi, offs, ahead, k_lo, k_hi, k_first)


def _adagrad_slot(i, parts, args_p, work_p):
    """Part ``i`` of ``a (N, K).T @ b (N, M)`` spent on an AdaGrad step of ``W (K, M)`` (the
    third array) with the state ``h (K, M)`` (the fourth): the part's row blocks of the product,
    each into scratch and then onto the same rows of ``W`` and ``h``. ``work`` holds ``lr`` and
    ``eps``, then ``MR * M`` values of scratch per part. A slot of its own: only AdaGrad's
    training compiles it (~0.6 s), on its first use.

    With ``N2 > 0`` (the fourth size), also the part's share of the next batch's product
    ``x_next (N2, K) @ W`` (the fifth array) from the updated ``W``, bit for bit as
    ``_TIMES_SPLIT_K`` computes it: as soon as the part has updated a slab of ``W``'s rows, it
    calls the dense slot (at the address in the fifth size) for that slab, while the rows are
    in cache. Part 0 writes the sixth array, part ``i > 0`` ``work`` after the scratch; the
    caller adds them up. The dense slot's ``args`` for part ``i`` come after the tables.
    Called, not inlined: a second copy of the micro-kernel here cost ~0.4 s of compilation,
    and the dense slot is compiled already (every forward runs it)."""
    N, K, M, N2, offs = _sizes(args_p, i)
    a, b, W = _operands(args_p, work_p, N * K, N * M, K * M)
    s = carray(args_p, (ARRAYS + _SIZES,))
    h = carray(pointer_like(s[3], work_p), (K * M,))
    rows_per_part = MR * M
    work = carray(work_p, (2 + parts * rows_per_part + (parts - 1) * N2 * M,))
    lr, eps = work[0], work[1]
    grad = work[2 + i * rows_per_part:2 + (i + 1) * rows_per_part]
    # The dense slot's args for a _TIMES_SLAB call: addresses, sizes, its parts' tables.
    size = ARRAYS + _SIZES + parts * _TABLE
    at = ARRAYS + _SIZES + parts * _TABLE + i * size
    slab_args = carray(args_p, (at + size,))[at:]
    partials = work[2 + parts * rows_per_part:]
    blocks = -(-K // MR)
    slab, k_last = _split_k(K, i, parts), _split_k(K, i + 1, parts)    # the product's next slab
    for block in range(blocks * i // parts, blocks * (i + 1) // parts):
        k0 = block * MR
        rows = min(MR, K - k0)
        # _times_transposed's loop over one row block, without its division and remainder per
        # block (through it, the 784 -> 400 float64 step took 289-309 us against 274-287).
        for r in range(MR):
            offs[2 * r] = min(k0 + r, K - 1)
        for j0 in range(0, M, _width(a)):
            _outer(a, 0, K, offs, 0, b, j0, M, 0, N, 1, grad, j0, M, rows,
                   min(_width(a), M - j0), False, 0)
        # W's rows k0 .. k0 + rows - 1 are one contiguous span, as their gradient in grad.
        span = slice(k0 * M, (k0 + rows) * M)
        adagrad_span(W[span], grad[:rows * M], h[span], lr, eps)
        # Every slab that this block completes: one, or two where the block ends a full slab
        # and then the part's short last one (one part of K = 260: [0, 256) and [256, 260)
        # both end in the block at 250; an audit found the short one left out).
        while N2 > 0 and slab < k_last and min(slab + KC, k_last) <= k0 + rows:
            end = min(slab + KC, k_last)
            slab_args[0], slab_args[1], slab_args[2] = s[4], s[2], s[5]   # x_next, W, out
            slab_args[ARRAYS], slab_args[ARRAYS + 1], slab_args[ARRAYS + 2] = N2, K, M
            slab_args[ARRAYS + 3], slab_args[ARRAYS + 4] = _TIMES_SLAB, slab
            slab_args[ARRAYS + 5] = end
            call_slot(s[ARRAYS + 4], i, parts, slab_args, partials)
            slab = end


# --- the Python side --------------------------------------------------------------------------

def pays(N, K, M, dtype, backward=False):
    """Whether the products of an ``(N, K) @ (K, M)`` layer go to the micro-kernel: its forward
    product, or with ``backward`` its gradients' (:data:`MIN_MACS_BACKWARD`)."""
    dtype = np.dtype(dtype)
    least = (MIN_MACS_BACKWARD if backward and M > NARROW_MAX and N >= MIN_ROWS_BACKWARD
             else MIN_MACS)
    return (AVAILABLE and N * K * M >= least and N <= MAX_ROWS
            and (MAX_MACS is None or N * K * M <= MAX_MACS[dtype])
            and (N * K + K * M + N * M) * dtype.itemsize <= MAX_BYTES)


#: The work "buffer" of the slots that use none: its dtype selects theirs. Never written, so
#: every thread can share it (``scratch`` cost ~0.5 us of a ~4.5 us overhead per product).
_NO_WORK = {np.dtype(t): np.zeros(1, t) for t in (np.float32, np.float64)}


def _product(product, a, b, out, N, K, M, blocks, work_size=None):
    """Run ``product`` over ``blocks`` blocks of ``N * K * M`` multiply-adds; ``work_size(parts)``
    sizes its work buffer (None: the product uses none)."""
    parts = part_count(blocks) if N * K * M >= SPLIT_MIN_MACS else 1
    work = _NO_WORK[a.dtype] if work_size is None else scratch(work_size(parts), a.dtype)
    run(_dense_slot, parts, (a, b, out), (N, K, M, product, 0, 0), work, calls_blas=False,
        room=parts * _TABLE)
    return out


def _update_parts(N, K, M):
    """Parts of :func:`transposed_times_adagrad_`: row blocks of ``W`` split over the threads."""
    return part_count(-(-K // MR)) if N * K * M >= SPLIT_MIN_MACS else 1


def _times_parts(N, K, M):
    """Parts of :func:`times`'s split reduction; 1 where it splits none (each output is then
    summed whole, whether or not its columns are split over the threads)."""
    return part_count(-(-K // MR)) if N <= SPLIT_K_MAX_ROWS and N * K * M >= SPLIT_MIN_MACS \
        else 1


def fuses_next_product(N, N2, K, M, dtype):
    """Whether :func:`transposed_times_adagrad_` of ``N`` rows can multiply a next batch of
    ``N2`` rows by the updated ``W (K, M)`` bit for bit as :func:`times` does: both on the
    micro-kernel, not one row (``dense_forward`` sends that to BLAS), and ``times``' reduction
    split as the update splits ``W``'s rows."""
    return (N2 > 1 and pays(N, K, M, dtype, backward=True) and pays(N2, K, M, dtype)
            and _times_parts(N2, K, M) == _update_parts(N, K, M))


def transposed_times_adagrad_(a, b, W, h, lr, eps, x_next=None):
    """AdaGrad on ``W (K, M)`` with state ``h (K, M)`` and the gradient ``a (N, K).T @ b (N,
    M)``, which is never stored: bit for bit ``adagrad_update_(W, transposed_times(a, b), h,
    lr, eps)``. All four C-contiguous, of one float dtype, apart in memory.

    With ``x_next (N2, K)`` (only where :func:`fuses_next_product` says so), returns ``x_next @
    W`` of the updated ``W`` too, bit for bit ``times(x_next, W)``, each slab of ``W``
    multiplied while the update has left it in cache: ``times`` after the update read ``W``
    back from L3. Measured (Intel Xeon, two threads, 20 x 784 -> 400 float64): a prototype
    that inlined the product, medians of 9 x 300 calls in each of four processes, the update
    and then ``times`` 408-430 us, fused 383-402 us; this version in the notebooks' MLP
    training (600 steps, three processes), 440 -> 411-424 us."""
    (N, K), M = a.shape, b.shape[1]
    parts = _update_parts(N, K, M)
    if x_next is None:
        N2, x_next, out = 0, a, a           # stand-ins, never read or written
    else:
        N2, out = x_next.shape[0], np.empty((x_next.shape[0], M), a.dtype)
    work = scratch(2 + parts * MR * M + (parts - 1) * N2 * M, a.dtype)
    work[0], work[1] = lr, eps          # rounded to the dtype once, as adagrad_update_ does
    dense = slot_address(_dense_slot, a.dtype) if N2 else 0
    run(_adagrad_slot, parts, (a, b, W, h, x_next, out), (N, K, M, N2, dense, 0), work,
        calls_blas=False, room=parts * (_TABLE + ARRAYS + _SIZES + parts * _TABLE))
    if N2 == 0:
        return None
    _add_parts(out.reshape(-1), work[2 + parts * MR * M:], parts - 1)
    return out


def inner_pays(N, M, dtype):
    """Whether ``a (N, M) @ b (K, M).T`` goes to the inner kernel (:data:`INNER_MAX_ROWS`)."""
    dtype = np.dtype(dtype)
    return N <= INNER_MAX_ROWS[dtype] and M >= INNER_MIN_VECTORS * lanes(dtype)


def _block_width(dtype):
    """Columns per block (``_width`` on the Python side)."""
    return NV * VECTOR_BYTES // np.dtype(dtype).itemsize


def times(a, b):
    """``a (N, K) @ b (K, M)``, both C-contiguous of one float dtype, every size at least 1.
    Up to :data:`SPLIT_K_MAX_ROWS` rows the threads share the reduction, not the columns."""
    (N, K), M = a.shape, b.shape[1]
    out = np.empty((N, M), a.dtype)
    parts = _times_parts(N, K, M)
    if parts > 1:
        work = scratch((parts - 1) * N * M, a.dtype)
        run(_dense_slot, parts, (a, b, out), (N, K, M, _TIMES_SPLIT_K, 0, 0), work,
            calls_blas=False, room=parts * _TABLE)
        _add_parts(out.reshape(-1), work, parts - 1)
        return out
    blocks = -(-N // MR) * -(-M // _block_width(a.dtype))
    return _product(_TIMES, a, b, out, N, K, M, blocks)


def transposed_times(a, b):
    """``a (N, K).T @ b (N, M)`` (as :func:`times`)."""
    (N, K), M = a.shape, b.shape[1]
    out = np.empty((K, M), a.dtype)
    blocks = -(-K // MR) * -(-M // _block_width(a.dtype))
    return _product(_TRANSPOSED_TIMES, a, b, out, N, K, M, blocks)


def times_transposed(a, b):
    """``a (N, M) @ b (K, M).T`` (as :func:`times`)."""
    (N, M), K = a.shape, b.shape[0]
    out = np.empty((N, K), a.dtype)
    if inner_pays(N, M, a.dtype):
        return _product(_TIMES_TRANSPOSED_INNER, a, b, out, N, K, M, -(-K // RA))
    bw = _block_width(a.dtype)
    col_blocks = -(-K // bw)
    # As the slot's share: its columns of b transposed, then one vector of row sums.
    return _product(_TIMES_TRANSPOSED, a, b, out, N, K, M, col_blocks,
                    lambda parts: parts * (M * -(-col_blocks // parts) * bw + bw // NV))
