"""Learning-rate schedulers: torch's recursion by hand, to the bit, against
torch.optim.lr_scheduler; the closed forms against the formulas; in lockstep runs, through the
command line, resumed, and refused in torch's words."""

import dataclasses
import json
import math

import pytest
import torch

import torchgd
from conftest import stopped_at
from torchgd import schedulers, train
from torchgd.compare import ulp_distance_floats
from torchgd.errors import TorchgdError
from torchgd.planning import plan, plan_from_config
from torchgd.schedulers import _compose

NOISY = dict(data="synthetic:40,d=2,noise=0.3,seed=2", bias=True, guard=False)
CASES = [  # the schedulers whose lr is a function of the step (plateau's follows the costs)
    (name, options)
    for name, m in schedulers.ALL.items()
    if not hasattr(m, "Schedule")
    for options in m.TRY
]


def torch_lrs(module, o, base: float, steps: int) -> list:
    """torch's class on a one-parameter SGD, as a training loop steps it, given ``o`` (the
    options) as torch takes them (a user's function where it takes one); ``module`` None:
    ``o`` is a schedule, whose own ``torch_scheduler`` builds torch's (a composition)."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    if module is None:
        scheduler = o.torch_scheduler(opt)
    else:
        options = getattr(module, "torch_kwargs", dataclasses.asdict)(o)
        scheduler = getattr(torch.optim.lr_scheduler, module.TORCH_CLASS)(opt, **options)
    out = [opt.param_groups[0]["lr"]]
    for _ in range(steps):
        opt.step()
        scheduler.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def assert_torch_exact_is_torchs(module, options: dict) -> None:
    """60 steps of the scheduler's torch-exact lr against torch's class, from two base lrs."""
    o = module.Options(**options)
    for base in (0.1, 0.03):
        expected = torch_lrs(module, o, base, 60)
        mine = schedulers.Schedule(module, o, base, "torch-exact")
        assert [mine.lr_at(t) for t in range(61)] == expected


@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_torch_exact_is_torch_optims_scheduler_bit_for_bit(name, options):
    assert_torch_exact_is_torchs(schedulers.get(name), options)


def test_the_textbook_forms_are_the_closed_forms_and_differ_only_in_the_last_bits():
    base = 0.1
    cos = schedulers.Schedule(*schedulers.parse("cosine:T_max=20,eta_min=0.001"), base, "textbook")
    exp = schedulers.Schedule(*schedulers.parse("exponential:gamma=0.93"), base, "textbook")
    for t in range(21):
        assert cos.lr_at(t) == 0.001 + (base - 0.001) * (1 + math.cos(math.pi * t / 20)) / 2
        assert exp.lr_at(t) == base * 0.93**t
    differ = 0
    for name, options in CASES:
        module = schedulers.get(name)
        o = module.Options(**options)
        book = schedulers.Schedule(module, o, base, "textbook")
        exact = torch_lrs(module, o, base, 40)
        ulps = [ulp_distance_floats([book.lr_at(t)], [exact[t]]) for t in range(41)]
        # the same schedule, rounded elsewhere: torch's recursion accumulates its roundings
        # (cosine through five half-periods in 40 steps: 81 ulp; the others at most 4)
        assert max(ulps) <= 128, (name, options)
        differ += any(ulps)
    assert differ >= 3  # the recursive ones (exponential, cosine, linear) do differ


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("every", ["epoch", "step"])
def test_torch_exact_runs_in_lockstep_with_torch_optims_own_scheduler(optimizer, every):
    r = torchgd.fit(**NOISY, batching="sgd", epochs=8, lr=0.02, optimizer=optimizer,
                    spelling="torch-exact", scheduler="cosine:T_max=5,eta_min=0.001",
                    scheduler_every=every, history="steps")  # fmt: skip
    a = r.agreement
    assert a["lr"]["max_ulp"] == 0 and a["params"]["manual~optim"]["max_ulp"] == 0
    lrs = r.history["optim"]["steps"]["lr"]
    assert len(set(lrs)) > 5 and lrs == r.history["manual"]["steps"]["lr"]
    if every == "epoch":
        assert len(set(lrs[:40])) == 1  # one lr through the first epoch's 40 steps


def test_textbook_lr_differences_are_reported_and_explained():
    r = torchgd.fit(**NOISY, batching="sgd", epochs=20, lr=0.02, scheduler="exponential:gamma=0.9")
    a = r.agreement
    assert a["lr"]["pairs"]["manual~autograd"]["max_ulp"] == 0  # both take torchgd's
    optim = a["lr"]["pairs"]["manual~optim"]
    assert 0 < optim["max_ulp"] <= 64 and optim["first_difference"]["step"] > 1
    (why,) = [x["reason"] for x in a["reasons"] if x["between"] == "lr manual~optim"]
    assert "ExponentialLR lr in the closed form" in why and "rounding t times" in why


def test_the_command_line_runs_a_scheduler_and_resumes_it_bit_for_bit(main_cli, tmp_path):
    args = ["--data", "synthetic:40,d=2,noise=0.3,seed=2", "--bias", "--batching", "sgd",
            "--lr", "0.02", "--epochs", "6", "--optimizer", "adam", "--scheduler",
            "StepLR:step_size=2,gamma=0.5", "--no-plots", "--no-tensorboard", "--json"]  # fmt: skip
    proc = main_cli("train", *args)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["config"]["scheduler"] == "step:step_size=2,gamma=0.5"
    assert out["paths"]["optim"]["history"]["lr"] == [0.02, 0.02, 0.01, 0.01, 0.005, 0.005]
    # a run stopped inside epoch 4 and rebuilt from its config.json resumes bit for bit
    kw = dict(**NOISY, batching="sgd", epochs=6, lr=0.02, optimizer="adam",
              scheduler="step:step_size=2,gamma=0.5")  # fmt: skip
    whole = train.execute(plan(**kw))
    state = stopped_at(plan(**kw), 4, 7)
    resumed = train.execute(plan_from_config(json.loads(json.dumps(state["config"]))), resume=state)
    assert resumed.to_json()["paths"] == whole.to_json()["paths"]
    assert resumed.agreement == whole.agreement


@pytest.mark.parametrize(
    "spec,message",
    [
        ("nope", "unknown scheduler 'nope': use one of"),
        ("step", "StepLR needs step_size, e.g. step:step_size=3"),
        ("onecycle", "OneCycleLR needs max_lr, e.g. onecycle:max_lr=0.1"),
        ("cosine:T_max=50@5", "is not a whole number (A@5@B runs A, then B from step 5)"),
        ("polynomial:power=-1", "gives no lr after 5 of its steps (ZeroDivisionError"),
        ("exponential:gamma=1e308", "gives no lr after 2 of its steps (OverflowError"),
        ("linear:total_iters=0", "total_iters must be a whole number >= 1, got 0"),
        ("onecycle:max_lr=0.1,total_steps=100,div_factor=0", "div_factor must be > 0, got 0.0"),
        ("step:step_size=0", "step_size must be a whole number >= 1"),
        ("cosine:T_max=10,eta=1", "'eta=1' is not an option of CosineAnnealingLR"),
        ("constant:factor=2", "Constant multiplicative factor expected to be between 0 and 1."),
        ("exponential:gamma=x", "gamma=x is not a finite number"),
        ("cosine:T_max=3,eta_min=inf", "eta_min=inf is not a finite number"),
        ("exponential:gamma=-1", "gives lr -0.01 after 1 of its steps: a learning rate must be"),
        ("linear:start_factor=0", "--scheduler linear:start_factor=0: Starting multiplicative"),
        ("step:step_size=3,step_size=4", "step_size is given twice"),
        ("step:step_size=2.5", "step_size=2.5 is not a whole number"),
        ("onecycle:max_lr=0.1", "You must define either total_steps OR (epochs AND steps_per_"),
        ("onecycle:max_lr=0.1,total_steps=50", "OneCycleLR is sized for 50 steps but the run"),
        ("onecycle:max_lr=0.1,total_steps=100,three_phase=yes", "three_phase=yes is not True or"),
        ("onecycle:max_lr=0.1,total_steps=100,anneal_strategy=cosine", "must be one of 'cos'"),
        ("cyclic:base_lr=0.01,max_lr=0.1,mode=sine", "mode is invalid and scale_fn is None"),
        ("lambda:lr_lambda=nofile.py:f", "nofile.py' does not exist"),
        ("lambda:lr_lambda=torchgd.schedulers._examples:nope", "_examples has no 'nope' (a fu"),
        ("multiplicative", "MultiplicativeLR needs lr_lambda"),
        ("polynomial:total_iters=0", "total_iters must be a whole number >= 1"),
        ("warmrestarts:T_0=5,T_mult=0", "Expected integer T_mult >= 1, but got 0"),
        ("plateau:factor=1.5", "Factor should be < 1.0."),
        ("plateau:mode=lowest", "mode lowest is unknown!"),
    ],
)
def test_bad_schedulers_are_one_line_exit_2(main_cli, tmp_path, spec, message):
    proc = main_cli("train", "--scheduler", spec, "--logdir", tmp_path / "runs")
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_train_says_where_a_scheduled_lr_crosses_the_stability_limit(main_cli):
    """A linear warm-up to lr 0.2 on the lecture's data, whose batch limit is 1/7.5 (the
    lecture: 2 * mean(x^2) = 15): the line before training names the epoch where the warm-up
    passes the limit, the run diverges after it, and the guard's advice names the schedule,
    not the base lr alone. A cosine decay from below the limit is said to stay stable."""
    limit = 1 / 7.5
    warm = "linear:start_factor=0.1,end_factor=1.0,total_iters=40"
    lrs = [0.2 * (0.1 + 0.9 * min(t, 40) / 40) for t in range(100)]
    first = next(t for t, lr in enumerate(lrs) if lr >= limit)
    proc = main_cli("train", "--lr", "0.2", "--scheduler", warm, "--no-plots", "--no-tensorboard")
    said = proc.stdout.splitlines()[2]
    assert said.startswith("  (LinearLR peaks at lr 0.2 (epoch 41), above the limit (")
    assert f"it reaches the limit at epoch {first + 1} (lr {lrs[first]:.4g})" in said
    assert f"--lr below {0.2 * limit / 0.2:.4g} keeps this LinearLR below it" in said
    assert proc.returncode == 3
    (line,) = proc.stderr.strip().splitlines()
    diverged = int(line.split("diverged at epoch ")[1].split(":")[0])
    assert diverged > first + 1 and f"the lr is scheduled by {warm}" in line
    assert "try --lr" not in line
    proc = main_cli("train", "--lr", "0.1", "--scheduler", "cosine:T_max=100", "--no-plots",
                    "--no-tensorboard")  # fmt: skip
    assert proc.returncode == 0
    assert "CosineAnnealingLR peaks at lr 0.1 (epoch 1), below the limit" in proc.stdout
    # eta_min is an lr of its own: no --lr brings a cosine with eta_min 0.5 below the limit
    proc = main_cli("train", "--lr", "0.1", "--scheduler", "cosine:T_max=10,eta_min=0.5",
                    "--epochs", "30", "--no-plots", "--no-tensorboard")  # fmt: skip
    said = proc.stdout.splitlines()[2]
    assert "its options set part of the lr whatever --lr is" in said and "--lr below" not in said


def test_scheduler_every_without_a_scheduler_is_refused(main_cli, tmp_path):
    proc = main_cli("train", "--scheduler-every", "step", "--logdir", tmp_path / "runs")
    assert proc.returncode == 2 and "give one with --scheduler" in proc.stderr
    assert not (tmp_path / "runs").exists()


MOMENTUM = [
    (n, o) for n, o in CASES if getattr(schedulers.get(n).Options(**o), "cycle_momentum", False)
]


@pytest.mark.parametrize("name,options", MOMENTUM)
def test_cycled_momentum_is_torchs_for_sgd_momentum_and_adams_beta1(name, options):
    module = schedulers.get(name)
    o = module.Options(**options)
    mine = schedulers.Schedule(module, o, 0.1, "torch-exact")
    for cls, read in [(torch.optim.SGD, lambda g: g["momentum"]),
                      (torch.optim.Adam, lambda g: g["betas"][0])]:  # fmt: skip
        opt = cls([torch.zeros(1, requires_grad=True)], lr=0.1)
        kwargs = getattr(module, "torch_kwargs", dataclasses.asdict)(o)  # a user's scale_fn
        scheduler = getattr(torch.optim.lr_scheduler, module.TORCH_CLASS)(opt, **kwargs)
        for t in range(60):
            assert read(opt.param_groups[0]) == mine.momentum_at(t), (cls, t)
            opt.step()
            scheduler.step()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_cycle_runs_in_lockstep_with_torch_momentum_cycled_too(optimizer):
    spec = "onecycle:max_lr=0.05,total_steps=240"
    kw = dict(**NOISY, batching="sgd", epochs=6, lr=0.02, optimizer=optimizer,
              spelling="torch-exact", scheduler_every="step", history="steps")  # fmt: skip
    r = torchgd.fit(**kw, scheduler=spec)
    a = r.agreement
    assert a["lr"]["max_ulp"] == 0 and a["params"]["manual~optim"]["max_ulp"] == 0
    assert max(r.history["optim"]["steps"]["lr"]) == 0.05  # --lr plays no part: max_lr does
    still = torchgd.fit(**kw, scheduler=spec + ",cycle_momentum=False")
    assert still.agreement["params"]["manual~optim"]["max_ulp"] == 0
    assert still.params("optim") != r.params("optim")  # the momentum did change the run


def test_a_cycled_momentum_is_in_the_history_and_tensorboard_as_each_step_took_it(tmp_path):
    """OneCycleLR stepped every step cycles Adam's beta1: each path's momentum per step
    (history="steps") is torch's, the epoch's row holds its last step's lr and momentum (the
    optim path's scheduler has already stepped past them when the epoch ends), and TensorBoard
    logs update/momentum/<path> beside the lr, as its own reader reads it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = "onecycle:max_lr=0.05,total_steps=24"
    r = torchgd.fit(batching="sgd", epochs=6, optimizer="adam", scheduler=spec,
                    scheduler_every="step", history="steps", logdir=tmp_path, name="m",
                    plots=False)  # fmt: skip
    torch_momenta = []
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.01)
    theirs = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=24)
    for _ in range(24):
        torch_momenta.append(opt.param_groups[0]["betas"][0])
        opt.step()
        theirs.step()
    acc = EventAccumulator(str(tmp_path / "m"), size_guidance={"scalars": 0})
    acc.Reload()
    for p in ("manual", "autograd", "optim"):
        h = r.history[p]
        assert h["steps"]["momentum"] == torch_momenta
        assert h["momentum"] == torch_momenta[3::4] and h["lr"] == h["steps"]["lr"][3::4]
        logged = [e.value for e in acc.Scalars(f"update/momentum/{p}")]
        assert logged == [float(torch.tensor(m, dtype=torch.float32)) for m in torch_momenta]
    assert len(set(torch_momenta)) > 10  # it did cycle
    plain = torchgd.fit(epochs=2, logdir=tmp_path, name="plain", plots=False)
    acc = EventAccumulator(str(tmp_path / "plain"))
    acc.Reload()
    assert not any("momentum" in t for t in acc.Tags()["scalars"])
    assert "momentum" not in plain.history["manual"]


