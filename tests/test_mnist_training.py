"""Real-data check run by CI: one epoch of the notebooks' MLP on the first 10 000 MNIST
training samples must reach >= 94 % test accuracy.

Skips without MNIST (``FASTNET_DATA`` unset and no cached copy); with ``FASTNET_REQUIRE_DATA=1``
(CI) a missing dataset is a failure instead.
"""
import pytest

from fastnet.mnist import load_mnist, require_mnist
from fastnet.models import RECIPES


@pytest.mark.mnist
def test_one_epoch_mlp_on_10k_samples_reaches_94_percent(backend):
    folder = require_mnist()
    (X, y), (X_test, y_test) = load_mnist(folder)
    model = RECIPES["mlp"].build(seed=0)
    model.fit(X[:10_000], y[:10_000], epochs=1, batch_size=20, seed=0)
    accuracy = model.score(X_test, y_test)
    assert accuracy >= 0.94, f"{backend}: test accuracy {accuracy:.4f} after one epoch on 10k"
