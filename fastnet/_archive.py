"""A model file's arrays, read one at a time, each only once its header has been checked.

Why: an ``.npz`` archive is a zip file, and a small one can unpack to gigabytes. ``load`` read
every entry before looking at any (an audit: a 2 MB file with one extra entry took 2.1 GB of
memory and 8 s, then was refused for that entry). Here the entry names are checked against the
model first (from the zip's directory, reading nothing), then each entry's ``.npy`` header
(shape and dtype, a few hundred bytes) against the array the model has for it, and only then is
its data read, exactly as many bytes as that shape and dtype hold.

:class:`Entries` reads a file's entries; :class:`InMemory` gives arrays already in memory the
same interface (``save`` rebuilds the model it writes from them, to check it).
"""
import io

import numpy as np

#: The largest spec (the JSON architecture and history) a file may hold: a spec is a few kB;
#: a history of 10 000 epochs of four metrics, ~3 MB (4 bytes a character).
SPEC_BYTES = 16 * 2**20


class Unreadable(ValueError):
    """An entry that cannot be read: truncated, corrupt, or not a plain ``.npy`` array."""


class Entries:
    """The arrays of an open ``np.load`` archive (an ``NpzFile``), by name.

    ``names``: the entry names (without ``.npy``); ``header(name)``: ``(shape, dtype)``;
    ``read(name)``: the array (after a check of its header against what the caller wants).
    """

    def __init__(self, archive):
        self._zip = archive.zip
        self._members = {}
        for member in self._zip.namelist():
            name = member[:-4] if member.endswith(".npy") else member
            if name in self._members:         # else the last of them was read, silently
                raise Unreadable(f"two entries are named {name!r}")
            self._members[name] = member
        self.names = list(self._members)

    def header(self, name):
        """``(shape, dtype)`` of entry ``name``, from its ``.npy`` header alone."""
        with self._open(name) as f:
            return _header(f, name)

    def read(self, name, shape, dtype):
        """Entry ``name``, after its header says ``shape`` and ``dtype`` (else ``Unreadable``;
        the caller checks the header first, with messages of its own)."""
        with self._open(name) as f:
            if _header(f, name) != (tuple(shape), np.dtype(dtype)):
                raise Unreadable(f"entry {name!r} changed while it was read")
        with self._open(name) as f:
            try:
                return np.lib.format.read_array(f, allow_pickle=False)
            except ValueError as err:       # the data ends before the shape says it should
                raise Unreadable(f"entry {name!r} is truncated: {err}") from err
            except Exception as err:        # zlib.error, zipfile.BadZipFile (a CRC), EOFError
                raise Unreadable(f"entry {name!r} is unreadable or truncated: "
                                 f"{type(err).__name__}: {err}") from err

    def _open(self, name):
        try:
            return self._zip.open(self._members[name])
        except Exception as err:            # zipfile.BadZipFile, NotImplementedError, ...
            raise Unreadable(f"entry {name!r} is unreadable: {type(err).__name__}: {err}") \
                from err


class InMemory:
    """Arrays already in memory behind the interface of :class:`Entries`."""

    def __init__(self, arrays):
        self._arrays = {name: np.asarray(a) for name, a in arrays.items()}
        self.names = list(self._arrays)

    def header(self, name):
        a = self._arrays[name]
        return a.shape, a.dtype

    def read(self, name, shape, dtype):
        return self._arrays[name]


#: The longest ``.npy`` header read (NumPy's own limit): ours are ~100 bytes. NumPy reads
#: a header of whatever length it declares before it checks that limit, so the length is read
#: and checked here first (an audit: a header declaring 1 GiB took 2.2 GB before the refusal).
HEADER_BYTES = 10_000


def _header(f, name):
    """``(shape, dtype)`` from the ``.npy`` header at the start of ``f``."""
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise Unreadable(f"entry {name!r} is an .npy array of format version {version}; "
                             f"model files hold versions 1.0 and 2.0")
        size_bytes = f.read(2 if version == (1, 0) else 4)
        length = int.from_bytes(size_bytes, "little")
        if len(size_bytes) < (2 if version == (1, 0) else 4) or length > HEADER_BYTES:
            raise Unreadable(f"entry {name!r} declares an .npy header of {length} bytes; "
                             f"headers are at most {HEADER_BYTES}")
        header = io.BytesIO(size_bytes + f.read(length))
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(header)
    except Unreadable:
        raise
    except Exception as err:                # a bad magic string or header, zlib.error, ...
        raise Unreadable(f"entry {name!r} is not a readable .npy array: "
                         f"{type(err).__name__}: {err}") from err
    if np.dtype(dtype).hasobject:
        raise Unreadable(f"entry {name!r} holds pickled Python objects, which fastnet never "
                         f"loads")
    return tuple(shape), np.dtype(dtype)
