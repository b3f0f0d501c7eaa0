"""L-BFGS by hand: a step that evaluates the loss again (torch's ``step(closure)``).

The generated grids of test_optimizers run it against ``torch.optim.LBFGS`` for every option
combination (state and evaluation counts included); here what is its own: the paths evaluate
on the step's batch, the report counts the evaluations, the line search meets the Wolfe
conditions, a checkpoint keeps the history, and what cannot take it is refused.
"""

import json

import pytest
import torch

import torchgd
from conftest import stopped_at
from torchgd import checkpoints, rules, train
from torchgd.errors import TorchgdError
from torchgd.planning import plan, plan_from_config

NOISY = dict(data="synthetic:120,d=3,noise=0.5,seed=3", bias=True, guard=False)
lbfgs = rules.get("lbfgs")


def test_the_lecture_by_lbfgs_solves_in_one_step_and_every_path_agrees():
    r = torchgd.fit(optimizer="lbfgs", epochs=3)
    assert r.history["manual"]["w"] == [2.0, 2.0, 2.0]  # the first step reaches w = 2 exactly
    assert r.agreement["bit_identical"]
    counts = r.agreement["evaluations"]
    assert set(counts) == {"manual", "autograd", "optim"} and len(set(counts.values())) == 1
    why = [x["reason"] for x in r.agreement["reasons"] if x["between"] == "evaluations"]
    assert why and f"{counts['optim']} times in 3 steps on every path" in why[0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("search", [None, "strong_wolfe"])
def test_each_path_evaluates_on_its_steps_batch_as_torchs_closure_does(dtype, search):
    """Mini-batches on noisy data with a bias: the hand-written torch-exact spelling follows
    torch.optim.LBFGS evaluation for evaluation (autograd~optim 0 ulp, the same count)."""
    r = torchgd.fit(
        optimizer="lbfgs", spelling="torch-exact", dtype=dtype, batching="minibatch:16",
        shuffle=True, epochs=3, lr=0.5, line_search_fn=search, history_size=5, **NOISY,
    )  # fmt: skip
    a = r.agreement
    assert a["params"]["autograd~optim"]["max_ulp"] == 0
    counts = a["evaluations"]
    assert counts["autograd"] == counts["optim"] > 2 * a["steps"]  # several a step
    assert all(x["between"] != "autograd~optim" for x in a["reasons"])


def test_the_textbooks_two_loop_recursion_is_named_where_it_differs():
    r = torchgd.fit(optimizer="lbfgs", batching="minibatch:16", epochs=2, lr=0.5, **NOISY)
    a = r.agreement
    assert a["params"]["autograd~optim"]["max_ulp"] > 0
    why = next(x for x in a["reasons"] if x["between"] == "autograd~optim")
    assert why["kind"] == "update rule" and "two-loop recursion" in why["reason"]
    # the operation named does round differently: add_ with alpha against a * y then minus
    g = torch.Generator().manual_seed(0)
    q, y = torch.randn(2, 64, generator=g, dtype=torch.float64)
    a_i = torch.randn((), generator=g, dtype=torch.float64)
    assert not torch.equal(q.clone().add_(y, alpha=-a_i), q - a_i * y)


def _bowl(w):
    """A convex quartic and its gradient."""
    k = torch.arange(1.0, len(w) + 1, dtype=w.dtype)
    return float((k * (w - 1) ** 2).sum() + 0.25 * (w**4).sum()), 2 * k * (w - 1) + w**3


@pytest.mark.parametrize("t0", [1e-3, 1.0, 30.0])
def test_the_line_search_returns_a_step_that_meets_the_strong_wolfe_conditions(t0):
    x = torch.tensor([3.0, -2.0, 0.5], dtype=torch.float64)
    f, g = _bowl(x)
    d = -g
    gtd = g.dot(d)

    def phi(x, t, d):
        return _bowl(x + t * d)

    f_new, g_new, t, evals = lbfgs.strong_wolfe(phi, x, t0, d, f, g, gtd)
    assert f_new <= f + 1e-4 * t * gtd  # sufficient decrease
    assert abs(g_new.dot(d)) <= -0.9 * gtd  # curvature
    assert (f_new, torch.equal(g_new, _bowl(x + t * d)[1])) == (_bowl(x + t * d)[0], True)
    assert 1 <= evals <= 25


def test_a_resumed_run_keeps_the_history_and_equals_one_run(tmp_path):
    kw = dict(**NOISY, batching="minibatch:8", epochs=2, optimizer="lbfgs", lr=0.5,
              line_search_fn="strong_wolfe", history_size=4)  # fmt: skip
    whole = train.execute(plan(**kw))
    state = stopped_at(plan(**kw), 1, 7)
    kept = state["paths"]["manual"]["buffers"]["w"]
    assert len(kept["old_dirs"]) == 4 and kept["n_iter"] > 7  # the history is in it
    checkpoints.save(tmp_path / "ckpt.pt", state)
    state = checkpoints.load(tmp_path / "ckpt.pt")
    resumed = train.execute(plan_from_config(json.loads(json.dumps(state["config"]))), resume=state)
    assert resumed.to_json()["paths"] == whole.to_json()["paths"]
    assert resumed.agreement == whole.agreement


def test_what_cannot_evaluate_again_is_refused_in_one_line(main_cli, tmp_path):
    with pytest.raises(TorchgdError, match="no gradient noise"):
        torchgd.fit(optimizer="lbfgs", noise=0.1)
    proc = main_cli("train", "--optimizer", "lbfgs", "--noise", "0.1", "--logdir", tmp_path / "r")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
    proc = main_cli("sweep", "--optimizer", "lbfgs", "--lr", "0.1:1:3", "--logdir", tmp_path / "s")
    assert proc.returncode == 2 and "line search" in proc.stderr and not (tmp_path / "s").exists()
    for bad, words in [("--max-iter=2.5", "whole number"), ("--line-search-fn=wolfe", "only")]:
        proc = main_cli("train", "--optimizer", "lbfgs", bad, "--logdir", tmp_path / "r")
        assert proc.returncode == 2 and words in proc.stderr and not (tmp_path / "r").exists()


def test_the_evaluation_count_is_said_truly_for_one_path_and_a_small_max_eval(main_cli):
    """max_eval is torch's stopping test after each iteration, not a cap: with max_eval 1 each
    step still evaluates twice (its first evaluation, then one iteration's); the count is said
    for one path too."""
    r = torchgd.fit(optimizer="lbfgs", max_eval=1, paths=("optim",), batching="minibatch:50",
                    epochs=2, **NOISY)  # fmt: skip
    assert r.agreement["evaluations"] == {"optim": 2 * r.agreement["steps"]}
    why = next(x["reason"] for x in r.agreement["reasons"] if x["between"] == "evaluations")
    assert r.agreement["most_evaluations"] == {"optim": 2}
    assert "on the optim path, at most 2 in one step" in why and "as one did here" in why
    lecture = torchgd.fit(optimizer="lbfgs", epochs=3).agreement  # 25 allowed, 2 taken
    why = next(x["reason"] for x in lecture["reasons"] if x["between"] == "evaluations")
    assert why.endswith("at most 2 in one step") and "max_eval" not in why
    proc = main_cli("train", "--optimizer", "lbfgs", "--paths", "manual", "--epochs", "2",
                    "--no-plots", "--no-tensorboard")  # fmt: skip
    assert "nothing to compare" in proc.stdout and "why (evaluations): LBFGS" in proc.stdout


def test_parameters_of_opposite_signs_are_not_given_a_saturated_ulp_count(main_cli):
    proc = main_cli("train", "--optimizer", "lbfgs", "--data", "synthetic:200,d=3,noise=0.5,seed=3",
                    "--bias", "--batching", "sgd", "--epochs", "1", "--no-plots",
                    "--no-tensorboard")  # fmt: skip
    head = next(line for line in proc.stdout.splitlines() if line.startswith("Agreement"))
    assert "opposite signs: more ulps than int64 counts" in head, head
    assert str(2**63 - 1) not in head
