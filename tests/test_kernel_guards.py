"""Direct calls of a backend's kernels (``fastnet.kernels.load(name).<kernel>``) go through the
guards of ``kernels/_guards.py``: a call that would make a compiled loop read or write outside
its arrays, or update a copy, raises a clear error on both backends. Before the guards, each
call below crashed the process, returned garbage, or left the caller's array unchanged on the
Numba backend (an independent probe's findings); the NumPy backend wrapped negative indices or
raised NumPy's own errors. The bad values here stay small, so that a missing guard fails its
test instead of crashing the test run."""
import numpy as np
import pytest

import fastnet
from fastnet.kernels import CONTRACT, load


def f(*shape, dtype=np.float32):
    return np.ones(shape, dtype)


def read_only(a):
    a.flags.writeable = False
    return a


def labels(*values):
    return np.array(values, np.int64)


BAD_CALLS = [
    # (kernel, arguments, exception, words of the message)
    ("softmax_cross_entropy_forward", lambda: (f(2, 3), labels(0, 3)), ValueError,
     ["target", "outside [0, 3)", "max 3"]),
    ("softmax_cross_entropy_forward", lambda: (f(2, 3), labels(-1, 0)), ValueError,
     ["target", "outside [0, 3)", "min -1"]),
    ("softmax_cross_entropy_forward", lambda: (f(4, 3), labels(0, 1)), ValueError,
     ["int64 labels (N,)", "logits float32 (4, 3)", "target int64 (2,)"]),
    ("softmax_cross_entropy_backward", lambda: (1.0, f(2, 3), labels(1, 3)), ValueError,
     ["target", "outside [0, 3)"]),
    ("sgd_update_", lambda: (f(5), f(3), 0.1), ValueError,
     ["one shape", "param float32 (5,)", "grad float32 (3,)"]),
    ("sgd_update_", lambda: (f(4, 3).T, f(3, 4), 0.1), ValueError,
     ["param must be C-contiguous"]),
    ("sgd_update_", lambda: (np.ones(3, np.int64), np.ones(3, np.int64), 0.1), TypeError,
     ["param has dtype int64"]),
    ("adagrad_update_", lambda: (f(6), f(6), f(6)[::2], 0.1, 1e-7), ValueError,
     ["h must be C-contiguous"]),
    ("adagrad_update_", lambda: (f(6), f(6), f(4), 0.1, 1e-7), ValueError, ["one shape"]),
    ("adam_update_", lambda: (f(6), f(6), f(2), f(6), 0.1, 0.9, 0.999, 1e-8, 1), ValueError,
     ["m float32 (2,)"]),
    ("adam_update_", lambda: (f(6), f(6), f(6), f(6), 0.1, 0.9, 0.999, 1e-8, 0), ValueError,
     ["step=0"]),
    ("momentum_update_", lambda: (f(3, 2), f(3, 2), np.asfortranarray(f(3, 2)), 0.1, 0.9,
                                  False), ValueError, ["velocity must be C-contiguous"]),
    ("dense_forward", lambda: (f(8, 5), f(6, 4), f(4), "none"), ValueError,
     ["x float32 (8, 5)", "W float32 (6, 4)"]),
    ("dense_forward", lambda: (f(8, 5), f(5, 4), f(1), "none"), ValueError, ["b float32 (1,)"]),
    ("dense_forward", lambda: (f(8, 5), f(5, 4), f(4), "gelu"), ValueError,
     ["activation='gelu'"]),
    ("dense_forward", lambda: (f(8, 5), f(5, 4, dtype=np.float64), f(4), "none"), ValueError,
     ["one dtype"]),
    ("dense_backward", lambda: (f(8, 4), f(8, 5), f(5, 4), f(8, 3), "relu", True), ValueError,
     ["y float32 (8, 3)"]),
    ("relu_backward", lambda: (f(3), f(5)), ValueError, ["dout float32 (3,)", "a float32 (5,)"]),
    ("tanh_forward", lambda: (np.ones(3, np.float16),), TypeError, ["x has dtype float16"]),
    ("softmax_forward", lambda: (f(3),), ValueError, ["expected x (N, C)"]),
    ("mse_forward", lambda: (f(5), f(3)), ValueError, ["t float32 (3,)"]),
    ("bce_backward", lambda: (1.0, f(0), f(0)), ValueError, ["a mean over no elements"]),
    # an audit: NaN, where the other losses refused the empty mean
    ("softmax_cross_entropy_forward", lambda: (f(0, 3), np.zeros(0, np.int64)), ValueError,
     ["a mean over no samples", "logits float32 (0, 3)"]),
    ("conv1d_forward", lambda: (f(1, 1, 8), f(2, 3, 3), f(2), 1, 0, 0, 1, "none"), ValueError,
     ["x float32 (1, 1, 8)", "W float32 (2, 3, 3)"]),
    ("conv1d_forward", lambda: (f(1, 1, 8), f(2, 1, 3), f(2), 1, 0, 0, -2, "none"), ValueError,
     ["dilation=-2"]),
    ("conv1d_forward", lambda: (f(1, 1, 8), f(2, 1, 3), f(2), 1, 2**63, 0, 1, "none"),
     ValueError, ["padding_left=9223372036854775808"]),
    ("conv1d_forward", lambda: (f(1, 1, 2), f(2, 1, 3), f(2), 1, 0, 0, 1, "none"), ValueError,
     ["output length 0"]),
    ("conv1d_backward", lambda: (f(2, 2, 6), f(1, 1, 8), f(2, 1, 3), f(2, 2, 6), "none", 1, 0, 0,
                                 1, True), ValueError, ["(N, C_out, L_out) = (1, 2, 6)"]),
    ("maxpool1d_forward", lambda: (f(1, 1, 8), 0, 1, 0), ValueError, ["kernel_size=0"]),
    ("maxpool1d_forward", lambda: (f(1, 1, 8), 2, 0, 0), ValueError, ["stride=0"]),
    ("maxpool1d_forward", lambda: (f(1, 1, 8), 2, 2, 2), ValueError, ["padding <= kernel_size"]),
    ("maxpool1d_backward", lambda: (f(1, 1, 4), labels(0, 2, 4, 9).reshape(1, 1, 4), 8),
     ValueError, ["argmax holds an index outside [0, 8)", "max 9"]),
    ("maxpool1d_backward", lambda: (f(1, 1, 4), labels(0, 2, -1, 6).reshape(1, 1, 4), 8),
     ValueError, ["min -1"]),
    ("maxpool1d_backward", lambda: (f(1, 1, 4), labels(0, 2, 4, 6).reshape(1, 1, 4), 2),
     ValueError, ["outside [0, 2)"]),
    ("avgpool1d_backward", lambda: (f(1, 1, 3), 8, 2, 2, 0), ValueError,
     ["dout (N, C, 4)", "dout float32 (1, 1, 3)"]),
    ("labels_in_range", lambda: (np.zeros(3, np.int32), 4), ValueError, ["int64 labels"]),
    # A second review's findings: an int32 size wrapped inside the guard's own length check (the
    # call below segfaulted), an empty row was read at [0], and a None bias reached the kernel.
    ("conv1d_forward", lambda: (f(2, 4, 60), f(8, 4, 3), f(8), 1, 0, 0, np.int32(2**31 - 1),
                                "none"), ValueError, ["output length"]),
    ("maxpool1d_forward", lambda: (f(2, 3, 0), 2, 1, 1), ValueError, ["with L >= 1"]),
    ("avgpool1d_forward", lambda: (f(2, 3, 8), 2, 1, np.int32(2**31 - 1)), ValueError,
     ["padding=2147483647"]),
    ("softmax_forward", lambda: (f(2, 0),), ValueError, ["C >= 1"]),
    ("softmax_cross_entropy_forward", lambda: (f(2, 0), labels(0, 0)), ValueError, ["C >= 1"]),
    ("dense_forward", lambda: (f(8, 5), f(5, 4), None, "none"), TypeError,
     ["b must be a plain NumPy array", "got NoneType"]),
    # A third probe's: an np.matrix parameter stayed (1, n) through reshape(-1) and the update
    # wrote past its end; overlapping or shared arrays gave other results than NumPy's; a
    # need_dx of 0.5 left dx unwritten; beta1 = 1 divided by zero.
    ("sgd_update_", lambda: (np.matrix(np.zeros(8)), np.ones((1, 8)), 0.1), TypeError,
     ["param must be a plain NumPy array", "got matrix"]),
    ("sgd_update_", lambda: (lambda a: (a[1:], a[:-1], 1.0))(np.arange(12.0)), ValueError,
     ["param and grad share memory"]),
    ("adam_update_", lambda: (f(6), f(6), *[f(6)] * 2, 0.1, 0.9, 0.999, 1e-8, 1), ValueError,
     ["m and v share memory"]),
    ("adam_update_", lambda: (f(6), f(6), f(6), f(6), 0.1, 1.0, 0.999, 1e-8, 1), ValueError,
     ["beta1=1.0; expected a number in [0, 1)"]),
    ("conv1d_backward", lambda: (f(1, 2, 6), f(1, 3, 8), f(2, 3, 3), f(1, 2, 6), "none", 1, 0, 0,
                                 1, 0.5), TypeError, ["need_dx=0.5; expected True or False"]),
    ("dense_backward", lambda: (f(8, 4), f(8, 5), f(5, 4), f(8, 4), "relu", 2), TypeError,
     ["need_dx=2"]),
    ("relu_forward", lambda: (np.zeros((), np.float32),), ValueError,
     ["at least one dimension"]),
    # A fourth probe's: an infinite dloss gave NaN (Numba) against -inf (NumPy); the functional
    # API refuses it, and so do the guards now, with unchecked hyper-parameters.
    ("softmax_cross_entropy_backward", lambda: (np.inf, f(1, 3), labels(0)), ValueError,
     ["dloss=inf; expected a finite number within float32's range"]),
    ("mse_backward", lambda: (1e308, f(3), f(3)), ValueError, ["within float32's range"]),
    ("sgd_update_", lambda: (f(3), f(3), None), TypeError, ["lr must be a real number"]),
    ("adagrad_update_", lambda: (f(3), f(3), f(3), 2**70, 1e-7), ValueError,
     ["lr is an integer beyond int64"]),
    ("rmsprop_update_", lambda: (f(3), f(3), f(3), 0.1, 1 + 1j, 1e-7), TypeError,
     ["rho must be a real number; got complex"]),
    ("momentum_update_", lambda: (f(3), f(3), f(3), 0.1, np.nan, False), ValueError,
     ["momentum=nan"]),
    ("all_finite", lambda: ([1.0, 2.0],), TypeError, ["a must be a plain NumPy array", "got list"]),
    # The fused backward and update: W's state of another shape, a read-only W, and an input
    # that shares W's memory (read while the update writes W).
    ("dense_backward_adagrad_", lambda: (f(5, 4), f(4, 5), f(3, 4), f(3, 5), f(3, 4), "relu",
                                         True, 0.01, 1e-7), ValueError,
     ["the arrays must have one shape", "h float32 (4, 5)"]),
    ("dense_backward_adagrad_", lambda: (read_only(f(5, 4)), f(5, 4), f(3, 4),
                                         f(3, 5), f(3, 4), "relu", True, 0.01, 1e-7), ValueError,
     ["W is read-only"]),
    ("dense_backward_adagrad_", lambda: (lambda W: (W, f(4, 4), f(4, 4), W, f(4, 4), "none",
                                                    True, 0.01, 1e-7))(f(4, 4)), ValueError,
     ["x and W share memory"]),
    ("dense_backward_adagrad_", lambda: (f(5, 4), f(5, 4), f(3, 4), f(3, 5), f(3, 4), "relu",
                                         True, 0.01, None), TypeError,
     ["eps must be a real number"]),
    # ... with the next batch: of another width, of another dtype, or in W's memory (read after
    # the update wrote W); and the next forward's bias pass.
    ("dense_backward_adagrad_ahead_", lambda: (f(5, 4), f(5, 4), f(3, 4), f(3, 5), f(3, 4),
                                               "relu", True, 0.01, 1e-7, f(2, 4)), ValueError,
     ["expected x_next (N, n_in)", "x_next float32 (2, 4)"]),
    ("dense_backward_adagrad_ahead_", lambda: (f(5, 4), f(5, 4), f(3, 4), f(3, 5), f(3, 4),
                                               "relu", True, 0.01, 1e-7,
                                               f(2, 5, dtype=np.float64)), ValueError,
     ["one dtype", "x_next float64 (2, 5)"]),
    ("dense_backward_adagrad_ahead_", lambda: (lambda W: (W, f(4, 4), f(3, 4), f(3, 4),
                                                          f(3, 4), "none", True, 0.01, 1e-7,
                                                          W[:2]))(f(4, 4)), ValueError,
     ["x_next and W share memory"]),
    ("dense_bias_act_", lambda: (f(3, 4), f(3), "relu"), ValueError,
     ["expected xw (N, n_out) and b (n_out,)", "b float32 (3,)"]),
    ("dense_bias_act_", lambda: (read_only(f(3, 4)), f(4), "relu"), ValueError,
     ["xw is read-only"]),
    ("dense_bias_act_", lambda: (f(3, 4), f(4), "gelu"), ValueError, ["activation='gelu'"]),
]


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("kernel, arguments, exc, words", BAD_CALLS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)])
def test_a_bad_direct_call_gets_a_clear_error(backend, kernel, arguments, exc, words):
    with pytest.raises(exc) as info:
        getattr(load(backend), kernel)(*arguments())
    message = str(info.value)
    assert message.startswith(kernel + ":"), message
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"


