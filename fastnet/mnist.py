"""MNIST: find it, download it when allowed, parse the IDX files, return float arrays.

Where the files are looked for, in this order (the first that is given wins; later places are not
tried):

1. the ``data_dir`` argument,
2. the ``FASTNET_DATA`` environment variable,
3. fastnet's cache directory, ``$XDG_CACHE_HOME/fastnet/mnist`` when ``XDG_CACHE_HOME`` is set,
   otherwise ``~/.cache/fastnet/mnist`` (Linux), ``~/Library/Caches/fastnet/mnist`` (macOS) or
   ``%LOCALAPPDATA%\\fastnet\\Cache\\mnist`` (Windows).

A folder "holds MNIST" when it, or its ``mnist/`` subfolder, has the four standard files, each
gzipped (``.gz``) or raw; a raw file is preferred when both are there. Only the cache is ever
downloaded into: a folder the user named is never written to, so a mistyped path is an error, not a
silent 12 MB download somewhere else.

What is checked
---------------
Every file is parsed strictly: magic number, dimensions, and a payload of exactly the size the
header announces. A file that holds the full dataset (60000 or 10000 items) must also have MNIST's
published SHA-256 of its decompressed contents, so it makes no difference whether it is gzipped,
raw, or recompressed. Files with fewer items (a subset made for a quick test) are checked
structurally only; files with more items are refused, as no subset of MNIST.
Downloads are checked against the published SHA-256 of the ``.gz`` file before they are kept.

Parsed-array cache
------------------
The first load parses the IDX files (gzip decompression dominates) and stores the uint8 arrays in
``<cache>/parsed/<hash of the data folder>.npz``, keyed by the source files' names, sizes,
modification and status-change times and inodes. Later loads read that file instead. fastnet
writes only under its cache directory; when that is not writable the parsed cache is skipped
silently.
"""
import functools
import gzip
import hashlib
import http.client
import json
import math
import os
import struct
import sys
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import _checks as check
from .backend import get_default_dtype
from ._files import special_kind

__all__ = ["load_mnist", "read_idx", "find_mnist_dir", "mnist_available", "require_mnist",
           "mnist_cache_dir", "MNIST_FILES", "MIRRORS"]


class _IdxFile(NamedTuple):
    name: str           # file name without ".gz"
    ndim: int           # 3 for images (magic 2051), 1 for labels (magic 2049)
    count: int          # number of items in the full dataset
    gz_size: int        # bytes of the published .gz file
    gz_sha256: str      # SHA-256 of the published .gz file
    raw_sha256: str     # SHA-256 of the decompressed file


