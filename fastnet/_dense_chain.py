"""``fit``'s steps for a plain chain of ``FC`` layers, after a checked one; and, for other models
of fastnet's layers, their updates (:class:`UncheckedUpdates`) and whether their passes may run
trusted (:func:`trusted_passes`, ``fastnet._trusted``), by the same reasoning.

Every call of a training step checks its arrays (the functional API's shapes, dtypes, layout,
overlaps and hyper-parameters) before a kernel runs. In the notebooks' MLP step at batch 20 that
is ~40 us of 0.42 ms, spent confirming what the step before already confirmed: within an epoch
nothing but the step itself touches the model, and the step keeps every array as the checks
want it (the kernels return fresh C-contiguous arrays of the layer's dtype, the updates work in
place). So ``fit`` runs an epoch's first step through the checked layers and optimizers, and the
rest here, where the same layer and optimizer methods call the backend's kernels directly.

The chain applies only where that reasoning holds; anything else keeps the checked step:

- every method the checked step would call is fastnet's own, as it was when fastnet was
  imported: on the model (a ``Sequential`` or ``Classifier``), on each layer (an ``FC``, each with
  a fused activation or none), on each optimizer (one of fastnet's), and the functional API's
  functions the checked step goes through. A subclass that overrides one of them, a method
  replaced on an instance or patched on a class, or a wrapped ``fastnet.functional.dense`` keeps
  every step checked (a subclass that overrides none, e.g. ``fastnet.compat.FC``, does not). An
  optimizer's ``update`` may be its own where its class says (``update_adds_bookkeeping``) that
  it runs fastnet's and only adds what the chain may leave as the epoch's first step set it:
  ``fastnet.compat``'s optimizers return the layer, and ``compat.AdaGrad`` records it for
  ``hW``/``hb`` (every step updates the layers in the same order, so the first step leaves the
  record that every later one would). A final ``Softmax`` (a layer, or the last FC's activation
  object) is fused with the loss, as in the checked step;
- the optimizers' hyper-parameters are Python floats or bools, as their constructors store them;
- after the first step, ``W``, ``b``, their gradients and the optimizer's state pass the
  functional API's shortcut for plain arrays (C-contiguous, writeable ndarrays of the layer's
  dtype and consistent shapes), so the checked functions would pass them on unconverted (an
  ``np.matrix`` parameter, say, is viewed as an ndarray on every checked call, and keeps every
  step checked); and no two of the parameters and state arrays share memory (``fit`` refuses
  tied weights when it starts; a callback could tie them between epochs);
- no callback runs per batch (``on_batch_end``), but those that say they only read
  (``on_batch_end_reads_only``: the command line's progress bar), and no ``augment``: either
  could change the model or its data between steps.

The input batch is cast and reshaped as ``FC`` does; the labels go through the loss's own
checks, as in every step. Updates come in the checked step's order: a layer with an optimizer of
its own is updated inside its backward, the others once the whole backward has succeeded, first
layer first. ``tests/test_dense_chain.py`` trains models both ways and compares
every parameter, gradient and logged value bit for bit.
"""
import operator

import numpy as np

from . import functional as F
from .backend import kernels
from . import layers as L
from .layers import FC, Conv1d, _cast, _claim, fusable_softmax, has_params
from .losses import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy
from .optimizers import SGD, AdaGrad, Adam, Momentum, Optimizer, RMSProp

#: Methods that the checked step calls (directly or through each other).
_LAYER_METHODS = ("forward", "backward", "_backward", "_forward_logits", "_backward_logits",
                  "_gradients", "_gradients_spent", "params", "grads", "_input_rows",
                  "_forward_from_product", "_gradients_spent_ahead")
_MODEL_METHODS = ("forward", "backward", "_backward", "_forward_through", "_forward_for_loss",
                  "_forward_logits", "_backward_from_loss", "_backward_logits", "_check_whole",
                  "_step", "leaf_optimizers", "named_leaves")
_OPTIMIZER_METHODS = ("update", "_step", "_state_for", "_new_state")
_FUNCTIONS = ("dense", "dense_backward", "sgd_update_", "momentum_update_", "adagrad_update_",
              "rmsprop_update_", "adam_update_")
#: The methods of a ``Conv1d`` that its passes call (for :func:`trusted_passes`).
_CONV_METHODS = ("forward", "backward", "_backward", "params", "grads")


