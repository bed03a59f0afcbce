"""The MNIST loader: IDX parsing, directory resolution, download, verification, parsed-array cache.

Every unit test writes its own tiny IDX files; the network is replaced by a fake ``urlopen`` (an
autouse fixture makes any real network access fail the test). Only ``test_real_mnist`` reads the
real files, from ``FASTNET_DATA``.
"""
import gzip
import hashlib
import io
import os
import struct
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import fastnet
from fastnet import mnist

NAMES = {key: spec.name for key, spec in mnist.MNIST_FILES.items()}


# ----------------------------------------------------------------------------- helpers

def idx_bytes(array):
    """The IDX encoding of a uint8 array (written independently of the parser under test)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def make_arrays(n_train=5, n_test=3, rows=28, cols=28, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_dataset(folder, arrays, gz=True):
    """Write the four files into ``folder``; returns ``{key: path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, array in arrays.items():
        data = idx_bytes(array)
        name = NAMES[key] + (".gz" if gz else "")
        (folder / name).write_bytes(gzip.compress(data, mtime=0) if gz else data)
        paths[key] = folder / name
    return paths


def describe_as_mnist(monkeypatch, arrays):
    """Make the loader's table of known files describe ``arrays`` (sizes, counts, SHA-256)."""
    table = {}
    for key, spec in mnist.MNIST_FILES.items():
        raw = idx_bytes(arrays[key])
        gz = gzip.compress(raw, mtime=0)
        table[key] = spec._replace(count=len(arrays[key]), gz_size=len(gz),
                                   gz_sha256=hashlib.sha256(gz).hexdigest(),
                                   raw_sha256=hashlib.sha256(raw).hexdigest())
    monkeypatch.setattr(mnist, "MNIST_FILES", table)
    return {spec.name + ".gz": gzip.compress(idx_bytes(arrays[key]), mtime=0)
            for key, spec in table.items()}


class FakeWeb:
    """Stands in for ``urllib.request.urlopen``: serves bytes per URL and records the calls."""

    def __init__(self, files, failing=()):
        self.files = files            # {url: bytes}
        self.failing = failing        # mirror prefixes that are unreachable
        self.calls = []

    def __call__(self, url, timeout=None):
        self.calls.append((url, timeout))
        if any(url.startswith(m) for m in self.failing):
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        if url not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return io.BytesIO(self.files[url])


def serve(mirror, gz_files):
    return {mirror + name: data for name, data in gz_files.items()}


def cache_dir():
    return mnist.mnist_cache_dir()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(autouse=True)
def isolated(request, monkeypatch, tmp_path):
    """A private cache directory, no FASTNET_DATA, and no network, unless the test reads real data."""
    if request.node.get_closest_marker("mnist"):
        return
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("FASTNET_DATA", raising=False)
    monkeypatch.delenv("FASTNET_REQUIRE_DATA", raising=False)

    def no_network(url, *args, **kwargs):
        raise AssertionError(f"unit test tried to open {url}")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


# ----------------------------------------------------------------------------- read_idx

@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_idx_images_and_labels(tmp_path, gz):
    arrays = make_arrays(rows=3, cols=4)
    paths = write_dataset(tmp_path, arrays, gz=gz)
    for key, path in paths.items():
        got = mnist.read_idx(path)
        assert got.dtype == np.uint8
        assert got.flags.c_contiguous and got.flags.writeable
        np.testing.assert_array_equal(got, arrays[key])


def test_read_idx_recognises_gzip_by_content_not_name(tmp_path):
    images = make_arrays()["train_images"]
    (tmp_path / "images").write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "images"), images)


@pytest.mark.parametrize("content, match", [
    (b"\x12\x34\x56\x78" + bytes(100), r"magic number 305419896 \(0x12345678\) is not an IDX magic"),
    (b"\x00\x00\x08\x00" + bytes(100), "is not an IDX magic number"),
    (b"\x00\x00\x0d\x01" + bytes(100), r"type byte 0x0D is not supported; expected 0x08"),
    (b"\x00\x00", "file is 2 bytes long"),
    (b"", "file is 0 bytes long"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00", "header is cut short: 3 dimensions need 12 bytes"),
    (b"\x00\x00\x08\x46" + bytes(280), "announces 70 dimensions; at most 32"),   # NumPy's limit
])
def test_read_idx_bad_header(tmp_path, content, match):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("delta, word", [(-7, "truncated"), (5, "longer than its header says")])
def test_read_idx_payload_size_must_match_header(tmp_path, gz, delta, word):
    images = make_arrays(n_train=5, rows=3, cols=3)["train_images"]   # 45 payload bytes
    data = idx_bytes(images)
    data = data[:delta] if delta < 0 else data + bytes(delta)
    path = tmp_path / ("images.gz" if gz else "images")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError) as info:
        mnist.read_idx(path)
    message = str(info.value)
    assert str(path) in message and word in message
    assert f"payload is {45 + delta} bytes, expected 45 (= 5 x 3 x 3 from the header, whose " \
        f"magic number 2051 announces 3 dimensions)" in message


