"""Real-data check run by CI: two epochs of the notebooks' MLP (AdaGrad 0.01, batch 20) on the
first 10 000 MNIST training samples must reach >= 94 % test accuracy (measured: 95.0 %; one
epoch gives 93.4 %).

Skips without MNIST (``FASTNET_DATA`` unset and no cached copy); with ``FASTNET_REQUIRE_DATA=1``
(CI) a missing dataset is a failure instead.
"""
import pytest

from fastnet.mnist import load_mnist, require_mnist
from fastnet.models import RECIPES


@pytest.mark.mnist
def test_two_epochs_mlp_on_10k_samples_reach_94_percent(backend):
    folder = require_mnist()
    (X, y), (X_test, y_test) = load_mnist(folder)
    model = RECIPES["mlp"].build(seed=0)
    model.fit(X[:10_000], y[:10_000], epochs=2, batch_size=20, seed=0)
    accuracy = model.score(X_test, y_test)
    assert accuracy >= 0.94, f"{backend}: test accuracy {accuracy:.4f} after two epochs on 10k"
