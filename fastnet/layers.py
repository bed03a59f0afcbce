"""Layers in the notebooks' shape: ``forward(x)`` then ``backward(dout)`` returning ``dx``.

Protocol
--------
* ``forward(x)`` keeps what ``backward`` needs; ``backward(dout)`` returns the gradient for the
  previous layer and never writes into ``dout``.
* ``params`` / ``grads``: dicts with the same keys (``"W"``, ``"b"``). ``params`` holds the very
  arrays the layer uses (``layer.params["W"] is layer.W``); optimizers update them in place, so
  they are never rebound. ``grads`` holds the gradients of the last ``backward`` (``dW``, ``db``).
* A layer given an ``optimizer`` updates its own parameters at the end of ``backward``, after
  computing ``dx`` with the old weights (as the notebooks do).
* ``training``: True by default; ``eval()`` switches it off (only :class:`Dropout` cares). Models
  set it for you.

dtype rule
----------
Layers cast, the functional API never does. A layer with parameters has a dtype (fastnet's default
dtype when it is built, float32 unless changed, or its ``dtype=`` argument); its input is cast to
that dtype once, at the layer boundary, and not copied at all when it already has it. Layers
without parameters follow their input's float dtype (other input becomes the default dtype).
In ``backward`` every layer casts ``dout`` to the dtype of its last forward, so a gradient always
has the dtype of the values it belongs to.
Only real numbers are cast (complex, string or object input is a ``TypeError``), and a float64
value beyond float32's range is a ``ValueError``, not a silent inf.
Every layer computes through ``fastnet.functional`` and so runs on the current backend.
"""
import math

import numpy as np

from . import _checks as check
from . import _trusted
from . import functional as F
from ._model_checks import short
from ._serialize import register
from .backend import get_default_dtype
from .functional_conv import _hyper as _conv_hyperparameters
from .functional_conv import (_max_pool1d_scatter, _trusted_conv1d, _trusted_conv1d_backward,
                              _trusted_max_pool1d, _trusted_max_pool1d_scatter)
from .initializers import HeInitializer, Initializer, XavierInitializer, as_generator
from .kernels._trains import training_starts

__all__ = ["Layer", "FC", "Conv1d", "MaxPool1d", "AvgPool1d", "Flatten", "Transpose", "ReLU",
           "Sigmoid", "Tanh", "Softmax", "Dropout"]


# --- helpers -------------------------------------------------------------------------------------

def _layer_dtype(owner, dtype):
    try:
        dt = np.dtype(get_default_dtype() if dtype is None else dtype)
    except TypeError:                  # not a dtype at all ("foo")
        dt = None
    if dt is None or dt.type not in check.FLOAT_DTYPES:
        raise TypeError(f"{owner}: dtype={dtype!r}; expected np.float32 or np.float64")
    return dt.type


def _cast(x, dtype, grad_of=None, input_of=None):
    """``x`` as a C-contiguous ndarray of ``dtype``; no copy when it already is one (see
    :func:`fastnet._checks.cast_real` for what may be cast). ``grad_of``: the layer whose
    ``backward`` received ``x``, ``input_of``: the one whose ``forward`` did, for an error that
    names it (a layer called by hand has no model around it to say where it failed)."""
    if type(x) is np.ndarray and x.dtype == dtype and x.flags.c_contiguous:    # not masked
        return x
    if grad_of is None:
        return check.cast_real(_forward_of(input_of), "input", x, dtype)
    return check.cast_real(f"{type(grad_of).__name__}.backward", "the incoming gradient dout",
                           x, dtype, "the layers after it produced a gradient this layer's "
                           "dtype cannot hold (training diverged?); lower the learning rate, or "
                           "use {dtype} for this layer")


def _rows(x):
    """``(N, d1, d2, ...)`` as ``(N, d1*d2*...)`` (also for N = 0, where -1 is ambiguous)."""
    return x.reshape(len(x), math.prod(x.shape[1:]))


def _forward_of(layer):
    """How errors name the forward of ``layer`` (``"layer"`` when none is given)."""
    return "layer" if layer is None else f"{type(layer).__name__}.forward"


def _as_float(x, layer):
    """Input of a parameter-free ``layer``: float arrays keep their dtype (in native byte
    order), and so do NumPy float scalars (as 0-d arrays); other real numbers are cast to the
    default dtype; masked arrays are refused."""
    if isinstance(x, np.floating) and type(x) in check.FLOAT_DTYPES:
        x = np.asarray(x)
    if isinstance(x, np.ndarray) and x.dtype.type in check.FLOAT_DTYPES:
        check.not_masked(_forward_of(layer), "input", x)
        native = None if x.dtype.isnative else x.dtype.newbyteorder("=")
        return check.kernel_ready(x, native)                          # 0-d stays 0-d
    return _cast(x, get_default_dtype(), input_of=layer)


def check_dout(owner, dout, forward_shape):
    """``dout`` must have the shape of the last forward output (``owner`` names the layer)."""
    if dout.shape != tuple(forward_shape):
        raise ValueError(f"{owner}.backward: dout has shape {dout.shape} but the forward "
                         f"output had shape {tuple(forward_shape)}")


