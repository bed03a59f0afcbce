"""How much CPU the rest of the machine took while a benchmark ran.

On 2 cores one busy neighbour decides a row: a parallel kernel waits for its second worker. In
one full run beside other jobs, Numba's ``relu`` on 100 352 values read 0.49 ms for its usual
0.004-0.007 ms, PyTorch's two-thread calls the same, while the one-thread NumPy baseline kept
its time: ratios of 0.06x that said nothing about the code. So each row records the cores
that other processes and the hypervisor (steal time) used meanwhile, and the report marks the
rows where that reached :data:`BUSY_CORES`.

The figure is this machine's CPU time (``/proc/stat``) less this process's own and its
children's (``os.times``), over the wall time. Both count in clock ticks (10 ms), so over a
row's ~0.5 s it is good to about +-0.1 of a core; over less than :data:`MIN_SECONDS` it is
None (a smoke run's single call of ~0.1 ms read up to 44.7 cores of a 2-core machine). Linux
only: elsewhere it is None.
"""
import os
import time

#: Cores used elsewhere (on average over a row) from which the report marks the row. An audit
#: saw 0.28 cores (another process's test run) make a conv1d forward row read 0.77x NumPy
#: against 3.8-8.1x in quiet runs, unmarked at the earlier 0.3.
BUSY_CORES = 0.2
#: Shortest window that :func:`other_cores` measures: a few clock ticks either way.
MIN_SECONDS = 0.2


def snapshot():
    """``(wall seconds, machine CPU seconds, this process's CPU seconds)``, or None where
    ``/proc/stat`` cannot be read."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user, nice, system, irq, softirq and steal: the time the CPUs were not ours to idle in
    used = sum(ticks[i] for i in (0, 1, 2, 5, 6, 7) if i < len(ticks))
    own = os.times()
    return (time.perf_counter(), used / os.sysconf("SC_CLK_TCK"),
            own.user + own.system + own.children_user + own.children_system)


def other_cores(start):
    """Cores used by other processes and steal time since ``start`` (a :func:`snapshot`),
    averaged over the wall time; None without ``/proc/stat`` or when less than
    :data:`MIN_SECONDS` passed."""
    end = snapshot()
    if start is None or end is None or end[0] - start[0] < MIN_SECONDS:
        return None
    others = (end[1] - start[1]) - (end[2] - start[2])
    return max(others, 0.0) / (end[0] - start[0])
