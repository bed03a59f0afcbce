"""Argument checks shared by ``fastnet.functional``: every error a user sees is raised here.

Each check names the operation and the argument, says what it received and what was expected,
and returns the value prepared for a kernel (C-contiguous array, plain Python scalar).

Dtype rule of the functional API: arrays must already be float32 or float64 and agree with each
other; nothing is cast behind the user's back. Plain Python lists/tuples/scalars have no dtype
and are converted to the default dtype (so ``conv1d([1, 2, 3, 4], [3, 5, 7])`` works).
"""
import math
import numbers
import os

import numpy as np

from .backend import get_default_dtype, kernels
from .kernels import DENSE_ACTIVATIONS, _guards

FLOAT_DTYPES = (np.float32, np.float64)
#: Their dtypes in native byte order (what the kernels take).
NATIVE_FLOATS = frozenset(np.dtype(t) for t in FLOAT_DTYPES)
#: Largest size accepted (a layer's features or channels, a kernel size, stride, padding,
#: dilation or length), 2**31 - 1. Far beyond any real use, and it keeps every index the kernels
#: compute (products such as ``l*stride`` and ``k*dilation``) well inside int64: compiled loops
#: do not check bounds, so a wrapped index would read or write outside the arrays.
MAX_SIZE = _guards.MAX_SIZE


def _describe(a):
    return f"dtype {a.dtype} and shape {a.shape}"


def digit_count(value):
    """The number of decimal digits of the int ``value`` (``str`` refuses ints beyond 4300
    digits, and a message should not print hundreds of them anyway)."""
    value = abs(value)
    digits = max(1, int(value.bit_length() * math.log10(2)))
    while value >= 10**digits:
        digits += 1
    return digits


def _too_long_to_print(value):
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30


def named_int(name, value):
    """``"name=value"``, or ``"name (an integer of N digits)"`` for an int too long to print."""
    if _too_long_to_print(value):
        return f"{name} (an integer of {digit_count(value)} digits)"
    return f"{name}={value}"


def shown(value):
    """``repr(value)``, or ``"an integer of N digits"`` for an int too long to print (10**400
    as a flag printed 400 digits)."""
    if _too_long_to_print(value):
        return f"an integer of {digit_count(value)} digits"
    return repr(value)


def not_a_number(value, kind):
    """Whether ``value`` is not a number of ``kind`` (``numbers.Real`` or ``Integral``) that
    a size or hyper-parameter can be: a bool is not, nor a ``np.timedelta64``, which NumPy
    registers as an integer (a time span was taken as a stride or a learning rate)."""
    return isinstance(value, (bool, np.timedelta64)) or not isinstance(value, kind)


def _big_ints_as_floats(op, name, a):
    """An object array that NumPy made of Python ints beyond int64 (``[1, 2**70]``), as
    float64; unchanged when it holds anything but numbers (the caller refuses it)."""
    if not all(isinstance(v, numbers.Real) for v in a.flat):
        return a
    try:
        return np.array(a.tolist(), dtype=np.float64)
    except OverflowError:
        raise ValueError(f"{op}: {name} holds an integer too large for any float dtype (above "
                         f"1.8e308)") from None


def with_context(err, message):
    """``err``'s class with ``message``, for re-raising an error with where it happened (the
    caller chains ``err``). An exception class that cannot be built from one message (NumPy's
    ``_UFuncNoLoopError`` from a user's layer) becomes a plain TypeError or ValueError."""
    try:
        return type(err)(message)
    except Exception:                    # noqa: BLE001 (any constructor failure)
        return (TypeError if isinstance(err, TypeError) else ValueError)(message)