def test_a_users_lambda_file_runs_and_the_config_names_it_absolutely(main_cli, tmp_path):
    (tmp_path / "warm.py").write_text("def factor(t):\n    return min(1.0, (t + 1) / 4)\n")
    proc = main_cli("train", "--scheduler", "lambda:lr_lambda=warm.py:factor", "--epochs", "6",
                    "--json", "--no-plots", "--no-tensorboard")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["config"]["scheduler"] == f"lambda:lr_lambda={tmp_path / 'warm.py'}:factor"
    expected = [0.01 * min(1.0, (t + 1) / 4) for t in range(6)]
    assert out["paths"]["manual"]["history"]["lr"] == expected
    assert out["paths"]["optim"]["history"]["lr"] == out["paths"]["manual"]["history"]["lr"]
    (tmp_path / "bad.py").write_text("def factor(t):\n    return 1 / (3 - t)\n")
    proc = main_cli("train", "--scheduler", "multiplicative:lr_lambda=bad.py:factor",
                    "--logdir", tmp_path / "bad")  # fmt: skip
    assert proc.returncode == 2 and "failed at step 3: ZeroDivisionError" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_a_users_cyclic_scale_fn_is_called_with_the_cycle_as_torch_calls_it(main_cli, tmp_path):
    (tmp_path / "fade.py").write_text("def half(c):\n    return 0.5 ** (c - 1)\n")
    spec = "cyclic:base_lr=0.01,max_lr=0.1,step_size_up=2,scale_fn=fade.py:half"
    common = ("--epochs", "12", "--momentum", "0.9", "--spelling", "torch-exact", "--json",
              "--no-plots", "--no-tensorboard")  # fmt: skip
    proc = main_cli("train", "--scheduler", spec, *common)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert f"scale_fn={tmp_path / 'fade.py'}:half" in out["config"]["scheduler"]
    lrs = out["paths"]["optim"]["history"]["lr"]
    assert lrs == out["paths"]["manual"]["history"]["lr"]  # torch's class and torchgd's, alike
    assert max(lrs[:4]) == 0.1 and max(lrs[4:8]) < 0.1  # the second cycle peaks at half height
    # the same as triangular2, which is this scale written by torch
    torchs = spec.replace("scale_fn=fade.py:half", "mode=triangular2")
    same = main_cli("train", "--scheduler", torchs, *common)
    assert json.loads(same.stdout)["paths"]["optim"]["history"]["lr"] == lrs
    bad = [("scale_fn=fade.py:nothing", "has no 'nothing'"),
           ("scale_fn=fade.py:half,scale_mode=epochs", "cycle or iterations")]  # fmt: skip
    for option, words in bad:
        proc = main_cli("train", "--scheduler", spec.replace("scale_fn=fade.py:half", option),
                        "--momentum", "0.9", "--logdir", tmp_path / "bad")  # fmt: skip
        assert proc.returncode == 2 and words in proc.stderr and not (tmp_path / "bad").exists()


