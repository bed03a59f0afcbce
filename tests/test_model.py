"""Models: whole-network gradient checks, training, backends agreeing, save/load, bad input."""
import inspect
import json
import os
import re
import stat
import warnings
import zipfile

import numpy as np
import pytest

import fastnet
from fastnet import compat
from fastnet import model as fm
from fastnet.initializers import HeInitializer, XavierInitializer
from fastnet.layers import (FC, Conv1d, Dropout, Flatten, MaxPool1d, ReLU, Softmax, Tanh)
from fastnet.losses import MeanSquaredError, SoftmaxCrossEntropy
from fastnet.model import Callback, Classifier, Sequential
from fastnet.optimizers import SGD, AdaGrad, Adam
from gradcheck import check

F64 = np.float64


def blobs(n=120, d=6, classes=3, seed=0):
    """A learnable problem: Gaussian blobs around class centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d)) * 3
    y = rng.integers(0, classes, n)
    return rng.standard_normal((n, d)) + centres[y], y


def mlp(dtype=F64, seed=0, optimizer=None, last_activation=None):
    return Classifier([FC(6, 8, HeInitializer(seed=seed), activation="relu", dtype=dtype),
                       FC(8, 5, XavierInitializer(seed=seed + 1), activation=Tanh(), dtype=dtype),
                       FC(5, 3, XavierInitializer(seed=seed + 2), activation=last_activation,
                          dtype=dtype)],
                      optimizer=optimizer)


def convnet(dtype=F64, optimizer=None):
    return Classifier([Conv1d(3, 4, 3, padding=1, initializer=HeInitializer(seed=0), dtype=dtype),
                       ReLU(), MaxPool1d(2),
                       Conv1d(4, 2, 3, initializer=HeInitializer(seed=1), dtype=dtype), Tanh(),
                       Flatten(),
                       FC(2 * 2, 3, XavierInitializer(seed=2), dtype=dtype)],
                      optimizer=optimizer)


def check_model_gradients(model, X, y):
    """The documented recipe: forward + loss, backward, then every parameter and the input
    against central differences."""
    loss = lambda: model.loss.forward(model.forward(X), y)        # noqa: E731
    loss()
    dX = model.backward(model.loss.backward())
    grads = {k: v.copy() for k, v in model.grads.items()}
    assert set(grads) == set(model.params)
    for key, p in model.params.items():
        check(loss, grads[key], p)
    check(loss, dX, X)


# --- gradients of whole models -----------------------------------------------------------

def test_mlp_gradients(backend):
    X, y = blobs(7)
    check_model_gradients(mlp(), X, y)


def test_conv_net_gradients(backend):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 3, 8))
    y = np.array([0, 2, 1])
    check_model_gradients(convnet(), X, y)


def test_mse_sequential_gradients(backend):
    rng = np.random.default_rng(4)
    model = Sequential([FC(4, 6, activation="sigmoid", dtype=F64), FC(6, 2, dtype=F64)], "mse")
    X, T = rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    check_model_gradients(model, X, T)


def test_final_softmax_is_fused_with_the_loss(backend):
    """A network ending in FC(..., Softmax()) or a Softmax layer trains exactly like the same
    network ending in logits."""
    X, y = blobs(40)
    models = [mlp(optimizer=SGD(0.1)), mlp(optimizer=SGD(0.1), last_activation=Softmax()),
              Classifier(mlp().layers + [Softmax()], optimizer=SGD(0.1)),
              # at the end of a nested Sequential too (once softmax-ed twice, silently)
              Classifier([Sequential(mlp().layers + [Softmax()])], optimizer=SGD(0.1)),
              Classifier([Sequential([Sequential(mlp(last_activation=Softmax()).layers)])],
                         optimizer=SGD(0.1))]
    assert_trains_like(models, X, y, rtol=1e-12)


class notebook:
    """Classes as a scratch notebook defines them (outside fastnet)."""

    class Softmax:
        """Its backward passes the fused softmax cross-entropy gradient (scores - targets)
        through unchanged."""

        def forward(self, a):
            e = np.exp(a - a.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)

        def backward(self, dZ):
            return dZ


def test_a_notebooks_own_final_softmax_trains_like_the_fused_one(backend):
    """Once its probabilities were taken for logits: softmax-ed again in the loss, silently
    (validation accuracy 0.59 against 0.87 in a notebook run)."""
    X, y = blobs(40)
    models = [mlp(optimizer=SGD(0.1)),
              mlp(optimizer=SGD(0.1), last_activation=notebook.Softmax()),
              Classifier(mlp().layers + [notebook.Softmax()], optimizer=SGD(0.1))]
    assert_trains_like(models, X, y, rtol=1e-9)     # the loss goes through log(softmax)
    assert models[1].evaluate(X, y)["loss"] == pytest.approx(
        naive_cross_entropy(models[0].decision_function(X), y), rel=1e-9)


def test_a_foreign_softmax_whose_backward_is_not_the_identity_is_refused(backend):
    class jacobian:
        class Softmax(notebook.Softmax):     # a Jacobian-style backward: cannot be fused
            def backward(self, dZ):
                return dZ * 0.5

    class with_targets:
        class Softmax(notebook.Softmax):     # another notebook's backward(Z, Y)
            def backward(self, Z, Y):
                return Z - Y
    X, y = blobs(10)
    for act in (jacobian.Softmax(), with_targets.Softmax()):
        model = mlp(optimizer=SGD(0.1), last_activation=act)
        with pytest.raises(ValueError, match=r"ends in .*Softmax, a softmax from outside fastnet "
                                             r"whose backward\(dZ\) does not return dZ"):
            model.fit(X, y)



def test_a_softmax_the_loss_cannot_recognise_is_warned_about(backend):
    """A notebook softmax under another class name cannot be fused: the loss would softmax its
    probabilities again and train badly without any error. Its output rows sum to 1: fit warns.
    Models ending in logits (or in a softmax the loss fuses) do not warn."""
    class SoftmaxLayer(notebook.Softmax):
        pass
    X, y = blobs(10)
    for model in (Classifier(mlp().layers + [SoftmaxLayer()], optimizer=SGD(0.1)),
                  mlp(optimizer=SGD(0.1), last_activation=SoftmaxLayer())):
        with pytest.warns(UserWarning, match=r"outputs are probabilities .*SoftmaxLayer\)"):
            model.fit(X, y, epochs=1)
    # Two softmaxes: the loss fuses the last one, the first one is trained through.
    model = Classifier(mlp(last_activation=Softmax()).layers + [Softmax()], optimizer=SGD(0.1))
    with pytest.warns(UserWarning, match=r"final softmax receives probabilities .*applies a "
                                         r"softmax twice"):
        model.fit(X, y, epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for model in (mlp(optimizer=SGD(0.1)), mlp(optimizer=SGD(0.1), last_activation=Softmax()),
                      Classifier(mlp().layers + [Softmax()], optimizer=SGD(0.1)),
                      Classifier(mlp().layers + [notebook.Softmax()], optimizer=SGD(0.1))):
            model.fit(X, y, epochs=1)

class TemperatureSoftmax(Softmax):
    """A user's softmax derived from fastnet's, with a forward of its own."""

    def forward(self, x):
        return super().forward(np.asarray(x) / 4.0)

    def backward(self, dout):
        return super().backward(dout) / 4.0


class PlainSoftmax(Softmax):
    """Keeps Softmax's methods: still fused."""


def test_a_softmax_subclass_with_methods_of_its_own_is_not_fused(backend):
    """Once fused with the loss like fastnet's own, its temperature silently ignored. It now
    runs as the layer it is; its output is what the loss gets (as logits), and fit warns that
    the rows are probabilities, naming it."""
    X, y = blobs(20)
    assert_trains_like([mlp(optimizer=SGD(0.1)),
                        Classifier(mlp().layers + [PlainSoftmax()], optimizer=SGD(0.1)),
                        mlp(optimizer=SGD(0.1), last_activation=PlainSoftmax()),
                        mlp(optimizer=SGD(0.1), last_activation=compat.Softmax())], X, y,
                       rtol=1e-12)
    for model in (Classifier(mlp().layers + [TemperatureSoftmax()], optimizer=SGD(0.1)),
                  mlp(optimizer=SGD(0.1), last_activation=TemperatureSoftmax())):
        assert model._softmax_tail() == "logits"
        with pytest.warns(UserWarning, match=r"TemperatureSoftmax, a subclass of fastnet's "
                                             r"Softmax that changes its methods"):
            model.fit(X, y, epochs=1)
        out = model.forward(X)                     # the temperature's probabilities
        np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-6)
        assert model.evaluate(X, y)["loss"] == pytest.approx(naive_cross_entropy(out, y),
                                                             rel=1e-9)


def naive_cross_entropy(logits, y):
    z = logits - logits.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


def assert_trains_like(models, X, y, rtol):
    """Every model in ``models`` trains as ``models[0]`` does (parameters in order)."""
    for m in models:
        m.fit(X, y, epochs=2, batch_size=8, seed=1)
    for m in models[1:]:
        for p, want in zip(m.params.values(), models[0].params.values(), strict=True):
            np.testing.assert_allclose(p, want, rtol=rtol, atol=rtol * 1e-2)
        assert m.history["loss"] == pytest.approx(models[0].history["loss"], rel=rtol)
        np.testing.assert_allclose(m.predict_proba(X), models[0].predict_proba(X), rtol=rtol)


def test_backends_agree_on_a_training_step():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((16, 3, 8)), rng.integers(0, 3, 16)
    initial = {k: v.copy() for k, v in convnet().params.items()}
    results = {}
    for name in fastnet.kernels.BACKENDS:
        with fastnet.set_backend(name):
            model = convnet(optimizer=Adam(0.01)).fit(X, y, epochs=1, batch_size=4, seed=0)
            results[name] = model.params
    for key, p in results["numpy"].items():
        assert np.abs(p - initial[key]).max() > 1e-3                     # it did train
        np.testing.assert_allclose(results["numba"][key], p, rtol=1e-10, atol=1e-12)


