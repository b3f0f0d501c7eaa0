"""--compile: the manual path's big-batch sums as one loop compiled by torch.compile.

These tests compile for real (inductor and the machine's C++ compiler): the first one in a fresh
process pays the compile (seconds); the data have one size per model, so each model compiles
once.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import torchgd
from conftest import run_cli
from torchgd import bench, check, checkpoints, problems, train
from torchgd import data as datasets
from torchgd.problems import Linear

N = 3000  # rows: six chunks of 512


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(problems.Linear, "chunk_rows", 512)


CASES = {"one feature": (1, False), "three features": (3, False), "bias": (2, True)}


@pytest.mark.parametrize("d,bias", CASES.values(), ids=CASES)
def test_the_fused_sums_are_the_formula_summed_in_float64(small_chunks, d, bias):
    ds = datasets.synthetic(N, d=d, noise=0.3, seed=1, bias=0.5, dtype=torch.float32)
    p = train.plan(data=ds, dtype="float32", bias=bias, compile=True, epochs=1)
    problem, params = p.problem, p.params0
    assert p.fused is not None and p.fused.seconds > 0
    fused = check.step_gradients("manual", problem, params, ds.x, ds.y, p.fused)
    eager = check.step_gradients("manual", problem, params, ds.x, ds.y)
    p64 = {k: v.double() for k, v in params.items()}
    x64, y64 = ds.x.double(), ds.y.double()
    ref = problem.loss(p64, x64, y64), problem.grad(p64, x64, y64)
    for got, want in zip((fused[0], *fused[1].values()), (ref[0], *ref[1].values())):
        assert got.dtype == torch.float32
        # one rounding of a float64 result: within half a float32 ulp of the float64 formula
        # (plus the float32 residuals it starts from, which every path shares)
        np.testing.assert_allclose(got.double(), want, rtol=2**-24 * 4, atol=1e-6)
    for got, want in zip(fused[1].values(), eager[1].values()):
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_a_compiled_run_keeps_the_paths_in_lockstep_and_says_why_they_differ(small_chunks):
    ds = datasets.synthetic(N, noise=0.3, seed=1, dtype=torch.float32)
    r = torchgd.fit(data=ds, dtype="float32", lr=0.1, epochs=30, compile=True)
    plain = torchgd.fit(data=ds, dtype="float32", lr=0.1, epochs=30)
    assert r.config["compile"] is True and r.status == "completed"
    for path in train.PATH_NAMES:  # the compiled manual path ends where the eager one ends
        np.testing.assert_allclose(r.params(path)["w"], plain.params(path)["w"], rtol=1e-6)
    # autograd and optim ran eagerly, checked against the formula at every step as before
    assert r.agreement["grad"]["max_rel"] < 1e-5
    assert r.params("autograd") == plain.params("autograd")
    # and against the float64 shadow the compiled manual path is no further than the eager one
    ref = r.agreement["float64_reference"]["manual"]["max_abs"]
    assert ref <= plain.agreement["float64_reference"]["manual"]["max_abs"] + 1e-7
    if r.agreement["params"]["manual~autograd"]["max_ulp"]:
        reasons = " ".join(x["reason"] for x in r.agreement["reasons"])
        assert "--compile" in reasons and "float64" in reasons


def test_the_fused_kernel_is_deterministic_so_resumed_runs_stay_bit_identical(small_chunks):
    ds = datasets.synthetic(N, noise=0.3, seed=1, dtype=torch.float32)
    p = train.plan(data=ds, dtype="float32", compile=True)
    first = p.fused(p.params0, ds.x, ds.y)
    again = p.fused(p.params0, ds.x, ds.y)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1]["w"], again[1]["w"])
    a = train.execute(train.plan(data=ds, dtype="float32", lr=0.1, epochs=5, compile=True))
    b = train.execute(train.plan(data=ds, dtype="float32", lr=0.1, epochs=5, compile=True))
    assert a.paths["manual"]["history"] == b.paths["manual"]["history"]


def test_compile_with_only_small_batches_changes_nothing_and_says_so(main_cli):
    proc = main_cli("train", "--compile", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    assert "--compile: nothing to compile" in proc.stdout
    # the lecture's own output, bit for bit: the lecture's expressions ran
    plain = main_cli("train", "--no-plots")
    strip = [ln for ln in proc.stdout.splitlines() if not ln.startswith(("--compile", "Run dir"))]
    assert strip == [ln for ln in plain.stdout.splitlines() if not ln.startswith("Run dir")]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--problem", "paraboloid"], "does not apply to problem 'paraboloid'"),
        (["--paths", "autograd,optim"], "add manual to --paths"),
    ],
)
def test_compile_where_it_cannot_apply_is_one_line_and_exit_code_2(main_cli, args, message):
    proc = main_cli("train", "--compile", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not Path("runs").exists()


def test_a_machine_without_a_cpp_compiler_gets_one_line_and_no_run_directory(tmp_path):
    env = {"CXX": str(tmp_path / "no-such-g++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "c")}
    proc = run_cli(
        "train", "--data", "synthetic:600000", "--dtype", "float32", "--compile",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "run without --compile" in proc.stderr
    assert "No working C++ compiler" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_the_big_n_bench_times_the_compiled_manual_path(small_chunks):
    r = bench.run(quick=True, only=("big_n",), big_n=N, compile=True)["big_n"]
    row = r["paths"]["manual --compile"]
    # quick sizes under a loaded machine: the long run's best time can come out no longer than
    # the short one's, and the epoch's estimate is then 0 (never negative): a timing exists
    assert row["ratio_to_dot"] >= 0 and row["ratio_to_dot"] == row["epoch_s"] / r["dot_s"]
    assert row["compile_s"] > 0
    assert row["grad_rel_err"] <= r["grad_rel_err_target"]
    assert "manual --compile" in bench.format_table({**r_machine(), "big_n": r})


def r_machine():
    return {"machine": {"cpu": "x", "cores": 1, "python": "3", "torch": "2"}, "quick": True}


def test_a_compiled_run_resumed_from_its_checkpoint_ends_bit_identical(small_chunks, tmp_path):
    ds = datasets.synthetic(N, noise=0.3, seed=1, dtype=torch.float32)
    kw = dict(data=ds, dtype="float32", lr=0.1, compile=True, batching="minibatch:1000")
    kw["shuffle"] = True  # batches of 1000 rows: two chunks each, so the fused kernel runs
    whole = train.execute(train.plan(**kw, epochs=6))
    first = train.plan(**kw, epochs=3)
    train.execute(first, checkpoint=train.Checkpointer(tmp_path, every=3))
    state = checkpoints.load(tmp_path / "checkpoint.pt")
    resumed = train.execute(train.plan(**kw, epochs=6), resume=state)
    assert resumed.paths == whole.paths  # every path's parameters and history, bit for bit
    assert resumed.agreement == whole.agreement


def test_check_compile_holds_the_compiled_gradient_to_the_float64_formula(small_chunks):
    ds = datasets.synthetic(N, d=2, noise=0.3, seed=2, bias=0.5, dtype=torch.float32)
    r = check.check_gradients(Linear(bias=True), data=ds, dtype="float32", points=4, compile=True)
    assert r["ok"], r["failures"]
    assert r["compiled"] is True
    compiled = r["as_trained_vs_float64"]["compiled"]
    # one rounding of a float64 result, against the eager path's rounding at every addition
    assert compiled["max_rel"] <= r["as_trained_vs_float64"]["manual"]["max_rel"]
    assert "compiled step ~ float64" in check.format_report(r)


def test_check_compile_on_small_data_says_there_is_nothing_to_compile(main_cli):
    proc = main_cli("check", "--problem", "linear", "--compile")
    assert proc.returncode == 0 and "nothing to compile" in proc.stdout
    assert "compiled step" not in proc.stdout
    proc = main_cli("check", "--problem", "rosenbrock", "--compile")
    assert proc.returncode == 2 and "does not apply to problem 'rosenbrock'" in proc.stderr
