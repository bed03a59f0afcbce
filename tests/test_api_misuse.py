"""Misuse of the object API (layers, optimizers, models, data, compat) gets a clear error that
names the argument, never a stray AttributeError/IndexError or a silent wrong answer."""
import io
import os

import numpy as np
import pytest

import fastnet
import fastnet.model
from fastnet import compat
from fastnet import functional as F
from conftest import assert_raises_naming
from fastnet.data import MiniBatch, numerical_gradient, one_hot, random_shift
from fastnet.initializers import HeInitializer, SimpleInitializer
from fastnet.layers import (FC, AvgPool1d, Conv1d, Dropout, Flatten, MaxPool1d, ReLU, Sigmoid,
                            Softmax, Transpose)
from fastnet.losses import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy
from fastnet.model import Classifier, Concat, Sequential
from fastnet.optimizers import SGD, Adam


def test_predict_on_one_unbatched_sample_says_how_to_batch_it(backend):
    model = Classifier([FC(4, 3, HeInitializer(seed=0))])
    with pytest.raises(ValueError, match=r"shape \(4,\).*X\[None\]"):
        model.predict(np.ones(4, np.float32))
    assert model.predict(np.ones((1, 4), np.float32)).shape == (1,)


@pytest.mark.parametrize("params, grads", [
    ([np.zeros(3)], [np.zeros(3)]),
    ({"W": np.zeros(3)}, [np.zeros(3)]),
])
def test_optimizer_update_wants_two_dicts(params, grads):
    with pytest.raises(TypeError, match="expected two dicts"):
        SGD(0.1).update(params, grads)


def test_dropout_backward_checks_the_shape_of_dout():
    layer = Dropout(0.5, seed=0)
    layer.forward(np.ones((2, 3), np.float32))
    for bad in (np.ones((1, 3), np.float32), np.ones((2, 4), np.float32)):
        with pytest.raises(ValueError, match=r"dout has shape .* forward output had shape \(2, 3\)"):
            layer.backward(bad)


def test_avg_pool_backward_checks_the_batch_of_dout(backend):
    layer = AvgPool1d(2)
    layer.forward(np.ones((2, 3, 8), np.float32))
    with pytest.raises(ValueError, match=r"dout has shape \(1, 3, 4\).*\(2, 3, 4\)"):
        layer.backward(np.ones((1, 3, 4), np.float32))


@pytest.mark.parametrize("t", [np.array([0, -1]), np.array([0, 3])])
def test_compat_cross_entropy_rejects_labels_out_of_range(t):
    y = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match=f"label {t[1]} out of range for 3 classes"):
        compat.cross_entropy_error(y, t)


def test_compat_network_needs_a_layer():
    with pytest.raises(ValueError, match="layers is empty"):
        compat.NeuralNetwork([], "mse", 0.1)


def test_minibatch_index_error_reports_the_index_given():
    batches = MiniBatch(np.zeros((6, 2)), np.zeros(6, int), 2, seed=0)
    assert len(batches) == 3
    np.testing.assert_array_equal(batches[-3][0], batches[0][0])
    with pytest.raises(IndexError, match=r"batch -4 out of range for 3 batches \(valid: -3 to 2\)"):
        batches[-4]


def test_set_default_dtype_refuses_none():
    with pytest.raises(TypeError, match="None"):
        fastnet.set_default_dtype(None)


# --- layer input casting -----------------------------------------------------------------------

@pytest.mark.parametrize("x, error, match", [
    (np.ones((2, 3), complex), TypeError, "dtype complex128 .* real numbers"),
    (np.ones((2, 3)).astype(str), TypeError, "dtype <U32 .* real numbers"),
    (np.full((2, 3), 1e300), ValueError, r"float64 values up to 1e\+300, beyond float32's range"),
])
def test_layers_cast_only_real_numbers_in_range(backend, x, error, match):
    # Parameter-free layers keep float input as it is, so only the non-float cases reach them.
    layers = [FC(3, 2, HeInitializer(seed=0))] + ([ReLU()] if x.dtype.kind != "f" else [])
    for layer in layers:
        with pytest.raises(error, match=match):
            layer.forward(x)


def test_inf_and_nan_inputs_still_pass_a_narrowing_cast(backend):
    x = np.array([[np.inf, np.nan, 1.0]])
    out = ReLU().forward(x.astype(np.float32))
    assert np.isinf(out[0, 0]) and np.isnan(out[0, 1])
    y = FC(3, 2, HeInitializer(seed=0)).forward(x)          # float64 into a float32 layer
    assert y.dtype == np.float32 and not np.isfinite(y).any()


def test_fit_accepts_an_integer_one_hot_target(backend):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 4)).astype(np.float32), rng.integers(0, 3, 20)
    runs = []
    for target in (y, np.eye(3, dtype=int)[y], np.eye(3, dtype=bool)[y]):
        model = Classifier([FC(4, 3, HeInitializer(seed=0))], optimizer=SGD(0.1))
        runs.append(model.fit(X, target, epochs=2, batch_size=5, shuffle=False).history["loss"])
    assert runs[1] == runs[2]                     # int and bool one-hot: the same float rows
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-5)   # labels take another kernel


