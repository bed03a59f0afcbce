"""Layers: forward against NumPy references, backward against finite differences (float64, both
backends), the dtype rule, the params/grads protocol, initializers and bad input."""
import numpy as np
import pytest

import fastnet
import fastnet.functional as F
import naive
from fastnet.initializers import HeInitializer, Initializer, SimpleInitializer, XavierInitializer
from fastnet.layers import (FC, AvgPool1d, Conv1d, Dropout, Flatten, MaxPool1d, ReLU, Sigmoid,
                            Softmax, Tanh, Transpose)
from fastnet.optimizers import SGD
from gradcheck import check

rng = np.random.default_rng(7)


def projected(layer, x, R):
    """Scalar ``sum(layer.forward(x) * R)``, the function the gradient checks differentiate."""
    return lambda: float((layer.forward(x) * R).sum())


def grad_check_layer(layer, x, params=True):
    """Check dx (and dW, db) of ``layer`` at ``x`` against central differences."""
    out = layer.forward(x)
    R = rng.standard_normal(out.shape)
    f = projected(layer, x, R)
    layer.forward(x)
    dx = layer.backward(R)
    check(f, dx, x)
    if params:
        grads = {k: v.copy() for k, v in layer.grads.items()}
        for name, p in layer.params.items():
            check(f, grads[name], p)


# --- gradients ---------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh", "softmax", ReLU(),
                                        Sigmoid(), Tanh(), Softmax()],
                         ids=lambda a: repr(a))
def test_fc_gradients(backend, activation):
    layer = FC(6, 4, SimpleInitializer(0.5, seed=1), activation=activation, dtype=np.float64)
    x = rng.standard_normal((5, 6))
    if activation in ("relu",) or isinstance(activation, ReLU):   # stay off the kink
        x[np.abs(x @ layer.W).min(axis=1) < 1e-2] += 0.3
    grad_check_layer(layer, x)


def test_fc_flattens_nd_input_and_restores_shape(backend):
    layer = FC(12, 3, XavierInitializer(seed=0), dtype=np.float64)
    x = rng.standard_normal((4, 3, 4))
    assert layer.forward(x).shape == (4, 3)
    grad_check_layer(layer, x)
    assert layer.backward(np.ones((4, 3))).shape == (4, 3, 4)


@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2),
                                                       (3, (2, 0), 1), (1, "same", 2)])
def test_conv1d_gradients(backend, stride, padding, dilation):
    layer = Conv1d(3, 2, 3, stride, padding, dilation, HeInitializer(seed=3), dtype=np.float64)
    layer.b[:] = rng.standard_normal(2)
    grad_check_layer(layer, rng.standard_normal((2, 3, 9)))


@pytest.mark.parametrize("layer", [MaxPool1d(2), MaxPool1d(3, 2, 1), AvgPool1d(2),
                                   AvgPool1d(3, 1, 1), Flatten()], ids=repr)
def test_pool_and_flatten_gradients(backend, layer):
    x = rng.permutation(2 * 3 * 8).reshape(2, 3, 8) / 7.0      # distinct values: no max ties
    grad_check_layer(layer, x, params=False)


@pytest.mark.parametrize("layer", [ReLU(), Sigmoid(), Tanh(), Softmax()], ids=repr)
def test_activation_gradients(backend, layer):
    x = rng.standard_normal((4, 5))
    x[np.abs(x) < 1e-2] = 0.5
    grad_check_layer(layer, x, params=False)


def test_dropout_gradient_uses_the_forward_mask(backend):
    layer = Dropout(0.4, seed=0)
    x = rng.standard_normal((50, 40))
    y = layer.forward(x)
    mask = y / x
    assert set(np.round(np.unique(mask), 12)) <= {0.0, round(1 / 0.6, 12)}
    assert 0.3 < np.mean(mask == 0) < 0.5
    dout = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dout), dout * mask, rtol=1e-12)


def test_dropout_is_identity_in_eval_mode_and_seeded():
    x = rng.standard_normal((10, 10))
    assert Dropout(0.5).eval().forward(x) is x
    np.testing.assert_array_equal(Dropout(0.5, seed=3).forward(x), Dropout(0.5, seed=3).forward(x))
    assert not np.array_equal(Dropout(0.5, seed=3).forward(x), Dropout(0.5, seed=4).forward(x))


# --- forward against references --------------------------------------------------------------

