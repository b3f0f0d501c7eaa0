"""Checkpoints: interrupt a real run, resume it, and get the uninterrupted run's numbers bit for
bit, with TensorBoard curves that have every step exactly once."""

import json
import os
import signal
import time

import processes
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import torchgd
from torchgd import checkpoints

RUN = [
    "train",
    "--data",
    "synthetic:64,d=2,noise=0.3,seed=5",
    "--bias",
    "--batching",
    "minibatch:5",
    "--momentum",
    "0.9",
    "--lr",
    "0.01",
    "--noise",
    "0.01",
    "--epochs",
    "100",
    "--no-plots",
    "--log-every",
    "1",
    "--no-guard",
]


def start(tmp_path, name, *extra, base=RUN):
    return processes.start([*base, *extra, "--logdir", tmp_path, "--name", name, "--quiet"])


def wait_for(path, predicate, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(path):
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {path}")


def tb_steps(run_dir, path="manual"):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(f"loss/raw/{path}")]


def run_here(tmp_path, name, *extra, base=RUN) -> dict:
    """The same command through ``main()`` in this process, uninterrupted: its summary (what
    an interrupted real process must come back to; only the interrupted one needs a process)."""
    import contextlib
    import io

    from torchgd.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main([*base, *extra, "--logdir", str(tmp_path), "--name", name, "--quiet"])
    assert code == 0
    return json.loads((tmp_path / name / "summary.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return run_here(tmp_path_factory.mktemp("full"), "full")


def same_run(a, b):
    assert a["status"] == b["status"] == "completed"
    assert a["steps"] == b["steps"] and a["epochs"] == b["epochs"]
    for path in ("manual", "autograd", "optim"):
        assert a["paths"][path]["params"] == b["paths"][path]["params"]  # bit for bit
        assert a["paths"][path]["history"] == b["paths"][path]["history"]
    assert a["agreement"]["params"] == b["agreement"]["params"]


def resume(cli, run):
    proc = cli("train", "--resume", run, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_ctrl_c_then_resume_equals_the_uninterrupted_run(cli, tmp_path, uninterrupted):
    proc = start(tmp_path, "r", "--checkpoint-every", "5")
    run = tmp_path / "r"
    wait_for(run, lambda r: (r / "checkpoint.pt").exists())  # running, mid-way
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    stopped = json.loads((run / "summary.json").read_text())
    assert stopped["status"] == "interrupted" and 0 < stopped["steps"] < uninterrupted["steps"]
    assert (run / "checkpoint.pt").exists()
    same_run(resume(cli, run), uninterrupted)
    steps = tb_steps(run)
    assert steps == list(range(1, uninterrupted["steps"] + 1))  # none missing, none twice


def test_a_killed_run_resumes_from_its_last_periodic_checkpoint(cli, tmp_path, uninterrupted):
    proc = start(tmp_path, "k", "--checkpoint-every", "5")
    run = tmp_path / "k"
    wait_for(run, lambda r: (r / "checkpoint.pt").exists())
    time.sleep(0.3)  # run on past the checkpoint: those steps must not appear twice
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    saved = checkpoints.load(run / "checkpoint.pt")
    assert saved["position"]["epoch"] % 5 == 1 and saved["position"]["batch"] == 0
    same_run(resume(cli, run), uninterrupted)
    assert tb_steps(run) == list(range(1, uninterrupted["steps"] + 1))


def snapshot(run):
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small")
    from conftest import run_cli

    proc = run_cli(
        "train",
        "--epochs",
        "3",
        "--quiet",
        "--no-plots",
        "--checkpoint-every",
        "1",
        "--logdir",
        tmp,
        "--name",
        "d",
    )
    assert proc.returncode == 0
    return tmp / "d"


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "replace"])
def test_a_damaged_checkpoint_is_refused_and_the_run_directory_left_as_it_was(
    cli_once, tmp_path, finished_run, damage
):
    import shutil

    run = tmp_path / "d"
    shutil.copytree(finished_run, run)
    (run / "summary.json").unlink()  # a killed run's directory: resumable from its checkpoint
    ck = run / "checkpoint.pt"
    raw = bytearray(ck.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "empty":
        raw = bytearray()
    else:  # a valid torch file that is not a checkpoint
        import torch

        torch.save({"x": torch.zeros(1)}, ck)
        raw = bytearray(ck.read_bytes())
    ck.write_bytes(bytes(raw))
    before = snapshot(run)
    proc = cli_once("train", "--resume", run)  # the first damage through a real process
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(run) == before


def test_resume_without_a_checkpoint_says_how_to_get_one(cli, main_cli, tmp_path):
    main_cli(
        "train",
        "--epochs",
        "2",
        "--quiet",
        "--no-plots",
        "--no-tensorboard",
        "--paths",
        "manual",
        "--logdir",
        tmp_path,
        "--name",
        "n",
    )
    (tmp_path / "n" / "summary.json").unlink()  # as a run killed before any checkpoint leaves it
    proc = cli("train", "--resume", tmp_path / "n")
    assert proc.returncode == 2 and "no checkpoint" in proc.stderr


def test_resuming_a_finished_run_says_so_and_changes_nothing(main_cli, tmp_path):
    proc = main_cli("train", "--epochs", "3", "--quiet", "--no-plots", "--name", "done")
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "runs" / "done"
    before = snapshot(run)
    proc = main_cli("train", "--resume", run)
    assert proc.returncode == 0 and "already finished (completed after 3 epochs)" in proc.stdout
    assert snapshot(run) == before
    proc = main_cli("train", "--resume", run, "--json")  # the finished run's summary, one line
    assert proc.returncode == 0 and json.loads(proc.stdout)["epochs"] == 3
    assert len(proc.stdout.splitlines()) == 1 and snapshot(run) == before


@pytest.mark.parametrize(
    "extra,flags",
    [
        (["--lr", "0.5"], "--lr"),
        (["--epochs=7", "--momentum", "0.9"], "--epochs, --momentum"),
        (["--epo", "7"], "--epochs"),  # argparse's abbreviations are caught too
        (["--batching", "batch"], "--batching"),  # even a value equal to the run's own
    ],
)
def test_resume_refuses_options_that_would_change_the_run(main_cli, tmp_path, extra, flags):
    run = tmp_path / "r"
    run.mkdir()
    proc = main_cli("train", "--resume", run, *extra)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert f"{flags} would change it" in proc.stderr and "Traceback" not in proc.stderr
    assert list(run.iterdir()) == []


def test_sigterm_stops_a_run_after_the_current_step_like_ctrl_c():
    class TermAtStep2:
        def on_start(self, config, paths): ...
        def on_step(self, info):
            if info.step == 2:
                os.kill(os.getpid(), signal.SIGTERM)  # how torchrun passes on a Ctrl-C

        def on_epoch(self, info): ...
        def on_end(self, result): ...
        def close(self): ...

    before = signal.getsignal(signal.SIGTERM)
    r = torchgd.fit(batching="sgd", epochs=3, callbacks=[TermAtStep2()])
    assert r.status == "interrupted" and r.steps == 2
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back


ADAM = ["--optimizer", "adam", "--amsgrad", "--betas", "0.8,0.99", "--lr", "0.05"]
WITHOUT_MOMENTUM = [a for i, a in enumerate(RUN) if "--momentum" not in RUN[max(0, i - 1) : i + 1]]


def test_an_adam_run_resumed_from_the_command_line_equals_the_uninterrupted_one(main_cli, tmp_path):
    whole = run_here(tmp_path, "full", *ADAM, base=WITHOUT_MOMENTUM)
    proc = start(tmp_path, "r", *ADAM, "--checkpoint-every", "5", base=WITHOUT_MOMENTUM)
    run = tmp_path / "r"
    wait_for(run, lambda r: (r / "checkpoint.pt").exists())
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    saved = checkpoints.load(run / "checkpoint.pt")
    state = saved["paths"]["manual"]["buffers"]["w"]
    assert {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"} <= set(state) and state["step"] > 0
    assert saved["paths"]["optim"]["optimizer"]["state"]  # torch.optim.Adam's own state
    resumed = resume(main_cli, run)  # (test_ctrl_c_then_resume resumes in a real process)
    same_run(resumed, whole)
    assert resumed["agreement"]["buffers"] == whole["agreement"]["buffers"]
    assert resumed["config"]["optimizer"] == "adam" and resumed["config"]["betas"] == [0.8, 0.99]


@pytest.mark.parametrize("part", ["batch", "sgd"])
def test_a_lecture_interrupted_in_a_part_resumes_to_the_uninterrupted_lecture(
    main_cli, tmp_path, monkeypatch, part
):
    from torchgd.callbacks import console

    whole = json.loads(main_cli("lecture", "--json", "--no-plots", "--name", "whole").stdout)
    fired, on_epoch = [], console.Console.on_epoch

    def ctrl_c_at_epoch_37(self, epoch):  # Ctrl-C in the middle of the chosen part
        in_part = (part == "batch") == (epoch.step == epoch.epoch)
        if epoch.epoch == 37 and in_part and not fired:
            fired.append(epoch.step)
            os.kill(os.getpid(), signal.SIGINT)
        on_epoch(self, epoch)

    monkeypatch.setattr(console.Console, "on_epoch", ctrl_c_at_epoch_37)
    proc = main_cli("lecture", "--no-plots", "--name", "cut", "--verbose")
    assert proc.returncode == 130 and fired
    run = tmp_path / "runs" / "cut"
    assert "continue it with: torchgd lecture --resume runs/cut" in proc.stderr
    assert (run / part / "checkpoint.pt").exists()
    assert json.loads((run / part / "summary.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(console.Console, "on_epoch", on_epoch)
    proc = main_cli("lecture", "--resume", run, "--json")
    assert proc.returncode == 0, proc.stderr
    resumed = json.loads(proc.stdout)
    for p in ("batch", "sgd"):  # bit for bit, histories included
        assert resumed[p]["status"] == "completed"
        assert resumed[p]["paths"] == whole[p]["paths"]
    assert not list(run.rglob("*.png"))  # started with --no-plots: kept on --resume
    again = main_cli("lecture", "--resume", run)
    assert again.returncode == 0 and "nothing to resume" in again.stdout


def test_a_run_of_the_version_before_the_renames_resumes_and_replots(main_cli, tmp_path):
    """A run interrupted under the previous version says "schedule" where this one says
    "batching", in config.json, summary.json and its checkpoint: it resumes to the
    uninterrupted run and its figures are drawn, each saying how its config was read."""
    from conftest import stopped_at
    from torchgd import runs
    from torchgd.planning import plan

    p = plan(batching="sgd", epochs=6)
    whole = main_cli("train", "--batching", "sgd", "--epochs", "6", "--json", "--no-plots",
                     "--no-tensorboard", "--logdir", tmp_path / "w")  # fmt: skip
    old = lambda c: {("schedule" if k == "batching" else k): v for k, v in c.items()}  # noqa: E731
    run = tmp_path / "old"
    run.mkdir()
    options = {"no_plots": True, "no_tensorboard": True}
    runs.write_json(run / "config.json", {**old(p.config), "run_options": options})
    state = stopped_at(p, 3, 2)
    checkpoints.save(run / checkpoints.NAME, {**state, "config": old(state["config"])})
    resumed = main_cli("train", "--resume", run, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert '"schedule" (now "batching")' in resumed.stderr
    assert json.loads(resumed.stdout)["paths"] == json.loads(whole.stdout)["paths"]
    summary = json.loads((run / "summary.json").read_text())
    runs.write_json(run / "summary.json", {**summary, "config": old(summary["config"])})
    figure = main_cli("plot", "loss", "--run", run, "--out", tmp_path / "loss.png")
    assert figure.returncode == 0 and '"schedule" (now "batching")' in figure.stderr
    assert (tmp_path / "loss.png").stat().st_size > 0
