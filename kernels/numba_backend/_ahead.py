"""A slot (or a call) that the next step will need, compiled ahead in a helper process (cold
cache only).

Why: a cold start is compiling, on one core (Numba compiles under one process-wide lock, so a
thread would not help), while the other core idles. The convolution's backward slot is the
largest single compile of the MNIST CNN's first step (~2.4 s of ~5 s on an Intel Xeon), and it
is certain to be needed once a training forward has run. Measured (Intel Xeon, fresh processes,
empty caches, interleaved): the CNN's first step 12.7-12.9 s without a helper against 8.4-11.1
s with one; the start-up probe of ``python -m fastnet bench`` (the MLP, then the CNN), medians
11.3 against 10.5 s. A backward called right after the first forward gains nothing (the helper
has no head start), and a helper for the forward slots too gained nothing: the forward needs
them at once, so this process only waited.

How: when :func:`_slots.slot_address` is about to compile a slot that names a companion in a
process that trains (``fit`` or a layer's forward in training mode said so: ``kernels._trains``),
and Numba's on-disk cache holds neither (:func:`start_if_cold`), a helper process (``python -c``:
this interpreter, ``sys.path`` and environment) compiles the companion into the same cache and
exits. When the companion is needed, :func:`wait` lets the helper finish first, and the slot then
loads from the cache: bit for bit the code this process would have compiled (the cache keys on
the target machine, which the helper checks it shares). A helper that fails, is slow
(:data:`WAIT_SECONDS`), finds another target or is interrupted costs no result: the slot
compiles here as before. A call may be armed instead (:func:`arm_call`;
``fastnet._loss_ahead``: ``fit``'s loss): its helper, which compiles what the call runs,
starts when this process is about to compile a slot, and :func:`done_or_stop_call` takes its
work if it has finished, else stops it.

Off where nothing is cached (``_config.CACHE``), with ``FASTNET_COMPILE_AHEAD=0``, inside a
helper, with one usable CPU (a helper would only take turns with this process), in a
multiprocessing worker, in a frozen application, and where ``sys.executable`` is not a Python
(an embedding server's binary). No helper outlives its process: one still running at exit is
stopped, and a helper exits by itself when its process is gone, however it ended (the end of
the pipe on its stdin). Numba writes cache files whole, by renaming, so a stopped helper leaves
nothing half-written.
"""
import atexit
import json
import multiprocessing
import os
import subprocess
import sys
import threading

import numba
import numpy as np
from numba.core.registry import cpu_target

from .._host import usable_cpus
from .._trains import trains
from ._config import CACHE

#: Longest wait for a helper (seconds) before compiling here instead: a cold compile of the
#: convolution's backward slot takes ~2.4 s on 2 cores, so a helper past this has gone wrong.
WAIT_SECONDS = 120

#: The helper's start: this process's ``sys.path`` before any other import ("-c" puts the
#: current folder first, whose threading.py or json.py would shadow the one this process
#: imports), then exit as soon as the starting process is gone (its stdin, a pipe from that
#: process, then ends). ``job``: a slot's dtype, or a call's arguments (JSON).
_PROLOGUE = r"""
import sys
module, name, job, target, path = sys.argv[1:6]
sys.path[:] = path.split("\n") if path else []
import os, threading
def _orphaned():                # os.read: a thread blocked in sys.stdin holds its lock,
    while os.read(0, 4096):     # and the interpreter's exit then aborts
        pass
    os._exit(0)
threading.Thread(target=_orphaned, daemon=True).start()
"""
#: Its work: the slot, compiled into the cache, unless this machine's target differs (its cache
#: entry would then never be found by the starting process).
_COMPILE = r"""
import importlib, json
import numpy as np
from numba.core.registry import cpu_target
if json.dumps(cpu_target.target_context.codegen().magic_tuple()) != target:
    sys.exit(3)
from fastnet.kernels.numba_backend import _slots
_slots.slot_address(getattr(importlib.import_module(module), name), np.dtype(job))
"""
#: Or a call that compiles what it runs (:func:`arm_call`), on the same terms.
_CALL = r"""
import importlib, json
from numba.core.registry import cpu_target
if json.dumps(cpu_target.target_context.codegen().magic_tuple()) != target:
    sys.exit(3)
getattr(importlib.import_module(module), name)(*json.loads(job))
"""

