"""Drop-in names for scratch-notebook code: change the imports, keep the code.

Names, by the code they come from
---------------------------------
* Scratch deep-network classifier notebook: ``GetMiniBatch``, ``FC``, ``SGD``, ``AdaGrad``
  (with ``hW``, ``hb``, which its ``__init__`` may set to 0),
  ``Sigmoid``, ``ReLU``, ``Tanh``, ``Softmax``, ``SimpleInitializer``, ``XavierInitializer``,
  ``HeInitializer``, ``ScratchDeepNeuralNetrowkClassifier`` (as the notebook spells it) and
  ``ScratchDeepNeuralNetworkClassifier``.
* "Deep Learning from Scratch" chapter 5: ``Affine(W, b)``, ``Relu``, ``Sigmoid``,
  ``SoftmaxWithLoss``, ``TwoLayerNet``, ``cross_entropy_error``, ``numerical_gradient``; its
  row-wise ``softmax(x)`` and its ``load_mnist`` are in :mod:`fastnet.compat.dlfs` (with the
  rest of its names), because ``softmax`` here is the column-layout exercise's: the two are
  called alike, so code from that book imports from ``fastnet.compat.dlfs``.
* 1-D convolution notebook: ``CNN_FC`` (one channel, ``x (L,)``), ``CNN2dim_FC`` (``x (C, L)``)
  and ``CNN_mnist_FC`` (``x (N, C, L)``), each ``(w, b, optimizer, stride, padding)`` with
  ``W``, ``B``, gradients ``LW``, ``LB`` (sums over the batch, as there); its
  ``FC(n_nodes1, n_nodes2, initializer, optimizer)``, whose ``B``, ``LW``, ``LB`` are ``FC``'s
  ``b``, ``dW``, ``db`` (called so, without an activation, it draws its bias from
  ``initializer.B``, as there); ``N_OUT``; ``SGD``
  (``update`` returns the layer, as that notebook's ``self = self.optimizer.update(self)``
  expects; a layer of the notebook's own, with ``W``, ``B``, ``LW``, ``LB``, gets new arrays,
  as from its ``W = W - lr*LW``, so the ``w`` it was built from never changes; fastnet's own
  layers here, ``CNN_FC`` and ``FC`` included, are updated in place, as the classifier
  notebook's ``W -= ...``: code that keeps ``W_before = layer.W`` to see a step's change must
  take a copy);
  ``SimpleInitializer(sigma).B(n)`` (random biases); ``Softmax().backward(Z, Y)``
  (``Z - Y``, that notebook's softmax-plus-loss gradient).
* Column-layout exercise (features x batch): ``softmax(U, reduce_axis=0)``,
  ``softmax_cross_entropy(D, Y)``, ``sigmoid``, ``dsigmoid_du``.
* Small-framework article: ``Linear(input_size, output_size)``, ``NeuralNetwork(layers, loss,
  learning_rate)``, the losses ``mse``, ``cross_entropy``, ``binary_cross_entropy`` (arguments
  ``(y_true, y_pred)``) and the activations above, whose ``backward`` also accepts (and ignores)
  the ``learning_rate`` that framework passes.

dtype: float64, as NumPy scratch code
-------------------------------------
The classes here that create parameters (``FC``, ``Linear``, ``TwoLayerNet``) and the
initializers' ``W``/``b`` called directly default to float64, the dtype of ``np.random.randn``,
so the numbers match the notebooks': with
``np.random.seed(...)`` first, the initial weights are bit-identical (the initializers draw from
NumPy's global random state, as ``np.random.randn`` does). Pass ``dtype=np.float32`` for speed,
or use the ``fastnet.layers`` classes, which follow :func:`fastnet.get_default_dtype`.
``Affine(W, b)`` computes in the dtype of the ``W`` you give it. Inputs of any numeric dtype are
cast once at each layer boundary.

Where the notebooks had bugs, fastnet is correct
------------------------------------------------
* AdaGrad's bias accumulator was overwritten (``hb = db*db``) instead of accumulated.
* The classifier divided the gradient by the batch size twice (``(z - y) / n_batch`` and again
  ``/ len(X)`` in ``FC.backward``); here ``dW``, ``db`` are the exact gradients of the mean loss.
  With AdaGrad (scale-invariant up to its ``eps``) training is essentially unchanged; with plain
  SGD the same ``lr`` now takes ``n_batch`` times larger steps.
* Its loss averaged over classes as well as samples and added 1e-8 inside the log; ``log_loss``
  here is the mean cross-entropy per sample, computed from the logits.
* ``GetMiniBatch`` reseeded NumPy's global generator (``np.random.seed(seed)``); here an integer
  seed gives the same batches from a private ``RandomState``, leaving the global state alone.
  The classifier reused seed 0, so every epoch saw the same order; here each epoch gets a new
  one (reproducible: the sequence is seeded with 0).
* Softmax subtracted the maximum of the whole batch (a row far below it could underflow to 0/0)
  or nothing at all (overflow); here each row's maximum. Its ``backward(dZ)`` returns ``dZ``
  unchanged, as the classifier notebook's did: every notebook loop hands its final softmax the
  softmax-plus-cross-entropy gradient at the logits, ``(Z - T) / N``, so passing it through is
  the exact gradient there. (The small-framework article multiplied it by ``Z * (1 - Z)`` as
  well, a second, diagonal-only Jacobian; an exact Jacobian product would be as wrong in those
  loops: 91.2 % against 92.5 % after three epochs on 6000 MNIST images.) fastnet's models fuse a
  final ``Softmax`` with their loss and refuse one anywhere else; for an exact softmax layer use
  :class:`fastnet.layers.Softmax`.
* ``np.exp(-x)`` in the sigmoids overflowed for large negative inputs; not here.
* Logs of probabilities are clamped instead of taking ``log(0)``.
* The small-framework article's ``NeuralNetwork`` sent ``(output - y) / N`` back as the gradient
  of every loss. For ``"mse"`` over ``K`` outputs the gradient is ``2 * (output - y) / (N * K)``:
  with one output, as in its XOR demo, twice the article's, so the same ``learning_rate`` takes
  steps twice as large and the demo converges sooner (its loss at epoch 100 is 0.236 here, 0.248
  there). For the other losses see :class:`NeuralNetwork`.
* The 1-D convolution notebook's output-size function had an operator-precedence bug; ``N_OUT``
  and fastnet's ``Conv1d`` use ``(L + 2*padding - dilation*(K-1) - 1) // stride + 1``. Its
  convolution layers fixed the output length at ``L - 2`` (so stride and padding did nothing),
  indexed the weights by output position in the multi-channel forward, which also filled only
  its first two outputs (the rest stayed 0) and read the global ``b`` instead of ``self.B``,
  and summed the weight gradient over two positions only; here every ``stride``/``padding`` is
  honoured, every output computed and the gradients are exact (its worked examples, where
  those bugs do not show, come out the same). Its multi-channel classes call
  ``N_OUT(stride, padding, self.W, self.A)``, filter and input swapped, which its precedence
  bug happened to answer with 2 on the worked example; ``N_OUT`` here computes the length the
  arguments ask for, and refuses a filter longer than the padded input (``ValueError``).

``fit``'s ``lr`` was unused in the notebook (each layer brings its optimizer); here it trains the
layers built without one, with ``SGD(lr)``.
"""
import inspect
import math
from collections import OrderedDict

