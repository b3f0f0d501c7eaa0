"""A user's own problem file and data file, used from where the user stands and from elsewhere:
figures at the end of train, plot --run and --resume from another directory."""

import json
import signal
import time

import processes
import pytest

from conftest import run_cli

BOWL = """from torchgd.problems import FunctionProblem

bowl = FunctionProblem(
    "bowl", ("x", "y"), f=lambda x, y: x**2 + 3 * y**2, df=lambda x, y: (2 * x, 6 * y),
    start={"x": 2.0, "y": 1.0}, description="f = x^2 + 3y^2",
)
"""


def _interrupt_after_checkpoint(args, cwd, run):
    """Start ``torchgd train ARGS`` in ``cwd``, Ctrl-C it once its first checkpoint exists."""
    proc = processes.start(["train", *args], cwd=cwd)
    deadline = time.monotonic() + 90
    while not (run / "checkpoint.pt").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"


def test_a_problem_file_trains_draws_and_replots_from_another_directory(tmp_path):
    home, other = tmp_path / "home", tmp_path / "other"
    home.mkdir(), other.mkdir()
    (home / "bowl.py").write_text(BOWL)
    proc = run_cli(
        "train",
        "--problem",
        "bowl.py:bowl",
        "--lr",
        "0.05",
        "--epochs",
        "20",
        "--name",
        "u",
        cwd=home,
    )
    assert proc.returncode == 0, proc.stderr
    run = home / "runs" / "u"
    assert {"loss.png", "trajectory.png", "summary.json"} <= {p.name for p in run.iterdir()}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["config"]["problem"] == "bowl"
    for kind in ("trajectory", "loss"):
        proc = run_cli("plot", kind, "--run", run, "--out", f"{kind}.png", cwd=other)
        assert proc.returncode == 0, proc.stderr
        assert (other / f"{kind}.png").stat().st_size > 1000


def test_a_run_on_users_files_resumes_from_another_directory_bit_for_bit(main_cli, tmp_path):
    home, other = tmp_path / "home", tmp_path / "other"
    home.mkdir(), other.mkdir()
    (home / "bowl.py").write_text(BOWL)
    common = ["--lr", "0.01", "--epochs", "3000", "--paths", "manual,optim", "--no-plots"]
    common += ["--no-tensorboard"]  # the user's files are what is tested here
    # the uninterrupted run in this process; the interrupted one and its resume in real ones
    full = main_cli(
        "train", "--problem", "bowl.py:bowl", *common, "--json", "--name", "f", cwd=home
    )
    assert full.returncode == 0, full.stderr
    run = home / "runs" / "i"
    _interrupt_after_checkpoint(
        ["--problem", "bowl.py:bowl", *common, "--checkpoint-every", "200", "--name", "i"],
        home,
        run,
    )
    proc = run_cli("train", "--resume", run, "--json", cwd=other)
    assert proc.returncode == 0, proc.stderr
    resumed, uninterrupted = json.loads(proc.stdout), json.loads(full.stdout)
    assert resumed["status"] == "completed"
    assert resumed["paths"] == uninterrupted["paths"]  # bit for bit, history included


def test_a_run_on_a_data_file_resumes_from_another_directory(main_cli, tmp_path):
    home, other = tmp_path / "home", tmp_path / "other"
    home.mkdir(), other.mkdir()
    rows = [f"{x},{2 * x + 0.1 * (-1) ** x}" for x in range(1, 41)]
    (home / "mine.csv").write_text("x,y\n" + "\n".join(rows) + "\n")
    common = ["--data", "mine.csv", "--batching", "sgd", "--lr", "0.0005", "--epochs", "300"]
    common += ["--paths", "manual", "--no-plots", "--no-tensorboard"]
    full = main_cli("train", *common, "--json", "--name", "f", cwd=home)  # (in this process)
    assert full.returncode == 0, full.stderr
    run = home / "runs" / "i"
    _interrupt_after_checkpoint([*common, "--checkpoint-every", "20", "--name", "i"], home, run)
    proc = run_cli("train", "--resume", run, "--json", cwd=other)
    assert proc.returncode == 0, proc.stderr
    resumed = json.loads(proc.stdout)
    assert resumed["config"]["data"] == "mine.csv"  # as the user gave it
    assert resumed["paths"] == json.loads(full.stdout)["paths"]


