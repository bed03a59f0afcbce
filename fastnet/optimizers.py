"""Optimizers: in-place parameter updates with state kept per parameter.

Two calling conventions, both in place (arrays are never rebound, so layers, dicts and user code
that hold them all see the update):

* notebook style, ``optimizer.update(layer)``: uses ``layer.params`` and ``layer.grads``
  (dicts with the same keys); a layer without them may instead have ``W``, ``b``, ``dW``,
  ``db`` attributes, as the notebooks' own ``FC`` (or ``W``, ``B``, ``LW``, ``LB``, as the
  1-D convolution notebook's layers; an integer parameter there is replaced once by a float
  copy, as the notebook's own ``B = B - lr*LB`` would make it, and the scalar ``LB`` of its
  one-channel layer updates a bias of shape ``(1,)``);
* "Deep Learning from Scratch" style, ``optimizer.update(params, grads)`` with two dicts.

One instance may serve many layers: its state (velocity, squared-gradient sums, Adam moments
and step counts) is kept per parameter array, keyed by the array's identity. The optimizer holds a
reference to each array it has state for, so an id is never reused while the state lives.

One array under two keys (tied weights) is refused when an update sees both keys (a whole
model, or a dict): it would be stepped once per place. Updates of one layer at a time cannot
see the tie (``Sequential.fit`` checks its model once instead).

Every update is one fused pass of a ``fastnet.functional.*_update_`` kernel. Parameters must be
C-contiguous, writeable float arrays and their gradients of the same dtype and shape.
"""
import weakref
from collections.abc import Mapping

import numpy as np

try:                  # (low, high): the addresses of an array's first byte and one past its last
    from numpy.lib.array_utils import byte_bounds          # NumPy 2
except ImportError:
    byte_bounds = np.byte_bounds                            # NumPy 1.x

from . import _checks as check
from . import functional as F
from ._serialize import register

__all__ = ["Optimizer", "SGD", "Momentum", "AdaGrad", "RMSProp", "RMSprop", "Adam"]


#: The notebooks' two namings of a layer's parameters and gradients. The 1-D convolution
#: notebook's own optimizer gives its layers new arrays (``W = W - lr*LW``), the classifier
#: notebook's updates them in place (``W -= lr*dW``): :meth:`Optimizer.update` does as each.
_NOTEBOOK_NAMES = (("W", "b", "dW", "db"), ("W", "B", "LW", "LB"))
_REBOUND = _NOTEBOOK_NAMES[1]


def _fastnet_arrays(layer):
    """``(params, grads)`` of a layer with those dicts (fastnet's), else None."""
    # getattr, not hasattr then getattr: fastnet's params and grads are properties that build
    # a dict each time
    params, grads = getattr(layer, "params", None), getattr(layer, "grads", None)
    return None if params is None or grads is None else (params, grads)


def _notebook_names(layer):
    """The naming (of :data:`_NOTEBOOK_NAMES`) of a notebook-style layer, or None."""
    return next((names for names in _NOTEBOOK_NAMES if all(hasattr(layer, a) for a in names)),
                None)


def layer_arrays(layer):
    """``(params, grads)`` dicts of a layer (fastnet's, or a notebook-style W/b/dW/db object)."""
    arrays = _fastnet_arrays(layer)
    if arrays is not None:
        return arrays
    names = _notebook_names(layer)
    if names is not None:
        params, grads = {}, {}
        for key, grad_name in zip(("W", names[1]), names[2:]):
            params[key], grads[key] = _float_pair(layer, key, grad_name)
        return params, grads
    raise TypeError(f"update: {type(layer).__name__} has neither params/grads dicts nor W, b, "
                    f"dW, db (or W, B, LW, LB) attributes; call update(params, grads) with two "
                    f"dicts instead")