def test_an_update_of_a_bad_call_leaves_the_arrays_as_they_were(backend):
    param, grad = np.ones(5, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError):
        load(backend).sgd_update_(param, grad, 0.5)
    np.testing.assert_array_equal(param, 1)


def test_guarded_kernels_take_keywords_and_keep_the_kernels_signature(backend):
    module = load(backend)
    x, W, b = np.ones((2, 3), np.float64), np.ones((3, 4), np.float64), np.zeros(4)
    y = module.dense_forward(x, W=W, b=b, activation="relu")
    np.testing.assert_array_equal(y, 3.0)
    with pytest.raises(TypeError):
        module.dense_forward(x, W, b)                       # activation missing
    import inspect
    for name in CONTRACT:
        assert inspect.signature(getattr(module, name)) == \
            inspect.signature(getattr(module.trusted, name))


def test_fastnet_calls_the_trusted_kernels(backend):
    """The functional API has checked every argument by then; the guards are for direct
    callers, and fastnet's own calls (small ones especially) do not pay for them twice."""
    assert fastnet.backend.kernels() is load(backend).trusted
    for name in CONTRACT:
        assert getattr(load(backend), name) is not getattr(load(backend).trusted, name)
        assert getattr(load(backend), name).__wrapped__ is getattr(load(backend).trusted, name)


