"""The three paths behind one small interface.

Every path holds its own copy of the parameters and steps on the batch it is given::

    manual:   grad = problem.grad(w, x, y)          (the analytic formula)   then  w -= lr * grad
    autograd: loss.backward(); grad = w.grad        (PyTorch's chain rule)    then  w -= lr * grad
    optim:    loss.backward(); torch.optim.SGD(...).step()

``step(x, y)`` returns ``(loss, grads)``: the loss on the batch before the update, and the
gradient that was used. A big batch comes in parts instead, gradient accumulation as in
nanoGPT's micro-steps: ``accumulate(x_c, y_c, n)`` for each chunk (n: the batch's size), then
``update()``; with several processes each holds part of the batch, and ``all_reduce(group)``
adds up the ranks' sums before the update. Adding a path means adding a class here and an entry
in ``PATHS``.
"""

from __future__ import annotations

import torch

from . import hooks, problems, rules
from .errors import TorchgdError


class Path:
    name = "path"
    uses_autograd = False
    fused = None  # a compiled kernel that takes a big batch whole (``--compile``), or None

    def __init__(self, problem, params0: dict, hp, spelling: str = "textbook"):
        """``hp``: the rule's hyperparameters (its ``Hyper``: they name the rule, see
        ``torchgd.rules``); ``spelling``: of its hand-written form, textbook or torch-exact."""
        self.problem, self.hp, self.spelling = problem, hp, spelling
        self.algorithm = rules.of(hp)  # the rule's module: init, update, TORCH_CLASS, STATE
        self.state_names = rules.state_names(hp)  # the state the report compares
        self.params = {n: t.detach().clone() for n, t in params0.items()}
        self.state: dict = self.algorithm.init(self.params, hp)
        self.evaluates = rules.evaluates(hp)  # L-BFGS: its update takes evaluate=
        self.most = 0  # where it evaluates again: the most evaluations one step took

    def set_hyper(self, hp) -> None:
        """The hyperparameters from this step on (``plan``'s ``hyper_at``: the same rule,
        other values, such as a scheduled lr)."""
        self.hp = hp

    def lr(self) -> float:
        """The learning rate this path steps with now."""
        return self.hp.lr

    def momentum(self) -> float:
        """The momentum (Adam's beta1) this path steps with now (a cycling scheduler's)."""
        return hooks.momentum_of(self.hp)

    def end_epoch(self, cost=None) -> None:
        """After the epoch's last step (the optim path steps torch's lr scheduler here; ``cost``:
        the epoch's cost over all data, where the scheduler watches it)."""

    def values(self) -> dict:
        """The current parameters, detached from any graph."""
        return {n: t.detach() for n, t in self.params.items()}

    def buffers(self) -> list:
        """The rule's state after the last step, state by state, parameter by parameter
        (``exp_avg`` of every parameter, then ``exp_avg_sq``, ...); zeros where there is none
        yet (SGD's momentum buffer starts as the first gradient); a scalar state repeated
        over the parameter's entries."""
        return [
            _state_or_zeros(self.state.get(n, {}).get(s), t)
            for s in self.state_names
            for n, t in self.params.items()
        ]

    def state_dict(self) -> dict:
        """Parameters and the rule's state, as copies (for checkpoints)."""
        return {
            "params": {n: t.detach().clone() for n, t in self.params.items()},
            "buffers": {n: _copy(st) for n, st in self.state.items()},
            "most_evaluations": self.most,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        self.most = state["most_evaluations"]
        for n, t in self.params.items():
            t.copy_(state["params"][n])
        self.state = {
            n: _copy(st, self.params[n].device)
            for n, st in state["buffers"].items()
            if st is not None
        }

    def step(self, x, y, noise=None):
        """One update on the batch ``(x, y)``; see ``update``."""
        self.accumulate(x, y)
        return self.update(noise)

    def accumulate(self, x, y, n: int | None = None) -> None:
        """Take the whole batch ``(x, y)`` (``n`` None), or add one part's share of the loss
        and the gradient of a batch of ``n`` samples."""
        raise NotImplementedError

    def sums(self) -> list:
        """The tensors that hold this step's partial sums (what ``all_reduce`` adds up)."""
        raise NotImplementedError

    def all_reduce(self, group) -> None:
        """Add up every rank's partial sums of this step, in place."""
        group.sum_(self.sums())

    def gradients(self):
        """The loss and the gradient accumulated since the last update (nothing changes)."""
        raise NotImplementedError

    def update(self, noise=None):
        """Apply the rule with the accumulated gradient, plus ``noise`` (a dict like the
        gradient) if given. Returns the loss before the update and the gradient before noise."""
        raise NotImplementedError

    _batch = None  # the whole batch of this step, for a rule that evaluates again (L-BFGS)

    def evaluate(self):
        """The loss and the gradient at the current parameters on this step's batch, again (a
        rule with ``EVALUATES``, such as L-BFGS, calls it several times a step)."""
        raise NotImplementedError

    def evaluations(self) -> int | None:
        """How many times the rule evaluated the loss so far (None: once a step)."""
        if not self.evaluates:
            return None
        first = self._first_state()
        return first.get("func_evals", 0) if first else 0

    def _first_state(self) -> dict:
        return self.state.get(next(iter(self.params)), {})

    def _apply(self, grads: dict) -> None:
        """The hand-written rule, one step on ``grads``; a rule that evaluates again gets
        ``evaluate`` and its evaluations are counted."""
        if not self.evaluates:
            self.algorithm.update(self.params, grads, self.state, self.hp, self.spelling)
            return
        more = self._evaluating()
        self._counted(
            lambda: self.algorithm.update(self.params, grads, self.state, self.hp, self.spelling,
                                          **more)
        )  # fmt: skip

    def _counted(self, update) -> None:
        """``update()``, the most evaluations one step took kept (a rule that evaluates)."""
        before = self.evaluations()
        update()
        self.most = max(self.most, self.evaluations() - before)

    def _evaluating(self) -> dict:
        """``update``'s ``evaluate=``, for a rule that evaluates again (``self.evaluates``)."""
        if self._batch is None:
            raise TorchgdError(
                f"{self.algorithm.NAME} evaluates the loss again within a step: it needs each "
                "batch whole (no chunks, no torchrun)"
            )
        return {"evaluate": self.evaluate}


def _copy(state: dict, device=None) -> dict:
    """A copy of one parameter's state (tensors cloned, to ``device``; counts as they are;
    lists of them, L-BFGS's history, copied too)."""
    return {k: _copy_value(v, device) for k, v in state.items()}


def _copy_value(v, device):
    if isinstance(v, list):
        return [_copy_value(x, device) for x in v]
    return (v.to(device) if device is not None else v).clone() if torch.is_tensor(v) else v


def _with_noise(grads: dict, noise) -> dict:
    return grads if noise is None else {k: g + noise[k] for k, g in grads.items()}


def _add_(total, part):
    """``total += part`` for a dict of tensors (or a tensor), in place; the first part is
    copied. In place, because a chunk's sums kept until the step ends would pin small blocks
    between the chunks' big buffers: measured, the heap then grew by 0.5 MiB per chunk."""
    if total is None:
        return {k: v.clone() for k, v in part.items()} if isinstance(part, dict) else part.clone()
    if isinstance(part, dict):
        for k, v in part.items():
            total[k].add_(v)
    else:
        total.add_(part)
    return total


class ManualPath(Path):
    """Analytic gradient (the lecture's formula), then the hand-written rule.

    A whole batch goes through ``problem.loss`` and ``problem.grad``, the formulas as written;
    the chunks of a big one through ``problem.sums``, added up and divided by N at the end.
    With ``fused`` set (a ``torchgd.fused.Kernel``, ``--compile``) a big batch comes whole and
    one compiled loop over it gives the same sums, in float64."""

    name = "manual"

    def __init__(self, problem, params0, hp, spelling="textbook"):
        super().__init__(problem, params0, hp, spelling)
        self._whole, self._sum, self._grad_sum, self._n, self._buffer = None, None, None, 1, None

    def accumulate(self, x, y, n=None):  # nothing here requires grad: no graph is recorded
        self._batch = (x, y) if n is None else None
        if n is None:
            self._whole = self.problem.loss(self.params, x, y), self.problem.grad(self.params, x, y)
            return
        if self.fused is not None:
            s, g = self.fused(self.params, x, y)
        else:
            if self._buffer is None or len(self._buffer) < y.shape[-1]:
                self._buffer = torch.empty_like(y)  # the residual's home, reused by every chunk
            s, g = self.problem.sums(self.params, x, y, out=self._buffer)
        self._sum, self._grad_sum, self._n = _add_(self._sum, s), _add_(self._grad_sum, g), n

    def sums(self) -> list:
        return [self._sum, *self._grad_sum.values()]

    def gradients(self):  # no parameter of this path requires grad: no graph, no no_grad
        """The loss and gradient accumulated for this step (a gradient that is the parameter
        itself, as ``df = lambda x: (x,)`` returns, is copied: the update must not change it)."""
        if self._whole is not None:
            loss, grads = self._whole
        else:  # divided by N before the fused kernel's float64 sums are rounded, once
            dtype = next(iter(self.params.values())).dtype
            loss = (self._sum / self._n).to(dtype)
            grads = {k: (g / self._n).to(self.params[k].dtype) for k, g in self._grad_sum.items()}
        self._whole, self._sum, self._grad_sum = None, None, None
        grads = {k: g.clone() if g is self.params[k] else g for k, g in grads.items()}
        return loss, grads

    def update(self, noise=None):
        loss, grads = self.gradients()
        self._apply(_with_noise(grads, noise))
        return loss, grads

    def evaluate(self):
        x, y = self._batch
        return self.problem.loss(self.params, x, y), self.problem.grad(self.params, x, y)


class AutogradPath(Path):
    """``loss.backward()`` computes the gradient, then the same hand-written rule.

    Each step it also evaluates the analytic formula at its own parameters (``formula()``), so
    the run can check autograd against the formula at every step. The chunks of a big batch
    each get their own ``backward()``: the gradients add up in ``.grad`` and no chunk's graph
    outlives its backward; the formula's sums come from the same residual as the chunk's loss
    (``problem.chunk``), so the check reads the chunk once more from cache, not from memory."""

    name = "autograd"
    uses_autograd = True

    def __init__(self, problem, params0, hp, spelling="textbook"):
        super().__init__(problem, params0, hp, spelling)
        for t in self.params.values():
            t.requires_grad_(True)
        self._loss, self._formula, self._sums, self._n = None, None, None, 1

    def accumulate(self, x, y, n=None):
        if self._loss is None:  # the first chunk of a new batch
            for t in self.params.values():
                t.grad = None
            self._formula, self._sums = None, None
        self._batch = (x, y) if n is None else None
        if n is None:
            with torch.no_grad():
                self._formula = self.problem.grad(self.values(), x, y)
            part = self.problem.loss(self.params, x, y)
        else:
            part, sums = self.problem.chunk(self.params, x, y, n)
            self._sums, self._n = _add_(self._sums, sums), n
        part.backward()
        self._loss = part.detach() if n is None else _add_(self._loss, part.detach())

    def sums(self) -> list:
        return [self._loss, *(t.grad for t in self.params.values()), *self._sums.values()]

    def formula(self) -> dict:
        """The analytic gradient at the parameters this step's gradient was taken at."""
        if self._sums is None:
            return self._formula
        return {k: g / self._n for k, g in self._sums.items()}

    def gradients(self):
        loss, self._loss = self._loss, None
        return loss, {n: t.grad for n, t in self.params.items()}

    def update(self, noise=None):
        loss, grads = self.gradients()
        with torch.no_grad():
            self._apply(_with_noise(grads, noise))
        return loss, grads

    def _loss_backward(self):
        """The batch's loss at the current parameters, its gradient in ``.grad`` (afresh)."""
        x, y = self._batch
        with torch.enable_grad():
            for t in self.params.values():
                t.grad = None
            loss = self.problem.loss(self.params, x, y)
            loss.backward()
        return loss

    def evaluate(self):
        loss = self._loss_backward()
        return loss.detach(), {n: t.grad for n, t in self.params.items()}


class OptimPath(AutogradPath):
    """``loss.backward()``, then ``torch.optim.<the rule's class>.step()``: PyTorch's own."""

    name = "optim"

    def __init__(self, problem, params0, hp, spelling="torch"):
        super().__init__(problem, params0, hp, spelling="torch")
        self.optimizer = make_optimizer(self.algorithm, list(self.params.values()), hp)

    lr_scheduler = None  # torch's own lr scheduler class, where the run has a scheduler
    scheduler_every = "epoch"

    def set_hyper(self, hp) -> None:
        """torch.optim's own way: the values in its ``param_groups``, as an lr scheduler sets
        them (the lr left to torch's own scheduler where there is one)."""
        super().set_hyper(hp)
        given = rules.torch_kwargs(hp)
        if self.lr_scheduler is not None:  # what torch's scheduler sets is its to set
            given.pop("lr", None)
            if getattr(self.lr_scheduler, "cycle_momentum", False):
                given.pop("momentum", None), given.pop("betas", None)
        for group in self.optimizer.param_groups:
            group.update({k: v for k, v in given.items() if k in group})

    def use_scheduler(self, schedule, every: str) -> None:
        """Run torch's class of ``schedule`` (``torchgd.schedulers.Schedule``) on this
        optimizer, stepped after every ``every`` (epoch or step)."""
        self.lr_scheduler = schedule.torch_scheduler(self.optimizer)
        self.scheduler_every = every

    def end_epoch(self, cost=None) -> None:
        if self.lr_scheduler is not None and self.scheduler_every == "epoch":
            self.lr_scheduler.step(*(() if cost is None else (cost,)))

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def momentum(self) -> float:
        group = self.optimizer.param_groups[0]  # as torch's cycling schedulers set it
        return group["betas"][0] if "betas" in group else group["momentum"]

    def _first_state(self) -> dict:
        return self.optimizer.state.get(next(iter(self.params.values())), {})

    def buffers(self) -> list:
        """The optimizer's state, as ``Path.buffers`` orders it (``optimizer.state[p]``)."""
        return [
            _state_or_zeros(self.optimizer.state.get(t, {}).get(s), t)
            for s in self.state_names
            for t in self.params.values()
        ]

    def state_dict(self) -> dict:
        state = {**super().state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.lr_scheduler is not None:
            state["lr_scheduler"] = self.lr_scheduler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.lr_scheduler is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])

    def update(self, noise=None):
        loss, grads = self.gradients()
        if noise is not None:
            for name, t in self.params.items():
                t.grad = t.grad + noise[name]  # a new tensor: the returned gradient stays clean
        if self.evaluates and self._evaluating():  # torch's step(closure): L-BFGS's
            self._counted(lambda: self.optimizer.step(self._loss_backward))
        else:
            self.optimizer.step()
        if self.lr_scheduler is not None and self.scheduler_every == "step":
            self.lr_scheduler.step()
        return loss, grads