def test_read_idx_truncated_gzip_stream(tmp_path):
    path = tmp_path / "images.gz"
    compressed = gzip.compress(idx_bytes(make_arrays()["train_images"]))
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt gzip stream") as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_corrupt_gzip_crc(tmp_path):
    path = tmp_path / "labels.gz"
    compressed = bytearray(gzip.compress(idx_bytes(np.arange(10, dtype=np.uint8))))
    compressed[-8] ^= 0xFF                       # the CRC-32 in the gzip trailer
    path.write_bytes(bytes(compressed))
    with pytest.raises(ValueError, match="truncated or corrupt gzip stream"):
        mnist.read_idx(path)


def test_read_idx_huge_header_fails_on_size_not_memory(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1) + bytes(10))
    with pytest.raises(ValueError, match="payload is 10 bytes"):
        mnist.read_idx(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_read_idx_refuses_a_fifo_instead_of_waiting_for_a_writer(tmp_path):
    """Opening a FIFO blocks until something writes to it: read_idx hung for good."""
    fifo = tmp_path / "train-images-idx3-ubyte"
    os.mkfifo(fifo)
    errors = []

    def read():
        try:
            mnist.read_idx(fifo)
        except ValueError as err:
            errors.append(str(err))
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():           # a regression: end each open with an empty writer
        while reader.is_alive():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:         # no reader waiting at this instant
                pass
            reader.join(0.01)
        pytest.fail("read_idx waited for a writer to the FIFO")
    assert len(errors) == 1 and "train-images-idx3-ubyte: it is a FIFO" in errors[0]


def test_a_file_that_is_a_fifo_or_a_folder_is_named_as_such(tmp_path):
    """A FIFO or a folder where a file belongs was reported as "missing" (an audit's finding):
    the user could see it there."""
    folder = tmp_path / "data"
    write_dataset(folder, {k: v for k, v in make_arrays().items()
                           if k not in ("train_labels", "test_labels")})
    os.mkfifo(folder / (NAMES["train_labels"] + ".gz"))
    (folder / NAMES["test_labels"]).mkdir()
    with pytest.raises(FileNotFoundError) as info:
        mnist.load_mnist(data_dir=folder)
    assert (f"{folder}: missing train-labels-idx1-ubyte[.gz] (train-labels-idx1-ubyte.gz is a "
            f"FIFO, not a regular file), t10k-labels-idx1-ubyte[.gz] (t10k-labels-idx1-ubyte is "
            f"a folder, not a regular file)") in str(info.value)


@pytest.mark.parametrize("path, error, words", [
    (3, TypeError, "read_idx: path must be a file name .* got int"),
    ("", ValueError, "read_idx: path='' names no file"),
    ("a\0b", ValueError, r"read_idx: path='a\\x00b' names no file"),
    (b"a\0b", ValueError, r"read_idx: path='a\\x00b' names no file"),
])
def test_read_idx_names_a_path_that_is_no_file_name(path, error, words):
    """They raised Python's own errors ("Is a directory: '.'", "embedded null byte"), which
    named neither read_idx nor its argument."""
    with pytest.raises(error, match=words):
        mnist.read_idx(path)


def test_read_idx_zero_beside_huge_dimensions_names_the_header(tmp_path):
    """No bytes expected, none found, then NumPy's bare "array is too big"."""
    path = tmp_path / "images"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 0, 2**32 - 1, 2**32 - 1))
    with pytest.raises(ValueError, match=r"images: the header's dimensions 0 x 4294967295 x "
                                         r"4294967295 describe no array"):
        mnist.read_idx(path)


# ----------------------------------------------------------------------------- load_mnist outputs