# --- training ----------------------------------------------------------------------------------

def test_fit_learns_and_records_history(backend, dtype):
    X, y = blobs(150)
    X = X.astype(dtype)
    clf = mlp(dtype, optimizer=AdaGrad(0.1))
    assert clf.fit(X, y, X[:50], y[:50], epochs=4, batch_size=16) is clf
    h = clf.history
    assert set(h) == {"loss", "val_loss", "acc", "val_acc"}
    assert all(len(v) == 4 for v in h.values())
    assert clf.log_loss is h["loss"] and clf.log_acc_val is h["val_acc"]
    assert clf.log_loss_val is h["val_loss"] and clf.log_acc is h["acc"]
    assert h["loss"][-1] < h["loss"][0]
    assert clf.score(X, y) > 0.9
    assert clf.evaluate(X[:50], y[:50])["acc"] == pytest.approx(h["val_acc"][-1])
    assert clf.predict(X).dtype == np.int64


def test_one_hot_and_integer_labels_train_identically():
    X, y = blobs(60)
    a = mlp(optimizer=SGD(0.1)).fit(X, y, epochs=1, batch_size=7)
    b = mlp(optimizer=SGD(0.1)).fit(X, np.eye(3)[y], epochs=1, batch_size=7)
    for key, p in a.params.items():
        np.testing.assert_allclose(b.params[key], p, rtol=1e-12)


def test_layer_optimizers_and_model_optimizer_together():
    X, y = blobs(40)
    own = AdaGrad(0.1)
    clf = Classifier([FC(6, 4, optimizer=own, dtype=F64), FC(4, 3, dtype=F64)],
                     optimizer=SGD(0.1))
    W0, W1 = clf.layers[0].W.copy(), clf.layers[1].W.copy()
    clf.fit(X, y, epochs=1, batch_size=40)
    assert len(own._state) == 2 and len(clf.optimizer._state) == 0     # plain SGD: no state
    assert not np.array_equal(W0, clf.layers[0].W) and not np.array_equal(W1, clf.layers[1].W)


def test_callbacks_see_every_batch_and_epoch():
    class Recorder(Callback):
        def __init__(self):
            self.batches, self.epochs, self.begun = [], [], None

        def on_train_begin(self, model, epochs, n_batches):
            self.begun = (epochs, n_batches)

        def on_batch_end(self, batch, loss, n_samples):
            self.batches.append((batch, loss, n_samples))

        def on_epoch_end(self, epoch, logs):
            self.epochs.append((epoch, dict(logs)))
    X, y = blobs(50)
    rec = Recorder()
    mlp(optimizer=SGD(0.1)).fit(X, y, epochs=2, batch_size=20, callbacks=[rec])
    assert rec.begun == (2, 3)
    assert [b for b, _, _ in rec.batches] == [0, 1, 2] * 2
    assert [n for _, _, n in rec.batches] == [20, 20, 10] * 2
    assert [e for e, _ in rec.epochs] == [0, 1]
    assert {"loss", "acc", "seconds"} <= set(rec.epochs[0][1])
    losses = [loss for _, loss, _ in rec.batches[:3]]
    assert rec.epochs[0][1]["loss"] == pytest.approx((20 * losses[0] + 20 * losses[1]
                                                       + 10 * losses[2]) / 50)


def test_verbose_prints_one_line_per_epoch(capsys):
    X, y = blobs(20)
    mlp(optimizer=SGD(0.1)).fit(X, y, epochs=2, batch_size=10, verbose=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch   2/2") and "acc" in lines[1]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_divergence_raises_with_epoch_and_batch():
    X, y = blobs(40)
    clf = Classifier([FC(6, 8, activation="relu"), FC(8, 3)], optimizer=SGD(1e30))
    with pytest.raises(FloatingPointError,
                       match=r"training diverged at epoch 1, batch \d+ \(of 4\): loss is "
                             r"(nan|inf); lower the learning rate"):
        clf.fit(X, y, epochs=3, batch_size=10)


def test_dropout_is_active_in_fit_and_off_in_predict():
    X, y = blobs(30)
    clf = Classifier([FC(6, 16, activation="relu", dtype=F64), Dropout(0.5, seed=0),
                      FC(16, 3, dtype=F64)], optimizer=SGD(0.0))
    p1 = clf.predict_proba(X)
    np.testing.assert_array_equal(p1, clf.predict_proba(X))
    clf.train()
    assert not np.allclose(clf.forward(X), clf.forward(X))
    clf.fit(X, y, epochs=1)
    assert clf.training is True                      # mode restored after fit
    np.testing.assert_array_equal(clf.predict_proba(X), p1)    # lr 0: nothing changed


def test_predict_in_batches_matches_one_batch():
    X, y = blobs(100)
    clf = mlp(optimizer=SGD(0.1)).fit(X, y, epochs=1)
    # Equal to rounding, not bit for bit: OpenBLAS picks its GEMM kernel by the number of rows,
    # and its kernels can sum a row in another order for 7 rows than for 100 (measured: 1-ulp
    # differences on an AMD EPYC with AVX-512).
    np.testing.assert_allclose(clf.predict_proba(X, batch_size=7),
                               clf.predict_proba(X, batch_size=1000), rtol=1e-13, atol=0)
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X, 9), clf.decision_function(X).argmax(axis=1))
    assert clf.score(X, np.eye(3)[y]) == clf.score(X, y)


def _fortran(layers):
    layers[1].W = np.asfortranarray(layers[1].W)


def _read_only(layers):
    layers[1].b.flags.writeable = False


def _overlapping(layers):
    buffer = np.zeros(6 * 8 + 8 * 5)
    buffer[:48] = layers[0].W.ravel()
    layers[0].W = buffer[:48].reshape(6, 8)
    layers[1].W = buffer[40:80].reshape(8, 5)            # shares 8 values with layers[0].W


def _integer(layers):
    layers[2].b = np.zeros(3, int)


@pytest.mark.parametrize("spoil, error, words", [
    (_fortran, ValueError, "parameter 1.W (shape (8, 5)) must be C-contiguous"),
    (_read_only, ValueError, "parameter 1.b (shape (5,)) is read-only"),
    (_overlapping, ValueError, "parameters 0.W and 1.W overlap in memory"),
    (_integer, TypeError, "parameter 2.b must be a float ndarray")])
def test_fit_refuses_parameters_it_cannot_update_before_any_update(spoil, error, words):
    """Found before training, not at the first step after other layers were updated."""
    X, y = blobs(30)
    model = mlp(optimizer=Adam())
    spoil(model.layers)
    before = {k: p.copy() for k, p in model.params.items()}
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        model.fit(X, y, epochs=1, batch_size=10)
    for key, p in model.params.items():
        np.testing.assert_array_equal(p, before[key])


def test_sequential_with_softmax_cross_entropy_takes_integer_labels():
    """A generic model with the classification loss trains on labels (N,) as on one-hot rows,
    to the same weights, and checks the labels' range before any update."""
    X, y = blobs(60)
    models = [Sequential([FC(6, 3, XavierInitializer(seed=0), dtype=F64)], "softmax_cross_entropy",
                         SGD(0.1)) for _ in range(2)]
    models[0].fit(X, y, X, y, epochs=2, batch_size=10)
    models[1].fit(X, np.eye(3)[y], X, np.eye(3)[y], epochs=2, batch_size=10)
    np.testing.assert_allclose(models[0].history["loss"], models[1].history["loss"], rtol=1e-12)
    np.testing.assert_allclose(models[0].layers[0].W, models[1].layers[0].W, rtol=1e-12)
    one_hot_loss = models[1].evaluate(X, np.eye(3)[y])["loss"]
    assert models[0].evaluate(X, y)["loss"] == pytest.approx(one_hot_loss)
    W = models[0].layers[0].W.copy()
    with pytest.raises(ValueError, match="label 3 in y is out of range for 3 classes"):
        models[0].fit(X, np.where(y == 0, 3, y), epochs=1)
    np.testing.assert_array_equal(models[0].layers[0].W, W)


def test_sequential_regression_with_mse():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    T = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    model = Sequential([FC(3, 1, dtype=F64)], MeanSquaredError(), SGD(0.1))
    model.fit(X, T, X, T, epochs=30, batch_size=20)
    assert set(model.history) == {"loss", "val_loss"}
    assert model.history["val_loss"][-1] < 1e-4
    assert model.predict(X).shape == (200, 1)


def test_nested_sequential_params_and_grads():
    inner = Sequential([FC(6, 4, dtype=F64), ReLU()])
    clf = Classifier([inner, FC(4, 3, dtype=F64)], optimizer=SGD(0.1))
    assert set(clf.params) == {"0.0.W", "0.0.b", "1.W", "1.b"}
    assert clf.params["0.0.W"] is inner.layers[0].W
    X, y = blobs(10)
    check_model_gradients(clf, X, y)


def test_get_params():
    opt = SGD(0.1)
    clf = mlp(optimizer=opt)
    params = clf.get_params()
    assert params["optimizer"] is opt and isinstance(params["loss"], SoftmaxCrossEntropy)


# --- save / load -------------------------------------------------------------------------------

def test_save_load_bit_identical_and_training_continues_identically(tmp_path, backend):
    X, y = blobs(60)
    rng = np.random.default_rng(0)
    Xc = rng.standard_normal((60, 3, 8)).astype(np.float32)
    for make, data in [(lambda: mlp(np.float32, optimizer=Adam(0.01)), (X.astype(np.float32), y)),
                       (lambda: convnet(np.float32, optimizer=AdaGrad(0.05)), (Xc, y))]:
        model = make().fit(*data, epochs=2, batch_size=16, seed=3)
        path = tmp_path / "model.npz"
        model.save(path)
        loaded = fm.load(path)
        assert type(loaded) is Classifier and repr(loaded) == repr(model)
        np.testing.assert_array_equal(loaded.predict_proba(data[0]), model.predict_proba(data[0]))
        assert loaded.history == model.history
        model.fit(*data, epochs=1, batch_size=16, seed=9)
        loaded.fit(*data, epochs=1, batch_size=16, seed=9)
        for key, p in model.params.items():                   # optimizer state came back too
            np.testing.assert_array_equal(loaded.params[key], p)


