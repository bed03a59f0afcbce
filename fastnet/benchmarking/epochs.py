"""End-to-end training benchmarks: a fixed number of steps, extrapolated to one MNIST epoch.

(a) the notebooks' MLP 784-400-200-10, ReLU, AdaGrad, batch 20, float64;
(b) the same at batch 128, float32;
(c) the reference Conv1d CNN (``fastnet.models``), batch 128, float32.

Each runs as fastnet's Numba backend, fastnet's NumPy baseline, and the same architecture in
PyTorch (translated layer by layer by :func:`to_torch`, same initial weights, same batches, the
same optimizer rule). Data: synthetic of MNIST's shape by default (``FASTNET_DATA`` set: real
MNIST). The timed quantity is the seconds per training step times the steps of one 60 000-sample
epoch, labelled "extrapolated".

fastnet's members time one ``fit`` call per round, so ``fit``'s once-per-call cost (its checks
and dry run: 2.9 ms for the CNN, an audit measured) is scaled with the steps, where a whole
epoch pays it once: a bias against fastnet of about 3 % of epoch (c) in a full run (30 steps,
x15.6), 10 % in quick mode (10 steps, x46.9). PyTorch's member has no such cost.
"""
import os

import numpy as np

from ..backend import set_default_dtype
from .cases import Case, Unsupported, require, to_numpy, torch_module

MNIST_TRAIN = 60_000


def _data_source():
    return "MNIST (FASTNET_DATA)" if os.environ.get("FASTNET_DATA") else "synthetic"


def _data(n, flatten, dtype):
    """``n`` training samples: MNIST's first when ``FASTNET_DATA`` is set, else uniform noise
    of MNIST's shape with random labels."""
    if os.environ.get("FASTNET_DATA"):
        from ..mnist import load_mnist
        (X, y), _ = load_mnist(flatten=flatten, dtype=dtype)
        # A subset folder would train fewer steps than a row says it extrapolates from.
        if len(X) < n or X.shape[1:] != ((784,) if flatten else (28, 28)):
            raise ValueError(
                f"FASTNET_DATA={os.environ['FASTNET_DATA']}: {len(X)} training images of "
                f"{X.shape[1:]} values; the benchmarks train on up to {n} of MNIST's 28 x 28 "
                f"images; point it at the full MNIST files, or unset it for synthetic data")
        return X[:n], y[:n]
    rng = np.random.default_rng(0)
    X = rng.random((n, 784) if flatten else (n, 28, 28)).astype(dtype)
    return X, rng.integers(0, 10, n)


def _recipe_model(name, dtype, optimizer=None):
    from ..models import RECIPES
    with set_default_dtype(dtype):
        return RECIPES[name].build(seed=0, optimizer=optimizer)


def to_torch(model, dtype):
    """The same network as a ``torch.nn.Module`` with the same weights (for comparisons)."""
    torch = torch_module()
    net = _torch_sequential(torch, model.layers)
    return net.to(torch.float32 if dtype == np.float32 else torch.float64)


