"""Optimizers against hand-written update rules over several steps, both protocols, one instance
serving two layers, hyper-parameter validation."""
import math

import numpy as np
import pytest

from fastnet import compat
from fastnet.layers import FC
from fastnet.optimizers import SGD, AdaGrad, Adam, Momentum, RMSProp
from fastnet.initializers import XavierInitializer


# Hand-written rules on float64 copies: (state, param, grad) -> new param.

def rule_sgd(lr):
    def step(s, p, g):
        return p - lr * g
    return step


def rule_momentum(lr, mu, nesterov):
    def step(s, p, g):
        s["v"] = mu * s.get("v", 0) + g
        return p - lr * (g + mu * s["v"] if nesterov else s["v"])
    return step


def rule_dl_momentum(lr, mu):
    """"Deep Learning from Scratch"'s form: v = mu*v - lr*g; p += v (same trajectory)."""
    def step(s, p, g):
        s["v"] = mu * s.get("v", 0) - lr * g
        return p + s["v"]
    return step


def rule_adagrad(lr, eps):
    def step(s, p, g):
        s["h"] = s.get("h", 0) + g * g
        return p - lr * g / (np.sqrt(s["h"]) + eps)
    return step


def rule_rmsprop(lr, rho, eps):
    def step(s, p, g):
        s["h"] = rho * s.get("h", 0) + (1 - rho) * g * g
        return p - lr * g / (np.sqrt(s["h"]) + eps)
    return step


def rule_adam(lr, b1, b2, eps):
    def step(s, p, g):
        t = s["t"] = s.get("t", 0) + 1
        s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
        m_hat, v_hat = s["m"] / (1 - b1 ** t), s["v"] / (1 - b2 ** t)
        return p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return step


CASES = [
    (lambda: SGD(0.1), rule_sgd(0.1)),
    (lambda: SGD(0.05, momentum=0.9), rule_momentum(0.05, 0.9, False)),
    (lambda: SGD(0.05, momentum=0.8, nesterov=True), rule_momentum(0.05, 0.8, True)),
    (lambda: Momentum(0.05), rule_dl_momentum(0.05, 0.9)),
    (lambda: AdaGrad(0.1), rule_adagrad(0.1, 1e-7)),
    (lambda: compat.AdaGrad(0.1), rule_adagrad(0.1, 1e-8)),
    (lambda: RMSProp(0.01, rho=0.9), rule_rmsprop(0.01, 0.9, 1e-7)),
    (lambda: Adam(0.01), rule_adam(0.01, 0.9, 0.999, 1e-8)),
]
IDS = ["sgd", "momentum", "nesterov", "dl-momentum", "adagrad", "compat-adagrad", "rmsprop", "adam"]


@pytest.mark.parametrize("make, rule", CASES, ids=IDS)
def test_update_rules_over_several_steps_one_instance_two_layers(backend, dtype, make, rule):
    """Layer protocol; one optimizer serves two layers whose states must not mix."""
    rng = np.random.default_rng(0)
    opt = make()
    layers = [FC(3, 4, XavierInitializer(seed=1), opt, dtype=dtype),
              FC(4, 2, XavierInitializer(seed=2), opt, dtype=dtype)]
    expected = [{k: v.astype(np.float64) for k, v in layer.params.items()} for layer in layers]
    states = [{k: {} for k in layer.params} for layer in layers]
    for _ in range(5):
        for i, layer in enumerate(layers):
            layer.dW = rng.standard_normal(layer.W.shape).astype(dtype)
            layer.db = rng.standard_normal(layer.b.shape).astype(dtype)
            opt.update(layer)
            for k, g in layer.grads.items():
                expected[i][k] = rule(states[i][k], expected[i][k], g.astype(np.float64))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for layer, exp in zip(layers, expected):
        for k, p in layer.params.items():
            assert p.dtype == dtype
            np.testing.assert_allclose(p, exp[k], rtol=rtol, atol=rtol)


@pytest.mark.parametrize("make, rule", CASES, ids=IDS)
def test_dict_protocol_updates_in_place(make, rule):
    rng = np.random.default_rng(1)
    params = {"W1": rng.standard_normal((3, 2)), "b1": rng.standard_normal(2)}
    held = dict(params)                                   # others holding the same arrays
    expected = {k: v.copy() for k, v in params.items()}
    states = {k: {} for k in params}
    opt = make()
    for _ in range(4):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        opt.update(params, grads)
        for k in params:
            expected[k] = rule(states[k], expected[k], grads[k])
    for k in params:
        assert params[k] is held[k]
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-12)


def test_adagrad_accumulates_the_bias_too():
    """The notebook overwrote the bias accumulator (hb = db*db): with a constant gradient its
    bias kept stepping by lr; with h += g*g the steps shrink like 1/sqrt(t)."""
    b = np.zeros(1)
    opt = AdaGrad(1.0)
    steps = []
    for _ in range(4):
        before = b.copy()
        opt.update({"b": b}, {"b": np.array([2.0])})
        steps.append(float(before[0] - b[0]))
    np.testing.assert_allclose(steps, [1 / math.sqrt(t) for t in range(1, 5)], rtol=1e-6)


