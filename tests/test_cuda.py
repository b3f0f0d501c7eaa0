"""On a GPU: a lockstep run whose steps never wait for the device.

These run where ``torch.cuda.is_available()`` (``scripts/gpu_check.sh`` runs them with the GPU
rows of the bench); elsewhere they are skipped and say so. Their CPU-side counterparts are in
test_engine.py (no value read inside a step) and test_cli.py (a clear error without CUDA).
"""

import pytest
import torch

import torchgd
from torchgd import explain, rules

pytestmark = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def execute_without_syncs(p):
    """Run plan ``p`` with any synchronisation outside the loop's declared points an error."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        return torchgd.train.execute(p)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@needs_cuda
@pytest.mark.parametrize(
    "kw",
    [
        dict(batching="sgd", epochs=30),
        dict(data="synthetic:300,d=3,noise=0.5", batching="minibatch:32", epochs=4, momentum=0.9),
        dict(data="synthetic:300,d=3,noise=0.5", dtype="float32", epochs=20),
    ],
    ids=["lecture sgd", "noisy minibatch momentum", "float32 batch with its shadow"],
)
def test_a_full_lockstep_run_on_cuda_synchronises_only_at_block_boundaries(monkeypatch, kw):
    from torchgd import planning as plans

    monkeypatch.setattr(explain, "BLOCK", 16)  # several block boundaries in the run
    p = plans.plan(device="cuda", guard=False, **kw)  # data moved before the check starts
    r = execute_without_syncs(p)
    assert r.status == "completed" and r.steps > 16
    if "data" not in kw:  # one sample a step: elementwise float64 ops, the same on either device
        cpu = torchgd.fit(device="cpu", guard=False, **kw)
        assert r.paths == cpu.paths and r.agreement["max_ulp"] == cpu.agreement["max_ulp"]


@needs_cuda
def test_the_lecture_on_cuda_reproduces_its_numbers_bit_for_bit():
    r = torchgd.fit(batching="sgd", device="cuda")
    for path in r.paths.values():
        assert path["params"]["w"] == 1.9999999999999998
        assert path["loss"] == 7.888609052210118e-31


@needs_cuda
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(rules.ALL))
def test_torch_exact_runs_in_lockstep_with_torch_optim_on_cuda(name, dtype):
    """torch.optim takes its multi-tensor (foreach) kernels on CUDA; the hand-written
    torch-exact rule uses the single-tensor operations: the same floats, or this fails."""
    from test_optimizers import ALL_ON, NOISY

    r = torchgd.fit(
        device="cuda", optimizer=name, spelling="torch-exact", dtype=dtype, batching="sgd",
        epochs=1, **NOISY, **ALL_ON[name],
    )  # fmt: skip
    assert r.agreement["params"]["autograd~optim"]["max_ulp"] == 0
    if "buffers" in r.agreement or rules.state_names(rules.get(name).Hyper()):  # L-BFGS: none
        assert r.agreement["buffers"]["autograd~optim"]["max_ulp"] == 0


@needs_cuda
def test_an_adam_run_on_cuda_synchronises_only_at_block_boundaries(monkeypatch):
    from torchgd import planning as plans

    monkeypatch.setattr(explain, "BLOCK", 16)
    p = plans.plan(
        device="cuda", guard=False, data="synthetic:300,d=3,noise=0.5", batching="minibatch:32",
        epochs=3, optimizer="adam", amsgrad=True,
    )  # fmt: skip
    r = execute_without_syncs(p)
    assert r.status == "completed" and r.steps > 16
