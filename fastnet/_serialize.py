"""Model files: one ``.npz`` archive holding a JSON architecture spec and the arrays. No pickle.

Layout of the archive (``np.savez``, loaded with ``allow_pickle=False``)::

    __fastnet__                a 0-d unicode array: the JSON spec below
    param/<key>                every parameter, keyed as in ``model.params`` ("0.W", "2.b", ...)
    state/<key>/<name>         optimizer state of that parameter ("h", "velocity", "m", "v", "step")

The spec::

    {"format": "fastnet-model", "version": 1, "fastnet": "0.1.0",
     "optimizers": [{"class": "AdaGrad", "config": {"lr": 0.01, "eps": 1e-07}}, ...],
     "model": {"class": "Classifier", "config": {"layers": [...], "loss": {...}}},
     "model_optimizer": null or an index into "optimizers",
     "history": {"loss": [...], ...},
     "training": {"": true, "1.": false, ...}}

``training`` holds the model's mode and each layer's (keyed as in ``named_leaves``; an FC's
activation object that has a mode, such as a Dropout, as ``"<FC's key>activation"``), so a model
saved in evaluation mode, or with one Dropout switched off, loads so (files without it: training
mode, as a freshly built model).

Objects inside configs are written ``{"__object__": {"class": ..., "config": ...}}``; an optimizer
is written ``{"__optimizer__": i}``, an index into the table, so an optimizer shared by several
layers is still one object after loading. Only classes registered with :func:`register` can be
saved or loaded: loading never imports or calls anything else.

Saving is atomic: the archive is written to a temporary file in the target's directory, flushed
to disk, then moved over the target with ``os.replace``. An exception (or a crash) mid-save
leaves any previous file untouched.
"""
import inspect
import json
import os

import numpy as np

from ._archive import SPEC_BYTES, Entries, InMemory, Unreadable
from ._files import atomic_write, special_kind

FORMAT = "fastnet-model"
VERSION = 1
_SPEC_KEY = "__fastnet__"

_REGISTRY = {}


def register(name=None):
    """Class decorator: make a class savable under ``name`` (default: its class name)."""
    def decorate(cls):
        key = name or cls.__name__
        _REGISTRY[key] = cls
        cls._spec_name = key
        return cls
    return decorate


def _spec_name(obj):
    key = getattr(type(obj), "_spec_name", None)
    if key is None or _REGISTRY.get(key) is not type(obj):
        raise TypeError(f"save: cannot save a {type(obj).__module__}.{type(obj).__qualname__}; "
                        f"only fastnet's own layers, losses and optimizers are saved "
                        f"(registered: {sorted(_REGISTRY)})")
    return key


# --- objects <-> JSON ----------------------------------------------------------------------------

def _encode(value, optimizers):
    """A config value as JSON-able data; optimizers go to the shared table."""
    from .optimizers import Optimizer
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_encode(v, optimizers) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, optimizers) for k, v in value.items()}}
    if isinstance(value, Optimizer):
        for i, opt in enumerate(optimizers):
            if opt is value:
                return {"__optimizer__": i}
        optimizers.append(value)
        return {"__optimizer__": len(optimizers) - 1}
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "get_config"):
        return {"__object__": to_spec(value, optimizers)}
    raise TypeError(f"save: cannot encode a {type(value).__name__} in a model file")


def to_spec(obj, optimizers):
    """``{"class": ..., "config": ...}`` for a registered object."""
    key = _spec_name(obj)
    config = {k: _encode(v, optimizers) for k, v in obj.get_config().items()}
    return {"class": key, "config": config}


class _ZerosInitializer:
    """Used when rebuilding saved layers: their weights are overwritten, so draw nothing."""

    def weights(self, shape, fan_in, dtype=None):
        return np.zeros(shape, dtype=dtype)

    def W(self, n_nodes1, n_nodes2, dtype=None):
        return np.zeros((n_nodes1, n_nodes2), dtype=dtype)

    def b(self, n_nodes2, dtype=None):
        return np.zeros(n_nodes2, dtype=dtype)


