"""Plan + plan(): every argument checked and resolved before anything is written.

A ``Plan`` is a run that can start: the problem and its data, the batching, the paths, the
rule's hyperparameters, the starting point, device and dtype, and the ``config`` that
``config.json`` records (``plan_from_config`` rebuilds the plan from it, for ``--resume`` and
``plot --run``).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, fields, replace

import torch

from . import data as datasets
from . import hooks, interfaces, options, problems, rules, runconfig
from .batching import Batching, parse_batching
from .device import dtype_name, resolve_device, resolve_dtype
from .errors import TorchgdError, failure  # noqa: F401  (planning.failure, as before)
from .paths import PATHS
from .userfiles import changed_files, file_hashes  # noqa: F401  (planning.changed_files, as before)

PATH_NAMES = runconfig.PATH_NAMES  # = tuple(PATHS)
SHADOW_MAX_VALUES = 1_000_000  # float32 runs step a float64 shadow by default up to this size


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


def initial_params(problem, init: dict | str | None, device, dtype, dataset=None) -> dict:
    """The start: the problem's own, with ``init`` (``{"w": 1.0}`` or ``"w=1.0,b=0"``) over it."""
    start = problem.start_for(dataset) if hasattr(problem, "start_for") else dict(problem.start)
    if isinstance(init, str):
        init = options.init_point(init)
    if init is not None and not isinstance(init, dict):
        raise TorchgdError(f"init must be a dict such as {{'w': 1.0}} or 'w=1.0'; got {init!r}")
    for name, value in (init or {}).items():
        if not isinstance(value, int | float | list | tuple) and not torch.is_tensor(value):
            raise TorchgdError(f"--init {name} must be a number, got {value!r}")
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
    batching: Batching  # which samples each step sees
    names: tuple
    hp: object  # the rule's hyperparameters (its ``Hyper``, e.g. ``rules.sgd.Hyper``)
    spelling: str  # of the hand-written rule: textbook or torch-exact
    epochs: int
    params0: dict
    device: torch.device
    dtype: torch.dtype
    config: dict
    fused: object = None  # --compile: the manual path's kernel for big batches (torchgd.fused)
    hyper_at: object = None  # hyperparameters that change: hp of (step, epoch, hp); see plan


def plan(problem="linear", data=None, *, rows=None, **hyper) -> Plan:
    """Check every argument and resolve names to objects; raises TorchgdError on bad input.

    ``problem``: a name of ``torchgd.problems.PROBLEMS``, a user's ``FILE.py:NAME`` or a
    problem object; ``data``: a name, a file, ``(x, y)`` or a Dataset (None: the lecture's,
    for a problem that takes data). The run options, as keywords (``torchgd.runconfig``):

    {options}

    Every other keyword is an option of the rule (``optimizer``). ``rows``: a function of N
    giving the rows ``(lo, hi)`` this process keeps (a rank of a ``--distributed`` run other
    than 0: it works on those rows only, see ``torchgd.distributed``).
    """
    o, hyper = runconfig.split(hyper)
    spec_name = problem if isinstance(problem, str) else None
    problem = problems.get(problem) if isinstance(problem, str) else problem
    problem = interfaces.as_problem(problem, f"'{spec_name}'" if spec_name else "the problem")
    device, dtype = resolve_device(o.device), resolve_dtype(o.dtype)
    batches = o.batching
    batches = (
        batches if isinstance(batches, Batching) else parse_batching(batches, o.shuffle, o.seed)
    )
    names = parse_paths(o.paths)
    options.check_run(o.spelling, o.epochs, o.noise, o.patience, o.history)
    hp = hyperparameters(o.optimizer, o.lr, hyper, o.noise)
    problem, dataset = _problem_and_data(problem, data, o.bias, dtype, rows)
    params0 = initial_params(problem, o.init, device, dtype, dataset)
    _try_user_code(problem, params0, dataset, hp, o.spelling)
    shadow = _shadow(dataset, dtype) if o.shadow is None else bool(o.shadow)
    o = replace(o, shadow=shadow, compile=bool(o.compile))
    config = _config(problem, dataset, batches, names, hp, o, params0, device, dtype)
    if spec_name is not None and spec_name != problem.name:
        config["problem_spec"] = _absolute(spec_name)  # a user's FILE.py:NAME, to rebuild the run
    hyper_at, hp = hooks.of_plan(
        o.hyper_at, o.scheduler, o.scheduler_every, hp, o.spelling, config, (batches, dataset)
    )
    config["files"] = file_hashes(config)  # what --resume checks has not changed
    fused = _compile(problem, names, dataset, batches, params0, device) if o.compile else None
    return Plan(
        problem, dataset, batches, names, hp, o.spelling, o.epochs, params0, device, dtype, config,
        fused, hyper_at,
    )  # fmt: skip


plan.__signature__ = runconfig.signature(
    [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
     for n, d in (("problem", "linear"), ("data", None))],
    [inspect.Parameter("rows", inspect.Parameter.KEYWORD_ONLY, default=None),
     inspect.Parameter("hyper", inspect.Parameter.VAR_KEYWORD)],
)  # fmt: skip
plan.__doc__ = plan.__doc__.format(options=runconfig.describe())