def test_fc_forward_matches_reference(backend, dtype, tol):
    layer = FC(7, 5, SimpleInitializer(1.0, seed=2), activation="tanh", dtype=dtype)
    layer.b[:] = rng.standard_normal(5)
    x = rng.standard_normal((3, 7)).astype(dtype)
    np.testing.assert_allclose(layer.forward(x), naive.dense(x, layer.W, layer.b, "tanh"), **tol)


def test_conv_pool_forward_matches_reference(backend, dtype, tol):
    conv = Conv1d(2, 3, 3, stride=2, padding=1, initializer=HeInitializer(seed=0), dtype=dtype)
    x = rng.standard_normal((2, 2, 11)).astype(dtype)
    y = conv.forward(x)
    np.testing.assert_allclose(y, naive.conv1d(x, conv.W, conv.b, 2, 1, 1, 1), **tol)
    ref, _ = naive.maxpool1d(y, 2, 2, 0)
    np.testing.assert_allclose(MaxPool1d(2).forward(y), ref, **tol)


def test_notebook_worked_example_through_conv1d():
    conv = Conv1d(1, 1, 3, dtype=np.float64)
    conv.W[...] = [[[3, 5, 7]]]
    conv.b[...] = 1
    y = conv.forward(np.array([[[1.0, 2, 3, 4]]]))
    np.testing.assert_array_equal(y, [[[35, 50]]])
    np.testing.assert_array_equal(conv.backward(np.array([[[10.0, 20]]])), [[[30, 110, 170, 140]]])


def test_softmax_layer_backward_is_the_exact_jacobian():
    s = Softmax()
    y = s.forward(np.array([[1.0, 2.0, 3.0]]))
    J = np.diag(y[0]) - np.outer(y[0], y[0])
    dout = np.array([[0.3, -1.0, 2.0]])
    np.testing.assert_allclose(s.backward(dout), dout @ J, rtol=1e-12)


# --- protocol -----------------------------------------------------------------------------------

def test_params_are_the_attributes_and_updates_are_in_place():
    opt = SGD(0.1)
    fc = FC(4, 3, XavierInitializer(seed=0), opt, "sigmoid")
    W_before = fc.W.copy()
    assert fc.params["W"] is fc.W and fc.params["b"] is fc.b
    x = rng.standard_normal((2, 4)).astype(np.float32)
    fc.forward(x)
    dout = np.ones((2, 3), np.float32)
    dx = fc.backward(dout)
    assert fc.grads["W"] is fc.dW
    assert fc.params["W"] is fc.W                                # not rebound
    np.testing.assert_allclose(fc.W, W_before - 0.1 * fc.dW, rtol=1e-6)
    y = 1 / (1 + np.exp(-(x @ W_before)))
    np.testing.assert_allclose(dx, (dout * y * (1 - y)) @ W_before.T, rtol=1e-5)  # old W


def test_backward_never_writes_into_dout(backend):
    x = rng.standard_normal((3, 2, 8))
    for layer in [ReLU(), Sigmoid(), Tanh(), Softmax(), MaxPool1d(2), AvgPool1d(2), Flatten(),
                  Dropout(0.5, seed=0), Conv1d(2, 2, 3, dtype=np.float64),
                  FC(16, 4, activation="relu", dtype=np.float64)]:
        out = layer.forward(x)
        dout = rng.standard_normal(out.shape)
        kept = dout.copy()
        layer.backward(dout)
        np.testing.assert_array_equal(dout, kept, err_msg=repr(layer))


