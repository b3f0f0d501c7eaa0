"""Hyperparameters that change during a run: a user's ``hyper_at(step, epoch, hp)``, checked
once before anything runs, or one made from a learning-rate scheduler (``Scheduled``)."""

from __future__ import annotations

from dataclasses import replace

from .errors import TorchgdError


class Scheduled:
    """``hyper_at`` made from a learning-rate scheduler (``torchgd.schedulers``): the lr of
    each step from ``Schedule.lr_at``, counted in epochs or in steps (``every``); the momentum
    too where the scheduler cycles it (SGD's and RMSprop's ``momentum``, Adam's ``beta1``)."""

    def __init__(self, schedule, every: str, spec: str):
        self.schedule, self.every, self.spec = schedule, every, spec

    def __call__(self, step: int, epoch: int, hp):
        t = epoch - 1 if self.every == "epoch" else step - 1
        hp = replace(hp, lr=self.schedule.lr_at(t))
        return with_momentum(hp, self.schedule.momentum_at(t)) if self.cycles else hp

    @property
    def cycles(self) -> bool:
        return self.schedule.cycles_momentum


def momentum_of(hp) -> float:
    """The momentum a cycling scheduler sets: SGD's and RMSprop's ``momentum``, Adam's beta1."""
    return hp.betas[0] if hasattr(hp, "betas") else hp.momentum


def with_momentum(hp, momentum: float):
    """``hp`` with its momentum (Adam's: beta1) set as torch's cycling schedulers set it."""
    if hasattr(hp, "betas"):
        return replace(hp, betas=(momentum, *hp.betas[1:]))
    return replace(hp, momentum=momentum)


def _scheduled(spec, every: str, hp, spelling: str, hyper_at, units: int) -> Scheduled:
    from . import schedulers

    if hyper_at is not None:
        raise TorchgdError("give a scheduler or hyper_at, not both (hyper_at can do both)")
    if every not in schedulers.EVERY:
        raise TorchgdError(f"--scheduler-every must be epoch or step, got '{every}'")
    module, options = schedulers.parse(spec)
    spelling = "torch-exact" if spelling == "torch-exact" else "textbook"
    if every not in getattr(module, "EVERY", schedulers.EVERY):
        raise TorchgdError(
            f"--scheduler {spec}: {module.TORCH_CLASS} steps on the epoch's cost: use "
            "--scheduler-every epoch"
        )
    if schedulers.users_file(module):  # its code tried before anything is written
        schedule = schedulers.tried(module, options, hp.lr, spelling, units, spec)
    else:
        schedule = schedulers.make(module, options, hp.lr, spelling)
    if schedule.cycles_momentum and not (hasattr(hp, "momentum") or hasattr(hp, "betas")):
        raise TorchgdError(
            f"--scheduler {spec}: optimizer must support momentum or beta1 with `cycle_momentum` "
            "option enabled (torch's words; add cycle_momentum=False)"
        )
    schedulers.check(schedule, units, spec)  # every lr of the run, before it starts
    return Scheduled(schedule, every, schedulers.spec_of(module, options))


def _check_hook(hyper_at, hp) -> str | None:
    """``hyper_at`` tried once, at step 1 of epoch 1: it must give the rule's ``Hyper``
    (``dataclasses.replace(hp, lr=...)``); returns its name for the configuration."""
    if hyper_at is None:
        return None
    how = (
        "a function of (step, epoch, hp) giving the rule's Hyper, e.g. "
        "dataclasses.replace(hp, lr=...)"
    )
    if not callable(hyper_at):
        raise TorchgdError(f"hyper_at must be {how}; got {hyper_at!r}")
    try:
        first = hyper_at(1, 1, hp)
    except Exception as exc:  # the user's code: one line, whatever it raised
        raise TorchgdError(f"hyper_at failed at step 1: {type(exc).__name__}: {exc}") from None
    if type(first) is not type(hp):
        raise TorchgdError(f"hyper_at must be {how}; at step 1 it gave {first!r}")
    return getattr(hyper_at, "__qualname__", type(hyper_at).__name__)


