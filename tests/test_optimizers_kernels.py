"""In-place optimizer updates on both backends against the published update rules."""
import numpy as np
import pytest

import fastnet.functional as F
import naive


def arrays(dtype, shape=(7, 5), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(2)]


@pytest.mark.parametrize("shape", [(3,), (7, 5), (784, 400)])
def test_sgd(backend, dtype, tol, shape):
    p, g = arrays(dtype, shape)
    want = naive.sgd(p.astype(float), g, 0.1)
    p_id = id(p)
    F.sgd_update_(p, g, 0.1)
    assert id(p) == p_id and p.dtype == dtype
    np.testing.assert_allclose(p, want, **tol)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_steps(backend, dtype, tol, nesterov):
    p, g = arrays(dtype)
    v = np.zeros_like(p)
    rp, rv = p.astype(float), v.astype(float)
    for _ in range(2):
        rp, rv = naive.momentum(rp, g.astype(float), rv, 0.05, 0.9, nesterov)
        F.momentum_update_(p, g, v, 0.05, 0.9, nesterov)
    np.testing.assert_allclose(p, rp, **tol)
    np.testing.assert_allclose(v, rv, **tol)


@pytest.mark.parametrize("shape", [(7, 5), (784, 400)])
def test_adagrad_accumulates(backend, dtype, tol, shape):
    p, g = arrays(dtype, shape)
    h = np.zeros_like(p)
    rp, rh = p.astype(float), h.astype(float)
    for k in range(3):   # three steps: the accumulator must grow (the notebook's `h = g*g` bug)
        rp, rh = naive.adagrad(rp, g.astype(float), rh, 0.01, 1e-7)
        F.adagrad_update_(p, g, h, 0.01)
    np.testing.assert_allclose(h, rh, **tol)
    np.testing.assert_allclose(p, rp, **tol)
    np.testing.assert_allclose(h, 3 * g.astype(float) ** 2, **tol)


def test_rmsprop(backend, dtype, tol):
    p, g = arrays(dtype)
    h = np.zeros_like(p)
    rp, rh = p.astype(float), h.astype(float)
    for _ in range(3):
        rp, rh = naive.rmsprop(rp, g.astype(float), rh, 0.01, 0.9, 1e-7)
        F.rmsprop_update_(p, g, h, 0.01, rho=0.9)
    np.testing.assert_allclose(p, rp, **tol)
    np.testing.assert_allclose(h, rh, **tol)


@pytest.mark.parametrize("shape", [(7, 5), (784, 400)])
def test_adam_with_bias_correction(backend, dtype, shape):
    p, g = arrays(dtype, shape)
    m, v = np.zeros_like(p), np.zeros_like(p)
    rp, rm, rv = p.astype(float), m.astype(float), v.astype(float)
    for t in range(1, 4):
        g_t = g * t
        rp, rm, rv = naive.adam(rp, g_t.astype(float), rm, rv, 1e-3, 0.9, 0.999, 1e-8, t)
        F.adam_update_(p, g_t, m, v, t)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(p, rp, rtol=rtol, atol=rtol * 1e-3)
    np.testing.assert_allclose(m, rm, rtol=rtol, atol=1e-7)


def test_first_adam_step_moves_by_lr(backend, dtype):
    # With bias correction the first step is lr * sign(g) (up to eps): a hand-computed case.
    p = np.zeros(3, dtype)
    g = np.array([2.0, -0.5, 1e-3], dtype)
    F.adam_update_(p, g, np.zeros_like(p), np.zeros_like(p), 1, lr=0.1)
    np.testing.assert_allclose(p, [-0.1, 0.1, -0.1], rtol=1e-4)


def test_large_finite_gradients_step_where_their_squares_overflow(backend, dtype):
    """``(1 - beta2) * g * g`` scales before it squares (NumPy's and PyTorch's order): g = 1e20
    in float32 (1e155 in float64) has an infinite g*g but a finite second moment. Hand-computed:
    Adam's first step is lr * sign(g); RMSProp's is lr * g / sqrt(0.01 g^2) = 10 lr * sign(g).
    Reassociated (g*g first), v was inf and neither parameter moved."""
    big = 1e20 if dtype == np.float32 else 1e155
    g = np.array([big, -big, 0.5 * big], dtype)
    with np.errstate(over="ignore"):
        assert np.isinf(g * g).all()
    p = np.zeros(3, dtype)
    F.adam_update_(p, g, np.zeros_like(p), np.zeros_like(p), 1, lr=0.1)
    np.testing.assert_allclose(p, [-0.1, 0.1, -0.1], rtol=1e-5)
    p, h = np.zeros(3, dtype), np.zeros(3, dtype)
    F.rmsprop_update_(p, g, h, 0.1, rho=0.99)
    np.testing.assert_allclose(p, [-1.0, 1.0, -1.0], rtol=1e-5)
    assert np.isfinite(h).all()


