"""fastnet.compat: the notebooks' names, signatures and behaviour, exercised the way notebook code
uses them (small scripts written for these tests), with independent NumPy references."""
import math
import warnings

import numpy as np
import pytest

import naive
import fastnet
from fastnet import compat
from fastnet import model as fm
from fastnet.data import numerical_gradient
from fastnet.layers import Softmax


def blobs(n=200, d=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d)) * 3
    y = rng.integers(0, classes, n)
    return rng.standard_normal((n, d)) + centres[y], y


# --- scratch classifier notebook ---------------------------------------------------------------

def test_scratch_classifier_script():
    X, y = blobs()
    Y = np.eye(3)[y]                                          # the notebook passes one-hot rows
    np.random.seed(0)
    nn = [compat.FC(8, 16, compat.HeInitializer(), compat.AdaGrad(0.01), compat.ReLU()),
          compat.FC(16, 12, compat.XavierInitializer(), compat.AdaGrad(0.01), compat.Sigmoid()),
          compat.FC(12, 3, compat.SimpleInitializer(0.01), compat.AdaGrad(0.01), compat.Softmax())]
    clf = compat.ScratchDeepNeuralNetrowkClassifier(layers=nn, verbose=False)
    clf.fit(X[:150], Y[:150], X[150:], Y[150:], n_epoch=5, n_batch=20, lr=0.01)
    for log in (clf.log_loss, clf.log_loss_val, clf.log_acc, clf.log_acc_val):
        assert len(log) == 5
    assert clf.log_loss[-1] < clf.log_loss[0]
    y_pred = clf.predict(X[150:])
    assert y_pred.shape == (50,) and np.mean(y_pred == y[150:]) > 0.9
    assert compat.ScratchDeepNeuralNetworkClassifier is compat.ScratchDeepNeuralNetrowkClassifier
    assert nn[0].W.dtype == np.float64                        # compat parameters: float64


def mean_cross_entropy(Z, T):
    return -np.mean(np.sum(T * np.log(Z), axis=1))


def test_a_notebook_loop_over_compat_layers_gets_the_exact_gradient(backend):
    """The classifier notebook's own loop, kept as the user wrote it and run on compat layers:
    it passes ``(Z - T) / N`` to the last layer's backward and expects the softmax to pass it
    through. Once the compat Softmax applied its Jacobian to it: a wrong gradient, 91.2 %
    against 92.5 % after three epochs on 6000 MNIST images."""
    X, y = blobs(12)
    T = np.eye(3)[y]
    np.random.seed(0)
    layers = [compat.FC(8, 6, compat.HeInitializer(), compat.SGD(0.0), compat.ReLU()),
              compat.FC(6, 3, compat.SimpleInitializer(0.5), compat.SGD(0.0), compat.Softmax())]

    def forward(x):
        for layer in layers:
            x = layer.forward(x)
        return x
    Z = forward(X)
    b = (Z - T) / len(X)                         # the notebook loop's gradient at the logits
    for layer in reversed(layers):
        b = layer.backward(b)
    for layer in layers:
        numeric = numerical_gradient(lambda _: mean_cross_entropy(forward(X), T), layer.W)
        np.testing.assert_allclose(layer.dW, numeric, rtol=1e-6, atol=1e-10)


def test_the_articles_own_loop_over_compat_layers_gets_the_exact_gradient(backend):
    """The small-framework article's loop: ``error = (output - y) / N`` into
    ``layer.backward(error, learning_rate)`` from the last layer back."""
    rng = np.random.default_rng(7)
    X, T = rng.random((5, 4)), np.eye(3)[[0, 2, 1, 1, 0]]
    probe = compat.Linear(4, 3)
    layers = [probe, compat.Softmax()]

    def forward(x):
        for layer in layers:
            x = layer.forward(x)
        return x
    error = (forward(X) - T) / len(X)
    for layer in reversed(layers):
        error = layer.backward(error, 0.0)
    numeric = numerical_gradient(lambda _: mean_cross_entropy(forward(X), T), probe.weights)
    np.testing.assert_allclose(probe.dW, numeric, rtol=1e-6, atol=1e-10)


def test_the_compat_softmax_backward_passes_its_gradient_through():
    s = compat.Softmax()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        s.backward(np.ones((1, 3)))
    s.forward(np.array([[1.0, 2.0, 0.5]], np.float32))
    dZ = s.backward(np.array([[0.25, -0.5, 0.25]]))             # float64 in: the layer's dtype out
    assert dZ.dtype == np.float32
    np.testing.assert_array_equal(dZ, [[0.25, -0.5, 0.25]])
    with pytest.raises(ValueError, match=r"dZ has shape \(1, 2\); the forward output has "
                                         r"shape \(1, 3\)"):
        s.backward(np.ones((1, 2)))


def test_models_refuse_the_compat_softmax_where_its_gradient_would_be_wrong(backend):
    """It can only end a network trained with the softmax cross-entropy, which takes its place
    (there it trains as fastnet's own Softmax does)."""
    X, y = blobs(20)
    wrong = [fm.Classifier([fastnet.layers.FC(8, 5), compat.Softmax(), fastnet.layers.FC(5, 3)],
                           optimizer=compat.SGD(0.1)),
             fm.Classifier([fastnet.layers.FC(8, 5, activation=compat.Softmax()),
                            fastnet.layers.FC(5, 3)], optimizer=compat.SGD(0.1)),
             fm.Sequential([fastnet.layers.FC(8, 3), compat.Softmax()], loss="mse",
                           optimizer=compat.SGD(0.1))]
    targets = [y, y, np.eye(3)[y]]
    for model, t in zip(wrong, targets):
        W0 = model.layers[0].W.copy()
        with pytest.raises(ValueError, match=r"fit: the (layer|activation of layer) [01] is "
                                             r"fastnet\.compat\.Softmax, whose backward passes"):
            model.fit(X, t, epochs=1)
        assert np.array_equal(model.layers[0].W, W0)             # refused before any update
    nn = compat.NeuralNetwork([compat.Linear(8, 3), compat.Softmax()], loss="mse",
                              learning_rate=0.1)
    with pytest.raises(ValueError, match="NeuralNetwork.backward: the layer 1 is"):
        nn.train(X, np.eye(3)[y], epochs=1)
    fine = fm.Classifier([fastnet.layers.FC(8, 3, dtype=np.float64), compat.Softmax()],
                         optimizer=compat.SGD(0.1))
    fine.fit(X, y, epochs=1)


def test_verbose_prints_the_notebooks_epoch_line(capsys):
    X, y = blobs(60)
    nn = [compat.FC(8, 3, compat.SimpleInitializer(0.01, seed=0), compat.AdaGrad(0.01),
                    compat.Softmax())]
    clf = compat.ScratchDeepNeuralNetrowkClassifier(layers=nn, verbose=True)
    clf.fit(X, np.eye(3)[y], n_epoch=2, n_batch=20)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"epoch:{e:>3} loss:{clf.log_loss[e]:>8,.3f} acc:{clf.log_acc[e]:>5,.3f}"
                     for e in range(2)]
    assert lines[0].startswith("epoch:  0 loss:   ")


def test_fit_lr_trains_the_layers_without_their_own_optimizer():
    X, y = blobs(40)
    for lr in (0.0, 0.5):
        nn = [compat.FC(8, 5, compat.HeInitializer(seed=0), None, compat.ReLU()),
              compat.FC(5, 3, compat.SimpleInitializer(0.01, seed=1), compat.SGD(0.1),
                        compat.Softmax())]
        W0 = nn[0].W.copy()
        compat.ScratchDeepNeuralNetrowkClassifier(nn).fit(X, np.eye(3)[y], n_epoch=1, lr=lr)
        assert np.array_equal(nn[0].W, W0) == (lr == 0.0)
    # a bad lr is named as fit's argument (it was SGD's, a class the caller never built)
    clf = compat.ScratchDeepNeuralNetrowkClassifier(nn)
    for lr, exc in ((-1, ValueError), (None, TypeError), ("0.01", TypeError)):
        with pytest.raises(exc, match=r"^ScratchDeepNeuralNetrowkClassifier\.fit: lr"):
            clf.fit(X, y, n_epoch=1, lr=lr)


