"""The race of every update rule on 2-D functions, computed (``torchgd.plots.race`` draws it).

Fairness, as the race states it: every rule gets the same learning rates (``RACE_LRS``,
log-spaced), each run as one lane of a sweep per rule and problem, and is judged at the one
whose run first reaches the minimum and stays there (within ``RACE_DIGITS`` digits of the way
down: ``floor``), else ends lowest, among its runs that stay finite and do not end above their
start (ties: the smaller lr). The run drawn is the single run at that lr, of the manual path in
the ``torch-exact`` spelling (``torch.optim``'s operations; the lanes are the textbook's, the
only spelling a sweep has: the same formula, rounded at other places). The divergence guard is
off: a run counts as diverged when it stops being finite, not when its loss rises for a while.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import options, problems
from .errors import TorchgdError

RACE_LRS = "1e-3:10:13"  # the shared grid: 13 lrs, three a decade, from 0.001 to 10
RACE_STEPS = 300
RACE_DIGITS = 12  # a run within 1e-12 of the way down from the start has reached the minimum


@dataclass
class Lane:
    """One rule's part of a race on one problem: the index of its lr in the grid (None: no
    lane raced) and the single run at that lr (``Result.to_json()``), or None."""

    rule: str
    best: int | None
    run: dict | None


@dataclass
class Heat:
    """The race on one problem: its start, the loss that counts as the minimum, the lanes."""

    problem: object
    start: dict
    floor: float
    lanes: list = field(default_factory=list)


@dataclass
class Race:
    """The whole race: the grid, the steps, the rules raced and those left out, the heats."""

    rates: list
    steps: int
    racers: list
    left: list
    scheduler: str | None
    heats: list


def run(problems_=("elliptic", "rosenbrock"), *, lrs=None, steps=RACE_STEPS, init=None,
        optimizers=None, scheduler=None) -> Race:  # fmt: skip
    """Every rule of ``optimizers`` (default: all a sweep can run as lanes) on every problem,
    each input checked before anything runs; ``scheduler``: an lr scheduler each lane runs
    from its own lr (one step an epoch)."""
    from . import rules
    from .planning import plan as make_plan
    from .sweep import sweep as run_sweep
    from .train import execute

    names = [problems_] if isinstance(problems_, str) else list(problems_)
    if not names or not all(names):
        raise TorchgdError("plot race needs at least one problem, and no empty name")
    if len(set(names)) != len(names):
        raise TorchgdError(f"plot race takes each problem once, got {', '.join(names)}")
    found = [race_problem(name) for name in names]
    rates, racing = grid(lrs), racers(optimizers)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TorchgdError(f"plot race takes a whole number of steps >= 1, got {steps}")
    starts = [
        make_plan(name, None, epochs=1, init=init, paths=("manual",)).config["init"]
        for name in names
    ]
    heats = []
    for name, p, start in zip(names, found, starts):
        heat = Heat(p, start, floor(p, start))
        for rule in racing:
            kw = dict(optimizer=rule, epochs=steps, init=init, guard=False, scheduler=scheduler)
            try:
                best = best_lane(run_sweep(name, None, lrs=rates, **kw), heat.floor)
            except TorchgdError as exc:  # the sweep's refusal, in the race's words
                text = str(exc).replace("sweep: ", "", 1)
                raise TorchgdError(
                    f"plot race runs each lr of the grid as a sweep does: {text}"
                ) from None
            one = None
            if best is not None:
                drawn = make_plan(name, None, lr=rates[best], paths=("manual",),
                                  spelling="torch-exact", **kw)  # fmt: skip
                one = execute(drawn).to_json()
            heat.lanes.append(Lane(rule, best, one))
        heats.append(heat)
    left = [n for n, m in rules.ALL.items() if n not in racing and not laned(m)]
    return Race(rates, steps, racing, left, scheduled(scheduler), heats)


def scheduled(scheduler) -> str:
    from .schedulers import parse, spec_of

    return None if scheduler is None else spec_of(*parse(scheduler))


def laned(module) -> bool:
    """Whether a sweep can run the rule as lanes (Adafactor's and L-BFGS's steps read the whole
    parameter)."""
    return getattr(module, "LANES", True)


def racers(optimizers) -> list:
    """The rules to race (default: every one a sweep can run as lanes), each checked before
    anything runs."""
    from . import rules

    names = [n for n, m in rules.ALL.items() if laned(m)] if optimizers is None else optimizers
    names = list(names)
    if not names:
        raise TorchgdError("plot race needs at least one optimizer")
    for rule in names:  # an unknown rule is refused before anything runs
        module = rules.get(rule)
        if not laned(module):
            raise TorchgdError(
                f"plot race tries each lr as a sweep's lane; {module.NAME} reads the whole "
                "parameter at every step and has no lanes"
            )
    return names


def race_problem(name: str):
    """The problem called ``name``, if a race can be drawn on it (a 2-D function); else a
    TorchgdError that says which can."""
    p = problems.get(name)
    if not p.needs_data and getattr(p, "minimum", None) is None and len(p.param_names) == 2:
        raise TorchgdError(
            f"plot race needs a function with a minimum to race to; '{name}' has none (a "
            "saddle is unbounded below: the lowest final loss would only say who fell furthest)"
        )
    if p.needs_data or len(p.param_names) != 2 or not hasattr(p, "f"):
        two_d = [
            n for n, q in problems.PROBLEMS.items() if not q.needs_data and len(q.param_names) == 2
        ]
        raise TorchgdError(
            f"plot race needs 2-D function problems, not '{name}' (e.g. {', '.join(two_d)})"
        )
    return p


def grid(lrs) -> list[float]:
    """The shared learning rates: ``RACE_LRS`` by default; at least two, positive, finite,
    increasing."""
    if lrs is None:
        return options.parse_lrs(RACE_LRS, log=True)
    lrs = [float(v) for v in lrs]
    if (
        len(lrs) < 2
        or not all(math.isfinite(v) and v > 0 for v in lrs)
        or any(b <= a for a, b in zip(lrs, lrs[1:]))
    ):
        raise TorchgdError(
            f"plot race needs a grid of at least two increasing positive learning rates, got {lrs}"
        )
    return lrs


def best_lane(report: dict, floor: float = -math.inf) -> int | None:
    """Among the lanes of a sweep whose loss and parameters stayed finite and that did not end
    above where they started (1e70 is finite, but no race was run): the first to reach
    ``floor`` (the minimum, see ``_race_floor``), else the one whose final loss is lowest
    (ties: the smaller lr); None when there is none (drawn as diverged)."""
    finite = [
        i
        for i, f in enumerate(report["final_loss"])
        if f is not None
        and math.isfinite(f)
        and all(_finite_entry(v[i]) for v in report["params"].values())
    ]
    losses = report.get("history", {}).get("loss")
    if losses:
        finite = [i for i in finite if not losses[i] or losses[i][-1] <= losses[i][0]]
        first = {i: settled_at(losses[i], floor) for i in finite}
        there = [i for i in finite if first[i] is not None]
        if there:
            return min(there, key=lambda i: (first[i], i))
    return min(finite, key=lambda i: (report["final_loss"][i], i), default=None)


def _finite_entry(v) -> bool:
    values = v if isinstance(v, list) else [v]
    return all(u is not None and math.isfinite(u) for u in values)


def floor(p, start: dict) -> float:
    """The loss below which a run has reached the minimum: within ``RACE_DIGITS`` digits of
    the way down from the start (a race is not won at 6e-289 against 1e-302: both are the
    minimum in float64's terms)."""
    f = lambda point: p.f(*(torch.tensor(v, dtype=torch.float64) for v in point)).item()  # noqa: E731
    low = f(p.minimum)
    return low + 10.0**-RACE_DIGITS * (f(start.values()) - low)


def settled_at(losses: list, floor: float) -> int | None:
    """The index from which every loss is at most ``floor`` (a run that reaches the minimum
    and leaves it again has not reached it); None if the last one is above it."""
    at = None
    for i in range(len(losses) - 1, -1, -1):
        v = losses[i]
        if v is None or not v <= floor:
            break
        at = i
    return at