def _dtype_name(dtype):
    return np.dtype(dtype).name


class Layer:
    """Base class: no parameters, training mode on.

    A layer records what its ``backward`` needs only once its ``forward`` call has succeeded: a
    forward that raises leaves the last good step's state whole, so a later ``backward`` still
    matches it (half-updated state let a max pooling scatter out of bounds).
    """

    training = True
    #: Kinds of size ("features", "channels") that pass through unchanged, for the chain check.
    _passes = ()

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    @property
    def params(self):
        return {}

    @property
    def grads(self):
        return {}

    def train(self, mode=True):
        """Set training mode (``mode=False`` is evaluation mode); returns the layer."""
        self.training = check.flag(f"{type(self).__name__}.train", "mode", mode)
        return self

    def eval(self):
        return self.train(False)

    def get_config(self):
        """Constructor arguments, JSON-serialisable (used by ``model.save``)."""
        return {}

    def size_in(self):
        """``(kind, n)`` the input must have, e.g. ``("features", 784)``; None if unknown."""
        return None

    def size_out(self):
        """``(kind, n)`` of the output; None if unknown."""
        return None

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def has_params(layer):
    """Whether ``layer`` has parameters to train: a non-empty ``params``, or no ``params`` at
    all (a notebook's own layer, which may update itself in its ``backward``)."""
    params = getattr(layer, "params", None)
    return params is None or bool(params)          # a duck-typed layer: assume it has some


def runs_own_passes(layer):
    """Whether ``layer`` is an :class:`FC` whose ``forward`` or ``backward`` is not FC's own:
    overridden by a subclass (a user's layer derived from ``fastnet.compat.FC``, say) or
    replaced on the instance. The models then call those methods, never the FC's private
    passes that fuse a final softmax with the loss (which ran none of the user's code: an
    audit's finding)."""
    return isinstance(layer, FC) and any(
        getattr(type(layer), name) is not getattr(FC, name) or name in vars(layer)
        for name in ("forward", "backward"))


def input_grad_optional(backward):
    """Mark a layer's ``backward(dout)`` as exactly ``self._backward(dout, True)``, where
    ``_backward(dout, need_dx=False)`` computes only the parameter gradients and returns None.
    :func:`backward_through` uses ``_backward`` only for marked methods, so a subclass that
    overrides ``backward`` always has its own code run."""
    backward.input_grad_optional = True
    return backward


def backward_through(layers, dout, need_dx=True):
    """Backpropagate ``dout`` through ``layers`` (in reverse order); returns the gradient with
    respect to the first layer's input, or None when ``need_dx`` is False.

    Without ``need_dx`` nothing needs the gradient of the network's input, so the first layer
    with parameters computes only its parameter gradients (for an MLP's first FC that saves the
    ``dz @ W.T`` GEMM, about a third of its backward) and the parameter-free layers in front of
    it are not run backward at all.
    """
    wanted = [need_dx]                 # wanted[i]: is the gradient at layer i's input needed?
    for layer in layers[:-1]:
        wanted.append(wanted[-1] or has_params(layer))
    for i in reversed(range(len(layers))):
        layer, want = layers[i], wanted[i]
        if not want and not has_params(layer):
            return None
        try:
            own = "backward" in getattr(layer, "__dict__", ())      # replaced on the instance
            if want or own or not (hasattr(layer, "_backward") and
                                   getattr(type(layer).backward, "input_grad_optional", False)):
                dout = layer.backward(dout)
            else:
                dout = layer._backward(dout, False)
        except (ValueError, TypeError) as err:      # say which layer (and its update) failed
            raise check.with_context(err, f"layer {i} {short(layer)} failed in backward: "
                                          f"{err}") from err
    return dout if need_dx else None


def _weights(owner, initializer, shape, fan_in, dtype):
    """Initial weights of ``shape`` from a fastnet initializer or a notebook-style one.

    A notebook-style initializer only has ``W(n_in, n_out)``; a convolution weight
    ``(C_out, C_in, K)`` is then drawn as ``W(C_in*K, C_out)`` (same fan-in) and rearranged.
    """
    check.memory_for_draw(owner, shape)
    if isinstance(initializer, type):    # its unbound methods failed on the arguments
        raise TypeError(f"{owner}: initializer is the class {initializer.__name__}; pass an "
                        f"instance, {initializer.__name__}()")
    if isinstance(initializer, Initializer) or hasattr(initializer, "weights"):
        w = initializer.weights(shape, fan_in, dtype)
    elif hasattr(initializer, "W"):
        w = np.asarray(initializer.W(fan_in, shape[0] if len(shape) == 3 else shape[1]))
        if len(shape) == 3:
            w = w.T.reshape(shape)
    else:
        raise TypeError(f"{owner}: initializer {initializer!r} has no W(n_in, n_out) method")
    if w.shape != shape:
        raise ValueError(f"{owner}: the initializer returned weights of shape {w.shape}; "
                         f"expected {shape}")
    w = check.cast_real(owner, "the initial weights", w, dtype)
    return np.array(w, dtype=dtype, order="C")       # a private, writeable copy


