"""The terminal as users meet it: what torchgd prints, its help, exit codes, and what happens
when a disk fills up mid-run."""

import argparse
import fcntl
import json
import os
import pty
import resource
import select
import signal
import struct
import subprocess
import termios
import time

import processes
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT, run_cli
from torchgd.cli import build_parser


def test_torchgd_alone_prints_its_commands(cli):
    proc = cli()
    assert proc.returncode == 0 and proc.stderr == ""
    for command in ("lecture", "train", "sweep", "plot", "tb", "check", "bench"):
        assert f"\n    {command} " in proc.stdout
    assert "exit codes:" in proc.stdout and "3 diverged" in proc.stdout


def _options():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                yield command, p, action


@pytest.mark.parametrize("command", ["lecture", "train", "sweep", "plot", "tb", "check", "bench"])
def test_every_option_has_help_that_states_its_default(command):
    options = [(p, a) for c, p, a in _options() if c == command]
    assert options
    for p, action in options:
        assert action.help, f"{command} {action.option_strings[0]} has no help text"
        text = p._get_formatter()._expand_help(action) if action.help else ""
        shown = p._get_formatter()._get_help_string(action) % {
            **vars(action),
            "default": action.default,
            "prog": p.prog,
        }
        has_default = not any(action.default is v for v in (None, False, argparse.SUPPRESS))
        if has_default:
            assert "default" in shown, f"{command} {action.option_strings[0]}: {text!r}"


def test_train_starts_with_one_line_saying_what_it_runs(cli, tmp_path):
    (tmp_path / "mine.csv").write_text("a,b,y\n1,2,3\n2,1,4\n3,3,7\n")
    proc = cli(
        "train",
        "--data",
        "mine.csv",
        "--bias",
        "--batching",
        "sgd",
        "--lr",
        "0.02",
        "--epochs",
        "3",
        "--paths",
        "manual,optim",
        "--momentum",
        "0.5",
        "--no-plots",
    )
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    for part in (
        "linear model y = x @ w + b",
        "on mine.csv (3 samples, 2 features)",
        "sgd in order",
        "lr 0.02",
        "3 epochs",
        "momentum 0.5",
        "paths manual/optim",
        "cpu float64",
    ):
        assert part in first, (part, first)


def _pty_run(args, cwd):
    """Run the CLI with stdout and stderr on one terminal, as in a shell; returns the bytes."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120 columns
    proc = processes.start(args, cwd=cwd, env={"COLUMNS": "100"}, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(master)
    return proc.returncode, out.decode(errors="replace")


def _screen_lines(text):
    """What a terminal shows on each line: a carriage return moves back to the line's start,
    and later characters overwrite earlier ones."""
    lines = []
    for raw in text.split("\n"):
        row, col = [], 0
        for ch in raw:
            if ch == "\r":
                col = 0
            else:
                if col < len(row):
                    row[col] = ch
                else:
                    row.append(ch)
                col += 1
        lines.append("".join(row).rstrip())
    return lines


def test_progress_bar_and_progress_lines_never_share_a_line(tmp_path):
    # long enough (several seconds) for the bar to show, with a Progress line every 10,000 steps
    code, out = _pty_run(
        [
            "train",
            "--problem",
            "rosenbrock",
            "--lr",
            "0.001",
            "--epochs",
            "30000",
            "--paths",
            "manual",
            "--no-plots",
            "--no-tensorboard",
        ],
        tmp_path,
    )
    assert code == 0, out[-2000:]
    assert "it/s" in out or "epoch/s" in out, "the bar never showed: the run was too short"
    progress = [line for line in _screen_lines(out) if "Progress:" in line]
    assert len(progress) == 30  # every 1,000th of 30,000 epochs: a steady cadence
    for line in progress:
        assert line.startswith("Progress: epoch="), line
        assert "%|" not in line and "epoch/s" not in line, line


def _limit_file_size(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_a_full_disk_mid_run_keeps_the_result_then_is_one_line_exit_74(tmp_path):
    args = ["--batching", "sgd", "--epochs", "1000", "--paths", "manual", "--no-plots"]
    proc = run_cli(
        "train", *args, "--log-every", "1", "--name", "full",
        cwd=tmp_path, timeout=300,
        preexec_fn=_limit_file_size(200_000),  # the event file outgrows it mid-run
    )  # fmt: skip
    assert proc.returncode == 74, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "File too large" in err and "events.out.tfevents" in err
    # the events were auxiliary: training went on to the end, the report and summary came first
    assert "Agreement over 4000 steps" in proc.stdout and "Progress: epoch=1000" in proc.stdout
    run = tmp_path / "runs" / "full"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 1000
    assert "events.out.tfevents" in summary["not_written"][0]
    assert json.loads((run / "config.json").read_text())["epochs"] == 1000
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()  # every whole record reads back; steps from 1 with none missing
    steps = [e.step for e in acc.Scalars("loss/raw/manual")]
    assert 300 < len(steps) < 4000 and steps == list(range(1, len(steps) + 1))


def test_run_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        proc = run_cli("train", "--epochs", "3", "--name", "p", "--checkpoint-every", "1",
                       cwd=tmp_path)  # fmt: skip
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    files = [p for p in (tmp_path / "runs" / "p").rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"config.json", "summary.json", "checkpoint.pt", "loss.png"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    for p in files:
        assert oct(p.stat().st_mode & 0o777) == "0o644", p


def test_the_exit_codes_are_documented_in_the_readme():
    readme = (ROOT / "docs" / "cli.md").read_text()
    section = readme[readme.index("## Exit codes") :]
    for code in ("0", "1", "2", "3", "74", "130", "141"):
        assert f"| {code} |" in section, code


def test_no_option_of_resume_is_silently_ignored(main_cli, tmp_path):
    proc = main_cli("train", "--resume", tmp_path, "--logdir", "elsewhere")
    assert proc.returncode == 2 and "--logdir would change it" in proc.stderr


SLOW = """import time

