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


def cold_and_warm(threads=None):
    """``{"cold": {...}, "warm": {...}}``: the first run compiles into an empty cache, the
    second loads from it."""
    with tempfile.TemporaryDirectory() as cache:
        return {"cold": time_to_first_step(cache, threads=threads),
                "warm": time_to_first_step(cache, threads=threads)}
