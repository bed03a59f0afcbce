"""Whether this process trains, which the Numba backend asks before it compiles a backward
ahead of need (``numba_backend/_ahead``). Plain Python, so that ``fit`` and the layers can say
so before numba is imported (``import fastnet`` does not import it)."""

_state = {"trains": False}


def training_starts():
    """Say that this process trains (``fit``; a layer's forward in training mode): the
    backwards of the forwards it runs are expected to follow. Said once, it holds for the
    life of the process."""
    _state["trains"] = True


def trains():
    """Whether :func:`training_starts` was called in this process (or in its parent before a
    fork)."""
    return _state["trains"]
