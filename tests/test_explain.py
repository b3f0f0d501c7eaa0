"""Every reason the agreement report gives is provoked here and checked against what happened."""

import json

import pytest
import torch

import torchgd
from torchgd import explain
from torchgd.callbacks import Callback
from torchgd.callbacks.console import agreement_table


def reasons(result, kind):
    return [r for r in result.agreement["reasons"] if r["kind"] == kind]


def test_update_rounding_reason_quotes_both_recomputed_results_and_they_really_differ():
    r = torchgd.fit("linear", "course", batching="batch", epochs=100)
    (manual_optim,) = [x for x in reasons(r, "update rule") if x["between"] == "manual~optim"]
    text = manual_optim["reason"]
    assert "param.add_(grad, alpha=-lr)" in text and "w -= lr * grad" in text
    step = r.agreement["params"]["manual~optim"]["first_difference"]["step"]
    assert f"at step {step}" in text
    # replay the run by hand up to that step and recompute both updates
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    w = torch.tensor(1.0, dtype=torch.float64)
    for _ in range(step - 1):
        w = w - 0.01 * ((2 * x * (x * w - x * 2)).sum() / 3)
    g = (2 * x * (x * w - x * 2)).sum() / 3
    textbook, fused = (w - 0.01 * g).item(), w.add(g, alpha=-0.01).item()
    assert textbook != fused
    assert f"w - lr*grad = {textbook!r}" in text and f"alpha=-lr) = {fused!r}" in text


def test_torch_exact_rule_removes_the_update_rounding_difference():
    r = torchgd.fit("linear", "course", batching="batch", epochs=100, spelling="torch-exact")
    assert r.agreement["params"]["manual~optim"]["max_ulp"] == 0
    assert reasons(r, "update rule") == []


def test_gradient_reason_names_the_rounded_one_over_n():
    r = torchgd.fit("linear", "course", batching="batch", epochs=100)
    (grad,) = reasons(r, "gradient")
    assert r.agreement["grad"]["max_ulp"] > 0
    assert "1/N is not exact in binary for N = 3" in grad["reason"]


def test_function_problem_gradient_reason_is_rounding_not_a_wrong_formula():
    r = torchgd.fit("rosenbrock", epochs=200, lr=0.001)
    (grad,) = reasons(r, "gradient")
    assert "rounding, not a wrong formula" in grad["reason"]
    assert r.agreement["grad"]["max_rel"] < 1e-12


def test_carried_forward_reason_when_the_largest_difference_comes_after_the_first():
    r = torchgd.fit("rosenbrock", epochs=200, lr=0.001)
    rep = r.agreement["params"]["manual~optim"]
    assert rep["max_ulp_at"]["step"] > rep["first_difference"]["step"]
    (text,) = [x["reason"] for x in reasons(r, "update rule") if x["between"] == "manual~optim"]
    assert "carried forward" in text and f"at step {rep['max_ulp_at']['step']}" in text


def test_float32_runs_report_their_distance_to_float64():
    r = torchgd.fit("linear", "lecture", batching="sgd", dtype="float32", epochs=30)
    (dtype_reason,) = reasons(r, "dtype")
    f64 = torchgd.fit("linear", "lecture", batching="sgd", epochs=30, paths=("manual",))
    hist32 = r.paths["manual"]["history"]["w"]
    hist64 = f64.paths["manual"]["history"]["w"]
    worst = r.agreement["float64_reference"]["manual"]["max_abs"]
    # per-epoch values are a subset of steps, so the per-step maximum bounds them
    assert max(abs(a - b) for a, b in zip(hist32, hist64)) <= worst
    assert f"{worst:.3g}" in dtype_reason["reason"]


def test_a_wrong_formula_in_a_run_is_called_out_beyond_rounding():
    wrong = torchgd.FunctionProblem(
        "wrong",
        ("x",),
        f=lambda x: x**2,
        df=lambda x: (x,),
        start={"x": 3.0},
        description="f = x^2, df forgot the 2",
    )
    r = torchgd.fit(wrong, epochs=5, lr=0.1)
    (grad,) = [x for x in reasons(r, "gradient") if x["between"] == "analytic~autograd"]
    assert "does not compute the derivative of the loss" in grad["reason"]