def float_array(op, name, a, dtype=None):
    """``a`` as a C-contiguous float32/float64 ndarray in native byte order.

    ``dtype`` (optional) is the dtype the other arguments already have; a Python list is then
    converted to it, and an ndarray of another dtype is an error. A NumPy scalar is a 0-d array
    of its own dtype; Python numbers, lists and tuples take ``dtype`` or the default dtype.
    Subclasses (``np.matrix``, ``np.memmap``) are viewed as plain ndarrays; masked arrays are
    refused, since a kernel would ignore the mask.
    """
    if not isinstance(a, np.ndarray):
        if isinstance(a, np.generic) and not isinstance(a, np.bool_):
            a = np.asarray(a)              # keeps a NumPy scalar's dtype (float16 is refused below)
        elif isinstance(a, (list, tuple, numbers.Number)) and not isinstance(a, bool):
            try:
                a = np.asarray(a)
            except ValueError:
                raise ValueError(f"{op}: {name} is a nested sequence of unequal lengths; "
                                 f"expected a rectangular array") from None
            if a.dtype == object:
                a = _big_ints_as_floats(op, name, a)
            if a.dtype == object or a.dtype.kind not in "iuf":
                raise TypeError(f"{op}: {name} must be numeric; got {a.dtype} data")
            # as layers cast: a number beyond the dtype's range is an error, not a silent inf
            a = cast_real(op, name, a, dtype or get_default_dtype())
        else:
            raise TypeError(f"{op}: {name} must be a NumPy array; got {type(a).__name__}")
    if a.dtype.type not in FLOAT_DTYPES:
        raise TypeError(
            f"{op}: {name} has {_describe(a)}; expected float32 or float64 "
            f"(convert explicitly, e.g. {name}.astype(np.float32))")
    if not a.dtype.isnative:
        raise TypeError(
            f"{op}: {name} has non-native byte order (dtype {a.dtype.str!r}, shape {a.shape}); "
            f"convert it with {name}.astype({name}.dtype.newbyteorder('='))")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(
            f"{op}: {name} has dtype {a.dtype} but the other inputs are {np.dtype(dtype)}; "
            f"fastnet does not mix dtypes silently — cast one of them explicitly")
    flags = a.flags
    if type(a) is np.ndarray and flags.c_contiguous and flags.writeable:   # the common case
        return a
    not_masked(op, name, a)
    return kernel_ready(a)


def kernel_ready(a, dtype=None):
    """``a`` as a plain, C-contiguous, writeable ndarray (of ``dtype`` if given), copied only
    when it is not one already.

    A read-only array (``np.load(..., mmap_mode="r")``, ``np.frombuffer``) is copied: Numba
    types it apart from a writeable one and would compile every kernel again for it (0.3-3 s
    each). ``np.asarray``, not ``np.ascontiguousarray``, which turns a 0-d array into shape
    (1,); it also turns subclasses (``np.memmap``) into plain ndarrays.
    """
    out = np.asarray(a, dtype=dtype, order="C")
    return out if out.flags.writeable else out.copy()


def cast_real(op, name, a, dtype, remedy="scale the data or use {dtype}"):
    """``a`` as a C-contiguous array of the float ``dtype``: the casting rule of layers, loss
    targets and initial weights.

    Only real numbers are cast (bool, integer, float): complex, string or object data is a
    ``TypeError`` (a cast would drop imaginary parts or parse text). A finite value that a
    narrowing cast would turn into inf (float64 1e300 into float32) is a ``ValueError``; NaN and
    inf themselves pass. No copy when ``a`` already is such an array. ``remedy`` ends the
    overflow message (``{dtype}`` stands for ``a``'s dtype, or float64 for a wider one).
    """
    not_masked(op, name, a)
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{op}: {name} has dtype {a.dtype} (shape {a.shape}); expected real "
                        f"numbers (bool, integer or float), cast to {np.dtype(dtype).name}")
    if a.dtype.kind == "f" and a.dtype.itemsize > np.dtype(dtype).itemsize:
        with np.errstate(over="ignore"):
            out = np.asarray(a, dtype=dtype, order="C")
        # Only the values that the cast made non-finite count: a NaN elsewhere must not hide
        # an overflow (np.isfinite(a).all() would be False then).
        if not np.isfinite(out).all():
            overflowed = ~np.isfinite(out) & np.isfinite(a)
            if overflowed.any():
                # The largest as it is (float() of a long double past float64's range is inf),
                # and a remedy that names a dtype fastnet takes (not float128).
                largest = np.format_float_scientific(np.abs(a[overflowed]).max(), precision=2,
                                                     trim="-")
                wider = a.dtype if a.dtype.type in FLOAT_DTYPES else np.dtype(np.float64)
                fix = (remedy.format(dtype=wider) if wider != np.dtype(dtype) else
                       "scale the data: float64 is the widest dtype fastnet computes in")
                raise ValueError(
                    f"{op}: {name} (shape {a.shape}) holds {a.dtype} values up to {largest}, "
                    f"beyond {np.dtype(dtype).name}'s range ({float(np.finfo(dtype).max):.3g}); "
                    f"{fix}")
        return out
    return np.asarray(a, dtype=dtype, order="C")           # 0-d stays 0-d


def _kernel_can_read(a):
    """Whether the backend's whole-array checks take ``a`` as it is: C-contiguous, writeable,
    native float32/float64 (anything else the Numba kernels would need copied, or compiled
    anew for: a read-only array is a type of its own)."""
    flags = a.flags
    return (a.dtype.type in FLOAT_DTYPES and a.dtype.isnative and flags.c_contiguous
            and flags.writeable)


