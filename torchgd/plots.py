"""Figures of a run: each function returns a matplotlib ``Figure`` and saves it only when given
``path=`` (``.png``, ``.svg`` or ``.pdf``, by the file's suffix).

The figures are built without pyplot: importing this module leaves matplotlib's backend as it
was, no figure is kept in a global registry (a figure lives as long as you hold it), and a
returned figure shows itself in a notebook (``_repr_png_``). Sizes are fixed (``SIZE`` or
``WIDE`` at ``DPI``) so tests can check them. A run can be given as a ``torchgd.Result`` or as
the object its ``summary.json`` holds (``Result.to_json()``)::

    result = torchgd.fit(schedule="sgd")
    plots.loss(result)                    # a Figure: a notebook shows it
    plots.loss(result, path="loss.png")   # the same Figure, saved too

* ``field``: the lecture's first section: f(x, y) = x^2 + y^2 as a 3-D surface, and a quiver
  plot of its numerical gradient (central differences, h = 1e-4) on the lecture's grid.
* ``cost``: cost(w) over a range of w, with each path's iterates marked on it.
* ``loss``: loss per epoch, one line per path (one line for paths that are identical bit for
  bit, and the legend says so); a log scale when the loss spans more than two decades; a
  smoothed curve, thinner and under the raw loss, only where the raw loss goes up and down.
* ``schedules``: batch GD, per-sample SGD and mini-batch on the same data, against epochs and
  against samples seen.
* ``trajectory``: contour lines of a 2-D problem (or the curve of a 1-D one, its local minima
  marked) with each path's iterates.
* ``sweep``: final loss against the learning rate, and the loss curves of a few telling ones.
* ``race``: every update rule from the same start on 2-D functions, each at the learning rate
  of one shared grid that ends lowest: its iterates on the contour lines, and its loss.
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

import matplotlib.figure
import numpy as np
import torch

from . import data as datasets
from . import gradients, options, problems, rules
from .errors import TorchgdError
from .runs import write_atomic

FORMATS = ("png", "svg", "pdf")
DPI = 100
SIZE = (8, 5)  # inches: 800 x 500 pixels
WIDE = (12, 5)  # 1200 x 500
MARKERS = {"manual": "o", "autograd": "x", "optim": "+"}
# paths drawn over each other stay visible: each group of paths a thinner, broken line
STYLES = [("-", 2.2), ("--", 1.6), (":", 1.6), ("-.", 1.2)]


class Figure(matplotlib.figure.Figure):
    """A matplotlib Figure that a notebook shows as a PNG, whether or not pyplot was imported."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=DPI)
        return buf.getvalue()


def _figure(size) -> Figure:
    return Figure(figsize=size, dpi=DPI, layout="tight")


def _title(ax, text: str, width: int | None = None, **kw) -> None:
    """A title of one or more lines, each wrapped to ``width`` characters (default: what the
    axes' share of the figure holds at the title's size, about 9 characters an inch)."""
    if width is None:
        inches = ax.get_position().width * ax.figure.get_figwidth()
        width = max(30, int(inches * 9.5 / 0.8))  # the axes span ~80% of their slot
    lines = [w for line in text.split("\n") for w in wrap_phrases(line, width)]
    ax.set_title("\n".join(lines), **kw)


def wrap_phrases(line: str, width: int) -> list[str]:
    """``line`` in lines of at most ``width`` characters, broken after a phrase (``", "``,
    ``": "``), never inside one unless a phrase alone is longer than a line."""
    import re

    phrases = re.split(r"(?<=[,:;]) ", line)
    out: list[str] = []
    for phrase in phrases:
        if out and len(out[-1]) + 1 + len(phrase) <= width:
            out[-1] += " " + phrase
        else:
            out += textwrap.wrap(phrase, width) or [""]
    return out


