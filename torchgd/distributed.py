"""Several processes: ``torchrun --standalone --nproc-per-node=2 -m torchgd train --distributed``.

Every process loads the data, works on its own contiguous shard of the rows, and takes part in
every step::

    for each batch (the same seeded batches as a single process):
        each rank: the batch's rows that fall in its shard, chunk by chunk -> partial sums
        all_reduce(SUM) of the partial sums (loss, gradient, the formula's check)
        each rank: the same update from the same sums -> the same parameters

A single process adds the samples' terms in one order (the lecture's formulas for a batch that
fits one chunk, chunk sums for a bigger one); here each rank sums its own rows, then the ranks'
sums are added: the same sum, associated differently, from residuals computed by other kernels.
Any two ways of adding the same B terms t_n, each rounded, differ by at most 2 * gamma(B + 2) *
sum |t_n| (Higham's bound for recursive summation, two more roundings for each term's residual;
gamma(m) = m*u / (1 - m*u), u = eps / 2). So a step's gradient differs from the single process's
by at most 2 * gamma(B + 2) * max_n |t_n| per entry (t_n = 2 x_n (x_n w - y_n)), and an update
by lr times that. Gradient descent below the critical learning rate contracts earlier
differences, so after T steps the parameters differ by at most

    T * lr * 2 * gamma(B + 2) * max over steps and samples of |2 x_n (x_n w - y_n)|

``tests/test_distributed.py`` checks that bound on a real two-process float64 run (measured:
1 ulp, against a bound of about 1e-11).

The backend is gloo on the CPU and NCCL on CUDA (each rank on ``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import os

import torch

from .errors import TorchgdError

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class Group:
    """This process's place among the others, and the collectives a run needs."""

    def __init__(self, rank: int, world: int, local_rank: int, backend: str, device: str):
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.backend, self.device = backend, device

    def shard(self, n: int) -> tuple[int, int]:
        """The rows ``[lo, hi)`` of N this rank works on: contiguous, sizes differing by <= 1."""
        return self.rank * n // self.world, (self.rank + 1) * n // self.world

    def sum_(self, tensors) -> None:
        """All-reduce (sum) the tensors in place, as one flat message."""
        import torch.distributed as dist

        tensors = list(tensors)
        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        at = 0
        for t in tensors:
            with torch.no_grad():
                t.copy_(flat[at : at + t.numel()].view_as(t))
            at += t.numel()

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on one (a stop request reaches all of them)."""
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def identical(self, t: torch.Tensor) -> bool:
        """Does every rank hold exactly these values (bit for bit)?"""
        import torch.distributed as dist

        gathered = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(gathered, t.contiguous())
        return all(torch.equal(g.view(torch.uint8), t.view(torch.uint8)) for g in gathered)

    def gather(self, value: int) -> list:
        """Every rank's ``value``, in rank order."""
        import torch.distributed as dist

        gathered = [
            torch.zeros(1, dtype=torch.int64, device=self.device) for _ in range(self.world)
        ]
        dist.all_gather(gathered, torch.tensor([value], dtype=torch.int64, device=self.device))
        return [int(g.item()) for g in gathered]

    def info(self) -> dict:
        return {"world_size": self.world, "backend": self.backend}


def init(device: str = "cpu") -> Group:
    """Join the process group torchrun set up (its environment variables say where)."""
    missing = [k for k in ENV if k not in os.environ]
    if missing:
        raise TorchgdError(
            "--distributed runs under torchrun, which sets "
            f"{', '.join(missing)}: torchrun --standalone --nproc-per-node=2 -m torchgd train "
            "--distributed ..."
        )
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available() or local_rank >= torch.cuda.device_count():
            raise TorchgdError(
                f"--distributed --device {device}: rank {rank} needs cuda:{local_rank}, but "
                f"this machine has {torch.cuda.device_count()} CUDA devices"
            )
        torch.cuda.set_device(local_rank)
        device, backend = f"cuda:{local_rank}", "nccl"
    else:
        device, backend = "cpu", "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Group(rank, world, local_rank, backend, device)


def close() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
