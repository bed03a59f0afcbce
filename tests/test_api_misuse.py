"""Misuse of the object API (layers, optimizers, models, data, compat) gets a clear error that
names the argument, never a stray AttributeError/IndexError or a silent wrong answer."""
import numpy as np
import pytest

import fastnet
from fastnet import compat
from fastnet.data import MiniBatch
from fastnet.initializers import HeInitializer
from fastnet.layers import FC, AvgPool1d, Dropout
from fastnet.model import Classifier
from fastnet.optimizers import SGD


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


def test_minibatch_index_error_reports_the_index_given():
    batches = MiniBatch(np.zeros((6, 2)), np.zeros(6, int), 2, seed=0)
    assert len(batches) == 3
    np.testing.assert_array_equal(batches[-3][0], batches[0][0])
    with pytest.raises(IndexError, match=r"batch -4 out of range for 3 batches \(valid: -3 to 2\)"):
        batches[-4]


def test_set_default_dtype_refuses_none():
    with pytest.raises(TypeError, match="None"):
        fastnet.set_default_dtype(None)
