"""Shared benchmark machinery: pinned threads, recorded settings, and the three members.

Every benchmark group holds the NumPy baseline, the Numba backend and, when ``torch`` is
importable, PyTorch CPU, so ratios are measured side by side in one run. Each member is called
once before timing (compilation and first-touch allocation stay outside the timed region; the
compile time is reported by ``bench_compile.py``), and its result is checked against the NumPy
baseline before it is timed.

``FASTNET_BENCH_THREADS`` pins BLAS, Numba and torch to that many threads (default: all cores).
``FASTNET_BENCH_SMOKE=1`` runs one round of each benchmark, for CI.
"""
import os

import numpy as np
import pytest

import fastnet

MEMBERS = ("numpy", "numba", "torch")
THREADS = int(os.environ.get("FASTNET_BENCH_THREADS", os.cpu_count() or 1))
SMOKE = os.environ.get("FASTNET_BENCH_SMOKE") == "1"

try:
    import torch
except ImportError:        # torch is an optional comparison, never a dependency
    torch = None


@pytest.fixture(scope="session", autouse=True)
def pinned_threads():
    with fastnet.set_num_threads(THREADS):
        if torch is not None:
            torch.set_num_threads(THREADS)
        yield


@pytest.fixture(params=MEMBERS)
def member(request):
    """``"numpy"`` / ``"numba"`` (fastnet backends) or ``"torch"`` (skipped when missing)."""
    if request.param == "torch" and torch is None:
        pytest.skip("torch not installed")
    if request.param == "torch":
        yield "torch"
    else:
        with fastnet.set_backend(request.param):
            yield request.param


def run(benchmark, fn, *, group, member, check=None, **info):
    """Warm up ``fn`` once, check its result, then time it; records threads and versions."""
    result = fn()
    if check is not None:
        check(result)
    benchmark.group = group
    benchmark.extra_info.update(member=member, threads=THREADS, numpy=np.__version__,
                                torch=getattr(torch, "__version__", None), **info)
    if SMOKE:
        return benchmark.pedantic(fn, rounds=1, iterations=1)
    return benchmark(fn)


def reference():
    """``with reference(): ...`` computes with the NumPy baseline (the correctness yardstick)."""
    return fastnet.set_backend("numpy")


def to_numpy(a):
    """A torch tensor (or tuple of them) as NumPy, for correctness checks."""
    if isinstance(a, (tuple, list)):
        return type(a)(to_numpy(v) for v in a)
    if torch is not None and isinstance(a, torch.Tensor):
        return a.detach().numpy()
    return np.asarray(a)


def assert_close(got, want, dtype):
    rtol = 1e-3 if np.dtype(dtype) == np.float32 else 1e-8
    for g, w in zip(got if isinstance(got, (tuple, list)) else [got],
                    want if isinstance(want, (tuple, list)) else [want]):
        np.testing.assert_allclose(to_numpy(g), to_numpy(w), rtol=rtol, atol=rtol)
