"""Command line: ``python -m fastnet train | bench | info`` (also the ``fastnet`` script)."""
import argparse
import sys


def _int_at_least(low, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_count = _int_at_least(0, "an integer >= 0")


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastnet", description="Train on MNIST, run the benchmarks, or describe this "
                                    "installation (python -m fastnet, or the fastnet script).")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("info", help="versions, backend, dtype, threads, CPU features, Numba cache")

    from .train import add_train_arguments
    add_train_arguments(sub.add_parser("train", help="train a reference model on MNIST"),
                        _positive_int, _positive_float, _count)

    from .benchmarking.run import add_bench_arguments
    add_bench_arguments(sub.add_parser("bench", help="benchmark Numba vs NumPy vs PyTorch"),
                        _positive_int)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "info":
        from ._sysinfo import info_lines
        try:
            print("\n".join(info_lines()))
        except ValueError as err:            # e.g. FASTNET_BACKEND names no backend
            print(f"fastnet info: error: {err}", file=sys.stderr)
            return 1
        return 0
    if args.command == "train":
        from .train import run_train
        try:
            return run_train(args)
        except (OSError, ValueError, FloatingPointError) as err:
            # Data that cannot be found or read, a path that cannot be written, a diverging
            # run: the message says what happened and how to fix it; a traceback would bury it.
            print(f"fastnet train: error: {err}", file=sys.stderr)
            return 1
    from .benchmarking.run import run_bench
    try:
        return run_bench(args)
    except (OSError, ValueError) as err:     # e.g. a --json path that cannot be written
        print(f"fastnet bench: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
