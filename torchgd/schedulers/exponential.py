"""ExponentialLR: the lr times gamma every scheduler step.

textbook     lr_t = base * gamma^t
torch-exact  lr_t = lr_(t-1) * gamma           (t products, each rounded)
"""

from __future__ import annotations

from dataclasses import dataclass

NAME = "exponential"
TORCH_CLASS = "ExponentialLR"
WHY = (
    "torch multiplies the previous lr by gamma every step, rounding t times, where "
    "the closed form computes gamma^t once"
)

# options the tests try against torch (each scheduler file brings its own)
TRY = [dict(gamma=0.9), dict(gamma=0.97), dict(gamma=1.01)]


@dataclass(frozen=True)
class Options:
    gamma: float


def textbook(t: int, base: float, o: Options) -> float:
    return base * o.gamma**t


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    return prev if t == 0 else prev * o.gamma
