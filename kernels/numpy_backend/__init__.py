"""Vectorised NumPy backend: the reference implementation and the speed yardstick.

Idiomatic NumPy, not a strawman: BLAS for products, ``out=`` to avoid temporaries where that is
natural, strided views for convolution windows.
"""
from .activations import (relu_forward, relu_backward, sigmoid_forward, sigmoid_backward,
                          tanh_forward, tanh_backward, softmax_forward, softmax_backward)
from .dense import (dense_forward, dense_bias_act_, dense_backward, dense_backward_adagrad_,
                    dense_backward_adagrad_ahead_)
from .losses import (softmax_cross_entropy_forward, softmax_cross_entropy_backward,
                     mse_forward, mse_backward, bce_forward, bce_backward)
from .checks import labels_in_range, all_finite, all_in_unit_interval
from .optimizers import (sgd_update_, momentum_update_, adagrad_update_, rmsprop_update_,
                         adam_update_)
from .conv1d import conv1d_forward, conv1d_backward
from .pooling import maxpool1d_forward, maxpool1d_backward, avgpool1d_forward, avgpool1d_backward
from .scheduling import run_side_by_side

import types as _types

from .. import CONTRACT as _CONTRACT
from .._guards import guarded as _guarded

#: The kernels themselves: ``fastnet.functional`` calls these after its own full checks.
trusted = _types.SimpleNamespace(__name__=__name__,
                                 **{name: globals()[name] for name in _CONTRACT})
# The public names are the same kernels behind ``kernels._guards``' checks, for direct callers
# (the Numba backend's compiled loops do not check bounds; both backends guard alike).
globals().update(_guarded(trusted))
