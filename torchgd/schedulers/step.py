"""StepLR: the lr times gamma every ``step_size`` scheduler steps.

textbook     lr_t = base * gamma^floor(t / step_size)
torch-exact  lr_t = lr_(t-1) * gamma  where t is a multiple of step_size, else lr_(t-1)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TorchgdError

NAME = "step"
TORCH_CLASS = "StepLR"
WHY = (
    "torch multiplies the previous lr by gamma at each decay, the closed form raises "
    "gamma to a power"
)

# options the tests try against torch (each scheduler file brings its own)
TRY = [dict(step_size=3, gamma=0.5), dict(step_size=1, gamma=0.9), dict(step_size=7)]


@dataclass(frozen=True)
class Options:
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        if not isinstance(self.step_size, int) or self.step_size < 1:
            raise TorchgdError(
                f"StepLR: step_size must be a whole number >= 1, got {self.step_size}"
            )


def textbook(t: int, base: float, o: Options) -> float:
    return base * o.gamma ** (t // o.step_size)


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    if t == 0 or t % o.step_size != 0:
        return prev
    return prev * o.gamma
