"""CosineAnnealingWarmRestarts (SGDR, Loshchilov & Hutter 2017): cosine from the base lr down
to ``eta_min`` over ``T_0`` steps, then back to the base lr (a warm restart), each period
``T_mult`` times the last.

    T_cur = steps since the last restart, T_i = the current period (T_0, T_0 T_mult, ...)
    textbook     lr_t = eta_min + 0.5 * (base - eta_min) * (1 + cos(pi * T_cur / T_i))
    torch-exact  lr_t = eta_min + (base - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2

torch computes this closed form too (not a recursion); the two spellings halve at another
place, which is exact, so they agree to the bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import TorchgdError

NAME = "warmrestarts"
TORCH_CLASS = "CosineAnnealingWarmRestarts"
WHY = "torch computes SGDR's closed form, as the textbook does"

# options the tests try against torch (each scheduler file brings its own)
TRY = [dict(T_0=10), dict(T_0=3, T_mult=2, eta_min=0.001), dict(T_0=1)]


@dataclass(frozen=True)
class Options:
    T_0: int  # noqa: N815  (torch's names)
    T_mult: int = 1  # noqa: N815
    eta_min: float = 0.0

    def __post_init__(self):
        if not isinstance(self.T_0, int) or self.T_0 <= 0:
            raise TorchgdError(f"Expected positive integer T_0, but got {self.T_0}")
        if not isinstance(self.T_mult, int) or self.T_mult < 1:
            raise TorchgdError(f"Expected integer T_mult >= 1, but got {self.T_mult}")


def period(t: int, o: Options) -> tuple:
    """``(T_cur, T_i)`` after ``t`` steps, counted as torch's ``step`` counts them."""
    t_cur, t_i = t, o.T_0
    while t_cur >= t_i:
        t_cur, t_i = t_cur - t_i, t_i * o.T_mult
    return t_cur, t_i


def textbook(t: int, base: float, o: Options) -> float:
    t_cur, t_i = period(t, o)
    return o.eta_min + 0.5 * (base - o.eta_min) * (1 + math.cos(math.pi * t_cur / t_i))


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    t_cur, t_i = period(t, o)
    return o.eta_min + (base - o.eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2
