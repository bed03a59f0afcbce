"""The hooks that ``Sequential.fit`` calls (:class:`Callback`) and how ``fit`` calls them.

:class:`Callback` is also importable as ``fastnet.model.Callback``.
"""
from .layers import _claim

__all__ = ["Callback"]


class Callback:
    """Hooks that ``fit`` calls; override any of them (all do nothing here).

    Any object with some of these methods works; this class only documents them.
    """

    #: True for a callback whose ``on_batch_end`` only reads (a progress bar, a log): ``fit``
    #: then still runs an epoch's later steps without the per-call checks
    #: (``fastnet._dense_chain``), as with no per-batch callback at all. One that changes the
    #: model, its optimizers or their settings between batches must leave it False. (``fit``
    #: checks: after one that changed them all the same, the epoch's remaining steps are
    #: checked ones, which take the change or refuse it with a clear error.)
    on_batch_end_reads_only = False

    def on_train_begin(self, model, epochs, n_batches):
        """Before the first epoch; ``n_batches`` per epoch."""

    def on_epoch_begin(self, epoch, n_batches):
        """``epoch`` counts from 0."""

    def on_batch_end(self, batch, loss, n_samples):
        """After each update: batch index (from 0), its loss, its number of samples."""

    def on_epoch_end(self, epoch, logs):
        """``logs``: this epoch's ``loss`` (and ``acc``, ``val_loss``, ``val_acc``) values,
        plus ``seconds``."""

    def on_train_end(self, model):
        """After the last epoch (not called when training fails)."""


HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")


def callback_list(callbacks):
    """``fit``'s ``callbacks`` as a list: one callback object alone is taken as a list of one;
    an entry with none of the hooks (a plain function, say) is an error, not silently idle."""
    if callbacks is None:
        return []
    if any(hasattr(callbacks, hook) for hook in HOOKS):
        callbacks = [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"fit: callbacks must be a list of callback objects; got "
                        f"{type(callbacks).__name__}") from None
    for cb in callbacks:
        if isinstance(cb, type):
            raise TypeError(f"fit: callback {cb.__name__} is a class; pass an instance, "
                            f"{cb.__name__}()")
        if not any(hasattr(cb, hook) for hook in HOOKS):
            raise TypeError(f"fit: callback {cb!r} has none of the hooks {', '.join(HOOKS)}; "
                            f"subclass fastnet.model.Callback and override the ones you need")
    return callbacks


def reads_between_steps(callbacks):
    """Whether a callback's own ``on_batch_end`` (one that only reads, too, but not fastnet's
    learning-rate schedule) may look at the model between steps: ``fit`` then leaves every
    layer's gradients in place at every step (``fastnet._dense_chain`` spends AdaGrad's weight
    gradients at once otherwise)."""
    return _own_batch_end(callbacks, readers_too=True)


def per_batch(callbacks):
    """Whether ``call_hook`` would run an ``on_batch_end`` that may change the model between steps
    (anything but :class:`Callback`'s own, which does nothing, one that says it only reads, or
    fastnet's own learning-rate schedule, ``fastnet.train._LinearDecay``: it sets the
    optimizer's ``lr`` to a float between 0 and its first value, which the steps read anew)."""
    return _own_batch_end(callbacks, readers_too=False)


def _own_batch_end(callbacks, readers_too):
    """Whether a callback has an ``on_batch_end`` of its own, besides fastnet's learning-rate
    schedule (and, unless ``readers_too``, those that say they only read)."""
    for cb in callbacks:
        if (_sets_only_a_valid_lr(cb)
                or (not readers_too and getattr(cb, "on_batch_end_reads_only", False) is True)):
            continue
        method = getattr(cb, "on_batch_end", None)
        if method is not None and getattr(method, "__func__", None) is not Callback.on_batch_end:
            return True
    return False


def _sets_only_a_valid_lr(cb):
    """Whether ``cb`` is fastnet's learning-rate schedule as fastnet defines it: the class that
    makes the claim ``_sets_only_a_valid_lr`` also gives the ``on_batch_end`` that ``cb`` runs (a
    subclass with one of its own inherited the claim, and its steps went unchecked)."""
    return _claim(cb, "_sets_only_a_valid_lr", ("on_batch_end",)) is True


def readers(callbacks):
    """The callbacks with an ``on_batch_end`` of their own that say it only reads
    (``on_batch_end_reads_only``), fastnet's own aside (the command line's progress bar, the
    benchmarks' step timer): ``fit`` keeps its unchecked steps with them, and checks after each
    call that the model is as it was (``fastnet._dense_chain.layout_key``, twice a step: ~30 us
    each for the MLP, ~75 us for the CNN)."""
    return [cb for cb in callbacks
            if getattr(cb, "on_batch_end_reads_only", False) is True
            and not _sets_only_a_valid_lr(cb) and not _fastnets_own_batch_end(cb)
            and _own_batch_end([cb], readers_too=True)]


def _fastnets_own_batch_end(cb):
    """Whether the ``on_batch_end`` that ``cb`` runs is defined in fastnet."""
    method = getattr(type(cb), "on_batch_end", None)
    return ("on_batch_end" not in getattr(cb, "__dict__", ())
            and getattr(method, "__module__", "").startswith("fastnet."))


def call_hook(callbacks, hook, *args):
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(*args)
