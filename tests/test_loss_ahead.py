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
from fastnet import _loss_ahead, compat
from fastnet.kernels._host import usable_cpus
from fastnet.kernels.numba_backend import _ahead, _config, dense_blocked, losses
from fastnet.layers import FC, Conv1d, Dropout, Flatten, ReLU, Softmax
from fastnet.losses import MeanSquaredError, SoftmaxCrossEntropy
from fastnet.model import Classifier

compiled = _loss_ahead._compiled

# With one CPU, or nothing cached, no helper ever starts (``_ahead.enabled``); without AVX-512
# no slot compiles, so none starts either.
pytestmark = pytest.mark.skipif(
    not (_config.CACHE and usable_cpus() >= 2 and dense_blocked.AVAILABLE),
    reason="a Numba cache, two CPUs and the dense layers' slots (AVX-512)")

# argv: code run in the helper before its work (a delay, a failure); "labels" or "rows"; "late"
# to reach the loss only once the helper has ended (as a larger model's forward would), or "";
# "small" for a model whose forward compiles no slot, or "".
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
width = 12 if sys.argv[4] == "small" else 1024       # 16 x 1024 -> 64: a dense slot
X = rng.standard_normal((64, width)).astype(np.float32)
y = rng.integers(0, 5, 64)
if sys.argv[2] == "rows":
    y = np.eye(5)[y]
model = Classifier([FC(width, 64, HeInitializer(seed=1), activation="relu"),
                    FC(64, 5, HeInitializer(seed=2))], optimizer=SGD(0.1))
model.fit(X, y, epochs=2, batch_size=16, shuffle=False)
kernel = losses.softmax_cross_entropy_kernel((16, 5), y.ndim)
print(json.dumps({
    "started": _ahead.started(), "history": model.history["loss"],
    "seconds": time.perf_counter() - t, "running": [h.poll() is None for h in helpers],
    "digest": hashlib.sha256(b"".join(p.tobytes() for p in model.params.values())).hexdigest(),
    "hits": sum(kernel._cache_hits.values()), "misses": sum(kernel._cache_misses.values())}))
