"""What the pytest-benchmark files in ``bench/`` share (importable in any pytest import mode,
unlike a ``conftest``): the settings from the environment, case ids and :func:`run_case`.

``FASTNET_BENCH_THREADS`` pins BLAS, Numba and torch to that many threads (default:
``FASTNET_NUM_THREADS``, else all usable cores; at most what Numba's worker pool holds, so that
the three run alike); the counts in effect are recorded in each benchmark's ``extra_info``,
with the cores other processes took while it ran (``host_other_cores``, see ``hostload``) and
the untimed warm-up call's seconds (``first_call_s``: compile time, where a kernel is new to
the process, with the compile-ahead helpers it started, which finish before any timing:
``timing.warm_up``; ``bench_startup`` times a whole cold start).
``FASTNET_BENCH_SMOKE=1`` runs one round of each benchmark (CI).
"""
import functools
import os
import re

import pytest

from ..backend import _usable_cpus
from . import allocator, hostload
from .cases import Unsupported
from .report import blas_line, thread_counts, usable_threads, versions
from .timing import member_context, warm_up


@functools.cache
def threads_to_pin():
    """The thread count for BLAS, Numba and torch (module docstring). Read when pytest
    configures the run (``bench/conftest.py``), so a bad value is a usage error, not a failed
    import of the conftest with its traceback (an audit's finding)."""
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


SMOKE = os.environ.get("FASTNET_BENCH_SMOKE") == "1"


def case_ids(cases):
    """Test ids: the case names, epoch (a)'s "(PyTorch float32)" note shortened to "(PT
    float32)", so that ``-k torch`` selects the PyTorch members only while the id still says
    what its PyTorch member runs."""
    return [re.sub(r" \(PyTorch ([^)]*)\)", r" (PT \1)", c.name).replace(" ", "-")
            for c in cases]


def run_case(benchmark, case, member):
    """Warm up, check against the NumPy baseline, then time ``case`` for ``member``."""
    with member_context("numpy"):
        reference = case.make("numpy")()
    with member_context(member):
        try:
            fn = case.make(member)
        except Unsupported as why:
            pytest.skip(str(why))
        result, first_call = warm_up(fn)   # compiles where a kernel is new to the process
        if case.check is not None and member != "numpy":
            case.check(result, reference)
        benchmark.group = case.name
        benchmark.extra_info.update(member=member, threads=thread_counts(), op=case.op,
                                    shape=case.shape, dtype=case.dtype,
                                    direction=case.direction, size=case.size,
                                    versions=versions(), blas=blas_line(), note=case.note,
                                    memory=allocator.describe(),
                                    first_call_s=first_call, **case.info)
        start = hostload.snapshot()
        if SMOKE:
            benchmark.pedantic(fn, rounds=1, iterations=1)
        else:
            benchmark(fn)
        # on 2 cores a busy neighbour decides a timing: say so beside it
        benchmark.extra_info["host_other_cores"] = hostload.other_cores(start)
