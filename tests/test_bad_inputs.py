"""Bad inputs raise a clear ValueError/TypeError naming the argument, on both backends."""
import numpy as np
import pytest

import fastnet.functional as F
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
    (lambda: F.relu_backward(z(3), z(4)), ValueError, ["dout", "(3,)", "(4,)"]),
    (lambda: F.sigmoid_backward(z(3), z(3, dtype=f64)), TypeError, ["y", "float64"]),
    (lambda: F.softmax(z(2, 0)), ValueError, ["x", "(2, 0)"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), np.array([0, 3])), ValueError, ["label 3", "3 classes"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), np.array([-1, 0])), ValueError, ["label -1"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), np.array([0, 1, 2])), ValueError, ["labels", "(3,)", "2 rows"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), np.array([0.0, 1.0])), TypeError, ["integer dtype", "float64"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), z(2, 4)), ValueError, ["one-hot", "(2, 4)", "(2, 3)"]),
    (lambda: F.softmax_cross_entropy(z(2, 3), z(2, 3, dtype=f64)), TypeError, ["target", "float64"]),
    (lambda: F.softmax_cross_entropy(z(0, 3), np.array([], int)), ValueError, ["(0, 3)", "empty"]),
    (lambda: F.softmax_cross_entropy(z(3), np.array([0])), ValueError, ["logits", "2-D"]),
    (lambda: F.mse(z(3), z(4)), ValueError, ["y", "(3,)", "(4,)"]),
    (lambda: F.mse(z(0), z(0)), ValueError, ["empty"]),
    (lambda: F.binary_cross_entropy(np.array([1.5], f32), z(1)), ValueError, ["p", "[0, 1]"]),
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
    (lambda: F.momentum_update_(z(3), z(3), z(3), 0.1, momentum=float("inf")), ValueError, ["momentum"]),
    (lambda: F.rmsprop_update_(z(3), z(3), z(3), 0.1, rho=1.5), ValueError, ["rho", "1.5"]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_bad_input_raises_clear_error(backend, case):
    assert_raises_naming(*CASES[case])


def test_read_only_state_is_rejected(backend):
    h = z(3)
    h.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        F.adagrad_update_(z(3), z(3), h, 0.1)


def test_lists_are_accepted_in_the_default_dtype(backend):
    y = F.relu([[-1.0, 2.0]])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [[0, 2]])