def test_a_read_only_gradient_is_fine_a_read_only_parameter_is_not(backend):
    param, grad = np.ones(4, np.float32), np.ones(4, np.float32)
    grad.flags.writeable = False
    load(backend).sgd_update_(param, grad, 0.5)
    np.testing.assert_array_equal(param, 0.5)
    param.flags.writeable = False
    with pytest.raises(ValueError, match="sgd_update_: param is read-only"):
        load(backend).sgd_update_(param, grad, 0.5)


def test_guarded_kernels_pickle_by_their_public_name(backend):
    """``functools.wraps`` gave them the kernels' own module and name, where pickle found
    another object: ``ProcessPoolExecutor.submit(kernel, x)`` failed."""
    import pickle
    module = load(backend)
    for name in CONTRACT:
        assert pickle.loads(pickle.dumps(getattr(module, name))) is getattr(module, name)


def test_numpy_integer_sizes_reach_the_kernel_as_python_ints(backend):
    x, W, b = f(2, 3, 10), f(4, 3, 3), f(4)
    y = load(backend).conv1d_forward(x, W, b, np.int64(2), np.int32(1), np.uint8(1), np.int16(1),
                                     "none")
    np.testing.assert_array_equal(y, load(backend).conv1d_forward(x, W, b, 2, 1, 1, 1, "none"))


