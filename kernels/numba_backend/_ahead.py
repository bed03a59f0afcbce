"""A slot that the next call will need, compiled ahead in a helper process (cold cache only).

Why: a cold start is compiling, on one core (Numba compiles under one process-wide lock, so a
thread would not help), while the other core idles. The convolution's backward slot is the
largest single compile of the MNIST CNN's first step (~2.4 s of ~5 s on an Intel Xeon), and it
is certain to be needed once a training forward has run. Measured (Intel Xeon, the start-up
probe of ``python -m fastnet bench``, empty cache, interleaved prototype runs): the MLP and CNN
first steps 9.5-14.8 s without a helper against 7.7-8.4 s with one; the CNN alone 8.7-11.4 s
against 7.7-7.8 s. (A helper for the forward slots too gained nothing: the forward needs them at
once, so this process only waited.)

How: when :func:`_slots.slot_address` is about to compile a slot that names a companion, and
this process has met a cold cache (this slot, or an earlier one, missed it), a helper process
(``python -c``: this interpreter, ``sys.path`` and environment) compiles the companion into
the same on-disk cache and exits. When the companion is needed, :func:`wait` lets the helper
finish first, and the slot then loads from the cache: bit for bit the code this process would
have compiled (the cache keys on the target machine, which the helper checks it shares). If the
helper fails, is slow (:data:`WAIT_SECONDS`), or finds another target, the slot compiles here as
before: a helper can cost time, never a result.

Off where nothing is cached (``_config.CACHE``), with ``FASTNET_COMPILE_AHEAD=0``, inside a
helper, and where no helper can start. A helper still running when this process exits is
stopped (Numba writes its cache files whole, by renaming, so nothing half-written is left).
"""
import atexit
import json
import os
import subprocess
import sys
import threading

import numba
import numpy as np
from numba.core.registry import cpu_target

from ._config import CACHE

#: Longest wait for a helper (seconds) before compiling here instead: a cold compile of the
#: convolution's backward slot takes ~2.4 s on 2 cores, so a helper past this has gone wrong.
WAIT_SECONDS = 120

_HELPER = r"""
import sys
# This process's sys.path before any other import: "-c" puts the current folder first, whose
# json.py (say) would otherwise shadow the one this process imports.
module, name, dtype, target, path = sys.argv[1:6]
sys.path[:] = path.split("\n") if path else []
import json
import numpy as np
from numba.core.registry import cpu_target
if json.dumps(cpu_target.target_context.codegen().magic_tuple()) != target:
    sys.exit(3)                          # another target: its cache entry would not be found
import importlib
from fastnet.kernels.numba_backend import _slots
_slots.slot_address(getattr(importlib.import_module(module), name), np.dtype(dtype))
"""

_state = {"lock": threading.Lock(), "helpers": {}, "cold": False, "started": []}


def enabled():
    """Whether a helper may start: caching on, not switched off, not inside a helper."""
    return (CACHE and bool(sys.executable)
            and os.environ.get("FASTNET_COMPILE_AHEAD", "1").strip() != "0")


def note_miss():
    """Record that this process compiled a slot the cache did not have: its companions then
    start ahead from now on, before their owners compile."""
    _state["cold"] = True


def is_cold():
    return _state["cold"]


def start(pyfunc, dtype):
    """Start a helper compiling ``pyfunc``'s slot for ``dtype`` into the cache, unless one is
    already on it or helpers are off. Never raises: a helper that cannot start is no helper."""
    key = (pyfunc, np.dtype(dtype))
    with _state["lock"]:
        if not enabled() or key in _state["helpers"]:
            return
        env = {**os.environ, "FASTNET_COMPILE_AHEAD": "0"}
        if numba.config.CACHE_DIR:          # set in this process, maybe not in its environment
            env["NUMBA_CACHE_DIR"] = numba.config.CACHE_DIR
        target = json.dumps(cpu_target.target_context.codegen().magic_tuple())
        try:
            helper = subprocess.Popen(
                [sys.executable, "-c", _HELPER, pyfunc.__module__, pyfunc.__name__,
                 key[1].name, target, "\n".join(sys.path)],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        except OSError:
            return
        _state["helpers"][key] = helper
        _state["started"].append((pyfunc.__name__, key[1].name))


def wait(pyfunc, dtype):
    """Let a helper on ``pyfunc``'s slot for ``dtype`` finish (at most :data:`WAIT_SECONDS`;
    past that it is stopped). Returns its exit code, or None where there was no helper."""
    with _state["lock"]:
        helper = _state["helpers"].pop((pyfunc, np.dtype(dtype)), None)
    if helper is None:
        return None
    try:
        return helper.wait(WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        helper.kill()
        return helper.wait()
    except BaseException:             # interrupted (Ctrl-C): leave no helper behind
        helper.kill()
        raise


def started():
    """``[(slot name, dtype name), ...]``: the helpers this process started, in order."""
    return list(_state["started"])


@atexit.register
def _stop_helpers():
    for helper in _state["helpers"].values():
        if helper.poll() is None:
            helper.kill()


def _forget_helpers():
    """In a forked child: the helpers are the parent's, not its own to wait for or stop."""
    _state.update(lock=threading.Lock(), helpers={})


if hasattr(os, "register_at_fork"):   # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_helpers)
