"""Options that can be checked without importing torch, so bad input is refused at once.

``train.plan`` checks them again (the library is validated too); the CLI checks them first.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .errors import TorchgdError

RULES = ("textbook", "torch-exact")
DTYPE_NAMES = ("float64", "float32")


@dataclass(frozen=True)
class SGD:
    """Hyperparameters, keyword-only and checked like ``torch.optim.SGD.__init__``."""

    lr: float = 0.01
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    maximize: bool = False

    def __post_init__(self):
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TorchgdError(
                    f"--{name.replace('_', '-')} must be a finite number, got {value}"
                )
        if self.lr <= 0:
            raise TorchgdError(f"--lr must be positive, got {self.lr}")
        if self.momentum < 0:
            raise TorchgdError(f"invalid momentum value {self.momentum}: must be >= 0")
        if self.weight_decay < 0:
            raise TorchgdError(f"invalid weight decay {self.weight_decay}: must be >= 0")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise TorchgdError("nesterov momentum requires a momentum > 0 and zero dampening")

    def asdict(self) -> dict:
        return asdict(self)

    def torch_kwargs(self) -> dict:
        return self.asdict()


def check_epochs(epochs) -> int:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise TorchgdError(f"--epochs must be a whole number >= 1, got {epochs}")
    return epochs


def check_dtype_name(name: str) -> str:
    if name not in DTYPE_NAMES:
        raise TorchgdError(f"unknown dtype '{name}': use one of {', '.join(DTYPE_NAMES)}")
    return name


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise TorchgdError(f"unknown rule '{rule}': use one of {', '.join(RULES)}")
    return rule


def check_guard(noise, patience) -> None:
    if not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise TorchgdError(f"--noise must be a finite number >= 0, got {noise}")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise TorchgdError(f"--patience must be a whole number >= 1, got {patience}")


def parse_lrs(spec: str, log: bool = False) -> list[float]:
    """``START:STOP:K`` to K learning rates, evenly spaced (or log-spaced with ``log``)."""
    parts = spec.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        start, stop, k = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise TorchgdError(
            f"--lr for sweep is START:STOP:K (e.g. 0.01:0.3:30), got '{spec}'"
        ) from None
    if not (math.isfinite(start) and math.isfinite(stop)) or not 0 < start < stop or k < 2:
        raise TorchgdError(f"--lr {spec}: need 0 < START < STOP and K >= 2")
    if log:
        a, b = math.log10(start), math.log10(stop)
        return [start] + [10 ** (a + (b - a) * i / (k - 1)) for i in range(1, k - 1)] + [stop]
    return [start + (stop - start) * i / (k - 1) for i in range(k - 1)] + [stop]