def all_finite(a):
    """Whether every value of the float array ``a`` is finite: the backend's single pass where
    it can read ``a`` (6000 x 784 float64: 0.7 ms with Numba against 1.4 ms for
    ``np.isfinite(a).all()``, which first builds a boolean array as large), NumPy for anything
    else (float16, a read-only or strided array)."""
    a = np.asarray(a)            # a subclass as a plain ndarray: np.matrix stays 2-D in reshape
    if _kernel_can_read(a):
        return kernels().all_finite(a.reshape(-1))
    return bool(np.isfinite(a).all())


def all_in_unit_interval(a):
    """Whether no value of the float array ``a`` lies below 0 or above 1 (NaN passes), as
    :func:`all_finite` does it: the backend's single pass where it can read ``a``."""
    a = np.asarray(a)
    if _kernel_can_read(a):
        return bool(kernels().all_in_unit_interval(a.reshape(-1)))
    return not ((a < 0) | (a > 1)).any()


def need_forward(owner, cache):
    """A layer's or loss's ``backward`` needs what its ``forward`` kept (``cache`` not None)."""
    if cache is None:
        raise RuntimeError(f"{owner!r}: backward called before forward")


def not_masked(op, name, a):
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(f"{op}: {name} is a masked array (shape {a.shape}); fastnet's kernels "
                        f"would ignore its mask: pass {name}.filled(value) or drop the masked "
                        f"entries first")


