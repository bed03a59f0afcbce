"""Bad inputs raise a clear ValueError/TypeError naming the argument, on both backends."""
import numpy as np
import pytest

import fastnet
import fastnet.functional as F
import naive
from fastnet.optimizers import SGD
from conftest import assert_raises_naming

f32, f64 = np.float32, np.float64


def z(*shape, dtype=f32):
    return np.zeros(shape, dtype)


CASES = [
    # (call, exception, words the message must contain)
    (lambda: F.dense(z(2, 3), z(4, 5)), ValueError, ["x", "(2, 3)", "(4, 5)"]),
    (lambda: F.dense(z(2, 3), z(3, 5), z(4)), ValueError, ["b", "(4,)", "(5,)"]),
    (lambda: F.dense(z(2, 3), z(3)), ValueError, ["W", "2-D", "(3,)"]),
    (lambda: F.dense(z(), z(3, 5)), ValueError, ["x", "()"]),
    (lambda: F.dense(z(2, 3), z(3, 5, dtype=f64)), TypeError, ["W", "float64", "float32"]),
    (lambda: F.dense(np.zeros((2, 3), int), z(3, 5)), TypeError, ["x", "int64"]),
    (lambda: F.dense(z(2, 3, dtype=np.float16), z(3, 5)), TypeError, ["x", "float16"]),
    (lambda: F.dense(z(2, 3), z(3, 5), activation="gelu"), ValueError, ["activation", "gelu"]),
    (lambda: F.dense(z(2, 2, 3), z(3, 5)), ValueError, ["x", "(2, 2, 3)"]),
    (lambda: F.dense("abc", z(3, 5)), TypeError, ["x", "str"]),
    (lambda: F.dense_backward(z(2, 4), z(2, 3), z(3, 5)), ValueError, ["dout", "(2, 4)", "(2, 5)"]),
    (lambda: F.dense_backward(z(2, 5), z(2, 3), z(3, 5), activation="relu"), ValueError, ["y"]),
    # Plain C-ordered arrays of one dtype with a single defect: the calls that the common-case
    # shortcut of dense and dense_backward looks at before the full checks.
    (lambda: F.dense(z(2, 3), z(3, 5), z(5, 1)), ValueError, ["b", "(5, 1)", "(5,)"]),
    (lambda: F.dense(z(2, 4), z(3, 5), z(5)), ValueError, ["x", "(2, 4)", "(3, 5)"]),
    (lambda: F.dense(z(2, 3), z(3, 5), z(5, dtype=f64)), TypeError, ["b", "float64"]),
    (lambda: F.dense_backward(z(2, 5), z(2, 3), z(3, 5), z(2, 4), "relu"), ValueError,
     ["y", "(2, 4)", "(2, 5)"]),
    (lambda: F.dense_backward(z(3, 5), z(2, 3), z(3, 5), z(3, 5), "relu"), ValueError,
     ["dout", "(3, 5)", "(2, 5)"]),
    (lambda: F.dense_backward(z(2, 5), z(2, 3), z(3, 5), z(2, 5, dtype=f64), "relu"), TypeError,
     ["y", "float64"]),
    # the odd one out is named, wherever it stands (the first argument's dtype is no reference)
    (lambda: F.dense(z(2, 3, dtype=f64), z(3, 5), z(5)), TypeError,
     ["x float64", "cast x to float32"]),
    (lambda: F.conv1d_backward(z(2, 4, 8, dtype=f64), z(2, 3, 10), z(4, 3, 3)), TypeError,
     ["dout float64", "x float32", "W float32", "cast dout to float32"]),
    (lambda: F.dense_backward(z(2, 5), z(2, 3), z(3, 5), z(2, 5), "relu", need_dx="no"),
     TypeError, ["need_dx"]),
    (lambda: F.relu_backward(z(3), z(4)), ValueError, ["dout", "(3,)", "(4,)"]),
    (lambda: F.sigmoid_backward(z(3), z(3, dtype=f64)), TypeError, ["y", "float64"]),
    (lambda: F.softmax(z(2, 0)), ValueError, ["x", "(2, 0)"]),
    (lambda: F.softmax(z()), ValueError, ["x must be 1-D to 32-D; got shape ()"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), np.array([0, 3])), ValueError, ["label 3", "3 classes"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), np.array([-1, 0])), ValueError, ["label -1"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), np.array([0, 2**64 - 1], np.uint64)), ValueError,
     ["label 18446744073709551615"]),          # as given, not as it wrapped in the int64 cast
    (lambda: F.max_pool1d_backward(z(1, 1, 2), np.array([[[0, 2**63]]], np.uint64), 4),
     ValueError, ["indices", "[0, 9223372036854775808]", "length=4"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), np.array([0, 1, 2])), ValueError, ["labels", "(3,)", "2 rows"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), np.array([0.0, 1.0])), TypeError, ["integer dtype", "float64"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), z(2, 4)), ValueError, ["one-hot", "(2, 4)", "(2, 3)"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), z(2, 3, dtype=f64)), TypeError, ["target", "float64"]),
    # a column of integer labels is a shape mistake (the dtype hint came first and misled)
    (lambda: F.softmax_cross_entropy(z(2, 3), np.array([[2], [0]])), ValueError,
     ["(2, 1)", "(2, 3)", "target.ravel()"]),
    (lambda: F.softmax_cross_entropy_backward(z(2, 3), np.array([[2], [0]], np.uint8)),
     ValueError, ["(2, 1)", "probs has shape (2, 3)", "target.ravel()"]),
    (lambda: F.softmax_cross_entropy(z(0, 3), np.array([], int)), ValueError, ["(0, 3)", "empty"]),
    (lambda: F.softmax_cross_entropy(z(3), np.array([0])), ValueError, ["logits", "2-D"]),
    (lambda: F.softmax_cross_entropy_backward(z(3), np.array([0])), ValueError, ["probs", "2-D"]),
    (lambda: F.softmax_cross_entropy_backward(z(2, 3), np.array([0, 1, 2])), ValueError,
     ["labels", "(3,)", "probs has 2 rows"]),
    (lambda: F.softmax_cross_entropy_backward(z(2, 3), z(2, 4)), ValueError,
     ["one-hot", "(2, 4)", "probs has shape (2, 3)"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), np.ma.masked_array([1, 0], mask=[0, 1])),
     TypeError, ["labels", "masked"]),
    (lambda: F.max_pool1d_backward(z(1, 1, 2), np.ma.masked_array([[[0, 1]]], mask=[[[0, 1]]]),
                                   4), TypeError, ["indices", "masked"]),
    (lambda: F.mse(z(3), z(4)), ValueError, ["y", "(3,)", "(4,)"]),
    (lambda: F.mse(z(0), z(0)), ValueError, ["empty"]),
    (lambda: F.binary_cross_entropy(np.array([1.5], f32), z(1)), ValueError, ["p", "[0, 1]"]),
    (lambda: F.binary_cross_entropy(np.array([np.inf], f32), z(1)), ValueError, ["p", "inf"]),
    # PyTorch refuses targets outside [0, 1] too; an inf target gave NaN in one backend, inf in
    # the other
    (lambda: F.binary_cross_entropy(z(2), np.array([0.5, 2.0], f32)), ValueError,
     ["t", "[0, 1]", "2.0"]),
    (lambda: F.binary_cross_entropy_backward(z(1), np.array([-np.inf], f32)), ValueError,
     ["t", "-inf"]),
    (lambda: F.sgd_update_(z(3), z(3), float("nan")), ValueError, ["lr", "nan"]),
    (lambda: F.sgd_update_(z(3), z(3), -0.1), ValueError, ["lr", "-0.1"]),
    (lambda: F.sgd_update_(z(3), z(3), "0.1"), TypeError, ["lr"]),
    (lambda: F.sgd_update_(z(3), z(4), 0.1), ValueError, ["grad", "(4,)", "(3,)"]),
    (lambda: F.sgd_update_(z(4, 2)[:, 0], z(4), 0.1), ValueError, ["param", "C-contiguous"]),
    (lambda: F.sgd_update_([0.0, 1.0], z(2), 0.1), TypeError, ["param", "in place"]),
    (lambda: F.adagrad_update_(z(3), z(3), z(3, dtype=f64), 0.1), TypeError, ["h", "float64"]),
    (lambda: F.adagrad_update_(z(3), z(3), z(3), 0.1, eps=0), ValueError, ["eps"]),
    (lambda: F.adam_update_(z(3), z(3), z(3), z(3), 0), ValueError, ["step", "0"]),
    (lambda: F.adam_update_(z(3), z(3), z(3), z(2), 1), ValueError, ["v", "(2,)"]),
    # the odd one out is named: it said "grad has dtype float32 but the other inputs are float64"
    (lambda: F.adam_update_(z(3, dtype=f64), z(3), z(3), z(3), 1), TypeError,
     ["param float64, grad float32, m float32, v float32", "cast param to float32"]),
    (lambda: F.momentum_update_(z(3), z(3), z(3), 0.1, momentum=float("inf")), ValueError, ["momentum"]),
    (lambda: F.rmsprop_update_(z(3), z(3), z(3), 0.1, rho=1.5), ValueError, ["rho", "1.5"]),
    # found by an independent fuzzing pass
    (lambda: F.adam_update_(z(3), z(3), z(3), z(3), 1, eps=1e-50), ValueError, ["eps", "1e-50", "float32"]),
    (lambda: F.adagrad_update_(z(3), z(3), z(3), 0.1, eps=1e-50), ValueError, ["eps", "float32"]),
    (lambda: F.adagrad_update_(z(3), z(3), z(3), float("inf")), ValueError, ["lr", "inf"]),
    (lambda: F.adagrad_update_(z(3), z(3), z(3), -0.0 - 1e-300), ValueError, ["lr", ">= 0"]),
    (lambda: F.adagrad_update_(z(3), z(3), z(3), 0.1, eps=0.0), ValueError, ["eps", "> 0"]),
    (lambda: F.adagrad_update_(z(3), z(3), z(3), 0.1, eps=float("nan")), ValueError,
     ["eps", "nan"]),
    (lambda: F.adagrad_update_(z(3), z(3), z(3), 0.1, eps=float("inf")), ValueError,
     ["eps", "inf"]),
    (lambda: F.adam_update_(z(3), z(3), z(3), z(3), 2**2000), ValueError, ["step"]),
    (lambda: F.sgd_update_(z(3), z(3), 10**400), ValueError, ["lr", "too large"]),
    (lambda: F.momentum_update_(*(lambda g: (z(3), g, g))(z(3)), 0.1), ValueError, ["velocity", "grad"]),
    (lambda: F.adam_update_(z(3), z(3), *(lambda buf: (buf[:3], buf[1:]))(z(4)), 1), ValueError, ["v", "shares memory with m"]),
    (lambda: F.relu(z(3).astype(">f4")), TypeError, ["x", "byte order", ">f4"]),
    (lambda: F.dense(z(2, 3), z(3, 5).astype(">f4")), TypeError, ["W", "byte order"]),
    (lambda: F.relu(np.ma.masked_array(z(3), mask=[0, 1, 0])), TypeError, ["x", "masked"]),
    (lambda: F.sgd_update_(np.ma.masked_array(z(3)), z(3), 0.1), TypeError, ["param", "masked"]),
    (lambda: F.relu(np.float16(1.0)), TypeError, ["x", "float16"]),
    (lambda: F.conv1d(z(1, 1, 5), z(1, 1, 3), stride=2**63), ValueError, ["stride", str(2**63)]),
    (lambda: F.conv1d(z(1, 1, 5), z(1, 1, 3), stride=4, dilation=3074457345618258603,
                      padding=(0, 2**63 + 1)), ValueError, ["dilation", "2147483647"]),
    (lambda: F.conv1d(z(1, 16, 5), z(1, 16, 1), stride=2**62 + 1, padding=(0, 4)), ValueError, ["stride"]),
    (lambda: F.conv1d_backward(z(1, 1, 1), z(1, 1, 5), z(1, 1, 3), padding=(0, 2**40)), ValueError, ["padding[1]"]),
    (lambda: F.max_pool1d(z(1, 1, 3), 2**40, padding=2**39), ValueError, ["kernel_size", str(2**40)]),
    (lambda: F.avg_pool1d(z(1, 1, 3), 2, stride=2**64), ValueError, ["stride"]),
    # an audit's: an lr that rounds to 0 stepped nothing, silently; momentum 1.5 diverges
    (lambda: F.sgd_update_(z(3), z(3), 1e-50), ValueError, ["lr=1e-50", "smallest normal float32"]),
    (lambda: F.adam_update_(z(3), z(3), z(3), z(3), 1, lr=np.float32(1e-40)), ValueError, ["lr=", "float32"]),
    (lambda: F.adagrad_update_(z(3, dtype=f64), z(3, dtype=f64), z(3, dtype=f64), 1e-320), ValueError,
     ["lr=1e-320", "float64"]),
    (lambda: F.momentum_update_(z(3), z(3), z(3), 0.1, momentum=1.5), ValueError, ["momentum=1.5", "<= 1"]),
    (lambda: SGD(0.1, momentum=1.01), ValueError, ["momentum=1.01", "<= 1"]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_bad_input_raises_clear_error(backend, case):
    assert_raises_naming(*CASES[case])


def test_a_huge_integer_hyper_parameter_is_not_printed_whole():
    """``SGD(10**400)`` printed all 401 digits."""
    with pytest.raises(ValueError) as info:
        SGD(10**400)
    assert str(info.value) == ("SGD: lr is an integer of 401 digits, too large for a float; "
                               "expected a finite number")


@pytest.mark.parametrize("make, words", [
    (lambda: fastnet.layers.FC(10**400, 1), "FC: n_nodes1 (an integer of 401 digits); expected"),
    (lambda: fastnet.layers.FC(3, 10**5000), "FC: n_nodes2 (an integer of 5001 digits)"),
    (lambda: fastnet.layers.Conv1d(1, 1, 10**400), "Conv1d: kernel_size (an integer of 401"),
    (lambda: fastnet.layers.Conv1d(10**400, 1, 1), "Conv1d: in_channels (an integer of 401"),
    (lambda: fastnet.initializers.HeInitializer().W(10**20, 1),
     "HeInitializer: n_nodes1=100000000000000000000; expected an integer <= 2147483647"),
    (lambda: fastnet.initializers.HeInitializer().b(10**20), "HeInitializer: n_nodes2="),
    (lambda: fastnet.compat.Linear(10**20, 1), "XavierInitializer: n_nodes1="),
])
def test_huge_sizes_are_value_errors_that_name_the_argument_briefly(make, words):
    """They escaped as OverflowError (``need / 2**30``) or NumPy's "Maximum allowed dimension
    exceeded", or printed hundreds of digits (past 4300, ``str`` itself refuses)."""
    import fastnet.compat
    import fastnet.initializers
    import fastnet.layers
    with pytest.raises(ValueError) as info:
        make()
    assert words in str(info.value) and len(str(info.value)) < 120


@pytest.mark.parametrize("make, exc, words", [
    (lambda: fastnet.optimizers.SGD(0.1, momentum=0.9, nesterov=10**400), TypeError,
     "SGD: nesterov must be True or False; got an integer of 401 digits"),
    (lambda: fastnet.kernels.load("numba").dense_backward(
        *[np.ones(s, np.float32) for s in ((2, 2), (2, 3), (3, 2), (2, 2))], "none", 10**400),
     TypeError, "dense_backward: need_dx=1000"),
    (lambda: fastnet.optimizers.SGD(np.timedelta64(1)), TypeError,
     "SGD: lr must be a real number; got np.timedelta64(1)"),
    (lambda: fastnet.layers.Conv1d(1, 2, 3, stride=np.timedelta64(1)), TypeError,
     "Conv1d: stride must be an integer; got np.timedelta64(1)"),
    (lambda: fastnet.kernels.load("numpy").conv1d_forward(
        np.ones((1, 1, 8), np.float32), np.ones((2, 1, 3), np.float32),
        np.ones(2, np.float32), np.timedelta64(1), 0, 0, 1, "none"), ValueError,
     "conv1d_forward: stride=np.timedelta64(1); expected an integer"),
], ids=["flag", "kernel flag", "lr", "stride", "kernel stride"])
def test_flags_print_huge_integers_briefly_and_time_spans_are_not_numbers(make, exc, words):
    """An audit: a flag printed all 401 digits of 10**400; ``np.timedelta64(1)``, which NumPy
    registers as an integer, was taken as a stride or a learning rate."""
    import fastnet.kernels
    import fastnet.layers
    import fastnet.optimizers
    with pytest.raises(exc) as info:
        make()
    assert words in str(info.value) and len(str(info.value)) < 180


def test_weights_beyond_the_machines_memory_are_refused_before_the_draw():
    from fastnet.initializers import HeInitializer
    with pytest.raises(MemoryError, match=r"HeInitializer: weights of shape \(2147483647, "):
        HeInitializer().W(2**31 - 1, 2**31 - 1)


def test_a_big_endian_dtype_gives_native_arrays():
    """``dtype=">f4"`` gave big-endian weights, which the kernels refused at the first call
    with an error about its input."""
    from fastnet import compat
    from fastnet.data import one_hot
    from fastnet.initializers import HeInitializer
    assert HeInitializer().W(3, 4, dtype=">f4").dtype.isnative
    assert HeInitializer().b(4, dtype=">f8").dtype.isnative
    assert one_hot([0, 2], dtype=">f4").dtype.isnative
    net = compat.TwoLayerNet(4, 5, 3, dtype=">f4")
    assert net.params["W1"].dtype == np.float32 and net.params["W1"].dtype.isnative
    assert net.predict(np.ones((2, 4), np.float32)).shape == (2, 3)
    with pytest.raises(TypeError, match=r"Linear: dtype='foo'; expected np.float32"):
        compat.Linear(3, 4, dtype="foo")


def test_read_only_state_is_rejected(backend):
    h = z(3)
    h.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        F.adagrad_update_(z(3), z(3), h, 0.1)


def test_lists_are_accepted_in_the_default_dtype(backend):
    y = F.relu([[-1.0, 2.0]])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [[0, 2]])