def _decode(value, optimizers):
    if isinstance(value, list):
        return [_decode(v, optimizers) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__optimizer__"}:
            return optimizers[_optimizer_index(value["__optimizer__"], optimizers)]
        if set(value) == {"__object__"}:
            return from_spec(value["__object__"], optimizers)
        if set(value) == {"__dict__"} and isinstance(value["__dict__"], dict):
            return {k: _decode(v, optimizers) for k, v in value["__dict__"].items()}
        raise ValueError(f"unexpected object in model spec: {sorted(value)}")
    return value


def _optimizer_index(index, optimizers):
    # A tampered index of -1 would silently pick the last optimizer.
    if type(index) is not int or not 0 <= index < len(optimizers):
        raise ValueError(f"optimizer index {index!r} is not in [0, {len(optimizers)})")
    return index


def _history(history):
    """The saved ``history``: a dict of metric name -> list of numbers."""
    if not isinstance(history, dict):
        raise ValueError(f"history is a {type(history).__name__}, not a dict")
    for key, values in history.items():
        if not (isinstance(values, list)
                and all(type(v) in (int, float) for v in values)):
            raise ValueError(f"history[{key!r}] is not a list of numbers")
    try:
        return {k: [float(v) for v in vals] for k, vals in history.items()}
    except OverflowError:                   # an int of hundreds of digits
        raise ValueError("history holds an integer too large for a float") from None


def from_spec(spec, optimizers):
    """Rebuild a registered object from :func:`to_spec`'s output."""
    cls = _REGISTRY.get(spec["class"])
    if cls is None:
        raise ValueError(f"unknown class {spec['class']!r} (known: {sorted(_REGISTRY)})")
    config = {k: _decode(v, optimizers) for k, v in spec["config"].items()}
    if "initializer" in inspect.signature(cls).parameters:
        config["initializer"] = _ZerosInitializer()
    return cls(**config)


def _optimizer_spec(opt):
    # Encoded as layer configs are: an lr assigned as np.float32(0.01) is saved as a number.
    return {"class": _spec_name(opt),
            "config": {k: _encode(v, []) for k, v in opt.get_config().items()}}


# --- the model file ------------------------------------------------------------------------------

def _responsible_optimizers(model):
    """``{param key: optimizer}`` for every parameter (its layer's own, else the nearest
    enclosing container's)."""
    out = {}
    for prefix, layer, opt in model.leaf_optimizers():
        if opt is None:
            continue
        for name in layer.params:
            out[prefix + name] = opt
    return out


def save_model(model, path):
    """Write ``model`` to ``path`` atomically (see the module docstring)."""
    from . import __version__
    _check_path("save", path, " (the file is written beside a temporary one and renamed, "
                              "which needs a name)")
    optimizers = []
    model_spec = to_spec(model, optimizers)
    model_opt = None if model.optimizer is None else _encode(model.optimizer, optimizers)
    arrays = {}
    params = model.params
    for key, param in params.items():
        arrays[f"param/{key}"] = param
    for key, opt in _responsible_optimizers(model).items():
        for name, value in opt.state_of(params[key]).items():
            arrays[f"state/{key}/{name}"] = value
    spec = {"format": FORMAT, "version": VERSION, "fastnet": __version__,
            "optimizers": [_optimizer_spec(opt) for opt in optimizers],
            "model": model_spec,
            "model_optimizer": None if model_opt is None else model_opt["__optimizer__"],
            "history": _history_numbers(model.history),
            "training": _modes(model)}
    text = json.dumps(spec)
    # Rebuilt in memory first, as load will: a model whose attributes were set to values its
    # constructors refuse (stride=0, lr=nan, a float16 W) fails here, before it could
    # replace a good file with one that load refuses.
    random_state = np.random.get_state()    # a Dropout(seed=None) rebuilt draws from it
    try:
        _rebuild(json.loads(text), InMemory(arrays))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        raise ValueError(f"save: the model cannot be saved as it is, load would refuse the file: "
                         f"{type(err).__name__}: {err}") from None
    finally:
        np.random.set_state(random_state)
    arrays[_SPEC_KEY] = np.array(text)
    atomic_write(os.fsdecode(path), lambda f: np.savez(f, **arrays))   # str, bytes, PathLike


def _check_path(op, path, why=""):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{op}: path must be a file name (str, bytes or os.PathLike); got "
                        f"{type(path).__name__}{why}")
    name = os.fspath(path)
    if not name:
        raise ValueError(f"{op}: path is empty; give a file name such as 'model.npz'")
    if (b"\0" if isinstance(name, bytes) else "\0") in name:
        raise ValueError(f"{op}: path {path!r} contains a NUL character, which no file name "
                         f"can hold")


