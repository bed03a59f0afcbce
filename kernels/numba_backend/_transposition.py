"""Transpositions of 2-D arrays, ``dst[j, i] = src[i, j]`` (Numba): the convolutions' items
between ``(C, L)`` and ``(L, C)``."""
from ._config import jit
from ._microkernels import VECTOR_BYTES, transpose_whole_block


@jit
def transpose(src, dst):
    """``dst[j, i] = src[i, j]`` for ``src (I, J)``, ``dst (J, I)`` (rows contiguous; ``src`` may
    be a row slice).

    One side of a transposition is read or written with a stride. The loop order puts that
    stride on the shorter row: a long row's stride (4 KB for 1024 float32 values) sends the
    accesses of successive inner iterations to the same L1 cache set, which holds 8 lines.
    Measured one thread: (32, 1024) float32 with the stride on the long rows 82 us, on the short
    rows 21 us; (1024, 64) 303 against 48 us; equal at (28, 28). (:func:`transpose_tiled` is
    faster still on large items but compiles ~1 s slower per caller, so only the windows chain,
    compiled for long items alone, uses it.)"""
    I, J = src.shape
    if J <= I:                               # strided reads (stride J), contiguous writes
        for j in range(J):
            d = dst[j]
            for i in range(I):
                d[i] = src[i, j]
    else:                                    # contiguous reads, strided writes (stride I)
        for i in range(I):
            r = src[i]
            for j in range(J):
                dst[j, i] = r[j]


@jit
def transpose_tiled(src, dst):
    """:func:`transpose` in blocks of ``V x V`` values (``V`` a vector's lanes), each loaded as
    ``V`` vectors, transposed in registers and stored as ``V`` (``transpose_whole_block``); the
    rows and columns past the last whole block are copied one by one. The blocks address both
    arrays by their row lengths: each must be C-contiguous or a row slice of a C-contiguous
    array (the windows chain's ``xt[p:p+L]``). The blocks run along the longer side first, so
    that the ``V`` rows a block writes or reads a long row apart (4 KB for 1024 float32 values)
    are the only ones in flight: with the blocks along the short side, a (1024, 64) float32
    transposition took 40 us, as long as scalar tiles.

    Measured on an AVX2 host (AMD EPYC, Zen 3), one thread, 5 alternating rounds, against 8 x 8
    tiles of scalar copies: float32 (32, 1024) 7.3 against 18.3 us, (1024, 64) 22 against 35,
    (64, 1024) 14 against 27, (1024, 32) 10 against 20; float64 (1024, 64) 42 against 49,
    (1024, 32) 14 against 19, (64, 1024) 40-43 against 34-40."""
    I, J = src.shape
    V = VECTOR_BYTES // src.itemsize
    IV, JV = I - I % V, J - J % V
    if I >= J:
        for j0 in range(0, JV, V):
            for i0 in range(0, IV, V):
                transpose_whole_block(src, i0 * J + j0, J, dst, j0 * I + i0, I)
    else:
        for i0 in range(0, IV, V):
            for j0 in range(0, JV, V):
                transpose_whole_block(src, i0 * J + j0, J, dst, j0 * I + i0, I)
    for j in range(JV, J):                          # the columns past the last whole block
        d = dst[j]
        for i in range(I):
            d[i] = src[i, j]
    for j in range(JV):                             # and the rows
        d = dst[j]
        for i in range(IV, I):
            d[i] = src[i, j]
