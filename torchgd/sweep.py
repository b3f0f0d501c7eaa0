"""``torchgd sweep``: K learning rates as one batch dimension of the same tensors.

The manual path (analytic gradient, the textbook rule ``w -= lr * grad``) runs with every
parameter given a leading lane dimension of size K and ``lr`` a tensor of K values: one step
updates all K runs at once, with exactly the operations a single run uses, so each lane is
bit-identical to ``torchgd train --paths manual --lr LR`` (tested). A lane the divergence guard
stops is frozen (``torch.where``) where the single run would have stopped.

Next to what was measured it reports what the theory predicts (``theory``): the per-epoch
contraction of the error and the critical learning rate.
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import torch

from . import rules, theory
from .errors import TorchgdError
from .options import parse_lrs  # noqa: F401  (re-exported: sweep.parse_lrs)
from .train import plan as make_plan

MAX_LANE_VALUES = 1 << 28  # lanes x batch size: 1 GiB of float32 per temporary
CONVERGED = 1e-8  # final loss at most this fraction of the first: converged, else slow


def _measured_rate(errors: list[float]) -> float | None:
    """Geometric mean of |e_(t+1)| / |e_t| while the error is well above rounding."""
    if not errors or not math.isfinite(errors[0]) or errors[0] == 0:
        return None
    floor = 1e-9 * errors[0]
    ratios = []
    for a, b in zip(errors, errors[1:]):
        if not (math.isfinite(a) and math.isfinite(b)) or a <= floor or b <= floor:
            break
        ratios.append(b / a)
    if not ratios:
        return None
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if all(ratios) else 0.0


def check(p, lrs) -> None:
    """Can ``lrs`` be swept on plan ``p``? Raises TorchgdError if not."""
    if p.dataset is not None and p.dataset.x.dim() == 2:
        raise TorchgdError(
            "sweep runs the one-feature model; this data has "
            f"{p.dataset.x.shape[1]} features (use train for it)"
        )
    for lr in lrs:  # every lane's hyperparameters are checked like a single run's
        dataclasses.replace(p.hp, lr=lr)
    batch = p.schedule.size(len(p.dataset)) if p.dataset is not None else 1
    if len(lrs) * batch > MAX_LANE_VALUES:
        raise TorchgdError(
            f"a sweep of {len(lrs)} learning rates on batches of {batch:,} samples holds "
            f"{len(lrs)} x {batch:,} values at once (limit {MAX_LANE_VALUES:,}): use fewer "
            "learning rates, smaller batches or less data"
        )


def sweep(
    problem="linear",
    data="lecture",
    *,
    lrs,
    schedule="batch",
    shuffle=False,
    seed=0,
    epochs=100,
    init=None,
    device="cpu",
    dtype="float64",
    momentum=0.0,
    dampening=0.0,
    weight_decay=0.0,
    nesterov=False,
    maximize=False,
    guard=True,
    patience=5,
) -> dict:
    """Run ``len(lrs)`` learning rates in one vectorized run of the manual path."""
    p = make_plan(
        problem,
        data,
        schedule=schedule,
        shuffle=shuffle,
        seed=seed,
        lr=lrs[0],
        epochs=epochs,
        init=init,
        paths=("manual",),
        device=device,
        dtype=dtype,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
        maximize=maximize,
        guard=guard,
        patience=patience,
    )
    return run(p, lrs)


def run(p, lrs) -> dict:
    """The sweep of ``lrs`` on a validated plan (its lr is replaced by each of them)."""
    check(p, lrs)
    epochs, guard, patience = p.epochs, p.config["guard"], p.config["patience"]
    k = len(lrs)
    lane = (k, 1) if p.dataset is not None else (k,)  # linear: w as a column against x's row
    theta = {n: t.expand(*lane, *t.shape).clone() for n, t in p.params0.items()}
    lr = torch.tensor(lrs, dtype=p.dtype, device=p.device).reshape(lane)
    hp = SimpleNamespace(**{**p.hp.asdict(), "lr": lr})
    state: dict = {}
    x = y = None
    n = 1
    if p.dataset is not None:
        ds = p.dataset.to(p.device, p.dtype)
        x, y, n = ds.x, ds.y, len(ds)
    slices = p.schedule.slices(n) if x is not None else [None]
    active = torch.ones(k, dtype=torch.bool, device=p.device)
    streak = torch.zeros(k, dtype=torch.int64, device=p.device)
    prev = torch.full((k,), math.inf, dtype=p.dtype, device=p.device)
    last_finite = torch.full((k,), math.nan, dtype=p.dtype, device=p.device)
    stopped_at = torch.zeros(k, dtype=torch.int64, device=p.device)
    losses, params_hist = [], []
    all_active = True
    with torch.no_grad():
        for epoch in range(1, epochs + 1):
            order = p.schedule.order(n, epoch) if x is not None else None
            xe, ye = (x, y) if order is None else (x[order.to(p.device)], y[order.to(p.device)])
            for sl in slices:
                xb, yb = (xe[sl[0] : sl[1]], ye[sl[0] : sl[1]]) if sl else (None, None)
                if p.schedule.kind == "batch" or x is None:  # the loss before the update
                    before = p.problem.loss(theta, xb, yb).reshape(k)
                grads = {
                    m: g.reshape(theta[m].shape) for m, g in p.problem.grad(theta, xb, yb).items()
                }
                if all_active:
                    rules.sgd_(theta, grads, state, hp, "textbook")
                else:  # stopped lanes keep the parameters they stopped with
                    new = {m: t.clone() for m, t in theta.items()}
                    rules.sgd_(new, grads, state, hp, "textbook")
                    theta = {
                        m: torch.where(active.reshape(-1, *[1] * (t.dim() - 1)), new[m], t)
                        for m, t in theta.items()
                    }
            if p.schedule.kind == "batch" or x is None:
                loss = before
            else:
                loss = p.problem.loss(theta, xb, yb).reshape(k)
            losses.append(loss.clone())
            params_hist.append({m: t.reshape(k, -1).clone() for m, t in theta.items()})
            if guard:
                finite = torch.isfinite(loss)
                for t in theta.values():
                    finite &= torch.isfinite(t.reshape(k, -1)).all(1)
                streak = torch.where(loss > prev, streak + 1, torch.zeros_like(streak))
                stop = active & (~finite | (streak >= patience))
                last_finite = torch.where(active & finite, loss, last_finite)
                stopped_at = torch.where(stop, torch.full_like(stopped_at, epoch), stopped_at)
                active &= ~stop
                all_active = bool(active.all())
                prev = loss
    return _report(p, lrs, losses, params_hist, stopped_at, last_finite)


def _report(p, lrs, losses, params_hist, stopped_at, last_finite) -> dict:
    k = len(lrs)
    L = torch.stack(losses).T.tolist()  # [K][epochs]
    stops = stopped_at.tolist()
    applies = theory.applies(p.config, p.dataset)
    xs = p.dataset.x.tolist() if applies else None
    target = None
    if applies:  # least squares w* (exact for noise-free data)
        target = (p.dataset.x * p.dataset.y).sum().item() / (p.dataset.x**2).sum().item()
    elif getattr(p.problem, "minimum", None) is not None and len(p.problem.param_names) == 1:
        target = p.problem.minimum[0]
    name = p.problem.param_names[0]
    status, measured, predicted, final = [], [], [], []
    for i in range(k):
        lane_loss = [v for v in L[i][: stops[i] or None]]
        final.append(lane_loss[-1] if stops[i] == 0 else last_finite[i].item())
        if stops[i]:
            status.append("diverged")
        elif lane_loss[-1] <= CONVERGED * max(lane_loss[0], 1e-300) or lane_loss[-1] == 0:
            status.append("converged")
        else:
            status.append("slow")
        if target is not None:
            start = p.config["init"][name]
            errs = [abs(start - target)] + [
                abs(h[name][i, 0].item() - target) for h in params_hist[: stops[i] or None]
            ]
            measured.append(_measured_rate(errs))
        else:
            measured.append(None)
        predicted.append(theory.rate(xs, lrs[i], p.config["schedule"]) if applies else None)
    crit_pred = theory.critical_lr(xs, p.config["schedule"]) if applies else None
    crit_meas = next(
        (
            lrs[i]
            for i in range(k)
            if status[i] == "diverged" or (measured[i] is not None and measured[i] >= 1)
        ),
        None,
    )
    return {
        "config": {
            **{k_: v for k_, v in p.config.items() if k_ not in ("lr", "paths")},
            "paths": ["manual"],
            "rule": "textbook",
        },
        "lrs": list(lrs),
        "final_loss": final,
        "status": status,
        "measured_rate": measured,
        "predicted_rate": predicted,
        "critical_lr": {"predicted": crit_pred, "measured": crit_meas},
        "stopped_at_epoch": [s or None for s in stops],
        "history": {"loss": L},
        "params": {
            m: [h[m][:, 0].tolist() for h in params_hist][-1] for m in p.problem.param_names
        },
    }


def format_table(r: dict) -> str:
    def num(v):
        return "-" if v is None else f"{v:.4g}"

    lines = [f"{'lr':>10}  {'final loss':>11}  {'status':<9}  {'measured':>8}  {'predicted':>9}"]
    for i, lr in enumerate(r["lrs"]):
        lines.append(
            f"{lr:>10.4g}  {num(r['final_loss'][i]):>11}  {r['status'][i]:<9}  "
            f"{num(r['measured_rate'][i]):>8}  {num(r['predicted_rate'][i]):>9}"
        )
    c = r["critical_lr"]
    lines.append("(rates: per-epoch contraction of |w - w*|)")
    lines.append(
        f"critical lr: predicted {num(c['predicted'])}, found {num(c['measured'])} "
        "(the first lr of the grid at which the error stops shrinking)"
    )
    return "\n".join(lines)
