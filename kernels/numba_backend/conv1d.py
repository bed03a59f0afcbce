"""1-D convolution (cross-correlation, as PyTorch's ``conv1d``) in Numba, four strategies.

Shapes: ``x (N, C_in, L)``, ``W (C_out, C_in, K)``, ``b (C_out,)``, ``y (N, C_out, L_out)`` with
``L_out = (L + padding_left + padding_right - dilation*(K-1) - 1) // stride + 1``.

A fused activation (``"relu"``, ``"sigmoid"``, ``"tanh"``) is one flat vectorised pass over ``y``
in the forward and over ``dout`` (with ``y``) in the backward: cheaper than a separate activation
layer, which allocates and re-reads, and than activating inside the transposition passes, whose
rows are too short to vectorise (measured 0.7 ms per CNN step there against 0.1 ms flat).
``need_dx=False`` (a network's first layer) skips the input gradient: the dcols GEMM and col2im,
or the dx half of the direct loops.

direct (few channels, long rows)
    Nested loops, batch items in parallel (``prange`` over ``n``; each item writes only its own
    output rows). For each output row and each tap ``(c, k)`` the range of output positions whose
    input index falls inside ``x`` is computed once, so the innermost loop over output positions
    has no padding test and vectorises.
blocked (many channels, AVX-512 hosts)
    Register-blocked micro-kernels written as LLVM vector IR, no im2col and no BLAS: see
    ``conv1d_blocked``. Measured against the gemm path below (``python -m fastnet bench
    --family conv1d``, float32, batch 128, 2 threads, forward+backward against PyTorch):
    C28->64 L28 0.79x -> 1.11x, C64->128 L14 0.68x -> 0.90x, C32->64 L1024 0.64x -> 2.13x;
    C64->64 stride 2 0.78x -> 0.73x. Non-finite weights keep the gemm path backward (see
    :func:`conv1d_backward`).
gemm (many channels, elsewhere)
    im2col into a column buffer, one BLAS GEMM per batch chunk (BLAS does the multiply-adds at
    ~170 GFLOP/s on this machine), and Numba passes around it: the transposition of the GEMM rows
    into ``(N, C_out, L_out)`` with the bias (forward), the transposition of ``dout`` into rows
    with the bias-gradient sums, and col2im (backward). The batch is processed in chunks of about
    ``GEMM_CHUNK_BYTES`` so the buffers stay cache-sized and memory stays bounded for long inputs.
    Where one item fills a chunk (long signals) and dilation is 1, the "windows" chain skips
    im2col: its GEMMs read the windows in place from the padded item (see the section below).

    The whole chain of a batch part (passes and GEMMs) is one compiled function that calls BLAS
    itself (``_blas``). Once the passes move ``SPLIT_MIN_VALUES`` values the batch is cut into
    one part per thread, the parts side by side in one ``prange`` loop (``_slots``), BLAS
    single-threaded meanwhile: one thread per core, and no GIL anywhere in the call. A smaller
    chain runs as one part on the calling thread, BLAS single-threaded too. The passes are not
    parallel loops of their own: as OpenMP regions between multi-threaded BLAS calls they set the
    two thread pools spinning against each other on this 2-core machine (12 ms per step instead
    of 0.1-0.5 ms).

    Measured against the previous design (the same parts on Python threads, whose hand-off costs
    50-80 us here), float32, batch 128, 2 threads, calls back to back: forward C28->64 L28
    0.536 -> 0.317 ms, C64->128 L14 0.600 -> 0.556 ms; forward+backward against PyTorch went
    from 0.93-0.98x to 1.02-1.20x (``python -m fastnet bench``) on a loaded host; on a quiet one
    PyTorch's oneDNN is ahead at the many-channel float32 shapes (0.64-0.83x: OpenBLAS's GEMM
    alone runs at ~120 GFLOP/s per core here, and the copies add 30-40 %). Where ``_blas``
    is not available (NumPy built on another BLAS), the same chain runs serially with NumPy's
    ``matmul``, BLAS threading itself.

rows (many channels, few output positions in all, or short rows of many weights)
    One BLAS GEMM whose rows are the output positions, against ``W`` as it lies: see
    ``conv1d_rows``. The blocked and gemm paths copy ``W`` into a tap-major layout first, which
    is the whole cost where ``N * L_out`` is small (a late layer, one sample); the blocked
    kernel's vectors run along the positions, mostly idle over short rows.

:func:`_use_gemm` picks direct loops or a many-channel strategy per shape (measurements in
its docstring, taken against the gemm path); ``conv1d_rows.pays`` picks the rows path among
those, and, where the blocked path is available, ``pays_forward`` and ``pays_backward`` each
direction's beyond it; ``conv1d_blocked.AVAILABLE`` blocked or gemm.

Determinism: no value is ever summed by two threads. The direct path writes ``dW`` and ``db``
as one partial row per batch item and sums them over the batch in order; the gemm path's ``dW``
comes from BLAS (one GEMM per chunk, accumulated in order, then parts added in order) and its
``db`` from serial loops. Repeated calls with the same thread count give bit-identical results.
"""

import numpy as np
from numba import carray, prange

from .. import conv1d_output_length
from . import _blas, conv1d_blocked, conv1d_rows
from ._blas import gemm, gemm_strided
from ._config import jit, jit_parallel
from ._scalar import ACT_CODE, NONE, RELU, activation_grad_row, relu_row_
from .activations import activate_
from .checks import all_finite
from ._slots import part_count, pointer_like, run, scratch
from ._transposition import transpose, transpose_tiled


