"""The lecture's figures: the gradient field, cost(w) (or cost(w, b)) with the iterates, the
loss, and batch GD vs SGD vs mini-batch."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .. import data as datasets
from .. import gradients, problems
from ..errors import TorchgdError
from .common import (
    MARKERS,
    SIZE,
    STYLES,
    WIDE,
    Figure,
    _done,
    _drawable,
    _figure,
    _floats,
    _groups,
    _iterates,
    _same_as,
    _spans_decades,
    _summary,
    _title,
    check_path,
    describe,
    legend_below,
    num,
    smooth,
)


def field(problem: str = "paraboloid", *, path=None) -> Figure:
    """A 2-D function as a surface, and its numerical gradient as arrows."""
    if path is not None:
        check_path(path)
    p = problems.get(problem)
    if len(p.param_names) != 2 or p.needs_data:
        raise TorchgdError(f"plot field needs a 2-D function problem, not '{problem}'")
    x = np.arange(-4, 4, 0.25)  # the lecture's grid
    X, Y = np.meshgrid(x, x)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    Z = p.f(Xt, Yt).numpy()
    GX, GY = (g.numpy() for g in gradients.numerical(p.f, Xt, Yt, h=1e-4))
    fig = _figure(WIDE)
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    ax.plot_surface(X, Y, Z, cmap="coolwarm")
    a, b = p.param_names
    ax.set(xlabel=a, ylabel=b, zlabel=f"f({a}, {b})", title=p.description)
    ax2 = fig.add_subplot(1, 2, 2)
    view = (np.abs(X) <= 2) & (np.abs(Y) <= 2)  # the lecture shows [-2, 2]^2: scale arrows to it
    ax2.quiver(X[view], Y[view], GX[view], GY[view])
    ax2.set(xlim=(-2, 2), ylim=(-2, 2), xlabel=a, ylabel=b)
    _title(ax2, "numerical gradient (central differences, h = 1e-4): arrows point uphill")
    ax2.grid(True)
    return _done(fig, path)


def cost(run, *, path=None, dataset=None, moments=None) -> Figure:
    """cost(w) of the linear model with one weight, each path's iterates marked on it; with a
    bias b, the contour lines of cost(w, b) with each path's iterates. ``dataset``: the run's
    data (default: loaded again from its config, in its dtype); or ``moments``: its
    ``torchgd.data.moments``, all the cost needs."""
    if path is not None:
        check_path(path)
    summary = _summary(run)
    cfg = summary["config"]
    if cfg["problem"] != "linear" or not isinstance(cfg["init"]["w"], float):
        raise TorchgdError("plot cost needs a run of the linear model with one weight w")
    if moments is None:
        if dataset is None:  # a saved run: its data again (the file from anywhere), its dtype
            where = (cfg.get("data_meta") or {}).get("file", cfg["data"])
            dataset = datasets.get(where, getattr(torch, cfg.get("dtype", "float64")))
        moments = datasets.moments(dataset.x, dataset.y)
    fig = _figure(SIZE)
    ax = fig.add_subplot()
    if cfg.get("bias"):
        _cost_contours(ax, summary, moments)
    else:
        _cost_curve(ax, summary, moments)
    _title(ax, f"cost(w{', b' * bool(cfg.get('bias'))}): {describe(summary)}")
    legend_below(ax)
    return _done(fig, path)


def _cost_curve(ax, summary: dict, moments) -> None:
    ws = [w for p in summary["paths"] for w in _iterates(summary, p, "w") if _drawable(w)]
    lo, hi = min([*ws, 0.0]), max([*ws, 4.0])
    grid = torch.linspace(lo, hi, 400, dtype=torch.float64)
    curve = cost_curve(*moments[:3])
    groups = _groups(summary, lambda p: summary["paths"][p]["history"]["w"])
    ax.plot(grid, curve(grid), color="0.3", label="cost(w) = 1/N sum (x_n*w - y_n)^2")
    for p in summary["paths"]:
        w = torch.tensor(_floats(_iterates(summary, p, "w")), dtype=torch.float64)
        label = f"{p}: w at the start and after each epoch{_same_as(groups, p)}"
        ax.plot(w, curve(w), ls="none", marker=MARKERS.get(p, "."), label=label, alpha=0.8)
    ax.set(xlabel="w", ylabel="cost (MSE)")


def _cost_contours(ax, summary: dict, moments) -> None:
    """cost(w, b) = 1/N sum (x_n*w + b - y_n)^2, multiplied out from the data's moments, as
    contour lines (log-spaced: the valley shows), with the iterates and the least-squares
    minimum."""
    sxx, sxy, syy, sx, sy = moments
    paths = summary["paths"]
    pts = {p: [_floats(_iterates(summary, p, k)) for k in ("w", "b")] for p in paths}
    ws = [v for w, _ in pts.values() for v in w if _drawable(v)]
    bs = [v for _, b in pts.values() for v in b if _drawable(v)]
    det = sxx - sx * sx  # the normal equations: w* = cov(x, y) / var(x), b* = mean y - w* mean x
    best = ((sxy - sx * sy) / det, sy - (sxy - sx * sy) / det * sx) if det > 0 else None
    wlo, whi = min([*ws, *(best[:1] if best else [])]), max([*ws, *(best[:1] if best else [])])
    blo, bhi = min([*bs, *(best[1:] if best else [])]), max([*bs, *(best[1:] if best else [])])
    pad_w, pad_b = max(0.2 * (whi - wlo), 0.5), max(0.2 * (bhi - blo), 0.5)
    W, B = torch.meshgrid(
        torch.linspace(wlo - pad_w, whi + pad_w, 200, dtype=torch.float64),
        torch.linspace(blo - pad_b, bhi + pad_b, 200, dtype=torch.float64),
        indexing="xy",
    )
    C = (W * W * sxx + 2 * W * B * sx + B * B - 2 * W * sxy - 2 * B * sy + syy).clamp(min=0)
    top = C.max().item()
    low = max(C.min().item(), top * 1e-6)
    levels = np.geomspace(low, top, 20) if top > low > 0 else 20
    cs = ax.contour(W, B, C, levels=levels, cmap="viridis", alpha=0.6)
    ax.clabel(cs, fontsize=7, fmt=lambda v: format(v, ".2g"))
    groups = _groups(summary, lambda p: [paths[p]["history"][k] for k in ("w", "b")])
    for p, (w, b) in pts.items():
        label = f"{p}: (w, b) at the start and after each epoch{_same_as(groups, p)}"
        ax.plot(w, b, marker=MARKERS.get(p, "."), ls="-", label=label, alpha=0.8)
    if best is not None:
        ax.plot(*best, "*", color="tab:red", ms=14, mec="k", zorder=5,
                label=f"least-squares minimum (w={best[0]:.4g}, b={best[1]:.4g})")  # fmt: skip
    ax.set(xlabel="w", ylabel="b")


def cost_curve(sxx: float, sxy: float, syy: float):
    """cost(w) for many w at once, from the data's moments (``torchgd.data.moments``):

        cost(w) = 1/N sum (x_n*w - y_n)^2 = w^2 * mean(x^2) - 2*w * mean(x*y) + mean(y^2)

    (the lecture's eq. 3 multiplied out)."""
    return lambda w: (w * w * sxx - 2 * w * sxy + syy).clamp(min=0)


def _wiggles(values: list[float]) -> bool:
    """Whether a series goes both up and down (a smoothed curve then shows its trend)."""
    steps = [b - a for a, b in zip(values, values[1:])]
    return any(d > 0 for d in steps) and any(d < 0 for d in steps)


def loss(run, *, path=None, beta: float | None = 0.9) -> Figure:
    """Loss per epoch (per step for a function problem), one line per path, or one line for
    paths identical bit for bit.

    ``beta``: the smoothed curve's (see ``smooth``; in log space on a log axis), drawn thin and
    under the raw loss, and only where the raw loss goes both up and down (a loss that only
    falls or only rises needs none, and a smoothed curve would lag behind it); None: never."""
    if path is not None:
        check_path(path)
    summary = _summary(run)
    runs = summary["paths"]
    groups = _groups(summary, lambda p: runs[p]["history"]["loss"])
    unit = "epoch" if summary["config"].get("data") is not None else "step"
    every = [v for p in runs for v in runs[p]["history"]["loss"] if _drawable(v)]
    log = _spans_decades(every)
    fig = _figure(SIZE)
    ax = fig.add_subplot()
    first = None
    for i, names in enumerate(groups):
        hist = runs[names[0]]["history"]  # a long run keeps some epochs: history["epoch"]
        kept = hist.get("epoch") or range(1, len(hist["loss"]) + 1)
        pts = [(e, v) for e, v in zip(kept, hist["loss"]) if _drawable(v) and (v > 0 or not log)]
        epochs, raw = [e for e, _ in pts], [v for _, v in pts]
        name = " = ".join(names)
        label = f"{name} (identical)" if len(names) > 1 else name
        apart = None
        if first is not None:  # how far from the first group's loss
            apart = _difference(first[1], hist["loss"])
            label += f", differs from {first[0]} by up to {apart:.2g} (relative)"
        ls, lw = STYLES[min(i, len(STYLES) - 1)]
        (line,) = ax.plot(epochs, raw, ls=ls, lw=lw, label=label, zorder=3)
        # a smoothed curve where the raw loss goes up and down, not twice for near-equal ones
        if beta is not None and _wiggles(raw) and (apart is None or apart > 1e-3):
            how = "in log space, " if log else ""
            ax.plot(epochs, smooth(raw, beta, log), color=line.get_color(), lw=0.8, alpha=0.5,
                    zorder=2, label=f"{name}: smoothed ({how}beta={num(beta)}: about the last "
                    f"{round(1 / (1 - beta))} {unit}s, so it lags)")  # fmt: skip
        first = first or (name, hist["loss"])
    if log:
        ax.set_yscale("log")
    if len(groups) == 1 and len(runs) > 1:
        agree = f"{', '.join(runs)}: the same loss at every {unit}, bit for bit"
    elif len(runs) > 1:
        agree = f"{len(groups)} different losses among {len(runs)} paths"
    else:
        agree = None
    title = f"loss per {unit}: {summary['config']['problem']}, {describe(summary)}"
    ax.set(xlabel=unit, ylabel="loss (log scale)" if log else "loss")
    _title(ax, title + (f"\n{agree}" if agree else ""))
    legend_below(ax)
    return _done(fig, path)


def _difference(a: list, b: list) -> float:
    """The largest relative difference between two loss series (inf where one is not finite
    and the other is)."""
    rel = [
        math.inf if _drawable(x) != _drawable(y) else abs(x - y) / max(abs(x), abs(y))
        for x, y in zip(a, b)
        if x != y and (_drawable(x) or _drawable(y))
    ]
    return max(rel, default=0.0)


def batchings(
    data: str = "lecture",
    *,
    lr: float = 0.01,
    epochs: int = 100,
    batch_size: int = 2,
    seed: int = 0,
    path=None,
) -> Figure:
    """Batch GD, per-sample SGD and mini-batch (manual path, divergence guard on) on the same
    data: the cost over all data after each epoch, against epochs and against the updates made
    (an epoch is one update for batch GD, N for SGD, N/B for mini-batches)."""
    from ..planning import plan
    from ..train import execute

    if path is not None:
        check_path(path)
    ds = datasets.get(data)
    if ds.x.dim() != 1:
        raise TorchgdError(
            f"plot batchings needs data with one feature; '{data}' has {ds.x.shape[1]}"
        )
    fig = _figure(WIDE)
    ax1, ax2 = fig.subplots(1, 2)
    for batching in ("batch", "sgd", f"minibatch:{batch_size}"):
        r = execute(plan("linear", ds, batching=batching, lr=lr, epochs=epochs, paths=("manual",),
                         seed=seed))  # fmt: skip
        w = torch.tensor(_floats(r.paths["manual"]["history"]["w"]), dtype=torch.float64)
        full = _cost_over_all_data(ds, w)
        pts = [(e, c) for e, c in enumerate(full, start=1) if _drawable(c) and c > 0]
        label = batching
        if r.status != "completed":
            label += f" ({r.status} at epoch {r.epochs})"
        zero = next((e for e, c in enumerate(full, start=1) if c == 0), None)
        if zero is not None:
            label += f" (cost exactly 0 from epoch {zero}: below a log axis)"
        steps = r.steps // max(r.epochs, 1)
        e, c = zip(*pts) if pts else ((), ())
        ax1.plot(e, c, label=label)
        ax2.plot([k * steps for k in e], c, label=f"{label}: {steps} update{'s' * (steps != 1)} "
                 "per epoch")  # fmt: skip
    for ax, xlabel in ((ax1, "epoch (every batching sees every sample once)"),
                       (ax2, "updates of w (steps)")):  # fmt: skip
        ax.set_yscale("log")
        ax.set(xlabel=xlabel, ylabel="cost over all data after the epoch")
        ax.grid(True, alpha=0.3)
        legend_below(ax)
    name = Path(ds.name).name if Path(ds.name).suffix else ds.name  # a file: its name only
    _title(ax1, f"batch GD vs SGD vs mini-batch: {name} data, lr={num(lr)}, {epochs} epochs")
    _title(ax2, "the same, against the updates each made: SGD updates N times an epoch")
    return _done(fig, path)


def _cost_over_all_data(ds, w: torch.Tensor) -> list[float]:
    """1/N sum (x_n*w - y_n)^2 for each w, summed directly (``cost_curve``'s multiplied-out
    form cancels near the minimum: it would show a floor near 1e-14 where the cost is 1e-30)."""
    total = torch.zeros(len(w), dtype=torch.float64)
    rows = max(1, (1 << 22) // max(len(w), 1))
    for xc, yc in zip(ds.x.split(rows), ds.y.split(rows)):
        total += ((xc.double()[None, :] * w[:, None] - yc.double()[None, :]) ** 2).sum(1)
    return (total / len(ds)).tolist()
