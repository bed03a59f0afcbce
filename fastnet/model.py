"""Models: :class:`Sequential` (layers in a row, any loss) and :class:`Classifier` (softmax
cross-entropy, accuracy, ``predict``/``predict_proba``/``score``).

Training (``fit``)
------------------
Per mini-batch: forward, loss, backward, update. Layers built with their own optimizer update
themselves inside ``backward`` (the notebooks' style); the others are updated by the model's
``optimizer``. Before the first update ``fit`` checks everything it can — data shapes and
lengths, finite inputs, labels in range, that every layer has an optimizer, and one forward pass
of a sample through the whole network — so bad input fails before anything is trained. A
non-finite batch loss stops training with a ``FloatingPointError`` naming the epoch and batch.
A chain of ``FC`` layers runs an epoch's steps after the first without the per-call checks that
the first one passed (``fastnet._dense_chain``: ~10 % of the notebooks' MLP step). Other models
made of fastnet's layers skip the functional API's checks in their passes (``fastnet._trusted``)
and their updates (``_dense_chain.UncheckedUpdates``): ~8 % of the MNIST CNN's step.

``history`` records, per epoch, ``loss`` (mean over the epoch's samples of the batch losses,
taken while the model was changing, as the notebooks do), ``val_loss`` (after the epoch) and, for
classifiers, ``acc`` / ``val_acc``; ``log_loss``, ``log_loss_val``, ``log_acc``, ``log_acc_val``
are the same lists under the notebook's names.

Softmax at the end
------------------
With :class:`~fastnet.losses.SoftmaxCrossEntropy`, a network may end with logits (recommended) or
with a softmax — a :class:`~fastnet.layers.Softmax` layer or ``FC(..., activation=Softmax())``
as in the notebooks, also at the end of a nested ``Sequential``. A final softmax is then fused with
the loss: training computes the loss from the logits and passes ``(softmax - target) / N``
straight to the layer before, so ``log(0)`` is never taken. A notebook's *own* ``Softmax`` class
(any class of that name from outside fastnet, as a layer or an FC's activation) is taken as the
notebooks use it: its output, the probabilities, gives the loss, and its ``backward`` must pass
``(softmax - target) / N`` through unchanged (``fit`` checks that it does). A subclass of
fastnet's ``Softmax`` that changes its methods (a temperature, say) is not fused: it runs as the
layer it is, and the loss takes its output as logits (``fit`` warns when the rows look like
probabilities).

Layers from outside fastnet need only ``forward`` and ``backward``: one without ``params``
(a notebook's own ``FC``) is not updated by the model's optimizer, saved or checked for
divergence; it updates itself in its ``backward``, as in the notebooks. The gradient it gets is
that of the batch-mean loss, already divided by the batch size.

Inference (``predict``, ``evaluate``, validation) runs in evaluation mode, ``batch_size`` rows
(default 1024) at a time, so memory does not grow with the number of samples. ``fit`` trains in
training mode. Both put back afterwards the modes they found, the model's and each layer's (a
Dropout switched off on its own stays off).
"""
import contextlib
import functools
import math
import threading
import time
import warnings

import numpy as np

from . import _checks as check
from . import _loss_ahead, _serialize, _trusted
from . import backend
from . import functional as F
from ._dense_chain import (dense_chain, layout_key, record_models, trusted_passes,
                           unchecked_updates)
from ._model_checks import (augmented, check_augment, check_chain, check_distinct, check_finite,
                            check_rows, layer_list, short, touches_only_the_batch)
from .callbacks import (Callback, call_hook, callback_list, per_batch, readers,
                        reads_between_steps)
from .data import MiniBatch, as_array, check_xy
from .initializers import as_generator
from .kernels._trains import training_starts
from .layers import (FC, Layer, Softmax, backward_through, check_dout, check_optimizer,
                     fusable_softmax, has_params, input_grad_optional, passes_gradient_through,
                     runs_own_passes, set_mode)
from .losses import BinaryCrossEntropy, SoftmaxCrossEntropy, get_loss
from .optimizers import Optimizer, refuse_tied

__all__ = ["Sequential", "Classifier", "Concat", "Callback", "load"]

INFERENCE_BATCH = 1024
#: Guards the evaluation-mode switch of every model (see ``Sequential._evaluation_mode``).
_MODE_LOCK = threading.Lock()


def _params(layer):
    """A layer's parameters; {} for a duck-typed layer without ``params`` (a notebook's own FC,
    which updates itself in its ``backward``)."""
    return getattr(layer, "params", None) or {}


def _foreign_softmax(obj):
    """Whether ``obj`` is a softmax from outside fastnet: an object of a class named Softmax
    that is not a fastnet layer, like the notebooks' own. Their ``backward`` passes the
    gradient through unchanged, taking it to be the fused softmax cross-entropy gradient
    ``scores - targets``; ``fit`` checks that it does (:meth:`Sequential._dry_run`)."""
    return (obj is not None and not isinstance(obj, Layer)
            and type(obj).__name__.lower() == "softmax")


def _final_foreign_softmax(layers):
    """The softmax a chain of layers ends with that the loss cannot take out of the network,
    or None: a foreign one (:func:`_foreign_softmax`) as a layer or as the activation of a final
    FC, fastnet's or a notebook's; or any softmax, fastnet's included, as the activation of a
    notebook's own final layer, or of a final FC whose passes are the user's own
    (:func:`~fastnet.layers.runs_own_passes`), whose forward applies it.
    (``fastnet.compat.Softmax`` there was taken for no softmax: the loss applied a second one,
    and MNIST trained to 0.29 accuracy against 0.91; an audit's finding.)"""
    last = layers[-1]
    if isinstance(last, Sequential):
        return _final_foreign_softmax(last.layers)
    own = (last._act_layer if runs_own_passes(last) else
           None if isinstance(last, Layer) else getattr(last, "activation", None))
    for obj in (last, getattr(last, "_act_layer", None), own):
        if _foreign_softmax(obj) or (obj is own and isinstance(obj, Softmax)):
            return obj
    return None


