"""Backend, dtype and thread settings: setters, with-blocks, env defaults, loud failures."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnet
from fastnet import backend as backend_module
from fastnet.kernels import BACKENDS


def run_python(code, **env):
    full_env = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=full_env, timeout=300)
    return out


def run_python_without_openmp_settings(code, **env):
    """``run_python`` with neither ``GOMP_SPINCOUNT`` nor ``OMP_WAIT_POLICY`` inherited, so
    fastnet's own OpenMP default applies (unless ``env`` sets one)."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**full_env, **env}, timeout=300)


def test_empty_env_counts_as_unset():
    out = run_python("import fastnet; print(fastnet.get_backend())", FASTNET_BACKEND="")
    assert out.stdout.strip() == "numba", out.stderr


def test_default_backend_without_env_is_numba():
    env = {k: v for k, v in os.environ.items() if k != "FASTNET_BACKEND"}
    out = subprocess.run([sys.executable, "-c", "import fastnet; print(fastnet.get_backend())"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.stdout.strip() == "numba", out.stderr


def test_env_selects_backend():
    out = run_python("import fastnet; print(fastnet.get_backend())", FASTNET_BACKEND="numpy")
    assert out.stdout.strip() == "numpy", out.stderr


def test_env_backend_may_carry_spaces():
    """As FASTNET_NUM_THREADS may (a shell's ``export FASTNET_BACKEND=" numpy"``)."""
    out = run_python("import fastnet; print(fastnet.get_backend())", FASTNET_BACKEND=" numpy\n")
    assert out.stdout.strip() == "numpy", out.stderr


def test_unknown_env_backend_fails_loudly():
    out = run_python("import fastnet, numpy as np; fastnet.functional.relu(np.zeros(2, np.float32))",
                     FASTNET_BACKEND="cuda")
    assert out.returncode != 0
    assert "FASTNET_BACKEND" in out.stderr and "'cuda'" in out.stderr and "numba" in out.stderr


def test_set_backend_global_and_with_block():
    before = fastnet.get_backend()
    try:
        fastnet.set_backend("numpy")
        assert fastnet.get_backend() == "numpy"
        with fastnet.set_backend("numba"):
            assert fastnet.get_backend() == "numba"
            assert fastnet.backend.kernels().__name__.endswith("numba_backend")
        assert fastnet.get_backend() == "numpy"
    finally:
        fastnet.set_backend(before)


def test_unknown_backend_lists_allowed():
    with pytest.raises(ValueError) as info:
        fastnet.set_backend("torch")
    assert "'torch'" in str(info.value) and str(BACKENDS) in str(info.value)


def test_unloadable_backend_raises_with_original_error(monkeypatch):
    def broken(name):
        raise ImportError("No module named 'numba'")
    monkeypatch.setattr(backend_module, "_load_backend_module", broken)
    monkeypatch.setattr(backend_module, "_modules", {})
    with pytest.raises(ImportError) as info:
        fastnet.set_backend("numba")
    assert "No module named 'numba'" in str(info.value)
    assert "pip install numba" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_default_dtype():
    assert fastnet.get_default_dtype() is np.float32
    with fastnet.set_default_dtype(np.float64):
        assert fastnet.get_default_dtype() is np.float64
    assert fastnet.get_default_dtype() is np.float32
    with pytest.raises(TypeError, match="float16"):
        fastnet.set_default_dtype(np.float16)


def test_set_num_threads_controls_numba_and_blas():
    import numba
    from threadpoolctl import threadpool_info
    fastnet.backend.kernels()      # make sure the numba backend is loaded
    before = fastnet.get_num_threads()          # None, or FASTNET_NUM_THREADS's count
    with fastnet.set_num_threads(1):
        assert fastnet.get_num_threads() == 1
        assert numba.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    assert fastnet.get_num_threads() == before
    with pytest.raises(ValueError, match="n=0"):
        fastnet.set_num_threads(0)


def test_leaving_a_thread_block_restores_the_users_own_limits(monkeypatch):
    """The previous counts come back; the user's own BLAS/Numba limits were once replaced by
    all cores when the block ended (previous setting None)."""
    import numba
    from threadpoolctl import threadpool_info, threadpool_limits
    fastnet.backend.kernels()
    # no fastnet setting before (FASTNET_NUM_THREADS makes one, which the block would restore)
    monkeypatch.setitem(fastnet.backend._state, "threads", None)
    cpus = fastnet.backend._usable_cpus()
    blas_counts = lambda: [p["num_threads"] for p in threadpool_info()        # noqa: E731
                           if p["user_api"] == "blas"]
    before = blas_counts()
    with threadpool_limits(1, user_api="blas"):
        numba.set_num_threads(1)
        try:
            with fastnet.set_num_threads(cpus):
                assert numba.get_num_threads() == min(cpus, numba.config.NUMBA_NUM_THREADS)
            assert fastnet.get_num_threads() is None
            assert numba.get_num_threads() == 1
            assert set(blas_counts()) <= {1}
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert blas_counts() == before


def test_set_num_threads_is_capped_at_the_usable_cpus():
    """More BLAS threads than cores only take turns on them (--threads 3 trained 20x slower)."""
    from threadpoolctl import threadpool_info
    cpus = fastnet.backend._usable_cpus()
    with fastnet.set_num_threads(cpus + 7):
        assert fastnet.get_num_threads() == cpus
        assert all(p["num_threads"] <= cpus for p in threadpool_info() if p["user_api"] == "blas")


def test_backends_agree_on_a_training_step():
    """One fused dense + softmax-CE + AdaGrad step gives the same numbers on both backends."""
    rng = np.random.default_rng(0)
    x, W0 = rng.standard_normal((16, 8)), rng.standard_normal((8, 4))
    b0, y = np.zeros(4), rng.integers(0, 4, 16)
    results = {}
    for name in BACKENDS:
        with fastnet.set_backend(name):
            W, b, hW = W0.copy(), b0.copy(), np.zeros_like(W0)
            out = fastnet.functional.dense(x, W, b, "tanh")
            loss, probs = fastnet.functional.softmax_cross_entropy(out, y, return_probs=True)
            d = fastnet.functional.softmax_cross_entropy_backward(probs, y)
            _, dW, _ = fastnet.functional.dense_backward(d, x, W, out, "tanh")
            fastnet.functional.adagrad_update_(W, dW, hW, 0.1)
            results[name] = (loss, W)
    np.testing.assert_allclose(results["numba"][0], results["numpy"][0], rtol=1e-12)
    np.testing.assert_allclose(results["numba"][1], results["numpy"][1], rtol=1e-12)


def test_import_bounds_thread_spinning_but_keeps_user_settings():
    """GOMP_SPINCOUNT and OPENBLAS_THREAD_TIMEOUT get fastnet's defaults (reasons in
    fastnet/backend.py) unless the user set them."""
    code = ("import os, fastnet; "
            "print(os.environ['GOMP_SPINCOUNT'], os.environ['OPENBLAS_THREAD_TIMEOUT'])")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    from fastnet.kernels._host import numba_will_compile_avx512
    assert out == ["30000" if numba_will_compile_avx512() else "1000", "4"]
    env.update(GOMP_SPINCOUNT="5", OPENBLAS_THREAD_TIMEOUT="20")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["5", "20"]
    # A wait policy of the user's own is left alone too (a spin count would override it).
    del env["GOMP_SPINCOUNT"]
    code = "import os, fastnet; print(os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "passive"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["None"]


_NUMBA_TARGET_VARIABLES = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_ENABLE_AVX")


@pytest.mark.parametrize("target", [
    {}, {"NUMBA_CPU_NAME": "generic"}, {"NUMBA_CPU_NAME": "Generic"},
    {"NUMBA_CPU_FEATURES": "+avx2,+fma"}, {"NUMBA_CPU_FEATURES": ""},
    {"NUMBA_ENABLE_AVX": "0"}, {"NUMBA_ENABLE_AVX": "no"}], ids=repr)
def test_openmp_spinning_follows_what_numba_compiles_for(target):
    """The spin count is chosen before Numba is imported, from the environment; it must match
    what Numba then compiles for: under ``NUMBA_CPU_NAME=generic`` on an AVX-512 host the
    products are BLAS GEMMs, which a worker spinning 30000 rounds would starve."""
    from fastnet.kernels._host import has_avx512
    code = ("import os, fastnet; from fastnet.kernels._host import numba_will_compile_avx512; "
            "from fastnet.kernels.numba_backend._config import numba_compiles_avx512; "
            "print(os.environ['GOMP_SPINCOUNT'], numba_will_compile_avx512(), "
            "numba_compiles_avx512())")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY") + _NUMBA_TARGET_VARIABLES}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, env={**env, **target}, timeout=300)
    assert out.returncode == 0, out.stderr
    spin, predicted, compiled = out.stdout.split()
    assert predicted == compiled
    assert spin == ("30000" if compiled == "True" else "1000")
    if target and "avx512f" not in target.get("NUMBA_CPU_FEATURES", "") \
            and target.get("NUMBA_ENABLE_AVX") != "no":
        assert compiled == "False"
    else:
        assert compiled == str(has_avx512())


def test_fastnet_imports_and_runs_numpy_without_llvmlite():
    """Without Numba (and its llvmlite) fastnet still imports and the NumPy backend works; the
    host check behind the OpenMP default needs llvmlite, and then assumes no AVX-512."""
    code = ("import sys; sys.modules['llvmlite'] = None; import os, numpy as np, fastnet; "
            "fastnet.set_backend('numpy'); "
            "print(os.environ['GOMP_SPINCOUNT'], fastnet.functional.relu(np.array([-1.0, 2.0])))")
    out = run_python_without_openmp_settings(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1000", "[0.", "2.]"]


_OPENBLAS_PROBE = """
import sys, time, ctypes
import numpy as np                          # first, as most scripts do
from threadpoolctl import ThreadpoolController, threadpool_limits
libs = [lib for lib in ThreadpoolController().select(internal_api="openblas").lib_controllers
        if hasattr(ctypes.CDLL(lib.filepath), "blas_thread_shutdown_")]
if not libs:
    print("no-openblas"); sys.exit()
threadpool_limits(int(sys.argv[1]), user_api="blas")
import fastnet
lib = libs[0]
a = np.random.default_rng(0).random((400, 400))
assert np.allclose(a @ a, np.einsum("ij,jk->ik", a, a))     # BLAS still works after the restart
start = time.process_time()
time.sleep(0.1)                              # the process's CPU time while idle after a GEMM
print(ctypes.CDLL(lib.filepath).openblas_thread_timeout(), lib.num_threads,
      round((time.process_time() - start) * 1e3))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_numpy_imported_first_still_gets_sleeping_openblas_workers(threads):
    """With NumPy imported before fastnet, OpenBLAS has already read its environment; fastnet
    makes it read OPENBLAS_THREAD_TIMEOUT again (fastnet.backend). Its workers then sleep right
    after a GEMM instead of spinning for ~0.1 s (measured without this: ~100 ms of CPU time in a
    100 ms sleep), and the BLAS thread count the user set is kept."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", _OPENBLAS_PROBE, str(threads)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "no-openblas":
        pytest.skip("NumPy's BLAS is not an OpenBLAS with blas_thread_shutdown_")
    timeout, kept_threads, idle_cpu_ms = map(int, out.stdout.split())
    assert timeout == 4
    assert kept_threads == threads
    if threads > 1 and (os.cpu_count() or 1) > 1:
        assert idle_cpu_ms < 40, f"OpenBLAS workers spun for {idle_cpu_ms} ms of CPU time"


def test_user_openblas_timeout_is_not_replaced_when_numpy_came_first():
    env = {**os.environ, "OPENBLAS_THREAD_TIMEOUT": "20"}
    out = subprocess.run([sys.executable, "-c", _OPENBLAS_PROBE, "2"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "no-openblas":
        pytest.skip("NumPy's BLAS is not an OpenBLAS with blas_thread_shutdown_")
    assert out.stdout.split()[0] == "20"


_IMPORT_BESIDE_A_GEMM = """
import threading, time
import numpy as np
a = np.random.default_rng(0).standard_normal((600, 600))
stop = False
def products():
    while not stop:
        a @ a
thread = threading.Thread(target=products, daemon=True)
thread.start()
time.sleep(0.3)
import fastnet
stop = True
thread.join()
print("returned")
"""


def test_import_while_another_thread_runs_gemms_returns():
    """Restarting OpenBLAS's workers under another thread's GEMM hung both threads (6 of 6 runs
    at n=600 before the fix); the restart is now skipped when such a thread is alive."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", _IMPORT_BESIDE_A_GEMM], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "returned", out.stderr


_IMPORT_BESIDE_A_RAW_GEMM = """
import _thread, time
import numpy as np
a = np.random.default_rng(0).standard_normal((600, 600))
state = {"stop": False, "done": False}
def products():
    while not state["stop"]:
        a @ a
    state["done"] = True
_thread.start_new_thread(products, ())     # a thread that threading.enumerate() does not list
time.sleep(0.3)
import fastnet
state["stop"] = True
while not state["done"]:
    time.sleep(0.01)
print("returned")
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_import_while_a_thread_unknown_to_threading_runs_gemms_returns():
    """A thread from ``_thread.start_new_thread`` (or a C extension) is not in
    ``threading.enumerate()``: the restart went ahead under its GEMM and the import hung, 3 of
    3 runs (an audit's finding). The OS's list of the process's threads now counts too."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", _IMPORT_BESIDE_A_RAW_GEMM], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "returned", out.stderr


def test_jupyter_kernel_threads_do_not_block_the_blas_restart():
    def heartbeat():
        pass
    heartbeat.__module__ = "ipykernel.heartbeat"
    jupyter = threading.Thread(target=heartbeat)
    mine = threading.Thread(target=print)
    here = threading.current_thread()
    assert not backend_module._other_threads_may_use_blas([here, jupyter])
    assert backend_module._other_threads_may_use_blas([here, jupyter, mine])


_NO_CACHE_LOCATION = """
import warnings
import numpy as np
from numba.core import caching
caching.CacheImpl._locator_classes = []    # as a read-only install with no writable home
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastnet.functional as F
    y = F.relu(np.array([-1.0, 2.0]))
    x, W = np.ones((8, 28, 28), np.float32), np.ones((32, 28, 3), np.float32)
    conv = F.conv1d(x, W, padding=1)          # the compiled-slot path too
print(y.tolist(), float(conv[0, 0, 1]), sum("nowhere to cache" in str(w.message) for w in caught))
"""


def test_kernels_run_uncached_where_numba_has_nowhere_to_cache():
    """Numba refused every kernel ("no locator available") in a read-only install without a
    writable home or NUMBA_CACHE_DIR; caching is now off there, with one warning."""
    out = run_python(_NO_CACHE_LOCATION)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[0.0,", "2.0]", "84.0", "1"]


_GOMP_FIRST = """
import ctypes, sys, warnings
try:
    ctypes.CDLL("libgomp.so.1")            # what `import torch` does before fastnet
except OSError:
    print("no-libgomp"); sys.exit()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastnet
print(sum("export GOMP_SPINCOUNT" in str(w.message) for w in caught))
"""


@pytest.mark.parametrize("env_value, warnings_expected", [(None, 1), ("1000", 0)])
def test_openmp_runtime_loaded_before_fastnet_warns_unless_spinning_is_bounded(
        env_value, warnings_expected):
    """GOMP_SPINCOUNT only counts when libgomp loads; fastnet says so when it came too late."""
    env = {} if env_value is None else {"GOMP_SPINCOUNT": env_value}
    out = run_python_without_openmp_settings(_GOMP_FIRST, **env)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "no-libgomp":
        pytest.skip("no libgomp.so.1 on this machine")
    assert int(out.stdout) == warnings_expected


def test_no_openmp_warning_when_fastnet_comes_first():
    code = ("import warnings; warnings.simplefilter('error'); import fastnet, ctypes; "
            "from fastnet.kernels.numba_backend import activations as A; import numpy as np; "
            "A.relu_forward(np.zeros(1 << 17)); print('ok')")
    out = run_python_without_openmp_settings(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("value", ["abc", "0", "-4"])
def test_bad_fastnet_num_threads_is_a_warning_not_an_import_error(value):
    code = ("import warnings; warnings.simplefilter('always'); import fastnet; "
            "print(fastnet.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "FASTNET_NUM_THREADS": value})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"
    assert f"FASTNET_NUM_THREADS={value!r} ignored; expected an integer >= 1" in out.stderr


@pytest.mark.parametrize("value", ["0", "-4", "100000"])
def test_a_numba_thread_count_out_of_range_is_dropped_with_a_warning(value):
    """Below 1, ``import numba`` itself raised at fastnet's first kernel call, in Numba's
    words; at 100 000 the first parallel kernel (this ReLU's) segfaulted."""
    code = ("import warnings; warnings.simplefilter('always'); import numpy as np; "
            "import fastnet, fastnet.functional as F; "
            "print(F.relu(np.ones(100000, np.float32)).sum())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "NUMBA_NUM_THREADS": value,
                                           "FASTNET_BACKEND": "numba"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "100000.0"
    assert f"NUMBA_NUM_THREADS={value!r} ignored; expected an integer in [1, 4096]" in out.stderr


def test_info_shows_the_blas_count_fastnet_num_threads_gives():
    """It showed BLAS's default, which the setting only replaces at the first kernel call."""
    out = subprocess.run([sys.executable, "-m", "fastnet", "info"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "FASTNET_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    blas = [line for line in out.stdout.splitlines() if line.split()[:1] == ["blas"]]
    assert blas and all(line.endswith(": 1 threads") for line in blas), out.stdout


_FORK_POOL = """
import multiprocessing as mp, numpy as np
import fastnet, fastnet.functional as F
if {parent_ran_a_kernel}:
    F.relu(np.ones(10, np.float32))             # starts Numba's OpenMP threads
def work(n):
    return float(F.relu(np.ones(n, np.float32)).sum())
if __name__ == "__main__":
    with mp.get_context("fork").Pool(2) as pool:
        try:
            print(pool.map(work, [100, 200000]))
        except RuntimeError as err:
            print("RuntimeError", err)
"""


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="no fork on this platform")
@pytest.mark.parametrize("parent_ran_a_kernel", [True, False])
def test_a_fork_pool_after_a_numba_kernel_gets_an_error_not_a_hang(tmp_path, parent_ran_a_kernel):
    """Numba's GNU OpenMP layer ended each forked worker at its first parallel kernel, and
    the Pool waited for them for good. A parent that never ran one forks freely."""
    script = tmp_path / "pool.py"
    script.write_text(_FORK_POOL.format(parent_ran_a_kernel=parent_ran_a_kernel))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "FASTNET_BACKEND": "numba"})
    assert out.returncode == 0, out.stderr
    import numba.np.ufunc.parallel as parallel
    with fastnet.set_backend("numba"):              # this process's layer, as the script's
        fastnet.functional.relu(np.ones(10, np.float32))
    gnu = parallel._threading_layer == "omp" and getattr(
        sys.modules.get("numba.np.ufunc.omppool"), "openmp_vendor", "GNU") == "GNU"
    if parent_ran_a_kernel and gnu:
        assert out.stdout.startswith("RuntimeError fastnet: this process was forked"), out.stdout
        assert "get_context('spawn')" in out.stdout
    else:
        assert out.stdout.strip() == "[100.0, 200000.0]", out.stdout


def test_info_with_a_bad_fastnet_backend_is_an_error_line():
    out = subprocess.run([sys.executable, "-m", "fastnet", "info"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "FASTNET_BACKEND": "bogus"})
    assert out.returncode == 1
    assert out.stderr.startswith("fastnet info: error: FASTNET_BACKEND: unknown backend 'bogus'")


def test_a_with_block_that_loads_numba_gives_numba_its_count_back_after():
    """Numba not loaded when the block began: its count was not saved, and it stayed at the
    block's 1 thread for the rest of the process."""
    code = ("import numpy as np, fastnet, numba; import fastnet.functional as F\n"
            "with fastnet.set_num_threads(1):\n"
            "    F.relu(np.ones(4, np.float32)); inside = numba.get_num_threads()\n"
            "print(inside, numba.get_num_threads(), fastnet.get_num_threads())")
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    env.pop("FASTNET_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "2", "None"]


def test_fastnet_num_threads_holds_on_every_python_thread():
    """It set Numba's count on the thread that loaded the backend only; another thread's
    kernels ran on all of Numba's workers."""
    code = ("import threading, numpy as np, fastnet, numba; import fastnet.functional as F\n"
            "F.relu(np.ones(4, np.float32)); seen = []\n"
            "t = threading.Thread(target=lambda: seen.append(numba.get_num_threads()))\n"
            "t.start(); t.join(); print(numba.get_num_threads(), seen[0])")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    env["FASTNET_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]