def test_initial_weights_are_the_notebooks():
    np.random.seed(42)
    W1 = np.random.randn(784, 400) * np.sqrt(2 / 784)
    W2 = 0.01 * np.random.randn(400, 10)
    np.random.seed(42)
    fc1 = compat.FC(784, 400, compat.HeInitializer(), compat.AdaGrad(0.01), compat.ReLU())
    fc2 = compat.FC(400, 10, compat.SimpleInitializer(0.01), compat.AdaGrad(0.01),
                    compat.Softmax())
    np.testing.assert_array_equal(fc1.W, W1)
    np.testing.assert_array_equal(fc2.W, W2)
    np.testing.assert_array_equal(fc2.b, np.zeros(10))


def test_fit_keeps_the_notebooks_last_epoch_records():
    X, y = blobs(70)
    nn = [compat.FC(8, 3, compat.SimpleInitializer(0.01, seed=0), compat.AdaGrad(0.05),
                    compat.Softmax())]
    clf = compat.ScratchDeepNeuralNetrowkClassifier(nn)
    assert clf.loss_val is None and clf.true_y is None and clf.pred_y is None
    clf.fit(X[:50], np.eye(3)[y[:50]], X[50:], np.eye(3)[y[50:]], n_epoch=3, n_batch=20)
    assert clf.loss_val == clf.log_loss_val[-1]
    # the last epoch's training labels and predictions, batch after batch: every sample once
    assert clf.true_y.shape == clf.pred_y.shape == (50,)
    assert np.array_equal(np.sort(clf.true_y), np.sort(y[:50]))
    assert np.mean(clf.true_y == clf.pred_y) == clf.log_acc[-1]
    clf.fit(X[:50], y[:50], n_epoch=1)                  # labels, no validation data
    assert clf.loss_val is None and clf.true_y.shape == (50,)
    W = nn[0].W.copy()
    clf.fit(X[:50], y[:50], X[50:], y[50:], n_epoch=0)  # the notebook's loop ran no epoch
    assert clf.log_loss == clf.log_loss_val == clf.log_acc == [] and clf.loss_val is None
    assert np.array_equal(nn[0].W, W)


class NotebookFC:
    """A layer as a scratch notebook writes it: no ``params``; it updates itself in backward,
    with its own optimizer, from a gradient it averages over the batch itself."""

    def __init__(self, n_nodes1, n_nodes2, initializer, optimizer, activation):
        self.optimizer, self.activation = optimizer, activation
        self.W = initializer.W(n_nodes1, n_nodes2)
        self.b = initializer.b(n_nodes2)

    def forward(self, X):
        self.X = X
        return self.activation.forward(X @ self.W + self.b)

    def backward(self, dA):
        dA = self.activation.backward(dA)
        self.db = dA.mean(axis=0)
        self.dW = self.X.T @ dA / len(self.X)
        dZ = dA @ self.W.T
        self.optimizer.update(self)
        return dZ


class NotebookReLU:
    def forward(self, a):
        self.a = a
        return np.maximum(a, 0)

    def backward(self, dZ):
        return np.where(self.a > 0, dZ, 0)


def test_the_classifier_takes_the_notebooks_own_layers():
    """Migrating piece by piece: once an AttributeError ('FC' object has no attribute 'params')."""
    X, y = blobs(120)
    np.random.seed(0)
    layers = [NotebookFC(8, 16, compat.HeInitializer(), compat.SGD(0.5), compat.ReLU()),
              compat.FC(16, 3, compat.XavierInitializer(), compat.SGD(0.5), None)]
    W0 = layers[0].W.copy()
    clf = compat.ScratchDeepNeuralNetrowkClassifier(layers)
    clf.fit(X, np.eye(3)[y], n_epoch=10, n_batch=20)
    assert not np.array_equal(layers[0].W, W0)                  # it updated itself
    assert clf.log_loss[-1] < 0.5 * clf.log_loss[0] and np.mean(clf.predict(X) == y) > 0.9
    assert list(clf.params) == ["1.W", "1.b"]                     # fastnet's own only

    relu_apart = [compat.FC(8, 16, compat.HeInitializer(), compat.SGD(0.5), None), NotebookReLU(),
                  compat.FC(16, 3, compat.XavierInitializer(), compat.SGD(0.5), None)]
    clf = compat.ScratchDeepNeuralNetrowkClassifier(relu_apart)
    clf.fit(X, np.eye(3)[y], n_epoch=10, n_batch=20)
    assert np.mean(clf.predict(X) == y) > 0.9


class notebook:
    class Softmax:
        """A notebook's own (recognised by its class name): backward passes dZ through."""

        def forward(self, a):
            e = np.exp(a - a.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)

        def backward(self, dZ):
            return dZ


def test_a_notebooks_own_fc_ending_in_fastnets_softmax_trains_as_with_its_own():
    """A notebook's FC whose activation is ``compat.Softmax``: its output was taken for logits
    and softmax-ed again in the loss (an audit: MNIST 0.29 accuracy against 0.91), with a
    warning that told the user to use the softmax they had used. Now it trains as the same FC
    with the notebook's own Softmax; ``fastnet.layers.Softmax`` (an exact Jacobian, wrong for
    the gradient at the logits that the loss hands it) is refused, and so is ``compat.Softmax``
    anywhere but at the end."""
    X, y = blobs(120)
    logs = []
    for softmax in (notebook.Softmax(), compat.Softmax()):
        np.random.seed(0)
        layers = [NotebookFC(8, 16, compat.HeInitializer(), compat.AdaGrad(0.05), compat.ReLU()),
                  NotebookFC(16, 3, compat.SimpleInitializer(0.01), compat.AdaGrad(0.05),
                             softmax)]
        clf = compat.ScratchDeepNeuralNetrowkClassifier(layers)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            clf.fit(X, np.eye(3)[y], X, np.eye(3)[y], n_epoch=5, n_batch=20)
        logs.append((clf.log_loss, clf.log_loss_val, clf.log_acc))
        assert clf.log_loss[-1] < 0.3 * clf.log_loss[0] and clf.log_acc[-1] > 0.9
    np.testing.assert_allclose(np.array(logs[1]), np.array(logs[0]), rtol=1e-10)

    for layers, words in (
            ([NotebookFC(8, 3, compat.HeInitializer(), compat.SGD(0.1), Softmax())],
             r"layer of your own whose activation is fastnet.layers.Softmax.* use "
             r"fastnet.compat.Softmax\(\) there"),
            ([NotebookFC(8, 4, compat.HeInitializer(), compat.SGD(0.1), compat.Softmax()),
              NotebookFC(4, 3, compat.HeInitializer(), compat.SGD(0.1), notebook.Softmax())],
             r"activation of layer 0 is fastnet.compat.Softmax")):
        clf = compat.ScratchDeepNeuralNetrowkClassifier(layers)
        with pytest.raises(ValueError, match=words):
            clf.fit(X, np.eye(3)[y], n_epoch=1)


def test_a_users_fc_subclass_ending_the_network_runs_its_own_passes(backend):
    """A user's subclass of ``compat.FC`` as the last layer: fit and predict fused its softmax
    with the loss through FC's private passes, so its own forward and backward never ran (an
    audit: a gradient clip in ``backward`` changed nothing, a changed output in ``forward`` was
    not what ``predict`` saw). They run now, as in the notebook's own loop."""
    X, y = blobs(120)
    calls = []

    class CountingFC(compat.FC):
        def forward(self, X):
            calls.append("forward")
            return super().forward(X)

        def backward(self, dA):
            calls.append("backward")
            return super().backward(dA)

    class FrozenFC(compat.FC):            # hands its dense part no gradient
        def backward(self, dA):
            return super().backward(np.zeros_like(dA))

    class AlwaysClass2(compat.FC):
        def forward(self, X):
            return np.eye(3)[np.full(len(super().forward(X)), 2)]

    def classifier(last):
        np.random.seed(0)
        layers = [compat.FC(8, 16, compat.HeInitializer(), compat.SGD(0.5), compat.ReLU()),
                  last(16, 3, compat.SimpleInitializer(0.01), compat.SGD(0.5), compat.Softmax())]
        return compat.ScratchDeepNeuralNetrowkClassifier(layers), layers[1].W.copy()

    logs = []
    for last in (compat.FC, CountingFC):
        clf, _ = classifier(last)
        clf.fit(X, np.eye(3)[y], n_epoch=3, n_batch=20)
        logs.append(clf.log_loss)
    assert calls.count("backward") == 3 * 6 and calls.count("forward") >= 3 * 6
    np.testing.assert_allclose(logs[1], logs[0], rtol=1e-9)     # the same training

    clf, W0 = classifier(FrozenFC)
    clf.fit(X, np.eye(3)[y], n_epoch=1, n_batch=20)
    assert np.array_equal(clf.layers[1].W, W0)
    clf, _ = classifier(AlwaysClass2)
    assert np.all(clf.predict(X) == 2)