@pytest.mark.parametrize("shape", [(0, 16, 28), (0, 1, 28)])
def test_conv1d_backward_of_an_empty_batch_gives_zero_gradients(backend, shape):
    """No batch item wrote the parts that the Numba backend sums dW from: it returned
    uninitialised memory (1e232), where NumPy's gives zeros. (16 channels take the blocked
    path, one the direct loops.)"""
    C_in = shape[1]
    x, W = np.zeros(shape), np.ones((16, C_in, 3))
    dout = np.zeros((0, 16, 26))
    for need_dx in (True, False):
        dx, dW, db = load(backend).conv1d_backward(dout, x, W, dout, "none", 1, 0, 0, 1, need_dx)
        assert dW.shape == W.shape and not dW.any() and db.shape == (16,) and not db.any()
        assert (dx is None) if not need_dx else dx.shape == shape


def test_conv1d_backward_takes_a_read_only_input_without_its_gradient(backend):
    """x stood in for the unused dx: a read-only x made Numba refuse the (never run) writes."""
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((2, 1, 12)), rng.standard_normal((3, 1, 3))
    dout = rng.standard_normal((2, 3, 10))
    module = load(backend)
    want = module.conv1d_backward(dout, x, W, dout, "none", 1, 0, 0, 1, False)
    x.flags.writeable = False
    got = module.conv1d_backward(dout, x, W, dout, "none", 1, 0, 0, 1, False)
    assert got[0] is None
    np.testing.assert_array_equal(got[1], want[1])


def test_numpy_float_scalars_reach_the_kernel_as_python_floats(backend):
    """A float16 dloss was NotImplemented in Numba (NumPy's backend took it)."""
    module = load(backend)
    y, t = np.arange(4, dtype=np.float32), np.zeros(4, np.float32)
    np.testing.assert_array_equal(module.mse_backward(np.float16(2), y, t),
                                  module.mse_backward(2.0, y, t))


def test_softmax_cross_entropy_backward_of_an_empty_batch_is_empty(backend):
    """The NumPy backend divided by N = 0 (ZeroDivisionError); Numba's returned (0, C)."""
    d = load(backend).softmax_cross_entropy_backward(1.0, np.zeros((0, 3)), labels())
    assert d.shape == (0, 3)
