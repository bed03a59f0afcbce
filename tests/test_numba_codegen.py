"""Code generation of the Numba kernels: the loops that divide still vectorise.

Numba's default error model ("python") tests every ``/`` for a zero divisor so that it can raise
``ZeroDivisionError``, and that branch stops LLVM from vectorising the loop around it. The kernels
compile with NumPy's model instead (IEEE inf/nan, ``_config.ERROR_MODEL``); under the default one
the serial branches of AdaGrad, RMSprop and Adam ran scalar, 3-4x slower (measured: Adam over
2688 float32 values 13 us against 5 us), while their ``prange`` branches, which Numba always
compiles with NumPy's model, did not. The test compiles fresh, uncached copies of those kernels
with their own options (``parallel=False``, so every loop is compiled inline) and looks for
vector types in the LLVM IR: a structural check, not a timing.
"""
import re

import numba
import numpy as np
import pytest

from fastnet.kernels.numba_backend import losses, optimizers

VECTOR = re.compile(r"<\d+ x (float|double)>")


def _fresh_serial(kernel):
    options = {k: v for k, v in kernel.targetoptions.items() if k != "nopython"}  # njit's own
    options["parallel"] = False
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
    kernel = _fresh_serial(getattr(module, name))
    kernel(*_args(name, dtype))
    (ir,) = kernel.inspect_llvm().values()
    assert VECTOR.search(ir), f"{name} ({dtype}) compiled without vector instructions"