import torch

from torchgd.problems import FunctionProblem


def f(x, y):
    if x.numel() > 100:  # the figure's 200 x 200 grid, not a training step
        time.sleep(60)
    return x**2 + y**2


slow = FunctionProblem("slow", ("x", "y"), f=f, df=lambda x, y: (2 * x, 2 * y),
                       start={"x": 1.0, "y": 1.0}, description="f = x^2 + y^2, slow on a grid")
"""


def _start(args, cwd, env=None):
    return processes.start(args, cwd=cwd, env=env)


def _wait_for(path, proc, timeout=120):
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)


def _whole_pngs(run):
    pngs = list(run.rglob("*.png"))
    for png in pngs:
        raw = png.read_bytes()
        assert raw.startswith(b"\x89PNG") and raw.endswith(b"IEND\xaeB`\x82"), png
    return {p.name for p in pngs}


def test_ctrl_c_while_figures_are_drawn_exits_130_and_keeps_every_result(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW)
    env = {"TMPDIR": str(tmp_path)}  # where the drawer's scratch directory would go
    proc = _start(
        ["train", "--problem", "slow.py:slow", "--lr", "0.1", "--epochs", "5", "--name", "s"],
        tmp_path,
        env,
    )
    run = tmp_path / "runs" / "s"
    _wait_for(run / "summary.json", proc)  # trained; the trajectory figure takes a minute
    proc.send_signal(signal.SIGINT)
    try:  # honoured at once, not after the figure's minute
        out, err = proc.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"SIGINT not honoured while drawing: {proc.communicate()}") from None
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["torchgd: interrupted"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 5
    assert "trajectory.png" not in _whole_pngs(run)  # finished figures whole, the rest absent


def test_ctrl_c_between_the_lectures_parts_keeps_the_first(tmp_path):
    env = {"TMPDIR": str(tmp_path)}
    proc = _start(["lecture", "--name", "l"], tmp_path, env)
    run = tmp_path / "runs" / "l"
    _wait_for(run / "batch" / "summary.json", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    top = json.loads((run / "summary.json").read_text())  # written on the way out
    assert top["batch"]["status"] == "completed"
    batch = json.loads((run / "batch" / "summary.json").read_text())
    assert batch["paths"]["manual"]["params"]["w"] == top["batch"]["paths"]["manual"]["params"]["w"]
    if "sgd" in top:  # the interrupt came in the second part (stopped there) or its figures
        sgd = json.loads((run / "sgd" / "summary.json").read_text())
        assert top["sgd"]["status"] == sgd["status"] in ("interrupted", "completed")
        assert top["sgd"]["steps"] == sgd["steps"]
    _whole_pngs(run)
    assert not list(tmp_path.glob("torchgd-figures-*"))  # the drawer's scratch is gone


def test_figures_are_drawn_here_when_the_drawer_dies(tmp_path):
    from torchgd import fit
    from torchgd.callbacks.figures import draw
    from torchgd.drawing import Drawer

    summary = fit("linear", "lecture", batching="sgd", epochs=5).to_json()
    drawer = Drawer()
    drawer.proc.kill()  # as if the drawer crashed
    drawer.proc.wait()
    draw(drawer, summary, tmp_path, "png", group="g")
    assert drawer.wait() == {"g": [tmp_path / "loss.png", tmp_path / "cost.png"]}
    assert _whole_pngs(tmp_path) == {"loss.png", "cost.png"}


def test_a_figure_that_fails_in_the_drawer_is_one_line_error(tmp_path):
    from torchgd.drawing import Drawer
    from torchgd.errors import TorchgdError

    drawer = Drawer()
    drawer.draw("trajectory", tmp_path / "t.png", run={"config": {"problem": "linear"}})
    with pytest.raises(TorchgdError, match="plot trajectory needs a function problem"):
        drawer.wait()


def test_compile_says_it_is_compiling_before_it_does(cli):
    proc = cli("train", "--compile", "--epochs", "1", "--no-plots", "--no-tensorboard")
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()[:2]
    assert first.startswith("--compile: compiling the manual path's batch sum with torch.compile")
    assert second.startswith("--compile: nothing to compile")  # the lecture's 4 rows: one chunk
    assert "1 epoch," in proc.stdout.splitlines()[2]


def test_one_path_without_a_gradient_check_says_nothing_was_compared(main_cli):
    proc = main_cli("train", "--paths", "manual", "--epochs", "3", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("Agreement over"))
    assert "nothing to compare: one path (manual)" in line and "bit for bit" not in line


def test_the_headline_puts_gradient_ulps_near_zero_against_the_rounding_bound(main_cli):
    # at the optimum of noisy data the gradient's terms cancel: huge ulps, yet rounding
    args = ["--data", "synthetic:200,d=3,noise=0.1,seed=0", "--bias", "--lr", "0.2"]
    proc = main_cli("train", *args, "--epochs", "300", "--no-plots", "--no-tensorboard")
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("Agreement over"))
    grads = line.split(", gradients by ")[1]
    ulps = int(grads.split("(")[1].split(" ulp")[0])
    assert ulps > 10**6 and ", within the rounding bound (at most 0." in line
    assert grads.startswith(f"{grads.split(' ')[0]} ({ulps} ulp, near zero), within")
    assert "the formula sums 2*x_n*(x_n.w + b - y_n)" in proc.stdout  # the model with its b


def test_the_headline_leads_with_the_size_and_marks_ulps_counted_near_zero(main_cli):
    """SGD with a bias on the lecture's data: b goes to 0, where an ulp is tiny; a difference
    of 5.6e-17 is half a billion ulp there. The headline leads with abs and rel, and says the
    ulps were counted near zero; the table's own numbers say the same."""
    proc = main_cli("train", "--bias", "--batching", "sgd", "--epochs", "300", "--lr", "0.05",
                    "--no-plots", "--no-tensorboard", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    a = out["agreement"]
    b = out["paths"]["manual"]["params"]["b"]
    assert abs(b) < 1e-10 < abs(out["paths"]["manual"]["params"]["w"])  # b near zero, w at 2
    assert a["max_ulp"] > 10**6 and a["max_abs"] < 1e-15
    proc = main_cli("train", "--bias", "--batching", "sgd", "--epochs", "300", "--lr", "0.05",
                    "--no-plots", "--no-tensorboard")  # fmt: skip
    line = next(x for x in proc.stdout.splitlines() if x.startswith("Agreement over"))
    assert f"parameters differ by at most {a['max_abs']:.3g} (" in line
    assert f"relative, {a['max_ulp']} ulp, near zero)" in line
    # the lecture without a bias: ulps counted at w = 2, no mark
    proc = main_cli("train", "--dtype", "float32", "--no-plots", "--no-tensorboard")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("Agreement over"))
    assert "1 ulp)" in line and "near zero" not in line


