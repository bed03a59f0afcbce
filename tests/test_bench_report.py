"""The benchmark report's own arithmetic and checks (``fastnet.benchmarking``), which CI's smoke
run of ``bench/`` does not see: ratios, combined rows, the result checks, and one real
measurement end to end."""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from fastnet.benchmarking import cases as C
from fastnet.benchmarking import epochs, report, run, timing


def _row(op="relu", direction="forward", numpy=2e-3, numba=5e-4, torch=1e-3, **extra):
    return {"family": "activations", "op": op, "shape": "(8,)", "dtype": "float32",
            "direction": direction, "size": "small", "flops": 0, "note": "",
            "numpy": numpy, "numba": numba, "torch": torch, **extra}


def _table_rows(text):
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_markdown_ratios_are_the_other_members_time_over_numbas():
    text = report.markdown([_row(), _row(direction="backward", numpy=1e-3, numba=1e-3,
                                         torch=None)], ["date: today"])
    assert text.startswith("- date: today")
    fwd, bwd, both = _table_rows(text)
    assert fwd[4:] == ["2.000", "0.500", "1.000", "4.00x", "2.00x"]
    # below 1 (ms), three significant figures: 1.3 us once printed as 0.001
    small = _table_rows(report.markdown([_row(numpy=2.6e-6, numba=1.3e-6, torch=2.34e-5)], []))
    assert small[0][4:] == ["0.00260", "0.00130", "0.0234", "2.00x", "18.00x"]
    assert bwd[4:] == ["1.000", "1.000", "-", "1.00x", "-"]
    # forward+backward: times added per member (no torch backward: no torch sum)
    assert both[3] == "forward+backward" and both[4:] == ["3.000", "1.500", "-", "2.00x", "-"]


def test_a_combined_row_adds_the_flops_and_first_calls_of_its_two_rows():
    rows = report.rows([_row(flops=100, numba_first_call=0.5),
                        _row(direction="backward", flops=200, numba_first_call=0.25)])
    both = rows[-1]
    assert both["direction"] == "forward+backward"
    assert (both["flops"], both["numba_first_call"]) == (300, 0.75)


def test_epoch_rows_are_scaled_to_a_whole_epoch_in_seconds():
    row = _row(op="epoch (a)", direction="epoch", numpy=0.5, numba=0.25, torch=1.0, scale=10)
    (cells,) = _table_rows(report.markdown([row], []))
    assert cells[4:] == ["5.00", "2.50", "10.00", "2.00x", "4.00x"]


def test_epochs_get_a_table_of_their_own_in_seconds():
    """Epoch rows sat in the kernels' table with seconds under its "ms" headings."""
    text = report.markdown([_row(), _row(op="epoch (a)", direction="epoch", scale=10)], [])
    kernels, epoch, note = text.strip().split("\n\n")
    assert note.startswith("Epoch rows: each member trains the steps") and "scaled" in note
    assert "Epoch rows" not in report.markdown([_row()], [])
    assert "| NumPy ms | Numba ms | PyTorch ms |" in kernels and "epoch (a)" not in kernels
    assert "| NumPy s | Numba s | PyTorch s |" in epoch and "| relu |" not in epoch
    assert _table_rows(epoch)[0][4:6] == ["0.020", "0.0050"]


def test_dense_gemm_fraction_uses_the_batch_128_first_layer_float32_rows():
    rows = [dict(_row(), family="dense", shape="(128, 784)->400", flops=8e7, numba=1e-3),
            dict(_row(), family="dense", shape="(128, 784)->400", flops=1.6e8, numba=1e-3),
            dict(_row(), family="dense", shape="(20, 784)->400", flops=1e9, numba=1e-6)]
    rate, fraction = run.dense_gemm_fraction(rows, peak=200.0)
    assert rate == pytest.approx(120.0) and fraction == pytest.approx(0.6)