def test_fit_checks_bce_targets_before_any_update(backend):
    """A target of 2 in the last batch stopped training at that batch, after five updates (and
    a bad y_val after the first epoch)."""
    X = np.random.default_rng(0).standard_normal((60, 4)).astype(np.float32)
    y = (X[:, :1] > 0).astype(np.float32)
    bad = y.copy()
    bad[-1] = 2.0
    model = Sequential([FC(4, 1, HeInitializer(seed=1), activation="sigmoid")], loss="bce",
                       optimizer=SGD(0.1))
    W0 = model.layers[0].W.copy()
    with pytest.raises(ValueError, match=r"fit: y holds 2\.0; the binary cross-entropy takes "
                                         r"targets in \[0, 1\]"):
        model.fit(X, bad, epochs=1, batch_size=10, shuffle=False)
    with pytest.raises(ValueError, match=r"fit: y_val holds 2\.0"):
        model.fit(X, y, X, bad, epochs=1, batch_size=10)
    assert np.array_equal(model.layers[0].W, W0)


@pytest.mark.parametrize("make", [Classifier, lambda layers, **kw: Sequential(
    layers, loss="softmax_cross_entropy", **kw)], ids=["Classifier", "Sequential"])
def test_fit_refuses_negative_class_weights_before_any_update(backend, make):
    """Rows of -1 instead of one-hot: the loss went below 0 and fit trained towards -inf
    (an audit's finding); the binary cross-entropy already refused targets outside [0, 1]."""
    rng = np.random.default_rng(0)
    X, labels = rng.standard_normal((30, 4)).astype(np.float32), rng.integers(0, 3, 30)
    rows = np.eye(3, dtype=np.float32)[labels]
    model = make([FC(4, 3, HeInitializer(seed=1))], optimizer=SGD(0.1))
    W0 = model.layers[0].W.copy()
    for y, y_val, name in ((-rows, rows, "y"), (rows, rows - 0.5, "y_val")):
        with pytest.raises(ValueError, match=rf"fit: {name} holds -(1\.0|0\.5); the softmax "
                                             rf"cross-entropy takes target rows of class "
                                             rf"weights >= 0"):
            model.fit(X, y, X, y_val, epochs=1, batch_size=10)
    assert np.array_equal(model.layers[0].W, W0)
    model.fit(X, rows * 0.5, epochs=1, batch_size=10)        # weights of any scale >= 0 train


def test_fit_refuses_a_classifier_with_one_output():
    """(N, 1) 0/1 labels were taken as one-hot rows over one class: the loss is 0 and nothing
    trained, silently, with accuracy 1.0 in the history."""
    X = np.random.default_rng(0).standard_normal((20, 4))
    y = (X[:, 0] > 0).astype(int)
    with pytest.raises(ValueError, match="outputs 1 class score per sample.*loss='bce'"):
        Classifier([FC(4, 1, HeInitializer(seed=0))], optimizer=SGD(0.5)).fit(X, y[:, None])


def test_fit_refuses_non_numeric_targets_before_training():
    X = np.ones((6, 4))
    with pytest.raises(TypeError, match=r"fit: y must be numeric; got <U1 of shape \(6, 1\)"):
        Sequential([FC(4, 1)], loss="mse", optimizer=SGD(0.1)).fit(X, np.array([["a"]] * 6))


def test_a_failing_on_train_begin_restores_the_mode():
    class Failing:
        def on_train_begin(self, *args):
            raise RuntimeError("boom")
    model = Classifier([FC(4, 8), Dropout(0.5), FC(8, 3)], optimizer=SGD()).eval()
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(np.ones((8, 4)), np.zeros(8, int), callbacks=[Failing()])
    assert not model.training and not model.layers[1].training


def test_a_layer_switched_off_alone_stays_off_after_predict_and_fit():
    """predict, evaluate, score and fit put back the model's own mode on every layer: a
    Dropout switched off by hand was on again after them, and a callback's switch did not
    outlive the validation pass after its epoch."""
    X, y = blobs(32, 6)
    model = Classifier([FC(6, 8, dtype=F64), Dropout(0.5, seed=0),
                        Sequential([Dropout(0.3, seed=1)]), FC(8, 3, dtype=F64)],
                       optimizer=SGD(0.1))
    model.layers[1].eval()
    for call in (lambda: model.predict(X), lambda: model.evaluate(X, y),
                 lambda: model.score(X, y), lambda: model.fit(X, y, epochs=1)):
        call()
        assert model.training and not model.layers[1].training
        assert model.layers[2].layers[0].training
    seen = []

    class Off(Callback):
        def on_epoch_begin(self, epoch, n_batches):
            seen.append(model.layers[2].layers[0].training)
            if epoch == 0:
                model.layers[2].layers[0].eval()
    model.fit(X, y, X, y, epochs=3, callbacks=[Off()])
    assert seen == [True, False, False]
    assert model.layers[2].layers[0].training and not model.layers[1].training   # as before fit


def test_save_keeps_the_training_modes(tmp_path):
    """A model saved in evaluation mode came back in training mode: its forward then applied
    Dropout where the original's did not."""
    model = Classifier([FC(12, 8, dtype=F64), Dropout(0.5, seed=0), FC(8, 3, dtype=F64),
                        Sequential([Dropout(0.2, seed=1)])])
    X = np.random.default_rng(0).standard_normal((4, 12))
    path = tmp_path / "m.npz"
    model.eval()
    model.save(path)
    loaded = fm.load(path)
    assert not loaded.training and not any(l.training for _, l in loaded.named_leaves())
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))
    model.train()
    model.layers[3].layers[0].eval()                 # one layer switched off by hand
    model.save(path)
    loaded = fm.load(path)
    modes = {key: layer.training for key, layer in loaded.named_leaves()}
    assert loaded.training and modes == {"0.": True, "1.": True, "2.": True, "3.0.": False}


def test_a_dropout_given_as_an_fc_activation_follows_the_model_mode(backend, tmp_path):
    """An activation object is no leaf of the model: a Dropout there kept dropping in predict,
    evaluate and after ``eval()``, so predictions were random (a probe's finding)."""
    fc = FC(4, 6, activation=Dropout(0.5, seed=0), dtype=F64)
    model = Classifier([fc, FC(6, 3, dtype=F64)], optimizer=SGD(0.1))
    X, y = np.random.default_rng(0).standard_normal((8, 4)), np.arange(8) % 3
    want = model.layers[1].forward(X @ fc.W + fc.b)                  # nothing dropped
    np.testing.assert_array_equal(model.predict_proba(X), model.predict_proba(X))
    assert model.evaluate(X, y)["loss"] == model.evaluate(X, y)["loss"]
    model.eval()
    assert not fc.activation.training
    np.testing.assert_allclose(model.forward(X), want, rtol=1e-12)
    model.save(tmp_path / "m.npz")
    assert not fm.load(tmp_path / "m.npz").layers[0].activation.training
    model.train()
    assert fc.activation.training
    assert not np.array_equal(model.forward(X), want)


def test_a_dropout_activation_switched_off_on_its_own_stays_off(backend, tmp_path):
    """As a Dropout layer does: predict, fit and a save put back the mode they found (the
    FC's train() had switched it back on, a review's finding), and a Dropout given in
    evaluation mode stays so."""
    dropout = Dropout(0.5, seed=0).eval()
    fc = FC(4, 6, activation=dropout, dtype=F64)
    model = Classifier([fc, FC(6, 3, dtype=F64)], optimizer=SGD(0.1))
    assert not dropout.training
    X, y = np.random.default_rng(0).standard_normal((8, 4)), np.arange(8) % 3
    model.predict(X)
    assert model.training and fc.training and not dropout.training
    model.fit(X, y, epochs=1)
    assert not dropout.training
    model.save(tmp_path / "m.npz")
    loaded = fm.load(tmp_path / "m.npz")
    assert loaded.training and not loaded.layers[0].activation.training
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))


@pytest.mark.parametrize("path, words", [("", "path is empty"), (b"", "path is empty"),
                                         ("m\0.npz", "NUL character")])
def test_save_and_load_refuse_names_no_file_can_have(path, words):
    model = mlp()
    for call in (model.save, Classifier.load):
        with pytest.raises(ValueError, match=words):
            call(path)


def test_layer_dtype_that_is_no_dtype_names_the_argument():
    with pytest.raises(TypeError, match=r"FC: dtype='foo'; expected np.float32 or np.float64"):
        FC(4, 3, dtype="foo")


def test_save_keeps_shared_optimizers_shared(tmp_path):
    opt = AdaGrad(0.1)
    clf = Classifier([FC(6, 4, optimizer=opt), Dropout(0.2, seed=1),
                      FC(4, 3, optimizer=opt, activation=Softmax())])
    X, y = blobs(20)
    clf.fit(X.astype(np.float32), y, epochs=1, batch_size=5)
    clf.save(tmp_path / "m")
    loaded = Classifier.load(tmp_path / "m")
    assert loaded.layers[0].optimizer is loaded.layers[2].optimizer
    assert loaded.layers[1].p == 0.2 and isinstance(loaded.layers[2].activation, Softmax)
    assert os.listdir(tmp_path) == ["m"]                   # the name is used as given


def test_interrupted_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    X, y = blobs(20)
    clf = mlp(optimizer=SGD(0.1))
    path = tmp_path / "model.npz"
    clf.save(path)
    before = path.read_bytes()
    clf.fit(X, y, epochs=1)

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half of an archive")
        raise OSError("disk full")
    monkeypatch.setattr(fastnet._serialize.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        clf.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]                # no temporary left behind
    monkeypatch.undo()
    assert not np.array_equal(fm.load(path).layers[0].W, clf.layers[0].W)   # the old model


