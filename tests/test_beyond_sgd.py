"""Issue 5: every torch.optim.SGD option in lockstep, sweeps, the divergence guard, saddles."""

import itertools
import json
import math
import os

import processes
import pytest

import torchgd
from conftest import ROOT
from torchgd import sweep as S
from torchgd import theory
from torchgd.batching import parse_batching

OPTIONS = [
    dict(momentum=m, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
    for m, d, n, wd, mx in itertools.product(
        [0.0, 0.9], [0.0, 0.3], [False, True], [0.0, 0.01], [False, True]
    )
    if not (n and (m == 0 or d != 0))
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batching", ["batch", "sgd", "minibatch:3"])
@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items() if v) or "plain"
)
def test_every_option_in_lockstep_with_torch_optim_sgd(options, batching, dtype):
    exact = torchgd.fit(
        "linear",
        "lecture",
        batching=batching,
        epochs=15,
        dtype=dtype,
        spelling="torch-exact",
        guard=False,
        **options,
    )
    # the same gradient through the same operations: bit for bit
    assert exact.agreement["params"]["autograd~optim"]["max_ulp"] == 0
    textbook = torchgd.fit(
        "linear", "lecture", batching=batching, epochs=15, dtype=dtype, guard=False, **options
    )
    # the textbook rule rounds differently; 60 steps of a few roundings each stay within
    # a small relative distance, and every difference comes with its reason
    assert textbook.agreement["max_rel"] <= {"float64": 1e-12, "float32": 1e-4}[dtype]
    if textbook.agreement["max_ulp"]:
        assert textbook.agreement["reasons"]


def test_d2l_numbers_x_squared_from_10():
    r = torchgd.fit("square", init={"x": 10.0}, lr=0.2, epochs=10)
    assert round(r.params()["x"], 6) == 0.060466  # d2l: epoch 10, x: 0.060466
    assert r.params()["x"] == pytest.approx(10 * 0.6**10, rel=1e-14)
    assert r.agreement["max_ulp"] == 0
    diverging = torchgd.fit("square", init={"x": 10.0}, lr=1.1, epochs=10)
    assert diverging.status == "diverged"  # |1 - 2*1.1| = 1.2 > 1


def test_divergence_stops_the_run_with_exit_3_and_the_theorys_advice(cli, tmp_path):
    proc = cli("train", "--lr", "0.2", "--logdir", tmp_path, "--name", "d")
    assert proc.returncode == 3
    (line,) = proc.stderr.strip().splitlines()
    assert "diverged at epoch 6: the cost over all data grew 5 epochs in a row" in line
    assert "converges only for lr < 0.133333 (lr = 0.2)" in line and "try --lr 0.0667" in line
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["epochs"] == 6
    assert summary["diverged"]["critical_lr"] == 1 / 7.5
    assert (tmp_path / "d" / "loss.png").exists()  # the run directory stays complete
    assert list((tmp_path / "d").glob("events.out.tfevents.*"))


def test_patience_and_no_guard():
    r = torchgd.fit("linear", "lecture", lr=0.2, epochs=30, patience=2)
    assert r.status == "diverged" and r.epochs == 3
    r = torchgd.fit("linear", "lecture", lr=0.2, epochs=30, guard=False)
    assert r.status == "completed" and r.epochs == 30
    r = torchgd.fit("linear", "lecture", lr=5.0, epochs=400, guard=False)
    assert r.status == "completed"  # overflows to inf/nan, reported, not stopped
    assert r.paths["manual"]["loss"] != r.paths["manual"]["loss"] or r.paths["manual"][
        "loss"
    ] == float("inf")


def test_non_finite_values_stop_a_guarded_run():
    r = torchgd.fit("linear", "lecture", lr=5.0, epochs=400, patience=1000)
    assert r.status == "diverged" and "no longer finite" in r.diverged["reason"]
    assert r.diverged["last_finite_loss"] is not None


