"""The convolution's backward slot, compiled ahead in a helper process on a cold Numba cache
(``kernels/numba_backend/_ahead``): the helper's work is loaded, not redone; the results are
the same bits; a failed, slow or unwanted helper costs no result; no helper outlives its process.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnet.kernels.numba_backend import _ahead, _config, conv1d_blocked

# Where the convolution takes the GEMM path (no AVX-512) or nothing is cached, no slot names a
# companion and no helper ever starts.
pytestmark = pytest.mark.skipif(not (conv1d_blocked.AVAILABLE and _config.CACHE),
                                reason="the blocked convolution (AVX-512) and a Numba cache")

_CONV_STEP = """
import hashlib, json, sys
import numpy as np, fastnet, fastnet.functional as F
from fastnet.kernels.numba_backend import _ahead, _slots
_ahead._HELPER = sys.argv[1] or _ahead._HELPER
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 16, 20)).astype(np.float32)
W = rng.standard_normal((32, 16, 3)).astype(np.float32)
b = rng.standard_normal(32).astype(np.float32)
y = F.conv1d(x, W, b, 1, 1, activation="relu")
dx, dW, db = F.conv1d_backward(rng.standard_normal(y.shape).astype(np.float32), x, W, 1, 1,
                               y=y, activation="relu")
digest = hashlib.sha256(b"".join(a.tobytes() for a in (y, dx, dW, db))).hexdigest()
print(json.dumps({"started": _ahead.started(), "digest": digest,
                  "hits": {s.__qualname__: s.cache_hits for s in _slots.compiled_slots()}}))
"""


def _conv_step(cache, ahead="1", helper="", command=("-c", _CONV_STEP), cwd=None):
    """A fresh process's convolution forward and backward (float32, Numba) with ``cache`` as
    its Numba cache; ``helper``: the helper's code in place of ``_ahead``'s, if given."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "FASTNET_BACKEND": "numba",
           "FASTNET_COMPILE_AHEAD": ahead}
    out = subprocess.run([sys.executable, *command, helper], capture_output=True, text=True,
                         env=env, timeout=600, cwd=cwd)
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


def test_a_warm_cache_starts_no_helper(tmp_path, compiled_here):
    _conv_step(tmp_path)
    step = _conv_step(tmp_path)
    assert step["started"] == []
    assert step["hits"] == {"_forward_slot": 1, "_backward_slot": 1}
    assert step["digest"] == compiled_here["digest"]


@pytest.mark.parametrize("helper", ["import sys; sys.exit(5)", "raise RuntimeError('broken')"])
def test_a_failed_helper_costs_no_result(tmp_path, compiled_here, helper):
    step = _conv_step(tmp_path, helper=helper)
    assert step["started"] == [["_backward_slot", "float32"]]
    assert step["hits"] == {"_forward_slot": 0, "_backward_slot": 0}      # compiled here
    assert step["digest"] == compiled_here["digest"]


def test_the_helper_imports_what_this_process_imports(tmp_path, compiled_here):
    """A script run in a folder whose json.py a plain ``python -c`` would import first: the
    helper searches this process's ``sys.path``, not that folder."""
    script = tmp_path / "scripts" / "step.py"
    script.parent.mkdir()
    script.write_text(_CONV_STEP)
    (tmp_path / "json.py").write_text("raise ImportError('the current folder came first')\n")
    step = _conv_step(tmp_path / "cache", command=(str(script),), cwd=tmp_path)
    assert step["hits"] == {"_forward_slot": 0, "_backward_slot": 1}
    assert step["digest"] == compiled_here["digest"]


@pytest.fixture
def sleeping_helpers(monkeypatch):
    """Helpers that only sleep, in a state of their own (restored after the test)."""
    monkeypatch.setattr(_ahead, "_state", {**_ahead._state, "helpers": {}, "started": []})
    monkeypatch.setattr(_ahead, "_HELPER", "import time; time.sleep(60)")
    monkeypatch.delenv("FASTNET_COMPILE_AHEAD", raising=False)
    yield _ahead._state["helpers"]
    for helper in _ahead._state["helpers"].values():
        helper.kill()
        helper.wait()


def _slot():
    pass


def test_a_slow_helper_is_stopped_at_the_wait_limit(sleeping_helpers, monkeypatch):
    monkeypatch.setattr(_ahead, "WAIT_SECONDS", 0.5)
    _ahead.start(_slot, np.float32)
    helper = sleeping_helpers[(_slot, np.dtype(np.float32))]
    assert _ahead.wait(_slot, np.float32) != 0
    assert helper.poll() is not None
    assert _ahead.wait(_slot, np.float32) is None                 # nothing left to wait for


def test_helpers_still_running_at_exit_are_stopped(sleeping_helpers):
    _ahead.start(_slot, np.float32)
    _ahead.start(_slot, np.float64)
    _ahead.start(_slot, np.float32)                               # one helper per slot
    assert _ahead.started() == [("_slot", "float32"), ("_slot", "float64")]
    _ahead._stop_helpers()
    for helper in sleeping_helpers.values():
        assert helper.wait(5) is not None


def test_helpers_can_be_switched_off(sleeping_helpers, monkeypatch):
    monkeypatch.setenv("FASTNET_COMPILE_AHEAD", "0")
    _ahead.start(_slot, np.float32)
    assert sleeping_helpers == {} and _ahead.started() == []


def test_a_helper_compiling_for_another_target_does_nothing(tmp_path):
    """Its cache entry would be keyed on another machine, never found here: it exits at once."""
    out = subprocess.run([sys.executable, "-c", _ahead._HELPER, conv1d_blocked.__name__,
                          "_backward_slot", "float32", '["another", "target"]',
                          "\n".join(sys.path)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 3, out.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_wait_leaves_no_helper(sleeping_helpers):
    _ahead.start(_slot, np.float32)
    helper = sleeping_helpers[(_slot, np.dtype(np.float32))]
    real_wait = helper.wait

    def interrupted(timeout=None):             # Ctrl-C while waiting
        helper.wait = real_wait
        raise KeyboardInterrupt
    helper.wait = interrupted
    with pytest.raises(KeyboardInterrupt):
        _ahead.wait(_slot, np.float32)
    assert helper.wait(5) is not None          # stopped, not left sleeping