def _warn_if_probabilities(op, out, last, fused=False):
    """The softmax cross-entropy takes logits and applies the softmax itself. Output rows that
    are already probabilities (non-negative, summing to 1) mean a softmax the loss did not
    recognise, a notebook's under another class name: the model would train on
    softmax(probabilities), which learns slowly or not at all, without any error. With
    ``fused``, ``out`` is what the network's final softmax (fused with the loss) receives: a
    softmax before it, e.g. ``FC(..., activation=Softmax())`` and then a ``Softmax`` layer."""
    if not (out.ndim == 2 and out.shape[1] > 1 and np.all(out >= 0)
            and np.all(np.abs(out.sum(axis=1) - 1) < 1e-5)):
        return
    if fused:
        warnings.warn(
            f"{op}: the network's final softmax receives probabilities (rows sum to 1): it "
            f"applies a softmax twice, so it would train on softmax(probabilities). Keep only "
            f"the last softmax (e.g. FC(..., activation=Softmax()) or a Softmax layer after a "
            f"plain FC, not both)", stacklevel=3)
    else:
        act = getattr(last, "activation", None)
        end = last if act is None or isinstance(act, str) else act
        changed = (", a subclass of fastnet's Softmax that changes its methods, which the loss "
                   "does not fuse" if isinstance(end, Softmax) else "")
        warnings.warn(
            f"{op}: the network's outputs are probabilities (rows sum to 1) but the softmax "
            f"cross-entropy takes logits and applies the softmax itself, so it would train on "
            f"softmax(probabilities). End the network with its last FC (logits), or with "
            f"fastnet.compat.Softmax / fastnet.layers.Softmax, which the loss fuses (the "
            f"network ends in {type(end).__module__}.{type(end).__name__}{changed})",
            stacklevel=3)


def _fused_softmax(layers):
    """The softmax object that the loss takes the place of (the "fused" tail): a final
    fastnet ``Softmax`` layer or a final FC's ``Softmax`` activation, also at the end of a
    nested ``Sequential``; else None. Not the activation of an FC whose forward or backward is
    the user's own: those methods must run, and they apply it."""
    last = layers[-1]
    if isinstance(last, Sequential):
        return _fused_softmax(last.layers)
    if fusable_softmax(last):
        return last
    act = last._act_layer if isinstance(last, FC) and not runs_own_passes(last) else None
    return act if fusable_softmax(act) else None


def check_pass_through(op, leaves, final):
    """Refuse a softmax whose ``backward`` passes its gradient through
    (``fastnet.compat.Softmax``: the notebooks' loops hand it the softmax cross-entropy's
    gradient at the logits) anywhere but at ``final``, the end that the loss takes over or
    hands that gradient to: its gradient would be wrong there. ``leaves``: ``(key, layer)``
    pairs; a notebook's own layer's ``activation`` is looked at too."""
    for key, layer in leaves:
        own = None if isinstance(layer, Layer) else getattr(layer, "activation", None)
        for obj in (layer, getattr(layer, "_act_layer", None), own):
            if passes_gradient_through(obj) and obj is not final:
                where = "layer" if obj is layer else "activation of layer"
                raise ValueError(
                    f"{op}: the {where} {key.rstrip('.')} is {type(obj).__module__}."
                    f"{type(obj).__name__}, whose backward passes its gradient through (the "
                    f"notebooks' convention: their loops hand it (softmax - targets) / N); it "
                    f"can only end a network trained with the softmax cross-entropy loss, which "
                    f"takes its place. Use fastnet.layers.Softmax here (exact backward)")


def _chain_tail(layers):
    """:meth:`Sequential._softmax_tail` of a chain of layers."""
    if _fused_softmax(layers) is not None:
        return "fused"
    return "probs" if _final_foreign_softmax(layers) is not None else "logits"


class _Container(Layer):
    """A layer made of layers: parameters and gradients are gathered from ``named_leaves``.

    Each layer keeps its last good step when its own forward raises (see ``Layer``), but a
    container whose forward fails at its k-th layer (or branch) is left torn: the layers before
    hold the new batch, the rest the previous one. A backward then would mix the two steps, so
    it is refused until a forward succeeds (``_torn``).
    """

    _torn = False

    def _check_whole(self):
        if self._torn:
            raise RuntimeError(f"{type(self).__name__}.backward: the last forward failed part-way, "
                               f"so some layers hold that batch and others the one before; run "
                               f"a forward that succeeds first")

    @property
    def params(self):
        return {p + k: v for p, layer in self.named_leaves() for k, v in _params(layer).items()}

    @property
    def grads(self):
        return {p + k: v for p, layer in self.named_leaves()
                for k, v in (getattr(layer, "grads", None) or {}).items()}

    def leaf_optimizers(self, prefix="", inherited=None):
        """``(key prefix, layer, optimizer)`` for every non-container layer: the optimizer that
        updates it (its own, else the nearest enclosing container's, else None)."""
        inherited = getattr(self, "optimizer", None) or inherited
        for i, child in enumerate(self._children()):
            key = f"{prefix}{i}."
            if isinstance(child, _Container):
                yield from child.leaf_optimizers(key, inherited)
            else:
                leaves = child.named_leaves(key) if hasattr(child, "named_leaves") \
                    else [(key, child)]
                for k, leaf in leaves:
                    yield k, leaf, getattr(leaf, "optimizer", None) or inherited