import numpy as np

from .. import _checks as check
from .. import functional as F
from .. import layers as _layers
from .. import optimizers as _optimizers
from .._serialize import register
from ..data import GetMiniBatch, numerical_gradient, one_hot
from .. import initializers as _init
from ..losses import SoftmaxCrossEntropy
from .._model_checks import check_finite
from ..model import INFERENCE_BATCH, Classifier, _labels, check_pass_through

__all__ = [
    "GetMiniBatch", "FC", "SGD", "AdaGrad", "Sigmoid", "ReLU", "Tanh", "Softmax",
    "SimpleInitializer", "XavierInitializer", "HeInitializer",
    "ScratchDeepNeuralNetrowkClassifier", "ScratchDeepNeuralNetworkClassifier",
    "CNN_FC", "CNN2dim_FC", "CNN_mnist_FC", "N_OUT",
    "Affine", "Relu", "SoftmaxWithLoss", "TwoLayerNet", "cross_entropy_error",
    "numerical_gradient", "one_hot",
    "softmax", "softmax_cross_entropy", "sigmoid", "dsigmoid_du",
    "Linear", "NeuralNetwork", "mse", "cross_entropy", "binary_cross_entropy",
]


class _Float64ByDefault:
    """The notebooks' initializers return ``np.random.randn``'s float64; code that calls
    ``initializer.W(n1, n2)`` itself (the notebooks' own ``FC``) computes its gradients in
    float64 and would hit a dtype mismatch in the optimizer with fastnet's float32 default. A
    layer passes its own dtype, so this changes nothing for layers."""

    def weights(self, shape, fan_in, dtype=None):
        return super().weights(shape, fan_in, np.float64 if dtype is None else dtype)

    def b(self, n_nodes2, dtype=None):
        return super().b(n_nodes2, np.float64 if dtype is None else dtype)


class SimpleInitializer(_Float64ByDefault, _init.SimpleInitializer):
    """:class:`fastnet.initializers.SimpleInitializer` (``sigma`` fixed), float64 by default.

    ``B(n_nodes2)`` gives the 1-D convolution notebook's random biases ``sigma * randn(n)``
    (``b(n_nodes2)``, the classifier notebook's, gives zeros).
    """

    def B(self, n_nodes2, dtype=None):
        return self.weights((n_nodes2,), 1, np.float64 if dtype is None else dtype)


class XavierInitializer(_Float64ByDefault, _init.XavierInitializer):
    """:class:`fastnet.initializers.XavierInitializer` (``1/sqrt(n_in)``), float64 by default."""


class HeInitializer(_Float64ByDefault, _init.HeInitializer):
    """:class:`fastnet.initializers.HeInitializer` (``sqrt(2/n_in)``), float64 by default."""

#: dtype of the parameters the compat classes create, unless given ``dtype=``.
COMPAT_DTYPE = np.float64


def _dtype(owner, dtype):
    """``dtype`` (default :data:`COMPAT_DTYPE`) as a native float32/float64 type."""
    return _layers._layer_dtype(owner, COMPAT_DTYPE if dtype is None else dtype)


def _float(a):
    """An array for the column-layout functions: float32/float64 keep their dtype, the rest
    (float16 too, which the kernels do not take) float64."""
    a = np.asarray(a)
    return a if a.dtype.type in check.FLOAT_DTYPES else check.cast_real("fastnet.compat",
                                                                        "input", a, np.float64)


# --- the scratch classifier notebook -------------------------------------------------------------

class _UpdateReturnsTheLayer:
    """``update(layer)`` returns the layer, as the 1-D convolution notebook's layers expect
    (``self = self.optimizer.update(self)``); the classifier notebook ignores the result."""

    update_adds_bookkeeping = True        # fit's unchecked steps may use it (_dense_chain)

    def update(self, params, grads=None):
        super().update(params, grads)
        return params if grads is None else None


@register("compat.SGD")
class SGD(_UpdateReturnsTheLayer, _optimizers.SGD):
    """:class:`fastnet.optimizers.SGD`; ``update(layer)`` returns the layer."""


@register("compat.AdaGrad")
class AdaGrad(_UpdateReturnsTheLayer, _optimizers.AdaGrad):
    """The notebook's ``AdaGrad(lr)``: :class:`fastnet.optimizers.AdaGrad` with its ``eps=1e-8``;
    ``update(layer)`` returns the layer.

    Both weights and biases accumulate ``h += g*g`` (the notebook overwrote the bias
    accumulator with ``hb = db*db``; fixed).
    """

    #: Its ``update`` records the layer: ``fit``'s unchecked steps leave the record as the
    #: epoch's first step set it, which is the one every step leaves (see _dense_chain).
    update_adds_bookkeeping = True

    def __init__(self, lr=0.01, eps=1e-8):
        super().__init__(lr, eps)
        self._last_layer = None

    def update(self, params, grads=None):
        result = super().update(params, grads)
        self._last_layer = params if grads is None else None
        return result

    def _param(self, key):
        """The parameter that the notebook's ``hW``/``hb`` name: the last updated layer's weight
        or bias; after a load, before any update, the one weight (2-D or more) or bias (1-D)
        whose state was restored (the notebook's optimizers serve one layer each); else None."""
        if self._last_layer is None:
            found = [param for param, state in self.held_states()
                     if (param.ndim == 1) == (key == "b") and "h" in state]
            return found[0] if len(found) == 1 else None
        params = _optimizers.layer_arrays(self._last_layer)[0]
        return params.get(key, params.get(key.upper()))

    def _h(self, key):
        """The squared-gradient sum of :meth:`_param` (0 before its first update, the
        notebook's starting value)."""
        param = self._param(key)
        return 0 if param is None else self.state_of(param).get("h", 0)

    def _set_h(self, key, value):
        """``hW = 0`` (the notebook's ``__init__`` and its reset) zeroes the sum; an array of the
        parameter's shape replaces it. Before the first update only 0 (the sums start there)."""
        param = self._param(key)
        zero = np.ndim(value) == 0 and not isinstance(value, (str, bytes)) and value == 0
        if param is None:
            if zero:
                return
            raise ValueError(f"AdaGrad.h{key}: set it to 0 before the first update (there is "
                             f"no layer yet whose state it would be); got {value!r:.60}")
        self.set_state(param, {"h": np.zeros_like(param) if zero else value})

    hW = property(lambda self: self._h("W"), lambda self, value: self._set_h("W", value))
    hb = property(lambda self: self._h("b"), lambda self, value: self._set_h("b", value))


