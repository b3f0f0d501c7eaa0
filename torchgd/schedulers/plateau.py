"""ReduceLROnPlateau: lower the lr by ``factor`` once the cost has not improved for
``patience`` epochs (after a reduction, wait ``cooldown`` epochs; never below ``min_lr``).

The cost it watches is the epoch's cost over all data, the one the divergence guard watches
(``batch``: the epoch's loss): the manual and autograd paths (and the float64 shadow) follow the
manual path's cost, the optim path steps torch's class with its own. Both spellings are torch's
rule (there is no closed form: the lr depends on the costs, not on the step alone)::

    better = cost < best * (1 - threshold)     (min, rel; abs: cost < best - threshold; max: >)
    if better: best = cost, bad = 0  else: bad += 1
    if cooling down: cooldown -= 1, bad = 0
    if bad > patience: lr = max(lr * factor, min_lr) if it falls by more than eps; cooldown set

Stepped once an epoch only (``--scheduler-every epoch``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import TorchgdError

NAME = "plateau"
TORCH_CLASS = "ReduceLROnPlateau"
WHY = (
    "the two follow the same rule, torchgd's on the manual path's cost, torch's class on the "
    "optim path's own, so their lrs part only where those two costs differed enough to change "
    "a decision (the costs differ as the paths' parameters do: see their reasons)"
)
EVERY = ("epoch",)  # it steps on the epoch's cost

# options the tests try against torch (each scheduler file brings its own)
TRY = [
    dict(patience=2),
    dict(factor=0.5, patience=1, cooldown=2, min_lr=0.004),
    dict(mode="max", threshold_mode="abs", threshold=0.01, patience=0, factor=0.3),
]


@dataclass(frozen=True)
class Options:
    mode: str = "min"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lr: float = 0.0
    eps: float = 1e-8

    def __post_init__(self):
        if self.factor >= 1.0:
            raise TorchgdError("Factor should be < 1.0.")
        if self.mode not in ("min", "max"):
            raise TorchgdError(f"mode {self.mode} is unknown!")
        if self.threshold_mode not in ("rel", "abs"):
            raise TorchgdError(f"threshold mode {self.threshold_mode} is unknown!")


class Schedule:
    """The lr of each epoch as the costs come (``observe``): ``lr_at(t)`` for the epochs seen,
    and for later ones the last lr (the most it can be: the rule only ever lowers it)."""

    cycles_momentum = False

    def __init__(self, module, options: Options, base: float, spelling: str):
        self.module, self.options, self.base = module, options, base
        self.exact = spelling == "torch-exact"
        self.lrs = [base]
        self.best = math.inf if options.mode == "min" else -math.inf
        self.bad = self.cooldown = 0

    def lr_at(self, t: int) -> float:
        return self.lrs[min(t, len(self.lrs) - 1)]

    def observe(self, cost) -> None:
        """The epoch's cost: torch's ``step(metrics)``, which sets the next epoch's lr."""
        o, current, lr = self.options, float(cost), self.lrs[-1]
        if self._better(current):
            self.best, self.bad = current, 0
        else:
            self.bad += 1
        if self.cooldown > 0:
            self.cooldown -= 1
            self.bad = 0
        if self.bad > o.patience:
            new = max(lr * o.factor, o.min_lr)
            lr = new if lr - new > o.eps else lr
            self.cooldown, self.bad = o.cooldown, 0
        self.lrs.append(lr)

    def _better(self, a: float) -> bool:
        o, best = self.options, self.best
        if o.mode == "min":
            return (
                a < best * (1.0 - o.threshold)
                if o.threshold_mode == "rel"
                else a < best - o.threshold
            )
        return (
            a > best * (o.threshold + 1.0) if o.threshold_mode == "rel" else a > best + o.threshold
        )

    def state_dict(self) -> dict:
        return {
            "lrs": list(self.lrs),
            "best": self.best,
            "bad": self.bad,
            "cooldown": self.cooldown,
        }

    def load_state_dict(self, state: dict) -> None:
        self.lrs, self.best = list(state["lrs"]), state["best"]
        self.bad, self.cooldown = state["bad"], state["cooldown"]

    def torch_scheduler(self, optimizer):
        import torch

        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, **dataclasses.asdict(self.options)
        )


def textbook(t: int, base: float, o: Options) -> float:
    raise TypeError("ReduceLROnPlateau has no closed form: its lr follows the costs (Schedule)")


torch_exact = textbook