_state = {"lock": threading.Lock(), "helpers": {}, "started": [], "armed": {}}


def enabled():
    """Whether a helper may start (see the module docstring for when it may not)."""
    if not CACHE or os.environ.get("FASTNET_COMPILE_AHEAD", "1").strip() == "0":
        return False
    if getattr(sys, "frozen", False) or not sys.executable:
        return False
    # A multiprocessing worker: its siblings on the same cold cache would start one each, all
    # compiling the same slot (a spawn pool of two: 5.2-5.4 -> 6.6-6.8 s).
    if multiprocessing.parent_process() is not None:
        return False
    if not os.path.basename(sys.executable).lower().startswith("python"):
        return False
    return usable_cpus() >= 2


def on_disk(pyfunc, sig):
    """Whether Numba's on-disk cache holds ``pyfunc`` compiled (as a slot) for ``sig`` on this
    machine, read from the cache's index without loading it; None where that cannot be told (a
    Numba whose cache internals differ)."""
    try:
        from numba.core.caching import FunctionCache
        cache = FunctionCache(pyfunc)
        key = cache._index_key(sig, cpu_target.target_context.codegen())
        return key in cache._cache_file._load_index()
    except Exception:
        return None


def start_if_cold(owner, companion, sig, dtype):
    """Start a helper on ``companion``'s slot when this process trains (``kernels._trains``)
    and neither it nor ``owner``'s (about to compile here) is in the on-disk cache: a partly
    warm cache (a new dtype, one edited file) has no helper waiting on a slot it could have
    loaded at once. A process that does not train (it infers, or times a forward) would have
    a helper compile a backward it may never run, on the core its own work needs: timed right
    after its first call on a cold cache, conv1d's forward at N128 C28 L28 -> C64 read 0.57x
    NumPy, its backward compiling beside it (4.3x without)."""
    if (trains() and enabled() and on_disk(owner, sig) is False
            and on_disk(companion, sig) is False):
        start(companion, dtype)


def start(pyfunc, dtype):
    """Start a helper compiling ``pyfunc``'s slot for ``dtype`` into the cache, unless one is
    already on it or helpers are off. Never raises: a helper that cannot start is no helper."""
    dtype = np.dtype(dtype)
    _launch((pyfunc, dtype), _COMPILE, [pyfunc.__module__, pyfunc.__name__, dtype.name],
            (pyfunc.__name__, dtype.name))


def arm_call(module, name, *args):
    """Have a helper run ``module.name(*args)`` (JSON arguments), which compiles what it runs
    into the cache, as soon as this process is about to compile a slot
    (:func:`start_armed_if_cold`): seconds of compiling here, a head start worth a second
    process. Until then, or where no slot compiles, nothing starts: a small model's forward
    compiles sooner than a helper could start and compile its share (a cold ``fit`` of a
    12 -> 8 -> 5 classifier took 0.3 s longer with a helper started at once)."""
    if enabled():
        with _state["lock"]:
            _state["armed"][(module, name, *args)] = None


def start_armed_if_cold(pyfunc, sig):
    """Start the armed calls' helpers if ``pyfunc``'s slot for ``sig`` is about to compile
    (not in the on-disk cache)."""
    if _state["armed"] and on_disk(pyfunc, sig) is False:
        for module, name, *args in list(_state["armed"]):
            _launch((module, name, *args), _CALL, [module, name, json.dumps(args)],
                    (name, *args), armed=True)