def legend_below(ax, **kw) -> None:
    """The legend under the axes, outside them: it never covers a curve, an arrow or a point."""
    _, labels = ax.get_legend_handles_labels()
    width = ax.get_position().width * ax.figure.get_figwidth() * ax.figure.dpi  # pixels
    column = 40 + 5 * max(map(len, labels), default=0)  # a marker and 8-point characters
    ncol = max(1, min(2, int(width // column))) if len(labels) > 3 else 1
    # anchored at the axes' bottom edge, 4 font sizes (32 points) below: under the tick
    # labels and the axis label, whatever the axes' height
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0), borderaxespad=4, ncol=ncol,
              fontsize=8, frameon=False, **kw)  # fmt: skip


def check_path(path) -> Path:
    """The file a figure may be saved to: a known suffix, in a directory that exists."""
    path = Path(path)
    if path.suffix.lstrip(".").lower() not in FORMATS:
        raise TorchgdError(
            f"cannot save a figure as '{path}': name it with one of the suffixes "
            f"{', '.join('.' + f for f in FORMATS)}"
        )
    if path.is_dir():
        raise TorchgdError(f"cannot save a figure as '{path}': it is a directory")
    if not path.parent.is_dir():
        raise TorchgdError(
            f"cannot save a figure as '{path}': directory '{path.parent}' does not exist"
        )
    return path


def _done(fig: Figure, path) -> Figure:
    if path is not None:
        path = Path(path)
        buf = io.BytesIO()  # drawn whole first: Ctrl-C or a full disk leaves no torn file
        fig.savefig(buf, dpi=DPI, format=path.suffix.lstrip(".").lower())
        try:
            write_atomic(path, buf.getvalue())
        except OSError as exc:
            raise TorchgdError(f"cannot save a figure as '{path}': {exc.strerror or exc}") from None
    return fig


def _summary(run) -> dict:
    return run.to_json() if hasattr(run, "to_json") else run


def num(v, spec: str = "g") -> str:
    """A number as a person writes it: 1.0 -> 1, 0.0001 -> 0.0001, 1e-08 -> 1e-08."""
    return "nan" if v is None else format(v, spec)


def point(values: dict, spec: str = "g") -> str:
    """``{'x': -3.0, 'y': 0.0}`` as ``x=-3, y=0``; a list of weights as ``w=[1, 1]``."""

    def one(v):
        return f"[{', '.join(num(u, spec) for u in v)}]" if isinstance(v, list) else num(v, spec)

    return ", ".join(f"{k}={one(v)}" for k, v in values.items())


def describe(summary: dict, lr: str | None = None) -> str:
    """A run's settings in words, for a title: ``lecture data, batch, lr=0.01, 100 epochs``
    (``lr``: what to say instead of ``lr=...``)."""
    cfg = summary["config"]
    parts = []
    if cfg.get("data") is not None:
        data = str(cfg["data"])
        parts.append(f"{Path(data).name if '/' in data else data} data")
        parts.append(cfg["schedule"] + (" shuffled" if cfg.get("shuffle") else ""))
        if cfg.get("bias"):
            parts.append("with a bias")
    parts.append(lr or f"lr={num(cfg['lr'])}")
    parts += rules.words(cfg, num, sep="=")
    if cfg.get("noise"):
        parts.append(f"gradient noise sigma={num(cfg['noise'])} (seed {cfg.get('seed', 0)})")
    unit = "epochs" if cfg.get("data") is not None else "steps"
    done, planned = summary.get("epochs", cfg["epochs"]), cfg["epochs"]
    if summary.get("status", "completed") == "completed" or done == planned:
        parts.append(f"{done} {unit}")
    else:
        parts.append(f"{summary['status']} after {done} of {planned} {unit}")
    if cfg.get("dtype", "float64") != "float64":
        parts.append(cfg["dtype"])
    return ", ".join(parts)


def _groups(summary: dict, key) -> list[list[str]]:
    """The paths, grouped where ``key(path)`` gives the same series bit for bit; path order."""
    groups: list[tuple[list, list[str]]] = []
    for p in summary["paths"]:
        series = key(p)
        for seen, names in groups:
            if seen == series:
                names.append(p)
                break
        else:
            groups.append((series, [p]))
    return [names for _, names in groups]


def smooth(values: list[float], beta: float = 0.9, log: bool = False) -> list[float]:
    """Exponential moving average with bias correction, the lecture's weighted mean of the loss:
    s_t = beta * s_(t-1) + (1 - beta) * loss_t, shown as s_t / (1 - beta^t).

    ``log``: averaged in log space, ``10 ** smooth(log10(loss))``, for a loss drawn on a log
    axis: a linear average there is ruled by the largest values (a loss between 1e-28 and 1e-4
    averages to about 1e-5, 24 decades above most of it)."""
    if log:
        return [10**s for s in smooth([math.log10(v) for v in values], beta)]
    out, s = [], 0.0
    for t, v in enumerate(values, start=1):
        s = beta * s + (1 - beta) * v
        out.append(s / (1 - beta**t))
    return out


def _drawable(v) -> bool:
    """A value a log axis can show: matplotlib's layout overflows near the float64 limit (a
    diverged lane's loss of 1e292 crashed tight_layout)."""
    return v is not None and math.isfinite(v) and abs(v) < 1e200


def _spans_decades(values) -> bool:
    positive = [v for v in values if _drawable(v) and v > 0]
    return bool(positive) and max(positive) / min(positive) > 100


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


def _iterates(summary: dict, path: str, name: str) -> list:
    start = summary["config"]["init"][name]
    return [start, *summary["paths"][path]["history"][name]]


def _floats(values) -> list[float]:
    return [math.nan if v is None else v for v in values]


def _same_as(groups: list[list[str]], p: str) -> str:
    """`` (same as manual)`` for a path identical to an earlier one, else nothing."""
    group = next(g for g in groups if p in g)
    return f" (same as {group[0]})" if group[0] != p else ""


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
                    zorder=2, label=f"{name}: smoothed ({how}beta={num(beta)})")  # fmt: skip
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