def test_a_cycling_scheduler_on_a_rule_without_momentum_is_refused_in_torchs_words(main_cli):
    proc = main_cli("train", "--optimizer", "adagrad", "--scheduler",
                    "cyclic:base_lr=0.01,max_lr=0.1,step_size_up=5")  # fmt: skip
    assert proc.returncode == 2
    assert "optimizer must support momentum or beta1 with `cycle_momentum`" in proc.stderr
    spec = "cyclic:base_lr=0.01,max_lr=0.1,step_size_up=5,cycle_momentum=False"
    proc = main_cli("train", "--optimizer", "adagrad", "--epochs", "5", "--no-plots",
                    "--no-tensorboard", "--scheduler", spec)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


COSTS = [5.0, 4.0, 4.0, 3.9999, 4.1, 3.0, 3.0, 3.0, 3.0, 2.9, 2.9, 2.9, 2.9, 2.9, 1.0, 1.0] * 3


@pytest.mark.parametrize("options", schedulers.get("plateau").TRY)
def test_plateau_follows_the_costs_as_torchs_reduce_lr_on_plateau(options):
    module = schedulers.get("plateau")
    for spelling in ("torch-exact", "textbook"):
        mine = schedulers.make(module, module.Options(**options), 0.1, spelling)
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **options)
        for t, cost in enumerate(COSTS, 1):
            mine.observe(cost)
            theirs.step(cost)
            assert mine.lr_at(t) == opt.param_groups[0]["lr"], (spelling, t)
        assert len(set(mine.lrs)) > 2  # it did lower the lr, more than once


