"""PolynomialLR: the lr falls as a power of the steps left, to 0 after ``total_iters`` steps.

textbook     lr_t = base * (1 - min(t, total_iters) / total_iters) ** power
torch-exact  lr_t = lr_(t-1) * ((1 - t/total_iters) / (1 - (t-1)/total_iters)) ** power
             (torch's chainable form: a ratio of the factors, rounded every step)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TorchgdError

NAME = "polynomial"
TORCH_CLASS = "PolynomialLR"
WHY = (
    "torch multiplies the previous lr by the ratio of this step's factor to the last one's, "
    "raised to the power, rounding at every step, where the closed form raises (1 - t/T) once"
)

# options the tests try against torch (each scheduler file brings its own)
TRY = [dict(), dict(total_iters=12, power=0.9), dict(total_iters=7, power=2.0)]


@dataclass(frozen=True)
class Options:
    total_iters: int = 5
    power: float = 1.0

    def __post_init__(self):
        if not isinstance(self.total_iters, int) or self.total_iters < 1:
            raise TorchgdError(
                f"PolynomialLR: total_iters must be a whole number >= 1, got {self.total_iters}"
            )


def textbook(t: int, base: float, o: Options) -> float:
    return base * (1.0 - min(t, o.total_iters) / o.total_iters) ** o.power


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    if t == 0 or t > o.total_iters:
        return prev
    T = o.total_iters  # noqa: N806  (torch's name)
    return prev * ((1.0 - t / T) / (1.0 - (t - 1) / T)) ** o.power