def hyperparameters(optimizer: str, lr, hyper: dict, noise=0.0):
    """The rule's ``Hyper`` from ``lr`` (None: its default) and the other options, checked as
    torch checks them (``rules.hyper``); its ``TORCH_CLASS`` must be in ``torch.optim``; a
    rule that evaluates again within a step takes no gradient ``noise``."""
    import inspect

    hp = rules.hyper(optimizer, lr, hyper, words=inspect.signature(plan).parameters)
    rule = rules.of(hp)
    if not hasattr(torch.optim, str(rule.TORCH_CLASS)):
        raise TorchgdError(
            f"optimizer '{rule.NAME}' names TORCH_CLASS '{rule.TORCH_CLASS}', which torch.optim "
            "does not have (it should name the class the rule mirrors, e.g. 'Adam')"
        )
    rules.check_noise(hp, noise)
    return hp


def builtin_problem(problem) -> bool:
    """Whether the problem is one of torchgd's (not a user's own)."""
    return problem is problems.PROBLEMS.get(problem.name) or type(problem) is problems.Linear


def user_code(problem, hp) -> bool:
    """Whether the problem or the rule is a user's own (not one of torchgd's)."""
    return not builtin_problem(problem) or rules.of(hp) not in rules.ALL.values()


def _try_user_code(problem, params0, dataset, hp, spelling) -> None:
    """A user's problem or rule, tried once at the start on a few rows before anything is
    written: a missing start, a gradient with other names or shapes than the parameters, or
    code that raises is one line here, not a traceback in the middle of a run."""
    if not user_code(problem, hp):
        return
    grads = try_problem(problem, params0, dataset)
    algorithm = rules.of(hp)
    from .paths import make_optimizer

    leaf = [params0[problem.param_names[0]].clone().requires_grad_(True)]
    _call(
        f"torch.optim.{algorithm.TORCH_CLASS} with its options", make_optimizer, algorithm, leaf, hp
    )
    trial = {n: t.clone() for n, t in params0.items()}
    with torch.no_grad():
        state = _call(f"optimizer '{algorithm.NAME}': its init", algorithm.init, trial, hp)
        _call(
            f"optimizer '{algorithm.NAME}': its update",
            algorithm.update,
            trial,
            dict(grads),
            state,
            hp,
            spelling,
        )


def try_problem(problem, params0, dataset) -> dict:
    """A problem tried once at ``params0`` on a few rows of ``dataset``: its start covers every
    parameter, ``loss`` gives a number, ``grad`` a tensor of each parameter's shape, nothing
    raises; else one line (TorchgdError). Returns the gradient."""
    names = list(problem.param_names)
    if sorted(params0) != sorted(names):
        raise TorchgdError(
            f"problem '{problem.name}' has parameters {', '.join(names)} but its start gives "
            f"{', '.join(params0) or 'none'}"
        )
    x = y = None
    if dataset is not None:
        device = params0[names[0]].device
        x, y = dataset.x[:8].to(device), dataset.y[:8].to(device)
    with torch.no_grad():
        loss = _call(f"problem '{problem.name}': its loss", problem.loss, params0, x, y)
        grads = _call(f"problem '{problem.name}': its grad", problem.grad, params0, x, y)
    if not (torch.is_tensor(loss) and loss.numel() == 1 and loss.is_floating_point()):
        got = (
            f"a tensor of shape {tuple(loss.shape)} and dtype {loss.dtype}"
            if torch.is_tensor(loss)
            else type(loss).__name__
        )
        raise TorchgdError(
            f"problem '{problem.name}': loss must return a tensor of one floating-point value "
            f"(the cost); it returned {got}"
        )
    if not isinstance(grads, dict) or sorted(grads) != sorted(names):
        got = ", ".join(grads) if isinstance(grads, dict) else type(grads).__name__
        raise TorchgdError(
            f"problem '{problem.name}': grad must return a dict with {', '.join(names)}; "
            f"it returned {got}"
        )
    for n in names:
        try:
            shape = tuple(torch.as_tensor(grads[n]).shape)
        except (TypeError, ValueError, RuntimeError):
            shape = None
        if shape != tuple(params0[n].shape):
            got = f"shape {shape}" if shape is not None else f"a {type(grads[n]).__name__}"
            raise TorchgdError(
                f"problem '{problem.name}': grad's {n} is {got}, the parameter has shape "
                f"{tuple(params0[n].shape)}"
            )
    return grads


def _call(what: str, fn, *args):
    """``fn(*args)``, its exception as one line naming ``what`` and where in the user's file."""
    try:
        return fn(*args)
    except TorchgdError:
        raise
    except Exception as exc:
        raise TorchgdError(f"{what} raised {failure(exc)}") from exc


def _rule_spec(hp) -> str:
    """What the configuration records of the rule: its name, or a user's absolute spec."""
    rule = rules.of(hp)
    return getattr(rule, "spec", None) or rule.NAME


