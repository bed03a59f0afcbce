"""Data helpers: the notebooks' mini-batch iterator, one-hot labels, a numerical gradient, MNIST.

MNIST loading lives in :mod:`fastnet.mnist` and is re-exported here (``load_mnist``,
``find_mnist_dir``, ...).
"""
import math
import numbers

import numpy as np

from . import _checks as check
from .backend import get_default_dtype
from .initializers import as_generator
from .mnist import (MIRRORS, MNIST_FILES, find_mnist_dir, load_mnist, mnist_available,
                    mnist_cache_dir, read_idx, require_mnist)

__all__ = ["MiniBatch", "GetMiniBatch", "one_hot", "numerical_gradient", "check_xy", "random_shift",
           "load_mnist", "find_mnist_dir", "mnist_available", "require_mnist", "mnist_cache_dir",
           "read_idx", "MNIST_FILES", "MIRRORS"]


def as_array(op, name, a):
    """``a`` as an ndarray. A masked array is refused (``np.asarray`` would drop its mask and
    the masked values would be used), and a ragged nested list gets a message naming ``name``."""
    check.not_masked(op, name, a)
    try:
        return np.asarray(a)
    except ValueError as err:          # NumPy's "inhomogeneous shape" message names nothing
        raise ValueError(f"{op}: {name} cannot be made into an array ({err}); rows of a "
                         f"nested list must all have the same length") from None