"""


def _fit(cache, targets, ahead="1", before="", late=True, small=False):
    """A fresh process's fit of a small classifier (float32, Numba) with ``cache`` as its Numba
    cache; ``before``: code its helper runs first; ``late``: the loss is reached only once the
    helper has ended; ``small``: a forward that compiles no slot."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "FASTNET_BACKEND": "numba",
           "FASTNET_COMPILE_AHEAD": ahead}
    out = subprocess.run([sys.executable, "-c", _FIT, before, targets, "late" if late else "",
                          "small" if small else ""],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def compiled_here(tmp_path_factory):
    """The fit with no helper, on a cold cache: the loss compiled in the process itself."""
    result = _fit(tmp_path_factory.mktemp("cold"), "labels", ahead="0")
    assert (result["started"], result["hits"], result["misses"]) == ([], 0, 1)
    return "labels", result


def test_a_cold_fit_loads_the_loss_that_a_helper_compiled(compiled_here, tmp_path):
    targets, here = compiled_here
    result = _fit(tmp_path, targets)
    assert result["started"] == [["compile_in_helper", "float32", 16, 5, 1]]
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


def test_a_forward_that_compiles_no_slot_starts_no_helper(tmp_path):
    """It compiles sooner than a helper could start and compile the loss."""
    result = _fit(tmp_path, "labels", late=False, small=True)
    assert (result["started"], result["hits"], result["misses"]) == ([], 0, 1)


def test_a_fit_that_stops_before_its_forward_leaves_no_helper_armed(calls, monkeypatch):
    """Armed for a fit that then refused the model (no optimizer), the helper would have
    started at the next slot compiled anywhere in the process."""
    model = Classifier([FC(784, 64, activation="relu"), FC(64, 5)])
    X, y = np.zeros((32, 784), np.float32), np.arange(32) % 5
    with pytest.raises(ValueError, match="has no optimizer"):
        model.fit(X, y, epochs=1, batch_size=16)
    assert calls == [(_loss_ahead.__name__, "compile_in_helper", "float32", 16, 5, 1)]
    assert _ahead._state["armed"] == {}


@pytest.fixture
def calls(monkeypatch):
    """``_loss_ahead.arm`` deciding on a cache that looks cold, with the helpers it arms
    recorded (and armed, not started)."""
    armed = []
    arm_call = _ahead.arm_call

    def recording(*args):
        armed.append(args)
        arm_call(*args)
    monkeypatch.setattr(_ahead, "_state", {**_ahead._state, "armed": {}, "helpers": {}})
    monkeypatch.setattr(_ahead, "arm_call", recording)
    monkeypatch.setattr(_ahead, "on_disk", lambda pyfunc, sig: False)
    # not compiled in this process either (the test session may have compiled it)
    monkeypatch.setattr(_loss_ahead, "_compiled", lambda kernel, *key: False)
    monkeypatch.delenv("FASTNET_COMPILE_AHEAD", raising=False)
    with fastnet.set_backend("numba"):
        yield armed


def test_the_helper_gets_the_first_batchs_shapes(calls):
    labels = np.array([0, 3, 1], np.uint8)
    for layers in ([FC(3, 4), Dropout(0.5), ReLU(), Softmax()],
                   [compat.FC(3, 4, compat.HeInitializer(), compat.SGD(0.1)), compat.Softmax()]):
        assert _loss_ahead.arm(SoftmaxCrossEntropy(), layers, np.float64, 128, labels) == (
            "float64", 128, 4, 1)
    assert [args[2:] for args in calls] == [("float64", 128, 4, 1)] * 2


def test_a_collect_before_the_launch_leaves_no_helper(monkeypatch):
    """A collect in another thread between a slot's cold check and the helper's launch found
    nothing to stop, and the helper then started anyway (an audit's finding)."""
    monkeypatch.setattr(_ahead, "_state", {**_ahead._state, "armed": {}, "helpers": {},
                                           "started": []})
    monkeypatch.setattr(_ahead, "on_disk", lambda pyfunc, sig: False)
    monkeypatch.delenv("FASTNET_COMPILE_AHEAD", raising=False)
    key = ("time", "sleep", 60)
    _ahead.arm_call(*key)
    launch = _ahead._launch

    def collected_first(*args, **kwargs):
        _ahead.done_or_stop_call(*key)            # the other thread's collect
        launch(*args, **kwargs)
    monkeypatch.setattr(_ahead, "_launch", collected_first)
    _ahead.start_armed_if_cold(None, None)
    try:
        assert _ahead.started() == [] and _ahead._state["armed"] == {}
    finally:
        _ahead._stop_helpers()


@pytest.mark.parametrize("case", [
    "another loss", "numpy backend", "negative label", "label beyond the outputs",
    "rows of another width", "no targets", "float labels", "switched off", "compiled here",
    "a network that ends in no FC", "too many classes", "one-hot rows", "a large batch"])
def test_where_no_helper_is_armed(calls, monkeypatch, case):
    loss, layers, y, dtype = SoftmaxCrossEntropy(), [FC(2, 3)], np.array([0, 2, 1]), np.float32
    rows = 7
    if case == "another loss":
        loss = MeanSquaredError()
    elif case == "numpy backend":
        monkeypatch.setattr(_loss_ahead, "get_backend", lambda: "numpy")
    elif case == "negative label":                  # fit refuses it
        y = np.array([0, -1, 1])
    elif case == "label beyond the outputs":        # fit refuses it
        y = np.array([0, 3, 1])
    elif case == "rows of another width":           # fit refuses them
        y = np.eye(4, dtype=np.float32)[:3]
    elif case == "no targets":
        y = y[:0]
    elif case == "float labels":
        y = y.astype(np.float32)
    elif case == "switched off":
        monkeypatch.setenv("FASTNET_COMPILE_AHEAD", "0")
    elif case == "a network that ends in no FC":
        layers = [Conv1d(1, 3, 2), Flatten()]
    elif case == "too many classes":                # zeros of rows x 2**16 classes
        layers = [FC(2, (1 << 16) + 1)]
    elif case == "one-hot rows":                    # parallel kernels: compile for too long
        y = np.eye(3, dtype=np.float32)[y]
    elif case == "a large batch":
        rows = 1 << 16
    else:                                           # this process has the kernel already
        monkeypatch.setattr(_loss_ahead, "_compiled", compiled)
        SoftmaxCrossEntropy().forward(np.zeros((7, 3), dtype), y[[0, 1, 2, 0, 1, 2, 0]])
        assert losses.softmax_cross_entropy_kernel((7, 3), 1).overloads
    assert _loss_ahead.arm(loss, layers, dtype, rows, y) is None
    assert calls == []
