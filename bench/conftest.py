"""pytest-benchmark wiring for the cases defined in ``fastnet.benchmarking``.

Every group holds the NumPy baseline, the Numba backend and, when ``torch`` is importable,
PyTorch CPU, so ratios are measured side by side in one run. Each member is called once before
timing (compilation and first-touch allocation stay outside the timed region; ``bench_startup``
reports compile time), and its result is checked against the NumPy baseline's before it is timed.

``FASTNET_BENCH_THREADS`` pins BLAS, Numba and torch to that many threads (default: all cores);
the count is recorded in each benchmark's ``extra_info``. ``FASTNET_BENCH_SMOKE=1`` runs one
round of each benchmark (CI). For the Markdown ratio table use ``python -m fastnet bench``.
"""
import os

import fastnet             # first: its thread settings must precede NumPy's OpenBLAS (backend.py)
import numpy as np
import pytest
from fastnet.benchmarking.cases import MEMBERS, Unsupported
from fastnet.benchmarking.timing import member_context

# Capped at the usable CPUs, as fastnet.set_num_threads caps BLAS and Numba: torch gets the same.
THREADS = min(int(os.environ.get("FASTNET_BENCH_THREADS", 0)) or fastnet.backend._usable_cpus(),
              fastnet.backend._usable_cpus())
SMOKE = os.environ.get("FASTNET_BENCH_SMOKE") == "1"


@pytest.fixture(scope="session", autouse=True)
def pinned_threads():
    with fastnet.set_num_threads(THREADS):
        try:
            import torch
            torch.set_num_threads(THREADS)
        except ImportError:
            pass
        yield


@pytest.fixture(params=MEMBERS)
def member(request):
    return request.param


def case_ids(cases):
    return [c.name.replace(" ", "-") for c in cases]


def run_case(benchmark, case, member):
    """Warm up, check against the NumPy baseline, then time ``case`` for ``member``."""
    with member_context("numpy"):
        reference = case.make("numpy")()
    with member_context(member):
        try:
            fn = case.make(member)
        except Unsupported as why:
            pytest.skip(str(why))
        result = fn()
        if case.check is not None and member != "numpy":
            case.check(result, reference)
        benchmark.group = case.name
        benchmark.extra_info.update(member=member, threads=THREADS, op=case.op, shape=case.shape,
                                    dtype=case.dtype, direction=case.direction, size=case.size,
                                    numpy=np.__version__, note=case.note, **case.info)
        if SMOKE:
            benchmark.pedantic(fn, rounds=1, iterations=1)
        else:
            benchmark(fn)