def test_fit_with_float64_values_beyond_a_float32_model_names_the_range(backend):
    X = np.ones((4, 3))
    X[1, 2] = 1e300
    model = Classifier([FC(3, 2, HeInitializer(seed=0))], optimizer=SGD(0.1))
    with pytest.raises(ValueError, match="beyond float32's range"):
        model.fit(X, np.array([0, 1, 0, 1]), epochs=1)


def test_an_overflowing_cast_is_found_beside_nan_and_inf():
    # A NaN or inf elsewhere in the input once hid the overflow (it only checked all-finite).
    layer = FC(2, 2, HeInitializer(seed=0))
    with pytest.raises(ValueError, match=r"values up to 1e\+300, beyond float32's range"):
        layer.forward(np.array([[1e300, 0.0], [np.nan, np.inf]]))
    y = layer.forward(np.array([[1.0, 0.0], [np.nan, -np.inf]]))    # non-finite passes as is
    assert np.isfinite(y[0]).all() and not np.isfinite(y[1]).any()


@pytest.mark.parametrize("make, x, out_shape", [
    (lambda: FC(6, 2), np.ones((0, 2, 3)), (0, 2)),
    (Flatten, np.ones((0, 3, 4)), (0, 12)),
    # Convolution and pooling took no empty batch ("every dimension must be at least 1");
    # PyTorch takes it. The Numba conv backward would leave dW unwritten: it is never called.
    (lambda: Conv1d(3, 4, 3, padding=1, stride=2, activation="relu"), np.ones((0, 3, 9)),
     (0, 4, 5)),
    (lambda: Conv1d(3, 2, 2, dilation=2), np.ones((0, 3, 9)), (0, 2, 7)),
    (lambda: MaxPool1d(2), np.ones((0, 3, 9)), (0, 3, 4)),
    (lambda: AvgPool1d(3, stride=2, padding=1), np.ones((0, 3, 9)), (0, 3, 5)),
])
def test_an_empty_batch_passes_forward_and_backward(backend, make, x, out_shape):
    layer = make()
    y = layer.forward(x)
    assert y.shape == out_shape
    dx = layer.backward(np.ones(out_shape))
    assert dx.shape == x.shape
    for name, grad in layer.grads.items():                 # exact zeros, not stale memory
        assert grad.shape == layer.params[name].shape and not grad.any()


def test_flatten_and_transpose_backward_check_their_state():
    for layer, x, bad in [(Flatten(), np.ones((2, 3, 4)), np.ones((2, 11))),
                          (Transpose(), np.ones((2, 3, 4)), np.ones((2, 3, 4)))]:
        with pytest.raises(RuntimeError, match="backward called before forward"):
            layer.backward(bad)
        out = layer.forward(x)
        np.testing.assert_array_equal(layer.backward(out), x)
        with pytest.raises(ValueError, match="dout has shape"):
            layer.backward(bad)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_backward_checks_dout_without_allocating_the_output(backend, rank):
    """A padding that makes the forward output larger than memory: the check of dout's shape
    built a stand-in of that size first, and raised MemoryError (64 GiB, at padding 2**31 - 1)
    instead."""
    x = np.ones((2, 3, 10)[3 - rank:], np.float32)
    W = np.ones((4, 3, 3) if rank > 1 else (3,), np.float32)
    dout = np.ones((2, 4, 8)[3 - rank:], np.float32)
    with pytest.raises(ValueError, match=r"dout has shape .*; expected \(.*1073741832,?\)"):
        F.conv1d_backward(dout, x, W, padding=2**29)


def test_output_lengths_beyond_the_size_bound_are_refused(backend):
    """Each size within 2**31 - 1, the output not: a padding of 2**30 gave 2**31 + 1 values
    (17 GB, an audit's finding). An empty batch still has any length."""
    x, W = np.ones((1, 1, 3), np.float32), np.ones((1, 1, 3), np.float32)
    with pytest.raises(ValueError, match=r"conv1d: padding=1073741824, .* output length "
                                         r"2147483649 .* largest is 2\*\*31 - 1"):
        F.conv1d(x, W, padding=2**30)
    with pytest.raises(ValueError, match=r"conv1d_backward: .* output length 2147483649"):
        F.conv1d_backward(np.ones((1, 1, 1), np.float32), x, W, padding=2**30)
    with pytest.raises(ValueError, match=r"avg_pool1d_backward: .* output length 2147483648"):
        F.avg_pool1d_backward(np.ones((1, 1, 1), np.float32), 2**31 - 1, 2, 1, 1)
    assert F.conv1d(x[:0], W, padding=2**30).shape == (0, 1, 2**31 + 1)


def test_python_ints_beyond_int64_are_numbers(backend):
    """NumPy keeps them as objects: "x must be numeric; got object data" said otherwise."""
    np.testing.assert_allclose(F.relu([1, -(2**70)]), [1, 0])
    assert F.relu(2**70) == np.float32(2.0**70)
    for huge in (10**400, [1, -10**400]):
        with pytest.raises(ValueError, match="relu: x holds an integer too large for any float"):
            F.relu(huge)
    with pytest.raises(ValueError, match=r"beyond float32's range"):
        F.relu([1, 2**1000])
    with pytest.raises(TypeError, match=r"indices must be an integer ndarray .*got a NumPy int64 "
                                        r"scalar"):
        F.max_pool1d_backward(np.ones(3), np.int64(0), 10)