def updatable(op, name, a):
    """``a`` as an ndarray that can be updated in place (C-contiguous, writeable)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{op}: {name} must be a NumPy array (it is updated in place); "
                        f"got {type(a).__name__}")
    flags = a.flags
    if not flags.writeable:
        raise ValueError(f"{op}: {name} (shape {a.shape}) is read-only and cannot be updated in "
                         f"place; pass a writeable array (e.g. {name}.copy(), once, when you "
                         f"create it)")
    if not flags.c_contiguous:
        raise ValueError(f"{op}: {name} (shape {a.shape}) must be C-contiguous to be updated "
                         f"in place; use np.ascontiguousarray once when you create it")
    if type(a) is np.ndarray:
        return a
    not_masked(op, name, a)
    return a.view(np.ndarray)


def float_arrays(op, **arrays):
    """Check several arrays with :func:`float_array`; all must share one dtype. Python lists
    and numbers have none and take the dtype of the first float ndarray or NumPy float scalar
    among them (the default dtype when there is none), wherever they stand in the argument
    list."""
    plain = list(arrays.values())
    if plain and type(plain[0]) is np.ndarray and plain[0].dtype in NATIVE_FLOATS:
        dtype = plain[0].dtype
        if all(type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous
               and a.flags.writeable for a in plain):
            return plain      # the common case, as float_array returns it (~2 us less a call)
    dtype = one_float_dtype(op, **arrays)
    out = []
    for name, a in arrays.items():
        out.append(float_array(op, name, a, dtype))
        dtype = out[-1].dtype          # an ndarray of another dtype was refused above
    return out


def one_float_dtype(op, **arrays):
    """The one float dtype of the float arrays and NumPy float scalars among ``arrays`` (None
    when there are none); a TypeError naming each where they mix dtypes."""
    typed = {name: a.dtype for name, a in arrays.items()
             if isinstance(a, (np.ndarray, np.floating)) and a.dtype in NATIVE_FLOATS}
    if len(set(typed.values())) > 1:
        _mixed_dtypes(op, typed)
    return next(iter(typed.values()), None)


def _mixed_dtypes(op, typed):
    """Raise the TypeError for float arrays of different dtypes (``typed``: name -> dtype),
    naming each, and the ones to cast: those outside the most common dtype (the first
    argument's dtype on a tie)."""
    dtypes = list(typed.values())
    common = max(dict.fromkeys(dtypes), key=dtypes.count)
    odd = [name for name, dtype in typed.items() if dtype != common]
    listed = ", ".join(f"{name} {dtype}" for name, dtype in typed.items())
    raise TypeError(f"{op}: the inputs mix dtypes ({listed}); fastnet does not mix dtypes "
                    f"silently — cast {' and '.join(odd)} to {common} (or the others to "
                    f"{typed[odd[0]]}) explicitly")


def activation(op, value):
    """A fused activation (None, "relu", "sigmoid", "tanh") as the kernels' name for it."""
    name = "none" if value is None else value
    if not isinstance(name, str) or name not in DENSE_ACTIVATIONS:
        raise ValueError(f"{op}: activation={value!r}; choose one of "
                         f"{(None,) + DENSE_ACTIVATIONS[1:]}")
    return name


def ndim(op, name, a, *allowed):
    if a.ndim not in allowed:
        if len(allowed) > 2 and allowed == tuple(range(allowed[0], allowed[-1] + 1)):
            want = f"{allowed[0]}-D to {allowed[-1]}-D"          # not 32 alternatives
        else:
            want = " or ".join(f"{n}-D" for n in allowed)
        raise ValueError(f"{op}: {name} must be {want}; got shape {a.shape}")


def same_shape(op, name_a, a, name_b, b):
    if a.shape != b.shape:
        raise ValueError(f"{op}: {name_a} has shape {a.shape} but {name_b} has shape {b.shape}; "
                         f"they must match")


def _unwrapped(value, kinds):
    """A 0-d ndarray of one of NumPy's dtype ``kinds`` as its NumPy scalar (an optimizer's
    ``state["step"]`` is a 0-d int64 array); anything else unchanged."""
    if type(value) is np.ndarray and value.ndim == 0 and value.dtype.kind in kinds:
        return value[()]
    return value


def real(op, name, value, low=None, high=None, low_open=False):
    """A finite real hyper-parameter as a Python float, optionally within ``[low, high]``; a
    0-d array of integers or floats counts as its number."""
    if (type(value) is float and math.isfinite(value)
            and (low is None or value > low or (value == low and not low_open))
            and (high is None or value <= high)):
        return value                   # the common case, on every update call: keep it cheap
    value = _unwrapped(value, "iuf")
    if not_a_number(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number; got {shown(value)}")
    try:
        value = float(value)
    except OverflowError:                  # an int beyond float range, e.g. 10**400
        raise ValueError(f"{op}: {name} is an integer of {digit_count(value)} digits, too "
                         f"large for a float; expected a finite number") from None
    if not math.isfinite(value):
        raise ValueError(f"{op}: {name}={value!r}; expected a finite number")
    if low is not None and (value < low or (low_open and value == low)):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ValueError(f"{op}: {name}={value!r}; expected {bound}")
    if high is not None and value > high:
        raise ValueError(f"{op}: {name}={value!r}; expected <= {high}")
    return value


def integer(op, name, value, low=None, high=None):
    """An integer argument (not bool, not float) as a Python int, optionally within
    ``[low, high]``; a 0-d array of integers counts as its number."""
    if (type(value) is int and (low is None or value >= low)
            and (high is None or value <= high)):
        return value                   # the common case, cheap (an ABC isinstance is not)
    value = _unwrapped(value, "iu")
    if not_a_number(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an integer; got {shown(value)}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{op}: {named_int(name, value)}; expected an integer >= {low}")
    if high is not None and value > high:
        raise ValueError(f"{op}: {named_int(name, value)}; expected an integer <= {high}")
    return value


def _physical_memory():
    """Bytes of RAM on this machine, or None where the system cannot say (not POSIX)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _available_memory():
    """Bytes the system can still hand out without killing a process (Linux's ``MemAvailable``
    plus free swap), or None where it cannot say (no ``/proc/meminfo``)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return sum(int(fields[key].split()[0]) * 1024 for key in ("MemAvailable", "SwapFree")
                   if key in fields) if "MemAvailable" in fields else None
    except (OSError, ValueError):
        return None


def _memory_short(need, working=1):
    """None when ``need`` bytes fit in memory, else how much there is, as a phrase: the RAM, or
    (from 256 MiB, where reading it is worth its ~20 us) what the system has available now for
    ``working * need`` bytes (1 or 2: the result, and a working copy made while computing it).
    Linux grants an allocation up to about its RAM even when other processes hold most of it,
    and then kills the process that touches the pages: on a 23.5 GiB machine a 22 GiB output
    (``padding=10**9``) was granted and the process killed."""
    physical = _physical_memory()
    if physical is not None and need > physical:
        return f"this machine's {physical / 2**30:.1f} GiB"
    available = _available_memory() if need >= 2**28 else None
    if available is not None and working * need > available:
        extra = "" if working == 1 else f" for it and {working - 1} working copy of its size"
        return f"the {available / 2**30:.1f} GiB of memory available now{extra}"
    return None


def memory_for_draw(owner, shape):
    """Refuse weights whose drawing needs more than this machine's memory (or, from 256 MiB,
    than the memory available now): initializers draw in float64 (8 bytes a value) before the
    cast and the copy, and Linux grants such an allocation and then kills the process when it
    is touched, instead of raising MemoryError."""
    need = 16 * math.prod(shape)                        # the float64 draw and the result
    short = _memory_short(need)
    if short is not None:
        raise MemoryError(f"{owner}: weights of shape {shape} need about {need / 2**30:.1f} GiB to "
                          f"draw, more than {short}")


def memory_for_output(op, shape, dtype, cause):
    """Refuse an output larger than this machine's memory, or than half the memory available
    now (the NumPy baseline sums into a working copy of the output's size), before a kernel
    allocates it (for the reason in :func:`memory_for_draw`), naming the arguments that made it
    so large (``cause()``, a string). Outputs under 256 MiB pass without asking the system (a
    layer's forward calls this every step)."""
    need = math.prod(shape) * np.dtype(dtype).itemsize
    if need < 2**28:
        return
    short = _memory_short(need, working=2)
    if short is not None:
        raise MemoryError(f"{op}: the output would have shape {shape} ({np.dtype(dtype)}), "
                          f"{need / 2**30:.1f} GiB, more than {short}; {cause()}")


def flag(op, name, value):
    """A yes/no argument as a bool: True or False (NumPy's too), or the integers 0 and 1.
    Anything else (``"no"``, None) is an error instead of being taken by its truth value."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral)
                                               and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{op}: {name} must be True or False; got {shown(value)}")


def size(op, name, value, low):
    """A size (features, channels, kernel size, stride, padding, dilation, length): an integer
    in ``[low, MAX_SIZE]``."""
    return integer(op, name, value, low, MAX_SIZE)


def class_target(op, target, logits, name="logits"):
    """Targets for a classification loss on ``logits (N, C)`` (called ``name`` in messages).

    Integer labels ``(N,)`` in ``[0, C)`` come back as int64; a float distribution (e.g. one-hot)
    ``(N, C)`` must have the logits' dtype.
    """
    N, C = logits.shape
    if not isinstance(target, np.ndarray):
        # A list takes the logits' dtype, as everywhere in the functional API: 2-D one-hot rows
        # even when written with ints ([[0, 1]]); 1-D ints stay labels.
        target = np.asarray(target)
        if target.dtype.kind == "f" or (target.ndim == 2 and target.dtype.kind in "iu"):
            target = target.astype(logits.dtype)
    if target.ndim == 1:
        if target.dtype.kind not in "iu":
            raise TypeError(
                f"{op}: integer labels of shape {target.shape} must have an integer dtype; got "
                f"{target.dtype} (use labels.astype(np.int64), or pass one-hot of shape "
                f"({N}, {C}))")
        if target.shape[0] != N:
            raise ValueError(f"{op}: labels have shape {target.shape} but {name} has {N} rows "
                             f"(shape {logits.shape})")
        not_masked(op, "labels", target)
        labels = kernel_ready(target, np.int64)
        if not kernels().labels_in_range(labels, C):      # the backend's own (fast) check
            # From the caller's array: a uint64 label of 2**63 or more wrapped in the cast.
            bad = target[(labels < 0) | (labels >= C)][0]
            raise ValueError(f"{op}: label {bad} out of range for {C} classes; labels must be in "
                             f"[0, {C - 1}]")
        return labels
    if target.ndim == 2:
        # The shape first: a column of integer labels (N, 1) is a shape mistake, which a hint
        # to convert its dtype would not mend.
        if target.shape != logits.shape:
            hint = ("; for a column of labels pass target.ravel()"
                    if target.shape == (N, 1) and C > 1 else "")
            raise ValueError(f"{op}: one-hot target has shape {target.shape} but {name} has "
                             f"shape {logits.shape}; they must match{hint}")
        return float_array(op, "target", target, logits.dtype)
    raise ValueError(f"{op}: target must be integer labels (N,) or one-hot (N, C); got shape "
                     f"{target.shape} for {name} of shape {logits.shape}")


def pool_window(op, kernel_size, stride, padding):
    """Pooling hyper-parameters ``(kernel_size, stride, padding)``; ``stride=None`` stays None
    (it means ``kernel_size``). Padding may be at most half a window, so every window covers
    part of the input."""
    kernel_size = size(op, "kernel_size", kernel_size, low=1)
    stride = None if stride is None else size(op, "stride", stride, low=1)
    padding = size(op, "padding", padding, low=0)
    if 2 * padding > kernel_size:
        raise ValueError(f"{op}: padding={padding} with kernel_size={kernel_size}; padding must "
                         f"be at most kernel_size // 2 = {kernel_size // 2} so that every window "
                         f"covers part of the input")
    return kernel_size, stride, padding
