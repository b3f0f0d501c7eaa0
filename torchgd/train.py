"""fit(): the lockstep loop, nothing else.

Every step, every selected path steps on the same batch; each step's record (parameters,
gradients, and the analytic formula evaluated at each autograd path's own parameters) goes to
``explain.Agreement``, which compares them block by block and reports at the end. Callbacks see
each step and each epoch as it happens.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from . import compare, explain, memory, options, problems, rules, schedules
from . import data as datasets
from . import guard as guards
from .device import dtype_name, resolve_device, resolve_dtype
from .errors import TorchgdError
from .paths import PATHS, ManualPath, feed

PATH_NAMES = tuple(PATHS)
SHADOW_MAX_VALUES = 1_000_000  # float32 runs step a float64 shadow by default up to this size


class Record(NamedTuple):
    """One finished step as Python floats (exact for float32 and float64), paths in order."""

    step: int
    epoch: int
    losses: list  # per path: the loss on the batch before the update
    params: list  # per path, D entries each: the parameters after the update
    grads: list  # per path, D entries each: the gradient used
    refs: list  # per autograd path, D entries each: the analytic formula at its parameters
    ref64: list | None  # float32 runs: the float64 manual path's parameters
    bounds: list | None = None  # per autograd path, D entries: formula~autograd rounding bound
    bufs: list | None = None  # with momentum, per path, D entries: the buffers after the step


def _floats(tensors) -> list:
    """Values of tensors as one flat list of Python floats; one small call per tensor."""
    out = []
    for t in tensors:
        v = t.detach().reshape(-1).tolist() if t.dim() > 1 else t.detach().tolist()
        if isinstance(v, list):
            out.extend(v)
        else:
            out.append(v)
    return out


@dataclass
class Step:
    """What callbacks get after each step: per path the loss before the update, the gradient
    used and the parameters after it."""

    step: int
    epoch: int
    losses: dict
    grads: dict
    params: dict
    refs: dict  # the analytic formula at each autograd path's parameters before the step
    record: Record  # the same numbers as Python floats, in path order


@dataclass
class Epoch:
    """What callbacks get after each epoch: per path the epoch's loss (see ``fit``) and params."""

    epoch: int
    step: int
    losses: dict
    params: dict


@dataclass
class Result:
    config: dict
    status: str
    paths: dict
    agreement: dict
    steps: int
    epochs: int
    seconds: float
    problem: object = field(repr=False, default=None)
    diverged: dict | None = None  # epoch, path, reason, last finite loss, critical/suggested lr

    def params(self, path: str | None = None) -> dict:
        return self.paths[path or next(iter(self.paths))]["params"]

    def to_json(self) -> dict:
        extra = {"diverged": self.diverged} if self.diverged else {}
        return {
            **extra,
            "config": self.config,
            "status": self.status,
            "steps": self.steps,
            "epochs": self.epochs,
            "paths": self.paths,
            "agreement": self.agreement,
        }

    def __repr__(self) -> str:
        """One short line: status, problem and settings, the first path's parameters, and how
        far apart the paths ended (``to_json()`` has everything)."""

        def g(v):
            if isinstance(v, list):
                return f"[{len(v)} values]" if len(v) > 3 else f"[{', '.join(map(g, v))}]"
            return "nan" if v is None else f"{v:.6g}"

        c = self.config
        has_data = c.get("data") is not None
        where = f", {c['data']} data, {c['schedule']}" if has_data else ""
        text = f"{self.status}: {c['problem']}{where}, lr={g(c['lr'])}, {self.epochs} "
        text += "epochs" if has_data else "steps"
        if self.paths:
            first = next(iter(self.paths))
            params = self.paths[first]["params"]
            if len(params) == 1 and isinstance(next(iter(params.values())), float):
                values = ", ".join(f"{k}={v!r}" for k, v in params.items())  # w=2 would hide
            else:  # 1.9999999999999998; several values: 6 digits keep the line short
                values = ", ".join(f"{k}={g(v)}" for k, v in params.items())
            text += f"; {first}: {values}"
        ulp = self.agreement.get("max_ulp")
        if len(self.paths) > 1 and ulp is not None:
            text += f"; {len(self.paths)} paths " + (
                "agree bit for bit" if ulp == 0 else f"at most {ulp} ulp apart"
            )
        return f"Result({text})"


