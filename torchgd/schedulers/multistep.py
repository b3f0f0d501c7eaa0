"""MultiStepLR: the lr times gamma at each milestone.

textbook     lr_t = base * gamma^(number of milestones <= t)
torch-exact  lr_t = lr_(t-1) * gamma^(times t is a milestone), else lr_(t-1)
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from ..errors import TorchgdError

NAME = "multistep"
TORCH_CLASS = "MultiStepLR"
WHY = (
    "torch multiplies the previous lr by gamma at each milestone, the closed form "
    "raises gamma to a power"
)

# options the tests try against torch (each scheduler file brings its own)
TRY = [dict(milestones=(3, 7), gamma=0.5), dict(milestones=(2, 2, 9), gamma=0.3)]


@dataclass(frozen=True)
class Options:
    milestones: tuple
    gamma: float = 0.1

    def __post_init__(self):
        if isinstance(self.milestones, list):  # from config.json
            object.__setattr__(self, "milestones", tuple(self.milestones))
        if not self.milestones or not all(isinstance(m, int) and m > 0 for m in self.milestones):
            raise TorchgdError(
                "MultiStepLR: milestones must be whole numbers > 0 (10/20/30), got "
                f"{self.milestones}"
            )


def textbook(t: int, base: float, o: Options) -> float:
    return base * o.gamma ** bisect_right(sorted(o.milestones), t)


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    n = list(o.milestones).count(t)
    return prev if n == 0 else prev * o.gamma**n
