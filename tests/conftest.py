"""Shared fixtures: every behavioural test runs on both backends and both float dtypes."""
import numpy as np
import pytest
from hypothesis import HealthCheck, settings


import fastnet
from fastnet.kernels import BACKENDS

# The backend/dtype fixtures only select what runs; sharing them across hypothesis examples is
# intended. No deadline: first calls include Numba compilation.
settings.register_profile("fastnet", deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile("fastnet")


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Name of the backend under test; it is the current fastnet backend during the test."""
    with fastnet.set_backend(request.param):
        yield request.param


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def kern(backend):
    """The kernel module of the backend under test: its public functions, each behind the guards
    of ``fastnet.kernels._guards`` (the functional API calls ``.trusted``, the same kernels
    without them), so every kernel test also shows the guards let a valid call through."""
    return fastnet.kernels.load(backend)


def tolerance(dtype):
    """(rtol, atol) for comparing a kernel in ``dtype`` with the float64 oracle."""
    return (2e-5, 1e-5) if dtype == np.float32 else (1e-11, 1e-12)


@pytest.fixture
def tol(dtype):
    rtol, atol = tolerance(dtype)
    return dict(rtol=rtol, atol=atol)


def assert_raises_naming(call, exc, words):
    """``call()`` raises ``exc`` and the message contains every one of ``words`` (the argument
    name, the shapes or values received and expected)."""
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"
