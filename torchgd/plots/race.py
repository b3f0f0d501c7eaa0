"""Every update rule racing from the same start on 2-D functions."""

from __future__ import annotations

import math
import textwrap

import torch

from .. import options, problems
from ..errors import TorchgdError
from .common import (
    WIDE,
    Figure,
    _done,
    _drawable,
    _figure,
    _floats,
    _iterates,
    _spans_decades,
    _title,
    check_path,
    legend_below,
    num,
    point,
)
from .functions import _contour_lines

# one colour per rule: matplotlib's ten, then five more as far from them (13 rules in torch.optim)
COLORS = [f"C{i}" for i in range(10)] + ["black", "gold", "navy", "lime", "magenta"]
RACE_LRS = "1e-3:10:13"  # the shared grid: 13 lrs, three a decade, from 0.001 to 10


RACE_STEPS = 300


RACE_DIGITS = 12  # a run within 1e-12 of the way down from the start has reached the minimum


def race(
    problems=("elliptic", "rosenbrock"),
    *,
    lrs=None,
    steps: int = RACE_STEPS,
    init: dict | None = None,
    optimizers=None,
    scheduler=None,
    path=None,
) -> Figure:
    """Every update rule from the same start, one row per 2-D function problem: its iterates on
    the contour lines (left) and its loss per step (right), one colour per rule.

    Fairness: every rule gets the same learning rates ``lrs`` (default ``RACE_LRS``, log-spaced)
    and is drawn at the one whose run first reaches the minimum and stays there (within
    ``RACE_DIGITS`` digits of the way down: ``_race_floor``), else ends with the lowest loss,
    among its runs that stay finite (ties: the smaller lr); the legend names it, ``adam (lr
    0.1)``, and a rule none of whose runs stays finite is named as diverged. The grid runs as
    one ``torchgd.sweep`` per rule and problem (its lanes, bit-identical to single runs of the
    textbook spelling, the only one a sweep has); the runs drawn are single runs of the manual
    path in the ``torch-exact`` spelling (``torch.optim``'s operations) at the lr chosen: the
    same formula, rounded at other places. The divergence guard is off: a run counts as diverged
    when it stops being finite, not when its loss rises for a while (Rosenbrock's valley makes
    it do so). ``optimizers``: the rules to race (default all of ``torchgd.rules.ALL`` that a
    sweep can run in lanes: Adafactor and L-BFGS, whose steps read the whole parameter, are left
    out and said);
    ``init``: the start (default each problem's own); ``scheduler``: an lr scheduler (as for
    ``fit``; one step an epoch here) that each lane runs from its own lr; the figure is 12
    inches wide, 5 a problem."""
    from .. import rules
    from ..sweep import sweep as run_sweep
    from ..train import execute
    from ..train import plan as make_plan

    if path is not None:
        check_path(path)
    names = [problems] if isinstance(problems, str) else list(problems)
    if not names or not all(names):
        raise TorchgdError("plot race needs at least one problem, and no empty name")
    if len(set(names)) != len(names):
        raise TorchgdError(f"plot race takes each problem once, got {', '.join(names)}")
    found = [race_problem(name) for name in names]
    rates = _race_grid(lrs)
    optimizers = _racers(optimizers)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TorchgdError(f"plot race takes a whole number of steps >= 1, got {steps}")
    starts = [
        make_plan(name, None, epochs=1, init=init, paths=("manual",)).config["init"]
        for name in names
    ]
    fig = _figure((WIDE[0], WIDE[1] * len(names)))
    axes = fig.subplots(len(names), 2, squeeze=False)
    for (ax1, ax2), name, p, start in zip(axes, names, found, starts):
        entries = []
        for i, rule in enumerate(optimizers):
            kw = dict(optimizer=rule, epochs=steps, init=init, guard=False, scheduler=scheduler)
            grid = run_sweep(name, None, lrs=rates, **kw)
            best = _best_lane(grid, _race_floor(p, start))
            run = None
            if best is not None:
                one = make_plan(
                    name, None, lr=rates[best], paths=("manual",), rule="torch-exact", **kw
                )
                run = execute(one).to_json()
            entries.append((rule, COLORS[i % len(COLORS)], best, run))
        _race_contours(ax1, p, start, entries, rates)
        _race_losses(ax2, entries, rates, _race_floor(p, start))
        _title(ax1, f"{p.name}: {p.description}\nfrom {point(start)}, {steps} steps")
    grid = f"{len(rates)} lrs from {num(rates[0])} to {num(rates[-1])}"
    text = (
        f"update rules racing from the same start, each at the lr of the same grid ({grid}, "
        "log-spaced) that reaches the minimum first and stays (else ends lowest); the manual "
        "path, computed with torch.optim's own operations"
    )
    if scheduler is not None:
        text += f", the lr scheduled by {_scheduled(scheduler)}"
    left = [n for n, m in rules.ALL.items() if n not in optimizers and not _laned(m)]
    if left:
        text += f" ({', '.join(left)}: no sweep lanes, not raced)"
    fig.suptitle("\n".join(textwrap.wrap(text, 110)))
    return _done(fig, path)


def _scheduled(scheduler) -> str:
    from ..schedulers import parse, spec_of

    return spec_of(*parse(scheduler))


def _laned(module) -> bool:
    """Whether a sweep can run the rule as lanes (Adafactor's and L-BFGS's steps read the whole
    parameter)."""
    return getattr(module, "LANES", True)


