"""The benchmark report: a Markdown table of side-by-side timings and ratios, and JSON."""
import datetime
import json
import os
import platform
import sys

import numpy as np

from .._files import atomic_write
from . import allocator
from .epochs import MNIST_TRAIN
from .hostload import BUSY_CORES


def optional_torch():
    """``torch``, or None when it is not installed or cannot be imported: a broken install
    (a missing shared library raises OSError) leaves the PyTorch column out, with a note on
    stderr, instead of stopping the benchmarks."""
    try:
        import torch
    except ImportError:
        return None
    except Exception as err:             # noqa: BLE001 (whatever a broken install raises)
        if not _TORCH_FAILURE:
            _TORCH_FAILURE.append(err)
            print(f"bench: torch is installed but cannot be imported ({type(err).__name__}: "
                  f"{err}); the PyTorch column is left out", file=sys.stderr)
        return None
    return torch


_TORCH_FAILURE = []                      # the first failed import, noted once


def thread_counts(with_torch=True):
    """The thread counts in effect (not the ones asked for: Numba cannot exceed the
    ``NUMBA_NUM_THREADS`` it started with): ``{"blas": n, "numba": n, "torch": n or None}``
    (``with_torch=False``: no ``"torch"``, and torch is not imported)."""
    import numba
    from threadpoolctl import threadpool_info
    blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    counts = {"blas": max(blas) if blas else None, "numba": numba.get_num_threads()}
    if with_torch:
        torch = optional_torch()
        counts["torch"] = None if torch is None else torch.get_num_threads()
    return counts


def usable_threads(asked=None):
    """The thread count all three members can run with: ``asked`` (default: the count fastnet
    runs with, ``FASTNET_NUM_THREADS``, else every usable CPU), capped at the CPUs this process
    may use and at the workers Numba started with (``NUMBA_NUM_THREADS``), so that BLAS and
    torch never get more threads than Numba can use. Returns ``(threads, why capped or None)``.
    """
    import numba
    from ..backend import _usable_cpus, get_num_threads
    want = asked or get_num_threads() or _usable_cpus()
    pool = ("Numba's worker pool (NUMBA_NUM_THREADS, which importing fastnet sets from "
            "FASTNET_NUM_THREADS when Numba has not started yet)")
    limits = {"the CPUs this process may use": _usable_cpus(),
              pool: numba.config.NUMBA_NUM_THREADS}
    threads = min(want, *limits.values())
    why = None
    if threads < want:
        name = min(limits, key=limits.get)
        wanted = f"{want} threads asked" if asked else f"fastnet's count of {want} threads"
        why = f"{wanted}, {threads} used: capped at {name}, {limits[name]}"
    return threads, why


def pinned_threads(threads):
    """A ``with`` block in which BLAS, Numba and torch run ``threads`` threads each.

    The order matters twice. torch is imported first: once Numba's OpenMP workers have started
    (``numba.set_num_threads`` starts them), a torch imported after them ran its float64
    convolutions 7-30x slower (both use ``libgomp.so.1``, and torch then shares the one Numba
    loaded). Then the Numba backend is loaded, before the count is set: a count set earlier
    reaches its kernels only when it loads, and :func:`thread_counts` reported Numba's default
    until then."""
    from ..backend import kernels, set_backend, set_num_threads
    torch = optional_torch()
    with set_backend("numba"):
        kernels()
    limit = set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    return limit


def versions():
    """``{"python", "numpy", "numba", "torch"}`` version strings (torch: None when missing)."""
    import numba
    torch = optional_torch()
    torch_version = None if torch is None else torch.__version__
    return {"python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "torch": torch_version}


#: Environment variables that choose which code a BLAS runs (its CPU kernels, its cache size).
_BLAS_ENVIRONMENT = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_ENABLE_INSTRUCTIONS",
                     "MKL_DEBUG_CPU_TYPE")


def blas_line():
    """NumPy's BLAS, the CPU kernels it runs, and any variable that forced them: the NumPy
    baseline's products (and the roofline) depend on them. (This machine's environment sets
    ``OPENBLAS_CORETYPE=Haswell``: OpenBLAS then runs its AVX2 kernels on an AVX-512 CPU.)"""
    from threadpoolctl import threadpool_info
    libs = [f"{p['internal_api']} {p.get('version') or ''} (kernels: {p.get('architecture')})"
            for p in threadpool_info() if p.get("user_api") == "blas"]
    forced = [f"{name}={os.environ[name]}" for name in _BLAS_ENVIRONMENT if name in os.environ]
    how = f"set in the environment: {', '.join(forced)}" if forced else "no BLAS variables set"
    return f"BLAS: {', '.join(libs) or 'none found'}; {how}"


def machine_lines():
    from .._sysinfo import _cpu_features, _cpu_name
    v = versions()
    counts = thread_counts()
    threads = ", ".join(f"{name} {counts[key]}" for key, name in
                        (("blas", "BLAS"), ("numba", "Numba"), ("torch", "torch"))
                        if counts[key] is not None)
    return [f"date: {datetime.date.today().isoformat()}",
            f"machine: {_cpu_name()}, {os.cpu_count()} logical cores, {platform.system()}; "
            f"cpu features {_cpu_features()}",
            f"versions: python {v['python']}, numpy {v['numpy']}, numba {v['numba']}, "
            f"torch {v['torch'] or 'not installed'}",
            blas_line(),
            f"threads in effect: {threads}",
            allocator.describe()]


