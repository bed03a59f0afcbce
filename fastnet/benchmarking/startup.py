"""A fresh process's time to its first training step, with a cold and a warm Numba cache."""
import json
import os
import subprocess
import sys
import tempfile

#: Training samples the probe's fits get: MNIST's. ``fit`` first checks all of them, which a
#: probe of one batch left out of its time (that check then compiled a parallel kernel on its
#: first use, ~0.45 s cold: a helper's finding). The fits stop after their first step.
PROBE_SAMPLES = 60_000

_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np, fastnet
from fastnet.models import RECIPES
t1 = time.perf_counter()


class FirstStepDone(Exception):
    pass


class StopAfterFirstStep:
    def on_batch_end(self, batch, loss, n_samples):
        raise FirstStepDone


rng = np.random.default_rng(0)
n = int(sys.argv[1])
data = {name: (rng.random((n, 784) if RECIPES[name].flatten else (n, 28, 28), np.float32),
               rng.integers(0, 10, n)) for name in ("mlp", "cnn")}
t2 = time.perf_counter()
for name, (X, y) in data.items():
    r = RECIPES[name]
    try:
        r.build(seed=0).fit(X, y, epochs=1, batch_size=r.batch_size,
                            callbacks=[StopAfterFirstStep()])
    except FirstStepDone:
        pass
t3 = time.perf_counter()
from fastnet.benchmarking.report import thread_counts
print(json.dumps({"import": t1 - t0, "first_steps": t3 - t2,
                  "threads": thread_counts(with_torch=False)}))
"""


def time_to_first_step(cache_dir, backend="numba", threads=None):
    """Seconds to import fastnet and to run the first training step of the MLP and the CNN (each
    a ``fit`` of :data:`PROBE_SAMPLES` samples, its data checks included), and the thread counts
    the process ran with (``threads``: ``FASTNET_NUM_THREADS`` for it; None:
    the environment's)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "FASTNET_BACKEND": backend}
    if threads is not None:
        env["FASTNET_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, "-c", _PROBE, str(PROBE_SAMPLES)], capture_output=True,
                         text=True, env=env, timeout=900)
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