def _methods(cls, names):
    return {name: getattr(cls, name) for name in names}


_OPTIMIZERS = (SGD, Momentum, AdaGrad, RMSProp, Adam)
_LOSSES = (SoftmaxCrossEntropy, MeanSquaredError, BinaryCrossEntropy)
_MODELS = []                     # fastnet.model's classes (record_models)

#: The originals, as fastnet defines them (a class patched later no longer matches).
_ORIGINAL = {FC: _methods(FC, _LAYER_METHODS), Conv1d: _methods(Conv1d, _CONV_METHODS),
             **{cls: _methods(cls, _OPTIMIZER_METHODS) for cls in _OPTIMIZERS},
             **{cls: _methods(cls, ("forward", "backward")) for cls in _LOSSES}}
_ORIGINAL_FUNCTIONS = {name: getattr(F, name)
                       for name in _FUNCTIONS + ("conv1d", "conv1d_backward", "max_pool1d")}

#: fastnet's layers whose forward and backward may run in trusted passes (``fastnet._trusted``),
#: and the methods of each that the passes call.
_PASS_METHODS = ("forward", "backward", "_backward", "train", "params", "grads")
_TRUSTED_LAYERS = (FC, Conv1d, L.MaxPool1d, L.AvgPool1d, L.Flatten, L.Transpose, L.ReLU,
                   L.Sigmoid, L.Tanh, L.Softmax, L.Dropout)
for _cls in _TRUSTED_LAYERS:
    _ORIGINAL.setdefault(_cls, _methods(_cls, [name for name in _PASS_METHODS
                                               if hasattr(_cls, name)]))
_CONTAINERS = []                 # fastnet.model's containers (record_models)


def record_models(*classes, containers=()):
    """Record the model classes' step methods, and those of the other ``containers``
    (``fastnet.model`` calls this once it has defined them: it imports this module first)."""
    for cls in classes:
        _MODELS.append(cls)
        _ORIGINAL[cls] = _methods(cls, _MODEL_METHODS)
    for cls in containers:
        _ORIGINAL[cls] = _methods(cls, [name for name in _MODEL_METHODS + ("_side_by_side",
                                                                          "_children")
                                        if hasattr(cls, name)])
    _CONTAINERS[:] = list(classes) + list(containers)


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
        self.steps = [(layer, optimizer, layer.optimizer is not None,
                       isinstance(optimizer, AdaGrad))
                      for layer, optimizer in zip(layers, optimizers)]
        self.kernels = kernels()
        #: ``(X, rows, shape, X @ W)`` for the first layer: the next batch and its product,
        #: from the last step's update of ``W`` (:meth:`backward`), or None.
        self._ahead = None

    def forward(self, X):
        """Logits ``(N, n_out)`` of a batch ``X (N, ...)`` (cast and reshaped by the first
        layer, as in its own forward). The first layer's product may be computed already, by
        the last step's update (:meth:`backward`, when ``X`` was its ``X_next``)."""
        model = self.model
        model._torn = True
        dense = self.kernels.dense_forward
        ahead, self._ahead = self._ahead, None
        for i, (layer, _, _, _) in enumerate(self.steps):
            try:
                if i == 0 and ahead is not None and ahead[0] is X:
                    X = layer._forward_from_product(*ahead[1:], self.kernels.dense_bias_act_)
                else:
                    X = layer._forward_logits(X, dense)
            except (ValueError, TypeError) as err:     # as the model's own forward says it
                raise model._forward_error(i, X, err) from err
        model._torn = False
        return X

    def backward(self, dout, keep_gradients=True, X_next=None):
        """Gradients of every layer from ``dout = dL/dlogits``, and the updates, in the checked
        step's order (module docstring).

        Without ``keep_gradients``, a layer that AdaGrad updates spends its weight gradient on
        the step at once (the kernel ``dense_backward_adagrad_``, which need not store it:
        ~0.05 ms of the notebooks' MLP step) and keeps ``dW`` None; the arithmetic is the same.
        ``fit`` keeps them at an epoch's last step, so every layer holds its last gradients
        after it, as the checked step leaves them. W is then updated before the layers below
        have their gradients, which read only their own W and the gradient passed down.

        ``X_next``, the next step's batch: a first layer that spends its gradient so computes
        the next forward's product ``X_next @ W`` as it updates ``W`` (the kernel
        ``dense_backward_adagrad_ahead_``: the same product, while ``W`` is in cache; ~3 % of
        the notebooks' MLP step), and :meth:`forward` of ``X_next`` adds the bias to it. Nothing
        else changes ``W`` in between: the bias updates come after, and ``fit`` runs no code of
        the user's between the steps (module docstring)."""
        dense_backward = self.kernels.dense_backward
        spend = not keep_gradients
        ahead = self._next_rows(X_next) if spend and self.steps[0][3] else None
        for i in range(len(self.steps) - 1, -1, -1):
            layer, optimizer, own, adagrad = self.steps[i]
            dz = _cast(dout, layer.dtype, layer)
            spent = adagrad and spend
            if spent and i == 0 and ahead is not None:
                dout, XW = layer._gradients_spent_ahead(
                    dz, False, self.kernels.dense_backward_adagrad_ahead_,
                    optimizer._state_for(layer.W)["h"], optimizer.lr, optimizer.eps, ahead[0])
                self._ahead = (X_next, *ahead, XW)
            elif spent:
                dout = layer._gradients_spent(dz, i > 0, self.kernels.dense_backward_adagrad_,
                                              optimizer._state_for(layer.W)["h"], optimizer.lr,
                                              optimizer.eps)
            else:
                dout = layer._gradients(dz, i > 0, dense_backward)
            if own:
                self._update(layer, optimizer, not spent)
        for layer, optimizer, own, adagrad in self.steps:
            if not own:
                self._update(layer, optimizer, weights=not (adagrad and spend))

    def _next_rows(self, X_next):
        """The first layer's ``(rows, shape)`` of ``X_next``, or None: without it, or where the
        layer refuses it (the next forward then says why, as in every step)."""
        if X_next is None:
            return None
        try:
            return self.steps[0][0]._input_rows(X_next)
        except (ValueError, TypeError):
            return None

    def _update(self, layer, optimizer, weights=True):
        if weights:
            optimizer._step(layer.W, layer.dW, optimizer._state_for(layer.W), self.kernels)
        optimizer._step(layer.b, layer.db, optimizer._state_for(layer.b), self.kernels)