#: Target size of the im2col buffer plus the GEMM's output rows, per batch chunk: well inside a
#: core's L2 (1 MB here; presumably why it pays most while the other core runs the other branch
#: of a CNN). Measured on the MNIST CNN's training step (both branches side by side, 40-50 paired
#: rounds, three runs): 128 KB is 4-6 % faster than 4 MB (a whole batch per chunk); 64 KB gains
#: no more.
GEMM_CHUNK_BYTES = 128 << 10
#: ...but at least this many GEMM rows per output channel. Every chunk re-reads the weights and,
#: backward, adds into the ``dW`` accumulator, both ``C_out`` columns wide, so a chunk of ``M``
#: rows carries about ``C_out / M`` of extra traffic: with 128 KB alone, C64->128 L14 backward was
#: 11-15 % slower than with 4 MB (7 items, M = 98); with this floor every benchmarked
#: many-channel shape is within +-2 % of 4 MB.
GEMM_MIN_ROWS_PER_CHANNEL = 8
#: Values read or written by the GEMM path's passes (im2col, transpositions, col2im) from which a
#: call splits its batch over threads: the measured break-even, within this machine's noise.
#: Below it waking the other thread (25-50 us here when it sleeps, as between the layers of a
#: training step) costs more than the halved work saves. Measured after 0.3 ms idle, float32,
#: C28->32 L28, one part / two (two processes): forward N=64 (207 k values) 0.21-0.23 /
#: 0.26-0.27 ms; backward N=48 (306 k) 0.32-0.36 / 0.31-0.36 ms, N=64 (408 k) 0.42-0.50 /
#: 0.38-0.39 ms.
SPLIT_MIN_VALUES = 300_000


def _use_gemm(C_in, C_out, K, L_out, stride):
    """Whether im2col + GEMM beats the direct loops for this shape (the choice is by measurement).

    ``work = C_in*K*C_out`` multiply-adds per output position. The direct loops cost about
    ``work * (0.3 ns * L_out + 70 ns)`` per batch item (short rows pay the loop overhead), the GEMM
    path about ``L_out * (70 ns + 1.3 ns * (C_in*K + C_out) + 0.07 ns * work)`` (the data-movement
    passes are per output position, the GEMM per multiply-add). Measured forward+backward,
    float32, N=64, one thread, ms (direct / gemm):

    ====================  ============  ============  ============  ============
    C_in, K, C_out (work)  L_out = 28    L_out = 100   L_out = 300   L_out = 784
    ====================  ============  ============  ============  ============
     1, 3,  8    (24)      0.12 / 0.17   0.14 / 0.53   0.23 / 1.48   0.48 / 4.1
     1, 3, 32    (96)      0.33 / 0.22   0.50 / 0.62   0.61 / 2.07   1.88 / 8.5
     2, 5, 32   (320)      0.93 / 0.36   1.40 / 1.26   1.83 / 3.17   5.1 / 11.8
     4, 5, 32   (640)      1.79 / 0.45   2.88 / 1.54   5.3 / 5.2     9.4 / 13.9
     8, 3, 32   (768)      2.37 / 0.37   3.44 / 1.30   6.4 / 5.0     12.3 / 12.2
    16, 3, 32  (1536)      4.56 / 0.54   6.8 / 2.00    12.3 / 7.4    19.4 / 16.3
    32, 5, 64 (10240)      24.8 / 1.92   37.1 / 7.2    72.6 / 23.0   138 / 52
    ====================  ============  ============  ============  ============

    The break-even lies near ``work = 2*L_out + 32`` for stride 1 (with two threads the direct
    loops, parallel over the batch, gain a little more than the GEMM path). With stride > 1 the
    direct loops' strided loads do not vectorise (N=128, C_in=4, K=3, C_out=16, L_out=100, stride 2:
    direct 3.6 ms, gemm 1.1 ms), so the GEMM takes over much earlier.
    """
    work = C_in * K * C_out
    if stride > 1:
        return work >= L_out // 8 + 16
    return work >= 2 * L_out + 32


def _padding_fits(L, L_out, K, stride, padding_left, dilation):
    """Whether im2col's zero-padded copy of one item (``_padded_length`` rows) stays within
    about twice the item. It is allocated inside the compiled chain, where a failed allocation
    cannot raise (the slot would return with its output unwritten), so a padding, stride or
    dilation of many times the input length (``padding=10**8``) takes the direct loops instead,
    which handle the padding arithmetically and allocate nothing of its size."""
    padded = max(padding_left + L, (L_out - 1) * stride + (K - 1) * dilation + 1)  # as there
    return padded <= 2 * L + 64


@jit
def _valid_range(offset, stride, L, L_out):
    """Output positions ``[lo, hi)`` whose input index ``l*stride + offset`` lies in ``[0, L)``."""
    lo = 0
    if offset < 0:
        lo = (-offset + stride - 1) // stride
    hi = 0
    if L - 1 - offset >= 0:
        hi = (L - 1 - offset) // stride + 1
    hi = min(hi, L_out)
    lo = min(lo, hi)
    return lo, hi


# --- direct loops (few channels) -----------------------------------------------------------------
#
# Unit-stride inner loops run over 0-based slices (``ys[i] += w * xs[i]``): an index that is
# provably non-negative spares Numba's negative-index wraparound test, which otherwise blocks
# vectorisation (measured: 4.1 ms -> 0.47 ms at N=128, L=784, C_out=16, K=5). Strided loads do
# not vectorise anyway, so stride > 1 keeps a plain index loop (and :func:`_use_gemm` sends
# nearly all strided shapes to the GEMM path).

