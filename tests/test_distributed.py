"""Several processes: a real two-process torchrun against the single process, and the shards."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

import torchgd
from conftest import ROOT
from torchgd import data as datasets
from torchgd import distributed, train
from torchgd.cli import main

ARGS = [
    "--data", "synthetic:5000,d=2,noise=0.1,bias=0.5", "--bias", "--batching", "minibatch:1000",
    "--epochs", "5", "--lr", "0.05", "--checkpoint-every", "2",
]  # fmt: skip


def _gamma(m: int, dtype=torch.float64) -> float:
    u = torch.finfo(dtype).eps / 2
    return m * u / (1 - m * u)


def _torchrun(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "-m", "torchgd", "train", "--distributed", *map(str, args), "--no-plots", "--quiet"],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_two_processes_end_where_one_does_within_the_reduction_order_bound(tmp_path):
    _torchrun(*ARGS, "--logdir", tmp_path)
    (run_dir,) = tmp_path.iterdir()  # rank 0 wrote one run directory; rank 1 wrote nothing
    assert (run_dir / "checkpoint.pt").is_file()
    assert json.loads((run_dir / "config.json").read_text())["run_options"]["distributed"] == {
        "world_size": 2,
        "backend": "gloo",
    }
    two = json.loads((run_dir / "summary.json").read_text())
    assert two["status"] == "completed"
    assert two["agreement"]["ranks"]["identical_parameters"] is True
    assert two["agreement"]["ranks"]["rows_held"] == [5000, 2500]  # rank 1: its shard only

    one = torchgd.fit(
        data="synthetic:5000,d=2,noise=0.1,bias=0.5", bias=True, batching="minibatch:1000",
        epochs=5, lr=0.05,
    )  # fmt: skip
    ds = datasets.synthetic(5000, d=2, noise=0.1, bias=0.5)
    # the bound of torchgd.distributed: T * lr * 2 * gamma(B + 2) * max |gradient term|
    terms = []
    for w, b in zip([[1.0, 1.0], *one.paths["manual"]["history"]["w"]],
                    [0.0, *one.paths["manual"]["history"]["b"]]):  # fmt: skip
        r = ds.x @ torch.tensor(w, dtype=torch.float64) + b - ds.y
        terms.append(max((2 * ds.x * r[:, None]).abs().max().item(), (2 * r).abs().max().item()))
    bound = one.steps * 0.05 * 2 * _gamma(1000 + 2) * max(terms)
    assert bound < 1e-10
    for path in train.PATH_NAMES:
        for k, v in one.params(path).items():
            got = torch.tensor(two["paths"][path]["params"][k], dtype=torch.float64)
            diff = (got - torch.tensor(v, dtype=torch.float64)).abs().max().item()
            assert diff <= bound, (path, k, diff, bound)

    # both ranks resume from the checkpoint of epoch 4 and redo epoch 5 exactly as before
    _torchrun("--resume", run_dir)
    again = json.loads((run_dir / "summary.json").read_text())
    assert again["status"] == "completed" and again["agreement"]["ranks"]["identical_parameters"]
    assert again["paths"] == two["paths"]


@pytest.mark.parametrize("order", [None, torch.randperm(103, generator=torch.Generator())])
@pytest.mark.parametrize("world", [2, 3])
def test_the_ranks_shards_of_every_batch_are_the_batch(order, world):
    x = torch.arange(103.0)
    groups = [distributed.Group(r, world, r, "gloo", "cpu") for r in range(world)]
    shards = [g.shard(103) for g in groups]
    assert shards[0][0] == 0 and shards[-1][1] == 103
    assert all(a[1] == b[0] for a, b in zip(shards, shards[1:]))
    for bounds in [(0, 10), (30, 40), (95, 103), (0, 103)]:
        parts = [train._batch(x, x, bounds, order, s)[0] for s in shards]
        whole = train._batch(x, x, bounds, order)[0]
        assert sorted(torch.cat(parts).tolist()) == sorted(whole.tolist())


@pytest.mark.parametrize(
    "args,message",
    [
        (["--distributed"], "--distributed runs under torchrun, which sets RANK"),
        (["--distributed", "--problem", "paraboloid"], "problem 'paraboloid' has none"),
    ],
)
def test_distributed_outside_torchrun_gives_one_line_and_exit_code_2(
    capsys, tmp_path, monkeypatch, args, message
):
    for k in distributed.ENV:
        monkeypatch.delenv(k, raising=False)
    code = main(["train", *args, "--logdir", str(tmp_path / "runs")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("path", train.PATH_NAMES)
def test_a_rank_without_rows_in_a_batch_contributes_zeros(path):
    from torchgd import options, paths, problems

    start = {"w": torch.tensor(1.5), "b": torch.tensor(0.5)}
    runner = paths.PATHS[path](problems.Linear(bias=True), start, options.SGD(lr=0.1))
    empty = torch.empty(0)
    runner.accumulate(empty, empty, 7)  # a batch of 7 samples, none of them on this rank
    assert [t.item() for t in runner.sums()] == [0.0] * len(runner.sums())


def test_two_processes_with_compile_match_the_compiled_single_process(tmp_path):
    # 600,000 rows: more than one chunk, so --compile fuses; each rank sums its 300,000 rows in
    # float64 and the ranks add those sums, so the manual path rounds to float32 only once
    spec = "synthetic:600000,noise=0.1"
    args = ["--data", spec, "--dtype", "float32", "--lr", "0.1", "--epochs", "3", "--compile"]
    _torchrun(*args, "--logdir", tmp_path)
    (run_dir,) = tmp_path.iterdir()
    two = json.loads((run_dir / "summary.json").read_text())
    assert two["config"]["compile"] is True
    assert two["agreement"]["ranks"]["identical_parameters"] is True
    assert two["agreement"]["ranks"]["rows_held"] == [600000, 300000]
    one = torchgd.fit(data=spec, dtype="float32", lr=0.1, epochs=3, compile=True)
    got, want = two["paths"]["manual"]["params"]["w"], one.params("manual")["w"]
    assert abs(got - want) <= 2**-23 * abs(want)  # at most one float32 rounding apart


@pytest.mark.parametrize("spec", ["synthetic:700000,d=2,noise=0.3,seed=4", "lecture"])
def test_a_rank_keeps_only_its_rows_and_they_are_the_whole_datas(spec):
    whole = datasets.get(spec, torch.float32)
    n = len(whole)
    part = datasets.get(spec, torch.float32, rows=lambda m: (m // 3, 2 * m // 3))
    assert (part.offset, part.n, len(part)) == (n // 3, n, 2 * n // 3 - n // 3)
    assert torch.equal(part.x, whole.x[n // 3 : 2 * n // 3])
    assert torch.equal(part.y, whole.y[n // 3 : 2 * n // 3])


@pytest.mark.parametrize("order", [None, torch.randperm(103, generator=torch.Generator())])
def test_a_batch_from_a_ranks_rows_is_the_batch_from_the_whole_data(order):
    x = torch.arange(103.0)
    shard = (40, 80)
    for bounds in [(0, 50), (50, 103), (10, 30)]:
        whole = train._batch(x, x, bounds, order, shard)[0]
        mine = train._batch(x[40:80], x[40:80], bounds, order, shard, offset=40)[0]
        assert torch.equal(whole, mine)


def test_a_rank_holding_part_of_the_data_gives_no_divergence_theory_of_its_part():
    p = train.plan(batching="batch", lr=0.5)  # the lecture's data: the theory applies
    whole = train._advice(p, {"reason": "grew"})
    assert whole["critical_lr"] > 0  # rank 0 (or one process): the whole data's critical lr
    for lo, hi in [(0, 0), (1, 3)]:  # an empty shard and a part
        part = train._advice(
            dataclasses.replace(p, dataset=p.dataset.rows(lo, hi)), {"reason": "grew"}
        )
        assert "critical_lr" not in part and part["reason"] == "grew"


def test_a_plan_holding_part_of_the_data_is_refused_by_a_single_process():
    from torchgd.errors import TorchgdError

    p = train.plan(data="synthetic:1000", rows=lambda n: (500, 1000))
    with pytest.raises(TorchgdError, match="holds rows 500 to 1000 of 1000, but this process"):
        train.execute(p)
