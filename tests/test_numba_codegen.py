"""Code generation of the Numba kernels: the loops that divide still vectorise, and the loops
bound by arithmetic run at 512 bits where Numba compiles for AVX-512 (second part, below),
and only the dense product prefetches (third part).

Numba's default error model ("python") tests every ``/`` for a zero divisor so that it can raise
``ZeroDivisionError``, and that branch stops LLVM from vectorising the loop around it. The kernels
compile with NumPy's model instead (IEEE inf/nan, ``_config.ERROR_MODEL``); under the default one
the serial branches of AdaGrad, RMSprop and Adam ran scalar, 3-4x slower (measured: Adam over
2688 float32 values 13 us against 5 us), while their ``prange`` branches, which Numba always
compiles with NumPy's model, did not. The test compiles fresh, uncached copies of those kernels
with their own options (``parallel=False``, so every loop is compiled inline) and looks for
vector types in the LLVM IR: a structural check, not a timing.
"""
import os
import re
import subprocess
import sys

import numba
import numpy as np
import pytest

from fastnet.kernels.numba_backend import _config, _scalar, _wide as wide, activations, losses, \
    optimizers, pooling

VECTOR = re.compile(r"<\d+ x (float|double)>")


def _fresh(kernel, **changes):
    """An uncached copy of ``kernel`` with its own options but ``changes`` (Numba shows no IR
    of cached code)."""
    options = {k: v for k, v in kernel.targetoptions.items() if k != "nopython"}  # njit's own
    options.update(cache=False, **changes)
    return numba.njit(**options)(kernel.py_func)


def _args(kernel_name, dtype):
    a = np.ones(64, dtype=dtype)
    s = 0.5                           # hyper-parameters arrive as Python floats
    return {"_adagrad": (a, a, a, s, s), "_rmsprop": (a, a, a) + (s,) * 5,
            "_adam": (a, a, a, a) + (s,) * 8, "_bce_grad": (a, a, s, a)}[kernel_name]


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=str)
@pytest.mark.parametrize("module, name", [(optimizers, "_adagrad"), (optimizers, "_rmsprop"),
                                          (optimizers, "_adam"), (losses, "_bce_grad")])
def test_dividing_loops_vectorise(module, name, dtype):
    kernel = _fresh(getattr(module, name), parallel=False)
    kernel(*_args(name, dtype))
    (ir,) = kernel.inspect_llvm().values()
    assert VECTOR.search(ir), f"{name} ({dtype}) compiled without vector instructions"


# The loss sums: BCE's two logs (``_vecmath``'s, inlined with its term: as a call, the loop ran
# scalar) and both sums' reads, which must be plain vector loads: indexed from a chunk's start
# that Numba could not know was not negative, they became gathers (MSE 4-5x slower).
GATHER = re.compile(r"\bv(p)?gather\w*")


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=str)
@pytest.mark.parametrize("name", ["_bce_sum", "_sq_err_sum"])
def test_loss_sums_are_vector_loops_without_gathers(name, dtype):
    kernel = _fresh(getattr(losses, name), parallel=False)
    kernel(np.full(4096, 0.5, dtype), np.zeros(4096, dtype))
    (ir,) = kernel.inspect_llvm().values()
    (asm,) = kernel.inspect_asm().values()
    own = ir[ir.index(f"{len(name)}{name}B"):]
    own = own[:own.index("\n}\n")]                       # the kernel's own function
    assert VECTOR.search(own), f"{name} ({dtype}) compiled without vector instructions"
    assert not GATHER.search(asm), f"{name} ({dtype}) gathers: {GATHER.findall(asm)[:3]}"


# --- 512-bit vectors where arithmetic bounds the loop (``_wide``) -----------------------------
#
# LLVM prefers 256-bit vectors on Intel's AVX-512 server cores; ``wide_vectors()`` gives the
# function it is lowered in the attribute "prefer-vector-width"="512". The attribute must land
# on the function whose loops do the work: the kernel's own, and in a ``prange`` kernel the
# loop body's function too (Numba moves it into a function of its own, a "parfor gufunc"), or
# the loops stay at 256 bits without any error.

