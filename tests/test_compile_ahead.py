"""The convolution's backward slot, compiled ahead in a helper process on a cold Numba cache
(``kernels/numba_backend/_ahead``): the helper's work is loaded, not redone; the results are
the same bits; a failed, slow or unwanted helper costs no result; no helper outlives its process.
"""
import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from fastnet.kernels.numba_backend import _ahead, _config, conv1d_blocked
from fastnet.layers import FC
from fastnet.model import Classifier
from fastnet.optimizers import SGD

# Where the convolution takes the GEMM path (no AVX-512) or nothing is cached, no slot names a
# companion and no helper ever starts.
pytestmark = pytest.mark.skipif(not (conv1d_blocked.AVAILABLE and _config.CACHE),
                                reason="the blocked convolution (AVX-512) and a Numba cache")

# argv: the helper's work in place of ``_ahead._COMPILE`` (if not empty), the passes to run:
# "fb" (forward, then backward), "f" or "b", and how the process says it trains: "trains" (as
# ``fit`` does), "layer" (the forward through a ``Conv1d`` in training mode), "eval" (the same
# layer in evaluation mode) or "infers" (nothing said: the functional API only).
_CONV_STEP = """
import hashlib, json, sys
import numpy as np, fastnet, fastnet.functional as F
from fastnet.kernels import _trains
from fastnet.kernels.numba_backend import _ahead, _slots
_ahead._COMPILE = sys.argv[1] or _ahead._COMPILE
mode = sys.argv[3]
if mode == "trains":
    _trains.training_starts()
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 16, 20)).astype(np.float32)
W = rng.standard_normal((32, 16, 3)).astype(np.float32)
b = rng.standard_normal(32).astype(np.float32)
out = []
if "f" in sys.argv[2] and mode in ("layer", "eval"):
    layer = fastnet.layers.Conv1d(16, 32, 3, padding=1, activation="relu", dtype=np.float32)
    layer.W[...], layer.b[...] = W, b
    out.append(layer.train(mode == "layer").forward(x))
elif "f" in sys.argv[2]:
    out.append(F.conv1d(x, W, b, 1, 1, activation="relu"))
if "b" in sys.argv[2]:
    y = np.maximum(rng.standard_normal((8, 32, 20)).astype(np.float32), 0)
    out += F.conv1d_backward(rng.standard_normal(y.shape).astype(np.float32), x, W, 1, 1,
                             y=y, activation="relu")
digest = hashlib.sha256(b"".join(a.tobytes() for a in out)).hexdigest()
print(json.dumps({"started": _ahead.started(), "digest": digest,
                  "hits": {s.__qualname__: s.cache_hits for s in _slots.compiled_slots()}}))
"""


