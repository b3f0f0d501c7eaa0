"""Figures, drawn with matplotlib's Agg backend: files first, no screen needed.

Each function takes what a run wrote (its ``summary.json`` object, as ``Result.to_json()``
gives it) or a problem, and saves one figure. Sizes are fixed (``SIZE`` at ``DPI``) so tests can
check them.

* ``field``: the lecture's first section: f(x, y) = x^2 + y^2 as a 3-D surface, and a quiver
  plot of its numerical gradient (central differences, h = 1e-4) on the lecture's grid.
* ``cost``: cost(w) over a range of w, with each path's iterates marked on it.
* ``loss``: loss per epoch, raw and smoothed, one line per path; log scale across decades.
* ``schedules``: batch GD, per-sample SGD and mini-batch on the same data, against epochs and
  against samples seen.
* ``trajectory``: contour lines of a 2-D problem (or the curve of a 1-D one) with the iterates.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from . import data as datasets  # noqa: E402
from . import gradients, problems  # noqa: E402
from .errors import TorchgdError  # noqa: E402

FORMATS = ("png", "svg", "pdf")
DPI = 100
SIZE = (8, 5)  # inches: 800 x 500 pixels
WIDE = (12, 5)  # 1200 x 500
MARKERS = {"manual": "o", "autograd": "x", "optim": "+"}


def _save(fig, path: Path) -> Path:
    path = Path(path)
    if path.suffix.lstrip(".") not in FORMATS:
        raise TorchgdError(f"unknown figure format '{path.suffix}': use {', '.join(FORMATS)}")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def smooth(values: list[float], beta: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction, the lecture's weighted mean of the loss:
    s_t = beta * s_(t-1) + (1 - beta) * loss_t, shown as s_t / (1 - beta^t)."""
    out, s = [], 0.0
    for t, v in enumerate(values, start=1):
        s = beta * s + (1 - beta) * v
        out.append(s / (1 - beta**t))
    return out