#: (module, kernel, whether the kernel's own function loops too, not only its ``prange`` body)
WIDE = [(activations, "_tanh_forward", True), (activations, "_sigmoid_forward", True),
        (activations, "_tanh_", True), (activations, "_sigmoid_", True),
        (activations, "_softmax_row", True), (activations, "_softmax_rows", True),
        (losses, "_sce_index_narrow", True), (losses, "_sce_index_wide", True),
        (losses, "_sce_index_parallel", False)]


def _wide_args(name, dtype):
    if name in ("_tanh_forward", "_sigmoid_forward"):
        return np.ones(1 << 17, dtype), np.empty(1 << 17, dtype)
    if name in ("_tanh_", "_sigmoid_", "relu_row_"):
        return (np.ones(1 << 17, dtype),)
    if name == "_softmax_row":
        return np.ones((3, 600), dtype), np.empty((3, 600), dtype), 1
    if name == "_softmax_rows":
        return np.ones((300, 10), dtype), np.empty((300, 10), dtype)
    return np.ones((300, 10), dtype), np.zeros(300, np.int64)


def _functions(ir):
    """``{mangled name: (its attributes' text, its body)}`` for the functions defined in ``ir``."""
    groups = dict(re.findall(r"^attributes (#\d+) = \{([^}]*)\}", ir, re.M))
    found = {}
    for match in re.finditer(r"^define [^\n]*?@(\S+?)\(([^\n]*)\{\n(.*?)^\}", ir, re.M | re.S):
        name, rest, body = match.groups()
        refs = re.findall(r"#\d+", rest[rest.rindex(")"):])
        found[name] = (" ".join(groups.get(ref, "") for ref in refs), body)
    return found


def _compiled(module, name, dtype):
    """The kernel's own function and its ``prange`` bodies' functions: ``{name: (attributes,
    body)}``. (A body's function may be inlined into Numba's ``__gufunc__`` wrapper, after it
    was vectorised on its own.)"""
    kernel = _fresh(getattr(module, name))
    kernel(*_wide_args(name, dtype))
    functions = _functions("\n".join(kernel.inspect_llvm().values()))
    own = f"{len(name)}{name}B"                  # the kernel's part of its mangled name
    return ({f: v for f, v in functions.items()
             if own in f and not f.startswith(("_ZN7cpython", "cfunc"))},
            {f: v for f, v in functions.items() if "numba_parfor_gufunc" in f})


@pytest.mark.skipif(not wide.WIDE, reason="Numba does not compile for AVX-512 here")
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=str)
@pytest.mark.parametrize("module, name, loops", WIDE, ids=[name for _, name, _ in WIDE])
def test_arithmetic_loops_run_at_512_bits(module, name, loops, dtype):
    full = f"<{64 // dtype.itemsize} x {'float' if dtype == np.float32 else 'double'}>"
    own, bodies = _compiled(module, name, dtype)
    (attributes, body), = own.values()
    if loops:
        assert wide._WIDE_ATTRIBUTE in attributes, f"{name} was compiled without wide vectors"
        assert full in body, f"{name}'s loops are not {full}"
    if getattr(module, name).targetoptions.get("parallel", False):
        assert bodies, f"{name}: no prange body compiled"
        assert any(full in body for _, body in bodies.values()), \
            f"{name}'s prange body is not {full}"


# --- Max pooling's stride-2 taps: interleaved loads, not gathers -----------------------------
#
# ``pooling._rows_in_place`` reads ``xs[2*j + k]``. LLVM can load such values as whole vectors
# and pick the lanes by two-source permutes (AVX-512's ``vpermt2``/``vpermi2``), or gather them
# one lane at a time; on the Zen 4 the gathers ran the pass at half the speed ((8, 16, 1000)
# k3 s2 p1 float32: 0.06 against 0.14 ms). Which one LLVM chose turned on how the taps' buffer
# was sized (``np.empty(max(n, 0))``, not ``np.empty(n)``).