@_serialize.register()
class Sequential(_Container):
    """Layers applied in order; itself a layer (``forward``, ``backward``, ``params``,
    ``grads``), so containers can be nested.

    Parameters
    ----------
    layers : sequence of layers
        Objects with ``forward(x)`` and ``backward(dout)``.
    loss : loss object or name, optional
        Needed by ``fit`` and ``evaluate``: :class:`~fastnet.losses.SoftmaxCrossEntropy`,
        :class:`~fastnet.losses.MeanSquaredError`, :class:`~fastnet.losses.BinaryCrossEntropy`
        or their names ("softmax_cross_entropy", "mse", "binary_cross_entropy").
    optimizer : optimizer, optional
        Updates every layer that has parameters but no optimizer of its own, including those
        inside nested containers, unless a nested ``Sequential`` has an optimizer of its own.

    Attributes
    ----------
    params, grads : dict
        Every layer's parameters / gradients, keyed ``"<layer index>.<name>"`` (``"0.W"``).
    history : dict of lists
        Per-epoch values recorded by the last ``fit``.
    """

    def __init__(self, layers, loss=None, optimizer=None):
        self.layers = layer_list(type(self).__name__, layers)
        self._check_layers(type(self).__name__)
        self.loss = get_loss(loss)
        self.optimizer = check_optimizer(type(self).__name__, optimizer)
        self.history = {}

    # --- the layer protocol ----------------------------------------------------------------

    def forward(self, x):
        self._torn = True                      # until every layer's forward has succeeded
        x = self._forward_through(self.layers, x)
        self._torn = False
        return x

    @input_grad_optional
    def backward(self, dout):
        self._check_whole()
        return backward_through(self.layers, dout)

    def _backward(self, dout, need_dx):
        self._check_whole()
        return backward_through(self.layers, dout, need_dx)

    def _forward_through(self, layers, x):
        for i, layer in enumerate(layers):
            try:
                x = layer.forward(x)
            except (ValueError, TypeError) as err:
                raise self._forward_error(i, x, err) from err
        return x

    def _forward_error(self, i, x, err):
        shape = getattr(x, "shape", None)
        source = ("the model input" if i == 0 else
                  f"the output of layer {i - 1} {short(self.layers[i - 1])}")
        return check.with_context(err, f"{type(self).__name__}: layer {i} "
                                       f"{short(self.layers[i])} failed on its input of shape "
                                       f"{shape}, {source}: {err}")

    def _children(self):
        return self.layers

    def named_leaves(self, prefix=""):
        """``(key prefix, layer)`` for every non-container layer, depth first. A container is
        any layer with a ``named_leaves`` method (a future branch/concat container included)."""
        for i, layer in enumerate(self.layers):
            if hasattr(layer, "named_leaves"):
                yield from layer.named_leaves(f"{prefix}{i}.")
            else:
                yield f"{prefix}{i}.", layer

    def train(self, mode=True):
        """Set training mode on the model and every layer (``mode=False``: evaluation)."""
        mode = self.training = check.flag(f"{type(self).__name__}.train", "mode", mode)
        for layer in self.layers:
            set_mode(layer, mode)
        return self

    def _modes(self):
        """``(model.training, [(key, layer, layer.training), ...])`` for :meth:`_set_modes` (and
        a saved file's modes): a layer set to evaluation mode on its own (a Dropout turned off)
        stays so after ``predict`` or ``fit``, which switch the whole model and back."""
        return self.training, [(key, obj, bool(obj.training))
                               for key, obj in self._mode_holders() if hasattr(obj, "training")]

    def _mode_holders(self):
        """``(key, object)`` for every leaf layer and, after it, the activation object of an
        FC (key ``"<leaf key>activation"``): ``FC.train`` sets its activation's mode too, so a
        Dropout there that was switched off on its own must be put back after its FC."""
        for key, layer in self.named_leaves():
            yield key, layer
            activation = getattr(layer, "_act_layer", None)
            if activation is not None:
                yield f"{key}activation", activation

    def _set_modes(self, modes):
        training, layers = modes
        self.train(training)
        for _, layer, mode in layers:
            set_mode(layer, mode)

    def get_config(self):
        return {"layers": self.layers, "loss": self.loss, "optimizer": self.optimizer}

    def get_params(self):
        """Constructor arguments (scikit-learn style): ``layers``, ``loss``, ``optimizer``, as
        :meth:`get_config`. The learned arrays are in :attr:`params`."""
        return self.get_config()

    def size_in(self):
        return self.layers[0].size_in() if hasattr(self.layers[0], "size_in") else None

    def size_out(self):
        return self.layers[-1].size_out() if hasattr(self.layers[-1], "size_out") else None

    def __repr__(self):
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        return f"{type(self).__name__}([\n{inner}\n], loss={self.loss!r})"

    # --- notebook names for the history --------------------------------------------------

    @property
    def log_loss(self):
        return self.history.get("loss", [])

    @property
    def log_loss_val(self):
        return self.history.get("val_loss", [])

    # --- the loss, with a final softmax fused into the cross-entropy ---------------------

    def _softmax_tail(self):
        """How the network ends, for a softmax cross-entropy loss: "logits" (no final softmax,
        or one this loss cannot fuse), "fused" (a fastnet Softmax at the end: a Softmax layer or
        an FC with a Softmax activation object, also at the end of a nested Sequential) or
        "probs" (a notebook's own Softmax class, see :func:`_foreign_softmax`)."""
        if not isinstance(self.loss, SoftmaxCrossEntropy):
            return "logits"
        return _chain_tail(self.layers)

    def _forward_for_loss(self, x, tail):
        """The output the loss takes: logits, or log-probabilities after a notebook's softmax
        (whose softmax is the probabilities again, so the loss and its gradient are those of the
        logits before that softmax)."""
        if tail == "fused":
            return self._forward_logits(x)
        out = self.forward(x)
        if tail == "probs":
            out = np.asarray(out)
            with np.errstate(divide="ignore"):
                out = np.log(np.maximum(out, np.finfo(out.dtype).tiny))
        return out

    def _forward_logits(self, x):
        """Forward without the final softmax (a layer, an FC's activation, or a nested
        Sequential's own)."""
        self._torn = True
        x = self._forward_through(self.layers[:-1], x)
        last = self.layers[-1]
        if not fusable_softmax(last):
            try:
                x = last._forward_logits(x)
            except (ValueError, TypeError) as err:
                raise self._forward_error(len(self.layers) - 1, x, err) from err
        self._torn = False
        return x

    def _backward_from_loss(self, dout, tail):
        """Backward from the loss gradient; nothing needs the input's gradient here."""
        if tail == "fused":
            self._backward_logits(dout, False)
        else:           # "probs": a notebook's softmax passes the loss's gradient through as is
            self._check_whole()
            backward_through(self.layers, dout, need_dx=False)

    def _backward_logits(self, dout, need_dx):
        """Backward of :meth:`_forward_logits`."""
        self._check_whole()
        rest, last = self.layers[:-1], self.layers[-1]
        if not fusable_softmax(last):
            dout = last._backward_logits(dout, need_dx or any(map(has_params, rest)))
        if rest:
            return backward_through(rest, dout, need_dx)
        return dout if need_dx else None

    def _step(self):
        # A layer with its own optimizer was updated during backward already.
        for key, layer, opt in self.leaf_optimizers():
            if opt is not None and getattr(layer, "optimizer", None) is None and _params(layer):
                try:
                    opt.update(layer)
                except (ValueError, TypeError) as err:
                    raise check.with_context(err, f"layer {key.rstrip('.')} {short(layer)}: "
                                                  f"{err}") from err

    # --- checks done before training ------------------------------------------------------

    def _check_loss(self, op):
        """``self.loss`` as a loss object: a name or object assigned after construction is
        looked up and checked as the constructor would."""
        if self.loss is None:
            raise ValueError(f"{op}: the model has no loss; build it with loss=... (e.g. "
                             f"'softmax_cross_entropy' or 'mse')")
        try:
            self.loss = get_loss(self.loss)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{op}: {err}") from None

    def _check_layers(self, op):
        """``self.layers``: instances with forward/backward, sizes that chain, each object at
        one place only. Run at construction and again by ``fit``, since ``layers`` is a plain
        list that may have been edited in between."""
        if not self.layers:
            raise ValueError(f"{op}: layers is empty; give at least one layer")
        for i, layer in enumerate(self.layers):
            if isinstance(layer, type):
                raise TypeError(f"{op}: layer {i} is the class {layer.__name__}; pass an "
                                f"instance, {layer.__name__}(...)")
            if not (callable(getattr(layer, "forward", None))
                    and callable(getattr(layer, "backward", None))):
                raise TypeError(f"{op}: layer {i} ({short(layer)}) has no forward/backward "
                                f"methods")
            if isinstance(layer, (Sequential, Concat)):
                layer._check_layers(op)
        check_chain(op, self.layers)
        check_distinct(op, self)

    def _check_trainable(self, op):
        """What fit trains, checked once before it starts (attributes may have been replaced
        since construction): the layers, the optimizers, no tied weights."""
        self._check_layers(op)
        params = self.params
        refuse_tied(params, op)
        _check_updatable(op, params)
        for key, layer, opt in self.leaf_optimizers():
            if not _params(layer):
                continue
            if opt is None:
                raise ValueError(f"{op}: layer {key[:-1]} {short(layer)} has no optimizer and "
                                 f"the model has none; give the layer one (optimizer=...) or the "
                                 f"model (optimizer=SGD(0.01))")
            where = f"{op}: layer {key[:-1]} {short(layer)}"
            check_optimizer(where, opt)
            grads = getattr(layer, "grads", None)
            if not (isinstance(grads, dict) and set(grads) == set(_params(layer))):
                raise TypeError(f"{where} has params {sorted(_params(layer))} but grads "
                                f"{sorted(grads) if isinstance(grads, dict) else grads!r}; the "
                                f"optimizer updates each parameter from the gradient of its name")
            if isinstance(opt, Optimizer):
                for dtype in {p.dtype for p in _params(layer).values()
                              if isinstance(p, np.ndarray)}:
                    try:
                        opt.check_for(dtype)
                    except (TypeError, ValueError) as err:
                        raise check.with_context(err, f"{where}, {dtype} parameters: "
                                                      f"{err}") from None

    def _check_data(self, op, X, y, x_name="X", y_name="y"):
        """Training data, checked whole before any update: a bad value in a later batch would
        otherwise stop training half-way (NaN in a target as a diverged loss)."""
        # Rows first: a 1-D X (one sample, or samples of one feature) is the likelier mistake
        # when its length differs from y's too.
        X = as_array(op, x_name, X)
        check_rows(op, X, x_name)
        X, y = check_xy(op, X, y, x_name, y_name)
        if X.dtype.kind not in "biuf":       # bool too, as the layers take it (cast to 0/1)
            raise TypeError(f"{op}: {x_name} must be numeric; got {X.dtype}")
        self._check_target_form(op, y, y_name)
        narrowest = min((p.dtype for p in self.params.values()), key=lambda d: d.itemsize,
                        default=None)
        for name, a in ((x_name, X), (y_name, y)):
            if a.dtype.kind == "f":
                check_finite(op, name, a, narrowest)
        return X, y

    def _check_target_form(self, op, y, y_name):
        """The kind of targets the model takes: numbers, for a generic model (strings or
        objects failed only at the first batch, in a message naming the batch)."""
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{op}: {y_name} must be numeric; got {y.dtype} of shape {y.shape}")

    def _check_targets(self, op, y, out, y_name):
        """Targets against the output of a dry-run forward: one of the output's shape per
        sample, or integer class labels where the loss is softmax cross-entropy."""
        if (isinstance(self.loss, SoftmaxCrossEntropy) and y.ndim == 1
                and y.dtype.kind in "iu"):
            _check_class_targets(op, y, out, y_name)
            return
        if out.shape[1:] != y.shape[1:]:
            raise ValueError(f"{op}: {y_name} has shape {y.shape}, so one target of shape "
                             f"{y.shape[1:]} per sample, but the network outputs "
                             f"{out.shape[1:]} per sample")
        if isinstance(self.loss, BinaryCrossEntropy) and y.size and (y.min() < 0 or y.max() > 1):
            # else the loss refuses the batch that holds it, after the updates before it
            bad = y[(y < 0) | (y > 1)].flat[0]
            raise ValueError(f"{op}: {y_name} holds {bad}; the binary cross-entropy takes "
                             f"targets in [0, 1]")
        if isinstance(self.loss, SoftmaxCrossEntropy):
            _check_class_weights(op, y, y_name)

    def _loss_ahead(self, y, rows):
        """On a cold Numba cache, a helper process compiles the loss while the first forward
        compiles here (``fastnet._loss_ahead``); its key, or None."""
        dtypes = {p.dtype for p in self.params.values()}
        if len(dtypes) != 1:
            return None
        return _loss_ahead.arm(self.loss, self.layers, dtypes.pop(), rows, y)

    def _dry_run(self, X, op, rows, name="X"):
        """Forward the first ``rows`` samples in evaluation mode: shape errors show before any
        update. An error names the data (``X`` or ``X_val``) and its whole shape.

        ``rows`` is the batch size that the data will run in (at most ``len(X)``), so that the
        dry run takes the kernels' paths for that size, which the first step then uses: with
        two samples it compiled a path that no step took (the MLP's 400 -> 200 layer on BLAS's
        transposed product, ~0.2 s of a cold start)."""
        tail = self._softmax_tail()
        rows = min(rows, len(X))
        with self._evaluation_mode():
            try:
                out = self._forward_for_loss(X[:rows], tail)
            except (TypeError, ValueError) as err:
                first = "sample" if rows == 1 else f"{rows} samples"
                raise check.with_context(err, f"{op}: {name} of shape {X.shape} does not fit the "
                                              f"model (tried on its first {first}): {err}") from err
        if tail == "probs":
            self._check_foreign_softmax(op, out)
        elif tail in ("logits", "fused") and isinstance(self.loss, SoftmaxCrossEntropy):
            _warn_if_probabilities(op, out, self.layers[-1], fused=tail == "fused")
        return out

    def _check_foreign_softmax(self, op, out):
        """A notebook's softmax at the end must pass the loss's gradient through unchanged
        (the notebooks' ``Softmax.backward(dZ): return dZ``); one that takes other arguments or
        applies a Jacobian would be trained on a wrong gradient."""
        softmax = _final_foreign_softmax(self.layers)
        probe = np.linspace(-1.0, 1.0, out.size).reshape(out.shape).astype(out.dtype)
        try:
            passed = np.array_equal(np.asarray(softmax.backward(probe.copy())), probe)
        except Exception:                    # noqa: BLE001 (any failure: the message below)
            passed = False
        if passed:
            return
        name = f"{type(softmax).__module__}.{type(softmax).__name__}"
        if isinstance(softmax, Softmax):     # fastnet's exact one, inside a notebook's layer
            raise ValueError(
                f"{op}: the network ends in a layer of your own whose activation is {name}, "
                f"whose backward is the softmax's exact Jacobian product; the softmax "
                f"cross-entropy hands that layer the gradient at the logits, (softmax - "
                f"targets) / N, as the notebooks' loops do, which only a softmax that passes it "
                f"through turns into the right gradient: use fastnet.compat.Softmax() there, "
                f"or give that layer no activation and end the model with a Softmax() layer")
        raise ValueError(
            f"{op}: the network ends in {name}, a softmax from outside fastnet whose "
            f"backward(dZ) does not return dZ unchanged, so the softmax cross-entropy cannot "
            f"be fused with it; end the network with fastnet.compat.Softmax (or "
            f"fastnet.layers.Softmax) instead")

    @contextlib.contextmanager
    def _evaluation_mode(self):
        """Evaluation mode inside the block, then the mode from before.

        Threads may be inside at once (``predict`` from a thread pool): the first one in
        switches, the last one out switches back. (Each restoring the mode it had found let a
        thread find another's evaluation mode and restore that: the model was left in evaluation
        mode, and a Dropout could switch on in the middle of another thread's ``predict``.)
        Training while other threads predict is not supported.
        """
        with _MODE_LOCK:
            depth = self.__dict__.get("_evaluation_depth", 0)
            if depth == 0:
                self._modes_before_evaluation = self._modes()
                self.train(False)
            self._evaluation_depth = depth + 1
        try:
            yield
        finally:
            with _MODE_LOCK:
                self._evaluation_depth -= 1
                if self._evaluation_depth == 0:
                    self._set_modes(self._modes_before_evaluation)

    # --- training --------------------------------------------------------------------------

    def _metrics(self):
        return ("loss",)

    def _batch_correct(self, out, y):
        return 0

    def fit(self, X, y, X_val=None, y_val=None, epochs=10, batch_size=32, shuffle=True, seed=0,
            verbose=False, callbacks=None, augment=None):
        """Train with mini-batches; returns ``self``. ``history`` starts afresh at each call
        (parameters and optimizer state carry on).

        Parameters
        ----------
        X, y : array
            Inputs ``(N, ...)`` and targets ``(N, ...)`` (for :class:`Classifier`: integer labels
            ``(N,)`` or one-hot ``(N, C)``). Inputs are cast to each layer's dtype per batch.
        X_val, y_val : array, optional
            Evaluated after every epoch (``val_loss``, ``val_acc``).
        epochs : int >= 1
        batch_size : int >= 1
            The last batch of an epoch is smaller when ``batch_size`` does not divide ``N``.
        shuffle : bool
            A new permutation every epoch, drawn from one generator seeded with ``seed``.
        seed : int, numpy.random.Generator or None
        verbose : bool
            Print one line per epoch.
        callbacks : list, optional
            Objects with any of :class:`Callback`'s methods (progress bars, logging).
        augment : callable, optional
            ``augment(x_batch, rng) -> x_batch`` applied to every training batch (same shape),
            e.g. :func:`fastnet.data.random_shift`; ``rng`` is the fit's generator, so a run
            is reproducible from ``seed``. Validation and inference data are never augmented.

        Raises
        ------
        ValueError, TypeError
            Bad data, labels, sizes or settings — before any parameter changes. A loss
            replaced while fit runs (by a callback) stops it with a ValueError: the data were
            checked against the loss that fit started with.
        FloatingPointError
            The training loss became NaN or infinite (the message names epoch and batch).

        Notes
        -----
        After ``fit`` every layer holds the gradients of its last step (``dW``, ``db``). Inside
        an epoch, the weight gradients of ``FC`` layers trained by AdaGrad may go straight into
        the update without being kept (``fastnet._dense_chain``: the same arithmetic, faster);
        so where training stops inside an epoch (an error, an interrupt) their ``dW`` is None.
        A per-batch callback of your own sees every gradient.
        """
        op = f"{type(self).__name__}.fit"
        self._check_loss(op)
        epochs = check.integer(op, "epochs", epochs, low=1)
        batch_size = check.integer(op, "batch_size", batch_size, low=1)
        shuffle = check.flag(op, "shuffle", shuffle)
        verbose = check.flag(op, "verbose", verbose)
        if augment is not None:
            check_augment(op, augment)
        X, y = self._check_data(op, X, y)
        if (X_val is None) != (y_val is None):
            raise ValueError(f"{op}: give both X_val and y_val, or neither")
        if X_val is not None:
            X_val, y_val = self._check_data(op, X_val, y_val, "X_val", "y_val")
        training_starts()                 # a backward may now compile ahead (kernels._trains)
        loss_ahead = self._loss_ahead(y, min(batch_size, len(X)))
        try:
            self._check_trainable(op)
            tail = self._softmax_tail()
            check_pass_through(op, self.named_leaves(),
                               _fused_softmax(self.layers) if tail == "fused"
                               else _final_foreign_softmax(self.layers) if tail == "probs"
                               else None)
            out = self._dry_run(X, op, batch_size)
        finally:                          # done or stopped, even if fit stops here
            _loss_ahead.collect(loss_ahead)
        self._check_targets(op, y, out, "y")
        if isinstance(self.loss, SoftmaxCrossEntropy) and out.ndim == 2 and out.shape[1] == 1:
            raise ValueError(f"{op}: the network outputs 1 class score per sample; a softmax "
                             f"over one class is always 1, so the loss is 0 and nothing trains. "
                             f"Give the last layer 2 outputs for two classes, or use "
                             f"Sequential(..., loss='bce') with a sigmoid output")
        if X_val is not None:
            self._check_targets(op, y_val, self._dry_run(X_val, op, INFERENCE_BATCH, "X_val"),
                                "y_val")
        rng = as_generator(seed, op)
        callbacks = callback_list(callbacks)
        n_batches = -(-len(X) // batch_size)

        self.history = {name: [] for m in self._metrics() for name in (m, "val_" + m)}
        modes_before = self._modes()
        loss_fn = self.loss              # the loss checked above, fixed for the whole fit
        self.train(True)
        try:
            call_hook(callbacks, "on_train_begin", self, epochs, n_batches)
            for epoch in range(epochs):
                self._fit_epoch(X, y, X_val, y_val, epoch, epochs, batch_size, shuffle, rng,
                                tail, verbose, callbacks, augment, loss_fn)
        finally:
            self._set_modes(modes_before)
        call_hook(callbacks, "on_train_end", self)
        return self

    def _fit_epoch(self, X, y, X_val, y_val, epoch, epochs, batch_size, shuffle, rng, tail,
                   verbose, callbacks, augment, loss_fn):
        """One epoch of ``fit``; ``loss_fn`` is the loss that ``fit`` checked."""
        start = time.perf_counter()
        batches = MiniBatch(X, y, batch_size, seed=rng, shuffle=shuffle)
        call_hook(callbacks, "on_epoch_begin", epoch, len(batches))
        total = 0.0
        correct = 0
        chain = None             # after a checked step, maybe a chain of FCs without the checks
        step = self._step        # or, for other models, maybe their updates without the checks
        passes = contextlib.nullcontext        # and their passes trusted (fastnet._trusted)
        # The chain may spend AdaGrad's weight gradients at once, but at the epoch's last step
        # and where a callback may read them.
        keep_gradients = reads_between_steps(callbacks)
        watched = readers(callbacks)     # said to only read: checked that they did
        upcoming = iter(batches)
        following = next(upcoming, None)          # the next batch, for the chain's backward
        for b in range(len(batches)):
            (xb, yb), following = following, next(upcoming, None)
            if self.loss is not loss_fn:
                raise _loss_replaced(type(self).__name__, epoch, b, len(batches), loss_fn,
                                     self.loss)
            if augment is not None:
                xb = augmented(augment, xb, rng)
            where = f"epoch {epoch + 1}, batch {b + 1} (of {len(batches)})"
            try:
                with passes():
                    out = chain.forward(xb) if chain else self._forward_for_loss(xb, tail)
                # A BCE input that left [0, 1], or a parameter that a callback replaced by a
                # bad one (the passes and updates check them): say when.
                loss = loss_fn.forward(out, yb)
            except (ValueError, TypeError) as err:
                raise check.with_context(err, f"training stopped at {where}: {err}") from err
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"training diverged at {where}: loss is {loss}; lower the learning rate, or "
                    f"check the data and the initialization")
            dout = loss_fn.backward()            # outside the trusted passes: it checks its own
            try:
                if chain:
                    chain.backward(dout, keep_gradients or b == len(batches) - 1,
                                   None if following is None else following[0])
                else:
                    with passes():
                        self._backward_from_loss(dout, tail)
                    step()
            except (ValueError, TypeError) as err:
                raise check.with_context(err, f"training stopped at {where}: {err}") from err
            # After the first step, checked throughout, the later ones may skip the checks.
            if b == 0 and touches_only_the_batch(augment) and not per_batch(callbacks):
                chain = dense_chain(self, tail)
                if not chain and trusted_passes(self):
                    passes = _trusted.steps
                    step = unchecked_updates(self) or step
            total += loss * len(xb)
            correct += self._batch_correct(out, yb)
            unchecked = chain or passes is not contextlib.nullcontext
            before = layout_key(self) if watched and unchecked else None   # (key, kept) whole:
            call_hook(callbacks, "on_batch_end", b, loss, len(xb))      # kept keeps the ids
            if before is not None and layout_key(self)[0] != before[0]:
                # A callback changed the model although it said it only reads: the rest of
                # the epoch runs checked steps, which take the change or refuse it clearly.
                chain, passes, step = None, contextlib.nullcontext, self._step
        self._check_params_finite(epoch, len(batches))
        logs = {"loss": total / len(X)}
        if "acc" in self._metrics():
            logs["acc"] = correct / len(X)
        if X_val is not None:
            logs.update({"val_" + k: v for k, v in self.evaluate(X_val, y_val).items()})
        for key, value in logs.items():
            self.history[key].append(value)
        logs["seconds"] = time.perf_counter() - start
        if verbose:
            parts = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "seconds")
            print(f"epoch {epoch + 1:>3}/{epochs}  {parts}  ({logs['seconds']:.1f} s)",
                  flush=True)
        call_hook(callbacks, "on_epoch_end", epoch, logs)

    def _check_params_finite(self, epoch, n_batches):
        """The batch loss is checked before each update, so a blow-up in an epoch's last
        update(s) would pass unseen; the parameters are checked once per epoch (a pass over
        them: ~0.1 ms for the MNIST CNN's)."""
        bad = [key for key, p in self.params.items() if not check.all_finite(p)]
        if bad:
            raise FloatingPointError(
                f"training diverged in epoch {epoch + 1} (of {n_batches} batches): after its last "
                f"update, {'parameters' if len(bad) > 1 else 'parameter'} {', '.join(bad[:5])}"
                f"{' ...' if len(bad) > 5 else ''} {'hold' if len(bad) > 1 else 'holds'} NaN or "
                f"inf; lower the learning rate, or check the data and the initialization")

    # --- inference -------------------------------------------------------------------------

    def _batched(self, op, X, batch_size, fn):
        """``fn`` over row chunks of ``X`` in evaluation mode, results stacked."""
        batch_size = check.integer(op, "batch_size", batch_size, low=1)
        given = X
        X = as_array(op, "X", X)
        if X.ndim == 0:
            raise ValueError(f"{op}: X must be an array of samples (N, ...); got "
                             f"{type(given).__name__} {given!r:.40}")
        check_rows(op, X, "X")
        if len(X) == 0:
            raise ValueError(f"{op}: X is empty (shape {X.shape}); need at least one sample")
        with self._evaluation_mode():
            result = None
            for p0 in range(0, len(X), batch_size):
                out = fn(X[p0:p0 + batch_size])
                if result is None:
                    result = np.empty((len(X),) + out.shape[1:], dtype=out.dtype)
                result[p0:p0 + len(out)] = out
            return result

    def predict(self, X, batch_size=INFERENCE_BATCH):
        """The network's output for ``X``, computed ``batch_size`` rows at a time. (Another
        ``batch_size`` can change the last bits: BLAS blocks products by their shape.)"""
        return self._batched(f"{type(self).__name__}.predict", X, batch_size, self.forward)

    def evaluate(self, X, y, batch_size=INFERENCE_BATCH):
        """Mean loss (and, for classifiers, accuracy) over ``(X, y)`` in evaluation mode.

        Returns
        -------
        dict with ``"loss"`` (and ``"acc"``).

        Raises
        ------
        ValueError, TypeError
            Data checked as :meth:`fit` checks it: shapes, labels, and float values finite and
            within the model's dtype (a loss of NaN or inf would be no measurement).
        """
        op = f"{type(self).__name__}.evaluate"
        self._check_loss(op)
        X, y = self._check_data(op, X, y)
        batch_size = check.integer(op, "batch_size", batch_size, low=1)
        tail = self._softmax_tail()
        total = 0.0
        correct = 0
        with self._evaluation_mode():
            for p0 in range(0, len(X), batch_size):
                xb, yb = X[p0:p0 + batch_size], y[p0:p0 + batch_size]
                out = self._forward_for_loss(xb, tail)
                if p0 == 0:                      # an error names the caller's y, as fit's
                    self._check_targets(op, y, out, "y")
                total += self.loss.forward(out, yb) * len(xb)
                correct += self._batch_correct(out, yb)
        logs = {"loss": total / len(X)}
        if "acc" in self._metrics():
            logs["acc"] = correct / len(X)
        return logs

    # --- files -----------------------------------------------------------------------------

    def save(self, path):
        """Write architecture, parameters, optimizer state and history to ``path`` (an
        ``.npz`` archive; the name is used as given). Atomic: a failure mid-save leaves any
        previous file at ``path`` intact. Only fastnet's own layers, losses and optimizers can
        be saved (a ``TypeError`` says which object is not)."""
        _serialize.save_model(self, path)

    @classmethod
    def load(cls, path):
        """The model saved at ``path``; predictions are bit-identical to the saved model's on
        the same backend. Raises ``ValueError`` for a file that is not a fastnet model (or is
        truncated) or holds a model of another class."""
        return _serialize.load_model(path, cls)


