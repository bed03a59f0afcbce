"""``python -m fastnet bench [--quick] [--json PATH]``: run the benchmarks, print the report."""
import os
import sys

import numpy as np

from .._files import check_writable
from . import cases as C
from . import hostload
from .allocator import steady_allocations
from .epochs import MOST_SAMPLES, _data, epoch_cases
from .report import (busy_note, host_lines, machine_lines, markdown, pinned_threads,
                     thread_counts, usable_threads, write_json)
from .timing import ResultMismatch, dense_rate_in_training, gemm_rate, measure


def add_bench_arguments(p, positive_int):
    p.add_argument("--quick", action="store_true",
                   help="a representative subset (about a minute on 2 cores)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--family", action="append", choices=sorted(C.KERNEL_FAMILIES) + ["epoch"],
                   help="only these families (repeatable); skips the cold/warm start probe")
    p.add_argument("--threads", type=positive_int,
                   help="BLAS, Numba and torch threads, at most the usable CPUs and Numba's "
                        "worker pool (default: FASTNET_NUM_THREADS, else all usable CPUs)")
    p.add_argument("--no-startup", action="store_true", help="skip the cold/warm start probe "
                   "(--family skips it too)")


def quick_cases():
    """The targets of the issues at float32, plus the epochs."""
    f32 = (np.float32,)
    yield from C.activation_cases({"large": 1_000_000}, f32)
    yield from C.loss_cases(((128, 10), (1024, 1000)), f32)
    yield from (c for c in C.optimizer_cases(((784, 400),), f32) if c.op != "sgd")
    yield from C.dense_cases(((20, 784, 400), (128, 784, 400)), f32)
    yield from C.conv_cases(C.CONV_SHAPES, f32)
    yield from C.pooling_cases(((128, 64, 28),), f32, kinds=("max",))


def _selected(args):
    if args.quick:
        yield from (c for c in quick_cases() if not args.family or c.family in args.family)
    else:
        yield from C.kernel_cases(None if not args.family else set(args.family))
    if not args.family or "epoch" in args.family:
        yield from epoch_cases(quick=args.quick)


def run_cases(cases, log=sys.stderr, failures=None):
    """One row per case. A case whose result check fails gets no row (its times would be those
    of a wrong result): its message goes to ``log`` and the :class:`ResultMismatch` to
    ``failures``, and the run goes on."""
    results = []
    for case in cases:
        start = hostload.snapshot()
        try:
            timed = measure(case, ("numpy", "numba", "torch"))
        except ResultMismatch as err:
            print(f"  RESULT CHECK FAILED: {err}", file=log, flush=True)
            if failures is not None:
                failures.append(err)
            continue
        row = {"family": case.family, "op": case.op, "shape": case.shape, "dtype": case.dtype,
               "direction": case.direction, "size": case.size, "flops": case.flops,
               "note": case.note, **case.info,
               **{member: None if m is None else m["median"] for member, m in timed.items()},
               "numba_first_call": timed["numba"]["first_call"],
               "host_other_cores": hostload.other_cores(start)}
        results.append(row)
        busy = busy_note(row)
        print(f"  {case.name}: numpy {row['numpy'] * 1e3:.3f} ms, numba "
              f"{row['numba'] * 1e3:.3f} ms{busy and f' ({busy})'}", file=log, flush=True)
    return results


def dense_gemm_fraction(results, peak):
    """GFLOP/s of the MNIST MLP's first layer at batch 128, (128, 784)->400, forward+backward
    (Numba, float32), vs the GEMM peak; the same shape in quick and full runs."""
    flops = secs = 0.0
    for r in results:
        if r["family"] == "dense" and r["shape"] == "(128, 784)->400" and r["dtype"] == "float32":
            flops += r["flops"]
            secs += r["numba"]
    return (flops / secs / 1e9, flops / secs / 1e9 / peak) if secs else (None, None)


def _seconds(values, digits):
    return ", ".join(f"{v:.{digits}f}" for v in values)


def _trains(args):
    """Whether the run trains on data: the epochs, or the dense family's roofline probe."""
    return not args.family or bool({"epoch", "dense"} & set(args.family))