def test_an_interrupted_sweep_keeps_its_config_and_the_lanes_so_far(tmp_path):
    proc = processes.start(
        ["sweep", "--lr", "0.01:0.1:4", "--epochs", "10000000", "--no-plots", "--name", "s"],
        cwd=tmp_path,
    )
    run = tmp_path / "runs" / "s"
    try:
        deadline = time.monotonic() + 60
        while not (run / "config.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # some epochs
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:  # never leave ten million epochs running behind a failed test
        proc.kill()
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "interrupted after epoch" in err
    assert json.loads((run / "config.json").read_text())["epochs"] == 10_000_000
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] is True and 0 < summary["epochs_done"] < 10_000_000
    assert len(summary["status"]) == 4 and summary["lrs"] == [0.01, 0.04, 0.07, 0.1]
    assert "least-squares minimum of the cost" in out  # the table of the lanes so far


ADVICE_CASES = {
    "overflow": ("x,y\n1,2\n1e308,3\n2,4\n", ["--data", "big.csv"]),
    "nan_at_start": (None, ["--problem", "nan.py:p", "--init", "x=1"]),
}


@pytest.mark.parametrize("case", list(ADVICE_CASES))
def test_divergence_advice_never_blames_the_lr_for_what_no_lr_can_fix(main_cli, tmp_path, case):
    (tmp_path / "big.csv").write_text(ADVICE_CASES["overflow"][0])
    (tmp_path / "nan.py").write_text(
        "import torch\nfrom torchgd.problems import FunctionProblem\n"
        "p = FunctionProblem('nanny', ('x',), f=lambda x: torch.sqrt(x - 2),\n"
        "    df=lambda x: (0.5 / torch.sqrt(x - 2),), start={'x': 3.0})\n"
    )
    proc = main_cli("train", *ADVICE_CASES[case][1], "--epochs", "5", "--no-plots")
    assert proc.returncode == 3
    (line,) = proc.stderr.strip().splitlines()
    assert "try --lr" not in line and "may be too large" not in line and "lr < 0" not in line
    assert "it was not finite at the start either" in line
    if case == "overflow":
        assert "overflow float64 when squared" in line and "scale the data" in line
    else:
        assert "no lr can help" in line and "starting point" in line


