"""How a sweep's lanes on a linear model are judged: against the optimum they go to (the
least-squares solution, or with weight decay the ridge solution), by their objective after each
epoch: ``converged``, ``floor`` or ``far`` (a stochastic run on noisy data that settled near the
optimum or on a stable cycle further off), or ``slow`` (still moving)."""

from __future__ import annotations

import dataclasses
import math

import torch

from . import rules, theory

CONVERGED = 1e-8  # excess cost at most this fraction of where it started: converged


def flat(v):
    return v if isinstance(v, list) else [v]


@dataclasses.dataclass
class Optimum:
    """Where a linear model's lanes go: the least-squares solution, or with weight decay
    lambda the ridge point, the minimum of ``cost + lambda/2 |theta|^2`` (torch's
    ``weight_decay`` adds ``lambda theta`` to the gradient, every parameter, the bias too)."""

    theta: torch.Tensor | None  # None: not known (AdamW's decoupled decay)
    cost: float  # the cost alone at theta (the mean squared error)
    wd: float
    least_squares: float  # the cost's own minimum

    @property
    def name(self) -> str:
        return "ridge solution" if self.wd else "least-squares solution"

    def objective(self, cost: float, norm2: float) -> float:
        """What the lanes minimise: the cost plus the penalty."""
        return cost + self.wd / 2 * norm2

    @property
    def minimum(self) -> float:
        return self.objective(self.cost, float(self.theta @ self.theta)) if self.wd else self.cost

    def describe(self) -> dict:
        out = {"point": self.name, "cost": self.cost, "least_squares_cost": self.least_squares}
        if self.wd:
            out.update(objective=self.minimum, penalty=f"{self.wd / 2:g} * |theta|^2")
        return out


def optimum(p, ls) -> Optimum | None:
    """The lanes' optimum (``ls``: the data's least squares, None for other problems)."""
    if ls is None or not math.isfinite(ls.optimum_loss):  # (data whose squares overflow)
        return None
    wd = float(p.config.get("weight_decay") or 0.0)
    if wd and rules.of(p.hp).TORCH_CLASS == "AdamW":  # decoupled: another fixed point
        return Optimum(None, ls.optimum_loss, 0.0, ls.optimum_loss)
    if not wd:
        return Optimum(ls.solution, ls.optimum_loss, 0.0, ls.optimum_loss)
    ridge = ls.fixed_point(wd)
    cost = theory.cost(p.dataset.x, p.dataset.y, ls.bias, ridge)
    return Optimum(ridge, cost, wd, ls.optimum_loss)


def norms2(p, params_hist, opt) -> list[list[float]] | None:
    """|theta|^2 of every lane before the first epoch and after each: [K][epochs + 1] (None
    without weight decay)."""
    if opt is None or not opt.wd:
        return None
    start = float(sum(v * v for v in theta0(p)))
    names = [m for m in ("w", "b") if m in params_hist[0]]
    per = torch.stack(
        [sum((h[m].double().cpu() ** 2).sum(1) for m in names) for h in params_hist]
    )  # [E, K]
    return [[start, *per[:, i].tolist()] for i in range(per.shape[1])]


def theta0(p) -> list[float]:
    """The start as one vector: w, then b."""
    init = p.config["init"]
    return [*flat(init["w"]), *([init["b"]] if "b" in init else [])]


def status(costs: list, optimum: float, eps: float, floor: bool, in_order: bool) -> str:
    """A least-squares lane by its objective (the cost, plus the penalty with weight decay)
    after each epoch against the optimum's:

    * converged: the excess fell by ``CONVERGED`` of where it started (or below rounding);
    * for a stochastic run on noisy data, which settles rather than converges: settled when its
      epoch-end objective stopped changing (in data order the epoch map is affine and the run
      reaches its stable cycle: the last epochs agree to 1e-6; shuffled, the last quarter's
      mean is within 20% of the quarter's before), then ``floor`` when it settled near the
      optimum (excess at most the optimum's own value: the noise floor) and ``far`` when the
      cycle it settled on is further (near the critical lr the cycle grows without bound);
    * slow: still moving."""
    excess = [c - optimum for c in costs]
    if excess[-1] <= max(CONVERGED * excess[0], 8 * eps * abs(optimum)):
        return "converged"
    if floor and settled(costs, in_order):
        q = max(1, len(excess) // 4)
        late = sum(excess[-q:]) / q
        return "floor" if late <= max(abs(optimum), 8 * eps) else "far"
    return "slow"


def settled(costs: list, in_order: bool) -> bool:
    """Whether a stochastic run's epoch-end objective stopped changing (see ``_ls_status``)."""
    if in_order:
        last = costs[-8:]
        return len(costs) >= 3 and max(abs(c - last[-1]) for c in last) <= 1e-6 * abs(last[-1])
    if len(costs) < 8:
        return False
    q = len(costs) // 4
    late, before = sum(costs[-q:]) / q, sum(costs[-2 * q : -q]) / q
    return 0.8 * before <= late <= 1.25 * before
