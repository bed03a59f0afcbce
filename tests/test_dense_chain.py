"""``fit``'s unchecked steps for chains of FC layers (``fastnet._dense_chain``).

Each model is trained twice from the same start: once as ``fit`` trains it (an epoch's first step
checked, the rest through the chain) and once with a per-batch callback that does nothing, which
keeps every step checked. Everything must come out bit for bit the same, and the chain must
really have run (or not, where it must not).
"""
import copy
import types

import numpy as np
import pytest

import fastnet
from fastnet import _dense_chain
from fastnet.kernels import load
from fastnet.initializers import XavierInitializer
from fastnet.layers import FC, Conv1d, Flatten, ReLU, Softmax, Tanh
from fastnet.losses import MeanSquaredError
from fastnet.model import Callback, Classifier, Sequential
from fastnet.optimizers import SGD, AdaGrad, Adam, Momentum, RMSProp


class Checked(Callback):
    """A per-batch callback: fit then checks every step."""

    def on_batch_end(self, batch, loss, n_samples):
        pass


@pytest.fixture
def chain_steps(monkeypatch):
    """Counts the batches that went through the chain."""
    calls = []
    forward = _dense_chain.DenseChain.forward

    def counting(self, X):
        calls.append(len(X))
        return forward(self, X)
    monkeypatch.setattr(_dense_chain.DenseChain, "forward", counting)
    return calls


def data(n=70, shape=(12,), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + shape), rng.integers(0, classes, n)


def layer_state(model):
    """Every array a training step leaves in the layers and optimizers."""
    state = []
    for _, layer in model.named_leaves():
        for name in ("W", "b", "dW", "db", "X", "_y"):
            state.append((name, getattr(layer, name, None)))
        state.append(("_shape", getattr(layer, "_shape", None)))
    optimizers = {id(o): o for o in [model.optimizer] + [getattr(layer, "optimizer", None)
                                                          for _, layer in model.named_leaves()]
                  if o is not None}
    for opt in optimizers.values():
        for param, slots in sorted(opt.held_states(), key=lambda e: e[0].shape):
            state.extend(sorted(slots.items()))
    return state


def assert_same_training(model, X, y, callbacks=(), **fit_args):
    checked = copy.deepcopy(model)
    model.fit(X, y, callbacks=list(callbacks), **fit_args)
    checked.fit(X, y, callbacks=list(callbacks) + [Checked()], **fit_args)
    assert model.history == checked.history
    got, want = layer_state(model), layer_state(checked)
    assert [name for name, _ in got] == [name for name, _ in want]
    for (name, a), (_, b) in zip(got, want):
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape, name
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert a == b, name


def mlp_with_model_optimizer(dtype, optimizer):
    return Classifier([FC(12, 9, activation="relu", dtype=dtype),
                       FC(9, 7, activation="tanh", dtype=dtype),
                       FC(7, 4, activation="sigmoid", dtype=dtype),
                       FC(4, 4, dtype=dtype)], optimizer=optimizer)


@pytest.mark.parametrize("optimizer", [SGD(0.1), Momentum(0.05), SGD(0.05, 0.9, nesterov=True),
                                       AdaGrad(0.05), RMSProp(0.01), Adam(0.01)],
                         ids=lambda o: repr(o))
def test_chain_trains_as_the_checked_steps(backend, dtype, chain_steps, optimizer):
    X, y = data()
    assert_same_training(mlp_with_model_optimizer(dtype, copy.deepcopy(optimizer)), X, y,
                         epochs=2, batch_size=16, seed=3)
    # 5 batches per epoch, the first checked: the last of them has 6 samples
    assert chain_steps == [16, 16, 16, 6] * 2


def test_chain_with_notebook_layers_and_their_own_optimizers(backend, dtype, chain_steps):
    """The notebooks' style: each FC with its own optimizer, a final Softmax() activation
    (fused with the loss), images flattened by the first layer, data in float64 for float32
    layers and in Fortran order (every batch a strided view that the layer copies)."""
    X, y = data(50, (3, 4))
    X = np.asfortranarray(X)
    model = Classifier([FC(12, 8, optimizer=AdaGrad(0.05), activation=ReLU(), dtype=dtype),
                        FC(8, 5, optimizer=Adam(0.01), activation=Tanh(), dtype=dtype),
                        FC(5, 4, optimizer=SGD(0.1), activation=Softmax(), dtype=dtype)])
    assert_same_training(model, X, y, epochs=2, batch_size=10, shuffle=False)
    assert chain_steps == [10] * 8
    assert model.layers[0].X.dtype == dtype and model.layers[0]._shape == (10, 3, 4)


def test_chain_under_a_softmax_layer_and_a_mixed_dtype_chain(backend, chain_steps):
    X, y = data(40)
    model = Sequential([FC(12, 6, activation="relu", dtype=np.float32),
                        FC(6, 4, dtype=np.float64), Softmax()],
                       loss="softmax_cross_entropy", optimizer=AdaGrad(0.05))
    assert_same_training(model, X, y, epochs=1, batch_size=8)
    assert chain_steps == [8] * 4


def test_chain_with_another_loss(backend, dtype, chain_steps):
    """The loss is outside the chain: its forward and backward run as in a checked step. The
    data are read-only, and not shuffled: the first layer gets read-only views as batches."""
    X, y = data(30)
    X = X.astype(dtype)
    X.setflags(write=False)
    model = Sequential([FC(12, 5, activation="sigmoid", dtype=dtype), FC(5, 4, dtype=dtype)],
                       loss=MeanSquaredError(), optimizer=Momentum(0.05))
    assert_same_training(model, X, np.eye(4)[y], epochs=2, batch_size=10, shuffle=False)
    assert chain_steps == [10] * 4