# --- data helpers, paths, settings -------------------------------------------------------------

def test_numerical_gradient_refuses_a_step_below_the_resolution():
    x = np.ones(3, np.float16)
    with pytest.raises(ValueError, match=r"h=0.0001 is below the resolution of float16 at x\[0\]"):
        numerical_gradient(lambda v: float((v.astype(float) ** 2).sum()), x)
    np.testing.assert_array_equal(x, 1)
    g = numerical_gradient(lambda v: float((v.astype(float) ** 2).sum()), x, h=0.01)
    np.testing.assert_allclose(g, 2, rtol=3e-2)        # float16 rounds x +- h itself


@pytest.mark.parametrize("axis", [1.0, 5, -3, True, "0", None])
def test_compat_softmax_names_a_reduce_axis_that_is_not_an_axis(axis):
    """A float axis failed inside np.moveaxis ("'float' object is not iterable"), True was
    taken as axis 1."""
    with pytest.raises(ValueError, match=f"softmax: reduce_axis={axis!r} is not an axis of U "
                                         r"\(shape \(3, 4\)\)"):
        compat.softmax(np.ones((3, 4)), reduce_axis=axis)


def test_compat_softmax_takes_any_axis_of_u():
    U = np.random.default_rng(0).standard_normal((3, 4, 5))
    for axis in (0, 1, 2, -1, np.int64(-3)):
        np.testing.assert_allclose(compat.softmax(U, reduce_axis=axis).sum(axis=int(axis)), 1)


def test_numerical_gradient_says_f_must_return_a_scalar():
    """An ``f`` returning the per-sample losses got NumPy's "only 0-dimensional arrays can be
    converted to Python scalars"; a loss of shape (1,) is fine."""
    x = np.ones(3)
    with pytest.raises(TypeError, match=r"f must return a scalar \(the loss\); it returned "
                                        r"ndarray of shape \(3,\)"):
        numerical_gradient(lambda v: v ** 2, x)
    with pytest.raises(TypeError, match="f must return a scalar .*it returned 'a'"):
        numerical_gradient(lambda v: "a", x)
    np.testing.assert_allclose(numerical_gradient(lambda v: (v ** 2).sum(keepdims=True)[None], x),
                               2 * x, rtol=1e-8)
    np.testing.assert_array_equal(x, 1)


def test_numerical_gradient_names_a_read_only_x():
    x = np.arange(3.0)
    x.flags.writeable = False
    with pytest.raises(ValueError, match=r"numerical_gradient: x \(shape \(3,\)\) is read-only"):
        numerical_gradient(lambda v: float(v.sum()), x)


def test_numerical_gradient_restores_x_when_f_raises():
    x = np.arange(3.0)

    def f(v):
        raise KeyError("boom")
    with pytest.raises(KeyError):
        numerical_gradient(f, x)
    np.testing.assert_array_equal(x, [0, 1, 2])


@pytest.mark.parametrize("args, error, match", [
    ((1, (28,)), ValueError, r"image_shape=\(28,\); expected \(H, W\)"),
    ((1, 28), ValueError, r"image_shape=28; expected \(H, W\)"),
    ((10**9, (4, 4)), ValueError, "max_shift"),
    ((5, (4, 4)), ValueError, "exceeds the image size 4x4"),
    # a shift by the short side moves the whole image out (once allowed up to the long side)
    ((4, (4, 4)), ValueError, r"exceeds the image size 4x4.*at most 3"),
    ((3, (3, 8)), ValueError, r"exceeds the image size 3x8.*at most 2"),
    ((1, (4, 4), "x"), TypeError, "fill"),
])
def test_random_shift_checks_its_settings(args, error, match):
    with pytest.raises(error, match=match):
        random_shift(*args)


def test_random_shift_refuses_what_the_shifted_batch_would_lose():
    """A masked batch lost its mask; a fill beyond float32's range became inf."""
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="random_shift: x is a masked array"):
        random_shift(1, (4, 4))(np.ma.masked_array(np.ones((2, 16))), rng)
    with pytest.raises(ValueError, match=r"fill=1e\+300 is beyond float32's range"):
        random_shift(1, (4, 4), fill=1e300)(np.ones((2, 16), np.float32), rng)
    assert random_shift(1, (4, 4), fill=1e300)(np.ones((2, 16)), rng).max() == 1e300


def test_random_shift_checks_batch_and_generator():
    shift = random_shift(1, (4, 4))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"\(2, 5\) does not hold 4x4 images"):
        shift(np.ones((2, 5)), rng)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        shift(np.ones((1, 16)), None)
    assert shift(np.ones((0, 16)), rng).shape == (0, 16)


def test_save_and_load_take_a_bytes_path(tmp_path):
    model = Classifier([FC(3, 2, HeInitializer(seed=0))])
    path = os.fsencode(tmp_path / "m.npz")
    model.save(path)
    np.testing.assert_array_equal(fastnet.model.load(path).layers[0].W, model.layers[0].W)


