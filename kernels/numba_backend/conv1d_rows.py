"""1-D convolution with few output positions: one GEMM against the weights as they lie.

Shapes as in ``conv1d``: ``x (N, C_in, L)``, ``W (C_out, C_in, K)``, ``y (N, C_out, L_out)``.

Why: the blocked and GEMM strategies (``conv1d``) first copy ``W`` into a tap-major layout, a
strided transposition at ~1 ns per weight here, and the blocked kernel's vectors run along the
output positions. Where a call has few output positions in all (``N * L_out`` small: a late
layer after pooling, one sample), that copy is the whole cost: ``N=1, C256 L9 -> C256 K9``
float32 took 0.92 ms, of which 0.56 ms was the copy, against 0.11 ms for the NumPy baseline's
GEMM. Here the GEMM's rows are the output positions and its other operand is ``W`` itself,
``(C_out, C_in*K)`` as stored: im2col in the weights' own ``(c, k)`` order, and BLAS reads
``W`` once, transposed by its flags, not by a copy.

forward
    ``cols (N*L_out, C_in*K)`` (im2col, zeros for the padding), ``rows = cols @ W2.T`` with
    ``W2 = W.reshape(C_out, C_in*K)``, then ``y[n, o, l] = rows[n*L_out + l, o] + b[o]``
    (ReLU fused; sigmoid and tanh by the caller's pass).
backward
    ``g = dout * act'`` (the caller's flat pass) transposed into ``d_rows (N*L_out, C_out)``
    with ``db``, ``dW2 = d_rows.T @ cols`` (``dW`` in its own layout) and ``dcols = d_rows @
    W2``, added back into ``dx`` (col2im; what lands in the padding is dropped).

The loops are serial: they move ``N*L_out*(C_in*K + C_out)`` values, a few thousand at most
where several positions an item take this path, while the GEMM reads all of ``W`` (BLAS's
threads split that). With one position an item and a window that is the whole item, ``x`` is
the im2col matrix as it lies (no copy), as ``dx`` is the input gradient's product. Zero padding is
multiplied like any input, so a non-finite weight gives NaN where a window reads the padding,
as PyTorch, the NumPy baseline and the other strategies give.
"""
import numpy as np
from numba import prange

from . import dense_blocked
from ._config import PARALLEL_MIN_SIZE, jit, jit_parallel
from ._scalar import RELU, relu
from ._transposition import transpose


def pays(N, L_out, weights):
    """Whether a many-channel convolution of ``N`` items, ``L_out`` output positions each and
    ``weights`` weights takes this path rather than the blocked or GEMM one.

    Measured against the blocked path (AVX-512 Zen 4, two threads, forward / backward, float32
    and float64, K = 3; blocked time over this path's): this path wins wherever the output
    positions ``M = N * L_out`` are at most 32 (the copy of ``W`` dominates: C256 -> 256 K9,
    M = 1: 24x / 10x; C28 -> 64, M = 26: 1.2x / 2x; C64 -> 128, L_out = 8, M = 32: 0.88x /
    2.4x), and up to M = 128 where the rows are very short or the weights many (C64 -> 128,
    L_out = 2: 1.5-2.1x / 1.5-1.8x; C256 -> 256, L_out = 4-16: 0.96-2.3x / 1.5-2.1x), and for
    one output position an item at any batch (C64 -> 128 up to M = 512: 1.8-4.4x / 1.3-3.1x;
    an audit, N = 600, C256 -> 256 K3: forward 18.3 ms blocked, 2.9 ms here): the blocked
    kernel's vectors run along the positions, so there it computes one lane in 16. Beyond
    those, the blocked path is as fast or faster (C64 -> 128, L_out = 16, M = 128: 0.5-0.6x /
    0.7-1.1x; M = 512, L_out = 8, float64: 0.56x / 0.55x)."""
    M = N * L_out
    return L_out == 1 or M <= 32 or (M <= 128 and (L_out <= 2 or weights >= 65536))


def pays_forward(N, L_out, weights, itemsize):
    """Whether a forward pass takes this path rather than the blocked one (AVX-512), beyond
    :func:`pays`. The blocked kernel's vectors of 64 bytes run along the output positions: with
    rows of at most half a vector, most of their lanes idle.

    Measured (Zen 4, two threads; 75 shapes in both dtypes, C_in = C_out 64-512, K 1 and 3,
    L_out 2-32, N 8-128, M = N * L_out 64-2048, outside :func:`pays`; blocked time over this
    path's): rows of at most half a vector with 16384 weights or more, 0.97-6.4x float32 (L_out
    2-8; 0.97-0.99x at C128 K1 L_out 8 only) and 1.09-4.1x float64 (L_out 2-4); with fewer
    weights it lost (C64 K1 L_out 4 float64 0.52x). At most 256 positions in all and 262144
    weights or more, whatever the rows: 1.13-6.4x (the 1 x 1 convolution N32 C512 L8 that an
    audit found at 0.58x NumPy: 3.5x faster). Elsewhere the blocked path won or tied (0.45-1.0x
    here; up to 1.4x at a few float64 shapes). Checked on 17 other shapes against NumPy (C_in !=
    C_out, K 5, stride 2): every one the rule moves got faster, 0.52-1.26x NumPy -> 1.07-2.2x."""
    lanes = 64 // itemsize
    return (2 * L_out <= lanes and weights >= 16384) or (N * L_out <= 256 and weights >= 262144)