def test_fc_forward_backward_shapes_as_in_the_notebook():
    fc = compat.FC(4, 3, compat.XavierInitializer(seed=0), compat.SGD(0.1), compat.Sigmoid())
    X = np.random.default_rng(0).random((5, 4))
    A = fc.forward(X)
    assert A.shape == (5, 3) and np.all((A > 0) & (A < 1))
    dZ = fc.backward(np.ones((5, 3)))
    assert dZ.shape == (5, 4) and fc.dW.shape == (4, 3) and fc.db.shape == (3,)


def test_get_mini_batch():
    X, y = np.arange(50).reshape(25, 2), np.arange(25)
    batches = compat.GetMiniBatch(X, y, batch_size=10)
    assert len(batches) == 3
    xb, yb = batches[2]
    assert len(xb) == 5 and np.array_equal(xb[:, 0] // 2, yb)
    assert sum(len(b) for b, _ in batches) == 25


@pytest.mark.parametrize("seed", [0, 7, np.uint32(2**32 - 1)])
def test_get_mini_batch_gives_the_notebooks_batches_for_an_integer_seed(seed):
    """The notebook drew ``np.random.seed(seed); np.random.permutation(np.arange(n))``; the
    same batches come from a private RandomState, and the global state is left alone."""
    X, y = np.arange(50).reshape(25, 2), np.arange(25)
    np.random.seed(123)
    state = np.random.get_state()
    batches = [(xb, yb) for xb, yb in compat.GetMiniBatch(X, y, batch_size=10, seed=seed)]
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]
    np.random.seed(seed)
    order = np.random.permutation(np.arange(len(X)))
    for i, (xb, yb) in enumerate(batches):
        np.testing.assert_array_equal(xb, X[order][i * 10:(i + 1) * 10])
        np.testing.assert_array_equal(yb, y[order][i * 10:(i + 1) * 10])
    with pytest.raises(ValueError, match=r"^GetMiniBatch: seed=4294967296"):
        compat.GetMiniBatch(X, y, seed=2**32)


def test_compat_model_save_round_trip(tmp_path):
    X, y = blobs(60)
    nn = [compat.FC(8, 6, compat.HeInitializer(seed=0), compat.AdaGrad(0.01), compat.ReLU()),
          compat.FC(6, 3, compat.SimpleInitializer(0.01, seed=1), compat.AdaGrad(0.01),
                    compat.Softmax())]
    clf = compat.ScratchDeepNeuralNetrowkClassifier(nn).fit(X, np.eye(3)[y], n_epoch=2)
    clf.save(tmp_path / "clf.npz")
    loaded = fm.load(tmp_path / "clf.npz")
    assert type(loaded) is compat.ScratchDeepNeuralNetrowkClassifier
    assert type(loaded.layers[0].optimizer) is compat.AdaGrad
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# --- the 1-D convolution notebook --------------------------------------------------------------

def test_conv_notebook_worked_examples(backend):
    """The notebook's cells, as written there (integer arrays, its SGD(0.1) update)."""
    cnn = compat.CNN_FC(np.array([3, 5, 7]), np.array([1]), compat.SGD(0.1), 1, 0)
    np.testing.assert_array_equal(cnn.forward(np.array([1, 2, 3, 4])), [35, 50])
    np.testing.assert_array_equal(cnn.backward(np.array([10, 20])), [30, 110, 170, 140])
    np.testing.assert_array_equal(cnn.LW, [50, 80, 110])
    np.testing.assert_array_equal(cnn.LB, [30])
    np.testing.assert_allclose(cnn.W, [3 - 5.0, 5 - 8.0, 7 - 11.0])    # W - 0.1 * LW
    np.testing.assert_allclose(cnn.B, [1 - 3.0])

    cnn_2 = compat.CNN2dim_FC(np.ones((3, 2, 3)), np.array([1, 2, 3]), compat.SGD(0.1), 1, 0)
    np.testing.assert_array_equal(cnn_2.forward(np.array([[1, 2, 3, 4], [2, 3, 4, 5]])),
                                  [[16, 22], [17, 23], [18, 24]])
    dZ = cnn_2.backward(np.array([[52, 56], [32, 35], [9, 11]]))
    np.testing.assert_array_equal(dZ, [[93, 195, 195, 102]] * 2)
    np.testing.assert_array_equal(cnn_2.LB, [108, 67, 20])


