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

from dataclasses import dataclass
from typing import NamedTuple

import torch

ROWS_MAX_VALUES = 2_000_000  # a block holds at most this many numbers per series


class Record(NamedTuple):
    """One step as Python floats, paths in order (``Step.record``)."""

    step: int
    epoch: int
    losses: list  # per path: the loss on the batch before the update
    params: list  # per path, D entries each: the parameters after the update
    grads: list  # per path, D entries each: the gradient used
    formulas: list  # per autograd path, D entries each: the analytic formula at its parameters
    shadow64: list | None  # float32 runs: the float64 manual path's parameters
    bounds: list | None = None  # per autograd path, D entries: formula~autograd rounding bound
    bufs: list | None = None  # with a rule's state, per path, K*D entries: after the step


def _stack(tensors, out) -> None:
    torch.stack(tensors, out=out)


def _cat(tensors, out) -> None:
    torch.cat(flat(tensors), out=out)


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
    formulas: dict  # the analytic formula at each autograd path's parameters before the step
    batch: tuple | None = None  # (x, y) of the step's batch (None: a function problem)

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
            floats([t for r in self.formulas.values() for t in r.values()]),
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
    """Preallocated rows for up to ``size`` steps, one row per step in one table (one write a
    step): ``losses`` [T, P], ``params`` and ``grads`` [T, P, D], ``formulas`` [T, Q, D] (Q
    autograd paths), ``bufs`` [T, P, K*D] with a rule's K states per entry (K = ``bufs``);
    ``shadow64`` [T, D] (a table of its own: float64) with a float64 shadow; per step its
    number, epoch, batch index and batch size as Python ints (``steps``, ``epochs``, ``batches``,
    ``sizes``: known without the device)."""

    def __init__(self, size, p, q, d, dtype, device, *, bufs=0, shadow64=False, scalar=False):
        self.size = max(1, min(size, ROWS_MAX_VALUES // max(1, p * d)))
        self.p, self.q, self.d, self.k = p, q, d, int(bufs)
        widths = {"losses": p, "params": p * d, "grads": p * d, "formulas": q * d}
        widths["bufs"] = p * d * int(bufs)  # bufs: the rule's states per parameter entry
        self.columns, at = {}, 0
        for name, width in widths.items():
            self.columns[name] = (at, at + width) if width or name == "formulas" else None
            at += width
        self.table = torch.empty((self.size, at), dtype=dtype, device=device)
        self.shadow64 = (
            torch.empty((self.size, d), dtype=torch.float64, device=device) if shadow64 else None
        )
        self.rows: list = []  # row views, each made once, by the first block that reaches it
        self.rows64: list = []
        # every parameter a number (the lecture's w): a row is written by one stack, no reshape
        self.write = _stack if scalar else _cat
        self.steps: list = []
        self.epochs: list = []
        self.batches: list = []
        self.sizes: list = []

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def full(self) -> bool:
        return len(self.steps) >= self.size

    def put(self, step, epoch, batch, size, values: list, shadow64=None) -> None:
        """Write one step's row: its number, epoch, batch index and batch size, then its
        values in the table's order -- losses, params, grads, formulas, bufs -- as tensors (none
        requires grad: nothing here is recorded by autograd); ``shadow64`` the shadow's params."""
        t = len(self.steps)
        if t == len(self.rows):  # indexing the table anew every step costs more than the write
            self.rows.append(self.table[t])
            self.rows64.append(self.shadow64[t] if shadow64 is not None else None)
        self.write(values, self.rows[t])
        if shadow64 is not None:
            self.write(shadow64, self.rows64[t])
        self.steps.append(step)
        self.epochs.append(epoch)
        self.batches.append(batch)
        self.sizes.append(size)

    def host(self) -> HostBlock:
        """The filled rows, copied to the host once."""
        t = len(self.steps)
        table = self.table[:t].cpu()

        def series(name, width, k=1):
            cols = self.columns[name]
            if cols is None:
                return None
            part = table[:, cols[0] : cols[1]]
            return part if width is None else part.reshape(t, width, self.d * k)

        p, q = self.p, self.q
        return HostBlock(
            list(self.steps),
            list(self.epochs),
            list(self.batches),
            list(self.sizes),
            series("losses", None),
            series("params", p),
            series("grads", p),
            series("formulas", q),
            series("bufs", p, self.k),
            None if self.shadow64 is None else self.shadow64[:t].cpu(),
        )

    def clear(self) -> None:
        self.steps, self.epochs, self.batches, self.sizes = [], [], [], []


@dataclass
class HostBlock:
    """A block as callbacks get it (``on_block``) and the report folds it: per step its number,
    epoch, batch index and batch size, and per series a tensor on the host ([T, P] losses,
    [T, P, D] params and grads, [T, P, K*D] bufs (the rule's K states), [T, Q, D] formulas,
    [T, D] shadow64)."""

    steps: list
    epochs: list
    batches: list
    sizes: list
    losses: torch.Tensor
    params: torch.Tensor
    grads: torch.Tensor
    formulas: torch.Tensor
    bufs: torch.Tensor | None = None
    shadow64: torch.Tensor | None = None
    lrs: list | None = None  # the lr of each step, where plan's hyper_at changes it
    momenta: list | None = None  # the momentum (Adam's beta1) of each step, where it is cycled

    def __len__(self) -> int:
        return len(self.steps)


class sync_allowed:  # noqa: N801  (used as a context manager, like torch.no_grad)
    """Where the loop reads the device on purpose (setup, block boundaries, the guard's verdict
    at an epoch's end, the end): a CUDA run under ``torch.cuda.set_sync_debug_mode("error")``
    -- the test that no step waits -- may synchronise here and nowhere else. On other devices
    it does nothing (and costs nearly nothing)."""

    def __init__(self, device):
        self.cuda = getattr(device, "type", "cpu") == "cuda"

    def __enter__(self):
        if self.cuda:
            self.old = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode(0)
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.set_sync_debug_mode(self.old)
