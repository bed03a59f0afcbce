"""Weight initializers in the notebooks' form: ``W(n_in, n_out)`` and ``b(n_out)``.

Every initializer draws ``sigma * N(0, 1)`` weights and zero biases; they differ only in
``sigma``:

=====================  ==========================  ==========================================
class                  sigma                       use with
=====================  ==========================  ==========================================
SimpleInitializer      the ``sigma`` you give      anything (the notebooks use 0.01)
XavierInitializer      ``sqrt(1 / fan_in)``        sigmoid, tanh, linear outputs
HeInitializer          ``sqrt(2 / fan_in)``        ReLU
=====================  ==========================  ==========================================

``XavierInitializer`` is the notebooks' (and "Deep Learning from Scratch"'s) Xavier,
``1/sqrt(fan_in)``; Glorot's paper averages fan-in and fan-out, which these notebooks do not.

Fan-in
------
For a dense weight ``(n_in, n_out)`` the fan-in is ``n_in``; for a convolution weight
``(C_out, C_in, K)`` it is ``C_in * K`` (each output sums that many products). Layers ask for
their weights through :meth:`Initializer.weights`, which takes the shape and the fan-in.

Randomness
----------
``seed=None`` (the default) draws from NumPy's global random state, exactly like the notebooks'
``np.random.randn``: after ``np.random.seed(0)`` a float64 ``HeInitializer().W(784, 400)`` is
bit-identical to ``np.random.randn(784, 400) * np.sqrt(2 / 784)``. An int seeds a private
``numpy.random.Generator`` (independent of the global state); a ``Generator`` is used as given
(so one generator can feed several initializers in a reproducible order).

dtype
-----
Arrays come back in fastnet's default dtype (:func:`fastnet.get_default_dtype`, float32 unless
changed) or the ``dtype`` you pass. Weights are always drawn in float64 and rounded once, so a
float32 and a float64 model made from the same seed agree to float32 rounding.
"""
import math

import numpy as np

from . import _checks as check
from .backend import get_default_dtype

__all__ = ["Initializer", "SimpleInitializer", "XavierInitializer", "HeInitializer",
           "as_generator"]


def as_generator(seed, owner):
    """A ``numpy.random.Generator`` from ``seed``: an int, a Generator, or None.

    None gives a Generator seeded from NumPy's global random state, so ``np.random.seed(...)``
    makes it reproducible (as notebook code expects) without sharing its stream.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng(np.random.randint(0, 2**31 - 1))
    return np.random.default_rng(check.integer(owner, "seed", seed, low=0))


def _float_dtype(owner, dtype):
    if dtype is None:
        return np.dtype(get_default_dtype())
    dt = np.dtype(dtype)
    if dt.type not in check.FLOAT_DTYPES:
        raise TypeError(f"{owner}: dtype={dtype!r}; expected np.float32 or np.float64")
    return np.dtype(dt.type)                    # native byte order, as the kernels need


class Initializer:
    """Base class: ``std(fan_in) * N(0, 1)`` weights, zero biases.

    Parameters
    ----------
    seed : None, int or numpy.random.Generator
        None (default): NumPy's global random state, like ``np.random.randn`` in the notebooks.
    """

    def __init__(self, seed=None):
        name = type(self).__name__
        if not (seed is None or isinstance(seed, np.random.Generator)):
            seed = check.integer(name, "seed", seed, low=0)
        self.seed = seed
        self._rng = None if seed is None else as_generator(seed, name)

    def std(self, fan_in):
        """Standard deviation of the weights for ``fan_in`` inputs per output (the table's
        ``sigma``). A subclass implements it; one written for fastnet before this name, with a
        method ``sigma(fan_in)``, still works."""
        sigma = getattr(self, "sigma", None)
        if callable(sigma):
            return sigma(fan_in)
        raise NotImplementedError(f"{type(self).__name__}: an Initializer subclass implements "
                                  f"std(fan_in), the weights' standard deviation for fan_in "
                                  f"inputs per output")

    def weights(self, shape, fan_in, dtype=None):
        """Weights of any ``shape`` with standard deviation ``std(fan_in)``."""
        name = type(self).__name__
        shape = tuple(check.size(name, "shape", n, 1) for n in shape)
        fan_in = check.integer(name, "fan_in", fan_in, low=1)
        dtype = _float_dtype(name, dtype)
        check.memory_for_draw(name, shape)
        if self._rng is None:
            draw = np.random.standard_normal(shape)       # the stream np.random.randn uses
        else:
            draw = self._rng.standard_normal(shape)
        return check.cast_real(name, "weights", draw * self.std(fan_in), dtype)

    def W(self, n_nodes1, n_nodes2, dtype=None):
        """Dense weights ``(n_nodes1, n_nodes2)``, fan-in ``n_nodes1``."""
        name = type(self).__name__
        n_nodes1 = check.size(name, "n_nodes1", n_nodes1, 1)
        return self.weights((n_nodes1, check.size(name, "n_nodes2", n_nodes2, 1)), n_nodes1,
                            dtype)

    def b(self, n_nodes2, dtype=None):
        """Zero biases ``(n_nodes2,)``."""
        name = type(self).__name__
        return np.zeros(check.size(name, "n_nodes2", n_nodes2, 1),
                        dtype=_float_dtype(name, dtype))

    def __repr__(self):
        return f"{type(self).__name__}()"


class SimpleInitializer(Initializer):
    """Weights ``sigma * N(0, 1)`` with a fixed ``sigma`` (e.g. 0.01); zero biases.

    Parameters
    ----------
    sigma : float >= 0
        Kept as the attribute ``sigma``, as in the notebooks: setting it changes the weights
        drawn next.
    seed : None, int or numpy.random.Generator
        See the module docstring (None: NumPy's global random state).

    Examples
    --------
    >>> SimpleInitializer(0.01, seed=0).W(3, 2).shape
    (3, 2)
    """

    def __init__(self, sigma, seed=None):
        super().__init__(seed)
        self.sigma = check.real("SimpleInitializer", "sigma", sigma, low=0)

    def std(self, fan_in):
        # Checked again at each use: the notebooks' code may set the attribute.
        return check.real(type(self).__name__, "sigma", self.sigma, low=0)

    def __repr__(self):
        return f"SimpleInitializer({self.sigma!r})"


class XavierInitializer(Initializer):
    """Weights ``N(0, 1) * sqrt(1 / fan_in)`` (the notebooks' Xavier); zero biases."""

    def std(self, fan_in):
        return math.sqrt(1 / fan_in)


class HeInitializer(Initializer):
    """Weights ``N(0, 1) * sqrt(2 / fan_in)`` (He et al., for ReLU); zero biases."""

    def std(self, fan_in):
        return math.sqrt(2 / fan_in)