@_serialize.register()
class Concat(_Container):
    """Several branches on the same input; their outputs, flattened, side by side.

    Parameters
    ----------
    branches : sequence of layer lists (or :class:`Sequential`)
        Each branch sees the whole input.

    Shape
    -----
    Input: whatever the branches accept. Output ``(N, sum of the branches' per-sample sizes)``.
    ``backward`` splits ``dout`` by branch and adds up the branches' input gradients.

    With the Numba backend, two or more threads, batches that are not tiny and OpenMP workers
    that sleep at once (the default on hosts without AVX-512), the branches run side by side,
    each on its own thread with its share of the thread count (``kernels.run_side_by_side``);
    every branch computes what it would alone with that many threads. Elsewhere they run in
    order, each kernel on every thread. Branches must not share layers.

    Examples
    --------
    Rows and columns of an image as channels, convolved separately, then one classifier head:

    >>> from fastnet.layers import FC, Conv1d, MaxPool1d, ReLU, Transpose
    >>> from fastnet.optimizers import Adam
    >>> two_view = Concat([[Conv1d(28, 32, 3, padding=1), ReLU(), MaxPool1d(2)],
    ...                    [Transpose(), Conv1d(28, 32, 3, padding=1), ReLU(), MaxPool1d(2)]])
    >>> model = Classifier([two_view, FC(2 * 32 * 14, 10)], optimizer=Adam())
    """

    def __init__(self, branches):
        if isinstance(branches, (str, bytes)) or not hasattr(branches, "__iter__"):
            raise TypeError(f"Concat: branches must be a list of branches (each a list of layers "
                            f"or a Sequential); got {type(branches).__name__}")
        branches = list(branches)
        if len(branches) < 1:
            raise ValueError("Concat: branches is empty; give at least one branch")
        # A single layer is a branch of one layer.
        self.branches = [b if isinstance(b, Sequential) else
                         Sequential([b] if callable(getattr(b, "forward", None)) else b)
                         for b in branches]
        self._check_layers("Concat")
        self._shapes = None
        self._input_size = 0
        # Each branch's last duration, forward and backward: the side-by-side threads take the
        # branches so that the calling thread gets the longest (see run_side_by_side).
        self._seconds = {"forward": None, "backward": None}

    def _check_layers(self, op):
        """Every branch's layers (see :meth:`Sequential._check_layers`); no object in two
        places."""
        for branch in self.branches:
            branch._check_layers(op)
        check_distinct(op, self)

    def forward(self, x):
        if np.ndim(x) < 2:
            raise ValueError(f"Concat: input must be a batch (N, ...); got shape {np.shape(x)} "
                             f"(one sample is x[None])")
        tasks = [functools.partial(branch.forward, x) for branch in self.branches]
        self._torn = True                      # until every branch's forward has succeeded
        outs = self._side_by_side("forward", tasks, np.size(x))
        for i, out in enumerate(outs):
            if np.ndim(out) < 1 or len(out) != len(x):
                raise ValueError(f"Concat: branch {i} returned shape {np.shape(out)} for a batch "
                                 f"of {len(x)}; every branch must keep the batch size")
        # Together, once the branches succeeded (see fastnet.layers.Layer).
        self._shapes, self._input_shape = [out.shape for out in outs], np.shape(x)
        self._input_size = np.size(x)
        self._torn = False
        return np.concatenate([out.reshape(len(out), math.prod(out.shape[1:])) for out in outs],
                              axis=1)

    @input_grad_optional
    def backward(self, dout):
        return self._backward(dout, True)

    def _backward(self, dout, need_dx):
        if self._shapes is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        self._check_whole()
        dout = np.asarray(dout)
        check_dout(type(self).__name__, dout,
                   (self._shapes[0][0], sum(math.prod(shape[1:]) for shape in self._shapes)))
        tasks, start = [], 0
        for branch, shape in zip(self.branches, self._shapes):
            width = math.prod(shape[1:])
            part = np.ascontiguousarray(dout[:, start:start + width]).reshape(shape)
            start += width
            tasks.append(functools.partial(branch._backward, part, need_dx))
        dx = None
        grads = self._side_by_side("backward", tasks, self._input_size)
        for i, grad in enumerate(grads):                                        # in order
            if grad is not None and np.shape(grad) != self._input_shape:
                raise ValueError(f"Concat: branch {i}'s backward returned shape "
                                 f"{np.shape(grad)}; the input had shape {self._input_shape}")
            dx = grad if dx is None else dx + grad
        return dx

    def _side_by_side(self, direction, tasks, size):
        """The branch tasks through ``run_side_by_side``, each timed for the next call."""
        seconds = [0.0] * len(tasks)

        def timed(i, task):
            start = time.perf_counter()
            result = task()
            seconds[i] = time.perf_counter() - start
            return result
        results = backend.kernels().run_side_by_side(
            [functools.partial(timed, i, task) for i, task in enumerate(tasks)], size,
            self._seconds[direction])
        self._seconds[direction] = seconds
        return results

    def _children(self):
        return self.branches

    def named_leaves(self, prefix=""):
        for i, branch in enumerate(self.branches):
            yield from branch.named_leaves(f"{prefix}{i}.")

    def train(self, mode=True):
        mode = self.training = check.flag(f"{type(self).__name__}.train", "mode", mode)
        for branch in self.branches:
            branch.train(mode)
        return self

    def get_config(self):
        return {"branches": self.branches}

    def __repr__(self):
        inner = ",\n".join(f"  {b!r}" for b in self.branches)
        return f"Concat([\n{inner}\n])"


