"""The batching: which samples each step sees (``--batching``; an lr scheduler is another thing,
``torchgd.schedulers``).

* ``batch``: full-batch gradient descent, one step per epoch over all N samples (eq. 5).
* ``sgd``: one step per sample, in data order (default), or in a seeded random order each epoch
  with ``shuffle``.
* ``minibatch:B``: batches of B (the last one may be smaller) of a seeded shuffle each epoch
  (default, as the course describes mini-batches), or of the data in order with
  ``shuffle=False`` (as a course script that slices ``x[i:i+B]`` does).

Each epoch's order depends only on ``(seed, epoch)``, so any epoch can be replayed on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import TorchgdError


@dataclass(frozen=True)
class Batching:
    """How an epoch's samples are split into steps (``parse_batching`` makes one from its name)."""

    kind: str
    batch_size: int | None = None
    shuffle: bool = False
    seed: int = 0

    @property
    def spec(self) -> str:
        return f"minibatch:{self.batch_size}" if self.kind == "minibatch" else self.kind

    @property
    def shuffled(self) -> bool:
        return self.kind != "batch" and self.shuffle

    def size(self, n: int) -> int:
        return {"batch": n, "sgd": 1}.get(self.kind, self.batch_size)

    def steps_per_epoch(self, n: int) -> int:
        b = self.size(n)
        return -(-n // b)

    def order(self, n: int, epoch: int):
        """The permutation (a LongTensor) used in ``epoch`` (1-based), or None for data order."""
        if not self.shuffled:
            return None
        import torch

        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        return torch.randperm(n, generator=g)

    def slices(self, n: int) -> Slices:
        """The (start, stop) rows of each step of an epoch, computed on demand."""
        return Slices(n, self.size(n))


@dataclass(frozen=True)
class Slices:
    """``[(0, b), (b, 2b), ..., (.., n)]`` as a sequence that stores two numbers, not N pairs."""

    n: int
    b: int

    def __len__(self) -> int:
        return -(-self.n // self.b)

    def __getitem__(self, j: int) -> tuple[int, int]:
        if j < 0:
            j += len(self)
        if not 0 <= j < len(self):
            raise IndexError(j)
        return j * self.b, min((j + 1) * self.b, self.n)


def mix_seed(seed: int, index: int, salt: int = 0) -> int:
    """A well-mixed 64-bit seed for (seed, index): epochs and steps get independent streams."""
    import numpy as np

    state = np.random.SeedSequence([seed, index, salt]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


def parse_batching(spec: str, shuffle: bool | None = None, seed: int = 0) -> Batching:
    """``batch`` | ``sgd`` | ``minibatch:B`` to a Batching. ``shuffle`` None: the batching's
    default (``sgd`` in data order, ``minibatch`` shuffled)."""
    spec = spec.strip()
    if spec in ("batch", "sgd"):
        return Batching(spec, None, bool(shuffle), seed)
    if spec.startswith("minibatch:"):
        size = spec.partition(":")[2]
        if not size.isdigit() or int(size) < 1:
            raise TorchgdError(
                f"bad batching '{spec}': the batch size B in minibatch:B must be >= 1 (a whole "
                f"number), got '{size}'"
            )
        return Batching("minibatch", int(size), shuffle is None or bool(shuffle), seed)
    raise TorchgdError(f"unknown batching '{spec}': use batch, sgd or minibatch:B")