@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("normalize", [True, False])
def test_load_mnist_values_and_dtypes(tmp_path, gz, dtype, normalize):
    arrays = make_arrays()
    write_dataset(tmp_path / "d", arrays, gz=gz)
    (X, y), (Xt, yt) = mnist.load_mnist(tmp_path / "d", normalize=normalize, dtype=dtype)
    scale = 255 if normalize else 1
    for X_, y_, split in ((X, y, "train"), (Xt, yt, "test")):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        assert X_.dtype == dtype and X_.shape == (len(images), 784)
        assert y_.dtype == np.int64 and y_.shape == (len(images),)
        np.testing.assert_array_equal(X_, (images.reshape(len(images), -1) / scale).astype(dtype))
        np.testing.assert_array_equal(y_, labels)
    if normalize:
        assert 0.0 <= X.min() and X.max() <= 1.0
    else:
        assert X.max() > 1.0 and np.all(X == np.round(X))


def test_load_mnist_unflattened_is_n_28_28(tmp_path):
    arrays = make_arrays()
    write_dataset(tmp_path, arrays)
    (X, _), (Xt, _) = mnist.load_mnist(tmp_path, flatten=False)
    assert X.shape == (5, 28, 28) and Xt.shape == (3, 28, 28)
    np.testing.assert_array_equal(X * 255, arrays["train_images"].astype(np.float32))


def test_load_mnist_toy_image_size(tmp_path):
    arrays = make_arrays(rows=3, cols=3)
    write_dataset(tmp_path, arrays, gz=False)
    (X, _), (Xt, _) = mnist.load_mnist(tmp_path)
    assert X.shape == (5, 9) and Xt.shape == (3, 9)
    (X, _), _ = mnist.load_mnist(tmp_path, flatten=False)
    assert X.shape == (5, 3, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_load_mnist_one_hot(tmp_path, dtype):
    arrays = make_arrays()
    write_dataset(tmp_path, arrays)
    (_, y), (_, yt) = mnist.load_mnist(tmp_path, one_hot=True, dtype=dtype)
    assert y.shape == (5, 10) and yt.shape == (3, 10) and y.dtype == dtype
    np.testing.assert_array_equal(y.sum(axis=1), 1)
    np.testing.assert_array_equal(y.argmax(axis=1), arrays["train_labels"])
    np.testing.assert_array_equal(yt.argmax(axis=1), arrays["test_labels"])


def test_load_mnist_default_dtype_follows_fastnet(tmp_path):
    write_dataset(tmp_path, make_arrays())
    assert mnist.load_mnist(tmp_path)[0][0].dtype == np.dtype(fastnet.get_default_dtype())
    with fastnet.set_default_dtype(np.float64):
        (X, _), (_, yt) = mnist.load_mnist(tmp_path, one_hot=True)
    assert X.dtype == np.float64 and yt.dtype == np.float64


def test_load_mnist_gives_native_byte_order_for_a_big_endian_dtype(tmp_path):
    """``dtype=">f4"`` gave big-endian arrays, which every kernel then refused."""
    write_dataset(tmp_path, make_arrays())
    (X, _), (_, yt) = mnist.load_mnist(tmp_path, one_hot=True, dtype=">f4")
    assert X.dtype == np.float32 and X.dtype.isnative and yt.dtype.isnative


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, "bool", np.float16, "no such dtype"])
def test_load_mnist_rejects_dtypes_fastnet_does_not_compute_in(tmp_path, dtype):
    write_dataset(tmp_path, make_arrays())
    with pytest.raises(ValueError, match="dtype=.*expected float32 or float64"):
        mnist.load_mnist(tmp_path, dtype=dtype)


@pytest.mark.parametrize("name", ["normalize", "flatten", "one_hot"])
@pytest.mark.parametrize("value", ["no", None, 2])
def test_load_mnist_flags_must_be_booleans(tmp_path, name, value):
    """``normalize="no"`` was taken by its truth value (True)."""
    write_dataset(tmp_path, make_arrays())
    with pytest.raises(TypeError, match=f"load_mnist: {name} must be True or False"):
        mnist.load_mnist(tmp_path, **{name: value})


def test_load_mnist_names_a_data_dir_that_is_not_a_path(tmp_path, monkeypatch):
    with pytest.raises(TypeError, match="data_dir must be a folder's path.*int"):
        mnist.load_mnist(123)
    monkeypatch.setenv("FASTNET_DATA", "~no-such-user-fastnet/x")     # Path.expanduser raises
    with pytest.raises(FileNotFoundError, match="FASTNET_DATA.*no-such-user-fastnet"):
        mnist.load_mnist()


# ----------------------------------------------------------------------------- inconsistent files

def test_images_where_labels_belong_is_a_magic_number_error(tmp_path):
    arrays = make_arrays()
    paths = write_dataset(tmp_path, arrays)
    paths["train_images"].write_bytes(gzip.compress(idx_bytes(arrays["train_labels"])))
    with pytest.raises(ValueError, match="magic number 2049 .* expected 2051") as info:
        mnist.load_mnist(tmp_path)
    assert NAMES["train_images"] in str(info.value)