def pays_backward(N, L_out, K, weights, itemsize):
    """Whether a backward pass takes this path rather than the blocked one, beyond :func:`pays`.

    Measured as :func:`pays_forward` (blocked time over this path's): rows of at most half a
    vector with 49152 weights or more, 1.00-4.4x (with 16384, C128 K1: 0.71-1.72x); rows of at
    most 8 with 262144 or more, float64 too: 1.12-1.23x (C512 K1 L_out 8; 1 x 1 windows of as
    many weights lost at longer rows, 0.77-1.04x); and windows of 3 taps or more with 256
    weights or more per output position in all, whatever the rows: 1.04-4.4x (C128 -> 128 K3
    up to 192 positions, C256 up to 768, C512 up to 3072; C256 K3 at 1024-1792 positions lost,
    0.8-0.97x). Checked on 14 other shapes against NumPy (K 5, C_in != C_out, stride 2): every
    one the rules move got faster, 0.56-1.80x NumPy -> 1.09-2.9x."""
    lanes = 64 // itemsize
    return ((2 * L_out <= lanes and weights >= 49152) or (L_out <= 8 and weights >= 262144)
            or (K >= 3 and 256 * N * L_out <= weights))


# Both go through the item transposed, ``(L, C_in)``: a window's tap ``k`` is then one contiguous
# row of it, copied into every ``K``-th value of the im2col row. Reading ``x`` in place, each
# channel's ``K`` values took a loop of their own (N16 C256 L4 -> K3 p1 float32: 57 against 22
# us for im2col, 55 against ~25 for col2im). The sums of col2im keep their order: window by
# window, tap by tap. The transpositions put their stride on the shorter side
# (``_transposition.transpose``): written channel by channel, with a stride of ``C_in`` values
# (4 KB at 512 float64), they ran 5-10x slower on long items (an audit, N2 C512 L46 -> C96 K1
# stride 3 float64: im2col 0.29 ms, the backward 0.67x NumPy).

@jit
def _im2col(x, K, stride, padding_left, dilation, L_out, cols):
    """``cols[n*L_out + l, c*K + k] = xpad[n, c, l*stride + k*dilation]`` (0 in the padding)."""
    N, C_in, L = x.shape
    xt = np.empty((L, C_in), x.dtype)
    for n in range(N):
        transpose(x[n], xt)
        for l in range(L_out):
            row = cols[n * L_out + l]
            start = l * stride - padding_left
            for k in range(K):
                j = start + k * dilation
                if 0 <= j < L:
                    src = xt[j]
                    for c in range(C_in):
                        row[c * K + k] = src[c]
                else:
                    for c in range(C_in):
                        row[c * K + k] = 0.0


@jit
def _col2im(dcols, K, stride, padding_left, dilation, L_out, dx):
    """``dx[n, c, j] = sum of dcols[n*L_out + l, c*K + k]`` over the windows reading ``j``."""
    N, C_in, L = dx.shape
    dxt = np.empty((L, C_in), dx.dtype)
    for n in range(N):
        dxt[:] = 0.0
        for l in range(L_out):
            row = dcols[n * L_out + l]
            start = l * stride - padding_left
            for k in range(K):
                j = start + k * dilation
                if 0 <= j < L:
                    dst = dxt[j]
                    for c in range(C_in):
                        dst[c] += row[c * K + k]
        transpose(dxt, dx[n])


@jit
def _rows_to_output(rows, b, act, y):
    """``y[n, o, l] = rows[n*L_out + l, o] + b[o]``, ReLU'd for ``RELU``."""
    N, C_out, L_out = y.shape
    for n in range(N):              # along the rows: contiguous reads, and with one output
        for l in range(L_out):      # position an item contiguous writes (the loop vectorises)
            row = rows[n * L_out + l]
            for o in range(C_out):
                v = row[o] + b[o]
                y[n, o, l] = relu(v) if act == RELU else v


@jit
def _output_to_rows(dz, d_rows, db):
    """``d_rows[n*L_out + l, o] = dz[n, o, l]`` and ``db[o]``, its sum (over ``n``, then ``l``,
    in order)."""
    N, C_out, L_out = dz.shape
    db[:] = 0.0
    for n in range(N):
        for l in range(L_out):
            row = d_rows[n * L_out + l]
            for o in range(C_out):
                g = dz[n, o, l]
                row[o] = g
                db[o] += g


#: Output positions up to which the weight gradient, ``d_rows.T @ cols``, is summed by
#: :func:`_weight_gradient` rather than BLAS, whose GEMM with a reduction this short runs far
#: below its rate. Measured, float32 / float64, two threads, C256 -> 256 K9 (589 824 weights):
#: one position 35 / 69 us against BLAS's 159 / 212, four 83 / 202 against 169 / 224, eight
#: 148 / 362 against 166 / 286; C128 -> 128 K5 even from four.
LOOP_MAX_ROWS = 4


