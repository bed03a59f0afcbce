"""1-D max and average pooling over the last axis of ``x (N, C, L)`` (Numba).

``L_out = (L + 2*padding - kernel_size) // stride + 1`` (floor mode, as PyTorch's default).

* Max pooling pads with ``-inf`` (padding never wins) and returns the arg-max as an int64 index
  into ``L``. Ties go to the first (lowest) index; a NaN in a window is the maximum (the last NaN
  wins), so NaN propagates; both rules are PyTorch's.
* Average pooling pads with zeros that count in the divisor: every window divides by
  ``kernel_size`` (PyTorch's ``count_include_pad=True`` default).

The caller guarantees ``padding <= kernel_size // 2``, so every window holds a real element.

Windows of 2 with stride 2 and no padding (the CNNs' case) split their rows over Numba's threads
from ``PARALLEL_MIN_SIZE`` input values on, as slots (``_slots``): the one parallel runner is
shared with conv1d and dense, so the split costs no parallel function of its own (each costs about
a second of cold compile per dtype). Why split a pass that only streams memory: see
:func:`_maxpool2_parts`. Every other pooling is a serial loop: they stream each element once or
twice (rows of many windows tap by tap, one vectorised pass per tap, or, for narrow average
windows, window by window in one vectorised pass: see :func:`_maxpool_forward` and
:func:`_avgpool_forward`). Rows are
independent and overlapping windows of a row accumulate in order, so results are deterministic
and do not depend on the thread count.
"""
import numpy as np
from numba import carray, config

from .. import pool_output_length
from ._config import PARALLEL_MIN_SIZE, jit, jit_unfused
from ._slots import ARRAYS, int64_pointer, part_count, pointer_like, run, scratch


#: Inner windows a row needs for :func:`_maxpool_forward` to take them by taps with stride 1, or
#: by phases: shorter rows pay more for the passes' set-up than they save. Measured, (128, 64,
#: 28) float32, 14-28 windows a row: window by window 0.34-1.0 ms, by taps 0.6-1.8 ms (strides
#: 1-8). By phases also needs windows at least twice the stride: the split copies the whole row,
#: which narrower windows do not read enough of to repay (an audit, rows of 5000, window-by-window
#: time over by phases': k1 s9 0.17, k4 s5 0.85; k6 s4 1.77).
BY_TAPS_MIN_WINDOWS = 64

#: The same for strides 2 and 3 read in place (:func:`_rows_in_place`). Measured, float32 and
#: float64, window by window over in place: (128, 32, 56) k2-k5 s2 p1 (27-29 windows a row)
#: 1.2-2.3x, (8, 16, 1000) k2-k5 s2 p1 2.5-4.7x; 14 windows a row, k4 s2: 0.90x. Stride 3 reads
#: in place up to windows of 6 (k9 s3 p4 over rows of 5000: 0.26 ms in place, 0.21 by phases).
STRIDED_MIN_WINDOWS = 28


def _maxpool_forward(x, kernel_size, stride, padding, y, argmax):
    """Rows of ``x (R, L)`` into ``y``, ``argmax (R, L_out)``.

    The windows that lie wholly inside a row take one pass over all of them per tap, in tap
    order (:func:`_rows_in_place`, :func:`_rows_by_phases`; the passes vectorise); those that
    reach into the padding, a few at each end, are taken one by one (:func:`_window_max`). Both
    apply one rule per tap: it replaces the maximum if greater, or NaN. Measured, rows of 5000
    float32, k7 s1 p3: 68 us a row window by window (a branch per tap), 9 us by taps. Short
    rows, and strides above 3 with windows narrower than twice the stride, stay window by window
    (:data:`BY_TAPS_MIN_WINDOWS`, :data:`STRIDED_MIN_WINDOWS`). Chosen here, in Python, so that
    a first call compiles only the loop it runs (each takes 0.6-1.2 s to compile)."""
    R, L = x.shape
    L_out = y.shape[1]
    if R == 0:              # an empty batch of any length (2**40) allocates nothing below
        return
    first, end = _inner_span(L, L_out, kernel_size, stride, padding)
    in_place = stride <= 2 or (stride == 3 and kernel_size <= 2 * stride)
    if in_place and end - first >= (BY_TAPS_MIN_WINDOWS if stride == 1 else STRIDED_MIN_WINDOWS):
        _rows_in_place(x, kernel_size, stride, padding, y, argmax, first, end)
    elif end - first >= BY_TAPS_MIN_WINDOWS and kernel_size >= 2 * stride:
        _rows_by_phases(x, kernel_size, stride, padding, y, argmax, first, end)
    else:
        _rows_window_by_window(x, kernel_size, stride, padding, y, argmax)