def _conv_step(cache, ahead="1", helper="", passes="fb", command=("-c", _CONV_STEP), cwd=None,
               mode="trains"):
    """A fresh process's convolution ``passes`` (float32, Numba) with ``cache`` as its Numba
    cache; ``helper``: the helper's work in place of ``_ahead``'s, if given; ``mode``: how the
    process says that it trains (see ``_CONV_STEP``)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "FASTNET_BACKEND": "numba",
           "FASTNET_COMPILE_AHEAD": ahead}
    out = subprocess.run([sys.executable, *command, helper, passes, mode], capture_output=True,
                         text=True, env=env, timeout=600, cwd=cwd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def compiled_here(tmp_path_factory):
    """The step with no helper, on a cold cache: every slot compiled in the process itself."""
    return _conv_step(tmp_path_factory.mktemp("cache"), ahead="0")


def test_without_helpers_every_slot_compiles_in_the_process(compiled_here):
    assert compiled_here["started"] == []
    assert set(compiled_here["hits"].values()) == {0}


def test_a_cold_cache_gets_the_backward_slot_from_a_helper(tmp_path, compiled_here):
    step = _conv_step(tmp_path)
    assert step["started"] == [["_backward_slot", "float32"]]
    # Loaded from the cache that the helper filled, not compiled again here.
    assert step["hits"] == {"_forward_slot": 0, "_backward_slot": 1}
    assert step["digest"] == compiled_here["digest"]


def test_a_training_forward_through_a_layer_starts_the_helper(tmp_path, compiled_here):
    step = _conv_step(tmp_path, mode="layer")
    assert step["started"] == [["_backward_slot", "float32"]]
    assert step["hits"] == {"_forward_slot": 0, "_backward_slot": 1}
    assert step["digest"] == compiled_here["digest"]


@pytest.mark.parametrize("mode", ["infers", "eval"])
def test_a_process_that_does_not_train_starts_no_helper(tmp_path, compiled_here, mode):
    """The functional API alone, or a layer in evaluation mode: a backward may never follow
    (inference, or a benchmark timing the forward, whose second core a helper would take)."""
    step = _conv_step(tmp_path, mode=mode)
    assert step["started"] == []
    assert step["hits"] == {"_forward_slot": 0, "_backward_slot": 0}
    assert step["digest"] == compiled_here["digest"]


def test_fit_says_that_the_process_trains(monkeypatch):
    from fastnet.kernels import _trains
    monkeypatch.setitem(_trains._state, "trains", False)
    model = Classifier([FC(4, 3)], optimizer=SGD(0.1))
    model.fit(np.zeros((6, 4), np.float32), np.arange(6) % 3, epochs=1, batch_size=3)
    assert _trains.trains()


def test_a_warm_cache_starts_no_helper(tmp_path, compiled_here):
    _conv_step(tmp_path)
    step = _conv_step(tmp_path)
    assert step["started"] == []
    assert step["hits"] == {"_forward_slot": 1, "_backward_slot": 1}
    assert step["digest"] == compiled_here["digest"]


@pytest.mark.parametrize("cached, hits", [("f", {"_forward_slot": 1, "_backward_slot": 0}),
                                          ("b", {"_forward_slot": 0, "_backward_slot": 1})])
def test_a_partly_warm_cache_starts_no_helper(tmp_path, compiled_here, cached, hits):
    """With one of the two slots cached (an earlier process ran only that pass), the other
    compiles here: a helper would only have made the backward wait."""
    _conv_step(tmp_path, ahead="0", passes=cached)
    step = _conv_step(tmp_path)
    assert step["started"] == []
    assert step["hits"] == hits
    assert step["digest"] == compiled_here["digest"]


@pytest.mark.parametrize("helper", ["sys.exit(5)", "raise RuntimeError('broken')"])
def test_a_failed_helper_costs_no_result(tmp_path, compiled_here, helper):
    step = _conv_step(tmp_path, helper=helper)
    assert step["started"] == [["_backward_slot", "float32"]]
    assert step["hits"] == {"_forward_slot": 0, "_backward_slot": 0}      # compiled here
    assert step["digest"] == compiled_here["digest"]


def test_the_helper_imports_what_this_process_imports(tmp_path, compiled_here):
    """A script run in a folder whose threading.py and json.py a plain ``python -c`` would
    import first: the helper searches this process's ``sys.path``, not that folder."""
    script = tmp_path / "scripts" / "step.py"
    script.parent.mkdir()
    script.write_text(_CONV_STEP)
    for shadow in ("threading.py", "json.py"):
        (tmp_path / shadow).write_text("raise ImportError('the current folder came first')\n")
    step = _conv_step(tmp_path / "cache", command=(str(script),), cwd=tmp_path)
    assert step["hits"] == {"_forward_slot": 0, "_backward_slot": 1}
    assert step["digest"] == compiled_here["digest"]


def _alive(pid):
    """Whether process ``pid`` still runs (a zombie that nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _with_a_sleeping_helper(tail, cache):
    """The pids a fresh process prints after it has started a helper that only sleeps (in its
    variable ``helper``) and run ``tail``, which ends it."""
    code = ("import os, sys, time, numpy as np\n"
            "from fastnet.kernels.numba_backend import _ahead\n"
            "_ahead._COMPILE = 'import time; time.sleep(60)'\n"
            "def slot(): pass\n"
            "_ahead.start(slot, np.float32)\n"
            "helper = _ahead._state['helpers'][(slot, np.dtype(np.float32))].pid\n" + tail)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    env.pop("FASTNET_COMPILE_AHEAD", None)
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         env=env, timeout=120)
    return [int(pid) for pid in out.stdout.split()]


def _gone_within(pid, seconds):
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _alive(pid)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_helper_ends_with_its_process_however_that_ends(tmp_path):
    """``os._exit`` runs no atexit hook: the helper sees its stdin's pipe end, and exits."""
    helper, = _with_a_sleeping_helper("print(helper, flush=True)\nos._exit(0)\n", tmp_path)
    assert _gone_within(helper, 20)


@pytest.mark.skipif(not (os.path.isdir("/proc") and hasattr(os, "fork")),
                    reason="reads /proc, forks")
def test_a_forked_child_does_not_keep_its_parents_helper_alive(tmp_path):
    """The child's copy of the helper's pipe is closed at the fork: when the parent ends, the
    helper sees its pipe end although the child still runs."""
    helper, child = _with_a_sleeping_helper(
        "child = os.fork()\n"
        "if child == 0:\n"
        "    os.close(1)\n"               # the test reads the parent's output to its end
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
        "print(helper, child, flush=True)\n"
        "os._exit(0)\n", tmp_path)
    try:
        assert _gone_within(helper, 15)
        assert _alive(child)
    finally:
        os.kill(child, 9)


