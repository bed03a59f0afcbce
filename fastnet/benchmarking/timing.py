"""Median-of-rounds timing of a case for one member, with a warm-up and a result check."""
import contextlib
import time

import numpy as np

from ..backend import set_backend
from .cases import Unsupported


def member_context(member):
    """Make the member's backend current (torch needs nothing)."""
    return contextlib.nullcontext() if member == "torch" else set_backend(member)


def measure(case, member, rounds=7, round_seconds=0.02, reference=None):
    """Time ``case`` for ``member``.

    The first call (compilation, first-touch allocation) is timed on its own and returned as
    ``first_call``; its result is checked against ``reference`` (the NumPy baseline's first
    result). Then ``rounds`` rounds each repeat the call until ``round_seconds`` have passed;
    the per-call median over rounds is ``median``.

    Returns ``None`` when the member cannot run the case (e.g. no torch).
    """
    with member_context(member):
        try:
            fn = case.make(member)
        except Unsupported:
            return None
        t0 = time.perf_counter()
        result = _snapshot(fn())       # in-place updates keep changing the returned array
        first_call = time.perf_counter() - t0
        if reference is not None and case.check is not None:
            case.check(result, reference)
        per_call = []
        for _ in range(rounds):
            n, start = 0, time.perf_counter()
            while True:
                fn()
                n += 1
                elapsed = time.perf_counter() - start
                if elapsed >= round_seconds:
                    break
            per_call.append(elapsed / n)
    return {"median": float(np.median(per_call)), "min": float(np.min(per_call)),
            "rounds": rounds, "first_call": first_call, "result": result}


def _snapshot(result):
    """A copy of a call's result that later calls cannot change."""
    if isinstance(result, (tuple, list)):
        return type(result)(_snapshot(r) for r in result)
    if hasattr(result, "detach"):
        return result.detach().clone()
    return np.array(result, copy=True)


def gemm_rate(n=1024, dtype=np.float32, rounds=5):
    """Measured BLAS GEMM rate in GFLOP/s (``n x n @ n x n``, median of rounds)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    a @ b
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times)) / 1e9
