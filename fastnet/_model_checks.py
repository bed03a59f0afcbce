"""Checks that a model runs on its layers (at construction) and on ``fit``'s data and options
(before the first step), so that a mistake fails with a message before anything trains."""
import inspect

import numpy as np

from . import _checks as check
from .data import random_shift


def short(layer):
    """A layer's repr for an error message, one line: a container's lists its branches or
    layers over many lines, so it is named by its class."""
    text = repr(layer)
    return text if "\n" not in text else f"{type(layer).__name__}(...)"


def check_rows(op, X, name):
    """Rows are samples: a 1-D ``X`` is refused rather than cut into batches that a layer
    would take as single samples of ``batch_size`` features."""
    if X.ndim == 1:
        raise ValueError(f"{op}: {name} has shape {X.shape}; rows are samples, so one sample is "
                         f"{name}[None] (shape (1, {len(X)})) and {len(X)} samples of one "
                         f"feature are {name}[:, None]")


def check_finite(op, name, a, dtype):
    """Float data must be finite, and stay finite when the layers cast it to ``dtype`` (the
    model's narrowest parameter dtype; None: no parameters)."""
    if not check.all_finite(a):
        row = int(np.argwhere(~np.isfinite(a).reshape(len(a), -1))[0, 0])
        raise ValueError(f"{op}: {name} contains NaN or inf (first in row {row})")
    if dtype is not None and a.dtype.itemsize > dtype.itemsize and a.size:
        top = float(np.abs(a).max())
        if top > float(np.finfo(dtype).max):
            raise ValueError(f"{op}: {name} (shape {a.shape}) holds {a.dtype} values up to "
                             f"{top:.3g}, beyond {dtype.name}'s range "
                             f"({float(np.finfo(dtype).max):.3g}), the model's dtype; scale the "
                             f"data")


def check_augment(op, augment):
    """``augment`` must be callable as ``augment(x_batch, rng)``."""
    message = (f"{op}: augment must be a callable (x_batch, rng) -> x_batch, e.g. "
               f"fastnet.data.random_shift(1)")
    if not callable(augment):
        raise TypeError(f"{message}; got {type(augment).__name__}")
    if augment is random_shift:          # its own (max_shift, image_shape) take two arguments
        raise TypeError(f"{op}: augment=random_shift is the factory; call it for the "
                        f"augment, e.g. augment=random_shift(1)")
    try:
        signature = inspect.signature(augment)
    except (TypeError, ValueError):     # some built-ins have none: found out at the first batch
        return
    try:
        signature.bind(None, None)
    except TypeError as err:
        raise TypeError(f"{message}; {getattr(augment, '__name__', augment)!r} cannot take "
                        f"these two arguments ({err})") from None


def touches_only_the_batch(augment):
    """Whether ``augment`` is None or fastnet's own (:func:`fastnet.data.random_shift`'s), which
    reads the batch and returns a new one, nothing else: ``fit``'s steps after an epoch's first
    may then skip the checks that it passed (``fastnet._dense_chain``). A user's augment may run
    any code between steps, so it keeps every step checked."""
    return augment is None or getattr(augment, "touches_only_the_batch", False) is True


def augmented(augment, xb, rng):
    """``augment(xb, rng)``, which must return a batch of ``xb``'s shape. It gets a batch of
    its own: without shuffling a batch is a view of the caller's X, and an augment that adds
    noise in place rewrote the training data, more each epoch."""
    if xb.base is not None:
        xb = xb.copy()
    out = augment(xb, rng)
    if np.shape(out) != xb.shape:
        raise ValueError(f"fit: augment returned shape {np.shape(out)} for a batch of shape "
                         f"{xb.shape}; it must keep the shape")
    return out


def layer_list(op, layers):
    """``layers`` as a list; one layer given alone (PyTorch's ``Sequential(a, b)`` spelling,
    which passed ``b`` as the loss) or a non-iterable is a TypeError that says how to call."""
    if callable(getattr(layers, "forward", None)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"{op}(layers, loss=None, optimizer=None): layers must be a list of "
                        f"layers, as in {op}([FC(784, 100), FC(100, 10)]); got "
                        f"{short(layers)}")
    return list(layers)


def check_chain(op, layers):
    """Catch mismatched sizes between layers at construction (FC→FC, Conv1d→Conv1d, through
    activations, dropout and pooling); other mismatches are caught by the first forward."""
    last = None                                   # (index, layer, (kind, n))
    for i, layer in enumerate(layers):
        size_in = layer.size_in() if hasattr(layer, "size_in") else None
        if last is not None and size_in is not None and size_in[0] == last[2][0] \
                and size_in[1] != last[2][1]:
            kind, n = size_in
            raise ValueError(
                f"{op}: layer {i} {short(layer)} expects {n} input {kind} but layer "
                f"{last[0]} {short(last[1])} produces {last[2][1]}; make the sizes agree")
        size_out = layer.size_out() if hasattr(layer, "size_out") else None
        if size_out is not None:
            last = (i, layer, size_out)
        elif last is not None and last[2][0] not in getattr(layer, "_passes", ()):
            last = None


def check_distinct(op, container):
    """Each layer object (and each FC's activation object) may sit at one place only: a layer
    keeps its last forward's input for ``backward``, so a second use overwrites the first's and
    the gradients come out wrong."""
    seen = {}
    for key, layer in container.named_leaves():
        for where, obj in ((key[:-1], layer),
                           (f"{key[:-1]} (activation)", getattr(layer, "_act_layer", None))):
            if obj is None:
                continue
            if id(obj) in seen:
                raise ValueError(
                    f"{op}: the same {type(obj).__name__} object is used at "
                    f"layer {seen[id(obj)]} and at layer {where}; give each place its own "
                    f"instance (a layer keeps its last input for backward, so sharing one "
                    f"would give wrong gradients)")
            seen[id(obj)] = where
