"""LaneRun: a sweep's K learning rates as lanes of one run, stepped by ``train``'s own loop.

The manual path's parameters get a leading lane dimension of size K and the lr is a tensor of
K values (``_Lanes``), so one step updates every lane with exactly the operations a single run
uses. ``train.execute(plan, run=LaneRun(plan, lrs))`` drives it like a ``run.Run``: the same
epochs, batches, lr scheduler steps, guard and Ctrl-C; its ``result`` is the sweep's report
(``sweep.report``, given). A lane the guard stops is frozen (``torch.where``) where its single run
would have stopped.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from . import guard as guards
from . import rules
from .errors import TorchgdError
from .feeding import batch_of

MAX_LANE_VALUES = 1 << 28  # lanes x batch size: 1 GiB of float32 per temporary


class LaneRun:
    """The lanes' state and the steps ``train._loop`` asks for (``run.Run``'s interface)."""

    step_callbacks = ()  # no callback wants every step of a sweep

    def __init__(self, p, lrs, report):
        self.p, self.lrs, k = p, list(lrs), len(lrs)
        self.report = report  # of what the lanes kept (sweep.report)
        self.theta = {n: _lanes(t, k, p.dataset) for n, t in p.params0.items()}
        lr = torch.tensor(lrs, dtype=p.dtype, device=p.device)
        self.hp = _Lanes(p.hp, lr.reshape(k, *[1] * (_lane_dims(p) - 1)), lane_schedules(p, lrs))
        self.state: dict = rules.of(p.hp).init(self.theta, self.hp)  # every lane's, as lanes
        self.x = self.y = None
        self.n = 1
        if p.dataset is not None:
            ds = p.dataset.to(p.device, p.dtype)
            self.x, self.y, self.n = ds.x, ds.y, len(ds)
        self.slices = p.batching.slices(self.n) if self.x is not None else [None]
        self.stochastic = self.x is not None and p.batching.kind != "batch"
        self.watcher = guards.Guard(p.config["patience"], k, self.stochastic,
                                    adaptive=rules.hovers(p.hp))  # fmt: skip
        self.active = torch.ones(k, dtype=torch.bool, device=p.device)
        self.stopped_at = [0] * k
        self.losses, self.costs, self.params_hist = [], [], []
        self.all_active, self.position, self.paths = True, (0, 1, 0), {}

    @torch.no_grad()
    def start(self) -> None:
        self.start_cost = cost(self.p, self.theta, self.x, self.y, len(self.lrs))
        if self.stochastic:
            self.watcher.begin(self.start_cost)

    def batches(self, epoch: int, first: int = 0):
        """``(j, (xb, yb))`` for the epoch's batches from ``first`` on."""
        order = self.p.batching.order(self.n, epoch) if self.x is not None else None
        order = order.to(self.p.device) if order is not None else None
        for j in range(first, len(self.slices)):
            yield j, batch_of(self.x, self.y, self.slices[j], order)

    @torch.no_grad()
    def step(self, epoch: int, j: int, batch) -> None:
        """One step of every lane; stopped lanes keep the parameters they stopped with."""
        p, (xb, yb), k = self.p, batch, len(self.lrs)
        self.hp.at((epoch - 1) * len(self.slices) + j + 1, epoch)  # a scheduler's lr, per lane
        if p.batching.kind == "batch" or self.x is None:  # the loss before the update
            self.before = p.problem.loss(self.theta, xb, yb).reshape(k)
        grads = p.problem.grad(self.theta, xb, yb)
        grads = {m: g.reshape(self.theta[m].shape) for m, g in grads.items()}
        rule = rules.of(p.hp)
        if self.all_active:
            rule.update(self.theta, grads, self.state, self.hp, "textbook")
            return
        new = {m: t.clone() for m, t in self.theta.items()}
        rule.update(new, grads, self.state, self.hp, "textbook")
        self.theta = {
            m: torch.where(self.active.reshape(-1, *[1] * (t.dim() - 1)), new[m], t)
            for m, t in self.theta.items()
        }

    @torch.no_grad()
    def end_epoch(self, epoch: int, batch) -> SimpleNamespace:
        """The epoch's loss (batch GD and function problems: the cost over all data before the
        epoch's update; else the last batch's after it) and cost per lane, kept."""
        p, k = self.p, len(self.lrs)
        if p.batching.kind == "batch" or self.x is None:
            loss = epoch_cost = self.before
        else:
            loss = p.problem.loss(self.theta, *batch).reshape(k)
            epoch_cost = cost(p, self.theta, self.x, self.y, k)
        self.losses.append(loss.clone())
        self.costs.append(epoch_cost.clone())
        self.params_hist.append({m: t.reshape(k, -1).clone() for m, t in self.theta.items()})
        return SimpleNamespace(epoch=epoch, cost=epoch_cost)

    def watch(self, info) -> None:
        """The guard on every lane: a lane that diverged stops; the sweep goes on."""
        stop_lanes(self.watcher, self.theta, info.cost, self.active, self.stopped_at, info.epoch)
        self.all_active = bool(self.active.all())

    @torch.no_grad()
    def result(self, status: str, seconds: float, diverged=None) -> dict:
        """The sweep's report of the epochs that finished (Ctrl-C: the lanes as they were at
        the last epoch's end; before the first ended, KeyboardInterrupt)."""
        if not self.params_hist:
            raise KeyboardInterrupt
        if status == "interrupted":
            self.theta = {m: t.reshape(self.theta[m].shape)
                          for m, t in self.params_hist[-1].items()}  # fmt: skip
        k = len(self.lrs)
        costs = [self.start_cost, *self.costs] if self.stochastic else self.costs
        final = cost(self.p, self.theta, self.x, self.y, k)
        out = self.report(self.p, self.lrs, self.losses, costs, final, self.params_hist,
                     self.stopped_at, self.watcher)  # fmt: skip
        out["interrupted"] = status == "interrupted"  # by Ctrl-C: the lanes as they were then
        out["epochs_done"] = len(self.params_hist)
        return out


