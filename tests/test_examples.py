"""Every file in examples/ does what it says, run as a student runs it: from a directory outside
the checkout, through the real command line and the real Python API."""

import json
import os

import processes
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import torchgd
from conftest import ROOT, run_cli

EXAMPLES = ROOT / "examples"


def test_the_training_script_writes_run_directories_with_events_and_figures(tmp_path):
    proc = processes.run_python(
        [EXAMPLES / "train_script.py"], cwd=tmp_path, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},  # no venv on PATH
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "w = 1.9999999999999998" in proc.stdout  # the lecture's number, bit for bit
    assert "the paths differ by at most 0 ulp" in proc.stdout
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("fit-") for r in runs)
    for run in runs:
        assert {"config.json", "summary.json", "loss.png"} <= {p.name for p in run.iterdir()}
        assert json.loads((run / "summary.json").read_text())["status"] == "completed"
        acc = EventAccumulator(str(run), size_guidance={"images": 0})
        acc.Reload()  # TensorBoard's own reader sees the loss of every step
        assert {"loss/raw/manual", "loss/raw/optim"} <= set(acc.Tags()["scalars"])
        # and the figures in its Images tab, as train writes them
        assert "plots/loss" in acc.Tags()["images"]
    lecture = json.loads((runs[0] / "summary.json").read_text())
    assert lecture["paths"]["manual"]["params"]["w"] == 1.9999999999999998
    # the hours fit: numpy's least squares on the script's own numbers
    import numpy as np

    hours = np.array([1.0, 2, 3, 4, 5, 6, 7, 8])
    score = np.array([52.0, 61, 67, 71, 80, 86, 91, 97])
    w, b = np.polyfit(hours, score, 1)
    assert f"score = {w:.3f} * hours + {b:.3f}" in proc.stdout
    # a student runs it again within the same second: new directories, nothing overwritten
    # (its fit calls in this process, the first time's directories in place)
    again = [torchgd.fit(batching="sgd", epochs=2, logdir=tmp_path / "runs", plots=False)
             for _ in range(2)]  # fmt: skip
    assert len({r.run_dir for r in again} | set(runs)) == 4
    assert len(list((tmp_path / "runs").iterdir())) == 4


def test_my_problem_trains_and_is_checked_from_another_directory(tmp_path):
    spec = f"{EXAMPLES / 'my_problem.py'}:bowl"
    proc = run_cli("train", "--problem", spec, "--lr", "0.1", "--steps", "200", "--json",
                   "--no-plots", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    params = json.loads(proc.stdout)["paths"]["manual"]["params"]
    assert params["x"] == pytest.approx(1.0, abs=1e-9) and params["y"] == pytest.approx(-0.5)
    assert run_cli("check", "--problem", spec, cwd=tmp_path).returncode == 0
    wrong = run_cli("check", "--problem", f"{EXAMPLES / 'my_problem.py'}:forgot_the_two",
                    cwd=tmp_path)  # fmt: skip
    assert wrong.returncode == 1
    assert "the formula is 0.5 times autograd's at every point" in wrong.stdout


def test_my_data_file_fits_a_line_with_a_bias(tmp_path):
    import numpy as np

    proc = run_cli("train", "--data", EXAMPLES / "hours.csv", "--bias", "--lr", "0.035",
                   "--epochs", "3000", "--paths", "manual", "--json", "--no-plots",
                   "--no-tensorboard", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)["paths"]["manual"]["params"]
    data = np.loadtxt(EXAMPLES / "hours.csv", delimiter=",", skiprows=1)
    w, b = np.polyfit(data[:, 0], data[:, 1], 1)
    assert got["w"] == pytest.approx(w, rel=1e-9) and got["b"] == pytest.approx(b, rel=1e-9)


def test_my_rule_is_momentum_sgd_to_rounding_and_the_report_says_why(tmp_path):
    rule = f"{EXAMPLES / 'my_rule.py'}:MomentumSGD"
    proc = run_cli("train", "--optimizer", rule, "--momentum", "0.9", "--batching", "sgd",
                   "--json", "--no-plots", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["config"]["momentum"] == 0.9
    # the student's v = momentum * v + grad from v = 0 is torch.optim.SGD's buffer; the step
    # w - lr * v rounds twice where torch's add_(v, alpha=-lr) rounds once: a few ulp, explained
    a = out["agreement"]
    assert 0 < a["params"]["autograd~optim"]["max_rel"] < 1e-14
    why = " ".join(r["reason"] for r in a["reasons"] if r["between"] == "autograd~optim")
    assert "torch.optim.SGD" in why and "far beyond rounding" not in why
