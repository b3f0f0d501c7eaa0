import json
import os
import signal
from pathlib import Path

import processes
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, timeout=120, env=None, **popen):
    """Run the real CLI in a process of its own, as a user would (``processes``: forked from a
    server that has imported torch, or exec'd where start-up itself is tested: ``fresh=True``,
    ``popen`` options such as ``preexec_fn``, an environment that an import might read)."""
    return processes.run(args, cwd=cwd, timeout=timeout, env=env, **popen)


def run_json(*args, cwd=None):
    proc = run_cli(*args, "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# pytest-xdist runs one worker per core: each worker, and each command it starts, computes with
# one thread: torch's default, a thread per core, gave two workers on two cores twice as many
# threads as cores, and the suite took 6 to 10% longer. A user's OMP_NUM_THREADS is kept.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def pytest_collection_finish(session):
    """What collecting made (a thousand tests, their modules, torch's objects) lives to the
    end: ``gc.freeze`` takes it out of the garbage collector's full collections, which walked
    it again and again (tests/test_optimizers.py alone: 83 s -> 63 s)."""
    import gc

    gc.freeze()


# A test that sends SIGINT to a command plays a terminal's Ctrl-C on a foreground job: its
# children must not inherit an ignored SIGINT, as they do when the tests run in a background job
# of a non-interactive shell (POSIX has such jobs ignore it; a CI runner may start them so). A
# handled signal is reset to its default in a child, so this gives them Python's Ctrl-C.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def cli(tmp_path):
    def _run(*args, **kw):
        return run_cli(*args, cwd=kw.pop("cwd", tmp_path), **kw)

    return _run


@pytest.fixture
def main_cli(tmp_path, capsys, monkeypatch):
    """The same CLI in this process (torch is already imported): for tests of what a command
    computes, where a fresh interpreter would only add seconds of imports."""
    from types import SimpleNamespace

    from torchgd.cli import main

    monkeypatch.chdir(tmp_path)
    draw_here(monkeypatch)

    def _run(*args, cwd=None):
        if cwd is not None:  # another directory than tmp_path, as a user's shell has
            monkeypatch.chdir(cwd)
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return _run


def draw_here(monkeypatch) -> None:
    """A command run in this process draws its figures here, by the drawer's own fallback (as
    where its process cannot start): a second interpreter importing matplotlib and torch for
    each command would cost more than the command; the background drawer is tested through
    real subprocesses (``cli``)."""
    import functools

    from torchgd import drawing

    monkeypatch.setattr(drawing, "Drawer", functools.partial(drawing.Drawer, background=False))


@pytest.fixture
def cli_once(request, cli, main_cli):
    """For a parametrized test of bad input: its first case through a real subprocess (what a
    user runs: the exit code, stderr, no traceback), the others through the same ``main()`` in
    this process (an uncaught exception fails them just the same), a few seconds each saved."""
    first = all(i == 0 for i in request.node.callspec.indices.values())
    return cli if first else main_cli


def stopped_at(plan, epoch: int, batch: int) -> dict:
    """The state a run of ``plan`` leaves when stopped after ``batch`` batches of ``epoch``
    (what a Ctrl-C there checkpoints), stepped by ``Run`` as ``train.execute`` steps it."""
    from torchgd.run import Run

    run = Run(plan)
    run.start()
    for e in range(1, epoch + 1):
        for j, b in run.batches(e):
            run.step(e, j, b)
            if e == epoch and j + 1 == batch:
                break
        else:
            run.end_epoch(e, b)
    return run.state_dict(epoch, batch)
