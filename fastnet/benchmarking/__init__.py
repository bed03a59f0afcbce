"""Benchmarks shared by ``python -m fastnet bench`` and the pytest-benchmark suite in ``bench/``.

``cases``    what is measured: kernels at small / MNIST / large shapes, in every direction
``epochs``   end-to-end training steps extrapolated to an MNIST epoch
``startup``  a fresh process's time to its first training step, cold and warm Numba cache
``timing``   median-of-rounds timer with the result check, the GEMM roofline
``report``   the Markdown table and JSON, the thread counts in effect
``pytest_support``  what the files in ``bench/`` share (settings, ids, ``run_case``)
"""