def field(path, problem: str = "paraboloid") -> Path:
    p = problems.get(problem)
    if len(p.param_names) != 2 or p.needs_data:
        raise TorchgdError(f"plot field needs a 2-D function problem, not '{problem}'")
    x = np.arange(-4, 4, 0.25)  # the lecture's grid
    X, Y = np.meshgrid(x, x)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    Z = p.f(Xt, Yt).numpy()
    GX, GY = (g.numpy() for g in gradients.numerical(p.f, Xt, Yt, h=1e-4))
    fig = plt.figure(figsize=WIDE)
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    ax.plot_surface(X, Y, Z, cmap=matplotlib.cm.coolwarm)
    ax.set(xlabel="x", ylabel="y", zlabel="f(x, y)", title=f"{p.description}")
    ax2 = fig.add_subplot(1, 2, 2)
    view = (np.abs(X) <= 2) & (np.abs(Y) <= 2)  # the lecture shows [-2, 2]^2: scale arrows to it
    ax2.quiver(X[view], Y[view], GX[view], GY[view], label="numerical gradient (h = 1e-4)")
    ax2.set(
        xlim=(-2, 2),
        ylim=(-2, 2),
        xlabel="x",
        ylabel="y",
        title="gradient field: arrows point uphill",
    )
    ax2.grid(True)
    ax2.legend(loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def _iterates(summary: dict, path: str, name: str) -> list:
    start = summary["config"]["init"][name]
    return [start, *summary["paths"][path]["history"][name]]


def cost(path, summary: dict, dataset=None) -> Path:
    cfg = summary["config"]
    if cfg["problem"] != "linear" or not isinstance(cfg["init"]["w"], float) or cfg.get("bias"):
        raise TorchgdError("plot cost needs a run of the linear model with one weight w")
    if dataset is None:  # a saved run: its data again, in its dtype
        dataset = datasets.get(cfg["data"], getattr(torch, cfg.get("dtype", "float64")))
    ds = dataset
    ws = [w for p in summary["paths"] for w in _iterates(summary, p, "w")]
    lo, hi = min(min(ws), 0.0), max(max(ws), 4.0)
    grid = torch.linspace(lo, hi, 400, dtype=torch.float64)
    curve = cost_curve(ds.x, ds.y)
    fig, ax = plt.subplots(figsize=SIZE)
    ax.plot(grid, curve(grid), color="0.3", label="cost(w) = 1/N sum (x_n*w - y_n)^2")
    for p in summary["paths"]:
        w = torch.tensor(_iterates(summary, p, "w"), dtype=torch.float64)
        ax.plot(w, curve(w), MARKERS.get(p, "."), label=f"{p}: w after each epoch", alpha=0.8)
    ax.set(
        xlabel="w",
        ylabel="cost (MSE)",
        title=f"cost(w) on the {cfg['data']} data, {cfg['schedule']}, lr={cfg['lr']}",
    )
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def cost_curve(x: torch.Tensor, y: torch.Tensor):
    """cost(w) for many w at once, from one pass over the data:

        cost(w) = 1/N sum (x_n*w - y_n)^2 = w^2 * mean(x^2) - 2*w * mean(x*y) + mean(y^2)

    (the lecture's eq. 3 multiplied out; the means in float64, a million samples at a time),
    so a curve of 400 points on 100 million samples needs no 400 x N tensor."""
    moments = torch.zeros(3, dtype=torch.float64)
    for xc, yc in zip(x.split(1 << 20), y.split(1 << 20)):
        xc, yc = xc.double(), yc.double()
        moments += torch.stack([xc @ xc, xc @ yc, yc @ yc])
    sxx, sxy, syy = (moments / len(x)).tolist()
    return lambda w: (w * w * sxx - 2 * w * sxy + syy).clamp(min=0)


def loss(path, summary: dict, beta: float = 0.9) -> Path:
    fig, ax = plt.subplots(figsize=SIZE)
    values = []
    for p, run in summary["paths"].items():
        hist = run["history"]  # a long run's history keeps some epochs: history["epoch"]
        kept = hist.get("epoch") or range(1, len(hist["loss"]) + 1)
        pts = [(e, v) for e, v in zip(kept, hist["loss"]) if v is not None]
        epochs, raw = [e for e, _ in pts], [v for _, v in pts]
        (line,) = ax.plot(epochs, raw, alpha=0.35, label=f"{p} (raw)")
        ax.plot(
            epochs, smooth(raw, beta), color=line.get_color(), label=f"{p} (smoothed, beta={beta})"
        )
        values += raw
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if positive and max(positive) / min(positive) > 100:
        ax.set_yscale("log")
    cfg = summary["config"]
    ax.set(
        xlabel="epoch",
        ylabel="loss",
        title=f"loss per epoch: {cfg['problem']}, "
        f"{cfg['schedule']}, lr={cfg['lr']}, {cfg['dtype']}",
    )
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def schedules(
    path,
    data: str = "lecture",
    lr: float = 0.01,
    epochs: int = 30,
    batch_size: int = 2,
    seed: int = 0,
) -> Path:
    from .train import fit

    n = len(datasets.get(data))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=WIDE)
    for schedule in ("batch", "sgd", f"minibatch:{batch_size}"):
        r = fit(
            "linear", data, schedule=schedule, lr=lr, epochs=epochs, paths=("manual",), seed=seed
        )
        w = torch.tensor(r.paths["manual"]["history"]["w"], dtype=torch.float64)
        ds = datasets.get(data)
        full = ((ds.x[None, :] * w[:, None] - ds.y[None, :]) ** 2).mean(1)  # cost on all data
        e = np.arange(1, epochs + 1)
        ax1.plot(e, full, label=schedule)
        ax2.plot(e * n, full, label=f"{schedule} ({r.steps // epochs} steps per epoch)")
    for ax, xlabel in ((ax1, "epoch"), (ax2, "samples seen")):
        ax.set_yscale("log")
        ax.set(xlabel=xlabel, ylabel="cost over all data after the epoch")
        ax.legend()
        ax.grid(True, alpha=0.3)
    ax1.set_title(f"batch GD vs SGD vs mini-batch ({data} data, lr={lr})")
    ax2.set_title("the same, against samples seen")
    fig.tight_layout()
    return _save(fig, path)