@pytest.mark.parametrize("padding, error, match", [
    (None, TypeError, "padding must be an integer; got None"),
    ("full", ValueError, "padding='full'"),
    ((1, 2, 3), ValueError, r"a \(left, right\) pair"),
    (-1, ValueError, r"padding=-1; expected an integer >= 0"),
    (1.5, TypeError, "padding must be an integer; got 1.5"),
])
def test_n_out_names_a_bad_padding(padding, error, match):
    """N_OUT checked for swapped operands with arithmetic on padding before anything checked
    it: None or a string failed as Python's own "unsupported operand" errors, and -1 on an
    input as long as the filter was blamed on a swap (an audit's finding)."""
    for x in (np.arange(10.0), np.zeros(3)):
        with pytest.raises(error, match=match):
            compat.N_OUT(1, padding, x, np.ones(3))
    assert compat.N_OUT(1, "same", np.zeros(3), np.ones(3)) == 3
    assert compat.N_OUT(1, (1, 0), np.zeros(3), np.ones(3)) == 2


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), (3, 2), (1, 3)])
def test_conv_notebook_layers_against_naive_loops(backend, stride, padding):
    """Every stride and padding is honoured (the notebook's loops fixed the output at L - 2)."""
    rng = np.random.default_rng(stride * 10 + padding)
    x, w = rng.standard_normal((3, 2, 11)), rng.standard_normal((4, 2, 3))
    b = rng.standard_normal(4)
    want = naive.conv1d(x, w, b, stride, padding, padding)
    dout = rng.standard_normal(want.shape)
    dx, dW, db = naive.conv1d_backward(dout, x, w, stride, padding, padding)
    batch = compat.CNN_mnist_FC(w, b, None, stride, padding)
    np.testing.assert_allclose(batch.forward(x), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(batch.backward(dout), dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(batch.LW, dW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(batch.LB, db, rtol=1e-12, atol=1e-12)
    assert compat.N_OUT(stride, padding, x, w) == want.shape[2]
    if padding == 0:        # the conv notebook's CNN2dim_FC.backward passes (W, A): named so
        with pytest.raises(ValueError, match=r"N_OUT\(stride, padding, X, W\): the filter W "
                                             r"\(shape \(2, 11\), length 11\) is longer .* "
                                             r"swapped"):
            compat.N_OUT(stride, padding, w, x[0])

    one = compat.CNN2dim_FC(w, b, None, stride, padding)          # one sample (C, L)
    np.testing.assert_allclose(one.forward(x[1]), want[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(one.backward(dout[1]), naive.conv1d_backward(
        dout[1:2], x[1:2], w, stride, padding, padding)[0][0], rtol=1e-12, atol=1e-12)

    single = compat.CNN_FC(w[0, 0], b[:1], None, stride, padding)  # one channel (L,)
    want1 = naive.conv1d(x[:1, :1], w[:1, :1], b[:1], stride, padding, padding)[0, 0]
    np.testing.assert_allclose(single.forward(x[0, 0]), want1, rtol=1e-12, atol=1e-12)


def test_conv_notebook_layers_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match=r"CNN_FC: w must be \(K,\) with b \(1,\)"):
        compat.CNN_FC(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match=r"X has shape \(2, 5\); with w of shape \(3,\) it "
                                         r"must be \(L,\)"):
        compat.CNN_FC(np.ones(3), np.ones(1)).forward(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"stride"):
        compat.CNN_mnist_FC(np.ones((3, 1, 3)), np.ones(3), None, 0, 0)


def test_conv_notebook_layers_check_da_against_the_forward_output(backend):
    """dA of another shape is named in the caller's shapes (conv1d_backward named them as
    (N, C, L)); a batch of one for a single sample was taken silently."""
    one = compat.CNN_FC(np.array([3.0, 5, 7]), np.array([1.0]), None, 1, 0)
    one.forward(np.array([1.0, 2, 3, 4]))
    with pytest.raises(ValueError, match=r"CNN_FC.backward: dA has shape \(3,\); expected "
                                         r"\(2,\)"):
        one.backward(np.array([10.0, 20, 30]))
    multi = compat.CNN2dim_FC(np.ones((3, 2, 3)), np.array([1.0, 2, 3]), None, 1, 0)
    multi.forward(np.array([[1.0, 2, 3, 4], [2, 3, 4, 5]]))
    for dA in (np.ones((1, 3, 2)), np.ones((2, 3))):
        with pytest.raises(ValueError, match=r"dA has shape .*; expected \(3, 2\)"):
            multi.backward(dA)
    np.testing.assert_array_equal(multi.backward(np.ones((3, 2))), [[3, 6, 6, 3]] * 2)


def test_conv_layers_keep_the_notebooks_n_out():
    """The notebook's backward kept the output length as ``self.n_out``; code reading it got an
    AttributeError."""
    conv = compat.CNN2dim_FC(np.ones((3, 2, 3)), np.array([1, 2, 3]), compat.SGD(0.1), 1, 0)
    assert conv.n_out is None
    conv.forward(np.array([[1, 2, 3, 4], [2, 3, 4, 5]]))
    conv.backward(np.array([[52, 56], [32, 35], [9, 11]]))
    assert conv.n_out == 2
    one = compat.CNN_FC(np.array([3, 5, 7]), np.array([1]), compat.SGD(0.01), 2, 1)
    one.forward(np.arange(7.0))
    assert one.n_out == 4


def test_conv_notebook_training_step_as_in_its_mnist_cell():
    """Cell In[20]: conv, Relu, FC, Softmax.backward(Z, Y) -> Z - Y, backward through all."""
    rng = np.random.default_rng(0)
    X, T = rng.random((6, 1, 12)), np.eye(3)[[0, 1, 2, 0, 1, 2]]
    conv = compat.CNN_mnist_FC(rng.standard_normal((2, 1, 3)), np.zeros(2), compat.SGD(0.1), 1, 0)
    np.random.seed(0)
    fc = compat.FC(20, 3, compat.SimpleInitializer(0.1), compat.SGD(0.1))
    relu, softmax = compat.Relu(), compat.Softmax()
    A = relu.forward(conv.forward(X))
    Z = softmax.forward(fc.forward(A.reshape(6, -1)))
    dA = softmax.backward(Z, T)
    np.testing.assert_allclose(dA, Z - T)
    assert softmax.cross_entropy == pytest.approx(-np.mean(np.log(Z[T == 1])))
    W0 = conv.W.copy()
    dZ = conv.backward(relu.backward(fc.backward(dA).reshape(A.shape)))
    assert dZ.shape == X.shape and not np.array_equal(conv.W, W0)


def test_sgd_update_returns_the_layer_and_takes_the_conv_notebooks_attributes():
    class NotebookConv:                        # the notebook's own layer: W, B, LW, LB
        def __init__(self, optimizer):
            self.W, self.B, self.optimizer = np.ones(3), np.ones(1), optimizer

        def backward(self, dA):
            self.LW, self.LB, self.dZ = np.full(3, 2.0), np.array([4.0]), dA
            self = self.optimizer.update(self)        # noqa: PLW0642 (the notebook's line)
            return self.dZ
    for opt in (compat.SGD(0.5), compat.AdaGrad(0.5)):
        layer = NotebookConv(opt)
        assert layer.backward(7) == 7
        assert layer.W[0] < 1 and layer.B[0] < 1


def test_optimizers_take_a_notebook_layer_whose_bias_and_gradients_are_integers():
    """The conv notebook's worked example builds its layer from ``b = np.array([1, 2, 3])`` and
    integer deltas; its own SGD rebinds ``B = B - lr*LB`` (float64). So do fastnet's: a float64
    copy at every update, and AdaGrad's state follows it."""
    class NotebookConv:
        def __init__(self, optimizer):
            self.W, self.B, self.optimizer = np.ones((3, 2)), np.array([1, 2, 3]), optimizer

        def backward(self):
            self.LW, self.LB = np.ones((3, 2), int), np.array([20, 30, 4])
            return self.optimizer.update(self)

    layer = NotebookConv(compat.SGD(0.1))
    assert layer.backward() is layer
    assert layer.B.dtype == np.float64
    np.testing.assert_allclose(layer.B, [1 - 2.0, 2 - 3.0, 3 - 0.4])
    np.testing.assert_allclose(layer.W, 0.9)
    layer = NotebookConv(compat.AdaGrad(0.1))
    layer.backward()
    bias = layer.B
    layer.backward()
    assert layer.B is not bias and layer.optimizer.state_of(bias) == {}
    h = np.array([20, 30, 4.0]) ** 2 * 2
    np.testing.assert_allclose(layer.optimizer.state_of(layer.B)["h"], h)
    np.testing.assert_allclose(layer.optimizer.hb, h)


@pytest.mark.parametrize("optimizer", [compat.SGD, compat.AdaGrad])
def test_a_conv_notebook_layers_update_leaves_the_callers_arrays_alone(optimizer):
    """The conv notebook's layers keep the ``w`` and ``b`` they are given, and its own SGD
    rebinds ``W = W - lr*LW``: the caller's arrays never change, so a cell run again, or a
    second layer built from the same ``w``, starts from them. Updated in place, the caller's
    ``w`` changed (a notebook cell re-run printed other numbers) and the layers were tied."""
    class NotebookConv:                        # the notebook's CNN2dim_FC keeps w and b
        def __init__(self, w, b, optimizer):
            self.W, self.B, self.optimizer = w, b, optimizer

        def backward(self):
            self.LW, self.LB = np.full(self.W.shape, 2.0), np.ones(self.B.shape)
            return self.optimizer.update(self)

    w, b = np.ones((3, 2, 3)), np.array([1.0, 2.0, 3.0])
    first, second = NotebookConv(w, b, optimizer(0.1)), NotebookConv(w, b, optimizer(0.1))
    for _ in range(2):
        first.backward()
    np.testing.assert_array_equal(w, 1)
    np.testing.assert_array_equal(b, [1, 2, 3])
    assert second.W is w and np.all(first.W < 1) and np.all(first.B < b)
    # fastnet's own layers own their arrays and are updated in place, as before
    fc = compat.FC(4, 2, compat.SimpleInitializer(0.1), optimizer(0.1))
    W = fc.W
    fc.forward(np.ones((3, 4)))
    fc.backward(np.ones((3, 2)))
    assert fc.W is W


def test_simple_initializer_b_is_the_conv_notebooks_random_bias():
    np.random.seed(3)
    want = 0.1 * np.random.randn(5)
    np.random.seed(3)
    np.testing.assert_array_equal(compat.SimpleInitializer(0.1).B(5), want)

    class OnlyB:                               # the notebook's own initializer: W and B
        def W(self, n1, n2):
            return np.ones((n1, n2))

        def B(self, n2):
            return np.arange(n2, dtype=float)
    np.testing.assert_array_equal(compat.FC(2, 3, OnlyB(), None).b, [0, 1, 2])  # was zeros


def test_softmax_backward_with_targets_is_the_conv_notebooks_loss_gradient():
    s = compat.Softmax()
    Z = s.forward(np.array([[1.0, 2.0, 0.5]]))
    np.testing.assert_allclose(s.backward(Z, np.array([[0, 1, 0]])), Z - [[0, 1, 0]])
    with pytest.raises(ValueError, match=r"Softmax.backward\(Z, Y\): Z .* and Y .* must be"):
        s.backward(Z, np.ones((1, 2)))


# --- Deep Learning from Scratch ------------------------------------------------------------------

def reference_loss(net, x, t):
    """Softmax cross-entropy of the two-layer net, written out in NumPy."""
    p = net.params
    h = np.maximum(x @ p["W1"] + p["b1"], 0)
    z = h @ p["W2"] + p["b2"]
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -np.mean(logp[np.arange(len(x)), t])


@pytest.mark.parametrize("one_hot", [False, True])
def test_two_layer_net_gradient_matches_numerical_gradient(backend, one_hot):
    rng = np.random.default_rng(1)
    net = compat.TwoLayerNet(input_size=5, hidden_size=4, output_size=3, weight_init_std=0.5)
    x = rng.random((6, 5)).astype(np.float32)             # the book's images are float32
    labels = rng.integers(0, 3, 6)
    t = np.eye(3)[labels] if one_hot else labels
    assert net.loss(x, t) == pytest.approx(reference_loss(net, x.astype(np.float64), labels),
                                           rel=1e-12)
    grads = net.gradient(x, t)
    numeric = net.numerical_gradient(x, t)
    for key in ("W1", "b1", "W2", "b2"):
        assert grads[key].dtype == net.params[key].dtype == np.float64
        np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-5, atol=1e-7)


def test_two_layer_net_training_loop_of_the_book():
    X, y = blobs(300, d=10)
    T = np.eye(3)[y]
    np.random.seed(0)
    expected_W1 = 0.01 * np.random.randn(10, 20)
    np.random.seed(0)
    net = compat.TwoLayerNet(input_size=10, hidden_size=20, output_size=3)
    np.testing.assert_array_equal(net.params["W1"], expected_W1)
    first = net.loss(X, T)
    rng = np.random.default_rng(0)
    for _ in range(300):
        mask = rng.choice(len(X), 50)
        grad = net.gradient(X[mask], T[mask])
        for key in ("W1", "b1", "W2", "b2"):
            net.params[key] -= 0.1 * grad[key]
    assert net.layers["Affine1"].W is net.params["W1"]       # the layers see the update
    assert net.loss(X, T) < first / 4
    assert net.accuracy(X, T) == net.accuracy(X, y) > 0.9


def test_affine_relu_softmax_with_loss():
    rng = np.random.default_rng(2)
    W, b = rng.standard_normal((12, 3)), rng.standard_normal(3)
    affine = compat.Affine(W, b)
    x = rng.standard_normal((4, 3, 4))                      # flattened, shape restored
    out = affine.forward(x)
    np.testing.assert_allclose(out, x.reshape(4, 12) @ W + b, rtol=1e-12)
    relu = compat.Relu()
    r = relu.forward(out)
    dout = rng.standard_normal(r.shape)
    kept = dout.copy()
    dr = relu.backward(dout)
    np.testing.assert_array_equal(dout, kept)                # the book wrote into dout
    np.testing.assert_array_equal(dr, np.where(out > 0, dout, 0))
    assert affine.backward(dr).shape == (4, 3, 4)
    np.testing.assert_allclose(affine.dW, x.reshape(4, 12).T @ dr, rtol=1e-12)
    swl = compat.SoftmaxWithLoss()
    t = np.eye(3)[[0, 2, 1, 1]]
    loss = swl.forward(out, t)
    p = np.exp(out - out.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[t == 1])), rel=1e-12)
    np.testing.assert_allclose(swl.backward(), (p - t) / 4, rtol=1e-10, atol=1e-15)
    assert compat.cross_entropy_error(p, t) == pytest.approx(loss, rel=1e-12)
    with pytest.raises(TypeError, match="b must be a float64 array of shape"):
        compat.Affine(W, b.astype(np.float32))
    # the right kind of array in the wrong shape is a ValueError naming the shapes
    with pytest.raises(ValueError, match=r"b must have shape \(3,\) for W of shape \(12, 3\); "
                                         r"got \(5,\)"):
        compat.Affine(W, np.zeros(5))
    with pytest.raises(ValueError, match=r"W must be a 2-D array .* got shape \(36,\)"):
        compat.Affine(W.ravel(), b)


def test_softmax_with_loss_takes_one_sample(backend, dtype):
    """As the book's softmax and cross_entropy_error do, SoftmaxWithLoss takes one sample
    ``x (C,)`` with its one-hot row or its label: the loss of a batch of one, ``y`` and the
    gradient ``(C,)``, the gradient not divided by the number of classes (the book's is)."""
    x = np.array([0.3, 2.9, 4.0], dtype)
    p = np.exp(x.astype(np.float64) - 4.0)
    p /= p.sum()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for t in (np.array([0, 0, 1]), 2, [2], np.array([0.0, 0.0, 1.0], dtype)):
        swl = compat.SoftmaxWithLoss()
        assert swl.forward(x, t) == pytest.approx(-np.log(p[2]), rel=tol)
        assert swl.y.shape == (3,)
        np.testing.assert_allclose(swl.y, p, rtol=tol)
        dx = swl.backward(2.0)
        assert dx.shape == (3,) and dx.dtype == dtype
        np.testing.assert_allclose(dx, 2.0 * (p - [0, 0, 1]), rtol=tol, atol=tol)
    with pytest.raises(ValueError, match=r"SoftmaxWithLoss.forward: x of shape \(3,\) is one "
                                         r"sample; t must be its one-hot row \(3,\) or its "
                                         r"label, got shape \(2,\)"):
        compat.SoftmaxWithLoss().forward(x, [0, 1])
    with pytest.raises(ValueError, match="label 3 out of range for 3 classes"):
        compat.SoftmaxWithLoss().forward(x, 3)


# --- column layout -------------------------------------------------------------------------------

def test_column_layout_functions():
    rng = np.random.default_rng(3)
    U = rng.normal(size=(20, 100))
    S = compat.softmax(U)
    assert S.shape == (20, 100)
    np.testing.assert_allclose(S.sum(axis=0), 1, rtol=1e-12)
    E = np.exp(U - U.max(axis=0))
    np.testing.assert_allclose(S, E / E.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(compat.softmax(U.T, reduce_axis=1), S.T, rtol=1e-12)
    assert np.isfinite(compat.softmax(np.array([[1000.0], [-1000.0]]))).all()
    D = np.zeros((10, 100))
    D[4] = 1.0
    Y = np.full((10, 100), 0.1)
    ce = compat.softmax_cross_entropy(D, Y)
    assert ce.shape == () and ce == pytest.approx(100 * math.log(10), rel=1e-12)   # ~230
    # The exercise's template clips Y to [1e-8, 1 - 1e-8]: a confidently wrong column costs
    # -log(1e-8), and a NaN probability stays NaN (np.clip keeps it).
    assert compat.softmax_cross_entropy(D, np.zeros((10, 100))) == pytest.approx(
        100 * -math.log(1e-8), rel=1e-12)
    assert compat.softmax_cross_entropy(D[:, :1], np.eye(10)[:, 4:5]) == pytest.approx(
        -math.log(1 - 1e-8), rel=1e-9)
    Y32 = np.full((10, 2), np.nan, np.float32)
    assert np.isnan(compat.softmax_cross_entropy(D[:, :2].astype(np.float32), Y32))
    assert compat.sigmoid(U).shape == (20, 100)
    assert np.isfinite(compat.sigmoid(np.array([-1000.0, 1000.0]))).all()
    ds = compat.dsigmoid_du(U)
    h = 1e-6
    np.testing.assert_allclose(ds, (compat.sigmoid(U + h) - compat.sigmoid(U - h)) / (2 * h),
                               rtol=1e-6, atol=1e-10)


def test_column_layout_sigmoids_of_a_number_are_numbers_as_numpys():
    """``1 / (1 + np.exp(-u))`` of a number is a NumPy float, which round() and float checks
    take; a 0-d array is neither."""
    for f, value in ((compat.sigmoid, 0.5), (compat.dsigmoid_du, 0.25)):
        for u in (0, 0.0, np.float32(0), np.array(0.0)):
            out = f(u)
            assert np.ndim(out) == 0 and not isinstance(out, np.ndarray)
            assert round(out, 3) == value
        assert isinstance(f(0), float) and f(np.float32(0)).dtype == np.float32
        assert f(np.array([0.0])).shape == (1,)                  # arrays stay arrays


# --- small framework -----------------------------------------------------------------------------

def test_xor_demo_learns(capsys):
    np.random.seed(1)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    y = np.array([[0], [1], [1], [0]])
    layers = [compat.Linear(2, 4), compat.Sigmoid(), compat.Linear(4, 1)]
    nn = compat.NeuralNetwork(layers, loss="mse", learning_rate=0.4, debug_loss_interval=100)
    nn.train(X, y, epochs=1000)
    pred = nn.forward(X)
    np.testing.assert_array_equal(np.round(pred).astype(int), y)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 10 and out[0].startswith("Epoch 0, Loss: ")
    assert nn.losses[-1] < 1e-3


@pytest.mark.parametrize("bad", ["X", "y"])
def test_neural_network_train_names_a_nan_in_the_data_not_the_learning_rate(bad):
    """A NaN in the data made the first loss NaN, reported as divergence ("lower the learning
    rate"); it is the data's fault, and the error says so before anything trains."""
    np.random.seed(1)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([[0], [1], [1], [0]], dtype=float)
    (X if bad == "X" else y)[2, 0] = np.nan
    nn = compat.NeuralNetwork([compat.Linear(2, 4), compat.Sigmoid(), compat.Linear(4, 1)],
                              loss="mse", learning_rate=0.4)
    before = nn.layers[0].weights.copy()
    with pytest.raises(ValueError, match=rf"NeuralNetwork.train: {bad} contains NaN or inf "
                                         r"\(first in row 2\)"):
        nn.train(X, y, epochs=3)
    np.testing.assert_array_equal(nn.layers[0].weights, before)


def test_linear_updates_with_sgd_and_returns_the_error_for_the_old_weights():
    np.random.seed(0)
    expected = np.random.randn(3, 2) * np.sqrt(1 / 3)
    np.random.seed(0)
    lin = compat.Linear(3, 2)
    np.testing.assert_array_equal(lin.weights, expected)
    assert lin.bias.shape == (1, 2)
    x = np.array([[1.0, 2.0, 3.0]])
    lin.forward(x)
    err = np.array([[0.5, -1.0]])
    W0 = lin.weights.copy()
    back = lin.backward(err, 0.1)
    np.testing.assert_allclose(back, err @ W0.T, rtol=1e-12)
    np.testing.assert_allclose(lin.weights, W0 - 0.1 * x.T @ err, rtol=1e-12)
    np.testing.assert_allclose(lin.bias, [[-0.05, 0.1]], rtol=1e-12)   # the view sees it


@pytest.mark.parametrize("loss, last", [("cross_entropy", compat.Softmax),
                                        ("binary_cross_entropy", compat.Sigmoid)])
def test_neural_network_classification_losses(loss, last, capsys):
    X, y = blobs(90, d=4)
    T = np.eye(3)[y]
    np.random.seed(0)
    nn = compat.NeuralNetwork([compat.Linear(4, 8), compat.ReLU(), compat.Linear(8, 3), last()],
                              loss=loss, learning_rate=0.5, debug_loss_interval=50)
    nn.train(X, T, epochs=100)
    assert nn.losses[-1] < nn.losses[0] / 3
    assert np.mean(nn.forward(X).argmax(axis=1) == y) > 0.9


def test_neural_network_backward_is_the_exact_loss_gradient():
    """Without a fusable tail, the error sent back is d loss / d output (checked numerically)."""
    rng = np.random.default_rng(4)
    X, T = rng.random((5, 3)), rng.random((5, 2))
    for loss in ("mse", "binary_cross_entropy"):
        probe = compat.Linear(3, 2)
        nn = compat.NeuralNetwork([probe, compat.Sigmoid(), compat.Tanh()] if loss == "mse" else
                                  [probe, compat.Sigmoid()], loss=loss, learning_rate=0.0)
        f = lambda _: nn.loss_func(T, nn.forward(X))                  # noqa: E731
        numeric = numerical_gradient(f, probe.weights, h=1e-6)
        nn.backward(T, nn.forward(X))
        np.testing.assert_allclose(probe.dW, numeric, rtol=1e-5, atol=1e-9)



@pytest.mark.parametrize("loss, last", [("cross_entropy", compat.Softmax),
                                        ("binary_cross_entropy", compat.Sigmoid)])
def test_neural_network_fused_tail_is_exact_for_targets_that_do_not_sum_to_one(backend, loss,
                                                                          last):
    """The fused softmax sent ``p - y``, the gradient only when each target row sums to 1:
    multi-hot and all-zero rows were trained on a wrong gradient (checked numerically)."""
    rng = np.random.default_rng(5)
    X = rng.random((4, 3))
    T = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.2, 0.3, 0.9]])
    probe = compat.Linear(3, 3)
    nn = compat.NeuralNetwork([probe, last()], loss=loss, learning_rate=0.0)
    f = lambda _: nn.loss_func(T, nn.forward(X))                      # noqa: E731
    numeric = numerical_gradient(f, probe.weights, h=1e-6)
    nn.backward(T, nn.forward(X))
    np.testing.assert_allclose(probe.dW, numeric, rtol=1e-5, atol=1e-9)