class _LearningRateIgnored:
    """Accept ``backward(dout, learning_rate)`` as the small-framework article calls it. The
    second argument must be a number: another notebook's softmax takes ``backward(scores,
    targets)`` and returns ``scores - targets``, and an array here would otherwise be ignored
    silently, giving the Jacobian product instead."""

    @_layers.input_grad_optional
    def backward(self, dout, learning_rate=None):
        if learning_rate is not None and np.ndim(learning_rate) != 0:
            raise TypeError(
                f"{type(self).__name__}.backward(dout, learning_rate): learning_rate (ignored "
                f"here) must be a number; got an array of shape {np.shape(learning_rate)}. For "
                f"softmax-plus-loss gradients (scores - targets) use SoftmaxWithLoss")
        return super().backward(dout)


class _NotebookActivation:
    """Non-float input (integers, bools, lists of ints) is taken as float64, NumPy's result in
    the notebooks, not as fastnet's default float32 (``Sigmoid().forward(20)``'s gradient was 0
    in float32); float32/float64 input keeps its dtype, float16 becomes float64.

    ``forward`` keeps the notebooks' names for what it saw: the input as ``a`` and ``A``, the
    output as ``Z`` and ``out`` (None before the first call, and when an ``FC`` runs the
    activation fused inside its own kernel).
    """

    a = A = Z = out = None

    def forward(self, x):
        x = _float(x)
        y = super().forward(x)
        self.a = self.A = x
        self.Z = self.out = y
        return y


@register("compat.ReLU")
class ReLU(_NotebookActivation, _LearningRateIgnored, _layers.ReLU):
    """:class:`fastnet.layers.ReLU`; ``backward(dout, learning_rate=None)``; ``mask`` is
    "Deep Learning from Scratch"'s ``x <= 0`` of the last input."""

    # Its methods compute ReLU's function (they only add the notebooks' bookkeeping): an FC may
    # still run it inside its kernel (a subclass that changes the methods is fused only when it
    # says so, see fastnet.layers._fused_name).
    fused_name = "relu"

    @property
    def mask(self):
        return None if self.a is None else self.a <= 0


@register("compat.Sigmoid")
class Sigmoid(_NotebookActivation, _LearningRateIgnored, _layers.Sigmoid):
    """:class:`fastnet.layers.Sigmoid` (never overflows); ``backward(dout, learning_rate=None)``."""

    fused_name = "sigmoid"         # as ReLU's


@register("compat.Tanh")
class Tanh(_NotebookActivation, _LearningRateIgnored, _layers.Tanh):
    """:class:`fastnet.layers.Tanh`; ``backward(dout, learning_rate=None)``."""

    fused_name = "tanh"            # as ReLU's


@register("compat.Softmax")
class Softmax(_NotebookActivation, _LearningRateIgnored, _layers.Softmax):
    """The notebooks' final softmax: :class:`fastnet.layers.Softmax`'s forward (row-wise maximum
    subtracted), and their ``backward``.

    ``backward(dZ)`` (or ``backward(dZ, learning_rate)``, the small-framework article's call)
    returns ``dZ`` unchanged, cast to the forward output's dtype: the notebooks' loops pass the
    softmax-plus-cross-entropy gradient at the logits, ``(Z - T) / N``, which needs no Jacobian
    (module docstring). ``backward(Z, Y)`` with one-hot rows ``Y`` is the 1-D convolution
    notebook's: the gradient of the summed cross-entropy at the logits, ``Z - Y`` for its
    probabilities ``Z``, with that mean cross-entropy in ``cross_entropy``.

    fastnet's models fuse it with their softmax cross-entropy when it ends the network, and
    refuse it anywhere else (``passes_gradient_through``), where its gradient would be wrong.
    """

    fused_name = "softmax"         # as ReLU's: a model's loss may still take its place
    passes_gradient_through = True

    def backward(self, dout, learning_rate=None):
        if learning_rate is None or np.ndim(learning_rate) == 0:
            check.need_forward(self, getattr(self, "_y", None))
            dZ = _layers._cast(dout, self._y.dtype, self)
            if dZ.shape != self._y.shape:
                raise ValueError(f"Softmax.backward(dZ): dZ has shape {dZ.shape}; the forward "
                                 f"output has shape {self._y.shape}")
            return dZ
        Z = _float(dout)
        Y = check.cast_real("Softmax.backward(Z, Y)", "Y", learning_rate, Z.dtype)
        if Y.shape != Z.shape or Z.ndim != 2:
            raise ValueError(f"Softmax.backward(Z, Y): Z (probabilities) and Y (one-hot rows) "
                             f"must be (N, C) of one shape; got {Z.shape} and {Y.shape}")
        self.cross_entropy = float(-np.mean(np.sum(
            Y * np.log(np.maximum(Z, np.finfo(Z.dtype).tiny)), axis=1)))
        return Z - Y


#: "Deep Learning from Scratch"'s name.
Relu = ReLU


@register("compat.FC")
class FC(_layers.FC):
    """The notebook's ``FC(n_nodes1, n_nodes2, initializer, optimizer, activation)``:
    :class:`fastnet.layers.FC` with float64 parameters by default (see the module docstring).

    ``backward(dA)`` returns ``dZ``, stores ``dW``, ``db`` (exact gradients of the mean loss; the
    notebook divided by the batch size a second time) and lets the optimizer update ``W``, ``b``.
    """

    def __init__(self, n_nodes1, n_nodes2, initializer=None, optimizer=None, activation=None,
                 dtype=None):
        super().__init__(n_nodes1, n_nodes2, initializer, optimizer, activation,
                         _dtype("FC", dtype))
        if activation is None and isinstance(initializer, SimpleInitializer):
            # The 1-D convolution notebook's four-argument FC drew its bias from
            # initializer.B, right after the weights (the classifier notebook's FC always has
            # an activation and a zero bias). A notebook's own initializer with B but no b
            # already gave its B.
            self.b = initializer.B(self.n_nodes2, self.dtype)

    # The 1-D convolution notebook's names: B for the bias, LW and LB for the gradients, z and
    # a for the last input and output.
    B = property(lambda self: self.b, lambda self, value: setattr(self, "b", value),
                 doc="The bias ``b``.")
    LW = property(lambda self: self.dW, doc="``dW``.")
    LB = property(lambda self: self.db, doc="``db``.")
    z = property(lambda self: self.X, doc="The last input (as rows).")
    a = property(lambda self: getattr(self, "_y", None),
                 doc="The last output, before an activation object (after a fused one).")