def test_save_through_a_symbolic_link_replaces_its_target(tmp_path):
    clf = mlp(optimizer=SGD(0.1))
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "model.npz"
    target.write_bytes(b"old")
    link = tmp_path / "model.npz"
    link.symlink_to(target)
    clf.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    np.testing.assert_array_equal(fm.load(target).layers[0].W, clf.layers[0].W)


def test_save_refuses_a_loop_of_symbolic_links(tmp_path):
    """A save replaced the first link of the loop with a plain file."""
    from fastnet._files import check_writable
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(OSError, match="a.npz: its symbolic links form a loop"):
        mlp(optimizer=SGD(0.1)).save(a)
    with pytest.raises(ValueError, match="--save .*a.npz: its symbolic links form a loop"):
        check_writable("--save", str(a))
    assert a.is_symlink() and b.is_symlink()


def test_save_refuses_a_fifo_and_keeps_an_existing_files_permissions(tmp_path):
    """A rename over a device or FIFO replaced it with a plain file (as root, ``--save
    /dev/null`` replaced /dev/null); a 0600 model file became world-readable."""
    from fastnet._files import check_writable
    clf = mlp(optimizer=SGD(0.1))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="pipe: it is a FIFO"):
        clf.save(fifo)
    with pytest.raises(ValueError, match="--save .*pipe: it is a FIFO"):
        check_writable("--save", str(fifo))
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    private = tmp_path / "private.npz"
    private.write_bytes(b"old")
    os.chmod(private, 0o600)
    clf.save(private)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600


def test_save_refuses_a_file_this_user_may_not_write(tmp_path, monkeypatch):
    """An audit: the rename needs only the folder's permission, so a save replaced a file
    that ``open`` (and ``np.savez``) would refuse. (Run as root here, where every file is
    writable: ``os.access`` is made to say what it says to other users.)"""
    from fastnet._files import check_writable
    target = tmp_path / "kept.npz"
    target.write_bytes(b"old")
    os.chmod(target, 0o444)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.fspath(p) == str(
        target) and mode == os.W_OK else real_access(p, mode, **kw))
    with pytest.raises(PermissionError, match="kept.npz: the file is read-only for this user"):
        mlp(optimizer=SGD(0.1)).save(target)
    with pytest.raises(ValueError, match="--save .*kept.npz: the file is read-only"):
        check_writable("--save", str(target))
    assert target.read_bytes() == b"old"


def test_load_refuses_a_fifo_instead_of_waiting_for_a_writer(tmp_path):
    """``open`` of a FIFO blocks until a writer comes: load hung for good. Should the check go,
    a writer thread (giving up after 3 s) unblocks the load, and the message test fails."""
    import threading
    import time
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done = threading.Event()

    def writer():
        end = time.monotonic() + 3
        while time.monotonic() < end and not done.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)   # ENXIO while no reader
            except OSError:
                time.sleep(0.05)
                continue
            os.write(fd, b"not a model")
            os.close(fd)
            return

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with pytest.raises(ValueError, match="pipe is not a fastnet model file .*it is a FIFO"):
            fm.load(fifo)
    finally:
        done.set()
        thread.join()


def test_save_and_load_errors_name_the_operation(tmp_path):
    clf = mlp(optimizer=SGD(0.1))
    for path in (3, None):
        with pytest.raises(TypeError, match="load: path must be a file name"):
            fm.load(path)
    clf.history = {"loss": ["n/a"]}
    with pytest.raises(ValueError, match=r"save: history\['loss'\] must be a list of numbers"):
        clf.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_loading_what_is_not_a_model(tmp_path):
    X, y = blobs(20)
    good = tmp_path / "good.npz"
    mlp(optimizer=SGD(0.1)).save(good)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros(3))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    pkl = tmp_path / "obj.pkl"
    pkl.write_bytes(__import__("pickle").dumps({"W": 1}))
    for path, match in [(text, "neither an .npz archive nor an .npy array"),
                        (pkl, "pickled Python objects"),
                        (plain, "without a '__fastnet__' entry"),
                        (npy, "not an archive"),
                        (truncated, "unreadable or truncated")]:
        with pytest.raises(ValueError, match=match):
            fm.load(path)
    pickled = tmp_path / "pickled.npy"                # NumPy's hint would say: load it unsafely
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for path in (text, pickled):
        with pytest.raises(ValueError) as info:
            fm.load(path)
        assert "allow_pickle" not in str(info.value)
    with pytest.raises(ValueError, match="pickled Python objects, which fastnet never loads"):
        fm.load(pickled)
    entry = tmp_path / "entry.npz"                    # a model file with one object entry
    np.savez(entry, **{**dict(np.load(good)), "param/0.b": np.array([1, "x"], dtype=object)})
    with pytest.raises(ValueError, match="entry 'param/0.b' holds pickled Python objects"):
        fm.load(entry)
    damaged = tmp_path / "damaged.npz"                # its zip header broken (an audit: this
    damaged.write_bytes(b"PK\xff" + good.read_bytes()[3:])    # was called an object entry)
    with pytest.raises(ValueError, match="a damaged .npz archive"):
        fm.load(damaged)
    with pytest.raises(FileNotFoundError):
        fm.load(tmp_path / "missing.npz")
    seq = tmp_path / "seq.npz"
    Sequential([FC(2, 2)], "mse").save(seq)
    with pytest.raises(ValueError, match="holds a Sequential, not a Classifier"):
        Classifier.load(seq)


def _archive_with(path, good, name, shape, dtype=np.float64):
    """``good``'s entries, with entry ``name`` (added or replaced) an ``.npy`` of zeros of
    ``shape``, written compressed a chunk at a time (64 MB of zeros take ~70 kB); with
    ``shape`` None, an ``.npy`` whose header declares 64 MiB of spaces."""
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist() if n != name + ".npy"}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in entries.items():
            z.writestr(n, data)
        with z.open(name + ".npy", "w", force_zip64=True) as f:
            if shape is None:                 # format 2.0: a 4-byte header length
                f.write(b"\x93NUMPY\x02\x00" + (2**26).to_bytes(4, "little"))
                count = 64
            else:
                np.lib.format.write_array_header_1_0(
                    f, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
                count = int(np.prod(shape)) * np.dtype(dtype).itemsize // 2**20
            chunk = bytes(2**20) if shape is not None else b" " * 2**20
            for _ in range(count):
                f.write(chunk)


@pytest.mark.parametrize("name, shape, dtype, words", [
    ("junk", (2**23,), np.float64, r"arrays the model has no place for: \['junk'\]"),
    ("param/0.W", (2**23,), np.float64, r"parameter 0.W is float64 \(8388608,\), the "
                                         r"architecture needs float64 \(6, 8\)"),
    ("state/0.W/velocity", (2**23,), np.float64, r"state 'velocity' is float64 \(8388608,\)"),
    ("__fastnet__", (), "<U16777217", r"not the JSON text of a spec"),
    ("__fastnet__", None, None, r"declares an .npy header of 67108864 bytes"),
    ("param/0.W", None, None, r"declares an .npy header of 67108864 bytes"),
], ids=["extra entry", "parameter", "optimizer state", "spec", "spec header", "header"])
def test_a_small_file_that_unpacks_to_much_is_refused_before_it_is_read(tmp_path, name, shape,
                                                                          dtype, words):
    """An audit: load unpacked every entry before checking any, so a 2 MB file took 2.1 GB of
    memory before it was refused. Names are checked first, then each entry's header (its
    declared length first: NumPy reads a header of any length before its own limit), and only
    then its data (here: 64 MB of zeros, or of header, that a check refuses, never read)."""
    import tracemalloc
    good = tmp_path / "good.npz"
    mlp(optimizer=SGD(0.1, momentum=0.9)).save(good)
    bomb = tmp_path / "bomb.npz"
    _archive_with(bomb, good, name, shape, dtype)
    assert bomb.stat().st_size < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=words):
            fm.load(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_an_archive_with_two_entries_of_one_name_is_refused(tmp_path):
    """An audit: ``param/0.W`` beside ``param/0.W.npy``, or a zip member written twice, loaded
    whichever came last, silently."""
    good = tmp_path / "good.npz"
    mlp(optimizer=SGD(0.1)).save(good)
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    for extra in ("param/0.W", "param/0.W.npy"):
        bad = tmp_path / "bad.npz"
        with zipfile.ZipFile(bad, "w") as z, warnings.catch_warnings():
            warnings.simplefilter("ignore")               # zipfile: "Duplicate name"
            for n, b in entries.items():
                z.writestr(n, b)
            z.writestr(extra, entries["param/0.W.npy"])
        with pytest.raises(ValueError, match="two entries are named 'param/0.W'"):
            fm.load(bad)


def test_a_tampered_archive_is_rejected(tmp_path):
    good = tmp_path / "good.npz"
    mlp(optimizer=SGD(0.1)).save(good)
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as z:
        for n, b in entries.items():
            if n != "param/1.W.npy":
                z.writestr(n, b)
    with pytest.raises(ValueError, match="parameters missing"):
        fm.load(bad)


@pytest.mark.parametrize("extra, match", [
    ("param/3.W", "arrays the model has no place for"),
    ("state/3.W/v", "arrays the model has no place for"),
    ("other", "arrays the model has no place for"),
    ("state/0.W/v", r"SGD: state keys \['v'\]; expected \[\]")])
def test_an_archive_with_arrays_the_model_has_no_place_for_is_rejected(tmp_path, extra, match):
    """A parameter or optimizer state the spec has no layer (or no such state) for: the file
    and its spec disagree, so load refuses instead of dropping it."""
    good = tmp_path / "good.npz"
    mlp(optimizer=SGD(0.1)).save(good)                 # SGD keeps no state
    with np.load(good) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays[extra] = np.zeros(3)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        fm.load(tmp_path / "bad.npz")


def _rewrite_spec(src, dst, edit):
    """Copy the model file ``src`` to ``dst`` with its JSON spec changed by ``edit(spec)``
    (which may return the new JSON text itself)."""
    with np.load(src) as archive:
        arrays = {k: archive[k] for k in archive.files}
    spec = json.loads(str(arrays["__fastnet__"]))
    text = edit(spec)
    arrays["__fastnet__"] = np.array(text if isinstance(text, str) else json.dumps(spec))
    np.savez(dst, **arrays)


def _nest(spec, depth):
    # Written as text: json.dumps itself cannot encode nesting this deep.
    layers = json.dumps(spec["model"]["config"]["layers"])
    return json.dumps(spec).replace(layers, "[" * depth + layers + "]" * depth)


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.update(history=[1.0, 2.0]), "history is a list, not a dict"),
    (lambda s: s.update(history={"loss": ["a"]}), r"history\['loss'\] is not a list of numbers"),
    (lambda s: s.update(model_optimizer=-1), r"optimizer index -1 is not in \[0, 1\)"),
    (lambda s: s.update(model_optimizer=True), r"optimizer index True"),
    (lambda s: s["model"]["config"]["layers"][0]["__object__"]["config"].update(
        optimizer={"__optimizer__": 5}), r"optimizer index 5"),
    (lambda s: _nest(s, 3000), "RecursionError"),     # too deep for the JSON decoder
    (lambda s: _nest(s, 600), "RecursionError"),      # decoded, too deep to rebuild
    (lambda s: s["model"]["config"]["layers"][0]["__object__"]["config"].update(
        n_nodes1=10**15), r"n_nodes1=1000000000000000; expected an integer <= 2147483647"),
    (lambda s: s["model"]["config"]["layers"][0]["__object__"]["config"].update(
        n_nodes1=10**400), r"n_nodes1 \(an integer of 401 digits\)"),
    (lambda s: s.update(history={"loss": [10**400]}), "history holds an integer too large"),
    (lambda s: s["model"]["config"]["layers"][0]["__object__"]["config"].update(
        n_nodes1=-3), "n_nodes1"),
    (lambda s: s["model"]["config"].update(layers=5), "TypeError"),
    (lambda s: s.update(training={"": "yes"}), "training is not a dict of true/false"),
    (lambda s: s.update(training={"9.": False}), "training names layer '9.', which the model "
                                                 "does not have"),
])
def test_a_hand_edited_spec_is_a_clear_error(tmp_path, edit, match):
    good = tmp_path / "good.npz"
    mlp(optimizer=AdaGrad(0.1)).fit(*blobs(20), epochs=1).save(good)
    bad = tmp_path / "bad.npz"
    _rewrite_spec(good, bad, edit)
    with pytest.raises(ValueError, match=f"not a fastnet model file .*({match})"):
        fm.load(bad)