def _bias(owner, initializer, n, dtype):
    if hasattr(initializer, "weights"):               # fastnet initializers take a dtype
        b = initializer.b(n, dtype)
    elif hasattr(initializer, "b"):
        b = np.asarray(initializer.b(n))
    elif hasattr(initializer, "B"):                    # the 1-D convolution notebook's
        b = np.asarray(initializer.B(n))
    else:
        b = np.zeros(n)
    if b.shape != (n,):
        raise ValueError(f"{owner}: the initializer returned a bias of shape {b.shape}; "
                         f"expected ({n},)")
    b = check.cast_real(owner, "the initial bias", b, dtype)
    return np.array(b, dtype=dtype, order="C")


def update_with_own_optimizer(layer):
    """The end of a layer's ``backward``: its own optimizer's step, where it has one, checked
    again (``layer.optimizer = "sgd"`` after construction raised a bare AttributeError)."""
    optimizer = layer.optimizer
    if optimizer is not None:
        check_optimizer(short(layer), optimizer).update(layer)


def check_optimizer(owner, optimizer):
    """``optimizer`` if it is None or an object with an ``update`` method (not a class)."""
    if isinstance(optimizer, type):
        raise TypeError(f"{owner}: optimizer is the class {optimizer.__name__}; pass an "
                        f"instance, e.g. {optimizer.__name__}(0.01)")
    if optimizer is not None and not callable(getattr(optimizer, "update", None)):
        raise TypeError(f"{owner}: optimizer {optimizer!r} has no update method")
    return optimizer


# --- activations ---------------------------------------------------------------------------------

@register()
class ReLU(Layer):
    """``max(x, 0)``; the gradient at exactly 0 is 0."""

    fused_name = "relu"          # FC(activation=ReLU()) runs it inside the dense kernel
    _passes = ("features", "channels")

    def forward(self, x):
        x = _as_float(x, self)
        y = F.relu(x)
        self._x = x                     # only once the call succeeded (see Layer)
        return y

    def backward(self, dout):
        check.need_forward(self, getattr(self, "_x", None))
        return F.relu_backward(_cast(dout, self._x.dtype, self), self._x)


class _FromOutput(Layer):
    """An element-wise activation whose gradient is computed from its output."""

    _passes = ("features", "channels")

    def forward(self, x):
        self._y = self._forward(_as_float(x, self))
        return self._y

    def backward(self, dout):
        check.need_forward(self, getattr(self, "_y", None))
        return self._backward(_cast(dout, self._y.dtype, self), self._y)


@register()
class Sigmoid(_FromOutput):
    """``1 / (1 + exp(-x))``, computed without overflow."""

    fused_name = "sigmoid"
    _forward = staticmethod(F.sigmoid)
    _backward = staticmethod(F.sigmoid_backward)


@register()
class Tanh(_FromOutput):
    """``tanh(x)``."""

    fused_name = "tanh"
    _forward = staticmethod(F.tanh)
    _backward = staticmethod(F.tanh_backward)


@register()
class Softmax(Layer):
    """Softmax over the last axis, with the row maximum subtracted (never overflows).

    ``backward`` is the exact vector-Jacobian product ``y * (dout - sum(dout * y))``. The scratch
    notebooks did otherwise: one returned ``dout`` unchanged (its classifier fed the softmax the
    cross-entropy gradient ``(y - t) / N`` directly), another multiplied by ``y * (1 - y)`` (only
    the Jacobian's diagonal), and both subtracted the maximum of the whole batch rather than of
    each row, so a row far below it could underflow to 0/0. fastnet's models fuse a final softmax
    with the cross-entropy loss (see :class:`fastnet.model.Classifier`), so they pass
    ``(y - t) / N`` to the layer before it.
    """

    _passes = ("features",)
    fused_name = "softmax"       # a model's loss may take its place (see fusable_softmax)

    def forward(self, x):
        self._y = F.softmax(_as_float(x, self))
        return self._y

    def backward(self, dout):
        check.need_forward(self, getattr(self, "_y", None))
        return F.softmax_backward(_cast(dout, self._y.dtype, self), self._y)


def _claim(obj, marker, methods):
    """The value of class attribute ``marker`` (a claim about what ``methods`` compute) when
    ``obj`` still has those methods of the nearest class that states it: not overridden by a
    subclass below it, not replaced on the instance; else None. A subclass that changes them
    must state the claim again itself."""
    owner = next((cls for cls in type(obj).__mro__ if marker in vars(cls)), None)
    if owner is None:
        return None
    for name in methods:
        if getattr(type(obj), name, None) is not getattr(owner, name, None) \
                or name in getattr(obj, "__dict__", ()):
            return None
    return getattr(owner, marker)


def _fused_name(activation):
    """The kernel's name for ``activation`` (``fused_name``) when the layer's kernel may apply it
    in its place: the class that names it, or a subclass that keeps its methods. A subclass
    that changes them (a leaky ReLU derived from ReLU) runs as the object it is, unless it names
    the function again itself (``fastnet.compat``'s activations, whose methods only add the
    notebooks' bookkeeping)."""
    return _claim(activation, "fused_name", ("forward", "backward", "_forward", "_backward"))


