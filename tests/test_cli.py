"""The command line: info, train on tiny IDX files, argument errors."""
import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import fastnet
from fastnet import cli


def write_idx(path, array, magic):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    """200 training and 50 test images: bright pixel columns encode the label (learnable)."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 200), ("t10k", 50)):
        labels = rng.integers(0, 10, n)
        images = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, :, 2 * c:2 * c + 2] = 255
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
    return tmp_path


def test_info_prints_versions_and_settings(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("fastnet", "numpy", "numba", "backend", "threads", "cpu features", "numba cache",
                 "compile ahead"):
        assert word in out


@pytest.mark.parametrize("writable", [True, False])
def test_info_names_the_cache_folder_numba_really_uses(tmp_path, writable):
    """It named NUMBA_CACHE_DIR even where Numba could not write and cached elsewhere."""
    folder = tmp_path / "cache" if writable else "/proc/no-such-cache"
    out = subprocess.run([sys.executable, "-m", "fastnet", "info"], capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "NUMBA_CACHE_DIR": str(folder)})
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("numba cache"))
    assert (str(folder) in line) == writable, line


@pytest.mark.parametrize("numba_pool, fastnet_count", [("2", "1"), ("1", "2")])
def test_info_gives_the_numba_count_the_kernels_run_with(numba_pool, fastnet_count):
    """It printed Numba's default (2) under FASTNET_NUM_THREADS=1: the setting reaches Numba
    only when the Numba backend loads, which ``info`` does not do."""
    code = ("from fastnet._sysinfo import info_lines\n"
            "line = next(l for l in info_lines() if l.startswith('threads'))\n"
            "import numba, fastnet.backend as b\n"
            "with b.set_backend('numba'):\n"
            "    b.kernels()\n"
            "print(line.split('numba: ')[1], numba.get_num_threads())\n")
    env = {**os.environ, "NUMBA_NUM_THREADS": numba_pool, "FASTNET_NUM_THREADS": fastnet_count}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    shown, running = out.stdout.split()
    assert shown == running == "1"


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_train_end_to_end_writes_plot_and_model(tiny_mnist, tmp_path, capsys, model):
    plot, saved = tmp_path / "curves.png", tmp_path / "model.npz"
    code = cli.main(["train", "--model", model, "--epochs", "2", "--data", str(tiny_mnist),
                     "--val", "50", "--quiet", "--plot", str(plot), "--save", str(saved),
                     "--batch-size", "25"])
    out = capsys.readouterr().out
    assert code == 0
    assert "epoch  1/2" in out and "epoch  2/2" in out and "test accuracy" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import fastnet.model
    reloaded = fastnet.model.load(saved)
    assert len(reloaded.history["loss"]) == 2


@pytest.mark.parametrize("argv, words", [
    (["train", "--epochs", "0"], ["--epochs", "positive integer"]),
    (["train", "--lr", "-1"], ["--lr", "positive"]),
    (["train", "--model", "resnet"], ["--model", "invalid choice"]),
    (["train", "--backend", "cuda"], ["--backend"]),
    (["train", "--val", "-5"], ["--val", "integer >= 0", "-5"]),
    (["train", "--seed", "-1"], ["--seed", "integer >= 0"]),
    (["frobnicate"], ["invalid choice"]),
    (["bench", "--threads", "0"], ["--threads", "positive integer"]),
    (["bench", "--family", "gpu"], ["--family", "invalid choice"]),
])
def test_bad_arguments_exit_2_with_argparse_message(argv, words, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err


def test_an_interrupted_plot_leaves_the_previous_image(tmp_path, monkeypatch):
    """The learning curves are written atomically: an interruption while matplotlib writes
    keeps the old image whole and leaves no temporary file."""
    matplotlib = pytest.importorskip("matplotlib")
    from fastnet.train import plot_history
    path = tmp_path / "curves.png"
    path.write_bytes(b"the previous image")

    def interrupted(self, fname, **kwargs):
        if isinstance(fname, (str, os.PathLike)):
            fname = open(fname, "wb")
        fname.write(b"half an image")
        fname.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        plot_history({"loss": [1.0, 0.5], "acc": [0.5, 0.9]}, str(path), "title")
    assert path.read_bytes() == b"the previous image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]


def test_default_plot_is_written_in_the_working_folder(tiny_mnist, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--model", "mlp", "--epochs", "1", "--data", str(tiny_mnist),
                     "--val", "20", "--quiet"]) == 0
    assert (tmp_path / "fastnet-mlp.png").exists()


@pytest.mark.parametrize("limit, n_train", [("100", 100), ("150", 150), ("1000", 150)])
def test_limit_counts_training_samples_after_the_validation_hold_out(tiny_mnist, capsys, limit,
                                                                     n_train):
    """``--limit N`` trains on N samples; it once cut the data before the hold-out, so
    ``--limit 100 --val 50`` trained on 50."""
    assert cli.main(["train", "--model", "mlp", "--epochs", "1", "--data", str(tiny_mnist),
                     "--val", "50", "--limit", limit, "--quiet", "--no-plot"]) == 0
    assert f"{n_train} train / 50 validation / 50 test samples" in capsys.readouterr().out

def test_plot_without_extension_reports_the_file_written(tiny_mnist, tmp_path, capsys):
    assert cli.main(["train", "--model", "mlp", "--epochs", "1", "--data", str(tiny_mnist),
                     "--val", "20", "--quiet", "--plot", str(tmp_path / "curves")]) == 0
    assert (tmp_path / "curves.png").exists()
    assert f"wrote learning curves {tmp_path / 'curves.png'}" in capsys.readouterr().out


@pytest.mark.parametrize("make_path, words", [
    (lambda tmp: tmp / "missing" / "r.json", ["--json", "does not exist"]),
    (lambda tmp: tmp, ["--json", "is a directory"]),
    (lambda tmp: tmp / ("r" * 300 + ".json"), ["--json", "file name is 305 bytes long"]),
])
def test_bench_json_path_fails_before_the_run(tmp_path, capsys, monkeypatch, make_path, words):
    from fastnet.benchmarking import run
    monkeypatch.setattr(run, "gemm_rate", lambda: pytest.fail("the benchmark started"))
    assert cli.main(["bench", "--json", str(make_path(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastnet bench: error:") and all(word in err for word in words)


def test_bench_quick_keeps_to_the_chosen_families():
    from fastnet.benchmarking import run
    args = cli.build_parser().parse_args(["bench", "--quick", "--family", "pooling"])
    families = {case.family for case in run._selected(args)}
    assert families == {"pooling"}
    args = cli.build_parser().parse_args(["bench", "--quick"])
    assert {"pooling", "conv1d", "epoch"} <= {case.family for case in run._selected(args)}


def test_the_banner_gives_the_thread_counts_in_effect(tiny_mnist):
    """--threads 2 printed "threads 2" where Numba had started with one thread and ran with
    one (a probe's finding)."""
    out = subprocess.run([sys.executable, "-m", "fastnet", "train", "--model", "mlp",
                          "--epochs", "1", "--data", str(tiny_mnist), "--val", "20", "--quiet",
                          "--no-plot", "--threads", "2"], capture_output=True, text=True,
                         timeout=300, env={**_env_without("NUMBA_NUM_THREADS"),
                                           "FASTNET_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert ", threads BLAS " in out.stdout and ", Numba 1;" in out.stdout


def _env_without(*names):
    """This process's environment less ``names``: importing fastnet here set NUMBA_NUM_THREADS
    from a FASTNET_NUM_THREADS of the caller's, which a child would inherit."""
    return {k: v for k, v in os.environ.items() if k not in names}


def test_missing_data_is_a_clear_error(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fastnet", "train", "--data", str(tmp_path),
                          "--quiet"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "FASTNET_DATA": ""})
    assert out.returncode != 0
    assert str(tmp_path) in out.stderr and "FASTNET_DATA" in out.stderr


@pytest.mark.parametrize("option, make_path, words", [
    ("--save", lambda tmp: tmp, ["--save", "is a directory"]),
    ("--plot", lambda tmp: tmp, ["--plot", "is a directory"]),
    ("--save", lambda tmp: tmp / "missing" / "m.npz", ["--save", "does not exist"]),
    ("--plot", lambda tmp: tmp / "missing" / "c.png", ["--plot", "does not exist"]),
    ("--plot", lambda tmp: tmp / "curves.txt", ["--plot", "cannot write .txt files"]),
    ("--plot", lambda tmp: tmp / ("c" * 300 + ".png"), ["--plot", "file name is 304 bytes long"]),
    ("--save", lambda tmp: tmp / ("m" * 300 + ".npz"), ["--save", "file name is 304 bytes long"]),
    # abspath dropped the "/" or "/.": these failed at the first save, after an epoch
    ("--save", lambda tmp: f"{tmp}/m.npz/", ["--save", "names a folder, not a file"]),
    ("--save", lambda tmp: f"{tmp}/m.npz/.", ["--save", "names a folder, not a file"]),
    # one file for both: the curves overwrote the model
    ("--save", lambda tmp: "fastnet-mlp.png", ["--save and --plot name one file"]),
])
def test_unwritable_outputs_fail_before_training(tiny_mnist, tmp_path, capsys, option,
                                                 make_path, words):
    code = cli.main(["train", "--model", "mlp", "--epochs", "1", "--data", str(tiny_mnist),
                     "--val", "20", "--quiet", option, str(make_path(tmp_path))])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""          # before loading data or training
    for word in words:
        assert word in captured.err


@pytest.mark.skipif(not os.path.isdir("/proc/self") or not os.access("/proc", os.W_OK),
                    reason="needs a /proc that os.access calls writable (Linux, as root)")
def test_a_folder_that_takes_no_new_files_fails_before_training(tiny_mnist, capsys):
    """os.access passes for root on /proc (and on read-only mounts); creating a file fails."""
    code = cli.main(["train", "--model", "mlp", "--epochs", "1", "--data", str(tiny_mnist),
                     "--val", "20", "--quiet", "--no-plot", "--save", "/proc/m.npz"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert "--save /proc/m.npz: cannot create files in /proc" in captured.err


@pytest.mark.parametrize("prefix, name", [("t10k", "test"), ("train", "training")])
def test_an_empty_split_fails_before_training(tiny_mnist, capsys, prefix, name):
    """An empty test split failed in ``score`` after every epoch had run."""
    write_idx(tiny_mnist / f"{prefix}-images-idx3-ubyte.gz", np.zeros((0, 28, 28)), 2051)
    write_idx(tiny_mnist / f"{prefix}-labels-idx1-ubyte.gz", np.zeros(0), 2049)
    code = cli.main(["train", "--model", "mlp", "--epochs", "1", "--data", str(tiny_mnist),
                     "--val", "0", "--quiet", "--no-plot"])
    captured = capsys.readouterr()
    assert code == 1 and "epoch" not in captured.out
    assert f"the {name} files of the data folder hold no samples" in captured.err


@pytest.mark.parametrize("model, images, shape", [("mlp", (5, 5), "(25,)"),
                                                   ("cnn", (5, 5), "(5, 5)"),
                                                   ("cnn", (14, 56), "(14, 56)")])
def test_images_of_another_size_fail_naming_the_datas_shape(tiny_mnist, capsys, model, images,
                                                            shape):
    """The first layer's error named a made-up batch of 2 ("input of shape (2, 25)")."""
    for prefix in ("train", "t10k"):
        write_idx(tiny_mnist / f"{prefix}-images-idx3-ubyte.gz", np.zeros((30, *images)), 2051)
        write_idx(tiny_mnist / f"{prefix}-labels-idx1-ubyte.gz", np.zeros(30), 2049)
    code = cli.main(["train", "--model", model, "--epochs", "1", "--data", str(tiny_mnist),
                     "--val", "0", "--quiet", "--no-plot"])
    captured = capsys.readouterr()
    assert code == 1 and "epoch" not in captured.out
    assert (f"the training images of the data folder have shape {shape}; the reference models "
            f"take MNIST's 28 x 28 images") in captured.err


def test_divergence_is_an_error_line_not_a_traceback(tiny_mnist, tmp_path, capsys):
    code = cli.main(["train", "--model", "mlp", "--epochs", "1", "--data", str(tiny_mnist),
                     "--val", "20", "--quiet", "--no-plot", "--optimizer", "sgd",
                     "--lr", "1e30"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("fastnet train: error: training diverged")


def test_bench_threads_beyond_the_cpus_pin_every_member_alike(monkeypatch, capsys):
    """--threads 64 on 2 cores: fastnet is capped at the usable CPUs, and torch got 64 while
    the header said 64 "pinned alike"."""
    from fastnet.benchmarking import run
    torch = pytest.importorskip("torch")
    seen = {}
    monkeypatch.setattr(run, "gemm_rate", lambda: 1.0)
    monkeypatch.setattr(run, "run_cases", lambda cases, failures: seen.update(
        torch=torch.get_num_threads(), fastnet=fastnet.get_num_threads()) or [])
    before = torch.get_num_threads()
    try:
        assert cli.main(["bench", "--quick", "--family", "pooling", "--threads", "64",
                         "--no-startup"]) == 0
    finally:
        torch.set_num_threads(before)
    import numba
    # the CPUs, or fewer where NUMBA_NUM_THREADS started fewer workers
    cpus = min(fastnet.backend._usable_cpus(), numba.config.NUMBA_NUM_THREADS)
    assert seen == {"torch": cpus, "fastnet": cpus}
    assert (f"threads in effect: BLAS {cpus}, Numba {cpus}, torch {cpus}"
            in capsys.readouterr().out)


def test_ctrl_c_before_the_first_epoch_is_a_clean_interruption(tiny_mnist, tmp_path, capsys,
                                                              monkeypatch):
    """On a cold cache fit's checks compile for seconds before ``history`` exists; Ctrl-C
    there gave a KeyError traceback."""
    from fastnet.model import Sequential

    def interrupted(self, *args):
        raise KeyboardInterrupt
    monkeypatch.setattr(Sequential, "_dry_run", interrupted)
    code = cli.main(["train", "--model", "mlp", "--epochs", "1", "--data", str(tiny_mnist),
                     "--val", "20", "--quiet", "--save", str(tmp_path / "m.npz"),
                     "--plot", str(tmp_path / "c.png")])
    captured = capsys.readouterr()
    assert code == 130 and "interrupted before training began" in captured.err
    assert "test accuracy" in captured.out
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("cut", [1, 2])
def test_ctrl_c_during_a_save_names_the_file_that_was_kept(tiny_mnist, tmp_path, capsys,
                                                           monkeypatch, cut):
    """Ctrl-C during the save after an epoch said "wrote model (after epoch N)" for a file
    that was never written (a probe's finding): the save is atomic, so the last complete
    save, or the file that was there before, is what is kept."""
    from fastnet.model import Sequential, load
    path = tmp_path / "m.npz"
    real_save, calls = Sequential.save, []

    def save(self, where):
        calls.append(where)
        if len(calls) == cut:
            raise KeyboardInterrupt
        real_save(self, where)
    monkeypatch.setattr(Sequential, "save", save)
    code = cli.main(["train", "--model", "mlp", "--epochs", "3", "--data", str(tiny_mnist),
                     "--val", "20", "--quiet", "--no-plot", "--save", str(path)])
    captured = capsys.readouterr()
    assert code == 130 and f"interrupted while saving epoch {cut}" in captured.err
    if cut == 1:
        assert "no model written" in captured.err and "wrote model" not in captured.out
        assert not path.exists()
    else:
        assert f"wrote model {path} (after epoch 1)" in captured.out
        assert len(load(path).history["loss"]) == 1


def test_the_epoch_line_counts_training_images_per_second_without_validation(capsys):
    """img/s divided by the epoch's seconds, validation included: 88,930 img/s at --val 0 read
    8,899 at --val 50000 for the same training (a probe's finding)."""
    from fastnet.train import _Progress
    progress = _Progress(epochs=1, n_train=100, quiet=True)
    progress.on_epoch_begin(0, 1)
    progress.on_batch_end(0, 1.0, 100)
    progress.on_epoch_end(0, {"seconds": 1000.0, "loss": 1.0, "acc": 0.5})
    rate = float(capsys.readouterr().out.split(" s ")[1].split("img/s")[0].replace(",", ""))
    assert rate > 1000                   # 100 images over the batch's time, not over 1000 s
