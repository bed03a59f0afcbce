"""fastnet: scratch-style neural networks on Numba-compiled kernels.

``import fastnet`` compiles nothing: kernels compile on first use (or load from Numba's on-disk
cache). See ``fastnet.functional`` for the validated functions and ``fastnet.backend`` for the
settings below.
"""
from .backend import (get_backend, set_backend, get_default_dtype, set_default_dtype,
                      get_num_threads, set_num_threads)
from . import functional, initializers, layers, losses, optimizers, model, data, models

__version__ = "0.1.0"

__all__ = ["get_backend", "set_backend", "get_default_dtype", "set_default_dtype",
           "get_num_threads", "set_num_threads", "functional", "initializers", "layers",
           "losses", "optimizers", "model", "data", "models", "__version__"]