class TemperatureSoftmax(compat.Softmax):
    """A user's softmax with a temperature: not fused, its own (exact) backward runs."""

    def forward(self, x):
        return super().forward(np.asarray(x) / 3.0)

    def backward(self, dout, learning_rate=None):
        return fastnet.layers.Softmax.backward(self, dout) / 3.0


class ScaledSigmoid(compat.Sigmoid):
    def forward(self, x):
        return super().forward(2.0 * np.asarray(x))

    def backward(self, dout, learning_rate=None):
        return 2.0 * super().backward(dout, learning_rate)


@pytest.mark.parametrize("loss, last", [("cross_entropy", TemperatureSoftmax),
                                        ("binary_cross_entropy", ScaledSigmoid)])
def test_neural_network_does_not_fuse_a_subclass_with_methods_of_its_own(backend, loss, last):
    """Once fused with the loss as fastnet's own (its temperature left out of the gradient)."""
    rng = np.random.default_rng(6)
    X = rng.random((4, 3))
    T = np.eye(3)[[0, 2, 1, 2]]
    probe = compat.Linear(3, 3)
    nn = compat.NeuralNetwork([probe, last()], loss=loss, learning_rate=0.0)
    assert not nn._fused()
    f = lambda _: nn.loss_func(T, nn.forward(X))                      # noqa: E731
    numeric = numerical_gradient(f, probe.weights, h=1e-6)
    nn.backward(T, nn.forward(X))
    np.testing.assert_allclose(probe.dW, numeric, rtol=1e-5, atol=1e-9)