def dense_chain(model, tail):
    """A :class:`DenseChain` for ``model``'s layers when its remaining steps may skip the
    per-call checks (module docstring), else None. Called after a checked step, whose checks it
    relies on; the caller has ruled out per-batch callbacks and ``augment``."""
    if tail not in ("logits", "fused") or not _only_fastnet_between_steps(model):
        return None
    layers = list(model.layers)
    # A final Softmax layer is fused with the loss; then the FC before it applies its own
    # activation object, as in the checked step, and the chain has none to offer.
    fused_layer = tail == "fused" and fusable_softmax(layers[-1])
    if fused_layer:
        layers.pop()
    optimizers = []
    for i, layer in enumerate(layers):
        if not (isinstance(layer, FC) and _unchanged(layer, FC)):
            return None
        final_softmax = (tail == "fused" and not fused_layer and i == len(layers) - 1
                         and fusable_softmax(layer._act_layer))
        if layer._act_layer is not None and not final_softmax:
            return None
        optimizer = layer.optimizer if layer.optimizer is not None else model.optimizer
        if not _plain_arrays(layer, optimizer):    # (fastnet's: _only_fastnet_between_steps)
            return None
        optimizers.append(optimizer)
    if not layers or not _apart(layers, optimizers):
        return None
    return DenseChain(model, layers, optimizers)


class UncheckedUpdates:
    """``model._step()`` without the per-call checks: every parameter updated by the
    optimizer's own step rule on the backend's kernels, in the checked step's order.

    For the models that the chain does not take (convolutions, pooling, ``Concat``), whose
    passes run trusted (Adam's 12 updates in the MNIST CNN's step: ~160 us checked, ~95 us
    here). The reasoning is the chain's (module docstring): the epoch's first step ran checked,
    and the gradients come from fastnet's own ``FC`` and ``Conv1d``, as fresh arrays of their
    parameters' shape and dtype.

    Parameters
    ----------
    entries : list of ``(optimizer, layer, state of W, state of b)``
    """

    def __init__(self, entries):
        self.entries = entries
        self.kernels = kernels()

    def __call__(self):
        ops = self.kernels
        for optimizer, layer, state_W, state_b in self.entries:
            optimizer._step(layer.W, layer.dW, state_W, ops)
            optimizer._step(layer.b, layer.db, state_b, ops)


