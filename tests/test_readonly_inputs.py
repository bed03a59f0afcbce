"""Read-only inputs (``np.load(..., mmap_mode="r")``, ``np.frombuffer``, their slices) give the
same results as writeable ones and compile nothing new: Numba types a read-only array apart from
a writeable one, so without the copy in the checks every kernel compiled again for it (0.3-3 s
each), and the few-channel conv backward, which hands ``x`` to an unused output slot, failed to
compile at all."""
import sys

import numpy as np
import pytest

import fastnet.functional as F
from fastnet import layers, model, optimizers
from fastnet.initializers import HeInitializer


def _read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def _compiled_signatures():
    """Number of compiled signatures over every Numba dispatcher of the Numba backend."""
    from numba.core.registry import CPUDispatcher
    from fastnet.kernels import numba_backend
    total = 0
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(numba_backend.__name__):
            continue
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher):
                total += len(value.signatures)
    return total


def _calls(dtype):
    """(name, function of the input arrays, input arrays) for the functional entry points."""
    rng = np.random.default_rng(0)
    r = lambda *shape: rng.standard_normal(shape).astype(dtype)
    x, d = r(64), r(64)
    logits, labels, onehot = r(8, 10), rng.integers(0, 10, 8), np.eye(10, dtype=dtype)[:8]
    probs = F.softmax(logits)
    X, W, b, dY = r(6, 12), r(12, 5), r(5), r(6, 5)
    xc, Wc, dyc = r(4, 2, 16), r(3, 2, 3), r(4, 3, 14)            # direct (few-channel) path
    xg, Wg, dyg = r(4, 32, 16), r(48, 32, 3), r(4, 48, 16)        # GEMM path (padding 1)
    xp = r(4, 3, 16)
    _, idx = F.max_pool1d(xp, 2, return_indices=True)
    dp = r(4, 3, 8)
    return [
        ("relu", lambda x: F.relu(x), [x]),
        ("relu_backward", lambda d, x: F.relu_backward(d, x), [d, x]),
        ("sigmoid", lambda x: F.sigmoid(x), [x]),
        ("sigmoid_backward", lambda d, y: F.sigmoid_backward(d, y), [d, F.sigmoid(x)]),
        ("tanh", lambda x: F.tanh(x), [x]),
        ("tanh_backward", lambda d, y: F.tanh_backward(d, y), [d, F.tanh(x)]),
        ("softmax", lambda z: F.softmax(z), [logits]),
        ("softmax_backward", lambda g, p: F.softmax_backward(g, p), [r(8, 10), probs]),
        ("sce labels", lambda z, t: F.softmax_cross_entropy(z, t, return_probs=True),
         [logits, labels]),
        ("sce one-hot", lambda z, t: F.softmax_cross_entropy(z, t, return_probs=True),
         [logits, onehot]),
        ("sce_backward", lambda p, t: F.softmax_cross_entropy_backward(p, t), [probs, labels]),
        ("mse", lambda y, t: F.mse(y, t), [x, d]),
        ("mse_backward", lambda y, t: F.mse_backward(y, t), [x, d]),
        ("dense", lambda X, W, b: F.dense(X, W, b, activation="relu"), [X, W, b]),
        ("dense_backward", lambda g, X, W: F.dense_backward(g, X, W), [dY, X, W]),
        ("conv1d direct", lambda x, W: F.conv1d(x, W), [xc, Wc]),
        ("conv1d_backward direct", lambda g, x, W: F.conv1d_backward(g, x, W, need_dx=False),
         [dyc, xc, Wc]),
        ("conv1d gemm", lambda x, W: F.conv1d(x, W, padding=1), [xg, Wg]),
        ("conv1d_backward gemm", lambda g, x, W: F.conv1d_backward(g, x, W, padding=1),
         [dyg, xg, Wg]),
        ("max_pool1d", lambda x: F.max_pool1d(x, 2, return_indices=True), [xp]),
        ("max_pool1d_backward", lambda g, i: F.max_pool1d_backward(g, i, 16), [dp, idx]),
        ("avg_pool1d", lambda x: F.avg_pool1d(x, 2), [xp]),
        ("avg_pool1d_backward", lambda g: F.avg_pool1d_backward(g, 16, 2), [dp]),
    ]


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("index", range(len(_calls(np.float32))),
                         ids=[name for name, _, _ in _calls(np.float32)])
def test_read_only_inputs_match_writeable_ones_and_compile_nothing(backend, dtype, index):
    name, call, arrays = _calls(dtype)[index]
    want = _as_tuple(call(*arrays))                     # compiles what a writeable call needs
    before = _compiled_signatures()
    got = _as_tuple(call(*[_read_only(a) for a in arrays]))
    assert _compiled_signatures() == before, f"{name}: a read-only input compiled a new kernel"
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("update", ["sgd", "adam"])
def test_a_read_only_gradient_updates_as_a_writeable_one(backend, dtype, update):
    rng = np.random.default_rng(1)
    grad = rng.standard_normal(50).astype(dtype)
    step = {"sgd": lambda p, g, s: F.sgd_update_(p, g, 0.1),
            "adam": lambda p, g, s: F.adam_update_(p, g, s[0], s[1], 1)}[update]
    results = []
    for g in (grad, _read_only(grad), grad):    # the second writeable call counts signatures
        p, state = np.ones(50, dtype), (np.zeros(50, dtype), np.zeros(50, dtype))
        if len(results) == 1:
            before = _compiled_signatures()
        step(p, g, state)
        results.append(p)
    assert _compiled_signatures() == before
    np.testing.assert_array_equal(results[1], results[0])


def test_a_read_only_parameter_is_refused_with_a_fix_that_works(backend):
    p = _read_only(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"param \(shape \(3,\)\) is read-only.*param.copy\(\)"):
        F.sgd_update_(p, np.ones(3, np.float32), 0.1)


def test_fit_trains_a_conv_net_on_a_read_only_memory_map(backend, tmp_path):
    """Batches sliced from ``np.load(mmap_mode="r")`` are read-only; the first Conv1d's backward
    (``need_dx=False``) takes the few-channel path."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.standard_normal((64, 2, 16)).astype(np.float32))
    y = rng.integers(0, 3, 64)
    histories = []
    for X in (np.load(tmp_path / "X.npy", mmap_mode="r"), np.load(tmp_path / "X.npy")):
        net = model.Classifier([layers.Conv1d(2, 4, 3, activation="relu",
                                              initializer=HeInitializer(seed=0)),
                                layers.Flatten(), layers.FC(4 * 14, 3, HeInitializer(seed=1))],
                               optimizer=optimizers.SGD(0.1))
        net.fit(X, y, epochs=2, batch_size=16, shuffle=False)
        histories.append(net.history["loss"])
    assert histories[0] == histories[1]
