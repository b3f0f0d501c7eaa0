"""CyclicLR (Smith 2017): the lr goes up from ``base_lr`` to ``max_lr`` in ``step_size_up``
steps and down in ``step_size_down``, again and again; with ``cycle_momentum`` the momentum
goes the other way, between ``max_momentum`` and ``base_momentum``.

    p = t mod (up + down), cycle c = 1 + t div (up + down)
    frac = p / up while rising, (up + down - p) / down while falling
    scale = 1 (triangular), 1 / 2^(c-1) (triangular2), gamma^t (exp_range)
    textbook     lr_t = base_lr + (max_lr - base_lr) * frac * scale
                 momentum_t = max_momentum - (max_momentum - base_momentum) * frac * scale
    torch-exact  torch's own: x = 1 + t/(up + down) - c, frac = x / ratio or (x - 1)/(ratio - 1)
                 with ratio = up / (up + down), in floats

``--lr`` plays no part: torch sets the lr to ``base_lr``. ``scale_fn=FILE.py:NAME`` is a scale
of one's own, called with the cycle c (``scale_mode=cycle``) or the step t (``iterations``) in
place of ``mode``'s, as torch calls it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import TorchgdError
from . import _user

NAME = "cyclic"
TORCH_CLASS = "CyclicLR"
PEAK = "max_lr"
WHY = (
    "torch places the step in its cycle with floats, x = 1 + t/(up + down) - cycle, and scales "
    "by x / (up / (up + down)), where the closed form counts whole steps, (t mod (up + down)) / up"
)
MODES = ("triangular", "triangular2", "exp_range")

# options the tests try against torch (each scheduler file brings its own)
TRY = [
    dict(base_lr=0.01, max_lr=0.1, step_size_up=4),
    dict(base_lr=0.001, max_lr=0.05, step_size_up=3, step_size_down=7, mode="triangular2"),
    dict(
        base_lr=0.01, max_lr=0.2, step_size_up=5, mode="exp_range", gamma=0.97, cycle_momentum=False
    ),  # fmt: skip
    dict(base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn="torchgd.schedulers._examples:decay"),
    dict(
        base_lr=0.01,
        max_lr=0.1,
        step_size_up=2,
        scale_fn="torchgd.schedulers._examples:warmup",
        scale_mode="iterations",
    ),  # fmt: skip
]


@dataclass(frozen=True)
class Options:
    base_lr: float
    max_lr: float
    step_size_up: int = 2000
    step_size_down: int | None = None
    mode: str = "triangular"
    gamma: float = 1.0
    cycle_momentum: bool = True
    base_momentum: float = 0.8
    max_momentum: float = 0.9
    scale_fn: str | None = None
    scale_mode: str = "cycle"

    def __post_init__(self):
        if self.scale_fn is not None:
            object.__setattr__(self, "scale_fn", _user.absolute(self.scale_fn, "scale_fn"))
            _user.function(self.scale_fn, "scale_fn")
            if self.scale_mode not in ("cycle", "iterations"):
                raise TorchgdError(
                    f"CyclicLR: scale_mode must be cycle or iterations, got {self.scale_mode}"
                )
        elif self.mode not in MODES:
            raise TorchgdError("mode is invalid and scale_fn is None")
        for name in ("step_size_up", "step_size_down"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise TorchgdError(f"CyclicLR: {name} must be a whole number >= 1, got {value}")

    @property
    def down(self) -> int:
        return self.step_size_up if self.step_size_down is None else self.step_size_down


def torch_kwargs(o: Options) -> dict:
    """torch takes the scale function itself."""
    kwargs = dataclasses.asdict(o)
    if o.scale_fn is not None:
        kwargs["scale_fn"] = _user.function(o.scale_fn, "scale_fn")
    return kwargs


def _scale(t: int, cycle: int, o: Options) -> float:
    if o.scale_fn is not None:  # torch's scale_mode: of the cycle or of the step
        at = "cycle" if o.scale_mode == "cycle" else "step"
        return _user.factor(o.scale_fn, cycle if at == "cycle" else t, "scale_fn", at)
    if o.mode == "triangular":
        return 1.0
    if o.mode == "triangular2":
        return 1 / (2.0 ** (cycle - 1))
    return o.gamma**t


def _book(t: int, o: Options) -> tuple:
    """(the rising or falling fraction, the scale), counted in whole steps."""
    total = o.step_size_up + o.down
    p, cycle = t % total, 1 + t // total
    frac = p / o.step_size_up if p <= o.step_size_up else (total - p) / o.down
    return frac, _scale(t, cycle, o)


def _torch(t: int, o: Options) -> tuple:
    """torch's ``get_lr``: (scale_factor, the scale), in its floats."""
    total_size = float(o.step_size_up) + float(o.down)
    step_ratio = float(o.step_size_up) / total_size
    cycle = math.floor(1 + t / total_size)
    x = 1.0 + t / total_size - cycle
    factor = x / step_ratio if x <= step_ratio else (x - 1) / (step_ratio - 1)
    return factor, _scale(t, cycle, o)


def textbook(t: int, base: float, o: Options) -> float:
    frac, scale = _book(t, o)
    return o.base_lr + (o.max_lr - o.base_lr) * frac * scale


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    factor, scale = _torch(t, o)
    return o.base_lr + (o.max_lr - o.base_lr) * factor * scale


def momentum(t: int, o: Options) -> float:
    """torch's momentum (the textbook's wave, mirrored), computed as torch computes it."""
    factor, scale = _torch(t, o)
    return o.max_momentum - (o.max_momentum - o.base_momentum) * factor * scale
