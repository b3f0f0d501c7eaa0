"""OneCycleLR (Smith & Topin 2018, "super-convergence"): one warm-up from
``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of ``total_steps``, then an
anneal down to ``initial / final_div_factor`` (``three_phase``: back to the initial lr first,
then down); with ``cycle_momentum`` the momentum goes the other way.

    phase from a to b over steps s0..s1, pct = (t - s0) / (s1 - s0)
    textbook     cos: lr = b + (a - b) * (1 + cos(pi pct)) / 2      linear: lr = a + (b - a) pct
    torch-exact  cos: lr = b + (a - b) / 2.0 * (cos(pi pct) + 1)    linear: (b - a) pct + a

``--lr`` plays no part: the peak is ``max_lr``. The run must not step it more than
``total_steps`` times (torch raises): with ``--scheduler-every step`` that is epochs times
the steps of an epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import TorchgdError

NAME = "onecycle"
TORCH_CLASS = "OneCycleLR"
PEAK = "max_lr"
WHY = (
    "torch halves the distance before it multiplies by (cos(pi pct) + 1), where the closed "
    "form halves the product"
)

# options the tests try against torch (each scheduler file brings its own)
TRY = [
    dict(max_lr=0.1, total_steps=80),
    dict(max_lr=0.05, total_steps=70, anneal_strategy="linear", three_phase=True, pct_start=0.25),
    dict(max_lr=0.2, epochs=10, steps_per_epoch=8, cycle_momentum=False, div_factor=10.0),
]


@dataclass(frozen=True)
class Options:
    max_lr: float
    total_steps: int | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    pct_start: float = 0.3
    anneal_strategy: str = "cos"
    cycle_momentum: bool = True
    base_momentum: float = 0.85
    max_momentum: float = 0.95
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False

    def __post_init__(self):
        if self.total_steps is not None:
            if not isinstance(self.total_steps, int) or self.total_steps <= 0:
                raise TorchgdError(
                    f"Expected positive integer total_steps, but got {self.total_steps}"
                )
        elif self.epochs is None or self.steps_per_epoch is None:
            raise TorchgdError(
                "You must define either total_steps OR (epochs AND steps_per_epoch) (torch's "
                "words: give total_steps=, the scheduler steps the run takes: its epochs, or its "
                "steps with --scheduler-every step)"
            )
        for name in ("epochs", "steps_per_epoch"):
            value = getattr(self, name)
            if self.total_steps is None and (not isinstance(value, int) or value <= 0):
                raise TorchgdError(f"Expected positive integer {name}, but got {value}")
        if not isinstance(self.pct_start, float) or not 0 <= self.pct_start <= 1:
            raise TorchgdError(
                f"Expected float between 0 and 1 pct_start, but got {self.pct_start}"
            )
        for name in ("max_lr", "div_factor", "final_div_factor"):
            if not getattr(self, name) > 0:
                raise TorchgdError(f"OneCycleLR: {name} must be > 0, got {getattr(self, name)}")
        if self.anneal_strategy not in ("cos", "linear"):
            raise TorchgdError(
                "anneal_strategy must be one of 'cos' or 'linear', instead got "
                f"{self.anneal_strategy}"
            )

    @property
    def steps(self) -> int:
        if self.total_steps is not None:
            return self.total_steps
        return self.epochs * self.steps_per_epoch


def fits(o: Options, units: int) -> None:
    """torch raises once stepped past ``total_steps``: the run's scheduler steps must fit."""
    if units > o.steps:
        raise TorchgdError(
            f"OneCycleLR is sized for {o.steps} steps but the run steps it {units} times: give "
            f"total_steps={units} (or fewer epochs)"
        )


def _phases(o: Options) -> list:
    """torch's phases: (end step, start, end) for the lr and for the momentum."""
    initial = o.max_lr / o.div_factor
    lrs = {"initial": initial, "max": o.max_lr, "min": initial / o.final_div_factor}
    m = {"initial": o.max_momentum, "max": o.base_momentum, "min": o.max_momentum}
    n, p = o.steps, o.pct_start
    if o.three_phase:
        ends = [float(p * n) - 1, float(2 * p * n) - 2, n - 1]
        legs = [("initial", "max"), ("max", "initial"), ("initial", "min")]
    else:
        ends, legs = [float(p * n) - 1, n - 1], [("initial", "max"), ("max", "min")]
    return [(e, lrs[a], lrs[b], m[a], m[b]) for e, (a, b) in zip(ends, legs)]


def _where(t: int, o: Options) -> tuple:
    """The phase step ``t`` is in and how far along (torch's ``pct``)."""
    start = 0.0
    phases = _phases(o)
    for i, phase in enumerate(phases):
        if t <= phase[0] or i == len(phases) - 1:
            return phase, (t - start) / (phase[0] - start)
        start = phase[0]
    raise AssertionError("unreachable")


def _torch_anneal(a: float, b: float, pct: float, o: Options) -> float:
    if o.anneal_strategy == "cos":
        return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (b - a) * pct + a


def textbook(t: int, base: float, o: Options) -> float:
    (_, a, b, _, _), pct = _where(t, o)
    if o.anneal_strategy == "cos":
        return b + (a - b) * (1 + math.cos(math.pi * pct)) / 2
    return a + (b - a) * pct


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    (_, a, b, _, _), pct = _where(t, o)
    return _torch_anneal(a, b, pct, o)


def momentum(t: int, o: Options) -> float:
    """torch's momentum, annealed the other way (computed as torch computes it)."""
    (_, _, _, a, b), pct = _where(t, o)
    return _torch_anneal(a, b, pct, o)
