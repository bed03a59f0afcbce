"""What the host CPU offers, and what Numba will compile for on it, checked without importing
numba (``fastnet.backend`` needs it before Numba's OpenMP layer starts)."""
import functools
import os


@functools.lru_cache(maxsize=None)
def has_avx512():
    """Whether the host CPU has AVX-512 (LLVM's view of it). False without llvmlite (no Numba:
    ``import fastnet`` still works, for the NumPy backend)."""
    try:
        import llvmlite.binding as llvm
    except ImportError:
        return False
    return "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")


def numba_will_compile_avx512():
    """Whether Numba will compile for AVX-512, read from the environment as Numba reads it:
    ``NUMBA_CPU_FEATURES`` when set, no features under ``NUMBA_CPU_NAME=generic``,
    ``NUMBA_ENABLE_AVX=0`` turns every AVX feature off, else the host's. ``fastnet.backend``
    asks this before Numba is imported, to choose how long OpenMP's workers spin; once Numba is
    imported, ``_config.numba_compiles_avx512`` asks Numba itself (and the micro-kernels ask
    that), and the tests check that the two agree."""
    features = os.environ.get("NUMBA_CPU_FEATURES")
    if features is not None:
        return "+avx512f" in features.split(",")
    if os.environ.get("NUMBA_CPU_NAME", "").lower() == "generic":
        return False
    if _int_or_none(os.environ.get("NUMBA_ENABLE_AVX")) == 0:
        return False
    return has_avx512()


def _int_or_none(text):
    """``int(text)``, or None where Numba would ignore the variable (unset or unparsable)."""
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def usable_cpus():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:             # macOS, Windows
        return os.cpu_count() or 1
