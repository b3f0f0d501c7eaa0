"""Run: the state of one training run -- paths, shadow, agreement, history, guard -- and the
operations the loop in ``train.execute`` calls: ``batches``, ``step``, ``end_epoch``,
``watch``, ``flush``, ``state_dict``/``load_state_dict`` and ``result``.

One step (``Run.step``)::

    feed the batch to every path          paths.feed: whole, or chunk by chunk for big data
    add up the ranks' sums                --distributed only
    formula at each autograd path         problem.grad at the parameters the gradient used
    update every path                     w -= lr * grad  |  optimizer.step()
    write the step's row                  records.Block, on the device; folded when full
"""

from __future__ import annotations

import math

import torch

from . import compare, explain, interfaces, memory, problems, rules
from . import guard as guards
from .errors import TorchgdError
from .feeding import batch_loss, batch_of, noise_for, to_device, unflatten
from .history import History
from .lr_report import LrAgreement
from .paths import PATHS, ManualPath, feed
from .records import Block, Epoch, Step, flat, sync_allowed
from .result import Result


class Run:
    """The state of a run of ``plan`` (see the module docstring); ``callbacks`` get blocks."""

    def __init__(self, plan, callbacks=(), group=None):
        self.plan, self.config, self.problem = plan, plan.config, plan.problem
        self.callbacks = list(callbacks)
        self.step_callbacks = [cb for cb in callbacks if interfaces.overrides(cb, "on_step")]
        self.names, self.position = plan.names, (0, 1, 0)  # step, epoch, batch
        self._setup_paths(plan)
        self._setup_data(plan, group)
        self._setup_records(plan)
        # plan's hyper_at: the hyperparameters of each step, its lr recorded (None: plan.hp)
        self.hyper_at, self.hp_now = plan.hyper_at, plan.hp
        self._epoch_costs: tuple = (None, {})  # (epoch, every path's cost over all data)
        self._lrs: list = []  # the lr of each step of the block, not yet flushed
        self.cycles = bool(getattr(plan.hyper_at, "cycles", False))  # the momentum too
        self._momenta: list = []  # as _lrs, where a scheduler cycles the momentum
        self._taken = (None, None)  # the last step's (lrs, momenta), where they change
        self.lr_report = LrAgreement(self.names)
        self.history = History(self.names, plan.params0, self.config.get("history", "auto"),
                               plan.device, plan.hyper_at is not None, self.cycles)  # fmt: skip
        stochastic = plan.dataset is not None and plan.batching.kind != "batch"
        self.stochastic = stochastic
        self.guard = guards.Guard(
            self.config["patience"],
            len(self.names),
            stochastic or bool(self.config["noise"]),
            adaptive=rules.hovers(plan.hp),
        )

    def _setup_paths(self, plan) -> None:
        self.paths = {
            n: PATHS[n](plan.problem, plan.params0, plan.hp, plan.spelling) for n in plan.names
        }
        if plan.fused is not None:
            self.paths["manual"].fused = plan.fused
        # float32 runs can also step a float64 manual path on the same data, so the report can
        # say what float32 costs (``shadow``; by default only for small data: it doubles the work)
        self.shadow = None
        if plan.dtype != torch.float64 and self.config.get("shadow"):
            double = {n: t.double() for n, t in plan.params0.items()}
            self.shadow = ManualPath(plan.problem, double, plan.hp, plan.spelling)
        self.every = [*self.paths.values(), *([self.shadow] if self.shadow else [])]
        self.grad_checked = [p for p in plan.names if self.paths[p].uses_autograd]
        scheduled = getattr(plan.hyper_at, "schedule", None)  # an lr scheduler (plan.Scheduled)
        if scheduled is not None and "optim" in self.paths:  # torch's own class there
            self.paths["optim"].use_scheduler(scheduled, plan.hyper_at.every)

    def _setup_data(self, plan, group) -> None:
        dataset = plan.dataset
        self.x = self.y = None
        if dataset is not None:
            data = dataset.to(plan.device, plan.dtype)
            self.x, self.y = data.x, data.y
        self.n = dataset.n if dataset is not None else 1  # the whole data's size, on every rank
        self.slices = plan.batching.slices(self.n) if dataset is not None else [None]
        self.offset = dataset.offset if dataset is not None else 0
        if not problems.fits(plan.problem, self.y):
            memory.keep_freed_memory()  # chunk buffers are reused, not faulted in afresh
        self.group = group if self.x is not None else None  # data-free: every rank alike anyway
        biggest = max((b - a for a, b in self.slices), default=0) if self.x is not None else 0
        rows = getattr(plan.problem, "chunk_rows", None)
        # every batch is taken whole (the lecture's expressions), unless it is big or sharded
        self.whole = group is None and (
            self.x is None or rows is None or biggest <= rows or rules.evaluates(plan.hp)
        )
        self.shard = self.group.shard(self.n) if self.group is not None else None
        if dataset is not None and dataset.total is not None:  # this process holds part of it
            held = (dataset.offset, dataset.offset + len(dataset))
            if self.shard != held:
                theirs = "all of them" if self.shard is None else f"rows {self.shard[0]} to "
                theirs += "" if self.shard is None else str(self.shard[1])
                raise TorchgdError(
                    f"this plan holds rows {held[0]} to {held[1]} of {self.n}, but this process "
                    f"works on {theirs}"
                )

    def _setup_records(self, plan) -> None:
        params0 = plan.params0
        self.labels = compare.labels_for(params0)
        self.states = len(rules.state_names(plan.hp))  # the rule's state per parameter entry
        ends = {b - a for a, b in (self.slices[0], self.slices[-1])} if self.x is not None else {1}
        self.tracker = explain.Agreement(  # every block of steps goes in; bounded memory
            problem=plan.problem,
            names=self.names,
            paths=self.paths,
            dtype=plan.dtype,
            hp=plan.hp,
            hyper_at=plan.hyper_at,
            labels=self.labels,
            params0=compare.flat(params0).cpu(),  # the report is folded on the host
            grad_checked=self.grad_checked,
            batch_sizes=sorted(ends),
        )
        self.block = Block(
            explain.BLOCK,
            len(self.names),
            len(self.grad_checked),
            len(self.labels),
            plan.dtype,
            plan.device,
            bufs=self.states,
            shadow64=self.shadow is not None,
            scalar=all(t.dim() == 0 for t in params0.values()),  # the lecture's w
        )
        # the parameters are updated in place: detached aliases follow them
        self._params = [t.detach() for p in self.names for t in self.paths[p].params.values()]
        self._scalar = all(t.dim() == 0 for t in params0.values())
        self.bounded = bool(self.grad_checked) and plan.problem.grad_bound is not None

    # -- the loop's operations ------------------------------------------------------------

    def start(self) -> None:
        """Before the first step: the guard's starting cost (stochastic batchings)."""
        if self.config["guard"] and self.stochastic:
            c0 = batch_loss(self.problem, self.plan.params0, self.x, self.y, self.n, self.group)
            self.guard.begin(c0.expand(len(self.names)))

    def order(self, epoch: int):
        """The epoch's permutation of the rows (None: in order, or no data)."""
        if self.plan.dataset is None:
            return None
        order = self.plan.batching.order(self.n, epoch)
        return to_device(order, self.plan.device) if order is not None else None

    def batches(self, epoch: int, first: int = 0):
        """``(j, (xb, yb, nb))`` for the epoch's batches from ``first`` on."""
        order = self.order(epoch)
        for j in range(first, len(self.slices)):
            yield j, self.batch(j, order)

    def batch(self, j: int, order):
        """``(xb, yb, nb)``: batch ``j`` of an epoch whose permutation is ``order`` (this
        process's rows of it) and the whole batch's size."""
        bounds = self.slices[j]
        xb, yb = batch_of(self.x, self.y, bounds, order, self.shard, self.offset)
        return xb, yb, 1 if yb is None else bounds[1] - bounds[0]

    def step(self, epoch: int, j: int, batch) -> Step | None:
        """One step of every path on ``batch``; the ``Step`` if a callback wants each one."""
        xb, yb, nb = batch
        whole = self.whole or (problems.fits(self.problem, yb) and self.shard is None)
        feed(self.every, self.problem, xb, yb, nb, whole, double=self.shadow)
        if self.shard is not None:  # add up every rank's sums: then all update alike
            for path in self.every:
                path.all_reduce(self.group)
        # the analytic formula at each autograd path's parameters before its update
        formulas = [self.paths[p].formula() for p in self.grad_checked]
        step = self.position[0] + 1
        if self.hyper_at is not None:
            self._hyper(step, epoch)
        noise = noise_for(self.config, step, self.plan.params0) if self.config["noise"] else None
        out = {p: self.paths[p].update(noise) for p in self.names}
        if self.shadow is not None:
            self.shadow.update()
        self.position = (step, epoch, j + 1)
        self.last_loss = {p: out[p][0] for p in self.names}
        self._record(step, epoch, j, nb, out, formulas)
        if self.block.full:
            self.flush()
        if not self.step_callbacks:
            return None
        params = {p: self.paths[p].values() for p in self.names}
        grads = {p: out[p][1] for p in self.names}
        formulas_by_path = dict(zip(self.grad_checked, formulas))
        losses = {p: out[p][0] for p in self.names}
        return Step(step, epoch, losses, grads, params, formulas_by_path, (xb, yb))

    def _hyper(self, step: int, epoch: int) -> None:
        """This step's hyperparameters (``plan``'s ``hyper_at``) to every path and the shadow,
        where they changed; its lr recorded."""
        hp = self.hyper_at(step, epoch, self.plan.hp)
        if hp != self.hp_now:
            for path in self.every:
                path.set_hyper(hp)
            self.hp_now = hp
        lrs, momenta = self._taken = self._now()  # for the epoch's row: torch's may step after
        self._lrs.append(lrs)
        if self.cycles:
            self._momenta.append(momenta)

    def _now(self) -> tuple:
        """Every path's lr (torch's own on optim) and, where it is cycled, momentum."""
        lrs = [self.paths[p].lr() for p in self.names]
        return lrs, [self.paths[p].momentum() for p in self.names] if self.cycles else None

    def _record(self, step, epoch, j, nb, out, formulas) -> None:
        names, paths, shadow64 = self.names, self.paths, self.shadow
        values = [out[p][0] for p in names]  # losses, params, grads, formulas, bufs: one row
        values += self._params
        values += [t for p in names for t in out[p][1].values()]
        values += [t for r in formulas for t in r.values()]
        if self.states:
            values += [t for p in names for t in paths[p].buffers()]
        shadow = list(shadow64.params.values()) if shadow64 is not None else None
        self.block.put(step, epoch, j, nb, values, shadow)

    def end_epoch(self, epoch: int, batch) -> Epoch:
        """The epoch's losses (the lecture's: see ``torchgd.fit``) and parameters, per path; one
        row on the device holds them all (losses, then every path's parameters)."""
        xb, yb, nb = batch
        losses, values = {}, {p: self.paths[p].values() for p in self.names}
        for p in self.names:
            if self.plan.batching.kind == "batch" or self.plan.dataset is None:
                losses[p] = self.last_loss[p]
            else:
                losses[p] = batch_loss(self.problem, values[p], xb, yb, nb, self.group)
        row = [*(losses[p] for p in self.names), *self._params]
        self.last_row = torch.stack(row) if self._scalar else torch.cat(flat(row))
        if self.hyper_at is not None and self._taken[0] is None:  # a resumed epoch, no step left
            self._taken = self._now()
        self.history.add_epoch(self.last_row, self._taken)  # the lr as its last step took it
        costs = self._watched_costs(epoch, losses, values)
        for name, path in self.paths.items():  # torch's lr scheduler steps after the epoch
            path.end_epoch(costs.get(name))
        self.position = (self.position[0], epoch + 1, 0)
        return Epoch(epoch, self.position[0], losses, values)

    def flush(self) -> None:
        """Fold the block into the agreement report and give it to the callbacks."""
        if not len(self.block):
            return
        with sync_allowed(self.plan.device):
            host = self.block.host()
            if self.hyper_at is not None:
                host.lrs, self._lrs = self._lrs[: len(host)], self._lrs[len(host) :]
                if self.cycles:
                    host.momenta = self._momenta[: len(host)]
                    self._momenta = self._momenta[len(host) :]
                self.lr_report.fold(host)
            self.tracker.fold(host, self._bound_at if self.bounded else None)
        self.history.add_steps(host)
        interfaces.call(self.callbacks, "on_block", host)
        self.block.clear()

    def _bound_at(self, q: int, before, epoch: int, j: int):
        """Autograd path q's rounding bound at the step of epoch ``epoch``, batch ``j``, whose
        parameters before the step were ``before``: the same batch gathered again."""
        params = unflatten(before.to(self.plan.device), self.plan.params0)
        xb, yb, nb = self.batch(j, self.order(epoch))
        bound = problems.rounding_bound(self.problem, params, xb, yb, nb)
        return None if bound is None else torch.cat(flat(bound.values())).cpu()

    def watch(self, info: Epoch) -> dict | None:
        """The guard's verdict on one epoch, judged on the cost over all data: for ``batch``
        the epoch's loss (the cost before its update), else one more pass over the data per
        path. Reading the verdict waits for the device: the one read per epoch, so that a
        diverged run stops at the epoch it diverged."""
        names, p = self.names, self.plan
        costs = [self._costs(info.epoch, info.losses, info.params)[q] for q in names]
        P = len(names)
        with sync_allowed(p.device):  # the costs and the epoch's row, read in one copy
            read = torch.cat([torch.stack(costs).to(self.last_row), self.last_row]).tolist()
        params = read[2 * P :]  # (the epoch's losses come between: the guard needs the costs)
        d = len(params) // P
        finite = [all(map(math.isfinite, params[q * d : (q + 1) * d])) for q in range(P)]
        bad, grew = self.guard.update(read[:P], finite)
        stopped = [q for q in range(P) if bad[q] or grew[q]]
        if not stopped:
            return None
        i = stopped[0]
        reason = self.guard.reason(i, bad[i])
        last = self.guard.last_finite[i]
        at = {"epoch": info.epoch, "path": names[i], "reason": reason, "last_finite_loss": last}
        return advice(p, at)

    def _schedule_state(self) -> dict | None:
        """The state of a schedule that follows the run (ReduceLROnPlateau), else None."""
        schedule = getattr(self.hyper_at, "schedule", None)
        return schedule.state_dict() if hasattr(schedule, "state_dict") else None

    def _costs(self, epoch: int, losses: dict, params: dict) -> dict:
        """Every path's cost over all data after ``epoch`` (for ``batch``: the epoch's loss, the
        cost before its update), computed once per epoch for the guard and the scheduler."""
        p = self.plan
        if self._epoch_costs[0] != epoch:
            if p.dataset is None or p.batching.kind == "batch":
                costs = {q: losses[q] for q in self.names}
            else:
                x, y, n, group = self.x, self.y, self.n, self.group
                costs = {q: batch_loss(p.problem, params[q], x, y, n, group) for q in self.names}
            self._epoch_costs = (epoch, costs)
        return self._epoch_costs[1]

    def _watched_costs(self, epoch: int, losses: dict, params: dict) -> dict:
        """The costs a scheduler that watches them (ReduceLROnPlateau) is given after the
        epoch: torchgd's follows the manual path's (the first path's where there is none), the
        optim path's torch class its own; none where the schedule does not watch them."""
        observe = getattr(getattr(self.hyper_at, "schedule", None), "observe", None)
        if observe is None:
            return {}
        costs = self._costs(epoch, losses, params)
        with sync_allowed(self.plan.device):  # the one read per epoch, as the guard's
            observe(float(costs["manual" if "manual" in costs else self.names[0]]))
        return costs

    # -- checkpoints ----------------------------------------------------------------------

    def state_dict(self, epoch: int, batch: int) -> dict:
        """Everything a resumed run needs to go on from (epoch, batch), bit for bit; folds the
        block and copies the history first (callbacks get the block, then are asked for their
        own state)."""
        self.flush()
        return {
            "position": {"step": self.position[0], "epoch": epoch, "batch": batch},
            "config": self.config,
            "paths": {name: path.state_dict() for name, path in self.paths.items()},
            "reference": self.shadow.state_dict() if self.shadow is not None else None,
            "agreement": self.tracker.state_dict(),
            **self.history.state_dict(),
            "lr_agreement": self.lr_report.state_dict(),
            "guard": self.guard.state_dict(),
            "schedule": self._schedule_state(),
            "callbacks": {
                type(cb).__name__: cb.state_dict()
                for cb in self.callbacks
                if callable(getattr(cb, "state_dict", None))
            },
        }

    def load_state_dict(self, state: dict) -> None:
        position = state["position"]
        self.position = tuple(position[k] for k in ("step", "epoch", "batch"))
        for name, path in self.paths.items():
            path.load_state_dict(state["paths"][name])
        if self.shadow is not None:
            self.shadow.load_state_dict(state["reference"])
        if "agreement" in state:
            self.tracker.load_state_dict(state["agreement"])
        self.history.load_state_dict(state)
        self.lr_report.load_state_dict(state.get("lr_agreement"))
        if self.hyper_at is not None:  # the optimizer's param_groups came back as they were
            self.hp_now = None  # saved: the next step sets every path's anew
        self.guard.load_state_dict(state["guard"])
        if state.get("schedule") is not None:  # a schedule that follows the run (plateau)
            self.hyper_at.schedule.load_state_dict(state["schedule"])

    # -- the end ----------------------------------------------------------------------------

    def result(self, status: str, seconds: float, diverged: dict | None):
        """The run's ``Result``: final parameters, histories, the agreement report."""
        self.flush()
        self.history.drain()
        done, out = self.history.done, {}
        for p in self.names:
            hist = self.history.of(p)
            out[p] = {
                "params": {k: t.tolist() for k, t in self.paths[p].values().items()},
                "loss": hist["loss"][-1] if done else None,
                "history": hist,
            }
        agreement = self.tracker.report()
        if self.hyper_at is not None:
            self.lr_report.into(agreement, self.plan.hyper_at)
        group = self.group
        if group is not None:  # every rank must have ended with the same parameters, bit for bit
            mine = torch.cat([compare.flat(path.values()) for path in self.paths.values()])
            agreement["ranks"] = {
                **group.info(),
                "identical_parameters": group.identical(mine),
                "rows_held": group.gather(len(self.y)),  # rank 0 holds all, the others a shard
            }
        c = self.config
        return Result(
            c, status, out, agreement, self.tracker.steps, done, seconds, self.problem, diverged
        )


def advice(p, info: dict) -> dict:
    """The theory's advice on a diverged run, from the whole data: a rank that holds only its
    shard gives none (rank 0, which holds everything, gives it)."""
    if p.dataset is not None and p.dataset.total is not None:
        return info
    return guards.advice(p.config, p.dataset, p.batching, info)