def test_a_helper_compiling_for_another_target_does_nothing(tmp_path):
    """Its cache entry would be keyed on another machine, never found here: it exits at once."""
    helper = subprocess.Popen([sys.executable, "-c", _ahead._PROLOGUE + _ahead._COMPILE,
                               conv1d_blocked.__name__, "_backward_slot", "float32",
                               '["another", "target"]', "\n".join(sys.path)],
                              stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert helper.wait(120) == 3, helper.stderr.read()
    helper.stdin.close()
    helper.stderr.close()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def helpers(monkeypatch):
    """``_ahead`` with a state of its own (restored after the test) and helpers that only
    sleep; the helpers it started."""
    monkeypatch.setattr(_ahead, "_state", {**_ahead._state, "helpers": {}, "started": []})
    monkeypatch.setattr(_ahead, "_COMPILE", "import time; time.sleep(60)")
    monkeypatch.delenv("FASTNET_COMPILE_AHEAD", raising=False)
    started = []
    start = _ahead.start

    def recording_start(pyfunc, dtype):
        start(pyfunc, dtype)
        helper = _ahead._state["helpers"].get((pyfunc, np.dtype(dtype)))
        if helper is not None and helper not in started:
            started.append(helper)
    monkeypatch.setattr(_ahead, "start", recording_start)
    yield started
    for helper in started:
        helper.kill()
        helper.wait()


def _slot():
    pass


def test_a_slow_helper_is_stopped_at_the_wait_limit(helpers, monkeypatch):
    monkeypatch.setattr(_ahead, "WAIT_SECONDS", 0.5)
    _ahead.start(_slot, np.float32)
    assert _ahead.wait(_slot, np.float32) != 0
    assert helpers[0].poll() is not None
    assert _ahead.wait(_slot, np.float32) is None                 # nothing left to wait for


def test_helpers_still_running_at_exit_are_stopped(helpers):
    _ahead.start(_slot, np.float32)
    _ahead.start(_slot, np.float64)
    _ahead.start(_slot, np.float32)                               # one helper per slot
    assert _ahead.started() == [("_slot", "float32"), ("_slot", "float64")]
    _ahead._stop_helpers()
    assert [helper.poll() is not None for helper in helpers] == [True, True]


def test_wait_all_lets_every_running_helper_finish(helpers, monkeypatch):
    monkeypatch.setattr(_ahead, "_COMPILE", "import time; time.sleep(0.5)")
    _ahead.start(_slot, np.float32)
    _ahead.start(_slot, np.float64)
    _ahead.wait_all()
    assert [helper.returncode for helper in helpers] == [0, 0]
    assert _ahead.wait(_slot, np.float32) is None                 # nothing left to wait for


def test_an_interrupted_wait_leaves_no_helper(helpers):
    _ahead.start(_slot, np.float32)
    helper = helpers[0]
    real_wait = helper.wait

    def interrupted(timeout=None):             # Ctrl-C while waiting
        helper.wait = real_wait
        raise KeyboardInterrupt
    helper.wait = interrupted
    with pytest.raises(KeyboardInterrupt):
        _ahead.wait(_slot, np.float32)
    assert helper.poll() is not None           # stopped and reaped, not left sleeping


def test_a_finished_helper_is_reaped_without_a_wait(helpers, monkeypatch):
    """A process that never needs the slot (it only predicts) keeps no zombie helper."""
    monkeypatch.setattr(_ahead, "_COMPILE", "pass")
    _ahead.start(_slot, np.float32)
    deadline = time.monotonic() + 20
    while helpers[0].returncode is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert helpers[0].returncode == 0


def test_odd_sys_path_entries_start_a_helper_all_the_same(helpers, monkeypatch):
    monkeypatch.setattr(sys, "path", [*sys.path, pathlib.Path("/nowhere"), b"/nowhere"])
    _ahead.start(_slot, np.float32)
    assert _ahead.started() == [("_slot", "float32")]


@pytest.mark.parametrize("setting", ["switched off", "frozen", "one cpu", "not python",
                                     "a multiprocessing worker"])
def test_where_helpers_do_not_start(helpers, monkeypatch, setting):
    if setting == "switched off":
        monkeypatch.setenv("FASTNET_COMPILE_AHEAD", "0")
    elif setting == "a multiprocessing worker":     # its siblings would each start one
        monkeypatch.setattr(multiprocessing, "parent_process", lambda: object())
    elif setting == "frozen":                    # a PyInstaller application
        monkeypatch.setattr(sys, "frozen", True, raising=False)
    elif setting == "one cpu":
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
        monkeypatch.setattr(os, "cpu_count", lambda: 1)
    else:                                        # an embedding server's own binary
        monkeypatch.setattr(sys, "executable", "/usr/sbin/uwsgi")
    _ahead.start(_slot, np.float32)
    assert helpers == [] and _ahead.started() == []