class MyFC(FC):
    """Changes no step method: chained."""

    def __repr__(self):
        return "MyFC()"


class MyAdaGrad(AdaGrad):
    """Changes no step method: chained."""


class FrozenBias(FC):
    """Exposes W alone to the optimizer: the checked step never updates b."""

    @property
    def params(self):
        return {"W": self.W}

    @property
    def grads(self):
        return {"W": self.dW}


class ClippedSGD(SGD):
    def _step(self, param, grad, state, ops=None):
        super()._step(param, np.clip(grad, -0.01, 0.01), state)


def test_subclasses_that_change_no_step_method_are_chained(backend, chain_steps):
    """Subclasses that override no method of the step (fastnet.compat's FC overrides only its
    constructor) take the chain, and train as the checked steps do."""
    from fastnet import compat
    X, y = data(40)
    model = Classifier([MyFC(12, 6, activation="relu"),
                        compat.FC(6, 4, compat.HeInitializer(), None, None)],
                       optimizer=MyAdaGrad(0.05))
    assert_same_training(model, X, y, epochs=2, batch_size=10)
    assert chain_steps == [10, 10, 10] * 2


def _float32_lr():
    opt = SGD(0.1)
    opt.lr = np.float32(0.1)          # the functional API would turn it into a float
    return opt


@pytest.mark.parametrize("build, fit_args", [
    (lambda: Classifier([FrozenBias(12, 4)], optimizer=SGD(0.1)), {}),
    (lambda: Classifier([FC(12, 4)], optimizer=ClippedSGD(0.1)), {}),
    (lambda: Classifier([FC(12, 4)], optimizer=_float32_lr()), {}),
    (lambda: Classifier([FC(12, 6, activation=Softmax()), FC(6, 4)], optimizer=SGD(0.1)), {}),
    (lambda: Classifier([FC(12, 6), ReLU(), FC(6, 4)], optimizer=SGD(0.1)), {}),
    (lambda: Classifier([FC(12, 4)], optimizer=SGD(0.1)), {"callbacks": [Checked()]}),
    (lambda: Classifier([FC(12, 4)], optimizer=SGD(0.1)), {"augment": lambda x, rng: x}),
], ids=["FC subclass with its own params", "optimizer subclass with its own _step",
        "float32 lr", "activation object inside", "activation layer", "per-batch callback",
        "augment"])
def test_what_the_chain_does_not_take(chain_steps, build, fit_args):
    X, y = data(40)
    model = build()
    model.fit(X, y, epochs=1, batch_size=10, **fit_args)
    assert chain_steps == []


def test_a_method_replaced_on_the_layer_keeps_the_checked_steps(chain_steps):
    X, y = data(40)
    model = Classifier([FC(12, 4)], optimizer=SGD(0.1))
    seen = []
    layer = model.layers[0]
    original = layer._forward_logits

    def spy(X, dense=None):
        seen.append(len(X))
        return original(X, dense)
    layer._forward_logits = spy
    model.fit(X, y, epochs=1, batch_size=10)
    assert chain_steps == [] and seen == [10] * 5        # fit's dry run, then four steps


def test_an_epoch_end_callback_that_breaks_the_model_is_caught_by_the_checked_step():
    """The chain relies on the step before it: each epoch starts checked again."""
    class Break(Callback):
        def on_epoch_end(self, epoch, logs):
            model.layers[0].W = np.ones((5, 4), np.float32)    # the wrong shape for FC(12, 4)
    X, y = data(40)
    model = Classifier([FC(12, 4)], optimizer=SGD(0.1))
    with pytest.raises(ValueError, match="W"):
        model.fit(X, y, epochs=2, batch_size=10, callbacks=[Break()])


def test_chain_at_the_notebooks_sizes(backend, chain_steps):
    """784 -> 400 -> 10 at batch 20: the shapes where the Numba backend's products run its own
    micro-kernels; read-only data, as np.load(mmap_mode="r") gives."""
    X, y = data(60, (784,), classes=10)
    X.setflags(write=False)
    model = Classifier([FC(784, 400, activation="relu", dtype=np.float64),
                        FC(400, 10, dtype=np.float64)], optimizer=AdaGrad(0.01))
    assert_same_training(model, X, y, epochs=1, batch_size=20, shuffle=False)
    assert chain_steps == [20, 20]


@pytest.fixture
def spent_steps(monkeypatch):
    """``keep_gradients`` of each chained backward (False: AdaGrad's weight gradients spent)."""
    calls = []
    backward = _dense_chain.DenseChain.backward

    def recording(self, dout, keep_gradients=True, X_next=None):
        calls.append(keep_gradients)
        return backward(self, dout, keep_gradients, X_next)
    monkeypatch.setattr(_dense_chain.DenseChain, "backward", recording)
    return calls


class ReadsGradients(Callback):
    """Reads the first layer's weight gradient after every step."""
    on_batch_end_reads_only = True

    def __init__(self, model):
        self.model, self.seen = model, []

    def on_batch_end(self, batch, loss, n_samples):
        self.seen.append(self.model.layers[0].dW is not None)


def notebook_mlp(dtype, optimizer):
    return Classifier([FC(784, 400, activation="relu", dtype=dtype),
                       FC(400, 30, activation="relu", dtype=dtype),
                       FC(30, 10, dtype=dtype)], optimizer=optimizer)


def test_adagrad_weight_gradients_are_spent_but_at_an_epochs_last_step(backend, dtype,
                                                                        spent_steps):
    """The chain's AdaGrad layers take ``dense_backward_adagrad_`` (the weight gradient spent on
    the step at once) at every chained step but an epoch's last, which leaves every layer its
    gradients as the checked step does; everything else bit for bit the same."""
    X, y = data(100, (784,), classes=10)
    assert_same_training(notebook_mlp(dtype, AdaGrad(0.01)), X, y, epochs=2, batch_size=20,
                         seed=1)
    assert spent_steps == [False, False, False, True] * 2