def test_a_file_without_training_modes_loads_in_training_mode(tmp_path):
    """Files saved before the modes were kept."""
    model = mlp(optimizer=SGD(0.1)).eval()
    model.save(tmp_path / "new.npz")
    _rewrite_spec(tmp_path / "new.npz", tmp_path / "old.npz", lambda s: s.pop("training"))
    assert not fm.load(tmp_path / "new.npz").training
    loaded = fm.load(tmp_path / "old.npz")
    assert loaded.training and all(layer.training for _, layer in loaded.named_leaves())


def test_optimizer_state_of_another_dtype_is_rejected(tmp_path):
    clf = mlp(np.float32, optimizer=AdaGrad(0.1)).fit(*blobs(20), epochs=1)
    p = clf.layers[0].W
    h = clf.optimizer.state_of(p)["h"]
    with pytest.raises(ValueError, match=r"state 'h' is float64 .*expected float32"):
        clf.optimizer.set_state(p, {"h": h.astype(np.float64)})


def test_saving_a_custom_layer_says_what_cannot_be_saved(tmp_path):
    class Mine(ReLU):
        pass
    clf = Classifier([FC(2, 3), Mine(), FC(3, 2)])
    with pytest.raises(TypeError, match="cannot save a .*Mine"):
        clf.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


# --- bad input ---------------------------------------------------------------------------------

def test_wrongly_chained_layers_name_both_layers():
    with pytest.raises(ValueError, match=r"layer 2 FC\(300, 10\) expects 300 input features but "
                                         r"layer 0 FC\(784, 400.*produces 400"):
        Classifier([FC(784, 400, activation="relu"), Dropout(0.1), FC(300, 10)])
    with pytest.raises(ValueError, match=r"layer 3 Conv1d\(5, 2.*expects 5 input channels but "
                                         r"layer 0 Conv1d\(3, 4.*produces 4"):
        Classifier([Conv1d(3, 4, 3), ReLU(), MaxPool1d(2), Conv1d(5, 2, 3)])


def test_runtime_shape_errors_name_the_layers_and_shapes():
    clf = Classifier([Conv1d(3, 4, 3), Flatten(), FC(10, 3)], optimizer=SGD(0.1))
    X = np.zeros((5, 3, 8), np.float32)
    with pytest.raises(ValueError, match=r"layer 2 FC\(10, 3\) failed on its input of shape "
                                         r"\(5, 24\), the output of layer 1 Flatten\(\).*24 "
                                         r"features per sample; expected 10"):
        clf.fit(X, np.zeros(5, int))


def expect_untouched(clf, call, error, match):
    before = {k: v.copy() for k, v in clf.params.items()}
    with pytest.raises(error, match=match):
        call()
    for key, p in clf.params.items():
        np.testing.assert_array_equal(p, before[key])


@pytest.mark.parametrize("args, kwargs, error, match", [
    (lambda X, y: (X, np.r_[y[:-1], 3]), {}, ValueError,
     r"label 3 in y is out of range for 3 classes; labels must be in \[0, 2\]"),
    (lambda X, y: (X, np.eye(4)[y]), {}, ValueError, r"one-hot with 4 classes .* outputs 3"),
    (lambda X, y: (X, y[:-1]), {}, ValueError, r"X has 30 samples .* y has 29"),
    (lambda X, y: (X[:0], y[:0]), {}, ValueError, r"X is empty"),
    (lambda X, y: (X, y), {"batch_size": 0}, ValueError, r"batch_size=0"),
    (lambda X, y: (X, y), {"epochs": 0}, ValueError, r"epochs=0"),
    (lambda X, y: (np.where(np.arange(30)[:, None] == 29, np.nan, X), y), {}, ValueError,
     r"X contains NaN or inf \(first in row 29\)"),
    (lambda X, y: (X, y.astype(float)), {}, TypeError, r"integer labels"),
    (lambda X, y: (X, y, X), {}, ValueError, r"both X_val and y_val"),
    (lambda X, y: (X, y, X, np.full(30, 7)), {}, ValueError, r"label 7 in y_val"),
    # Everything is checked before the first update, not when training reaches the bad batch.
    (lambda X, y: (X, np.where(np.arange(30)[:, None] == 25, np.nan, np.eye(3)[y])), {},
     ValueError, r"y contains NaN or inf \(first in row 25\)"),
    (lambda X, y: (X, y, X, np.where(np.arange(30)[:, None] == 3, np.inf, np.eye(3)[y])), {},
     ValueError, r"y_val contains NaN or inf \(first in row 3\)"),
    (lambda X, y: (np.ma.masked_array(X, mask=X > 1), y), {}, TypeError, "X is a masked array"),
    (lambda X, y: (X[:, 0], y), {}, ValueError, r"X has shape \(30,\); rows are samples"),
    (lambda X, y: ([[1.0] * 6] * 29 + [[1.0] * 5], y), {}, ValueError,
     "X cannot be made into an array"),
    (lambda X, y: (X, y), {"augment": 3}, TypeError, "augment must be a callable"),
    (lambda X, y: (X, y), {"augment": lambda x: x}, TypeError, "cannot take these two arguments"),
    (lambda X, y: (X, y), {"augment": lambda x, rng: x[:, :3]}, ValueError,
     r"augment returned shape \(30, 3\) for a batch of shape \(30, 6\)"),
    (lambda X, y: (X, y), {"shuffle": "no"}, TypeError, "shuffle must be True or False"),
    (lambda X, y: (X, y), {"verbose": "no"}, TypeError, "verbose must be True or False"),
])
def test_bad_fit_input_fails_before_training(args, kwargs, error, match):
    X, y = blobs(30)
    clf = mlp(optimizer=SGD(0.1))
    expect_untouched(clf, lambda: clf.fit(*args(X, y), **kwargs), error, match)


def test_fit_without_optimizer_or_loss():
    X, y = blobs(10)
    clf = Classifier([FC(6, 3)])
    expect_untouched(clf, lambda: clf.fit(X, y), ValueError,
                     r"layer 0 FC\(6, 3\) has no optimizer and the model has none")
    with pytest.raises(ValueError, match="has no loss"):
        Sequential([FC(6, 3)], optimizer=SGD(0.1)).fit(X, y)


def test_bad_model_construction():
    with pytest.raises(ValueError, match="layers is empty"):
        Sequential([])
    with pytest.raises(TypeError, match="pass an instance"):
        Sequential([ReLU])
    with pytest.raises(TypeError, match="no forward/backward"):
        Sequential([object()])
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        Sequential([ReLU()], loss="hinge")
    with pytest.raises(TypeError, match="Classifier: loss must be SoftmaxCrossEntropy"):
        Classifier([ReLU()], loss="mse")


def test_classifier_loss_assigned_after_construction_is_checked(backend):
    X = np.random.default_rng(0).standard_normal((12, 6))
    clf = Classifier([FC(6, 3)], optimizer=SGD(0.1))
    clf.loss = "mse"
    expect_untouched(clf, lambda: clf.fit(X, np.arange(12) % 3), TypeError,
                     r"Classifier.fit: loss must be SoftmaxCrossEntropy; got MeanSquaredError")


class _ReplaceLoss(Callback):
    """Assigns ``loss`` to the model at the end of the first epoch, or of its first batch."""

    def __init__(self, loss, per_batch):
        self.loss, self.per_batch = loss, per_batch

    def on_train_begin(self, model, epochs, n_batches):
        self.model = model

    def on_batch_end(self, batch, loss, n_samples):
        if self.per_batch:
            self.model.loss = self.loss

    def on_epoch_end(self, epoch, logs):
        self.model.loss = self.loss