def check_xy(op, X, y, x_name="X", y_name="y"):
    """``X`` and ``y`` as arrays with the same, non-zero number of rows (masked arrays and
    ragged lists refused, see :func:`as_array`)."""
    X = as_array(op, x_name, X)
    y = as_array(op, y_name, y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(f"{op}: {x_name} and {y_name} must be arrays with one row per sample; "
                         f"got shapes {X.shape} and {y.shape}")
    if len(X) != len(y):
        raise ValueError(f"{op}: {x_name} has {len(X)} samples (shape {X.shape}) but {y_name} "
                         f"has {len(y)} (shape {y.shape}); they must have the same length")
    if len(X) == 0:
        raise ValueError(f"{op}: {x_name} is empty (shape {X.shape}); need at least one sample")
    return X, y


class MiniBatch:
    """Shuffled mini-batches of ``(X, y)``: ``len``, indexing and iteration.

    Parameters
    ----------
    X : array ``(n_samples, ...)``
    y : array ``(n_samples, ...)``
    batch_size : int >= 1, default 20
    seed : int, numpy.random.Generator or None, default 0
        Seeds the permutation (a private generator: NumPy's global random state is neither
        read nor changed, unlike the notebook's ``np.random.seed(seed)``). None draws the seed
        from NumPy's global random state.
    shuffle : bool, default True
        False keeps the original order.

    The last batch holds the remaining ``n_samples % batch_size`` samples when that is not zero.
    Batches are gathered on demand (``X[indices]``), so no shuffled copy of the whole data set is
    made.

    Examples
    --------
    >>> batches = MiniBatch(np.arange(10)[:, None], np.arange(10), batch_size=4)
    >>> len(batches), [len(xb) for xb, yb in batches]
    (3, [4, 4, 2])
    """

    def __init__(self, X, y, batch_size=20, seed=0, shuffle=True):
        op = type(self).__name__          # GetMiniBatch's errors say GetMiniBatch
        X, y = check_xy(op, X, y)
        self.batch_size = check.integer(op, "batch_size", batch_size, low=1)
        self._X, self._y = X, y
        n = len(X)
        shuffle = check.flag(op, "shuffle", shuffle)
        self._index = self._permutation(seed, n, op) if shuffle else None
        self._stop = -(-n // self.batch_size)        # integer ceiling: exact for any batch_size

    @staticmethod
    def _permutation(seed, n, owner):
        return as_generator(seed, owner).permutation(n)

    def __len__(self):
        return self._stop

    def __getitem__(self, item):
        op = type(self).__name__
        item = given = check.integer(op, "index", item)
        if item < 0:
            item += self._stop
        if not 0 <= item < self._stop:
            raise IndexError(f"{op}: batch {given} out of range for {self._stop} batches "
                             f"(valid: -{self._stop} to {self._stop - 1})")
        p0 = item * self.batch_size
        p1 = p0 + self.batch_size
        if self._index is None:
            return self._X[p0:p1], self._y[p0:p1]
        rows = self._index[p0:p1]
        return self._X[rows], self._y[rows]

    def __iter__(self):
        for i in range(self._stop):
            yield self[i]


class GetMiniBatch(MiniBatch):
    """:class:`MiniBatch` under the scratch notebook's name, iterating as the notebook's did: the
    object is its own iterator (``iter`` restarts it, ``next`` gives the next batch), so two
    loops over one object share a position; use :class:`MiniBatch` for independent passes. An
    index past the last batch raises ``IndexError`` (the notebook returned empty arrays).

    An integer ``seed`` gives the notebook's batches: the permutation that its
    ``np.random.seed(seed)`` then ``np.random.permutation`` drew, from a private
    ``np.random.RandomState(seed)`` (NumPy's global random state is neither read nor changed).
    """

    @staticmethod
    def _permutation(seed, n, owner):
        if not check.not_a_number(seed, numbers.Integral):
            seed = check.integer(owner, "seed", seed, low=0, high=2**32 - 1)
            return np.random.RandomState(seed).permutation(n)
        return MiniBatch._permutation(seed, n, owner)

    def __iter__(self):
        self._counter = 0
        return self

    def __next__(self):
        counter = getattr(self, "_counter", 0)
        if counter >= len(self):
            raise StopIteration
        self._counter = counter + 1
        return self[counter]


def one_hot(y, n_classes=None, dtype=None):
    """One-hot rows ``(N, n_classes)`` for integer labels ``y (N,)``.

    ``n_classes`` defaults to ``max(y) + 1``; ``dtype`` to fastnet's default dtype.

    Raises
    ------
    TypeError
        Labels that are not integers (a float array of whole numbers is taken), or a
        non-numeric ``dtype``.
    ValueError
        Labels that are not 1-D, negative, or ``>= n_classes``; an output too large for NumPy.
    MemoryError
        An output larger than the machine can allocate.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"one_hot: labels must be 1-D (N,); got shape {y.shape}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(y == np.round(y)) and np.all(np.abs(y) < 2**53):
            # Whole numbers that int64 holds exactly (and an empty list, which is float64).
            y = y.astype(np.int64)
        else:
            raise TypeError(f"one_hot: labels must be integers (or whole numbers below 2**53 "
                            f"in a float array); got {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"one_hot: label {y.min()} is negative; labels are 0, 1, ...")
    top = int(y.max()) + 1 if y.size else 0
    n = top if n_classes is None else check.integer("one_hot", "n_classes", n_classes, low=1)
    if top > n:
        raise ValueError(f"one_hot: label {top - 1} out of range for n_classes={n}")
    try:
        dtype = np.dtype(get_default_dtype() if dtype is None else dtype)
    except TypeError:
        raise TypeError(f"one_hot: dtype={dtype!r} is not a NumPy dtype; use e.g. "
                        f"np.float32") from None
    if dtype.kind not in "biuf":
        raise TypeError(f"one_hot: dtype={dtype} is not numeric; use e.g. np.float32")
    dtype = dtype.newbyteorder("=")                   # native byte order (">f4" given)
    try:
        out = np.zeros((len(y), n), dtype=dtype)
    except (ValueError, MemoryError) as error:
        # NumPy's own message ("array is too big") names no argument.
        kind = MemoryError if isinstance(error, MemoryError) else ValueError
        raise kind(f"one_hot: n_classes={n} for {len(y)} labels needs an array of shape "
                   f"{(len(y), n)} {dtype}, more than this machine can hold") from None
    out[np.arange(len(y)), y] = 1
    return out


def _scalar_value(value):
    """``f``'s result as a float: a number or an array of one element (a loss of shape (1,))."""
    if np.size(value) != 1:
        raise TypeError(f"numerical_gradient: f must return a scalar (the loss); it returned "
                        f"{type(value).__name__} of shape {np.shape(value)}")
    try:
        return float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        raise TypeError(f"numerical_gradient: f must return a scalar (the loss); it returned "
                        f"{value!r:.60}") from None


def numerical_gradient(f, x, h=1e-4):
    """Central-difference gradient ``(f(x+h) - f(x-h)) / 2h`` of a scalar function, element by
    element ("Deep Learning from Scratch"'s ``numerical_gradient``).

    ``x`` is perturbed *in place* (and restored), so ``f`` may ignore its argument and read a
    model's parameter array directly. Use float64 parameters: in float32 the differences are
    dominated by rounding.

    Parameters
    ----------
    f : callable, ``f(x) -> float``
    x : ndarray of float (modified temporarily)
    h : float > 0

    Returns
    -------
    grad : ndarray, float64, shaped as ``x``

    Examples
    --------
    Check a model's analytic gradients (float64 layers, no optimizers attached)::

        model = Sequential([FC(4, 5, dtype=np.float64), ReLU(), FC(5, 3, dtype=np.float64)],
                           loss=SoftmaxCrossEntropy())
        loss = lambda _: model.loss.forward(model.forward(X), y)
        loss(None)
        model.backward(model.loss.backward())                 # fills every layer's grads
        W = model.layers[0].W
        np.testing.assert_allclose(model.layers[0].dW, numerical_gradient(loss, W),
                                   rtol=1e-5, atol=1e-7)
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise TypeError("numerical_gradient: x must be a float ndarray (it is perturbed in "
                        "place)")
    if not x.flags.writeable:
        raise ValueError(f"numerical_gradient: x (shape {x.shape}) is read-only; it is perturbed "
                         f"in place, so pass a writeable array (x.copy())")
    h = check.real("numerical_gradient", "h", h, low=0, low_open=True)
    grad = np.zeros(x.shape, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        try:
            x[idx] = old + h
            moved = x[idx] != old
            up = _scalar_value(f(x))
            x[idx] = old - h
            moved = moved and x[idx] != old
            down = _scalar_value(f(x))
        finally:                      # also when f raises: x is the caller's parameter
            x[idx] = old
        if not moved:
            raise ValueError(f"numerical_gradient: h={h!r} is below the resolution of {x.dtype} "
                             f"at x[{', '.join(map(str, idx))}]={old!r} (x +- h rounds to x); "
                             f"use a larger h or float64")
        grad[idx] = (up - down) / (2 * h)
    return grad


def _check_fill(op, fill, dtype):
    """An integer (or bool) batch cannot hold a fill outside its range: ``np.pad`` would wrap
    it (-1 becomes 255 in uint8); nor a float batch a fill beyond its own range (inf)."""
    if dtype.kind == "f" and abs(fill) > float(np.finfo(dtype).max):
        raise ValueError(f"{op}: fill={fill!r} is beyond {dtype}'s range; it would become inf")
    if dtype.kind in "biu":
        info = np.iinfo(np.uint8 if dtype.kind == "b" else dtype)
        low, high = (0, 1) if dtype.kind == "b" else (info.min, info.max)
        if not (low <= fill <= high and fill == int(fill)):
            raise ValueError(f"{op}: fill={fill!r} cannot be stored in a {dtype} batch (whole "
                             f"numbers {low}..{high}); use a float batch or another fill")


def random_shift(max_shift=1, image_shape=(28, 28), fill=0.0):
    """Augmentation for ``fit(..., augment=...)``: shift each image by a random whole number of
    pixels, ``-max_shift..max_shift`` in each direction independently, filling with ``fill``
    (the background value: 0 for [0, 1] images, ``-mean/std`` for standardised ones).

    Parameters
    ----------
    max_shift : int >= 0
    image_shape : (int, int)
        ``(H, W)``; batches may be ``(N, H, W)`` or flattened ``(N, H*W)``.
    fill : float

    Returns
    -------
    augment : callable ``(x_batch, rng) -> x_batch`` of the same shape and dtype.
    """
    op = "random_shift"
    s = check.size(op, "max_shift", max_shift, low=0)
    if not (isinstance(image_shape, (tuple, list)) and len(image_shape) == 2):
        raise ValueError(f"{op}: image_shape={image_shape!r}; expected (H, W)")
    H, W = (check.size(op, "image_shape", v, low=1) for v in image_shape)
    if s >= min(H, W):        # a shift by the short side moves the whole image out
        raise ValueError(f"{op}: max_shift={s} exceeds the image size {H}x{W}; a shift that "
                         f"large moves the whole image out (at most {min(H, W) - 1})")
    fill = check.real(op, "fill", fill)

    def augment(x, rng):
        check.not_masked(op, "x", x)          # the shifted batch would lose the mask
        x = np.asarray(x)
        _check_fill(op, fill, x.dtype)
        if x.ndim < 2 or math.prod(x.shape[1:]) != H * W:
            raise ValueError(f"{op}: batch of shape {x.shape} does not hold {H}x{W} images; "
                             f"expected (N, {H}, {W}) or (N, {H * W})")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{op}: rng must be a numpy.random.Generator (fit passes its own); "
                            f"got {type(rng).__name__}")
        n = len(x)
        padded = np.pad(x.reshape(n, H, W), ((0, 0), (s, s), (s, s)), constant_values=fill)
        rows = rng.integers(0, 2 * s + 1, n)[:, None] + np.arange(H)      # (n, H)
        cols = rng.integers(0, 2 * s + 1, n)[:, None] + np.arange(W)      # (n, W)
        shifted = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        return shifted.reshape(x.shape)
    augment.touches_only_the_batch = True          # fit's later steps may skip checks with it
    return augment
