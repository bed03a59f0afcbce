"""What the pytest-benchmark files in ``bench/`` share (importable in any pytest import mode,
unlike a ``conftest``): the settings from the environment, case ids and :func:`run_case`.

``FASTNET_BENCH_THREADS`` pins BLAS, Numba and torch to that many threads (default:
``FASTNET_NUM_THREADS``, else all usable cores; at most what Numba's worker pool holds, so that
the three run alike); the counts in effect are recorded in each benchmark's ``extra_info``,
with the cores other processes took while it ran (``host_other_cores``, see ``hostload``).
``FASTNET_BENCH_SMOKE=1`` runs one round of each benchmark (CI).
"""
import os
import re

import pytest

from ..backend import _usable_cpus
from . import hostload
from .cases import Unsupported
from .report import blas_line, thread_counts, usable_threads, versions
from .timing import member_context


def _threads():
    value = os.environ.get("FASTNET_BENCH_THREADS", "")
    if not value:
        return usable_threads()[0]
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise pytest.UsageError(f"FASTNET_BENCH_THREADS={value!r}; expected a positive integer "
                                f"(or unset: all {_usable_cpus()} usable cores)")
    return usable_threads(n)[0]


THREADS = _threads()
SMOKE = os.environ.get("FASTNET_BENCH_SMOKE") == "1"


def case_ids(cases):
    """Test ids: the case names, without epoch (a)'s "(PyTorch float32)" note, so that ``-k
    torch`` selects the PyTorch members only."""
    return [re.sub(r" \(PyTorch [^)]*\)", "", c.name).replace(" ", "-") for c in cases]


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
        benchmark.extra_info.update(member=member, threads=thread_counts(), op=case.op,
                                    shape=case.shape, dtype=case.dtype,
                                    direction=case.direction, size=case.size,
                                    versions=versions(), blas=blas_line(), note=case.note,
                                    **case.info)
        start = hostload.snapshot()
        if SMOKE:
            benchmark.pedantic(fn, rounds=1, iterations=1)
        else:
            benchmark(fn)
        # on 2 cores a busy neighbour decides a timing: say so beside it
        benchmark.extra_info["host_other_cores"] = hostload.other_cores(start)