def test_dtype_rule(dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    with fastnet.set_default_dtype(dtype):
        fc = FC(4, 2)
        conv = Conv1d(2, 3, 2)
    assert fc.W.dtype == dtype and fc.b.dtype == dtype and conv.W.dtype == dtype
    assert FC(4, 2, dtype=other).W.dtype == other
    assert fc.forward(rng.standard_normal((3, 4)).astype(other)).dtype == dtype   # cast once
    assert fc.forward([[1, 2, 3, 4]]).dtype == dtype                              # lists, ints
    x = rng.standard_normal((3, 4)).astype(dtype)
    fc.forward(x)
    assert fc.X is x                                                   # same dtype: no copy
    assert ReLU().forward(x.astype(other)).dtype == other              # no params: follows input
    for layer in (ReLU(), Sigmoid(), Tanh(), Dropout(0.5, seed=0)):    # a NumPy scalar too: it
        assert layer.forward(other(-1.5)).dtype == other               # was cast to the default



_EVERY_LAYER = [lambda: FC(8, 3, HeInitializer(seed=0)),
                lambda: Conv1d(2, 3, 3, initializer=HeInitializer(seed=0)),
                ReLU, Sigmoid, Tanh, Softmax, lambda: MaxPool1d(2), lambda: AvgPool1d(2),
                Flatten, lambda: Dropout(0.5, seed=0)]


@pytest.mark.parametrize("make", _EVERY_LAYER, ids=lambda m: type(m()).__name__)
def test_every_layer_takes_big_endian_input_and_refuses_a_masked_one(backend, dtype, make):
    """Byte order is not a dtype difference: big-endian floats give the native result. A mask
    would be ignored by the kernels, so masked input is refused (it was dropped silently by the
    parameter-free layers, and by FC/Conv1d when they cast)."""
    x = rng.standard_normal((2, 2, 4)).astype(dtype)
    want = make().forward(x)
    got = make().forward(x.astype(x.dtype.newbyteorder(">")))
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, want)
    for masked in (np.ma.masked_array(x, mask=x > 0), np.ma.masked_array(x.astype(np.float16))):
        with pytest.raises(TypeError, match="masked"):
            make().forward(masked)

@pytest.mark.parametrize("make", _EVERY_LAYER + [Transpose], ids=lambda m: type(m()).__name__)
def test_every_layer_gives_gradients_in_its_forward_dtype(backend, dtype, make):
    """``dout`` of the other float dtype (or a list) is cast to the forward's dtype: the
    parameter-free pooling, reshaping and dropout layers once returned ``dout``'s dtype."""
    other = np.float64 if dtype == np.float32 else np.float32
    with fastnet.set_default_dtype(dtype):                  # FC's and Conv1d's own dtype
        layer = make()
    y = layer.forward(rng.standard_normal((2, 2, 4)).astype(dtype))
    assert y.dtype == dtype
    for dout in (np.ones(y.shape, other), np.ones(y.shape, int).tolist()):
        assert layer.backward(dout).dtype == dtype


def test_activation_objects_are_fused_into_the_dense_kernel():
    fc = FC(3, 2, activation=ReLU())
    assert fc._fused == "relu" and fc._act_layer is None
    fc = FC(3, 2, activation=Softmax())
    assert fc._fused == "none" and isinstance(fc._act_layer, Softmax)


class LeakyReLU(ReLU):
    """A user's activation derived from fastnet's ReLU, with methods of its own."""

    def forward(self, x):
        self._x = np.asarray(x)
        return np.where(self._x > 0, self._x, 0.1 * self._x)

    def backward(self, dout):
        return np.where(self._x > 0, dout, 0.1 * dout)


class Tanh2(Tanh):
    _forward = staticmethod(lambda x: 2 * np.tanh(x))


class PlainReLU(ReLU):
    """Keeps ReLU's methods: still fused."""


@pytest.mark.parametrize("make, fused", [(LeakyReLU, "none"), (Tanh2, "none"),
                                         (PlainReLU, "relu")])
def test_an_activation_subclass_with_methods_of_its_own_is_not_fused(backend, make, fused):
    fc = FC(3, 2, activation=make(), dtype=np.float64)
    assert fc._fused == fused
    fc.W[...] = -1.0
    fc.b[...] = 0.0
    x = np.ones((1, 3))
    expected = {"LeakyReLU": -0.3, "Tanh2": 2 * np.tanh(-3.0), "PlainReLU": 0.0}
    np.testing.assert_allclose(fc.forward(x), expected[make.__name__], rtol=1e-12)
    dx = fc.backward(np.ones((1, 2)))
    slope = {"LeakyReLU": 0.1, "Tanh2": None, "PlainReLU": 0.0}[make.__name__]
    if slope is not None:
        np.testing.assert_allclose(dx, 2 * slope * -1.0, rtol=1e-12)


def test_a_gradient_a_layer_cannot_hold_names_the_layer():
    fc = FC(3, 2, dtype=np.float32)
    fc.forward(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"FC\.backward: the incoming gradient dout \(shape "
                                         r"\(1, 2\)\) holds float64 values up to 1e\+300.*"
                                         r"lower the learning rate"):
        fc.backward(np.full((1, 2), 1e300))