def test_a_directory_given_as_a_file_is_said_to_be_one(main_cli, tmp_path):
    for args, words in (
        (["--data", str(tmp_path)], "is a directory: give a file in it"),
        (["--problem", f"{tmp_path}/sub.py:p"], "is a directory, not a .py file"),
    ):
        (tmp_path / "sub.py").mkdir(exist_ok=True)
        proc = main_cli("train", *args)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr


def test_a_logdir_that_cannot_be_written_is_exit_74_as_the_readme_says(tmp_path):
    proc = run_cli("train", "--logdir", "/sys/torchgd-cannot-write-here", cwd=tmp_path)
    assert proc.returncode == 74, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_progress_lines_summarise_a_long_parameter_vector(main_cli):
    """1000 features: the first four weights as they are, how many, and the norm (the JSON
    keeps every one), not a 20,000-character line."""
    args = ["--data", "synthetic:300,d=1000,noise=0.1", "--epochs", "2", "--lr", "0.1"]
    proc = main_cli("train", *args, "--no-plots", "--no-tensorboard", "--json")
    w = json.loads(proc.stdout)["paths"]["manual"]["params"]["w"]
    proc = main_cli("train", *args, "--no-plots", "--no-tensorboard")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("Progress:"))
    first = ", ".join(repr(v) for v in w[:4])
    norm = sum(v * v for v in w) ** 0.5
    assert line.startswith(f"Progress: epoch=2, w=[{first}, ... 1000 values, norm ")
    assert float(line.split("norm ")[1].split("]")[0]) == pytest.approx(norm, rel=1e-5)
    assert len(line) < 200


def test_an_interrupted_sweep_with_json_prints_one_object_of_the_lanes_so_far(
    main_cli, monkeypatch
):
    """Ctrl-C (a real SIGINT, raised as the third epoch ends) stops the sweep's loop as it
    stops train's; with --json stdout is still one JSON object: the lanes of 3 epochs."""
    from torchgd import lanerun

    real = lanerun.LaneRun.end_epoch

    def end_epoch(self, epoch, batch):
        if epoch == 3:
            signal.raise_signal(signal.SIGINT)
        return real(self, epoch, batch)

    monkeypatch.setattr(lanerun.LaneRun, "end_epoch", end_epoch)
    proc = main_cli("sweep", "--lr", "0.01:0.1:4", "--epochs", "100", "--json", "--no-plots")
    assert proc.returncode == 130, proc.stderr
    report = json.loads(proc.stdout)
    assert report["interrupted"] is True and report["epochs_done"] == 3
    assert len(report["status"]) == 4 and "interrupted after epoch 3 of 100" in proc.stderr


def test_a_signal_the_command_was_started_ignoring_stays_ignored():
    """A shell's background job starts with SIGINT ignored (Ctrl-C at the terminal is not for
    it): the stop flag leaves it so, as Python does; it used to take SIGINT while training and
    then give it back ignored, so Ctrl-C counted during the loop and not while drawing."""
    from torchgd.control import StopFlag

    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopFlag():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # the flag's own
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)