def _noise(config: dict, step: int, params0: dict) -> dict:
    """Gaussian noise for one step, the same for every path: seeded by (seed, step)."""
    g = torch.Generator().manual_seed(schedules.mix_seed(config["seed"], step, salt=1))
    return {
        n: (config["noise"] * torch.randn(t.shape, generator=g, dtype=torch.float64)).to(
            t.device, t.dtype
        )
        for n, t in params0.items()
    }


HISTORY_MAX = 10_000


def history_epochs(done: int, mode: str = "auto") -> list[int] | None:
    """The epochs a history keeps: all (None) up to ``HISTORY_MAX`` + 1 epochs or with
    ``mode`` "all"; beyond, ``HISTORY_MAX`` + 1 evenly spaced epochs from the first to the
    last (a 700,000-epoch run's summary stays a few hundred kilobytes per series)."""
    if mode == "all" or done <= HISTORY_MAX + 1:
        return None
    return [1 + round(i * (done - 1) / HISTORY_MAX) for i in range(HISTORY_MAX + 1)]


def _bounds(paths, refs: list, grads: list, x, y, n) -> list | None:
    """Each autograd path's rounding bound on formula~autograd at this step, if it has one.

    ``refs`` and ``grads``: the formula's values A and those paths' gradients G, D each; ``x``,
    ``y``: the step's batch of ``n`` rows (this process's part of it). The bound costs one
    more pass over the batch, as much as the step itself on big data, so for data problems it
    is computed only where a cheap test cannot settle the question: where A = G exactly, NaN
    stands for it (a difference of 0 needs no bound); where ``|A - G| <= L = 2 (N+4) u |A|``
    the step is within the bound already, because the bound is at least ``2 gamma S/N`` and
    ``S/N >= |A| / (1 + gamma)`` (S = sum |t_n|, gamma = gamma_(N+4), the error model of
    ``Linear.grad_bound``), and ``gamma / (1 + gamma) = (N+4) u``; L, a lower estimate of the
    bound, then stands for it (the ratio reported is an upper estimate)."""
    if not paths or getattr(paths[0].problem, "grad_bound", None) is None:
        return None
    lazy = getattr(paths[0].problem, "needs_data", False)  # a function's bound costs nothing
    d = len(refs) // len(paths)
    u = torch.finfo(next(iter(paths[0].params.values())).dtype).eps / 2
    k = (n + 4) * u  # gamma_(N+4) / (1 + gamma_(N+4)), where gamma is defined (k < 1)
    out = []
    for q, path in enumerate(paths):
        a, g = refs[q * d : (q + 1) * d], grads[q * d : (q + 1) * d]
        if lazy and a == g:
            out += [math.nan] * d
            continue
        if lazy and k < 1:
            low = [2 * k * abs(v) for v in a]
            if all(abs(v - w) <= lo for v, w, lo in zip(a, g, low)):
                out += low
                continue
        bound = path.formula_bound(x, y, n)
        if bound is None:
            return None
        out += _floats(bound.values())
    return out


def divergence_message(info: dict, lr: float) -> str:
    """The one line a diverged run ends with (see ``torchgd.guard``)."""
    from .guard import message

    return message(info, lr)


def parse_paths(paths) -> tuple[str, ...]:
    names = (
        [p.strip() for p in paths.split(",") if p.strip()]
        if isinstance(paths, str)
        else list(paths)
    )
    bad = [p for p in names if p not in PATHS]
    if not names or bad or len(set(names)) != len(names):
        what = f"unknown path '{bad[0]}'" if bad else "paths must be a non-empty list, no repeats"
        raise TorchgdError(f"{what}: choose from {', '.join(PATHS)} (e.g. --paths manual,optim)")
    return tuple(names)


def initial_params(problem, init: dict | None, device, dtype, dataset=None) -> dict:
    start = problem.start_for(dataset) if hasattr(problem, "start_for") else dict(problem.start)
    for name, value in (init or {}).items():
        if name not in start:
            raise TorchgdError(
                f"--init names '{name}', but problem '{problem.name}' has parameters "
                f"{', '.join(problem.param_names)}"
            )
        # one number starts every entry of a vector parameter
        if isinstance(start[name], list) and isinstance(value, (int, float)):
            value = [value] * len(start[name])
        start[name] = value
    for name, value in start.items():
        if not all(math.isfinite(v) for v in torch.as_tensor(value).reshape(-1).tolist()):
            raise TorchgdError(f"--init {name} must be finite, got {value}")
    return {n: torch.as_tensor(v, dtype=dtype).to(device) for n, v in start.items()}


