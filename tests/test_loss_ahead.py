"""``fit``'s softmax cross-entropy, compiled ahead in a helper process on a cold Numba cache
(``fastnet._loss_ahead``): the helper's work is loaded, not redone; the results are the same
bits; a failed helper costs no result; no helper where nothing would be gained.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnet
from fastnet import _loss_ahead
from fastnet.kernels._host import usable_cpus
from fastnet.kernels.numba_backend import _ahead, _config, losses
from fastnet.losses import MeanSquaredError, SoftmaxCrossEntropy

# With one CPU, or nothing cached, no helper ever starts (``_ahead.enabled``).
pytestmark = pytest.mark.skipif(not (_config.CACHE and usable_cpus() >= 2),
                                reason="a Numba cache and two CPUs")

# argv: code run in the helper before its work (a delay, a failure); "labels" or "rows"; "late"
# to reach the loss only once the helper has ended (as a large model's forward would), or "".
_FIT = """
import hashlib, json, subprocess, sys, time
import numpy as np
from fastnet import _loss_ahead
from fastnet.initializers import HeInitializer
from fastnet.kernels.numba_backend import _ahead, losses
from fastnet.layers import FC
from fastnet.model import Classifier
from fastnet.optimizers import SGD
_ahead._CALL = sys.argv[1] + "\\n" + _ahead._CALL
collect = _loss_ahead.collect
def late(key):
    for helper in _ahead._state["helpers"].values():
        helper.wait(60)
    collect(key)
if sys.argv[3] == "late":
    _loss_ahead.collect = late
helpers = []
class Popen(subprocess.Popen):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        helpers.append(self)
_ahead.subprocess.Popen = Popen
t = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.standard_normal((64, 12)).astype(np.float32)
y = rng.integers(0, 5, 64)
if sys.argv[2] == "rows":
    y = np.eye(5)[y]
model = Classifier([FC(12, 8, HeInitializer(seed=1), activation="relu"),
                    FC(8, 5, HeInitializer(seed=2))], optimizer=SGD(0.1))
model.fit(X, y, epochs=2, batch_size=16, shuffle=False)
kernel = losses.softmax_cross_entropy_kernel((16, 5), y.ndim)
print(json.dumps({
    "started": _ahead.started(), "history": model.history["loss"],
    "seconds": time.perf_counter() - t, "running": [h.poll() is None for h in helpers],
    "digest": hashlib.sha256(b"".join(p.tobytes() for p in model.params.values())).hexdigest(),
    "hits": sum(kernel._cache_hits.values()), "misses": sum(kernel._cache_misses.values())}))
"""


def _fit(cache, targets, ahead="1", before="", late=True):
    """A fresh process's fit of a small classifier (float32, Numba) with ``cache`` as its Numba
    cache; ``before``: code its helper runs first; ``late``: the loss is reached only once the
    helper has ended."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "FASTNET_BACKEND": "numba",
           "FASTNET_COMPILE_AHEAD": ahead}
    out = subprocess.run([sys.executable, "-c", _FIT, before, targets, "late" if late else ""],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=["labels", "rows"])
def compiled_here(request, tmp_path_factory):
    """The fit with no helper, on a cold cache: the loss compiled in the process itself."""
    result = _fit(tmp_path_factory.mktemp("cold"), request.param, ahead="0")
    assert (result["started"], result["hits"], result["misses"]) == ([], 0, 1)
    return request.param, result


def test_a_cold_fit_loads_the_loss_that_a_helper_compiled(compiled_here, tmp_path):
    targets, here = compiled_here
    result = _fit(tmp_path, targets)
    assert result["started"] == [["compile_in_helper", "float32", 16, 5,
                                  1 if targets == "labels" else 2]]
    assert (result["hits"], result["misses"]) == (1, 0)
    assert (result["digest"], result["history"]) == (here["digest"], here["history"])