def test_notebook_style_layer_without_params_dict():
    class NotebookFC:
        def __init__(self):
            self.W, self.b = np.ones((2, 2)), np.zeros(2)
            self.dW, self.db = np.full((2, 2), 0.5), np.ones(2)
    fc = NotebookFC()
    SGD(0.1).update(fc)
    np.testing.assert_allclose(fc.W, 0.95)
    np.testing.assert_allclose(fc.b, -0.1)


def test_state_round_trip_and_keys():
    p, g = np.zeros(3), np.ones(3)
    a = Adam(0.1)
    a.update({"p": p}, {"p": g})
    state = {k: v.copy() for k, v in a.state_of(p).items()}
    assert int(state["step"]) == 1
    q = p.copy()
    b = Adam(0.1)
    b.set_state(q, state)
    a.update({"p": p}, {"p": g})
    b.update({"p": q}, {"p": g})
    np.testing.assert_array_equal(p, q)
    assert a.state_of(np.zeros(3)) == {}


def test_adam_refuses_a_negative_step_count():
    """A tampered or corrupt state (a saved model's) fails when it is installed, not at the
    next update."""
    state = {"m": np.zeros(3), "v": np.zeros(3), "step": np.array(-4)}
    with pytest.raises(ValueError, match="state 'step' is -4"):
        Adam(0.1).set_state(np.zeros(3), state)


def test_adam_step_count_saturates_at_2_53_instead_of_failing():
    """A count of 2**53 (loaded from a file, say) keeps updating: beta**step is 0 there for every
    allowed beta, so the step equals an unsaturated one, computed by hand."""
    lr, beta1, beta2, eps = 0.1, 0.9, 0.999, 1e-8
    g = np.array([0.5, -2.0, 3.0])
    p = np.zeros(3)
    opt = Adam(lr, beta1, beta2, eps)
    opt.set_state(p, {"m": np.zeros(3), "v": np.zeros(3), "step": np.array(2**53 - 1)})
    for _ in range(3):
        opt.update({"p": p}, {"p": g})
    assert int(opt.state_of(p)["step"]) == 2**53
    m = v = expected = 0.0
    for _ in range(3):          # bias corrections 1 - beta**2**53 == 1
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g
        expected = expected - lr * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"state 'step' is 9007199254740993"):
        Adam(0.1).set_state(np.zeros(3), {"step": np.array(2**53 + 1)})


def test_dict_update_refuses_parameters_that_overlap():
    """Two views of one buffer would be stepped as if apart (Adam: twice over the shared
    values); refused like tied weights, before any parameter moves."""
    buffer = np.zeros(10)
    params = {"a": buffer[:6], "b": buffer[4:]}
    grads = {"a": np.ones(6), "b": np.ones(6)}
    opt = Adam(0.1)
    with pytest.raises(ValueError, match="parameters a and b overlap in memory"):
        opt.update(params, grads)
    np.testing.assert_array_equal(buffer, 0)
    opt.update({"a": buffer[:5], "b": buffer[5:]}, {"a": np.ones(5), "b": np.ones(5)})
    np.testing.assert_allclose(buffer, -0.1)        # apart they update as usual


@pytest.mark.parametrize("make, match", [
    (lambda: AdaGrad(-1.0), r"AdaGrad: lr=-1.0; expected >= 0"),
    (lambda: AdaGrad(float("nan")), r"AdaGrad: lr=nan; expected a finite number"),
    (lambda: SGD(float("inf")), r"SGD: lr=inf; expected a finite number"),
    (lambda: SGD("0.1"), r"SGD: lr must be a real number"),
    (lambda: SGD(0.1, momentum=-0.5), r"momentum=-0.5"),
    (lambda: SGD(0.1, nesterov=True), r"nesterov=True needs momentum > 0"),
    (lambda: AdaGrad(0.1, eps=0), r"eps=0.0; expected > 0"),
    (lambda: RMSProp(0.1, rho=1.5), r"rho=1.5; expected <= 1"),
    (lambda: Adam(beta1=1.0), r"beta1=1.0"),
])
def test_hyper_parameters_are_validated(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_update_calls():
    opt = SGD(0.1)
    with pytest.raises(TypeError, match="grads missing"):
        opt.update({"W": np.zeros(2)})
    with pytest.raises(ValueError, match="no gradient for 'W'"):
        opt.update(FC(2, 2))
    with pytest.raises(TypeError, match="dtype"):
        opt.update({"W": np.zeros(2, np.float32)}, {"W": np.zeros(2)})
    with pytest.raises(TypeError, match="neither params/grads"):
        opt.update(object())


def test_tied_weights_are_refused_rather_than_stepped_twice():
    """One array under two keys would get two Adam steps (step count 2) per training step, not
    one with the summed gradient as PyTorch takes: refused, naming both places."""
    from fastnet.model import Sequential
    W = np.ones((2, 2))
    with pytest.raises(ValueError, match="'a' and 'b' are the same array"):
        Adam(0.1).update({"a": W, "b": W}, {"a": np.ones((2, 2)), "b": np.ones((2, 2))})
    first, second = FC(4, 4), FC(4, 4)
    second.W = first.W
    net = Sequential([first, second], loss="mse", optimizer=Adam(0.1))
    X = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"'0\.W' and '1\.W' are the same array \(tied"):
        net.fit(X, X, epochs=1)
    y = net.forward(X)
    net.backward(np.ones_like(y))
    with pytest.raises(ValueError, match="tied"):
        net.optimizer.update(net)
    assert net.optimizer.state_of(first.W) == {}            # nothing was stepped


