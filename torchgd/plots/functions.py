"""A function problem's iterates: on its contour lines (2-D) or its curve (1-D)."""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import problems
from ..errors import TorchgdError
from .common import (
    MARKERS,
    SIZE,
    Figure,
    _done,
    _drawable,
    _figure,
    _floats,
    _groups,
    _iterates,
    _same_as,
    _summary,
    _title,
    check_path,
    describe,
    legend_below,
    num,
    point,
)
from .lecture import cost


def _local_minima(xs: torch.Tensor, fs: torch.Tensor) -> list[int]:
    f = fs.tolist()
    return [i for i in range(1, len(f) - 1) if f[i] < f[i - 1] and f[i] <= f[i + 1]]


def trajectory(run, *, path=None) -> Figure:
    """A function problem's iterates: on its contour lines (2-D) or its curve (1-D, with the
    local minima in view marked and where each run ended)."""
    if path is not None:
        check_path(path)
    summary = _summary(run)
    cfg = summary["config"]
    # a Result carries its problem (a user's object, from Python); a summary names it
    p = getattr(run, "problem", None) or problems.get(cfg.get("problem_spec", cfg["problem"]))
    if cfg["problem"] == "linear" and isinstance(cfg.get("init", {}).get("w"), float):
        return cost(run, path=path)  # the linear model's iterates: on cost(w) or cost(w, b)
    if p.needs_data:
        raise TorchgdError("plot trajectory needs a function problem (e.g. --problem elliptic)")
    names = p.param_names
    fig = _figure(SIZE)
    ax = fig.add_subplot()
    pts = {run: [_floats(_iterates(summary, run, n)) for n in names] for run in summary["paths"]}
    groups = _groups(summary, lambda q: [summary["paths"][q]["history"][n] for n in names])
    first = next(iter(summary["paths"]))
    end = {n: summary["paths"][first]["params"][n] for n in names}
    draw = _on_contours if len(names) == 2 else _on_curve
    ends = draw(ax, p, pts, groups, end)
    how = "gradient descent" if cfg.get("optimizer", "sgd") == "sgd" else "steps"
    _title(ax, f"{p.name}: {how} from {point(cfg['init'])}, {describe(summary)}\n{ends}")
    legend_below(ax)
    return _done(fig, path)


def _on_contours(ax, p, pts: dict, groups, end: dict) -> str:
    """A 2-D function's contour lines with each run's iterates; says where the runs end."""
    xs, ys = (
        _in_view(p, [xy[0] for xy in pts.values()]),
        _in_view(p, [xy[1] for xy in pts.values()]),
    )
    _contour_lines(ax, p, xs, ys, log=True)
    for run, (x, y) in pts.items():
        label = f"{run}{_same_as(groups, run)}"
        ax.plot(x, y, marker=MARKERS.get(run, "."), ls="-", label=label, alpha=0.8)
    if getattr(p, "minimum", None) is not None:
        at = dict(zip(p.param_names, p.minimum))
        ax.plot(*p.minimum, "*", color="tab:red", ms=14, mec="k", zorder=5,
                label=f"minimum ({point(at)})")  # fmt: skip
    (x0, x1), (y0, y1) = _span(p, xs), _span(p, ys)
    ax.set(xlim=(x0, x1), ylim=(y0, y1))  # iterates that flew off leave the view
    ax.set(xlabel=p.param_names[0], ylabel=p.param_names[1])  # a user's a and b stay a and b
    return f"ends at {point(end, '.4g')}"


def _in_view(p, series: list) -> list[float]:
    """The finite values among ``series`` within ten boxes of the problem's box: a diverged
    run's 1e78 would squeeze the contour lines into one pixel."""
    lo, hi = p.box
    far = 10 * (hi - lo)
    return [v for s in series for v in s if _drawable(v) and lo - far <= v <= hi + far]


def _span(p, values: list) -> tuple[float, float]:
    lo, hi = p.box
    return min([*values, lo]), max([*values, hi])


def _contour_lines(ax, p, xs: list, ys: list, log: bool = False) -> None:
    """The contour lines of a 2-D function over its box, widened to take in the points
    ``xs, ys``; ``log``: levels evenly spaced on a log scale where f >= 0 spans decades (a
    valley like Rosenbrock's then shows)."""
    (x0, x1), (y0, y1) = _span(p, xs), _span(p, ys)
    gx, gy = torch.meshgrid(
        torch.linspace(x0, x1, 200, dtype=torch.float64),
        torch.linspace(y0, y1, 200, dtype=torch.float64),
        indexing="xy",
    )
    fs = p.f(gx, gy)
    top, positive = fs.max().item(), fs[fs > 0]
    if log and fs.min().item() >= 0 and len(positive) and math.isfinite(top):
        bottom = max(positive.min().item(), top * 1e-6)
        if top / bottom > 100:
            levels = np.geomspace(bottom, top, 20)
            cs = ax.contour(gx, gy, fs, levels=levels, cmap="viridis", alpha=0.6)
            ax.clabel(cs, levels[::3], fontsize=7, fmt=lambda v: format(v, ".2g"))
            return
    cs = ax.contour(gx, gy, fs, levels=25, cmap="viridis")
    ax.clabel(cs, fontsize=7)


def _on_curve(ax, p, pts: dict, groups, end: dict) -> str:
    """A 1-D function's curve with each run's iterates and the local minima in view; says where
    the runs end, and whether f is lower still at the edge of the view."""
    x = _in_view(p, [xs[0] for xs in pts.values()])
    grid = torch.linspace(*_span(p, x), 2001, dtype=torch.float64)
    fs = p.f(grid)
    ax.plot(grid, fs, color="0.3", label=f"f(x): {p.description}")
    for run, (xs,) in pts.items():
        t = torch.tensor(xs, dtype=torch.float64)
        label = f"{run}{_same_as(groups, run)}"
        ax.plot(t, p.f(t), marker=MARKERS.get(run, "."), ls="-", label=label, alpha=0.8)
    minima = _local_minima(grid, fs)
    known = getattr(p, "minimum", None)
    if known is not None:  # the problem knows its minimum: marked where it is, f there exact
        (mx,) = known
        mf = p.f(torch.tensor(mx, dtype=torch.float64)).item()
        ax.plot([mx], [mf], "*", color="tab:red", ms=14, mec="k", zorder=5,
                label=f"the minimum: f({num(mx)}) = {num(mf)}")  # fmt: skip
        minima = []
    elif minima:
        mx, mf = grid[minima].tolist(), fs[minima].tolist()
        ax.plot(mx, mf, "v", color="tab:red", ms=9, zorder=4, label="local minima of f in view")
        for a, b in zip(mx, mf):  # above the marker: a label below the lowest one is cut off
            ax.annotate(f"f={b:.3g}", (a, b), textcoords="offset points", xytext=(0, 9),
                        ha="center", fontsize=8, color="tab:red")  # fmt: skip
    (x_end,) = end.values()
    f_end = None if x_end is None else p.f(torch.tensor(x_end, dtype=torch.float64)).item()
    ends = f"ends at x={num(x_end, '.4g')}, f(x)={num(f_end, '.4g')}"
    lowest = min(range(len(grid)), key=lambda i: fs[i].item())
    if minima and fs[lowest].item() < min(fs[minima].tolist()):
        ends += (
            f"\nf is lower still at the edge of the view (f({grid[lowest].item():.3g}) = "
            f"{fs[lowest].item():.3g}): the minima marked are local"
        )
    ax.set(xlabel="x", ylabel="f(x)")
    return ends
