"""Kernel benchmarks: optimizers (cases in ``fastnet.benchmarking.cases``)."""
import pytest

from fastnet.benchmarking.pytest_support import case_ids, run_case
from fastnet.benchmarking.cases import KERNEL_FAMILIES

CASES = list(KERNEL_FAMILIES["optimizers"]())


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def bench_optimizers(benchmark, case, member):
    run_case(benchmark, case, member)
