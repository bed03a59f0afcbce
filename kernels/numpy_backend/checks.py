"""Checks of whole arrays that the Python layer runs before training or a kernel (NumPy)."""
import numpy as np


def labels_in_range(labels, n_classes):
    """Whether every int64 label lies in ``[0, n_classes)`` (the functional layer's check)."""
    # One reduction checks both ends: seen as unsigned, a negative label is huge.
    return labels.size == 0 or int(labels.view(np.uint64).max()) < n_classes


def all_in_unit_interval(a):
    """Whether no value of the 1-D float array ``a`` lies below 0 or above 1 (NaN passes)."""
    return not ((a < 0) | (a > 1)).any()


def all_finite(a):
    """Whether every value of the 1-D float array ``a`` is finite (no NaN, no +-inf)."""
    return bool(np.isfinite(a).all())