def of_plan(hyper_at, scheduler, every, hp, spelling: str, config: dict, batching=(None, None)):
    """The run's hook: the user's ``hyper_at`` (tried once), or one made from ``scheduler``;
    ``config`` records which (a function's name; a scheduler's spec, which rebuilds it). With
    the hook, the ``hp`` the paths start from: a scheduler that cycles momentum sets it before
    the first step, as torch's does on construction (SGD then keeps a momentum buffer)."""
    config["hyper_at"] = _check_hook(hyper_at, hp)
    if every is not None and scheduler is None:
        raise TorchgdError("--scheduler-every steps a scheduler: give one with --scheduler")
    if scheduler is not None:
        every = every or "epoch"
        sched, dataset = batching  # the run's batches: the scheduler steps of an epoch
        per_epoch = sched.steps_per_epoch(len(dataset)) if dataset is not None else 1
        units = config["epochs"] * (per_epoch if every == "step" else 1)
        hyper_at = _scheduled(scheduler, every, hp, spelling, hyper_at, units)
        config.update(scheduler=hyper_at.spec, scheduler_every=every)
        if hyper_at.cycles:
            hp = with_momentum(hp, hyper_at.schedule.momentum_at(0))
    return hyper_at, hp


def against_the_limit(plan) -> str | None:
    """For a scheduled run the theory covers (linear least squares, SGD): whether and where
    the scheduled lr crosses the critical lr, said before training, in words; None where the
    theory has no limit to say."""
    from . import theory

    hook = plan.hyper_at
    if not isinstance(hook, Scheduled) or plan.dataset is None or hook.cycles:
        return None  # (the theory does not cover momentum)
    t = theory.analyse(plan.config, plan.dataset, plan.batching)
    if t is None or t.critical_lr is None:
        return None
    per_epoch = plan.batching.steps_per_epoch(len(plan.dataset))
    units = plan.epochs if hook.every == "epoch" else plan.epochs * per_epoch
    lrs = [hook.schedule.lr_at(k) for k in range(units)]
    top = max(range(units), key=lambda k: lrs[k])
    name, limit = hook.schedule.module.TORCH_CLASS, t.critical_lr

    def where(k: int) -> str:
        return f"epoch {k + 1}" if hook.every == "epoch" else f"step {k + 1}"

    peak = f"{name} peaks at lr {lrs[top]:.4g} ({where(top)})"
    if lrs[top] < limit:
        return f"{peak}, below the limit ({t.describe()}): it stays stable throughout"
    first = next(k for k in range(units) if lrs[k] >= limit)
    return (
        f"{peak}, above the limit ({t.describe()}): it reaches the limit at {where(first)} "
        f"(lr {lrs[first]:.4g}); from there the theory says any error grows instead of "
        f"shrinking, so the run diverges after it unless its error is exactly 0 by then; "
        f"{_lower(hook, units, limit)}"
    )


def _lower(hook, units: int, limit: float) -> str:
    """What keeps a schedule's peak below ``limit``: a lower base lr where the schedule scales
    with it, else its own options (eta_min is an lr of its own)."""
    from . import schedulers

    s = hook.schedule
    spelling = "torch-exact" if s.exact else "textbook"
    half = schedulers.make(s.module, s.options, s.base / 2, spelling)  # halving is exact
    peak = max(s.lr_at(k) for k in range(units))
    if max(half.lr_at(k) for k in range(units)) == peak / 2:  # the lr scales with the base
        return f"--lr below {s.base * limit / peak:.4g} keeps this {s.module.TORCH_CLASS} below it"
    peak = getattr(s.module, "PEAK", None)
    lower = f"{peak} below {limit:.4g}" if peak else "them (eta_min, for one) below the limit too"
    return f"its options set part of the lr whatever --lr is ({hook.spec}): lower {lower}"