def _history_numbers(history):
    """``history`` as ``{name: [float, ...]}`` for the spec, or ValueError naming the entry."""
    out = {}
    for key, values in history.items():
        try:
            out[str(key)] = [float(v) for v in values]
        except (TypeError, ValueError):
            raise ValueError(f"save: history[{key!r}] must be a list of numbers; got "
                             f"{values!r:.80}") from None
    return out


def _rebuild(spec, arrays):
    """The model ``spec`` and ``arrays`` (``_archive.Entries`` or ``InMemory``) describe (what
    load returns; what save checks)."""
    optimizers = [from_spec(o, []) for o in spec["optimizers"]]
    model = from_spec(spec["model"], optimizers)
    if spec["model_optimizer"] is not None:
        model.optimizer = optimizers[_optimizer_index(spec["model_optimizer"], optimizers)]
    _restore_arrays(model, arrays)
    model.history = _history(spec.get("history", {}))
    _restore_modes(model, spec.get("training", {}))
    return model


def _modes(model):
    """``{"": model.training, leaf key: leaf.training, ...}`` (see the module docstring)."""
    training, leaves = model._modes()
    return {"": bool(training), **{key: mode for key, _, mode in leaves}}


def _restore_modes(model, modes):
    """Set the saved modes: the model's (and so every container's) first, then each layer's."""
    if not isinstance(modes, dict) or not all(isinstance(v, bool) for v in modes.values()):
        raise ValueError(f"training is not a dict of true/false: {modes!r:.80}")
    holders = dict(model._mode_holders())
    entries = []
    # an FC before its activation object: FC.train sets the activation's mode too
    for key, mode in sorted(modes.items(), key=lambda item: item[0].endswith("activation")):
        if not key:
            continue
        if key not in holders or not hasattr(holders[key], "training"):
            raise ValueError(f"training names layer {key!r}, which the model does not have")
        entries.append((key, holders[key], mode))
    model._set_modes((modes.get("", True), entries))


def _starts_with(path, prefix):
    with open(path, "rb") as f:
        return f.read(len(prefix)) == prefix


def _not_a_model(path, why):
    return ValueError(f"load: {path} is not a fastnet model file ({why}); save models with "
                      f"model.save(path)")


def load_model(path, expected=None):
    """Rebuild the model saved at ``path`` (an instance of ``expected`` if given).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a fastnet model, is truncated or corrupt, or holds another model class.
    """
    _check_path("load", path)
    path = os.fsdecode(path)
    # Opening a FIFO waits for a writer: a load from one hung for good. (A missing or
    # unreadable path is np.load's to name.)
    if special_kind(path) == "a FIFO":
        raise _not_a_model(path, "it is a FIFO, and reading it would wait for a writer")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise _not_a_model(path, "a single .npy array, not an archive")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except ValueError as err:
        if str(err).startswith("load: "):
            raise
        if "allow_pickle" in str(err):       # not NumPy's hint to load it unsafely
            # NumPy says so of anything that is neither .npz nor .npy: only a pickle (which
            # starts 0x80) or an .npy of objects holds pickled objects. A file that starts as
            # a zip file ("PK") but is not one is a damaged archive (its entries are read
            # later, ``_archive``, which names one of objects).
            if _starts_with(path, b"PK"):
                why = "a damaged .npz archive: it starts as a zip file, but its header is broken"
            elif _starts_with(path, b"\x80") or _starts_with(path, b"\x93NUMPY"):
                why = "it holds pickled Python objects, which fastnet never loads"
            else:
                why = "neither an .npz archive nor an .npy array"
            raise _not_a_model(path, why) from err
        raise _not_a_model(path, f"unreadable: {err}") from err
    except Exception as err:         # zipfile.BadZipFile, zlib.error, EOFError, OSError, ...
        raise _not_a_model(path, f"unreadable or truncated: {type(err).__name__}: {err}") from err
    with archive:
        return _load_archive(path, archive, expected)


