"""What ``python -m fastnet info`` prints: versions, settings, threads, CPU, Numba cache."""
import os
import platform
import sys

import numpy as np

from . import __version__, backend


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_features():
    """SIMD features that matter to the kernels, as LLVM (hence Numba) sees the host CPU."""
    try:
        import llvmlite.binding as llvm
        features = llvm.get_host_cpu_features()
        wanted = ("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512vl", "neon")
        return " ".join(f for f in wanted if features.get(f)) or "-"
    except Exception as err:          # informational only: never fail `info` over it
        return f"unknown ({err})"


def _numba_cache_dir():
    """The folder Numba caches fastnet's kernels in, as a kernel's cache reports it: Numba takes
    the first it can write to (``NUMBA_CACHE_DIR``, beside the sources, the user's cache)."""
    from .kernels.numba_backend import activations     # defines kernels, compiles none
    path = getattr(activations._relu_forward._cache, "_cache_path", None)
    if path is None:
        return "none: no writable folder, kernels compile in every process (set NUMBA_CACHE_DIR)"
    return path


def _compile_ahead():
    """Whether a cold cache's convolution backward compiles in a helper process (``_ahead``)."""
    from .kernels.numba_backend import _ahead
    if _ahead.enabled():
        return ("on (on a cold cache, a training process's conv backward and fit's loss "
                "compile in a helper process)")
    return "off (FASTNET_COMPILE_AHEAD=0, no cache, one usable CPU, or not a plain Python)"


def _numba_threads(numba):
    """The count Numba's kernels run with: fastnet's setting reaches Numba when the Numba
    backend loads, capped at the workers Numba starts with (``NUMBA_NUM_THREADS``)."""
    if numba is None:
        return "-"
    if backend.get_num_threads() is None:
        return numba.get_num_threads()
    return min(backend.get_num_threads(), numba.config.NUMBA_NUM_THREADS)


def info_lines():
    """Lines describing this installation and machine (imports numba, compiles nothing)."""
    from threadpoolctl import threadpool_info
    lines = [
        f"fastnet      {__version__}  ({os.path.dirname(os.path.abspath(__file__))})",
        f"python       {sys.version.split()[0]}  ({platform.platform()})",
        f"numpy        {np.__version__}",
    ]
    try:
        import numba
        import llvmlite
        lines.append(f"numba        {numba.__version__}  (llvmlite {llvmlite.__version__}, "
                     f"threading layer default: {numba.config.THREADING_LAYER})")
    except ImportError as err:
        numba = None
        lines.append(f"numba        not importable: {err}")
    try:
        import torch
        lines.append(f"torch        {torch.__version__} (optional comparison)")
    except ImportError:
        lines.append("torch        not installed (optional comparison)")
    except Exception as err:           # noqa: BLE001 (a broken install: OSError, ...) a line,
        lines.append(f"torch        not importable: {type(err).__name__}: {err}")  # not a crash
    if backend.get_num_threads() is not None:
        # FASTNET_NUM_THREADS reaches BLAS and Numba at the first kernel call: show the count
        # they will run with, not the libraries' defaults before then.
        backend.set_num_threads(backend.get_num_threads())
    lines += [
        f"backend      {backend.get_backend()}",
        f"dtype        {np.dtype(backend.get_default_dtype()).name}",
        f"threads      fastnet setting: {backend.get_num_threads() or 'library defaults'}; "
        f"numba: {_numba_threads(numba)}",
    ]
    for pool in threadpool_info():
        # OpenMP runtimes have no version: their file tells the system's from torch's own
        name = pool.get("version") or pool.get("filepath") or ""
        lines.append(f"             {pool['user_api']} {pool['internal_api']} {name}: "
                     f"{pool['num_threads']} threads")
    lines += [
        f"cpu          {_cpu_name()}, {os.cpu_count()} logical cores",
        f"cpu features {_cpu_features()}",
    ]
    if numba:
        lines.append(f"numba cache  {_numba_cache_dir()}")
        lines.append(f"compile ahead {_compile_ahead()}")
    return lines
