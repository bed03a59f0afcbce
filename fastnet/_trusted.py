"""Whether the layers of the running training step may call the kernels without the functional
API's checks.

``fit`` turns this on, for its own thread only, around the forward and backward passes of an
epoch's steps after a checked one, where ``fastnet._dense_chain.trusted_layers`` found nothing
but fastnet's own layers and containers (``FC``, ``Conv1d``, ``MaxPool1d``, ...), none of them
changed: no user code runs inside those passes, every array a layer receives is the output of
the layer before it (or the batch, which the first layer casts as always), and the checked step
before them confirmed the shapes, dtypes and hyper-parameters that every later step repeats.
The layers' own checks (casts, ranks, channel counts) still run. Measured on the MNIST CNN's
training step: the functional API's checks in its convolutions, poolings and FCs took ~160 us
of ~2.96 ms.
"""
import contextvars

# A context variable, not a thread-local: ``Concat`` runs its branches side by side in a copy of
# the caller's context (``kernels.run_side_by_side``), and they are part of the same passes.
# Another thread of the user's starts with a context of its own, where it is off.
_on = contextvars.ContextVar("fastnet_trusted_passes", default=False)


def active():
    """Whether the calling thread is inside :func:`steps`."""
    return _on.get()


class steps:
    """A context manager: the calling thread's layers skip the functional API's checks inside
    it (and only there: it restores the previous state on leaving, an error included)."""

    def __enter__(self):
        self.token = _on.set(True)

    def __exit__(self, *exc):
        _on.reset(self.token)