def test_the_next_forward_of_the_first_layer_is_multiplied_by_its_update(backend, dtype,
                                                                         monkeypatch):
    """A chained step that spends AdaGrad's gradients also multiplies the next batch by the
    first layer's updated weights (``dense_backward_adagrad_ahead_``), and the next forward
    adds only the bias: the forwards of steps 3 to 5 of each epoch (the last batch short), bit
    for bit the checked steps."""
    trusted = load(backend).trusted                # fastnet.backend.kernels() of the backend
    bias_act_ = trusted.dense_bias_act_
    ahead = []
    monkeypatch.setattr(trusted, "dense_bias_act_",
                        lambda xw, b, act: ahead.append(len(xw)) or bias_act_(xw, b, act))
    X, y = data(90, (784,), classes=10)
    assert_same_training(notebook_mlp(dtype, AdaGrad(0.01)), X, y, epochs=2, batch_size=20,
                         seed=1)
    assert ahead == [20, 20, 10] * 2


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("width", [260, 512, 1030])
def test_fit_with_adagrad_at_input_widths_whose_update_ends_two_slabs_in_a_block(backend, width,
                                                                               threads):
    """The fused update multiplies the next batch slab by slab; at these widths one row block
    of a part ends two slabs (``test_dense_adagrad.TWO_SLAB_SHAPES``). An audit found the
    second one left out: ``fit`` then trained on a wrong first layer, 10-50 % off after an
    epoch, with no error (MNIST's 784 was not affected)."""
    X, y = data(70, (width,), classes=10)
    hidden = 200 if width == 260 else 128           # (the fused path from 0.5 M multiply-adds)
    model = Classifier([FC(width, hidden, activation="relu"),
                        FC(hidden, 10)], optimizer=AdaGrad(0.01))
    with fastnet.set_num_threads(threads):              # (capped at the usable CPUs)
        assert_same_training(model, X, y, epochs=1, batch_size=10 if width == 260 else 20)


def test_a_callback_that_reads_between_steps_sees_every_gradient(backend, spent_steps):
    X, y = data(60, (784,), classes=10)
    model = notebook_mlp(np.float64, AdaGrad(0.01))
    reader = ReadsGradients(model)
    model.fit(X, y, epochs=1, batch_size=20, callbacks=[reader])
    assert spent_steps == [True, True] and reader.seen == [True] * 3


@pytest.mark.parametrize("kind", ["uint8", "big-endian", "float16", "int64 images"])
def test_chain_casts_every_batch_as_the_layer_does(backend, chain_steps, kind):
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (36, 12)).astype(np.uint8)
    X = {"uint8": X, "big-endian": (X / 255).astype(">f8"), "float16": (X / 255).astype(np.float16),
         "int64 images": X.astype(np.int64).reshape(36, 3, 4)}[kind]
    y = rng.integers(0, 4, 36)
    model = Classifier([FC(12, 6, activation="relu", dtype=np.float32), FC(6, 4, dtype=np.float32)],
                       optimizer=SGD(1e-3))
    assert_same_training(model, X, y, epochs=1, batch_size=12)
    assert chain_steps == [12, 12]
    assert model.layers[0].X.dtype == np.float32


# --- what keeps every step checked (found by probing) ------------------------------------------

class Proxy:
    """A callback object that forwards every hook to another one."""

    def __init__(self, callback):
        self.callback = callback

    def __getattr__(self, name):
        return getattr(self.callback, name)


class EpochsOnly(Callback):
    def on_epoch_end(self, epoch, logs):
        pass


@pytest.mark.parametrize("callback, chained", [
    (Proxy(Checked()), False),          # on_batch_end reached through __getattr__
    (Proxy(EpochsOnly()), True),        # Callback's own do-nothing hook, through a proxy
    (EpochsOnly(), True),               # Callback's own do-nothing hook
    (type("Plain", (), {"on_epoch_end": lambda self, epoch, logs: None})(), True),
])
def test_which_callbacks_keep_every_step_checked(chain_steps, callback, chained):
    X, y = data(40)
    Classifier([FC(12, 4)], optimizer=SGD(0.1)).fit(X, y, epochs=1, batch_size=10,
                                                     callbacks=[callback])
    assert chain_steps == ([10, 10, 10] if chained else [])


class Scaled(Classifier):
    def forward(self, x):
        return super().forward(np.asarray(x) / 255.0)


def _matrix_weights():
    model = Classifier([FC(12, 4, dtype=np.float64)], optimizer=SGD(0.1))
    model.layers[0].W = np.asmatrix(model.layers[0].W)     # fit views it as an ndarray
    return model


def _instance_method(where, name, change):
    """A model whose ``where`` has its method ``name`` replaced on the instance by
    ``change(method, self, *args)`` (bound with MethodType, so that deepcopy rebinds it)."""
    def build():
        model = Classifier([FC(12, 6, activation="relu"), FC(6, 4)], optimizer=Adam(0.01))
        obj = {"model": model, "layer": model.layers[1], "optimizer": model.optimizer}[where]
        method = getattr(type(obj), name)
        setattr(obj, name, types.MethodType(lambda self, *args: change(method, self, *args), obj))
        return model
    return build


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")       # np.matrix
@pytest.mark.filterwarnings("ignore:.*applies a softmax twice")     # fit's warning, as it should
@pytest.mark.parametrize("build", [
    lambda: Scaled([FC(12, 9, activation="relu"), FC(9, 4)], optimizer=SGD(0.1)),
    _instance_method("model", "forward", lambda f, self, x: f(self, np.asarray(x) * 0.5)),
    _instance_method("layer", "_backward",
                     lambda f, self, d, need: f(self, np.clip(d, -0.01, 0.01), need)),
    _instance_method("optimizer", "update", lambda f, self, *args: None),     # frozen
    _matrix_weights,
    lambda: Classifier([FC(12, 9, activation="relu"), FC(9, 4, activation=Softmax()), Softmax()],
                       optimizer=SGD(0.1)),
], ids=["model subclass", "model method", "layer method", "optimizer method", "matrix W",
        "softmax activation, then a softmax layer"])