def _float_pair(layer, name, grad_name):
    """``layer.<name>`` and its gradient, parameters of a notebook's own layer, as float arrays.

    Such a layer may hold integers there: the 1-D convolution notebook's bias is
    ``np.array([1, 2, 3])`` and its gradients sum integer deltas. Its own optimizer rebinds
    ``B = B - lr*LB``, which makes the bias float. Here a non-float gradient is cast to the
    parameter's float dtype (float64 for an integer parameter), and a non-float parameter is
    replaced once by a float copy, then updated in place like any other.
    """
    value, grad = getattr(layer, name), getattr(layer, grad_name)
    owner = type(layer).__name__
    if grad is not None and not _is_float_array(grad):
        dtype = value.dtype if _is_float_array(value) else np.float64
        grad = check.cast_real("update", f"{owner}.{grad_name}", grad, dtype)
    if not _is_float_array(value):
        dtype = grad.dtype if _is_float_array(grad) else np.float64
        value = np.array(check.cast_real("update", f"{owner}.{name}", value, dtype))
        setattr(layer, name, value)
    if grad is not None and np.ndim(grad) == 0 and value.shape == (1,):
        # The one-channel layer's LB = np.sum(dA) is a scalar for its bias B of shape (1,);
        # its own B - lr*LB broadcasts.
        grad = np.reshape(grad, (1,))
    return value, grad


def _is_mapping(x):
    # dict first: an abstract base class's isinstance costs ~0.3 us, twice per layer and step
    return type(x) is dict or isinstance(x, Mapping)


def _is_float_array(a):
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def refuse_tied(params, op):
    """Raise if one array appears under two keys of ``params`` (tied weights), or two arrays are
    views sharing memory: each place would be stepped on its own, which for stateful rules (Adam,
    AdaGrad, ...) is not one step with the summed gradient."""
    seen = {}
    for key, param in params.items():
        first = seen.setdefault(id(param), key)
        if first != key:
            raise ValueError(f"{op}: parameters {first!r} and {key!r} are the same array (tied "
                             f"weights); fastnet's optimizers step each parameter once per "
                             f"place, so tied weights are not supported: give each layer its "
                             f"own array")
    # A sweep over the arrays' memory bounds, lowest first: each is compared only with those
    # whose bounds reach past its start (a pair at a time, all pairs, took minutes for 20 000
    # parameters); shares_memory settles a pair whose bounds overlap (strided views may not).
    arrays = sorted((byte_bounds(p), i, key, p) for i, (key, p) in enumerate(params.items())
                    if isinstance(p, np.ndarray) and p.size)
    reaching = []                                # (high, i, key, p) of the arrays so far
    for (low, high), i, key, p in arrays:
        reaching = [entry for entry in reaching if entry[0] > low]
        for _, j, other, q in reaching:
            if np.shares_memory(p, q):
                first, second = (other, key) if j < i else (key, other)
                raise ValueError(f"{op}: parameters {first} and {second} overlap in memory "
                                 f"(views of one buffer); each would be updated as if it stood "
                                 f"apart: give each layer its own array")
        reaching.append((high, i, key, p))


_LAST_STEP = 2**53          # Adam's step count saturates here (see Adam._step)


def _reference(param):
    """A weak reference to ``param``, or for an object that takes none (a notebook's int bias)
    a callable that returns it, holding it."""
    try:
        return weakref.ref(param)
    except TypeError:
        return lambda: param


def _zeros(param):
    return np.zeros(np.shape(param), dtype=getattr(param, "dtype", None))