def _values(t: torch.Tensor):
    return t.tolist()


@dataclass
class Plan:
    """A validated run: everything ``execute`` needs, checked before anything is written."""

    problem: object
    dataset: object
    schedule: schedules.Schedule
    names: tuple
    hp: rules.SGD
    rule: str
    epochs: int
    params0: dict
    device: torch.device
    dtype: torch.dtype
    config: dict
    fused: object = None  # --compile: the manual path's kernel for big batches (torchgd.fused)


def plan(
    problem="linear",
    data="lecture",
    *,
    schedule="batch",
    shuffle=None,
    seed=0,
    lr=0.01,
    epochs=100,
    init=None,
    paths=PATH_NAMES,
    device="cpu",
    dtype="float64",
    rule="textbook",
    momentum=0.0,
    dampening=0.0,
    weight_decay=0.0,
    nesterov=False,
    maximize=False,
    noise=0.0,
    guard=True,
    patience=5,
    bias=False,
    shadow=None,
    compile=False,
    rows=None,
    history="auto",
) -> Plan:
    """Check every argument and resolve names to objects; raises TorchgdError on bad input.

    ``noise``: standard deviation of Gaussian noise added to every path's gradient (the same
    draw for every path, seeded by ``(seed, step)``). ``guard``: stop with status ``diverged``
    on a non-finite loss or parameter, or a loss that grew ``patience`` epochs in a row.
    ``shadow``: for float32 runs, also step a float64 manual path on the same data and report
    the distance to it; None (auto) does so for data of at most ``SHADOW_MAX_VALUES`` values.
    ``compile``: the manual path sums a batch bigger than one chunk with one kernel compiled by
    ``torch.compile`` (see ``torchgd.fused``); compiled here, before anything is written.
    ``history``: "auto" keeps every epoch in the result's histories up to 10,001 epochs and
    10,001 evenly spaced ones beyond (listed in ``history["epoch"]``); "all" keeps every one.
    ``rows``: a function of N giving the rows ``(lo, hi)`` this process keeps (a rank of a
    ``--distributed`` run other than 0: it works on those rows only, see ``torchgd.distributed``).
    """
    spec_name = problem if isinstance(problem, str) else None
    problem = problems.get(problem) if isinstance(problem, str) else problem
    device, dtype = resolve_device(device), resolve_dtype(dtype)
    sched = (
        schedule
        if isinstance(schedule, schedules.Schedule)
        else schedules.parse(schedule, shuffle=shuffle, seed=seed)
    )
    names = parse_paths(paths)
    options.check_rule(rule)
    options.check_epochs(epochs)
    options.check_guard(noise, patience)
    hp = rules.SGD(
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
        maximize=maximize,
    )
    dataset = None
    if problem.needs_data:
        dataset = datasets.get(data, dtype, rows) if isinstance(data, str) else data
    if bias:
        if problem.name != "linear":
            raise TorchgdError("--bias applies to the linear model only")
        problem = problems.Linear(bias=True)
    if dataset is not None and dataset.x.dim() == 2 and not getattr(problem, "start_for", None):
        raise TorchgdError(
            f"problem '{problem.name}' takes one feature; the data has {dataset.x.shape[1]}"
        )
    params0 = initial_params(problem, init, device, dtype, dataset)
    config = {
        "problem": problem.name,
        "data": dataset.name if dataset else None,
        "schedule": sched.spec,
        "shuffle": sched.shuffled,
        "seed": sched.seed,
        "lr": lr,
        "epochs": epochs,
        "init": {n: _values(t) for n, t in params0.items()},
        "paths": list(names),
        "rule": rule,
        "device": str(device),
        "dtype": dtype_name(dtype),
        **{k: v for k, v in hp.asdict().items() if k != "lr"},
    }
    if dataset is not None and dataset.meta:
        config["data_meta"] = dataset.meta
    if shadow is None:
        per_row = dataset.x.shape[1] + 1 if dataset is not None and dataset.x.dim() == 2 else 2
        size = per_row * dataset.n if dataset is not None else 1  # the whole data, on every rank
        shadow = dtype != torch.float64 and size <= SHADOW_MAX_VALUES
    config.update(noise=noise, guard=guard, patience=patience, bias=bias, shadow=bool(shadow))
    config["compile"] = bool(compile)
    if history not in ("auto", "all"):
        raise TorchgdError(f"--history must be auto or all, got '{history}'")
    config["history"] = history
    if spec_name is not None and spec_name != problem.name:
        config["problem_spec"] = _absolute(spec_name)  # a user's FILE.py:NAME, to rebuild the run
    fused = _compile(problem, names, dataset, sched, params0, device) if compile else None
    return Plan(
        problem, dataset, sched, names, hp, rule, epochs, params0, device, dtype, config, fused
    )


