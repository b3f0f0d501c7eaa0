"""LinearLR: the lr's factor goes linearly from ``start_factor`` to ``end_factor`` over
``total_iters`` scheduler steps (a warm-up, or a linear decay).

    textbook     lr_t = base * (start + (end - start) * min(t, total_iters) / total_iters)
    torch-exact  lr_t = lr_(t-1) * (1 + (end - start)
                                         / (total_iters * start + (t-1) * (end - start)))
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TorchgdError

NAME = "linear"
TORCH_CLASS = "LinearLR"
WHY = (
    "torch multiplies the previous lr by a ratio of factors every step, where the "
    "closed form interpolates once"
)

# options the tests try against torch (each scheduler file brings its own)
TRY = [
    dict(),
    dict(start_factor=0.2, end_factor=0.9, total_iters=6),
    dict(start_factor=1.0, end_factor=0.1, total_iters=9),
]


@dataclass(frozen=True)
class Options:
    start_factor: float = 1.0 / 3
    end_factor: float = 1.0
    total_iters: int = 5

    def __post_init__(self):
        if not isinstance(self.total_iters, int) or self.total_iters < 1:
            raise TorchgdError(
                f"LinearLR: total_iters must be a whole number >= 1, got {self.total_iters}"
            )
        if not 0 < self.start_factor <= 1:
            raise TorchgdError(
                "Starting multiplicative factor expected to be greater than 0 and less or "
                "equal to 1."
            )
        if not 0 <= self.end_factor <= 1:
            raise TorchgdError("Ending multiplicative factor expected to be between 0 and 1.")


def textbook(t: int, base: float, o: Options) -> float:
    k = min(t, o.total_iters)
    return base * (o.start_factor + (o.end_factor - o.start_factor) * k / o.total_iters)


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    if t == 0:  # torch's first step scales the lr it finds (in a chain: the last one's)
        return prev * o.start_factor
    if t > o.total_iters:
        return prev
    d = o.end_factor - o.start_factor
    return prev * (1.0 + d / (o.total_iters * o.start_factor + (t - 1) * d))
