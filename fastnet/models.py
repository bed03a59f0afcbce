"""Reference models for MNIST, each with the training recipe it was tuned with.

``mlp``  the scratch notebooks' network: 784-400-200-10, ReLU, He initialisation, AdaGrad(0.01),
         batch 20, as in ``ScratchDeepNeuralNetrowkClassifier``.
``cnn``  a Conv1d network (see :func:`cnn` for the design and why).

Use::

    recipe = fastnet.models.RECIPES["cnn"]
    model = recipe.build(seed=0)            # a Classifier with the recipe's optimizer
"""
from dataclasses import dataclass
from typing import Callable

from .initializers import HeInitializer
from .layers import FC, Conv1d, Flatten, MaxPool1d, ReLU
from .model import Classifier
from .optimizers import SGD, AdaGrad, Adam

OPTIMIZERS = {"sgd": SGD, "momentum": lambda lr: SGD(lr, momentum=0.9, nesterov=True),
              "adagrad": AdaGrad, "adam": Adam}


@dataclass(frozen=True)
class Recipe:
    """A reference model and how to train it.

    Attributes
    ----------
    layers : callable(seed) -> list of layers
    flatten : bool
        Input layout the model expects: ``(N, 784)`` when True, ``(N, 28, 28)`` otherwise.
    optimizer, lr, epochs, batch_size :
        Training defaults (the command line can override each).
    schedule : {"constant", "linear"}
        ``linear`` decays the learning rate linearly to 0 over all training steps.
    """
    name: str
    description: str
    layers: Callable
    flatten: bool
    optimizer: str
    lr: float
    epochs: int
    batch_size: int
    schedule: str = "constant"

    def build(self, seed=0, optimizer=None, lr=None):
        """A fresh :class:`~fastnet.model.Classifier` with this recipe's optimizer."""
        opt = OPTIMIZERS[optimizer or self.optimizer](lr if lr is not None else self.lr)
        return Classifier(self.layers(seed), optimizer=opt)


def _mlp_layers(seed):
    return [FC(784, 400, HeInitializer(seed=seed), activation="relu"),
            FC(400, 200, HeInitializer(seed=seed + 1), activation="relu"),
            FC(200, 10, HeInitializer(seed=seed + 2))]


def _cnn_layers(seed):
    """Rows as channels: each 28-pixel image row is one of 28 input channels, convolved along
    the vertical axis (length 28)."""
    he = lambda k: HeInitializer(seed=seed + k)
    return [Conv1d(28, 64, 3, padding=1, initializer=he(0)), ReLU(), MaxPool1d(2),
            Conv1d(64, 128, 3, padding=1, initializer=he(1)), ReLU(), MaxPool1d(2),
            Flatten(),
            FC(128 * 7, 128, he(2), activation="relu"),
            FC(128, 10, he(3))]


RECIPES = {
    "mlp": Recipe("mlp", "784-400-200-10 ReLU MLP of the scratch notebooks (AdaGrad, batch 20)",
                  _mlp_layers, flatten=True, optimizer="adagrad", lr=0.01, epochs=10,
                  batch_size=20),
    "cnn": Recipe("cnn", "Conv1d CNN, image rows as channels", _cnn_layers, flatten=False,
                  optimizer="adam", lr=2e-3, epochs=5, batch_size=128, schedule="linear"),
}