def passes_gradient_through(obj):
    """Whether ``obj``'s ``backward`` returns its gradient unchanged, as its class says
    (``passes_gradient_through``: ``fastnet.compat.Softmax``, whose notebooks' loops hand it the
    softmax cross-entropy's gradient at the logits). A subclass with a ``backward`` of its own
    does not inherit the claim."""
    return bool(_claim(obj, "passes_gradient_through", ("backward",)))


def fusable_softmax(obj):
    """Whether ``obj`` is a :class:`Softmax` that the softmax cross-entropy may replace (the
    models fuse a final one with the loss): fastnet's, or a subclass that keeps its methods or
    names the function again (``fastnet.compat.Softmax``). A subclass that changes them, a
    softmax with a temperature say, runs as the layer it is."""
    return isinstance(obj, Softmax) and _fused_name(obj) == "softmax"


def _activation(owner, activation):
    """``(fused kernel name, activation layer or None)`` for FC's ``activation`` argument."""
    if activation is None:
        return "none", None
    if isinstance(activation, str):
        if activation == "softmax":
            return "none", Softmax()
        if activation not in ("relu", "sigmoid", "tanh"):
            raise ValueError(f"{owner}: activation={activation!r}; choose None, 'relu', "
                             f"'sigmoid', 'tanh', 'softmax' or an activation layer such as "
                             f"ReLU()")
        return activation, None
    if isinstance(activation, type):
        raise TypeError(f"{owner}: activation={activation.__name__} is a class; pass an "
                        f"instance, {activation.__name__}()")
    fused = _fused_name(activation)
    if fused in ("relu", "sigmoid", "tanh"):
        return fused, None
    if not (callable(getattr(activation, "forward", None))
            and callable(getattr(activation, "backward", None))):
        raise TypeError(f"{owner}: activation {activation!r} needs forward and backward methods")
    # The model's optimizer and its save see the FC's own W and b only: an activation's
    # parameters would never train and would come back from a file as fresh ones.
    params = getattr(activation, "params", None)
    if isinstance(params, dict) and params:
        raise TypeError(f"{owner}: activation {type(activation).__name__} has parameters "
                        f"({', '.join(map(str, params))}), which neither the optimizer nor a save "
                        f"would see; put it in the model as a layer of its own")
    return "none", activation


def set_mode(obj, mode):
    """Put a layer (or an FC's activation object) into training mode ``mode``: through its
    ``train`` method where it has one (a container passes it on), else its ``training`` flag."""
    if callable(getattr(obj, "train", None)):
        obj.train(mode)
    else:
        obj.training = mode


# --- fully connected -------------------------------------------------------------------------

class WeightsAndBias(Layer):
    """A layer whose parameters are ``W`` and ``b`` (gradients ``dW``, ``db``)."""

    @property
    def params(self):
        return {"W": self.W, "b": self.b}

    @property
    def grads(self):
        return {"W": self.dW, "b": self.db}


class _FusedActivation(WeightsAndBias):
    """FC and Conv1d: an ``activation`` applied inside the layer's kernel."""

    @property
    def activation(self):
        """As given to the constructor. Assigning another one checks it, and it applies from the
        next ``forward`` on (a ``backward`` in between is an error, not a mixed gradient)."""
        return self._activation

    @activation.setter
    def activation(self, activation):
        self._use_activation(activation)
        self._activation = activation

    def _use_activation(self, activation):
        """Check ``activation`` and set up the kernel's; forget the last forward."""
        raise NotImplementedError


