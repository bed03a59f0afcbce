"""``fit``'s steps for a plain chain of ``FC`` layers, after a checked one.

Every call of a training step checks its arrays (the functional API's shapes, dtypes, layout,
overlaps and hyper-parameters) before a kernel runs. In the notebooks' MLP step at batch 20 that
is ~40 us of 0.42 ms, spent confirming what the step before already confirmed: within an epoch
nothing but the step itself touches the model, and the step keeps every array as the checks
want it (the kernels return fresh C-contiguous arrays of the layer's dtype, the updates work in
place). So ``fit`` runs an epoch's first step through the checked layers and optimizers, and the
rest here, where the same layer and optimizer methods call the backend's kernels directly.

The chain applies only where that reasoning holds; anything else keeps the checked step:

- the model is a ``Sequential`` or ``Classifier`` itself, and its layers ``FC`` itself (not
  subclasses, no method replaced on an instance), each with a fused activation, or none; a final
  ``Softmax`` (a layer, or the last FC's activation object) is fused with the loss, as in the
  checked step;
- each layer's optimizer (its own, or the model's) is one of fastnet's (not a subclass, no method
  replaced) with hyper-parameters that are Python floats or bools, as its constructor stores
  them;
- after the first step, ``W``, ``b``, their gradients and the optimizer's state pass the
  functional API's shortcut for plain arrays (C-contiguous, writeable ndarrays of the layer's
  dtype and consistent shapes), so the checked functions would pass them on unconverted (an
  ``np.matrix`` parameter, say, is viewed as an ndarray on every checked call, and keeps every
  step checked);
- no callback runs per batch (``on_batch_end``) and no ``augment``: either could change the model
  or its data between steps.

The input batch is cast and reshaped as ``FC`` does; the labels go through the loss's own
checks, as in every step. ``tests/test_dense_chain.py`` trains models both ways and compares
every parameter, gradient and logged value bit for bit.
"""
import numpy as np

from . import functional as F
from .backend import kernels
from .layers import FC, Softmax, _cast_grad
from .optimizers import SGD, AdaGrad, Adam, Momentum, RMSProp

_OPTIMIZERS = (SGD, Momentum, AdaGrad, RMSProp, Adam)
#: Methods that the checked step calls, and that an instance may have replaced: the chain would
#: not call them.
_LAYER_METHODS = ("forward", "backward", "_backward", "_forward_logits", "_backward_logits",
                  "_gradients")
_MODEL_METHODS = ("forward", "backward", "_backward", "_forward_through", "_forward_for_loss",
                  "_forward_logits", "_backward_from_loss", "_backward_logits", "_step",
                  "leaf_optimizers")
_OPTIMIZER_METHODS = ("update", "_step", "_state_for", "_new_state")


class DenseChain:
    """Forward, backward and update of a chain of ``FC`` layers without the per-call checks.

    Parameters
    ----------
    model : the ``Sequential`` being trained (its ``_torn`` flag is kept as its own forward
        keeps it)
    layers : list of FC, input to output, without a final ``Softmax`` layer
    optimizers : list, the optimizer that updates each layer
    """

    def __init__(self, model, layers, optimizers):
        self.model = model
        self.steps = list(zip(layers, optimizers))
        self.kernels = kernels()

    def forward(self, X):
        """Logits ``(N, n_out)`` of a batch ``X (N, ...)`` (cast and reshaped by the first
        layer, as in its own forward)."""
        model = self.model
        model._torn = True
        dense = self.kernels.dense_forward
        for i, (layer, _) in enumerate(self.steps):
            try:
                X = layer._forward_logits(X, dense)
            except (ValueError, TypeError) as err:     # as the model's own forward says it
                raise model._forward_error(i, X, err) from err
        model._torn = False
        return X

    def backward(self, dout):
        """Gradients of every layer from ``dout = dL/dlogits``; each layer is updated once its
        gradients are known (its input gradient is computed first, from the weights before)."""
        backend = self.kernels
        dense_backward = backend.dense_backward
        for i in range(len(self.steps) - 1, -1, -1):
            layer, optimizer = self.steps[i]
            dout = layer._gradients(_cast_grad(layer, dout, layer.dtype), i > 0, dense_backward)
            optimizer._step(layer.W, layer.dW, optimizer._state_for(layer.W), backend)
            optimizer._step(layer.b, layer.db, optimizer._state_for(layer.b), backend)


def dense_chain(model, model_types, tail):
    """A :class:`DenseChain` for ``model``'s layers when its remaining steps may skip the
    per-call checks (module docstring), else None. Called after a checked step, whose checks it
    relies on; the caller has ruled out per-batch callbacks and ``augment``. ``model_types``:
    fastnet's own model classes (``fastnet.model`` imports this module)."""
    if tail not in ("logits", "fused") or type(model) not in model_types \
            or _replaced(model, _MODEL_METHODS):
        return None
    layers = list(model.layers)
    # A final Softmax layer is fused with the loss; then the FC before it applies its own
    # activation object, as in the checked step, and the chain has none to offer.
    fused_layer = tail == "fused" and isinstance(layers[-1], Softmax)
    if fused_layer:
        layers.pop()
    optimizers = []
    for i, layer in enumerate(layers):
        if type(layer) is not FC or _replaced(layer, _LAYER_METHODS):
            return None
        final_softmax = (tail == "fused" and not fused_layer and i == len(layers) - 1
                         and isinstance(layer._act_layer, Softmax))
        if layer._act_layer is not None and not final_softmax:
            return None
        optimizer = layer.optimizer if layer.optimizer is not None else model.optimizer
        if not (_plain_optimizer(optimizer) and _plain_arrays(layer, optimizer)):
            return None
        optimizers.append(optimizer)
    return DenseChain(model, layers, optimizers) if layers else None


def _replaced(obj, names):
    """Whether ``obj`` holds one of the methods ``names`` as an instance attribute."""
    attributes = getattr(obj, "__dict__", {})
    return any(name in attributes for name in names)


def _plain_optimizer(optimizer):
    return (type(optimizer) in _OPTIMIZERS and not _replaced(optimizer, _OPTIMIZER_METHODS)
            and all(type(value) in (float, bool) for value in optimizer.get_config().values()))


def _plain_arrays(layer, optimizer):
    """Whether the layer's arrays after the checked step, and the optimizer's state for its
    parameters, are the plain arrays that the functional API passes to the kernels as they are
    (its own shortcuts decide)."""
    W = layer.W
    if layer.dW is None or type(W) is not np.ndarray or W.ndim != 2 or W.dtype != layer.dtype:
        return False
    x = np.empty((1, W.shape[0]), W.dtype)       # the batches may be read-only: a stand-in
    if not F._plain_dense(x, W, layer.b, x, 0):
        return False
    for param, grad in ((layer.W, layer.dW), (layer.b, layer.db)):
        state = optimizer._state_for(param)
        arrays = [value for key, value in state.items() if key != "step"]   # Adam's count
        if not F._plain_in_place(param, grad, arrays):
            return False
    return True