def test_what_else_keeps_every_step_checked(backend, chain_steps, build):
    X, y = data(50)
    model = build()
    assert_same_training(model, X, y, epochs=2, batch_size=10)
    assert chain_steps == []
    assert 0 <= model.history["acc"][-1] <= 1


def test_an_error_in_the_chain_names_the_layer_as_the_checked_step_does(backend):
    """A float64 layer whose output overflows the float32 layer after it, in the 4th batch."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 12)), rng.integers(0, 4, 40)
    X[35] = 1e30
    model = Classifier([FC(12, 6, dtype=np.float64), FC(6, 4, dtype=np.float32)],
                       optimizer=SGD(0.0))
    model.layers[0].W[...] = 1e10
    with pytest.raises(ValueError, match=r"Classifier: layer 1 FC\(6, 4\) failed on its input "
                                         r"of shape \(10, 6\), the output of layer 0 FC\(12, 6\)"):
        model.fit(X, y, epochs=1, batch_size=10, shuffle=False)


# --- second probe: class patches, sharing made between epochs, state after an error ------------

def _patch_class_update(monkeypatch):
    real = SGD.update

    def decayed(self, params, grads=None):        # weight decay, patched on the class
        for p in (params.params if grads is None else params).values():
            p *= 0.99
        return real(self, params, grads)
    monkeypatch.setattr(SGD, "update", decayed)


def _wrap_functional_dense(monkeypatch):
    from fastnet import functional
    real = functional.dense
    monkeypatch.setattr(functional, "dense", lambda *args: real(*args) * 0.5)


@pytest.mark.parametrize("patch", [_patch_class_update, _wrap_functional_dense])
def test_a_patched_class_or_function_keeps_every_step_checked(backend, chain_steps, monkeypatch,
                                                              patch):
    X, y = data(40)
    model = Classifier([FC(12, 6, activation="relu"), FC(6, 4)], optimizer=SGD(0.05))
    patch(monkeypatch)
    assert_same_training(model, X, y, epochs=2, batch_size=10)
    assert chain_steps == []


class Tie(Callback):
    """Ties two layers' optimizer state (or weights) after the first epoch."""

    def __init__(self, what):
        self.what = what

    def on_train_begin(self, model, epochs, n_batches):
        self.model = model

    def on_epoch_end(self, epoch, logs):
        layers, opt = self.model.layers, self.model.optimizer
        if self.what == "state":
            opt.state_of(layers[2].W)["h"] = opt.state_of(layers[1].W)["h"]
        else:
            layers[2].W = layers[1].W


@pytest.mark.parametrize("what", ["state", "weights"])
def test_arrays_tied_between_epochs_keep_every_step_checked(backend, chain_steps, what):
    X, y = data(60, (16,), classes=5)
    model = Classifier([FC(16, 16, activation="relu", dtype=np.float64) for _ in range(3)]
                       + [FC(16, 5, dtype=np.float64)], optimizer=AdaGrad(0.01))
    assert_same_training(model, X, y, epochs=3, batch_size=20, callbacks=[Tie(what)])
    assert chain_steps == [20, 20]          # the first epoch's, before the tie


def test_an_error_in_the_backward_leaves_the_model_as_the_checked_step_does(backend):
    """The model's optimizer updates once the whole backward has succeeded: a gradient that
    overflows the float32 first layer in the last batch leaves every parameter as it was."""
    X = np.ones((21, 16), np.float32)
    y = np.zeros(21, np.int64)
    model = Classifier([FC(16, 8, activation="relu", dtype=np.float32),
                        FC(8, 4, dtype=np.float64)], optimizer=SGD(0.1))
    model.layers[0].W[...] = 0.0
    model.layers[0].b[...] = 1.0
    model.layers[1].W[...] = np.array([3e38, -3e38, 3e38, -3e38])
    model.layers[1].b[...] = [0.0, 1.0, 2.0, 3.0]
    results = []
    for callbacks in ([], [Checked()]):
        m = copy.deepcopy(model)
        with pytest.raises(ValueError, match="FC.backward: the incoming gradient dout"):
            m.fit(X, y, epochs=1, batch_size=20, shuffle=False, callbacks=callbacks)
        results.append([p.copy() for p in m.params.values()])
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)


# --- fastnet.compat's classifier and read-only per-batch callbacks ------------------------------

def _notebook_classifier(dtype, optimizer):
    from fastnet import compat
    return compat.ScratchDeepNeuralNetrowkClassifier([
        compat.FC(12, 8, compat.HeInitializer(seed=0), optimizer(0.05), compat.ReLU(), dtype),
        compat.FC(8, 6, compat.HeInitializer(seed=1), None, compat.ReLU(), dtype),
        compat.FC(6, 4, compat.SimpleInitializer(0.01, seed=2), optimizer(0.05),
                  compat.Softmax(), dtype)])