def test_dense_rate_in_training_counts_each_steps_flops_and_restores_the_layers(monkeypatch):
    """A fake clock that advances 1 s per reading makes every timed dense call last 1 s, so the
    rate is the FLOPs of one step over its six dense calls: forward 2*128*(784*400 + 400*200 +
    200*10), backward the same without the first layer's dx (its dW only). ``fit``'s dry run
    (a forward of the first batch) is not a training step and is not counted. Every step's six
    calls must be timed: ``fit``'s steps after an epoch's first call the backend's kernels, not
    ``fastnet.functional`` (timing the functional API's calls saw one step in 60)."""
    from fastnet import backend
    clock = iter(range(10 ** 6))
    monkeypatch.setattr(timing, "time", type("Clock", (), {"perf_counter": lambda: next(clock)}))
    with backend.set_backend("numba"):
        kernels = backend.kernels()
    dense, dense_backward = kernels.dense_forward, kernels.dense_backward
    rate, steps, rounds = timing.dense_rate_in_training(steps=3, rounds=3)
    forward = 2 * 128 * (784 * 400 + 400 * 200 + 200 * 10)
    backward = 2 * 128 * 784 * 400 + 2 * forward - 2 * (2 * 128 * 784 * 400)
    assert (steps, rounds) == (3, 3)
    assert rate == pytest.approx((forward + backward) / 6 / 1e9)
    assert (kernels.dense_forward, kernels.dense_backward) == (dense, dense_backward)


def test_dense_rate_in_training_refuses_to_report_when_calls_go_untimed(monkeypatch):
    """A training route that stops calling the timed kernels is an error, not a rate."""
    from fastnet import backend, layers
    real = layers.FC._forward_logits
    with backend.set_backend("numba"):
        untimed = backend.kernels().dense_forward      # taken before the timing wraps it

    def around(self, X, dense=None):
        return real(self, X, untimed)
    monkeypatch.setattr(layers.FC, "_forward_logits", around)
    with pytest.raises(AssertionError, match="timed 9 dense calls in 3 steps; expected 18"):
        timing.dense_rate_in_training(steps=3, rounds=1)


@pytest.mark.parametrize("start", [None, np.linspace(-3, 3, 50)])
def test_the_result_check_catches_results_that_are_wrong_but_small(start):
    rng = np.random.default_rng(0)
    want = rng.standard_normal(50).astype(np.float32) * 1e-3      # e.g. a gradient or an update
    if start is not None:
        want = (start + want).astype(np.float32)
    check = C._allclose(C._tol(np.float32), start)
    check(want.copy(), want)                                       # equal: passes
    check(np.nextafter(want, np.float32(np.inf)), want)            # one ulp off: passes
    base = np.zeros_like(want) if start is None else start.astype(np.float32)
    wrong = {"nothing": base, "1 % off": base + (want - base) * np.float32(1.01),
             "last element skipped": np.r_[want[:-1], base[-1]].astype(np.float32)}
    for name, got in wrong.items():
        with pytest.raises(AssertionError):
            check(got, want)


def test_the_elementwise_check_sees_small_elements_and_every_check_the_dtype():
    """Audit findings: at a floor of 1e-4 of the largest element, a float32 softmax whose small
    probabilities were 30 % off passed, and a float32 case returning float64 passed."""
    rng = np.random.default_rng(0)
    probs = np.exp(3 * rng.standard_normal((64, 100))).astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    check = C._elementwise_check(np.float32)
    check(probs.copy(), probs)
    check(probs * np.float32(1 + 2e-5), probs)                     # rounding: passes
    small = probs < 1e-4 * probs.max()
    assert small.mean() > 0.2
    with pytest.raises(AssertionError, match="elements differ"):
        check(np.where(small, probs * np.float32(1.3), probs), probs)
    for plain in (check, C._allclose(C._tol(np.float32))):
        with pytest.raises(AssertionError, match="dtype float64, the reference's float32"):
            plain(probs.astype(np.float64), probs)


def test_the_update_check_compares_the_state_and_allows_each_elements_own_rounding():
    """Audit findings: an update check that saw only the parameter passed a kernel that never
    wrote its state, and one rounding allowance from the largest start passed Adam's update
    0.1 % off in float32."""
    (case,) = [c for c in C.optimizer_cases(((300,),), (np.float32,)) if c.op == "adam"]
    want = case.make("numpy")()
    p0, _, (m0, v0) = C._update_state("adam", (300,), np.float32)
    case.check(tuple(a.copy() for a in want), want)
    with pytest.raises(AssertionError, match="elements differ"):
        case.check((want[0], m0, v0), want)                       # the state never written
    step = want[0].astype(np.float64) - p0
    with pytest.raises(AssertionError, match="elements differ"):
        case.check(((p0 + step * 1.001).astype(np.float32), *want[1:]), want)