def test_default_initializers_follow_the_activation():
    assert isinstance(FC(3, 2, activation="relu").initializer, HeInitializer)
    assert isinstance(FC(3, 2, activation=ReLU()).initializer, HeInitializer)
    assert isinstance(FC(3, 2).initializer, XavierInitializer)
    assert isinstance(FC(3, 2, activation="tanh").initializer, XavierInitializer)
    assert isinstance(Conv1d(3, 2, 2).initializer, HeInitializer)


# --- initializers -------------------------------------------------------------------------------

def test_initializers_match_the_notebooks_with_the_global_seed():
    np.random.seed(5)
    expected = np.random.randn(30, 20) * np.sqrt(2 / 30)
    np.random.seed(5)
    np.testing.assert_array_equal(HeInitializer().W(30, 20, np.float64), expected)
    np.random.seed(5)
    expected = 0.01 * np.random.randn(30, 20)
    np.random.seed(5)
    np.testing.assert_array_equal(SimpleInitializer(0.01).W(30, 20, np.float64), expected)


def test_simple_initializers_sigma_is_the_notebooks_attribute():
    """The notebooks keep ``self.sigma`` and may read or set it; it was a method here (setting
    it raised "'float' object is not callable" at the next draw)."""
    init = SimpleInitializer(0.01, seed=0)
    assert init.sigma == 0.01 and repr(init) == "SimpleInitializer(0.01)"
    init.sigma = 2.0
    assert abs(init.W(400, 100, np.float64).std() - 2.0) < 0.05
    init.sigma = "big"
    with pytest.raises(TypeError, match="SimpleInitializer: sigma must be a real number"):
        init.W(2, 2)


def test_an_initializer_subclass_implements_std_and_the_earlier_sigma_still_works():
    class Earlier(Initializer):                    # written for the hook's earlier name
        def sigma(self, fan_in):
            return 0.5

    assert abs(FC(400, 100, initializer=Earlier(seed=0), dtype=np.float64).W.std() - 0.5) < 0.01

    class Missing(Initializer):
        pass
    with pytest.raises(NotImplementedError, match="Missing: an Initializer subclass implements "
                                                  "std"):
        FC(3, 2, initializer=Missing())


@pytest.mark.skipif(np.finfo(np.longdouble).max <= np.finfo(np.float64).max,
                    reason="long double is float64 here")
def test_a_long_double_input_beyond_range_names_a_dtype_fastnet_takes():
    """The remedy said "use float128" (refused everywhere) and the value read inf."""
    with pytest.raises(ValueError, match=r"float128 values up to 1e\+300, beyond float32's "
                                         r"range .*; scale the data or use float64$"):
        FC(3, 2).forward(np.full((1, 3), np.longdouble("1e300")))
    with pytest.raises(ValueError, match=r"values up to 1e\+4000, beyond float64's range .*; "
                                         r"scale the data: float64 is the widest"):
        FC(3, 2, dtype=np.float64).forward(np.full((1, 3), np.longdouble("1e4000")))


def test_initializer_seeds_dtypes_and_fan_in():
    a = XavierInitializer(seed=1).W(200, 300)
    assert a.dtype == fastnet.get_default_dtype()
    np.testing.assert_array_equal(a, XavierInitializer(seed=1).W(200, 300))
    assert abs(a.std() - np.sqrt(1 / 200)) < 0.01 * np.sqrt(1 / 200) * 10
    b64 = HeInitializer(seed=1).W(5, 4, np.float64)
    np.testing.assert_array_equal(HeInitializer(seed=1).W(5, 4, np.float32), b64.astype(np.float32))
    gen = np.random.default_rng(0)
    assert not np.array_equal(HeInitializer(gen).W(3, 3), HeInitializer(gen).W(3, 3))
    np.testing.assert_array_equal(HeInitializer(seed=0).b(4), np.zeros(4))
    conv = Conv1d(16, 8, 5, initializer=HeInitializer(seed=0))
    assert abs(conv.W.std() / np.sqrt(2 / (16 * 5)) - 1) < 0.1      # fan-in = C_in * K