def test_labels_where_images_belong_is_a_magic_number_error(tmp_path):
    arrays = make_arrays()
    paths = write_dataset(tmp_path, arrays, gz=False)
    paths["test_labels"].write_bytes(idx_bytes(arrays["test_images"]))
    with pytest.raises(ValueError, match="magic number 2051 .* expected 2049"):
        mnist.load_mnist(tmp_path)


def test_truncated_file_in_dataset(tmp_path):
    paths = write_dataset(tmp_path, make_arrays(), gz=False)
    data = paths["test_images"].read_bytes()
    paths["test_images"].write_bytes(data[:-100])
    with pytest.raises(ValueError, match=f"{NAMES['test_images']}: payload is 2252 bytes, expected 2352"):
        mnist.load_mnist(tmp_path)


def test_count_mismatch_between_images_and_labels(tmp_path):
    arrays = make_arrays()
    arrays["train_labels"] = arrays["train_labels"][:4]
    write_dataset(tmp_path, arrays)
    with pytest.raises(ValueError, match=r"5 train images \(train-images-idx3-ubyte\) but 4 train labels \(train-labels-idx1-ubyte\)"):
        mnist.load_mnist(tmp_path)


def test_label_out_of_range(tmp_path):
    arrays = make_arrays()
    arrays["test_labels"][2] = 10
    write_dataset(tmp_path, arrays)
    with pytest.raises(ValueError, match=r"test label 2 is 10 \(t10k-labels-idx1-ubyte\); expected digits 0..9"):
        mnist.load_mnist(tmp_path)


def test_train_and_test_image_sizes_must_agree(tmp_path):
    arrays = make_arrays()
    arrays["test_images"] = arrays["test_images"][:, :27, :]
    write_dataset(tmp_path, arrays)
    with pytest.raises(ValueError, match=r"\(28, 28\) pixels but test images are \(27, 28\)"):
        mnist.load_mnist(tmp_path)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_full_size_file_must_be_the_original(tmp_path, monkeypatch, gz):
    """A file with the full dataset's count must have MNIST's SHA-256 (here: a 5-image 'MNIST')."""
    arrays = make_arrays()
    describe_as_mnist(monkeypatch, arrays)
    write_dataset(tmp_path, arrays, gz=gz)
    mnist.load_mnist(tmp_path)                                   # the original: accepted

    arrays["train_images"][0, 0, 0] ^= 1                         # same structure, other content
    write_dataset(tmp_path, arrays, gz=gz)
    with pytest.raises(ValueError, match="SHA-256 of the decompressed contents") as info:
        mnist.load_mnist(tmp_path)
    assert NAMES["train_images"] in str(info.value)


def test_files_with_more_items_than_mnist_are_refused(tmp_path, monkeypatch):
    """They skipped the checksum that a full-size file gets: 60001 blank images loaded as MNIST
    (a probe's finding). Here the table says 5 and 3 at last; the files hold 6 and 2."""
    six = make_arrays(n_train=6, n_test=2)
    write_dataset(tmp_path, six)
    describe_as_mnist(monkeypatch, six)       # first a table that takes them: parsed and cached
    assert len(mnist.load_mnist(tmp_path)[0][0]) == 6
    assert list((cache_dir() / "parsed").iterdir())
    describe_as_mnist(monkeypatch, make_arrays())
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: the header announces 6 "
                                         r"items, more than MNIST's 5: not MNIST"):
        mnist.load_mnist(tmp_path)             # the cached arrays are checked too


@pytest.mark.parametrize("dims, match", [
    ((60001, 28, 28), r"announces 60001 items, more than MNIST's 60000"),
    ((60000, 200, 200), r"announces 60000 x 200 x 200 bytes, more than MNIST's 60000 images"),
    ((5, 28), r"magic number 2050 \(2-D\), expected 2051")])
def test_a_header_beyond_mnist_is_refused_before_its_payload_is_read(tmp_path, dims, match):
    """A small gzip file can announce, and hold, gigabytes: 60000 x 200 x 200 zeros compress to
    2.3 MB, and the loader read them all (2.4 GB) before its count check refused them (an
    audit's finding). The header is now checked first: here the payload is missing, and the
    error is the header's, not the truncation's."""
    write_dataset(tmp_path, make_arrays())
    header = struct.pack(f">HBB{len(dims)}I", 0, 8, len(dims), *dims)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header))
    with pytest.raises(ValueError, match=r"load_mnist: .*train-images-idx3-ubyte.gz: .*" + match):
        mnist.load_mnist(tmp_path)