def test_article_losses_by_name():
    t = np.array([[0.0, 1.0], [1.0, 0.0]])
    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert compat.mse(t, p) == pytest.approx(np.mean((t - p) ** 2))
    assert compat.cross_entropy(t, p) == pytest.approx(-np.sum(t * np.log(p)) / 2)
    assert compat.binary_cross_entropy(t, p) == pytest.approx(
        -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p)) / 2)
    with pytest.raises(ValueError, match="y_true has shape"):
        compat.mse(t, p[:1])
    for loss in (compat.mse, compat.cross_entropy, compat.binary_cross_entropy):
        with pytest.raises(ValueError, match=r"y_pred has shape \(\); expected"):
            loss(1.0, 0.5)
        with pytest.raises(ValueError, match=r"y_pred is empty \(shape \(0, 3\)\)"):
            loss(np.zeros((0, 3)), np.zeros((0, 3)))
    for y in (np.float64(0.5), np.zeros((0, 3)), np.zeros((2, 2, 3))):
        with pytest.raises(ValueError, match=r"cross_entropy_error: y has shape"):
            compat.cross_entropy_error(y, np.zeros(len(np.atleast_1d(y)), int))
    # a column of labels (N, 1): a shape error naming y and t's shapes, not "convert the dtype"
    with pytest.raises(ValueError, match=r"\(2, 1\) but y has shape \(2, 3\).*t\w*\.ravel\(\)"):
        compat.cross_entropy_error(np.full((2, 3), 1 / 3), np.array([[2], [0]]))
    with pytest.raises(ValueError, match="loss='hinge'"):
        compat.NeuralNetwork([compat.Linear(2, 1)], "hinge", 0.1)
    with pytest.raises(ValueError, match="learning_rate=nan"):
        compat.NeuralNetwork([compat.Linear(2, 1)], "mse", float("nan"))
    with pytest.raises(ValueError, match=r"loss=\['mse'\]"):         # not "unhashable type"
        compat.NeuralNetwork([compat.Linear(2, 1)], ["mse"], 0.1)


def test_network_layers_need_the_articles_backward():
    """fastnet's own ReLU (``backward(dout)``) failed at the first backward with "takes 2
    positional arguments but 3 were given"."""
    with pytest.raises(TypeError, match=r"layer 1 \(ReLU\) has backward\(dout\); this network "
                                        r"calls layer.backward\(error, learning_rate\)"):
        compat.NeuralNetwork([compat.Linear(3, 4), fastnet.layers.ReLU(), compat.Linear(4, 2)],
                             "mse", 0.1)
    with pytest.raises(TypeError, match=r"layer 0 \(str\) needs forward and backward"):
        compat.NeuralNetwork(["relu"], "mse", 0.1)
    nn = compat.NeuralNetwork([compat.Linear(3, 2)], "mse", 0.1)
    X, Y = np.ones((4, 3)), np.eye(2)[[0, 1, 0, 1]]
    W = nn.layers[0].weights.copy()
    nn.backward(Y, nn.forward(X).tolist())           # a list output: 'no attribute dtype'
    assert not np.array_equal(W, nn.layers[0].weights)


def test_activations_accept_the_learning_rate_argument():
    for act in (compat.ReLU(), compat.Sigmoid(), compat.Tanh(), compat.Softmax()):
        y = act.forward(np.array([[0.5, -0.2]]))
        assert act.backward(np.ones_like(y), 0.1).shape == y.shape
        assert act.backward(np.ones_like(y)).shape == y.shape