def test_a_plateau_run_is_in_lockstep_with_torch_and_resumes_bit_for_bit():
    kw = dict(**NOISY, batching="minibatch:8", epochs=40, lr=0.05, optimizer="adam",
              spelling="torch-exact", scheduler="plateau:patience=2,factor=0.5")  # fmt: skip
    whole = train.execute(plan(**kw))
    a, h = whole.agreement, whole.to_json()["paths"]
    assert a["lr"]["max_ulp"] == 0 and a["params"]["manual~optim"]["max_ulp"] == 0
    lrs = h["optim"]["history"]["lr"]
    assert lrs == h["manual"]["history"]["lr"] and len(set(lrs)) >= 4 and lrs[0] == 0.05
    assert all(b in (a_, a_ / 2) for a_, b in zip(lrs, lrs[1:]))  # only ever halved
    state = stopped_at(plan(**kw), 25, 3)
    assert state["schedule"]["lrs"][:25] == lrs[:25]
    rebuilt = plan_from_config(json.loads(json.dumps(state["config"])))
    resumed = train.execute(rebuilt, resume=state)
    assert resumed.to_json()["paths"] == h and resumed.agreement == a


def test_plateau_refuses_to_be_stepped_every_step(main_cli, tmp_path):
    proc = main_cli("train", "--scheduler", "plateau", "--scheduler-every", "step",
                    "--logdir", tmp_path / "runs")  # fmt: skip
    assert (
        proc.returncode == 2
        and "steps on the epoch's cost: use --scheduler-every epoch" in proc.stderr
    )


