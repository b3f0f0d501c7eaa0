"""A block of steps held on the run's device.

Each step writes its numbers -- per path the loss before the update, the parameters after it,
the gradient used; per autograd path the analytic formula at its parameters; the momentum
buffers and the float64 shadow when there are any -- into one row of preallocated tensors on
the run's device (a handful of ``torch.cat``/``torch.stack`` calls with ``out=``; nothing is
read back). When the block is full, or the run ends or saves a checkpoint, the agreement report
folds it with tensor operations and callbacks get it as Python numbers, copied from the device
once (``HostBlock``). So a step never waits for the device: on a GPU the loop runs ahead of
the kernels until a block boundary.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import NamedTuple

import torch

ROWS_MAX_VALUES = 2_000_000  # a block holds at most this many numbers per series


class Record(NamedTuple):
    """One step as Python floats, paths in order (``Step.record``; older checkpoints kept a
    list of these)."""

    step: int
    epoch: int
    losses: list  # per path: the loss on the batch before the update
    params: list  # per path, D entries each: the parameters after the update
    grads: list  # per path, D entries each: the gradient used
    refs: list  # per autograd path, D entries each: the analytic formula at its parameters
    ref64: list | None  # float32 runs: the float64 manual path's parameters
    bounds: list | None = None  # per autograd path, D entries: formula~autograd rounding bound
    bufs: list | None = None  # with momentum, per path, D entries: the buffers after the step


def flat(tensors) -> list:
    """Tensors as 1-D views (0-d ones too), ready for one ``torch.cat``."""
    return [t.reshape(-1) for t in tensors]


def floats(tensors) -> list:
    """Values of tensors as one flat list of Python floats (reads the device)."""
    return torch.cat([t.detach().reshape(-1) for t in tensors]).tolist() if tensors else []


@dataclass
class Step:
    """What ``on_step`` callbacks get after each step, as tensors on the run's device: per path
    the loss before the update, the gradient used and the parameters after it."""

    step: int
    epoch: int
    losses: dict
    grads: dict
    params: dict
    refs: dict  # the analytic formula at each autograd path's parameters before the step

    @property
    def record(self) -> Record:
        """The same numbers as Python floats, in path order (reads the device)."""
        names = list(self.params)
        return Record(
            self.step,
            self.epoch,
            floats([self.losses[p] for p in names]),
            floats([t for p in names for t in self.params[p].values()]),
            floats([t for p in names for t in self.grads[p].values()]),
            floats([t for r in self.refs.values() for t in r.values()]),
            None,
        )


@dataclass
class Epoch:
    """What callbacks get after each epoch: per path the epoch's loss and the parameters."""

    epoch: int
    step: int
    losses: dict
    params: dict


class Block:
    """Preallocated rows for up to ``size`` steps: ``losses`` [T, P], ``params`` and ``grads``
    [T, P, D], ``refs`` [T, Q, D] (Q autograd paths), ``bufs`` [T, P, D] with momentum,
    ``ref64`` [T, D] with a float64 shadow; per step its number, epoch, batch index and batch
    size as Python ints (``steps``, ``epochs``, ``batches``, ``sizes``: known without the
    device)."""

    def __init__(self, size, p, q, d, dtype, device, *, bufs=False, ref64=False):
        def rows(*shape, dt=dtype):
            return torch.empty((size, *shape), dtype=dt, device=device)

        self.size = max(1, min(size, ROWS_MAX_VALUES // max(1, p * d)))
        size = self.size
        self.losses, self.params, self.grads = rows(p), rows(p, d), rows(p, d)
        self.refs = rows(q, d)
        self.bufs = rows(p, d) if bufs else None
        self.ref64 = rows(d, dt=torch.float64) if ref64 else None
        self.steps: list = []
        self.epochs: list = []
        self.batches: list = []
        self.sizes: list = []

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def full(self) -> bool:
        return len(self.steps) >= self.size

    @torch.no_grad()
    def put(self, step, epoch, batch, size, losses, params, grads, refs, bufs=None, ref64=None):
        """Write one step's row: its number, epoch, batch index and batch size, then lists of
        tensors (flat)."""
        t = len(self.steps)
        torch.stack(losses, out=self.losses[t])
        torch.cat(params, out=self.params[t].view(-1))
        torch.cat(grads, out=self.grads[t].view(-1))
        if refs:
            torch.cat(refs, out=self.refs[t].view(-1))
        if bufs is not None:
            torch.cat(bufs, out=self.bufs[t].view(-1))
        if ref64 is not None:
            torch.cat(ref64, out=self.ref64[t])
        self.steps.append(step)
        self.epochs.append(epoch)
        self.batches.append(batch)
        self.sizes.append(size)

    def host(self) -> HostBlock:
        """The filled rows, copied to the host once."""
        t = len(self.steps)

        def rows(x):
            return None if x is None else x[:t].cpu()

        return HostBlock(
            list(self.steps),
            list(self.epochs),
            list(self.batches),
            list(self.sizes),
            *(rows(x) for x in (self.losses, self.params, self.grads, self.refs)),
            rows(self.bufs),
            rows(self.ref64),
        )

    def clear(self) -> None:
        self.steps, self.epochs, self.batches, self.sizes = [], [], [], []


@dataclass
class HostBlock:
    """A block as callbacks get it (``on_block``) and the report folds it: per step its number,
    epoch, batch index and batch size, and per series a tensor on the host ([T, P] losses,
    [T, P, D] params, grads and bufs, [T, Q, D] refs, [T, D] ref64)."""

    steps: list
    epochs: list
    batches: list
    sizes: list
    losses: torch.Tensor
    params: torch.Tensor
    grads: torch.Tensor
    refs: torch.Tensor
    bufs: torch.Tensor | None = None
    ref64: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.steps)


@contextlib.contextmanager
def sync_allowed(device):
    """Where the loop reads the device on purpose (block boundaries, the guard's verdict at an
    epoch's end): a CUDA run under ``torch.cuda.set_sync_debug_mode("error")`` -- the test that
    no step waits -- may synchronise here and nowhere else."""
    if getattr(device, "type", "cpu") != "cuda":
        yield
        return
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode(0)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(old)
