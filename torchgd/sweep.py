"""``torchgd sweep``: K learning rates as one batch dimension of the same tensors.

The manual path (analytic gradient, the textbook rule ``w -= lr * grad``) runs with every
parameter given a leading lane dimension of size K and ``lr`` a tensor of K values: one step
updates all K runs at once, with exactly the operations a single run uses, so with one
feature each lane is bit-identical to ``torchgd train --paths manual --lr LR`` (tested); with
several, the lanes' forward pass is one matrix product, rounded by another kernel than a single
run's, and lanes agree with single runs to rounding (docs/theory.md). The lanes (``lanerun``)
are stepped by ``train``'s own loop. A lane the divergence guard stops is frozen where the
single run would have stopped.

Next to what was measured it reports what the theory predicts (``theory``): the per-epoch
contraction of the error and the critical learning rate.
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import torch

from . import lanes, options, rules, theory
from .errors import TorchgdError
from .history import history_epochs
from .interfaces import optional
from .lanerun import MAX_LANE_VALUES, LaneRun, lane_schedules
from .lanes import CONVERGED
from .options import parse_lrs  # noqa: F401  (re-exported: sweep.parse_lrs)
from .planning import plan as make_plan

MAX_KEPT_VALUES = 1 << 28  # the lanes' per-epoch records, all epochs: 2 GiB of float64


def _measured_rate(errors: list[float]) -> float | None:
    """Geometric mean of |e_(t+1)| / |e_t| over the later half of the epochs in which the error
    is well above rounding."""
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
    # the later half: with several parameters the slowest direction sets the rate only once the
    # faster ones have died out (one parameter: every ratio is the same)
    ratios = ratios[len(ratios) // 2 :]
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if all(ratios) else 0.0


def check(p, lrs) -> None:
    """Can ``lrs`` be swept on plan ``p``? Raises TorchgdError if not."""
    rule = rules.of(p.hp)
    if not getattr(rule, "LANES", True):
        raise TorchgdError(
            f"sweep: {getattr(rule, 'NAME', rule.TORCH_CLASS)} reads the whole parameter at every "
            f"step ({getattr(rule, 'WHOLE', 'its own way')}), so K lanes stacked into one tensor "
            "cannot run it: train one run per lr"
        )
    if len(lrs) > options.MAX_LRS:
        raise TorchgdError(f"lrs: {options.too_many(len(lrs))}")
    kept = len(lrs) * (p.epochs + 1) * (2 + sum(t.numel() for t in p.params0.values()))
    if kept > MAX_KEPT_VALUES:  # checked first: the lanes' checks below take time too
        raise TorchgdError(
            f"a sweep of {len(lrs):,} learning rates over {p.epochs:,} epochs keeps every lane's "
            f"loss, cost and parameters each epoch: {kept:,} values (limit "
            f"{MAX_KEPT_VALUES:,}, 2 GiB in float64): use fewer learning rates or epochs"
        )
    for lr in lrs:  # every lane's hyperparameters are checked like a single run's
        dataclasses.replace(p.hp, lr=lr)
    lane_schedules(p, lrs)  # and every lane's schedule, all its lrs
    batch = p.batching.size(len(p.dataset)) if p.dataset is not None else 1
    if len(lrs) * batch > MAX_LANE_VALUES:
        raise TorchgdError(
            f"a sweep of {len(lrs)} learning rates on batches of {batch:,} samples holds "
            f"{len(lrs)} x {batch:,} values at once (limit {MAX_LANE_VALUES:,}): use fewer "
            "learning rates, smaller batches or less data"
        )


def sweep(
    problem="linear",
    data=None,
    *,
    lrs,
    batching=None,
    shuffle=None,
    seed=0,
    epochs=100,
    init=None,
    device="cpu",
    dtype="float64",
    guard=True,
    patience=5,
    bias=False,
    history="auto",
    **hyper,
) -> dict:
    """Run ``len(lrs)`` learning rates in one vectorized run of the manual path; the other
    options as ``plan`` takes them (``batching`` None: batch GD); ``hyper``: the rule's other
    hyperparameters (SGD: momentum, dampening, weight_decay, nesterov,
    maximize), the same for every lane."""
    if "hyper_at" in hyper:  # a function of one hp: the lanes' lrs are not one
        raise TorchgdError(
            "sweep runs each lane at its own lr; hyper_at is for fit (a scheduler= works here)"
        )
    p = make_plan(
        problem,
        data,
        batching=batching,
        shuffle=shuffle,
        seed=seed,
        lr=lrs[0],
        epochs=epochs,
        init=init,
        paths=("manual",),
        device=device,
        dtype=dtype,
        guard=guard,
        patience=patience,
        bias=bias,
        history=history,
        **hyper,
    )
    return run(p, lrs)


def run(p, lrs) -> dict:
    """The sweep of ``lrs`` on a validated plan (its lr is replaced by each of them; with a
    scheduler, each lane's schedule starts from its lr): its lanes stepped by the loop that
    trains (``train.execute`` on a ``lanerun.LaneRun``)."""
    from .train import execute

    check(p, lrs)
    return execute(p, run=LaneRun(p, lrs, report))


def _distances(params_hist, theta0, target, bias) -> torch.Tensor:
    """|theta_e - theta*| after each epoch (theta_0 first) for every lane: [epochs + 1, K],
    in one batched computation (one lane at a time took 70% of a 256-lane sweep)."""
    w = torch.stack([h["w"] for h in params_hist]).double().cpu()  # [E, K, d]
    if bias:
        w = torch.cat([w, torch.stack([h["b"] for h in params_hist]).double().cpu()], dim=-1)
    start = torch.as_tensor(theta0, dtype=torch.float64)
    d0 = (start - target).norm().expand(1, w.shape[1])
    return torch.cat([d0, (w - target).norm(dim=-1)])


def config_of(p) -> dict:
    """What a sweep's config.json records: the plan's configuration, one path, its spelling."""
    config = {k: v for k, v in p.config.items() if k not in ("lr", "paths")}
    return {**config, "paths": ["manual"], "spelling": "textbook"}


def report(p, lrs, losses, costs, final_cost, params_hist, stopped_at, watch) -> dict:
    """The sweep's report: per lane its final loss and cost, status and rates, against the
    theory, from what ``LaneRun`` kept of every epoch."""
    L = torch.stack(losses).T.tolist()  # [K][epochs]
    C = torch.stack(costs).T.double().tolist()
    stops = stopped_at
    scheduled = p.config.get("scheduler") is not None  # the theory's rates are a constant lr's
    t = None if scheduled else theory.analyse(p.config, p.dataset, p.batching)
    predicted = t.rates(lrs) if t is not None else [None] * len(lrs)
    ls = t.ls if t is not None else _least_squares(p)  # the data's optimum, whatever the rule
    opt = lanes.optimum(p, ls)
    noisy = ls is not None and ls.optimum_loss > 1e-20 * max(
        float((p.dataset.y.double() ** 2).mean()), 1e-300
    )
    stochastic = p.dataset is not None and p.batching.kind != "batch"
    judged = _lane_results(p, opt, L, C, params_hist, stops, watch, stochastic, noisy)
    final, status, measured = judged.final, judged.status, judged.measured
    status = _stalled(p, t, status, measured, params_hist, stops)
    unstable = [
        status[i] == "diverged" or (not stochastic and measured[i] is not None and measured[i] >= 1)
        for i in range(len(lrs))
    ]
    # the smallest lr from which every larger one fails too: a lane that crawls at a small lr
    # (Rosenbrock's valley at 0.01, its rate 1.001) while larger ones do better is no limit
    crit_meas = next((lrs[i] for i in range(len(lrs)) if all(unstable[i:])), None)
    return {
        "config": config_of(p),
        "lrs": list(lrs),
        "final_loss": final,
        "final_cost": [None if s else c for s, c in zip(stops, final_cost.tolist())],
        "optimum_loss": opt.cost if opt is not None else None,
        "optimum": opt.describe() if opt is not None else None,
        "status": status,
        "measured_rate": measured,
        "predicted_rate": predicted,
        "critical_lr": {"predicted": t.critical_lr if t else None, "measured": crit_meas},
        "theory": t.describe() if t is not None else None,
        "no_theory": (
            f"the lr is scheduled ({p.config['scheduler']}): the theory's rates are for a "
            "constant lr"
            if scheduled
            else theory.why_not(p.config, p.dataset)
        ),
        "rate_measured": (
            "not applicable: noise in the data sets a floor for stochastic batchings"
            if stochastic and noisy
            else f"per-epoch contraction of the distance to the {opt.name}"
            if opt is not None
            else "per-epoch contraction of the distance to the minimum"
        ),
        "stopped_at_epoch": [s or None for s in stops],
        "history": _history(L, p.config.get("history", "auto")),
        "params": {
            m: [h[m][:, 0].tolist() for h in params_hist][-1]
            if params_hist[-1][m].shape[1] == 1
            else params_hist[-1][m].tolist()
            for m in p.problem.param_names
        },
    }


def _lane_results(p, opt, L, C, params_hist, stops, watch, stochastic, noisy) -> SimpleNamespace:
    """Per lane: the final loss (the last finite one for a stopped lane), the status, and the
    measured rate of a least-squares problem (``opt``: its optimum, None where there is none)."""
    eps = torch.finfo(p.dtype).eps
    floor = stochastic and noisy
    dists = None
    if opt is not None and opt.theta is not None and not floor:
        dists = _distances(params_hist, lanes.theta0(p), opt.theta, bool(p.config.get("bias")))
    norms = lanes.norms2(p, params_hist, opt)
    in_order = p.dataset is not None and p.batching.order(len(p.dataset), 1) is None
    status, measured, final = [], [], []
    for i in range(len(stops)):
        lane_loss = L[i][: stops[i] or None]
        final.append(lane_loss[-1] if stops[i] == 0 else watch.last_finite[i])
        rate = None
        if dists is not None:
            rate = _measured_rate(dists[: (stops[i] or len(params_hist)) + 1, i].tolist())
        measured.append(rate)
        if stops[i]:
            status.append("diverged")
        elif opt is not None:
            costs = C[i]
            if norms is not None:  # cost[e] is at the parameters before epoch e (batch) or after
                at = norms[i] if stochastic else norms[i][:-1]
                costs = [opt.objective(c, n2) for c, n2 in zip(costs, at)]
            status.append(lanes.status(costs, opt.minimum, eps, floor, in_order))
        elif lane_loss[-1] <= CONVERGED * max(lane_loss[0], 1e-300) or lane_loss[-1] == 0:
            status.append("converged")
        else:
            status.append("slow")  # "stalled" if its measured rate says so (in ``_report``)
    return SimpleNamespace(final=final, status=status, measured=measured)


def _stalled(p, t, status, measured, params_hist, stops) -> list:
    """The statuses, with a lane whose error stopped shrinking without blowing up (an
    oscillation of constant size at the critical lr) "stalled", not "slow": it will never get
    there. Function problems with a known minimum get their rates here (into ``measured``)."""
    if t is None and optional(p.problem, "minimum") is not None:
        _function_rates(p, params_hist, stops, measured)
    return [
        "stalled" if s == "slow" and m is not None and m >= 1 else s
        for s, m in zip(status, measured)
    ]


def _least_squares(p):
    """The least-squares problem of a linear model's data (None for other problems)."""
    if p.dataset is None or p.problem.name != "linear":
        return None
    return theory.least_squares(p.dataset.x, p.dataset.y, bool(p.config.get("bias")))


def _function_rates(p, params_hist, stops, measured) -> None:
    """A function with a known minimum: each lane's rate from its distance to the minimum
    (into ``measured``)."""
    names, target = p.problem.param_names, p.problem.minimum
    start = torch.tensor([float(p.config["init"][n]) for n in names], dtype=torch.float64)
    low = torch.tensor(target, dtype=torch.float64)
    # every epoch's point of every lane, [E, K, D] in float64, and its distance to the minimum
    points = torch.stack([torch.cat([h[n].double().cpu() for n in names], 1) for h in params_hist])
    dists = (points - low).norm(dim=-1)
    for i in range(len(measured)):
        errs = [float((start - low).norm()), *dists[: stops[i] or None, i].tolist()]
        measured[i] = _measured_rate(errs)


def _history(L: list, mode: str) -> dict:
    """Each lane's loss per epoch, evenly thinned beyond 10,001 epochs (see train)."""
    kept = history_epochs(len(L[0]) if L else 0, mode)
    if kept is None:
        return {"loss": L}
    return {"loss": [[lane[e - 1] for e in kept] for lane in L], "epoch": kept}


def _num(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def format_table(r: dict) -> str:

    # least squares: the cost over all data, comparable with the minimum (a per-sample
    # batching's last loss is one sample's); diverged lanes: the last finite loss
    cost = r.get("optimum_loss") is not None
    head = "final cost" if cost else "final loss"
    lines = [f"{'lr':>10}  {head:>11}  {'status':<9}  {'measured':>8}  {'predicted':>9}"]
    for i, lr in enumerate(r["lrs"]):
        final = (
            r["final_cost"][i] if cost and r["final_cost"][i] is not None else r["final_loss"][i]
        )
        lines.append(
            f"{lr:>10.4g}  {_num(final):>11}  {r['status'][i]:<9}  "
            f"{_num(r['measured_rate'][i]):>8}  {_num(r['predicted_rate'][i]):>9}"
        )
    c = r["critical_lr"]
    what = "over all data" if cost else "as train's history.loss"
    lines.append(f"({head}: {what}; measured rate: {r['rate_measured']})")
    if any(s in ("slow", "stalled") for s in r["status"]):
        lines.append(
            "slow: still moving towards the minimum at the end (more epochs would tell); "
            "stalled: its measured rate is 1 or more, it no longer gets closer"
        )
    opt = r.get("optimum")
    if opt is not None and "objective" in opt:
        lines.append(
            f"with weight decay the lanes minimise cost + {opt['penalty']}: {opt['objective']:.6g} "
            f"at the ridge solution, where the cost is {opt['cost']:.6g} (the cost's own "
            f"least-squares minimum: {opt['least_squares_cost']:.6g}); converged lanes end there"
        )
    elif opt is not None:
        lines.append(
            f"least-squares minimum of the cost: {opt['cost']:.6g} (converged lanes end there)"
        )
    if opt is not None and any(s in ("floor", "far") for s in r["status"]):
        lines.append(
            "stochastic steps on noisy data settle on a cycle around it: floor, near it (excess "
            "at most the minimum's own value); far, a stable cycle further off"
        )
    if r.get("theory"):
        lines.append(f"theory: {r['theory']}")
    elif r.get("no_theory"):
        lines.append(f"theory: no critical lr here ({r['no_theory']})")
    lines.append(
        f"critical lr: predicted {_num(c['predicted'])}, found {_num(c['measured'])} "
        "(the smallest lr of the grid from which every one diverged or stopped shrinking the error)"
    )
    lines += _around_the_limit(r, c)
    return "\n".join(lines)


def _around_the_limit(r: dict, c: dict) -> list[str]:
    """Why lanes did what the predicted limit alone would not say: a shuffled lane that
    diverged below it (epoch 1's order's limit), one that converged above it (a band)."""
    out: list[str] = []
    above = [
        (lr, rate)
        for lr, status, rate in zip(r["lrs"], r["status"], r["predicted_rate"])
        if c["predicted"] is not None
        and lr > c["predicted"]
        and status != "diverged"
        and rate is not None
        and rate < 1
    ]
    below = [
        lr
        for lr, status in zip(r["lrs"], r["status"])
        if c["predicted"] is not None and lr < c["predicted"] and status == "diverged"
    ]
    if below and r["config"].get("shuffle"):  # theory.analyse: the limit of epoch 1's order
        out.append(
            f"below the limit, lr {', '.join(f'{lr:.4g}' for lr in below)} diverged: the limit "
            "is epoch 1's order's, and every epoch's order has its own; a later one's can be lower"
        )
    if above:  # a product over the batches (see theory.describe): bands where it contracts
        said = ", ".join(f"lr {lr:.4g} (predicted rate {_num(rate)})" for lr, rate in above)
        out.append(
            f"above the limit, {said} did not diverge: the epoch's rate is a product over its "
            "batches, and it dips below 1 again in narrow bands above the limit"
        )
    return out