def test_save_takes_a_file_name_near_the_length_limit(tmp_path):
    """The temporary file beside the target has a short name of its own: one built from the
    target's name pushed a legal 250-byte name past the 255-byte limit."""
    model = Classifier([FC(3, 2, HeInitializer(seed=0))])
    path = tmp_path / ("m" * 246 + ".npz")
    model.save(path)
    np.testing.assert_array_equal(fastnet.model.load(path).layers[0].W, model.layers[0].W)
    assert os.listdir(tmp_path) == [path.name]             # no temporary file left behind


def test_save_names_a_file_name_too_long_and_a_path_that_is_not_a_name(tmp_path):
    """The rename's own error named the temporary file; a file object failed inside os."""
    model = Classifier([FC(3, 2, HeInitializer(seed=0))])
    with pytest.raises(OSError, match=r"cannot write .*mmm\.npz: the file name is 304 bytes long"):
        model.save(tmp_path / ("m" * 300 + ".npz"))
    with pytest.raises(TypeError, match="save: path must be a file name.*BytesIO"):
        model.save(io.BytesIO())
    assert os.listdir(tmp_path) == []


def test_save_into_a_missing_folder_names_the_folder(tmp_path):
    model = Classifier([FC(3, 2, HeInitializer(seed=0))])
    with pytest.raises(FileNotFoundError, match="the folder .*nope does not exist"):
        model.save(tmp_path / "nope" / "m.npz")
    assert not (tmp_path / "nope").exists()


def test_save_under_a_file_says_it_is_not_a_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    model = Classifier([FC(3, 2, HeInitializer(seed=0))])
    with pytest.raises(NotADirectoryError, match=r"afile is a file, not a folder"):
        model.save(tmp_path / "afile" / "m.npz")


@pytest.mark.parametrize("where", ["create", "write"])
def test_a_save_the_system_refuses_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch,
                                                                       where):
    """A read-only folder or a full disk: the error named the temporary file (or no file)."""
    import errno
    import tempfile
    model = Classifier([FC(3, 2, HeInitializer(seed=0))])
    target = tmp_path / "m.npz"
    target.write_bytes(b"old")
    if where == "create":
        def refuse(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".fastnet-x.tmp"))
        monkeypatch.setattr(tempfile, "mkstemp", refuse)
        expected = r"\[Errno 30\] cannot write .*m\.npz: Read-only file system"
    else:
        real_fsync = os.fsync

        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(os, "fsync", full)
        expected = r"\[Errno 28\] cannot write .*m\.npz: No space left on device"
    with pytest.raises(OSError, match=expected) as info:
        model.save(target)
    assert ".fastnet-" not in str(info.value)
    if where == "write":
        monkeypatch.setattr(os, "fsync", real_fsync)
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_set_num_threads_types():
    with pytest.raises(TypeError, match="n=2.5"):
        fastnet.set_num_threads(2.5)
    with pytest.raises(ValueError, match="n=0"):
        fastnet.set_num_threads(0)


def test_mse_backward_of_0d_arrays_is_a_0d_array_on_both_backends(backend, dtype):
    y, t = np.array(1.0, dtype), np.array(2.0, dtype)
    for d in (fastnet.functional.mse_backward(y, t),
              fastnet.functional.binary_cross_entropy_backward(np.array(0.5, dtype), t / 2)):
        assert type(d) is np.ndarray and d.shape == () and d.dtype == dtype



def test_loss_objects_and_activation_layers_keep_0d_arrays_as_the_functional_api(backend, dtype):
    """The layers' casting rule (``_checks.cast_real``) must not turn a 0-d array into shape
    (1,): ``MeanSquaredError().forward`` on two 0-d arrays raised a shape mismatch that
    ``F.mse`` does not, and ``ReLU().forward`` returned (1,) where ``F.relu`` returns ()."""
    y, t = np.array(0.25, dtype), np.array(1.0, dtype)
    assert MeanSquaredError().forward(y, t) == pytest.approx(0.5625)
    assert BinaryCrossEntropy().forward(y, t) == pytest.approx(-np.log(0.25))
    for layer, x in ((ReLU(), np.array(-2.0)), (Sigmoid(), np.array(2, np.int64)),
                     (Dropout(0.5, seed=0), np.float32(1.0))):      # Dropout gave a scalar
        out = layer.forward(x)
        assert type(out) is np.ndarray and out.shape == ()
        back = layer.backward(np.array(1.0, out.dtype))
        assert type(back) is np.ndarray and back.shape == ()

# --- containers --------------------------------------------------------------------------------

def test_a_layer_object_used_twice_is_refused():
    act = ReLU()
    with pytest.raises(ValueError, match=r"same ReLU object is used at layer 1 and at layer 3"):
        Classifier([FC(4, 6), act, FC(6, 6), act, FC(6, 3)])
    soft = Softmax()
    with pytest.raises(ValueError, match=r"same Softmax object .* layer 0 \(activation\) and at "
                                         r"layer 1 \(activation\)"):
        Classifier([FC(4, 6, activation=soft), FC(6, 3, activation=soft)])
    fc = FC(3, 3)
    with pytest.raises(ValueError, match=r"same FC object .* layer 0.0 and at layer 1.0"):
        Sequential([Sequential([fc]), Sequential([fc])])
    with pytest.raises(ValueError, match="same FC object"):
        Concat([[fc], [fc]])