def trajectory(path, summary: dict) -> Path:
    cfg = summary["config"]
    p = problems.get(cfg["problem"])
    if p.needs_data:
        raise TorchgdError("plot trajectory needs a function problem (e.g. --problem elliptic)")
    names = p.param_names
    fig, ax = plt.subplots(figsize=SIZE)
    pts = {run: [_iterates(summary, run, n) for n in names] for run in summary["paths"]}
    lo, hi = p.box
    if len(names) == 2:
        xs = [v for xy in pts.values() for v in xy[0] if v is not None]
        ys = [v for xy in pts.values() for v in xy[1] if v is not None]
        x0, x1 = min(min(xs), lo), max(max(xs), hi)
        y0, y1 = min(min(ys), lo), max(max(ys), hi)
        gx, gy = torch.meshgrid(
            torch.linspace(x0, x1, 200, dtype=torch.float64),
            torch.linspace(y0, y1, 200, dtype=torch.float64),
            indexing="xy",
        )
        cs = ax.contour(gx, gy, p.f(gx, gy), levels=25, cmap="viridis")
        ax.clabel(cs, fontsize=7)
        for run, (x, y) in pts.items():
            ax.plot(x, y, MARKERS.get(run, ".") + "-", label=f"{run}", alpha=0.8)
        ax.set(xlabel="x", ylabel="y")
    else:
        x = [v for xs in pts.values() for v in xs[0] if v is not None]
        grid = torch.linspace(min(min(x), lo), max(max(x), hi), 500, dtype=torch.float64)
        ax.plot(grid, p.f(grid), color="0.3", label=f"f(x): {p.description}")
        for run, (xs,) in pts.items():
            t = torch.tensor(xs, dtype=torch.float64)
            ax.plot(t, p.f(t), MARKERS.get(run, ".") + "-", label=f"{run}", alpha=0.8)
        ax.set(xlabel="x", ylabel="f(x)")
    ax.set_title(f"{p.name}: gradient descent from {cfg['init']}, lr={cfg['lr']}")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def _drawable(v) -> bool:
    """A value a log axis can show: matplotlib's layout overflows near the float64 limit (a
    diverged lane's loss of 1e292 crashed tight_layout)."""
    return v is not None and math.isfinite(v) and abs(v) < 1e200


def sweep(path, report: dict) -> Path:
    """Final loss against lr, the critical lr marked; loss curves of a few telling lrs."""
    lrs, final, status = report["lrs"], report["final_loss"], report["status"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=WIDE)
    colors = {"converged": "tab:green", "slow": "tab:orange", "diverged": "tab:red"}
    for s, color in colors.items():
        pts = [
            (lr, f) for lr, f, st in zip(lrs, final, status) if st == s and _drawable(f) and f > 0
        ]
        if pts:
            ax1.plot(*zip(*pts), "o", color=color, label=s)
    zeros = [lr for lr, f in zip(lrs, final) if f == 0]
    if zeros:
        ax1.plot(
            zeros,
            [min([f for f in final if f and f > 0], default=1e-300)] * len(zeros),
            "v",
            color="tab:green",
            label="converged to exactly 0 (shown at the bottom)",
        )
    crit = report["critical_lr"]
    if crit["predicted"]:
        ax1.axvline(
            crit["predicted"],
            color="k",
            ls="--",
            label=f"critical lr, theory: {crit['predicted']:.4g}",
        )
    if crit["measured"]:
        ax1.axvline(
            crit["measured"],
            color="tab:red",
            ls=":",
            label=f"first lr that fails: {crit['measured']:.4g}",
        )
    ax1.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate",
        ylabel="final loss",
        title="final loss against learning rate",
    )
    ax1.legend(fontsize=8)
    # too small, good, near critical, too large
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
        ax2.plot(*zip(*curve), label=f"{label}: lr={lrs[i]:.4g}")
    ax2.set(
        yscale="log",
        xlabel="epoch",
        ylabel="loss",
        title="a rising loss means the learning rate is too large",
    )
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