@pytest.mark.skipif(not wide.WIDE, reason="Numba does not compile for AVX-512 here")
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=str)
def test_max_pool_stride_two_taps_load_vectors_and_permute(dtype):
    kernel = _fresh(pooling._rows_in_place)
    x = np.zeros((4, 1000), dtype)
    y, argmax = np.empty((4, 500), dtype), np.empty((4, 500), np.int64)
    kernel(x, 3, 2, 1, y, argmax, 1, 500)
    (asm,) = kernel.inspect_asm().values()
    assert re.search(r"\bvperm[it]2", asm), f"_rows_in_place ({dtype}) has no two-source permutes"


# --- In-place loops store whole vectors --------------------------------------------------------
#
# A loop that writes over its input and stores some lanes back unchanged (a positive value
# under ReLU's select, a NaN passed through by exp or tanh) let LLVM keep only the other lanes'
# stores, as masked stores: AVX2's ``vmaskmovps``, which AMD's Zen 3 runs slowly (the conv
# forward's ReLU pass over 57 344 float32 values took 27 us instead of 4). The kernels compute
# every value they store (``_scalar.relu_row_``, ``_vecmath``'s NaN), so whole vectors are
# stored on every target. The test reads the assembly of fresh copies for masked stores to
# memory, AVX2's or AVX-512's (a mask register on the store).

MASKED_STORE = re.compile(r"vmaskmov\w*\s+%\w+, %\w+, [^\n]*\(|"
                          r"vmov\w*\s+%[xyz]mm\d+, [^\n%]*\([^\n]*\)\s*\{%k\d\}")
IN_PLACE = [(_scalar, "relu_row_"), (activations, "_sigmoid_"), (activations, "_tanh_"),
            (activations, "_softmax_rows"), (losses, "_sce_index_narrow")]


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=str)
@pytest.mark.parametrize("module, name", IN_PLACE, ids=[name for _, name in IN_PLACE])
def test_in_place_loops_store_whole_vectors(module, name, dtype):
    kernel = _fresh(getattr(module, name), parallel=False)
    kernel(*_wide_args(name, dtype))
    (asm,) = kernel.inspect_asm().values()
    stores = MASKED_STORE.findall(asm)
    assert not stores, f"{name} ({dtype}) stores with masks: {stores[:3]}"


def test_the_masked_store_pattern_finds_both_kinds():
    # AT&T syntax: a masked store's memory operand comes last (AVX2) or before the mask (AVX-512).
    assert MASKED_STORE.search("\tvmaskmovps\t%ymm0, %ymm1, (%rax,%rsi,4)")
    assert MASKED_STORE.search("\tvmovups\t%zmm0, 64(%rax) {%k1}")
    assert not MASKED_STORE.search("\tvmaskmovps\t(%rax), %ymm1, %ymm2")        # a load
    assert not MASKED_STORE.search("\tvmovups\t(%rax), %zmm0 {%k1} {z}")         # a load
    assert not MASKED_STORE.search("\tvmovaps\t%zmm1, %zmm0 {%k1}")              # registers
    assert not MASKED_STORE.search("\tvmovups\t%ymm0, (%rax)")                    # a whole store


def _default_width_is_512():
    """Whether LLVM vectorises a plain loop at 512 bits here without being asked: not on
    Intel's AVX-512 server cores (their tuning prefers 256 bits), yes on AMD's Zen 4."""
    def double(x, y):
        for i in range(x.size):
            y[i] = 2 * x[i]
    kernel = numba.njit(fastmath=_config.FASTMATH)(double)
    kernel(np.ones(1024, np.float32), np.empty(1024, np.float32))
    return "<16 x float>" in "\n".join(kernel.inspect_llvm().values())


