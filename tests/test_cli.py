"""The CLI end to end, through real subprocesses."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli


def test_lecture_prints_the_lectures_lines_and_writes_its_run_directory(cli, tmp_path):
    from test_plots import check_png

    proc = cli("lecture", "--logdir", tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    sgd = lines[next(i for i, l in enumerate(lines) if l.startswith("Stochastic")) :]
    assert "Predict (before training) input: 5, forward: 5.0" in sgd
    progress = [l for l in sgd if l.startswith("Progress:")]
    assert len(progress) == 10  # every 10th epoch, the last included
    assert progress[-1] == "Progress: epoch=100, w=1.9999999999999998, loss=7.888609052210118e-31"
    assert "Predict (after training) input: 5, forward: 9.999999999999998" in sgd
    assert sum("bit for bit" in l for l in lines) == 2
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("lecture-")
    for batching in ("batch", "sgd"):
        cfg = json.loads((run / batching / "config.json").read_text())
        assert cfg["batching"] == batching and cfg["lr"] == 0.01 and cfg["epochs"] == 100
    summary = json.loads((run / "summary.json").read_text())
    assert summary["sgd"]["paths"]["optim"]["params"]["w"] == 1.9999999999999998
    # the lecture's figures, and its TensorBoard runs
    check_png(run / "field.png", (1200, 500))
    check_png(run / "batchings.png", (1200, 500))
    for batching in ("batch", "sgd"):
        check_png(run / batching / "cost.png", (800, 500))
        check_png(run / batching / "loss.png", (800, 500))
        assert list((run / batching).glob("events.out.tfevents.*"))  # one TensorBoard run
    assert list((run / "figures").glob("events.out.tfevents.*"))


def test_lecture_json_is_one_object_with_both_runs(cli, tmp_path):
    proc = cli("lecture", "--json", "--no-plots", "--no-tensorboard", "--logdir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # exactly one JSON document, nothing else on stdout
    sgd, batch = out["sgd"], out["batch"]
    for path in ("manual", "autograd", "optim"):
        assert sgd["paths"][path]["params"]["w"] == 1.9999999999999998
        assert sgd["paths"][path]["loss"] == 7.888609052210118e-31
        assert batch["paths"][path]["params"]["w"] == 1.9999999125232637
        assert len(sgd["paths"][path]["history"]["loss"]) == 100
        assert len(sgd["paths"][path]["history"]["w"]) == 100
    assert sgd["agreement"]["max_ulp"] == 0 and batch["agreement"]["max_ulp"] == 0
    assert sgd["status"] == "completed"
    assert sgd["config"]["dtype"] == "float64"


def test_verbose_prints_every_epoch(main_cli, tmp_path):
    proc = main_cli(
        "train",
        "--batching",
        "sgd",
        "--epochs",
        "12",
        "--verbose",
        "--paths",
        "manual",
        "--logdir",
        tmp_path,
    )
    progress = [l for l in proc.stdout.splitlines() if l.startswith("Progress:")]
    assert [l.split(",")[0] for l in progress] == [f"Progress: epoch={e}" for e in range(1, 13)]


def test_train_json_has_config_status_paths_and_agreement(cli, tmp_path):
    proc = cli(
        "train",
        "--data",
        "course",
        "--batching",
        "batch",
        "--paths",
        "manual,optim",
        "--json",
        "--logdir",
        tmp_path,
        "--name",
        "course-batch",
    )
    out = json.loads(proc.stdout)
    assert set(out["paths"]) == {"manual", "optim"}
    assert out["paths"]["manual"]["params"]["w"] == 1.9999444396553017
    assert out["config"]["data"] == "course" and out["config"]["paths"] == ["manual", "optim"]
    assert {"max_ulp", "max_abs", "grad", "reasons"} <= set(out["agreement"])
    assert json.loads((tmp_path / "course-batch" / "summary.json").read_text()) == out


def test_quiet_prints_nothing(cli, tmp_path):
    proc = cli("train", "--quiet", "--paths", "manual", "--no-plots", "--logdir", tmp_path)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""


def test_function_problem_trains_from_the_cli(main_cli, tmp_path):
    proc = main_cli(
        "train",
        "--problem",
        "elliptic",
        "--init",
        "x=-5,y=-2",
        "--lr",
        "0.1",
        "--epochs",
        "20",
        "--json",
        "--logdir",
        tmp_path,
    )
    out = json.loads(proc.stdout)
    # x shrinks by (1 - 2*0.1) and y by (1 - 4*0.1) per step
    assert out["paths"]["manual"]["params"]["x"] == pytest.approx(-5 * 0.8**20, rel=1e-12)
    assert out["paths"]["manual"]["params"]["y"] == pytest.approx(-2 * 0.6**20, rel=1e-12)


BAD_INPUTS = [
    (["--lr", "-0.1"], "--lr -0.1: Invalid learning rate: -0.1"),  # torch.optim.SGD's words
    (["--optimizer", "adam", "--betas", "1.5,0.9"], "--betas 1.5,0.9: Invalid beta parameter"),
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--lr", "fast"], "invalid float value"),
    (["--epochs", "0"], "--epochs must be a whole number >= 1"),
    (["--epochs", "-3"], "--epochs must be a whole number >= 1"),
    (["--batching", "adam"], "unknown batching 'adam'"),
    (["--batching", "minibatch:0"], "minibatch:B must be >= 1"),
    (["--paths", "manual,sgd"], "unknown path 'sgd'"),
    (["--paths", ""], "paths must be a non-empty list"),
    (["--dtype", "float16"], "unknown dtype 'float16'"),
    (["--init", "w"], "is not NAME=VALUE"),
    (["--init", "v=1"], "--init names 'v'"),
    (["--data", "nowhere"], "unknown data 'nowhere'"),
    (["--problem", "nope"], "unknown problem 'nope'"),
    (["--momentom", "0.9"], "train: error: unrecognized arguments: --momentom 0.9; did you mean"),
    (["--batching", "minibatch:x"], "must be >= 1 (a whole number), got 'x'"),
    (["--problem", "elliptic", "--data", "course"], "problem 'elliptic' is a function of"),
    (
        ["--momentum", "0.9", "--nesterov", "--dampening", "0.1"],
        "Nesterov momentum requires a momentum",
    ),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--seed", "-1", "--batching", "minibatch:2"], "--seed must be a whole number >= 0, got -1"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_gives_one_line_and_exit_code_2(capsys, tmp_path, monkeypatch, args, message):
    from conftest import draw_here
    from torchgd.cli import main

    draw_here(monkeypatch)
    with pytest.raises(SystemExit) as exit_:  # argparse's own errors exit; ours return 2
        raise SystemExit(main(["train", *map(str, args), "--logdir", str(tmp_path / "runs")]))
    out, err = capsys.readouterr()
    assert exit_.value.code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing is written for a rejected run


@pytest.mark.parametrize("args,message", [BAD_INPUTS[2], BAD_INPUTS[13]])
def test_bad_input_through_a_real_subprocess(cli, tmp_path, args, message):
    proc = cli("train", *args, "--logdir", tmp_path / "runs")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr


def test_cuda_request_on_a_machine_without_it_names_what_is_available(cli, tmp_path):
    import torch

    proc = cli("train", "--device", "cuda", "--paths", "manual", "--logdir", tmp_path)
    if torch.cuda.is_available():
        assert proc.returncode == 0
    else:
        assert proc.returncode == 2
        assert proc.stderr.strip().endswith("available: cpu")
        assert len(proc.stderr.splitlines()) == 1


def test_existing_run_directory_is_never_overwritten(cli, tmp_path):
    run = tmp_path / "keep"
    run.mkdir()
    (run / "events.out").write_text("precious")
    proc = cli("train", "--name", "keep", "--logdir", tmp_path, "--paths", "manual")
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert (run / "events.out").read_text() == "precious"
    assert sorted(p.name for p in run.iterdir()) == ["events.out"]


def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path):
    # `torchgd train | head -1`: the pipe closes while torchgd still writes to it
    import os

    proc = subprocess.Popen(
        [sys.executable, "-m", "torchgd", "train", "--no-plots", "--no-tensorboard"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    proc.stdout.close()  # before its first line: every write fails (EPIPE)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141  # 128 + SIGPIPE, as a shell reports it
    assert err == ""


def test_help_imports_no_heavy_module_and_answers_fast():
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "torchgd", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0 and "lecture" in proc.stdout
    imported = {
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "torchgd.cli" in imported
    for heavy in ("torch", "matplotlib", "tensorboard", "numpy"):
        assert heavy not in imported, f"--help imported {heavy}"


@pytest.mark.parametrize("command", ["lecture", "train"])
def test_subcommand_help_lists_its_options(command):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0
    for option in ("--paths", "--device", "--dtype", "--json", "--quiet", "--logdir"):
        assert option in proc.stdout


def test_the_installed_console_script_flushes_its_output_and_keeps_exit_codes(tmp_path):
    """``torchgd`` ends with os._exit (no teardown of torch's modules): everything printed must
    still arrive, through a pipe too, and the exit codes stay."""
    assert 'torchgd = "torchgd.cli:entry"' in (ROOT / "pyproject.toml").read_text()
    script = os.path.join(os.path.dirname(sys.executable), "torchgd")
    args = ["train", "--epochs", "300", "--verbose", "--no-plots", "--no-tensorboard"]
    proc = subprocess.run([script, *args], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("Progress: epoch=") for line in lines) == 300
    assert lines[-1].startswith("Run directory: ")  # the very last line, flushed
    proc = subprocess.run([script, *args, "--json"], cwd=tmp_path, capture_output=True, text=True)
    assert json.loads(proc.stdout)["epochs"] == 300
    proc = subprocess.run([script, "train", "--lr", "-1"], cwd=tmp_path, capture_output=True)
    assert proc.returncode == 2


@pytest.mark.parametrize("command", ["train", "sweep", "check"])
def test_help_lists_every_problem_of_the_registry(command, capsys):
    import re

    from torchgd import problems
    from torchgd.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    listed = re.search(r"--problem PROBLEM (.*?)\(default", text).group(1)
    assert [n.strip() for n in listed.split(",") if n.strip()] == list(problems.PROBLEMS)


def test_help_gives_every_rules_default_lr_from_its_hyper(capsys):
    import dataclasses

    from torchgd import rules
    from torchgd.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, module in rules.ALL.items():
        lr = next(f.default for f in dataclasses.fields(module.Hyper) if f.name == "lr")
        assert f"{name} {lr:g}" in text, name


def test_the_readme_lists_every_problem_and_rule_of_the_registries():
    from torchgd import problems, rules

    readme = (ROOT / "docs" / "cli.md").read_text()
    line = next(s for s in readme.split("\n\n") if s.startswith("Problems: "))
    for name in problems.PROBLEMS:
        assert f"`{name}`" in line, name
    rules_page = (ROOT / "docs" / "rules.md").read_text()
    for name in rules.ALL:
        assert f"| `{name}` |" in rules_page, name


def test_lecture_refuses_data_with_several_features_before_writing(cli, tmp_path):
    proc = cli("lecture", "--data", "synthetic:10,d=2")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--data needs one feature, 'synthetic:10,d=2' has 2" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_big_data_is_announced_before_the_seconds_of_loading_it(capsys, tmp_path):
    from types import SimpleNamespace

    from torchgd.cli import train

    def said(data, **kw):
        args = SimpleNamespace(json=False, quiet=False, data=data, **kw)
        train._say_loading(args)
        return capsys.readouterr().out

    assert said("synthetic:100000000,noise=0.1") == (
        "Loading synthetic:100000000,noise=0.1 and checking every value ...\n"
    )
    assert said("synthetic:1000") == "" and said("lecture") == "" and said(None) == ""
    (tmp_path / "small.csv").write_text("1,2\n")
    assert said(str(tmp_path / "small.csv")) == ""
    big = tmp_path / "big.npy"
    with open(big, "wb") as f:
        f.truncate(64 << 20)  # sparse: 64 MiB on paper
    assert said(str(big)).startswith("Loading ")
    args = SimpleNamespace(json=True, quiet=False, data="synthetic:100000000")
    train._say_loading(args)
    assert capsys.readouterr().out == ""  # --json prints one object, nothing else


def test_verbose_sgd_prints_the_lectures_per_sample_lines_bit_for_bit(main_cli):
    """The lecture's SGD program, run in plain Python: every '\\t x: ..., y: ..., grad: ...'
    line and every Progress line, as torchgd --verbose prints them."""
    x_data, y_data, w, expected = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0], 1.0, []
    for epoch in range(100):
        for x, y in zip(x_data, y_data):
            grad = 2 * x * (x * w - y)
            w = w - 0.01 * grad
            expected.append(f"\t x: {x}, y: {y}, grad: {grad}")
            loss = (x * w - y) ** 2
        expected.append(f"Progress: epoch={epoch + 1}, w={w}, loss={loss}")
    out = main_cli("train", "--batching", "sgd", "--verbose", "--no-plots", "--no-tensorboard")
    assert out.returncode == 0, out.stderr
    lines = [s for s in out.stdout.splitlines() if s.startswith(("\t x:", "Progress:"))]
    assert lines == expected


RENAMES = [  # old flag, new flag, a value, why, the config key, a value given in Python
    ("--rule", "--spelling", "torch-exact", "the rule itself is --optimizer", "spelling"),
    ("--schedule", "--batching", "minibatch:3", "an lr schedule is --scheduler", "batching"),
]


@pytest.mark.parametrize("old,new,value,why,key", RENAMES, ids=[r[0] for r in RENAMES])
def test_a_renamed_option_still_works_and_says_what_replaced_it(
    main_cli, old, new, value, why, key
):
    """--rule (the hand-written rule's spelling) is --spelling now, "rule" being the update rule
    (--optimizer); --schedule (which samples each step sees) is --batching, "schedule" being an
    lr schedule (--scheduler). The old names work in this version and say so: the flag on
    stderr, the keyword (fit, sweep) with a FutureWarning at the user's line; a config.json
    that has the old key is still read; old and new together are refused."""
    import warnings

    import torchgd
    from torchgd.planning import plan_from_config
    from torchgd.sweep import sweep

    run = ["--epochs", "3", "--json", "--no-plots", "--no-tensorboard"]
    before, after = main_cli("train", old, value, *run), main_cli("train", new, value, *run)
    assert before.returncode == after.returncode == 0 and after.stderr == ""
    assert before.stderr.strip() == (
        f"torchgd: {old} is now {new} ({why}); {old} still works in this version"
    )
    assert json.loads(before.stdout)["config"][key] == value
    assert json.loads(before.stdout)["paths"] == json.loads(after.stdout)["paths"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        r = torchgd.fit(epochs=3, **{old[2:]: value})
        lanes = sweep(lrs=[0.01, 0.02], epochs=3, **{old[2:]: value}) if key == "batching" else {}
    assert r.config[key] == value and lanes.get("config", r.config)[key] == value
    warned = [w for w in seen if f"{old[2:]}= is now {key}=" in str(w.message)]
    assert {w.filename for w in warned} == {__file__}  # at the user's own lines
    with pytest.raises(torchgd.TorchgdError, match=f"give {key}= only"):
        torchgd.fit(epochs=3, **{old[2:]: value, key: value})
    both = main_cli("train", old, value, new, value)
    assert both.returncode == 2 and f"give {new} only ({old} is its old name)" in both.stderr
    config = {k: v for k, v in r.config.items() if k != key}
    assert plan_from_config({**config, old[2:]: value}).config[key] == value


def test_plot_schedules_is_plot_batchings_and_says_so(main_cli, tmp_path):
    figure = main_cli("plot", "schedules", "--epochs", "5", "--out", tmp_path)
    assert figure.returncode == 0, figure.stderr
    assert figure.stderr.strip() == (
        "torchgd: plot schedules is now plot batchings; schedules still works in this version"
    )
    assert figure.stdout.strip() == str(tmp_path / "batchings.png")
    assert "schedules" not in main_cli("plot", "--help").stdout  # the help shows the new name


def test_a_forked_command_prints_what_an_execd_one_does(tmp_path):
    """The suite's commands run forked from a server that has imported torch (tests/processes):
    the same output, exit codes and files as a fresh interpreter, from another directory."""
    import processes

    args = ["train", "--data", "synthetic:50,d=2,noise=0.1", "--bias", "--optimizer", "adam",
            "--epochs", "20", "--no-plots", "--json"]  # fmt: skip
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    forked = processes.start([*args, "--name", "r"], cwd=tmp_path / "a")
    fresh = processes.start([*args, "--name", "r"], cwd=tmp_path / "b", fresh=True)
    assert isinstance(forked, processes.Forked) and isinstance(fresh, subprocess.Popen)
    (out_a, err_a), (out_b, err_b) = forked.communicate(120), fresh.communicate(120)
    assert forked.returncode == fresh.returncode == 0 and err_a == err_b
    assert out_a.replace(str(tmp_path / "a"), "") == out_b.replace(str(tmp_path / "b"), "")
    for name in ("config.json", "summary.json"):
        a, b = ((tmp_path / d / "runs" / "r" / name).read_text() for d in "ab")
        assert a.replace(str(tmp_path / "a"), "") == b.replace(str(tmp_path / "b"), "")
    bad = ["train", "--lr", "-1"]
    a, b = processes.run(bad, cwd=tmp_path), processes.run(bad, cwd=tmp_path, fresh=True)
    assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)
    assert a.returncode == 2 and a.stderr.startswith("torchgd train: error: --lr -1")