@jit_parallel
def _weight_gradient(d_rows, cols, dW):
    """``dW[o] = sum_m d_rows[m, o] * cols[m]``, summed over ``m`` in order: one pass over
    ``dW`` per position, each row of ``dW`` written by one thread."""
    M, C_out = d_rows.shape
    if dW.size < PARALLEL_MIN_SIZE:
        for o in range(C_out):
            _weight_gradient_row(d_rows, cols, dW[o], o, M)
    else:
        for o in prange(C_out):
            _weight_gradient_row(d_rows, cols, dW[o], o, M)


@jit(inline="always")
def _weight_gradient_row(d_rows, cols, row, o, M):
    row[:] = 0.0
    for m in range(M):
        g = d_rows[m, o]
        src = cols[m]
        for j in range(row.size):
            row[j] += g * src[j]


#: Output positions from which the forward product and the weight gradient go to the dense
#: layer's micro-kernels (``dense_blocked``, where they run) rather than BLAS. Measured, two
#: threads, BLAS time over the micro-kernel's (forward, weight gradient): C256 -> 256 K3 at 64
#: positions 1.29x, 1.46x float32 and 1.09x, 1.30x float64; C512 -> 512 K3 at 28 positions
#: 1.54x, 1.68x and 1.78x, 1.41x; C64 -> 128 K3 at 32 positions 1.08x, 0.84x; at 8 positions
#: and fewer BLAS is ahead. The input gradient's product stays on BLAS: the micro-kernel gained
#: nothing there (1.02x float32 and 0.89x float64 at 64 positions).
BLOCKED_MIN_ROWS = 16


def _blocked(M, C_in_K, C_out, dtype):
    """Whether the rows path's forward product and weight gradient take the micro-kernels."""
    return M >= BLOCKED_MIN_ROWS and dense_blocked.pays(M, C_in_K, C_out, dtype)


def _columns(x, K, stride, padding_left, dilation, L_out):
    """``(cols, whole)``: the im2col matrix, and whether it is ``x`` itself, reshaped: one
    output position an item whose window is the whole item (a layer that reduces its input to
    one position, the audit's N = 600, C256 L3 -> C256 K3), where no copy is needed."""
    N, C_in, L = x.shape
    if L_out == 1 and padding_left == 0 and L == (K - 1) * dilation + 1 and (dilation == 1
                                                                           or K == 1):
        return x.reshape(N, C_in * K), True
    cols = np.empty((N * L_out, C_in * K), x.dtype)
    _im2col(x, K, stride, padding_left, dilation, L_out, cols)
    return cols, False


# The products run on NumPy's BLAS here, which follows NumPy's error handling (np.seterr): a
# non-finite weight warned, or raised under np.errstate(all="raise"), where the other paths and
# every Numba kernel stay silent (an audit). Hence np.errstate(all="ignore") around them.

def forward(x, W, b, stride, padding_left, dilation, act, y):
    """``y`` (allocated) gets the convolution with bias, ReLU applied if ``act`` is ReLU."""
    N, C_in, _ = x.shape
    C_out, _, K = W.shape
    L_out = y.shape[2]
    cols, _ = _columns(x, K, stride, padding_left, dilation, L_out)
    W2 = W.reshape(C_out, C_in * K)
    if _blocked(N * L_out, C_in * K, C_out, x.dtype):
        rows = dense_blocked.times_transposed(cols, W2)
    else:
        with np.errstate(all="ignore"):
            rows = np.dot(cols, W2.T)
    _rows_to_output(rows, b, act, y)


def backward(dz, x, W, stride, padding_left, dilation, dx, need_dx):
    """``(dW, db)`` from ``dz``, the gradient with the activation's derivative applied (the
    caller's pass), and ``dx`` (allocated) written if ``need_dx``."""
    N, C_in, _ = x.shape
    C_out, _, K = W.shape
    L_out = dz.shape[2]
    cols, whole = _columns(x, K, stride, padding_left, dilation, L_out)
    d_rows = np.empty((N * L_out, C_out), x.dtype)
    db = np.empty(C_out, x.dtype)
    _output_to_rows(dz, d_rows, db)
    W2 = W.reshape(C_out, C_in * K)
    with np.errstate(all="ignore"):
        if N * L_out <= LOOP_MAX_ROWS:
            dW = np.empty(W.shape, x.dtype)
            _weight_gradient(d_rows, cols, dW.reshape(C_out, C_in * K))
        elif _blocked(N * L_out, C_in * K, C_out, x.dtype):
            dW = dense_blocked.transposed_times(d_rows, cols).reshape(W.shape)
        else:
            dW = np.dot(d_rows.T, cols).reshape(W.shape)
        if need_dx:
            dcols = np.dot(d_rows, W2)
            if whole:
                dx[...] = dcols.reshape(dx.shape)
            else:
                _col2im(dcols, K, stride, padding_left, dilation, L_out, dx)
    return dW, db