@register("compat.ScratchDeepNeuralNetrowkClassifier")
class ScratchDeepNeuralNetrowkClassifier(Classifier):
    """The notebook's classifier: ``ScratchDeepNeuralNetrowkClassifier(layers, verbose=False)``.

    A :class:`fastnet.model.Classifier` (softmax cross-entropy; a final ``Softmax`` activation is
    fused with the loss). ``y`` may be one-hot rows, as in the notebook, or integer labels.
    After ``fit``: ``log_loss``, ``log_loss_val``, ``log_acc``, ``log_acc_val`` per epoch;
    ``loss_val``, the last epoch's validation loss (None without validation data); ``true_y``
    and ``pred_y``, the last epoch's training labels and predicted classes (int64), in the order
    its mini-batches ran. ``loss`` is the loss object (the notebook kept the last epoch's summed
    batch losses there; here the epoch means are in ``log_loss``). ``verbose=True`` prints the
    notebook's line after each epoch, ``epoch:  0 loss:   0.251 acc:0.936`` (epochs from 0; the
    training loss and accuracy of the epoch). The loss printed is ``log_loss``'s mean
    cross-entropy per sample, where the notebook printed its class-averaged batch losses summed
    and divided by ``n_batch``.
    """

    true_y = pred_y = None

    def __init__(self, layers, verbose=False):
        super().__init__(layers)
        self.verbose = verbose

    @property
    def loss_val(self):
        """The last epoch's validation loss, ``log_loss_val[-1]``; None without one."""
        return self.log_loss_val[-1] if self.log_loss_val else None

    def fit(self, X, y, X_val=None, y_val=None, n_epoch=50, n_batch=20, lr=0.01):
        """Train ``n_epoch`` epochs of mini-batches of ``n_batch``; returns ``self``. With
        ``n_epoch=0``, as the notebook's, nothing trains and the logs are empty.

        ``lr`` trains, with plain SGD, the layers that have no optimizer of their own (in the
        notebook it was unused: each layer brings its optimizer).

        Called again, ``fit`` continues from the current weights and optimizer state with fresh
        logs, as the notebook's did; its epochs see the same batch orders as the first call's
        (each call's sequence of permutations is seeded with 0).
        """
        op = f"{type(self).__name__}.fit"     # the errors name the notebook's arguments
        n_epoch = check.integer(op, "n_epoch", n_epoch, low=0)
        n_batch = check.integer(op, "n_batch", n_batch, low=1)
        verbose = check.flag(op, "verbose", self.verbose)
        self.optimizer = SGD(check.real(op, "lr", lr, low=0))   # an error names fit, not SGD
        if n_epoch == 0:               # the notebook's loop ran no epoch: empty logs, no update
            self.history = {name: [] for m in self._metrics() for name in (m, "val_" + m)}
            return self
        return super().fit(X, y, X_val, y_val, epochs=n_epoch, batch_size=n_batch, seed=0,
                           callbacks=[_NotebookEpochLine()] if verbose else None)

    _recording = None             # while fit runs its training batches: (labels, predictions)

    def _fit_epoch(self, *args, **kwargs):
        self._recording = recording = ([], [])
        try:
            super()._fit_epoch(*args, **kwargs)
        finally:
            self._recording = None
        self.true_y, self.pred_y = (np.concatenate(part) for part in recording)

    def evaluate(self, X, y, batch_size=INFERENCE_BATCH):
        """As :meth:`Classifier.evaluate` (its batches are not training batches)."""
        recording, self._recording = self._recording, None    # not the validation batches
        try:
            return super().evaluate(X, y, batch_size)
        finally:
            self._recording = recording

    def _batch_correct(self, out, y):
        """As :class:`Classifier`'s, keeping a training batch's labels and predictions for
        ``true_y`` and ``pred_y``."""
        labels, pred = _labels(y), out.argmax(axis=1)
        if self._recording is not None:
            self._recording[0].append(labels.astype(np.int64))
            self._recording[1].append(pred)
        return int(np.count_nonzero(pred == labels))

    def get_config(self):
        return {"layers": self.layers, "verbose": self.verbose}


class _NotebookEpochLine:
    """The notebook classifier's ``verbose`` line, after each epoch."""

    def on_epoch_end(self, epoch, logs):
        print(f"epoch:{epoch:>3} loss:{logs['loss']:>8,.3f} acc:{logs['acc']:>5,.3f}", flush=True)


#: The correct spelling.
ScratchDeepNeuralNetworkClassifier = ScratchDeepNeuralNetrowkClassifier


# --- the 1-D convolution notebook ---------------------------------------------------------------

def N_OUT(stride, padding, X, W):
    """Output length of a 1-D convolution of ``X`` (``(L,)``, or ``(..., L)``) with the filter
    ``W`` (``(K,)``, or ``(..., K)``): ``(L + 2*padding - K) // stride + 1``."""
    X, W = np.asarray(X), np.asarray(W)
    if X.ndim == 0 or W.ndim == 0:
        raise ValueError(f"N_OUT: X and W must be arrays with the length last; got shapes "
                         f"{X.shape} and {W.shape}")
    L, K = X.shape[-1], W.shape[-1]
    # Only a valid integer padding can tell a swap; any other goes to conv1d_output_length's
    # checks, which name it (padding=None once failed here as a bare int + None TypeError).
    valid_int = isinstance(padding, (int, np.integer)) and not isinstance(padding, bool)
    if valid_int and padding >= 0 and K > L + 2 * padding:
        # The conv notebook's own CNN2dim_FC.backward calls N_OUT(stride, padding, self.W,
        # self.A), swapped: its N_OUT read other axes and gave the right length by chance (an
        # audit's finding; the message was conv1d_output_length's, naming neither).
        raise ValueError(f"N_OUT(stride, padding, X, W): the filter W (shape {W.shape}, length "
                         f"{K}) is longer than the input X (shape {X.shape}, length {L}) with "
                         f"padding {padding}, so there is no output; if X and W are swapped, "
                         f"the input comes first")
    return F.conv1d_output_length(L, K, stride, padding)