def test_plot_schedule_draws_every_paths_lr_against_the_critical_lr_and_the_loss_beneath():
    from torchgd import plots, theory

    spec = "linear:start_factor=0.1,total_iters=40"
    r = torchgd.fit(lr=0.2, scheduler=spec, history="steps", epochs=60)
    assert r.status == "diverged"  # the warm-up passes the limit: the guard stops the run
    p = plan(lr=0.2, scheduler=spec, epochs=60)
    critical = theory.analyse(p.config, p.dataset, p.batching).critical_lr
    assert plots.limit(r.to_json()) == critical == pytest.approx(1 / 7.5)
    fig = plots.schedule(r, critical_lr=critical)
    top, bottom = fig.axes[:2]
    title = top.get_title()
    assert "scheduled by linear:start_factor=0.1,total_iters=40 every epoch" in title
    assert "diverged after" in title and top.get_ylabel() == "learning rate"
    steps = r.history["manual"]["steps"]
    lines = {line.get_label(): line for line in top.get_lines()}
    (limit,) = [v for k, v in lines.items() if k.startswith("critical lr 0.1333")]
    assert list(limit.get_ydata()) == [critical, critical]
    drawn = [list(v.get_ydata()) for k, v in lines.items() if not k.startswith("critical")]
    assert steps["lr"] in drawn and r.history["optim"]["steps"]["lr"] in drawn
    assert top.get_yscale() == "linear"  # 0.02 to 0.2 and the limit: one decade
    assert bottom.get_xlabel() == "step" and bottom.get_yscale() == "log"
    decay = torchgd.fit(lr=0.1, scheduler="exponential:gamma=0.7", history="steps", epochs=30)
    assert plots.schedule(decay, critical_lr=critical).axes[0].get_yscale() == "log"  # decades
    (loss,) = bottom.get_lines()  # smooth, falling then rising: no smoothed curve
    assert (
        list(loss.get_xdata()) == steps["step"] and loss.get_label() == "manual = autograd = optim"
    )


def test_plot_schedule_through_the_command_line(main_cli, tmp_path):
    proc = main_cli("plot", "schedule", "--data", "synthetic:40,d=2,noise=0.3,seed=2",
                    "--batching", "sgd", "--lr", "0.05", "--epochs", "5", "--scheduler",
                    "cosine:T_max=5", "--out", tmp_path / "s.svg")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "s.svg") and (tmp_path / "s.svg").stat().st_size
    proc = main_cli("plot", "schedule", "--lr", "0.05")
    assert proc.returncode == 2 and "give --scheduler NAME:key=value" in proc.stderr
    proc = main_cli("plot", "loss", "--scheduler", "step:step_size=2")
    assert proc.returncode == 2 and "plot loss does not take --scheduler" in proc.stderr


def _member(name):
    m = schedulers.get(name)
    return schedulers.spec_of(m, m.Options(**m.TRY[-1]))


PAIRS = [  # every pair of members a sequence or a chain takes, each with options it tries
    spec
    for joiner, allowed in (("@4@", _compose.IN_SEQUENCE), ("+", _compose.IN_CHAIN))
    for a in allowed
    for b in allowed
    if a != b
    for spec in [_member(a) + joiner + _member(b)]
    if "eta_min=0.003" not in spec or joiner == "@4@"
]


def test_sequences_and_chains_are_torchs_sequential_lr_and_chained_scheduler_bit_for_bit():
    tried = 0
    for spec in PAIRS:
        module, options = schedulers.parse(spec)
        assert schedulers.parse(schedulers.spec_of(module, options)) == (module, options)
        for base in (0.1, 0.03):
            mine = schedulers.make(module, options, base, "torch-exact")
            assert [mine.lr_at(t) for t in range(31)] == torch_lrs(None, mine, base, 30), spec
            tried += 1
    assert tried >= 150


def test_a_warm_up_then_cosine_runs_in_lockstep_and_resumes_bit_for_bit():
    spec = "linear:start_factor=0.1,total_iters=3@3@cosine:T_max=5@8@exponential:gamma=0.8"
    kw = dict(**NOISY, batching="minibatch:8", epochs=12, lr=0.05, optimizer="adam",
              spelling="torch-exact", scheduler=spec)  # fmt: skip
    whole = train.execute(plan(**kw))
    a, h = whole.agreement, whole.to_json()["paths"]
    assert a["lr"]["max_ulp"] == 0 and a["params"]["manual~optim"]["max_ulp"] == 0
    lrs = h["optim"]["history"]["lr"]
    assert lrs[:3] == pytest.approx([0.05 * (0.1 + 0.3 * t) for t in range(3)], rel=1e-15)
    assert lrs[3] == 0.05  # cosine restarts at its base lr, in closed form
    state = stopped_at(plan(**kw), 9, 2)
    rebuilt = plan_from_config(json.loads(json.dumps(state["config"])))
    resumed = train.execute(rebuilt, resume=state)
    assert resumed.to_json()["paths"] == h and resumed.agreement == a


