"""What a step is fed: the rows of a batch (of the data or of an epoch's permutation, this
process's shard of them), the seeded gradient noise, the loss over a batch, and the data moved
to the run's device."""

from __future__ import annotations

import torch

from . import problems
from .batching import mix_seed


def noise_for(config: dict, step: int, params0: dict) -> dict:
    """Gaussian noise for one step, the same for every path: seeded by (seed, step)."""
    g = torch.Generator().manual_seed(mix_seed(config["seed"], step, salt=1))
    return {
        n: to_device(
            config["noise"] * torch.randn(t.shape, generator=g, dtype=torch.float64),
            t.device,
            t.dtype,
        )
        for n, t in params0.items()
    }


def to_device(t: torch.Tensor, device, dtype=None) -> torch.Tensor:
    """``t`` (made on the host) on ``device`` (in ``dtype``), without waiting: to a GPU through
    pinned memory, asynchronously (a plain copy from pageable memory waits for the device)."""
    t = t.to(dtype) if dtype is not None else t
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def batch_of(x, y, bounds, order, shard=None, offset=0):
    """The samples of one step: rows ``bounds`` of the data, or of the epoch's permutation
    ``order`` (gathered with ``index_select``: no shuffled copy of the whole data); with a
    ``shard`` ``(lo, hi)``, only those of them in rows lo to hi (possibly none). ``x`` and ``y``
    hold the data's rows from ``offset`` on (a rank that keeps only its shard)."""
    if bounds is None:
        return None, None
    a, b = bounds
    if order is None:
        if shard is not None:
            a = max(a, shard[0])
            b = max(a, min(b, shard[1]))
        return x[a - offset : b - offset], y[a - offset : b - offset]
    rows = order[a:b]
    if shard is not None:
        rows = rows[(rows >= shard[0]) & (rows < shard[1])]
    rows = rows - offset if offset else rows
    return x.index_select(0, rows), y.index_select(0, rows)


def batch_loss(problem, params, x, y, n, group):
    """The loss on a batch: the lecture's expression, or chunk by chunk for a big batch (no
    batch-sized temporaries); with several ranks, each adds its part and they add up the sums.
    ``params``: detached values (no graph is recorded)."""
    if group is None and problems.fits(problem, y):
        return problem.loss(params, x, y)
    total = torch.zeros((), dtype=y.dtype, device=y.device)
    with torch.no_grad():
        for xc, yc in problems.chunks(problem, x, y):
            total += problem.sums(params, xc, yc)[0]
    if group is not None:
        group.sum_([total])
    return total / n


def unflatten(row: torch.Tensor, like: dict) -> dict:
    """A flat row of parameter values back into a dict shaped like ``like``."""
    out, at = {}, 0
    for k, t in like.items():
        out[k] = row[at : at + t.numel()].reshape(t.shape).to(t.dtype)
        at += t.numel()
    return out