def _config(problem, dataset, batches, names, hp, o, params0, device, dtype) -> dict:
    """What ``config.json`` records of the run (``plan_from_config`` rebuilds it from there):
    the resolved options first, then every other run option that is set (``o``: the
    ``RunConfig``; a scheduler and ``hyper_at`` are recorded by ``hooks.of_plan``)."""
    config = {
        "problem": problem.name,
        "data": dataset.name if dataset else None,
        "batching": batches.spec,
        "shuffle": batches.shuffled,
        "seed": batches.seed,
        "lr": hp.lr,
        "epochs": o.epochs,
        "init": {n: _values(t) for n, t in params0.items()},
        "paths": list(names),
        "spelling": o.spelling,
        "device": str(device),
        "dtype": dtype_name(dtype),
        **{k: v for k, v in asdict(hp).items() if k != "lr"},
    }
    if dataset is not None and dataset.meta:
        config["data_meta"] = dataset.meta
    config["optimizer"] = _rule_spec(hp)
    for name, f in runconfig.FIELDS.items():
        value = getattr(o, name)
        recorded = f.metadata["record"] and f.metadata["required"] is not None
        if name not in config and recorded and value is not None:
            config[name] = value
    return config


def _problem_and_data(problem, data, bias, dtype, rows):
    """The problem (the linear model with a bias, for ``bias``) and its data, if it takes any."""
    dataset = None
    if problem.needs_data:
        data = "lecture" if data is None else data
        dataset = datasets.get(data, dtype, rows) if isinstance(data, str) else _given(data)
    elif data is not None:
        raise TorchgdError(
            f"problem '{problem.name}' is a function of its parameters and takes no data; "
            "--data is for the linear model and problems with data"
        )
    if bias:
        if problem.name != "linear":
            raise TorchgdError("--bias applies to the linear model only")
        problem = problems.Linear(bias=True)
    if dataset is not None and dataset.x.dim() == 2 and not getattr(problem, "start_for", None):
        raise TorchgdError(
            f"problem '{problem.name}' takes one feature; the data has {dataset.x.shape[1]}"
        )
    return problem, dataset


def _given(data):
    """Data given from Python: a Dataset, ``(x, y)`` (tensors, arrays or lists) or a dict with
    ``x`` and ``y``; anything else is one clear error."""
    if isinstance(data, datasets.Dataset):
        return data
    if isinstance(data, dict) and set(data) >= {"x", "y"}:
        return datasets.from_values(data["x"], data["y"])
    if isinstance(data, tuple | list) and len(data) == 2:
        try:
            return datasets.from_values(*data)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TorchgdError(f"data=(x, y) must hold numbers: {exc}") from None
    raise TorchgdError(
        "data must be a name or file ('lecture', 'course', 'synthetic:N', 'points.csv', ...), "
        f"(x, y) or {{'x': x, 'y': y}}; got {type(data).__name__}"
    )


def _shadow(dataset, dtype) -> bool:
    """Whether a float32 run steps a float64 shadow by default: for small data only."""
    per_row = dataset.x.shape[1] + 1 if dataset is not None and dataset.x.dim() == 2 else 2
    size = per_row * dataset.n if dataset is not None else 1  # the whole data, on every rank
    return dtype != torch.float64 and size <= SHADOW_MAX_VALUES


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


def plan_from_config(config: dict, rows=None) -> Plan:
    """Rebuild the plan a run was made from, from its ``config.json`` (``rows``: see ``plan``)."""
    try:
        kwargs = runconfig.recorded(config)
        Hyper = rules.get(kwargs["optimizer"]).Hyper  # the rule's options, as recorded
        kwargs.update(
            # JSON keeps tuples (Adam's betas) as lists
            {f.name: _tuple(config[f.name]) for f in fields(Hyper) if f.name in config}
        )
        problem = config.get("problem_spec", config["problem"])
        data = config["data"]
        file = (config.get("data_meta") or {}).get("file")  # absolute: works from anywhere
    except (KeyError, TypeError, AttributeError) as exc:
        raise TorchgdError(
            f"the run's config.json lacks {exc}; it was not written by torchgd train"
        ) from None
    if config.get("hyper_at"):
        raise TorchgdError(
            f"this run's hyperparameters changed during it through the Python function "
            f"{config['hyper_at']}, which config.json cannot hold: rebuild its plan in Python "
            "with the same hyper_at, and resume it there (train.execute(plan, resume=...))"
        )
    rebuilt = plan(problem, file or data, rows=rows, **kwargs)
    rebuilt.config["data"] = data  # as the user gave it
    return rebuilt


def _tuple(value):
    return tuple(value) if isinstance(value, list) else value


def _absolute(spec: str) -> str:
    """``FILE.py:NAME`` with FILE made absolute, so the run can be rebuilt (``--resume``,
    ``plot --run``) from any directory; ``package.module:NAME`` as it is."""
    where, _, attr = spec.rpartition(":")
    if not where.endswith(".py"):
        return spec
    from pathlib import Path

    return f"{Path(where).resolve()}:{attr}"