def test_wide_vectors_is_inert_where_numba_has_no_avx512(monkeypatch):
    monkeypatch.setattr(wide, "WIDE", False)
    own, bodies = _compiled(activations, "_tanh_forward", np.dtype(np.float32))
    for attributes, body in list(own.values()) + list(bodies.values()):
        assert wide._WIDE_ATTRIBUTE not in attributes
        # Where LLVM's own choice is 256 bits, the width shows that nothing else asked for 512.
        assert "<16 x float>" not in body or _default_width_is_512()


@pytest.mark.parametrize("env", [{"NUMBA_CPU_NAME": "generic"}, {"NUMBA_DISABLE_JIT": "1"}],
                         ids=["generic-cpu", "no-jit"])
def test_wide_kernels_run_without_avx512_or_jit(env, tmp_path):
    # Without AVX-512 the attribute is not set; without the JIT ``wide_vectors`` is a plain
    # Python function (an intrinsic cannot run as Python).
    code = """
import numpy as np
from fastnet.kernels.numba_backend import _wide, activations as A, losses as L
x = np.linspace(-5, 5, 70007).reshape(7, 10001)
for dtype in (np.float32, np.float64):
    z = x.astype(dtype)
    assert np.allclose(A.tanh_forward(z), np.tanh(x), atol=1e-6)
    assert np.allclose(A.sigmoid_forward(z), 1 / (1 + np.exp(-x)), atol=1e-6)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    assert np.allclose(A.softmax_forward(z), e / e.sum(axis=1, keepdims=True), atol=1e-6)
    labels = np.zeros(7, np.int64)
    loss, _ = L.softmax_cross_entropy_forward(z[:, :10].copy(), labels)
    want = -np.log(np.exp(x[:, 0]) / np.exp(x[:, :10]).sum(axis=1)).mean()
    assert np.isclose(loss, want, rtol=1e-5), (loss, want)
print(_wide.WIDE)
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), **env)
    env.pop("NUMBA_CPU_FEATURES", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    if "NUMBA_CPU_NAME" in env:
        assert done.stdout.split() == ["False"]              # no attribute without AVX-512


def test_the_micro_kernels_follow_what_numba_compiles_for(tmp_path):
    """With ``NUMBA_CPU_NAME=generic`` the blocks sized for AVX-512's 32 registers are not
    used, whatever the host has: compiled for plain x86-64 they ran the dense and conv products
    40-80x slower than on AVX-512 (an audit's finding). The products go to BLAS and im2col."""
    code = """
import numpy as np
from fastnet.kernels.numba_backend import _microkernels as mk, conv1d_blocked, dense_blocked
print(mk.VECTOR_BYTES, dense_blocked.AVAILABLE, conv1d_blocked.AVAILABLE,
      dense_blocked.pays(128, 896, 128, np.float32))
"""
    env = dict(os.environ, NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_CPU_FEATURES", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["32", "False", "False", "False"]


# --- prefetching in the outer micro-kernel ------------------------------------------------------

def _slot_ir(pyfunc):
    """The LLVM IR of ``pyfunc`` compiled, uncached, as a float32 slot (``_slots``)."""
    from numba import types
    signature = types.void(types.int64, types.int64, types.CPointer(types.int64),
                           types.CPointer(types.float32))
    return numba.cfunc(signature, fastmath=_config.FASTMATH,
                       error_model=_config.ERROR_MODEL)(pyfunc).inspect_llvm()


def test_only_the_dense_slot_prefetches():
    # ``x @ W`` prefetches W's rows ahead (dense_blocked.PREFETCH_ROWS), one per vector of the
    # block; the convolution's weight gradient passes ahead=0, which must leave no prefetch.
    from fastnet.kernels.numba_backend import conv1d_blocked, dense_blocked
    if not dense_blocked.AVAILABLE:
        pytest.skip("the micro-kernels need AVX-512 and the JIT")
    prefetches = "call void @llvm.prefetch"
    # NV per step; LLVM may unroll the step loop (for Zen 4 it does: 3 copies), so a multiple
    count = _slot_ir(dense_blocked._dense_slot).count(prefetches)
    assert count > 0 and count % dense_blocked.NV == 0, count
    assert prefetches not in _slot_ir(conv1d_blocked._backward_slot)