def test_set_state_refuses_negative_squared_gradient_sums():
    """A negative ``v`` made the next Adam update NaN without any error."""
    for opt, key in ((Adam(0.1), "v"), (AdaGrad(0.1), "h"), (RMSProp(0.1), "h")):
        param = np.zeros(3, np.float32)
        state = {k: np.array(v) for k, v in opt._new_state(param).items()}
        for bad in (-1.0, np.nan):
            state[key] = np.array([0, bad, 0], np.float32)
            with pytest.raises(ValueError, match=rf"state '{key}' holds .*never negative"):
                opt.set_state(param, state)


def test_update_with_dicts_names_the_parameter_that_failed():
    params = {"a": np.zeros(3), "b": np.zeros(2)}
    grads = {"a": np.ones(3), "b": np.ones(3)}
    with pytest.raises(ValueError, match=r"SGD\.update, parameter 'b': sgd_update_: grad has "
                                         r"shape \(3,\)"):
        SGD(0.1).update(params, grads)


@pytest.mark.parametrize("make", [lambda: Adam(0.01), lambda: AdaGrad(0.01),
                                  lambda: Momentum(0.01, 0.9)], ids=["Adam", "AdaGrad",
                                                                     "Momentum"])
def test_an_optimizer_keeps_no_parameter_alive(backend, make):
    """An audit: the state held its parameter, so one optimizer reused for a new model per
    trial kept every old model's parameters and state (~9 MB a trial there); a layer whose
    ``W`` was replaced kept the old one likewise. Now a parameter goes when nothing else holds
    it, and its state soon after (when the optimizer's entries have doubled)."""
    import gc
    import weakref
    from fastnet.model import Classifier
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 6)), rng.integers(0, 3, 30)
    optimizer = make()
    old = []
    for _ in range(10):
        model = Classifier([FC(6, 8, activation="relu"), FC(8, 3)], optimizer=optimizer)
        model.fit(X, y, epochs=1, batch_size=10)
        old.append(weakref.ref(model.layers[0].W))
        del model
        gc.collect()
        assert len(optimizer._state) <= 8        # a model's 4, and at most one dead model's
    assert [ref() for ref in old] == [None] * 10 and optimizer.held_states() == []

    layer = FC(6, 3, optimizer=optimizer)
    for _ in range(10):
        layer.forward(X)
        layer.backward(np.ones((30, 3)))
        layer.W = layer.W.copy()                  # a notebook's re-initialisation
        assert len(optimizer._state) <= 8
    held = optimizer.held_states()               # the bias: each W was replaced after its step
    assert len(held) == 1 and held[0][0] is layer.b


def test_the_tied_weights_check_compares_only_arrays_whose_memory_bounds_meet(monkeypatch):
    """An audit's probe: 20 000 parameters in one dict took ~1 min to update, the check for
    views of one buffer comparing every pair. Now only arrays whose bounds overlap are compared
    (none of these), and views that do overlap are still found, whatever their order."""
    from fastnet import optimizers
    calls = []
    for name in ("shares_memory", "may_share_memory"):
        real = getattr(np, name)
        monkeypatch.setattr(np, name, lambda a, b, real=real: calls.append(1) or real(a, b))
    keep = [np.zeros(1) for _ in range(2000)]
    optimizers.refuse_tied({str(i): p for i, p in enumerate(keep)}, "update")
    assert calls == []
    buf = np.zeros(10)
    for params in ({"a": buf[:6], "x": np.zeros(3), "b": buf[5:]},
                   {"b": buf[5:], "x": np.zeros(3), "a": buf[:6]}):
        first, second = list(k for k in params if k != "x")
        with pytest.raises(ValueError, match=f"parameters {first} and {second} overlap"):
            optimizers.refuse_tied(params, "update")
    optimizers.refuse_tied({"even": buf[::2], "odd": buf[1::2]}, "update")   # bounds meet only


def test_an_optimizer_pickled_before_weak_references_loads_with_its_state():
    """Pickles written before the state held weak references keep ``_state`` as a dict by id
    of ``(param, state)``; unpickling one failed on the new list form."""
    import pickle
    p = np.ones(3)
    old = Adam(0.01)
    old.update({"p": p}, {"p": np.ones(3)})
    attributes = dict(old.__dict__)
    attributes["_state"] = {id(p): (p, old.state_of(p))}         # the earlier layout
    new = Adam.__new__(Adam)
    new.__setstate__(attributes)
    assert new.state_of(p) is old.state_of(p)
    copy = pickle.loads(pickle.dumps((p, new)))                    # and round trips from there
    np.testing.assert_array_equal(copy[1].state_of(copy[0])["m"], old.state_of(p)["m"])
