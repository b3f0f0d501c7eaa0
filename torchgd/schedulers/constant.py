"""ConstantLR: the lr times ``factor`` for the first ``total_iters`` scheduler steps, then
the base lr.

    textbook     lr_t = base * factor  for t < total_iters, else base
    torch-exact  lr_0 = base * factor; lr_t = lr_(t-1) * (1 / factor) at t = total_iters
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TorchgdError

NAME = "constant"
TORCH_CLASS = "ConstantLR"
WHY = (
    "torch undoes the factor by multiplying by 1/factor, which need not give the base "
    "lr back exactly"
)

# options the tests try against torch (each scheduler file brings its own)
TRY = [dict(), dict(factor=0.3, total_iters=4), dict(factor=0.7, total_iters=1)]


@dataclass(frozen=True)
class Options:
    factor: float = 1.0 / 3
    total_iters: int = 5

    def __post_init__(self):
        if not 0 <= self.factor <= 1:
            raise TorchgdError("Constant multiplicative factor expected to be between 0 and 1.")


def textbook(t: int, base: float, o: Options) -> float:
    return base * o.factor if t < o.total_iters else base


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    if t == 0:  # torch's first step scales the lr it finds (in a chain: the last one's)
        return prev * o.factor
    return prev * (1.0 / o.factor) if t == o.total_iters else prev
