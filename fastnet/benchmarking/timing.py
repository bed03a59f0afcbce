"""Median-of-rounds timing of a case, all members side by side, with a warm-up and a result
check; the GEMM roofline."""
import contextlib
import functools
import inspect
import time

import numpy as np

from ..backend import set_backend
from ..callbacks import Callback
from .cases import Unsupported, require


class ResultMismatch(AssertionError):
    """A member's result differs from the NumPy baseline's: ``case`` (its name) and ``member``,
    and the check's message."""

    def __init__(self, case, member, message):
        super().__init__(message)
        self.case, self.member = case, member


def member_context(member):
    """Make the member's backend current (torch needs nothing)."""
    return contextlib.nullcontext() if member == "torch" else set_backend(member)


def measure(case, members, rounds=7, round_seconds=0.02):
    """Time ``case`` for each of ``members`` side by side.

    Each member's first call (compilation, first-touch allocation, and the compile-ahead
    helpers it started: :func:`warm_up`) is timed on its own as ``first_call``, and its result
    is checked against the first member's (the NumPy baseline).
    Then ``rounds`` rounds run, and in each round every member in turn makes one untimed call
    (its data back in cache after the other members ran) and then repeats the call until
    ``round_seconds`` have passed: a burst of noise on this shared 2-core machine then slows all
    members alike instead of one. The per-call median over rounds is ``median``.

    Returns ``{member: dict or None}``; None when the member cannot run the case (no torch).
    Raises :class:`ResultMismatch` when a member's result fails the check.
    """
    prepared = {}
    reference = None
    for member in members:
        with member_context(member):
            try:
                fn = case.make(member)
            except Unsupported:
                prepared[member] = None
                continue
            result, first_call = warm_up(fn)
            result = _snapshot(result)     # in-place updates keep changing the returned array
        if reference is None:
            reference = result
        elif case.check is not None:
            try:
                case.check(result, reference)
            except AssertionError as err:
                detail = " ".join(str(err).split())[:300]
                raise ResultMismatch(case.name, member,
                                     f"{case.name}: the {member} result differs from the "
                                     f"{members[0]} baseline's: {detail}") from err
        prepared[member] = {"fn": fn, "first_call": first_call, "result": result, "times": []}
    for _ in range(rounds):
        for member, p in prepared.items():
            if p is not None:
                with member_context(member):
                    p["times"].append(_one_round(p["fn"], round_seconds))
    return {member: None if p is None else
            {"median": float(np.median(p["times"])), "min": float(np.min(p["times"])),
             "rounds": rounds, "first_call": p["first_call"], "result": p["result"]}
            for member, p in prepared.items()}


def warm_up(fn):
    """``fn``'s first call, before any timed one: ``(result, seconds)``. The seconds include
    the compile-ahead helpers that the call started (on a cold cache, the next kernel compiling
    in a second process, ``kernels/numba_backend/_ahead``), which are let finish here: left
    running, a helper took the second core from the rounds timed next (a first run on a cold
    cache read conv1d's forward at N128 C28 L28 -> C64 0.57x NumPy, its rounds timed while the
    backward compiled beside them)."""
    started = time.perf_counter()
    result = fn()
    # Imported here, not at the top: the Numba backend imported before torch (these modules
    # are imported first) made PyTorch's float64 convolutions 30-90x slower (one libgomp).
    from ..kernels.numba_backend import _ahead
    _ahead.wait_all()
    return result, time.perf_counter() - started


def _one_round(fn, round_seconds):
    """Seconds per call of ``fn``, repeated until ``round_seconds`` have passed, after one
    untimed call."""
    fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= round_seconds:
            return elapsed / n


def _snapshot(result):
    """A copy of a call's result that later calls cannot change."""
    if isinstance(result, (tuple, list)):
        return type(result)(_snapshot(r) for r in result)
    if hasattr(result, "detach"):
        return result.detach().clone()
    return np.array(result, copy=True)