def unchecked_updates(model):
    """An :class:`UncheckedUpdates` that does ``model._step()``'s work when its remaining steps
    may skip the checks, else None. Called only where :func:`trusted_passes` holds, after a
    checked step: the model, its loss, its optimizers and its layers are fastnet's (the layers
    with parameters ``FC`` and ``Conv1d``). A layer with an optimizer of its own is updated
    inside its backward, checked, as before; the others' arrays must be plain."""
    entries, optimizers, layers = [], [], []
    for _, layer, optimizer in model.leaf_optimizers():
        if not has_params(layer) or optimizer is None or layer.optimizer is not None:
            continue                                    # as _step: not updated there
        if not _plain_update(layer, optimizer):
            return None
        entries.append((optimizer, layer, optimizer._state_for(layer.W),
                        optimizer._state_for(layer.b)))
        layers.append(layer)
        optimizers.append(optimizer)
    if not entries or not _apart(layers, optimizers):
        return None
    return UncheckedUpdates(entries)


def trusted_passes(model):
    """Whether ``model``'s forward and backward passes may run trusted (``fastnet._trusted``)
    in its remaining steps: the model, its loss, its optimizers and every container and layer
    in it are fastnet's, none of their step methods changed, and the ``FC`` and ``Conv1d``
    parameters are plain arrays (:func:`_only_fastnet_between_steps`, :func:`_trusted_node`). As
    :func:`dense_chain`, called after a checked step by a caller that has ruled out per-batch
    callbacks and ``augment``: no user code then runs inside the passes."""
    return _only_fastnet_between_steps(model) and _trusted_node(model)


def _only_fastnet_between_steps(model):
    """What every shortcut here needs: the model is one of fastnet's, unchanged; so are its loss
    and every optimizer that updates one of its layers (the step methods of each); and the
    functional API's functions that the steps go through are fastnet's own. Then no code of the
    user's runs between two steps (the caller rules out callbacks and ``augment``) to change
    what the checked step confirmed. A loss of the user's could return a gradient of another
    shape, which the unchecked backward would not catch (a kernel wrote out of bounds); an
    optimizer of the user's could rebind a weight to an array of another layout or dtype."""
    model_class = _fastnet_class(model, _MODELS)
    loss_class = _fastnet_class(model.loss, _LOSSES)
    return (model_class is not None and _unchanged(model, model_class)
            and loss_class is not None and _unchanged(model.loss, loss_class)
            and all(optimizer is None or _plain_optimizer(optimizer)
                    for _, _, optimizer in model.leaf_optimizers())
            and _original_functions())


def _trusted_node(node):
    cls = _fastnet_class(node, _CONTAINERS + list(_TRUSTED_LAYERS))
    if cls is None or not _unchanged(node, cls):
        return False
    if cls is FC and node._act_layer is not None and not _trusted_node(node._act_layer):
        return False
    if cls in (FC, Conv1d) and not all(F._plain_floats(a) and a.dtype == node.dtype
                                       for a in (node.W, node.b)):
        return False
    children = node._children() if cls in _CONTAINERS else ()
    return all(_trusted_node(child) for child in children)


def _original_functions():
    """Whether the functional API's functions that the steps go through are fastnet's own."""
    return all(getattr(F, name) is f for name, f in _ORIGINAL_FUNCTIONS.items())


def _unchanged(obj, cls, skip=()):
    """Whether ``obj``'s step methods (but ``skip``) are ``cls``'s originals: not overridden by
    its class, not patched on ``cls`` since, not replaced on the instance."""
    attributes = getattr(obj, "__dict__", {})
    return all(name not in attributes and getattr(type(obj), name) is original
               for name, original in _ORIGINAL[cls].items() if name not in skip)


def _fastnet_class(obj, classes):
    """The one of fastnet's ``classes`` that ``obj`` is an instance of (the nearest, for a
    subclass), or None."""
    return next((cls for cls in type(obj).__mro__ if cls in classes), None)


