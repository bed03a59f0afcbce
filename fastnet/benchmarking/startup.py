"""A fresh process's time to its first training step, with a cold and a warm Numba cache."""
import json
import os
import subprocess
import sys
import tempfile

_PROBE = r"""
import json, time
t0 = time.perf_counter()
import numpy as np, fastnet
from fastnet.models import RECIPES
t1 = time.perf_counter()
rng = np.random.default_rng(0)
for name in ("mlp", "cnn"):
    r = RECIPES[name]
    X = rng.random((r.batch_size, 784) if r.flatten else (r.batch_size, 28, 28)).astype(np.float32)
    r.build(seed=0).fit(X, rng.integers(0, 10, len(X)), epochs=1, batch_size=len(X))
t2 = time.perf_counter()
from fastnet.benchmarking.report import thread_counts
print(json.dumps({"import": t1 - t0, "first_steps": t2 - t1,
                  "threads": thread_counts(with_torch=False)}))
"""


def time_to_first_step(cache_dir, backend="numba", threads=None):
    """Seconds to import fastnet and to run the first training step of the MLP and the CNN, and
    the thread counts the process ran with (``threads``: ``FASTNET_NUM_THREADS`` for it; None:
    the environment's)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "FASTNET_BACKEND": backend}
    if threads is not None:
        env["FASTNET_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env,
                         timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"startup probe failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_and_warm(threads=None, rounds=3):
    """``{"cold": {...}, "warm": {...}}``, each the median of ``rounds`` probes by
    ``first_steps``, with every probe's ``first_steps`` in ``"all_first_steps"``.

    A round is a fresh empty cache: its first probe compiles into it (cold), its second loads
    from it (warm). One cold probe on this shared 2-core machine read anywhere from 8.0 to 10.7 s
    for the same code, hence the median of rounds (an odd count: the median is a real probe).
    """
    runs = {"cold": [], "warm": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as cache:
            for kind in ("cold", "warm"):
                runs[kind].append(time_to_first_step(cache, threads=threads))
    return {kind: _median_probe(probes) for kind, probes in runs.items()}


def _median_probe(probes):
    ordered = sorted(probes, key=lambda p: p["first_steps"])
    return {**ordered[(len(ordered) - 1) // 2],
            "all_first_steps": [p["first_steps"] for p in probes]}