def gemm_rate(n=1024, dtype=np.float32, rounds=15):
    """The machine's BLAS GEMM rate in GFLOP/s (``n x n @ n x n``): the fastest of ``rounds``,
    since a roofline is the best the machine reaches (a median let one noisy stretch of this
    shared machine halve it). The fifteen rounds take ~0.15 s, and a whole noisy stretch can
    still halve them (105 against 202 GFLOP/s in two runs): the report measures before and after
    its cases and keeps the higher."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    a @ b
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.min(times)) / 1e9


class _ReadsBetweenSteps(Callback):
    """A per-batch callback that only reads: with it, ``fit``'s steps keep AdaGrad's weight
    gradients (``fastnet._dense_chain``), so every product runs as a ``dense_backward`` of its
    own, not fused with the update (whose time is no product's)."""
    on_batch_end_reads_only = True

    def on_batch_end(self, batch, loss, n_samples):
        pass


def dense_rate_in_training(steps=60, rounds=7, batch_size=128):
    """GFLOP/s of the dense layers while the MNIST MLP (784-400-200-10) trains at batch 128 in
    float32 on the Numba backend: every call of the backend's ``dense_forward`` /
    ``dense_backward`` is timed where it happens (matrix products with their fused bias and
    ReLU), and their FLOPs (``2 N n_in n_out`` per product; the first layer's backward skips
    ``dx``) are divided by the time spent in them. The kernels, not ``fastnet.functional``'s
    checked functions: ``fit``'s steps after an epoch's first call the kernels directly
    (``fastnet._dense_chain``), here with the weight gradients kept (``_ReadsBetweenSteps``;
    training alone fuses them with AdaGrad's step, which is faster still). Only the training
    steps' calls count, not the dry run that ``fit`` starts with (in evaluation mode).

    After a warm-up pass, ``rounds`` passes of ``steps`` steps each run over the same samples, and
    the median of their rates is returned: one pass (~0.1 s) on this shared 2-core machine read
    anywhere from 50 % to 77 % of the GEMM peak, and a process's first pass was the lowest.

    Returns ``(gflops, steps, rounds)``.
    """
    from ..backend import kernels
    from .epochs import _data, _recipe_model
    X, y = _data(steps * batch_size, True, np.float32)
    totals = {"flops": 0, "seconds": 0.0, "calls": 0}

    def timed(fn, flops):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            seconds = time.perf_counter() - t0
            if model.training:                      # not fit's dry run
                arguments = inspect.signature(fn).bind(*args, **kwargs).arguments
                totals["seconds"] += seconds
                totals["flops"] += flops(arguments)
                totals["calls"] += 1
            return out
        return wrapper

    def product(a):
        return 2 * len(a["x"]) * a["W"].shape[0] * a["W"].shape[1]

    rates = []
    with set_backend("numba"):
        backend = kernels()
        dense, dense_backward = backend.dense_forward, backend.dense_backward
        model = _recipe_model("mlp", np.float32)
        keep = [_ReadsBetweenSteps()]
        model.fit(X, y, epochs=1, batch_size=batch_size, shuffle=False, callbacks=keep)  # warm-up
        try:
            backend.dense_forward = timed(dense, product)
            backend.dense_backward = timed(dense_backward,
                                           lambda a: product(a) * (2 if a["need_dx"] else 1))
            for _ in range(rounds):
                totals.update(flops=0, seconds=0.0, calls=0)
                model.fit(X, y, epochs=1, batch_size=batch_size, shuffle=False, callbacks=keep)
                rates.append(totals["flops"] / totals["seconds"] / 1e9)
            calls = totals["calls"]
        finally:
            backend.dense_forward, backend.dense_backward = dense, dense_backward
    # Every step's three layers, forward and backward: a call that went around the timing (a
    # route that stopped calling these kernels) would make the rate meaningless.
    require(calls == 6 * steps,
            f"timed {calls} dense calls in {steps} steps; expected {6 * steps}")
    return float(np.median(rates)), steps, rounds