#: The four files, with the sizes and SHA-256 values of the original distribution
#: (see ``shared/data/README.md``).
MNIST_FILES = {
    "train_images": _IdxFile(
        "train-images-idx3-ubyte", 3, 60000, 9912422,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train_labels": _IdxFile(
        "train-labels-idx1-ubyte", 1, 60000, 28881,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "test_images": _IdxFile(
        "t10k-images-idx3-ubyte", 3, 10000, 1648877,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "test_labels": _IdxFile(
        "t10k-labels-idx1-ubyte", 1, 10000, 4542,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}

#: Public mirrors of the original ``.gz`` files, tried in order.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: Seconds a download may wait for the network (connect, or any single read). A mirror that fails
#: once is not tried again in the same call, so a machine without network gives up after at most
#: ``len(MIRRORS) * DOWNLOAD_TIMEOUT_S`` seconds (usually at once: name resolution fails).
DOWNLOAD_TIMEOUT_S = 3.0

_IDX_UBYTE = 0x08
_MAX_DIMS = 32          # NumPy 1.x arrays have at most 32 dimensions (2.x: 64)
_N_CLASSES = 10
_PIXELS = 28            # an MNIST image's rows and columns
_CHUNK = 1 << 20
_PARSED_CACHE_VERSION = 1
_TRUE = ("1", "true", "yes", "on")


# ----------------------------------------------------------------------------- the IDX format

def read_idx(path):
    """Read one unsigned-byte IDX file (gzipped or raw) into a uint8 array.

    The IDX format is a 4-byte big-endian magic number ``0x0000 08 nd`` (type byte 0x08 = unsigned
    byte, ``nd`` dimensions; MNIST images are 2051 = 0x0803, labels 2049 = 0x0801), then ``nd``
    big-endian uint32 sizes, then the values in C order. A gzipped file is recognised by its
    content (the gzip signature), not by its name.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        The file.

    Returns
    -------
    numpy.ndarray
        The values, dtype uint8, writable and C-contiguous.

    Raises
    ------
    ValueError
        The magic number or type byte is wrong, the header is cut short, the payload is shorter or
        longer than the header announces, or the gzip stream is truncated or corrupt; or the
        path is a FIFO, device or socket, empty or holds a NUL character. The message names the
        file and gives the expected and actual values.
    TypeError
        ``path`` is not a str, bytes or os.PathLike.
    OSError
        The file cannot be opened.

    Shape
    -----
    ``(d1, ..., dnd)`` as given in the header: ``(N, rows, cols)`` for MNIST images, ``(N,)`` for
    labels.
    """
    return _read_idx(path)


def _read_idx(path, check_dims=None):
    """:func:`read_idx`, with ``check_dims(dims)`` called on the header's dimensions before the
    payload is read (the loader's limits: a small gzip file can announce, and hold, gigabytes)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"read_idx: path must be a file name (str, bytes or os.PathLike); got "
                        f"{type(path).__name__}")
    name = os.fsdecode(path)
    if not name or "\0" in name:   # Path("") is the current folder; NUL: "embedded null byte"
        raise ValueError(f"read_idx: path={name!r} names no file; give an IDX file's path")
    path = Path(name)
    kind = special_kind(path)
    if kind:                    # opening a FIFO or a terminal waits for a writer: a hang
        raise ValueError(f"read_idx: {path}: it is {kind}; give a regular IDX file")
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rb") as f:
            head = _read_upto(f, 4)
            if len(head) < 4:
                raise ValueError(f"read_idx: {path}: file is {len(head)} bytes long; an IDX file "
                                 f"starts with a 4-byte magic number")
            zero, dtype_byte, ndim = struct.unpack(">HBB", head)
            magic = int.from_bytes(head, "big")
            if zero != 0 or ndim == 0:
                raise ValueError(f"read_idx: {path}: magic number {magic} (0x{magic:08X}) is "
                                 f"not an IDX magic number; expected 0x000008nn, e.g. 2051 for "
                                 f"images or 2049 for labels")
            if dtype_byte != _IDX_UBYTE:
                raise ValueError(f"read_idx: {path}: IDX type byte 0x{dtype_byte:02X} is not "
                                 f"supported; expected 0x08 (unsigned byte), as in MNIST")
            if ndim > _MAX_DIMS:
                raise ValueError(f"read_idx: {path}: the header announces {ndim} dimensions; "
                                 f"at most {_MAX_DIMS} are supported (MNIST files have 1 or 3)")
            dims_bytes = _read_upto(f, 4 * ndim)
            if len(dims_bytes) < 4 * ndim:
                raise ValueError(f"read_idx: {path}: header is cut short: {ndim} dimensions "
                                 f"need {4 * ndim} bytes after the magic number, found "
                                 f"{len(dims_bytes)}")
            dims = struct.unpack(f">{ndim}I", dims_bytes)
            if check_dims is not None:
                check_dims(dims)
            expected = math.prod(dims)
            payload = _read_upto(f, expected)
            extra = _count_rest(f)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"read_idx: {path}: truncated or corrupt gzip stream ({exc})") from exc
    actual = len(payload) + extra
    if actual != expected:
        what = "truncated" if actual < expected else "longer than its header says"
        raise ValueError(f"read_idx: {path}: payload is {actual} bytes, expected {expected} "
                         f"(= {' x '.join(map(str, dims))} from the header, whose magic number "
                         f"{0x800 | ndim} announces {ndim} dimensions); the file is {what}, or "
                         f"its magic number is wrong")
    try:
        return np.frombuffer(payload, dtype=np.uint8).reshape(dims)
    except ValueError as exc:           # 0 x 4294967295 x 4294967295: no data, no such array
        raise ValueError(f"read_idx: {path}: the header's dimensions "
                         f"{' x '.join(map(str, dims))} describe no array NumPy can make "
                         f"({exc})") from None


def _read_upto(f, n):
    """Read up to ``n`` bytes into a bytearray, stopping early only at end of file."""
    # Chunked, so that a garbage header announcing terabytes fails on the size check
    # instead of on a giant allocation.
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(_CHUNK * 16, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _count_rest(f):
    n = 0
    while chunk := f.read(_CHUNK):
        n += len(chunk)
    return n


def _idx_header(array):
    return struct.pack(f">BBBB{array.ndim}I", 0, 0, _IDX_UBYTE, array.ndim, *array.shape)


def _check_header(dims, path, spec):
    """Check one file's header against what the loader expects of it, before its payload is
    read: the number of dimensions, at most MNIST's count, and at most as many bytes as MNIST's
    own file (smaller toy images are accepted, as a subset's; an empty split too, which the
    command line names)."""
    if len(dims) != spec.ndim:
        magic = 0x800 | len(dims)
        want = 0x800 | spec.ndim
        raise ValueError(f"load_mnist: {path}: magic number {magic} ({len(dims)}-D), expected "
                         f"{want} ({'images, 3-D' if spec.ndim == 3 else 'labels, 1-D'})")
    shown = " x ".join(map(str, dims))
    if dims[0] > spec.count:
        raise ValueError(f"load_mnist: {path}: the header announces {dims[0]} items, more than "
                         f"MNIST's {spec.count}: not MNIST (or a subset of it); read such files "
                         f"with fastnet.mnist.read_idx")
    if math.prod(dims) > spec.count * _PIXELS ** (spec.ndim - 1):
        raise ValueError(f"load_mnist: {path}: the header announces {shown} bytes, more than "
                         f"MNIST's {spec.count} images of 28 x 28: not MNIST (or a subset of "
                         f"it); read such files with fastnet.mnist.read_idx")


def _check_source(array, path, spec):
    """Check one parsed file against what the loader expects of it."""
    if array.shape[0] == spec.count:
        # Claims to be the full dataset, so it must be the original, byte for byte.
        h = hashlib.sha256(_idx_header(array))
        h.update(array)
        if h.hexdigest() != spec.raw_sha256:
            raise ValueError(f"load_mnist: {path}: SHA-256 of the decompressed contents is "
                             f"{h.hexdigest()}, expected {spec.raw_sha256} (original MNIST). The "
                             f"file is corrupt or is a different dataset in the same format (e.g. "
                             f"Fashion-MNIST); read such files with fastnet.mnist.read_idx")


def _check_arrays(arrays, where):
    """Check that the four arrays fit together: counts, image sizes, label range."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if (images.ndim != 3 or labels.ndim != 1 or images.dtype != np.uint8
                or labels.dtype != np.uint8):
            raise ValueError(f"load_mnist: {where}: {split} arrays have shapes {images.shape}, "
                             f"{labels.shape} and dtypes {images.dtype}, {labels.dtype}; expected "
                             f"(N, rows, cols) and (N,), uint8")
        images_file = MNIST_FILES[f"{split}_images"].name
        labels_file = MNIST_FILES[f"{split}_labels"].name
        count = MNIST_FILES[f"{split}_images"].count
        if images.shape[0] > count:      # here, not in _check_source: cached arrays pass too
            raise ValueError(f"load_mnist: {where}: {images.shape[0]} {split} images "
                             f"({images_file}), more than MNIST's {count}: not MNIST (or a "
                             f"subset of it); read such files with fastnet.mnist.read_idx")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"load_mnist: {where}: {images.shape[0]} {split} images "
                             f"({images_file}) but {labels.shape[0]} {split} labels "
                             f"({labels_file}); the counts must agree")
        if labels.size and labels.max() >= _N_CLASSES:
            bad = int(np.argmax(labels >= _N_CLASSES))
            raise ValueError(f"load_mnist: {where}: {split} label {bad} is {labels[bad]} "
                             f"({labels_file}); expected digits 0..{_N_CLASSES - 1}")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise ValueError(f"load_mnist: {where}: train images are "
                         f"{arrays['train_images'].shape[1:]} pixels but test images are "
                         f"{arrays['test_images'].shape[1:]}; they must agree")


# ----------------------------------------------------------------------------- where the files are

def mnist_cache_dir():
    """fastnet's own MNIST folder, the one it downloads into (it may not exist yet).

    ``$XDG_CACHE_HOME/fastnet/mnist`` when ``XDG_CACHE_HOME`` is set to an absolute path, otherwise
    ``%LOCALAPPDATA%\\fastnet\\Cache\\mnist`` on Windows, ``~/Library/Caches/fastnet/mnist`` on
    macOS and ``~/.cache/fastnet/mnist`` elsewhere.

    Returns
    -------
    pathlib.Path
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "fastnet" / "mnist"
    if sys.platform.startswith("win"):
        local = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(local) / "fastnet" / "Cache" / "mnist"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "fastnet" / "mnist"
    return Path.home() / ".cache" / "fastnet" / "mnist"


def _source_files(folder):
    """The four files in ``folder``, raw preferred over ``.gz``; ``None`` for each missing one."""
    found = {}
    for key, spec in MNIST_FILES.items():
        found[key] = None
        for name in (spec.name, spec.name + ".gz"):
            if (folder / name).is_file():
                found[key] = folder / name
                break
    return found


def _holds_mnist(folder):
    return all(p is not None for p in _source_files(folder).values())


def _candidates(data_dir):
    """``(label, folders, explicit)``: where to look, and whether the user named the place."""
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(f"data_dir must be a folder's path (str or os.PathLike); got "
                            f"{type(data_dir).__name__}")
        if not os.fspath(data_dir):       # Path("") would be the current folder
            raise ValueError("load_mnist: data_dir is empty; give the folder holding the MNIST "
                             "files, or None for FASTNET_DATA or the cache")
        label = f"data_dir / --data ({str(data_dir)!r})"
        d = _expanded(label, data_dir)
        return label, [d, d / "mnist"], True
    env = os.environ.get("FASTNET_DATA", "")
    if env:
        label = f"FASTNET_DATA ({env!r})"
        d = _expanded(label, env)
        return label, [d, d / "mnist"], True
    return ("the cache directory (no data_dir given, FASTNET_DATA not set)", [mnist_cache_dir()],
            False)


def _expanded(label, path):
    """``path`` with ``~`` expanded; a ``~user`` that does not exist is named with ``label``."""
    try:
        return Path(path).expanduser()
    except RuntimeError as err:               # "Could not determine home directory."
        raise FileNotFoundError(f"{label}: cannot expand the home folder in this path "
                                f"({err})") from None


def find_mnist_dir(data_dir=None):
    """The folder that holds the four MNIST files, or ``None``; never downloads.

    Looks where :func:`load_mnist` looks: ``data_dir`` if given, else ``FASTNET_DATA`` if set, else
    the cache directory (each folder and its ``mnist/`` subfolder).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional

    Returns
    -------
    pathlib.Path or None
    """
    _, folders, _ = _candidates(data_dir)
    for folder in folders:
        if _holds_mnist(folder):
            return folder
    return None


def mnist_available(data_dir=None):
    """``True`` when :func:`find_mnist_dir` finds the files (nothing is downloaded or parsed)."""
    return find_mnist_dir(data_dir) is not None


def _not_found_report(label, folders):
    lines = [f"Looked in {label}:"]
    for folder in folders:
        missing = [_missing(folder, MNIST_FILES[k].name) for k, p in _source_files(folder).items()
                   if p is None]
        state = ("is a file, not a folder" if folder.is_file() else "does not exist"
                 if not folder.is_dir() else "missing " + ", ".join(missing))
        lines.append(f"  {folder}: {state}")
    return "\n".join(lines)


def _missing(folder, name):
    """How a file that is not there is named: ``name[.gz]``, or what stands in its place (a
    folder, a FIFO): "missing" alone sent the user looking for a file they could see."""
    for candidate in (name, name + ".gz"):
        path = folder / candidate
        kind = ("a folder" if path.is_dir() else special_kind(path)
                or ("a broken link" if path.is_symlink() and not path.exists() else None))
        if kind:
            return f"{name}[.gz] ({candidate} is {kind}, not a regular file)"
    return name + "[.gz]"


def _how_to_provide():
    names = ", ".join(spec.name + ".gz" for spec in MNIST_FILES.values())
    return (f"To use a local copy, pass load_mnist(data_dir='path/to/mnist') (on the command "
            f"line: --data path/to/mnist) or set FASTNET_DATA=path/to/mnist; the folder must "
            f"hold {names} (gzipped or raw). "
            f"Without either, fastnet downloads into {mnist_cache_dir()}.")


def require_mnist(data_dir=None):
    """For tests that need the real files: the MNIST folder, or skip, or fail.

    Returns the folder when :func:`find_mnist_dir` finds it. Otherwise the calling test is skipped,
    unless ``FASTNET_REQUIRE_DATA=1`` is set (as CI does), in which case it fails with the places
    looked at. Never downloads.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional

    Returns
    -------
    pathlib.Path
    """
    import pytest

    folder = find_mnist_dir(data_dir)
    if folder is not None:
        return folder
    label, folders, _ = _candidates(data_dir)
    message = ("MNIST files not found. " + _not_found_report(label, folders) + "\n"
               + _how_to_provide())
    if os.environ.get("FASTNET_REQUIRE_DATA", "").strip().lower() in _TRUE:
        pytest.fail("FASTNET_REQUIRE_DATA is set and " + message, pytrace=False)
    pytest.skip(message)


# ----------------------------------------------------------------------------- download

def _download(spec, folder, mirrors, dead, failures):
    """Fetch ``spec.name + '.gz'`` into ``folder`` from the first mirror that serves it intact.

    The file is written to a temporary name in ``folder`` and renamed into place only after its
    size and SHA-256 check out, so an interrupted or bad download leaves nothing behind. Mirrors
    that fail are added to ``dead`` and not tried again; each failure is appended to
    ``failures``.
    """
    name = spec.name + ".gz"
    for mirror in mirrors:
        if mirror in dead:
            continue
        url = mirror + name
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        except OSError as exc:      # a read-only cache folder: no mirror can help
            raise FileNotFoundError(
                f"MNIST not found and the cache directory {folder} cannot be written to "
                f"({exc.strerror}).\n" + _how_to_provide()) from exc
        print(f"fastnet: downloading {url} ({spec.gz_size / 1e6:.1f} MB) into {folder}",
              file=sys.stderr)
        try:
            h = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out, \
                    urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                while chunk := response.read(_CHUNK):
                    size += len(chunk)
                    if size > spec.gz_size:
                        raise ValueError(f"more than the expected {spec.gz_size} bytes")
                    h.update(chunk)
                    out.write(chunk)
            if size != spec.gz_size:
                raise ValueError(f"got {size} bytes, expected {spec.gz_size}")
            if h.hexdigest() != spec.gz_sha256:
                raise ValueError(f"SHA-256 mismatch: got {h.hexdigest()}, expected "
                                 f"{spec.gz_sha256}")
            os.replace(tmp, folder / name)
            return folder / name
        except (OSError, ValueError, http.client.HTTPException) as exc:
            # URLError, HTTPError and timeouts are OSErrors; IncompleteRead is an HTTPException
            dead.add(mirror)
            failures.append(f"  {url}: {type(exc).__name__}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return None


def _download_missing(folder):
    """Download whatever the cache folder lacks; raise FileNotFoundError listing what was tried."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileNotFoundError(
            f"MNIST not found and the cache directory {folder} cannot be created ({exc}).\n"
            + _how_to_provide()) from exc
    dead, failures = set(), []
    for key, path in _source_files(folder).items():
        if path is None and _download(MNIST_FILES[key], folder, MIRRORS, dead, failures) is None:
            raise FileNotFoundError(
                "MNIST not found and could not be downloaded.\n"
                + _not_found_report(_candidates(None)[0], [folder]) + "\n"
                f"Tried to download {MNIST_FILES[key].name}.gz from:\n" + "\n".join(failures) + "\n"
                + _how_to_provide())