def test_the_result_check_compares_every_output_of_fastnets_members():
    """One array against a reference of two was compared with the first alone: a member that
    dropped an output passed (an audit's finding). Only a PyTorch tensor, its loss without
    fastnet's probabilities, is compared with the first."""
    torch = pytest.importorskip("torch")
    loss, probs = np.float32([0.5]), np.full((2, 3), 1 / 3, np.float32)
    check = C._allclose(C._tol(np.float32))
    check((loss, probs), (loss, probs))
    check(torch.from_numpy(loss), (loss, probs))
    with pytest.raises(AssertionError, match="1 results, the reference has 2"):
        check(loss, (loss, probs))


def test_the_epoch_check_catches_training_that_did_nothing(monkeypatch):
    """Every parameter is compared, each against its own move (an audit: the last weight
    matrix alone passed a CNN whose convolutions never trained), and float64 members closely
    (a loss gradient 0.1 % off passed at the float32 allowance)."""
    starts = [np.ones((4, 3)), np.zeros(3)]
    monkeypatch.setattr(epochs, "_recipe_model", lambda recipe, dtype: type(
        "M", (), {"params": {"0.W": starts[0], "0.b": starts[1]}}))
    check = epochs._same_training("mlp", np.float64)
    trained = [starts[0] + np.arange(12.0).reshape(4, 3) / 10, starts[1] + [0.1, -0.2, 0.3]]
    check([trained[0] + 1e-9, trained[1] - 1e-9], trained)          # rounding: passes
    as32 = [a.astype(np.float32) for a in trained]
    check([as32[0] + 1e-3, as32[1]], trained)   # a float32 member, off by a little: passes
    with pytest.raises(AssertionError, match=r"parameter 1 \(3,\): differs"):
        check([trained[0], starts[1]], trained)                     # one array never trained
    with pytest.raises(AssertionError, match=r"parameter 0 \(4, 3\): differs"):
        check([starts[0] + (trained[0] - starts[0]) * 1.001, trained[1]], trained)
    with pytest.raises(AssertionError, match="did not move"):
        check(starts, starts)
    with pytest.raises(AssertionError, match="1 parameter arrays, the baseline has 2"):
        check(trained[:1], trained)


def test_measure_times_every_member_and_checks_its_result():
    x = np.linspace(-1, 1, 64).astype(np.float32)
    good = C.Case("activations", "relu", "(64,)", "float32", "forward", "small",
                  lambda member: lambda: np.maximum(x, 0) if member == "numpy" else
                  __import__("fastnet").functional.relu(x), C._allclose(1e-4))
    timed = timing.measure(good, ("numpy", "numba"), rounds=3, round_seconds=0.001)
    for member in ("numpy", "numba"):
        assert timed[member]["rounds"] == 3 and 0 < timed[member]["min"] <= timed[member]["median"]
        assert timed[member]["first_call"] > 0
    np.testing.assert_array_equal(timed["numba"]["result"], np.maximum(x, 0))
    bad = C.Case("activations", "relu", "(64,)", "float32", "forward", "small",
                 lambda member: (lambda: np.maximum(x, 0)) if member == "numpy" else (lambda: x),
                 C._allclose(1e-4))
    with pytest.raises(AssertionError):
        timing.measure(bad, ("numpy", "numba"), rounds=1, round_seconds=0.001)


class _FakeBenchmark:
    """pytest-benchmark's fixture as ``pytest_support.run_case`` uses it: a few calls."""

    def __init__(self):
        self.extra_info = {}

    def __call__(self, fn):
        for _ in range(3):
            fn()

    def pedantic(self, fn, rounds, iterations):
        self(fn)


def _measure(case):
    timing.measure(case, ("numpy", "numba"), rounds=2, round_seconds=0.001)


def _run_case(case):
    from fastnet.benchmarking.pytest_support import run_case
    run_case(_FakeBenchmark(), case, "numba")