@pytest.mark.parametrize("make", [lambda: FC(4, 4), lambda: Sequential([FC(4, 4)])])
def test_an_activation_with_parameters_is_refused(make):
    """Its parameters are not the FC's: ``fit`` never trained them and a save lost them."""
    with pytest.raises(TypeError, match=r"FC\(3, 4\): activation .* has parameters \(.*W.*\)"):
        FC(3, 4, activation=make())
    fc = FC(3, 4)
    with pytest.raises(TypeError, match="has parameters"):
        fc.activation = make()


def test_concat_wants_a_batch():
    concat = Concat([[FC(3, 2)], [FC(3, 2)]])
    with pytest.raises(ValueError, match=r"got shape \(3,\) \(one sample is x\[None\]\)"):
        concat.forward(np.ones(3, np.float32))
    assert concat.forward(np.ones((0, 3), np.float32)).shape == (0, 4)


def test_a_nested_sequential_uses_its_own_optimizer_and_saves_it(tmp_path, backend):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 4)), rng.integers(0, 3, 12)
    inner = Sequential([FC(4, 5, HeInitializer(seed=0), activation="relu")],
                       optimizer=SGD(0.5))
    model = Classifier([inner, FC(5, 3, HeInitializer(seed=1))])      # outer: no optimizer
    with pytest.raises(ValueError, match=r"layer 1 FC\(5, 3\) has no optimizer"):
        model.fit(X, y, epochs=1)
    model = Classifier([inner, FC(5, 3, HeInitializer(seed=1))], optimizer=Adam(0.01))
    W_inner, W_outer = inner.layers[0].W.copy(), model.layers[1].W.copy()
    model.fit(X, y, epochs=1, batch_size=12)
    # SGD on the inner layer: the step is exactly -0.5 * its gradient
    np.testing.assert_allclose(inner.layers[0].W, W_inner - 0.5 * inner.layers[0].dW, rtol=1e-6)
    assert not np.allclose(model.layers[1].W, W_outer)
    path = tmp_path / "nested.npz"
    model.save(path)
    loaded = fastnet.model.load(path)
    assert isinstance(loaded.layers[0].optimizer, SGD) and loaded.layers[0].optimizer.lr == 0.5
    assert isinstance(loaded.optimizer, Adam)
    model.fit(X, y, epochs=1, batch_size=12)
    loaded.fit(X, y, epochs=1, batch_size=12)
    for key, p in model.params.items():
        np.testing.assert_array_equal(loaded.params[key], p)


def test_a_batch_size_beyond_float_range_still_trains(backend):
    X, y = np.ones((6, 2), np.float32), np.array([0, 1, 0, 1, 0, 1])
    assert len(MiniBatch(X, y, 10**400)) == 1
    model = Classifier([FC(2, 2, HeInitializer(seed=0))], optimizer=SGD(0.1))
    before = model.layers[0].W.copy()
    model.fit(X, y, epochs=1, batch_size=10**400)
    assert model.history["loss"][0] > 0 and not np.array_equal(model.layers[0].W, before)


# --- the casting rule beyond layer inputs --------------------------------------------------------

@pytest.mark.parametrize("loss, out", [
    (BinaryCrossEntropy(), np.full((2, 3), 0.5)),
    (MeanSquaredError(), np.full((2, 3), 0.5)),
    (SoftmaxCrossEntropy(), np.zeros((2, 3))),
])
@pytest.mark.parametrize("target, error, match", [
    (np.ones((2, 3)).astype(str), TypeError, "target has dtype <U32"),
    (np.ones((2, 3), complex), TypeError, "target has dtype complex128"),
    (np.array([[1, None, 0], [0, 1, 0]], dtype=object), TypeError, "target has dtype object"),
    (np.full((2, 3), 1e300), ValueError, "beyond float32's range"),
])
def test_loss_targets_follow_the_casting_rule(backend, loss, out, target, error, match):
    with pytest.raises(error, match=match):
        loss.forward(out.astype(np.float32), target)


def test_loss_backward_before_forward_is_a_runtime_error():
    for loss in (SoftmaxCrossEntropy(), MeanSquaredError(), BinaryCrossEntropy()):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            loss.backward()


@pytest.mark.parametrize("weights, error, match", [
    (lambda n1, n2: np.ones((n1, n2), complex), TypeError, "initial weights has dtype complex"),
    (lambda n1, n2: np.full((n1, n2), "0.5"), TypeError, "initial weights has dtype <U3"),
    (lambda n1, n2: np.full((n1, n2), 1e300), ValueError, "beyond float32's range"),
])
def test_notebook_style_initial_weights_follow_the_casting_rule(weights, error, match):
    class Init:
        W = staticmethod(weights)

        @staticmethod
        def b(n):
            return np.zeros(n)
    with pytest.raises(error, match=match):
        FC(3, 2, Init())


@pytest.mark.parametrize("call, error", [
    (lambda: compat.mse(["1", "2"], [1.0, 2.0]), TypeError),
    (lambda: compat.mse([1.0, 2.0], [1j, 2.0]), TypeError),
    (lambda: compat.sigmoid([1j]), TypeError),
    (lambda: compat.softmax_cross_entropy(np.array([[1j]]), np.array([[1.0]])), TypeError),
])
def test_compat_functions_refuse_complex_and_text(call, error):
    with pytest.raises(error, match="expected real numbers"):
        call()