@pytest.mark.parametrize("size", [1000, 1 << 17])         # the serial and the parallel loop
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_and_momentum_round_each_product_as_numpy_does(backend, dtype, size, nesterov):
    """Each product is rounded before it is added, as the written rule (and NumPy, PyTorch)
    does: the results equal the rule's in the dtype bit for bit. Fused into an FMA (the Numba
    backend's, once), the last bits differed, and an overflowing ``lr * g`` left a parameter
    at inf where the rule gives ``inf - inf = NaN``."""
    p, g = arrays(dtype, (size,), seed=1)
    v = arrays(dtype, (size,), seed=2)[0]
    lr, mu = dtype(0.1), dtype(0.9)
    want_p = p - lr * g
    F.sgd_update_(p, g, 0.1)
    np.testing.assert_array_equal(p, want_p)
    want_v = mu * v + g
    want_p = p - lr * ((g + mu * want_v) if nesterov else want_v)
    F.momentum_update_(p, g, v, 0.1, 0.9, nesterov)
    np.testing.assert_array_equal(v, want_v)
    np.testing.assert_array_equal(p, want_p)
    # lr * g overflows: inf - inf is NaN, and a finite parameter goes to -inf.
    big = 1e30 if dtype == np.float32 else 1e300
    p = np.array([np.inf, -np.inf, 1.0], dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        F.sgd_update_(p, np.array([1e10, -1e10, 1e10], dtype), big)
    np.testing.assert_array_equal(p, [np.nan, np.nan, -np.inf])
    # mu * v + g overflows: v goes to inf, as the rule's.
    huge = np.finfo(dtype).max
    v = np.array([huge, 3.0], dtype)
    p = np.zeros(2, dtype)
    with np.errstate(over="ignore"):
        F.momentum_update_(p, np.array([huge, 1.0], dtype), v, 0.5, 1.0, False)
    np.testing.assert_array_equal(v, [np.inf, 4.0])


def test_updates_are_in_place_through_views_of_a_dict(backend, dtype):
    params = {"W": np.ones((4, 3), dtype)}
    held = params["W"]
    F.sgd_update_(params["W"], np.ones((4, 3), dtype), 0.5)
    assert params["W"] is held
    np.testing.assert_array_equal(held, 0.5)


@pytest.mark.parametrize("parallel", [False, True])       # below and above PARALLEL_MIN_SIZE
@pytest.mark.parametrize("optimizer", ["momentum", "rmsprop", "adam_m", "adam_v"])
def test_decaying_state_below_the_smallest_normal_is_stored_as_zero(backend, dtype, optimizer,
                                                                  parallel):
    """With a zero gradient the state only decays; a value that decays below the dtype's
    smallest normal number is stored as 0 (subnormal numbers cost ~100 cycles per operation on
    Intel cores, and a dead unit's state decays into them), on both backends. Values that stay
    normal decay as the rule says; NaN and infinities are kept."""
    tiny = np.finfo(dtype).tiny
    rate = {"momentum": 0.9, "rmsprop": 0.99, "adam_m": 0.9, "adam_v": 0.999}[optimizer]
    start = np.array([1.0005 * tiny, -1.0005 * tiny, 0.5 * tiny, 4 * tiny, -4 * tiny, 1.0, 0.0,
                      np.nan, np.inf], dtype)
    if optimizer in ("rmsprop", "adam_v"):              # squares: never negative
        start = np.abs(start)
    start = np.tile(start, 10_000 if parallel else 1)
    p, g = np.ones_like(start), np.zeros_like(start)
    state = start.copy()
    if optimizer == "momentum":
        F.momentum_update_(p, g, state, 0.1, rate)
    elif optimizer == "rmsprop":
        F.rmsprop_update_(p, g, state, 0.1, rho=rate)
    else:
        other = np.zeros_like(start)
        m, v = (state, other) if optimizer == "adam_m" else (other, state)
        F.adam_update_(p, g, m, v, 3, lr=0.1)
    decayed = (start.astype(np.float64) * rate).astype(dtype)
    want = np.where(np.abs(decayed) < tiny, 0, decayed)
    np.testing.assert_array_equal(state, want)
    # the three values that left the normal range, and the zero
    assert np.count_nonzero(state == 0) == 4 * (10_000 if parallel else 1)


def test_nesterov_without_momentum_is_refused_as_the_optimizer_refuses_it(backend, dtype):
    """``SGD(momentum=0, nesterov=True)`` and PyTorch refuse it; the functional API took it."""
    p, g = arrays(dtype)
    before = p.copy()
    with pytest.raises(ValueError, match=r"^momentum_update_: nesterov=True needs momentum > 0"):
        F.momentum_update_(p, g, np.zeros_like(p), 0.1, momentum=0, nesterov=True)
    np.testing.assert_array_equal(p, before)


def test_adam_takes_its_optimizers_own_step_a_0d_integer_array(backend, dtype):
    """``fastnet.optimizers.Adam`` keeps ``state["step"]`` as a 0-d int64 array; the update
    takes it as the number it holds (a 0-d float or bool array is still refused)."""
    p, g = arrays(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    q, mq, vq = p.copy(), m.copy(), v.copy()
    F.adam_update_(p, g, m, v, np.array(3))
    F.adam_update_(q, g, mq, vq, 3)
    np.testing.assert_array_equal(p, q)
    for bad in (np.array(3.0), np.array(True), np.array([3])):
        with pytest.raises(TypeError, match=r"^adam_update_: step must be an integer"):
            F.adam_update_(p, g, m, v, bad)


def test_a_real_hyper_parameter_takes_a_0d_array_of_numbers(backend, dtype):
    p, g = arrays(dtype)
    q = p.copy()
    F.sgd_update_(p, g, np.array(0.1))
    F.sgd_update_(q, g, 0.1)
    np.testing.assert_array_equal(p, q)
    for bad in (np.array(True), np.array("0.1"), np.array([0.1])):
        with pytest.raises(TypeError, match=r"^sgd_update_: lr must be a real number"):
            F.sgd_update_(p, g, bad)
