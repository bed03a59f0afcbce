"""Concat (branches on one input) and Transpose: gradients, training, save/load."""
import copy

import numpy as np
import pytest

import fastnet
from fastnet.layers import FC, Conv1d, MaxPool1d, ReLU, Transpose
from fastnet.model import Classifier, Concat, load
from fastnet.optimizers import Adam
from gradcheck import check


def two_view(seed=0):
    he = lambda k: fastnet.initializers.HeInitializer(seed=seed + k)
    return Classifier([
        Concat([[Conv1d(6, 4, 3, padding=1, initializer=he(0)), ReLU(), MaxPool1d(2)],
                [Transpose(), Conv1d(6, 3, 3, padding=1, initializer=he(1), activation="tanh")]]),
        FC(4 * 3 + 3 * 6, 5, he(2))], optimizer=Adam(1e-2))


def test_transpose_swaps_last_axes_and_back():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = Transpose()
    y = t.forward(x)
    assert y.shape == (2, 4, 3) and y.flags.c_contiguous
    np.testing.assert_array_equal(t.backward(y), x)


def test_concat_output_is_branches_side_by_side(backend):
    with fastnet.set_default_dtype(np.float64):
        model = two_view()
    x = np.random.default_rng(0).standard_normal((2, 6, 6))
    concat = model.layers[0]
    out = concat.forward(x)
    a = concat.branches[0].forward(x).reshape(2, -1)
    b = concat.branches[1].forward(x).reshape(2, -1)
    np.testing.assert_array_equal(out, np.concatenate([a, b], axis=1))


@pytest.mark.parametrize("shape", [(2, 31), (2, 29), (1, 30)])
def test_concat_backward_checks_the_shape_of_dout(backend, shape):
    """A wider dout was silently truncated before."""
    concat = two_view().layers[0]
    out = concat.forward(np.zeros((2, 6, 6), np.float32))
    assert out.shape == (2, 30)
    with pytest.raises(ValueError, match=r"dout has shape .* forward output had shape \(2, 30\)"):
        concat.backward(np.zeros(shape, np.float32))


def test_concat_model_gradients_match_finite_differences(backend):
    with fastnet.set_default_dtype(np.float64):
        model = two_view()
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 6, 6)), rng.integers(0, 5, 3)

    def loss():
        return float(fastnet.functional.softmax_cross_entropy(model.forward(x), y))

    _, probs = fastnet.functional.softmax_cross_entropy(model.forward(x), y, return_probs=True)
    dx = model.backward(fastnet.functional.softmax_cross_entropy_backward(probs, y))
    grads = {k: v.copy() for k, v in model.grads.items()}
    check(loss, dx, x, rtol=1e-5, atol=1e-8)
    for key, param in model.params.items():
        check(loss, grads[key], param, rtol=1e-5, atol=1e-8)
    assert set(model.params) == {"0.0.0.W", "0.0.0.b", "0.1.1.W", "0.1.1.b", "1.W", "1.b"}


def test_concat_model_trains_and_reloads_bit_identically(backend, tmp_path):
    model = two_view()
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 6, 6)).astype(np.float32)
    y = (X[:, 0, 0] > 0).astype(np.int64)
    model.fit(X, y, epochs=30, batch_size=10)
    assert model.history["loss"][-1] < model.history["loss"][0] / 2
    path = tmp_path / "two_view.npz"
    model.save(path)
    again = load(path)
    assert type(again.layers[0]) is Concat
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))


def test_empty_concat_is_rejected():
    with pytest.raises(ValueError, match="branches is empty"):
        Concat([])


def test_torch_translation_matches_forward():
    torch = pytest.importorskip("torch")
    from fastnet.benchmarking.epochs import to_torch
    with fastnet.set_default_dtype(np.float64):
        model = two_view()
    x = np.random.default_rng(3).standard_normal((4, 6, 6))
    with fastnet.set_backend("numpy"):
        want = model.forward(x)
    got = to_torch(model, np.float64)(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_concat_names_the_branch_that_breaks_its_contract(backend):
    """Raw NumPy concatenate / broadcast errors, or a silently broadcast gradient, before."""
    class DropsARow(ReLU):
        def forward(self, x):
            return super().forward(x)[1:]

    class WrongGradient(ReLU):
        def backward(self, dout):
            return super().backward(dout)[:, :1]              # broadcasts against (N, 4)

    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"branch 1 returned shape \(2, 4\) for a batch of 3"):
        Concat([[ReLU()], [DropsARow()]]).forward(x)
    cat = Concat([[ReLU()], [WrongGradient()]])
    cat.forward(x)
    with pytest.raises(ValueError, match=r"branch 1's backward returned shape \(3, 1\); the "
                                         r"input had shape \(3, 4\)"):
        cat.backward(np.ones((3, 8), np.float32))
    with pytest.raises(TypeError, match="branches must be a list of branches"):
        Concat(None)
    single = Concat([FC(4, 2), FC(4, 3)])                     # a layer is a one-layer branch
    assert single.forward(x).shape == (3, 5)


class _Refusing(ReLU):
    """A ReLU that refuses its input while ``refuse`` is set (as a layer does on bad input)."""
    refuse = False

    def forward(self, x):
        if self.refuse:
            raise ValueError("refused")
        return super().forward(x)


def test_backward_after_a_forward_that_failed_part_way_is_refused():
    """A failure in the second branch (or a later layer) leaves the first branch (or the earlier
    layers) on the new batch and the rest on the old one: the containers refuse a backward that
    would mix the two, and work again after a forward that succeeds."""
    refusing = _Refusing()
    cat = Concat([[FC(4, 3, dtype=np.float64)], [FC(4, 2, dtype=np.float64), refusing]])
    model = Classifier([cat, FC(5, 3, dtype=np.float64)])
    rng = np.random.default_rng(0)
    x_old, x_new, dout = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)), np.ones((6, 3))
    model.forward(x_old)
    model.backward(dout)
    twin = copy.deepcopy(model)
    refusing.refuse = True
    for container, call in ((cat, lambda: cat.forward(x_new)),
                            (model, lambda: model.forward(x_new))):
        with pytest.raises(ValueError, match="refused"):
            call()
        with pytest.raises(RuntimeError, match="last forward failed part-way"):
            container.backward(np.ones((6, 5)) if container is cat else dout)
    refusing.refuse = False
    np.testing.assert_array_equal(model.forward(x_new), twin.forward(x_new))
    np.testing.assert_array_equal(model.backward(dout), twin.backward(dout))