@pytest.mark.parametrize("timed", [_measure, _run_case])
def test_no_compile_ahead_helper_runs_while_a_case_is_timed(monkeypatch, timed):
    """A helper that the first call starts (on a cold cache, the next kernel compiling in a
    second process) has finished before the timed calls, whose second core it would take."""
    from fastnet.kernels.numba_backend import _ahead
    monkeypatch.setattr(_ahead, "_state", {**_ahead._state, "helpers": {}, "started": []})
    x = np.ones(8, np.float32)
    helpers, alive = [], []

    def make(member):
        def call():
            if not helpers:               # as a slot's cold compile starts its companion's
                helpers.append(subprocess.Popen(
                    [sys.executable, "-c", "import time; time.sleep(1)"]))
                _ahead._state["helpers"][("companion", np.dtype(np.float32))] = helpers[0]
            else:
                alive.append(helpers[0].poll() is None)
            return x
        return (lambda: x) if member == "numpy" else call
    try:
        timed(C.Case("activations", "relu", "(8,)", "float32", "forward", "small", make, None))
    finally:
        for helper in helpers:
            helper.kill()
            helper.wait()
    assert alive and not any(alive)
    assert not _ahead._state["helpers"]


@pytest.mark.parametrize("kernel, spoil, cases", [
    ("softmax_cross_entropy_forward", lambda loss, probs: (loss, probs * 0.5),
     lambda: [c for c in C.loss_cases(((20, 10),), (np.float32,))
              if c.op == "softmax_cross_entropy"]),
    ("maxpool1d_forward", lambda y, idx: (y, np.zeros_like(idx)),
     lambda: C.pooling_cases(((20, 16, 28),), (np.float32,), (), kinds=("max",))),
])
def test_a_forward_check_covers_every_output_the_backward_needs(monkeypatch, kernel, spoil,
                                                                 cases):
    """The loss's probabilities and the pooling's arg-max indices are outputs of the forward
    that training feeds to the backward: a Numba forward with the right loss (pooled values)
    but wrong probabilities (indices) is caught. (PyTorch's loss member returns the loss only,
    and is compared on it.) fastnet calls the backend's ``trusted`` kernels."""
    from fastnet.kernels.numba_backend import trusted
    (case,) = [c for c in cases() if c.direction == "forward"]
    timing.measure(case, ("numpy", "numba", "torch"), rounds=1, round_seconds=0.001)
    real = getattr(trusted, kernel)
    monkeypatch.setattr(trusted, kernel, lambda *args: spoil(*real(*args)))
    with pytest.raises(AssertionError):
        timing.measure(case, ("numpy", "numba"), rounds=1, round_seconds=0.001)


def test_the_average_pooling_cases_check_their_results(monkeypatch):
    """Average pooling, forward and backward, both dtypes, a padded overlapping shape too: the
    Numba results pass (against NumPy, and PyTorch where installed), and a result 1 % off is
    caught."""
    from fastnet.kernels.numba_backend import trusted
    cases = list(C.pooling_cases(((20, 16, 28),), overlapping=[((2, 3, 50), 3, 2, 1)],
                                 kinds=("avg",)))
    assert len(cases) == 8 and all(c.op.startswith("avg_pool1d") for c in cases)
    for case in cases:
        timing.measure(case, ("numpy", "numba", "torch"), rounds=1, round_seconds=0.001)
    for direction in ("forward", "backward"):
        name = f"avgpool1d_{direction}"
        real = getattr(trusted, name)
        monkeypatch.setattr(trusted, name, lambda *a, real=real: real(*a) * 1.01)
        for case in cases:
            if case.direction == direction:
                with pytest.raises(AssertionError):
                    timing.measure(case, ("numpy", "numba"), rounds=1, round_seconds=0.001)
        monkeypatch.setattr(trusted, name, real)


@pytest.mark.parametrize("op, kernel", [("binary_cross_entropy", "bce"), ("mse", "mse")])
def test_the_pointwise_loss_cases_check_their_results(monkeypatch, op, kernel):
    """BCE and MSE, forward and backward, both dtypes: the Numba results pass (against NumPy,
    and PyTorch where installed), and a loss 0.1 % off or a gradient 1 % off is caught."""
    from fastnet.kernels.numba_backend import trusted
    cases = [c for c in C.loss_cases(((20, 10),)) if c.op == op]
    assert len(cases) == 4
    for case in cases:
        timing.measure(case, ("numpy", "numba", "torch"), rounds=1, round_seconds=0.001)
    for direction, factor in (("forward", 1.001), ("backward", 1.01)):
        name = f"{kernel}_{direction}"
        real = getattr(trusted, name)
        monkeypatch.setattr(trusted, name, lambda *a, real=real, factor=factor: real(*a) * factor)
        for case in cases:
            if case.direction == direction:
                with pytest.raises(AssertionError):
                    timing.measure(case, ("numpy", "numba"), rounds=1, round_seconds=0.001)