def test_theory_critical_lrs_on_the_lecture_data():
    lecture = torchgd.datasets.lecture()
    cfg = {"problem": "linear", "data": "lecture"}

    def critical(batching):
        return theory.analyse(cfg, lecture, parse_batching(batching)).critical_lr

    assert critical("batch") == 1 / 7.5
    t = theory.analyse(cfg, lecture, parse_batching("sgd"))
    c = t.critical_lr  # one feature: the epoch map is prod_n (1 - 2 lr x_n^2)
    xs = [1.0, 2.0, 3.0, 4.0]
    assert math.prod(1 - 2 * c * x * x for x in xs) == pytest.approx(-1, abs=1e-9)
    assert t.rate(c * (1 - 1e-6)) < 1 < t.rate(c * (1 + 1e-6))
    assert all(t.rate(c * f) < 1 for f in (0.1, 0.5, 0.9, 0.99))


@pytest.mark.parametrize("batching", ["batch", "sgd", "minibatch:3"])
def test_every_sweep_lane_is_bit_identical_to_its_own_run(batching):
    lrs = S.parse_lrs("0.01:0.3:15")
    r = S.sweep(lrs=lrs, batching=batching, epochs=60)
    for i, lr in enumerate(lrs):
        single = torchgd.fit(lr=lr, batching=batching, epochs=60, paths=("manual",))
        hist = single.paths["manual"]["history"]
        assert r["params"]["w"][i] == single.params()["w"]
        assert r["history"]["loss"][i][: len(hist["loss"])] == hist["loss"]
        assert (r["status"][i] == "diverged") == (single.status == "diverged")


def test_sweep_finds_the_critical_lr_within_one_grid_step_and_predicts_the_rates(
    main_cli, tmp_path
):
    proc = main_cli("sweep", "--lr", "0.01:0.3:30", "--json", "--logdir", tmp_path, "--name", "s")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    step = r["lrs"][1] - r["lrs"][0]
    assert abs(r["critical_lr"]["measured"] - 1 / 7.5) <= step
    assert r["critical_lr"]["predicted"] == 1 / 7.5
    for lr, measured, predicted in zip(r["lrs"], r["measured_rate"], r["predicted_rate"]):
        assert predicted == abs(1 - 2 * lr * 7.5)
        if measured is not None and predicted > 0.02:
            assert measured == pytest.approx(predicted, rel=1e-6)
    assert set(r["status"]) == {"converged", "slow", "diverged"}
    assert (tmp_path / "s" / "sweep.png").exists()


def test_sweep_bad_lr_spec_is_one_line_exit_2(main_cli, tmp_path):
    for spec in ("0.1", "0.3:0.1:5", "0:1:5", "a:b:c"):
        proc = main_cli("sweep", "--lr", spec, "--logdir", tmp_path)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1


def test_gradient_descent_on_the_stable_axis_stays_at_the_saddle():
    r = torchgd.fit("saddle", init={"x": -3.0, "y": 0.0}, lr=0.1, epochs=150)
    for path in ("manual", "autograd", "optim"):
        assert r.params(path)["y"] == 0.0 and abs(r.params(path)["x"]) < 1e-10
    # x shrinks by 0.8 a step and the paths round it differently, and say so
    assert {x["kind"] for x in r.agreement["reasons"]} <= {"update rule", "gradient"}


@pytest.mark.parametrize("sigma,seed", [(1e-4, 0), (1e-4, 1), (1e-1, 2)])
def test_noise_escapes_the_saddle_and_every_path_sees_the_same_noise(sigma, seed):
    def run():
        return torchgd.fit(
            "saddle",
            init={"x": -3.0, "y": 0.0},
            lr=0.1,
            epochs=150,
            noise=sigma,
            seed=seed,
            spelling="torch-exact",
        )

    r = run()
    ys = r.paths["manual"]["history"]["y"]
    assert abs(ys[-1]) > 1  # escaped: the unstable direction grows by 1.2 per step
    # with torch's operations in every path the noisy runs stay identical
    assert r.agreement["max_ulp"] == 0
    assert run().paths["manual"]["history"]["y"] == ys  # seeded


