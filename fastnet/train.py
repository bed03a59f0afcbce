"""``python -m fastnet train``: train a reference model on MNIST with progress and plots.

Output: a progress bar per epoch (samples/s, running loss), one summary line per epoch, then the
test accuracy, the total time and the files written. With ``--save`` the model is saved
(atomically) after every epoch, so Ctrl-C keeps the last finished epoch.
"""
import math
import os
import sys
import time

import numpy as np

from . import backend
from ._files import atomic_write, check_writable

DEFAULT_MODEL = "cnn"


def add_train_arguments(p, positive_int, positive_float, count):
    from .models import OPTIMIZERS, RECIPES
    p.add_argument("--model", choices=sorted(RECIPES), default=DEFAULT_MODEL,
                   help=f"reference model (default {DEFAULT_MODEL}); "
                        + "; ".join(f"{k}: {r.description}" for k, r in RECIPES.items()))
    p.add_argument("--epochs", type=positive_int, help="default: the model's recipe")
    p.add_argument("--batch-size", type=positive_int, help="default: the model's recipe")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), help="default: the model's recipe")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the recipe's)")
    p.add_argument("--schedule", choices=["constant", "linear"],
                   help="learning-rate schedule (default: the recipe's)")
    p.add_argument("--backend", choices=["numba", "numpy"],
                   help="default: FASTNET_BACKEND or numba")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="dtype of the parameters and data (default: float32)")
    p.add_argument("--threads", type=positive_int,
                   help="BLAS and Numba threads (default: FASTNET_NUM_THREADS, else all usable "
                        "CPUs)")
    p.add_argument("--seed", type=count, default=0,
                   help="seed of the initial weights, the shuffling and the augmentation "
                        "(default: 0)")
    p.add_argument("--data", metavar="DIR", help="MNIST folder (default: FASTNET_DATA, then the "
                                                 "user cache, downloading when needed)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="train on the first N training samples (after the --val hold-out)")
    p.add_argument("--val", type=count, default=5000, metavar="N",
                   help="hold out the last N training samples for validation (default 5000; 0: "
                        "none)")
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="train without the recipe's random image shifts")
    p.add_argument("--plot", metavar="PATH",
                   help="learning-curve image; its suffix picks the format (.png, .svg, .pdf, "
                        "...; none: .png is added). Default: fastnet-<model>.png here")
    p.add_argument("--no-plot", action="store_true", help="write no learning-curve image")
    p.add_argument("--save", metavar="PATH", help="save the model here after every epoch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class _Progress:
    """Per-epoch progress bar (tqdm when installed, a plain counter line otherwise) and the
    one-line summary after each epoch."""

    on_batch_end_reads_only = True       # fit keeps its unchecked steps (fastnet.model.Callback)

    def __init__(self, epochs, n_train, quiet):
        self.epochs, self.n_train, self.quiet = epochs, n_train, quiet
        self.bar = None

    def on_epoch_begin(self, epoch, n_batches):
        self.epoch, self.seen, self.loss_sum, self.start = epoch, 0, 0.0, time.perf_counter()
        if self.quiet:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            self.bar = tqdm(total=self.n_train, desc=f"epoch {epoch + 1}/{self.epochs}",
                            unit="img", unit_scale=True, leave=False, dynamic_ncols=True,
                            file=sys.stderr, mininterval=0.25)

    def on_batch_end(self, batch, loss, n_samples):
        self.seen += n_samples
        self.loss_sum += loss * n_samples
        self.trained = time.perf_counter()       # img/s counts training, not validation
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(n_samples)
            if batch % 20 == 0:
                self.bar.set_postfix(loss=f"{self.loss_sum / self.seen:.4f}", refresh=False)
        elif batch % 50 == 0:
            rate = self.seen / max(time.perf_counter() - self.start, 1e-9)
            print(f"\r  epoch {self.epoch + 1}/{self.epochs} {self.seen}/{self.n_train} "
                  f"{rate:,.0f} img/s loss {self.loss_sum / self.seen:.4f}", end="",
                  file=sys.stderr, flush=True)

    def on_epoch_end(self, epoch, logs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif not self.quiet:
            print("\r", end="", file=sys.stderr)
        rate = self.seen / max(self.trained - self.start, 1e-9)
        val = (f"  val_loss {logs['val_loss']:.4f}  val_acc {logs['val_acc']:.2%}"
               if "val_acc" in logs else "")
        print(f"epoch {epoch + 1:>2}/{self.epochs}  {logs['seconds']:6.1f} s  "
              f"{rate:8,.0f} img/s  loss {logs['loss']:.4f}  acc {logs['acc']:.2%}{val}",
              flush=True)


class _LinearDecay:
    """Learning rate falls linearly from its initial value to 0 over all training steps."""

    #: ``lr0 * max(0, 1 - step / total)``: a float in [0, lr0], with lr0 the optimizer's own
    #: (checked by it); the only change it makes (``fastnet.callbacks.per_batch``).
    _sets_only_a_valid_lr = True

    def __init__(self, optimizer, total_steps):
        self.optimizer, self.lr0, self.total, self.step = optimizer, optimizer.lr, total_steps, 0

    def on_batch_end(self, batch, loss, n_samples):
        self.step += 1
        self.optimizer.lr = self.lr0 * max(0.0, 1 - self.step / self.total)


#: File types matplotlib's Agg backend writes (``FigureCanvasBase.get_supported_filetypes``).
PLOT_FORMATS = ("png", "pdf", "svg", "svgz", "jpg", "jpeg", "tif", "tiff", "webp", "eps", "ps",
                "pgf", "raw", "rgba")


def _plot_path(path):
    """The file matplotlib will write for ``--plot path``: it appends ``.png`` to a name without
    an extension, and an extension it cannot write fails here, before training, not after."""
    if not path:
        raise ValueError("--plot: the file name is empty")
    ext = os.path.splitext(path)[1]
    if os.path.isdir(path):           # else a folder "out" would get a file "out.png" beside it
        raise ValueError(f"--plot {path}: is a directory; give a file name")
    if not ext:
        return path + ".png"
    if ext[1:].lower() not in PLOT_FORMATS:
        raise ValueError(f"--plot {path}: matplotlib cannot write {ext} files; use one of "
                         f"{', '.join('.' + f for f in PLOT_FORMATS[:4])}, ...")
    return path


class _SaveEachEpoch:
    """Saves the model after every epoch. ``saved`` is the number of epochs in the last file
    written completely (0: none yet) and ``saving`` the epoch being written (None between
    saves): a Ctrl-C during a save keeps the file before it (saves are atomic), and the
    closing lines must say which."""

    def __init__(self, model, path):
        self.model, self.path = model, path
        self.saved, self.saving = 0, None

    def on_epoch_end(self, epoch, logs):
        self.saving = len(self.model.history["loss"])
        self.model.save(self.path)
        self.saved, self.saving = self.saving, None


def plot_history(history, path, title):
    """Loss and accuracy per epoch, train and validation, side by side, written to ``path``
    in the format its suffix names (one of :data:`PLOT_FORMATS`). Written atomically, as the
    model is: a Ctrl-C or a full disk while matplotlib writes leaves the previous image (or
    none), not half of one."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_loss, "loss", "cross-entropy loss"), (ax_acc, "acc", "accuracy")):
        ax.plot(epochs, history[key], "o-", label="train")
        if history.get("val_" + key):
            ax.plot(epochs, history["val_" + key], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fmt = os.path.splitext(path)[1][1:].lower()   # a file object carries no name to go by
    try:
        atomic_write(path, lambda f: fig.savefig(f, dpi=100, format=fmt))
    finally:
        plt.close(fig)


def _load_data(args, recipe, dtype):
    from .mnist import load_mnist
    (X, y), (X_test, y_test) = load_mnist(args.data, flatten=recipe.flatten, dtype=dtype)
    for name, part in (("training", X), ("test", X_test)):
        if len(part) == 0:           # refused now, not after the epochs have run
            raise ValueError(f"the {name} files of the data folder hold no samples")
        if part.shape[1:] not in ((28, 28), (784,)):  # else the model's first layer says so,
            raise ValueError(                         # about a batch it made up
                f"the {name} images of the data folder have shape {part.shape[1:]}; the "
                f"reference models take MNIST's 28 x 28 images")
    X, X_test = recipe.prepare(X), recipe.prepare(X_test)
    X_val = y_val = None
    if args.val:
        if args.val >= len(X):
            raise ValueError(f"--val {args.val} leaves no training samples out of {len(X)}")
        X, X_val, y, y_val = X[:-args.val], X[-args.val:], y[:-args.val], y[-args.val:]
    if args.limit:              # the hold-out first: --limit N trains on N samples
        X, y = X[:args.limit], y[:args.limit]
    return X, y, X_val, y_val, X_test, y_test


def _threads_in_effect():
    """The thread counts the training will run with, not the ones asked for: Numba cannot
    exceed the count it started with (``NUMBA_NUM_THREADS``, ``FASTNET_NUM_THREADS``)."""
    from .benchmarking.report import thread_counts
    numba = backend.get_backend() == "numba"
    if numba:
        backend.kernels()                 # loads the backend, which applies the settings
    counts = thread_counts(with_torch=False)
    return f"BLAS {counts['blas']}" + (f", Numba {counts['numba']}" if numba else "")


def run_train(args):
    from .models import RECIPES
    if args.backend:
        backend.set_backend(args.backend)
    dtype = np.float32 if args.dtype == "float32" else np.float64
    backend.set_default_dtype(dtype)
    if args.threads:
        backend.set_num_threads(args.threads)
    recipe = RECIPES[args.model]
    epochs = args.epochs or recipe.epochs
    batch_size = args.batch_size or recipe.batch_size
    schedule = args.schedule or recipe.schedule

    plot = None if args.no_plot else _plot_path(
        f"fastnet-{recipe.name}.png" if args.plot is None else args.plot)
    for option, path in (("--save", args.save), ("--plot", plot)):
        if path is not None:                      # "" too: an error, not silently no file
            check_writable(option, path)          # before training, not after it
    if args.save and plot and os.path.realpath(args.save) == os.path.realpath(plot):
        raise ValueError(f"--save and --plot name one file, {plot}: the learning curves would "
                         f"overwrite the model; give each its own name (or --no-plot)")
    X, y, X_val, y_val, X_test, y_test = _load_data(args, recipe, dtype)
    model = recipe.build(seed=args.seed, optimizer=args.optimizer, lr=args.lr)
    print(f"fastnet train: {recipe.name} ({recipe.description})")
    print(f"  backend {backend.get_backend()}, {args.dtype}, threads {_threads_in_effect()}; "
          f"{len(X)} train / "
          f"{0 if X_val is None else len(X_val)} validation / {len(X_test)} test samples")
    shifts = recipe.max_shift if args.augment else 0
    print(f"  {type(model.optimizer).__name__} lr {model.optimizer.lr:g} ({schedule}), "
          f"batch {batch_size}, {epochs} epoch{'s' if epochs > 1 else ''}"
          + (f", random shifts of up to {shifts} px" if shifts else ""), flush=True)

    callbacks = [_Progress(epochs, len(X), args.quiet)]
    if schedule == "linear":
        callbacks.append(_LinearDecay(model.optimizer, epochs * math.ceil(len(X) / batch_size)))
    saver = _SaveEachEpoch(model, args.save) if args.save else None
    if saver:
        callbacks.append(saver)

    start = time.perf_counter()
    interrupted = False
    try:
        model.fit(X, y, X_val, y_val, epochs=epochs, batch_size=batch_size, seed=args.seed,
                  callbacks=callbacks, augment=recipe.augment() if args.augment else None)
    except KeyboardInterrupt:
        interrupted = True
        done = len(model.history.get("loss", ()))        # {} when fit had not begun
        if saver and saver.saving:
            where = f"while saving epoch {saver.saving}"
        else:
            where = f"during epoch {done + 1}" if "loss" in model.history else None
        print(f"\ninterrupted {where}; stopping." if where
              else "\ninterrupted before training began; stopping.", file=sys.stderr)
    train_seconds = time.perf_counter() - start

    test_acc = model.score(X_test, y_test)
    print(f"test accuracy {test_acc:.2%}  ({len(X_test)} samples"
          + (", the model as interrupted)" if interrupted else ")"))
    print(f"training time {train_seconds:.1f} s")
    written = []
    trained = model.history.get("loss")
    if saver and saver.saved:
        written.append(f"model {args.save} (after epoch {saver.saved})")
    elif saver and trained:
        print("no model written: interrupted before the first save finished"
              + (f"; {args.save} is the file that was there before" if os.path.exists(args.save)
                 else ""), file=sys.stderr)
    if plot and trained:
        try:
            plot_history(model.history, plot,
                         f"fastnet {recipe.name} on MNIST: test accuracy {test_acc:.2%}")
            written.append(f"learning curves {plot}")
        except ImportError:
            print("no plot written: matplotlib is not installed (pip install matplotlib)",
                  file=sys.stderr)
    for line in written:
        print(f"wrote {line}")
    return 130 if interrupted else 0