@jit
def _forward_item(xn, W, b, stride, padding_left, dilation, yn):
    """One batch item: ``yn (C_out, L_out)`` from ``xn (C_in, L)``."""
    C_in, L = xn.shape
    C_out, _, K = W.shape
    L_out = yn.shape[1]
    zero = yn.dtype.type(0)
    for o in range(C_out):
        yr = yn[o]
        bo = b[o]
        for l in range(L_out):
            yr[l] = bo
        for c in range(C_in):
            xr = xn[c]
            for k in range(K):
                w = W[o, c, k]
                off = k * dilation - padding_left
                lo, hi = _valid_range(off, stride, L, L_out)
                ys = yr[lo:hi]
                if stride == 1:
                    xs = xr[lo + off:hi + off]
                    for i in range(hi - lo):
                        ys[i] += w * xs[i]
                else:
                    for i in range(hi - lo):
                        ys[i] += w * xr[(lo + i) * stride + off]
                # The outputs outside [lo, hi) read this tap from the padding: 0 * w, which is
                # NaN for an inf or NaN weight (as explicit zero padding and the GEMM path
                # give; see the padding convention in fastnet.functional_conv) and else 0.
                pad = w * zero
                if pad != zero:
                    for l in range(lo):
                        yr[l] += pad
                    for l in range(hi, L_out):
                        yr[l] += pad


@jit
def _backward_item(dn, xn, W, stride, padding_left, dilation, dxn, dWn, dbn, need_dx):
    """One batch item: ``dxn`` (if ``need_dx``) and this item's share ``dWn``, ``dbn`` of dW
    and db."""
    C_in, L = xn.shape
    C_out, _, K = W.shape
    L_out = dn.shape[1]
    zero = dn.dtype.type(0)
    if need_dx:
        for c in range(C_in):
            for i in range(L):
                dxn[c, i] = zero
    for o in range(C_out):
        dr = dn[o]
        s = zero
        for l in range(L_out):
            s += dr[l]
        dbn[o] = s
        for c in range(C_in):
            xr = xn[c]
            dxr = dxn[c]
            for k in range(K):
                w = W[o, c, k]
                off = k * dilation - padding_left
                lo, hi = _valid_range(off, stride, L, L_out)
                ds = dr[lo:hi]
                acc = zero
                if stride == 1:
                    xs = xr[lo + off:hi + off]
                    dxs = dxr[lo + off:hi + off]
                    for i in range(hi - lo):
                        acc += ds[i] * xs[i]
                    if need_dx:
                        for i in range(hi - lo):
                            dxs[i] += w * ds[i]
                else:
                    for i in range(hi - lo):
                        j = (lo + i) * stride + off
                        acc += ds[i] * xr[j]
                    if need_dx:
                        for i in range(hi - lo):
                            dxr[(lo + i) * stride + off] += w * ds[i]
                # The padding's zeros times the gradient there: NaN where that gradient is inf
                # or NaN (as explicit zero padding and the GEMM path give), else nothing.
                for l in range(lo):
                    acc += dr[l] * zero
                for l in range(hi, L_out):
                    acc += dr[l] * zero
                dWn[o, c, k] = acc


@jit_parallel
def _direct_forward(x, W, b, stride, padding_left, dilation, y):
    for n in prange(x.shape[0]):
        _forward_item(x[n], W, b, stride, padding_left, dilation, y[n])


@jit_parallel
def _direct_backward(dout, x, W, stride, padding_left, dilation, dx, dW_rows, db_rows, need_dx):
    """``dx`` (if ``need_dx``; else an untouched dummy ``(N, C_in, 0)``); ``dW_rows[n]``,
    ``db_rows[n]``: batch item ``n``'s shares, summed by the caller."""
    for n in prange(x.shape[0]):
        _backward_item(dout[n], x[n], W, stride, padding_left, dilation, dx[n], dW_rows[n],
                       db_rows[n], need_dx)


# --- im2col + GEMM (many channels): serial passes, see the module docstring --------------------
#
# Column layout: ``cols[n*L_out + l, k*C_in + c] = xpad[n, c, l*stride + k*dilation]``, tap-major
# and channel-last, so each (row, tap) is one contiguous run of C_in values (3-5x faster to fill
# than the ``c*K + k`` order, measured). With it the GEMMs are ``cols @ W_tap`` (forward),
# ``cols.T @ d_rows`` (dW) and ``d_rows @ W_tap.T`` (dcols), the fastest operand orders of those
# measured with OpenBLAS here (160-180 GFLOP/s at the benchmark shapes).

@jit
def _im2col(x, K, stride, padding_left, dilation, cols):
    """``cols[n*L_out + l, k*C_in + c] = xpad[n, c, l*stride + k*dilation]`` (0 in the padding).

    Each item is first transposed (``_transposition.transpose``) into a zero-padded ``(L_pad,
    C_in)`` buffer, so the strided gather happens once per element instead of once per tap and
    every tap is a contiguous copy without a padding test; with dilation 1 a whole row of
    ``cols`` is one contiguous run of the buffer (its taps read consecutive buffer rows)."""
    N, C_in, L = x.shape
    L_out = cols.shape[0] // N
    KC = K * C_in
    xt = np.zeros((_padded_length(L, L_out, K, stride, padding_left, dilation), C_in),
                  dtype=x.dtype)                         # the padding rows stay 0
    flat = xt.reshape(-1)
    for n in range(N):
        transpose(x[n], xt[padding_left:padding_left + L])
        for l in range(L_out):
            row = cols[n * L_out + l]
            if dilation == 1:
                start = l * stride * C_in
                src = flat[start:start + KC]
                for j in range(KC):
                    row[j] = src[j]
            else:
                for k in range(K):
                    src = xt[l * stride + k * dilation]
                    seg = row[k * C_in:(k + 1) * C_in]
                    for c in range(C_in):
                        seg[c] = src[c]