@register()
class FC(_FusedActivation):
    """Fully connected layer ``act(X @ W + b)`` from ``n_nodes1`` to ``n_nodes2`` nodes.

    Parameters
    ----------
    n_nodes1, n_nodes2 : int >= 1
        Input and output sizes; ``W`` is ``(n_nodes1, n_nodes2)``, ``b`` is ``(n_nodes2,)``.
    initializer : optional
        Anything with ``W(n_in, n_out)`` and ``b(n_out)``. Default: :class:`HeInitializer` when
        the activation is ReLU, :class:`XavierInitializer` otherwise.
    optimizer : optional
        When given, ``backward`` ends with ``optimizer.update(self)`` (the notebooks' style).
        Without one, a model's optimizer updates the layer.
    activation : None, "relu", "sigmoid", "tanh", "softmax" or a layer such as ``ReLU()``
        ReLU, sigmoid and tanh (as a name or as fastnet's activation objects) are applied inside
        the dense kernel, in place (ReLU in the bias pass; with the Numba backend sigmoid and tanh
        in one more pass). A subclass of those objects that changes their methods (a leaky ReLU
        derived from ``ReLU``) runs as its own object. Any other object with ``forward`` and
        ``backward`` (e.g. ``Softmax()``) is applied after the dense product; one with a
        ``training`` flag (a ``Dropout()``) is switched by the FC's ``train()``/``eval()``, and
        a model puts back its own mode after ``predict`` or ``fit``, as for a layer.
    dtype : np.float32 or np.float64, optional
        Default: :func:`fastnet.get_default_dtype` at construction.

    Attributes
    ----------
    W, b : ndarray
    dW, db : ndarray
        Gradients of the last backward (sums over the batch of the incoming ``dout``, which is
        the gradient of the loss, already a mean).

    Shape
    -----
    Input ``(N, n_nodes1)``, or ``(N, ...)`` with ``n_nodes1`` elements per sample (flattened;
    ``backward`` restores the shape). Output ``(N, n_nodes2)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnet.initializers import HeInitializer
    >>> from fastnet.optimizers import AdaGrad
    >>> fc = FC(784, 400, HeInitializer(seed=0), AdaGrad(0.01), ReLU())
    >>> fc.forward(np.zeros((20, 784), np.float32)).shape
    (20, 400)
    """

    def __init__(self, n_nodes1, n_nodes2, initializer=None, optimizer=None, activation=None,
                 dtype=None):
        self.n_nodes1 = check.size("FC", "n_nodes1", n_nodes1, 1)
        self.n_nodes2 = check.size("FC", "n_nodes2", n_nodes2, 1)
        self.activation = activation
        if initializer is None:
            initializer = HeInitializer() if self._fused == "relu" else XavierInitializer()
        self.initializer = initializer
        self.optimizer = check_optimizer(repr(self), optimizer)
        self.dtype = _layer_dtype("FC", dtype)
        self.W = _weights(repr(self), initializer, (self.n_nodes1, self.n_nodes2),
                          self.n_nodes1, self.dtype)
        self.b = _bias(repr(self), initializer, self.n_nodes2, self.dtype)
        self.X = self.dW = self.db = None

    def _use_activation(self, activation):
        self._fused, self._act_layer = _activation(f"FC({self.n_nodes1}, {self.n_nodes2})",
                                                   activation)
        self.X = None

    def train(self, mode=True):
        """Set training mode on the layer and on its activation object, which models do not
        see on their own (a ``Dropout`` given as the activation stops dropping in
        ``predict``); returns the layer."""
        super().train(mode)
        if hasattr(self._act_layer, "training"):        # False for None
            set_mode(self._act_layer, self.training)
        return self

    def forward(self, X):
        out = self._forward_logits(X)
        return out if self._act_layer is None else self._act_layer.forward(out)

    @input_grad_optional
    def backward(self, dA):
        return self._backward(dA, True)

    def _backward(self, dA, need_dx):
        check.need_forward(self, self.X)
        dA = _cast(dA, self.dtype, self)
        if self._act_layer is not None:
            dA = self._act_layer.backward(dA)
        return self._backward_logits(dA, need_dx)

    def _forward_logits(self, X, dense=None):
        """The dense part alone (with its fused activation), without an activation *object*:
        the classifiers use it to fuse a final ``Softmax()`` with the cross-entropy loss.

        ``dense`` is :func:`fastnet.functional.dense` (checked), or the backend's
        ``dense_forward`` in ``fit``'s steps that follow a checked one (``fastnet._dense_chain``).
        """
        X, shape = self._input_rows(X)
        if dense is None:
            dense = F._trusted_dense if _trusted.active() else F.dense
        y = dense(X, self.W, self.b, self._fused)
        self.X, self._shape, self._y = X, shape, y        # together, once the call succeeded
        return y

    def _input_rows(self, X):
        """``(rows, shape)``: the input ``X`` cast to this layer's dtype as ``(N, n_nodes1)``,
        and its shape before that."""
        X = _cast(X, self.dtype, input_of=self)
        shape = X.shape
        if X.ndim > 2:
            X = _rows(X)
        if X.ndim == 0 or X.shape[-1] != self.n_nodes1:
            raise ValueError(f"{self!r}: input of shape {shape} has "
                             f"{X.shape[-1] if X.ndim else 0} features per sample; expected "
                             f"{self.n_nodes1} (inputs are (N, {self.n_nodes1}) or (N, ...) "
                             f"with {self.n_nodes1} elements per sample)")
        return X, shape

    def _forward_from_product(self, X, shape, XW, dense_bias_act_):
        """:meth:`_forward_logits` of the rows ``X`` (and ``shape``, from
        :meth:`_input_rows`) when ``XW = X @ W`` is computed already (``fastnet._dense_chain``:
        by the last step's update of ``W``); ``XW`` becomes the output."""
        dense_bias_act_(XW, self.b, self._fused)
        self.X, self._shape, self._y = X, shape, XW
        return XW

    def _backward_logits(self, dZ, need_dx=True):
        dX = self._gradients(_cast(dZ, self.dtype, self), need_dx,
                             F._trusted_dense_backward if _trusted.active() else F.dense_backward)
        update_with_own_optimizer(self)
        return None if dX is None else dX.reshape(self._shape)

    def _gradients(self, dZ, need_dx, dense_backward):
        """Set ``dW`` and ``db`` from ``dZ`` (this layer's dtype); return ``dX`` as ``(N,
        n_nodes1)``, or None. ``dense_backward``: as ``dense`` in :meth:`_forward_logits`."""
        # Drop the last step's gradients first: their memory is then reused for the new ones
        # (holding both made glibc return and re-map it every step: ~250 page faults per MLP
        # step, +0.3 ms).
        self.dW = self.db = None
        y = dZ if self._fused == "none" else self._y      # the kernel ignores y then
        dX, self.dW, self.db = dense_backward(dZ, self.X, self.W, y, self._fused, need_dx)
        return dX

    def _gradients_spent(self, dZ, need_dx, dense_backward_adagrad_, h, lr, eps):
        """As :meth:`_gradients`, with ``dW`` spent at once on AdaGrad's step of ``W`` (state
        ``h``) and left None (``fastnet._dense_chain``, the kernel of that name)."""
        self.dW = self.db = None
        y = dZ if self._fused == "none" else self._y
        dX, self.db = dense_backward_adagrad_(self.W, h, dZ, self.X, y, self._fused, need_dx,
                                              lr, eps)
        return dX

    def _gradients_spent_ahead(self, dZ, need_dx, dense_backward_adagrad_ahead_, h, lr, eps,
                               X_next):
        """As :meth:`_gradients_spent`, and the next batch's product ``X_next @ W`` (rows from
        :meth:`_input_rows`) of the updated ``W``: returns ``(dX, X_next @ W)``."""
        self.dW = self.db = None
        y = dZ if self._fused == "none" else self._y
        dX, self.db, XW = dense_backward_adagrad_ahead_(self.W, h, dZ, self.X, y, self._fused,
                                                        need_dx, lr, eps, X_next)
        return dX, XW

    def get_config(self):
        return {"n_nodes1": self.n_nodes1, "n_nodes2": self.n_nodes2,
                "activation": self.activation, "optimizer": self.optimizer,
                "dtype": _dtype_name(self.dtype)}

    def size_in(self):
        return ("features", self.n_nodes1)

    def size_out(self):
        return ("features", self.n_nodes2)

    def __repr__(self):
        act = "" if self.activation is None else f", activation={self.activation!r}"
        return f"{type(self).__name__}({self.n_nodes1}, {self.n_nodes2}{act})"