def _ratio(slow, fast):
    return "-" if slow is None or fast is None else f"{slow / fast:.2f}x"


def rows(results):
    """Table rows; forward and backward of the same op also get a combined row."""
    out = list(results)
    by_key = {(r["op"], r["shape"], r["dtype"], r["direction"]): r for r in results}
    for r in results:
        if r["direction"] == "forward":
            back = by_key.get((r["op"], r["shape"], r["dtype"], "backward"))
            if back:
                both = dict(r, direction="forward+backward")
                for m in ("numpy", "numba", "torch", "flops", "numba_first_call"):
                    if m in r:
                        both[m] = (None if r[m] is None or back.get(m) is None
                                   else r[m] + back[m])
                loads = [v for v in (r.get("host_other_cores"), back.get("host_other_cores"))
                         if v is not None]
                both["host_other_cores"] = max(loads, default=None)
                out.insert(out.index(back) + 1, both)
    return out


def busy_note(row):
    """What the rest of the machine took while ``row`` was timed, if that reached
    :data:`~.hostload.BUSY_CORES`; else the empty string."""
    cores = row.get("host_other_cores")
    if cores is None or cores < BUSY_CORES:
        return ""
    return f"busy machine: other processes took {cores:.2f} cores meanwhile"


def host_lines(results, run_cores):
    """Header lines on the machine's load: over the whole run, and which rows it marks."""
    if run_cores is None:
        return []
    lines = [f"machine load: other processes (and steal time) took {run_cores:.2f} cores on "
             f"average during the run (from /proc/stat)"]
    marked = [r for r in results if busy_note(r)]
    if marked:
        lines.append(f"rows marked [busy] ({len(marked)}): other processes took >= {BUSY_CORES} "
                     f"cores while the row was timed, so its figures may be off (a parallel "
                     f"kernel waits for its second worker); rerun on a quiet machine")
    return lines


def markdown(results, header):
    """The header as a list, then the table of kernels in milliseconds per call and, when there
    are epoch rows, a second table of them in seconds per epoch (one unit per column)."""
    lines = [f"- {h}" for h in header]
    all_rows = rows(results)
    for unit, scale, digits, chosen in (
            ("ms", 1e3, 3, [r for r in all_rows if r["direction"] != "epoch"]),
            ("s", 1.0, 2, [r for r in all_rows if r["direction"] == "epoch"])):
        if chosen:
            lines += [""] + _table(chosen, unit, scale, digits)
    if any(r["direction"] == "epoch" for r in all_rows):
        # The shape cell's "-> xN" alone said it (an audit found no word of it in the table).
        lines.append(f"\nEpoch rows: each member trains the steps in the shape column; their "
                     f"seconds are scaled (xN) to one epoch of MNIST's {MNIST_TRAIN} training "
                     f"samples.")
    return "\n".join(lines)


def _table(table_rows, unit, scale, digits):
    lines = [f"| operation | shape | dtype | direction | NumPy {unit} | Numba {unit} "
             f"| PyTorch {unit} | Numba vs NumPy | Numba vs PyTorch |",
             "|---|---|---|---|--:|--:|--:|--:|--:|"]
    for r in table_rows:
        # an epoch row's ``scale`` turns the seconds of its timed steps into a whole epoch's
        vals = [None if r[m] is None else r[m] * r.get("scale", 1.0)
                for m in ("numpy", "numba", "torch")]
        cells = ["-" if v is None else _cell(v * scale, digits) for v in vals]
        mark = " [busy]" if busy_note(r) else ""
        lines.append(f"| {r['op']}{mark} | {r['shape']} | {r['dtype']} | {r['direction']} | "
                     + " | ".join(cells)
                     + f" | {_ratio(vals[0], vals[1])} | {_ratio(vals[2], vals[1])} |")
    return lines


def _cell(value, digits):
    """``digits`` decimals, and ``digits`` significant figures below 1: a 1.3 us row printed as
    0.001 ms could not be checked against its ratio (an audit's finding)."""
    return f"{value:.{digits}f}" if abs(value) >= 1 else f"{value:#.{digits}g}"


def write_json(path, results, header, extra):
    """The header lines, the versions, one entry per table row (the forward+backward rows
    included) with each member's seconds per call (an epoch row's ``scale`` turns them into
    the table's seconds per epoch) and the two ratios of the table, and ``extra``."""
    clean = []
    for r in rows(results):
        r = {k: v for k, v in r.items() if k != "result"}
        for other in ("numpy", "torch"):
            r[f"numba_vs_{other}"] = (None if r[other] is None or r["numba"] is None
                                      else r[other] / r["numba"])
        clean.append(r)
    document = _finite({"header": header, "versions": versions(), "results": clean, **extra})
    # allow_nan=False: bare NaN/Infinity are not JSON, and strict parsers refuse the file
    atomic_write(path, lambda f: json.dump(document, f, indent=1, allow_nan=False), mode="w")


def _finite(value):
    """``value`` with every non-finite float (a timing that went wrong) as None (null)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value