def schedules(
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
    from .train import fit

    if path is not None:
        check_path(path)
    ds = datasets.get(data)
    if ds.x.dim() != 1:
        raise TorchgdError(
            f"plot schedules needs data with one feature; '{data}' has {ds.x.shape[1]}"
        )
    fig = _figure(WIDE)
    ax1, ax2 = fig.subplots(1, 2)
    for schedule in ("batch", "sgd", f"minibatch:{batch_size}"):
        r = fit("linear", ds, schedule=schedule, lr=lr, epochs=epochs, paths=("manual",), seed=seed)
        w = torch.tensor(_floats(r.paths["manual"]["history"]["w"]), dtype=torch.float64)
        full = _cost_over_all_data(ds, w)
        pts = [(e, c) for e, c in enumerate(full, start=1) if _drawable(c) and c > 0]
        label = schedule
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
    for ax, xlabel in ((ax1, "epoch (every schedule sees every sample once)"),
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


def sweep(report: dict, *, path=None) -> Figure:
    """Final loss against lr, the critical lr marked; loss curves of a few telling lrs."""
    if path is not None:
        check_path(path)
    lrs = report["lrs"]
    fig = _figure(WIDE)
    ax1, ax2 = fig.subplots(1, 2)
    _final_loss_against_lr(ax1, report)
    _telling_curves(ax2, report)
    cfg = report.get("config")
    if cfg:
        lr = f"{len(lrs)} lrs from {num(lrs[0])} to {num(lrs[-1])}"
        fig.suptitle(f"sweep: {cfg['problem']}, {describe({'config': cfg}, lr=lr)}")
    return _done(fig, path)


def _final_loss_against_lr(ax, report: dict) -> None:
    """Each lr's final loss, coloured by its status; the critical lrs, predicted and measured."""
    lrs, final, status = report["lrs"], report["final_loss"], report["status"]
    colors = {
        "converged": "tab:green",
        "floor": "tab:blue",
        "far": "tab:brown",
        "slow": "tab:orange",
        "stalled": "tab:purple",
        "diverged": "tab:red",
    }
    for s, color in colors.items():
        pts = [
            (lr, f) for lr, f, st in zip(lrs, final, status) if st == s and _drawable(f) and f > 0
        ]
        if pts:
            ax.plot(*zip(*pts), "o", color=color, label=s)
    zeros = [lr for lr, f in zip(lrs, final) if f == 0]
    if zeros:
        ax.plot(
            zeros,
            [min([f for f in final if f and f > 0], default=1e-300)] * len(zeros),
            "v",
            color="tab:green",
            label="converged to exactly 0 (shown at the bottom)",
        )
    crit = report["critical_lr"]
    if crit["predicted"]:
        ax.axvline(
            crit["predicted"],
            color="k",
            ls="--",
            label=f"critical lr, theory: {crit['predicted']:.4g}",
        )
    if crit["measured"]:
        ax.axvline(
            crit["measured"],
            color="tab:red",
            ls=":",
            label=f"first lr that fails: {crit['measured']:.4g}",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate",
        ylabel="final loss",
        title="final loss against learning rate",
    )
    ax.legend(fontsize=8)


def _telling_curves(ax, report: dict) -> None:
    """The loss per epoch of a few telling lrs: too small, good, near critical, too large."""
    lrs, status = report["lrs"], report["status"]
    ok = [i for i, s in enumerate(status) if s != "diverged"]
    bad = [i for i, s in enumerate(status) if s == "diverged"]
    rates = report["measured_rate"]
    chosen = {}
    if ok:
        chosen["too small"] = ok[0]
        good = min(ok, key=lambda i: rates[i] if rates[i] is not None else math.inf)
        chosen["good"] = good
        chosen["near critical"] = ok[-1]
    if bad:
        chosen["too large"] = bad[0]
    for label, i in chosen.items():
        lane = report["history"]["loss"][i]
        kept = report["history"].get("epoch") or range(1, len(lane) + 1)
        stop = report["stopped_at_epoch"][i] or math.inf
        curve = [(e, v) for e, v in zip(kept, lane) if e <= stop and _drawable(v)]
        if not curve:
            continue
        ax.plot(*zip(*curve), label=f"{label}: lr={lrs[i]:.4g}")
    ax.set(
        yscale="log",
        xlabel="epoch",
        ylabel="loss",
        title="a rising loss means the learning rate is too large",
    )
    ax.legend(fontsize=8)


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
    it do so). ``optimizers``: the rules to race (default all of ``torchgd.rules.ALL``);
    ``init``: the start (default each problem's own); the figure is 12 inches wide, 5 a
    problem."""
    from . import rules
    from .sweep import sweep as run_sweep
    from .train import execute
    from .train import plan as make_plan

    if path is not None:
        check_path(path)
    names = [problems] if isinstance(problems, str) else list(problems)
    if not names or not all(names):
        raise TorchgdError("plot race needs at least one problem, and no empty name")
    if len(set(names)) != len(names):
        raise TorchgdError(f"plot race takes each problem once, got {', '.join(names)}")
    found = [race_problem(name) for name in names]
    rates = _race_grid(lrs)
    optimizers = list(rules.ALL) if optimizers is None else list(optimizers)
    if not optimizers:
        raise TorchgdError("plot race needs at least one optimizer")
    for rule in optimizers:  # an unknown rule or start is refused before anything runs
        rules.get(rule)
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
            kw = dict(optimizer=rule, epochs=steps, init=init, guard=False)
            grid = run_sweep(name, None, lrs=rates, **kw)
            best = _best_lane(grid, _race_floor(p, start))
            run = None
            if best is not None:
                one = make_plan(
                    name, None, lr=rates[best], paths=("manual",), rule="torch-exact", **kw
                )
                run = execute(one).to_json()
            entries.append((rule, f"C{i % 10}", best, run))
        _race_contours(ax1, p, start, entries, rates)
        _race_losses(ax2, entries, rates, _race_floor(p, start))
        _title(ax1, f"{p.name}: {p.description}\nfrom {point(start)}, {steps} steps")
    grid = f"{len(rates)} lrs from {num(rates[0])} to {num(rates[-1])}"
    text = (
        f"update rules racing from the same start, each at the lr of the same grid ({grid}, "
        "log-spaced) that reaches the minimum first and stays (else ends lowest); manual "
        "path, torch-exact spelling"
    )
    fig.suptitle("\n".join(textwrap.wrap(text, 110)))
    return _done(fig, path)


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
    """Among the lanes of a sweep whose loss and parameters stayed finite: the first to reach
    ``floor`` (the minimum, see ``_race_floor``), else the one whose final loss is lowest
    (ties: the smaller lr); None when none stayed finite."""
    finite = [
        i
        for i, f in enumerate(report["final_loss"])
        if f is not None
        and math.isfinite(f)
        and all(_finite_entry(v[i]) for v in report["params"].values())
    ]
    losses = report.get("history", {}).get("loss")
    if losses:
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
        if floor > 0:
            ax.set_ylim(bottom=floor / 10)
            ax.axhline(floor, color="0.5", ls=":", lw=1,
                       label=f"the minimum, to {RACE_DIGITS} digits of the way down")  # fmt: skip
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