def test_an_empty_data_dir_is_refused_not_taken_as_the_current_folder(tmp_path, monkeypatch):
    write_dataset(tmp_path, make_arrays())
    monkeypatch.chdir(tmp_path)              # MNIST files here: "" loaded them as "."
    with pytest.raises(ValueError, match="load_mnist: data_dir is empty"):
        mnist.load_mnist("")


def test_subset_files_are_checked_structurally_only(tmp_path):
    """Fewer items than the full dataset: no checksum (the real table says 60000/10000)."""
    write_dataset(tmp_path, make_arrays(n_train=7, n_test=2))
    (X, _), (Xt, _) = mnist.load_mnist(tmp_path)
    assert len(X) == 7 and len(Xt) == 2


# ----------------------------------------------------------------------------- where the files are

def labelled_dataset(folder, label):
    """A dataset whose train labels are all ``label``, to tell folders apart."""
    arrays = make_arrays()
    arrays["train_labels"][:] = label
    write_dataset(folder, arrays)


def first_label(**kwargs):
    return int(mnist.load_mnist(**kwargs)[0][1][0])


def test_resolution_order_argument_then_env_then_cache(tmp_path, monkeypatch):
    labelled_dataset(tmp_path / "arg", 1)
    labelled_dataset(tmp_path / "env", 2)
    labelled_dataset(cache_dir(), 3)

    assert first_label() == 3
    assert mnist.find_mnist_dir() == cache_dir()
    monkeypatch.setenv("FASTNET_DATA", str(tmp_path / "env"))
    assert first_label() == 2
    assert mnist.find_mnist_dir() == tmp_path / "env"
    assert first_label(data_dir=tmp_path / "arg") == 1
    assert mnist.find_mnist_dir(tmp_path / "arg") == tmp_path / "arg"


def test_empty_fastnet_data_counts_as_unset(monkeypatch):
    labelled_dataset(cache_dir(), 3)
    monkeypatch.setenv("FASTNET_DATA", "")
    assert first_label() == 3


def test_mnist_subfolder_is_accepted(tmp_path, monkeypatch):
    labelled_dataset(tmp_path / "data" / "mnist", 4)
    assert first_label(data_dir=tmp_path / "data") == 4
    monkeypatch.setenv("FASTNET_DATA", str(tmp_path / "data"))
    assert mnist.find_mnist_dir() == tmp_path / "data" / "mnist"


def test_raw_file_preferred_over_gz(tmp_path):
    labelled_dataset(tmp_path, 5)
    raw = make_arrays()
    raw["train_labels"][:] = 6
    write_dataset(tmp_path, raw, gz=False)
    assert first_label(data_dir=tmp_path) == 6


@pytest.mark.parametrize("via", ["argument", "env"])
def test_named_folder_without_files_is_an_error_not_a_download(tmp_path, monkeypatch, via):
    folder = tmp_path / "typo"
    write_dataset(folder, {k: v for k, v in make_arrays().items() if k != "test_labels"})
    labelled_dataset(cache_dir(), 3)               # not used: the user named a folder
    kwargs = {}
    if via == "env":
        monkeypatch.setenv("FASTNET_DATA", str(folder))
    else:
        kwargs["data_dir"] = folder
    assert not mnist.mnist_available(**kwargs)
    assert mnist.find_mnist_dir(**kwargs) is None
    with pytest.raises(FileNotFoundError) as info:
        mnist.load_mnist(**kwargs)
    message = str(info.value)
    assert f"{folder}: missing t10k-labels-idx1-ubyte[.gz]" in message
    assert f"{folder / 'mnist'}: does not exist" in message
    assert "FASTNET_DATA=path/to/mnist" in message and "data_dir=" in message
    assert ("FASTNET_DATA (" if via == "env" else "data_dir / --data (") in message
    assert leftovers(folder) == sorted(n + ".gz" for k, n in NAMES.items() if k != "test_labels")


def test_mnist_available(tmp_path):
    assert not mnist.mnist_available()
    assert not mnist.mnist_available(tmp_path)
    write_dataset(tmp_path, make_arrays())
    assert mnist.mnist_available(tmp_path)


@pytest.mark.parametrize("platform, expected", [
    ("linux", ("home", ".cache", "fastnet", "mnist")),
    ("darwin", ("home", "Library", "Caches", "fastnet", "mnist")),
    ("win32", ("local", "fastnet", "Cache", "mnist")),
])
def test_cache_dir_per_platform(tmp_path, monkeypatch, platform, expected):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    monkeypatch.setattr(sys, "platform", platform)
    assert mnist.mnist_cache_dir() == tmp_path.joinpath(*expected)