def test_saddle_script_prints_steps_to_escape(tmp_path):
    (tmp_path / "runs").mkdir()
    proc = processes.run_python(
        [ROOT / "scripts" / "saddle.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},  # no venv on PATH
    )
    assert proc.returncode == 0, proc.stderr
    assert "y = 0.0  (stuck at the saddle point)" in proc.stdout
    assert "never" not in proc.stdout.split("steps to |y| > 1")[1]
    assert (tmp_path / "runs" / "saddle.png").exists()


@pytest.mark.parametrize("sigma", [1e-8, 1e-4, 1e-1])
def test_the_saddles_escape_time_is_what_the_script_predicts(sigma):
    """y_t = 1.2 y_(t-1) - lr * noise: escapes (|y| > 1) after log(1/(lr*sigma))/log(1.2) steps
    on average, with a spread of about 6 steps (log|Z| / log 1.2, Z standard normal): the mean
    of 20 seeds is within 2 steps of it (the old formula, log(1/sigma)/log(1.2), forgot the lr
    that scales the noise and was 12.6 steps early)."""
    import importlib.util
    import math

    spec = importlib.util.spec_from_file_location("saddle", ROOT / "scripts" / "saddle.py")
    saddle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(saddle)  # its functions; the demo runs under __main__ only
    steps = []
    for seed in range(20):
        r = torchgd.fit(
            "saddle", init=saddle.START, lr=saddle.LR, epochs=saddle.STEPS, noise=sigma,
            seed=seed, paths=("manual",),
        )  # fmt: skip
        steps.append(saddle.steps_to_escape(r.paths["manual"]["history"]["y"]))
    mean = sum(steps) / len(steps)
    predicted = saddle.predicted_escape(sigma)
    assert predicted == math.log(1 / (0.1 * sigma)) / math.log(1.2)
    assert abs(mean - predicted) <= 2, (mean, predicted, steps)
    assert abs(mean - math.log(1 / sigma) / math.log(1.2)) > 10  # the old formula was off


@pytest.mark.parametrize("name", ["square", "xcos"])
def test_one_dimensional_problems_are_checked_like_the_others(name):
    assert torchgd.check_gradients(name)["ok"]


def test_xcos_gets_caught_in_a_local_minimum_from_one_start_and_not_another():
    import torch

    p = torchgd.problems.PROBLEMS["xcos"]
    caught = torchgd.fit("xcos", init={"x": -3.0}, lr=0.3, epochs=200).params()["x"]
    other = torchgd.fit("xcos", init={"x": 3.0}, lr=0.3, epochs=200).params()["x"]
    for x in (caught, other):  # both are stationary points: minima of f
        assert abs(p.df(torch.tensor(x, dtype=torch.float64))[0].item()) < 1e-9
    f = [p.f(torch.tensor(x, dtype=torch.float64)).item() for x in (caught, other)]
    assert f[0] > f[1] + 5  # the first is a local minimum, far worse than the second


def test_sweep_runs_many_features_with_a_bias(main_cli, tmp_path):
    proc = main_cli(
        "sweep", "--lr", "0.05:1.2:6", "--data", "synthetic:200,d=2,noise=0.1,seed=3", "--bias",
        "--json", "--no-plots", "--logdir", tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["config"]["bias"] and len(r["params"]["w"][0]) == 2 and len(r["params"]["b"]) == 6
    assert r["optimum_loss"] > 0 and r["critical_lr"]["predicted"] > 0


def test_a_lane_that_oscillates_at_the_critical_lr_is_stalled_and_found():
    from torchgd import plots, sweep

    # elliptic x^2 + 2 y^2: y -> (1 - 4 lr) y, so at lr 0.5 y flips between -2 and 2 for ever
    r = sweep.sweep("elliptic", lrs=[0.4, 0.45, 0.5, 0.55], epochs=60)
    assert r["status"] == ["converged", "converged", "stalled", "diverged"]
    assert r["measured_rate"][:3] == pytest.approx([0.6, 0.8, 1.0], rel=1e-9)
    assert r["critical_lr"]["measured"] == 0.5
    ax = plots.sweep(r).axes[0]
    assert "stalled" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_a_lane_that_crawls_at_a_small_lr_is_not_taken_for_the_critical_lr():
    """On Rosenbrock's valley Adam at lr 0.01 moves so slowly that its error shrinks by less
    than rounding per epoch (a rate of 1.001, "stalled") while every larger lr does better:
    the found critical lr is the smallest from which every larger lane fails, here none."""
    r = S.sweep("rosenbrock", lrs=[0.01, 0.05, 0.1, 0.2], epochs=50, optimizer="adam")
    assert r["status"][0] == "stalled" and "stalled" not in r["status"][1:]
    assert r["critical_lr"]["measured"] is None
    lecture = S.sweep(lrs=[0.05, 0.1, 0.14, 0.2], epochs=100)  # batch GD: 0.1333 the limit
    assert lecture["critical_lr"]["measured"] == 0.14