def test_notebook_style_initializer_object_is_accepted():
    class MyInit:                                 # only W(n1, n2) and b(n2), float64 output
        def W(self, n1, n2):
            return np.arange(n1 * n2, dtype=float).reshape(n1, n2)

        def b(self, n2):
            return np.ones(n2)
    fc = FC(3, 2, MyInit())
    assert fc.W.dtype == fastnet.get_default_dtype() and fc.b[0] == 1
    conv = Conv1d(2, 4, 3, initializer=MyInit())
    assert conv.W.shape == (4, 2, 3)


# --- bad input --------------------------------------------------------------------------------

def test_wrong_input_sizes_name_the_layer():
    with pytest.raises(ValueError, match=r"FC\(784, 400\).*\(20, 300\).*300 features.*784"):
        FC(784, 400).forward(np.zeros((20, 300), np.float32))
    with pytest.raises(ValueError, match=r"Conv1d.*has 3 channels; expected 28"):
        Conv1d(28, 4, 3).forward(np.zeros((2, 3, 28), np.float32))
    with pytest.raises(ValueError, match=r"\(N, C_in, L\)"):
        Conv1d(1, 4, 3).forward(np.zeros((2, 28), np.float32))
    with pytest.raises(ValueError, match="output length"):
        Conv1d(1, 1, 5).forward(np.zeros((1, 1, 3), np.float32))


@pytest.mark.parametrize("make, match", [
    (lambda: FC(0, 3), "n_nodes1=0"),
    (lambda: FC(3, 2.5), "n_nodes2 must be an integer"),
    (lambda: FC(3, 2, activation="gelu"), "activation='gelu'"),
    (lambda: FC(3, 2, activation=ReLU), "pass an instance"),
    # an initializer class: its unbound W() failed with "'int' object is not iterable"
    (lambda: FC(3, 2, HeInitializer), r"initializer is the class HeInitializer; pass an "
                                      r"instance, HeInitializer\(\)"),
    (lambda: Conv1d(2, 2, 3, initializer=SimpleInitializer), "class SimpleInitializer"),
    (lambda: FC(3, 2, optimizer="sgd"), "no update method"),
    (lambda: FC(3, 2, dtype=np.int32), "dtype"),
    (lambda: Conv1d(2, 2, 3, stride=0), "stride=0"),
    (lambda: Conv1d(2, 2, 3, padding=-1), "Conv1d: padding=-1; expected an integer >= 0"),
    (lambda: Conv1d(2, 2, 3, stride=2, padding="same"), "same"),
    (lambda: Conv1d(2, 2, 3, padding=None), "Conv1d: padding must be an integer; got None"),
    (lambda: Conv1d(2, 2, 3, padding=(1, 2, 3)), r"a \(left, right\) pair"),
    (lambda: MaxPool1d(2, padding=2), "padding must be at most"),
    (lambda: Dropout(1.0), "p=1.0"),
    (lambda: Dropout(float("nan")), "finite"),
    (lambda: SimpleInitializer(-1), "sigma=-1"),
])
def test_bad_constructor_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("padding, dilation", [("same", 2**31 - 1), (2**30, 2**30)])
def test_conv1d_layer_takes_what_conv1d_takes_at_huge_dilations(backend, padding, dilation):
    """The constructor checked its padding by the output length of the shortest valid input,
    whose length (dilation * (K - 1) + 1) alone could pass MAX_SIZE, and refused, naming an L
    the caller never gave (an audit's finding); conv1d takes these and pads the taps away."""
    conv = Conv1d(1, 1, 3, padding=padding, dilation=dilation, dtype=np.float64,
                  initializer=HeInitializer(seed=0))
    x = np.random.default_rng(0).standard_normal((2, 1, 5))
    y = conv.forward(x)
    np.testing.assert_array_equal(y, F.conv1d(x, conv.W, conv.b, padding=padding,
                                              dilation=dilation))
    # Both pad by the dilation: the middle tap reads x, the outer two padding.
    np.testing.assert_allclose(y, conv.W[0, 0, 1] * x + conv.b[0], rtol=1e-12, atol=1e-12)


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="before forward"):
        FC(3, 2).backward(np.zeros((1, 2), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        ReLU().backward(np.zeros(3))


@pytest.mark.parametrize("name, act_layer", [("relu", ReLU), ("sigmoid", Sigmoid), ("tanh", Tanh)])
def test_conv1d_fused_activation_equals_a_separate_layer(backend, name, act_layer):
    make = lambda act: Conv1d(3, 4, 3, stride=2, padding=1, activation=act,   # noqa: E731
                              initializer=HeInitializer(seed=0), dtype=np.float64)
    fused, plain, act = make(name), make(None), act_layer()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9))
    y = fused.forward(x)
    np.testing.assert_allclose(y, act.forward(plain.forward(x)), rtol=1e-12, atol=1e-14)
    d = rng.standard_normal(y.shape)
    np.testing.assert_allclose(fused.backward(d), plain.backward(act.backward(d)),
                               rtol=1e-12, atol=1e-14)
    for key in ("W", "b"):
        np.testing.assert_allclose(fused.grads[key], plain.grads[key], rtol=1e-12, atol=1e-14)
    assert "activation=" + repr(name) in repr(fused)
    with pytest.raises(ValueError, match="activation"):
        Conv1d(3, 4, 3, activation="softmax")