@pytest.mark.parametrize("per_batch, where", [(False, "before epoch 2, batch 1 of 3"),
                                              (True, "before epoch 1, batch 2 of 3")])
@pytest.mark.parametrize("model_class, loss", [(Classifier, "mse"), (Sequential, "bce")])
def test_loss_replaced_during_fit_is_refused(backend, model_class, loss, per_batch, where):
    # Seen by an audit: a name assigned between epochs reached the step as a string and failed
    # with "'str' object has no attribute 'forward'"; another loss object would have trained
    # against targets checked for the first one.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 6))
    model = model_class([FC(6, 3)], loss="softmax_cross_entropy", optimizer=SGD(0.1))
    with pytest.raises(ValueError, match=re.escape(
            f"{model_class.__name__}.fit: the model's loss was replaced during training ({where})"
            f": fit checked the data against SoftmaxCrossEntropy(), and now loss is {loss!r}")):
        model.fit(X, np.arange(12) % 3, epochs=2, batch_size=4,
                  callbacks=[_ReplaceLoss(loss, per_batch)])


# --- the first layer's input gradient is not computed in training -----------------------

def _record_need_dx(monkeypatch):
    """Spy on the functional backward calls the layers make: one need_dx flag per call."""
    calls = []
    for name in ("dense_backward", "conv1d_backward"):
        real = getattr(fm.F, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            bound = inspect.signature(_real).bind(*args, **kwargs).arguments
            calls.append((_name, bound.get("need_dx", True)))
            return _real(*args, **kwargs)
        monkeypatch.setattr(fm.F, name, spy)
    return calls


@pytest.mark.parametrize("build", [mlp, convnet])
def test_training_skips_only_the_first_layers_input_gradient(backend, monkeypatch, build):
    X, y = blobs(8, 6)
    X = X if build is mlp else np.random.default_rng(0).standard_normal((8, 3, 8))
    model, twin = build(optimizer=SGD(0.1)), build(optimizer=SGD(0.1))
    # The twin takes the same step through the public backward (every dx computed).
    loss = twin.loss.forward(twin.forward(X), y)
    twin.backward(twin.loss.backward())
    twin._step()
    calls = _record_need_dx(monkeypatch)
    model.fit(X, y, epochs=1, batch_size=8, shuffle=False)
    layer_calls = calls[-len([k for k in model.params if k.endswith("W")]):]
    assert [flag for _, flag in layer_calls] == [True] * (len(layer_calls) - 1) + [False]
    assert model.history["loss"][0] == pytest.approx(loss)
    for key, p in model.params.items():
        np.testing.assert_array_equal(p, twin.params[key], err_msg=key)


def test_parameter_free_layers_in_front_are_not_run_backward(backend, monkeypatch):
    model = Classifier([Flatten(), FC(6, 3, XavierInitializer(seed=0), dtype=F64)],
                       optimizer=SGD(0.1))
    ran = []
    monkeypatch.setattr(Flatten, "backward", lambda self, d: ran.append(1) or d)
    X, y = blobs(8, 6)
    model.fit(X.reshape(8, 2, 3), y, epochs=1, batch_size=8)
    assert ran == []
    model.backward(np.ones((8, 3)))                   # the public backward still runs it
    assert ran == [1]


def test_a_subclass_overriding_backward_is_always_called(backend):
    seen = []

    class LoggedFC(FC):
        def backward(self, dA):
            seen.append(dA.shape)
            return super().backward(dA)

    model = Classifier([LoggedFC(6, 4, HeInitializer(seed=0), activation="relu", dtype=F64),
                        FC(4, 3, XavierInitializer(seed=1), dtype=F64)], optimizer=SGD(0.1))
    X, y = blobs(10, 6)
    model.fit(X, y, epochs=1, batch_size=5)
    assert seen == [(5, 4), (5, 4)]


def test_a_last_layer_with_passes_of_its_own_runs_them_or_is_refused(backend):
    """A final FC whose forward or backward is the user's own (a subclass, or a method replaced
    on the instance): fit once fused its Softmax activation with the loss through FC's private
    passes and never ran them (an audit). With a Softmax layer after it, they run; with
    fastnet's exact Softmax as its activation, which would get the gradient at the logits,
    fit says what to do; a backward replaced on the first layer's instance runs too (the first
    layer's backward took a shortcut past it)."""
    seen = []

    class LoggedFC(FC):
        def forward(self, X):
            seen.append("forward")
            return super().forward(X)

    X, y = blobs(10, 6)
    first = FC(6, 4, HeInitializer(seed=0), activation="relu", dtype=F64)
    first.backward = lambda dA: seen.append("first") or FC.backward(first, dA)
    model = Classifier([first, LoggedFC(4, 3, XavierInitializer(seed=1), dtype=F64), Softmax()],
                       optimizer=SGD(0.1))
    model.fit(X, y, epochs=1, batch_size=5)
    assert seen.count("forward") >= 2 and seen.count("first") == 2
    seen.clear()
    model.predict(X)
    assert seen == ["forward"]

    model = Classifier([LoggedFC(6, 3, XavierInitializer(seed=1), activation=Softmax(),
                                 dtype=F64)], optimizer=SGD(0.1))
    with pytest.raises(ValueError, match=r"activation is fastnet.layers.Softmax.*no activation "
                                         r"and end the model with a Softmax\(\) layer"):
        model.fit(X, y, epochs=1, batch_size=5)


def test_fit_and_predict_take_read_only_data(backend, tmp_path):
    """Training data memory-mapped read-only (np.load with mmap_mode="r"), through a Conv1d on
    the GEMM path: read-only inputs once reached an internal Numba typing error there."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.random((40, 8, 12)).astype(np.float32))
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    y = rng.integers(0, 3, 40)
    model = Classifier([Conv1d(8, 16, 3, padding=1, activation="relu"), MaxPool1d(2),
                        FC(16 * 6, 3)], optimizer=Adam())
    model.fit(X, y, epochs=1, batch_size=8)
    np.testing.assert_array_equal(model.predict_proba(X), model.predict_proba(np.array(X)))


def test_predict_from_several_threads_keeps_the_mode_and_the_results(backend):
    """Concurrent predicts once each restored the mode they had found, which could be another
    thread's evaluation mode: the model ended in evaluation mode, and a Dropout switched on in
    the middle of another thread's predict."""
    from concurrent.futures import ThreadPoolExecutor
    model = Classifier([FC(20, 30, HeInitializer(seed=0), activation="relu"),
                        Dropout(0.5, seed=0), FC(30, 4, HeInitializer(seed=1))],
                       optimizer=SGD(0.1))
    rng = np.random.default_rng(0)
    X = [rng.random((n, 20)).astype(np.float32) for n in (1, 3, 8, 2, 5, 7)] * 40
    want = [model.predict_proba(x) for x in X]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(model.predict_proba, X))
    assert model.training and all(layer.training for layer in model.layers)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_shape_errors_through_a_concat_are_one_line():
    """A container's repr spans many lines; error messages name it by its class instead."""
    from fastnet.layers import Transpose
    model = Classifier([fm.Concat([[Conv1d(28, 4, 3)], [Transpose(), Conv1d(28, 4, 3)]]),
                        Flatten(), FC(2 * 4 * 26, 10)], optimizer=SGD(0.1))
    with pytest.raises(ValueError) as info:
        model.predict(np.ones((2, 10, 10), np.float32))
    message = str(info.value)
    assert "\n" not in message and "layer 0 Concat(...) failed" in message


@pytest.mark.parametrize("y, exc, words", [
    (np.array([0, 1, 5]), ValueError, "label 5 in y is out of range for 3 classes"),
    (np.array([0.0, 1.0, 2.0]), TypeError, "integer labels"),
    (np.eye(4)[:3], ValueError, "one-hot with 4 classes but the network outputs 3"),
])
def test_score_checks_its_labels_as_fit_does(y, exc, words):
    model = Classifier([FC(2, 3, HeInitializer(seed=0))], optimizer=SGD(0.1))
    with pytest.raises(exc, match=words):
        model.score(np.ones((3, 2), np.float32), y)
    assert model.score(np.ones((3, 2), np.float32), np.eye(3)) == pytest.approx(1 / 3)


