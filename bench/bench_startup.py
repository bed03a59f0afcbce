"""Compile time made visible: a fresh process's time to its first training step (MLP and CNN),
with an empty Numba cache (cold) and with the cache the cold run wrote (warm); the median of three
rounds (one in smoke mode)."""
from fastnet.benchmarking.pytest_support import SMOKE, threads_to_pin
from fastnet.benchmarking.startup import cold_and_warm


def bench_startup(benchmark):
    times = benchmark.pedantic(cold_and_warm, args=(threads_to_pin(), 1 if SMOKE else 3),
                               rounds=1, iterations=1)
    benchmark.extra_info.update(
        cold_import_s=times["cold"]["import"], cold_first_steps_s=times["cold"]["first_steps"],
        warm_import_s=times["warm"]["import"], warm_first_steps_s=times["warm"]["first_steps"],
        cold_all_first_steps_s=times["cold"]["all_first_steps"],
        warm_all_first_steps_s=times["warm"]["all_first_steps"], threads=times["warm"]["threads"])
    assert times["warm"]["first_steps"] < times["cold"]["first_steps"]