@pytest.mark.parametrize("make, good, bad", [
    (lambda dt: MaxPool1d(4), (3, 2, 64), (2, 3, 2)),              # too short for the window
    (lambda dt: AvgPool1d(4), (3, 2, 64), (2, 3, 2)),
    (lambda dt: FC(6, 3, dtype=dt), (4, 6), (5, 7)),               # wrong feature count
    (lambda dt: Conv1d(2, 3, 5, dtype=dt), (3, 2, 16), (2, 2, 3)),  # shorter than the kernel
    (lambda dt: ReLU(), (3, 4), ([1j],)),                           # complex: refused
])
def test_a_failed_forward_leaves_the_last_good_step_for_backward(backend, dtype, make, good, bad):
    """State recorded before a forward's checks outlived its failure: MaxPool1d then scattered
    its old indices into rows of the failed input's length (a segfault on Numba), and FC
    reshaped dX to the failed input's shape (silently)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(good).astype(dtype)
    layer, fresh = make(dtype), make(dtype)
    if hasattr(layer, "W"):
        fresh.W, fresh.b = layer.W.copy(), layer.b.copy()
    y = layer.forward(x)
    dout = rng.standard_normal(y.shape).astype(y.dtype)
    with pytest.raises((ValueError, TypeError)):
        layer.forward(np.array(bad[0]) if len(bad) == 1 else np.ones(bad, dtype))
    fresh.forward(x)
    np.testing.assert_array_equal(layer.backward(dout), fresh.backward(dout))


@pytest.mark.parametrize("make, shape", [(lambda dt, act: FC(6, 4, activation=act, dtype=dt),
                                          (3, 6)),
                                         (lambda dt, act: Conv1d(2, 3, 3, activation=act,
                                                                 dtype=dt), (3, 2, 9))])
def test_assigning_an_activation_takes_effect_and_is_checked(backend, dtype, make, shape):
    """The kernel's activation was fixed at construction: an assigned one showed in repr and
    in saved files but not in forward, so a saved and reloaded model computed another network."""
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    layer, want = make(dtype, "relu"), make(dtype, "tanh")
    want.W, want.b = layer.W.copy(), layer.b.copy()
    layer.forward(x)
    layer.activation = "tanh"
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones_like(want.forward(x)))        # the forward before used ReLU
    np.testing.assert_array_equal(layer.forward(x), want.forward(x))
    assert layer.get_config()["activation"] == "tanh" and "tanh" in repr(layer)
    with pytest.raises(ValueError, match="activation='bogus'"):
        layer.activation = "bogus"
    assert layer.activation == "tanh"


@pytest.mark.parametrize("p, exc", [(1.5, ValueError), (-0.5, ValueError), (1.0, ValueError),
                                    (float("nan"), ValueError), ("0.5", TypeError),
                                    (None, TypeError)])
def test_dropout_checks_p_when_it_is_assigned(p, exc):
    """Only the constructor checked it: p=1.5 then zeroed everything, -0.5 scaled by 2/3, NaN
    gave NaN, all silently."""
    layer = Dropout(0.2, seed=0)
    with pytest.raises(exc, match="Dropout: p"):
        layer.p = p
    assert layer.p == 0.2
    layer.p = 0.25
    assert layer.p == 0.25


def test_reshaping_layers_and_dropout_check_dout_as_the_other_layers_do(backend):
    """Flatten/Transpose passed complex, string and masked dout on; Dropout in evaluation mode
    passed a dout of any shape; compat's Affine said "x must be a NumPy array" before forward."""
    from fastnet.compat import Affine
    x = np.ones((2, 3, 4), np.float32)
    for layer in (Flatten(), Transpose()):
        y = layer.forward(x)
        for bad in (y.astype(np.complex64), y.astype(str), np.ma.masked_array(y)):
            with pytest.raises(TypeError):
                layer.backward(bad)
        assert layer.backward(y.astype(np.int64)).dtype == np.float32
    drop = Dropout(0.5, seed=0).eval()
    drop.forward(x)
    with pytest.raises(ValueError, match=r"^Dropout\(p=0\.5, seed=0\)\.backward: dout has shape "
                                         r"\(2, 3\) but the forward output had[^{]*$"):
        drop.backward(np.ones((2, 3), np.float32))      # named without its generator's state
    with pytest.raises(RuntimeError, match="before forward"):
        Affine(np.ones((3, 2)), np.zeros(2)).backward(np.ones((1, 2)))


