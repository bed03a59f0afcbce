"""The kernel contract, the installed layout, import cost, the Numba cache and determinism."""
import inspect
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import fastnet.functional as F
from fastnet import kernels
from fastnet.kernels import BACKENDS, CONTRACT


def exported(module):
    return {name for name, obj in vars(module).items()
            if not name.startswith("_") and callable(obj) and not isinstance(obj, types.ModuleType)}


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_exports_exactly_the_contract(name):
    assert exported(kernels.load(name)) == set(CONTRACT)


@pytest.mark.parametrize("kernel", CONTRACT)
def test_backends_share_signatures(kernel):
    numba_k, numpy_k = (getattr(kernels.load(name), kernel) for name in ("numba", "numpy"))
    assert inspect.signature(numba_k) == inspect.signature(numpy_k)
    for p in inspect.signature(numba_k).parameters.values():
        assert p.kind == p.POSITIONAL_OR_KEYWORD and p.default is p.empty


def test_only_numba_backend_imports_numba():
    root = os.path.dirname(kernels.__file__)
    for folder, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py") and "numba_backend" not in folder:
                assert "import numba" not in open(os.path.join(folder, f)).read(), f


def run_fresh(code, env=None, cwd=None):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=600)


def test_no_top_level_kernels_package_is_installed(tmp_path):
    # A PYTHONPATH naming the checkout's root makes its kernels/ importable as such: left out
    # here, this asks what the installation provides.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
             if p and os.path.abspath(p) != root]
    out = subprocess.run([sys.executable, "-c", "import importlib.util, fastnet.kernels; "
                          "print(importlib.util.find_spec('kernels'), fastnet.kernels.__name__)"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)})
    if "No module named 'fastnet'" in out.stderr:
        pytest.skip("fastnet is not installed (the tests run from PYTHONPATH)")
    assert out.stdout.split() == ["None", "fastnet.kernels"], out.stderr


def test_import_works_from_the_repository_root():
    """`python -m fastnet ...` in a checkout imports the source folder, whose kernels live in
    ../kernels; they must still be found as fastnet.kernels."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = run_fresh("import fastnet, fastnet.kernels, fastnet.functional as F, numpy as np; "
                    "print(F.relu(np.ones(2, np.float32)).sum())", cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2.0"


def test_import_is_fast_and_compiles_nothing(tmp_path):
    code = ("import time, sys; t = time.perf_counter(); import fastnet; "
            "print(time.perf_counter() - t, 'numba' in sys.modules)")
    run_fresh(code, cwd=tmp_path)                    # first import: bytecode caches written
    seconds, numba_loaded = run_fresh(code, cwd=tmp_path).stdout.split()
    assert numba_loaded == "False"                   # nothing compiled, numba not even imported
    assert float(seconds) < 0.5


def test_numba_cache_serves_a_fresh_process(tmp_path):
    """Second process loads serial and parallel kernels from the on-disk cache."""
    code = """
import numpy as np, fastnet, fastnet.functional as F
from fastnet.kernels.numba_backend import activations, optimizers, losses
x = np.random.default_rng(0).standard_normal(200_000).astype(np.float32)
F.relu(x); F.sigmoid(x[:10])                         # parallel branch, serial branch
F.adagrad_update_(x.copy(), x, np.zeros_like(x), 0.1)
F.softmax_cross_entropy(x[:1000].reshape(100, 10), np.zeros(100, np.int64))    # serial
F.softmax_cross_entropy(x.reshape(2000, 100), np.zeros(2000, np.int64))       # parallel
ks = [activations._relu_forward, activations._sigmoid_forward, optimizers._adagrad,
      losses._sce_index_narrow, losses._sce_index_parallel]
if optimizers.BY_ROOT:          # float64: the parallel kernel with the root-step intrinsic
    x64 = x.astype(np.float64)
    F.adagrad_update_(x64.copy(), x64, np.zeros_like(x64), 0.1)
    ks.append(optimizers._adagrad64)
# The conv GEMM path split over two threads: its parallel runner, and its slots (C functions
# that call BLAS by symbol name).
from fastnet.kernels.numba_backend import _blas, _slots
xc, Wc = x[:64 * 28 * 28].reshape(64, 28, 28), x[:32 * 28 * 3].reshape(32, 28, 3)
with fastnet.set_num_threads(2):
    yc = F.conv1d(xc, Wc, None, 1, 1, activation="relu")
    F.conv1d_backward(yc, xc, Wc, 1, 1, y=yc, activation="relu")
    # The k=2 max pooling's slot (both passes), and the dense products' slot where the layer
    # takes the micro-kernel (AVX-512 hosts).
    yp, ip = F.max_pool1d(yc, 2, return_indices=True)
    F.max_pool1d_backward(yp, ip, yc.shape[2])
    from fastnet.kernels.numba_backend import dense_blocked
    xd, Wd = x[:20 * 784].reshape(20, 784), np.resize(x, (784, 400))
    yd = F.dense(xd, Wd, None, "relu")
    F.dense_backward(yd, xd, Wd, yd, "relu")
    products = 1 if dense_blocked.pays(20, 784, 400, np.float32) else 0
hits = sum(sum(k.stats.cache_hits.values()) for k in ks)
misses = sum(sum(k.stats.cache_misses.values()) for k in ks)
if _blas.available():
    ks.append(_slots._run)
    hits += sum(_slots._run.stats.cache_hits.values())
    misses += sum(_slots._run.stats.cache_misses.values())
    slots = _slots.compiled_slots()
    assert len(slots) == 3 + products, slots     # conv forward, conv backward, pooling, dense
    ks += slots
    hits += sum(s.cache_hits for s in slots)
    misses += sum(1 - s.cache_hits for s in slots)
print(hits, misses, len(ks))
"""
    # No helper compiling ahead (``_ahead``): the first process compiles every kernel itself.
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "FASTNET_BACKEND": "numba",
           "FASTNET_COMPILE_AHEAD": "0"}
    first = run_fresh(code, env)
    assert first.returncode == 0, first.stderr
    hits, misses, n = first.stdout.split()
    assert (hits, misses) == ("0", n)
    second = run_fresh(code, env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == [n, "0", n], second.stderr


def test_results_are_bit_identical_across_calls(backend, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 300)).astype(dtype)
    W = rng.standard_normal((300, 200)).astype(dtype)
    b = rng.standard_normal(200).astype(dtype)
    y = rng.integers(0, 200, 512)

    def step():
        out = F.dense(x, W, b, "sigmoid")
        loss, probs = F.softmax_cross_entropy(out, y, return_probs=True)
        grads = F.dense_backward(F.softmax_cross_entropy_backward(probs, y), x, W, out, "sigmoid")
        return [np.asarray(loss), *grads, np.asarray(F.mse(out, out * 0.5))]

    first, second = step(), step()
    for a, b_ in zip(first, second):
        assert a.tobytes() == b_.tobytes()