def _compile(problem, names, dataset, sched, params0, device):
    """The fused kernel for ``--compile``, compiled for the run's biggest batch; None when
    every batch fits one chunk (those run the lecture's expressions: nothing to fuse)."""
    from . import fused

    fused.check(problem)
    if "manual" not in names:
        raise TorchgdError("--compile fuses the manual path's sums; add manual to --paths")
    a, b = sched.slices(dataset.n)[0]  # the first batch is the biggest
    if b - a <= problem.chunk_rows:  # decided on the whole batch: the same on every rank
        return None
    x, y = dataset.x[: b - a], dataset.y[: b - a]  # rows like the run's (this rank's, if a rank)
    if len(y) == 0:
        x, y = torch.zeros((1, *x.shape[1:]), dtype=x.dtype), torch.zeros(1, dtype=y.dtype)
    return fused.Kernel().prepare(params0, x.to(device), y.to(device))


PLAN_KEYS = (
    "schedule",
    "shuffle",
    "seed",
    "lr",
    "epochs",
    "init",
    "paths",
    "device",
    "dtype",
    "rule",
    "momentum",
    "dampening",
    "weight_decay",
    "nesterov",
    "maximize",
    "noise",
    "guard",
    "patience",
    "bias",
)
OPTIONAL_KEYS = {
    "shadow": None,
    "compile": False,
    "history": "auto",
}  # absent from older runs' configs


def plan_from_config(config: dict, rows=None) -> Plan:
    """Rebuild the plan a run was made from, from its ``config.json`` (``rows``: see ``plan``)."""
    try:
        kwargs = {k: config[k] for k in PLAN_KEYS}
        kwargs.update({k: config.get(k, v) for k, v in OPTIONAL_KEYS.items()})
        problem = config.get("problem_spec", config["problem"])
        data = config["data"]
        file = (config.get("data_meta") or {}).get("file")  # absolute: works from anywhere
    except (KeyError, TypeError, AttributeError) as exc:
        raise TorchgdError(
            f"the run's config.json lacks {exc}; it was not written by torchgd train"
        ) from None
    rebuilt = plan(problem, file or (data if data is not None else "lecture"), rows=rows, **kwargs)
    rebuilt.config["data"] = data  # as the user gave it
    return rebuilt


def _absolute(spec: str) -> str:
    """``FILE.py:NAME`` with FILE made absolute, so the run can be rebuilt (``--resume``,
    ``plot --run``) from any directory; ``package.module:NAME`` as it is."""
    where, _, attr = spec.rpartition(":")
    if not where.endswith(".py"):
        return spec
    from pathlib import Path

    return f"{Path(where).resolve()}:{attr}"


def fit(problem="linear", data="lecture", *, callbacks=(), **options) -> Result:
    """Run the selected paths in lockstep and compare them at every step.

    ``options`` are those of ``plan``: schedule, shuffle, seed, lr, epochs, init, paths, device,
    dtype, rule and the SGD options. The epoch's ``loss`` is what the lecture prints: for
    ``batch`` (and data-free problems) the cost over the batch before the update; for ``sgd`` and
    ``minibatch`` the loss of the epoch's last batch after its update, as the lecture's SGD code
    computes it.
    """
    return execute(plan(problem, data, **options), callbacks)


def execute(
    p: Plan, callbacks=(), *, resume: dict | None = None, checkpoint=None, group=None
) -> Result:
    """The lockstep loop over a validated plan; every callback is closed on every exit.

    ``resume``: a checkpoint's state to continue from. ``checkpoint``: a ``Checkpointer`` that
    saves every K epochs and when the run is interrupted. Ctrl-C (SIGINT) stops the run cleanly
    after the current step: status ``interrupted``, everything up to that step kept.
    ``group``: a ``torchgd.distributed.Group``; this process then works on its shard of every
    batch and the ranks add up their sums before each update (see ``torchgd.distributed``).
    """
    stop = _StopFlag()
    try:
        with stop:
            return _execute(p, callbacks, resume, checkpoint, stop, group)
    finally:
        for cb in callbacks:
            cb.close()