# --- windows: the GEMMs read the padded item in place (dilation 1, long items) -----------------
#
# With dilation 1, the window of output position ``l`` is one contiguous run of the padded,
# transposed item ``xt (L_pad, C_in)``: ``K*C_in`` values from ``xt[l*stride]``. im2col copies
# every window into a row of ``cols``; but BLAS only needs each row of a matrix contiguous and
# rows at least a row apart, so every ``q``-th window (``q = ceil(K / stride)``, windows
# ``q*stride*C_in >= K*C_in`` values apart) already is a matrix, in place. ``q`` GEMMs (one per
# residue ``r`` of ``l`` mod ``q``) then do the work of the one on ``cols``, without the copy of
# ``K/stride`` times the input that im2col makes; their output rows are every ``q``-th row of
# ``y_rows``. Backward, the dx GEMMs add into ``dxt`` the same way (``beta = 1``; the rows of
# one GEMM do not overlap), replacing col2im's gather. Used where a batch chunk is one item (long
# signals: the GEMMs of one item are big enough; see ``_work``), as slots of their own
# (:func:`_windows_forward_slot`), so that a CNN on short signals never compiles them. Measured at
# N64 C32 L1024 -> C64 K5 p2, float32, two threads, 5 alternating rounds: forward 9.8 ms,
# backward 17.3 ms, against 10.2 and 20.0 ms through im2col (36-39 ms for both before the
# windows chain and the transposition rule of ``_transposition.transpose``).

