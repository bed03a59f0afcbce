"""The benchmark report: a Markdown table of side-by-side timings and ratios, and JSON."""
import datetime
import json
import os
import platform

import numpy as np

from .._files import atomic_write


def thread_counts(with_torch=True):
    """The thread counts in effect (not the ones asked for: Numba cannot exceed the
    ``NUMBA_NUM_THREADS`` it started with): ``{"blas": n, "numba": n, "torch": n or None}``
    (``with_torch=False``: no ``"torch"``, and torch is not imported)."""
    import numba
    from threadpoolctl import threadpool_info
    blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    counts = {"blas": max(blas) if blas else None, "numba": numba.get_num_threads()}
    if with_torch:
        try:
            import torch
            counts["torch"] = torch.get_num_threads()
        except ImportError:
            counts["torch"] = None
    return counts


def machine_lines():
    from .._sysinfo import _cpu_name
    import numba
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    counts = thread_counts()
    threads = ", ".join(f"{name} {counts[key]}" for key, name in
                        (("blas", "BLAS"), ("numba", "Numba"), ("torch", "torch"))
                        if counts[key] is not None)
    return [f"date: {datetime.date.today().isoformat()}",
            f"machine: {_cpu_name()}, {os.cpu_count()} logical cores, {platform.system()}",
            f"versions: python {platform.python_version()}, numpy {np.__version__}, "
            f"numba {numba.__version__}, torch {torch_version}",
            f"threads in effect: {threads}"]


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


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
                for m in ("numpy", "numba", "torch"):
                    both[m] = (None if r[m] is None or back[m] is None else r[m] + back[m])
                out.insert(out.index(back) + 1, both)
    return out


def markdown(results, header):
    lines = [f"- {h}" for h in header] + [""]
    lines += ["| operation | shape | dtype | direction | NumPy ms | Numba ms | PyTorch ms "
              "| Numba vs NumPy | Numba vs PyTorch |", "|---|---|---|---|--:|--:|--:|--:|--:|"]
    for r in rows(results):
        unit_scale = r.get("scale", 1.0)
        vals = [None if r[m] is None else r[m] * unit_scale for m in ("numpy", "numba", "torch")]
        fmt = (lambda s: "-" if s is None else f"{s:.2f} s") if r["direction"] == "epoch" else _ms
        lines.append(f"| {r['op']} | {r['shape']} | {r['dtype']} | {r['direction']} | "
                     + " | ".join(fmt(v) for v in vals)
                     + f" | {_ratio(vals[0], vals[1])} | {_ratio(vals[2], vals[1])} |")
    return "\n".join(lines)


def write_json(path, results, header, extra):
    clean = [{k: v for k, v in r.items() if k != "result"} for r in results]
    atomic_write(path, lambda f: json.dump({"header": header, "results": clean, **extra}, f,
                                           indent=1), mode="w")