def test_run_cases_rows_hold_the_measured_medians(monkeypatch):
    medians = {"numpy": 3e-3, "numba": 1e-3, "torch": None}
    monkeypatch.setattr(run, "measure", lambda case, members: {
        m: None if v is None else {"median": v, "first_call": 0.5} for m, v in medians.items()})
    (case,) = [c for c in C.pooling_cases(((20, 16, 28),), (np.float32,), ())][:1]
    (row,) = run.run_cases([case], log=open("/dev/null", "w"))
    assert (row["numpy"], row["numba"], row["torch"]) == (3e-3, 1e-3, None)
    assert row["numba_first_call"] == 0.5 and row["op"] == "max_pool1d k2"


def test_a_failed_result_check_leaves_its_case_out_and_the_run_goes_on(monkeypatch, tmp_path):
    """A wrong Numba result: its case gets no row, the others do, the header and the JSON name
    it, and the command exits 1 (it ended in a traceback that lost every row)."""
    from fastnet import cli
    from fastnet.kernels.numba_backend import trusted
    real = trusted.maxpool1d_backward
    monkeypatch.setattr(trusted, "maxpool1d_backward", lambda *a: real(*a) * 1.01)
    monkeypatch.setattr(run, "_selected", lambda args: C.pooling_cases(
        ((20, 16, 28),), (np.float32,), (), kinds=("max",)))
    monkeypatch.setattr(run, "gemm_rate", lambda: 1.0)
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--family", "pooling", "--json", str(out)]) == 1
    document = __import__("json").loads(out.read_text())
    assert [r["direction"] for r in document["results"]] == ["forward"]
    assert document["failed"][0]["case"] == "max_pool1d k2 backward (20, 16, 28) float32"
    assert document["failed"][0]["member"] == "numba"
    assert "RESULT CHECKS FAILED" in document["header"][-1]


def test_the_json_holds_every_table_row_with_its_ratios_and_the_versions(tmp_path):
    results = [_row(), _row(direction="backward", numpy=1e-3, numba=1e-3, torch=None)]
    path = tmp_path / "b.json"
    report.write_json(str(path), results, ["date: today"], {"threads": {"numba": 2}})
    document = __import__("json").loads(path.read_text())
    table = _table_rows(report.markdown(results, []))
    assert [r["direction"] for r in document["results"]] == [row[3] for row in table]
    for r, row in zip(document["results"], table):
        assert f"{r['numba_vs_numpy']:.2f}x" == row[7]
        assert (r["numba_vs_torch"] is None) == (row[8] == "-")
    assert set(document["versions"]) == {"python", "numpy", "numba", "torch"}
    assert document["threads"] == {"numba": 2}


def test_the_json_stays_json_when_a_timing_is_not_finite(tmp_path):
    """json.dump wrote a NaN timing as a bare NaN, which strict parsers refuse."""
    import json
    path = tmp_path / "b.json"
    report.write_json(str(path), [_row(numba=float("nan"))], [], {"dense_gflops": float("inf")})
    document = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(name))
    assert document["results"][0]["numba"] is None and document["dense_gflops"] is None


def test_bench_threads_never_exceed_numbas_pool(monkeypatch):
    """NUMBA_NUM_THREADS=1 (or FASTNET_NUM_THREADS=1 before Numba started): BLAS and torch must
    not get two threads against Numba's one."""
    import numba
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 1)
    threads, why = report.usable_threads(2)
    assert threads == 1 and "NUMBA_NUM_THREADS" in why and "FASTNET_NUM_THREADS" in why
    assert why.startswith("2 threads asked")
    import fastnet.backend
    monkeypatch.setattr(fastnet.backend, "get_num_threads", lambda: 2)
    threads, why = report.usable_threads()          # nothing asked: fastnet's own count
    assert threads == 1 and why.startswith("fastnet's count of 2 threads, 1 used")
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 64)
    assert report.usable_threads(1) == (1, None)


def test_pinned_threads_reach_numba_before_the_header_reads_them():
    """In a fresh process the Numba backend is not loaded yet: the header read Numba's default
    count while its kernels ran on the pinned one."""
    code = ("from fastnet.benchmarking.report import pinned_threads, thread_counts\n"
            "with pinned_threads(1):\n    print(thread_counts(with_torch=False))")
    out = __import__("subprocess").run([__import__("sys").executable, "-c", code],
                                      capture_output=True, text=True, check=True).stdout
    assert out.strip() == "{'blas': 1, 'numba': 1}"