class CNN_FC(_layers.Layer):
    """The 1-D convolution notebook's layer ``(w, b, optimizer, stride, padding)``, for its three
    shapes: ``CNN_FC`` one channel (``w (K,)``, ``b (1,)``, ``x (L,)`` -> ``(L_out,)``),
    ``CNN2dim_FC`` one sample (``w (C_out, C_in, K)``, ``b (C_out,)``, ``x (C_in, L)`` ->
    ``(C_out, L_out)``) and ``CNN_mnist_FC`` a batch (``x (N, C_in, L)`` -> ``(N, C_out,
    L_out)``), computed by :func:`fastnet.functional.conv1d`.

    ``W`` and ``B`` are float copies of ``w`` and ``b`` (float64 unless ``w`` is float32);
    ``backward(dA)`` stores ``LW``, ``LB`` (summed over the batch, as the notebook's) and ``dZ``,
    lets the optimizer update ``W``, ``B`` and returns ``dZ``. Input is cast to ``W``'s dtype.
    """

    def __init__(self, w, b, optimizer=None, stride=1, padding=0):
        op = type(self).__name__
        w = np.asarray(w)
        dtype = w.dtype if w.dtype.type in check.FLOAT_DTYPES else np.float64
        self.W = check.cast_real(op, "w", w, dtype).copy()
        self.B = check.cast_real(op, "b", np.atleast_1d(b), dtype).copy()
        if self.W.ndim not in (1, 3) or self.B.shape != self._filters().shape[:1]:
            raise ValueError(f"{op}: w must be (K,) with b (1,), or (C_out, C_in, K) with b "
                             f"(C_out,); got w {self.W.shape} and b {self.B.shape}")
        self.optimizer = _layers.check_optimizer(op, optimizer)
        self.stride = check.integer(op, "stride", stride, low=1)
        self.padding = check.integer(op, "padding", padding, low=0)
        self.A = self.LW = self.LB = self.dZ = None

    @property
    def n_out(self):
        """The output length of the last forward (the notebook's ``backward`` kept it as
        ``self.n_out``); None before the first."""
        if self.A is None:
            return None
        return N_OUT(self.stride, self.padding, self.A, self._filters())

    @property
    def params(self):
        return {"W": self.W, "B": self.B}

    @property
    def grads(self):
        return {"W": self.LW, "B": self.LB}

    def _filters(self):
        return self.W.reshape(1, 1, -1) if self.W.ndim == 1 else self.W

    def _batch(self, a, name):
        """``a`` as ``(N, C, L)``: one channel for 1-D filters, one sample for 2-D ``a``."""
        single = self.W.ndim == 1
        if a.ndim not in ((1,) if single else (2, 3)):
            raise ValueError(f"{type(self).__name__}: {name} has shape {a.shape}; with w of "
                             f"shape {self.W.shape} it must be "
                             f"{'(L,)' if single else '(C, L) or (N, C, L)'}")
        return a.reshape((1, 1) + a.shape) if single else a.reshape((-1,) + a.shape[-2:])

    def forward(self, X):
        """The convolution of ``X`` (see the class docstring for the shapes)."""
        self.A = _layers._cast(X, self.W.dtype, input_of=self)
        y = F.conv1d(self._batch(self.A, "X"), self._filters(), self.B, stride=self.stride,
                     padding=self.padding)
        return y.reshape(y.shape[2:] if self.W.ndim == 1 else self.A.shape[:-2] + y.shape[1:])

    def backward(self, dA):
        """``dZ`` (the input's shape); ``LW``, ``LB`` summed over the batch."""
        check.need_forward(self, self.A)
        dA = _layers._cast(dA, self.W.dtype, self)
        # Checked here, in the caller's shapes (conv1d_backward would name the (N, C, L) ones)
        expected = ((self.n_out,) if self.W.ndim == 1
                    else self.A.shape[:-2] + (self.W.shape[0], self.n_out))
        if dA.shape != expected:
            raise ValueError(f"{type(self).__name__}.backward: dA has shape {dA.shape}; expected "
                             f"{expected}, the shape of the last forward's output")
        dZ, LW, LB = F.conv1d_backward(self._batch(dA, "dA"), self._batch(self.A, "X"),
                                       self._filters(), stride=self.stride,
                                       padding=self.padding)
        self.dZ, self.LW, self.LB = dZ.reshape(self.A.shape), LW.reshape(self.W.shape), LB
        if self.optimizer is not None:
            self.optimizer.update(self)
        return self.dZ


class CNN2dim_FC(CNN_FC):
    """The notebook's name for the one-sample version, ``x (C_in, L)``: :class:`CNN_FC`, whose
    errors then say ``CNN2dim_FC``."""


class CNN_mnist_FC(CNN_FC):
    """The notebook's name for the batch version, ``x (N, C_in, L)``: :class:`CNN_FC`, whose
    errors then say ``CNN_mnist_FC``."""


# --- "Deep Learning from Scratch" ----------------------------------------------------------------

class Affine(_layers.WeightsAndBias):
    """``Affine(W, b)``: ``x @ W + b`` on the arrays you give (not copied, so updating them in
    place, e.g. ``params[key] -= lr * grads[key]``, updates the layer).

    Computes in ``W``'s dtype; input of shape ``(N, ...)`` is flattened and ``backward``
    restores its shape. ``backward`` never writes into ``dout``.
    """

    def __init__(self, W, b):
        # The wrong kind of array is a TypeError, the right kind of the wrong shape a ValueError.
        if not isinstance(W, np.ndarray) or W.dtype.type not in check.FLOAT_DTYPES:
            raise TypeError(f"Affine: W must be a 2-D float32/float64 array; got "
                            f"{getattr(W, 'dtype', type(W).__name__)} "
                            f"{getattr(W, 'shape', '')}")
        if W.ndim != 2:
            raise ValueError(f"Affine: W must be a 2-D array (n_in, n_out); got shape {W.shape}")
        if not isinstance(b, np.ndarray) or b.dtype != W.dtype:
            raise TypeError(f"Affine: b must be a {W.dtype} array of shape ({W.shape[1]},); "
                            f"got {getattr(b, 'dtype', type(b).__name__)} "
                            f"{getattr(b, 'shape', '')}")
        if b.shape != (W.shape[1],):
            raise ValueError(f"Affine: b must have shape ({W.shape[1]},) for W of shape "
                             f"{W.shape}; got {b.shape}")
        self.W, self.b = W, b
        self.x = self.original_x_shape = self.dW = self.db = None

    def forward(self, x):
        x = _layers._cast(x, self.W.dtype, input_of=self)
        rows = x.reshape(len(x), math.prod(x.shape[1:])) if x.ndim > 2 else x
        out = F.dense(rows, self.W, self.b)
        self.x, self.original_x_shape = rows, x.shape     # once the call succeeded
        return out

    def backward(self, dout):
        check.need_forward(self, self.x)
        dout = _layers._cast(dout, self.W.dtype, self)
        dx, self.dW, self.db = F.dense_backward(dout, self.x, self.W)
        return dx.reshape(self.original_x_shape)


