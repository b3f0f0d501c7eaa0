"""CosineAnnealingLR: from the base lr down to eta_min along half a cosine over T_max steps.

textbook     lr_t = eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2
torch-exact  lr_t = (1 + cos(pi t / T_max)) / (1 + cos(pi (t-1) / T_max))
                    * (lr_(t-1) - eta_min) + eta_min        (torch's chainable form; past
                    T_max it climbs back, as torch does)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import TorchgdError

NAME = "cosine"
TORCH_CLASS = "CosineAnnealingLR"
WHY = (
    "torch updates the lr by the ratio (1 + cos(pi t/T)) / (1 + cos(pi (t-1)/T)) of the "
    "previous one, rounding at every step, where the closed form computes the cosine at t once"
)

# options the tests try against torch (each scheduler file brings its own)
TRY = [dict(T_max=10), dict(T_max=7, eta_min=0.001), dict(T_max=1, eta_min=0.003)]


@dataclass(frozen=True)
class Options:
    T_max: int  # noqa: N815  (torch's name)
    eta_min: float = 0.0

    def __post_init__(self):
        if not isinstance(self.T_max, int) or self.T_max < 1:
            raise TorchgdError(
                f"CosineAnnealingLR: T_max must be a whole number >= 1, got {self.T_max}"
            )


def textbook(t: int, base: float, o: Options) -> float:
    return o.eta_min + (base - o.eta_min) * (1 + math.cos(math.pi * t / o.T_max)) / 2


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    if t == 0:
        return prev
    if (t - 1 - o.T_max) % (2 * o.T_max) == 0:
        return prev + (base - o.eta_min) * (1 - math.cos(math.pi / o.T_max)) / 2
    return (1 + math.cos(math.pi * t / o.T_max)) / (1 + math.cos(math.pi * (t - 1) / o.T_max)) * (
        prev - o.eta_min
    ) + o.eta_min