def test_cache_dir_honours_absolute_xdg_only(tmp_path, monkeypatch):
    assert mnist.mnist_cache_dir() == tmp_path / "xdg-cache" / "fastnet" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "platform", "linux")
    assert mnist.mnist_cache_dir() == tmp_path / "home" / ".cache" / "fastnet" / "mnist"


# ----------------------------------------------------------------------------- download

MIRROR_A, MIRROR_B = "https://a.example/mnist/", "https://b.example/mnist/"


@pytest.fixture
def tiny_mnist(monkeypatch):
    """Tiny arrays that the loader's tables describe as MNIST, their .gz bytes, and two mirrors."""
    arrays = make_arrays()
    gz_files = describe_as_mnist(monkeypatch, arrays)
    monkeypatch.setattr(mnist, "MIRRORS", (MIRROR_A, MIRROR_B))
    return arrays, gz_files


def test_download_into_cache(monkeypatch, tiny_mnist, capsys):
    arrays, gz_files = tiny_mnist
    web = FakeWeb(serve(MIRROR_A, gz_files))
    monkeypatch.setattr(urllib.request, "urlopen", web)

    (X, y), (Xt, yt) = mnist.load_mnist(normalize=False, dtype=np.float64)

    np.testing.assert_array_equal(X, arrays["train_images"].reshape(5, -1))
    np.testing.assert_array_equal(yt, arrays["test_labels"])
    assert sorted(url for url, _ in web.calls) == sorted(serve(MIRROR_A, gz_files))
    assert all(0 < timeout <= mnist.DOWNLOAD_TIMEOUT_S for _, timeout in web.calls)
    assert leftovers(cache_dir()) == sorted(list(gz_files) + ["parsed"])
    for name, data in gz_files.items():
        assert (cache_dir() / name).read_bytes() == data
    assert "downloading https://a.example/mnist/" in capsys.readouterr().err

    mnist.load_mnist()                             # everything is there now: no more requests
    assert len(web.calls) == 4


def test_download_only_what_is_missing(monkeypatch, tiny_mnist):
    arrays, gz_files = tiny_mnist
    write_dataset(cache_dir(), {k: v for k, v in arrays.items() if k != "train_labels"})
    web = FakeWeb(serve(MIRROR_A, gz_files))
    monkeypatch.setattr(urllib.request, "urlopen", web)
    mnist.load_mnist()
    assert [url for url, _ in web.calls] == [MIRROR_A + NAMES["train_labels"] + ".gz"]


def test_download_falls_back_to_next_mirror_and_skips_dead_ones(monkeypatch, tiny_mnist):
    arrays, gz_files = tiny_mnist
    web = FakeWeb(serve(MIRROR_B, gz_files), failing=(MIRROR_A,))
    monkeypatch.setattr(urllib.request, "urlopen", web)
    (_, y), _ = mnist.load_mnist()
    np.testing.assert_array_equal(y, arrays["train_labels"])
    tried_a = [url for url, _ in web.calls if url.startswith(MIRROR_A)]
    assert len(tried_a) == 1                       # dead after the first failure
    assert len(web.calls) == 5


def test_offline_fails_fast_and_says_where_it_looked(monkeypatch, tiny_mnist):
    web = FakeWeb({}, failing=(MIRROR_A, MIRROR_B))
    monkeypatch.setattr(urllib.request, "urlopen", web)
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        mnist.load_mnist()
    assert time.perf_counter() - start < 1.0
    assert len(web.calls) == 2                     # each mirror once, then give up
    message = str(info.value)
    name = NAMES["train_images"] + ".gz"
    for expected in (str(cache_dir()), "no data_dir given, FASTNET_DATA not set",
                     f"{MIRROR_A}{name}: URLError", f"{MIRROR_B}{name}: URLError",
                     "FASTNET_DATA=path/to/mnist", "data_dir="):
        assert expected in message
    assert leftovers(cache_dir()) == []


@pytest.mark.parametrize("error", [TimeoutError("timed out"), ConnectionResetError("reset"),
                                   urllib.error.HTTPError("u", 403, "Forbidden", {}, None)])
def test_any_network_error_moves_on(monkeypatch, tiny_mnist, error):
    _, gz_files = tiny_mnist
    good = FakeWeb(serve(MIRROR_B, gz_files))

    def flaky(url, timeout=None):
        if url.startswith(MIRROR_A):
            raise error
        return good(url, timeout)

    monkeypatch.setattr(urllib.request, "urlopen", flaky)
    mnist.load_mnist()
    assert len(good.calls) == 4