BROKEN_PROBLEMS = """
from torchgd.problems import FunctionProblem

nostart = FunctionProblem("nostart", ("a", "b"), f=lambda a, b: a**2 + b**2,
                          df=lambda a, b: (2 * a, 2 * b), start={"a": 1.0})
wrongkey = FunctionProblem("wrongkey", ("a", "b"), f=lambda a, b: a**2 + b**2,
                           df=lambda a, b: (2 * a,), start={"a": 1.0, "b": 2.0})


def boom(a, b):
    raise ValueError("my formula is not written yet")


raises = FunctionProblem("raises", ("a", "b"), f=lambda a, b: a**2 + b**2, df=boom,
                         start={"a": 1.0, "b": 2.0})


class Late:
    name, param_names, start, needs_data, calls = "late", ("a",), {"a": 1.0}, False, 0

    def loss(self, p, x=None, y=None):
        return p["a"] ** 2

    def grad(self, p, x=None, y=None):
        Late.calls += 1
        if Late.calls > 30:
            raise RuntimeError("step 30 broke")
        return {"a": 2 * p["a"]}


late = Late()


class BadRule:
    TORCH_CLASS = "SGD"

    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Hyper:
        lr: float = 0.01

    @staticmethod
    def update(params, grads, state, hp, spelling):
        raise KeyError("momentum")
"""


@pytest.mark.parametrize(
    "args,message",
    [
        (["--problem", "broken.py:nostart"], "problem 'nostart' has parameters a, b but its start"),
        (["--problem", "broken.py:wrongkey"], "grad must return a dict with a, b; it returned a"),
        (
            ["--problem", "broken.py:raises"],
            "its grad raised ValueError: my formula is not written yet (broken.py:11)",
        ),
        (["--optimizer", "broken.py:BadRule"], "its update raised KeyError: 'momentum'"),
    ],
)
def test_a_users_broken_code_is_one_line_and_exit_2_before_anything_is_written(
    cli_once, tmp_path, args, message
):
    (tmp_path / "broken.py").write_text(BROKEN_PROBLEMS)
    proc = cli_once("train", *args, "--no-plots", "--logdir", "runs")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message in proc.stderr and not (tmp_path / "runs").exists()


def test_a_users_problem_that_breaks_mid_run_is_one_line_exit_2_and_a_failed_summary(cli, tmp_path):
    (tmp_path / "broken.py").write_text(BROKEN_PROBLEMS)
    proc = cli(
        "train",
        "--problem",
        "broken.py:late",
        "--no-plots",
        "--logdir",
        "runs",
        "--name",
        "r",
        "--quiet",
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "RuntimeError: step 30 broke (broken.py:" in proc.stderr
    summary = json.loads((tmp_path / "runs" / "r" / "summary.json").read_text())
    assert summary["status"] == "failed" and "step 30 broke" in summary["error"]
    assert json.loads((tmp_path / "runs" / "r" / "config.json").read_text())["problem"] == "late"


def test_resume_refuses_an_edited_problem_or_data_file_and_keeps_the_runs_own_outputs(
    main_cli, tmp_path
):
    home = tmp_path / "home"
    home.mkdir()
    (home / "bowl.py").write_text(BOWL)
    common = ["--problem", "bowl.py:bowl", "--lr", "0.001", "--epochs", "3000"]
    common += ["--paths", "manual", "--no-plots", "--checkpoint-every", "100", "--name", "i"]
    run = home / "runs" / "i"
    _interrupt_after_checkpoint(common, home, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    # a changed option of what the run writes is refused like any other
    # the refusals through main() in this process (the resume at the end in a real one)
    proc = main_cli("train", "--resume", run, "--no-tensorboard", cwd=home)
    assert proc.returncode == 2 and "--no-tensorboard would change it" in proc.stderr
    # the problem file moved its minimum: resuming would not continue the same run
    (home / "bowl.py").write_text(BOWL.replace("x**2 + 3", "(x - 1)**2 + 3"))
    proc = main_cli("train", "--resume", run, cwd=home)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"'{home / 'bowl.py'}' changed since the run started" in proc.stderr
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    # the file as it was: the run resumes, still without figures (it was started with --no-plots)
    (home / "bowl.py").write_text(BOWL)
    proc = main_cli("train", "--resume", run, "--epochs", "3000", cwd=home)
    assert proc.returncode == 2  # (an option, even the run's own value, is refused)
    proc = run_cli("train", "--resume", run, "--quiet", cwd=home, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert not [p for p in run.rglob("*.png")]


def test_resume_refuses_an_edited_data_file(tmp_path):
    rows = [f"{x},{2 * x + 0.1 * (-1) ** x}" for x in range(1, 41)]
    (tmp_path / "mine.csv").write_text("x,y\n" + "\n".join(rows) + "\n")
    common = ["--data", "mine.csv", "--batching", "sgd", "--lr", "0.0005", "--epochs", "100000"]
    common += ["--paths", "manual", "--no-plots", "--checkpoint-every", "40", "--name", "i"]
    run = tmp_path / "runs" / "i"
    _interrupt_after_checkpoint(common, tmp_path, run)
    (tmp_path / "mine.csv").write_text("x,y\n" + "\n".join(rows[:-1]) + "\n")
    proc = run_cli("train", "--resume", run, cwd=tmp_path)
    assert proc.returncode == 2 and "mine.csv' changed since the run started" in proc.stderr