def _racers(optimizers) -> list:
    """The rules to race (default: every one a sweep can run as lanes), each checked before
    anything runs."""
    from .. import rules

    names = [n for n, m in rules.ALL.items() if _laned(m)] if optimizers is None else optimizers
    names = list(names)
    if not names:
        raise TorchgdError("plot race needs at least one optimizer")
    for rule in names:  # an unknown rule is refused before anything runs
        module = rules.get(rule)
        if not _laned(module):
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


def _race_grid(lrs) -> list[float]:
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


def _best_lane(report: dict, floor: float = -math.inf) -> int | None:
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


def _race_label(rule: str, best: int | None, rates: list) -> str:
    """``adam (lr 0.1)``; ``, top of the grid`` where a larger lr might have done better."""
    if best is None:
        return f"{rule}: diverged at every lr of the grid"
    edge = {0: ", bottom of the grid", len(rates) - 1: ", top of the grid"}.get(best, "")
    return f"{rule} (lr {num(rates[best], '.3g')}{edge})"


def _race_contours(ax, p, start: dict, entries, rates) -> None:
    """The function's contour lines, the start and the minimum, each rule's iterates."""
    names = p.param_names
    pts = {
        rule: [_floats(_iterates(run, "manual", n)) for n in names]
        for rule, _, _, run in entries
        if run is not None
    }
    xs = [v for x, _ in pts.values() for v in x if _drawable(v)]
    ys = [v for _, y in pts.values() for v in y if _drawable(v)]
    _contour_lines(ax, p, xs, ys, log=True)
    for rule, color, best, run in entries:
        label = _race_label(rule, best, rates)
        if run is None:  # in the legend, with nothing to draw
            ax.plot([], [], color=color, marker="x", ls="none", label=label)
            continue
        x, y = pts[rule]
        ax.plot(x, y, color=color, lw=1.6, marker=".", ms=3, alpha=0.85, label=label, zorder=3)
        ax.plot(x[-1:], y[-1:], color=color, marker="o", ms=6, ls="none", zorder=4)
    ax.plot(*start.values(), "ks", ms=8, zorder=5, label=f"start ({point(start)})")
    if getattr(p, "minimum", None) is not None:
        at = dict(zip(names, p.minimum))
        ax.plot(*p.minimum, "*", color="tab:red", ms=14, mec="k", zorder=5,
                label=f"minimum ({point(at)})")  # fmt: skip
    ax.set(xlabel=names[0], ylabel=names[1])
    legend_below(ax)


def _race_floor(p, start: dict) -> float:
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


def _race_losses(ax, entries, rates, floor: float) -> None:
    """Each rule's loss per step, a log scale where it spans decades, cut at ``floor`` (see
    ``_race_floor``); the winner marked: the first to reach the floor, else the lowest at the
    end."""
    values, finals, reached = [], {}, {}
    for rule, color, best, run in entries:
        label = _race_label(rule, best, rates)
        if run is None:
            ax.plot([], [], color=color, marker="x", ls="none", label=label)
            continue
        hist = run["paths"]["manual"]["history"]
        kept = hist.get("epoch") or range(1, len(hist["loss"]) + 1)
        pts = [(e, v) for e, v in zip(kept, hist["loss"]) if _drawable(v)]
        finals[rule] = (kept[-1], hist["loss"][-1], color)
        at = settled_at(hist["loss"], floor)
        at = None if at is None else kept[at]
        if at is not None:
            reached[rule] = (at, color)
            label += f": at the minimum from step {at}"
        else:
            label += f": {num(hist['loss'][-1], '.3g')} at the end"
        steps, losses = zip(*pts) if pts else ((), ())  # none: every loss beyond 1e200
        ax.plot(steps, losses, color=color, lw=1.6, label=label, zorder=3)
        values += [v for v in losses if v >= floor]
    log = _spans_decades(values) and min(values, default=0) >= 0  # a log axis hides f < 0
    title = "loss per step (f before the step)"
    if log:
        ax.set_yscale("log")
        low = floor if reached else min(v for v in values if v > 0)
        if floor > 0 and reached:  # the floor, where some run reached it
            ax.axhline(floor, color="0.5", ls=":", lw=1,
                       label=f"the minimum, to {RACE_DIGITS} digits of the way down")  # fmt: skip
        ax.set_ylim(low / 10, max(values) * 10)  # the curves, not matplotlib's margins
    if reached:
        step = min(s for s, _ in reached.values())
        ties = [r for r, (s, _) in reached.items() if s == step]
        color = reached[ties[0]][1]
        ax.plot([step], [max(floor, 1e-300)], "*", color=color, ms=16, mec="k", zorder=5,
                label=f"first at the minimum: {' = '.join(ties)}")  # fmt: skip
        title += f"\nfirst at the minimum: {' = '.join(ties)}, at step {step}"
    elif finals:
        step, low, color = min(finals.values(), key=lambda f: f[1])
        ties = [r for r, f in finals.items() if f[1] == low]
        if not log or low > 0:
            ax.plot([step], [low], "*", color=color, ms=16, mec="k", zorder=5,
                    label=f"lowest at the end: {' = '.join(ties)}")  # fmt: skip
        title += f"\nlowest at the end: {' = '.join(ties)}, {num(low, '.3g')}"
    ax.set(xlabel="step", ylabel="loss (log scale)" if log else "loss")
    ax.grid(True, alpha=0.3)
    _title(ax, title)
    legend_below(ax)