def _launch(key, work, argv, record, armed=False):
    """Start a helper on ``work`` (the code after the prologue) for ``key``: argv's module,
    name and job, then this machine's target and ``sys.path``. ``armed``: only if the call is
    still armed, claimed under the same lock as :func:`done_or_stop_call` takes (a collect in
    another thread between the two left a helper that nothing would stop)."""
    with _state["lock"]:
        if not enabled() or key in _state["helpers"]:
            return
        if armed and key not in _state["armed"]:
            return
        _state["armed"].pop(key, None)
        env = {**os.environ, "FASTNET_COMPILE_AHEAD": "0"}
        if numba.config.CACHE_DIR:          # set in this process, maybe not in its environment
            env["NUMBA_CACHE_DIR"] = numba.config.CACHE_DIR
        # Only str entries: the import system skips any other (a pathlib.Path, bytes).
        path = "\n".join(p for p in sys.path if isinstance(p, str))
        try:
            target = json.dumps(cpu_target.target_context.codegen().magic_tuple())
            helper = subprocess.Popen(
                [sys.executable, "-c", _PROLOGUE + work, *argv, target, path],
                env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        except Exception:               # OSError, or a ValueError for a NUL in an argument
            return
        _state["helpers"][key] = helper
        _state["started"].append(record)
    # Reaped when it exits, even if never waited for (a process that never runs the backward);
    # its pipe is closed then, not before (the helper would take that for this process's end).
    threading.Thread(target=_reap, args=(helper,), daemon=True).start()


def _reap(helper):
    helper.wait()
    helper.stdin.close()


def wait(pyfunc, dtype):
    """Let a helper on ``pyfunc``'s slot for ``dtype`` finish (at most :data:`WAIT_SECONDS`;
    past that it is stopped). Returns its exit code, or None where there was no helper."""
    return _wait((pyfunc, np.dtype(dtype)))


def wait_all():
    """Let every helper still running finish (each at most :data:`WAIT_SECONDS`, as
    :func:`wait`); the slots and calls they compiled then load from the cache. For a caller
    about to time what runs next (``fastnet.benchmarking``): a helper compiling on the other
    core slows whatever runs meanwhile on two threads."""
    with _state["lock"]:
        keys = list(_state["helpers"])
    for key in keys:
        _wait(key)


def done_or_stop_call(module, name, *args):
    """The exit code of the helper that :func:`arm_call` armed, if it has finished; if not,
    None, and the helper is stopped: the caller compiles the work itself rather than wait for a
    helper that had too little head start (waiting made a small model's cold ``fit`` 0.05-0.26
    s slower). A call armed but not started is disarmed."""
    key = (module, name, *args)
    with _state["lock"]:
        _state["armed"].pop(key, None)
        helper = _state["helpers"].pop(key, None)
    if helper is None:
        return None
    code = helper.poll()
    if code is None:
        helper.kill()
        helper.wait()
    return code


def _wait(key):
    with _state["lock"]:
        helper = _state["helpers"].pop(key, None)
    if helper is None:
        return None
    try:
        return helper.wait(WAIT_SECONDS)
    except BaseException as err:      # too slow, or interrupted (Ctrl-C): no helper left behind
        helper.kill()
        code = helper.wait()
        if isinstance(err, subprocess.TimeoutExpired):
            return code
        raise


def started():
    """``[(slot name, dtype name), ...]`` (a call: ``(function name, *args)``): the helpers
    this process started, in order."""
    return list(_state["started"])


@atexit.register
def _stop_helpers():
    for helper in _state["helpers"].values():
        if helper.poll() is None:
            helper.kill()
            helper.wait()


def _forget_helpers():
    """In a forked child: the helpers are the parent's, not its own to wait for or stop. Its
    copies of their pipes are closed, so that a helper still sees its parent's end."""
    for helper in _state["helpers"].values():
        try:
            helper.stdin.close()
        except OSError:
            pass
    _state.update(lock=threading.Lock(), helpers={}, started=[], armed={})


if hasattr(os, "register_at_fork"):   # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_helpers)