def _loss_replaced(model, epoch, batch, n_batches, checked, now):
    """The error for a loss replaced while ``fit`` runs (by a callback, say): the data, the
    targets and the network's end were checked against the loss that ``fit`` started with."""
    return ValueError(f"{model}.fit: the model's loss was replaced during training (before epoch "
                      f"{epoch + 1}, batch {batch + 1} of {n_batches}): fit checked the data "
                      f"against {checked!r}, and now loss is {now!r}; set the loss before "
                      f"calling fit")


def _labels(y):
    """Integer labels from integer labels or one-hot / probability rows."""
    return y if y.ndim == 1 else y.argmax(axis=1)


def _check_updatable(op, params):
    """Parameters that the optimizers can update in place, found before the first update rather
    than in the middle of a step (after other layers had been updated): float ndarrays,
    writeable and C-contiguous (:func:`refuse_tied` refuses arrays that overlap)."""
    for key, p in params.items():
        if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
            raise TypeError(f"{op}: parameter {key} must be a float ndarray; got "
                            f"{type(p).__name__} {getattr(p, 'dtype', '')}".rstrip())
        check.updatable(op, f"parameter {key}", p)


def _check_classifier_loss(op, loss):
    if not isinstance(loss, SoftmaxCrossEntropy):
        raise TypeError(f"{op}: loss must be SoftmaxCrossEntropy; got {loss!r} (use Sequential "
                        f"for other losses)")


