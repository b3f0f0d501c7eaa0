"""Hyperparameters that change during a run (``plan``'s ``hyper_at``): every path, the float64
shadow and torch.optim's param_groups take them; the lr of each step is recorded; a resumed run
is the same run. Checked against plain loops and torch.optim.lr_scheduler."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import torchgd
from conftest import stopped_at
from torchgd import train
from torchgd.errors import TorchgdError
from torchgd.planning import plan, plan_from_config

NOISY = dict(data="synthetic:40,d=2,noise=0.3,seed=2", bias=True, guard=False)


def step_decay(step, epoch, hp):
    """StepLR(step_size=10, gamma=0.5), epoch by epoch, as a function."""
    return dataclasses.replace(hp, lr=hp.lr * 0.5 ** ((epoch - 1) // 10))


def test_a_step_decay_is_the_lectures_loop_with_that_lr_in_every_path():
    r = torchgd.fit(batching="sgd", epochs=30, hyper_at=step_decay, history="steps")
    w, lrs = 1.0, []
    for epoch in range(1, 31):
        lr = 0.01 * 0.5 ** ((epoch - 1) // 10)
        for x, y in zip([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]):
            w = w - lr * (2 * x * (x * w - y))
            lrs.append(lr)
    for path in ("manual", "autograd", "optim"):
        assert r.params(path)["w"] == w  # bit for bit, torch.optim's param_groups included
        assert r.history[path]["lr"] == [lrs[4 * e - 1] for e in range(1, 31)]
        assert r.history[path]["steps"]["lr"] == lrs
    assert r.agreement["bit_identical"] and r.config["hyper_at"] == "step_decay"


def test_the_optim_path_is_torch_optim_with_its_own_step_lr_scheduler():
    """Adam on noisy data with a bias, per sample, lr halved every 2 epochs: the optim path
    equals a plain torch loop driven by torch.optim.lr_scheduler.StepLR, and torch-exact
    equals it too (the hand-written rule takes the same lr at every step)."""

    def halve(step, epoch, hp):
        return dataclasses.replace(hp, lr=hp.lr * 0.5 ** ((epoch - 1) // 2))

    r = torchgd.fit(**NOISY, batching="sgd", epochs=6, optimizer="adam", lr=0.05,
                    spelling="torch-exact", hyper_at=halve)  # fmt: skip
    ds = torchgd.data.get("synthetic:40,d=2,noise=0.3,seed=2")
    w = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    start = {k: torch.tensor(v, dtype=torch.float64) for k, v in r.config["init"].items()}
    with torch.no_grad():
        w.copy_(start["w"]), b.copy_(start["b"])
    opt = torch.optim.Adam([w, b], lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(6):
        for x, y in zip(ds.x, ds.y):
            opt.zero_grad()
            loss = (x @ w + b - y) ** 2
            loss.backward()
            opt.step()
        sched.step()
    assert r.params("optim")["w"] == w.detach().tolist() and r.params("optim")["b"] == b.item()
    assert r.agreement["params"]["manual~optim"]["max_ulp"] == 0


def test_the_float64_shadow_follows_the_schedule():
    """float32 with a shadow: the float64 manual path takes the same lrs, so the distance stays
    at float32's rounding, as in a run without a schedule; the schedule itself moves the result
    hundreds of times further than that (a shadow left at the first lr would show it)."""

    def shadow_distance(**kw):
        r = torchgd.fit(**NOISY, batching="sgd", epochs=20, lr=0.02, dtype="float32",
                        shadow=True, **kw)  # fmt: skip
        return max(v["max_abs"] for v in r.agreement["float64_reference"].values())

    far, usual = shadow_distance(hyper_at=step_decay), shadow_distance()
    assert far < 1e-5 and far < 10 * usual
    constant = torchgd.fit(**NOISY, batching="sgd", epochs=20, lr=0.02)
    decayed = torchgd.fit(**NOISY, batching="sgd", epochs=20, lr=0.02, hyper_at=step_decay)
    moved = np.abs(np.subtract(constant.params()["w"], decayed.params()["w"])).max()
    assert moved > 100 * far


def test_tensorboard_logs_the_lr_each_step_took(tmp_path):
    torchgd.fit(batching="sgd", epochs=25, hyper_at=step_decay, logdir=tmp_path, name="d",
                plots=False)  # fmt: skip
    acc = EventAccumulator(str(tmp_path / "d"), size_guidance={"scalars": 0})
    acc.Reload()
    for path in ("manual", "optim"):
        logged = [e.value for e in acc.Scalars(f"update/lr/{path}")]
        expected = [0.01 * 0.5 ** ((s - 1) // 4 // 10) for s in range(1, 101)]
        assert logged == [float(np.float32(v)) for v in expected]


def test_a_resumed_run_with_changing_hyperparameters_is_the_same_run():
    """Stopped at step 50 of epoch 2 (lr already halved once), resumed from its state with
    the same hyper_at: the result and the agreement equal the run made in one go (the
    optimizer's param_groups, saved at the lr then, are set anew at the next step)."""

    def by_epoch(step, epoch, hp):
        return dataclasses.replace(hp, lr=0.01 / epoch)

    kw = dict(**NOISY, batching="sgd", epochs=3, optimizer="adam", lr=0.01, hyper_at=by_epoch)
    whole = train.execute(plan(**kw))
    state = stopped_at(plan(**kw), 2, 10)
    resumed = train.execute(plan(**kw), resume=state)
    assert resumed.to_json()["paths"] == whole.to_json()["paths"]
    assert resumed.agreement == whole.agreement
    with pytest.raises(TorchgdError, match="cannot hold: rebuild its plan in Python"):
        plan_from_config(json.loads(json.dumps(state["config"])))


@pytest.mark.parametrize(
    "hook,message",
    [
        (0.5, "hyper_at must be a function of (step, epoch, hp)"),
        (lambda step, epoch, hp: 0.01, "at step 1 it gave 0.01"),
        (lambda step, epoch, hp: 1 / 0, "hyper_at failed at step 1: ZeroDivisionError"),
    ],
)
def test_a_bad_hyper_at_is_one_line_before_anything_runs(hook, message):
    with pytest.raises(TorchgdError, match=message.replace("(", r"\(").replace(")", r"\)")):
        torchgd.fit(epochs=3, hyper_at=hook)


def test_the_report_recomputes_a_differing_step_with_that_steps_lr():
    """Textbook SGD against torch.optim.SGD, lr shrinking 1% a step (never the plan's lr):
    the reason recomputes the first step where they differ both ways, with the lr of that
    step, and gets exactly what the two paths wrote there (with the plan's lr it would get
    other numbers)."""
    import re

    def shrink(step, epoch, hp):
        return dataclasses.replace(hp, lr=hp.lr * 0.99**step)

    r = torchgd.fit(**NOISY, batching="sgd", epochs=6, lr=0.02, hyper_at=shrink, history="steps")
    first = r.agreement["params"]["manual~optim"]["first_difference"]
    assert first is not None
    (why,) = [x["reason"] for x in r.agreement["reasons"] if x["between"] == "manual~optim"]
    two, one = map(float, re.search(r"w - lr\*grad = (\S+), w\.add\(grad, alpha=-lr\) = (\S+)\)",
                                    why).groups())  # fmt: skip
    name, _, index = first["param"].partition("[")
    at = first["step"] - 1

    def written(path):
        value = r.history[path]["steps"][name][at]
        return value[int(index[:-1])] if index else value

    assert (two, one) == (written("manual"), written("optim"))


def test_the_sweep_refuses_hyper_at_rather_than_ignore_it():
    from torchgd import sweep

    # one function of one hp cannot give every lane its lr; a scheduler can (test_schedulers)
    with pytest.raises(TorchgdError, match="hyper_at is for fit"):
        sweep.sweep(lrs=[0.01, 0.02], epochs=2, hyper_at=step_decay)