class SoftmaxWithLoss:
    """Softmax then mean cross-entropy, fused: ``forward(x, t) -> loss``, ``backward(dout=1)``
    returns ``dout * (y - t) / N``. ``t``: one-hot rows or integer labels.

    Attributes ``loss``, ``y`` (the probabilities) and ``t`` as in the book; no ``1e-7`` is added
    inside the log (the loss is computed from the logits and is never ``log(0)``).

    One sample ``x (C,)`` is taken as a batch of one, as the book's ``softmax`` and
    ``cross_entropy_error`` take it, with ``t`` its one-hot row ``(C,)`` or its label: ``y`` and
    the gradient are then ``(C,)`` too, and the gradient is ``dout * (y - t)`` (the book's
    ``backward`` divides a one-sample gradient by ``t.shape[0]``, the number of classes).
    """

    def __init__(self):
        self.loss = self.y = self.t = None
        self._loss = SoftmaxCrossEntropy()
        self._one_sample = False

    def forward(self, x, t):
        x = _float(x)
        one_sample = x.ndim == 1
        labels = t
        if one_sample:                    # as cross_entropy_error: a one-hot row, or a label
            labels = np.asarray(t)
            if labels.size not in (1, x.size):
                raise ValueError(f"SoftmaxWithLoss.forward: x of shape {x.shape} is one sample; "
                                 f"t must be its one-hot row {x.shape} or its label, got shape "
                                 f"{labels.shape}")
            labels = labels.reshape(1, -1) if labels.size == x.size else labels.reshape(-1)
            x = x.reshape(1, -1)
        self.loss = self._loss.forward(x, labels)
        self._one_sample = one_sample
        self.y, self.t = self._loss.probs, t
        if one_sample:
            self.y = self.y.reshape(-1)
        return self.loss

    def backward(self, dout=1):
        dx = self._loss.backward(dout)
        return dx.reshape(-1) if self._one_sample else dx


class TwoLayerNet:
    """"Deep Learning from Scratch"'s ``TwoLayerNet(input_size, hidden_size, output_size,
    weight_init_std=0.01)``: Affine, Relu, Affine, SoftmaxWithLoss.

    ``params`` holds ``W1``, ``b1``, ``W2``, ``b2`` (float64 unless ``dtype`` is given, drawn as
    ``weight_init_std * np.random.randn(...)``); ``gradient`` returns a dict of plain arrays of
    the same dtype, so the book's loop ``params[key] -= lr * grads[key]`` works. Labels ``t`` are
    one-hot rows or integer labels.
    """

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01, dtype=None):
        init = SimpleInitializer(weight_init_std)
        dtype = _dtype("TwoLayerNet", dtype)
        self.params = {
            "W1": init.W(input_size, hidden_size, dtype), "b1": init.b(hidden_size, dtype),
            "W2": init.W(hidden_size, output_size, dtype), "b2": init.b(output_size, dtype),
        }
        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(self.params["W1"], self.params["b1"])
        self.layers["Relu1"] = Relu()
        self.layers["Affine2"] = Affine(self.params["W2"], self.params["b2"])
        self.lastLayer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.lastLayer.forward(self.predict(x), t)

    def accuracy(self, x, t):
        """Fraction of rows whose arg-max score is the label (computed in chunks of rows)."""
        op = "TwoLayerNet.accuracy"
        x, t = np.asarray(x), np.asarray(t)
        C = self.params["W2"].shape[1]
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(f"{op}: x must be a non-empty batch (N, features) or (N, ...) "
                             f"images; got shape {x.shape}")
        x = x.reshape(len(x), -1)              # as Affine flattens (N, 1, 28, 28) images
        if t.ndim == 2 and t.shape[1] == C:
            t = np.argmax(t, axis=1)
        elif t.ndim != 1:
            raise ValueError(f"{op}: t must be labels (N,) or one-hot rows (N, {C}); got shape "
                             f"{t.shape}")
        if t.dtype.kind == "f" and np.all(t == np.floor(t)):
            t = t.astype(np.int64)                  # whole-number labels stored as floats
        if t.dtype.kind not in "iu":
            raise ValueError(f"{op}: t must be integer labels (or one-hot rows); got {t.dtype}")
        if t.size and not 0 <= t.min() <= t.max() < C:
            raise ValueError(f"{op}: labels t run from {t.min()} to {t.max()}; expected 0..{C - 1}")
        if len(t) != len(x):
            raise ValueError(f"{op}: x has {len(x)} rows but t has {len(t)}")
        correct = 0
        for p0 in range(0, len(x), INFERENCE_BATCH):
            y = self.predict(x[p0:p0 + INFERENCE_BATCH])
            correct += int(np.count_nonzero(np.argmax(y, axis=1) == t[p0:p0 + INFERENCE_BATCH]))
        return correct / float(len(x))

    def numerical_gradient(self, x, t):
        """Central differences of ``loss(x, t)`` for every parameter (slow; for checking)."""
        loss = lambda _: self.loss(x, t)                           # noqa: E731
        return {key: numerical_gradient(loss, self.params[key]).astype(self.params[key].dtype)
                for key in ("W1", "b1", "W2", "b2")}

    def gradient(self, x, t):
        """Backpropagated gradients of ``loss(x, t)``: dict ``W1``, ``b1``, ``W2``, ``b2``."""
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        return {"W1": self.layers["Affine1"].dW, "b1": self.layers["Affine1"].db,
                "W2": self.layers["Affine2"].dW, "b2": self.layers["Affine2"].db}


def cross_entropy_error(y, t):
    """Mean over rows of ``-log(y[t])`` for probabilities ``y (N, C)`` and integer labels or
    one-hot rows ``t``; the log is clamped (the book adds 1e-7 instead)."""
    y = _float(y)
    t = np.asarray(t)
    if y.ndim not in (1, 2) or y.size == 0:
        raise ValueError(f"cross_entropy_error: y has shape {y.shape}; expected the "
                         f"probabilities of one sample (C,) or of a batch (N, C), not empty")
    if y.ndim == 1:                       # one sample: its one-hot row, or its label
        y = y.reshape(1, -1)
        t = t.reshape(1, -1) if t.size == y.size else t.reshape(-1)
    if t.shape == y.shape:                # one-hot rows (the book tests sizes, which confuses
        t = t.argmax(axis=1)              # N labels with N x 1 one-hot rows)
    t = check.class_target("cross_entropy_error", t, y, "y")     # labels in range, or an error
    p = y[np.arange(len(y)), t]
    return float(-np.sum(np.log(np.maximum(p, np.finfo(y.dtype).tiny))) / len(y))


