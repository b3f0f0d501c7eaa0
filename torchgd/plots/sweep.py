"""A sweep of learning rates: final loss against lr, and the loss curves of a few telling ones."""

from __future__ import annotations

import math

from .common import WIDE, Figure, _done, _drawable, _figure, check_path, describe, num


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
    lanes: dict = {}  # one curve a lane, with every name it earned ("good, near critical")
    for label, i in chosen.items():
        lanes.setdefault(i, []).append(label)
    for i, labels in lanes.items():
        label = ", ".join(labels)
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