@pytest.mark.parametrize("scalar_type", [np.float32, np.float64])
def test_numpy_float_scalars_set_the_dtype_wherever_they_stand(backend, scalar_type):
    """A NumPy float scalar counts as a 0-d array of its dtype, also after a Python number."""
    s = scalar_type(3.0)
    for got in (F.mse(1.0, s), F.mse(s, 1.0), F.relu_backward(1.0, s), F.relu_backward(s, 1.0),
                F.conv1d([[[1.0, 2.0, 3.0]]], [[[1.0, 1.0]]], s)):
        assert got.dtype == scalar_type
    assert F.mse(1.0, s) == F.mse(s, 1.0) == 4.0
    other = np.float64 if scalar_type == np.float32 else np.float32
    assert_raises_naming(lambda: F.mse(s, other(1.0)), TypeError, ["t", np.dtype(other).name])


def test_lists_take_the_dtype_of_the_arrays_beside_them(backend):
    """Wherever the list stands: dense's x before its W, conv1d's x, a loss's target."""
    W = np.ones((2, 3))
    assert F.dense([[1.0, 2.0]], W).dtype == np.float64
    assert F.dense([[1.0, 2.0]], W.astype(np.float32), [0.5, 0.5, 0.5]).dtype == np.float32
    assert F.conv1d([[[1.0, 2.0, 3.0]]], np.ones((1, 1, 2))).dtype == np.float64
    dx, dW, db = F.dense_backward([[1.0, 1.0, 1.0]], [[1.0, 2.0]], W)
    assert dx.dtype == dW.dtype == db.dtype == np.float64
    z = np.array([[0.0, 2.0], [1.0, -1.0]], dtype=np.float32)
    for one_hot in ([[0, 1], [1, 0]], [[0.0, 1.0], [1.0, 0.0]]):
        # an int list of one-hot rows was a TypeError that advised target.astype
        assert F.softmax_cross_entropy(z, one_hot) == F.softmax_cross_entropy(z, [1, 0])
        np.testing.assert_array_equal(F.softmax_cross_entropy_backward(F.softmax(z), one_hot),
                                      F.softmax_cross_entropy_backward(F.softmax(z), [1, 0]))
        assert F.mse(z, one_hot) == F.mse(z, np.array(one_hot, dtype=np.float32))
        assert F.binary_cross_entropy(F.sigmoid(z), one_hot) == F.binary_cross_entropy(
            F.sigmoid(z), np.array(one_hot, dtype=np.float32))
    # list logits beside a float64 one-hot target: a TypeError said "the other inputs are
    # float32", though the user had passed no float32 array (an audit)
    t = np.array([[0.0, 1.0], [1.0, 0.0]])
    loss = F.softmax_cross_entropy(z.tolist(), t)
    assert loss.dtype == np.float64 and loss == F.softmax_cross_entropy(z.astype(np.float64), t)
    assert F.softmax_cross_entropy_backward(F.softmax(z).tolist(), t).dtype == np.float64