@pytest.mark.parametrize(
    "spec,message",
    [
        ("step:step_size=2@3@plateau", "ReduceLROnPlateau cannot be part of a SequentialLR"),
        ("exponential:gamma=0.9+cosine:T_max=5,eta_min=0.01", "cosine with eta_min=0"),
        ("step:step_size=2@3@exponential:gamma=0.9+step:step_size=3", "not both"),
        ("step:step_size=2@5@exponential:gamma=0.9@3@cosine:T_max=4", "milestones must rise"),
        ("step:step_size=2@3@cosine", "CosineAnnealingLR needs T_max"),
    ],
)
def test_bad_compositions_are_one_line_exit_2(main_cli, tmp_path, spec, message):
    proc = main_cli("train", "--scheduler", spec, "--logdir", tmp_path / "runs")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("every", ["epoch", "step"])
def test_a_sweeps_lanes_follow_each_lanes_schedule_bit_identical_to_single_runs(every):
    from torchgd import sweep

    spec = "linear:start_factor=0.2,total_iters=3@3@exponential:gamma=0.8"
    common = dict(data="synthetic:60,d=2,noise=0.3,seed=1", batching="minibatch:6", epochs=5,
                  optimizer="adam", scheduler=spec, scheduler_every=every)  # fmt: skip
    lrs = [0.01, 0.05, 0.2]
    for dtype in ("float64", "float32"):
        report = sweep.sweep(lrs=lrs, dtype=dtype, **common)
        assert "the lr is scheduled" in report["no_theory"]
        for i, lr in enumerate(lrs):
            one = torchgd.fit(lr=lr, dtype=dtype, paths=("manual",), **common)
            assert report["params"]["w"][i] == one.paths["manual"]["params"]["w"], (dtype, lr)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("plateau", "ReduceLROnPlateau follows each run's cost and has no lanes here"),
        ("cyclic:base_lr=0.01,max_lr=0.1,cycle_momentum=False", "sets the lr from its own opt"),
    ],
)
def test_a_sweep_refuses_schedules_without_lanes(main_cli, tmp_path, spec, message):
    proc = main_cli("sweep", "--lr", "0.01:0.3:4", "--scheduler", spec, "--logdir", tmp_path)
    assert proc.returncode == 2 and message in proc.stderr
    assert not list(tmp_path.iterdir())


EVERY_SCHEDULER = [  # every scheduler file, with the last option set it tries
    (name, schedulers.spec_of(m, m.Options(**m.TRY[-1]))) for name, m in schedulers.ALL.items()
]


@pytest.mark.parametrize("i,name,spec", [(i, *c) for i, c in enumerate(EVERY_SCHEDULER)])
def test_every_scheduler_runs_in_lockstep_with_torch_for_200_steps(i, name, spec):
    """Mini-batches of 4 on noisy data with a bias, 20 epochs of 10 steps, the scheduler
    stepped every epoch; SGD with momentum or Adam, float64 or float32, by turns."""
    assert_in_lockstep_with_torch(spec, i)