def test_a_helper_not_done_when_the_loss_is_needed_is_stopped(compiled_here, tmp_path):
    """A small model's forward compiles sooner than a helper starts and compiles the loss:
    waiting for it would cost more than compiling here (the helper here would take 60 s)."""
    targets, here = compiled_here
    result = _fit(tmp_path, targets, before="import time; time.sleep(60)", late=False)
    assert len(result["started"]) == 1 and result["seconds"] < 30
    assert result["running"] == [False]
    assert (result["hits"], result["misses"]) == (0, 1)
    assert result["digest"] == here["digest"]


def test_a_warm_cache_starts_no_helper(compiled_here, tmp_path):
    targets, here = compiled_here
    _fit(tmp_path, targets, ahead="0")
    result = _fit(tmp_path, targets)
    assert (result["started"], result["hits"], result["misses"]) == ([], 1, 0)
    assert result["digest"] == here["digest"]


def test_a_failed_helper_leaves_the_loss_to_the_process(compiled_here, tmp_path):
    targets, here = compiled_here
    result = _fit(tmp_path, targets, before="import os; os._exit(5)")
    assert len(result["started"]) == 1
    assert (result["hits"], result["misses"]) == (0, 1)
    assert result["digest"] == here["digest"]


@pytest.fixture
def calls(monkeypatch):
    """``_loss_ahead.start`` deciding on a cache that looks cold, with the helpers it would
    start recorded, not started."""
    started = []
    monkeypatch.setattr(_ahead, "start_call", lambda *args: started.append(args))
    monkeypatch.setattr(_ahead, "on_disk", lambda pyfunc, sig: False)
    monkeypatch.delenv("FASTNET_COMPILE_AHEAD", raising=False)
    return started


def test_the_helper_gets_the_first_batchs_shapes(calls):
    labels = np.array([0, 3, 1], np.uint8)
    assert _loss_ahead.start(SoftmaxCrossEntropy(), np.float64, 128, labels) == (
        "float64", 128, 4, 1)
    assert _loss_ahead.start(SoftmaxCrossEntropy(), np.float32, 20, np.eye(10)[labels]) == (
        "float32", 20, 10, 2)
    assert [args[2:] for args in calls] == [("float64", 128, 4, 1), ("float32", 20, 10, 2)]


@pytest.mark.parametrize("case", ["another loss", "numpy backend", "negative label",
                                  "too many classes", "too many columns", "no columns",
                                  "no targets", "float labels", "switched off", "compiled here"])
def test_where_no_helper_starts(calls, monkeypatch, case):
    loss, y, dtype = SoftmaxCrossEntropy(), np.array([0, 2, 1]), np.float32
    if case == "another loss":
        loss = MeanSquaredError()
    elif case == "numpy backend":
        monkeypatch.setattr(_loss_ahead, "get_backend", lambda: "numpy")
    elif case == "negative label":                  # fit refuses it
        y = np.array([0, -1, 1])
    elif case == "too many classes":                # zeros of rows x 2**16 classes
        y = np.array([0, _loss_ahead.MAX_CLASSES])
    elif case == "too many columns":
        y = np.zeros((3, _loss_ahead.MAX_CLASSES + 1), np.float32)
    elif case == "no columns":
        y = np.zeros((3, 0), np.float32)
    elif case == "no targets":
        y = y[:0]
    elif case == "float labels":
        y = y.astype(np.float32)
    elif case == "switched off":
        monkeypatch.setenv("FASTNET_COMPILE_AHEAD", "0")
    else:                                           # this process has the kernel already
        with fastnet.set_backend("numba"):
            SoftmaxCrossEntropy().forward(np.zeros((7, 3), dtype), y[[0, 1, 2, 0, 1, 2, 0]])
        assert losses.softmax_cross_entropy_kernel((7, 3), 1).overloads
    assert _loss_ahead.start(loss, dtype, 7, y) is None
    assert calls == []
