"""Independent pieces of work (a ``Concat``'s branches), one after the other (NumPy).

The reference schedule: the Numba backend runs the same tasks side by side on separate threads
where that pays; results are the same either way.
"""


def run_side_by_side(tasks, size, costs):
    """``[task() for task in tasks]``, in order on the calling thread.

    Parameters
    ----------
    tasks : sequence of callables taking no arguments; they must not depend on each other
    size : int
        How much work (the input elements the tasks share); unused here.
    costs : sequence of float, or None
        Each task's expected cost, for balancing threads; unused here.

    Returns
    -------
    list : the tasks' results, in order

    Raises
    ------
    The first exception a task raises (the tasks after it do not run; the contract leaves that
    unspecified).
    """
    return [task() for task in tasks]