def _torch_sequential(torch, layers):
    from ..layers import FC, Conv1d, Flatten, MaxPool1d, ReLU, Sigmoid, Tanh, Transpose
    from ..model import Concat, Sequential
    nn = torch.nn
    acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
            ReLU: nn.ReLU, Sigmoid: nn.Sigmoid, Tanh: nn.Tanh}
    modules = []
    for layer in layers:
        if isinstance(layer, FC):
            lin = nn.Linear(layer.n_nodes1, layer.n_nodes2)
            lin.weight.data = torch.from_numpy(layer.W.T.copy())
            lin.bias.data = torch.from_numpy(layer.b.copy())
            modules += [nn.Flatten(), lin]
            act = layer.activation
            if act is not None:
                modules.append(acts[act if isinstance(act, str) else type(act)]())
        elif isinstance(layer, Conv1d):
            pad = layer.padding
            if isinstance(pad, tuple):
                modules.append(nn.ConstantPad1d(pad, 0.0))
                pad = 0
            conv = nn.Conv1d(layer.in_channels, layer.out_channels, layer.kernel_size,
                             layer.stride, pad, layer.dilation)
            conv.weight.data = torch.from_numpy(layer.W.copy())
            conv.bias.data = torch.from_numpy(layer.b.copy())
            modules.append(conv)
            if layer.activation is not None:
                modules.append(acts[layer.activation]())
        elif isinstance(layer, MaxPool1d):
            modules.append(nn.MaxPool1d(layer.kernel_size, layer.stride, layer.padding))
        elif isinstance(layer, Flatten):
            modules.append(nn.Flatten())
        elif isinstance(layer, Transpose):
            modules.append(_TorchTranspose(torch)())
        elif isinstance(layer, Concat):
            modules.append(_TorchConcat(torch)(
                [_torch_sequential(torch, b.layers) for b in layer.branches]))
        elif isinstance(layer, Sequential):
            modules.append(_torch_sequential(torch, layer.layers))
        elif type(layer) in acts:
            modules.append(acts[type(layer)]())
        else:
            raise Unsupported(f"no torch translation for {layer!r}")
    return torch.nn.Sequential(*modules)


def _torch_parameters(torch, net):
    """``net``'s parameters in the order and layout of the fastnet model's ``params``
    (``nn.Linear`` stores ``W.T``): weight and bias of each layer, depth first."""
    params = []
    for module in net.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d)):
            weight = module.weight.T if isinstance(module, torch.nn.Linear) else module.weight
            params += [weight, module.bias]
    return params


def _TorchTranspose(torch):
    class Transpose(torch.nn.Module):
        def forward(self, x):
            return x.transpose(-1, -2)
    return Transpose


def _TorchConcat(torch):
    class Concat(torch.nn.Module):
        def __init__(self, branches):
            super().__init__()
            self.branches = torch.nn.ModuleList(branches)

        def forward(self, x):
            return torch.cat([b(x).flatten(1) for b in self.branches], dim=1)
    return Concat


def _torch_optimizer(torch, name, params, lr):
    """PyTorch's fastest CPU form of the recipe's optimizer: ``fused=True`` AdaGrad and Adam
    (their default per-parameter loop made PyTorch's epoch (a) 1.4x slower)."""
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=1e-7, fused=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, fused=True)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    return torch.optim.SGD(params, lr=lr)


def epoch_case(label, recipe, batch_size, dtype, steps, torch_dtype=None):
    """A Case timing ``steps`` training steps.

    Every member starts from the recipe's weights (seed 0) and trains on the same batches; its
    callable returns all the parameters, and after the warm-up call each member's must have
    moved from the start as the NumPy baseline's did (:func:`_same_training`). The data are
    loaded when a member is made, not when the case is defined, so a bad ``FASTNET_DATA``
    fails these cases only.
    """
    flatten = recipe == "mlp"

    def make(member):
        X, y = _data(steps * batch_size, flatten, dtype)
        if member == "torch":
            torch = torch_module()
            tdt = torch_dtype or dtype
            net = to_torch(_recipe_model(recipe, tdt), tdt)
            from ..models import RECIPES
            r = RECIPES[recipe]
            opt = _torch_optimizer(torch, r.optimizer, net.parameters(), r.lr)
            tX, ty = torch.from_numpy(X.astype(tdt)), torch.from_numpy(y)
            loss_fn = torch.nn.CrossEntropyLoss()
            params = _torch_parameters(torch, net)

            def train():
                for i in range(0, len(tX), batch_size):
                    opt.zero_grad()
                    loss = loss_fn(net(tX[i:i + batch_size]), ty[i:i + batch_size])
                    loss.backward()
                    opt.step()
                return params
            return train
        model = _recipe_model(recipe, dtype)
        params = list(model.params.values())

        def train():
            model.fit(X, y, epochs=1, batch_size=batch_size, shuffle=False)
            return params
        return train

    scale = MNIST_TRAIN / (steps * batch_size)
    shape = f"batch {batch_size}, {steps} steps -> x{scale:.4g}"
    dtype_label = np.dtype(dtype).name
    if torch_dtype is not None:
        dtype_label += f" (PyTorch {np.dtype(torch_dtype).name})"
    note = (f"{steps} steps timed, extrapolated to one {MNIST_TRAIN}-sample epoch "
            f"(x{scale:.4g}); data: {_data_source()}")
    return Case("epoch", label, shape, dtype_label, "epoch", "mnist", make,
                check=_same_training(recipe, dtype), note=note,
                info={"scale": scale, "data": _data_source()})