class _StopFlag:
    """Turns the first SIGINT or SIGTERM into a request to stop after the current step (main
    thread only); a second one interrupts at once. SIGTERM too, because that is how torchrun
    passes a Ctrl-C on to its workers, and how schedulers ask a job to stop."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.requested = False
        self._old: dict = {}

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)


class Checkpointer:
    """Saves the run's state to ``run_dir/checkpoint.pt`` every ``every`` epochs (0: only when
    interrupted)."""

    def __init__(self, run_dir, every: int = 0):
        from pathlib import Path

        self.path = Path(run_dir) / "checkpoint.pt"
        self.every = every

    def save(self, state: dict, callbacks=()) -> None:
        """Flush what the callbacks hold (event files), then write the checkpoint: a resumed
        run starts after the checkpoint's step, so everything up to it must be on disk."""
        from . import checkpoints

        for cb in callbacks:
            if hasattr(cb, "flush"):
                cb.flush()
        checkpoints.save(self.path, state)


def _execute(p: Plan, callbacks, resume, checkpointer, stop, group) -> Result:
    the_plan = p  # ``p`` names a path in the loops below
    problem, dataset, sched, names, hp, rule, epochs, params0, device, dtype, config = (
        p.problem,
        p.dataset,
        p.schedule,
        p.names,
        p.hp,
        p.rule,
        p.epochs,
        p.params0,
        p.device,
        p.dtype,
        p.config,
    )
    run_paths = {n: PATHS[n](problem, params0, hp, rule) for n in names}
    if p.fused is not None:
        run_paths["manual"].fused = p.fused
    # float32 runs can also step a float64 manual path on the same data, so the report can say
    # what float32 costs (``shadow``; by default only for small data: it doubles the work)
    reference = None
    if dtype != torch.float64 and config.get("shadow"):
        reference = ManualPath(problem, {n: t.double() for n, t in params0.items()}, hp, rule)
    x = y = None
    if dataset is not None:
        data = dataset.to(device, dtype)
        x, y = data.x, data.y
    n = dataset.n if dataset is not None else 1  # the whole data's size, on every rank
    slices = sched.slices(n) if dataset is not None else [None]
    if not problems.fits(problem, y):
        memory.keep_freed_memory()  # chunk buffers are reused, not faulted in afresh
    if x is None:
        group = None  # data-free problems: every rank computes the same thing anyway
    shard = group.shard(n) if group is not None else None
    if dataset is not None and dataset.total is not None:  # this process holds part of the data
        held = (dataset.offset, dataset.offset + len(dataset))
        if shard != held:
            raise TorchgdError(
                f"this plan holds rows {held[0]} to {held[1]} of {n}, but this process works on "
                f"{'all of them' if shard is None else f'rows {shard[0]} to {shard[1]}'}"
            )
    every = [*run_paths.values(), *([reference] if reference is not None else [])]

    labels = compare.labels_for(params0)
    grad_checked = [p for p in names if run_paths[p].uses_autograd]
    tracker = explain.Agreement(  # every finished step's Record goes in; bounded memory
        problem=problem,
        names=names,
        paths=run_paths,
        dtype=dtype,
        hp=hp,
        labels=labels,
        params0=compare.flat(params0),
        grad_checked=grad_checked,
        batch_sizes=sorted({b - a for a, b in (slices[0], slices[-1])}) if x is not None else [1],
    )
    history = {p: {"loss": [], **{k: [] for k in params0}} for p in names}
    stochastic = dataset is not None and sched.kind != "batch"
    watch = guards.Guard(config["patience"], len(names), stochastic or bool(config["noise"]))
    diverged = None
    if config["guard"] and stochastic and resume is None:  # the cost before the first step
        c0 = _batch_loss(problem, params0, x, y, n, group)
        watch.begin(c0.expand(len(names)))
    step, start_epoch, start_batch = 0, 1, 0
    if resume is not None:
        step, start_epoch, start_batch = (resume["position"][k] for k in ("step", "epoch", "batch"))
        for name, path in run_paths.items():
            path.load_state_dict(resume["paths"][name])
        if reference is not None:
            reference.load_state_dict(resume["reference"])
        if "agreement" in resume:
            tracker.load_state_dict(resume["agreement"])
        for r in resume.get("records", ()):  # a checkpoint from before the running summary
            tracker.add(Record(*r))
        history = resume["history"]
        watch.load_state_dict(resume["guard"])

    def state(epoch: int, batch: int) -> dict:
        return {
            "position": {"step": step, "epoch": epoch, "batch": batch},
            "config": config,
            "paths": {name: path.state_dict() for name, path in run_paths.items()},
            "reference": reference.state_dict() if reference is not None else None,
            "agreement": tracker.state_dict(),
            "history": history,
            "guard": watch.state_dict(),
            "callbacks": {
                type(cb).__name__: cb.state_dict() for cb in callbacks if hasattr(cb, "state_dict")
            },
        }

    for cb in callbacks:
        cb.on_start(config, run_paths)
        if resume is not None and hasattr(cb, "resume"):
            cb.resume(resume.get("callbacks", {}).get(type(cb).__name__), step)

    status, epoch, started = "completed", start_epoch, time.perf_counter()
    try:
        for epoch in range(start_epoch, epochs + 1):
            order = sched.order(n, epoch) if dataset is not None else None
            order = order.to(device) if order is not None else None
            first = start_batch if epoch == start_epoch else 0
            for j in range(first, len(slices)):
                xb, yb = _batch(
                    x, y, slices[j], order, shard, dataset.offset if x is not None else 0
                )
                nb = 1 if yb is None else slices[j][1] - slices[j][0]  # the whole batch's size
                whole = problems.fits(problem, yb) and shard is None
                feed(every, problem, xb, yb, nb, whole, double=reference)
                if shard is not None:  # add up every rank's sums: then all update alike
                    for path in every:
                        path.all_reduce(group)
                    stop.requested = group.any(stop.requested)
                # the analytic formula at each autograd path's parameters before its update
                refs = [run_paths[p].formula() for p in grad_checked]
                noise = _noise(config, step + 1, params0) if config["noise"] else None
                out = {p: run_paths[p].update(noise) for p in names}
                ref64 = None
                if reference is not None:
                    reference.update()
                    ref64 = _floats(reference.params.values())
                step += 1
                refs_f = _floats(t for r in refs for t in r.values())
                record = Record(
                    step,
                    epoch,
                    _floats(out[p][0] for p in names),
                    _floats(t for p in names for t in run_paths[p].params.values()),
                    _floats(t for p in names for t in out[p][1].values()),
                    refs_f,
                    ref64,
                    _bounds(
                        [run_paths[p] for p in grad_checked],
                        refs_f,
                        _floats(t for p in grad_checked for t in out[p][1].values()),
                        xb,
                        yb,
                        nb,
                    ),
                    _floats(t for p in names for t in run_paths[p].buffers().values())
                    if hp.momentum
                    else None,
                )
                tracker.add(record)
                if callbacks:
                    info = Step(
                        step,
                        epoch,
                        {p: out[p][0] for p in names},
                        {p: out[p][1] for p in names},
                        {p: run_paths[p].values() for p in names},
                        dict(zip(grad_checked, refs)),
                        record,
                    )
                    for cb in callbacks:
                        cb.on_step(info)
                if stop.requested and j + 1 < len(slices):
                    raise _Stop(epoch, j + 1)  # mid-epoch: a resumed run starts at batch j + 1
            losses = {}
            for p in names:
                if sched.kind == "batch" or dataset is None:
                    losses[p] = out[p][0]
                else:
                    losses[p] = _batch_loss(problem, run_paths[p].values(), xb, yb, nb, group)
                history[p]["loss"].append(losses[p].item())
                for k, t in run_paths[p].values().items():
                    history[p][k].append(_values(t))
            info = Epoch(epoch, step, losses, {p: run_paths[p].values() for p in names})
            for cb in callbacks:
                cb.on_epoch(info)
            if config["guard"]:
                diverged = _watch(watch, the_plan, info.params, losses, x, y, n, group, epoch)
                if diverged:
                    status = "diverged"
                    break
            if checkpointer is not None and checkpointer.every and epoch % checkpointer.every == 0:
                checkpointer.save(state(epoch + 1, 0), callbacks)
            if stop.requested:
                raise _Stop(epoch + 1, 0)
    except _Stop as at:  # a clean stop between steps: everything is consistent, save it
        status = "interrupted"
        if checkpointer is not None:
            checkpointer.save(state(at.epoch, at.batch), callbacks)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, keep what is complete
        status = "interrupted"
    seconds = time.perf_counter() - started

    done = len(history[names[0]]["loss"])
    keep = tracker.steps
    out_paths = {}
    kept = history_epochs(done, config.get("history", "auto"))
    for p in names:
        hist = {"loss": list(history[p]["loss"])}
        for k in params0:
            hist[k] = list(history[p][k])
        if kept is not None:
            hist = {k: [v[e - 1] for e in kept] for k, v in hist.items()}
            hist["epoch"] = kept
        out_paths[p] = {
            "params": {k: _values(t) for k, t in run_paths[p].values().items()},
            "loss": hist["loss"][-1] if done else None,
            "history": hist,
        }
    agreement = tracker.report()
    if group is not None:  # every rank must have ended with the same parameters, bit for bit
        mine = torch.cat([compare.flat(path.values()) for path in run_paths.values()])
        agreement["ranks"] = {
            **group.info(),
            "identical_parameters": group.identical(mine),
            "rows_held": group.gather(len(y)),  # rank 0 holds all rows, the others their shard
        }
    result = Result(config, status, out_paths, agreement, keep, done, seconds, problem, diverged)
    for cb in callbacks:
        cb.on_end(result)
    return result