def test_an_initializer_scale_beyond_float32_is_an_error():
    with pytest.raises(ValueError, match=r"SimpleInitializer: weights .* beyond float32's range"):
        FC(3, 2, SimpleInitializer(1e300))


def test_classes_are_not_instances():
    with pytest.raises(TypeError, match=r"loss is the class MeanSquaredError; pass an instance"):
        Sequential([FC(2, 2)], loss=MeanSquaredError)
    with pytest.raises(TypeError, match=r"optimizer is the class SGD; pass an instance"):
        Sequential([FC(2, 2)], optimizer=SGD)
    with pytest.raises(TypeError, match=r"optimizer is the class Adam"):
        FC(2, 2, optimizer=Adam)


def test_dropout_keeps_a_numpy_integer_seed():
    assert Dropout(0.5, seed=np.int64(3)).get_config()["seed"] == 3


def test_compat_affine_and_cross_entropy_edge_shapes(backend):
    affine = compat.Affine(np.ones((6, 2)), np.zeros(2))
    assert affine.forward(np.ones((0, 2, 3))).shape == (0, 2)
    # one class: N labels are not N x 1 one-hot rows
    assert compat.cross_entropy_error(np.ones((3, 1)), np.array([0, 0, 0])) == 0.0
    assert compat.cross_entropy_error(np.ones((3, 1)), np.ones((3, 1))) == 0.0
    np.testing.assert_allclose(compat.cross_entropy_error(np.array([0.25, 0.75]), 1),
                               -np.log(0.75))
    with pytest.raises(ValueError):
        compat.cross_entropy_error(np.full((2, 2), 0.5), np.array([0, 1, 0, 1]))


@pytest.mark.parametrize("x, t, match", [
    (np.ones((5, 2)), np.array([0]), "x has 5 rows but t has 1"),
    (np.ones((5, 2)), np.eye(5), r"one-hot rows \(N, 3\)"),
    (np.ones((0, 2)), np.array([], int), "non-empty batch"),
])
def test_compat_two_layer_net_accuracy_checks_labels(x, t, match):
    net = compat.TwoLayerNet(2, 4, 3)
    with pytest.raises(ValueError, match=match):
        net.accuracy(x, t)
    assert 0 <= net.accuracy(np.ones((5, 2)), np.eye(3)[[0, 1, 2, 0, 1]]) <= 1


# --- optimizer and loss-gradient scalars and memory ----------------------------------------------

def test_a_gradient_overlapping_its_parameter_at_an_offset_is_refused(backend):
    buf = np.arange(1.0, 9.0)
    with pytest.raises(ValueError, match="grad overlaps param at an offset"):
        fastnet.functional.sgd_update_(buf[1:], buf[:-1], 1.0)
    with pytest.raises(ValueError, match="grad overlaps param at an offset"):
        SGD(1.0).update({"w": buf[1:]}, {"w": buf[:-1]})
    np.testing.assert_array_equal(buf, np.arange(1.0, 9.0))
    fastnet.functional.sgd_update_(buf, buf, 0.5)           # the same array: p -= 0.5 p
    np.testing.assert_array_equal(buf, np.arange(1.0, 9.0) / 2)


def _overlapping_update_arrays():
    """Adam's four arrays where two share memory in ways an owner test cannot rule out."""
    buf = np.zeros(8)
    m = np.zeros(3)
    yield "grad a view of m", (np.ones(3), m[:], m, np.zeros(3)), "m shares memory with grad"
    yield "m and v one buffer", (np.ones(3), np.ones(3), buf[:3], buf[2:5]), "v shares memory"
    raw = bytearray(8 * 6)          # views of one non-ndarray buffer: no owning ndarray
    p, v = np.frombuffer(raw, np.float64)[:3], np.frombuffer(raw, np.float64)[2:5]
    yield "param and v one bytearray", (p, np.ones(3), np.zeros(3), v), "v shares memory"


@pytest.mark.parametrize("case", list(_overlapping_update_arrays()), ids=lambda c: c[0])
def test_optimizer_state_sharing_memory_is_refused(backend, case):
    _, arrays, match = case
    before = [a.copy() for a in arrays]
    with pytest.raises(ValueError, match=match):
        fastnet.functional.adam_update_(*arrays, 1)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


def test_updates_of_separate_views_run(backend):
    """Views of different arrays (a layer's reshaped gradient, a slice of a bigger state
    buffer) are apart: the update runs and matches the same update on copies."""
    grad_owner, m_owner = np.linspace(-1, 1, 6), np.zeros(10)
    p = np.ones(6)
    arrays = (p, grad_owner.reshape(2, 3).reshape(6), m_owner[2:8], np.zeros(6))
    copies = [a.copy() for a in arrays]
    fastnet.functional.adam_update_(*arrays, 1, lr=0.1)
    fastnet.functional.adam_update_(*copies, 1, lr=0.1)
    for a, b in zip(arrays, copies):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(p, np.ones(6))