def assert_in_lockstep_with_torch(spec: str, i: int):
    """The scheduler ``spec`` in a 200-step run: SGD with momentum or Adam, float64 or float32
    by turns of ``i``; every lr, parameter and buffer of the manual path is the optim path's."""
    optimizer, extra = [("sgd", dict(momentum=0.9)), ("adam", {})][i % 2]
    dtype = ["float64", "float32"][i // 2 % 2]
    r = torchgd.fit(**NOISY, batching="minibatch:4", epochs=20, lr=0.02, optimizer=optimizer,
                    spelling="torch-exact", scheduler=spec, dtype=dtype, **extra)  # fmt: skip
    a = r.agreement
    assert r.to_json()["steps"] == 200
    assert a["lr"]["max_ulp"] == 0 and a["params"]["manual~optim"]["max_ulp"] == 0, spec
    assert a["buffers"]["manual~optim"]["max_ulp"] == 0, spec
    return r


def test_a_cycled_momentum_is_said_and_not_mistaken_for_divergence(main_cli):
    """OneCycleLR on plain SGD cycles a momentum of 0.85-0.95: the first line says so and that
    --lr plays no part, the theory (plain SGD's) is not applied, and the heavy-ball overshoot
    is not called divergence (the cost stays below the start)."""
    proc = main_cli("train", "--scheduler", "onecycle:max_lr=0.1,total_steps=100", "--json",
                    "--no-plots", "--no-tensorboard")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "completed" and out["paths"]["manual"]["loss"] < 1e-3
    proc = main_cli("train", "--scheduler", "onecycle:max_lr=0.1,total_steps=100", "--no-plots",
                    "--no-tensorboard")  # fmt: skip
    first = proc.stdout.splitlines()[0]
    said = "lr set by onecycle:max_lr=0.1,total_steps=100 every epoch from its own options, "
    assert said in first
    assert "not --lr 0.01; momentum cycled 0.85-0.95 by it (in place of the rule's own)" in first
    assert "peaks at" not in proc.stdout
    r = torchgd.fit(momentum=0.95, lr=0.005)  # heavy-ball: up and down on the way to the minimum
    assert r.status == "completed"


@pytest.mark.parametrize("optimizer", ["rprop", "asgd"])
def test_rules_that_take_the_lr_once_take_the_first_steps_scheduled_lr_as_torch(optimizer):
    """Rprop's first step size and ASGD's first eta are the lr of the first step, which a
    ConstantLR has already lowered (torch makes that state at the first step, not before)."""
    r = torchgd.fit(**NOISY, batching="minibatch:8", epochs=3, lr=0.05, optimizer=optimizer,
                    spelling="torch-exact",
                    scheduler="constant:factor=0.5,total_iters=2")  # fmt: skip
    assert r.agreement["params"]["manual~optim"]["max_ulp"] == 0
    assert r.agreement["buffers"]["manual~optim"]["max_ulp"] == 0


def test_a_scheduler_object_that_is_not_one_is_one_clear_error():
    cosine, step = schedulers.get("cosine"), schedulers.get("StepLR")
    with pytest.raises(TorchgdError, match="are not CosineAnnealingLR's options"):
        torchgd.fit(scheduler=(cosine, step.Options(step_size=10)))
    with pytest.raises(
        TorchgdError, match=r"give StepLR's Options with its values, e.g. Options\("
    ):
        torchgd.fit(scheduler=step.Options)
    with pytest.raises(TorchgdError, match="scheduler must be a spec like 'cosine:T_max=100'"):
        torchgd.fit(scheduler=3)


def test_a_users_scheduler_file_is_recorded_and_an_edit_is_caught_before_a_resume(tmp_path):
    """--resume refuses a run whose own files changed: a scheduler's lr_lambda or scale_fn
    file is one of them, as a problem or rule file is."""
    from torchgd.planning import changed_files

    (tmp_path / "warm.py").write_text("def factor(t):\n    return min(1.0, (t + 1) / 4)\n")
    (tmp_path / "fade.py").write_text("def half(c):\n    return 0.5 ** (c - 1)\n")
    config = {"files": {}}
    for spec in (f"lambda:lr_lambda={tmp_path / 'warm.py'}:factor",
                 f"cyclic:base_lr=0.01,max_lr=0.1,step_size_up=2,"
                 f"scale_fn={tmp_path / 'fade.py'}:half,cycle_momentum=False"):  # fmt: skip
        config["files"].update(plan(epochs=4, scheduler=spec).config["files"])
    assert set(config["files"]) == {str(tmp_path / "warm.py"), str(tmp_path / "fade.py")}
    assert changed_files(config) == []
    (tmp_path / "fade.py").write_text("def half(c):\n    return 0.25 ** (c - 1)\n")
    assert changed_files(config) == [str(tmp_path / "fade.py")]


def test_a_users_scheduler_function_is_loaded_once_a_run_not_once_a_step(monkeypatch, tmp_path):
    """Every lr of a run is checked before it starts: a user's lr_lambda is looked up when the
    schedule is made, not at each of its steps (300,000 epochs spent 13 s finding the file
    again and again before the first line)."""
    from torchgd import loading

    (tmp_path / "warm.py").write_text("def factor(t):\n    return min(1.0, (t + 1) / 4)\n")
    seen = []
    real = loading.attribute
    monkeypatch.setattr(loading, "attribute", lambda *a: seen.append(a) or real(*a))
    p = plan(epochs=5000, scheduler=f"lambda:lr_lambda={tmp_path / 'warm.py'}:factor")
    assert p.hyper_at.schedule.lr_at(4999) == 0.01 and len(seen) <= 3
    (tmp_path / "warm.py").write_text("def factor(t):\n    return 0.5\n")  # a new run reads it
    again = plan(epochs=5, scheduler=f"lambda:lr_lambda={tmp_path / 'warm.py'}:factor")
    assert again.hyper_at.schedule.lr_at(3) == 0.005


def test_a_scheduler_file_of_ones_own_joins_the_grids_and_runs_from_another_directory(
    main_cli, tmp_path
):
    """The recipe for a scheduler: one file like those in torchgd/schedulers/ (here the
    example's inverse-time decay, copied into a directory of the user's), named by its path.
    With no other edit it goes through the generated checks every scheduler file gets, runs
    from another directory with its path recorded absolutely, and an edit stops a --resume."""
    from pathlib import Path

    from torchgd.planning import changed_files

    mine = tmp_path / "mine"
    mine.mkdir()
    source = Path(__file__).parents[1] / "examples" / "my_scheduler.py"
    (mine / "invtime.py").write_text(source.read_text())
    module = schedulers.get(str(mine / "invtime.py"))
    for options in module.TRY:  # the grid of every scheduler file
        assert_torch_exact_is_torchs(module, options)
    for i in range(4):
        spec = schedulers.spec_of(module, module.Options(**module.TRY[i % 2]))
        assert_in_lockstep_with_torch(spec, i)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = main_cli("train", "--scheduler", "../mine/invtime.py:decay=0.5", "--epochs", "20",
                   "--json", "--no-plots", "--logdir", "runs", cwd=elsewhere)  # fmt: skip
    assert run.returncode == 0, run.stderr
    config = json.loads(run.stdout)["config"]
    assert config["scheduler"] == f"{mine / 'invtime.py'}:decay=0.5"
    assert list(config["files"]) == [str(mine / "invtime.py")]
    lr = json.loads(run.stdout)["paths"]["manual"]["history"]["lr"]
    assert lr[:3] == [0.01, 0.01 / 1.5, 0.01 / 2.0]  # the textbook form, as written
    assert plan_from_config(config).config["scheduler"] == config["scheduler"]
    (mine / "invtime.py").write_text(source.read_text().replace("1 + o.decay", "2 + o.decay"))
    assert changed_files(config) == [str(mine / "invtime.py")]
    (mine / "cosine.py").write_text(source.read_text().replace('"inverse-time"', '"cosine"'))
    then = f"{mine / 'cosine.py'}:decay=0.1@5@cosine:T_max=9"  # named like a built-in: a file
    composed = main_cli("train", "--scheduler", then, "--logdir", "runs")
    assert composed.returncode == 2
    assert "a scheduler file (cosine.py) cannot be part" in composed.stderr
    (mine / "bad.py").write_text("NAME = 'bad'\n")
    bad = main_cli("train", "--scheduler", f"{mine / 'bad.py'}:x=1", "--logdir", "runs")
    assert bad.returncode == 2
    assert bad.stderr.strip().endswith(
        "lacks TORCH_CLASS, WHY, Options, textbook, torch_exact: a scheduler file holds "
        "NAME, TORCH_CLASS, WHY, Options, textbook, torch_exact (docs/layout.md, Recipes)"
    )


def _broken(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


BROKEN_FILES = [  # what breaks in a copy of examples/my_scheduler.py, and the one line said
    ("@dataclass(frozen=True)\n", "", "Options must be a dataclass of its options"),
    ("base / (1 + o.decay * t)", "base / (t - t)", "the scheduler file raised ZeroDivisionError"),
    ("base / (1 + o.decay * t)", "'fast'", "the scheduler file raised TypeError"),
    ("def torch_kwargs(", "def _unused(", "unexpected keyword argument 'decay'"),
    ("NAME = ", "NAMED = ", "lacks NAME: a scheduler file holds NAME"),
    ("import dataclass", "import dataclas", "cannot load scheduler"),
    (
        "lambda t: _factor(t, o)",
        "lambda t: -1.0 if t == 7 else _factor(t, o)",
        "torch's LambdaLR built from the file sets lr -0.01 at scheduler step 7",
    ),
    (
        "    return base * _factor(t, o)",
        "    return float('inf')",
        "(the file's torch_exact, the torch-exact",
    ),
]


@pytest.mark.parametrize("old,new,message", BROKEN_FILES, ids=[m for *_, m in BROKEN_FILES])
def test_a_broken_scheduler_file_is_one_line_exit_2_and_nothing_is_written(
    cli_once, tmp_path, old, new, message
):
    """A user's scheduler file is tried before anything is written: its members, its lr for
    every step of the run, torch's class built from it; what breaks is one line, exit 2."""
    from pathlib import Path

    source = (Path(__file__).parents[1] / "examples" / "my_scheduler.py").read_text()
    (tmp_path / "mine.py").write_text(_broken(source, old, new))
    proc = cli_once("train", "--scheduler", f"{tmp_path / 'mine.py'}:decay=0.1",
                    "--logdir", tmp_path / "runs")  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_scheduler_files_path_with_plus_or_at_signs_is_one_file_not_a_composition(
    main_cli, tmp_path
):
    from pathlib import Path

    odd = tmp_path / "runs+old@2@mine"  # would read as a chain (+o) and a sequence (@2@)
    odd.mkdir()
    source = Path(__file__).parents[1] / "examples" / "my_scheduler.py"
    (odd / "invtime.py").write_text(source.read_text())
    spec = f"{odd / 'invtime.py'}:decay=0.5"
    run = main_cli("train", "--scheduler", spec, "--epochs", "3", "--json", "--no-plots",
                   "--logdir", tmp_path / "out")  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["config"]["scheduler"] == spec
    assert result["paths"]["manual"]["history"]["lr"] == [0.01, 0.01 / 1.5, 0.01 / 2.0]
    then = main_cli("train", "--scheduler", f"{spec}@5@cosine:T_max=9", "--logdir", tmp_path)
    assert then.returncode == 2 and "a scheduler file (invtime.py) cannot be part" in then.stderr
    alone = main_cli(
        "train",
        "--scheduler",
        odd / "invtime.py",
        "--epochs",
        "2",
        "--json",
        "--no-plots",
        "--logdir",
        tmp_path / "out",
    )  # its own options: the defaults
    assert alone.returncode == 0, alone.stderr
    assert json.loads(alone.stdout)["config"]["scheduler"] == f"{odd / 'invtime.py'}:decay=0.1"