def _watch(watch, p: Plan, params: dict, losses: dict, x, y, n, group, epoch) -> dict | None:
    """The guard's verdict on one epoch, judged on the cost over all data: for ``batch`` the
    epoch's loss (the cost before its update), else one more pass over the data per path."""
    names = list(params)
    if p.dataset is None or p.schedule.kind == "batch":
        costs = [losses[q] for q in names]
    else:
        costs = [_batch_loss(p.problem, params[q], x, y, n, group) for q in names]
    finite = [all(bool(torch.isfinite(t).all()) for t in params[q].values()) for q in names]
    bad, grew = watch.update(torch.stack([c.double().cpu() for c in costs]), finite)
    for i, name in enumerate(names):
        if bad[i] or grew[i]:
            info = {
                "epoch": epoch,
                "path": name,
                "reason": watch.reason(i, bool(bad[i])),
                "last_finite_loss": watch.last_finite[i].item(),
            }
            return _advice(p, info)
    return None


def _advice(p: Plan, info: dict) -> dict:
    """The theory's advice on a diverged run, from the whole data: a rank that holds only its
    shard gives none (rank 0, which holds everything, gives it)."""
    if p.dataset is not None and p.dataset.total is not None:
        return info
    return guards.advice(p.config, p.dataset, p.schedule, info)


