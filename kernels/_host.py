"""What the host CPU offers, checked without importing numba (``fastnet.backend`` needs it
before Numba's OpenMP layer starts)."""
import functools


@functools.lru_cache(maxsize=None)
def has_avx512():
    """Whether the host CPU has AVX-512 (LLVM's view of it): ``fastnet.backend`` then lets
    OpenMP's workers spin longer. (Whether the micro-kernels use 64-byte vectors depends on what
    Numba compiles for, which ``NUMBA_CPU_NAME`` may narrow: ``_config.numba_compiles_avx512``.)
    False without llvmlite (no Numba: ``import fastnet`` still works, for the NumPy backend)."""
    try:
        import llvmlite.binding as llvm
    except ImportError:
        return False
    return "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")
