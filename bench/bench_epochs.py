"""End-to-end training benchmarks (a), (b), (c): steps extrapolated to an MNIST epoch.

The timed call runs a fixed number of steps; ``extra_info["scale"]`` is the factor to one
60 000-sample epoch (``python -m fastnet bench`` applies it in its table).
"""
import pytest

from fastnet.benchmarking.pytest_support import SMOKE, case_ids, run_case
from fastnet.benchmarking.epochs import epoch_cases

CASES = list(epoch_cases(quick=True))


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def bench_epoch(benchmark, case, member):
    if not SMOKE:
        benchmark.extra_info["rounds_note"] = "each round is a full set of training steps"
    run_case(benchmark, case, member)
