"""What the host CPU offers, checked without importing numba (``fastnet.backend`` needs it
before Numba's OpenMP layer starts)."""
import functools


@functools.lru_cache(maxsize=None)
def has_avx512():
    """Whether the host CPU has AVX-512 (LLVM's view of it, as Numba compiles for): the
    micro-kernels then use 64-byte vectors and the dense and conv products run in them.
    False without llvmlite (no Numba: ``import fastnet`` still works, for the NumPy backend)."""
    try:
        import llvmlite.binding as llvm
    except ImportError:
        return False
    return "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")