def _batch(x, y, bounds, order, shard=None, offset=0):
    """The samples of one step: rows ``bounds`` of the data, or of the epoch's permutation
    ``order`` (gathered with ``index_select``: no shuffled copy of the whole data); with a
    ``shard`` ``(lo, hi)``, only those of them in rows lo to hi (possibly none). ``x`` and ``y``
    hold the data's rows from ``offset`` on (a rank that keeps only its shard)."""
    if bounds is None:
        return None, None
    a, b = bounds
    if order is None:
        if shard is not None:
            a = max(a, shard[0])
            b = max(a, min(b, shard[1]))
        return x[a - offset : b - offset], y[a - offset : b - offset]
    rows = order[a:b]
    if shard is not None:
        rows = rows[(rows >= shard[0]) & (rows < shard[1])]
    rows = rows - offset if offset else rows
    return x.index_select(0, rows), y.index_select(0, rows)


@torch.no_grad()
def _batch_loss(problem, params, x, y, n, group):
    """The loss on a batch: the lecture's expression, or chunk by chunk for a big batch (no
    batch-sized temporaries); with several ranks, each adds its part and they add up the sums."""
    if group is None and problems.fits(problem, y):
        return problem.loss(params, x, y)
    total = torch.zeros((), dtype=y.dtype, device=y.device)
    for xc, yc in problems.chunks(problem, x, y):
        total += problem.sums(params, xc, yc)[0]
    if group is not None:
        group.sum_([total])
    return total / n


class _Stop(Exception):
    """Ctrl-C was pressed: stop here; a resumed run starts at (epoch, batch)."""

    def __init__(self, epoch: int, batch: int):
        super().__init__(epoch, batch)
        self.epoch, self.batch = epoch, batch
