"""``fit``'s steps for a plain chain of ``FC`` layers, after a checked one.

Every call of a training step checks its arrays (the functional API's shapes, dtypes, layout,
overlaps and hyper-parameters) before a kernel runs. In the notebooks' MLP step at batch 20 that
is ~40 us of 0.42 ms, spent confirming what the step before already confirmed: within an epoch
nothing but the step itself touches the model, and the step keeps every array as the checks
want it (the kernels return fresh C-contiguous arrays of the layer's dtype, the updates work in
place). So ``fit`` runs an epoch's first step through the checked layers and optimizers, and the
rest here, where the same layer and optimizer methods call the backend's kernels directly.

The chain applies only where that reasoning holds; anything else keeps the checked step:

- the layers are ``FC`` itself (not a subclass, no method replaced on the instance), each with a
  fused activation, or none; a final ``Softmax`` (as a layer, or as the last FC's activation
  object) is fused with the loss, as in the checked step;
- each layer's optimizer (its own, or the model's) is one of fastnet's (not a subclass) with
  hyper-parameters that are Python floats or bools, as its constructor stores them;
- no callback runs per batch (``on_batch_end``) and no ``augment``: either could change the model
  or its data between steps.

The input batch is cast and reshaped as ``FC`` does; the labels go through the loss's own
checks, as in every step. ``tests/test_dense_chain.py`` trains models both ways and compares
every parameter, gradient and logged value bit for bit.
"""
from .backend import kernels
from .layers import FC, Softmax, _cast
from .optimizers import SGD, AdaGrad, Adam, Momentum, RMSProp

_OPTIMIZERS = (SGD, Momentum, AdaGrad, RMSProp, Adam)
_OVERRIDABLE = ("forward", "backward", "_forward_logits", "_backward_logits", "_gradients")


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
        self.model._torn = True
        dense = self.kernels.dense_forward
        for layer, _ in self.steps:
            X = layer._forward_logits(X, dense)
        self.model._torn = False
        return X

    def backward(self, dout):
        """Gradients of every layer from ``dout = dL/dlogits``; each layer is updated once its
        gradients are known (its input gradient is computed first, from the weights before)."""
        backend = self.kernels
        dense_backward = backend.dense_backward
        for i in range(len(self.steps) - 1, -1, -1):
            layer, optimizer = self.steps[i]
            dout = layer._gradients(_cast(dout, layer.dtype), i > 0, dense_backward)
            optimizer._step(layer.W, layer.dW, optimizer._state_for(layer.W), backend)
            optimizer._step(layer.b, layer.db, optimizer._state_for(layer.b), backend)


def dense_chain(model, tail):
    """A :class:`DenseChain` for ``model``'s layers when its remaining steps may skip the
    per-call checks (module docstring), else None. Called after a checked step, whose checks it
    relies on; the caller has ruled out per-batch callbacks and ``augment``."""
    if tail not in ("logits", "fused"):
        return None
    layers = list(model.layers)
    if tail == "fused" and isinstance(layers[-1], Softmax):
        layers.pop()
    optimizers = []
    for i, layer in enumerate(layers):
        if type(layer) is not FC or any(name in vars(layer) for name in _OVERRIDABLE):
            return None
        final_softmax = (tail == "fused" and i == len(layers) - 1
                         and isinstance(layer._act_layer, Softmax))
        if layer._act_layer is not None and not final_softmax:
            return None
        optimizer = layer.optimizer if layer.optimizer is not None else model.optimizer
        if type(optimizer) not in _OPTIMIZERS or not all(
                type(value) in (float, bool) for value in optimizer.get_config().values()):
            return None
        optimizers.append(optimizer)
    return DenseChain(model, layers, optimizers) if layers else None