def test_initializers_called_directly_give_float64_as_randn():
    """The notebooks' own FC classes call initializer.W(n1, n2) and compute dW in float64; a
    float32 W then failed in the optimizer. Layers pass their own dtype, as before."""
    np.random.seed(0)
    W = compat.HeInitializer().W(6, 4)
    np.random.seed(0)
    np.testing.assert_array_equal(W, np.random.randn(6, 4) * np.sqrt(2 / 6))
    assert W.dtype == np.float64 and compat.SimpleInitializer(0.1).b(3).dtype == np.float64
    assert compat.XavierInitializer().W(3, 2, np.float32).dtype == np.float32
    W, b = compat.HeInitializer().W(6, 4), compat.HeInitializer().b(4)
    dW, db = np.ones((6, 4)), np.ones(4)                 # the notebook's float64 gradients
    opt = compat.AdaGrad(0.1)

    class NotebookFC:                                     # attributes as the notebook's FC has
        pass
    layer = NotebookFC()
    layer.W, layer.b, layer.dW, layer.db = W, b, dW, db
    opt.update(layer)
    assert np.all(layer.W < W + 1e-12)


def test_two_layer_net_accuracy_takes_images_as_predict_does():
    net = compat.TwoLayerNet(784, 10, 10)
    x = np.random.default_rng(0).random((5, 1, 28, 28))
    t = np.arange(5)
    assert net.accuracy(x, t) == net.accuracy(x.reshape(5, -1), t)


def test_activation_backward_refuses_an_array_for_the_learning_rate():
    """An array second argument must not be ignored as a learning rate (Softmax takes it as the
    conv notebook's targets, see above)."""
    for act in (compat.Sigmoid(), compat.ReLU(), compat.Tanh()):
        y = act.forward(np.ones((2, 3)))
        with pytest.raises(TypeError, match="learning_rate .* must be a number"):
            act.backward(y, np.eye(3)[:2])


def test_neural_network_divergence_in_the_last_update_is_an_error(capsys):
    np.random.seed(0)
    nn = compat.NeuralNetwork([compat.Linear(2, 3), compat.Linear(3, 1)], loss="mse",
                              learning_rate=1e300)
    with pytest.raises(FloatingPointError, match="after the last update"):
        nn.train(np.ones((4, 2)) * 1e6, np.ones((4, 1)), epochs=1)


def test_activations_take_integer_input_as_float64_as_numpy_does():
    """Once cast to fastnet's default float32: the sigmoid's gradient at 20 became 0."""
    for act in (compat.Sigmoid(), compat.ReLU(), compat.Tanh(), compat.Softmax()):
        y = act.forward(np.array([[20, 1]]))
        assert y.dtype == np.float64
        assert act.backward(np.ones((1, 2))).dtype == np.float64
        assert act.forward(np.ones((1, 2), np.float32)).dtype == np.float32   # floats kept
    s = compat.Sigmoid()
    s.forward(np.array([20]))
    assert s.backward(np.ones(1))[0] == pytest.approx(2.0611536e-9, rel=1e-6)


# --- names the notebooks' code reads (added after a compatibility review) ---------------------

def test_dlfs_softmax_is_the_books_row_wise_softmax(backend):
    from fastnet.compat import dlfs
    x = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [1000.0, 0.0, -1000.0]])
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(dlfs.softmax(x), e / e.sum(axis=1, keepdims=True), rtol=1e-15)
    np.testing.assert_allclose(dlfs.softmax(np.array([1, 2, 3])),
                               np.exp([-2.0, -1.0, 0.0]) / np.exp([-2.0, -1.0, 0.0]).sum())
    # the column-layout exercise's softmax, same call, other axis: each notebook imports its own
    np.testing.assert_allclose(compat.softmax(x[:2]).sum(axis=0), 1)
    with pytest.raises(ValueError, match=r"x has shape \(2, 2, 2\)"):
        dlfs.softmax(np.ones((2, 2, 2)))
    assert dlfs.TwoLayerNet is compat.TwoLayerNet


def test_dlfs_offers_every_name_of_the_books_chapter_listed_in_compat():
    """The compat docstring lists the book's names (its Sigmoid layer among them); code from
    the book imports them all from ``dlfs``, with ``out`` and ``backward(dout)`` as there."""
    from fastnet.compat import dlfs
    for name in ("Affine", "Relu", "Sigmoid", "SoftmaxWithLoss", "TwoLayerNet",
                 "cross_entropy_error", "numerical_gradient"):
        assert name in dlfs.__all__ and getattr(dlfs, name) is getattr(compat, name)
    layer = dlfs.Sigmoid()
    x = np.array([[0.0, 2.0], [-3.0, 1.0]])
    out = layer.forward(x)
    assert layer.out is out
    dout = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(layer.backward(dout), dout * (1 - out) * out, rtol=1e-15)


def test_dlfs_load_mnist_has_the_books_dtypes_and_shapes(tmp_path, monkeypatch):
    from test_mnist_loader import make_arrays, write_dataset    # tiny IDX files
    from fastnet.compat import dlfs
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    arrays = make_arrays()
    write_dataset(tmp_path / "mnist", arrays)
    (x, t), (x_test, t_test) = dlfs.load_mnist(data_dir=tmp_path / "mnist")
    assert x.dtype == np.float32 and x.shape == (5, 784) and x_test.shape == (3, 784)
    np.testing.assert_array_equal(x, arrays["train_images"].reshape(5, -1) / np.float32(255))
    assert t.dtype == np.uint8
    np.testing.assert_array_equal(t, arrays["train_labels"])
    (x, t), _ = dlfs.load_mnist(normalize=False, flatten=False, one_hot_label=True,
                                data_dir=tmp_path / "mnist")
    assert x.dtype == np.uint8 and x.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(x[:, 0], arrays["train_images"])
    assert t.dtype == np.float64 and t.shape == (5, 10)
    np.testing.assert_array_equal(t.argmax(axis=1), arrays["train_labels"])
    with pytest.raises(TypeError, match="one_hot_label"):
        dlfs.load_mnist(one_hot_label="yes", data_dir=tmp_path / "mnist")
    write_dataset(tmp_path / "small", make_arrays(rows=5, cols=4))    # not 28 x 28: its own size
    (x, _), _ = dlfs.load_mnist(flatten=False, data_dir=tmp_path / "small")
    assert x.shape == (5, 1, 5, 4)


def test_optimizers_take_the_one_channel_layers_scalar_bias_gradient():
    """The conv notebook's one-channel layer has ``B (1,)`` and ``LB = np.sum(dA)``, a scalar;
    its own SGD's ``B - lr*LB`` broadcast."""
    class OneChannel:
        def __init__(self, optimizer):
            self.W, self.B, self.optimizer = np.array([3, 5, 7]), np.array([1]), optimizer

        def backward(self, dA):
            self.LW, self.LB = np.array([50, 80, 110]), np.sum(dA)
            return self.optimizer.update(self)

    layer = OneChannel(compat.SGD(0.1)).backward(np.array([10, 20]))
    np.testing.assert_allclose(layer.W, [-2.0, -3.0, -4.0])
    np.testing.assert_allclose(layer.B, [-2.0])
    assert layer.B.shape == (1,)
    layer = OneChannel(compat.AdaGrad(0.1)).backward(np.array([10, 20]))
    np.testing.assert_allclose(layer.B, [1 - 0.1 * 30 / (30 + 1e-8)])