def _check_class_targets(op, y, out, y_name):
    """Integer labels ``(N,)`` or one-hot rows ``(N, C)`` against class scores ``out (N, C)``."""
    _check_class_scores(op, out)
    C = out.shape[1]
    if y.ndim == 2 and y.shape[1] != C:
        hint = (f"; for a column of labels pass {y_name}.ravel()" if y.shape[1] == 1 and C > 1
                else "")
        raise ValueError(f"{op}: {y_name} is one-hot with {y.shape[1]} classes but the "
                         f"network outputs {C} class scores{hint}")
    if y.ndim == 1 and (y.min() < 0 or y.max() >= C):
        bad = y[(y < 0) | (y >= C)][0]
        raise ValueError(f"{op}: label {bad} in {y_name} is out of range for {C} classes; "
                         f"labels must be in [0, {C - 1}]")
    if y.ndim == 2:
        _check_class_weights(op, y, y_name)


def _check_class_weights(op, y, y_name):
    """Target rows of the softmax cross-entropy: a negative class weight makes the loss
    unbounded below, and ``fit`` would chase it (the functional loss takes any real rows, as
    PyTorch's does)."""
    if y.size and y.min() < 0:
        raise ValueError(f"{op}: {y_name} holds {y.min()}; the softmax cross-entropy takes "
                         f"target rows of class weights >= 0 (one-hot rows or probabilities)")


