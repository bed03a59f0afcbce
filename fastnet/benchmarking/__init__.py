"""Benchmarks shared by ``python -m fastnet bench`` and the pytest-benchmark suite in ``bench/``.

``cases``    what is measured: kernels at small / MNIST / large shapes, in every direction
``epochs``   end-to-end training steps extrapolated to an MNIST epoch
``startup``  a fresh process's time to its first training step, cold and warm Numba cache
``timing``   median-of-rounds timer, result checks, thread pinning
``report``   the Markdown table and JSON
"""
