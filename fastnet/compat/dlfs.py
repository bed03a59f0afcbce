"""The names of "Deep Learning from Scratch" (chapter 5), for code written against that book:
``from fastnet.compat.dlfs import TwoLayerNet, softmax, load_mnist, ...``.

Everything here is also in :mod:`fastnet.compat` except :func:`softmax` and :func:`load_mnist`,
which differ from names there:

* the book's ``softmax(x)`` works on rows (``(N, C)`` scores, each row summing to 1), whereas
  ``fastnet.compat.softmax(U, reduce_axis=0)`` is the column-layout exercise's, whose classes
  run down axis 0. The two calls look alike, so each notebook's code must import its own;
* the book's ``load_mnist(normalize, flatten, one_hot_label)`` returns its dtypes and shapes
  (:func:`fastnet.mnist.load_mnist` returns fastnet's).
"""
import numpy as np

from .. import _checks as check
from .. import functional as F
from .. import mnist as _mnist
from . import (Affine, Relu, Sigmoid, SoftmaxWithLoss, TwoLayerNet, cross_entropy_error,
               numerical_gradient, _float)

__all__ = ["Affine", "Relu", "Sigmoid", "SoftmaxWithLoss", "TwoLayerNet", "cross_entropy_error",
           "numerical_gradient", "softmax", "load_mnist"]


def softmax(x):
    """The book's ``softmax``: over each row of ``x (N, C)``, or over all of a 1-D ``x (C,)``.

    Each row's maximum is subtracted, so it never overflows. float32/float64 input keeps its
    dtype; other input (integers, float16) is taken as float64.
    """
    x = _float(x)
    if x.ndim not in (1, 2):
        raise ValueError(f"softmax: x has shape {x.shape}; expected one score vector (C,) or "
                         f"rows of scores (N, C)")
    return F.softmax(x)


def load_mnist(normalize=True, flatten=True, one_hot_label=False, data_dir=None):
    """The book's MNIST loader: ``(x_train, t_train), (x_test, t_test)``.

    Parameters
    ----------
    normalize : bool, default True
        Pixels as float32 in [0, 1]; otherwise the raw uint8 values 0..255.
    flatten : bool, default True
        Images as rows of 784 pixels; otherwise ``(N, 1, 28, 28)``, as the book's (the IDX
        files' own image size, should they hold another).
    one_hot_label : bool, default False
        Labels as float64 one-hot rows ``(N, 10)``; otherwise uint8 labels ``(N,)``.
    data_dir : str or os.PathLike, optional
        Where the four IDX files are; by default found as :func:`fastnet.mnist.load_mnist` finds
        them (``FASTNET_DATA``, then fastnet's cache, downloading into it).
    """
    op = "load_mnist"
    normalize, flatten, one_hot_label = (check.flag(op, name, value) for name, value in
                                         (("normalize", normalize), ("flatten", flatten),
                                          ("one_hot_label", one_hot_label)))
    out = []
    for x, t in _mnist.load_mnist(data_dir, normalize=False, flatten=flatten, dtype=np.float32):
        if normalize:
            x /= 255                              # the book's float32 division
        else:
            x = x.astype(np.uint8)                # 0..255, exact in float32
        if not flatten:
            x = x.reshape(len(x), 1, *x.shape[1:])  # (N, 1, rows, cols): the files' image size
        t = np.eye(10)[t] if one_hot_label else t.astype(np.uint8)
        out.append((x, t))
    return tuple(out)
