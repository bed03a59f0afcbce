"""Numba backend: the product. The only package in fastnet that imports numba.

Importing it compiles nothing: kernels compile on first call (or load from the on-disk cache).
Policy (fastmath flags, cache, parallel threshold) lives in ``_config.py``.
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
from .scheduling import one_caller_at_a_time as _one_caller_at_a_time, serialized as _serialized

import types as _types

from .. import CONTRACT as _CONTRACT
from .._guards import guarded as _guarded

_kernels = {name: globals()[name] for name in _CONTRACT}
if _one_caller_at_a_time():           # Numba's workqueue layer: two callers at once end the process
    _kernels = _serialized(_kernels)
#: The kernels themselves: ``fastnet.functional`` calls these after its own full checks.
trusted = _types.SimpleNamespace(__name__=__name__, **_kernels)
# The public names are the same kernels behind ``kernels._guards``' checks, for direct callers:
# the compiled loops do not check bounds.
globals().update(_guarded(trusted))
