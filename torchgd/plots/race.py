"""Every update rule racing from the same start on 2-D functions, drawn (the race itself is
``torchgd.racing``'s: this module runs nothing)."""

from __future__ import annotations

import textwrap

from .. import racing
from ..racing import RACE_DIGITS, RACE_STEPS, settled_at
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
    the contour lines (left) and its loss per step (right), one colour per rule. The race and
    its fairness are ``torchgd.racing.run``'s (the same arguments: ``lrs`` the shared grid,
    default ``RACE_LRS``; ``optimizers`` default every rule a sweep can run as lanes, those
    left out said in the title; ``scheduler`` an lr scheduler for every lane); the legend
    names each rule's lr, ``adam (lr 0.1)``, or that it diverged at every lr. 12 inches wide,
    5 a problem."""
    if path is not None:
        check_path(path)
    r = racing.run(problems, lrs=lrs, steps=steps, init=init, optimizers=optimizers,
                   scheduler=scheduler)  # fmt: skip
    fig = _figure((WIDE[0], WIDE[1] * len(r.heats)))
    axes = fig.subplots(len(r.heats), 2, squeeze=False)
    for (ax1, ax2), heat in zip(axes, r.heats):
        entries = [
            (lane.rule, COLORS[i % len(COLORS)], lane.best, lane.run)
            for i, lane in enumerate(heat.lanes)
        ]
        p, start = heat.problem, heat.start
        _race_contours(ax1, p, start, entries, r.rates)
        _race_losses(ax2, entries, r.rates, heat.floor)
        _title(ax1, f"{p.name}: {p.description}\nfrom {point(start)}, {r.steps} steps")
    grid = f"{len(r.rates)} lrs from {num(r.rates[0])} to {num(r.rates[-1])}"
    text = (
        f"update rules racing from the same start, each at the lr of the same grid ({grid}, "
        "log-spaced) that reaches the minimum first and stays (else ends lowest); the manual "
        "path, computed with torch.optim's own operations"
    )
    if r.scheduler is not None:
        text += f", the lr scheduled by {r.scheduler}"
    if r.left:
        text += f" ({', '.join(r.left)}: no sweep lanes, not raced)"
    fig.suptitle("\n".join(textwrap.wrap(text, 110)))
    return _done(fig, path)


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