class Optimizer:
    """Base class: subclasses define ``_new_state(param)`` and ``_step(param, grad, state)``."""

    def __init__(self, lr):
        self.lr = self._hyper("lr", lr, low=0)
        self._state = {}            # id(param) -> (weak reference to param, state dict)

    def _hyper(self, name, value, **bounds):
        return check.real(type(self).__name__, name, value, **bounds)

    # --- the two protocols -------------------------------------------------------------------

    def update(self, params, grads=None):
        """Update parameters in place.

        Parameters
        ----------
        params : layer or dict of ndarray
            A layer (its ``params``/``grads`` are used) or a dict of parameter arrays.
        grads : dict of ndarray, optional
            Gradients with the keys of ``params``; required when ``params`` is a dict.
        """
        # One layer's W and b are never one array; a whole model or two dicts may hold one twice
        # (fit checks its model once, so its per-layer updates skip this).
        may_tie = grads is not None or hasattr(params, "named_leaves")
        rebound = None
        if grads is None:
            if isinstance(params, dict):
                raise TypeError(f"{type(self).__name__}.update(params, grads): grads missing; "
                                f"pass the gradients dict (or pass a layer alone)")
            layer = params
            params, grads = layer_arrays(layer)
            if _fastnet_arrays(layer) is None and _notebook_names(layer) == _REBOUND:
                rebound = layer
        if not (_is_mapping(params) and _is_mapping(grads)):
            raise TypeError(f"{type(self).__name__}.update(params, grads): expected two dicts "
                            f"keyed alike (or a layer alone); got {type(params).__name__} and "
                            f"{type(grads).__name__}")
        if may_tie:
            refuse_tied(params, f"{type(self).__name__}.update")
        for key, param in params.items():
            grad = grads.get(key)
            if grad is None:
                raise ValueError(f"{type(self).__name__}.update: no gradient for {key!r}; run "
                                 f"backward before updating")
            if rebound is not None:
                param = self._rebind(rebound, key, param)
            try:
                self._step(param, grad, self._state_for(param))
            except (ValueError, TypeError) as err:         # which of the arrays it was
                raise check.with_context(err, f"{type(self).__name__}.update, parameter "
                                              f"{key!r}: {err}") from None

    def _rebind(self, layer, key, param):
        """A copy of ``param`` set on ``layer`` in its place, with the state kept for it, to be
        updated in place: the 1-D convolution notebook's layers (``W, B, LW, LB``) hold the
        caller's own ``w`` and ``b``, which its optimizer never changes (``W = W - lr*LW``).
        Updated in place, the caller's ``w`` changed, and so did every layer built from it."""
        copy = np.array(param)
        state = self.state_of(param)
        if state:
            del self._state[id(param)]
            self._state[id(copy)] = (_reference(copy), state)
        setattr(layer, key, copy)
        return copy

    def check_for(self, dtype):
        """Check now that the hyper-parameters can update parameters of ``dtype``.

        ``fit`` calls it for every layer before its first step, so that a bad setting changes
        no parameter. It takes one step of fastnet's own rule on a one-element scratch array,
        through the same checks as :meth:`update`. A subclass with a step rule of its own (its
        own ``_step``, or only its own ``update``) is not run: nothing is checked for it.

        Parameters
        ----------
        dtype : np.float32 or np.float64
            The parameters' dtype.

        Raises
        ------
        ValueError, TypeError
            A setting the dtype cannot take (``eps=1e-50`` is 0 in float32, ``lr=1e39`` inf).
        """
        if type(self)._step in _OWN_STEPS and "_step" not in vars(self):
            scratch = np.zeros(1, dtype)
            self._step(scratch, np.zeros(1, dtype), self._new_state(scratch))

    def _state_for(self, param):
        entry = self._state.get(id(param))
        if entry is not None and entry[0]() is param:
            return entry[1]
        state = self._new_state(param)
        if state:                       # stateless rules (plain SGD) keep nothing
            self._forget_the_dead()
            self._state[id(param)] = (_reference(param), state)
        return state

    #: Entries from which a new state first drops those of parameters that are gone; then
    #: twice the entries left (so a model's many new states cost a pass each only now and then:
    #: a pass per new state was quadratic, minutes for 20 000 parameters).
    _prune_at = 8

    def _forget_the_dead(self):
        """Drop the state of parameters that no longer exist, once there are :attr:`_prune_at`
        entries. The state holds its parameter by a weak reference: a strong one kept every
        parameter the optimizer had updated alive, with its state, for as long as the optimizer
        (an audit: one Adam reused for a new model per trial grew by the old models' sizes, ~9 MB
        a trial); now a dead model's state waits at most until the entries double."""
        if len(self._state) < self._prune_at:
            return
        # A copy of the items, and pop: two threads may create state in one optimizer at once
        # (a Concat's branches side by side), and iterating the live dict raised there.
        dead = [key for key, (ref, _) in list(self._state.items()) if ref() is None]
        for key in dead:
            self._state.pop(key, None)
        self._prune_at = max(type(self)._prune_at, 2 * len(self._state))

    #: State entries that accumulate squared gradients: set_state refuses negative values.
    _squares = ()

    def _new_state(self, param):
        return {}

    def held_states(self):
        """``[(param, state dict), ...]`` for every parameter that still exists."""
        return [(param, state) for param, state in
                ((ref(), state) for ref, state in list(self._state.values()))
                if param is not None]

    def __getstate__(self):
        """For ``copy.deepcopy`` and ``pickle``: each state entry with its parameter itself (a
        weak reference cannot be copied), which the copy shares with the copied layer."""
        attributes = dict(self.__dict__)
        attributes["_state"] = self.held_states()
        return attributes

    def __setstate__(self, attributes):
        """After ``copy.deepcopy`` or ``pickle`` (a copied model, a spawned process): the state
        is keyed by the ids of the *copied* arrays, rebuilt from the parameters that
        :meth:`__getstate__` put beside them (the old ids pointed at the originals: the copy's
        state was silently lost)."""
        self.__dict__.update(attributes)
        entries = attributes["_state"]
        if isinstance(entries, dict):      # pickled by fastnet before weak references: by id
            entries = entries.values()
        self._state = {id(param): (_reference(param), state) for param, state in entries}

    def _step(self, param, grad, state, ops=F):
        """Update ``param`` in place through ``ops``: :mod:`fastnet.functional` (checked), or
        the backend's kernels in ``fit``'s steps that follow a checked one
        (``fastnet._dense_chain``); the functions of both take the same keyword arguments."""
        raise NotImplementedError

    # --- saving ------------------------------------------------------------------------------

    def get_config(self):
        """Constructor arguments (JSON-serialisable)."""
        raise NotImplementedError

    def state_of(self, param):
        """The state arrays kept for ``param`` (empty dict if it has not been updated)."""
        entry = self._state.get(id(param))
        if entry is None or entry[0]() is not param:
            return {}
        return entry[1]

    def set_state(self, param, state):
        """Install ``state`` (as returned by :meth:`state_of`) for ``param``; arrays are copied."""
        fresh = self._new_state(param)
        if set(state) != set(fresh):
            raise ValueError(f"{type(self).__name__}: state keys {sorted(state)}; expected "
                             f"{sorted(fresh)}")
        for key, value in state.items():
            value = np.asarray(value)
            if value.shape != fresh[key].shape or value.dtype != fresh[key].dtype:
                raise ValueError(f"{type(self).__name__}: state {key!r} is {value.dtype} "
                                 f"{value.shape}; expected {fresh[key].dtype} {fresh[key].shape} "
                                 f"(the parameter's)")
            if key in self._squares and not np.all(value >= 0):    # NaN fails too
                raise ValueError(f"{type(self).__name__}: state {key!r} holds "
                                 f"{value[~(value >= 0)].flat[0]}; it is a running sum of "
                                 f"squared gradients, never negative (the next update would "
                                 f"take its square root)")
            fresh[key][...] = value
        self._forget_the_dead()
        self._state[id(param)] = (_reference(param), fresh)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@register()