@jit
def _windows_forward_item(xn, W_tap, b, K, stride, padding_left, xt, y_rows, yn):
    """One item's forward, ``yn (C_out, L_out)`` from ``xn (C_in, L)``, through ``xt (L_pad,
    C_in)`` (its padding rows 0) and ``y_rows (L_out, C_out)``."""
    C_in, L = xn.shape
    C_out, L_out = yn.shape
    q = -(-K // stride)
    transpose_tiled(xn, xt[padding_left:padding_left + L])
    x_flat, y_flat = xt.reshape(-1), y_rows.reshape(-1)
    for r in range(min(q, L_out)):
        gemm_strided(False, False, (L_out - r + q - 1) // q, C_out, K * C_in, x_flat,
                     r * stride * C_in, q * stride * C_in, W_tap.reshape(-1), 0, C_out, 0.0,
                     y_flat, r * C_out, q * C_out)
    transpose_tiled(y_rows, yn)
    for o in range(C_out):
        yr = yn[o]
        bo = b[o]
        for l in range(L_out):
            yr[l] += bo


@jit
def _windows_backward_item(gn, xn, W_tap, K, stride, padding_left, xt, d_rows, dxt, dxn, dW_tap,
                           db, beta, need_dx):
    """One item's backward from its gradient ``gn (C_out, L_out)`` (activation applied): adds to
    ``db``, sets (``beta = 0``) or adds to (``beta = 1``) ``dW_tap (K*C_in, C_out)``, and writes
    ``dxn`` if ``need_dx``; ``xt``, ``dxt (L_pad, C_in)``, ``d_rows (L_out, C_out)`` are work."""
    C_in, L = xn.shape
    C_out, L_out = gn.shape
    KC = K * C_in
    q = -(-K // stride)
    transpose_tiled(xn, xt[padding_left:padding_left + L])
    transpose_tiled(gn, d_rows)
    for o in range(C_out):
        gr = gn[o]
        s = gn.dtype.type(0)
        for l in range(L_out):
            s += gr[l]
        db[o] += s
    x_flat, d_flat, W_flat = xt.reshape(-1), d_rows.reshape(-1), W_tap.reshape(-1)
    for r in range(min(q, L_out)):
        gemm_strided(True, False, KC, C_out, (L_out - r + q - 1) // q, x_flat, r * stride * C_in,
                     q * stride * C_in, d_flat, r * C_out, q * C_out, beta if r == 0 else 1.0,
                     dW_tap.reshape(-1), 0, C_out)
    if need_dx:
        dxt[:] = 0
        dx_flat = dxt.reshape(-1)
        for r in range(min(q, L_out)):
            gemm_strided(False, True, (L_out - r + q - 1) // q, KC, C_out, d_flat, r * C_out,
                         q * C_out, W_flat, 0, C_out, 1.0, dx_flat, r * stride * C_in,
                         q * stride * C_in)
        transpose_tiled(dxt[padding_left:padding_left + L], dxn)


@jit
def _padded_length(L, L_out, K, stride, padding_left, dilation):
    """Rows of the padded, transposed item that the windows read: the left padding, ``L``, and
    as much right padding as the last window reaches."""
    return max(padding_left + L, (L_out - 1) * stride + (K - 1) * dilation + 1)


@jit
def _col2im(dcols, K, stride, padding_left, dilation, dx):
    """``dx[n, c, p] = sum of dcols[n*L_out + l, k*C_in + c]`` over the (l, k) that read ``p``.

    A gather: each input position sums its (at most ``K``) column segments into one row of an
    ``(L, C_in)`` buffer, contiguous adds that write each row once, and the buffer is transposed
    into ``dx[n]``. Measured against scattering the segments straight into ``dx`` (adds with a
    stride of ``L``), one thread: N=64 C64 L14 K3 0.066 -> 0.037 ms, N=128 C28 L28 0.15 -> 0.12
    ms."""
    N, C_in, L = dx.shape
    L_out = dcols.shape[0] // N
    zero = dx.dtype.type(0)
    acc = np.empty((L, C_in), dtype=dx.dtype)
    for n in range(N):
        for p in range(L):
            a = acc[p]
            for c in range(C_in):
                a[c] = zero
            for k in range(K):
                q = p + padding_left - k * dilation          # = l * stride for a window l
                if q < 0 or q % stride != 0 or q // stride >= L_out:
                    continue
                seg = dcols[n * L_out + q // stride, k * C_in:(k + 1) * C_in]
                for c in range(C_in):
                    a[c] += seg[c]
        transpose(acc, dx[n])


@jit
def _rows_to_channels(y_rows, b, y):
    """``y[n, o, l] = y_rows[n*L_out + l, o] + b[o]``."""
    N, C_out, L_out = y.shape
    for n in range(N):
        block = y_rows[n * L_out:(n + 1) * L_out]
        yn = y[n]
        for o in range(C_out):
            bo = b[o]
            for l in range(L_out):
                yn[o, l] = block[l, o] + bo


@jit
def _channels_to_rows(dout, d_rows, db):
    """``d_rows[n*L_out + l, o] = dout[n, o, l]``; adds ``sum_{n,l} dout[n, o, l]`` to ``db[o]``."""
    N, C_out, L_out = dout.shape
    for n in range(N):
        block = d_rows[n * L_out:(n + 1) * L_out]
        dn = dout[n]
        for o in range(C_out):
            s = dout.dtype.type(0)
            for l in range(L_out):
                g = dn[o, l]
                block[l, o] = g
                s += g
            db[o] += s


# --- the chain of one batch part, all in Numba (BLAS through ``_blas``) ------------------------
#
# Each is a slot (``_slots``): part ``i`` of ``parts``, its arrays rebuilt from the addresses and
# sizes in ``args``, compiled once per dtype as a C function that ``_slots.run`` calls by address.

@jit(inline="always")          # as _blas.gemm: a literal 0 start would compile a second copy
def _take(work, start, m, w):
    """The matrix ``(m, w)`` at ``work[start:]``, and where the next one starts: on a 16-element
    boundary (64 bytes or more, as BLAS prefers)."""
    return work[start:start + m * w].reshape((m, w)), start + -(-m * w // 16) * 16


@jit(inline="always")
def _forward_part(i, parts, args_p, work_p):
    """A forward slot's arguments as arrays: ``(a, x, W_tap, b, y, work)``, ``a`` the int64
    ``args`` (sizes from ``a[7]``, see :func:`_forward_slot`), ``x`` and ``y`` part ``i``'s
    items, ``work`` its share of the scratch buffer."""
    a = carray(args_p, (19,))
    N, C_in, L, C_out, L_out, K, work_len = a[7], a[8], a[9], a[10], a[11], a[12], a[18]
    n0, n1 = N * i // parts, N * (i + 1) // parts
    share = work_len // parts
    x = carray(pointer_like(a[0], work_p), (N, C_in, L))[n0:n1]
    W_tap = carray(pointer_like(a[1], work_p), (K * C_in, C_out))
    b = carray(pointer_like(a[2], work_p), (C_out,))
    y = carray(pointer_like(a[3], work_p), (N, C_out, L_out))[n0:n1]
    work = carray(work_p, (work_len,))[i * share:(i + 1) * share]
    return a, x, W_tap, b, y, work


@jit(inline="always")
def _backward_part(i, parts, args_p, work_p):
    """A backward slot's arguments as arrays: ``(a, dout, x, y, dx, W_tap, dW_tap, db, work)``
    (see :func:`_backward_slot`): part ``i``'s items, its rows of ``dW_parts`` and ``db_parts``,
    its share of the scratch buffer."""
    a = carray(args_p, (20,))
    N, C_in, L, C_out, L_out, K, work_len = a[7], a[8], a[9], a[10], a[11], a[12], a[19]
    n0, n1 = N * i // parts, N * (i + 1) // parts
    share = work_len // parts
    dout = carray(pointer_like(a[0], work_p), (N, C_out, L_out))[n0:n1]
    x = carray(pointer_like(a[1], work_p), (N, C_in, L))[n0:n1]
    y = carray(pointer_like(a[2], work_p), (N, C_out, L_out))[n0:n1]
    dx = carray(pointer_like(a[3], work_p), (N, C_in, L))[n0:n1]
    W_tap = carray(pointer_like(a[4], work_p), (K * C_in, C_out))
    dW_tap = carray(pointer_like(a[5], work_p), (parts, K * C_in, C_out))[i]
    db = carray(pointer_like(a[6], work_p), (parts, C_out))[i]
    work = carray(work_p, (work_len,))[i * share:(i + 1) * share]
    return a, dout, x, y, dx, W_tap, dW_tap, db, work


def _forward_slot(i, parts, args_p, work_p):
    """im2col + GEMM forward of batch part ``i``, ``chunk`` items at a time. ``args``: the
    addresses of ``x, W_tap, b, y`` (``args[0:4]``), then from ``args[7]`` ``N, C_in, L, C_out,
    L_out, K, stride, padding_left, dilation, act, chunk, len(work)``."""
    a, x, W_tap, b, y, work = _forward_part(i, parts, args_p, work_p)
    C_in, C_out, L_out, K = a[8], a[10], a[11], a[12]
    stride, padding_left, dilation, act, chunk = a[13], a[14], a[15], a[16], a[17]
    for m0 in range(0, x.shape[0], chunk):
        m1 = min(x.shape[0], m0 + chunk)
        cols, at = _take(work, 0, (m1 - m0) * L_out, K * C_in)
        y_rows, _ = _take(work, at, (m1 - m0) * L_out, C_out)
        _im2col(x[m0:m1], K, stride, padding_left, dilation, cols)
        gemm(cols, W_tap, y_rows, False, False, 0.0)
        _rows_to_channels(y_rows, b, y[m0:m1])
    # One flat, vectorised pass (measured cheaper than activating inside the transposition,
    # whose rows are short, and than a separate activation layer, which allocates and re-reads).
    # Sigmoid and tanh run after the parts (conv1d_forward), so this slot never compiles them.
    if act == RELU:
        relu_row_(y.reshape(-1))


def _backward_slot(i, parts, args_p, work_p):
    """im2col + GEMM backward of batch part ``i``: writes the part's ``dW_parts[i] (K*C_in,
    C_out)`` and ``db_parts[i]``, and (if ``need_dx``) its ``dx``. ``args``: the addresses of
    ``dout, x, y, dx, W_tap, dW_parts, db_parts`` (``args[0:7]``), then ``N, C_in, L, C_out,
    L_out, K, stride, padding_left, dilation, act, need_dx, chunk, len(work)``. ``y`` is read
    only for an activation."""
    a, dout, x, y, dx, W_tap, dW_tap, db, work = _backward_part(i, parts, args_p, work_p)
    C_in, C_out, L_out, K = a[8], a[10], a[11], a[12]
    stride, padding_left, dilation, act = a[13], a[14], a[15], a[16]
    need_dx, chunk = a[17] != 0, a[18]
    db[:] = 0
    for m0 in range(0, x.shape[0], chunk):
        m1 = min(x.shape[0], m0 + chunk)
        m = (m1 - m0) * L_out
        cols, at = _take(work, 0, m, K * C_in)
        d_rows, at = _take(work, at, m, C_out)
        dz, _ = _take(work, at, m, C_out)
        g = dout[m0:m1]
        if act != NONE:
            activation_grad_row(g.reshape(-1), y[m0:m1].reshape(-1), act, dz.reshape(-1))
            g = dz.reshape((m1 - m0, C_out, L_out))
        _im2col(x[m0:m1], K, stride, padding_left, dilation, cols)
        _channels_to_rows(g, d_rows, db)
        gemm(cols, d_rows, dW_tap, True, False, 0.0 if m0 == 0 else 1.0)
        if need_dx:
            gemm(d_rows, W_tap, cols, False, True, 0.0)
            _col2im(cols, K, stride, padding_left, dilation, dx[m0:m1])


def _windows_forward_slot(i, parts, args_p, work_p):
    """:func:`_forward_slot` through the windows chain, item by item (``args`` alike; ``chunk``
    unused). A slot of its own: it compiles only when a long-signal shape first runs."""
    a, x, W_tap, b, y, work = _forward_part(i, parts, args_p, work_p)
    C_in, L, C_out, L_out, K = a[8], a[9], a[10], a[11], a[12]
    stride, padding_left, act = a[13], a[14], a[16]
    xt, at = _take(work, 0, _padded_length(L, L_out, K, stride, padding_left, 1), C_in)
    y_rows, _ = _take(work, at, L_out, C_out)
    xt[:] = 0                                   # the padding rows; items overwrite the rest
    for n in range(x.shape[0]):
        _windows_forward_item(x[n], W_tap, b, K, stride, padding_left, xt, y_rows, y[n])
        if act == RELU:
            relu_row_(y[n].reshape(-1))


def _windows_backward_slot(i, parts, args_p, work_p):
    """:func:`_backward_slot` through the windows chain, item by item (``args`` alike; ``chunk``
    unused)."""
    a, dout, x, y, dx, W_tap, dW_tap, db, work = _backward_part(i, parts, args_p, work_p)
    C_in, L, C_out, L_out, K = a[8], a[9], a[10], a[11], a[12]
    stride, padding_left, act, need_dx = a[13], a[14], a[16], a[17] != 0
    L_pad = _padded_length(L, L_out, K, stride, padding_left, 1)
    xt, at = _take(work, 0, L_pad, C_in)
    dxt, at = _take(work, at, L_pad, C_in)
    d_rows, at = _take(work, at, L_out, C_out)
    dz, _ = _take(work, at, C_out, L_out)
    xt[:] = 0
    db[:] = 0
    for n in range(x.shape[0]):
        g = dout[n]
        if act != NONE:
            activation_grad_row(g.reshape(-1), y[n].reshape(-1), act, dz.reshape(-1))
            g = dz
        _windows_backward_item(g, x[n], W_tap, K, stride, padding_left, xt, d_rows, dxt, dx[n],
                               dW_tap, db, 0.0 if n == 0 else 1.0, need_dx)


# --- the same chain with NumPy's matmul, where ``_blas`` is not available ---------------------

def _forward_matmul(x, W_tap, b, K, stride, padding_left, dilation, act, y):
    N, C_in, _ = x.shape
    C_out, L_out = y.shape[1:]
    chunk, work = _work(N, 1, L_out, (K * C_in, C_out), x.dtype)
    for n0 in range(0, N, chunk):
        n1 = min(N, n0 + chunk)
        cols, at = _take(work, 0, (n1 - n0) * L_out, K * C_in)
        y_rows, _ = _take(work, at, (n1 - n0) * L_out, C_out)
        _im2col(x[n0:n1], K, stride, padding_left, dilation, cols)
        _rows_to_channels(np.matmul(cols, W_tap, out=y_rows), b, y[n0:n1])
    activate_(y.reshape(-1), act)


def _backward_matmul(dout, x, y, act, W_tap, K, stride, padding_left, dilation, dx, need_dx):
    """``(dW_tap, db)``, and ``dx`` written if ``need_dx``."""
    N, C_in, _ = x.shape
    C_out, L_out = dout.shape[1:]
    dout = _activation_grad(dout, y, act)
    chunk, work = _work(N, 1, L_out, (K * C_in, C_out), x.dtype)
    dW_tap = np.zeros((K * C_in, C_out), dtype=x.dtype)
    db = np.zeros(C_out, dtype=x.dtype)
    for n0 in range(0, N, chunk):
        n1 = min(N, n0 + chunk)
        cols, at = _take(work, 0, (n1 - n0) * L_out, K * C_in)
        d_rows, _ = _take(work, at, (n1 - n0) * L_out, C_out)
        _im2col(x[n0:n1], K, stride, padding_left, dilation, cols)
        _channels_to_rows(dout[n0:n1], d_rows, db)
        dW_tap += cols.T @ d_rows
        if need_dx:
            _col2im(np.matmul(d_rows, W_tap.T, out=cols), K, stride, padding_left, dilation,
                    dx[n0:n1])
    return dW_tap, db


def _activation_grad(dout, y, act):
    """``dout * act'`` from the forward output ``y``, one flat pass (``dout`` itself if no
    activation)."""
    if act == NONE:
        return dout
    dz = np.empty(dout.shape, dout.dtype)
    activation_grad_row(dout.reshape(-1), y.reshape(-1), act, dz.reshape(-1))
    return dz


# --- the contract --------------------------------------------------------------------------------

def _gemm_parts(values_moved, N):
    """``(parts, blas_threads)`` for the GEMM path: one batch part per thread (see ``_slots``)
    once its passes move ``SPLIT_MIN_VALUES`` values; else one part, on the calling thread, with
    BLAS single-threaded. A small chain's GEMMs gain nothing from BLAS's threads: each call wakes
    them (tens of us here) while the passes between the calls use one core. Measured, float32,
    C28->64 L28 K3 forward, N=64 (265 k values, one part), 15 alternating rounds: 0.37-0.39 ms
    with BLAS's 2 threads, 0.27-0.28 ms with one. One big batch item (``N = 1``) keeps them."""
    if values_moved < SPLIT_MIN_VALUES:
        return 1, False
    return part_count(N), True


def _work(N, parts, L_out, widths, dtype, windows=None):
    """``(chunk, work)``: the batch items per chunk, so that a chunk's matrices ``(chunk*L_out,
    w)`` for ``w`` in ``widths`` (``widths[0]`` is ``K*C_in``, ``widths[1]`` ``C_out``) fill about
    ``GEMM_CHUNK_BYTES`` with at least ``GEMM_MIN_ROWS_PER_CHANNEL * C_out`` rows, and this
    thread's scratch buffer holding ``parts`` equal shares of them.

    ``windows = (L_pad, C_in, count)`` where the windows chain can run (dilation 1): if one item
    alone fills a chunk, ``chunk`` is 0 and a share holds ``count`` padded items ``(L_pad, C_in)``
    in place of ``cols`` and one item's rows for each of ``widths[1:]``."""
    per_item = L_out * sum(widths) * np.dtype(dtype).itemsize
    min_items = -(-GEMM_MIN_ROWS_PER_CHANNEL * widths[1] // max(L_out, 1))
    chunk = max(GEMM_CHUNK_BYTES // per_item, min_items)
    if chunk <= 1 and windows is not None:
        L_pad, C_in, count = windows
        chunk, matrices = 0, [(L_pad, C_in)] * count + [(L_out, w) for w in widths[1:]]
    else:
        chunk = max(1, min(chunk, -(-N // parts)))            # >= 1 even for N=0
        matrices = [(chunk * L_out, w) for w in widths]
    share = sum(-(-m * w // 16) * 16 for m, w in matrices)
    return chunk, scratch(parts * share, dtype)


def _windows(L, L_out, K, stride, padding_left, dilation, C_in, count):
    """``_work``'s ``windows`` argument: the padded item's shape and how many, or None where the
    windows are not contiguous runs (dilation > 1)."""
    if dilation != 1:
        return None
    return _padded_length(L, L_out, K, stride, padding_left, 1), C_in, count


def _tap_major(W):
    """``W (C_out, C_in, K)`` as the GEMM operand ``(K*C_in, C_out)`` matching ``cols``."""
    C_out, C_in, K = W.shape
    return np.ascontiguousarray(W.transpose(2, 1, 0)).reshape(K * C_in, C_out)


def _effective_stride(stride, L_out):
    """1 where there is a single output position: its window starts at 0 whatever the stride,
    and the blocked and GEMM paths size buffers and loops by the stride (``stride=10**9`` with
    one output had the process killed for memory). With two or more outputs the stride is at
    most the padded length, which ``_padding_fits`` bounds."""
    return 1 if L_out == 1 else stride


def conv1d_forward(x, W, b, stride, padding_left, padding_right, dilation, activation):
    """``y[n, o, l] = act(b[o] + sum_{c,k} W[o, c, k] * xpad[n, c, l*stride + k*dilation])``;
    the GEMM path applies ReLU to each batch part right after writing it; every other case
    (sigmoid, tanh, the direct loops) is one pass over ``y`` at the end."""
    N, C_in, L = x.shape
    C_out, _, K = W.shape
    L_out = conv1d_output_length(L, K, stride, padding_left, padding_right, dilation)
    assert L_out >= 1
    stride = _effective_stride(stride, L_out)
    y = np.empty((N, C_out, L_out), dtype=x.dtype)
    act = ACT_CODE[activation]
    if not (_use_gemm(C_in, C_out, K, L_out, stride)
            and _padding_fits(L, L_out, K, stride, padding_left, dilation)):
        _direct_forward(x, W, b, stride, padding_left, dilation, y)
        activate_(y.reshape(-1), act)
        return y
    if conv1d_rows.pays(N, L_out, W.size) or (
            conv1d_blocked.AVAILABLE and conv1d_rows.pays_forward(N, L_out, W.size, x.itemsize)):
        conv1d_rows.forward(x, W, b, stride, padding_left, dilation, act, y)
        if act > RELU:
            activate_(y.reshape(-1), act)
        return y
    if conv1d_blocked.AVAILABLE:
        conv1d_blocked.forward(x, W, b, stride, padding_left, dilation, act, y, scratch)
        if act > RELU:
            activate_(y.reshape(-1), act)
        return y
    W_tap = _tap_major(W)
    if not _blas.available():
        _forward_matmul(x, W_tap, b, K, stride, padding_left, dilation, act, y)
        return y
    parts, blas_threads = _gemm_parts(N * L_out * (K * C_in + C_out), N)
    chunk, work = _work(N, parts, L_out, (K * C_in, C_out), x.dtype,
                        _windows(L, L_out, K, stride, padding_left, dilation, C_in, 1))
    run(_windows_forward_slot if chunk == 0 else _forward_slot, parts, (x, W_tap, b, y),
        (N, C_in, L, C_out, L_out, K, stride, padding_left, dilation, act, chunk, work.shape[0]),
        work, blas_threads)
    if act > RELU:
        activate_(y.reshape(-1), act)
    return y


def conv1d_backward(dout, x, W, y, activation, stride, padding_left, padding_right, dilation,
                    need_dx):
    """Gradients ``(dx, dW, db)`` of :func:`conv1d_forward` given ``dout (N, C_out, L_out)``
    and the forward output ``y`` (read only for an activation; ``dx`` is None when ``need_dx``
    is False). The activation's derivative is applied in the pass that reads ``dout``.

    Input positions that no window reads (skipped by a stride larger than the span, or beyond the
    last window) get ``dx = 0``; gradients that land in the padding are dropped.
    """
    N, C_in, L = x.shape
    C_out, _, K = W.shape
    L_out = dout.shape[2]
    need_dx = bool(need_dx)
    if N == 0:                     # no item writes the parts that dW and db are summed from
        return (np.zeros(x.shape, x.dtype) if need_dx else None, np.zeros(W.shape, x.dtype),
                np.zeros(C_out, x.dtype))
    stride = _effective_stride(stride, L_out)
    dx = np.empty_like(x) if need_dx else None
    act = ACT_CODE[activation]
    if not (_use_gemm(C_in, C_out, K, L_out, stride)
            and _padding_fits(L, L_out, K, stride, padding_left, dilation)):
        dout = _activation_grad(dout, y, act)
        db_rows = np.empty((N, C_out), dtype=x.dtype)
        dW_rows = np.empty((N, C_out, C_in, K), dtype=x.dtype)
        # Without need_dx, an empty array stands in for the unused dx argument (never written):
        # one signature (x itself, read-only, made Numba refuse the writes it never runs). It
        # has C_in rows of length 0, which the item's row views index (with no row at all,
        # that indexing failed under NUMBA_DISABLE_JIT=1 and NUMBA_BOUNDSCHECK=1: an audit).
        _direct_backward(dout, x, W, stride, padding_left, dilation,
                         np.empty((N, C_in, 0), x.dtype) if dx is None else dx,
                         dW_rows, db_rows, need_dx)
        return dx, dW_rows.sum(axis=0), db_rows.sum(axis=0)
    # Unused arguments get stand-ins of the right shape and dtype (never read or written): the
    # matmul chain keeps one compiled signature, and the slot gets an address for each.
    y_arg = dout if act == NONE else y
    dx_arg = x if dx is None else dx
    if conv1d_rows.pays(N, L_out, W.size) or (
            conv1d_blocked.AVAILABLE
            and conv1d_rows.pays_backward(N, L_out, K, W.size, x.itemsize)):
        dW, db = conv1d_rows.backward(_activation_grad(dout, y, act), x, W, stride,
                                      padding_left, dilation, dx_arg, need_dx)
        return dx, dW, db
    # The blocked input gradient convolves a zero-padded gradient, so a non-finite weight
    # would meet the padding's zeros (0 * inf = NaN) at input positions that PyTorch and the
    # GEMM path, which sum only the real products, leave finite: such weights take the GEMM path.
    if conv1d_blocked.AVAILABLE and (not need_dx or all_finite(W.reshape(-1))):
        dW_parts, db_parts = conv1d_blocked.backward(dout, x, W, y_arg, act, stride,
                                                     padding_left, dilation, dx_arg, need_dx,
                                                     scratch)
    elif not _blas.available():
        dW_tap, db = _backward_matmul(dout, x, y_arg, act, _tap_major(W), K, stride,
                                      padding_left, dilation, dx_arg, need_dx)
        dW_parts, db_parts = dW_tap[None], db[None]
    else:
        W_tap = _tap_major(W)
        parts, blas_threads = _gemm_parts(N * L_out * (K * C_in * (1 + need_dx) + C_out)
                                          + need_dx * x.size, N)
        chunk, work = _work(N, parts, L_out, (K * C_in, C_out, C_out), x.dtype,
                            _windows(L, L_out, K, stride, padding_left, dilation, C_in, 2))
        dW_parts = np.empty((parts, K * C_in, C_out), dtype=x.dtype)
        db_parts = np.empty((parts, C_out), dtype=x.dtype)
        run(_windows_backward_slot if chunk == 0 else _backward_slot, parts,
            (dout, x, y_arg, dx_arg, W_tap, dW_parts, db_parts),
            (N, C_in, L, C_out, L_out, K, stride, padding_left, dilation, act, int(need_dx),
             chunk, work.shape[0]), work, blas_threads)
    dW_tap, db = dW_parts[0], db_parts[0]
    for i in range(1, len(dW_parts)):                  # in part order: deterministic
        dW_tap += dW_parts[i]
        db += db_parts[i]
    dW = np.ascontiguousarray(dW_tap.reshape(K, C_in, C_out).transpose(2, 1, 0))
    return dx, dW, db