def test_console_table_shows_each_pair_and_the_reasons():
    r = torchgd.fit("linear", "course", batching="batch", epochs=100)
    table = agreement_table(r)
    assert "params manual~optim" in table and "grad analytic~autograd" in table
    assert table.count("why (") == len(r.agreement["reasons"])


STREAMED = {
    "rule rounding, carried forward": dict(problem="rosenbrock", epochs=200, lr=0.001),
    "float32 and its float64 shadow": dict(batching="sgd", dtype="float32", epochs=30),
    "bias, shuffled minibatches": dict(
        data="synthetic:300,d=2,noise=0.2",
        bias=True,
        batching="minibatch:64",
        shuffle=True,
        epochs=8,
        lr=0.05,
    ),  # fmt: skip
    "divergence, inf and nan": dict(problem="rosenbrock", lr=0.01, epochs=40, guard=False),
}


@pytest.mark.parametrize("kw", STREAMED.values(), ids=STREAMED)
def test_the_report_folded_block_by_block_equals_the_report_over_all_steps(monkeypatch, kw):
    whole = torchgd.fit(**kw).agreement
    assert whole["steps"] < explain.BLOCK  # one block: every record at once
    for block in (1, 3, 7):
        monkeypatch.setattr(explain, "BLOCK", block)
        folded = torchgd.fit(**kw).agreement
        assert json.dumps(folded, sort_keys=True) == json.dumps(whole, sort_keys=True)  # NaN too


def test_a_long_run_holds_one_block_of_records_not_every_step(monkeypatch):
    from torchgd import records

    monkeypatch.setattr(explain, "BLOCK", 16)
    held, folded = [], []

    class Watch(Callback):
        def on_step(self, step):
            held.append(step.step)

        def on_block(self, block):
            folded.append(len(block))

    seen = []
    real_put = records.Block.put

    def put(self, *args, **kwargs):
        real_put(self, *args, **kwargs)
        seen.append((len(self), self.table.shape[0]))

    monkeypatch.setattr(records.Block, "put", put)
    r = torchgd.fit(batching="sgd", epochs=50, callbacks=[Watch()])
    assert r.steps == len(held) == 200 == r.agreement["steps"] == sum(folded)
    assert max(n for n, _ in seen) == 16 and {rows for _, rows in seen} == {16}
    assert folded == [16] * 12 + [8]  # a full block is folded at once, the rest at the end


def test_a_checkpoint_of_an_older_format_is_refused_in_one_line(main_cli, tmp_path):
    """A 0.1 package keeps no shims for older checkpoints: one written in format 1 (before
    L-BFGS's history and a cycled momentum were kept) is refused, saying what to do."""
    import hashlib
    import io

    from torchgd import checkpoints, train

    p = train.plan(problem="rosenbrock", lr=0.001, epochs=30)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    train.execute(p, [], checkpoint=train.Checkpointer(run_dir, every=30))
    outer = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    raw = outer["payload"].numpy().tobytes()
    assert outer["sha256"] == hashlib.sha256(raw).hexdigest()
    outer["format"] = "torchgd-checkpoint-1"
    buf = io.BytesIO()
    torch.save(outer, buf)
    (run_dir / "checkpoint.pt").write_bytes(buf.getvalue())
    before = sorted((p.name, p.stat().st_size) for p in run_dir.iterdir())
    with pytest.raises(torchgd.TorchgdError, match="checkpoint-1, written by an older torchgd"):
        checkpoints.load(run_dir / "checkpoint.pt")
    (run_dir / "config.json").write_text(json.dumps(p.config))  # as train writes it
    proc = main_cli("train", "--resume", run_dir)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "written by an older torchgd" in proc.stderr, proc.stderr
    assert (
        sorted((p.name, p.stat().st_size) for p in run_dir.iterdir() if p.name != "config.json")
        == before
    )