@pytest.mark.parametrize("optimizer", ["AdaGrad", "SGD"])
def test_the_notebook_classifier_with_compat_optimizers_is_chained(backend, dtype, chain_steps,
                                                                   optimizer):
    """compat's optimizers override ``update`` (it returns the layer; AdaGrad's records it for
    ``hW``/``hb``) and say it adds only bookkeeping: the notebook classifier's ``fit`` takes the
    chain, and ends bit for bit where the checked steps end, its ``hW``/``hb`` too."""
    from fastnet import compat
    X, y = data(50)
    model = _notebook_classifier(dtype, getattr(compat, optimizer))
    checked = copy.deepcopy(model)
    model.fit(X, np.eye(4)[y], n_epoch=2, n_batch=10, lr=0.02)
    assert chain_steps == [10] * 8
    checked.optimizer = compat.SGD(0.02)             # as the notebook classifier's fit sets it
    Classifier.fit(checked, X, np.eye(4)[y], epochs=2, batch_size=10, seed=0,
                   callbacks=[Checked()])
    assert model.history == checked.history
    for (name, a), (_, b) in zip(layer_state(model), layer_state(checked)):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=name)
    for got, want in zip(model.layers, checked.layers):
        if hasattr(got.optimizer, "hW"):
            np.testing.assert_array_equal(got.optimizer.hW, want.optimizer.hW)
            np.testing.assert_array_equal(got.optimizer.hb, want.optimizer.hb)


def test_a_compat_optimizer_subclass_with_its_own_update_keeps_every_step_checked(chain_steps):
    from fastnet import compat

    class Frozen(compat.AdaGrad):                    # says nothing about its update: checked
        def update(self, params, grads=None):
            return params

    X, y = data(40)
    model = _notebook_classifier(np.float64, Frozen)
    W = model.layers[0].W.copy()
    model.fit(X, np.eye(4)[y], n_epoch=1, n_batch=10)
    assert chain_steps == []
    np.testing.assert_array_equal(model.layers[0].W, W)


class ReadsOnly(Checked):
    on_batch_end_reads_only = True


@pytest.mark.parametrize("callback, chained", [
    (ReadsOnly(), True),
    (type("Truthy", (Checked,), {"on_batch_end_reads_only": "yes"})(), False),   # True only
], ids=["reads only", "truthy"])
def test_a_per_batch_callback_that_only_reads_keeps_the_chain(backend, chain_steps, callback,
                                                              chained):
    X, y = data(40)
    model = Classifier([FC(12, 6, activation="relu"), FC(6, 4)], optimizer=AdaGrad(0.05))
    assert_same_training(model, X, y, epochs=1, batch_size=10, callbacks=[callback])
    assert chain_steps == ([10, 10, 10] if chained else [])


def _conv_classifier(dtype):
    return Classifier([Conv1d(1, 3, 3, activation="relu", dtype=dtype), Flatten(),
                       FC(30, 4, dtype=dtype)], optimizer=Adam(0.01))


@pytest.mark.parametrize("build", [
    lambda dtype: Classifier([FC(12, 6, activation="relu", dtype=dtype), FC(6, 4, dtype=dtype)],
                             optimizer=AdaGrad(0.05)),
    _conv_classifier], ids=["chain", "trusted passes"])
@pytest.mark.parametrize("change", ["shorter bias", "longer bias", "float64 W",
                                    "W reshaped in place", "stride", "W read-only in place",
                                    "class swapped"])
def test_a_callback_that_says_it_only_reads_but_changes_the_model_gets_checked_steps(
        backend, build, change):
    """An audit: a callback said it only reads (``on_batch_end_reads_only``) and replaced a
    layer's bias; the unchecked steps handed it to the kernels as it was, and the Numba
    backend read or wrote past its end (a segfault or heap corruption; a shorter bias trained
    silently). ``fit`` now sees the change and checks the rest of the epoch's steps, which
    refuse it clearly (or take it, where it is valid)."""
    X, y = data(40, (1, 12))                  # FC(12, 6) takes (N, 1, 12) too
    model = build(np.float32)
    layer = model.layers[-1] if change != "stride" else model.layers[0]

    def short_gradients(self, *args):         # a weight gradient of 2 values (an audit's)
        dx = type(layer).__mro__[1]._gradients(self, *args)
        self.dW = np.ones(2, self.dtype)
        return dx

    class Liar(Checked):
        on_batch_end_reads_only = True

        def on_batch_end(self, batch, loss, n_samples):
            if batch != 1:
                return
            if change.endswith("bias"):
                layer.b = np.ones(2 if change == "shorter bias" else 1000, np.float32)
            elif change == "float64 W":
                layer.W = layer.W.astype(np.float64)
            elif change == "W reshaped in place":
                layer.W.shape = layer.W.shape[::-1]
            elif change == "W read-only in place":
                layer.W.flags.writeable = False
            elif change == "class swapped":
                layer.__class__ = type("Short" + type(layer).__name__, (type(layer),),
                                       {"_gradients": short_gradients})
            elif isinstance(layer, Conv1d):
                layer.stride = 0
            else:
                layer.W.shape = layer.W.shape[::-1]
    with pytest.raises((ValueError, TypeError), match="training stopped at epoch 1, batch 3"):
        model.fit(X, y, epochs=1, batch_size=10, callbacks=[Liar()])


def test_a_backend_switched_by_a_callback_that_only_reads_runs_the_next_steps(
        backend, chain_steps):
    """An audit: a reads-only callback that switched the backend left the unchecked steps (the
    chain, which holds the backend's kernels) on the old backend until the epoch's end. They
    now end where the backend changes; the checked steps call the current backend's."""
    other = "numpy" if backend == "numba" else "numba"

    class Switch(Checked):
        on_batch_end_reads_only = True

        def on_batch_end(self, batch, loss, n_samples):
            if batch == 0:
                fastnet.set_backend(other)

    X, y = data(40)
    model = Classifier([FC(12, 6, activation="relu"), FC(6, 4)], optimizer=AdaGrad(0.05))
    with fastnet.set_backend(backend):
        model.fit(X, y, epochs=1, batch_size=10, callbacks=[Switch()])
        assert fastnet.get_backend() == other
    assert chain_steps == [] and len(model.history["loss"]) == 1