def _load_archive(path, archive, expected):
    """:func:`load_model` of the open ``archive``: the spec, then each array the model built
    from it has a place for, after its header (``_archive``)."""
    try:
        entries = Entries(archive)
        spec = json.loads(_read_spec(entries))
    except Unreadable as err:
        raise _not_a_model(path, str(err)) from err
    except (ValueError, RecursionError) as err:   # not JSON, or nested past Python's limit
        raise _not_a_model(path, f"its spec is not JSON that fastnet reads: "
                                 f"{type(err).__name__}: {err}") from err
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise _not_a_model(path, "its spec does not say format 'fastnet-model'")
    if spec.get("version") != VERSION:
        raise ValueError(f"load: {path} has model-file version {spec.get('version')!r}; this "
                         f"fastnet reads version {VERSION}")
    try:
        model = _rebuild(spec, entries)
    except Unreadable as err:
        raise _not_a_model(path, str(err)) from err
    except ValueError as err:
        raise _not_a_model(path, f"inconsistent spec: {err}") from err
    except (KeyError, TypeError, IndexError, AttributeError, RecursionError, MemoryError,
            OverflowError) as err:
        # A hand-edited spec: a wrong type anywhere, nesting deeper than Python's recursion
        # limit, or layer sizes too large to allocate.
        raise _not_a_model(path, f"inconsistent spec: {type(err).__name__}: {err}") from err
    if expected is not None and not isinstance(model, expected):
        raise ValueError(f"load: {path} holds a {type(model).__name__}, not a "
                         f"{expected.__name__}; use fastnet.model.load(path) to load any model")
    return model


def _read_spec(entries):
    """The spec's JSON text, read after its header says it is one string of at most
    ``SPEC_BYTES``."""
    if _SPEC_KEY not in entries.names:
        raise Unreadable(f"an .npz archive without a {_SPEC_KEY!r} entry")
    shape, dtype = entries.header(_SPEC_KEY)
    if shape != () or dtype.kind != "U" or dtype.itemsize > SPEC_BYTES:
        raise Unreadable(f"its {_SPEC_KEY!r} entry is {dtype} {shape}, not the JSON text of a "
                         f"spec (one string of at most {SPEC_BYTES // 2**20} MiB)")
    return str(entries.read(_SPEC_KEY, shape, dtype))


def _restore_arrays(model, arrays):
    """Fill the model's parameters and its optimizers' state from ``arrays``; names first, then
    each entry's shape and dtype, and only then its data (``_archive``)."""
    params = model.params
    expected = {f"param/{k}" for k in params}
    names = [k for k in arrays.names if k != _SPEC_KEY]
    missing = expected - set(names)
    if missing:
        raise ValueError(f"parameters missing: {sorted(missing)[:5]}")
    # Arrays the model has no place for mean the file and its spec disagree (edited, or
    # assembled from two models): refused rather than dropped.
    responsible = _responsible_optimizers(model)
    extra = [k for k in names if k not in expected and not (
        k.startswith("state/") and k[len("state/"):].rpartition("/")[0] in responsible)]
    if extra:
        raise ValueError(f"arrays the model has no place for: {sorted(extra)[:5]}")
    for key, param in params.items():
        name = f"param/{key}"
        shape, dtype = arrays.header(name)
        if shape != param.shape or dtype != param.dtype:
            raise ValueError(f"parameter {key} is {dtype} {shape}, the architecture needs "
                             f"{param.dtype} {param.shape}")
        param[...] = arrays.read(name, shape, dtype)
    for key, opt in responsible.items():
        prefix = f"state/{key}/"
        saved = {k[len(prefix):] for k in names if k.startswith(prefix)}
        if not saved:
            continue
        fresh = opt._new_state(params[key])
        if saved != set(fresh):
            raise ValueError(f"{type(opt).__name__}: state keys {sorted(saved)}; expected "
                             f"{sorted(fresh)}")
        state = {}
        for name, want in fresh.items():
            shape, dtype = arrays.header(prefix + name)
            if shape != want.shape or dtype != want.dtype:
                raise ValueError(f"{type(opt).__name__}: state {name!r} is {dtype} {shape}; "
                                 f"expected {want.dtype} {want.shape} (the parameter's)")
            state[name] = arrays.read(prefix + name, shape, dtype)
        opt.set_state(params[key], state)