@_serialize.register()
class Classifier(Sequential):
    """A :class:`Sequential` trained with softmax cross-entropy, with accuracy.

    Parameters
    ----------
    layers : sequence of layers
        Ending with the class scores (logits), or with a softmax (fused with the loss in
        training; see the module docstring).
    loss : SoftmaxCrossEntropy, optional (the default)
    optimizer : optimizer, optional
        For the layers without their own.

    Examples
    --------
    >>> from fastnet.layers import FC
    >>> from fastnet.optimizers import AdaGrad
    >>> clf = Classifier([FC(784, 400, activation="relu"), FC(400, 10)], optimizer=AdaGrad(0.01))
    >>> clf.fit(X_train, y_train, X_test, y_test, epochs=5, batch_size=20)   # doctest: +SKIP
    >>> clf.score(X_test, y_test)                                           # doctest: +SKIP
    """

    def __init__(self, layers, loss=None, optimizer=None):
        layers = layer_list(type(self).__name__, layers)      # before a layer taken as loss
        loss = SoftmaxCrossEntropy() if loss is None else get_loss(loss)
        _check_classifier_loss(type(self).__name__, loss)
        super().__init__(layers, loss, optimizer)

    def _check_loss(self, op):
        super()._check_loss(op)          # a loss assigned since construction, checked as there
        _check_classifier_loss(op, self.loss)

    def _metrics(self):
        return ("loss", "acc")

    def _batch_correct(self, out, y):
        return int(np.count_nonzero(out.argmax(axis=1) == _labels(y)))

    def _check_target_form(self, op, y, y_name):
        if y.ndim == 1 and y.dtype.kind not in "iu":
            raise TypeError(f"{op}: {y_name} must be integer labels (N,) or one-hot rows (N, C); "
                            f"got {y.dtype} of shape {y.shape} (use {y_name}.astype(int))")
        if y.ndim not in (1, 2):
            raise ValueError(f"{op}: {y_name} must be integer labels (N,) or one-hot rows "
                             f"(N, C); got shape {y.shape}")

    def _check_targets(self, op, y, out, y_name):
        _check_class_targets(op, y, out, y_name)

    @property
    def log_acc(self):
        return self.history.get("acc", [])

    @property
    def log_acc_val(self):
        return self.history.get("val_acc", [])

    def _scores(self, op, X, batch_size, then=None):
        """Class scores ``(N, C)`` of ``X`` in batches, each checked to be class scores, with
        ``then(scores)`` applied per batch."""
        tail = self._softmax_tail()

        def batch(xb):
            out = self._forward_for_loss(xb, tail)
            _check_class_scores(op, out)
            return out if then is None else then(out)
        return self._batched(op, X, batch_size, batch)

    def decision_function(self, X, batch_size=INFERENCE_BATCH):
        """Class scores (logits) ``(N, C)``, in batches."""
        return self._scores(f"{type(self).__name__}.decision_function", X, batch_size)

    def predict_proba(self, X, batch_size=INFERENCE_BATCH):
        """Class probabilities ``(N, C)``, in batches of ``batch_size`` samples. Another batch
        size gives the same values to rounding, but not always bit for bit: BLAS may sum a
        sample's products in another order for another number of rows."""
        return self._scores(f"{type(self).__name__}.predict_proba", X, batch_size, F.softmax)

    def predict(self, X, batch_size=INFERENCE_BATCH):
        """Predicted class indices ``(N,)`` (int64), in batches."""
        return self._scores(f"{type(self).__name__}.predict", X, batch_size,
                            lambda out: out.argmax(axis=1))

    def score(self, X, y, batch_size=INFERENCE_BATCH):
        """Accuracy on ``(X, y)``; ``y`` integer labels or one-hot rows. Both are checked as
        in :meth:`fit` and :meth:`evaluate`: a label out of range is an error, not a miss, and
        so is NaN or inf in ``X`` (such rows all predicted class 0, so an accuracy over them
        measured nothing; :meth:`predict` still takes them)."""
        op = f"{type(self).__name__}.score"
        X, y = self._check_data(op, X, y)
        scores = self._scores(op, X, batch_size)
        self._check_targets(op, y, scores, "y")
        return float(np.mean(scores.argmax(axis=1) == _labels(y)))


def _check_class_scores(op, out):
    """A classifier's network must output one score per class, ``(N, C)`` with C >= 1."""
    if out.ndim != 2 or out.shape[1] == 0:
        raise ValueError(f"{op}: the network outputs shape {out.shape[1:]} per sample; a "
                         f"classifier needs one score per class, (N, C) with C >= 1")


record_models(Sequential, Classifier, containers=[Concat])   # for fastnet._dense_chain


def load(path):
    """Load any fastnet model saved with ``model.save(path)``."""
    return _serialize.load_model(path)
