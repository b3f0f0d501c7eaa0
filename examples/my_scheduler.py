"""A learning-rate scheduler of your own: inverse-time decay, run against torch's LambdaLR.

    torchgd train --scheduler examples/my_scheduler.py:decay=0.1 --epochs 30

    lr_t = lr / (1 + decay * t)        after t scheduler steps (one an epoch by default)

A scheduler file holds what every file in torchgd/schedulers/ holds: ``NAME``, ``TORCH_CLASS``
(the torch.optim.lr_scheduler class the optim path runs), ``Options`` (its keyword arguments,
checked), ``textbook`` (the formula as written above), ``torch_exact`` (the same lr computed
with torch's own operations) and ``WHY`` (where the two round differently). torch has no
inverse-time class, so the optim path runs ``LambdaLR`` with the factor ``1 / (1 + decay * t)``
(``torch_kwargs``); LambdaLR multiplies the base lr by that factor, which rounds twice where the
textbook's one division rounds once.
"""

from dataclasses import dataclass

NAME = "inverse-time"
TORCH_CLASS = "LambdaLR"
WHY = "LambdaLR multiplies lr by 1 / (1 + decay * t), the formula divides lr by (1 + decay * t)"
TRY = [dict(decay=0.1), dict(decay=0.5)]  # options the tests try against torch


@dataclass(frozen=True)
class Options:  # its fields are the scheduler's options: --scheduler FILE.py:decay=0.1
    decay: float = 0.1

    def __post_init__(self):
        if not self.decay >= 0:
            raise ValueError(f"decay must be >= 0, got {self.decay}")


def textbook(t: int, base: float, o: Options) -> float:
    return base / (1 + o.decay * t)


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    return base * _factor(t, o)  # LambdaLR: base_lr * lr_lambda(last_epoch)


def torch_kwargs(o: Options) -> dict:
    return {"lr_lambda": lambda t: _factor(t, o)}


def _factor(t: int, o: Options) -> float:
    return 1 / (1 + o.decay * t)