# --- column layout (features x batch) ------------------------------------------------------------

def softmax(U, reduce_axis=0):
    """Softmax along ``reduce_axis`` (axis 0, the classes, in column layout); each column's
    maximum is subtracted, so it never overflows."""
    U = _float(U)
    if U.ndim == 0:
        raise ValueError("softmax: U has shape (); expected an array with the classes along "
                         "reduce_axis")
    if not isinstance(reduce_axis, (int, np.integer)) or isinstance(reduce_axis, bool) \
            or not -U.ndim <= reduce_axis < U.ndim:
        raise ValueError(f"softmax: reduce_axis={reduce_axis!r} is not an axis of U (shape "
                         f"{U.shape}); expected an integer in [{-U.ndim}, {U.ndim - 1}]")
    if U.shape[reduce_axis] == 0:
        raise ValueError(f"softmax: U has shape {U.shape}: no classes along "
                         f"reduce_axis={reduce_axis}")
    moved = np.moveaxis(U, reduce_axis, -1)
    return np.moveaxis(F.softmax(moved), -1, reduce_axis)


def softmax_cross_entropy(D, Y):
    """Cross-entropy ``-sum(D * log(Y))`` summed over every element (classes and batch), for
    targets ``D`` and probabilities ``Y`` of the same shape. A 0-d result; about 230 for 100
    uniform predictions over 10 classes. ``Y`` is clipped to ``[1e-8, 1 - 1e-8]`` first, as the
    exercise's own template does (in float32 the upper bound rounds to 1): a confidently wrong
    column costs ``-log(1e-8)`` = 18.4, and the learning curves read as the notebook's
    (clamping only at the smallest float gave 708)."""
    Y = _float(Y)
    D = check.cast_real("softmax_cross_entropy", "D", D, Y.dtype)
    if D.shape != Y.shape:
        raise ValueError(f"softmax_cross_entropy: D has shape {D.shape} but Y has shape "
                         f"{Y.shape}; they must match")
    epsilon = 1e-8
    return -np.sum(D * np.log(np.clip(Y, epsilon, 1 - epsilon)))


def _scalar_if_0d(a):
    """A 0-d result as a NumPy scalar, as NumPy's element-wise functions give for a number."""
    return a[()] if a.ndim == 0 else a


def sigmoid(U):
    """``1 / (1 + exp(-U))`` element-wise, without overflow (a number gives a number)."""
    return _scalar_if_0d(F.sigmoid(_float(U)))


def dsigmoid_du(U):
    """Derivative of :func:`sigmoid`: ``sigmoid(U) * (1 - sigmoid(U))`` (a number gives a
    number)."""
    s = F.sigmoid(_float(U))
    return _scalar_if_0d(F.sigmoid_backward(np.ones_like(s), s))


# --- the small-framework article -----------------------------------------------------------------

class Linear(_layers.Layer):
    """``Linear(input_size, output_size)``: ``x @ weights + bias``, trained by plain SGD inside
    ``backward(output_error, learning_rate)``.

    ``weights`` ``(input_size, output_size)`` are ``randn * sqrt(1 / input_size)`` from NumPy's
    global random state (float64 unless ``dtype`` is given); ``bias`` is ``(1, output_size)``.
    """

    def __init__(self, input_size, output_size, dtype=None):
        self.dtype = _dtype("Linear", dtype)
        self.weights = XavierInitializer().W(input_size, output_size, self.dtype)
        self.b = np.zeros(output_size, dtype=self.dtype)
        self.inputs = self.output = self.dW = self.db = None

    @property
    def bias(self):
        """``b`` as the article's ``(1, output_size)`` row (a view: in-place updates reach ``b``;
        assigning copies the values into ``b``)."""
        return self.b.reshape(1, -1)

    @bias.setter
    def bias(self, value):
        value = check.cast_real("Linear", "bias", value, self.dtype)
        if value.size != self.b.size or value.ndim > 2:
            raise ValueError(f"Linear: bias must have shape (1, {self.b.size}) or "
                             f"({self.b.size},); got {value.shape}")
        self.b[...] = value.reshape(self.b.shape)

    @property
    def params(self):
        return {"W": self.weights, "b": self.b}

    @property
    def grads(self):
        return {"W": self.dW, "b": self.db}

    def forward(self, x):
        self.inputs = _layers._cast(x, self.dtype, input_of=self)
        self.output = F.dense(self.inputs, self.weights, self.b)
        return self.output

    def backward(self, output_error, learning_rate=None):
        """Returns the input error (computed with the weights before the update), then updates
        ``weights -= lr * inputs.T @ output_error`` and ``bias -= lr * sum(output_error)``.

        Without ``learning_rate`` nothing is updated: the gradients stay in ``dW``, ``db`` (and
        ``grads``) for an optimizer, e.g. a fastnet model's ``fit``."""
        check.need_forward(self, self.inputs)
        input_error, self.dW, self.db = F.dense_backward(
            _layers._cast(output_error, self.dtype, self), self.inputs, self.weights)
        if learning_rate is not None:
            F.sgd_update_(self.weights, self.dW, learning_rate)
            F.sgd_update_(self.b, self.db, learning_rate)
        return input_error


def _pair(op, y_true, y_pred):
    y_pred = _float(y_pred)
    if y_pred.ndim == 0:
        raise ValueError(f"{op}: y_pred has shape (); expected samples along the first axis")
    if y_pred.size == 0:
        raise ValueError(f"{op}: y_pred is empty (shape {y_pred.shape}); a mean needs samples")
    y_true = check.cast_real(op, "y_true", y_true, y_pred.dtype)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{op}: y_true has shape {y_true.shape} but y_pred has shape "
                         f"{y_pred.shape}; they must be the same")
    return y_true, y_pred


def mse(y_true, y_pred):
    """Mean squared error over all elements."""
    y_true, y_pred = _pair("mse", y_true, y_pred)
    return float(F.mse(y_pred, y_true))


def cross_entropy(y_true, y_pred):
    """``-sum(y_true * log(y_pred)) / N`` for probability rows (log clamped)."""
    y_true, y_pred = _pair("cross_entropy", y_true, y_pred)
    tiny = np.finfo(y_pred.dtype).tiny
    return float(-np.sum(y_true * np.log(np.maximum(y_pred, tiny))) / len(y_true))