class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Without momentum ``param -= lr * grad``. With momentum (PyTorch's form)
    ``v = momentum * v + grad``; ``param -= lr * v``, or with ``nesterov=True``
    ``param -= lr * (grad + momentum * v)``. For a constant ``lr`` this is the same trajectory as
    "Deep Learning from Scratch"'s ``v = momentum * v - lr * grad``; ``param += v``.

    Parameters
    ----------
    lr : float >= 0
    momentum : float in [0, 1], default 0
    nesterov : bool, default False (needs ``momentum > 0``)

    Raises
    ------
    ValueError, TypeError
        A non-finite or negative hyper-parameter, a momentum above 1, or ``nesterov`` without
        momentum.
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        super().__init__(lr)
        self.momentum = self._hyper("momentum", momentum, low=0, high=1)
        self.nesterov = check.flag(type(self).__name__, "nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError(f"{type(self).__name__}: nesterov=True needs momentum > 0")

    def _new_state(self, param):
        return {"velocity": _zeros(param)} if self.momentum else {}

    def _step(self, param, grad, state, ops=F):
        if self.momentum:
            ops.momentum_update_(param, grad, state["velocity"], self.lr, self.momentum,
                                 self.nesterov)
        else:
            ops.sgd_update_(param, grad, self.lr)

    def get_config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov}


@register()
class Momentum(SGD):
    """:class:`SGD` with ``momentum=0.9`` by default ("Deep Learning from Scratch"'s Momentum)."""

    def __init__(self, lr=0.01, momentum=0.9, nesterov=False):
        super().__init__(lr, momentum, nesterov)


@register()
class AdaGrad(Optimizer):
    """AdaGrad: ``h += grad * grad``; ``param -= lr * grad / (sqrt(h) + eps)``, per element.

    The form of "Deep Learning from Scratch" (``eps`` outside the square root, default 1e-7;
    PyTorch uses 1e-10). Weights and biases both accumulate: the scratch notebook's AdaGrad wrote
    ``hb = db * db`` (overwriting the bias accumulator each step instead of adding to it), which
    made the bias step ``lr * sign(db)``; that bug is fixed here.

    Parameters
    ----------
    lr : float >= 0, default 0.01
    eps : float > 0, default 1e-7
    """

    def __init__(self, lr=0.01, eps=1e-7):
        super().__init__(lr)
        self.eps = self._hyper("eps", eps, low=0, low_open=True)

    _squares = ("h",)

    def _new_state(self, param):
        return {"h": _zeros(param)}

    def _step(self, param, grad, state, ops=F):
        ops.adagrad_update_(param, grad, state["h"], self.lr, self.eps)

    def get_config(self):
        return {"lr": self.lr, "eps": self.eps}


@register()
class RMSProp(Optimizer):
    """RMSProp: ``h = rho * h + (1 - rho) * grad**2``; ``param -= lr * grad / (sqrt(h) + eps)``.

    Defaults follow "Deep Learning from Scratch" (``lr=0.01``, ``rho=0.99``, ``eps=1e-7``).

    Parameters
    ----------
    lr : float >= 0
    rho : float in [0, 1]
    eps : float > 0
    """

    def __init__(self, lr=0.01, rho=0.99, eps=1e-7):
        super().__init__(lr)
        self.rho = self._hyper("rho", rho, low=0, high=1)
        self.eps = self._hyper("eps", eps, low=0, low_open=True)

    _squares = ("h",)

    def _new_state(self, param):
        return {"h": _zeros(param)}

    def _step(self, param, grad, state, ops=F):
        ops.rmsprop_update_(param, grad, state["h"], self.lr, self.rho, self.eps)

    def get_config(self):
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps}