def test_four_argument_fc_is_the_conv_notebooks():
    """``FC(n1, n2, initializer, optimizer)``: weights then a random bias from ``B``, both from
    the global random state; ``B``, ``LW``, ``LB``, ``z``, ``a`` as that notebook names them."""
    np.random.seed(3)
    W, B = 0.1 * np.random.randn(5, 3), 0.1 * np.random.randn(3)
    after = np.random.randn()
    np.random.seed(3)
    fc = compat.FC(5, 3, compat.SimpleInitializer(0.1), compat.SGD(0.5))
    assert np.random.randn() == after
    np.testing.assert_array_equal(fc.W, W)
    np.testing.assert_array_equal(fc.B, B)
    X = np.random.default_rng(0).random((4, 5))
    A = fc.forward(X)
    np.testing.assert_allclose(A, X @ W + B, rtol=1e-13)
    assert fc.z is fc.X and fc.a is A
    dA = np.random.default_rng(1).random((4, 3))
    dZ = fc.backward(dA)
    np.testing.assert_allclose(dZ, dA @ W.T, rtol=1e-13)
    np.testing.assert_allclose(fc.LW, X.T @ dA, rtol=1e-13)
    np.testing.assert_allclose(fc.LB, dA.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(fc.B, B - 0.5 * dA.sum(axis=0), rtol=1e-13)
    fc.B = np.zeros(3)                                   # the notebook's SGD rebinds B
    np.testing.assert_array_equal(fc.b, 0)
    # with an activation it is the classifier notebook's FC: zero bias
    assert not compat.FC(5, 3, compat.SimpleInitializer(0.1), None, compat.ReLU()).b.any()


def test_adagrad_exposes_the_notebooks_accumulators():
    opt = compat.AdaGrad(0.1)
    assert opt.hW == 0 and opt.hb == 0                   # the notebook's starting values
    fc = compat.FC(4, 2, compat.HeInitializer(seed=0), opt, compat.Sigmoid())
    X = np.random.default_rng(0).random((3, 4))
    hW = 0
    for _ in range(2):
        fc.forward(X)
        fc.backward(np.ones((3, 2)))
        hW = hW + fc.dW ** 2
    np.testing.assert_allclose(opt.hW, hW, rtol=1e-13)
    assert opt.hb.shape == (2,)


def test_adagrad_accumulators_can_be_reset_as_the_notebook_sets_them():
    """The notebook's ``__init__`` sets ``self.hW = 0`` and ``self.hb = 0``: a subclass that does
    too, or a user resetting them, raised (read-only properties). 0 zeroes the sums of the last
    updated layer; an array of its shape replaces them."""
    class NotebookAdaGrad(compat.AdaGrad):
        def __init__(self, lr):
            super().__init__(lr)
            self.hW = 0
            self.hb = 0

    opt = NotebookAdaGrad(0.1)
    assert opt.hW == 0 and opt.hb == 0
    fc = compat.FC(4, 2, compat.HeInitializer(seed=0), opt, compat.Sigmoid())
    X = np.random.default_rng(0).random((3, 4))
    fc.forward(X)
    fc.backward(np.ones((3, 2)))
    assert np.sum(opt.hW) > 0
    opt.hW = 0
    np.testing.assert_array_equal(opt.hW, np.zeros((4, 2)))
    opt.hb = np.full(2, 4.0)
    np.testing.assert_array_equal(opt.hb, 4.0)
    with pytest.raises(ValueError, match="expected float64 \\(4, 2\\)"):
        opt.hW = np.ones(3)
    with pytest.raises(ValueError, match="set it to 0 before the first update"):
        compat.AdaGrad(0.1).hW = np.ones((4, 2))


def test_adagrad_accumulators_read_back_after_a_load(tmp_path):
    """They read 0 after a load (the state itself was restored) until the next update."""
    X, y = blobs(30, d=4)
    clf = compat.ScratchDeepNeuralNetrowkClassifier(
        [compat.FC(4, 3, compat.HeInitializer(seed=0), compat.AdaGrad(0.1), compat.Softmax())])
    clf.fit(X, np.eye(3)[y], n_epoch=1)
    clf.save(tmp_path / "m.npz")
    loaded = compat.ScratchDeepNeuralNetrowkClassifier.load(tmp_path / "m.npz")
    before, after = clf.layers[0].optimizer, loaded.layers[0].optimizer
    assert np.sum(before.hW) > 0
    np.testing.assert_array_equal(after.hW, before.hW)
    np.testing.assert_array_equal(after.hb, before.hb)


def test_activations_keep_the_notebooks_cached_arrays():
    x = np.array([[-1.0, 2.0], [0.0, -3.0]])
    relu = compat.ReLU()
    assert relu.a is None and relu.mask is None
    y = relu.forward(x)
    assert relu.a is relu.A and np.array_equal(relu.a, x) and relu.out is y
    np.testing.assert_array_equal(relu.mask, x <= 0)
    sig = compat.Sigmoid()
    z = sig.forward(x)
    assert sig.Z is z and sig.out is z and np.array_equal(sig.a, x)


def test_get_mini_batch_is_its_own_iterator_as_in_the_notebook():
    X, y = np.arange(20).reshape(10, 2), np.arange(10)
    batches = compat.GetMiniBatch(X, y, batch_size=4)
    assert iter(batches) is batches
    first = next(batches)[1]
    assert len(first) == 4 and len(next(batches)[1]) == 4 and len(next(batches)[1]) == 2
    with pytest.raises(StopIteration):
        next(batches)
    assert sorted(np.concatenate([yb for _, yb in batches])) == list(range(10))
    np.testing.assert_array_equal(next(iter(batches))[1], first)      # iter restarts it


def test_linear_bias_assignment_reaches_the_layer():
    np.random.seed(0)
    lin = compat.Linear(2, 2)
    lin.bias = np.array([[1.0, -1.0]])
    np.testing.assert_allclose(lin.forward(np.zeros((1, 2))), [[1.0, -1.0]])
    lin.bias -= 1.0
    np.testing.assert_allclose(lin.b, [0.0, -2.0])
    with pytest.raises(ValueError, match=r"bias must have shape \(1, 2\)"):
        lin.bias = np.zeros(3)


def test_neural_network_fuses_the_articles_own_softmax():
    """The article's Softmax multiplies by ``y*(1-y)`` in backward; as the final layer under the
    cross-entropy it is fused with the loss by name, so the error is the exact gradient."""
    class Softmax:                                   # the article's, as written there
        def forward(self, x):
            self.out = np.exp(x) / np.sum(np.exp(x), axis=1, keepdims=True)
            return self.out

        def backward(self, grad_output, learning_rate):
            return grad_output * self.out * (1 - self.out)

    rng = np.random.default_rng(6)
    X, T = rng.random((6, 3)), np.eye(3)[rng.integers(0, 3, 6)]
    probe = compat.Linear(3, 3)
    nn = compat.NeuralNetwork([probe, Softmax()], loss="cross_entropy", learning_rate=0.0)
    f = lambda _: nn.loss_func(T, nn.forward(X))                      # noqa: E731
    numeric = numerical_gradient(f, probe.weights, h=1e-6)
    nn.backward(T, nn.forward(X))
    np.testing.assert_allclose(probe.dW, numeric, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("make, name", [(lambda: compat.ReLU(), "relu"),
                                        (lambda: compat.Sigmoid(), "sigmoid"),
                                        (lambda: compat.Tanh(), "tanh")])
def test_the_notebooks_activations_run_inside_the_fc_kernel(make, name):
    """The notebook activations' methods add bookkeeping only, so an FC still fuses them (a
    stricter rule for activation subclasses once ran them as separate layers, slower)."""
    fc = compat.FC(4, 3, compat.HeInitializer(), compat.AdaGrad(0.01), make())
    assert fc._fused == name and fc._act_layer is None


def test_errors_name_the_class_the_user_called():
    """Errors named classes the user never built: ``CNN_FC`` for ``CNN2dim_FC`` and
    ``CNN_mnist_FC`` (one class served all three names), ``MiniBatch`` for ``GetMiniBatch``
    and ``layer`` for a forward's input."""
    with pytest.raises(ValueError, match=r"^CNN2dim_FC: X has shape \(4,\)"):
        compat.CNN2dim_FC(np.ones((3, 2, 3)), np.ones(3), None, 1, 0).forward(np.ones(4))
    with pytest.raises(ValueError, match=r"^CNN_mnist_FC: X has shape \(4,\)"):
        compat.CNN_mnist_FC(np.ones((3, 2, 3)), np.ones(3), None, 1, 0).forward(np.ones(4))
    with pytest.raises(ValueError, match=r"^GetMiniBatch: batch_size=0"):
        compat.GetMiniBatch(np.ones((4, 2)), np.ones(4), batch_size=0)
    with pytest.raises(IndexError, match=r"^GetMiniBatch: batch 5 out of range"):
        compat.GetMiniBatch(np.ones((4, 2)), np.ones(4), batch_size=2)[5]
    fc = compat.FC(4, 3, compat.SimpleInitializer(0.01), compat.SGD(0.1))
    with pytest.raises(TypeError, match=r"^FC\.forward: input has dtype complex128"):
        fc.forward(np.ones((2, 4), complex))
    with pytest.raises(TypeError, match=r"^Affine\.forward: input has dtype complex128"):
        compat.Affine(np.ones((2, 3)), np.ones(3)).forward(np.ones((1, 2), complex))
    with pytest.raises(TypeError, match=r"^CNN_FC\.backward: the incoming gradient dout"):
        conv = compat.CNN_FC(np.array([3.0, 5, 7]), np.array([1.0]), None, 1, 0)
        conv.forward(np.array([1.0, 2, 3, 4]))
        conv.backward(np.ones(2, complex))