def binary_cross_entropy(y_true, y_pred):
    """``-sum(t*log(p) + (1-t)*log(1-p)) / N`` (summed over outputs, averaged over samples;
    logs clamped at -100)."""
    y_true, y_pred = _pair("binary_cross_entropy", y_true, y_pred)
    return float(F.binary_cross_entropy(y_pred, y_true)) * (y_pred.size / len(y_pred))


_LOSSES = {"mse": mse, "cross_entropy": cross_entropy,
           "binary_cross_entropy": binary_cross_entropy}


def _output_gradient(loss, y, output):
    """d loss / d output for the article's losses (not fused)."""
    N = len(output)
    if loss == "mse":
        return F.mse_backward(output, y)
    tiny = np.finfo(output.dtype).tiny
    if loss == "cross_entropy":
        return -y / np.maximum(output, tiny) / N
    return (output - y) / np.maximum(output * (1 - output), 1e-12) / N


def _check_article_layer(i, layer):
    """``layer`` has ``forward(x)`` and the article's ``backward(error, learning_rate)``."""
    backward = getattr(layer, "backward", None)
    if not (callable(getattr(layer, "forward", None)) and callable(backward)):
        raise TypeError(f"NeuralNetwork: layer {i} ({type(layer).__name__}) needs forward and "
                        f"backward methods")
    try:
        signature = inspect.signature(backward)
    except (TypeError, ValueError):                # a builtin: nothing to ask
        return
    try:
        signature.bind(None, None)
    except TypeError:
        raise TypeError(f"NeuralNetwork: layer {i} ({type(layer).__name__}) has backward"
                        f"{signature}; this network calls layer.backward(error, learning_rate), "
                        f"as the article's layers take it: use fastnet.compat's layers (Linear, "
                        f"ReLU, Sigmoid, Tanh, Softmax)") from None


class NeuralNetwork:
    """``NeuralNetwork(layers, loss, learning_rate, debug_loss_interval=100)`` with
    ``forward(x)``, ``backward(y, output)`` and ``train(X, y, epochs)``.

    ``loss`` is ``"mse"``, ``"cross_entropy"`` or ``"binary_cross_entropy"``. ``backward`` sends
    the exact gradient of that loss through the layers, calling ``layer.backward(error,
    learning_rate)``. A final ``Softmax`` with ``"cross_entropy"`` (or ``Sigmoid`` with
    ``"binary_cross_entropy"``) is fused with the loss: the layer before it gets the gradient
    with respect to its own output, ``(output - y) / N`` for binary cross-entropy and
    ``(output * y.sum(1) - y) / N`` for cross-entropy (``(output - y) / N`` when every target row
    sums to 1). (The article sent ``(output - y) / N`` for every loss and through every layer, so
    its softmax and sigmoid multiplied it by ``y*(1-y)`` again, and its MSE step was half the
    MSE gradient.)

    ``train`` prints ``Epoch <i>, Loss: <value>`` every ``debug_loss_interval`` epochs and keeps
    every epoch's loss in ``losses``.
    """

    def __init__(self, layers, loss, learning_rate, debug_loss_interval=100):
        if not (isinstance(loss, str) and loss in _LOSSES):
            raise ValueError(f"NeuralNetwork: loss={loss!r}; choose one of {sorted(_LOSSES)}")
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("NeuralNetwork: layers is empty; give at least one layer")
        for i, layer in enumerate(self.layers):
            _check_article_layer(i, layer)
        self.loss = loss
        self.loss_func = _LOSSES[loss]
        self.learning_rate = check.real("NeuralNetwork", "learning_rate", learning_rate, low=0)
        self.debug_loss_interval = check.integer("NeuralNetwork", "debug_loss_interval",
                                                 debug_loss_interval, low=1)
        self.losses = []

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def _fused(self):
        """Whether the final layer is fused with the loss: fastnet's Softmax or Sigmoid (or a
        subclass that keeps their methods), or the article's own class of that name (whose
        diagonal-only backward would be wrong here)."""
        last = self.layers[-1]
        wanted = {"cross_entropy": (_layers.Softmax, "softmax"),
                  "binary_cross_entropy": (_layers.Sigmoid, "sigmoid")}.get(self.loss)
        if wanted is None:
            return False
        cls, name = wanted
        if isinstance(last, cls):      # a subclass with a temperature, say, runs as it is
            return _layers._fused_name(last) == name
        return type(last).__name__ == cls.__name__

    def backward(self, y, output):
        output = check.float_array("NeuralNetwork.backward", "output", output)
        y = check.cast_real("NeuralNetwork.backward", "y", y, output.dtype)
        layers = self.layers
        fused = self._fused()
        check_pass_through("NeuralNetwork.backward", ((f"{i}.", layer) for i, layer in
                                                      enumerate(layers)),
                           layers[-1] if fused else None)
        if fused:
            if self.loss == "cross_entropy":
                # d/dz of -sum(y*log softmax(z)) is p*sum(y) - y: p - y only for rows summing
                # to 1 (multi-hot or all-zero target rows got a wrong gradient)
                error = (output * y.sum(axis=-1, keepdims=True) - y) / len(output)
            else:
                error = (output - y) / len(output)
            layers = layers[:-1]
        else:
            error = _output_gradient(self.loss, y, output)
        for layer in reversed(layers):
            error = layer.backward(error, self.learning_rate)

    def train(self, X, y, epochs):
        epochs = check.integer("NeuralNetwork.train", "epochs", epochs, low=0)
        for name, data in (("X", X), ("y", y)):   # else a NaN in the data reads as divergence
            data = np.asarray(data)
            if data.dtype.kind == "f" and data.ndim:
                check_finite("NeuralNetwork.train", name, data, None)
        for epoch in range(epochs):
            output = self.forward(X)
            loss = self.loss_func(y, output)
            if not np.isfinite(loss):
                raise FloatingPointError(f"training diverged at epoch {epoch}: loss is {loss}; "
                                         f"lower the learning rate")
            self.backward(y, output)
            self.losses.append(loss)
            if epoch % self.debug_loss_interval == 0:
                print(f"Epoch {epoch}, Loss: {loss}")
        # Each loss is checked before its update; the last update is checked here.
        for i, layer in enumerate(self.layers):
            for name, p in getattr(layer, "params", {}).items():
                if not np.isfinite(p).all():
                    raise FloatingPointError(
                        f"training diverged at epoch {epochs - 1}: after the last update, layer "
                        f"{i}'s {name} holds NaN or inf; lower the learning rate")
        return self