@pytest.mark.parametrize("call", [
    lambda p, g, s: fastnet.functional.sgd_update_(p, g, 1e300),
    lambda p, g, s: fastnet.functional.momentum_update_(p, g, s, 1e300),    # momentum <= 1
    lambda p, g, s: fastnet.functional.adagrad_update_(p, g, s, 1e300),
    lambda p, g, s: fastnet.functional.adagrad_update_(p, g, s, 0.1, eps=1e300),
    lambda p, g, s: fastnet.functional.adam_update_(p, g, s, s.copy(), 1, lr=1e300),
])
def test_hyper_parameters_beyond_float32_are_refused(backend, call):
    p, g, s = np.ones(3, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"=1e\+300 is beyond the float32 range"):
        call(p, g, s)
    np.testing.assert_array_equal(p, 1)


def test_dloss_beyond_float32_is_refused(backend):
    F = fastnet.functional
    probs = np.full((2, 2), 0.5, np.float32)
    for call in (lambda: F.softmax_cross_entropy_backward(probs, np.array([0, 1]), 1e300),
                 lambda: F.mse_backward(probs, probs, 1e300),
                 lambda: F.binary_cross_entropy_backward(probs, probs, 1e300)):
        with pytest.raises(ValueError, match=r"dloss=1e\+300 is beyond the float32 range"):
            call()
    p64 = probs.astype(np.float64)
    assert np.isfinite(F.mse_backward(p64, p64, 1e300)).all()      # float64 holds it


# --- yes/no arguments, Dropout before forward, bool data ----------------------------------------

@pytest.mark.parametrize("call, words", [
    (lambda: SGD(0.1, momentum=0.9, nesterov="no"), "SGD: nesterov must be True or False"),
    (lambda: fastnet.functional.momentum_update_(np.ones(2), np.ones(2), np.zeros(2), 0.1,
                                                 nesterov=None), "nesterov must be True or False"),
    (lambda: fastnet.functional.dense_backward(np.ones((1, 2)), np.ones((1, 3)),
                                               np.ones((3, 2)), need_dx="no"),
     "dense_backward: need_dx must be True or False"),
    (lambda: fastnet.functional.conv1d_backward(np.ones((1, 1, 2)), np.ones((1, 1, 4)),
                                                np.ones((1, 1, 3)), need_dx=2),
     "conv1d_backward: need_dx must be True or False"),
    (lambda: Dropout(0.5).train("eval"), "Dropout.train: mode must be True or False"),
    (lambda: fastnet.functional.max_pool1d(np.ones((1, 1, 4)), 2, return_indices="no"),
     "max_pool1d: return_indices must be True or False"),
    (lambda: Sequential([ReLU()]).train("no"), "Sequential.train: mode must be True or False"),
])
def test_yes_no_arguments_are_not_taken_by_truth_value(backend, call, words):
    with pytest.raises(TypeError, match=words):
        call()


def test_yes_no_arguments_take_numpy_bools_and_0_1():
    assert SGD(0.1, momentum=0.9, nesterov=np.True_).nesterov is True
    assert SGD(0.1, momentum=0.9, nesterov=1).nesterov is True
    assert Dropout(0.5).train(0).training is False


def test_dropout_backward_before_forward_raises():
    layer = Dropout(0.5)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones(3))
    layer.train(False)
    layer.forward(np.ones(3))
    np.testing.assert_array_equal(layer.backward(np.full(3, 2.0)), np.full(3, 2.0))


def test_fit_takes_bool_features_as_the_layers_do(backend):
    X = np.random.default_rng(0).random((12, 4)) > 0.5
    model = Classifier([FC(4, 3, HeInitializer(seed=0))], optimizer=SGD(0.1))
    model.fit(X, np.arange(12) % 3, epochs=1, batch_size=4)
    np.testing.assert_array_equal(model.predict(X), model.predict(X.astype(np.float32)))


def test_random_shift_refuses_a_fill_an_integer_batch_cannot_hold():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"fill=-1.0 cannot be stored in a uint8 batch"):
        random_shift(1, (4, 4), fill=-1)(np.ones((2, 16), np.uint8), rng)     # np.pad: 255
    with pytest.raises(ValueError, match=r"fill=0.5 cannot be stored in a int64 batch"):
        random_shift(1, (4, 4), fill=0.5)(np.ones((2, 16), np.int64), rng)
    out = random_shift(1, (4, 4), fill=-1)(np.ones((2, 16), np.float32), rng)
    assert set(np.unique(out)) <= {-1.0, 1.0}
    assert random_shift(1, (4, 4), fill=7)(np.ones((2, 16), np.uint8), rng).dtype == np.uint8


def test_recipes_check_their_arguments():
    from fastnet.models import RECIPES
    cnn = RECIPES["cnn"]
    with pytest.raises(TypeError, match=r"Recipe\('cnn'\).prepare: X has dtype uint8; expected "
                                        r"floats in \[0, 1\]"):
        cnn.prepare(np.array([[[0, 128, 255]]], np.uint8))       # was computed in uint8: wrapped
    np.testing.assert_allclose(cnn.prepare([[[0.1307]]]), [[[0.0]]], atol=1e-7)   # lists too
    with pytest.raises(ValueError, match=r"optimizer='nope'; expected one of sgd, momentum"):
        RECIPES["mlp"].build(optimizer="nope")
    assert isinstance(RECIPES["mlp"].build(optimizer="Adam").optimizer, Adam)
    # Seeds as the initializers take them: a Generator (reproducibly) and None.
    W = [RECIPES["mlp"].build(seed=np.random.default_rng(5)).layers[0].W for _ in range(2)]
    np.testing.assert_array_equal(W[0], W[1])
    assert RECIPES["mlp"].build(seed=None).layers[0].W.shape == (784, 400)
    with pytest.raises(ValueError, match=r"seed=-1"):
        RECIPES["mlp"].build(seed=-1)