@pytest.mark.parametrize("padding, stored", [
    (np.array([1, 2]), (1, 2)), ([np.int64(2), 0], (2, 0)), (np.int32(1), 1), ("same", "same")])
def test_conv1d_layer_keeps_padding_as_plain_ints(padding, stored, tmp_path):
    """An array or NumPy-integer padding (as ``F.conv1d`` accepts) is kept as Python ints, so
    the layer's repr, a wrong input's error message and save/load work."""
    from fastnet.model import Classifier
    conv = Conv1d(3, 2, 3, padding=padding)
    assert conv.padding == stored and type(conv.padding) is type(stored)
    with pytest.raises(ValueError, match="has 2 channels; expected 3"):
        conv.forward(np.zeros((1, 2, 10), np.float32))
    model = Classifier([conv, Flatten(), FC(2 * conv.forward(np.zeros((1, 3, 10))).shape[2], 3)])
    model.save(tmp_path / "m.npz")
    assert Classifier.load(tmp_path / "m.npz").layers[0].padding == stored


def test_weights_larger_than_the_machine_are_refused_before_drawing(monkeypatch):
    """Linux grants a too-large allocation and kills the process when it is touched: a layer
    whose weights need more than the physical memory (float64 draw plus result) refuses first.
    The machine is made to report 1 GiB, so nothing large is ever allocated here."""
    import os
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": (1 << 30) // 4096}
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    with pytest.raises(MemoryError, match=r"Conv1d: weights of shape \(1, 1, 67108865\) need "
                                          r"about 1\.0 GiB to draw, more than this machine's "
                                          r"1\.0 GiB"):
        Conv1d(1, 1, 2**26 + 1)
    with pytest.raises(MemoryError, match=r"FC\(8192, 16384\): weights of shape"):
        FC(8192, 16384)
    assert FC(64, 32).W.shape == (64, 32)


def test_weights_larger_than_the_memory_available_now_are_refused(monkeypatch):
    """Below the machine's RAM but beyond what the system has left, the draw was granted and
    the process could be killed while it was written. The system is made to report 256 MiB
    available: a draw of 512 MiB is refused, a small one is not."""
    from fastnet import _checks
    monkeypatch.setattr(_checks, "_available_memory", lambda: 2**28)
    with pytest.raises(MemoryError, match=r"FC\(8192, 4096\): weights of shape \(8192, 4096\) "
                                          r"need about 0\.5 GiB to draw, more than the 0\.2 GiB "
                                          r"of memory available now$"):
        FC(8192, 4096)
    assert FC(64, 32).W.shape == (64, 32)


@pytest.mark.parametrize("layer, shape", [
    (lambda: FC(4, 3), (2, 4)), (lambda: Conv1d(2, 3, 3), (1, 2, 5)), (ReLU, (2, 4)),
    (Sigmoid, (2, 4)), (Softmax, (2, 4)), (Flatten, (2, 4)), (Dropout, (2, 4)),
    (lambda: MaxPool1d(2), (1, 2, 4)), (lambda: AvgPool1d(2), (1, 2, 4))])
def test_an_input_that_cannot_be_cast_names_the_layer(layer, shape):
    """A layer called by hand has no model around it to say where it failed; its errors said
    ``layer: input has dtype complex128``, naming no layer."""
    layer = layer()
    with pytest.raises(TypeError, match=rf"^{type(layer).__name__}\.forward: input has dtype "
                                        rf"complex128"):
        layer.forward(np.ones(shape, complex))
