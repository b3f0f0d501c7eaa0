"""Datasets: the lecture's four points, the course's three, and (by spec) others.

A dataset holds float64 tensors on the CPU; ``fit`` moves them to the run's device and dtype once.
``x`` is 1-D for the lecture's one-feature model ``y_hat = w * x``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .errors import TorchgdError


@dataclass(frozen=True)
class Dataset:
    name: str
    x: torch.Tensor
    y: torch.Tensor
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device, dtype) -> Dataset:
        return Dataset(self.name, self.x.to(device, dtype), self.y.to(device, dtype), self.meta)


def _points(name: str, xs: list[float], ys: list[float]) -> Dataset:
    t = torch.tensor
    return Dataset(name, t(xs, dtype=torch.float64), t(ys, dtype=torch.float64))


def lecture() -> Dataset:
    """The lecture's data: x = [1, 2, 3, 4], y = [2, 4, 6, 8] (so the answer is w = 2)."""
    return _points("lecture", [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0])


def course() -> Dataset:
    """The course's original three points: x = [1, 2, 3], y = [2, 4, 6]."""
    return _points("course", [1.0, 2.0, 3.0], [2.0, 4.0, 6.0])


BUILTIN = {"lecture": lecture, "course": course}


def get(spec: str) -> Dataset:
    """A dataset by name: ``lecture`` or ``course``."""
    if spec in BUILTIN:
        return BUILTIN[spec]()
    raise TorchgdError(f"unknown data '{spec}': use one of {', '.join(BUILTIN)}")


def from_values(x, y, name: str = "custom") -> Dataset:
    """A dataset from two equally long sequences of numbers (x may be rows of features)."""
    xt, yt = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    if xt.shape[0] != yt.shape[0] or yt.dim() != 1 or xt.shape[0] == 0:
        raise TorchgdError(
            f"x and y must be non-empty and equally long, got {len(xt)} and {len(yt)}"
        )
    if not (torch.isfinite(xt).all() and torch.isfinite(yt).all()):
        raise TorchgdError("x and y must be finite numbers")
    return Dataset(name, xt, yt)