# ----------------------------------------------------------------------------- parsed-array cache

def _parsed_cache_path(folder):
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return mnist_cache_dir() / "parsed" / f"{digest}.npz"


def _cache_key(sources):
    entries = []
    for key, path in sorted(sources.items()):
        st = path.stat()
        # ctime and inode too: a copy that keeps size and mtime (cp -p, rsync -t, tar) still
        # gets a new ctime (no tool can set it) or inode, so it is parsed again.
        entries.append([key, path.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    return json.dumps([_PARSED_CACHE_VERSION, entries])


def _read_parsed_cache(cache_path, key):
    """The cached arrays if the cache file exists and matches ``key``, else ``None``."""
    try:
        with np.load(cache_path, allow_pickle=False) as npz:
            if str(npz["key"]) != key:
                return None
            arrays = {k: npz[k] for k in MNIST_FILES}
        _check_arrays(arrays, cache_path)
        return arrays
    except Exception:  # missing, stale or damaged: parse the sources again
        return None


def _write_parsed_cache(cache_path, key, arrays):
    tmp = None
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{cache_path.name}.", suffix=".part",
                                   dir=cache_path.parent)
        with os.fdopen(fd, "wb") as out:
            np.savez(out, key=np.array(key), **arrays)
        os.replace(tmp, cache_path)
    except OSError:
        pass  # a read-only cache only costs speed
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _load_uint8(folder):
    """The four uint8 arrays from ``folder``, through the parsed-array cache."""
    sources = _source_files(folder)
    cache_path = _parsed_cache_path(folder)
    key = _cache_key(sources)
    arrays = _read_parsed_cache(cache_path, key)
    if arrays is None:
        arrays = {}
        for k, path in sources.items():
            arrays[k] = _read_idx(path, functools.partial(_check_header, path=path,
                                                          spec=MNIST_FILES[k]))
            _check_source(arrays[k], path, MNIST_FILES[k])
        _check_arrays(arrays, folder)
        _write_parsed_cache(cache_path, key, arrays)
    return arrays


# ----------------------------------------------------------------------------- the loader

def load_mnist(data_dir=None, normalize=True, flatten=True, one_hot=False, dtype=None):
    """Load MNIST as ``(X_train, y_train), (X_test, y_test)``.

    The files are looked for in ``data_dir``, else in the folder named by ``FASTNET_DATA``, else in
    fastnet's cache directory (see :func:`mnist_cache_dir`); a folder's ``mnist/`` subfolder is also
    accepted. Only the cache is downloaded into, from :data:`MIRRORS`, each ``.gz`` checked against
    its published SHA-256 before it is kept. See the module docstring for what is verified and for
    the parsed-array cache that makes reloads fast.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each gzipped (``.gz``) or raw.
    normalize : bool, default True
        Scale pixels to [0, 1] (divide by 255); otherwise keep the values 0..255 (as floats).
    flatten : bool, default True
        Images as rows of 784 pixels; otherwise as 28 x 28 images. The unflattened layout is
        ``(N, 28, 28)``, not ``(N, 1, 28, 28)``: fastnet's ``Conv1d`` reads it as 28 channels (the
        image rows) of length 28.
    one_hot : bool, default False
        Labels as one-hot rows (in ``dtype``); otherwise as integer class indices.
    dtype : numpy dtype, optional
        Floating dtype of the images (and one-hot labels). Default: fastnet's default dtype
        (``fastnet.backend.get_default_dtype()``, float32 unless changed).

    Returns
    -------
    (X_train, y_train), (X_test, y_test) : tuple of tuples of numpy.ndarray

    Raises
    ------
    FileNotFoundError
        The named folder (argument or ``FASTNET_DATA``) lacks the files, or nothing is cached and
        no mirror delivered an intact file. The message lists every place looked at and every URL
        tried.
    ValueError
        A file is corrupt or inconsistent: wrong magic number, truncated or oversized payload, a
        full-size file whose SHA-256 is not MNIST's, image and label counts that disagree, labels
        outside 0..9; or ``dtype`` is not a floating dtype.

    Shape
    -----
    For the original files (a subset folder of fewer items, or smaller toy images, loads too:
    ``N`` rows of ``rows * cols`` pixels):

    - ``X_train``: ``(60000, 784)`` if ``flatten`` else ``(60000, 28, 28)``
    - ``y_train``: ``(60000,)`` int64, or ``(60000, 10)`` if ``one_hot``
    - ``X_test``: ``(10000, 784)`` if ``flatten`` else ``(10000, 28, 28)``
    - ``y_test``: ``(10000,)`` int64, or ``(10000, 10)`` if ``one_hot``

    Examples
    --------
    >>> (X_train, y_train), (X_test, y_test) = load_mnist()        # doctest: +SKIP
    >>> X_train.shape, X_train.dtype, y_train[:10]                  # doctest: +SKIP
    ((60000, 784), dtype('float32'), array([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]))
    """
    op = "load_mnist"
    given = dtype
    try:
        dtype = np.dtype(get_default_dtype() if dtype is None else dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.type not in (np.float32, np.float64):
        raise ValueError(f"{op}: dtype={given!r} is not a float dtype fastnet computes in; "
                         f"expected float32 or float64")
    dtype = np.dtype(dtype.type)                      # native byte order (">f4" given)
    normalize, flatten, one_hot = (check.flag(op, name, value) for name, value in
                                   (("normalize", normalize), ("flatten", flatten),
                                    ("one_hot", one_hot)))

    label, folders, explicit = _candidates(data_dir)
    folder = next((f for f in folders if _holds_mnist(f)), None)
    if folder is None:
        if explicit:
            raise FileNotFoundError("MNIST files not found. " + _not_found_report(label, folders)
                                    + "\nfastnet downloads only into its cache directory, never "
                                    "into a folder you name.\n" + _how_to_provide())
        folder = folders[0]
        _download_missing(folder)

    arrays = _load_uint8(folder)
    out = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        X = images.astype(dtype)
        if normalize:
            X /= 255
        X = X.reshape(len(X), math.prod(X.shape[1:])) if flatten else X
        y = labels.astype(np.int64)
        if one_hot:
            y = np.eye(_N_CLASSES, dtype=dtype)[y]
        out.append((X, y))
    return tuple(out)