def test_pinned_threads_imports_torch_before_numbas_workers_start():
    """A torch imported after Numba's OpenMP workers started ran its float64 convolutions
    7-30x slower in the benchmarks (one shared libgomp): the workers start when the thread count
    is set, so torch must be imported before that. Numba imports its threading layer's module
    when it starts them, so ``sys.modules``' order tells which came first. The benchmark
    modules are imported first, as ``python -m fastnet bench`` and ``bench/`` do: a timing
    module that imported the Numba backend at the top made PyTorch's float64 convolutions
    read 53-89 ms instead of ~0.9 ms."""
    pytest.importorskip("torch")
    code = ("import sys\nimport fastnet.benchmarking.run, fastnet.benchmarking.pytest_support\n"
            "from fastnet.benchmarking.report import pinned_threads\n"
            "with pinned_threads(1):\n    names = list(sys.modules)\n"
            "layer = [n for n in names if n.startswith('numba.np.ufunc.')\n"
            "         and n.endswith(('omppool', 'tbbpool', 'workqueue'))]\n"
            "print(names.index('torch') < names.index(layer[0]))")
    out = __import__("subprocess").run([__import__("sys").executable, "-c", code],
                                      capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


_FAULTS_PER_CALL = """
import resource, sys
import numpy as np
from fastnet.benchmarking import allocator
steady = sys.argv[1] == "steady" and allocator.steady_allocations()
g = np.random.default_rng(0).standard_normal((784, 400))
h = np.ones_like(g)
def update():                    # AdaGrad's temporaries, 2.5 MB each
    return h / (np.sqrt(h) + 1e-7) * g
update()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    update()
print(steady, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
print(allocator.describe())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt; ru_minflt as Linux counts")
def test_steady_allocations_let_repeated_calls_reuse_their_memory():
    """Without them, this loop faults its temporaries' pages in again on every call (1193
    faults a call measured; 2.8-3.3 ms against 0.75-0.82 ms for AdaGrad's update)."""
    out = subprocess.run([sys.executable, "-c", _FAULTS_PER_CALL, "steady"], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    steady, faults = out[0].split()
    if steady != "True":
        pytest.skip("not glibc's malloc")
    assert float(faults) < 10
    assert out[1].startswith("memory: glibc malloc set steady (arrays up to 32 MB")


def test_the_bench_sets_steady_allocations_before_it_times_anything(monkeypatch, capsys):
    from fastnet import cli
    order = []
    monkeypatch.setattr(run, "steady_allocations", lambda: order.append("steady"))
    monkeypatch.setattr(run, "gemm_rate", lambda *a, **k: order.append("gemm") or 100.0)
    monkeypatch.setattr(run, "run_cases", lambda *a, **k: order.append("cases") or [])
    assert cli.main(["bench", "--family", "activations"]) == 0
    assert order[0] == "steady" and "cases" in order


def test_a_bad_fastnet_data_fails_before_any_case_is_timed(monkeypatch, capsys):
    from fastnet import cli
    monkeypatch.setenv("FASTNET_DATA", "/nonexistent/mnist")
    monkeypatch.setattr(run, "run_cases", lambda *a, **k: pytest.fail("timed before checking"))
    assert cli.main(["bench", "--family", "epoch"]) == 1
    err = capsys.readouterr().err
    assert "fastnet bench: error: FASTNET_DATA=/nonexistent/mnist: no MNIST files there" in err


def test_fastnet_data_with_broken_files_fails_before_any_case_is_timed(monkeypatch, capsys,
                                                                      tmp_path):
    from fastnet import cli
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"not an IDX file")
    monkeypatch.setenv("FASTNET_DATA", str(tmp_path))
    monkeypatch.setattr(run, "run_cases", lambda *a, **k: pytest.fail("timed before checking"))
    assert cli.main(["bench", "--family", "epoch"]) == 1
    assert f"fastnet bench: error: FASTNET_DATA={tmp_path}: " in capsys.readouterr().err


@pytest.mark.parametrize("family", ["epoch", "dense"])
def test_fastnet_data_with_too_few_samples_fails_before_any_case_is_timed(monkeypatch, capsys,
                                                                         tmp_path, family):
    """A subset folder loaded fine: the epochs then trained fewer steps than their rows say they
    extrapolate from (0.15 s for a 0.33 s epoch), and the roofline's training probe raised an
    AssertionError after every dense case had been timed (a probe's findings)."""
    from fastnet import cli
    from fastnet.mnist import _idx_header
    for prefix, n in (("train", 100), ("t10k", 20)):
        for kind, array in (("images", np.zeros((n, 28, 28), np.uint8)),
                            ("labels", np.zeros(n, np.uint8))):
            (tmp_path / f"{prefix}-{kind}-idx{array.ndim}-ubyte").write_bytes(
                _idx_header(array) + array.tobytes())
    monkeypatch.setenv("FASTNET_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))     # the parsed-array cache
    monkeypatch.setattr(run, "run_cases", lambda *a, **k: pytest.fail("timed before checking"))
    assert cli.main(["bench", "--quick", "--family", family]) == 1
    assert (f"fastnet bench: error: FASTNET_DATA={tmp_path}: 100 training images of (784,) "
            f"values; the benchmarks train on up to {epochs.MOST_SAMPLES} of MNIST's"
            in capsys.readouterr().err)
    with pytest.raises(ValueError, match="100 training images"):
        epochs._data(101, False, np.float32)


def test_the_epoch_ids_do_not_match_k_torch():
    from fastnet.benchmarking.pytest_support import case_ids
    ids = case_ids(list(epochs.epoch_cases(quick=True)))
    assert len(set(ids)) == len(ids) and not [i for i in ids if "torch" in i.lower()]
    assert [i for i in ids if "(a)" in i][0].endswith("float64-(PT-float32)")


def test_start_up_is_the_median_of_rounds_each_with_its_own_empty_cache(monkeypatch):
    from fastnet.benchmarking import startup
    cold, warm, caches = iter([9.0, 12.0, 8.0]), iter([0.5, 0.3, 0.4]), []

    def probe(cache, threads=None):
        fresh = cache not in caches
        caches.append(cache)
        return {"first_steps": next(cold if fresh else warm), "import": 0.1}

    monkeypatch.setattr(startup, "time_to_first_step", probe)
    times = startup.cold_and_warm(rounds=3)
    assert len(set(caches)) == 3                 # cold then warm in each round's cache
    assert times["cold"]["first_steps"] == 9.0 and times["warm"]["first_steps"] == 0.4
    assert times["cold"]["all_first_steps"] == [9.0, 12.0, 8.0]
    assert times["warm"]["all_first_steps"] == [0.5, 0.3, 0.4]


def test_the_header_names_the_blas_kernels_and_the_variables_that_forced_them(monkeypatch):
    """This machine's environment sets OPENBLAS_CORETYPE=Haswell: NumPy's products (and the
    roofline) then run OpenBLAS's AVX2 kernels on an AVX-512 CPU, which the header said nowhere."""
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)
    line = report.blas_line()
    assert line.startswith("BLAS: ") and "(kernels: " in line
    assert line.endswith("set in the environment: OPENBLAS_CORETYPE=Haswell")
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert report.blas_line().endswith("no BLAS variables set")
    assert report.blas_line() in report.machine_lines()


def test_a_torch_that_cannot_be_imported_leaves_its_column_out(monkeypatch, capsys):
    """A broken install (a missing shared library: OSError) stopped the benchmarks with an
    error that did not name torch (a probe's finding); only ImportError was caught."""
    import builtins
    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "torch":
            raise OSError("libtorch_cpu.so: cannot open shared object file")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", broken)
    monkeypatch.setattr(report, "_TORCH_FAILURE", [])
    assert report.optional_torch() is None
    assert report.thread_counts()["torch"] is None and report.versions()["torch"] is None
    with pytest.raises(C.Unsupported, match="cannot be imported"):
        C.torch_module()
    err = capsys.readouterr().err
    assert err.count("torch is installed but cannot be imported (OSError: libtorch_cpu") == 1


def test_other_cores_is_the_machines_cpu_time_less_this_processs_over_the_wall_time(
        monkeypatch):
    from fastnet.benchmarking import hostload
    start = (10.0, 100.0, 5.0)       # wall s, machine CPU s, this process's CPU s
    monkeypatch.setattr(hostload, "snapshot", lambda: (12.0, 103.0, 6.5))
    assert hostload.other_cores(start) == pytest.approx((3.0 - 1.5) / 2.0)
    assert hostload.other_cores(None) is None
    # A window of a few clock ticks says nothing (a smoke run's one call read 44.7 cores).
    monkeypatch.setattr(hostload, "snapshot", lambda: (10.1, 101.0, 5.0))
    assert hostload.other_cores(start) is None


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="/proc/stat is Linux's")
def test_other_cores_sees_a_busy_process_that_is_not_ours():
    """A loop in a process we do not reap (``sh`` leaves it to init) while this one sleeps:
    nearly a core, as the report's mark needs."""
    from fastnet.benchmarking import hostload
    start = hostload.snapshot()
    subprocess.run(["sh", "-c", "timeout 1 sh -c 'while :; do :; done' &"], check=True)
    time.sleep(1.2)
    assert hostload.other_cores(start) > 0.5