def _check_epoch_data(args):
    """With ``FASTNET_DATA`` set, the epochs and the roofline's training probe train on real
    MNIST: a folder without it, or with too few samples, fails here, not after the kernel cases
    have been timed (those two run last)."""
    data = os.environ.get("FASTNET_DATA")
    if data and _trains(args):
        from ..mnist import find_mnist_dir
        if find_mnist_dir() is None:
            raise ValueError(f"FASTNET_DATA={data}: no MNIST files there (the epoch benchmarks "
                             f"train on them when it is set); fix it, or unset it for "
                             f"synthetic data of MNIST's shape")
        try:                             # read once (~1 s): files that are there but broken
            _data(MOST_SAMPLES, True, np.float32)
        except (OSError, ValueError) as err:
            message = str(err)
            raise ValueError(message if message.startswith("FASTNET_DATA=")
                             else f"FASTNET_DATA={data}: {message}") from None


def _data_lines(args):
    """Which data the epochs and the roofline's training probe train on."""
    if not _trains(args):
        return []
    data = os.environ.get("FASTNET_DATA")
    if data:
        return [f"training data (epochs, roofline probe): MNIST's first training images, read "
                f"from FASTNET_DATA={data}"]
    return ["training data (epochs, roofline probe): synthetic, uniform noise of MNIST's shape "
            "with random labels (set FASTNET_DATA to a folder of the MNIST files for real "
            "MNIST)"]


def run_bench(args):
    if args.json is not None:
        check_writable("--json", args.json)      # before the run, not after it
    _check_epoch_data(args)
    threads, capped = usable_threads(args.threads)
    if capped:
        print(f"bench: {capped}", file=sys.stderr)
    steady_allocations()
    run_start = hostload.snapshot()
    with pinned_threads(threads):
        header = machine_lines() + _data_lines(args)
        peak = gemm_rate()
        failures = []
        results = run_cases(_selected(args), failures=failures)
        peak = max(peak, gemm_rate())     # a roofline is the best reached: before and after
        rate, frac = dense_gemm_fraction(results, peak)
        line = f"GEMM roofline: BLAS sgemm 1024^3 measures {peak:.0f} GFLOP/s"
        extra = {"gemm_gflops": peak, "dense_gflops": rate, "threads": thread_counts()}
        if not args.family or "dense" in args.family:
            trained, steps, rounds = dense_rate_in_training()
            line += (f"; the dense layers while the MLP trains (batch 128, float32, Numba, "
                     f"every dense call timed, median of {rounds} passes of {steps} steps) "
                     f"reach {trained:.0f} GFLOP/s = {trained / peak:.0%} of it")
            extra["dense_gflops_training"] = trained
        if rate:
            line += (f"; the (128, 784)->400 layer alone (forward+backward rows below) "
                     f"{rate:.0f} GFLOP/s = {frac:.0%}")
        header.append(line)
        if not args.no_startup and not args.family:
            from .startup import PROBE_SAMPLES, cold_and_warm
            start = cold_and_warm(threads)
            cold, warm = start["cold"], start["warm"]
            header.append(f"start-up to first training step (MLP + CNN, fresh process, "
                          f"after import, each fit given {PROBE_SAMPLES} samples; median of "
                          f"{len(cold['all_first_steps'])} rounds): "
                          f"cold {cold['first_steps']:.1f} s "
                          f"({_seconds(cold['all_first_steps'], 1)}), warm (cached) "
                          f"{warm['first_steps']:.2f} s ({_seconds(warm['all_first_steps'], 2)}); "
                          f"the import itself took {warm['import']:.2f} s")
            extra["startup"] = start
    run_cores = hostload.other_cores(run_start)
    header += host_lines(results, run_cores)
    extra["host_other_cores"] = run_cores
    if failures:
        header.append("RESULT CHECKS FAILED, left out of the table (details on stderr and in "
                      "the JSON): " + "; ".join(f"{f.case} ({f.member})" for f in failures))
        extra["failed"] = [{"case": f.case, "member": f.member, "message": str(f)}
                           for f in failures]
    print(markdown(results, header))
    if args.json is not None:
        write_json(args.json, results, header, extra)
        print(f"\nwrote {args.json}")
    return 1 if failures else 0
