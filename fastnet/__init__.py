"""fastnet: scratch-style neural networks on Numba-compiled kernels.

``import fastnet`` compiles nothing: kernels compile on first use (or load from Numba's on-disk
cache). See ``fastnet.functional`` for the validated functions and ``fastnet.backend`` for the
settings below.
"""
import os as _os

# In a source checkout (e.g. `python -m fastnet` run from the repository root after a plain
# `pip install .`) Python imports this folder instead of the installed package, and the kernels
# live beside it in ../kernels rather than in fastnet/kernels. Let `fastnet.kernels` resolve
# there; an installed package has fastnet/kernels and is left alone.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "kernels")) and \
        _os.path.isfile(_os.path.join(_root, "kernels", "__init__.py")):
    __path__.append(_root)

from .backend import (get_backend, set_backend, get_default_dtype, set_default_dtype,
                      get_num_threads, set_num_threads)
from . import functional, initializers, layers, losses, optimizers, model, data, models

__version__ = "0.1.0"

__all__ = ["get_backend", "set_backend", "get_default_dtype", "set_default_dtype",
           "get_num_threads", "set_num_threads", "functional", "initializers", "layers",
           "losses", "optimizers", "model", "data", "models", "__version__"]