def test_rows_timed_on_a_busy_machine_are_marked_and_the_header_says_why():
    quiet, busy = _row(host_other_cores=0.05), _row(direction="backward", host_other_cores=0.9)
    header = report.host_lines([quiet, busy], 0.4)
    assert header[0].startswith("machine load: other processes (and steal time) took 0.40")
    assert header[1].startswith("rows marked [busy] (1)")
    table = _table_rows(report.markdown([quiet, busy], header))
    # forward+backward: the max
    assert [r[0] for r in table] == ["relu", "relu [busy]", "relu [busy]"]
    assert report.host_lines([quiet], 0.05)[1:] == [] and report.host_lines([quiet], None) == []


@pytest.mark.parametrize("data, family, expected", [
    (None, None, "synthetic"), ("/some/mnist", ["epoch"], "FASTNET_DATA=/some/mnist"),
    ("/some/mnist", ["conv1d"], None)])
def test_the_header_names_the_data_the_epochs_train_on(monkeypatch, data, family, expected):
    """It was only in the JSON: a table of epochs gave no hint of real or synthetic data."""
    if data:
        monkeypatch.setenv("FASTNET_DATA", data)
    else:
        monkeypatch.delenv("FASTNET_DATA", raising=False)
    lines = run._data_lines(argparse.Namespace(family=family))
    assert (expected in lines[0]) if expected else lines == []