# --- inputs that are valid but unusual: both backends give the same, right answer -----------------

@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_matrix_parameters_are_updated_through_a_plain_view(backend):
    """np.matrix stays 2-D under reshape(-1); a kernel indexing it flat wrote past the buffer."""
    p = np.matrix(np.ones((2, 3)))
    g = np.arange(6.0).reshape(2, 3)
    F.sgd_update_(p, g, 1.0)
    np.testing.assert_array_equal(np.asarray(p), 1 - g)
    m, v = np.matrix(np.zeros((2, 3))), np.matrix(np.zeros((2, 3)))
    F.adam_update_(p, np.ones((2, 3)), m, v, 1, lr=0.5)
    np.testing.assert_allclose(np.asarray(p), 1 - g - 0.5, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(m), 0.1)


def test_numpy_scalars_keep_their_dtype(backend):
    y = F.relu(np.float64(1e-300))
    assert y.dtype == np.float64 and y == 1e-300          # not rounded to float32's 0
    with fastnet.set_default_dtype(np.float64):
        assert F.relu(np.float32(1.5)).dtype == np.float32
    assert F.mse(np.float64(1.0), np.float64(1 + 1e-9)) > 0


@pytest.mark.parametrize("dtype", [f32, f64])
def test_betas_close_to_one_match_the_float64_formula(backend, dtype):
    """1 - beta is rounded once from float64 (beta itself may round to 1.0 in float32)."""
    g = np.full(4, 0.5)
    want, _, _ = naive.adam(np.ones(4), g, np.zeros(4), np.zeros(4), 1e-3, 0.9, 0.99999999,
                            1e-8, 1)
    p = np.ones(4, dtype)
    F.adam_update_(p, g.astype(dtype), np.zeros(4, dtype), np.zeros(4, dtype), 1, lr=1e-3,
                   beta2=0.99999999)
    np.testing.assert_allclose(p, want, rtol=1e-5)
    want, _ = naive.rmsprop(np.ones(4), g, np.zeros(4), 0.01, 0.999999999, 1e-7)
    p = np.ones(4, dtype)
    F.rmsprop_update_(p, g.astype(dtype), np.zeros(4, dtype), 0.01, rho=0.999999999)
    np.testing.assert_allclose(p, want, rtol=1e-4)


def test_max_pool_windows_of_minus_inf_point_at_real_elements(backend):
    x = np.full((1, 1, 4), -np.inf, np.float32)
    y, idx = F.max_pool1d(x, 3, stride=1, padding=1, return_indices=True)
    np.testing.assert_array_equal(idx, [[[0, 0, 1, 2]]])
    assert np.all(y == -np.inf)
    dx = F.max_pool1d_backward(np.ones_like(y), idx, 4)
    np.testing.assert_array_equal(dx, [[[2, 1, 1, 0]]])


def test_only_the_numpy_baseline_follows_numpys_error_handling(backend, dtype):
    """As the README says: the Numba kernels return an inf logit's NaN softmax silently; the
    NumPy baseline is NumPy code, so ``np.seterr(all="raise")`` makes it raise there."""
    z = np.array([[np.inf, 0.0]], dtype)
    with np.errstate(all="raise"):
        if backend == "numpy":
            with pytest.raises(FloatingPointError):
                F.softmax(z)
        else:
            assert np.isnan(F.softmax(z)).all()