#: "Deep Learning from Scratch" spells it RMSprop.
RMSprop = RMSProp


@register()
class Adam(Optimizer):
    """Adam with bias correction (PyTorch's form), one step count per parameter.

    ``m = beta1*m + (1-beta1)*g``; ``v = beta2*v + (1-beta2)*g*g``;
    ``param -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``.

    Parameters
    ----------
    lr : float >= 0, default 1e-3
    beta1, beta2 : float in [0, 1), defaults 0.9 and 0.999
    eps : float > 0, default 1e-8
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1 = self._hyper("beta1", beta1, low=0, high=1 - 1e-12)
        self.beta2 = self._hyper("beta2", beta2, low=0, high=1 - 1e-12)
        self.eps = self._hyper("eps", eps, low=0, low_open=True)

    _squares = ("v",)

    def _new_state(self, param):
        return {"m": _zeros(param), "v": _zeros(param),
                "step": np.zeros((), dtype=np.int64)}

    def set_state(self, param, state):
        step = np.asarray(state.get("step", 0))
        if step.shape == () and step.dtype.kind in "iu" and not 0 <= step <= _LAST_STEP:
            raise ValueError(f"{type(self).__name__}: state 'step' is {int(step)}; expected a "
                             f"count of updates, 0 <= step <= 2**53")
        super().set_state(param, state)

    def _step(self, param, grad, state, ops=F):
        # The count stops at 2**53 (exact in float64): beta**step is 0 there already for every
        # allowed beta (<= 1 - 1e-12), so the bias correction no longer changes.
        step = min(int(state["step"]) + 1, _LAST_STEP)
        ops.adam_update_(param, grad, state["m"], state["v"], step=step, lr=self.lr,
                         beta1=self.beta1, beta2=self.beta2, eps=self.eps)
        state["step"][...] = step          # counted only once the update went through

    def get_config(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


#: fastnet's step rules, which :meth:`Optimizer.check_for` may run on a scratch array.
_OWN_STEPS = frozenset(cls._step for cls in (SGD, AdaGrad, RMSProp, Adam))
