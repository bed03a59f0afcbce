"""pytest-benchmark wiring for the cases defined in ``fastnet.benchmarking``.

Every group holds the NumPy baseline, the Numba backend and, when ``torch`` is importable,
PyTorch CPU, so ratios are measured side by side in one run. Each member is called once before
timing (compilation and first-touch allocation stay outside the timed region; ``bench_startup``
reports compile time), and its result is checked against the NumPy baseline's before it is timed
(``fastnet.benchmarking.pytest_support.run_case``).

``FASTNET_BENCH_THREADS`` pins BLAS, Numba and torch to that many threads (default:
``FASTNET_NUM_THREADS``, else all cores; see ``fastnet.benchmarking.pytest_support``); the counts
in effect are recorded in each benchmark's ``extra_info``. ``FASTNET_BENCH_SMOKE=1``
runs one round of each benchmark (CI). For the Markdown ratio table use ``python -m fastnet
bench``.
"""
import fastnet             # first: its thread settings must precede NumPy's OpenBLAS (backend.py)
import pytest
from fastnet.benchmarking.allocator import steady_allocations
from fastnet.benchmarking.cases import MEMBERS
from fastnet.benchmarking.pytest_support import threads_to_pin
from fastnet.benchmarking.report import pinned_threads


def pytest_configure(config):
    threads_to_pin()                  # a bad FASTNET_BENCH_THREADS: a usage error, said at once
    steady_allocations()              # repeated calls reuse memory (benchmarking/allocator.py)


@pytest.fixture(scope="session", autouse=True)
def threads_pinned():
    with pinned_threads(threads_to_pin()):
        yield


@pytest.fixture(params=MEMBERS)
def member(request):
    return request.param
