"""Acceptance on the real MNIST: notebook-style scripts that use only fastnet.compat names.

Opt-in (minutes of training): run with ``FASTNET_RUN_SLOW=1`` and MNIST reachable through
``FASTNET_DATA`` (or fastnet's cache), e.g.::

    FASTNET_RUN_SLOW=1 FASTNET_DATA=../shared/data/mnist pytest -s tests/test_notebooks_mnist.py

``FASTNET_MNIST_EPOCHS`` (default 5) sets the epochs of the classifier-notebook script. On a busy
2-core machine add ``FASTNET_NUM_THREADS=1``: batch-20 products are too small to share, and two
BLAS threads competing with another process ran an epoch 10-15 times slower.
"""
import os
import time

import numpy as np
import pytest

from fastnet import compat
from fastnet.data import load_mnist, require_mnist

pytestmark = [pytest.mark.slow, pytest.mark.mnist]


@pytest.fixture(scope="module")
def mnist():
    if os.environ.get("FASTNET_RUN_SLOW", "") not in ("1", "true", "yes"):
        pytest.skip("slow real-MNIST training; set FASTNET_RUN_SLOW=1 to run it")
    folder = require_mnist()
    return load_mnist(folder, dtype=np.float64)


def test_scratch_classifier_notebook_reaches_97_percent(mnist):
    (X_train, y_train), (X_test, y_test) = mnist
    epochs = int(os.environ.get("FASTNET_MNIST_EPOCHS", "5"))
    np.random.seed(0)
    nn = [
        compat.FC(784, 400, compat.HeInitializer(), compat.AdaGrad(0.01), compat.ReLU()),
        compat.FC(400, 200, compat.HeInitializer(), compat.AdaGrad(0.01), compat.ReLU()),
        compat.FC(200, 10, compat.SimpleInitializer(0.01), compat.AdaGrad(0.01), compat.Softmax()),
    ]
    clf = compat.ScratchDeepNeuralNetrowkClassifier(layers=nn, verbose=True)
    start = time.perf_counter()
    clf.fit(X_train, compat.one_hot(y_train, 10, dtype=np.float64),
            X_test, compat.one_hot(y_test, 10, dtype=np.float64),
            n_epoch=epochs, n_batch=20, lr=0.01)
    seconds = time.perf_counter() - start
    accuracy = np.mean(clf.predict(X_test) == y_test)
    print(f"\nMLP 784-400-200-10, AdaGrad 0.01, batch 20, {epochs} epochs: test accuracy "
          f"{accuracy:.4f} in {seconds:.1f} s")
    assert accuracy >= 0.97


def test_two_layer_net_loop_reaches_94_percent(mnist):
    (x_train, t_train), (x_test, t_test) = mnist
    t_train = compat.one_hot(t_train, 10, dtype=np.float64)
    np.random.seed(0)
    network = compat.TwoLayerNet(input_size=784, hidden_size=50, output_size=10)
    iters_num, batch_size, learning_rate = 10000, 100, 0.1
    start = time.perf_counter()
    for _ in range(iters_num):
        batch_mask = np.random.choice(x_train.shape[0], batch_size)
        grad = network.gradient(x_train[batch_mask], t_train[batch_mask])
        for key in ("W1", "b1", "W2", "b2"):
            network.params[key] -= learning_rate * grad[key]
    seconds = time.perf_counter() - start
    accuracy = network.accuracy(x_test, t_test)
    print(f"\nTwoLayerNet 784-50-10, SGD 0.1, batch 100, {iters_num} iterations: test accuracy "
          f"{accuracy:.4f} in {seconds:.1f} s")
    assert accuracy >= 0.94