def _inner_span(L, L_out, kernel_size, stride, padding):
    """``(first, end)``: the windows ``first`` to ``end - 1`` of a row of ``L`` lie wholly
    inside it (the others reach into the padding)."""
    first = min(-(-padding // stride), L_out)                  # from here, start >= 0
    end = max(min((L - kernel_size + padding) // stride + 1, L_out), first)   # start + k <= L
    return first, end


@jit
def _rows_window_by_window(x, kernel_size, stride, padding, y, argmax):
    """:func:`_maxpool_forward` one window at a time (:func:`_window_max`)."""
    for r in range(x.shape[0]):
        xr, yr, ar = x[r], y[r], argmax[r]
        for l in range(yr.shape[0]):
            _window_max(xr, l, kernel_size, stride, padding, yr, ar)


@jit
def _rows_in_place(x, kernel_size, stride, padding, y, argmax, first, end):
    """:func:`_maxpool_forward` by taps for strides 1-3, which read each row in place, each
    stride a constant of its own loops: LLVM vectorises their loads (a stride of 2 or 3 as
    interleaved loads and shuffles); with the stride held in a variable, the loop ran scalar."""
    # The winning tap of each inner window, held as a value of x's own type: the selects of
    # maximum and tap then run at one lane width (int32 taps beside float64 values ran
    # 1.2-2.1x slower, measured at stride 2). Its size written max(n, 0), though n >= 0: with
    # np.empty(n) LLVM read the stride-2 values by gathers, not shuffles, at half the speed
    # (test_numba_codegen checks it).
    n = end - first
    taps = np.empty(max(n, 0), x.dtype)
    for r in range(x.shape[0]):
        xr, yr, ar = x[r], y[r], argmax[r]
        _edge_windows(xr, kernel_size, stride, padding, yr, ar, first, end)
        start = first * stride - padding
        xs = xr[start:]
        ys = yr[first:end]
        if stride == 1:
            _taps_in_place(xs, kernel_size, 1, ys, taps, n)
        elif stride == 2:
            _taps_in_place(xs, kernel_size, 2, ys, taps, n)
        else:
            _taps_in_place(xs, kernel_size, 3, ys, taps, n)
        _tap_indices(taps, start, stride, first, ar, n)


@jit(inline="always")
def _tap_indices(taps, start, stride, first, ar, n):
    """The arg-max index into the row of each of the ``n`` inner windows from its winning tap."""
    for j in range(n):
        ar[first + j] = start + j * stride + np.int64(taps[j])


@jit(inline="always")
def _edge_windows(xr, kernel_size, stride, padding, yr, ar, first, end):
    """The windows of a row that reach into its padding, before ``first`` and from ``end``."""
    for l in range(first):
        _window_max(xr, l, kernel_size, stride, padding, yr, ar)
    for l in range(end, yr.shape[0]):
        _window_max(xr, l, kernel_size, stride, padding, yr, ar)


@jit(inline="always")
def _taps_in_place(xs, kernel_size, step, ys, taps, n):
    """``ys[j]``, ``taps[j]``: the maximum of ``xs[j*step : j*step + kernel_size]`` and its tap,
    the ``n`` windows inside ``xs``, one pass per tap in tap order; ``step`` a constant."""
    for j in range(n):
        ys[j] = xs[j * step]
        taps[j] = 0
    for k in range(1, kernel_size):
        for j in range(n):
            _tap(xs[j * step + k], ys, taps, j, k)


@jit
def _rows_by_phases(x, kernel_size, stride, padding, y, argmax, first, end):
    """:func:`_maxpool_forward` by taps for strides above 3: each row is first split into its
    phases (``phases[p, q] = xs[q*stride + p]``), and tap ``k`` reads phase ``k % stride`` from
    ``k // stride`` on, contiguous values (read with a stride held in a variable, the loop ran
    3-4x slower)."""
    R, L = x.shape
    taps = np.empty(max(end - first, 0), x.dtype)
    span = max(L - (first * stride - padding), 0)
    phases = np.empty((stride, -(-span // stride)), x.dtype)
    for r in range(R):
        xr, yr, ar = x[r], y[r], argmax[r]
        _edge_windows(xr, kernel_size, stride, padding, yr, ar, first, end)
        start = first * stride - padding
        xs = xr[start:]
        ys = yr[first:end]
        for q in range(phases.shape[1]):
            for p in range(stride):
                if q * stride + p < xs.size:
                    phases[p, q] = xs[q * stride + p]
        for j in range(ys.size):
            ys[j] = xs[j * stride]
            taps[j] = 0
        for k in range(1, kernel_size):
            src = phases[k % stride, k // stride:]
            for j in range(ys.size):
                _tap(src[j], ys, taps, j, k)
        _tap_indices(taps, start, stride, first, ar, ys.size)


@jit(inline="always")
def _tap(v, ys, taps, j, k):
    """Tap ``k``'s value ``v`` against window ``j``'s maximum so far: strict, so ties keep the
    first index; a NaN is the maximum, a later NaN wins. Selects, not a branch: the loop then
    vectorises."""
    best = ys[j]
    wins = (v > best) | (v != v)
    ys[j] = v if wins else best
    taps[j] = k if wins else taps[j]


@jit(inline="always")
def _window_max(xr, l, kernel_size, stride, padding, yr, ar):
    """Window ``l`` of the row ``xr``, tap by tap, by :func:`_tap`'s rule (the padding never
    wins: it is skipped)."""
    L = xr.shape[0]
    start = l * stride - padding
    lo = max(start, 0)
    best = xr[lo]
    at = lo
    for i in range(lo + 1, min(start + kernel_size, L)):
        v = xr[i]
        if v > best or v != v:
            best = v
            at = i
    yr[l] = best
    ar[l] = at


#: Elements per block of the k=2, s=2 max-pool loops (their index pattern stays in L1).
_BLOCK = 1024


# Inlined at Numba IR level: as a function of its own it compiled separately and was optimised
# again inside both callers (each k=2 pooling's cold compile 0.1-0.2 s shorter inlined, measured).
@jit(inline="always")
def _pattern(L_out):
    """``2*l`` for each position of a block of whole rows of ``L_out`` outputs (about
    ``_BLOCK`` positions); its size is the block size of the k=2, s=2 loops."""
    block = max(1, _BLOCK // L_out) * L_out
    pattern = np.empty(block, dtype=np.int64)
    for i in range(block):
        pattern[i] = 2 * (i % L_out)
    return pattern


@jit(inline="always")          # into its slot: one compile, not two
def _maxpool2_forward(xf, yf, af, L_out):
    """The common case, windows of 2 with stride 2 and no padding over even rows (``xf`` their
    flat ``2*L_out`` values per row, ``yf`` and ``af`` the outputs, ``L_out`` per row), written
    without branches (selects) and as flat loops over blocks of whole rows: the CNN's rows are 14-28
    elements, too short for a per-row loop to vectorise (measured 0.07 ms -> 0.02 ms at
    (128, 32, 28)). Same semantics as :func:`_maxpool_forward`.

    Every row has the same index pattern ``2*l``; one block's worth of it is computed once. The
    maxima and the indices are two passes over the block: in one loop, LLVM wrote each select
    as two masked stores and two masked loads of the pattern (float32 (128, 32, 28) on an
    AVX-512 Xeon: 41 us in one loop, 26 us in two; float64 65 -> 47 us)."""
    pattern = _pattern(L_out)
    block = pattern.size
    n = yf.size
    for start in range(0, n, block):
        xs = xf[2 * start:2 * min(start + block, n)]
        ys = yf[start:start + block]
        as_ = af[start:start + block]
        for i in range(ys.size):
            a = xs[2 * i]
            b = xs[2 * i + 1]
            ys[i] = b if (b > a) | (b != b) else a     # ties keep `a`; a NaN `b` wins (last NaN)
        for i in range(ys.size):
            a = xs[2 * i]
            b = xs[2 * i + 1]
            as_[i] = pattern[i] + ((b > a) | (b != b))


@jit
def _maxpool_backward(dout, argmax, dx):
    """``dx[r, argmax[r, l]] += dout[r, l]``. The zeroing is one flat pass (the rows are too
    short to vectorise one by one); the scatter stays a loop, its targets may repeat."""
    dxf = dx.reshape(-1)
    for i in range(dxf.size):
        dxf[i] = 0
    L = dx.shape[1]
    for r in range(dout.shape[0]):
        base = r * L
        for l in range(dout.shape[1]):
            dxf[base + argmax[r, l]] += dout[r, l]


@jit(inline="always")          # into its slot: one compile, not two
def _maxpool2_backward(df, af, dxf, L_out):
    """:func:`_maxpool_backward` when ``L == 2*L_out`` (``df``, ``af``, ``dxf`` flat rows), as
    flat branch-free passes over blocks of whole rows (measured 0.043 -> 0.02 ms at
    (128, 32, 28)): if every ``argmax[r, l]`` is ``2*l`` or ``2*l + 1`` (windows of 2, stride
    2), each input position receives exactly one value, ``dout`` or 0. The test runs in the same
    pass and is returned: should any index break the pattern (indices not from such a pooling),
    the caller redoes all of ``dx`` with the general scatter (called from Python, so that the
    common case never compiles it).

    The test ORs together the offsets' bits above the lowest (zero while every offset is 0 or 1):
    an integer reduction, which kept the loop vectorised as a boolean one did not (float32
    (128, 32, 28) on an AVX-512 Xeon: 43 -> 27 us; float64 49 -> 37 us)."""
    pattern = _pattern(L_out)
    block = pattern.size
    zero = dxf.dtype.type(0)
    stray = np.int64(0)
    n = df.size
    for start in range(0, n, block):
        ds = df[start:start + block]
        as_ = af[start:start + block]
        dxs = dxf[2 * start:2 * min(start + block, n)]
        for i in range(ds.size):
            t = as_[i] - pattern[i]
            stray |= t & ~np.int64(1)
            g = ds[i]
            dxs[2 * i] = zero if t != 0 else g
            dxs[2 * i + 1] = g if t != 0 else zero
    return stray == 0


#: Inner windows a row needs for average pooling to take them by taps: a pass's set-up (its
#: vector loop's checks) outweighs a few windows. Measured, float32, (1024, 16, 8) k2 s3 (2
#: windows a row): by taps 0.33 ms forward, window by window 0.14 ms (NumPy's 0.12).
AVG_BY_TAPS_MIN_WINDOWS = 8


def _avgpool_forward(x, kernel_size, stride, padding, y, first, end):
    """Rows of ``x (R, L)`` into ``y (R, L_out)``, the sums in tap order: the windows that reach
    into the padding one by one; the others by taps (:func:`_avg_rows_by_taps`), or each in one
    step where they tile (``kernel_size == stride``, up to 4: :func:`_avg_rows_tiled`) or are 3
    or 4 wide with stride 2 (:func:`_avg_rows_stride_two`); rows of few windows window by window
    (:data:`AVG_BY_TAPS_MIN_WINDOWS`). Chosen here, in Python, so that a first call compiles only
    the loop it runs (all the one-step loops in one function took 2.3 s to compile, against
    0.8-1.0 s for the tiled ones alone)."""
    if end - first < AVG_BY_TAPS_MIN_WINDOWS:
        _avg_window_by_window(x, kernel_size, stride, padding, y)
    elif 2 <= kernel_size == stride <= 4:
        _avg_rows_tiled(x, kernel_size, padding, y, first, end)
    elif stride == 2 and 3 <= kernel_size <= 4:
        _avg_rows_stride_two(x, kernel_size, padding, y, first, end)
    else:
        _avg_rows_by_taps(x, kernel_size, stride, padding, y, first, end)


@jit
def _avg_window_by_window(x, kernel_size, stride, padding, y):
    """Rows of ``x (R, L)`` into ``y (R, L_out)``, window by window."""
    scale = x.dtype.type(1) / x.dtype.type(kernel_size)     # x.dtype: products round in it
    for r in range(x.shape[0]):
        xr = x[r]
        for l in range(y.shape[1]):
            y[r, l] = _window_sum(xr, l, kernel_size, stride, padding) * scale


@jit
def _avg_rows_by_taps(x, kernel_size, stride, padding, y, first, end):
    """Rows of ``x (R, L)`` into ``y (R, L_out)``: the inner windows ``first`` to ``end - 1``
    one pass per tap (strides 1 and 2 loops of their own), the others window by window."""
    scale = x.dtype.type(1) / x.dtype.type(kernel_size)
    n = end - first
    for r in range(x.shape[0]):
        xs, ys = _edge_means(x[r], kernel_size, stride, padding, y[r], first, end, scale)
        if stride == 1:
            _sums_by_taps(xs, kernel_size, 1, ys, n)
        elif stride == 2:
            _sums_by_taps(xs, kernel_size, 2, ys, n)
        else:
            _sums_by_taps(xs, kernel_size, stride, ys, n)
        for j in range(n):
            ys[j] *= scale


@jit
def _avg_rows_tiled(x, width, padding, y, first, end):
    """:func:`_avg_rows_by_taps` for windows that tile (``kernel_size == stride == width``, 2 to
    4), each inner window summed in one step (:func:`_sums_in_one_step`). Measured, float32, by
    taps against this, side by side: (128, 32, 784) k3 s3 2.58 -> 0.54 ms, (8, 16, 5000) k4 s4
    0.31 -> 0.05 ms (NumPy's 2.68 and 0.25 ms)."""
    scale = x.dtype.type(1) / x.dtype.type(width)
    n = end - first
    for r in range(x.shape[0]):
        xs, ys = _edge_means(x[r], width, width, padding, y[r], first, end, scale)
        if width == 2:
            _sums_in_one_step(xs, 2, 2, ys, n, scale)
        elif width == 3:
            _sums_in_one_step(xs, 3, 3, ys, n, scale)
        else:
            _sums_in_one_step(xs, 4, 4, ys, n, scale)


@jit
def _avg_rows_stride_two(x, kernel_size, padding, y, first, end):
    """:func:`_avg_rows_by_taps` for windows of 3 or 4 with stride 2 (the usual overlapping
    pooling), each inner window summed in one step. Measured, by taps against this: (2048, 1,
    500) k3 s2 float32 0.67-0.89 -> 0.23 ms (NumPy's 0.68), (8, 16, 1000) k3 s2 p1 0.08 -> 0.05
    ms (0.16)."""
    scale = x.dtype.type(1) / x.dtype.type(kernel_size)
    n = end - first
    for r in range(x.shape[0]):
        xs, ys = _edge_means(x[r], kernel_size, 2, padding, y[r], first, end, scale)
        if kernel_size == 3:
            _sums_in_one_step(xs, 3, 2, ys, n, scale)
        else:
            _sums_in_one_step(xs, 4, 2, ys, n, scale)


@jit(inline="always")
def _edge_means(xr, kernel_size, stride, padding, yr, first, end, scale):
    """The means of a row's windows that reach into the padding, into ``yr``; ``(xs, ys)``, the
    row from the first inner window's start and the inner windows' means."""
    for l in range(first):
        yr[l] = _window_sum(xr, l, kernel_size, stride, padding) * scale
    for l in range(end, yr.shape[0]):
        yr[l] = _window_sum(xr, l, kernel_size, stride, padding) * scale
    return xr[first * stride - padding:], yr[first:end]


@jit(inline="always")
def _window_sum(xr, l, kernel_size, stride, padding):
    """The sum of window ``l``'s real elements, in tap order."""
    start = l * stride - padding
    s = xr.dtype.type(0)
    for i in range(max(start, 0), min(start + kernel_size, xr.shape[0])):
        s += xr[i]
    return s


@jit(inline="always")
def _sums_by_taps(xs, kernel_size, step, ys, n):
    """``ys[j] = sum(xs[j*step : j*step + kernel_size])`` for the ``n`` windows inside ``xs``,
    one pass per tap, in tap order; ``step`` a constant where the caller can make it one."""
    for j in range(n):
        ys[j] = xs[j * step]
    for k in range(1, kernel_size):
        for j in range(n):
            ys[j] += xs[j * step + k]


@jit(inline="always")
def _sums_in_one_step(xs, width, step, ys, n, scale):
    """``ys[j] = sum(xs[j*step : j*step + width]) * scale``, each window summed in one step
    (``width`` and ``step`` constants: the taps unroll and the row is read by interleaved vector
    loads, once)."""
    for j in range(n):
        s = xs[j * step]
        for t in range(1, width):
            s += xs[j * step + t]
        ys[j] = s * scale


def _avgpool_backward(dout, kernel_size, stride, padding, dx, first, end):
    """Rows of ``dout (R, L_out)`` into ``dx (R, L)``: each ``dout / kernel_size`` added to its
    window's real elements. Every element takes its windows' shares in window order (the left
    windows that reach into the padding, then the inner ones, by taps from the last tap back or
    each in one step, then the right ones), the order of a window-by-window loop. The loop
    chosen as the forward's (:func:`_avgpool_forward`)."""
    if end - first < AVG_BY_TAPS_MIN_WINDOWS:
        _avg_shares_window_by_window(dout, kernel_size, stride, padding, dx)
    elif 2 <= kernel_size == stride <= 4:
        _avg_shares_tiled(dout, kernel_size, padding, dx, first, end)
    else:
        _avg_shares_by_taps(dout, kernel_size, stride, padding, dx, first, end)


# Unfused (no FMA) below: each share rounds before it is added, as in NumPy's baseline and in
# PyTorch; fused into the tap loops' additions, float32 gradients differed in the last bits.
@jit_unfused
def _avg_shares_window_by_window(dout, kernel_size, stride, padding, dx):
    """Rows of ``dout (R, L_out)`` into ``dx (R, L)``, window by window."""
    scale = dx.dtype.type(1) / dx.dtype.type(kernel_size)
    for r in range(dx.shape[0]):
        dxr = dx[r]
        dxr[:] = 0
        for l in range(dout.shape[1]):
            _window_share(dxr, l, dout[r, l] * scale, kernel_size, stride, padding)


@jit_unfused
def _avg_shares_by_taps(dout, kernel_size, stride, padding, dx, first, end):
    """Rows of ``dout (R, L_out)`` into ``dx (R, L)``: the inner windows' shares one pass per
    tap (strides 1 and 2 loops of their own), the others window by window."""
    scale = dx.dtype.type(1) / dx.dtype.type(kernel_size)
    n = end - first
    for r in range(dx.shape[0]):
        dxr, dr = dx[r], dout[r]
        dxs, ds = _left_shares(dxr, dr, kernel_size, stride, padding, first, end, scale)
        if stride == 1:
            _shares_by_taps(ds, scale, kernel_size, 1, dxs, n)
        elif stride == 2:
            _shares_by_taps(ds, scale, kernel_size, 2, dxs, n)
        else:
            _shares_by_taps(ds, scale, kernel_size, stride, dxs, n)
        _right_shares(dxr, dr, kernel_size, stride, padding, end, scale)


@jit_unfused
def _avg_shares_tiled(dout, width, padding, dx, first, end):
    """:func:`_avg_shares_by_taps` for windows that tile (``kernel_size == stride == width``, 2
    to 4), each inner window's share added to its elements in one step, whole interleaved
    vectors (by taps, each pass stored every other element: (128, 32, 784) k2 s2 float32 1.80 ->
    0.49 ms)."""
    scale = dx.dtype.type(1) / dx.dtype.type(width)
    n = end - first
    for r in range(dx.shape[0]):
        dxr, dr = dx[r], dout[r]
        dxs, ds = _left_shares(dxr, dr, width, width, padding, first, end, scale)
        if width == 2:
            _shares_in_one_step(ds, scale, 2, dxs, n)
        elif width == 3:
            _shares_in_one_step(ds, scale, 3, dxs, n)
        else:
            _shares_in_one_step(ds, scale, 4, dxs, n)
        _right_shares(dxr, dr, width, width, padding, end, scale)


@jit(inline="always")
def _left_shares(dxr, dr, kernel_size, stride, padding, first, end, scale):
    """Zero the row ``dxr`` and add the shares of the windows that reach into its left padding;
    ``(dxs, ds)``, the row from the first inner window's start and the inner windows'
    gradients."""
    dxr[:] = 0
    for l in range(first):
        _window_share(dxr, l, dr[l] * scale, kernel_size, stride, padding)
    return dxr[first * stride - padding:], dr[first:end]


@jit(inline="always")
def _right_shares(dxr, dr, kernel_size, stride, padding, end, scale):
    """Add the shares of the windows from ``end`` on (those that reach into the right
    padding)."""
    for l in range(end, dr.shape[0]):
        _window_share(dxr, l, dr[l] * scale, kernel_size, stride, padding)


@jit(inline="always")
def _window_share(dxr, l, g, kernel_size, stride, padding):
    """Add ``g`` to window ``l``'s real elements."""
    start = l * stride - padding
    for i in range(max(start, 0), min(start + kernel_size, dxr.shape[0])):
        dxr[i] += g


@jit(inline="always")
def _shares_in_one_step(ds, scale, width, dxs, n):
    """``dxs[j*width + t] += ds[j] * scale`` for windows that tile, a window's taps in one step
    (``width`` a constant)."""
    for j in range(n):
        g = ds[j] * scale
        for t in range(width):
            dxs[j * width + t] += g


@jit(inline="always")
def _shares_by_taps(ds, scale, kernel_size, step, dxs, n):
    """``dxs[j*step + k] += ds[j] * scale`` for the ``n`` windows inside ``dxs``, every tap
    ``k``, from the last tap back: an element's shares then arrive in window order."""
    for k in range(kernel_size - 1, -1, -1):
        if step == 1:
            # Indexed from the tap's own start: with j + k (k counting down, not known to be
            # >= 0) the loop did not vectorise, 0.36 against 0.07 ms at (8, 3, 5000) k7 s1 p3.
            # Strides 2 and 3 ran slower that way (0.09 against 0.16 ms, (8, 16, 1000) k3 s2).
            tap = dxs[k:]
            for j in range(n):
                tap[j] += ds[j] * scale
        else:
            for j in range(n):
                dxs[j * step + k] += ds[j] * scale


# --- the k=2, s=2 passes as one slot (``_slots``): ``arrays`` are the float input and output,
# then the int64 indices viewed as floats (the runner takes one dtype; the slot reads them back
# as int64 through their address: ``argmax.ctypes.data`` in Python cost 1 us a call); ``sizes``
# the rows, ``L_out`` and the pass (``_FORWARD`` or ``_BACKWARD``). Part ``i`` takes rows ``R*i //
# parts`` to ``R*(i+1) // parts``. One slot for both passes: a slot is a function compiled on a
# cold start, and the two passes' slots took 1.71-1.77 s to compile against 1.57-1.59 s for one.
#: The passes, as the slot's ``sizes`` name them.
_FORWARD, _BACKWARD = 0, 1


@jit(inline="always")
def _part(args_p, work_p, i, parts):
    """``(wide, narrow, argmax, L_out)``: part ``i``'s rows of the two float arrays (``2*L_out``
    and ``L_out`` values per row) and of the indices, flat."""
    s = carray(args_p, (ARRAYS + 2,))
    R, L_out = s[ARRAYS], s[ARRAYS + 1]
    lo, hi = R * i // parts * L_out, R * (i + 1) // parts * L_out
    wide = carray(pointer_like(s[0], work_p), (2 * R * L_out,))[2 * lo:2 * hi]
    narrow = carray(pointer_like(s[1], work_p), (R * L_out,))[lo:hi]
    return wide, narrow, carray(int64_pointer(s[2]), (R * L_out,))[lo:hi], L_out


def _maxpool2_slot(i, parts, args_p, work_p):
    """Part ``i`` of :func:`_maxpool2_forward` (``arrays``: ``x``, ``y`` and ``argmax``) or of
    :func:`_maxpool2_backward` (``dx``, ``dout``, ``argmax`` and one flag per part, set to 1
    where the part's indices follow the pattern)."""
    wide, narrow, argmax, L_out = _part(args_p, work_p, i, parts)
    if carray(args_p, (ARRAYS + 3,))[ARRAYS + 2] == _FORWARD:
        _maxpool2_forward(wide, narrow, argmax, L_out)
    else:
        fits = carray(pointer_like(carray(args_p, (4,))[3], work_p), (parts,))
        fits[i] = 1 if _maxpool2_backward(narrow, argmax, wide, L_out) else 0


#: Plain Python (``NUMBA_DISABLE_JIT=1``, a coverage run) cannot run the slots' intrinsics: the
#: k=2 passes are then called directly.
_SLOTS = not config.DISABLE_JIT


def _maxpool2_parts(size):
    """Parts for a k=2 pooling pass over ``size`` input values: one per thread from
    ``PARALLEL_MIN_SIZE`` on. Serial, the MNIST CNN's passes took twice as long inside its
    training step as alone (per call, forward 55 against 28 us, backward 47 against 28 us, on an
    Intel Xeon): the input was just written by both threads, half of it in the other core's
    cache. Split as the convolution before it splits the batch, each thread mostly reads what it
    wrote. Measured, CNN training step, batch 128 float32, one process per round, rounds
    interleaved: 3.37-3.51 -> 3.21-3.29 ms (five rounds each)."""
    return part_count(2) if size >= PARALLEL_MIN_SIZE else 1


def _maxpool2_into(x, y, argmax, L_out):
    """The k=2, s=2 forward pass, rows split over the threads (:func:`_maxpool2_parts`)."""
    if not _SLOTS:
        _maxpool2_forward(x.reshape(-1), y.reshape(-1), argmax.reshape(-1), L_out)
        return
    rows = y.size // L_out
    run(_maxpool2_slot, min(_maxpool2_parts(x.size), rows), (x, y, argmax.view(x.dtype)),
        (rows, L_out, _FORWARD), scratch(1, x.dtype), calls_blas=False)


def _maxpool2_backward_into(dout, argmax, dx, L_out):
    """The k=2, s=2 backward pass into ``dx``, rows split over the threads; whether every index
    followed the pattern (if not, the caller redoes ``dx``)."""
    if not _SLOTS:
        return _maxpool2_backward(dout.reshape(-1), argmax.reshape(-1), dx.reshape(-1), L_out)
    rows = dout.size // L_out
    parts = min(_maxpool2_parts(dx.size), rows)
    fits = np.zeros(parts, dout.dtype)
    argmax = np.ascontiguousarray(argmax, np.int64)     # the slot reads it as int64
    run(_maxpool2_slot, parts, (dx, dout, argmax.view(dout.dtype), fits), (rows, L_out, _BACKWARD),
        scratch(1, dout.dtype), calls_blas=False)
    return 0 not in fits.tolist()                 # not fits.all(): ~2 us less of a ~10 us call


def maxpool1d_forward(x, kernel_size, stride, padding):
    """``(y, argmax)``: window maxima and the int64 index into ``L`` of each (first on ties, last
    NaN)."""
    N, C, L = x.shape
    L_out = pool_output_length(L, kernel_size, stride, padding)
    assert L_out >= 1 and 2 * padding <= kernel_size
    y = np.empty((N, C, L_out), dtype=x.dtype)
    argmax = np.empty((N, C, L_out), dtype=np.int64)
    if kernel_size == 2 and stride == 2 and padding == 0 and L % 2 == 0:
        _maxpool2_into(x, y, argmax, L_out)
    else:
        _maxpool_forward(x.reshape(N * C, L), kernel_size, stride, padding,
                         y.reshape(N * C, L_out), argmax.reshape(N * C, L_out))
    return y, argmax


def maxpool1d_backward(dout, argmax, length):
    """``dx (N, C, length)``: each ``dout`` goes to its window's arg-max; overlaps accumulate."""
    N, C, L_out = dout.shape
    dx = np.empty((N, C, length), dtype=dout.dtype)
    if length != 2 * L_out or not _maxpool2_backward_into(dout, argmax, dx, L_out):
        _maxpool_backward(dout.reshape(N * C, L_out), argmax.reshape(N * C, L_out),
                          dx.reshape(N * C, length))
    return dx


def avgpool1d_forward(x, kernel_size, stride, padding):
    """Window means, zeros of the padding counted: every window divides by ``kernel_size``."""
    N, C, L = x.shape
    L_out = pool_output_length(L, kernel_size, stride, padding)
    assert L_out >= 1 and 2 * padding <= kernel_size
    y = np.empty((N, C, L_out), dtype=x.dtype)
    rows, L_in = _avgpool_rows(N * C, L, L_out, kernel_size, stride, padding)
    L_out_in = L_in // L * L_out
    _avgpool_forward(x.reshape(rows, L_in), kernel_size, stride, padding,
                     y.reshape(rows, L_out_in),
                     *_inner_span(L_in, L_out_in, kernel_size, stride, padding))
    return y


def avgpool1d_backward(dout, length, kernel_size, stride, padding):
    """``dx (N, C, length)``: each ``dout / kernel_size`` spread over its window."""
    N, C, L_out = dout.shape
    dx = np.empty((N, C, length), dtype=dout.dtype)
    rows, L_in = _avgpool_rows(N * C, length, L_out, kernel_size, stride, padding)
    L_out_in = L_in // length * L_out
    _avgpool_backward(dout.reshape(rows, L_out_in), kernel_size, stride, padding,
                      dx.reshape(rows, L_in),
                      *_inner_span(L_in, L_out_in, kernel_size, stride, padding))
    return dx


def _avgpool_rows(R, L, L_out, kernel_size, stride, padding):
    """``(rows, length)``: the rows the average pooling kernels take. Windows that tile their
    rows exactly (``kernel_size == stride``, no padding, nothing left over: ``AvgPool1d(2)``
    over even rows) make the whole batch one row, so that short rows cost no loop of their own.
    With the one-step loops of windows of 2, (128, 32, 28) k2 s2 float32 through
    ``fastnet.functional``: forward 0.18 -> 0.015 ms, backward 0.19 -> 0.020 ms (NumPy's
    baseline 0.98 and 0.065 ms)."""
    if R > 1 and kernel_size == stride and padding == 0 and L == L_out * stride:
        return 1, R * L
    return R, L