def make_optimizer(algorithm, params: list, hp):
    """The rule's ``torch.optim`` class on ``params``, given those of the rule's
    hyperparameters that the class takes (a user's rule may have more of its own)."""
    import inspect

    optimizer = getattr(torch.optim, algorithm.TORCH_CLASS)
    takes = inspect.signature(optimizer).parameters
    return optimizer(params, **{k: v for k, v in rules.torch_kwargs(hp).items() if k in takes})


def _state_or_zeros(value, like):
    """One state of one parameter as the report compares it: shaped like the parameter. A
    scalar state (NAdam's ``mu_product``, ASGD's ``eta``: a number, or torch's 0-d float32
    tensor) is repeated over the parameter's entries, in its dtype (float32 exactly)."""
    if value is None:
        return torch.zeros_like(like.detach())
    if not torch.is_tensor(value) or value.dim() < like.dim():
        exact = torch.float64 if isinstance(value, float) else None  # not the default float32
        value = torch.as_tensor(value, dtype=exact).to(like.device, like.dtype).expand_as(like)
    return value.detach()


def feed(paths, problem, x, y, n: int, whole: bool, double=None) -> None:
    """Give every path the batch ``(x, y)`` of ``n`` samples for one step: whole (the
    lecture's expressions) when ``whole``; else a path with a ``fused`` kernel takes it in one
    compiled pass and the others chunk by chunk, every path on each chunk while it is in cache.
    ``double``: a path that gets the chunks in float64 (the float32 run's shadow)."""
    if whole:  # the lecture's case: each path takes the batch as it is
        for path in paths:
            xp, yp = (x.double(), y.double()) if path is double and x is not None else (x, y)
            path.accumulate(xp, yp)
        return
    fused = [q for q in paths if q.fused is not None]
    for path in fused:
        path.accumulate(x, y, n)
    chunked = [q for q in paths if q not in fused]
    for xc, yc in problems.chunks(problem, x, y) if chunked else ():
        for path in chunked:
            xp, yp = (xc.double(), yc.double()) if path is double and xc is not None else (xc, yc)
            path.accumulate(xp, yp, n)


PATHS = {cls.name: cls for cls in (ManualPath, AutogradPath, OptimPath)}
