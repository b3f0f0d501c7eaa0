"""A scheduled run: the lr each path stepped with, against the critical lr, and the loss
beneath, both against the same steps."""

from __future__ import annotations

from ..errors import TorchgdError
from .common import (
    STYLES,
    WIDE,
    Figure,
    _done,
    _drawable,
    _figure,
    _groups,
    _spans_decades,
    _summary,
    _title,
    check_path,
    describe,
    legend_below,
    num,
    smooth,
)


def schedule(run, *, critical_lr: float | None = None, path=None) -> Figure:
    """The lr of every step, one line per path (one for paths identical bit for bit), the
    critical lr as a line where the theory gives one; the loss of every step beneath. A run
    kept with ``history="steps"`` is drawn step by step, else epoch by epoch."""
    if path is not None:
        check_path(path)
    summary = _summary(run)
    cfg = summary["config"]
    if not cfg.get("scheduler"):
        raise TorchgdError("plots.schedule draws a run with an lr scheduler; this one has none")
    unit, series = _series(summary)
    fig = _figure((WIDE[0] * 0.75, WIDE[1] * 1.25))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for i, names in enumerate(_groups(summary, lambda p: series[p]["lr"])):
        s, (ls, lw) = series[names[0]], STYLES[i % len(STYLES)]
        top.plot(s["x"], s["lr"], ls, lw=lw, label=" = ".join(names))
    if critical_lr is not None:
        said = (
            f"critical lr {num(critical_lr, '.4g')}, the theory's limit for this data and batching"
        )
        top.axhline(critical_lr, color="tab:red", ls="--", lw=1, label=said)
    lrs = [v for s in series.values() for v in s["lr"] if v > 0] + [critical_lr or 0]
    if _spans_decades([v for v in lrs if v > 0]):  # a limit far above, or a decaying lr
        top.set_yscale("log")
    top.set_ylabel("learning rate")
    _losses(bottom, summary, series)
    bottom.set_ylabel("loss" if unit == "epoch" else "loss of the step's batch, before it")
    bottom.set_xlabel(unit)
    legend_below(bottom)
    top.legend(fontsize="small", loc="best")
    from ..schedulers import lr_words

    lr = lr_words(cfg["scheduler"], num(cfg["lr"]), cfg.get("scheduler_every", "epoch"))
    _title(top, f"learning-rate schedule: {describe(summary, lr=lr)}", width=90)
    return _done(fig, path)


def _losses(ax, summary: dict, series: dict) -> None:
    """The loss of every step (or epoch) per path; where it goes up and down again and again
    (SGD's batches), drawn faint and the first path's smoothed over about the last 50 steps."""
    log = _spans_decades([v for s in series.values() for v in s["loss"] if _drawable(v) and v > 0])
    for i, names in enumerate(_groups(summary, lambda p: series[p]["loss"])):
        s, (ls, lw) = series[names[0]], STYLES[i % len(STYLES)]
        pts = [(x, v) for x, v in zip(s["x"], s["loss"]) if _drawable(v) and (v > 0 or not log)]
        xs, raw = [x for x, _ in pts], [v for _, v in pts]
        wiggles = _noisy(raw)
        ax.plot(xs, raw, ls, lw=lw * 0.5, alpha=0.4 if wiggles else 1.0, label=" = ".join(names))
        if wiggles and i == 0:
            said = f"{names[0]}: smoothed (beta 0.98, about the last 50, so it lags)"
            ax.plot(xs, smooth(raw, 0.98, log), color="black", lw=1.2, label=said)
    if log:
        ax.set_yscale("log")


def _noisy(values: list[float]) -> bool:
    """Whether a series turns up and down again and again (SGD's batches), not once (a run
    that falls, then diverges): a turn at one step in ten or more."""
    d = [b - a for a, b in zip(values, values[1:])]
    turns = sum(1 for a, b in zip(d, d[1:]) if a * b < 0)
    return len(values) > 50 and turns * 10 >= len(values)


def _series(summary: dict) -> tuple[str, dict]:
    """Per path, the x values and the lr and loss of each: per step where the run kept steps,
    else per epoch."""
    out, unit = {}, "step"
    for p, entry in summary["paths"].items():
        hist = entry["history"]
        steps = hist.get("steps")
        if steps and steps.get("lr") is not None:
            out[p] = {"x": steps["step"], "lr": steps["lr"], "loss": steps["loss"]}
        else:
            unit = "epoch"
            xs = hist.get("epoch") or list(range(1, len(hist["loss"]) + 1))
            out[p] = {"x": xs, "lr": hist.get("lr") or [summary["config"]["lr"]] * len(xs),
                      "loss": hist["loss"]}  # fmt: skip
    return unit, out


def limit(summary) -> float | None:
    """The critical lr of the run ``summary`` describes, from its configuration (the data
    read again), or None where the theory gives none (another rule, a function problem)."""
    from .. import theory
    from ..planning import plan_from_config

    summary = _summary(summary)  # a Result or its to_json()
    try:
        p = plan_from_config(summary["config"])
    except TorchgdError:
        return None
    if getattr(p.hyper_at, "cycles", False):  # a cycled momentum: the theory covers none
        return None
    t = theory.analyse(p.config, p.dataset, p.batching) if p.dataset is not None else None
    return None if t is None else t.critical_lr