def _same_training(recipe, dtype):
    """Check that a member trained as the baseline did: after the warm-up steps, each of its
    parameters differs from the baseline's by at most a fraction of how far the baseline's
    moved from the start (norms per parameter array; every array is compared, so a member
    whose convolutions never trained fails).

    The fraction is ``1e-6`` where the member and the baseline both run float64: rounding
    alone; the two fastnet backends measured at most 3e-14 apart after epoch (a)'s 100 steps,
    4.5e-12 after 300. Elsewhere it is loose, ``0.5``, because training in float32 amplifies
    rounding: AdaGrad's and Adam's first steps move a weight by about ``lr * sign(g)`` whatever
    the size of ``g``, so a gradient near 0 that rounds to the other sign moves it the other
    way. Measured, the largest over the parameters, quick and full runs: 0.10 between fastnet's
    float32 backends, 0.24 for PyTorch (float32; 0.23 against epoch (a)'s float64 baseline).
    Nothing trained would be 1.0, and PyTorch without its ReLUs gave 1.4-1.8. (An audit found
    the earlier check, on the last weight matrix alone at 0.5, passed a member whose
    convolutions never trained, and a float64 member whose loss gradient was 0.1 % off.)
    """
    def check(got, want):
        start = list(_recipe_model(recipe, dtype).params.values())
        require(len(got) == len(want) == len(start),
                f"{len(got)} parameter arrays, the baseline has {len(want)}")
        for i, (g, w, s) in enumerate(zip(got, want, start)):
            g = to_numpy(g)
            require(g.shape == w.shape, f"parameter {i}: shape {g.shape}, baseline {w.shape}")
            tol = 1e-6 if g.dtype == w.dtype == np.float64 else 0.5
            g, w, s = (a.astype(np.float64) for a in (g, w, s))
            moved = float(np.linalg.norm(w - s))
            off = float(np.linalg.norm(g - w))
            require(moved > 0, f"parameter {i}: the NumPy baseline's did not move in training")
            require(off <= tol * moved,
                    f"parameter {i} {w.shape}: differs from the baseline's by {off:.3g}, "
                    f"{off / moved:.3g} of the baseline's move ({moved:.3g}); allowed: {tol:g}")
    return check


#: ``(label, recipe, batch size, dtype, steps in --quick mode, PyTorch's dtype)``; a full run
#: takes ``FULL_RUN`` times the steps.
_EPOCHS = (("epoch (a) MLP AdaGrad", "mlp", 20, np.float64, 100, np.float32),
           ("epoch (b) MLP AdaGrad", "mlp", 128, np.float32, 30, None),
           ("epoch (c) Conv1d CNN", "cnn", 128, np.float32, 10, None))
FULL_RUN = 3
#: Training samples the largest epoch case reads (``FASTNET_DATA`` must hold as many).
MOST_SAMPLES = max(batch * steps * FULL_RUN for _, _, batch, _, steps, _ in _EPOCHS)


def epoch_cases(quick=False):
    for label, recipe, batch, dtype, steps, torch_dtype in _EPOCHS:
        yield epoch_case(label, recipe, batch, dtype, steps * (1 if quick else FULL_RUN),
                         torch_dtype=torch_dtype)