# --- convolution and pooling ---------------------------------------------------------------------

@register()
class Conv1d(_FusedActivation):
    """1-D convolution (cross-correlation, as PyTorch's) over ``(N, C_in, L)`` input.

    ``y[n, o, l] = b[o] + sum_{c,k} W[o, c, k] * xpad[n, c, l*stride + k*dilation]``.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int >= 1
    stride, dilation : int >= 1
    padding : int, (left, right), "valid" or "same"
    initializer : optional
        Default :class:`HeInitializer` (convolutions are usually followed by ReLU), with fan-in
        ``in_channels * kernel_size``. A notebook-style initializer with only ``W(n_in, n_out)``
        is called as ``W(in_channels * kernel_size, out_channels)``.
    optimizer : optional
        As in :class:`FC`: ``backward`` ends with ``optimizer.update(self)`` when given.
    dtype : np.float32 or np.float64, optional
    activation : {None, "relu", "sigmoid", "tanh"}
        Fused into the convolution kernels (one flat pass over the output, and over the
        incoming gradient): ``Conv1d(..., activation="relu")`` computes what
        ``Conv1d(...), ReLU()`` does, without a separate layer's allocations and passes.

    Attributes
    ----------
    W : ndarray ``(out_channels, in_channels, kernel_size)``
    b : ndarray ``(out_channels,)``

    Shape
    -----
    Input ``(N, C_in, L)``, output ``(N, C_out, L_out)`` with ``L_out = (L + padding_left +
    padding_right - dilation*(kernel_size-1) - 1) // stride + 1`` (``2*padding`` for an int
    padding; at least 1, or an error). The scratch notebook's output-size function had an
    operator-precedence bug (it divided only part of the numerator by the stride); this is the
    correct formula.

    Examples
    --------
    >>> import numpy as np
    >>> conv = Conv1d(28, 16, 3, padding=1)
    >>> conv.forward(np.zeros((5, 28, 28), np.float32)).shape
    (5, 16, 28)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 initializer=None, optimizer=None, dtype=None, activation=None):
        op = "Conv1d"
        self.activation = activation
        self.in_channels = check.size(op, "in_channels", in_channels, 1)
        self.out_channels = check.size(op, "out_channels", out_channels, 1)
        self.kernel_size = check.size(op, "kernel_size", kernel_size, 1)
        self.stride = check.size(op, "stride", stride, 1)
        self.dilation = check.size(op, "dilation", dilation, 1)
        if isinstance(padding, np.ndarray) and padding.ndim == 1:
            padding = padding.tolist()                # a (left, right) pair as an array
        if isinstance(padding, (tuple, list)):
            padding = tuple(padding)
        # Every padding form checked as conv1d checks it. (Until the twenty-seventh session by
        # the output length of the shortest valid input, whose length alone could exceed
        # MAX_SIZE at a huge dilation that conv1d itself accepts: an audit's finding.)
        _conv_hyperparameters(op, self.kernel_size, self.stride, padding, self.dilation)
        # Kept as plain ints (or the name), which repr, comparisons and save handle.
        if isinstance(padding, tuple):
            padding = tuple(int(p) for p in padding)
        elif not isinstance(padding, str):
            padding = int(padding)
        self.padding = padding
        self.initializer = HeInitializer() if initializer is None else initializer
        self.optimizer = check_optimizer(op, optimizer)
        self.dtype = _layer_dtype(op, dtype)
        shape = (self.out_channels, self.in_channels, self.kernel_size)
        self.W = _weights(op, self.initializer, shape, self.in_channels * self.kernel_size,
                          self.dtype)
        self.b = _bias(op, self.initializer, self.out_channels, self.dtype)
        self.x = self.dW = self.db = None

    def _use_activation(self, activation):
        self._fused = check.activation("Conv1d", activation)
        self.x = None

    def forward(self, x):
        x = _cast(x, self.dtype, input_of=self)
        if x.ndim != 3:
            raise ValueError(f"{self!r}: input must be (N, C_in, L); got shape {x.shape} (a "
                             f"batch of single-channel sequences (N, L) is x[:, None, :])")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: input of shape {x.shape} has {x.shape[1]} channels; "
                             f"expected {self.in_channels}")
        if self.training:
            training_starts()           # its backward may compile ahead (kernels._trains)
        conv = _trusted_conv1d if _trusted.active() else F.conv1d
        y = conv(x, self.W, self.b, self.stride, self.padding, self.dilation, self._fused)
        self.x, self._y = x, y                      # together, once the call succeeded
        return y

    @input_grad_optional
    def backward(self, dout):
        return self._backward(dout, True)

    def _backward(self, dout, need_dx):
        check.need_forward(self, self.x)
        self.dW = self.db = None                 # reuse their memory (see FC._backward_logits)
        y = None if self._fused == "none" else self._y
        gradients = _trusted_conv1d_backward if _trusted.active() else F.conv1d_backward
        dx, self.dW, self.db = gradients(_cast(dout, self.dtype, self), self.x, self.W,
                                         self.stride, self.padding, self.dilation, need_dx, y,
                                         self._fused)
        update_with_own_optimizer(self)
        return dx

    def get_config(self):
        padding = list(self.padding) if isinstance(self.padding, tuple) else self.padding
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": padding,
                "dilation": self.dilation, "optimizer": self.optimizer,
                "dtype": _dtype_name(self.dtype), "activation": self.activation}

    def size_in(self):
        return ("channels", self.in_channels)

    def size_out(self):
        return ("channels", self.out_channels)

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v, d in (("stride", self.stride, 1),
                                                       ("padding", self.padding, 0),
                                                       ("dilation", self.dilation, 1),
                                                       ("activation", self.activation, None))
                        if v != d)
        return (f"Conv1d({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}{extra})")


def _pool_input(layer, x):
    x = _as_float(x, layer)
    if x.ndim != 3:
        raise ValueError(f"{layer!r}: input must be (N, C, L); got shape {x.shape}")
    return x


@register()
class MaxPool1d(Layer):
    """Max over windows of ``kernel_size`` along the last axis of ``(N, C, L)``.

    ``stride`` defaults to ``kernel_size``; ``padding`` (at most ``kernel_size // 2``) is
    ``-inf``. ``L_out = (L + 2*padding - kernel_size) // stride + 1``. The gradient goes to the
    first maximum of each window.
    """

    _passes = ("channels",)

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = check.pool_window(
            "MaxPool1d", kernel_size, stride, padding)
        self._indices = None

    def forward(self, x):
        x = _pool_input(self, x)
        if _trusted.active():
            y, indices = _trusted_max_pool1d(x, self.kernel_size, self.stride, self.padding)
        else:
            y, indices = F.max_pool1d(x, self.kernel_size, self.stride, self.padding,
                                      return_indices=True)
        # Together, once the call succeeded: backward's scatter trusts these indices to lie in
        # [0, length) without checking them, so a failed forward must not leave a new length
        # beside the old indices (that wrote out of bounds: a segfault).
        self._indices, self._length, self._dtype = indices, x.shape[-1], x.dtype
        return y

    def backward(self, dout):
        check.need_forward(self, self._indices)
        scatter = _trusted_max_pool1d_scatter if _trusted.active() else _max_pool1d_scatter
        return scatter("MaxPool1d.backward", _cast(dout, self._dtype, self), self._indices,
                       self._length)

    def get_config(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


@register()
class AvgPool1d(Layer):
    """Mean over windows of ``kernel_size`` along the last axis of ``(N, C, L)``; zero padding
    counts in the divisor. Arguments and ``L_out`` as :class:`MaxPool1d`."""

    _passes = ("channels",)

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = check.pool_window(
            "AvgPool1d", kernel_size, stride, padding)
        self._length = None
        self._out_shape = None

    def forward(self, x):
        x = _pool_input(self, x)
        y = F.avg_pool1d(x, self.kernel_size, self.stride, self.padding)
        # Together, once the call succeeded.
        self._length, self._out_shape, self._dtype = x.shape[-1], y.shape, y.dtype
        return y

    def backward(self, dout):
        check.need_forward(self, self._length)
        dout = _cast(dout, self._dtype, self)
        check_dout(repr(self), dout, self._out_shape)
        return F.avg_pool1d_backward(dout, self._length, self.kernel_size, self.stride,
                                     self.padding)

    def get_config(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


# --- reshaping and regularisation ----------------------------------------------------------------

@register()
class Flatten(Layer):
    """``(N, d1, d2, ...)`` to ``(N, d1*d2*...)``; ``backward`` restores the shape."""

    def forward(self, x):
        x = _as_float(x, self)
        if x.ndim == 0:
            raise ValueError(f"{self!r}: input must be (N, ...); got a scalar")
        self._shape, self._dtype = x.shape, x.dtype
        return _rows(x)

    def backward(self, dout):
        check.need_forward(self, getattr(self, "_shape", None))
        dout = _cast(dout, self._dtype, self)
        check_dout(repr(self), dout, (self._shape[0], math.prod(self._shape[1:])))
        return dout.reshape(self._shape)


@register()
class Transpose(Layer):
    """Swap the last two axes: ``(N, A, B)`` to ``(N, B, A)``; ``backward`` swaps them back.

    For image input ``(N, 28, 28)`` held as rows-as-channels, ``Transpose()`` gives the
    columns-as-channels view, so a :class:`~fastnet.model.Concat` can convolve both.
    """

    def forward(self, x):
        x = _as_float(x, self)
        if x.ndim < 3:
            raise ValueError(f"{self!r}: input must be (N, A, B); got shape {x.shape}")
        y = np.ascontiguousarray(x.swapaxes(-1, -2))
        self._out_shape, self._dtype = y.shape, y.dtype
        return y

    def backward(self, dout):
        check.need_forward(self, getattr(self, "_out_shape", None))
        dout = _cast(dout, self._dtype, self)
        check_dout(repr(self), dout, self._out_shape)
        return np.ascontiguousarray(dout.swapaxes(-1, -2))


@register()
class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the
    rest by ``1 / (1 - p)``; in evaluation mode (``eval()``), the identity.

    Parameters
    ----------
    p : float in [0, 1)
    seed : None, int or numpy.random.Generator
        None: a generator seeded from NumPy's global random state (``np.random.seed`` makes it
        reproducible).
    generator_state : dict, optional
        A position of the generator to start from (``Generator.bit_generator.state``, with
        arrays as lists), in place of ``seed``'s start. A saved model keeps its generator's
        position this way, so training resumed after ``load`` draws the masks it would have
        drawn without the save.
    """

    _passes = ("features", "channels")

    def __init__(self, p=0.5, seed=None, generator_state=None):
        self.p = p
        # An integer seed (NumPy's too) is saved with the model; a Generator cannot be.
        integer = isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
        self.seed = int(seed) if integer else None
        if generator_state is None:
            self._rng = as_generator(seed, "Dropout")
        else:
            self._rng = _generator_at("Dropout", generator_state)
        self._mask = None
        self._forward_ran = False

    @property
    def p(self):
        """The drop probability, checked whenever it is set (also after construction)."""
        return self._p

    @p.setter
    def p(self, p):
        value = check.real("Dropout", "p", p, low=0, high=1)
        if value >= 1:
            raise ValueError(f"Dropout: p={p!r}; expected 0 <= p < 1 (p=1 drops everything)")
        self._p = value

    def forward(self, x):
        x = _as_float(x, self)
        self._forward_ran, self._shape, self._dtype = True, x.shape, x.dtype
        if not self.training or self.p == 0:
            self._mask = None
            return x
        keep = self._rng.random(x.shape, dtype=x.dtype) >= self.p
        self._mask = keep.astype(x.dtype)
        self._mask *= x.dtype.type(1 / (1 - self.p))
        return np.asarray(x * self._mask)     # 0-d in, 0-d out (a product of two is a scalar)

    def backward(self, dout):
        check.need_forward(self, self._forward_ran or None)
        dout = _cast(dout, self._dtype, self)
        check_dout(repr(self), dout, self._shape)
        if self._mask is None:                 # evaluation mode (or p = 0): the identity
            return dout
        return np.asarray(dout * self._mask)

    def get_config(self):
        return {"p": self.p, "seed": self.seed,
                "generator_state": _as_json(self._rng.bit_generator.state)}

    def __repr__(self):
        # Without the generator's state (get_config's): a 40-digit blob in every error message
        # that names the layer buried the error itself.
        return f"Dropout(p={self.p!r}, seed={self.seed!r})"


def _as_json(value):
    """A generator state with its arrays (MT19937's key) as lists and NumPy ints as ints."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value


def _generator_at(op, state):
    """A ``numpy.random.Generator`` at ``state`` (a ``bit_generator.state`` dict)."""
    kinds = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
    kind = state.get("bit_generator") if isinstance(state, dict) else None
    if kind not in kinds:
        raise ValueError(f"{op}: generator_state must be a bit generator's state dict, with "
                         f"'bit_generator' one of {', '.join(kinds)}; got {state!r:.100}")
    bit_generator = getattr(np.random, kind)()
    try:
        if kind == "MT19937" and isinstance(state.get("state"), dict):
            state = {**state, "state": {**state["state"],
                                        "key": np.asarray(state["state"].get("key"), np.uint32)}}
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as err:
        raise ValueError(f"{op}: generator_state is not a valid {kind} state "
                         f"({type(err).__name__}: {err})") from None
    return np.random.Generator(bit_generator)