def test_checksum_mismatch_keeps_nothing(monkeypatch, tiny_mnist):
    _, gz_files = tiny_mnist
    name = NAMES["train_images"] + ".gz"
    bad = dict(gz_files)
    bad[name] = bytes(len(gz_files[name]))         # right size, wrong bytes
    monkeypatch.setattr(urllib.request, "urlopen", FakeWeb(serve(MIRROR_A, bad)))
    monkeypatch.setattr(mnist, "MIRRORS", (MIRROR_A,))
    with pytest.raises(FileNotFoundError, match="SHA-256 mismatch: got [0-9a-f]{64}, expected") as info:
        mnist.load_mnist()
    assert f"{MIRROR_A}{name}: ValueError" in str(info.value)
    assert leftovers(cache_dir()) == []


def test_checksum_mismatch_on_one_mirror_uses_the_next(monkeypatch, tiny_mnist):
    arrays, gz_files = tiny_mnist
    name = NAMES["train_images"] + ".gz"
    files = serve(MIRROR_B, gz_files)
    files[MIRROR_A + name] = bytes(len(gz_files[name]))
    monkeypatch.setattr(urllib.request, "urlopen", FakeWeb(files))
    (X, _), _ = mnist.load_mnist(normalize=False)
    np.testing.assert_array_equal(X, arrays["train_images"].reshape(5, -1))


def test_oversized_download_is_cut_off(monkeypatch, tiny_mnist):
    _, gz_files = tiny_mnist
    big = {name: data + bytes(10_000) for name, data in gz_files.items()}
    monkeypatch.setattr(urllib.request, "urlopen", FakeWeb(serve(MIRROR_A, big)))
    monkeypatch.setattr(mnist, "MIRRORS", (MIRROR_A,))
    with pytest.raises(FileNotFoundError, match="more than the expected"):
        mnist.load_mnist()
    assert leftovers(cache_dir()) == []


def test_interrupted_download_leaves_no_partial_file(monkeypatch, tiny_mnist):
    _, gz_files = tiny_mnist

    class Dropping(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection reset by peer")
            return super().read(10)

    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: Dropping(gz_files[url.rsplit("/", 1)[1]]))
    with pytest.raises(FileNotFoundError, match="ConnectionResetError: connection reset by peer"):
        mnist.load_mnist()
    assert leftovers(cache_dir()) == []


def test_unreadable_cache_location_is_reported(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    with pytest.raises(FileNotFoundError, match="cannot be created"):
        mnist.load_mnist()


def test_read_only_cache_folder_is_reported_before_any_download(monkeypatch, tiny_mnist):
    # The folder exists but files cannot be created in it (a cache owned by another user);
    # the error named a temporary ".part" file, not the folder.
    cache_dir().mkdir(parents=True)
    web = FakeWeb({})
    monkeypatch.setattr(urllib.request, "urlopen", web)

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(cache_dir() / ".x.part"))

    monkeypatch.setattr(mnist.tempfile, "mkstemp", read_only)
    with pytest.raises(FileNotFoundError, match="cannot be written to") as info:
        mnist.load_mnist()
    assert str(cache_dir()) in str(info.value) and ".part" not in str(info.value)
    assert web.calls == []


# ----------------------------------------------------------------------------- parsed-array cache

def parsed_files():
    folder = cache_dir() / "parsed"
    return sorted(folder.glob("*.npz")) if folder.exists() else []


def forbid_parsing(monkeypatch):
    def fail(path):
        raise AssertionError(f"parsed {path} although the parsed-array cache should have hit")
    monkeypatch.setattr(mnist, "read_idx", fail)


def test_parsed_cache_hit_on_second_load(tmp_path, monkeypatch):
    arrays = make_arrays()
    write_dataset(tmp_path / "d", arrays)
    first = mnist.load_mnist(tmp_path / "d", one_hot=True)
    assert len(parsed_files()) == 1
    forbid_parsing(monkeypatch)
    second = mnist.load_mnist(tmp_path / "d", one_hot=True)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert leftovers(tmp_path / "d") == sorted(n + ".gz" for n in NAMES.values())   # nothing written there
    assert [p.name for p in (cache_dir() / "parsed").iterdir()] == [parsed_files()[0].name]  # no .part