class _Lanes:
    """The rule's hyperparameters with ``lr`` a tensor of K lanes (the rest as they are); with
    lane schedules, ``at(step, epoch)`` sets every lane's lr of that step."""

    def __init__(self, hp, lr, schedules=None):
        self._hp, self.lr, self._schedules = hp, lr, schedules

    def __getattr__(self, name):
        return getattr(self._hp, name)

    def at(self, step: int, epoch: int) -> None:
        if self._schedules is not None:
            every, lanes = self._schedules
            t = epoch - 1 if every == "epoch" else step - 1
            lrs = [s.lr_at(t) for s in lanes]
            self.lr = torch.tensor(lrs, dtype=self.lr.dtype, device=self.lr.device).reshape(
                self.lr.shape
            )


def lane_schedules(p, lrs):
    """Each lane's lr schedule (the textbook spelling, as every lane), from its own lr; None
    without a scheduler. A schedule that sets the lr from its own options (and cycles the
    momentum) or follows the costs has no lanes here."""
    from . import schedulers

    hook = p.hyper_at
    if hook is None:
        return None
    s = hook.schedule
    peak = getattr(s.module, "PEAK", None)
    if peak is not None:
        raise TorchgdError(
            f"sweep: {s.module.TORCH_CLASS} sets the lr from its own options ({peak} and the "
            f"rest), not --lr: every lane would be the same run (train one per {peak} instead)"
        )
    if hasattr(s, "observe"):
        raise TorchgdError(
            f"sweep: {s.module.TORCH_CLASS} follows each run's cost and has no lanes here; "
            "train runs it"
        )
    lanes = [schedulers.make(s.module, s.options, lr, "textbook") for lr in lrs]
    units = p.epochs * (p.batching.steps_per_epoch(len(p.dataset)) if p.dataset is not None
                        and hook.every == "step" else 1)  # fmt: skip
    for lane in lanes:
        schedulers.check(lane, units, hook.spec)
    return hook.every, lanes


def stop_lanes(watch, theta, cost, active, stopped_at, epoch) -> None:
    """The divergence guard on every lane: a lane whose parameters are no longer finite or
    whose cost grew as the guard says stops (``active`` and ``stopped_at`` updated in place)."""
    k = len(stopped_at)
    finite = torch.ones(k, dtype=torch.bool)
    for t in theta.values():
        finite &= torch.isfinite(t.reshape(k, -1)).all(1).cpu()
    bad, grew = watch.update(cost, finite)
    stop = active.cpu() & torch.tensor([b or g for b, g in zip(bad, grew)])
    for i in stop.nonzero().reshape(-1).tolist():
        stopped_at[i] = epoch
    active &= ~stop.to(active.device)


def _lane_dims(p) -> int:
    """Dimensions of a lane's w: [K, 1] against one feature's [N], [K, d] against [N, d]."""
    return 2 if p.dataset is not None else 1


def _lanes(t, k, dataset):
    """A parameter repeated for K lanes: w [K, 1] (one feature) or [K, d], b [K, 1]."""
    if dataset is None:
        return t.expand(k, *t.shape).clone()
    return t.reshape(1, -1).expand(k, -1).clone()


def cost(p, theta, x, y, k):
    """The cost over all data per lane, chunk by chunk (no K x N temporaries beyond the
    lanes' budget); for a problem without data, the function's value."""
    if x is None:
        return p.problem.loss(theta, None, None).reshape(k)
    rows = max(1, MAX_LANE_VALUES // k)
    total = torch.zeros(k, dtype=y.dtype, device=y.device)
    for lo in range(0, len(y), rows):
        part = p.problem.loss(theta, x[lo : lo + rows], y[lo : lo + rows], n=len(y))
        total += part.reshape(k)
    return total if len(y) > rows else p.problem.loss(theta, x, y).reshape(k)
