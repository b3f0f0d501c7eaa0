"""The divergence guard: stop a run that diverges, never one that converges noisily.

It judges the **cost over all data** at the end of every epoch (for ``batch`` the cost before
the epoch's update, which the run computes anyway; for ``sgd`` and ``minibatch:B`` one more
pass over the data per epoch), never one batch's loss, whose noise says nothing of divergence.
A lane (a path of ``train``, a learning rate of ``sweep``) is stopped when

* the cost or a parameter is no longer finite, or
* the cost grew ``patience`` epochs in a row **and** rose above its lowest value so far by
  more than a margin times that lowest value (``cost - lowest > margin * |lowest|``; the lowest
  is floored at ``FLOOR`` times the starting cost, so a cost that converged to rounding noise
  around 0 does not count as growth). The margin is ``MARGIN`` (100) for stochastic runs
  (``sgd``, ``minibatch:B``, ``--noise``), whose cost is noisy, and ``DETERMINISTIC_MARGIN``
  (1: the cost doubled) for the others, whose cost does not rise in a converging run of a
  convex problem (batch GD below the critical lr lowers the cost every epoch).

Below the critical lr a linear least-squares run converges (to a noise floor for stochastic
schedules): its cost settles, and a settled cost does not climb a hundredfold, however noisy.
Above it the error grows geometrically, so the margin is crossed within
``log(MARGIN) / log(rate^2)`` epochs of the unstable direction taking over. Tested both ways, on
the lecture's data and on noisy data with several features, against the theory.
"""

from __future__ import annotations

import math

import torch

MARGIN = 100.0
DETERMINISTIC_MARGIN = 1.0
FLOOR = 1e-12


class Guard:
    """Per lane (K of them): the last cost, the growth streak, the lowest cost, the start."""

    def __init__(self, patience: int, lanes: int, stochastic: bool = True):
        self.patience, self.lanes = patience, lanes
        self.margin = MARGIN if stochastic else DETERMINISTIC_MARGIN
        f64 = torch.float64
        self.prev = torch.full((lanes,), math.inf, dtype=f64)
        self.streak = torch.zeros(lanes, dtype=torch.int64)
        self.lowest = torch.full((lanes,), math.inf, dtype=f64)
        self.start = torch.full((lanes,), math.nan, dtype=f64)
        self.last_finite = torch.full((lanes,), math.nan, dtype=f64)

    def begin(self, cost) -> None:
        """The cost over all data before the first step (stochastic schedules)."""
        self.update(cost, torch.ones(self.lanes, dtype=torch.bool))
        self.prev.fill_(math.inf)  # the first epoch's cost is compared with nothing yet

    def update(self, cost, finite) -> tuple[torch.Tensor, torch.Tensor]:
        """One epoch's cost per lane and whether its parameters are finite; returns the lanes
        to stop for a non-finite value and those to stop for growth."""
        cost = torch.as_tensor(cost, dtype=torch.float64).reshape(self.lanes).cpu()
        finite = torch.as_tensor(finite).reshape(self.lanes).cpu() & torch.isfinite(cost)
        self.start = torch.where(torch.isnan(self.start) & finite, cost.abs(), self.start)
        grew = finite & (cost > self.prev)
        self.streak = torch.where(grew, self.streak + 1, torch.zeros_like(self.streak))
        floor = torch.maximum(self.lowest.abs(), FLOOR * self.start.nan_to_num(0.0))
        floor = floor.clamp_min(torch.finfo(torch.float64).tiny)
        risen = finite & (cost - self.lowest > self.margin * floor)
        growth = (self.streak >= self.patience) & risen
        self.last_finite = torch.where(finite, cost, self.last_finite)
        self.lowest = torch.where(finite, torch.minimum(self.lowest, cost), self.lowest)
        self.prev = torch.where(finite, cost, self.prev)
        return ~finite, growth

    def reason(self, lane: int, nonfinite: bool) -> str:
        if nonfinite:
            return "the cost or a parameter is no longer finite"
        return (
            f"the cost over all data grew {self.patience} epochs in a row, to "
            f"{self.prev[lane].item():.6g} from a lowest of {self.lowest[lane].item():.6g} "
            f"(a rise of more than {self.margin:g} times the lowest)"
        )

    def state_dict(self) -> dict:
        keys = ("prev", "streak", "lowest", "start", "last_finite")
        return {k: getattr(self, k).tolist() for k in keys}

    def load_state_dict(self, state: dict) -> None:
        if "lowest" not in state:  # a checkpoint from before this guard: start watching afresh
            return
        for k, v in state.items():
            dtype = torch.int64 if k == "streak" else torch.float64
            setattr(self, k, torch.tensor(v, dtype=dtype))


def advice(config: dict, dataset, schedule, info: dict) -> dict:
    """What the theory says of a run that diverged: adds ``critical_lr``, ``suggested_lr`` and
    ``theory`` (a phrase) to ``info``, or ``no_theory`` (why there is no number)."""
    from . import theory

    why = theory.why_not(config, dataset)
    if why is not None:
        info["no_theory"] = why
        return info
    t = theory.analyse(config, dataset, schedule)
    if t is None:
        info["no_theory"] = "the epoch has too many batches to analyse"
    elif t.critical_lr is None:
        info["no_theory"] = t.describe()
    else:
        info.update(critical_lr=t.critical_lr, suggested_lr=t.critical_lr / 2, theory=t.describe())
    return info


def message(info: dict, lr: float) -> str:
    """The one line a diverged run ends with (without the run directory)."""
    text = f"diverged at epoch {info['epoch']}: {info['reason']}"
    if info.get("last_finite_loss") is not None and "finite" in info["reason"]:
        text += f" (last finite cost {info['last_finite_loss']:.6g})"
    if "critical_lr" in info:
        c = info["critical_lr"]
        text += f"; theory: {info['theory']} (lr = {lr})"
        if lr > c:
            text += f"; try --lr {info['suggested_lr']:.3g}"
        else:
            text += (
                "; this lr is below that limit, so the growth is not the instability the "
                "theory describes: please report it"
            )
    else:
        if "no_theory" in info:
            text += f"; no critical lr from theory here ({info['no_theory']})"
        text += f"; lr = {lr} may be too large: try a smaller --lr"
    return text