class _WithoutFusedUpdates:
    """The torch module with its private fused optimizer kernels hidden (another version)."""

    def __init__(self, torch):
        self._torch = torch

    def __getattr__(self, name):
        if name.startswith("_fused_"):
            raise AttributeError(name)
        return getattr(self._torch, name)


@pytest.mark.parametrize("fused", [True, False])
def test_pytorchs_update_is_its_kernel_called_directly_and_does_fastnets_step(fused, monkeypatch):
    """The optimizer rows once timed ``optimizer.step()``, whose ~20-70 us of Python per call
    training shares among every parameter (an audit: the (400,) rows read 4.7-6.4x PyTorch,
    mostly that). PyTorch's member is now the fused kernel itself (its ``step`` without
    them), and each member's one update from the same start agrees, over three steps too."""
    torch = pytest.importorskip("torch")
    if not fused:
        monkeypatch.setattr(C, "torch_module", lambda: _WithoutFusedUpdates(torch))
    for case in C.optimizer_cases(((5, 4),), (np.float32, np.float64)):
        updates = {member: case.make(member) for member in ("numba", "torch")}
        for _ in range(3):
            got = {member: [C.to_numpy(a).copy() for a in update()]
                   for member, update in updates.items()}
        if case.op == "adam" and not fused:
            continue    # torch.optim.Adam counts its steps; fastnet's member stays at step 5
        assert len(got["torch"]) == len(got["numba"]) == {"sgd": 1, "adagrad": 2, "adam": 3}[
            case.op]                                     # the parameter and the state
        for t, n in zip(got["torch"], got["numba"]):
            np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-6)
    if fused:
        assert all(hasattr(torch, f"_fused_{name}_") for name in ("adagrad", "adam"))


def test_the_result_checks_hold_under_python_O():
    """An audit: the checks were ``assert`` statements, which ``python -O`` removes, so
    ``python -O -m fastnet bench`` would have timed and tabled wrong results."""
    script = ("import numpy as np\n"
              "from fastnet.benchmarking.cases import _allclose\n"
              "try:\n"
              "    _allclose(1e-4)(np.zeros((4, 4), np.float64), np.ones((4, 4), np.float32))\n"
              "except AssertionError as err:\n"
              "    print('refused:', err)\n")
    out = subprocess.run([sys.executable, "-O", "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused: result of dtype float64")