def test_callbacks_argument_forms():
    """One callback alone works as a list of one; an object with no hook is an error, not
    silently ignored."""
    seen = []

    class Epochs(Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append(epoch)

    model = Classifier([FC(2, 3, HeInitializer(seed=0))], optimizer=SGD(0.1))
    X, y = np.ones((4, 2), np.float32), np.array([0, 1, 2, 0])
    model.fit(X, y, epochs=2, batch_size=2, callbacks=Epochs())
    assert seen == [0, 1]
    with pytest.raises(TypeError, match="has none of the hooks"):
        model.fit(X, y, epochs=1, callbacks=[lambda *a: None])
    with pytest.raises(TypeError, match="callbacks must be a list"):
        model.fit(X, y, epochs=1, callbacks=5)


def test_divergence_in_the_last_update_of_an_epoch_is_an_error(backend):
    """The batch loss is checked before each update; a blow-up in the last one is caught by
    the check of the parameters at the end of the epoch."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 20)) * 100, rng.integers(0, 5, 200)
    model = Classifier([FC(20, 30, HeInitializer(seed=0), activation="relu"),
                        FC(30, 5, HeInitializer(seed=1))], optimizer=SGD(1e37))
    with pytest.raises(FloatingPointError, match="diverged in epoch 1 .* holds NaN or inf"):
        model.fit(X, y, X, y, epochs=1, batch_size=200)


@pytest.mark.parametrize("optimizer", [lambda: Adam(0.01), lambda: AdaGrad(0.1)])
def test_copied_and_pickled_models_keep_their_optimizer_state(backend, optimizer):
    """The state was keyed by the ids of the original arrays, so a deepcopy or an unpickled
    model (a spawned process) trained on with fresh state, silently (weights 0.05 apart)."""
    import copy
    import pickle
    X, y = blobs(40)
    model = mlp(optimizer=optimizer())
    model.fit(X, y, epochs=1, batch_size=8, seed=1)
    copies = [copy.deepcopy(model), pickle.loads(pickle.dumps(model))]
    for m in [model] + copies:
        m.fit(X, y, epochs=1, batch_size=8, seed=2)
    for m in copies:
        for p, want in zip(m.params.values(), model.params.values(), strict=True):
            np.testing.assert_array_equal(p, want)
        assert all(m.optimizer.state_of(p) for p in m.params.values())


def test_fit_checks_the_model_again_after_its_attributes_were_replaced(backend):
    """``layers``, ``loss`` and the optimizers are plain attributes: edits after construction
    went unchecked, so one ReLU object at two places trained on wrong gradients silently, and a
    class or a name as optimizer failed after the first batch with a raw AttributeError."""
    X, y = blobs(20)
    model = Classifier([FC(6, 8), ReLU(), FC(8, 8), FC(8, 3)], optimizer=SGD(0.1))
    model.layers.insert(3, model.layers[1])                   # the same ReLU at two places
    with pytest.raises(ValueError, match=r"Classifier.fit: the same ReLU object is used at "
                                         r"layer 1 and at layer 3"):
        model.fit(X, y, epochs=1)
    for attr, value, exc, words in [
            ("optimizer", SGD, TypeError, "optimizer is the class SGD; pass an instance"),
            ("optimizer", "sgd", TypeError, "optimizer 'sgd' has no update method"),
            ("loss", "hinge", ValueError, "unknown loss 'hinge'"),
            ("layers", [], ValueError, "layers is empty")]:
        model = mlp(optimizer=SGD(0.1))
        W = model.layers[0].W.copy()
        setattr(model, attr, value)
        with pytest.raises(exc, match=f"Classifier.fit: .*{words}"):
            model.fit(X, y, epochs=1)
        np.testing.assert_array_equal(model.layers[0].W if model.layers else W, W)
    model = mlp(optimizer=SGD(0.1))
    model.loss = "softmax_cross_entropy"                      # a name works as in the constructor
    model.fit(X, y, epochs=1)
    assert isinstance(model.loss, SoftmaxCrossEntropy)


@pytest.mark.parametrize("make, x", [(lambda: FC(3, 2, optimizer=SGD(0.1)), np.ones((2, 3))),
                                     (lambda: Conv1d(1, 2, 3, optimizer=SGD(0.1)),
                                      np.ones((2, 1, 5)))], ids=["FC", "Conv1d"])
def test_a_layers_own_optimizer_replaced_by_a_name_is_a_clear_error(backend, make, x):
    """An audit: ``layer.optimizer = "sgd"`` after construction raised a bare AttributeError
    at the end of ``backward``."""
    layer = make()
    dout = layer.forward(x)
    layer.optimizer = "sgd"
    with pytest.raises(TypeError, match=r"optimizer 'sgd' has no update method"):
        layer.backward(np.ones_like(dout))


@pytest.mark.parametrize("spoil", [
    lambda m: setattr(m.layers[0], "stride", 0),
    lambda m: setattr(m.layers[-1], "W", m.layers[-1].W.astype(np.float16)),
    lambda m: setattr(m.optimizer, "lr", float("nan")),
])
def test_save_refuses_a_model_that_load_would_refuse_and_keeps_the_old_file(tmp_path, spoil):
    """Attributes set to values the constructors refuse were written, replacing a good file
    with one that load refuses."""
    path = tmp_path / "m.npz"
    model = convnet(optimizer=Adam())
    model.save(path)
    before = path.read_bytes()
    spoil(model)
    with pytest.raises(ValueError, match="save: the model cannot be saved as it is"):
        model.save(path)
    assert path.read_bytes() == before


def test_save_takes_numpy_scalar_settings_and_leaves_the_global_random_state_alone(tmp_path):
    """An lr assigned as np.float32 failed in json.dumps; the check rebuilds a Dropout(seed=None),
    which must not draw from NumPy's global generator."""
    model = Classifier([FC(6, 8, activation="relu"), Dropout(0.1), FC(8, 3)], optimizer=SGD(0.1))
    model.optimizer.lr = np.float32(0.05)
    np.random.seed(3)
    model.save(tmp_path / "m.npz")
    assert np.random.random() == np.random.RandomState(3).random()
    assert fm.load(tmp_path / "m.npz").optimizer.lr == pytest.approx(0.05)


@pytest.mark.parametrize("name", ["X_val", "y"])
def test_values_beyond_a_float32_model_are_refused_before_training(name):
    X, y = blobs(30)
    data = {"X": X, "y": np.eye(3)[y], "X_val": X.copy(), "y_val": y}
    data[name] = data[name].copy()
    data[name][-1, -1] = 1e300                     # only the last row: caught before training
    clf = mlp(dtype=np.float32, optimizer=SGD(0.1))
    expect_untouched(clf, lambda: clf.fit(**data), ValueError,
                     rf"{name} \(shape .*\) holds float64 values up to 1e\+300, beyond float32's")


@pytest.mark.parametrize("layers, optimizer, match", [
    (lambda: [FC(6, 5, dtype=F64), FC(5, 3, dtype=np.float32)], lambda: Adam(0.01, eps=1e-50),
     r"layer 1 FC\(5, 3\), float32 parameters: adam_update_: eps=1e-50 is below the smallest"),
    (lambda: [FC(6, 5, optimizer=SGD(0.1)), FC(5, 3)], lambda: SGD(1e39),
     r"layer 1 FC\(5, 3\), float32 parameters: sgd_update_: lr=1e\+39 is beyond the float32"),
])
def test_settings_bad_for_one_layers_dtype_are_refused_before_any_update(backend, layers,
                                                                        optimizer, match):
    """Checked at the first update, they stopped fit after the layers before had been stepped
    (Adam's step count of layer 0 at 1), and the message named no layer (a probe's finding)."""
    X, y = blobs(30)
    clf = Classifier(layers(), optimizer=optimizer())
    expect_untouched(clf, lambda: clf.fit(X, y), ValueError, match)
    assert all(not opt._state for _, _, opt in clf.leaf_optimizers())


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_inference_refuses_masked_1d_and_non_array_input(method):
    clf = mlp()
    X, _ = blobs(4)
    call = getattr(clf, method)
    with pytest.raises(TypeError, match=f"Classifier.{method}: X is a masked array"):
        call(np.ma.masked_array(X, mask=X > 0))
    with pytest.raises(ValueError, match=r"X has shape \(6,\); rows are samples"):
        call(X[0])
    with pytest.raises(ValueError, match=r"X must be an array of samples \(N, ...\); got NoneType"):
        call(None)


def test_a_1d_x_gets_the_rows_hint_even_when_its_length_differs_from_y():
    """Its length compared with y's first said "X has 12 samples ... but y has 1" (an audit's
    finding): the 1-D X is the mistake to name."""
    clf = Classifier([FC(12, 3)], optimizer=SGD(0.1))
    for y in (np.array([0]), np.zeros(12, int)):
        with pytest.raises(ValueError, match=r"X has shape \(12,\); rows are samples"):
            clf.fit(np.arange(12.0), y)


def test_evaluate_and_score_check_data_as_fit_does():
    clf = mlp()
    X, y = blobs(4)
    for method in ("evaluate", "score"):
        call = getattr(clf, method)
        with pytest.raises(TypeError, match=f"Classifier.{method}: y must be integer labels"):
            call(X, y.astype(float))
        with pytest.raises(TypeError, match="X is a masked array"):
            call(np.ma.masked_array(X, mask=X > 0), y)
        with pytest.raises(ValueError, match="rows are samples"):
            call(X[:, 0], y)
        for bad in (np.nan, np.inf):   # score once counted NaN rows as class 0 (audit finding)
            X_bad = X.copy()
            X_bad[2, 1] = bad
            with pytest.raises(ValueError, match=rf"Classifier.{method}: X contains NaN or inf "
                                                 rf"\(first in row 2\)"):
                call(X_bad, y)
    # FC takes a 1-D array as one sample: batches of a 1-D X were taken as single samples.
    with pytest.raises(ValueError, match=r"Sequential.evaluate: X has shape \(4,\)"):
        Sequential([FC(2, 2)], loss="mse").evaluate(np.arange(4.0), np.arange(4.0))


def test_data_that_does_not_fit_the_model_is_named_with_its_own_shape():
    """Both errors said "layer 0 ... failed on its input of shape (2, 3)": not which of X and
    X_val, nor their shapes (a probe's finding); evaluate named neither itself nor y."""
    clf = mlp(optimizer=SGD(0.1))
    X, y = blobs(20)
    with pytest.raises(ValueError, match=r"Classifier.fit: X_val of shape \(7, 5\) does not "
                                         r"fit the model \(tried on its first 7 samples\)"):
        clf.fit(X, y, X[:7, :5], y[:7])
    with pytest.raises(ValueError, match=r"Classifier.fit: X of shape \(20, 5\) does not fit"):
        clf.fit(X[:, :5], y)
    with pytest.raises(ValueError, match=r"Classifier.evaluate: y \(shape \(20, 3\)\) holds "
                                         r"float64 values up to 1e\+300"):
        mlp(dtype=np.float32).evaluate(X, 1e300 * np.eye(3)[y])
    X_nan = X.copy()
    X_nan[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"Classifier.evaluate: X contains NaN or inf \(first "
                                         r"in row 4\)"):
        clf.evaluate(X_nan, y)
    with pytest.raises(ValueError, match=r"X of shape \(1, 5\) does not fit the model \(tried "
                                         r"on its first sample\)"):
        clf.fit(X[:1, :5], y[:1])


def test_fit_forwards_only_batches_of_the_sizes_it_runs():
    """The dry run before the first step forwarded two samples, which on a cold cache compiled
    kernel paths that no step took (~0.2 s of the MLP's first step): it forwards the first batch
    of X, and of X_val the first batch of its evaluation."""
    seen = []

    class Spy(ReLU):
        def forward(self, x):
            seen.append(len(x))
            return super().forward(x)

    X, y = blobs(50)
    clf = Classifier([FC(6, 8, HeInitializer(seed=0)), Spy(), FC(8, 3, HeInitializer(seed=1))],
                     optimizer=SGD(0.1))
    clf.fit(X, y, X[:30], y[:30], epochs=2, batch_size=16)
    assert seen[:2] == [16, 30]                  # the dry runs
    assert seen[2:] == [16, 16, 16, 2, 30] * 2   # the epochs' batches, then validation
    seen.clear()
    clf.fit(X[:5], y[:5], epochs=1, batch_size=16)
    assert seen == [5, 5]


def test_an_error_that_cannot_take_a_message_still_names_where_it_happened():
    """A review's finding: NumPy's _UFuncNoLoopError (a TypeError) needs more than a message,
    so re-raising it with the layer's name raised a TypeError about its constructor."""
    class Buggy(ReLU):
        def forward(self, x):
            return x + "a"
    clf = Classifier([FC(6, 3, dtype=F64), Buggy()], optimizer=SGD(0.1))
    X, y = blobs(4)
    with pytest.raises(TypeError, match=r"X of shape \(4, 6\) does not fit the model .* layer 1 "
                                        r"Buggy\(\) failed .* ufunc 'add' did not contain a loop"):
        clf.fit(X, y)


def test_optimizer_subclasses_with_rules_of_their_own_are_not_dry_stepped():
    """check_for runs fastnet's own step rules only: a subclass with only its own update
    raised NotImplementedError from the base _step, and one with its own _step ran it on
    scratch arrays (counting a step, keeping state for them)."""
    class Own(SGD):
        calls = 0

        def _step(self, param, grad, state, ops=fastnet.functional):
            Own.calls += 1
            super()._step(param, grad, state, ops)

    class UpdateOnly(fastnet.optimizers.Optimizer):
        def update(self, params, grads=None):
            for key, param in params.params.items():
                param -= 0.1 * params.grads[key]
    X, y = blobs(4)
    for optimizer in (Own(0.1), UpdateOnly(0.1)):
        mlp(optimizer=optimizer).fit(X, y, batch_size=4, epochs=1)
    assert Own.calls == 6                  # 3 layers x 2 parameters x 1 batch, no more


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function", "score"])
def test_classifier_inference_needs_class_scores(method):
    # A network that outputs (N, C, L) or (N, 0): predict's argmax and predict_proba's softmax
    # would run along different axes; an empty class axis has no argmax.
    for layer, X, shape in ((Conv1d(1, 3, 1), np.ones((2, 1, 4)), r"\(3, 4\)"),
                            (ReLU(), np.ones((2, 0)), r"\(0,\)")):
        clf = Classifier([layer])
        args = (X, np.zeros(2, int)) if method == "score" else (X,)
        with pytest.raises(ValueError, match=rf"Classifier.{method}: the network outputs shape "
                                             rf"{shape} per sample; a classifier needs"):
            getattr(clf, method)(*args)


def test_saving_onto_a_folder_names_the_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match=f"cannot write {tmp_path}: it is a folder"):
        mlp().save(tmp_path)
    assert os.listdir(tmp_path) == []                # no temporary file left behind