def test_parsed_cache_invalidated_when_a_source_changes(tmp_path):
    labelled_dataset(tmp_path, 1)
    assert first_label(data_dir=tmp_path) == 1
    labelled_dataset(tmp_path, 2)
    os.utime(tmp_path / (NAMES["train_labels"] + ".gz"), ns=(1, 1))   # even if sizes agree
    assert first_label(data_dir=tmp_path) == 2


def test_parsed_cache_invalidated_when_size_and_mtime_are_kept(tmp_path):
    """New contents with the old size and modification time (as cp -p, rsync -t or tar leave
    them) are parsed again: the key also holds the status-change time and the inode."""
    labelled_dataset(tmp_path, 1)
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert first_label(data_dir=tmp_path) == 1
    labelled_dataset(tmp_path, 2)
    for path, (size, mtime) in before.items():
        assert path.stat().st_size == size          # the premise: same sizes
        os.utime(path, ns=(mtime, mtime))
    assert first_label(data_dir=tmp_path) == 2


def test_parsed_cache_per_folder(tmp_path):
    labelled_dataset(tmp_path / "a", 1)
    labelled_dataset(tmp_path / "b", 2)
    assert first_label(data_dir=tmp_path / "a") == 1
    assert first_label(data_dir=tmp_path / "b") == 2
    assert first_label(data_dir=tmp_path / "a") == 1
    assert len(parsed_files()) == 2


def test_damaged_parsed_cache_is_ignored(tmp_path):
    labelled_dataset(tmp_path, 7)
    first_label(data_dir=tmp_path)
    (cache_file,) = parsed_files()
    cache_file.write_bytes(cache_file.read_bytes()[:200])
    assert first_label(data_dir=tmp_path) == 7


def test_unwritable_cache_skips_the_parsed_cache(tmp_path, monkeypatch):
    labelled_dataset(tmp_path / "d", 8)
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    assert first_label(data_dir=tmp_path / "d") == 8


# ----------------------------------------------------------------------------- require_mnist

def test_require_mnist_returns_the_folder(tmp_path):
    write_dataset(tmp_path, make_arrays())
    assert mnist.require_mnist(tmp_path) == tmp_path


def test_require_mnist_skips_when_missing(tmp_path):
    with pytest.raises(pytest.skip.Exception, match="MNIST files not found"):
        mnist.require_mnist(tmp_path)


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_require_mnist_fails_when_data_is_required(tmp_path, monkeypatch, value):
    monkeypatch.setenv("FASTNET_REQUIRE_DATA", value)
    monkeypatch.setenv("FASTNET_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(pytest.fail.Exception, match="FASTNET_REQUIRE_DATA is set") as info:
        mnist.require_mnist()
    assert str(tmp_path / "nowhere") in str(info.value)


def test_require_mnist_zero_means_not_required(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNET_REQUIRE_DATA", "0")
    with pytest.raises(pytest.skip.Exception):
        mnist.require_mnist(tmp_path)


# ----------------------------------------------------------------------------- the real files

@pytest.mark.mnist
def test_real_mnist(monkeypatch, tmp_path):
    """The published facts (shared/data/README.md); skipped without the files unless required."""
    folder = mnist.require_mnist()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))   # a cold parsed-array cache
    monkeypatch.setattr(urllib.request, "urlopen", None)                # never downloads

    (X, y), (Xt, yt) = mnist.load_mnist(folder)
    assert X.shape == (60000, 784) and Xt.shape == (10000, 784)
    assert y.shape == (60000,) and yt.shape == (10000,) and y.dtype == np.int64
    assert list(y[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert list(yt[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert list(np.bincount(y)) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert list(np.bincount(yt)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert X.min() == 0.0 and X.max() == 1.0
    assert round(float(X.mean(dtype=np.float64)), 4) == 0.1307
    assert round(float(Xt.mean(dtype=np.float64)), 4) == 0.1325

    forbid_parsing(monkeypatch)                    # the second load comes from the parsed cache
    (X2, _), (_, yt2) = mnist.load_mnist(folder, flatten=False, one_hot=True)
    assert X2.shape == (60000, 28, 28) and yt2.shape == (10000, 10)
    np.testing.assert_array_equal(X2.reshape(60000, -1), X)
    np.testing.assert_array_equal(yt2.argmax(axis=1), yt)


@pytest.mark.parametrize("dtype", ["bogus", np.int32])
def test_load_mnist_names_the_dtype_it_was_given(tmp_path, dtype):
    write_dataset(tmp_path, make_arrays())
    with pytest.raises(ValueError, match=f"dtype={dtype!r} is not a float dtype"):
        mnist.load_mnist(tmp_path, dtype=dtype)