def test_a_subclass_of_the_schedule_with_a_batch_end_of_its_own_gets_checked_steps():
    """fastnet's learning-rate schedule claims it only sets a valid ``lr``; a subclass with its
    own ``on_batch_end`` inherited the claim, and its steps went unchecked (an audit)."""
    from fastnet.callbacks import per_batch
    from fastnet.train import _LinearDecay

    class Mine(_LinearDecay):
        def on_batch_end(self, batch, loss, n_samples):
            super().on_batch_end(batch, loss, n_samples)

    replaced = _LinearDecay(SGD(0.1), 10)
    replaced.on_batch_end = lambda *args: None
    assert not per_batch([_LinearDecay(SGD(0.1), 10)])
    assert per_batch([Mine(SGD(0.1), 10)]) and per_batch([replaced])


def test_the_command_lines_progress_bar_and_schedule_keep_the_chain():
    from fastnet.callbacks import per_batch
    from fastnet.train import _LinearDecay, _Progress
    assert not per_batch([_Progress(1, 100, quiet=True), _LinearDecay(SGD(0.1), 10)])
    assert per_batch([_Progress(1, 100, quiet=True), Checked()])


def _schedule_and_shifts(model, X, y):
    """``fastnet train``'s way: fastnet's linear learning-rate decay and random shifts."""
    from fastnet.data import random_shift
    from fastnet.train import _LinearDecay
    return {"callbacks": [_LinearDecay(model.optimizer, 2 * -(-len(X) // 16))],
            "augment": random_shift(1, (6, 6), fill=-0.5)}


@pytest.mark.parametrize("build", [lambda dtype: two_view_cnn(dtype, Adam(0.01)),
                                   lambda dtype: Classifier([FC(36, 9, activation="relu",
                                                                   dtype=dtype),
                                                                FC(9, 4, dtype=dtype)],
                                                               optimizer=Adam(0.01))],
                         ids=["CNN", "MLP"])
def test_the_command_lines_schedule_and_shifts_train_as_the_checked_steps(
        backend, dtype, chain_steps, update_steps, trusted_passes, build):
    X, y = data(50, (6, 6))
    model = build(dtype)
    checked = copy.deepcopy(model)
    model.fit(X, y, epochs=2, batch_size=16, seed=3, **_schedule_and_shifts(model, X, y))
    args = _schedule_and_shifts(checked, X, y)
    checked.fit(X, y, epochs=2, batch_size=16, seed=3, augment=args["augment"],
                callbacks=args["callbacks"] + [Checked()])
    assert model.history == checked.history
    for (name, a), (_, b) in zip(layer_state(model), layer_state(checked)):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert model.optimizer.lr == checked.optimizer.lr < 0.01
    if isinstance(model.layers[0], FC):
        assert chain_steps == [16, 16, 2] * 2
    else:
        assert update_steps == [6] * 6 and len(trusted_passes) == 12


def test_a_users_augment_keeps_every_step_checked(chain_steps, update_steps, trusted_passes):
    from fastnet.data import random_shift
    shift = random_shift(1, (6, 6))
    X, y = data(50, (6, 6))
    for model in (two_view_cnn(np.float32, Adam(0.01)),
                  Classifier([FC(36, 4)], optimizer=Adam(0.01))):
        model.fit(X, y, epochs=1, batch_size=16, augment=lambda x, rng: shift(x, rng))
    assert chain_steps == update_steps == trusted_passes == []


# --- the unchecked updates of other models (convolutions, pooling, Concat) ----------------------

@pytest.fixture
def update_steps(monkeypatch):
    """Counts the steps whose updates ran unchecked."""
    calls = []
    call = _dense_chain.UncheckedUpdates.__call__

    def counting(self):
        calls.append(len(self.entries))
        return call(self)
    monkeypatch.setattr(_dense_chain.UncheckedUpdates, "__call__", counting)
    return calls


def two_view_cnn(dtype, optimizer, own=None):
    """A small version of the MNIST CNN: rows and columns as channels, convolved side by side
    (``Concat``), then two FCs; ``own``: an optimizer of its own for the second FC."""
    from fastnet.layers import Conv1d, MaxPool1d, Transpose
    from fastnet.model import Concat

    def view(transpose, seed):
        return ([Transpose()] if transpose else []) + [
            Conv1d(6, 4, 3, padding=1, activation="relu", dtype=dtype,
                   initializer=XavierInitializer(seed=seed)), MaxPool1d(2),
            Conv1d(4, 5, 3, padding=1, dtype=dtype, initializer=XavierInitializer(seed=seed + 1)),
            ReLU()]
    return Classifier([Concat([view(False, 0), view(True, 2)]),
                       FC(2 * 5 * 3, 7, activation="relu", dtype=dtype),
                       FC(7, 4, dtype=dtype, optimizer=own)], optimizer=optimizer)


@pytest.fixture
def trusted_passes(monkeypatch):
    """Counts the forward and backward passes run trusted (``fastnet._trusted``), and checks
    that each ends with the flag as it was."""
    from fastnet import _trusted
    calls = []
    enter, leave = _trusted.steps.__enter__, _trusted.steps.__exit__

    def counting(self):
        calls.append(1)
        return enter(self)

    def restoring(self, *exc):
        leave(self, *exc)
        assert not _trusted.active()
    monkeypatch.setattr(_trusted.steps, "__enter__", counting)
    monkeypatch.setattr(_trusted.steps, "__exit__", restoring)
    return calls


@pytest.mark.parametrize("optimizer", [SGD(0.1), SGD(0.05, 0.9, nesterov=True), AdaGrad(0.05),
                                       RMSProp(0.01), Adam(0.01)], ids=lambda o: repr(o))
def test_a_cnns_updates_run_unchecked_as_the_checked_steps(backend, dtype, chain_steps,
                                                           update_steps, trusted_passes,
                                                           optimizer):
    X, y = data(50, (6, 6))
    model = two_view_cnn(dtype, copy.deepcopy(optimizer))
    assert_same_training(model, X, y, epochs=2, batch_size=16, seed=3)
    # 4 batches per epoch, the first checked; 6 layers updated: 4 convolutions and 2 FCs; a
    # forward and a backward pass trusted in each of the other 3 steps
    assert chain_steps == [] and update_steps == [6] * 6 and len(trusted_passes) == 12


def test_a_layer_with_its_own_optimizer_keeps_its_checked_update(backend, dtype, update_steps):
    X, y = data(50, (6, 6))
    model = two_view_cnn(dtype, Adam(0.01), own=AdaGrad(0.05))
    assert_same_training(model, X, y, epochs=2, batch_size=16, seed=3)
    assert update_steps == [5] * 6


class ClippedConv(Conv1d):
    def _backward(self, dout, need_dx):
        return super()._backward(np.clip(dout, -0.01, 0.01), need_dx)


def _with_clipped_conv(dtype):
    model = two_view_cnn(dtype, SGD(0.1))
    branch = model.layers[0].branches[0]
    old = branch.layers[0]
    branch.layers[0] = ClippedConv(6, 4, 3, padding=1, activation="relu", dtype=dtype)
    branch.layers[0].W[...] = old.W
    return model


def _with_notebook_layer(dtype):
    """A duck-typed layer with parameters of its own, which fastnet cannot vouch for."""
    class Scale:
        def __init__(self):
            self.W, self.b = np.ones(1, dtype), np.zeros(1, dtype)
            self.dW, self.db = np.zeros(1, dtype), np.zeros(1, dtype)

        def forward(self, x):
            self.x = x
            return x * self.W[0] + self.b[0]

        def backward(self, dout):
            self.dW, self.db = np.array([np.sum(dout * self.x)]), np.array([np.sum(dout)])
            return dout * self.W[0]
    model = two_view_cnn(dtype, SGD(0.1))
    model.layers.insert(2, Scale())
    return model


@pytest.mark.parametrize("build", [_with_clipped_conv, _with_notebook_layer],
                         ids=["Conv1d subclass with its own _backward", "notebook layer"])
def test_what_keeps_a_cnns_updates_checked(backend, update_steps, build):
    X, y = data(50, (6, 6))
    model = build(np.float64)
    assert_same_training(model, X, y, epochs=2, batch_size=16, seed=3)
    assert update_steps == []


def test_a_patched_convolution_backward_keeps_the_updates_checked(backend, update_steps,
                                                                   monkeypatch):
    from fastnet import functional
    real = functional.conv1d_backward

    def halved(*args, **kwargs):
        dx, dW, db = real(*args, **kwargs)
        return dx, dW * 0.5, db
    monkeypatch.setattr(functional, "conv1d_backward", halved)
    X, y = data(50, (6, 6))
    assert_same_training(two_view_cnn(np.float64, SGD(0.1)), X, y, epochs=1, batch_size=16)
    assert update_steps == []


@pytest.mark.parametrize("fit_args", [{"callbacks": [Checked()]},
                                      {"augment": lambda x, rng: x}], ids=["callback", "augment"])
def test_a_per_batch_callback_or_augment_keeps_a_cnns_updates_checked(update_steps, fit_args):
    X, y = data(50, (6, 6))
    two_view_cnn(np.float32, SGD(0.1)).fit(X, y, epochs=1, batch_size=16, **fit_args)
    assert update_steps == []


def test_conv_weights_tied_between_epochs_keep_the_updates_checked(backend, update_steps):
    class TieConvs(Callback):
        def on_train_begin(self, model, epochs, n_batches):
            self.model = model

        def on_epoch_end(self, epoch, logs):
            first, second = (branch.layers[-2] for branch in self.model.layers[0].branches)
            second.W = first.W
    X, y = data(50, (6, 6))
    model = two_view_cnn(np.float64, AdaGrad(0.05))
    assert_same_training(model, X, y, epochs=3, batch_size=16, callbacks=[TieConvs()])
    assert update_steps == [6] * 3                 # the first epoch's, before the tie


# --- trusted passes (fastnet._trusted): the layers call the kernels without the checks ----------

def _every_layer_kind(dtype):
    """Every fastnet layer the trusted passes take, in one model (Dropout's draws included)."""
    from fastnet.layers import AvgPool1d, Dropout, Flatten, MaxPool1d, Sigmoid, Transpose
    from fastnet.model import Concat
    return Classifier([
        Concat([[Conv1d(6, 4, 3, padding=(2, 0), stride=2, dtype=dtype,
                        initializer=XavierInitializer(seed=0)), Sigmoid(), MaxPool1d(3, 1, 1)],
                [Transpose(), AvgPool1d(2), Conv1d(6, 5, 2, dilation=2, padding="same",
                                                   activation="tanh", dtype=dtype,
                                                   initializer=XavierInitializer(seed=1))]]),
        Dropout(0.3, seed=4), FC(4 * 3 + 5 * 3, 7, activation=Tanh(), dtype=dtype),
        Flatten(), FC(7, 4, dtype=dtype, activation=Softmax())], optimizer=Adam(0.01))


def test_trusted_passes_over_every_layer_kind(backend, dtype, update_steps, trusted_passes):
    X, y = data(50, (6, 6))
    assert_same_training(_every_layer_kind(dtype), X, y, epochs=2, batch_size=16, seed=3)
    assert update_steps == [4] * 6 and len(trusted_passes) == 12


def _matrix_fc(dtype):
    model = two_view_cnn(dtype, SGD(0.1))
    model.layers[1].W = np.asmatrix(model.layers[1].W)        # fit views it as an ndarray
    return model


def _own_clipped_optimizer(dtype):
    return two_view_cnn(dtype, SGD(0.1), own=ClippedSGD(0.1))


def _user_activation(dtype):
    class Halve:
        def forward(self, x):
            return x * 0.5

        def backward(self, dout):
            return dout * 0.5
    model = two_view_cnn(dtype, SGD(0.1))
    model.layers[1] = FC(30, 7, activation=Halve(), dtype=dtype)
    return model


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")       # np.matrix
@pytest.mark.parametrize("build", [_with_clipped_conv, _with_notebook_layer, _matrix_fc,
                                   _own_clipped_optimizer, _user_activation],
                         ids=["Conv1d subclass", "notebook layer", "matrix W",
                              "a layer's own optimizer of its own rule", "user activation object"])
def test_what_keeps_the_passes_checked(backend, update_steps, trusted_passes, build):
    """User code would run inside the steps, or an array is not plain: the passes and the
    updates stay checked."""
    X, y = data(50, (6, 6))
    assert_same_training(build(np.float64), X, y, epochs=2, batch_size=16, seed=3)
    assert trusted_passes == [] and update_steps == []


@pytest.mark.parametrize("name", ["conv1d", "conv1d_backward", "max_pool1d", "dense",
                                  "dense_backward"])
def test_a_patched_function_keeps_the_passes_checked(backend, trusted_passes, monkeypatch, name):
    from fastnet import functional
    real = getattr(functional, name)
    seen = []

    def spy(*args, **kwargs):
        seen.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(functional, name, spy)
    X, y = data(50, (6, 6))
    two_view_cnn(np.float32, SGD(0.1)).fit(X, y, epochs=1, batch_size=16)
    assert trusted_passes == [] and len(seen) >= 4


def test_an_error_in_a_trusted_pass_reads_as_in_a_checked_one(backend):
    """A float64 first FC whose output overflows the float32 one after it, in the 3rd batch:
    the same error, and the flag off again afterwards."""
    from fastnet import _trusted
    X, y = data(48, (6, 6))
    X[40] = 1e30
    messages = []
    for callbacks in ([], [Checked()]):
        model = two_view_cnn(np.float64, SGD(0.0))
        model.layers[2] = FC(7, 4, dtype=np.float32)
        model.layers[1].W[...] = 1e10
        with pytest.raises(ValueError) as err:
            model.fit(X, y, epochs=1, batch_size=16, shuffle=False, callbacks=callbacks)
        messages.append(str(err.value))
        assert not _trusted.active()
    assert messages[0] == messages[1] and "FC(7, 4)" in messages[0]


def test_the_trusted_flag_belongs_to_one_thread():
    import threading
    from fastnet import _trusted
    seen = []
    with _trusted.steps():
        worker = threading.Thread(target=lambda: seen.append(_trusted.active()))
        worker.start()
        worker.join()
        seen.append(_trusted.active())
        with _trusted.steps():
            pass
        seen.append(_trusted.active())
    assert seen == [False, True, True] and not _trusted.active()


# --- a loss or an optimizer of the user's runs between the steps: they stay checked -----------
# (found by an independent audit: a loss whose gradient changed shape crashed the process in
# the unchecked backward, and an optimizer that rebound a weight to another layout changed the
# results silently)

class NarrowingLoss:
    """A user's loss whose gradient loses its columns from the second batch on."""

    def __init__(self):
        self.calls = 0

    def forward(self, y, t):
        self.y, self.t = y, t
        return float(np.mean((y - t) ** 2))

    def backward(self, dloss=1.0):
        self.calls += 1
        g = (2 * (self.y - self.t) / self.y.size).astype(self.y.dtype)
        return g if self.calls == 1 else np.ascontiguousarray(g[:, :1])


@pytest.mark.parametrize("layers", [
    lambda: [Conv1d(2, 3, 3), Flatten(), FC(42, 300, activation="relu")],
    lambda: [Flatten(), FC(32, 300, activation="relu")],
], ids=["convolution", "FC chain"])
def test_a_users_loss_keeps_every_step_checked(backend, chain_steps, update_steps,
                                               trusted_passes, layers):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((64, 2, 16)), rng.standard_normal((64, 300))
    model = Sequential(layers(), loss=NarrowingLoss(), optimizer=SGD(0.1))
    with pytest.raises(ValueError, match=r"dout has shape \(16, 1\); expected \(16, 300\)"):
        model.fit(X, Y, epochs=2, batch_size=16, shuffle=False)
    assert chain_steps == update_steps == trusted_passes == []


class Fortran:
    """A user's optimizer that rebinds the convolution's weights to Fortran order."""

    def update(self, layer):
        layer.W = layer.W - 0.01 * layer.dW
        if isinstance(layer, Conv1d):
            layer.W = np.asfortranarray(layer.W)
        layer.b = layer.b - 0.01 * layer.db
        return layer


def test_a_users_optimizer_keeps_every_step_checked(backend, update_steps, trusted_passes):
    from fastnet.layers import MaxPool1d
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4, 12)), rng.integers(0, 3, 64)
    model = Classifier([Conv1d(4, 6, 3, padding=1), MaxPool1d(2), Flatten(), FC(36, 3)],
                       optimizer=Fortran())
    checked = copy.deepcopy(model)
    model.fit(X, y, epochs=2, batch_size=8, shuffle=False)
    checked.fit(X, y, epochs=2, batch_size=8, shuffle=False, callbacks=[Checked()])
    assert model.history == checked.history
    for key, param in model.params.items():
        np.testing.assert_array_equal(param, checked.params[key], err_msg=key)
    assert update_steps == trusted_passes == []
