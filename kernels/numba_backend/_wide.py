"""``wide_vectors()``: let LLVM vectorise the calling function's loops at the full AVX-512 width.

Why: LLVM's model of Intel's AVX-512 server cores (Skylake-X to Emerald Rapids) prefers 256-bit
vectors (its ``prefer-256-bit`` tuning), so an auto-vectorised Numba loop there runs 8 float32
lanes, not 16. For loops bound by arithmetic, such as ``exp``, ``sigmoid`` and ``tanh`` from
``_vecmath``, that halves the rate. Measured on the Intel Xeon (Emerald Rapids), one thread,
float32 / float64 ``tanh`` over 1e6 values: 0.60 / 1.19 ns per value at 256 bits, 0.43 / 0.87
at 512; NumPy's own SIMD ``np.tanh`` 0.35 / 1.61. Loops bound by memory (ReLU, the updates,
pooling) gained nothing or lost 10-25 % when the whole process was set to 512 bits (fourth
session, `bench/HISTORY.md`), so only the kernels that measured faster call this.

How: a call ``wide_vectors()`` gives the LLVM function being lowered the attribute
``"prefer-vector-width"="512"``, which overrides the tuning for that function alone (LLVM's X86
back end reads it per function). It emits no instructions. Where it goes:

* at the top of a serial kernel, or of a ``@jit`` helper whose own loops should be wide (a
  helper is compiled and vectorised as a function of its own before the caller inlines it);
* inside a ``prange`` loop's body: Numba moves the body into a function of its own.

Results do not change with the width: each lane computes what a scalar would. (A reduction's
order of additions does change, as it does between any two vector widths.)

The attribute is only set where Numba compiles for AVX-512 (``_config.numba_compiles_avx512``):
elsewhere 256 bits is the most there is. Under ``NUMBA_DISABLE_JIT=1`` the kernels run as plain
Python and ``wide_vectors`` is a Python function that does nothing.

llvmlite's IR builder accepts only LLVM's keyword attributes in a function's attribute set (it
checks the name against a list), so the string attribute is added past that check, with
``set.add``; llvmlite writes the set's items into the IR text as they are.
"""
from numba import types
from numba.core import config
from numba.extending import intrinsic

from ._config import numba_compiles_avx512

#: The LLVM function attribute that asks for 512-bit vectors.
_WIDE_ATTRIBUTE = '"prefer-vector-width"="512"'

#: Whether ``wide_vectors()`` sets the attribute (Numba compiles for AVX-512).
WIDE = numba_compiles_avx512()


def _wide_vectors(typingctx):
    """Typing and code generation of :func:`wide_vectors` (a Numba intrinsic)."""
    def codegen(context, builder, signature, args):
        if WIDE:
            set.add(builder.function.attributes, _WIDE_ATTRIBUTE)
        return context.get_dummy_value()
    return types.none(), codegen


if config.DISABLE_JIT:
    def wide_vectors():
        """Nothing to do: the kernels run as plain Python."""
else:
    wide_vectors = intrinsic(_wide_vectors)