def _plain_optimizer(optimizer):
    cls = _fastnet_class(optimizer, _OPTIMIZERS)
    # An ``update`` of its own is fine where its class says it adds only bookkeeping to
    # fastnet's (``fastnet.compat``'s optimizers: it returns the layer, and records it).
    skip = ("update",) if _claim(optimizer, "update_adds_bookkeeping", ("update",)) else ()
    return (cls is not None and _unchanged(optimizer, cls, skip)
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
    return _plain_update(layer, optimizer)


def _plain_update(layer, optimizer):
    """Whether the layer's parameters, their gradients and the optimizer's state for them are
    plain arrays of the layer's dtype, which the update functions pass to the kernels as they
    are."""
    for param, grad in ((layer.W, layer.dW), (layer.b, layer.db)):
        if type(param) is not np.ndarray or param.dtype != layer.dtype:
            return False
        state = optimizer._state_for(param)
        arrays = [value for key, value in state.items() if key != "step"]   # Adam's count
        if not F._plain_in_place(param, grad, arrays):
            return False
    return True


def _apart(layers, optimizers):
    """Whether no two of the parameters and optimizer state arrays (Adam's count included) share
    memory: tied by a callback between epochs, each would be stepped in another order here."""
    arrays = []
    for layer, optimizer in zip(layers, optimizers):
        for param in (layer.W, layer.b):
            arrays.append(param)
            arrays.extend(v for v in optimizer._state_for(param).values()
                          if isinstance(v, np.ndarray))
    return F._apart(arrays) or not any(np.may_share_memory(a, b) for i, a in enumerate(arrays)
                                       for b in arrays[i + 1:])





def layout_key(model):
    """``(key, kept)``: what the unchecked steps take for granted, as identities and layouts (no
    values): the attributes of the model, of each of its layers, of each layer's activation
    object and of each optimizer, with the optimizers' state; each one's class and its step
    methods; the functional API's functions, and the backend (the unchecked steps hold its
    kernels: a backend switched by the callback ran on the old one's till the epoch's end, an
    audit). ``fit`` compares it around a callback that says it only reads
    (``on_batch_end_reads_only``): one that changed the model all the same (a bias of another
    length, a float64 ``W``) had its arrays handed to the kernels unchecked, and the Numba
    backend wrote past them (an audit: a segfault). ``kept`` holds the objects, so that no id is
    reused while the key is in use."""
    objects = {id(model): model}
    for _, layer, optimizer in model.leaf_optimizers():
        for obj in (layer, getattr(layer, "_act_layer", None), optimizer):
            objects[id(obj)] = obj
    key, kept = [_original_functions(), kernels()], []
    for obj in objects.values():
        cls = type(obj)
        key.append(cls)
        key.append(_step_methods(cls))
        attributes = getattr(obj, "__dict__", None)
        if attributes is not None:
            _layout(attributes, key, kept)
        if isinstance(obj, Optimizer):
            for _, state in obj.held_states():
                _layout(state, key, kept)
    return key, kept


#: The methods whose identities :func:`layout_key` records, as found on each object's class
#: (a class patched by the callback changes them).
_STEP_METHODS = tuple(dict.fromkeys(_LAYER_METHODS + _MODEL_METHODS + _OPTIMIZER_METHODS))
_STEP_METHOD_GETTERS = {}


def _step_methods(cls):
    """The :data:`_STEP_METHODS` that ``cls`` has, as a tuple (an ``attrgetter`` per class,
    made once: ``getattr`` of a name a class lacks costs ~0.15 us, for its AttributeError)."""
    getter = _STEP_METHOD_GETTERS.get(cls)
    if getter is None:
        names = [name for name in _STEP_METHODS if hasattr(cls, name)] or ["__class__"]
        getter = _STEP_METHOD_GETTERS[cls] = operator.attrgetter(*names)
    return getter(cls)


def _layout(attributes, key, kept):
    """Append the names and identities of a dict's values to ``key``, and each array's shape,
    strides, dtype and writeability (which can change in place)."""
    values = tuple(attributes.values())
    kept.append(values)
    key.append(tuple(attributes))
    key.append(tuple(map(id, values)))
    key.extend([(v.shape, v.strides, v.dtype, v.flags.writeable)
                for v in values if type(v) is np.ndarray])