@pytest.mark.parametrize("name", ["new/", "new/.", "m.npz/", "m.npz/.."])
def test_saving_to_a_name_that_ends_like_a_folder_says_so(tmp_path, name):
    """The rename's own error said "Not a directory" or "No such file or directory"."""
    (tmp_path / "m.npz").write_bytes(b"old")
    path = f"{tmp_path}/{name}"
    with pytest.raises(ValueError, match=f"cannot write {re.escape(path)}: names a folder"):
        mlp().save(path)
    assert os.listdir(tmp_path) == ["m.npz"]         # no temporary file left behind


@pytest.mark.parametrize("seed", [0, None, "mt19937"])
def test_training_resumed_after_load_draws_the_same_dropout_masks(tmp_path, seed):
    """The Dropout generator's position is saved: continued and resumed training agree bit for
    bit (the generator restarted from its seed on load, and gave other masks)."""
    X, y = blobs(60)
    if seed == "mt19937":
        seed = np.random.Generator(np.random.MT19937(5))
    model = Classifier([FC(6, 8, activation="relu"), Dropout(0.5, seed=seed), FC(8, 3)],
                       optimizer=SGD(0.1))
    model.fit(X, y, epochs=1, batch_size=10)
    model.save(tmp_path / "m.npz")
    loaded = Classifier.load(tmp_path / "m.npz")
    model.fit(X, y, epochs=2, batch_size=10, seed=1)
    loaded.fit(X, y, epochs=2, batch_size=10, seed=1)
    assert loaded.history["loss"] == model.history["loss"]
    for key, p in model.params.items():
        np.testing.assert_array_equal(loaded.params[key], p)


@pytest.mark.parametrize("state", [
    {"bit_generator": "Nope"}, {"bit_generator": "PCG64"}, 3,
    {"bit_generator": "MT19937", "state": {"key": [1, 2], "pos": 3}},      # key too short
    {"bit_generator": "Philox", "state": {"counter": [1], "key": [2]}, "buffer": [1],
     "buffer_pos": 0, "has_uint32": 0, "uinteger": 0}])                    # arrays too short
def test_dropout_refuses_a_generator_state_that_is_not_one(state):
    with pytest.raises(ValueError, match="Dropout: generator_state"):
        Dropout(0.5, generator_state=state)


def test_an_augment_that_works_in_place_leaves_the_callers_data_alone(backend):
    """Without shuffling a batch was a view of X: noise added in place rewrote the training
    data, more each epoch, while with shuffling it did not (a probe's finding)."""
    X, y = blobs(30)
    kept = X.copy()

    def noisy(xb, rng):
        xb += rng.normal(0, 0.1, xb.shape)
        return xb
    for shuffle in (True, False):
        mlp(optimizer=SGD(0.1)).fit(X, y, epochs=2, batch_size=10, shuffle=shuffle,
                                   augment=noisy)
        np.testing.assert_array_equal(X, kept)


def test_mistakes_in_fit_arguments_are_named_before_any_update():
    """Found late, or in words that did not say what was wrong (a probe's findings): a
    callback class failed after a whole epoch of training; random_shift itself, not called,
    failed on the first batch; a column of labels was "one-hot with 1 classes"; a layer with
    params but no grads failed inside the update, after earlier layers had changed."""
    X, y = blobs(30)

    class Plain:
        def on_epoch_end(self, epoch, logs):
            pass

    class Scale:
        def __init__(self):
            self.s = np.ones(3)

        @property
        def params(self):
            return {"s": self.s}

        def forward(self, x):
            return x * self.s

        def backward(self, dout):
            return dout * self.s
    clf = mlp(optimizer=SGD(0.1))
    for call, error, match in (
            (lambda: clf.fit(X, y, callbacks=[Plain]), TypeError,
             r"fit: callback Plain is a class; pass an instance, Plain\(\)"),
            (lambda: clf.fit(X, y, augment=fastnet.data.random_shift), TypeError,
             r"augment=random_shift is the factory; call it .* augment=random_shift\(1\)"),
            (lambda: clf.fit(X, y[:, None]), ValueError,
             r"y is one-hot with 1 classes .* for a column of labels pass y.ravel\(\)")):
        expect_untouched(clf, call, error, match)
    scaled = Classifier([FC(6, 3, dtype=F64), Scale()], optimizer=SGD(0.1))
    expect_untouched(scaled, lambda: scaled.fit(X, y), TypeError,
                     r"layer 1 .*Scale.* has params \['s'\] but grads None")


def test_a_loss_input_that_leaves_its_range_says_when():
    """A binary cross-entropy after a ReLU passes the two-sample dry run and fails later: the
    error now names the epoch and batch, as a divergence does."""
    rng = np.random.default_rng(0)
    X = rng.random((64, 4))
    X[40:] *= 100
    model = Sequential([FC(4, 1, dtype=F64), ReLU()], loss="bce", optimizer=SGD(0.01))
    model.layers[0].W[...] = 0.005
    with pytest.raises(ValueError, match=r"training stopped at epoch 1, batch 2 \(of 8\): "
                                         r"binary_cross_entropy: p must hold probabilities"):
        model.fit(X, (rng.random((64, 1)) > 0.5).astype(float), epochs=1, batch_size=8,
                  shuffle=False)


@pytest.mark.parametrize("owner", ["model", "layer"])
def test_a_parameter_that_a_callback_spoils_is_named_with_its_layer_epoch_and_batch(owner):
    """A callback that leaves a weight Fortran-ordered (it can no longer be updated in place)
    stops fit with an error that says when and where: epoch, batch, layer, parameter; whether
    the model's optimizer updates the layer or the layer's own does, inside its backward."""
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 6)), rng.integers(0, 3, 40)
    if owner == "model":
        clf = Classifier([FC(6, 5, dtype=F64), ReLU(), FC(5, 3, dtype=F64)],
                         optimizer=AdaGrad(0.1))
    else:
        clf = Classifier([FC(6, 5, HeInitializer(), AdaGrad(0.1), "relu", dtype=F64),
                          FC(5, 3, HeInitializer(), AdaGrad(0.1), dtype=F64)])

    class Spoil(Callback):
        def on_batch_end(self, batch, loss, n_samples):
            if batch == 1:
                clf.layers[-1].W = np.asfortranarray(clf.layers[-1].W)

    last = len(clf.layers) - 1
    where = (rf"layer {last} FC\(5, 3\): " if owner == "model" else
             rf"layer {last} FC\(5, 3.*\) failed in backward: ")
    with pytest.raises(ValueError, match=r"training stopped at epoch 1, batch 3 \(of 5\): "
                                         + where + r"AdaGrad.update, parameter 'W': .*"
                                         r"param \(shape \(5, 3\)\) must be C-contiguous"):
        clf.fit(X, y, epochs=1, batch_size=8, callbacks=[Spoil()])