def test_minibatch_takes_shuffle_as_a_flag_and_refuses_masked_data():
    with pytest.raises(TypeError, match="MiniBatch: shuffle must be True or False; got 'no'"):
        MiniBatch(np.zeros((4, 1)), np.zeros(4), 2, shuffle="no")          # was: shuffled
    with pytest.raises(TypeError, match="MiniBatch: X is a masked array"):
        MiniBatch(np.ma.masked_array(np.zeros((4, 1))), np.zeros(4), 2)


def test_the_compat_classifier_names_the_notebooks_arguments():
    clf = compat.ScratchDeepNeuralNetrowkClassifier([compat.FC(2, 2, compat.HeInitializer(),
                                                                compat.SGD(0.1), compat.Softmax())])
    X, Y = np.ones((4, 2)), np.eye(2)[[0, 1, 0, 1]]
    with pytest.raises(TypeError, match=r"ScratchDeepNeuralNetrowkClassifier.fit: n_batch must"):
        clf.fit(X, Y, n_batch=2.0)
    with pytest.raises(ValueError, match=r"n_epoch=-1; expected an integer >= 0"):
        clf.fit(X, Y, n_epoch=-1)


# --- found by an adversarial review ---------------------------------------------------------

@pytest.mark.parametrize("call, exc, words", [
    (lambda: F.tanh([[1.0, 2.0], [3.0]]), ValueError, ["tanh", "x", "unequal lengths"]),
    (lambda: F.relu(1e300), ValueError, ["relu", "x", "beyond float32's range"]),
    (lambda: F.sgd_update_(np.zeros(1, np.float32), [1e39], 0.1), ValueError,
     ["sgd_update_", "grad", "beyond float32's range"]),
    (lambda: F.softmax_cross_entropy(np.ones((2, 3)), np.array([0, 1]), return_probs="no"),
     TypeError, ["return_probs", "True or False"]),
    (lambda: compat.softmax(3.0), ValueError, ["softmax", "U has shape ()"]),
    (lambda: compat.softmax(np.zeros((0, 5))), ValueError, ["U has shape (0, 5)", "no classes"]),
    (lambda: compat.Linear(6, 3).backward(np.ones((2, 3)), 0.1), RuntimeError,
     ["backward called before forward"]),
    (lambda: compat.TwoLayerNet(4, 5, 3).accuracy(np.ones((2, 4)), np.array([0, 3])), ValueError,
     ["labels t", "0 to 3", "0..2"]),
    (lambda: one_hot([0], 3, dtype="foo"), TypeError, ["one_hot", "dtype='foo'"]),
    (lambda: one_hot([0], 2**63), ValueError, ["one_hot", "n_classes=9223372036854775808",
                                               "(1, 9223372036854775808)"]),
    (lambda: Sequential([FC(4, 2)], loss="mse").evaluate(np.ones((5, 4)), np.ones((5, 3))),
     ValueError, ["Sequential.evaluate", "y has shape (5, 3)", "(2,) per sample"]),
])
def test_more_bad_inputs_get_clear_errors(backend, call, exc, words):
    assert_raises_naming(call, exc, words)


def test_a_padding_pair_may_be_an_array(backend):
    x, W = np.ones((1, 1, 5)), np.ones((1, 1, 3))
    np.testing.assert_array_equal(F.conv1d(x, W, padding=np.array([1, 2])),
                                  F.conv1d(x, W, padding=(1, 2)))


def test_the_articles_linear_trains_inside_a_fastnet_classifier():
    """Without a learning rate, ``Linear.backward`` leaves the update to the model's
    optimizer."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    np.random.seed(0)
    clf = Classifier([compat.Linear(4, 8), compat.ReLU(), compat.Linear(8, 2)],
                     optimizer=SGD(0.1))
    W0 = clf.layers[0].weights.copy()
    clf.fit(X, y, epochs=5, batch_size=20)
    assert not np.array_equal(clf.layers[0].weights, W0)
    assert clf.history["loss"][-1] < clf.history["loss"][0] and clf.score(X, y) > 0.85


def test_sequential_with_layers_as_separate_arguments_says_how_to_call():
    """PyTorch's spelling ``Sequential(a, b)`` passed ``b`` as the loss and failed with
    "'FC' object is not iterable", naming neither the argument nor the fix."""
    from fastnet.layers import FC
    from fastnet.model import Classifier, Sequential
    for cls in (Sequential, Classifier):
        with pytest.raises(TypeError, match=rf"{cls.__name__}\(layers, loss=None, "
                                            rf"optimizer=None\): layers must be a list of "
                                            rf"layers, .*; got FC\(6, 3\)"):
            cls(FC(6, 3), FC(3, 3))
        with pytest.raises(TypeError, match="layers must be a list of layers, .*; got 3"):
            cls(3)
        assert [type(layer) for layer in cls(iter([FC(6, 3)])).layers] == [FC]
